//! 2-D convolution: the spec, the fused convolution block (convolution,
//! batch norm, activation as one op) and the kernels behind it: im2col +
//! GEMM parallel over runs of images ([`im2col`], with stride-2 inputs split
//! into [`phases`] and weight gradients from [`pixel_major`] operands), and
//! the direct depthwise kernels of [`super::depthwise`] and
//! [`super::depthwise_cl`], chosen per call in [`kernels`].

use dfdx::prelude::*;

use search::arch::Activation;

use super::norm::{
    batch_norm_backward_in_place, batch_norm_forward, BatchNormArgs, BatchNormSaved,
};
use super::{act, add_into, release_grad, take_grad, to_vec, Map, Param, Real};

mod geometry;
mod im2col;
mod kernels;
mod phases;
mod pixel_major;

pub(in crate::engine::ops) use geometry::Geometry;
pub(in crate::engine::ops) use kernels::{ConvKernel, Forward, Kernels};
pub(in crate::engine::ops) use pixel_major::transpose_into;

/// The geometry of a convolution. Weights are `out x in/groups x kh x kw`,
/// stored flat; the bias (if any) has `out` elements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conv2dSpec {
    /// Input channels.
    pub in_channels: usize,
    /// Output channels (filters).
    pub out_channels: usize,
    /// Kernel height and width.
    pub kernel: (usize, usize),
    /// Stride (vertical, horizontal).
    pub stride: (usize, usize),
    /// Dilation (vertical, horizontal).
    pub dilation: (usize, usize),
    /// Zero padding above, below, left and right.
    pub padding: [usize; 4],
    /// Channel groups: `in_channels` for a depthwise convolution.
    pub groups: usize,
}

impl Conv2dSpec {
    /// A `1 x 1` convolution from `inputs` to `outputs` channels with
    /// `stride`, no padding, no groups (separable convs' pointwise half,
    /// projection shortcuts).
    pub fn pointwise(inputs: usize, outputs: usize, stride: (usize, usize)) -> Self {
        Self {
            in_channels: inputs,
            out_channels: outputs,
            kernel: (1, 1),
            stride,
            dilation: (1, 1),
            padding: [0; 4],
            groups: 1,
        }
    }

    /// Output height and width for an `h x w` input. The caller validated the
    /// geometry (the `search` crate does), so the window fits.
    pub fn output_size(&self, h: usize, w: usize) -> (usize, usize) {
        let [top, bottom, left, right] = self.padding;
        let span = |d: usize, k: usize| d * (k - 1) + 1;
        let oh = (h + top + bottom - span(self.dilation.0, self.kernel.0)) / self.stride.0 + 1;
        let ow = (w + left + right - span(self.dilation.1, self.kernel.1)) / self.stride.1 + 1;
        (oh, ow)
    }

    /// Number of weights.
    pub fn weight_len(&self) -> usize {
        self.out_channels * self.in_channels / self.groups * self.kernel.0 * self.kernel.1
    }

    /// Fan-in of one output unit (for initialisation).
    pub fn fan_in(&self) -> usize {
        self.in_channels / self.groups * self.kernel.0 * self.kernel.1
    }

    /// Whether this is a plain `1 x 1` convolution, where the image itself is
    /// the im2col matrix.
    fn is_pointwise(&self) -> bool {
        self.kernel == (1, 1) && self.stride == (1, 1) && self.padding == [0; 4]
    }
}

/// `y = conv(x, weight) + bias` for `x: N x C x H x W`.
///
/// `input_grad: false` skips the input's gradient (the first layer, whose
/// input is data). Panics if `x` has a channel count other than the spec's.
pub fn conv2d<E: Real, T: Tape<E, Cpu>>(
    x: Map<E, T>,
    weight: &Param<E>,
    bias: Option<&Param<E>>,
    spec: Conv2dSpec,
    input_grad: bool,
) -> Map<E, T> {
    conv_block(x, weight, bias, spec, input_grad, None, Activation::None)
}

/// What a fused convolution keeps between its backward steps: the
/// convolution's own output when a batch norm or an activation follows.
enum Epilogue<E> {
    /// Nothing follows: the output is the convolution's.
    Plain,
    /// An activation on the convolution's output `z` (kept).
    Act(Vec<E>, Activation),
    /// Batch norm on `z` (kept), then an activation.
    Norm(Vec<E>, BatchNormSaved<E>, Activation),
}

