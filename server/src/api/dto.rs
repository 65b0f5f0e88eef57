//! The API's JSON documents: what every route returns, with the schemas the
//! OpenAPI document is generated from. Store rows are mapped here, so the
//! public shape does not follow the tables.

use std::collections::BTreeMap;

use search::SearchSpec;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use store::{
    EpochMetrics, LeaderboardEntry, ParetoPoint, SearchRow, SearchStatus, TrialRow, WorkerRow,
};
use utoipa::ToSchema;

use super::ApiError;

/// A search.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SearchView {
    /// Search id.
    pub id: i64,
    /// Its name.
    pub name: String,
    /// running, finished, cancelled or failed.
    pub status: SearchStatus,
    /// Why it failed (status `failed`).
    pub error: Option<String>,
    /// The spec as accepted, defaults filled in.
    pub spec: SearchSpec,
    /// Trials created so far.
    pub trials_proposed: i64,
    /// Epochs of training queued so far, against `budget.max_epochs_total`
    /// (wasted epochs included).
    pub epochs_committed: i64,
    /// Epochs trained and not kept: trained after a trial's last
    /// checkpoint by an attempt that failed, crashed or was handed back, or
    /// trained again because a checkpoint could not be resumed from.
    /// Charged to the compute budget like any other.
    #[serde(default)]
    pub epochs_wasted: i64,
    /// Created, Unix ms.
    pub created_at_ms: i64,
    /// Ended, Unix ms.
    pub finished_at_ms: Option<i64>,
}

impl TryFrom<&SearchRow> for SearchView {
    type Error = ApiError;

    fn try_from(s: &SearchRow) -> Result<Self, ApiError> {
        Ok(Self {
            id: s.id,
            name: s.name.clone(),
            status: s.status,
            error: s.error.clone(),
            spec: (*s.spec).clone(),
            trials_proposed: s.proposed,
            epochs_committed: s.epochs_committed,
            epochs_wasted: s.epochs_wasted,
            created_at_ms: s.created_at,
            finished_at_ms: s.finished_at,
        })
    }
}

/// How far a search is.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SearchProgress {
    /// Trials that ended (succeeded, failed, rejected or cancelled).
    pub trials_ended: i64,
    /// The budget's `max_trials`.
    pub max_trials: i64,
    /// How much of the budget is spent, 0 to 1: `trials_ended / max_trials`,
    /// or with a compute budget the larger of that and
    /// `epochs_committed / max_epochs_total`; 1 once the search has finished.
    pub fraction: f64,
}

/// A search with its counts, progress and best trial.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SearchDetail {
    /// The search.
    #[serde(flatten)]
    pub search: SearchView,
    /// Trials in each state.
    pub trial_counts: BTreeMap<String, i64>,
    /// How far it is.
    pub progress: SearchProgress,
    /// The best trial by reward so far.
    pub best_trial: Option<LeaderboardEntry>,
    /// Its final models (trained from scratch on training + validation
    /// data, tested once), best test accuracy first; empty until final
    /// training is queued.
    pub final_models: Vec<TrialView>,
    /// The hypervolume of its validated and tested fronts (see
    /// `GET /searches/{id}/pareto`, which adds it over compute), when its
    /// objective has a reference point.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hypervolume: Option<store::Hypervolume>,
    /// Why its pending trials are not being run, when no live worker may
    /// run them: `waiting for a worker with onnxruntime` (the labels they
    /// require). Absent while some worker could claim them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting_for: Option<String>,
}

/// A search in a list, with its progress and best figures.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SearchSummary {
    /// The search.
    #[serde(flatten)]
    pub search: SearchView,
    /// How far it is.
    pub progress: SearchProgress,
    /// Highest reward so far.
    pub best_reward: Option<f64>,
    /// Highest validation accuracy so far.
    pub best_accuracy: Option<f64>,
}

/// A page of searches.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SearchList {
    /// Newest first.
    pub searches: Vec<SearchSummary>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<i64>,
}

/// A trial as the API returns it: the store's row, typed result included.
pub type TrialView = TrialRow;

/// A trial with its per-epoch metrics.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TrialDetail {
    /// The trial.
    #[serde(flatten)]
    pub trial: TrialView,
    /// The latest attempt's epochs.
    pub epochs: Vec<EpochMetrics>,
    /// The parent trial's id, for evolution.
    pub parent_trial_id: Option<i64>,
    /// The architecture JSON.
    pub architecture: Value,
    /// Every layer with its output shape and costs.
    pub layers: Vec<LayerView>,
}

/// One layer of an architecture with its costs.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LayerView {
    /// Path, e.g. `layers[3].body[1]`.
    pub path: String,
    /// The layer's kind.
    pub kind: String,
    /// A short label for people, e.g. `conv 3×3, 16, /2`.
    pub label: String,
    /// Nesting depth (0: top level).
    pub depth: usize,
    /// Output shape for one image, e.g. `16x14x14`.
    pub output: String,
    /// Trainable parameters (nested layers included).
    pub params: u64,
    /// Multiply-accumulates per image (nested layers included).
    pub macs: u64,
}

