//! Conversions between raft-rs's `eraftpb` types (rust-protobuf 2, proto3) and the
//! `oxcd_wal::pb` types (prost, etcd's gogoproto encoding), plus etcd's `raftpb.ConfChange`.
//!
//! The two sides are wire-identical message for message (same field numbers and types), so
//! each conversion copies field by field. They differ in what they write: proto3 omits zero
//! fields, etcd always writes its non-nullable ones. Both decode each other's bytes to the same
//! values, and for messages with no zero field the bytes are equal (tested below).
//!
//! raft-rs's `Entry` has two fields etcd's lacks, `context` (6) and `sync_log` (5); oxcd never
//! sets them, and an entry carrying either is refused rather than silently truncated.
//!
//! etcd's `ConfChangeType` numbers differ from raft-rs's (`UpdateNode` = 2 exists only in etcd,
//! so etcd's `AddLearnerNode` is 3 where raft-rs's is 2). Conf-change entry data is therefore
//! always etcd's encoding ([`ConfChange`]) and is mapped to raft-rs's enum by
//! [`conf_change_to_raft`]. Pure code, no I/O.

use ::raft::eraftpb;
use oxcd_wal::pb;

use super::error::{RaftError, Result};

/// etcd's `raftpb.ConfChangeType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum ConfChangeType {
    /// Add a voter.
    ConfChangeAddNode = 0,
    /// Remove a voter or learner.
    ConfChangeRemoveNode = 1,
    /// Update a member's attributes; no effect on raft's configuration.
    ConfChangeUpdateNode = 2,
    /// Add a learner.
    ConfChangeAddLearnerNode = 3,
}

/// etcd's `raftpb.ConfChange`, the data of an `EntryConfChange` entry. `id`, `change_type` and
/// `node_id` are always written (gogoproto `nullable=false`); `context` only when present.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct ConfChange {
    /// etcd's request identifier for the change.
    #[prost(uint64, required, tag = "1")]
    pub id: u64,
    /// A [`ConfChangeType`] value.
    #[prost(enumeration = "ConfChangeType", required, tag = "2")]
    pub change_type: i32,
    /// The member the change is about.
    #[prost(uint64, required, tag = "3")]
    pub node_id: u64,
    /// etcd: the member's JSON (`membership.Member`) for additions and updates.
    #[prost(bytes = "vec", optional, tag = "4")]
    pub context: Option<Vec<u8>>,
}

/// The etcd encoding of an entry type.
fn entry_type_to_wal(t: eraftpb::EntryType) -> pb::EntryType {
    match t {
        eraftpb::EntryType::EntryNormal => pb::EntryType::EntryNormal,
        eraftpb::EntryType::EntryConfChange => pb::EntryType::EntryConfChange,
        eraftpb::EntryType::EntryConfChangeV2 => pb::EntryType::EntryConfChangeV2,
    }
}

/// A raft-rs entry as etcd's `raftpb.Entry`. Refuses entries with a `context` or `sync_log`,
/// which etcd's format cannot hold.
pub fn entry_to_wal(entry: &eraftpb::Entry) -> Result<pb::Entry> {
    if !entry.context.is_empty() {
        return Err(RaftError::NotRepresentable {
            index: entry.index,
            field: "context",
        });
    }
    if entry.sync_log {
        return Err(RaftError::NotRepresentable {
            index: entry.index,
            field: "sync_log",
        });
    }
    Ok(pb::Entry {
        entry_type: entry_type_to_wal(entry.entry_type) as i32,
        term: entry.term,
        index: entry.index,
        data: entry.data.to_vec(),
    })
}

/// An etcd `raftpb.Entry` as raft-rs's. Errors on an unknown entry type.
pub fn entry_from_wal(entry: pb::Entry) -> Result<eraftpb::Entry> {
    let entry_type = match pb::EntryType::try_from(entry.entry_type) {
        Ok(pb::EntryType::EntryNormal) => eraftpb::EntryType::EntryNormal,
        Ok(pb::EntryType::EntryConfChange) => eraftpb::EntryType::EntryConfChange,
        Ok(pb::EntryType::EntryConfChangeV2) => eraftpb::EntryType::EntryConfChangeV2,
        Err(_) => {
            return Err(RaftError::UnknownEnum {
                index: entry.index,
                what: "entry type",
                value: entry.entry_type,
            })
        }
    };
    Ok(eraftpb::Entry {
        entry_type,
        term: entry.term,
        index: entry.index,
        data: entry.data.into(),
        ..Default::default()
    })
}

