//! Search routes: create, list, show, cancel, trials, leaderboard, Pareto front.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use search::objective::RankKey;
use search::SearchSpec;
use serde::Deserialize;
use store::{SearchStatus, TrialState};
use utoipa::{IntoParams, ToSchema};

use super::dto::{
    Leaderboard, Pareto, SearchDetail, SearchList, SearchProgress, SearchSummary, SearchView,
    TrialList,
};
use super::extract::{ApiJson, ApiQuery, SearchId};
use super::responses::{QueryErrors, ReadErrors};
use super::{ApiError, ApiResult, AppState};

/// `POST /searches`: checks the spec, stores it and queues the first trials.
#[utoipa::path(post, path = "/api/v1/searches", tag = "searches",
    request_body = SearchSpec,
    responses(
        (status = 201, description = "Created; the first trials are queued", body = SearchView),
        (status = 400, description = "Malformed JSON", body = super::dto::ErrorBody),
        (status = 401, description = "Missing or wrong token", body = super::dto::ErrorBody),
        (status = 413, description = "Body over 256 KiB", body = super::dto::ErrorBody),
        (status = 415, description = "Not application/json", body = super::dto::ErrorBody),
        (status = 422, description = "Invalid spec; `field` names the culprit", body = super::dto::ErrorBody),
    ))]
pub async fn create_search(
    State(state): State<AppState>,
    ApiJson(spec): ApiJson<SearchSpec>,
) -> ApiResult<(StatusCode, Json<SearchView>)> {
    let id = state.store.create_search(&spec).await?;
    let search = state.store.search(id).await?;
    Ok((StatusCode::CREATED, Json(SearchView::try_from(&search)?)))
}

/// Query of `GET /searches`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only searches in this status.
    pub status: Option<SearchStatus>,
    /// Page size, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
    /// The previous page's `next_cursor`.
    pub cursor: Option<i64>,
}

fn page_size(limit: Option<i64>, default: i64, max: i64) -> ApiResult<i64> {
    match limit {
        None => Ok(default),
        Some(n) if (1..=max).contains(&n) => Ok(n),
        Some(n) => Err(ApiError::bad_query(
            format!("limit must be between 1 and {max}, got {n}"),
            Some("limit"),
        )),
    }
}

/// `GET /searches`: newest first, paginated, optionally by status.
#[utoipa::path(get, path = "/api/v1/searches", tag = "searches", params(ListQuery),
    responses(
        (status = 200, body = SearchList),
        (status = 400, description = "Bad query", body = super::dto::ErrorBody),
        (status = 401, body = super::dto::ErrorBody),
    ))]
pub async fn list_searches(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<SearchList>> {
    let limit = page_size(q.limit, 50, store::overview::MAX_SEARCH_PAGE)?;
    let page = state.store.searches_page(q.status, q.cursor, limit).await?;
    let mut searches = Vec::with_capacity(page.searches.len());
    for row in &page.searches {
        let search = SearchView::try_from(row)?;
        let counts = state.store.trial_counts(row.id).await?;
        let best = |key| state.store.leaderboard(row.id, key, 1, None);
        let best_reward = best(RankKey::Reward)
            .await?
            .entries
            .first()
            .map(|e| e.reward);
        let best_accuracy = best(RankKey::Accuracy)
            .await?
            .entries
            .first()
            .and_then(|e| e.accuracy);
        searches.push(SearchSummary {
            progress: progress(&search, &counts),
            search,
            best_reward,
            best_accuracy,
        });
    }
    Ok(Json(SearchList {
        searches,
        next_cursor: page.next_cursor,
    }))
}

/// `GET /searches/{id}`: status, counts by trial state, progress, best trial.
#[utoipa::path(get, path = "/api/v1/searches/{id}", tag = "searches",
    params(SearchId),
    responses((status = 200, body = SearchDetail), ReadErrors))]
pub async fn get_search(
    State(state): State<AppState>,
    SearchId(id): SearchId,
) -> ApiResult<Json<SearchDetail>> {
    let search = state.store.search(id).await?;
    let counts = state.store.trial_counts(id).await?;
    let best = state
        .store
        .leaderboard(id, RankKey::Reward, 1, None)
        .await?
        .entries
        .into_iter()
        .next();
    let view = SearchView::try_from(&search)?;
    Ok(Json(SearchDetail {
        progress: progress(&view, &counts),
        search: view,
        trial_counts: counts,
        best_trial: best,
        final_models: state.store.final_models(id).await?,
        hypervolume: state.store.hypervolume(id).await?,
        waiting_for: match search.status {
            SearchStatus::Running => state
                .store
                .waiting_for(id)
                .await?
                .map(|labels| format!("waiting for a worker with {}", labels.join(", "))),
            _ => None,
        },
    }))
}

