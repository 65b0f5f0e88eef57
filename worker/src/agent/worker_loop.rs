//! The loop of one agent: claim a trial, run it through the [trial
//! pipeline](crate::pipeline) on a blocking thread while heartbeating with
//! progress, store per-epoch metrics, weights and the result, and loop. On
//! shutdown it stops claiming and hands a running trial back (pending again,
//! attempt not consumed).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use search::{Architecture, SearchSpec, TrialProgress};
use store::{
    ClaimedTrial, Completion, EpochMetrics, Heartbeat, Store, StoreError, TrialPhase, WorkerInfo,
};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{info, warn, Instrument};

use crate::data::{open_dataset, DataError, Dataset, Split};
use crate::failpoint;
use crate::health::{AgentState, Health, HealthHandle};
use crate::host::{CoreLease, CoreShare, HostGate};
use crate::latency::predict::Predictor;
use crate::latency::LatencyConfig;
use crate::pipeline::{self, LatencyLimit, ScoredOn, TrialOutcome, TrialPlan};
use crate::train::{EpochReport, TrainConfig, TrainData};

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
    /// Latency measurement settings for search trials.
    pub latency: LatencyConfig,
    /// Latency measurement settings for final models (longer, tighter).
    pub final_latency: LatencyConfig,
    /// The host's latency gate: measurements wait for a quiet host, and
    /// batches wait out other agents' measurements (`None`: no
    /// coordination).
    pub gate: Option<Arc<HostGate>>,
    /// The device's latency reference bases, shared by the agents of the
    /// process: latency is measured relative to the reference network
    /// (`None`: absolute timing).
    pub references: Option<Arc<crate::latency::References>>,
    /// Memory one trial may use, bytes (`None`: unchecked).
    pub max_memory: Option<u64>,
    /// The cores this agent shares with the other agents of its process
    /// (`None`: it always trains on `threads`).
    pub cores: Option<Arc<CoreShare>>,
    /// The device's latency predictor, shared by the agents of the process
    /// (`None`: every candidate is built and measured).
    pub predictor: Option<Arc<std::sync::Mutex<Predictor>>>,
    /// Where the agent reports its state for the process's health endpoint
    /// (`None`: not reported).
    pub health: Option<Arc<Health>>,
}

/// Why a running trial was stopped before its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Interruption {
    /// The search was cancelled: report the trial cancelled.
    Cancelled,
    /// Another attempt owns the trial now (or it ended): report nothing.
    LeaseLost,
    /// This worker is shutting down: hand the trial back.
    Shutdown,
}

/// Shared between the heartbeat loop and the training thread: the first
/// reason to stop wins, and raising it stops training at the next batch.
#[derive(Debug, Default)]
struct StopSignal {
    reason: OnceLock<Interruption>,
    flag: AtomicBool,
}

impl StopSignal {
    fn stop(&self, reason: Interruption, why: &str) {
        if self.reason.set(reason).is_ok() {
            info!(reason = why, "stopping the trial");
        }
        self.flag.store(true, Ordering::SeqCst);
    }

    fn reason(&self) -> Option<Interruption> {
        self.reason.get().copied()
    }
}

/// A search's training and validation images (the same split for every
/// trial). Search trials never see the test set: it is not here.
struct SearchData {
    train: Dataset,
    validation: Dataset,
}

/// A final model's images: the whole training set (training + validation)
/// and the held-out test set, evaluated once at the end.
struct FinalData {
    train: Dataset,
    test: Dataset,
    /// The dataset's class names, carried by the final model.
    class_names: Vec<String>,
}

/// The images of one trial.
#[derive(Clone)]
enum TrialSets {
    /// A search candidate's.
    Search(Arc<SearchData>),
    /// A final model's.
    Final(Arc<FinalData>),
}

impl TrialSets {
    fn train_data(&self) -> TrainData<'_> {
        match self {
            Self::Search(d) => TrainData {
                train: &d.train,
                validation: Some(&d.validation),
                test: None,
            },
            Self::Final(d) => TrainData {
                train: &d.train,
                validation: None,
                test: Some(&d.test),
            },
        }
    }
}

/// What the training thread hands the agent after each epoch.
type EpochDone = (EpochReport, Option<Vec<u8>>);

