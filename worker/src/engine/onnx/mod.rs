//! ONNX export of a trained [`Network`]: the same layers, in inference mode,
//! with the trained weights, as a model any ONNX runtime can run.
//!
//! What is written:
//! - opset [`OPSET`] (IR version [`IR_VERSION`]), one graph input and one
//!   output, both with a dynamic batch dimension named `batch`;
//! - the input is [`PIXELS`] — raw pixel values in `[0, 255]`, `N x C x H x W`
//!   float32 — when the weights record the normalisation they were trained
//!   with (every model a worker trains does), and the graph applies that
//!   normalisation first; otherwise it is [`NORMALISED`], the already
//!   normalised tensor the engine itself takes;
//! - the output [`LOGITS`], `N x classes` (no softmax);
//! - batch norm as `BatchNormalization` nodes with the running statistics
//!   (not folded into the convolution, so the file shows the network as it
//!   was searched; runtimes fold it when they optimise);
//! - dropout omitted (it is the identity at inference);
//! - metadata: the architecture's canonical hash and JSON, the input's
//!   meaning and normalisation, and whatever the caller adds (a trial's
//!   metrics).
//!
//! Every layer kind of the search space is expressible; LRN of an even
//! size (whose channel window ONNX's `LRN` centres differently) is written
//! out as the explicit sum over a channel band.

mod proto;

use prost::Message;
use search::arch::{Activation, PoolOp};
use thiserror::Error;

use crate::net::plan::{ConvNode, DenseNode, Node};
use crate::net::Network;
use crate::ops::{LrnSpec, Pool2dSpec, BATCH_NORM_EPSILON};

use proto::{
    attribute_type, AttributeProto, Dimension, DimensionValue, GraphProto, ModelProto, NodeProto,
    OperatorSetIdProto, StringStringEntryProto, TensorProto, TensorShapeProto, TensorTypeProto,
    TypeProto, ValueInfoProto, DATA_TYPE_FLOAT,
};

/// The ONNX operator set the exported graph binds to.
pub const OPSET: i64 = 17;
/// The ONNX IR version that goes with [`OPSET`].
pub const IR_VERSION: i64 = 8;
/// The input's name when the graph normalises raw pixels itself.
pub const PIXELS: &str = "pixels";
/// The input's name when the weights do not record their normalisation.
pub const NORMALISED: &str = "input";
/// The output's name.
pub const LOGITS: &str = "logits";
/// Metadata key holding the architecture's canonical hash.
pub const HASH_KEY: &str = "nas.architecture_sha256";

/// Why a network could not be exported.
#[derive(Debug, Error)]
pub enum ExportError {
    /// A layer has no faithful ONNX form; `layer` is its path
    /// (`layers.3.body.1`).
    #[error("{layer}: cannot be exported to ONNX: {reason}")]
    Unsupported {
        /// The layer's path.
        layer: String,
        /// Why.
        reason: String,
    },
}

/// `net` (its trained weights, in inference mode) as ONNX model bytes, with
/// `metadata` added to the model's metadata properties.
pub fn to_onnx(net: &Network, metadata: &[(String, String)]) -> Result<Vec<u8>, ExportError> {
    Ok(model(net, metadata)?.encode_to_vec())
}

