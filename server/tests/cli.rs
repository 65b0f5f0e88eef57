//! The `nas` binary, run as a user runs it.

use std::path::PathBuf;
use std::process::{Command, Output};

fn nas(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nas"))
        .args(args)
        .output()
        .expect("runs the nas binary")
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "nas failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).expect("utf-8")
}

#[test]
fn zoo_list_json_shows_the_published_counts() {
    let rows: serde_json::Value =
        serde_json::from_str(&stdout(&nas(&["zoo", "list", "--json"]))).expect("json");
    let params = |name: &str| {
        rows.as_array()
            .expect("array")
            .iter()
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("{name} listed"))["params"]
            .as_u64()
            .expect("params")
    };
    assert_eq!(params("lenet5"), 61_706);
    assert_eq!(params("alexnet"), 62_378_344);
    assert_eq!(params("vgg16"), 138_357_544);
    assert_eq!(params("resnet50"), 25_557_032);
    assert_eq!(params("mobilenet_v1"), 4_231_976);
    assert_eq!(params("xception"), 22_855_952);
    assert_eq!(params("fashion_cnn"), 1_413_834);
    for row in rows.as_array().expect("array") {
        assert_eq!(row["input"].as_array().expect("[c,h,w]").len(), 3);
        assert!(row["classes"].as_u64().is_some());
        assert!(row["macs"].as_u64().expect("macs") > 0);
    }
}

