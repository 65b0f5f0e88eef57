//! The architecture (genome) of a candidate network and its versioned JSON form.
//!
//! An [`Architecture`] is a plain sequence of [`Layer`]s applied to an input of
//! shape `(channels, height, width)`, ending in a flat vector of class logits.
//! Two composites nest layers: [`Residual`] (a body plus a shortcut, added) and
//! [`Branches`] (parallel paths concatenated on channels, as in inception).
//!
//! The JSON form is stable: every field is written out on serialisation, so
//! the [canonical hash](Architecture::canonical_hash) does not depend on which
//! defaults a user spelled out. `version` names the format; unknown versions
//! and unknown fields are rejected rather than guessed at.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::genome::Genotype;

/// The version of the architecture JSON format this crate reads and writes.
pub const ARCHITECTURE_VERSION: u32 = 1;

/// A complete candidate network: input, layers and number of classes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Architecture {
    /// Format version; always [`ARCHITECTURE_VERSION`] when written.
    #[serde(default = "current_version")]
    pub version: u32,
    /// A human-readable name (zoo entry, or empty for sampled candidates).
    #[serde(default)]
    pub name: String,
    /// The input image shape, written as `[channels, height, width]`.
    pub input: InputShape,
    /// The number of classes; the last layer must produce this many logits.
    pub classes: usize,
    /// The layers, applied in order.
    pub layers: Vec<Layer>,
    /// How a search space produced this architecture, when it did. Mutation
    /// works on it; it does not affect the network or its hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub genotype: Option<Genotype>,
}

fn current_version() -> u32 {
    ARCHITECTURE_VERSION
}

/// The shape of one input image, serialised as `[channels, height, width]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "[usize; 3]", into = "[usize; 3]")]
pub struct InputShape {
    /// Number of channels (1 for grey, 3 for RGB).
    pub channels: usize,
    /// Height in pixels.
    pub height: usize,
    /// Width in pixels.
    pub width: usize,
}

impl InputShape {
    /// An input shape from channels, height and width.
    pub const fn new(channels: usize, height: usize, width: usize) -> Self {
        Self {
            channels,
            height,
            width,
        }
    }
}

impl From<[usize; 3]> for InputShape {
    fn from([channels, height, width]: [usize; 3]) -> Self {
        Self::new(channels, height, width)
    }
}

impl From<InputShape> for [usize; 3] {
    fn from(s: InputShape) -> Self {
        [s.channels, s.height, s.width]
    }
}

impl fmt::Display for InputShape {
    /// Written as `HxWxC`, the form the CLI accepts.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{}x{}", self.height, self.width, self.channels)
    }
}

/// Error parsing an `HxWxC` input shape such as `28x28x1`.
#[derive(Debug, Error)]
#[error("input shape `{0}` is not of the form HxWxC with positive numbers, e.g. 28x28x1")]
pub struct InputShapeParseError(String);

impl std::str::FromStr for InputShape {
    type Err = InputShapeParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<usize> = s
            .split(['x', 'X'])
            .map(|p| p.trim().parse::<usize>())
            .collect::<Result<_, _>>()
            .map_err(|_| InputShapeParseError(s.to_owned()))?;
        match parts.as_slice() {
            &[h, w, c] if h > 0 && w > 0 && c > 0 => Ok(Self::new(c, h, w)),
            _ => Err(InputShapeParseError(s.to_owned())),
        }
    }
}

/// A size along height and width: one number for both, or `[height, width]`.
/// `[a, a]` is read as `a`, so one network has one form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "PairRepr", into = "PairRepr")]
pub enum Pair {
    /// The same value along both axes.
    Square(usize),
    /// `[height, width]`.
    Rect([usize; 2]),
}

/// The JSON form of a [`Pair`].
#[derive(Clone, Copy, Serialize, Deserialize)]
#[serde(untagged, expecting = "a size: a number, or a [height, width] pair")]
enum PairRepr {
    Square(usize),
    Rect([usize; 2]),
}

