//! Accepting the HTTP/2 `:authority` etcdctl 3.4 sends for some calls.
//!
//! etcdctl 3.4 (grpc-go 1.26) dials `endpoint status`, `endpoint hashkv`, `defrag` and other
//! per-endpoint calls through a `passthrough:///http://127.0.0.1:2379` target, so its requests
//! carry `:authority: http://127.0.0.1:2379`. grpc-go's server ignores the authority; the `h2`
//! crate under tonic refuses one with a scheme as malformed and resets the stream with
//! PROTOCOL_ERROR, failing the call. This module sits between the socket and the HTTP/2 server
//! and rewrites such an authority to its `host:port`.
//!
//! How, per connection (the client-to-server byte stream only; responses are untouched):
//!
//! 1. Anything that does not start with the HTTP/2 client preface (HTTP/1.1 `/health`) passes
//!    through unchanged.
//! 2. The first request's header block is decoded (HPACK, with the client's dynamic table
//!    mirrored by a decoder). If its authority is fine (every client but the one above), that
//!    block's original bytes and everything after pass through unchanged: no further cost.
//! 3. Otherwise every header block of the connection is decoded and re-encoded with the
//!    authority fixed, as literals that never enter the server's dynamic table, so the
//!    server's HPACK state stays consistent (empty) whatever the client's encoder did. A
//!    block's frames (HEADERS and CONTINUATION) are re-emitted within the default maximum
//!    frame size; padding is dropped, priority kept. Other frames pass unchanged.
//!
//! Malformed input is never fixed up: the bytes go to the HTTP/2 server as they came, for it to
//! refuse as it would have.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tonic::transport::server::Connected;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const FRAME_HEADER_LEN: usize = 9;
const FRAME_HEADERS: u8 = 0x1;
const FRAME_CONTINUATION: u8 = 0x9;
const FLAG_END_STREAM: u8 = 0x1;
const FLAG_END_HEADERS: u8 = 0x4;
const FLAG_PADDED: u8 = 0x8;
const FLAG_PRIORITY: u8 = 0x20;
const PRIORITY_LEN: usize = 5;
/// HTTP/2's default SETTINGS_MAX_FRAME_SIZE, which the server advertises.
const MAX_FRAME_PAYLOAD: usize = 16_384;
const READ_CHUNK: usize = 16_384;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Waiting for the client preface.
    Preface,
    /// Preface seen; deciding on the first header block.
    Sniff,
    /// Rewriting every header block.
    Filter,
    /// Bytes pass unchanged.
    Passthrough,
}

/// A header block being collected from HEADERS and CONTINUATION frames.
struct PendingBlock {
    /// The frames as received, for forwarding unchanged.
    raw_frames: Vec<u8>,
    stream_id: u32,
    end_stream: bool,
    priority: Option<[u8; PRIORITY_LEN]>,
    fragment: Vec<u8>,
}

/// A client connection with the authority fix applied to what it reads. See the module doc.
pub struct AuthorityFix<S> {
    inner: S,
    mode: Mode,
    raw: Vec<u8>,
    ready: Vec<u8>,
    ready_pos: usize,
    eof: bool,
    decoder: loona_hpack::Decoder<'static>,
    pending: Option<PendingBlock>,
}

impl<S> AuthorityFix<S> {
    pub fn new(inner: S) -> AuthorityFix<S> {
        AuthorityFix {
            inner,
            mode: Mode::Preface,
            raw: Vec::new(),
            ready: Vec::new(),
            ready_pos: 0,
            eof: false,
            decoder: loona_hpack::Decoder::new(),
            pending: None,
        }
    }

    /// Moves every complete unit of `raw` to `ready`, transformed as the mode says.
    fn process(&mut self) {
        if self.mode == Mode::Preface {
            if self.raw.len() >= PREFACE.len() && self.raw.starts_with(PREFACE) {
                self.ready.extend(self.raw.drain(..PREFACE.len()));
                self.mode = Mode::Sniff;
            } else if !PREFACE.starts_with(&self.raw[..self.raw.len().min(PREFACE.len())]) {
                self.mode = Mode::Passthrough;
            }
        }
        while matches!(self.mode, Mode::Sniff | Mode::Filter) && self.raw.len() >= FRAME_HEADER_LEN
        {
            let len = usize::from(self.raw[0]) << 16
                | usize::from(self.raw[1]) << 8
                | usize::from(self.raw[2]);
            if self.raw.len() < FRAME_HEADER_LEN + len {
                break;
            }
            let frame: Vec<u8> = self.raw.drain(..FRAME_HEADER_LEN + len).collect();
            self.frame(frame);
        }
        if self.mode == Mode::Passthrough {
            self.give_up_pending();
            self.ready.append(&mut self.raw);
        }
    }

