//! Fault injection with real `nas worker` processes: a worker dies at each
//! stage of a trial (after the claim, while loading the dataset, while
//! measuring latency, while training, before storing weights, before
//! recording the result) and another finishes the search; PostgreSQL
//! terminates the workers' connections mid-run. Each time every trial ends
//! exactly once, succeeded, with its weights, and nothing is lost.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use search::SearchSpec;
use store::{testing, QueueConfig, SearchStatus, Store, TrialState};
use worker::failpoint::{FAILPOINT_ENV, STAGES};

fn datasets() -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/datasets")
        .display()
        .to_string()
}

/// `nas worker` with short leases, optionally set to abort at `failpoint`.
fn worker(url: &str, name: &str, failpoint: Option<&str>) -> Child {
    let log = std::env::temp_dir().join(format!("nas-fault-{name}-{}.log", std::process::id()));
    let mut command = Command::new(env!("CARGO_BIN_EXE_nas"));
    command
        .args(["worker", "--database-url", url, "--threads", "1"])
        .args(["--data-dir", &datasets(), "--lease-secs", "2"])
        .args(["--heartbeat-secs", "0.3", "--poll-secs", "0.2"])
        // Calibration (13 s a start here) is not what these tests are about.
        .args(["--calibrate", "false"])
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"));
    if let Some(stage) = failpoint {
        command.env(FAILPOINT_ENV, stage);
    }
    command.spawn().expect("starts nas worker")
}

fn spec() -> SearchSpec {
    spec_of(2, 512)
}

fn spec_of(trials: u32, samples: u32) -> SearchSpec {
    serde_json::from_value(serde_json::json!({
        "name": "fault test", "dataset": "mnist", "space": "micro", "strategy": {"kind": "random"},
        "budget": {"max_trials": trials, "parallelism": 1, "epochs": 2, "max_train_samples": samples},
        "training": {"batch_size": 64, "val_fraction": 0.1}, "seed": 3
    }))
    .expect("spec")
}

