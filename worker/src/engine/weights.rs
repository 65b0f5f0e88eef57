//! Trained weights as safetensors: every parameter under its dotted name and
//! shape, batch norm statistics as `<layer>.bn.running_mean` / `running_var`,
//! and the architecture's canonical hash in the metadata so weights are
//! never loaded into a different network; the pixel normalisation the
//! weights were trained with travels in the metadata too (what an ONNX
//! export applies to raw pixels).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use thiserror::Error;

use crate::data::ChannelStats;
use crate::net::Network;

/// Metadata key holding the architecture's canonical hash.
const HASH_KEY: &str = "nas.architecture_sha256";
/// Metadata key holding the pixel normalisation the weights were trained
/// with (`{"mean": [...], "std": [...]}`), when known.
const NORMALIZATION_KEY: &str = "nas.input_normalization";

/// Metadata key holding the class names in label order (a JSON array).
pub const CLASS_NAMES_KEY: &str = "nas.class_names";
/// Metadata key naming the format.
const FORMAT_KEY: &str = "format";
/// The format's name and version.
const FORMAT: &str = "nas-weights-1";

/// Why weights could not be saved or loaded.
#[derive(Debug, Error)]
pub enum WeightsError {
    /// Reading or writing the file failed.
    #[error("{}: {source}", file.display())]
    Io {
        /// The file.
        file: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The file is not valid safetensors.
    #[error("{}: not a valid safetensors file: {message}", file.display())]
    Format {
        /// The file.
        file: PathBuf,
        /// The parser's complaint.
        message: String,
    },
    /// The file holds weights for another network.
    #[error("{}: {message}", file.display())]
    Mismatch {
        /// The file.
        file: PathBuf,
        /// What differs.
        message: String,
    },
}

/// Little-endian bytes of `values`.
pub(crate) fn bytes_of(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// The tensors of `net` as `(name, shape, values)`, parameters first.
pub(crate) fn tensors(net: &Network) -> Vec<(String, Vec<usize>, &[f32])> {
    let mut out: Vec<(String, Vec<usize>, &[f32])> = net
        .params
        .iter()
        .map(|p| (p.name.clone(), p.shape.clone(), p.data.as_slice()))
        .collect();
    for (name, stats) in &net.stats {
        out.push((
            format!("{name}.running_mean"),
            vec![stats.mean.len()],
            &stats.mean,
        ));
        out.push((
            format!("{name}.running_var"),
            vec![stats.var.len()],
            &stats.var,
        ));
    }
    out
}

/// Serialises `net`'s weights to safetensors bytes.
pub fn to_bytes(net: &Network) -> Result<Vec<u8>, WeightsError> {
    let owned: Vec<(String, Vec<usize>, Vec<u8>)> = tensors(net)
        .into_iter()
        .map(|(n, s, v)| (n, s, bytes_of(v)))
        .collect();
    let views = owned
        .iter()
        .map(|(n, s, b)| TensorView::new(Dtype::F32, s.clone(), b).map(|v| (n.clone(), v)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| WeightsError::Format {
            file: PathBuf::from("<memory>"),
            message: e.to_string(),
        })?;
    let mut metadata = HashMap::from([
        (FORMAT_KEY.to_owned(), FORMAT.to_owned()),
        (HASH_KEY.to_owned(), net.architecture().canonical_hash()),
    ]);
    if let Some(stats) = net.input_normalization() {
        // Plain numbers: serialising cannot fail.
        if let Ok(json) = serde_json::to_string(stats) {
            metadata.insert(NORMALIZATION_KEY.to_owned(), json);
        }
    }
    if let Some(names) = net.class_names() {
        if let Ok(json) = serde_json::to_string(names) {
            metadata.insert(CLASS_NAMES_KEY.to_owned(), json);
        }
    }
    safetensors::serialize(views, Some(metadata)).map_err(|e| WeightsError::Format {
        file: PathBuf::from("<memory>"),
        message: e.to_string(),
    })
}

/// Writes `net`'s weights to `file`.
pub fn save(net: &Network, file: &Path) -> Result<(), WeightsError> {
    let bytes = to_bytes(net)?;
    std::fs::write(file, bytes).map_err(|source| WeightsError::Io {
        file: file.to_owned(),
        source,
    })
}

/// Loads weights from safetensors `bytes` (read from `file`) into `net`,
/// which must have the same architecture.
pub fn load_bytes(net: &mut Network, bytes: &[u8], file: &Path) -> Result<(), WeightsError> {
    let mismatch = |message: String| WeightsError::Mismatch {
        file: file.to_owned(),
        message,
    };
    let (_, metadata) = SafeTensors::read_metadata(bytes).map_err(|e| format_error(file, e))?;
    let entry = |key: &str| metadata.metadata().as_ref().and_then(|m| m.get(key));
    let expected = net.architecture().canonical_hash();
    match entry(HASH_KEY) {
        Some(hash) if *hash == expected => {}
        Some(hash) => {
            return Err(mismatch(format!(
                "weights are for architecture {hash}, not this one ({expected})"
            )))
        }
        None => {
            return Err(mismatch(format!(
                "no `{HASH_KEY}` in the metadata: not a nas weights file"
            )))
        }
    }
    let channels = net.architecture().input.channels;
    let normalization = entry(NORMALIZATION_KEY)
        .map(|json| {
            serde_json::from_str::<ChannelStats>(json)
                .ok()
                .filter(|s| s.mean.len() == channels && s.std.len() == channels)
                .ok_or_else(|| {
                    mismatch(format!(
                        "`{NORMALIZATION_KEY}` is not a normalisation of {channels} channel(s)"
                    ))
                })
        })
        .transpose()?;
    let classes = net.architecture().classes;
    let class_names = entry(CLASS_NAMES_KEY)
        .map(|json| {
            serde_json::from_str::<Vec<String>>(json)
                .ok()
                .filter(|names| names.len() == classes)
                .ok_or_else(|| {
                    mismatch(format!(
                        "`{CLASS_NAMES_KEY}` is not a list of {classes} class names"
                    ))
                })
        })
        .transpose()?;
    // `tensors(net)` lists the parameters, then each batch norm's mean and
    // variance, so the values have exactly one entry per slot below, in
    // order.
    let mut values = read_tensors(net, bytes, file)?.into_iter();
    let mut next = |what: &str| {
        values
            .next()
            .ok_or_else(|| mismatch(format!("fewer tensors than the network has ({what})")))
    };
    for p in &mut net.params {
        p.data = next(&p.name)?;
    }
    for (name, stats) in &mut net.stats {
        stats.mean = next(name)?;
        stats.var = next(name)?;
    }
    net.set_input_normalization(normalization);
    net.set_class_names(class_names);
    Ok(())
}

/// `file` is not readable safetensors.
fn format_error(file: &Path, e: safetensors::SafeTensorError) -> WeightsError {
    WeightsError::Format {
        file: file.to_owned(),
        message: e.to_string(),
    }
}

/// The values of every tensor `net` has (in [`tensors`]' order), read from
/// the safetensors `bytes` of `file`, each checked for its dtype and shape.
fn read_tensors(net: &Network, bytes: &[u8], file: &Path) -> Result<Vec<Vec<f32>>, WeightsError> {
    let mismatch = |message: String| WeightsError::Mismatch {
        file: file.to_owned(),
        message,
    };
    let file_tensors = SafeTensors::deserialize(bytes).map_err(|e| format_error(file, e))?;
    let mut loaded = Vec::new();
    for (name, shape, _) in tensors(net) {
        let view = file_tensors
            .tensor(&name)
            .map_err(|_| mismatch(format!("tensor `{name}` is missing")))?;
        if view.dtype() != Dtype::F32 || view.shape() != shape.as_slice() {
            return Err(mismatch(format!(
                "tensor `{name}` is {:?} {:?}, expected F32 {shape:?}",
                view.dtype(),
                view.shape()
            )));
        }
        loaded.push(
            view.data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
        );
    }
    Ok(loaded)
}

/// Loads weights from `file` into `net`.
pub fn load(net: &mut Network, file: &Path) -> Result<(), WeightsError> {
    let bytes = std::fs::read(file).map_err(|source| WeightsError::Io {
        file: file.to_owned(),
        source,
    })?;
    load_bytes(net, &bytes, file)
}