/// Trials ended against the budget.
fn progress(
    search: &SearchView,
    counts: &std::collections::BTreeMap<String, i64>,
) -> SearchProgress {
    let ended: i64 = counts
        .iter()
        .filter(|(state, _)| TrialState::parse(state).is_some_and(TrialState::is_final))
        .map(|(_, n)| n)
        .sum();
    let max_trials = i64::from(search.spec.budget.max_trials);
    let by_trials = ended as f64 / max_trials.max(1) as f64;
    let by_compute = search.spec.budget.max_epochs_total.map_or(0.0, |total| {
        search.epochs_committed as f64 / total.max(1) as f64
    });
    let fraction = if search.status == SearchStatus::Finished {
        1.0
    } else {
        by_trials.max(by_compute).min(1.0)
    };
    SearchProgress {
        trials_ended: ended,
        max_trials,
        fraction,
    }
}

/// `POST /searches/{id}/cancel`: pending trials stop at once, running ones at
/// their next heartbeat.
#[utoipa::path(post, path = "/api/v1/searches/{id}/cancel", tag = "searches",
    params(SearchId),
    responses(
        (status = 200, description = "Cancelled", body = SearchView),
        ReadErrors,
        (status = 409, description = "The search already ended", body = super::dto::ErrorBody),
    ))]
pub async fn cancel_search(
    State(state): State<AppState>,
    SearchId(id): SearchId,
) -> ApiResult<Json<SearchView>> {
    state.store.cancel_search(id).await?;
    Ok(Json(SearchView::try_from(&state.store.search(id).await?)?))
}

/// Query of `GET /searches/{id}/trials`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TrialsQuery {
    /// Only trials in this state.
    pub state: Option<TrialState>,
}

/// `GET /searches/{id}/trials`: every trial in index order.
#[utoipa::path(get, path = "/api/v1/searches/{id}/trials", tag = "searches",
    params(SearchId, TrialsQuery),
    responses((status = 200, body = TrialList), QueryErrors))]
pub async fn list_trials(
    State(state): State<AppState>,
    SearchId(id): SearchId,
    ApiQuery(q): ApiQuery<TrialsQuery>,
) -> ApiResult<Json<TrialList>> {
    state.store.search(id).await?;
    let trials = match q.state {
        Some(trial_state) => state.store.trials_in_state(id, trial_state).await?,
        None => state.store.trials(id).await?,
    };
    Ok(Json(TrialList { trials }))
}

/// Output format of a leaderboard.
#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// JSON (the default).
    #[default]
    Json,
    /// CSV with a header row; the next cursor is in the `X-Next-Cursor` header.
    Csv,
}

/// Query of `GET /searches/{id}/leaderboard`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LeaderboardQuery {
    /// reward (default), accuracy, latency, params or macs.
    pub sort: Option<RankKey>,
    /// Page size, 1 to 1000 (default 50).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
    /// The previous page's `next_cursor`,
    /// `{sort}_{value}_{reward}_{trial id}_{rank}`: the page after it, in
    /// the order it came from (its sort overrides `sort`). Empty: the
    /// first page.
    #[param(
        pattern = r"^$|^(reward|accuracy|latency|params|macs|rank)_-?[0-9]{1,20}(\.[0-9]{1,20})?_-?[0-9]{1,20}(\.[0-9]{1,20})?_[0-9]{1,18}_[0-9]{1,9}$"
    )]
    pub cursor: Option<String>,
    /// json (default) or csv.
    #[param(inline)]
    pub format: Option<Format>,
}

/// `GET /searches/{id}/leaderboard`: succeeded trials ranked, cursor-paginated.
#[utoipa::path(get, path = "/api/v1/searches/{id}/leaderboard", tag = "searches",
    params(SearchId, LeaderboardQuery),
    responses(
        (status = 200, description = "A page; CSV with `format=csv` (next cursor in `X-Next-Cursor`)",
            content((Leaderboard = "application/json"), (String = "text/csv"))),
        QueryErrors,
    ))]
pub async fn leaderboard(
    State(state): State<AppState>,
    SearchId(id): SearchId,
    ApiQuery(q): ApiQuery<LeaderboardQuery>,
) -> ApiResult<Response> {
    let limit = page_size(q.limit, 50, store::ranking::MAX_PAGE)?;
    let cursor = q.cursor.as_deref().filter(|c| !c.is_empty());
    // A cursor goes on in the order it came from.
    let sort = cursor
        .and_then(|c| c.split('_').next())
        .and_then(|key| serde_json::from_value(serde_json::Value::from(key)).ok())
        .or(q.sort)
        .unwrap_or_default();
    let page = state.store.leaderboard(id, sort, limit, cursor).await?;
    match q.format.unwrap_or_default() {
        Format::Json => Ok(Json(Leaderboard {
            search_id: id,
            sort,
            total: page.total,
            entries: page.entries,
            next_cursor: page.next_cursor,
        })
        .into_response()),
        Format::Csv => {
            let mut response = (
                [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
                leaderboard_csv(&page.entries),
            )
                .into_response();
            if let Some(next) = page
                .next_cursor
                .and_then(|c| axum::http::HeaderValue::from_str(&c).ok())
            {
                response.headers_mut().insert("x-next-cursor", next);
            }
            Ok(response)
        }
    }
}

/// The leaderboard as CSV: a header row, then one row per entry.
pub fn leaderboard_csv(entries: &[store::LeaderboardEntry]) -> String {
    fn cell<T: ToString>(v: Option<T>) -> String {
        v.map(|v| v.to_string()).unwrap_or_default()
    }
    let mut out = String::from(
        "rank,trial_id,index,reward,accuracy,latency_ms,params,macs,parent_index,finished_at_ms,blocks,state,rung,epochs\n",
    );
    for e in entries {
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{},\"{}\",{},{},{}\n",
            e.rank,
            e.trial_id,
            e.index,
            e.reward,
            cell(e.accuracy),
            cell(e.latency_ms),
            cell(e.params),
            cell(e.macs),
            cell(e.parent_index),
            cell(e.finished_at),
            e.blocks.replace('"', "'"),
            e.state.as_str(),
            e.rung,
            e.epochs,
        ));
    }
    out
}

