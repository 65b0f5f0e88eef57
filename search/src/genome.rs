//! What a search space decided for one candidate: the block kinds, one
//! block's decisions and the whole genotype. A leaf: it depends on nothing
//! else in this crate, so an [`crate::Architecture`] can carry its genotype
//! without tying the architecture type to spaces, decoding or validation
//! (which live in [`crate::genotype`] and [`crate::space`]).

use std::fmt;

use serde::{Deserialize, Serialize};

/// The kinds of block a search space may contain.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BlockOp {
    /// `k x k` convolution, batch norm, activation.
    Conv,
    /// Depthwise-separable `k x k` convolution, batch norm, activation.
    Separable,
    /// Inception module: 1x1 | 1x1 -> kxk | 1x1 -> (k+2)x(k+2) | 3x3 max-pool -> 1x1.
    Inception,
    /// Two `k x k` convolutions with an identity or projection shortcut.
    Residual,
    /// Convolution followed by squeeze-and-excitation.
    Se,
    /// `k x k` max pooling (channels unchanged).
    Pool,
}

impl BlockOp {
    /// Every block kind.
    pub const ALL: [BlockOp; 6] = [
        BlockOp::Conv,
        BlockOp::Separable,
        BlockOp::Inception,
        BlockOp::Residual,
        BlockOp::Se,
        BlockOp::Pool,
    ];

    /// The JSON name.
    pub const fn name(self) -> &'static str {
        match self {
            BlockOp::Conv => "conv",
            BlockOp::Separable => "separable",
            BlockOp::Inception => "inception",
            BlockOp::Residual => "residual",
            BlockOp::Se => "se",
            BlockOp::Pool => "pool",
        }
    }

    /// Whether the block's output channels are a decision (pooling keeps its
    /// input's channels).
    pub const fn has_channels(self) -> bool {
        !matches!(self, BlockOp::Pool)
    }
}

/// The decisions for one block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlockGene {
    /// The kind of block.
    pub op: BlockOp,
    /// Output channels (kept, though unused, by pooling blocks so that
    /// changing the op is a single decision).
    pub channels: usize,
    /// Kernel size.
    pub kernel: usize,
}

impl fmt::Display for BlockGene {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.op.has_channels() {
            write!(
                f,
                "{} {}x{} {}",
                self.op.name(),
                self.kernel,
                self.kernel,
                self.channels
            )
        } else {
            write!(f, "{} {}x{}", self.op.name(), self.kernel, self.kernel)
        }
    }
}

/// Every decision a search space made for one candidate.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Genotype {
    /// Output channels of the stem convolution.
    pub stem_channels: usize,
    /// The blocks, in order.
    pub blocks: Vec<BlockGene>,
    /// Units of the head's hidden dense layer; 0 for none.
    #[serde(default)]
    pub head_hidden: usize,
}

impl Genotype {
    /// A one-line summary such as `stem 16 | conv 3x3 32, pool 3x3 | head 0`.
    pub fn summary(&self) -> String {
        let blocks: Vec<String> = self.blocks.iter().map(ToString::to_string).collect();
        format!(
            "stem {} | {} | head {}",
            self.stem_channels,
            blocks.join(", "),
            self.head_hidden
        )
    }
}
