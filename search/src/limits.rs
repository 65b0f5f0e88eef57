//! What a network costs to train, and the limits a search must stay within:
//! trainable parameters, multiply-accumulates per image and training memory.
//! The API checks a search space by its worst case before accepting it, and
//! a worker checks each network against its own memory before building it.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::arch::InputShape;
use crate::genotype::{decode, BlockGene, Genotype, GenotypeError};
use crate::space::SearchSpace;
use crate::validate::Report;

/// Bytes of an `f32`.
const F32: u64 = 4;

/// Bytes per trainable parameter while training with Adam: the weight, its
/// gradient and the two moment estimates.
pub const BYTES_PER_PARAMETER: u64 = 4 * F32;

/// How many `f32`s training keeps per activation element: the activation
/// itself (kept for the backward pass), its gradient, and working space
/// (im2col buffers, masks) of about the same size.
pub const FLOATS_PER_ACTIVATION: u64 = 3;

/// The costs of training one network at one batch size.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Footprint {
    /// Trainable parameters.
    pub params: u64,
    /// Multiply-accumulates per image.
    pub macs: u64,
    /// Estimated peak memory while training, bytes: parameters with their
    /// gradients and Adam state, plus every layer's activations, their
    /// gradients and working space for a whole batch.
    pub training_bytes: u64,
}

impl Footprint {
    /// The footprint of the network `report` describes, trained at `batch_size`.
    pub fn of(report: &Report, input: InputShape, batch_size: usize) -> Self {
        let input_elements = (input.channels * input.height * input.width) as u64;
        let activations = report
            .layers
            .iter()
            .map(|l| l.output.elements())
            .fold(input_elements, u64::saturating_add);
        let per_image = activations
            .saturating_mul(F32)
            .saturating_mul(FLOATS_PER_ACTIVATION);
        Self {
            params: report.params,
            macs: report.macs,
            training_bytes: report
                .params
                .saturating_mul(BYTES_PER_PARAMETER)
                .saturating_add(per_image.saturating_mul(batch_size as u64)),
        }
    }

    /// The larger of each figure.
    pub fn max(self, other: Self) -> Self {
        Self {
            params: self.params.max(other.params),
            macs: self.macs.max(other.macs),
            training_bytes: self.training_bytes.max(other.training_bytes),
        }
    }
}

/// How big a network a search may train. The defaults suit a worker with
/// 4 GB of memory; servers raise them with `--max-params`, `--max-macs` and
/// `--max-training-memory` (or `NAS_MAX_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceLimits {
    /// Most trainable parameters.
    pub max_params: u64,
    /// Most multiply-accumulates per image.
    pub max_macs: u64,
    /// Most estimated training memory, bytes.
    pub max_training_bytes: u64,
}

/// The default limit on parameters: 50 million.
pub const DEFAULT_MAX_PARAMS: u64 = 50_000_000;
/// The default limit on MACs per image: 5 billion (ResNet-50 at 224x224 is 4.1).
pub const DEFAULT_MAX_MACS: u64 = 5_000_000_000;
/// The default limit on training memory: 3 GiB, leaving room on a 4 GB worker.
pub const DEFAULT_MAX_TRAINING_BYTES: u64 = 3 << 30;

impl Default for ResourceLimits {
    fn default() -> Self {
        Self {
            max_params: DEFAULT_MAX_PARAMS,
            max_macs: DEFAULT_MAX_MACS,
            max_training_bytes: DEFAULT_MAX_TRAINING_BYTES,
        }
    }
}

/// A network (or a space's largest network) over a limit.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{what} needs {needed} {unit}, over the limit of {limit}")]
pub struct OverLimit {
    /// Which figure: `parameters`, `MACs per image` or `training memory`.
    pub what: &'static str,
    /// What the network needs.
    pub needed: String,
    /// The unit of `needed`.
    pub unit: &'static str,
    /// The limit.
    pub limit: String,
}

