//! The device reference network and its established latency: the basis
//! relative measurements are expressed on.
//!
//! A shared VM runs a network in a fast or a slow state about 1.6x apart,
//! each lasting from a tenth of a second to over a second, so two absolute
//! measurements of one network can differ by 2x. A candidate timed in
//! alternation with a fixed reference network sees the same machine state
//! as the reference in every pair, and the median of the per-pair ratios
//! barely moves. The ratio becomes milliseconds by multiplying it with the
//! reference's **established** p50: measured in thorough, quiet
//! measurements when a worker calibrates, kept per device, runtime and
//! thread count in a file beside the host's latency lock
//! (`$TMPDIR/nas-latency-reference.json` by default, so every process of a
//! machine that shares the lock shares it), and re-established
//! periodically. The basis is
//! the median of the last [`HISTORY`] establishments, so one measurement
//! taken in a slow state moves it little; each establishment's drift
//! against the basis before it is logged and registered with the worker's
//! profile (the Workers page shows it).
//!
//! The reference is [`DEVICE_REFERENCE`], MobileNet v1 at width 0.25 on
//! 28x28x1 (about 0.9 ms on the reference device): near the scale of the
//! targets searches set, and made of the layer kinds most candidates use.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use search::{zoo, Architecture, InputShape, Runtime};
use serde::{Deserialize, Serialize};

use super::{measure_absolute, Device, LatencyConfig, LatencyError};
use crate::host::HostGate;
use crate::net::Network;

/// The device reference network: a zoo entry and its width.
pub const DEVICE_REFERENCE: (&str, f64) = ("mobilenet_v1", 0.25);

/// Establishments the basis is the median of.
pub const HISTORY: usize = 5;

/// Thorough measurements one establishment is the median of.
const MEASUREMENTS_PER_ESTABLISHMENT: usize = 3;

/// The reference network's architecture (28x28x1, 10 classes).
pub fn reference_architecture() -> Result<Architecture, LatencyError> {
    let (name, width) = DEVICE_REFERENCE;
    zoo::build(name, InputShape::new(1, 28, 28), 10, width).map_err(|e| LatencyError::Config {
        field: "latency.reference",
        message: format!("{name}@{width}: {e}"),
    })
}

/// The build a basis belongs to: this crate's version and profile, the
/// inference path's revision (its speed changes with it), and for
/// onnxruntime the loaded library's version.
pub fn build_label(runtime: Runtime) -> String {
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    let engine = format!(
        "nas {} {profile}, inference r{}",
        env!("CARGO_PKG_VERSION"),
        crate::net::INFERENCE_REVISION
    );
    match runtime {
        Runtime::Nas => engine,
        Runtime::Onnxruntime => format!(
            "{engine}, onnxruntime {}",
            super::onnxruntime::loaded().map_or("?", |l| l.version.as_str())
        ),
    }
}

/// The reference network's label, `mobilenet_v1@0.25`.
pub fn reference_label() -> String {
    format!("{}@{}", DEVICE_REFERENCE.0, DEVICE_REFERENCE.1)
}

/// One establishment: when, and the p50 it found.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Establishment {
    /// Unix ms.
    pub at_ms: i64,
    /// The reference's p50 then, milliseconds.
    pub p50_ms: f64,
}

/// The established latency of the reference network on one device, in one
/// runtime, with one thread count.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Basis {
    /// The device's fingerprint.
    pub device: String,
    /// The runtime.
    pub runtime: Runtime,
    /// Threads of the measurement.
    pub threads: usize,
    /// The reference network (`zoo@width`).
    pub network: String,
    /// The build that measured it (`nas 0.1.0 release`, with the
    /// onnxruntime version for that runtime): a basis from another build
    /// of the engine is not used.
    #[serde(default)]
    pub build: String,
    /// The basis: the median of the last [`HISTORY`] establishments,
    /// milliseconds.
    pub p50_ms: f64,
    /// The establishments, oldest first (at most [`HISTORY`]).
    pub history: Vec<Establishment>,
    /// The last establishment against the basis before it (1.0: no drift).
    pub drift: f64,
}

impl Basis {
    /// When it was last established, Unix ms.
    pub fn established_at_ms(&self) -> i64 {
        self.history.last().map_or(0, |e| e.at_ms)
    }
}

/// The bases of this device, shared by the agents of a process and kept in
/// a file shared by the processes of a machine.
#[derive(Debug)]
pub struct References {
    file: Option<PathBuf>,
    device: String,
    bases: Mutex<BTreeMap<(Runtime, usize), Basis>>,
    protocol: LatencyConfig,
}

