//! Depthwise convolution (one input channel per group, the first half of a
//! separable convolution) as direct loops instead of im2col + GEMM.
//!
//! With one input channel per group, im2col + GEMM multiplies a
//! `multiplier x k*k` matrix by a `k*k x oh*ow` one, per group and image:
//! thousands of tiny products whose set-up costs more than their arithmetic.
//! Here every kernel tap is one `axpy` over an output row, on contiguous rows
//! when the stride is 1, and the work is spread over feature-map planes.

use rayon::prelude::*;

use super::conv::{ConvKernel, Forward, Geometry};
use super::{simd, Real};

impl Geometry {
    /// Whether the direct kernels apply: one input channel per group and more
    /// than one group (a depthwise convolution, with any channel multiplier).
    pub(super) fn is_depthwise(&self) -> bool {
        self.cg == 1 && self.spec.groups > 1
    }

    /// For each kernel column: the input column offset of output column 0
    /// and the output columns `lo..hi` whose input column is inside the image.
    fn column_taps(&self) -> Vec<(isize, usize, usize)> {
        (0..self.spec.kernel.1)
            .map(|kj| {
                let offset = (kj * self.spec.dilation.1) as isize - self.spec.padding[2] as isize;
                let (lo, hi) = self.valid_columns(offset);
                (offset, lo, hi)
            })
            .collect()
    }

    /// The input row of output row `oy` at kernel row `ki`, if inside the image.
    #[inline(always)]
    fn input_row(&self, oy: usize, ki: usize) -> Option<usize> {
        let s = &self.spec;
        let iy = (oy * s.stride.0 + ki * s.dilation.0) as isize - s.padding[0] as isize;
        (0..self.h as isize).contains(&iy).then_some(iy as usize)
    }
}

/// Calls `f(output row, input row, that kernel row's weights)` for every
/// output row and kernel row whose input row is inside the image.
#[inline(always)]
fn for_each_tap_row<E: Real>(geo: &Geometry, kernel: &[E], mut f: impl FnMut(usize, usize, &[E])) {
    let kw = geo.spec.kernel.1;
    for oy in 0..geo.oh {
        for ki in 0..geo.spec.kernel.0 {
            if let Some(iy) = geo.input_row(oy, ki) {
                f(oy, iy, &kernel[ki * kw..(ki + 1) * kw]);
            }
        }
    }
}

/// `y += conv(x, kernel)` for one input plane and one output plane.
#[inline(always)]
fn forward_plane<E: Real>(
    geo: &Geometry,
    taps: &[(isize, usize, usize)],
    x: &[E],
    kernel: &[E],
    y: &mut [E],
) {
    let (w, ow, sw) = (geo.w, geo.ow, geo.spec.stride.1);
    for_each_tap_row(geo, kernel, |oy, iy, row_kernel| {
        let x_row = &x[iy * w..(iy + 1) * w];
        let y_row = &mut y[oy * ow..(oy + 1) * ow];
        for (&weight, &(offset, lo, hi)) in row_kernel.iter().zip(taps) {
            if sw == 1 {
                let start = (lo as isize + offset) as usize;
                let src = &x_row[start..start + hi - lo];
                for (out, &v) in y_row[lo..hi].iter_mut().zip(src) {
                    *out += weight * v;
                }
            } else {
                for (ox, out) in y_row[lo..hi].iter_mut().enumerate() {
                    *out += weight * x_row[(((ox + lo) * sw) as isize + offset) as usize];
                }
            }
        }
    });
}