/// The layers of `arch` with their costs.
pub fn layers_of(arch: &search::Architecture) -> Result<Vec<LayerView>, ApiError> {
    let report = search::validate(arch).map_err(ApiError::internal)?;
    let labels = search::summary::layer_labels(arch);
    Ok(report
        .layers
        .iter()
        .zip(labels)
        .map(|(l, label)| LayerView {
            path: l.path.clone(),
            kind: l.kind.to_owned(),
            label,
            depth: l.depth,
            output: l.output.to_string(),
            params: l.params,
            macs: l.macs,
        })
        .collect())
}

/// A zoo entry with its architecture and layers.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ZooDetail {
    /// The entry.
    #[serde(flatten)]
    pub entry: ZooEntryView,
    /// The architecture JSON at the published input.
    pub architecture: Value,
    /// Every layer with its output shape and costs.
    pub layers: Vec<LayerView>,
}

/// A search's trials.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TrialList {
    /// In index order.
    pub trials: Vec<TrialView>,
}

/// A page of a leaderboard.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Leaderboard {
    /// The search.
    pub search_id: i64,
    /// The sort.
    pub sort: search::objective::RankKey,
    /// Ranked (succeeded) trials in all.
    pub total: i64,
    /// This page, best first.
    pub entries: Vec<LeaderboardEntry>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// A search's accuracy/latency plane.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Pareto {
    /// The search.
    pub search_id: i64,
    /// Succeeded trials, fastest first (only the front with `front_only`).
    pub points: Vec<ParetoPoint>,
    /// Trials rejected over the hard latency limit (no accuracy), fastest first.
    pub rejected: Vec<store::RejectedPoint>,
    /// Succeeded trials in all (before `front_only` or `max_points`).
    pub total_points: usize,
    /// Each trial that beat every earlier one: the best reward so far, by trial index.
    pub best_so_far: Vec<BestStep>,
    /// The final models on test accuracy and latency, fastest first, each
    /// marked whether it is on the tested front; empty until they are tested.
    pub tested: Vec<store::TestedPoint>,
    /// The hypervolume of the validated and tested fronts (with the
    /// validated one over compute), when the objective has a reference
    /// point: a Pareto objective, or a latency target or limit.
    pub hypervolume: Option<store::Hypervolume>,
}

/// A new best reward.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BestStep {
    /// The trial's index in the search.
    pub index: i64,
    /// Its reward.
    pub reward: f64,
}

/// The workers.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WorkerList {
    /// Alive ones first.
    pub workers: Vec<WorkerRow>,
}

/// A reference architecture.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ZooEntryView {
    /// Its name, e.g. `resnet18`.
    pub name: String,
    /// Paper title and year.
    pub title: String,
    /// Published input, `[channels, height, width]`.
    pub input: [usize; 3],
    /// Published number of classes.
    pub classes: usize,
    /// Trainable parameters at the published input.
    pub params: u64,
    /// Multiply-accumulates per image at the published input.
    pub macs: u64,
}

/// The reference zoo.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ZooList {
    /// Its entries, oldest first.
    pub zoo: Vec<ZooEntryView>,
}

/// One layer kind as the dashboard draws it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LayerKindView {
    /// The JSON `kind` name.
    pub kind: String,
    /// Whether it holds other layers (`residual`, `branches`): drawn as a
    /// frame around them rather than as a box.
    pub composite: bool,
    /// Its box's fill colour in the architecture diagram, `#rrggbb`.
    pub colour: String,
}

/// Every layer kind of the architecture JSON.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LayerKindList {
    /// In the order of the architecture format's definition.
    pub kinds: Vec<LayerKindView>,
}

/// The preset search spaces.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SpaceList {
    /// By name.
    pub presets: BTreeMap<String, search::SearchSpace>,
}

/// `GET /datasets`: the catalogue.
#[derive(Debug, Serialize, ToSchema)]
pub struct DatasetList {
    /// The built-in datasets (downloaded from their sources on first use).
    pub datasets: Vec<search::DatasetInfo>,
    /// Uploaded datasets, by name.
    pub uploaded: Vec<store::datasets::DatasetRow>,
}

/// A liveness or readiness answer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// `ok`, `ready` or what is wrong.
    pub status: String,
}

/// What went wrong.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable code: malformed_json, invalid_spec, invalid_query, invalid_cursor,
    /// unauthorized, not_found, conflict, body_too_large, unsupported_media_type, internal.
    pub code: String,
    /// For people.
    pub message: String,
    /// The offending field, e.g. `objective.latency.target_ms`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// Every error response.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}
