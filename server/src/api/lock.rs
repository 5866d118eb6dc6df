//! The Lock service (etcd's `v3lock`): a distributed mutex per name, held through a key bound to
//! the caller's lease, so a holder that dies releases the lock when its lease expires.
//!
//! `Lock(name, lease)`: in one transaction, create the key `name/<lease in hex>` with that lease
//! unless it exists, and read the first-created key under `name/`. If that is the caller's key
//! the lock is held at once; otherwise wait for the turn (`recipes.rs`: every key created
//! before the caller's is gone, the caller's key still exists). The answer carries the key:
//! the caller passes it to `Unlock`, and can guard its writes with "the key's create revision
//! is unchanged". A request without a lease gets a new 60 s lease, as in etcd.
//!
//! `Unlock(key)`: deletes the key.

use tonic::{Request, Response, Status};

use super::recipes::{
    created_at, first_created, get_op, put_op, range_kvs, range_op, wait_for_turn, Local,
    RecipeError, ReleaseOnDrop, Session, WaitError,
};
use crate::etcdserver::EtcdServer;
use crate::pb::etcdserverpb::TxnRequest;
use crate::pb::v3lockpb::lock_server::Lock;
use crate::pb::v3lockpb::{LockRequest, LockResponse, UnlockRequest, UnlockResponse};

/// The Lock service over one member.
pub struct LockService {
    local: Local,
}

impl LockService {
    pub fn new(server: EtcdServer) -> LockService {
        LockService {
            local: Local::new(server),
        }
    }
}

#[tonic::async_trait]
impl Lock for LockService {
    async fn lock(&self, request: Request<LockRequest>) -> Result<Response<LockResponse>, Status> {
        let req = request.into_inner();
        let Session { lease, prefix, key } = self.local.session(&req.name, req.lease).await?;
        let response = self
            .local
            .txn(TxnRequest {
                compare: vec![created_at(&key, 0)],
                success: vec![put_op(&key, b"", lease), range_op(first_created(&prefix))],
                failure: vec![get_op(&key), range_op(first_created(&prefix))],
            })
            .await?;
        let mut header = response.header.unwrap_or_default();
        let own_rev = if response.succeeded {
            header.revision
        } else {
            range_kvs(&response, 0)
                .first()
                .map_or(header.revision, |kv| kv.create_revision)
        };
        let owner_rev = range_kvs(&response, 1).first().map(|kv| kv.create_revision);
        if owner_rev.is_some_and(|rev| rev != own_rev) {
            let release = ReleaseOnDrop::new(&self.local, &key, own_rev);
            header = match wait_for_turn(&self.local, &prefix, &key, own_rev).await {
                Ok(header) => header,
                Err(WaitError::Lost) => return Err(RecipeError::SessionExpired.into()),
                Err(WaitError::Status(status)) => return Err(status),
            };
            release.disarm();
        }
        Ok(Response::new(LockResponse {
            header: Some(header),
            key,
        }))
    }

    async fn unlock(
        &self,
        request: Request<UnlockRequest>,
    ) -> Result<Response<UnlockResponse>, Status> {
        let deleted = self.local.delete(request.into_inner().key).await?;
        Ok(Response::new(UnlockResponse {
            header: deleted.header,
        }))
    }
}
