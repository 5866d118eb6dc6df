//! Unit tests of the error table against etcd's, written out by hand from etcd's sources:
//! etcd 3.4.23 `etcdserver/api/v3rpc/rpctypes/error.go` (and `v3rpc/util.go` for the two codes
//! sent as `Unknown`), and etcd 3.5's `api/v3rpc/rpctypes/error.go` for the rows marked V3_5.
//! `tests/etcd_errors.rs` checks the same against the Go code itself.

use std::collections::HashSet;

use tonic::{Code, Status};

use super::*;

/// (variant, rpctypes name, since, declared code, wire code, message).
type Row = (EtcdError, &'static str, Since, Code, Code, &'static str);

use Code::{
    Cancelled, DataLoss, DeadlineExceeded, FailedPrecondition, InvalidArgument, NotFound,
    OutOfRange, PermissionDenied, ResourceExhausted, Unauthenticated, Unavailable, Unknown,
};
use EtcdError as E;
use Since::{V3_4, V3_5};

#[rustfmt::skip]
const ETCD: &[Row] = &[
    (E::EmptyKey, "ErrGRPCEmptyKey", V3_4, InvalidArgument, InvalidArgument,
        "etcdserver: key is not provided"),
    (E::KeyNotFound, "ErrGRPCKeyNotFound", V3_4, InvalidArgument, InvalidArgument,
        "etcdserver: key not found"),
    (E::ValueProvided, "ErrGRPCValueProvided", V3_4, InvalidArgument, InvalidArgument,
        "etcdserver: value is provided"),
    (E::LeaseProvided, "ErrGRPCLeaseProvided", V3_4, InvalidArgument, InvalidArgument,
        "etcdserver: lease is provided"),
    (E::TooManyOps, "ErrGRPCTooManyOps", V3_4, InvalidArgument, InvalidArgument,
        "etcdserver: too many operations in txn request"),
    (E::DuplicateKey, "ErrGRPCDuplicateKey", V3_4, InvalidArgument, InvalidArgument,
        "etcdserver: duplicate key given in txn request"),
    (E::Compacted, "ErrGRPCCompacted", V3_4, OutOfRange, OutOfRange,
        "etcdserver: mvcc: required revision has been compacted"),
    (E::FutureRev, "ErrGRPCFutureRev", V3_4, OutOfRange, OutOfRange,
        "etcdserver: mvcc: required revision is a future revision"),
    (E::NoSpace, "ErrGRPCNoSpace", V3_4, ResourceExhausted, ResourceExhausted,
        "etcdserver: mvcc: database space exceeded"),
    (E::LeaseNotFound, "ErrGRPCLeaseNotFound", V3_4, NotFound, NotFound,
        "etcdserver: requested lease not found"),
    (E::LeaseExist, "ErrGRPCLeaseExist", V3_4, FailedPrecondition, FailedPrecondition,
        "etcdserver: lease already exists"),
    (E::LeaseTtlTooLarge, "ErrGRPCLeaseTTLTooLarge", V3_4, OutOfRange, OutOfRange,
        "etcdserver: too large lease TTL"),
    (E::WatchCanceled, "ErrGRPCWatchCanceled", V3_4, Cancelled, Cancelled,
        "etcdserver: watch canceled"),
    (E::MemberExist, "ErrGRPCMemberExist", V3_4, FailedPrecondition, FailedPrecondition,
        "etcdserver: member ID already exist"),
    (E::PeerUrlExist, "ErrGRPCPeerURLExist", V3_4, FailedPrecondition, FailedPrecondition,
        "etcdserver: Peer URLs already exists"),
    (E::MemberNotEnoughStarted, "ErrGRPCMemberNotEnoughStarted", V3_4, FailedPrecondition, Unknown,
        "etcdserver: re-configuration failed due to not enough started members"),
    (E::MemberBadUrls, "ErrGRPCMemberBadURLs", V3_4, InvalidArgument, InvalidArgument,
        "etcdserver: given member URLs are invalid"),
    (E::MemberNotFound, "ErrGRPCMemberNotFound", V3_4, NotFound, NotFound,
        "etcdserver: member not found"),
    (E::MemberNotLearner, "ErrGRPCMemberNotLearner", V3_4, FailedPrecondition, FailedPrecondition,
        "etcdserver: can only promote a learner member"),
    (E::LearnerNotReady, "ErrGRPCLearnerNotReady", V3_4, FailedPrecondition, FailedPrecondition,
        "etcdserver: can only promote a learner member which is in sync with leader"),
    (E::TooManyLearners, "ErrGRPCTooManyLearners", V3_4, FailedPrecondition, FailedPrecondition,
        "etcdserver: too many learner members in cluster"),
    (E::RequestTooLarge, "ErrGRPCRequestTooLarge", V3_4, InvalidArgument, InvalidArgument,
        "etcdserver: request is too large"),
    (E::TooManyRequests, "ErrGRPCRequestTooManyRequests", V3_4, ResourceExhausted, Unknown,
        "etcdserver: too many requests"),
    (E::RootUserNotExist, "ErrGRPCRootUserNotExist", V3_4, FailedPrecondition, FailedPrecondition,
        "etcdserver: root user does not exist"),
    (E::RootRoleNotExist, "ErrGRPCRootRoleNotExist", V3_4, FailedPrecondition, FailedPrecondition,
        "etcdserver: root user does not have root role"),
    (E::UserAlreadyExist, "ErrGRPCUserAlreadyExist", V3_4, FailedPrecondition, FailedPrecondition,
        "etcdserver: user name already exists"),
    (E::UserEmpty, "ErrGRPCUserEmpty", V3_4, InvalidArgument, InvalidArgument,
        "etcdserver: user name is empty"),
    (E::UserNotFound, "ErrGRPCUserNotFound", V3_4, FailedPrecondition, FailedPrecondition,
        "etcdserver: user name not found"),
    (E::RoleAlreadyExist, "ErrGRPCRoleAlreadyExist", V3_4, FailedPrecondition, FailedPrecondition,
        "etcdserver: role name already exists"),
    (E::RoleNotFound, "ErrGRPCRoleNotFound", V3_4, FailedPrecondition, FailedPrecondition,
        "etcdserver: role name not found"),
    (E::RoleEmpty, "ErrGRPCRoleEmpty", V3_4, InvalidArgument, InvalidArgument,
        "etcdserver: role name is empty"),
    (E::AuthFailed, "ErrGRPCAuthFailed", V3_4, InvalidArgument, InvalidArgument,
        "etcdserver: authentication failed, invalid user ID or password"),
    (E::PermissionNotGiven, "ErrGRPCPermissionNotGiven", V3_5, InvalidArgument, InvalidArgument,
        "etcdserver: permission not given"),
    (E::PermissionDenied, "ErrGRPCPermissionDenied", V3_4, PermissionDenied, PermissionDenied,
        "etcdserver: permission denied"),
    (E::RoleNotGranted, "ErrGRPCRoleNotGranted", V3_4, FailedPrecondition, FailedPrecondition,
        "etcdserver: role is not granted to the user"),
    (E::PermissionNotGranted, "ErrGRPCPermissionNotGranted", V3_4,
        FailedPrecondition, FailedPrecondition,
        "etcdserver: permission is not granted to the role"),
    (E::AuthNotEnabled, "ErrGRPCAuthNotEnabled", V3_4, FailedPrecondition, FailedPrecondition,
        "etcdserver: authentication is not enabled"),
    (E::InvalidAuthToken, "ErrGRPCInvalidAuthToken", V3_4, Unauthenticated, Unauthenticated,
        "etcdserver: invalid auth token"),
    (E::InvalidAuthMgmt, "ErrGRPCInvalidAuthMgmt", V3_4, InvalidArgument, InvalidArgument,
        "etcdserver: invalid auth management"),
    (E::AuthOldRevision, "ErrGRPCAuthOldRevision", V3_4, InvalidArgument, InvalidArgument,
        "etcdserver: revision of auth store is old"),
    (E::NoLeader, "ErrGRPCNoLeader", V3_4, Unavailable, Unavailable, "etcdserver: no leader"),
    (E::NotLeader, "ErrGRPCNotLeader", V3_4, FailedPrecondition, FailedPrecondition,
        "etcdserver: not leader"),
    (E::LeaderChanged, "ErrGRPCLeaderChanged", V3_4, Unavailable, Unavailable,
        "etcdserver: leader changed"),
    (E::NotCapable, "ErrGRPCNotCapable", V3_4, Unavailable, Unavailable, "etcdserver: not capable"),
    (E::Stopped, "ErrGRPCStopped", V3_4, Unavailable, Unavailable, "etcdserver: server stopped"),
    (E::Timeout, "ErrGRPCTimeout", V3_4, Unavailable, Unavailable, "etcdserver: request timed out"),
    (E::TimeoutDueToLeaderFail, "ErrGRPCTimeoutDueToLeaderFail", V3_4, Unavailable, Unavailable,
        "etcdserver: request timed out, possibly due to previous leader failure"),
    (E::TimeoutDueToConnectionLost, "ErrGRPCTimeoutDueToConnectionLost", V3_4,
        Unavailable, Unavailable, "etcdserver: request timed out, possibly due to connection lost"),
    (E::TimeoutWaitAppliedIndex, "ErrGRPCTimeoutWaitAppliedIndex", V3_4, Unavailable, Unavailable,
        "etcdserver: request timed out, waiting for the applied index took too long"),
    (E::Unhealthy, "ErrGRPCUnhealthy", V3_4, Unavailable, Unavailable,
        "etcdserver: unhealthy cluster"),
    (E::Corrupt, "ErrGRPCCorrupt", V3_4, DataLoss, DataLoss, "etcdserver: corrupt cluster"),
    (E::NotSupportedForLearner, "ErrGPRCNotSupportedForLearner", V3_4, Unavailable, Unavailable,
        "etcdserver: rpc not supported for learner"),
    (E::BadLeaderTransferee, "ErrGRPCBadLeaderTransferee", V3_4,
        FailedPrecondition, FailedPrecondition, "etcdserver: bad leader transferee"),
    (E::ClusterVersionUnavailable, "ErrGRPCClusterVersionUnavailable", V3_5,
        Unavailable, Unavailable, "etcdserver: cluster version not found during downgrade"),
    (E::WrongDowngradeVersionFormat, "ErrGRPCWrongDowngradeVersionFormat", V3_5,
        InvalidArgument, InvalidArgument, "etcdserver: wrong downgrade target version format"),
    (E::InvalidDowngradeTargetVersion, "ErrGRPCInvalidDowngradeTargetVersion", V3_5,
        InvalidArgument, InvalidArgument, "etcdserver: invalid downgrade target version"),
    (E::DowngradeInProcess, "ErrGRPCDowngradeInProcess", V3_5,
        FailedPrecondition, FailedPrecondition,
        "etcdserver: cluster has a downgrade job in progress"),
    (E::NoInflightDowngrade, "ErrGRPCNoInflightDowngrade", V3_5,
        FailedPrecondition, FailedPrecondition, "etcdserver: no inflight downgrade job"),
    (E::Canceled, "ErrGRPCCanceled", V3_5, Cancelled, Cancelled, "etcdserver: request canceled"),
    (E::DeadlineExceeded, "ErrGRPCDeadlineExceeded", V3_5, DeadlineExceeded, DeadlineExceeded,
        "etcdserver: context deadline exceeded"),
];

