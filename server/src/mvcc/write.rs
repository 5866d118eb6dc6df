//! The write transaction (etcd's `storeTxnWrite`): one raft entry's changes to the key space.
//!
//! Every change of one [`StoreWrite`] shares the main revision `begin_rev + 1`; the n-th
//! change gets sub revision n. A put stores the key's new `mvccpb.KeyValue` under its revision
//! key in the `key` bucket and adds the revision to the index; a delete stores a tombstone (the
//! 18-byte key ending in `t`, a `KeyValue` holding only the key) and closes the key's
//! generation. Reads inside the transaction see its own changes once it has any (etcd reads at
//! `begin_rev + 1` then).
//!
//! One write may also apply several raft entries in a row ([`StoreWrite::next_entry`]): each
//! entry's changes get their own main revision, all become visible together at `end`, and
//! `meta` records the last entry's index and term. This is how the apply loop publishes a whole
//! batch of committed entries with one backend session instead of one per entry.
//!
//! [`StoreWrite::end`] (or dropping the write: there is no rollback, as in etcd) writes the
//! consistent index and term into `meta` in the same batch session as the data, publishes the
//! session, then raises the current revision if anything changed. A backend error is fatal for
//! the server (the backend refuses further use after a failed commit); the index may then hold
//! changes the disk never will, which only matters until the process exits.

use std::sync::MutexGuard;

use oxcd_engine::backend::BatchTx;
use prost::Message;

use super::error::MvccError;
use super::index::KeyRange;
use super::key_index::IndexError;
use super::revision::{BucketKey, Revision};
use super::store::{Inner, RevState};
use super::view::{range_keys, RangeOptions, RangeResult, ReadView};
use crate::pb::mvccpb::KeyValue;
use crate::schema;

/// Whether a [`Change`] put or deleted its key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeKind {
    Put,
    Delete,
}

/// One change made by a write, for watchers and the lessor (etcd's `Changes()`).
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    pub kind: ChangeKind,
    /// For a put, the key-value as stored. For a delete, the key and, as etcd's watchable
    /// store sets it for delete events, `mod_revision` = the write's main revision.
    pub kv: KeyValue,
}

/// What an ended write did.
#[derive(Clone, Debug, PartialEq)]
pub struct WriteOutcome {
    /// The store's revision after the write: `begin_rev + 1` if anything changed, else
    /// unchanged.
    pub rev: i64,
    /// The changes, in sub-revision order.
    pub changes: Vec<Change>,
}

/// A write transaction; see the module doc. Obtained from [`super::Store::write`].
pub struct StoreWrite<'a> {
    inner: &'a Inner,
    /// `None` once ended.
    tx: Option<BatchTx<'a>>,
    begin_rev: i64,
    first_rev: i64,
    consistent_index: u64,
    term: u64,
    changes: Vec<Change>,
    /// Declared last so it is released last, after the revision is raised.
    _writer: MutexGuard<'a, ()>,
}

