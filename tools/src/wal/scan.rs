//! One pass over a WAL directory, shared by `dump` and `verify`: every record verified by
//! `oxcd_wal::WalReader` (CRCs, CRC chain, segment sequence, metadata), and the effective
//! raft log rebuilt from the entry records.
//!
//! The effective log follows raft's overwrite rule, as etcd's `ReadAll` does: an entry at an
//! index already present replaces it and everything after it (a new leader overwrote an
//! uncommitted tail). An entry may not skip an index, except right after a snapshot mark
//! beyond the log's end (a follower that received a snapshot continues from its index).
//! The oldest segment may have been purged, so the first entry may have any index.
//!
//! Example: records `e1 e2 e3 e2' e3' mark(10) e11` give the log `1 2' 3' 11`, and the
//! caller's kept items for 2 and 3 are replaced by those of 2' and 3'.
//!
//! Reads only; never modifies a file.

use std::path::{Path, PathBuf};

use oxcd_wal::{Entry, HardState, RecordBody, SnapshotMark, TornTail, WalReader};

use super::WalToolError;

/// What one pass found.
#[derive(Debug)]
pub struct Scan<T> {
    /// Segment file names in the order read.
    pub segments: Vec<String>,
    pub record_count: u64,
    /// The metadata record's payload (every copy is the same, the reader checks).
    pub metadata: Option<Vec<u8>>,
    /// Every snapshot mark, in order.
    pub snapshots: Vec<SnapshotMark>,
    /// The last hard state record.
    pub hard_state: Option<HardState>,
    /// Where the last segment ended in a torn write, if it did.
    pub torn_tail: Option<TornTail>,
    /// (index, term) of every entry of the effective log, in index order.
    pub log: Vec<(u64, u64)>,
    /// The caller's items for the entries of the effective log it chose to keep, by index.
    pub kept: Vec<(u64, T)>,
    /// Places where an entry's term is lower than the one before it, as
    /// (segment, offset, index, term, previous term): raft never writes that, etcd does not
    /// check it.
    pub term_regressions: Vec<(String, u64, u64, u64, u64)>,
}

impl<T> Scan<T> {
    /// Index of the last entry of the effective log.
    pub fn last_index(&self) -> Option<u64> {
        self.log.last().map(|&(index, _)| index)
    }
}

/// Reads every record of the WAL in `wal_dir`; `keep` maps each entry to the item the caller
/// wants for it (or `None`). Errors name the segment and offset of the first damage.
pub fn scan<T>(
    wal_dir: &Path,
    mut keep: impl FnMut(&Entry) -> Option<T>,
) -> Result<Scan<T>, WalToolError> {
    let mut reader = WalReader::open(wal_dir).map_err(|e| WalToolError::wal(wal_dir, e))?;
    let mut scan = Scan {
        segments: Vec::new(),
        record_count: 0,
        metadata: None,
        snapshots: Vec::new(),
        hard_state: None,
        torn_tail: None,
        log: Vec::new(),
        kept: Vec::new(),
        term_regressions: Vec::new(),
    };
    // The index the next entry may follow: the log's end or a later snapshot mark.
    let mut end: Option<u64> = None;
    for record in reader.by_ref() {
        let record = record.map_err(|e| WalToolError::wal(wal_dir, e))?;
        scan.record_count += 1;
        if scan.segments.last() != Some(&record.segment) {
            scan.segments.push(record.segment.clone());
        }
        match record.body {
            RecordBody::Metadata(data) => scan.metadata = Some(data),
            RecordBody::HardState(state) => scan.hard_state = Some(state),
            RecordBody::Crc => {}
            RecordBody::Snapshot(mark) => {
                scan.snapshots.push(mark);
                if end.is_none() || end < Some(mark.index) {
                    end = Some(mark.index);
                }
            }
            RecordBody::Entry(entry) => {
                if let Some(end) = end.filter(|&end| entry.index > end.saturating_add(1)) {
                    return Err(WalToolError::Damaged {
                        file: wal_dir.join(&record.segment),
                        offset: record.offset,
                        what: format!("entry index {} leaves a gap after index {end}", entry.index),
                    });
                }
                let position = scan.log.partition_point(|&(index, _)| index < entry.index);
                scan.log.truncate(position);
                let kept_position = scan.kept.partition_point(|(index, _)| *index < entry.index);
                scan.kept.truncate(kept_position);
                if let Some(&(_, previous)) = scan.log.last() {
                    if entry.term < previous {
                        scan.term_regressions.push((
                            record.segment.clone(),
                            record.offset,
                            entry.index,
                            entry.term,
                            previous,
                        ));
                    }
                }
                scan.log.push((entry.index, entry.term));
                if let Some(item) = keep(&entry) {
                    scan.kept.push((entry.index, item));
                }
                end = Some(entry.index);
            }
        }
    }
    scan.torn_tail = reader.torn_tail().cloned();
    Ok(scan)
}

/// The WAL directory and, when known, the snap directory of `dir`, which is either a data
/// dir (holding `member/wal`) or a WAL directory itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    pub wal_dir: PathBuf,
    pub snap_dir: Option<PathBuf>,
}

/// Finds the WAL of `dir`: `dir/member/wal` if it exists, else `dir` itself (whose sibling
/// `snap` is then the snap directory, when `dir` is named `wal`).
pub fn locate(dir: &Path) -> Result<Location, WalToolError> {
    if !dir.is_dir() {
        return Err(WalToolError::NotFound {
            dir: dir.to_path_buf(),
        });
    }
    let member = dir.join("member");
    if member.join("wal").is_dir() {
        let snap_dir = Some(member.join("snap")).filter(|d| d.is_dir());
        return Ok(Location {
            wal_dir: member.join("wal"),
            snap_dir,
        });
    }
    let sibling = dir
        .parent()
        .map(|parent| parent.join("snap"))
        .filter(|d| dir.file_name().is_some_and(|name| name == "wal") && d.is_dir());
    Ok(Location {
        wal_dir: dir.to_path_buf(),
        snap_dir: sibling,
    })
}
