//! Shape inference and costs: walks an architecture, checks that every layer
//! fits its input, and counts trainable parameters, multiply-accumulates and
//! peak activation memory.
//!
//! Conventions (so figures compare with published ones):
//! - parameters are the trainable ones, as torchvision and Keras count them:
//!   weights, biases, batch-norm gamma and beta; running statistics are not
//!   parameters;
//! - MACs are the multiply-accumulates of convolutions and dense layers
//!   (including those inside squeeze-and-excitation gates and projection
//!   shortcuts) for one image; pooling, normalisation, activations and
//!   element-wise sums are not counted;
//! - peak activation memory is the largest set of f32 tensors alive at once at
//!   batch 1 when the layers run in order, inputs freed after their last use.

use std::fmt;

use serde::{Serialize, Serializer};
use thiserror::Error;

use crate::arch::{
    Architecture, Conv, Layer, NamedPadding, Padding, Pair, SeparableConv, Shortcut,
};

/// Largest size accepted for any single dimension, kernel, channel count or
/// unit count; keeps every cost computation far from integer overflow.
pub const MAX_DIMENSION: usize = 1 << 20;

/// Largest number of elements accepted for one activation tensor (one image).
pub const MAX_ELEMENTS: u64 = 1 << 40;

/// Bytes per activation element (f32).
pub const BYTES_PER_ELEMENT: u64 = 4;

/// The shape of the activations between two layers (batch axis left out).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Shape {
    /// A feature map of `channels x height x width`.
    Map {
        /// Channels.
        c: usize,
        /// Height.
        h: usize,
        /// Width.
        w: usize,
    },
    /// A flat vector of features.
    Flat(usize),
}

impl Shape {
    /// Number of elements.
    pub fn elements(self) -> u64 {
        match self {
            Shape::Map { c, h, w } => c as u64 * h as u64 * w as u64,
            Shape::Flat(n) => n as u64,
        }
    }

    /// The shape as a list: `[c, h, w]` or `[n]`.
    pub fn dims(self) -> Vec<usize> {
        match self {
            Shape::Map { c, h, w } => vec![c, h, w],
            Shape::Flat(n) => vec![n],
        }
    }
}

impl Serialize for Shape {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.dims().serialize(s)
    }
}

impl fmt::Display for Shape {
    /// `(c, h, w)` or `(n)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Shape::Map { c, h, w } => write!(f, "({c}, {h}, {w})"),
            Shape::Flat(n) => write!(f, "({n})"),
        }
    }
}

/// An invalid architecture: where (`layers[3].body[1]`) and why.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{path}: {reason}")]
pub struct ValidationError {
    /// Path of the offending layer or field, e.g. `layers[3].body[1]`.
    pub path: String,
    /// What is wrong, in words.
    pub reason: String,
}

fn err<T>(path: &str, reason: impl Into<String>) -> Result<T, ValidationError> {
    Err(ValidationError {
        path: path.to_owned(),
        reason: reason.into(),
    })
}

/// One row of a [`Report`]: a layer (or a composite) and its costs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LayerReport {
    /// Path of the layer, e.g. `layers[3].body[1]`.
    pub path: String,
    /// The layer's `kind`.
    pub kind: &'static str,
    /// Nesting depth: 0 for top-level layers.
    pub depth: usize,
    /// Input shape for one image.
    pub input: Shape,
    /// Output shape for one image.
    pub output: Shape,
    /// Trainable parameters, including nested layers for composites.
    pub params: u64,
    /// Multiply-accumulates for one image, including nested layers.
    pub macs: u64,
    /// The window of a conv, separable conv or pool, or the stride of a
    /// residual's projection shortcut: what the worker builds, so it runs
    /// exactly the network that was validated.
    #[serde(skip)]
    pub geometry: Option<Geometry>,
}

/// The spatial geometry `validate` settled for a layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Geometry {
    /// A convolution or pooling window: output size and padding.
    Window(WindowGeometry),
    /// The stride of a residual's `1 x 1` projection shortcut.
    Projection(Pair),
}

