//! The command-line grammar (clap). Every flag is documented by `--help`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use search::InputShape;

/// Neural-architecture search for CNNs: submit searches, browse leaderboards,
/// run workers.
#[derive(Debug, Parser)]
#[command(name = "nas", version, about)]
pub struct Cli {
    /// What to do (default: `up`).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Everything on this machine: an SQLite file, the API and dashboard on
    /// 127.0.0.1, and in-process workers. What `nas` alone runs.
    Up(UpArgs),
    /// Submit a search spec to a server; prints its id (`--wait` follows it to the end).
    Submit(SubmitArgs),
    /// List a server's searches.
    Searches(SearchesArgs),
    /// Show one search: status, progress, counts, best trials.
    Show(ShowArgs),
    /// A search's leaderboard.
    Leaderboard(LeaderboardArgs),
    /// Cancel a running search.
    Cancel(CancelArgs),
    /// Train a finished search's best architectures from scratch and test them.
    Final(FinalArgs),
    /// Download a trial's architecture JSON and trained weights.
    Export(ExportArgs),
    /// Your own datasets on a server: upload (a folder, archive, .npz or
    /// .csv), list, show, remove.
    #[command(subcommand)]
    Dataset(DatasetCommand),
    /// The reference architectures (LeNet-5 ... MobileNet v2).
    #[command(subcommand)]
    Zoo(ZooCommand),
    /// Check an architecture JSON file.
    #[command(subcommand)]
    Arch(ArchCommand),
    /// Train one architecture on a dataset and report accuracy, latency and speed.
    Train(TrainArgs),
    /// Measure the batch-1 inference latency of an architecture.
    Latency(LatencyArgs),
    /// Measure this machine's speed factor against the reference device (the
    /// reference networks' latency, as a worker does when it starts).
    Calibrate(CalibrateArgs),
    /// Benchmarks: training throughput and latency, or queue overhead.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Serve the HTTP API (`/api/v1`) on a database.
    Serve(ServeArgs),
    /// Run workers: claim trials from the database, train them, report results.
    Worker(WorkerArgs),
    /// Work with the database directly: submit a search spec, see progress.
    #[command(subcommand)]
    Queue(QueueCommand),
    /// Search spaces: show presets, sample architectures.
    #[command(subcommand)]
    Space(SpaceCommand),
}

/// `nas dataset ...`
#[derive(Debug, Subcommand)]
pub enum DatasetCommand {
    /// Upload a dataset: an image folder (`class/*.png`, or `train/` and
    /// `test/` of those; packed on the fly), a .zip/.tar/.tar.gz of one, a
    /// Keras-style .npz, a Kaggle-style .csv, or the four IDX files in an
    /// archive. Prints what was stored.
    Add(DatasetAddArgs),
    /// List the built-in datasets and the uploaded ones.
    List(DatasetListArgs),
    /// Show one dataset: shape, classes, images per split and class.
    Show(DatasetShowArgs),
    /// Remove an uploaded dataset's name (refused while a running search uses it).
    Rm(DatasetShowArgs),
}

/// Flags of `nas dataset add`.
#[derive(Debug, Args)]
pub struct DatasetAddArgs {
    /// A folder, archive (.zip, .tar, .tar.gz), .npz or .csv.
    pub path: PathBuf,
    /// The name searches will use (default: the file or folder name).
    #[arg(long)]
    pub name: Option<String>,
    /// Bring every image to HxW, e.g. `32x32` (otherwise all images must
    /// share one size).
    #[arg(long)]
    pub resize: Option<String>,
    /// 1 (grayscale) or 3 (RGB); default: the images' own.
    #[arg(long)]
    pub channels: Option<usize>,
    /// The CSV column holding the labels.
    #[arg(long, default_value = "label")]
    pub label_column: String,
    /// For data without a test split: the fraction of each class held out
    /// as the test set.
    #[arg(long, default_value_t = 0.15)]
    pub test_fraction: f64,
    /// Print the server's JSON answer instead of a summary.
    #[arg(long)]
    pub json: bool,
    /// The server.
    #[command(flatten)]
    pub server: ServerArgs,
}

/// Flags of `nas dataset list`.
#[derive(Debug, Args)]
pub struct DatasetListArgs {
    /// Print the server's JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// The server.
    #[command(flatten)]
    pub server: ServerArgs,
}

