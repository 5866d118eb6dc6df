//! What the Lock and Election services run on: an in-process client over this member's own KV
//! and Lease services (etcd's `v3client`), and the one waiting rule both recipes share (etcd's
//! `clientv3/concurrency` `waitDeletes`).
//!
//! Requests go through the same service code a remote client reaches, so quota, request checks
//! and linearizable reads are exactly the KV service's. Their errors reach the caller as
//! `Unknown` with etcd's message ([`as_returned_by_client`]), as in etcd, whose in-process
//! client turns each status into a plain error before the service returns it.
//!
//! The queue: a session holds the key `prefix + hex(lease)`, created with that lease. Among
//! the keys under the prefix, the one with the lowest create revision owns the lock (or is the
//! leader). Every other holder waits for the key created just before its own to disappear, then
//! looks again. Worked example, prefix `job/`:
//!
//! ```text
//!   job/694d7a1c  create rev 10   owner
//!   job/694d7a20  create rev 12   waits for job/694d7a1c (the last key created before 12)
//!   job/694d7a31  create rev 15   waits for job/694d7a20
//! ```
//!
//! If 694d7a20's lease expires while it waits, its key is deleted: 694d7a31 goes on to wait for
//! 694d7a1c.
//!
//! Waiting is state-based, not event-based: a waiter is woken by every applied revision and
//! looks up the key it waits for and its own key in the store (two point reads), instead of
//! scanning the events. A waiter also notices at once when its OWN key is gone (its lease
//! expired or was revoked): it gives up with an error rather than waiting on for a lock it can
//! no longer hold. When the predecessors are gone, one linearizable transaction checks that
//! the waiter's key still exists with its create revision before the lock is granted. That
//! closes the hole Jepsen found in etcd 3.4.3 (etcd issue 11456), where a lock could be
//! granted to a session whose lease had expired during the wait.
//!
//! A waiting request that ends without success (the client cancelled, the server is
//! stopping, the session expired) deletes its own key, if the key is still the one it created
//! ([`ReleaseOnDrop`]), so it does not block the queue behind it.

use tonic::{Request, Status};

use super::errors::to_status;
use super::kv::KvService;
use super::lease::LeaseService;
use crate::etcdserver::{EtcdServer, ServerError};
use crate::mvcc::{prefix_range_end, RangeOptions, ReadView};
use crate::pb::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use crate::pb::etcdserverpb::kv_server::Kv;
use crate::pb::etcdserverpb::lease_server::Lease;
use crate::pb::etcdserverpb::range_request::{SortOrder, SortTarget};
use crate::pb::etcdserverpb::request_op::Request as Op;
use crate::pb::etcdserverpb::response_op::Response as OpResponse;
use crate::pb::etcdserverpb::{
    Compare, DeleteRangeRequest, DeleteRangeResponse, LeaseGrantRequest, PutRequest, RangeRequest,
    RangeResponse, RequestOp, ResponseHeader, TxnRequest, TxnResponse,
};
use crate::pb::mvccpb::KeyValue;

/// The TTL of the lease a request without one gets (etcd's `defaultSessionTTL`).
pub const SESSION_TTL_SECS: i64 = 60;

/// Failures of the recipes themselves. etcd returns these as plain errors, so clients get
/// `Unknown` with the text (through [`to_status`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecipeError {
    /// The lock waiter's key is gone (its lease expired or was revoked) (etcd 3.5's
    /// `concurrency.ErrSessionExpired`).
    #[error("mutex: session is expired")]
    SessionExpired,
    /// Proclaim or Resign by a key that no longer leads, or a campaign whose key vanished.
    #[error("election: not leader")]
    NotLeader,
    /// Leader of an election nobody campaigns in.
    #[error("election: no leader")]
    NoLeader,
    /// Proclaim or Resign without a leader key.
    #[error("\"leader\" field must be provided")]
    MissingLeaderKey,
}

impl From<RecipeError> for Status {
    fn from(error: RecipeError) -> Status {
        to_status(&error)
    }
}

/// The in-process client: this member's KV and Lease services, called directly.
#[derive(Clone)]
pub struct Local {
    server: EtcdServer,
}

impl Local {
    pub fn new(server: EtcdServer) -> Local {
        Local { server }
    }

    pub fn server(&self) -> &EtcdServer {
        &self.server
    }

    fn kv(&self) -> KvService {
        KvService::new(self.server.clone())
    }

    pub async fn txn(&self, request: TxnRequest) -> Result<TxnResponse, Status> {
        let response = self.kv().txn(Request::new(request)).await;
        Ok(response.map_err(as_returned_by_client)?.into_inner())
    }