/// What a failed attempt means for its trial.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FailureKind {
    /// The trial itself is at fault: no retry helps.
    Permanent,
    /// Another attempt may succeed.
    Retryable,
    /// This worker's surroundings failed (dataset host, disk): the trial is
    /// handed back without using an attempt, and this worker backs off.
    Infrastructure,
}

/// An attempt that could not run, and what that means for its trial.
#[derive(Debug)]
struct AttemptFailure {
    message: String,
    kind: FailureKind,
}

impl AttemptFailure {
    fn permanent(message: impl ToString) -> Self {
        Self {
            message: message.to_string(),
            kind: FailureKind::Permanent,
        }
    }

    fn retryable(message: impl ToString) -> Self {
        Self {
            message: message.to_string(),
            kind: FailureKind::Retryable,
        }
    }

    fn infrastructure(message: impl ToString) -> Self {
        Self {
            message: message.to_string(),
            kind: FailureKind::Infrastructure,
        }
    }
}

/// Most datasets an agent keeps in memory between trials.
const MAX_CACHED_DATASETS: usize = 2;

/// Tries of `complete` before a result is given up (with doubling delays
/// from one second, about a minute in all).
const COMPLETE_TRIES: u32 = 7;

/// Tries of storing a trial's weights before its result is kept without
/// them (with doubling delays from half a second, 3.5 s in all).
const WEIGHTS_TRIES: u32 = 4;

/// First and longest pause of a worker after an infrastructure failure.
const INFRASTRUCTURE_BACKOFF: (Duration, Duration) =
    (Duration::from_secs(5), Duration::from_secs(300));

/// Runs `work` while keeping `trial`'s lease alive with heartbeats.
async fn keep_alive<T>(
    store: &Store,
    trial: &ClaimedTrial,
    every: Duration,
    health: &HealthHandle,
    work: impl std::future::Future<Output = T>,
) -> T {
    tokio::pin!(work);
    let mut ticker = tokio::time::interval(every);
    ticker.tick().await;
    loop {
        tokio::select! {
            out = &mut work => return out,
            _ = ticker.tick() => {
                let beat = store.heartbeat(trial.id, trial.attempt, None).await;
                health.heartbeat(beat.is_ok());
                if let Err(e) = beat {
                    warn!(error = %e, "heartbeat failed");
                }
            }
        }
    }
}

/// What the training thread hands back: the completion to report.
type Finished = Result<Completion, AttemptFailure>;

/// A worker: its config, the store, and datasets loaded so far.
pub struct Agent {
    store: Store,
    config: AgentConfig,
    /// Loaded splits, most recently used last: one per dataset, at most
    /// [`MAX_CACHED_DATASETS`].
    datasets: Vec<(String, Arc<SearchData>)>,
    /// After an infrastructure failure: the current pause, and until when.
    backoff: Option<(Duration, tokio::time::Instant)>,
    /// Where it reports its state.
    health: HealthHandle,
}

impl Agent {
    /// An agent for `store`.
    pub fn new(store: Store, config: AgentConfig) -> Self {
        let health = HealthHandle::new(config.health.clone(), &config.worker.id);
        Self {
            store,
            config,
            datasets: Vec::new(),
            backoff: None,
            health,
        }
    }