/// What [`validate`] found: per-layer shapes and the totals.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// Every layer in order, composites before their nested layers.
    pub layers: Vec<LayerReport>,
    /// The network's output shape (always `[classes]`).
    pub output: Shape,
    /// Trainable parameters of the whole network.
    pub params: u64,
    /// Multiply-accumulates for one image.
    pub macs: u64,
    /// Peak activation memory at batch 1, in bytes (f32), input included.
    pub peak_activation_bytes: u64,
}

/// The geometry of a convolution or pooling window along both spatial axes:
/// output size and the zero padding before and after, per axis. Workers use it
/// to run exactly the network that was validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowGeometry {
    /// Output height.
    pub out_h: usize,
    /// Output width.
    pub out_w: usize,
    /// Padding above.
    pub pad_top: usize,
    /// Padding below.
    pub pad_bottom: usize,
    /// Padding on the left.
    pub pad_left: usize,
    /// Padding on the right.
    pub pad_right: usize,
}

/// Why a window (conv or pool) does not fit its input.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum WindowError {
    /// A kernel, stride or dilation of 0.
    #[error("{0} must be at least 1")]
    Zero(&'static str),
    /// The dilated window is larger than the padded input.
    #[error("window of {effective} (kernel {kernel}, dilation {dilation}) is larger than the padded input of {padded}; spatial size would drop below 1")]
    TooLarge {
        /// The dilated window's extent.
        effective: usize,
        /// The kernel along this axis.
        kernel: usize,
        /// The dilation along this axis.
        dilation: usize,
        /// The padded input along this axis.
        padded: usize,
    },
}

/// Output length and padding of one axis of a window.
fn axis_geometry(
    input: usize,
    kernel: usize,
    stride: usize,
    dilation: usize,
    padding: AxisPadding,
) -> Result<(usize, usize, usize), WindowError> {
    let effective = dilation * (kernel - 1) + 1;
    match padding {
        AxisPadding::Same => {
            let out = input.div_ceil(stride);
            let total = ((out - 1) * stride + effective).saturating_sub(input);
            Ok((out, total / 2, total - total / 2))
        }
        AxisPadding::Explicit(p) => {
            let padded = input + 2 * p;
            if padded < effective {
                return Err(WindowError::TooLarge {
                    effective,
                    kernel,
                    dilation,
                    padded,
                });
            }
            Ok(((padded - effective) / stride + 1, p, p))
        }
    }
}

#[derive(Clone, Copy)]
enum AxisPadding {
    Same,
    Explicit(usize),
}

/// Computes the output size and padding of a window (conv or pool) over an
/// `input_h x input_w` map. Errors say why the window does not fit.
pub fn window_geometry(
    input_h: usize,
    input_w: usize,
    kernel: Pair,
    stride: Pair,
    dilation: Pair,
    padding: Padding,
) -> Result<WindowGeometry, WindowError> {
    for (setting, value) in [
        ("kernel", kernel),
        ("stride", stride),
        ("dilation", dilation),
    ] {
        if value.has_zero() {
            return Err(WindowError::Zero(setting));
        }
    }
    let (ph, pw) = match padding {
        Padding::Named(NamedPadding::Same) => (AxisPadding::Same, AxisPadding::Same),
        Padding::Named(NamedPadding::Valid) => (AxisPadding::Explicit(0), AxisPadding::Explicit(0)),
        Padding::Explicit(p) => (AxisPadding::Explicit(p.h()), AxisPadding::Explicit(p.w())),
    };
    let (out_h, pad_top, pad_bottom) =
        axis_geometry(input_h, kernel.h(), stride.h(), dilation.h(), ph)?;
    let (out_w, pad_left, pad_right) =
        axis_geometry(input_w, kernel.w(), stride.w(), dilation.w(), pw)?;
    Ok(WindowGeometry {
        out_h,
        out_w,
        pad_top,
        pad_bottom,
        pad_left,
        pad_right,
    })
}

/// The stride of a `1 x 1` projection shortcut that maps an `h x w` input onto
/// `out_h x out_w`, if one exists.
pub fn projection_stride(h: usize, w: usize, out_h: usize, out_w: usize) -> Option<Pair> {
    let axis = |input: usize, out: usize| {
        (1..=input.max(1)).find(|s| input >= 1 && out >= 1 && (input - 1) / s + 1 == out)
    };
    let sh = axis(h, out_h)?;
    let sw = axis(w, out_w)?;
    Some(if sh == sw {
        Pair::Square(sh)
    } else {
        Pair::Rect([sh, sw])
    })
}

