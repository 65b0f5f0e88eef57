//! What a user submits: a search spec, checked field by field.

use crate::dataset::{self, DatasetInfo};
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
    #[cfg_attr(feature = "openapi", schema(minimum = 1))]
    pub max_train_samples: Option<u32>,
    /// Wall time of the whole search, seconds; no new trials after it (default: none).
    #[cfg_attr(feature = "openapi", schema(exclusive_minimum = 0))]
    pub max_seconds: Option<f64>,
    /// Trials queued or running at once (default 2).
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 10_000))]
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
    #[cfg_attr(feature = "openapi", schema(minimum = 1))]
    pub batch_size: u32,
    /// Learning rate (default 1e-3, Adam).
    #[cfg_attr(feature = "openapi", schema(exclusive_minimum = 0))]
    pub learning_rate: f64,
    /// Fraction of the training set held out for validation (default 0.1).
    #[cfg_attr(feature = "openapi", schema(minimum = 0, exclusive_maximum = 1))]
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
    #[cfg_attr(feature = "openapi", schema(pattern = r"\S"))]
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
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 100))]
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

impl SearchSpec {
    /// Checks every field, naming the first bad one.
    pub fn check(&self) -> Result<(), SpecError> {
        if self.name.trim().is_empty() {
            return Err(SpecError::field("name", "must not be empty"));
        }
        self.dataset_info()?;
        self.space.resolve()?;
        self.strategy
            .check()
            .map_err(|e| SpecError::field("strategy", e.to_string()))?;
        self.objective
            .check()
            .map_err(|e| SpecError::field(&format!("objective.{}", e.field), e.message.clone()))?;
        let b = &self.budget;
        if b.max_trials == 0 || b.max_trials > 100_000 {
            return Err(SpecError::field(
                "budget.max_trials",
                "must be between 1 and 100000",
            ));
        }
        if b.epochs == 0 || b.epochs > 1000 {
            return Err(SpecError::field(
                "budget.epochs",
                "must be between 1 and 1000",
            ));
        }
        if b.max_train_samples == Some(0) {
            return Err(SpecError::field(
                "budget.max_train_samples",
                "must be at least 1",
            ));
        }
        if b.max_seconds.is_some_and(|s| !(s.is_finite() && s > 0.0)) {
            return Err(SpecError::field(
                "budget.max_seconds",
                "must be a positive number",
            ));
        }
        if b.parallelism == 0 || b.parallelism > 10_000 {
            return Err(SpecError::field(
                "budget.parallelism",
                "must be between 1 and 10000",
            ));
        }
        let t = &self.training;
        if t.batch_size == 0 {
            return Err(SpecError::field(
                "training.batch_size",
                "must be at least 1",
            ));
        }
        if !(t.learning_rate.is_finite() && t.learning_rate > 0.0) {
            return Err(SpecError::field(
                "training.learning_rate",
                "must be a positive number",
            ));
        }
        if !(0.0..1.0).contains(&t.val_fraction) {
            return Err(SpecError::field(
                "training.val_fraction",
                "must be in [0, 1)",
            ));
        }
        if self.max_attempts == 0 || self.max_attempts > 100 {
            return Err(SpecError::field(
                "max_attempts",
                "must be between 1 and 100",
            ));
        }
        self.baseline_architectures()?;
        if let Some(bad) = self.labels.iter().find(|l| l.is_empty() || l.contains(',')) {
            return Err(SpecError::field(
                "labels",
                format!("label `{bad}` must be non-empty without commas"),
            ));
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
        if self.baselines.len() > 20 {
            return Err(SpecError::field("baselines", "at most 20 baselines"));
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
