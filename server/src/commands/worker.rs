//! `nas worker`: runs agents against the database until SIGTERM or Ctrl-C,
//! then hands running trials back and exits.

use std::time::Duration;

use anyhow::{bail, Context};
use store::{QueueConfig, Store, WorkerInfo};
use tokio::sync::watch;
use worker::agent::{Agent, AgentConfig};
use worker::data::default_data_dir;
use worker::latency::{Device, LatencyConfig};

use crate::cli::WorkerArgs;

fn seconds(name: &str, value: f64) -> anyhow::Result<Duration> {
    if !(value.is_finite() && value > 0.0) {
        bail!("--{name} must be a positive number of seconds");
    }
    Ok(Duration::from_secs_f64(value))
}

/// The machine's name, for worker ids.
pub fn host_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into())
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

/// Runs `--concurrency` agents until a shutdown signal.
pub fn run(args: &WorkerArgs) -> anyhow::Result<String> {
    if args.concurrency == 0 {
        bail!("--concurrency must be at least 1");
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = args.threads.unwrap_or((cores / args.concurrency).max(1));
    if threads == 0 {
        bail!("--threads must be at least 1");
    }
    let queue = QueueConfig {
        lease: seconds("lease-secs", args.lease_secs)?,
        ..QueueConfig::default()
    };
    let heartbeat = seconds("heartbeat-secs", args.heartbeat_secs)?;
    let poll = seconds("poll-secs", args.poll_secs)?;
    if heartbeat >= queue.lease {
        bail!("--heartbeat-secs must be shorter than --lease-secs, or every lease would expire");
    }
    let data_dir = args.data_dir.clone().unwrap_or_else(default_data_dir);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let store = Store::connect(&args.database_url, queue)
            .await
            .with_context(|| format!("connecting to {}", redact(&args.database_url)))?;
        let (stop_tx, stop_rx) = watch::channel(false);
        let host = host_name();
        let device = Device::current(threads).fingerprint();
        let mut agents = Vec::new();
        for k in 0..args.concurrency {
            let config = AgentConfig {
                worker: WorkerInfo {
                    id: format!("{host}-{}-{k}", std::process::id()),
                    host: host.clone(),
                    labels: args
                        .labels
                        .iter()
                        .filter(|l| !l.is_empty())
                        .cloned()
                        .collect(),
                    threads: threads as u32,
                    device: device.clone(),
                },
                threads,
                data_dir: data_dir.clone(),
                heartbeat,
                poll,
                latency: LatencyConfig::default(),
            };
            agents.push(tokio::spawn(
                Agent::new(store.clone(), config).run(stop_rx.clone()),
            ));
        }
        shutdown_signal().await;
        tracing::info!("shutting down: handing running trials back");
        let _ = stop_tx.send(true);
        for agent in agents {
            agent.await.context("worker task panicked")??;
        }
        store.close().await;
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(String::new())
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
