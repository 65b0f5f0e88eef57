//! Mini-batch training of a [`Network`] on a [`Dataset`], with a budget, a
//! progress callback, cancellation and divergence detection.

mod optim;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use dfdx::prelude::*;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::data::{fill_batch, Augmentation, ChannelStats, Dataset};
use crate::net::{Mode, Network};
use crate::ops::to_vec;

pub use optim::{Optimizer, OptimizerKind, Schedule};

/// Everything that decides a training run besides the data and the network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Passes over the training set (default 1).
    pub epochs: usize,
    /// Images per step (default 64).
    pub batch_size: usize,
    /// The optimiser (default Adam).
    pub optimizer: OptimizerKind,
    /// Base learning rate (default: the optimiser's usual one).
    pub learning_rate: f64,
    /// Learning-rate schedule (default constant).
    pub schedule: Schedule,
    /// Seeds the weights, the shuffling, augmentation and dropout.
    pub seed: u64,
    /// Train on at most this many images of the training set (a seeded subset).
    pub max_train_samples: Option<usize>,
    /// Stop after the step that crosses this many seconds of training.
    pub max_seconds: Option<f64>,
    /// Training-time augmentation (default none).
    pub augmentation: AugmentationConfig,
    /// Threads of the training pool (default: all cores).
    pub threads: usize,
}

/// Augmentation settings in a config (see [`Augmentation`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AugmentationConfig {
    /// Random-crop padding in pixels (0: off).
    #[serde(default)]
    pub crop_padding: usize,
    /// Random horizontal flips.
    #[serde(default)]
    pub horizontal_flip: bool,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            epochs: 1,
            batch_size: 64,
            optimizer: OptimizerKind::adam(),
            learning_rate: 1e-3,
            schedule: Schedule::Constant,
            seed: 0,
            max_train_samples: None,
            max_seconds: None,
            augmentation: AugmentationConfig::default(),
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }
}

/// Why a run could not start.
#[derive(Debug, Error)]
pub enum TrainError {
    /// A setting is out of range.
    #[error("{field}: {message}")]
    Config {
        /// The setting.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The data does not fit the network.
    #[error("{0}")]
    Data(String),
    /// The thread pool could not start.
    #[error("cannot start {threads} training threads: {message}")]
    Threads {
        /// Requested threads.
        threads: usize,
        /// The OS's reason.
        message: String,
    },
}

impl TrainConfig {
    /// Checks the settings, naming the first bad one.
    pub fn check(&self) -> Result<(), TrainError> {
        let bad = |field, message: &str| {
            Err(TrainError::Config {
                field,
                message: message.into(),
            })
        };
        if self.epochs == 0 {
            return bad("epochs", "must be at least 1");
        }
        if self.batch_size == 0 {
            return bad("batch_size", "must be at least 1");
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return bad("learning_rate", "must be a positive number");
        }
        if self.threads == 0 {
            return bad("threads", "must be at least 1");
        }
        if self.max_train_samples == Some(0) {
            return bad("max_train_samples", "must be at least 1");
        }
        if let Some(s) = self.max_seconds {
            if !(s.is_finite() && s > 0.0) {
                return bad("max_seconds", "must be a positive number");
            }
        }
        Ok(())
    }
}

/// What happened in one epoch; handed to the progress callback.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochReport {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Mean training loss over the epoch's steps.
    pub train_loss: f64,
    /// Training accuracy over the epoch (in train mode, as the steps saw it).
    pub train_accuracy: f64,
    /// Validation accuracy after the epoch (`None` without a validation set).
    pub val_accuracy: Option<f64>,
    /// Images trained on in this epoch.
    pub images: usize,
    /// Wall time of the epoch's training steps, seconds.
    pub train_seconds: f64,
    /// Wall time including validation, seconds.
    pub seconds: f64,
    /// Learning rate at the end of the epoch.
    pub learning_rate: f64,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrainStatus {
    /// The budget was spent (all epochs, or the time limit).
    Completed,
    /// The loss became NaN or infinite.
    Diverged,
    /// The cancel flag was raised.
    Cancelled,
}

/// Which budget ended a completed run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// All epochs ran.
    Epochs,
    /// `max_seconds` was reached.
    MaxSeconds,
}

