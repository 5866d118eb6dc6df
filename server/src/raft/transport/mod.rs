//! The raft peer transport: raft messages, snapshots and member-to-member requests over plain
//! TCP on `--listen-peer-urls`. Wire format: `FORMAT.md` in this directory ([`layout`] has the
//! numbers).
//!
//! * [`layout`]: offsets, sizes, frame types, limits and timeouts, with compile-time checks;
//! * [`frame`]: frame, batch and snapshot payload codecs; [`hello`]: the handshake codec;
//! * `conn`: URL parsing, dialing, and the registry of live connections;
//! * `peer`: one writer thread per peer; `listener`: accept and reader threads;
//! * `snapshot`: sending and receiving one snapshot per connection;
//! * [`EarlyCloser`]: closes peers' connections at once while the member starts, before a
//!   [`Transport`] serves the listeners;
//! * `rpc`: one request and one answer per connection (etcd's peer `/members` and
//!   `/members/promote/<id>`): [`fetch_members`] and [`promote_member`] work before any
//!   [`Transport`] exists; the answers come from the [`RpcHandler`] set with
//!   [`Transport::set_rpc_handler`].
//!
//! Threads (all std threads with blocking I/O; the raft loop is a std thread too):
//! one accept thread per listener, one reader thread per inbound connection, one writer thread
//! per peer, one thread per outgoing snapshot. An inbound Rpc connection's reader thread also
//! runs the [`RpcHandler`], so a handler may block without holding up anything else; the Rpc
//! client functions block their caller. The raft thread only calls [`Transport`]
//! methods, none of which blocks on the network: [`Transport::send`] hands messages to the
//! peer's bounded queue and drops them (reporting [`PeerEvent::Unreachable`]) when it is full.
//!
//! Each direction of raft traffic uses a connection dialed by the sender, so the receiver never
//! writes on a Messages connection after its reply. Everything received reaches the raft loop as
//! [`PeerEvent`]s through the [`EventSink`]; the sink is never called while a transport lock
//! is held, so it may call back into the transport.
//!
//! Invariants: after [`Transport::stop`] no thread of this transport writes to a socket or
//! calls the sink again except for events already in flight; neither side of a refused
//! handshake exits (the dialer retries with backoff until told otherwise by the raft loop).

mod conn;
mod early;
mod error;
pub mod frame;
pub mod hello;
pub mod layout;
mod listener;
mod peer;
mod rpc;
mod snapshot;

#[cfg(test)]
mod rpc_tests;
#[cfg(test)]
mod tests;

pub use early::EarlyCloser;
pub use error::{Result, TransportError};
pub use rpc::{
    fetch_members, promote_member, RpcAnswer, RpcCode, RpcFailure, RpcHandler, RpcRequest,
};
pub use snapshot::snap_db_name;

use std::collections::{HashMap, HashSet};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::thread::JoinHandle;
use std::time::Instant;

use ::raft::eraftpb::{Message, MessageType};

use hello::{Hello, Kind};
use layout::HELLO_MAX_URLS_LEN;

/// What the transport tells the raft loop.
#[derive(Clone, Debug, PartialEq)]
pub enum PeerEvent {
    /// Messages received from a peer, in the order sent; the raft loop steps them.
    Messages(Vec<Message>),
    /// Messages to this peer were dropped: raft `report_unreachable`.
    Unreachable(u64),
    /// The end of a snapshot send: raft `report_snapshot` (Finish when ok, else Failure).
    SnapshotStatus { to: u64, ok: bool },
    /// A peer answered SenderRemoved: this member was removed from the cluster. Sent once.
    Removed,
    /// A peer opened a Messages connection to this member, advertising `urls` (its hello).
    /// Lets a member whose log does not list the sender yet answer it (a joining member
    /// restarted before it received any entry).
    InboundUp { from: u64, urls: Vec<String> },
}

/// Where the transport delivers [`PeerEvent`]s; called from transport threads and from
/// [`Transport::send`], never under a transport lock. It must not block (an unbounded channel
/// send is right): [`Transport::stop`] joins threads that may be inside it.
pub type EventSink = Arc<dyn Fn(PeerEvent) + Send + Sync>;

/// Who this member is, for the handshake, and where received snapshots go.
#[derive(Clone, Debug)]
pub struct TransportConfig {
    pub member_id: u64,
    pub cluster_id: u64,
    /// This member's advertised peer URLs, sent in every hello.
    pub advertised_urls: Vec<String>,
    /// Where received snapshot dbs are written (`<index:016x>.snap.db`).
    pub snap_dir: std::path::PathBuf,
}

/// The body of a snapshot: the db bytes to stream after the MsgSnapshot.
pub struct SnapshotBody {
    /// The number of bytes `reader` yields; the receiver refuses a body of another length.
    pub size: u64,
    pub reader: Box<dyn std::io::Read + Send>,
}

