//! Batch-1 inference latency of a network, and the device it was measured on.
//!
//! The protocol ([`measure`]): the host is made quiet (no training or
//! validation batch of any agent on it runs, see [`gate`]); the measuring
//! threads are pinned to CPUs; warm-up runs go on until the median of
//! successive windows stops moving (at least [`LatencyConfig::warmup_min_ms`],
//! at most [`LatencyConfig::warmup_max_ms`]); then timed runs go on until the
//! 95% confidence interval of the median is within
//! [`LatencyConfig::target_ci`] (after at least `min_runs` runs and
//! `min_time_ms`, at most `max_runs` or `max_time_ms`). A measurement whose
//! interval stays wider than [`LatencyConfig::accept_ci`] is repeated, up to
//! `attempts` times, and flagged `unstable` if it never narrows.

pub mod calibrate;
mod cpu;
mod device;
pub mod gate;
pub mod predict;
pub mod stats;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

pub use device::Device;
pub use gate::HostGate;
pub use stats::Summary;

use crate::net::Network;
use crate::train::{thread_pool, TrainError};

/// How to measure.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LatencyConfig {
    /// Threads of the inference pool (default 1: comparable across machines).
    pub threads: usize,
    /// Shortest warm-up, milliseconds.
    pub warmup_min_ms: f64,
    /// Longest warm-up, milliseconds (a network whose timings never settle
    /// is timed after this).
    pub warmup_max_ms: f64,
    /// Fewest timed runs.
    pub min_runs: usize,
    /// Most timed runs of one attempt.
    pub max_runs: usize,
    /// Shortest timed phase, milliseconds.
    pub min_time_ms: f64,
    /// Longest timed phase of one attempt, milliseconds.
    pub max_time_ms: f64,
    /// Stop timing once the median's 95% interval is within this relative
    /// half-width (0.02: ±2%).
    pub target_ci: f64,
    /// An attempt wider than this is repeated (0.05: ±5%).
    pub accept_ci: f64,
    /// Most attempts before a measurement is reported `unstable`.
    pub attempts: usize,
    /// Pin the measuring threads to CPUs (where the OS allows).
    pub pin: bool,
}

impl Default for LatencyConfig {
    /// The protocol for trials: about 0.3–1 s per network on a quiet host.
    fn default() -> Self {
        Self {
            threads: 1,
            warmup_min_ms: 100.0,
            warmup_max_ms: 1000.0,
            min_runs: 50,
            max_runs: 10_000,
            min_time_ms: 200.0,
            max_time_ms: 2000.0,
            target_ci: 0.02,
            accept_ci: 0.05,
            attempts: 3,
            pin: true,
        }
    }
}

impl LatencyConfig {
    /// The protocol for final models and benchmarks: longer, tighter.
    pub fn thorough() -> Self {
        Self {
            warmup_min_ms: 300.0,
            warmup_max_ms: 3000.0,
            min_runs: 200,
            min_time_ms: 1000.0,
            max_time_ms: 6000.0,
            target_ci: 0.01,
            ..Self::default()
        }
    }

    /// A few runs and no settling: for tests that need a number, not a
    /// trustworthy one.
    pub fn quick() -> Self {
        Self {
            warmup_min_ms: 0.0,
            warmup_max_ms: 5.0,
            min_runs: 5,
            max_runs: 20,
            min_time_ms: 0.0,
            max_time_ms: 20.0,
            target_ci: 1.0,
            accept_ci: 1.0,
            attempts: 1,
            ..Self::default()
        }
    }

