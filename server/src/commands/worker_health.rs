//! `nas worker --health-addr`: a small HTTP endpoint for a supervisor's
//! probes (Kubernetes' liveness and readiness): `GET /healthz` answers 200
//! while no agent is stalled and 503 once one is (restart the process: its
//! trials' leases expire and other workers resume them), `GET /readyz` 200
//! while every agent reaches the database. Both return the
//! [`HealthReport`] as JSON: each agent's state, current trial and when it
//! last heartbeat.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use tokio::sync::watch;
use worker::health::{Health, HealthReport};

/// The endpoint's routes over `health`.
pub fn router(health: Arc<Health>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(health)
}

fn answer(ok: bool, report: HealthReport) -> (StatusCode, Json<HealthReport>) {
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(report))
}

async fn healthz(State(health): State<Arc<Health>>) -> (StatusCode, Json<HealthReport>) {
    let report = health.report();
    answer(report.alive(), report)
}

async fn readyz(State(health): State<Arc<Health>>) -> (StatusCode, Json<HealthReport>) {
    let report = health.report();
    answer(report.ready, report)
}

/// Binds `addr` and serves the endpoint until `stop` turns true; returns the
/// bound address (port 0 picks one) once listening.
pub async fn serve(
    addr: SocketAddr,
    health: Arc<Health>,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the health endpoint to {addr}"))?;
    let bound = listener.local_addr()?;
    tracing::info!(%bound, "worker health endpoint listening");
    tokio::spawn(async move {
        let served = axum::serve(listener, router(health))
            .with_graceful_shutdown(async move {
                let _ = stop.wait_for(|s| *s).await;
            })
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "the health endpoint stopped");
        }
    });
    Ok(bound)
}
