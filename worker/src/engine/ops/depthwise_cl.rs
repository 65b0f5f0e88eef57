//! Depthwise convolution (multiplier 1) channels-last: each image is
//! transposed to `pixels x channels`, so every kernel tap of an output pixel
//! is one vectorised update across all channels, however small the map (a
//! 7 x 7 plane leaves row-wise loops mostly in their remainders). Used for
//! batches of several images with at least [`MIN_CHANNELS`] channels; one
//! image per task, and the weight gradient summed over the images in order,
//! so results do not depend on the thread count.

use rayon::prelude::*;

use super::conv::{transpose_into, ConvKernel, Forward, Geometry};
use super::{simd, with_scratch, Real};

/// Channels from which the channels-last kernels are used.
const MIN_CHANNELS: usize = 16;

impl Geometry {
    /// Whether [`forward`], [`input_grads`] and [`weight_grads`] apply to a
    /// batch of `n`: a depthwise convolution with multiplier 1, enough
    /// channels to fill vectors, and several images to share out.
    pub(super) fn channels_last_pays(&self, n: usize) -> bool {
        self.channels_last_applies() && n > 1
    }

    /// Whether the channels-last kernels can run this convolution at all: a
    /// depthwise convolution with multiplier 1 and enough channels to fill
    /// vectors. (At batch 1 they run one image as one task: right on one
    /// thread, as inference is timed, but not for training on several.)
    pub(super) fn channels_last_applies(&self) -> bool {
        self.is_depthwise() && self.og == 1 && self.spec.in_channels >= MIN_CHANNELS
    }

    /// Calls `f(output pixel, tap, input pixel)` for every kernel tap of
    /// every output pixel whose input pixel is inside the image.
    #[inline(always)]
    fn for_each_tap(&self, mut f: impl FnMut(usize, usize, usize)) {
        let s = &self.spec;
        let (kh, kw) = s.kernel;
        for oy in 0..self.oh {
            for ki in 0..kh {
                let iy = (oy * s.stride.0 + ki * s.dilation.0) as isize - s.padding[0] as isize;
                if !(0..self.h as isize).contains(&iy) {
                    continue;
                }
                for ox in 0..self.ow {
                    for kj in 0..kw {
                        let ix =
                            (ox * s.stride.1 + kj * s.dilation.1) as isize - s.padding[2] as isize;
                        if (0..self.w as isize).contains(&ix) {
                            f(
                                oy * self.ow + ox,
                                ki * kw + kj,
                                iy as usize * self.w + ix as usize,
                            );
                        }
                    }
                }
            }
        }
    }
}

impl Geometry {
    /// `yt += conv(xt, wt)` channels-last (`xt: h*w x c`, `yt: oh*ow x c`,
    /// `wt: taps x c`), tap by tap: each kernel tap walks the output rows it
    /// reaches, and along a row its valid output pixels read input pixels
    /// `stride` apart, so the inner loop is one vector update per pixel with
    /// no per-pixel bounds arithmetic.
    #[inline(always)]
    fn forward_taps<E: Real>(&self, c: usize, wt: &[E], xt: &[E], yt: &mut [E]) {
        let s = &self.spec;
        let (kh, kw) = s.kernel;
        let sw = s.stride.1;
        for ki in 0..kh {
            for kj in 0..kw {
                let weights = &wt[(ki * kw + kj) * c..][..c];
                let offset = (kj * s.dilation.1) as isize - s.padding[2] as isize;
                let (lo, hi) = self.valid_columns(offset);
                if lo >= hi {
                    continue;
                }
                let first_x = (lo * sw) as isize + offset;
                for oy in 0..self.oh {
                    let iy = (oy * s.stride.0 + ki * s.dilation.0) as isize - s.padding[0] as isize;
                    if !(0..self.h as isize).contains(&iy) {
                        continue;
                    }
                    let out = &mut yt[(oy * self.ow + lo) * c..(oy * self.ow + hi) * c];
                    let start = (iy as usize * self.w + first_x as usize) * c;
                    let input = &xt[start..start + ((hi - lo - 1) * sw + 1) * c];
                    for (y, x) in out.chunks_exact_mut(c).zip(input.chunks(sw * c)) {
                        fma_into(y, weights, &x[..c]);
                    }
                }
            }
        }
    }
}

/// The kernels as `taps x channels` (channels contiguous).
fn taps_by_channel<E: Real>(geo: &Geometry, ws: &[E]) -> Vec<E> {
    let (c, taps) = (geo.spec.in_channels, geo.spec.kernel.0 * geo.spec.kernel.1);
    let mut wt = vec![E::zero(); ws.len()];
    transpose_into(ws, (c, taps, taps), &mut wt, c);
    wt
}

/// `out += a * b`, element-wise.
#[inline(always)]
fn fma_into<E: Real>(out: &mut [E], a: &[E], b: &[E]) {
    for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
        *o += x * y;
    }
}

