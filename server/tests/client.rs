//! `nas` alone (that is, `nas up`, configured by environment variables) as a
//! real process, and the client commands against it: submit --wait, searches,
//! show, leaderboard in three formats, export, cancel; then SIGTERM.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn datasets() -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/datasets")
        .display()
        .to_string()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn nas(server: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nas"))
        .args(args)
        .env("NAS_SERVER", server)
        .output()
        .expect("runs nas")
}

fn ok(output: &Output) -> String {
    assert!(
        output.status.success(),
        "nas failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

struct Up(Child);

impl Drop for Up {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `nas` with no arguments (and `env`; an empty value removes the
/// variable); returns once it printed its banner, with the banner.
fn start_with(dir: &std::path::Path, port: u16, env: &[(&str, &str)]) -> (Up, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_nas"));
    command
        .env("NAS_DB", dir.join("nas.db"))
        .env("NAS_PORT", port.to_string())
        .env("NAS_WORKERS", "1")
        .env("NAS_DATA_DIR", datasets());
    for (name, value) in env {
        if value.is_empty() {
            command.env_remove(name);
        } else {
            command.env(name, value);
        }
    }
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("starts nas");
    let stdout = child.stdout.take().expect("stdout");
    let mut banner = String::new();
    let mut reader = BufReader::new(stdout);
    while !banner.contains("stop with Ctrl-C") {
        if reader.read_line(&mut banner).expect("reads the banner") == 0 {
            break;
        }
    }
    // Keep reading: a closed pipe would make the server's next line of
    // output fail and the server exit.
    std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
    assert!(
        banner.starts_with("nas is up: http://127.0.0.1:"),
        "{banner}"
    );
    (Up(child), format!("http://127.0.0.1:{port}"), banner)
}

/// Starts `nas` with no arguments; returns once it printed its URL.
fn start(dir: &std::path::Path, port: u16) -> (Up, String) {
    let (up, server, _) = start_with(dir, port, &[]);
    (up, server)
}

/// A search measured in onnxruntime on a `nas up` without the library: the
/// banner says how to give it one, and the search stays queued saying what
/// it waits for, in `nas show` and the API; no trial fails.
#[test]
fn a_search_for_a_runtime_no_worker_has_waits_and_says_so() {
    let dir = std::env::temp_dir().join(format!("nas-client-ort-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let (_up, server, banner) = start_with(
        &dir,
        free_port(),
        &[
            ("NAS_ONNXRUNTIME", ""),
            ("ORT_DYLIB_PATH", ""),
            ("NAS_CALIBRATE", "false"),
        ],
    );
    assert!(
        banner.contains("onnxruntime: not configured") && banner.contains("--onnxruntime PATH"),
        "{banner}"
    );
    let spec = dir.join("ort.json");
    std::fs::write(
        &spec,
        r#"{"name": "ort", "dataset": "mnist", "strategy": {"kind": "random"}, "seed": 3,
            "objective": {"latency": {"target_ms": 1.0, "runtime": "onnxruntime"}},
            "budget": {"max_trials": 2, "parallelism": 1, "epochs": 1, "max_train_samples": 512}}"#,
    )
    .expect("spec");
    let id = ok(&nas(&server, &["submit", &spec.display().to_string()]))
        .trim()
        .to_owned();
    // The worker registers and polls; the trial stays pending.
    let deadline = Instant::now() + Duration::from_secs(60);
    let shown = loop {
        let shown = ok(&nas(&server, &["show", &id]));
        if shown.contains("waiting for a worker with onnxruntime") || Instant::now() > deadline {
            break shown;
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    assert!(
        shown.contains("running (waiting for a worker with onnxruntime)"),
        "{shown}"
    );
    std::thread::sleep(Duration::from_secs(2));
    let detail: serde_json::Value =
        serde_json::from_str(&ok(&nas(&server, &["show", &id, "--json"]))).expect("json");
    assert_eq!(
        detail["waiting_for"].as_str(),
        Some("waiting for a worker with onnxruntime"),
        "{detail}"
    );
    assert_eq!(
        detail["trial_counts"]["pending"].as_i64(),
        Some(1),
        "{detail}"
    );
    assert!(detail["trial_counts"].get("failed").is_none(), "{detail}");
}

#[test]
fn the_client_drives_a_search_on_nas_up() {
    let dir = std::env::temp_dir().join(format!("nas-client-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let (mut up, server) = start(&dir, free_port());
    let spec = dir.join("spec.json");
    std::fs::write(
        &spec,
        r#"{"name": "cli", "dataset": "mnist", "strategy": {"kind": "random"}, "seed": 3,
            "objective": {"kind": "pareto", "metrics": ["accuracy", "latency"], "reference": {"latency_ms": 50}},
            "budget": {"max_trials": 2, "parallelism": 1, "epochs": 1, "max_train_samples": 2048},
            "training": {"learning_rate": 0.005}}"#,
    )
    .expect("spec");
    let spec = spec.display().to_string();

    let waited = ok(&nas(&server, &["submit", &spec, "--wait"]));
    let mut lines = waited.lines();
    let id: i64 = lines
        .next()
        .and_then(|l| l.parse().ok())
        .expect("the id first");
    assert!(
        waited.contains(&format!("search {id} finished: 2 of 2 trials ended")),
        "{waited}"
    );
    assert!(
        waited.contains("rank") && waited.contains("val acc"),
        "{waited}"
    );

    let listed = ok(&nas(&server, &["searches"]));
    assert!(
        listed.contains("cli") && listed.contains("finished"),
        "{listed}"
    );
    let shown = ok(&nas(&server, &["show", &id.to_string()]));
    assert!(shown.contains("2 succeeded"), "{shown}");
    assert!(
        shown.contains("hypervolume: validated 0.") && shown.contains("latency 50 ms"),
        "a Pareto search shows its hypervolume: {shown}"
    );
    let by_rank = ok(&nas(
        &server,
        &["leaderboard", &id.to_string(), "--sort", "rank"],
    ));
    assert!(
        by_rank.lines().next().is_some_and(|h| h.contains("front")),
        "{by_rank}"
    );

    let csv = ok(&nas(
        &server,
        &["leaderboard", &id.to_string(), "--format", "csv"],
    ));
    assert_eq!(csv.lines().count(), 3, "{csv}");
    let json: serde_json::Value = serde_json::from_str(&ok(&nas(
        &server,
        &[
            "leaderboard",
            &id.to_string(),
            "--format",
            "json",
            "--top",
            "1",
            "--sort",
            "latency",
        ],
    )))
    .expect("json");
    assert_eq!(json["entries"].as_array().map(Vec::len), Some(1));
    assert!(
        json["next_cursor"].is_string(),
        "one more to page to: {json}"
    );
    let trial = json["entries"][0]["trial_id"].as_i64().expect("trial id");
    let table = ok(&nas(&server, &["leaderboard", &id.to_string()]));
    assert_eq!(table.lines().count(), 4, "header, rule, two rows: {table}");

    let out = dir.join("export");
    ok(&nas(
        &server,
        &[
            "export",
            &trial.to_string(),
            "--out",
            &out.display().to_string(),
        ],
    ));
    let arch = out.join(format!("trial-{trial}.json"));
    assert!(out
        .join(format!("trial-{trial}.safetensors"))
        .metadata()
        .is_ok_and(|m| m.len() > 100));
    ok(&nas(
        &server,
        &["arch", "check", &arch.display().to_string()],
    ));
    let model = dir.join("model.onnx");
    let said = ok(&nas(
        &server,
        &[
            "export",
            &trial.to_string(),
            "--format",
            "onnx",
            "--out",
            &model.display().to_string(),
        ],
    ));
    assert!(said.contains("ONNX model (opset 17)"), "{said}");
    assert!(model.metadata().is_ok_and(|m| m.len() > 100));
    let missing = nas(&server, &["export", "987654", "--format", "onnx"]);
    assert!(
        !missing.status.success()
            && String::from_utf8_lossy(&missing.stderr).contains("404 not_found"),
        "{}",
        String::from_utf8_lossy(&missing.stderr)
    );

    let refused = nas(&server, &["cancel", &id.to_string()]);
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("409 conflict") && err.contains("already finished"),
        "{err}"
    );
    let unknown = nas(&server, &["show", "999"]);
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("404 not_found"));

    let second = ok(&nas(&server, &["submit", &spec]));
    let second = second.trim();
    assert!(ok(&nas(&server, &["cancel", second])).contains("cancelled"));

    let nobody = nas("http://127.0.0.1:9", &["searches"]);
    assert!(String::from_utf8_lossy(&nobody.stderr).contains("cannot reach the server"));

    // SIGTERM: the server and its workers stop cleanly.
    let status = Command::new("kill")
        .args(["-TERM", &up.0.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let exit = loop {
        if let Some(exit) = up.0.try_wait().expect("wait") {
            break exit;
        }
        assert!(Instant::now() < deadline, "nas up did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(exit.success(), "{exit:?}");
    std::fs::remove_dir_all(&dir).ok();
}