    /// Runs until `shutdown` turns true: claims and runs trials, rescues
    /// expired leases while idle.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) -> Result<(), StoreError> {
        self.health.state(AgentState::Starting, None);
        self.store.register_worker(&self.config.worker).await?;
        self.health.called_store(true);
        let mut events = self.store.subscribe();
        info!(worker = %self.config.worker.id, "worker started");
        while !*shutdown.borrow() {
            if let Some((_, until)) = self.backoff {
                self.health.state(AgentState::BackingOff, None);
                tokio::select! {
                    _ = shutdown.changed() => continue,
                    () = tokio::time::sleep_until(until) => {}
                }
            }
            self.health.state(AgentState::Idle, None);
            if let Err(e) = self.store.rescue_expired().await {
                warn!(error = %e, "rescue failed");
            }
            let turn = match &self.config.cores {
                Some(cores) => {
                    self.health.state(AgentState::WaitingForCores, None);
                    let turn = cores.claim_turn(&mut shutdown).await;
                    self.health.state(AgentState::Idle, None);
                    match turn {
                        Some(turn) => Some((cores.clone(), turn)),
                        None => continue,
                    }
                }
                None => None,
            };
            let claiming = std::time::Instant::now();
            let claimed = self.store.claim(&self.config.worker).await;
            self.health.called_store(claimed.is_ok());
            match claimed {
                Ok(Some(trial)) => {
                    self.health.state(AgentState::Running, Some(trial.id));
                    let lease = turn
                        .map(|(cores, turn)| cores.start(turn, trial.phase == TrialPhase::Final));
                    failpoint::hit("after_claim");
                    let span = tracing::info_span!(
                        "trial",
                        search_id = trial.search_id,
                        trial_id = trial.id,
                        attempt = trial.attempt
                    );
                    info!(
                        parent: &span,
                        claim_ms = claiming.elapsed().as_secs_f64() * 1e3,
                        target_epochs = trial.target_epochs,
                        epochs_done = trial.epochs_done,
                        threads = lease.as_ref().map_or(self.config.threads, |l| l.threads()),
                        every_core = lease.as_ref().is_some_and(|l| l.is_exclusive()),
                        "claimed"
                    );
                    self.run_trial(trial, lease, shutdown.clone())
                        .instrument(span)
                        .await;
                }
                Ok(None) => {
                    drop(turn);
                    tokio::select! {
                        _ = shutdown.changed() => {}
                        _ = events.recv() => {}
                        () = tokio::time::sleep(self.config.poll) => {}
                    }
                }
                Err(e) => {
                    drop(turn);
                    warn!(error = %e, "claim failed; retrying");
                    tokio::time::sleep(self.config.poll).await;
                }
            }
        }
        self.health.state(AgentState::Stopped, None);
        info!(worker = %self.config.worker.id, "worker stopped");
        Ok(())
    }

    /// The search's train/validation split, loaded (downloaded on first
    /// use) once per process.
    async fn dataset(&mut self, spec: &SearchSpec) -> Result<Arc<SearchData>, AttemptFailure> {
        let (fraction, seed) = (spec.training.val_fraction, spec.seed);
        let dataset = spec.dataset_id.as_deref().unwrap_or(&spec.dataset);
        let key = format!("{dataset}/{fraction}/{seed}");
        if let Some(at) = self.datasets.iter().position(|(k, _)| *k == key) {
            let hit = self.datasets.remove(at);
            let data = hit.1.clone();
            self.datasets.push(hit);
            return Ok(data);
        }
        let (_, split) = self.load_split(spec).await?;
        let (train, validation) = split.train.split_validation(fraction, seed);
        let data = Arc::new(SearchData { train, validation });
        // One split per dataset, and few datasets: the oldest go first.
        let prefix = format!("{dataset}/");
        self.datasets.retain(|(k, _)| !k.starts_with(&prefix));
        if self.datasets.len() >= MAX_CACHED_DATASETS {
            self.datasets.remove(0);
        }
        self.datasets.push((key, data.clone()));
        Ok(data)
    }

    /// Runs one claimed attempt on the threads of its `lease` (this agent's
    /// own without one) and reports how it ended. The cores are given back
    /// before the report: the report may queue final models, and one
    /// claimed at once must see this agent idle.
    async fn run_trial(
        &mut self,
        trial: ClaimedTrial,
        lease: Option<CoreLease>,
        shutdown: watch::Receiver<bool>,
    ) {
        let (id, attempt) = (trial.id, trial.attempt);
        let threads = lease
            .as_ref()
            .map_or(self.config.threads, CoreLease::threads);
        let attempted = self.attempt(&trial, threads, shutdown).await;
        drop(lease);
        let reported = match attempted {
            Ok(Some(completion)) => {
                self.backoff = None;
                self.report(&trial, completion).await
            }
            Ok(None) => Ok(()),
            Err(AttemptFailure {
                message,
                kind: FailureKind::Infrastructure,
            }) => {
                let pause = self.pause();
                warn!(%message, pause_secs = pause.as_secs(), "infrastructure failure: handing the trial back");
                self.store.release(id, attempt).await
            }
            Err(AttemptFailure { message, kind }) => {
                let retryable = kind == FailureKind::Retryable;
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

    /// Doubles this worker's pause after an infrastructure failure (from
    /// 5 s up to 5 min) and starts it; returns its length.
    fn pause(&mut self) -> Duration {
        let (first, longest) = INFRASTRUCTURE_BACKOFF;
        let pause = self
            .backoff
            .map_or(first, |(last, _)| (last * 2).min(longest));
        self.backoff = Some((pause, tokio::time::Instant::now() + pause));
        pause
    }

    /// Records a finished attempt: its weights first (on their own, so
    /// their size cannot break the completion), then its result, retrying
    /// transient database errors while keeping the lease.
    async fn report(
        &self,
        trial: &ClaimedTrial,
        mut completion: Completion,
    ) -> Result<(), StoreError> {
        let (id, attempt) = (trial.id, trial.attempt);
        if let Completion::Succeeded { weights, .. } = &mut completion {
            if let Some(bytes) = weights.take() {
                failpoint::hit("weights");
                self.store_weights(id, attempt, &bytes).await?;
            }
        }
        failpoint::hit("completion");
        let mut delay = Duration::from_secs(1);
        for tries in 1..=COMPLETE_TRIES {
            match self.store.complete(id, attempt, completion.clone()).await {
                Ok(()) => return Ok(()),
                Err(e @ StoreError::LeaseLost { .. }) => return Err(e),
                Err(StoreError::Invalid(message)) => {
                    return self.store.fail(id, attempt, &message, false).await
                }
                Err(e) if tries == COMPLETE_TRIES => return Err(e),
                Err(e) => {
                    warn!(error = %e, retry_in_secs = delay.as_secs(), "could not record the result; retrying");
                    tokio::time::sleep(delay).await;
                    let beat = self.store.heartbeat(id, attempt, None).await;
                    self.health.heartbeat(beat.is_ok());
                    if let Err(e) = beat {
                        warn!(error = %e, "heartbeat failed");
                    }
                    delay *= 2;
                }
            }
        }
        Ok(())
    }

    /// Stores a finished attempt's weights, retrying a failure a few times
    /// (a dropped database connection must not lose them); if every try
    /// fails, the result is kept without them. Only a lost lease is an
    /// error.
    async fn store_weights(&self, id: i64, attempt: i64, bytes: &[u8]) -> Result<(), StoreError> {
        let mut delay = Duration::from_millis(500);
        for tries in 1..=WEIGHTS_TRIES {
            match self.store.save_weights(id, attempt, bytes).await {
                Ok(()) => return Ok(()),
                Err(e @ StoreError::LeaseLost { .. }) => return Err(e),
                Err(e) if tries == WEIGHTS_TRIES => {
                    warn!(error = %e, bytes = bytes.len(), "the weights could not be stored; keeping the result without them");
                }
                Err(e) => {
                    warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "could not store the weights; retrying");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
            }
        }
        Ok(())
    }

    /// Trains one attempt. `Ok(None)`: nothing to report (lease lost or
    /// handed back).
    async fn attempt(
        &mut self,
        trial: &ClaimedTrial,
        threads: usize,
        shutdown: watch::Receiver<bool>,
    ) -> Result<Option<Completion>, AttemptFailure> {
        let spec: &SearchSpec = &trial.spec;
        let architecture =
            Architecture::from_json(&trial.architecture).map_err(AttemptFailure::permanent)?;
        let (store, every) = (self.store.clone(), self.config.heartbeat);
        let health = self.health.clone();
        let sets = match trial.phase {
            TrialPhase::Search => TrialSets::Search(
                keep_alive(&store, trial, every, &health, self.dataset(spec)).await?,
            ),
            TrialPhase::Final => TrialSets::Final(
                keep_alive(&store, trial, every, &health, self.final_dataset(spec)).await?,
            ),
        };
        let resume = if trial.epochs_done > 0 {
            failpoint::hit("resume");
            let started = std::time::Instant::now();
            let loaded =
                keep_alive(&store, trial, every, &health, store.checkpoint(trial.id)).await;
            info!(
                epochs_done = trial.epochs_done,
                ms = started.elapsed().as_secs_f64() * 1e3,
                "checkpoint read"
            );
            match loaded {
                Ok(None) => {
                    warn!("the trial's checkpoint is gone; training from scratch");
                    None
                }
                Ok(found) => found,
                Err(e) => {
                    return Err(AttemptFailure::infrastructure(format!(
                        "reading the checkpoint: {e}"
                    )))
                }
            }
        } else {
            None
        };
        let plan = self.plan(spec, trial, architecture, threads, resume)?;
        let target = plan.train.stop_at_epoch.unwrap_or(plan.train.epochs) as u32;
        let stop = Arc::new(StopSignal::default());
        let (epochs_tx, epochs_rx) = mpsc::unbounded_channel::<EpochDone>();
        let training = {
            let stop = stop.clone();
            tokio::task::spawn_blocking(move || train_blocking(&plan, &sets, &stop.flag, epochs_tx))
        };
        let joined = self
            .supervise(trial, target, training, epochs_rx, &stop, shutdown)
            .await;
        self.conclude(trial, stop.reason(), joined).await
    }

    /// Loads the spec's dataset (downloading it on first use) off the
    /// async runtime. An unknown dataset is permanent; a load that fails
    /// is an infrastructure failure (the trial is handed back).
    async fn load_split(&self, spec: &SearchSpec) -> Result<(Vec<String>, Split), AttemptFailure> {
        if let Some(id) = &spec.dataset_id {
            failpoint::hit("dataset");
            return crate::uploads::load_uploaded(&self.store, id, &self.config.data_dir)
                .await
                .map(|d| (d.class_names, d.split))
                .map_err(|e| {
                    let message = format!("dataset {}: {e}", spec.dataset);
                    if e.is_transient() {
                        AttemptFailure::infrastructure(message)
                    } else {
                        AttemptFailure::permanent(message)
                    }
                });
        }
        let info = spec.dataset_info().map_err(AttemptFailure::permanent)?;
        failpoint::hit("dataset");
        let dir = self.config.data_dir.clone();
        let split = tokio::task::spawn_blocking(move || open_dataset(info, &dir))
            .await
            .map_err(|e| AttemptFailure::retryable(format!("loading {}: {e}", info.name)))?
            .map_err(|e: DataError| {
                AttemptFailure::infrastructure(format!("dataset {}: {e}", info.name))
            })?;
        Ok((info.facts().class_names, split))
    }

    /// Loads a final model's images: the whole training split and the test
    /// split (not cached: final models are few, and the search's cache
    /// holds no test set).
    async fn final_dataset(&self, spec: &SearchSpec) -> Result<Arc<FinalData>, AttemptFailure> {
        let (class_names, split) = self.load_split(spec).await?;
        Ok(Arc::new(FinalData {
            train: split.train,
            test: split.test,
            class_names,
        }))
    }

    /// What the pipeline runs for this trial of `spec`: a search candidate
    /// trains towards its rung under the search's recipe (the schedule
    /// planned over the last rung, so rungs join up exactly); a final model
    /// trains the final recipe from scratch and is scored on the test set.
    fn plan(
        &self,
        spec: &SearchSpec,
        trial: &ClaimedTrial,
        architecture: Architecture,
        threads: usize,
        resume: Option<Vec<u8>>,
    ) -> Result<TrialPlan, AttemptFailure> {
        let seed = spec.seed ^ (trial.index as u64).wrapping_mul(0x2545_F491_4F6C_DD1D);
        let (train, scored_on, latency) = match trial.phase {
            TrialPhase::Search => {
                let config = TrainConfig {
                    max_train_samples: spec.budget.max_train_samples.map(|n| n as usize),
                    stop_at_epoch: Some(trial.target_epochs as usize),
                    ..TrainConfig::from_recipe(&spec.training, spec.planned_epochs(), seed, threads)
                };
                (config, ScoredOn::Validation, self.config.latency)
            }
            TrialPhase::Final => {
                let settings = trial.final_training.clone().unwrap_or_default();
                let recipe = settings.recipe(&spec.training);
                let config = TrainConfig::from_recipe(recipe, settings.epochs, seed, threads);
                (config, ScoredOn::Test, self.config.final_latency)
            }
        };
        Ok(TrialPlan {
            architecture,
            seed,
            latency,
            train,
            objective: spec.objective.clone(),
            max_memory: self.config.max_memory,
            resume,
            checkpoints: true,
            scored_on,
            gate: self.config.gate.clone(),
            runtime: spec.objective.runtime(),
            references: self.config.references.clone(),
            speed_factor: self
                .config
                .worker
                .profile
                .as_ref()
                .and_then(|p| p.speed_factor),
            predictor: self.config.predictor.clone(),
            latency_limit: latency_limit(trial),
        })
    }

    /// Heartbeats and records epochs until training returns; raises `stop`
    /// on a cancel, a lost lease or shutdown.
    async fn supervise(
        &self,
        trial: &ClaimedTrial,
        epochs: u32,
        training: JoinHandle<Finished>,
        mut epochs_rx: mpsc::UnboundedReceiver<EpochDone>,
        stop: &StopSignal,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<Finished, tokio::task::JoinError> {
        tokio::pin!(training);
        let mut ticker = tokio::time::interval(self.config.heartbeat);
        let mut progress: Option<TrialProgress> = None;
        let joined = loop {
            tokio::select! {
                joined = &mut training => break joined,
                Some((epoch, checkpoint)) = epochs_rx.recv() => {
                    self.record_epoch(trial, &epoch, checkpoint, stop).await;
                    progress = Some(TrialProgress {
                        epoch: epoch.epoch as u32,
                        epochs,
                        train_loss: epoch.train_loss,
                        val_accuracy: epoch.val_accuracy,
                    });
                }
                _ = ticker.tick() => self.heartbeat(trial, progress.as_ref(), stop).await,
                _ = shutdown.changed() => stop.stop(Interruption::Shutdown, "shutting down"),
            }
        };
        // Epochs reported just before training returned.
        while let Ok((epoch, checkpoint)) = epochs_rx.try_recv() {
            self.record_epoch(trial, &epoch, checkpoint, stop).await;
        }
        joined
    }

    async fn heartbeat(
        &self,
        trial: &ClaimedTrial,
        progress: Option<&TrialProgress>,
        stop: &StopSignal,
    ) {
        let beat = self
            .store
            .heartbeat(trial.id, trial.attempt, progress)
            .await;
        self.health.heartbeat(beat.is_ok());
        match beat {
            Ok(Heartbeat::Continue) => {}
            Ok(Heartbeat::Cancel) => stop.stop(Interruption::Cancelled, "the search was cancelled"),
            Ok(Heartbeat::LeaseLost) => stop.stop(Interruption::LeaseLost, "the lease was lost"),
            Err(e) => warn!(error = %e, "heartbeat failed"),
        }
    }

    /// Turns how the attempt ended into what to report.
    async fn conclude(
        &self,
        trial: &ClaimedTrial,
        interruption: Option<Interruption>,
        joined: Result<Finished, tokio::task::JoinError>,
    ) -> Result<Option<Completion>, AttemptFailure> {
        match interruption {
            Some(Interruption::LeaseLost) => return Ok(None),
            Some(Interruption::Shutdown) => {
                match self.store.release(trial.id, trial.attempt).await {
                    Ok(()) => info!("trial handed back"),
                    Err(e) => warn!(error = %e, "could not hand the trial back"),
                }
                return Ok(None);
            }
            Some(Interruption::Cancelled) => return Ok(Some(Completion::Cancelled)),
            None => {}
        }
        let finished =
            joined.map_err(|e| AttemptFailure::retryable(format!("training thread: {e}")))?;
        finished.map(Some)
    }

    async fn record_epoch(
        &self,
        trial: &ClaimedTrial,
        epoch: &EpochReport,
        checkpoint: Option<Vec<u8>>,
        stop: &StopSignal,
    ) {
        let m = EpochMetrics {
            epoch: epoch.epoch as i64,
            train_loss: epoch.train_loss,
            train_accuracy: epoch.train_accuracy,
            val_accuracy: epoch.val_accuracy,
            seconds: epoch.seconds,
        };
        info!(epoch = epoch.epoch, loss = epoch.train_loss, val = ?epoch.val_accuracy, seconds = epoch.seconds, "epoch");
        if let Err(e) = self.store.record_epoch(trial.id, trial.attempt, &m).await {
            stop.stop(Interruption::LeaseLost, &format!("recording an epoch: {e}"));
            return;
        }
        if let Some(bytes) = checkpoint {
            failpoint::hit("checkpoint");
            let epoch_number = epoch.epoch as u32;
            let started = std::time::Instant::now();
            match self
                .store
                .save_checkpoint(trial.id, trial.attempt, epoch_number, &bytes)
                .await
            {
                Ok(()) => info!(
                    epoch = epoch_number,
                    bytes = bytes.len(),
                    ms = started.elapsed().as_secs_f64() * 1e3,
                    "checkpoint stored"
                ),
                Err(e @ StoreError::LeaseLost { .. }) => stop.stop(
                    Interruption::LeaseLost,
                    &format!("saving a checkpoint: {e}"),
                ),
                // Training goes on; a crash now would resume from an older checkpoint.
                Err(e) => {
                    warn!(error = %e, bytes = bytes.len(), "the checkpoint could not be stored")
                }
            }
        }
    }
}

/// Whether this unit of work's latency measurement may reject the trial:
/// only a search candidate's first, before any epoch is trained (a trial
/// resuming after a crash has passed it, as has one at a later rung); a
/// final model never.
pub fn latency_limit(trial: &ClaimedTrial) -> LatencyLimit {
    match trial.phase {
        TrialPhase::Final => LatencyLimit::Never,
        TrialPhase::Search if trial.epochs_done > 0 || !trial.earlier_latency_ms.is_empty() => {
            LatencyLimit::Decided {
                earlier_ms: trial.earlier_latency_ms.clone(),
            }
        }
        TrialPhase::Search => LatencyLimit::Decide,
    }
}

/// Runs the pipeline on the training thread and turns its outcome into the
/// completion to report (weights serialised here, off the async runtime).
fn train_blocking(
    plan: &TrialPlan,
    sets: &TrialSets,
    cancel: &AtomicBool,
    epochs: mpsc::UnboundedSender<EpochDone>,
) -> Finished {
    let outcome = pipeline::run(plan, sets.train_data(), cancel, |e, checkpoint| {
        failpoint::hit("training");
        // The receiver is gone only once the attempt is over.
        let _ = epochs.send((e.clone(), checkpoint));
    })
    .map_err(AttemptFailure::permanent)?;
    Ok(match outcome {
        TrialOutcome::Trained {
            mut network,
            mut result,
        } => {
            if let TrialSets::Final(data) = sets {
                network.set_class_names(Some(data.class_names.clone()));
                result.class_names = network.class_names().map(<[String]>::to_vec);
            }
            let weights = match crate::weights::to_bytes(&network) {
                Ok(bytes) => Some(bytes),
                Err(e) => {
                    warn!(error = %e, "the weights could not be serialised; the result is kept without them");
                    None
                }
            };
            Completion::Succeeded { result, weights }
        }
        TrialOutcome::Rejected { result } => Completion::Rejected { result },
        TrialOutcome::Diverged { message, .. } => {
            return Err(AttemptFailure::permanent(format!("diverged: {message}")))
        }
        TrialOutcome::Cancelled => Completion::Cancelled,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claimed(phase: TrialPhase, epochs_done: u32, earlier: &[f64]) -> ClaimedTrial {
        ClaimedTrial {
            id: 1,
            search_id: 1,
            index: 0,
            attempt: 1,
            architecture: String::new(),
            spec: Arc::new(
                serde_json::from_str(
                    r#"{"name": "s", "dataset": "mnist", "strategy": {"kind": "random"},
                        "budget": {"max_trials": 10, "parallelism": 1}}"#,
                )
                .expect("spec"),
            ),
            phase,
            target_epochs: 3,
            epochs_done,
            final_training: None,
            earlier_latency_ms: earlier.to_vec(),
        }
    }

    #[test]
    fn only_an_untrained_search_trial_may_be_rejected_for_latency() {
        assert_eq!(
            latency_limit(&claimed(TrialPhase::Search, 0, &[])),
            LatencyLimit::Decide
        );
        assert_eq!(
            latency_limit(&claimed(TrialPhase::Search, 1, &[0.4])),
            LatencyLimit::Decided {
                earlier_ms: vec![0.4]
            },
            "promoted to its next rung"
        );
        assert_eq!(
            latency_limit(&claimed(TrialPhase::Search, 2, &[])),
            LatencyLimit::Decided { earlier_ms: vec![] },
            "retried after a crash mid-rung: it trained, so it passed"
        );
        assert_eq!(
            latency_limit(&claimed(TrialPhase::Final, 0, &[])),
            LatencyLimit::Never
        );
    }
}
