//! Objectives: how a trained candidate is scored (MnasNet's latency-aware
//! reward, or its place among others under a Pareto objective), the
//! accuracy/latency Pareto front, and leaderboard ranking.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::pareto::{Bounds, Costs, MAX_METRICS};

/// The latency penalty preset.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LatencyMode {
    /// `alpha = beta = -0.07`: a smooth trade-off around the target.
    #[default]
    Soft,
    /// `alpha = 0, beta = -1`: no reward for being faster than the target,
    /// a steep penalty for being slower.
    Hard,
}

/// The inference engine a search's latency is measured in.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Runtime {
    /// The engine the worker trains with (the default).
    #[default]
    Nas,
    /// ONNX Runtime (CPU execution provider) running the candidate's ONNX
    /// export: the latency of what users deploy. Only workers that loaded
    /// the onnxruntime library run such searches.
    Onnxruntime,
}

impl Runtime {
    /// Every runtime, in a fixed order.
    pub const ALL: [Runtime; 2] = [Runtime::Nas, Runtime::Onnxruntime];

    /// Its name in specs and results (`nas`, `onnxruntime`).
    pub fn as_str(self) -> &'static str {
        match self {
            Runtime::Nas => "nas",
            Runtime::Onnxruntime => "onnxruntime",
        }
    }

    /// The worker label a search measured in this runtime requires (none
    /// for the engine every worker has).
    pub fn required_label(self) -> Option<&'static str> {
        match self {
            Runtime::Nas => None,
            Runtime::Onnxruntime => Some("onnxruntime"),
        }
    }

    /// The runtime named `name`, if any.
    pub fn parse(name: &str) -> Option<Runtime> {
        Runtime::ALL.into_iter().find(|r| r.as_str() == name)
    }

    fn is_default(&self) -> bool {
        *self == Runtime::Nas
    }
}

impl std::fmt::Display for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A latency target for the reward.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LatencyObjective {
    /// Target batch-1 latency `T` in milliseconds: required by the reward
    /// objective; under a Pareto objective it only steers the latency
    /// predictor's screen, and may be left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_ms: Option<f64>,
    /// The preset giving `alpha` and `beta` (default soft).
    #[serde(default)]
    pub mode: LatencyMode,
    /// Overrides the preset's exponent for `LAT <= T`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alpha: Option<f64>,
    /// Overrides the preset's exponent for `LAT > T`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub beta: Option<f64>,
    /// Hard limit: a candidate measured slower than this is rejected before
    /// training.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_ms: Option<f64>,
    /// The device class the target means, as worker labels (e.g.
    /// `["avx512"]`): only workers with every one of them run, and so
    /// measure, the search's trials. Empty (the default): any worker.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub device: Vec<String>,
    /// The engine latency is measured in (default `nas`; `onnxruntime`:
    /// the candidate's ONNX export in ONNX Runtime, on workers that have it).
    #[serde(default, skip_serializing_if = "Runtime::is_default")]
    pub runtime: Runtime,
}

impl LatencyObjective {
    /// The exponents `(alpha, beta)` in force.
    pub fn exponents(&self) -> (f64, f64) {
        let (alpha, beta) = match self.mode {
            LatencyMode::Soft => (-0.07, -0.07),
            LatencyMode::Hard => (0.0, -1.0),
        };
        (self.alpha.unwrap_or(alpha), self.beta.unwrap_or(beta))
    }
}

/// Smallest latency target or limit accepted, milliseconds.
pub const MIN_TARGET_MS: f64 = 1e-3;
/// Largest latency target or limit accepted, milliseconds.
pub const MAX_TARGET_MS: f64 = 1e6;
/// Steepest latency exponent accepted (MnasNet's hard preset is -1).
pub const MIN_EXPONENT: f64 = -2.0;

/// How a search ranks its results.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectiveKind {
    /// One number: accuracy, or MnasNet's latency-aware reward (the default).
    #[default]
    Reward,
    /// Several metrics traded off: results are ranked by non-dominated
    /// sorting, then crowding distance, and the search returns a front.
    Pareto,
}

