//! A one-member raft node end to end on real directories: bootstrap, election by ticks,
//! proposals committed through the handler in one group-committed batch, and restarts (clean,
//! unclean, from a snapshot) that bring back the same log and hard state.

use std::path::PathBuf;

use ::raft::eraftpb::Message;
use ::raft::{GetEntriesContext, ReadState, Storage};
use oxcd_wal::{pb, read_all, SnapshotMark};
use prost::Message as _;

use super::convert::{ConfChange, ConfChangeType};
use super::error::{ApplyError, RaftError};
use super::node::{NodeConfig, Peer, RaftNode, ReadyHandler};

/// Records what the node hands out.
#[derive(Default)]
struct Recorder {
    applied: Vec<pb::Entry>,
    batch_sizes: Vec<usize>,
    sent: Vec<Message>,
    read_states: Vec<ReadState>,
    restored: Vec<pb::Snapshot>,
    /// The index applied last (an entry's or a restored snapshot's).
    last_index: u64,
    fail_apply: bool,
    /// Refuse every conf change above the bootstrap entries (as an apply layer would refuse
    /// an invalid one).
    reject_conf_changes: bool,
}

impl ReadyHandler for Recorder {
    fn send(&mut self, messages: Vec<Message>) {
        self.sent.extend(messages);
    }

    fn apply(&mut self, entries: &[pb::Entry]) -> Result<Vec<u64>, ApplyError> {
        if self.fail_apply {
            return Err("backend unavailable".into());
        }
        let rejected = entries
            .iter()
            .filter(|e| self.reject_conf_changes && e.index > 1)
            .filter(|e| e.entry_type == pb::EntryType::EntryConfChange as i32)
            .map(|e| e.index)
            .collect();
        for entry in entries {
            if self.last_index != 0 {
                assert_eq!(entry.index, self.last_index + 1, "in order, no gaps");
            }
            self.last_index = entry.index;
        }
        self.batch_sizes.push(entries.len());
        self.applied.extend_from_slice(entries);
        Ok(rejected)
    }

    fn restore(&mut self, snapshot: &pb::Snapshot) -> Result<(), ApplyError> {
        self.restored.push(snapshot.clone());
        self.last_index = snapshot.metadata.index;
        Ok(())
    }

    fn read_states(&mut self, states: Vec<ReadState>) {
        self.read_states.extend(states);
    }
}

impl Recorder {
    fn normal_data(&self) -> Vec<Vec<u8>> {
        self.applied
            .iter()
            .filter(|e| e.entry_type == pb::EntryType::EntryNormal as i32 && !e.data.is_empty())
            .map(|e| e.data.clone())
            .collect()
    }
}

const MEMBER_ID: u64 = 0x8e9e05c52164694d;

fn config(dir: &std::path::Path) -> NodeConfig {
    let mut cfg = NodeConfig::new(MEMBER_ID, dir.join("member/wal"), dir.join("member/snap"));
    cfg.election_tick = 5;
    std::fs::create_dir_all(dir.join("member")).unwrap();
    cfg
}

fn peer() -> Peer {
    Peer {
        id: MEMBER_ID,
        context: br#"{"id":1}"#.to_vec(),
    }
}

/// Ticks until the node leads, within a bound of ticks (randomized timeouts are < 2x).
fn tick_until_leader(node: &mut RaftNode, handler: &mut Recorder) {
    for _ in 0..100 {
        node.step_ready(1, handler).unwrap();
        if node.is_leader() {
            return;
        }
    }
    panic!("no leader after 100 ticks: {node:?}");
}

fn payloads(range: std::ops::Range<u32>) -> Vec<Vec<u8>> {
    range.map(|i| format!("put-{i}").into_bytes()).collect()
}

fn log_of(node: &RaftNode) -> Vec<::raft::eraftpb::Entry> {
    let storage = node.storage();
    let (first, last) = (
        storage.first_index().unwrap(),
        storage.last_index().unwrap(),
    );
    storage
        .entries(first, last + 1, None, GetEntriesContext::empty(false))
        .unwrap()
}

fn wal_dir(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("member/wal")
}

