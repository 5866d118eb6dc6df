//! Every error a client can see, with etcd's exact gRPC code and message: the one mapping table.
//!
//! etcd keeps two tables and this module mirrors both:
//!
//! * `rpctypes/error.go` declares each client-visible status (`ErrGRPCEmptyKey` is
//!   `InvalidArgument` "etcdserver: key is not provided"). Here: [`EtcdError`], one variant per
//!   status, all defined by the single `etcd_error_table!` invocation below, from which the
//!   enum, its `Display`, [`EtcdError::ALL`] and [`EtcdError::spec`] are generated, so a variant
//!   cannot exist without its code and message.
//! * `v3rpc/util.go`'s `toGRPCErrorMap` turns the server's internal errors (`mvcc.ErrCompacted`,
//!   `lease.ErrLeaseNotFound`, ...) into those statuses, and `togRPCError` sends anything else
//!   as `Unknown` with the error's text. Here: [`INTERNAL_ERRORS`], keyed by the internal
//!   error's text, and [`to_status`], the one function service handlers call on a failure
//!   (it also recognises an error displaying a client-visible message verbatim).
//!
//! Why texts matter: etcd's Go client recognises errors by message, not code
//! (`rpctypes.Error` looks the status message up in a map), so each message is byte-exact,
//! "etcdserver: " prefix included. Likewise an internal error maps by its `Display` text, so
//! oxcd's store errors must display exactly etcd's text for the same condition (for example
//! the mvcc store's "mvcc: required revision has been compacted"); an error whose text is not
//! in [`INTERNAL_ERRORS`] reaches the client as `Unknown`, exactly as in etcd.
//!
//! The code on the wire is etcd's, quirks included: `toGRPCErrorMap` maps
//! `etcdserver.ErrTooManyRequests` and `etcdserver.ErrNotEnoughStartedMembers` to client-side
//! error values that carry no gRPC status, so etcd 3.4 and 3.5 send both as `Unknown` although
//! `rpctypes` declares `ResourceExhausted` and `FailedPrecondition` for them. [`ErrorSpec`]
//! keeps both codes: `code` (what `rpctypes` declares and etcd's client reports after its
//! message lookup) and `wire_code` (what the server sends).
//!
//! Versions: every status of etcd 3.4.23 is here with 3.4's code, plus those etcd 3.5 added
//! (downgrade, `PermissionNotGiven`, request canceled and deadline exceeded), marked
//! [`Since::V3_5`]. etcd 3.6 later moved `NotCapable`, `NotSupportedForLearner` and
//! `ClusterVersionUnavailable` to `FailedPrecondition`; oxcd answers as 3.4 and 3.5 do.
//!
//! The test `tests/etcd_errors.rs` runs a Go program built against etcd 3.4.23's sources that
//! prints both of etcd's tables, and demands this module match them entry for entry.
//!
//! Pure: no I/O, no state. The module also holds the two numeric limits whose violations map
//! here ([`GRPC_OVERHEAD_BYTES`], [`MAX_GAP_BETWEEN_APPLY_AND_COMMIT_INDEX`]).

use std::fmt::Display;

use tonic::{Code, Status};

/// The etcd release that introduced an error; oxcd answers clients of either.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Since {
    /// Present in etcd 3.4 (the release oxcd's compatibility tests run against).
    V3_4,
    /// Added in etcd 3.5.
    V3_5,
}

/// One row of the table: how etcd declares and sends an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ErrorSpec {
    /// The `rpctypes` variable etcd declares it as (3.4's spelling where 3.4 has it, including
    /// 3.4's typo `ErrGPRCNotSupportedForLearner`).
    pub go_name: &'static str,
    /// The release that introduced it.
    pub since: Since,
    /// The code `rpctypes` declares; etcd's Go client reports this one.
    pub code: Code,
    /// The code etcd's server puts on the wire (differs from `code` for two errors; see the
    /// module doc).
    pub wire_code: Code,
    /// The status message, byte for byte.
    pub message: &'static str,
}

