//! [`EtcdServer`]: what the API layer calls. It owns nothing of raft itself; it hands
//! proposals and read index requests to the raft loop thread (`raft_loop`) over a channel and
//! waits, asynchronously, for the apply layer to answer.
//!
//! A write: check the request (limits, quota, the apply gap), register a waiter under a new
//! request ID, send the encoded `InternalRaftRequest` to the loop, and wait (up to the request
//! timeout) for the applier to trigger the waiter with the result. A linearizable read: ask
//! the loop for a read index, wait until the loop reports the applied index has reached it,
//! then read from the store. A serializable read goes to the store at once.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, RwLock};
use std::time::Duration;

use prost::Message as _;
use tokio::sync::oneshot;

use super::error::ServerError;
use super::idgen::IdGenerator;
use crate::membership::{self, Cluster, Member, MembershipError};
use crate::mvcc::{CompactionWait, Store};
use crate::pb::etcdserverpb::alarm_request::AlarmAction;
use crate::pb::etcdserverpb::{
    AlarmMember, AlarmRequest, AlarmResponse, AlarmType, CompactionResponse, DeleteRangeResponse,
    InternalRaftRequest, LeaseGrantResponse, LeaseRevokeResponse, PutResponse, RangeResponse,
    RequestHeader, ResponseHeader, TxnResponse,
};

/// The result of applying one proposal.
pub enum Applied {
    Put(PutResponse),
    DeleteRange(DeleteRangeResponse),
    Txn(TxnResponse),
    Range(RangeResponse),
    Compaction {
        response: CompactionResponse,
        /// Completes when the `key` bucket is compacted (`--physical`).
        wait: CompactionWait,
    },
    Alarm(AlarmResponse),
    LeaseGrant(LeaseGrantResponse),
    LeaseRevoke(LeaseRevokeResponse),
    /// This member's name and client URLs were recorded (`EtcdServer::publish`).
    Published,
    /// A membership change was applied; the members right after it.
    Members(Vec<Member>),
}

/// What one applied proposal answers.
pub type ApplyResult = Result<Applied, ServerError>;

/// One proposer's side of [`Waiters`], taken out to be answered.
pub(super) struct Waiter(oneshot::Sender<ApplyResult>);

impl Waiter {
    /// Sends the answer; a proposer that gave up in the meantime is ignored.
    pub(super) fn answer(self, result: ApplyResult) {
        let _ = self.0.send(result);
    }
}

/// Proposers waiting for their entry to be applied, by request ID.
#[derive(Default)]
pub(super) struct Waiters(Mutex<HashMap<u64, oneshot::Sender<ApplyResult>>>);

impl Waiters {
    fn register(&self, id: u64) -> oneshot::Receiver<ApplyResult> {
        let (tx, rx) = oneshot::channel();
        self.lock().insert(id, tx);
        rx
    }

    pub(super) fn trigger(&self, id: u64, result: ApplyResult) {
        if let Some(waiter) = self.take(id) {
            waiter.answer(result);
        }
    }

    /// The proposer waiting for request `id` on this member, if any, no longer registered:
    /// the applier answers it once the entry's write has ended.
    pub(super) fn take(&self, id: u64) -> Option<Waiter> {
        self.lock().remove(&id).map(Waiter)
    }

    fn cancel(&self, id: u64) {
        self.lock().remove(&id);
    }

