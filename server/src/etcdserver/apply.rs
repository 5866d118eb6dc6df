//! The apply layer: committed raft entries become changes to the MVCC store, the alarm list
//! and the membership, in log order, exactly once (etcd's `applyEntries` and `applierV3`).
//!
//! Exactly once: the raft node hands every committed entry after its snapshot to
//! [`Applier::apply`] again after a restart. An entry at or below the store's consistent index
//! is skipped, since its effects are already in the backend: a KV write records its entry's
//! index and term in `meta` inside the same backend transaction as its data (the store does
//! this), so the two become durable together. Entries without store effects (alarms, member
//! records, compactions) record their index with an empty write after their effect; re-doing
//! them is harmless, since each is idempotent.
//!
//! Results go back to the proposer through the waiter registered under the request ID
//! ([`super::server::Waiters`]); an entry whose proposer is gone (another process, before a
//! restart) is applied all the same.
//!
//! Capped mode (etcd's `applierV3Capped`): while a NOSPACE alarm is active, puts, txns with
//! writes and lease grants fail with "etcdserver: no space"; deletes, ranges and compactions
//! still apply, so an operator can free space.

use std::sync::Arc;

use prost::Message as _;
use raft::ReadState;

use super::apply_membership::{self, RaftMembership};
use super::error::ServerError;
use super::server::{Applied, ApplyResult, Shared, Waiter};
use crate::membership;
use crate::mvcc::{kv, txn, Change, CompactionWait, MvccError, StoreWrite};
use crate::pb::etcdserverpb::alarm_request::AlarmAction;
use crate::pb::etcdserverpb::{
    AlarmMember, AlarmRequest, AlarmResponse, AlarmType, CompactionRequest, CompactionResponse,
    InternalRaftRequest, LeaseGrantResponse, LeaseRevokeResponse, Request as V2Request,
};
use crate::raft::{ApplyError, ReadyHandler};
use crate::schema;
use oxcd_wal::pb;

/// Read index requests waiting on raft (see `raft_loop`).
#[derive(Default)]
pub(super) struct ReadTracker {
    /// The read index request in flight.
    pub(super) in_flight: Option<InFlightRead>,
    /// Reads whose read index is known, waiting for the applied index to reach it.
    pub(super) confirmed: Vec<(u64, Vec<ReadWaiter>)>,
}

/// One read index request sent to raft and not answered yet.
pub(super) struct InFlightRead {
    /// Its request context (the raft loop's read sequence number).
    pub(super) ctx: Vec<u8>,
    pub(super) waiters: Vec<ReadWaiter>,
    /// When it was first sent (it is given up after the request timeout) and last sent (it
    /// is sent again every `READ_INDEX_RETRY`).
    pub(super) first_sent: std::time::Instant,
    pub(super) last_sent: std::time::Instant,
}

/// Who waits for a linearizable read to be allowed: gets the read index.
pub(super) type ReadWaiter = tokio::sync::oneshot::Sender<Result<u64, ServerError>>;

/// The state machine of one member. See the module doc.
pub(super) struct Applier {
    pub(super) shared: Arc<Shared>,
    /// The store's consistent index, cached (only this applier raises it).
    consistent_index: u64,
    pub(super) reads: ReadTracker,
    /// Raft's voters, refused conf changes, whether this member was removed.
    pub(super) raft_membership: RaftMembership,
}

impl Applier {
    /// An applier over `shared`, whose raft configuration starts with `voters` (those of the
    /// snapshot raft starts from).
    pub(super) fn new(shared: Arc<Shared>, voters: &[u64]) -> Result<Applier, ServerError> {
        let consistent_index = shared.store.consistent_index()?;
        Ok(Applier {
            shared,
            consistent_index,
            reads: ReadTracker::default(),
            raft_membership: RaftMembership::new(voters),
        })
    }

