//! Real training on real data (small slices so CI stays fast): loss falls for
//! every zoo entry, a small net learns Fashion-MNIST, runs are repeatable,
//! divergence and cancellation end cleanly, weights round-trip.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use search::zoo::ZOO;
use search::{Architecture, InputShape};
use worker::data::{fill_batch, load_idx_dir, Augmentation, Dataset, Split};
use worker::net::Network;
use worker::train::{self, OptimizerKind, Schedule, TrainConfig, TrainData, TrainStatus, Trainer};

fn fashion() -> &'static Split {
    static DATA: OnceLock<Split> = OnceLock::new();
    DATA.get_or_init(|| {
        let dir: PathBuf =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/datasets/fashion-mnist");
        load_idx_dir(&dir).expect("the shared Fashion-MNIST loads")
    })
}

fn small(n: usize, offset: usize) -> Dataset {
    fashion()
        .train
        .subset(&(offset..offset + n).collect::<Vec<_>>())
}

fn two_conv() -> Architecture {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench/two_conv.json"),
    )
    .expect("bench/two_conv.json");
    Architecture::from_json(&text).expect("valid")
}

/// Every zoo entry at 28x28x1 with a small width: eight Adam steps on one
/// real batch lower its loss (the mean of the last three steps is below the
/// mean of the first three; dropout makes single steps noisy).
#[test]
fn every_zoo_entry_trains_with_falling_loss() {
    let data = small(16, 0);
    let stats = data.channel_stats();
    let (mut images, mut labels) = (Vec::new(), Vec::new());
    let indices: Vec<usize> = (0..16).collect();
    let mut rng = search::seeded_rng(0);
    let mut failures = Vec::new();
    for entry in ZOO {
        let arch = entry
            .build(InputShape::new(1, 28, 28), 10, 0.25)
            .expect("builds");
        let mut trainer = Trainer::new(Network::new(&arch, 1).expect("net"), OptimizerKind::adam());
        let mut losses = Vec::new();
        let start = std::time::Instant::now();
        for _ in 0..8 {
            fill_batch(
                &data,
                &indices,
                &stats,
                Augmentation::default(),
                &mut rng,
                &mut images,
                &mut labels,
            );
            losses.push(
                trainer
                    .step(std::mem::take(&mut images), &labels, 2e-3)
                    .loss,
            );
        }
        let first = losses[..3].iter().sum::<f32>() / 3.0;
        let last = losses[5..].iter().sum::<f32>() / 3.0;
        eprintln!(
            "{:>12}: {first:.3} -> {last:.3} in {:.1}s",
            entry.name,
            start.elapsed().as_secs_f64()
        );
        if !(losses.iter().all(|l| l.is_finite()) && last < first - 0.01) {
            failures.push(format!("{}: {losses:?}", entry.name));
        }
    }
    assert!(failures.is_empty(), "loss did not fall: {failures:#?}");
}

fn config(epochs: usize) -> TrainConfig {
    TrainConfig {
        epochs,
        batch_size: 32,
        threads: 2,
        seed: 3,
        ..TrainConfig::default()
    }
}

#[test]
fn a_small_net_learns_fashion_mnist_and_reports_every_epoch() {
    let (train_set, val) = (small(3000, 0), small(1000, 10_000));
    let test = fashion().test.take(1000);
    let net = Network::new(&two_conv(), 3).expect("net");
    let mut seen = Vec::new();
    let data = TrainData {
        train: &train_set,
        validation: Some(&val),
        test: Some(&test),
    };
    let (_, result) = train::train(net, data, &config(2), &AtomicBool::new(false), |e| {
        seen.push(e.clone())
    })
    .expect("trains");
    assert_eq!(result.status, TrainStatus::Completed);
    assert_eq!(seen.len(), 2);
    assert_eq!(seen, result.epochs);
    assert!(seen[1].train_loss < seen[0].train_loss, "{seen:?}");
    assert_eq!(result.images, 6000);
    // Chance is 10%; 3,000 images for two epochs give about 80%.
    let val_acc = result.val_accuracy.expect("validated");
    let test_acc = result.test_accuracy.expect("tested");
    assert!(
        val_acc > 0.7 && test_acc > 0.7,
        "val {val_acc}, test {test_acc}"
    );
    assert!(result.images_per_second > 0.0);
}

#[test]
fn the_same_seed_gives_the_same_run() {
    let train_set = small(256, 0);
    let arch =
        search::zoo::build("fashion_cnn", InputShape::new(1, 28, 28), 10, 0.25).expect("zoo");
    let run = || {
        let net = Network::new(&arch, 9).expect("net");
        let data = TrainData {
            train: &train_set,
            validation: Some(&train_set),
            test: None,
        };
        let (net, result) =
            train::train(net, data, &config(1), &AtomicBool::new(false), |_| {}).expect("trains");
        (net.params, result.epochs[0].train_loss, result.val_accuracy)
    };
    assert_eq!(run(), run());
}

