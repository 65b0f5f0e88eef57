//! The end of a rung: ASHA's promotion decision (by reward, or under a
//! Pareto objective multi-objective ASHA's, by non-dominated sorting and
//! crowding), made in the transaction that records the rung's result (the search row locked, so decisions of
//! one search are taken one at a time and each sees every rung result
//! before it). A trial's rung result is recorded once (`trial_rungs`' key),
//! so no trial is promoted twice.

use search::fidelity::goes_on;
use search::pareto::goes_on_by_dominance;
use search::{Point, SearchSpec};
use sqlx::{Any, Row, Transaction};

use crate::nullable;
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
    /// Its figures there (accuracy, latency; parameters and MACs), which
    /// a Pareto objective ranks by.
    pub point: Point,
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
    /// Its validation accuracy there (absent on results from before it was recorded).
    pub accuracy: Option<f64>,
    /// Its latency p50 there, milliseconds.
    pub latency_ms: Option<f64>,
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

/// Where a trial that ended a rung ranks there.
#[derive(Debug, Clone, Copy)]
struct RungRanking {
    /// Whether the rule promotes it.
    goes_on: bool,
    /// Its 0-based position.
    position: usize,
    /// How many results the rung has, its own included.
    of: usize,
    /// What it was ranked by, for people.
    by: &'static str,
    /// The reduction factor.
    eta: u32,
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
            "SELECT trial_id, rung, epochs, reward, accuracy, latency_ms, goes_on AS goes_on_n, recorded_at FROM trial_rungs \
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
                    accuracy: r.try_get("accuracy")?,
                    latency_ms: r.try_get("latency_ms")?,
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
        let spec = self.spec_from_text(ended.search_id, &search.try_get::<String, _>("spec")?)?;
        let rungs = spec.rungs();
        let target = crate::specs::rung_target(&spec, ended.target_epochs);
        // The rung this unit ended: the first that ends at or after it.
        let rung = rungs
            .iter()
            .position(|&r| r >= target)
            .unwrap_or(rungs.len() - 1);
        let last = rung + 1 == rungs.len();
        let mut decision = if last {
            Decision::Ends {
                state: TrialState::Succeeded,
                rung: Some(rung as i64),
                reason: None,
            }
        } else {
            let ranking = self.rank_at_rung(tx, &spec, ended, rung).await?;
            self.promotion(&spec, &search, ended, &ranking, &rungs, rung, now)?
        };
        let goes = matches!(decision, Decision::GoesOn { .. });
        let inserted = sqlx::query(&format!(
            "INSERT INTO trial_rungs (trial_id, search_id, rung, epochs, reward, goes_on, recorded_at, accuracy, latency_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, {}, {}) ON CONFLICT (trial_id, rung) DO NOTHING",
            nullable::sql("$8"),
            nullable::sql("$9")
        ))
        .bind(ended.trial)
        .bind(ended.search_id)
        .bind(rung as i64)
        .bind(i64::from(rungs[rung]))
        .bind(ended.reward)
        .bind(i64::from(goes))
        .bind(now)
        .bind(nullable::bind_value(Some(ended.point.accuracy)))
        .bind(nullable::bind_value(Some(ended.point.latency_ms)))
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

    /// Where `ended` ranks among the results recorded at `rung` (its own
    /// included): by reward, or under a Pareto objective by non-dominated
    /// sorting then crowding distance over the objective's metrics
    /// (results recorded without figures rank last).
    async fn rank_at_rung(
        &self,
        tx: &mut Transaction<'static, Any>,
        spec: &SearchSpec,
        ended: &RungEnded,
        rung: usize,
    ) -> Result<RungRanking, StoreError> {
        let eta = spec.scheduler.eta().unwrap_or(2);
        if !spec.objective.is_pareto() {
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
            return Ok(RungRanking {
                goes_on: goes_on(ended.reward, &rewards, eta),
                position: rewards.iter().filter(|&&r| r > ended.reward).count(),
                of: rewards.len(),
                by: "reward",
                eta,
            });
        }
        let rows = sqlx::query(
            "SELECT r.accuracy, r.latency_ms, t.params, t.macs FROM trial_rungs r JOIN trials t ON t.id = r.trial_id \
             WHERE r.search_id = $1 AND r.rung = $2",
        )
        .bind(ended.search_id)
        .bind(rung as i64)
        .fetch_all(&mut **tx)
        .await?;
        let mut points = Vec::with_capacity(rows.len() + 1);
        for row in &rows {
            let point = crate::rows::point_of(row)?;
            points.extend(spec.objective.costs(&point));
        }
        points.extend(spec.objective.costs(&ended.point));
        let own = points.len() - 1;
        let (goes, position) = goes_on_by_dominance(&points, own, eta);
        Ok(RungRanking {
            goes_on: goes,
            position,
            of: points.len(),
            by: "non-dominated sorting",
            eta,
        })
    }

    /// ASHA's decision for a trial that ended rung `rung` (not the last),
    /// ranked there as `ranking` says.
    #[allow(clippy::too_many_arguments)]
    fn promotion(
        &self,
        spec: &SearchSpec,
        search: &sqlx::any::AnyRow,
        ended: &RungEnded,
        ranking: &RungRanking,
        rungs: &[u32],
        rung: usize,
        now: i64,
    ) -> Result<Decision, StoreError> {
        let n = ranking.of;
        let rank = 1 + ranking.position;
        let cut = n.div_ceil(ranking.eta as usize);
        let (epochs, next) = (rungs[rung], rungs[rung + 1]);
        let stop = |why: String| Decision::Ends {
            state: TrialState::Stopped,
            rung: Some(rung as i64),
            reason: Some(format!(
                "stopped early after rung {} ({epochs} epochs): {why}",
                rung + 1
            )),
        };
        if !ranking.goes_on {
            return Ok(stop(format!(
                "ranked {} of {n} at this rung by {}; the top {cut} go on",
                ordinal(rank),
                ranking.by
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
