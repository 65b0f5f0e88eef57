//! Search spaces: a JSON spec of what may be sampled, and the presets.
//!
//! A sampled network is `stem -> blocks -> head`. The stem is one strided
//! convolution; each block is one of the allowed [`BlockOp`]s with a channel
//! count and a kernel size drawn from the space's choices; the blocks at the
//! relative depths listed in `downsample_at` use stride 2; the head pools
//! (global average, or flatten), optionally adds a hidden dense layer and
//! dropout, and ends in the class logits. Every convolution in a sampled
//! network uses `"same"` padding, so every sample is valid for any input size.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::arch::{from_json_with_path, Activation};
pub use crate::genome::BlockOp;

/// Inclusive range of the number of blocks.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DepthRange {
    /// Fewest blocks (at least 1).
    pub min: usize,
    /// Most blocks.
    pub max: usize,
}

/// The stem: one convolution before the blocks.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StemSpec {
    /// Channel choices.
    pub channels: Vec<usize>,
    /// Kernel size.
    #[serde(default = "three")]
    pub kernel: usize,
    /// Stride.
    #[serde(default = "one")]
    pub stride: usize,
}

fn three() -> usize {
    3
}
fn one() -> usize {
    1
}
fn four() -> usize {
    4
}
fn yes() -> bool {
    true
}

/// How the head turns the last feature map into a vector.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HeadPooling {
    /// Global average pooling.
    GlobalAvg,
    /// Flatten (LeNet / VGG style).
    Flatten,
}

/// The head after the blocks.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeadSpec {
    /// Pooling before the dense layers.
    pub pooling: HeadPooling,
    /// Choices for a hidden dense layer's units; 0 means no hidden layer.
    #[serde(default = "no_hidden")]
    pub hidden: Vec<usize>,
    /// Dropout before the classifier (0 for none).
    #[serde(default)]
    pub dropout: f64,
}

fn no_hidden() -> Vec<usize> {
    vec![0]
}

/// What may be sampled. See the module documentation for the network shape.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchSpace {
    /// Name (the preset's, or the user's).
    #[serde(default)]
    pub name: String,
    /// Allowed block kinds.
    pub ops: Vec<BlockOp>,
    /// Channel choices for blocks.
    pub channels: Vec<usize>,
    /// Kernel-size choices for blocks (odd numbers).
    pub kernels: Vec<usize>,
    /// Number of blocks.
    pub depth: DepthRange,
    /// Relative depths in `(0, 1)` where a block downsamples by 2: with `n`
    /// blocks, block `floor(f * n)` uses stride 2 for each `f`.
    #[serde(default)]
    pub downsample_at: Vec<f64>,
    /// The stem.
    pub stem: StemSpec,
    /// The head.
    pub head: HeadSpec,
    /// Activation used throughout.
    #[serde(default = "relu")]
    pub activation: Activation,
    /// Whether convolutions are followed by batch norm.
    #[serde(default = "yes")]
    pub batch_norm: bool,
    /// Reduction ratio of squeeze-and-excitation blocks.
    #[serde(default = "four")]
    pub se_reduction: usize,
}

fn relu() -> Activation {
    Activation::Relu
}

/// An invalid search space: the field and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SpaceError {
    /// A field has an unacceptable value.
    #[error("{field}: {message}")]
    Field {
        /// The field's path, e.g. `depth.max`.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// No preset by that name.
    #[error("unknown search space preset `{0}` (known: micro, small, classic, mobile, full)")]
    UnknownPreset(String),
}

impl SpaceError {
    fn field(field: &str, message: impl Into<String>) -> Self {
        SpaceError::Field {
            field: field.to_owned(),
            message: message.into(),
        }
    }
}

/// Largest channel choice accepted.
pub const MAX_CHANNELS: usize = 4096;
/// Largest kernel choice accepted.
pub const MAX_KERNEL: usize = 15;
/// Largest depth accepted.
pub const MAX_DEPTH: usize = 64;

/// The names of the presets.
pub const PRESETS: [&str; 5] = ["micro", "small", "classic", "mobile", "full"];

