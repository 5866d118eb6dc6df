//! Round trips through the writer and the readers: many segment cuts, reopen and continue,
//! the CRC chain across segments, snapshot marks, raft's overwrite rule, release and purge,
//! and the errors of create and open. Each test runs once per write path (`pwrite::NAME`,
//! `uring::NAME`).

mod common;

use common::{build, entry, opts, segments, state, METADATA};
use oxcd_wal::layout::{chain_crc, parse_wal_name};
use oxcd_wal::{
    probe_io_uring, read_all, read_records, Corruption, Entry, Error, HardState, IoMode,
    RecordBody, SnapshotMark, Wal, WalOptions, WalReader, IO_MODE_ENV,
};
use prost::Message;

const ZERO: SnapshotMark = SnapshotMark { index: 0, term: 0 };

fn entries_survive_many_cuts_and_reopen(io: IoMode) {
    // Proves every saved entry and the last hard state come back across ~30 segment cuts.
    let dir = tempfile::tempdir().expect("tempdir");
    let wal_dir = dir.path().join("wal");
    let wal = build(&wal_dir, 600, 4096, io);
    let held = wal.held_segments();
    drop(wal);
    let files = segments(&wal_dir);
    assert!(files.len() >= 20, "only {} segments", files.len());
    assert_eq!(held.len(), files.len(), "a fresh WAL holds every segment");
    let (wal, read) = Wal::open(&wal_dir, ZERO, opts(4096, io)).expect("open");
    assert_eq!(read.metadata, METADATA);
    assert_eq!(read.hard_state, state(600));
    assert_eq!(read.entries, (1..=600).map(entry).collect::<Vec<_>>());
    assert_eq!(wal.last_index(), 600);
    assert_eq!(read_all(&wal_dir, ZERO).expect("read_all"), read);
}

fn segment_names_and_headers_follow_etcd(io: IoMode) {
    // Proves names are (seq+1, last index+1) and each segment starts crc, metadata, state.
    let dir = tempfile::tempdir().expect("tempdir");
    let wal_dir = dir.path().join("wal");
    drop(build(&wal_dir, 300, 2048, io));
    let records = read_records(&wal_dir).expect("records");
    let mut last_entry = 0;
    let mut last_state = None;
    let mut previous_segment = String::new();
    let mut expected_seq = 0;
    for (i, r) in records.iter().enumerate() {
        if r.segment != previous_segment {
            let (seq, first_index) = parse_wal_name(&r.segment).expect("name");
            assert_eq!(seq, expected_seq);
            assert_eq!(first_index, if seq == 0 { 0 } else { last_entry + 1 });
            expected_seq += 1;
            previous_segment = r.segment.clone();
            assert_eq!(r.offset, 0);
            assert_eq!(r.body, RecordBody::Crc);
            assert_eq!(records[i + 1].body, RecordBody::Metadata(METADATA.to_vec()));
            if let Some(s) = last_state {
                assert_eq!(records[i + 2].body, RecordBody::HardState(s));
            }
        }
        match &r.body {
            RecordBody::Entry(e) => last_entry = e.index,
            RecordBody::HardState(s) => last_state = Some(*s),
            _ => {}
        }
    }
    assert!(expected_seq > 10);
}

fn crc_chain_continues_across_segments(io: IoMode) {
    // Proves each crc record carries the running CRC-32C of all earlier record data.
    let dir = tempfile::tempdir().expect("tempdir");
    let wal_dir = dir.path().join("wal");
    drop(build(&wal_dir, 200, 2048, io));
    let mut running = 0u32;
    let mut crc_records = 0;
    for r in read_records(&wal_dir).expect("records") {
        let data = match &r.body {
            RecordBody::Crc => {
                assert_eq!(r.crc, running, "{} starts with the previous CRC", r.segment);
                crc_records += 1;
                continue;
            }
            RecordBody::Metadata(m) => m.clone(),
            RecordBody::Entry(e) => e.encode_to_vec(),
            RecordBody::HardState(s) => s.encode_to_vec(),
            RecordBody::Snapshot(m) => m.encode_to_vec(),
        };
        running = chain_crc(running, &data);
        assert_eq!(r.crc, running, "{} at {}", r.segment, r.offset);
    }
    assert!(crc_records > 5);
}

