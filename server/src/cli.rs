//! The command-line grammar (clap). Every flag is documented by `--help`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use search::InputShape;

/// Neural-architecture search for CNNs: submit searches, browse leaderboards,
/// run workers.
#[derive(Debug, Parser)]
#[command(name = "nas", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// The reference architectures (LeNet-5 ... MobileNet v2).
    #[command(subcommand)]
    Zoo(ZooCommand),
    /// Check an architecture JSON file.
    #[command(subcommand)]
    Arch(ArchCommand),
    /// Search spaces: show presets, sample architectures.
    #[command(subcommand)]
    Space(SpaceCommand),
}

/// `nas zoo ...`
#[derive(Debug, Subcommand)]
pub enum ZooCommand {
    /// List the zoo with parameters and MACs at each entry's published input.
    List(ZooListArgs),
    /// Show one zoo architecture for an input, classes and width.
    Show(ZooShowArgs),
}

/// Flags of `nas zoo list`.
#[derive(Debug, Args)]
pub struct ZooListArgs {
    /// Print a JSON array instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Flags of `nas zoo show`.
#[derive(Debug, Args)]
pub struct ZooShowArgs {
    /// The zoo entry, e.g. `resnet18` (see `nas zoo list`).
    pub name: String,
    /// Input as HxWxC (default: the entry's published input).
    #[arg(long)]
    pub input: Option<InputShape>,
    /// Number of classes (default: the entry's published classes).
    #[arg(long)]
    pub classes: Option<usize>,
    /// Width multiplier applied to every hidden layer.
    #[arg(long, default_value_t = 1.0)]
    pub width: f64,
    /// Print the architecture JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `nas arch ...`
#[derive(Debug, Subcommand)]
pub enum ArchCommand {
    /// Validate an architecture and print its layers, shapes, params and MACs.
    Check(ArchCheckArgs),
}

/// Flags of `nas arch check`.
#[derive(Debug, Args)]
pub struct ArchCheckArgs {
    /// The architecture JSON file (`-` for standard input).
    pub file: PathBuf,
    /// Print the report as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `nas space ...`
#[derive(Debug, Subcommand)]
pub enum SpaceCommand {
    /// Sample a random architecture from a search space.
    Sample(SpaceSampleArgs),
    /// Print a preset search space as JSON (a starting point for your own).
    Show(SpaceShowArgs),
}

/// Which search space: a preset or a JSON file.
#[derive(Debug, Args)]
#[group(required = false, multiple = false)]
pub struct SpaceSource {
    /// A preset: micro, classic, mobile or full.
    #[arg(long, default_value = "micro")]
    pub preset: String,
    /// A search-space JSON file (instead of a preset).
    #[arg(long)]
    pub space: Option<PathBuf>,
}

/// Flags of `nas space sample`.
#[derive(Debug, Args)]
pub struct SpaceSampleArgs {
    /// The search space.
    #[command(flatten)]
    pub source: SpaceSource,
    /// Seed of the random draw (same seed, same architecture).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Input as HxWxC.
    #[arg(long, default_value = "28x28x1")]
    pub input: InputShape,
    /// Number of classes.
    #[arg(long, default_value_t = 10)]
    pub classes: usize,
    /// Print the architecture JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Flags of `nas space show`.
#[derive(Debug, Args)]
pub struct SpaceShowArgs {
    /// The preset: micro, classic, mobile or full.
    pub preset: String,
}