impl ObjectiveKind {
    fn is_default(&self) -> bool {
        *self == ObjectiveKind::Reward
    }
}

/// A figure a Pareto objective trades off.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Validation accuracy (test accuracy for final models), higher is better.
    Accuracy,
    /// Batch-1 latency p50 in milliseconds, lower is better.
    Latency,
    /// Trainable parameters, fewer is better.
    Params,
    /// Multiply-accumulates per image, fewer is better.
    Macs,
}

impl Metric {
    /// Its name in specs.
    pub fn as_str(self) -> &'static str {
        match self {
            Metric::Accuracy => "accuracy",
            Metric::Latency => "latency",
            Metric::Params => "params",
            Metric::Macs => "macs",
        }
    }

    /// The value to minimise for `point` (accuracy negated).
    pub fn cost(self, point: &Point) -> f64 {
        match self {
            Metric::Accuracy => -point.accuracy,
            Metric::Latency => point.latency_ms,
            Metric::Params => point.params as f64,
            Metric::Macs => point.macs as f64,
        }
    }

    /// The best value a cost can take: -1 (100% accuracy), 0 otherwise.
    fn ideal(self) -> f64 {
        match self {
            Metric::Accuracy => -1.0,
            _ => 0.0,
        }
    }
}

/// The reference point of a Pareto objective's hypervolume: for each
/// metric, the worst value that still counts. A point adds volume only
/// where it beats the reference in every metric. Left out, accuracy's is 0,
/// latency's is `latency.max_ms`, or else twice `latency.target_ms`;
/// `params` and `macs` must be stated when they are metrics.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReferencePoint {
    /// Accuracy in `[0, 1)` (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accuracy: Option<f64>,
    /// Latency in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
    /// Trainable parameters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<u64>,
    /// Multiply-accumulates per image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub macs: Option<u64>,
}

/// What a search maximises.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Objective {
    /// `reward` (default) or `pareto`.
    #[serde(default, skip_serializing_if = "ObjectiveKind::is_default")]
    pub kind: ObjectiveKind,
    /// The metrics a Pareto objective trades off: `accuracy` and one or two
    /// of `latency`, `params`, `macs`. Empty under the reward.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<Metric>,
    /// The hypervolume's reference point (Pareto objective only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<ReferencePoint>,
    /// The latency target (reward) or the latency settings (limit, device,
    /// runtime); plain accuracy when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<LatencyObjective>,
}

/// An invalid objective: the field (relative to the objective) and why.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{field} {message}")]
pub struct ObjectiveError {
    /// The field, e.g. `latency.target_ms`.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

fn bad(field: &str, message: &str) -> ObjectiveError {
    ObjectiveError {
        field: field.to_owned(),
        message: message.to_owned(),
    }
}

impl Objective {
    /// The runtime its latency is measured in.
    pub fn runtime(&self) -> Runtime {
        self.latency.as_ref().map_or(Runtime::Nas, |l| l.runtime)
    }

    /// Plain accuracy.
    pub const ACCURACY: Objective = Objective {
        kind: ObjectiveKind::Reward,
        metrics: Vec::new(),
        reference: None,
        latency: None,
    };

    /// Whether results are ranked by dominance (a Pareto objective).
    pub fn is_pareto(&self) -> bool {
        self.kind == ObjectiveKind::Pareto
    }

    /// The latency target, if any.
    pub fn target_ms(&self) -> Option<f64> {
        self.latency.as_ref().and_then(|l| l.target_ms)
    }

    /// A result's costs under a Pareto objective (one per metric, each
    /// minimised); `None` under the reward.
    pub fn costs(&self, point: &Point) -> Option<Costs> {
        if !self.is_pareto() {
            return None;
        }
        let values: Vec<f64> = self.metrics.iter().map(|m| m.cost(point)).collect();
        Some(Costs::new(&values))
    }

