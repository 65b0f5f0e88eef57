//! A search's fronts: every ranked search trial on its validation figures
//! with its non-dominated rank (the validated front is rank 0), the final
//! models on their test accuracy (the tested front), and the hypervolume of
//! each, with the validated one over the compute spent.
//!
//! Dominance is judged on the search's Pareto metrics, or for a reward
//! search on accuracy and latency. The hypervolume's box runs from the
//! ideal point to the objective's reference point
//! ([`search::objective::ReferencePoint`]); a reward search with no latency
//! target or limit has none, and so no hypervolume.

use search::objective::{Metric, ObjectiveKind};
use search::pareto::{self, Bounds, Costs};
use search::{Objective, Point, SearchSpec};
use sqlx::{FromRow, Row};

use super::ParetoPoint;
use crate::sql_states::{PHASE_FINAL, PHASE_SEARCH, SUCCEEDED};
use crate::{Store, StoreError};

/// Most steps of the hypervolume-over-compute series.
const MAX_STEPS: usize = 200;

/// A final model on the tested plane.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, FromRow)]
pub struct TestedPoint {
    /// The final model's trial id.
    pub trial_id: i64,
    /// The search trial whose architecture it is (its index).
    pub source_index: Option<i64>,
    /// Test accuracy, measured once.
    pub test_accuracy: f64,
    /// Batch-1 latency p50 measured again after final training, milliseconds.
    pub latency_ms: f64,
    /// Trainable parameters.
    pub params: Option<i64>,
    /// Multiply-accumulates per image.
    pub macs: Option<i64>,
    /// The zoo entry, when this is one of the search's baselines trained
    /// with the same final recipe (a reference point, never on the front).
    pub baseline: Option<String>,
    /// Whether no other final model (baselines aside) dominates it on the
    /// search's metrics.
    #[sqlx(skip)]
    pub on_front: bool,
}

/// The hypervolume of a search's fronts.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Hypervolume {
    /// The metrics, in the order of `reference`.
    pub metrics: Vec<Metric>,
    /// The reference point, one value per metric (accuracy as a fraction,
    /// latency in ms, parameters, MACs).
    pub reference: Vec<f64>,
    /// The share (0 to 1) of the box from the ideal point (100% accuracy,
    /// 0 ms, 0 parameters) to the reference point that the search trials'
    /// validation figures dominate.
    pub validated: f64,
    /// The same for the final models' test figures (zoo baselines aside);
    /// absent without tested final models.
    pub tested: Option<f64>,
    /// The validated hypervolume as the search spent compute: one step per
    /// rung result (at most 200, evenly spaced), epochs trained so far.
    /// Left out where only the figures are asked for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub over_compute: Vec<HypervolumeStep>,
}

/// The validated hypervolume after some compute.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct HypervolumeStep {
    /// Epochs trained by the search's trials so far (baselines excluded).
    pub epochs: i64,
    /// The hypervolume of the results recorded by then.
    pub hypervolume: f64,
}

/// A search's fronts and their hypervolumes.
#[derive(Debug, Clone, PartialEq)]
pub struct Fronts {
    /// Ranked search trials (baselines included), fastest first, each with
    /// its non-dominated rank among them.
    pub points: Vec<ParetoPoint>,
    /// Tested final models (and the zoo baselines trained beside them),
    /// fastest first.
    pub tested: Vec<TestedPoint>,
    /// The hypervolumes, when the objective has a reference point.
    pub hypervolume: Option<Hypervolume>,
}

/// The objective dominance is judged on: the search's own when it is a
/// Pareto objective, else accuracy and latency under its latency settings.
pub fn dominance_objective(spec: &SearchSpec) -> Objective {
    if spec.objective.is_pareto() {
        return spec.objective.clone();
    }
    Objective {
        kind: ObjectiveKind::Pareto,
        metrics: vec![Metric::Accuracy, Metric::Latency],
        reference: None,
        latency: spec.objective.latency.clone(),
    }
}

fn point(accuracy: f64, latency_ms: f64, params: Option<i64>, macs: Option<i64>) -> Point {
    Point {
        accuracy,
        latency_ms,
        params: params.unwrap_or(0).max(0) as u64,
        macs: macs.unwrap_or(0).max(0) as u64,
    }
}

/// Each point's costs under `objective` (a Pareto objective).
fn costs_of(objective: &Objective, points: impl Iterator<Item = Point>) -> Vec<Costs> {
    points
        .map(|p| objective.costs(&p).unwrap_or(Costs::new(&[f64::NAN])))
        .collect()
}

/// The hypervolume of `costs` under `bounds`, or 0 without points.
fn volume(costs: &[Costs], bounds: &Bounds) -> f64 {
    pareto::hypervolume(costs, bounds)
}

impl Store {
    /// A search's fronts: see the module documentation.
    pub async fn fronts(&self, search_id: i64) -> Result<Fronts, StoreError> {
        self.fronts_with(search_id, true).await
    }

    /// The hypervolumes of a search's validated and tested fronts, without
    /// the series over compute (what `GET /searches/{id}` shows); `None`
    /// when its objective has no reference point.
    pub async fn hypervolume(&self, search_id: i64) -> Result<Option<Hypervolume>, StoreError> {
        Ok(self.fronts_with(search_id, false).await?.hypervolume)
    }

