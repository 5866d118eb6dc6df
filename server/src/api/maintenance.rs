//! The Maintenance service (etcd's `v3rpc/maintenance.go`): alarms through raft, status,
//! online defragmentation, the two hashes, the database snapshot stream, and leader transfer.
//!
//! Snapshot: the backend's consistent copy streamed in 32 KiB chunks, each saying how many
//! bytes remain, followed by one last message holding the SHA-256 of everything sent, which
//! `etcdctl snapshot save` appends to the file and `snapshot status` / `restore` verify.

use std::io::Write;

use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::config::ETCD_SERVER_VERSION;
use crate::etcdserver::{Applied, EtcdServer};
use crate::mvcc::MvccError;
use crate::pb::etcdserverpb::maintenance_server::Maintenance;
use crate::pb::etcdserverpb::{
    AlarmRequest, AlarmResponse, AlarmType, DefragmentRequest, DefragmentResponse,
    DowngradeRequest, DowngradeResponse, HashKvRequest, HashKvResponse, HashRequest, HashResponse,
    InternalRaftRequest, MoveLeaderRequest, MoveLeaderResponse, SnapshotRequest, SnapshotResponse,
    StatusRequest, StatusResponse,
};

/// etcd's `snapshotSendBufferSize`.
const SNAPSHOT_CHUNK_BYTES: usize = 32 * 1024;

/// The etcd version Status reports: the API oxcd serves (so version-gated clients work).
pub fn server_version() -> String {
    ETCD_SERVER_VERSION.to_string()
}

/// The Maintenance service over one member.
pub struct MaintenanceService {
    server: EtcdServer,
}

impl MaintenanceService {
    pub fn new(server: EtcdServer) -> MaintenanceService {
        MaintenanceService { server }
    }
}

/// Streams the snapshot from a blocking thread into the response channel.
struct ChunkWriter {
    tx: mpsc::Sender<Result<SnapshotResponse, Status>>,
    buf: Vec<u8>,
    remaining: u64,
    hasher: Sha256,
}

impl ChunkWriter {
    fn flush_chunk(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.remaining = self.remaining.saturating_sub(self.buf.len() as u64);
        self.hasher.update(&self.buf);
        let blob = std::mem::replace(&mut self.buf, Vec::with_capacity(SNAPSHOT_CHUNK_BYTES));
        let response = SnapshotResponse {
            header: None,
            remaining_bytes: self.remaining,
            blob,
        };
        self.tx
            .blocking_send(Ok(response))
            .map_err(|_| std::io::Error::other("snapshot receiver went away"))
    }
}

