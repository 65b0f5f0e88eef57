//! The `nas` command: the command-line interface (and, as later parts land,
//! the HTTP API and dashboard). `main.rs` only parses and calls [`run`].
#![deny(missing_docs)]

pub mod api;
pub mod cli;
pub mod commands;
pub mod table;
pub mod web;

use clap::Parser;
use cli::{
    ArchCommand, BenchCommand, Cli, Command, DatasetCommand, QueueCommand, SpaceCommand, ZooCommand,
};

/// Runs one parsed command line, printing its output to stdout.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    // `nas` alone is `nas up` with its defaults.
    let command = match cli.command {
        Some(command) => command,
        None => match Cli::parse_from(["nas", "up"]).command {
            Some(command) => command,
            None => anyhow::bail!("no command"),
        },
    };
    let output = match command {
        Command::Up(args) => commands::up::run(&args)?,
        Command::Submit(args) => commands::client::submit(&args)?,
        Command::Searches(args) => commands::client::searches(&args)?,
        Command::Show(args) => commands::client::show(&args)?,
        Command::Leaderboard(args) => commands::client::leaderboard(&args)?,
        Command::Cancel(args) => commands::client::cancel(&args)?,
        Command::Final(args) => commands::client::request_final(&args)?,
        Command::Export(args) => commands::client::export(&args)?,
        Command::Dataset(DatasetCommand::Add(args)) => commands::dataset::add(&args)?,
        Command::Dataset(DatasetCommand::List(args)) => commands::dataset::list(&args)?,
        Command::Dataset(DatasetCommand::Show(args)) => commands::dataset::show(&args)?,
        Command::Dataset(DatasetCommand::Rm(args)) => commands::dataset::remove(&args)?,
        Command::Zoo(ZooCommand::List(args)) => commands::zoo::list(&args)?,
        Command::Zoo(ZooCommand::Show(args)) => commands::zoo::show(&args)?,
        Command::Arch(ArchCommand::Check(args)) => commands::arch::check(&args)?,
        Command::Arch(ArchCommand::Onnx(args)) => commands::arch::onnx(&args)?,
        Command::Space(SpaceCommand::Sample(args)) => commands::space::sample(&args)?,
        Command::Space(SpaceCommand::Show(args)) => commands::space::show(&args)?,
        Command::Space(SpaceCommand::Latency(args)) => commands::space::latency(&args)?,
        Command::Train(args) => commands::train::train(&args)?,
        Command::Latency(args) => commands::train::latency(&args)?,
        Command::Calibrate(args) => commands::calibrate::run(&args)?,
        Command::Bench(BenchCommand::Train(args)) => commands::train::bench(&args)?,
        Command::Bench(BenchCommand::Queue(args)) => commands::bench_queue::run(&args)?,
        Command::Bench(BenchCommand::Seed(args)) => commands::bench_api::seed(&args)?,
        Command::Bench(BenchCommand::Search(args)) => commands::bench_search::run(&args)?,
        Command::Serve(args) => commands::serve::run(&args)?,
        Command::Worker(args) => commands::worker::run(&args)?,
        Command::Queue(QueueCommand::Submit(args)) => commands::queue::submit(&args)?,
        Command::Queue(QueueCommand::Status(args)) => commands::queue::status(&args)?,
        Command::Queue(QueueCommand::Depth(args)) => commands::queue::depth(&args)?,
    };
    print!("{output}");
    Ok(())
}