async fn wait_finished(store: &Store, id: i64, within: Duration) {
    let start = Instant::now();
    while store.search(id).await.expect("search").status != SearchStatus::Finished {
        assert!(
            start.elapsed() < within,
            "the search did not finish: {:#?}",
            store.trials(id).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn stop(mut child: Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let start = Instant::now();
    while child.try_wait().ok().flatten().is_none() && start.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
}

/// Every trial ended once, succeeded, with a result, weights and epochs.
async fn nothing_lost(store: &Store, id: i64, count: usize) -> Vec<store::TrialRow> {
    let trials = store.trials(id).await.expect("trials");
    assert_eq!(trials.len(), count, "{trials:#?}");
    for t in &trials {
        assert_eq!(t.state, TrialState::Succeeded, "{t:#?}");
        assert!(t.result.is_some(), "{t:#?}");
        assert!(
            store.weights(t.id).await.expect("weights").is_some(),
            "{t:#?}"
        );
        let epochs = store.epoch_metrics(t.id, t.attempt).await.expect("epochs");
        assert_eq!(
            epochs.len(),
            2,
            "one row per epoch of the final attempt: {t:#?}"
        );
    }
    trials
}

async fn a_worker_dies_at(stage: &str) {
    let url = testing::fresh_sqlite_url();
    let store = Store::connect(&url, QueueConfig::default())
        .await
        .expect("store");
    let id = store.create_search(&spec()).await.expect("create");
    let mut doomed = worker(&url, &format!("doomed-{stage}"), Some(stage));
    let start = Instant::now();
    let status = loop {
        if let Some(status) = doomed.try_wait().expect("wait") {
            break status;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "{stage}: never reached"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(!status.success(), "{stage}: the worker aborted");
    let rescuer = worker(&url, &format!("rescuer-{stage}"), None);
    wait_finished(&store, id, Duration::from_secs(180)).await;
    stop(rescuer);
    let trials = nothing_lost(&store, id, 2).await;
    let retried: Vec<_> = trials.iter().filter(|t| t.attempt == 2).collect();
    assert_eq!(
        retried.len(),
        1,
        "{stage}: exactly the dead worker's trial was retried: {trials:#?}"
    );
    assert!(
        retried[0].errors[0].error.contains("lease expired"),
        "{stage}: {:?}",
        retried[0].errors
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_early_in_a_trial_loses_nothing() {
    for stage in &STAGES[..3] {
        a_worker_dies_at(stage).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_late_in_a_trial_loses_nothing() {
    for stage in &STAGES[3..] {
        a_worker_dies_at(stage).await;
    }
}

/// A one-trial ASHA search (rungs at 1 and 3 epochs): the trial always
/// goes on to the second rung, resuming from its checkpoint.
fn asha_spec() -> SearchSpec {
    serde_json::from_value(serde_json::json!({
        "name": "asha fault test", "dataset": "mnist", "space": "micro", "strategy": {"kind": "random"},
        "scheduler": {"kind": "asha", "min_epochs": 1, "max_epochs": 3, "eta": 3},
        "budget": {"max_trials": 1, "parallelism": 1, "max_train_samples": 512},
        "training": {"batch_size": 64, "val_fraction": 0.1}, "seed": 3
    }))
    .expect("spec")
}

/// A worker dies at `failpoint` of an ASHA search; another finishes it.
/// The trial ends once, trained to its last rung, and each epoch of its
/// curve was trained by the attempt in `trained_by` (1-based attempts): a
/// later attempt resumed from the checkpoint instead of starting over.
async fn a_worker_dies_in_a_rung(failpoint: &str, trained_by: [i64; 3]) {
    let url = testing::fresh_sqlite_url();
    let store = Store::connect(&url, QueueConfig::default())
        .await
        .expect("store");
    let id = store.create_search(&asha_spec()).await.expect("create");
    let mut doomed = worker(&url, &format!("doomed-{failpoint}"), Some(failpoint));
    let start = Instant::now();
    while doomed.try_wait().expect("wait").is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "{failpoint}: never reached"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let rescuer = worker(&url, &format!("rescuer-{failpoint}"), None);
    wait_finished(&store, id, Duration::from_secs(180)).await;
    stop(rescuer);
    let trials = store.trials(id).await.expect("trials");
    assert_eq!(trials.len(), 1, "{trials:#?}");
    let t = &trials[0];
    assert_eq!(
        (t.state, t.rung, t.epochs_done),
        (TrialState::Succeeded, Some(1), 3),
        "{failpoint}: {t:#?}"
    );
    assert!(
        t.errors.iter().any(|e| e.error.contains("lease expired")),
        "{failpoint}: {t:#?}"
    );
    assert!(store.weights(t.id).await.expect("weights").is_some());
    assert_eq!(
        store.checkpoint(t.id).await.expect("checkpoint"),
        None,
        "pruned at the end"
    );
    let curve = store.epoch_metrics(t.id, t.attempt).await.expect("epochs");
    assert_eq!(curve.len(), 3, "{failpoint}: {curve:#?}");
    let attempts: Vec<i64> = sqlx_attempts(&url, t.id).await;
    assert_eq!(
        attempts, trained_by,
        "{failpoint}: which attempt trained each epoch"
    );
}

/// For each epoch of a trial's curve, the attempt whose row it is.
async fn sqlx_attempts(url: &str, trial: i64) -> Vec<i64> {
    use sqlx::Connection;
    let mut db = sqlx::SqliteConnection::connect(url).await.expect("sqlite");
    sqlx::query_scalar(
        "SELECT MAX(attempt) FROM trial_metrics WHERE trial_id = ? GROUP BY epoch ORDER BY epoch",
    )
    .bind(trial)
    .fetch_all(&mut db)
    .await
    .expect("metrics")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_in_a_multi_fidelity_trial_resumes_from_its_checkpoint() {
    // Killed while storing its first checkpoint: nothing to resume from, the
    // rescuer trains rung 1 again (attempt 2), then rung 2 (attempt 3).
    a_worker_dies_in_a_rung("checkpoint", [2, 3, 3]).await;
    // Killed as it resumes the promoted trial (attempt 2): the rescuer
    // (attempt 3) goes on from the rung-1 checkpoint.
    a_worker_dies_in_a_rung("resume", [1, 3, 3]).await;
    // Killed mid-rung while storing epoch 3's checkpoint: the rescuer
    // resumes from epoch 2's, trained by the dead worker.
    a_worker_dies_in_a_rung("checkpoint:3", [1, 2, 3]).await;
}

/// PostgreSQL drops the worker's connections again and again while it
/// trains and reports: the worker reconnects and retries, the search
/// finishes, every trial once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_database_connections_lose_nothing() {
    let url = testing::fresh_postgres_url().await.expect("postgres");
    let store = Store::connect(&url, QueueConfig::default())
        .await
        .expect("store");
    let id = store
        .create_search(&spec_of(4, 4000))
        .await
        .expect("create");
    let tagged = format!("{url}?application_name=nas-fault-worker");
    let w = worker(&tagged, "reconnecting", None);
    let admin = sqlx::PgPool::connect(&testing::postgres_server_url())
        .await
        .expect("admin connection");
    // Drop connections once the worker is at work (not while it starts).
    let start = Instant::now();
    while store.trials(id).await.expect("trials")[0].state == TrialState::Pending {
        assert!(start.elapsed() < Duration::from_secs(60), "no claim");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut terminated = 0i64;
    while store.search(id).await.expect("search").status != SearchStatus::Finished {
        assert!(
            start.elapsed() < Duration::from_secs(180),
            "the search did not finish"
        );
        let killed: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE application_name = 'nas-fault-worker') AS t",
        )
        .fetch_one(&admin)
        .await
        .expect("terminate");
        terminated += killed;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    stop(w);
    assert!(terminated >= 3, "connections were dropped ({terminated})");
    nothing_lost(&store, id, 4).await;
}

/// A real worker process limited to 1 MiB refuses every network of an
/// ordinary search before building it, saying how much each needed, and
/// the search ends instead of crashing workers again and again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_process_refuses_networks_over_its_memory() {
    let url = testing::fresh_sqlite_url();
    let store = Store::connect(&url, QueueConfig::default())
        .await
        .expect("store");
    let id = store.create_search(&spec()).await.expect("create");
    let mut command = Command::new(env!("CARGO_BIN_EXE_nas"));
    command
        .args(["worker", "--database-url", &url, "--threads", "1"])
        .args(["--data-dir", &datasets(), "--max-memory-mib", "1"])
        .args(["--calibrate", "false"])
        .args(["--poll-secs", "0.2"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let small = command.spawn().expect("starts nas worker");
    let start = Instant::now();
    while store.search(id).await.expect("search").status == SearchStatus::Running {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the search did not end"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop(small);
    for t in store.trials(id).await.expect("trials") {
        assert_eq!((t.state, t.attempt), (TrialState::Failed, 1), "{t:#?}");
        let error = &t.errors[0].error;
        assert!(error.contains("this worker allows 1.0 MiB"), "{error}");
    }
}
