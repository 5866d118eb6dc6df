//! `oxutl db ...`: offline inspection and maintenance of an oxcd data file (bbolt format).
//!
//! One file per command group; this module owns the clap definitions of the `db` family, the
//! dispatch, and the helpers every command shares (opening read-only, JSON output).
//!
//! Invariants: every command except `compact` opens the data file read-only (shared lock, no
//! writes, never creates the file); `compact` writes only to a fresh output file. Every failure
//! is a [`ToolError`] whose Display is one line naming the file, so the binary can print it
//! as is and exit 1.

pub mod browse;
pub mod check;
pub mod compact;
pub mod decode;
pub mod encoding;
mod error;
pub mod info;
pub mod page;
pub mod pages;
pub mod stats;

use std::io::Write;
use std::path::Path;

use oxcd_engine::{Db, Options};

pub use error::ToolError;

/// `oxutl db`: every command takes the data file path first, as bbolt's CLI does.
#[derive(Debug, clap::Args)]
pub struct DbArgs {
    #[command(subcommand)]
    pub command: DbCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum DbCommand {
    /// Summary of the current meta page: page size, txid, root, freelist, high water, sizes
    Info(info::InfoArgs),
    /// Aggregate B+tree statistics over the top-level buckets whose names start with PREFIX
    Stats(stats::StatsArgs),
    /// Names of the top-level buckets, one per line
    Buckets(browse::BucketsArgs),
    /// Keys of a bucket, one per line (nested buckets are listed too)
    Keys(browse::KeysArgs),
    /// The value stored under KEY in a bucket
    Get(browse::GetArgs),
    /// Every page of the file: ID, TYPE, ITEMS, OVRFLW
    Pages(pages::PagesArgs),
    /// Header and decoded elements of one page
    Page(page::PageArgs),
    /// Consistency check: every page reachable exactly once or free; exit 1 on problems
    Check(check::CheckArgs),
    /// Copy the live data into a new, densely packed file
    Compact(compact::CompactArgs),
}

/// Runs one `db` command, writing its normal output to `out`.
pub fn run(command: &DbCommand, out: &mut dyn Write) -> Result<(), ToolError> {
    match command {
        DbCommand::Info(args) => info::run(args, out),
        DbCommand::Stats(args) => stats::run(args, out),
        DbCommand::Buckets(args) => browse::run_buckets(args, out),
        DbCommand::Keys(args) => browse::run_keys(args, out),
        DbCommand::Get(args) => browse::run_get(args, out),
        DbCommand::Pages(args) => pages::run(args, out),
        DbCommand::Page(args) => page::run(args, out),
        DbCommand::Check(args) => check::run(args, out),
        DbCommand::Compact(args) => compact::run(args, out),
    }
}

/// Opens an existing data file read-only. A missing file is reported as such (and is never
/// created), rather than as whatever the first failing system call says.
pub fn open_read_only(path: &Path) -> Result<Db, ToolError> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => {
            return Err(ToolError::Refused {
                file: path.to_path_buf(),
                reason: "is a directory, not a data file".to_string(),
            })
        }
        Ok(_) => {}
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return Err(ToolError::NotFound {
                file: path.to_path_buf(),
            })
        }
        Err(source) => {
            return Err(ToolError::Io {
                file: path.to_path_buf(),
                source,
            })
        }
    }
    let options = Options {
        read_only: true,
        ..Options::default()
    };
    Db::open(path, options).map_err(|source| ToolError::engine(path, source))
}

/// Writes `value` as pretty JSON followed by a newline.
pub fn write_json<T: serde::Serialize>(out: &mut dyn Write, value: &T) -> Result<(), ToolError> {
    serde_json::to_writer_pretty(&mut *out, value).map_err(std::io::Error::from)?;
    writeln!(out)?;
    Ok(())
}
