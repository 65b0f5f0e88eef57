//! The dashboard: one HTML shell for every page, a script and a stylesheet,
//! all embedded in the binary (no CDN, no build step). The script renders
//! each page from the JSON API.

use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

const INDEX: &str = include_str!("../../web/index.html");
const SCRIPT: &str = include_str!("../../web/app.js");
const STYLE: &str = include_str!("../../web/app.css");
const ICON: &str = include_str!("../../web/favicon.svg");

/// The dashboard's pages and assets.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(page))
        .route("/searches/new", get(page))
        .route("/searches/{id}", get(page))
        .route("/trials/{id}", get(page))
        .route("/zoo", get(page))
        .route("/workers", get(page))
        .route("/datasets", get(page))
        .route(
            "/assets/app.js",
            get(|| asset("text/javascript; charset=utf-8", SCRIPT)),
        )
        .route(
            "/assets/app.css",
            get(|| asset("text/css; charset=utf-8", STYLE)),
        )
        .route("/assets/favicon.svg", get(|| asset("image/svg+xml", ICON)))
}

async fn page() -> Response {
    asset("text/html; charset=utf-8", INDEX).await
}

async fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}
