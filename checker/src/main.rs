//! `checker`: judge a recorded history from the command line.
//!
//! `checker <history.jsonl> --model register|set|counter` prints the verdict and exits 0 when
//! valid, 1 when invalid, 2 when unknown or when the input is bad (with the line number).

use std::fs::File;
use std::io::BufReader;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use checker::render::{render_counter, render_linearizability, render_set};
use checker::verdict::Judgement;
use checker::{
    budget_for, check_counter, check_linearizability, check_set, pair_history, read_history,
    Budget, Operation, Register, Verdict,
};
use clap::{Parser, ValueEnum};

/// Which checker to run.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum ModelName {
    /// Linearizability of a register per key (read, write, cas).
    Register,
    /// Set semantics per key (add, read).
    Set,
    /// Counter bounds per key (incr, read).
    Counter,
}

/// Check a JSON-lines history (format: see the checker crate's docs).
#[derive(Debug, Parser)]
#[command(name = "checker", version)]
struct Args {
    /// The history file, one JSON event per line.
    history: PathBuf,
    /// The model to check against.
    #[arg(long, value_enum, default_value = "register")]
    model: ModelName,
    /// Give up (verdict unknown) after this many seconds of search.
    #[arg(long, default_value_t = 300.0)]
    time_limit_s: f64,
    /// Give up on a key after remembering this many search states.
    #[arg(long, default_value_t = 10_000_000)]
    states_max: u64,
    /// Give up on a key once its cache of search states takes about this many MiB.
    #[arg(long, default_value_t = 1024)]
    cache_mib_max: u64,
    /// Print the full report as JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// Exit codes.
const EXIT_VALID: u8 = 0;
const EXIT_INVALID: u8 = 1;
const EXIT_UNKNOWN_OR_BAD_INPUT: u8 = 2;

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("checker: {e:#}");
            ExitCode::from(EXIT_UNKNOWN_OR_BAD_INPUT)
        }
    }
}

fn load(path: &PathBuf) -> anyhow::Result<Vec<Operation>> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let history =
        read_history(BufReader::new(file)).with_context(|| format!("{}", path.display()))?;
    pair_history(&history).with_context(|| format!("{}", path.display()))
}

fn run(args: &Args) -> anyhow::Result<u8> {
    let ops = load(&args.history)?;
    let started = Instant::now();
    match args.model {
        ModelName::Register => {
            let time_limit = Duration::try_from_secs_f64(args.time_limit_s).map_err(|_| {
                anyhow::anyhow!(
                    "--time-limit-s must be a non-negative number of seconds, got {}",
                    args.time_limit_s
                )
            })?;
            let budget = Budget {
                states_max: args.states_max,
                cache_bytes_max: args.cache_mib_max.saturating_mul(1 << 20),
                ..budget_for(time_limit)
            };
            let report = check_linearizability(&Register, &ops, &budget)
                .with_context(|| format!("{}", args.history.display()))?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!(
                    "{} operations over {} keys checked in {:.3} s",
                    ops.len(),
                    report.keys.len(),
                    started.elapsed().as_secs_f64()
                );
                print!("{}", render_linearizability(&report, &ops));
            }
            Ok(match report.verdict {
                Verdict::Valid => EXIT_VALID,
                Verdict::Invalid { .. } => EXIT_INVALID,
                Verdict::Unknown { .. } => EXIT_UNKNOWN_OR_BAD_INPUT,
            })
        }
        ModelName::Set => {
            let report = check_set(&ops).with_context(|| format!("{}", args.history.display()))?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", render_set(&report));
            }
            Ok(judgement_code(report.judgement))
        }
        ModelName::Counter => {
            let report =
                check_counter(&ops).with_context(|| format!("{}", args.history.display()))?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", render_counter(&report));
            }
            Ok(judgement_code(report.judgement))
        }
    }
}

fn judgement_code(judgement: Judgement) -> u8 {
    match judgement {
        Judgement::Valid => EXIT_VALID,
        Judgement::Invalid => EXIT_INVALID,
        Judgement::Unknown => EXIT_UNKNOWN_OR_BAD_INPUT,
    }
}
