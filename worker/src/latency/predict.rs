//! A latency predictor per device: a cost per layer kind, fitted to the
//! networks this device has measured, that predicts a candidate's batch-1
//! p50 from its validation report alone, before anything is built.
//!
//! Every layer contributes features of its kind: for plain layers its
//! multiply-accumulates (millions), its output elements (thousands) and
//! one per layer; for composites (residual, inception, SE: their nested
//! layers are counted on their own) their output elements and one per
//! composite, for the adds, concatenations and scalings they do. A plain
//! layer's MACs are also counted by its width class (the smaller of its
//! input and output channels: under 8, 8-31, 32+), since narrow matrix
//! products run at a fraction of the speed of wide ones. The same
//! features summed over all kinds are added, so a kind this device has not
//! measured yet still gets a cost. The predicted p50 is a constant plus the
//! features weighted by non-negative per-device costs, fitted by ridge least
//! squares on relative error (every network counts alike, whatever its
//! size). Each measured network refines the fit.
//!
//! This is a plain per-layer cost table, the baseline nn-Meter improves on
//! with kernel fusion and per-kernel shapes; `nas space latency --fit N`
//! measures how far it gets on this machine.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use search::{validate, Architecture, Objective, Report, ValidationError};

/// Feature name -> value for one network.
pub type Features = BTreeMap<String, f64>;

/// Fewest measured networks before [`Predictor::predict`] answers.
pub const MIN_OBSERVATIONS: usize = 20;

/// Measured networks before a prediction may turn a candidate away (the
/// worker's refusal of unbuilt candidates, the strategies' redraws).
pub const TRUSTED_OBSERVATIONS: usize = 30;

/// How far from a search's latency target a candidate may be predicted, a
/// factor either way, before the strategy draws another.
pub const SCREEN_FACTOR: f64 = 3.0;

/// Most networks a predictor keeps (the oldest go first).
const MAX_OBSERVATIONS: usize = 2000;

/// Ridge penalty, relative to the mean diagonal of the normal equations.
const RIDGE: f64 = 1e-4;

/// The features of `architecture` (see the module docs).
pub fn features(architecture: &Architecture) -> Result<Features, ValidationError> {
    Ok(features_of(&validate(architecture)?))
}

/// The features of a network from its validation report.
pub fn features_of(report: &Report) -> Features {
    let mut f = Features::new();
    let mut add = |name: String, value: f64| *f.entry(name).or_insert(0.0) += value;
    add("bias".into(), 1.0);
    for (i, layer) in report.layers.iter().enumerate() {
        let composite = report
            .layers
            .get(i + 1)
            .is_some_and(|next| next.depth > layer.depth);
        let outputs = layer.output.elements() as f64 / 1e3;
        for group in [layer.kind, "all"] {
            add(format!("{group}.count"), 1.0);
            add(format!("{group}.outputs"), outputs);
            if !composite {
                add(format!("{group}.macs"), layer.macs as f64 / 1e6);
            }
        }
        if !composite && layer.macs > 0 {
            // Our kernels multiply matrices whose smaller side is a channel
            // count: narrow layers do a MAC at a fraction of the speed of
            // wide ones, so their MACs get costs of their own.
            add(
                format!("{}.macs.{}", layer.kind, width_class(layer)),
                layer.macs as f64 / 1e6,
            );
        }
    }
    f
}

/// How wide a layer's matrix product is: the smaller of its input and
/// output channel counts, in three classes.
fn width_class(layer: &search::validate::LayerReport) -> &'static str {
    let channels = |shape: search::Shape| match shape {
        search::Shape::Map { c, .. } => c,
        search::Shape::Flat(n) => n,
    };
    match channels(layer.input).min(channels(layer.output)) {
        0..=7 => "narrow",
        8..=31 => "mid",
        _ => "wide",
    }
}

/// The per-device predictor: its measured networks and the fitted costs.
#[derive(Debug, Clone, Default)]
pub struct Predictor {
    observations: Vec<(Features, f64)>,
    costs: Option<BTreeMap<String, f64>>,
}

impl Predictor {
    /// An empty predictor (it predicts nothing until fitted).
    pub fn new() -> Self {
        Self::default()
    }

    /// Networks measured so far.
    pub fn observations(&self) -> usize {
        self.observations.len()
    }

    /// Records that `architecture` measured `p50_ms` here; the costs are
    /// refitted at the next [`Predictor::fit`].
    pub fn observe(&mut self, architecture: &Architecture, p50_ms: f64) {
        if let Ok(report) = validate(architecture) {
            self.observe_validated(&report, p50_ms);
        }
    }

    /// [`Predictor::observe`] for a network already validated into `report`.
    pub fn observe_validated(&mut self, report: &Report, p50_ms: f64) {
        if !(p50_ms.is_finite() && p50_ms > 0.0) {
            return;
        }
        if self.observations.len() >= MAX_OBSERVATIONS {
            self.observations.remove(0);
        }
        self.observations.push((features_of(report), p50_ms));
        self.costs = None;
    }