impl References {
    /// The bases kept in `file` (those of this device; a missing or
    /// unreadable file starts empty, logged).
    pub fn at(file: PathBuf) -> Self {
        let device = Device::current(1).cpu_label();
        let bases = read_file(&file, &device);
        Self {
            file: Some(file),
            device,
            bases: Mutex::new(bases),
            protocol: LatencyConfig::thorough(),
        }
    }

    /// The same, establishing with `protocol` instead of the thorough one
    /// (tests: `LatencyConfig::quick()`).
    pub fn with_protocol(mut self, protocol: LatencyConfig) -> Self {
        self.protocol = protocol;
        self
    }

    /// Bases kept in memory only (tests, one-off commands).
    pub fn in_memory() -> Self {
        Self {
            file: None,
            device: Device::current(1).cpu_label(),
            bases: Mutex::new(BTreeMap::new()),
            protocol: LatencyConfig::thorough(),
        }
    }

    /// The file kept beside the host's latency lock (`nas-latency.lock` ->
    /// `nas-latency-reference.json`): the processes that share the lock,
    /// every worker of the machine, share the basis.
    pub fn file_beside(lock: &Path) -> PathBuf {
        let stem = lock.file_stem().map_or_else(
            || "nas-latency".into(),
            |s| s.to_string_lossy().into_owned(),
        );
        lock.with_file_name(format!("{stem}-reference.json"))
    }

    /// The basis for `runtime` and `threads`, established now (through
    /// `gate`) if this device has none yet.
    pub fn basis(
        &self,
        runtime: Runtime,
        threads: usize,
        gate: Option<&HostGate>,
    ) -> Result<Basis, LatencyError> {
        let mut bases = self.bases.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(basis) = bases.get(&(runtime, threads)) {
            return Ok(basis.clone());
        }
        self.establish_locked(&mut bases, runtime, threads, gate)
    }

    /// Measures the reference again (thoroughly, on a quiet host), folds it
    /// into the basis and logs the drift.
    pub fn establish(
        &self,
        runtime: Runtime,
        threads: usize,
        gate: Option<&HostGate>,
    ) -> Result<Basis, LatencyError> {
        let mut bases = self.bases.lock().unwrap_or_else(PoisonError::into_inner);
        self.establish_locked(&mut bases, runtime, threads, gate)
    }

    /// Every basis this process knows, by runtime and threads.
    pub fn all(&self) -> Vec<Basis> {
        self.bases
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect()
    }

    fn establish_locked(
        &self,
        bases: &mut BTreeMap<(Runtime, usize), Basis>,
        runtime: Runtime,
        threads: usize,
        gate: Option<&HostGate>,
    ) -> Result<Basis, LatencyError> {
        let started = std::time::Instant::now();
        let config = LatencyConfig {
            threads,
            ..self.protocol
        };
        let mut network = Network::new(&reference_architecture()?, 1)
            .map_err(|e| LatencyError::Network(format!("reference network: {e}")))?;
        let mut medians = Vec::with_capacity(MEASUREMENTS_PER_ESTABLISHMENT);
        for _ in 0..MEASUREMENTS_PER_ESTABLISHMENT {
            medians.push(measure_absolute(&mut network, runtime, config, gate)?.p50);
        }
        let p50_ms = super::stats::median(&medians);
        let previous = bases.get(&(runtime, threads));
        let mut history = previous.map(|b| b.history.clone()).unwrap_or_default();
        history.push(Establishment {
            at_ms: now_ms(),
            p50_ms,
        });
        if history.len() > HISTORY {
            history.drain(..history.len() - HISTORY);
        }
        let drift = previous.map_or(1.0, |b| p50_ms / b.p50_ms);
        let basis = Basis {
            device: self.device.clone(),
            runtime,
            threads,
            network: reference_label(),
            build: build_label(runtime),
            p50_ms: basis_of(&history),
            history,
            drift,
        };
        if (drift - 1.0).abs() > 0.10 {
            tracing::warn!(runtime = %runtime, threads, measured_ms = p50_ms, basis_ms = basis.p50_ms, drift, "latency reference drifted more than 10%");
        } else {
            tracing::info!(runtime = %runtime, threads, measured_ms = p50_ms, basis_ms = basis.p50_ms, drift, seconds = started.elapsed().as_secs_f64(), "latency reference established");
        }
        bases.insert((runtime, threads), basis.clone());
        if let Some(file) = &self.file {
            // Merge with what other processes of the machine wrote meanwhile.
            let mut on_disk = read_file(file, &self.device);
            on_disk.insert((runtime, threads), basis.clone());
            if let Err(e) = write_file(file, &on_disk) {
                tracing::warn!(error = %e, path = %file.display(), "the latency reference could not be saved; it is kept in memory");
            }
        }
        Ok(basis)
    }
}

