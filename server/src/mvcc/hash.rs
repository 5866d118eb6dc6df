//! HashKV (etcd 3.4's `store.HashByRev`): a CRC-32C of the key space's history up to a
//! revision, computed exactly as etcd computes it, so equal histories hash equal across oxcd
//! and etcd and across members.
//!
//! The hash at revision `rev` (0: the current revision), with compaction revision `C`:
//!
//! 1. start a CRC-32C (Castagnoli) and feed it the bucket name `key`;
//! 2. let `keep` = the revisions a compaction at `rev` would keep (per key, the newest
//!    revision at or below `rev` of the generation alive at `rev`; never a tombstone), taken
//!    from the index without changing it;
//! 3. for every `key` bucket entry in key (= revision) order, skip it if its revision is above
//!    `rev`; skip it if its revision is at or below `C` and `keep` is non-empty and does not
//!    hold it (it is, or will be, deleted by the compaction at `C`); otherwise feed the
//!    entry's key bytes (17 or 18) then its value bytes.
//!
//! The `keep` set is computed at `rev`, not at `C`, and the "non-empty" condition is etcd's:
//! an empty `keep` lets every entry at or below `C` still on disk through. Both are reproduced
//! on purpose. Errors: [`MvccError::Compacted`] when `0 < rev <= C`,
//! [`MvccError::FutureRev`] when `rev` is above the current revision.
//!
//! One difference in how, not what: etcd walks its committed data and then its uncommitted
//! write buffer, so while writes are uncommitted its byte order (and hash) can differ from the
//! key-order walk. Once they are committed (etcd commits every 100 ms) the two agree; this walk
//! is always in key order, which is that committed answer.

use super::error::MvccError;
use super::revision::{Revision, REVISION_BYTES_LEN};
use super::store::Store;
use super::view::ReadView;
use crate::schema;

/// The answer to HashKV.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HashKv {
    /// The CRC-32C described in the module doc.
    pub hash: u32,
    /// The store's current revision (the response header's revision).
    pub current_rev: i64,
    /// The compaction revision (-1 when never compacted).
    pub compact_rev: i64,
}

impl Store {
    /// HashKV at `rev`; see the module doc.
    pub fn hash_kv(&self, rev: i64) -> Result<HashKv, MvccError> {
        let view = self.inner().read_view()?;
        let (current_rev, compact_rev) = (view.rev(), view.first_rev());
        if rev > 0 && rev <= compact_rev {
            return Err(MvccError::Compacted);
        }
        if rev > current_rev {
            return Err(MvccError::FutureRev);
        }
        let rev = if rev == 0 { current_rev } else { rev };
        let keep = self.inner().index_read()?.keep(rev);
        let upper = Revision::new(rev + 1, 0);
        let lower = Revision::new(compact_rev + 1, 0);
        let mut crc = crc32c::crc32c(schema::KEY);
        view.for_each_key_entry(|key, value| {
            let revision = entry_revision(key)?;
            if revision >= upper {
                return Ok(());
            }
            if revision < lower && !keep.is_empty() && !keep.contains(&revision) {
                return Ok(());
            }
            crc = crc32c::crc32c_append(crc, key);
            crc = crc32c::crc32c_append(crc, value);
            Ok(())
        })?;
        Ok(HashKv {
            hash: crc,
            current_rev,
            compact_rev,
        })
    }
}

/// The revision of a `key` bucket entry (its first 17 bytes, as etcd's `bytesToRev`).
fn entry_revision(key: &[u8]) -> Result<Revision, MvccError> {
    if key.len() < REVISION_BYTES_LEN {
        return Err(MvccError::corrupted(format!(
            "key bucket entry of {} bytes",
            key.len()
        )));
    }
    Ok(Revision::decode(&key[..REVISION_BYTES_LEN])?)
}