/// Flags of `nas dataset show` and `nas dataset rm`.
#[derive(Debug, Args)]
pub struct DatasetShowArgs {
    /// The dataset's name (or, for `show`, its id).
    pub name: String,
    /// Print the server's JSON instead of a summary (`show`).
    #[arg(long)]
    pub json: bool,
    /// The server.
    #[command(flatten)]
    pub server: ServerArgs,
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
    /// Convert an architecture and its trained weights (`nas export`,
    /// `nas train --save`) into an ONNX model, offline.
    Onnx(ArchOnnxArgs),
}

/// Flags of `nas arch onnx`.
#[derive(Debug, Args)]
pub struct ArchOnnxArgs {
    /// The architecture JSON file.
    pub file: PathBuf,
    /// Its trained weights (safetensors); `--untrained` exports freshly
    /// initialised ones instead (for timing: weights do not change latency).
    #[arg(long, required_unless_present = "untrained")]
    pub weights: Option<PathBuf>,
    /// Export with freshly initialised weights (seed 0).
    #[arg(long, conflicts_with = "weights")]
    pub untrained: bool,
    /// The ONNX file to write.
    #[arg(long, default_value = "model.onnx")]
    pub out: PathBuf,
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
    /// Measure the batch-1 latency of networks sampled from a space on this
    /// machine: its distribution, and the share near a latency target.
    Latency(SpaceLatencyArgs),
}

/// Flags of `nas space latency`.
#[derive(Debug, Args)]
pub struct SpaceLatencyArgs {
    /// The search space.
    #[command(flatten)]
    pub source: SpaceSource,
    /// Networks to sample and measure.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u16).range(1..=10_000))]
    pub samples: u16,
    /// Seed of the draws.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Input as HxWxC.
    #[arg(long, default_value = "28x28x1")]
    pub input: InputShape,
    /// Number of classes.
    #[arg(long, default_value_t = 10)]
    pub classes: usize,
    /// Threads of the measurement (workers measure on 1).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// The latency target to compare with, milliseconds.
    #[arg(long, default_value_t = 1.0)]
    pub target_ms: f64,
    /// Fit the latency predictor on the first N networks measured and
    /// report its error on the others (0: no predictor).
    #[arg(long, default_value_t = 0)]
    pub fit: u16,
    /// The timing basis and runtime.
    #[command(flatten)]
    pub basis: BasisArgs,
}

/// Which search space: a preset or a JSON file.
#[derive(Debug, Args)]
#[group(required = false, multiple = false)]
pub struct SpaceSource {
    /// A preset: micro (a smoke test), small, classic, mobile or full.
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
    /// The preset: micro (a smoke test), small, classic, mobile or full.
    pub preset: String,
}

/// Which network, for `nas train`, `nas bench` and `nas latency`: an
/// architecture file, or a zoo entry at a width.
#[derive(Debug, Args)]
pub struct ModelArgs {
    /// The file or the zoo entry.
    #[command(flatten)]
    pub source: ModelSource,
    /// Width multiplier for `--zoo`.
    #[arg(long, default_value_t = 1.0)]
    pub width: f64,
}

/// Where datasets are kept on this machine (`nas train`, `nas bench`,
/// `nas worker`, `nas up`, `nas bench search`).
#[derive(Debug, Args, Clone)]
pub struct DataDirArgs {
    /// Folder holding `<dataset>/` (default: $NAS_DATA_DIR, else the user
    /// cache folder).
    #[arg(long, env = "NAS_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

impl DataDirArgs {
    /// The folder: the flag, else $NAS_DATA_DIR, else the user cache folder.
    pub fn resolve(&self) -> PathBuf {
        self.data_dir
            .clone()
            .unwrap_or_else(worker::data::default_data_dir)
    }
}

/// Which network: an architecture file or a zoo entry.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct ModelSource {
    /// An architecture JSON file (from `nas zoo show --json`, `nas space sample`, the API...).
    #[arg(long, value_name = "FILE")]
    pub arch: Option<std::path::PathBuf>,
    /// A zoo entry, built for the dataset's input and classes.
    #[arg(long, value_name = "NAME")]
    pub zoo: Option<String>,
}

