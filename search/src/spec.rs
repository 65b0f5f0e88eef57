//! What a user submits: a search spec, checked field by field.

use crate::dataset::{self, DatasetInfo};
use crate::limits::{self, Footprint, ResourceLimits};
use crate::{Objective, SearchSpace, Strategy};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// A search space by preset name or written out.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SpaceRef {
    /// A preset: micro, classic, mobile or full.
    Preset(String),
    /// A full space.
    Inline(Box<SearchSpace>),
}

impl Default for SpaceRef {
    fn default() -> Self {
        Self::Preset("micro".into())
    }
}

impl SpaceRef {
    /// The space itself.
    pub fn resolve(&self) -> Result<SearchSpace, SpecError> {
        match self {
            Self::Preset(name) => {
                SearchSpace::preset(name).map_err(|e| SpecError::field("space", e.to_string()))
            }
            Self::Inline(space) => {
                space
                    .check()
                    .map_err(|e| SpecError::field("space", e.to_string()))?;
                Ok((**space).clone())
            }
        }
    }
}

/// How much a search may spend.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Budget {
    /// Trials in all (default 20).
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 100_000))]
    pub max_trials: u32,
    /// Training epochs per trial (default 1).
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 1000))]
    pub epochs: u32,
    /// Train each trial on at most this many images (default: all).
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 10_000_000))]
    pub max_train_samples: Option<u32>,
    /// Wall time of the whole search, seconds; no new trials after it (default: none).
    #[cfg_attr(
        feature = "openapi",
        schema(exclusive_minimum = 0, maximum = 2_592_000)
    )]
    pub max_seconds: Option<f64>,
    /// Trials queued or running at once (default 2).
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 1000))]
    pub parallelism: u32,
}

impl Default for Budget {
    fn default() -> Self {
        Self {
            max_trials: 20,
            epochs: 1,
            max_train_samples: None,
            max_seconds: None,
            parallelism: 2,
        }
    }
}

/// Per-trial training settings (the rest of the training recipe is the
/// worker's defaults: Adam 1e-3, batch 64, constant rate).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Training {
    /// Images per step (default 64).
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 4096))]
    pub batch_size: u32,
    /// Learning rate (default 1e-3, Adam).
    #[cfg_attr(feature = "openapi", schema(exclusive_minimum = 0, maximum = 10))]
    pub learning_rate: f64,
    /// Fraction of the training set held out for validation (default 0.1).
    #[cfg_attr(feature = "openapi", schema(exclusive_minimum = 0, maximum = 0.9))]
    pub val_fraction: f64,
}

impl Default for Training {
    fn default() -> Self {
        Self {
            batch_size: 64,
            learning_rate: 1e-3,
            val_fraction: 0.1,
        }
    }
}

/// A search as submitted.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchSpec {
    /// A name for people.
    #[cfg_attr(feature = "openapi", schema(pattern = r"\S", max_length = 200))]
    pub name: String,
    /// A dataset of the catalogue ([`crate::dataset::CATALOG`], `GET /datasets`).
    pub dataset: String,
    /// Search space (default the `micro` preset).
    #[serde(default)]
    pub space: SpaceRef,
    /// Strategy (default regularized evolution).
    #[serde(default)]
    pub strategy: Strategy,
    /// Objective (default accuracy alone).
    #[serde(default)]
    pub objective: Objective,
    /// Budget.
    #[serde(default)]
    pub budget: Budget,
    /// Training settings.
    #[serde(default)]
    pub training: Training,
    /// Labels a worker must have to run this search's trials.
    #[serde(default)]
    pub labels: Vec<String>,
    /// Reference-zoo architectures (e.g. `["lenet5", "fashion_cnn"]`) built
    /// for the dataset and trained first, as baselines to compare with. They
    /// are not part of the budget and the strategy never breeds from them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub baselines: Vec<String>,
    /// Seeds proposals and training.
    #[serde(default)]
    pub seed: u64,
    /// Attempts per trial before it fails for good (default 3).
    #[serde(default = "default_attempts")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 10))]
    pub max_attempts: u32,
}

fn default_attempts() -> u32 {
    3
}

/// A spec field that is wrong, and why.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{field}: {message}")]
pub struct SpecError {
    /// Dotted path of the field, e.g. `budget.max_trials`.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl SpecError {
    /// An error in `field`.
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        Self {
            field: field.to_owned(),
            message: message.into(),
        }
    }
}

