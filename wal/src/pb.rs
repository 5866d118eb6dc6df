//! Protobuf messages of the WAL and snap files, wire-compatible with etcd 3.4's `walpb`,
//! `raftpb` and `snappb` (proto2 with gogoproto `nullable=false`: scalar fields are always
//! written, in tag order; repeated scalars unpacked).
//!
//! Also the strict shape check that stands in for the checksum the format lacks on a record's
//! `type` field: a body must carry exactly the fields etcd always writes for its type.
//! Pure code, no I/O.

use prost::Message;

/// `walpb.Record`: one frame's payload. The WAL writes it with `layout::append_frame`; this
/// struct is used to decode.
#[derive(Clone, PartialEq, Message)]
pub struct Record {
    /// One of `layout::RecordType` (kept raw so unknown types can be reported).
    #[prost(int64, required, tag = "1")]
    pub record_type: i64,
    /// Running CRC after `data` (or, for a crc record, the previous segment's CRC).
    #[prost(uint32, required, tag = "2")]
    pub crc: u32,
    /// The payload, absent for crc records.
    #[prost(bytes = "vec", optional, tag = "3")]
    pub data: Option<Vec<u8>>,
}

/// `raftpb.EntryType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum EntryType {
    /// An application command.
    EntryNormal = 0,
    /// A `raftpb.ConfChange`.
    EntryConfChange = 1,
    /// A `raftpb.ConfChangeV2`.
    EntryConfChangeV2 = 2,
}

/// `raftpb.Entry`: one raft log entry.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct Entry {
    /// An `EntryType` value.
    #[prost(enumeration = "EntryType", required, tag = "1")]
    pub entry_type: i32,
    /// The term of the leader that created the entry.
    #[prost(uint64, required, tag = "2")]
    pub term: u64,
    /// The entry's position in the log.
    #[prost(uint64, required, tag = "3")]
    pub index: u64,
    /// The command; written only when non-empty.
    #[prost(bytes = "vec", tag = "4")]
    pub data: Vec<u8>,
}

impl Entry {
    /// A normal entry.
    pub fn normal(term: u64, index: u64, data: Vec<u8>) -> Entry {
        Entry {
            entry_type: EntryType::EntryNormal as i32,
            term,
            index,
            data,
        }
    }
}

/// `raftpb.HardState`: the raft state that must survive a restart.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Message)]
pub struct HardState {
    /// Current term.
    #[prost(uint64, required, tag = "1")]
    pub term: u64,
    /// Who this member voted for in `term` (0: nobody).
    #[prost(uint64, required, tag = "2")]
    pub vote: u64,
    /// Highest index known committed.
    #[prost(uint64, required, tag = "3")]
    pub commit: u64,
}

impl HardState {
    /// raft's `IsEmptyHardState`: all three fields zero, never written to the WAL.
    pub fn is_empty(&self) -> bool {
        *self == HardState::default()
    }
}

/// `walpb.Snapshot`: the mark a WAL records when a raft snapshot is taken, and the position
/// a WAL is opened at.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Message)]
pub struct SnapshotMark {
    /// The snapshot's last included index.
    #[prost(uint64, required, tag = "1")]
    pub index: u64,
    /// The term of that entry.
    #[prost(uint64, required, tag = "2")]
    pub term: u64,
}

/// `raftpb.ConfState`: the membership a snapshot was taken with.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct ConfState {
    /// Voters of the incoming configuration.
    #[prost(uint64, repeated, packed = "false", tag = "1")]
    pub voters: Vec<u64>,
    /// Learners of the incoming configuration.
    #[prost(uint64, repeated, packed = "false", tag = "2")]
    pub learners: Vec<u64>,
    /// Voters of the outgoing configuration (joint consensus).
    #[prost(uint64, repeated, packed = "false", tag = "3")]
    pub voters_outgoing: Vec<u64>,
    /// Nodes that become learners when the outgoing configuration is dropped.
    #[prost(uint64, repeated, packed = "false", tag = "4")]
    pub learners_next: Vec<u64>,
    /// Whether the joint configuration is left automatically.
    #[prost(bool, required, tag = "5")]
    pub auto_leave: bool,
}

