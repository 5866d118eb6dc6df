//! The receiving side: one accept thread per listener and one reader thread per inbound
//! connection. A reader validates the hello (FORMAT.md "Receiver checks"), replies, and then
//! either reads Messages frames, handing each batch to the sink as [`PeerEvent::Messages`],
//! receives one snapshot (`snapshot::receive`), or answers one Rpc request (`rpc::serve`, which
//! runs the Rpc handler on this reader thread).
//!
//! A reader never writes after its reply on a Messages connection. It reads with a 5 s timeout
//! (the sender keeps the connection busy with keepalives), gives each frame's payload a
//! deadline set by its length ([`FRAME_MIN_BYTES_PER_SEC`]), and closes on any error; closing is
//! how a protocol error is answered. The deadline matters when bytes are lost in the middle of
//! a frame (a broken middlebox, or the test proxy): the reader would otherwise take the
//! following heartbeats as the rest of the payload and wait for minutes before the CRC fails.
//! A new Messages connection from a peer closes that peer's older inbound ones, so a half-dead
//! connection does not linger after a reconnect.
//!
//! Messages whose `from` is marked removed, or whose `to` is not this member, are dropped.

use ::raft::eraftpb::Message;
use std::io::{BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::conn::ConnInfo;
use super::error::{Result, TransportError};
use super::frame::{decode_batch, read_frame_body, read_frame_head};
use super::hello::{check_hello, encode_reply, read_hello, Hello, Kind, ReadHello, Reply, Status};
use super::layout::*;
use super::{read, rpc, snapshot, Hex, Inner, PeerEvent};

/// How far past its deadline a frame's payload may be waited for before the read gives up.
const DEADLINE_SLACK: Duration = Duration::from_millis(100);

/// Pause after a failed `accept` (for example out of file descriptors) before trying again.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

/// Starts the accept thread for `listener`.
pub fn spawn_acceptor(inner: Arc<Inner>, listener: TcpListener) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("oxcd-peer-accept".into())
        .spawn(move || accept_loop(&inner, listener))
}

fn accept_loop(inner: &Arc<Inner>, listener: TcpListener) {
    loop {
        let accepted = listener.accept();
        if inner.is_stopped() {
            return;
        }
        match accepted {
            Ok((stream, addr)) => {
                let thread_inner = inner.clone();
                let spawned = std::thread::Builder::new()
                    .name("oxcd-peer-read".into())
                    .spawn(move || serve(&thread_inner, stream, addr));
                if let Err(e) = spawned {
                    tracing::error!(%addr, %e, "cannot start a peer reader; connection closed");
                }
            }
            Err(e) => {
                tracing::warn!(%e, "accepting a peer connection failed");
                std::thread::sleep(ACCEPT_ERROR_PAUSE);
            }
        }
    }
}

/// Serves one inbound connection to its end.
fn serve(inner: &Inner, stream: TcpStream, addr: SocketAddr) {
    let setup = stream
        .set_nodelay(true)
        .and_then(|()| stream.set_read_timeout(Some(HELLO_TIMEOUT)))
        .and_then(|()| stream.set_write_timeout(Some(WRITE_TIMEOUT)));
    if let Err(e) = setup {
        tracing::debug!(%addr, %e, "cannot set up a peer connection");
        return;
    }
    let mut reader = BufReader::with_capacity(64 << 10, &stream);
    let hello = match read_hello(&mut reader) {
        Ok(ReadHello::Hello(hello)) => hello,
        Ok(ReadHello::UnsupportedVersion(version)) => {
            tracing::warn!(%addr, version, "rejected peer connection: unsupported version");
            let _ = reply(&stream, inner, Status::VersionMismatch);
            return;
        }
        Err(TransportError::Io(e)) => {
            let why = describe_io_end(&e);
            tracing::debug!(%addr, "peer connection ended before its hello: {why}");
            return;
        }
        Err(e) => {
            tracing::warn!(%addr, error = %e, "rejected peer connection: bad hello");
            return;
        }
    };
    let status = check_hello(&hello, inner.cfg.cluster_id, inner.cfg.member_id, |id| {
        inner.is_removed(id)
    });
    if let Err(e) = reply(&stream, inner, status) {
        tracing::debug!(%addr, %e, "cannot answer a peer hello");
        return;
    }
    if status != Status::Ok {
        log_rejection(inner, &hello, status, addr);
        return;
    }
    let info = ConnInfo {
        peer: hello.from_id,
        kind: hello.kind,
        inbound: true,
    };
    let registered = match inner.conns.register(&stream, info) {
        Ok(registered) => registered,
        Err(e) => {
            tracing::warn!(%addr, %e, "cannot track a peer connection; closing it");
            return;
        }
    };
    // Checked after registering: a stop that ran before this point did not see the connection.
    if inner.is_stopped() {
        return;
    }
    match hello.kind {
        Kind::Messages => {
            let mine = registered.id;
            inner.conns.shutdown_where(|id, c| {
                id != mine && c.inbound && c.kind == Kind::Messages && c.peer == hello.from_id
            });
            // The reader below reads frames with its own buffer: anything the dialer sent
            // after its hello, before our reply, breaks the protocol (FORMAT.md).
            if !reader.buffer().is_empty() {
                let from = format!("{:x}", hello.from_id);
                tracing::warn!(%addr, %from, "peer sent frames before the reply; closing");
                return;
            }
            read_messages(inner, &hello, &stream, addr);
        }
        Kind::Snapshot => snapshot::receive(inner, &hello, &stream, &mut reader),
        Kind::Rpc => rpc::serve(inner, &hello, &stream, &mut reader),
    }
}

