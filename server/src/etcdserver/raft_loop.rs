//! The raft loop: one thread that owns the [`RaftNode`] and the [`Applier`] and does, over and
//! over (etcd's `raftNode.start` and `EtcdServer.run`, folded into one thread):
//!
//! 1. wait for a request or the next tick, then drain every request queued meanwhile, so all
//!    proposals that arrived while the last WAL sync ran are proposed together and share the
//!    next sync (group commit);
//! 2. issue one read index request for all linearizable reads queued (etcd batches them the
//!    same way in `linearizableReadLoop`);
//! 3. `step_ready`: persist entries and hard state to the WAL with one sync, then apply what
//!    is committed (a one-member cluster commits what it persisted at once), answering waiters;
//! 4. release reads whose read index is applied;
//! 5. every `--snapshot-count` applied entries: commit the backend, write a snap file, compact
//!    the in-memory log, then purge old snap and WAL files.
//!
//! A failure of the WAL or the backend ends the loop with an error: nothing after it may be
//! acknowledged, so the process exits (etcd panics in the same places).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::apply::{Applier, InFlightRead, ReadWaiter};
use super::error::ServerError;
use super::server::{LoopRequest, Shared};
use crate::raft::transport::PeerEvent;
use crate::raft::RaftNode;

/// etcd's `SnapshotCatchUpEntries`: entries kept in memory behind a snapshot for slow followers.
const SNAPSHOT_CATCH_UP_ENTRIES: u64 = 5_000;
/// Most requests taken from the channel before stepping raft.
const MAX_REQUESTS_PER_STEP: usize = 16_384;
/// etcd's `readIndexRetryTime`: a read index request unanswered this long is sent again (raft
/// drops one that reaches a leader before it has committed an entry of its term, or that
/// meets no leader).
const READ_INDEX_RETRY: Duration = Duration::from_millis(500);

/// How long a member that learned of its removal keeps running (etcd stops after a second).
const REMOVED_STOP_DELAY: Duration = Duration::from_secs(1);

/// The loop's configuration.
pub(super) struct LoopConfig {
    /// One raft tick (`--heartbeat-interval`).
    pub(super) tick: Duration,
    /// `--snapshot-count`.
    pub(super) snapshot_count: u64,
    /// Snap files kept (`--max-snapshots`; its 0, "keep all", arrives as `usize::MAX`).
    pub(super) max_snapshots: usize,
    /// Campaign at once when this member is the only voter (no peer can be ahead of it).
    pub(super) campaign_if_alone: bool,
    /// `--initial-election-tick-advance`: ticks to fast-forward once two peers are connected
    /// (etcd: election ticks − 2), so a member's first election comes after a couple of ticks
    /// rather than a whole election timeout; 0 for none.
    pub(super) initial_tick_advance: usize,
}

/// How long a starting member waits for connected peers before giving up on the tick advance
/// (etcd: its peer connection read timeout).
const TICK_ADVANCE_WAIT: Duration = Duration::from_secs(5);

/// The raft loop thread's state. See the module doc.
pub(super) struct RaftLoop {
    pub(super) node: RaftNode,
    pub(super) applier: Applier,
    pub(super) requests: Receiver<LoopRequest>,
    pub(super) cfg: LoopConfig,
    pub(super) last_snapshot_index: u64,
    pending_reads: Vec<ReadWaiter>,
    read_seq: u64,
    /// The peers the transport knows, by ID, with their URLs.
    peers: BTreeMap<u64, Vec<String>>,
    /// The membership generation `peers` reflects.
    members_seen: Option<u64>,
    /// MoveLeader requests waiting for their transferee to lead.
    moving_leader: Vec<(u64, oneshot::Sender<Result<(), ServerError>>)>,
    /// Removed IDs the transport has been told of.
    removed_seen: BTreeSet<u64>,
    /// When this member learned it was removed from the cluster (it stops a second later, as
    /// etcd does, so its last messages go out).
    removed_at: Option<Instant>,
    /// When a stopping leader started handing leadership over, and to whom (see
    /// `start_handoff`; it stops early if the target's connection drops, as when the whole
    /// cluster stops at once).
    handoff_since: Option<(Instant, u64)>,
    /// Until when the start-up tick advance waits for connected peers (`None`: done).
    tick_advance_until: Option<Instant>,
}

