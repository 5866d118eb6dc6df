//! `MemoryLog` against raft-rs's own `MemStorage`: the same operations give the same answers
//! to every `Storage` read, except where `memlog`'s docs say why they differ (the term of
//! `first_index - 1` after a compaction; no term below it; real snapshots instead of fabricated
//! ones; errors where `MemStorage` panics).

use ::raft::eraftpb::{ConfState, Entry, Snapshot};
use ::raft::storage::MemStorage;
use ::raft::{GetEntriesContext, Storage, StorageError};
use proptest::prelude::*;

use super::error::RaftError;
use super::memlog::MemoryLog;

fn entry(index: u64, term: u64) -> Entry {
    Entry {
        term,
        index,
        // Sizes vary so that max_size limits cut at different places.
        data: vec![b'x'; (index % 7) as usize * 10].into(),
        ..Default::default()
    }
}

fn entries(range: std::ops::RangeInclusive<u64>, term: u64) -> Vec<Entry> {
    range.map(|i| entry(i, term)).collect()
}

fn snapshot(index: u64, term: u64, voters: &[u64], data: &[u8]) -> Snapshot {
    let mut snap = Snapshot {
        data: data.to_vec().into(),
        ..Default::default()
    };
    snap.mut_metadata().index = index;
    snap.mut_metadata().term = term;
    snap.mut_metadata()
        .set_conf_state(ConfState::from((voters.to_vec(), vec![])));
    snap
}

fn ctx() -> GetEntriesContext {
    GetEntriesContext::empty(false)
}

fn store_err(e: StorageError) -> ::raft::Error {
    ::raft::Error::Store(e)
}

/// Asserts that every read both storages define agrees.
fn assert_same_reads(ours: &MemoryLog, theirs: &MemStorage) {
    let first = Storage::first_index(theirs).unwrap();
    let last = Storage::last_index(theirs).unwrap();
    assert_eq!(Storage::first_index(ours).unwrap(), first, "first index");
    assert_eq!(Storage::last_index(ours).unwrap(), last, "last index");
    let (a, b) = (
        ours.initial_state().unwrap(),
        theirs.initial_state().unwrap(),
    );
    assert_eq!(a.hard_state, b.hard_state);
    assert_eq!(a.conf_state, b.conf_state);
    for index in first.saturating_sub(3)..=last + 2 {
        let (a, b) = (ours.term(index), theirs.term(index));
        if index + 1 == first && b == Err(store_err(StorageError::Compacted)) {
            // Documented difference: the term before the first index is kept.
            assert!(a.is_ok(), "term({index}) must be kept, got {a:?}");
        } else if index + 1 < first && b.is_ok() {
            // Documented difference: MemStorage answers for its last applied snapshot's index
            // (index 0 when none) even once compaction has passed it.
            assert_eq!(a, Err(store_err(StorageError::Compacted)), "term({index})");
        } else {
            assert_eq!(a, b, "term({index})");
        }
    }
    if first > last {
        // MemStorage indexes an empty vector here and panics; ours answers empty.
        assert_eq!(ours.entries(first, first, None, ctx()), Ok(vec![]));
        return;
    }
    for low in first.saturating_sub(1)..=last + 1 {
        for high in low.max(first)..=last + 1 {
            for max_size in [None, Some(0), Some(25), Some(200)] {
                let a = ours.entries(low, high, max_size, ctx());
                let b = theirs.entries(low, high, max_size, ctx());
                assert_eq!(a, b, "entries({low}, {high}, {max_size:?})");
            }
        }
    }
}

#[test]
fn fresh_logs_agree() {
    // Proves an empty MemoryLog answers like an empty MemStorage (first 1, last 0, term(0) 0).
    let (ours, theirs) = (MemoryLog::new(), MemStorage::new());
    assert_same_reads(&ours, &theirs);
    assert_eq!(ours.term(0), Ok(0));
    assert_eq!(ours.term(1), Err(store_err(StorageError::Unavailable)));
}

#[test]
fn append_overwrite_and_reads_agree() {
    // Proves append (including a conflicting overwrite) gives MemStorage's reads.
    let (mut ours, theirs) = (MemoryLog::new(), MemStorage::new());
    for batch in [
        entries(1..=5, 1),
        entries(4..=8, 2),
        entries(9..=9, 2),
        entries(6..=6, 3),
    ] {
        ours.append(&batch).unwrap();
        theirs.wl().append(&batch).unwrap();
        assert_same_reads(&ours, &theirs);
    }
    assert_eq!(MemoryLog::last_index(&ours), 6);
}

