//! Why a latency measurement could not run.

use thiserror::Error;

use crate::host::ThreadPoolError;

/// Why a latency measurement could not run.
#[derive(Debug, Error)]
pub enum LatencyError {
    /// A setting of the protocol is out of range.
    #[error("{field}: {message}")]
    Config {
        /// The setting.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
    /// A network to time (the device's reference network) could not be
    /// built; the reason.
    #[error("{0}")]
    Network(String),
    /// The inference runtime (onnxruntime) failed or refused the network;
    /// its message.
    #[error("{0}")]
    Runtime(String),
    /// The measuring thread pool could not start.
    #[error("latency measurement: {0}")]
    Threads(#[from] ThreadPoolError),
}
