//! The raft node: a raft-rs `RawNode` over [`WalStorage`], started for a new member or
//! restarted from its WAL and newest snap file, and the `Ready` loop step that ties raft to
//! the disk and to the apply layer.
//!
//! The node owns raft's state and its storage; it does not own time (the caller says how many
//! ticks are due), the network (outgoing messages go to [`ReadyHandler::send`]) or the state
//! machine (committed entries go to [`ReadyHandler::apply`], in order). It applies committed
//! configuration changes to raft itself, after the handler has seen them.
//!
//! One [`RaftNode::step_ready`] handles each pending `Ready` in raft-rs's documented order:
//!
//! 1. a leader's messages, sent before persisting (followers write in parallel; thesis 10.2.1);
//! 2. read states (ReadIndex results);
//! 3. committed entries, which earlier `Ready`s already made durable, to the handler;
//! 4. snapshot, entries and hard state made durable with one WAL sync ([`WalStorage::persist`]),
//!    then a received snapshot handed to the handler;
//! 5. persisted messages (a follower's acknowledgements and votes), only now that the data is
//!    durable;
//! 6. advance, then the `LightReady`: new commit index, messages, committed entries.
//!
//! A new member's log starts as etcd's does: one `ConfChangeAddNode` entry per initial member
//! at term 1, all committed, so that membership is recoverable from the WAL alone. On restart
//! raft-rs starts at the snapshot's index as applied and hands every later committed entry to
//! the handler again; the apply layer skips those at or below its consistent index.

use ::raft::eraftpb::{ConfState, Entry, EntryType, HardState, Message, MessageType};
use ::raft::{Config, RawNode, ReadState, StateRole};
use oxcd_wal::{pb, WalOptions};
use prost::Message as _;
use std::path::PathBuf;

use super::convert::{
    conf_change_to_raft, conf_state_from_wal, conf_state_to_wal, entry_to_wal, hard_state_to_wal,
    snapshot_to_wal, ConfChange, ConfChangeType,
};
use super::error::{ApplyError, RaftError, Result};
use super::logger::raft_logger;
use super::storage::{Restored, WalStorage};

/// etcd's `maxSizePerMsg`: the most entry bytes in one append message.
pub const DEFAULT_MAX_SIZE_PER_MSG: u64 = 1024 * 1024;
/// etcd's `maxInflightMsgs` (4096 / 8): append messages in flight to one follower.
pub const DEFAULT_MAX_INFLIGHT_MSGS: usize = 4096 / 8;

/// How to run one member's raft.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// The member ID (never 0).
    pub id: u64,
    /// Ticks without a leader before an election (etcd: election timeout / heartbeat interval).
    pub election_tick: usize,
    /// Ticks between a leader's heartbeats.
    pub heartbeat_tick: usize,
    /// `member/wal`.
    pub wal_dir: PathBuf,
    /// `member/snap`.
    pub snap_dir: PathBuf,
    /// Segment size, `--max-wals`, write path.
    pub wal_options: WalOptions,
    /// Most entry bytes in one append message.
    pub max_size_per_msg: u64,
    /// Most append messages in flight to one follower.
    pub max_inflight_msgs: usize,
    /// Run a pre-election before a real one (`--pre-vote`), so a member that was cut off
    /// does not raise the term of the others when it comes back.
    pub pre_vote: bool,
}

impl NodeConfig {
    /// etcd's defaults (election 10 ticks, heartbeat 1) for member `id` with these directories.
    pub fn new(id: u64, wal_dir: PathBuf, snap_dir: PathBuf) -> NodeConfig {
        NodeConfig {
            id,
            election_tick: 10,
            heartbeat_tick: 1,
            wal_dir,
            snap_dir,
            wal_options: WalOptions::default(),
            max_size_per_msg: DEFAULT_MAX_SIZE_PER_MSG,
            max_inflight_msgs: DEFAULT_MAX_INFLIGHT_MSGS,
            pre_vote: true,
        }
    }

