//! The MVCC store (etcd 3.4's `mvcc.store`): the tree index joined to the backend's `key` and
//! `meta` buckets.
//!
//! It owns the [`TreeIndex`], the revision counters (current revision, compaction revision),
//! the consistent index and term of the last applied raft entry, and the compactor thread. It
//! touches the `key` and `meta` buckets only; other subsystems write their own buckets through
//! the same batch transaction ([`StoreWrite::batch_tx`]) so one raft entry's effects commit
//! together.
//!
//! # Revisions
//! A fresh store is at revision 1 with compaction revision -1 (etcd's starting values); every
//! write transaction that changes something gets the next main revision, its changes sub
//! revisions 0, 1, 2… A write that changes nothing leaves the revision alone.
//!
//! # Locks and their order
//! - `writer` (a mutex) is held by a [`StoreWrite`] from begin to end, and briefly by
//!   [`Store::compact`]: one writer at a time, so `begin_rev` is stable for the whole write.
//!   Then the backend's batch transaction is locked inside it.
//! - `index` (a rwlock) is held per operation, never across a backend call of the writer.
//! - `state` (a rwlock over [`RevState`]) is held for a few loads or stores. When both `index`
//!   and `state` are held, `index` is taken first; nothing takes them in the other order.
//!
//! # Why readers never see half a write
//! A write puts its changes in the index at revision `current + 1` while it runs, which no
//! reader asks for (reads are at `current` or below). At the end it publishes its backend
//! session and only then raises `current`; a reader takes `current` and its backend view under
//! the `state` lock, so whenever it sees the new revision its view holds the new values.
//!
//! # Compaction and readers
//! [`Store::compact`] raises the compaction revision *before* the compactor touches the index
//! or the `key` bucket. A range looks the index up under the index lock and then re-checks,
//! still under it, that the compaction revision has not passed the revision read: either the
//! lookup came before any compaction step at the new revision, or the check fails with
//! [`MvccError::Compacted`]. Values come from the reader's backend snapshot, taken before
//! any delete that could affect a revision the check let through.

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use oxcd_engine::backend::Backend;

use super::compact::{CompactionWait, Compactor};
use super::error::MvccError;
use super::index::TreeIndex;
use super::restore;
use super::view::{RangeOptions, RangeResult, ReadView, StoreRead};
use super::write::StoreWrite;
use crate::schema;

/// etcd's `defaultCompactBatchLimit`: `key` bucket entries examined per compaction batch.
pub const DEFAULT_COMPACTION_BATCH_LIMIT: usize = 1000;
/// etcd's pause between compaction batches, during which writers run freely.
pub const DEFAULT_COMPACTION_SLEEP: Duration = Duration::from_millis(10);
/// Keys of the tree index compacted per hold of its write lock.
pub const DEFAULT_INDEX_COMPACTION_BATCH_KEYS: usize = 10_000;

/// Tuning of the store; [`StoreConfig::default`] is etcd's.
#[derive(Clone, Debug)]
pub struct StoreConfig {
    /// `key` bucket entries the compactor examines per batch transaction.
    pub compaction_batch_limit: usize,
    /// Pause between two compaction batches.
    pub compaction_sleep: Duration,
    /// Tree index keys compacted per hold of the index write lock.
    pub index_compaction_batch_keys: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            compaction_batch_limit: DEFAULT_COMPACTION_BATCH_LIMIT,
            compaction_sleep: DEFAULT_COMPACTION_SLEEP,
            index_compaction_batch_keys: DEFAULT_INDEX_COMPACTION_BATCH_KEYS,
        }
    }
}

/// The counters readers and writers agree on, under `Inner::state`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct RevState {
    /// The revision of the last write that changed something (etcd's `currentRev`).
    pub(super) current_rev: i64,
    /// The compaction revision: reads below it fail (etcd's `compactMainRev`). Raised when a
    /// compaction is scheduled, not when it finishes. -1 when never compacted.
    pub(super) compact_rev: i64,
    /// The raft index of the last entry applied (persisted in `meta` with its data).
    pub(super) consistent_index: u64,
    /// The raft term of that entry.
    pub(super) term: u64,
}

