//! The compactor: one background thread running scheduled compactions in order (etcd's FIFO
//! scheduler plus `scheduleCompaction`).
//!
//! [`super::Store::compact`] persists `scheduledCompactRev` and raises the compaction
//! revision, then queues the job here. A job:
//!
//! 1. compacts the tree index at the revision, a bounded number of keys per hold of the index
//!    write lock (`index_compaction_batch_keys`), collecting the revisions at or below it that
//!    reads at or after it still see ("keep");
//! 2. walks the `key` bucket entries at or below the revision in batches of
//!    `compaction_batch_limit` (etcd: 1000), one batch transaction each, deleting every entry
//!    whose revision is not kept (tombstones are never kept), committing after each full
//!    batch and pausing `compaction_sleep` (etcd: 10 ms) so writers get the batch transaction;
//! 3. writes `finishedCompactRev` in the same batch transaction as the last deletes.
//!
//! Writers never wait for more than one batch. A stopped store abandons the job between
//! batches; the next open finds `scheduledCompactRev` above `finishedCompactRev` and runs it
//! again (deleting is idempotent). Waiters get the job's result through [`CompactionWait`].

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::error::MvccError;
use super::index::CompactCursor;
use super::revision::{BucketKey, Revision};
use super::store::Inner;
use crate::schema;

/// Reports when one scheduled compaction has finished (etcd's channel closed after a
/// `--physical` compaction).
pub struct CompactionWait {
    done: Receiver<Result<(), String>>,
}

impl CompactionWait {
    /// Blocks until the compaction has finished. [`MvccError::Closed`] if the store stopped
    /// first (the compaction resumes at the next open); [`MvccError::Corrupted`] carrying the
    /// reason if it failed.
    pub fn wait(self) -> Result<(), MvccError> {
        match self.done.recv() {
            Ok(result) => result.map_err(MvccError::corrupted),
            Err(_) => Err(MvccError::Closed),
        }
    }

    /// Like [`Self::wait`] for at most `timeout`; `Ok(false)` if it has not finished yet.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<bool, MvccError> {
        match self.done.recv_timeout(timeout) {
            Ok(result) => result.map(|()| true).map_err(MvccError::corrupted),
            Err(RecvTimeoutError::Timeout) => Ok(false),
            Err(RecvTimeoutError::Disconnected) => Err(MvccError::Closed),
        }
    }
}

struct Job {
    rev: i64,
    done: Sender<Result<(), String>>,
}

/// The compactor thread and its queue.
pub(super) struct Compactor {
    queue: Mutex<Option<Sender<Job>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    stop: Arc<AtomicBool>,
}

impl Compactor {
    pub(super) fn start(inner: Arc<Inner>) -> Result<Compactor, MvccError> {
        let (queue, jobs) = mpsc::channel::<Job>();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("oxcd-mvcc-compactor".into())
            .spawn(move || {
                for job in jobs {
                    if stopping.load(Ordering::Acquire) {
                        return;
                    }
                    match run(&inner, job.rev, &stopping) {
                        // Stopped: dropping `job.done` tells the waiter.
                        Ok(false) => return,
                        Ok(true) => {
                            let _ = job.done.send(Ok(()));
                        }
                        Err(e) => {
                            let _ = job
                                .done
                                .send(Err(format!("compaction at {} failed: {e}", job.rev)));
                        }
                    }
                }
            })
            .map_err(|e| MvccError::corrupted(format!("cannot start the compactor: {e}")))?;
        Ok(Compactor {
            queue: Mutex::new(Some(queue)),
            thread: Mutex::new(Some(thread)),
            stop,
        })
    }

    /// Queues a compaction at `rev`.
    pub(super) fn schedule(&self, rev: i64) -> Result<CompactionWait, MvccError> {
        let (done, wait) = mpsc::channel();
        let queue = self
            .queue
            .lock()
            .map_err(|_| MvccError::Poisoned { what: "compactor" })?;
        let sender = queue.as_ref().ok_or(MvccError::Closed)?;
        sender
            .send(Job { rev, done })
            .map_err(|_| MvccError::Closed)?;
        Ok(CompactionWait { done: wait })
    }

    /// Stops the thread between two batches and waits for it. Idempotent.
    pub(super) fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        if let Ok(mut queue) = self.queue.lock() {
            queue.take();
        }
        let thread = self.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(thread) = thread {
            // The thread returns errors through the waiters; a panic there has no one else to
            // tell, and the store is going away.
            let _ = thread.join();
        }
    }
}

/// Runs one compaction; `Ok(false)` when stopped before the end.
fn run(inner: &Inner, rev: i64, stop: &AtomicBool) -> Result<bool, MvccError> {
    let mut keep = HashSet::new();
    let mut cursor = CompactCursor::new(rev);
    while !cursor.is_finished() {
        if stop.load(Ordering::Acquire) {
            return Ok(false);
        }
        inner.index_write()?.compact_batch(
            &mut cursor,
            inner.cfg.index_compaction_batch_keys,
            &mut keep,
        );
    }
    compact_key_bucket(inner, rev, &keep, stop)
}

/// Step 2 and 3 of the module doc.
fn compact_key_bucket(
    inner: &Inner,
    rev: i64,
    keep: &HashSet<Revision>,
    stop: &AtomicBool,
) -> Result<bool, MvccError> {
    let batch_limit = inner.cfg.compaction_batch_limit.max(1);
    // Every key of main revision `rev` or below sorts before the 8-byte `rev + 1`.
    let end = (rev + 1).to_be_bytes();
    let mut start = Revision::new(0, 0).encode();
    loop {
        let mut tx = inner.backend.batch_tx()?;
        let keys: Vec<Vec<u8>> = tx
            .range(schema::KEY, &start, Some(&end), batch_limit)?
            .into_iter()
            .map(|(key, _)| key.to_vec())
            .collect();
        let mut last = None;
        for key in &keys {
            let bucket_key = BucketKey::decode(key)?;
            if !keep.contains(&bucket_key.revision) {
                tx.delete(schema::KEY, key)?;
            }
            last = Some(bucket_key.revision);
        }
        if keys.len() < batch_limit {
            tx.put(
                schema::META,
                schema::META_FINISHED_COMPACT,
                &Revision::new(rev, 0).encode(),
            )?;
            tx.release()?;
            return Ok(true);
        }
        if let Some(last) = last {
            start = Revision::new(last.main, last.sub + 1).encode();
        }
        tx.release()?;
        // Commit now instead of letting a large compaction's deletes pile up in the buffer.
        inner.backend.force_commit()?;
        if stop.load(Ordering::Acquire) {
            return Ok(false);
        }
        std::thread::sleep(inner.cfg.compaction_sleep);
        if stop.load(Ordering::Acquire) {
            return Ok(false);
        }
    }
}
