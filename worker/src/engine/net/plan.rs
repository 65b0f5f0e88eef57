//! Compiling an architecture into a tree of nodes that index a flat list of
//! parameters and batch-norm statistics, with freshly initialised values.
//!
//! Shapes, windows and projection strides come from the rows of the
//! architecture's validation [`Report`]: the worker runs exactly the network
//! `search::validate` checked and costed, and computes no geometry itself.

use rand::Rng;
use search::arch::{
    Activation, Conv, Layer, PoolOp, Residual, SeparableConv, Shortcut, SqueezeExcitation,
};
use search::validate::{Geometry, LayerReport, WindowGeometry};
use search::{Architecture, Report, Shape};

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

/// Builds the nodes for `arch`, whose validation `report` is given, and
/// initialises every parameter as PyTorch does by default: weights and
/// biases uniform in `±1/sqrt(fan_in)`, batch norm `gamma = 1`, `beta = 0`.
pub(crate) fn compile(
    arch: &Architecture,
    report: &Report,
    rng: &mut impl Rng,
) -> Result<Compiled, NetworkError> {
    let mut builder = Builder {
        params: Vec::new(),
        stats: Vec::new(),
        rows: report.layers.iter(),
        rng,
    };
    let nodes = builder.sequence(&arch.layers, "layers")?;
    if builder.rows.next().is_some() {
        return Err(mismatch("layers"));
    }
    Ok(Compiled {
        nodes,
        params: builder.params,
        stats: builder.stats,
    })
}

struct Builder<'r, R> {
    params: Vec<Parameter>,
    stats: Vec<(String, RunningStats<f32>)>,
    /// The validation rows not consumed yet, in the order layers are built.
    rows: std::slice::Iter<'r, LayerReport>,
    rng: &'r mut R,
}

/// The report does not describe the architecture being built.
fn mismatch(path: &str) -> NetworkError {
    NetworkError::Shape(format!(
        "{path}: the validation report does not match the architecture"
    ))
}

fn map(shape: Shape, path: &str) -> Result<(usize, usize, usize), NetworkError> {
    match shape {
        Shape::Map { c, h, w } => Ok((c, h, w)),
        Shape::Flat(_) => Err(NetworkError::Shape(format!("{path}: needs a feature map"))),
    }
}

fn window(row: &LayerReport, path: &str) -> Result<WindowGeometry, NetworkError> {
    match row.geometry {
        Some(Geometry::Window(g)) => Ok(g),
        _ => Err(mismatch(path)),
    }
}

