//! What a user submits: a search spec, checked field by field.

use crate::dataset::{self, DatasetFacts, DatasetInfo};
use crate::fidelity::Scheduler;
use crate::limits::{self, Footprint, ResourceLimits};
use crate::recipe::{Augmentation, OptimizerKind, Schedule};
pub use crate::spec_error::SpecError;
use crate::{Objective, SearchSpace, Strategy};
use serde::{Deserialize, Serialize};

/// A search space by preset name or written out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SpaceRef {
    /// A preset: micro (a smoke test), small, classic, mobile or full.
    Preset(String),
    /// A full space.
    Inline(Box<SearchSpace>),
}

/// The schema the API documents: a preset's name (one of
/// [`crate::space::PRESETS`], as an enum) or a space written out.
#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for SpaceRef {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
        OneOfBuilder::new()
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(crate::space::PRESETS))
                    .description(Some(
                        "A preset: micro (a smoke test), small, classic, mobile or full.",
                    )),
            )
            .item(utoipa::openapi::Ref::from_schema_name("SearchSpace"))
            .description(Some("A search space by preset name or written out."))
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for SpaceRef {
    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        schemas.push((
            "SearchSpace".into(),
            <SearchSpace as utoipa::PartialSchema>::schema(),
        ));
        <SearchSpace as utoipa::ToSchema>::schemas(schemas);
    }
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
    /// Training epochs per trial without a multi-fidelity scheduler
    /// (default 1); with one, its rungs decide.
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 1000))]
    pub epochs: u32,
    /// Compute budget: epochs trained in all, over every trial and rung
    /// (default: none). No trial or promotion starts that would exceed it,
    /// so strategies can be compared at equal compute.
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 100_000_000))]
    pub max_epochs_total: Option<u64>,
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
            max_epochs_total: None,
            max_train_samples: None,
            max_seconds: None,
            parallelism: 2,
        }
    }
}

/// The training recipe of a search's trials (and, unless the final
/// training names its own, of its final models).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Training {
    /// Images per step (default 64).
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 4096))]
    pub batch_size: u32,
    /// Base learning rate (default: the optimiser's usual one, 1e-3 for
    /// Adam and AdamW, 0.05 for SGD).
    #[cfg_attr(feature = "openapi", schema(exclusive_minimum = 0, maximum = 10))]
    pub learning_rate: Option<f64>,
    /// Optimiser (default Adam).
    pub optimizer: OptimizerKind,
    /// Learning-rate schedule over the trial's planned epochs (default constant).
    pub schedule: Schedule,
    /// Label smoothing in `[0, 0.5]` (default 0).
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 0.5))]
    pub label_smoothing: f64,
    /// Augmentation (default none).
    pub augmentation: Augmentation,
    /// Fraction of the training set held out for validation (default 0.1).
    #[cfg_attr(feature = "openapi", schema(exclusive_minimum = 0, maximum = 0.9))]
    pub val_fraction: f64,
}

impl Default for Training {
    fn default() -> Self {
        Self {
            batch_size: 64,
            learning_rate: None,
            optimizer: OptimizerKind::default(),
            schedule: Schedule::default(),
            label_smoothing: 0.0,
            augmentation: Augmentation::default(),
            val_fraction: 0.1,
        }
    }
}

impl Training {
    /// The base learning rate: as given, or the optimiser's usual one.
    pub fn learning_rate(&self) -> f64 {
        self.learning_rate
            .unwrap_or_else(|| self.optimizer.default_lr())
    }

