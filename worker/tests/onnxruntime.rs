//! Latency in onnxruntime: the library loads from `NAS_ONNXRUNTIME` (the
//! `libonnxruntime.so.1.*` of the `onnxruntime` Python package; `.ci/run`
//! installs it), networks are timed in it on both bases, a model it refuses
//! is an error carrying its message, and a library that does not load names
//! the path tried.

use std::path::PathBuf;

use search::{zoo, InputShape, Runtime};
use worker::latency::onnxruntime::{self, OrtInference};
use worker::latency::{measure_with, Inference, LatencyConfig, Meter, References};
use worker::net::Network;

fn library() -> PathBuf {
    onnxruntime::configured_path(None).expect(
        "these tests need the onnxruntime library: `pip install onnxruntime` and set \
         NAS_ONNXRUNTIME to the libonnxruntime.so.1.* in its capi/ folder (.ci/run does)",
    )
}

fn loaded() -> onnxruntime::Loaded {
    onnxruntime::load(&library()).expect("onnxruntime loads")
}

fn lenet() -> Network {
    let architecture =
        zoo::build("lenet5", InputShape::new(1, 28, 28), 10, 1.0).expect("lenet5 builds");
    Network::new(&architecture, 3).expect("network")
}

#[test]
fn the_library_loads_once_and_reports_its_version() {
    let first = loaded();
    assert!(first.version.starts_with("1."), "{first:?}");
    assert_eq!(onnxruntime::loaded(), Some(&first));
    assert_eq!(loaded(), first, "loading the same library again is a no-op");
    let other = std::env::temp_dir().join("nas-other-libonnxruntime.so");
    std::fs::write(&other, b"not a library").expect("write");
    let e = onnxruntime::load(&other).expect_err("a second library in one process");
    assert!(e.to_string().contains("already loaded"), "{e}");
}

#[test]
fn a_file_that_is_not_the_library_is_an_error_naming_it() {
    // A fresh process would try to load it; in this one a library may be
    // loaded already, which is its own error. Either names the path.
    let bogus = std::env::temp_dir().join("nas-bogus-libonnxruntime.so");
    std::fs::write(&bogus, b"\x7fELF but not really").expect("write");
    if onnxruntime::loaded().is_none() {
        let e = onnxruntime::load(&bogus).expect_err("not a library");
        assert!(e.to_string().contains(&bogus.display().to_string()), "{e}");
    }
    let e =
        onnxruntime::load(std::path::Path::new("/no/such/libonnxruntime.so")).expect_err("missing");
    assert!(e.to_string().contains("/no/such/libonnxruntime.so"), "{e}");
}

#[test]
fn a_network_runs_in_onnxruntime_with_the_engines_outputs() {
    loaded();
    let mut net = lenet();
    let mut inference = OrtInference::new(&net, 1).expect("session");
    inference.infer().expect("runs");
    // The logits agree with our engine's on the same input (the export is
    // what is timed, so it must be the same network).
    let ours = {
        let params = net.tensors();
        let image: Vec<f32> = (0..28 * 28)
            .map(|i| ((i * 7919) % 255) as f32 / 255.0)
            .collect();
        net.predict(&params, image, 1)
    };
    let theirs = inference.logits().expect("logits");
    assert_eq!(ours.len(), theirs.len());
    for (a, b) in ours.iter().zip(&theirs) {
        assert!((a - b).abs() < 1e-3, "ours {ours:?} theirs {theirs:?}");
    }
}

#[test]
fn a_model_onnxruntime_refuses_is_an_error_with_its_message() {
    loaded();
    let e = OrtInference::from_model(b"definitely not an onnx model", [1, 1, 28, 28], 1)
        .expect_err("refused");
    let text = e.to_string();
    assert!(
        text.starts_with("onnxruntime refused the network: "),
        "{text}"
    );
    assert!(
        text.len() > "onnxruntime refused the network: ".len() + 5,
        "{text}"
    );
}

#[test]
fn latency_is_measured_in_onnxruntime_on_both_bases() {
    loaded();
    let mut net = lenet();
    let absolute = measure_with(
        &mut net,
        &Meter {
            runtime: Runtime::Onnxruntime,
            ..Meter::absolute(LatencyConfig::quick())
        },
    )
    .expect("absolute");
    assert_eq!(absolute.runtime, Runtime::Onnxruntime);
    assert!(absolute.p50 > 0.0 && absolute.ratio.is_none());
    assert_eq!(absolute.p50, absolute.raw_p50);
    let references = References::in_memory();
    let relative = measure_with(
        &mut net,
        &Meter {
            runtime: Runtime::Onnxruntime,
            references: Some(&references),
            ..Meter::absolute(LatencyConfig::quick())
        },
    )
    .expect("relative");
    let basis = references
        .all()
        .into_iter()
        .find(|b| b.runtime == Runtime::Onnxruntime)
        .expect("an onnxruntime basis was established");
    let ratio = relative.ratio.expect("a ratio");
    assert_eq!(relative.basis_p50, Some(basis.p50_ms));
    assert!((relative.p50 - ratio * basis.p50_ms).abs() < 1e-9);
    assert!(relative.raw_p50 > 0.0);
    assert!(
        references
            .all()
            .iter()
            .all(|b| b.runtime == Runtime::Onnxruntime),
        "no basis of another runtime was needed"
    );
}