impl<'a> StoreWrite<'a> {
    pub(super) fn new(
        inner: &'a Inner,
        writer: MutexGuard<'a, ()>,
        tx: BatchTx<'a>,
        state: RevState,
        consistent_index: u64,
        term: u64,
    ) -> StoreWrite<'a> {
        StoreWrite {
            inner,
            tx: Some(tx),
            begin_rev: state.current_rev,
            first_rev: state.compact_rev,
            consistent_index,
            term,
            changes: Vec::new(),
            _writer: writer,
        }
    }

    /// The store's revision when this write began (etcd's `Rev()` of a write).
    pub fn begin_rev(&self) -> i64 {
        self.begin_rev
    }

    /// The changes so far.
    pub fn changes(&self) -> &[Change] {
        &self.changes
    }

    /// The batch transaction, for other subsystems (lease, auth, membership, alarms) to write
    /// their buckets in the same commit as this entry's data. Never write the `key` bucket or
    /// the `meta` keys of the registry through it.
    pub fn batch_tx(&mut self) -> Result<&mut BatchTx<'a>, MvccError> {
        self.tx.as_mut().ok_or(MvccError::Closed)
    }

    /// Puts `key = value` with `lease` (0: none); returns the write's main revision.
    pub fn put(&mut self, key: &[u8], value: &[u8], lease: i64) -> Result<i64, MvccError> {
        let rev = self.begin_rev + 1;
        let (create_revision, version) = match self.inner.index_read()?.get(key, rev) {
            Ok(seen) => (seen.created.main, seen.version + 1),
            Err(_) => (rev, 1),
        };
        let revision = Revision::new(rev, self.next_sub());
        let kv = KeyValue {
            key: key.to_vec(),
            create_revision,
            mod_revision: rev,
            version,
            value: value.to_vec(),
            lease,
        };
        let tx = self.tx.as_mut().ok_or(MvccError::Closed)?;
        let bucket_key = BucketKey::new(revision, false).encode();
        tx.put_seq(schema::KEY, &bucket_key, &kv.encode_to_vec())?;
        self.inner
            .index_write()?
            .put(key, revision)
            .map_err(|e| index_broken(key, e))?;
        self.changes.push(Change {
            kind: ChangeKind::Put,
            kv,
        });
        Ok(rev)
    }

    /// Deletes every key in `[key, end)` (etcd's range forms) live at the write's read
    /// revision; returns how many, and the revision to report: the write's main revision if
    /// anything changed in the write so far, else the revision it began at.
    pub fn delete_range(&mut self, key: &[u8], end: &[u8]) -> Result<(i64, i64), MvccError> {
        let keys = self
            .inner
            .index_read()?
            .range(KeyRange::from_request(key, end), self.read_rev());
        for (key, _) in &keys {
            self.delete(key)?;
        }
        let deleted = keys.len() as i64;
        if deleted != 0 || !self.changes.is_empty() {
            Ok((deleted, self.begin_rev + 1))
        } else {
            Ok((0, self.begin_rev))
        }
    }

    fn delete(&mut self, key: &[u8]) -> Result<(), MvccError> {
        let rev = self.begin_rev + 1;
        let revision = Revision::new(rev, self.next_sub());
        let stored = KeyValue {
            key: key.to_vec(),
            ..KeyValue::default()
        };
        let tx = self.tx.as_mut().ok_or(MvccError::Closed)?;
        let bucket_key = BucketKey::new(revision, true).encode();
        tx.put_seq(schema::KEY, &bucket_key, &stored.encode_to_vec())?;
        self.inner
            .index_write()?
            .tombstone(key, revision)
            .map_err(|e| index_broken(key, e))?;
        self.changes.push(Change {
            kind: ChangeKind::Delete,
            kv: KeyValue {
                mod_revision: rev,
                ..stored
            },
        });
        Ok(())
    }

    /// Moves on to the next raft entry inside the same write (group apply): the changes so
    /// far keep their revision, the next ones get a new main revision, and `end` records
    /// `consistent_index` and `term` (which must rise) as the last entry applied. Nothing is
    /// visible to readers until `end`, so a caller answers clients only after it. Returns the
    /// previous entry's changes.
    pub fn next_entry(
        &mut self,
        consistent_index: u64,
        term: u64,
    ) -> Result<Vec<Change>, MvccError> {
        if consistent_index != 0 && consistent_index <= self.consistent_index {
            return Err(MvccError::AlreadyApplied {
                index: consistent_index,
                consistent_index: self.consistent_index,
            });
        }
        self.begin_rev = self.read_rev();
        if consistent_index != 0 {
            self.consistent_index = consistent_index;
            self.term = term;
        }
        Ok(std::mem::take(&mut self.changes))
    }

    /// Ends the write; see the module doc. Returns the first error of the meta write, the
    /// publish or the commit it triggered.
    pub fn end(mut self) -> Result<WriteOutcome, MvccError> {
        let rev = self.finish()?;
        Ok(WriteOutcome {
            rev,
            changes: std::mem::take(&mut self.changes),
        })
    }

    /// The revision reads inside the write see (etcd: `beginRev`, `+ 1` once it changed
    /// something).
    fn read_rev(&self) -> i64 {
        if self.changes.is_empty() {
            self.begin_rev
        } else {
            self.begin_rev + 1
        }
    }

    fn next_sub(&self) -> i64 {
        self.changes.len() as i64
    }

    /// Saves the consistent index, publishes, raises the revision. Runs once.
    fn finish(&mut self) -> Result<i64, MvccError> {
        let Some(mut tx) = self.tx.take() else {
            return Ok(self.read_rev());
        };
        let mut result = Ok(());
        if self.consistent_index != 0 {
            result = tx
                .put(
                    schema::META,
                    schema::META_CONSISTENT_INDEX,
                    &self.consistent_index.to_be_bytes(),
                )
                .and_then(|()| tx.put(schema::META, schema::META_TERM, &self.term.to_be_bytes()));
        }
        // Publish even after an error: the index already holds this write's changes.
        let released = tx.release();
        let rev = self.read_rev();
        let mut state = self.inner.state_write()?;
        state.current_rev = rev;
        if self.consistent_index != 0 {
            state.consistent_index = self.consistent_index;
            state.term = self.term;
        }
        drop(state);
        result?;
        released?;
        Ok(rev)
    }
}

impl ReadView for StoreWrite<'_> {
    /// etcd's `storeTxnWrite.Rev()`: the revision the write began at.
    fn rev(&self) -> i64 {
        self.begin_rev
    }

    fn first_rev(&self) -> i64 {
        self.first_rev
    }

    fn range(&self, key: &[u8], end: &[u8], opts: &RangeOptions) -> Result<RangeResult, MvccError> {
        let tx = self.tx.as_ref().ok_or(MvccError::Closed)?;
        range_keys(self.inner, key, end, self.read_rev(), opts, |bucket_key| {
            Ok(tx.get(schema::KEY, bucket_key)?)
        })
    }
}

impl Drop for StoreWrite<'_> {
    fn drop(&mut self) {
        // No rollback exists (as in etcd): a write dropped early ends like `end`. A backend
        // error here is the backend's recorded failure; its next call reports it.
        let _ = self.finish();
    }
}

/// The index refused a change the write made in revision order: a broken invariant of the
/// store (two writers at once, or a corrupt rebuilt index).
fn index_broken(key: &[u8], e: IndexError) -> MvccError {
    MvccError::corrupted(format!(
        "index refused a change of key {:?}: {e}",
        String::from_utf8_lossy(key)
    ))
}
