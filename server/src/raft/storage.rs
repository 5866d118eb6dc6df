//! raft-rs's `Storage` for oxcd: reads served from the in-memory [`MemoryLog`], durability
//! from etcd's WAL and snap files (etcd's `raft.MemoryStorage` + `WAL` + `Snapshotter`).
//!
//! Owns the WAL (open for appending) and the snap directory. Write order, as etcd's:
//!
//! 1. A snapshot from the leader: snap file first (fsynced), then its mark in the WAL, so a
//!    mark never names a missing file.
//! 2. The `Ready`'s entries and then its hard state: one `Wal::save`, one write and one
//!    fdatasync for everything raft batched since the last `Ready` (group commit).
//! 3. Only then the in-memory log, so raft-rs never reads what a crash could lose.
//!
//! The commit index alone does not need to be durable (raft re-learns it), so a hard state
//! whose only change is the commit index — which raft-rs reports after persisting, in the
//! `LightReady` — rides along with the next save instead of costing its own fsync;
//! [`WalStorage::sync_hard_state`] writes it on demand (clean shutdown, before a snapshot mark).
//! Invariant: the hard state in the WAL never names a commit index beyond the entries written
//! before it.
//!
//! Restart (etcd's): the WAL's snapshot marks that its last hard state has committed, the
//! newest snap file matching one of them, the WAL opened at that mark, then snapshot + hard
//! state + entries loaded into memory.

use std::path::{Path, PathBuf};

use ::raft::eraftpb::{ConfState, Entry, HardState, Snapshot};
use ::raft::{GetEntriesContext, RaftState, Ready, Storage};
use oxcd_wal::pb;
use oxcd_wal::{RecordBody, SnapshotMark, Snapshotter, Wal, WalOptions, WalReader};

use super::convert::{
    entry_from_wal, entry_to_wal, hard_state_from_wal, hard_state_to_wal, snapshot_from_wal,
    snapshot_to_wal,
};
use super::error::{RaftError, Result};
use super::memlog::MemoryLog;

/// What a restart found on disk besides the log itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Restored {
    /// The WAL's metadata (etcd: an encoded `etcdserverpb.Metadata` with the member and
    /// cluster IDs).
    pub metadata: Vec<u8>,
    /// The snapshot the log starts after, if any; the state machine restores from it.
    pub snapshot: Option<pb::Snapshot>,
    /// The hard state the WAL held last.
    pub hard_state: pb::HardState,
}

/// The durable raft log of one member. See the module docs.
#[derive(Debug)]
pub struct WalStorage {
    log: MemoryLog,
    wal: Wal,
    snapshotter: Snapshotter,
    /// The hard state last written to the WAL.
    durable_hard_state: HardState,
}

/// True when `wal_dir` holds WAL segments (etcd's `wal.Exist`): the member has state.
pub fn wal_exists(wal_dir: &Path) -> bool {
    std::fs::read_dir(wal_dir).is_ok_and(|entries| {
        entries
            .flatten()
            .any(|e| e.file_name().to_string_lossy().ends_with(".wal"))
    })
}

/// The snapshot marks of the WAL in `wal_dir` that a restart may open at (etcd's
/// `ValidSnapshotEntries`): (0, 0) and every recorded mark, minus those past the last hard
/// state's commit index (a mark written just before a crash that the hard state never
/// caught up with).
pub fn valid_snapshot_marks(wal_dir: &Path) -> Result<Vec<SnapshotMark>> {
    let mut marks = vec![SnapshotMark::default()];
    let mut commit = 0;
    for record in WalReader::open(wal_dir)? {
        match record?.body {
            // The WAL's creation records (0, 0) too; it is already in the list.
            RecordBody::Snapshot(mark) if mark != SnapshotMark::default() => marks.push(mark),
            RecordBody::HardState(state) => commit = state.commit,
            _ => {}
        }
    }
    marks.retain(|m| m.index <= commit);
    Ok(marks)
}

impl WalStorage {
    /// A new member's storage: creates the WAL in `wal_dir` holding `metadata` (it must not
    /// exist yet) and the snap directory. The log is empty.
    pub fn create(
        wal_dir: &Path,
        snap_dir: &Path,
        metadata: &[u8],
        opts: WalOptions,
    ) -> Result<WalStorage> {
        create_snap_dir(snap_dir)?;
        let wal = Wal::create(wal_dir, metadata, opts)?;
        Ok(WalStorage {
            log: MemoryLog::new(),
            wal,
            snapshotter: Snapshotter::new(snap_dir),
            durable_hard_state: HardState::default(),
        })
    }