/// The peer transport of one member. Cheap to clone; the transport stops when
/// [`Transport::stop`] is called or the last clone is dropped.
#[derive(Clone)]
pub struct Transport {
    handle: Arc<Handle>,
}

/// The user-facing owner: its drop (the last [`Transport`] clone) stops the transport, while
/// the threads hold [`Inner`] directly.
struct Handle {
    inner: Arc<Inner>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.inner.stop();
    }
}

/// State shared by the API and every transport thread.
struct Inner {
    cfg: TransportConfig,
    /// `cfg.advertised_urls` comma-joined, as the hello carries them.
    hello_urls: String,
    sink: EventSink,
    peers: RwLock<HashMap<u64, peer::PeerHandle>>,
    removed: RwLock<HashSet<u64>>,
    /// Answers inbound Rpc requests; `None` until set (answered Other "not ready").
    rpc_handler: RwLock<Option<RpcHandler>>,
    /// Set once [`PeerEvent::Removed`] has been sent.
    removed_reported: AtomicBool,
    stopped: AtomicBool,
    conns: conn::Registry,
    /// Accept threads with their listener's address (to wake them on stop).
    acceptors: Mutex<Vec<(SocketAddr, JoinHandle<()>)>>,
    /// Writer threads of removed peers, joined on stop.
    retired: Mutex<Vec<JoinHandle<()>>>,
}

/// Shows a member or cluster ID as etcd does, in lowercase hex.
struct Hex(u64);

impl std::fmt::Display for Hex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:x}", self.0)
    }
}

/// Locks a mutex, ignoring poisoning: no transport code panics while holding a lock, and every
/// guarded value is valid after each single update.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Inner {
    fn emit(&self, event: PeerEvent) {
        (self.sink)(event);
    }

    fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }

    fn is_removed(&self, id: u64) -> bool {
        read(&self.removed).contains(&id)
    }

    /// The hello this member sends to `to_id` for a connection of `kind`.
    fn hello(&self, kind: Kind, to_id: u64) -> Hello {
        Hello {
            kind,
            cluster_id: self.cfg.cluster_id,
            from_id: self.cfg.member_id,
            to_id,
            from_urls: self.hello_urls.clone(),
        }
    }

    /// Reports [`PeerEvent::Removed`] the first time a peer says this member was removed.
    fn report_removed(&self) {
        if !self.removed_reported.swap(true, Ordering::AcqRel) {
            tracing::warn!("a peer reports this member has been removed from the cluster");
            self.emit(PeerEvent::Removed);
        }
    }

    fn peer_urls(&self, id: u64) -> Option<Vec<String>> {
        read(&self.peers).get(&id).map(|p| p.state.urls())
    }

    /// Stops everything; idempotent. Joins the accept and writer threads (not the calling
    /// thread, when a transport thread's sink stops the transport); readers and snapshot
    /// threads see their sockets shut down and end by themselves.
    fn stop(&self) {
        if self.stopped.swap(true, Ordering::AcqRel) {
            return;
        }
        let peers: Vec<peer::PeerHandle> = write(&self.peers).drain().map(|(_, p)| p).collect();
        let mut joins = Vec::new();
        for mut p in peers {
            p.state.shutdown();
            joins.extend(p.thread.take());
            // Dropping the handle drops the queue's sender: the writer sees Disconnected.
        }
        for (addr, thread) in std::mem::take(&mut *lock(&self.acceptors)) {
            if conn::wake_listener(addr) {
                joins.push(thread);
            } else {
                tracing::warn!(%addr, "cannot wake the peer listener; its thread is detached");
            }
        }
        self.conns.shutdown_where(|_, _| true);
        joins.append(&mut lock(&self.retired));
        let me = std::thread::current().id();
        for thread in joins {
            if thread.thread().id() != me {
                let _ = thread.join();
            }
        }
        tracing::info!(member = %Hex(self.cfg.member_id), "stopped peer transport");
    }
}

