//! etcd's batched write layer (etcd 3.4 `mvcc/backend`) over the engine.
//!
//! Owns one database file through a [`crate::Db`], its single long-lived write transaction,
//! the buffer of writes applied but not yet committed, and a background thread that commits
//! them. It knows nothing of MVCC: buckets and keys are opaque bytes, top-level buckets only,
//! addressed by name as etcd does.
//!
//! # Writes: one batch transaction, many sessions
//! There is always one engine `WriteTx` open (etcd's `batchTx`). [`Backend::batch_tx`] locks
//! it (one writer at a time, a mutex) and returns a guard; each write goes straight into the
//! `WriteTx` and is also recorded in the session's `buffer::WriteBuffer`. When the guard is
//! dropped the session is *published*: its writes become visible to readers, all at once. If
//! the transaction then holds `batch_limit` or more pending operations it commits. Otherwise
//! the background thread commits it within `batch_interval`, or `force_commit` does. A commit
//! commits the old `WriteTx` and begins a new one; nothing is rolled back, ever.
//!
//! # Reads: committed snapshot + read buffer (etcd's `ConcurrentReadTx`)
//! Readers never touch the batch mutex. The read side is two `Arc`s behind an `RwLock`:
//! `committed` (an engine `ReadTx` of the last commit) and `buffer` (an immutable
//! `buffer::ReadBuffer` of every session published since that commit). [`Backend::read_tx`]
//! clones both under the read lock, so it costs two refcount bumps however large the buffer
//! is, and the pair it gets is always consistent. A read merges the buffer over the committed
//! data in key order: newest write wins, buffered deletes hide committed keys, a bucket deleted
//! in the buffer hides the committed bucket.
//!
//! The write lock is held only to swap pointers:
//! ```text
//! publish (guard drop):  build buffer' = buffer + session    (outside the lock)
//!                        lock { buffer = buffer' }
//! commit:                WriteTx.commit()                      readers: old committed + buffer
//!                        r = db.begin_read()                   (buffer re-applies exactly what
//!                        lock { committed = r; buffer = {} }    was committed: same view)
//!                        db.begin_write()
//! ```
//! Between the engine commit and the swap a reader sees the old snapshot with the buffer on
//! top, which is the same data the new snapshot holds, so no reader ever sees a gap or a
//! duplicate, and none waits for a commit's fsync (etcd holds its read lock across the commit).
//!
//! # Defrag
//! [`Backend::defrag`] holds the batch mutex throughout (writers wait, as in etcd), commits,
//! copies the live data into `<db>.tmp.<pid>.<n>` next to the file with `crate::compact` at
//! fill percent 0.9, fsyncs it, renames it over the file, fsyncs the directory, reopens, and
//! swaps the new snapshot in under the write lock. Readers keep working throughout: until the
//! swap they read the old snapshot (same content), and a reader that started before keeps
//! reading the old file's mapping, which its `ReadTx` keeps alive until it finishes. A failure
//! before the rename leaves the old file in place and the backend working; after the rename
//! the backend fails (see below). Stale temp files are removed at open.
//!
//! # Failure
//! A failed commit leaves readers having seen writes that may never reach the disk. The
//! backend then records the failure and every later call returns [`Error::Failed`]; the owner
//! must stop (etcd exits). A panic while the batch mutex is held (inside a session, or the
//! engine's deliberate panic on a failed fdatasync during a commit, also on the background
//! thread) fails the backend the same way, for readers too.
//!
//! # Differences from etcd, on purpose
//! - Deletes and bucket deletes are buffered too (etcd 3.4 buffers only puts, so a concurrent
//!   reader can see a deleted key until the next commit).
//! - The read buffer is shared immutably instead of copied for every concurrent read.
//! - Reading a missing bucket yields nothing (as etcd); writing to one is
//!   [`Error::BucketNotFound`] instead of a fatal log. Creating an existing bucket or deleting
//!   a missing one is a no-op (as etcd's `UnsafeCreateBucket` / 3.5 `UnsafeDeleteBucket`).
//! - `size()` is the file's size in bytes; etcd reports `Tx.Size()` (high water × page size).
//! - `hash()` commits first, so it covers every write applied so far.

