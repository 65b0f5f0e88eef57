//! Real `nas worker` processes on a real (small) search: one is killed with
//! SIGKILL mid-training and another finishes its trial after the lease
//! expires; every process is stopped with SIGTERM mid-search and the search
//! resumes from the database when workers start again.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use search::SearchSpec;
use store::{testing, QueueConfig, SearchStatus, Store, TrialRow, TrialState};

fn datasets() -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/datasets")
        .display()
        .to_string()
}

/// Where worker `name`'s log goes.
fn log_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("nas-worker-{name}-{}.log", std::process::id()))
}

/// Starts `nas worker` with short leases; its log goes to a temp file.
fn start_worker(url: &str, name: &str) -> Child {
    start_worker_in(url, name, &datasets(), 1)
}

/// Starts `nas worker` of `agents` agents reading `data_dir`.
fn start_worker_in(url: &str, name: &str, data_dir: &str, agents: usize) -> Child {
    let log = std::fs::File::create(log_path(name)).expect("log file");
    Command::new(env!("CARGO_BIN_EXE_nas"))
        .args([
            "worker",
            "--database-url",
            url,
            "--threads",
            "1",
            "--concurrency",
            &agents.to_string(),
            "--data-dir",
            data_dir,
            "--calibrate",
            "false",
            "--lease-secs",
            "2",
            "--heartbeat-secs",
            "0.3",
            "--poll-secs",
            "0.2",
        ])
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("starts nas worker")
}

fn sigterm(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}

