//! Turning a stream of records into what raft needs at start-up (etcd's `ReadAll`): the
//! metadata, the last hard state, and the entries after the snapshot the WAL was opened at,
//! with raft's overwrite rule applied.
//!
//! Pure over the records it is given; the caller owns the files.

use std::path::Path;

use crate::decode::RecordBody;
use crate::error::{Corruption, Error, Result};
use crate::pb::{Entry, HardState, SnapshotMark};
use crate::read::WalReader;

/// What a WAL holds from a snapshot on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReadAll {
    /// The metadata recorded at the head of every segment.
    pub metadata: Vec<u8>,
    /// The last hard state saved (all zero if none was).
    pub hard_state: HardState,
    /// The entries after the snapshot index, consecutive.
    pub entries: Vec<Entry>,
}

/// `ReadAll` plus what a writer needs to carry on.
pub(crate) struct Replayed {
    pub read_all: ReadAll,
    /// Index of the last entry record read (etcd's `enti`), whatever the snapshot.
    pub last_entry_index: u64,
}

/// Reads every record of `reader`, which starts at the segment holding `at.index`.
///
/// Errors: `Corrupted` for damage (including conflicting metadata) or an index gap; `SnapshotMismatch`
/// if a mark at `at.index` has another term; `SnapshotNotFound` if none is found.
pub(crate) fn replay(dir: &Path, reader: &mut WalReader, at: SnapshotMark) -> Result<Replayed> {
    let mut metadata: Option<Vec<u8>> = None;
    let mut hard_state = HardState::default();
    let mut entries: Vec<Entry> = Vec::new();
    let mut last_entry_index = 0;
    let mut matched = false;
    for record in reader.by_ref() {
        let record = record?;
        let at_record = |what| Error::corrupted(&dir.join(&record.segment), record.offset, what);
        match record.body {
            // The reader has checked that every copy is the same.
            RecordBody::Metadata(data) => metadata = Some(data),
            RecordBody::Entry(entry) => {
                last_entry_index = entry.index;
                if entry.index > at.index {
                    // Position of this entry in `entries`; anything from there on is replaced.
                    let position = entry.index - at.index - 1;
                    if position > entries.len() as u64 {
                        let last = at.index + entries.len() as u64;
                        return Err(at_record(Corruption::IndexGap {
                            index: entry.index,
                            last,
                        }));
                    }
                    entries.truncate(position as usize);
                    entries.push(entry);
                }
            }
            RecordBody::HardState(state) => hard_state = state,
            RecordBody::Crc => {}
            RecordBody::Snapshot(mark) => {
                if mark.index == at.index {
                    if mark.term != at.term {
                        return Err(Error::SnapshotMismatch {
                            index: at.index,
                            wanted: at.term,
                            found: mark.term,
                        });
                    }
                    matched = true;
                }
            }
        }
    }
    if !matched {
        return Err(Error::SnapshotNotFound {
            index: at.index,
            term: at.term,
        });
    }
    let Some(metadata) = metadata else {
        return Err(Error::corrupted(dir, 0, Corruption::MissingMetadata));
    };
    Ok(Replayed {
        read_all: ReadAll {
            metadata,
            hard_state,
            entries,
        },
        last_entry_index,
    })
}

/// Reads the WAL in `dir` from the snapshot `at` without opening it for writing: no locks
/// taken, nothing modified, a torn tail ignored (etcd's `OpenForRead` + `ReadAll`).
pub fn read_all(dir: &Path, at: SnapshotMark) -> Result<ReadAll> {
    let mut reader = WalReader::open_at(dir, at.index)?;
    Ok(replay(dir, &mut reader, at)?.read_all)
}
