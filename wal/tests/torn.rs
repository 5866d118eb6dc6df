//! Damage tests: truncation of the last segment at every byte offset, zeroed sectors, random
//! byte flips, `repair`, and appending after a torn tail. A torn tail must yield exactly the
//! complete-record prefix; damage elsewhere must be a typed error; nothing may panic. Each
//! test runs once per write path (`pwrite::NAME`, `uring::NAME`).

mod common;

use std::path::{Path, PathBuf};

use common::{build, copy_dir, entry, opts, segments, state};
use oxcd_wal::layout::SECTOR_BYTES;
use oxcd_wal::{
    read_all, read_records, repair, DumpRecord, Entry, Error, HardState, IoMode, ReadAll,
    RecordBody, RepairOutcome, SnapshotMark, Wal, WalReader,
};
use rand::{Rng, SeedableRng};

const ZERO: SnapshotMark = SnapshotMark { index: 0, term: 0 };

fn file_name(path: &Path) -> String {
    path.file_name()
        .and_then(|n| n.to_str())
        .expect("utf-8 name")
        .to_owned()
}

/// What `read_all` must return for a WAL whose records are `records`.
fn expected_read_all(records: &[DumpRecord]) -> ReadAll {
    let mut read = ReadAll::default();
    for r in records {
        match &r.body {
            RecordBody::Metadata(m) => read.metadata = m.clone(),
            RecordBody::Entry(e) => read.entries.push(e.clone()),
            RecordBody::HardState(s) => read.hard_state = *s,
            RecordBody::Crc | RecordBody::Snapshot(_) => {}
        }
    }
    read
}

/// The records of `all` that survive when the segment `last` is cut to `len` bytes.
fn prefix_within(all: &[DumpRecord], last: &str, len: u64) -> Vec<DumpRecord> {
    all.iter()
        .filter(|r| r.segment != last || r.offset + r.frame_bytes <= len)
        .cloned()
        .collect()
}

/// A WAL written through `io` over several segments with a last segment of a few KiB, its
/// records and last file.
fn fixture(
    root: &Path,
    entries: u64,
    segment_size: u64,
    io: IoMode,
) -> (PathBuf, Vec<DumpRecord>, PathBuf) {
    let wal_dir = root.join("wal");
    drop(build(&wal_dir, entries, segment_size, io));
    let all = read_records(&wal_dir).expect("records");
    let last = segments(&wal_dir).pop().expect("a segment");
    (wal_dir, all, last)
}

fn truncation_at_every_offset_keeps_the_complete_prefix(io: IoMode) {
    // Proves: cutting the last segment at any byte keeps exactly the records that end before.
    let root = tempfile::tempdir().expect("tempdir");
    let (wal_dir, all, last) = fixture(root.path(), 140, 2048, io);
    assert!(segments(&wal_dir).len() >= 5);
    let name = file_name(&last);
    let full_len = std::fs::metadata(&last).expect("stat").len();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&last)
        .expect("open");
    for len in (0..=full_len).rev() {
        file.set_len(len).expect("truncate");
        let want = prefix_within(&all, &name, len);
        let got = read_records(&wal_dir)
            .unwrap_or_else(|e| panic!("cut at {len}: read_records failed: {e}"));
        assert_eq!(got, want, "cut at {len}");
        let read = read_all(&wal_dir, ZERO).unwrap_or_else(|e| panic!("cut at {len}: {e}"));
        assert_eq!(read, expected_read_all(&want), "cut at {len}");
    }
}

fn open_after_truncation_appends_cleanly(io: IoMode) {
    // Proves Wal::open on a cut last segment (even one cut to nothing) resumes and appends.
    let root = tempfile::tempdir().expect("tempdir");
    let (wal_dir, all, last) = fixture(root.path(), 140, 2048, io);
    let name = file_name(&last);
    let full_len = std::fs::metadata(&last).expect("stat").len();
    let lens: Vec<u64> = (0..24).chain((24..full_len).step_by(61)).collect();
    for len in lens {
        let copy = root.path().join(format!("copy-{len}"));
        copy_dir(&wal_dir, &copy);
        let copy_last = copy.join(&name);
        std::fs::OpenOptions::new()
            .write(true)
            .open(&copy_last)
            .and_then(|f| f.set_len(len))
            .expect("truncate");
        let want = expected_read_all(&prefix_within(&all, &name, len));
        let (mut wal, read) = Wal::open(&copy, ZERO, opts(2048, io))
            .unwrap_or_else(|e| panic!("cut at {len}: open failed: {e}"));
        assert_eq!(read, want, "cut at {len}");
        let next = read.entries.last().map_or(1, |e| e.index + 1);
        let more: Vec<Entry> = (next..next + 40).map(entry).collect();
        for e in &more {
            wal.save(Some(&state(e.index)), std::slice::from_ref(e))
                .expect("save");
        }
        drop(wal);
        let again = read_all(&copy, ZERO).expect("reopen");
        let mut entries = want.entries.clone();
        entries.extend(more);
        assert_eq!(again.entries, entries, "cut at {len}");
        std::fs::remove_dir_all(&copy).expect("cleanup");
    }
}

