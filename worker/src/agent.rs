//! The worker loop: claim a trial, measure its latency (rejecting it over a
//! hard limit without training), train it on a blocking thread while
//! heartbeating with progress, store per-epoch metrics, weights and the
//! result, and loop. On shutdown it stops claiming and hands a running trial
//! back (pending again, attempt not consumed).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use search::Architecture;
use serde_json::json;
use store::{
    ClaimedTrial, Completion, EpochMetrics, Heartbeat, SearchSpec, Store, StoreError, WorkerInfo,
};
use tokio::sync::{mpsc, watch};
use tracing::{info, warn, Instrument};

use crate::data::{open_dataset, Dataset, KnownDataset};
use crate::latency::{self, Latency, LatencyConfig};
use crate::net::Network;
use crate::train::{
    self, EpochReport, OptimizerKind, Schedule, TrainConfig, TrainData, TrainStatus,
};

/// How an agent runs.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// This worker as registered.
    pub worker: WorkerInfo,
    /// Training threads.
    pub threads: usize,
    /// Dataset folder.
    pub data_dir: PathBuf,
    /// Heartbeat interval while training.
    pub heartbeat: Duration,
    /// Longest wait between claim attempts when idle.
    pub poll: Duration,
    /// Latency measurement settings.
    pub latency: LatencyConfig,
}

/// Why a trial's training was stopped early.
const RUNNING: u8 = 0;
const STOP_CANCELLED: u8 = 1;
const STOP_LEASE_LOST: u8 = 2;
const STOP_SHUTDOWN: u8 = 3;

/// A search's training and validation images (the same split for every trial).
struct SearchData {
    train: Dataset,
    validation: Dataset,
}

/// A worker: its config, the store, and datasets loaded so far.
pub struct Agent {
    store: Store,
    config: AgentConfig,
    datasets: HashMap<String, Arc<SearchData>>,
}

impl Agent {
    /// An agent for `store`.
    pub fn new(store: Store, config: AgentConfig) -> Self {
        Self {
            store,
            config,
            datasets: HashMap::new(),
        }
    }

