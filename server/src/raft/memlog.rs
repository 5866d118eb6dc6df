//! The in-memory raft log that answers raft-rs's reads (etcd's `raft.MemoryStorage`): the
//! entries since the last compaction, the hard and conf state, and the newest snapshot.
//!
//! It holds only what is already durable: `WalStorage` appends here after the WAL sync, so a
//! read never sees an entry a crash could lose. Pure: no I/O.
//!
//! Layout. `offset` is the (index, term) of the entry just before `entries[0]`: the last entry
//! compacted away or covered by the snapshot. So with a snapshot at (10, 2) and entries 11..=14,
//! `first_index` is 11, `last_index` 14, and `term(10)` is still 2 — raft-rs's contract keeps
//! the term of `first_index - 1` for matching, which raft-rs's own `MemStorage` does not after a
//! compaction (it answers `Compacted` unless that index is its last applied snapshot's). Below
//! `first_index - 1` every term is `Compacted` here, where `MemStorage` still answers for its
//! last applied snapshot's index (0 when none).
//!
//! Invariants: `entries` are consecutive from `offset.index + 1`; `offset.index` never passes
//! the snapshot's index, so a compacted entry is always covered by a snapshot a leader can send.
//! Operations follow `MemStorage`'s semantics (tests compare them), but report misuse as errors
//! where `MemStorage` panics.

use ::raft::eraftpb::{ConfState, Entry, HardState, Snapshot, SnapshotMetadata};
use ::raft::{GetEntriesContext, RaftState, Storage, StorageError};

use super::error::{RaftError, Result};

/// Index and term of one log position.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct LogPosition {
    index: u64,
    term: u64,
}

/// The in-memory raft log. See the module docs.
#[derive(Debug, Default)]
pub struct MemoryLog {
    hard_state: HardState,
    conf_state: ConfState,
    /// The newest snapshot, created here or received from a leader; index 0 when none.
    snapshot: Snapshot,
    offset: LogPosition,
    entries: Vec<Entry>,
}

impl MemoryLog {
    /// An empty log: first index 1, last index 0.
    pub fn new() -> MemoryLog {
        MemoryLog::default()
    }

    /// The first index still held (one past the compacted or snapshotted prefix).
    pub fn first_index(&self) -> u64 {
        self.offset.index + 1
    }

    /// The last index held (the snapshot's when no entry follows it).
    pub fn last_index(&self) -> u64 {
        self.offset.index + self.entries.len() as u64
    }

    /// The hard state raft-rs starts from.
    pub fn hard_state(&self) -> &HardState {
        &self.hard_state
    }

    /// Records the hard state of a persisted `Ready`.
    pub fn set_hard_state(&mut self, hard_state: HardState) {
        self.hard_state = hard_state;
    }

    /// Records a commit index learnt from a `LightReady`.
    pub fn set_commit(&mut self, commit: u64) {
        self.hard_state.commit = commit;
    }

    /// The membership raft-rs starts from (the snapshot's; later changes come from entries).
    pub fn conf_state(&self) -> &ConfState {
        &self.conf_state
    }

    /// The newest snapshot (index 0 when none).
    pub fn latest_snapshot(&self) -> &Snapshot {
        &self.snapshot
    }

    /// The newest snapshot's metadata.
    pub fn snapshot_metadata(&self) -> &SnapshotMetadata {
        self.snapshot.get_metadata()
    }

    /// Replaces the log with `snapshot` (`MemStorage::apply_snapshot`): drops every entry, moves
    /// the commit index to the snapshot's, raises the term to at least its term, and takes its
    /// membership. `SnapshotOutOfDate` if the log already starts after the snapshot's index.
    pub fn apply_snapshot(&mut self, snapshot: Snapshot) -> Result<()> {
        let meta = snapshot.get_metadata();
        if self.first_index() > meta.index {
            return Err(::raft::Error::Store(StorageError::SnapshotOutOfDate).into());
        }
        self.offset = LogPosition {
            index: meta.index,
            term: meta.term,
        };
        self.entries.clear();
        self.hard_state.term = self.hard_state.term.max(meta.term);
        self.hard_state.commit = meta.index;
        self.conf_state = meta.get_conf_state().clone();
        self.snapshot = snapshot;
        Ok(())
    }

    /// Builds a snapshot at `index` with `conf_state` (the membership as of `index`) and the
    /// application's `data` (etcd's `CreateSnapshot`, minus keeping it: see `keep_snapshot`).
    /// `index` must be newer than the current snapshot and held in the log.
    pub fn build_snapshot(
        &self,
        index: u64,
        conf_state: ConfState,
        data: Vec<u8>,
    ) -> Result<Snapshot> {
        let current = self.snapshot_metadata().index;
        let out_of_range = RaftError::SnapshotOutOfRange {
            index,
            snapshot: current,
            last: self.last_index(),
        };
        if index <= current || index > self.last_index() {
            return Err(out_of_range);
        }
        let term = self.term_at(index).map_err(|_| out_of_range)?;
        let mut meta = SnapshotMetadata {
            index,
            term,
            ..Default::default()
        };
        meta.set_conf_state(conf_state);
        let mut snapshot = Snapshot {
            data: data.into(),
            ..Default::default()
        };
        snapshot.set_metadata(meta);
        Ok(snapshot)
    }

