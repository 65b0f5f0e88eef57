//! Normalisations over feature maps: batch norm and local response norm.

use dfdx::prelude::*;
use rayon::prelude::*;

use search::arch::Activation;

use super::act::{with_act, ActFn};
use super::{add_into, real, release_grad, simd, take_grad, to_vec, Map, Param, Real};

/// Whether batch norm uses the batch's statistics (and updates the running
/// ones) or the running statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchNormMode {
    /// Normalise with the batch's mean and variance; update the running ones.
    Train,
    /// Normalise with the running mean and variance.
    Eval,
}

/// A batch norm layer's running statistics (not trained; saved with the weights).
#[derive(Debug, Clone, PartialEq)]
pub struct RunningStats<E> {
    /// Per-channel running mean (starts at 0).
    pub mean: Vec<E>,
    /// Per-channel running (unbiased) variance (starts at 1).
    pub var: Vec<E>,
}

impl<E: Real> RunningStats<E> {
    /// Fresh statistics for `channels` channels.
    pub fn new(channels: usize) -> Self {
        Self {
            mean: vec![E::zero(); channels],
            var: vec![E::one(); channels],
        }
    }
}

/// Weight of the newest batch in the running statistics (PyTorch's default).
pub const BATCH_NORM_MOMENTUM: f64 = 0.1;
/// Added to the variance before the square root.
pub const BATCH_NORM_EPSILON: f64 = 1e-5;

/// Per-channel `sum` and `sum of squares` of `(x - centre)` over `N, H, W`.
fn channel_moments<E: Real>(xs: &[E], n: usize, c: usize, hw: usize) -> Vec<(E, E)> {
    (0..c)
        .into_par_iter()
        .map(|ch| {
            let mut sum = E::zero();
            for i in 0..n {
                let plane = &xs[(i * c + ch) * hw..(i * c + ch + 1) * hw];
                sum = plane.iter().fold(sum, |a, &v| a + v);
            }
            let count = real::<E>((n * hw) as f64);
            let mean = sum / count;
            let mut sq = E::zero();
            for i in 0..n {
                let plane = &xs[(i * c + ch) * hw..(i * c + ch + 1) * hw];
                sq = plane.iter().fold(sq, |a, &v| a + (v - mean) * (v - mean));
            }
            (mean, sq / count)
        })
        .collect()
}

/// The per-channel mean and `1/sqrt(var + eps)` to normalise with: the
/// batch's (updating the running statistics) in training, the running ones
/// in evaluation.
fn normalisation<E: Real>(
    xs: &[E],
    (n, c, hw): (usize, usize, usize),
    stats: &mut RunningStats<E>,
    mode: BatchNormMode,
) -> (Vec<E>, Vec<E>) {
    let eps = real::<E>(BATCH_NORM_EPSILON);
    match mode {
        BatchNormMode::Train => {
            let moments = channel_moments(xs, n, c, hw);
            let m = real::<E>(BATCH_NORM_MOMENTUM);
            let count = n * hw;
            let unbias = real::<E>(count as f64 / (count.max(2) - 1) as f64);
            for (ch, &(mu, var)) in moments.iter().enumerate() {
                stats.mean[ch] = (E::one() - m) * stats.mean[ch] + m * mu;
                stats.var[ch] = (E::one() - m) * stats.var[ch] + m * var * unbias;
            }
            moments
                .iter()
                .map(|&(mu, var)| (mu, (var + eps).sqrt().recip()))
                .unzip()
        }
        BatchNormMode::Eval => (
            stats.mean.clone(),
            stats
                .var
                .iter()
                .map(|&v| (v + eps).sqrt().recip())
                .collect(),
        ),
    }
}

/// What a batch norm's forward pass keeps for its backward pass (besides
/// its input): the per-channel statistics it normalised with and its
/// parameters.
pub(crate) struct BatchNormSaved<E> {
    mean: Vec<E>,
    invstd: Vec<E>,
    gamma: std::sync::Arc<Vec<E>>,
    beta: std::sync::Arc<Vec<E>>,
    mode: BatchNormMode,
}

impl<E: Real> BatchNormSaved<E> {
    /// Channel `ch`'s normalisation folded into `x * scale + shift`.
    fn scale_shift(&self, ch: usize) -> (E, E) {
        let scale = self.gamma[ch] * self.invstd[ch];
        (scale, self.beta[ch] - self.mean[ch] * scale)
    }
}

/// The arguments of a batch norm that follows another op.
pub struct BatchNormArgs<'a, E: Real> {
    /// Learnt per-channel scale.
    pub gamma: &'a Param<E>,
    /// Learnt per-channel shift.
    pub beta: &'a Param<E>,
    /// Running statistics (updated in training mode).
    pub stats: &'a mut RunningStats<E>,
    /// Batch or running statistics.
    pub mode: BatchNormMode,
}