/// A stand-in for the mvcc store's error enum: what it must display for etcd's conditions.
#[derive(Debug, thiserror::Error)]
enum StoreError {
    #[error("mvcc: required revision has been compacted")]
    Compacted,
    #[error("mvcc: required revision is a future revision")]
    FutureRev,
    #[error("mvcc: revision not found")]
    RevisionNotFound,
    #[error("engine: page 7 checksum mismatch")]
    Engine,
    #[error("etcdserver: duplicate key given in txn request")]
    DuplicateKey,
}

#[test]
fn every_variant_has_etcds_code_and_message() {
    // Proves each variant carries exactly etcd's name, version, codes and message, and that
    // the hand table and the variants cover each other one to one.
    let mut seen = HashSet::new();
    for &(error, go_name, since, code, wire_code, message) in ETCD {
        let want = ErrorSpec {
            go_name,
            since,
            code,
            wire_code,
            message,
        };
        assert_eq!(error.spec(), want, "{error:?}");
        assert_eq!(
            (error.code(), error.message()),
            (code, message),
            "{error:?}"
        );
        assert!(
            seen.insert(error),
            "{error:?} listed twice in the test table"
        );
    }
    let all: HashSet<EtcdError> = EtcdError::ALL.iter().copied().collect();
    assert_eq!(all.len(), EtcdError::ALL.len(), "ALL lists a variant twice");
    assert_eq!(all, seen, "variants and etcd's table differ");
}