    /// The reference value of `metric` (stated, or derived as documented on
    /// [`ReferencePoint`]).
    pub fn reference_of(&self, metric: Metric) -> Option<f64> {
        let stated = self.reference.unwrap_or_default();
        match metric {
            Metric::Accuracy => Some(stated.accuracy.unwrap_or(0.0)),
            Metric::Latency => stated.latency_ms.or_else(|| {
                let latency = self.latency.as_ref()?;
                latency.max_ms.or(latency.target_ms.map(|t| 2.0 * t))
            }),
            Metric::Params => stated.params.map(|p| p as f64),
            Metric::Macs => stated.macs.map(|m| m as f64),
        }
    }

    /// The box a Pareto objective's hypervolume is measured in: from the
    /// ideal point (100% accuracy, 0 ms, 0 parameters, 0 MACs) to the
    /// reference point. `None` under the reward, or when a reference value
    /// is missing (refused by [`Objective::check`]).
    pub fn bounds(&self) -> Option<Bounds> {
        if !self.is_pareto() {
            return None;
        }
        let mut ideal = Vec::with_capacity(MAX_METRICS);
        let mut reference = Vec::with_capacity(MAX_METRICS);
        for &metric in &self.metrics {
            ideal.push(metric.ideal());
            let value = self.reference_of(metric)?;
            reference.push(match metric {
                Metric::Accuracy => -value,
                _ => value,
            });
        }
        Some(Bounds {
            ideal: Costs::new(&ideal),
            reference: Costs::new(&reference),
        })
    }

    /// Checks the numbers: a target between [`MIN_TARGET_MS`] and
    /// [`MAX_TARGET_MS`], exponents in `[MIN_EXPONENT, 0]` (they never reward
    /// slowness, and the reward stays finite for any measured latency), a
    /// hard limit in the same range as the target.
    pub fn check(&self) -> Result<(), ObjectiveError> {
        self.check_metrics()?;
        let Some(lat) = &self.latency else {
            return Ok(());
        };
        let in_range = |v: f64| v.is_finite() && (MIN_TARGET_MS..=MAX_TARGET_MS).contains(&v);
        match lat.target_ms {
            Some(target) if !in_range(target) => {
                return Err(bad(
                    "latency.target_ms",
                    &format!("must be between {MIN_TARGET_MS} and {MAX_TARGET_MS}"),
                ))
            }
            None if !self.is_pareto() => {
                return Err(bad(
                    "latency.target_ms",
                    "is required by the reward objective (the latency its reward is centred on)",
                ))
            }
            _ => {}
        }
        for (field, value) in [("latency.alpha", lat.alpha), ("latency.beta", lat.beta)] {
            if let Some(v) = value {
                if !(v.is_finite() && (MIN_EXPONENT..=0.0).contains(&v)) {
                    return Err(bad(
                        field,
                        &format!("must be a number between {MIN_EXPONENT} and 0"),
                    ));
                }
            }
        }
        if let Some(max) = lat.max_ms {
            if !in_range(max) {
                return Err(bad(
                    "latency.max_ms",
                    &format!("must be between {MIN_TARGET_MS} and {MAX_TARGET_MS}"),
                ));
            }
        }
        Ok(())
    }

