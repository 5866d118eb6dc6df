//! Frames and the payloads that travel in them: reading and writing one frame (length, type,
//! head CRC-32C, payload, CRC-32C), the batch encoding of raft messages, and the snapshot
//! header and result payloads. Offsets and limits come from [`super::layout`]; FORMAT.md has
//! the tables.
//!
//! Pure codecs over `Read`/`Write`: no sockets, threads or timeouts here. Every length read
//! from the wire is checked against what remains and against the limits before it is used, so
//! a hostile or corrupt stream yields an error, never a panic or an unbounded allocation
//! (the largest is one frame, ≤ 64 MiB).
//!
//! Worked example, a batch of one 3-byte message `08 03 10`:
//! `00 00 00 0c | 01 | crc32c(00 00 00 0c 01) | 00 00 00 01 | 00 00 00 03 | 08 03 10 |
//! crc32c(01 00 00 00 01 ...)`, len 12 = type 1 + count 4 + msg len 4 + 3 message bytes.
//!
//! The head CRC lets a reader refuse a corrupt length before it waits for that many bytes:
//! without it, a length garbled into something below the limit (a lossy link that drops part of
//! a frame) had the reader wait for megabytes while only heartbeats trickled in.

use ::raft::eraftpb::{Message, MessageType};
use protobuf::Message as _;
use std::io::{Read, Write};

use super::error::{Result, TransportError};
use super::layout::*;

/// One frame as read: the type byte followed by the payload, kept in one buffer.
#[derive(Debug, PartialEq, Eq)]
pub struct Frame {
    body: Vec<u8>,
}

impl Frame {
    /// The frame type.
    pub fn frame_type(&self) -> u8 {
        self.body[0]
    }

    /// The payload (may be empty).
    pub fn payload(&self) -> &[u8] {
        &self.body[FRAME_TYPE_SIZE..]
    }
}

/// The CRC a frame carries: CRC-32C over the type byte and the payload.
fn frame_crc(frame_type: u8, payload: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&[frame_type]), payload)
}

/// The CRC a frame's head carries: CRC-32C over the length and type bytes.
fn head_crc(len_and_type: &[u8]) -> u32 {
    crc32c::crc32c(len_and_type)
}

/// Writes one frame. Refuses (before writing anything) a payload that would exceed the limit.
pub fn write_frame<W: Write>(w: &mut W, frame_type: u8, payload: &[u8]) -> Result<()> {
    let len = FRAME_TYPE_SIZE + payload.len();
    if len > MAX_FRAME_LEN {
        return Err(TransportError::FrameLength {
            len: len as u64,
            max: MAX_FRAME_LEN,
        });
    }
    let mut head = [0u8; FRAME_HEAD_SIZE];
    head[..FRAME_LEN_SIZE].copy_from_slice(&(len as u32).to_be_bytes());
    head[FRAME_LEN_SIZE] = frame_type;
    let crc = head_crc(&head[..FRAME_HEAD_CRC_OFFSET]);
    head[FRAME_HEAD_CRC_OFFSET..].copy_from_slice(&crc.to_be_bytes());
    w.write_all(&head)?;
    w.write_all(payload)?;
    w.write_all(&frame_crc(frame_type, payload).to_be_bytes())?;
    Ok(())
}

/// A frame's checked head: what [`read_frame_body`] needs to read the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHead {
    /// Type + payload bytes, within the limit.
    pub len: usize,
    pub frame_type: u8,
}

/// Reads one frame, checking its head CRC and length before reading the body, then the body's
/// CRC. An I/O error (EOF, timeout) is returned as [`TransportError::Io`]; a bad length or
/// CRC as a protocol error.
pub fn read_frame<R: Read>(r: &mut R) -> Result<Frame> {
    let head = read_frame_head(r)?;
    read_frame_body(r, head)
}

/// Reads and checks a frame's head (CRC, then the length limit).
pub fn read_frame_head<R: Read>(r: &mut R) -> Result<FrameHead> {
    let mut head = [0u8; FRAME_HEAD_SIZE];
    r.read_exact(&mut head)?;
    let stored = u32::from_be_bytes(head[FRAME_HEAD_CRC_OFFSET..].try_into().expect("4 bytes"));
    let computed = head_crc(&head[..FRAME_HEAD_CRC_OFFSET]);
    if stored != computed {
        return Err(TransportError::FrameHeadChecksum { stored, computed });
    }
    let len = u32::from_be_bytes(head[..FRAME_LEN_SIZE].try_into().expect("4 bytes")) as usize;
    if !(FRAME_TYPE_SIZE..=MAX_FRAME_LEN).contains(&len) {
        return Err(TransportError::FrameLength {
            len: len as u64,
            max: MAX_FRAME_LEN,
        });
    }
    Ok(FrameHead {
        len,
        frame_type: head[FRAME_LEN_SIZE],
    })
}

