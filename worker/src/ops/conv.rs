//! 2-D convolution as im2col + GEMM, one image per task, parallel over the
//! batch; depthwise convolutions take the direct kernels of [`super::depthwise`].

use dfdx::prelude::*;
use rayon::prelude::*;

use search::arch::Activation;

use super::gemm::{matmul, MatRef};
use super::norm::{
    batch_norm_backward_in_place, batch_norm_forward, BatchNormArgs, BatchNormSaved,
};
use super::{act, depthwise, depthwise_cl};
use super::{
    add_into, release_grad, simd, strided_apply, take_grad, to_vec, valid_columns, with_scratch,
    Map, Param, Real,
};

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

/// Everything the per-image kernels need, with the input size resolved.
#[derive(Clone, Copy)]
pub(super) struct Geometry {
    pub(super) spec: Conv2dSpec,
    pub(super) h: usize,
    pub(super) w: usize,
    pub(super) oh: usize,
    pub(super) ow: usize,
    /// Input channels per group.
    pub(super) cg: usize,
    /// Output channels per group.
    pub(super) og: usize,
    /// Rows of the im2col matrix: `cg * kh * kw`.
    kdim: usize,
}

impl Geometry {
    pub(super) fn new(spec: Conv2dSpec, c: usize, h: usize, w: usize) -> Self {
        assert_eq!(
            c, spec.in_channels,
            "conv2d: input channels differ from the spec"
        );
        let (oh, ow) = spec.output_size(h, w);
        let cg = spec.in_channels / spec.groups;
        Self {
            spec,
            h,
            w,
            oh,
            ow,
            cg,
            og: spec.out_channels / spec.groups,
            kdim: cg * spec.kernel.0 * spec.kernel.1,
        }
    }

    pub(super) fn in_len(&self) -> usize {
        self.spec.in_channels * self.h * self.w
    }

    pub(super) fn out_len(&self) -> usize {
        self.spec.out_channels * self.oh * self.ow
    }

    /// The output columns `lo..hi` whose input column `ox * stride + offset`
    /// lies inside the image.
    pub(super) fn valid_columns(&self, offset: isize) -> (usize, usize) {
        valid_columns(offset, self.spec.stride.1, self.w, self.ow)
    }

