//! The inference path: a trained [`Network`] compiled once into a flat
//! program for a fixed batch size, then run as often as needed.
//!
//! What compiling does, and why it is faster than the training path's eval
//! mode at batch 1:
//! - **Batch norm is folded** into the convolution before it (`w' = w ·
//!   gamma / sqrt(var + eps)`, `b' = (b - mean) · gamma / sqrt(var + eps) +
//!   beta`), so a conv-BN-activation block is one kernel and one epilogue.
//! - **Activations are fused** into the kernel that produces their input:
//!   convolutions, dense layers and residual sums apply theirs in place.
//! - **Buffers are planned once**: every value gets a slot in a small pool
//!   of buffers, reused as soon as its last reader has run, so a run
//!   allocates nothing and copies no weights.
//!
//! The kernels are the training path's own forward halves
//! ([`crate::ops::infer`]), so the logits equal the eval mode's up to the
//! rounding of the folded weights (tested to 1e-4 relative across the zoo
//! and preset samples).

use search::arch::{Activation, PoolOp};

use crate::ops::infer::{
    activate_in_place, add_into_activated, channel_scale_into, conv_into, dense_into,
    global_avg_pool_into, lrn_into, pool_into,
};
use crate::ops::{Conv2dSpec, LrnSpec, Pool2dSpec, BATCH_NORM_EPSILON};

use super::plan::{ConvNode, DenseNode, Node};
use super::Network;

/// The revision of the inference path's kernels. Latency bases established
/// by another revision are not used (`latency::reference::build_label`):
/// raise it whenever a change makes the engine's inference faster or slower.
pub const INFERENCE_REVISION: u32 = 1;

/// The per-image dimensions of a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dims {
    /// A feature map, `c x h x w`.
    Map { c: usize, h: usize, w: usize },
    /// A vector of features.
    Flat(usize),
}

impl Dims {
    fn len(self) -> usize {
        match self {
            Dims::Map { c, h, w } => c * h * w,
            Dims::Flat(f) => f,
        }
    }

    /// Channels and plane size (a vector is `f` planes of one element).
    fn planes(self) -> (usize, usize) {
        match self {
            Dims::Map { c, h, w } => (c, h * w),
            Dims::Flat(f) => (f, 1),
        }
    }
}

/// A value of the program: the value number (a slot in the buffer plan) and
/// its dimensions. Reshapes (flatten, eval-mode dropout) keep the number.
#[derive(Debug, Clone, Copy)]
struct Value {
    id: usize,
    dims: Dims,
}

/// A convolution with its batch norm folded in.
struct FoldedConv {
    spec: Conv2dSpec,
    weights: Vec<f32>,
    bias: Option<Vec<f32>>,
    activation: Activation,
}

/// A dense layer, `weights: inputs x units`.
struct Dense {
    inputs: usize,
    units: usize,
    weights: Vec<f32>,
    bias: Option<Vec<f32>>,
    activation: Activation,
}

/// What one step computes from its inputs.
enum Op {
    Conv(FoldedConv),
    Pool(PoolOp, Pool2dSpec),
    GlobalAvgPool,
    Dense(Dense),
    Activate(Activation),
    Lrn(LrnSpec),
    /// `inputs[0]` (a map) scaled plane by plane by `inputs[1]` (the gates).
    ChannelScale,
    /// `act(inputs[0] + inputs[1])`.
    AddActivate(Activation),
    /// The inputs' channels side by side.
    Concat,
}

/// One step: an op from input values to an output value.
struct Step {
    op: Op,
    inputs: Vec<Value>,
    output: Value,
}

/// A network compiled for inference at a fixed batch size.
pub struct InferencePlan {
    batch: usize,
    input: Value,
    output: Value,
    steps: Vec<Step>,
    /// The physical buffer of each value number.
    buffer_of: Vec<usize>,
    buffers: Vec<Vec<f32>>,
}

impl std::fmt::Debug for InferencePlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InferencePlan")
            .field("batch", &self.batch)
            .field("steps", &self.steps.len())
            .field("buffers", &self.buffers.len())
            .finish()
    }
}

impl InferencePlan {
    /// Compiles `net`'s current weights and running statistics for batches
    /// of `batch` images. Later changes to `net` are not seen: compile again.
    pub fn new(net: &Network, batch: usize) -> Self {
        let input = net.architecture().input;
        let mut compiler = Compiler {
            net,
            steps: Vec::new(),
            lens: Vec::new(),
        };
        let first = compiler.value(Dims::Map {
            c: input.channels,
            h: input.height,
            w: input.width,
        });
        let last = compiler.sequence(net.nodes(), first);
        let (buffer_of, sizes) = plan_buffers(&compiler.steps, &compiler.lens, first, last);
        let batch = batch.max(1);
        Self {
            batch,
            input: first,
            output: last,
            steps: compiler.steps,
            buffer_of,
            buffers: sizes
                .into_iter()
                .map(|len| vec![0.0; len * batch])
                .collect(),
        }
    }