/// `raftpb.SnapshotMetadata`.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct SnapshotMetadata {
    /// Membership at the snapshot.
    #[prost(message, required, tag = "1")]
    pub conf_state: ConfState,
    /// Last index included.
    #[prost(uint64, required, tag = "2")]
    pub index: u64,
    /// Term of that entry.
    #[prost(uint64, required, tag = "3")]
    pub term: u64,
}

/// `raftpb.Snapshot`: what a snap file holds.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct Snapshot {
    /// The application's state (etcd 3.4: its v2 store as JSON); written only when non-empty.
    #[prost(bytes = "vec", tag = "1")]
    pub data: Vec<u8>,
    /// Position and membership.
    #[prost(message, required, tag = "2")]
    pub metadata: SnapshotMetadata,
}

impl Snapshot {
    /// raft's `IsEmptySnap`: index 0, never saved.
    pub fn is_empty(&self) -> bool {
        self.metadata.index == 0
    }
}

/// `snappb.Snapshot`: the envelope of a snap file.
#[derive(Clone, PartialEq, Message)]
pub struct SnapFile {
    /// CRC-32C (seed 0) of `data`.
    #[prost(uint32, required, tag = "1")]
    pub crc: u32,
    /// An encoded `raftpb.Snapshot`.
    #[prost(bytes = "vec", optional, tag = "2")]
    pub data: Option<Vec<u8>>,
}

const VARINT: u8 = 0;
const LEN: u8 = 2;

/// Field layout of a `walpb.Record`: type, crc, then optionally data.
pub(crate) const RECORD_SHAPE: Shape = Shape {
    fields: &[(1, VARINT), (2, VARINT), (3, LEN)],
    required: 2,
};
/// `raftpb.Entry`: Type, Term, Index always; Data when non-empty.
pub(crate) const ENTRY_SHAPE: Shape = Shape {
    fields: &[(1, VARINT), (2, VARINT), (3, VARINT), (4, LEN)],
    required: 3,
};
/// `raftpb.HardState`: term, vote, commit.
pub(crate) const HARD_STATE_SHAPE: Shape = Shape {
    fields: &[(1, VARINT), (2, VARINT), (3, VARINT)],
    required: 3,
};
/// `walpb.Snapshot`: index, term.
pub(crate) const SNAPSHOT_MARK_SHAPE: Shape = Shape {
    fields: &[(1, VARINT), (2, VARINT)],
    required: 2,
};

/// The exact sequence of fields a message is written with: the first `required` of `fields`
/// always, the rest optionally, all in this order, each at most once.
pub(crate) struct Shape {
    fields: &'static [(u32, u8)],
    required: usize,
}

impl Shape {
    /// True when `bytes` is a sequence of exactly the fields this shape allows, in order.
    pub(crate) fn matches(&self, mut bytes: &[u8]) -> bool {
        let mut seen = 0;
        while !bytes.is_empty() {
            let Ok(key) = prost::encoding::decode_varint(&mut bytes) else {
                return false;
            };
            let Some(&(tag, wire)) = self.fields.get(seen) else {
                return false;
            };
            if key != (u64::from(tag) << 3 | u64::from(wire)) {
                return false;
            }
            let Ok(value) = prost::encoding::decode_varint(&mut bytes) else {
                return false;
            };
            if wire == LEN {
                if value > bytes.len() as u64 {
                    return false;
                }
                bytes = &bytes[value as usize..];
            }
            seen += 1;
        }
        seen >= self.required
    }
}