fn wait_exit(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        assert!(
            start.elapsed() < within,
            "worker did not exit in {within:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

async fn wait_for(
    store: &Store,
    search: i64,
    what: &str,
    within: Duration,
    done: impl Fn(&[TrialRow], SearchStatus) -> bool,
) {
    let start = Instant::now();
    loop {
        let trials = store.trials(search).await.expect("trials");
        let status = store.search(search).await.expect("search").status;
        if done(&trials, status) {
            return;
        }
        assert!(
            start.elapsed() < within,
            "timed out waiting for {what}: {status:?} {trials:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn spec(trials: u32, parallelism: u32) -> SearchSpec {
    serde_json::from_value(serde_json::json!({
        "name": "process test", "dataset": "fashion-mnist", "space": "micro", "strategy": {"kind": "random"},
        "budget": {"max_trials": trials, "parallelism": parallelism, "epochs": 3, "max_train_samples": 6000},
        "training": {"val_fraction": 0.02}, "seed": 11
    }))
    .expect("spec")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_with_empty_data_dirs_fetch_an_uploaded_dataset_once_per_machine() {
    let url = testing::fresh_postgres_url().await.expect("postgres");
    let store = Store::connect(&url, QueueConfig::default())
        .await
        .expect("store");
    // 2,000 MNIST training and 500 test images, uploaded.
    let mnist =
        worker::data::load_idx_dir(&PathBuf::from(datasets()).join("mnist")).expect("mnist");
    let dataset = worker::data::import::CanonicalDataset {
        class_names: (0..10).map(|c| c.to_string()).collect(),
        split: worker::data::Split {
            train: mnist.train.take(2000),
            test: mnist.test.take(500),
        },
    };
    let id = store
        .put_dataset(
            "digits",
            &dataset.summary("idx", true, 0),
            &dataset.to_bytes(),
        )
        .await
        .expect("upload")
        .dataset
        .id;
    let spec: SearchSpec = serde_json::from_value(serde_json::json!({
        "name": "on an upload", "dataset": "digits", "space": "micro", "strategy": {"kind": "random"},
        "budget": {"max_trials": 10, "parallelism": 3, "epochs": 3}, "seed": 5
    }))
    .expect("spec");
    let search = store.create_search(&spec).await.expect("create");
    let dirs: Vec<PathBuf> = ["first", "second"]
        .iter()
        .map(|name| {
            let dir = std::env::temp_dir().join(format!("nas-fetch-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            dir
        })
        .collect();
    let mut first = start_worker_in(&url, "fetch-first", &dirs[0].display().to_string(), 1);
    wait_for(
        &store,
        search,
        "the first worker to train",
        Duration::from_secs(120),
        |t, _| t.iter().any(|t| t.progress.is_some()),
    )
    .await;
    // A second machine joins with an empty data dir and two agents.
    let mut second = start_worker_in(&url, "fetch-second", &dirs[1].display().to_string(), 2);
    wait_for(
        &store,
        search,
        "the search to finish",
        Duration::from_secs(300),
        |_, s| s == SearchStatus::Finished,
    )
    .await;
    for child in [&mut first, &mut second] {
        sigterm(child);
        assert!(wait_exit(child, Duration::from_secs(30)).success());
    }
    let trials = store.trials(search).await.expect("trials");
    assert!(
        trials.iter().all(|t| t.state == TrialState::Succeeded),
        "{trials:#?}"
    );
    for (name, dir) in ["fetch-first", "fetch-second"].iter().zip(&dirs) {
        let log = std::fs::read_to_string(log_path(name)).expect("log");
        assert_eq!(
            log.matches("dataset fetched from the store").count(),
            1,
            "{name} fetches the dataset once: {log}"
        );
        assert!(
            log.matches("claimed").count() >= 1,
            "{name} trained trials from it: {log}"
        );
        assert!(dir.join("uploads").join(format!("{id}.nasds")).exists());
        let _ = std::fs::remove_dir_all(dir);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_workers_trial_is_retried_by_another_and_counted_once() {
    let url = testing::fresh_postgres_url().await.expect("postgres");
    let store = Store::connect(&url, QueueConfig::default())
        .await
        .expect("store");
    let search = store.create_search(&spec(3, 1)).await.expect("create");
    let mut doomed = start_worker(&url, "doomed");
    // Mid-training: the first epoch has been reported, later ones have not.
    wait_for(
        &store,
        search,
        "the first trial to report progress",
        Duration::from_secs(120),
        |t, _| {
            t.first()
                .is_some_and(|t| t.state == TrialState::Running && t.progress.is_some())
        },
    )
    .await;
    doomed.kill().expect("SIGKILL");
    doomed.wait().expect("reaped");
    let victim = store.trials(search).await.expect("trials")[0].clone();
    assert_eq!(
        (victim.state, victim.attempt),
        (TrialState::Running, 1),
        "killed mid-trial"
    );
    let mut rescuer = start_worker(&url, "rescuer");
    wait_for(
        &store,
        search,
        "the search to finish",
        Duration::from_secs(240),
        |_, s| s == SearchStatus::Finished,
    )
    .await;
    sigterm(&rescuer);
    assert!(wait_exit(&mut rescuer, Duration::from_secs(30)).success());
    let trials = store.trials(search).await.expect("trials");
    assert_eq!(trials.len(), 3, "every trial accounted for");
    assert!(
        trials.iter().all(|t| t.state == TrialState::Succeeded),
        "{trials:#?}"
    );
    let retried = &trials[0];
    assert_eq!(retried.attempt, 2, "the killed attempt was retried once");
    assert!(
        retried
            .errors
            .iter()
            .any(|e| e.error.contains("lease expired")),
        "{:?}",
        retried.errors
    );
    assert_eq!(
        store
            .epoch_metrics(retried.id, 2)
            .await
            .expect("metrics")
            .len(),
        3,
        "the retry trained all epochs"
    );
    assert!(trials[1..].iter().all(|t| t.attempt == 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_every_worker_mid_search_hands_trials_back_and_the_search_resumes() {
    let url = testing::fresh_sqlite_url();
    let store = Store::connect(&url, QueueConfig::default())
        .await
        .expect("store");
    let search = store.create_search(&spec(5, 2)).await.expect("create");
    let mut first = [start_worker(&url, "a"), start_worker(&url, "b")];
    wait_for(
        &store,
        search,
        "one trial done and one running",
        Duration::from_secs(120),
        |t, _| {
            t.iter().any(|t| t.state == TrialState::Succeeded)
                && t.iter().any(|t| t.state == TrialState::Running)
        },
    )
    .await;
    for w in &first {
        sigterm(w);
    }
    for w in &mut first {
        assert!(
            wait_exit(w, Duration::from_secs(60)).success(),
            "a clean exit on SIGTERM"
        );
    }
    let trials = store.trials(search).await.expect("trials");
    assert!(
        trials.iter().all(|t| t.state != TrialState::Running),
        "running trials were handed back: {trials:#?}"
    );
    assert!(
        trials
            .iter()
            .filter(|t| t.state == TrialState::Pending)
            .all(|t| t.attempt == 0),
        "no attempt used by a hand-back"
    );
    assert_eq!(
        store.search(search).await.expect("search").status,
        SearchStatus::Running
    );
    let mut second = [start_worker(&url, "c"), start_worker(&url, "d")];
    wait_for(
        &store,
        search,
        "the search to finish",
        Duration::from_secs(240),
        |_, s| s == SearchStatus::Finished,
    )
    .await;
    for w in &second {
        sigterm(w);
    }
    for w in &mut second {
        assert!(wait_exit(w, Duration::from_secs(30)).success());
    }
    let trials = store.trials(search).await.expect("trials");
    assert_eq!(trials.len(), 5);
    assert!(
        trials
            .iter()
            .all(|t| t.state == TrialState::Succeeded && t.attempt == 1),
        "{trials:#?}"
    );
}

/// GET `url` without treating 4xx/5xx as errors: status and JSON body.
fn get_json(url: &str) -> Option<(u16, serde_json::Value)> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(5)))
        .build()
        .into();
    let mut response = agent.get(url).call().ok()?;
    let status = response.status().as_u16();
    let body = response.body_mut().read_to_string().ok()?;
    Some((status, serde_json::from_str(&body).ok()?))
}

/// `nas worker --health-addr` serves its agents' state for probes: alive
/// and ready while it polls the queue.
#[test]
fn a_worker_serves_its_health_for_probes() {
    let url = testing::fresh_sqlite_url();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("a free port")
        .local_addr()
        .expect("addr")
        .port();
    let log = std::env::temp_dir().join(format!("nas-worker-health-{}.log", std::process::id()));
    let mut child = Command::new(env!("CARGO_BIN_EXE_nas"))
        .args([
            "worker",
            "--database-url",
            &url,
            "--calibrate",
            "false",
            "--poll-secs",
            "0.2",
            "--health-addr",
            &format!("127.0.0.1:{port}"),
        ])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("starts nas worker");
    let start = Instant::now();
    let (status, report) = loop {
        match get_json(&format!("http://127.0.0.1:{port}/healthz")) {
            Some((200, report)) if report["ready"] == true => break (200, report),
            _ if start.elapsed() > Duration::from_secs(60) => {
                let _ = child.kill();
                panic!(
                    "no healthy answer in 60 s: {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            _ => std::thread::sleep(Duration::from_millis(100)),
        }
    };
    assert_eq!(status, 200);
    assert_eq!(report["status"], "ok");
    let agents = report["agents"].as_array().expect("agents");
    assert_eq!(agents.len(), 1, "{report}");
    assert_eq!(agents[0]["state"], "idle", "{report}");
    assert!(agents[0]["current_trial"].is_null());
    let (ready, _) = get_json(&format!("http://127.0.0.1:{port}/readyz")).expect("readyz");
    assert_eq!(ready, 200);
    sigterm(&child);
    assert!(wait_exit(&mut child, Duration::from_secs(30)).success());
}

/// The endpoint says 503 once an agent that should poll or heartbeat has
/// been silent for longer than the stale window (a hung worker), so the
/// supervisor restarts it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_agent_fails_the_liveness_probe() {
    use worker::health::{AgentState, Health};
    let health = Health::new(Duration::from_millis(200));
    health.set_state("w-0", AgentState::Running, Some(42));
    health.heartbeat("w-0");
    let (_stop, stop_rx) = tokio::sync::watch::channel(false);
    let addr = server::commands::worker_health::serve(
        "127.0.0.1:0".parse().expect("addr"),
        health.clone(),
        stop_rx,
    )
    .await
    .expect("serves");
    let get = move |path: &'static str| {
        tokio::task::spawn_blocking(move || get_json(&format!("http://{addr}{path}")))
    };
    let (status, report) = get("/healthz").await.expect("task").expect("answers");
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["agents"][0]["current_trial"], 42);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (status, report) = get("/healthz").await.expect("task").expect("answers");
    assert_eq!(status, 503, "{report}");
    assert_eq!(report["status"], "stalled");
    assert_eq!(report["agents"][0]["stalled"], true);
    let (status, _) = get("/readyz").await.expect("task").expect("answers");
    assert_eq!(status, 503, "the database has not answered it either");
}

/// A throwaway PostgreSQL cluster of this test's own (`initdb`, `pg_ctl`)
/// on a free port, to stop and start under running workers. As root, the
/// server's tools run as the `postgres` user, which PostgreSQL requires.
struct Cluster {
    dir: PathBuf,
    port: u16,
}

impl Cluster {
    fn bin(tool: &str) -> PathBuf {
        let versions = std::fs::read_dir("/usr/lib/postgresql").expect("PostgreSQL's tools");
        let mut bins: Vec<PathBuf> = versions
            .filter_map(|v| Some(v.ok()?.path().join("bin").join(tool)))
            .filter(|p| p.exists())
            .collect();
        bins.sort();
        bins.pop().expect("initdb and pg_ctl")
    }

    fn run(tool: &str, args: &[&str]) {
        let root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout.starts_with(b"0"));
        let tool = Self::bin(tool);
        let mut command = if root {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&tool);
            c
        } else {
            Command::new(&tool)
        };
        let out = command.args(args).output().expect("runs");
        assert!(
            out.status.success(),
            "{}: {}{}",
            tool.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("nas-pg-restart-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("cluster dir");
        // The postgres user must own it (a no-op for a non-root user).
        let _ = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(&dir)
            .status();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("a free port")
            .local_addr()
            .expect("addr")
            .port();
        let data = dir.join("data");
        Self::run(
            "initdb",
            &[
                "-D",
                &data.display().to_string(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
            ],
        );
        let cluster = Self { dir, port };
        cluster.start();
        cluster
    }

    fn start(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.display()
        );
        Self::run(
            "pg_ctl",
            &[
                "-D",
                &self.dir.join("data").display().to_string(),
                "-l",
                &self.dir.join("log").display().to_string(),
                "-o",
                &options,
                "-w",
                "start",
            ],
        );
    }

    fn stop(&self) {
        Self::run(
            "pg_ctl",
            &[
                "-D",
                &self.dir.join("data").display().to_string(),
                "-m",
                "fast",
                "-w",
                "stop",
            ],
        );
    }

    fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let data = self.dir.join("data");
        if data.join("postmaster.pid").exists() {
            let _ = Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(Self::bin("pg_ctl"))
                .args(["-D", &data.display().to_string(), "-m", "immediate", "stop"])
                .status();
            let _ = Command::new(Self::bin("pg_ctl"))
                .args(["-D", &data.display().to_string(), "-m", "immediate", "stop"])
                .status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// PostgreSQL restarts while two workers train: every trial still ends
/// exactly once, with its weights, and the search finishes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_restart_mid_search_loses_and_doubles_nothing() {
    let cluster = Cluster::new();
    let admin = sqlx::PgPool::connect(&cluster.url("postgres"))
        .await
        .expect("the cluster answers");
    sqlx::query("CREATE DATABASE nas")
        .execute(&admin)
        .await
        .expect("database");
    admin.close().await;
    let url = cluster.url("nas");
    let store = Store::connect(&url, QueueConfig::default())
        .await
        .expect("store");
    let search = store.create_search(&spec(4, 2)).await.expect("create");
    let mut workers = [start_worker(&url, "pg-a"), start_worker(&url, "pg-b")];
    wait_for(
        &store,
        search,
        "two trials training",
        Duration::from_secs(180),
        |t, _| {
            t.iter()
                .filter(|t| t.state == TrialState::Running && t.progress.is_some())
                .count()
                == 2
        },
    )
    .await;
    cluster.stop();
    tokio::time::sleep(Duration::from_secs(4)).await;
    cluster.start();
    wait_for(
        &store,
        search,
        "the search to finish after the restart",
        Duration::from_secs(300),
        |_, s| s == SearchStatus::Finished,
    )
    .await;
    for w in &workers {
        sigterm(w);
    }
    for w in &mut workers {
        assert!(wait_exit(w, Duration::from_secs(60)).success());
    }
    let trials = store.trials(search).await.expect("trials");
    assert_eq!(trials.len(), 4, "every trial accounted for");
    let pool = sqlx::PgPool::connect(&url).await.expect("connect");
    for t in &trials {
        assert_eq!(t.state, TrialState::Succeeded, "{t:#?}");
        let weights: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM artifacts WHERE trial_id = $1 AND kind = 'weights'",
        )
        .bind(t.id)
        .fetch_one(&pool)
        .await
        .expect("count");
        assert_eq!(weights, 1, "trial {} has its weights", t.id);
        // Its last attempt trained every epoch once: no epoch recorded twice.
        let epochs: Vec<i64> = store
            .epoch_metrics(t.id, t.attempt)
            .await
            .expect("metrics")
            .iter()
            .map(|m| m.epoch)
            .collect();
        assert_eq!(epochs, [1, 2, 3], "trial {}", t.id);
    }
    // Each trial ended once: one result, and no more completions than trials.
    let results: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM trials WHERE search_id = $1 AND result IS NOT NULL",
    )
    .bind(search)
    .fetch_one(&pool)
    .await
    .expect("count");
    assert_eq!(results, 4);
    pool.close().await;
    store.close().await;
}
