//! `oxutl`: offline utilities for oxcd data files. Parses arguments and reports the outcome;
//! the commands themselves live in `oxcd_tools::db`.
//!
//! Exit codes: 0 success, 1 failure (one line on stderr naming the file), 2 usage error.
#![forbid(unsafe_code)]

use std::io::{BufWriter, Write};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use oxcd_tools::db::{self, DbArgs, ToolError};

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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut out = BufWriter::new(std::io::stdout().lock());
    let result = match &cli.command {
        Command::Db(args) => db::run(&args.command, &mut out),
    };
    let result = result.and_then(|()| out.flush().map_err(ToolError::from));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if err.is_broken_pipe() => ExitCode::SUCCESS,
        Err(err) => {
            // Whatever was printed before the failure (e.g. check's problem list) still counts.
            let _ = out.flush();
            eprintln!("oxutl: {err}");
            ExitCode::from(1)
        }
    }
}