/// Flags of `nas train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// The network to train.
    #[command(flatten)]
    pub model: ModelArgs,
    /// Dataset: mnist, fashion-mnist or cifar10.
    #[arg(long, default_value = "fashion-mnist")]
    pub dataset: String,
    /// Where datasets are kept.
    #[command(flatten)]
    pub datasets: DataDirArgs,
    /// Passes over the training set.
    #[arg(long, default_value_t = 1)]
    pub epochs: usize,
    /// Images per step.
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// sgd, nesterov, adam or adamw.
    #[arg(long, default_value = "adam")]
    pub optimizer: String,
    /// Base learning rate (default: 1e-3 for Adam/AdamW, 0.05 for SGD).
    #[arg(long)]
    pub lr: Option<f64>,
    /// Learning-rate schedule: constant, cosine or one_cycle.
    #[arg(long, default_value = "constant")]
    pub schedule: String,
    /// Epochs of linear warm-up before the cosine decay.
    #[arg(long, default_value_t = 0.0)]
    pub warmup_epochs: f64,
    /// Label smoothing in [0, 1).
    #[arg(long, default_value_t = 0.0)]
    pub label_smoothing: f32,
    /// Train on at most this many training images (a seeded subset).
    #[arg(long)]
    pub max_train_samples: Option<usize>,
    /// Stop training after this many seconds.
    #[arg(long)]
    pub max_seconds: Option<f64>,
    /// Fraction of the training set held out for validation.
    #[arg(long, default_value_t = 0.1)]
    pub val_fraction: f64,
    /// Random-crop padding in pixels (0: off).
    #[arg(long, default_value_t = 0)]
    pub crop_padding: usize,
    /// Random horizontal flips.
    #[arg(long)]
    pub flip: bool,
    /// Training threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Seed for weights, split, shuffling, augmentation and dropout.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Save the trained weights (safetensors).
    #[arg(long, value_name = "FILE")]
    pub save: Option<std::path::PathBuf>,
    /// Threads for the latency measurement.
    #[arg(long, default_value_t = 1)]
    pub latency_threads: usize,
}

/// Flags of `nas latency`.
#[derive(Debug, Args)]
pub struct LatencyArgs {
    /// The network to time.
    #[command(flatten)]
    pub model: ModelArgs,
    /// Input as HxWxC for `--zoo` (default 28x28x1).
    #[arg(long, default_value = "28x28x1")]
    pub input: search::InputShape,
    /// Classes for `--zoo`.
    #[arg(long, default_value_t = 10)]
    pub classes: usize,
    /// Inference threads.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// The measurement protocol: `thorough` (final models), `trial` (what
    /// workers use for search trials) or `quick` (a few runs, no settling).
    #[arg(long, value_enum, default_value_t = LatencyProtocol::Thorough)]
    pub protocol: LatencyProtocol,
    /// Measure this many times (1-100), to see how repeatable the figure is.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=100))]
    pub repeat: u16,
    /// Wait this many seconds between repeats (to spread them in time).
    #[arg(long, default_value_t = 0.0)]
    pub interval_secs: f64,
    /// The timing: on this device's common basis, and how the runtime runs it.
    #[command(flatten)]
    pub basis: BasisArgs,
}

/// How `nas latency`, `nas calibrate` and `nas space latency` time networks.
#[derive(Debug, Args, Clone)]
pub struct BasisArgs {
    /// The engine to time in: `nas` (ours) or `onnxruntime` (the ONNX
    /// export, as deployed; needs `--onnxruntime`).
    #[arg(long, value_enum, default_value_t = RuntimeName::Nas)]
    pub runtime: RuntimeName,
    /// `relative` (workers' basis: timed in alternation with the device
    /// reference network, times its established p50) or `absolute` (the
    /// run times themselves).
    #[arg(long, value_enum, default_value_t = Basis::Relative)]
    pub basis: Basis,
    /// The onnxruntime library.
    #[command(flatten)]
    pub onnxruntime: OnnxRuntimeArgs,
}

/// A latency runtime, as a flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RuntimeName {
    /// Our engine.
    Nas,
    /// ONNX Runtime.
    Onnxruntime,
}

impl From<RuntimeName> for search::Runtime {
    fn from(name: RuntimeName) -> Self {
        match name {
            RuntimeName::Nas => search::Runtime::Nas,
            RuntimeName::Onnxruntime => search::Runtime::Onnxruntime,
        }
    }
}

/// How a figure is based.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Basis {
    /// Relative to the device reference network, times its established p50.
    Relative,
    /// The run times themselves.
    Absolute,
}

