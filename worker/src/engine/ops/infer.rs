//! The forward kernels of the inference path on plain slices: no tape and no
//! tensors, each output written into a buffer the caller planned once. They
//! are the training kernels' forward halves (one implementation of each
//! convolution), with the epilogues inference needs.

use search::arch::Activation;

use super::act;
use super::conv::{Forward, Geometry, Kernels};
use super::gemm::{matmul, MatRef};
use super::{Conv2dSpec, Real};

pub(crate) use super::act::{add_into_activated, in_place as activate_in_place};
pub(crate) use super::norm::lrn_into;
pub(crate) use super::pool::{global_avg_pool_into, pool_into};
pub(crate) use super::se::channel_scale_into;

/// `act(conv(x, weights) + bias)` for `xs: n x C x H x W` (`(h, w)` given)
/// into `ys: n x out x oh x ow`, with the kernels training would choose for
/// a batch of `n` (channels-last depthwise also at batch 1 on one thread).
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv_into<E: Real>(
    spec: Conv2dSpec,
    n: usize,
    (h, w): (usize, usize),
    xs: &[E],
    weights: &[E],
    bias: Option<&[E]>,
    activation: Activation,
    ys: &mut [E],
) {
    let geo = Geometry::new(spec, spec.in_channels, h, w);
    let args = Forward {
        n,
        xs,
        ws: weights,
        bias,
    };
    Kernels::choose_for_inference(&geo, n).forward_into(&geo, args, ys);
    act::in_place(ys, activation);
}

/// `act(x · weights + bias)` for `xs: n x inputs` and `weights: inputs x
/// units` into `ys: n x units`.
pub(crate) fn dense_into<E: Real>(
    xs: &[E],
    (n, inputs, units): (usize, usize, usize),
    weights: &[E],
    bias: Option<&[E]>,
    activation: Activation,
    ys: &mut [E],
) {
    matmul(
        ys,
        false,
        MatRef::rows(xs, n, inputs),
        MatRef::rows(weights, inputs, units),
        1,
    );
    if let Some(b) = bias {
        for row in ys.chunks_exact_mut(units.max(1)) {
            row.iter_mut().zip(b).for_each(|(y, &b)| *y += b);
        }
    }
    act::in_place(ys, activation);
}