#![forbid(unsafe_code)]

mod batch;
mod buffer;
mod config;
mod defrag;
mod error;
mod hash;
mod read;

use std::panic::{self, AssertUnwindSafe};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock, RwLockReadGuard};
use std::thread::JoinHandle;
use std::time::Duration;

pub use batch::BatchTx;
pub use config::{BackendConfig, DEFAULT_BATCH_INTERVAL, DEFAULT_BATCH_LIMIT, SEQ_FILL_PERCENT};
pub use error::{Error, Result};
pub use read::{ConcurrentReadTx, KeyValues};

use crate::Db;
use batch::Writer;
use buffer::ReadBuffer;
use read::Committed;

/// The batched backend. Cheap to clone; every clone is the same backend. Dropping the last
/// clone closes it (see [`Backend::close`]).
#[derive(Clone)]
pub struct Backend {
    handle: Arc<Handle>,
}

/// Owned by the user-facing clones only: when the last one goes, the ticker stops.
struct Handle {
    core: Arc<Core>,
    ticker: Mutex<Option<Ticker>>,
}

struct Ticker {
    stop: mpsc::Sender<()>,
    thread: JoinHandle<()>,
}

/// Shared by the handles and the background thread.
struct Core {
    cfg: BackendConfig,
    writer: Mutex<Writer>,
    shared: RwLock<Shared>,
    /// Set once, by the first failed commit; checked by every entry point.
    failure: OnceLock<String>,
    closed: AtomicBool,
    size_bytes: AtomicU64,
    size_in_use_bytes: AtomicU64,
    commits: AtomicU64,
}

/// The read side: what a new reader starts from.
struct Shared {
    /// `None` once closed.
    committed: Option<Arc<Committed>>,
    buffer: Arc<ReadBuffer>,
}

impl Backend {
    /// Opens (creating if missing) the file at `cfg.path`, begins the batch transaction and,
    /// unless `cfg.batch_interval` is zero, starts the background commit thread.
    pub fn open(cfg: BackendConfig) -> Result<Backend> {
        let db = Db::open(&cfg.path, cfg.engine_options())?;
        defrag::remove_stale_temp_files(&cfg.path)?;
        let committed = Committed::new(db.begin_read()?);
        let core = Arc::new(Core {
            writer: Mutex::new(Writer::new(db.clone())),
            shared: RwLock::new(Shared {
                committed: Some(committed),
                buffer: Arc::new(ReadBuffer::default()),
            }),
            failure: OnceLock::new(),
            closed: AtomicBool::new(false),
            size_bytes: AtomicU64::new(0),
            size_in_use_bytes: AtomicU64::new(0),
            commits: AtomicU64::new(0),
            cfg,
        });
        core.refresh_sizes(&db);
        core.lock_writer()?.begin()?;
        let ticker = match core.cfg.batch_interval {
            Duration::ZERO => None,
            interval => Some(Ticker::start(Arc::clone(&core), interval)?),
        };
        Ok(Backend {
            handle: Arc::new(Handle {
                core,
                ticker: Mutex::new(ticker),
            }),
        })
    }

