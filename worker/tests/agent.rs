//! End to end without HTTP: a small real search (micro space, a thousand
//! Fashion-MNIST images, evolution, 8 trials) runs to completion with two
//! workers, on SQLite and on PostgreSQL, and gives a ranked result.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use search::SearchSpec;
use store::{testing, QueueConfig, SearchStatus, Store, TrialState, WorkerInfo};
use tokio::sync::watch;
use worker::agent::{Agent, AgentConfig};
use worker::host::HostGate;
use worker::latency::{LatencyConfig, References};

fn agent_config(id: &str) -> AgentConfig {
    AgentConfig {
        worker: WorkerInfo {
            id: id.into(),
            host: "test".into(),
            labels: vec!["cpu".into()],
            threads: 1,
            device: "test".into(),
            profile: None,
        },
        threads: 1,
        data_dir: Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/datasets"),
        heartbeat: Duration::from_millis(200),
        poll: Duration::from_millis(100),
        latency: LatencyConfig::quick(),
        final_latency: LatencyConfig::quick(),
        gate: None,
        references: None,
        max_memory: None,
        cores: None,
        predictor: None,
        health: None,
    }
}

const SPEC: &str = r#"{
    "name": "e2e", "dataset": "fashion-mnist", "space": "micro",
    "strategy": {"kind": "evolution", "population": 4, "sample": 2},
    "budget": {"max_trials": 8, "parallelism": 2, "epochs": 2, "max_train_samples": 4000},
    "training": {"batch_size": 32, "val_fraction": 0.01}, "seed": 5
}"#;

