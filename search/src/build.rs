//! Short constructors for layers, used by the zoo and the search-space
//! decoder, e.g. `conv(64, 3).stride(2).same().bn().act(Activation::Relu)`.

use crate::arch::{
    Activation, ActivationLayer, Branches, Conv, Dense, Dropout, Flatten, GlobalAvgPool, Layer,
    Lrn, Padding, Pair, Pool, PoolOp, Residual, SeparableConv, Shortcut, SqueezeExcitation,
};

/// A `k x k` convolution with defaults: stride 1, valid padding, bias, no BN,
/// no activation.
pub fn conv(filters: usize, kernel: usize) -> Conv {
    Conv {
        filters,
        kernel: Pair::Square(kernel),
        stride: Pair::Square(1),
        padding: Padding::VALID,
        dilation: Pair::Square(1),
        groups: 1,
        bias: true,
        batch_norm: false,
        activation: Activation::None,
    }
}

/// The builder methods convolutions share (both kinds have these fields).
macro_rules! conv_builders {
    ($kind:ident) => {
        impl $kind {
            /// Sets the stride.
            pub fn stride(mut self, stride: usize) -> Self {
                self.stride = Pair::Square(stride);
                self
            }
            /// Uses `"same"` padding.
            pub fn same(mut self) -> Self {
                self.padding = Padding::SAME;
                self
            }
            /// Adds batch norm and drops the (then redundant) bias.
            pub fn bn(mut self) -> Self {
                self.batch_norm = true;
                self.bias = false;
                self
            }
            /// Sets the activation.
            pub fn act(mut self, a: Activation) -> Self {
                self.activation = a;
                self
            }
        }

        impl From<$kind> for Layer {
            fn from(c: $kind) -> Self {
                Layer::$kind(c)
            }
        }
    };
}

conv_builders!(Conv);
conv_builders!(SeparableConv);

impl Conv {
    /// Uses symmetric explicit padding.
    pub fn pad(mut self, p: usize) -> Self {
        self.padding = Padding::explicit(p);
        self
    }
    /// Sets the number of groups (`groups == channels` is depthwise).
    pub fn groups(mut self, groups: usize) -> Self {
        self.groups = groups;
        self
    }
}

/// A depthwise-separable convolution with defaults as [`conv`]'s.
pub fn separable(filters: usize, kernel: usize) -> SeparableConv {
    SeparableConv {
        filters,
        kernel: Pair::Square(kernel),
        stride: Pair::Square(1),
        padding: Padding::VALID,
        dilation: Pair::Square(1),
        depth_multiplier: 1,
        bias: true,
        batch_norm: false,
        activation: Activation::None,
    }
}

/// A max pool with stride and `"valid"` padding.
pub fn max_pool(kernel: usize, stride: usize) -> Pool {
    Pool {
        op: PoolOp::Max,
        kernel: Pair::Square(kernel),
        stride: Pair::Square(stride),
        padding: Padding::VALID,
    }
}

/// An average pool with stride and `"valid"` padding.
pub fn avg_pool(kernel: usize, stride: usize) -> Pool {
    Pool {
        op: PoolOp::Avg,
        ..max_pool(kernel, stride)
    }
}

impl Pool {
    /// Uses `"same"` padding.
    pub fn same(mut self) -> Self {
        self.padding = Padding::SAME;
        self
    }
    /// Uses symmetric explicit padding.
    pub fn pad(mut self, p: usize) -> Self {
        self.padding = Padding::explicit(p);
        self
    }
}

impl From<Pool> for Layer {
    fn from(p: Pool) -> Self {
        Layer::Pool(p)
    }
}

/// A dense layer with bias and the given activation.
pub fn dense(units: usize, activation: Activation) -> Layer {
    Layer::Dense(Dense {
        units,
        bias: true,
        activation,
    })
}

/// Dropout with the given rate.
pub fn dropout(rate: f64) -> Layer {
    Layer::Dropout(Dropout { rate })
}

/// Global average pooling.
pub fn global_avg_pool() -> Layer {
    Layer::GlobalAvgPool(GlobalAvgPool {})
}

/// Flatten.
pub fn flatten() -> Layer {
    Layer::Flatten(Flatten {})
}

/// A standalone activation.
pub fn activation(function: Activation) -> Layer {
    Layer::Activation(ActivationLayer { function })
}

/// Local response normalisation with AlexNet's constants.
pub fn lrn() -> Layer {
    Layer::Lrn(Lrn::default())
}

/// Squeeze-and-excitation with the given reduction.
pub fn se(reduction: usize) -> Layer {
    Layer::Se(SqueezeExcitation { reduction })
}

/// A residual block.
pub fn residual(body: Vec<Layer>, shortcut: Shortcut, activation_after: Activation) -> Layer {
    Layer::Residual(Residual {
        body,
        shortcut,
        activation_after,
    })
}

/// Parallel branches concatenated on channels.
pub fn branches(branches: Vec<Vec<Layer>>) -> Layer {
    Layer::Branches(Branches { branches })
}

/// `round(channels * width)`, at least 1: the width multiplier of the zoo.
pub fn scale_channels(channels: usize, width: f64) -> usize {
    ((channels as f64 * width).round() as usize).max(1)
}
