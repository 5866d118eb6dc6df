//! Applying membership entries: conf changes (MemberAdd, MemberRemove, MemberUpdate,
//! MemberPromote, and a new cluster's bootstrap members) and the v2 attribute PUTs members
//! publish (etcd's `applyConfChange` and `applierV2store.Put`).
//!
//! Every member decides each conf change the same way, at apply, against the membership as of
//! that entry ([`crate::membership::Cluster::validate`]). A refused change still uses its log
//! index: raft applies it with node ID 0, a no-op (the node learns which ones from
//! [`RaftMembership::rejected`]), and the proposer gets the reason.
//!
//! Replay: after a restart raft hands over every committed entry after the newest snapshot,
//! also those the backend already holds (at or below the consistent index). The membership
//! starts from the snapshot's data (`super::snapshot_data`) and every membership entry
//! after it is decided again, in memory only, so raft gets the same verdicts as the first
//! time; buckets are written only for entries above the consistent index. This is what etcd
//! 3.4 does with its v2 store.
//!
//! The last-voter rule is checked against raft's own voters ([`RaftMembership::voters`]),
//! which this module tracks entry by entry: the two views differ after etcd's update quirk
//! (see `membership::cluster`), and raft-rs refuses to remove its last voter.

use std::collections::BTreeSet;

use prost::Message as _;

use super::error::ServerError;
use super::server::{Applied, ApplyResult, Shared};
use crate::membership::{self, AttributesUpdate, Change, ConfChangeType, MembershipError};
use crate::pb::etcdserverpb::{InternalRaftRequest, Request as V2Request};
use crate::raft::convert::ConfChange;
use oxcd_engine::backend::BatchTx;
use oxcd_wal::pb;

/// Raft's side of the membership, as the applier tracks it.
#[derive(Debug, Default)]
pub(super) struct RaftMembership {
    /// Raft's voters as of the last applied entry.
    pub(super) voters: BTreeSet<u64>,
    /// Conf change entries refused in the batch being applied, by index.
    pub(super) rejected: Vec<u64>,
    /// This member applied its own removal.
    pub(super) removed_self: bool,
}

impl RaftMembership {
    /// Raft's voters from a snapshot's (or the start's) conf state.
    pub(super) fn new(voters: &[u64]) -> RaftMembership {
        RaftMembership {
            voters: voters.iter().copied().collect(),
            ..RaftMembership::default()
        }
    }

    /// Decides conf change `entry` and applies it to the membership if valid. Returns the
    /// change's request ID and verdict; a refused change is recorded in `rejected`.
    pub(super) fn decide(
        &mut self,
        shared: &Shared,
        entry: &pb::Entry,
    ) -> Result<(u64, Result<membership::Applied, MembershipError>), ServerError> {
        let cc = ConfChange::decode(&entry.data[..]).map_err(|e| {
            ServerError::Internal(format!("bad conf change at {}: {e}", entry.index))
        })?;
        let kind = ConfChangeType::try_from(cc.change_type).map_err(|_| {
            ServerError::Internal(format!(
                "conf change of unknown type {} at {}",
                cc.change_type, entry.index
            ))
        })?;
        let verdict = Change::decode(kind, cc.node_id, cc.context.as_deref().unwrap_or(&[]))
            .and_then(|change| {
                let applied = shared.members.apply_change(&change, &self.voters)?;
                self.follow_raft(&change);
                Ok(applied)
            });
        match &verdict {
            Ok(applied) => {
                log_applied(applied, shared.cluster_id);
                if matches!(applied, membership::Applied::Removed(m) if m.id == shared.member_id) {
                    self.removed_self = true;
                }
            }
            Err(e) => {
                tracing::warn!(index = entry.index, node = format!("{:x}", cc.node_id), %e,
                    "refused a membership change");
                self.rejected.push(entry.index);
            }
        }
        Ok((cc.id, verdict))
    }

    /// Tracks what raft does with an accepted `change`.
    fn follow_raft(&mut self, change: &Change) {
        match change.kind {
            ConfChangeType::ConfChangeAddNode => {
                self.voters.insert(change.node_id);
            }
            ConfChangeType::ConfChangeAddLearnerNode | ConfChangeType::ConfChangeRemoveNode => {
                self.voters.remove(&change.node_id);
            }
            ConfChangeType::ConfChangeUpdateNode => {}
        }
    }
}

