//! The NAS brain: pure Rust, no I/O, no async, no training.
//!
//! - [`arch`]: the architecture (genome) of a candidate CNN and its versioned
//!   JSON form, with a canonical hash;
//! - [`validate`](mod@validate): shape inference, parameter and MAC counts, peak activation
//!   memory, and errors that name the offending layer's path;
//! - [`zoo`]: the reference architectures (LeNet-5 ... MobileNet v2);
//! - [`space`] and [`genotype`]: search spaces, sampling and mutation;
//! - [`strategy`]: random search and regularized evolution;
//! - [`objective`]: MnasNet's latency-aware reward, the Pareto front, ranking.
//!
//! Randomness is always injected (`&mut impl Rng`), so a seeded run replays.
#![deny(missing_docs)]

pub mod arch;
pub mod build;
pub mod genotype;
pub mod objective;
pub mod space;
pub mod strategy;
pub mod validate;
pub mod zoo;

pub use arch::{Architecture, InputShape, Layer, ParseError};
pub use genotype::{decode, mutate, sample, Genotype, GenotypeError, Mutation};
pub use objective::{pareto_front, rank, Objective, Point, RankKey, RankRow};
pub use space::{BlockOp, SearchSpace, SpaceError};
pub use strategy::{propose, HistoryEntry, Outcome, Proposal, Strategy, StrategyError};
pub use validate::{validate, Report, Shape, ValidationError};

/// A seeded random-number generator with a stable stream across platforms
/// and releases: what searches and trials use, so a seed replays a run.
pub type SeededRng = rand_chacha::ChaCha8Rng;

/// A [`SeededRng`] from a 64-bit seed.
pub fn seeded_rng(seed: u64) -> SeededRng {
    use rand::SeedableRng;
    SeededRng::seed_from_u64(seed)
}