    /// Checks a Pareto objective's metrics and reference point, and that a
    /// reward objective has neither.
    fn check_metrics(&self) -> Result<(), ObjectiveError> {
        if !self.is_pareto() {
            if !self.metrics.is_empty() {
                return Err(bad("metrics", "are for `\"kind\": \"pareto\"` only"));
            }
            if self.reference.is_some() {
                return Err(bad("reference", "is for `\"kind\": \"pareto\"` only"));
            }
            return Ok(());
        }
        if !(2..=MAX_METRICS).contains(&self.metrics.len()) {
            return Err(bad(
                "metrics",
                &format!(
                    "a Pareto objective trades off 2 to {MAX_METRICS} metrics (accuracy and latency, params or macs); got {}",
                    self.metrics.len()
                ),
            ));
        }
        for (i, metric) in self.metrics.iter().enumerate() {
            if self.metrics[..i].contains(metric) {
                return Err(bad(
                    &format!("metrics[{i}]"),
                    &format!("`{}` is named twice", metric.as_str()),
                ));
            }
        }
        if !self.metrics.contains(&Metric::Accuracy) {
            return Err(bad(
                "metrics",
                "must include `accuracy`: every trial is trained and scored on it",
            ));
        }
        let stated = self.reference.unwrap_or_default();
        if let Some(a) = stated.accuracy {
            if !(a.is_finite() && (0.0..1.0).contains(&a)) {
                return Err(bad(
                    "reference.accuracy",
                    "must be in [0, 1): no accuracy can beat a reference of 1",
                ));
            }
        }
        if let Some(l) = stated.latency_ms {
            if !(l.is_finite() && (MIN_TARGET_MS..=MAX_TARGET_MS).contains(&l)) {
                return Err(bad(
                    "reference.latency_ms",
                    &format!("must be between {MIN_TARGET_MS} and {MAX_TARGET_MS}: no network runs in 0 ms or less"),
                ));
            }
        }
        for (field, value) in [
            ("reference.params", stated.params),
            ("reference.macs", stated.macs),
        ] {
            if value == Some(0) {
                return Err(bad(
                    field,
                    "must be at least 1: no network has fewer than 0",
                ));
            }
        }
        for &metric in &self.metrics {
            if self.reference_of(metric).is_none() {
                let (field, how) = match metric {
                    Metric::Latency => (
                        "reference.latency_ms",
                        "is needed for the hypervolume: state it, or set latency.max_ms (the reference) or latency.target_ms (twice it)",
                    ),
                    Metric::Params => ("reference.params", "is needed for the hypervolume when `params` is a metric"),
                    _ => ("reference.macs", "is needed for the hypervolume when `macs` is a metric"),
                };
                return Err(bad(field, how));
            }
        }
        Ok(())
    }

    /// MnasNet's reward `ACC * (LAT / T)^w`, `w = alpha` if `LAT <= T` else
    /// `beta`; plain accuracy without a latency target. A non-positive or
    /// non-finite latency leaves accuracy unpenalised.
    pub fn reward(&self, accuracy: f64, latency_ms: f64) -> f64 {
        let Some(lat) = &self.latency else {
            return accuracy;
        };
        let Some(target_ms) = lat.target_ms else {
            return accuracy;
        };
        if !(latency_ms.is_finite() && latency_ms > 0.0) {
            return accuracy;
        }
        let (alpha, beta) = lat.exponents();
        let w = if latency_ms <= target_ms { alpha } else { beta };
        accuracy * (latency_ms / target_ms).powf(w)
    }

    /// Whether a measured latency is over the hard limit (reject untrained).
    pub fn rejects(&self, latency_ms: f64) -> bool {
        self.latency
            .as_ref()
            .and_then(|l| l.max_ms)
            .is_some_and(|max| latency_ms > max)
    }
}

/// A scored candidate on the accuracy/latency plane.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// Validation accuracy (higher is better).
    pub accuracy: f64,
    /// Latency in milliseconds (lower is better).
    pub latency_ms: f64,
    /// Trainable parameters (lower is better), used when asked.
    pub params: u64,
    /// Multiply-accumulates per image (lower is better), used when asked.
    pub macs: u64,
}

fn dominates(a: &Point, b: &Point, with_params: bool) -> bool {
    let no_worse = a.accuracy >= b.accuracy
        && a.latency_ms <= b.latency_ms
        && (!with_params || a.params <= b.params);
    let better = a.accuracy > b.accuracy
        || a.latency_ms < b.latency_ms
        || (with_params && a.params < b.params);
    no_worse && better
}