/// Flags of `nas calibrate`.
#[derive(Debug, Args)]
pub struct CalibrateArgs {
    /// Inference threads.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// The measurement protocol (workers calibrate with `trial`).
    #[arg(long, value_enum, default_value_t = LatencyProtocol::Trial)]
    pub protocol: LatencyProtocol,
    /// Calibrate this many times (1-100) and report the median of each
    /// network's p50.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=100))]
    pub repeat: u16,
    /// The timing basis and runtime.
    #[command(flatten)]
    pub basis: BasisArgs,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// A named latency protocol (see `worker::latency`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LatencyProtocol {
    /// Longer warm-up, at least 1 s and 200 runs, a ±1% target interval.
    Thorough,
    /// At least 0.2 s and 50 runs, a ±2% target interval.
    Trial,
    /// A few runs, no settling: a number, not a trustworthy one.
    Quick,
}

impl LatencyProtocol {
    /// Its settings.
    pub fn config(self) -> worker::latency::LatencyConfig {
        use worker::latency::LatencyConfig;
        match self {
            Self::Thorough => LatencyConfig::thorough(),
            Self::Trial => LatencyConfig::default(),
            Self::Quick => LatencyConfig::quick(),
        }
    }
}

/// Flags of `nas bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// The network to benchmark.
    #[command(flatten)]
    pub model: ModelArgs,
    /// Dataset whose first images feed the steps, or `synthetic` (seeded
    /// random images of the architecture's input shape; any shape, no files).
    #[arg(long, default_value = "fashion-mnist")]
    pub dataset: String,
    /// Where datasets are kept.
    #[command(flatten)]
    pub datasets: DataDirArgs,
    /// Timed training steps.
    #[arg(long, default_value_t = 50)]
    pub steps: usize,
    /// Untimed steps first.
    #[arg(long, default_value_t = 5)]
    pub warmup: usize,
    /// Images per step.
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// Training threads.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Threads for the batch-1 latency.
    #[arg(long, default_value_t = 1)]
    pub latency_threads: usize,
    /// Skip the batch-1 latency (to profile the training step alone).
    #[arg(long)]
    pub no_latency: bool,
}

/// Where the onnxruntime library is, for latency measured in onnxruntime.
#[derive(Debug, Args, Clone, Default)]
pub struct OnnxRuntimeArgs {
    /// The onnxruntime shared library, e.g. the `libonnxruntime.so.1.*` in
    /// the `onnxruntime` Python package's `capi/` folder (also read from
    /// `ORT_DYLIB_PATH`). Without it, searches measured in onnxruntime wait
    /// for a worker that has it.
    #[arg(long = "onnxruntime", env = "NAS_ONNXRUNTIME", value_name = "LIB")]
    pub library: Option<PathBuf>,
}

/// Flags of `nas worker`.
#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// The database: postgres://... or sqlite://FILE.
    #[arg(long, env = "NAS_DATABASE_URL", default_value = "sqlite://nas.db")]
    pub database_url: String,
    /// Trials trained at once by this process (each with its own worker id).
    #[arg(long, env = "NAS_WORKER_CONCURRENCY", default_value_t = 1)]
    pub concurrency: usize,
    /// Training threads per trial (default: all cores divided by the concurrency).
    #[arg(long, env = "NAS_WORKER_THREADS")]
    pub threads: Option<usize>,
    /// Measure the reference networks when starting (a few seconds) and
    /// register this machine's speed factor; `--calibrate false` skips it.
    #[arg(long, env = "NAS_CALIBRATE", default_value_t = true, action = clap::ArgAction::Set)]
    pub calibrate: bool,
    /// The onnxruntime library.
    #[command(flatten)]
    pub onnxruntime: OnnxRuntimeArgs,
    /// Seconds between re-establishments of the latency reference (it is
    /// established when the worker calibrates).
    #[arg(long, env = "NAS_REFERENCE_EVERY_SECS", default_value_t = 3600.0)]
    pub reference_every_secs: f64,
    /// Final models always train on one agent's share of the cores (by
    /// default a final model claimed while the other agents are idle takes
    /// every core, and they wait for it).
    #[arg(long, env = "NAS_WORKER_SHARED_FINALS")]
    pub shared_finals: bool,
    /// Labels this worker offers (searches may require some).
    #[command(flatten)]
    pub labels: WorkerLabels,
    /// Where datasets are kept.
    #[command(flatten)]
    pub datasets: DataDirArgs,
    /// Seconds between heartbeats while training.
    #[arg(long, env = "NAS_HEARTBEAT_SECS", default_value_t = 5.0)]
    pub heartbeat_secs: f64,
    /// Seconds a claim or heartbeat holds a trial; a silent worker's trial is retried after it.
    #[arg(long, env = "NAS_LEASE_SECS", default_value_t = 60.0)]
    pub lease_secs: f64,
    /// Longest idle wait between claim attempts, seconds.
    #[arg(long, env = "NAS_POLL_SECS", default_value_t = 2.0)]
    pub poll_secs: f64,
    /// Memory this worker may use, MiB (default: the cgroup limit, else the
    /// machine's memory). A trial whose network would need more fails
    /// before it is built, saying how much it needed.
    #[arg(long, env = "NAS_MAX_MEMORY_MIB")]
    pub max_memory_mib: Option<u64>,
    /// Serve `GET /healthz` (200 while no agent is stalled, else 503) and
    /// `GET /readyz` (200 while the database answers) on this address, for
    /// a supervisor's probes, e.g. `0.0.0.0:8081` (default: not served).
    #[arg(long, env = "NAS_WORKER_HEALTH_ADDR", value_name = "ADDR")]
    pub health_addr: Option<std::net::SocketAddr>,
    /// Seconds an agent that should call the database (to heartbeat its
    /// trial, or poll the queue) may stay silent before `/healthz` reports
    /// it stalled (default: the lease, at least 4 heartbeats and 4 polls).
    #[arg(long, env = "NAS_WORKER_STALE_SECS")]
    pub stale_secs: Option<f64>,
}

