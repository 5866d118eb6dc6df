//! Membership changes clients ask for (etcd's `AddMember`, `RemoveMember`, `UpdateMember`,
//! `PromoteMember` in `etcdserver/server.go`): the checks before proposing, the conf change
//! proposal, and the wait for its apply.
//!
//! The checks run on the member that received the request, against its own view:
//! * `--strict-reconfig-check` (on by default): `membership::strict`'s started-quorum and
//!   connectivity rules, with connectivity from this member's peer transport;
//! * a promote first needs the learner's raft log close to the leader's, which only the leader
//!   knows, so a follower forwards a promote to the leader over the peer transport.
//!
//! Then every member decides the change again at apply (`apply_membership`); the reply is the
//! membership right after the apply, or the reason the change was refused.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prost::Message as _;
use tokio::sync::oneshot;

use super::error::ServerError;
use super::server::{Applied, EtcdServer, LoopRequest};
use crate::config::EtcdUrl;
use crate::membership::{self, strict, Change, ConfChangeType, Member};
use crate::raft::convert::ConfChange;
use crate::raft::transport::{
    self, RpcAnswer, RpcCode, RpcFailure, RpcHandler, RpcRequest, TransportError,
};

impl EtcdServer {
    /// Adds a member (a learner if `is_learner`) reachable at `peer_urls`; returns it and the
    /// members after the change. Its ID is etcd's time-based one.
    pub async fn add_member(
        &self,
        peer_urls: &[String],
        is_learner: bool,
    ) -> Result<(Member, Vec<Member>), ServerError> {
        let peer_urls = normalise_peer_urls(peer_urls)?;
        let unix_secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let member = Member {
            id: membership::added_member_id(&peer_urls, unix_secs),
            peer_urls,
            is_learner,
            ..Member::default()
        };
        if self.shared.strict_reconfig_check {
            let cluster = self.shared.members.cluster();
            strict::may_add_member(&cluster, is_learner, self.member_id(), &|id| {
                self.active_for(id)
            })?;
        }
        let members = self.configure(Change::add(member.clone())).await?;
        Ok((member, members))
    }

    /// Removes member `id`; returns the members after the change.
    pub async fn remove_member(&self, id: u64) -> Result<Vec<Member>, ServerError> {
        if self.shared.strict_reconfig_check {
            let cluster = self.shared.members.cluster();
            strict::may_remove_member(&cluster, id, self.member_id(), &|peer| {
                self.active_for(peer)
            })?;
        }
        self.configure(Change::remove(id)).await
    }

    /// Gives member `id` the peer URLs `peer_urls`, as given (etcd neither checks nor sorts
    /// them here); returns the members after the change.
    pub async fn update_member(
        &self,
        id: u64,
        peer_urls: Vec<String>,
    ) -> Result<Vec<Member>, ServerError> {
        self.configure(Change::update(id, peer_urls)).await
    }

    /// Promotes learner `id` to a voting member once its log is close to the leader's;
    /// returns the members after the change. A follower forwards the request to the leader.
    pub async fn promote_member(&self, id: u64) -> Result<Vec<Member>, ServerError> {
        let (reply, rx) = oneshot::channel();
        self.send(LoopRequest::LearnerProgress { id, reply })?;
        let progress = rx.await.map_err(|_| ServerError::Stopped)?;
        let Some((learner_match, leader_match)) = progress else {
            return self.forward_promote(id).await;
        };
        strict::check_learner_ready(learner_match, leader_match)?;
        if self.shared.strict_reconfig_check {
            strict::may_promote_member(&self.shared.members.cluster(), id)?;
        }
        self.configure(Change::promote(id)).await
    }

    /// Asks the leader to promote `id` (etcd's `POST /members/promote/<id>` to the leader).
    async fn forward_promote(&self, id: u64) -> Result<Vec<Member>, ServerError> {
        let leader = self.leader();
        let urls = match self.member(leader) {
            Some(member) if leader != self.member_id() => member.peer_urls,
            _ => return Err(ServerError::NoLeader),
        };
        let (from, cluster_id) = (self.member_id(), self.cluster_id());
        let timeout = self.shared.limits.request_timeout;
        let call = tokio::task::spawn_blocking(move || {
            transport::promote_member(&urls, from, cluster_id, id, timeout)
        });
        match call
            .await
            .map_err(|e| ServerError::Internal(e.to_string()))?
        {
            Ok(members) => Ok(members),
            Err(TransportError::PeerFailed(failure)) => Err(match failure.code {
                RpcCode::Timeout => ServerError::Timeout,
                // The leader sends the client-visible text; `api::to_status` maps it back.
                _ => ServerError::Internal(failure.message),
            }),
            Err(e) => {
                tracing::warn!(%e, leader = format!("{leader:x}"), "cannot forward a promote");
                Err(ServerError::Timeout)
            }
        }
    }

