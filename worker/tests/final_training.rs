//! Multi-fidelity search and final training end to end with a real worker
//! on real data (the MNIST subset, SQLite): trials go through ASHA's rungs
//! resuming from checkpoints, the best architecture is trained again from
//! scratch and tested once, and the test set never steers the search: the
//! same search with every test label changed makes exactly the same
//! decisions, while its final model's test accuracy collapses. Two agents
//! share the cores: search trials train on one thread each, and the final
//! model, claimed while the other agent is idle, on both. The same
//! images uploaded (the store's canonical form, fetched by the workers
//! into an empty data dir, once for both agents) make exactly the same
//! decisions as the built-in dataset: the two paths read the same data
//! the same way.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use search::SearchSpec;
use store::{testing, QueueConfig, SearchStatus, Store, TrialPhase, TrialState, WorkerInfo};
use tokio::sync::watch;
use worker::agent::{Agent, AgentConfig};
use worker::data::import::CanonicalDataset;
use worker::host::CoreShare;
use worker::latency::LatencyConfig;

const SPEC: &str = r#"{
    "name": "asha + final", "dataset": "mnist", "space": "micro", "strategy": {"kind": "random"},
    "scheduler": {"kind": "asha", "min_epochs": 1, "max_epochs": 3, "eta": 3},
    "budget": {"max_trials": 4, "parallelism": 1, "max_train_samples": 1500},
    "training": {"batch_size": 64, "learning_rate": 0.005}, "seed": 11,
    "final": {"top_k": 1, "epochs": 2}
}"#;

fn shared_mnist() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/datasets/mnist")
}

/// A data folder whose MNIST has the shared training files and test
/// labels shifted by `shift` classes (0: unchanged).
fn data_dir(tag: &str, shift: u8) -> PathBuf {
    let root = std::env::temp_dir().join(format!("nas-final-{tag}-{}", std::process::id()));
    let dir = root.join("mnist");
    std::fs::create_dir_all(&dir).expect("data dir");
    for name in [
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz",
    ] {
        std::fs::copy(shared_mnist().join(name), dir.join(name)).expect("copy");
    }
    let mut labels = Vec::new();
    flate2::read::GzDecoder::new(
        std::fs::File::open(shared_mnist().join("t10k-labels-idx1-ubyte.gz")).expect("labels"),
    )
    .read_to_end(&mut labels)
    .expect("gunzip");
    for label in &mut labels[8..] {
        *label = (*label + shift) % 10;
    }
    let out = std::fs::File::create(dir.join("t10k-labels-idx1-ubyte.gz")).expect("create");
    let mut gz = flate2::write::GzEncoder::new(out, flate2::Compression::fast());
    gz.write_all(&labels).expect("write");
    gz.finish().expect("finish");
    root
}