    /// Forwards a half-collected block unchanged (on malformed input).
    fn give_up_pending(&mut self) {
        if let Some(pending) = self.pending.take() {
            self.ready.extend(pending.raw_frames);
        }
    }

    fn frame(&mut self, frame: Vec<u8>) {
        let kind = frame[3];
        let flags = frame[4];
        if let Some(pending) = self.pending.as_mut() {
            if kind != FRAME_CONTINUATION {
                self.give_up_pending();
                self.ready.extend(frame);
                self.mode = Mode::Passthrough;
                return;
            }
            pending
                .fragment
                .extend_from_slice(&frame[FRAME_HEADER_LEN..]);
            pending.raw_frames.extend_from_slice(&frame);
            if flags & FLAG_END_HEADERS != 0 {
                self.finish_block();
            }
            return;
        }
        if kind != FRAME_HEADERS {
            self.ready.extend(frame);
            return;
        }
        let Some((priority, fragment)) = headers_payload(flags, &frame[FRAME_HEADER_LEN..]) else {
            self.ready.extend(frame);
            self.mode = Mode::Passthrough;
            return;
        };
        let stream_id = u32::from_be_bytes([frame[5], frame[6], frame[7], frame[8]]) & 0x7fff_ffff;
        self.pending = Some(PendingBlock {
            fragment: fragment.to_vec(),
            raw_frames: frame,
            stream_id,
            end_stream: flags & FLAG_END_STREAM != 0,
            priority,
        });
        if flags & FLAG_END_HEADERS != 0 {
            self.finish_block();
        }
    }

    fn finish_block(&mut self) {
        let Some(block) = self.pending.take() else {
            return;
        };
        let headers = match self.decoder.decode(&block.fragment) {
            Ok(headers) => headers,
            Err(_) => {
                self.ready.extend(block.raw_frames);
                self.mode = Mode::Passthrough;
                return;
            }
        };
        let bad_authority = headers
            .iter()
            .any(|(name, value)| name == b":authority" && fixed_authority(value).is_some());
        if self.mode == Mode::Sniff && !bad_authority {
            self.ready.extend(block.raw_frames);
            self.mode = Mode::Passthrough;
            return;
        }
        self.mode = Mode::Filter;
        let mut encoded = Vec::with_capacity(block.fragment.len() + 64);
        for (name, value) in &headers {
            let value = match (name.as_slice(), fixed_authority(value)) {
                (b":authority", Some(fixed)) => fixed,
                _ => value.as_slice(),
            };
            encode_literal(&mut encoded, name, value);
        }
        emit_header_frames(&mut self.ready, &block, &encoded);
    }
}

/// The header block fragment of a HEADERS payload and its priority fields; `None` if the
/// padding or priority fields do not fit.
fn headers_payload(flags: u8, payload: &[u8]) -> Option<(Option<[u8; PRIORITY_LEN]>, &[u8])> {
    let (pad, mut rest) = if flags & FLAG_PADDED != 0 {
        let (&pad, rest) = payload.split_first()?;
        (usize::from(pad), rest)
    } else {
        (0, payload)
    };
    let mut priority = None;
    if flags & FLAG_PRIORITY != 0 {
        let fields: [u8; PRIORITY_LEN] = rest.get(..PRIORITY_LEN)?.try_into().ok()?;
        priority = Some(fields);
        rest = &rest[PRIORITY_LEN..];
    }
    let fragment = rest.get(..rest.len().checked_sub(pad)?)?;
    Some((priority, fragment))
}

/// `host:port` for an authority written as a URL (`http://host:port[/...]`); `None` when the
/// authority has no scheme.
fn fixed_authority(value: &[u8]) -> Option<&[u8]> {
    let start = value.windows(3).position(|w| w == b"://")? + 3;
    let rest = &value[start..];
    let end = rest.iter().position(|&b| b == b'/').unwrap_or(rest.len());
    Some(&rest[..end])
}