    /// True if this member is a learner (etcd's `IsLearner`: the membership's view).
    pub fn is_learner(&self) -> bool {
        self.shared.members.is_learner(self.member_id())
    }

    /// How long this member's transport has been connected to peer `id` (`None`: it is not).
    fn active_for(&self, id: u64) -> Option<Duration> {
        let since = self.shared.transport.active_since(id)?;
        Some(since.elapsed())
    }

    /// Proposes `change` and waits for its apply (etcd's `configure`).
    async fn configure(&self, change: Change) -> Result<Vec<Member>, ServerError> {
        let id = self.shared.ids.next();
        let cc = ConfChange {
            id,
            change_type: change.kind as i32,
            node_id: change.node_id,
            // etcd writes no context for a removal.
            context: (change.kind != ConfChangeType::ConfChangeRemoveNode)
                .then(|| change.context_bytes()),
        };
        let request = LoopRequest::ProposeConfChange {
            id,
            data: cc.encode_to_vec(),
        };
        match self.propose_and_wait(id, request).await? {
            Applied::Members(members) => Ok(members),
            _ => Err(ServerError::Internal(
                "a conf change was answered with another request's result".to_string(),
            )),
        }
    }
}

/// Answers peers' Rpc requests (`raft::transport::rpc`): the membership, and promotes
/// forwarded by followers. Holds the server weakly, so the transport inside it does not keep
/// it alive. Runs on a transport thread: the promote runs to completion on a runtime of its
/// own.
pub(super) fn rpc_handler(shared: std::sync::Weak<super::server::Shared>) -> RpcHandler {
    Arc::new(move |request| {
        let shared = shared
            .upgrade()
            .ok_or_else(|| RpcFailure::new(RpcCode::Other, "etcdserver: server stopped"))?;
        let server = EtcdServer { shared };
        let members = match request {
            RpcRequest::Members => server.members(),
            RpcRequest::PromoteMember(id) => tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| RpcFailure::new(RpcCode::Other, e.to_string()))?
                .block_on(server.promote_member(id))
                .map_err(|e| rpc_failure(&e))?,
        };
        Ok(RpcAnswer::Members {
            cluster_id: server.cluster_id(),
            members,
        })
    })
}

/// A promote's failure as the leader answers it: classified as etcd's HTTP codes classify it,
/// with the internal error's text, which the follower's `api::errors::to_status` maps to the
/// same status a client of the leader would get.
fn rpc_failure(e: &ServerError) -> RpcFailure {
    use membership::MembershipError as M;
    let code = match e {
        ServerError::Membership(M::IdNotFound | M::IdRemoved) => RpcCode::NotFound,
        ServerError::Membership(M::MemberNotLearner | M::LearnerNotReady) => {
            RpcCode::FailedPrecondition
        }
        ServerError::Timeout => RpcCode::Timeout,
        _ => RpcCode::Other,
    };
    RpcFailure::new(code, e.to_string())
}

/// MemberAdd's peer URLs as etcd's `types.NewURLs` makes them: each parsed and rendered in
/// Go's form, then sorted. Any that does not parse → "given member URLs are invalid".
fn normalise_peer_urls(peer_urls: &[String]) -> Result<Vec<String>, ServerError> {
    let mut urls = peer_urls
        .iter()
        .map(|u| EtcdUrl::parse(u).map(|u| u.as_str().to_string()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| ServerError::InvalidPeerUrls)?;
    urls.sort();
    Ok(urls)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn added_peer_urls_are_checked_and_sorted_as_etcd_does() {
        // Proves MemberAdd's URLs are sorted, kept in Go's rendering, and refused with etcd's
        // text when one is not a URL etcd accepts.
        let urls = |list: &[&str]| list.iter().map(|u| u.to_string()).collect::<Vec<_>>();
        assert_eq!(
            normalise_peer_urls(&urls(&["http://10.0.0.2:2380", "http://10.0.0.1:2380"])).unwrap(),
            urls(&["http://10.0.0.1:2380", "http://10.0.0.2:2380"])
        );
        for bad in ["foo", "http://10.0.0.1:2380/path", "ftp://10.0.0.1:2380"] {
            let e = normalise_peer_urls(&urls(&[bad])).unwrap_err();
            assert_eq!(e.to_string(), "etcdserver: given member URLs are invalid");
        }
    }
}
