//! The peer wire format's numbers, once: offsets and sizes of the hello, the reply and the frame,
//! frame types, limits and timeouts. `FORMAT.md` next to this file is the prose version; the
//! two must agree, and the compile-time asserts below pin the sizes the tables state.
//!
//! Pure constants; no code here reads or writes a socket.

use std::time::Duration;

/// The hello's first 8 bytes.
pub const MAGIC: [u8; 8] = *b"OXCDPEER";
/// The only protocol version this code speaks.
pub const VERSION: u16 = 2;

/// Hello field offsets (see FORMAT.md "Hello").
pub const HELLO_MAGIC_OFFSET: usize = 0;
pub const HELLO_VERSION_OFFSET: usize = 8;
pub const HELLO_KIND_OFFSET: usize = 10;
pub const HELLO_FLAGS_OFFSET: usize = 11;
pub const HELLO_CLUSTER_ID_OFFSET: usize = 12;
pub const HELLO_FROM_ID_OFFSET: usize = 20;
pub const HELLO_TO_ID_OFFSET: usize = 28;
pub const HELLO_URLS_LEN_OFFSET: usize = 36;
/// Magic and version: what a receiver reads before deciding it understands the rest.
pub const HELLO_PREFIX_SIZE: usize = HELLO_KIND_OFFSET;
/// Everything before the URL bytes.
pub const HELLO_FIXED_SIZE: usize = HELLO_URLS_LEN_OFFSET + 2;
/// The longest URL field a `u16` length can describe.
pub const HELLO_MAX_URLS_LEN: usize = u16::MAX as usize;

/// Hello `kind` values.
pub const KIND_MESSAGES: u8 = 1;
pub const KIND_SNAPSHOT: u8 = 2;
pub const KIND_RPC: u8 = 3;
/// The cluster, sender or target ID an Rpc hello carries when the dialer does not know it.
pub const UNKNOWN_ID: u64 = 0;

/// Reply field offsets and size (see FORMAT.md "Reply").
pub const REPLY_STATUS_OFFSET: usize = 0;
pub const REPLY_CLUSTER_ID_OFFSET: usize = 1;
pub const REPLY_SIZE: usize = 9;

/// Frame layout: `u32 len`, `u8 type`, `u32 crc32c(len ‖ type)`, payload,
/// `u32 crc32c(type ‖ payload)`.
pub const FRAME_LEN_SIZE: usize = 4;
pub const FRAME_TYPE_SIZE: usize = 1;
pub const FRAME_HEAD_CRC_SIZE: usize = 4;
pub const FRAME_CRC_SIZE: usize = 4;
/// Where the head's CRC sits (after the length and the type it covers).
pub const FRAME_HEAD_CRC_OFFSET: usize = FRAME_LEN_SIZE + FRAME_TYPE_SIZE;
/// The bytes before the payload.
pub const FRAME_HEAD_SIZE: usize = FRAME_LEN_SIZE + FRAME_TYPE_SIZE + FRAME_HEAD_CRC_SIZE;
/// Bytes a frame adds around its payload.
pub const FRAME_OVERHEAD: usize = FRAME_HEAD_SIZE + FRAME_CRC_SIZE;
/// The largest `len` (type + payload) a reader accepts.
pub const MAX_FRAME_LEN: usize = 64 << 20;

/// Messages-connection frame types.
pub const FRAME_BATCH: u8 = 1;
pub const FRAME_KEEPALIVE: u8 = 2;
/// Snapshot-connection frame types.
pub const FRAME_SNAP_HEADER: u8 = 10;
pub const FRAME_SNAP_CHUNK: u8 = 11;
pub const FRAME_SNAP_TRAILER: u8 = 12;
pub const FRAME_SNAP_RESULT: u8 = 13;

/// Batch payload: `u32 count`, then per message `u32 len` + bytes.
pub const BATCH_COUNT_SIZE: usize = 4;
pub const BATCH_MSG_LEN_SIZE: usize = 4;
/// etcd's `streamBufSize`: the per-peer queue, and the most messages in one batch.
pub const MAX_BATCH_MESSAGES: usize = 4096;
/// A batch is closed once its payload reaches this many bytes.
pub const BATCH_TARGET_SIZE: usize = 1 << 20;
/// The longest single encoded message the sender puts in a batch.
pub const MAX_MESSAGE_SIZE: usize = 32 << 20;

/// Rpc-connection frame types: requests (dialer → receiver), then answers.
pub const FRAME_RPC_MEMBERS: u8 = 20;
pub const FRAME_RPC_PROMOTE: u8 = 21;
pub const FRAME_RPC_MEMBERS_ANSWER: u8 = 22;
pub const FRAME_RPC_FAILURE: u8 = 23;

