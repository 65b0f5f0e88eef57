//! The store: searches, trials and the trial queue, on PostgreSQL (many
//! machines) or an SQLite file (the embedded default), with one API and the
//! same behaviour on both (one conformance suite runs against each).
//!
//! The queue's rules:
//! - `claim` turns the oldest due pending trial whose required labels the
//!   worker has into `running`, with `attempt + 1` and a lease. No
//!   transaction stays open while a trial trains.
//! - `heartbeat`, `complete`, `fail` and `release` are fenced by
//!   `(trial, attempt)`: a worker whose lease was lost is told so, and a
//!   trial gets exactly one final result.
//! - `rescue_expired` re-queues trials whose lease expired, with exponential
//!   backoff, up to `max_attempts`, then fails them with every error kept.
//! - Whenever a search is created or one of its trials ends, the same
//!   transaction (search row locked) tops the search up from its strategy
//!   until its parallelism or budget is reached, and finishes the search
//!   when the budget is spent and nothing is running.
#![deny(missing_docs)]

pub mod blobs;
mod cache;
pub mod datasets;
mod db;
pub mod depth;
pub mod finals;
pub mod model;
mod notify;
mod nullable;
pub mod overview;
mod queue;
pub mod ranking;
mod rows;
pub mod rungs;
mod searches;
mod specs;
mod sql_states;
pub mod testing;
mod topup;

use std::time::Duration;

use thiserror::Error;
use tokio::sync::broadcast;

pub use model::*;
pub use overview::{QueueStats, SearchPage, WorkerRow};
pub use ranking::fronts::{dominance_objective, Fronts, Hypervolume, HypervolumeStep, TestedPoint};
pub use ranking::{LeaderboardEntry, LeaderboardPage, ParetoPoint, RejectedPoint};
pub use rungs::RungResult;

/// Which database a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// PostgreSQL.
    Postgres,
    /// SQLite (a file, WAL mode).
    Sqlite,
}

/// Why a store call failed.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The database said no (connection, SQL, constraint).
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// Migrations could not be applied.
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The URL names no supported database.
    #[error(
        "unsupported database URL `{0}`: use postgres://... or sqlite://FILE (or a file path)"
    )]
    Url(String),
    /// The spec is invalid.
    #[error("invalid search spec: {0}")]
    Spec(#[from] search::SpecError),
    /// No such search or trial.
    #[error("{0} not found")]
    NotFound(String),
    /// The call conflicts with the current state (e.g. cancelling a finished search).
    #[error("{0}")]
    Conflict(String),
    /// The `(trial, attempt)` no longer holds the lease: another attempt owns
    /// the trial or it has ended. The caller must drop its work.
    #[error("trial {trial} attempt {attempt} no longer holds its lease")]
    LeaseLost {
        /// The trial.
        trial: i64,
        /// The stale attempt.
        attempt: i64,
    },
    /// A pagination cursor that this listing did not hand out.
    #[error("invalid cursor: {0}")]
    BadCursor(String),
    /// The caller passed something the store cannot keep (a bug in the caller).
    #[error("invalid input: {0}")]
    Invalid(String),
    /// An in-memory cache's lock was poisoned by a thread that panicked
    /// holding it (a bug); the cache is named.
    #[error("the {0} cache is unusable: a thread panicked while holding its lock")]
    Poisoned(&'static str),
    /// Stored data could not be read back (a bug or a hand-edited row).
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
}

/// Timing of the queue.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QueueConfig {
    /// How long a claim or heartbeat keeps a trial (default 60 s).
    pub lease: Duration,
    /// Delay before the first retry; doubles each attempt (default 2 s).
    pub backoff_base: Duration,
    /// Longest retry delay (default 5 min).
    pub backoff_max: Duration,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            lease: Duration::from_secs(60),
            backoff_base: Duration::from_secs(2),
            backoff_max: Duration::from_secs(300),
        }
    }
}

impl QueueConfig {
    /// Delay before attempt `attempt + 1` after attempt `attempt` failed.
    pub fn backoff(&self, attempt: i64) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1).clamp(0, 30) as u32);
        self.backoff_base
            .saturating_mul(factor)
            .min(self.backoff_max)
    }
}

