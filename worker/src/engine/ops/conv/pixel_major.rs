//! Weight gradients from pixel-major operands: each image transposed to
//! `pixels x channels`, so a kernel tap of an output pixel copies its
//! channels in one run and `gemm` packs contiguous rows.

use super::geometry::Geometry;
use crate::ops::gemm::{matmul, MatRef};
use crate::ops::{simd, with_scratch, Real};

/// Input channels per group from which [`Geometry::pixel_major_pays`].
const PIXEL_MAJOR_MIN_CHANNELS: usize = 8;

/// Writes the transpose of the `rows x cols` matrix `src` (row stride
/// `src_stride`) into `dst` (row stride `dst_stride`), in cache-line tiles:
/// each output row segment is written contiguously from one source column.
#[inline(always)]
pub(in crate::engine::ops) fn transpose_into<E: Real>(
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
    pub(super) fn pixel_major_pays(&self) -> bool {
        self.cg >= PIXEL_MAJOR_MIN_CHANNELS && self.spec.kernel != (1, 1)
    }

    /// Group `group` of a run of images as a pixel-major im2col matrix,
    /// `images * oh * ow x kdim`, its columns in `(ky, kx, channel)` order:
    /// each image's group is first transposed to pixel-major (`hw x cg`, in
    /// `pixels`), so every kernel tap of an output pixel is one contiguous
    /// copy of `cg` channels.
    #[inline(always)]
    pub(super) fn pixel_major_columns<E: Real>(
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
pub(super) fn weight_grads<E: Real>(
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