    /// A linearizable range.
    pub async fn range(&self, request: RangeRequest) -> Result<RangeResponse, Status> {
        let response = self.kv().range(Request::new(request)).await;
        Ok(response.map_err(as_returned_by_client)?.into_inner())
    }

    pub async fn delete(&self, key: Vec<u8>) -> Result<DeleteRangeResponse, Status> {
        let request = DeleteRangeRequest {
            key,
            ..DeleteRangeRequest::default()
        };
        let response = self.kv().delete_range(Request::new(request)).await;
        Ok(response.map_err(as_returned_by_client)?.into_inner())
    }

    /// Deletes `key` if it was created at `create_rev`, in one transaction (Resign, and the
    /// release of a failed request's key).
    pub async fn delete_if_created_at(
        &self,
        key: &[u8],
        create_rev: i64,
    ) -> Result<TxnResponse, Status> {
        self.txn(TxnRequest {
            compare: vec![created_at(key, create_rev)],
            success: vec![delete_op(key)],
            failure: Vec::new(),
        })
        .await
    }

    /// Where a Lock or Campaign request queues: its session lease (see [`Local::session_lease`]),
    /// the queue's prefix and the session's key in it.
    pub async fn session(&self, name: &[u8], lease: i64) -> Result<Session, Status> {
        let lease = self.session_lease(lease).await?;
        let prefix = queue_prefix(name);
        let key = session_key(&prefix, lease);
        Ok(Session { lease, prefix, key })
    }

    /// The lease a session runs under: the caller's, or a new one of [`SESSION_TTL_SECS`] when
    /// the caller names none (lease 0), as etcd's `concurrency.NewSession` does.
    pub async fn session_lease(&self, lease: i64) -> Result<i64, Status> {
        if lease != 0 {
            return Ok(lease);
        }
        let request = LeaseGrantRequest {
            ttl: SESSION_TTL_SECS,
            id: 0,
        };
        let lease = LeaseService::new(self.server.clone());
        let response = lease.lease_grant(Request::new(request)).await;
        Ok(response.map_err(as_returned_by_client)?.into_inner().id)
    }
}

/// An error of the in-process client as the Lock and Election services return it: etcd's
/// client turns a status into a plain error carrying the message, which gRPC then sends as
/// `Unknown` (a Lock with an unknown lease gets `Unknown` "etcdserver: requested lease not
/// found", where a Put gets `NotFound`).
fn as_returned_by_client(status: Status) -> Status {
    Status::unknown(status.message())
}

/// A Lock or Campaign request's place: see [`Local::session`].
pub struct Session {
    pub lease: i64,
    /// `name/`.
    pub prefix: Vec<u8>,
    /// `name/<lease in hex>`.
    pub key: Vec<u8>,
}

/// The prefix of the queue for a lock or election name: the name and `/`.
pub fn queue_prefix(name: &[u8]) -> Vec<u8> {
    let mut prefix = name.to_vec();
    prefix.push(b'/');
    prefix
}

/// A session's key under `prefix`: the prefix and the lease ID in lowercase hex.
fn session_key(prefix: &[u8], lease: i64) -> Vec<u8> {
    let mut key = prefix.to_vec();
    key.extend_from_slice(format!("{lease:x}").as_bytes());
    key
}

/// The compare "`key` was created at `create_rev`" (0: the key does not exist).
pub fn created_at(key: &[u8], create_rev: i64) -> Compare {
    Compare {
        result: CompareResult::Equal as i32,
        target: CompareTarget::Create as i32,
        key: key.to_vec(),
        range_end: Vec::new(),
        target_union: Some(TargetUnion::CreateRevision(create_rev)),
    }
}

pub fn put_op(key: &[u8], value: &[u8], lease: i64) -> RequestOp {
    RequestOp {
        request: Some(Op::RequestPut(PutRequest {
            key: key.to_vec(),
            value: value.to_vec(),
            lease,
            ..PutRequest::default()
        })),
    }
}

pub fn range_op(request: RangeRequest) -> RequestOp {
    RequestOp {
        request: Some(Op::RequestRange(request)),
    }
}

pub fn get_op(key: &[u8]) -> RequestOp {
    range_op(RangeRequest {
        key: key.to_vec(),
        ..RangeRequest::default()
    })
}

fn delete_op(key: &[u8]) -> RequestOp {
    RequestOp {
        request: Some(Op::RequestDeleteRange(DeleteRangeRequest {
            key: key.to_vec(),
            ..DeleteRangeRequest::default()
        })),
    }
}

/// The first-created key under `prefix` (clientv3's `WithFirstCreate`).
pub fn first_created(prefix: &[u8]) -> RangeRequest {
    RangeRequest {
        key: prefix.to_vec(),
        range_end: prefix_range_end(prefix),
        limit: 1,
        sort_order: SortOrder::Ascend as i32,
        sort_target: SortTarget::Create as i32,
        ..RangeRequest::default()
    }
}