    /// Calls `f(im2col row, output row, input channel, input row, column
    /// offset)` for every im2col row and output row of one group; the input
    /// row is `None` where the window lies in the padding.
    #[inline(always)]
    fn for_each_window_line(&self, mut f: impl FnMut(usize, usize, usize, Option<usize>, isize)) {
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
    fn rows_are_plane_shifts(&self) -> bool {
        self.spec.stride == (1, 1) && self.ow == self.w
    }

    /// For the im2col row of kernel tap `(ki, kj)`: the output rows
    /// `oy_lo..oy_hi` whose input row is inside the image, the output
    /// columns `lo..hi` whose input column is, and the input index offset
    /// of output element 0 (valid only with [`Geometry::rows_are_plane_shifts`]).
    fn plane_shift(&self, ki: usize, kj: usize) -> (usize, usize, usize, usize, isize) {
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
    fn im2col<E: Real>(&self, image: &[E], group: usize, col: &mut [E], stride: usize) {
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
    fn col2im<E: Real>(&self, col: &mut [E], group: usize, image: &mut [E], stride: usize) {
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
    fn run_columns<'a, E: Real>(
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

    /// Whether [`Geometry::im2col_by_phases`] fills the im2col matrix:
    /// stride 2 both ways, no dilation.
    fn uses_phases(&self) -> bool {
        self.spec.stride == (2, 2) && self.spec.dilation == (1, 1)
    }

    /// Height and width of one stride phase of a plane.
    fn phase_size(&self) -> (usize, usize) {
        (self.h.div_ceil(2), self.w.div_ceil(2))
    }

    /// Scratch elements [`Geometry::im2col_by_phases`] needs for one group.
    fn phase_len(&self) -> usize {
        if self.uses_phases() {
            let (ph, pw) = self.phase_size();
            self.cg * 4 * ph * pw
        } else {
            0
        }
    }

    /// [`Geometry::im2col`] for stride 2: each input plane is first split
    /// into its four stride phases (`P_ab[y][x] = x[2y + a][2x + b]`, zero
    /// past the plane), once; every kernel tap's im2col row is then a
    /// shifted copy of one phase, contiguous line by line, instead of a
    /// strided gather per tap (25 gathers of the whole plane for a 5 x 5
    /// kernel, against one split).
    #[inline(always)]
    fn im2col_by_phases<E: Real>(
        &self,
        image: &[E],
        group: usize,
        col: &mut [E],
        stride: usize,
        phases: &mut [E],
    ) {
        let (h, w, hw) = (self.h, self.w, self.h * self.w);
        let (ph, pw) = self.phase_size();
        let pp = ph * pw;
        let planes = &image[group * self.cg * hw..(group + 1) * self.cg * hw];
        for (plane, split) in planes
            .chunks_exact(hw.max(1))
            .zip(phases.chunks_exact_mut((4 * pp).max(1)))
        {
            for (phase, (a, b)) in
                split
                    .chunks_exact_mut(pp.max(1))
                    .zip([(0, 0), (0, 1), (1, 0), (1, 1)])
            {
                let valid = w.saturating_sub(b).div_ceil(2);
                for (y, line) in phase.chunks_exact_mut(pw.max(1)).enumerate() {
                    let iy = 2 * y + a;
                    if iy >= h || valid == 0 {
                        line.fill(E::zero());
                        continue;
                    }
                    strided_apply(
                        &plane[iy * w + b..(iy + 1) * w],
                        2,
                        &mut line[..valid],
                        |d, v| *d = v,
                    );
                    line[valid..].fill(E::zero());
                }
            }
        }
        let (kh, kw) = self.spec.kernel;
        let (top, left) = (self.spec.padding[0] as isize, self.spec.padding[2] as isize);
        let (oh, ow) = (self.oh, self.ow);
        for (ci, split) in phases[..self.cg * 4 * pp]
            .chunks_exact((4 * pp).max(1))
            .enumerate()
        {
            for ki in 0..kh {
                let offset_y = ki as isize - top;
                let (a, dy) = (offset_y.rem_euclid(2) as usize, offset_y.div_euclid(2));
                // Output rows whose phase row `oy + dy` exists.
                let oy_lo = (-dy).clamp(0, oh as isize) as usize;
                let oy_hi = (ph as isize - dy).clamp(oy_lo as isize, oh as isize) as usize;
                for kj in 0..kw {
                    let offset_x = kj as isize - left;
                    let (b, dx) = (offset_x.rem_euclid(2) as usize, offset_x.div_euclid(2));
                    let phase = &split[(a * 2 + b) * pp..][..pp];
                    let row = (ci * kh + ki) * kw + kj;
                    let dst = &mut col[row * stride..][..oh * ow];
                    let lo = (-dx).clamp(0, ow as isize) as usize;
                    let hi = (pw as isize - dx).clamp(lo as isize, ow as isize) as usize;
                    dst[..oy_lo * ow].fill(E::zero());
                    dst[oy_hi * ow..].fill(E::zero());
                    if lo == 0 && hi == ow && pw == ow {
                        // Whole lines: one copy of the block.
                        let from = (oy_lo as isize + dy) as usize * pw;
                        dst[oy_lo * ow..oy_hi * ow]
                            .copy_from_slice(&phase[from..from + (oy_hi - oy_lo) * pw]);
                        continue;
                    }
                    for oy in oy_lo..oy_hi {
                        let line = &mut dst[oy * ow..(oy + 1) * ow];
                        line[..lo].fill(E::zero());
                        line[hi..].fill(E::zero());
                        let from = (oy as isize + dy) as usize * pw + (lo as isize + dx) as usize;
                        line[lo..hi].copy_from_slice(&phase[from..from + hi - lo]);
                    }
                }
            }
        }
    }

    /// [`Geometry::col2im`] for stride 2, the reverse of
    /// [`Geometry::im2col_by_phases`]: every kernel tap's im2col row is added
    /// line by line into one of the plane's four stride phases (contiguous
    /// adds), and each phase is then added into the plane once, instead of
    /// a strided scatter per tap.
    #[inline(always)]
    fn col2im_by_phases<E: Real>(
        &self,
        col: &[E],
        group: usize,
        image: &mut [E],
        stride: usize,
        phases: &mut [E],
    ) {
        let (h, w, hw) = (self.h, self.w, self.h * self.w);
        let (ph, pw) = self.phase_size();
        let pp = ph * pw;
        let (kh, kw) = self.spec.kernel;
        let (top, left) = (self.spec.padding[0] as isize, self.spec.padding[2] as isize);
        let (oh, ow) = (self.oh, self.ow);
        let phases = &mut phases[..self.cg * 4 * pp];
        phases.fill(E::zero());
        for (ci, split) in phases.chunks_exact_mut((4 * pp).max(1)).enumerate() {
            for ki in 0..kh {
                let offset_y = ki as isize - top;
                let (a, dy) = (offset_y.rem_euclid(2) as usize, offset_y.div_euclid(2));
                let oy_lo = (-dy).clamp(0, oh as isize) as usize;
                let oy_hi = (ph as isize - dy).clamp(oy_lo as isize, oh as isize) as usize;
                for kj in 0..kw {
                    let offset_x = kj as isize - left;
                    let (b, dx) = (offset_x.rem_euclid(2) as usize, offset_x.div_euclid(2));
                    let phase = &mut split[(a * 2 + b) * pp..][..pp];
                    let row = (ci * kh + ki) * kw + kj;
                    let src = &col[row * stride..][..oh * ow];
                    let lo = (-dx).clamp(0, ow as isize) as usize;
                    let hi = (pw as isize - dx).clamp(lo as isize, ow as isize) as usize;
                    for oy in oy_lo..oy_hi {
                        let from = (oy as isize + dy) as usize * pw + (lo as isize + dx) as usize;
                        let line = &src[oy * ow + lo..oy * ow + hi];
                        for (d, &v) in phase[from..from + hi - lo].iter_mut().zip(line) {
                            *d += v;
                        }
                    }
                }
            }
        }
        let planes = &mut image[group * self.cg * hw..(group + 1) * self.cg * hw];
        for (plane, split) in planes
            .chunks_exact_mut(hw.max(1))
            .zip(phases.chunks_exact((4 * pp).max(1)))
        {
            for (phase, (a, b)) in
                split
                    .chunks_exact(pp.max(1))
                    .zip([(0, 0), (0, 1), (1, 0), (1, 1)])
            {
                let valid = w.saturating_sub(b).div_ceil(2);
                for (y, line) in phase.chunks_exact(pw.max(1)).enumerate() {
                    let iy = 2 * y + a;
                    if iy >= h || valid == 0 {
                        continue;
                    }
                    let dst = &mut plane[iy * w + b..(iy + 1) * w];
                    for (x, &v) in line[..valid].iter().enumerate() {
                        dst[2 * x] += v;
                    }
                }
            }
        }
    }

    /// Group `group` of a run of output gradients as one
    /// `og x images * oh * ow` matrix: a view of the gradient itself for one
    /// image, else gathered into `buf`.
    fn run_grads<'a, E: Real>(
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

    /// Scratch elements one run of `count` images needs: its im2col matrix
    /// and one group's gathered outputs or gradients.
    fn run_scratch(&self, count: usize) -> (usize, usize) {
        let width = count * self.oh * self.ow;
        let cols = if self.spec.is_pointwise() && count == 1 {
            0
        } else {
            self.kdim * width + self.phase_len()
        };
        let outputs = if count == 1 { 0 } else { self.og * width };
        (cols, outputs)
    }

    /// Group `group`'s weights as a `og x kdim` matrix.
    fn weights<'a, E>(&self, weights: &'a [E], group: usize) -> MatRef<'a, E> {
        let len = self.og * self.kdim;
        MatRef::rows(&weights[group * len..(group + 1) * len], self.og, self.kdim)
    }

    /// How to cut a batch of `n` images into runs that share one GEMM.
    fn runs(&self, n: usize) -> Runs {
        let wanted = TARGET_COLUMNS.div_ceil((self.oh * self.ow).max(1));
        // At least two runs for two or more images, so two cores share the work.
        let images = wanted.clamp(1, n.div_ceil(2).max(1));
        let threads = rayon::current_num_threads();
        Runs {
            images,
            gemm_threads: if n.div_ceil(images) < threads {
                threads
            } else {
                1
            },
        }
    }
}

/// A GEMM narrower than this many columns leaves gemm's microkernels
/// partly empty (a 7 x 7 map is 49 columns), so images are batched into one
/// product until it is at least this wide.
const TARGET_COLUMNS: usize = 1024;

/// A batch cut into runs of `images` images, each run one GEMM per group
/// (its im2col matrices side by side). The run length depends only on the
/// batch and the map size, never on the thread count, so sums are added in
/// the same order everywhere and a checkpointed run resumes identically on
/// another worker; `gemm_threads` (all threads when there are fewer runs
/// than threads, as at batch 1) only splits the product's output blocks.
#[derive(Clone, Copy)]
struct Runs {
    images: usize,
    gemm_threads: usize,
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
    kernels.forward_into(&geo, n, &xs, &ws, bs.as_deref().map(Vec::as_slice), &mut zs);
    let dims = (n, spec.out_channels, geo.oh * geo.ow);
    let norm_ghosts = batch_norm
        .as_ref()
        .map(|bn| (bn.gamma.tensor.ghost(), bn.beta.tensor.ghost()));
    let (ys, epilogue) = match batch_norm {
        Some(bn) => {
            let (ys, saved) = batch_norm_forward(&zs, dims, bn, act);
            (
                ys,
                Epilogue::Norm(kept_for_backward::<T, E>(zs), saved, act),
            )
        }
        None if act != Activation::None => {
            let ys = act::forward(&zs, act);
            (ys, Epilogue::Act(kept_for_backward::<T, E>(zs), act))
        }
        None => (zs, Epilogue::Plain),
    };
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
            match &epilogue {
                Epilogue::Plain => {}
                Epilogue::Act(zs, act) => act::backward_in_place(&mut dy, zs, *act),
                Epilogue::Norm(zs, saved, act) => {
                    let (dgamma, dbeta) =
                        batch_norm_backward_in_place(&mut dy, zs, dims, saved, *act);
                    if let Some((gg, bg)) = &norm_ghosts {
                        add_into(grads.get_or_alloc_mut(gg)?, &dgamma);
                        add_into(grads.get_or_alloc_mut(bg)?, &dbeta);
                    }
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

/// Which kernels run one convolution call: chosen once, so its forward and
/// backward passes always agree.
#[derive(Clone, Copy)]
pub(super) enum Kernels {
    /// im2col + GEMM.
    Im2col,
    /// Depthwise, plane by plane ([`depthwise`]).
    Depthwise,
    /// Depthwise, channels-last ([`depthwise_cl`]).
    DepthwiseChannelsLast,
}

impl Kernels {
    pub(super) fn choose(geo: &Geometry, n: usize) -> Self {
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
    pub(super) fn choose_for_inference(geo: &Geometry, n: usize) -> Self {
        if geo.channels_last_applies() && rayon::current_num_threads() == 1 {
            Self::DepthwiseChannelsLast
        } else {
            Self::choose(geo, n)
        }
    }

    /// The forward pass into `ys` (`n x out x oh x ow`, every element written),
    /// bias included.
    pub(super) fn forward_into<E: Real>(
        self,
        geo: &Geometry,
        n: usize,
        xs: &[E],
        ws: &[E],
        bias: Option<&[E]>,
        ys: &mut [E],
    ) {
        match self {
            Self::Im2col => im2col_forward_into(geo, n, xs, ws, bias, ys),
            Self::Depthwise => depthwise::forward_into(geo, n, xs, ws, bias, ys),
            Self::DepthwiseChannelsLast => depthwise_cl::forward_into(geo, n, xs, ws, bias, ys),
        }
    }

    fn weight_grads<E: Real>(
        self,
        geo: &Geometry,
        n: usize,
        xs: &[E],
        dy: &[E],
    ) -> (Vec<E>, Vec<E>) {
        match self {
            Self::Im2col => weight_grads(geo, n, xs, dy),
            Self::Depthwise => depthwise::weight_grads(geo, n, xs, dy),
            Self::DepthwiseChannelsLast => depthwise_cl::weight_grads(geo, xs, dy),
        }
    }

    fn input_grads<E: Real>(self, geo: &Geometry, ws: &[E], dy: &[E], dx: &mut [E]) {
        match self {
            Self::Im2col => input_grads(geo, ws, dy, dx),
            Self::Depthwise => depthwise::input_grads(geo, ws, dy, dx),
            Self::DepthwiseChannelsLast => depthwise_cl::input_grads(geo, ws, dy, dx),
        }
    }
}

/// The forward pass as im2col + GEMM into `ys`, one product per run of images.
fn im2col_forward_into<E: Real>(
    geo: &Geometry,
    n: usize,
    xs: &[E],
    ws: &[E],
    bs: Option<&[E]>,
    ys: &mut [E],
) {
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

/// Input channels per group from which [`Geometry::pixel_major_pays`].
const PIXEL_MAJOR_MIN_CHANNELS: usize = 8;

/// Writes the transpose of the `rows x cols` matrix `src` (row stride
/// `src_stride`) into `dst` (row stride `dst_stride`), in cache-line tiles:
/// each output row segment is written contiguously from one source column.
#[inline(always)]
pub(super) fn transpose_into<E: Real>(
    src: &[E],
    (rows, cols, src_stride): (usize, usize, usize),
    dst: &mut [E],
    dst_stride: usize,
) {
    const TILE: usize = 16;
    for r0 in (0..rows).step_by(TILE) {
        let r1 = (r0 + TILE).min(rows);
        let tile = &src[r0 * src_stride..];
        for c0 in (0..cols).step_by(TILE) {
            for c in c0..(c0 + TILE).min(cols) {
                let out = &mut dst[c * dst_stride + r0..c * dst_stride + r1];
                for (k, o) in out.iter_mut().enumerate() {
                    *o = tile[k * src_stride + c];
                }
            }
        }
    }
}

impl Geometry {
    /// Whether the weight gradient is cheaper from pixel-major operands:
    /// when each kernel tap copies enough channels at once to beat
    /// `gemm`'s strided packing (measured: 8 or more; at 1-3 input channels,
    /// the first layer, the per-element copies lose) and the kernel is
    /// larger than 1 x 1 (for pointwise convolutions, where the im2col
    /// matrix is the image itself, the extra transpose cost 2-4% on
    /// MobileNet and ResNet-50).
    fn pixel_major_pays(&self) -> bool {
        self.cg >= PIXEL_MAJOR_MIN_CHANNELS && self.spec.kernel != (1, 1)
    }

    /// Group `group` of a run of images as a pixel-major im2col matrix,
    /// `images * oh * ow x kdim`, its columns in `(ky, kx, channel)` order:
    /// each image's group is first transposed to pixel-major (`hw x cg`, in
    /// `pixels`), so every kernel tap of an output pixel is one contiguous
    /// copy of `cg` channels.
    #[inline(always)]
    fn pixel_major_columns<E: Real>(
        &self,
        images: &[E],
        group: usize,
        pixels: &mut [E],
        cols: &mut [E],
    ) {
        let s = &self.spec;
        let (kh, kw) = s.kernel;
        let (hw, ohw, cg) = (self.h * self.w, self.oh * self.ow, self.cg);
        for (j, image) in images.chunks_exact(self.in_len().max(1)).enumerate() {
            let planes = &image[group * cg * hw..(group + 1) * cg * hw];
            transpose_into(planes, (cg, hw, hw), pixels, cg);
            for oy in 0..self.oh {
                for ox in 0..self.ow {
                    let row = &mut cols[(j * ohw + oy * self.ow + ox) * self.kdim..][..self.kdim];
                    for (tap, seg) in row.chunks_exact_mut(cg.max(1)).enumerate() {
                        let (ki, kj) = (tap / kw, tap % kw);
                        let iy =
                            (oy * s.stride.0 + ki * s.dilation.0) as isize - s.padding[0] as isize;
                        let ix =
                            (ox * s.stride.1 + kj * s.dilation.1) as isize - s.padding[2] as isize;
                        if (0..self.h as isize).contains(&iy) && (0..self.w as isize).contains(&ix)
                        {
                            let at = (iy as usize * self.w + ix as usize) * cg;
                            seg.copy_from_slice(&pixels[at..at + cg]);
                        } else {
                            seg.fill(E::zero());
                        }
                    }
                    debug_assert_eq!(row.len(), kh * kw * cg);
                }
            }
        }
    }
}

/// One run's weight gradient (added into `dw`) from pixel-major operands:
/// the output gradient transposed in tiles, the im2col matrix built by
/// [`Geometry::pixel_major_columns`]; the product's columns are put back in
/// the weights' `(channel, ky, kx)` order.
fn pixel_major_weight_grads<E: Real>(
    geo: &Geometry,
    images: &[E],
    grads: &[E],
    gemm_threads: usize,
    dw: &mut [E],
) {
    let ohw = geo.oh * geo.ow;
    let count = grads.len() / geo.out_len().max(1);
    let taps = geo.spec.kernel.0 * geo.spec.kernel.1;
    let width = count * ohw;
    let (cols_len, grads_len) = (geo.kdim * width, geo.og * width);
    let pixels_len = geo.cg * geo.h * geo.w;
    let product_len = geo.og * geo.kdim;
    with_scratch(
        cols_len + grads_len + pixels_len + product_len,
        |scratch: &mut [E]| {
            let (cols_t, rest) = scratch.split_at_mut(cols_len);
            let (grads_t, rest) = rest.split_at_mut(grads_len);
            let (pixels, product) = rest.split_at_mut(pixels_len);
            for g in 0..geo.spec.groups {
                simd(
                    #[inline(always)]
                    || {
                        geo.pixel_major_columns(images, g, pixels, cols_t);
                        let block = geo.og * ohw;
                        for (j, image) in grads.chunks_exact(geo.out_len().max(1)).enumerate() {
                            transpose_into(
                                &image[g * block..(g + 1) * block],
                                (geo.og, ohw, ohw),
                                &mut grads_t[j * ohw * geo.og..],
                                geo.og,
                            );
                        }
                    },
                );
                let dy_g = MatRef::rows(&grads_t[..width * geo.og], width, geo.og).t();
                let cols = MatRef::rows(&cols_t[..width * geo.kdim], width, geo.kdim);
                matmul(product, false, dy_g, cols, gemm_threads);
                let dw_g = &mut dw[g * product_len..(g + 1) * product_len];
                for (out, prod) in dw_g
                    .chunks_exact_mut(geo.kdim.max(1))
                    .zip(product.chunks_exact(geo.kdim.max(1)))
                {
                    for (tap, seg) in prod.chunks_exact(geo.cg.max(1)).enumerate() {
                        for (ci, &v) in seg.iter().enumerate() {
                            out[ci * taps + tap] = v;
                        }
                    }
                }
            }
        },
    );
}

/// Weight and bias gradients summed over the batch: each run of images
/// (see [`Runs`]) gets its own accumulators in parallel, then the runs are
/// added in order.
///
/// `dW = dY cols^T` reduces over pixels. In the channel-major layout of
/// [`Geometry::run_columns`] pixels are the contiguous dimension of both
/// operands, which `gemm` can only pack one strided element at a time (a
/// third of a small ResNet's step); where [`Geometry::pixel_major_pays`],
/// both are built pixel-major instead ([`pixel_major_weight_grads`]).
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
                pixel_major_weight_grads(geo, images, grads, runs.gemm_threads, &mut dw);
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
