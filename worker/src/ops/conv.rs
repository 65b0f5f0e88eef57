//! 2-D convolution as im2col + GEMM, one image per task, parallel over the batch.

use dfdx::prelude::*;
use rayon::prelude::*;

use super::gemm::{matmul, MatRef};
use super::{restore_grad, take_grad, to_vec, Map, Param, Real};

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
struct Geometry {
    spec: Conv2dSpec,
    h: usize,
    w: usize,
    oh: usize,
    ow: usize,
    /// Input channels per group.
    cg: usize,
    /// Output channels per group.
    og: usize,
    /// Rows of the im2col matrix: `cg * kh * kw`.
    kdim: usize,
}

impl Geometry {
    fn new(spec: Conv2dSpec, c: usize, h: usize, w: usize) -> Self {
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

    fn in_len(&self) -> usize {
        self.spec.in_channels * self.h * self.w
    }

    fn out_len(&self) -> usize {
        self.spec.out_channels * self.oh * self.ow
    }

    /// The output columns `lo..hi` whose input column `ox * stride + offset`
    /// lies inside the image.
    fn valid_columns(&self, offset: isize) -> (usize, usize) {
        let (sw, w) = (self.spec.stride.1 as isize, self.w as isize);
        let lo = if offset >= 0 {
            0
        } else {
            (-offset + sw - 1) / sw
        };
        let hi = if w - 1 - offset < 0 {
            0
        } else {
            ((w - 1 - offset) / sw + 1).min(self.ow as isize)
        };
        (lo.min(hi) as usize, hi as usize)
    }

    /// Calls `f(row, oy, iy, offset, lo, hi)` for every im2col row and output
    /// line of group `group` whose input line `iy` is inside the image.
    fn for_each_window_line(&self, mut f: impl FnMut(usize, usize, Option<usize>, isize)) {
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
                        f(
                            row * self.oh + oy,
                            ci,
                            inside.then_some(iy as usize),
                            offset,
                        );
                    }
                }
            }
        }
    }

    /// Fills `col` (`kdim x oh*ow`) from one group of one image.
    fn im2col<E: Real>(&self, image: &[E], group: usize, col: &mut [E]) {
        let (hw, ow, sw) = (self.h * self.w, self.ow, self.spec.stride.1);
        let planes = &image[group * self.cg * hw..(group + 1) * self.cg * hw];
        self.for_each_window_line(|line, ci, iy, offset| {
            let dst = &mut col[line * ow..(line + 1) * ow];
            let Some(iy) = iy else {
                dst.fill(E::zero());
                return;
            };
            let src = &planes[ci * hw + iy * self.w..ci * hw + (iy + 1) * self.w];
            let (lo, hi) = self.valid_columns(offset);
            dst[..lo].fill(E::zero());
            dst[hi..].fill(E::zero());
            if sw == 1 {
                let start = (lo as isize + offset) as usize;
                dst[lo..hi].copy_from_slice(&src[start..start + hi - lo]);
            } else {
                for (ox, d) in dst[lo..hi].iter_mut().enumerate() {
                    *d = src[(((ox + lo) * sw) as isize + offset) as usize];
                }
            }
        });
    }

    /// Adds `col` (`kdim x oh*ow`) back into one group of one image's gradient.
    fn col2im<E: Real>(&self, col: &[E], group: usize, image: &mut [E]) {
        let (hw, ow, sw) = (self.h * self.w, self.ow, self.spec.stride.1);
        let planes = &mut image[group * self.cg * hw..(group + 1) * self.cg * hw];
        self.for_each_window_line(|line, ci, iy, offset| {
            let Some(iy) = iy else { return };
            let src = &col[line * ow..(line + 1) * ow];
            let dst = &mut planes[ci * hw + iy * self.w..ci * hw + (iy + 1) * self.w];
            let (lo, hi) = self.valid_columns(offset);
            for (ox, &v) in src[lo..hi].iter().enumerate() {
                let ix = ((ox + lo) * sw) as isize + offset;
                dst[ix as usize] += v;
            }
        });
    }

    /// An im2col buffer (empty for pointwise convolutions, which need none).
    fn scratch<E: Real>(&self) -> Vec<E> {
        let len = if self.spec.is_pointwise() {
            0
        } else {
            self.kdim * self.oh * self.ow
        };
        vec![E::zero(); len]
    }

    /// Group `group` of one image as its `kdim x oh*ow` im2col matrix: the
    /// image itself for a pointwise convolution, else filled into `col`.
    fn columns<'a, E: Real>(
        &self,
        image: &'a [E],
        group: usize,
        col: &'a mut [E],
    ) -> MatRef<'a, E> {
        if self.spec.is_pointwise() {
            let hw = self.h * self.w;
            MatRef::rows(
                &image[group * self.cg * hw..(group + 1) * self.cg * hw],
                self.cg,
                hw,
            )
        } else {
            self.im2col(image, group, col);
            MatRef::rows(col, self.kdim, self.oh * self.ow)
        }
    }

    /// Group `group`'s weights as a `og x kdim` matrix.
    fn weights<'a, E>(&self, weights: &'a [E], group: usize) -> MatRef<'a, E> {
        let len = self.og * self.kdim;
        MatRef::rows(&weights[group * len..(group + 1) * len], self.og, self.kdim)
    }
}