    /// raft-rs's configuration: CheckQuorum on (etcd always sets it), PreVote as configured,
    /// linearizable (safe) read index.
    fn raft_config(&self, applied: u64) -> Config {
        Config {
            id: self.id,
            election_tick: self.election_tick,
            heartbeat_tick: self.heartbeat_tick,
            applied,
            max_size_per_msg: self.max_size_per_msg,
            max_inflight_msgs: self.max_inflight_msgs,
            check_quorum: true,
            pre_vote: self.pre_vote,
            ..Config::default()
        }
    }
}

/// A member of a new cluster's initial configuration (etcd's `raft.Peer`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    /// Its member ID.
    pub id: u64,
    /// The conf change context (etcd: the member's JSON).
    pub context: Vec<u8>,
}

/// Where a `Ready`'s outputs go. See the module docs for the order of calls.
pub trait ReadyHandler {
    /// Sends raft messages to peers. A one-member cluster produces none.
    fn send(&mut self, messages: Vec<Message>);

    /// Applies committed entries, consecutive and in log order, each exactly once per run
    /// (after a restart, again from the snapshot on). Returns the indexes of the conf change
    /// entries it refused, which raft then applies as no-ops (node ID 0, as etcd does). An
    /// error stops the node's step before it acknowledges the batch to raft.
    fn apply(&mut self, entries: &[pb::Entry]) -> Result<Vec<u64>, ApplyError>;

    /// Replaces the state machine with a durable snapshot received from the leader.
    fn restore(&mut self, snapshot: &pb::Snapshot) -> Result<(), ApplyError>;

    /// Delivers ReadIndex results (`RaftNode::read_index`).
    fn read_states(&mut self, states: Vec<ReadState>);
}

/// One member's raft. See the module docs.
pub struct RaftNode {
    raw: RawNode<WalStorage>,
    /// The membership as of `applied` (what a snapshot taken now records).
    conf_state: ConfState,
    /// The last entry handed to the handler (or the snapshot restored).
    applied: u64,
}

impl std::fmt::Debug for RaftNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaftNode")
            .field("id", &self.raw.raft.id)
            .field("role", &self.raw.raft.state)
            .field("hard_state", &self.raw.raft.hard_state())
            .field("applied", &self.applied)
            .finish_non_exhaustive()
    }
}

impl RaftNode {
    /// Starts a member of a new cluster: creates its WAL holding `metadata`, writes one
    /// committed `ConfChangeAddNode` entry per peer at term 1 (etcd's bootstrap, durable before
    /// raft starts), and starts raft on it. The first `step_ready` applies those entries.
    pub fn start_new(cfg: &NodeConfig, metadata: &[u8], peers: &[Peer]) -> Result<RaftNode> {
        let mut storage = WalStorage::create(
            &cfg.wal_dir,
            &cfg.snap_dir,
            metadata,
            cfg.wal_options.clone(),
        )?;
        let entries = peers
            .iter()
            .zip(1..)
            .map(|(peer, index)| bootstrap_entry(peer, index))
            .collect::<Vec<_>>();
        let hard_state = HardState {
            term: 1,
            commit: entries.len() as u64,
            ..Default::default()
        };
        storage.append_durably(&entries, &hard_state)?;
        RaftNode::with_storage(cfg, storage, 0, ConfState::default())
    }

    /// Starts a member joining a running cluster (`--initial-cluster-state existing`): creates
    /// its WAL holding `metadata` and starts raft with no configuration and an empty log, as
    /// etcd's `RestartNode` does; the log, from its first entry or a snapshot on, and with it
    /// the configuration, arrives from the leader.
    pub fn start_join(cfg: &NodeConfig, metadata: &[u8]) -> Result<RaftNode> {
        let storage = WalStorage::create(
            &cfg.wal_dir,
            &cfg.snap_dir,
            metadata,
            cfg.wal_options.clone(),
        )?;
        RaftNode::with_storage(cfg, storage, 0, ConfState::default())
    }

    /// Restarts a member from its WAL and newest usable snap file.
    pub fn restart(cfg: &NodeConfig) -> Result<(RaftNode, Restored)> {
        RaftNode::restart_as(cfg, |_| Ok(cfg.id))
    }