async fn small_search(url: String) {
    let queue = QueueConfig {
        lease: Duration::from_secs(5),
        ..QueueConfig::default()
    };
    let store = Store::connect(&url, queue).await.expect("store");
    let spec: SearchSpec = serde_json::from_str(SPEC).expect("spec");
    let id = store.create_search(&spec).await.expect("create");
    let (stop, stopped) = watch::channel(false);
    // Both agents measure with the trial protocol behind one host gate, as
    // `nas up --workers 2` does, relative to one shared reference basis.
    let references = Arc::new(References::in_memory().with_protocol(LatencyConfig::quick()));
    let lock = std::env::temp_dir()
        .join(format!("nas-agent-test-{}-{id}", std::process::id()))
        .join("latency.lock");
    let agents: Vec<_> = ["w1", "w2"]
        .into_iter()
        .map(|w| {
            let config = AgentConfig {
                latency: LatencyConfig::default(),
                gate: Some(Arc::new(HostGate::open(&lock).expect("gate"))),
                references: Some(references.clone()),
                ..agent_config(w)
            };
            tokio::spawn(Agent::new(store.clone(), config).run(stopped.clone()))
        })
        .collect();
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
    assert_eq!(trials.len(), 8);
    for t in &trials {
        assert_eq!((t.state, t.attempt), (TrialState::Succeeded, 1), "{t:?}");
        let result = t.result.as_ref().expect("a result");
        let l = result.latency_ms;
        assert!(l.p50 > 0.0, "{result:?}");
        assert!(
            l.ci_low.is_some_and(|low| low <= l.p50) && l.ci_high.is_some_and(|high| high >= l.p50),
            "the median comes with its interval: {l:?}"
        );
        assert!(l.runs.is_some_and(|r| r >= 50), "{l:?}");
        // On the relative basis: the ratio times the one basis both agents
        // share, with the raw figure beside it.
        let basis = references.all()[0].p50_ms;
        assert_eq!(l.basis_p50, Some(basis), "{l:?}");
        let ratio = l.ratio.expect("a ratio");
        assert!((l.p50 - ratio * basis).abs() < 1e-9, "{l:?}");
        assert!(l.raw_p50.is_some_and(|raw| raw > 0.0), "{l:?}");
        assert_eq!(l.runtime, None, "measured in our engine");
        assert!(result.paused_seconds.is_some(), "{result:?}");
        assert_eq!(result.epochs, Some(2), "{result:?}");
        assert!(result.val_accuracy.is_some_and(|a| a > 0.0), "{result:?}");
        assert_eq!(result.reward, t.reward, "{result:?}");
        assert_eq!(
            store.epoch_metrics(t.id, 1).await.expect("metrics").len(),
            2
        );
        assert!(store
            .weights(t.id)
            .await
            .expect("weights")
            .is_some_and(|w| w.len() > 100));
    }
    assert!(
        trials[4..].iter().all(|t| t.lineage.parent_index.is_some()),
        "evolution mutates after the population is full"
    );
    let mut rewards: Vec<f64> = trials.iter().filter_map(|t| t.reward).collect();
    rewards.sort_by(|a, b| b.total_cmp(a));
    // 4,000 images for two epochs: well above chance (10%) for the best trial.
    assert!(rewards[0] > 0.3, "best reward {rewards:?}");
    assert_eq!(store.search(id).await.expect("search").proposed, 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_small_search_completes_on_sqlite_with_two_workers() {
    small_search(testing::fresh_sqlite_url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_small_search_completes_on_postgres_with_two_workers() {
    small_search(testing::fresh_postgres_url().await.expect("postgres")).await;
}

/// A hard latency limit no network meets: every trial is measured and
/// rejected without training (no epochs, no weights), and the search ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn candidates_over_the_hard_latency_limit_are_rejected_untrained() {
    let store = Store::connect(&testing::fresh_sqlite_url(), QueueConfig::default())
        .await
        .expect("store");
    let spec: SearchSpec = serde_json::from_str(
        r#"{"name": "fast only", "dataset": "fashion-mnist", "strategy": {"kind": "random"},
            "objective": {"latency": {"target_ms": 1.0, "max_ms": 0.001}},
            "budget": {"max_trials": 3, "parallelism": 3, "max_train_samples": 1000}}"#,
    )
    .expect("spec");
    let id = store.create_search(&spec).await.expect("create");
    let (stop, stopped) = watch::channel(false);
    let agent = tokio::spawn(Agent::new(store.clone(), agent_config("w")).run(stopped));
    let start = Instant::now();
    while store.search(id).await.expect("search").status == SearchStatus::Running {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "the search did not finish"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.send(true).expect("stop");
    agent.await.expect("task").expect("agent");
    for t in store.trials(id).await.expect("trials") {
        assert_eq!(t.state, TrialState::Rejected, "{t:?}");
        let result = t.result.as_ref().expect("a result");
        assert!(result.latency_ms.p50 > 0.000001, "{result:?}");
        assert_eq!(result.reward, None, "{result:?}");
        assert!(result.reason.is_some(), "{result:?}");
        assert!(
            store
                .epoch_metrics(t.id, 1)
                .await
                .expect("metrics")
                .is_empty(),
            "never trained"
        );
        assert!(store.weights(t.id).await.expect("weights").is_none());
    }
}

/// A worker with less memory than a network needs fails its trials at once,
/// saying how much they needed, instead of being killed mid-allocation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_network_over_the_workers_memory_fails_before_it_is_built() {
    let store = Store::connect(&testing::fresh_sqlite_url(), QueueConfig::default())
        .await
        .expect("store");
    let spec: SearchSpec = serde_json::from_str(
        r#"{"name": "too big here", "dataset": "fashion-mnist", "strategy": {"kind": "random"},
            "budget": {"max_trials": 2, "parallelism": 2, "max_train_samples": 1000}}"#,
    )
    .expect("spec");
    let id = store.create_search(&spec).await.expect("create");
    let (stop, stopped) = watch::channel(false);
    let config = AgentConfig {
        max_memory: Some(64 << 10),
        ..agent_config("small")
    };
    let agent = tokio::spawn(Agent::new(store.clone(), config).run(stopped));
    let start = Instant::now();
    while store.search(id).await.expect("search").status == SearchStatus::Running {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the search did not finish"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.send(true).expect("stop");
    agent.await.expect("task").expect("agent");
    for t in store.trials(id).await.expect("trials") {
        assert_eq!((t.state, t.attempt), (TrialState::Failed, 1), "{t:?}");
        let error = &t.errors[0].error;
        assert!(
            error.contains("needs about") && error.contains("this worker allows 64.0 KiB"),
            "{error}"
        );
    }
}

/// The dataset host is down: the trial is handed back without using an
/// attempt (no error recorded against it) and the worker backs off instead
/// of burning the trial's attempts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dataset_outage_hands_the_trial_back_without_using_an_attempt() {
    let host = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = host.local_addr().expect("address");
    let tries = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    {
        let tries = tries.clone();
        std::thread::spawn(move || {
            for connection in host.incoming() {
                tries.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                drop(connection);
            }
        });
    }
    std::env::set_var(worker::data::MIRROR_ENV, format!("http://{address}"));
    let store = Store::connect(&testing::fresh_sqlite_url(), QueueConfig::default())
        .await
        .expect("store");
    let spec: SearchSpec = serde_json::from_str(
        r#"{"name": "no data", "dataset": "cifar10", "budget": {"max_trials": 1, "parallelism": 1}}"#,
    )
    .expect("spec");
    let id = store.create_search(&spec).await.expect("create");
    let empty = std::env::temp_dir().join(format!("nas-empty-data-{}", std::process::id()));
    let config = AgentConfig {
        data_dir: empty,
        ..agent_config("offline")
    };
    let (stop, stopped) = watch::channel(false);
    let agent = tokio::spawn(Agent::new(store.clone(), config).run(stopped));
    let start = Instant::now();
    while tries.load(std::sync::atomic::Ordering::SeqCst) == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no download was tried"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Give the worker time to hand the trial back, and to stay away.
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.send(true).expect("stop");
    agent.await.expect("task").expect("agent");
    let trials = store.trials(id).await.expect("trials");
    assert_eq!(
        (trials[0].state, trials[0].attempt, trials[0].errors.len()),
        (TrialState::Pending, 0, 0),
        "{:?}",
        trials[0]
    );
    assert_eq!(
        store.search(id).await.expect("search").status,
        SearchStatus::Running
    );
}
