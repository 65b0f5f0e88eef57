//! What a trial reports: its final result, its progress while it trains, and
//! the error of each failed attempt. The worker writes these types, the store
//! keeps them (as JSON text), the API returns them and the dashboard and CLI
//! read their documented fields. Units are in the field names or docs.
//!
//! The JSON form is versioned by [`TRIAL_RESULT_VERSION`]; rows written
//! before the version was stamped read as version 1 (the same fields).

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The version of the trial-result JSON format this crate writes.
pub const TRIAL_RESULT_VERSION: u32 = 1;

fn first_version() -> u32 {
    1
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Batch-1 inference latency of a network, milliseconds.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LatencyMs {
    /// Median, milliseconds: the figure the objective and the leaderboard use.
    pub p50: f64,
    /// 90th percentile, milliseconds.
    pub p90: f64,
    /// Fastest run, milliseconds (absent in results written before the
    /// measurement protocol reported it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// Lower end of the median's 95% confidence interval, milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci_low: Option<f64>,
    /// Upper end of the median's 95% confidence interval, milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci_high: Option<f64>,
    /// Timed runs behind the figures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runs: Option<u32>,
    /// The interval stayed wider than ±5% after every attempt: the figure
    /// is less trustworthy than the others.
    #[serde(default, skip_serializing_if = "is_false")]
    pub unstable: bool,
    /// Wall time the measurement took (warm-up, attempts and waiting for a
    /// quiet host), seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds: Option<f64>,
    /// The median normalised to the reference device: `p50` divided by the
    /// measuring worker's speed factor (absent for uncalibrated workers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference_p50: Option<f64>,
    /// The figures are the device's latency predictor's, not a measurement
    /// (a candidate refused without being built).
    #[serde(default, skip_serializing_if = "is_false")]
    pub predicted: bool,
    /// The median of this measurement's own run times, milliseconds: the
    /// absolute figure, as the machine's state of the moment made it
    /// (`p50` is on the relative basis when `ratio` is present).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_p50: Option<f64>,
    /// The median of the per-pair ratios candidate / device reference
    /// network, timed in alternation: `p50` is this times `basis_p50`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ratio: Option<f64>,
    /// The device reference network's established p50, milliseconds: the
    /// basis relative figures are expressed on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basis_p50: Option<f64>,
    /// The engine it was measured in (absent: `nas`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<crate::Runtime>,
}

impl LatencyMs {
    /// Figures with only a median and 90th percentile (tests, old rows).
    pub fn of(p50: f64, p90: f64) -> Self {
        Self {
            p50,
            p90,
            min: None,
            ci_low: None,
            ci_high: None,
            runs: None,
            unstable: false,
            seconds: None,
            reference_p50: None,
            predicted: false,
            raw_p50: None,
            ratio: None,
            basis_p50: None,
            runtime: None,
        }
    }
}

/// The result of a trial that ended with a measurement: a trained network
/// (`succeeded`) or one rejected over the hard latency limit before any
/// training (`rejected`, with no accuracy and no reward).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrialResult {
    /// Format version; [`TRIAL_RESULT_VERSION`] when written.
    #[serde(default = "first_version")]
    pub version: u32,
    /// Measured batch-1 inference latency.
    pub latency_ms: LatencyMs,
    /// The median of every measurement of this trial so far, in order,
    /// milliseconds: a trial is measured again at each unit of work (each
    /// rung), and `latency_ms.p50` is then the median of these while its
    /// other figures describe the latest measurement. Empty in results of
    /// a single measurement.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub latency_measurements_ms: Vec<f64>,
    /// Trainable parameters of the network.
    pub params: u64,
    /// Multiply-accumulates per image.
    pub macs: u64,
    /// Fingerprint of the device the latency was measured on.
    pub device: String,
    /// Accuracy on the held-out validation split, in `[0, 1]`; absent when
    /// the trial was not trained (rejected) or had no validation split.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_accuracy: Option<f64>,
    /// Accuracy on the dataset's test split, in `[0, 1]`, when it was evaluated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_accuracy: Option<f64>,
    /// The objective's reward (ranks the leaderboard, feeds the strategy);
    /// absent for rejected trials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reward: Option<f64>,
    /// Wall time spent training, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_seconds: Option<f64>,
    /// Training throughput, images per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub images_per_second: Option<f64>,
    /// Threads the training ran on (a final model may get every core of
    /// its worker process; see `worker::cores`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_threads: Option<u32>,
    /// Epochs trained.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epochs: Option<u32>,
    /// Time this trial's batches waited while other agents of its host
    /// measured latency, seconds (the price of measuring on a quiet host).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused_seconds: Option<f64>,
    /// Why the trial was not trained (rejected trials), e.g. `over the hard latency limit`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Set by `nas bench seed`: made-up figures, no network was trained.
    #[serde(default, skip_serializing_if = "is_false")]
    pub synthetic: bool,
    /// A final model's class names in label order (output `i` scores
    /// `class_names[i]`), so a deployed model can name its predictions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class_names: Option<Vec<String>>,
}