    /// Reopens a member's storage after a restart or crash (see the module docs).
    pub fn open(
        wal_dir: &Path,
        snap_dir: &Path,
        opts: WalOptions,
    ) -> Result<(WalStorage, Restored)> {
        create_snap_dir(snap_dir)?;
        let marks = valid_snapshot_marks(wal_dir)?;
        let snapshotter = Snapshotter::new(snap_dir);
        let snapshot = match snapshotter.load_newest_available(&marks) {
            Ok(snapshot) => Some(snapshot),
            Err(oxcd_wal::Error::NoSnapshot) => None,
            Err(e) => return Err(e.into()),
        };
        let at = snapshot
            .as_ref()
            .map_or(SnapshotMark::default(), |s| SnapshotMark {
                index: s.metadata.index,
                term: s.metadata.term,
            });
        let (wal, read_all) = Wal::open(wal_dir, at, opts)?;
        let mut log = MemoryLog::new();
        if let Some(snapshot) = &snapshot {
            log.apply_snapshot(snapshot_from_wal(snapshot.clone()))?;
        }
        let hard_state = hard_state_from_wal(&read_all.hard_state);
        log.set_hard_state(hard_state.clone());
        let entries = read_all
            .entries
            .into_iter()
            .map(entry_from_wal)
            .collect::<Result<Vec<_>>>()?;
        log.append(&entries)?;
        let storage = WalStorage {
            log,
            wal,
            snapshotter,
            durable_hard_state: hard_state,
        };
        let restored = Restored {
            metadata: read_all.metadata,
            snapshot,
            hard_state: read_all.hard_state,
        };
        Ok((storage, restored))
    }

    /// The in-memory log (what raft-rs reads).
    pub fn log(&self) -> &MemoryLog {
        &self.log
    }

    /// The WAL.
    pub fn wal(&self) -> &Wal {
        &self.wal
    }

    /// The hard state last made durable.
    pub fn durable_hard_state(&self) -> &HardState {
        &self.durable_hard_state
    }

    /// Makes `entries` and then `hard_state` durable with one WAL save and adds the entries to
    /// the in-memory log. Used to write a new cluster's first entries.
    pub fn append_durably(&mut self, entries: &[Entry], hard_state: &HardState) -> Result<()> {
        self.save_to_wal(entries, hard_state)?;
        self.log.append(entries)?;
        self.log.set_hard_state(hard_state.clone());
        Ok(())
    }

    /// Persists what `ready` asks to (module docs, steps 1-3): its snapshot, its entries (taken
    /// out of `ready`) and its hard state. Returns once they are durable; the caller may then
    /// send the `Ready`'s persisted messages and advance.
    pub fn persist(&mut self, ready: &mut Ready) -> Result<()> {
        let snapshot = ready.snapshot();
        let snapshot = (!snapshot.is_empty()).then(|| snapshot.clone());
        if let Some(snapshot) = &snapshot {
            self.save_snapshot_files(snapshot)?;
        }
        let entries = ready.take_entries();
        // A commit-only change (must_sync false, no entries) waits for the next save.
        if !entries.is_empty() || ready.must_sync() {
            let hard_state = ready.hs().unwrap_or(self.log.hard_state()).clone();
            self.save_to_wal(&entries, &hard_state)?;
        }
        if let Some(snapshot) = snapshot {
            let index = snapshot.get_metadata().index;
            self.log.apply_snapshot(snapshot)?;
            // The hard state naming the snapshot's index is durable: older segments may go.
            self.wal.release_lock_to(index);
        }
        self.log.append(&entries)?;
        if let Some(hard_state) = ready.hs() {
            self.log.set_hard_state(hard_state.clone());
        }
        Ok(())
    }