/// What the store's handles, views and compactor share.
pub(super) struct Inner {
    pub(super) backend: Backend,
    pub(super) cfg: StoreConfig,
    pub(super) index: RwLock<TreeIndex>,
    pub(super) state: RwLock<RevState>,
    /// Serialises writers (see the module doc).
    pub(super) writer: Mutex<()>,
}

impl Inner {
    pub(super) fn index_read(&self) -> Result<RwLockReadGuard<'_, TreeIndex>, MvccError> {
        self.index
            .read()
            .map_err(|_| MvccError::Poisoned { what: "index" })
    }

    pub(super) fn index_write(&self) -> Result<RwLockWriteGuard<'_, TreeIndex>, MvccError> {
        self.index
            .write()
            .map_err(|_| MvccError::Poisoned { what: "index" })
    }

    pub(super) fn state(&self) -> Result<RevState, MvccError> {
        Ok(*self
            .state
            .read()
            .map_err(|_| MvccError::Poisoned { what: "state" })?)
    }

    pub(super) fn state_write(&self) -> Result<RwLockWriteGuard<'_, RevState>, MvccError> {
        self.state
            .write()
            .map_err(|_| MvccError::Poisoned { what: "state" })
    }

    pub(super) fn lock_writer(&self) -> Result<MutexGuard<'_, ()>, MvccError> {
        self.writer
            .lock()
            .map_err(|_| MvccError::Poisoned { what: "writer" })
    }

    /// A read view as of now: the current revision and a backend snapshot holding every value
    /// up to it (taken together under the state lock; see the module doc).
    pub(super) fn read_view(self: &Arc<Self>) -> Result<StoreRead, MvccError> {
        let state = self
            .state
            .read()
            .map_err(|_| MvccError::Poisoned { what: "state" })?;
        let tx = self.backend.read_tx()?;
        Ok(StoreRead::new(
            Arc::clone(self),
            tx,
            state.current_rev,
            state.compact_rev,
        ))
    }
}

/// The MVCC store. See the module doc.
pub struct Store {
    inner: Arc<Inner>,
    /// Replaced, with the database, by [`Store::replace_db`].
    compactor: Mutex<Compactor>,
    key_leases: Vec<(Vec<u8>, i64)>,
}

impl Store {
    /// [`Store::open_with`] etcd's default configuration.
    pub fn open(backend: Backend) -> Result<Store, MvccError> {
        Store::open_with(backend, StoreConfig::default())
    }

    /// Opens the store on `backend`: creates every bucket of the schema registry (committing
    /// them), reads the compaction revisions, consistent index and term from `meta`, rebuilds
    /// the tree index from the `key` bucket, and resumes a compaction that was scheduled but
    /// not finished, as etcd does.
    pub fn open_with(backend: Backend, cfg: StoreConfig) -> Result<Store, MvccError> {
        let restored = create_buckets_and_restore(&backend)?;
        let inner = Arc::new(Inner {
            backend,
            cfg,
            index: RwLock::new(restored.index),
            state: RwLock::new(restored.state),
            writer: Mutex::new(()),
        });
        let compactor = Compactor::start(Arc::clone(&inner))?;
        let store = Store {
            inner,
            compactor: Mutex::new(compactor),
            key_leases: restored.key_leases,
        };
        store.resume_compaction(restored.scheduled_compact_rev);
        Ok(store)
    }

    /// Resumes the compaction a stop interrupted (its revision was scheduled, not finished).
    fn resume_compaction(&self, scheduled: Option<i64>) {
        if let Some(rev) = scheduled {
            // etcd ignores a failure to resume here; so does this (it can only be a revision
            // that is no longer valid, and the next compaction supersedes it).
            let _ = self.compact(rev);
        }
    }

