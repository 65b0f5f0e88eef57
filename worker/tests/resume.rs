//! Resumable training: a run stopped at an epoch, checkpointed, and resumed
//! (in a new process's worth of state: a fresh network and session) ends
//! bit for bit where a run trained straight through does; a checkpoint is
//! never loaded into another architecture or under another recipe.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::OnceLock;

use search::recipe::Schedule;
use search::{Architecture, InputShape};
use worker::data::{load_idx_dir, Dataset, Split};
use worker::net::Network;
use worker::train::checkpoint::{self, CheckpointError};
use worker::train::{AugmentationConfig, OptimizerKind, Session, TrainConfig, TrainData};

fn fashion() -> &'static Split {
    static DATA: OnceLock<Split> = OnceLock::new();
    DATA.get_or_init(|| {
        let dir: PathBuf =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/datasets/fashion-mnist");
        load_idx_dir(&dir).expect("the shared Fashion-MNIST loads")
    })
}

fn subset(range: std::ops::Range<usize>) -> Dataset {
    fashion().train.subset(&range.collect::<Vec<_>>())
}

/// A small network with batch norm, a residual block and dropout: every
/// piece of state a checkpoint must carry.
fn small_net() -> Architecture {
    Architecture::from_json(
        r#"{"version": 1, "name": "resume", "input": [1, 28, 28], "classes": 10, "layers": [
            {"kind": "conv", "filters": 8, "kernel": 3, "padding": 1, "batch_norm": true, "activation": "relu"},
            {"kind": "pool", "op": "max", "kernel": 2},
            {"kind": "residual", "body": [
                {"kind": "conv", "filters": 8, "kernel": 3, "padding": 1, "batch_norm": true, "activation": "relu"}
            ]},
            {"kind": "pool", "op": "max", "kernel": 2},
            {"kind": "flatten"},
            {"kind": "dropout", "rate": 0.3},
            {"kind": "dense", "units": 10}
        ]}"#,
    )
    .expect("valid")
}