    /// Restarts a member whose ID is recorded in the WAL's metadata: `member_id` reads it
    /// (etcd: the `Metadata` record's node ID) and replaces `cfg.id`.
    pub fn restart_as(
        cfg: &NodeConfig,
        member_id: impl FnOnce(&[u8]) -> Result<u64, ApplyError>,
    ) -> Result<(RaftNode, Restored)> {
        let (storage, restored) =
            WalStorage::open(&cfg.wal_dir, &cfg.snap_dir, cfg.wal_options.clone())?;
        let mut cfg = cfg.clone();
        cfg.id = member_id(&restored.metadata).map_err(RaftError::Apply)?;
        let cfg = &cfg;
        let (applied, conf_state) = match &restored.snapshot {
            Some(s) => (
                s.metadata.index,
                conf_state_from_wal(&s.metadata.conf_state),
            ),
            None => (0, ConfState::default()),
        };
        let node = RaftNode::with_storage(cfg, storage, applied, conf_state)?;
        Ok((node, restored))
    }

    fn with_storage(
        cfg: &NodeConfig,
        storage: WalStorage,
        applied: u64,
        conf_state: ConfState,
    ) -> Result<RaftNode> {
        let raw = RawNode::new(&cfg.raft_config(applied), storage, &raft_logger())?;
        Ok(RaftNode {
            raw,
            conf_state,
            applied,
        })
    }

    /// Advances raft's logical clock by one tick; true if a `Ready` may be pending.
    pub fn tick(&mut self) -> bool {
        self.raw.tick()
    }

    /// Starts an election now instead of waiting for the election timeout (with PreVote, a
    /// pre-election first).
    pub fn campaign(&mut self) -> Result<()> {
        Ok(self.raw.campaign()?)
    }

    /// Proposes `data` (etcd: an encoded `InternalRaftRequest`) as a normal entry.
    /// `ProposalDropped` when there is no leader to take it.
    pub fn propose(&mut self, data: Vec<u8>) -> Result<()> {
        Ok(self.raw.propose(Vec::new(), data)?)
    }

    /// Proposes a conf change entry whose data is `conf_change` (etcd's encoding of
    /// `raftpb.ConfChange`). A follower forwards it to the leader. Dropped (the entry becomes
    /// an empty normal one) while another conf change is unapplied, as raft-rs does.
    /// `ProposalDropped` when there is no leader to take it.
    pub fn propose_conf_change(&mut self, conf_change: Vec<u8>) -> Result<()> {
        let mut entry = Entry::default();
        entry.set_entry_type(EntryType::EntryConfChange);
        entry.data = conf_change.into();
        let mut message = Message::default();
        message.set_msg_type(MessageType::MsgPropose);
        message.from = self.id();
        message.set_entries(vec![entry].into());
        self.step(message)
    }

    /// On the leader, appends proposed entries that include conf changes the way raft-rs's
    /// leader handles `MsgPropose`, without its decoding of each conf change into raft-rs's
    /// enum: raft-rs numbers `AddLearnerNode` 2 and refuses etcd's 3 as an invalid enum
    /// value, so it would drop every learner addition in etcd's encoding.
    fn append_as_leader(&mut self, mut entries: Vec<Entry>) -> Result<()> {
        let raft = &mut self.raw.raft;
        let id = raft.id;
        if raft.prs().get(id).is_none() || raft.lead_transferee.is_some() {
            return Err(::raft::Error::ProposalDropped.into());
        }
        for (i, entry) in entries.iter_mut().enumerate() {
            if entry.get_entry_type() != EntryType::EntryConfChange {
                continue;
            }
            if raft.has_pending_conf() {
                tracing::info!(
                    pending = raft.pending_conf_index,
                    "ignoring conf change: possible unapplied conf change"
                );
                *entry = Entry::default();
            } else {
                raft.pending_conf_index = raft.raft_log.last_index() + i as u64 + 1;
            }
        }
        if !raft.append_entry(&mut entries) {
            return Err(::raft::Error::ProposalDropped.into());
        }
        raft.bcast_append();
        Ok(())
    }