/// Checked arithmetic for costs: architectures come from users.
fn product(path: &str, factors: &[u64]) -> Result<u64, ValidationError> {
    factors
        .iter()
        .try_fold(1u64, |acc, &f| acc.checked_mul(f))
        .map_or_else(
            || err(path, "sizes are too large: a cost overflows 64 bits"),
            Ok,
        )
}

fn sum(path: &str, terms: &[u64]) -> Result<u64, ValidationError> {
    terms
        .iter()
        .try_fold(0u64, |acc, &t| acc.checked_add(t))
        .map_or_else(
            || err(path, "sizes are too large: a cost overflows 64 bits"),
            Ok,
        )
}

fn check_size(path: &str, field: &str, value: usize) -> Result<(), ValidationError> {
    if value == 0 {
        return err(path, format!("{field} must be at least 1"));
    }
    if value > MAX_DIMENSION {
        return err(
            path,
            format!("{field} of {value} is larger than the maximum of {MAX_DIMENSION}"),
        );
    }
    Ok(())
}

fn check_pair(path: &str, field: &str, value: Pair) -> Result<(), ValidationError> {
    check_size(path, field, value.h())?;
    check_size(path, field, value.w())
}

fn check_padding(path: &str, padding: Padding) -> Result<(), ValidationError> {
    if let Padding::Explicit(p) = padding {
        if p.h() > MAX_DIMENSION || p.w() > MAX_DIMENSION {
            return err(path, "padding is larger than the maximum dimension");
        }
    }
    Ok(())
}

fn expect_map(
    path: &str,
    kind: &str,
    shape: Shape,
) -> Result<(usize, usize, usize), ValidationError> {
    match shape {
        Shape::Map { c, h, w } => Ok((c, h, w)),
        Shape::Flat(n) => err(
            path,
            format!("{kind} needs a feature map (c, h, w) but its input is a flat vector of {n}"),
        ),
    }
}

/// The running state of the walk: rows produced so far.
struct Walker {
    rows: Vec<LayerReport>,
}

/// What walking one layer or sequence produced.
#[derive(Clone, Copy)]
struct Costs {
    output: Shape,
    params: u64,
    macs: u64,
    /// Peak elements alive while it runs, not counting tensors kept alive by
    /// enclosing composites, but counting its own input.
    peak: u64,
    /// The layer's window or projection stride, for its report row.
    geometry: Option<Geometry>,
}

impl Costs {
    /// A layer that reads its input and writes its output, nothing more.
    fn simple(input: Shape, output: Shape, params: u64, macs: u64) -> Self {
        Self {
            output,
            params,
            macs,
            peak: input.elements() + output.elements(),
            geometry: None,
        }
    }

    fn with(self, geometry: Geometry) -> Self {
        Self {
            geometry: Some(geometry),
            ..self
        }
    }
}

impl Walker {
    /// Walks a sequence. `input_kept` says whether an enclosing composite
    /// still needs the sequence's input after its first layer (a residual's
    /// shortcut, or the other paths of a `branches`), for peak memory.
    fn sequence(
        &mut self,
        layers: &[Layer],
        prefix: &str,
        depth: usize,
        input: Shape,
        input_kept: bool,
    ) -> Result<Costs, ValidationError> {
        let mut shape = input;
        let (mut params, mut macs, mut peak) = (0u64, 0u64, input.elements());
        for (i, layer) in layers.iter().enumerate() {
            let path = format!("{prefix}[{i}]");
            let c = self.layer(layer, &path, depth, shape)?;
            if c.output.elements() > MAX_ELEMENTS {
                return err(
                    &path,
                    format!("output {} has more than {MAX_ELEMENTS} elements", c.output),
                );
            }
            // The sequence's input stays alive after layer 0 only if an
            // enclosing composite still needs it (shortcut or other branches).
            let held = if i > 0 && input_kept {
                input.elements()
            } else {
                0
            };
            peak = peak.max(c.peak + held);
            params = sum(&path, &[params, c.params])?;
            macs = sum(&path, &[macs, c.macs])?;
            shape = c.output;
        }
        Ok(Costs {
            output: shape,
            params,
            macs,
            peak,
            geometry: None,
        })
    }

