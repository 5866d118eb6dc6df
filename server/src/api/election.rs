//! The Election service (etcd's `v3election`): leader election per name, on the same queue of
//! lease-bound keys as the Lock service (`recipes.rs`); the candidate whose key under `name/`
//! was created first leads, and its key's value is the leader's proclamation.
//!
//! * `Campaign(name, lease, value)`: create `name/<lease in hex>` with the value (or, if this
//!   lease already campaigns, proclaim the new value on its key), then wait for the turn. The
//!   answer's `LeaderKey` (name, key, create revision, lease) is what Proclaim and Resign take.
//!   If the key vanishes while waiting (the lease expired), the campaign fails with
//!   "election: not leader" rather than electing a candidate that no longer exists.
//! * `Proclaim(leader, value)`: puts the value on the leader key if its create revision is
//!   still the leader's, otherwise "election: not leader".
//! * `Resign(leader)`: deletes the leader key if its create revision is still the leader's.
//! * `Leader(name)`: the first-created key under `name/`, or "election: no leader".
//! * `Observe(name)`: streams the leader's key-value at once (or when the first candidate
//!   appears), every new proclamation of that leader, and each following leader.
//!
//! As in etcd, a Campaign or Proclaim without a lease runs under a new 60 s lease. Resign with
//! lease 0 does not grant one (etcd grants a lease there that nothing ever uses).

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::recipes::{
    created_at, first_created, get_op, put_op, queue_prefix, range_kvs, wait_for_turn, Local,
    RecipeError, ReleaseOnDrop, Session, WaitError,
};
use super::watch::read_events;
use crate::etcdserver::{EtcdServer, ServerError};
use crate::mvcc::watch::MAX_REVS_PER_READ;
use crate::mvcc::KeyRange;
use crate::pb::etcdserverpb::{ResponseHeader, TxnRequest};
use crate::pb::mvccpb::event::EventType;
use crate::pb::mvccpb::{Event, KeyValue};
use crate::pb::v3electionpb::election_server::Election;
use crate::pb::v3electionpb::{
    CampaignRequest, CampaignResponse, LeaderKey, LeaderRequest, LeaderResponse, ProclaimRequest,
    ProclaimResponse, ResignRequest, ResignResponse,
};

/// Responses an Observe stream may have in flight to its client.
const OBSERVE_BUFFER: usize = 16;

/// The Election service over one member.
pub struct ElectionService {
    local: Local,
}

impl ElectionService {
    pub fn new(server: EtcdServer) -> ElectionService {
        ElectionService {
            local: Local::new(server),
        }
    }

    /// Puts `value` on `key` if it was created at `rev`; the header of that write.
    async fn proclaim(
        &self,
        key: &[u8],
        rev: i64,
        value: &[u8],
        lease: i64,
    ) -> Result<ResponseHeader, Status> {
        let response = self
            .local
            .txn(TxnRequest {
                compare: vec![created_at(key, rev)],
                success: vec![put_op(key, value, lease)],
                failure: Vec::new(),
            })
            .await?;
        if !response.succeeded {
            return Err(RecipeError::NotLeader.into());
        }
        Ok(response.header.unwrap_or_default())
    }

    /// Deletes `key` if it was created at `rev`; the header of that transaction.
    async fn resign(&self, key: &[u8], rev: i64) -> Result<ResponseHeader, Status> {
        let response = self.local.delete_if_created_at(key, rev).await?;
        Ok(response.header.unwrap_or_default())
    }
}

#[tonic::async_trait]
impl Election for ElectionService {
    async fn campaign(
        &self,
        request: Request<CampaignRequest>,
    ) -> Result<Response<CampaignResponse>, Status> {
        let req = request.into_inner();
        let Session { lease, prefix, key } = self.local.session(&req.name, req.lease).await?;
        let response = self
            .local
            .txn(TxnRequest {
                compare: vec![created_at(&key, 0)],
                success: vec![put_op(&key, &req.value, lease)],
                failure: vec![get_op(&key)],
            })
            .await?;
        let header = response.header.unwrap_or_default();
        let mut rev = header.revision;
        if !response.succeeded {
            // This lease already campaigns: keep its place, with the new value.
            let Some(existing) = range_kvs(&response, 0).first() else {
                return Err(RecipeError::NotLeader.into());
            };
            rev = existing.create_revision;
            if existing.value != req.value {
                if let Err(status) = self.proclaim(&key, rev, &req.value, lease).await {
                    let _ = self.resign(&key, rev).await;
                    return Err(status);
                }
            }
        }
        let release = ReleaseOnDrop::new(&self.local, &key, rev);
        match wait_for_turn(&self.local, &prefix, &key, rev).await {
            Ok(_) => release.disarm(),
            Err(WaitError::Lost) => return Err(RecipeError::NotLeader.into()),
            Err(WaitError::Status(status)) => return Err(status),
        }
        Ok(Response::new(CampaignResponse {
            header: Some(header),
            leader: Some(LeaderKey {
                name: req.name,
                key,
                rev,
                lease,
            }),
        }))
    }

    async fn proclaim(
        &self,
        request: Request<ProclaimRequest>,
    ) -> Result<Response<ProclaimResponse>, Status> {
        let req = request.into_inner();
        let leader = req.leader.ok_or(RecipeError::MissingLeaderKey)?;
        let lease = self.local.session_lease(leader.lease).await?;
        let header = self
            .proclaim(&leader.key, leader.rev, &req.value, lease)
            .await?;
        Ok(Response::new(ProclaimResponse {
            header: Some(header),
        }))
    }