/// Promote request payload: `u64 member_id`.
pub const RPC_PROMOTE_SIZE: usize = 8;
/// Members answer payload: `u64 cluster_id`, then the JSON array.
pub const RPC_CLUSTER_ID_SIZE: usize = 8;
/// Failure answer payload: `u8 code`, then the message text.
pub const RPC_CODE_SIZE: usize = 1;
/// Failure codes.
pub const RPC_CODE_NOT_FOUND: u8 = 1;
pub const RPC_CODE_FAILED_PRECONDITION: u8 = 2;
pub const RPC_CODE_TIMEOUT: u8 = 3;
pub const RPC_CODE_OTHER: u8 = 4;

/// Snapshot header payload: `u64 db_size` then the message.
pub const SNAP_DB_SIZE_SIZE: usize = 8;
/// The most db bytes in one chunk frame.
pub const SNAP_CHUNK_SIZE: usize = 1 << 20;
/// Trailer payload: SHA-256 of the db.
pub const SNAP_TRAILER_SIZE: usize = 32;
/// Result payload: `u8 ok` then text.
pub const SNAP_RESULT_OK_SIZE: usize = 1;

/// Timeouts (see FORMAT.md "Limits and timeouts").
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(5);
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_millis(1500);
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// The slowest a Messages frame's payload may arrive once its head is read: a frame must end
/// within `READ_TIMEOUT + len / FRAME_MIN_BYTES_PER_SEC` (64 MiB: 2 min 13 s).
pub const FRAME_MIN_BYTES_PER_SEC: u64 = 512 << 10;
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
pub const SNAP_RESULT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long an Rpc receiver waits for the request frame after its reply.
pub const RPC_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
pub const BACKOFF_MIN: Duration = Duration::from_millis(50);
pub const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// At most one `Unreachable` event per peer in this interval.
pub const UNREACHABLE_INTERVAL: Duration = Duration::from_millis(100);

const _: () = assert!(MAGIC.len() == 8);
const _: () = assert!(HELLO_MAGIC_OFFSET + MAGIC.len() == HELLO_VERSION_OFFSET);
const _: () = assert!(HELLO_VERSION_OFFSET + 2 == HELLO_KIND_OFFSET);
const _: () = assert!(HELLO_KIND_OFFSET + 1 == HELLO_FLAGS_OFFSET);
const _: () = assert!(HELLO_FLAGS_OFFSET + 1 == HELLO_CLUSTER_ID_OFFSET);
const _: () = assert!(HELLO_CLUSTER_ID_OFFSET + 8 == HELLO_FROM_ID_OFFSET);
const _: () = assert!(HELLO_FROM_ID_OFFSET + 8 == HELLO_TO_ID_OFFSET);
const _: () = assert!(HELLO_TO_ID_OFFSET + 8 == HELLO_URLS_LEN_OFFSET);
const _: () = assert!(HELLO_PREFIX_SIZE == 10);
const _: () = assert!(HELLO_FIXED_SIZE == 38);
const _: () = assert!(REPLY_STATUS_OFFSET + 1 == REPLY_CLUSTER_ID_OFFSET);
const _: () = assert!(REPLY_CLUSTER_ID_OFFSET + 8 == REPLY_SIZE);
const _: () = assert!(FRAME_HEAD_SIZE == 9);
const _: () = assert!(FRAME_OVERHEAD == 13);
const _: () = assert!(MAX_FRAME_LEN == 67_108_864);
const _: () = assert!(MAX_FRAME_LEN <= u32::MAX as usize);
// A full batch (target reached just before one more maximal message) fits in one frame.
const _: () = assert!(
    FRAME_TYPE_SIZE + BATCH_COUNT_SIZE + BATCH_TARGET_SIZE + BATCH_MSG_LEN_SIZE + MAX_MESSAGE_SIZE
        <= MAX_FRAME_LEN
);
const _: () = assert!(FRAME_TYPE_SIZE + SNAP_CHUNK_SIZE <= MAX_FRAME_LEN);
const _: () = assert!(SNAP_TRAILER_SIZE == 32);
const _: () = assert!(KIND_RPC == 3 && UNKNOWN_ID == 0);
const _: () = assert!(RPC_PROMOTE_SIZE == 8 && RPC_CLUSTER_ID_SIZE == 8 && RPC_CODE_SIZE == 1);
// Rpc frame types are distinct from the Messages and Snapshot ones.
const _: () = assert!(FRAME_SNAP_RESULT < FRAME_RPC_MEMBERS);
const _: () = assert!(FRAME_RPC_MEMBERS + 1 == FRAME_RPC_PROMOTE);
const _: () = assert!(FRAME_RPC_PROMOTE + 1 == FRAME_RPC_MEMBERS_ANSWER);
const _: () = assert!(FRAME_RPC_MEMBERS_ANSWER + 1 == FRAME_RPC_FAILURE);
const _: () = assert!(RPC_CODE_NOT_FOUND == 1 && RPC_CODE_OTHER == 4);
