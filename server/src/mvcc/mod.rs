//! Multi-version concurrency control as etcd does it: every change to the key space gets a
//! revision, every version of every key is kept under its revision until compaction, and reads
//! name the revision they see.
//!
//! The pure, in-memory half (no I/O, no locking, no gRPC):
//!
//! * [`revision`]: [`Revision`] and the 17/18-byte keys of the `key` bucket ([`BucketKey`]);
//! * [`key_index`]: one key's generations of revisions ([`KeyIndex`]);
//! * [`index`]: the tree index over all keys ([`TreeIndex`]) with etcd's range forms
//!   ([`KeyRange`]), watch catch-up, batched compaction and the rebuild from the `key` bucket.
//!
//! The store, which joins the index to the backend's `key` and `meta` buckets:
//!
//! * [`store`]: [`Store`] (open and restore, revisions, consistent index, compaction entry);
//! * [`view`] and [`write`]: read views ([`StoreRead`]) and write transactions
//!   ([`StoreWrite`]), both [`ReadView`]s;
//! * `compact`, `hash`, `restore`: the compactor thread, HashKV, the rebuild at open;
//! * [`error`]: [`MvccError`], every error of the module under etcd's names.
//!
//! The KV requests on top, with etcd's applier semantics over the `etcdserverpb` types:
//!
//! * [`kv`]: Range, Put, DeleteRange ([`kv::range`], [`kv::put`], [`kv::delete_range`]);
//! * [`txn`]: Txn with compares and nested txns ([`txn::apply_txn`], [`txn::read_only_txn`]);
//! * [`check`]: the request checks etcd's KV service makes before raft;
//! * `gosort`: Go's `sort.Sort`, so sorted ranges order ties as etcd does;
//! * [`watch`]: the event hub and history reads watchers are served from.

pub mod check;
pub mod compact;
pub mod error;
mod gosort;
mod hash;
pub mod index;
pub mod key_index;
pub mod kv;
mod restore;
pub mod revision;
pub mod store;
pub mod txn;
pub mod view;
pub mod watch;
pub mod write;

#[cfg(test)]
mod index_model_tests;
#[cfg(test)]
mod index_tests;
#[cfg(test)]
mod key_index_tests;
#[cfg(test)]
mod kv_tests;
#[cfg(test)]
mod store_model_tests;
#[cfg(test)]
mod store_tests;

pub use compact::CompactionWait;
pub use error::MvccError;
pub use hash::HashKv;
pub use index::{prefix_range_end, CompactCursor, KeyRange, RestoredRecord, TreeIndex};
pub use key_index::{Generation, IndexError, KeyIndex, KeyRevision};
pub use kv::{LeaseLookup, NoLeases};
pub use revision::{BucketKey, Revision, RevisionKeyError};
pub use store::{Store, StoreConfig};
pub use view::{RangeOptions, RangeResult, ReadView, StoreRead};
pub use write::{Change, ChangeKind, StoreWrite, WriteOutcome};