impl From<PairRepr> for Pair {
    fn from(repr: PairRepr) -> Self {
        match repr {
            PairRepr::Square(v) => Pair::Square(v),
            PairRepr::Rect([h, w]) if h == w => Pair::Square(h),
            PairRepr::Rect(hw) => Pair::Rect(hw),
        }
    }
}

impl From<Pair> for PairRepr {
    fn from(pair: Pair) -> Self {
        match pair {
            Pair::Square(v) => PairRepr::Square(v),
            Pair::Rect(hw) => PairRepr::Rect(hw),
        }
    }
}

impl Pair {
    /// The value along the height axis.
    pub const fn h(self) -> usize {
        match self {
            Pair::Square(v) => v,
            Pair::Rect([h, _]) => h,
        }
    }

    /// The value along the width axis.
    pub const fn w(self) -> usize {
        match self {
            Pair::Square(v) => v,
            Pair::Rect([_, w]) => w,
        }
    }

    /// Whether either component is zero.
    pub const fn has_zero(self) -> bool {
        self.h() == 0 || self.w() == 0
    }
}

impl From<usize> for Pair {
    fn from(v: usize) -> Self {
        Pair::Square(v)
    }
}

impl fmt::Display for Pair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pair::Square(v) => write!(f, "{v}"),
            Pair::Rect([h, w]) => write!(f, "{h}x{w}"),
        }
    }
}

/// Spatial padding of a convolution or pooling window. An explicit padding
/// of 0 is read as `"valid"`, so one network has one form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "PaddingRepr", into = "PaddingRepr")]
pub enum Padding {
    /// `"same"` or `"valid"`.
    Named(NamedPadding),
    /// Explicit zero padding on each side: one number, or `[height, width]`.
    Explicit(Pair),
}

/// The JSON form of a [`Padding`].
#[derive(Clone, Copy, Serialize, Deserialize)]
#[serde(
    untagged,
    expecting = "a padding: \"same\", \"valid\", a number or a [height, width] pair"
)]
enum PaddingRepr {
    Named(NamedPadding),
    Explicit(Pair),
}

impl From<PaddingRepr> for Padding {
    fn from(repr: PaddingRepr) -> Self {
        match repr {
            PaddingRepr::Explicit(p) if p.h() == 0 && p.w() == 0 => Padding::VALID,
            PaddingRepr::Explicit(p) => Padding::Explicit(p),
            PaddingRepr::Named(n) => Padding::Named(n),
        }
    }
}

impl From<Padding> for PaddingRepr {
    fn from(padding: Padding) -> Self {
        match padding {
            Padding::Named(n) => PaddingRepr::Named(n),
            Padding::Explicit(p) => PaddingRepr::Explicit(p),
        }
    }
}

/// The named padding modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NamedPadding {
    /// Output size `ceil(input / stride)`; the total padding is split with the
    /// extra pixel at the bottom/right, as TensorFlow and Keras do.
    Same,
    /// No padding.
    Valid,
}

impl Padding {
    /// `"same"` padding.
    pub const SAME: Padding = Padding::Named(NamedPadding::Same);
    /// `"valid"` (no) padding.
    pub const VALID: Padding = Padding::Named(NamedPadding::Valid);

    /// Symmetric explicit padding of `p` pixels on every side (`"valid"` for 0).
    pub const fn explicit(p: usize) -> Padding {
        if p == 0 {
            Padding::VALID
        } else {
            Padding::Explicit(Pair::Square(p))
        }
    }
}

impl Default for Padding {
    fn default() -> Self {
        Padding::VALID
    }
}

impl fmt::Display for Padding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Padding::Named(NamedPadding::Same) => f.write_str("same"),
            Padding::Named(NamedPadding::Valid) => f.write_str("valid"),
            Padding::Explicit(p) => write!(f, "{p}"),
        }
    }
}

