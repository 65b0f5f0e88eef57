//! Trainable networks built from `search` architectures.
//!
//! A [`Network`] owns its parameters as plain `f32` vectors (what the
//! optimiser updates and what is saved) and a compiled plan of the layers.
//! Each forward pass wraps the parameters in dfdx tensors ([`Network::tensors`])
//! so the pass records its backward operations on the input's tape.

mod forward;
mod inference;
pub(crate) mod plan;

use dfdx::prelude::*;
use rand::SeedableRng;
use search::Architecture;
use thiserror::Error;

use crate::data::ChannelStats;
use crate::ops::{Flat, Map, Param, RunningStats};

pub use forward::Mode;
pub use inference::{InferencePlan, INFERENCE_REVISION};

/// Why a network could not be built.
#[derive(Debug, Error)]
pub enum NetworkError {
    /// The architecture is not valid (the `search` crate's verdict).
    #[error("invalid architecture: {0}")]
    Invalid(#[from] search::ValidationError),
    /// The validation report does not describe the architecture (a bug).
    #[error("invalid architecture: {0}")]
    Shape(String),
}

/// One trainable tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct Parameter {
    /// Dotted path, e.g. `layers.3.body.0.weight`; the name in weight files.
    pub name: String,
    /// Logical shape (conv weights: `out, in/groups, kh, kw`; dense: `in, out`).
    pub shape: Vec<usize>,
    /// The values, row-major.
    pub data: Vec<f32>,
}

/// A network ready to train or run.
pub struct Network {
    architecture: Architecture,
    report: search::Report,
    nodes: Vec<plan::Node>,
    /// Trainable parameters, in a fixed order.
    pub params: Vec<Parameter>,
    /// Batch norm running statistics, by layer path.
    pub stats: Vec<(String, RunningStats<f32>)>,
    /// The per-channel normalisation of the pixels it was trained on, once
    /// trained (saved with the weights; exported models apply it).
    input_normalization: Option<ChannelStats>,
    /// Class names in label order, when known (saved with the weights;
    /// exported models carry them).
    class_names: Option<Vec<String>>,
    device: Cpu,
}

impl std::fmt::Debug for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Network")
            .field("architecture", &self.architecture.name)
            .field("params", &self.param_count())
            .finish()
    }
}

impl Network {
    /// Validates `architecture` and builds it with weights drawn from `seed`.
    pub fn new(architecture: &Architecture, seed: u64) -> Result<Self, NetworkError> {
        let report = search::validate(architecture)?;
        Self::from_validated(architecture, report, seed)
    }

    /// Builds `architecture`, already validated into `report` (what
    /// `search::validate` returned for it), with weights drawn from `seed`:
    /// for a caller that needed the report before building.
    pub fn from_validated(
        architecture: &Architecture,
        report: search::Report,
        seed: u64,
    ) -> Result<Self, NetworkError> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let compiled = plan::compile(architecture, &report, &mut rng)?;
        Ok(Self {
            architecture: architecture.clone(),
            report,
            nodes: compiled.nodes,
            params: compiled.params,
            stats: compiled.stats,
            input_normalization: None,
            class_names: None,
            // Dropout masks come from the device's generator.
            device: Cpu::seed_from_u64(seed ^ 0x5eed),
        })
    }

    /// The architecture this network was built from.
    pub fn architecture(&self) -> &Architecture {
        &self.architecture
    }

    /// The pixel normalisation its weights were trained with, if known.
    pub fn input_normalization(&self) -> Option<&ChannelStats> {
        self.input_normalization.as_ref()
    }

    /// Records the pixel normalisation its weights were trained with.
    pub fn set_input_normalization(&mut self, stats: Option<ChannelStats>) {
        self.input_normalization = stats;
    }

    /// Its class names in label order, if known.
    pub fn class_names(&self) -> Option<&[String]> {
        self.class_names.as_deref()
    }

    /// Records its class names (one per output; others are ignored).
    pub fn set_class_names(&mut self, names: Option<Vec<String>>) {
        self.class_names = names.filter(|n| n.len() == self.architecture.classes);
    }

    /// The compiled layers (what the forward pass and the exporter walk).
    pub(crate) fn nodes(&self) -> &[plan::Node] {
        &self.nodes
    }

    /// Its validation report: per-layer shapes, parameters and MACs.
    pub fn report(&self) -> &search::Report {
        &self.report
    }

    /// Number of trainable parameters (equal to `search`'s count).
    pub fn param_count(&self) -> usize {
        self.params.iter().map(|p| p.data.len()).sum()
    }

    /// Reseeds the generator dropout masks come from, so that an epoch's
    /// masks depend only on the seed given here (a resumed run replays them).
    pub fn reseed_dropout(&mut self, seed: u64) {
        self.device = Cpu::seed_from_u64(seed);
    }

    /// The dfdx device tensors are made on.
    pub fn device(&self) -> &Cpu {
        &self.device
    }

    /// The parameters as dfdx tensors for one forward pass (a copy each).
    pub fn tensors(&self) -> Vec<Param<f32>> {
        self.params
            .iter()
            .map(|p| Param::new(&self.device, p.data.clone()))
            .collect()
    }

    /// Runs `x: N x C x H x W` through the network and returns the logits
    /// `N x classes`. `params` come from [`Network::tensors`]; in
    /// [`Mode::Train`] batch norm uses batch statistics (and updates its
    /// running ones) and dropout is on.
    pub fn forward<T: Tape<f32, Cpu>>(
        &mut self,
        x: Map<f32, T>,
        params: &[Param<f32>],
        mode: Mode,
    ) -> Flat<f32, T> {
        let mut ctx = forward::Context {
            params,
            stats: &mut self.stats,
            mode,
        };
        ctx.run(&self.nodes, x)
    }

    /// Logits for a batch in eval mode, without recording gradients.
    pub fn predict(&mut self, params: &[Param<f32>], images: Vec<f32>, batch: usize) -> Vec<f32> {
        let input = &self.architecture.input;
        let x = self
            .device
            .tensor_from_vec(images, (batch, input.channels, input.height, input.width));
        crate::ops::to_vec(&self.forward(x, params, Mode::Eval))
    }
}