/// `nas bench ...`
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Training throughput (Adam, fixed steps) and batch-1 latency, as one JSON line.
    Train(BenchArgs),
    /// Queue overhead: claims + completes per second with a trivial evaluator.
    Queue(QueueBenchArgs),
    /// Fill a database with one search of N finished trials (synthetic
    /// results) for API load tests; prints its id.
    Seed(SeedBenchArgs),
    /// Search quality at equal compute: strategies x seeds on a real
    /// dataset, best validation reward and the final model's test accuracy.
    Search(SearchBenchArgs),
}

/// Flags of `nas bench search`.
#[derive(Debug, Args)]
pub struct SearchBenchArgs {
    /// Strategies, comma-separated: random, evolution, evolution+asha,
    /// random+asha (the reward), and pareto-evolution+asha,
    /// pareto-random+asha (a Pareto objective on accuracy and latency, with
    /// NSGA-II parents and multi-objective ASHA).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "random,evolution,evolution+asha"
    )]
    pub strategies: Vec<String>,
    /// Seeds per strategy (0, 1, ...).
    #[arg(long, default_value_t = 3)]
    pub seeds: u32,
    /// Dataset of the catalogue.
    #[arg(long, default_value = "fashion-mnist")]
    pub dataset: String,
    /// Search-space preset.
    #[arg(long, default_value = "small")]
    pub space: String,
    /// Compute per search: epochs trained in all (`budget.max_epochs_total`).
    #[arg(long, default_value_t = 60)]
    pub epochs_total: u64,
    /// Training images per epoch (a seeded subset of the training split).
    #[arg(long, default_value_t = 10_000)]
    pub max_train_samples: u32,
    /// Epochs per trial without ASHA.
    #[arg(long, default_value_t = 3)]
    pub epochs_per_trial: u32,
    /// ASHA's last rung, epochs (first rung 1).
    #[arg(long, default_value_t = 9)]
    pub asha_max_epochs: u32,
    /// ASHA's reduction factor.
    #[arg(long, default_value_t = 3)]
    pub eta: u32,
    /// Evolution's population.
    #[arg(long, default_value_t = 8)]
    pub population: usize,
    /// Evolution's tournament size.
    #[arg(long, default_value_t = 3)]
    pub sample: usize,
    /// Batch-1 latency target, milliseconds.
    #[arg(long, default_value_t = 1.0)]
    pub target_ms: f64,
    /// How the reward treats the target: `hard` (accuracy under the
    /// target, a steep penalty above it: "the most accurate network under
    /// T") or `soft` (MnasNet's smooth trade-off, which also pays for
    /// being faster than the target).
    #[arg(long, value_enum, default_value_t = BenchLatencyMode::Hard)]
    pub latency_mode: BenchLatencyMode,
    /// Epochs of each final model's training.
    #[arg(long, default_value_t = 10)]
    pub final_epochs: u32,
    /// Final models per search (the reward's top-k, or k spread along a
    /// Pareto front): the tested front each run is scored by.
    #[arg(long, default_value_t = 1)]
    pub final_top_k: u32,
    /// The hypervolume's reference accuracy (every run is scored in the
    /// same box; a Pareto search also uses it as its own reference).
    #[arg(long, default_value_t = 0.0)]
    pub reference_accuracy: f64,
    /// The hypervolume's reference latency, milliseconds (default: twice
    /// `--target-ms`).
    #[arg(long)]
    pub reference_ms: Option<f64>,
    /// Hard latency limit for every strategy (`objective.latency.max_ms`):
    /// candidates measured slower are rejected before they train.
    #[arg(long)]
    pub max_ms: Option<f64>,
    /// Random horizontal flips in final training (clothing: yes; digits: no).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub flip: bool,
    /// In-process workers.
    #[arg(long, default_value_t = 1)]
    pub workers: u32,
    /// Training threads per worker.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Where datasets are kept.
    #[command(flatten)]
    pub datasets: DataDirArgs,
    /// Write every run (with its best-so-far curve over compute) as JSON
    /// here, after each run.
    #[arg(long)]
    pub out: Option<std::path::PathBuf>,
    /// Keep the runs already in `--out` and run only the missing ones.
    #[arg(long, requires = "out")]
    pub resume: bool,
}

