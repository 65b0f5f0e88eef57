//! What training and latency measurement share on one host.
//!
//! - [`thread_pool`]: the rayon pools that training, evaluation and latency
//!   measurement each run in.
//! - [`gate`]: no training or validation batch of any agent of the host
//!   runs while one of them measures latency.
//! - [`cores`]: how the agents of one worker process split its cores.
//!
//! `train` and `latency` both build on this module; neither imports the
//! other.

pub mod cores;
pub mod gate;

use thiserror::Error;

pub use cores::{CoreLease, CoreShare};
pub use gate::HostGate;

/// The OS would not start the threads of a pool.
#[derive(Debug, Error)]
#[error("cannot start {threads} threads: {message}")]
pub struct ThreadPoolError {
    /// Requested threads.
    pub threads: usize,
    /// The OS's reason.
    pub message: String,
}

/// Builds a rayon pool with `threads` threads.
pub fn thread_pool(threads: usize) -> Result<rayon::ThreadPool, ThreadPoolError> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| ThreadPoolError {
            threads,
            message: e.to_string(),
        })
}
