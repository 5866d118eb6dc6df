//! oxcd-engine: a hand-written, memory-mapped, copy-on-write B+tree that reads and writes
//! bbolt 1.3.x files byte for byte, and etcd's batched backend on top of it.
//!
//! The file format is described in `engine/FORMAT.md`; the design (transactions, remapping,
//! the freelist, the backend) in the repository's `DESIGN.md`. The engine knows nothing of
//! etcd beyond the backend's batching rules.

mod check;
mod commit;
mod compact;
mod cursor;
mod db;
mod error;
mod freelist;
pub mod layout;
mod meta;
mod node;
mod page;
mod rtx;
mod stats;
mod wtx;

pub mod backend;

pub use compact::{compact, CompactOptions};
pub use cursor::{Cursor, Item};
pub use db::{Db, DbInfo, Options};
pub use error::{Corruption, Error, Result};
pub use meta::Meta;
pub use rtx::ReadTx;
pub use stats::{BucketStats, PageInfo, PageKind};
pub use wtx::{CursorMut, WriteTx};

/// A handle to a bucket, valid only inside the transaction that returned it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BucketId(pub(crate) u32);

/// Reading, common to read and write transactions.
pub trait TxRead {
    /// The root bucket, which holds only buckets.
    fn root(&self) -> BucketId;
    /// Sub-bucket `name` of `parent`, if it exists.
    fn bucket(&self, parent: BucketId, name: &[u8]) -> Result<Option<BucketId>>;
    /// The value of `key`; None if missing or if `key` names a sub-bucket.
    fn get(&self, bucket: BucketId, key: &[u8]) -> Result<Option<&[u8]>>;
    /// An ordered cursor over `bucket`.
    fn cursor(&self, bucket: BucketId) -> Result<Cursor<'_>>;
    /// The bucket's sequence counter.
    fn sequence(&self, bucket: BucketId) -> Result<u64>;
    /// bbolt's Bucket.Stats for `bucket` and everything below it.
    fn bucket_stats(&self, bucket: BucketId) -> Result<BucketStats>;

    /// The bucket at `path` from the root, if every step exists.
    fn bucket_path(&self, path: &[&[u8]]) -> Result<Option<BucketId>> {
        let mut b = self.root();
        for name in path {
            match self.bucket(b, name)? {
                Some(child) => b = child,
                None => return Ok(None),
            }
        }
        Ok(Some(b))
    }
}