    /// Asks for a read index; the answer arrives through `ReadyHandler::read_states` with
    /// `context` as its request context.
    pub fn read_index(&mut self, context: Vec<u8>) {
        self.raw.read_index(context);
    }

    /// Feeds a message received from a peer. A leader appends forwarded conf change
    /// proposals itself (see `append_as_leader`).
    pub fn step(&mut self, mut message: Message) -> Result<()> {
        let has_conf_change = message.get_msg_type() == MessageType::MsgPropose
            && message
                .get_entries()
                .iter()
                .any(|e| e.get_entry_type() == EntryType::EntryConfChange);
        if has_conf_change && self.is_leader() {
            return self.append_as_leader(message.take_entries().into());
        }
        Ok(self.raw.step(message)?)
    }

    /// Tells raft that messages to `id` were lost (a leader then probes it instead of
    /// streaming appends).
    pub fn report_unreachable(&mut self, id: u64) {
        self.raw.report_unreachable(id);
    }

    /// Tells raft how sending a snapshot to `id` ended.
    pub fn report_snapshot(&mut self, id: u64, delivered: bool) {
        let status = if delivered {
            ::raft::SnapshotStatus::Finish
        } else {
            ::raft::SnapshotStatus::Failure
        };
        self.raw.report_snapshot(id, status);
    }

    /// Asks raft to hand leadership to `transferee` (a follower forwards the request to the
    /// leader; the leader ignores unknown members, learners and itself).
    pub fn transfer_leader(&mut self, transferee: u64) {
        self.raw.transfer_leader(transferee);
    }

    /// The log index a leader knows `id` to have replicated (`None`: not a member, or this
    /// member does not lead).
    pub fn matched(&self, id: u64) -> Option<u64> {
        if !self.is_leader() {
            return None;
        }
        self.raw.raft.prs().get(id).map(|p| p.matched)
    }

    /// Runs `ticks` ticks, then handles every pending `Ready` (module docs). Returns whether
    /// there was any. On error nothing of the failing `Ready` has been acknowledged to raft or
    /// sent after persisting; the node must be dropped (a failed WAL sync poisons the WAL).
    pub fn step_ready(&mut self, ticks: usize, handler: &mut impl ReadyHandler) -> Result<bool> {
        for _ in 0..ticks {
            self.raw.tick();
        }
        let mut handled = false;
        while self.raw.has_ready() {
            self.handle_ready(handler)?;
            handled = true;
        }
        Ok(handled)
    }

    fn handle_ready(&mut self, handler: &mut impl ReadyHandler) -> Result<()> {
        let mut ready = self.raw.ready();
        if !ready.messages().is_empty() {
            handler.send(ready.take_messages());
        }
        if !ready.read_states().is_empty() {
            handler.read_states(ready.take_read_states());
        }
        self.apply_committed(ready.take_committed_entries(), handler)?;
        let snapshot = (!ready.snapshot().is_empty()).then(|| snapshot_to_wal(ready.snapshot()));
        self.raw.mut_store().persist(&mut ready)?;
        if let Some(snapshot) = snapshot {
            handler.restore(&snapshot).map_err(RaftError::Apply)?;
            self.applied = snapshot.metadata.index;
            self.conf_state = conf_state_from_wal(&snapshot.metadata.conf_state);
        }
        if !ready.persisted_messages().is_empty() {
            handler.send(ready.take_persisted_messages());
        }
        let mut light = self.raw.advance(ready);
        if let Some(commit) = light.commit_index() {
            self.raw.mut_store().set_commit(commit);
        }
        if !light.messages().is_empty() {
            handler.send(light.take_messages());
        }
        self.apply_committed(light.take_committed_entries(), handler)?;
        self.raw.advance_apply();
        Ok(())
    }

