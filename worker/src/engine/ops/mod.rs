//! Tensor operations dfdx 0.13 lacks on stable Rust, written on its public API.
//!
//! Every op takes and returns dfdx tensors with runtime (`usize`) shapes and,
//! when the input carries an [`OwnedTape`](dfdx::tensor::OwnedTape), records its
//! backward pass with `Tape::add_backward_op`, so the ops mix freely with
//! dfdx's own (`matmul`, `relu`, `concat_along`, ...). They are generic over
//! [`Real`] so the gradient checks run in `f64`.
//!
//! - [`conv2d`]: 2-D convolution with stride, asymmetric padding, dilation
//!   and groups, as im2col plus GEMM parallel over the batch; depthwise
//!   convolutions as direct loops parallel over feature-map planes.
//! - [`max_pool2d`], [`avg_pool2d`]: pooling; max routes the gradient to one
//!   maximum per window (the first), avg excludes padding from the count.
//! - [`conv_block`]: a convolution fused with the batch norm and the
//!   activation that follow it.
//! - [`batch_norm2d`]: batch norm over `N, H, W` with running statistics and
//!   train/eval modes, followed by an activation.
//! - [`add_activate`]: a residual sum and its activation.
//! - [`global_avg_pool`], [`channel_scale`]: the squeeze and the gating of a
//!   squeeze-and-excitation block.
//! - [`lrn`]: local response normalisation across channels.
//! - [`infer`]: the same kernels' forward halves on plain slices, for the
//!   inference path (`crate::net::inference`).

#[cfg(test)]
mod gradcheck;
#[cfg(test)]
mod simd_tests;

use dfdx::prelude::{Cpu, Tensor};

mod act;
mod conv;
mod depthwise;
mod depthwise_cl;
mod gemm;
pub(crate) mod infer;
mod norm;
mod pool;
mod residual;
mod se;

pub use act::activate;
pub use conv::{conv2d, conv_block, Conv2dSpec};
pub use norm::{
    batch_norm2d, lrn, BatchNormArgs, BatchNormMode, LrnSpec, RunningStats, BATCH_NORM_EPSILON,
};
pub use pool::{avg_pool2d, global_avg_pool, max_pool2d, Pool2dSpec};
pub use residual::add_activate;
pub use se::channel_scale;

/// The float types our ops run in: `f32` for training, `f64` for gradient checks.
pub trait Real:
    dfdx::dtypes::Dtype + num_traits::Float + std::iter::Sum + Send + Sync + 'static
{
    /// This thread's reusable scratch buffer of this type (see [`with_scratch`]).
    fn scratch() -> &'static std::thread::LocalKey<std::cell::Cell<Vec<Self>>>;

    /// `e^self` as the activations use it: in `f32` a branch-free
    /// polynomial (relative error about 1e-7) that vectorises inside loops,
    /// where libm's `expf` is one call per element; in `f64` (the gradient
    /// checks) the exact `exp`.
    fn activation_exp(self) -> Self;
}

thread_local! {
    static SCRATCH_F32: std::cell::Cell<Vec<f32>> = const { std::cell::Cell::new(Vec::new()) };
    static SCRATCH_F64: std::cell::Cell<Vec<f64>> = const { std::cell::Cell::new(Vec::new()) };
}

impl Real for f32 {
    fn scratch() -> &'static std::thread::LocalKey<std::cell::Cell<Vec<Self>>> {
        &SCRATCH_F32
    }
    #[inline(always)]
    fn activation_exp(self) -> Self {
        act::exp_f32(self)
    }
}
impl Real for f64 {
    fn scratch() -> &'static std::thread::LocalKey<std::cell::Cell<Vec<Self>>> {
        &SCRATCH_F64
    }
    #[inline(always)]
    fn activation_exp(self) -> Self {
        self.exp()
    }
}

/// Largest scratch buffer a thread keeps between ops, elements (64 MiB of
/// `f32`); a larger one is freed after use.
const SCRATCH_KEPT: usize = 16 << 20;

/// Calls `f` with `len` elements of this thread's scratch memory, reused
/// from op to op and step to step instead of allocated (and page-faulted in)
/// afresh. The contents are whatever the last user left: `f` must write
/// before it reads. A nested call (a rayon task stolen while `f` waits)
/// gets a buffer of its own.
pub(crate) fn with_scratch<E: Real, R>(len: usize, f: impl FnOnce(&mut [E]) -> R) -> R {
    let mut buf = E::scratch().with(std::cell::Cell::take);
    if buf.len() < len {
        buf.resize(len, E::zero());
    }
    let result = f(&mut buf[..len]);
    if buf.len() <= SCRATCH_KEPT {
        E::scratch().with(|cell| {
            // Keep the larger of this buffer and one a nested call put back.
            let other = cell.take();
            cell.set(if other.len() > buf.len() { other } else { buf });
        });
    }
    result
}

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

/// Ends an op's backward pass with its output's gradient, taken with
/// `take_grad!`, freed rather than put back: the op that made a tensor runs
/// its backward after every op that used it, so nothing reads that gradient
/// again, and freeing it now keeps the backward pass's peak memory near the
/// forward pass's instead of holding every activation's gradient to the end.
pub(crate) fn release_grad<E>(dy: Vec<E>) -> Result<(), dfdx::tensor::CpuError> {
    drop(dy);
    Ok(())
}