    /// Checks the settings, naming the first bad one.
    pub fn check(&self) -> Result<(), TrainError> {
        let bad = |field, message: &str| {
            Err(TrainError::Config {
                field,
                message: message.to_owned(),
            })
        };
        if self.threads == 0 {
            return bad("latency.threads", "must be at least 1");
        }
        if self.min_runs == 0 || self.max_runs < self.min_runs {
            return bad(
                "latency.min_runs",
                "must be at least 1 and at most max_runs",
            );
        }
        if self.attempts == 0 {
            return bad("latency.attempts", "must be at least 1");
        }
        let times = [
            self.warmup_min_ms,
            self.warmup_max_ms,
            self.min_time_ms,
            self.max_time_ms,
        ];
        if times.iter().any(|t| !t.is_finite() || *t < 0.0) {
            return bad("latency.*_ms", "must be finite and not negative");
        }
        if !(self.target_ci > 0.0 && self.accept_ci > 0.0) {
            return bad("latency.target_ci", "interval widths must be positive");
        }
        Ok(())
    }
}

/// A latency measurement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    /// Median, milliseconds.
    pub p50: f64,
    /// 90th percentile, milliseconds.
    pub p90: f64,
    /// Fastest run, milliseconds.
    pub min: f64,
    /// Lower end of the median's 95% confidence interval, milliseconds.
    pub ci_low: f64,
    /// Upper end of the median's 95% confidence interval, milliseconds.
    pub ci_high: f64,
    /// Timed runs (of the attempt reported).
    pub runs: usize,
    /// Runs above the upper Tukey fence (kept, counted).
    pub outliers: usize,
    /// Untimed warm-up runs (of the attempt reported).
    pub warmup_runs: usize,
    /// Attempts made (more than one when an interval was too wide).
    pub attempts: usize,
    /// Whether the interval stayed wider than the config's `accept_ci`.
    pub unstable: bool,
    /// The CPUs the measuring thread(s) ran on.
    pub cpus: Vec<usize>,
    /// Whether the measuring threads were pinned.
    pub pinned: bool,
    /// How long the measurement waited for the host to go quiet (zero
    /// without a gate).
    pub quiet_wait_ms: f64,
    /// Wall time of the whole measurement, milliseconds.
    pub seconds_spent: f64,
    /// Where it was measured.
    pub device: Device,
}

impl Latency {
    /// The median's interval as a relative half-width.
    pub fn relative_half_width(&self) -> f64 {
        self.summary().relative_half_width()
    }

    fn summary(&self) -> Summary {
        Summary {
            p50: self.p50,
            p90: self.p90,
            min: self.min,
            ci_low: self.ci_low,
            ci_high: self.ci_high,
            outliers: self.outliers,
            runs: self.runs,
        }
    }
}

/// One attempt's timings.
struct Attempt {
    summary: Summary,
    warmup_runs: usize,
    cpus: BTreeSet<usize>,
}