fn reply(stream: &TcpStream, inner: &Inner, status: Status) -> std::io::Result<()> {
    let mut writer = stream;
    writer.write_all(&encode_reply(Reply {
        status,
        cluster_id: inner.cfg.cluster_id,
    }))
}

fn log_rejection(inner: &Inner, hello: &Hello, status: Status, addr: SocketAddr) {
    let from = format!("{:x}", hello.from_id);
    match status {
        Status::ClusterIdMismatch => tracing::warn!(
            %addr, %from,
            "rejected peer connection: cluster ID mismatch (got {:x} want {:x})",
            hello.cluster_id, inner.cfg.cluster_id
        ),
        Status::ToMismatch => tracing::warn!(
            %addr, %from,
            "rejected peer connection: member ID mismatch (got {:x} want {:x})",
            hello.to_id, inner.cfg.member_id
        ),
        Status::SenderRemoved => tracing::warn!(
            %addr, %from,
            "rejected peer connection: member {from} has been removed from the cluster"
        ),
        other => tracing::warn!(%addr, %from, status = ?other, "rejected peer connection"),
    }
}

/// Reads frames until an error, emitting each batch.
fn read_messages(inner: &Inner, hello: &Hello, stream: &TcpStream, addr: SocketAddr) {
    let from = format!("{:x}", hello.from_id);
    if let Err(e) = stream.set_read_timeout(Some(READ_TIMEOUT)) {
        tracing::debug!(%addr, %e, "cannot set a read timeout; closing");
        return;
    }
    let mut reader = BufReader::with_capacity(64 << 10, FrameReader::new(stream));
    tracing::info!(peer = %from, %addr, urls = %hello.from_urls, "peer inbound connection up");
    if !inner.is_stopped() {
        let urls = hello.from_urls.split(',').filter(|u| !u.is_empty());
        inner.emit(PeerEvent::InboundUp {
            from: hello.from_id,
            urls: urls.map(str::to_string).collect(),
        });
    }
    let error = loop {
        match read_batch(inner, &mut reader) {
            Ok(Some(messages)) if !inner.is_stopped() => inner.emit(PeerEvent::Messages(messages)),
            Ok(_) => {}
            Err(e) => break e,
        }
    };
    match error {
        TransportError::Io(e) => {
            let why = describe_io_end(&e);
            tracing::info!(peer = %from, %addr, "peer inbound connection down: {why}")
        }
        other => {
            tracing::warn!(peer = %from, %addr, error = %other, "peer inbound connection closed")
        }
    }
}

/// Words for how a read ended: EOF and the read timeout are the common, expected cases.
fn describe_io_end(e: &std::io::Error) -> String {
    match e.kind() {
        ErrorKind::UnexpectedEof => "closed by the peer".into(),
        // A socket read timeout (SO_RCVTIMEO) ends as EAGAIN.
        ErrorKind::WouldBlock => format!("nothing received for {} s", READ_TIMEOUT.as_secs()),
        _ => e.to_string(),
    }
}

/// Reads one frame: `Some` messages for a batch with any left after filtering, `None` for a
/// keepalive or a batch filtered empty.
fn read_batch(
    inner: &Inner,
    reader: &mut BufReader<FrameReader<'_>>,
) -> Result<Option<Vec<Message>>> {
    let head = read_frame_head(reader)?;
    reader.get_mut().set_body_deadline(head.len);
    let frame = read_frame_body(reader, head);
    reader.get_mut().clear_body_deadline()?;
    let frame = frame?;
    match frame.frame_type() {
        FRAME_KEEPALIVE if frame.payload().is_empty() => Ok(None),
        FRAME_BATCH => {
            let mut messages = decode_batch(frame.payload())?;
            let removed = read(&inner.removed);
            let me = inner.cfg.member_id;
            messages.retain(|m| {
                let keep = m.to == me && !removed.contains(&m.from);
                if !keep {
                    let (from, to) = (Hex(m.from), Hex(m.to));
                    tracing::debug!(%from, %to, "dropping a received message");
                }
                keep
            });
            Ok((!messages.is_empty()).then_some(messages))
        }
        other => Err(TransportError::protocol(format!(
            "frame type {other} (payload {} bytes) on a Messages connection",
            frame.payload().len()
        ))),
    }
}

