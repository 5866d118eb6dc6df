//! The batch transaction (etcd's `batchTxBuffered`): the one long-lived engine `WriteTx`, the
//! guard that lends it out one session at a time, and the commit that swaps in a new one.
//!
//! Invariants, all under the batch mutex:
//! - while open and not failed, `tx` is `Some` between sessions;
//! - `pending` counts the operations in `tx` (0 right after a commit); `session` is empty
//!   between sessions, so every pending write has been published to readers before a commit.
//!
//! Buckets are looked up by name on every operation: the engine's `WriteTx` caches its open
//! buckets by name, so this is one hash lookup, and no id can outlive a bucket delete.

use std::sync::atomic::Ordering;
use std::sync::{Arc, MutexGuard};

use super::buffer::{merge, range_is_empty, ReadBuffer, WriteBuffer};
use super::read::{cursor_source, successor, Committed, KeyValues};
use super::{Core, Error, Result, SEQ_FILL_PERCENT};
use crate::{BucketId, Db, TxRead, WriteTx};

/// The writer's state, behind the batch mutex.
pub(super) struct Writer {
    /// `None` once closed.
    db: Option<Db>,
    tx: Option<WriteTx>,
    pending: usize,
    session: WriteBuffer,
}

impl Writer {
    pub(super) fn new(db: Db) -> Writer {
        Writer {
            db: Some(db),
            tx: None,
            pending: 0,
            session: WriteBuffer::default(),
        }
    }

    pub(super) fn pending(&self) -> usize {
        self.pending
    }

    pub(super) fn db(&self) -> Result<Db> {
        self.db.clone().ok_or(Error::Closed)
    }

    /// Begins the batch transaction on the current file.
    pub(super) fn begin(&mut self) -> Result<()> {
        debug_assert!(self.tx.is_none() && self.pending == 0);
        self.tx = Some(self.db()?.begin_write()?);
        Ok(())
    }

    /// Points the writer at a new file (after defrag); `begin` must follow.
    pub(super) fn replace_db(&mut self, db: Db) {
        debug_assert!(self.tx.is_none());
        self.db = Some(db);
    }

    /// Drops the transaction (rolling back anything uncommitted) and the file handle.
    pub(super) fn release(&mut self) {
        self.tx = None;
        self.db = None;
        self.pending = 0;
        self.session = WriteBuffer::default();
    }

    fn tx(&self) -> Result<&WriteTx> {
        self.tx.as_ref().ok_or(Error::Closed)
    }

    fn tx_mut(&mut self) -> Result<&mut WriteTx> {
        self.tx.as_mut().ok_or(Error::Closed)
    }

    /// The bucket to write to, which must exist.
    fn writable_bucket(&self, name: &[u8]) -> Result<BucketId> {
        self.readable_bucket(name)?
            .ok_or_else(|| Error::BucketNotFound {
                name: name.to_vec(),
            })
    }

    fn readable_bucket(&self, name: &[u8]) -> Result<Option<BucketId>> {
        let tx = self.tx()?;
        Ok(tx.bucket(tx.root(), name)?)
    }
}

/// The locked batch transaction. Its reads see its own writes and every earlier session's,
/// committed or not. Dropping it publishes this session's writes to readers and commits if
/// `batch_limit` operations are pending; [`BatchTx::release`] does the same and reports a
/// failed commit.
///
/// Each operation is applied on its own: an error leaves the earlier operations of the
/// session in place (there is no rollback, as in etcd).
pub struct BatchTx<'a> {
    core: &'a Core,
    writer: MutexGuard<'a, Writer>,
    released: bool,
}

impl<'a> BatchTx<'a> {
    pub(super) fn lock(core: &'a Core) -> Result<BatchTx<'a>> {
        let writer = core.lock_writer()?;
        core.usable()?;
        Ok(BatchTx {
            core,
            writer,
            released: false,
        })
    }

    /// Creates a top-level bucket; a no-op if it exists (etcd's `UnsafeCreateBucket`).
    pub fn create_bucket(&mut self, name: &[u8]) -> Result<()> {
        let w = &mut *self.writer;
        let tx = w.tx_mut()?;
        tx.create_bucket_if_not_exists(tx.root(), name)?;
        w.pending += 1;
        Ok(())
    }

    /// Deletes a top-level bucket and everything in it; a no-op if it does not exist.
    pub fn delete_bucket(&mut self, name: &[u8]) -> Result<()> {
        let w = &mut *self.writer;
        let tx = w.tx_mut()?;
        match tx.delete_bucket(tx.root(), name) {
            Ok(()) | Err(crate::Error::BucketNotFound) => {}
            Err(e) => return Err(e.into()),
        }
        w.session.delete_bucket(name);
        w.pending += 1;
        Ok(())
    }

    /// Writes `key = value` into `bucket`, which must exist.
    pub fn put(&mut self, bucket: &[u8], key: &[u8], value: &[u8]) -> Result<()> {
        self.put_with(bucket, key, value, false)
    }

    /// [`BatchTx::put`] for keys that arrive in ascending order (etcd's `UnsafeSeqPut`): pages
    /// of `bucket` split at 90% full for the rest of this transaction, saving space.
    pub fn put_seq(&mut self, bucket: &[u8], key: &[u8], value: &[u8]) -> Result<()> {
        self.put_with(bucket, key, value, true)
    }

    fn put_with(&mut self, bucket: &[u8], key: &[u8], value: &[u8], seq: bool) -> Result<()> {
        let w = &mut *self.writer;
        let id = w.writable_bucket(bucket)?;
        let tx = w.tx_mut()?;
        if seq {
            tx.set_fill_percent(id, SEQ_FILL_PERCENT);
        }
        tx.put(id, key, value)?;
        w.session.put(bucket, key, value);
        w.pending += 1;
        Ok(())
    }

    /// Deletes `key` from `bucket`, which must exist; a missing key is not an error.
    pub fn delete(&mut self, bucket: &[u8], key: &[u8]) -> Result<()> {
        let w = &mut *self.writer;
        let id = w.writable_bucket(bucket)?;
        w.tx_mut()?.delete(id, key)?;
        w.session.delete(bucket, key);
        w.pending += 1;
        Ok(())
    }

    /// The value of `key` in `bucket`; `None` if either is missing.
    pub fn get(&self, bucket: &[u8], key: &[u8]) -> Result<Option<&[u8]>> {
        let Some(id) = self.writer.readable_bucket(bucket)? else {
            return Ok(None);
        };
        Ok(self.writer.tx()?.get(id, key)?)
    }

    /// Keys in `[start, end)` of `bucket` with their values, in key order, at most `limit`
    /// of them (0 = no limit). `end` `None` or empty means the single key `start` (etcd's
    /// rule). A missing bucket reads as empty.
    pub fn range(
        &self,
        bucket: &[u8],
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
    ) -> Result<KeyValues<'_>> {
        let single;
        let end = match end {
            Some(end) if !end.is_empty() => end,
            _ => {
                single = successor(start);
                &single
            }
        };
        let mut out = Vec::new();
        self.visit(bucket, start, Some(end), limit, |k, v| {
            out.push((k, v));
            Ok::<_, Error>(true)
        })?;
        Ok(out)
    }