#[test]
fn budgets_cap_samples_and_time() {
    let train_set = small(500, 0);
    let net = Network::new(&two_conv(), 1).expect("net");
    let cfg = TrainConfig {
        max_train_samples: Some(100),
        ..config(3)
    };
    let data = TrainData {
        train: &train_set,
        validation: None,
        test: None,
    };
    let (net, result) =
        train::train(net, data, &cfg, &AtomicBool::new(false), |_| {}).expect("trains");
    assert_eq!(result.images, 300);
    let cfg = TrainConfig {
        max_seconds: Some(1e-6),
        ..config(3)
    };
    let (_, result) =
        train::train(net, data, &cfg, &AtomicBool::new(false), |_| {}).expect("trains");
    assert_eq!(result.stop_reason, Some(train::StopReason::MaxSeconds));
    assert_eq!((result.epochs.len(), result.images), (1, 32));
}

#[test]
fn a_diverging_run_ends_as_diverged_not_a_crash() {
    let train_set = small(256, 0);
    let net = Network::new(&two_conv(), 1).expect("net");
    let cfg = TrainConfig {
        optimizer: OptimizerKind::Sgd {
            momentum: 0.9,
            nesterov: false,
            weight_decay: 0.0,
        },
        learning_rate: 1e4,
        schedule: Schedule::Constant,
        ..config(5)
    };
    let data = TrainData {
        train: &train_set,
        validation: Some(&train_set),
        test: Some(&train_set),
    };
    let (_, result) =
        train::train(net, data, &cfg, &AtomicBool::new(false), |_| {}).expect("returns");
    assert_eq!(result.status, TrainStatus::Diverged, "{result:?}");
    assert!(
        result
            .message
            .as_deref()
            .unwrap_or("")
            .contains("loss became"),
        "{result:?}"
    );
    assert_eq!(result.test_accuracy, None);
}

#[test]
fn cancelling_stops_between_batches() {
    let train_set = small(256, 0);
    let net = Network::new(&two_conv(), 1).expect("net");
    let cancel = AtomicBool::new(false);
    let data = TrainData {
        train: &train_set,
        validation: None,
        test: None,
    };
    let (_, result) = train::train(net, data, &config(5), &cancel, |e| {
        if e.epoch == 2 {
            cancel.store(true, Ordering::Relaxed);
        }
    })
    .expect("returns");
    assert_eq!(result.status, TrainStatus::Cancelled);
    assert_eq!(result.epochs.len(), 2);
    assert_eq!(result.images, 512);
}

#[test]
fn bad_settings_and_mismatched_data_are_errors() {
    let train_set = small(64, 0);
    let data = TrainData {
        train: &train_set,
        validation: None,
        test: None,
    };
    let net = || Network::new(&two_conv(), 1).expect("net");
    let never = AtomicBool::new(false);
    let err = train::train(
        net(),
        data,
        &TrainConfig {
            batch_size: 0,
            ..config(1)
        },
        &never,
        |_| {},
    )
    .expect_err("bad");
    assert_eq!(err.to_string(), "batch_size: must be at least 1");
    let arch = search::zoo::build("lenet5", InputShape::new(3, 32, 32), 10, 1.0).expect("zoo");
    let err = train::train(
        Network::new(&arch, 1).expect("net"),
        data,
        &config(1),
        &never,
        |_| {},
    )
    .expect_err("shape");
    assert!(err.to_string().contains("the training set has"), "{err}");
}

#[test]
fn saved_weights_load_into_the_same_logits_and_refuse_other_networks() {
    let train_set = small(128, 0);
    let arch = search::zoo::build("resnet18", InputShape::new(1, 28, 28), 10, 0.25).expect("zoo");
    let data = TrainData {
        train: &train_set,
        validation: None,
        test: None,
    };
    let (mut trained, _) = train::train(
        Network::new(&arch, 1).expect("net"),
        data,
        &config(1),
        &AtomicBool::new(false),
        |_| {},
    )
    .expect("trains");
    let file = std::env::temp_dir().join(format!("nas-weights-{}.safetensors", std::process::id()));
    worker::weights::save(&trained, &file).expect("saves");
    let mut loaded = Network::new(&arch, 2).expect("net");
    worker::weights::load(&mut loaded, &file).expect("loads");
    let images: Vec<f32> = train_set.pixels[..4 * 784]
        .iter()
        .map(|&p| f32::from(p) / 255.0)
        .collect();
    let (p1, p2) = (trained.tensors(), loaded.tensors());
    assert_eq!(
        trained.predict(&p1, images.clone(), 4),
        loaded.predict(&p2, images, 4)
    );

    let mut other = Network::new(&two_conv(), 1).expect("net");
    let err = worker::weights::load(&mut other, &file)
        .expect_err("other net")
        .to_string();
    assert!(err.contains("weights are for architecture"), "{err}");
    let bytes = std::fs::read(&file).expect("read");
    std::fs::write(&file, &bytes[..bytes.len() / 2]).expect("write");
    let err = worker::weights::load(&mut loaded, &file)
        .expect_err("truncated")
        .to_string();
    assert!(
        err.contains("nas-weights-") && err.contains("not a valid safetensors file"),
        "{err}"
    );
    std::fs::remove_file(&file).ok();
}