    /// Hands `entries` to the handler, then applies their configuration changes to raft.
    fn apply_committed(
        &mut self,
        entries: Vec<Entry>,
        handler: &mut impl ReadyHandler,
    ) -> Result<()> {
        let Some(last) = entries.last().map(|e| e.index) else {
            return Ok(());
        };
        let entries = entries
            .iter()
            .map(entry_to_wal)
            .collect::<Result<Vec<_>>>()?;
        let rejected = handler.apply(&entries).map_err(RaftError::Apply)?;
        for entry in &entries {
            match pb::EntryType::try_from(entry.entry_type) {
                Ok(pb::EntryType::EntryConfChange) => {
                    self.apply_conf_change(entry, rejected.contains(&entry.index))?
                }
                Ok(pb::EntryType::EntryConfChangeV2) => {
                    return Err(RaftError::ConfChangeV2Unsupported { index: entry.index })
                }
                _ => {}
            }
        }
        self.applied = last;
        Ok(())
    }

    /// Applies the conf change in `entry` to raft; a `rejected` one as a no-op (node ID 0,
    /// which raft-rs skips), so every member's configuration moves the same way.
    fn apply_conf_change(&mut self, entry: &pb::Entry, rejected: bool) -> Result<()> {
        let mut cc =
            ConfChange::decode(&entry.data[..]).map_err(|source| RaftError::BadConfChange {
                index: entry.index,
                source,
            })?;
        if rejected {
            cc.node_id = 0;
        }
        if let Some(cc) = conf_change_to_raft(&cc, entry.index)? {
            self.conf_state = self.raw.apply_conf_change(&cc)?;
        }
        Ok(())
    }

    /// Takes a snapshot at the applied index holding the state machine's `data`, then keeps
    /// only the `catch_up_entries` entries up to it in memory for slow followers (etcd's
    /// `snapshot` with `SnapshotCatchUpEntries`). Returns its metadata.
    pub fn snapshot(
        &mut self,
        data: Vec<u8>,
        catch_up_entries: u64,
    ) -> Result<pb::SnapshotMetadata> {
        let index = self.applied;
        let store = self.raw.mut_store();
        let snapshot = store.create_snapshot(index, self.conf_state.clone(), data)?;
        if index > catch_up_entries {
            store.compact(index - catch_up_entries + 1)?;
        }
        Ok(snapshot_to_wal(&snapshot).metadata)
    }

    /// Removes old WAL segments and snap files (see `WalStorage::purge`).
    pub fn purge(&mut self, max_snapshots: usize) -> Result<Vec<PathBuf>> {
        self.raw.mut_store().purge(max_snapshots)
    }

    /// Clean shutdown: makes the latest hard state (its commit index) durable.
    pub fn close(mut self) -> Result<()> {
        self.raw.mut_store().sync_hard_state()
    }

    /// This member's ID.
    pub fn id(&self) -> u64 {
        self.raw.raft.id
    }

    /// True while this member leads.
    pub fn is_leader(&self) -> bool {
        self.raw.raft.state == StateRole::Leader
    }

    /// The leader this member knows of (0: none).
    pub fn leader_id(&self) -> u64 {
        self.raw.raft.leader_id
    }

    /// The current term, vote and commit index.
    pub fn hard_state(&self) -> pb::HardState {
        hard_state_to_wal(&self.raw.raft.hard_state())
    }

    /// The last entry handed to the handler (or the snapshot restored).
    pub fn applied_index(&self) -> u64 {
        self.applied
    }

    /// The membership as of the applied index.
    pub fn conf_state(&self) -> pb::ConfState {
        conf_state_to_wal(&self.conf_state)
    }

    /// The storage (in-memory log, WAL).
    pub fn storage(&self) -> &WalStorage {
        self.raw.store()
    }
}

/// Entry `index` of a new cluster's log: adds `peer` as a voter, at term 1 (etcd's bootstrap).
fn bootstrap_entry(peer: &Peer, index: u64) -> Entry {
    let cc = ConfChange {
        id: 0,
        change_type: ConfChangeType::ConfChangeAddNode as i32,
        node_id: peer.id,
        context: Some(peer.context.clone()),
    };
    Entry {
        entry_type: EntryType::EntryConfChange,
        term: 1,
        index,
        data: cc.encode_to_vec().into(),
        ..Default::default()
    }
}
