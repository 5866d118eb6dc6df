//! `oxutl`: offline utilities for oxcd data files. Parses arguments and reports the outcome;
//! the commands themselves live in `oxcd_tools::db` and `oxcd_tools::wal`.
//!
//! Exit codes: 0 success, 1 failure (one line on stderr naming the file), 2 usage error.
#![forbid(unsafe_code)]

use std::io::{BufWriter, Write};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use oxcd_tools::db::{self, DbArgs, ToolError};
use oxcd_tools::wal::{self, WalArgs, WalToolError};

#[derive(Debug, Parser)]
#[command(
    name = "oxutl",
    version,
    about = "Offline utilities for oxcd data files"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Inspect, check and compact a backend data file (bbolt format); read-only unless noted
    Db(DbArgs),
    /// Dump and verify an etcd-format write-ahead log (member/wal); read-only
    Wal(WalArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut out = BufWriter::new(std::io::stdout().lock());
    match &cli.command {
        Command::Db(args) => {
            let result = db::run(&args.command, &mut out);
            finish(result, &mut out, ToolError::is_broken_pipe)
        }
        Command::Wal(args) => {
            let result = wal::run(&args.command, &mut out);
            finish(result, &mut out, WalToolError::is_broken_pipe)
        }
    }
}

/// Flushes the output and turns the outcome into the exit code, printing a failure as one
/// line on stderr.
fn finish<E>(
    result: Result<(), E>,
    out: &mut impl Write,
    is_broken_pipe: fn(&E) -> bool,
) -> ExitCode
where
    E: std::fmt::Display + From<std::io::Error>,
{
    let result = result.and_then(|()| out.flush().map_err(E::from));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            // Whatever was printed before the failure (e.g. check's problem list) still counts.
            let _ = out.flush();
            eprintln!("oxutl: {err}");
            ExitCode::from(1)
        }
    }
}