/// The model: the graph of `net` with its input and output, and its
/// metadata (`extra` added).
fn model(net: &Network, extra: &[(String, String)]) -> Result<ModelProto, ExportError> {
    let arch = net.architecture();
    let input = arch.input;
    let mut graph = Graph::new(net);
    let (input_name, input_doc, x) = graph_input(net, &mut graph);
    let nodes = net.nodes();
    let out = graph.sequence(nodes, "layers", Value::Map(x, input.channels))?;
    let out = match out {
        Value::Flat(name) => name,
        Value::Map(name, _) => graph.op("Flatten", "output", vec![name], vec![int("axis", 1)]),
    };
    graph.nodes.push(NodeProto {
        input: vec![out],
        output: vec![LOGITS.to_owned()],
        name: "output".into(),
        op_type: "Identity".into(),
        attribute: vec![],
    });
    let mut metadata = metadata_of(net, &format!("{input_name}: {input_doc}"));
    metadata.extend(extra.iter().cloned());
    Ok(ModelProto {
        ir_version: IR_VERSION,
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: OPSET,
        }],
        producer_name: "nas".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        domain: String::new(),
        model_version: 1,
        doc_string: format!(
            "{} exported by nas: {input_name} -> {LOGITS}",
            if arch.name.is_empty() {
                "a searched network"
            } else {
                arch.name.as_str()
            }
        ),
        graph: Some(GraphProto {
            node: graph.nodes,
            name: if arch.name.is_empty() {
                "nas".into()
            } else {
                arch.name.clone()
            },
            initializer: graph.initializers,
            doc_string: String::new(),
            input: vec![ValueInfoProto {
                name: input_name.into(),
                r#type: tensor_type(vec![
                    batch(),
                    fixed(input.channels),
                    fixed(input.height),
                    fixed(input.width),
                ]),
                doc_string: input_doc.into(),
            }],
            output: vec![ValueInfoProto {
                name: LOGITS.into(),
                r#type: tensor_type(vec![batch(), fixed(arch.classes)]),
                doc_string: "class scores (logits; apply softmax for probabilities)".into(),
            }],
        }),
        metadata_props: metadata
            .into_iter()
            .map(|(key, value)| StringStringEntryProto { key, value })
            .collect(),
    })
}

/// The graph's input: its name and description, and the value the layers
/// start from (the pixels normalised inside the graph when `net` knows its
/// normalisation).
fn graph_input(net: &Network, graph: &mut Graph<'_>) -> (&'static str, &'static str, String) {
    let Some(stats) = net.input_normalization() else {
        return (
            NORMALISED,
            "pixels already normalised per channel ((x / 255 - mean) / std of the training set)",
            NORMALISED.to_owned(),
        );
    };
    // (x / 255 - mean) / std, as the engine's batches are made.
    let channels = net.architecture().input.channels;
    let (scale, shift) = stats.pixel_affine();
    let scale = graph.constant("normalise.scale", &[1, channels, 1, 1], &scale);
    let shift = graph.constant("normalise.shift", &[1, channels, 1, 1], &shift);
    let scaled = graph.op("Mul", "normalise", vec![PIXELS.to_owned(), scale], vec![]);
    let x = graph.op("Add", "normalise", vec![scaled, shift], vec![]);
    (
        PIXELS,
        "raw pixel values in [0, 255], float32, N x C x H x W; the graph normalises them",
        x,
    )
}

/// The model's metadata properties: the architecture, its hash, what the
/// input is (`input_doc`), the normalisation and class names if known.
fn metadata_of(net: &Network, input_doc: &str) -> Vec<(String, String)> {
    let arch = net.architecture();
    let mut metadata = vec![
        (HASH_KEY.to_owned(), arch.canonical_hash()),
        ("nas.architecture".to_owned(), arch.to_json_pretty()),
        ("nas.input".to_owned(), input_doc.to_owned()),
    ];
    if let Some(stats) = net.input_normalization() {
        metadata.push((
            "nas.input_normalization".to_owned(),
            serde_json::json!({"mean": stats.mean, "std": stats.std}).to_string(),
        ));
    }
    if let Some(names) = net.class_names() {
        metadata.push((
            crate::weights::CLASS_NAMES_KEY.to_owned(),
            serde_json::json!(names).to_string(),
        ));
    }
    metadata
}

/// A batch dimension of any size.
fn batch() -> Dimension {
    Dimension {
        value: Some(DimensionValue::DimParam("batch".into())),
    }
}

/// A dimension of size `n`.
fn fixed(n: usize) -> Dimension {
    Dimension {
        value: Some(DimensionValue::DimValue(n as i64)),
    }
}

/// A float tensor of dimensions `dim`.
fn tensor_type(dim: Vec<Dimension>) -> Option<TypeProto> {
    Some(TypeProto {
        tensor_type: Some(TensorTypeProto {
            elem_type: DATA_TYPE_FLOAT,
            shape: Some(TensorShapeProto { dim }),
        }),
    })
}

/// A value of the graph: a feature map (with its channel count) or a flat
/// vector.
enum Value {
    Map(String, usize),
    Flat(String),
}

