//! The accuracy bars, on the shared datasets with the full training
//! sets. Minutes each, so `#[ignore]`d; run them with
//! `cargo test --release -p worker --test accuracy -- --ignored --nocapture`.

use std::path::Path;
use std::sync::atomic::AtomicBool;

use search::{Architecture, InputShape};
use worker::data::load_idx_dir;
use worker::net::Network;
use worker::train::{self, OptimizerKind, Schedule, TrainConfig, TrainData};

/// Trains `arch` as `nas train` does (10% validation split, seed 0, Adam at
/// 1e-3, batch 64, constant rate, 2 threads) and returns the test accuracy.
fn test_accuracy(arch: &Architecture, dataset: &str, epochs: usize) -> f64 {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/datasets")
        .join(dataset);
    let split = load_idx_dir(&dir).expect("dataset loads");
    let (train_set, val) = split.train.split_validation(0.1, 0);
    let config = TrainConfig {
        epochs,
        batch_size: 64,
        optimizer: OptimizerKind::adam(),
        learning_rate: 1e-3,
        schedule: Schedule::Constant,
        seed: 0,
        threads: 2,
        ..TrainConfig::default()
    };
    let data = TrainData {
        train: &train_set,
        validation: Some(&val),
        test: Some(&split.test),
    };
    let net = Network::new(arch, 0).expect("builds");
    let (_, result) = train::train(net, data, &config, &AtomicBool::new(false), |e| {
        eprintln!("{e:?}")
    })
    .expect("trains");
    eprintln!(
        "{dataset}: val {:?}, test {:?}, {:.0} img/s",
        result.val_accuracy, result.test_accuracy, result.images_per_second
    );
    result.test_accuracy.expect("tested")
}

#[test]
#[ignore = "minutes: the full Fashion-MNIST training set, 3 epochs"]
fn two_conv_net_reaches_90_percent_on_fashion_mnist_in_3_epochs() {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench/two_conv.json"),
    )
    .expect("read");
    let arch = Architecture::from_json(&text).expect("valid");
    let acc = test_accuracy(&arch, "fashion-mnist", 3);
    assert!(acc >= 0.90, "test accuracy {acc}");
}

#[test]
#[ignore = "a minute: LeNet-5 on the MNIST subset, 10 epochs"]
fn lenet5_reaches_95_percent_on_mnist_in_10_epochs() {
    let arch = search::zoo::build("lenet5", InputShape::new(1, 28, 28), 10, 1.0).expect("zoo");
    let acc = test_accuracy(&arch, "mnist", 10);
    assert!(acc >= 0.95, "test accuracy {acc}");
}
