//! im2col + GEMM: the im2col matrix of a run of images, the forward
//! product, the weight gradient and the input gradient through col2im.

use rayon::prelude::*;

use super::geometry::Geometry;
use super::kernels::{ConvKernel, Forward};
use crate::ops::gemm::{matmul, MatRef};
use crate::ops::{add_into, simd, strided_apply, with_scratch, Real};

impl Geometry {
    /// Calls `f(im2col row, output row, input channel, input row, column
    /// offset)` for every im2col row and output row of one group; the input
    /// row is `None` where the window lies in the padding.
    #[inline(always)]
    pub(super) fn for_each_window_line(
        &self,
        mut f: impl FnMut(usize, usize, usize, Option<usize>, isize),
    ) {
        let s = &self.spec;
        let (kh, kw) = s.kernel;
        for ci in 0..self.cg {
            for ki in 0..kh {
                for kj in 0..kw {
                    let row = (ci * kh + ki) * kw + kj;
                    let offset = (kj * s.dilation.1) as isize - s.padding[2] as isize;
                    for oy in 0..self.oh {
                        let iy =
                            (oy * s.stride.0 + ki * s.dilation.0) as isize - s.padding[0] as isize;
                        let inside = (0..self.h as isize).contains(&iy);
                        f(row, oy, ci, inside.then_some(iy as usize), offset);
                    }
                }
            }
        }
    }

    /// Whether an im2col row can be copied as one shifted plane: stride 1
    /// both ways and as many output as input columns ("same" padding), so
    /// an input row and an output row are equally long and a kernel tap is
    /// one contiguous shift of the whole plane, its wrapped border columns
    /// zeroed.
    pub(super) fn rows_are_plane_shifts(&self) -> bool {
        self.spec.stride == (1, 1) && self.ow == self.w
    }

    /// For the im2col row of kernel tap `(ki, kj)`: the output rows
    /// `oy_lo..oy_hi` whose input row is inside the image, the output
    /// columns `lo..hi` whose input column is, and the input index offset
    /// of output element 0 (valid only with [`Geometry::rows_are_plane_shifts`]).
    pub(super) fn plane_shift(&self, ki: usize, kj: usize) -> (usize, usize, usize, usize, isize) {
        let s = &self.spec;
        let dy = (ki * s.dilation.0) as isize - s.padding[0] as isize;
        let sh = s.stride.0 as isize;
        let first = if dy >= 0 { 0 } else { (-dy + sh - 1) / sh };
        let last = if self.h as isize - 1 - dy < 0 {
            0
        } else {
            ((self.h as isize - 1 - dy) / sh + 1).min(self.oh as isize)
        };
        let offset = (kj * s.dilation.1) as isize - s.padding[2] as isize;
        let (lo, hi) = self.valid_columns(offset);
        let (oy_lo, oy_hi) = (first.min(last) as usize, last.max(0) as usize);
        (oy_lo, oy_hi, lo, hi, dy * self.w as isize + offset)
    }

