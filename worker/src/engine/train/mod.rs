//! Mini-batch training of a [`Network`] on a
//! [`Dataset`](crate::data::Dataset), with a budget, a
//! progress callback, cancellation and divergence detection.
//!
//! - [`config`]: the settings of a run ([`TrainConfig`]) and why a run
//!   cannot start ([`TrainError`]).
//! - [`Trainer`] (here): a network and its optimiser, one step at a time.
//! - [`session`]: a run one epoch at a time, resumable ([`Session`]), and
//!   [`train`], the simple loop over it.
//! - [`evaluate()`]: accuracy in eval mode.
//! - [`checkpoint`]: weights, statistics and optimiser state in one blob.

pub mod checkpoint;
pub mod config;
mod evaluate;
mod optim;
pub mod session;

use dfdx::prelude::*;
use serde::{Deserialize, Serialize};

use crate::data::Dataset;
use crate::net::{Mode, Network};
use crate::ops::to_vec;

pub use config::{AugmentationConfig, TrainConfig, TrainError};
use evaluate::count_correct;
pub use evaluate::evaluate;
pub use optim::{Optimizer, OptimizerKind, Schedule};
pub use session::{train, ResumePoint, Session};

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
