//! `nas train` and `nas latency`: one architecture, trained or timed locally.

use std::sync::atomic::AtomicBool;

use anyhow::{bail, Context};
use search::{Architecture, TrialResult};
use serde_json::json;
use worker::data::{load_image_folder, open_dataset, Split};
use worker::host::gate::{self, HostGate};
use worker::latency::{self, LatencyConfig};
use worker::net::Network;
use worker::pipeline::{Candidate, TrainingRun, TrialOutcome};
use worker::train::{self, AugmentationConfig, OptimizerKind, Schedule, TrainConfig, TrainData};

use super::arch::read_input;
use crate::cli::{BenchArgs, DataDirArgs, LatencyArgs, ModelArgs, TrainArgs};
use crate::table::thousands;

/// The architecture named by `--arch` or `--zoo`.
fn architecture(
    model: &ModelArgs,
    input: search::InputShape,
    classes: usize,
) -> anyhow::Result<Architecture> {
    match (&model.source.arch, &model.source.zoo) {
        (Some(path), _) => {
            let text = read_input(path)?;
            Ok(Architecture::from_json(&text).with_context(|| format!("{}", path.display()))?)
        }
        (None, Some(name)) => Ok(search::zoo::build(name, input, classes, model.width)?),
        (None, None) => bail!("give --arch FILE or --zoo NAME"),
    }
}

fn percent(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{:.2}%", v * 100.0))
}

/// A known dataset (downloaded on first use into the data folder) or an
/// image folder given by path. Returns the split and a display name.
fn load_dataset(name: &str, datasets: &DataDirArgs) -> anyhow::Result<(Split, String)> {
    if let Ok(dataset) = search::dataset::dataset(name) {
        return Ok((
            open_dataset(dataset, &datasets.resolve())?,
            dataset.name.to_owned(),
        ));
    }
    let path = std::path::Path::new(name);
    if path.is_dir() {
        let folder = load_image_folder(path)?;
        return Ok((
            folder.split,
            format!("{} ({} classes)", path.display(), folder.class_names.len()),
        ));
    }
    bail!(
        "unknown dataset `{name}`: give one of {} or an image folder (one sub-folder per class)",
        search::dataset::names().join(", ")
    )
}

/// The dataset and the network for it (a zoo entry is built for the
/// dataset's input and classes; a file must match them).
fn dataset_and_architecture(
    model: &ModelArgs,
    dataset: &str,
    datasets: &DataDirArgs,
) -> anyhow::Result<(Split, String, Architecture)> {
    let (split, dataset_name) = load_dataset(dataset, datasets)?;
    let arch = architecture(model, split.train.shape, split.train.classes)?;
    if arch.input != split.train.shape {
        bail!(
            "the architecture takes {} images but {} has {}",
            arch.input,
            dataset_name,
            split.train.shape
        );
    }
    Ok((split, dataset_name, arch))
}

/// The training settings `nas train` was given.
fn train_config(args: &TrainArgs) -> anyhow::Result<TrainConfig> {
    let optimizer = OptimizerKind::from_name(&args.optimizer).with_context(|| {
        format!(
            "unknown optimizer `{}`; use sgd, nesterov, adam or adamw",
            args.optimizer
        )
    })?;
    let schedule = match args.schedule.as_str() {
        "cosine" => Schedule::Cosine {
            warmup_epochs: args.warmup_epochs,
        },
        "one_cycle" | "one-cycle" => Schedule::OneCycle { pct_start: 0.3 },
        "constant" => Schedule::Constant,
        other => bail!("unknown schedule `{other}`; use constant, cosine or one_cycle"),
    };
    Ok(TrainConfig {
        epochs: args.epochs,
        batch_size: args.batch_size,
        optimizer,
        learning_rate: args.lr.unwrap_or_else(|| optimizer.default_lr()),
        schedule,
        seed: args.seed,
        max_train_samples: args.max_train_samples,
        max_seconds: args.max_seconds,
        augmentation: AugmentationConfig {
            crop_padding: args.crop_padding,
            horizontal_flip: args.flip,
        },
        label_smoothing: args.label_smoothing,
        stop_at_epoch: None,
        threads: args.threads.unwrap_or(TrainConfig::default().threads),
    })
}