    /// Checks the recipe; `field` (`training`, `final.training`) prefixes
    /// the names in errors.
    pub fn check(&self, field: &str) -> Result<(), SpecError> {
        let at = |name: &str| format!("{field}.{name}");
        check_range(
            &at("batch_size"),
            self.batch_size,
            1,
            bounds::MAX_BATCH_SIZE,
        )?;
        if let Some(lr) = self.learning_rate {
            if !(lr.is_finite() && lr > 0.0 && lr <= bounds::MAX_LEARNING_RATE) {
                return Err(SpecError::field(
                    &at("learning_rate"),
                    format!(
                        "must be a positive number, at most {}",
                        bounds::MAX_LEARNING_RATE
                    ),
                ));
            }
        }
        self.optimizer.check(&at("optimizer"))?;
        self.schedule.check(&at("schedule"))?;
        let smoothing = self.label_smoothing;
        if !(smoothing.is_finite()
            && (0.0..=crate::recipe::MAX_LABEL_SMOOTHING).contains(&smoothing))
        {
            return Err(SpecError::field(
                &at("label_smoothing"),
                format!(
                    "must be between 0 and {}",
                    crate::recipe::MAX_LABEL_SMOOTHING
                ),
            ));
        }
        check_range(
            &at("augmentation.crop_padding"),
            self.augmentation.crop_padding,
            0,
            crate::recipe::MAX_CROP_PADDING,
        )?;
        if !(self.val_fraction > 0.0 && self.val_fraction <= 0.9) {
            return Err(SpecError::field(
                &at("val_fraction"),
                "must be in (0, 0.9]: a trial is scored on its validation split",
            ));
        }
        Ok(())
    }
}

/// Final training: once the search ends, its best distinct architectures
/// (best-informed: highest rung, then reward) are trained from scratch on
/// training + validation data, tested once on the held-out test set and
/// measured again.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FinalTraining {
    /// How many architectures (default 3).
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 20))]
    pub top_k: u32,
    /// Epochs each (default 30).
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 1000))]
    pub epochs: u32,
    /// The recipe (default: the search's `training`).
    pub training: Option<Training>,
    /// Wall time the final models may take to train in all, seconds
    /// (default: none). Each is estimated from the throughput its search
    /// trial measured (images per second, on one agent's share of the
    /// cores, so an overestimate where a final model gets them all) times
    /// the training images and `epochs`; the search's baselines count
    /// first, then the picks in their order of preference while they fit.
    /// If none fits, the one estimated fastest is trained alone.
    #[cfg_attr(
        feature = "openapi",
        schema(exclusive_minimum = 0, maximum = 2_592_000)
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_seconds: Option<f64>,
}

impl Default for FinalTraining {
    fn default() -> Self {
        Self {
            top_k: 3,
            epochs: 30,
            training: None,
            max_seconds: None,
        }
    }
}

impl FinalTraining {
    /// Checks it against the search's budget: `top_k` cannot exceed the
    /// trials the search may run.
    pub fn check(&self, max_trials: u32) -> Result<(), SpecError> {
        check_range("final.top_k", self.top_k, 1, bounds::MAX_FINAL_MODELS)?;
        if self.top_k > max_trials {
            return Err(SpecError::field(
                "final.top_k",
                format!("must not exceed budget.max_trials ({max_trials}): there would not be {} architectures to train", self.top_k),
            ));
        }
        check_range("final.epochs", self.epochs, 1, bounds::MAX_EPOCHS)?;
        if let Some(seconds) = self.max_seconds {
            if !(seconds.is_finite() && seconds > 0.0 && seconds <= bounds::MAX_SECONDS) {
                return Err(SpecError::field(
                    "final.max_seconds",
                    format!(
                        "must be a positive number of seconds, at most {}",
                        bounds::MAX_SECONDS
                    ),
                ));
            }
        }
        if let Some(training) = &self.training {
            training.check("final.training")?;
        }
        Ok(())
    }

    /// The recipe of the final models, given the search's.
    pub fn recipe<'a>(&'a self, search: &'a Training) -> &'a Training {
        self.training.as_ref().unwrap_or(search)
    }
}

