//! `oxutl wal verify DIR`: reads every record of a WAL and checks what raft relies on,
//! printing a short summary and `OK`, or the problems found.
//!
//! Checked: every CRC and the CRC chain across segments, segment sequence numbers,
//! identical metadata records (all by `oxcd_wal::WalReader`); no index gap in the effective
//! log (etcd's `ReadAll` refuses one too); a metadata record exists; entry terms never
//! decrease along the log; the hard state's commit index is not beyond the log's end (etcd
//! refuses to start otherwise: "tocommit is out of range").
//!
//! Exit status (through the error returned): 0 when all holds; 1 on damage, on a problem, or
//! on a torn tail (a crash in the middle of a write: the records before it are intact and the
//! server cuts it off on open) unless `--allow-torn-tail`. Reads only.

use std::io::Write;
use std::path::PathBuf;

use super::scan::{locate, scan, Scan};
use super::WalToolError;

#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// Data dir (holding member/wal) or WAL directory
    pub dir: PathBuf,
    /// Accept a torn tail (exit 0 if nothing else is wrong)
    #[arg(long)]
    pub allow_torn_tail: bool,
}

/// The problems `verify` finds beyond the reader's own checks, one line each.
pub fn problems(wal_dir: &std::path::Path, scan: &Scan<()>) -> Vec<String> {
    let mut problems = Vec::new();
    if scan.metadata.is_none() {
        problems.push(format!("{}: no metadata record", wal_dir.display()));
    }
    for (segment, offset, index, term, previous) in &scan.term_regressions {
        problems.push(format!(
            "{}: offset {offset}: entry {index} has term {term}, below the previous entry's \
             term {previous}",
            wal_dir.join(segment).display()
        ));
    }
    let newest_mark = scan.snapshots.iter().map(|m| m.index).max();
    let end = scan.last_index().max(newest_mark).unwrap_or(0);
    if let Some(state) = scan.hard_state.filter(|s| s.commit > end) {
        problems.push(format!(
            "{}: hard state commit {} is beyond the last index {end}",
            wal_dir.display(),
            state.commit
        ));
    }
    problems
}

pub fn run(args: &VerifyArgs, out: &mut dyn Write) -> Result<(), WalToolError> {
    let location = locate(&args.dir)?;
    let wal_dir = &location.wal_dir;
    let scan = scan(wal_dir, |_| None::<()>)?;
    writeln!(
        out,
        "WAL: {} ({} segments, {} records)",
        wal_dir.display(),
        scan.segments.len(),
        scan.record_count
    )?;
    match (scan.log.first(), scan.log.last()) {
        (Some((first, _)), Some((last, _))) => {
            writeln!(out, "Entries: {} (index {first} to {last})", scan.log.len())?
        }
        _ => writeln!(out, "Entries: 0")?,
    }
    if let Some(mark) = scan.snapshots.iter().max() {
        writeln!(
            out,
            "Snapshots: {} (newest term={} index={})",
            scan.snapshots.len(),
            mark.term,
            mark.index
        )?;
    }
    if let Some(s) = scan.hard_state {
        writeln!(
            out,
            "Hard state: term={} vote={:x} commit={}",
            s.term, s.vote, s.commit
        )?;
    }
    let problems = problems(wal_dir, &scan);
    for problem in &problems {
        writeln!(out, "Problem: {problem}")?;
    }
    if !problems.is_empty() {
        return Err(WalToolError::VerifyFailed {
            dir: wal_dir.clone(),
            count: problems.len(),
        });
    }
    if let Some(torn) = &scan.torn_tail {
        let file = wal_dir.join(&torn.segment);
        writeln!(
            out,
            "Torn tail: {} at offset {}: {}",
            file.display(),
            torn.offset,
            torn.what
        )?;
        if !args.allow_torn_tail {
            return Err(WalToolError::TornTail {
                file,
                offset: torn.offset,
                what: torn.what,
            });
        }
    }
    writeln!(out, "OK")?;
    Ok(())
}