    /// Applies `entries` (consecutive, committed) in one store write, then answers their
    /// proposers: nothing is answered before it is visible to readers.
    fn apply_batch(&mut self, entries: &[pb::Entry]) -> Result<(), ServerError> {
        let shared = Arc::clone(&self.shared);
        let mut batch = Batch {
            shared: &shared,
            raft: &mut self.raft_membership,
            write: None,
            replies: Vec::new(),
            changes: Vec::new(),
        };
        let mut result = Ok(());
        for entry in entries {
            if entry.index <= self.consistent_index {
                result = apply_membership::replay(batch.raft, &shared, entry);
                if result.is_err() {
                    break;
                }
                continue;
            }
            result = batch.apply_entry(entry);
            if result.is_err() {
                break;
            }
            self.consistent_index = entry.index;
        }
        let ended = batch.end_write();
        result?;
        ended?;
        if !batch.changes.is_empty() {
            let changes = std::mem::take(&mut batch.changes);
            shared.hub.publish(changes, shared.store.rev()?);
        }
        for (waiter, reply) in batch.replies {
            waiter.answer(reply);
        }
        Ok(())
    }
}

/// One batch of entries being applied: the open store write and the answers to send once it
/// has ended.
struct Batch<'s> {
    shared: &'s Shared,
    raft: &'s mut RaftMembership,
    write: Option<StoreWrite<'s>>,
    /// Answers for the proposers waiting on this member, sent once the write has ended.
    replies: Vec<(Waiter, ApplyResult)>,
    /// Every change of the batch so far, for watchers once the write has ended.
    changes: Vec<Change>,
}