impl RaftLoop {
    /// A loop over `node` and `applier`; `remotes` are a joining member's peers, known to the
    /// transport before its log names them.
    pub(super) fn new(
        node: RaftNode,
        applier: Applier,
        requests: Receiver<LoopRequest>,
        remotes: &[crate::membership::Member],
        cfg: LoopConfig,
    ) -> RaftLoop {
        let last_snapshot_index = node.applied_index();
        let mut peers = BTreeMap::new();
        for remote in remotes {
            applier
                .shared
                .transport
                .add_peer(remote.id, &remote.peer_urls);
            peers.insert(remote.id, remote.peer_urls.clone());
        }
        RaftLoop {
            node,
            applier,
            requests,
            cfg,
            last_snapshot_index,
            pending_reads: Vec::new(),
            read_seq: 0,
            peers,
            members_seen: None,
            moving_leader: Vec::new(),
            removed_seen: BTreeSet::new(),
            removed_at: None,
            handoff_since: None,
            tick_advance_until: None,
        }
    }

    fn shared(&self) -> &Arc<Shared> {
        &self.applier.shared
    }

    /// Runs until every [`super::EtcdServer`] handle has stopped (the channel closed) or a
    /// fatal error. Closes the node (syncing the hard state) on a clean stop.
    pub(super) fn run(mut self) -> Result<(), ServerError> {
        let result = match self.run_inner() {
            // A removed member stops cleanly; the caller exits with etcd's texts.
            Err(ServerError::MemberRemoved) => Ok(Err(ServerError::MemberRemoved)),
            Err(e) => Err(e),
            Ok(()) => Ok(Ok(())),
        };
        self.shared().waiters.fail_all();
        for waiter in self.pending_reads.drain(..) {
            let _ = waiter.send(Err(ServerError::Stopped));
        }
        self.shared().transport.stop();
        let outcome = result?;
        self.applier.shared.store.force_commit()?;
        self.node.close()?;
        outcome
    }

    fn run_inner(&mut self) -> Result<(), ServerError> {
        // The first step applies what the WAL holds beyond the backend (and a new cluster's
        // bootstrap entries).
        self.step(0)?;
        if self.cfg.campaign_if_alone && self.alone() {
            self.node.campaign()?;
            self.step(0)?;
        } else if self.cfg.initial_tick_advance > 0 {
            self.tick_advance_until = Some(Instant::now() + TICK_ADVANCE_WAIT);
        }
        let mut next_tick = Instant::now() + self.cfg.tick;
        loop {
            let wait = next_tick.saturating_duration_since(Instant::now());
            let mut stop = match self.requests.recv_timeout(wait) {
                Ok(request) => self.handle(request)?,
                Err(RecvTimeoutError::Timeout) => false,
                Err(RecvTimeoutError::Disconnected) => true,
            };
            for _ in 0..MAX_REQUESTS_PER_STEP {
                if stop {
                    break;
                }
                match self.requests.try_recv() {
                    Ok(request) => stop = self.handle(request)?,
                    Err(_) => break,
                }
            }
            if stop && self.handoff_since.is_none() && self.start_handoff() {
                stop = false;
            }
            if let Some((since, target)) = self.handoff_since {
                let handed_off = !self.node.is_leader();
                let target_gone = self.shared().transport.active_since(target).is_none();
                if handed_off || target_gone || since.elapsed() >= self.shared().election_timeout {
                    tracing::info!(handed_off, "stopping after the leadership handoff");
                    stop = true;
                }
            }
            if stop {
                // Persist and apply what was proposed before the stop.
                return self.step(0);
            }
            if self
                .removed_at
                .is_some_and(|at| at.elapsed() >= REMOVED_STOP_DELAY)
            {
                return Err(ServerError::MemberRemoved);
            }
            let mut ticks = self.due_tick_advance();
            let now = Instant::now();
            while now >= next_tick {
                ticks += 1;
                next_tick += self.cfg.tick;
            }
            if ticks > 10 {
                // A long stall (a slow disk, a stopped process): do not fire a burst of ticks.
                next_tick = now + self.cfg.tick;
                ticks = 1;
            }
            self.step(ticks)?;
        }
    }