    /// Fills one image's block of an im2col matrix whose rows are `stride`
    /// apart: row `r` of group `group` of `image` goes to
    /// `col[r * stride..][..oh * ow]`. Inlined into [`simd`]'s caller so it
    /// compiles for the vector width dispatched to.
    #[inline(always)]
    pub(super) fn im2col<E: Real>(&self, image: &[E], group: usize, col: &mut [E], stride: usize) {
        let (hw, ow, sw) = (self.h * self.w, self.ow, self.spec.stride.1);
        let planes = &image[group * self.cg * hw..(group + 1) * self.cg * hw];
        if self.rows_are_plane_shifts() {
            let (kh, kw) = self.spec.kernel;
            for ki in 0..kh {
                for kj in 0..kw {
                    let (oy_lo, oy_hi, lo, hi, shift) = self.plane_shift(ki, kj);
                    for (ci, plane) in planes.chunks_exact(hw.max(1)).enumerate() {
                        let row = (ci * kh + ki) * kw + kj;
                        let dst = &mut col[row * stride..][..self.oh * ow];
                        if oy_lo >= oy_hi || lo >= hi {
                            dst.fill(E::zero());
                            continue;
                        }
                        let (start, end) = (oy_lo * ow + lo, (oy_hi - 1) * ow + hi);
                        dst[..start].fill(E::zero());
                        dst[end..].fill(E::zero());
                        let from = (start as isize + shift) as usize;
                        dst[start..end].copy_from_slice(&plane[from..from + end - start]);
                        for oy in oy_lo..oy_hi {
                            let line = &mut dst[oy * ow..(oy + 1) * ow];
                            line[..lo].fill(E::zero());
                            line[hi..].fill(E::zero());
                        }
                    }
                }
            }
            return;
        }
        // Strided or shrinking windows: line by line, with each kernel
        // column's valid output columns worked out once, not once per line.
        let s = &self.spec;
        let (kh, kw) = s.kernel;
        for (ci, plane) in planes.chunks_exact(hw.max(1)).enumerate() {
            for ki in 0..kh {
                for kj in 0..kw {
                    let row = (ci * kh + ki) * kw + kj;
                    let offset = (kj * s.dilation.1) as isize - s.padding[2] as isize;
                    let (lo, hi) = self.valid_columns(offset);
                    let first = (lo * sw) as isize + offset;
                    let lines = col[row * stride..][..self.oh * ow].chunks_exact_mut(ow.max(1));
                    for (oy, dst) in lines.enumerate() {
                        let iy =
                            (oy * s.stride.0 + ki * s.dilation.0) as isize - s.padding[0] as isize;
                        if !(0..self.h as isize).contains(&iy) || lo >= hi {
                            dst.fill(E::zero());
                            continue;
                        }
                        let src = &plane[iy as usize * self.w..][..self.w];
                        dst[..lo].fill(E::zero());
                        dst[hi..].fill(E::zero());
                        strided_apply(&src[first as usize..], sw, &mut dst[lo..hi], |d, v| *d = v);
                    }
                }
            }
        }
    }

    /// Adds one image's block of an im2col-shaped gradient (rows `stride`
    /// apart, as [`Geometry::im2col`] lays them out) back into group
    /// `group` of that image's gradient. The block's cells that fall in the
    /// padding are zeroed on the way (they are not needed after this).
    /// Inlined into [`simd`]'s caller so it compiles for the vector width
    /// dispatched to.
    #[inline(always)]
    pub(super) fn col2im<E: Real>(
        &self,
        col: &mut [E],
        group: usize,
        image: &mut [E],
        stride: usize,
    ) {
        let (hw, ow, sw) = (self.h * self.w, self.ow, self.spec.stride.1);
        let planes = &mut image[group * self.cg * hw..(group + 1) * self.cg * hw];
        if self.rows_are_plane_shifts() {
            let (kh, kw) = self.spec.kernel;
            for ki in 0..kh {
                for kj in 0..kw {
                    let (oy_lo, oy_hi, lo, hi, shift) = self.plane_shift(ki, kj);
                    for (ci, plane) in planes.chunks_exact_mut(hw.max(1)).enumerate() {
                        let row = (ci * kh + ki) * kw + kj;
                        let src = &mut col[row * stride..][..self.oh * ow];
                        if oy_lo >= oy_hi || lo >= hi {
                            continue;
                        }
                        for oy in oy_lo..oy_hi {
                            let line = &mut src[oy * ow..(oy + 1) * ow];
                            line[..lo].fill(E::zero());
                            line[hi..].fill(E::zero());
                        }
                        let (start, end) = (oy_lo * ow + lo, (oy_hi - 1) * ow + hi);
                        let to = (start as isize + shift) as usize;
                        for (d, &v) in plane[to..to + end - start].iter_mut().zip(&src[start..end])
                        {
                            *d += v;
                        }
                    }
                }
            }
            return;
        }
        self.for_each_window_line(|row, oy, ci, iy, offset| {
            let Some(iy) = iy else { return };
            let src = &col[row * stride + oy * ow..][..ow];
            let dst = &mut planes[ci * hw + iy * self.w..ci * hw + (iy + 1) * self.w];
            let (lo, hi) = self.valid_columns(offset);
            if sw == 1 {
                let start = (lo as isize + offset) as usize;
                for (d, &v) in dst[start..start + hi - lo].iter_mut().zip(&src[lo..hi]) {
                    *d += v;
                }
            } else {
                for (ox, &v) in src[lo..hi].iter().enumerate() {
                    dst[(((ox + lo) * sw) as isize + offset) as usize] += v;
                }
            }
        });
    }

