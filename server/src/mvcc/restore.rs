//! Rebuilding the store's memory from the backend at open (etcd's `store.restore`).
//!
//! Reads from `meta`: `finishedCompactRev` (the compaction revision), `scheduledCompactRev`
//! (a compaction to resume if above it), `consistent_index` and `term`. Then walks the `key`
//! bucket in revision order, in chunks of [`RESTORE_CHUNK_KEYS`] entries so no more than one
//! chunk of values is held at a time, feeding the tree index and tracking which live keys carry
//! a lease. The current revision is the last revision seen (1 for an empty bucket), raised to
//! the compaction revision when compaction removed every newer entry, as etcd does.
//!
//! Validates everything it reads: a malformed revision key, an undecodable `KeyValue`, a
//! `meta` value of the wrong size, or records out of revision order are
//! [`MvccError::Corrupted`]. Runs before the store is shared, so it takes no store lock.

use oxcd_engine::backend::Backend;
use prost::Message;

use super::error::MvccError;
use super::index::{RestoredRecord, TreeIndex};
use super::revision::{BucketKey, Revision, REVISION_BYTES_LEN};
use super::store::RevState;
use crate::pb::mvccpb::KeyValue;
use crate::schema;

/// etcd's `restoreChunkKeys`: `key` bucket entries read per chunk.
pub const RESTORE_CHUNK_KEYS: usize = 10_000;

/// What [`restore`] rebuilt.
pub(super) struct Restored {
    pub(super) index: TreeIndex,
    pub(super) state: RevState,
    /// `scheduledCompactRev` when it is above `finishedCompactRev`: a compaction to resume.
    pub(super) scheduled_compact_rev: Option<i64>,
    /// Live keys with a lease, in key order.
    pub(super) key_leases: Vec<(Vec<u8>, i64)>,
}

pub(super) fn restore(backend: &Backend) -> Result<Restored, MvccError> {
    let tx = backend.read_tx()?;
    let meta_rev = |name: &[u8]| -> Result<Option<i64>, MvccError> {
        match tx.get(schema::META, name)? {
            None => Ok(None),
            Some(bytes) => Ok(Some(Revision::decode(bytes)?.main)),
        }
    };
    let finished = meta_rev(schema::META_FINISHED_COMPACT)?;
    let scheduled = meta_rev(schema::META_SCHEDULED_COMPACT)?;
    let consistent_index = meta_u64(tx.get(schema::META, schema::META_CONSISTENT_INDEX)?)?;
    let term = meta_u64(tx.get(schema::META, schema::META_TERM)?)?;
    let compact_rev = finished.unwrap_or(-1);

    let mut index = TreeIndex::new();
    let mut key_leases = std::collections::BTreeMap::new();
    let mut current_rev = 1;
    let mut start = Revision::new(1, 0).encode().to_vec();
    let end = Revision::new(i64::MAX, i64::MAX).encode();
    loop {
        let chunk = tx.range(schema::KEY, &start, Some(&end), RESTORE_CHUNK_KEYS)?;
        let Some((last_key, _)) = chunk.last() else {
            break;
        };
        for (bucket_key, value) in &chunk {
            let bucket_key = BucketKey::decode(bucket_key)?;
            let kv = KeyValue::decode(*value)?;
            restore_record(&mut index, &bucket_key, &kv)?;
            if bucket_key.tombstone || kv.lease == 0 {
                key_leases.remove(&kv.key);
            } else {
                key_leases.insert(kv.key, kv.lease);
            }
            current_rev = bucket_key.revision.main;
        }
        if chunk.len() < RESTORE_CHUNK_KEYS {
            break;
        }
        let last = Revision::decode(&last_key[..REVISION_BYTES_LEN])?;
        start = Revision::new(last.main, last.sub + 1).encode().to_vec();
    }
    Ok(Restored {
        index,
        state: RevState {
            current_rev: current_rev.max(compact_rev),
            compact_rev,
            consistent_index,
            term,
        },
        scheduled_compact_rev: scheduled.filter(|&rev| rev > compact_rev),
        key_leases: key_leases.into_iter().collect(),
    })
}

fn restore_record(
    index: &mut TreeIndex,
    bucket_key: &BucketKey,
    kv: &KeyValue,
) -> Result<(), MvccError> {
    let record = RestoredRecord {
        key: &kv.key,
        revision: bucket_key.revision,
        tombstone: bucket_key.tombstone,
        create_revision: kv.create_revision,
        version: kv.version,
    };
    index.restore(record).map_err(|e| {
        MvccError::corrupted(format!(
            "key bucket record {} of key {:?}: {e}",
            bucket_key.revision,
            String::from_utf8_lossy(&kv.key)
        ))
    })
}

/// An 8-byte big-endian `meta` value; a missing one is 0.
fn meta_u64(bytes: Option<&[u8]>) -> Result<u64, MvccError> {
    match bytes {
        None => Ok(0),
        Some(bytes) => {
            let array: [u8; 8] = bytes.try_into().map_err(|_| {
                MvccError::corrupted(format!("meta value of {} bytes, want 8", bytes.len()))
            })?;
            Ok(u64::from_be_bytes(array))
        }
    }
}