/// Decodes `bytes` as `M` if they have `shape`; `None` otherwise.
pub(crate) fn decode_shaped<M: Message + Default>(shape: &Shape, bytes: &[u8]) -> Option<M> {
    if !shape.matches(bytes) {
        return None;
    }
    M::decode(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::{append_frame, RecordType};

    #[test]
    fn encodings_match_etcds_gogoproto_bytes() {
        // Proves byte-exact etcd encodings: tag order, zero fields written, no packing.
        let e = Entry::normal(2, 3, b"ab".to_vec());
        assert_eq!(
            e.encode_to_vec(),
            [0x08, 0, 0x10, 2, 0x18, 3, 0x22, 2, b'a', b'b']
        );
        assert_eq!(
            Entry::normal(0, 0, vec![]).encode_to_vec(),
            [8, 0, 0x10, 0, 0x18, 0]
        );
        let hs = HardState {
            term: 1,
            vote: 0,
            commit: 300,
        };
        assert_eq!(hs.encode_to_vec(), [8, 1, 0x10, 0, 0x18, 0xac, 0x02]);
        let mark = SnapshotMark { index: 0, term: 0 };
        assert_eq!(mark.encode_to_vec(), [8, 0, 0x10, 0]);
        let cs = ConfState {
            voters: vec![1, 2],
            ..ConfState::default()
        };
        assert_eq!(cs.encode_to_vec(), [8, 1, 8, 2, 0x28, 0]);
        let snap = Snapshot {
            data: b"x".to_vec(),
            metadata: SnapshotMetadata {
                conf_state: cs,
                index: 5,
                term: 1,
            },
        };
        assert_eq!(
            snap.encode_to_vec(),
            [0x0a, 1, b'x', 0x12, 12, 0x0a, 6, 8, 1, 8, 2, 0x28, 0, 0x10, 5, 0x18, 1]
        );
    }

    #[test]
    fn hand_encoded_record_equals_prost_encoding() {
        // Proves layout::append_frame writes the same record bytes as the prost Record.
        for data in [None, Some(&b""[..]), Some(&b"payload"[..])] {
            let mut frame = Vec::new();
            append_frame(&mut frame, RecordType::Entry, 0xdead_beef, data);
            let rec = Record {
                record_type: 2,
                crc: 0xdead_beef,
                data: data.map(<[u8]>::to_vec),
            };
            let bytes = rec.encode_to_vec();
            assert_eq!(&frame[8..8 + bytes.len()], &bytes[..]);
            assert!(RECORD_SHAPE.matches(&bytes));
        }
    }

    #[test]
    fn shapes_reject_bodies_of_another_type() {
        // Proves a body read under the wrong record type is refused by its shape.
        let entry = Entry::normal(7, 9, b"d".to_vec()).encode_to_vec();
        let state = HardState {
            term: 7,
            vote: 1,
            commit: 9,
        }
        .encode_to_vec();
        let mark = SnapshotMark { index: 9, term: 7 }.encode_to_vec();
        assert!(ENTRY_SHAPE.matches(&entry));
        assert!(!HARD_STATE_SHAPE.matches(&entry));
        assert!(!SNAPSHOT_MARK_SHAPE.matches(&entry));
        assert!(!ENTRY_SHAPE.matches(&mark));
        assert!(!HARD_STATE_SHAPE.matches(&mark));
        assert!(!SNAPSHOT_MARK_SHAPE.matches(&state));
        assert!(!ENTRY_SHAPE.matches(&[0x08, 0x80]));
        assert!(!ENTRY_SHAPE.matches(&[8, 0, 0x10, 0, 0x18, 0, 0x22, 5, 1]));
        assert!(!ENTRY_SHAPE.matches(&[8, 0, 0x18, 0, 0x10, 0]));
        assert_eq!(
            decode_shaped::<SnapshotMark>(&SNAPSHOT_MARK_SHAPE, &mark),
            Some(SnapshotMark { index: 9, term: 7 })
        );
    }
}