/// A byte count for people: `1.5 GiB`.
pub fn bytes_text(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

impl ResourceLimits {
    /// Whether `footprint` fits, naming the first figure over its limit.
    pub fn check(&self, footprint: &Footprint) -> Result<(), OverLimit> {
        if footprint.params > self.max_params {
            return Err(OverLimit {
                what: "parameters",
                needed: footprint.params.to_string(),
                unit: "parameters",
                limit: self.max_params.to_string(),
            });
        }
        if footprint.macs > self.max_macs {
            return Err(OverLimit {
                what: "MACs per image",
                needed: footprint.macs.to_string(),
                unit: "MACs",
                limit: self.max_macs.to_string(),
            });
        }
        if footprint.training_bytes > self.max_training_bytes {
            return Err(OverLimit {
                what: "training memory",
                needed: bytes_text(footprint.training_bytes),
                unit: "(estimated)",
                limit: bytes_text(self.max_training_bytes),
            });
        }
        Ok(())
    }
}

/// The footprint of the largest networks `space` can produce for `input`
/// and `classes` at `batch_size`: for every depth, every block kind at the
/// largest channel and kernel choices, the largest stem and hidden layer. A
/// mixed network's blocks each cost at most the costliest kind's, so this
/// bounds every sample. Fails if one of these networks does not decode.
pub fn worst_case(
    space: &SearchSpace,
    input: InputShape,
    classes: usize,
    batch_size: usize,
) -> Result<Footprint, GenotypeError> {
    let largest = |choices: &[usize]| choices.iter().copied().max().unwrap_or(0);
    let mut worst = Footprint {
        params: 0,
        macs: 0,
        training_bytes: 0,
    };
    for depth in space.depth.min..=space.depth.max {
        for &op in &space.ops {
            let gene = BlockGene {
                op,
                channels: largest(&space.channels),
                kernel: largest(&space.kernels),
            };
            let genotype = Genotype {
                stem_channels: largest(&space.stem.channels),
                blocks: vec![gene; depth],
                head_hidden: largest(&space.head.hidden),
            };
            let arch = decode(space, &genotype, input, classes)?;
            let report = crate::validate(&arch)?;
            worst = worst.max(Footprint::of(&report, input, batch_size));
        }
    }
    Ok(worst)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_fits_the_default_limits_on_every_dataset() {
        for name in crate::space::PRESETS {
            let space = SearchSpace::preset(name).expect("preset");
            for dataset in &crate::dataset::CATALOG {
                let worst =
                    worst_case(&space, dataset.input, dataset.classes, 64).expect("decodes");
                ResourceLimits::default()
                    .check(&worst)
                    .unwrap_or_else(|e| panic!("{name} on {}: {e}", dataset.name));
            }
        }
    }

    #[test]
    fn the_worst_case_bounds_random_samples() {
        let space = SearchSpace::preset("mobile").expect("preset");
        let input = InputShape::new(1, 28, 28);
        let worst = worst_case(&space, input, 10, 64).expect("decodes");
        let mut rng = crate::seeded_rng(3);
        for _ in 0..200 {
            let arch = crate::sample(&space, input, 10, &mut rng).expect("sample");
            let fp = Footprint::of(&crate::validate(&arch).expect("valid"), input, 64);
            assert!(fp.params <= worst.params, "{fp:?} > {worst:?}");
            assert!(fp.macs <= worst.macs, "{fp:?} > {worst:?}");
            assert!(
                fp.training_bytes <= worst.training_bytes,
                "{fp:?} > {worst:?}"
            );
        }
    }

    #[test]
    fn a_huge_space_is_over_the_limits_and_says_by_how_much() {
        let mut space = SearchSpace::preset("micro").expect("preset");
        space.channels = vec![4096];
        space.kernels = vec![15];
        let worst = worst_case(&space, InputShape::new(1, 28, 28), 10, 64).expect("decodes");
        let err = ResourceLimits::default()
            .check(&worst)
            .expect_err("too big");
        assert_eq!(err.what, "parameters", "{err}");
        assert_eq!(bytes_text(3 << 30), "3.0 GiB");
    }
}
