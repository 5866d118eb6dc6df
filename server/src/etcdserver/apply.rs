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

use super::error::ServerError;
use super::server::{Applied, Shared};
use crate::membership::{self, Member};
use crate::mvcc::{kv, txn, CompactionWait, MvccError, NoLeases};
use crate::pb::etcdserverpb::alarm_request::AlarmAction;
use crate::pb::etcdserverpb::{
    AlarmMember, AlarmRequest, AlarmResponse, AlarmType, CompactionRequest, CompactionResponse,
    InternalRaftRequest, TxnRequest,
};
use crate::raft::convert::{ConfChange, ConfChangeType};
use crate::raft::{ApplyError, ReadyHandler};
use crate::schema;
use oxcd_wal::pb;

/// Read index requests waiting on raft (see `raft_loop`).
#[derive(Default)]
pub(super) struct ReadTracker {
    /// The context of the read index request in flight and its waiters.
    pub(super) in_flight: Option<(Vec<u8>, Vec<ReadWaiter>)>,
    /// Reads whose read index is known, waiting for the applied index to reach it.
    pub(super) confirmed: Vec<(u64, Vec<ReadWaiter>)>,
}

/// Who waits for a linearizable read to be allowed: gets the read index.
pub(super) type ReadWaiter = tokio::sync::oneshot::Sender<Result<u64, ServerError>>;

/// The state machine of one member. See the module doc.
pub(super) struct Applier {
    pub(super) shared: Arc<Shared>,
    /// The store's consistent index, cached (only this applier raises it).
    consistent_index: u64,
    pub(super) reads: ReadTracker,
    /// The messages raft wants sent; a one-member cluster has none (peers come with issue 5).
    pub(super) outbox: Vec<raft::eraftpb::Message>,
}

impl Applier {
    pub(super) fn new(shared: Arc<Shared>) -> Result<Applier, ServerError> {
        let consistent_index = shared.store.consistent_index()?;
        Ok(Applier {
            shared,
            consistent_index,
            reads: ReadTracker::default(),
            outbox: Vec::new(),
        })
    }

    fn apply_entry(&mut self, entry: &pb::Entry) -> Result<(), ServerError> {
        if entry.index <= self.consistent_index {
            return Ok(());
        }
        match pb::EntryType::try_from(entry.entry_type) {
            Ok(pb::EntryType::EntryNormal) if entry.data.is_empty() => {}
            Ok(pb::EntryType::EntryNormal) => self.apply_normal(entry)?,
            Ok(pb::EntryType::EntryConfChange) => self.apply_conf_change(entry)?,
            _ => tracing::warn!(index = entry.index, "skipping entry of unknown type"),
        }
        self.consistent_index = entry.index;
        Ok(())
    }

    /// Records `entry`'s index when its effect did not write through the store.
    fn record_index(&self, entry: &pb::Entry) -> Result<(), ServerError> {
        if self.shared.store.consistent_index()? < entry.index {
            self.shared.store.write(entry.index, entry.term)?.end()?;
        }
        Ok(())
    }

    fn apply_normal(&mut self, entry: &pb::Entry) -> Result<(), ServerError> {
        let request = match InternalRaftRequest::decode(&entry.data[..]) {
            Ok(request) => request,
            Err(err) => {
                tracing::warn!(index = entry.index, %err, "skipping entry that is not an InternalRaftRequest");
                return self.record_index(entry);
            }
        };
        let id = request.header.as_ref().map_or(request.id, |h| h.id);
        let result = self.apply_request(request, entry);
        let result = match result {
            Err(ServerError::Mvcc(e)) if is_fatal(&e) => return Err(ServerError::Mvcc(e)),
            other => other,
        };
        self.shared.waiters.trigger(id, result);
        Ok(())
    }

    fn apply_request(
        &mut self,
        request: InternalRaftRequest,
        entry: &pb::Entry,
    ) -> Result<Applied, ServerError> {
        let store = &self.shared.store;
        let capped = self.shared.alarms.no_space();
        if let Some(put) = request.put {
            if capped {
                self.record_index(entry)?;
                return Err(ServerError::NoSpace);
            }
            let mut w = store.write(entry.index, entry.term)?;
            let result = kv::put(&mut w, &put, &NoLeases);
            w.end()?;
            return Ok(Applied::Put(result?));
        }
        if let Some(delete) = request.delete_range {
            let mut w = store.write(entry.index, entry.term)?;
            let result = kv::delete_range(&mut w, &delete);
            w.end()?;
            return Ok(Applied::DeleteRange(result?));
        }
        if let Some(txn) = request.txn {
            return self.apply_txn(&txn, entry, capped);
        }
        if let Some(compaction) = request.compaction {
            return self.apply_compaction(&compaction, entry);
        }
        if let Some(alarm) = request.alarm {
            let response = self.apply_alarm(&alarm, entry)?;
            return Ok(Applied::Alarm(response));
        }
        if let Some(range) = request.range {
            self.record_index(entry)?;
            return Ok(Applied::Range(kv::range(&store.read()?, &range)?));
        }
        tracing::warn!(
            index = entry.index,
            "skipping a request this member does not serve yet (lease, auth)"
        );
        self.record_index(entry)?;
        Err(ServerError::Internal("etcdserver: not capable".to_string()))
    }

