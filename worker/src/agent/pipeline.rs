//! One trial, start to end: validate and build the candidate, measure its
//! batch-1 latency, reject it over a hard latency limit, train it, evaluate
//! it and summarise it as a typed [`TrialResult`]. The worker loop
//! ([`crate::agent`]) and `nas train` both run trials through here, so a
//! trial means the same thing wherever it runs.
//!
//! The stages are types: a [`Candidate`] is built and validated, a
//! [`Measured`] one has its latency, and training turns it into a
//! [`TrialOutcome`]. [`run`] chains them for callers that want no say
//! between stages.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use search::limits::{bytes_text, Footprint};
use search::{Architecture, LatencyMs, Objective, Report, TrialResult};
use thiserror::Error;

use crate::host::HostGate;
use crate::latency::predict::{Predictor, TRUSTED_OBSERVATIONS};
use crate::latency::{self, Latency, LatencyConfig, LatencyError};
use crate::net::{Network, NetworkError};
use crate::train::checkpoint::{self, CheckpointError};
use crate::train::{EpochReport, Session, TrainConfig, TrainData, TrainError, TrainStatus};

/// Why a trial could not run to an outcome.
#[derive(Debug, Error)]
pub enum TrialError {
    /// The architecture is invalid or could not be built: no retry helps.
    #[error(transparent)]
    Network(#[from] NetworkError),
    /// Training could not start (bad settings, no threads).
    #[error(transparent)]
    Training(#[from] TrainError),
    /// Latency could not be measured (bad settings, no threads, the
    /// runtime refused the network).
    #[error(transparent)]
    Latency(#[from] LatencyError),
    /// Training the network would need more memory than this worker has.
    #[error("the network needs about {} of memory to train at batch {batch_size} (estimated), but this worker allows {}", bytes_text(*.needed), bytes_text(*.allowed))]
    TooBig {
        /// Estimated training memory, bytes.
        needed: u64,
        /// The worker's share of memory, bytes.
        allowed: u64,
        /// The batch size the estimate is for.
        batch_size: usize,
    },
    /// The objective scored the trained network with NaN or infinity.
    #[error("the objective gave a non-finite reward {reward} (accuracy {accuracy}, latency {latency_ms} ms)")]
    NonFiniteReward {
        /// The reward.
        reward: f64,
        /// The accuracy it was computed from.
        accuracy: f64,
        /// The latency it was computed from, milliseconds.
        latency_ms: f64,
    },
}

/// A validated, built candidate with freshly initialised weights.
#[derive(Debug)]
pub struct Candidate {
    network: Network,
    seed: u64,
}

impl Candidate {
    /// Validates `architecture` and builds it with weights drawn from `seed`.
    pub fn build(architecture: &Architecture, seed: u64) -> Result<Self, TrialError> {
        Ok(Self {
            network: Network::new(architecture, seed)?,
            seed,
        })
    }

    /// Builds `architecture`, already validated into `report`, with weights
    /// drawn from `seed`.
    pub fn from_validated(
        architecture: &Architecture,
        report: Report,
        seed: u64,
    ) -> Result<Self, TrialError> {
        Ok(Self {
            network: Network::from_validated(architecture, report, seed)?,
            seed,
        })
    }

    /// The shapes and costs `validate` computed for it.
    pub fn report(&self) -> &Report {
        self.network.report()
    }

    /// Measures its batch-1 inference latency as `meter` says (weights do
    /// not change the work done, so this runs before training); with a
    /// gate, the other agents of the host pause meanwhile.
    pub fn measure(mut self, meter: &latency::Meter<'_>) -> Result<Measured, TrialError> {
        let latency = latency::measure_with(&mut self.network, meter)?;
        tracing::info!(
            p50_ms = latency.p50,
            raw_p50_ms = latency.raw_p50,
            ratio = latency.ratio,
            runtime = %latency.runtime,
            ci_low = latency.ci_low,
            ci_high = latency.ci_high,
            runs = latency.runs,
            outliers = latency.outliers,
            attempts = latency.attempts,
            unstable = latency.unstable,
            cpus = ?latency.cpus,
            quiet_wait_ms = latency.quiet_wait_ms,
            seconds = latency.seconds_spent,
            params = self.report().params,
            "latency measured"
        );
        Ok(Measured {
            network: self.network,
            seed: self.seed,
            latency,
            speed_factor: None,
            earlier_ms: Vec::new(),
        })
    }
}

/// A candidate whose latency is known.
#[derive(Debug)]
pub struct Measured {
    network: Network,
    seed: u64,
    latency: Latency,
    /// The measuring device's speed factor against the reference device
    /// (see [`crate::latency::calibrate`]), if calibrated.
    speed_factor: Option<f64>,
    /// Medians of this trial's earlier measurements (at earlier rungs),
    /// milliseconds: the figure reported is the median of them all.
    earlier_ms: Vec<f64>,
}

/// Whether a trial's latency measurement may reject it. The hard limit is
/// decided once, before a trial's first epoch: later measurements (at the
/// next rung, or of its final model) only refine the figure, so a swing of
/// the machine can never erase trained work.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum LatencyLimit {
    /// A search candidate that has not trained yet: over the objective's
    /// hard limit it is rejected untrained (and a confident predictor may
    /// refuse it unbuilt).
    #[default]
    Decide,
    /// A search candidate that passed the limit and trained: this
    /// measurement joins the earlier ones (the medians of earlier
    /// measurements, milliseconds; the result's `p50` becomes the median of
    /// them all) and never rejects.
    Decided {
        /// Medians of the earlier measurements, milliseconds.
        earlier_ms: Vec<f64>,
    },
    /// A final model: measured and reported, never rejected for latency.
    Never,
}

impl LatencyLimit {
    /// Whether the measurement decides the hard limit.
    pub fn decides(&self) -> bool {
        matches!(self, Self::Decide)
    }

    fn earlier_ms(&self) -> &[f64] {
        match self {
            Self::Decided { earlier_ms } => earlier_ms,
            Self::Decide | Self::Never => &[],
        }
    }
}

/// Which split a trial's accuracy and reward come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ScoredOn {
    /// The validation split (search trials: the test set is never given).
    #[default]
    Validation,
    /// The held-out test set (final models, trained on training +
    /// validation data and tested once).
    Test,
}

/// How a trial trains besides its recipe: where it starts and what it
/// scores on.
#[derive(Debug, Clone, Default)]
pub struct TrainingRun<'a> {
    /// A checkpoint to go on from (a promoted trial, or a retry after a
    /// crash); one that does not fit the network or recipe is not loaded
    /// and training starts afresh.
    pub resume: Option<&'a [u8]>,
    /// Serialise a checkpoint after every epoch for the epoch callback.
    pub checkpoints: bool,
    /// The split the result is scored on.
    pub scored_on: ScoredOn,
    /// The host's latency gate: each batch waits out measurements.
    pub gate: Option<Arc<HostGate>>,
}