/// The latency reward of `nas bench search` (the spec's `objective.latency.mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BenchLatencyMode {
    /// `alpha = beta = -0.07`.
    Soft,
    /// `alpha = 0, beta = -1`.
    Hard,
}

impl BenchLatencyMode {
    /// The spec's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Soft => "soft",
            Self::Hard => "hard",
        }
    }
}

/// Flags of `nas bench seed`.
#[derive(Debug, Args)]
pub struct SeedBenchArgs {
    /// The database (use a scratch one).
    #[arg(long, env = "NAS_DATABASE_URL")]
    pub database_url: String,
    /// Finished trials to create.
    #[arg(long, default_value_t = 10_000)]
    pub trials: u32,
}

/// Flags of `nas bench queue`.
#[derive(Debug, Args)]
pub struct QueueBenchArgs {
    /// The database (use a scratch one: the benchmark leaves its searches there).
    #[arg(long, env = "NAS_DATABASE_URL")]
    pub database_url: String,
    /// Concurrent workers, one run per value.
    #[arg(long, value_delimiter = ',', default_value = "1,4,16")]
    pub workers: Vec<usize>,
    /// Trials per run.
    #[arg(long, default_value_t = 2000)]
    pub trials: u32,
}

/// `nas queue ...`
#[derive(Debug, Subcommand)]
pub enum QueueCommand {
    /// Store a search spec (JSON) and queue its first trials; prints the search id.
    Submit(QueueSubmitArgs),
    /// A search's status, trial counts and best trials (all searches without an id).
    Status(QueueStatusArgs),
    /// How many trials workers with these labels could claim now (with
    /// `--demand`, plus those running: what an autoscaler scales on);
    /// `--sql` prints the query instead.
    Depth(QueueDepthArgs),
}

/// The labels workers offer: `--labels` / `NAS_WORKER_LABELS`.
#[derive(Debug, Args, Clone)]
pub struct WorkerLabels {
    /// Labels, comma-separated (searches may require some).
    #[arg(
        long,
        env = "NAS_WORKER_LABELS",
        value_delimiter = ',',
        default_value = "cpu"
    )]
    pub labels: Vec<String>,
}

/// Flags of `nas queue depth`.
#[derive(Debug, Args)]
pub struct QueueDepthArgs {
    /// The labels the workers offer (as `nas worker --labels`).
    #[command(flatten)]
    pub labels: WorkerLabels,
    /// Count running trials too: the workers needed (what the KEDA
    /// ScaledObject scales on).
    #[arg(long)]
    pub demand: bool,
    /// Print the SQL query (for KEDA's `postgresql` trigger) instead of running it.
    #[arg(long)]
    pub sql: bool,
    /// The database: postgres://... or sqlite://FILE.
    #[arg(long, env = "NAS_DATABASE_URL", default_value = "sqlite://nas.db")]
    pub database_url: String,
}

/// Flags of `nas queue submit`.
#[derive(Debug, Args)]
pub struct QueueSubmitArgs {
    /// The search spec file (`-` for standard input).
    pub spec: std::path::PathBuf,
    /// Limits on the networks searches may train.
    #[command(flatten)]
    pub limits: LimitArgs,
    /// The database: postgres://... or sqlite://FILE.
    #[arg(long, env = "NAS_DATABASE_URL", default_value = "sqlite://nas.db")]
    pub database_url: String,
}