impl<'s> Batch<'s> {
    /// The write `entry` applies in: the open one moved on to `entry`, or a new one.
    fn write_for(&mut self, entry: &pb::Entry) -> Result<&mut StoreWrite<'s>, ServerError> {
        match &mut self.write {
            Some(write) => {
                let changes = write.next_entry(entry.index, entry.term)?;
                self.changes.extend(changes);
            }
            None => self.write = Some(self.shared.store.write(entry.index, entry.term)?),
        }
        self.write
            .as_mut()
            .ok_or(ServerError::Mvcc(MvccError::Closed))
    }

    fn end_write(&mut self) -> Result<(), ServerError> {
        if let Some(write) = self.write.take() {
            self.changes.extend(write.end()?.changes);
        }
        Ok(())
    }

    fn apply_entry(&mut self, entry: &pb::Entry) -> Result<(), ServerError> {
        match pb::EntryType::try_from(entry.entry_type) {
            Ok(pb::EntryType::EntryNormal) if entry.data.is_empty() => {
                self.write_for(entry)?;
            }
            Ok(pb::EntryType::EntryNormal) => self.apply_normal(entry)?,
            Ok(pb::EntryType::EntryConfChange) => self.apply_conf_change(entry)?,
            _ => {
                tracing::warn!(index = entry.index, "skipping entry of unknown type");
                self.write_for(entry)?;
            }
        }
        Ok(())
    }

    fn apply_normal(&mut self, entry: &pb::Entry) -> Result<(), ServerError> {
        let request = match InternalRaftRequest::decode(&entry.data[..]) {
            Ok(request) => request,
            // etcd 3.4's fallback: a bare v2 store request (a member's publish).
            Err(err) => match V2Request::decode(&entry.data[..]) {
                Ok(request) => return self.apply_v2(request, entry),
                Err(_) => {
                    tracing::warn!(index = entry.index, %err, "skipping entry that is not an InternalRaftRequest");
                    self.write_for(entry)?;
                    return Ok(());
                }
            },
        };
        let id = request.header.as_ref().map_or(request.id, |h| h.id);
        let result = match self.apply_request(request, entry) {
            Err(ServerError::Mvcc(e)) if is_fatal(&e) => return Err(ServerError::Mvcc(e)),
            Err(e @ ServerError::Raft(_)) => return Err(e),
            other => other,
        };
        self.answer(id, result);
        Ok(())
    }

    /// Keeps `result` for the proposer of request `id` if it waits on this member. Most
    /// entries of a follower (and many after a restart) have none, so a large batch builds no
    /// large reply list.
    fn answer(&mut self, id: u64, result: ApplyResult) {
        if let Some(waiter) = self.shared.waiters.take(id) {
            self.replies.push((waiter, result));
        }
    }

    /// Applies the v2 requests etcd 3.4 proposes: a member's attributes (its publish) and the
    /// cluster version (see `apply_membership::apply_v2`).
    fn apply_v2(&mut self, request: V2Request, entry: &pb::Entry) -> Result<(), ServerError> {
        let shared = self.shared;
        let write = self.write_for(entry)?;
        if let Some(member) = apply_membership::apply_v2(shared, &request, entry.index) {
            membership::save(write.batch_tx()?, &member)?;
        }
        if membership::parse_attributes_path(&request.path).is_some() {
            self.answer(request.id, Ok(Applied::Published));
        }
        Ok(())
    }

    fn apply_request(
        &mut self,
        request: InternalRaftRequest,
        entry: &pb::Entry,
    ) -> Result<Applied, ServerError> {
        let shared = self.shared;
        let capped = shared.alarms.no_space();
        if let Some(compaction) = request.compaction {
            return self.apply_compaction(&compaction, entry);
        }
        let write = self.write_for(entry)?;
        let lessor = &shared.lessor;
        if let Some(put) = request.put {
            if capped {
                return Err(ServerError::NoSpace);
            }
            let result = kv::put(write, &put, lessor);
            lessor.on_changes(write.changes());
            return Ok(Applied::Put(result?));
        }
        if let Some(delete) = request.delete_range {
            let result = kv::delete_range(write, &delete);
            lessor.on_changes(write.changes());
            return Ok(Applied::DeleteRange(result?));
        }
        if let Some(txn) = request.txn {
            if capped && !txn::is_txn_read_only(&txn) {
                return Err(ServerError::NoSpace);
            }
            let result = txn::apply_txn(write, &txn, lessor);
            lessor.on_changes(write.changes());
            return Ok(Applied::Txn(result?));
        }
        if let Some(grant) = request.lease_grant {
            if capped {
                return Err(ServerError::NoSpace);
            }
            let ttl = lessor.grant(grant.id, grant.ttl, write.batch_tx()?)??;
            return Ok(Applied::LeaseGrant(LeaseGrantResponse {
                header: kv::header(write.begin_rev()),
                id: grant.id,
                ttl,
                error: String::new(),
            }));
        }
        if let Some(revoke) = request.lease_revoke {
            return Ok(Applied::LeaseRevoke(revoke_lease(
                lessor, write, revoke.id,
            )?));
        }
        if let Some(alarm) = request.alarm {
            return Ok(Applied::Alarm(apply_alarm(shared, write, &alarm)?));
        }
        if let Some(range) = request.range {
            return Ok(Applied::Range(kv::range(&*write, &range)?));
        }
        tracing::warn!(
            index = entry.index,
            "skipping a request this member does not serve yet (auth, lease checkpoint)"
        );
        Err(ServerError::Internal("etcdserver: not capable".to_string()))
    }

    /// Compaction takes the store's writer lock itself: the open write ends first, and the
    /// entry's index is recorded in a new one after the compaction is scheduled.
    fn apply_compaction(
        &mut self,
        req: &CompactionRequest,
        entry: &pb::Entry,
    ) -> Result<Applied, ServerError> {
        self.end_write()?;
        let store = &self.shared.store;
        let result = store.compact(req.revision);
        self.write_for(entry)?;
        let wait: CompactionWait = result?;
        Ok(Applied::Compaction {
            response: CompactionResponse {
                header: kv::header(store.rev()?),
            },
            wait,
        })
    }

    fn apply_conf_change(&mut self, entry: &pb::Entry) -> Result<(), ServerError> {
        let (id, verdict) = self.raft.decide(self.shared, entry)?;
        let write = self.write_for(entry)?;
        apply_membership::save_conf_change(write.batch_tx()?, &verdict)?;
        // The member list is built only for a proposer waiting here.
        if let Some(waiter) = self.shared.waiters.take(id) {
            let reply = apply_membership::conf_change_reply(self.shared, &verdict);
            self.replies.push((waiter, reply));
        }
        Ok(())
    }
}

