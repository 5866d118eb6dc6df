//! `WalStorage` on real directories: what is written survives a reopen, commit-only hard
//! states wait for a sync, snapshots restart the log after their index, and marks the WAL's
//! commit index never reached are not trusted. (`persist(Ready)` is driven by the node tests.)

use std::path::{Path, PathBuf};

use ::raft::eraftpb::{ConfState, Entry, EntryType, HardState};
use ::raft::{GetEntriesContext, Storage, StorageError};
use oxcd_wal::{pb, read_all, SnapshotMark, Wal, WalOptions};

use super::convert::entry_to_wal;
use super::storage::{valid_snapshot_marks, wal_exists, WalStorage};

struct Dirs {
    _tmp: tempfile::TempDir,
    wal: PathBuf,
    snap: PathBuf,
}

fn dirs() -> Dirs {
    let tmp = tempfile::tempdir().unwrap();
    let wal = tmp.path().join("member/wal");
    let snap = tmp.path().join("member/snap");
    std::fs::create_dir_all(tmp.path().join("member")).unwrap();
    Dirs {
        _tmp: tmp,
        wal,
        snap,
    }
}

fn opts() -> WalOptions {
    WalOptions {
        io: oxcd_wal::IoMode::Pwrite,
        ..WalOptions::default()
    }
}

fn entry(index: u64, term: u64) -> Entry {
    Entry {
        entry_type: EntryType::EntryNormal,
        term,
        index,
        data: format!("value-{index}").into_bytes().into(),
        ..Default::default()
    }
}

fn hard_state(term: u64, vote: u64, commit: u64) -> HardState {
    HardState {
        term,
        vote,
        commit,
        ..Default::default()
    }
}

fn all_entries(storage: &WalStorage) -> Vec<Entry> {
    let (first, last) = (
        storage.first_index().unwrap(),
        storage.last_index().unwrap(),
    );
    storage
        .entries(first, last + 1, None, GetEntriesContext::empty(false))
        .unwrap()
}

fn reopen(d: &Dirs) -> (WalStorage, super::storage::Restored) {
    WalStorage::open(&d.wal, &d.snap, opts()).unwrap()
}

#[test]
fn appended_entries_and_hard_state_survive_a_reopen() {
    // Proves append_durably writes etcd-format entries and hard state that a reopen reads back.
    let d = dirs();
    assert!(!wal_exists(&d.wal));
    let mut storage = WalStorage::create(&d.wal, &d.snap, b"meta", opts()).unwrap();
    assert!(wal_exists(&d.wal));
    let batch: Vec<Entry> = (1..=5).map(|i| entry(i, 2)).collect();
    storage
        .append_durably(&batch, &hard_state(2, 1, 3))
        .unwrap();
    drop(storage);

    let on_disk = read_all(&d.wal, SnapshotMark::default()).unwrap();
    let expected: Vec<pb::Entry> = batch.iter().map(|e| entry_to_wal(e).unwrap()).collect();
    assert_eq!(on_disk.entries, expected);
    assert_eq!(
        on_disk.hard_state,
        pb::HardState {
            term: 2,
            vote: 1,
            commit: 3
        }
    );

    let (storage, restored) = reopen(&d);
    assert_eq!(restored.metadata, b"meta");
    assert_eq!(restored.snapshot, None);
    assert_eq!(all_entries(&storage), batch);
    assert_eq!(
        storage.initial_state().unwrap().hard_state,
        hard_state(2, 1, 3)
    );
    assert_eq!(storage.term(0), Ok(0));
}

#[test]
fn a_commit_only_change_waits_for_the_next_save_or_a_sync() {
    // Proves set_commit is not durable by itself, rides with the next save, and sync writes it.
    let d = dirs();
    let mut storage = WalStorage::create(&d.wal, &d.snap, b"", opts()).unwrap();
    storage
        .append_durably(&[entry(1, 1), entry(2, 1)], &hard_state(1, 1, 0))
        .unwrap();
    storage.set_commit(2);
    drop(storage);
    let (mut storage, restored) = reopen(&d);
    assert_eq!(restored.hard_state.commit, 0);

    storage.set_commit(2);
    storage.sync_hard_state().unwrap();
    drop(storage);
    let (mut storage, restored) = reopen(&d);
    assert_eq!(restored.hard_state.commit, 2);

    storage.set_commit(2);
    storage
        .append_durably(&[entry(3, 1)], &hard_state(1, 1, 3))
        .unwrap();
    drop(storage);
    assert_eq!(reopen(&d).1.hard_state.commit, 3);
}