/// An element-wise activation function.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// Identity.
    #[default]
    None,
    /// `max(x, 0)`.
    Relu,
    /// `min(max(x, 0), 6)`.
    Relu6,
    /// Hyperbolic tangent.
    Tanh,
    /// Logistic sigmoid.
    Sigmoid,
    /// `x * sigmoid(x)` (also called SiLU).
    Swish,
}

impl Activation {
    /// Every activation, in a fixed order.
    pub const ALL: [Activation; 6] = [
        Activation::None,
        Activation::Relu,
        Activation::Relu6,
        Activation::Tanh,
        Activation::Sigmoid,
        Activation::Swish,
    ];

    /// The JSON name of this activation.
    pub const fn name(self) -> &'static str {
        match self {
            Activation::None => "none",
            Activation::Relu => "relu",
            Activation::Relu6 => "relu6",
            Activation::Tanh => "tanh",
            Activation::Sigmoid => "sigmoid",
            Activation::Swish => "swish",
        }
    }
}

/// One layer of an architecture. Serialised with a `"kind"` tag.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Layer {
    /// 2-D convolution, optionally followed by batch norm and an activation.
    Conv(Conv),
    /// Max or average pooling.
    Pool(Pool),
    /// Mean over the spatial axes; the output is a flat vector of channels.
    GlobalAvgPool(GlobalAvgPool),
    /// Flattens a `(c, h, w)` map into a vector of `c * h * w` (channel-major).
    Flatten(Flatten),
    /// Fully connected layer on a flat vector.
    Dense(Dense),
    /// Dropout (active in training only).
    Dropout(Dropout),
    /// A standalone activation.
    Activation(ActivationLayer),
    /// Local response normalisation across channels (AlexNet, GoogLeNet).
    Lrn(Lrn),
    /// Depthwise `k x k` convolution followed by a pointwise `1 x 1` one.
    SeparableConv(SeparableConv),
    /// Squeeze-and-excitation: channels re-weighted by a learned gate.
    Se(SqueezeExcitation),
    /// A body added to a shortcut of its input.
    Residual(Residual),
    /// Parallel paths on the same input, concatenated on channels.
    Branches(Branches),
}

/// Declares [`LayerKind`] with each kind's JSON name, once: the names,
/// [`Layer::kind`], the list in error messages and the parser all come from
/// this one table, and `match`es on [`LayerKind`] are checked for
/// exhaustiveness, so a new layer kind is one line here plus its fields.
macro_rules! layer_kinds {
    ($($variant:ident => $name:literal,)*) => {
        /// The kind of a [`Layer`], without its fields.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum LayerKind {
            $(
                #[doc = concat!("`", $name, "`")]
                $variant,
            )*
        }

        impl LayerKind {
            /// Every kind, in the order of [`Layer`]'s variants.
            pub const ALL: &'static [LayerKind] = &[$(LayerKind::$variant),*];

            /// The JSON `kind` name.
            pub const fn name(self) -> &'static str {
                match self {
                    $(LayerKind::$variant => $name,)*
                }
            }
        }

        impl Layer {
            /// The kind of this layer.
            pub const fn layer_kind(&self) -> LayerKind {
                match self {
                    $(Layer::$variant(_) => LayerKind::$variant,)*
                }
            }
        }

        /// Parses one layer's fields given its kind.
        fn layer_of_kind<E: serde::de::Error>(
            kind: LayerKind,
            fields: serde_json::Value,
        ) -> Result<Layer, E> {
            Ok(match kind {
                $(LayerKind::$variant => Layer::$variant(layer_fields(fields)?),)*
            })
        }
    };
}

layer_kinds! {
    Conv => "conv",
    Pool => "pool",
    GlobalAvgPool => "global_avg_pool",
    Flatten => "flatten",
    Dense => "dense",
    Dropout => "dropout",
    Activation => "activation",
    Lrn => "lrn",
    SeparableConv => "separable_conv",
    Se => "se",
    Residual => "residual",
    Branches => "branches",
}