/// Most points `GET /searches/{id}/pareto?max_points=` may ask for.
const MAX_PARETO_POINTS: usize = 1_000_000;

/// Query of `GET /searches/{id}/pareto`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ParetoQuery {
    /// Only the points on the front (default false: every succeeded trial).
    pub front_only: Option<bool>,
    /// At most this many points (default: all): every front point, then an
    /// even sample of the others in latency order. For charts of big searches.
    #[param(minimum = 1, maximum = 1_000_000)]
    pub max_points: Option<usize>,
}

/// `GET /searches/{id}/pareto`: the accuracy/latency plane with each
/// trial's non-dominated rank (the validated front), the final models'
/// tested front, and their hypervolumes.
#[utoipa::path(get, path = "/api/v1/searches/{id}/pareto", tag = "searches",
    params(SearchId, ParetoQuery),
    responses((status = 200, body = Pareto), QueryErrors))]
pub async fn pareto(
    State(state): State<AppState>,
    SearchId(id): SearchId,
    ApiQuery(q): ApiQuery<ParetoQuery>,
) -> ApiResult<Json<Pareto>> {
    if q.max_points
        .is_some_and(|n| !(1..=MAX_PARETO_POINTS).contains(&n))
    {
        return Err(ApiError::bad_query(
            format!("max_points must be 1 to {MAX_PARETO_POINTS}"),
            Some("max_points"),
        ));
    }
    let fronts = state.store.fronts(id).await?;
    let mut points = fronts.points;
    let total_points = points.len();
    let best_so_far = best_so_far(&points);
    if q.front_only.unwrap_or(false) {
        points.retain(|p| p.on_front);
    }
    let mut rejected = state.store.rejected(id).await?;
    if let Some(max) = q.max_points {
        points = thin(points, max);
        rejected = thin_evenly(rejected, max / 10 + 1);
    }
    Ok(Json(Pareto {
        search_id: id,
        total_points,
        points,
        rejected,
        best_so_far,
        tested: fronts.tested,
        hypervolume: fronts.hypervolume,
    }))
}

/// The steps of the best reward so far, in trial order: each trial that
/// improved on every earlier one.
fn best_so_far(points: &[store::ParetoPoint]) -> Vec<super::dto::BestStep> {
    // Baselines (negative indices) are not part of the search's sequence.
    let mut by_index: Vec<(i64, f64)> = points
        .iter()
        .filter(|p| p.index >= 0)
        .map(|p| (p.index, p.reward))
        .collect();
    by_index.sort_by_key(|(index, _)| *index);
    let mut steps: Vec<super::dto::BestStep> = Vec::new();
    for (index, reward) in by_index {
        if steps.last().is_none_or(|s| reward > s.reward) {
            steps.push(super::dto::BestStep { index, reward });
        }
    }
    steps
}

/// At most `max` points: the whole front, then evenly spaced others.
fn thin(points: Vec<store::ParetoPoint>, max: usize) -> Vec<store::ParetoPoint> {
    if points.len() <= max {
        return points;
    }
    let (front, rest): (Vec<_>, Vec<_>) = points.into_iter().partition(|p| p.on_front);
    let room = max.saturating_sub(front.len());
    let mut kept = front;
    kept.extend(thin_evenly(rest, room));
    kept.sort_by(|a, b| {
        a.latency_ms
            .total_cmp(&b.latency_ms)
            .then(a.trial_id.cmp(&b.trial_id))
    });
    kept
}

/// `max` items spread evenly over `items` (all of them if they fit).
fn thin_evenly<T>(items: Vec<T>, max: usize) -> Vec<T> {
    let n = items.len();
    if n <= max {
        return items;
    }
    items
        .into_iter()
        .enumerate()
        .filter(|(i, _)| (i * max) % n < max)
        .map(|(_, item)| item)
        .take(max)
        .collect()
}