/// `act(batch_norm(x))` over `xs: N x C x HW`, with what the backward pass needs.
pub(crate) fn batch_norm_forward<E: Real>(
    xs: &[E],
    (n, c, hw): (usize, usize, usize),
    bn: BatchNormArgs<'_, E>,
    act: Activation,
) -> (Vec<E>, BatchNormSaved<E>) {
    assert_eq!(bn.stats.mean.len(), c, "batch_norm2d: channel count");
    assert_eq!(bn.gamma.values.len(), c, "batch_norm2d: gamma size");
    let (mean, invstd) = normalisation(xs, (n, c, hw), bn.stats, bn.mode);
    let saved = BatchNormSaved {
        mean,
        invstd,
        gamma: bn.gamma.values.clone(),
        beta: bn.beta.values.clone(),
        mode: bn.mode,
    };
    let mut ys = vec![E::zero(); xs.len()];
    with_act!(act, A => ys.par_chunks_mut(hw.max(1))
    .zip(xs.par_chunks(hw.max(1)))
    .enumerate()
    .for_each(|(p, (y, plane))| {
        let (scale, shift) = saved.scale_shift(p % c);
        simd(#[inline(always)] || {
            y.iter_mut()
                .zip(plane)
                .for_each(|(y, &v)| *y = A::value(v * scale + shift))
        });
    }));
    (ys, saved)
}

/// The backward pass of [`batch_norm_forward`]: turns `d` from the gradient
/// at the output into the gradient at the input, in place, and returns the
/// gradients of gamma and beta. Per-plane partial sums are added in image
/// order, so the result does not depend on the thread count.
pub(crate) fn batch_norm_backward_in_place<E: Real>(
    d: &mut [E],
    xs: &[E],
    (n, c, hw): (usize, usize, usize),
    saved: &BatchNormSaved<E>,
    act: Activation,
) -> (Vec<E>, Vec<E>) {
    // Through the activation (at z = the normalised value), with each
    // plane's sum(dz) and sum(dz * xhat).
    let partial: Vec<(E, E)> = with_act!(act, A => d
        .par_chunks_mut(hw.max(1))
        .zip(xs.par_chunks(hw.max(1)))
        .enumerate()
        .map(|(p, (d, plane))| {
            let ch = p % c;
            let (scale, shift) = saved.scale_shift(ch);
            let (mu, inv) = (saved.mean[ch], saved.invstd[ch]);
            simd(#[inline(always)] || {
                let (mut s, mut sx) = (E::zero(), E::zero());
                for (g, &v) in d.iter_mut().zip(plane) {
                    *g *= A::slope(v * scale + shift);
                    s += *g;
                    sx += *g * (v - mu) * inv;
                }
                (s, sx)
            })
        })
        .collect());
    let mut sums = vec![(E::zero(), E::zero()); c];
    for (p, &(s, sx)) in partial.iter().enumerate() {
        let acc = &mut sums[p % c];
        acc.0 += s;
        acc.1 += sx;
    }
    let count = real::<E>((n * hw) as f64);
    d.par_chunks_mut(hw.max(1))
        .zip(xs.par_chunks(hw.max(1)))
        .enumerate()
        .for_each(|(p, (d, plane))| {
            let ch = p % c;
            let k = saved.gamma[ch] * saved.invstd[ch];
            match saved.mode {
                BatchNormMode::Train => {
                    let (s, sx) = sums[ch];
                    let (mu, inv) = (saved.mean[ch], saved.invstd[ch]);
                    simd(
                        #[inline(always)]
                        || {
                            for (g, &v) in d.iter_mut().zip(plane) {
                                let xhat = (v - mu) * inv;
                                *g = k * (*g - (s + xhat * sx) / count);
                            }
                        },
                    );
                }
                BatchNormMode::Eval => simd(|| d.iter_mut().for_each(|g| *g *= k)),
            }
        });
    sums.into_iter().map(|(s, sx)| (sx, s)).unzip()
}

/// `act(batch_norm(x))` for `x: N x C x H x W` with learnt `gamma` and
/// `beta` (`C` each). In [`BatchNormMode::Train`] it updates the running
/// statistics. (A convolution followed by batch norm uses the fused
/// [`conv2d`](super::conv2d) instead.)
pub fn batch_norm2d<E: Real, T: Tape<E, Cpu>>(
    x: Map<E, T>,
    bn: BatchNormArgs<'_, E>,
    act: Activation,
) -> Map<E, T> {
    let (n, c, h, w) = *x.shape();
    let dims = (n, c, h * w);
    let (x, mut tape) = x.split_tape();
    let xs = to_vec(&x);
    let (gg, bg) = (bn.gamma.tensor.ghost(), bn.beta.tensor.ghost());
    let (ys, saved) = batch_norm_forward(&xs, dims, bn, act);
    let y = x.device().tensor_from_vec(ys, (n, c, h, w));
    if T::OWNS_TAPE {
        let (xg, yg) = (x.ghost(), y.ghost());
        tape.add_backward_op(move |grads| {
            let mut dy = take_grad!(grads, &yg);
            let (dgamma, dbeta) = batch_norm_backward_in_place(&mut dy, &xs, dims, &saved, act);
            add_into(grads.get_or_alloc_mut(&gg)?, &dgamma);
            add_into(grads.get_or_alloc_mut(&bg)?, &dbeta);
            add_into(grads.get_or_alloc_mut(&xg)?, &dy);
            release_grad(dy)
        });
    }
    y.put_tape(tape)
}

