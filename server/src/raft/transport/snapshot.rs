//! Snapshots, one connection each (FORMAT.md "Snapshot connection").
//!
//! Sending ([`spawn_send`]) runs on its own thread so a large db never shares a socket or a
//! thread with heartbeats: dial, handshake (kind Snapshot), header, the body in chunks of
//! ≤ 1 MiB hashed on the way, the SHA-256 trailer, then wait for the result frame. The sender
//! streams the body to its EOF and leaves the size check to the receiver. The outcome is one
//! [`PeerEvent::SnapshotStatus`], preceded by [`PeerEvent::Unreachable`] on failure.
//!
//! Receiving ([`receive`]) runs on the inbound connection's reader thread. The db goes to
//! `snap_dir/tmp<random>`; only after size and hash match, an fsync, the rename to
//! `<index:016x>.snap.db` and an fsync of the directory is the MsgSnapshot handed to raft and
//! ok answered. A refusal (bad header message, size or hash mismatch, disk error) is answered
//! after the trailer, having discarded the rest of the body; a broken stream (bad frame) is
//! closed without an answer. The tmp file never outlives a failed receive.

use ::raft::eraftpb::Message;
use sha2::{Digest, Sha256};
use std::fs::{File, OpenOptions};
use std::io::{BufReader, BufWriter, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use super::conn::{connect, handshake, ConnInfo};
use super::error::{Result, TransportError};
use super::frame::*;
use super::hello::{Hello, Kind, Status};
use super::layout::*;
use super::{Hex, Inner, PeerEvent, SnapshotBody};

/// Sends `message` (a MsgSnapshot) and `body` to `message.to` on a new thread.
pub fn spawn_send(inner: Arc<Inner>, message: Message, body: SnapshotBody) {
    let to = message.to;
    let Some(urls) = inner.peer_urls(to) else {
        tracing::debug!(to = %Hex(to), "snapshot for an unknown peer dropped");
        inner.emit(PeerEvent::SnapshotStatus { to, ok: false });
        return;
    };
    let thread_inner = inner.clone();
    let spawned = std::thread::Builder::new()
        .name(format!("oxcd-snap-{to:x}"))
        .spawn(move || {
            let index = message.get_snapshot().get_metadata().index;
            let size = body.size;
            let result = send(&thread_inner, &urls, &message, body);
            let ok = match result {
                Ok(()) => {
                    tracing::info!(to = %Hex(to), index, size, "sent snapshot");
                    true
                }
                Err(e) => {
                    if let TransportError::Refused {
                        status: Status::SenderRemoved,
                        ..
                    } = e
                    {
                        thread_inner.report_removed();
                    }
                    let error = e.to_string();
                    tracing::warn!(to = %Hex(to), index, size, %error, "failed to send snapshot");
                    thread_inner.emit(PeerEvent::Unreachable(to));
                    false
                }
            };
            thread_inner.emit(PeerEvent::SnapshotStatus { to, ok });
        });
    if let Err(e) = spawned {
        tracing::error!(to = %Hex(to), %e, "cannot start a snapshot sender");
        inner.emit(PeerEvent::Unreachable(to));
        inner.emit(PeerEvent::SnapshotStatus { to, ok: false });
    }
}

fn send(inner: &Inner, urls: &[String], message: &Message, mut body: SnapshotBody) -> Result<()> {
    let to = message.to;
    let (stream, _) = connect(urls, 0)?;
    let _registered = inner.conns.register(
        &stream,
        ConnInfo {
            peer: to,
            kind: Kind::Snapshot,
            inbound: false,
        },
    )?;
    if inner.is_stopped() {
        return Err(TransportError::protocol("transport stopped"));
    }
    handshake(&stream, &inner.hello(Kind::Snapshot, to))?;
    let mut out = BufWriter::with_capacity(FRAME_OVERHEAD + SNAP_CHUNK_SIZE, &stream);
    write_frame(
        &mut out,
        FRAME_SNAP_HEADER,
        &encode_snapshot_header(body.size, message)?,
    )?;
    let mut hasher = Sha256::new();
    let mut chunk = vec![0u8; SNAP_CHUNK_SIZE];
    loop {
        let n = read_full(&mut body.reader, &mut chunk)?;
        if n == 0 {
            break;
        }
        hasher.update(&chunk[..n]);
        write_frame(&mut out, FRAME_SNAP_CHUNK, &chunk[..n])?;
        if inner.is_stopped() {
            return Err(TransportError::protocol("transport stopped"));
        }
    }
    write_frame(&mut out, FRAME_SNAP_TRAILER, &hasher.finalize())?;
    out.flush()?;
    drop(out);
    stream.set_read_timeout(Some(SNAP_RESULT_TIMEOUT))?;
    let frame = read_frame(&mut &stream)?;
    if frame.frame_type() != FRAME_SNAP_RESULT {
        return Err(TransportError::protocol(format!(
            "frame type {} instead of a snapshot result",
            frame.frame_type()
        )));
    }
    match decode_snapshot_result(frame.payload())? {
        (true, _) => Ok(()),
        (false, text) => Err(TransportError::protocol(format!(
            "peer refused the snapshot: {text}"
        ))),
    }
}

/// Reads until `buf` is full or the reader is at EOF; returns the bytes read.
fn read_full(reader: &mut dyn Read, buf: &mut [u8]) -> Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(filled)
}

