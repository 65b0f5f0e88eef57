//! The agent: what runs trials on a worker, around the
//! [engine](crate::engine).
//!
//! - [`worker_loop`]: the loop of one agent: claim a trial, run it on a
//!   blocking thread while heartbeating with progress, store metrics,
//!   weights and the result; on shutdown, hand a running trial back.
//! - [`pipeline`]: one trial start to end (validate, build, measure, reject
//!   or train, summarise), used by the loop and by `nas train`.
//! - [`pool`]: several agents in one process, sharing its cores
//!   ([`crate::host::cores`]) and its latency predictor.
//! - [`memory`]: the worker's memory share; a network estimated to need
//!   more is refused before it is built.
//! - [`uploads`]: uploaded datasets fetched from the store by content id,
//!   once per machine.
//! - [`health`]: each agent's state, for `nas worker --health-addr`.
//! - [`failpoint`]: `NAS_FAILPOINT`, for the fault-injection tests.

pub mod failpoint;
pub mod health;
pub mod memory;
pub mod pipeline;
pub mod pool;
pub mod uploads;
pub mod worker_loop;

pub use worker_loop::*;
