//! The errors of the server layer (proposals, reads, maintenance), each displaying exactly the
//! text of etcd's internal error for the same condition, so `api::to_status` maps it to etcd's
//! status by that text as `v3rpc/util.go` does.

use crate::mvcc::MvccError;
use crate::raft::RaftError;

/// What a request to the server can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The store refused or failed the request.
    #[error(transparent)]
    Mvcc(#[from] MvccError),
    /// A lease operation failed ("lease not found", "lease already exists", ...).
    #[error(transparent)]
    Lease(#[from] crate::lease::LeaseError),
    /// Over `--quota-backend-bytes`, or the NOSPACE alarm is active (etcd's `ErrNoSpace`).
    #[error("etcdserver: no space")]
    NoSpace,
    /// Committed minus applied is too large (etcd's `ErrTooManyRequests`).
    #[error("etcdserver: too many requests")]
    TooManyRequests,
    /// Over `--max-request-bytes` (etcd's `ErrRequestTooLarge`).
    #[error("etcdserver: request is too large")]
    RequestTooLarge,
    /// Not applied within the request timeout (etcd's `ErrTimeout`).
    #[error("etcdserver: request timed out")]
    Timeout,
    /// Not applied in time, and the request started just before a new leader was elected
    /// (etcd's `ErrTimeoutDueToLeaderFail`).
    #[error("etcdserver: request timed out, possibly due to previous leader failure")]
    TimeoutDueToLeaderFail,
    /// Not applied in time while this member had lost its connection to the leader (or, as
    /// leader, to a quorum) (etcd's `ErrTimeoutDueToConnectionLost`).
    #[error("etcdserver: request timed out, possibly due to connection lost")]
    TimeoutDueToConnectionLost,
    /// The server is shutting down (etcd's `ErrStopped`).
    #[error("etcdserver: server stopped")]
    Stopped,
    /// No leader to take a proposal (etcd's `ErrNoLeader`).
    #[error("etcdserver: no leader")]
    NoLeader,
    /// MoveLeader to a member that cannot lead (etcd's `ErrBadLeaderTransferee`).
    #[error("etcdserver: bad leader transferee")]
    BadLeaderTransferee,
    /// MoveLeader on a member that does not lead (etcd's `ErrNotLeader`).
    #[error("etcdserver: not leader")]
    NotLeader,
    /// MoveLeader did not see the transferee lead within the request timeout (etcd's
    /// `ErrTimeoutLeaderTransfer`; not in etcd's gRPC table, so clients see `Unknown`).
    #[error("etcdserver: request timed out, leader transfer took too long")]
    TimeoutLeaderTransfer,
    /// A membership change was refused (its text maps to etcd's status in `api::errors`).
    #[error(transparent)]
    Membership(#[from] crate::membership::MembershipError),
    /// MemberAdd or MemberUpdate with a URL that does not parse (etcd's `ErrInvalidPeerURL`
    /// as the RPC layer reports it).
    #[error("etcdserver: given member URLs are invalid")]
    InvalidPeerUrls,
    /// This member was removed from the cluster: it stops, and its data dir must be removed.
    #[error("the member has been permanently removed from the cluster")]
    MemberRemoved,
    /// A raft or storage failure; the member stops.
    #[error("etcdserver: {0}")]
    Raft(String),
    /// Any other internal failure (sent to clients as `Unknown` with this text).
    #[error("{0}")]
    Internal(String),
}

impl From<RaftError> for ServerError {
    fn from(e: RaftError) -> ServerError {
        ServerError::Raft(e.to_string())
    }
}

impl From<oxcd_engine::backend::Error> for ServerError {
    fn from(e: oxcd_engine::backend::Error) -> ServerError {
        ServerError::Mvcc(MvccError::Backend(e))
    }
}
