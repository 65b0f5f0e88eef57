//! The `nas` command: the command-line interface (and, as later parts land,
//! the HTTP API and dashboard). `main.rs` only parses and calls [`run`].
#![deny(missing_docs)]

pub mod api;
pub mod cli;
pub mod commands;
pub mod table;

use cli::{ArchCommand, BenchCommand, Cli, Command, QueueCommand, SpaceCommand, ZooCommand};

/// Runs one parsed command line, printing its output to stdout.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    let output = match cli.command {
        Command::Zoo(ZooCommand::List(args)) => commands::zoo::list(&args)?,
        Command::Zoo(ZooCommand::Show(args)) => commands::zoo::show(&args)?,
        Command::Arch(ArchCommand::Check(args)) => commands::arch::check(&args)?,
        Command::Space(SpaceCommand::Sample(args)) => commands::space::sample(&args)?,
        Command::Space(SpaceCommand::Show(args)) => commands::space::show(&args)?,
        Command::Train(args) => commands::train::train(&args)?,
        Command::Latency(args) => commands::train::latency(&args)?,
        Command::Bench(BenchCommand::Train(args)) => commands::train::bench(&args)?,
        Command::Bench(BenchCommand::Queue(args)) => commands::bench_queue::run(&args)?,
        Command::Serve(args) => commands::serve::run(&args)?,
        Command::Worker(args) => commands::worker::run(&args)?,
        Command::Queue(QueueCommand::Submit(args)) => commands::queue::submit(&args)?,
        Command::Queue(QueueCommand::Status(args)) => commands::queue::status(&args)?,
    };
    print!("{output}");
    Ok(())
}