    fn layer(
        &mut self,
        layer: &Layer,
        path: &str,
        depth: usize,
        input: Shape,
    ) -> Result<Costs, ValidationError> {
        // Reserve this layer's row so composites come before their children.
        let row = self.rows.len();
        self.rows.push(LayerReport {
            path: path.to_owned(),
            kind: layer.kind(),
            depth,
            input,
            output: input,
            params: 0,
            macs: 0,
            geometry: None,
        });
        let costs = self.layer_costs(layer, path, depth, input)?;
        let report = &mut self.rows[row];
        report.output = costs.output;
        report.params = costs.params;
        report.macs = costs.macs;
        report.geometry = costs.geometry;
        Ok(costs)
    }

    fn layer_costs(
        &mut self,
        layer: &Layer,
        path: &str,
        depth: usize,
        input: Shape,
    ) -> Result<Costs, ValidationError> {
        let simple =
            |output: Shape, params: u64, macs: u64| Costs::simple(input, output, params, macs);
        match layer {
            Layer::Conv(conv) => conv_costs(conv, path, input),
            Layer::SeparableConv(sep) => separable_costs(sep, path, input),
            Layer::Pool(pool) => pool_costs(pool, path, input),
            Layer::GlobalAvgPool(_) => {
                let (c, _, _) = expect_map(path, "global_avg_pool", input)?;
                Ok(simple(Shape::Flat(c), 0, 0))
            }
            Layer::Flatten(_) => {
                let n = input.elements();
                if n > MAX_DIMENSION as u64 * 64 {
                    return err(path, format!("flattening gives {n} features, too many"));
                }
                // Flattening is a view: no new memory.
                Ok(Costs {
                    output: Shape::Flat(n as usize),
                    params: 0,
                    macs: 0,
                    peak: n,
                    geometry: None,
                })
            }
            Layer::Dense(dense) => {
                let Shape::Flat(n) = input else {
                    return err(
                        path,
                        format!(
                            "dense needs a flat vector but its input is a feature map {input}; add a flatten or global_avg_pool layer before it"
                        ),
                    );
                };
                check_size(path, "units", dense.units)?;
                let u = dense.units as u64;
                let weights = product(path, &[n as u64, u])?;
                let params = sum(path, &[weights, if dense.bias { u } else { 0 }])?;
                Ok(simple(Shape::Flat(dense.units), params, weights))
            }
            Layer::Dropout(d) => {
                if !(0.0..1.0).contains(&d.rate) {
                    return err(path, format!("dropout rate {} must be in [0, 1)", d.rate));
                }
                Ok(simple(input, 0, 0))
            }
            Layer::Activation(_) => Ok(simple(input, 0, 0)),
            Layer::Lrn(lrn) => {
                expect_map(path, "lrn", input)?;
                check_size(path, "size", lrn.size)?;
                let finite = [lrn.alpha, lrn.beta, lrn.k].iter().all(|v| v.is_finite());
                if !finite || lrn.k <= 0.0 || lrn.alpha < 0.0 {
                    return err(path, "lrn needs finite alpha >= 0, beta and k > 0");
                }
                Ok(simple(input, 0, 0))
            }
            Layer::Se(se) => se_costs(se, path, input),
            Layer::Residual(res) => self.residual(res, path, depth, input),
            Layer::Branches(br) => self.branches(&br.branches, path, depth, input),
        }
    }