/// The outcome of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainResult {
    /// How it ended.
    pub status: TrainStatus,
    /// For completed runs, which budget ended them.
    pub stop_reason: Option<StopReason>,
    /// Every finished epoch.
    pub epochs: Vec<EpochReport>,
    /// Validation accuracy at the end.
    pub val_accuracy: Option<f64>,
    /// Test accuracy at the end, if a test set was given.
    pub test_accuracy: Option<f64>,
    /// Seconds spent in training steps.
    pub train_seconds: f64,
    /// Images trained on.
    pub images: usize,
    /// Training throughput: images per second of training steps.
    pub images_per_second: f64,
    /// A human-readable note for diverged runs.
    pub message: Option<String>,
}

/// The data of a run: training images, and optional validation and test sets.
#[derive(Debug, Clone, Copy)]
pub struct TrainData<'a> {
    /// Training set.
    pub train: &'a Dataset,
    /// Validation set (evaluated after each epoch).
    pub validation: Option<&'a Dataset>,
    /// Test set (evaluated once at the end).
    pub test: Option<&'a Dataset>,
}

/// Loss and correct predictions of one step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepOutcome {
    /// Mean cross-entropy of the batch.
    pub loss: f32,
    /// Correctly classified images in the batch.
    pub correct: usize,
}

/// A network with its optimiser state: one step at a time.
#[derive(Debug)]
pub struct Trainer {
    /// The network being trained.
    pub net: Network,
    optimizer: Optimizer,
}

impl Trainer {
    /// A trainer for `net` with a fresh optimiser.
    pub fn new(net: Network, kind: OptimizerKind) -> Self {
        let optimizer = Optimizer::new(kind, net.params.iter().map(|p| p.data.len()));
        Self { net, optimizer }
    }

    /// One step on a batch of normalised images (`labels.len()` of them),
    /// at learning rate `lr`. A non-finite loss leaves the weights untouched.
    pub fn step(&mut self, images: Vec<f32>, labels: &[usize], lr: f32) -> StepOutcome {
        let input = self.net.architecture().input;
        let classes = self.net.architecture().classes;
        let n = labels.len();
        let dev = self.net.device().clone();
        let x = dev.tensor_from_vec(images, (n, input.channels, input.height, input.width));
        let params = self.net.tensors();
        let logits = self.net.forward(x.leaky_traced(), &params, Mode::Train);
        let correct = count_correct(&to_vec(&logits), labels, classes);
        let mut onehot = vec![0f32; n * classes];
        for (i, &l) in labels.iter().enumerate() {
            onehot[i * classes + l] = 1.0;
        }
        let target = dev.tensor_from_vec(onehot, (n, classes));
        let loss = cross_entropy_with_logits_loss(logits, target);
        let value = loss.array();
        if !value.is_finite() {
            return StepOutcome {
                loss: value,
                correct,
            };
        }
        let mut grads = loss.backward();
        self.optimizer.begin_step();
        for (i, tensor) in params.iter().enumerate() {
            if let Ok(grad) = grads.get_or_alloc_mut(&tensor.tensor) {
                self.optimizer
                    .update(i, &mut self.net.params[i].data, grad, lr);
            }
        }
        StepOutcome {
            loss: value,
            correct,
        }
    }
}

fn count_correct(logits: &[f32], labels: &[usize], classes: usize) -> usize {
    logits
        .chunks(classes.max(1))
        .zip(labels)
        .filter(|(row, &label)| argmax(row) == label)
        .count()
}

fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best
}