    /// Fails every waiter (the member is stopping).
    pub(super) fn fail_all(&self) {
        for (_, tx) in self.lock().drain() {
            let _ = tx.send(Err(ServerError::Stopped));
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, oneshot::Sender<ApplyResult>>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The active alarms (etcd's `alarmStore`), mirrored in the `alarm` bucket by the applier.
#[derive(Default)]
pub(super) struct Alarms(RwLock<Vec<AlarmMember>>);

impl Alarms {
    pub(super) fn load(alarms: Vec<AlarmMember>) -> Alarms {
        Alarms(RwLock::new(alarms))
    }

    /// True if `member` was not yet active.
    pub(super) fn activate(&self, member: AlarmMember) -> bool {
        let mut alarms = self.write();
        if alarms.contains(&member) {
            return false;
        }
        alarms.push(member);
        true
    }

    /// True if `member` was active.
    pub(super) fn deactivate(&self, member: &AlarmMember) -> bool {
        let mut alarms = self.write();
        let before = alarms.len();
        alarms.retain(|a| a != member);
        alarms.len() != before
    }

    /// Active alarms of type `alarm` (NONE: any) on member `member_id` (0: any).
    pub(super) fn list(&self, alarm: i32, member_id: u64) -> Vec<AlarmMember> {
        let alarms = self.0.read().unwrap_or_else(|p| p.into_inner());
        alarms
            .iter()
            .filter(|a| alarm == AlarmType::None as i32 || a.alarm == alarm)
            .filter(|a| member_id == 0 || a.member_id == member_id)
            .copied()
            .collect()
    }

    /// Replaces every alarm (a snapshot from the leader was installed).
    pub(super) fn replace(&self, alarms: Vec<AlarmMember>) {
        *self.write() = alarms;
    }

    pub(super) fn no_space(&self) -> bool {
        !self.list(AlarmType::Nospace as i32, 0).is_empty()
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Vec<AlarmMember>> {
        self.0.write().unwrap_or_else(|p| p.into_inner())
    }
}

/// The membership as applied (a [`Cluster`]: the members by ID and the removed IDs). A
/// member's name and client URLs are what it last published through raft
/// (`EtcdServer::publish`); the bootstrap entries carry the initial members' names. Only the
/// applier changes it.
#[derive(Default)]
pub(super) struct Members {
    cluster: RwLock<Cluster>,
    /// Bumped by every change of who the members are or where their peers listen (not by a
    /// publish), so the raft loop notices when the transport's peers must be updated.
    generation: AtomicU64,
}

impl Members {
    pub(super) fn new(cluster: Cluster) -> Members {
        Members {
            cluster: RwLock::new(cluster),
            generation: AtomicU64::new(0),
        }
    }

    /// Validates `change` against the membership as it is (with raft's voters for the
    /// last-voter rule) and applies it if valid: the same verdict on every member.
    pub(super) fn apply_change(
        &self,
        change: &membership::Change,
        raft_voters: &BTreeSet<u64>,
    ) -> Result<membership::Applied, MembershipError> {
        let mut cluster = self.write();
        cluster.validate_with_raft_voters(change, raft_voters)?;
        let applied = cluster.apply(change);
        self.generation.fetch_add(1, Ordering::AcqRel);
        Ok(applied)
    }

    /// Replaces the membership (a snapshot from the leader was installed).
    pub(super) fn replace(&self, cluster: Cluster) {
        *self.write() = cluster;
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Records what member `id` published.
    pub(super) fn set_attributes(
        &self,
        id: u64,
        attributes: membership::Attributes,
    ) -> membership::AttributesUpdate {
        self.write().set_attributes(id, attributes)
    }

    /// The members, by ID.
    pub(super) fn list(&self) -> Vec<Member> {
        self.read().members.values().cloned().collect()
    }

    /// A copy of the whole membership.
    pub(super) fn cluster(&self) -> Cluster {
        self.read().clone()
    }

    /// `f` of the membership as it is, without a copy.
    pub(super) fn with<R>(&self, f: impl FnOnce(&Cluster) -> R) -> R {
        f(&self.read())
    }

    /// The voting members' IDs.
    pub(super) fn voter_ids(&self) -> BTreeSet<u64> {
        self.read().voter_ids()
    }

    /// True if member `id` is a learner (no copy of the member: every request asks).
    pub(super) fn is_learner(&self, id: u64) -> bool {
        self.read().member(id).is_some_and(|m| m.is_learner)
    }

    /// Member `id`, if the cluster has it.
    pub(super) fn get(&self, id: u64) -> Option<Member> {
        self.read().member(id).cloned()
    }

    /// Changes so far (see the field).
    pub(super) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Cluster> {
        self.cluster.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Cluster> {
        self.cluster.write().unwrap_or_else(|p| p.into_inner())
    }
}

/// Raft's progress as the loop last saw it, readable without asking the loop.
#[derive(Default)]
pub(super) struct RaftStatus {
    term: AtomicU64,
    leader: AtomicU64,
    commit: AtomicU64,
    applied: AtomicU64,
    /// When this member last saw a new leader (etcd's `leadElectedTime`).
    leader_elected_at: Mutex<Option<std::time::Instant>>,
}

impl RaftStatus {
    pub(super) fn set(&self, term: u64, leader: u64, commit: u64, applied: u64) {
        self.term.store(term, Ordering::Release);
        let previous = self.leader.swap(leader, Ordering::AcqRel);
        if leader != 0 && leader != previous {
            *self
                .leader_elected_at
                .lock()
                .unwrap_or_else(|p| p.into_inner()) = Some(std::time::Instant::now());
        }
        self.commit.store(commit, Ordering::Release);
        self.applied.store(applied, Ordering::Release);
    }
}

/// Requests to the raft loop thread.
pub(super) enum LoopRequest {
    /// Propose this encoded `InternalRaftRequest` (or v2 `Request`); its waiter is registered.
    Propose { id: u64, data: Vec<u8> },
    /// Something happened on the peer transport (messages arrived, a peer is unreachable, a
    /// snapshot send ended).
    Peer(crate::raft::transport::PeerEvent),
    /// Stop: the loop ends after this request (the transport holds senders of its own, so the
    /// channel never closes while peers run).
    Stop,
    /// Propose this encoded conf change (etcd's `raftpb.ConfChange`); its waiter is registered
    /// under the change's ID.
    ProposeConfChange { id: u64, data: Vec<u8> },
    /// The raft progress of member `id` and of this member, the leader, as (matched of `id`
    /// if raft knows it, matched of the leader); `None` unless this member leads.
    LearnerProgress {
        id: u64,
        reply: oneshot::Sender<Option<(Option<u64>, u64)>>,
    },
    /// Find a read index; the reply comes once the applied index reaches it.
    ReadIndex(super::apply::ReadWaiter),
    /// Transfer leadership to this member.
    MoveLeader {
        target: u64,
        reply: oneshot::Sender<Result<(), ServerError>>,
    },
}

/// Limits checked before a request reaches raft, and the intervals services keep.
#[derive(Clone, Debug)]
pub struct Limits {
    /// `--max-request-bytes`.
    pub max_request_bytes: u64,
    /// `--max-txn-ops`.
    pub max_txn_ops: usize,
    /// `--quota-backend-bytes`, resolved (`None`: no quota).
    pub quota_bytes: Option<u64>,
    /// How long a proposer waits for its entry to apply.
    pub request_timeout: Duration,
    /// `--experimental-watch-progress-notify-interval`.
    pub watch_progress_interval: Duration,
}

/// What the server's handles and the raft loop share.
pub(super) struct Shared {
    pub(super) store: Store,
    pub(super) member_id: u64,
    pub(super) cluster_id: u64,
    pub(super) members: Members,
    pub(super) alarms: Alarms,
    pub(super) status: RaftStatus,
    pub(super) waiters: Waiters,
    pub(super) to_loop: Mutex<Option<mpsc::Sender<LoopRequest>>>,
    pub(super) ids: IdGenerator,
    pub(super) limits: Limits,
    pub(super) lessor: crate::lease::Lessor,
    pub(super) hub: crate::mvcc::watch::EventHub,
    /// etcd's election timeout, by which a new leader extends every lease.
    pub(super) election_timeout: Duration,
    /// `--strict-reconfig-check`.
    pub(super) strict_reconfig_check: bool,
    /// The peer transport: where raft's messages go, and for how long peers have been
    /// connected.
    pub(super) transport: crate::raft::transport::Transport,
}

/// A cheap, cloneable handle on the running member.
#[derive(Clone)]
pub struct EtcdServer {
    pub(super) shared: Arc<Shared>,
}

impl EtcdServer {
    /// The MVCC store (for reads and maintenance).
    pub fn store(&self) -> &Store {
        &self.shared.store
    }

    /// This member's ID.
    pub fn member_id(&self) -> u64 {
        self.shared.member_id
    }

    /// The cluster's ID.
    pub fn cluster_id(&self) -> u64 {
        self.shared.cluster_id
    }

    /// Member `id` as applied, if the cluster has it.
    pub fn member(&self, id: u64) -> Option<Member> {
        self.shared.members.get(id)
    }

    /// The members as applied, by ID.
    pub fn members(&self) -> Vec<Member> {
        self.shared.members.list()
    }

    /// Where applied changes are published to watchers.
    pub fn hub(&self) -> &crate::mvcc::watch::EventHub {
        &self.shared.hub
    }

    /// The lease table.
    pub fn lessor(&self) -> &crate::lease::Lessor {
        &self.shared.lessor
    }

    /// The election timeout (a new leader extends every lease by it).
    pub fn election_timeout(&self) -> Duration {
        self.shared.election_timeout
    }

    /// A new ID from the member's request ID generator (etcd draws lease IDs from it).
    pub fn next_id(&self) -> u64 {
        self.shared.ids.next()
    }

    /// The request limits.
    pub fn limits(&self) -> &Limits {
        &self.shared.limits
    }

    /// The current raft term.
    pub fn term(&self) -> u64 {
        self.shared.status.term.load(Ordering::Acquire)
    }

    /// The leader's ID (0: none known).
    pub fn leader(&self) -> u64 {
        self.shared.status.leader.load(Ordering::Acquire)
    }

    /// The raft commit index.
    pub fn commit_index(&self) -> u64 {
        self.shared.status.commit.load(Ordering::Acquire)
    }

    /// The last applied raft index.
    pub fn applied_index(&self) -> u64 {
        self.shared.status.applied.load(Ordering::Acquire)
    }

    /// Active alarms (any type, any member).
    pub fn alarms(&self) -> Vec<AlarmMember> {
        self.shared.alarms.list(AlarmType::None as i32, 0)
    }

    /// A response header for `revision` (etcd fills cluster, member, revision and term).
    pub fn header(&self, revision: i64) -> ResponseHeader {
        ResponseHeader {
            cluster_id: self.cluster_id(),
            member_id: self.member_id(),
            revision,
            raft_term: self.term(),
        }
    }

    /// Fills the header of a response whose store header carries only the revision.
    pub fn fill_header(&self, header: &mut Option<ResponseHeader>) {
        let revision = header.as_ref().map_or(0, |h| h.revision);
        *header = Some(self.header(revision));
    }

    pub(super) fn send(&self, request: LoopRequest) -> Result<(), ServerError> {
        let guard = self
            .shared
            .to_loop
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        match guard.as_ref() {
            Some(tx) => tx.send(request).map_err(|_| ServerError::Stopped),
            None => Err(ServerError::Stopped),
        }
    }

    /// Proposes `request` through raft and waits for its result (etcd's `processInternalRaftRequestOnce`).
    pub async fn propose(&self, mut request: InternalRaftRequest) -> ApplyResult {
        if self.commit_index()
            > self.applied_index() + crate::api::errors::MAX_GAP_BETWEEN_APPLY_AND_COMMIT_INDEX
        {
            return Err(ServerError::TooManyRequests);
        }
        let id = self.shared.ids.next();
        request.header = Some(RequestHeader {
            id,
            ..RequestHeader::default()
        });
        let data = request.encode_to_vec();
        if data.len() as u64 > self.shared.limits.max_request_bytes {
            return Err(ServerError::RequestTooLarge);
        }
        self.propose_encoded(id, data).await
    }

    /// Proposes an encoded entry whose request ID is `id` and waits for its result.
    async fn propose_encoded(&self, id: u64, data: Vec<u8>) -> ApplyResult {
        self.propose_and_wait(id, LoopRequest::Propose { id, data })
            .await
    }

    /// Sends `request`, a proposal whose waiter is `id`, and waits (up to the request
    /// timeout) for its entry to be applied.
    pub(super) async fn propose_and_wait(&self, id: u64, request: LoopRequest) -> ApplyResult {
        let start = std::time::Instant::now();
        let rx = self.shared.waiters.register(id);
        if let Err(e) = self.send(request) {
            self.shared.waiters.cancel(id);
            return Err(e);
        }
        match tokio::time::timeout(self.shared.limits.request_timeout, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(ServerError::Stopped),
            Err(_) => {
                self.shared.waiters.cancel(id);
                Err(self.timeout_error(start))
            }
        }
    }

    /// Which timeout a proposal started at `start` reports (see `timeout`).
    fn timeout_error(&self, start: std::time::Instant) -> ServerError {
        let shared = &self.shared;
        let leader_elected_at = *shared
            .status
            .leader_elected_at
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let voters: Vec<u64> = shared.members.voter_ids().into_iter().collect();
        let connected_since = |id: u64| shared.transport.active_since(id);
        super::timeout::classify(&super::timeout::TimeoutFacts {
            start,
            leader_elected_at,
            election_timeout: shared.election_timeout,
            leader: self.leader(),
            me: self.member_id(),
            voters: &voters,
            connected_since: &connected_since,
        })
    }

    /// Records this member's `name` and `client_urls` in the cluster through raft (etcd's
    /// `publish`: a v2 PUT of `/0/members/<ID>/attributes`, which etcd 3.4 can apply too).
    /// Retried by the caller until it succeeds; etcd serves clients only after it has.
    pub async fn publish(&self, name: &str, client_urls: &[String]) -> Result<(), ServerError> {
        let id = self.shared.ids.next();
        let request = crate::pb::etcdserverpb::Request {
            id,
            method: "PUT".to_string(),
            path: crate::membership::attributes_path(self.member_id()),
            val: crate::membership::attributes_json(name, client_urls),
            ..Default::default()
        };
        self.propose_encoded(id, request.encode_to_vec())
            .await
            .map(|_| ())
    }

    /// Waits until this member may serve a linearizable read (etcd's `linearizableReadNotify`).
    pub async fn read_barrier(&self) -> Result<(), ServerError> {
        let (tx, rx) = oneshot::channel();
        self.send(LoopRequest::ReadIndex(tx))?;
        match tokio::time::timeout(self.shared.limits.request_timeout, rx).await {
            Ok(Ok(result)) => result.map(|_| ()),
            Ok(Err(_)) => Err(ServerError::Stopped),
            Err(_) => Err(ServerError::Timeout),
        }
    }

    /// Raises an alarm through raft (etcd raises NOSPACE this way when a request exceeds the
    /// quota).
    pub async fn raise_alarm(&self, alarm: AlarmType) -> ApplyResult {
        self.propose(InternalRaftRequest {
            alarm: Some(AlarmRequest {
                action: AlarmAction::Activate as i32,
                member_id: self.member_id(),
                alarm: alarm as i32,
            }),
            ..InternalRaftRequest::default()
        })
        .await
    }

    /// etcd's quota check before a put, a writing txn or a lease grant costing `cost_bytes`
    /// (`v3rpc/quota.go`): over `--quota-backend-bytes`, raise the NOSPACE alarm through raft
    /// in the background and refuse with [`ServerError::NoSpace`].
    pub fn check_quota(&self, cost_bytes: u64) -> Result<(), ServerError> {
        let fits = match self.shared.limits.quota_bytes {
            None => true,
            Some(quota) => self.store().backend().size() + cost_bytes <= quota,
        };
        if fits {
            return Ok(());
        }
        let server = self.clone();
        tokio::spawn(async move {
            if let Err(e) = server.raise_alarm(AlarmType::Nospace).await {
                tracing::warn!(%e, "cannot raise the NOSPACE alarm");
            }
        });
        Err(ServerError::NoSpace)
    }

    /// Transfers leadership to `target` (Maintenance MoveLeader).
    pub async fn move_leader(&self, target: u64) -> Result<(), ServerError> {
        let (reply, rx) = oneshot::channel();
        self.send(LoopRequest::MoveLeader { target, reply })?;
        match tokio::time::timeout(self.shared.limits.request_timeout, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(ServerError::Stopped),
            Err(_) => Err(ServerError::TimeoutLeaderTransfer),
        }
    }

    /// Stops accepting requests: the raft loop ends once it has handled what was queued.
    pub fn stop(&self) {
        let sender = self
            .shared
            .to_loop
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(sender) = sender {
            let _ = sender.send(LoopRequest::Stop);
        }
    }
}
