//! A convolution's geometry with the input size resolved, and how a batch
//! is cut into runs of images that share one matrix product.

use super::Conv2dSpec;
use crate::ops::gemm::MatRef;
use crate::ops::valid_columns;

/// Everything the per-image kernels need, with the input size resolved.
#[derive(Clone, Copy)]
pub(in crate::engine::ops) struct Geometry {
    pub(in crate::engine::ops) spec: Conv2dSpec,
    pub(in crate::engine::ops) h: usize,
    pub(in crate::engine::ops) w: usize,
    pub(in crate::engine::ops) oh: usize,
    pub(in crate::engine::ops) ow: usize,
    /// Input channels per group.
    pub(in crate::engine::ops) cg: usize,
    /// Output channels per group.
    pub(in crate::engine::ops) og: usize,
    /// Rows of the im2col matrix: `cg * kh * kw`.
    pub(super) kdim: usize,
}

impl Geometry {
    pub(in crate::engine::ops) fn new(spec: Conv2dSpec, c: usize, h: usize, w: usize) -> Self {
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

    pub(in crate::engine::ops) fn in_len(&self) -> usize {
        self.spec.in_channels * self.h * self.w
    }

    pub(in crate::engine::ops) fn out_len(&self) -> usize {
        self.spec.out_channels * self.oh * self.ow
    }

    /// The output columns `lo..hi` whose input column `ox * stride + offset`
    /// lies inside the image.
    pub(in crate::engine::ops) fn valid_columns(&self, offset: isize) -> (usize, usize) {
        valid_columns(offset, self.spec.stride.1, self.w, self.ow)
    }

    /// Scratch elements one run of `count` images needs: its im2col matrix
    /// and one group's gathered outputs or gradients.
    pub(super) fn run_scratch(&self, count: usize) -> (usize, usize) {
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
    pub(super) fn weights<'a, E>(&self, weights: &'a [E], group: usize) -> MatRef<'a, E> {
        let len = self.og * self.kdim;
        MatRef::rows(&weights[group * len..(group + 1) * len], self.og, self.kdim)
    }

    /// How to cut a batch of `n` images into runs that share one GEMM.
    pub(super) fn runs(&self, n: usize) -> Runs {
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
pub(super) struct Runs {
    pub(super) images: usize,
    pub(super) gemm_threads: usize,
}
