//! The HTTP API under `/api/v1` (axum) on a [`Store`]: one module per group
//! of routes, plus authentication, request metrics and the OpenAPI document.

mod auth;
mod catalog;
pub mod datasets;
pub mod dto;
mod error;
mod events;
mod extract;
mod finals;
mod guard;
pub mod listener;
pub mod openapi;
mod ops;
mod responses;
mod searches;
mod telemetry;
mod trials;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::routing::{get, post};
use axum::Router;
use store::Store;
use tokio::sync::watch;

pub use auth::{Auth, ReadWithoutWrite};
pub use error::ApiError;
pub use guard::HostPolicy;
pub use searches::leaderboard_csv;

/// Event streams open at once by default; more get 503.
pub const DEFAULT_MAX_STREAMS: usize = 256;

/// The largest dataset upload accepted by default, MiB (`--max-dataset-mib`).
pub const DEFAULT_MAX_DATASET_MIB: u64 = 1024;

/// Largest accepted request body (a search spec with an inline space fits easily).
pub const MAX_BODY_BYTES: usize = 256 * 1024;

type ApiResult<T> = Result<T, ApiError>;

/// What every handler shares.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The database.
    pub store: Store,
    /// The tokens requests need.
    pub auth: Arc<Auth>,
    /// Request counts and latencies.
    metrics: Arc<telemetry::HttpMetrics>,
    /// Set to end the event streams (they would hold a graceful shutdown open).
    shutdown: Arc<watch::Sender<bool>>,
    /// Which `Host` names are answered.
    hosts: Arc<HostPolicy>,
    /// Event streams open now, and the most allowed.
    streams: Arc<tokio::sync::Semaphore>,
    /// The largest dataset upload accepted, bytes.
    max_upload_bytes: u64,
}

impl AppState {
    /// State on `store` with the given tokens.
    pub fn new(store: Store, auth: Auth) -> Self {
        Self {
            store,
            auth: Arc::new(auth),
            metrics: Arc::default(),
            shutdown: Arc::new(watch::channel(false).0),
            hosts: Arc::new(HostPolicy::any()),
            streams: Arc::new(tokio::sync::Semaphore::new(DEFAULT_MAX_STREAMS)),
            max_upload_bytes: DEFAULT_MAX_DATASET_MIB << 20,
        }
    }

    /// This state accepting dataset uploads of at most `mib` MiB.
    pub fn with_max_upload_mib(mut self, mib: u64) -> Self {
        self.max_upload_bytes = mib.saturating_mul(1 << 20);
        self
    }

    /// This state answering only the hosts `policy` allows.
    pub fn with_hosts(mut self, policy: HostPolicy) -> Self {
        self.hosts = Arc::new(policy);
        self
    }

    /// This state with at most `max` event streams open at once (503 beyond).
    pub fn with_max_streams(mut self, max: usize) -> Self {
        self.streams = Arc::new(tokio::sync::Semaphore::new(max));
        self
    }

    /// Ends every open event stream; call when shutting down.
    pub fn end_streams(&self) {
        self.shutdown.send_replace(true);
    }
}

/// The API's routes, ready to serve (tests call it on port 0).
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .route("/workers", get(ops::workers))
        .route("/events", get(events::events))
        .route("/openapi.json", get(openapi::openapi_json))
        .route(
            "/searches",
            post(searches::create_search).get(searches::list_searches),
        )
        .route("/searches/{id}", get(searches::get_search))
        .route("/searches/{id}/cancel", post(searches::cancel_search))
        .route("/searches/{id}/trials", get(searches::list_trials))
        .route("/searches/{id}/leaderboard", get(searches::leaderboard))
        .route("/searches/{id}/pareto", get(searches::pareto))
        .route(
            "/searches/{id}/final",
            get(finals::final_models).post(finals::request_final),
        )
        .route("/trials/{id}", get(trials::get_trial))
        .route("/trials/{id}/architecture", get(trials::get_architecture))
        .route("/trials/{id}/weights", get(trials::get_weights))
        .route("/trials/{id}/model.onnx", get(trials::get_onnx))
        .route("/zoo", get(catalog::zoo))
        .route("/zoo/{name}", get(catalog::zoo_entry))
        .route("/spaces", get(catalog::spaces))
        .route("/layer-kinds", get(catalog::layer_kinds))
        .route("/datasets", get(catalog::datasets).post(datasets::upload))
        .route(
            "/datasets/{name}",
            get(datasets::dataset).delete(datasets::remove),
        )
        .route("/datasets/{name}/samples.png", get(datasets::samples))
        .route_layer(middleware::from_fn(guard::json_writes))
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(not_found);
    Router::new()
        .nest("/api/v1", api)
        .merge(crate::web::routes())
        .layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            telemetry::track,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            guard::protect,
        ))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// Any other path: a JSON 404.
async fn not_found() -> ApiError {
    ApiError::not_found("route")
}

/// A method the route does not have: a JSON 405.
async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{} does not take {method}", uri.path()),
    )
}
