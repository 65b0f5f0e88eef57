//! The HTTP API under `/api/v1` (axum), on a [`Store`].

mod error;
mod routes;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use store::Store;

pub use error::ApiError;

/// Largest accepted request body (a search spec with an inline space fits easily).
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// What every handler shares.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The database.
    pub store: Store,
}

/// The API's routes, ready to serve (tests call it on port 0).
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/healthz", get(routes::healthz))
        .route("/readyz", get(routes::readyz))
        .route(
            "/searches",
            post(routes::create_search).get(routes::list_searches),
        )
        .route("/searches/{id}", get(routes::get_search))
        .route("/searches/{id}/cancel", post(routes::cancel_search))
        .route("/searches/{id}/trials", get(routes::list_trials))
        .route("/trials/{id}", get(routes::get_trial))
        .route("/trials/{id}/architecture", get(routes::get_architecture))
        .route("/trials/{id}/weights", get(routes::get_weights))
        .route("/zoo", get(routes::zoo))
        .route("/spaces", get(routes::spaces))
        .fallback(routes::not_found);
    Router::new()
        .nest("/api/v1", api)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}
