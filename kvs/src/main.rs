//! The `kvs` binary: the server (`kvs serve`) and small tools for operators.

use clap::{Parser, Subcommand};
use std::path::PathBuf;

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
    /// Inspect a node's write-ahead log.
    Wal {
        #[command(subcommand)]
        command: WalCommand,
    },
}

#[derive(Subcommand)]
enum WalCommand {
    /// Print every record and the recovery verdict; exit 1 when the log is corrupt.
    Dump {
        /// The node's data directory (or its `wal/` directory).
        dir: PathBuf,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Version => println!("kvs {}", env!("CARGO_PKG_VERSION")),
        Command::Wal {
            command: WalCommand::Dump { dir },
        } => {
            let verdict = kvs::storage::dump(&dir, &mut std::io::stdout().lock())?;
            if matches!(verdict, kvs::storage::DumpVerdict::Corruption { .. }) {
                std::process::exit(1);
            }
        }
    }
    Ok(())
}
