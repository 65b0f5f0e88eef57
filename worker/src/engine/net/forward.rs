//! The forward pass: the compiled nodes applied to dfdx tensors.

use dfdx::prelude::*;
use search::arch::PoolOp;

use crate::ops::{self, BatchNormArgs, BatchNormMode, Flat, Map, Param, RunningStats};

use super::plan::{ConvNode, DenseNode, Node};

/// Training (batch statistics, dropout) or inference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Batch norm on batch statistics (updating the running ones), dropout on.
    Train,
    /// Batch norm on running statistics, dropout off.
    Eval,
}

/// A value flowing through the network. `raw` marks the input images, whose
/// gradient nobody needs.
enum Value<T> {
    Map(Map<f32, T>, bool),
    Flat(Flat<f32, T>),
}

pub(super) struct Context<'a> {
    pub params: &'a [Param<f32>],
    pub stats: &'a mut [(String, RunningStats<f32>)],
    pub mode: Mode,
}

/// A copy of `t` with an empty tape of the same kind, for a second consumer
/// (dfdx sums the gradients of both by tensor id).
fn fork<S: Shape, T: Tape<f32, Cpu>>(t: &Tensor<S, f32, Cpu, T>) -> Tensor<S, f32, Cpu, T> {
    t.retaped::<T>()
}

impl Context<'_> {
    pub fn run<T: Tape<f32, Cpu>>(&mut self, nodes: &[Node], x: Map<f32, T>) -> Flat<f32, T> {
        match self.sequence(nodes, Value::Map(x, true)) {
            Value::Flat(f) => f,
            // Validation guarantees a flat output; a map is flattened as a fallback.
            Value::Map(m, _) => {
                let (n, c, h, w) = *m.shape();
                m.reshape_like(&(n, c * h * w))
            }
        }
    }

    fn sequence<T: Tape<f32, Cpu>>(&mut self, nodes: &[Node], mut v: Value<T>) -> Value<T> {
        for node in nodes {
            v = self.node(node, v);
        }
        v
    }

    fn param(&self, index: usize) -> &Param<f32> {
        &self.params[index]
    }

    fn conv<T: Tape<f32, Cpu>>(&mut self, c: &ConvNode, x: Map<f32, T>, raw: bool) -> Map<f32, T> {
        let bias = c.bias.map(|b| &self.params[b]);
        let mode = match self.mode {
            Mode::Train => BatchNormMode::Train,
            Mode::Eval => BatchNormMode::Eval,
        };
        let batch_norm = c.batch_norm.map(|bn| BatchNormArgs {
            gamma: &self.params[bn.gamma],
            beta: &self.params[bn.beta],
            stats: &mut self.stats[bn.stats].1,
            mode,
        });
        let weight = &self.params[c.weight];
        ops::conv_block(x, weight, bias, c.spec, !raw, batch_norm, c.activation)
    }

    fn dense<T: Tape<f32, Cpu>>(&self, d: &DenseNode, x: Flat<f32, T>) -> Flat<f32, T> {
        let n = x.shape().0;
        let w = self
            .param(d.weight)
            .tensor
            .retaped::<T>()
            .reshape_like(&(d.inputs, d.units));
        let mut y = x.matmul(w);
        if let Some(b) = d.bias {
            let b = self
                .param(b)
                .tensor
                .retaped::<T>()
                .broadcast_like::<(usize, usize), Axis<0>>(&(n, d.units));
            y = y + b;
        }
        ops::activate(y, d.activation)
    }

    fn node<T: Tape<f32, Cpu>>(&mut self, node: &Node, v: Value<T>) -> Value<T> {
        let (x, raw) = match v {
            Value::Flat(f) => {
                return Value::Flat(match node {
                    Node::Dense(d) => self.dense(d, f),
                    Node::Dropout(rate) if self.mode == Mode::Train && *rate > 0.0 => {
                        f.dropout(*rate as f32)
                    }
                    Node::Activation(a) => ops::activate(f, *a),
                    // Validation rules out map layers on flat values; dropout in eval passes.
                    _ => f,
                });
            }
            Value::Map(m, raw) => (m, raw),
        };
        let map = |m| Value::Map(m, false);
        match node {
            Node::Conv(c) => map(self.conv(c, x, raw)),
            Node::Separable(dw, pw) => {
                let mid = self.conv(dw, x, raw);
                map(self.conv(pw, mid, false))
            }
            Node::Pool(PoolOp::Max, spec) => map(ops::max_pool2d(x, *spec)),
            Node::Pool(PoolOp::Avg, spec) => map(ops::avg_pool2d(x, *spec)),
            Node::GlobalAvgPool => Value::Flat(ops::global_avg_pool(x)),
            Node::Flatten => {
                let (n, c, h, w) = *x.shape();
                Value::Flat(x.reshape_like(&(n, c * h * w)))
            }
            Node::Dense(_) => map(x),
            Node::Dropout(rate) if self.mode == Mode::Train && *rate > 0.0 => {
                map(x.dropout(*rate as f32))
            }
            Node::Dropout(_) => Value::Map(x, raw),
            Node::Activation(a) => map(ops::activate(x, *a)),
            Node::Lrn(spec) => map(ops::lrn(x, *spec)),
            Node::Se { squeeze, excite } => {
                let pooled = ops::global_avg_pool(fork(&x));
                let gate = self.dense(excite, self.dense(squeeze, pooled));
                map(ops::channel_scale(x, gate))
            }
            Node::Residual {
                body,
                projection,
                activation,
            } => {
                let skip = fork(&x);
                let out = match self.sequence(body, Value::Map(x, raw)) {
                    Value::Map(m, _) => m,
                    Value::Flat(_) => {
                        unreachable!("validation keeps residual bodies on feature maps")
                    }
                };
                let skip = match projection {
                    Some(p) => self.conv(p, skip, raw),
                    None => skip,
                };
                map(ops::add_activate(out, skip, *activation))
            }
            Node::Branches(branches) => {
                let mut inputs: Vec<Map<f32, T>> = (1..branches.len()).map(|_| fork(&x)).collect();
                inputs.insert(0, x);
                let mut outputs = branches.iter().zip(inputs).map(|(b, input)| {
                    match self.sequence(b, Value::Map(input, raw)) {
                        Value::Map(m, _) => m,
                        Value::Flat(_) => unreachable!("validation keeps branches on feature maps"),
                    }
                });
                let first = outputs
                    .next()
                    .expect("validation requires at least one branch");
                map(outputs.fold(first, |acc, next| (acc, next).concat_along(Axis::<1>)))
            }
        }
    }
}