#[test]
fn a_new_member_writes_etcds_bootstrap_log() {
    // Proves the first log is one committed ConfChangeAddNode per peer at term 1, as etcd's.
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let mut node = RaftNode::start_new(&cfg, b"metadata", &[peer()]).unwrap();
    let on_disk = read_all(&wal_dir(&dir), SnapshotMark::default()).unwrap();
    assert_eq!(on_disk.metadata, b"metadata");
    assert_eq!(
        on_disk.hard_state,
        pb::HardState {
            term: 1,
            vote: 0,
            commit: 1
        }
    );
    assert_eq!(on_disk.entries.len(), 1);
    let first = &on_disk.entries[0];
    assert_eq!((first.entry_type, first.term, first.index), (1, 1, 1));
    let cc = ConfChange::decode(&first.data[..]).unwrap();
    assert_eq!(cc.change_type, ConfChangeType::ConfChangeAddNode as i32);
    assert_eq!((cc.id, cc.node_id), (0, MEMBER_ID));
    assert_eq!(cc.context.as_deref(), Some(&br#"{"id":1}"#[..]));

    // The first step applies it: raft learns its only voter and the handler sees the entry.
    let mut handler = Recorder::default();
    node.step_ready(0, &mut handler).unwrap();
    assert_eq!(handler.applied, on_disk.entries);
    assert_eq!(node.conf_state().voters, vec![MEMBER_ID]);
    assert_eq!(node.applied_index(), 1);
}

#[test]
fn proposals_commit_in_one_batch_and_survive_a_clean_restart() {
    // Proves election, group commit of N proposals, apply order, and the same log and hard
    // state (commit index included) after a restart from the WAL.
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let mut node = RaftNode::start_new(&cfg, b"meta", &[peer()]).unwrap();
    let mut handler = Recorder::default();
    assert!(matches!(
        node.propose(b"too early".to_vec()),
        Err(RaftError::Raft(::raft::Error::ProposalDropped))
    ));
    tick_until_leader(&mut node, &mut handler);
    assert_eq!(node.leader_id(), MEMBER_ID);
    let term = node.hard_state().term;
    assert!(term >= 2, "an election happened after bootstrap term 1");

    let n = 200;
    for data in payloads(0..n) {
        node.propose(data).unwrap();
    }
    handler.batch_sizes.clear();
    assert!(node.step_ready(0, &mut handler).unwrap());
    // One Ready carried all proposals: one WAL save, then one committed batch.
    assert_eq!(handler.batch_sizes, vec![n as usize]);
    assert_eq!(handler.normal_data(), payloads(0..n));
    let last = node.storage().last_index().unwrap();
    assert_eq!(node.hard_state().commit, last);
    assert_eq!(node.applied_index(), last);
    assert!(
        handler.sent.is_empty(),
        "a one-member cluster sends nothing"
    );

    let log_before = log_of(&node);
    let hard_state_before = node.hard_state();
    node.close().unwrap();

    let (mut node, restored) = RaftNode::restart(&cfg).unwrap();
    assert_eq!(restored.metadata, b"meta");
    assert_eq!(restored.hard_state, hard_state_before);
    assert_eq!(node.hard_state(), hard_state_before);
    assert_eq!(log_of(&node), log_before);
    assert!(!node.is_leader());

    // Every committed entry is handed out again (the apply layer skips what it has).
    let mut replay = Recorder::default();
    node.step_ready(0, &mut replay).unwrap();
    assert_eq!(replay.applied, handler.applied);
    assert_eq!(node.conf_state().voters, vec![MEMBER_ID]);

    // And the member carries on in a later term.
    tick_until_leader(&mut node, &mut replay);
    assert!(node.hard_state().term > term);
    node.propose(b"after restart".to_vec()).unwrap();
    node.step_ready(0, &mut replay).unwrap();
    assert_eq!(replay.normal_data().last().unwrap(), b"after restart");
}

#[test]
fn an_unclean_stop_loses_nothing_that_was_applied() {
    // Proves dropping the node without close keeps every acknowledged entry; raft re-commits
    // them once re-elected even though the WAL's commit index lagged.
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let mut node = RaftNode::start_new(&cfg, b"", &[peer()]).unwrap();
    let mut handler = Recorder::default();
    tick_until_leader(&mut node, &mut handler);
    for batch in 0..5 {
        for data in payloads(batch * 10..batch * 10 + 10) {
            node.propose(data).unwrap();
        }
        node.step_ready(0, &mut handler).unwrap();
    }
    assert_eq!(handler.normal_data(), payloads(0..50));
    let applied = node.applied_index();
    drop(node);

    let (mut node, restored) = RaftNode::restart(&cfg).unwrap();
    assert!(restored.hard_state.commit <= applied);
    assert_eq!(node.storage().last_index().unwrap(), applied);
    let mut replay = Recorder::default();
    tick_until_leader(&mut node, &mut replay);
    node.step_ready(0, &mut replay).unwrap();
    assert_eq!(replay.normal_data(), payloads(0..50));
    assert!(
        node.applied_index() > applied,
        "the new term's empty entry applied too"
    );
}

#[test]
fn a_snapshot_bounds_the_replay_after_restart() {
    // Proves snapshot + compaction in memory, and a restart that replays only what follows it.
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let mut node = RaftNode::start_new(&cfg, b"", &[peer()]).unwrap();
    let mut handler = Recorder::default();
    tick_until_leader(&mut node, &mut handler);
    for data in payloads(0..20) {
        node.propose(data).unwrap();
    }
    node.step_ready(0, &mut handler).unwrap();
    let at = node.applied_index();
    let meta = node.snapshot(b"v2 store".to_vec(), 5).unwrap();
    assert_eq!(meta.index, at);
    assert_eq!(meta.conf_state.voters, vec![MEMBER_ID]);
    assert_eq!(node.storage().first_index().unwrap(), at - 4);
    for data in payloads(20..30) {
        node.propose(data).unwrap();
    }
    node.step_ready(0, &mut handler).unwrap();
    let log_tail: Vec<_> = log_of(&node).into_iter().filter(|e| e.index > at).collect();
    node.close().unwrap();

    let (mut node, restored) = RaftNode::restart(&cfg).unwrap();
    let snap = restored.snapshot.expect("restarted from the snapshot");
    assert_eq!(
        (snap.metadata.index, &snap.data[..]),
        (at, &b"v2 store"[..])
    );
    assert_eq!(node.applied_index(), at);
    assert_eq!(node.storage().first_index().unwrap(), at + 1);
    assert_eq!(log_of(&node), log_tail);
    let mut replay = Recorder::default();
    node.step_ready(0, &mut replay).unwrap();
    assert_eq!(replay.applied.first().map(|e| e.index), Some(at + 1));
    assert_eq!(replay.normal_data(), payloads(20..30));
    assert_eq!(node.conf_state().voters, vec![MEMBER_ID]);
    tick_until_leader(&mut node, &mut replay);
}

#[test]
fn read_index_is_answered_through_the_handler() {
    // Proves a leader's ReadIndex request comes back with its context and the commit index.
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let mut node = RaftNode::start_new(&cfg, b"", &[peer()]).unwrap();
    let mut handler = Recorder::default();
    tick_until_leader(&mut node, &mut handler);
    node.step_ready(0, &mut handler).unwrap();
    node.read_index(b"req-1".to_vec());
    node.step_ready(0, &mut handler).unwrap();
    assert_eq!(handler.read_states.len(), 1);
    assert_eq!(handler.read_states[0].request_ctx, b"req-1");
    assert_eq!(handler.read_states[0].index, node.hard_state().commit);
}

#[test]
fn an_apply_failure_stops_the_step() {
    // Proves an error from the apply callback surfaces as RaftError::Apply.
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let mut node = RaftNode::start_new(&cfg, b"", &[peer()]).unwrap();
    let mut handler = Recorder {
        fail_apply: true,
        ..Recorder::default()
    };
    let err = node.step_ready(0, &mut handler).unwrap_err();
    assert!(matches!(err, RaftError::Apply(_)), "{err}");
    assert_eq!(node.applied_index(), 0);
}

/// Three members in one process; messages move between them by `pump`.
struct Cluster {
    dir: tempfile::TempDir,
    nodes: Vec<RaftNode>,
    handlers: Vec<Recorder>,
}

impl Cluster {
    fn start(size: u64) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let peers: Vec<Peer> = (1..=size)
            .map(|id| Peer {
                id,
                context: vec![],
            })
            .collect();
        let nodes = (1..=size)
            .map(|id| RaftNode::start_new(&Cluster::config(&dir, id), b"", &peers).unwrap())
            .collect();
        let handlers = (1..=size).map(|_| Recorder::default()).collect();
        Cluster {
            dir,
            nodes,
            handlers,
        }
    }

    fn config(dir: &tempfile::TempDir, id: u64) -> NodeConfig {
        let mut cfg = config(&dir.path().join(format!("m{id}")));
        cfg.id = id;
        cfg
    }

    /// Steps every node and delivers messages until none move; drops those to or from
    /// `isolated`.
    fn pump(&mut self, isolated: Option<u64>) {
        for _ in 0..100 {
            let mut moved = false;
            for (node, handler) in self.nodes.iter_mut().zip(&mut self.handlers) {
                node.step_ready(0, handler).unwrap();
            }
            for i in 0..self.nodes.len() {
                for message in std::mem::take(&mut self.handlers[i].sent) {
                    if isolated == Some(message.to) || isolated == Some(message.from) {
                        continue;
                    }
                    self.nodes[message.to as usize - 1].step(message).unwrap();
                    moved = true;
                }
            }
            if !moved {
                return;
            }
        }
        panic!("messages kept moving");
    }
}

#[test]
fn a_lagging_follower_installs_the_leaders_snapshot_durably() {
    // Proves persist(Ready) with a snapshot: snap file + mark written, log replaced, handler
    // restores, later entries follow, and the follower restarts from that snapshot.
    let mut cluster = Cluster::start(3);
    cluster.pump(None);
    cluster.nodes[0].campaign().unwrap();
    cluster.pump(None);
    assert!(cluster.nodes[0].is_leader());

    for data in payloads(0..10) {
        cluster.nodes[0].propose(data).unwrap();
    }
    cluster.pump(Some(3));
    let meta = cluster.nodes[0]
        .snapshot(b"leader state".to_vec(), 0)
        .unwrap();
    assert_eq!(
        cluster.nodes[0].storage().first_index().unwrap(),
        meta.index + 1
    );

    cluster.nodes[0]
        .propose(b"after snapshot".to_vec())
        .unwrap();
    cluster.pump(None);
    let follower = &cluster.handlers[2];
    assert_eq!(follower.restored.len(), 1);
    assert_eq!(follower.restored[0].data, b"leader state");
    assert_eq!(follower.restored[0].metadata.index, meta.index);
    assert_eq!(follower.normal_data(), vec![b"after snapshot".to_vec()]);
    assert_eq!(
        cluster.nodes[2].applied_index(),
        cluster.nodes[0].applied_index()
    );
    assert_eq!(cluster.nodes[2].conf_state().voters, vec![1, 2, 3]);
    let hard_state = cluster.nodes[2].hard_state();

    let follower = cluster.nodes.pop().unwrap();
    follower.close().unwrap();
    let (node, restored) = RaftNode::restart(&Cluster::config(&cluster.dir, 3)).unwrap();
    let snap = restored
        .snapshot
        .expect("the follower restarts from the received snapshot");
    assert_eq!(
        (snap.metadata.index, &snap.data[..]),
        (meta.index, &b"leader state"[..])
    );
    assert_eq!(node.hard_state(), hard_state);
    assert_eq!(node.storage().first_index().unwrap(), meta.index + 1);
}

/// etcd's encoding of a conf change adding `node_id` as a learner.
fn add_learner(id: u64, node_id: u64) -> Vec<u8> {
    ConfChange {
        id,
        change_type: ConfChangeType::ConfChangeAddLearnerNode as i32,
        node_id,
        context: Some(br#"{"id":2}"#.to_vec()),
    }
    .encode_to_vec()
}

#[test]
fn conf_changes_are_proposed_in_etcds_encoding_and_refused_ones_change_nothing() {
    // Proves a proposed conf change reaches the log as etcd's bytes and changes raft's
    // configuration once applied, and that one the apply layer refuses is a no-op for raft.
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let mut node = RaftNode::start_new(&cfg, b"meta", &[peer()]).unwrap();
    let mut handler = Recorder {
        reject_conf_changes: true,
        ..Recorder::default()
    };
    tick_until_leader(&mut node, &mut handler);
    node.propose_conf_change(add_learner(7, 2)).unwrap();
    node.step_ready(0, &mut handler).unwrap();
    let entry = handler.applied.last().unwrap();
    assert_eq!(entry.entry_type, pb::EntryType::EntryConfChange as i32);
    assert_eq!(entry.data, add_learner(7, 2));
    assert!(node.conf_state().learners.is_empty(), "refused: no change");
    assert!(!node.conf_state().learners.contains(&2));

    handler.reject_conf_changes = false;
    node.propose_conf_change(add_learner(8, 2)).unwrap();
    node.step_ready(0, &mut handler).unwrap();
    assert_eq!(handler.applied.last().unwrap().data, add_learner(8, 2));
    assert_eq!(node.conf_state().learners, vec![2]);
    assert!(node.conf_state().learners.contains(&2));
    assert!(!node.conf_state().learners.contains(&node.id()));
}
