//! Compiling an architecture into a tree of nodes that index a flat list of
//! parameters and batch-norm statistics, with freshly initialised values.

use rand::Rng;
use search::arch::{Activation, Conv, Layer, Padding, PoolOp, Shortcut};
use search::validate::window_geometry;
use search::{Architecture, Shape};

use crate::ops::{Conv2dSpec, LrnSpec, Pool2dSpec, RunningStats};

use super::{NetworkError, Parameter};

/// A learnt batch norm: indices of `gamma`, `beta` and the running statistics.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BatchNorm {
    pub gamma: usize,
    pub beta: usize,
    pub stats: usize,
}

/// A convolution with its parameters and what follows it.
#[derive(Debug, Clone)]
pub(crate) struct ConvNode {
    pub spec: Conv2dSpec,
    pub weight: usize,
    pub bias: Option<usize>,
    pub batch_norm: Option<BatchNorm>,
    pub activation: Activation,
}

/// A dense layer: `weight` is `inputs x units`.
#[derive(Debug, Clone)]
pub(crate) struct DenseNode {
    pub inputs: usize,
    pub units: usize,
    pub weight: usize,
    pub bias: Option<usize>,
    pub activation: Activation,
}

/// One step of the forward pass.
#[derive(Debug, Clone)]
pub(crate) enum Node {
    Conv(ConvNode),
    /// Depthwise (no bias, no norm, no activation) then pointwise.
    Separable(ConvNode, ConvNode),
    Pool(PoolOp, Pool2dSpec),
    GlobalAvgPool,
    Flatten,
    Dense(DenseNode),
    Dropout(f64),
    Activation(Activation),
    Lrn(LrnSpec),
    Se {
        squeeze: DenseNode,
        excite: DenseNode,
    },
    Residual {
        body: Vec<Node>,
        projection: Option<ConvNode>,
        activation: Activation,
    },
    Branches(Vec<Vec<Node>>),
}

/// Everything a compiled architecture owns.
pub(crate) struct Compiled {
    pub nodes: Vec<Node>,
    pub params: Vec<Parameter>,
    pub stats: Vec<(String, RunningStats<f32>)>,
}

/// Builds the nodes for `arch` (already validated) and initialises every
/// parameter as PyTorch does by default: weights and biases uniform in
/// `±1/sqrt(fan_in)`, batch norm `gamma = 1`, `beta = 0`.
pub(crate) fn compile(arch: &Architecture, rng: &mut impl Rng) -> Result<Compiled, NetworkError> {
    let mut builder = Builder {
        params: Vec::new(),
        stats: Vec::new(),
        rng,
    };
    let input = Shape::Map {
        c: arch.input.channels,
        h: arch.input.height,
        w: arch.input.width,
    };
    let (nodes, _) = builder.sequence(&arch.layers, "layers", input)?;
    Ok(Compiled {
        nodes,
        params: builder.params,
        stats: builder.stats,
    })
}

struct Builder<'r, R> {
    params: Vec<Parameter>,
    stats: Vec<(String, RunningStats<f32>)>,
    rng: &'r mut R,
}

fn map(shape: Shape, path: &str) -> Result<(usize, usize, usize), NetworkError> {
    match shape {
        Shape::Map { c, h, w } => Ok((c, h, w)),
        Shape::Flat(_) => Err(NetworkError::Shape(format!("{path}: needs a feature map"))),
    }
}