#[test]
fn latency_is_measured_before_training() {
    let mut net = Network::new(&two_conv(), 1).expect("net");
    let config = worker::latency::LatencyConfig {
        min_runs: 11,
        max_runs: 11,
        max_time_ms: 60_000.0,
        ..worker::latency::LatencyConfig::quick()
    };
    let l = worker::latency::measure(&mut net, config, None).expect("measures");
    assert!(l.min > 0.0 && l.min <= l.p50 && l.p50 <= l.p90, "{l:?}");
    assert!(l.ci_low <= l.p50 && l.p50 <= l.ci_high, "{l:?}");
    assert_eq!((l.runs, l.device.threads, l.attempts), (11, 1, 1));
    assert!(!l.device.cpu.is_empty() && l.device.logical_cpus >= 1);
    if cfg!(target_os = "linux") {
        assert!(l.pinned, "the measuring thread is pinned");
        assert_eq!(l.cpus.len(), 1, "a pinned thread stays on one CPU: {l:?}");
    }
}

/// The hard latency limit is decided once, before a trial's first epoch: a
/// candidate over it is rejected untrained then, but the same candidate
/// measured again at a later rung (or as a final model) trains and keeps
/// its accuracy, its figure refined by the earlier measurements.
#[test]
fn only_a_trials_first_measurement_may_reject_it_for_latency() {
    use worker::latency::LatencyConfig;
    use worker::pipeline::{self, LatencyLimit, ScoredOn, TrialOutcome, TrialPlan};
    let (train_set, val) = (small(256, 0), small(128, 10_000));
    let data = TrainData {
        train: &train_set,
        validation: Some(&val),
        test: None,
    };
    // Any network measures over a limit of a nanosecond.
    let objective: search::Objective = serde_json::from_str(
        r#"{"latency": {"target_ms": 0.000001, "mode": "hard", "max_ms": 0.000001}}"#,
    )
    .expect("objective");
    let plan = |latency_limit| TrialPlan {
        architecture: two_conv(),
        seed: 1,
        latency: LatencyConfig::quick(),
        train: config(1),
        objective: objective.clone(),
        max_memory: None,
        resume: None,
        checkpoints: false,
        scored_on: ScoredOn::Validation,
        gate: None,
        runtime: worker::latency::Runtime::Nas,
        references: None,
        speed_factor: None,
        predictor: None,
        latency_limit,
    };
    let run = |limit| {
        pipeline::run(&plan(limit), data, &AtomicBool::new(false), |_, _| {}).expect("runs")
    };
    match run(LatencyLimit::Decide) {
        TrialOutcome::Rejected { result } => {
            assert!(result.val_accuracy.is_none() && result.reward.is_none());
            assert!(result.latency_measurements_ms.is_empty());
        }
        other => panic!("the first measurement decides: {other:?}"),
    }
    let earlier = vec![0.01, 0.03];
    match run(LatencyLimit::Decided {
        earlier_ms: earlier.clone(),
    }) {
        TrialOutcome::Trained { result, .. } => {
            assert!(result.val_accuracy.is_some() && result.reward.is_some());
            let all = &result.latency_measurements_ms;
            assert_eq!(all.len(), 3, "{all:?}");
            assert_eq!(all[..2], earlier[..]);
            let mut sorted = all.clone();
            sorted.sort_by(f64::total_cmp);
            assert_eq!(result.latency_ms.p50, sorted[1], "the median of all three");
        }
        other => panic!("a trained trial is never rejected again: {other:?}"),
    }
    match run(LatencyLimit::Never) {
        TrialOutcome::Trained { result, .. } => {
            assert!(result.reward.is_some());
            assert!(result.latency_measurements_ms.is_empty());
        }
        other => panic!("a final model is never rejected for latency: {other:?}"),
    }
}
