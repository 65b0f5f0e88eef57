//! `nas serve`: the HTTP API on a database, until SIGTERM or Ctrl-C.

use anyhow::{bail, Context};
use store::{QueueConfig, Store};

use super::worker::{redact, shutdown_signal};
use crate::api::{router, AppState};
use crate::cli::ServeArgs;

/// Serves the API until a shutdown signal.
pub fn run(args: &ServeArgs) -> anyhow::Result<String> {
    if !args.bind.ip().is_loopback() && !args.insecure {
        bail!(
            "refusing to serve on {} without authentication; bind to 127.0.0.1 or pass --insecure",
            args.bind
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let store = Store::connect(&args.database_url, QueueConfig::default())
            .await
            .with_context(|| format!("connecting to {}", redact(&args.database_url)))?;
        let listener = tokio::net::TcpListener::bind(args.bind)
            .await
            .with_context(|| format!("binding {}", args.bind))?;
        tracing::info!(address = %args.bind, "serving http://{}/api/v1", args.bind);
        axum::serve(
            listener,
            router(AppState {
                store: store.clone(),
            }),
        )
        .with_graceful_shutdown(shutdown_signal())
        .await?;
        store.close().await;
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(String::new())
}