#[test]
fn snapshot_application_agrees() {
    // Proves apply_snapshot moves the log, hard state and membership as MemStorage does.
    let (mut ours, theirs) = (MemoryLog::new(), MemStorage::new());
    ours.append(&entries(1..=5, 1)).unwrap();
    theirs.wl().append(&entries(1..=5, 1)).unwrap();
    let snap = snapshot(8, 3, &[1, 2, 3], b"state");
    ours.apply_snapshot(snap.clone()).unwrap();
    theirs.wl().apply_snapshot(snap.clone()).unwrap();
    assert_same_reads(&ours, &theirs);
    assert_eq!(ours.term(8), Ok(3));
    assert_eq!(
        ours.entries(8, 9, None, ctx()),
        Err(store_err(StorageError::Compacted))
    );

    // Both refuse a snapshot the log has moved past.
    let old = snapshot(7, 3, &[1], b"");
    assert!(matches!(
        ours.apply_snapshot(old.clone()),
        Err(RaftError::Raft(::raft::Error::Store(
            StorageError::SnapshotOutOfDate
        )))
    ));
    assert_eq!(
        theirs.wl().apply_snapshot(old),
        Err(store_err(StorageError::SnapshotOutOfDate))
    );

    // Entries continue after the snapshot in both.
    ours.append(&entries(9..=10, 3)).unwrap();
    theirs.wl().append(&entries(9..=10, 3)).unwrap();
    assert_same_reads(&ours, &theirs);

    // The snapshot served is the real one, data included; MemStorage fabricates one at the
    // commit index with the same position and membership but no data.
    let served = Storage::snapshot(&ours, 0, 2).unwrap();
    assert_eq!(served, snap);
    let fabricated = Storage::snapshot(&theirs, 0, 2).unwrap();
    assert_eq!(fabricated.get_metadata(), snap.get_metadata());
    assert!(fabricated.data.is_empty());
    // Asked for a newer one than exists: ours says "later", MemStorage relabels its index.
    assert_eq!(
        Storage::snapshot(&ours, 9, 2),
        Err(store_err(StorageError::SnapshotTemporarilyUnavailable))
    );
}

#[test]
fn compaction_agrees_and_keeps_the_term_before_the_first_index() {
    // Proves compact gives MemStorage's first index and reads, while term(first-1) stays known.
    let (mut ours, theirs) = (MemoryLog::new(), MemStorage::new());
    ours.append(&entries(1..=4, 1)).unwrap();
    ours.append(&entries(5..=9, 2)).unwrap();
    theirs.wl().append(&entries(1..=4, 1)).unwrap();
    theirs.wl().append(&entries(5..=9, 2)).unwrap();
    let snap = ours.build_snapshot(7, ConfState::from((vec![1], vec![])), b"d".to_vec());
    ours.keep_snapshot(snap.unwrap());
    for compact_index in [1, 3, 6, 6, 8] {
        ours.compact(compact_index).unwrap();
        theirs.wl().compact(compact_index).unwrap();
        assert_same_reads(&ours, &theirs);
    }
    assert_eq!(MemoryLog::first_index(&ours), 8);
    assert_eq!(ours.term(7), Ok(2));
    assert_eq!(theirs.term(7), Err(store_err(StorageError::Compacted)));
    // Discarding entries no snapshot covers is refused (MemStorage would allow it).
    assert!(matches!(
        ours.compact(9),
        Err(RaftError::CompactBeyond {
            index: 9,
            last: 9,
            snapshot: 7
        })
    ));
    // Compacting the whole log keeps its position (an emptied MemStorage loses it).
    let snap = ours.build_snapshot(9, ConfState::from((vec![1], vec![])), vec![]);
    ours.keep_snapshot(snap.unwrap());
    ours.compact(10).unwrap();
    assert_eq!(
        (MemoryLog::first_index(&ours), MemoryLog::last_index(&ours)),
        (10, 9)
    );
    assert_eq!(ours.term(9), Ok(2));
    assert_eq!(ours.entries(10, 10, None, ctx()), Ok(vec![]));
}

#[test]
fn misuse_is_an_error_where_memstorage_panics() {
    // Proves gaps, overwriting compacted entries and reads past the log are errors, not panics.
    let mut ours = MemoryLog::new();
    ours.append(&entries(1..=3, 1)).unwrap();
    assert!(matches!(
        ours.append(&entries(5..=6, 1)),
        Err(RaftError::LogGap { first: 5, last: 3 })
    ));
    assert_eq!(
        ours.entries(1, 9, None, ctx()),
        Err(store_err(StorageError::Unavailable))
    );
    ours.apply_snapshot(snapshot(3, 1, &[1], b"")).unwrap();
    assert!(matches!(
        ours.append(&entries(2..=4, 1)),
        Err(RaftError::AppendCompacted {
            first: 2,
            first_index: 4
        })
    ));
    assert!(matches!(
        ours.compact(6),
        Err(RaftError::CompactBeyond { index: 6, .. })
    ));
}

