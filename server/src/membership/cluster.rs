//! The cluster's membership as data ([`Cluster`]) and the two steps every member runs on each
//! committed membership conf change: [`Cluster::validate`] (the verdict) and [`Cluster::apply`]
//! (the effect). Pure: the caller writes the buckets ([`super::save_applied`]) and updates the
//! transport from the returned [`Applied`].
//!
//! Invariants: `members` holds no ID of `removed`; a removed ID never comes back (any change
//! naming it is refused); at most [`MAX_LEARNERS`] learners are added by a change. The verdict
//! depends only on the cluster as of the entry, so every member reaches the same one; a refused
//! change still uses its log index (the caller applies it to raft with node ID 0).
//!
//! etcd 3.4.23 quirk kept on purpose: an update replaces *all* raft attributes of the member
//! with the context's, and the context etcd writes never says `isLearner`, so updating a
//! learner's URLs makes it a voting member **in the membership** while raft keeps it a learner.
//! From then on the membership counts more voters than raft; see
//! [`Cluster::validate_with_raft_voters`].

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::{Attributes, Change, ConfChangeType, Member, MembershipError};

/// How many learners a cluster may have (etcd's `maxLearners`).
pub const MAX_LEARNERS: usize = 1;

/// The membership of one cluster (etcd's `RaftCluster` without its storage).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cluster {
    /// The cluster ID.
    pub id: u64,
    /// The members, by ID (so in etcd's `Members()` order).
    pub members: BTreeMap<u64, Member>,
    /// IDs removed from the cluster; none may come back.
    pub removed: BTreeSet<u64>,
}

/// What [`Cluster::apply`] changed, so the caller can write the buckets and update the
/// transport.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Applied {
    /// A member was added (learner or voter); the member as recorded. The transport gets a
    /// peer for it unless it is this member.
    Added(Member),
    /// A learner became a voting member; the member as recorded.
    Promoted(Member),
    /// A member was removed; the member as it was. If it is this member, this member stops.
    Removed(Member),
    /// A member's peer URLs (and learner flag, see the module doc) were replaced; the member
    /// as recorded. The transport updates the peer's URLs unless it is this member.
    Updated(Member),
}

impl Applied {
    /// The member the change was about.
    pub fn member(&self) -> &Member {
        match self {
            Applied::Added(m)
            | Applied::Promoted(m)
            | Applied::Removed(m)
            | Applied::Updated(m) => m,
        }
    }
}

/// What [`Cluster::set_attributes`] did with a member's published attributes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AttributesUpdate {
    /// The member now has them; the member as recorded (to be written to the bucket).
    Updated(Member),
    /// The member was removed: skipped (etcd only warns).
    SkippedRemoved,
    /// No such member, removed or not (etcd panics; the caller should log it).
    UnknownMember,
}

impl Cluster {
    /// A cluster `id` with `members` and nothing removed.
    pub fn new(id: u64, members: impl IntoIterator<Item = Member>) -> Cluster {
        Cluster {
            id,
            members: members.into_iter().map(|m| (m.id, m)).collect(),
            removed: BTreeSet::new(),
        }
    }

    /// Member `id`, if the cluster has it.
    pub fn member(&self, id: u64) -> Option<&Member> {
        self.members.get(&id)
    }

    /// True if `id` was removed from the cluster.
    pub fn is_removed(&self, id: u64) -> bool {
        self.removed.contains(&id)
    }

    /// The voting members, by ID (etcd's `VotingMembers`).
    pub fn voting_members(&self) -> impl Iterator<Item = &Member> {
        self.members.values().filter(|m| !m.is_learner)
    }

    /// The IDs of the voting members, as this membership sees them.
    pub fn voter_ids(&self) -> BTreeSet<u64> {
        self.voting_members().map(|m| m.id).collect()
    }

    /// How many learners the cluster has.
    pub fn learner_count(&self) -> usize {
        self.members.values().filter(|m| m.is_learner).count()
    }

    /// Whether `change` may be applied to the cluster as it is (etcd's
    /// `ValidateConfigurationChange`), checked in etcd's order:
    ///
    /// 1. the ID was removed → [`MembershipError::IdRemoved`] (any kind);
    /// 2. AddNode / AddLearnerNode promoting: unknown ID → `IdNotFound`; not a learner →
    ///    `MemberNotLearner`;
    /// 3. AddNode / AddLearnerNode adding: ID known → `IdExists`; a peer URL of any member →
    ///    `PeerUrlExists`; a learner (per the context) when the cluster has
    ///    [`MAX_LEARNERS`] → `TooManyLearners`;
    /// 4. RemoveNode: unknown ID → `IdNotFound`; oxcd adds: the last voting member →
    ///    `RemovesLastVoter`;
    /// 5. UpdateNode: unknown ID → `IdNotFound`; a peer URL of *another* member →
    ///    `PeerUrlExists`.
    ///
    /// A change without the context its kind needs is `BadContext`.
    pub fn validate(&self, change: &Change) -> Result<(), MembershipError> {
        self.validate_with_raft_voters(change, &self.voter_ids())
    }

