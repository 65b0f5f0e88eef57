//! The training engine and (as it lands) the worker loop.
//!
//! - [`data`]: datasets in memory, read from IDX files (MNIST, Fashion-MNIST),
//!   with format checks that name the file and byte offset of any problem, a
//!   seeded validation split, per-channel normalisation and augmented
//!   `f32` batches.
#![deny(missing_docs)]

pub mod data;
pub mod latency;
pub mod net;
pub mod ops;
pub mod train;
pub mod weights;