    /// Keeps `snapshot` (from `build_snapshot`, now durable) as the one served to followers.
    ///
    /// Panics if it is not newer than the current one: callers build it from this log.
    pub fn keep_snapshot(&mut self, snapshot: Snapshot) {
        assert!(
            snapshot.get_metadata().index > self.snapshot_metadata().index,
            "a kept snapshot must be newer than the current one"
        );
        self.snapshot = snapshot;
    }

    /// Discards the entries before `compact_index` (`MemStorage::compact`: afterwards
    /// `first_index` is `compact_index`). A no-op at or below the first index. Errors if that
    /// would discard entries past the log or not covered by the newest snapshot.
    pub fn compact(&mut self, compact_index: u64) -> Result<()> {
        if compact_index <= self.first_index() {
            return Ok(());
        }
        let snapshot = self.snapshot_metadata().index;
        if compact_index > self.last_index() + 1 || compact_index > snapshot + 1 {
            return Err(RaftError::CompactBeyond {
                index: compact_index,
                last: self.last_index(),
                snapshot,
            });
        }
        let dropped = (compact_index - self.first_index()) as usize;
        let last_dropped = &self.entries[dropped - 1];
        self.offset = LogPosition {
            index: last_dropped.index,
            term: last_dropped.term,
        };
        self.entries.drain(..dropped);
        Ok(())
    }

    /// Appends `entries`, first replacing any held entries from `entries[0].index` on
    /// (`MemStorage::append`). Errors if they would leave a gap or overwrite compacted entries.
    pub fn append(&mut self, entries: &[Entry]) -> Result<()> {
        let Some(first) = entries.first() else {
            return Ok(());
        };
        if first.index < self.first_index() {
            return Err(RaftError::AppendCompacted {
                first: first.index,
                first_index: self.first_index(),
            });
        }
        if first.index > self.last_index() + 1 {
            return Err(RaftError::LogGap {
                first: first.index,
                last: self.last_index(),
            });
        }
        debug_assert!(entries.windows(2).all(|w| w[1].index == w[0].index + 1));
        self.entries
            .truncate((first.index - self.first_index()) as usize);
        self.entries.extend_from_slice(entries);
        Ok(())
    }

    /// The term of entry `index`, or why it is not available.
    fn term_at(&self, index: u64) -> std::result::Result<u64, StorageError> {
        if index == self.offset.index {
            return Ok(self.offset.term);
        }
        if index < self.offset.index {
            return Err(StorageError::Compacted);
        }
        if index > self.last_index() {
            return Err(StorageError::Unavailable);
        }
        Ok(self.entries[(index - self.first_index()) as usize].term)
    }
}

impl Storage for MemoryLog {
    fn initial_state(&self) -> ::raft::Result<RaftState> {
        Ok(RaftState::new(
            self.hard_state.clone(),
            self.conf_state.clone(),
        ))
    }

    /// Entries `[low, high)`, at least one if any, at most `max_size` bytes beyond the first.
    /// `Compacted` below the first index; `Unavailable` past the last (where `MemStorage`
    /// panics).
    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> ::raft::Result<Vec<Entry>> {
        if low < self.first_index() {
            return Err(::raft::Error::Store(StorageError::Compacted));
        }
        if high > self.last_index() + 1 || low > high {
            return Err(::raft::Error::Store(StorageError::Unavailable));
        }
        let start = (low - self.first_index()) as usize;
        let end = (high - self.first_index()) as usize;
        let mut entries = self.entries[start..end].to_vec();
        ::raft::util::limit_size(&mut entries, max_size.into());
        Ok(entries)
    }

    fn term(&self, index: u64) -> ::raft::Result<u64> {
        self.term_at(index).map_err(::raft::Error::Store)
    }

    fn first_index(&self) -> ::raft::Result<u64> {
        Ok(MemoryLog::first_index(self))
    }

    fn last_index(&self) -> ::raft::Result<u64> {
        Ok(MemoryLog::last_index(self))
    }

    /// The newest snapshot if it reaches `request_index`, else `SnapshotTemporarilyUnavailable`
    /// (raft-rs asks again later). Unlike `MemStorage`, which fabricates an empty snapshot at
    /// the commit index, this returns a real one, data included.
    fn snapshot(&self, request_index: u64, _to: u64) -> ::raft::Result<Snapshot> {
        let index = self.snapshot_metadata().index;
        if index == 0 || index < request_index {
            return Err(::raft::Error::Store(
                StorageError::SnapshotTemporarilyUnavailable,
            ));
        }
        Ok(self.snapshot.clone())
    }
}