/// The largest difference between two networks' values.
fn max_difference(a: &Network, b: &Network) -> f32 {
    let values =
        |n: &Network| -> Vec<f32> { n.params.iter().flat_map(|p| p.data.clone()).collect() };
    values(a)
        .iter()
        .zip(values(b))
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn config(optimizer: OptimizerKind, schedule: Schedule) -> TrainConfig {
    TrainConfig {
        epochs: 3,
        batch_size: 32,
        optimizer,
        learning_rate: optimizer.default_lr(),
        schedule,
        seed: 7,
        max_train_samples: Some(192),
        augmentation: AugmentationConfig {
            crop_padding: 2,
            horizontal_flip: true,
        },
        label_smoothing: 0.1,
        threads: 2,
        ..TrainConfig::default()
    }
}

/// Every value of the network: parameters, then batch-norm statistics.
fn state(net: &Network) -> Vec<u32> {
    let mut out: Vec<u32> = net
        .params
        .iter()
        .flat_map(|p| p.data.iter().map(|v| v.to_bits()))
        .collect();
    for (_, s) in &net.stats {
        out.extend(s.mean.iter().chain(&s.var).map(|v| v.to_bits()));
    }
    out
}

#[test]
fn resuming_at_each_epoch_matches_training_straight_through_bit_for_bit() {
    let (train_set, val_set) = (subset(0..256), subset(256..384));
    let data = TrainData {
        train: &train_set,
        validation: Some(&val_set),
        test: None,
    };
    let arch = small_net();
    let never = AtomicBool::new(false);
    for threads in [None, Some([2, 1, 2])] {
        for (optimizer, schedule) in [
            (
                OptimizerKind::adam(),
                Schedule::Cosine { warmup_epochs: 1.0 },
            ),
            (
                OptimizerKind::Sgd {
                    momentum: 0.9,
                    nesterov: true,
                    weight_decay: 5e-4,
                },
                Schedule::OneCycle { pct_start: 0.3 },
            ),
            (OptimizerKind::adamw(), Schedule::Constant),
        ] {
            let cfg = config(optimizer, schedule);
            // Straight through.
            let mut straight =
                Session::start(Network::new(&arch, 3).expect("net"), data, &cfg).expect("starts");
            let mut straight_val = Vec::new();
            while let Some(e) = straight.train_epoch(&never) {
                straight_val.push(e.val_accuracy);
            }
            assert_eq!(straight.epochs_done(), 3);
            let (straight_net, _) = straight.finish();

            // Rung by rung: stop after epoch 1, then 2, then 3, each time from a
            // checkpoint into a freshly built network.
            let mut bytes: Option<Vec<u8>> = None;
            let mut resumed_val = Vec::new();
            let mut last_net = None;
            for stop in 1..=3 {
                let rung = TrainConfig {
                    stop_at_epoch: Some(stop),
                    threads: threads.map_or(2, |t| t[stop - 1]),
                    ..cfg.clone()
                };
                let mut net = Network::new(&arch, 3).expect("net");
                let mut session = match &bytes {
                    None => Session::start(net, data, &rung).expect("starts"),
                    Some(b) => {
                        let from = checkpoint::load(&mut net, b, &rung).expect("loads");
                        assert_eq!(from.epoch, stop - 1);
                        Session::resume(net, data, &rung, from).expect("resumes")
                    }
                };
                while let Some(e) = session.train_epoch(&never) {
                    resumed_val.push(e.val_accuracy);
                }
                assert_eq!(session.epochs_done(), stop);
                let b = checkpoint::to_bytes(&session).expect("checkpoint");
                assert_eq!(checkpoint::epochs_of(&b).expect("reads"), stop);
                bytes = Some(b);
                last_net = Some(session.finish().0);
            }
            let resumed_net = last_net.expect("ran");
            // Another worker with another thread count resumes it the same:
            // every sum runs in an order that does not depend on the threads.
            assert_eq!(
                resumed_val, straight_val,
                "{optimizer:?} {schedule:?} {threads:?}"
            );
            assert!(
            state(&resumed_net) == state(&straight_net),
            "{optimizer:?} {schedule:?} {threads:?}: resumed weights differ from straight-through ones by up to {:e}",
            max_difference(&resumed_net, &straight_net)
        );
        }
    }
}

#[test]
fn a_checkpoint_loads_only_into_its_architecture_under_its_recipe() {
    let train_set = subset(0..64);
    let data = TrainData {
        train: &train_set,
        validation: None,
        test: None,
    };
    let never = AtomicBool::new(false);
    let cfg = TrainConfig {
        stop_at_epoch: Some(1),
        ..config(OptimizerKind::adam(), Schedule::Constant)
    };
    let mut session =
        Session::start(Network::new(&small_net(), 1).expect("net"), data, &cfg).expect("starts");
    while session.train_epoch(&never).is_some() {}
    let bytes = checkpoint::to_bytes(&session).expect("checkpoint");

    let other = search::zoo::build("lenet5", InputShape::new(1, 28, 28), 10, 1.0).expect("lenet");
    let mut wrong_net = Network::new(&other, 1).expect("net");
    let err = checkpoint::load(&mut wrong_net, &bytes, &cfg).expect_err("another architecture");
    assert!(matches!(err, CheckpointError::Weights(_)), "{err}");
    assert!(err.to_string().contains("architecture"), "{err}");

    let mut net = Network::new(&small_net(), 1).expect("net");
    let sgd = TrainConfig {
        optimizer: OptimizerKind::sgd(),
        ..cfg.clone()
    };
    let err = checkpoint::load(&mut net, &bytes, &sgd).expect_err("another recipe");
    assert!(matches!(err, CheckpointError::Recipe { .. }), "{err}");

    let err = checkpoint::load(&mut net, &bytes[..bytes.len() / 2], &cfg).expect_err("truncated");
    assert!(err.to_string().starts_with("checkpoint:"), "{err}");
    // The weights file of a trained network is not a checkpoint.
    let weights = worker::weights::to_bytes(&session.trainer().net).expect("weights");
    let err = checkpoint::load(&mut net, &weights, &cfg).expect_err("weights, not a checkpoint");
    assert!(err.to_string().contains("nas-checkpoint-1"), "{err}");
}
