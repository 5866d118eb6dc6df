//! The connection handshake: the dialer's hello (who it is, which cluster, whom it wants, what
//! the connection will carry) and the receiver's one-status reply. Layout in FORMAT.md and
//! [`super::layout`].
//!
//! Pure codecs over `Read`; the receiver's decision (which status to answer) is
//! [`check_hello`], a pure function of the hello and the receiver's identity, so the policy is
//! testable without sockets.

use std::io::Read;

use super::error::{Result, TransportError};
use super::layout::*;

/// What a connection carries after the handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Batches of raft messages and keepalives.
    Messages,
    /// One snapshot: header, chunks, trailer, and a result frame back.
    Snapshot,
    /// One request frame and one answer frame back; may come from a member not yet joined.
    Rpc,
}

impl Kind {
    fn to_wire(self) -> u8 {
        match self {
            Kind::Messages => KIND_MESSAGES,
            Kind::Snapshot => KIND_SNAPSHOT,
            Kind::Rpc => KIND_RPC,
        }
    }

    fn from_wire(value: u8) -> Option<Kind> {
        match value {
            KIND_MESSAGES => Some(Kind::Messages),
            KIND_SNAPSHOT => Some(Kind::Snapshot),
            KIND_RPC => Some(Kind::Rpc),
            _ => None,
        }
    }
}

/// The dialer's hello.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hello {
    pub kind: Kind,
    pub cluster_id: u64,
    pub from_id: u64,
    pub to_id: u64,
    /// The dialer's advertised peer URLs, comma-joined.
    pub from_urls: String,
}

/// The receiver's answer to a hello.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Ok,
    ClusterIdMismatch,
    SenderRemoved,
    ToMismatch,
    /// Reserved: never sent, understood when received.
    SenderUnknown,
    VersionMismatch,
}

impl Status {
    fn to_wire(self) -> u8 {
        match self {
            Status::Ok => 0,
            Status::ClusterIdMismatch => 1,
            Status::SenderRemoved => 2,
            Status::ToMismatch => 3,
            Status::SenderUnknown => 4,
            Status::VersionMismatch => 5,
        }
    }

    fn from_wire(value: u8) -> Option<Status> {
        Some(match value {
            0 => Status::Ok,
            1 => Status::ClusterIdMismatch,
            2 => Status::SenderRemoved,
            3 => Status::ToMismatch,
            4 => Status::SenderUnknown,
            5 => Status::VersionMismatch,
            _ => return None,
        })
    }
}

/// The receiver's reply: a status and its own cluster ID.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reply {
    pub status: Status,
    pub cluster_id: u64,
}

/// Encodes a hello; fails if the URL field does not fit its `u16` length.
pub fn encode_hello(hello: &Hello) -> Result<Vec<u8>> {
    let urls = hello.from_urls.as_bytes();
    if urls.len() > HELLO_MAX_URLS_LEN {
        return Err(TransportError::protocol(format!(
            "advertised peer URLs take {} bytes, more than the hello's {HELLO_MAX_URLS_LEN}",
            urls.len()
        )));
    }
    let mut out = vec![0u8; HELLO_FIXED_SIZE];
    out[HELLO_MAGIC_OFFSET..HELLO_VERSION_OFFSET].copy_from_slice(&MAGIC);
    out[HELLO_VERSION_OFFSET..HELLO_KIND_OFFSET].copy_from_slice(&VERSION.to_be_bytes());
    out[HELLO_KIND_OFFSET] = hello.kind.to_wire();
    out[HELLO_FLAGS_OFFSET] = 0;
    out[HELLO_CLUSTER_ID_OFFSET..HELLO_FROM_ID_OFFSET]
        .copy_from_slice(&hello.cluster_id.to_be_bytes());
    out[HELLO_FROM_ID_OFFSET..HELLO_TO_ID_OFFSET].copy_from_slice(&hello.from_id.to_be_bytes());
    out[HELLO_TO_ID_OFFSET..HELLO_URLS_LEN_OFFSET].copy_from_slice(&hello.to_id.to_be_bytes());
    out[HELLO_URLS_LEN_OFFSET..HELLO_FIXED_SIZE]
        .copy_from_slice(&(urls.len() as u16).to_be_bytes());
    out.extend_from_slice(urls);
    Ok(out)
}

/// What a receiver read from a dialer.
#[derive(Debug, PartialEq, Eq)]
pub enum ReadHello {
    /// A version-1 hello.
    Hello(Hello),
    /// The right magic but another version: answer [`Status::VersionMismatch`].
    UnsupportedVersion(u16),
}