/// A search as submitted.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchSpec {
    /// A name for people.
    #[cfg_attr(
        feature = "openapi",
        schema(
            pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$",
            max_length = 200
        )
    )]
    pub name: String,
    /// A dataset of the catalogue ([`crate::dataset::CATALOG`]) or an
    /// uploaded one, by name or id (`GET /datasets` lists both).
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 200))]
    pub dataset: String,
    /// The content id (SHA-256) of the uploaded dataset the search trains
    /// on. The server records it at submission, so moving the name to new
    /// content later never changes what this search uses; a spec that
    /// gives it (copied from an earlier search) runs on exactly that
    /// content. Absent for the catalogue's datasets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = "^[0-9a-f]{64}$", min_length = 64, max_length = 64)
    )]
    pub dataset_id: Option<String>,
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
    /// Training recipe.
    #[serde(default)]
    pub training: Training,
    /// Multi-fidelity scheduling (default none: every trial trains
    /// `budget.epochs`).
    #[serde(default)]
    pub scheduler: Scheduler,
    /// Final training of the best architectures once the search ends
    /// (default none; `POST /searches/{id}/final` starts it later).
    #[serde(default, rename = "final", skip_serializing_if = "Option::is_none")]
    pub final_training: Option<FinalTraining>,
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
    /// Most final models.
    pub const MAX_FINAL_MODELS: u32 = 20;
    /// Largest compute budget, epochs.
    pub const MAX_EPOCHS_TOTAL: u64 = 100_000_000;
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
    /// the first bad one (the dataset must be in the catalogue).
    pub fn check(&self) -> Result<(), SpecError> {
        self.check_with(&ResourceLimits::default())
    }

    /// [`SearchSpec::check_on`] the catalogue dataset the spec names.
    pub fn check_with(&self, limits: &ResourceLimits) -> Result<(), SpecError> {
        check_text("dataset", &self.dataset, bounds::MAX_NAME_CHARS)?;
        let dataset = self.dataset_info()?.facts();
        self.check_on(&dataset, limits)
    }

    /// Checks every field against `dataset` (what the spec's `dataset`
    /// resolved to), naming the first bad one: every number bounded, texts
    /// without control characters, the space by its largest network
    /// against `limits` and by sampling it, the baselines against `limits`.
    pub fn check_on(
        &self,
        dataset: &DatasetFacts,
        limits: &ResourceLimits,
    ) -> Result<(), SpecError> {
        check_text("name", &self.name, bounds::MAX_NAME_CHARS)?;
        check_text("dataset", &self.dataset, bounds::MAX_NAME_CHARS)?;
        if let Some(id) = &self.dataset_id {
            if !dataset::is_content_id(id) {
                return Err(SpecError::field(
                    "dataset_id",
                    "must be a content id: 64 lowercase hex digits",
                ));
            }
        }
        self.strategy
            .check()
            .map_err(|e| SpecError::field("strategy", e.to_string()))?;
        self.objective
            .check()
            .map_err(|e| SpecError::field(&format!("objective.{}", e.field), e.message.clone()))?;
        self.check_budget()?;
        self.check_training()?;
        check_range("max_attempts", self.max_attempts, 1, bounds::MAX_ATTEMPTS)?;
        check_labels("labels", &self.labels)?;
        if let Some(latency) = &self.objective.latency {
            check_labels("objective.latency.device", &latency.device)?;
        }
        self.check_space(dataset, limits)?;
        for (i, (name, arch)) in self.baseline_architectures(dataset)?.iter().enumerate() {
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
        if let Some(n) = b.max_epochs_total {
            check_range("budget.max_epochs_total", n, 1, bounds::MAX_EPOCHS_TOTAL)?;
            let first = u64::from(self.first_rung_epochs());
            if n < first {
                return Err(SpecError::field(
                    "budget.max_epochs_total",
                    format!("must allow at least one trial's first {first} epochs"),
                ));
            }
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
        self.training.check("training")?;
        self.scheduler.check(bounds::MAX_EPOCHS)?;
        if let Some(final_training) = &self.final_training {
            final_training.check(self.budget.max_trials)?;
        }
        Ok(())
    }

    /// The epoch at which each of a trial's rungs ends (one rung of
    /// `budget.epochs` without a scheduler).
    pub fn rungs(&self) -> Vec<u32> {
        self.scheduler.rungs(self.budget.epochs)
    }

    /// Epochs a new trial trains before it is first judged.
    pub fn first_rung_epochs(&self) -> u32 {
        self.rungs().first().copied().unwrap_or(self.budget.epochs)
    }

    /// Epochs a trial trains at most (the learning-rate schedule's horizon).
    pub fn planned_epochs(&self) -> u32 {
        self.rungs().last().copied().unwrap_or(self.budget.epochs)
    }

    /// The space must produce valid networks (its largest ones and a seeded
    /// sample), and its largest networks must fit `limits`.
    fn check_space(
        &self,
        dataset: &DatasetFacts,
        limits: &ResourceLimits,
    ) -> Result<(), SpecError> {
        let space = self.space.resolve()?;
        let (input, classes) = (dataset.input, dataset.classes());
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
    /// error naming it. An uploaded dataset (`dataset_id` set) is not in
    /// the catalogue: the store resolves those.
    pub fn dataset_info(&self) -> Result<&'static DatasetInfo, SpecError> {
        if self.dataset_id.is_some() {
            return Err(SpecError::field(
                "dataset",
                format!(
                    "`{}` is an uploaded dataset, not one of the catalogue",
                    self.dataset
                ),
            ));
        }
        dataset::dataset(&self.dataset).map_err(|e| SpecError::field("dataset", e.to_string()))
    }

    /// The baselines built for `dataset`'s input and classes, checked.
    pub fn baseline_architectures(
        &self,
        dataset: &DatasetFacts,
    ) -> Result<Vec<(String, crate::Architecture)>, SpecError> {
        let (input, classes) = (dataset.input, dataset.classes());
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
                    SpecError::field(&field, format!("{name} does not fit {}: {e}", dataset.name))
                })?;
                Ok((name.clone(), arch))
            })
            .collect()
    }

    /// The required labels as stored, sorted and comma-joined: the spec's
    /// `labels`, the latency target's `device` class and the label of the
    /// runtime it is measured in (`onnxruntime`).
    pub fn label_key(&self) -> String {
        let mut labels = self.labels.clone();
        if let Some(latency) = &self.objective.latency {
            labels.extend(latency.device.iter().cloned());
            labels.extend(latency.runtime.required_label().map(str::to_owned));
        }
        labels.sort();
        labels.dedup();
        labels.join(",")
    }
}