    /// Locks the batch transaction (waiting for the current holder). Writes made through the
    /// guard are visible to readers once it is dropped. A thread holding the guard must not
    /// call `batch_tx`, `force_commit`, `snapshot`, `hash`, `defrag` or `close`: they wait for
    /// the guard (as in etcd, the batch lock is not reentrant).
    pub fn batch_tx(&self) -> Result<BatchTx<'_>> {
        BatchTx::lock(&self.handle.core)
    }

    /// A consistent read view: the last commit plus every published batch session since, as
    /// of this call. Never waits for the writer or for a commit in progress.
    pub fn read_tx(&self) -> Result<ConcurrentReadTx> {
        let core = &self.handle.core;
        core.usable()?;
        let shared = core.read_shared()?;
        let committed = shared.committed.clone().ok_or(Error::Closed)?;
        Ok(ConcurrentReadTx::new(committed, Arc::clone(&shared.buffer)))
    }

    /// Commits pending writes now (no-op when there are none).
    pub fn force_commit(&self) -> Result<()> {
        let core = &self.handle.core;
        let mut writer = core.lock_writer()?;
        core.usable()?;
        core.commit_locked(&mut writer, false)
    }

    /// Writes a consistent copy of the database, as of a commit made by this call, to `w`;
    /// returns the bytes written. Writers and readers carry on meanwhile.
    pub fn snapshot(&self, w: &mut dyn std::io::Write) -> Result<u64> {
        self.force_commit()?;
        let committed = self.handle.core.committed()?;
        Ok(committed.tx().write_to(w)?)
    }

    /// A consistent snapshot of the database as of a commit made by this call, to be written
    /// out with [`Snapshot::write_to`] while writers carry on (the pages it shows stay
    /// allocated until it is dropped). Its size is known before writing (etcd's Maintenance
    /// `Snapshot` reports the bytes remaining as it streams).
    pub fn begin_snapshot(&self) -> Result<Snapshot> {
        self.force_commit()?;
        Ok(Snapshot(self.handle.core.committed()?))
    }

    /// Online defragmentation; see the module doc.
    pub fn defrag(&self) -> Result<()> {
        self.handle.core.defrag()
    }

    /// Replaces the whole database with the bbolt file at `src`, which is renamed over it
    /// (etcd installs a snapshot received from the leader this way). Readers already open
    /// keep the old contents; new ones see the new file. `src` must be on the same file
    /// system, complete and synced; one that does not open is refused and the
    /// database is left as it was.
    pub fn replace_with(&self, src: &Path) -> Result<()> {
        self.handle.core.replace_with(src)
    }

    /// Size of the database in bytes as of the last commit or defrag: its high water mark ×
    /// page size (etcd's `Size()`, bbolt's `Tx.Size()`; the file itself may be longer).
    pub fn size(&self) -> u64 {
        self.handle.core.size_bytes.load(Ordering::Relaxed)
    }

    /// Bytes in use as of the last commit or defrag: (high water − free pages) × page size,
    /// etcd's `SizeInUse`.
    pub fn size_in_use(&self) -> u64 {
        self.handle.core.size_in_use_bytes.load(Ordering::Relaxed)
    }

    /// Commits made since open.
    pub fn commits(&self) -> u64 {
        self.handle.core.commits.load(Ordering::Relaxed)
    }

    pub fn path(&self) -> &Path {
        &self.handle.core.cfg.path
    }

    pub fn config(&self) -> &BackendConfig {
        &self.handle.core.cfg
    }

    /// Commits pending writes, stops the background thread and releases the file (once no
    /// reader still holds a snapshot of it). Later calls on any clone return
    /// [`Error::Closed`]; closing twice is a no-op.
    pub fn close(&self) -> Result<()> {
        self.handle.close()
    }
}

impl Handle {
    fn close(&self) -> Result<()> {
        let ticker = self.ticker.lock().map_err(|_| self.core.poisoned())?.take();
        if let Some(ticker) = ticker {
            ticker.stop();
        }
        self.core.close()
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        // A failed commit is already recorded as the backend's failure; there is no one left
        // to report it to.
        let _ = self.close();
    }
}

impl Ticker {
    fn start(core: Arc<Core>, interval: Duration) -> Result<Ticker> {
        let (stop, stopped) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("oxcd-backend-commit".into())
            .spawn(move || loop {
                match stopped.recv_timeout(interval) {
                    Err(RecvTimeoutError::Timeout) => {}
                    Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
                }
                // A panic here is the engine refusing to go on after a failed fdatasync; it
                // must fail the backend, not just end this thread.
                let commit = panic::catch_unwind(AssertUnwindSafe(|| core.commit_if_pending()));
                match commit {
                    Ok(Ok(())) => {}
                    // Closed or failed: nothing more to commit, ever.
                    Ok(Err(_)) => return,
                    Err(_) => {
                        core.fail("the background commit panicked".into());
                        return;
                    }
                }
            })
            .map_err(|e| Error::io(&std::path::PathBuf::from("<backend commit thread>"), e))?;
        Ok(Ticker { stop, thread })
    }