fn log_applied(applied: &membership::Applied, cluster_id: u64) {
    let member = applied.member();
    let id = format!("{:x}", member.id);
    let cluster = format!("{cluster_id:x}");
    let urls = format!("{:?}", member.peer_urls);
    match applied {
        membership::Applied::Added(m) if m.is_learner => {
            tracing::info!(
                member = id,
                peer_urls = urls,
                cluster,
                "added learner member"
            )
        }
        membership::Applied::Added(_) => {
            tracing::info!(member = id, peer_urls = urls, cluster, "added member")
        }
        membership::Applied::Promoted(_) => {
            tracing::info!(member = id, cluster, "promoted learner member")
        }
        membership::Applied::Removed(_) => tracing::info!(member = id, cluster, "removed member"),
        membership::Applied::Updated(_) => {
            tracing::info!(member = id, peer_urls = urls, cluster, "updated member")
        }
    }
}

/// What a conf change answers its proposer: the members right after it (etcd's `configure`
/// returns `cluster.Members()`), or why it was refused.
pub(super) fn conf_change_reply(
    shared: &Shared,
    verdict: &Result<membership::Applied, MembershipError>,
) -> ApplyResult {
    match verdict {
        Ok(_) => Ok(Applied::Members(shared.members.list())),
        Err(e) => Err(ServerError::Membership(e.clone())),
    }
}

/// Writes an accepted change's records (the `members` and `members_removed` buckets).
pub(super) fn save_conf_change(
    tx: &mut BatchTx<'_>,
    verdict: &Result<membership::Applied, MembershipError>,
) -> Result<(), ServerError> {
    if let Ok(applied) = verdict {
        membership::save_applied(tx, applied)?;
    }
    Ok(())
}

/// If `request` is a member's publish (a v2 PUT of its attributes), records the attributes in
/// the membership and returns the member to write to the bucket (`None`: skipped, logged).
/// Other v2 requests are logged and skipped, as oxcd has no v2 store; `/0/version` silently.
pub(super) fn apply_v2(
    shared: &Shared,
    request: &V2Request,
    index: u64,
) -> Option<membership::Member> {
    let published = (request.method == "PUT")
        .then(|| membership::parse_attributes_path(&request.path))
        .flatten();
    let Some(id) = published else {
        if request.method != "PUT" || request.path != "/0/version" {
            tracing::warn!(index, method = %request.method, path = %request.path,
                "skipping a v2 request");
        }
        return None;
    };
    let attributes: membership::Attributes = serde_json::from_str(&request.val).unwrap_or_default();
    match shared.members.set_attributes(id, attributes) {
        AttributesUpdate::Updated(member) => Some(member),
        AttributesUpdate::SkippedRemoved => {
            tracing::warn!(
                member = format!("{id:x}"),
                "skipped publishing the attributes of a removed member"
            );
            None
        }
        AttributesUpdate::UnknownMember => {
            tracing::warn!(
                member = format!("{id:x}"),
                "skipped the attributes of a member not in the cluster"
            );
            None
        }
    }
}

/// Replays a membership entry at or below the consistent index (module doc): the verdict and
/// the in-memory membership only, no bucket write and no reply.
pub(super) fn replay(
    raft: &mut RaftMembership,
    shared: &Shared,
    entry: &pb::Entry,
) -> Result<(), ServerError> {
    match pb::EntryType::try_from(entry.entry_type) {
        Ok(pb::EntryType::EntryConfChange) => {
            // The verdict is recorded in `raft`; there is nobody to answer.
            let _answer = raft.decide(shared, entry)?;
        }
        // Only a bare v2 request (a publish) touches the membership.
        Ok(pb::EntryType::EntryNormal)
            if !entry.data.is_empty() && InternalRaftRequest::decode(&entry.data[..]).is_err() =>
        {
            if let Ok(request) = V2Request::decode(&entry.data[..]) {
                apply_v2(shared, &request, entry.index);
            }
        }
        _ => {}
    }
    Ok(())
}
