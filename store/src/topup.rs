//! Topping a search up with new trials from its strategy, and finishing it.

use crate::sql_states::{PENDING, RUNNING, SEARCH_FAILED};
use search::strategy::{HistoryEntry, Outcome};
use search::Architecture;
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use crate::{Event, SearchStatus, Store, StoreError, TrialState};
use search::{Objective, SearchSpec};

/// Each search's history as this process last read it (architectures parsed
/// and hashed once), for the next top-up. Bounded: a few searches at a time.
#[derive(Debug)]
pub(crate) struct HistoryCache(crate::cache::BoundedCache<i64, History>);

impl Default for HistoryCache {
    fn default() -> Self {
        Self(crate::cache::BoundedCache::new(
            "search histories",
            MAX_CACHED_HISTORIES,
        ))
    }
}

/// A search's strategy trials as last read, and every canonical hash tried.
#[derive(Debug, Default)]
pub(crate) struct History {
    /// Trials in index order (index `i` is trial `idx = i`).
    entries: Vec<HistoryEntry>,
    /// Hashes of `entries` and of every proposal made since.
    seen: std::collections::HashSet<String>,
    /// The first entry whose trial had not ended when last read (its
    /// outcome may still change: it may be pending, or training towards a
    /// higher rung); every entry before it is final.
    open_from: usize,
}

/// Whether a trial's state column says it has ended.
fn has_ended(row: &sqlx::any::AnyRow) -> Result<bool, StoreError> {
    let state: String = row.try_get("state")?;
    Ok(TrialState::parse(&state).is_some_and(TrialState::is_final))
}

/// What a writing transaction leaves to do once it has committed: events to
/// publish and search histories to keep for the next top-up. Nothing of it
/// may happen before the commit: a rolled-back transaction must leave no
/// trace in this process (no event for a change that never was, no cached
/// proposal or outcome the database does not hold).
#[derive(Debug, Default)]
#[must_use = "a transaction's effects are applied after it commits"]
pub(crate) struct AfterCommit {
    events: Vec<Event>,
    histories: Vec<(i64, History)>,
}

impl AfterCommit {
    /// Effects of these events only.
    pub(crate) fn events(events: impl IntoIterator<Item = Event>) -> Self {
        Self {
            events: events.into_iter().collect(),
            histories: Vec::new(),
        }
    }

    /// Adds one event.
    pub(crate) fn push(&mut self, event: Event) {
        self.events.push(event);
    }

    /// Adds another transaction step's effects after these.
    pub(crate) fn extend(&mut self, other: AfterCommit) {
        self.events.extend(other.events);
        self.histories.extend(other.histories);
    }

    /// How many trials these effects announce as queued.
    pub(crate) fn trials_queued(&self) -> usize {
        self.events
            .iter()
            .map(|e| match e {
                Event::TrialsQueued { count, .. } => *count,
                _ => 0,
            })
            .sum()
    }
}

/// Most searches whose history a process keeps.
const MAX_CACHED_HISTORIES: usize = 16;

impl HistoryCache {
    /// Takes a search's cached history out (empty if none).
    fn take(&self, search_id: i64) -> Result<History, StoreError> {
        Ok(self.0.remove(&search_id)?.unwrap_or_default())
    }

    /// Keeps a search's history for its next top-up.
    fn put(&self, search_id: i64, history: History) -> Result<(), StoreError> {
        self.0.insert(search_id, history)
    }
}

/// A strategy trial's outcome from its `state` and `reward` columns (and
/// under a Pareto objective its costs, from its figures).
fn outcome_of(
    row: &sqlx::any::AnyRow,
    search_id: i64,
    objective: &Objective,
) -> Result<Outcome, StoreError> {
    let costs = if objective.is_pareto() {
        let point = crate::rows::point_of(row)?;
        objective.costs(&point)
    } else {
        None
    };
    let state: String = row.try_get("state")?;
    let state = TrialState::parse(&state)
        .ok_or_else(|| StoreError::Corrupt(format!("search {search_id}: trial state {state}")))?;
    Ok(match state {
        // A trial training towards a higher rung is known by its last rung's result.
        TrialState::Pending | TrialState::Running | TrialState::Succeeded | TrialState::Stopped => {
            match (
                row.try_get::<Option<i64>, _>("rung")?,
                row.try_get::<Option<f64>, _>("reward")?,
            ) {
                (Some(rung), Some(fitness)) => Outcome::Succeeded {
                    fitness,
                    rung: u32::try_from(rung.max(0)).unwrap_or(0),
                    costs,
                },
                _ if state == TrialState::Succeeded => Outcome::Succeeded {
                    fitness: row.try_get::<Option<f64>, _>("reward")?.unwrap_or(0.0),
                    rung: 0,
                    costs,
                },
                _ => Outcome::Pending,
            }
        }
        TrialState::Rejected => Outcome::Rejected,
        TrialState::Failed | TrialState::Cancelled => Outcome::Failed,
    })
}