#[test]
fn status_and_display_carry_the_wire_code_and_exact_text() {
    // Proves the conversion to tonic::Status sends etcd's wire code and byte-exact message.
    for &error in EtcdError::ALL {
        let status = Status::from(error);
        assert_eq!(status.code(), error.spec().wire_code, "{error:?}");
        assert_eq!(status.message(), error.message(), "{error:?}");
        assert_eq!(error.to_string(), error.message(), "{error:?}");
        assert!(
            error.message().starts_with("etcdserver: "),
            "{error:?}: clients match on the prefix too"
        );
    }
    let too_many = Status::from(EtcdError::TooManyRequests);
    assert_eq!(
        (too_many.code(), too_many.message()),
        (Unknown, "etcdserver: too many requests")
    );
}

#[test]
fn messages_identify_errors_as_etcds_client_does() {
    // Proves messages are unique and from_message inverts message(), like rpctypes.Error.
    for &error in EtcdError::ALL {
        assert_eq!(EtcdError::from_message(error.message()), Some(error));
    }
    assert_eq!(
        EtcdError::from_message("etcdserver: key is not provided "),
        None
    );
    assert_eq!(EtcdError::from_message("key is not provided"), None);
}

#[test]
fn mvcc_errors_map_to_compacted_and_future_rev() {
    // Proves from_mvcc maps etcd's two client-visible mvcc errors and nothing else.
    assert_eq!(
        EtcdError::from_mvcc(&StoreError::Compacted),
        Some(EtcdError::Compacted)
    );
    assert_eq!(
        EtcdError::from_mvcc(&StoreError::FutureRev),
        Some(EtcdError::FutureRev)
    );
    assert_eq!(EtcdError::from_mvcc(&StoreError::RevisionNotFound), None);
    assert_eq!(EtcdError::from_mvcc(&StoreError::Engine), None);
    assert_eq!(EtcdError::from_mvcc("lease not found"), None);
    assert_eq!(
        EtcdError::from_internal("lease not found"),
        Some(EtcdError::LeaseNotFound)
    );
    let compacted = to_status(&StoreError::Compacted);
    assert_eq!(compacted.code(), OutOfRange);
    assert_eq!(
        compacted.message(),
        "etcdserver: mvcc: required revision has been compacted"
    );
}

