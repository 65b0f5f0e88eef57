//! `nas up` (and `nas` alone): an SQLite file, the API on 127.0.0.1 and
//! in-process workers, until SIGTERM or Ctrl-C.

use std::net::{Ipv4Addr, SocketAddr};

use anyhow::Context;
use store::{QueueConfig, Store};
use tokio::sync::watch;

use super::serve::{bind, serve};
use super::worker::shutdown_signal;
use crate::api::listener::{LimitedListener, HEADER_DEADLINE};
use crate::api::{AppState, Auth, HostPolicy};
use crate::cli::UpArgs;
use worker::pool::AgentPool;

/// Runs everything until a shutdown signal.
pub fn run(args: &UpArgs) -> anyhow::Result<String> {
    let data_dir = args.datasets.resolve();
    let onnxruntime = super::timing::load_onnxruntime(&args.onnxruntime)?;
    let mut pool = AgentPool::new(args.workers, None, &["cpu".to_owned()], data_dir)?;
    super::worker::calibrate(&mut pool, args.calibrate)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let url = format!("sqlite://{}", args.db.display());
        let store = Store::connect(&url, QueueConfig::default())
            .await
            .with_context(|| format!("opening {}", args.db.display()))?
            .with_limits(args.limits.limits());
        let address = SocketAddr::from((Ipv4Addr::LOCALHOST, args.port));
        let listener = bind(address).await?;
        let (stop_tx, stop_rx) = watch::channel(false);
        let agents = pool.spawn(&store, &stop_rx);
        println!(
            "nas is up: http://{address}/ (API http://{address}/api/v1)\n\
             database {}, {} worker(s) x {} thread(s), datasets in {}\n\
             {}\n\
             submit a search:  nas submit examples/quick.json --wait\n\
             stop with Ctrl-C",
            args.db.display(),
            pool.concurrency,
            pool.threads,
            pool.data_dir.display(),
            super::timing::onnxruntime_status(onnxruntime.as_ref()),
        );
        let mut stopped = stop_rx.clone();
        let listener = LimitedListener::new(listener, args.http.max_connections, HEADER_DEADLINE);
        let server = tokio::spawn(serve(
            listener,
            AppState::new(store.clone(), Auth::open())
                .with_hosts(HostPolicy::loopback(&args.http.allowed_hosts))
                .with_max_streams(args.http.max_streams)
                .with_max_upload_mib(args.http.max_dataset_mib),
            async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            },
        ));
        shutdown_signal().await;
        tracing::info!("shutting down: handing running trials back");
        let _ = stop_tx.send(true);
        AgentPool::join(agents).await?;
        server.await.context("server task panicked")??;
        store.close().await;
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(String::new())
}