fn be_u64(bytes: &[u8], offset: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[offset..offset + 8]);
    u64::from_be_bytes(b)
}

/// Reads a hello. Bad magic, an unknown kind, nonzero flags or non-UTF-8 URLs are protocol
/// errors (the receiver closes without a reply).
pub fn read_hello<R: Read>(r: &mut R) -> Result<ReadHello> {
    let mut fixed = [0u8; HELLO_FIXED_SIZE];
    r.read_exact(&mut fixed[..HELLO_PREFIX_SIZE])?;
    if fixed[HELLO_MAGIC_OFFSET..HELLO_VERSION_OFFSET] != MAGIC {
        return Err(TransportError::protocol("bad hello magic"));
    }
    let version =
        u16::from_be_bytes([fixed[HELLO_VERSION_OFFSET], fixed[HELLO_VERSION_OFFSET + 1]]);
    if version != VERSION {
        return Ok(ReadHello::UnsupportedVersion(version));
    }
    r.read_exact(&mut fixed[HELLO_PREFIX_SIZE..])?;
    let kind = Kind::from_wire(fixed[HELLO_KIND_OFFSET]).ok_or_else(|| {
        TransportError::protocol(format!("unknown hello kind {}", fixed[HELLO_KIND_OFFSET]))
    })?;
    if fixed[HELLO_FLAGS_OFFSET] != 0 {
        return Err(TransportError::protocol(format!(
            "hello flags {:#x} in version {VERSION}",
            fixed[HELLO_FLAGS_OFFSET]
        )));
    }
    let urls_len = u16::from_be_bytes([
        fixed[HELLO_URLS_LEN_OFFSET],
        fixed[HELLO_URLS_LEN_OFFSET + 1],
    ]);
    let mut urls = vec![0u8; usize::from(urls_len)];
    r.read_exact(&mut urls)?;
    let from_urls = String::from_utf8(urls)
        .map_err(|_| TransportError::protocol("hello peer URLs are not UTF-8"))?;
    Ok(ReadHello::Hello(Hello {
        kind,
        cluster_id: be_u64(&fixed, HELLO_CLUSTER_ID_OFFSET),
        from_id: be_u64(&fixed, HELLO_FROM_ID_OFFSET),
        to_id: be_u64(&fixed, HELLO_TO_ID_OFFSET),
        from_urls,
    }))
}

/// The status a receiver answers: cluster ID first, then the target, then the removed set. An
/// Rpc hello may leave the cluster ID and the target unknown ([`UNKNOWN_ID`]): those checks
/// are skipped for it, and only for it.
pub fn check_hello(
    hello: &Hello,
    cluster_id: u64,
    member_id: u64,
    is_removed: impl FnOnce(u64) -> bool,
) -> Status {
    let unknown = |id| hello.kind == Kind::Rpc && id == UNKNOWN_ID;
    if hello.cluster_id != cluster_id && !unknown(hello.cluster_id) {
        Status::ClusterIdMismatch
    } else if hello.to_id != member_id && !unknown(hello.to_id) {
        Status::ToMismatch
    } else if is_removed(hello.from_id) {
        Status::SenderRemoved
    } else {
        Status::Ok
    }
}

/// Encodes a reply.
pub fn encode_reply(reply: Reply) -> [u8; REPLY_SIZE] {
    let mut out = [0u8; REPLY_SIZE];
    out[REPLY_STATUS_OFFSET] = reply.status.to_wire();
    out[REPLY_CLUSTER_ID_OFFSET..REPLY_SIZE].copy_from_slice(&reply.cluster_id.to_be_bytes());
    out
}

