//! The end of a rung: ASHA's promotion decision, made in the transaction
//! that records the rung's result (the search row locked, so decisions of
//! one search are taken one at a time and each sees every rung result
//! before it). A trial's rung result is recorded once (`trial_rungs`' key),
//! so no trial is promoted twice.

use search::fidelity::goes_on;
use search::SearchSpec;
use sqlx::{Any, Row, Transaction};

use crate::{SearchStatus, Store, StoreError, TrialState};

/// A search trial that has just trained to the end of its unit of work.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RungEnded {
    /// Its search.
    pub search_id: i64,
    /// The trial.
    pub trial: i64,
    /// The epoch it trained to (0: the spec's first rung, rows from before
    /// rungs).
    pub target_epochs: i64,
    /// Its reward at that epoch.
    pub reward: f64,
    /// Whether it is a zoo baseline (ranked with the others, but its
    /// compute is not part of the budget).
    pub baseline: bool,
}

/// One rung result of a search, as recorded when the trial ended the rung.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RungResult {
    /// The trial.
    pub trial_id: i64,
    /// The rung (0-based).
    pub rung: i64,
    /// Epochs the trial had trained at the end of the rung.
    pub epochs: i64,
    /// Its reward there.
    pub reward: f64,
    /// Whether it went on to the next rung.
    pub goes_on: bool,
    /// When it was recorded, Unix ms (the database's clock).
    pub recorded_at: i64,
}

/// What becomes of a trial at the end of a unit of work.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Decision {
    /// Promoted: pending again, to train until `next_epochs`.
    GoesOn {
        /// The rung it ended.
        rung: i64,
        /// The epoch the next rung ends at.
        next_epochs: u32,
    },
    /// Over: `state`, with the rung reached (if any) and why it stopped.
    Ends {
        /// Its final state.
        state: TrialState,
        /// The rung it ended.
        rung: Option<i64>,
        /// Why it was stopped early, for people.
        reason: Option<String>,
    },
}

impl Decision {
    /// The rung the trial ended.
    pub(crate) fn rung(&self) -> Option<i64> {
        match self {
            Self::GoesOn { rung, .. } => Some(*rung),
            Self::Ends { rung, .. } => *rung,
        }
    }

    /// Why it was stopped early, if it was.
    pub(crate) fn reason(&self) -> Option<&str> {
        match self {
            Self::Ends { reason, .. } => reason.as_deref(),
            Self::GoesOn { .. } => None,
        }
    }
}

