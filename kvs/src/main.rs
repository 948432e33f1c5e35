//! The `kvs` binary: the server (`kvs serve`) and small tools for operators.

use clap::{Parser, Subcommand};

/// raftkv's store and its tools.
#[derive(Parser)]
#[command(name = "kvs", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the version and exit.
    Version,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Version => println!("kvs {}", env!("CARGO_PKG_VERSION")),
    }
    Ok(())
}
