//! `oxutl db check PATH`: runs the engine's consistency check (every page reachable exactly
//! once or free, keys ordered, freelist sane) and prints `OK` or one problem per line.

use std::io::Write;
use std::path::PathBuf;

use super::{open_read_only, ToolError};

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// Data file (opened read-only)
    pub path: PathBuf,
}

/// Prints `OK`, or the problems on stdout and returns [`ToolError::CheckFailed`] (exit 1).
pub fn run(args: &CheckArgs, out: &mut dyn Write) -> Result<(), ToolError> {
    let db = open_read_only(&args.path)?;
    match db.check() {
        Ok(()) => {
            writeln!(out, "OK")?;
            Ok(())
        }
        Err(oxcd_engine::Error::Check { problems, .. }) => {
            for problem in &problems {
                writeln!(out, "{problem}")?;
            }
            Err(ToolError::CheckFailed {
                file: args.path.clone(),
                count: problems.len(),
            })
        }
        Err(err) => Err(ToolError::engine(&args.path, err)),
    }
}