/// HPACK "literal header field without indexing, new name", no Huffman coding (RFC 7541
/// 6.2.2): the server's dynamic table is never touched.
fn encode_literal(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.push(0x00);
    encode_string(out, name);
    encode_string(out, value);
}

fn encode_string(out: &mut Vec<u8>, bytes: &[u8]) {
    encode_integer(out, bytes.len(), 7, 0x00);
    out.extend_from_slice(bytes);
}

/// RFC 7541 5.1 integer with a `prefix_bits` prefix; `first_bits` are the bits above it.
fn encode_integer(out: &mut Vec<u8>, value: usize, prefix_bits: u32, first_bits: u8) {
    let max_prefix = (1usize << prefix_bits) - 1;
    if value < max_prefix {
        out.push(first_bits | value as u8);
        return;
    }
    out.push(first_bits | max_prefix as u8);
    let mut rest = value - max_prefix;
    while rest >= 128 {
        out.push((rest % 128) as u8 | 0x80);
        rest /= 128;
    }
    out.push(rest as u8);
}

/// Writes `block` as one HEADERS frame and as many CONTINUATION frames as needed.
fn emit_header_frames(out: &mut Vec<u8>, pending: &PendingBlock, block: &[u8]) {
    let priority_len = if pending.priority.is_some() {
        PRIORITY_LEN
    } else {
        0
    };
    let first_len = block.len().min(MAX_FRAME_PAYLOAD - priority_len);
    let (first, mut rest) = block.split_at(first_len);
    let mut flags = 0;
    if pending.end_stream {
        flags |= FLAG_END_STREAM;
    }
    if pending.priority.is_some() {
        flags |= FLAG_PRIORITY;
    }
    if rest.is_empty() {
        flags |= FLAG_END_HEADERS;
    }
    frame_header(
        out,
        priority_len + first.len(),
        FRAME_HEADERS,
        flags,
        pending.stream_id,
    );
    if let Some(priority) = pending.priority {
        out.extend_from_slice(&priority);
    }
    out.extend_from_slice(first);
    while !rest.is_empty() {
        let (chunk, tail) = rest.split_at(rest.len().min(MAX_FRAME_PAYLOAD));
        let flags = if tail.is_empty() { FLAG_END_HEADERS } else { 0 };
        frame_header(
            out,
            chunk.len(),
            FRAME_CONTINUATION,
            flags,
            pending.stream_id,
        );
        out.extend_from_slice(chunk);
        rest = tail;
    }
}

fn frame_header(out: &mut Vec<u8>, len: usize, kind: u8, flags: u8, stream_id: u32) {
    out.extend_from_slice(&(len as u32).to_be_bytes()[1..]);
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&stream_id.to_be_bytes());
}

impl<S: AsyncRead + Unpin> AsyncRead for AuthorityFix<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if this.ready_pos < this.ready.len() {
                let n = buf.remaining().min(this.ready.len() - this.ready_pos);
                buf.put_slice(&this.ready[this.ready_pos..this.ready_pos + n]);
                this.ready_pos += n;
                if this.ready_pos == this.ready.len() {
                    this.ready.clear();
                    this.ready_pos = 0;
                }
                return Poll::Ready(Ok(()));
            }
            if this.mode == Mode::Passthrough && this.raw.is_empty() && this.pending.is_none() {
                return Pin::new(&mut this.inner).poll_read(cx, buf);
            }
            this.process();
            if !this.ready.is_empty() {
                continue;
            }
            if this.eof {
                this.give_up_pending();
                this.ready.append(&mut this.raw);
                if this.ready.is_empty() {
                    return Poll::Ready(Ok(()));
                }
                continue;
            }
            let mut chunk = [0u8; READ_CHUNK];
            let mut chunk_buf = ReadBuf::new(&mut chunk);
            match Pin::new(&mut this.inner).poll_read(cx, &mut chunk_buf) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) if chunk_buf.filled().is_empty() => this.eof = true,
                Poll::Ready(Ok(())) => this.raw.extend_from_slice(chunk_buf.filled()),
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for AuthorityFix<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl<S: Connected> Connected for AuthorityFix<S> {
    type ConnectInfo = S::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

#[cfg(test)]
#[path = "authority_tests.rs"]
mod tests;
