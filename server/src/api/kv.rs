//! The KV service (etcd's `v3rpc/key.go` with the quota interceptor of `v3rpc/quota.go`):
//! checks each request as etcd does before raft, then serves reads from the store and sends
//! writes through raft.
//!
//! * Range and read-only Txn: linearizable by default (a read index barrier first), or
//!   serializable (served from the store at once).
//! * Put and Txn with writes: the quota check first ([`EtcdServer::check_quota`]).
//! * Compact with `physical`: answered once the `key` bucket is compacted.

use tonic::{Request, Response, Status};

use super::errors::{received_message_too_large, EtcdError, GRPC_OVERHEAD_BYTES};
use crate::etcdserver::{Applied, EtcdServer};
use crate::mvcc::{check, kv, txn};
use crate::pb::etcdserverpb::kv_server::Kv;
use crate::pb::etcdserverpb::request_op::Request as Op;
use crate::pb::etcdserverpb::{
    CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse,
    InternalRaftRequest, PutRequest, PutResponse, RangeRequest, RangeResponse, TxnRequest,
    TxnResponse,
};

/// etcd's `kvOverhead`: the quota cost of a key-value beyond its key and value bytes.
const KV_OVERHEAD_BYTES: u64 = 256;

/// The KV service over one member.
pub struct KvService {
    server: EtcdServer,
}

impl KvService {
    pub fn new(server: EtcdServer) -> KvService {
        KvService { server }
    }

    /// grpc-go refuses a message over `--max-request-bytes` plus framing slack with its own
    /// status; tonic's limit is set higher, so this check gives grpc-go's answer.
    fn check_size(&self, message: &impl prost::Message) -> Result<(), Status> {
        let limit = self.server.limits().max_request_bytes + GRPC_OVERHEAD_BYTES;
        let size = message.encoded_len();
        if size as u64 > limit {
            return Err(received_message_too_large(size, limit as usize));
        }
        Ok(())
    }

    async fn propose(&self, request: InternalRaftRequest) -> Result<Applied, Status> {
        Ok(self.server.propose(request).await?)
    }
}

fn unexpected(what: &str) -> Status {
    Status::internal(format!("oxcd: unexpected apply result for {what}"))
}

/// etcd's quota cost of a put.
fn put_cost(put: &PutRequest) -> u64 {
    KV_OVERHEAD_BYTES + (put.key.len() + put.value.len()) as u64
}

/// etcd's quota cost of a txn: every put of both branches, nested txns included.
fn txn_cost(txn: &TxnRequest) -> u64 {
    txn.success
        .iter()
        .chain(&txn.failure)
        .map(|op| match &op.request {
            Some(Op::RequestPut(put)) => put_cost(put),
            Some(Op::RequestTxn(nested)) => txn_cost(nested),
            _ => 0,
        })
        .sum()
}

#[tonic::async_trait]
impl Kv for KvService {
    async fn range(
        &self,
        request: Request<RangeRequest>,
    ) -> Result<Response<RangeResponse>, Status> {
        let req = request.into_inner();
        // The learner gate (`serve::learner_gate`) lets Range through; a learner serves only
        // serializable ones.
        if !req.serializable && self.server.is_learner() {
            return Err(EtcdError::NotSupportedForLearner.into());
        }
        check::check_range_request(&req)?;
        if !req.serializable {
            self.server.read_barrier().await?;
        }
        let view = self.server.store().read()?;
        let mut response = kv::range(&view, &req)?;
        self.server.fill_header(&mut response.header);
        Ok(Response::new(response))
    }

    async fn put(&self, request: Request<PutRequest>) -> Result<Response<PutResponse>, Status> {
        let req = request.into_inner();
        self.check_size(&req)?;
        check::check_put_request(&req)?;
        self.server.check_quota(put_cost(&req))?;
        let applied = self
            .propose(InternalRaftRequest {
                put: Some(req),
                ..InternalRaftRequest::default()
            })
            .await?;
        let Applied::Put(mut response) = applied else {
            return Err(unexpected("put"));
        };
        self.server.fill_header(&mut response.header);
        Ok(Response::new(response))
    }

    async fn delete_range(
        &self,
        request: Request<DeleteRangeRequest>,
    ) -> Result<Response<DeleteRangeResponse>, Status> {
        let req = request.into_inner();
        self.check_size(&req)?;
        check::check_delete_request(&req)?;
        let applied = self
            .propose(InternalRaftRequest {
                delete_range: Some(req),
                ..InternalRaftRequest::default()
            })
            .await?;
        let Applied::DeleteRange(mut response) = applied else {
            return Err(unexpected("delete range"));
        };
        self.server.fill_header(&mut response.header);
        Ok(Response::new(response))
    }

    async fn txn(&self, request: Request<TxnRequest>) -> Result<Response<TxnResponse>, Status> {
        let req = request.into_inner();
        self.check_size(&req)?;
        check::check_txn(&req, self.server.limits().max_txn_ops)?;
        if txn::is_txn_read_only(&req) {
            if !txn::is_txn_serializable(&req) {
                self.server.read_barrier().await?;
            }
            let view = self.server.store().read()?;
            let mut response = txn::read_only_txn(&view, &req)?;
            self.server.fill_header(&mut response.header);
            return Ok(Response::new(response));
        }
        self.server.check_quota(txn_cost(&req))?;
        let applied = self
            .propose(InternalRaftRequest {
                txn: Some(req),
                ..InternalRaftRequest::default()
            })
            .await?;
        let Applied::Txn(mut response) = applied else {
            return Err(unexpected("txn"));
        };
        self.server.fill_header(&mut response.header);
        Ok(Response::new(response))
    }

    async fn compact(
        &self,
        request: Request<CompactionRequest>,
    ) -> Result<Response<CompactionResponse>, Status> {
        let req = request.into_inner();
        let physical = req.physical;
        let applied = self
            .propose(InternalRaftRequest {
                compaction: Some(req),
                ..InternalRaftRequest::default()
            })
            .await?;
        let Applied::Compaction { mut response, wait } = applied else {
            return Err(unexpected("compaction"));
        };
        if physical {
            tokio::task::spawn_blocking(move || wait.wait())
                .await
                .map_err(|e| Status::internal(e.to_string()))??;
        }
        self.server.fill_header(&mut response.header);
        Ok(Response::new(response))
    }
}