/// The index of the first of `states` (entries `from..`) that has not ended.
fn first_open(states: &[sqlx::any::AnyRow], from: usize) -> Result<usize, StoreError> {
    for (i, row) in states.iter().enumerate() {
        if !has_ended(row)? {
            return Ok(from + i);
        }
    }
    Ok(from + states.len())
}

/// What asking the strategy for trials gave.
#[derive(Debug)]
enum Proposed {
    /// `added` trials queued; `exhausted` if fewer than asked for; the
    /// history the strategy saw, with the new proposals' hashes, to keep
    /// once the transaction commits.
    Queued {
        added: usize,
        exhausted: bool,
        history: Box<History>,
    },
    /// The search cannot go on (its space or strategy fails): why.
    Impossible(String),
}

/// Where a new trial's architecture came from.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Origin<'a> {
    /// Proposed by the search's strategy, possibly from a parent.
    Strategy {
        /// The parent's index (evolution).
        parent: Option<i64>,
        /// What changed from the parent.
        mutation: Option<&'a str>,
    },
    /// A reference-zoo baseline of the search.
    Baseline {
        /// The zoo entry.
        zoo_name: &'a str,
    },
}

/// A trial to queue.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NewTrial<'a> {
    /// Its search.
    pub search_id: i64,
    /// Position in the search (negative for baselines).
    pub index: i64,
    /// The network.
    pub architecture: &'a Architecture,
    /// Where it came from.
    pub origin: Origin<'a>,
}

impl Store {
    /// Applies a committed transaction's effects: keeps the histories it
    /// read for the next top-up, then publishes its events.
    pub(crate) fn committed(&self, after: AfterCommit) {
        for (search_id, history) in after.histories {
            if let Err(e) = self.histories.put(search_id, history) {
                // The next top-up reads the history anew.
                tracing::error!(search_id, error = %e, "could not keep the search's history");
            }
        }
        self.publish(after.events);
    }

    /// Within `tx`, with the search row locked: proposes trials until the
    /// search's parallelism or budget is reached, or finishes the search when
    /// the budget is spent and nothing is pending or running. Returns the
    /// events to publish after commit.
    pub(crate) async fn top_up(
        &self,
        tx: &mut Transaction<'static, Any>,
        search_id: i64,
        now: i64,
    ) -> Result<AfterCommit, StoreError> {
        let row = self.lock_search(tx, search_id).await?;
        if row.try_get::<String, _>("status")? != SearchStatus::Running.as_str() {
            return Ok(AfterCommit::default());
        }
        let spec = match self.spec_from_text(search_id, &row.try_get::<String, _>("spec")?) {
            Ok(spec) => spec,
            // Written by another release and no longer read: the search
            // cannot go on.
            Err(StoreError::Corrupt(reason)) => {
                return self.fail_search(tx, search_id, &reason, now).await
            }
            Err(e) => return Err(e),
        };
        let proposed: i64 = row.try_get("proposed")?;
        let created_at: i64 = row.try_get("created_at")?;
        // Once final training is queued the search proposes nothing more.
        let finalising = row.try_get::<Option<String>, _>("final_spec")?.is_some();
        let active = active_trials(tx, search_id).await?;
        let budget = &spec.budget;
        let in_time = budget
            .max_seconds
            .is_none_or(|s| ((now - created_at) as f64) < s * 1000.0);
        let compute_room = compute_room(&spec, row.try_get("epochs_committed")?);
        let want = if in_time && !finalising {
            (i64::from(budget.parallelism) - active)
                .min(i64::from(budget.max_trials) - proposed)
                .min(compute_room)
                .max(0) as usize
        } else {
            0
        };
        let mut after = AfterCommit::default();
        let (added, exhausted) = match want {
            0 => (0, false),
            _ => match self
                .propose_trials(tx, search_id, &spec, proposed, want, now)
                .await?
            {
                Proposed::Queued {
                    added,
                    exhausted,
                    history,
                } => {
                    after.histories.push((search_id, *history));
                    (added, exhausted)
                }
                Proposed::Impossible(reason) => {
                    return self.fail_search(tx, search_id, &reason, now).await;
                }
            },
        };
        if added > 0 {
            after.push(Event::TrialsQueued {
                search_id,
                count: added,
            });
        }
        let spent = proposed + added as i64 >= i64::from(budget.max_trials)
            || !in_time
            || exhausted
            || finalising
            || compute_room - (added as i64) <= 0;
        if active == 0 && added == 0 && spent {
            let finals = spec.final_training.as_ref().filter(|_| !finalising);
            after.push(self.wind_up(tx, search_id, finals, &spec, now).await?);
        }
        Ok(after)
    }