/// `dx += conv_transpose(dy, kernel)` for one output-gradient plane into its
/// input-gradient plane.
#[inline(always)]
fn input_grad_plane<E: Real>(
    geo: &Geometry,
    taps: &[(isize, usize, usize)],
    dy: &[E],
    kernel: &[E],
    dx: &mut [E],
) {
    let (w, ow, sw) = (geo.w, geo.ow, geo.spec.stride.1);
    for_each_tap_row(geo, kernel, |oy, iy, row_kernel| {
        let dy_row = &dy[oy * ow..(oy + 1) * ow];
        let dx_row = &mut dx[iy * w..(iy + 1) * w];
        for (&weight, &(offset, lo, hi)) in row_kernel.iter().zip(taps) {
            if sw == 1 {
                let start = (lo as isize + offset) as usize;
                let dst = &mut dx_row[start..start + hi - lo];
                for (d, &g) in dst.iter_mut().zip(&dy_row[lo..hi]) {
                    *d += weight * g;
                }
            } else {
                for (ox, &g) in dy_row[lo..hi].iter().enumerate() {
                    dx_row[(((ox + lo) * sw) as isize + offset) as usize] += weight * g;
                }
            }
        }
    });
}

/// `partial[tap * ow + ox] += dy[oy, ox] * x[iy, ix]` for one input plane
/// and one output-gradient plane: the weight gradient's products kept per
/// output column, so the loop is element-wise (it vectorises; a running dot
/// product would not) and is summed once per channel by [`weight_grads`].
#[inline(always)]
fn weight_grad_plane<E: Real>(
    geo: &Geometry,
    taps: &[(isize, usize, usize)],
    x: &[E],
    dy: &[E],
    partial: &mut [E],
) {
    let (w, ow, sw, kw) = (geo.w, geo.ow, geo.spec.stride.1, geo.spec.kernel.1);
    for oy in 0..geo.oh {
        let dy_row = &dy[oy * ow..(oy + 1) * ow];
        for ki in 0..geo.spec.kernel.0 {
            let Some(iy) = geo.input_row(oy, ki) else {
                continue;
            };
            let x_row = &x[iy * w..(iy + 1) * w];
            for (kj, &(offset, lo, hi)) in taps.iter().enumerate() {
                let acc = &mut partial[(ki * kw + kj) * ow..][lo..hi];
                if sw == 1 {
                    let start = (lo as isize + offset) as usize;
                    let src = &x_row[start..start + hi - lo];
                    for ((a, &g), &v) in acc.iter_mut().zip(&dy_row[lo..hi]).zip(src) {
                        *a += g * v;
                    }
                } else {
                    for (ox, (a, &g)) in acc.iter_mut().zip(&dy_row[lo..hi]).enumerate() {
                        *a += g * x_row[(((ox + lo) * sw) as isize + offset) as usize];
                    }
                }
            }
        }
    }
}

/// Feature-map planes per parallel task: a whole image's when there are
/// several images (small planes make per-plane tasks all overhead), one
/// plane at batch 1 so a single image still spreads over the threads.
fn planes_per_task(images: usize, channels: usize) -> usize {
    if images > 1 {
        channels.max(1)
    } else {
        1
    }
}

/// Elements of an input plane, of an output plane, and kernel taps.
fn sizes(geo: &Geometry) -> (usize, usize, usize) {
    (
        geo.h * geo.w,
        geo.oh * geo.ow,
        geo.spec.kernel.0 * geo.spec.kernel.1,
    )
}

/// Calls `f(plane index, plane)` for every `len`-element plane of `buf`,
/// `per_task` planes a parallel task, compiled for the dispatched vector
/// width (`f` is inlined into the dispatch).
#[inline(always)]
fn for_each_plane<E: Real>(
    buf: &mut [E],
    len: usize,
    per_task: usize,
    f: impl Fn(usize, &mut [E]) + Sync,
) {
    buf.par_chunks_mut((per_task * len).max(1))
        .enumerate()
        .for_each(|(task, block)| {
            simd(
                #[inline(always)]
                || {
                    for (k, plane) in block.chunks_exact_mut(len.max(1)).enumerate() {
                        f(task * per_task + k, plane);
                    }
                },
            );
        });
}