/// Threads gemm may use inside one image: all of them for a single image
/// (batch-1 inference), none when images already run in parallel.
fn gemm_threads(batch: usize) -> usize {
    if batch == 1 {
        rayon::current_num_threads()
    } else {
        1
    }
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
    let mut ys = vec![E::zero(); n * geo.out_len()];
    let threads = gemm_threads(n);
    let ohw = geo.oh * geo.ow;
    ys.par_chunks_mut(geo.out_len().max(1))
        .zip(xs.par_chunks(geo.in_len().max(1)))
        .for_each_init(
            || geo.scratch(),
            |col, (y, image)| {
                for g in 0..spec.groups {
                    let cols = geo.columns(image, g, col);
                    let out = &mut y[g * geo.og * ohw..(g + 1) * geo.og * ohw];
                    matmul(out, false, geo.weights(&ws, g), cols, threads);
                }
                if let Some(b) = &bs {
                    for (plane, &bias) in y.chunks_mut(ohw.max(1)).zip(b.iter()) {
                        plane.iter_mut().for_each(|v| *v += bias);
                    }
                }
            },
        );
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
            let dy = take_grad!(grads, &yg);
            let (dw, db) = weight_grads(&geo, n, &xs, &dy);
            add_into(grads.get_or_alloc_mut(&wg)?, &dw);
            if let Some(bg) = &bg {
                add_into(grads.get_or_alloc_mut(bg)?, &db);
            }
            if input_grad {
                input_grads(&geo, &ws, &dy, grads.get_or_alloc_mut(&xg)?);
            }
            restore_grad!(grads, &yg, dy)
        });
    }
    y.put_tape(tape)
}

fn add_into<E: Real>(dst: &mut [E], src: &[E]) {
    dst.iter_mut().zip(src).for_each(|(d, &s)| *d += s);
}

/// Images per partial sum of the weight gradients: fixed, not per thread,
/// so the sum's order (and so its rounding) is the same on any number of
/// threads and a checkpointed run resumes identically on another worker.
const IMAGES_PER_PARTIAL: usize = 8;

/// Weight and bias gradients summed over the batch: runs of
/// [`IMAGES_PER_PARTIAL`] images are summed in parallel with their own
/// accumulators, then the runs are added in order.
fn weight_grads<E: Real>(geo: &Geometry, n: usize, xs: &[E], dy: &[E]) -> (Vec<E>, Vec<E>) {
    let spec = geo.spec;
    let ohw = geo.oh * geo.ow;
    let per_thread = IMAGES_PER_PARTIAL;
    let threads = gemm_threads(n);
    let partial: Vec<(Vec<E>, Vec<E>)> = (0..n)
        .collect::<Vec<_>>()
        .par_chunks(per_thread)
        .map(|images| {
            let mut dw = vec![E::zero(); spec.weight_len()];
            let mut db = vec![E::zero(); spec.out_channels];
            let mut col = geo.scratch();
            for &i in images {
                let image = &xs[i * geo.in_len()..(i + 1) * geo.in_len()];
                let grad = &dy[i * geo.out_len()..(i + 1) * geo.out_len()];
                for g in 0..spec.groups {
                    let cols = geo.columns(image, g, &mut col);
                    let dy_g =
                        MatRef::rows(&grad[g * geo.og * ohw..(g + 1) * geo.og * ohw], geo.og, ohw);
                    let len = geo.og * geo.kdim;
                    matmul(
                        &mut dw[g * len..(g + 1) * len],
                        true,
                        dy_g,
                        cols.t(),
                        threads,
                    );
                }
                for (acc, plane) in db.iter_mut().zip(grad.chunks(ohw.max(1))) {
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

/// Adds the input gradient `W^T dY` (through col2im) into `dx`, image by image.
fn input_grads<E: Real>(geo: &Geometry, ws: &[E], dy: &[E], dx: &mut [E]) {
    let spec = geo.spec;
    let ohw = geo.oh * geo.ow;
    let threads = gemm_threads(dx.len() / geo.in_len().max(1));
    dx.par_chunks_mut(geo.in_len().max(1))
        .zip(dy.par_chunks(geo.out_len().max(1)))
        .for_each_init(
            || geo.scratch(),
            |col, (dx, grad)| {
                for g in 0..spec.groups {
                    let dy_g =
                        MatRef::rows(&grad[g * geo.og * ohw..(g + 1) * geo.og * ohw], geo.og, ohw);
                    let w_t = geo.weights(ws, g).t();
                    if spec.is_pointwise() {
                        let hw = geo.h * geo.w;
                        matmul(
                            &mut dx[g * geo.cg * hw..(g + 1) * geo.cg * hw],
                            true,
                            w_t,
                            dy_g,
                            threads,
                        );
                    } else {
                        matmul(col, false, w_t, dy_g, threads);
                        geo.col2im(col, g, dx);
                    }
                }
            },
        );
}
