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
//!
//! **Relative basis** ([`measure_with`] with the device's [`References`]):
//! each timed unit is a pair, the network and the device reference network
//! run back to back in alternating order, and the statistic is the pair's
//! ratio; the median ratio (and its interval and p90) times the
//! reference's established p50 gives milliseconds (min is the network's
//! own fastest run, carried over by the same factor as its own median), and the network's own
//! median is kept beside it as `raw_p50`. A shared VM's fast and slow states
//! (1.6x apart, 0.1 s to over a second each) hit both sides of a pair alike,
//! so the ratio holds where the absolute time does not (see
//! [`reference`]). The runtime is our engine or onnxruntime
//! ([`onnxruntime`]), the same protocol either way.

pub mod calibrate;
mod cpu;
mod device;
mod error;
pub mod onnxruntime;
pub mod predict;
pub mod reference;
pub mod stats;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

pub use device::Device;
pub use error::LatencyError;
pub use reference::References;
pub use search::Runtime;
pub use stats::Summary;

use crate::host::{thread_pool, HostGate};
use crate::net::{InferencePlan, Network};

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
    pub fn check(&self) -> Result<(), LatencyError> {
        let bad = |field, message: &str| {
            Err(LatencyError::Config {
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

/// A latency measurement. On the relative basis (`ratio` present) the
/// figures are the per-pair ratios to the device reference network times the
/// reference's established p50 (`basis_p50`); otherwise they are the run
/// times themselves.
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
    /// Timed runs (of the attempt reported; pairs on the relative basis).
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
    /// The engine it ran in.
    pub runtime: Runtime,
    /// The median of the network's own run times, milliseconds (equal to
    /// `p50` on the absolute basis).
    pub raw_p50: f64,
    /// The median of the per-pair ratios network / reference (relative
    /// basis only).
    pub ratio: Option<f64>,
    /// The reference's established p50 the ratio was multiplied by,
    /// milliseconds (relative basis only).
    pub basis_p50: Option<f64>,
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

/// One batch-1 forward pass of a network on a fixed input, in some engine.
pub trait Inference: Send {
    /// Runs it once.
    fn infer(&mut self) -> Result<(), LatencyError>;
}

/// A network in our own engine: its inference plan at batch 1 (batch norm
/// folded, activations fused, buffers planned once), the path every latency
/// figure of ours times.
pub struct EngineInference {
    plan: InferencePlan,
    image: Vec<f32>,
}

impl EngineInference {
    /// `net`, as its weights are now, on a fixed input of its shape.
    pub fn new(net: &Network) -> Self {
        let input = net.architecture().input;
        let image = fixed_image(input.channels * input.height * input.width);
        Self {
            plan: InferencePlan::new(net, 1),
            image,
        }
    }
}

impl Inference for EngineInference {
    fn infer(&mut self) -> Result<(), LatencyError> {
        std::hint::black_box(self.plan.run(&self.image));
        Ok(())
    }
}

/// The fixed input every measurement uses: deterministic values in `[0, 1]`.
pub(crate) fn fixed_image(size: usize) -> Vec<f32> {
    (0..size)
        .map(|i| ((i * 7919) % 255) as f32 / 255.0)
        .collect()
}

/// `net` ready to run in `runtime` (`threads` intra-op threads for
/// onnxruntime; our engine takes the measuring pool's).
fn inference<'a>(
    net: &'a mut Network,
    runtime: Runtime,
    threads: usize,
) -> Result<Box<dyn Inference + Send + 'a>, LatencyError> {
    Ok(match runtime {
        Runtime::Nas => Box::new(EngineInference::new(net)),
        Runtime::Onnxruntime => Box::new(onnxruntime::OrtInference::new(net, threads)?),
    })
}

/// How and where to measure: the protocol's settings, the host's gate, the
/// runtime and the device's reference bases (`None`: absolute timing).
#[derive(Debug, Clone, Copy)]
pub struct Meter<'a> {
    /// The protocol's settings.
    pub config: LatencyConfig,
    /// The host's latency gate.
    pub gate: Option<&'a HostGate>,
    /// The engine to time in.
    pub runtime: Runtime,
    /// The device's reference bases: with them a network is timed in
    /// alternation with the reference network (relative basis).
    pub references: Option<&'a References>,
}

impl<'a> Meter<'a> {
    /// Absolute timing in our engine with `config` (tests, one-offs).
    pub fn absolute(config: LatencyConfig) -> Self {
        Self {
            config,
            gate: None,
            runtime: Runtime::Nas,
            references: None,
        }
    }
}

/// Times batch-1 inference (eval mode) of `net` in our engine, absolute
/// basis; with a `gate`, no batch of another agent of the host runs
/// meanwhile. Weights do not change the work done, so this can run before
/// training.
pub fn measure(
    net: &mut Network,
    config: LatencyConfig,
    gate: Option<&HostGate>,
) -> Result<Latency, LatencyError> {
    measure_absolute(net, Runtime::Nas, config, gate)
}

/// Times `net` in `runtime` on the absolute basis (the run times
/// themselves): how the reference itself is established.
pub fn measure_absolute(
    net: &mut Network,
    runtime: Runtime,
    config: LatencyConfig,
    gate: Option<&HostGate>,
) -> Result<Latency, LatencyError> {
    measure_with(
        net,
        &Meter {
            config,
            gate,
            runtime,
            references: None,
        },
    )
}

/// Times `net` as `meter` says: on the relative basis when it has the
/// device's references (the network and the reference network alternate,
/// run by run, and the median of the per-pair ratios is multiplied by the
/// reference's established p50), else on the absolute basis.
pub fn measure_with(net: &mut Network, meter: &Meter<'_>) -> Result<Latency, LatencyError> {
    let config = meter.config;
    config.check()?;
    let started = Instant::now();
    // Established first: establishing takes the gate itself.
    let basis = meter
        .references
        .map(|r| r.basis(meter.runtime, config.threads, meter.gate))
        .transpose()?;
    let mut reference_network = match &basis {
        Some(_) => Some(
            Network::new(&reference::reference_architecture()?, 1)
                .map_err(|e| LatencyError::Network(format!("reference network: {e}")))?,
        ),
        None => None,
    };
    let (pool, pinned) = pinned_pool(&config)?;
    let mut sampler = Sampler {
        candidate: inference(net, meter.runtime, config.threads)?,
        reference: reference_network
            .as_mut()
            .map(|n| inference(n, meter.runtime, config.threads))
            .transpose()?,
        pairs: 0,
        failure: None,
    };
    // One run each before anything is timed: a runtime that cannot run the
    // network says so here, with its message.
    pool.install(|| sampler.try_each())?;
    let quiet = meter.gate.and_then(|g| {
        g.quiet()
            .map_err(|e| tracing::warn!(error = %e, path = %g.path().display(), "latency gate unavailable; measuring beside training"))
            .ok()
    });
    let quiet_wait_ms = quiet.as_ref().map_or(0.0, |q| q.waited.as_secs_f64() * 1e3);
    let (best, attempts) = pool.install(|| best_attempt(&config, &mut || sampler.sample()));
    drop(quiet);
    if let Some(e) = sampler.failure {
        return Err(e);
    }
    let best = best.ok_or_else(|| LatencyError::Config {
        field: "latency.attempts",
        message: "no attempt ran".into(),
    })?;
    let how = HowMeasured {
        attempts,
        pinned,
        quiet_wait_ms,
        seconds_spent: started.elapsed().as_secs_f64(),
        runtime: meter.runtime,
    };
    Ok(latency_of(
        best,
        basis.as_ref().map(|b| b.p50_ms),
        &config,
        how,
    ))
}

/// The measuring pool, its threads pinned to CPUs where `config` asks and
/// the OS allows (the last CPUs first: CPU 0 takes most interrupts).
/// Returns whether every thread was pinned.
fn pinned_pool(config: &LatencyConfig) -> Result<(rayon::ThreadPool, bool), LatencyError> {
    let pool = thread_pool(config.threads)?;
    let allowed = cpu::allowed_cpus();
    let pinned = config.pin
        && pool
            .broadcast(|ctx| {
                let cpu = allowed[allowed.len() - 1 - ctx.index() % allowed.len()];
                cpu::pin_current_thread(cpu)
            })
            .into_iter()
            .all(|ok| ok);
    Ok((pool, pinned))
}

/// Times the candidate, alone or in pairs with the reference network; the
/// first failure is kept and every later sample is NaN.
struct Sampler<'a> {
    candidate: Box<dyn Inference + Send + 'a>,
    reference: Option<Box<dyn Inference + Send + 'a>>,
    pairs: usize,
    failure: Option<LatencyError>,
}