impl Transport {
    /// Starts serving `listeners` (one accept thread each). Fails if the advertised URLs do not
    /// fit a hello or a thread cannot be started.
    pub fn start(
        cfg: TransportConfig,
        listeners: Vec<TcpListener>,
        sink: EventSink,
    ) -> std::io::Result<Transport> {
        let hello_urls = cfg.advertised_urls.join(",");
        if hello_urls.len() > HELLO_MAX_URLS_LEN {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("advertised peer URLs exceed {HELLO_MAX_URLS_LEN} bytes"),
            ));
        }
        let inner = Arc::new(Inner {
            cfg,
            hello_urls,
            sink,
            peers: RwLock::default(),
            removed: RwLock::default(),
            rpc_handler: RwLock::default(),
            removed_reported: AtomicBool::new(false),
            stopped: AtomicBool::new(false),
            conns: conn::Registry::default(),
            acceptors: Mutex::default(),
            retired: Mutex::default(),
        });
        let transport = Transport {
            handle: Arc::new(Handle {
                inner: inner.clone(),
            }),
        };
        // On error the half-started transport is stopped by dropping `transport`.
        let mut addrs = Vec::with_capacity(listeners.len());
        for listener in listeners {
            listener.set_nonblocking(false)?;
            let addr = listener.local_addr()?;
            let thread = listener::spawn_acceptor(inner.clone(), listener)?;
            lock(&inner.acceptors).push((addr, thread));
            addrs.push(addr);
        }
        tracing::info!(
            member = %Hex(inner.cfg.member_id),
            cluster = %Hex(inner.cfg.cluster_id),
            listen = ?addrs,
            "started peer transport"
        );
        Ok(transport)
    }

    fn inner(&self) -> &Arc<Inner> {
        &self.handle.inner
    }

    /// Starts a writer for peer `id` at `urls` (like `http://127.0.0.1:2380`). Adding a known
    /// peer only updates its URLs; this member's own ID is ignored.
    pub fn add_peer(&self, id: u64, urls: &[String]) {
        let inner = self.inner();
        if id == inner.cfg.member_id || inner.is_stopped() {
            return;
        }
        let mut peers = write(&inner.peers);
        if let Some(existing) = peers.get(&id) {
            existing.state.set_urls(urls);
            return;
        }
        match peer::spawn(inner.clone(), id, urls) {
            Ok(handle) => {
                tracing::info!(peer = %Hex(id), ?urls, "added peer");
                peers.insert(id, handle);
            }
            Err(e) => {
                tracing::error!(peer = %Hex(id), %e, "cannot start a peer writer")
            }
        }
    }

    /// Stops the writer for `id` and closes its connection; its queued messages are dropped.
    pub fn remove_peer(&self, id: u64) {
        let inner = self.inner();
        let Some(mut handle) = write(&inner.peers).remove(&id) else {
            return;
        };
        handle.state.shutdown();
        let mut retired = lock(&inner.retired);
        retired.retain(|t| !t.is_finished());
        retired.extend(handle.thread.take());
        tracing::info!(peer = %Hex(id), "removed peer");
    }

    /// From now on, answer SenderRemoved to `id` and drop its messages; its open connections
    /// are closed so that it reconnects and hears so.
    pub fn mark_removed(&self, id: u64) {
        let inner = self.inner();
        write(&inner.removed).insert(id);
        inner.conns.shutdown_where(|_, c| c.inbound && c.peer == id);
    }

    /// Queues `messages` for their peers (`msg.to`); never blocks. A full queue drops the
    /// message and reports [`PeerEvent::Unreachable`] (at most once per 100 ms per peer). A
    /// MsgSnapshot cannot travel this way: it is answered with a failed
    /// [`PeerEvent::SnapshotStatus`] (use [`Transport::send_snapshot`]). Messages to unknown
    /// peers are dropped silently.
    pub fn send(&self, messages: Vec<Message>) {
        let inner = self.inner();
        let mut events = Vec::new();
        {
            let peers = read(&inner.peers);
            for message in messages {
                let to = message.to;
                if message.get_msg_type() == MessageType::MsgSnapshot {
                    tracing::debug!(to = %Hex(to), "MsgSnapshot without a body");
                    events.push(PeerEvent::SnapshotStatus { to, ok: false });
                    continue;
                }
                let Some(peer) = peers.get(&to) else {
                    tracing::debug!(to = %Hex(to), "dropping a message to an unknown peer");
                    continue;
                };
                if peer.queue.try_send(message).is_err() && peer.state.should_report_unreachable() {
                    events.push(PeerEvent::Unreachable(to));
                }
            }
        }
        for event in events {
            inner.emit(event);
        }
    }

    /// Sends a snapshot on its own thread and connection; the outcome arrives as
    /// [`PeerEvent::SnapshotStatus`] (plus [`PeerEvent::Unreachable`] on failure).
    pub fn send_snapshot(&self, message: Message, body: SnapshotBody) {
        snapshot::spawn_send(self.inner().clone(), message, body);
    }

    /// When the current outbound connection to `id` completed its handshake; `None` while
    /// there is none (or `id` is unknown).
    pub fn active_since(&self, id: u64) -> Option<Instant> {
        read(&self.inner().peers)
            .get(&id)
            .and_then(|p| p.state.active_since())
    }

    /// Sets (or replaces) what answers inbound Rpc requests; until then they are answered
    /// Other "not ready". The handler runs on the connection's own reader thread, a plain std
    /// thread (never a tokio runtime thread, so `Handle::current()` is unavailable there), and
    /// may block: only that connection waits. A request already in its handler when
    /// [`Transport::stop`] runs is not answered, and stop does not wait for it.
    pub fn set_rpc_handler(&self, handler: RpcHandler) {
        *write(&self.inner().rpc_handler) = Some(handler);
    }

    /// Closes the listeners and every connection and stops the threads; idempotent.
    pub fn stop(&self) {
        self.inner().stop();
    }
}