fn a_broken_crc_record_is_corruption(io: IoMode) {
    // Proves a segment whose crc record does not match the previous segment is rejected.
    let dir = tempfile::tempdir().expect("tempdir");
    let wal_dir = dir.path().join("wal");
    drop(build(&wal_dir, 100, 2048, io));
    let second = segments(&wal_dir)[1].clone();
    let mut bytes = std::fs::read(&second).expect("read");
    // Frame at 0: length word, then 08 04 10 <crc varint>; flip a bit of the crc's first byte.
    bytes[11] ^= 0x01;
    std::fs::write(&second, &bytes).expect("write");
    match read_records(&wal_dir) {
        Err(Error::Corrupted {
            file,
            offset: 0,
            what: Corruption::CrcChainBroken { .. },
        }) => assert_eq!(file, second),
        other => panic!("expected a broken chain, got {other:?}"),
    }
}

fn reopen_and_continue_many_times(io: IoMode) {
    // Proves a WAL reopened repeatedly appends after what it read, across cuts.
    let dir = tempfile::tempdir().expect("tempdir");
    let wal_dir = dir.path().join("wal");
    drop(Wal::create(&wal_dir, METADATA, opts(3000, io)).expect("create"));
    let mut next = 1;
    for round in 0..12u64 {
        let (mut wal, read) = Wal::open(&wal_dir, ZERO, opts(3000, io)).expect("open");
        assert_eq!(read.entries.len() as u64, next - 1, "round {round}");
        for _ in 0..(5 + round * 3) {
            wal.save(Some(&state(next)), &[entry(next)]).expect("save");
            next += 1;
        }
    }
    let read = read_all(&wal_dir, ZERO).expect("read_all");
    assert_eq!(read.entries, (1..next).map(entry).collect::<Vec<_>>());
    assert_eq!(read.hard_state, state(next - 1));
}

fn open_at_a_snapshot_returns_only_later_entries(io: IoMode) {
    // Proves opening at a saved mark skips earlier entries and earlier segments.
    let dir = tempfile::tempdir().expect("tempdir");
    let wal_dir = dir.path().join("wal");
    let mut wal = build(&wal_dir, 150, 2048, io);
    let mark = SnapshotMark {
        index: 120,
        term: entry(120).term,
    };
    wal.save_snapshot(mark).expect("snapshot");
    for i in 151..=250 {
        wal.save(Some(&state(i)), &[entry(i)]).expect("save");
    }
    drop(wal);
    let (_wal, read) = Wal::open(&wal_dir, mark, opts(2048, io)).expect("open at mark");
    assert_eq!(read.entries, (121..=250).map(entry).collect::<Vec<_>>());
    assert_eq!(read.hard_state, state(250));
    let mut reader = WalReader::open_at(&wal_dir, mark.index).expect("reader");
    let first = reader.next().expect("a record").expect("valid");
    assert_ne!(
        first.segment,
        segments(&wal_dir)[0].file_name().unwrap().to_str().unwrap()
    );

    let wrong_term = SnapshotMark {
        index: 120,
        term: 99,
    };
    assert!(matches!(
        read_all(&wal_dir, wrong_term),
        Err(Error::SnapshotMismatch {
            index: 120,
            wanted: 99,
            ..
        })
    ));
    let never = SnapshotMark {
        index: 130,
        term: 3,
    };
    assert!(matches!(
        read_all(&wal_dir, never),
        Err(Error::SnapshotNotFound { .. })
    ));
}