    /// On a stop, a leader first hands leadership to the voter its transport has been
    /// connected to the longest (etcd's `TransferLeadership` in `Stop`), so the cluster does
    /// not wait an election timeout for a new leader. True if a transfer started; the loop then
    /// runs until another member leads, or for at most an election timeout (raft-rs gives up
    /// a transfer after one).
    fn start_handoff(&mut self) -> bool {
        if !self.node.is_leader() {
            return false;
        }
        let transport = &self.applier.shared.transport;
        let me = self.node.id();
        let target = self
            .node
            .conf_state()
            .voters
            .into_iter()
            .filter(|id| *id != me)
            .filter_map(|id| transport.active_since(id).map(|since| (since, id)))
            .min()
            .map(|(_, id)| id);
        let Some(target) = target else {
            return false;
        };
        tracing::info!(
            from = format!("{me:x}"),
            to = format!("{target:x}"),
            "leadership transfer starting before the stop"
        );
        self.node.transfer_leader(target);
        self.handoff_since = Some((Instant::now(), target));
        true
    }

    /// The start-up tick advance (etcd's `adjustTicks`), once more than one peer is connected,
    /// or nothing after [`TICK_ADVANCE_WAIT`].
    fn due_tick_advance(&mut self) -> usize {
        let Some(until) = self.tick_advance_until else {
            return 0;
        };
        let transport = &self.applier.shared.transport;
        let active = self
            .peers
            .keys()
            .filter(|id| transport.active_since(**id).is_some())
            .count();
        if active > 1 {
            self.tick_advance_until = None;
            return self.cfg.initial_tick_advance;
        }
        if Instant::now() >= until {
            self.tick_advance_until = None;
        }
        0
    }

    /// True when this member is the only voter.
    fn alone(&self) -> bool {
        let voters = self.node.conf_state().voters;
        voters == [self.node.id()]
    }

    /// Handles one request; true for [`LoopRequest::Stop`].
    fn handle(&mut self, request: LoopRequest) -> Result<bool, ServerError> {
        match request {
            LoopRequest::Propose { id, data } => {
                if self.node.propose(data).is_err() {
                    self.shared()
                        .waiters
                        .trigger(id, Err(ServerError::NoLeader));
                }
            }
            LoopRequest::ProposeConfChange { id, data } => {
                if self.node.propose_conf_change(data).is_err() {
                    self.shared()
                        .waiters
                        .trigger(id, Err(ServerError::NoLeader));
                }
            }
            LoopRequest::LearnerProgress { id, reply } => {
                let progress = self
                    .node
                    .matched(self.node.id())
                    .map(|leader| (self.node.matched(id), leader));
                let _ = reply.send(progress);
            }
            LoopRequest::ReadIndex(waiter) => self.pending_reads.push(waiter),
            LoopRequest::MoveLeader { target, reply } => self.move_leader(target, reply),
            LoopRequest::Peer(event) => self.peer_event(event),
            LoopRequest::Stop => return Ok(true),
        }
        Ok(false)
    }

    fn peer_event(&mut self, event: PeerEvent) {
        match event {
            PeerEvent::Messages(messages) => {
                for message in messages {
                    if let Err(e) = self.node.step(message) {
                        tracing::debug!(%e, "ignored a peer message");
                    }
                }
            }
            PeerEvent::Unreachable(id) => self.node.report_unreachable(id),
            PeerEvent::SnapshotStatus { to, ok } => self.node.report_snapshot(to, ok),
            PeerEvent::Removed => self.note_removed(),
            PeerEvent::InboundUp { from, urls } => self.learn_sender(from, urls),
        }
    }

    /// A member whose membership does not list itself yet (joining, or restarted before its
    /// log reached its own addition) knows no peers but the remotes it fetched at the join,
    /// and none at all after a restart: it answers whoever connects to it (the leader), at
    /// the URLs the sender advertised. Once its log lists it, the log alone decides its peers
    /// (`sync_peers`). See [`should_learn`] for what is refused.
    fn learn_sender(&mut self, from: u64, urls: Vec<String>) {
        let me = self.node.id();
        let known = self.peers.get(&from).map(Vec::as_slice);
        let peers = self.peers.len();
        let members = &self.applier.shared.members;
        if !members.with(|cluster| should_learn(me, from, &urls, known, peers, cluster)) {
            return;
        }
        tracing::info!(
            peer = %format!("{from:x}"),
            urls = %urls.join(","),
            "answering a peer this member's log does not list yet"
        );
        self.shared().transport.add_peer(from, &urls);
        self.peers.insert(from, urls);
    }

    /// This member was removed from the cluster: it stops shortly (see `removed_at`).
    fn note_removed(&mut self) {
        if self.removed_at.is_none() {
            tracing::error!("the member has been permanently removed from the cluster");
            self.removed_at = Some(Instant::now());
        }
    }

