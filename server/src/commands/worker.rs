//! `nas worker`: runs agents against the database until SIGTERM or Ctrl-C,
//! then hands running trials back and exits.

use std::time::Duration;

use anyhow::{bail, Context};
use store::{QueueConfig, Store};
use tokio::sync::watch;
use worker::health::Health;
use worker::pool::AgentPool;

use crate::cli::WorkerArgs;
use crate::commands::worker_health;

fn seconds(name: &str, value: f64) -> anyhow::Result<Duration> {
    if !(value.is_finite() && value > 0.0) {
        bail!("--{name} must be a positive number of seconds");
    }
    Ok(Duration::from_secs_f64(value))
}

/// Resolves once SIGTERM or Ctrl-C arrives.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

/// With `enabled`, measures the reference networks and seeds the latency
/// predictor before the pool's agents register (a few seconds).
pub fn calibrate(pool: &mut AgentPool, enabled: bool) -> anyhow::Result<()> {
    if enabled {
        let calibration = pool.calibrate()?;
        tracing::info!(
            speed_factor = calibration.speed_factor,
            seconds = calibration.seconds,
            "calibrated against the reference device"
        );
    }
    Ok(())
}

/// Runs `--concurrency` agents until a shutdown signal.
pub fn run(args: &WorkerArgs) -> anyhow::Result<String> {
    let queue = QueueConfig {
        lease: seconds("lease-secs", args.lease_secs)?,
        ..QueueConfig::default()
    };
    let mut pool = AgentPool::new(
        args.concurrency,
        args.threads,
        &args.labels.labels,
        args.datasets.resolve(),
    )?;
    pool.heartbeat = seconds("heartbeat-secs", args.heartbeat_secs)?;
    pool.reference_period = seconds("reference-every-secs", args.reference_every_secs)?;
    let onnxruntime = super::timing::load_onnxruntime(&args.onnxruntime)?;
    let status = super::timing::onnxruntime_status(onnxruntime.as_ref());
    match onnxruntime {
        Some(_) => tracing::info!("{status}"),
        None => tracing::warn!("{status}"),
    }
    calibrate(&mut pool, args.calibrate)?;
    pool.exclusive_finals = !args.shared_finals;
    pool.poll = seconds("poll-secs", args.poll_secs)?;
    if let Some(mib) = args.max_memory_mib {
        pool.max_memory = Some(mib.saturating_mul(1 << 20));
    }
    if pool.heartbeat >= queue.lease {
        bail!("--heartbeat-secs must be shorter than --lease-secs, or every lease would expire");
    }
    let health = match args.health_addr {
        Some(_) => {
            let stale = match args.stale_secs {
                Some(secs) => seconds("stale-secs", secs)?,
                None => queue.lease.max(pool.heartbeat * 4).max(pool.poll * 4),
            };
            Some(Health::new(stale))
        }
        None => None,
    };
    pool.health = health.clone();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let store = connect_with_retries(&args.database_url, queue).await?;
        let (stop_tx, stop_rx) = watch::channel(false);
        if let (Some(addr), Some(health)) = (args.health_addr, &health) {
            worker_health::serve(addr, health.clone(), stop_rx.clone()).await?;
        }
        let agents = pool.spawn(&store, &stop_rx);
        shutdown_signal().await;
        tracing::info!("shutting down: handing running trials back");
        let _ = stop_tx.send(true);
        AgentPool::join(agents).await?;
        store.close().await;
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(String::new())
}

/// Attempts to reach the database at start-up before a worker gives up.
const CONNECT_ATTEMPTS: u32 = 6;

/// Connects, retrying with doubling delays (1 s to 16 s): a worker started
/// alongside its database, or during a blip, waits for it instead of exiting.
async fn connect_with_retries(url: &str, queue: QueueConfig) -> anyhow::Result<Store> {
    let mut delay = Duration::from_secs(1);
    for attempt in 1..=CONNECT_ATTEMPTS {
        match Store::connect(url, queue).await {
            Ok(store) => return Ok(store),
            Err(e) if attempt < CONNECT_ATTEMPTS => {
                tracing::warn!(error = %e, retry_in_secs = delay.as_secs(), "cannot reach the database yet");
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            Err(e) => {
                return Err(e).with_context(|| format!("connecting to {}", redact(url)));
            }
        }
    }
    unreachable!("the last attempt returns")
}

/// A database URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &url[scheme + 3..at];
            let user = creds.split(':').next().unwrap_or("");
            format!("{}{}:***{}", &url[..scheme + 3], user, &url[at..])
        }
        _ => url.to_owned(),
    }
}