/// Depthwise convolution channels-last: vectors across channels.
pub(in crate::engine::ops) struct DepthwiseChannelsLast;

impl ConvKernel for DepthwiseChannelsLast {
    /// The forward pass into `ys` (`n x c x oh x ow`), bias included.
    fn forward_into<E: Real>(geo: &Geometry, args: Forward<'_, E>, ys: &mut [E]) {
        let Forward { n, xs, ws, bias } = args;
        let c = geo.spec.in_channels;
        let (hw, ohw) = (geo.h * geo.w, geo.oh * geo.ow);
        let wt = taps_by_channel(geo, ws);
        debug_assert_eq!(ys.len(), n * c * ohw);
        ys.par_chunks_mut((c * ohw).max(1))
            .zip(xs.par_chunks((c * hw).max(1)))
            .for_each(|(y, x)| {
                with_scratch((hw + ohw) * c, |buf: &mut [E]| {
                    let (xt, yt) = buf.split_at_mut(hw * c);
                    simd(
                        #[inline(always)]
                        || {
                            transpose_into(x, (c, hw, hw), xt, c);
                            for out in yt.chunks_exact_mut(c) {
                                match bias {
                                    Some(b) => out.copy_from_slice(b),
                                    None => out.fill(E::zero()),
                                }
                            }
                            geo.forward_taps(c, &wt, xt, yt);
                            transpose_into(yt, (ohw, c, c), y, ohw);
                        },
                    );
                });
            });
    }

    /// Weight and bias gradients: per image (in parallel), then summed over the
    /// images in order.
    fn weight_grads<E: Real>(geo: &Geometry, _n: usize, xs: &[E], dy: &[E]) -> (Vec<E>, Vec<E>) {
        let c = geo.spec.in_channels;
        let (hw, ohw) = (geo.h * geo.w, geo.oh * geo.ow);
        let taps = geo.spec.kernel.0 * geo.spec.kernel.1;
        let per_image: Vec<Vec<E>> = xs
            .par_chunks((c * hw).max(1))
            .zip(dy.par_chunks((c * ohw).max(1)))
            .map(|(x, dy)| {
                // `taps x c` weight sums, then `c` bias sums.
                let mut sums = vec![E::zero(); (taps + 1) * c];
                with_scratch((hw + ohw) * c, |buf: &mut [E]| {
                    let (xt, dyt) = buf.split_at_mut(hw * c);
                    simd(
                        #[inline(always)]
                        || {
                            transpose_into(x, (c, hw, hw), xt, c);
                            transpose_into(dy, (c, ohw, ohw), dyt, c);
                            let (dw, db) = sums.split_at_mut(taps * c);
                            geo.for_each_tap(|p, tap, q| {
                                fma_into(
                                    &mut dw[tap * c..(tap + 1) * c],
                                    &dyt[p * c..(p + 1) * c],
                                    &xt[q * c..(q + 1) * c],
                                );
                            });
                            for g in dyt.chunks_exact(c) {
                                db.iter_mut().zip(g).for_each(|(b, &v)| *b += v);
                            }
                        },
                    );
                });
                sums
            })
            .collect();
        let mut total = vec![E::zero(); (taps + 1) * c];
        for sums in &per_image {
            total.iter_mut().zip(sums).for_each(|(t, &v)| *t += v);
        }
        let (dw_t, db) = total.split_at(taps * c);
        let mut dw = vec![E::zero(); taps * c];
        transpose_into(dw_t, (taps, c, c), &mut dw, taps);
        (dw, db.to_vec())
    }

    /// Adds the input gradient into `dx` (`n x c x h x w`).
    fn input_grads<E: Real>(geo: &Geometry, ws: &[E], dy: &[E], dx: &mut [E]) {
        let c = geo.spec.in_channels;
        let (hw, ohw) = (geo.h * geo.w, geo.oh * geo.ow);
        let wt = taps_by_channel(geo, ws);
        dx.par_chunks_mut((c * hw).max(1))
            .zip(dy.par_chunks((c * ohw).max(1)))
            .for_each(|(dx, dy)| {
                with_scratch((hw + ohw) * c + hw * c, |buf: &mut [E]| {
                    let (dxt, rest) = buf.split_at_mut(hw * c);
                    let (dyt, back) = rest.split_at_mut(ohw * c);
                    simd(
                        #[inline(always)]
                        || {
                            transpose_into(dy, (c, ohw, ohw), dyt, c);
                            dxt.fill(E::zero());
                            geo.for_each_tap(|p, tap, q| {
                                fma_into(
                                    &mut dxt[q * c..(q + 1) * c],
                                    &wt[tap * c..(tap + 1) * c],
                                    &dyt[p * c..(p + 1) * c],
                                );
                            });
                            transpose_into(dxt, (hw, c, c), back, hw);
                            dx.iter_mut().zip(&*back).for_each(|(d, &v)| *d += v);
                        },
                    );
                });
            });
    }
}
