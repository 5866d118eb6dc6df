//! The transport's error type. Everything that arrives from the network is validated into one
//! of these values; none of them panics. Raft traffic never returns them through the API (the
//! raft loop sees [`super::PeerEvent`]s): there they decide whether a connection closes and
//! what is logged. The Rpc client functions ([`super::fetch_members`],
//! [`super::promote_member`]) return them to their caller.

use super::hello::Status;
use super::rpc::RpcFailure;

/// Why a connection, a frame or a hello failed.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// A socket or file operation failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The other side broke the wire format (FORMAT.md); the connection is closed.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// A frame's length field is 0 or exceeds the limit.
    #[error("protocol error: frame length {len} outside 1..={max}")]
    FrameLength { len: u64, max: usize },
    /// A frame head's CRC-32C does not match its length and type.
    #[error(
        "protocol error: frame head checksum mismatch (stored {stored:08x}, got {computed:08x})"
    )]
    FrameHeadChecksum { stored: u32, computed: u32 },
    /// A frame's CRC-32C does not match its type and payload.
    #[error(
        "protocol error: frame checksum mismatch (stored {stored:08x}, computed {computed:08x})"
    )]
    FrameChecksum { stored: u32, computed: u32 },
    /// A raft message did not encode or decode.
    #[error("raft message encoding: {0}")]
    Codec(#[from] protobuf::ProtobufError),
    /// A peer URL cannot be dialed.
    #[error("bad peer URL {url:?}: {why}")]
    BadUrl { url: String, why: &'static str },
    /// The peer answered the hello with a refusal.
    #[error("refused: {status:?} (peer cluster ID {peer_cluster_id:x})")]
    Refused {
        status: Status,
        peer_cluster_id: u64,
    },
    /// An Rpc was asked of no URL at all.
    #[error("no peer URLs to ask")]
    NoPeerUrls,
    /// The peer answered an Rpc request with a failure.
    #[error("peer answered {0}")]
    PeerFailed(RpcFailure),
}

impl TransportError {
    /// A protocol error with the given description.
    pub fn protocol(what: impl Into<String>) -> TransportError {
        TransportError::Protocol(what.into())
    }
}

/// The transport's result type.
pub type Result<T> = std::result::Result<T, TransportError>;