    /// The batch size it was compiled for.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// Runs `images` (`batch x C x H x W`, normalised as in training) and
    /// returns the logits, `batch x classes`.
    ///
    /// Panics if `images` is not one batch of the network's input (a caller's
    /// bug: the batch and the input shape are fixed when compiling).
    pub fn run(&mut self, images: &[f32]) -> &[f32] {
        let n = self.batch;
        let input_len = n * self.input.dims.len();
        assert_eq!(images.len(), input_len, "inference: one batch of input");
        self.buffers[self.buffer_of[self.input.id]][..input_len].copy_from_slice(images);
        for step in &self.steps {
            let out_buffer = self.buffer_of[step.output.id];
            // Out of the pool while written: the plan never gives a step's
            // output the buffer of one of its inputs.
            let mut out = std::mem::take(&mut self.buffers[out_buffer]);
            let (buffers, buffer_of) = (&self.buffers, &self.buffer_of);
            let read = |v: Value| &buffers[buffer_of[v.id]][..n * v.dims.len()];
            step.run(n, read, &mut out[..n * step.output.dims.len()]);
            self.buffers[out_buffer] = out;
        }
        &self.buffers[self.buffer_of[self.output.id]][..n * self.output.dims.len()]
    }
}

impl Step {
    /// Writes the output of a batch of `n` into `out`; `read` gives the
    /// values of its inputs.
    fn run<'b>(&self, n: usize, read: impl Fn(Value) -> &'b [f32], out: &mut [f32]) {
        let x = read(self.inputs[0]);
        let dims = self.inputs[0].dims;
        let (c, hw) = dims.planes();
        match &self.op {
            Op::Conv(conv) => {
                let Dims::Map { h, w, .. } = dims else {
                    unreachable!("a convolution's input is a map");
                };
                conv_into(
                    conv.spec,
                    n,
                    (h, w),
                    x,
                    &conv.weights,
                    conv.bias.as_deref(),
                    conv.activation,
                    out,
                );
            }
            Op::Pool(op, spec) => {
                let Dims::Map { h, w, .. } = dims else {
                    unreachable!("a pooling's input is a map");
                };
                pool_into(*op == PoolOp::Max, x, (h, w), *spec, out);
            }
            Op::GlobalAvgPool => global_avg_pool_into(x, hw, out),
            Op::Dense(d) => dense_into(
                x,
                (n, d.inputs, d.units),
                &d.weights,
                d.bias.as_deref(),
                d.activation,
                out,
            ),
            Op::Activate(a) => {
                out.copy_from_slice(x);
                activate_in_place(out, *a);
            }
            Op::Lrn(spec) => lrn_into(x, (c, hw), *spec, out),
            Op::ChannelScale => channel_scale_into(x, read(self.inputs[1]), hw, out),
            Op::AddActivate(a) => add_into_activated(x, read(self.inputs[1]), *a, out),
            Op::Concat => {
                let total = self.output.dims.len();
                for (i, image) in out.chunks_exact_mut(total.max(1)).enumerate() {
                    let mut at = 0;
                    for &value in &self.inputs {
                        let len = value.dims.len();
                        image[at..at + len].copy_from_slice(&read(value)[i * len..(i + 1) * len]);
                        at += len;
                    }
                }
            }
        }
    }
}

/// Walks the network's nodes, emitting steps with numbered values.
struct Compiler<'n> {
    net: &'n Network,
    steps: Vec<Step>,
    /// Per-image length of each value number.
    lens: Vec<usize>,
}