/// How a trial ended.
#[derive(Debug)]
pub enum TrialOutcome {
    /// Trained to the end of its budget: the trained network and its result.
    Trained {
        /// The trained network (for its weights).
        network: Box<Network>,
        /// Accuracies, latency, costs, reward, timing.
        result: TrialResult,
    },
    /// Over the objective's hard latency limit; never trained.
    Rejected {
        /// Latency and costs, with the reason.
        result: TrialResult,
    },
    /// The loss became NaN or infinite.
    Diverged {
        /// What the trainer saw.
        message: String,
        /// Latency and costs as measured before training.
        result: TrialResult,
    },
    /// The cancel flag was raised during training.
    Cancelled,
}

/// Why a measured candidate is not trained.
pub const REJECTED_REASON: &str = "over the hard latency limit";

/// Why a candidate is refused without being built or measured.
pub const PREDICTED_REJECTED_REASON: &str = "predicted far over the hard latency limit";

/// A candidate is refused without being built when its predicted latency
/// is more than this many times the hard limit: the predictor's error and
/// this machine's swings stay well inside it (see docs/latency.md), so nothing
/// that would measure under the limit is refused.
pub const PREDICTED_REFUSAL_MARGIN: f64 = 2.0;

impl Measured {
    /// The shapes and costs `validate` computed for it.
    pub fn report(&self) -> &Report {
        self.network.report()
    }

    /// The measurement.
    pub fn latency(&self) -> &Latency {
        &self.latency
    }

    /// The same measurement, from a device with this speed factor: results
    /// then carry the median normalised to the reference device.
    pub fn with_speed_factor(mut self, speed_factor: Option<f64>) -> Self {
        self.speed_factor = speed_factor;
        self
    }

    /// The same measurement joined with earlier ones of the same trial
    /// (medians, milliseconds): its result reports the median of them all.
    pub fn with_earlier(mut self, earlier_ms: &[f64]) -> Self {
        self.earlier_ms = earlier_ms
            .iter()
            .copied()
            .filter(|v| v.is_finite() && *v > 0.0)
            .collect();
        self
    }