impl LayerKind {
    /// The kind named `name` in JSON.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|k| k.name() == name)
    }

    /// Every kind's JSON name.
    pub fn names() -> Vec<&'static str> {
        Self::ALL.iter().map(|k| k.name()).collect()
    }
}

impl Layer {
    /// The JSON `kind` of this layer.
    pub const fn kind(&self) -> &'static str {
        self.layer_kind().name()
    }
}

/// Deserialises one kind's fields, keeping the field path in the message
/// (`padding: ...`) that an internally tagged enum would lose.
fn layer_fields<T: serde::de::DeserializeOwned, E: serde::de::Error>(
    fields: serde_json::Value,
) -> Result<T, E> {
    serde_path_to_error::deserialize(fields).map_err(|e| {
        let path = e.path().to_string();
        if path == "." {
            E::custom(e.into_inner())
        } else {
            E::custom(format!("{path}: {}", e.into_inner()))
        }
    })
}

impl<'de> Deserialize<'de> for Layer {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let mut fields = match serde_json::Value::deserialize(deserializer)? {
            serde_json::Value::Object(map) => map,
            other => {
                return Err(D::Error::custom(format!(
                    "a layer must be an object with a \"kind\", not {other}"
                )))
            }
        };
        let kind = match fields.remove("kind") {
            Some(serde_json::Value::String(kind)) => kind,
            Some(other) => {
                return Err(D::Error::custom(format!(
                    "kind must be a string, not {other}"
                )))
            }
            None => return Err(D::Error::custom("missing field `kind`")),
        };
        let Some(kind) = LayerKind::parse(&kind) else {
            return Err(D::Error::custom(format!(
                "unknown layer kind `{kind}`, expected one of {}",
                LayerKind::names().join(", ")
            )));
        };
        layer_of_kind(kind, serde_json::Value::Object(fields))
    }
}

fn one() -> Pair {
    Pair::Square(1)
}
fn yes() -> bool {
    true
}
fn one_usize() -> usize {
    1
}

/// A 2-D convolution: conv, then batch norm if enabled, then the activation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Conv {
    /// Output channels.
    pub filters: usize,
    /// Kernel size.
    pub kernel: Pair,
    /// Stride (default 1).
    #[serde(default = "one")]
    pub stride: Pair,
    /// Padding (default `"valid"`).
    #[serde(default)]
    pub padding: Padding,
    /// Dilation (default 1).
    #[serde(default = "one")]
    pub dilation: Pair,
    /// Channel groups (default 1); `groups == in_channels == filters` is depthwise.
    #[serde(default = "one_usize")]
    pub groups: usize,
    /// Whether the convolution adds a learned bias (default true).
    #[serde(default = "yes")]
    pub bias: bool,
    /// Whether batch normalisation follows (default false).
    #[serde(default)]
    pub batch_norm: bool,
    /// Activation applied last (default none).
    #[serde(default)]
    pub activation: Activation,
}

/// Which reduction a pooling layer applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PoolOp {
    /// Maximum over the window (padding never wins).
    Max,
    /// Mean over the window's in-bounds pixels (padding is not counted).
    Avg,
}

/// A pooling window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "PoolRepr")]
pub struct Pool {
    /// Max or average.
    pub op: PoolOp,
    /// Window size.
    pub kernel: Pair,
    /// Stride (default: the kernel size).
    pub stride: Pair,
    /// Padding (default `"valid"`).
    pub padding: Padding,
}

/// The JSON form of a [`Pool`], whose stride defaults to its kernel.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PoolRepr {
    op: PoolOp,
    kernel: Pair,
    #[serde(default)]
    stride: Option<Pair>,
    #[serde(default)]
    padding: Padding,
}