#[test]
fn to_status_maps_like_togrpcerror() {
    // Proves every internal error maps to its etcd status, an error showing a client message
    // is that error, and anything else becomes Unknown with its own text, as in togRPCError.
    for row in INTERNAL_ERRORS {
        let status = to_status(row.text);
        assert_eq!(status.code(), row.error.spec().wire_code, "{}", row.go_name);
        assert_eq!(status.message(), row.error.message(), "{}", row.go_name);
    }
    let duplicate = to_status(&StoreError::DuplicateKey);
    assert_eq!(duplicate.code(), InvalidArgument);
    assert_eq!(duplicate.message(), EtcdError::DuplicateKey.message());
    let internal = to_status(&StoreError::Engine);
    assert_eq!(internal.code(), Unknown);
    assert_eq!(internal.message(), "engine: page 7 checksum mismatch");
    assert_eq!(
        to_status("etcdserver: no space").message(),
        EtcdError::NoSpace.message()
    );
}

#[test]
fn internal_error_texts_are_unique() {
    // Proves the text-keyed lookup is unambiguous.
    let texts: HashSet<&str> = INTERNAL_ERRORS.iter().map(|row| row.text).collect();
    assert_eq!(texts.len(), INTERNAL_ERRORS.len());
}

#[test]
fn oversized_message_status_is_grpc_gos() {
    // Proves the receive-limit status has grpc-go's code and text.
    let status = received_message_too_large(2_097_167, 2_097_152);
    assert_eq!(status.code(), ResourceExhausted);
    assert_eq!(
        status.message(),
        "grpc: received message larger than max (2097167 vs. 2097152)"
    );
    assert_eq!(GRPC_OVERHEAD_BYTES + 1_572_864, 2 * 1024 * 1024);
}