    /// Calls `f` on every key of `bucket` in order; stops at the first error and returns it.
    pub fn for_each<E: From<Error>>(
        &self,
        bucket: &[u8],
        mut f: impl FnMut(&[u8], &[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        self.visit(bucket, b"", None, 0, |k, v| f(k, v).map(|()| true))
    }

    fn visit<'t, E: From<Error>>(
        &'t self,
        bucket: &[u8],
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
        visit: impl FnMut(&'t [u8], &'t [u8]) -> Result<bool, E>,
    ) -> Result<(), E> {
        if range_is_empty(start, end) {
            return Ok(());
        }
        let Some(id) = self.writer.readable_bucket(bucket)? else {
            return Ok(());
        };
        let source = cursor_source(self.writer.tx()?, id, start, end)?;
        merge(vec![source], limit, visit)
    }

    /// Write operations in the transaction not yet committed, this session's included.
    pub fn pending(&self) -> usize {
        self.writer.pending
    }

    /// Ends the session like dropping the guard, but returns a commit failure.
    pub fn release(mut self) -> Result<()> {
        self.released = true;
        self.finish()
    }

    /// Publishes the session to readers, then commits if the batch is full.
    fn finish(&mut self) -> Result<()> {
        let session = std::mem::take(&mut self.writer.session);
        if !session.is_empty() {
            // Only the writer replaces the buffer, and it holds the batch mutex: building the
            // next buffer outside the write lock cannot lose a concurrent update.
            let current = Arc::clone(&self.core.read_shared()?.buffer);
            let next = Arc::new(current.with_writes(session));
            let mut shared = self.core.shared.write().map_err(|_| self.core.poisoned())?;
            let old = std::mem::replace(&mut shared.buffer, next);
            drop(shared);
            drop(old);
        }
        let pending = self.writer.pending;
        if pending > 0 && pending >= self.core.cfg.batch_limit {
            self.core.commit_locked(&mut self.writer, false)?;
        }
        Ok(())
    }
}

impl Drop for BatchTx<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // The session may be half done; it must never be published or committed.
            self.core.fail("a batch session panicked".into());
            return;
        }
        if !self.released {
            // A failure is recorded as the backend's; the next call reports it.
            let _ = self.finish();
        }
    }
}

impl Core {
    /// Commits the batch transaction if it holds anything, swaps the new committed snapshot
    /// in with an empty read buffer, and (unless `stop`) begins the next transaction. With
    /// `stop` and nothing pending, the empty transaction is rolled back.
    ///
    /// Any failure fails the backend (see the module doc): readers have seen these writes.
    pub(super) fn commit_locked(&self, w: &mut Writer, stop: bool) -> Result<()> {
        assert!(
            w.session.is_empty(),
            "commit inside an unpublished batch session"
        );
        let db = w.db()?;
        if w.pending == 0 {
            if stop {
                w.tx = None;
            }
            return Ok(());
        }
        let pending = std::mem::take(&mut w.pending);
        let Some(tx) = w.tx.take() else {
            return Err(self.fail(format!("{pending} pending writes without a transaction")));
        };
        tx.commit()
            .map_err(|e| self.fail(format!("commit of {pending} writes failed: {e}")))?;
        self.commits.fetch_add(1, Ordering::Relaxed);
        let committed = db
            .begin_read()
            .map_err(|e| self.fail(format!("after commit: {e}")))?;
        let old = self.swap_shared(
            Some(Committed::new(committed)),
            Arc::new(ReadBuffer::default()),
        )?;
        drop(old);
        self.refresh_sizes(&db);
        if !stop {
            w.begin()
                .map_err(|e| self.fail(format!("begin after commit: {e}")))?;
        }
        Ok(())
    }
}