    /// One `Wal::save`: `entries`, then `hard_state` if it differs from the durable one.
    fn save_to_wal(&mut self, entries: &[Entry], hard_state: &HardState) -> Result<()> {
        let wal_entries = entries
            .iter()
            .map(entry_to_wal)
            .collect::<Result<Vec<_>>>()?;
        let changed = *hard_state != self.durable_hard_state;
        let wal_state = changed.then(|| hard_state_to_wal(hard_state));
        self.wal.save(wal_state.as_ref(), &wal_entries)?;
        if changed {
            self.durable_hard_state = hard_state.clone();
        }
        Ok(())
    }

    /// Records a commit index raft-rs learnt after persisting (a `LightReady`'s); it reaches
    /// the WAL with the next save or `sync_hard_state`.
    pub fn set_commit(&mut self, commit: u64) {
        self.log.set_commit(commit);
    }

    /// Writes the current hard state to the WAL if it differs from the durable one.
    pub fn sync_hard_state(&mut self) -> Result<()> {
        let hard_state = self.log.hard_state().clone();
        if hard_state != self.durable_hard_state {
            self.wal.save(Some(&hard_state_to_wal(&hard_state)), &[])?;
            self.durable_hard_state = hard_state;
        }
        Ok(())
    }

    /// Takes a snapshot at the committed `index` with `conf_state` (the membership as of
    /// `index`) and the state machine's `data`: snap file, WAL mark, then the in-memory
    /// snapshot; finally releases the WAL segments no restart needs any more (etcd's
    /// `CreateSnapshot` + `SaveSnap` + `Release`). The log is not compacted: see `compact`.
    pub fn create_snapshot(
        &mut self,
        index: u64,
        conf_state: ConfState,
        data: Vec<u8>,
    ) -> Result<Snapshot> {
        let commit = self.log.hard_state().commit;
        if index > commit {
            return Err(RaftError::SnapshotOutOfRange {
                index,
                snapshot: self.log.snapshot_metadata().index,
                last: commit,
            });
        }
        let snapshot = self.log.build_snapshot(index, conf_state, data)?;
        // A restart ignores marks past the WAL's commit index: make it cover this one.
        self.sync_hard_state()?;
        self.save_snapshot_files(&snapshot)?;
        self.log.keep_snapshot(snapshot.clone());
        self.wal.release_lock_to(index);
        Ok(snapshot)
    }

    /// Discards in-memory entries before `compact_index` (they must be covered by the newest
    /// snapshot). The WAL keeps them until purged.
    pub fn compact(&mut self, compact_index: u64) -> Result<()> {
        self.log.compact(compact_index)
    }

    /// Removes old WAL segments (beyond the WAL's `max_wals`, never one still needed) and old
    /// snap files (beyond `max_snapshots`). Returns the removed paths.
    pub fn purge(&mut self, max_snapshots: usize) -> Result<Vec<PathBuf>> {
        let mut removed = self.wal.purge()?;
        removed.extend(self.snapshotter.purge(max_snapshots)?);
        Ok(removed)
    }

    /// Snap file first, then the WAL mark (etcd's `SaveSnap` order).
    fn save_snapshot_files(&mut self, snapshot: &Snapshot) -> Result<()> {
        let wal_snapshot = snapshot_to_wal(snapshot);
        self.snapshotter.save(&wal_snapshot)?;
        self.wal.save_snapshot(SnapshotMark {
            index: wal_snapshot.metadata.index,
            term: wal_snapshot.metadata.term,
        })?;
        Ok(())
    }
}

fn create_snap_dir(snap_dir: &Path) -> Result<()> {
    std::fs::create_dir_all(snap_dir).map_err(|source| RaftError::Io {
        path: snap_dir.to_path_buf(),
        source,
    })
}

impl Storage for WalStorage {
    fn initial_state(&self) -> ::raft::Result<RaftState> {
        self.log.initial_state()
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        context: GetEntriesContext,
    ) -> ::raft::Result<Vec<Entry>> {
        self.log.entries(low, high, max_size, context)
    }

    fn term(&self, index: u64) -> ::raft::Result<u64> {
        self.log.term(index)
    }

    fn first_index(&self) -> ::raft::Result<u64> {
        Ok(self.log.first_index())
    }

    fn last_index(&self) -> ::raft::Result<u64> {
        Ok(self.log.last_index())
    }

    fn snapshot(&self, request_index: u64, to: u64) -> ::raft::Result<Snapshot> {
        self.log.snapshot(request_index, to)
    }
}