    fn apply_txn(
        &self,
        req: &TxnRequest,
        entry: &pb::Entry,
        capped: bool,
    ) -> Result<Applied, ServerError> {
        if capped && !txn::is_txn_read_only(req) {
            self.record_index(entry)?;
            return Err(ServerError::NoSpace);
        }
        let mut w = self.shared.store.write(entry.index, entry.term)?;
        let result = txn::apply_txn(&mut w, req, &NoLeases);
        w.end()?;
        Ok(Applied::Txn(result?))
    }

    fn apply_compaction(
        &self,
        req: &CompactionRequest,
        entry: &pb::Entry,
    ) -> Result<Applied, ServerError> {
        let store = &self.shared.store;
        let result = store.compact(req.revision);
        self.record_index(entry)?;
        let wait: CompactionWait = result?;
        Ok(Applied::Compaction {
            response: CompactionResponse {
                header: kv::header(store.rev()?),
            },
            wait,
        })
    }

    fn apply_alarm(
        &self,
        req: &AlarmRequest,
        entry: &pb::Entry,
    ) -> Result<AlarmResponse, ServerError> {
        let member = AlarmMember {
            member_id: req.member_id,
            alarm: req.alarm,
        };
        let mut w = self.shared.store.write(entry.index, entry.term)?;
        let mut alarms = Vec::new();
        match AlarmAction::try_from(req.action) {
            Ok(AlarmAction::Get) => alarms = self.shared.alarms.list(req.alarm, req.member_id),
            Ok(AlarmAction::Activate) => {
                if req.alarm != AlarmType::None as i32 {
                    if self.shared.alarms.activate(member) {
                        w.batch_tx()?
                            .put(schema::ALARM, &member.encode_to_vec(), &[])?;
                        tracing::warn!(alarm = ?AlarmType::try_from(member.alarm).ok(), member = format!("{:x}", member.member_id), "alarm raised");
                    }
                    alarms.push(member);
                }
            }
            Ok(AlarmAction::Deactivate) => {
                if self.shared.alarms.deactivate(&member) {
                    w.batch_tx()?
                        .delete(schema::ALARM, &member.encode_to_vec())?;
                    alarms.push(member);
                }
            }
            Err(_) => {}
        }
        w.end()?;
        Ok(AlarmResponse {
            header: None,
            alarms,
        })
    }

    fn apply_conf_change(&mut self, entry: &pb::Entry) -> Result<(), ServerError> {
        let cc = ConfChange::decode(&entry.data[..]).map_err(|e| {
            ServerError::Internal(format!("bad conf change at {}: {e}", entry.index))
        })?;
        let mut w = self.shared.store.write(entry.index, entry.term)?;
        match ConfChangeType::try_from(cc.change_type) {
            Ok(ConfChangeType::ConfChangeAddNode | ConfChangeType::ConfChangeAddLearnerNode) => {
                let context = cc.context.unwrap_or_default();
                let mut member = Member::from_json(&context).unwrap_or_default();
                member.id = cc.node_id;
                membership::save(w.batch_tx()?, &member)?;
                self.shared.members.add(member);
            }
            Ok(ConfChangeType::ConfChangeRemoveNode) => {
                w.batch_tx()?
                    .delete(schema::MEMBERS, &membership::member_key(cc.node_id))?;
                self.shared.members.remove(cc.node_id);
            }
            _ => {}
        }
        w.end()?;
        Ok(())
    }
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
        self.outbox.extend(messages);
    }

    fn apply(&mut self, entries: &[pb::Entry]) -> Result<(), ApplyError> {
        for entry in entries {
            self.apply_entry(entry)
                .map_err(|e| Box::new(e) as ApplyError)?;
        }
        if let Some(last) = entries.last() {
            self.shared.status.set_applied(last.index);
        }
        Ok(())
    }

    fn restore(&mut self, snapshot: &pb::Snapshot) -> Result<(), ApplyError> {
        // A single member never receives a snapshot; peers (issue 5) will send the db.
        Err(format!(
            "receiving a snapshot (index {}) from a leader is not supported yet",
            snapshot.metadata.index
        )
        .into())
    }

    fn read_states(&mut self, states: Vec<ReadState>) {
        for state in states {
            let matches = self
                .reads
                .in_flight
                .as_ref()
                .is_some_and(|(ctx, _)| *ctx == state.request_ctx);
            if matches {
                if let Some((_, waiters)) = self.reads.in_flight.take() {
                    self.reads.confirmed.push((state.index, waiters));
                }
            }
        }
    }
}