impl From<PoolRepr> for Pool {
    fn from(r: PoolRepr) -> Self {
        Pool {
            op: r.op,
            kernel: r.kernel,
            stride: r.stride.unwrap_or(r.kernel),
            padding: r.padding,
        }
    }
}

/// Global average pooling; no fields.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GlobalAvgPool {}

/// Flatten; no fields.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Flatten {}

/// A fully connected layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dense {
    /// Output features.
    pub units: usize,
    /// Whether a bias is added (default true).
    #[serde(default = "yes")]
    pub bias: bool,
    /// Activation applied after (default none).
    #[serde(default)]
    pub activation: Activation,
}

/// Dropout with the given drop probability.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dropout {
    /// Probability of zeroing an element during training, in `[0, 1)`.
    pub rate: f64,
}

/// A standalone activation layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActivationLayer {
    /// The function applied.
    pub function: Activation,
}

fn lrn_size() -> usize {
    5
}
fn lrn_alpha() -> f64 {
    1e-4
}
fn lrn_beta() -> f64 {
    0.75
}
fn lrn_k() -> f64 {
    2.0
}

/// Local response normalisation across channels:
/// `b = a / (k + alpha / size * sum(a^2 over size neighbouring channels))^beta`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lrn {
    /// Number of neighbouring channels summed (default 5).
    #[serde(default = "lrn_size")]
    pub size: usize,
    /// Scale (default 1e-4).
    #[serde(default = "lrn_alpha")]
    pub alpha: f64,
    /// Exponent (default 0.75).
    #[serde(default = "lrn_beta")]
    pub beta: f64,
    /// Additive constant (default 2).
    #[serde(default = "lrn_k")]
    pub k: f64,
}

impl Default for Lrn {
    fn default() -> Self {
        Self {
            size: lrn_size(),
            alpha: lrn_alpha(),
            beta: lrn_beta(),
            k: lrn_k(),
        }
    }
}

/// A depthwise-separable convolution, as Keras' `SeparableConv2D`: a depthwise
/// `k x k` convolution (no bias) with `depth_multiplier` outputs per input
/// channel, then a pointwise `1 x 1` convolution to `filters` channels (with the
/// bias, if any), then batch norm and the activation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeparableConv {
    /// Output channels of the pointwise convolution.
    pub filters: usize,
    /// Depthwise kernel size.
    pub kernel: Pair,
    /// Depthwise stride (default 1).
    #[serde(default = "one")]
    pub stride: Pair,
    /// Depthwise padding (default `"valid"`).
    #[serde(default)]
    pub padding: Padding,
    /// Depthwise dilation (default 1).
    #[serde(default = "one")]
    pub dilation: Pair,
    /// Depthwise outputs per input channel (default 1).
    #[serde(default = "one_usize")]
    pub depth_multiplier: usize,
    /// Whether the pointwise convolution adds a bias (default true).
    #[serde(default = "yes")]
    pub bias: bool,
    /// Whether batch normalisation follows (default false).
    #[serde(default)]
    pub batch_norm: bool,
    /// Activation applied last (default none).
    #[serde(default)]
    pub activation: Activation,
}

fn se_reduction() -> usize {
    16
}

/// Squeeze-and-excitation (Hu et al. 2018): global average pool, dense
/// `C -> C / reduction` with ReLU, dense back to `C` with a sigmoid, and the
/// input's channels scaled by that gate. Both dense layers have biases.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqueezeExcitation {
    /// Channel reduction of the bottleneck (default 16); at least one unit is kept.
    #[serde(default = "se_reduction")]
    pub reduction: usize,
}

impl SqueezeExcitation {
    /// The width of the bottleneck for `channels` input channels.
    pub fn hidden(&self, channels: usize) -> usize {
        (channels / self.reduction.max(1)).max(1)
    }
}