#[test]
fn snapshots_are_built_only_inside_the_log_and_after_the_current_one() {
    // Proves build_snapshot takes the entry's term and refuses stale or future indexes.
    let mut ours = MemoryLog::new();
    ours.append(&entries(1..=3, 1)).unwrap();
    ours.append(&entries(4..=6, 4)).unwrap();
    let cs = ConfState::from((vec![1, 2], vec![3]));
    let snap = ours.build_snapshot(5, cs.clone(), b"v2".to_vec()).unwrap();
    assert_eq!(
        (snap.get_metadata().index, snap.get_metadata().term),
        (5, 4)
    );
    assert_eq!(snap.get_metadata().get_conf_state(), &cs);
    assert_eq!(&snap.data[..], b"v2");
    ours.keep_snapshot(snap.clone());
    assert_eq!(Storage::snapshot(&ours, 5, 2), Ok(snap));
    for stale_or_future in [4, 5, 7] {
        assert!(matches!(
            ours.build_snapshot(stale_or_future, cs.clone(), vec![]),
            Err(RaftError::SnapshotOutOfRange { .. })
        ));
    }
}

/// One step of the model test, interpreted against the current log so it is always valid.
#[derive(Clone, Debug)]
enum Op {
    /// Append `count` entries from `back` positions before the end (overwriting them).
    Append {
        back: u64,
        count: u64,
        bump_term: bool,
    },
    /// Apply a leader's snapshot `ahead` positions past the last index.
    ApplySnapshot { ahead: u64 },
    /// Build and keep a snapshot `back` positions before the end, if possible.
    TakeSnapshot { back: u64 },
    /// Compact up to `back` positions before the newest snapshot's index + 1 (or the last).
    Compact { back: u64 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..4u64, 1..5u64, any::<bool>())
            .prop_map(|(back, count, bump_term)| Op::Append { back, count, bump_term }),
        1 => (0..4u64).prop_map(|ahead| Op::ApplySnapshot { ahead }),
        2 => (0..4u64).prop_map(|back| Op::TakeSnapshot { back }),
        2 => (0..4u64).prop_map(|back| Op::Compact { back }),
    ]
}

proptest! {
    #[test]
    fn random_operations_agree_with_memstorage(ops in prop::collection::vec(op(), 1..40)) {
        // Proves any valid sequence of appends, snapshots and compactions reads like MemStorage.
        let (mut ours, theirs) = (MemoryLog::new(), MemStorage::new());
        let mut term = 1;
        for op in ops {
            let (first, last) = (MemoryLog::first_index(&ours), MemoryLog::last_index(&ours));
            let snap_index = ours.snapshot_metadata().index;
            match op {
                Op::Append { back, count, bump_term } => {
                    term += u64::from(bump_term);
                    let start = (last + 1).saturating_sub(back).max(first);
                    let batch = entries(start..=start + count - 1, term);
                    ours.append(&batch).unwrap();
                    theirs.wl().append(&batch).unwrap();
                }
                Op::ApplySnapshot { ahead } => {
                    term += 1;
                    let snap = snapshot(last + ahead, term, &[1, 2], b"s");
                    let a = ours.apply_snapshot(snap.clone()).map_err(|e| e.to_string());
                    let b = theirs.wl().apply_snapshot(snap).map_err(|e| format!("raft: {e}"));
                    prop_assert_eq!(a, b);
                }
                Op::TakeSnapshot { back } => {
                    let index = last.saturating_sub(back);
                    if index > snap_index && index >= first {
                        let cs = ConfState::from((vec![1], vec![]));
                        let snap = ours.build_snapshot(index, cs, vec![]).unwrap();
                        ours.keep_snapshot(snap);
                    }
                }
                Op::Compact { back } => {
                    // Keeps one entry: MemStorage emptied by compaction forgets its first index
                    // (it falls back to its last applied snapshot's).
                    let index = (snap_index + 1).saturating_sub(back).min(last);
                    ours.compact(index).unwrap();
                    theirs.wl().compact(index).unwrap();
                }
            }
            assert_same_reads(&ours, &theirs);
        }
    }
}
