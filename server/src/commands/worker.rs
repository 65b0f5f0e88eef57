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

/// What in-process agents need besides the store.
#[derive(Debug, Clone)]
pub struct AgentPool {
    /// Agents (trials trained at once).
    pub concurrency: usize,
    /// Training threads per agent.
    pub threads: usize,
    /// Labels offered.
    pub labels: Vec<String>,
    /// Dataset folder.
    pub data_dir: std::path::PathBuf,
    /// Heartbeat interval.
    pub heartbeat: Duration,
    /// Longest idle wait between claims.
    pub poll: Duration,
}

impl AgentPool {
    /// `concurrency` agents sharing the cores (or `threads` each), offering `labels`.
    pub fn new(
        concurrency: usize,
        threads: Option<usize>,
        labels: &[String],
        data_dir: std::path::PathBuf,
    ) -> anyhow::Result<Self> {
        if concurrency == 0 {
            bail!("the number of workers must be at least 1");
        }
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let threads = threads.unwrap_or((cores / concurrency).max(1));
        if threads == 0 {
            bail!("--threads must be at least 1");
        }
        Ok(Self {
            concurrency,
            threads,
            labels: labels.iter().filter(|l| !l.is_empty()).cloned().collect(),
            data_dir,
            heartbeat: Duration::from_secs(5),
            poll: Duration::from_secs(2),
        })
    }

    /// Starts the agents on the current runtime; they run until `stop` turns true.
    pub fn spawn(
        &self,
        store: &Store,
        stop: &watch::Receiver<bool>,
    ) -> Vec<tokio::task::JoinHandle<Result<(), store::StoreError>>> {
        let host = host_name();
        let device = Device::current(self.threads).fingerprint();
        (0..self.concurrency)
            .map(|k| {
                let config = AgentConfig {
                    worker: WorkerInfo {
                        id: format!("{host}-{}-{k}", std::process::id()),
                        host: host.clone(),
                        labels: self.labels.clone(),
                        threads: self.threads as u32,
                        device: device.clone(),
                    },
                    threads: self.threads,
                    data_dir: self.data_dir.clone(),
                    heartbeat: self.heartbeat,
                    poll: self.poll,
                    latency: LatencyConfig::default(),
                };
                tokio::spawn(Agent::new(store.clone(), config).run(stop.clone()))
            })
            .collect()
    }
}

/// Waits for agents to hand their trials back and stop.
pub async fn join_agents(
    agents: Vec<tokio::task::JoinHandle<Result<(), store::StoreError>>>,
) -> anyhow::Result<()> {
    for agent in agents {
        agent.await.context("worker task panicked")??;
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
        &args.labels,
        args.data_dir.clone().unwrap_or_else(default_data_dir),
    )?;
    pool.heartbeat = seconds("heartbeat-secs", args.heartbeat_secs)?;
    pool.poll = seconds("poll-secs", args.poll_secs)?;
    if pool.heartbeat >= queue.lease {
        bail!("--heartbeat-secs must be shorter than --lease-secs, or every lease would expire");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let store = Store::connect(&args.database_url, queue)
            .await
            .with_context(|| format!("connecting to {}", redact(&args.database_url)))?;
        let (stop_tx, stop_rx) = watch::channel(false);
        let agents = pool.spawn(&store, &stop_rx);
        shutdown_signal().await;
        tracing::info!("shutting down: handing running trials back");
        let _ = stop_tx.send(true);
        join_agents(agents).await?;
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