    /// Starts a leader transfer (etcd's `MoveLeader`); the reply goes out once `target` leads.
    fn move_leader(&mut self, target: u64, reply: oneshot::Sender<Result<(), ServerError>>) {
        if !self.node.is_leader() {
            let _ = reply.send(Err(ServerError::NotLeader));
        } else if target == self.node.id() {
            let _ = reply.send(Ok(()));
        } else if !self.node.conf_state().voters.contains(&target) {
            let _ = reply.send(Err(ServerError::BadLeaderTransferee));
        } else {
            tracing::info!(
                from = format!("{:x}", self.node.id()),
                to = format!("{target:x}"),
                "leadership transfer starting"
            );
            self.node.transfer_leader(target);
            self.moving_leader.push((target, reply));
        }
    }

    /// Answers MoveLeader requests whose transferee now leads; drops those whose caller gave up.
    fn check_moved_leader(&mut self) {
        let leader = self.node.leader_id();
        self.moving_leader.retain_mut(|(target, reply)| {
            if *target == leader {
                let (done, _) = oneshot::channel();
                let reply = std::mem::replace(reply, done);
                let _ = reply.send(Ok(()));
                return false;
            }
            !reply.is_closed()
        });
    }

    /// Tells the transport about members added, removed or moved since the last look.
    fn sync_peers(&mut self) {
        let generation = self.shared().members.generation();
        if self.members_seen == Some(generation) {
            return;
        }
        self.members_seen = Some(generation);
        let transport = self.shared().transport.clone();
        let me = self.node.id();
        let cluster = self.shared().members.cluster();
        let cluster_has_me = cluster.members.contains_key(&me);
        for id in cluster.removed.difference(&self.removed_seen) {
            transport.mark_removed(*id);
        }
        self.removed_seen = cluster.removed.clone();
        let members: BTreeMap<u64, Vec<String>> = cluster
            .members
            .into_values()
            .filter(|m| m.id != me)
            .map(|m| (m.id, m.peer_urls))
            .collect();
        for (id, urls) in &members {
            if self.peers.get(id) != Some(urls) {
                // Adds the peer, or gives a known one its new URLs.
                transport.add_peer(*id, urls);
            }
        }
        // A joining member keeps its remotes until its log has caught up to its own addition.
        let mut members = members;
        for (id, urls) in &self.peers {
            if members.contains_key(id) {
                continue;
            }
            if cluster_has_me {
                transport.remove_peer(*id);
            } else {
                members.insert(*id, urls.clone());
            }
        }
        self.peers = members;
    }

    fn step(&mut self, ticks: usize) -> Result<(), ServerError> {
        self.send_read_index();
        self.node.step_ready(ticks, &mut self.applier)?;
        if self.applier.raft_membership.removed_self {
            self.note_removed();
        }
        self.sync_peers();
        let hard_state = self.node.hard_state();
        self.shared().status.set(
            hard_state.term,
            self.node.leader_id(),
            hard_state.commit,
            self.node.applied_index(),
        );
        self.release_reads();
        if !self.moving_leader.is_empty() {
            self.check_moved_leader();
        }
        self.maybe_snapshot()
    }

    fn send_read_index(&mut self) {
        let timeout = self.shared().limits.request_timeout;
        if let Some(read) = &mut self.applier.reads.in_flight {
            if read.first_sent.elapsed() <= timeout {
                if read.last_sent.elapsed() >= READ_INDEX_RETRY {
                    self.node.read_index(read.ctx.clone());
                    read.last_sent = Instant::now();
                }
                return;
            }
            // No answer within the request timeout: its waiters have given up; free the slot
            // for the reads queued since.
            self.applier.reads.in_flight = None;
        }
        if self.pending_reads.is_empty() {
            return;
        }
        if !self.node.is_leader() && self.node.leader_id() == 0 {
            for waiter in self.pending_reads.drain(..) {
                let _ = waiter.send(Err(ServerError::NoLeader));
            }
            return;
        }
        self.read_seq += 1;
        let ctx = self.read_seq.to_be_bytes().to_vec();
        self.node.read_index(ctx.clone());
        let now = Instant::now();
        self.applier.reads.in_flight = Some(InFlightRead {
            ctx,
            waiters: std::mem::take(&mut self.pending_reads),
            first_sent: now,
            last_sent: now,
        });
    }