impl Sampler<'_> {
    /// One untimed run of each network.
    fn try_each(&mut self) -> Result<(), LatencyError> {
        self.candidate.infer()?;
        self.reference.as_mut().map_or(Ok(()), |r| r.infer())
    }

    /// One timed unit.
    fn sample(&mut self) -> Sample {
        let failure = &mut self.failure;
        let mut time = |inference: &mut Box<dyn Inference + Send + '_>| {
            let t = Instant::now();
            match inference.infer() {
                Ok(()) => t.elapsed().as_secs_f64() * 1e3,
                Err(e) => {
                    failure.get_or_insert(e);
                    f64::NAN
                }
            }
        };
        match self.reference.as_mut() {
            None => {
                let own = time(&mut self.candidate);
                Sample { value: own, own }
            }
            Some(reference) => {
                // The order alternates, so neither side always runs in the
                // other's wake.
                self.pairs += 1;
                let (own, theirs) = if self.pairs.is_multiple_of(2) {
                    let own = time(&mut self.candidate);
                    (own, time(reference))
                } else {
                    let theirs = time(reference);
                    (time(&mut self.candidate), theirs)
                };
                Sample {
                    value: own / theirs,
                    own,
                }
            }
        }
    }
}

/// Attempts until one's interval is within `accept_ci` (or one fails, or
/// `attempts` ran): the narrowest attempt, and how many ran.
fn best_attempt(
    config: &LatencyConfig,
    sample: &mut impl FnMut() -> Sample,
) -> (Option<Attempt>, usize) {
    let mut best: Option<Attempt> = None;
    let mut attempts = 0;
    while attempts < config.attempts {
        attempts += 1;
        let attempt = one_attempt(config, sample);
        let width = attempt.summary.relative_half_width();
        let better = best
            .as_ref()
            .is_none_or(|b| width < b.summary.relative_half_width());
        if better {
            best = Some(attempt);
        }
        if width <= config.accept_ci || attempt_failed(&best) {
            break;
        }
    }
    (best, attempts)
}