/// How the input of a residual block reaches its sum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Shortcut {
    /// The input unchanged; the body must keep its shape.
    #[default]
    Identity,
    /// A `1 x 1` convolution (no bias) plus batch norm, with the stride that
    /// matches the body's output size (ResNet's option B, Xception).
    Projection,
}

/// A residual block: `activation_after(body(x) + shortcut(x))`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Residual {
    /// The main path.
    pub body: Vec<Layer>,
    /// The skip path (default identity).
    #[serde(default)]
    pub shortcut: Shortcut,
    /// Activation after the sum (default none).
    #[serde(default)]
    pub activation_after: Activation,
}

/// Parallel paths on one input whose outputs are concatenated on channels.
/// Every path must produce the same spatial size; an empty path passes its
/// input through.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Branches {
    /// The paths, in concatenation order.
    pub branches: Vec<Vec<Layer>>,
}

/// Why an architecture's JSON could not be read.
#[derive(Debug, Error)]
pub enum ParseError {
    /// Not JSON, or JSON of the wrong form; `path` locates the problem.
    #[error("invalid architecture JSON at `{path}`: {message}")]
    Json {
        /// Where in the document (e.g. `layers[3].body[1]`), `.` for the root.
        path: String,
        /// What serde said.
        message: String,
    },
    /// A format version this build does not know.
    #[error("architecture format version {found} is not supported (this build reads version {ARCHITECTURE_VERSION})")]
    Version {
        /// The version in the document.
        found: u32,
    },
}

/// Parses a `T` from JSON, reporting errors with the path where they occurred.
pub(crate) fn from_json_with_path<T: serde::de::DeserializeOwned>(
    json: &str,
) -> Result<T, (String, String)> {
    let de = &mut serde_json::Deserializer::from_str(json);
    let value = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        (path, e.into_inner().to_string())
    })?;
    Ok(value)
}

/// The JSON value of an architecture. Its types are plain data (string
/// keys, no fallible `Serialize` impls; non-finite numbers become `null`), so
/// serialising cannot fail; if a future field broke that, this panics
/// rather than hand out an empty document that would hash like every other.
fn plain_json(value: &impl Serialize) -> serde_json::Value {
    match serde_json::to_value(value) {
        Ok(json) => json,
        Err(e) => unreachable!("an architecture always serialises: {e}"),
    }
}

impl Architecture {
    /// Reads an architecture from its JSON form. This checks the form (fields,
    /// kinds, version); [`crate::validate`] checks that the network is sound.
    pub fn from_json(json: &str) -> Result<Self, ParseError> {
        let arch: Architecture = from_json_with_path(json)
            .map_err(|(path, message)| ParseError::Json { path, message })?;
        if arch.version != ARCHITECTURE_VERSION {
            return Err(ParseError::Version {
                found: arch.version,
            });
        }
        Ok(arch)
    }

    /// Reads an architecture from an already-parsed JSON value.
    pub fn from_value(value: serde_json::Value) -> Result<Self, ParseError> {
        Self::from_json(&value.to_string())
    }

    /// The stable JSON form, pretty-printed.
    pub fn to_json_pretty(&self) -> String {
        // Plain data (see `plain_json`): serialising cannot fail.
        match serde_json::to_string_pretty(self) {
            Ok(json) => json,
            Err(e) => unreachable!("an architecture always serialises: {e}"),
        }
    }

    /// The canonical JSON form of the network alone (no name, no genotype):
    /// every field spelled out, keys in a fixed order, no whitespace.
    pub fn canonical_json(&self) -> String {
        let network = Architecture {
            version: ARCHITECTURE_VERSION,
            name: String::new(),
            input: self.input,
            classes: self.classes,
            layers: self.layers.clone(),
            genotype: None,
        };
        // serde_json::Value keeps object keys sorted, which fixes their order.
        plain_json(&network).to_string()
    }

