//! Stride-2 convolutions through the four stride phases of each input
//! plane: every kernel tap's im2col row (and, backwards, its gradient) is a
//! contiguous shifted copy of one phase instead of a strided gather.

use super::geometry::Geometry;
use crate::ops::{strided_apply, Real};

impl Geometry {
    /// Whether [`Geometry::im2col_by_phases`] fills the im2col matrix:
    /// stride 2 both ways, no dilation.
    pub(super) fn uses_phases(&self) -> bool {
        self.spec.stride == (2, 2) && self.spec.dilation == (1, 1)
    }

    /// Height and width of one stride phase of a plane.
    pub(super) fn phase_size(&self) -> (usize, usize) {
        (self.h.div_ceil(2), self.w.div_ceil(2))
    }

    /// Scratch elements [`Geometry::im2col_by_phases`] needs for one group.
    pub(super) fn phase_len(&self) -> usize {
        if self.uses_phases() {
            let (ph, pw) = self.phase_size();
            self.cg * 4 * ph * pw
        } else {
            0
        }
    }

    /// Every kernel tap of a stride-2 window as seen from the stride
    /// phases, in im2col row order.
    #[inline(always)]
    fn phase_taps(&self) -> impl Iterator<Item = PhaseTap> + '_ {
        let (kh, kw) = self.spec.kernel;
        let (top, left) = (self.spec.padding[0] as isize, self.spec.padding[2] as isize);
        let (ph, pw) = self.phase_size();
        let (oh, ow) = (self.oh as isize, self.ow as isize);
        (0..kh).flat_map(move |ki| {
            let offset_y = ki as isize - top;
            let (a, dy) = (offset_y.rem_euclid(2) as usize, offset_y.div_euclid(2));
            // Output rows whose phase row `oy + dy` exists.
            let oy_lo = (-dy).clamp(0, oh);
            let oy_hi = (ph as isize - dy).clamp(oy_lo, oh);
            (0..kw).map(move |kj| {
                let offset_x = kj as isize - left;
                let (b, dx) = (offset_x.rem_euclid(2) as usize, offset_x.div_euclid(2));
                let lo = (-dx).clamp(0, ow);
                let hi = (pw as isize - dx).clamp(lo, ow);
                PhaseTap {
                    tap: ki * kw + kj,
                    phase: a * 2 + b,
                    shift: (dy, dx),
                    rows: (oy_lo as usize, oy_hi as usize),
                    cols: (lo as usize, hi as usize),
                }
            })
        })
    }

    /// [`Geometry::im2col`] for stride 2: each input plane is first split
    /// into its four stride phases (`P_ab[y][x] = x[2y + a][2x + b]`, zero
    /// past the plane), once; every kernel tap's im2col row is then a
    /// shifted copy of one phase, contiguous line by line, instead of a
    /// strided gather per tap (25 gathers of the whole plane for a 5 x 5
    /// kernel, against one split).
    #[inline(always)]
    pub(super) fn im2col_by_phases<E: Real>(
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
        let (oh, ow) = (self.oh, self.ow);
        let taps = self.spec.kernel.0 * self.spec.kernel.1;
        for (ci, split) in phases[..self.cg * 4 * pp]
            .chunks_exact((4 * pp).max(1))
            .enumerate()
        {
            for t in self.phase_taps() {
                let phase = &split[t.phase * pp..][..pp];
                let dst = &mut col[(ci * taps + t.tap) * stride..][..oh * ow];
                let ((oy_lo, oy_hi), (lo, hi)) = (t.rows, t.cols);
                dst[..oy_lo * ow].fill(E::zero());
                dst[oy_hi * ow..].fill(E::zero());
                if lo == 0 && hi == ow && pw == ow {
                    // Whole lines: one copy of the block.
                    let from = t.phase_index(oy_lo, pw);
                    dst[oy_lo * ow..oy_hi * ow]
                        .copy_from_slice(&phase[from..from + (oy_hi - oy_lo) * pw]);
                    continue;
                }
                for oy in oy_lo..oy_hi {
                    let line = &mut dst[oy * ow..(oy + 1) * ow];
                    line[..lo].fill(E::zero());
                    line[hi..].fill(E::zero());
                    let from = t.phase_index(oy, pw);
                    line[lo..hi].copy_from_slice(&phase[from..from + hi - lo]);
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
    pub(super) fn col2im_by_phases<E: Real>(
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
        let (oh, ow) = (self.oh, self.ow);
        let taps = self.spec.kernel.0 * self.spec.kernel.1;
        let phases = &mut phases[..self.cg * 4 * pp];
        phases.fill(E::zero());
        for (ci, split) in phases.chunks_exact_mut((4 * pp).max(1)).enumerate() {
            for t in self.phase_taps() {
                let phase = &mut split[t.phase * pp..][..pp];
                let src = &col[(ci * taps + t.tap) * stride..][..oh * ow];
                let (lo, hi) = t.cols;
                for oy in t.rows.0..t.rows.1 {
                    let from = t.phase_index(oy, pw);
                    let line = &src[oy * ow + lo..oy * ow + hi];
                    for (d, &v) in phase[from..from + hi - lo].iter_mut().zip(line) {
                        *d += v;
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
}

/// One kernel tap of a stride-2 window seen from the input's stride phases:
/// output pixel `(oy, ox)` reads phase `phase` at `(oy + dy, ox + dx)`.
#[derive(Clone, Copy)]
struct PhaseTap {
    /// The tap's index in the kernel, `ki * kw + kj`.
    tap: usize,
    /// Which phase it reads, `a * 2 + b` for rows `2y + a`, columns `2x + b`.
    phase: usize,
    /// `(dy, dx)`.
    shift: (isize, isize),
    /// Output rows `oy_lo..oy_hi` whose phase row exists.
    rows: (usize, usize),
    /// Output columns `lo..hi` whose phase column exists.
    cols: (usize, usize),
}

impl PhaseTap {
    /// Index into a `pw`-wide phase of output pixel `(oy, lo)`.
    #[inline(always)]
    fn phase_index(&self, oy: usize, pw: usize) -> usize {
        (oy as isize + self.shift.0) as usize * pw + (self.cols.0 as isize + self.shift.1) as usize
    }
}
