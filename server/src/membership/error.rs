//! Why a membership change is refused: at apply ([`super::Cluster::validate`], the same verdict
//! on every member) or before proposing (the strict reconfiguration checks in [`super::strict`]).
//!
//! The texts are etcd 3.4.23's own error texts (`etcdserver/api/membership/errors.go` and
//! `etcdserver/errors.go`), because the server's single error table (`api::errors`, etcd's
//! `v3rpc/util.go` `toGRPCErrorMap`) maps internal errors to client statuses by their text:
//!
//! | variant | text | client sees |
//! |---|---|---|
//! | `IdRemoved`, `IdNotFound` | `membership: ID removed` / `… ID not found` | NotFound `etcdserver: member not found` |
//! | `IdExists` | `membership: ID exists` | FailedPrecondition `etcdserver: member ID already exist` |
//! | `PeerUrlExists` | `membership: peerURL exists` | FailedPrecondition `etcdserver: Peer URLs already exists` |
//! | `MemberNotLearner` | `membership: can only promote a learner member` | FailedPrecondition, same words after `etcdserver: ` |
//! | `TooManyLearners` | `membership: too many learner members in cluster` | FailedPrecondition, same words after `etcdserver: ` |
//! | `LearnerNotReady` | `etcdserver: can only promote a learner member which is in sync with leader` | FailedPrecondition, same text |
//! | `NotEnoughStartedMembers` | `etcdserver: re-configuration failed due to not enough started members` | **Unknown**, same text (etcd maps it to a client-side error value, not a status) |
//! | `Unhealthy` | `etcdserver: unhealthy cluster` | Unavailable, same text |
//!
//! The last two variants are oxcd's own (etcd panics in both cases) and reach a client as
//! Unknown with their text.

/// A refused membership change. See the module doc for the texts and what clients see.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MembershipError {
    /// The change names a member that was removed; a removed ID never comes back.
    #[error("membership: ID removed")]
    IdRemoved,
    /// The change names a member the cluster does not have.
    #[error("membership: ID not found")]
    IdNotFound,
    /// An add names a member the cluster already has.
    #[error("membership: ID exists")]
    IdExists,
    /// An add or update uses a peer URL another member already has.
    #[error("membership: peerURL exists")]
    PeerUrlExists,
    /// A learner add would exceed etcd's limit of [`super::MAX_LEARNERS`] learners.
    #[error("membership: too many learner members in cluster")]
    TooManyLearners,
    /// A promote names a voting member.
    #[error("membership: can only promote a learner member")]
    MemberNotLearner,
    /// The learner's raft log is behind the leader's by more than 10 % (checked by the leader
    /// before proposing a promote).
    #[error("etcdserver: can only promote a learner member which is in sync with leader")]
    LearnerNotReady,
    /// Strict reconfiguration check: the change would leave fewer started voting members than
    /// a quorum.
    #[error("etcdserver: re-configuration failed due to not enough started members")]
    NotEnoughStartedMembers,
    /// Strict reconfiguration check: this member has not been connected long enough to enough
    /// voting members (see [`super::strict::HEALTH_INTERVAL`]).
    #[error("etcdserver: unhealthy cluster")]
    Unhealthy,
    /// oxcd only: removing the last voting member (etcd 3.4's raft panics with "removed all
    /// voters"; raft-rs refuses the same way).
    #[error("membership: cannot remove the last voting member")]
    RemovesLastVoter,
    /// oxcd only: a conf change whose context is not a member JSON naming the changed node
    /// (etcd panics on it).
    #[error("membership: bad conf change context for member {node_id:x}: {reason}")]
    BadContext {
        /// The conf change's node ID.
        node_id: u64,
        /// What is wrong with the context.
        reason: String,
    },
}

#[cfg(test)]
mod tests {
    use super::MembershipError;

    #[test]
    fn texts_are_etcds() {
        // Proves each etcd-defined variant displays exactly the text etcd 3.4.23 defines.
        let cases = [
            (MembershipError::IdRemoved, "membership: ID removed"),
            (MembershipError::IdNotFound, "membership: ID not found"),
            (MembershipError::IdExists, "membership: ID exists"),
            (MembershipError::PeerUrlExists, "membership: peerURL exists"),
            (
                MembershipError::TooManyLearners,
                "membership: too many learner members in cluster",
            ),
            (
                MembershipError::MemberNotLearner,
                "membership: can only promote a learner member",
            ),
            (
                MembershipError::LearnerNotReady,
                "etcdserver: can only promote a learner member which is in sync with leader",
            ),
            (
                MembershipError::NotEnoughStartedMembers,
                "etcdserver: re-configuration failed due to not enough started members",
            ),
            (MembershipError::Unhealthy, "etcdserver: unhealthy cluster"),
        ];
        for (error, text) in cases {
            assert_eq!(error.to_string(), text);
        }
    }

    #[test]
    fn clients_see_etcds_statuses() {
        // Proves the server's one error table turns each variant into etcd 3.4.23's status.
        use tonic::Code;
        let cases = [
            (
                MembershipError::IdRemoved,
                Code::NotFound,
                "etcdserver: member not found",
            ),
            (
                MembershipError::IdNotFound,
                Code::NotFound,
                "etcdserver: member not found",
            ),
            (
                MembershipError::IdExists,
                Code::FailedPrecondition,
                "etcdserver: member ID already exist",
            ),
            (
                MembershipError::PeerUrlExists,
                Code::FailedPrecondition,
                "etcdserver: Peer URLs already exists",
            ),
            (
                MembershipError::TooManyLearners,
                Code::FailedPrecondition,
                "etcdserver: too many learner members in cluster",
            ),
            (
                MembershipError::MemberNotLearner,
                Code::FailedPrecondition,
                "etcdserver: can only promote a learner member",
            ),
            (
                MembershipError::LearnerNotReady,
                Code::FailedPrecondition,
                "etcdserver: can only promote a learner member which is in sync with leader",
            ),
            (
                MembershipError::NotEnoughStartedMembers,
                Code::Unknown,
                "etcdserver: re-configuration failed due to not enough started members",
            ),
            (
                MembershipError::Unhealthy,
                Code::Unavailable,
                "etcdserver: unhealthy cluster",
            ),
            (
                MembershipError::RemovesLastVoter,
                Code::Unknown,
                "membership: cannot remove the last voting member",
            ),
        ];
        for (error, code, message) in cases {
            let status = crate::api::errors::to_status(&error);
            assert_eq!(
                (status.code(), status.message()),
                (code, message),
                "{error}"
            );
        }
    }
}