    /// Within `tx`: locks search `search_id`'s row and reads what a top-up
    /// needs of it.
    async fn lock_search(
        &self,
        tx: &mut Transaction<'static, Any>,
        search_id: i64,
    ) -> Result<AnyRow, StoreError> {
        let sql = format!(
            "SELECT status, spec, proposed, created_at, epochs_committed, final_spec FROM searches WHERE id = $1{}",
            self.for_update()
        );
        sqlx::query(&sql)
            .bind(search_id)
            .fetch_optional(&mut **tx)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("search {search_id}")))
    }

    /// Within `tx`: the search's budget is spent and nothing is pending or
    /// running. It queues its final models (`finals`, unless none qualify)
    /// or finishes. Returns the event to publish.
    async fn wind_up(
        &self,
        tx: &mut Transaction<'static, Any>,
        search_id: i64,
        finals: Option<&search::FinalTraining>,
        spec: &SearchSpec,
        now: i64,
    ) -> Result<Event, StoreError> {
        if let Some(final_training) = finals {
            let queued = self
                .queue_final(tx, search_id, final_training, spec, now)
                .await?;
            if queued > 0 {
                return Ok(Event::TrialsQueued {
                    search_id,
                    count: queued,
                });
            }
        }
        sqlx::query("UPDATE searches SET status = $1, finished_at = $2 WHERE id = $3")
            .bind(SearchStatus::Finished.as_str())
            .bind(now)
            .bind(search_id)
            .execute(&mut **tx)
            .await?;
        Ok(Event::SearchFinished {
            search_id,
            status: SearchStatus::Finished.as_str().into(),
        })
    }

    /// Asks the strategy for up to `want` trials after the `proposed` so
    /// far and queues them. Returns how many it queued, and whether the
    /// strategy ran out of new candidates.
    async fn propose_trials(
        &self,
        tx: &mut Transaction<'static, Any>,
        search_id: i64,
        spec: &SearchSpec,
        proposed: i64,
        want: usize,
        now: i64,
    ) -> Result<Proposed, StoreError> {
        let mut history = self.history(tx, search_id, &spec.objective).await?;
        let dataset = match self.recorded_dataset(tx, spec).await {
            Ok(dataset) => dataset,
            Err(e @ (StoreError::NotFound(_) | StoreError::Spec(_))) => {
                return Ok(Proposed::Impossible(e.to_string()))
            }
            Err(e) => return Err(e),
        };
        let space = match spec.space.resolve() {
            Ok(space) => space,
            Err(e) => return Ok(Proposed::Impossible(e.to_string())),
        };
        // A fresh, reproducible stream per top-up.
        let mut rng =
            search::seeded_rng(spec.seed ^ (proposed as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let screen = self
            .screen
            .as_ref()
            .map(|s| move |a: &search::Architecture| s.keep(a, &spec.objective));
        let proposals = match search::strategy::propose_unseen(
            &spec.strategy,
            &space,
            dataset.input,
            dataset.classes(),
            &history.entries,
            &mut history.seen,
            want,
            &mut rng,
            screen.as_ref().map(|f| f as search::strategy::Screen<'_>),
        ) {
            Ok(proposals) => proposals,
            Err(e) => {
                return Ok(Proposed::Impossible(format!(
                    "the strategy cannot propose: {e}"
                )))
            }
        };
        for (k, p) in proposals.iter().enumerate() {
            let origin = Origin::Strategy {
                parent: p.parent.map(|i| i as i64),
                mutation: p.change.as_deref(),
            };
            let trial = NewTrial {
                search_id,
                index: proposed + k as i64,
                architecture: &p.architecture,
                origin,
            };
            self.insert_trial(tx, &trial, spec, now).await?;
        }
        if !proposals.is_empty() {
            sqlx::query("UPDATE searches SET proposed = proposed + $1 WHERE id = $2")
                .bind(proposals.len() as i64)
                .bind(search_id)
                .execute(&mut **tx)
                .await?;
        }
        // Kept for the next top-up once the transaction commits (by
        // `Store::committed`); a rollback drops it.
        Ok(Proposed::Queued {
            added: proposals.len(),
            exhausted: proposals.len() < want,
            history: Box::new(history),
        })
    }

    /// Within `tx`, with the search row locked: the search cannot go on.
    /// It becomes `failed` with `reason`; its pending trials are cancelled,
    /// running ones finish and keep their results.
    async fn fail_search(
        &self,
        tx: &mut Transaction<'static, Any>,
        search_id: i64,
        reason: &str,
        now: i64,
    ) -> Result<AfterCommit, StoreError> {
        tracing::warn!(search_id, %reason, "the search failed");
        sqlx::query(&format!(
            "UPDATE searches SET status = {SEARCH_FAILED}, error = $1, finished_at = $2 WHERE id = $3"
        ))
        .bind(reason)
        .bind(now)
        .bind(search_id)
        .execute(&mut **tx)
        .await?;
        crate::queue::cancel_pending(tx, search_id, now).await?;
        Ok(AfterCommit::events([Event::SearchFinished {
            search_id,
            status: SearchStatus::Failed.as_str().into(),
        }]))
    }

    /// Inserts one pending trial with its costs (the leaderboard's params
    /// and MACs columns).
    pub(crate) async fn insert_trial(
        &self,
        tx: &mut Transaction<'static, Any>,
        trial: &NewTrial<'_>,
        spec: &SearchSpec,
        now: i64,
    ) -> Result<(), StoreError> {
        let architecture = trial.architecture;
        let json = serde_json::to_string(architecture)
            .map_err(|e| StoreError::Invalid(format!("architecture JSON: {e}")))?;
        // Trials are valid by construction. Should one not be, it is still
        // queued (its worker fails it, naming the layer) rather than failing
        // the completion that proposed it; its cost columns stay empty.
        let costs = match search::validate(architecture) {
            Ok(report) => Some(report),
            Err(e) => {
                tracing::warn!(search_id = trial.search_id, index = trial.index, error = %e, "proposed an invalid architecture");
                None
            }
        };
        let (parent, mutation, baseline) = match trial.origin {
            Origin::Strategy { parent, mutation } => (parent, mutation, None),
            Origin::Baseline { zoo_name } => (None, None, Some(zoo_name)),
        };
        let target_epochs = spec.first_rung_epochs();
        if baseline.is_none() {
            sqlx::query(
                "UPDATE searches SET epochs_committed = epochs_committed + $1 WHERE id = $2",
            )
            .bind(i64::from(target_epochs))
            .bind(trial.search_id)
            .execute(&mut **tx)
            .await?;
        }
        sqlx::query(
            &format!("INSERT INTO trials (search_id, idx, architecture, arch_hash, parent_idx, mutation, state, attempt, \
             max_attempts, labels, errors, run_at, created_at, params, macs, baseline, target_epochs) \
             VALUES ($1, $2, $3, $4, $5, $6, {PENDING}, 0, $7, $8, '[]', $9, $10, $11, $12, $13, $14)"),
        )
        .bind(trial.search_id)
        .bind(trial.index)
        .bind(json)
        .bind(architecture.canonical_hash())
        .bind(parent)
        .bind(mutation)
        .bind(i64::from(spec.max_attempts))
        .bind(spec.label_key())
        .bind(now)
        .bind(now)
        .bind(costs.as_ref().map(|c| c.params as i64))
        .bind(costs.as_ref().map(|c| c.macs as i64))
        .bind(baseline)
        .bind(i64::from(target_epochs))
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Within a trial-ending transaction: tops the search up (locking its
    /// row) only if it still has trials to propose. Completions of a fully
    /// proposed search so take no search lock and commit in parallel;
    /// [`Store::settle`] finishes such a search after the last one.
    pub(crate) async fn after_trial_ended(
        &self,
        tx: &mut Transaction<'static, Any>,
        search_id: i64,
        now: i64,
    ) -> Result<AfterCommit, StoreError> {
        let row = sqlx::query("SELECT status, proposed, max_trials, max_seconds, created_at FROM searches WHERE id = $1")
            .bind(search_id)
            .fetch_one(&mut **tx)
            .await?;
        let running = row.try_get::<String, _>("status")? == SearchStatus::Running.as_str();
        let more = row.try_get::<i64, _>("proposed")? < row.try_get::<i64, _>("max_trials")?;
        let created_at: i64 = row.try_get("created_at")?;
        let in_time = row
            .try_get::<Option<f64>, _>("max_seconds")?
            .is_none_or(|s| ((now - created_at) as f64) < s * 1000.0);
        if running && more && in_time {
            self.top_up(tx, search_id, now).await
        } else {
            Ok(AfterCommit::default())
        }
    }

    /// After a trial-ending commit: if nothing of the search is pending or
    /// running any more, tops up or finishes it under the search row lock.
    /// Whoever commits last sees every other trial ended, so a search never
    /// stays running with nothing to run.
    pub(crate) async fn settle(&self, search_id: i64) -> Result<(), StoreError> {
        let active = sqlx::query(
            &format!("SELECT id FROM trials WHERE search_id = $1 AND state IN ({PENDING}, {RUNNING}) LIMIT 1"),
        )
        .bind(search_id)
        .fetch_optional(self.pool())
        .await?;
        if active.is_some() {
            return Ok(());
        }
        let mut tx = self.write_tx().await?;
        let now = self.db_now_ms_in(&mut tx).await?;
        let after = self.top_up(&mut tx, search_id, now).await?;
        tx.commit().await?;
        self.committed(after);
        Ok(())
    }

    /// Every trial of a search in index order, as the strategy sees it.
    /// The search's strategy trials in index order with their outcomes.
    /// Kept per process between top-ups: each one reads only the trials
    /// from the oldest still pending or running on (their states may have
    /// changed) and the new trials' architectures (parsed and hashed once),
    /// so its cost follows the search's parallelism, not its history.
    async fn history(
        &self,
        tx: &mut Transaction<'static, Any>,
        search_id: i64,
        objective: &Objective,
    ) -> Result<History, StoreError> {
        let mut history = self.histories.take(search_id)?;
        let from = history.open_from.min(history.entries.len());
        let states = sqlx::query(
            "SELECT idx, state, reward, rung, accuracy, latency_ms, params, macs FROM trials WHERE search_id = $1 AND idx >= $2 AND phase = 'search' ORDER BY idx",
        )
        .bind(search_id)
        .bind(from as i64)
        .fetch_all(&mut **tx)
        .await?;
        let contiguous = states.iter().enumerate().all(|(i, row)| {
            row.try_get::<i64, _>("idx")
                .is_ok_and(|idx| idx == (from + i) as i64)
        });
        if !contiguous || from + states.len() < history.entries.len() {
            // Not what this process saw before: read everything again.
            return self.history_from_scratch(tx, search_id, objective).await;
        }
        self.append_new(tx, search_id, &mut history, from + states.len())
            .await?;
        for (entry, row) in history.entries[from..].iter_mut().zip(&states) {
            entry.outcome = outcome_of(row, search_id, objective)?;
        }
        history.open_from = first_open(&states, from)?;
        Ok(history)
    }

    /// The whole history, read anew.
    async fn history_from_scratch(
        &self,
        tx: &mut Transaction<'static, Any>,
        search_id: i64,
        objective: &Objective,
    ) -> Result<History, StoreError> {
        let mut history = History::default();
        let states = sqlx::query(
            "SELECT idx, state, reward, rung, accuracy, latency_ms, params, macs FROM trials WHERE search_id = $1 AND idx >= 0 AND phase = 'search' ORDER BY idx",
        )
        .bind(search_id)
        .fetch_all(&mut **tx)
        .await?;
        self.append_new(tx, search_id, &mut history, states.len())
            .await?;
        for (entry, row) in history.entries.iter_mut().zip(&states) {
            entry.outcome = outcome_of(row, search_id, objective)?;
        }
        history.open_from = first_open(&states, 0)?;
        Ok(history)
    }

    /// Reads the architectures of trials `history.entries.len()..until`.
    async fn append_new(
        &self,
        tx: &mut Transaction<'static, Any>,
        search_id: i64,
        history: &mut History,
        until: usize,
    ) -> Result<(), StoreError> {
        if until <= history.entries.len() {
            return Ok(());
        }
        let rows = sqlx::query(
            "SELECT idx, architecture, arch_hash FROM trials WHERE search_id = $1 AND idx >= $2 AND idx < $3 AND phase = 'search' ORDER BY idx",
        )
        .bind(search_id)
        .bind(history.entries.len() as i64)
        .bind(until as i64)
        .fetch_all(&mut **tx)
        .await?;
        for row in rows {
            let idx: i64 = row.try_get("idx")?;
            let architecture = Architecture::from_json(&row.try_get::<String, _>("architecture")?)
                .map_err(|e| {
                    StoreError::Corrupt(format!("trial {idx} of search {search_id}: {e}"))
                })?;
            let hash: String = row.try_get("arch_hash")?;
            history.seen.insert(hash.clone());
            history.entries.push(HistoryEntry::with_hash(
                architecture,
                hash,
                Outcome::Pending,
            ));
        }
        Ok(())
    }
}

/// How many more first-rung units the compute budget
/// (`budget.max_epochs_total`) allows after `committed` epochs (`i64::MAX`
/// without one).
fn compute_room(spec: &SearchSpec, committed: i64) -> i64 {
    let first_rung = i64::from(spec.first_rung_epochs().max(1));
    spec.budget
        .max_epochs_total
        .map_or(i64::MAX, |total| (total as i64 - committed) / first_rung)
}

/// Trials of search `search_id` pending or running, within `tx`.
async fn active_trials(
    tx: &mut Transaction<'static, Any>,
    search_id: i64,
) -> Result<i64, StoreError> {
    Ok(sqlx::query(&format!(
        "SELECT COUNT(*) AS n FROM trials WHERE search_id = $1 AND state IN ({PENDING}, {RUNNING})"
    ))
    .bind(search_id)
    .fetch_one(&mut **tx)
    .await?
    .try_get("n")?)
}

#[cfg(test)]
mod tests {
    use sqlx::Row;

    use crate::{testing, QueueConfig, Store};

    /// Ends the search's pending trial and tops it up in one transaction;
    /// returns the transaction, its effects and the architecture proposed.
    async fn top_up_once(
        store: &Store,
        search_id: i64,
    ) -> (
        sqlx::Transaction<'static, sqlx::Any>,
        super::AfterCommit,
        String,
    ) {
        let mut tx = store.write_tx().await.expect("tx");
        sqlx::query("UPDATE trials SET state = 'cancelled' WHERE search_id = $1 AND idx = 0")
            .bind(search_id)
            .execute(&mut *tx)
            .await
            .expect("end trial 0");
        let now = store.db_now_ms_in(&mut tx).await.expect("now");
        let after = store.top_up(&mut tx, search_id, now).await.expect("top up");
        let proposed: String =
            sqlx::query("SELECT architecture FROM trials WHERE search_id = $1 AND idx = 1")
                .bind(search_id)
                .fetch_one(&mut *tx)
                .await
                .expect("trial 1 proposed")
                .try_get("architecture")
                .expect("architecture");
        (tx, after, proposed)
    }

    /// A top-up that rolls back leaves nothing in this process's history
    /// cache: the next one proposes exactly what the rolled-back one did
    /// (the same seed and history), not something else as if that had been
    /// tried.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_rolled_back_top_up_leaves_no_trace_in_the_history_cache() {
        let store = Store::connect(&testing::fresh_sqlite_url(), QueueConfig::default())
            .await
            .expect("store");
        let spec: search::SearchSpec = serde_json::from_str(
            r#"{"name": "s", "dataset": "mnist", "strategy": {"kind": "random"},
                "budget": {"max_trials": 10, "parallelism": 1}}"#,
        )
        .expect("spec");
        let id = store.create_search(&spec).await.expect("create");
        let (tx, after, rolled_back) = top_up_once(&store, id).await;
        tx.rollback().await.expect("rollback");
        drop(after);
        let (tx, after, committed) = top_up_once(&store, id).await;
        tx.commit().await.expect("commit");
        store.committed(after);
        assert_eq!(committed, rolled_back);
    }
}