    async fn leader(
        &self,
        request: Request<LeaderRequest>,
    ) -> Result<Response<LeaderResponse>, Status> {
        let prefix = queue_prefix(&request.into_inner().name);
        let mut response = self.local.range(first_created(&prefix)).await?;
        if response.kvs.is_empty() {
            return Err(RecipeError::NoLeader.into());
        }
        Ok(Response::new(LeaderResponse {
            header: response.header,
            kv: Some(response.kvs.swap_remove(0)),
        }))
    }

    type ObserveStream = ReceiverStream<Result<LeaderResponse, Status>>;

    async fn observe(
        &self,
        request: Request<LeaderRequest>,
    ) -> Result<Response<Self::ObserveStream>, Status> {
        let prefix = queue_prefix(&request.into_inner().name);
        let (tx, rx) = mpsc::channel(OBSERVE_BUFFER);
        let local = self.local.clone();
        tokio::spawn(async move {
            match observe(&local, &prefix, &tx).await {
                Ok(()) | Err(ObserveEnd::Gone) => {}
                Err(ObserveEnd::Status(status)) => {
                    let _ = tx.send(Err(status)).await;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn resign(
        &self,
        request: Request<ResignRequest>,
    ) -> Result<Response<ResignResponse>, Status> {
        let leader = request
            .into_inner()
            .leader
            .ok_or(RecipeError::MissingLeaderKey)?;
        let header = self.resign(&leader.key, leader.rev).await?;
        Ok(Response::new(ResignResponse {
            header: Some(header),
        }))
    }
}

enum ObserveEnd {
    /// The client went away.
    Gone,
    Status(Status),
}

impl<E: Into<Status>> From<E> for ObserveEnd {
    fn from(error: E) -> ObserveEnd {
        ObserveEnd::Status(error.into())
    }
}

type Outbox = mpsc::Sender<Result<LeaderResponse, Status>>;

/// Streams the leader of the election under `prefix` until the client goes away. Like etcd's,
/// the stream simply ends if the events it follows are compacted away.
async fn observe(local: &Local, prefix: &[u8], tx: &Outbox) -> Result<(), ObserveEnd> {
    let server = local.server();
    loop {
        let current = local.range(first_created(prefix)).await?;
        let current_rev = current.header.as_ref().map_or(0, |h| h.revision);
        let (header, leader) = match current.kvs.into_iter().next() {
            Some(kv) => (current.header, kv),
            None => {
                // Nobody campaigns: the first candidate to appear leads.
                let mut cursor = EventCursor::new(server, current_rev);
                let Some((event, _)) = cursor.next(server, prefix, true).await? else {
                    return Ok(());
                };
                let kv = event.kv.unwrap_or_default();
                (Some(server.header(kv.mod_revision)), kv)
            }
        };
        let from = header.as_ref().map_or(0, |h| h.revision) + 1;
        let key = leader.key.clone();
        send(tx, header, leader).await?;
        // Follow that leader's key until it is deleted.
        let mut cursor = EventCursor::new(server, from);
        loop {
            let Some((event, header)) = cursor.next(server, &key, false).await? else {
                return Ok(());
            };
            if event.r#type == EventType::Delete as i32 {
                break;
            }
            send(tx, Some(header), event.kv.unwrap_or_default()).await?;
        }
    }
}

async fn send(tx: &Outbox, header: Option<ResponseHeader>, kv: KeyValue) -> Result<(), ObserveEnd> {
    let response = LeaderResponse {
        header,
        kv: Some(kv),
    };
    tx.send(Ok(response)).await.map_err(|_| ObserveEnd::Gone)
}

/// Reads the applied events from a revision on, waiting for new ones (an in-process watch).
struct EventCursor {
    next_rev: i64,
    pending: std::collections::VecDeque<std::sync::Arc<Event>>,
    pending_header: ResponseHeader,
    revisions: tokio::sync::watch::Receiver<i64>,
}

impl EventCursor {
    fn new(server: &EtcdServer, from: i64) -> EventCursor {
        EventCursor {
            next_rev: from,
            pending: Default::default(),
            pending_header: ResponseHeader::default(),
            revisions: server.hub().subscribe(),
        }
    }

    /// The next event on `key` (the keys under it when `prefix`), a delete only if not `prefix`
    /// (a put in any case when `prefix`), with the header of the read that found it; `None`
    /// when the events from the cursor on are compacted.
    async fn next(
        &mut self,
        server: &EtcdServer,
        key: &[u8],
        prefix: bool,
    ) -> Result<Option<(Event, ResponseHeader)>, ObserveEnd> {
        let range_end = if prefix {
            crate::mvcc::prefix_range_end(key)
        } else {
            Vec::new()
        };
        let range = KeyRange::from_request(key, &range_end);
        loop {
            while let Some(event) = self.pending.pop_front() {
                let is_put = event.r#type == EventType::Put as i32;
                let on_key = event.kv.as_ref().is_some_and(|kv| range.contains(&kv.key));
                if on_key && (is_put || !prefix) {
                    let event = std::sync::Arc::unwrap_or_clone(event);
                    return Ok(Some((event, self.pending_header)));
                }
            }
            let target = server.hub().last_rev();
            if self.next_rev > target {
                if self.revisions.changed().await.is_err() {
                    return Err(ServerError::Stopped.into());
                }
                continue;
            }
            if self.next_rev < server.store().compact_rev()? {
                return Ok(None);
            }
            let to = target.min(self.next_rev + MAX_REVS_PER_READ - 1);
            self.pending = read_events(server, self.next_rev, to, &mut None)?.into();
            self.pending_header = server.header(target);
            self.next_rev = to + 1;
        }
    }
}
