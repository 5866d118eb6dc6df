//! The errors of the MVCC store and of the KV requests applied to it.
//!
//! One enum for the whole module, because a request applied through the store can fail for a
//! store reason (a compacted revision) or a request reason (a missing key under
//! `ignore_value`) and the API layer maps both through one table. Each client-visible variant is
//! named after the etcd error variable it stands for (its doc says which) and displays etcd's
//! exact text, which clients match on; the API layer turns each into the gRPC status etcd's
//! `v3rpc/util.go` gives that variable. Internal failures (backend, corruption, closed) come
//! last.

use oxcd_engine::backend;

use super::revision::RevisionKeyError;

/// Why a store or KV operation failed. See the module doc.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum MvccError {
    /// etcd `mvcc.ErrCompacted`: the revision asked for is below the compaction revision (or,
    /// for `compact`, at or below it).
    #[error("mvcc: required revision has been compacted")]
    Compacted,
    /// etcd `mvcc.ErrFutureRev`: the revision asked for is above the current revision.
    #[error("mvcc: required revision is a future revision")]
    FutureRev,
    /// etcd `etcdserver.ErrKeyNotFound` (`ignore_value` / `ignore_lease` on a missing key) and
    /// `rpctypes.ErrGRPCKeyNotFound` (an empty request op in a txn): same text.
    #[error("etcdserver: key not found")]
    KeyNotFound,
    /// etcd `lease.ErrLeaseNotFound` (the API shows it as "etcdserver: requested lease not
    /// found").
    #[error("lease not found")]
    LeaseNotFound,
    /// etcd `rpctypes.ErrGRPCEmptyKey`.
    #[error("etcdserver: key is not provided")]
    EmptyKey,
    /// etcd `rpctypes.ErrGRPCValueProvided`: `ignore_value` with a value.
    #[error("etcdserver: value is provided")]
    ValueProvided,
    /// etcd `rpctypes.ErrGRPCLeaseProvided`: `ignore_lease` with a lease.
    #[error("etcdserver: lease is provided")]
    LeaseProvided,
    /// etcd `rpctypes.ErrGRPCTooManyOps`: a txn over `--max-txn-ops`.
    #[error("etcdserver: too many operations in txn request")]
    TooManyOps,
    /// etcd `rpctypes.ErrGRPCDuplicateKey`: a txn writing one key twice.
    #[error("etcdserver: duplicate key given in txn request")]
    DuplicateKey,
    /// A txn with writes was given to a read view (the API layer sends only read-only txns
    /// there; see `txn::is_txn_read_only`).
    #[error("mvcc: txn with writes cannot be served from a read view")]
    TxnNotReadOnly,
    /// etcd `mvcc.ErrClosed`: the store was closed (a compaction waited on never finished).
    #[error("mvcc: closed")]
    Closed,
    /// A write for a raft index the store has applied already (etcd skips such entries in its
    /// apply loop; the apply loop should check [`super::Store::consistent_index`] first).
    #[error("mvcc: raft index {index} is already applied (consistent index {consistent_index})")]
    AlreadyApplied { index: u64, consistent_index: u64 },
    /// A thread panicked while holding one of the store's locks; the in-memory state may be
    /// half updated, so the store refuses further use.
    #[error("mvcc: a thread panicked while holding the {what} lock")]
    Poisoned { what: &'static str },
    /// The backend failed; after a failed commit it refuses all further use and the server
    /// must stop, as etcd does.
    #[error(transparent)]
    Backend(#[from] backend::Error),
    /// The `key` or `meta` bucket holds something that cannot be decoded, or an index entry
    /// points at a revision the `key` bucket does not hold (etcd exits on both).
    #[error("mvcc: corrupt store: {what}")]
    Corrupted { what: String },
}

impl MvccError {
    pub(crate) fn corrupted(what: impl Into<String>) -> MvccError {
        MvccError::Corrupted { what: what.into() }
    }
}

impl From<RevisionKeyError> for MvccError {
    fn from(e: RevisionKeyError) -> MvccError {
        MvccError::corrupted(format!("bad revision key: {e}"))
    }
}

impl From<prost::DecodeError> for MvccError {
    fn from(e: prost::DecodeError) -> MvccError {
        MvccError::corrupted(format!("bad mvccpb.KeyValue: {e}"))
    }
}