impl Compiler<'_> {
    fn value(&mut self, dims: Dims) -> Value {
        self.lens.push(dims.len());
        Value {
            id: self.lens.len() - 1,
            dims,
        }
    }

    fn emit(&mut self, op: Op, inputs: Vec<Value>, dims: Dims) -> Value {
        let output = self.value(dims);
        self.steps.push(Step { op, inputs, output });
        output
    }

    fn sequence(&mut self, nodes: &[Node], mut v: Value) -> Value {
        for node in nodes {
            v = self.node(node, v);
        }
        v
    }

    fn conv(&mut self, node: &ConvNode, x: Value) -> Value {
        let Dims::Map { h, w, .. } = x.dims else {
            unreachable!("validation puts convolutions on maps");
        };
        let (oh, ow) = node.spec.output_size(h, w);
        let dims = Dims::Map {
            c: node.spec.out_channels,
            h: oh,
            w: ow,
        };
        let folded = fold_conv(self.net, node);
        self.emit(Op::Conv(folded), vec![x], dims)
    }

    fn dense(&mut self, node: &DenseNode, x: Value) -> Value {
        let p = &self.net.params;
        let dense = Dense {
            inputs: node.inputs,
            units: node.units,
            weights: p[node.weight].data.clone(),
            bias: node.bias.map(|b| p[b].data.clone()),
            activation: node.activation,
        };
        self.emit(Op::Dense(dense), vec![x], Dims::Flat(node.units))
    }

    fn node(&mut self, node: &Node, x: Value) -> Value {
        match node {
            Node::Conv(c) => self.conv(c, x),
            Node::Separable(dw, pw) => {
                let mid = self.conv(dw, x);
                self.conv(pw, mid)
            }
            Node::Pool(op, spec) => {
                let Dims::Map { c, h, w } = x.dims else {
                    unreachable!("validation puts pooling on maps");
                };
                let (oh, ow) = spec.output_size(h, w);
                let dims = Dims::Map { c, h: oh, w: ow };
                self.emit(Op::Pool(*op, *spec), vec![x], dims)
            }
            Node::GlobalAvgPool => {
                let (c, _) = x.dims.planes();
                self.emit(Op::GlobalAvgPool, vec![x], Dims::Flat(c))
            }
            Node::Flatten => Value {
                id: x.id,
                dims: Dims::Flat(x.dims.len()),
            },
            Node::Dense(d) => self.dense(d, x),
            Node::Dropout(_) => x,
            Node::Activation(Activation::None) => x,
            Node::Activation(a) => self.emit(Op::Activate(*a), vec![x], x.dims),
            Node::Lrn(spec) => self.emit(Op::Lrn(*spec), vec![x], x.dims),
            Node::Se { squeeze, excite } => {
                let (c, _) = x.dims.planes();
                let pooled = self.emit(Op::GlobalAvgPool, vec![x], Dims::Flat(c));
                let squeezed = self.dense(squeeze, pooled);
                let gates = self.dense(excite, squeezed);
                self.emit(Op::ChannelScale, vec![x, gates], x.dims)
            }
            Node::Residual {
                body,
                projection,
                activation,
            } => {
                let out = self.sequence(body, x);
                let skip = match projection {
                    Some(p) => self.conv(p, x),
                    None => x,
                };
                self.emit(Op::AddActivate(*activation), vec![out, skip], out.dims)
            }
            Node::Branches(branches) => {
                let outputs: Vec<Value> = branches.iter().map(|b| self.sequence(b, x)).collect();
                let (c, h, w) = outputs.iter().fold((0, 0, 0), |(c, _, _), v| match v.dims {
                    Dims::Map { c: bc, h, w } => (c + bc, h, w),
                    Dims::Flat(_) => unreachable!("validation keeps branches on maps"),
                });
                self.emit(Op::Concat, outputs, Dims::Map { c, h, w })
            }
        }
    }
}

/// A convolution's weights and bias with its batch norm (eval mode: the
/// running statistics) folded in.
fn fold_conv(net: &Network, node: &ConvNode) -> FoldedConv {
    let p = &net.params;
    let mut weights = p[node.weight].data.clone();
    let mut bias = node.bias.map(|b| p[b].data.clone());
    if let Some(bn) = node.batch_norm {
        let (gamma, beta) = (&p[bn.gamma].data, &p[bn.beta].data);
        let stats = &net.stats[bn.stats].1;
        let out = node.spec.out_channels;
        let per_output = weights.len() / out.max(1);
        let eps = BATCH_NORM_EPSILON as f32;
        let folded: Vec<f32> = (0..out)
            .map(|o| {
                // The eval mode's own arithmetic: scale = gamma / sqrt(var + eps).
                let scale = gamma[o] * (stats.var[o] + eps).sqrt().recip();
                weights[o * per_output..(o + 1) * per_output]
                    .iter_mut()
                    .for_each(|w| *w *= scale);
                let b = bias.as_ref().map_or(0.0, |b| b[o]);
                (b - stats.mean[o]) * scale + beta[o]
            })
            .collect();
        bias = Some(folded);
    }
    FoldedConv {
        spec: node.spec,
        weights,
        bias,
        activation: node.activation,
    }
}

/// Assigns each value number a physical buffer, reusing a buffer once the
/// last step reading its value has run. Returns the buffer of each value and
/// each buffer's per-image length. The input and output values keep theirs
/// to the end.
fn plan_buffers(
    steps: &[Step],
    lens: &[usize],
    input: Value,
    output: Value,
) -> (Vec<usize>, Vec<usize>) {
    let mut last_use = vec![0usize; lens.len()];
    for (i, step) in steps.iter().enumerate() {
        for v in &step.inputs {
            last_use[v.id] = i;
        }
    }
    last_use[output.id] = usize::MAX;
    let mut buffer_of = vec![usize::MAX; lens.len()];
    let mut sizes: Vec<usize> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    buffer_of[input.id] = take_buffer(lens[input.id], &mut sizes, &mut free);
    for (i, step) in steps.iter().enumerate() {
        let out = step.output.id;
        buffer_of[out] = take_buffer(lens[out], &mut sizes, &mut free);
        for v in &step.inputs {
            let b = buffer_of[v.id];
            // A value read twice by this step is freed once.
            if last_use[v.id] == i && v.id != input.id && !free.contains(&b) {
                free.push(b);
            }
        }
    }
    (buffer_of, sizes)
}