    fn stop(self) {
        // The receiver may already be gone if the thread stopped on a failure.
        let _ = self.stop.send(());
        // The thread catches its panics (see `start`), so there is nothing to report here.
        let _ = self.thread.join();
    }
}

impl Core {
    /// `Err` once closed or failed.
    fn usable(&self) -> Result<()> {
        if let Some(reason) = self.failure.get() {
            return Err(Error::Failed {
                reason: reason.clone(),
            });
        }
        if self.writer.is_poisoned() {
            return Err(self.poisoned());
        }
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        Ok(())
    }

    /// Records the backend's failure (the first one wins) and returns it as an error.
    fn fail(&self, reason: String) -> Error {
        let reason = self.failure.get_or_init(|| reason).clone();
        Error::Failed { reason }
    }

    /// The error for a lock poisoned by a panic, which fails the backend.
    fn poisoned(&self) -> Error {
        self.fail("a thread panicked while holding a backend lock".into())
    }

    fn lock_writer(&self) -> Result<MutexGuard<'_, Writer>> {
        self.writer.lock().map_err(|_| self.poisoned())
    }

    fn read_shared(&self) -> Result<RwLockReadGuard<'_, Shared>> {
        self.shared.read().map_err(|_| self.poisoned())
    }

    /// Replaces the read side; returns the old one so the caller drops it outside the lock.
    fn swap_shared(
        &self,
        committed: Option<Arc<Committed>>,
        buffer: Arc<ReadBuffer>,
    ) -> Result<Shared> {
        let mut shared = self.shared.write().map_err(|_| self.poisoned())?;
        Ok(std::mem::replace(
            &mut *shared,
            Shared { committed, buffer },
        ))
    }

    /// The last committed snapshot.
    fn committed(&self) -> Result<Arc<Committed>> {
        self.usable()?;
        self.read_shared()?.committed.clone().ok_or(Error::Closed)
    }

    fn commit_if_pending(&self) -> Result<()> {
        let mut writer = self.lock_writer()?;
        self.usable()?;
        if writer.pending() > 0 {
            self.commit_locked(&mut writer, false)?;
        }
        Ok(())
    }

    /// Updates `size()` and `size_in_use()`. Called by the writer between a commit and the
    /// next `begin_write`. Statistics only: on error the previous values stand.
    fn refresh_sizes(&self, db: &Db) {
        if let Ok(info) = db.info() {
            // etcd: Tx.Size() − FreePageN × page size; pages pending release count as in use.
            let free_bytes = info.free_page_count * u64::from(info.page_size);
            let high_water_bytes = info.high_water_pgid * u64::from(info.page_size);
            // etcd's Size() is bbolt's Tx.Size(): the high water mark, not the file length
            // (which runs ahead of it by the engine's growth step); quotas compare with it.
            self.size_bytes.store(high_water_bytes, Ordering::Relaxed);
            self.size_in_use_bytes.store(
                high_water_bytes.saturating_sub(free_bytes),
                Ordering::Relaxed,
            );
        }
    }

    fn close(&self) -> Result<()> {
        let mut writer = self.lock_writer()?;
        if self.closed.load(Ordering::Acquire) {
            return Ok(());
        }
        let result = match self.usable() {
            Ok(()) => self.commit_locked(&mut writer, true),
            Err(e) => Err(e),
        };
        writer.release();
        self.closed.store(true, Ordering::Release);
        // Drop our snapshot; the file closes when the last reader lets go of its own.
        let old = self.swap_shared(None, Arc::new(ReadBuffer::default()));
        drop(old);
        result
    }
}

/// A consistent copy of the database being taken; see [`Backend::begin_snapshot`].
pub struct Snapshot(Arc<Committed>);

impl Snapshot {
    /// The bytes [`Snapshot::write_to`] writes.
    pub fn size_bytes(&self) -> u64 {
        self.0.tx().size_bytes()
    }

    /// Writes the copy to `w`; returns the bytes written.
    pub fn write_to(&self, w: &mut dyn std::io::Write) -> Result<u64> {
        Ok(self.0.tx().write_to(w)?)
    }
}