    /// A SHA-256 hex digest of [`canonical_json`](Self::canonical_json): equal
    /// for two architectures exactly when they describe the same network,
    /// however their JSON was formatted or which defaults it spelled out.
    pub fn canonical_hash(&self) -> String {
        let digest = Sha256::digest(self.canonical_json().as_bytes());
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LENET_LIKE: &str = r#"{
        "version": 1,
        "input": [1, 28, 28],
        "classes": 10,
        "layers": [
            {"kind": "conv", "filters": 6, "kernel": 5, "padding": "same", "activation": "tanh"},
            {"kind": "pool", "op": "avg", "kernel": 2},
            {"kind": "conv", "filters": 16, "kernel": [5, 5], "padding": [0, 0]},
            {"kind": "residual", "body": [
                {"kind": "conv", "filters": 16, "kernel": 3, "padding": 1, "batch_norm": true}
            ], "activation_after": "relu"},
            {"kind": "flatten"},
            {"kind": "dense", "units": 10}
        ]
    }"#;

    #[test]
    fn parses_and_round_trips() {
        let arch = Architecture::from_json(LENET_LIKE).expect("parses");
        assert_eq!(arch.input, InputShape::new(1, 28, 28));
        assert_eq!(arch.layers.len(), 6);
        let again = Architecture::from_json(&arch.to_json_pretty()).expect("re-parses");
        assert_eq!(arch, again);
    }

    #[test]
    fn hash_ignores_formatting_defaults_name_and_order_of_keys() {
        let a = Architecture::from_json(LENET_LIKE).expect("parses");
        let mut b = Architecture::from_json(&serde_json::to_string(&a).expect("json")).expect("b");
        b.name = "renamed".into();
        assert_eq!(a.canonical_hash(), b.canonical_hash());
        let mut c = a.clone();
        if let Layer::Conv(conv) = &mut c.layers[0] {
            conv.filters = 7;
        }
        assert_ne!(a.canonical_hash(), c.canonical_hash());
        // Non-finite numbers serialise (as null) rather than fail.
        let mut d = a.clone();
        d.layers.push(Layer::Dropout(Dropout { rate: f64::NAN }));
        assert!(
            d.canonical_json().contains("null"),
            "{}",
            d.canonical_json()
        );
        assert_ne!(a.canonical_hash(), d.canonical_hash());
    }

    #[test]
    fn unknown_kind_names_the_path() {
        let json = r#"{"input":[1,8,8],"classes":2,"layers":[{"kind":"dense","units":2},{"kind":"warp"}]}"#;
        let err = Architecture::from_json(json).expect_err("unknown kind");
        let text = err.to_string();
        assert!(text.contains("layers[1]"), "{text}");
        assert!(text.contains("warp"), "{text}");
    }

    #[test]
    fn unknown_field_and_negative_size_are_rejected() {
        let json =
            r#"{"input":[1,8,8],"classes":2,"layers":[{"kind":"dense","units":2,"colour":"red"}]}"#;
        assert!(Architecture::from_json(json).is_err());
        let json =
            r#"{"input":[1,8,8],"classes":2,"layers":[{"kind":"conv","filters":-3,"kernel":3}]}"#;
        let text = Architecture::from_json(json)
            .expect_err("negative")
            .to_string();
        assert!(text.contains("layers[0]"), "{text}");
    }

    #[test]
    fn future_version_is_rejected() {
        let json = r#"{"version":2,"input":[1,8,8],"classes":2,"layers":[]}"#;
        assert!(matches!(
            Architecture::from_json(json),
            Err(ParseError::Version { found: 2 })
        ));
    }

    #[test]
    fn input_shape_parses_hwc() {
        let s: InputShape = "32x32x3".parse().expect("parses");
        assert_eq!(s, InputShape::new(3, 32, 32));
        assert!("32x32".parse::<InputShape>().is_err());
        assert!("0x32x3".parse::<InputShape>().is_err());
    }
}