#[test]
fn a_snapshot_restarts_the_log_after_its_index() {
    // Proves create_snapshot writes snap file and mark so a reopen starts after the snapshot.
    let d = dirs();
    let mut storage = WalStorage::create(&d.wal, &d.snap, b"m", opts()).unwrap();
    let batch: Vec<Entry> = (1..=10).map(|i| entry(i, 1 + i / 6)).collect();
    storage
        .append_durably(&batch, &hard_state(2, 1, 8))
        .unwrap();
    let cs = ConfState::from((vec![1], vec![]));
    // Past the commit index: refused.
    assert!(storage.create_snapshot(9, cs.clone(), vec![]).is_err());
    let snap = storage
        .create_snapshot(7, cs.clone(), b"state@7".to_vec())
        .unwrap();
    assert_eq!(
        (snap.get_metadata().index, snap.get_metadata().term),
        (7, 2)
    );
    storage.compact(6).unwrap();
    assert_eq!(storage.first_index(), Ok(6));
    assert_eq!(storage.term(5), Ok(1));
    drop(storage);

    let (storage, restored) = reopen(&d);
    let restored_snap = restored.snapshot.expect("snapshot found");
    assert_eq!(restored_snap.data, b"state@7");
    assert_eq!(
        (restored_snap.metadata.index, restored_snap.metadata.term),
        (7, 2)
    );
    assert_eq!(restored_snap.metadata.conf_state.voters, vec![1]);
    assert_eq!(storage.first_index(), Ok(8));
    assert_eq!(storage.term(7), Ok(2));
    assert_eq!(
        storage.term(6),
        Err(::raft::Error::Store(StorageError::Compacted))
    );
    assert_eq!(all_entries(&storage), batch[7..].to_vec());
    let initial = storage.initial_state().unwrap();
    assert_eq!(initial.hard_state, hard_state(2, 1, 8));
    assert_eq!(initial.conf_state, cs);
    assert_eq!(
        Storage::snapshot(&storage, 7, 2)
            .unwrap()
            .get_metadata()
            .index,
        7
    );
}

#[test]
fn marks_past_the_wal_commit_index_are_not_trusted() {
    // Proves valid_snapshot_marks drops a mark the last hard state never committed.
    let d = dirs();
    let mut wal = Wal::create(&d.wal, b"", opts()).unwrap();
    let batch: Vec<pb::Entry> = (1..=6).map(|i| pb::Entry::normal(1, i, vec![])).collect();
    wal.save(
        Some(&pb::HardState {
            term: 1,
            vote: 1,
            commit: 4,
        }),
        &batch,
    )
    .unwrap();
    wal.save_snapshot(SnapshotMark { index: 3, term: 1 })
        .unwrap();
    wal.save_snapshot(SnapshotMark { index: 6, term: 1 })
        .unwrap();
    drop(wal);
    let marks = valid_snapshot_marks(&d.wal).unwrap();
    assert_eq!(
        marks,
        vec![SnapshotMark::default(), SnapshotMark { index: 3, term: 1 }]
    );
    assert!(valid_snapshot_marks(Path::new("/nonexistent/oxcd/wal")).is_err());
}

#[test]
fn the_newest_snapshot_whose_mark_is_valid_is_used() {
    // Proves a snap file without a trusted mark is skipped for the older valid one.
    let d = dirs();
    let mut storage = WalStorage::create(&d.wal, &d.snap, b"", opts()).unwrap();
    let batch: Vec<Entry> = (1..=9).map(|i| entry(i, 1)).collect();
    storage
        .append_durably(&batch, &hard_state(1, 1, 9))
        .unwrap();
    let cs = ConfState::from((vec![1], vec![]));
    storage.create_snapshot(4, cs, b"at 4".to_vec()).unwrap();
    drop(storage);
    // A snap file at 8 whose mark never reached the WAL (crash between file and mark).
    let orphan = pb::Snapshot {
        data: b"at 8".to_vec(),
        metadata: pb::SnapshotMetadata {
            conf_state: pb::ConfState {
                voters: vec![1],
                ..Default::default()
            },
            index: 8,
            term: 1,
        },
    };
    oxcd_wal::Snapshotter::new(&d.snap).save(&orphan).unwrap();
    let (storage, restored) = reopen(&d);
    assert_eq!(restored.snapshot.unwrap().data, b"at 4");
    assert_eq!(storage.first_index(), Ok(5));
    assert_eq!(storage.last_index(), Ok(9));
}
