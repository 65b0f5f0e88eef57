//! Max and average pooling over `N x C x H x W` maps, one plane per task.

use dfdx::prelude::*;
use rayon::prelude::*;

use super::{
    real, release_grad, simd, strided_apply, take_grad, to_vec, valid_columns, with_scratch, Flat,
    Map, Real,
};

/// The geometry of a pooling window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pool2dSpec {
    /// Window height and width.
    pub kernel: (usize, usize),
    /// Stride (vertical, horizontal).
    pub stride: (usize, usize),
    /// Padding above, below, left and right (never part of a window's value).
    pub padding: [usize; 4],
}

impl Pool2dSpec {
    /// Output height and width for an `h x w` input.
    pub fn output_size(&self, h: usize, w: usize) -> (usize, usize) {
        let [top, bottom, left, right] = self.padding;
        (
            (h + top + bottom - self.kernel.0) / self.stride.0 + 1,
            (w + left + right - self.kernel.1) / self.stride.1 + 1,
        )
    }

    /// The input rows and columns under output `(oy, ox)`, clipped to the image.
    fn window(&self, h: usize, w: usize, oy: usize, ox: usize) -> (usize, usize, usize, usize) {
        let clip = |o: usize, s: usize, pad: usize, k: usize, dim: usize| {
            let start = (o * s) as isize - pad as isize;
            let lo = start.max(0) as usize;
            let hi = ((start + k as isize).min(dim as isize)).max(0) as usize;
            (lo, hi.max(lo))
        };
        let (y0, y1) = clip(oy, self.stride.0, self.padding[0], self.kernel.0, h);
        let (x0, x1) = clip(ox, self.stride.1, self.padding[2], self.kernel.1, w);
        (y0, y1, x0, x1)
    }
}

/// Max pooling of one `h x w` plane into `y` (`oh x ow`); `arg` receives
/// each window's maximum's index in the plane (the first of tied maxima in
/// row-major order, as PyTorch picks).
fn max_pool_plane<E: Real>(
    plane: &[E],
    (h, w): (usize, usize),
    spec: Pool2dSpec,
    y: &mut [E],
    arg: &mut [u32],
) {
    let (oh, ow) = spec.output_size(h, w);
    for oy in 0..oh {
        for ox in 0..ow {
            let (y0, y1, x0, x1) = spec.window(h, w, oy, ox);
            let mut best = y0 * w + x0;
            for iy in y0..y1 {
                for ix in x0..x1 {
                    // `>` keeps the first of tied maxima.
                    if plane[iy * w + ix] > plane[best] {
                        best = iy * w + ix;
                    }
                }
            }
            y[oy * ow + ox] = plane[best];
            arg[oy * ow + ox] = best as u32;
        }
    }
}

/// Average pooling of one `h x w` plane into `y` (`oh x ow`), padding left
/// out of each window's count.
fn avg_pool_plane<E: Real>(plane: &[E], (h, w): (usize, usize), spec: Pool2dSpec, y: &mut [E]) {
    let (oh, ow) = spec.output_size(h, w);
    for oy in 0..oh {
        for ox in 0..ow {
            let (y0, y1, x0, x1) = spec.window(h, w, oy, ox);
            let mut sum = E::zero();
            for iy in y0..y1 {
                sum = plane[iy * w + x0..iy * w + x1]
                    .iter()
                    .fold(sum, |a, &v| a + v);
            }
            let count = ((y1 - y0) * (x1 - x0)).max(1);
            y[oy * ow + ox] = sum / E::from(count).unwrap_or_else(E::one);
        }
    }
}

/// Max or average pooling of every `h x w` plane of `xs` into `ys`, on the
/// calling thread (the inference path). Tap by tap: each window row and
/// column is one strided pass over an output line, so the loops vectorise
/// (the training kernels track each window's argmax and cannot).
pub(crate) fn pool_into<E: Real>(
    max: bool,
    xs: &[E],
    (h, w): (usize, usize),
    spec: Pool2dSpec,
    ys: &mut [E],
) {
    let (oh, ow) = spec.output_size(h, w);
    let (kh, kw) = spec.kernel;
    let (sh, sw) = spec.stride;
    let (top, left) = (spec.padding[0] as isize, spec.padding[2] as isize);
    let start = if max { E::neg_infinity() } else { E::zero() };
    for (plane, y) in xs
        .chunks_exact((h * w).max(1))
        .zip(ys.chunks_exact_mut((oh * ow).max(1)))
    {
        simd(
            #[inline(always)]
            || {
                for (oy, line) in y.chunks_exact_mut(ow.max(1)).enumerate() {
                    line.fill(start);
                    let first_row = (oy * sh) as isize - top;
                    let rows = (first_row.max(0)..(first_row + kh as isize).min(h as isize))
                        .map(|iy| &plane[iy as usize * w..][..w]);
                    let mut row_count = 0usize;
                    for row in rows {
                        row_count += 1;
                        for kx in 0..kw {
                            let offset = kx as isize - left;
                            let (lo, hi) = valid_columns(offset, sw, w, ow);
                            if lo >= hi {
                                continue;
                            }
                            let src = &row[(lo as isize * sw as isize + offset) as usize..];
                            if max {
                                strided_apply(src, sw, &mut line[lo..hi], |d, v| *d = d.max(v));
                            } else {
                                strided_apply(src, sw, &mut line[lo..hi], |d, v| *d += v);
                            }
                        }
                    }
                    if !max {
                        for (ox, v) in line.iter_mut().enumerate() {
                            let x0 = (ox * sw) as isize - left;
                            let cols = (x0 + kw as isize).min(w as isize) - x0.max(0);
                            let count = (row_count * cols.max(0) as usize).max(1);
                            *v /= E::from(count).unwrap_or_else(E::one);
                        }
                    }
                }
            },
        );
    }
}