/// The basis of a history: the median of its establishments.
fn basis_of(history: &[Establishment]) -> f64 {
    let values: Vec<f64> = history.iter().map(|e| e.p50_ms).collect();
    super::stats::midpoint_median(&values)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn read_file(file: &Path, device: &str) -> BTreeMap<(Runtime, usize), Basis> {
    let text = match std::fs::read_to_string(file) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return BTreeMap::new(),
        Err(e) => {
            tracing::warn!(error = %e, path = %file.display(), "the latency reference file could not be read; establishing afresh");
            return BTreeMap::new();
        }
    };
    match serde_json::from_str::<Vec<Basis>>(&text) {
        Ok(bases) => bases
            .into_iter()
            .filter(|b| {
                b.device == device
                    && b.network == reference_label()
                    && b.build == build_label(b.runtime)
                    && b.p50_ms > 0.0
            })
            .map(|b| ((b.runtime, b.threads), b))
            .collect(),
        Err(e) => {
            tracing::warn!(error = %e, path = %file.display(), "the latency reference file is not valid; establishing afresh");
            BTreeMap::new()
        }
    }
}

fn write_file(file: &Path, bases: &BTreeMap<(Runtime, usize), Basis>) -> std::io::Result<()> {
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let list: Vec<&Basis> = bases.values().collect();
    let text = serde_json::to_string_pretty(&list).map_err(std::io::Error::other)?;
    let part = file.with_extension(format!("json.{}.part", std::process::id()));
    std::fs::write(&part, text)?;
    std::fs::rename(&part, file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_relative_measurement_is_the_ratio_times_the_basis() {
        let references = References::in_memory().with_protocol(LatencyConfig::quick());
        let architecture =
            zoo::build("lenet5", InputShape::new(1, 28, 28), 10, 1.0).expect("lenet5");
        let mut net = Network::new(&architecture, 1).expect("network");
        let meter = super::super::Meter {
            references: Some(&references),
            ..super::super::Meter::absolute(LatencyConfig::quick())
        };
        let latency = super::super::measure_with(&mut net, &meter).expect("measures");
        let basis = references
            .basis(Runtime::Nas, 1, None)
            .expect("established on first use");
        let ratio = latency.ratio.expect("relative");
        assert_eq!(latency.basis_p50, Some(basis.p50_ms));
        assert!((latency.p50 - ratio * basis.p50_ms).abs() < 1e-12);
        assert!(latency.ci_low <= latency.p50 && latency.p50 <= latency.ci_high);
        // The fastest run is the network's own, on the same basis.
        assert!(
            latency.min > 0.0 && latency.min <= latency.p50,
            "{latency:?}"
        );
        // LeNet-5 is several times lighter than MobileNet v1 at 0.25.
        assert!(ratio > 0.0 && ratio < 1.0, "{ratio}");
        assert!(latency.raw_p50 > 0.0);
        let absolute =
            super::super::measure(&mut net, LatencyConfig::quick(), None).expect("absolute");
        assert_eq!(absolute.ratio, None);
        assert_eq!(absolute.raw_p50, absolute.p50);
    }

    #[test]
    fn the_basis_is_the_median_of_the_history() {
        let at = |p50_ms| Establishment { at_ms: 0, p50_ms };
        assert_eq!(basis_of(&[at(1.0)]), 1.0);
        assert_eq!(basis_of(&[at(1.0), at(1.6), at(1.1)]), 1.1);
        assert_eq!(basis_of(&[at(1.0), at(2.0)]), 1.5);
    }

    #[test]
    fn a_basis_is_kept_in_the_file_and_read_back_for_this_device_only() {
        let dir = std::env::temp_dir().join(format!("nas-reference-{}", std::process::id()));
        let file = References::file_beside(&dir.join("nas-latency.lock"));
        assert_eq!(file, dir.join("nas-latency-reference.json"));
        let _ = std::fs::remove_file(&file);
        let references = References::at(file.clone()).with_protocol(LatencyConfig::quick());
        let config_quick = references
            .establish(Runtime::Nas, 1, None)
            .expect("establishes");
        assert!(config_quick.p50_ms > 0.0);
        assert_eq!(config_quick.history.len(), 1);
        assert_eq!(config_quick.drift, 1.0);
        let again = References::at(file.clone());
        assert_eq!(
            again.basis(Runtime::Nas, 1, None).expect("read back"),
            config_quick,
            "read from the file, not measured again"
        );
        // Another device's entry, or another build's, is ignored.
        let mut other = config_quick.clone();
        other.device = "another cpu".into();
        let mut older = config_quick.clone();
        older.build = "nas 0.0.1 release".into();
        std::fs::write(&file, serde_json::to_string(&[other, older]).expect("json"))
            .expect("write");
        assert!(References::at(file.clone()).all().is_empty());
        std::fs::write(&file, "not json").expect("write");
        assert!(References::at(file).all().is_empty());
        let _ = std::fs::remove_dir_all(dir);
    }
}