fn later_entries_overwrite_a_suffix(io: IoMode) {
    // Proves raft's rule: an entry at an earlier index replaces the entries from there on.
    let dir = tempfile::tempdir().expect("tempdir");
    let wal_dir = dir.path().join("wal");
    let mut wal = build(&wal_dir, 20, 1 << 20, io);
    let replacement: Vec<Entry> = (15..=17)
        .map(|i| Entry::normal(9, i, format!("new {i}").into_bytes()))
        .collect();
    wal.save(
        Some(&HardState {
            term: 9,
            vote: 2,
            commit: 14,
        }),
        &replacement,
    )
    .expect("save");
    drop(wal);
    let read = read_all(&wal_dir, ZERO).expect("read");
    let mut want: Vec<Entry> = (1..=14).map(entry).collect();
    want.extend(replacement);
    assert_eq!(read.entries, want);
}

fn release_and_purge_keep_what_is_needed(io: IoMode) {
    // Proves purge removes only released segments beyond max_wals, oldest first.
    let dir = tempfile::tempdir().expect("tempdir");
    let wal_dir = dir.path().join("wal");
    let mut wal = build(&wal_dir, 400, 2048, io);
    let total = segments(&wal_dir).len();
    assert!(total > 12);
    assert!(
        wal.purge().expect("purge").is_empty(),
        "nothing released yet"
    );

    let index = 200;
    let names: Vec<(u64, u64)> = wal
        .held_segments()
        .iter()
        .map(|n| parse_wal_name(n).expect("name"))
        .collect();
    let first_at_or_after = names.iter().position(|&(_, i)| i >= index).expect("exists");
    wal.release_lock_to(index);
    let held = wal.held_segments();
    assert_eq!(held.len(), names.len() - (first_at_or_after - 1));
    let (_, oldest_held_index) = parse_wal_name(&held[0]).expect("name");
    assert!(
        oldest_held_index < index,
        "the segment holding index {index} is kept"
    );

    let removed = wal.purge().expect("purge");
    assert_eq!(removed.len(), first_at_or_after - 1);
    assert_eq!(segments(&wal_dir).len(), total - removed.len());
    let mark = SnapshotMark {
        index,
        term: entry(index).term,
    };
    wal.save_snapshot(mark).expect("snapshot");
    drop(wal);
    let read = read_all(&wal_dir, mark).expect("still readable from the mark");
    assert_eq!(
        read.entries,
        (index + 1..=400).map(entry).collect::<Vec<_>>()
    );

    // Releasing everything and purging keeps max_wals segments.
    let (mut wal, _) = Wal::open(&wal_dir, mark, opts(2048, io)).expect("open");
    wal.release_lock_to(u64::MAX);
    assert_eq!(wal.held_segments().len(), 1);
    wal.purge().expect("purge");
    assert_eq!(segments(&wal_dir).len(), 5);
}

fn create_and_open_refuse_what_they_must(io: IoMode) {
    // Proves AlreadyExists, NotFound, Locked, IndexNotCovered and a lost tail header.
    let dir = tempfile::tempdir().expect("tempdir");
    let wal_dir = dir.path().join("wal");
    assert!(matches!(read_all(&wal_dir, ZERO), Err(Error::Io { .. })));
    std::fs::create_dir(&wal_dir).expect("mkdir");
    assert!(matches!(
        read_all(&wal_dir, ZERO),
        Err(Error::NotFound { .. })
    ));
    std::fs::write(wal_dir.join("stray"), b"x").expect("stray");
    let wal = Wal::create(&wal_dir, METADATA, opts(4096, io)).expect("create over an empty dir");
    assert!(
        !wal_dir.join("stray").exists(),
        "create replaces the directory"
    );
    assert!(matches!(
        Wal::create(&wal_dir, METADATA, opts(4096, io)),
        Err(Error::AlreadyExists { .. })
    ));
    assert!(matches!(
        Wal::open(&wal_dir, ZERO, opts(4096, io)),
        Err(Error::Locked { .. })
    ));
    drop(wal);
    assert!(!dir.path().join("wal.tmp").exists());
    let (wal, read) = Wal::open(&wal_dir, ZERO, opts(4096, io)).expect("open");
    assert!(read.entries.is_empty());
    assert_eq!(read.hard_state, HardState::default());
    drop(wal);

    let other = dir.path().join("other");
    drop(build(&other, 100, 2048, io));
    let first = segments(&other)[0].clone();
    std::fs::remove_file(&first).expect("remove");
    assert!(matches!(
        read_all(&other, ZERO),
        Err(Error::IndexNotCovered { index: 0, .. })
    ));
    let files = segments(&other);
    std::fs::remove_file(&files[files.len() / 2]).expect("remove");
    assert!(matches!(
        read_all(&other, SnapshotMark { index: 1, term: 1 }),
        Err(Error::IndexNotCovered { .. })
            | Err(Error::Corrupted {
                what: Corruption::SequenceGap { .. },
                ..
            })
    ));
}

