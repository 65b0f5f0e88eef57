//! Several agents in one process (`nas worker --concurrency N`, `nas up
//! --workers N`): they share the machine's cores and one store, each with its
//! own worker id.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use store::{DeviceProfile, Store, StoreError, WorkerInfo};
use thiserror::Error;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::agent::{Agent, AgentConfig};
use crate::health::Health;
use crate::host::gate::{self, HostGate};
use crate::host::CoreShare;
use crate::latency::calibrate::{calibrate, Calibration, CalibrationError};
use crate::latency::predict::{Predictor, PredictorScreen};
use crate::latency::{onnxruntime, Device, LatencyConfig, Meter, References, Runtime};
use crate::memory::available_memory;

/// Why a pool could not be set up or did not stop cleanly.
#[derive(Debug, Error)]
pub enum PoolError {
    /// A setting is out of range.
    #[error("{0}")]
    Config(&'static str),
    /// The reference networks could not be measured.
    #[error("calibration failed: {0}")]
    Calibration(#[from] CalibrationError),
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
    /// Whether a final model claimed while the other agents are idle trains
    /// on every core of the pool (see [`crate::host::cores`]; default on).
    pub exclusive_finals: bool,
    /// This machine's speed factor against the reference device, registered
    /// with every agent ([`AgentPool::calibrate`] measures it; `None`:
    /// uncalibrated).
    pub speed_factor: Option<f64>,
    /// This machine's latency predictor, shared by the agents: seeded by
    /// [`AgentPool::calibrate`], refined by every measured trial.
    pub predictor: Arc<Mutex<Predictor>>,
    /// Where the agents report their state (the process's health
    /// endpoint); `None`: not reported.
    pub health: Option<Arc<Health>>,
    /// The device's latency reference bases (set by
    /// [`AgentPool::calibrate`]; `None`: latency on the absolute basis).
    pub references: Option<Arc<References>>,
    /// How often the reference is re-established while the pool runs.
    pub reference_period: Duration,
}

/// How often a worker re-establishes its latency reference by default.
pub const REFERENCE_PERIOD: Duration = Duration::from_secs(3600);

/// Networks [`AgentPool::calibrate`] measures to seed the predictor, from
/// each of these presets.
const PREDICTOR_SEED: (&[&str], usize) = (&["small", "mobile"], 16);

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
            exclusive_finals: true,
            speed_factor: None,
            predictor: Arc::new(Mutex::new(Predictor::new())),
            health: None,
            references: None,
            reference_period: REFERENCE_PERIOD,
        })
    }

    /// The latency runtimes this process has: our engine, and onnxruntime
    /// once its library is loaded.
    pub fn runtimes(&self) -> Vec<Runtime> {
        let mut runtimes = vec![Runtime::Nas];
        if onnxruntime::loaded().is_some() {
            runtimes.push(Runtime::Onnxruntime);
        }
        runtimes
    }

    /// The labels the agents offer: the configured ones and the labels of
    /// the runtimes this process has (`onnxruntime`). A runtime's label
    /// configured without its runtime is dropped (logged): the agents would
    /// claim trials they cannot measure.
    fn offered_labels(&self) -> Vec<String> {
        let have = self.runtimes();
        let mut labels: Vec<String> = self
            .labels
            .iter()
            .filter(|label| {
                let missing = Runtime::ALL.iter().find(|r| {
                    r.required_label() == Some(label.as_str()) && !have.contains(r)
                });
                if let Some(runtime) = missing {
                    tracing::warn!(label = %label, "label dropped: this worker has no {runtime} (give it the library with --onnxruntime or NAS_ONNXRUNTIME)");
                }
                missing.is_none()
            })
            .cloned()
            .collect();
        for runtime in self.runtimes() {
            if let Some(label) = runtime.required_label() {
                if !labels.iter().any(|l| l == label) {
                    labels.push(label.to_owned());
                }
            }
        }
        labels
    }

    /// Establishes the device reference's latency in every runtime this
    /// process has (kept beside the latency lock), then
    /// measures the reference networks relative to it (on a quiet host,
    /// through the latency gate) and keeps the speed factor for the agents
    /// to register, and seeds the latency predictor; blocks for some
    /// seconds. Without it, latency is timed on the absolute basis.
    pub fn calibrate(&mut self) -> Result<Calibration, PoolError> {
        let gate = self.open_gate();
        let references = Arc::new(match &self.latency_lock {
            Some(lock) => References::at(References::file_beside(lock)),
            None => References::in_memory(),
        });
        let threads = LatencyConfig::default().threads;
        for runtime in self.runtimes() {
            references
                .establish(runtime, threads, gate.as_deref())
                .map_err(CalibrationError::Measure)?;
        }
        self.references = Some(references.clone());
        let meter = Meter {
            config: LatencyConfig::default(),
            gate: gate.as_deref(),
            runtime: Runtime::Nas,
            references: Some(&references),
        };
        let calibration = calibrate(&meter)?;
        self.speed_factor = Some(calibration.speed_factor);
        let seed = seed_predictor(&meter)?;
        tracing::info!(networks = seed.observations(), "latency predictor seeded");
        *self
            .predictor
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = seed;
        Ok(calibration)
    }

    /// Starts the agents on the current runtime; they run until `stop` turns true.
    pub fn spawn(&self, store: &Store, stop: &watch::Receiver<bool>) -> Agents {
        let host = host_name();
        let latency = LatencyConfig::default();
        let measuring = Device::current(latency.threads);
        let device = measuring.fingerprint();
        let profile = self.profile(&measuring);
        let labels = self.offered_labels();
        let cores = CoreShare::new(self.concurrency, self.threads, self.exclusive_finals);
        let ids: Vec<String> = (0..self.concurrency)
            .map(|k| format!("{host}-{}-{k}", std::process::id()))
            .collect();
        // It stops with the agents, on `stop`.
        drop(self.spawn_reference_keeper(store, ids.clone(), stop));
        (0..self.concurrency)
            .map(|k| {
                let config = AgentConfig {
                    worker: WorkerInfo {
                        id: ids[k].clone(),
                        host: host.clone(),
                        labels: labels.clone(),
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
                    references: self.references.clone(),
                    max_memory: self.max_memory.map(|m| m / self.concurrency as u64),
                    cores: Some(cores.clone()),
                    predictor: Some(self.predictor.clone()),
                    health: self.health.clone(),
                };
                let screen = Arc::new(PredictorScreen(self.predictor.clone()));
                let store = store.clone().with_screen(screen);
                tokio::spawn(Agent::new(store, config).run(stop.clone()))
            })
            .collect()
    }

    /// The profile the agents register: the device, its speed factor, its
    /// runtimes and its reference bases.
    fn profile(&self, measuring: &Device) -> DeviceProfile {
        DeviceProfile {
            speed_factor: self.speed_factor,
            runtimes: self
                .runtimes()
                .iter()
                .map(|r| r.as_str().to_owned())
                .collect(),
            references: self
                .references
                .as_ref()
                .map(|r| r.all().iter().map(registered_reference).collect())
                .unwrap_or_default(),
            ..measuring.profile()
        }
    }

    /// Re-establishes the reference in every runtime every
    /// `reference_period` (on a quiet host) and registers the new bases
    /// with the agents' profiles, until `stop` turns true; nothing without
    /// references.
    fn spawn_reference_keeper(
        &self,
        store: &Store,
        worker_ids: Vec<String>,
        stop: &watch::Receiver<bool>,
    ) -> Option<JoinHandle<()>> {
        let references = self.references.clone()?;
        let pool = self.clone();
        let store = store.clone();
        let mut stop = stop.clone();
        Some(tokio::spawn(async move {
            let period = pool.reference_period;
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(period) => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
                let gate = pool.open_gate();
                let runtimes = pool.runtimes();
                let threads = LatencyConfig::default().threads;
                let keeper = references.clone();
                let done = tokio::task::spawn_blocking(move || {
                    for runtime in runtimes {
                        if let Err(e) = keeper.establish(runtime, threads, gate.as_deref()) {
                            tracing::warn!(error = %e, runtime = %runtime, "the latency reference could not be re-established; the previous basis stays");
                        }
                    }
                })
                .await;
                if let Err(e) = done {
                    tracing::warn!(error = %e, "latency reference task failed");
                    continue;
                }
                let profile = pool.profile(&Device::current(LatencyConfig::default().threads));
                for id in &worker_ids {
                    if let Err(e) = store.update_device_profile(id, &profile).await {
                        tracing::warn!(error = %e, worker = %id, "the new latency reference could not be registered");
                    }
                }
            }
        }))
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

/// A basis as a worker registers it.
fn registered_reference(basis: &crate::latency::reference::Basis) -> store::LatencyReference {
    store::LatencyReference {
        runtime: basis.runtime.as_str().to_owned(),
        threads: u32::try_from(basis.threads).unwrap_or(u32::MAX),
        network: basis.network.clone(),
        p50_ms: basis.p50_ms,
        drift: basis.drift,
        established_at: basis.established_at_ms(),
    }
}

/// A predictor fitted to short measurements (as `meter` measures, with
/// shorter settings) of networks sampled from the presets in
/// [`PREDICTOR_SEED`] (about 5 s for the 32 on the reference device).
fn seed_predictor(meter: &Meter<'_>) -> Result<Predictor, CalibrationError> {
    let config = LatencyConfig {
        warmup_min_ms: 20.0,
        warmup_max_ms: 200.0,
        min_runs: 20,
        min_time_ms: 50.0,
        max_time_ms: 300.0,
        target_ci: 0.03,
        accept_ci: 0.10,
        attempts: 1,
        ..LatencyConfig::default()
    };
    let mut predictor = Predictor::new();
    let (presets, per_preset) = PREDICTOR_SEED;
    for preset in presets {
        let space = search::SearchSpace::preset(preset)
            .map_err(|e| CalibrationError::Reference(format!("preset {preset}: {e}")))?;
        let mut rng = search::seeded_rng(0x5eed);
        for _ in 0..per_preset {
            let architecture =
                search::sample(&space, search::InputShape::new(1, 28, 28), 10, &mut rng)
                    .map_err(|e| CalibrationError::Reference(format!("a {preset} sample: {e}")))?;
            let mut network = crate::net::Network::new(&architecture, 1)?;
            let latency = crate::latency::measure_with(&mut network, &Meter { config, ..*meter })?;
            predictor.observe(&architecture, latency.p50);
        }
    }
    predictor.fit();
    Ok(predictor)
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