/// A raft-rs hard state as etcd's.
pub fn hard_state_to_wal(hs: &eraftpb::HardState) -> pb::HardState {
    pb::HardState {
        term: hs.term,
        vote: hs.vote,
        commit: hs.commit,
    }
}

/// An etcd hard state as raft-rs's.
pub fn hard_state_from_wal(hs: &pb::HardState) -> eraftpb::HardState {
    eraftpb::HardState {
        term: hs.term,
        vote: hs.vote,
        commit: hs.commit,
        ..Default::default()
    }
}

/// A raft-rs conf state as etcd's.
pub fn conf_state_to_wal(cs: &eraftpb::ConfState) -> pb::ConfState {
    pb::ConfState {
        voters: cs.voters.clone(),
        learners: cs.learners.clone(),
        voters_outgoing: cs.voters_outgoing.clone(),
        learners_next: cs.learners_next.clone(),
        auto_leave: cs.auto_leave,
    }
}

/// An etcd conf state as raft-rs's.
pub fn conf_state_from_wal(cs: &pb::ConfState) -> eraftpb::ConfState {
    eraftpb::ConfState {
        voters: cs.voters.clone(),
        learners: cs.learners.clone(),
        voters_outgoing: cs.voters_outgoing.clone(),
        learners_next: cs.learners_next.clone(),
        auto_leave: cs.auto_leave,
        ..Default::default()
    }
}

/// A raft-rs snapshot as etcd's (a missing metadata becomes the zero metadata, as in both).
pub fn snapshot_to_wal(snapshot: &eraftpb::Snapshot) -> pb::Snapshot {
    let meta = snapshot.get_metadata();
    pb::Snapshot {
        data: snapshot.data.to_vec(),
        metadata: pb::SnapshotMetadata {
            conf_state: conf_state_to_wal(meta.get_conf_state()),
            index: meta.index,
            term: meta.term,
        },
    }
}

/// An etcd snapshot as raft-rs's.
pub fn snapshot_from_wal(snapshot: pb::Snapshot) -> eraftpb::Snapshot {
    let mut meta = eraftpb::SnapshotMetadata {
        index: snapshot.metadata.index,
        term: snapshot.metadata.term,
        ..Default::default()
    };
    meta.set_conf_state(conf_state_from_wal(&snapshot.metadata.conf_state));
    let mut out = eraftpb::Snapshot {
        data: snapshot.data.into(),
        ..Default::default()
    };
    out.set_metadata(meta);
    out
}