    /// Fits the costs to the networks measured so far (if there are at
    /// least [`MIN_OBSERVATIONS`]).
    pub fn fit(&mut self) {
        if self.observations.len() >= MIN_OBSERVATIONS {
            self.costs = Some(fit_costs(&self.observations));
        }
    }

    /// The predicted p50 of `architecture` on this device, milliseconds;
    /// `None` before the predictor is fitted or for an invalid network.
    pub fn predict(&self, architecture: &Architecture) -> Option<f64> {
        self.costs.as_ref()?;
        self.predict_validated(&validate(architecture).ok()?)
    }

    /// [`Predictor::predict`] for a network already validated into `report`.
    pub fn predict_validated(&self, report: &Report) -> Option<f64> {
        let costs = self.costs.as_ref()?;
        let f = features_of(report);
        Some(
            f.iter()
                .map(|(name, value)| costs.get(name).copied().unwrap_or(0.0) * value)
                .sum(),
        )
    }
}

/// A device's predictor as the judge of a search's candidates: a candidate
/// predicted more than [`SCREEN_FACTOR`] times away from the latency target
/// is drawn again (see `search::strategy::MAX_SCREENED_DRAWS`); under a
/// Pareto objective, one predicted far over the hard limit. Searches
/// without a latency target (or, Pareto, without a limit), and predictors that have measured fewer than
/// [`TRUSTED_OBSERVATIONS`] networks, keep every candidate.
#[derive(Debug, Clone)]
pub struct PredictorScreen(pub Arc<Mutex<Predictor>>);

impl store::CandidateScreen for PredictorScreen {
    fn keep(&self, architecture: &Architecture, objective: &Objective) -> bool {
        // A Pareto objective wants the whole range of latencies: only
        // networks predicted far over its hard limit are drawn again.
        let (low, high) = if objective.is_pareto() {
            match objective.latency.as_ref().and_then(|l| l.max_ms) {
                Some(max) => (0.0, max * SCREEN_FACTOR),
                None => return true,
            }
        } else {
            match objective.target_ms() {
                Some(target) => (target / SCREEN_FACTOR, target * SCREEN_FACTOR),
                None => return true,
            }
        };
        let predictor = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if predictor.observations() < TRUSTED_OBSERVATIONS {
            return true;
        }
        predictor
            .predict(architecture)
            .is_none_or(|ms| ms <= high && ms >= low)
    }
}

/// Non-negative costs minimising the squared relative error (plus a small
/// ridge penalty): least squares on the active features, dropping the most
/// negative cost until none is negative.
fn fit_costs(observations: &[(Features, f64)]) -> BTreeMap<String, f64> {
    let mut names: Vec<&String> = observations.iter().flat_map(|(f, _)| f.keys()).collect();
    names.sort();
    names.dedup();
    let mut active: Vec<bool> = vec![true; names.len()];
    loop {
        let columns: Vec<usize> = (0..names.len()).filter(|&j| active[j]).collect();
        let p = columns.len();
        // Rows scaled by 1/y: the error is relative.
        let mut ata = vec![vec![0.0; p]; p];
        let mut atb = vec![0.0; p];
        for (f, y) in observations {
            let row: Vec<f64> = columns
                .iter()
                .map(|&j| f.get(names[j]).copied().unwrap_or(0.0) / y)
                .collect();
            for a in 0..p {
                atb[a] += row[a];
                for b in 0..p {
                    ata[a][b] += row[a] * row[b];
                }
            }
        }
        let mean_diagonal = (0..p).map(|a| ata[a][a]).sum::<f64>() / p.max(1) as f64;
        for (a, row) in ata.iter_mut().enumerate() {
            row[a] += RIDGE * mean_diagonal.max(1e-12);
        }
        let solution = solve(ata, atb);
        let most_negative = solution
            .iter()
            .enumerate()
            .filter(|(_, w)| **w < 0.0)
            .min_by(|a, b| a.1.total_cmp(b.1))
            .map(|(k, _)| columns[k]);
        match most_negative {
            Some(j) => active[j] = false,
            None => {
                return columns
                    .iter()
                    .zip(solution)
                    .map(|(&j, w)| (names[j].clone(), w))
                    .collect()
            }
        }
    }
}

