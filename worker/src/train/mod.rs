//! Mini-batch training of a [`Network`] on a [`Dataset`], with a budget, a
//! progress callback, cancellation and divergence detection.

pub mod checkpoint;
mod optim;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use dfdx::prelude::*;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::data::{fill_batch, Augmentation, ChannelStats, Dataset};
use crate::latency::gate::{self, in_turn, HostGate};
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
    /// Label smoothing in `[0, 1)` (default 0).
    #[serde(default)]
    pub label_smoothing: f32,
    /// End the run after this epoch (a multi-fidelity rung), while the
    /// schedule still plans for `epochs` (default: run all `epochs`).
    #[serde(default)]
    pub stop_at_epoch: Option<usize>,
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
            label_smoothing: 0.0,
            stop_at_epoch: None,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }
}

impl TrainConfig {
    /// The config of a recipe from a search spec: `epochs` planned (the
    /// schedule's horizon), seeded by `seed`, on `threads` threads.
    pub fn from_recipe(recipe: &search::Training, epochs: u32, seed: u64, threads: usize) -> Self {
        Self {
            epochs: epochs as usize,
            batch_size: recipe.batch_size as usize,
            optimizer: recipe.optimizer,
            learning_rate: recipe.learning_rate(),
            schedule: recipe.schedule,
            seed,
            max_train_samples: None,
            max_seconds: None,
            augmentation: AugmentationConfig {
                crop_padding: recipe.augmentation.crop_padding as usize,
                horizontal_flip: recipe.augmentation.horizontal_flip,
            },
            label_smoothing: recipe.label_smoothing as f32,
            stop_at_epoch: None,
            threads,
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
    /// The inference runtime (onnxruntime) failed or refused the network;
    /// its message.
    #[error("{0}")]
    Runtime(String),
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
        if !(self.label_smoothing.is_finite() && (0.0..1.0).contains(&self.label_smoothing)) {
            return bad("label_smoothing", "must be in [0, 1)");
        }
        if self.stop_at_epoch == Some(0) {
            return bad("stop_at_epoch", "must be at least 1");
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
    /// Label smoothing: targets are `1 - s` on the label and `s / classes`
    /// spread over all classes.
    pub label_smoothing: f32,
}

impl Trainer {
    /// A trainer for `net` with a fresh optimiser.
    pub fn new(net: Network, kind: OptimizerKind) -> Self {
        let optimizer = Optimizer::new(kind, net.params.iter().map(|p| p.data.len()));
        Self {
            net,
            optimizer,
            label_smoothing: 0.0,
        }
    }

    /// The optimiser's state.
    pub fn optimizer(&self) -> &Optimizer {
        &self.optimizer
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
        let smoothing = self.label_smoothing;
        let mut onehot = vec![smoothing / classes as f32; n * classes];
        for (i, &l) in labels.iter().enumerate() {
            onehot[i * classes + l] += 1.0 - smoothing;
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
    evaluate_gated(net, data, stats, batch_size, None)
}

/// [`evaluate`], each batch in a turn of the host's latency `gate`.
fn evaluate_gated(
    net: &mut Network,
    data: &Dataset,
    stats: &ChannelStats,
    batch_size: usize,
    gate: Option<&HostGate>,
) -> f64 {
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
        let batch = std::mem::take(&mut images);
        let logits = in_turn(gate, || net.predict(&params, batch, chunk.len()));
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
    let mut session = Session::start(net, data, config)?;
    while let Some(report) = session.train_epoch(cancel) {
        progress(report);
    }
    Ok(session.finish())
}

/// Checks that every set fits the network and the training set is not empty.
fn check_data(net: &Network, data: &TrainData<'_>) -> Result<(), TrainError> {
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
    Ok(())
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

/// The seed of epoch `epoch`'s data order, augmentation and dropout: a
/// function of the run's seed and the epoch alone, so that a run resumed
/// from a checkpoint draws exactly what a run trained straight through does.
fn epoch_seed(seed: u64, epoch: usize) -> u64 {
    seed ^ (epoch as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// Where a resumed run starts: what a [checkpoint](checkpoint) restores
/// besides the network's weights and batch-norm statistics.
#[derive(Debug, Clone)]
pub struct ResumePoint {
    /// Epochs already trained.
    pub epoch: usize,
    /// Optimiser steps already taken (the schedule's position).
    pub step: usize,
    /// The optimiser's state.
    pub optimizer: Optimizer,
}

/// A training run one epoch at a time, so that its caller can checkpoint
/// or stop it between epochs. [`train`] is the simple loop over it.
pub struct Session<'d> {
    data: TrainData<'d>,
    config: TrainConfig,
    pool: std::sync::Arc<rayon::ThreadPool>,
    stats: ChannelStats,
    augmentation: Augmentation,
    /// The (possibly subset) training indices in their base order.
    subset: Vec<usize>,
    trainer: Trainer,
    /// Epochs trained so far (including before a resume).
    epoch: usize,
    step: usize,
    steps_per_epoch: usize,
    images: Vec<f32>,
    labels: Vec<usize>,
    result: TrainResult,
    ended: bool,
    last: Option<EpochReport>,
    /// The host's latency gate: every batch waits out measurements.
    gate: Option<std::sync::Arc<HostGate>>,
}

impl std::fmt::Debug for Session<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("epoch", &self.epoch)
            .field("step", &self.step)
            .finish()
    }
}

impl<'d> Session<'d> {
    /// A new run of freshly built `net`.
    pub fn start(
        net: Network,
        data: TrainData<'d>,
        config: &TrainConfig,
    ) -> Result<Self, TrainError> {
        let optimizer = Optimizer::new(config.optimizer, net.params.iter().map(|p| p.data.len()));
        Self::resume(
            net,
            data,
            config,
            ResumePoint {
                epoch: 0,
                step: 0,
                optimizer,
            },
        )
    }

    /// A run that goes on from `from` (`net` holds the checkpoint's weights).
    pub fn resume(
        net: Network,
        data: TrainData<'d>,
        config: &TrainConfig,
        from: ResumePoint,
    ) -> Result<Self, TrainError> {
        config.check()?;
        check_data(&net, &data)?;
        let pool = std::sync::Arc::new(thread_pool(config.threads)?);
        let mut subset: Vec<usize> = (0..data.train.len()).collect();
        if let Some(max) = config.max_train_samples {
            subset.shuffle(&mut search::seeded_rng(config.seed));
            subset.truncate(max);
        }
        let steps_per_epoch = subset.len().div_ceil(config.batch_size);
        let mut trainer = Trainer::new(net, config.optimizer);
        trainer.optimizer = from.optimizer;
        trainer.label_smoothing = config.label_smoothing;
        Ok(Self {
            data,
            config: config.clone(),
            pool,
            stats: data.train.channel_stats(),
            augmentation: Augmentation {
                crop_padding: config.augmentation.crop_padding,
                horizontal_flip: config.augmentation.horizontal_flip,
            },
            subset,
            trainer,
            epoch: from.epoch,
            step: from.step,
            steps_per_epoch,
            images: Vec::new(),
            labels: Vec::new(),
            result: TrainResult {
                status: TrainStatus::Completed,
                stop_reason: Some(StopReason::Epochs),
                epochs: Vec::new(),
                val_accuracy: None,
                test_accuracy: None,
                train_seconds: 0.0,
                images: 0,
                images_per_second: 0.0,
                message: None,
            },
            ended: false,
            last: None,
            gate: None,
        })
    }

    /// Makes every training and validation batch wait while another agent
    /// of the host measures latency (see [`crate::latency::gate`]).
    pub fn with_gate(mut self, gate: Option<std::sync::Arc<HostGate>>) -> Self {
        self.gate = gate;
        self
    }

    /// Epochs trained so far, counting those before a resume.
    pub fn epochs_done(&self) -> usize {
        self.epoch
    }

    /// The network and optimiser as they stand.
    pub fn trainer(&self) -> &Trainer {
        &self.trainer
    }

    /// Where this run stands, for a checkpoint.
    pub fn resume_point(&self) -> ResumePoint {
        ResumePoint {
            epoch: self.epoch,
            step: self.step,
            optimizer: self.trainer.optimizer.clone(),
        }
    }

    /// The settings the run was started with.
    pub fn config(&self) -> &TrainConfig {
        &self.config
    }

    /// The epoch this run ends after: `stop_at_epoch` (a rung's end), else
    /// the planned `epochs`.
    fn last_epoch(&self) -> usize {
        self.config
            .stop_at_epoch
            .map_or(self.config.epochs, |e| e.min(self.config.epochs))
    }

    /// Trains the next epoch and validates; `None` once the run is over
    /// (its last epoch done, cancelled, diverged or out of time).
    pub fn train_epoch(&mut self, cancel: &AtomicBool) -> Option<&EpochReport> {
        if self.ended || self.epoch >= self.last_epoch() {
            self.ended = true;
            return None;
        }
        let epoch_start = Instant::now();
        let epoch = self.epoch + 1;
        let spent = self.result.train_seconds;
        let pool = self.pool.clone();
        let tally = pool.install(|| self.epoch_steps(epoch, cancel, spent));
        self.result.train_seconds += tally.train_seconds;
        self.result.images += tally.seen;
        match tally.end {
            Some(EpochEnd::Cancelled) => {
                self.end(TrainStatus::Cancelled, None);
                return None;
            }
            Some(EpochEnd::Diverged(message)) => {
                self.end(TrainStatus::Diverged, Some(message));
                return None;
            }
            Some(EpochEnd::OutOfTime) | None => {}
        }
        let gate = self.gate.clone();
        let val_accuracy = self.data.validation.map(|v| {
            pool.install(|| {
                evaluate_gated(&mut self.trainer.net, v, &self.stats, 256, gate.as_deref())
            })
        });
        self.epoch = epoch;
        self.result.val_accuracy = val_accuracy;
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
        if matches!(tally.end, Some(EpochEnd::OutOfTime)) {
            self.result.stop_reason = Some(StopReason::MaxSeconds);
            self.ended = true;
        }
        self.result.epochs.push(report.clone());
        self.last = Some(report);
        self.last.as_ref()
    }

    fn end(&mut self, status: TrainStatus, message: Option<String>) {
        self.result.status = status;
        self.result.stop_reason = None;
        self.result.message = message;
        self.ended = true;
    }

    /// Trains one epoch's batches; `spent` is the training time of earlier
    /// epochs of this run.
    fn epoch_steps(&mut self, epoch: usize, cancel: &AtomicBool, spent: f64) -> EpochTally {
        let config = &self.config;
        let seed = epoch_seed(config.seed, epoch);
        let mut rng = search::seeded_rng(seed);
        self.trainer.net.reseed_dropout(seed ^ 0x5eed);
        let mut order = self.subset.clone();
        order.shuffle(&mut rng);
        let total_steps = self.steps_per_epoch * config.epochs;
        let mut tally = EpochTally {
            learning_rate: config.learning_rate,
            ..EpochTally::default()
        };
        let gate = self.gate.clone();
        for chunk in order.chunks(config.batch_size) {
            if cancel.load(Ordering::Relaxed) {
                tally.end = Some(EpochEnd::Cancelled);
                break;
            }
            let turn = gate::turn(gate.as_deref());
            let t = Instant::now();
            fill_batch(
                self.data.train,
                chunk,
                &self.stats,
                self.augmentation,
                &mut rng,
                &mut self.images,
                &mut self.labels,
            );
            tally.learning_rate = config.schedule.rate(
                config.learning_rate,
                self.step,
                total_steps,
                self.steps_per_epoch,
            );
            let images = std::mem::take(&mut self.images);
            let outcome = self
                .trainer
                .step(images, &self.labels, tally.learning_rate as f32);
            drop(turn);
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

    /// Ends the run: evaluates the test set (if given, and the run
    /// completed) and returns the network and the result of this session's
    /// epochs.
    pub fn finish(mut self) -> (Network, TrainResult) {
        if self.result.status == TrainStatus::Completed {
            if let Some(test) = self.data.test {
                let (net, stats) = (&mut self.trainer.net, &self.stats);
                let gate = self.gate.as_deref();
                self.result.test_accuracy = Some(
                    self.pool
                        .install(|| evaluate_gated(net, test, stats, 256, gate)),
                );
            }
        }
        self.result.images_per_second =
            self.result.images as f64 / self.result.train_seconds.max(1e-9);
        self.trainer
            .net
            .set_input_normalization(Some(self.stats.clone()));
        (self.trainer.net, self.result)
    }
}
