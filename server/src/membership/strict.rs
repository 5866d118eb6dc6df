//! The checks a member runs before proposing a membership change (etcd 3.4.23's
//! `mayAddMember`, `mayRemoveMember`, `mayPromoteMember`, `isLearnerReady` in
//! `etcdserver/server.go`, and `RaftCluster.IsReadyTo*` in `membership/cluster.go`).
//! Pure: the caller passes the membership, its own ID and what its transport knows.
//!
//! Only the member that received the request runs them, against its own view, so two members
//! may answer differently; the apply-time verdict ([`Cluster::validate`]) is the one all share.
//! The `may_*` functions are the `--strict-reconfig-check` (default on) checks: the caller
//! skips them when it is off. [`check_learner_ready`] runs first for a promote **even when it
//! is off**, and only the leader can run it (it needs raft progress).
//!
//! Words, as etcd uses them:
//! * *started*: the member has a name (it published, or it is a bootstrap member whose conf
//!   change carried the name), even when it is down now;
//! * *active for d*: this member's transport has had a working connection to the peer for
//!   the last d; the caller answers this with `active_for(id)` (`None` when not connected);
//! * *connected since the health interval*: active for **strictly more** than
//!   [`HEALTH_INTERVAL`] (etcd: `ActiveSince` non-zero and before now − 5 s). This member
//!   always counts as connected to itself.

use std::time::Duration;

use super::{Cluster, MembershipError};

/// How long the peers must have been connected for a reconfiguration to count as healthy
/// (etcd's `HealthInterval`).
pub const HEALTH_INTERVAL: Duration = Duration::from_secs(5);

/// A learner is ready to be promoted once its matched index reaches this fraction of the
/// leader's (etcd's `readyPercent`, compared in float64).
pub const READY_PERCENT: f64 = 0.9;

/// How long this member's transport has been connected to peer `id`; `None` if it is not.
pub type ActiveFor<'a> = &'a dyn Fn(u64) -> Option<Duration>;

impl Cluster {
    /// Whether a voting member may be added without losing a started quorum (etcd's
    /// `IsReadyToAddVotingMember`): with n = voters + 1 and s = started voters, s ≥ n/2 + 1,
    /// or s = 1 and n = 2 (growing a one-member cluster, e.g. after a restore).
    pub fn is_ready_to_add_voting_member(&self) -> bool {
        let members = self.voting_members().count() + 1;
        let started = self.started_voters(None);
        (started == 1 && members == 2) || started_quorum(started, members)
    }

    /// Whether voting member `target` may be removed without losing a started quorum (etcd's
    /// `IsReadyToRemoveVotingMember`): among the voters other than `target`, started ≥
    /// count/2 + 1.
    pub fn is_ready_to_remove_voting_member(&self, target: u64) -> bool {
        let members = self.voting_members().filter(|m| m.id != target).count();
        started_quorum(self.started_voters(Some(target)), members)
    }

    /// Whether a learner may be promoted without losing a started quorum (etcd's
    /// `IsReadyToPromoteMember`): the learner counts as a started voter, so with n = voters +
    /// 1 and s = started voters + 1, s ≥ n/2 + 1. Like etcd, `target` itself is not looked at.
    pub fn is_ready_to_promote_member(&self, _target: u64) -> bool {
        let members = self.voting_members().count() + 1;
        started_quorum(self.started_voters(None) + 1, members)
    }

    fn started_voters(&self, except: Option<u64>) -> usize {
        self.voting_members()
            .filter(|m| Some(m.id) != except && !m.name.is_empty())
            .count()
    }
}

/// etcd's `nstarted >= nmembers/2 + 1`, written as clippy prefers.
fn started_quorum(started: usize, members: usize) -> bool {
    started > members / 2
}

/// True if a peer active for `active_for` counts as connected since the health interval.
pub fn is_connected_since_health_interval(active_for: Option<Duration>) -> bool {
    active_for.is_some_and(|d| d > HEALTH_INTERVAL)
}