/// Accuracy of `net` on `data` in eval mode, in batches of `batch_size`.
pub fn evaluate(net: &mut Network, data: &Dataset, stats: &ChannelStats, batch_size: usize) -> f64 {
    if data.is_empty() {
        return 0.0;
    }
    let params = net.tensors();
    let classes = net.architecture().classes;
    let mut rng = search::seeded_rng(0);
    let (mut images, mut labels) = (Vec::new(), Vec::new());
    let mut correct = 0;
    let indices: Vec<usize> = (0..data.len()).collect();
    for chunk in indices.chunks(batch_size.max(1)) {
        fill_batch(
            data,
            chunk,
            stats,
            Augmentation::default(),
            &mut rng,
            &mut images,
            &mut labels,
        );
        let logits = net.predict(&params, std::mem::take(&mut images), chunk.len());
        correct += count_correct(&logits, &labels, classes);
    }
    correct as f64 / data.len() as f64
}

/// Builds a rayon pool with `threads` threads.
pub fn thread_pool(threads: usize) -> Result<rayon::ThreadPool, TrainError> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| TrainError::Threads {
            threads,
            message: e.to_string(),
        })
}

/// Trains `net` on `data` under `config`, calling `progress` after each
/// epoch. Raising `cancel` stops the run between steps.
pub fn train(
    net: Network,
    data: TrainData<'_>,
    config: &TrainConfig,
    cancel: &AtomicBool,
    mut progress: impl FnMut(&EpochReport) + Send,
) -> Result<(Network, TrainResult), TrainError> {
    config.check()?;
    let input = net.architecture().input;
    for (name, set) in [
        ("training", Some(data.train)),
        ("validation", data.validation),
        ("test", data.test),
    ] {
        if let Some(set) = set {
            if set.shape != input || set.classes > net.architecture().classes {
                return Err(TrainError::Data(format!(
                    "the {name} set has {} images of {} classes but the network takes {} with {} classes",
                    set.shape, set.classes, input, net.architecture().classes
                )));
            }
        }
    }
    if data.train.is_empty() {
        return Err(TrainError::Data("the training set is empty".into()));
    }
    let pool = thread_pool(config.threads)?;
    pool.install(|| run(net, data, config, cancel, &mut progress))
}

/// How one epoch's batches went.
#[derive(Debug, Default)]
struct EpochTally {
    loss_sum: f64,
    correct: usize,
    seen: usize,
    batches: usize,
    train_seconds: f64,
    learning_rate: f64,
    /// Why the epoch ended before its last batch, if it did.
    end: Option<EpochEnd>,
}

/// Why an epoch ended early.
#[derive(Debug)]
enum EpochEnd {
    Cancelled,
    Diverged(String),
    OutOfTime,
}

/// A run in progress: the data order, the trainer and the step count.
struct Run<'d, 'c> {
    data: TrainData<'d>,
    config: &'c TrainConfig,
    stats: ChannelStats,
    augmentation: Augmentation,
    rng: search::SeededRng,
    order: Vec<usize>,
    trainer: Trainer,
    step: usize,
    total_steps: usize,
    images: Vec<f32>,
    labels: Vec<usize>,
}

impl Run<'_, '_> {
    /// Trains one epoch; `spent` is the training time of earlier epochs.
    fn epoch(&mut self, epoch: usize, cancel: &AtomicBool, spent: f64) -> EpochTally {
        let config = self.config;
        self.order.shuffle(&mut self.rng);
        let mut tally = EpochTally {
            learning_rate: config.learning_rate,
            ..EpochTally::default()
        };
        for chunk in self.order.chunks(config.batch_size) {
            if cancel.load(Ordering::Relaxed) {
                tally.end = Some(EpochEnd::Cancelled);
                break;
            }
            let t = Instant::now();
            fill_batch(
                self.data.train,
                chunk,
                &self.stats,
                self.augmentation,
                &mut self.rng,
                &mut self.images,
                &mut self.labels,
            );
            tally.learning_rate =
                config
                    .schedule
                    .rate(config.learning_rate, self.step, self.total_steps);
            let images = std::mem::take(&mut self.images);
            let outcome = self
                .trainer
                .step(images, &self.labels, tally.learning_rate as f32);
            tally.train_seconds += t.elapsed().as_secs_f64();
            self.step += 1;
            if !outcome.loss.is_finite() {
                let message = format!(
                    "loss became {} at epoch {epoch}, step {}",
                    outcome.loss, self.step
                );
                tally.end = Some(EpochEnd::Diverged(message));
                break;
            }
            tally.loss_sum += f64::from(outcome.loss);
            tally.correct += outcome.correct;
            tally.seen += chunk.len();
            tally.batches += 1;
            if config
                .max_seconds
                .is_some_and(|max| spent + tally.train_seconds >= max)
            {
                tally.end = Some(EpochEnd::OutOfTime);
                break;
            }
        }
        tally
    }
}

