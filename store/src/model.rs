//! The rows the store hands out, and the events it publishes.

use search::{AttemptError, TrialProgress, TrialResult};
use serde::{Deserialize, Serialize};

/// Where a trial is in its life.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrialState {
    /// Waiting for a worker (possibly not before `run_at`).
    Pending,
    /// Claimed by a worker holding a lease.
    Running,
    /// Trained and evaluated.
    Succeeded,
    /// Gave up: a permanent error or every attempt used.
    Failed,
    /// Its search was cancelled.
    Cancelled,
    /// Over the hard latency limit; never trained.
    Rejected,
    /// Stopped early by the multi-fidelity scheduler at the end of a rung:
    /// it did not rank among the best of that rung. Its result is the
    /// rung's; not a failure.
    Stopped,
}

impl TrialState {
    /// Every state.
    pub const ALL: [TrialState; 7] = [
        Self::Pending,
        Self::Running,
        Self::Succeeded,
        Self::Failed,
        Self::Cancelled,
        Self::Rejected,
        Self::Stopped,
    ];

    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
            Self::Rejected => "rejected",
            Self::Stopped => "stopped",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// Whether the trial is over.
    pub fn is_final(self) -> bool {
        !matches!(self, Self::Pending | Self::Running)
    }
}

/// What a trial is for: a search candidate, or a final model (a search
/// trial's architecture trained from scratch with the full recipe on
/// training + validation data, and tested once).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrialPhase {
    /// A candidate of the search, scored on validation data.
    #[default]
    Search,
    /// A final model, scored on the test set.
    Final,
}

impl TrialPhase {
    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Search => "search",
            Self::Final => "final",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Search, Self::Final]
            .into_iter()
            .find(|p| p.as_str() == s)
    }
}

/// Where a search is in its life.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SearchStatus {
    /// Trials are queued or running.
    Running,
    /// The budget is spent and every trial has ended.
    Finished,
    /// Cancelled by a user.
    Cancelled,
    /// Stopped by an error of its own (e.g. its strategy could not propose);
    /// `error` says why. The results it has are kept.
    Failed,
}

impl SearchStatus {
    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Finished => "finished",
            Self::Cancelled => "cancelled",
            Self::Failed => "failed",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Running, Self::Finished, Self::Cancelled, Self::Failed]
            .into_iter()
            .find(|t| t.as_str() == s)
    }
}

/// A worker as it registers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerInfo {
    /// Unique id (e.g. `host-pid-n`).
    pub id: String,
    /// Host name.
    pub host: String,
    /// Capabilities, e.g. `cpu`, `avx2`.
    pub labels: Vec<String>,
    /// Training threads.
    pub threads: u32,
    /// Device fingerprint.
    pub device: String,
    /// The hardware its latency figures come from (absent for workers that
    /// do not measure, e.g. benchmarks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<DeviceProfile>,
}

/// The hardware a worker measures latency on, as it registers it: what a
/// latency figure from that worker means.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct DeviceProfile {
    /// CPU model as the OS reports it.
    pub cpu: String,
    /// Logical CPUs of the machine.
    pub logical_cpus: u32,
    /// Instruction-set extensions that matter to the kernels (e.g. `avx2`,
    /// `fma`, `avx512f`; `neon` on ARM).
    pub isa: Vec<String>,
    /// Memory of the machine (or its cgroup limit), MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mib: Option<u64>,
    /// Threads a latency measurement uses.
    pub latency_threads: u32,
    /// How long this device takes to run the reference set, against the
    /// reference device (geometric mean of the ratios; 2.0: twice as long),
    /// measured when the worker started; absent if it did not calibrate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speed_factor: Option<f64>,
    /// The latency runtimes it has: `nas` always, `onnxruntime` when the
    /// library loaded (absent in profiles registered before runtimes).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub runtimes: Vec<String>,
    /// The reference network's established latency per runtime: the basis
    /// of its relative latency figures, and how far the last
    /// re-establishment drifted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<LatencyReference>,
}

/// A device reference network's established latency, as a worker registers
/// it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatencyReference {
    /// The runtime (`nas`, `onnxruntime`).
    pub runtime: String,
    /// Threads of the measurement.
    pub threads: u32,
    /// The reference network (`mobilenet_v1@0.25`).
    pub network: String,
    /// Its established p50 (the median of its last establishments),
    /// milliseconds.
    pub p50_ms: f64,
    /// The last establishment against the basis before it (1.0: none).
    pub drift: f64,
    /// When it was last established, Unix ms.
    pub established_at: i64,
}

/// A trial handed to a worker by `claim`.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimedTrial {
    /// Trial id.
    pub id: i64,
    /// Its search.
    pub search_id: i64,
    /// Position in the search.
    pub index: i64,
    /// This attempt's number (1 for the first); fences every later call.
    pub attempt: i64,
    /// The architecture to train, JSON.
    pub architecture: String,
    /// The search's spec (decoded once per process and shared).
    pub spec: std::sync::Arc<search::SearchSpec>,
    /// A search candidate or a final model.
    pub phase: TrialPhase,
    /// Train until this epoch (the end of its rung, or a final model's
    /// epochs); never 0.
    pub target_epochs: u32,
    /// Epochs already trained and kept in its checkpoint (0: start afresh).
    pub epochs_done: u32,
    /// For a final model: the settings of the final training (those fixed
    /// when the final models were queued, else the spec's, else the
    /// defaults); `None` for a search candidate.
    pub final_training: Option<search::FinalTraining>,
    /// The latency medians of this trial's earlier measurements, from the
    /// result it reported at the end of its last rung, milliseconds (empty
    /// before its first rung ends). A trial with any has passed the hard
    /// latency limit: later measurements refine its figure and never
    /// reject it.
    pub earlier_latency_ms: Vec<f64>,
}