/// A buffer for a value of `len` elements per image: the smallest free one
/// that fits, else the largest free one grown, else a new one.
fn take_buffer(len: usize, sizes: &mut Vec<usize>, free: &mut Vec<usize>) -> usize {
    let fitting = (0..free.len())
        .filter(|&at| sizes[free[at]] >= len)
        .min_by_key(|&at| sizes[free[at]])
        .or_else(|| (0..free.len()).max_by_key(|&at| sizes[free[at]]));
    match fitting {
        Some(at) => {
            let b = free.swap_remove(at);
            sizes[b] = sizes[b].max(len);
            b
        }
        None => {
            sizes.push(len);
            sizes.len() - 1
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};
    use search::InputShape;

    use super::*;
    use crate::ops::Param;

    /// Random batch norm parameters and running statistics, so folding is
    /// tested on values other than the identity a fresh network holds.
    fn perturb(net: &mut Network, seed: u64) {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        for p in &mut net.params {
            if p.name.ends_with(".bn.weight") || p.name.ends_with(".bn.bias") {
                p.data.iter_mut().for_each(|v| *v = rng.gen_range(0.5..1.5));
            }
        }
        for (_, stats) in &mut net.stats {
            stats
                .mean
                .iter_mut()
                .for_each(|m| *m = rng.gen_range(-0.2..0.2));
            stats
                .var
                .iter_mut()
                .for_each(|v| *v = rng.gen_range(0.5..2.0));
        }
    }

    fn images(len: usize, seed: u64) -> Vec<f32> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        (0..len).map(|_| rng.gen_range(0.0..1.0)).collect()
    }

    /// The largest difference relative to the largest logit.
    fn relative_difference(a: &[f32], b: &[f32]) -> f32 {
        let scale = b.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
        a.iter()
            .zip(b)
            .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()))
            / scale
    }

    fn check(arch: &search::Architecture, label: &str) {
        let mut net = Network::new(arch, 7).expect(label);
        perturb(&mut net, 11);
        let input = arch.input;
        let per_image = input.channels * input.height * input.width;
        for batch in [1, 3] {
            let x = images(per_image * batch, 5);
            let params: Vec<Param<f32>> = net.tensors();
            let eval = net.predict(&params, x.clone(), batch);
            let mut plan = InferencePlan::new(&net, batch);
            let first = plan.run(&x).to_vec();
            // A second run reuses the buffers and must not see the first's values.
            let again = plan.run(&x).to_vec();
            assert_eq!(first, again, "{label}: runs differ");
            let diff = relative_difference(&first, &eval);
            assert!(
                diff <= 1e-4,
                "{label} at batch {batch}: inference differs from eval mode by {diff:e}"
            );
        }
    }

    #[test]
    fn inference_equals_eval_mode_across_the_zoo() {
        for entry in search::zoo::ZOO {
            let width = if entry.name == "lenet5" { 1.0 } else { 0.25 };
            let arch = search::zoo::build(entry.name, InputShape::new(1, 28, 28), 10, width)
                .expect(entry.name);
            check(&arch, entry.name);
        }
    }

    #[test]
    fn inference_equals_eval_mode_on_preset_samples() {
        for preset in search::space::PRESETS {
            let space = search::SearchSpace::preset(preset).expect(preset);
            for seed in 0..4 {
                let shape = if seed % 2 == 0 {
                    InputShape::new(1, 28, 28)
                } else {
                    InputShape::new(3, 32, 32)
                };
                let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
                let arch = search::sample(&space, shape, 10, &mut rng).expect(preset);
                check(&arch, &format!("{preset} seed {seed}"));
            }
        }
    }

    #[test]
    fn buffers_are_reused_once_their_last_reader_has_run() {
        let arch =
            search::zoo::build("resnet18", InputShape::new(1, 28, 28), 10, 0.25).expect("resnet18");
        let net = Network::new(&arch, 1).expect("network");
        let plan = InferencePlan::new(&net, 1);
        // Dozens of values, a handful of buffers: a chain needs two plus the
        // residual skips held across their bodies.
        assert!(plan.steps.len() > 20, "{} steps", plan.steps.len());
        assert!(
            plan.buffers.len() <= 6,
            "{} buffers for {} steps",
            plan.buffers.len(),
            plan.steps.len()
        );
    }
}