/// Bounds of a spec's numbers and texts (the OpenAPI document states them too).
pub mod bounds {
    /// Longest search name, characters.
    pub const MAX_NAME_CHARS: usize = 200;
    /// Most trials a search may run.
    pub const MAX_TRIALS: u32 = 100_000;
    /// Most epochs per trial.
    pub const MAX_EPOCHS: u32 = 1000;
    /// Most trials queued or running at once for one search.
    pub const MAX_PARALLELISM: u32 = 1000;
    /// Most training images per trial.
    pub const MAX_TRAIN_SAMPLES: u32 = 10_000_000;
    /// Longest wall time of a search, seconds (30 days).
    pub const MAX_SECONDS: f64 = 30.0 * 24.0 * 3600.0;
    /// Largest batch.
    pub const MAX_BATCH_SIZE: u32 = 4096;
    /// Largest learning rate.
    pub const MAX_LEARNING_RATE: f64 = 10.0;
    /// Most attempts per trial.
    pub const MAX_ATTEMPTS: u32 = 10;
    /// Most worker labels a search may require.
    pub const MAX_LABELS: usize = 10;
    /// Longest label, characters.
    pub const MAX_LABEL_CHARS: usize = 64;
    /// Most zoo baselines.
    pub const MAX_BASELINES: usize = 20;
    /// Networks sampled from a space at submission, to show it produces
    /// valid ones.
    pub const SAMPLES_AT_SUBMISSION: usize = 16;
}

/// Refuses empty, overlong or control-character text.
fn check_text(field: &str, text: &str, max_chars: usize) -> Result<(), SpecError> {
    if text.trim().is_empty() {
        return Err(SpecError::field(field, "must not be empty"));
    }
    if text.chars().count() > max_chars {
        return Err(SpecError::field(
            field,
            format!("must be at most {max_chars} characters"),
        ));
    }
    if text.chars().any(char::is_control) {
        return Err(SpecError::field(
            field,
            "must not contain control characters (NUL, newlines, ...)",
        ));
    }
    Ok(())
}

/// `value` must lie in `min..=max`.
fn check_range<T: PartialOrd + std::fmt::Display>(
    field: &str,
    value: T,
    min: T,
    max: T,
) -> Result<(), SpecError> {
    if value < min || value > max {
        return Err(SpecError::field(
            field,
            format!("must be between {min} and {max}"),
        ));
    }
    Ok(())
}

impl SearchSpec {
    /// Checks every field against the default [`ResourceLimits`], naming
    /// the first bad one.
    pub fn check(&self) -> Result<(), SpecError> {
        self.check_with(&ResourceLimits::default())
    }

    /// Checks every field, naming the first bad one: every number bounded,
    /// texts without control characters, the space by its largest network
    /// against `limits` and by sampling it, the baselines against `limits`.
    pub fn check_with(&self, limits: &ResourceLimits) -> Result<(), SpecError> {
        check_text("name", &self.name, bounds::MAX_NAME_CHARS)?;
        let dataset = self.dataset_info()?;
        self.strategy
            .check()
            .map_err(|e| SpecError::field("strategy", e.to_string()))?;
        self.objective
            .check()
            .map_err(|e| SpecError::field(&format!("objective.{}", e.field), e.message.clone()))?;
        self.check_budget()?;
        self.check_training()?;
        check_range("max_attempts", self.max_attempts, 1, bounds::MAX_ATTEMPTS)?;
        if self.labels.len() > bounds::MAX_LABELS {
            let most = bounds::MAX_LABELS;
            return Err(SpecError::field("labels", format!("at most {most} labels")));
        }
        for (i, label) in self.labels.iter().enumerate() {
            check_text(&format!("labels[{i}]"), label, bounds::MAX_LABEL_CHARS)?;
            if label.contains(',') {
                return Err(SpecError::field(
                    &format!("labels[{i}]"),
                    format!("label `{label}` must not contain commas"),
                ));
            }
        }
        self.check_space(dataset, limits)?;
        for (i, (name, arch)) in self.baseline_architectures()?.iter().enumerate() {
            let report = crate::validate(arch)
                .map_err(|e| SpecError::field(&format!("baselines[{i}]"), e.to_string()))?;
            let footprint = Footprint::of(&report, arch.input, self.training.batch_size as usize);
            limits.check(&footprint).map_err(|e| {
                SpecError::field(&format!("baselines[{i}]"), format!("{name}: {e}"))
            })?;
        }
        Ok(())
    }

    fn check_budget(&self) -> Result<(), SpecError> {
        let b = &self.budget;
        check_range("budget.max_trials", b.max_trials, 1, bounds::MAX_TRIALS)?;
        check_range("budget.epochs", b.epochs, 1, bounds::MAX_EPOCHS)?;
        if let Some(n) = b.max_train_samples {
            check_range("budget.max_train_samples", n, 1, bounds::MAX_TRAIN_SAMPLES)?;
        }
        if let Some(seconds) = b.max_seconds {
            if !(seconds.is_finite() && seconds > 0.0 && seconds <= bounds::MAX_SECONDS) {
                return Err(SpecError::field(
                    "budget.max_seconds",
                    format!(
                        "must be a positive number of seconds, at most {}",
                        bounds::MAX_SECONDS
                    ),
                ));
            }
        }
        check_range(
            "budget.parallelism",
            b.parallelism,
            1,
            bounds::MAX_PARALLELISM,
        )?;
        Ok(())
    }