/// What a heartbeat learns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heartbeat {
    /// Keep going; the lease is extended.
    Continue,
    /// The search was cancelled: stop and report the trial cancelled.
    Cancel,
    /// The lease was lost (expired and re-queued, or the trial ended):
    /// stop and report nothing.
    LeaseLost,
}

/// One epoch's numbers, stored per attempt.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
pub struct EpochMetrics {
    /// 1-based epoch.
    pub epoch: i64,
    /// Mean training loss.
    pub train_loss: f64,
    /// Training accuracy.
    pub train_accuracy: f64,
    /// Validation accuracy.
    pub val_accuracy: Option<f64>,
    /// Wall time, seconds.
    pub seconds: f64,
}

/// How a worker ends an attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum Completion {
    /// Trained: the result (its `reward` ranks the leaderboard and feeds the
    /// strategy; a result without one is refused) and the weights.
    Succeeded {
        /// The result: accuracies, latency, params, reward, timing.
        result: TrialResult,
        /// Trained weights (safetensors), if kept.
        weights: Option<Vec<u8>>,
    },
    /// Over the hard latency limit: the result holds the measured latency.
    Rejected {
        /// The result (latency, params, MACs, why it was rejected).
        result: TrialResult,
    },
    /// Stopped because the search was cancelled.
    Cancelled,
}

/// Where a trial's architecture came from: the strategy (sampled, or bred
/// from a parent) or the reference zoo (a baseline).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Lineage {
    /// The parent's index, for evolution.
    pub parent_index: Option<i64>,
    /// What the strategy changed from the parent, for evolution.
    pub mutation: Option<String>,
    /// The zoo entry, when this trial is one of the search's baselines.
    pub baseline: Option<String>,
}

/// A trial as stored, and as the API returns it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = TrialView))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrialRow {
    /// Trial id.
    pub id: i64,
    /// Its search.
    pub search_id: i64,
    /// Position in the search.
    pub index: i64,
    /// State.
    pub state: TrialState,
    /// Attempts started.
    pub attempt: i64,
    /// Where its architecture came from (serialised inline).
    #[serde(flatten)]
    pub lineage: Lineage,
    /// Reward, once succeeded.
    pub reward: Option<f64>,
    /// The result, once succeeded or rejected.
    pub result: Option<TrialResult>,
    /// Every failed attempt's error, oldest first.
    pub errors: Vec<AttemptError>,
    /// The worker holding it.
    pub worker_id: Option<String>,
    /// The running attempt's last reported progress.
    pub progress: Option<TrialProgress>,
    /// A search candidate or a final model.
    pub phase: TrialPhase,
    /// The highest multi-fidelity rung (0-based) whose result it has.
    pub rung: Option<i64>,
    /// Epochs trained and kept (its result's, or its checkpoint's).
    pub epochs_done: i64,
    /// For a final model: the index of the search trial it retrains.
    pub source_index: Option<i64>,
    /// For a final model: accuracy on the held-out test set.
    pub test_accuracy: Option<f64>,
    /// Size of its stored checkpoint, bytes (while it may still resume:
    /// checkpoints are deleted when a trial ends).
    pub checkpoint_bytes: Option<i64>,
}

/// A search as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchRow {
    /// Search id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// Status.
    pub status: SearchStatus,
    /// The spec (decoded once per process and shared).
    pub spec: std::sync::Arc<search::SearchSpec>,
    /// Trials created so far.
    pub proposed: i64,
    /// Created, Unix ms.
    pub created_at: i64,
    /// Finished, Unix ms.
    pub finished_at: Option<i64>,
    /// Why it failed (status `failed`).
    pub error: Option<String>,
    /// Epochs of training queued so far (its units of work), against
    /// `budget.max_epochs_total`.
    pub epochs_committed: i64,
    /// Epochs trained and not kept: trained after a trial's last checkpoint
    /// by an attempt that then failed, crashed or was handed back, or
    /// trained again because an attempt could not resume from its
    /// checkpoint. Charged to `epochs_committed` (the compute budget) too.
    pub epochs_wasted: i64,
}

/// Something that happened, for live views and waking workers.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// New trials are pending.
    TrialsQueued {
        /// Their search.
        search_id: i64,
        /// How many.
        count: usize,
    },
    /// A worker claimed a trial.
    TrialClaimed {
        /// The search.
        search_id: i64,
        /// The trial.
        trial_id: i64,
    },
    /// A heartbeat carried progress.
    TrialProgressed {
        /// The search.
        search_id: i64,
        /// The trial.
        trial_id: i64,
    },
    /// A trial ended (or went back to the queue).
    TrialFinished {
        /// The search.
        search_id: i64,
        /// The trial.
        trial_id: i64,
        /// Its new state.
        state: String,
    },
    /// A search ended.
    SearchFinished {
        /// The search.
        search_id: i64,
        /// Its status.
        status: String,
    },
}

impl Event {
    /// The search the event concerns.
    pub fn search_id(&self) -> i64 {
        match self {
            Self::TrialsQueued { search_id, .. }
            | Self::TrialClaimed { search_id, .. }
            | Self::TrialProgressed { search_id, .. }
            | Self::TrialFinished { search_id, .. }
            | Self::SearchFinished { search_id, .. } => *search_id,
        }
    }

    /// The event's name, as `event` in its JSON.
    pub fn name(&self) -> &'static str {
        match self {
            Self::TrialsQueued { .. } => "trials_queued",
            Self::TrialClaimed { .. } => "trial_claimed",
            Self::TrialProgressed { .. } => "trial_progressed",
            Self::TrialFinished { .. } => "trial_finished",
            Self::SearchFinished { .. } => "search_finished",
        }
    }
}