/// The mean of every `hw`-element plane of `xs`, into `ys`.
pub(crate) fn global_avg_pool_into<E: Real>(xs: &[E], hw: usize, ys: &mut [E]) {
    let count = real::<E>(hw as f64);
    for (plane, y) in xs.chunks_exact(hw.max(1)).zip(ys.iter_mut()) {
        *y = plane.iter().copied().sum::<E>() / count;
    }
}

/// Max pooling. The gradient goes to one maximum per window (the first in
/// row-major order, as PyTorch does), not to every tied one.
pub fn max_pool2d<E: Real, T: Tape<E, Cpu>>(x: Map<E, T>, spec: Pool2dSpec) -> Map<E, T> {
    let (n, c, h, w) = *x.shape();
    let (oh, ow) = spec.output_size(h, w);
    let (x, mut tape) = x.split_tape();
    let xs = to_vec(&x);
    let mut ys = vec![E::zero(); n * c * oh * ow];
    let mut argmax = vec![0u32; ys.len()];
    ys.par_chunks_mut((oh * ow).max(1))
        .zip(argmax.par_chunks_mut((oh * ow).max(1)))
        .zip(xs.par_chunks((h * w).max(1)))
        .for_each(|((y, arg), plane)| max_pool_plane(plane, (h, w), spec, y, arg));
    let y = x.device().tensor_from_vec(ys, (n, c, oh, ow));
    if T::OWNS_TAPE {
        let (xg, yg) = (x.ghost(), y.ghost());
        tape.add_backward_op(move |grads| {
            let dy = take_grad!(grads, &yg);
            let dx = grads.get_or_alloc_mut(&xg)?;
            dx.par_chunks_mut((h * w).max(1))
                .zip(dy.par_chunks((oh * ow).max(1)))
                .zip(argmax.par_chunks((oh * ow).max(1)))
                .for_each(|((dx, dy), arg)| {
                    for (&g, &at) in dy.iter().zip(arg) {
                        dx[at as usize] += g;
                    }
                });
            release_grad(dy)
        });
    }
    y.put_tape(tape)
}

/// Average pooling; padded cells are left out of each window's count (as
/// Keras and `count_include_pad=False` in PyTorch).
pub fn avg_pool2d<E: Real, T: Tape<E, Cpu>>(x: Map<E, T>, spec: Pool2dSpec) -> Map<E, T> {
    let (n, c, h, w) = *x.shape();
    let (oh, ow) = spec.output_size(h, w);
    let (x, mut tape) = x.split_tape();
    let xs = to_vec(&x);
    let mut ys = vec![E::zero(); n * c * oh * ow];
    ys.par_chunks_mut((oh * ow).max(1))
        .zip(xs.par_chunks((h * w).max(1)))
        .for_each(|(y, plane)| avg_pool_plane(plane, (h, w), spec, y));
    let y = x.device().tensor_from_vec(ys, (n, c, oh, ow));
    if T::OWNS_TAPE {
        let (xg, yg) = (x.ghost(), y.ghost());
        tape.add_backward_op(move |grads| {
            let dy = take_grad!(grads, &yg);
            let dx = grads.get_or_alloc_mut(&xg)?;
            dx.par_chunks_mut((h * w).max(1))
                .zip(dy.par_chunks((oh * ow).max(1)))
                .for_each(|(dx, dy)| {
                    for oy in 0..oh {
                        for ox in 0..ow {
                            let (y0, y1, x0, x1) = spec.window(h, w, oy, ox);
                            let count = ((y1 - y0) * (x1 - x0)).max(1);
                            let g = dy[oy * ow + ox] / E::from(count).unwrap_or_else(E::one);
                            for iy in y0..y1 {
                                dx[iy * w + x0..iy * w + x1]
                                    .iter_mut()
                                    .for_each(|d| *d += g);
                            }
                        }
                    }
                });
            release_grad(dy)
        });
    }
    y.put_tape(tape)
}

/// The mean of each feature-map plane: `N x C x H x W` to `N x C`.
pub fn global_avg_pool<E: Real, T: Tape<E, Cpu>>(x: Map<E, T>) -> Flat<E, T> {
    let (n, c, h, w) = *x.shape();
    let hw = (h * w).max(1);
    let (x, mut tape) = x.split_tape();
    let count = real::<E>((h * w) as f64);
    let mut means = vec![E::zero(); n * c];
    with_scratch(n * c * h * w, |xs: &mut [E]| {
        x.copy_into(xs);
        means
            .par_chunks_mut(c.max(1))
            .zip(xs.par_chunks(c * hw))
            .for_each(|(m, image)| global_avg_pool_into(image, hw, m));
    });
    let y = x.device().tensor_from_vec(means, (n, c));
    if T::OWNS_TAPE {
        let (xg, yg) = (x.ghost(), y.ghost());
        tape.add_backward_op(move |grads| {
            let dy = take_grad!(grads, &yg);
            let dx = grads.get_or_alloc_mut(&xg)?;
            dx.par_chunks_mut(hw).zip(&dy).for_each(|(plane, &g)| {
                let share = g / count;
                simd(|| plane.iter_mut().for_each(|d| *d += share));
            });
            release_grad(dy)
        });
    }
    y.put_tape(tape)
}