fn run(
    net: Network,
    data: TrainData<'_>,
    config: &TrainConfig,
    cancel: &AtomicBool,
    progress: &mut (dyn FnMut(&EpochReport) + Send),
) -> Result<(Network, TrainResult), TrainError> {
    let mut rng = search::seeded_rng(config.seed);
    let mut order: Vec<usize> = (0..data.train.len()).collect();
    if let Some(max) = config.max_train_samples {
        order.shuffle(&mut rng);
        order.truncate(max);
    }
    let total_steps = order.len().div_ceil(config.batch_size) * config.epochs;
    let mut run = Run {
        data,
        config,
        stats: data.train.channel_stats(),
        augmentation: Augmentation {
            crop_padding: config.augmentation.crop_padding,
            horizontal_flip: config.augmentation.horizontal_flip,
        },
        rng,
        order,
        trainer: Trainer::new(net, config.optimizer),
        step: 0,
        total_steps,
        images: Vec::new(),
        labels: Vec::new(),
    };
    let mut result = TrainResult {
        status: TrainStatus::Completed,
        stop_reason: Some(StopReason::Epochs),
        epochs: Vec::new(),
        val_accuracy: None,
        test_accuracy: None,
        train_seconds: 0.0,
        images: 0,
        images_per_second: 0.0,
        message: None,
    };
    for epoch in 1..=config.epochs {
        let epoch_start = Instant::now();
        let tally = run.epoch(epoch, cancel, result.train_seconds);
        result.train_seconds += tally.train_seconds;
        result.images += tally.seen;
        match tally.end {
            Some(EpochEnd::Cancelled) => {
                result.status = TrainStatus::Cancelled;
                result.stop_reason = None;
                break;
            }
            Some(EpochEnd::Diverged(message)) => {
                result.status = TrainStatus::Diverged;
                result.stop_reason = None;
                result.message = Some(message);
                break;
            }
            Some(EpochEnd::OutOfTime) | None => {}
        }
        let val_accuracy = data
            .validation
            .map(|v| evaluate(&mut run.trainer.net, v, &run.stats, 256));
        result.val_accuracy = val_accuracy;
        let report = EpochReport {
            epoch,
            train_loss: tally.loss_sum / tally.batches.max(1) as f64,
            train_accuracy: tally.correct as f64 / tally.seen.max(1) as f64,
            val_accuracy,
            images: tally.seen,
            train_seconds: tally.train_seconds,
            seconds: epoch_start.elapsed().as_secs_f64(),
            learning_rate: tally.learning_rate,
        };
        progress(&report);
        result.epochs.push(report);
        if matches!(tally.end, Some(EpochEnd::OutOfTime)) {
            result.stop_reason = Some(StopReason::MaxSeconds);
            break;
        }
    }
    if result.status == TrainStatus::Completed {
        result.test_accuracy = data
            .test
            .map(|t| evaluate(&mut run.trainer.net, t, &run.stats, 256));
    }
    result.images_per_second = result.images as f64 / result.train_seconds.max(1e-9);
    Ok((run.trainer.net, result))
}