    fn release_reads(&mut self) {
        let applied = self.node.applied_index();
        let confirmed = &mut self.applier.reads.confirmed;
        if confirmed.is_empty() {
            return;
        }
        let mut waiting = Vec::new();
        for (index, waiters) in confirmed.drain(..) {
            if index <= applied {
                for waiter in waiters {
                    let _ = waiter.send(Ok(index));
                }
            } else {
                waiting.push((index, waiters));
            }
        }
        *confirmed = waiting;
    }

    fn maybe_snapshot(&mut self) -> Result<(), ServerError> {
        let applied = self.node.applied_index();
        // A snapshot received from the leader counts as the last one taken.
        let received = self.node.storage().log().snapshot_metadata().index;
        self.last_snapshot_index = self.last_snapshot_index.max(received);
        if applied.saturating_sub(self.last_snapshot_index) <= self.cfg.snapshot_count {
            return Ok(());
        }
        // The snap file may only name an index whose effects are durable in the backend.
        self.shared().store.force_commit()?;
        let data = super::snapshot_data(&self.shared().members.cluster());
        let metadata = self.node.snapshot(data, SNAPSHOT_CATCH_UP_ENTRIES)?;
        self.last_snapshot_index = applied;
        tracing::info!(
            index = metadata.index,
            term = metadata.term,
            "saved snapshot"
        );
        let purged = self.node.purge(self.cfg.max_snapshots)?;
        for path in purged {
            tracing::info!(path = %path.display(), "purged file");
        }
        Ok(())
    }
}

/// The most peers a member whose log does not list it yet will answer (its join remotes
/// included): more than any cluster etcd recommends, few enough that hellos with made-up IDs
/// cannot make it start writer threads without end.
const MAX_PEERS_BEFORE_LISTED: usize = 32;

/// Whether member `me`, whose membership is `cluster`, should answer `from` at `urls` (from its
/// hello; `known`: the URLs it answers `from` at already, `peers`: how many peers it answers).
/// Only while `cluster` does not list `me` (nor has removed it), never a removed sender or ID
/// 0, and a new sender only below [`MAX_PEERS_BEFORE_LISTED`]; a known one that advertises
/// other URLs is followed (the first hello need not be the last word).
fn should_learn(
    me: u64,
    from: u64,
    urls: &[String],
    known: Option<&[String]>,
    peers: usize,
    cluster: &crate::membership::Cluster,
) -> bool {
    if from == 0 || from == me || urls.is_empty() || known == Some(urls) {
        return false;
    }
    if cluster.members.contains_key(&me)
        || cluster.removed.contains(&me)
        || cluster.removed.contains(&from)
    {
        return false;
    }
    known.is_some() || peers < MAX_PEERS_BEFORE_LISTED
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::membership::{Cluster, Member};

    #[test]
    fn only_an_unlisted_member_learns_senders_and_within_bounds() {
        // Proves a member learns a sender only while its log does not list it, never ID 0,
        // itself or a removed ID, follows a known sender's new URLs, and stops adding new
        // senders at the cap.
        let urls = vec!["http://127.0.0.1:2380".to_string()];
        let moved = vec!["http://127.0.0.1:2381".to_string()];
        let empty = Cluster::new(9, []);
        assert!(should_learn(1, 2, &urls, None, 0, &empty));
        assert!(!should_learn(1, 0, &urls, None, 0, &empty));
        assert!(!should_learn(1, 1, &urls, None, 0, &empty));
        assert!(!should_learn(1, 2, &[], None, 0, &empty));
        assert!(!should_learn(1, 2, &urls, Some(&urls), 1, &empty));
        assert!(should_learn(1, 2, &moved, Some(&urls), 1, &empty));
        let cap = MAX_PEERS_BEFORE_LISTED;
        assert!(!should_learn(1, 2, &urls, None, cap, &empty));
        assert!(should_learn(1, 2, &moved, Some(&urls), cap, &empty));

        let mut removed = Cluster::new(9, []);
        removed.removed.insert(2);
        assert!(!should_learn(1, 2, &urls, None, 0, &removed));
        removed.removed.insert(1);
        assert!(!should_learn(1, 3, &urls, None, 0, &removed));

        let mut me = Member::new("me", &urls, "t");
        me.id = 1;
        let listed = Cluster::new(9, [me]);
        assert!(!should_learn(1, 2, &moved, None, 0, &listed));
    }
}