/// Trains and prints one line per epoch, then a JSON summary line.
pub fn train(args: &TrainArgs) -> anyhow::Result<String> {
    let config = train_config(args)?;
    let (split, dataset_name, arch) =
        dataset_and_architecture(&args.model, &args.dataset, &args.datasets)?;
    let (train_set, val_set) = split.train.split_validation(args.val_fraction, args.seed);
    let candidate = Candidate::build(&arch, args.seed)?;
    let report = candidate.report();
    println!(
        "training {} ({} params, {} MACs) on {} ({} train, {} val, {} test), {} threads",
        if arch.name.is_empty() {
            "architecture"
        } else {
            &arch.name
        },
        thousands(report.params),
        thousands(report.macs),
        dataset_name,
        thousands(train_set.len() as u64),
        thousands(val_set.len() as u64),
        thousands(split.test.len() as u64),
        config.threads,
    );
    let timing = super::timing::Timing::relative();
    let measured = candidate.measure(&timing.meter(LatencyConfig {
        threads: args.latency_threads,
        ..LatencyConfig::default()
    }))?;
    let gate = timing.gate.clone();
    let data = TrainData {
        train: &train_set,
        validation: (!val_set.is_empty()).then_some(&val_set),
        test: Some(&split.test),
    };
    let epochs = config.epochs;
    let objective = search::Objective::default();
    let cancel = AtomicBool::new(false);
    let run = TrainingRun {
        gate,
        ..TrainingRun::default()
    };
    let outcome = measured.train(data, &config, &objective, &run, &cancel, |e, _| {
        println!(
            "epoch {}/{epochs}  loss {:.4}  train {}  val {}  {:.1}s  {} img/s",
            e.epoch,
            e.train_loss,
            percent(Some(e.train_accuracy)),
            percent(e.val_accuracy),
            e.seconds,
            thousands((e.images as f64 / e.train_seconds.max(1e-9)) as u64),
        );
    })?;
    let summary = match outcome {
        TrialOutcome::Trained { network, result } => {
            if let Some(path) = &args.save {
                worker::weights::save(&network, path)?;
            }
            TrainSummary::new("completed", result, None)
        }
        TrialOutcome::Diverged { message, result } => {
            TrainSummary::new("diverged", result, Some(message))
        }
        TrialOutcome::Rejected { result } => TrainSummary::new("rejected", result, None),
        TrialOutcome::Cancelled => bail!("training was cancelled"),
    };
    Ok(format!("{}\n", serde_json::to_string(&summary)?))
}

/// This process's handle on the host's latency gate (see
/// `worker::host::gate`): measurements wait for a quiet host, and
/// training batches wait out the host's measurements.
fn host_gate() -> Option<std::sync::Arc<HostGate>> {
    gate::open_or_warn(&HostGate::default_path())
}

/// The last line `nas train` prints: how training ended, and the trial result.
#[derive(serde::Serialize)]
struct TrainSummary {
    /// `completed`, `diverged` or `rejected`.
    status: &'static str,
    /// The result, as a trial of a search would store it.
    #[serde(flatten)]
    result: TrialResult,
    /// What went wrong, for a diverged run (null otherwise).
    message: Option<String>,
}

impl TrainSummary {
    fn new(status: &'static str, result: TrialResult, message: Option<String>) -> Self {
        Self {
            status,
            result,
            message,
        }
    }
}

/// Prints the batch-1 latency of an architecture.
pub fn latency(args: &LatencyArgs) -> anyhow::Result<String> {
    let arch = architecture(&args.model, args.input, args.classes)?;
    let mut net = Network::new(&arch, 0)?;
    let config = LatencyConfig {
        threads: args.threads,
        ..args.protocol.config()
    };
    if !(args.interval_secs.is_finite() && args.interval_secs >= 0.0) {
        bail!("--interval-secs must be a number of seconds, not negative");
    }
    let timing = super::timing::Timing::from_args(&args.basis)?;
    let meter = timing.meter(config);
    let mut measurements = Vec::with_capacity(usize::from(args.repeat));
    for i in 0..args.repeat {
        if i > 0 && args.interval_secs > 0.0 {
            std::thread::sleep(std::time::Duration::from_secs_f64(args.interval_secs));
        }
        measurements.push(latency::measure_with(&mut net, &meter)?);
    }
    let p50s: Vec<f64> = measurements.iter().map(|l| l.p50).collect();
    let max = p50s.iter().copied().fold(f64::MIN, f64::max);
    let min = p50s.iter().copied().fold(f64::MAX, f64::min);
    let summary = match measurements.as_slice() {
        [one] => json!(one),
        many => json!({
            "measurements": many,
            "p50_max_over_min": max / min,
        }),
    };
    Ok(format!("{summary}\n"))
}

/// `--dataset synthetic`: random images for architectures no local dataset fits.
const SYNTHETIC: &str = "synthetic";