    /// Runs until `shutdown` turns true: claims and runs trials, rescues
    /// expired leases while idle.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) -> Result<(), StoreError> {
        self.store.register_worker(&self.config.worker).await?;
        let mut events = self.store.subscribe();
        info!(worker = %self.config.worker.id, "worker started");
        while !*shutdown.borrow() {
            if let Err(e) = self.store.rescue_expired().await {
                warn!(error = %e, "rescue failed");
            }
            match self.store.claim(&self.config.worker).await {
                Ok(Some(trial)) => {
                    let span = tracing::info_span!(
                        "trial",
                        search_id = trial.search_id,
                        trial_id = trial.id,
                        attempt = trial.attempt
                    );
                    self.run_trial(trial, shutdown.clone())
                        .instrument(span)
                        .await;
                }
                Ok(None) => {
                    tokio::select! {
                        _ = shutdown.changed() => {}
                        _ = events.recv() => {}
                        () = tokio::time::sleep(self.config.poll) => {}
                    }
                }
                Err(e) => {
                    warn!(error = %e, "claim failed; retrying");
                    tokio::time::sleep(self.config.poll).await;
                }
            }
        }
        info!(worker = %self.config.worker.id, "worker stopped");
        Ok(())
    }

    async fn dataset(
        &mut self,
        name: &str,
        val_fraction: f64,
        seed: u64,
    ) -> Result<Arc<SearchData>, String> {
        let key = format!("{name}/{val_fraction}/{seed}");
        if let Some(d) = self.datasets.get(&key) {
            return Ok(d.clone());
        }
        let known =
            KnownDataset::from_name(name).ok_or_else(|| format!("unknown dataset {name}"))?;
        let dir = self.config.data_dir.clone();
        let split = tokio::task::spawn_blocking(move || open_dataset(known, &dir))
            .await
            .map_err(|e| format!("loading {name}: {e}"))?
            .map_err(|e| e.to_string())?;
        // Train/validation split shared by every trial of the search.
        let (train, val) = split.train.split_validation(val_fraction, seed);
        let data = Arc::new(SearchData {
            train,
            validation: val,
        });
        self.datasets.insert(key, data.clone());
        Ok(data)
    }

    async fn run_trial(&mut self, trial: ClaimedTrial, shutdown: watch::Receiver<bool>) {
        let (id, attempt) = (trial.id, trial.attempt);
        let outcome = self.train_trial(&trial, shutdown).await;
        let reported = match outcome {
            Ok(Some(completion)) => self.store.complete(id, attempt, completion).await,
            Ok(None) => Ok(()),
            Err(TrialError { message, retryable }) => {
                warn!(%message, retryable, "trial failed");
                self.store.fail(id, attempt, &message, retryable).await
            }
        };
        match reported {
            Ok(()) => {}
            Err(StoreError::LeaseLost { .. }) => warn!("lease lost; the result was dropped"),
            Err(e) => warn!(error = %e, "could not report the trial"),
        }
    }

    /// Trains one trial. `Ok(None)`: nothing to report (lease lost or handed back).
    async fn train_trial(
        &mut self,
        trial: &ClaimedTrial,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<Option<Completion>, TrialError> {
        let spec: SearchSpec = serde_json::from_str(&trial.spec)
            .map_err(|e| TrialError::permanent(format!("spec: {e}")))?;
        let arch = Architecture::from_json(&trial.architecture)
            .map_err(|e| TrialError::permanent(e.to_string()))?;
        let report = search::validate(&arch).map_err(|e| TrialError::permanent(e.to_string()))?;
        let data = self
            .dataset(&spec.dataset, spec.training.val_fraction, spec.seed)
            .await
            .map_err(TrialError::retryable)?;
        let seed = spec.seed ^ (trial.index as u64).wrapping_mul(0x2545_F491_4F6C_DD1D);
        let latency_config = self.config.latency;
        let arch_for_latency = arch.clone();
        let (net, latency) =
            tokio::task::spawn_blocking(move || -> Result<(Network, Latency), String> {
                let mut net = Network::new(&arch_for_latency, seed).map_err(|e| e.to_string())?;
                let latency =
                    latency::measure(&mut net, latency_config).map_err(|e| e.to_string())?;
                Ok((net, latency))
            })
            .await
            .map_err(|e| TrialError::retryable(format!("latency thread: {e}")))?
            .map_err(TrialError::permanent)?;
        let latency_json = json!({ "p50": latency.p50, "p90": latency.p90 });
        info!(
            p50_ms = latency.p50,
            params = report.params,
            "latency measured"
        );
        if spec.objective.rejects(latency.p50) {
            let result = json!({ "latency_ms": latency_json, "params": report.params, "macs": report.macs,
                                  "device": latency.device.fingerprint(), "reason": "over the hard latency limit" });
            return Ok(Some(Completion::Rejected {
                result: result.to_string(),
                latency_ms: latency.p50,
            }));
        }
        let config = TrainConfig {
            epochs: spec.budget.epochs as usize,
            batch_size: spec.training.batch_size as usize,
            optimizer: OptimizerKind::adam(),
            learning_rate: spec.training.learning_rate,
            schedule: Schedule::Constant,
            seed,
            max_train_samples: spec.budget.max_train_samples.map(|n| n as usize),
            max_seconds: None,
            augmentation: Default::default(),
            threads: self.config.threads,
        };
        let epochs = config.epochs;
        let stop = Arc::new(AtomicU8::new(RUNNING));
        let cancel = Arc::new(AtomicBool::new(false));
        let (epochs_tx, mut epochs_rx) = mpsc::unbounded_channel::<EpochReport>();
        let training = {
            let (cancel, data) = (cancel.clone(), data.clone());
            tokio::task::spawn_blocking(move || {
                let sets = TrainData {
                    train: &data.train,
                    validation: Some(&data.validation),
                    test: None,
                };
                train::train(net, sets, &config, &cancel, |e| {
                    let _ = epochs_tx.send(e.clone());
                })
                .map(|(net, result)| (crate::weights::to_bytes(&net), result))
            })
        };
        tokio::pin!(training);
        let mut ticker = tokio::time::interval(self.config.heartbeat);
        let mut last: Option<EpochReport> = None;
        let joined = loop {
            tokio::select! {
                joined = &mut training => break joined,
                Some(epoch) = epochs_rx.recv() => {
                    self.record_epoch(trial, &epoch, &stop, &cancel).await;
                    last = Some(epoch);
                }
                _ = ticker.tick() => {
                    let progress = last.as_ref().map(|e| json!({ "epoch": e.epoch, "epochs": epochs, "train_loss": e.train_loss, "val_accuracy": e.val_accuracy }).to_string());
                    match self.store.heartbeat(trial.id, trial.attempt, progress.as_deref()).await {
                        Ok(Heartbeat::Continue) => {}
                        Ok(Heartbeat::Cancel) => self.stop(&stop, &cancel, STOP_CANCELLED, "the search was cancelled"),
                        Ok(Heartbeat::LeaseLost) => self.stop(&stop, &cancel, STOP_LEASE_LOST, "the lease was lost"),
                        Err(e) => warn!(error = %e, "heartbeat failed"),
                    }
                }
                _ = shutdown.changed() => self.stop(&stop, &cancel, STOP_SHUTDOWN, "shutting down"),
            }
        };
        // Epochs reported just before training returned.
        while let Ok(epoch) = epochs_rx.try_recv() {
            self.record_epoch(trial, &epoch, &stop, &cancel).await;
        }
        match stop.load(Ordering::SeqCst) {
            STOP_LEASE_LOST => return Ok(None),
            STOP_SHUTDOWN => {
                if let Err(e) = self.store.release(trial.id, trial.attempt).await {
                    warn!(error = %e, "could not hand the trial back");
                } else {
                    info!("trial handed back");
                }
                return Ok(None);
            }
            STOP_CANCELLED => return Ok(Some(Completion::Cancelled)),
            _ => {}
        }
        let (weights, result) = joined
            .map_err(|e| TrialError::retryable(format!("training thread: {e}")))?
            .map_err(|e| TrialError::permanent(e.to_string()))?;
        match result.status {
            TrainStatus::Diverged => Err(TrialError::permanent(format!(
                "diverged: {}",
                result.message.unwrap_or_default()
            ))),
            TrainStatus::Cancelled => Ok(Some(Completion::Cancelled)),
            TrainStatus::Completed => {
                let accuracy = result.val_accuracy.unwrap_or(0.0);
                let reward = spec.objective.reward(accuracy, latency.p50);
                let summary = json!({
                    "val_accuracy": accuracy, "latency_ms": latency_json, "params": report.params, "macs": report.macs,
                    "train_seconds": result.train_seconds, "images_per_second": result.images_per_second,
                    "epochs": result.epochs.len(), "device": latency.device.fingerprint(), "reward": reward,
                });
                info!(accuracy, reward, "trial done");
                Ok(Some(Completion::Succeeded {
                    result: summary.to_string(),
                    reward,
                    accuracy,
                    latency_ms: latency.p50,
                    weights: weights.ok(),
                }))
            }
        }
    }

    async fn record_epoch(
        &self,
        trial: &ClaimedTrial,
        epoch: &EpochReport,
        stop: &AtomicU8,
        cancel: &AtomicBool,
    ) {
        let m = EpochMetrics {
            epoch: epoch.epoch as i64,
            train_loss: epoch.train_loss,
            train_accuracy: epoch.train_accuracy,
            val_accuracy: epoch.val_accuracy,
            seconds: epoch.seconds,
        };
        info!(epoch = epoch.epoch, loss = epoch.train_loss, val = ?epoch.val_accuracy, "epoch");
        if let Err(e) = self.store.record_epoch(trial.id, trial.attempt, &m).await {
            self.stop(
                stop,
                cancel,
                STOP_LEASE_LOST,
                &format!("recording an epoch: {e}"),
            );
        }
    }

    fn stop(&self, stop: &AtomicU8, cancel: &AtomicBool, reason: u8, why: &str) {
        if stop
            .compare_exchange(RUNNING, reason, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
            info!(reason = why, "stopping the trial");
        }
        cancel.store(true, Ordering::SeqCst);
    }
}

/// A trial that could not run, and whether another attempt may help.
#[derive(Debug)]
struct TrialError {
    message: String,
    retryable: bool,
}

impl TrialError {
    fn permanent(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            retryable: false,
        }
    }
    fn retryable(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            retryable: true,
        }
    }
}