impl SearchSpace {
    /// A preset by name: `micro`, `small`, `classic`, `mobile` or `full`.
    pub fn preset(name: &str) -> Result<Self, SpaceError> {
        let space = match name {
            // A smoke-test space: tiny networks (a few thousand parameters)
            // that train in seconds and plateau low. For tests and demos of
            // the machinery, not for results.
            "micro" => SearchSpace {
                name: "micro".into(),
                ops: vec![BlockOp::Conv, BlockOp::Residual, BlockOp::Pool],
                channels: vec![4, 8],
                kernels: vec![3],
                depth: DepthRange { min: 1, max: 3 },
                downsample_at: vec![0.5],
                stem: StemSpec {
                    channels: vec![4],
                    kernel: 3,
                    stride: 1,
                },
                head: HeadSpec {
                    pooling: HeadPooling::GlobalAvg,
                    hidden: vec![0],
                    dropout: 0.0,
                },
                activation: Activation::Relu,
                batch_norm: true,
                se_reduction: 4,
            },
            // Small images (28x28, 32x32) under a ~1 ms batch-1 latency
            // target on one CPU thread: every block kind, widths and depths
            // sized so most samples land within 0.5x-2x of 1 ms
            // (`nas space latency --preset small`; see docs/latency.md).
            "small" => SearchSpace {
                name: "small".into(),
                ops: BlockOp::ALL.to_vec(),
                channels: vec![16, 24, 32, 48, 64],
                kernels: vec![3, 5],
                depth: DepthRange { min: 3, max: 7 },
                downsample_at: vec![0.2, 0.6],
                stem: StemSpec {
                    channels: vec![16, 24, 32],
                    kernel: 3,
                    stride: 1,
                },
                head: HeadSpec {
                    pooling: HeadPooling::GlobalAvg,
                    hidden: vec![0, 64],
                    dropout: 0.1,
                },
                activation: Activation::Relu,
                batch_norm: true,
                se_reduction: 4,
            },
            // Plain conv / pool stacks with a dense head, LeNet / VGG style.
            "classic" => SearchSpace {
                name: "classic".into(),
                ops: vec![BlockOp::Conv, BlockOp::Pool],
                channels: vec![16, 32, 64, 128],
                kernels: vec![3, 5],
                depth: DepthRange { min: 2, max: 8 },
                downsample_at: vec![0.25, 0.5, 0.75],
                stem: StemSpec {
                    channels: vec![16, 32],
                    kernel: 3,
                    stride: 1,
                },
                head: HeadSpec {
                    pooling: HeadPooling::Flatten,
                    hidden: vec![0, 64, 128, 256],
                    dropout: 0.5,
                },
                activation: Activation::Relu,
                batch_norm: false,
                se_reduction: 4,
            },
            // Separable, squeeze-and-excitation and residual blocks, MobileNet style.
            "mobile" => SearchSpace {
                name: "mobile".into(),
                ops: vec![BlockOp::Separable, BlockOp::Se, BlockOp::Residual],
                channels: vec![16, 24, 32, 48, 64, 96],
                kernels: vec![3, 5, 7],
                depth: DepthRange { min: 3, max: 10 },
                downsample_at: vec![0.2, 0.45, 0.7],
                stem: StemSpec {
                    channels: vec![16, 24, 32],
                    kernel: 3,
                    stride: 1,
                },
                head: HeadSpec {
                    pooling: HeadPooling::GlobalAvg,
                    hidden: vec![0],
                    dropout: 0.2,
                },
                activation: Activation::Relu6,
                batch_norm: true,
                se_reduction: 4,
            },
            // Every block kind.
            "full" => SearchSpace {
                name: "full".into(),
                ops: BlockOp::ALL.to_vec(),
                channels: vec![16, 32, 48, 64, 96, 128],
                kernels: vec![3, 5],
                depth: DepthRange { min: 2, max: 12 },
                downsample_at: vec![0.33, 0.67],
                stem: StemSpec {
                    channels: vec![16, 32, 64],
                    kernel: 3,
                    stride: 1,
                },
                head: HeadSpec {
                    pooling: HeadPooling::GlobalAvg,
                    hidden: vec![0, 128],
                    dropout: 0.2,
                },
                activation: Activation::Relu,
                batch_norm: true,
                se_reduction: 4,
            },
            other => return Err(SpaceError::UnknownPreset(other.to_owned())),
        };
        Ok(space)
    }

    /// Reads and checks a search space from JSON.
    pub fn from_json(json: &str) -> Result<Self, SpaceError> {
        let space: SearchSpace =
            from_json_with_path(json).map_err(|(path, message)| SpaceError::Field {
                field: path,
                message,
            })?;
        space.check()?;
        Ok(space)
    }

