//! The Lease service (etcd's `v3rpc/lease.go`): grant and revoke through raft, keep-alive,
//! time-to-live and the list from the leader's lessor.
//!
//! etcd's answers that are not errors: a keep-alive for a missing lease answers TTL 0 and the
//! stream stays open; TimeToLive of a missing lease answers TTL -1 and granted TTL 0.
//!
//! Only the leader's lessor knows deadlines (it alone expires leases), so a follower forwards
//! keep-alives and TimeToLive to the leader, as etcd does. etcd forwards over its peer HTTP
//! API; oxcd calls the same Lease RPC on the client URL the leader published, and answers with
//! its own header.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tonic::{Request, Response, Status, Streaming};

use crate::etcdserver::{Applied, EtcdServer, ServerError};
use crate::pb::etcdserverpb::lease_client::LeaseClient;
use crate::pb::etcdserverpb::lease_server::Lease;
use crate::pb::etcdserverpb::{
    InternalRaftRequest, LeaseGrantRequest, LeaseGrantResponse, LeaseKeepAliveRequest,
    LeaseKeepAliveResponse, LeaseLeasesRequest, LeaseLeasesResponse, LeaseRevokeRequest,
    LeaseRevokeResponse, LeaseStatus, LeaseTimeToLiveRequest, LeaseTimeToLiveResponse,
};

/// etcd's `leaseOverhead`: the quota cost of a grant.
const LEASE_OVERHEAD_BYTES: u64 = 64;

/// The Lease service over one member.
pub struct LeaseService {
    server: EtcdServer,
    leader: Arc<LeaderLink>,
}

impl LeaseService {
    pub fn new(server: EtcdServer) -> LeaseService {
        LeaseService {
            server,
            leader: Arc::default(),
        }
    }

    fn current_header(&self) -> Result<crate::pb::etcdserverpb::ResponseHeader, Status> {
        let rev = self.server.store().rev()?;
        Ok(self.server.header(rev))
    }
}

/// A follower's channel to the leader's client URL, reused while the leader stays.
#[derive(Default)]
struct LeaderLink(Mutex<Option<(String, Channel)>>);

impl LeaderLink {
    /// A Lease client on the current leader; `no leader` when none is known or it has not
    /// published an http client URL.
    fn client(&self, server: &EtcdServer) -> Result<LeaseClient<Channel>, Status> {
        let leader = server.leader();
        let url = (leader != 0)
            .then(|| server.member(leader))
            .flatten()
            .and_then(|m| m.client_urls.into_iter().find(|u| u.starts_with("http://")))
            .ok_or_else(|| crate::api::errors::to_status(&ServerError::NoLeader))?;
        let mut slot = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((known, channel)) = &*slot {
            if *known == url {
                return Ok(LeaseClient::new(channel.clone()));
            }
        }
        let channel = Channel::from_shared(url.clone())
            .map_err(|e| Status::internal(format!("oxcd: bad leader URL {url}: {e}")))?
            .connect_timeout(Duration::from_secs(1))
            .connect_lazy();
        *slot = Some((url, channel.clone()));
        Ok(LeaseClient::new(channel))
    }
}

/// True when this member's lessor decides deadlines.
fn leads(server: &EtcdServer) -> bool {
    server.leader() == server.member_id()
}

/// Runs `call` within the request timeout (etcd: `etcdserver: request timed out`).
async fn within_timeout<T>(
    server: &EtcdServer,
    call: impl std::future::Future<Output = Result<T, Status>>,
) -> Result<T, Status> {
    match tokio::time::timeout(server.limits().request_timeout, call).await {
        Ok(result) => result,
        Err(_) => Err(crate::api::errors::to_status(&ServerError::Timeout)),
    }
}

/// Answers one keep-alive request (etcd's `LeaseRenew`): on the leader from its lessor,
/// elsewhere from the leader's.
async fn keep_alive(
    server: &EtcdServer,
    leader: &LeaderLink,
    id: i64,
) -> Result<LeaseKeepAliveResponse, Status> {
    let ttl = if leads(server) {
        server.lessor().renew(id).unwrap_or(0)
    } else {
        let mut client = leader.client(server)?;
        within_timeout(server, async move {
            let request = LeaseKeepAliveRequest { id };
            let mut answers = client
                .lease_keep_alive(tokio_stream::iter([request]))
                .await?
                .into_inner();
            match answers.message().await? {
                Some(answer) => Ok(answer.ttl),
                None => Err(crate::api::errors::to_status(&ServerError::NoLeader)),
            }
        })
        .await?
    };
    let rev = server.store().rev()?;
    Ok(LeaseKeepAliveResponse {
        header: Some(server.header(rev)),
        id,
        ttl,
    })
}

