//! The worker: the training engine and the agent that runs trials with it.
//!
//! The folders show its two jobs:
//! - [`engine`]: from an architecture to a trained network: the ops
//!   ([`ops`]), the network and its inference path ([`net`]), training
//!   ([`train`]), weights ([`weights`]) and ONNX export ([`onnx`]).
//! - [`agent`]: what runs trials on a worker: the loop that claims, runs,
//!   heartbeats and reports ([`agent::worker_loop`]), one trial start to
//!   end ([`pipeline`]), several agents in one process ([`pool`]), the
//!   memory share ([`memory`]), uploaded datasets ([`uploads`]), health and
//!   fault injection.
//!
//! And what both use:
//! - [`data`]: datasets in memory: IDX (MNIST, Fashion-MNIST), CIFAR-10
//!   batches and image folders, downloaded from canonical sources with
//!   checksums on first use; a seeded validation split, per-channel
//!   normalisation and augmented `f32` batches.
//! - [`latency`]: batch-1 inference latency and the device fingerprint.
//! - [`host`]: what training and measurement share on one host: thread
//!   pools, the latency gate, the split of a process's cores.
//!
//! The engine's and the agent's modules are also re-exported here
//! (`worker::net`, `worker::pipeline`, ...).
#![deny(missing_docs)]

pub mod agent;
pub mod data;
pub mod engine;
pub mod host;
pub mod latency;

pub use agent::{failpoint, health, memory, pipeline, pool, uploads};
pub use engine::{net, onnx, ops, train, weights};