    async fn fronts_with(&self, search_id: i64, over_compute: bool) -> Result<Fronts, StoreError> {
        let spec = self.search(search_id).await?.spec;
        let objective = dominance_objective(&spec);
        let mut points = self.plane(search_id).await?;
        let costs = costs_of(
            &objective,
            points
                .iter()
                .map(|p| point(p.accuracy, p.latency_ms, p.params, p.macs)),
        );
        for (rank, front) in pareto::fronts(&costs).iter().enumerate() {
            for &i in front {
                points[i].front = rank as i64;
                points[i].on_front = rank == 0 && costs[i].is_finite();
            }
        }
        let mut tested = self.tested(search_id).await?;
        // The front and its hypervolume are the search's models; the
        // baselines are drawn beside them for comparison.
        let models: Vec<usize> = (0..tested.len())
            .filter(|&i| tested[i].baseline.is_none())
            .collect();
        let tested_costs = costs_of(
            &objective,
            models.iter().map(|&i| {
                let t = &tested[i];
                point(t.test_accuracy, t.latency_ms, t.params, t.macs)
            }),
        );
        if let Some(front) = pareto::fronts(&tested_costs).first() {
            for &i in front {
                tested[models[i]].on_front = tested_costs[i].is_finite();
            }
        }
        let hypervolume = match objective.bounds() {
            Some(bounds) => {
                let searched: Vec<Costs> = points
                    .iter()
                    .zip(&costs)
                    .filter(|(p, _)| p.index >= 0)
                    .map(|(_, c)| *c)
                    .collect();
                Some(Hypervolume {
                    metrics: objective.metrics.clone(),
                    reference: objective
                        .metrics
                        .iter()
                        .map(|&m| objective.reference_of(m).unwrap_or(f64::NAN))
                        .collect(),
                    validated: volume(&searched, &bounds),
                    tested: (!models.is_empty()).then(|| volume(&tested_costs, &bounds)),
                    over_compute: if over_compute {
                        self.over_compute(search_id, &objective, &bounds).await?
                    } else {
                        Vec::new()
                    },
                })
            }
            None => None,
        };
        Ok(Fronts {
            points,
            tested,
            hypervolume,
        })
    }

    /// A search's ranked trials (every one with a rung result) fastest
    /// first, each with its non-dominated rank: [`Store::fronts`]' points.
    pub async fn pareto(&self, search_id: i64) -> Result<Vec<ParetoPoint>, StoreError> {
        Ok(self.fronts(search_id).await?.points)
    }

    /// Every ranked search trial with figures, fastest first.
    async fn plane(&self, search_id: i64) -> Result<Vec<ParetoPoint>, StoreError> {
        // Succeeded trials always have a reward; COALESCE keeps the row type plain.
        let sql = format!(
            "SELECT id AS trial_id, idx AS \"index\", accuracy, latency_ms, COALESCE(reward, 0.0) AS reward, \
             params, macs, baseline, COALESCE(rung, 0) AS rung, state FROM trials \
             WHERE search_id = $1 AND rung IS NOT NULL AND phase = {PHASE_SEARCH} AND accuracy IS NOT NULL AND latency_ms IS NOT NULL \
             ORDER BY latency_ms, -accuracy, id"
        );
        let rows = sqlx::query(&sql)
            .bind(search_id)
            .fetch_all(self.pool())
            .await?;
        Ok(rows
            .iter()
            .map(ParetoPoint::from_row)
            .collect::<Result<Vec<_>, _>>()?)
    }

    /// The tested final models, fastest first.
    async fn tested(&self, search_id: i64) -> Result<Vec<TestedPoint>, StoreError> {
        let sql = format!(
            "SELECT id AS trial_id, source_idx AS source_index, test_accuracy, latency_ms, params, macs, baseline FROM trials \
             WHERE search_id = $1 AND phase = {PHASE_FINAL} AND state = {SUCCEEDED} \
             AND test_accuracy IS NOT NULL AND latency_ms IS NOT NULL ORDER BY latency_ms, id"
        );
        let rows = sqlx::query(&sql)
            .bind(search_id)
            .fetch_all(self.pool())
            .await?;
        Ok(rows
            .iter()
            .map(TestedPoint::from_row)
            .collect::<Result<Vec<_>, _>>()?)
    }

    /// The validated hypervolume after each rung result, against the
    /// epochs trained so far (search trials only).
    async fn over_compute(
        &self,
        search_id: i64,
        objective: &Objective,
        bounds: &Bounds,
    ) -> Result<Vec<HypervolumeStep>, StoreError> {
        let rows = sqlx::query(
            "SELECT r.trial_id, r.epochs, r.accuracy, r.latency_ms, t.params, t.macs FROM trial_rungs r \
             JOIN trials t ON t.id = r.trial_id WHERE r.search_id = $1 AND t.idx >= 0 \
             ORDER BY r.recorded_at, r.trial_id, r.rung",
        )
        .bind(search_id)
        .fetch_all(self.pool())
        .await?;
        let every = rows.len().div_ceil(MAX_STEPS).max(1);
        let mut latest: std::collections::HashMap<i64, (i64, Costs)> =
            std::collections::HashMap::new();
        let mut epochs = 0;
        let mut steps = Vec::new();
        for (n, row) in rows.iter().enumerate() {
            let trial: i64 = row.try_get("trial_id")?;
            let at: i64 = row.try_get("epochs")?;
            let figures = point(
                row.try_get::<Option<f64>, _>("accuracy")?
                    .unwrap_or(f64::NAN),
                row.try_get::<Option<f64>, _>("latency_ms")?
                    .unwrap_or(f64::NAN),
                row.try_get("params")?,
                row.try_get("macs")?,
            );
            let costs = costs_of(objective, std::iter::once(figures))[0];
            let before = latest.insert(trial, (at, costs)).map_or(0, |(e, _)| e);
            epochs += (at - before).max(0);
            if (n + 1) % every == 0 || n + 1 == rows.len() {
                let current: Vec<Costs> = latest.values().map(|(_, c)| *c).collect();
                steps.push(HypervolumeStep {
                    epochs,
                    hypervolume: volume(&current, bounds),
                });
            }
        }
        Ok(steps)
    }
}
