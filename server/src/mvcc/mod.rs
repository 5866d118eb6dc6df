//! Multi-version concurrency control as etcd does it: every change to the key space gets a
//! revision, every version of every key is kept under its revision until compaction, and reads
//! name the revision they see.
//!
//! This module owns the pure, in-memory half (no I/O, no locking, no gRPC):
//!
//! * [`revision`]: [`Revision`] and the 17/18-byte keys of the `key` bucket ([`BucketKey`]);
//! * [`key_index`]: one key's generations of revisions ([`KeyIndex`]);
//! * [`index`]: the tree index over all keys ([`TreeIndex`]) with etcd's range forms
//!   ([`KeyRange`]), watch catch-up, batched compaction and the rebuild from the `key` bucket.
//!
//! The store that joins the index to the backend's `key` and `meta` buckets builds on these.

pub mod index;
pub mod key_index;
pub mod revision;

#[cfg(test)]
mod index_model_tests;
#[cfg(test)]
mod index_tests;
#[cfg(test)]
mod key_index_tests;

pub use index::{prefix_range_end, CompactCursor, KeyRange, RestoredRecord, TreeIndex};
pub use key_index::{Generation, IndexError, KeyIndex, KeyRevision};
pub use revision::{BucketKey, Revision, RevisionKeyError};
