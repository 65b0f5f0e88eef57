//! Checkpoints of a training run, so that a trial can stop at a rung (or a
//! worker die) and go on later, anywhere, exactly where it was.
//!
//! A checkpoint is one safetensors blob: the network's tensors under their
//! weight-file names (parameters and batch-norm running statistics, see
//! [`crate::weights`]), the optimiser's moments as `optimizer.first.<i>` and
//! `optimizer.second.<i>`, and metadata: the format, the architecture's
//! canonical hash, the epochs and steps done, the optimiser's step count and
//! the recipe that decides the run's trajectory. The data order,
//! augmentation and dropout of each epoch are drawn from the seed and the
//! epoch number alone, so they need no state. A checkpoint is only loaded
//! into the same architecture under the same recipe.

use std::collections::HashMap;
use std::path::Path;

use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use thiserror::Error;

use super::{Optimizer, ResumePoint, Session, TrainConfig};
use crate::net::Network;
use crate::weights::{self, bytes_of, WeightsError};

const FORMAT_KEY: &str = "format";
const FORMAT: &str = "nas-checkpoint-1";
const EPOCH_KEY: &str = "nas.epoch";
const STEP_KEY: &str = "nas.step";
const OPTIMIZER_STEPS_KEY: &str = "nas.optimizer_steps";
const RECIPE_KEY: &str = "nas.recipe";

/// Why a checkpoint could not be written or loaded.
#[derive(Debug, Error)]
pub enum CheckpointError {
    /// Its weights are unreadable or for another network.
    #[error("checkpoint: {0}")]
    Weights(#[from] WeightsError),
    /// It is not a checkpoint of this format.
    #[error("checkpoint: {0}")]
    Format(String),
    /// It was written under another training recipe.
    #[error(
        "checkpoint: written under another training recipe ({found}), not this one ({expected})"
    )]
    Recipe {
        /// The recipe in the checkpoint.
        found: String,
        /// This run's recipe.
        expected: String,
    },
}

/// The settings that decide a run's trajectory, as text: two runs with the
/// same recipe and seed train the same network the same way. Threads, time
/// limits and where the run stops are not part of it.
pub fn recipe_of(config: &TrainConfig) -> String {
    let mut recipe = config.clone();
    recipe.threads = 1;
    recipe.max_seconds = None;
    recipe.stop_at_epoch = None;
    serde_json::to_string(&recipe).unwrap_or_default()
}

/// Serialises where `session` stands.
pub fn to_bytes(session: &Session<'_>) -> Result<Vec<u8>, CheckpointError> {
    let net = &session.trainer().net;
    let (_, first, second, optimizer_steps) = session.trainer().optimizer().state();
    let mut owned: Vec<(String, Vec<usize>, Vec<u8>)> = weights::tensors(net)
        .into_iter()
        .map(|(n, s, v)| (n, s, bytes_of(v)))
        .collect();
    for (kind, moments) in [("first", first), ("second", second)] {
        for (i, m) in moments.iter().enumerate() {
            owned.push((format!("optimizer.{kind}.{i}"), vec![m.len()], bytes_of(m)));
        }
    }
    let views = owned
        .iter()
        .map(|(n, s, b)| TensorView::new(Dtype::F32, s.clone(), b).map(|v| (n.clone(), v)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| CheckpointError::Format(e.to_string()))?;
    let metadata = HashMap::from([
        (FORMAT_KEY.to_owned(), FORMAT.to_owned()),
        (
            "nas.architecture_sha256".to_owned(),
            net.architecture().canonical_hash(),
        ),
        (EPOCH_KEY.to_owned(), session.epochs_done().to_string()),
        (STEP_KEY.to_owned(), session.resume_point().step.to_string()),
        (OPTIMIZER_STEPS_KEY.to_owned(), optimizer_steps.to_string()),
        (RECIPE_KEY.to_owned(), recipe_of(session.config())),
    ]);
    safetensors::serialize(views, Some(metadata))
        .map_err(|e| CheckpointError::Format(e.to_string()))
}

/// The epochs a checkpoint holds, without loading it.
pub fn epochs_of(bytes: &[u8]) -> Result<usize, CheckpointError> {
    let (_, metadata) =
        SafeTensors::read_metadata(bytes).map_err(|e| CheckpointError::Format(e.to_string()))?;
    let meta = metadata.metadata().clone().unwrap_or_default();
    number(&meta, EPOCH_KEY)
}

fn number<T: std::str::FromStr>(
    meta: &HashMap<String, String>,
    key: &str,
) -> Result<T, CheckpointError> {
    meta.get(key)
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| CheckpointError::Format(format!("no valid `{key}` in the metadata")))
}

/// Loads `bytes` into `net` (which must have the checkpoint's architecture)
/// and returns where the run under `config` goes on from.
pub fn load(
    net: &mut Network,
    bytes: &[u8],
    config: &TrainConfig,
) -> Result<ResumePoint, CheckpointError> {
    let (_, metadata) =
        SafeTensors::read_metadata(bytes).map_err(|e| CheckpointError::Format(e.to_string()))?;
    let meta = metadata.metadata().clone().unwrap_or_default();
    if meta.get(FORMAT_KEY).map(String::as_str) != Some(FORMAT) {
        return Err(CheckpointError::Format(format!(
            "not a `{FORMAT}` checkpoint"
        )));
    }
    let expected = recipe_of(config);
    let found = meta.get(RECIPE_KEY).cloned().unwrap_or_default();
    if found != expected {
        return Err(CheckpointError::Recipe { found, expected });
    }
    // Checks the architecture's hash and every tensor's shape.
    weights::load_bytes(net, bytes, Path::new("checkpoint"))?;
    let tensors =
        SafeTensors::deserialize(bytes).map_err(|e| CheckpointError::Format(e.to_string()))?;
    let lengths: Vec<usize> = net.params.iter().map(|p| p.data.len()).collect();
    let moments = |kind: &str| -> Result<Vec<Vec<f32>>, CheckpointError> {
        let mut out = Vec::new();
        for (i, &len) in lengths.iter().enumerate() {
            let name = format!("optimizer.{kind}.{i}");
            let Ok(view) = tensors.tensor(&name) else {
                break;
            };
            if view.dtype() != Dtype::F32 || view.shape() != [len] {
                return Err(CheckpointError::Format(format!(
                    "`{name}` is {:?} {:?}, expected F32 [{len}]",
                    view.dtype(),
                    view.shape()
                )));
            }
            out.push(
                view.data()
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect(),
            );
        }
        Ok(out)
    };
    let (first, second) = (moments("first")?, moments("second")?);
    let needs_second = !matches!(config.optimizer, super::OptimizerKind::Sgd { .. });
    if first.len() != lengths.len() || (needs_second && second.len() != lengths.len()) {
        return Err(CheckpointError::Format(
            "the optimiser's state does not cover every parameter".into(),
        ));
    }
    Ok(ResumePoint {
        epoch: number(&meta, EPOCH_KEY)?,
        step: number(&meta, STEP_KEY)?,
        optimizer: Optimizer::from_state(
            config.optimizer,
            first,
            second,
            number(&meta, OPTIMIZER_STEPS_KEY)?,
        ),
    })
}
