use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};

use super::*;

/// Yields its bytes `step` at a time, to prove frames split across reads are reassembled.
struct Trickle {
    data: Vec<u8>,
    pos: usize,
    step: usize,
}

impl AsyncRead for Trickle {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let n = self
            .step
            .min(self.data.len() - self.pos)
            .min(buf.remaining());
        let start = self.pos;
        buf.put_slice(&self.data[start..start + n]);
        self.pos += n;
        Poll::Ready(Ok(()))
    }
}

fn read_all(input: &[u8], step: usize) -> Vec<u8> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut fixed = AuthorityFix::new(Trickle {
            data: input.to_vec(),
            pos: 0,
            step,
        });
        let mut out = Vec::new();
        fixed.read_to_end(&mut out).await.unwrap();
        out
    })
}

fn frame(kind: u8, flags: u8, stream_id: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    frame_header(&mut out, payload.len(), kind, flags, stream_id);
    out.extend_from_slice(payload);
    out
}

/// A literal with incremental indexing (enters the client's dynamic table).
fn indexed_literal(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.push(0x40);
    encode_string(out, name);
    encode_string(out, value);
}

fn request_block(authority: &[u8]) -> Vec<u8> {
    let mut block = Vec::new();
    block.push(0x83); // :method POST (static index 3)
    block.push(0x86); // :scheme http (static index 6)
    encode_literal(&mut block, b":path", b"/etcdserverpb.Maintenance/Status");
    indexed_literal(&mut block, b":authority", authority);
    encode_literal(&mut block, b"content-type", b"application/grpc");
    block
}

/// Every frame of `bytes` after the preface: (kind, flags, stream, payload).
fn frames(bytes: &[u8]) -> Vec<(u8, u8, u32, Vec<u8>)> {
    let mut rest = &bytes[PREFACE.len()..];
    let mut out = Vec::new();
    while !rest.is_empty() {
        let len = usize::from(rest[0]) << 16 | usize::from(rest[1]) << 8 | usize::from(rest[2]);
        let stream = u32::from_be_bytes([rest[5], rest[6], rest[7], rest[8]]);
        out.push((rest[3], rest[4], stream, rest[9..9 + len].to_vec()));
        rest = &rest[9 + len..];
    }
    out
}

#[test]
fn http1_and_good_authorities_pass_unchanged() {
    // Proves bytes that need no fix come out exactly as they went in, in any read sizes.
    let http1 = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n".to_vec();
    assert_eq!(read_all(&http1, 3), http1);
    let mut h2 = PREFACE.to_vec();
    h2.extend(frame(0x4, 0, 0, &[]));
    h2.extend(frame(
        FRAME_HEADERS,
        FLAG_END_HEADERS,
        1,
        &request_block(b"127.0.0.1:2379"),
    ));
    h2.extend(frame(0x0, FLAG_END_STREAM, 1, b"\0\0\0\0\0"));
    // Later blocks are not even parsed: a scheme here must stay as sent.
    h2.extend(frame(
        FRAME_HEADERS,
        FLAG_END_HEADERS,
        3,
        &request_block(b"http://late:1"),
    ));
    for step in [1, 7, 4096] {
        assert_eq!(read_all(&h2, step), h2);
    }
}

