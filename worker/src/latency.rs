//! Batch-1 inference latency of a network, and the device it was measured on.

use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::net::Network;
use crate::train::{thread_pool, TrainError};

/// How to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LatencyConfig {
    /// Untimed runs first (caches, allocator, branch predictors).
    pub warmup: usize,
    /// Timed runs.
    pub runs: usize,
    /// Threads of the inference pool (default 1: comparable across machines).
    pub threads: usize,
}

impl Default for LatencyConfig {
    fn default() -> Self {
        Self {
            warmup: 5,
            runs: 30,
            threads: 1,
        }
    }
}

/// The machine a measurement comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    /// CPU model as the OS reports it.
    pub cpu: String,
    /// Logical CPUs of the machine.
    pub logical_cpus: usize,
    /// Threads the measurement used.
    pub threads: usize,
}

impl Device {
    /// This machine, measured with `threads` threads.
    pub fn current(threads: usize) -> Self {
        Self {
            cpu: cpu_model().unwrap_or_else(|| std::env::consts::ARCH.to_owned()),
            logical_cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            threads,
        }
    }

    /// A short fingerprint, e.g. `AMD EPYC 7B13 x2 (1 thread)`.
    pub fn fingerprint(&self) -> String {
        let unit = if self.threads == 1 {
            "thread"
        } else {
            "threads"
        };
        format!(
            "{} x{} ({} {unit})",
            self.cpu, self.logical_cpus, self.threads
        )
    }
}

fn cpu_model() -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    info.lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_owned())
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
    /// Timed runs.
    pub runs: usize,
    /// Where it was measured.
    pub device: Device,
}

/// Times batch-1 inference (eval mode) of `net` on a fixed input. Weights do
/// not change the work done, so this can run before training.
pub fn measure(net: &mut Network, config: LatencyConfig) -> Result<Latency, TrainError> {
    let pool = thread_pool(config.threads.max(1))?;
    let input = net.architecture().input;
    let size = input.channels * input.height * input.width;
    let image: Vec<f32> = (0..size)
        .map(|i| ((i * 7919) % 255) as f32 / 255.0)
        .collect();
    let params = net.tensors();
    let mut times: Vec<f64> = pool.install(|| {
        for _ in 0..config.warmup {
            net.predict(&params, image.clone(), 1);
        }
        (0..config.runs.max(1))
            .map(|_| {
                let x = image.clone();
                let t = Instant::now();
                std::hint::black_box(net.predict(&params, x, 1));
                t.elapsed().as_secs_f64() * 1e3
            })
            .collect()
    });
    times.sort_by(f64::total_cmp);
    let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
    Ok(Latency {
        p50: at(0.5),
        p90: at(0.9),
        min: times[0],
        runs: times.len(),
        device: Device::current(config.threads.max(1)),
    })
}