    fn residual(
        &mut self,
        res: &crate::arch::Residual,
        path: &str,
        depth: usize,
        input: Shape,
    ) -> Result<Costs, ValidationError> {
        if res.body.is_empty() {
            return err(path, "residual body is empty");
        }
        let body = self.sequence(&res.body, &format!("{path}.body"), depth + 1, input, true)?;
        let out = body.output;
        let (mut params, mut macs) = (body.params, body.macs);
        let mut peak = body.peak;
        let mut geometry = None;
        match res.shortcut {
            Shortcut::Identity => {
                if out != input {
                    return err(
                        path,
                        format!(
                            "identity shortcut needs the body to keep the shape {input}, but it outputs {out}; use \"shortcut\": \"projection\""
                        ),
                    );
                }
                peak = peak.max(input.elements() + 2 * out.elements());
            }
            Shortcut::Projection => {
                let (c, h, w) = expect_map(path, "a projection shortcut", input)?;
                let (oc, oh, ow) = expect_map(path, "a projection shortcut", out)?;
                let Some(stride) = projection_stride(h, w, oh, ow) else {
                    return err(
                        path,
                        format!(
                            "no 1x1 strided projection maps {input} onto the body's output {out}"
                        ),
                    );
                };
                geometry = Some(Geometry::Projection(stride));
                let weights = product(path, &[c as u64, oc as u64])?;
                params = sum(path, &[params, weights, 2 * oc as u64])?;
                macs = sum(
                    path,
                    &[macs, product(path, &[weights, oh as u64, ow as u64])?],
                )?;
                peak = peak.max(input.elements() + 2 * out.elements());
            }
        }
        Ok(Costs {
            output: out,
            params,
            macs,
            peak: peak.max(3 * out.elements()),
            geometry,
        })
    }

    fn branches(
        &mut self,
        branches: &[Vec<Layer>],
        path: &str,
        depth: usize,
        input: Shape,
    ) -> Result<Costs, ValidationError> {
        if branches.is_empty() {
            return err(path, "branches needs at least one branch");
        }
        let (_, _, _) = expect_map(path, "branches", input)?;
        let (mut params, mut macs, mut channels) = (0u64, 0u64, 0usize);
        let mut spatial: Option<(usize, usize, usize)> = None;
        let (mut done_elems, mut peak) = (0u64, input.elements());
        for (j, branch) in branches.iter().enumerate() {
            let bpath = format!("{path}.branches[{j}]");
            let c = self.sequence(branch, &bpath, depth + 1, input, true)?;
            let (bc, bh, bw) = match c.output {
                Shape::Map { c, h, w } => (c, h, w),
                Shape::Flat(_) => {
                    return err(
                        &bpath,
                        "a branch must output a feature map to be concatenated",
                    )
                }
            };
            match spatial {
                None => spatial = Some((j, bh, bw)),
                Some((first, h, w)) if (h, w) != (bh, bw) => {
                    return err(
                        &bpath,
                        format!(
                            "branch outputs {bh}x{bw} but branches[{first}] outputs {h}x{w}; concatenated branches need the same spatial size"
                        ),
                    )
                }
                Some(_) => {}
            }
            // The input stays alive for the other branches; finished outputs wait for the concat.
            peak = peak.max(c.peak + done_elems + input.elements());
            done_elems += c.output.elements();
            channels = channels.saturating_add(bc);
            params = sum(&bpath, &[params, c.params])?;
            macs = sum(&bpath, &[macs, c.macs])?;
        }
        check_size(path, "concatenated channels", channels)?;
        let (_, h, w) = spatial.unwrap_or((0, 1, 1));
        let output = Shape::Map { c: channels, h, w };
        Ok(Costs {
            output,
            params,
            macs,
            peak: peak.max(done_elems + output.elements()),
            geometry: None,
        })
    }
}

/// A convolution window's settings: kernel, stride, dilation, padding.
type WindowSettings = (Pair, Pair, Pair, Padding);

/// Checks a convolution window's settings and fits it on an `h x w` map.
fn checked_window(
    path: &str,
    (h, w): (usize, usize),
    (kernel, stride, dilation, padding): WindowSettings,
) -> Result<WindowGeometry, ValidationError> {
    check_pair(path, "kernel", kernel)?;
    check_pair(path, "stride", stride)?;
    check_pair(path, "dilation", dilation)?;
    check_padding(path, padding)?;
    window_geometry(h, w, kernel, stride, dilation, padding)
        .or_else(|reason| err(path, reason.to_string()))
}

