//! Tensor operations dfdx 0.13 lacks on stable Rust, written on its public API.
//!
//! Every op takes and returns dfdx tensors with runtime (`usize`) shapes and,
//! when the input carries an [`OwnedTape`](dfdx::tensor::OwnedTape), records its
//! backward pass with `Tape::add_backward_op`, so the ops mix freely with
//! dfdx's own (`matmul`, `relu`, `concat_along`, ...). They are generic over
//! [`Real`] so the gradient checks run in `f64`.
//!
//! - [`conv2d`]: 2-D convolution with stride, asymmetric padding, dilation
//!   and groups (depthwise included), as im2col plus GEMM, parallel over the
//!   batch.
//! - [`max_pool2d`], [`avg_pool2d`]: pooling; max routes the gradient to one
//!   maximum per window (the first), avg excludes padding from the count.
//! - [`batch_norm2d`]: batch norm over `N, H, W` with running statistics and
//!   train/eval modes.
//! - [`lrn`]: local response normalisation across channels.

#[cfg(test)]
mod gradcheck;

use dfdx::prelude::{Cpu, Tensor};

mod conv;
mod gemm;
mod norm;
mod pool;

pub use conv::{conv2d, Conv2dSpec};
pub use norm::{batch_norm2d, lrn, BatchNormMode, LrnSpec, RunningStats, BATCH_NORM_EPSILON};
pub use pool::{avg_pool2d, max_pool2d, Pool2dSpec};

/// The float types our ops run in: `f32` for training, `f64` for gradient checks.
pub trait Real:
    dfdx::dtypes::Dtype + num_traits::Float + std::iter::Sum + Send + Sync + 'static
{
}
impl Real for f32 {}
impl Real for f64 {}

/// A batch of feature maps, `N x C x H x W`, contiguous.
pub type Map<E, T> = Tensor<(usize, usize, usize, usize), E, Cpu, T>;
/// A batch of vectors, `N x F`.
pub type Flat<E, T> = Tensor<(usize, usize), E, Cpu, T>;
/// A parameter or buffer stored flat, reshaped by the op that uses it.
pub type Vector<E> = Tensor<(usize,), E, Cpu>;

/// A parameter for one forward pass: the dfdx tensor (its id keys the
/// gradient; dfdx's ops use it) and the same values shared read-only with our
/// ops, so they never copy weights out of dfdx (which has no public slice view).
#[derive(Debug, Clone)]
pub struct Param<E: Real> {
    /// The tensor dfdx sees.
    pub tensor: Vector<E>,
    /// The same values.
    pub values: std::sync::Arc<Vec<E>>,
}

impl<E: Real> Param<E> {
    /// A parameter holding `values`.
    pub fn new(device: &Cpu, values: Vec<E>) -> Self {
        use dfdx::tensor::TensorFromVec;
        let tensor = device.tensor_from_vec(values.clone(), (values.len(),));
        Self {
            tensor,
            values: std::sync::Arc::new(values),
        }
    }
}

/// Copies a tensor's elements out (a memcpy for the contiguous tensors we make).
pub fn to_vec<S: dfdx::shapes::Shape, E: Real, T>(t: &Tensor<S, E, Cpu, T>) -> Vec<E> {
    use dfdx::shapes::HasShape;
    let mut out = vec![E::zero(); t.shape().num_elements()];
    t.copy_into(&mut out);
    out
}

/// Moves a tensor's gradient buffer out of `grads` (leaving an empty one),
/// so another gradient can be borrowed mutably while it is read. (A macro:
/// dfdx's `Tensorlike` bound cannot be named outside dfdx.)
macro_rules! take_grad {
    ($grads:expr, $t:expr) => {
        std::mem::take(&mut **$grads.get_or_alloc_mut($t)?)
    };
}

/// Puts a gradient taken with `take_grad!` back.
macro_rules! restore_grad {
    ($grads:expr, $t:expr, $value:expr) => {{
        **$grads.get_or_alloc_mut($t)? = $value;
        Ok(())
    }};
}

pub(crate) use {restore_grad, take_grad};

/// Converts an `f64` constant into the op's float type.
fn real<E: Real>(v: f64) -> E {
    E::from(v).unwrap_or_else(E::zero)
}
