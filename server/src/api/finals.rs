//! Final models: `POST /searches/{id}/final` trains a finished search's best
//! distinct architectures from scratch (training + validation data, the full
//! recipe) and tests them once; `GET /searches/{id}/final` lists them.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use search::FinalTraining;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::dto::TrialList;
use super::extract::{ApiJsonOrDefault, SearchId};
use super::responses::ReadErrors;
use super::{ApiResult, AppState};

/// What `POST /searches/{id}/final` queued.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct FinalQueued {
    /// The search.
    pub search_id: i64,
    /// Final models queued (at most `top_k`: fewer when the search has
    /// fewer distinct trained architectures).
    pub queued: usize,
}

/// `POST /searches/{id}/final`: queues the final training of a finished
/// search (its status is `running` again until the final models end).
#[utoipa::path(post, path = "/api/v1/searches/{id}/final", tag = "searches",
    params(SearchId),
    request_body(content = Option<FinalTraining>, description = "Final training settings; `{}` or no body for the defaults (top 3, 30 epochs, the search's recipe)"),
    responses(
        (status = 202, description = "Queued", body = FinalQueued),
        ReadErrors,
        (status = 400, description = "The body is not JSON", body = super::dto::ErrorBody),
        (status = 409, description = "The search is running, was cancelled or failed, its final training was already requested, or it has no trained candidate", body = super::dto::ErrorBody),
        (status = 422, description = "Invalid settings; `field` names the culprit (e.g. `final.top_k`)", body = super::dto::ErrorBody),
    ))]
pub async fn request_final(
    State(state): State<AppState>,
    SearchId(id): SearchId,
    ApiJsonOrDefault(settings): ApiJsonOrDefault<FinalTraining>,
) -> ApiResult<(StatusCode, Json<FinalQueued>)> {
    let queued = state.store.request_final(id, &settings).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(FinalQueued {
            search_id: id,
            queued,
        }),
    ))
}

/// `GET /searches/{id}/final`: the search's final models, best test
/// accuracy first (those still training last), each with its source trial
/// (`source_index`), test accuracy, latency, costs and weights at
/// `/trials/{id}/weights`.
#[utoipa::path(get, path = "/api/v1/searches/{id}/final", tag = "searches",
    params(SearchId),
    responses((status = 200, body = TrialList), ReadErrors))]
pub async fn final_models(
    State(state): State<AppState>,
    SearchId(id): SearchId,
) -> ApiResult<Json<TrialList>> {
    Ok(Json(TrialList {
        trials: state.store.final_models(id).await?,
    }))
}
