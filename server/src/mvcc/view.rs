//! Reading the store: range options and results, the [`ReadView`] trait shared by read views
//! and write transactions, and the read view itself ([`StoreRead`], etcd's `storeTxnRead`).
//!
//! A range follows etcd's `rangeKeys`: check the revision asked for against the view's
//! revision ([`MvccError::FutureRev`]) and the live compaction revision
//! ([`MvccError::Compacted`]; reading exactly at the compaction revision is allowed), ask the
//! index which revisions the read sees, then fetch each revision's `mvccpb.KeyValue` from the
//! `key` bucket. Only the index lookup holds the index lock; see `store.rs` for why the
//! compaction re-check under that lock makes the fetch safe.

use std::sync::Arc;

use oxcd_engine::backend::{ConcurrentReadTx, Error as BackendError};
use prost::Message;

use super::error::MvccError;
use super::index::KeyRange;
use super::revision::{BucketKey, Revision};
use super::store::Inner;
use crate::pb::mvccpb::KeyValue;
use crate::schema;

/// What a range reads besides its keys (etcd's `mvcc.RangeOptions`, plus `keys_only`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RangeOptions {
    /// The revision to read at; 0 (or negative) reads at the view's revision.
    pub rev: i64,
    /// At most this many key-values; 0 (or negative) for all. `count` is not limited.
    pub limit: i64,
    /// Return only the count, no key-values.
    pub count_only: bool,
    /// Return key-values without their values.
    pub keys_only: bool,
}

/// The result of a range (etcd's `mvcc.RangeResult`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RangeResult {
    /// The key-values seen, in key order, at most `limit` of them.
    pub kvs: Vec<KeyValue>,
    /// How many keys the range holds at the revision read, whatever the limit.
    pub count: usize,
    /// The view's revision (not the revision read at): what the response header reports.
    pub rev: i64,
}

/// Something ranges can be read from at a fixed revision: a [`StoreRead`], or a
/// [`super::StoreWrite`] (which sees its own changes).
pub trait ReadView {
    /// The revision reads default to (etcd's `Rev()`).
    fn rev(&self) -> i64;
    /// The compaction revision when the view began (etcd's `FirstRev()`).
    fn first_rev(&self) -> i64;
    /// Reads `[key, end)` with etcd's range forms (`end` empty: the single key; `"\0"`: every
    /// key from `key` on).
    fn range(&self, key: &[u8], end: &[u8], opts: &RangeOptions) -> Result<RangeResult, MvccError>;
}

/// A read view at a fixed revision over a backend snapshot. Owns what it needs (`'static`,
/// `Send`), so it can move into another thread or task.
pub struct StoreRead {
    inner: Arc<Inner>,
    tx: ConcurrentReadTx,
    rev: i64,
    first_rev: i64,
}

impl StoreRead {
    pub(super) fn new(
        inner: Arc<Inner>,
        tx: ConcurrentReadTx,
        rev: i64,
        first_rev: i64,
    ) -> StoreRead {
        StoreRead {
            inner,
            tx,
            rev,
            first_rev,
        }
    }
}

impl StoreRead {
    /// The `key` bucket entries in `[start, end)`, copied (history reads for watchers).
    pub(super) fn key_bucket_range(
        &self,
        start: &[u8],
        end: &[u8],
    ) -> Result<Vec<OwnedEntry>, MvccError> {
        Ok(self
            .tx
            .range(schema::KEY, start, Some(end), 0)?
            .into_iter()
            .map(|(k, v)| (k.to_vec(), v.to_vec()))
            .collect())
    }

    /// Calls `visit` on every `key` bucket entry of the view's snapshot, in key order.
    pub(super) fn for_each_key_entry(
        &self,
        mut visit: impl FnMut(&[u8], &[u8]) -> Result<(), MvccError>,
    ) -> Result<(), MvccError> {
        self.tx
            .for_each(schema::KEY, |key, value| {
                visit(key, value).map_err(VisitError)
            })
            .map_err(|VisitError(e)| e)
    }
}

/// A bucket entry copied out of a read transaction: (key, value).
pub(super) type OwnedEntry = (Vec<u8>, Vec<u8>);

/// Carries an [`MvccError`] out of the backend's `for_each`.
struct VisitError(MvccError);

impl From<BackendError> for VisitError {
    fn from(e: BackendError) -> VisitError {
        VisitError(MvccError::Backend(e))
    }
}

impl ReadView for StoreRead {
    fn rev(&self) -> i64 {
        self.rev
    }

    fn first_rev(&self) -> i64 {
        self.first_rev
    }

    fn range(&self, key: &[u8], end: &[u8], opts: &RangeOptions) -> Result<RangeResult, MvccError> {
        range_keys(&self.inner, key, end, self.rev, opts, |bucket_key| {
            Ok(self.tx.get(schema::KEY, bucket_key)?)
        })
    }
}

/// etcd's `rangeKeys` at view revision `cur_rev`; `fetch` reads one `key` bucket entry.
pub(super) fn range_keys<'t>(
    inner: &Inner,
    key: &[u8],
    end: &[u8],
    cur_rev: i64,
    opts: &RangeOptions,
    mut fetch: impl FnMut(&[u8]) -> Result<Option<&'t [u8]>, MvccError>,
) -> Result<RangeResult, MvccError> {
    if opts.rev > cur_rev {
        return Err(MvccError::FutureRev);
    }
    let rev = if opts.rev <= 0 { cur_rev } else { opts.rev };
    if rev < inner.state()?.compact_rev {
        return Err(MvccError::Compacted);
    }
    let range = KeyRange::from_request(key, end);
    let limit = usize::try_from(opts.limit).ok().filter(|&l| l > 0);
    let (revisions, count) = {
        let index = inner.index_read()?;
        let found = if opts.count_only {
            (Vec::new(), index.count(range, rev))
        } else {
            index.revisions(range, rev, limit)
        };
        // Under the index lock: a compaction past `rev` that began after the check above may
        // already have dropped some of what the lookup should have seen.
        if rev < inner.state()?.compact_rev {
            return Err(MvccError::Compacted);
        }
        found
    };
    let mut kvs = Vec::with_capacity(revisions.len());
    let mut bucket_key =
        Vec::with_capacity(BucketKey::new(Revision::default(), false).encoded_len());
    for revision in revisions {
        bucket_key.clear();
        BucketKey::new(revision, false).encode_into(&mut bucket_key);
        let Some(bytes) = fetch(&bucket_key)? else {
            return Err(MvccError::corrupted(format!(
                "the index has revision {revision} but the key bucket does not"
            )));
        };
        let mut kv = KeyValue::decode(bytes)?;
        if opts.keys_only {
            kv.value = Vec::new();
        }
        kvs.push(kv);
    }
    Ok(RangeResult {
        kvs,
        count,
        rev: cur_rev,
    })
}
