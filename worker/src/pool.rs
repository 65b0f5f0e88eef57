//! Several agents in one process (`nas worker --concurrency N`, `nas up
//! --workers N`): they share the machine's cores and one store, each with its
//! own worker id.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use store::{Store, StoreError, WorkerInfo};
use thiserror::Error;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::agent::{Agent, AgentConfig};
use crate::latency::{gate, Device, HostGate, LatencyConfig};
use crate::memory::available_memory;

/// Why a pool could not be set up or did not stop cleanly.
#[derive(Debug, Error)]
pub enum PoolError {
    /// A setting is out of range.
    #[error("{0}")]
    Config(&'static str),
    /// An agent's task panicked.
    #[error("worker task panicked: {0}")]
    Panicked(String),
    /// An agent stopped on a store error.
    #[error(transparent)]
    Store(#[from] StoreError),
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
    pub data_dir: PathBuf,
    /// Heartbeat interval.
    pub heartbeat: Duration,
    /// Longest idle wait between claims.
    pub poll: Duration,
    /// Memory the whole pool may use, bytes; each agent gets an equal share
    /// (default: [`available_memory`]).
    pub max_memory: Option<u64>,
    /// The host's latency lock file, shared by every agent of the machine
    /// (default [`HostGate::default_path`]; `None`: no coordination).
    pub latency_lock: Option<PathBuf>,
}

/// The agents a pool started; [`AgentPool::join`] waits for them.
pub type Agents = Vec<JoinHandle<Result<(), StoreError>>>;

impl AgentPool {
    /// `concurrency` agents sharing the cores (or `threads` each), offering `labels`.
    pub fn new(
        concurrency: usize,
        threads: Option<usize>,
        labels: &[String],
        data_dir: PathBuf,
    ) -> Result<Self, PoolError> {
        if concurrency == 0 {
            return Err(PoolError::Config(
                "the number of workers must be at least 1",
            ));
        }
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let threads = threads.unwrap_or((cores / concurrency).max(1));
        if threads == 0 {
            return Err(PoolError::Config("--threads must be at least 1"));
        }
        Ok(Self {
            concurrency,
            threads,
            labels: labels.iter().filter(|l| !l.is_empty()).cloned().collect(),
            data_dir,
            heartbeat: Duration::from_secs(5),
            poll: Duration::from_secs(2),
            max_memory: available_memory(),
            latency_lock: Some(HostGate::default_path()),
        })
    }

    /// Starts the agents on the current runtime; they run until `stop` turns true.
    pub fn spawn(&self, store: &Store, stop: &watch::Receiver<bool>) -> Agents {
        let host = host_name();
        let latency = LatencyConfig::default();
        let measuring = Device::current(latency.threads);
        let device = measuring.fingerprint();
        let profile = measuring.profile();
        (0..self.concurrency)
            .map(|k| {
                let config = AgentConfig {
                    worker: WorkerInfo {
                        id: format!("{host}-{}-{k}", std::process::id()),
                        host: host.clone(),
                        labels: self.labels.clone(),
                        threads: self.threads as u32,
                        device: device.clone(),
                        profile: Some(profile.clone()),
                    },
                    threads: self.threads,
                    data_dir: self.data_dir.clone(),
                    heartbeat: self.heartbeat,
                    poll: self.poll,
                    latency,
                    final_latency: LatencyConfig::thorough(),
                    gate: self.open_gate(),
                    max_memory: self.max_memory.map(|m| m / self.concurrency as u64),
                };
                tokio::spawn(Agent::new(store.clone(), config).run(stop.clone()))
            })
            .collect()
    }

    /// One agent's handle on the host's latency gate; a lock file that
    /// cannot be opened is logged and means no coordination.
    pub fn open_gate(&self) -> Option<Arc<HostGate>> {
        gate::open_or_warn(self.latency_lock.as_ref()?)
    }

    /// Waits for agents to hand their trials back and stop.
    pub async fn join(agents: Agents) -> Result<(), PoolError> {
        for agent in agents {
            agent
                .await
                .map_err(|e| PoolError::Panicked(e.to_string()))??;
        }
        Ok(())
    }
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