pub(crate) use take_grad;

/// Runs `f` compiled for the vector instructions [`simd_path`] names (the
/// widest this CPU has: AVX-512 or AVX2 + FMA, detected at run time), so the
/// loops inlined into it vectorise beyond the portable x86-64 baseline the
/// binary is built for. The closure must be `#[inline(always)]` (or
/// trivially inlined) for its body to be compiled for that width.
#[inline(always)]
pub(crate) fn simd<R>(f: impl FnOnce() -> R) -> R {
    dispatch_arch().dispatch(f)
}

/// The vector instruction set our own loops run with (the `gemm` crate's
/// matrix products dispatch on their own).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimdPath {
    /// x86-64-v4: AVX-512 (F, BW, CD, DQ, VL) with the v3 set.
    Avx512,
    /// x86-64-v3: AVX2, FMA, BMI and friends.
    Avx2,
    /// The portable baseline (SSE2 on x86-64): what a CPU without AVX2 runs.
    Scalar,
}

impl SimdPath {
    /// Its name in reports and in `NAS_SIMD`: `avx512`, `avx2` or `scalar`.
    pub fn name(self) -> &'static str {
        match self {
            SimdPath::Avx512 => "avx512",
            SimdPath::Avx2 => "avx2",
            SimdPath::Scalar => "scalar",
        }
    }
}

/// The path [`simd`] dispatches to in this process, chosen once: the widest
/// the CPU supports, or a narrower one named by `NAS_SIMD` (`scalar`,
/// `avx2`), which is how the paths of older CPUs are run and tested on a
/// newer one. A wider path than the CPU has is never taken.
pub fn simd_path() -> SimdPath {
    arch_path(dispatch_arch())
}

fn arch_path(arch: pulp::Arch) -> SimdPath {
    #[cfg(target_arch = "x86_64")]
    {
        match arch {
            pulp::Arch::V4(_) => SimdPath::Avx512,
            pulp::Arch::V3(_) => SimdPath::Avx2,
            _ => SimdPath::Scalar,
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = arch;
        SimdPath::Scalar
    }
}

/// The detected dispatch target, narrowed by `NAS_SIMD`, once per process.
#[inline(always)]
fn dispatch_arch() -> pulp::Arch {
    static ARCH: std::sync::OnceLock<pulp::Arch> = std::sync::OnceLock::new();
    *ARCH.get_or_init(|| {
        let detected = pulp::Arch::new();
        let wanted = std::env::var("NAS_SIMD").unwrap_or_default();
        narrowed(detected, &wanted)
    })
}

/// `detected`, or the narrower path `wanted` names (unknown names keep it).
fn narrowed(detected: pulp::Arch, wanted: &str) -> pulp::Arch {
    match (
        wanted.trim().to_ascii_lowercase().as_str(),
        arch_path(detected),
    ) {
        ("scalar", _) => pulp::Arch::Scalar,
        #[cfg(target_arch = "x86_64")]
        ("avx2", SimdPath::Avx512) => pulp::x86::V3::try_new().map_or(detected, pulp::Arch::V3),
        _ => detected,
    }
}

/// `dst += src`, element-wise, in parallel.
pub(crate) fn add_into<E: Real>(dst: &mut [E], src: &[E]) {
    use rayon::prelude::*;
    const CHUNK: usize = 1 << 14;
    dst.par_chunks_mut(CHUNK)
        .zip(src.par_chunks(CHUNK))
        .for_each(|(d, s)| simd(|| d.iter_mut().zip(s).for_each(|(d, &s)| *d += s)));
}

/// `f(dst[i], src[i * step])` for every `i`, on a slice cut to what it reads
/// (no bounds checks in the loop, so it vectorises).
#[inline(always)]
pub(crate) fn strided_apply<E: Real>(src: &[E], step: usize, dst: &mut [E], f: impl Fn(&mut E, E)) {
    let Some(last) = dst.len().checked_sub(1) else {
        return;
    };
    let src = &src[..last * step + 1];
    if step == 1 {
        dst.iter_mut().zip(src).for_each(|(d, &v)| f(d, v));
    } else if step == 2 {
        let (body, tail) = dst.split_at_mut(last);
        body.iter_mut()
            .zip(src.chunks_exact(2))
            .for_each(|(d, pair)| f(d, pair[0]));
        f(&mut tail[0], src[2 * last]);
    } else {
        dst.iter_mut()
            .enumerate()
            .for_each(|(i, d)| f(d, src[i * step]));
    }
}

/// The output columns `lo..hi` of a `out_w`-wide output whose input column
/// `ox * stride + offset` lies inside a `w`-wide input (a window tap's valid
/// span, for convolutions and pooling alike).
pub(crate) fn valid_columns(
    offset: isize,
    stride: usize,
    w: usize,
    out_w: usize,
) -> (usize, usize) {
    let (sw, w) = (stride as isize, w as isize);
    let lo = if offset >= 0 {
        0
    } else {
        (-offset + sw - 1) / sw
    };
    let hi = if w - 1 - offset < 0 {
        0
    } else {
        ((w - 1 - offset) / sw + 1).min(out_w as isize)
    };
    (lo.min(hi) as usize, hi as usize)
}

/// Converts an `f64` constant into the op's float type.
fn real<E: Real>(v: f64) -> E {
    E::from(v).unwrap_or_else(E::zero)
}
