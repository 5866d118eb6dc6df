//! Rebuilding the store's memory from the backend at open (etcd's `store.restore`).
//!
//! Reads from `meta`: `finishedCompactRev` (the compaction revision), `scheduledCompactRev`
//! (a compaction to resume if above it), `consistent_index` and `term`. Then walks the `key`
//! bucket once in revision order over borrowed bytes (etcd copies it in chunks of 10,000
//! entries; a borrowed walk holds no values at all), decoding only the fields the
//! index needs, feeding the tree index and tracking which live keys carry a lease. The current revision is the last revision seen (1 for an empty bucket), raised to
//! the compaction revision when compaction removed every newer entry, as etcd does.
//!
//! Validates everything it reads: a malformed revision key, an undecodable `KeyValue`, a
//! `meta` value of the wrong size, or records out of revision order are
//! [`MvccError::Corrupted`]. Runs before the store is shared, so it takes no store lock.

use oxcd_engine::backend::Backend;

use super::error::MvccError;
use super::index::{IndexBuilder, RestoredRecord, TreeIndex};
use super::revision::{BucketKey, Revision};
use super::store::RevState;
use crate::schema;

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

    let mut index = IndexBuilder::default();
    let mut key_leases = std::collections::BTreeMap::new();
    let mut current_rev = 1;
    let mut last_revision: Option<Revision> = None;
    // One pass over the bucket with borrowed bytes: no copy of any value, and only the
    // fields the index needs are decoded (a million keys restore in well under a second).
    tx.for_each::<MvccError>(schema::KEY, |bucket_key, value| {
        let bucket_key = BucketKey::decode(bucket_key)?;
        if last_revision.is_some_and(|last| bucket_key.revision <= last) {
            return Err(MvccError::corrupted(format!(
                "key bucket records out of revision order at {}",
                bucket_key.revision
            )));
        }
        last_revision = Some(bucket_key.revision);
        let fields = IndexFields::decode(value)?;
        restore_record(&mut index, &bucket_key, &fields);
        if bucket_key.tombstone || fields.lease == 0 {
            if !key_leases.is_empty() {
                key_leases.remove(fields.key);
            }
        } else {
            key_leases.insert(fields.key.to_vec(), fields.lease);
        }
        current_rev = bucket_key.revision.main;
        Ok(())
    })?;
    let index = index.build().map_err(|(key, revision, e)| {
        MvccError::corrupted(format!(
            "key bucket record {revision} of key {:?}: {e}",
            String::from_utf8_lossy(&key)
        ))
    })?;
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

fn restore_record(index: &mut IndexBuilder, bucket_key: &BucketKey, kv: &IndexFields<'_>) {
    index.restore(RestoredRecord {
        key: kv.key,
        revision: bucket_key.revision,
        tombstone: bucket_key.tombstone,
        create_revision: kv.create_revision,
        version: kv.version,
    });
}

/// The fields of a stored `mvccpb.KeyValue` the index and lessor need, borrowed from the
/// record: key (1), create_revision (2), version (4), lease (6). The value (5) and
/// mod_revision (3) are skipped, not copied. Same wire rules as prost's decoder: a field may
/// repeat (the last wins), unknown fields are skipped, a bad tag or length is an error.
#[derive(Debug, Default, PartialEq, Eq)]
struct IndexFields<'a> {
    key: &'a [u8],
    create_revision: i64,
    version: i64,
    lease: i64,
}

impl<'a> IndexFields<'a> {
    fn decode(mut buf: &'a [u8]) -> Result<IndexFields<'a>, MvccError> {
        use prost::encoding::{decode_key, decode_varint, skip_field, DecodeContext, WireType};
        let mut fields = IndexFields::default();
        while !buf.is_empty() {
            let (tag, wire_type) = decode_key(&mut buf)?;
            match (tag, wire_type) {
                (1, WireType::LengthDelimited) => {
                    let len = usize::try_from(decode_varint(&mut buf)?)
                        .ok()
                        .filter(|&len| len <= buf.len())
                        .ok_or_else(|| MvccError::corrupted("bad mvccpb.KeyValue: key length"))?;
                    let (key, rest) = buf.split_at(len);
                    fields.key = key;
                    buf = rest;
                }
                (2, WireType::Varint) => fields.create_revision = decode_varint(&mut buf)? as i64,
                (4, WireType::Varint) => fields.version = decode_varint(&mut buf)? as i64,
                (6, WireType::Varint) => fields.lease = decode_varint(&mut buf)? as i64,
                _ => skip_field(wire_type, tag, &mut buf, DecodeContext::default())?,
            }
        }
        Ok(fields)
    }
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

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::IndexFields;
    use crate::pb::mvccpb::KeyValue;

    #[test]
    fn index_fields_agree_with_prosts_decoder() {
        // Proves the borrowed decoder reads key, create revision, version and lease exactly as
        // a full decode does, skipping the value, for empty and negative fields too.
        let cases = [
            KeyValue::default(),
            KeyValue {
                key: b"k".to_vec(),
                create_revision: 7,
                mod_revision: 9,
                version: 3,
                value: vec![0xAB; 300],
                lease: -5,
            },
            KeyValue {
                key: vec![0; 70_000],
                value: Vec::new(),
                lease: i64::MAX,
                ..KeyValue::default()
            },
        ];
        for kv in cases {
            let bytes = kv.encode_to_vec();
            let fields = IndexFields::decode(&bytes).unwrap();
            assert_eq!(fields.key, kv.key.as_slice());
            assert_eq!(
                (fields.create_revision, fields.version, fields.lease),
                (kv.create_revision, kv.version, kv.lease)
            );
            for cut in 1..bytes.len().min(40) {
                let _ = IndexFields::decode(&bytes[..cut]);
            }
        }
        assert!(IndexFields::decode(&[0x0a, 0x05, b'a']).is_err());
    }
}