    /// The result of the candidate as measured, before any training.
    pub fn measured_result(&self) -> TrialResult {
        let report = self.network.report();
        let l = &self.latency;
        let (p50, latency_measurements_ms) = if self.earlier_ms.is_empty() {
            (l.p50, Vec::new())
        } else {
            let mut all = self.earlier_ms.clone();
            all.push(l.p50);
            (latency::stats::midpoint_median(&all), all)
        };
        let mut result = TrialResult::measured(
            LatencyMs {
                p50,
                p90: l.p90,
                min: Some(l.min),
                ci_low: Some(l.ci_low),
                ci_high: Some(l.ci_high),
                runs: u32::try_from(l.runs).ok(),
                unstable: l.unstable,
                seconds: Some(l.seconds_spent),
                // The speed factor is our engine's: it says nothing of
                // onnxruntime's figures.
                reference_p50: self
                    .speed_factor
                    .filter(|f| *f > 0.0 && f.is_finite() && l.runtime == latency::Runtime::Nas)
                    .map(|f| p50 / f),
                predicted: false,
                raw_p50: Some(l.raw_p50),
                ratio: l.ratio,
                basis_p50: l.basis_p50,
                runtime: (l.runtime != latency::Runtime::Nas).then_some(l.runtime),
            },
            report.params,
            report.macs,
            self.latency.device.fingerprint(),
        );
        result.latency_measurements_ms = latency_measurements_ms;
        result
    }

    /// Whether `objective` rejects it untrained (over a hard latency limit).
    pub fn rejected_by(&self, objective: &Objective) -> bool {
        objective.rejects(self.latency.p50)
    }

    /// Trains it on `data` under `config` (from `run.resume` if given),
    /// then scores it with `objective` on `run.scored_on`. `cancel` stops
    /// training at the next batch; `on_epoch` sees each epoch, with its
    /// checkpoint when `run.checkpoints`.
    pub fn train(
        self,
        data: TrainData<'_>,
        config: &TrainConfig,
        objective: &Objective,
        run: &TrainingRun<'_>,
        cancel: &AtomicBool,
        mut on_epoch: impl FnMut(&EpochReport, Option<Vec<u8>>) + Send,
    ) -> Result<TrialOutcome, TrialError> {
        let mut result = self.measured_result();
        let paused_before = run.gate.as_ref().map(|g| g.paused());
        let mut session = self
            .session(data, config, run.resume)?
            .with_gate(run.gate.clone());
        while let Some(report) = session.train_epoch(cancel) {
            let report = report.clone();
            let saved = if run.checkpoints {
                let started = std::time::Instant::now();
                let bytes = checkpoint::to_bytes(&session)
                    .map_err(|e| tracing::warn!(error = %e, "no checkpoint after this epoch"))
                    .ok();
                tracing::info!(
                    serialise_ms = started.elapsed().as_secs_f64() * 1e3,
                    "checkpoint serialised"
                );
                bytes
            } else {
                None
            };
            on_epoch(&report, saved);
        }
        let epochs_done = session.epochs_done();
        let (network, trained) = session.finish();
        Ok(match trained.status {
            TrainStatus::Diverged => TrialOutcome::Diverged {
                message: trained
                    .message
                    .unwrap_or_else(|| "the loss diverged".into()),
                result,
            },
            TrainStatus::Cancelled => TrialOutcome::Cancelled,
            TrainStatus::Completed => {
                result.val_accuracy = trained.val_accuracy;
                result.test_accuracy = trained.test_accuracy;
                result.train_seconds = Some(trained.train_seconds);
                result.images_per_second = Some(trained.images_per_second);
                result.train_threads = u32::try_from(config.threads).ok();
                result.epochs = Some(epochs_done as u32);
                result.paused_seconds = run
                    .gate
                    .as_ref()
                    .zip(paused_before)
                    .map(|(g, before)| g.paused().saturating_sub(before).as_secs_f64());
                let accuracy = match run.scored_on {
                    ScoredOn::Validation => result.accuracy(),
                    ScoredOn::Test => trained.test_accuracy.unwrap_or(0.0),
                };
                let latency_ms = result.latency_ms.p50;
                let reward = objective.reward(accuracy, latency_ms);
                if !reward.is_finite() {
                    return Err(TrialError::NonFiniteReward {
                        reward,
                        accuracy,
                        latency_ms,
                    });
                }
                result.reward = Some(reward);
                tracing::info!(
                    accuracy,
                    reward = result.reward,
                    epochs = epochs_done,
                    "trial done"
                );
                TrialOutcome::Trained {
                    network: Box::new(network),
                    result,
                }
            }
        })
    }

