//! Order statistics of timed runs: the median with its confidence interval,
//! quantiles and outliers. Pure functions of the sorted sample, so the
//! protocol's stopping rules are tested without a clock.

/// What a sample of run times says, milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// Fastest run.
    pub min: f64,
    /// Lower end of the 95% confidence interval of the median.
    pub ci_low: f64,
    /// Upper end of the 95% confidence interval of the median.
    pub ci_high: f64,
    /// Runs above the upper Tukey fence (third quartile + 1.5 IQR): kept in
    /// the sample (the median is robust to them) and counted.
    pub outliers: usize,
    /// Runs in the sample.
    pub runs: usize,
}

impl Summary {
    /// The interval's half-width relative to the median: the larger of its
    /// two sides, so `0.05` means the median is known to ±5%.
    pub fn relative_half_width(&self) -> f64 {
        if self.p50 <= 0.0 {
            return f64::INFINITY;
        }
        (self.p50 - self.ci_low).max(self.ci_high - self.p50) / self.p50
    }
}

/// The value at quantile `q` of a sorted, non-empty sample (nearest rank).
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    let index = ((sorted.len() - 1) as f64 * q.clamp(0.0, 1.0)).round() as usize;
    sorted[index]
}

/// The median of an unsorted sample (`NaN` when empty).
pub fn median(times: &[f64]) -> f64 {
    if times.is_empty() {
        return f64::NAN;
    }
    let mut sorted = times.to_vec();
    sorted.sort_by(f64::total_cmp);
    quantile(&sorted, 0.5)
}

/// The median of an unsorted sample, the mean of the middle two for an even
/// count (`NaN` when empty): for a few figures, where nearest rank is
/// coarse.
pub fn midpoint_median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// The 95% confidence interval of the median of a sorted sample, from order
/// statistics (distribution-free: the ranks `n/2 ± 1.96·√n/2`).
pub fn median_interval(sorted: &[f64]) -> (f64, f64) {
    let n = sorted.len() as f64;
    let spread = 1.96 * n.sqrt() / 2.0;
    let low = ((n / 2.0 - spread).floor().max(0.0)) as usize;
    let high = ((n / 2.0 + spread).ceil() as usize).min(sorted.len() - 1);
    (sorted[low.min(sorted.len() - 1)], sorted[high])
}

/// Summarises a non-empty sample (sorted or not).
pub fn summarise(times: &[f64]) -> Summary {
    let mut sorted = times.to_vec();
    sorted.sort_by(f64::total_cmp);
    let (ci_low, ci_high) = median_interval(&sorted);
    let q1 = quantile(&sorted, 0.25);
    let q3 = quantile(&sorted, 0.75);
    let fence = q3 + 1.5 * (q3 - q1);
    Summary {
        p50: quantile(&sorted, 0.5),
        p90: quantile(&sorted, 0.9),
        min: sorted[0],
        ci_low,
        ci_high,
        outliers: sorted.iter().filter(|&&t| t > fence).count(),
        runs: sorted.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_interval_narrows_as_runs_grow() {
        // A skewed, noisy sample: 1 ms with a spread of ±10% and a slow tail.
        let sample = |n: usize| -> Vec<f64> {
            (0..n)
                .map(|i| {
                    let u = ((i * 7919) % 1000) as f64 / 1000.0;
                    1.0 + 0.2 * (u - 0.5) + if i % 17 == 0 { 1.0 } else { 0.0 }
                })
                .collect()
        };
        let small = summarise(&sample(30));
        let large = summarise(&sample(3000));
        assert!(small.ci_low <= small.p50 && small.p50 <= small.ci_high);
        assert!(large.relative_half_width() < small.relative_half_width());
        assert!(large.relative_half_width() < 0.01, "{large:?}");
        assert!((large.p50 - 1.0).abs() < 0.02, "{large:?}");
        // Every 17th run is a 2 ms outlier: counted, not hidden.
        assert_eq!(large.outliers, 3000usize.div_ceil(17));
        assert_eq!(
            large.min,
            sample(3000).iter().copied().fold(f64::MAX, f64::min)
        );
    }

    #[test]
    fn quantiles_of_a_known_sample() {
        let times: Vec<f64> = (1..=11).map(f64::from).collect();
        let s = summarise(&times);
        assert_eq!((s.p50, s.p90, s.min, s.runs), (6.0, 10.0, 1.0, 11));
        assert_eq!(s.outliers, 0);
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        let one = summarise(&[2.5]);
        assert_eq!((one.ci_low, one.p50, one.ci_high), (2.5, 2.5, 2.5));
        assert_eq!(one.relative_half_width(), 0.0);
    }
}
