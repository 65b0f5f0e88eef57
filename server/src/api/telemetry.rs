//! Request counts and latency histograms per route, and their Prometheus text.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;

use super::AppState;

/// Upper bounds of the latency buckets, seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

#[derive(Debug, Default, Clone)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

/// What the API has served since start.
#[derive(Debug, Default)]
pub struct HttpMetrics {
    /// `(method, route)` to latency histogram.
    latency: Mutex<BTreeMap<(String, String), Histogram>>,
    /// `(method, route, status)` to count.
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
}

impl HttpMetrics {
    /// Records one request.
    pub fn record(&self, method: &str, route: &str, status: u16, seconds: f64) {
        {
            let mut latency = self.latency.lock().unwrap_or_else(PoisonError::into_inner);
            let h = latency
                .entry((method.to_owned(), route.to_owned()))
                .or_default();
            if let Some(i) = BUCKETS.iter().position(|b| seconds <= *b) {
                h.counts[i] += 1;
            }
            h.sum += seconds;
            h.count += 1;
        }
        {
            let mut requests = self.requests.lock().unwrap_or_else(PoisonError::into_inner);
            *requests
                .entry((method.to_owned(), route.to_owned(), status))
                .or_default() += 1;
        }
    }

    /// The Prometheus text of the request metrics.
    pub fn render(&self, out: &mut String) {
        // Counters stay valid if a thread panicked holding the lock: keep counting.
        let requests = self
            .requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let latency = self
            .latency
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        out.push_str("# HELP nas_http_requests_total HTTP requests served, by route and status.\n");
        out.push_str("# TYPE nas_http_requests_total counter\n");
        for ((method, route, status), n) in &requests {
            let _ = writeln!(
                out,
                "nas_http_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {n}"
            );
        }
        out.push_str(
            "# HELP nas_http_request_duration_seconds Time to the response head, by route.\n",
        );
        out.push_str("# TYPE nas_http_request_duration_seconds histogram\n");
        for ((method, route), h) in &latency {
            let labels = format!("method=\"{method}\",route=\"{route}\"");
            let mut cumulative = 0;
            for (bound, n) in BUCKETS.iter().zip(h.counts) {
                cumulative += n;
                let _ = writeln!(
                    out,
                    "nas_http_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                out,
                "nas_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "nas_http_request_duration_seconds_sum{{{labels}}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "nas_http_request_duration_seconds_count{{{labels}}} {}",
                h.count
            );
        }
    }
}

/// Middleware: times every request under its route pattern (not its raw
/// path, so ids do not multiply the series).
pub async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    // Unknown methods share one series: a client cannot grow the metrics.
    let method = match request.method().as_str() {
        m @ ("GET" | "HEAD" | "POST" | "PUT" | "DELETE" | "PATCH" | "OPTIONS") => m.to_owned(),
        _ => "OTHER".to_owned(),
    };
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(request).await;
    state.metrics.record(
        &method,
        &route,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}
