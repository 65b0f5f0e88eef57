//! A training run one epoch at a time, resumable from a checkpoint.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use rand::seq::SliceRandom;

use super::evaluate::evaluate_gated;
use super::{
    EpochReport, Optimizer, StopReason, TrainConfig, TrainData, TrainError, TrainResult,
    TrainStatus, Trainer,
};
use crate::data::{fill_batch, Augmentation, ChannelStats};
use crate::host::gate::{self, HostGate};
use crate::host::thread_pool;
use crate::net::Network;

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

/// Where a resumed run starts: what a [checkpoint](super::checkpoint) restores
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
    /// of the host measures latency (see [`crate::host::gate`]).
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