/// How a measurement went, besides its timings.
struct HowMeasured {
    attempts: usize,
    pinned: bool,
    quiet_wait_ms: f64,
    seconds_spent: f64,
    runtime: Runtime,
}

/// The measurement `best` stands for, in milliseconds: on the relative
/// basis (the reference's established p50 `basis_ms`) the median ratio
/// times it, else the run times themselves.
fn latency_of(
    best: Attempt,
    basis_ms: Option<f64>,
    config: &LatencyConfig,
    how: HowMeasured,
) -> Latency {
    let s = best.summary;
    let unstable = s.relative_half_width() > config.accept_ci;
    if unstable {
        tracing::warn!(
            p50 = s.p50,
            half_width = s.relative_half_width(),
            attempts = how.attempts,
            "latency interval stayed wide"
        );
    }
    let scale = basis_ms.unwrap_or(1.0);
    // On the relative basis the fastest run is the network's own, carried
    // over by the factor that carries its own median: a pair whose
    // reference run was interrupted says nothing of how fast it can run.
    let min = match basis_ms {
        Some(_) if best.own_p50 > 0.0 => best.own_min * (s.p50 * scale) / best.own_p50,
        _ => s.min * scale,
    };
    Latency {
        p50: s.p50 * scale,
        p90: s.p90 * scale,
        min,
        ci_low: s.ci_low * scale,
        ci_high: s.ci_high * scale,
        runs: s.runs,
        outliers: s.outliers,
        warmup_runs: best.warmup_runs,
        attempts: how.attempts,
        unstable,
        cpus: best.cpus.into_iter().collect(),
        pinned: how.pinned,
        quiet_wait_ms: how.quiet_wait_ms,
        seconds_spent: how.seconds_spent,
        device: Device::current(config.threads),
        runtime: how.runtime,
        raw_p50: best.own_p50,
        ratio: basis_ms.map(|_| s.p50),
        basis_p50: basis_ms,
    }
}

/// One timed unit: the figure summarised (a run time, or a pair's ratio)
/// and the network's own run time.
#[derive(Debug, Clone, Copy)]
struct Sample {
    value: f64,
    own: f64,
}

/// One attempt's timings.
struct Attempt {
    summary: Summary,
    own_p50: f64,
    own_min: f64,
    warmup_runs: usize,
    cpus: BTreeSet<usize>,
}

fn attempt_failed(best: &Option<Attempt>) -> bool {
    best.as_ref().is_some_and(|b| !b.summary.p50.is_finite())
}

/// Warm-up until settled, then timed runs until the interval is narrow.
fn one_attempt(config: &LatencyConfig, run: &mut impl FnMut() -> Sample) -> Attempt {
    let warmup_runs = warm_up(config, run);
    let mut times = Vec::with_capacity(config.min_runs * 4);
    let mut own = Vec::with_capacity(config.min_runs * 4);
    let mut cpus = BTreeSet::new();
    let started = Instant::now();
    let max_time = Duration::from_secs_f64(config.max_time_ms / 1e3);
    let min_time = Duration::from_secs_f64(config.min_time_ms / 1e3);
    loop {
        let sample = run();
        times.push(sample.value);
        own.push(sample.own);
        if !sample.value.is_finite() {
            break;
        }
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
        own_p50: stats::median(&own),
        own_min: own.iter().copied().fold(f64::INFINITY, f64::min),
        warmup_runs,
        cpus,
    }
}

/// Runs windows of at least 5 runs and 10 ms until two successive window
/// medians agree within 3% (after `warmup_min_ms`) or `warmup_max_ms`
/// passes; returns the runs made.
fn warm_up(config: &LatencyConfig, run: &mut impl FnMut() -> Sample) -> usize {
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
            let value = run().value;
            window.push(value);
            if window.len() >= 1000 || !value.is_finite() {
                break;
            }
        }
        runs += window.len();
        let median = stats::median(&window);
        let elapsed = started.elapsed();
        let settled = previous.is_some_and(|p| (median - p).abs() <= 0.03 * p);
        if (settled && elapsed >= min) || elapsed >= max || !median.is_finite() {
            return runs;
        }
        previous = Some(median);
    }
}