/// Why a stored result could not be read.
#[derive(Debug, Error)]
pub enum ResultError {
    /// Not the JSON of a [`TrialResult`] (or its progress or errors).
    #[error("invalid trial result JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// A format version this build does not read.
    #[error("trial result format version {found} is not supported (this build reads up to {TRIAL_RESULT_VERSION})")]
    Version {
        /// The version in the document.
        found: u32,
    },
}

impl TrialResult {
    /// A result for a network measured but not (yet) trained.
    pub fn measured(latency_ms: LatencyMs, params: u64, macs: u64, device: String) -> Self {
        Self {
            version: TRIAL_RESULT_VERSION,
            latency_ms,
            latency_measurements_ms: Vec::new(),
            params,
            macs,
            device,
            val_accuracy: None,
            test_accuracy: None,
            reward: None,
            train_seconds: None,
            images_per_second: None,
            train_threads: None,
            epochs: None,
            paused_seconds: None,
            reason: None,
            synthetic: false,
            class_names: None,
        }
    }

    /// Made-up figures for load tests and benchmarks of the queue and the
    /// API (`nas bench seed`): marked [`synthetic`](Self::synthetic).
    pub fn synthetic(accuracy: f64, latency_p50_ms: f64, reward: f64) -> Self {
        let latency = LatencyMs::of(latency_p50_ms, latency_p50_ms * 1.1);
        Self {
            val_accuracy: Some(accuracy),
            reward: Some(reward),
            synthetic: true,
            ..Self::measured(latency, 0, 0, "synthetic".into())
        }
    }

    /// Every measurement's median behind `latency_ms.p50`:
    /// `latency_measurements_ms`, or `p50` alone for a result of one
    /// measurement (none for a prediction).
    pub fn all_latency_measurements(&self) -> Vec<f64> {
        match (
            self.latency_ms.predicted,
            self.latency_measurements_ms.is_empty(),
        ) {
            (true, _) => Vec::new(),
            (false, true) => vec![self.latency_ms.p50],
            (false, false) => self.latency_measurements_ms.clone(),
        }
    }

    /// Reads a stored result, accepting every version up to this build's.
    pub fn from_json(json: &str) -> Result<Self, ResultError> {
        let result: Self = serde_json::from_str(json)?;
        if result.version == 0 || result.version > TRIAL_RESULT_VERSION {
            return Err(ResultError::Version {
                found: result.version,
            });
        }
        Ok(result)
    }

    /// The JSON form, as stored.
    pub fn to_json(&self) -> String {
        to_json(self)
    }

    /// The accuracy the objective ranks by: validation accuracy, 0 when the
    /// trial had none.
    pub fn accuracy(&self) -> f64 {
        self.val_accuracy.unwrap_or(0.0)
    }
}