/// A connected store.
#[derive(Debug, Clone)]
pub struct Store {
    pool: sqlx::AnyPool,
    backend: Backend,
    config: QueueConfig,
    events: broadcast::Sender<Event>,
    /// Tells this store's own notifications from other processes'.
    origin: u64,
    /// How big a network a search may train; submissions over it are refused.
    limits: search::limits::ResourceLimits,
    /// Search specs never change: each is decoded once per process (see
    /// `specs.rs`).
    specs: std::sync::Arc<specs::SpecCache>,
    /// Recent leaderboard totals (counting is the one O(trials) part of a page).
    totals: std::sync::Arc<ranking::cache::TotalsCache>,
    /// Leaderboard versions per search, and the pages served at each.
    changes: std::sync::Arc<ranking::cache::Changes>,
    pages: std::sync::Arc<ranking::cache::PageCache>,
    /// Search histories read by top-ups, per search.
    histories: std::sync::Arc<topup::HistoryCache>,
    /// Judges the candidates a top-up proposes (see [`CandidateScreen`]).
    screen: Option<std::sync::Arc<dyn CandidateScreen>>,
}

/// Judges a strategy's candidate before it is queued, for the top-ups this
/// store runs: a worker's latency predictor, which asks for another draw
/// when a candidate is predicted far from the search's latency target.
pub trait CandidateScreen: Send + Sync + std::fmt::Debug {
    /// Whether to queue `architecture` for a search with `objective`
    /// (`false`: draw another, up to `search::strategy::MAX_SCREENED_DRAWS`).
    fn keep(&self, architecture: &search::Architecture, objective: &search::Objective) -> bool;
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Store {
    /// Connects to `url` (`postgres://...`, `sqlite://FILE` or a plain file
    /// path for SQLite), creating an SQLite file if needed, and applies the
    /// migrations.
    pub async fn connect(url: &str, config: QueueConfig) -> Result<Self, StoreError> {
        let (pool, backend) = db::connect(url).await?;
        let (events, _) = broadcast::channel(1024);
        let origin: u64 = rand::random();
        let changes = std::sync::Arc::<ranking::cache::Changes>::default();
        if backend == Backend::Postgres {
            notify::listen(
                url.to_owned(),
                origin,
                events.clone(),
                changes.clone(),
                pool.clone(),
            );
        }
        Ok(Self {
            pool,
            backend,
            config,
            events,
            origin,
            limits: Default::default(),
            specs: specs::spec_cache(),
            totals: Default::default(),
            changes,
            pages: Default::default(),
            histories: Default::default(),
            screen: None,
        })
    }

    /// This store with `limits` on the networks searches may train
    /// (default [`ResourceLimits::default`](search::limits::ResourceLimits)).
    pub fn with_limits(mut self, limits: search::limits::ResourceLimits) -> Self {
        self.limits = limits;
        self
    }

    /// This store with `screen` judging the candidates its top-ups propose.
    pub fn with_screen(mut self, screen: std::sync::Arc<dyn CandidateScreen>) -> Self {
        self.screen = Some(screen);
        self
    }

    /// The limits submissions are checked against.
    pub fn limits(&self) -> search::limits::ResourceLimits {
        self.limits
    }

    /// The backend in use.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The queue timing.
    pub fn config(&self) -> QueueConfig {
        self.config
    }

    /// Live events: this process's store calls, and on PostgreSQL every
    /// other process's too (`LISTEN/NOTIFY`). Workers also poll, so a missed
    /// event costs at most a poll interval.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    fn publish(&self, events: impl IntoIterator<Item = Event>) {
        let events: Vec<Event> = events.into_iter().collect();
        if events.is_empty() {
            return;
        }
        for e in &events {
            if let Err(error) = self.changes.note(e) {
                tracing::error!(%error, "leaderboard pages may be served stale");
            }
            // No subscriber is fine.
            let _ = self.events.send(e.clone());
        }
        if self.backend == Backend::Postgres {
            self.notify(events);
        }
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Closes the pool.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}