    fn check_training(&self) -> Result<(), SpecError> {
        let t = &self.training;
        check_range(
            "training.batch_size",
            t.batch_size,
            1,
            bounds::MAX_BATCH_SIZE,
        )?;
        if !(t.learning_rate.is_finite()
            && t.learning_rate > 0.0
            && t.learning_rate <= bounds::MAX_LEARNING_RATE)
        {
            return Err(SpecError::field(
                "training.learning_rate",
                format!(
                    "must be a positive number, at most {}",
                    bounds::MAX_LEARNING_RATE
                ),
            ));
        }
        if !(t.val_fraction > 0.0 && t.val_fraction <= 0.9) {
            return Err(SpecError::field(
                "training.val_fraction",
                "must be in (0, 0.9]: a trial is scored on its validation split",
            ));
        }
        Ok(())
    }

    /// The space must produce valid networks (its largest ones and a seeded
    /// sample), and its largest networks must fit `limits`.
    fn check_space(&self, dataset: &DatasetInfo, limits: &ResourceLimits) -> Result<(), SpecError> {
        let space = self.space.resolve()?;
        let (input, classes) = (dataset.input, dataset.classes);
        let batch = self.training.batch_size as usize;
        let worst = limits::worst_case(&space, input, classes, batch).map_err(|e| {
            SpecError::field("space", format!("its largest networks are invalid: {e}"))
        })?;
        limits.check(&worst).map_err(|e| {
            SpecError::field(
                "space",
                format!("its largest network on {}: {e}", dataset.name),
            )
        })?;
        let mut rng = crate::seeded_rng(self.seed);
        for _ in 0..bounds::SAMPLES_AT_SUBMISSION {
            crate::sample(&space, input, classes, &mut rng).map_err(|e| {
                SpecError::field("space", format!("it produced an invalid network: {e}"))
            })?;
        }
        Ok(())
    }

    /// The catalogue entry of the spec's dataset; an unknown name is an
    /// error naming it.
    pub fn dataset_info(&self) -> Result<&'static DatasetInfo, SpecError> {
        dataset::dataset(&self.dataset).map_err(|e| SpecError::field("dataset", e.to_string()))
    }

    /// The baselines built for the dataset's input and classes, checked.
    pub fn baseline_architectures(&self) -> Result<Vec<(String, crate::Architecture)>, SpecError> {
        let info = self.dataset_info()?;
        let (input, classes) = (info.input, info.classes);
        if self.baselines.len() > bounds::MAX_BASELINES {
            let most = bounds::MAX_BASELINES;
            return Err(SpecError::field(
                "baselines",
                format!("at most {most} baselines"),
            ));
        }
        self.baselines
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let field = format!("baselines[{i}]");
                let arch = crate::zoo::build(name, input, classes, 1.0)
                    .map_err(|e| SpecError::field(&field, e.to_string()))?;
                crate::validate(&arch).map_err(|e| {
                    SpecError::field(&field, format!("{name} does not fit {}: {e}", self.dataset))
                })?;
                Ok((name.clone(), arch))
            })
            .collect()
    }

    /// The required labels as stored: sorted, comma-joined.
    pub fn label_key(&self) -> String {
        let mut labels = self.labels.clone();
        labels.sort();
        labels.dedup();
        labels.join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: &str) -> Result<SearchSpec, String> {
        let spec: SearchSpec = serde_json::from_str(json).map_err(|e| e.to_string())?;
        spec.check().map_err(|e| e.to_string())?;
        Ok(spec)
    }

    #[test]
    fn defaults_fill_a_minimal_spec() {
        let s = spec(r#"{"name": "x", "dataset": "fashion-mnist"}"#).expect("valid");
        assert_eq!(s.budget.max_trials, 20);
        assert_eq!(s.space, SpaceRef::Preset("micro".into()));
        assert_eq!(s.max_attempts, 3);
    }

    #[test]
    fn bad_fields_are_named() {
        let cases = [
            (
                r#"{"name": "x", "dataset": "imagenet"}"#,
                "dataset: unknown dataset `imagenet`",
            ),
            (
                r#"{"name": "x", "dataset": "mnist", "space": "huge"}"#,
                "space:",
            ),
            (
                r#"{"name": "x", "dataset": "mnist", "budget": {"max_trials": 0}}"#,
                "budget.max_trials:",
            ),
            (
                r#"{"name": "x", "dataset": "mnist", "objective": {"latency": {"target_ms": -1}}}"#,
                "objective.latency.target_ms",
            ),
            (r#"{"name": "", "dataset": "mnist"}"#, "name:"),
        ];
        for (json, want) in cases {
            let err = spec(json).expect_err(json);
            assert!(err.contains(want), "{json}: {err}");
        }
    }
}