/// Reads a reply; an unknown status is a protocol error.
pub fn read_reply<R: Read>(r: &mut R) -> Result<Reply> {
    let mut bytes = [0u8; REPLY_SIZE];
    r.read_exact(&mut bytes)?;
    let status = Status::from_wire(bytes[REPLY_STATUS_OFFSET]).ok_or_else(|| {
        TransportError::protocol(format!(
            "unknown reply status {}",
            bytes[REPLY_STATUS_OFFSET]
        ))
    })?;
    Ok(Reply {
        status,
        cluster_id: be_u64(&bytes, REPLY_CLUSTER_ID_OFFSET),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn hello() -> Hello {
        Hello {
            kind: Kind::Snapshot,
            cluster_id: 0xcdef,
            from_id: 0x1111,
            to_id: 0x2222,
            from_urls: "http://127.0.0.1:2380,http://10.0.0.1:2380".into(),
        }
    }

    #[test]
    fn hello_and_reply_round_trip() {
        // Proves hello and reply encodings decode to the same values, at the documented offsets.
        let h = hello();
        let wire = encode_hello(&h).expect("fits");
        assert_eq!(&wire[..8], b"OXCDPEER");
        assert_eq!(&wire[8..12], &[0, 2, KIND_SNAPSHOT, 0]);
        assert_eq!(wire.len(), HELLO_FIXED_SIZE + h.from_urls.len());
        assert_eq!(
            read_hello(&mut Cursor::new(wire)).expect("decodes"),
            ReadHello::Hello(h)
        );

        for status in [Status::Ok, Status::SenderRemoved, Status::VersionMismatch] {
            let reply = Reply {
                status,
                cluster_id: 42,
            };
            let wire = encode_reply(reply);
            assert_eq!(read_reply(&mut Cursor::new(wire)).expect("decodes"), reply);
        }
        let mut bad = encode_reply(Reply {
            status: Status::Ok,
            cluster_id: 1,
        });
        bad[0] = 9;
        assert!(read_reply(&mut Cursor::new(bad)).is_err());
    }

    #[test]
    fn malformed_hellos_are_refused() {
        // Proves bad magic, unknown kind, flags and truncation are errors, and another version
        // is reported before the rest of the hello is read.
        let good = encode_hello(&hello()).expect("fits");
        let mut magic = good.clone();
        magic[0] = b'X';
        let mut kind = good.clone();
        kind[HELLO_KIND_OFFSET] = 9;
        let mut flags = good.clone();
        flags[HELLO_FLAGS_OFFSET] = 1;
        let truncated = good[..good.len() - 1].to_vec();
        for bad in [magic, kind, flags, truncated] {
            assert!(read_hello(&mut Cursor::new(bad)).is_err());
        }
        let mut other = good[..HELLO_PREFIX_SIZE].to_vec();
        other[HELLO_VERSION_OFFSET + 1] = 1;
        assert_eq!(
            read_hello(&mut Cursor::new(other)).expect("prefix only"),
            ReadHello::UnsupportedVersion(1)
        );
        let long = Hello {
            from_urls: "x".repeat(HELLO_MAX_URLS_LEN + 1),
            ..hello()
        };
        assert!(encode_hello(&long).is_err());
    }

    #[test]
    fn check_hello_orders_its_refusals() {
        // Proves the receiver's policy: cluster ID, then target, then removed sender.
        let h = hello();
        assert_eq!(
            check_hello(&h, 1, 0x2222, |_| true),
            Status::ClusterIdMismatch
        );
        assert_eq!(check_hello(&h, 0xcdef, 3, |_| true), Status::ToMismatch);
        assert_eq!(
            check_hello(&h, 0xcdef, 0x2222, |id| id == 0x1111),
            Status::SenderRemoved
        );
        assert_eq!(check_hello(&h, 0xcdef, 0x2222, |_| false), Status::Ok);
    }

    #[test]
    fn only_rpc_hellos_may_leave_cluster_and_target_unknown() {
        // Proves 0 skips the cluster ID and target checks for kind Rpc only, while a non-zero
        // mismatch and a removed sender are still refused.
        let unknown = Hello {
            kind: Kind::Rpc,
            cluster_id: 0,
            to_id: 0,
            ..hello()
        };
        assert_eq!(check_hello(&unknown, 0xcdef, 0x2222, |_| false), Status::Ok);
        assert_eq!(
            check_hello(&unknown, 0xcdef, 0x2222, |_| true),
            Status::SenderRemoved
        );
        let rpc = Hello {
            kind: Kind::Rpc,
            ..hello()
        };
        assert_eq!(
            check_hello(&rpc, 1, 0x2222, |_| false),
            Status::ClusterIdMismatch
        );
        assert_eq!(check_hello(&rpc, 0xcdef, 3, |_| false), Status::ToMismatch);
        for kind in [Kind::Messages, Kind::Snapshot] {
            let h = Hello {
                kind,
                ..unknown.clone()
            };
            assert_eq!(
                check_hello(&h, 0xcdef, 0x2222, |_| false),
                Status::ClusterIdMismatch
            );
            let h = Hello {
                kind,
                cluster_id: 0xcdef,
                ..unknown.clone()
            };
            assert_eq!(
                check_hello(&h, 0xcdef, 0x2222, |_| false),
                Status::ToMismatch
            );
        }
        let wire = encode_hello(&unknown).expect("fits");
        assert_eq!(wire[HELLO_KIND_OFFSET], KIND_RPC);
        assert_eq!(
            read_hello(&mut Cursor::new(wire)).expect("decodes"),
            ReadHello::Hello(unknown)
        );
    }
}
