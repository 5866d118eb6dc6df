//! One writer thread per peer: it dials the peer (its URLs in turn), performs the Messages
//! handshake, then moves messages from the peer's bounded queue onto the connection as batch
//! frames, pipelined, with a keepalive after 1.5 s idle.
//!
//! States: *dialing* (queued messages wait, up to the queue's 4096), *up* (`active_since` is
//! set; messages are written), *down* (after a failed dial, a refused handshake or a write
//! error: `active_since` is `None` and, for the backoff period, every message that arrives is
//! dropped and reported unreachable at most once per 100 ms). The backoff starts at 50 ms and
//! doubles to 1 s with ±20 % jitter; it restarts from 50 ms after a connection that stayed up
//! longer than the maximum backoff.
//!
//! The thread ends when the queue's sender is dropped (peer removed, transport stopped) or the
//! [`PeerState`] is shut down. It owns the socket; [`PeerState::shutdown`] may shut it down
//! from another thread to interrupt a blocked write or handshake.

use ::raft::eraftpb::Message;
use std::io::{BufWriter, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::conn::{connect, handshake};
use super::error::{Result, TransportError};
use super::frame::{write_frame, BatchEncoder};
use super::hello::{Kind, Status};
use super::layout::*;
use super::{lock, Inner, PeerEvent};

/// What the API keeps for a peer: its queue, shared state and writer thread.
pub struct PeerHandle {
    pub queue: SyncSender<Message>,
    pub state: Arc<PeerState>,
    pub thread: Option<JoinHandle<()>>,
}

/// State shared between the API and a peer's writer thread.
pub struct PeerState {
    id: u64,
    urls: Mutex<Vec<String>>,
    active_since: Mutex<Option<Instant>>,
    /// The writer's current socket, for [`PeerState::shutdown`].
    conn: Mutex<Option<TcpStream>>,
    stopped: AtomicBool,
    last_unreachable: Mutex<Option<Instant>>,
}

impl PeerState {
    pub fn urls(&self) -> Vec<String> {
        lock(&self.urls).clone()
    }

    pub fn set_urls(&self, urls: &[String]) {
        *lock(&self.urls) = urls.to_vec();
    }

    pub fn active_since(&self) -> Option<Instant> {
        *lock(&self.active_since)
    }

    fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }

    /// Whether an `Unreachable` event is due: true at most once per [`UNREACHABLE_INTERVAL`].
    pub fn should_report_unreachable(&self) -> bool {
        let now = Instant::now();
        let mut last = lock(&self.last_unreachable);
        match *last {
            Some(at) if now.duration_since(at) < UNREACHABLE_INTERVAL => false,
            _ => {
                *last = Some(now);
                true
            }
        }
    }

    /// Stops the writer: no new connection is made and the current one is shut down.
    pub fn shutdown(&self) {
        self.stopped.store(true, Ordering::Release);
        if let Some(stream) = lock(&self.conn).as_ref() {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    /// Makes `stream` the current socket; false (and the stream is shut down) once stopped.
    fn attach(&self, stream: &TcpStream) -> bool {
        let mut conn = lock(&self.conn);
        if self.is_stopped() {
            let _ = stream.shutdown(Shutdown::Both);
            return false;
        }
        *conn = stream.try_clone().ok();
        conn.is_some()
    }

    fn detach(&self) {
        *lock(&self.active_since) = None;
        *lock(&self.conn) = None;
    }
}

/// Starts the writer thread for peer `id`.
pub fn spawn(inner: Arc<Inner>, id: u64, urls: &[String]) -> std::io::Result<PeerHandle> {
    let (queue, receiver) = sync_channel(MAX_BATCH_MESSAGES);
    let state = Arc::new(PeerState {
        id,
        urls: Mutex::new(urls.to_vec()),
        active_since: Mutex::new(None),
        conn: Mutex::new(None),
        stopped: AtomicBool::new(false),
        last_unreachable: Mutex::new(None),
    });
    let thread_state = state.clone();
    let thread = std::thread::Builder::new()
        .name(format!("oxcd-peer-{id:x}"))
        .spawn(move || Writer::new(inner, thread_state, receiver).run())?;
    Ok(PeerHandle {
        queue,
        state,
        thread: Some(thread),
    })
}

/// `base` scaled by a factor in [0.8, 1.2] drawn from `seed`.
fn jitter(base: Duration, seed: u64) -> Duration {
    let mixed = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32;
    let permille = 800 + (mixed % 401) as u32;
    base * permille / 1000
}

/// A cheap seed for [`jitter`]: the clock's nanoseconds mixed with the peer ID.
fn jitter_seed(id: u64) -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos ^ id.rotate_left(17)
}

struct Writer {
    inner: Arc<Inner>,
    state: Arc<PeerState>,
    queue: Receiver<Message>,
    batch: BatchEncoder,
    /// The last dial failure logged, so a repeated one is logged at debug level only.
    last_failure: Option<String>,
}

/// Why a connection ended.
enum Ended {
    /// The queue's sender is gone: the peer was removed or the transport stopped.
    QueueClosed,
    Failed(TransportError),
}

impl From<TransportError> for Ended {
    fn from(e: TransportError) -> Ended {
        Ended::Failed(e)
    }
}

impl From<std::io::Error> for Ended {
    fn from(e: std::io::Error) -> Ended {
        Ended::Failed(e.into())
    }
}

impl Writer {
    fn new(inner: Arc<Inner>, state: Arc<PeerState>, queue: Receiver<Message>) -> Writer {
        Writer {
            inner,
            state,
            queue,
            batch: BatchEncoder::default(),
            last_failure: None,
        }
    }

    fn peer(&self) -> String {
        format!("{:x}", self.state.id)
    }

    fn run(mut self) {
        let mut backoff = BACKOFF_MIN;
        let mut url_index = 0;
        while !self.state.is_stopped() && !self.inner.is_stopped() {
            match self.dial(url_index) {
                Ok((stream, used)) => {
                    url_index = used;
                    let up_at = Instant::now();
                    *lock(&self.state.active_since) = Some(up_at);
                    self.last_failure = None;
                    let url = self.state.urls().get(used).cloned().unwrap_or_default();
                    tracing::info!(peer = %self.peer(), %url, "peer connection up");
                    let ended = self.write_loop(stream);
                    self.state.detach();
                    match ended {
                        Ended::QueueClosed => return,
                        Ended::Failed(e) => {
                            if !self.state.is_stopped() {
                                let peer = self.peer();
                                tracing::info!(%peer, error = %e, "peer connection down");
                                self.report_unreachable();
                            }
                        }
                    }
                    if up_at.elapsed() > BACKOFF_MAX {
                        backoff = BACKOFF_MIN;
                    }
                }
                Err(e) => {
                    self.state.detach();
                    self.dial_failed(&e);
                }
            }
            if !self.drop_while_down(jitter(backoff, jitter_seed(self.state.id))) {
                return;
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    /// Connects and performs the Messages handshake. The socket is attached to the state
    /// before the handshake so that a shutdown interrupts it.
    fn dial(&self, url_index: usize) -> Result<(TcpStream, usize)> {
        let urls = self.state.urls();
        let (stream, used) = connect(&urls, url_index)?;
        if !self.state.attach(&stream) {
            return Err(TransportError::protocol("peer removed"));
        }
        handshake(&stream, &self.inner.hello(Kind::Messages, self.state.id))?;
        Ok((stream, used))
    }

    /// Logs a failed dial (once per distinct failure at warn/info, repeats at debug) and
    /// reports this member's removal when the peer says so.
    fn dial_failed(&mut self, error: &TransportError) {
        if self.state.is_stopped() {
            return;
        }
        let local = self.inner.cfg.cluster_id;
        let (text, refused) = match error {
            TransportError::Refused {
                status,
                peer_cluster_id,
            } => {
                let why = match status {
                    Status::ClusterIdMismatch => {
                        format!("cluster ID mismatch (peer={peer_cluster_id:x}, local={local:x})")
                    }
                    Status::SenderRemoved => "this member has been removed from the cluster".into(),
                    Status::ToMismatch => format!("it is not member {}", self.peer()),
                    Status::SenderUnknown => "this member is unknown to it".into(),
                    Status::VersionMismatch => "protocol version mismatch".into(),
                    Status::Ok => "status OK".into(),
                };
                if *status == Status::SenderRemoved {
                    self.inner.report_removed();
                }
                (
                    format!("peer {} refused connection: {why}", self.peer()),
                    true,
                )
            }
            other => (format!("peer {} unreachable: {other}", self.peer()), false),
        };
        if self.last_failure.as_deref() == Some(text.as_str()) {
            tracing::debug!("{text}");
        } else if refused {
            tracing::warn!("{text}");
        } else {
            tracing::info!("{text}");
        }
        self.last_failure = Some(text);
    }

    fn report_unreachable(&self) {
        if self.state.should_report_unreachable() {
            self.inner.emit(PeerEvent::Unreachable(self.state.id));
        }
    }

    /// Waits out the backoff, dropping (and reporting) whatever arrives. False when the queue
    /// closed.
    fn drop_while_down(&self, wait: Duration) -> bool {
        let deadline = Instant::now() + wait;
        loop {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return true;
            };
            match self.queue.recv_timeout(left) {
                Ok(_) => self.report_unreachable(),
                Err(RecvTimeoutError::Timeout) => return true,
                Err(RecvTimeoutError::Disconnected) => return false,
            }
        }
    }

    /// Writes batches and keepalives until an error or until the queue closes.
    fn write_loop(&mut self, stream: TcpStream) -> Ended {
        let mut out = BufWriter::with_capacity(64 << 10, stream);
        // Bytes written to `out` but not flushed: flush before blocking on the queue.
        let mut unflushed = false;
        loop {
            let first = if unflushed {
                match self.queue.try_recv() {
                    Ok(m) => m,
                    Err(TryRecvError::Empty) => {
                        if let Err(e) = out.flush() {
                            return e.into();
                        }
                        unflushed = false;
                        continue;
                    }
                    Err(TryRecvError::Disconnected) => return Ended::QueueClosed,
                }
            } else {
                match self.queue.recv_timeout(KEEPALIVE_INTERVAL) {
                    Ok(m) => m,
                    Err(RecvTimeoutError::Timeout) => {
                        if let Err(e) = write_frame(&mut out, FRAME_KEEPALIVE, &[])
                            .and_then(|()| out.flush().map_err(Into::into))
                        {
                            return e.into();
                        }
                        continue;
                    }
                    Err(RecvTimeoutError::Disconnected) => return Ended::QueueClosed,
                }
            };
            let drained = self.fill_batch(first);
            if self.batch.count() > 0 {
                let written = write_frame(&mut out, FRAME_BATCH, self.batch.payload());
                self.batch.clear();
                if let Err(e) = written {
                    return e.into();
                }
                unflushed = true;
            }
            if drained && unflushed {
                if let Err(e) = out.flush() {
                    return e.into();
                }
                unflushed = false;
            }
        }
    }

    /// Adds `first` and then queued messages to the batch until it is full or the queue is
    /// empty; returns whether the queue was seen empty.
    fn fill_batch(&mut self, first: Message) -> bool {
        let mut next = Some(first);
        while let Some(message) = next.take() {
            if let Err(e) = self.batch.push(&message) {
                let msg_type = message.get_msg_type();
                let peer = self.peer();
                tracing::error!(%peer, error = %e, ?msg_type, "cannot send a message");
                self.report_unreachable();
            }
            if self.batch.is_full() {
                return false;
            }
            match self.queue.try_recv() {
                Ok(m) => next = Some(m),
                Err(TryRecvError::Empty) => return true,
                Err(TryRecvError::Disconnected) => return false,
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_twenty_percent() {
        // Proves the backoff jitter keeps every delay within ±20 % of the base.
        let base = Duration::from_millis(1000);
        for seed in (0..10_000u64).map(|i| i.wrapping_mul(0x1234_5678_9abc_def1)) {
            let d = jitter(base, seed);
            assert!(
                d >= Duration::from_millis(800) && d <= Duration::from_millis(1200),
                "{d:?}"
            );
        }
    }
}