/// The indices of the non-dominated points (max accuracy, min latency, and
/// min params when `with_params`), ordered by latency then accuracy. Points
/// with a non-finite accuracy or latency are never on the front; identical
/// points are on it together.
pub fn pareto_front(points: &[Point], with_params: bool) -> Vec<usize> {
    let mut order: Vec<usize> = (0..points.len())
        .filter(|&i| points[i].accuracy.is_finite() && points[i].latency_ms.is_finite())
        .collect();
    order.sort_by(|&a, &b| {
        let (pa, pb) = (&points[a], &points[b]);
        pa.latency_ms
            .total_cmp(&pb.latency_ms)
            .then(pb.accuracy.total_cmp(&pa.accuracy))
            .then(pa.params.cmp(&pb.params))
    });
    if with_params {
        // Few thousand points at most on a leaderboard: the quadratic check is fine.
        return order
            .iter()
            .copied()
            .filter(|&i| {
                !order
                    .iter()
                    .any(|&j| dominates(&points[j], &points[i], true))
            })
            .collect();
    }
    // Sweep in latency order: a point survives if it has the best accuracy of
    // its latency and beats everything strictly faster.
    let mut front = Vec::new();
    let mut best_faster = f64::NEG_INFINITY;
    let mut start = 0;
    while start < order.len() {
        let latency = points[order[start]].latency_ms;
        let end = order[start..]
            .iter()
            .position(|&i| points[i].latency_ms != latency)
            .map_or(order.len(), |p| start + p);
        let group_best = points[order[start]].accuracy;
        if group_best > best_faster {
            front.extend(
                order[start..end]
                    .iter()
                    .copied()
                    .filter(|&i| points[i].accuracy == group_best),
            );
            best_faster = group_best;
        }
        start = end;
    }
    front
}

/// What a leaderboard can be sorted by.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RankKey {
    /// Reward, best first.
    #[default]
    Reward,
    /// Accuracy, best first.
    Accuracy,
    /// Latency, fastest first.
    Latency,
    /// Parameters, smallest first.
    Params,
    /// MACs, cheapest first.
    Macs,
    /// Non-dominated rank (on the search's Pareto metrics, or accuracy and
    /// latency), the front first; inside a front, the most accurate first.
    /// Ranked by the store; [`rank`] orders such rows by reward.
    Rank,
}

/// One row to rank: a trial's figures, any of which may be missing.
#[derive(Debug, Clone, PartialEq)]
pub struct RankRow {
    /// The trial's id (the final tie-break, ascending).
    pub id: i64,
    /// Reward, if scored.
    pub reward: Option<f64>,
    /// Accuracy, if trained.
    pub accuracy: Option<f64>,
    /// Latency, if measured.
    pub latency_ms: Option<f64>,
    /// Trainable parameters.
    pub params: u64,
    /// Multiply-accumulates.
    pub macs: u64,
}