impl Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let room = SNAPSHOT_CHUNK_BYTES - self.buf.len();
        let n = room.min(data.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == SNAPSHOT_CHUNK_BYTES {
            self.flush_chunk()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tonic::async_trait]
impl Maintenance for MaintenanceService {
    async fn alarm(
        &self,
        request: Request<AlarmRequest>,
    ) -> Result<Response<AlarmResponse>, Status> {
        let applied = self
            .server
            .propose(InternalRaftRequest {
                alarm: Some(request.into_inner()),
                ..InternalRaftRequest::default()
            })
            .await?;
        let Applied::Alarm(mut response) = applied else {
            return Err(Status::internal("oxcd: unexpected apply result for alarm"));
        };
        response.header = Some(self.server.header(self.server.store().rev()?));
        Ok(Response::new(response))
    }

    async fn status(&self, _: Request<StatusRequest>) -> Result<Response<StatusResponse>, Status> {
        let store = self.server.store();
        let rev = store.rev()?;
        let mut errors: Vec<String> = self
            .server
            .alarms()
            .iter()
            .map(|a| {
                let name = AlarmType::try_from(a.alarm).map_or("UNKNOWN", |t| t.as_str_name());
                format!("memberID:{} alarm:{name} ", a.member_id)
            })
            .collect();
        let leader = self.server.leader();
        if leader == 0 {
            errors.push(crate::etcdserver::ServerError::NoLeader.to_string());
        }
        Ok(Response::new(StatusResponse {
            header: Some(self.server.header(rev)),
            version: server_version(),
            db_size: store.backend().size() as i64,
            leader,
            raft_index: self.server.commit_index(),
            raft_term: self.server.term(),
            raft_applied_index: self.server.applied_index(),
            errors,
            db_size_in_use: store.backend().size_in_use() as i64,
            is_learner: self.server.is_learner(),
        }))
    }

    async fn defragment(
        &self,
        _: Request<DefragmentRequest>,
    ) -> Result<Response<DefragmentResponse>, Status> {
        tracing::info!("starting to defragment the storage backend");
        let server = self.server.clone();
        tokio::task::spawn_blocking(move || server.store().backend().defrag())
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map_err(MvccError::from)?;
        tracing::info!("finished defragmenting the storage backend");
        let rev = self.server.store().rev()?;
        Ok(Response::new(DefragmentResponse {
            header: Some(self.server.header(rev)),
        }))
    }

    async fn hash(&self, _: Request<HashRequest>) -> Result<Response<HashResponse>, Status> {
        let server = self.server.clone();
        let (hash, rev) = tokio::task::spawn_blocking(move || server.store().hash())
            .await
            .map_err(|e| Status::internal(e.to_string()))??;
        Ok(Response::new(HashResponse {
            header: Some(self.server.header(rev)),
            hash,
        }))
    }

    async fn hash_kv(
        &self,
        request: Request<HashKvRequest>,
    ) -> Result<Response<HashKvResponse>, Status> {
        let rev = request.into_inner().revision;
        let server = self.server.clone();
        let hash = tokio::task::spawn_blocking(move || server.store().hash_kv(rev))
            .await
            .map_err(|e| Status::internal(e.to_string()))??;
        Ok(Response::new(HashKvResponse {
            header: Some(self.server.header(hash.current_rev)),
            hash: hash.hash,
            compact_revision: hash.compact_rev,
        }))
    }

    type SnapshotStream = ReceiverStream<Result<SnapshotResponse, Status>>;

    async fn snapshot(
        &self,
        _: Request<SnapshotRequest>,
    ) -> Result<Response<Self::SnapshotStream>, Status> {
        let snapshot = self
            .server
            .store()
            .backend()
            .begin_snapshot()
            .map_err(MvccError::from)?;
        let (tx, rx) = mpsc::channel(4);
        let total = snapshot.size_bytes();
        tracing::info!(size_bytes = total, "sending database snapshot to client");
        tokio::task::spawn_blocking(move || {
            let mut writer = ChunkWriter {
                tx: tx.clone(),
                buf: Vec::with_capacity(SNAPSHOT_CHUNK_BYTES),
                remaining: total,
                hasher: Sha256::new(),
            };
            let written = snapshot
                .write_to(&mut writer)
                .map_err(|e| e.to_string())
                .and_then(|_| writer.flush_chunk().map_err(|e| e.to_string()));
            let last = match written {
                Ok(()) => Ok(SnapshotResponse {
                    header: None,
                    remaining_bytes: 0,
                    blob: writer.hasher.finalize().to_vec(),
                }),
                Err(e) => Err(Status::unknown(e)),
            };
            let _ = tx.blocking_send(last);
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn move_leader(
        &self,
        request: Request<MoveLeaderRequest>,
    ) -> Result<Response<MoveLeaderResponse>, Status> {
        self.server
            .move_leader(request.into_inner().target_id)
            .await?;
        // etcd answers an empty response, without a header (`move-leader -w json` prints {}).
        Ok(Response::new(MoveLeaderResponse { header: None }))
    }

    async fn downgrade(
        &self,
        _: Request<DowngradeRequest>,
    ) -> Result<Response<DowngradeResponse>, Status> {
        Err(Status::unimplemented("oxcd: Downgrade is not implemented"))
    }
}
