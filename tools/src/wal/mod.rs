//! `oxutl wal ...`: offline inspection of an etcd-format write-ahead log (`member/wal`, as
//! written by etcd 3.4 or by oxcd through `oxcd_wal`).
//!
//! One file per command (`dump`, `verify`); `scan` is the one pass over the records both
//! share; `summary` says what an entry means, using the etcd messages of `etcdpb`. This
//! module owns the clap definitions of the `wal` family, the dispatch and the JSON writer.
//!
//! Invariants: nothing here writes to the WAL or snap directories (no locks, no repair, no
//! renaming of broken files). Every failure is a [`WalToolError`] whose Display is one line
//! naming the directory or segment (and offset), so the binary prints it as is and exits 1.

pub mod dump;
mod error;
pub mod etcdpb;
pub mod scan;
pub mod summary;
pub mod verify;

use std::io::Write;

pub use error::WalToolError;

/// `oxutl wal`: every command takes a data dir or a WAL directory.
#[derive(Debug, clap::Args)]
pub struct WalArgs {
    #[command(subcommand)]
    pub command: WalCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum WalCommand {
    /// Metadata, snapshot marks, hard state, then one line per entry (like etcd-dump-logs)
    Dump(dump::DumpArgs),
    /// Read and check every record; exit 1 on damage, a problem or a torn tail
    Verify(verify::VerifyArgs),
}

/// Runs one `wal` command, writing its normal output to `out`.
pub fn run(command: &WalCommand, out: &mut dyn Write) -> Result<(), WalToolError> {
    match command {
        WalCommand::Dump(args) => dump::run(args, out),
        WalCommand::Verify(args) => verify::run(args, out),
    }
}

/// Writes `value` as pretty JSON followed by a newline.
fn write_json<T: serde::Serialize>(out: &mut dyn Write, value: &T) -> Result<(), WalToolError> {
    serde_json::to_writer_pretty(&mut *out, value).map_err(std::io::Error::from)?;
    writeln!(out)?;
    Ok(())
}
