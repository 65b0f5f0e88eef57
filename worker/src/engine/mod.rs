//! The training engine: from an architecture to a trained network and its
//! files, with no knowledge of the queue.
//!
//! - [`ops`]: the tensor ops dfdx 0.13 lacks on stable (conv2d, pooling,
//!   batch norm, LRN), on its public API, gradient-checked in `f64`.
//! - [`net`]: a trainable network from any `search` architecture, and its
//!   inference path.
//! - [`train`]: optimisers, schedules and the training loop with budgets,
//!   progress, cancellation, divergence detection and checkpoints.
//! - [`weights`]: safetensors save and load.
//! - [`onnx`]: ONNX export of a trained network.

pub mod net;
pub mod onnx;
pub mod ops;
pub mod train;
pub mod weights;