/// Checks a `conv` layer on `input` and counts its costs.
fn conv_costs(conv: &Conv, path: &str, input: Shape) -> Result<Costs, ValidationError> {
    let (c, h, w) = expect_map(path, "conv", input)?;
    check_size(path, "filters", conv.filters)?;
    check_size(path, "groups", conv.groups)?;
    if !c.is_multiple_of(conv.groups) || !conv.filters.is_multiple_of(conv.groups) {
        return err(
            path,
            format!(
                "groups ({}) must divide both the input channels ({c}) and the filters ({})",
                conv.groups, conv.filters
            ),
        );
    }
    let settings = (conv.kernel, conv.stride, conv.dilation, conv.padding);
    let g = checked_window(path, (h, w), settings)?;
    let k = conv.kernel.h() as u64 * conv.kernel.w() as u64;
    let per_filter = (c / conv.groups) as u64 * k;
    let f = conv.filters as u64;
    let weights = product(path, &[per_filter, f])?;
    let params = conv_params(path, &[weights], f, conv.bias, conv.batch_norm)?;
    let macs = product(path, &[weights, g.out_h as u64, g.out_w as u64])?;
    let output = map_of(conv.filters, &g);
    Ok(Costs::simple(input, output, params, macs).with(Geometry::Window(g)))
}

/// Parameters of a convolution: its `weights`, and per output channel (`f`
/// of them) a bias and a batch norm's scale and shift if it has them.
fn conv_params(
    path: &str,
    weights: &[u64],
    f: u64,
    bias: bool,
    batch_norm: bool,
) -> Result<u64, ValidationError> {
    let per_channel = [if bias { f } else { 0 }, if batch_norm { 2 * f } else { 0 }];
    sum(path, &[sum(path, weights)?, sum(path, &per_channel)?])
}

/// The feature map of `filters` channels a window geometry `g` gives.
fn map_of(filters: usize, g: &WindowGeometry) -> Shape {
    Shape::Map {
        c: filters,
        h: g.out_h,
        w: g.out_w,
    }
}

/// Checks a `separable_conv` layer on `input` and counts its costs.
fn separable_costs(
    sep: &SeparableConv,
    path: &str,
    input: Shape,
) -> Result<Costs, ValidationError> {
    let (c, h, w) = expect_map(path, "separable_conv", input)?;
    check_size(path, "filters", sep.filters)?;
    check_size(path, "depth_multiplier", sep.depth_multiplier)?;
    let settings = (sep.kernel, sep.stride, sep.dilation, sep.padding);
    let g = checked_window(path, (h, w), settings)?;
    let mid = product(path, &[c as u64, sep.depth_multiplier as u64])?;
    let k = sep.kernel.h() as u64 * sep.kernel.w() as u64;
    let f = sep.filters as u64;
    let depthwise = product(path, &[mid, k])?;
    let pointwise = product(path, &[mid, f])?;
    let params = conv_params(path, &[depthwise, pointwise], f, sep.bias, sep.batch_norm)?;
    let hw = g.out_h as u64 * g.out_w as u64;
    let macs = product(path, &[sum(path, &[depthwise, pointwise])?, hw])?;
    let output = map_of(sep.filters, &g);
    // The depthwise result is alive while the pointwise runs.
    let mid_elems = product(path, &[mid, hw])?;
    Ok(Costs {
        output,
        params,
        macs,
        peak: input.elements().max(output.elements()) + mid_elems,
        geometry: Some(Geometry::Window(g)),
    })
}

/// Checks a `pool` layer on `input`.
fn pool_costs(
    pool: &crate::arch::Pool,
    path: &str,
    input: Shape,
) -> Result<Costs, ValidationError> {
    let (c, h, w) = expect_map(path, "pool", input)?;
    check_pair(path, "kernel", pool.kernel)?;
    let stride = pool.stride;
    check_pair(path, "stride", stride)?;
    check_padding(path, pool.padding)?;
    if let Padding::Explicit(p) = pool.padding {
        if 2 * p.h() > pool.kernel.h() || 2 * p.w() > pool.kernel.w() {
            return err(
                path,
                format!(
                    "pool padding {p} must be at most half the kernel {}",
                    pool.kernel
                ),
            );
        }
    }
    let g = window_geometry(h, w, pool.kernel, stride, Pair::Square(1), pool.padding)
        .or_else(|reason| err(path, reason.to_string()))?;
    let output = Shape::Map {
        c,
        h: g.out_h,
        w: g.out_w,
    };
    Ok(Costs::simple(input, output, 0, 0).with(Geometry::Window(g)))
}