/// A running attempt's last reported progress.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrialProgress {
    /// Epochs finished so far (1-based number of the last one).
    pub epoch: u32,
    /// Epochs the attempt will train in all.
    pub epochs: u32,
    /// Mean training loss of the last finished epoch.
    pub train_loss: f64,
    /// Validation accuracy after the last finished epoch, in `[0, 1]`.
    #[serde(default)]
    pub val_accuracy: Option<f64>,
}

impl TrialProgress {
    /// Reads stored progress.
    pub fn from_json(json: &str) -> Result<Self, ResultError> {
        Ok(serde_json::from_str(json)?)
    }

    /// The JSON form, as stored.
    pub fn to_json(&self) -> String {
        to_json(self)
    }
}

/// Why one attempt of a trial failed.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptError {
    /// The attempt's number (1 for the first).
    pub attempt: i64,
    /// What went wrong, in words.
    pub error: String,
    /// When, Unix milliseconds.
    pub at_ms: i64,
}

impl AttemptError {
    /// Reads a stored list of attempt errors (a JSON array).
    pub fn list_from_json(json: &str) -> Result<Vec<Self>, ResultError> {
        Ok(serde_json::from_str(json)?)
    }

    /// The JSON array form of `errors`, as stored.
    pub fn list_to_json(errors: &[Self]) -> String {
        to_json(&errors)
    }
}

/// Serialises plain data (string keys, finite or null numbers): cannot fail.
fn to_json(value: &impl Serialize) -> String {
    match serde_json::to_string(value) {
        Ok(json) => json,
        // Only maps with non-string keys or failing Serialize impls error;
        // these types have neither.
        Err(e) => unreachable!("plain data serialises: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Results as the first release wrote them (no version field).
    const SUCCEEDED_V1: &str = r#"{"device":"x86_64 avx2 2 threads","epochs":1,"images_per_second":5120.5,"latency_ms":{"p50":0.193,"p90":0.25},"macs":969104,"params":2342,"reward":0.6919,"train_seconds":1.2,"val_accuracy":0.6473}"#;
    const REJECTED_V1: &str = r#"{"device":"x86_64","latency_ms":{"p50":9.5,"p90":11.0},"macs":1,"params":2,"reason":"over the hard latency limit"}"#;

    #[test]
    fn results_written_before_the_version_field_still_load() {
        let r = TrialResult::from_json(SUCCEEDED_V1).expect("loads");
        assert_eq!(r.version, 1);
        assert_eq!(r.val_accuracy, Some(0.6473));
        assert_eq!(r.latency_ms.p50, 0.193);
        assert_eq!(r.epochs, Some(1));
        assert_eq!(r.reward, Some(0.6919));
        let rejected = TrialResult::from_json(REJECTED_V1).expect("loads");
        assert_eq!(rejected.reward, None);
        assert_eq!(
            rejected.reason.as_deref(),
            Some("over the hard latency limit")
        );
    }

    #[test]
    fn a_result_round_trips_and_bad_ones_are_errors() {
        let r = TrialResult::from_json(SUCCEEDED_V1).expect("loads");
        assert_eq!(TrialResult::from_json(&r.to_json()).ok(), Some(r));
        assert!(TrialResult::from_json("{}").is_err());
        assert!(TrialResult::from_json(r#"{"version": 99, "device": "", "latency_ms": {"p50": 1, "p90": 1}, "params": 1, "macs": 1}"#).is_err());
    }

    #[test]
    fn progress_and_attempt_errors_round_trip() {
        let p = TrialProgress {
            epoch: 2,
            epochs: 5,
            train_loss: 0.5,
            val_accuracy: Some(0.8),
        };
        assert_eq!(TrialProgress::from_json(&p.to_json()).ok(), Some(p));
        let old = r#"[{"at_ms":17,"attempt":1,"error":"lease expired"}]"#;
        let errors = AttemptError::list_from_json(old).expect("loads");
        assert_eq!(errors[0].error, "lease expired");
        let again = AttemptError::list_from_json(&AttemptError::list_to_json(&errors));
        assert_eq!(again.ok(), Some(errors));
    }
}