fn zeroed_sectors_end_the_last_segment_and_corrupt_the_others(io: IoMode) {
    // Proves a zeroed sector (or run of them) is a torn tail in the last segment, an error
    // elsewhere, and never a panic.
    let root = tempfile::tempdir().expect("tempdir");
    let (wal_dir, all, last) = fixture(root.path(), 400, 16 * 1024, io);
    let files = segments(&wal_dir);
    assert!(files.len() >= 4);
    let name = file_name(&last);
    let last_data_end = all
        .iter()
        .filter(|r| r.segment == name)
        .map(|r| r.offset + r.frame_bytes)
        .max()
        .expect("records in the last segment");
    for path in &files {
        let original = std::fs::read(path).expect("read");
        let is_last = *path == last;
        let data_len = if is_last {
            last_data_end
        } else {
            original.len() as u64
        };
        for sector in (0..data_len).step_by(SECTOR_BYTES as usize) {
            for run in [1u64, 3] {
                let mut damaged = original.clone();
                let end = (sector + run * SECTOR_BYTES).min(damaged.len() as u64);
                damaged[sector as usize..end as usize].fill(0);
                std::fs::write(path, &damaged).expect("write");
                let got = read_records(&wal_dir);
                if is_last {
                    let got = got.unwrap_or_else(|e| panic!("sector {sector}: {e}"));
                    assert_eq!(got, prefix_within(&all, &name, sector), "sector {sector}");
                } else {
                    assert!(
                        matches!(got, Err(Error::Corrupted { .. })),
                        "{} sector {sector}: {got:?}",
                        path.display()
                    );
                }
            }
        }
        std::fs::write(path, &original).expect("restore");
    }
    assert_eq!(read_records(&wal_dir).expect("restored"), all);
}

