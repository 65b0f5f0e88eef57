//! `nas serve`: the HTTP API on a database, until SIGTERM or Ctrl-C.

use std::future::Future;
use std::net::SocketAddr;

use anyhow::{bail, Context};
use store::{QueueConfig, Store};

use super::worker::{redact, shutdown_signal};
use crate::api::listener::{LimitedListener, HEADER_DEADLINE};
use crate::api::{router, AppState, Auth, HostPolicy};
use crate::cli::ServeArgs;

/// Serves the API until a shutdown signal.
pub fn run(args: &ServeArgs) -> anyhow::Result<String> {
    let auth = Auth::new(args.token.as_deref(), args.read_token.as_deref())?;
    if !args.bind.ip().is_loopback() && !auth.protects_writes() && !args.insecure {
        bail!(
            "refusing to serve on {} without a token: set NAS_API_TOKEN (or --token), bind to 127.0.0.1, or pass --insecure",
            args.bind
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let store = Store::connect(&args.database_url, QueueConfig::default())
            .await
            .with_context(|| format!("connecting to {}", redact(&args.database_url)))?
            .with_limits(args.limits.limits());
        let listener = LimitedListener::new(
            bind(args.bind).await?,
            args.http.max_connections,
            HEADER_DEADLINE,
        );
        serve(
            listener,
            AppState::new(store.clone(), auth)
                .with_hosts(if args.bind.ip().is_loopback() {
                    HostPolicy::loopback(&args.http.allowed_hosts)
                } else {
                    HostPolicy::any()
                })
                .with_max_streams(args.http.max_streams)
                .with_max_upload_mib(args.http.max_dataset_mib),
            shutdown_signal(),
        )
        .await?;
        store.close().await;
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(String::new())
}

/// Binds the API's listening socket.
pub async fn bind(address: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("binding {address} (is another server on that port?)"))
}

/// Serves the API on `listener` until `stop` resolves, then ends the event
/// streams and lets running requests finish.
pub async fn serve(
    listener: LimitedListener,
    state: AppState,
    stop: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let address = axum::serve::Listener::local_addr(&listener)?;
    tracing::info!(%address, "serving http://{address}/api/v1");
    let app = router(state.clone());
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            stop.await;
            state.end_streams();
        })
        .await?;
    Ok(())
}