/// Compares two optional figures: present before missing (or NaN), then by value.
fn cmp_present(a: Option<f64>, b: Option<f64>, higher_first: bool) -> Ordering {
    let a = a.filter(|v| v.is_finite());
    let b = b.filter(|v| v.is_finite());
    match (a, b) {
        (Some(x), Some(y)) if higher_first => y.total_cmp(&x),
        (Some(x), Some(y)) => x.total_cmp(&y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
}

/// Sorts leaderboard rows by `key` (missing figures last), then by reward,
/// then by id: a total, deterministic order.
pub fn rank(rows: &mut [RankRow], key: RankKey) {
    rows.sort_by(|a, b| {
        let primary = match key {
            RankKey::Reward | RankKey::Rank => Ordering::Equal,
            RankKey::Accuracy => cmp_present(a.accuracy, b.accuracy, true),
            RankKey::Latency => cmp_present(a.latency_ms, b.latency_ms, false),
            RankKey::Params => a.params.cmp(&b.params),
            RankKey::Macs => a.macs.cmp(&b.macs),
        };
        primary
            .then(cmp_present(a.reward, b.reward, true))
            .then(a.id.cmp(&b.id))
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn latency(target_ms: f64, mode: LatencyMode) -> Objective {
        Objective {
            kind: ObjectiveKind::Reward,
            metrics: Vec::new(),
            reference: None,
            latency: Some(LatencyObjective {
                target_ms: Some(target_ms),
                mode,
                alpha: None,
                beta: None,
                max_ms: None,
                device: Vec::new(),
                runtime: Runtime::Nas,
            }),
        }
    }

    #[test]
    fn mnasnet_reward() {
        let soft = latency(10.0, LatencyMode::Soft);
        assert_eq!(soft.reward(0.9, 10.0), 0.9);
        let faster = soft.reward(0.9, 5.0);
        assert!((faster - 0.9 * 0.5f64.powf(-0.07)).abs() < 1e-12);
        assert!(faster > 0.9);
        let slower = soft.reward(0.9, 20.0);
        assert!((slower - 0.9 * 2f64.powf(-0.07)).abs() < 1e-12);

        let hard = latency(10.0, LatencyMode::Hard);
        assert_eq!(hard.reward(0.9, 5.0), 0.9);
        assert!((hard.reward(0.9, 20.0) - 0.45).abs() < 1e-12);
        assert_eq!(Objective::ACCURACY.reward(0.7, 100.0), 0.7);
    }

    #[test]
    fn objective_checks_name_the_field() {
        let e = latency(0.0, LatencyMode::Soft)
            .check()
            .expect_err("zero target");
        assert_eq!(
            e.to_string(),
            "latency.target_ms must be between 0.001 and 1000000"
        );
        // Steep exponents made 0 * inf = NaN rewards: refused.
        let mut steep = latency(0.5, LatencyMode::Soft);
        if let Some(l) = &mut steep.latency {
            l.alpha = Some(-100.0);
        }
        assert_eq!(steep.check().expect_err("steep").field, "latency.alpha");
        // In range, every measurable latency gives a finite reward.
        let mut limit = latency(MIN_TARGET_MS, LatencyMode::Soft);
        if let Some(l) = &mut limit.latency {
            (l.alpha, l.beta) = (Some(MIN_EXPONENT), Some(MIN_EXPONENT));
        }
        limit.check().expect("valid");
        for lat in [1e-9, 1e-3, 1.0, 1e6, 1e12] {
            for acc in [0.0, 0.5, 1.0] {
                assert!(limit.reward(acc, lat).is_finite(), "{acc} at {lat} ms");
            }
        }
        let mut o = latency(5.0, LatencyMode::Soft);
        if let Some(l) = &mut o.latency {
            l.beta = Some(0.5);
        }
        assert_eq!(o.check().expect_err("positive beta").field, "latency.beta");
        let json = r#"{"latency":{"target_ms":3,"mode":"hard","max_ms":10}}"#;
        let o: Objective = serde_json::from_str(json).expect("parses");
        o.check().expect("valid");
        assert!(o.rejects(11.0) && !o.rejects(9.0));
    }

    fn pareto(json: &str) -> Result<Objective, String> {
        let o: Objective = serde_json::from_str(json).map_err(|e| e.to_string())?;
        o.check().map_err(|e| e.field)?;
        Ok(o)
    }

    #[test]
    fn pareto_objectives_are_checked_field_by_field() {
        let o =
            pareto(r#"{"kind":"pareto","metrics":["accuracy","latency"],"latency":{"max_ms":2}}"#)
                .expect("valid");
        let b = o.bounds().expect("bounds");
        assert_eq!(b.reference.as_slice(), &[-0.0, 2.0]);
        assert_eq!(b.ideal.as_slice(), &[-1.0, 0.0]);
        // The reward of a Pareto objective without a target is plain accuracy.
        assert_eq!(o.reward(0.9, 1.5), 0.9);
        let point = p(0.9, 1.5, 7);
        assert_eq!(o.costs(&point).expect("costs").as_slice(), &[-0.9, 1.5]);
        // A target alone gives twice it.
        let t = pareto(
            r#"{"kind":"pareto","metrics":["latency","accuracy"],"latency":{"target_ms":0.5}}"#,
        )
        .expect("valid");
        assert_eq!(t.bounds().expect("b").reference.as_slice(), &[1.0, -0.0]);
        let cases = [
            (
                r#"{"kind":"pareto","metrics":["accuracy","speed"]}"#,
                "unknown variant",
            ),
            (
                r#"{"kind":"pareto","metrics":["accuracy","accuracy"],"reference":{"latency_ms":1}}"#,
                "metrics[1]",
            ),
            (r#"{"kind":"pareto","metrics":["accuracy"]}"#, "metrics"),
            (
                r#"{"kind":"pareto","metrics":["latency","params"],"reference":{"latency_ms":1,"params":9}}"#,
                "metrics",
            ),
            (
                r#"{"kind":"pareto","metrics":["accuracy","latency","params","macs"]}"#,
                "metrics",
            ),
            (
                r#"{"kind":"pareto","metrics":["accuracy","latency"]}"#,
                "reference.latency_ms",
            ),
            (
                r#"{"kind":"pareto","metrics":["accuracy","params"]}"#,
                "reference.params",
            ),
            (
                r#"{"kind":"pareto","metrics":["accuracy","latency"],"reference":{"accuracy":1.0,"latency_ms":1}}"#,
                "reference.accuracy",
            ),
            (
                r#"{"kind":"pareto","metrics":["accuracy","latency"],"reference":{"latency_ms":0}}"#,
                "reference.latency_ms",
            ),
            (
                r#"{"kind":"pareto","metrics":["accuracy","macs"],"reference":{"macs":0}}"#,
                "reference.macs",
            ),
            (r#"{"metrics":["accuracy","latency"]}"#, "metrics"),
            (r#"{"latency":{"max_ms":3}}"#, "latency.target_ms"),
        ];
        for (json, field) in cases {
            let got = pareto(json).expect_err(json);
            assert!(got.contains(field), "{json}: {got}");
        }
    }

    fn p(accuracy: f64, latency_ms: f64, params: u64) -> Point {
        Point {
            accuracy,
            latency_ms,
            params,
            macs: params,
        }
    }

    #[test]
    fn pareto_front_2d() {
        let points = [
            p(0.90, 5.0, 10),
            p(0.85, 2.0, 10),
            p(0.80, 3.0, 10), // dominated by the 2 ms point
            p(0.95, 9.0, 10),
            p(0.95, 9.0, 10), // tie: both on the front
            p(0.90, 5.0, 99), // same accuracy and latency as [0]: on the 2-D front
            p(f64::NAN, 1.0, 1),
            p(0.94, 9.0, 1), // same latency, lower accuracy
        ];
        assert_eq!(pareto_front(&points, false), vec![1, 0, 5, 3, 4]);
        // With params, [5] is dominated by [0]; [7] becomes non-dominated.
        assert_eq!(pareto_front(&points, true), vec![1, 0, 3, 4, 7]);
    }

    #[test]
    fn pareto_front_matches_brute_force() {
        // Deterministic pseudo-random points with many ties.
        let mut x: u64 = 12345;
        let mut next = || {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 33) % 7
        };
        for _ in 0..50 {
            let points: Vec<Point> = (0..30)
                .map(|_| p(next() as f64 / 7.0, next() as f64, next()))
                .collect();
            for with_params in [false, true] {
                let mut expected: Vec<usize> = (0..points.len())
                    .filter(|&i| !points.iter().any(|q| dominates(q, &points[i], with_params)))
                    .collect();
                let mut got = pareto_front(&points, with_params);
                expected.sort_unstable();
                got.sort_unstable();
                assert_eq!(got, expected);
            }
        }
    }

    #[test]
    fn ranking_puts_missing_last_and_is_total() {
        let row = |id, reward: Option<f64>, latency_ms: Option<f64>, params| RankRow {
            id,
            reward,
            accuracy: reward,
            latency_ms,
            params,
            macs: params,
        };
        let mut rows = vec![
            row(1, None, Some(1.0), 5),
            row(2, Some(0.8), Some(3.0), 7),
            row(3, Some(0.9), None, 9),
            row(4, Some(0.8), Some(2.0), 7),
        ];
        rank(&mut rows, RankKey::Reward);
        assert_eq!(
            rows.iter().map(|r| r.id).collect::<Vec<_>>(),
            vec![3, 2, 4, 1]
        );
        rank(&mut rows, RankKey::Latency);
        assert_eq!(
            rows.iter().map(|r| r.id).collect::<Vec<_>>(),
            vec![1, 4, 2, 3]
        );
        rank(&mut rows, RankKey::Params);
        assert_eq!(
            rows.iter().map(|r| r.id).collect::<Vec<_>>(),
            vec![1, 2, 4, 3]
        );
    }
}