fn random_byte_flips_give_an_error_or_a_clean_prefix(io: IoMode) {
    // Proves any single damaged byte yields a typed error or a prefix of the true records.
    let seed = std::env::var("OXCD_FLIP_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::thread_rng().gen());
    println!("OXCD_FLIP_SEED={seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let root = tempfile::tempdir().expect("tempdir");
    let (wal_dir, all, _) = fixture(root.path(), 300, 8192, io);
    let truth = expected_read_all(&all);
    let files = segments(&wal_dir);
    let originals: Vec<Vec<u8>> = files
        .iter()
        .map(|p| std::fs::read(p).expect("read"))
        .collect();
    let (mut errors, mut prefixes) = (0, 0);
    for _ in 0..3000 {
        let which = rng.gen_range(0..files.len());
        let mut damaged = originals[which].clone();
        let at = rng.gen_range(0..damaged.len());
        damaged[at] ^= rng.gen_range(1..=255u8);
        std::fs::write(&files[which], &damaged).expect("write");
        let context = format!("seed {seed}: {} byte {at}", file_name(&files[which]));
        match read_records(&wal_dir) {
            Ok(got) => {
                assert!(
                    got.len() <= all.len() && got[..] == all[..got.len()],
                    "{context}"
                );
                prefixes += 1;
            }
            Err(Error::Corrupted { .. }) => errors += 1,
            Err(e) => panic!("{context}: untyped damage error {e}"),
        }
        match read_all(&wal_dir, ZERO) {
            Ok(read) => {
                assert_eq!(read.metadata, truth.metadata, "{context}");
                assert!(truth.entries.starts_with(&read.entries), "{context}");
            }
            Err(Error::Corrupted { .. } | Error::SnapshotNotFound { .. }) => {}
            Err(e) => panic!("{context}: unexpected read_all error {e}"),
        }
        std::fs::write(&files[which], &originals[which]).expect("restore");
    }
    println!("{errors} errors, {prefixes} clean prefixes");
    assert!(errors > 1000, "most flips land in checked bytes");
}

fn repair_saves_the_tail_and_truncates(io: IoMode) {
    // Proves repair copies a torn segment to .broken, cuts it at the last complete record,
    // leaves a clean WAL, and refuses damage in the middle.
    let root = tempfile::tempdir().expect("tempdir");
    let (wal_dir, all, last) = fixture(root.path(), 120, 4096, io);
    let name = file_name(&last);
    assert_eq!(repair(&wal_dir).expect("clean"), RepairOutcome::Clean);
    let in_last: Vec<&DumpRecord> = all.iter().filter(|r| r.segment == name).collect();
    let victim = in_last[in_last.len() - 2];
    let cut = victim.offset + victim.frame_bytes / 2;
    let original = std::fs::read(&last).expect("read");
    std::fs::write(&last, &original[..cut as usize]).expect("tear");
    let torn_tail = {
        let mut reader = WalReader::open(&wal_dir).expect("reader");
        for r in reader.by_ref() {
            r.expect("valid prefix");
        }
        reader.torn_tail().cloned().expect("torn")
    };
    assert_eq!(torn_tail.offset, victim.offset);
    match repair(&wal_dir).expect("repair") {
        RepairOutcome::Repaired {
            segment,
            broken,
            valid_end,
        } => {
            assert_eq!(segment, last);
            assert_eq!(valid_end, victim.offset);
            assert_eq!(
                std::fs::read(&broken).expect("broken"),
                &original[..cut as usize]
            );
            assert_eq!(std::fs::metadata(&last).expect("stat").len(), valid_end);
        }
        RepairOutcome::Clean => panic!("a torn tail was not repaired"),
    }
    assert_eq!(repair(&wal_dir).expect("again"), RepairOutcome::Clean);
    assert_eq!(
        read_records(&wal_dir).expect("read"),
        prefix_within(&all, &name, cut)
    );

    let tail = &segments(&wal_dir)[segments(&wal_dir).len() - 1];
    let mut bytes = std::fs::read(tail).expect("read");
    bytes[40] ^= 0xff;
    std::fs::write(tail, &bytes).expect("corrupt");
    assert!(matches!(repair(&wal_dir), Err(Error::Corrupted { .. })));
}

fn open_zeroes_a_torn_tail_before_appending(io: IoMode) {
    // Proves bytes of a torn write after the valid end are zeroed, so new frames never mix
    // with them, and the file keeps its preallocated length.
    let root = tempfile::tempdir().expect("tempdir");
    let (wal_dir, all, last) = fixture(root.path(), 60, 64 * 1024, io);
    let name = file_name(&last);
    let end = all
        .iter()
        .filter(|r| r.segment == name)
        .map(|r| r.offset + r.frame_bytes)
        .max()
        .expect("records");
    let mut bytes = std::fs::read(&last).expect("read");
    let len = bytes.len();
    // A torn frame: a plausible length word, one sector of garbage, then a hole of zeroes,
    // then one more garbage sector further on.
    bytes[end as usize..end as usize + 8].copy_from_slice(&2000u64.to_le_bytes());
    bytes[end as usize + 8..end as usize + 300].fill(0x5a);
    let far = (end as usize / 512 + 4) * 512;
    bytes[far..far + 512].fill(0xa5);
    std::fs::write(&last, &bytes).expect("tear");

    let (mut wal, read) = Wal::open(&wal_dir, ZERO, opts(64 * 1024, io)).expect("open");
    assert_eq!(read, expected_read_all(&all));
    let after = std::fs::read(&last).expect("read");
    assert_eq!(after.len(), len);
    assert!(after[end as usize..].iter().all(|&b| b == 0));
    let hs = HardState {
        term: 9,
        vote: 1,
        commit: 61,
    };
    wal.save(Some(&hs), &[entry(61)]).expect("save");
    drop(wal);
    let again = read_all(&wal_dir, ZERO).expect("read");
    assert_eq!(again.entries.len(), 61);
    assert_eq!(again.hard_state, hs);
}

common::io_mode_tests!(
    truncation_at_every_offset_keeps_the_complete_prefix,
    open_after_truncation_appends_cleanly,
    zeroed_sectors_end_the_last_segment_and_corrupt_the_others,
    random_byte_flips_give_an_error_or_a_clean_prefix,
    repair_saves_the_tail_and_truncates,
    open_zeroes_a_torn_tail_before_appending,
);
