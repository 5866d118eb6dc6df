//! Interoperability with etcd 3.4's own `wal` package, driven through a small Go program
//! (`tests/go/walcheck`) built offline against the etcd sources on the machine: etcd reads
//! WALs we wrote (from the start and from a snapshot mark), appends to them and cuts its own
//! segments, and we read everything it wrote; a WAL etcd created reads the same here; snap
//! files cross both ways.
//!
//! Needs `go` and etcd's sources (Debian: golang-go, golang-etcd-server-dev, which
//! scripts/test.sh installs); like every interoperability test here, it fails without them
//! rather than skip.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{build, entry, state, METADATA};
use oxcd_wal::{
    read_all, read_records, ConfState, Entry, EntryType, HardState, IoMode, Snapshot, SnapshotMark,
    SnapshotMetadata, Snapshotter, Wal, WalOptions,
};

const ETCD_SOURCES: &str = "/usr/share/gocode/src/go.etcd.io/etcd/wal";
const ZERO: SnapshotMark = SnapshotMark { index: 0, term: 0 };

/// Builds walcheck once per test binary run.
fn walcheck() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
            let script = crate_dir.join("../scripts/go-build-offline.sh");
            let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("go-walcheck/walcheck");
            let status = Command::new("bash")
                .arg(&script)
                .arg(crate_dir.join("tests/go/walcheck"))
                .arg(&out)
                .arg("go.etcd.io/etcd/wal")
                .status()
                .expect("run scripts/go-build-offline.sh");
            assert!(
                status.success(),
                "go build of walcheck failed: needs `go` and etcd 3.4 sources in {ETCD_SOURCES} \
                 (see scripts/test.sh)"
            );
            out
        })
        .clone()
}

/// What etcd's `ReadAll` returned.
#[derive(Debug, Default, PartialEq)]
struct EtcdRead {
    metadata: Vec<u8>,
    state: HardState,
    entries: Vec<Entry>,
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

fn run(tool: &Path, args: &[&str]) -> String {
    let out = Command::new(tool)
        .args(args)
        .output()
        .expect("run walcheck");
    assert!(
        out.status.success(),
        "walcheck {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

fn etcd_read(tool: &Path, dir: &Path, at: SnapshotMark) -> EtcdRead {
    let (index, term) = (at.index.to_string(), at.term.to_string());
    let text = run(tool, &["read", dir.to_str().expect("utf-8"), &index, &term]);
    let mut read = EtcdRead::default();
    for line in text.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        let n = |i: usize| f[i].parse::<u64>().expect("number");
        match f[0] {
            "metadata" => read.metadata = unhex(f[1]),
            "state" => {
                read.state = HardState {
                    term: n(1),
                    vote: n(2),
                    commit: n(3),
                }
            }
            "entry" => read.entries.push(Entry {
                entry_type: f[3].parse().expect("type"),
                term: n(2),
                index: n(1),
                data: unhex(f.get(4).copied().unwrap_or("")),
            }),
            other => panic!("unexpected walcheck line {other:?}"),
        }
    }
    read
}

fn etcd_entry(term: u64, index: u64) -> Entry {
    Entry {
        entry_type: EntryType::EntryNormal as i32,
        term,
        index,
        data: format!("etcd {index}").into_bytes(),
    }
}

#[test]
fn etcd_reads_our_wal_and_we_read_its_appends() {
    // Proves both directions on one directory: etcd reads our segments, cuts its own, and we
    // verify every record it wrote, then append again for etcd to read.
    let tool = walcheck();
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("wal");
    let mut wal = build(&dir, 300, 4096, IoMode::Auto);
    let mark = SnapshotMark {
        index: 120,
        term: entry(120).term,
    };
    wal.save_snapshot(mark).expect("snapshot");
    drop(wal);
    let ours: Vec<Entry> = (1..=300).map(entry).collect();
    let read = etcd_read(&tool, &dir, ZERO);
    assert_eq!(read.metadata, METADATA);
    assert_eq!(read.state, state(300));
    assert_eq!(read.entries, ours);
    assert_eq!(etcd_read(&tool, &dir, mark).entries, ours[120..]);

    let d = dir.to_str().expect("utf-8");
    run(&tool, &["append", d, "0", "0", "200", "4096"]);
    let term = state(300).term + 1;
    let mut all = ours.clone();
    all.extend((301..=500).map(|i| etcd_entry(term, i)));
    let ours_read = read_all(&dir, ZERO).expect("read etcd's appends");
    assert_eq!(ours_read.entries, all);
    assert_eq!(
        ours_read.hard_state,
        HardState {
            term,
            vote: 1,
            commit: 500
        }
    );
    assert!(read_records(&dir).expect("records").len() > 700);

    let opts = WalOptions {
        segment_size_bytes: 4096,
        max_wals: 5,
        ..WalOptions::default()
    };
    let (mut wal, _) = Wal::open(&dir, ZERO, opts).expect("open after etcd");
    let more: Vec<Entry> = (501..=560).map(entry).collect();
    for e in &more {
        wal.save(Some(&state(e.index)), std::slice::from_ref(e))
            .expect("save");
    }
    drop(wal);
    all.extend(more);
    let read = etcd_read(&tool, &dir, ZERO);
    assert_eq!(read.entries, all);
    assert_eq!(read.state, state(560));
}

#[test]
fn we_read_a_wal_etcd_created() {
    // Proves our reader follows etcd's create, cuts and CRC chain from the very first byte.
    let tool = walcheck();
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("wal");
    run(
        &tool,
        &["create", dir.to_str().expect("utf-8"), "250", "4096"],
    );
    let read = read_all(&dir, ZERO).expect("read etcd's wal");
    assert_eq!(read.metadata, b"etcd metadata");
    assert_eq!(
        read.entries,
        (1..=250).map(|i| etcd_entry(2, i)).collect::<Vec<_>>()
    );
    assert_eq!(
        read.hard_state,
        HardState {
            term: 2,
            vote: 1,
            commit: 250
        }
    );
    let segments = std::fs::read_dir(&dir)
        .expect("read_dir")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "wal"))
        })
        .count();
    assert!(segments > 3, "etcd cut only {segments} segments");
}

#[test]
fn snap_files_cross_both_ways() {
    // Proves etcd loads the snap files we save and we load the ones etcd saves.
    let tool = walcheck();
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path();
    let d = dir.to_str().expect("utf-8");
    let snapshotter = Snapshotter::new(dir);
    let ours = Snapshot {
        data: b"{\"v2 store\":true}".to_vec(),
        metadata: SnapshotMetadata {
            conf_state: ConfState {
                voters: vec![1, 2, 3],
                ..ConfState::default()
            },
            index: 1000,
            term: 4,
        },
    };
    snapshotter.save(&ours).expect("save");
    assert_eq!(
        run(&tool, &["snap-load", d]).trim(),
        "snap 4 1000 1,2,3 7b2276322073746f7265223a747275657d"
    );
    run(&tool, &["snap-save", d, "5", "2000", "6574636420736e6170"]);
    let theirs = snapshotter.load().expect("load etcd's snap file");
    assert_eq!(theirs.data, b"etcd snap");
    assert_eq!((theirs.metadata.term, theirs.metadata.index), (5, 2000));
    assert_eq!(theirs.metadata.conf_state.voters, [1, 2, 3]);
}