fn ordinal(n: usize) -> String {
    let suffix = match (n % 10, n % 100) {
        (1, r) if r != 11 => "st",
        (2, r) if r != 12 => "nd",
        (3, r) if r != 13 => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

impl Store {
    /// Every rung result of a search in the order they were recorded: the
    /// search's progress over compute (each result's epochs minus the same
    /// trial's previous result's are the epochs that unit trained).
    pub async fn rung_results(&self, search_id: i64) -> Result<Vec<RungResult>, StoreError> {
        let rows = sqlx::query(
            "SELECT trial_id, rung, epochs, reward, goes_on AS goes_on_n, recorded_at FROM trial_rungs \
             WHERE search_id = $1 ORDER BY recorded_at, trial_id, rung",
        )
        .bind(search_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(RungResult {
                    trial_id: r.try_get("trial_id")?,
                    rung: r.try_get("rung")?,
                    epochs: r.try_get("epochs")?,
                    reward: r.try_get("reward")?,
                    goes_on: r.try_get::<i64, _>("goes_on_n")? == 1,
                    recorded_at: r.try_get("recorded_at")?,
                })
            })
            .collect()
    }

    /// Within `tx` (the trial's row locked and still running): records the
    /// rung result of `ended` and decides whether it goes on.
    pub(crate) async fn end_rung(
        &self,
        tx: &mut Transaction<'static, Any>,
        ended: &RungEnded,
        now: i64,
    ) -> Result<Decision, StoreError> {
        let sql = format!(
            "SELECT status, spec, created_at, epochs_committed FROM searches WHERE id = $1{}",
            self.for_update()
        );
        let search = sqlx::query(&sql)
            .bind(ended.search_id)
            .fetch_one(&mut **tx)
            .await?;
        let spec: SearchSpec = serde_json::from_str(&search.try_get::<String, _>("spec")?)
            .map_err(|e| StoreError::Corrupt(format!("search {} spec: {e}", ended.search_id)))?;
        let rungs = spec.rungs();
        let target = match u32::try_from(ended.target_epochs) {
            Ok(0) | Err(_) => spec.first_rung_epochs(),
            Ok(epochs) => epochs,
        };
        // The rung this unit ended: the first that ends at or after it.
        let rung = rungs
            .iter()
            .position(|&r| r >= target)
            .unwrap_or(rungs.len() - 1);
        let rewards: Vec<f64> = sqlx::query_scalar::<_, f64>(
            "SELECT reward FROM trial_rungs WHERE search_id = $1 AND rung = $2",
        )
        .bind(ended.search_id)
        .bind(rung as i64)
        .fetch_all(&mut **tx)
        .await?
        .into_iter()
        .chain([ended.reward])
        .collect();
        let last = rung + 1 == rungs.len();
        let mut decision = if last {
            Decision::Ends {
                state: TrialState::Succeeded,
                rung: Some(rung as i64),
                reason: None,
            }
        } else {
            self.promotion(&spec, &search, ended, &rewards, &rungs, rung, now)?
        };
        let goes = matches!(decision, Decision::GoesOn { .. });
        let inserted = sqlx::query(
            "INSERT INTO trial_rungs (trial_id, search_id, rung, epochs, reward, goes_on, recorded_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (trial_id, rung) DO NOTHING",
        )
        .bind(ended.trial)
        .bind(ended.search_id)
        .bind(rung as i64)
        .bind(i64::from(rungs[rung]))
        .bind(ended.reward)
        .bind(i64::from(goes))
        .bind(now)
        .execute(&mut **tx)
        .await?
        .rows_affected();
        if inserted == 0 && goes {
            // This rung was already decided for this trial: it goes no further.
            decision = Decision::Ends {
                state: TrialState::Stopped,
                rung: Some(rung as i64),
                reason: Some(format!("rung {} was already recorded", rung + 1)),
            };
        }
        if let Decision::GoesOn { next_epochs, .. } = decision {
            if !ended.baseline {
                sqlx::query(
                    "UPDATE searches SET epochs_committed = epochs_committed + $1 WHERE id = $2",
                )
                .bind(i64::from(next_epochs - rungs[rung]))
                .bind(ended.search_id)
                .execute(&mut **tx)
                .await?;
            }
        }
        Ok(decision)
    }

    /// ASHA's decision for a trial that ended rung `rung` (not the last)
    /// with `rewards` recorded there (its own last).
    #[allow(clippy::too_many_arguments)]
    fn promotion(
        &self,
        spec: &SearchSpec,
        search: &sqlx::any::AnyRow,
        ended: &RungEnded,
        rewards: &[f64],
        rungs: &[u32],
        rung: usize,
        now: i64,
    ) -> Result<Decision, StoreError> {
        let eta = spec.scheduler.eta().unwrap_or(2);
        let n = rewards.len();
        let rank = 1 + rewards.iter().filter(|&&r| r > ended.reward).count();
        let cut = n.div_ceil(eta as usize);
        let (epochs, next) = (rungs[rung], rungs[rung + 1]);
        let stop = |why: String| Decision::Ends {
            state: TrialState::Stopped,
            rung: Some(rung as i64),
            reason: Some(format!(
                "stopped early after rung {} ({epochs} epochs): {why}",
                rung + 1
            )),
        };
        if !goes_on(ended.reward, rewards, eta) {
            return Ok(stop(format!(
                "ranked {} of {n} at this rung; the top {cut} go on",
                ordinal(rank)
            )));
        }
        let running = search.try_get::<String, _>("status")? == SearchStatus::Running.as_str();
        let created_at: i64 = search.try_get("created_at")?;
        let in_time = spec
            .budget
            .max_seconds
            .is_none_or(|s| ((now - created_at) as f64) < s * 1000.0);
        if !running || !in_time {
            return Ok(stop("the search's time is up".into()));
        }
        let committed: i64 = search.try_get("epochs_committed")?;
        let more = i64::from(next - epochs);
        if let Some(total) = spec.budget.max_epochs_total {
            if !ended.baseline && committed + more > total as i64 {
                return Ok(stop(format!(
                    "ranked {} of {n}, but the compute budget ({total} epochs) has no {more} epochs left",
                    ordinal(rank)
                )));
            }
        }
        Ok(Decision::GoesOn {
            rung: rung as i64,
            next_epochs: next,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::ordinal;

    #[test]
    fn ordinals_read_as_english() {
        let words: Vec<String> = [1, 2, 3, 4, 11, 12, 13, 21, 22, 101].map(ordinal).to_vec();
        assert_eq!(
            words,
            ["1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "101st"]
        );
    }
}