/// How long a frame of `len` bytes (type + payload) may take to arrive after its head.
fn body_time_limit(len: usize) -> Duration {
    READ_TIMEOUT + Duration::from_millis(len as u64 * 1000 / FRAME_MIN_BYTES_PER_SEC)
}

/// A Messages connection's socket under the reader's [`BufReader`]: every read waits at most
/// [`READ_TIMEOUT`], and while a frame's payload is being read, never past that frame's
/// deadline.
struct FrameReader<'a> {
    stream: &'a TcpStream,
    body_deadline: Option<Instant>,
    /// Whether the socket's timeout was shortened for the deadline (and must be restored).
    shortened: bool,
}

impl<'a> FrameReader<'a> {
    fn new(stream: &'a TcpStream) -> FrameReader<'a> {
        FrameReader {
            stream,
            body_deadline: None,
            shortened: false,
        }
    }

    /// Starts the deadline for a frame of `len` bytes (type + payload) whose head was read.
    fn set_body_deadline(&mut self, len: usize) {
        self.body_deadline = Some(Instant::now() + body_time_limit(len));
    }

    /// Ends the frame's deadline, restoring the plain read timeout if it was shortened.
    fn clear_body_deadline(&mut self) -> std::io::Result<()> {
        self.body_deadline = None;
        if std::mem::take(&mut self.shortened) {
            self.stream.set_read_timeout(Some(READ_TIMEOUT))?;
        }
        Ok(())
    }
}

impl Read for FrameReader<'_> {
    /// A missed frame deadline is `TimedOut` with its own text; a plain idle read timeout
    /// stays `WouldBlock` (see `describe_io_end`).
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let Some(deadline) = self.body_deadline else {
            return (&*self.stream).read(buf);
        };
        let missed = || {
            std::io::Error::new(
                ErrorKind::TimedOut,
                "a frame's payload did not arrive within its deadline",
            )
        };
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(missed());
        }
        // The socket's plain timeout already ends a read by then (give or take the slack):
        // no setsockopt calls for a frame whose deadline is still far.
        if left + DEADLINE_SLACK < READ_TIMEOUT {
            self.stream.set_read_timeout(Some(left))?;
            self.shortened = true;
        }
        match (&*self.stream).read(buf) {
            Err(e) if e.kind() == ErrorKind::WouldBlock && Instant::now() >= deadline => {
                Err(missed())
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn a_frame_body_has_a_deadline_set_by_its_length() {
        // Proves the limit grows with the frame (64 MiB gets minutes, a heartbeat 5 s).
        assert_eq!(body_time_limit(1), READ_TIMEOUT);
        assert_eq!(
            body_time_limit(512 << 10),
            READ_TIMEOUT + Duration::from_secs(1)
        );
        let largest = body_time_limit(MAX_FRAME_LEN);
        assert!(largest > Duration::from_secs(120) && largest < Duration::from_secs(150));
    }

    #[test]
    fn a_trickling_sender_cannot_stretch_a_frame_past_its_deadline() {
        // Proves a payload that trickles in (a byte every 20 ms, never idle for the read
        // timeout) still fails once the frame's deadline passes, and the plain timeout is
        // restored afterwards.
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let mut sender = TcpStream::connect(listener.local_addr().unwrap()).expect("connect");
        let (receiver, _) = listener.accept().expect("accept");
        let trickle = std::thread::spawn(move || {
            while sender.write_all(&[0]).is_ok() {
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        receiver.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        let mut reader = FrameReader::new(&receiver);
        let started = Instant::now();
        reader.body_deadline = Some(started + Duration::from_millis(300));
        let mut payload = vec![0u8; 1 << 20];
        let err = reader.read_exact(&mut payload).expect_err("deadline");
        assert_eq!(err.kind(), ErrorKind::TimedOut, "{err}");
        assert!(describe_io_end(&err).contains("deadline"), "{err}");
        assert!(started.elapsed() < READ_TIMEOUT, "{:?}", started.elapsed());
        reader.clear_body_deadline().unwrap();
        assert_eq!(receiver.read_timeout().unwrap(), Some(READ_TIMEOUT));
        drop(receiver);
        trickle.join().unwrap();
    }
}