/// Defines [`EtcdError`] and its table from one list of rows:
/// `Variant => since, "GoName", Code [on_wire WireCode], "message";`
macro_rules! etcd_error_table {
    (@wire $code:ident) => { Code::$code };
    (@wire $code:ident $wire:ident) => { Code::$wire };
    ($(
        $(#[doc = $doc:literal])+
        $variant:ident => $since:ident, $go_name:literal, $code:ident $(on_wire $wire:ident)?,
            $message:literal;
    )+) => {
        /// An error a client sees, as etcd reports it. Convert with `tonic::Status::from` (or
        /// `.into()`); its `Display` is etcd's message.
        #[non_exhaustive]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
        pub enum EtcdError {
            $(
                $(#[doc = $doc])+
                #[error($message)]
                $variant,
            )+
        }

        impl EtcdError {
            /// Every variant, in table order.
            pub const ALL: &'static [EtcdError] = &[$(EtcdError::$variant),+];

            /// This error's row of the table.
            pub const fn spec(self) -> ErrorSpec {
                match self {
                    $(EtcdError::$variant => ErrorSpec {
                        go_name: $go_name,
                        since: Since::$since,
                        code: Code::$code,
                        wire_code: etcd_error_table!(@wire $code $($wire)?),
                        message: $message,
                    },)+
                }
            }
        }
    };
}

etcd_error_table! {
    // ---- Request validation (v3rpc/key.go) and the key-value store ----
    /// A Range, Put, DeleteRange or Txn operation names an empty key.
    EmptyKey => V3_4, "ErrGRPCEmptyKey", InvalidArgument,
        "etcdserver: key is not provided";
    /// A Put with `ignore_value` or `ignore_lease` targets a key that does not exist.
    KeyNotFound => V3_4, "ErrGRPCKeyNotFound", InvalidArgument,
        "etcdserver: key not found";
    /// A Put with `ignore_value` also carries a value.
    ValueProvided => V3_4, "ErrGRPCValueProvided", InvalidArgument,
        "etcdserver: value is provided";
    /// A Put with `ignore_lease` also carries a lease.
    LeaseProvided => V3_4, "ErrGRPCLeaseProvided", InvalidArgument,
        "etcdserver: lease is provided";
    /// A Txn branch holds more operations than `--max-txn-ops`.
    TooManyOps => V3_4, "ErrGRPCTooManyOps", InvalidArgument,
        "etcdserver: too many operations in txn request";
    /// A Txn branch writes the same key twice (put and put, or put and delete).
    DuplicateKey => V3_4, "ErrGRPCDuplicateKey", InvalidArgument,
        "etcdserver: duplicate key given in txn request";
    /// A read, watch or compaction names a revision at or below the compact revision.
    Compacted => V3_4, "ErrGRPCCompacted", OutOfRange,
        "etcdserver: mvcc: required revision has been compacted";
    /// A read or compaction names a revision above the current one.
    FutureRev => V3_4, "ErrGRPCFutureRev", OutOfRange,
        "etcdserver: mvcc: required revision is a future revision";
    /// A write while the NOSPACE alarm is raised (backend over `--quota-backend-bytes`).
    NoSpace => V3_4, "ErrGRPCNoSpace", ResourceExhausted,
        "etcdserver: mvcc: database space exceeded";

    // ---- Leases and watches ----
    /// A lease ID that is not granted (revoked, expired or never granted).
    LeaseNotFound => V3_4, "ErrGRPCLeaseNotFound", NotFound,
        "etcdserver: requested lease not found";
    /// LeaseGrant with an ID already in use.
    LeaseExist => V3_4, "ErrGRPCLeaseExist", FailedPrecondition,
        "etcdserver: lease already exists";
    /// LeaseGrant with a TTL above etcd's maximum (9,000,000,000 seconds).
    LeaseTtlTooLarge => V3_4, "ErrGRPCLeaseTTLTooLarge", OutOfRange,
        "etcdserver: too large lease TTL";
    /// A watch stream ended because its context was cancelled.
    WatchCanceled => V3_4, "ErrGRPCWatchCanceled", Cancelled,
        "etcdserver: watch canceled";

    // ---- Membership ----
    /// MemberAdd with an ID already in the cluster.
    MemberExist => V3_4, "ErrGRPCMemberExist", FailedPrecondition,
        "etcdserver: member ID already exist";
    /// MemberAdd or MemberUpdate with a peer URL another member has.
    PeerUrlExist => V3_4, "ErrGRPCPeerURLExist", FailedPrecondition,
        "etcdserver: Peer URLs already exists";
    /// A reconfiguration that would leave fewer started members than a quorum (strict
    /// reconfiguration check). etcd sends it as `Unknown` (module doc).
    MemberNotEnoughStarted => V3_4, "ErrGRPCMemberNotEnoughStarted",
        FailedPrecondition on_wire Unknown,
        "etcdserver: re-configuration failed due to not enough started members";
    /// MemberAdd or MemberUpdate with peer URLs that do not parse.
    MemberBadUrls => V3_4, "ErrGRPCMemberBadURLs", InvalidArgument,
        "etcdserver: given member URLs are invalid";
    /// A member ID that is not (or no longer) in the cluster.
    MemberNotFound => V3_4, "ErrGRPCMemberNotFound", NotFound,
        "etcdserver: member not found";
    /// MemberPromote of a voting member.
    MemberNotLearner => V3_4, "ErrGRPCMemberNotLearner", FailedPrecondition,
        "etcdserver: can only promote a learner member";
    /// MemberPromote of a learner whose log is not yet close to the leader's.
    LearnerNotReady => V3_4, "ErrGRPCLearnerNotReady", FailedPrecondition,
        "etcdserver: can only promote a learner member which is in sync with leader";
    /// MemberAdd of a learner when the cluster already has the maximum number of learners.
    TooManyLearners => V3_4, "ErrGRPCTooManyLearners", FailedPrecondition,
        "etcdserver: too many learner members in cluster";

    // ---- Limits ----
    /// The encoded raft request exceeds `--max-request-bytes`.
    RequestTooLarge => V3_4, "ErrGRPCRequestTooLarge", InvalidArgument,
        "etcdserver: request is too large";
    /// Committed minus applied raft index exceeds [`MAX_GAP_BETWEEN_APPLY_AND_COMMIT_INDEX`].
    /// etcd sends it as `Unknown` (module doc).
    TooManyRequests => V3_4, "ErrGRPCRequestTooManyRequests", ResourceExhausted on_wire Unknown,
        "etcdserver: too many requests";

    // ---- Auth ----
    /// AuthEnable without a `root` user.
    RootUserNotExist => V3_4, "ErrGRPCRootUserNotExist", FailedPrecondition,
        "etcdserver: root user does not exist";
    /// AuthEnable while the `root` user lacks the `root` role.
    RootRoleNotExist => V3_4, "ErrGRPCRootRoleNotExist", FailedPrecondition,
        "etcdserver: root user does not have root role";
    /// UserAdd of an existing user.
    UserAlreadyExist => V3_4, "ErrGRPCUserAlreadyExist", FailedPrecondition,
        "etcdserver: user name already exists";
    /// UserAdd with an empty name.
    UserEmpty => V3_4, "ErrGRPCUserEmpty", InvalidArgument,
        "etcdserver: user name is empty";
    /// A user name that does not exist.
    UserNotFound => V3_4, "ErrGRPCUserNotFound", FailedPrecondition,
        "etcdserver: user name not found";
    /// RoleAdd of an existing role.
    RoleAlreadyExist => V3_4, "ErrGRPCRoleAlreadyExist", FailedPrecondition,
        "etcdserver: role name already exists";
    /// A role name that does not exist.
    RoleNotFound => V3_4, "ErrGRPCRoleNotFound", FailedPrecondition,
        "etcdserver: role name not found";
    /// RoleAdd with an empty name.
    RoleEmpty => V3_4, "ErrGRPCRoleEmpty", InvalidArgument,
        "etcdserver: role name is empty";
    /// Authenticate with a wrong user name or password.
    AuthFailed => V3_4, "ErrGRPCAuthFailed", InvalidArgument,
        "etcdserver: authentication failed, invalid user ID or password";
    /// RoleGrantPermission without a permission (etcd 3.5).
    PermissionNotGiven => V3_5, "ErrGRPCPermissionNotGiven", InvalidArgument,
        "etcdserver: permission not given";
    /// The authenticated user may not perform the request.
    PermissionDenied => V3_4, "ErrGRPCPermissionDenied", PermissionDenied,
        "etcdserver: permission denied";
    /// UserRevokeRole of a role the user does not have.
    RoleNotGranted => V3_4, "ErrGRPCRoleNotGranted", FailedPrecondition,
        "etcdserver: role is not granted to the user";
    /// RoleRevokePermission of a permission the role does not have.
    PermissionNotGranted => V3_4, "ErrGRPCPermissionNotGranted", FailedPrecondition,
        "etcdserver: permission is not granted to the role";
    /// Authenticate while auth is disabled.
    AuthNotEnabled => V3_4, "ErrGRPCAuthNotEnabled", FailedPrecondition,
        "etcdserver: authentication is not enabled";
    /// A token that is malformed, unknown or expired.
    InvalidAuthToken => V3_4, "ErrGRPCInvalidAuthToken", Unauthenticated,
        "etcdserver: invalid auth token";
    /// While auth is enabled: deleting the `root` user or role, or revoking `root` from `root`.
    InvalidAuthMgmt => V3_4, "ErrGRPCInvalidAuthMgmt", InvalidArgument,
        "etcdserver: invalid auth management";
    /// The request's auth revision is older than the auth store's.
    AuthOldRevision => V3_4, "ErrGRPCAuthOldRevision", InvalidArgument,
        "etcdserver: revision of auth store is old";

    // ---- Server and raft state ----
    /// The member knows no leader.
    NoLeader => V3_4, "ErrGRPCNoLeader", Unavailable,
        "etcdserver: no leader";
    /// A leader-only request (MoveLeader) reached a follower.
    NotLeader => V3_4, "ErrGRPCNotLeader", FailedPrecondition,
        "etcdserver: not leader";
    /// The leader changed while the request was in flight.
    LeaderChanged => V3_4, "ErrGRPCLeaderChanged", Unavailable,
        "etcdserver: leader changed";
    /// The cluster version does not yet enable the v3 API.
    NotCapable => V3_4, "ErrGRPCNotCapable", Unavailable,
        "etcdserver: not capable";
    /// The server is shutting down.
    Stopped => V3_4, "ErrGRPCStopped", Unavailable,
        "etcdserver: server stopped";
    /// A proposal or read did not complete within the request timeout.
    Timeout => V3_4, "ErrGRPCTimeout", Unavailable,
        "etcdserver: request timed out";
    /// A request timed out soon after the previous leader failed.
    TimeoutDueToLeaderFail => V3_4, "ErrGRPCTimeoutDueToLeaderFail", Unavailable,
        "etcdserver: request timed out, possibly due to previous leader failure";
    /// A request timed out while the member had lost its peer connections.
    TimeoutDueToConnectionLost => V3_4, "ErrGRPCTimeoutDueToConnectionLost", Unavailable,
        "etcdserver: request timed out, possibly due to connection lost";
    /// A linearizable read waited too long for the applied index to reach the read index.
    TimeoutWaitAppliedIndex => V3_4, "ErrGRPCTimeoutWaitAppliedIndex", Unavailable,
        "etcdserver: request timed out, waiting for the applied index took too long";
    /// A reconfiguration refused because the cluster is not healthy.
    Unhealthy => V3_4, "ErrGRPCUnhealthy", Unavailable,
        "etcdserver: unhealthy cluster";
    /// The CORRUPT alarm is raised.
    Corrupt => V3_4, "ErrGRPCCorrupt", DataLoss,
        "etcdserver: corrupt cluster";
    /// A request a learner does not serve (anything but Status and serializable Range).
    NotSupportedForLearner => V3_4, "ErrGPRCNotSupportedForLearner", Unavailable,
        "etcdserver: rpc not supported for learner";
    /// MoveLeader to a member that is not in the cluster or is a learner.
    BadLeaderTransferee => V3_4, "ErrGRPCBadLeaderTransferee", FailedPrecondition,
        "etcdserver: bad leader transferee";

    // ---- Downgrade (etcd 3.5; oxcd does not downgrade, clients may still expect them) ----
    /// A downgrade request while the cluster version is unknown.
    ClusterVersionUnavailable => V3_5, "ErrGRPCClusterVersionUnavailable", Unavailable,
        "etcdserver: cluster version not found during downgrade";
    /// A downgrade target that is not a version number.
    WrongDowngradeVersionFormat => V3_5, "ErrGRPCWrongDowngradeVersionFormat", InvalidArgument,
        "etcdserver: wrong downgrade target version format";
    /// A downgrade target that is not one minor version below the cluster's.
    InvalidDowngradeTargetVersion => V3_5, "ErrGRPCInvalidDowngradeTargetVersion",
        InvalidArgument,
        "etcdserver: invalid downgrade target version";
    /// A downgrade request while another is in progress.
    DowngradeInProcess => V3_5, "ErrGRPCDowngradeInProcess", FailedPrecondition,
        "etcdserver: cluster has a downgrade job in progress";
    /// A downgrade cancel with no downgrade in progress.
    NoInflightDowngrade => V3_5, "ErrGRPCNoInflightDowngrade", FailedPrecondition,
        "etcdserver: no inflight downgrade job";

    // ---- Request context (etcd 3.5) ----
    /// The request was cancelled before it completed.
    Canceled => V3_5, "ErrGRPCCanceled", Cancelled,
        "etcdserver: request canceled";
    /// The request's deadline passed before it completed.
    DeadlineExceeded => V3_5, "ErrGRPCDeadlineExceeded", DeadlineExceeded,
        "etcdserver: context deadline exceeded";
}

impl EtcdError {
    /// The gRPC code etcd's Go client reports for this error (`rpctypes`' declaration).
    pub const fn code(self) -> Code {
        self.spec().code
    }

    /// The status message, byte for byte as etcd's.
    pub const fn message(self) -> &'static str {
        self.spec().message
    }

    /// The error whose message `message` is, as etcd's client recognises errors
    /// (`rpctypes.Error`); `None` for any other text.
    pub fn from_message(message: &str) -> Option<EtcdError> {
        Self::ALL
            .iter()
            .copied()
            .find(|error| error.message() == message)
    }

    /// The client-visible error etcd maps an internal error to, looked up by the internal
    /// error's text in [`INTERNAL_ERRORS`]; `None` if etcd has no mapping for it.
    pub fn from_internal(error: &(impl Display + ?Sized)) -> Option<EtcdError> {
        lookup_internal(&error.to_string())
    }

    /// The client-visible error for an mvcc store error: [`EtcdError::Compacted`] for
    /// "mvcc: required revision has been compacted", [`EtcdError::FutureRev`] for
    /// "mvcc: required revision is a future revision" (etcd's `mvcc.ErrCompacted` and
    /// `mvcc.ErrFutureRev`); `None` for any other mvcc error, which is internal.
    pub fn from_mvcc(error: &(impl Display + ?Sized)) -> Option<EtcdError> {
        Self::from_internal(error)
            .filter(|mapped| matches!(mapped, EtcdError::Compacted | EtcdError::FutureRev))
    }
}

impl From<EtcdError> for Status {
    /// The status etcd's server sends for `error`: its wire code and exact message.
    fn from(error: EtcdError) -> Status {
        let spec = error.spec();
        Status::new(spec.wire_code, spec.message)
    }
}

/// The status a client receives for a server error ([`to_status`]), so handlers can use `?`.
impl From<crate::etcdserver::ServerError> for Status {
    fn from(error: crate::etcdserver::ServerError) -> Status {
        to_status(&error)
    }
}

/// The status a client receives for a store error ([`to_status`]).
impl From<crate::mvcc::MvccError> for Status {
    fn from(error: crate::mvcc::MvccError) -> Status {
        to_status(&error)
    }
}

/// One entry of etcd's `toGRPCErrorMap`: an internal error and what clients see of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InternalError {
    /// etcd's Go name of the internal error, package-qualified.
    pub go_name: &'static str,
    /// Its text; oxcd's error for the same condition must display exactly this.
    pub text: &'static str,
    /// What a client receives instead.
    pub error: EtcdError,
}