impl<R: Rng> Builder<'_, R> {
    fn param(&mut self, name: String, shape: Vec<usize>, fan_in: usize) -> usize {
        let len = shape.iter().product();
        let bound = 1.0 / (fan_in.max(1) as f32).sqrt();
        let data = (0..len)
            .map(|_| self.rng.gen_range(-bound..=bound))
            .collect();
        self.params.push(Parameter { name, shape, data });
        self.params.len() - 1
    }

    fn constant(&mut self, name: String, len: usize, value: f32) -> usize {
        self.params.push(Parameter {
            name,
            shape: vec![len],
            data: vec![value; len],
        });
        self.params.len() - 1
    }

    fn batch_norm(&mut self, prefix: &str, channels: usize) -> BatchNorm {
        let gamma = self.constant(format!("{prefix}.bn.weight"), channels, 1.0);
        let beta = self.constant(format!("{prefix}.bn.bias"), channels, 0.0);
        self.stats
            .push((format!("{prefix}.bn"), RunningStats::new(channels)));
        BatchNorm {
            gamma,
            beta,
            stats: self.stats.len() - 1,
        }
    }

    /// A convolution node; `name` prefixes its tensors.
    #[allow(clippy::too_many_arguments)]
    fn conv(
        &mut self,
        name: &str,
        spec: Conv2dSpec,
        bias: bool,
        batch_norm: bool,
        activation: Activation,
    ) -> ConvNode {
        let shape = vec![
            spec.out_channels,
            spec.in_channels / spec.groups,
            spec.kernel.0,
            spec.kernel.1,
        ];
        let weight = self.param(format!("{name}.weight"), shape, spec.fan_in());
        let bias = bias.then(|| {
            self.param(
                format!("{name}.bias"),
                vec![spec.out_channels],
                spec.fan_in(),
            )
        });
        let batch_norm = batch_norm.then(|| self.batch_norm(name, spec.out_channels));
        ConvNode {
            spec,
            weight,
            bias,
            batch_norm,
            activation,
        }
    }

    fn dense(
        &mut self,
        name: &str,
        inputs: usize,
        units: usize,
        bias: bool,
        activation: Activation,
    ) -> DenseNode {
        let weight = self.param(format!("{name}.weight"), vec![inputs, units], inputs);
        let bias = bias.then(|| self.param(format!("{name}.bias"), vec![units], inputs));
        DenseNode {
            inputs,
            units,
            weight,
            bias,
            activation,
        }
    }

    fn sequence(
        &mut self,
        layers: &[Layer],
        path: &str,
        mut shape: Shape,
    ) -> Result<(Vec<Node>, Shape), NetworkError> {
        let mut nodes = Vec::with_capacity(layers.len());
        for (i, layer) in layers.iter().enumerate() {
            let (node, out) = self.layer(layer, &format!("{path}.{i}"), shape)?;
            nodes.push(node);
            shape = out;
        }
        Ok((nodes, shape))
    }

    fn layer(
        &mut self,
        layer: &Layer,
        path: &str,
        input: Shape,
    ) -> Result<(Node, Shape), NetworkError> {
        let geometry = |h, w, k, s, d, p: Padding| {
            window_geometry(h, w, k, s, d, p)
                .map_err(|e| NetworkError::Shape(format!("{path}: {e}")))
        };
        Ok(match layer {
            Layer::Conv(conv) => {
                let (c, h, w) = map(input, path)?;
                let (spec, out) = conv_spec(conv, c, h, w, path)?;
                (
                    Node::Conv(self.conv(path, spec, conv.bias, conv.batch_norm, conv.activation)),
                    out,
                )
            }
            Layer::SeparableConv(sep) => {
                let (c, h, w) = map(input, path)?;
                let g = geometry(h, w, sep.kernel, sep.stride, sep.dilation, sep.padding)?;
                let mid = c * sep.depth_multiplier;
                let depthwise = Conv2dSpec {
                    in_channels: c,
                    out_channels: mid,
                    kernel: (sep.kernel.h(), sep.kernel.w()),
                    stride: (sep.stride.h(), sep.stride.w()),
                    dilation: (sep.dilation.h(), sep.dilation.w()),
                    padding: [g.pad_top, g.pad_bottom, g.pad_left, g.pad_right],
                    groups: c,
                };
                let pointwise = Conv2dSpec {
                    in_channels: mid,
                    out_channels: sep.filters,
                    kernel: (1, 1),
                    stride: (1, 1),
                    dilation: (1, 1),
                    padding: [0; 4],
                    groups: 1,
                };
                let dw = self.conv(
                    &format!("{path}.depthwise"),
                    depthwise,
                    false,
                    false,
                    Activation::None,
                );
                let pw = self.conv(
                    &format!("{path}.pointwise"),
                    pointwise,
                    sep.bias,
                    sep.batch_norm,
                    sep.activation,
                );
                (
                    Node::Separable(dw, pw),
                    Shape::Map {
                        c: sep.filters,
                        h: g.out_h,
                        w: g.out_w,
                    },
                )
            }
            Layer::Pool(pool) => {
                let (c, h, w) = map(input, path)?;
                let one = search::arch::Pair::Square(1);
                let g = geometry(h, w, pool.kernel, pool.stride, one, pool.padding)?;
                let spec = Pool2dSpec {
                    kernel: (pool.kernel.h(), pool.kernel.w()),
                    stride: (pool.stride.h(), pool.stride.w()),
                    padding: [g.pad_top, g.pad_bottom, g.pad_left, g.pad_right],
                };
                (
                    Node::Pool(pool.op, spec),
                    Shape::Map {
                        c,
                        h: g.out_h,
                        w: g.out_w,
                    },
                )
            }
            Layer::GlobalAvgPool(_) => (Node::GlobalAvgPool, Shape::Flat(map(input, path)?.0)),
            Layer::Flatten(_) => (Node::Flatten, Shape::Flat(input.elements() as usize)),
            Layer::Dense(dense) => {
                let Shape::Flat(n) = input else {
                    return Err(NetworkError::Shape(format!(
                        "{path}: dense needs a flat input"
                    )));
                };
                (
                    Node::Dense(self.dense(path, n, dense.units, dense.bias, dense.activation)),
                    Shape::Flat(dense.units),
                )
            }
            Layer::Dropout(d) => (Node::Dropout(d.rate), input),
            Layer::Activation(a) => (Node::Activation(a.function), input),
            Layer::Lrn(l) => {
                map(input, path)?;
                (
                    Node::Lrn(LrnSpec {
                        size: l.size,
                        alpha: l.alpha,
                        beta: l.beta,
                        k: l.k,
                    }),
                    input,
                )
            }
            Layer::Se(se) => {
                let (c, _, _) = map(input, path)?;
                let hidden = se.hidden(c);
                let squeeze = self.dense(
                    &format!("{path}.squeeze"),
                    c,
                    hidden,
                    true,
                    Activation::Relu,
                );
                let excite = self.dense(
                    &format!("{path}.excite"),
                    hidden,
                    c,
                    true,
                    Activation::Sigmoid,
                );
                (Node::Se { squeeze, excite }, input)
            }
            Layer::Residual(res) => {
                let (body, out) = self.sequence(&res.body, &format!("{path}.body"), input)?;
                let projection = match res.shortcut {
                    Shortcut::Identity => None,
                    Shortcut::Projection => {
                        let (c, h, w) = map(input, path)?;
                        let (oc, oh, ow) = map(out, path)?;
                        let stride =
                            search::validate::projection_stride(h, w, oh, ow).ok_or_else(|| {
                                NetworkError::Shape(format!("{path}: no projection fits"))
                            })?;
                        let spec = Conv2dSpec {
                            in_channels: c,
                            out_channels: oc,
                            kernel: (1, 1),
                            stride: (stride.h(), stride.w()),
                            dilation: (1, 1),
                            padding: [0; 4],
                            groups: 1,
                        };
                        Some(self.conv(
                            &format!("{path}.shortcut"),
                            spec,
                            false,
                            true,
                            Activation::None,
                        ))
                    }
                };
                (
                    Node::Residual {
                        body,
                        projection,
                        activation: res.activation_after,
                    },
                    out,
                )
            }
            Layer::Branches(br) => {
                let mut channels = 0;
                let mut spatial = None;
                let mut nodes = Vec::with_capacity(br.branches.len());
                for (j, branch) in br.branches.iter().enumerate() {
                    let (n, out) = self.sequence(branch, &format!("{path}.branches.{j}"), input)?;
                    let (c, h, w) = map(out, path)?;
                    channels += c;
                    spatial.get_or_insert((h, w));
                    nodes.push(n);
                }
                let (h, w) =
                    spatial.ok_or_else(|| NetworkError::Shape(format!("{path}: no branches")))?;
                (Node::Branches(nodes), Shape::Map { c: channels, h, w })
            }
        })
    }
}

/// The convolution spec of a `conv` layer on a `c x h x w` input, and its output shape.
fn conv_spec(
    conv: &Conv,
    c: usize,
    h: usize,
    w: usize,
    path: &str,
) -> Result<(Conv2dSpec, Shape), NetworkError> {
    let g = window_geometry(h, w, conv.kernel, conv.stride, conv.dilation, conv.padding)
        .map_err(|e| NetworkError::Shape(format!("{path}: {e}")))?;
    let spec = Conv2dSpec {
        in_channels: c,
        out_channels: conv.filters,
        kernel: (conv.kernel.h(), conv.kernel.w()),
        stride: (conv.stride.h(), conv.stride.w()),
        dilation: (conv.dilation.h(), conv.dilation.w()),
        padding: [g.pad_top, g.pad_bottom, g.pad_left, g.pad_right],
        groups: conv.groups,
    };
    Ok((
        spec,
        Shape::Map {
            c: conv.filters,
            h: g.out_h,
            w: g.out_w,
        },
    ))
}
