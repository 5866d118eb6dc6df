//! Concurrent reads (etcd's `ConcurrentReadTx`): the read buffer merged over the last
//! committed snapshot, and the cursor source both read paths share.
//!
//! A [`ConcurrentReadTx`] owns `Arc`s of both halves, taken together under the backend's read
//! lock, so it is a fixed, consistent view for as long as it lives: later sessions, commits and
//! defrags do not change it. It holds no lock; holding it only keeps the snapshot's pages (and,
//! across a defrag, the old file's mapping) from being reused.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use super::buffer::{merge, range_is_empty, Entry, Lookup, ReadBuffer, Source};
use super::{Error, Result};
use crate::{BucketId, Cursor, ReadTx, TxRead};

/// A committed snapshot, shared by every reader until the next commit, with the ids of the
/// buckets looked up in it (etcd's `readTx.buckets`). The cache is needed, not only faster:
/// the engine's `ReadTx` hands out a new bucket id, a new table entry, for every lookup, so a
/// snapshot shared for a long time would otherwise grow without bound.
pub(super) struct Committed {
    tx: ReadTx,
    buckets: RwLock<HashMap<Vec<u8>, Option<BucketId>>>,
}

impl Committed {
    pub(super) fn new(tx: ReadTx) -> Arc<Committed> {
        Arc::new(Committed {
            tx,
            buckets: RwLock::new(HashMap::new()),
        })
    }

    pub(super) fn tx(&self) -> &ReadTx {
        &self.tx
    }

    /// Top-level bucket `name`. A snapshot never changes, so misses are cached too.
    pub(super) fn bucket(&self, name: &[u8]) -> Result<Option<BucketId>> {
        // The map is changed by single inserts only, so a panic elsewhere cannot leave it
        // inconsistent: a poisoned lock is safe to keep using.
        if let Some(id) = self
            .buckets
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
        {
            return Ok(*id);
        }
        let mut buckets = self.buckets.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(id) = buckets.get(name) {
            return Ok(*id);
        }
        let id = self.tx.bucket(self.tx.root(), name)?;
        buckets.insert(name.to_vec(), id);
        Ok(id)
    }
}

/// Keys with their values, in key order, borrowed from the transaction that read them.
pub type KeyValues<'a> = Vec<(&'a [u8], &'a [u8])>;

/// A consistent read view; see the module doc.
pub struct ConcurrentReadTx {
    committed: Arc<Committed>,
    buffer: Arc<ReadBuffer>,
}

impl ConcurrentReadTx {
    pub(super) fn new(committed: Arc<Committed>, buffer: Arc<ReadBuffer>) -> ConcurrentReadTx {
        ConcurrentReadTx { committed, buffer }
    }

    /// The value of `key` in `bucket`; `None` if either is missing.
    pub fn get(&self, bucket: &[u8], key: &[u8]) -> Result<Option<&[u8]>> {
        match self.buffer.view(bucket).lookup(key) {
            Lookup::Put(value) => Ok(Some(value)),
            Lookup::Deleted => Ok(None),
            Lookup::Unknown => match self.committed.bucket(bucket)? {
                Some(id) => Ok(self.committed.tx().get(id, key)?),
                None => Ok(None),
            },
        }
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
        let mut out = Vec::new();
        match end {
            Some(end) if !end.is_empty() => {
                self.visit(bucket, start, Some(end), limit, |k, v| {
                    out.push((k, v));
                    Ok::<_, Error>(true)
                })?
            }
            _ => {
                let single = successor(start);
                self.visit(bucket, start, Some(&single), 1, |k, v| {
                    out.push((k, v));
                    Ok::<_, Error>(true)
                })?
            }
        }
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

    /// The engine transaction id of the committed snapshot under this view.
    pub fn committed_txid(&self) -> u64 {
        self.committed.tx().txid()
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
        let view = self.buffer.view(bucket);
        let mut sources = view.sources(start, end);
        if !view.hides_committed() {
            if let Some(id) = self.committed.bucket(bucket)? {
                // Last: the committed data is the oldest source.
                sources.push(cursor_source(self.committed.tx(), id, start, end)?);
            }
        }
        merge(sources, limit, visit)
    }
}

/// The smallest key above `key`: `[key, successor(key))` holds `key` alone.
pub(super) fn successor(key: &[u8]) -> Vec<u8> {
    let mut next = Vec::with_capacity(key.len() + 1);
    next.extend_from_slice(key);
    next.push(0);
    next
}

/// The plain key/values of `bucket` in `[start, end)` (`end: None` = to the end) as a merge
/// source. Sub-bucket entries are skipped: the backend stores only top-level buckets.
pub(super) fn cursor_source<'t, 'b, T: TxRead>(
    tx: &'t T,
    bucket: BucketId,
    start: &'b [u8],
    end: Option<&'b [u8]>,
) -> Result<Source<'t, 'b>>
where
    't: 'b,
{
    let cursor = tx.cursor(bucket)?;
    Ok(Box::new(CursorSource {
        cursor,
        start,
        end,
        started: false,
        done: false,
    }))
}

struct CursorSource<'t, 'b> {
    cursor: Cursor<'t>,
    start: &'b [u8],
    end: Option<&'b [u8]>,
    started: bool,
    done: bool,
}

impl<'t> Iterator for CursorSource<'t, '_> {
    type Item = Result<Entry<'t>, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.done {
            let step = if self.started {
                self.cursor.next()
            } else {
                self.started = true;
                self.cursor.seek(self.start)
            };
            match step {
                Err(e) => {
                    self.done = true;
                    return Some(Err(e.into()));
                }
                Ok(None) => self.done = true,
                Ok(Some(item)) if self.end.is_some_and(|end| item.key >= end) => self.done = true,
                Ok(Some(item)) if item.is_bucket => {}
                Ok(Some(item)) => return Some(Ok((item.key, Some(item.value)))),
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The successor bounds a range to exactly one key.
    #[test]
    fn successor_is_next_key() {
        assert_eq!(successor(b"ab"), b"ab\0".to_vec());
        assert!(successor(b"ab").as_slice() > b"ab".as_slice());
        assert!(successor(b"ab").as_slice() < b"ab\0\0".as_slice());
        assert!(successor(b"ab").as_slice() < b"abc".as_slice());
    }

    // A read view can move to another thread and be shared between threads.
    #[test]
    fn read_tx_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<ConcurrentReadTx>();
    }
}