    /// Group `group` of a run of images (`images.len() / in_len` of them)
    /// as one `kdim x images * oh * ow` im2col matrix: the image itself for a
    /// pointwise convolution of one image, else filled into `col`.
    pub(super) fn run_columns<'a, E: Real>(
        &self,
        images: &'a [E],
        group: usize,
        col: &'a mut [E],
    ) -> MatRef<'a, E> {
        let count = images.len() / self.in_len().max(1);
        let (ohw, hw) = (self.oh * self.ow, self.h * self.w);
        if self.spec.is_pointwise() && count == 1 {
            return MatRef::rows(
                &images[group * self.cg * hw..(group + 1) * self.cg * hw],
                self.cg,
                hw,
            );
        }
        let width = count * ohw;
        let (col, phases) = col.split_at_mut(self.kdim * width);
        for (j, image) in images.chunks_exact(self.in_len().max(1)).enumerate() {
            let block = &mut col[j * ohw..];
            simd(
                #[inline(always)]
                || {
                    if self.uses_phases() {
                        self.im2col_by_phases(image, group, block, width, phases);
                    } else {
                        self.im2col(image, group, block, width);
                    }
                },
            );
        }
        MatRef::rows(col, self.kdim, width)
    }

    /// Group `group` of a run of output gradients as one
    /// `og x images * oh * ow` matrix: a view of the gradient itself for one
    /// image, else gathered into `buf`.
    pub(super) fn run_grads<'a, E: Real>(
        &self,
        grads: &'a [E],
        group: usize,
        buf: &'a mut [E],
    ) -> MatRef<'a, E> {
        let count = grads.len() / self.out_len().max(1);
        let ohw = self.oh * self.ow;
        let block = self.og * ohw;
        if count == 1 {
            return MatRef::rows(&grads[group * block..(group + 1) * block], self.og, ohw);
        }
        let width = count * ohw;
        for (j, image) in grads.chunks_exact(self.out_len().max(1)).enumerate() {
            for o in 0..self.og {
                buf[o * width + j * ohw..][..ohw]
                    .copy_from_slice(&image[group * block + o * ohw..][..ohw]);
            }
        }
        MatRef::rows(&buf[..self.og * width], self.og, width)
    }
}

/// im2col + GEMM: every convolution that is not depthwise.
pub(in crate::engine::ops) struct Im2colGemm;

impl ConvKernel for Im2colGemm {
    /// The forward pass as im2col + GEMM into `ys`, one product per run of images.
    fn forward_into<E: Real>(geo: &Geometry, args: Forward<'_, E>, ys: &mut [E]) {
        let Forward {
            n,
            xs,
            ws,
            bias: bs,
        } = args;
        let (spec, runs, ohw) = (geo.spec, geo.runs(n), geo.oh * geo.ow);
        debug_assert_eq!(ys.len(), n * geo.out_len());
        ys.par_chunks_mut((runs.images * geo.out_len()).max(1))
            .zip(xs.par_chunks((runs.images * geo.in_len()).max(1)))
            .for_each(|(y, images)| {
                let count = images.len() / geo.in_len().max(1);
                let (cols_len, out_len) = geo.run_scratch(count);
                with_scratch(cols_len + out_len, |scratch: &mut [E]| {
                    let (col, product) = scratch.split_at_mut(cols_len);
                    for g in 0..spec.groups {
                        let cols = geo.run_columns(images, g, col);
                        let block = geo.og * ohw;
                        if count == 1 {
                            let out = &mut y[g * block..(g + 1) * block];
                            matmul(out, false, geo.weights(ws, g), cols, runs.gemm_threads);
                            continue;
                        }
                        matmul(product, false, geo.weights(ws, g), cols, runs.gemm_threads);
                        let width = count * ohw;
                        for (j, image) in y.chunks_exact_mut(geo.out_len().max(1)).enumerate() {
                            for o in 0..geo.og {
                                image[g * block + o * ohw..][..ohw]
                                    .copy_from_slice(&product[o * width + j * ohw..][..ohw]);
                            }
                        }
                    }
                });
                if let Some(b) = bs {
                    for (plane, &bias) in y.chunks_mut(ohw.max(1)).zip(b.iter().cycle()) {
                        plane.iter_mut().for_each(|v| *v += bias);
                    }
                }
            });
    }