#[tonic::async_trait]
impl Lease for LeaseService {
    async fn lease_grant(
        &self,
        request: Request<LeaseGrantRequest>,
    ) -> Result<Response<LeaseGrantResponse>, Status> {
        let mut req = request.into_inner();
        self.server.check_quota(LEASE_OVERHEAD_BYTES)?;
        while req.id == 0 {
            req.id = (self.server.next_id() & 0x7fff_ffff_ffff_ffff) as i64;
        }
        let applied = self
            .server
            .propose(InternalRaftRequest {
                lease_grant: Some(req),
                ..InternalRaftRequest::default()
            })
            .await?;
        let Applied::LeaseGrant(mut response) = applied else {
            return Err(Status::internal(
                "oxcd: unexpected apply result for lease grant",
            ));
        };
        self.server.fill_header(&mut response.header);
        Ok(Response::new(response))
    }

    async fn lease_revoke(
        &self,
        request: Request<LeaseRevokeRequest>,
    ) -> Result<Response<LeaseRevokeResponse>, Status> {
        let applied = self
            .server
            .propose(InternalRaftRequest {
                lease_revoke: Some(request.into_inner()),
                ..InternalRaftRequest::default()
            })
            .await?;
        let Applied::LeaseRevoke(mut response) = applied else {
            return Err(Status::internal(
                "oxcd: unexpected apply result for lease revoke",
            ));
        };
        self.server.fill_header(&mut response.header);
        Ok(Response::new(response))
    }

    type LeaseKeepAliveStream = ReceiverStream<Result<LeaseKeepAliveResponse, Status>>;

    async fn lease_keep_alive(
        &self,
        request: Request<Streaming<LeaseKeepAliveRequest>>,
    ) -> Result<Response<Self::LeaseKeepAliveStream>, Status> {
        let mut inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(16);
        let server = self.server.clone();
        let leader = Arc::clone(&self.leader);
        tokio::spawn(async move {
            loop {
                let req = match inbound.message().await {
                    Ok(Some(req)) => req,
                    Ok(None) | Err(_) => return,
                };
                let answer = keep_alive(&server, &leader, req.id).await;
                let failed = answer.is_err();
                if tx.send(answer).await.is_err() || failed {
                    return;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn lease_time_to_live(
        &self,
        request: Request<LeaseTimeToLiveRequest>,
    ) -> Result<Response<LeaseTimeToLiveResponse>, Status> {
        let req = request.into_inner();
        if !leads(&self.server) {
            let mut client = self.leader.client(&self.server)?;
            let mut response = within_timeout(&self.server, async move {
                Ok(client.lease_time_to_live(req).await?.into_inner())
            })
            .await?;
            response.header = Some(self.current_header()?);
            return Ok(Response::new(response));
        }
        let ttl = self.server.lessor().time_to_live(req.id);
        Ok(Response::new(LeaseTimeToLiveResponse {
            header: Some(self.current_header()?),
            id: req.id,
            ttl: ttl.ttl,
            granted_ttl: ttl.granted_ttl,
            keys: if req.keys { ttl.keys } else { Vec::new() },
        }))
    }

    async fn lease_leases(
        &self,
        _: Request<LeaseLeasesRequest>,
    ) -> Result<Response<LeaseLeasesResponse>, Status> {
        let leases = self
            .server
            .lessor()
            .leases()
            .into_iter()
            .map(|id| LeaseStatus { id })
            .collect();
        Ok(Response::new(LeaseLeasesResponse {
            header: Some(self.current_header()?),
            leases,
        }))
    }
}

/// The leader's expiry loop (etcd's lessor `runLoop` with the server's revoke loop): every
/// 500 ms, become primary when leading (extending every lease by an election timeout) or
/// stop being primary, and propose the revocation of every expired lease.
pub async fn run_expiry(server: EtcdServer) {
    let mut ticker = tokio::time::interval(std::time::Duration::from_millis(500));
    loop {
        ticker.tick().await;
        if server.leader() == server.member_id() && server.leader() != 0 {
            server.lessor().promote(server.election_timeout());
        } else {
            server.lessor().demote();
            continue;
        }
        for id in server.lessor().expired(500) {
            let server = server.clone();
            tokio::spawn(async move {
                let request = InternalRaftRequest {
                    lease_revoke: Some(LeaseRevokeRequest { id }),
                    ..InternalRaftRequest::default()
                };
                if let Err(e) = server.propose(request).await {
                    tracing::warn!(lease = format!("{id:016x}"), %e, "failed to revoke lease");
                }
            });
        }
    }
}