fn int(name: &str, i: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: attribute_type::INT,
        i,
        ..Default::default()
    }
}

fn ints(name: &str, values: &[usize]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: attribute_type::INTS,
        ints: values.iter().map(|&v| v as i64).collect(),
        ..Default::default()
    }
}

fn float(name: &str, f: f64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: attribute_type::FLOAT,
        f: f as f32,
        ..Default::default()
    }
}

/// ONNX's pads order from ours (`[top, bottom, left, right]`):
/// `[top, left, bottom, right]`.
fn pads([top, bottom, left, right]: [usize; 4]) -> [usize; 4] {
    [top, left, bottom, right]
}

/// The graph under construction.
struct Graph<'n> {
    net: &'n Network,
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
    values: usize,
}

impl<'n> Graph<'n> {
    fn new(net: &'n Network) -> Self {
        Self {
            net,
            nodes: Vec::new(),
            initializers: Vec::new(),
            values: 0,
        }
    }

    /// Adds a node `op` for the layer at `path` and returns its output's name.
    fn op(
        &mut self,
        op: &str,
        path: &str,
        inputs: Vec<String>,
        attribute: Vec<AttributeProto>,
    ) -> String {
        // Node and value names are unique (onnxruntime refuses duplicates):
        // the layer path, the operator and a running number.
        self.values += 1;
        let output = format!("{path}/{op}_{}", self.values);
        self.nodes.push(NodeProto {
            input: inputs,
            output: vec![output.clone()],
            name: output.clone(),
            op_type: op.into(),
            attribute,
        });
        output
    }

    /// Adds a constant tensor and returns its name.
    fn constant(&mut self, name: &str, dims: &[usize], values: &[f32]) -> String {
        self.initializers.push(TensorProto {
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type: DATA_TYPE_FLOAT,
            name: name.into(),
            raw_data: crate::weights::bytes_of(values),
        });
        name.into()
    }

    /// The network's parameter `index` as a constant under its own name.
    fn param(&mut self, index: usize) -> String {
        let net = self.net;
        let p = &net.params[index];
        self.constant(&p.name, &p.shape, &p.data)
    }

    fn sequence(&mut self, nodes: &[Node], path: &str, mut v: Value) -> Result<Value, ExportError> {
        for (i, node) in nodes.iter().enumerate() {
            v = self.node(node, &format!("{path}.{i}"), v)?;
        }
        Ok(v)
    }

    fn activate(&mut self, x: String, a: Activation, path: &str) -> String {
        match a {
            Activation::None => x,
            Activation::Relu => self.op("Relu", path, vec![x], vec![]),
            Activation::Relu6 => {
                let low = self.scalar(0.0);
                let high = self.scalar(6.0);
                self.op("Clip", path, vec![x, low, high], vec![])
            }
            Activation::Tanh => self.op("Tanh", path, vec![x], vec![]),
            Activation::Sigmoid => self.op("Sigmoid", path, vec![x], vec![]),
            Activation::Swish => {
                let gate = self.op("Sigmoid", path, vec![x.clone()], vec![]);
                self.op("Mul", path, vec![x, gate], vec![])
            }
        }
    }

    /// A scalar constant, shared by every node that uses the same value.
    fn scalar(&mut self, value: f32) -> String {
        let name = format!("const.{value}");
        if !self.initializers.iter().any(|t| t.name == name) {
            self.constant(&name, &[], &[value]);
        }
        name
    }

    fn conv(&mut self, c: &ConvNode, x: String, path: &str) -> String {
        let s = c.spec;
        let mut inputs = vec![x, self.param(c.weight)];
        if let Some(b) = c.bias {
            inputs.push(self.param(b));
        }
        let mut y = self.op(
            "Conv",
            path,
            inputs,
            vec![
                ints("kernel_shape", &[s.kernel.0, s.kernel.1]),
                ints("strides", &[s.stride.0, s.stride.1]),
                ints("dilations", &[s.dilation.0, s.dilation.1]),
                ints("pads", &pads(s.padding)),
                int("group", s.groups as i64),
            ],
        );
        if let Some(bn) = c.batch_norm {
            let net = self.net;
            let (name, stats) = &net.stats[bn.stats];
            let channels = [stats.mean.len()];
            let inputs = vec![
                y,
                self.param(bn.gamma),
                self.param(bn.beta),
                self.constant(&format!("{name}.running_mean"), &channels, &stats.mean),
                self.constant(&format!("{name}.running_var"), &channels, &stats.var),
            ];
            y = self.op(
                "BatchNormalization",
                path,
                inputs,
                vec![float("epsilon", BATCH_NORM_EPSILON)],
            );
        }
        self.activate(y, c.activation, path)
    }