/// `count` seeded random images of the architecture's input shape, with
/// random labels: for speed and memory benchmarks only (the pixel values do
/// not change the work a step does).
fn synthetic_images(arch: &Architecture, count: usize) -> worker::data::Dataset {
    use rand::Rng;
    let mut rng = search::seeded_rng(7);
    let size = arch.input.channels * arch.input.height * arch.input.width;
    let classes = arch.classes.clamp(1, 256);
    worker::data::Dataset {
        shape: arch.input,
        classes: arch.classes,
        pixels: (0..count * size).map(|_| rng.gen::<u8>()).collect(),
        labels: (0..count)
            .map(|_| rng.gen_range(0..classes) as u8)
            .collect(),
    }
}

/// The median of some durations (0 for none): robust to the odd step a
/// noisy machine slows down.
fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => 0.0,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

fn mebibytes(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// The wall time of each of `--steps` training steps of `trainer` (after
/// `--warmup` untimed ones) on batches of consecutive images of `set`,
/// seconds.
fn timed_steps(
    trainer: &mut train::Trainer,
    set: &worker::data::Dataset,
    stats: &worker::data::ChannelStats,
    args: &BenchArgs,
) -> Vec<f64> {
    let batch = args.batch_size.max(1);
    let mut rng = search::seeded_rng(0);
    let (mut images, mut labels) = (Vec::new(), Vec::new());
    let mut timed = Vec::with_capacity(args.steps);
    for step in 0..args.steps + args.warmup {
        let start = (step * batch) % (set.len() - batch + 1);
        let indices: Vec<usize> = (start..start + batch).collect();
        worker::data::fill_batch(
            set,
            &indices,
            stats,
            Default::default(),
            &mut rng,
            &mut images,
            &mut labels,
        );
        let t = std::time::Instant::now();
        trainer.step(std::mem::take(&mut images), &labels, 1e-3);
        if step >= args.warmup {
            timed.push(t.elapsed().as_secs_f64());
        }
    }
    timed
}

/// Times `--steps` Adam steps at `--batch-size` on the dataset's first images
/// (after `--warmup` untimed ones) and the batch-1 latency; prints one JSON
/// line. Throughput is the batch over the median step time (robust to a
/// noisy machine); `train_images_per_second_overall` is over the total.
pub fn bench(args: &BenchArgs) -> anyhow::Result<String> {
    let (train_set, dataset_name, arch) = if args.dataset == SYNTHETIC {
        let arch = architecture(&args.model, search::InputShape::new(1, 28, 28), 10)?;
        let images = (args.steps + args.warmup) * args.batch_size.max(1);
        (synthetic_images(&arch, images), SYNTHETIC.to_owned(), arch)
    } else {
        let (split, name, arch) =
            dataset_and_architecture(&args.model, &args.dataset, &args.datasets)?;
        (split.train, name, arch)
    };
    let mut net = Network::new(&arch, 0)?;
    let latency = if args.no_latency {
        None
    } else {
        Some(latency::measure(
            &mut net,
            LatencyConfig {
                threads: args.latency_threads,
                ..LatencyConfig::thorough()
            },
            host_gate().as_deref(),
        )?)
    };
    let stats = train_set.channel_stats();
    let batch = args.batch_size.max(1);
    if train_set.len() < batch {
        bail!("{} has fewer than {batch} training images", dataset_name);
    }
    let pool = worker::host::thread_pool(args.threads)?;
    let mut trainer = train::Trainer::new(net, OptimizerKind::adam());
    let resident_before = worker::memory::resident_now();
    let peak_is_training_only = worker::memory::reset_resident_peak();
    let seconds = pool.install(|| timed_steps(&mut trainer, &train_set, &stats, args));
    let total: f64 = seconds.iter().sum();
    let median_step = median(&seconds);
    let summary = json!({
        "engine": "nas (dfdx 0.13 + own ops)",
        "architecture": arch.name,
        "params": trainer.net.param_count(),
        "batch_size": batch,
        "threads": args.threads,
        "steps": args.steps,
        "train_images_per_second": batch as f64 / median_step.max(1e-9),
        "train_images_per_second_overall": (args.steps * batch) as f64 / total.max(1e-9),
        "latency_ms": latency.as_ref().map(|l| json!({ "p50": l.p50, "p90": l.p90 })),
        "latency_threads": args.latency_threads,
        "device": worker::latency::Device::current(args.latency_threads).fingerprint(),
        "simd": worker::ops::simd_path().name(),
        "dataset": dataset_name,
        "rss_mib": {
            "before_training": resident_before.map(mebibytes),
            "peak_training": worker::memory::resident_peak().map(mebibytes),
            "peak_is_training_only": peak_is_training_only,
        },
    });
    Ok(format!("{summary}\n"))
}