/// Reads the payload and CRC of the frame whose `head` was just read, and checks the CRC.
pub fn read_frame_body<R: Read>(r: &mut R, head: FrameHead) -> Result<Frame> {
    let mut body = vec![0u8; head.len];
    body[0] = head.frame_type;
    r.read_exact(&mut body[FRAME_TYPE_SIZE..])?;
    let mut crc_bytes = [0u8; FRAME_CRC_SIZE];
    r.read_exact(&mut crc_bytes)?;
    let stored = u32::from_be_bytes(crc_bytes);
    let computed = crc32c::crc32c(&body);
    if stored != computed {
        return Err(TransportError::FrameChecksum { stored, computed });
    }
    Ok(Frame { body })
}

/// Splits `n` bytes off the front of `input`, or fails naming `what`.
fn take<'a>(input: &mut &'a [u8], n: usize, what: &str) -> Result<&'a [u8]> {
    if input.len() < n {
        return Err(TransportError::protocol(format!(
            "{what}: need {n} bytes, {} left",
            input.len()
        )));
    }
    let (head, rest) = input.split_at(n);
    *input = rest;
    Ok(head)
}

fn take_u32(input: &mut &[u8], what: &str) -> Result<u32> {
    let bytes = take(input, 4, what)?;
    Ok(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
}

fn take_u64(input: &mut &[u8], what: &str) -> Result<u64> {
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(take(input, 8, what)?);
    Ok(u64::from_be_bytes(bytes))
}

/// Builds a batch payload message by message, reusing its buffer between batches.
#[derive(Debug)]
pub struct BatchEncoder {
    buf: Vec<u8>,
    count: u32,
}

impl Default for BatchEncoder {
    fn default() -> Self {
        BatchEncoder {
            buf: vec![0; BATCH_COUNT_SIZE],
            count: 0,
        }
    }
}

impl BatchEncoder {
    /// Appends one message. A message that does not encode or exceeds [`MAX_MESSAGE_SIZE`]
    /// leaves the batch unchanged and is returned as an error.
    pub fn push(&mut self, message: &Message) -> Result<()> {
        debug_assert!((self.count as usize) < MAX_BATCH_MESSAGES);
        let start = self.buf.len();
        self.buf.extend_from_slice(&[0; BATCH_MSG_LEN_SIZE]);
        if let Err(e) = message.write_to_vec(&mut self.buf) {
            self.buf.truncate(start);
            return Err(e.into());
        }
        let size = self.buf.len() - start - BATCH_MSG_LEN_SIZE;
        if size > MAX_MESSAGE_SIZE {
            self.buf.truncate(start);
            return Err(TransportError::protocol(format!(
                "a {size}-byte raft message exceeds the {MAX_MESSAGE_SIZE}-byte limit"
            )));
        }
        self.buf[start..start + BATCH_MSG_LEN_SIZE].copy_from_slice(&(size as u32).to_be_bytes());
        self.count += 1;
        Ok(())
    }

    /// Messages in the batch.
    pub fn count(&self) -> usize {
        self.count as usize
    }

    /// Whether the batch should be closed: the message or byte target is reached.
    pub fn is_full(&self) -> bool {
        self.count as usize >= MAX_BATCH_MESSAGES || self.buf.len() >= BATCH_TARGET_SIZE
    }

    /// The payload of the batch frame (at least one message must have been pushed).
    pub fn payload(&mut self) -> &[u8] {
        debug_assert!(self.count > 0);
        self.buf[..BATCH_COUNT_SIZE].copy_from_slice(&self.count.to_be_bytes());
        &self.buf
    }

    /// Empties the batch, giving back memory a very large batch took.
    pub fn clear(&mut self) {
        self.buf.truncate(BATCH_COUNT_SIZE);
        self.buf.shrink_to(4 * BATCH_TARGET_SIZE);
        self.count = 0;
    }
}

/// Decodes a batch payload into its messages.
pub fn decode_batch(mut payload: &[u8]) -> Result<Vec<Message>> {
    let count = take_u32(&mut payload, "batch count")? as usize;
    if count == 0 || count > MAX_BATCH_MESSAGES {
        return Err(TransportError::protocol(format!(
            "batch count {count} outside 1..={MAX_BATCH_MESSAGES}"
        )));
    }
    let mut messages = Vec::with_capacity(count);
    for _ in 0..count {
        let size = take_u32(&mut payload, "batch message length")? as usize;
        let bytes = take(&mut payload, size, "batch message")?;
        messages.push(Message::parse_from_bytes(bytes)?);
    }
    if !payload.is_empty() {
        return Err(TransportError::protocol(format!(
            "{} bytes after the last message of a batch",
            payload.len()
        )));
    }
    Ok(messages)
}

/// Encodes a snapshot header payload: the db size, then the `MsgSnapshot` message.
pub fn encode_snapshot_header(db_size: u64, message: &Message) -> Result<Vec<u8>> {
    let mut payload = db_size.to_be_bytes().to_vec();
    message.write_to_vec(&mut payload)?;
    Ok(payload)
}

/// Decodes a snapshot header payload; the message must be a `MsgSnapshot`.
pub fn decode_snapshot_header(mut payload: &[u8]) -> Result<(u64, Message)> {
    let db_size = take_u64(&mut payload, "snapshot db size")?;
    debug_assert_eq!(SNAP_DB_SIZE_SIZE, 8);
    let message = Message::parse_from_bytes(payload)?;
    if message.get_msg_type() != MessageType::MsgSnapshot {
        return Err(TransportError::protocol(format!(
            "wrong raft message type {:?} in a snapshot header",
            message.get_msg_type()
        )));
    }
    Ok((db_size, message))
}

/// Encodes a snapshot result payload.
pub fn encode_snapshot_result(ok: bool, text: &str) -> Vec<u8> {
    let mut payload = Vec::with_capacity(SNAP_RESULT_OK_SIZE + text.len());
    payload.push(u8::from(ok));
    payload.extend_from_slice(text.as_bytes());
    payload
}

/// Decodes a snapshot result payload into (ok, text).
pub fn decode_snapshot_result(mut payload: &[u8]) -> Result<(bool, String)> {
    let ok = match take(&mut payload, SNAP_RESULT_OK_SIZE, "snapshot result")?[0] {
        0 => false,
        1 => true,
        other => {
            return Err(TransportError::protocol(format!(
                "snapshot result ok byte {other}"
            )))
        }
    };
    let text = String::from_utf8(payload.to_vec())
        .map_err(|_| TransportError::protocol("snapshot result text is not UTF-8"))?;
    Ok((ok, text))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn heartbeat(to: u64, commit: u64) -> Message {
        let mut m = Message::default();
        m.set_msg_type(MessageType::MsgHeartbeat);
        m.to = to;
        m.from = 1;
        m.term = 7;
        m.commit = commit;
        m
    }

    fn encoded(frame_type: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        write_frame(&mut out, frame_type, payload).expect("frame fits");
        out
    }

    #[test]
    fn frames_round_trip() {
        // Proves frames of several types and sizes read back exactly as written, in sequence.
        let payloads: [(u8, Vec<u8>); 3] = [
            (FRAME_KEEPALIVE, vec![]),
            (FRAME_BATCH, b"abc".to_vec()),
            (FRAME_SNAP_CHUNK, (0..100_000u32).map(|i| i as u8).collect()),
        ];
        let mut wire = Vec::new();
        for (t, p) in &payloads {
            write_frame(&mut wire, *t, p).expect("fits");
        }
        assert_eq!(
            wire.len(),
            payloads
                .iter()
                .map(|(_, p)| FRAME_OVERHEAD + p.len())
                .sum::<usize>()
        );
        let mut r = Cursor::new(wire);
        for (t, p) in &payloads {
            let f = read_frame(&mut r).expect("decodes");
            assert_eq!((f.frame_type(), f.payload()), (*t, &p[..]));
        }
        assert!(matches!(read_frame(&mut r), Err(TransportError::Io(_))));
    }

    #[test]
    fn keepalive_matches_the_worked_example() {
        // Proves the byte layout FORMAT.md shows for a keepalive.
        let wire = encoded(FRAME_KEEPALIVE, &[]);
        let mut expected = vec![0, 0, 0, 1, 2];
        expected.extend_from_slice(&crc32c::crc32c(&[0, 0, 0, 1, 2]).to_be_bytes());
        expected.extend_from_slice(&crc32c::crc32c(&[2]).to_be_bytes());
        assert_eq!(wire, expected);
    }

    #[test]
    fn corrupt_frames_are_detected() {
        // Proves a flipped payload bit fails the body CRC; a flipped type or length fails the
        // head CRC before any body byte is read; a zero or oversize length (with a matching
        // head CRC) fails the limit.
        let good = encoded(FRAME_BATCH, b"payload");
        let mut bad_payload = good.clone();
        bad_payload[FRAME_HEAD_SIZE + 2] ^= 0x01;
        let err = read_frame(&mut Cursor::new(bad_payload)).expect_err("corrupt");
        assert!(matches!(err, TransportError::FrameChecksum { .. }), "{err}");
        let mut bad_type = good.clone();
        bad_type[4] = FRAME_KEEPALIVE;
        let mut bad_len = good.clone();
        bad_len[1] = 0x10; // a megabyte more: must not be waited for
        for bad in [bad_type, bad_len] {
            // Only the head is given: the reader must refuse without asking for more.
            let err = read_frame(&mut Cursor::new(&bad[..FRAME_HEAD_SIZE])).expect_err("corrupt");
            assert!(
                matches!(err, TransportError::FrameHeadChecksum { .. }),
                "{err}"
            );
        }
        let with_len = |len: u32| {
            let mut head = len.to_be_bytes().to_vec();
            head.push(FRAME_BATCH);
            let crc = crc32c::crc32c(&head);
            head.extend_from_slice(&crc.to_be_bytes());
            head
        };
        for bad in [with_len(MAX_FRAME_LEN as u32 + 1), with_len(0)] {
            let err = read_frame(&mut Cursor::new(bad)).expect_err("bad length");
            assert!(matches!(err, TransportError::FrameLength { .. }), "{err}");
        }
        let too_big = vec![0u8; MAX_FRAME_LEN];
        assert!(matches!(
            write_frame(&mut Vec::new(), FRAME_SNAP_CHUNK, &too_big),
            Err(TransportError::FrameLength { .. })
        ));
    }

    #[test]
    fn batches_round_trip_and_reject_malformed_payloads() {
        // Proves batch encoding is lossless and truncated, padded or empty batches are errors.
        let messages: Vec<Message> = (0..50).map(|i| heartbeat(2, i)).collect();
        let mut batch = BatchEncoder::default();
        for m in &messages {
            batch.push(m).expect("encodes");
        }
        assert_eq!(batch.count(), 50);
        let payload = batch.payload().to_vec();
        assert_eq!(decode_batch(&payload).expect("decodes"), messages);

        assert!(decode_batch(&payload[..payload.len() - 1]).is_err());
        let mut padded = payload.clone();
        padded.push(0);
        assert!(decode_batch(&padded).is_err());
        assert!(decode_batch(&0u32.to_be_bytes()).is_err());
        assert!(decode_batch(&[]).is_err());
        let mut huge_len = payload.clone();
        huge_len[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(decode_batch(&huge_len).is_err());

        batch.clear();
        batch.push(&messages[3]).expect("encodes");
        assert_eq!(
            decode_batch(batch.payload()).expect("decodes"),
            vec![messages[3].clone()]
        );
    }

    #[test]
    fn snapshot_payloads_round_trip() {
        // Proves the header and result payloads decode to what was encoded, and a header
        // holding a message other than MsgSnapshot is refused.
        let mut m = heartbeat(2, 0);
        m.set_msg_type(MessageType::MsgSnapshot);
        m.mut_snapshot().mut_metadata().index = 0x1234;
        let payload = encode_snapshot_header(3 << 20, &m).expect("encodes");
        assert_eq!(
            decode_snapshot_header(&payload).expect("decodes"),
            (3 << 20, m)
        );
        let not_snap = encode_snapshot_header(1, &heartbeat(2, 0)).expect("encodes");
        assert!(decode_snapshot_header(&not_snap).is_err());
        assert!(decode_snapshot_header(&[0; 4]).is_err());

        let result = encode_snapshot_result(false, "size mismatch");
        assert_eq!(
            decode_snapshot_result(&result).expect("decodes"),
            (false, "size mismatch".to_string())
        );
        assert_eq!(
            decode_snapshot_result(&[1]).expect("decodes"),
            (true, String::new())
        );
        assert!(decode_snapshot_result(&[2]).is_err());
        assert!(decode_snapshot_result(&[]).is_err());
    }
}