/// Times batch-1 inference (eval mode) of `net` on a fixed input with the
/// protocol of this module; with a `gate`, no batch of another agent of the
/// host runs meanwhile. Weights do not change the work done, so this can
/// run before training.
pub fn measure(
    net: &mut Network,
    config: LatencyConfig,
    gate: Option<&HostGate>,
) -> Result<Latency, TrainError> {
    config.check()?;
    let started = Instant::now();
    let pool = thread_pool(config.threads)?;
    let allowed = cpu::allowed_cpus();
    let pinned = config.pin
        && pool
            .broadcast(|ctx| {
                // The last CPUs first: CPU 0 takes most interrupts.
                let cpu = allowed[allowed.len() - 1 - ctx.index() % allowed.len()];
                cpu::pin_current_thread(cpu)
            })
            .into_iter()
            .all(|ok| ok);
    let input = net.architecture().input;
    let size = input.channels * input.height * input.width;
    let image: Vec<f32> = (0..size)
        .map(|i| ((i * 7919) % 255) as f32 / 255.0)
        .collect();
    let quiet = gate.and_then(|g| {
        g.quiet()
            .map_err(|e| tracing::warn!(error = %e, path = %g.path().display(), "latency gate unavailable; measuring beside training"))
            .ok()
    });
    let quiet_wait_ms = quiet.as_ref().map_or(0.0, |q| q.waited.as_secs_f64() * 1e3);
    let params = net.tensors();
    let mut run = || {
        let x = image.clone();
        let t = Instant::now();
        std::hint::black_box(net.predict(&params, x, 1));
        t.elapsed().as_secs_f64() * 1e3
    };
    let (best, attempts) = pool.install(|| {
        let mut best: Option<Attempt> = None;
        let mut attempts = 0;
        while attempts < config.attempts {
            attempts += 1;
            let attempt = one_attempt(&config, &mut run);
            let width = attempt.summary.relative_half_width();
            let better = best
                .as_ref()
                .is_none_or(|b| width < b.summary.relative_half_width());
            if better {
                best = Some(attempt);
            }
            if width <= config.accept_ci {
                break;
            }
        }
        (best, attempts)
    });
    drop(quiet);
    let best = best.ok_or_else(|| TrainError::Config {
        field: "latency.attempts",
        message: "no attempt ran".into(),
    })?;
    let unstable = best.summary.relative_half_width() > config.accept_ci;
    if unstable {
        tracing::warn!(
            p50_ms = best.summary.p50,
            half_width = best.summary.relative_half_width(),
            attempts,
            "latency interval stayed wide"
        );
    }
    Ok(Latency {
        p50: best.summary.p50,
        p90: best.summary.p90,
        min: best.summary.min,
        ci_low: best.summary.ci_low,
        ci_high: best.summary.ci_high,
        runs: best.summary.runs,
        outliers: best.summary.outliers,
        warmup_runs: best.warmup_runs,
        attempts,
        unstable,
        cpus: best.cpus.into_iter().collect(),
        pinned,
        quiet_wait_ms,
        seconds_spent: started.elapsed().as_secs_f64(),
        device: Device::current(config.threads),
    })
}

/// Warm-up until settled, then timed runs until the interval is narrow.
fn one_attempt(config: &LatencyConfig, run: &mut impl FnMut() -> f64) -> Attempt {
    let warmup_runs = warm_up(config, run);
    let mut times = Vec::with_capacity(config.min_runs * 4);
    let mut cpus = BTreeSet::new();
    let started = Instant::now();
    let max_time = Duration::from_secs_f64(config.max_time_ms / 1e3);
    let min_time = Duration::from_secs_f64(config.min_time_ms / 1e3);
    loop {
        times.push(run());
        if let Some(cpu) = cpu::current_cpu() {
            cpus.insert(cpu);
        }
        let elapsed = started.elapsed();
        if times.len() >= config.max_runs
            || (elapsed >= max_time && times.len() >= config.min_runs.min(3))
        {
            break;
        }
        if times.len() >= config.min_runs
            && elapsed >= min_time
            && times.len() % 8 == 0
            && stats::summarise(&times).relative_half_width() <= config.target_ci
        {
            break;
        }
    }
    Attempt {
        summary: stats::summarise(&times),
        warmup_runs,
        cpus,
    }
}

/// Runs windows of at least 5 runs and 10 ms until two successive window
/// medians agree within 3% (after `warmup_min_ms`) or `warmup_max_ms`
/// passes; returns the runs made.
fn warm_up(config: &LatencyConfig, run: &mut impl FnMut() -> f64) -> usize {
    let started = Instant::now();
    let min = Duration::from_secs_f64(config.warmup_min_ms / 1e3);
    let max = Duration::from_secs_f64(config.warmup_max_ms / 1e3);
    let window_time = Duration::from_millis(10).min(max);
    let mut runs = 0;
    let mut previous: Option<f64> = None;
    loop {
        let window_start = Instant::now();
        let mut window = Vec::new();
        while window.len() < 5 || window_start.elapsed() < window_time {
            window.push(run());
            if window.len() >= 1000 {
                break;
            }
        }
        runs += window.len();
        let median = stats::median(&window);
        let elapsed = started.elapsed();
        let settled = previous.is_some_and(|p| (median - p).abs() <= 0.03 * p);
        if (settled && elapsed >= min) || elapsed >= max {
            return runs;
        }
        previous = Some(median);
    }
}