    /// Checks that the space is usable: non-empty choices, sizes in range.
    pub fn check(&self) -> Result<(), SpaceError> {
        if self.ops.is_empty() {
            return Err(SpaceError::field(
                "ops",
                "at least one block kind is needed",
            ));
        }
        check_choices("channels", &self.channels, 1, MAX_CHANNELS)?;
        check_choices("kernels", &self.kernels, 1, MAX_KERNEL)?;
        if let Some(k) = self.kernels.iter().find(|k| *k % 2 == 0) {
            return Err(SpaceError::field(
                "kernels",
                format!("kernel {k} must be odd so \"same\" padding is symmetric"),
            ));
        }
        if self.depth.min == 0 {
            return Err(SpaceError::field("depth.min", "must be at least 1"));
        }
        if self.depth.max < self.depth.min {
            return Err(SpaceError::field("depth.max", "must be at least depth.min"));
        }
        if self.depth.max > MAX_DEPTH {
            return Err(SpaceError::field(
                "depth.max",
                format!("must be at most {MAX_DEPTH}"),
            ));
        }
        if let Some(f) = self
            .downsample_at
            .iter()
            .find(|f| !(f.is_finite() && **f > 0.0 && **f < 1.0))
        {
            return Err(SpaceError::field(
                "downsample_at",
                format!("{f} is not a relative depth in (0, 1)"),
            ));
        }
        check_choices("stem.channels", &self.stem.channels, 1, MAX_CHANNELS)?;
        if !(1..=MAX_KERNEL).contains(&self.stem.kernel) {
            return Err(SpaceError::field(
                "stem.kernel",
                format!("must be in 1..={MAX_KERNEL}"),
            ));
        }
        if !(1..=4).contains(&self.stem.stride) {
            return Err(SpaceError::field("stem.stride", "must be in 1..=4"));
        }
        check_choices("head.hidden", &self.head.hidden, 0, 1 << 16)?;
        if !(self.head.dropout.is_finite() && (0.0..1.0).contains(&self.head.dropout)) {
            return Err(SpaceError::field("head.dropout", "must be in [0, 1)"));
        }
        let widest = self.channels.iter().copied().max().unwrap_or(1);
        if !(1..=widest).contains(&self.se_reduction) {
            return Err(SpaceError::field(
                "se_reduction",
                format!("must be between 1 and the largest channel choice ({widest})"),
            ));
        }
        Ok(())
    }

    /// The indices of the blocks that downsample when there are `n` blocks.
    pub fn downsample_indices(&self, n: usize) -> Vec<usize> {
        let mut indices: Vec<usize> = self
            .downsample_at
            .iter()
            .map(|f| ((f * n as f64).floor() as usize).min(n.saturating_sub(1)))
            .collect();
        indices.sort_unstable();
        indices.dedup();
        indices
    }
}

fn check_choices(field: &str, values: &[usize], min: usize, max: usize) -> Result<(), SpaceError> {
    if values.is_empty() {
        return Err(SpaceError::field(field, "at least one choice is needed"));
    }
    if let Some(v) = values.iter().find(|v| !(min..=max).contains(*v)) {
        return Err(SpaceError::field(
            field,
            format!("choice {v} is outside {min}..={max}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_are_valid_and_round_trip() {
        for name in PRESETS {
            let space = SearchSpace::preset(name).expect("preset");
            space.check().expect("valid");
            let json = serde_json::to_string(&space).expect("json");
            assert_eq!(SearchSpace::from_json(&json).expect("parses"), space);
        }
        let unknown = SearchSpace::preset("huge");
        assert!(matches!(unknown, Err(SpaceError::UnknownPreset(_))));
        let message = unknown.err().map(|e| e.to_string()).unwrap_or_default();
        for name in PRESETS {
            assert!(message.contains(name), "{message} lacks {name}");
        }
    }

    #[test]
    fn bad_spaces_name_the_field() {
        let base = serde_json::to_value(SearchSpace::preset("micro").expect("micro")).expect("v");
        let with = |pointer: &str, value: serde_json::Value| {
            let mut v = base.clone();
            *v.pointer_mut(pointer).expect("field exists") = value;
            SearchSpace::from_json(&v.to_string()).expect_err("invalid")
        };
        let field_of = |e: SpaceError| match e {
            SpaceError::Field { field, .. } => field,
            other => panic!("{other}"),
        };
        assert_eq!(
            field_of(with("/channels", serde_json::json!([]))),
            "channels"
        );
        assert_eq!(
            field_of(with("/kernels", serde_json::json!([4]))),
            "kernels"
        );
        assert_eq!(
            field_of(with("/depth/max", serde_json::json!(0))),
            "depth.max"
        );
        assert_eq!(
            field_of(with("/downsample_at", serde_json::json!([1.5]))),
            "downsample_at"
        );
        assert_eq!(
            field_of(with("/ops/0", serde_json::json!("warp"))),
            "ops[0]"
        );
    }

    #[test]
    fn downsample_indices_spread_over_depth() {
        let space = SearchSpace::preset("classic").expect("classic");
        assert_eq!(space.downsample_indices(8), vec![2, 4, 6]);
        assert_eq!(space.downsample_indices(2), vec![0, 1]);
        assert_eq!(space.downsample_indices(1), vec![0]);
    }
}
