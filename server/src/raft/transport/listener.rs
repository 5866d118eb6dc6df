//! The receiving side: one accept thread per listener and one reader thread per inbound
//! connection. A reader validates the hello (FORMAT.md "Receiver checks"), replies, and then
//! either reads Messages frames, handing each batch to the sink as [`PeerEvent::Messages`],
//! receives one snapshot (`snapshot::receive`), or answers one Rpc request (`rpc::serve`, which
//! runs the Rpc handler on this reader thread).
//!
//! A reader never writes after its reply on a Messages connection. It reads with a 5 s timeout
//! (the sender keeps the connection busy with keepalives) and closes on any error; closing is
//! how a protocol error is answered. A new Messages connection from a peer closes that peer's
//! older inbound ones, so a half-dead connection does not linger after a reconnect.
//!
//! Messages whose `from` is marked removed, or whose `to` is not this member, are dropped.

use ::raft::eraftpb::Message;
use std::io::{BufReader, ErrorKind, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::conn::ConnInfo;
use super::error::{Result, TransportError};
use super::frame::{decode_batch, read_frame};
use super::hello::{check_hello, encode_reply, read_hello, Hello, Kind, ReadHello, Reply, Status};
use super::layout::*;
use super::{read, rpc, snapshot, Hex, Inner, PeerEvent};

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
            read_messages(inner, &hello, &stream, reader, addr);
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
fn read_messages(
    inner: &Inner,
    hello: &Hello,
    stream: &TcpStream,
    mut reader: BufReader<&TcpStream>,
    addr: SocketAddr,
) {
    let from = format!("{:x}", hello.from_id);
    if let Err(e) = stream.set_read_timeout(Some(READ_TIMEOUT)) {
        tracing::debug!(%addr, %e, "cannot set a read timeout; closing");
        return;
    }
    tracing::info!(peer = %from, %addr, urls = %hello.from_urls, "peer inbound connection up");
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
        ErrorKind::WouldBlock | ErrorKind::TimedOut => {
            format!("nothing received for {} s", READ_TIMEOUT.as_secs())
        }
        _ => e.to_string(),
    }
}

/// Reads one frame: `Some` messages for a batch with any left after filtering, `None` for a
/// keepalive or a batch filtered empty.
fn read_batch(inner: &Inner, reader: &mut BufReader<&TcpStream>) -> Result<Option<Vec<Message>>> {
    let frame = read_frame(reader)?;
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