/// The configuration change raft-rs should apply for etcd's `cc`, found in entry `index`;
/// `None` for `ConfChangeUpdateNode`, which changes member attributes only.
pub fn conf_change_to_raft(cc: &ConfChange, index: u64) -> Result<Option<eraftpb::ConfChange>> {
    let change_type = match ConfChangeType::try_from(cc.change_type) {
        Ok(ConfChangeType::ConfChangeAddNode) => eraftpb::ConfChangeType::AddNode,
        Ok(ConfChangeType::ConfChangeRemoveNode) => eraftpb::ConfChangeType::RemoveNode,
        Ok(ConfChangeType::ConfChangeAddLearnerNode) => eraftpb::ConfChangeType::AddLearnerNode,
        Ok(ConfChangeType::ConfChangeUpdateNode) => return Ok(None),
        Err(_) => {
            return Err(RaftError::UnknownEnum {
                index,
                what: "conf change type",
                value: cc.change_type,
            })
        }
    };
    Ok(Some(eraftpb::ConfChange {
        change_type,
        node_id: cc.node_id,
        id: cc.id,
        context: cc.context.clone().unwrap_or_default().into(),
        ..Default::default()
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message as _;

    fn raft_entry(
        entry_type: eraftpb::EntryType,
        term: u64,
        index: u64,
        data: &[u8],
    ) -> eraftpb::Entry {
        eraftpb::Entry {
            entry_type,
            term,
            index,
            data: data.to_vec().into(),
            ..Default::default()
        }
    }

    fn conf_state(
        voters: &[u64],
        learners: &[u64],
        outgoing: &[u64],
        next: &[u64],
        auto_leave: bool,
    ) -> eraftpb::ConfState {
        eraftpb::ConfState {
            voters: voters.to_vec(),
            learners: learners.to_vec(),
            voters_outgoing: outgoing.to_vec(),
            learners_next: next.to_vec(),
            auto_leave,
            ..Default::default()
        }
    }

    /// Checks both directions on the wire: each side decodes the other's bytes to the same
    /// value, and with no zero field the encodings are byte-equal.
    fn check_wire<R, W>(raft: &R, wal: &W, all_fields_set: bool)
    where
        R: protobuf::Message + PartialEq + std::fmt::Debug,
        W: prost::Message + Default + PartialEq,
    {
        let raft_bytes = raft.write_to_bytes().expect("encodes");
        let wal_bytes = wal.encode_to_vec();
        assert!(W::decode(&raft_bytes[..]).expect("etcd side decodes") == *wal);
        assert_eq!(
            &R::parse_from_bytes(&wal_bytes).expect("raft side decodes"),
            raft
        );
        if all_fields_set {
            assert_eq!(raft_bytes, wal_bytes);
        }
    }

    #[test]
    fn entries_round_trip_and_match_on_the_wire() {
        // Proves Entry conversion is lossless both ways and wire-identical to raft-rs's.
        let cases = [
            (
                raft_entry(eraftpb::EntryType::EntryConfChange, 3, 7, b"cc"),
                true,
            ),
            (
                raft_entry(eraftpb::EntryType::EntryConfChangeV2, 1, 2, b"v2"),
                true,
            ),
            (
                raft_entry(eraftpb::EntryType::EntryNormal, 5, 9, b"put"),
                false,
            ),
            (
                raft_entry(eraftpb::EntryType::EntryNormal, 2, 4, b""),
                false,
            ),
        ];
        for (entry, all_set) in cases {
            let wal = entry_to_wal(&entry).expect("representable");
            check_wire(&entry, &wal, all_set);
            assert_eq!(entry_from_wal(wal).expect("known type"), entry);
        }
        // etcd writes the zero type and term where proto3 omits them.
        let empty = entry_to_wal(&raft_entry(eraftpb::EntryType::EntryNormal, 0, 1, b"")).unwrap();
        assert_eq!(empty.encode_to_vec(), [0x08, 0, 0x10, 0, 0x18, 1]);
    }

    #[test]
    fn entries_with_fields_etcd_lacks_are_refused() {
        // Proves an entry context or sync_log flag is an error, not silently dropped.
        let mut entry = raft_entry(eraftpb::EntryType::EntryNormal, 1, 3, b"x");
        entry.context = b"ctx".to_vec().into();
        assert!(matches!(
            entry_to_wal(&entry),
            Err(RaftError::NotRepresentable {
                index: 3,
                field: "context"
            })
        ));
        let mut entry = raft_entry(eraftpb::EntryType::EntryNormal, 1, 4, b"x");
        entry.sync_log = true;
        assert!(matches!(
            entry_to_wal(&entry),
            Err(RaftError::NotRepresentable {
                index: 4,
                field: "sync_log"
            })
        ));
        let unknown = pb::Entry {
            entry_type: 9,
            term: 1,
            index: 5,
            data: vec![],
        };
        assert!(matches!(
            entry_from_wal(unknown),
            Err(RaftError::UnknownEnum {
                index: 5,
                value: 9,
                ..
            })
        ));
    }

    #[test]
    fn hard_states_round_trip_and_match_on_the_wire() {
        // Proves HardState conversion is lossless and wire-identical.
        for (term, vote, commit, all_set) in [(3, 1, 300, true), (0, 0, 0, false), (7, 0, 5, false)]
        {
            let hs = eraftpb::HardState {
                term,
                vote,
                commit,
                ..Default::default()
            };
            let wal = hard_state_to_wal(&hs);
            check_wire(&hs, &wal, all_set);
            assert_eq!(hard_state_from_wal(&wal), hs);
        }
    }

    #[test]
    fn conf_states_round_trip_and_match_on_the_wire() {
        // Proves ConfState conversion is lossless and wire-identical (unpacked repeated fields).
        let full = conf_state(&[1, 2, 3], &[4], &[1, 2], &[5], true);
        let wal = conf_state_to_wal(&full);
        check_wire(&full, &wal, true);
        assert_eq!(conf_state_from_wal(&wal), full);
        let voters_only = conf_state(&[1], &[], &[], &[], false);
        let wal = conf_state_to_wal(&voters_only);
        check_wire(&voters_only, &wal, false);
        assert_eq!(wal.encode_to_vec(), [8, 1, 0x28, 0]);
        assert_eq!(conf_state_from_wal(&wal), voters_only);
    }

    #[test]
    fn snapshots_round_trip_and_match_on_the_wire() {
        // Proves Snapshot (with metadata and conf state) conversion is lossless and wire-identical.
        let mut meta = eraftpb::SnapshotMetadata {
            index: 42,
            term: 6,
            ..Default::default()
        };
        meta.set_conf_state(conf_state(&[1, 2], &[3], &[9], &[8], true));
        let mut snap = eraftpb::Snapshot {
            data: b"state".to_vec().into(),
            ..Default::default()
        };
        snap.set_metadata(meta);
        let wal = snapshot_to_wal(&snap);
        check_wire(&snap, &wal, true);
        assert_eq!(snapshot_from_wal(wal.clone()), snap);
        assert_eq!(wal.metadata.index, 42);

        let mut bare = eraftpb::Snapshot::default();
        bare.mut_metadata().index = 3;
        bare.mut_metadata().term = 1;
        bare.mut_metadata()
            .set_conf_state(conf_state(&[1], &[], &[], &[], false));
        let wal = snapshot_to_wal(&bare);
        check_wire(&bare, &wal, false);
        assert_eq!(snapshot_from_wal(wal), bare);
    }

    #[test]
    fn conf_changes_use_etcds_bytes_and_type_numbers() {
        // Proves ConfChange is encoded as etcd's gogoproto does and etcd's types map onto raft-rs's.
        let numbers = [
            ConfChangeType::ConfChangeAddNode,
            ConfChangeType::ConfChangeRemoveNode,
            ConfChangeType::ConfChangeUpdateNode,
            ConfChangeType::ConfChangeAddLearnerNode,
        ]
        .map(|t| t as i32);
        assert_eq!(numbers, [0, 1, 2, 3]);
        let cc = ConfChange {
            id: 0,
            change_type: ConfChangeType::ConfChangeAddNode as i32,
            node_id: 5,
            context: Some(b"{}".to_vec()),
        };
        assert_eq!(
            cc.encode_to_vec(),
            [0x08, 0, 0x10, 0, 0x18, 5, 0x22, 2, b'{', b'}']
        );
        let raft_cc = conf_change_to_raft(&cc, 1)
            .unwrap()
            .expect("add node changes raft");
        assert_eq!(raft_cc.change_type, eraftpb::ConfChangeType::AddNode);
        assert_eq!((raft_cc.node_id, &raft_cc.context[..]), (5, &b"{}"[..]));

        let learner = ConfChange {
            change_type: ConfChangeType::ConfChangeAddLearnerNode as i32,
            ..cc.clone()
        };
        let raft_cc = conf_change_to_raft(&learner, 1).unwrap().unwrap();
        assert_eq!(raft_cc.change_type, eraftpb::ConfChangeType::AddLearnerNode);
        let update = ConfChange {
            change_type: ConfChangeType::ConfChangeUpdateNode as i32,
            ..cc.clone()
        };
        assert!(conf_change_to_raft(&update, 1).unwrap().is_none());
        let unknown = ConfChange {
            change_type: 7,
            ..cc
        };
        assert!(matches!(
            conf_change_to_raft(&unknown, 8),
            Err(RaftError::UnknownEnum {
                index: 8,
                value: 7,
                ..
            })
        ));
    }
}