    /// A read view at the current revision. Cheap; it keeps a backend snapshot alive while it
    /// lives, so do not hold it for long.
    pub fn read(&self) -> Result<StoreRead, MvccError> {
        self.inner.read_view()
    }

    /// Reads `[key, end)` (etcd's range forms: `end` empty = the single key, `"\0"` = every
    /// key from `key` on) at the current revision or `opts.rev`.
    pub fn range(
        &self,
        key: &[u8],
        end: &[u8],
        opts: &RangeOptions,
    ) -> Result<RangeResult, MvccError> {
        self.read()?.range(key, end, opts)
    }

    /// Begins the write for the raft entry at `consistent_index` in `term`. One writer at a
    /// time: this waits for the previous write to end. The write holds the store's writer lock
    /// and the backend's batch lock until it ends, so the thread holding it must not call
    /// [`Store::write`], [`Store::compact`], [`Store::force_commit`] or [`Store::hash`] (they
    /// would wait for it forever); reads and [`Store::hash_kv`] are fine.
    ///
    /// The apply loop must not re-apply an entry (etcd skips entries whose index is at or
    /// below its consistent index); it should test [`Store::consistent_index`] first. As a
    /// last guard, a non-zero `consistent_index` at or below the stored one is refused with
    /// [`MvccError::AlreadyApplied`]. A zero `consistent_index` (writes outside raft, tests)
    /// leaves the stored index and term alone.
    pub fn write(&self, consistent_index: u64, term: u64) -> Result<StoreWrite<'_>, MvccError> {
        let writer = self.inner.lock_writer()?;
        let tx = self.inner.backend.batch_tx()?;
        let state = self.inner.state()?;
        if consistent_index != 0 && consistent_index <= state.consistent_index {
            return Err(MvccError::AlreadyApplied {
                index: consistent_index,
                consistent_index: state.consistent_index,
            });
        }
        Ok(StoreWrite::new(
            &self.inner,
            writer,
            tx,
            state,
            consistent_index,
            term,
        ))
    }

    /// Schedules a compaction at `rev` (etcd's `Compact`): persists it as
    /// `scheduledCompactRev`, makes reads below `rev` fail at once, and hands the work to the
    /// compactor thread. The returned handle reports when the `key` bucket is compacted
    /// (etcd's `--physical`); its `wait` blocks, so async callers wait on a blocking thread.
    /// The apply loop records a compaction entry's consistent index with an empty write after
    /// this call (etcd 3.4 saves it with the next write; re-applying after a crash gets
    /// [`MvccError::Compacted`], as etcd would). Errors: [`MvccError::Compacted`] when `rev` is at or below the
    /// compaction revision, [`MvccError::FutureRev`] when above the current revision.
    pub fn compact(&self, rev: i64) -> Result<CompactionWait, MvccError> {
        let _writer = self.inner.lock_writer()?;
        {
            let mut state = self.inner.state_write()?;
            if rev <= state.compact_rev {
                return Err(MvccError::Compacted);
            }
            if rev > state.current_rev {
                return Err(MvccError::FutureRev);
            }
            state.compact_rev = rev;
        }
        let mut tx = self.inner.backend.batch_tx()?;
        tx.put(
            schema::META,
            schema::META_SCHEDULED_COMPACT,
            &super::Revision::new(rev, 0).encode(),
        )?;
        tx.release()?;
        // The schedule must be durable before any of its deletes is.
        self.inner.backend.force_commit()?;
        self.compactor()?.schedule(rev)
    }

    fn compactor(&self) -> Result<MutexGuard<'_, Compactor>, MvccError> {
        self.compactor
            .lock()
            .map_err(|_| MvccError::Poisoned { what: "compactor" })
    }

    /// Replaces everything the store holds with the bbolt file at `src`, a snapshot of the
    /// leader's database (etcd's `applySnapshot`: open the received db, then `kv.Restore`):
    /// stops the compactor between two batches, renames `src` over the database under the
    /// writer lock, rebuilds the tree index and revisions from it, and starts a new compactor
    /// (resuming the snapshot's scheduled compaction, if any). Returns the live keys with a
    /// lease, for the lessor. The caller is the only writer and has no write open. A read
    /// view taken before the swap keeps the old database but looks up the new index, so it
    /// may fail; the API retries nothing, and only a member installing a snapshot sees this.
    pub fn replace_db(&self, src: &Path) -> Result<Vec<(Vec<u8>, i64)>, MvccError> {
        let mut compactor = self.compactor()?;
        compactor.stop();
        let writer = self.inner.lock_writer()?;
        let backend = &self.inner.backend;
        backend.replace_with(src)?;
        let restored = create_buckets_and_restore(backend)?;
        *self.inner.index_write()? = restored.index;
        *self.inner.state_write()? = restored.state;
        drop(writer);
        *compactor = Compactor::start(Arc::clone(&self.inner))?;
        drop(compactor);
        self.resume_compaction(restored.scheduled_compact_rev);
        Ok(restored.key_leases)
    }

    /// The current revision.
    pub fn rev(&self) -> Result<i64, MvccError> {
        Ok(self.inner.state()?.current_rev)
    }

    /// The compaction revision (-1 when never compacted).
    pub fn compact_rev(&self) -> Result<i64, MvccError> {
        Ok(self.inner.state()?.compact_rev)
    }

    /// The raft index of the last applied entry, as persisted with its data (0 when none).
    pub fn consistent_index(&self) -> Result<u64, MvccError> {
        Ok(self.inner.state()?.consistent_index)
    }

    /// The raft term of the last applied entry (0 when none).
    pub fn term(&self) -> Result<u64, MvccError> {
        Ok(self.inner.state()?.term)
    }

    /// Commits everything written so far (etcd's `Commit`, used before a snapshot).
    pub fn force_commit(&self) -> Result<(), MvccError> {
        Ok(self.inner.backend.force_commit()?)
    }

    /// The backend hash of the whole database (Maintenance `Hash`), committing first, and the
    /// current revision. Like etcd it leaves out `meta`'s consistent index, and the term too
    /// (etcd 3.5 does): both change without any user write.
    pub fn hash(&self) -> Result<(u32, i64), MvccError> {
        let rev = self.rev()?;
        let hash = self.inner.backend.hash(|bucket, key| {
            bucket == schema::META
                && (key == schema::META_CONSISTENT_INDEX || key == schema::META_TERM)
        })?;
        Ok((hash, rev))
    }

    /// The live keys attached to a lease as found in the `key` bucket at open, for the lessor
    /// to re-attach (etcd's restore does the same).
    pub fn restored_key_leases(&self) -> &[(Vec<u8>, i64)] {
        &self.key_leases
    }

    /// The backend the store writes to.
    pub fn backend(&self) -> &Backend {
        &self.inner.backend
    }

    pub(super) fn inner(&self) -> &Arc<Inner> {
        &self.inner
    }

    /// Stops the compactor (an unfinished compaction resumes at the next open, from its
    /// `scheduledCompactRev`). The backend stays open: its owner closes it. Idempotent; also
    /// done on drop.
    pub fn close(&self) {
        if let Ok(compactor) = self.compactor.lock() {
            compactor.stop();
        }
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        self.close();
    }
}

/// Creates any missing bucket (a new db, or an etcd db without oxcd's), commits, and rebuilds
/// the index and state from the backend.
fn create_buckets_and_restore(backend: &Backend) -> Result<restore::Restored, MvccError> {
    let mut tx = backend.batch_tx()?;
    for bucket in schema::ALL_BUCKETS {
        tx.create_bucket(bucket)?;
    }
    tx.release()?;
    backend.force_commit()?;
    restore::restore(backend)
}