    /// A training session: resumed from `resume` if it loads, else fresh.
    fn session<'d>(
        self,
        data: TrainData<'d>,
        config: &TrainConfig,
        resume: Option<&[u8]>,
    ) -> Result<Session<'d>, TrialError> {
        let Some(bytes) = resume else {
            return Ok(Session::start(self.network, data, config)?);
        };
        let started = std::time::Instant::now();
        let architecture = self.network.architecture().clone();
        let mut network = self.network;
        match checkpoint::load(&mut network, bytes, config) {
            Ok(from) => {
                tracing::info!(
                    epoch = from.epoch,
                    load_ms = started.elapsed().as_secs_f64() * 1e3,
                    "resuming from the checkpoint"
                );
                Ok(Session::resume(network, data, config, from)?)
            }
            Err(e) => {
                let kind = match e {
                    CheckpointError::Recipe { .. } => "another recipe",
                    CheckpointError::Weights(_) => "another network or damaged",
                    CheckpointError::Format(_) => "unreadable",
                };
                tracing::warn!(error = %e, kind, "the checkpoint does not fit; training from scratch");
                let fresh =
                    Network::from_validated(&architecture, network.report().clone(), self.seed)?;
                Ok(Session::start(fresh, data, config)?)
            }
        }
    }
}

/// What [`run`] needs besides the data.
#[derive(Debug, Clone)]
pub struct TrialPlan {
    /// The candidate network.
    pub architecture: Architecture,
    /// Seeds its initial weights (training has its own seed in `train`).
    pub seed: u64,
    /// How latency is measured.
    pub latency: LatencyConfig,
    /// How it is trained.
    pub train: TrainConfig,
    /// Scores it (and may reject it over a hard latency limit).
    pub objective: Objective,
    /// Memory this trial may use, bytes; a network estimated to need more
    /// is refused before it is built.
    pub max_memory: Option<u64>,
    /// A checkpoint to go on from.
    pub resume: Option<Vec<u8>>,
    /// Checkpoint after every epoch.
    pub checkpoints: bool,
    /// The split the result is scored on.
    pub scored_on: ScoredOn,
    /// The host's latency gate (measure on a quiet host, pause batches
    /// while another agent measures).
    pub gate: Option<Arc<HostGate>>,
    /// The engine latency is measured in (the search's objective).
    pub runtime: latency::Runtime,
    /// The device's reference bases: with them latency is measured on the
    /// relative basis (`None`: absolute).
    pub references: Option<Arc<latency::References>>,
    /// This worker's speed factor against the reference device (results
    /// then carry the normalised median), if calibrated.
    pub speed_factor: Option<f64>,
    /// This device's latency predictor: it refuses candidates predicted far
    /// over the hard limit before they are built, and learns from every
    /// measurement (`None`: measure everything).
    pub predictor: Option<Arc<Mutex<Predictor>>>,
    /// Whether the measurement may reject the trial (only before its first
    /// epoch), and the earlier measurements it refines.
    pub latency_limit: LatencyLimit,
}

/// The refusal of a candidate predicted more than
/// [`PREDICTED_REFUSAL_MARGIN`] times over the hard limit, if it is.
fn refused_by_prediction(plan: &TrialPlan, report: &Report) -> Option<TrialResult> {
    let predicted = {
        let predictor = plan
            .predictor
            .as_ref()?
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if predictor.observations() < TRUSTED_OBSERVATIONS {
            return None;
        }
        predictor.predict_validated(report)?
    };
    if !plan.objective.rejects(predicted / PREDICTED_REFUSAL_MARGIN) {
        return None;
    }
    let mut result = TrialResult::measured(
        LatencyMs {
            predicted: true,
            ..LatencyMs::of(predicted, predicted)
        },
        report.params,
        report.macs,
        latency::Device::current(plan.latency.threads).fingerprint(),
    );
    result.reason = Some(PREDICTED_REJECTED_REASON.into());
    tracing::info!(
        predicted_ms = predicted,
        "refused untrained on its predicted latency"
    );
    Some(result)
}

