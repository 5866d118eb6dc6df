//! Unit tests of the writer's failure rules, through a `SegmentWriter` that fails on command.

use std::sync::atomic::Ordering;

use super::*;
use crate::io::faulty;
use crate::replay::read_all;

const ZERO: SnapshotMark = SnapshotMark { index: 0, term: 0 };

fn entry(i: u64) -> Entry {
    Entry::normal(1, i, format!("entry {i}").into_bytes())
}

fn small() -> WalOptions {
    WalOptions {
        segment_size_bytes: 1024,
        max_wals: 5,
        io: IoMode::Pwrite,
    }
}

#[test]
fn a_failed_sync_poisons_the_wal_and_reopen_recovers() {
    // Proves: after a failed write+sync nothing more is accepted, and a reopen sees every
    // acknowledged entry and can append again.
    let _serial = faulty::LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().expect("tempdir");
    let wal_dir = dir.path().join("wal");
    // create's own write is number one.
    faulty::WRITES_LEFT.store(1 + 5, Ordering::SeqCst);
    let mut wal = Wal::create_with(&wal_dir, b"md", small(), faulty::boxed).expect("create");
    for i in 1..=5 {
        wal.save(None, &[entry(i)]).expect("save");
    }
    assert!(matches!(wal.save(None, &[entry(6)]), Err(Error::Io { .. })));
    assert!(matches!(wal.save(None, &[entry(7)]), Err(Error::Poisoned)));
    assert!(matches!(
        wal.save_snapshot(SnapshotMark { index: 5, term: 1 }),
        Err(Error::Poisoned)
    ));
    drop(wal);
    faulty::WRITES_LEFT.store(u64::MAX, Ordering::SeqCst);
    let (mut wal, read) = Wal::open(&wal_dir, ZERO, small()).expect("reopen");
    assert!(read.entries.len() >= 5, "acknowledged entries kept");
    assert_eq!(
        read.entries[..5],
        (1..=5).map(entry).collect::<Vec<_>>()[..]
    );
    let next = read.entries.len() as u64 + 1;
    wal.save(None, &[entry(next)]).expect("append after reopen");
    drop(wal);
    assert_eq!(
        read_all(&wal_dir, ZERO).expect("read").entries.len() as u64,
        next
    );
}

#[test]
fn a_failed_cut_poisons_the_wal_and_leaves_it_readable() {
    // Proves: a failure while writing a new segment's header poisons the WAL, the spare is
    // never named as a segment, and every acknowledged entry is read back.
    let _serial = faulty::LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().expect("tempdir");
    let wal_dir = dir.path().join("wal");
    faulty::WRITES_LEFT.store(u64::MAX, Ordering::SeqCst);
    let mut wal = Wal::create_with(&wal_dir, b"md", small(), faulty::boxed).expect("create");
    let big = |i| Entry::normal(1, i, vec![7; 300]);
    wal.save(None, &[big(1), big(2)]).expect("save");
    // The next save crosses the segment size: its own write succeeds, the header write fails.
    faulty::WRITES_LEFT.store(1, Ordering::SeqCst);
    assert!(matches!(
        wal.save(None, &[big(3), big(4)]),
        Err(Error::Io { .. })
    ));
    assert!(matches!(wal.save(None, &[big(5)]), Err(Error::Poisoned)));
    drop(wal);
    faulty::WRITES_LEFT.store(u64::MAX, Ordering::SeqCst);
    let names = crate::read::list_segments(&wal_dir).expect("segments");
    assert_eq!(names.len(), 1, "the spare was not renamed into place");
    let read = read_all(&wal_dir, ZERO).expect("read");
    assert_eq!(read.entries, (1..=4).map(big).collect::<Vec<_>>());
}
