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

use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::apply::{Applier, ReadWaiter};
use super::error::ServerError;
use super::server::{LoopRequest, Shared};
use crate::raft::RaftNode;

/// etcd's `SnapshotCatchUpEntries`: entries kept in memory behind a snapshot for slow followers.
const SNAPSHOT_CATCH_UP_ENTRIES: u64 = 5_000;
/// Most requests taken from the channel before stepping raft.
const MAX_REQUESTS_PER_STEP: usize = 16_384;

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
}

/// The raft loop thread's state. See the module doc.
pub(super) struct RaftLoop {
    pub(super) node: RaftNode,
    pub(super) applier: Applier,
    pub(super) requests: Receiver<LoopRequest>,
    pub(super) cfg: LoopConfig,
    pub(super) last_snapshot_index: u64,
    pending_reads: Vec<ReadWaiter>,
    read_seq: u64,
    read_sent_at: Option<Instant>,
}

impl RaftLoop {
    pub(super) fn new(
        node: RaftNode,
        applier: Applier,
        requests: Receiver<LoopRequest>,
        cfg: LoopConfig,
    ) -> RaftLoop {
        let last_snapshot_index = node.applied_index();
        RaftLoop {
            node,
            applier,
            requests,
            cfg,
            last_snapshot_index,
            pending_reads: Vec::new(),
            read_seq: 0,
            read_sent_at: None,
        }
    }

    fn shared(&self) -> &Arc<Shared> {
        &self.applier.shared
    }

    /// Runs until every [`super::EtcdServer`] handle has stopped (the channel closed) or a
    /// fatal error. Closes the node (syncing the hard state) on a clean stop.
    pub(super) fn run(mut self) -> Result<(), ServerError> {
        let result = self.run_inner();
        self.shared().waiters.fail_all();
        for waiter in self.pending_reads.drain(..) {
            let _ = waiter.send(Err(ServerError::Stopped));
        }
        result?;
        self.applier.shared.store.force_commit()?;
        self.node.close()?;
        Ok(())
    }

    fn run_inner(&mut self) -> Result<(), ServerError> {
        // The first step applies what the WAL holds beyond the backend (and a new cluster's
        // bootstrap entries).
        self.step(0)?;
        if self.cfg.campaign_if_alone && self.alone() {
            self.node.campaign()?;
            self.step(0)?;
        }
        let mut next_tick = Instant::now() + self.cfg.tick;
        loop {
            let wait = next_tick.saturating_duration_since(Instant::now());
            match self.requests.recv_timeout(wait) {
                Ok(request) => self.handle(request),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return Ok(()),
            }
            for _ in 0..MAX_REQUESTS_PER_STEP {
                match self.requests.try_recv() {
                    Ok(request) => self.handle(request),
                    Err(_) => break,
                }
            }
            let mut ticks = 0;
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

    /// True when this member is the only voter.
    fn alone(&self) -> bool {
        let voters = self.node.conf_state().voters;
        voters == [self.node.id()]
    }

    fn handle(&mut self, request: LoopRequest) {
        match request {
            LoopRequest::Propose { id, data } => {
                if self.node.propose(data).is_err() {
                    self.shared()
                        .waiters
                        .trigger(id, Err(ServerError::NoLeader));
                }
            }
            LoopRequest::ReadIndex(waiter) => self.pending_reads.push(waiter),
            LoopRequest::MoveLeader { target, reply } => {
                let result = if !self.node.is_leader() {
                    Err(ServerError::NotLeader)
                } else if target == self.node.id() {
                    Ok(())
                } else {
                    Err(ServerError::BadLeaderTransferee)
                };
                let _ = reply.send(result);
            }
        }
    }

    fn step(&mut self, ticks: usize) -> Result<(), ServerError> {
        self.send_read_index();
        self.node.step_ready(ticks, &mut self.applier)?;
        // One member has no peers; issue 5 sends these.
        self.applier.outbox.clear();
        let hard_state = self.node.hard_state();
        self.shared().status.set(
            hard_state.term,
            self.node.leader_id(),
            hard_state.commit,
            self.node.applied_index(),
        );
        self.release_reads();
        self.maybe_snapshot()
    }

    fn send_read_index(&mut self) {
        let stale = self
            .read_sent_at
            .is_some_and(|at| at.elapsed() > self.shared().limits.request_timeout);
        if stale {
            // No answer within the request timeout (lost leadership): its waiters have given
            // up; free the slot for the reads queued since.
            self.applier.reads.in_flight = None;
        }
        if self.pending_reads.is_empty() || self.applier.reads.in_flight.is_some() {
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
        self.applier.reads.in_flight = Some((ctx, std::mem::take(&mut self.pending_reads)));
        self.read_sent_at = Some(Instant::now());
    }

    fn release_reads(&mut self) {
        let applied = self.node.applied_index();
        let confirmed = &mut self.applier.reads.confirmed;
        if confirmed.is_empty() {
            return;
        }
        self.read_sent_at = None;
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
        if applied.saturating_sub(self.last_snapshot_index) <= self.cfg.snapshot_count {
            return Ok(());
        }
        // The snap file may only name an index whose effects are durable in the backend.
        self.shared().store.force_commit()?;
        let data = super::snapshot_data(&self.shared().members.list());
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
