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

#[test]
fn every_example_architecture_checks() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).expect("examples folder") {
        let path = entry.expect("entry").path();
        let text = std::fs::read_to_string(&path).expect("read");
        let value: serde_json::Value = serde_json::from_str(&text).expect("json");
        if value.get("layers").is_some() {
            stdout(&nas(&["arch", "check", path.to_str().expect("utf-8 path")]));
            checked += 1;
        }
    }
    assert!(
        checked > 0,
        "no example architectures found in {}",
        dir.display()
    );
}
