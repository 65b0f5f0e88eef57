//! Objectives: how a trained candidate is scored (MnasNet's latency-aware
//! reward), the accuracy/latency Pareto front, and leaderboard ranking.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};
use thiserror::Error;

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
    /// Target batch-1 latency `T` in milliseconds.
    pub target_ms: f64,
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

/// What a search maximises.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Objective {
    /// The latency target; plain accuracy when absent.
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
    pub const ACCURACY: Objective = Objective { latency: None };

    /// Checks the numbers: a target between [`MIN_TARGET_MS`] and
    /// [`MAX_TARGET_MS`], exponents in `[MIN_EXPONENT, 0]` (they never reward
    /// slowness, and the reward stays finite for any measured latency), a
    /// hard limit in the same range as the target.
    pub fn check(&self) -> Result<(), ObjectiveError> {
        let Some(lat) = &self.latency else {
            return Ok(());
        };
        let in_range = |v: f64| v.is_finite() && (MIN_TARGET_MS..=MAX_TARGET_MS).contains(&v);
        if !in_range(lat.target_ms) {
            return Err(bad(
                "latency.target_ms",
                &format!("must be between {MIN_TARGET_MS} and {MAX_TARGET_MS}"),
            ));
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

    /// MnasNet's reward `ACC * (LAT / T)^w`, `w = alpha` if `LAT <= T` else
    /// `beta`; plain accuracy without a latency target. A non-positive or
    /// non-finite latency leaves accuracy unpenalised.
    pub fn reward(&self, accuracy: f64, latency_ms: f64) -> f64 {
        let Some(lat) = &self.latency else {
            return accuracy;
        };
        if !(latency_ms.is_finite() && latency_ms > 0.0) {
            return accuracy;
        }
        let (alpha, beta) = lat.exponents();
        let w = if latency_ms <= lat.target_ms {
            alpha
        } else {
            beta
        };
        accuracy * (latency_ms / lat.target_ms).powf(w)
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
            RankKey::Reward => Ordering::Equal,
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
            latency: Some(LatencyObjective {
                target_ms,
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

    fn p(accuracy: f64, latency_ms: f64, params: u64) -> Point {
        Point {
            accuracy,
            latency_ms,
            params,
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