/// Flags of `nas queue status`.
#[derive(Debug, Args)]
pub struct QueueStatusArgs {
    /// The search id (default: list every search).
    pub id: Option<i64>,
    /// The database: postgres://... or sqlite://FILE.
    #[arg(long, env = "NAS_DATABASE_URL", default_value = "sqlite://nas.db")]
    pub database_url: String,
    /// Best trials shown.
    #[arg(long, default_value_t = 10)]
    pub top: usize,
}

/// How big a network a search may train: submissions whose largest network
/// is over a limit are refused (422 naming the field).
#[derive(Debug, Args, Clone, Copy)]
pub struct LimitArgs {
    /// Most trainable parameters of any network a search may train.
    #[arg(long, env = "NAS_MAX_PARAMS", default_value_t = search::limits::DEFAULT_MAX_PARAMS)]
    pub max_params: u64,
    /// Most multiply-accumulates per image.
    #[arg(long, env = "NAS_MAX_MACS", default_value_t = search::limits::DEFAULT_MAX_MACS)]
    pub max_macs: u64,
    /// Most estimated training memory, MiB (parameters, gradients, Adam state and a batch of activations).
    #[arg(long, env = "NAS_MAX_TRAINING_MIB", default_value_t = search::limits::DEFAULT_MAX_TRAINING_BYTES >> 20)]
    pub max_training_mib: u64,
}

impl LimitArgs {
    /// The limits these flags set.
    pub fn limits(&self) -> search::limits::ResourceLimits {
        search::limits::ResourceLimits {
            max_params: self.max_params,
            max_macs: self.max_macs,
            max_training_bytes: self.max_training_mib.saturating_mul(1 << 20),
        }
    }
}

/// Who may reach the HTTP server.
#[derive(Debug, Args, Clone)]
pub struct HttpArgs {
    /// A `Host` name to answer besides the loopback ones when bound to
    /// loopback (repeatable; e.g. a reverse proxy's name).
    #[arg(
        long = "allowed-host",
        env = "NAS_ALLOWED_HOSTS",
        value_delimiter = ','
    )]
    pub allowed_hosts: Vec<String>,
    /// Connections served at once; more are answered 503 and closed.
    #[arg(long, env = "NAS_MAX_CONNECTIONS", default_value_t = crate::api::listener::DEFAULT_MAX_CONNECTIONS)]
    pub max_connections: usize,
    /// Event streams (`/events`) open at once; more get 503.
    #[arg(long, env = "NAS_MAX_STREAMS", default_value_t = server_default_streams())]
    pub max_streams: usize,
    /// The largest dataset upload accepted (`POST /datasets`), MiB.
    #[arg(long, env = "NAS_MAX_DATASET_MIB", default_value_t = crate::api::DEFAULT_MAX_DATASET_MIB)]
    pub max_dataset_mib: u64,
}

const fn server_default_streams() -> usize {
    crate::api::DEFAULT_MAX_STREAMS
}

/// Flags of `nas serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Who may reach the server.
    #[command(flatten)]
    pub http: HttpArgs,
    /// Limits on the networks searches may train.
    #[command(flatten)]
    pub limits: LimitArgs,
    /// The database: postgres://... or sqlite://FILE.
    #[arg(long, env = "NAS_DATABASE_URL", default_value = "sqlite://nas.db")]
    pub database_url: String,
    /// Address to listen on.
    #[arg(long, env = "NAS_BIND", default_value = "127.0.0.1:8080")]
    pub bind: std::net::SocketAddr,
    /// Allow a non-loopback address without a write token.
    #[arg(long)]
    pub insecure: bool,
    /// Token every write (POST) must carry as `Authorization: Bearer ...`.
    #[arg(long, env = "NAS_API_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Token every read must carry (the write token works too); needs --token.
    #[arg(long, env = "NAS_READ_TOKEN", hide_env_values = true)]
    pub read_token: Option<String>,
}