/// Revokes lease `id` inside `write` (etcd's `Revoke`): its keys are deleted in key order at
/// one revision, and its record in the same backend session.
fn revoke_lease(
    lessor: &crate::lease::Lessor,
    write: &mut StoreWrite<'_>,
    id: i64,
) -> Result<LeaseRevokeResponse, ServerError> {
    let keys = lessor
        .keys(id)
        .ok_or(ServerError::Lease(crate::lease::LeaseError::NotFound))?;
    let mut revision = write.begin_rev();
    for key in &keys {
        revision = write.delete_range(key, &[])?.1;
    }
    lessor.revoke(id, write.batch_tx()?)??;
    lessor.on_changes(write.changes());
    Ok(LeaseRevokeResponse {
        header: kv::header(revision),
    })
}

/// Applies an alarm request inside `write` (etcd's `applierV3backend.Alarm`).
fn apply_alarm(
    shared: &Shared,
    write: &mut StoreWrite<'_>,
    req: &AlarmRequest,
) -> Result<AlarmResponse, ServerError> {
    let member = AlarmMember {
        member_id: req.member_id,
        alarm: req.alarm,
    };
    let mut alarms = Vec::new();
    match AlarmAction::try_from(req.action) {
        Ok(AlarmAction::Get) => alarms = shared.alarms.list(req.alarm, req.member_id),
        Ok(AlarmAction::Activate) => {
            if req.alarm != AlarmType::None as i32 {
                if shared.alarms.activate(member) {
                    write
                        .batch_tx()?
                        .put(schema::ALARM, &member.encode_to_vec(), &[])?;
                    tracing::warn!(
                        alarm = ?AlarmType::try_from(member.alarm).ok(),
                        member = format!("{:x}", member.member_id),
                        "alarm raised"
                    );
                }
                alarms.push(member);
            }
        }
        Ok(AlarmAction::Deactivate) => {
            if shared.alarms.deactivate(&member) {
                write
                    .batch_tx()?
                    .delete(schema::ALARM, &member.encode_to_vec())?;
                alarms.push(member);
            }
        }
        Err(_) => {}
    }
    Ok(AlarmResponse {
        header: None,
        alarms,
    })
}

/// Store errors that mean the member cannot go on (the backend failed), as opposed to a
/// request's own failure (compacted, lease not found...).
fn is_fatal(e: &MvccError) -> bool {
    matches!(
        e,
        MvccError::Backend(_) | MvccError::Poisoned { .. } | MvccError::Corrupted { .. }
    )
}

impl ReadyHandler for Applier {
    fn send(&mut self, messages: Vec<raft::eraftpb::Message>) {
        let transport = &self.shared.transport;
        let is_snapshot = |m: &raft::eraftpb::Message| {
            m.get_msg_type() == raft::eraftpb::MessageType::MsgSnapshot
        };
        if !messages.iter().any(is_snapshot) {
            transport.send(messages);
            return;
        }
        let (snapshots, messages): (Vec<_>, Vec<_>) = messages.into_iter().partition(is_snapshot);
        if !messages.is_empty() {
            transport.send(messages);
        }
        for message in snapshots {
            super::snapshot::send(&self.shared, transport, message);
        }
    }

    fn apply(&mut self, entries: &[pb::Entry]) -> Result<Vec<u64>, ApplyError> {
        // The raft loop publishes the applied index after the step.
        self.apply_batch(entries)
            .map_err(|e| Box::new(e) as ApplyError)?;
        Ok(std::mem::take(&mut self.raft_membership.rejected))
    }

    fn restore(&mut self, snapshot: &pb::Snapshot) -> Result<(), ApplyError> {
        let installed = super::snapshot::install(&self.shared, snapshot)
            .map_err(|e| Box::new(e) as ApplyError)?;
        self.consistent_index = installed;
        self.raft_membership = RaftMembership::new(&snapshot.metadata.conf_state.voters);
        Ok(())
    }

    fn read_states(&mut self, states: Vec<ReadState>) {
        for state in states {
            let matches = self
                .reads
                .in_flight
                .as_ref()
                .is_some_and(|read| read.ctx == state.request_ctx);
            if matches {
                if let Some(read) = self.reads.in_flight.take() {
                    self.reads.confirmed.push((state.index, read.waiters));
                }
            }
        }
    }
}