/// Builds an [`INTERNAL_ERRORS`] row.
const fn internal(go_name: &'static str, text: &'static str, error: EtcdError) -> InternalError {
    InternalError {
        go_name,
        text,
        error,
    }
}

/// etcd 3.4's `toGRPCErrorMap` (`v3rpc/util.go`): every internal error that reaches a client as
/// an etcd status rather than `Unknown`. Texts are unique.
#[rustfmt::skip]
pub const INTERNAL_ERRORS: &[InternalError] = &[
    internal("membership.ErrIDRemoved", "membership: ID removed", EtcdError::MemberNotFound),
    internal("membership.ErrIDNotFound", "membership: ID not found", EtcdError::MemberNotFound),
    internal("membership.ErrIDExists", "membership: ID exists", EtcdError::MemberExist),
    internal("membership.ErrPeerURLexists", "membership: peerURL exists", EtcdError::PeerUrlExist),
    internal("membership.ErrMemberNotLearner", "membership: can only promote a learner member",
        EtcdError::MemberNotLearner),
    internal("membership.ErrTooManyLearners", "membership: too many learner members in cluster",
        EtcdError::TooManyLearners),
    internal("etcdserver.ErrNotEnoughStartedMembers",
        "etcdserver: re-configuration failed due to not enough started members",
        EtcdError::MemberNotEnoughStarted),
    internal("etcdserver.ErrLearnerNotReady",
        "etcdserver: can only promote a learner member which is in sync with leader",
        EtcdError::LearnerNotReady),
    internal("mvcc.ErrCompacted", "mvcc: required revision has been compacted",
        EtcdError::Compacted),
    internal("mvcc.ErrFutureRev", "mvcc: required revision is a future revision",
        EtcdError::FutureRev),
    internal("etcdserver.ErrRequestTooLarge", "etcdserver: request is too large",
        EtcdError::RequestTooLarge),
    internal("etcdserver.ErrNoSpace", "etcdserver: no space", EtcdError::NoSpace),
    internal("etcdserver.ErrTooManyRequests", "etcdserver: too many requests",
        EtcdError::TooManyRequests),
    internal("etcdserver.ErrNoLeader", "etcdserver: no leader", EtcdError::NoLeader),
    internal("etcdserver.ErrNotLeader", "etcdserver: not leader", EtcdError::NotLeader),
    internal("etcdserver.ErrLeaderChanged", "etcdserver: leader changed", EtcdError::LeaderChanged),
    internal("etcdserver.ErrStopped", "etcdserver: server stopped", EtcdError::Stopped),
    internal("etcdserver.ErrTimeout", "etcdserver: request timed out", EtcdError::Timeout),
    internal("etcdserver.ErrTimeoutDueToLeaderFail",
        "etcdserver: request timed out, possibly due to previous leader failure",
        EtcdError::TimeoutDueToLeaderFail),
    internal("etcdserver.ErrTimeoutDueToConnectionLost",
        "etcdserver: request timed out, possibly due to connection lost",
        EtcdError::TimeoutDueToConnectionLost),
    internal("etcdserver.ErrTimeoutWaitAppliedIndex",
        "etcdserver: request timed out, waiting for the applied index took too long",
        EtcdError::TimeoutWaitAppliedIndex),
    internal("etcdserver.ErrUnhealthy", "etcdserver: unhealthy cluster", EtcdError::Unhealthy),
    internal("etcdserver.ErrKeyNotFound", "etcdserver: key not found", EtcdError::KeyNotFound),
    internal("etcdserver.ErrCorrupt", "etcdserver: corrupt cluster", EtcdError::Corrupt),
    internal("etcdserver.ErrBadLeaderTransferee", "etcdserver: bad leader transferee",
        EtcdError::BadLeaderTransferee),
    internal("lease.ErrLeaseNotFound", "lease not found", EtcdError::LeaseNotFound),
    internal("lease.ErrLeaseExists", "lease already exists", EtcdError::LeaseExist),
    internal("lease.ErrLeaseTTLTooLarge", "too large lease TTL", EtcdError::LeaseTtlTooLarge),
    internal("auth.ErrRootUserNotExist", "auth: root user does not exist",
        EtcdError::RootUserNotExist),
    internal("auth.ErrRootRoleNotExist", "auth: root user does not have root role",
        EtcdError::RootRoleNotExist),
    internal("auth.ErrUserAlreadyExist", "auth: user already exists", EtcdError::UserAlreadyExist),
    internal("auth.ErrUserEmpty", "auth: user name is empty", EtcdError::UserEmpty),
    internal("auth.ErrUserNotFound", "auth: user not found", EtcdError::UserNotFound),
    internal("auth.ErrRoleAlreadyExist", "auth: role already exists", EtcdError::RoleAlreadyExist),
    internal("auth.ErrRoleNotFound", "auth: role not found", EtcdError::RoleNotFound),
    internal("auth.ErrRoleEmpty", "auth: role name is empty", EtcdError::RoleEmpty),
    internal("auth.ErrAuthFailed", "auth: authentication failed, invalid user ID or password",
        EtcdError::AuthFailed),
    internal("auth.ErrPermissionDenied", "auth: permission denied", EtcdError::PermissionDenied),
    internal("auth.ErrRoleNotGranted", "auth: role is not granted to the user",
        EtcdError::RoleNotGranted),
    internal("auth.ErrPermissionNotGranted", "auth: permission is not granted to the role",
        EtcdError::PermissionNotGranted),
    internal("auth.ErrAuthNotEnabled", "auth: authentication is not enabled",
        EtcdError::AuthNotEnabled),
    internal("auth.ErrInvalidAuthToken", "auth: invalid auth token", EtcdError::InvalidAuthToken),
    internal("auth.ErrInvalidAuthMgmt", "auth: invalid auth management",
        EtcdError::InvalidAuthMgmt),
    internal("auth.ErrAuthOldRevision", "auth: revision in header is old",
        EtcdError::AuthOldRevision),
];