/// Solves `a x = b` by Gaussian elimination with partial pivoting (`a` is
/// symmetric positive definite here, thanks to the ridge term).
fn solve(mut a: Vec<Vec<f64>>, mut b: Vec<f64>) -> Vec<f64> {
    let n = b.len();
    for col in 0..n {
        let pivot = (col..n)
            .max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))
            .unwrap_or(col);
        a.swap(col, pivot);
        b.swap(col, pivot);
        let d = a[col][col];
        if d.abs() < 1e-300 {
            continue;
        }
        for row in col + 1..n {
            let factor = a[row][col] / d;
            if factor != 0.0 {
                let (upper, lower) = a.split_at_mut(row);
                for (x, p) in lower[0][col..].iter_mut().zip(&upper[col][col..]) {
                    *x -= factor * p;
                }
                b[row] -= factor * b[col];
            }
        }
    }
    let mut x = vec![0.0; n];
    for row in (0..n).rev() {
        let tail: f64 = (row + 1..n).map(|k| a[row][k] * x[k]).sum();
        x[row] = if a[row][row].abs() < 1e-300 {
            0.0
        } else {
            (b[row] - tail) / a[row][row]
        };
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;
    use search::{sample, seeded_rng, InputShape, SearchSpace};

    fn samples(n: usize) -> Vec<Architecture> {
        let space = SearchSpace::preset("small").expect("preset");
        let mut rng = seeded_rng(3);
        (0..n)
            .map(|_| sample(&space, InputShape::new(1, 28, 28), 10, &mut rng).expect("sample"))
            .collect()
    }

    /// A made-up device: every kind costs its MACs at its own speed, plus a
    /// fixed overhead per layer.
    fn synthetic_ms(architecture: &Architecture) -> f64 {
        let f = features(architecture).expect("features");
        let speed = |kind: &str| match kind {
            "conv" => 0.02,
            "separable_conv" => 0.08,
            "dense" => 0.01,
            _ => 0.05,
        };
        0.01 + f
            .iter()
            .filter(|(k, _)| k.ends_with(".macs") && !k.starts_with("all."))
            .map(|(k, v)| speed(k.trim_end_matches(".macs")) * v)
            .sum::<f64>()
            + 0.002 * f.get("all.count").copied().unwrap_or(0.0)
    }

    #[test]
    fn it_learns_a_device_whose_costs_are_per_layer() {
        let archs = samples(120);
        let mut predictor = Predictor::new();
        for a in &archs[..80] {
            predictor.observe(a, synthetic_ms(a));
        }
        predictor.fit();
        for a in &archs[80..] {
            let predicted = predictor.predict(a).expect("fitted");
            let truth = synthetic_ms(a);
            assert!(
                (predicted / truth - 1.0).abs() < 0.05,
                "predicted {predicted} vs {truth}"
            );
        }
    }

    #[test]
    fn it_predicts_nothing_until_it_has_seen_enough() {
        let archs = samples(MIN_OBSERVATIONS);
        let mut predictor = Predictor::new();
        for a in &archs[..MIN_OBSERVATIONS - 1] {
            predictor.observe(a, 1.0);
        }
        predictor.fit();
        assert_eq!(predictor.predict(&archs[0]), None);
        predictor.observe(&archs[MIN_OBSERVATIONS - 1], 1.0);
        predictor.fit();
        let p = predictor.predict(&archs[0]).expect("fitted");
        assert!((p - 1.0).abs() < 0.05, "a constant device: {p}");
    }

    #[test]
    fn costs_are_never_negative_and_bad_figures_are_ignored() {
        let archs = samples(40);
        let mut predictor = Predictor::new();
        for (i, a) in archs.iter().enumerate() {
            predictor.observe(a, 0.1 + (i % 7) as f64 * 0.05);
        }
        predictor.observe(&archs[0], f64::NAN);
        predictor.observe(&archs[0], -1.0);
        assert_eq!(predictor.observations(), 40);
        predictor.fit();
        let costs = predictor.costs.as_ref().expect("fitted");
        assert!(costs.values().all(|w| *w >= 0.0), "{costs:?}");
    }

    #[test]
    fn the_screen_keeps_candidates_near_the_target_once_trusted() {
        use store::CandidateScreen;
        let archs = samples(TRUSTED_OBSERVATIONS + 1);
        let objective = |target: f64| -> Objective {
            serde_json::from_str(&format!(r#"{{"latency": {{"target_ms": {target}}}}}"#))
                .expect("objective")
        };
        let predictor = Arc::new(Mutex::new(Predictor::new()));
        let screen = PredictorScreen(predictor.clone());
        let candidate = &archs[TRUSTED_OBSERVATIONS];
        assert!(
            screen.keep(candidate, &objective(0.01)),
            "untrained: keeps all"
        );
        {
            let mut p = predictor.lock().expect("lock");
            for a in &archs[..TRUSTED_OBSERVATIONS] {
                p.observe(a, 1.0);
            }
            p.fit();
        }
        assert!(screen.keep(candidate, &objective(1.0)));
        assert!(screen.keep(candidate, &objective(2.5)));
        assert!(
            !screen.keep(candidate, &objective(0.2)),
            "5x over the target"
        );
        assert!(
            !screen.keep(candidate, &objective(5.0)),
            "5x under the target"
        );
        assert!(
            screen.keep(candidate, &Objective::default()),
            "no latency target"
        );
    }

    #[test]
    fn the_solver_solves() {
        let x = solve(vec![vec![4.0, 1.0], vec![1.0, 3.0]], vec![1.0, 2.0]);
        assert!((4.0 * x[0] + x[1] - 1.0).abs() < 1e-12);
        assert!((x[0] + 3.0 * x[1] - 2.0).abs() < 1e-12);
    }
}