/// Checks an `se` gate on `input` and counts its costs.
fn se_costs(
    se: &crate::arch::SqueezeExcitation,
    path: &str,
    input: Shape,
) -> Result<Costs, ValidationError> {
    let (c, _, _) = expect_map(path, "se", input)?;
    check_size(path, "reduction", se.reduction)?;
    let hidden = se.hidden(c) as u64;
    let c = c as u64;
    let weights = product(path, &[2, c, hidden])?;
    let params = sum(path, &[weights, hidden, c])?;
    let mut costs = Costs::simple(input, input, params, weights);
    costs.peak += c + hidden;
    Ok(costs)
}

/// Checks an architecture and computes its per-layer shapes and costs.
///
/// The network must end in a flat vector of `classes` logits. Errors name the
/// path of the first offending layer and the reason.
pub fn validate(arch: &Architecture) -> Result<Report, ValidationError> {
    let input = arch.input;
    check_size("input", "channels", input.channels)?;
    check_size("input", "height", input.height)?;
    check_size("input", "width", input.width)?;
    check_size("classes", "classes", arch.classes)?;
    if arch.layers.is_empty() {
        return err("layers", "an architecture needs at least one layer");
    }
    let mut walker = Walker { rows: Vec::new() };
    let shape = Shape::Map {
        c: input.channels,
        h: input.height,
        w: input.width,
    };
    if shape.elements() > MAX_ELEMENTS {
        return err(
            "input",
            format!("input {shape} has more than {MAX_ELEMENTS} elements"),
        );
    }
    let costs = walker.sequence(&arch.layers, "layers", 0, shape, false)?;
    if costs.output != Shape::Flat(arch.classes) {
        return err(
            &format!("layers[{}]", arch.layers.len() - 1),
            format!(
                "the network ends with shape {} but must end with a flat vector of {} class logits",
                costs.output, arch.classes
            ),
        );
    }
    Ok(Report {
        layers: walker.rows,
        output: costs.output,
        params: costs.params,
        macs: costs.macs,
        peak_activation_bytes: costs.peak.saturating_mul(BYTES_PER_ELEMENT),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::{Architecture, Pair};

    fn arch(json: &str) -> Architecture {
        Architecture::from_json(json).expect("valid JSON")
    }

    /// The geometry of a square window over a square `size` input.
    fn square(
        size: usize,
        kernel: usize,
        stride: usize,
        dilation: usize,
        padding: Padding,
    ) -> WindowGeometry {
        window_geometry(
            size,
            size,
            Pair::Square(kernel),
            Pair::Square(stride),
            Pair::Square(dilation),
            padding,
        )
        .expect("fits")
    }

    #[test]
    fn same_padding_matches_tensorflow() {
        // (size, kernel, stride, dilation) -> (out, pad top, pad bottom)
        for ((size, kernel, stride, dilation), expected) in [
            ((7, 3, 2, 1), (4, 1, 1)),
            ((8, 3, 2, 1), (4, 0, 1)),
            ((5, 3, 1, 2), (5, 2, 2)),
        ] {
            let g = square(size, kernel, stride, dilation, Padding::SAME);
            assert_eq!(
                (g.out_h, g.pad_top, g.pad_bottom),
                expected,
                "{size} {kernel} {stride} {dilation}"
            );
        }
    }

    #[test]
    fn explicit_padding_matches_pytorch() {
        assert_eq!(square(224, 7, 2, 1, Padding::explicit(3)).out_h, 112);
        assert_eq!(square(227, 11, 4, 1, Padding::VALID).out_h, 55);
    }

    #[test]
    fn costs_of_a_small_net() {
        let a = arch(
            r#"{"input":[1,8,8],"classes":3,"layers":[
                {"kind":"conv","filters":4,"kernel":3,"padding":"same","batch_norm":true,"bias":false},
                {"kind":"se","reduction":2},
                {"kind":"pool","op":"max","kernel":2},
                {"kind":"flatten"},
                {"kind":"dense","units":3}
            ]}"#,
        );
        let r = validate(&a).expect("valid");
        // conv 1*9*4 + bn 8; se 4*2+2 + 2*4+4; dense 64*3+3
        assert_eq!(r.params, 36 + 8 + 10 + 12 + 195);
        assert_eq!(r.macs, 36 * 64 + 16 + 192);
        assert_eq!(r.output, Shape::Flat(3));
        assert_eq!(r.layers[2].output, Shape::Map { c: 4, h: 4, w: 4 });
    }

    #[test]
    fn errors_name_the_nested_path() {
        let a = arch(
            r#"{"input":[3,8,8],"classes":2,"layers":[
                {"kind":"conv","filters":4,"kernel":1},
                {"kind":"residual","body":[
                    {"kind":"conv","filters":4,"kernel":3,"padding":1},
                    {"kind":"conv","filters":8,"kernel":3,"padding":1}
                ]},
                {"kind":"global_avg_pool"},
                {"kind":"dense","units":2}
            ]}"#,
        );
        let e = validate(&a).expect_err("identity shortcut with channel change");
        assert_eq!(e.path, "layers[1]");
        assert!(e.reason.contains("projection"), "{e}");

        let a = arch(
            r#"{"input":[3,8,8],"classes":2,"layers":[
                {"kind":"branches","branches":[[{"kind":"conv","filters":2,"kernel":1}],
                   [{"kind":"conv","filters":2,"kernel":3,"groups":2}]]},
                {"kind":"global_avg_pool"},{"kind":"dense","units":2}
            ]}"#,
        );
        let e = validate(&a).expect_err("groups must divide 3");
        assert_eq!(e.path, "layers[0].branches[1][0]");

        let a = arch(
            r#"{"input":[1,4,4],"classes":2,"layers":[
                {"kind":"pool","op":"max","kernel":2},{"kind":"pool","op":"max","kernel":2},
                {"kind":"pool","op":"max","kernel":2},{"kind":"flatten"},{"kind":"dense","units":2}
            ]}"#,
        );
        let e = validate(&a).expect_err("spatial size below 1");
        assert_eq!(e.path, "layers[2]");
        assert!(e.reason.contains("below 1"), "{e}");
    }

    #[test]
    fn wrong_ending_and_dense_on_map_are_errors() {
        let a = arch(r#"{"input":[1,4,4],"classes":2,"layers":[{"kind":"dense","units":2}]}"#);
        assert!(validate(&a)
            .expect_err("dense on map")
            .reason
            .contains("flatten"));
        let a = arch(
            r#"{"input":[1,4,4],"classes":2,"layers":[{"kind":"flatten"},{"kind":"dense","units":3}]}"#,
        );
        assert!(validate(&a)
            .expect_err("3 logits for 2 classes")
            .reason
            .contains("class logits"));
        let a = arch(
            r#"{"input":[1,4,4],"classes":2,"layers":[{"kind":"conv","filters":0,"kernel":1}]}"#,
        );
        assert!(validate(&a)
            .expect_err("zero filters")
            .reason
            .contains("filters"));
    }

    #[test]
    fn huge_sizes_are_errors_not_overflows() {
        let a = arch(
            r#"{"input":[1048576,1048576,1048576],"classes":2,"layers":[
                {"kind":"conv","filters":1048576,"kernel":1048576,"padding":"same"},
                {"kind":"global_avg_pool"},{"kind":"dense","units":2}]}"#,
        );
        assert!(validate(&a).is_err());
    }

    #[test]
    fn projection_stride_matches_strided_bodies() {
        assert_eq!(projection_stride(56, 56, 28, 28), Some(Pair::Square(2)));
        assert_eq!(projection_stride(7, 7, 4, 4), Some(Pair::Square(2)));
        assert_eq!(projection_stride(8, 8, 8, 8), Some(Pair::Square(1)));
        assert_eq!(projection_stride(8, 8, 9, 9), None);
    }
}