/// Depthwise convolution plane by plane.
pub(in crate::engine::ops) struct DepthwisePlanes;

impl ConvKernel for DepthwisePlanes {
    /// The forward pass over a batch into `ys` (`n x out x oh x ow`), bias included.
    fn forward_into<E: Real>(geo: &Geometry, args: Forward<'_, E>, ys: &mut [E]) {
        let Forward { n, xs, ws, bias } = args;
        let out = geo.spec.out_channels;
        let (hw, ohw, taps_len) = sizes(geo);
        let taps = geo.column_taps();
        debug_assert_eq!(ys.len(), n * out * ohw);
        for_each_plane(
            ys,
            ohw,
            planes_per_task(n, out),
            #[inline(always)]
            |p, y| {
                let (i, oc) = (p / out, p % out);
                let g = oc / geo.og;
                y.fill(bias.map_or(E::zero(), |b| b[oc]));
                let x = &xs[(i * geo.spec.in_channels + g) * hw..][..hw];
                let kernel = &ws[oc * taps_len..(oc + 1) * taps_len];
                forward_plane(geo, &taps, x, kernel, y);
            },
        );
    }

    /// Weight and bias gradients summed over the batch. Each output channel is
    /// one task that visits the images in order, so the sums round the same way
    /// on any number of threads (checkpointed runs resume identically).
    fn weight_grads<E: Real>(geo: &Geometry, n: usize, xs: &[E], dy: &[E]) -> (Vec<E>, Vec<E>) {
        let (hw, ohw, taps_len) = sizes(geo);
        let (c, out) = (geo.spec.in_channels, geo.spec.out_channels);
        let taps = geo.column_taps();
        let mut dw = vec![E::zero(); geo.spec.weight_len()];
        let mut db = vec![E::zero(); out];
        dw.par_chunks_mut(taps_len.max(1))
            .zip(db.par_iter_mut())
            .enumerate()
            .for_each_init(Vec::new, |partial, (oc, (dkernel, dbias))| {
                let g = oc / geo.og;
                partial.clear();
                partial.resize(taps_len * geo.ow + geo.ow, E::zero());
                let (products, bias_partial) = partial.split_at_mut(taps_len * geo.ow);
                simd(
                    #[inline(always)]
                    || {
                        for i in 0..n {
                            let grad = &dy[(i * out + oc) * ohw..][..ohw];
                            let x = &xs[(i * c + g) * hw..][..hw];
                            weight_grad_plane(geo, &taps, x, grad, products);
                            for row in grad.chunks_exact(geo.ow.max(1)) {
                                bias_partial.iter_mut().zip(row).for_each(|(b, &v)| *b += v);
                            }
                        }
                    },
                );
                for (d, tap) in dkernel.iter_mut().zip(products.chunks_exact(geo.ow.max(1))) {
                    *d = tap.iter().copied().sum::<E>();
                }
                *dbias = bias_partial.iter().copied().sum::<E>();
            });
        (dw, db)
    }

    /// Adds the input gradient into `dx` (`n x c x h x w`), plane by plane.
    fn input_grads<E: Real>(geo: &Geometry, ws: &[E], dy: &[E], dx: &mut [E]) {
        let (hw, ohw, taps_len) = sizes(geo);
        let (c, out) = (geo.spec.in_channels, geo.spec.out_channels);
        let taps = geo.column_taps();
        let n = dx.len() / (c * hw).max(1);
        for_each_plane(
            dx,
            hw,
            planes_per_task(n, c),
            #[inline(always)]
            |p, dx| {
                let (i, g) = (p / c, p % c);
                for oc in g * geo.og..(g + 1) * geo.og {
                    let grad = &dy[(i * out + oc) * ohw..][..ohw];
                    let kernel = &ws[oc * taps_len..(oc + 1) * taps_len];
                    input_grad_plane(geo, &taps, grad, kernel, dx);
                }
            },
        );
    }
}