fn padding(g: &WindowGeometry) -> [usize; 4] {
    [g.pad_top, g.pad_bottom, g.pad_left, g.pad_right]
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

    /// A depthwise convolution then a pointwise one.
    fn separable(
        &mut self,
        sep: &SeparableConv,
        row: &LayerReport,
        path: &str,
        input: Shape,
    ) -> Result<Node, NetworkError> {
        let (c, _, _) = map(input, path)?;
        let g = window(row, path)?;
        let mid = c * sep.depth_multiplier;
        let depthwise = Conv2dSpec {
            in_channels: c,
            out_channels: mid,
            kernel: (sep.kernel.h(), sep.kernel.w()),
            stride: (sep.stride.h(), sep.stride.w()),
            dilation: (sep.dilation.h(), sep.dilation.w()),
            padding: padding(&g),
            groups: c,
        };
        let pointwise = Conv2dSpec::pointwise(mid, sep.filters, (1, 1));
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
        Ok(Node::Separable(dw, pw))
    }

    /// A squeeze-and-excitation gate: two dense layers on the channel means.
    fn se(
        &mut self,
        se: &SqueezeExcitation,
        path: &str,
        input: Shape,
    ) -> Result<Node, NetworkError> {
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
        Ok(Node::Se { squeeze, excite })
    }

    /// A residual body, with a projection shortcut when validation chose one.
    fn residual(
        &mut self,
        res: &Residual,
        row: &LayerReport,
        path: &str,
        input: Shape,
        output: Shape,
    ) -> Result<Node, NetworkError> {
        let body = self.sequence(&res.body, &format!("{path}.body"))?;
        let projection = match (res.shortcut, row.geometry) {
            (Shortcut::Identity, _) => None,
            (Shortcut::Projection, Some(Geometry::Projection(stride))) => {
                let (c, _, _) = map(input, path)?;
                let (oc, _, _) = map(output, path)?;
                let spec = Conv2dSpec::pointwise(c, oc, (stride.h(), stride.w()));
                Some(self.conv(
                    &format!("{path}.shortcut"),
                    spec,
                    false,
                    true,
                    Activation::None,
                ))
            }
            (Shortcut::Projection, _) => return Err(mismatch(path)),
        };
        Ok(Node::Residual {
            body,
            projection,
            activation: res.activation_after,
        })
    }

    /// A `conv` layer with the window validation settled.
    fn conv_layer(
        &mut self,
        conv: &Conv,
        row: &LayerReport,
        path: &str,
        input: Shape,
    ) -> Result<Node, NetworkError> {
        let (c, _, _) = map(input, path)?;
        let g = window(row, path)?;
        let spec = Conv2dSpec {
            in_channels: c,
            out_channels: conv.filters,
            kernel: (conv.kernel.h(), conv.kernel.w()),
            stride: (conv.stride.h(), conv.stride.w()),
            dilation: (conv.dilation.h(), conv.dilation.w()),
            padding: padding(&g),
            groups: conv.groups,
        };
        Ok(Node::Conv(self.conv(
            path,
            spec,
            conv.bias,
            conv.batch_norm,
            conv.activation,
        )))
    }

    fn sequence(&mut self, layers: &[Layer], path: &str) -> Result<Vec<Node>, NetworkError> {
        layers
            .iter()
            .enumerate()
            .map(|(i, layer)| self.layer(layer, &format!("{path}.{i}")))
            .collect()
    }

    fn layer(&mut self, layer: &Layer, path: &str) -> Result<Node, NetworkError> {
        let row = self.rows.next().ok_or_else(|| mismatch(path))?;
        if row.kind != layer.kind() {
            return Err(mismatch(path));
        }
        let (input, output) = (row.input, row.output);
        Ok(match layer {
            Layer::Conv(conv) => self.conv_layer(conv, row, path, input)?,
            Layer::SeparableConv(sep) => self.separable(sep, row, path, input)?,
            Layer::Pool(pool) => {
                let g = window(row, path)?;
                let spec = Pool2dSpec {
                    kernel: (pool.kernel.h(), pool.kernel.w()),
                    stride: (pool.stride.h(), pool.stride.w()),
                    padding: padding(&g),
                };
                Node::Pool(pool.op, spec)
            }
            Layer::GlobalAvgPool(_) => Node::GlobalAvgPool,
            Layer::Flatten(_) => Node::Flatten,
            Layer::Dense(dense) => {
                let Shape::Flat(n) = input else {
                    return Err(mismatch(path));
                };
                Node::Dense(self.dense(path, n, dense.units, dense.bias, dense.activation))
            }
            Layer::Dropout(d) => Node::Dropout(d.rate),
            Layer::Activation(a) => Node::Activation(a.function),
            Layer::Lrn(l) => Node::Lrn(LrnSpec {
                size: l.size,
                alpha: l.alpha,
                beta: l.beta,
                k: l.k,
            }),
            Layer::Se(se) => self.se(se, path, input)?,
            Layer::Residual(res) => self.residual(res, row, path, input, output)?,
            Layer::Branches(br) => Node::Branches(
                br.branches
                    .iter()
                    .enumerate()
                    .map(|(j, branch)| self.sequence(branch, &format!("{path}.branches.{j}")))
                    .collect::<Result<_, _>>()?,
            ),
        })
    }
}