/// Runs one trial start to end: validate, build, measure, reject or train,
/// summarise. The architecture is validated once; its report travels
/// through every stage (memory check, predictor, build).
pub fn run(
    plan: &TrialPlan,
    data: TrainData<'_>,
    cancel: &AtomicBool,
    on_epoch: impl FnMut(&EpochReport, Option<Vec<u8>>) + Send,
) -> Result<TrialOutcome, TrialError> {
    let report = search::validate(&plan.architecture).map_err(NetworkError::from)?;
    if let Some(allowed) = plan.max_memory {
        let batch_size = plan.train.batch_size;
        let footprint = Footprint::of(&report, plan.architecture.input, batch_size);
        if footprint.training_bytes > allowed {
            return Err(TrialError::TooBig {
                needed: footprint.training_bytes,
                allowed,
                batch_size,
            });
        }
    }
    let decides = plan.latency_limit.decides();
    if decides {
        if let Some(result) = refused_by_prediction(plan, &report) {
            return Ok(TrialOutcome::Rejected { result });
        }
    }
    let candidate = Candidate::from_validated(&plan.architecture, report, plan.seed)?;
    crate::failpoint::hit("latency");
    let meter = latency::Meter {
        config: plan.latency,
        gate: plan.gate.as_deref(),
        runtime: plan.runtime,
        references: plan.references.as_deref(),
    };
    let measured = candidate
        .measure(&meter)?
        .with_speed_factor(plan.speed_factor)
        .with_earlier(plan.latency_limit.earlier_ms());
    if let Some(predictor) = &plan.predictor {
        let mut predictor = predictor
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        predictor.observe_validated(measured.report(), measured.latency().p50);
        predictor.fit();
    }
    if decides && measured.rejected_by(&plan.objective) {
        let mut result = measured.measured_result();
        result.reason = Some(REJECTED_REASON.into());
        return Ok(TrialOutcome::Rejected { result });
    }
    let run = TrainingRun {
        resume: plan.resume.as_deref(),
        checkpoints: plan.checkpoints,
        scored_on: plan.scored_on,
        gate: plan.gate.clone(),
    };
    measured.train(data, &plan.train, &plan.objective, &run, cancel, on_epoch)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(objective: &str, predictor: Option<Predictor>) -> TrialPlan {
        let space = search::SearchSpace::preset("small").expect("preset");
        let architecture = search::sample(
            &space,
            search::InputShape::new(1, 28, 28),
            10,
            &mut search::seeded_rng(1),
        )
        .expect("sample");
        TrialPlan {
            architecture,
            seed: 0,
            latency: LatencyConfig::quick(),
            train: TrainConfig::default(),
            objective: serde_json::from_str(objective).expect("objective"),
            max_memory: None,
            resume: None,
            checkpoints: false,
            scored_on: ScoredOn::Validation,
            gate: None,
            runtime: latency::Runtime::Nas,
            references: None,
            speed_factor: None,
            predictor: predictor.map(|p| Arc::new(Mutex::new(p))),
            latency_limit: LatencyLimit::Decide,
        }
    }

    /// A predictor that has seen enough networks, all at 1 ms.
    fn one_ms_device() -> Predictor {
        let space = search::SearchSpace::preset("small").expect("preset");
        let mut rng = search::seeded_rng(2);
        let mut predictor = Predictor::new();
        for _ in 0..TRUSTED_OBSERVATIONS {
            let a = search::sample(&space, search::InputShape::new(1, 28, 28), 10, &mut rng)
                .expect("sample");
            predictor.observe(&a, 1.0);
        }
        predictor.fit();
        predictor
    }

    const HARD: &str = r#"{"latency": {"target_ms": 0.1, "mode": "hard", "max_ms": 0.2}}"#;

    /// `plan`'s prediction-time refusal, with its architecture validated.
    fn refusal(plan: &TrialPlan) -> Option<TrialResult> {
        let report = search::validate(&plan.architecture).expect("valid");
        refused_by_prediction(plan, &report)
    }

    #[test]
    fn a_candidate_predicted_far_over_the_hard_limit_is_refused_unbuilt() {
        let refused = refusal(&plan(HARD, Some(one_ms_device())))
            .expect("refused: 1 ms predicted, limit 0.2 ms");
        assert!(refused.latency_ms.predicted);
        assert!((refused.latency_ms.p50 - 1.0).abs() < 0.05, "{refused:?}");
        assert_eq!(refused.reason.as_deref(), Some(PREDICTED_REJECTED_REASON));
        assert!(refused.params > 0 && refused.macs > 0);
    }

    #[test]
    fn within_the_margin_or_without_enough_evidence_it_is_measured() {
        // 1 ms predicted against a 0.6 ms limit: within 2x, so measured.
        let near = r#"{"latency": {"target_ms": 0.5, "mode": "hard", "max_ms": 0.6}}"#;
        assert!(refusal(&plan(near, Some(one_ms_device()))).is_none());
        assert!(refusal(&plan(HARD, None)).is_none());
        let mut young = Predictor::new();
        young.fit();
        assert!(refusal(&plan(HARD, Some(young))).is_none());
        let soft = r#"{"latency": {"target_ms": 0.1, "mode": "soft"}}"#;
        assert!(refusal(&plan(soft, Some(one_ms_device()))).is_none());
    }
}
