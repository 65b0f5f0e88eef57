//! Operations routes: liveness, readiness, workers, Prometheus metrics.

use std::fmt::Write;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::dto::{Health, WorkerList};
use super::{ApiResult, AppState};

/// `GET /healthz`: the process answers (never needs a token).
#[utoipa::path(get, path = "/api/v1/healthz", tag = "operations",
    responses((status = 200, body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
    })
}

/// `GET /readyz`: the database answers (never needs a token).
#[utoipa::path(get, path = "/api/v1/readyz", tag = "operations",
    responses((status = 200, body = Health), (status = 503, description = "Database unreachable", body = Health)))]
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    match state.store.ping().await {
        Ok(()) => (
            StatusCode::OK,
            Json(Health {
                status: "ready".into(),
            }),
        ),
        Err(e) => {
            tracing::warn!(error = %e, "database not reachable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(Health {
                    status: "database unreachable".into(),
                }),
            )
        }
    }
}

/// `GET /workers`: every registered worker, alive ones first.
#[utoipa::path(get, path = "/api/v1/workers", tag = "operations",
    responses((status = 200, body = WorkerList), (status = 401, body = super::dto::ErrorBody)))]
pub async fn workers(State(state): State<AppState>) -> ApiResult<Json<WorkerList>> {
    Ok(Json(WorkerList {
        workers: state.store.workers().await?,
    }))
}

/// `GET /metrics`: Prometheus text: trials by state, queue depth, searches by
/// status, workers alive, requests and their latency.
#[utoipa::path(get, path = "/api/v1/metrics", tag = "operations",
    responses(
        (status = 200, description = "Prometheus text format 0.0.4", content_type = "text/plain", body = String),
        (status = 401, body = super::dto::ErrorBody),
    ))]
pub async fn metrics(State(state): State<AppState>) -> ApiResult<Response> {
    let stats = state.store.queue_stats().await?;
    let mut out = String::new();
    out.push_str(
        "# HELP nas_trials Trials by state, over every search.\n# TYPE nas_trials gauge\n",
    );
    for trial_state in store::TrialState::ALL {
        let n = stats.trials.get(trial_state.as_str()).copied().unwrap_or(0);
        let _ = writeln!(out, "nas_trials{{state=\"{}\"}} {n}", trial_state.as_str());
    }
    out.push_str("# HELP nas_searches Searches by status.\n# TYPE nas_searches gauge\n");
    for status in ["running", "finished", "cancelled"] {
        let n = stats.searches.get(status).copied().unwrap_or(0);
        let _ = writeln!(out, "nas_searches{{status=\"{status}\"}} {n}");
    }
    let _ = writeln!(
        out,
        "# HELP nas_queue_depth Trials waiting for a worker (pending and due, or with an expired lease).\n# TYPE nas_queue_depth gauge\nnas_queue_depth {}",
        stats.queue_depth
    );
    let _ = writeln!(
        out,
        "# HELP nas_workers_alive Workers seen within one lease.\n# TYPE nas_workers_alive gauge\nnas_workers_alive {}",
        stats.workers_alive
    );
    state.metrics.render(&mut out);
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
        .into_response())
}