/// How a receive ended badly.
enum Failure {
    /// Answered with ok = 0 and this text.
    Refused(String),
    /// The stream broke the format or the connection failed: closed without an answer.
    Broken(TransportError),
}

impl From<TransportError> for Failure {
    fn from(e: TransportError) -> Failure {
        Failure::Broken(e)
    }
}

/// A tmp file that is removed on drop unless it was renamed into place.
struct TmpFile {
    path: PathBuf,
    file: BufWriter<File>,
    keep: bool,
}

impl Drop for TmpFile {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Creates `dir/tmp<random>` (never an existing file).
fn create_tmp(dir: &Path) -> std::io::Result<TmpFile> {
    std::fs::create_dir_all(dir)?;
    loop {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let salt = TMP_COUNTER.fetch_add(1, Ordering::Relaxed) ^ u64::from(std::process::id());
        let name = format!(
            "tmp{:016x}",
            nanos.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ salt
        );
        let path = dir.join(name);
        match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(file) => {
                return Ok(TmpFile {
                    path,
                    file: BufWriter::with_capacity(SNAP_CHUNK_SIZE, file),
                    keep: false,
                })
            }
            Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

/// The file name a snapshot db at `index` is saved under.
pub fn snap_db_name(index: u64) -> String {
    format!("{index:016x}.snap.db")
}

/// Receives one snapshot on an accepted connection (after its handshake) and answers it.
pub fn receive(
    inner: &Inner,
    hello: &Hello,
    stream: &TcpStream,
    reader: &mut BufReader<&TcpStream>,
) {
    let from = format!("{:x}", hello.from_id);
    if let Err(e) = stream.set_read_timeout(Some(READ_TIMEOUT)) {
        tracing::debug!(%from, %e, "cannot set a read timeout; closing");
        return;
    }
    let answer = match receive_db(inner, reader) {
        Ok((message, path)) => {
            let index = message.get_snapshot().get_metadata().index;
            tracing::info!(%from, index, path = %path.display(), "received snapshot");
            if inner.is_stopped() {
                return;
            }
            inner.emit(PeerEvent::Messages(vec![message]));
            encode_snapshot_result(true, "")
        }
        Err(Failure::Refused(text)) => {
            tracing::warn!(%from, "refused snapshot: {text}");
            encode_snapshot_result(false, &text)
        }
        Err(Failure::Broken(e)) => {
            tracing::warn!(%from, error = %e, "snapshot connection closed");
            return;
        }
    };
    let mut out = BufWriter::new(stream);
    if let Err(e) = write_frame(&mut out, FRAME_SNAP_RESULT, &answer)
        .and_then(|()| out.flush().map_err(Into::into))
    {
        tracing::warn!(%from, error = %e, "cannot answer a snapshot");
    }
}

/// Reads header, chunks and trailer; saves the db. Returns the message and the db's path.
fn receive_db(
    inner: &Inner,
    reader: &mut BufReader<&TcpStream>,
) -> std::result::Result<(Message, PathBuf), Failure> {
    let header = read_frame(reader)?;
    if header.frame_type() != FRAME_SNAP_HEADER {
        return Err(Failure::Broken(TransportError::protocol(format!(
            "frame type {} instead of a snapshot header",
            header.frame_type()
        ))));
    }
    // Every refusal is recorded and answered after the trailer, so the sender hears it.
    let mut refusal = None;
    let mut target = None;
    match decode_snapshot_header(header.payload()) {
        Ok((db_size, message)) => match create_tmp(&inner.cfg.snap_dir) {
            Ok(tmp) => target = Some((db_size, message, tmp)),
            Err(e) => refusal = Some(format!("failed to save KV snapshot ({e})")),
        },
        Err(e) => refusal = Some(format!("failed to decode raft message ({e})")),
    }
    let mut hasher = Sha256::new();
    let mut received: u64 = 0;
    let trailer = loop {
        let frame = read_frame(reader)?;
        match frame.frame_type() {
            FRAME_SNAP_CHUNK if (1..=SNAP_CHUNK_SIZE).contains(&frame.payload().len()) => {
                let chunk = frame.payload();
                received += chunk.len() as u64;
                if let (None, Some((db_size, _, tmp))) = (&refusal, &mut target) {
                    if received > *db_size {
                        refusal = Some(format!(
                            "snapshot body exceeds the {db_size} bytes its header announced"
                        ));
                    } else if let Err(e) = tmp.file.write_all(chunk) {
                        refusal = Some(format!("failed to save KV snapshot ({e})"));
                    } else {
                        hasher.update(chunk);
                    }
                }
            }
            FRAME_SNAP_TRAILER if frame.payload().len() == SNAP_TRAILER_SIZE => {
                break frame.payload().to_vec();
            }
            other => {
                return Err(Failure::Broken(TransportError::protocol(format!(
                    "unexpected frame type {other} ({} bytes) in a snapshot",
                    frame.payload().len()
                ))))
            }
        }
    };
    if let Some(text) = refusal {
        return Err(Failure::Refused(text));
    }
    let Some((db_size, message, tmp)) = target else {
        return Err(Failure::Refused("no snapshot header".into()));
    };
    if received != db_size {
        return Err(Failure::Refused(format!(
            "snapshot size mismatch: header announced {db_size} bytes, received {received}"
        )));
    }
    if hasher.finalize().as_slice() != trailer.as_slice() {
        return Err(Failure::Refused("snapshot SHA-256 mismatch".into()));
    }
    let index = message.get_snapshot().get_metadata().index;
    let path = install(tmp, &inner.cfg.snap_dir, index)
        .map_err(|e| Failure::Refused(format!("failed to save KV snapshot ({e})")))?;
    Ok((message, path))
}

/// Makes the tmp file durable and moves it to its final name (or drops it when a db for that
/// index exists already), then syncs the directory.
fn install(mut tmp: TmpFile, dir: &Path, index: u64) -> std::io::Result<PathBuf> {
    tmp.file.flush()?;
    tmp.file.get_ref().sync_all()?;
    let path = dir.join(snap_db_name(index));
    if path.exists() {
        let path_text = path.display();
        tracing::info!(path = %path_text, "snapshot db exists already; received copy dropped");
        return Ok(path);
    }
    std::fs::rename(&tmp.path, &path)?;
    tmp.keep = true;
    File::open(dir)?.sync_all()?;
    Ok(path)
}