/// How many voting members this member (`self_id`) has been connected to since the health
/// interval, itself included (etcd's `numConnectedSince`).
pub fn connected_voters(cluster: &Cluster, self_id: u64, active_for: ActiveFor<'_>) -> usize {
    cluster
        .voting_members()
        .filter(|m| m.id == self_id || is_connected_since_health_interval(active_for(m.id)))
        .count()
}

/// etcd's `mayAddMember` (strict check on): a voting add needs a started quorum
/// ([`Cluster::is_ready_to_add_voting_member`], else `NotEnoughStartedMembers`); any add, also
/// a learner's, needs this member connected since the health interval to every voting member
/// (else `Unhealthy`).
pub fn may_add_member(
    cluster: &Cluster,
    is_learner: bool,
    self_id: u64,
    active_for: ActiveFor<'_>,
) -> Result<(), MembershipError> {
    if !is_learner && !cluster.is_ready_to_add_voting_member() {
        return Err(MembershipError::NotEnoughStartedMembers);
    }
    if connected_voters(cluster, self_id, active_for) != cluster.voting_members().count() {
        return Err(MembershipError::Unhealthy);
    }
    Ok(())
}

/// etcd's `mayRemoveMember` (strict check on), in its order:
/// 1. a learner `target` is always allowed;
/// 2. no started quorum without it ([`Cluster::is_ready_to_remove_voting_member`]) →
///    `NotEnoughStartedMembers`;
/// 3. a `target` other than this member that this member is not connected to at all is
///    allowed (it is not part of the active quorum);
/// 4. with c = voters connected since the health interval (this member included) and n =
///    voters, `Unhealthy` if c − 1 < 1 + (n − 1)/2.
pub fn may_remove_member(
    cluster: &Cluster,
    target: u64,
    self_id: u64,
    active_for: ActiveFor<'_>,
) -> Result<(), MembershipError> {
    if cluster.member(target).is_some_and(|m| m.is_learner) {
        return Ok(());
    }
    if !cluster.is_ready_to_remove_voting_member(target) {
        return Err(MembershipError::NotEnoughStartedMembers);
    }
    if target != self_id && active_for(target).is_none() {
        return Ok(());
    }
    // Signed: etcd computes in int, and a learner answering has no voter slot of its own.
    let connected = connected_voters(cluster, self_id, active_for) as i64;
    let voters = cluster.voting_members().count() as i64;
    if connected - 1 < 1 + (voters - 1) / 2 {
        return Err(MembershipError::Unhealthy);
    }
    Ok(())
}

/// The strict half of etcd's `mayPromoteMember`: a started quorum counting the learner
/// ([`Cluster::is_ready_to_promote_member`]), else `NotEnoughStartedMembers`. Run
/// [`check_learner_ready`] first.
pub fn may_promote_member(cluster: &Cluster, target: u64) -> Result<(), MembershipError> {
    if !cluster.is_ready_to_promote_member(target) {
        return Err(MembershipError::NotEnoughStartedMembers);
    }
    Ok(())
}

/// True if a learner whose raft progress matched `learner_match` is close enough to the
/// leader's `leader_match` to be promoted: not `learner < leader × 0.9`, in float64 exactly as
/// etcd computes it (so huge indexes round as they do in Go).
pub fn is_learner_ready(learner_match: u64, leader_match: u64) -> bool {
    // etcd refuses when `learner < leader * 0.9`; neither side can be NaN, so `>=` is its
    // exact negation.
    (learner_match as f64) >= (leader_match as f64) * READY_PERCENT
}

/// etcd's `isLearnerReady` on the leader: `learner_match` is the target's raft progress,
/// `None` when raft has none for it (an unknown ID, which passes here and fails at apply).
/// Not ready → `LearnerNotReady`.
pub fn check_learner_ready(
    learner_match: Option<u64>,
    leader_match: u64,
) -> Result<(), MembershipError> {
    match learner_match {
        Some(matched) if !is_learner_ready(matched, leader_match) => {
            Err(MembershipError::LearnerNotReady)
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
#[path = "strict_tests.rs"]
mod tests;