/// Worker labels at `field`: bounded in number and length, no commas.
fn check_labels(field: &str, labels: &[String]) -> Result<(), SpecError> {
    if labels.len() > bounds::MAX_LABELS {
        let most = bounds::MAX_LABELS;
        return Err(SpecError::field(field, format!("at most {most} labels")));
    }
    for (i, label) in labels.iter().enumerate() {
        check_text(&format!("{field}[{i}]"), label, bounds::MAX_LABEL_CHARS)?;
        if label.contains(',') {
            return Err(SpecError::field(
                &format!("{field}[{i}]"),
                format!("label `{label}` must not contain commas"),
            ));
        }
    }
    Ok(())
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
    fn the_onnxruntime_runtime_requires_its_label() {
        let spec: SearchSpec = serde_json::from_str(
            r#"{"name": "o", "dataset": "mnist", "labels": ["cpu"],
                "objective": {"latency": {"target_ms": 1.0, "runtime": "onnxruntime"}}}"#,
        )
        .expect("spec");
        assert_eq!(spec.objective.runtime(), crate::Runtime::Onnxruntime);
        assert_eq!(spec.label_key(), "cpu,onnxruntime");
        let nas: SearchSpec = serde_json::from_str(
            r#"{"name": "n", "dataset": "mnist", "objective": {"latency": {"target_ms": 1.0}}}"#,
        )
        .expect("spec");
        assert_eq!(nas.objective.runtime(), crate::Runtime::Nas);
        assert_eq!(nas.label_key(), "");
        assert!(!serde_json::to_string(&nas)
            .expect("json")
            .contains("runtime"));
        let bad = serde_json::from_str::<SearchSpec>(
            r#"{"name": "b", "dataset": "mnist", "objective": {"latency": {"target_ms": 1.0, "runtime": "tensorrt"}}}"#,
        );
        assert!(bad.is_err());
    }

    #[test]
    fn the_latency_device_class_joins_the_required_labels() {
        let s = spec(
            r#"{"name": "d", "dataset": "mnist", "labels": ["gpu-free"],
                "objective": {"latency": {"target_ms": 1.0, "device": ["avx512f", "gpu-free"]}}}"#,
        )
        .expect("valid");
        assert_eq!(s.label_key(), "avx512f,gpu-free");
        let e = spec(
            r#"{"name": "d", "dataset": "mnist", "objective": {"latency": {"target_ms": 1.0, "device": [""]}}}"#,
        )
        .expect_err("an empty label");
        assert!(e.contains("objective.latency.device[0]"), "{e}");
    }

    #[test]
    fn defaults_fill_a_minimal_spec() {
        let s = spec(r#"{"name": "x", "dataset": "fashion-mnist"}"#).expect("valid");
        assert_eq!(s.budget.max_trials, 20);
        assert_eq!(s.space, SpaceRef::Preset("micro".into()));
        assert_eq!(s.max_attempts, 3);
        assert_eq!(s.scheduler, Scheduler::None);
        assert_eq!(s.training.learning_rate(), 1e-3);
        assert_eq!(s.rungs(), vec![1]);
    }

    #[test]
    fn asha_and_final_training_read_with_defaults() {
        let s = spec(
            r#"{"name": "x", "dataset": "fashion-mnist", "scheduler": {"kind": "asha"},
                "final": {}, "training": {"optimizer": {"kind": "sgd", "nesterov": true},
                "schedule": {"kind": "cosine", "warmup_epochs": 1}}}"#,
        )
        .expect("valid");
        assert_eq!(s.rungs(), vec![1, 3, 9, 27]);
        assert_eq!((s.first_rung_epochs(), s.planned_epochs()), (1, 27));
        let f = s.final_training.as_ref().expect("final");
        assert_eq!((f.top_k, f.epochs), (3, 30));
        assert_eq!(s.training.learning_rate(), 0.05);
        let again: SearchSpec =
            serde_json::from_str(&serde_json::to_string(&s).expect("json")).expect("reads back");
        assert_eq!(again, s);
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
            (
                r#"{"name": "x", "dataset": "mnist", "scheduler": {"kind": "asha", "eta": 1}}"#,
                "scheduler.eta:",
            ),
            (
                r#"{"name": "x", "dataset": "mnist", "scheduler": {"kind": "asha", "min_epochs": 9, "max_epochs": 3}}"#,
                "scheduler.min_epochs:",
            ),
            (
                r#"{"name": "x", "dataset": "mnist", "budget": {"max_trials": 4}, "final": {"top_k": 5}}"#,
                "final.top_k:",
            ),
            (
                r#"{"name": "x", "dataset": "mnist", "training": {"label_smoothing": 0.9}}"#,
                "training.label_smoothing:",
            ),
            (
                r#"{"name": "x", "dataset": "mnist", "training": {"optimizer": {"kind": "sgd", "momentum": 1.5}}}"#,
                "training.optimizer.momentum:",
            ),
            (
                r#"{"name": "x", "dataset": "mnist", "final": {"training": {"batch_size": 0}}}"#,
                "final.training.batch_size:",
            ),
            (
                r#"{"name": "x", "dataset": "mnist", "scheduler": {"kind": "asha", "min_epochs": 3}, "budget": {"max_epochs_total": 2}}"#,
                "budget.max_epochs_total:",
            ),
        ];
        for (json, want) in cases {
            let err = spec(json).expect_err(json);
            assert!(err.contains(want), "{json}: {err}");
        }
    }
}