/// Flags of `nas up`.
#[derive(Debug, Args)]
pub struct UpArgs {
    /// Who may reach the server.
    #[command(flatten)]
    pub http: HttpArgs,
    /// Limits on the networks searches may train.
    #[command(flatten)]
    pub limits: LimitArgs,
    /// The SQLite database file (created if missing).
    #[arg(long, env = "NAS_DB", default_value = "nas.db")]
    pub db: PathBuf,
    /// Port on 127.0.0.1 for the API and dashboard.
    #[arg(long, env = "NAS_PORT", default_value_t = 8080)]
    pub port: u16,
    /// In-process workers (trials trained at once); they share the cores.
    #[arg(long, env = "NAS_WORKERS", default_value_t = 1)]
    pub workers: usize,
    /// Where datasets are kept.
    #[command(flatten)]
    pub datasets: DataDirArgs,
    /// Measure the reference networks when starting (a few seconds) and
    /// register this machine's speed factor; `--calibrate false` skips it.
    #[arg(long, env = "NAS_CALIBRATE", default_value_t = true, action = clap::ArgAction::Set)]
    pub calibrate: bool,
    /// The onnxruntime library.
    #[command(flatten)]
    pub onnxruntime: OnnxRuntimeArgs,
}

/// How the client reaches a server.
#[derive(Debug, Args, Clone)]
pub struct ServerArgs {
    /// The server's base URL.
    #[arg(long, env = "NAS_SERVER", default_value = "http://127.0.0.1:8080")]
    pub server: String,
    /// Bearer token (the server's NAS_API_TOKEN, or NAS_READ_TOKEN for reads).
    #[arg(long, env = "NAS_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

/// Flags of `nas submit`.
#[derive(Debug, Args)]
pub struct SubmitArgs {
    /// The search spec (JSON file, `-` for standard input).
    pub spec: PathBuf,
    /// Follow the search with a progress bar until it ends, then print the top 10.
    #[arg(long)]
    pub wait: bool,
    /// The server.
    #[command(flatten)]
    pub server: ServerArgs,
}

/// Flags of `nas searches`.
#[derive(Debug, Args)]
pub struct SearchesArgs {
    /// Only searches in this status: running, finished or cancelled.
    #[arg(long)]
    pub status: Option<String>,
    /// Most searches shown.
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// The server.
    #[command(flatten)]
    pub server: ServerArgs,
}

/// Flags of `nas show`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The search id.
    pub id: i64,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// The server.
    #[command(flatten)]
    pub server: ServerArgs,
}

/// Output formats of `nas leaderboard`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// An aligned table.
    Table,
    /// The API's JSON.
    Json,
    /// CSV with a header row.
    Csv,
}

/// Flags of `nas leaderboard`.
#[derive(Debug, Args)]
pub struct LeaderboardArgs {
    /// The search id.
    pub id: i64,
    /// Entries shown.
    #[arg(long, default_value_t = 10)]
    pub top: usize,
    /// Sort: reward, accuracy, latency, params, macs, or rank
    /// (non-dominated rank: the Pareto front first).
    #[arg(long, default_value = "reward")]
    pub sort: String,
    /// table, json or csv.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
    /// Show the final models (trained from scratch, tested once) instead.
    #[arg(long = "final")]
    pub final_models: bool,
    /// The server.
    #[command(flatten)]
    pub server: ServerArgs,
}

/// Flags of `nas final`.
#[derive(Debug, Args)]
pub struct FinalArgs {
    /// The search id (a finished search).
    pub id: i64,
    /// How many of its best distinct architectures.
    #[arg(long, default_value_t = 3)]
    pub top_k: u32,
    /// Epochs each.
    #[arg(long, default_value_t = 30)]
    pub epochs: u32,
    /// Choose only final models whose estimated training fits this many
    /// seconds in all (estimated from each one's search throughput).
    #[arg(long)]
    pub max_seconds: Option<f64>,
    /// The server.
    #[command(flatten)]
    pub server: ServerArgs,
}

/// Flags of `nas cancel`.
#[derive(Debug, Args)]
pub struct CancelArgs {
    /// The search id.
    pub id: i64,
    /// The server.
    #[command(flatten)]
    pub server: ServerArgs,
}

/// What `nas export` downloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// The architecture JSON and the weights, what `nas train --arch` loads.
    Safetensors,
    /// One ONNX model (opset 17) for any ONNX runtime.
    Onnx,
}

/// Flags of `nas export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The trial id (see `nas leaderboard`).
    pub trial: i64,
    /// What to download.
    #[arg(long, value_enum, default_value = "safetensors")]
    pub format: ExportFormat,
    /// Folder to write into (created if missing): `trial-ID.json` and
    /// `trial-ID.safetensors`, or `trial-ID.onnx`. With `--format onnx`, a
    /// path ending in `.onnx` names the file itself.
    #[arg(long, default_value = ".")]
    pub out: PathBuf,
    /// The server.
    #[command(flatten)]
    pub server: ServerArgs,
}
