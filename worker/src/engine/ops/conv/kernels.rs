//! The convolution algorithms behind one trait, and the choice among them
//! for one call.

use super::geometry::Geometry;
use super::im2col::Im2colGemm;
use crate::ops::depthwise::DepthwisePlanes;
use crate::ops::depthwise_cl::DepthwiseChannelsLast;
use crate::ops::Real;

/// One convolution algorithm's three passes over a batch of `n` images
/// (`xs: n x in x h x w`, `dy` and `ys: n x out x oh x ow`, weights as
/// [`super::Conv2dSpec`] lays them out), implemented where the algorithm
/// lives: [`Im2colGemm`], [`DepthwisePlanes`], [`DepthwiseChannelsLast`]. A
/// new algorithm (Winograd, a direct kernel) is one implementation and one
/// [`Kernels`] variant.
pub(in crate::engine::ops) trait ConvKernel {
    /// The forward pass into `ys` (every element written), bias included.
    fn forward_into<E: Real>(geo: &Geometry, args: Forward<'_, E>, ys: &mut [E]);

    /// The weight and bias gradients summed over the batch, in an order
    /// that does not depend on the thread count.
    fn weight_grads<E: Real>(geo: &Geometry, n: usize, xs: &[E], dy: &[E]) -> (Vec<E>, Vec<E>);

    /// Adds the input gradient into `dx`.
    fn input_grads<E: Real>(geo: &Geometry, ws: &[E], dy: &[E], dx: &mut [E]);
}

/// What a forward pass reads: `n` images `xs`, the weights and the bias.
#[derive(Clone, Copy)]
pub(in crate::engine::ops) struct Forward<'a, E> {
    /// Images in the batch.
    pub(in crate::engine::ops) n: usize,
    /// The input, `n x in x h x w`.
    pub(in crate::engine::ops) xs: &'a [E],
    /// The weights.
    pub(in crate::engine::ops) ws: &'a [E],
    /// The bias, one per output channel, if any.
    pub(in crate::engine::ops) bias: Option<&'a [E]>,
}

/// Which kernel runs one convolution call: chosen once, so its forward and
/// backward passes always agree.
#[derive(Clone, Copy)]
pub(in crate::engine::ops) enum Kernels {
    /// [`Im2colGemm`].
    Im2col,
    /// [`DepthwisePlanes`].
    Depthwise,
    /// [`DepthwiseChannelsLast`].
    DepthwiseChannelsLast,
}

/// Calls one [`ConvKernel`] function on the kernel a [`Kernels`] names.
macro_rules! dispatch {
    ($kernels:expr, $f:ident($($arg:expr),*)) => {
        match $kernels {
            Kernels::Im2col => Im2colGemm::$f($($arg),*),
            Kernels::Depthwise => DepthwisePlanes::$f($($arg),*),
            Kernels::DepthwiseChannelsLast => DepthwiseChannelsLast::$f($($arg),*),
        }
    };
}

impl Kernels {
    /// The kernel for a training or evaluation call on `n` images.
    pub(in crate::engine::ops) fn choose(geo: &Geometry, n: usize) -> Self {
        if geo.channels_last_pays(n) {
            Self::DepthwiseChannelsLast
        } else if geo.is_depthwise() {
            Self::Depthwise
        } else {
            Self::Im2col
        }
    }

    /// [`Kernels::choose`] for the inference path: channels-last depthwise
    /// also for one image when the pool has one thread (where splitting the
    /// planes over threads gains nothing and vectors over channels do).
    pub(in crate::engine::ops) fn choose_for_inference(geo: &Geometry, n: usize) -> Self {
        if geo.channels_last_applies() && rayon::current_num_threads() == 1 {
            Self::DepthwiseChannelsLast
        } else {
            Self::choose(geo, n)
        }
    }

    /// [`ConvKernel::forward_into`] of the chosen kernel.
    pub(in crate::engine::ops) fn forward_into<E: Real>(
        self,
        geo: &Geometry,
        args: Forward<'_, E>,
        ys: &mut [E],
    ) {
        dispatch!(self, forward_into(geo, args, ys))
    }

    /// [`ConvKernel::weight_grads`] of the chosen kernel.
    pub(super) fn weight_grads<E: Real>(
        self,
        geo: &Geometry,
        n: usize,
        xs: &[E],
        dy: &[E],
    ) -> (Vec<E>, Vec<E>) {
        dispatch!(self, weight_grads(geo, n, xs, dy))
    }

    /// [`ConvKernel::input_grads`] of the chosen kernel.
    pub(super) fn input_grads<E: Real>(self, geo: &Geometry, ws: &[E], dy: &[E], dx: &mut [E]) {
        dispatch!(self, input_grads(geo, ws, dy, dx))
    }
}