fn oversized_entries_are_refused_before_writing(io: IoMode) {
    // Proves an entry over the 10 MiB limit is an error and leaves the WAL usable.
    let dir = tempfile::tempdir().expect("tempdir");
    let wal_dir = dir.path().join("wal");
    let mut wal = build(&wal_dir, 3, 1 << 20, io);
    let huge = Entry::normal(1, 4, vec![1; 10 * 1024 * 1024]);
    assert!(matches!(
        wal.save(None, &[huge]),
        Err(Error::RecordTooLarge { .. })
    ));
    wal.save(Some(&state(4)), &[entry(4)])
        .expect("still usable");
    drop(wal);
    assert_eq!(read_all(&wal_dir, ZERO).expect("read").entries.len(), 4);
}

fn preallocated_spare_is_cleaned_up(io: IoMode) {
    // Proves the background spare (N.tmp) exists while open and is removed on drop.
    let dir = tempfile::tempdir().expect("tempdir");
    let wal_dir = dir.path().join("wal");
    let wal = build(&wal_dir, 50, 2048, io);
    let tmp_count = || {
        std::fs::read_dir(&wal_dir)
            .expect("read_dir")
            .filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "tmp"))
            })
            .count()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while tmp_count() == 0 && std::time::Instant::now() < deadline {
        std::thread::yield_now();
    }
    assert_eq!(tmp_count(), 1);
    drop(wal);
    assert_eq!(tmp_count(), 0);
}

#[test]
fn default_options_use_io_uring_exactly_where_it_works() {
    // Proves IoMode::Auto (the default) picks io_uring when the probe passes and pwrite when
    // it fails, unless OXCD_WAL_IO steers it.
    let dir = tempfile::tempdir().expect("tempdir");
    let wal_dir = dir.path().join("wal");
    let options = WalOptions {
        segment_size_bytes: 4096,
        ..WalOptions::default()
    };
    assert_eq!(options.io, IoMode::Auto);
    let mut wal = Wal::create(&wal_dir, METADATA, options.clone()).expect("create");
    let steered = std::env::var(IO_MODE_ENV)
        .ok()
        .map(|v| v.parse::<IoMode>().expect("a valid OXCD_WAL_IO"))
        .filter(|&m| m != IoMode::Auto);
    let want = steered.unwrap_or(if probe_io_uring().is_ok() {
        IoMode::Uring
    } else {
        IoMode::Pwrite
    });
    assert_eq!(wal.io_mode(), want);
    wal.save(Some(&state(1)), &[entry(1)]).expect("save");
    drop(wal);
    let (wal, read) = Wal::open(&wal_dir, ZERO, options).expect("open");
    assert_eq!(wal.io_mode(), want);
    assert_eq!(read.entries, [entry(1)]);
}

common::io_mode_tests!(
    entries_survive_many_cuts_and_reopen,
    segment_names_and_headers_follow_etcd,
    crc_chain_continues_across_segments,
    a_broken_crc_record_is_corruption,
    reopen_and_continue_many_times,
    open_at_a_snapshot_returns_only_later_entries,
    later_entries_overwrite_a_suffix,
    release_and_purge_keep_what_is_needed,
    create_and_open_refuse_what_they_must,
    oversized_entries_are_refused_before_writing,
    preallocated_spare_is_cleaned_up,
);