#[test]
fn zoo_show_json_is_checkable_by_arch_check() {
    let json = stdout(&nas(&[
        "zoo",
        "show",
        "resnet18",
        "--input",
        "32x32x3",
        "--classes",
        "10",
        "--width",
        "0.5",
        "--json",
    ]));
    let dir = std::env::temp_dir().join(format!("nas-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file: PathBuf = dir.join("resnet18.json");
    std::fs::write(&file, json).expect("write");
    let table = stdout(&nas(&["arch", "check", file.to_str().expect("utf-8 path")]));
    assert!(table.contains("layers[1].body[0]"), "{table}");
    assert!(table.contains("total params:"), "{table}");
    let report: serde_json::Value = serde_json::from_str(&stdout(&nas(&[
        "arch",
        "check",
        "--json",
        file.to_str().expect("utf-8 path"),
    ])))
    .expect("json report");
    assert_eq!(report["output"], serde_json::json!([10]));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn arch_check_names_the_bad_layer() {
    let dir = std::env::temp_dir().join(format!("nas-cli-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("bad.json");
    std::fs::write(
        &file,
        r#"{"input":[1,28,28],"classes":10,"layers":[
            {"kind":"conv","filters":8,"kernel":3},
            {"kind":"dense","units":10}]}"#,
    )
    .expect("write");
    let out = nas(&["arch", "check", file.to_str().expect("utf-8 path")]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("layers[1]") && err.contains("flatten"),
        "{err}"
    );
    let out = nas(&["arch", "check", "/nonexistent/arch.json"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/arch.json"));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn space_sample_is_deterministic_per_seed() {
    let a = stdout(&nas(&[
        "space", "sample", "--preset", "mobile", "--seed", "7", "--json",
    ]));
    let b = stdout(&nas(&[
        "space", "sample", "--preset", "mobile", "--seed", "7", "--json",
    ]));
    let c = stdout(&nas(&[
        "space", "sample", "--preset", "mobile", "--seed", "8", "--json",
    ]));
    assert_eq!(a, b);
    assert_ne!(a, c);
    let arch = search::Architecture::from_json(&a).expect("architecture JSON");
    search::validate(&arch).expect("valid");
    let out = nas(&["space", "sample", "--preset", "huge"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown search space preset"));
}

/// Every JSON file in `examples/`, parsed.
fn example_files() -> Vec<(PathBuf, serde_json::Value)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples");
    std::fs::read_dir(&dir)
        .expect("examples folder")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .map(|path| {
            let text = std::fs::read_to_string(&path).expect("read");
            let value = serde_json::from_str(&text).expect("json");
            (path, value)
        })
        .collect()
}

#[test]
fn every_example_architecture_checks() {
    let mut checked = 0;
    for (path, value) in example_files() {
        if value.get("layers").is_some() {
            stdout(&nas(&["arch", "check", path.to_str().expect("utf-8 path")]));
            checked += 1;
        }
    }
    assert!(
        checked > 0,
        "no example architectures found in {}",
        "examples/"
    );
}

fn shared_datasets() -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/datasets")
        .display()
        .to_string()
}

/// A CPU without AVX2 or AVX-512 runs the portable path: forced with
/// `NAS_SIMD=scalar`, a short training and its latency run and report it.
#[test]
fn the_scalar_path_trains_and_measures_when_forced() {
    let arch = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../bench/two_conv.json");
    let bench = |simd: Option<&str>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_nas"));
        if let Some(simd) = simd {
            cmd.env("NAS_SIMD", simd);
        }
        let out = cmd
            .args(["bench", "train", "--arch"])
            .arg(&arch)
            .args(["--dataset", "mnist", "--data-dir", &shared_datasets()])
            .args(["--steps", "3", "--warmup", "1", "--threads", "1"])
            .output()
            .expect("runs nas");
        let text = stdout(&out);
        let line = text.lines().last().expect("a summary line");
        serde_json::from_str::<serde_json::Value>(line).expect("json")
    };
    let scalar = bench(Some("scalar"));
    assert_eq!(scalar["simd"], "scalar", "{scalar}");
    assert!(scalar["train_images_per_second"].as_f64().unwrap_or(0.0) > 0.0);
    assert!(scalar["latency_ms"]["p50"].as_f64().unwrap_or(0.0) > 0.0);
    let native = bench(None);
    eprintln!(
        "scalar {} img/s, {} ({}) {} img/s",
        scalar["train_images_per_second"],
        native["simd"],
        native["device"],
        native["train_images_per_second"]
    );
    assert!(["avx512", "avx2", "scalar"].contains(&native["simd"].as_str().unwrap_or("")));
}

#[test]
fn train_prints_epochs_then_a_json_summary_and_saves_weights() {
    let weights = std::env::temp_dir().join(format!("nas-cli-{}.safetensors", std::process::id()));
    let out = stdout(&nas(&[
        "train",
        "--zoo",
        "lenet5",
        "--dataset",
        "mnist",
        "--data-dir",
        &shared_datasets(),
        "--epochs",
        "2",
        "--max-train-samples",
        "512",
        "--threads",
        "2",
        "--seed",
        "4",
        "--save",
        &weights.display().to_string(),
    ]));
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("training lenet5 (61,706 params"),
        "{out}"
    );
    assert!(
        lines[1].starts_with("epoch 1/2  loss ") && lines[2].starts_with("epoch 2/2"),
        "{out}"
    );
    let summary: serde_json::Value = serde_json::from_str(lines[3]).expect("last line is JSON");
    assert_eq!(summary["status"], "completed");
    assert_eq!(summary["params"], 61_706);
    assert_eq!(summary["macs"], 416_520);
    for key in [
        "val_accuracy",
        "test_accuracy",
        "train_seconds",
        "images_per_second",
    ] {
        let v = summary[key]
            .as_f64()
            .unwrap_or_else(|| panic!("{key} in {summary}"));
        assert!(v > 0.0, "{key} = {v}");
    }
    // 1,024 images of 10 digits: far above chance already.
    assert!(
        summary["test_accuracy"].as_f64().unwrap_or(0.0) > 0.3,
        "{summary}"
    );
    let (p50, p90) = (
        summary["latency_ms"]["p50"].as_f64(),
        summary["latency_ms"]["p90"].as_f64(),
    );
    assert!(
        matches!((p50, p90), (Some(a), Some(b)) if a > 0.0 && a <= b),
        "{summary}"
    );
    assert!(std::fs::metadata(&weights)
        .map(|m| m.len() > 61_706 * 4)
        .unwrap_or(false));

    // The saved weights convert to ONNX offline, taking raw pixels (the
    // weights record the normalisation they were trained with).
    let arch = search::zoo::build("lenet5", search::InputShape::new(1, 28, 28), 10, 1.0)
        .expect("zoo builds");
    let arch_file = weights.with_extension("json");
    let model = weights.with_extension("onnx");
    let (arch_arg, weights_arg, model_arg) = (
        arch_file.display().to_string(),
        weights.display().to_string(),
        model.display().to_string(),
    );
    let convert = || {
        nas(&[
            "arch",
            "onnx",
            &arch_arg,
            "--weights",
            &weights_arg,
            "--out",
            &model_arg,
        ])
    };
    std::fs::write(&arch_file, arch.to_json_pretty()).expect("writes the architecture");
    let out = stdout(&convert());
    assert!(out.contains("input `pixels`"), "{out}");
    assert!(std::fs::metadata(&model)
        .map(|m| m.len() > 61_706 * 4)
        .unwrap_or(false));
    let wrong = search::zoo::build("lenet5", search::InputShape::new(1, 28, 28), 10, 0.5)
        .expect("zoo builds");
    std::fs::write(&arch_file, wrong.to_json_pretty()).expect("writes the architecture");
    let refused = convert();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && stderr.contains("weights are for architecture"),
        "weights of another network are refused: {stderr}"
    );
    for file in [&weights, &arch_file, &model] {
        std::fs::remove_file(file).ok();
    }
}

#[test]
fn latency_alone_for_a_zoo_entry() {
    let out = stdout(&nas(&[
        "latency",
        "--zoo",
        "mobilenet_v2",
        "--width",
        "0.25",
        "--input",
        "32x32x3",
        "--protocol",
        "quick",
        "--repeat",
        "3",
    ]));
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("json");
    let measurements = v["measurements"].as_array().expect("measurements");
    assert_eq!(measurements.len(), 3, "{v}");
    for m in measurements {
        let p50 = m["p50"].as_f64().expect("p50");
        assert!(p50 > 0.0, "{m}");
        assert!(
            m["ci_low"].as_f64() <= Some(p50) && m["ci_high"].as_f64() >= Some(p50),
            "{m}"
        );
        assert!(m["runs"].as_u64().is_some_and(|r| r >= 3), "{m}");
        assert_eq!(m["device"]["threads"], 1);
    }
    assert!(
        v["p50_max_over_min"].as_f64().is_some_and(|r| r >= 1.0),
        "{v}"
    );
    let one = nas(&["latency", "--zoo", "lenet5", "--repeat", "0"]);
    assert!(!one.status.success(), "--repeat is bounded");
}

#[test]
fn train_errors_name_the_problem() {
    let out = nas(&["train", "--zoo", "lenet5", "--dataset", "imagenet-42"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unknown dataset `imagenet-42`") && err.contains("fashion-mnist"),
        "{err}"
    );
    let out = nas(&[
        "train",
        "--zoo",
        "lenet5",
        "--dataset",
        "mnist",
        "--data-dir",
        &shared_datasets(),
        "--optimizer",
        "lbfgs",
    ]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown optimizer `lbfgs`"));
    let out = nas(&["train", "--dataset", "mnist"]);
    assert!(!out.status.success(), "a model is required");
}

#[test]
fn queue_submit_and_status_on_an_sqlite_file() {
    let db = std::env::temp_dir().join(format!("nas-cli-queue-{}.db", std::process::id()));
    let url = format!("sqlite://{}", db.display());
    let example = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/quick.json");
    let id = stdout(&nas(&[
        "queue",
        "submit",
        &example.display().to_string(),
        "--database-url",
        &url,
    ]));
    assert_eq!(id.trim(), "1");
    let status = stdout(&nas(&["queue", "status", "1", "--database-url", &url]));
    // One candidate queued beside the LeNet-5 baseline (counts are the budget's candidates).
    assert!(
        status.contains("search 1 (quick fashion-mnist search): running")
            && status.contains("1 pending"),
        "{status}"
    );
    let list = stdout(&nas(&["queue", "status", "--database-url", &url]));
    assert!(list.contains("quick fashion-mnist search"), "{list}");
    let bad = std::env::temp_dir().join(format!("nas-cli-bad-spec-{}.json", std::process::id()));
    std::fs::write(
        &bad,
        r#"{"name": "x", "dataset": "mnist", "budget": {"max_trials": 0}}"#,
    )
    .expect("write");
    let out = nas(&[
        "queue",
        "submit",
        &bad.display().to_string(),
        "--database-url",
        &url,
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("budget.max_trials: must be between 1 and 100000"));
    for f in [db.clone(), bad] {
        std::fs::remove_file(f).ok();
    }
}

#[test]
fn serve_refuses_a_public_address_without_authentication() {
    let out = nas(&[
        "serve",
        "--bind",
        "0.0.0.0:0",
        "--database-url",
        "sqlite::memory:",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("refusing to serve on 0.0.0.0:0 without a token"),
        "{err}"
    );
}

#[test]
fn every_example_spec_is_valid() {
    let mut checked = 0;
    for (path, value) in example_files() {
        if value.get("dataset").is_some() {
            let spec: search::SearchSpec =
                serde_json::from_value(value).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            // A spec on an upload (examples/own-data.json) is checked
            // against one of Fashion-MNIST's shape, which it is made from.
            let dataset = match spec.dataset_info() {
                Ok(info) => info.facts(),
                Err(_) => search::DatasetFacts {
                    name: spec.dataset.clone(),
                    id: None,
                    input: search::InputShape::new(1, 28, 28),
                    class_names: (0..10).map(|c| c.to_string()).collect(),
                },
            };
            spec.check_on(&dataset, &search::limits::ResourceLimits::default())
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            checked += 1;
        }
    }
    assert!(checked >= 2, "the example specs in examples/");
}

#[test]
fn a_worker_given_a_library_that_does_not_load_refuses_to_start_naming_it() {
    let bogus = std::env::temp_dir().join(format!("nas-bogus-ort-{}.so", std::process::id()));
    std::fs::write(&bogus, b"not a shared library").expect("write");
    for library in [
        bogus.display().to_string(),
        "/no/such/libonnxruntime.so".into(),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_nas"))
            .args([
                "worker",
                "--database-url",
                "sqlite:///nonexistent/never-opened.db",
                "--calibrate",
                "false",
                "--onnxruntime",
                &library,
            ])
            .output()
            .expect("runs nas");
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("onnxruntime could not be loaded from") && err.contains(&library),
            "{err}"
        );
    }
}