/// The last key under `prefix` created at or before `max_create_rev` (clientv3's
/// `WithLastCreate` and `WithMaxCreateRev`).
fn last_created_up_to(prefix: &[u8], max_create_rev: i64) -> RangeRequest {
    RangeRequest {
        key: prefix.to_vec(),
        range_end: prefix_range_end(prefix),
        limit: 1,
        sort_order: SortOrder::Descend as i32,
        sort_target: SortTarget::Create as i32,
        max_create_revision: max_create_rev,
        ..RangeRequest::default()
    }
}

/// The key-values of the `index`th response of a txn (empty if it is not a range).
pub fn range_kvs(response: &TxnResponse, index: usize) -> &[KeyValue] {
    match response
        .responses
        .get(index)
        .and_then(|r| r.response.as_ref())
    {
        Some(OpResponse::ResponseRange(range)) => &range.kvs,
        _ => &[],
    }
}

/// Why a wait ended without the lock or leadership.
pub enum WaitError {
    /// The waiter's own key is gone.
    Lost,
    Status(Status),
}

impl From<Status> for WaitError {
    fn from(status: Status) -> WaitError {
        WaitError::Status(status)
    }
}

impl From<ServerError> for WaitError {
    fn from(error: ServerError) -> WaitError {
        WaitError::Status(error.into())
    }
}

impl From<crate::mvcc::MvccError> for WaitError {
    fn from(error: crate::mvcc::MvccError) -> WaitError {
        WaitError::Status(error.into())
    }
}

/// Waits until no key under `prefix` created before `own_rev` remains, while `own_key` still
/// exists with create revision `own_rev`; answers the header of the read that found the queue
/// empty (module doc).
pub async fn wait_for_turn(
    local: &Local,
    prefix: &[u8],
    own_key: &[u8],
    own_rev: i64,
) -> Result<ResponseHeader, WaitError> {
    loop {
        // One linearizable read: is the key still ours, and who was queued just before it?
        let response = local
            .txn(TxnRequest {
                compare: vec![created_at(own_key, own_rev)],
                success: vec![range_op(last_created_up_to(prefix, own_rev - 1))],
                failure: Vec::new(),
            })
            .await?;
        if !response.succeeded {
            return Err(WaitError::Lost);
        }
        let Some(before) = range_kvs(&response, 0).first() else {
            return Ok(response.header.unwrap_or_default());
        };
        let before = (before.key.clone(), before.create_revision);
        wait_gone(local.server(), &before, (own_key, own_rev)).await?;
    }
}

/// Waits until the key `waited` (with its create revision) no longer exists; fails with
/// [`WaitError::Lost`] if `own` disappears first.
async fn wait_gone(
    server: &EtcdServer,
    waited: &(Vec<u8>, i64),
    own: (&[u8], i64),
) -> Result<(), WaitError> {
    // Subscribed before the first look, so no revision between the look and the wait is missed.
    let mut revisions = server.hub().subscribe();
    loop {
        {
            let view = server.store().read()?;
            let holds = |key: &[u8], create_rev: i64| -> Result<bool, WaitError> {
                let found = view.range(key, &[], &RangeOptions::default())?;
                Ok(found
                    .kvs
                    .first()
                    .is_some_and(|kv| kv.create_revision == create_rev))
            };
            if !holds(&waited.0, waited.1)? {
                return Ok(());
            }
            if !holds(own.0, own.1)? {
                return Err(WaitError::Lost);
            }
        }
        if revisions.changed().await.is_err() {
            return Err(ServerError::Stopped.into());
        }
    }
}

/// Deletes a session's key when dropped armed: a lock or campaign request that did not succeed
/// (including one whose client went away, which drops the request) leaves no key queued. The
/// delete is conditional on the key's create revision, so it never removes a newer key.
pub struct ReleaseOnDrop {
    armed: Option<(Local, Vec<u8>, i64)>,
}

impl ReleaseOnDrop {
    pub fn new(local: &Local, key: &[u8], create_rev: i64) -> ReleaseOnDrop {
        ReleaseOnDrop {
            armed: Some((local.clone(), key.to_vec(), create_rev)),
        }
    }

    /// The request succeeded: the key stays.
    pub fn disarm(mut self) {
        self.armed = None;
    }
}

impl Drop for ReleaseOnDrop {
    fn drop(&mut self) {
        let Some((local, key, create_rev)) = self.armed.take() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            if let Err(status) = local.delete_if_created_at(&key, create_rev).await {
                tracing::warn!(key = %String::from_utf8_lossy(&key), %status,
                    "could not release the key of a failed lock or campaign");
            }
        });
    }
}