    /// Weight and bias gradients summed over the batch: each run of images
    /// (see [`Runs`]) gets its own accumulators in parallel, then the runs are
    /// added in order.
    ///
    /// `dW = dY cols^T` reduces over pixels. In the channel-major layout of
    /// [`Geometry::run_columns`] pixels are the contiguous dimension of both
    /// operands, which `gemm` can only pack one strided element at a time (a
    /// third of a small ResNet's step); where [`Geometry::pixel_major_pays`],
    /// both are built pixel-major instead ([`super::pixel_major::weight_grads`]).
    fn weight_grads<E: Real>(geo: &Geometry, n: usize, xs: &[E], dy: &[E]) -> (Vec<E>, Vec<E>) {
        let (spec, runs, ohw) = (geo.spec, geo.runs(n), geo.oh * geo.ow);
        let starts: Vec<usize> = (0..n).step_by(runs.images.max(1)).collect();
        let partial: Vec<(Vec<E>, Vec<E>)> = starts
            .par_iter()
            .map(|&start| {
                let count = runs.images.min(n - start);
                let images = &xs[start * geo.in_len()..(start + count) * geo.in_len()];
                let grads = &dy[start * geo.out_len()..(start + count) * geo.out_len()];
                let mut dw = vec![E::zero(); spec.weight_len()];
                if geo.pixel_major_pays() {
                    super::pixel_major::weight_grads(
                        geo,
                        images,
                        grads,
                        runs.gemm_threads,
                        &mut dw,
                    );
                } else {
                    let (cols_len, out_len) = geo.run_scratch(count);
                    with_scratch(cols_len + out_len, |scratch: &mut [E]| {
                        let (col, gathered) = scratch.split_at_mut(cols_len);
                        for g in 0..spec.groups {
                            let cols = geo.run_columns(images, g, col);
                            let dy_g = geo.run_grads(grads, g, gathered);
                            let len = geo.og * geo.kdim;
                            let dw_g = &mut dw[g * len..(g + 1) * len];
                            matmul(dw_g, false, dy_g, cols.t(), runs.gemm_threads);
                        }
                    });
                }
                let mut db = vec![E::zero(); spec.out_channels];
                for image in grads.chunks_exact(geo.out_len().max(1)) {
                    for (acc, plane) in db.iter_mut().zip(image.chunks_exact(ohw.max(1))) {
                        *acc += plane.iter().copied().sum::<E>();
                    }
                }
                (dw, db)
            })
            .collect();
        let mut iter = partial.into_iter();
        let (mut dw, mut db) = iter.next().unwrap_or_else(|| {
            (
                vec![E::zero(); spec.weight_len()],
                vec![E::zero(); spec.out_channels],
            )
        });
        for (w, b) in iter {
            add_into(&mut dw, &w);
            add_into(&mut db, &b);
        }
        (dw, db)
    }

    /// Adds the input gradient `W^T dY` (through col2im) into `dx`, run by run.
    fn input_grads<E: Real>(geo: &Geometry, ws: &[E], dy: &[E], dx: &mut [E]) {
        let n = dx.len() / geo.in_len().max(1);
        let (spec, runs, ohw) = (geo.spec, geo.runs(n), geo.oh * geo.ow);
        dx.par_chunks_mut((runs.images * geo.in_len()).max(1))
            .zip(dy.par_chunks((runs.images * geo.out_len()).max(1)))
            .for_each(|(dx, grads)| {
                let count = grads.len() / geo.out_len().max(1);
                let width = count * ohw;
                let cols_len = geo.kdim * width;
                let phases_len = geo.phase_len();
                let (_, out_len) = geo.run_scratch(count);
                with_scratch(cols_len + phases_len + out_len, |scratch: &mut [E]| {
                    let (col, rest) = scratch.split_at_mut(cols_len);
                    let (phases, gathered) = rest.split_at_mut(phases_len);
                    for g in 0..spec.groups {
                        let dy_g = geo.run_grads(grads, g, gathered);
                        let w_t = geo.weights(ws, g).t();
                        if spec.is_pointwise() && count == 1 {
                            let hw = geo.h * geo.w;
                            let dx_g = &mut dx[g * geo.cg * hw..(g + 1) * geo.cg * hw];
                            matmul(dx_g, true, w_t, dy_g, runs.gemm_threads);
                            continue;
                        }
                        matmul(col, false, w_t, dy_g, runs.gemm_threads);
                        for (j, image) in dx.chunks_exact_mut(geo.in_len().max(1)).enumerate() {
                            let block = &mut col[j * ohw..];
                            simd(
                                #[inline(always)]
                                || {
                                    if geo.uses_phases() {
                                        geo.col2im_by_phases(block, g, image, width, phases);
                                    } else {
                                        geo.col2im(block, g, image, width);
                                    }
                                },
                            );
                        }
                    }
                });
            });
    }
}