impl<E: Real> Epilogue<E> {
    /// Batch norm and/or the activation on the convolution's output `zs`
    /// (`dims`: batch, channels, pixels): the block's output, and what its
    /// backward pass keeps (with tape `T`).
    fn forward<T: Tape<E, Cpu>>(
        zs: Vec<E>,
        dims: (usize, usize, usize),
        batch_norm: Option<BatchNormArgs<'_, E>>,
        act: Activation,
    ) -> (Vec<E>, Self) {
        match batch_norm {
            Some(bn) => {
                let (ys, saved) = batch_norm_forward(&zs, dims, bn, act);
                (ys, Self::Norm(kept_for_backward::<T, E>(zs), saved, act))
            }
            None if act != Activation::None => {
                let ys = act::forward(&zs, act);
                (ys, Self::Act(kept_for_backward::<T, E>(zs), act))
            }
            None => (zs, Self::Plain),
        }
    }

    /// Turns the block's output gradient `dy` into the convolution's, in
    /// place; with a batch norm, returns its gamma and beta gradients.
    fn backward_in_place(
        &self,
        dy: &mut [E],
        dims: (usize, usize, usize),
    ) -> Option<(Vec<E>, Vec<E>)> {
        match self {
            Self::Plain => None,
            Self::Act(zs, act) => {
                act::backward_in_place(dy, zs, *act);
                None
            }
            Self::Norm(zs, saved, act) => {
                Some(batch_norm_backward_in_place(dy, zs, dims, saved, *act))
            }
        }
    }
}

/// `zs` if a backward pass will read it, else nothing (inference frees it now).
fn kept_for_backward<T: Tape<E, Cpu>, E: Real>(zs: Vec<E>) -> Vec<E> {
    if T::OWNS_TAPE {
        zs
    } else {
        Vec::new()
    }
}

/// `act(batch_norm(conv(x, weight) + bias))`, each part optional, as one op:
/// the convolution's output stays a plain buffer between the parts, and the
/// backward pass turns the output gradient into the convolution's output
/// gradient in place, so the block costs one output tensor and one gradient
/// instead of three of each. Arguments as [`conv2d`].
pub fn conv_block<E: Real, T: Tape<E, Cpu>>(
    x: Map<E, T>,
    weight: &Param<E>,
    bias: Option<&Param<E>>,
    spec: Conv2dSpec,
    input_grad: bool,
    batch_norm: Option<BatchNormArgs<'_, E>>,
    act: Activation,
) -> Map<E, T> {
    let (n, c, h, w) = *x.shape();
    let geo = Geometry::new(spec, c, h, w);
    assert_eq!(
        weight.values.len(),
        spec.weight_len(),
        "conv2d: weight size"
    );
    let (x, mut tape) = x.split_tape();
    let xs = to_vec(&x);
    let ws = weight.values.clone();
    let bs = bias.map(|b| b.values.clone());
    let kernels = Kernels::choose(&geo, n);
    let mut zs = vec![E::zero(); n * geo.out_len()];
    let args = Forward {
        n,
        xs: &xs,
        ws: &ws,
        bias: bs.as_deref().map(Vec::as_slice),
    };
    kernels.forward_into(&geo, args, &mut zs);
    let dims = (n, spec.out_channels, geo.oh * geo.ow);
    let norm_ghosts = batch_norm
        .as_ref()
        .map(|bn| (bn.gamma.tensor.ghost(), bn.beta.tensor.ghost()));
    let (ys, epilogue) = Epilogue::forward::<T>(zs, dims, batch_norm, act);
    let y = x
        .device()
        .tensor_from_vec(ys, (n, spec.out_channels, geo.oh, geo.ow));
    if T::OWNS_TAPE {
        let (xg, wg, bg, yg) = (
            x.ghost(),
            weight.tensor.ghost(),
            bias.map(|b| b.tensor.ghost()),
            y.ghost(),
        );
        tape.add_backward_op(move |grads| {
            let mut dy = take_grad!(grads, &yg);
            if let Some((dgamma, dbeta)) = epilogue.backward_in_place(&mut dy, dims) {
                if let Some((gg, bg)) = &norm_ghosts {
                    add_into(grads.get_or_alloc_mut(gg)?, &dgamma);
                    add_into(grads.get_or_alloc_mut(bg)?, &dbeta);
                }
            }
            drop(epilogue);
            let (dw, db) = kernels.weight_grads(&geo, n, &xs, &dy);
            add_into(grads.get_or_alloc_mut(&wg)?, &dw);
            if let Some(bg) = &bg {
                add_into(grads.get_or_alloc_mut(bg)?, &db);
            }
            if input_grad {
                kernels.input_grads(&geo, &ws, &dy, grads.get_or_alloc_mut(&xg)?);
            }
            release_grad(dy)
        });
    }
    y.put_tape(tape)
}