#[test]
fn authority_with_a_scheme_is_rewritten_in_every_block() {
    // Proves http://host:port becomes host:port, other frames and headers are kept, priority
    // survives, padding goes, and the client's dynamic-table references still decode.
    let mut input = PREFACE.to_vec();
    input.extend(frame(0x4, 0, 0, &[]));
    // Block 1: padded, with priority, split over HEADERS + CONTINUATION.
    let block = request_block(b"http://127.0.0.1:2379");
    let (a, b) = block.split_at(10);
    let mut payload = vec![2u8]; // pad length
    payload.extend_from_slice(&[0, 0, 0, 0, 15]); // priority
    payload.extend_from_slice(a);
    payload.extend_from_slice(&[0, 0]); // padding
    input.extend(frame(
        FRAME_HEADERS,
        FLAG_PADDED | FLAG_PRIORITY,
        1,
        &payload,
    ));
    input.extend(frame(FRAME_CONTINUATION, FLAG_END_HEADERS, 1, b));
    input.extend(frame(0x0, FLAG_END_STREAM, 1, b"\0\0\0\0\0"));
    // Block 2 refers to the client's dynamic table for :authority (index 62).
    let mut second = vec![0x83, 0x86, 0xbe];
    encode_literal(&mut second, b":path", b"/etcdserverpb.KV/Range");
    input.extend(frame(
        FRAME_HEADERS,
        FLAG_END_HEADERS | FLAG_END_STREAM,
        3,
        &second,
    ));
    for step in [1, 5, 65_536] {
        let out = read_all(&input, step);
        let frames = frames(&out);
        let mut decoder = loona_hpack::Decoder::new();
        let kinds: Vec<(u8, u32)> = frames.iter().map(|f| (f.0, f.2)).collect();
        assert_eq!(
            kinds,
            [(0x4, 0), (FRAME_HEADERS, 1), (0x0, 1), (FRAME_HEADERS, 3)]
        );
        let (_, flags, _, payload) = &frames[1];
        assert_eq!(*flags, FLAG_PRIORITY | FLAG_END_HEADERS);
        assert_eq!(&payload[..5], &[0, 0, 0, 0, 15]);
        let first = decoder.decode(&payload[5..]).unwrap();
        let authority = |headers: &[(Vec<u8>, Vec<u8>)]| {
            headers
                .iter()
                .find(|(n, _)| n == b":authority")
                .map(|(_, v)| v.clone())
        };
        assert_eq!(authority(&first).unwrap(), b"127.0.0.1:2379");
        assert_eq!(first.len(), 5);
        assert_eq!(frames[2].3, b"\0\0\0\0\0");
        assert_eq!(frames[3].1, FLAG_END_HEADERS | FLAG_END_STREAM);
        let second = decoder.decode(&frames[3].3).unwrap();
        assert_eq!(authority(&second).unwrap(), b"127.0.0.1:2379");
        assert_eq!(
            second[3],
            (b":path".to_vec(), b"/etcdserverpb.KV/Range".to_vec())
        );
    }
}

#[test]
fn large_blocks_are_split_within_the_frame_size_limit() {
    // Proves a re-encoded block over 16 KiB leaves as HEADERS + CONTINUATION frames.
    let mut block = request_block(b"http://h:1");
    encode_literal(&mut block, b"x-big", &vec![b'v'; 40_000]);
    let mut input = PREFACE.to_vec();
    let (a, b) = block.split_at(16_000);
    input.extend(frame(FRAME_HEADERS, 0, 1, a));
    let (b1, b2) = b.split_at(16_000);
    input.extend(frame(FRAME_CONTINUATION, 0, 1, b1));
    input.extend(frame(FRAME_CONTINUATION, FLAG_END_HEADERS, 1, b2));
    let out = read_all(&input, 3_000);
    let frames = frames(&out);
    assert!(frames.iter().all(|f| f.3.len() <= MAX_FRAME_PAYLOAD));
    assert_eq!(frames.last().unwrap().1, FLAG_END_HEADERS);
    let joined: Vec<u8> = frames.iter().flat_map(|f| f.3.clone()).collect();
    let headers = loona_hpack::Decoder::new().decode(&joined).unwrap();
    assert_eq!(headers.last().unwrap().1.len(), 40_000);
}

#[test]
fn malformed_frames_pass_through_for_the_server_to_refuse() {
    // Proves a HEADERS frame whose padding overruns it is forwarded as is, not "repaired".
    let mut input = PREFACE.to_vec();
    input.extend(frame(
        FRAME_HEADERS,
        FLAG_PADDED | FLAG_END_HEADERS,
        1,
        &[200, 1, 2],
    ));
    input.extend(frame(0x0, 0, 1, b"abc"));
    assert_eq!(read_all(&input, 4), input);
}
