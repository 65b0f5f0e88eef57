//! The settings of a training run and why a run cannot start.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::{OptimizerKind, Schedule};
use crate::host::ThreadPoolError;

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

/// Augmentation settings in a config (see [`crate::data::Augmentation`]).
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
    /// The thread pool could not start.
    #[error("training: {0}")]
    Threads(#[from] ThreadPoolError),
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