    fn dense(&mut self, d: &DenseNode, x: String, path: &str) -> String {
        let mut inputs = vec![x, self.param(d.weight)];
        if let Some(b) = d.bias {
            inputs.push(self.param(b));
        }
        let y = self.op("Gemm", path, inputs, vec![]);
        self.activate(y, d.activation, path)
    }

    /// A dense layer applied to `N x C x 1 x 1` maps, as a `1 x 1` conv
    /// whose kernel is the dense weight transposed (SE gates stay 4-D, so
    /// the gate broadcasts over the map without reshapes).
    fn dense_as_conv(&mut self, d: &DenseNode, x: String, path: &str) -> String {
        let net = self.net;
        let p = &net.params[d.weight];
        let (inputs, units) = (d.inputs, d.units);
        let mut kernel = vec![0.0f32; inputs * units];
        for i in 0..inputs {
            for u in 0..units {
                kernel[u * inputs + i] = p.data[i * units + u];
            }
        }
        let name = format!("{}.as_conv", p.name);
        let mut args = vec![x, self.constant(&name, &[units, inputs, 1, 1], &kernel)];
        if let Some(b) = d.bias {
            args.push(self.param(b));
        }
        let y = self.op("Conv", path, args, vec![ints("kernel_shape", &[1, 1])]);
        self.activate(y, d.activation, path)
    }

    /// LRN: ONNX's own operator when its window matches ours (odd sizes),
    /// else `x / (k + alpha / size * band_sum(x^2))^beta` spelled out.
    fn lrn(&mut self, spec: LrnSpec, x: String, channels: usize, path: &str) -> String {
        if spec.size % 2 == 1 {
            return self.op(
                "LRN",
                path,
                vec![x],
                vec![
                    int("size", spec.size as i64),
                    float("alpha", spec.alpha),
                    float("beta", spec.beta),
                    float("bias", spec.k),
                ],
            );
        }
        // The engine sums channels [c - size/2, c + (size-1)/2].
        let (before, after) = (spec.size / 2, (spec.size.max(1) - 1) / 2);
        let mut band = vec![0.0f32; channels * channels];
        for c in 0..channels {
            let (lo, hi) = (c.saturating_sub(before), (c + after).min(channels - 1));
            for j in lo..=hi {
                band[c * channels + j] = 1.0;
            }
        }
        let band = self.constant(&format!("{path}.band"), &[channels, channels, 1, 1], &band);
        let squared = self.op("Mul", path, vec![x.clone(), x.clone()], vec![]);
        let sum = self.op(
            "Conv",
            path,
            vec![squared, band],
            vec![ints("kernel_shape", &[1, 1])],
        );
        let alpha = self.scalar((spec.alpha / spec.size.max(1) as f64) as f32);
        let k = self.scalar(spec.k as f32);
        let beta = self.scalar(spec.beta as f32);
        let scaled = self.op("Mul", path, vec![sum, alpha], vec![]);
        let base = self.op("Add", path, vec![scaled, k], vec![]);
        let denominator = self.op("Pow", path, vec![base, beta], vec![]);
        self.op("Div", path, vec![x, denominator], vec![])
    }