/// Local response normalisation parameters (as PyTorch's `LocalResponseNorm`):
/// `b_c = a_c / (k + alpha / size * sum_{j in window(c)} a_j^2)^beta`, the
/// window running from `c - size/2` to `c + (size-1)/2`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LrnSpec {
    /// Channels in a window.
    pub size: usize,
    /// Scale.
    pub alpha: f64,
    /// Exponent.
    pub beta: f64,
    /// Additive constant.
    pub k: f64,
}

/// An LRN's constants in the op's float type: the window's channels before
/// and after the centre, `alpha / size`, `beta` and `k`.
struct LrnTerms<E> {
    before: usize,
    after: usize,
    alpha: E,
    beta: E,
    k: E,
}

impl<E: Real> LrnTerms<E> {
    fn new(spec: LrnSpec) -> Self {
        Self {
            before: spec.size / 2,
            after: (spec.size.max(1) - 1) / 2,
            alpha: real::<E>(spec.alpha / spec.size.max(1) as f64),
            beta: real::<E>(spec.beta),
            k: real::<E>(spec.k),
        }
    }

    /// The denominator base `s = k + alpha/size * sum(a^2)` of every element
    /// of one image (`c x hw`) into `s`.
    fn base_of_image(&self, image: &[E], (c, hw): (usize, usize), s: &mut [E]) {
        for ch in 0..c {
            let lo = ch.saturating_sub(self.before);
            let hi = (ch + self.after).min(c - 1);
            let dst = &mut s[ch * hw..(ch + 1) * hw];
            dst.fill(E::zero());
            for j in lo..=hi {
                let src = &image[j * hw..(j + 1) * hw];
                dst.iter_mut().zip(src).for_each(|(d, &a)| *d += a * a);
            }
            dst.iter_mut().for_each(|d| *d = self.k + self.alpha * *d);
        }
    }
}

/// Local response normalisation of `xs: N x C x HW` into `ys`, on the
/// calling thread (the inference path).
pub(crate) fn lrn_into<E: Real>(xs: &[E], (c, hw): (usize, usize), spec: LrnSpec, ys: &mut [E]) {
    let terms = LrnTerms::<E>::new(spec);
    for (image, y) in xs
        .chunks_exact((c * hw).max(1))
        .zip(ys.chunks_exact_mut((c * hw).max(1)))
    {
        terms.base_of_image(image, (c, hw), y);
        y.iter_mut()
            .zip(image)
            .for_each(|(s, &a)| *s = a * s.powf(-terms.beta));
    }
}

/// Local response normalisation across channels of `x: N x C x H x W`.
pub fn lrn<E: Real, T: Tape<E, Cpu>>(x: Map<E, T>, spec: LrnSpec) -> Map<E, T> {
    let (n, c, h, w) = *x.shape();
    let hw = h * w;
    let (x, mut tape) = x.split_tape();
    let xs = to_vec(&x);
    let terms = LrnTerms::<E>::new(spec);
    let (alpha, beta, before, after) = (terms.alpha, terms.beta, terms.before, terms.after);
    let mut base = vec![E::zero(); xs.len()];
    base.par_chunks_mut((c * hw).max(1))
        .zip(xs.par_chunks((c * hw).max(1)))
        .for_each(|(s, image)| terms.base_of_image(image, (c, hw), s));
    let ys: Vec<E> = xs
        .iter()
        .zip(&base)
        .map(|(&a, &s)| a * s.powf(-beta))
        .collect();
    let y = x.device().tensor_from_vec(ys, (n, c, h, w));
    if T::OWNS_TAPE {
        let (xg, yg) = (x.ghost(), y.ghost());
        tape.add_backward_op(move |grads| {
            let dy = take_grad!(grads, &yg);
            let dx = grads.get_or_alloc_mut(&xg)?;
            let two_ab = real::<E>(2.0) * alpha * beta;
            dx.par_chunks_mut((c * hw).max(1))
                .zip(dy.par_chunks((c * hw).max(1)))
                .zip(
                    xs.par_chunks((c * hw).max(1))
                        .zip(base.par_chunks((c * hw).max(1))),
                )
                .for_each(|((dx, dy), (a, s))| {
                    // t_c = dy_c * a_c * s_c^(-beta-1), summed over the windows holding i.
                    let t: Vec<E> = (0..c * hw)
                        .map(|i| dy[i] * a[i] * s[i].powf(-beta - E::one()))
                        .collect();
                    for i in 0..c {
                        let lo = i.saturating_sub(after);
                        let hi = (i + before).min(c - 1);
                        for p in 0..hw {
                            let at = i * hw + p;
                            let mut cross = E::zero();
                            for ch in lo..=hi {
                                cross += t[ch * hw + p];
                            }
                            dx[at] += dy[at] * s[at].powf(-beta) - two_ab * a[at] * cross;
                        }
                    }
                });
            release_grad(dy)
        });
    }
    y.put_tape(tape)
}