fn agent_config(data_dir: PathBuf) -> AgentConfig {
    AgentConfig {
        worker: WorkerInfo {
            id: "w".into(),
            host: "test".into(),
            labels: vec!["cpu".into()],
            threads: 1,
            device: "test".into(),
            profile: None,
        },
        threads: 1,
        data_dir,
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

/// What the search decided, trial by trial: state, rung, reward bits.
type Decisions = Vec<(i64, TrialState, Option<i64>, Option<u64>)>;

/// Where a search's dataset comes from.
enum Source {
    /// The built-in `mnist` read from this data folder.
    BuiltIn(PathBuf),
    /// The MNIST in this data folder uploaded to the store; the workers
    /// start from an empty data folder.
    Uploaded(PathBuf),
}

/// Runs the search on its dataset to its end; returns its decisions and
/// the final model's test accuracy.
async fn run(source: Source) -> (Decisions, f64) {
    let store = Store::connect(&testing::fresh_sqlite_url(), QueueConfig::default())
        .await
        .expect("store");
    let mut spec: SearchSpec = serde_json::from_str(SPEC).expect("spec");
    let data_dir = match source {
        Source::BuiltIn(dir) => dir,
        Source::Uploaded(dir) => {
            let split = worker::data::load_idx_dir(&dir.join("mnist")).expect("mnist");
            let dataset = CanonicalDataset {
                class_names: (0..10).map(|c| c.to_string()).collect(),
                split,
            };
            let stored = store
                .put_dataset(
                    "digits",
                    &dataset.summary("idx", true, 0),
                    &dataset.to_bytes(),
                )
                .await
                .expect("upload");
            spec.dataset = "digits".into();
            let empty = dir.with_extension("workers");
            let _ = std::fs::remove_dir_all(&empty);
            let id = store.create_search(&spec).await.expect("create");
            let recorded = store.search(id).await.expect("search").spec;
            assert_eq!(
                recorded.dataset_id.as_deref(),
                Some(stored.dataset.id.as_str()),
                "the search records the content id"
            );
            return finish(store, id, empty).await;
        }
    };
    let id = store.create_search(&spec).await.expect("create");
    finish(store, id, data_dir).await
}

/// Runs search `id` with two agents reading `data_dir` to its end.
async fn finish(store: Store, id: i64, data_dir: PathBuf) -> (Decisions, f64) {
    let (stop, stopped) = watch::channel(false);
    let cores = CoreShare::new(2, 1, true);
    let agents: Vec<_> = ["w0", "w1"]
        .into_iter()
        .map(|name| {
            let mut config = agent_config(data_dir.clone());
            config.worker.id = name.into();
            config.cores = Some(cores.clone());
            tokio::spawn(Agent::new(store.clone(), config).run(stopped.clone()))
        })
        .collect();
    let start = Instant::now();
    while store.search(id).await.expect("search").status != SearchStatus::Finished {
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "the search did not finish: {:#?}",
            store.trials(id).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.send(true).expect("stop");
    for agent in agents {
        agent.await.expect("task").expect("agent");
    }
    let mut decisions = Vec::new();
    for t in store.trials(id).await.expect("trials") {
        if t.phase == TrialPhase::Final {
            continue;
        }
        let result = t.result.as_ref().expect("a result");
        assert_eq!(
            result.test_accuracy, None,
            "a search trial never sees the test set"
        );
        assert_eq!(result.train_threads, Some(1), "one agent's share");
        assert!(
            matches!(t.state, TrialState::Succeeded | TrialState::Stopped),
            "{t:#?}"
        );
        // Trained through its rungs: its curve has one row per epoch.
        let curve = store.epoch_metrics(t.id, t.attempt).await.expect("curve");
        assert_eq!(curve.len() as i64, t.epochs_done, "{t:#?}");
        assert_eq!(store.checkpoint(t.id).await.expect("checkpoint"), None);
        decisions.push((t.index, t.state, t.rung, t.reward.map(f64::to_bits)));
    }
    assert!(
        decisions.iter().any(|d| d.2 == Some(1)),
        "some trial went on to the second rung: {decisions:?}"
    );
    let finals = store.final_models(id).await.expect("finals");
    assert_eq!(finals.len(), 1, "{finals:#?}");
    let model = &finals[0];
    assert_eq!(model.state, TrialState::Succeeded, "{model:#?}");
    let result = model.result.as_ref().expect("result");
    assert_eq!(result.epochs, Some(2));
    assert_eq!(
        result.train_threads,
        Some(2),
        "the final model, the only work left, trains on both agents' cores"
    );
    assert_eq!(
        result.val_accuracy, None,
        "trained on training + validation data"
    );
    // The final model names its classes: in its result, its weights'
    // metadata and its ONNX export.
    let names: Vec<String> = (0..10).map(|c| c.to_string()).collect();
    assert_eq!(result.class_names.as_ref(), Some(&names));
    let weights = store
        .weights(model.id)
        .await
        .expect("weights")
        .expect("stored");
    let arch =
        search::Architecture::from_json(&store.architecture(model.id).await.expect("architecture"))
            .expect("arch");
    let mut net = worker::net::Network::new(&arch, 0).expect("network");
    worker::weights::load_bytes(&mut net, &weights, Path::new("final.safetensors")).expect("load");
    assert_eq!(net.class_names(), Some(&names[..]));
    let onnx = worker::onnx::to_onnx(&net, &[]).expect("onnx");
    let needle = br#"["0","1","2","3","4","5","6","7","8","9"]"#;
    assert!(
        onnx.windows(needle.len()).any(|w| w == needle),
        "the ONNX metadata holds the class names"
    );
    // The final model is the best-informed search trial: highest rung, then reward.
    let best = decisions
        .iter()
        .max_by(|a, b| {
            (a.2, a.3.map(f64::from_bits))
                .partial_cmp(&(b.2, b.3.map(f64::from_bits)))
                .expect("finite")
        })
        .expect("a trial");
    assert_eq!(model.source_index, Some(best.0));
    (decisions, model.test_accuracy.expect("test accuracy"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_test_set_never_steers_the_search_and_the_final_model_is_tested_on_it() {
    let (decisions, accuracy) = run(Source::BuiltIn(data_dir("true", 0))).await;
    let (shifted_decisions, shifted_accuracy) = run(Source::BuiltIn(data_dir("shifted", 1))).await;
    assert_eq!(
        decisions, shifted_decisions,
        "changing every test label changed a search decision"
    );
    let fetched = worker::uploads::fetches();
    let (uploaded_decisions, uploaded_accuracy) =
        run(Source::Uploaded(data_dir("uploaded", 1))).await;
    assert_eq!(
        decisions, uploaded_decisions,
        "the uploaded copy (with shifted test labels) made other decisions than the built-in dataset"
    );
    assert!(
        uploaded_accuracy < 0.2,
        "the upload's final model is scored on its own (shifted) test labels: {uploaded_accuracy}"
    );
    assert_eq!(
        worker::uploads::fetches() - fetched,
        1,
        "two agents of one machine fetch the dataset once"
    );
    assert!(
        accuracy > 0.5,
        "the final model learnt MNIST (a micro network, 2 epochs): {accuracy}"
    );
    assert!(
        shifted_accuracy < 0.2,
        "the final model is scored on the (shifted) test labels: {shifted_accuracy}"
    );
}
