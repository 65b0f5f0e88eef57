//! The training engine (and, as it lands, the worker loop).
//!
//! - [`data`]: datasets in memory: IDX (MNIST, Fashion-MNIST), CIFAR-10
//!   batches and image folders, downloaded from canonical sources with
//!   checksums on first use; a seeded validation split, per-channel
//!   normalisation and augmented `f32` batches.
//! - [`ops`]: the tensor ops dfdx 0.13 lacks on stable (conv2d, pooling,
//!   batch norm, LRN), on its public API, gradient-checked in `f64`.
//! - [`net`]: a trainable network from any `search` architecture.
//! - [`train`]: optimisers, schedules and the training loop with budgets,
//!   progress, cancellation and divergence detection.
//! - [`latency`]: batch-1 inference latency and the device fingerprint.
//! - [`pipeline`]: one trial start to end (build, latency, train, result),
//!   used by the worker loop and `nas train`.
//! - [`agent`]: the worker loop: claim, run, heartbeat, report; [`pool`]
//!   runs several agents in one process, sharing its cores through
//!   [`cores`].
//! - [`weights`]: safetensors save and load.
//! - [`onnx`]: ONNX export of a trained network.
#![deny(missing_docs)]

pub mod agent;
pub mod cores;
pub mod data;
pub mod failpoint;
pub mod health;
pub mod latency;
pub mod memory;
pub mod net;
pub mod onnx;
pub mod ops;
pub mod pipeline;
pub mod pool;
pub mod train;
pub mod uploads;
pub mod weights;
