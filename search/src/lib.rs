//! The NAS brain: pure Rust, no I/O, no async, no training.
//!
//! - [`arch`]: the architecture (genome) of a candidate CNN and its versioned
//!   JSON form, with a canonical hash;
//! - [`validate`](mod@validate): shape inference, parameter and MAC counts, peak activation
//!   memory, and errors that name the offending layer's path;
//! - [`zoo`]: the reference architectures (LeNet-5 ... MobileNet v2);
//! - [`space`] and [`genotype`]: search spaces, sampling and mutation;
//! - [`strategy`]: random search and regularized evolution;
//! - [`objective`]: MnasNet's latency-aware reward or a Pareto objective, the Pareto front, ranking;
//! - [`pareto`]: non-dominated sorting, crowding, hypervolume, spreading picks along a front;
//! - [`result`]: what a trial reports (result, progress, attempt errors);
//! - [`summary`]: layer labels and one-line block summaries for people;
//! - [`limits`]: what a network costs to train, and the limits a search stays within;
//! - [`dataset`]: the catalogue of datasets a search may name;
//! - [`recipe`]: the training recipe (optimiser, schedule, augmentation);
//! - [`fidelity`]: multi-fidelity scheduling (ASHA rungs and promotions);
//! - [`spec`]: what a user submits (dataset, space, strategy, objective,
//!   budget, training settings), checked field by field.
//!
//! Randomness is always injected (`&mut impl Rng`), so a seeded run replays.
#![deny(missing_docs)]

pub mod arch;
pub mod build;
pub mod dataset;
pub mod fidelity;
pub mod genome;
pub mod genotype;
pub mod limits;
pub mod objective;
pub mod pareto;
pub mod recipe;
pub mod result;
pub mod space;
pub mod spec;
pub mod spec_error;
pub mod strategy;
pub mod summary;
pub mod validate;
pub mod zoo;

pub use arch::{Architecture, InputShape, Layer, ParseError};
pub use dataset::{DatasetFacts, DatasetInfo, DatasetSummary, UnknownDataset};
pub use fidelity::Scheduler;
pub use genotype::{decode, mutate, sample, Genotype, GenotypeError, Mutation};
pub use objective::{
    pareto_front, rank, Metric, Objective, ObjectiveKind, Point, RankKey, RankRow, Runtime,
};
pub use result::{AttemptError, LatencyMs, TrialProgress, TrialResult};
pub use space::{BlockOp, SearchSpace, SpaceError};
pub use spec::{Budget, FinalTraining, SearchSpec, SpaceRef, SpecError, Training};
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
