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

/// A search measured in onnxruntime runs only on the worker that has it:
/// the one without it claims nothing, the other runs every trial and
/// records latencies in onnxruntime on the relative basis.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_search_measured_in_onnxruntime_runs_on_the_worker_that_has_it() {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use store::{testing, QueueConfig, SearchStatus, Store, TrialState, WorkerInfo};
    use tokio::sync::watch;
    use worker::agent::{Agent, AgentConfig};

    loaded();
    let store = Store::connect(&testing::fresh_sqlite_url(), QueueConfig::default())
        .await
        .expect("store");
    let spec: search::SearchSpec = serde_json::from_str(
        r#"{"name": "ort", "dataset": "fashion-mnist", "space": "micro",
            "strategy": {"kind": "random"},
            "objective": {"latency": {"target_ms": 1.0, "runtime": "onnxruntime"}},
            "budget": {"max_trials": 3, "parallelism": 3, "epochs": 1, "max_train_samples": 1000},
            "training": {"batch_size": 32, "val_fraction": 0.05}, "seed": 3}"#,
    )
    .expect("spec");
    let id = store.create_search(&spec).await.expect("create");
    let references = Arc::new(References::in_memory().with_protocol(LatencyConfig::quick()));
    let config = |name: &str, labels: &[&str]| AgentConfig {
        worker: WorkerInfo {
            id: name.into(),
            host: "test".into(),
            labels: labels.iter().map(|l| (*l).to_owned()).collect(),
            threads: 1,
            device: "test".into(),
            profile: None,
        },
        threads: 1,
        data_dir: std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/datasets"),
        heartbeat: Duration::from_millis(200),
        poll: Duration::from_millis(100),
        latency: LatencyConfig::quick(),
        final_latency: LatencyConfig::quick(),
        gate: None,
        references: Some(references.clone()),
        max_memory: None,
        cores: None,
        predictor: None,
        health: None,
    };
    let (stop, stopped) = watch::channel(false);
    let agents = [
        tokio::spawn(Agent::new(store.clone(), config("plain", &["cpu"])).run(stopped.clone())),
        tokio::spawn(
            Agent::new(store.clone(), config("ort", &["cpu", "onnxruntime"])).run(stopped.clone()),
        ),
    ];
    let start = Instant::now();
    while store.search(id).await.expect("search").status == SearchStatus::Running {
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "the search did not finish: {:?}",
            store.trial_counts(id).await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop.send(true).expect("stop");
    for a in agents {
        a.await.expect("agent task").expect("agent");
    }
    let trials = store.trials(id).await.expect("trials");
    assert_eq!(trials.len(), 3);
    for t in &trials {
        assert_eq!(t.state, TrialState::Succeeded, "{t:?}");
        assert_eq!(t.worker_id.as_deref(), Some("ort"), "{t:?}");
        let l = t.result.as_ref().expect("result").latency_ms;
        assert_eq!(l.runtime, Some(Runtime::Onnxruntime), "{l:?}");
        assert!(
            l.ratio.is_some() && l.basis_p50.is_some() && l.raw_p50.is_some(),
            "{l:?}"
        );
    }
    let bases = references.all();
    assert!(
        bases.iter().any(|b| b.runtime == Runtime::Onnxruntime),
        "{bases:?}"
    );
}
