//! `repair`: cut a torn write off the end of the last segment, keeping the evidence
//! (etcd's `wal.Repair`). Touches only the last segment and its `.broken` copy.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::io::{open_locked, read_whole};
use crate::layout::BROKEN_SUFFIX;
use crate::read::{list_segments, WalReader};

/// What `repair` did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RepairOutcome {
    /// The last segment ends cleanly; nothing was changed.
    Clean,
    /// The last segment ended in a torn write: it was copied whole to `broken` and then
    /// truncated to `valid_end`, the end of its last complete record.
    Repaired {
        segment: PathBuf,
        broken: PathBuf,
        valid_end: u64,
    },
}

/// Verifies the last segment of the WAL in `dir` and, if it ends in a torn write, saves it
/// as `<name>.broken` and truncates it after its last complete record, then fsyncs both.
///
/// Errors: `Corrupted` if the segment is damaged other than at its tail (repair cannot help);
/// `Locked` if a WAL has it open.
pub fn repair(dir: &Path) -> Result<RepairOutcome> {
    let mut names = list_segments(dir)?;
    let last = names.pop().expect("list_segments returns at least one");
    let path = dir.join(&last.name);
    let file = open_locked(&path)?;
    let source = file.try_clone().map_err(|e| Error::io(&path, e))?;
    let mut reader = WalReader::new(dir, vec![(last, Some(source))])?;
    for record in reader.by_ref() {
        record?;
    }
    let (Some(torn), Some(tail)) = (reader.torn_tail().cloned(), reader.tail_info()) else {
        return Ok(RepairOutcome::Clean);
    };
    debug_assert_eq!(torn.offset, tail.valid_end);
    let mut broken_name = path.as_os_str().to_os_string();
    broken_name.push(BROKEN_SUFFIX);
    let broken = PathBuf::from(broken_name);
    let bytes = read_whole(&file, &path)?;
    let mut copy = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&broken)
        .map_err(|e| Error::io(&broken, e))?;
    copy.write_all(&bytes)
        .and_then(|()| copy.sync_all())
        .map_err(|e| Error::io(&broken, e))?;
    file.set_len(tail.valid_end)
        .and_then(|()| file.sync_all())
        .map_err(|e| Error::io(&path, e))?;
    crate::io::fsync_dir(dir)?;
    Ok(RepairOutcome::Repaired {
        segment: path,
        broken,
        valid_end: tail.valid_end,
    })
}