    fn node(&mut self, node: &Node, path: &str, v: Value) -> Result<Value, ExportError> {
        let unsupported = |reason: &str| ExportError::Unsupported {
            layer: path.to_owned(),
            reason: reason.to_owned(),
        };
        let (x, channels) = match v {
            Value::Flat(x) => {
                return Ok(Value::Flat(match node {
                    Node::Dense(d) => self.dense(d, x, path),
                    Node::Dropout(_) => x,
                    Node::Activation(a) => self.activate(x, *a, path),
                    _ => return Err(unsupported("a feature-map layer after the flatten")),
                }))
            }
            Value::Map(x, channels) => (x, channels),
        };
        let map = Value::Map;
        Ok(match node {
            Node::Conv(c) => map(self.conv(c, x, path), c.spec.out_channels),
            Node::Separable(dw, pw) => {
                let mid = self.conv(dw, x, &format!("{path}.depthwise"));
                map(
                    self.conv(pw, mid, &format!("{path}.pointwise")),
                    pw.spec.out_channels,
                )
            }
            Node::Pool(op, spec) => map(self.pool(*op, spec, x, path), channels),
            Node::GlobalAvgPool => {
                let pooled = self.op("GlobalAveragePool", path, vec![x], vec![]);
                Value::Flat(self.op("Flatten", path, vec![pooled], vec![int("axis", 1)]))
            }
            Node::Flatten => Value::Flat(self.op("Flatten", path, vec![x], vec![int("axis", 1)])),
            Node::Dense(_) => return Err(unsupported("a dense layer on a feature map")),
            Node::Dropout(_) => map(x, channels),
            Node::Activation(a) => map(self.activate(x, *a, path), channels),
            Node::Lrn(spec) => map(self.lrn(*spec, x, channels, path), channels),
            Node::Se { squeeze, excite } => {
                let pooled = self.op("GlobalAveragePool", path, vec![x.clone()], vec![]);
                let hidden = self.dense_as_conv(squeeze, pooled, &format!("{path}.squeeze"));
                let gate = self.dense_as_conv(excite, hidden, &format!("{path}.excite"));
                map(self.op("Mul", path, vec![x, gate], vec![]), channels)
            }
            Node::Residual {
                body,
                projection,
                activation,
            } => {
                let body_path = format!("{path}.body");
                let out = match self.sequence(body, &body_path, Value::Map(x.clone(), channels))? {
                    Value::Map(out, out_channels) => (out, out_channels),
                    Value::Flat(_) => return Err(unsupported("a residual body that flattens")),
                };
                let skip = match projection {
                    Some(p) => self.conv(p, x, &format!("{path}.shortcut")),
                    None => x,
                };
                let sum = self.op("Add", path, vec![out.0, skip], vec![]);
                map(self.activate(sum, *activation, path), out.1)
            }
            Node::Branches(branches) => self.branches(branches, x, channels, path)?,
        })
    }

    /// A max or average pooling of `x`.
    fn pool(&mut self, op: PoolOp, spec: &Pool2dSpec, x: String, path: &str) -> String {
        let mut attrs = vec![
            ints("kernel_shape", &[spec.kernel.0, spec.kernel.1]),
            ints("strides", &[spec.stride.0, spec.stride.1]),
            ints("pads", &pads(spec.padding)),
        ];
        let name = match op {
            PoolOp::Max => "MaxPool",
            PoolOp::Avg => {
                // Padding is not counted in the mean.
                attrs.push(int("count_include_pad", 0));
                "AveragePool"
            }
        };
        self.op(name, path, vec![x], attrs)
    }

    /// Parallel branches on `x` (of `channels`), their outputs concatenated
    /// along the channels.
    fn branches(
        &mut self,
        branches: &[Vec<Node>],
        x: String,
        channels: usize,
        path: &str,
    ) -> Result<Value, ExportError> {
        let unsupported = |reason: &str| ExportError::Unsupported {
            layer: path.to_owned(),
            reason: reason.to_owned(),
        };
        let mut outputs = Vec::with_capacity(branches.len());
        let mut total = 0;
        for (j, branch) in branches.iter().enumerate() {
            let branch_path = format!("{path}.branches.{j}");
            match self.sequence(branch, &branch_path, Value::Map(x.clone(), channels))? {
                Value::Map(out, c) => {
                    outputs.push(out);
                    total += c;
                }
                Value::Flat(_) => return Err(unsupported("a branch that flattens")),
            }
        }
        Ok(match outputs.len() {
            0 => return Err(unsupported("no branches")),
            1 => Value::Map(outputs.remove(0), total),
            _ => Value::Map(
                self.op("Concat", path, outputs, vec![int("axis", 1)]),
                total,
            ),
        })
    }
}
