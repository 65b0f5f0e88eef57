//! Calibration: how fast this worker runs a fixed reference set of networks
//! compared with the reference device, as one speed factor.
//!
//! A worker measures the [`REFERENCE_SET`] (zoo networks of different
//! kinds: plain convolutions, depthwise-separable, residual, inception
//! branches) with the trial protocol when it registers. Its **speed factor**
//! is the geometric mean of its p50 over the reference device's p50 for
//! each network: 2.0 means this worker takes twice as long. A latency `t`
//! measured here is `t / factor` on the reference device, and `t / factor *
//! other` on a device whose factor is `other`; the API shows trial
//! latencies normalised this way beside the raw figure.
//!
//! The reference device is the 2-vCPU x86-64 VM (AVX2, FMA) this project is
//! benchmarked on, one thread, `trial` protocol; its figures are
//! [`ReferenceNetwork::reference_p50_ms`]. A geometric mean over a few
//! kinds of network is a first-order model: a device much faster at
//! depthwise convolutions than at dense ones is not captured (the per-layer
//! predictor is the finer tool). `bench/latency_calibration.py` measures
//! how well the factor carries over between two settings of this machine.

use search::{zoo, Architecture, InputShape};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::{measure_with, LatencyError, Meter};
use crate::net::{Network, NetworkError};

/// One network of the reference set.
#[derive(Debug, Clone, Copy)]
pub struct ReferenceNetwork {
    /// The zoo entry.
    pub zoo: &'static str,
    /// Its width multiplier.
    pub width: f64,
    /// Batch-1 p50 on the reference device, milliseconds.
    pub reference_p50_ms: f64,
}

impl ReferenceNetwork {
    /// A label such as `mobilenet_v1@0.25`.
    pub fn label(&self) -> String {
        format!("{}@{}", self.zoo, self.width)
    }

    /// The architecture, at 28x28x1 with 10 classes.
    pub fn architecture(&self) -> Result<Architecture, CalibrationError> {
        zoo::build(self.zoo, InputShape::new(1, 28, 28), 10, self.width)
            .map_err(|e| CalibrationError::Reference(format!("{}: {e}", self.label())))
    }
}

/// The fixed reference set, at 28x28x1 and 10 classes, with the reference
/// device's p50 (`nas calibrate --protocol trial --repeat 5` on the
/// reference device, relative basis, the median of the five; re-measured
/// when the engine got faster: a factor is only meaningful against figures
/// of the same engine). Since the inference path (revision 1), each is the
/// earlier figure times the new engine's latency over the old one's,
/// measured in alternation on one machine (median of three rounds,
/// `docs/training-engine.md`, "The inference path").
pub const REFERENCE_SET: [ReferenceNetwork; 5] = [
    ReferenceNetwork {
        zoo: "lenet5",
        width: 1.0,
        reference_p50_ms: 0.0374,
    },
    ReferenceNetwork {
        zoo: "fashion_cnn",
        width: 1.0,
        reference_p50_ms: 1.0064,
    },
    ReferenceNetwork {
        zoo: "mobilenet_v1",
        width: 0.25,
        reference_p50_ms: 0.1338,
    },
    ReferenceNetwork {
        zoo: "resnet18",
        width: 0.25,
        reference_p50_ms: 0.4831,
    },
    ReferenceNetwork {
        zoo: "googlenet",
        width: 0.25,
        reference_p50_ms: 1.2212,
    },
];

/// Why a calibration could not run.
#[derive(Debug, Error)]
pub enum CalibrationError {
    /// A reference network could not be built (a bug in the set).
    #[error("reference network {0}")]
    Reference(String),
    /// A network could not be built.
    #[error(transparent)]
    Network(#[from] NetworkError),
    /// The measurement could not run.
    #[error(transparent)]
    Measure(#[from] LatencyError),
}

/// One reference network as measured here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CalibrationPoint {
    /// Which network (`zoo@width`).
    pub network: String,
    /// Its p50 here, milliseconds.
    pub p50_ms: f64,
    /// Its p50 on the reference device, milliseconds.
    pub reference_p50_ms: f64,
}

/// A worker's calibration against the reference device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// Geometric mean of p50 here over p50 on the reference device (2.0:
    /// this worker takes twice as long).
    pub speed_factor: f64,
    /// Each reference network.
    pub points: Vec<CalibrationPoint>,
    /// Wall time of the calibration, seconds.
    pub seconds: f64,
}

/// The geometric mean of `measured / reference` over the pairs.
pub fn speed_factor(pairs: &[(f64, f64)]) -> Option<f64> {
    let logs: Vec<f64> = pairs
        .iter()
        .filter(|(m, r)| *m > 0.0 && *r > 0.0 && m.is_finite() && r.is_finite())
        .map(|(m, r)| (m / r).ln())
        .collect();
    (!logs.is_empty()).then(|| (logs.iter().sum::<f64>() / logs.len() as f64).exp())
}

/// Measures the reference set as `meter` says (waiting for a quiet host
/// through its gate; relative to the device reference when it has the
/// references) and returns this device's speed factor.
pub fn calibrate(meter: &Meter<'_>) -> Result<Calibration, CalibrationError> {
    let started = std::time::Instant::now();
    let mut points = Vec::with_capacity(REFERENCE_SET.len());
    for reference in REFERENCE_SET {
        let mut network = Network::new(&reference.architecture()?, 1)?;
        let latency = measure_with(&mut network, meter)?;
        points.push(CalibrationPoint {
            network: reference.label(),
            p50_ms: latency.p50,
            reference_p50_ms: reference.reference_p50_ms,
        });
    }
    let pairs: Vec<(f64, f64)> = points
        .iter()
        .map(|p| (p.p50_ms, p.reference_p50_ms))
        .collect();
    Ok(Calibration {
        speed_factor: speed_factor(&pairs).unwrap_or(1.0),
        points,
        seconds: started.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_factor_is_the_geometric_mean_of_the_ratios() {
        let factor = speed_factor(&[(2.0, 1.0), (8.0, 1.0)]).expect("factor");
        assert!((factor - 4.0).abs() < 1e-12, "{factor}");
        assert_eq!(speed_factor(&[(1.0, 0.0)]), None, "no usable reference");
    }

    #[test]
    fn every_reference_network_builds_with_a_reference_figure() {
        for reference in REFERENCE_SET {
            let architecture = reference.architecture().expect("builds");
            Network::new(&architecture, 1).expect("a network");
            assert!(
                reference.reference_p50_ms > 0.0,
                "{} has no reference p50",
                reference.label()
            );
        }
    }

    #[test]
    fn calibrating_measures_every_network() {
        let calibration =
            calibrate(&Meter::absolute(super::super::LatencyConfig::quick())).expect("calibrates");
        assert_eq!(calibration.points.len(), REFERENCE_SET.len());
        assert!(calibration.speed_factor > 0.0 && calibration.speed_factor.is_finite());
        assert!(calibration.points.iter().all(|p| p.p50_ms > 0.0));
    }
}