    /// [`Cluster::validate`], with the last-voter rule checked against `raft_voters` (raft's
    /// `ConfState` voters) rather than this membership's voters. The two differ only after the
    /// update quirk (module doc) turned a raft learner into a membership voter: then removing
    /// raft's last voter passes [`Cluster::validate`] but makes raft fail ("removed all
    /// voters"), so the apply path should call this with raft's voters.
    pub fn validate_with_raft_voters(
        &self,
        change: &Change,
        raft_voters: &BTreeSet<u64>,
    ) -> Result<(), MembershipError> {
        let id = change.node_id;
        if self.is_removed(id) {
            return Err(MembershipError::IdRemoved);
        }
        match change.kind {
            ConfChangeType::ConfChangeAddNode | ConfChangeType::ConfChangeAddLearnerNode => {
                let context = self.context_of(change)?;
                if context.is_promote {
                    let member = self.member(id).ok_or(MembershipError::IdNotFound)?;
                    if !member.is_learner {
                        return Err(MembershipError::MemberNotLearner);
                    }
                    return Ok(());
                }
                if self.members.contains_key(&id) {
                    return Err(MembershipError::IdExists);
                }
                self.check_urls_unused(&context.member.peer_urls, None)?;
                if context.member.is_learner && self.learner_count() + 1 > MAX_LEARNERS {
                    return Err(MembershipError::TooManyLearners);
                }
                Ok(())
            }
            ConfChangeType::ConfChangeRemoveNode => {
                if !self.members.contains_key(&id) {
                    return Err(MembershipError::IdNotFound);
                }
                if raft_voters.contains(&id) && raft_voters.len() == 1 {
                    return Err(MembershipError::RemovesLastVoter);
                }
                Ok(())
            }
            ConfChangeType::ConfChangeUpdateNode => {
                if !self.members.contains_key(&id) {
                    return Err(MembershipError::IdNotFound);
                }
                let context = self.context_of(change)?;
                self.check_urls_unused(&context.member.peer_urls, Some(id))
            }
        }
    }

    /// Applies a change [`Cluster::validate`] accepted (etcd's `AddMember`, `PromoteMember`,
    /// `RemoveMember`, `UpdateRaftAttributes`) and says what changed.
    ///
    /// # Panics
    /// If `change` names no member where it must (a promote, remove or update of an unknown
    /// ID) or lacks its context: the caller skipped validation, a broken invariant.
    pub fn apply(&mut self, change: &Change) -> Applied {
        let id = change.node_id;
        let context = || {
            change
                .context
                .as_ref()
                .expect("apply of an unvalidated change: no context")
        };
        let known = |members: &mut BTreeMap<u64, Member>| -> Member {
            members
                .remove(&id)
                .unwrap_or_else(|| panic!("apply of an unvalidated change: no member {id:x}"))
        };
        match change.kind {
            ConfChangeType::ConfChangeAddNode | ConfChangeType::ConfChangeAddLearnerNode
                if context().is_promote =>
            {
                let mut member = known(&mut self.members);
                member.is_learner = false;
                self.members.insert(id, member.clone());
                Applied::Promoted(member)
            }
            ConfChangeType::ConfChangeAddNode | ConfChangeType::ConfChangeAddLearnerNode => {
                let member = context().member.clone();
                self.members.insert(id, member.clone());
                Applied::Added(member)
            }
            ConfChangeType::ConfChangeRemoveNode => {
                let member = known(&mut self.members);
                self.removed.insert(id);
                Applied::Removed(member)
            }
            ConfChangeType::ConfChangeUpdateNode => {
                let mut member = known(&mut self.members);
                // All raft attributes are replaced: the 3.4.23 quirk (module doc).
                member.peer_urls = context().member.peer_urls.clone();
                member.is_learner = context().member.is_learner;
                self.members.insert(id, member.clone());
                Applied::Updated(member)
            }
        }
    }

    /// Records what member `id` published about itself (etcd's `UpdateAttributes`, applied
    /// from the v2 PUT of `/0/members/<id>/attributes`).
    pub fn set_attributes(&mut self, id: u64, attributes: Attributes) -> AttributesUpdate {
        match self.members.get_mut(&id) {
            Some(member) => {
                member.name = attributes.name;
                member.client_urls = attributes.client_urls;
                AttributesUpdate::Updated(member.clone())
            }
            None if self.removed.contains(&id) => AttributesUpdate::SkippedRemoved,
            None => AttributesUpdate::UnknownMember,
        }
    }

    fn context_of<'c>(
        &self,
        change: &'c Change,
    ) -> Result<&'c super::ConfChangeContext, MembershipError> {
        let bad = |reason: String| MembershipError::BadContext {
            node_id: change.node_id,
            reason,
        };
        let context = change
            .context
            .as_ref()
            .ok_or_else(|| bad("no context".to_string()))?;
        if context.member.id != change.node_id {
            return Err(bad(format!("it names member {:x}", context.member.id)));
        }
        Ok(context)
    }

    /// `PeerUrlExists` if any of `urls` belongs to a member other than `except`.
    fn check_urls_unused(
        &self,
        urls: &[String],
        except: Option<u64>,
    ) -> Result<(), MembershipError> {
        let used = self
            .members
            .values()
            .filter(|m| Some(m.id) != except)
            .flat_map(|m| m.peer_urls.iter())
            .collect::<BTreeSet<_>>();
        if urls.iter().any(|u| used.contains(u)) {
            return Err(MembershipError::PeerUrlExists);
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "cluster_tests.rs"]
mod tests;