/// The status a client receives for a failed request, as etcd's `togRPCError` decides: the
/// mapped etcd status if the error's text is in [`INTERNAL_ERRORS`], otherwise `Unknown` with
/// the error's text. Service handlers pass every store and raft-node error through here.
///
/// One addition to etcd's rule: an error that displays exactly a client-visible message (for
/// example a request check in the mvcc store displaying "etcdserver: key is not provided")
/// is sent as that [`EtcdError`], since etcd raises those as statuses directly and never
/// passes them through `togRPCError`.
pub fn to_status(error: &(impl Display + ?Sized)) -> Status {
    let text = error.to_string();
    match lookup_internal(&text).or_else(|| EtcdError::from_message(&text)) {
        Some(mapped) => mapped.into(),
        None => Status::unknown(text),
    }
}

/// The [`INTERNAL_ERRORS`] entry for an internal error's text.
fn lookup_internal(text: &str) -> Option<EtcdError> {
    INTERNAL_ERRORS
        .iter()
        .find(|row| row.text == text)
        .map(|row| row.error)
}

/// The slack etcd adds to `--max-request-bytes` for gRPC framing when it sets its server's
/// receive limit (`v3rpc/grpc.go`). A request between the two limits is refused with
/// [`EtcdError::RequestTooLarge`]; one above both by the gRPC layer
/// ([`received_message_too_large`]).
pub const GRPC_OVERHEAD_BYTES: u64 = 512 * 1024;

/// How far the committed raft index may run ahead of the applied one before etcd refuses new
/// proposals with [`EtcdError::TooManyRequests`] (`etcdserver/v3_server.go`).
pub const MAX_GAP_BETWEEN_APPLY_AND_COMMIT_INDEX: u64 = 5_000;

/// The status grpc-go's server sends for a request message over its receive limit. tonic's own
/// answer differs in code (`OutOfRange`) and text, so the server raises tonic's limit and sends
/// this one itself.
pub fn received_message_too_large(received_bytes: usize, limit_bytes: usize) -> Status {
    Status::resource_exhausted(format!(
        "grpc: received message larger than max ({received_bytes} vs. {limit_bytes})"
    ))
}

#[cfg(test)]
#[path = "errors_tests.rs"]
mod tests;
