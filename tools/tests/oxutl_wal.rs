// Proves `oxutl wal dump` and `oxutl wal verify` on WALs written with oxcd-wal.
//! Each test writes a WAL with `oxcd_wal::Wal` in a temp dir (small segments, so it spans
//! several), runs the real binary on it and checks stdout, stderr and the exit code.
//!
//! The sample WAL, in `DATA/member/wal`: metadata {node 0xabc, cluster 0xdef}; entry 1 a
//! ConfChange adding 0xabc (term 1); entry 2 empty (term 2); entries 3..=40 puts of
//! `key-NNN` with 200-byte values; a snapshot mark at (2, 10); entry 41 written at term 2 and
//! then overwritten at term 3 by a txn; entry 42 a delete, 43 a lease grant, 44 a v2 request,
//! 45 a compaction; a hard state after every batch, the last {3, 0xabc, 45}. Next to it,
//! `DATA/member/snap` holds a valid snap file at (2, 10) and a broken one. Smaller WALs
//! built step by step test the index, term and commit rules.

use std::path::{Path, PathBuf};
use std::process::Command;

use oxcd_tools::wal::etcdpb::{
    CompactionRequest, Compare, ConfChange, DeleteRangeRequest, InternalRaftRequest,
    LeaseGrantRequest, Metadata, PutRequest, Request, RequestHeader, RequestOp, TxnRequest,
};
use oxcd_wal::{
    read_records, ConfState, Entry, EntryType, HardState, Snapshot, SnapshotMark, SnapshotMetadata,
    Snapshotter, Wal, WalOptions,
};
use prost::Message;
use serde_json::Value;

const SEGMENT_SIZE_BYTES: u64 = 4096;

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn ok(&self) -> &str {
        assert_eq!(self.code, 0, "exit code; stderr: {}", self.stderr);
        assert!(self.stderr.is_empty(), "unexpected stderr: {}", self.stderr);
        &self.stdout
    }

    /// Asserts exit 1 with exactly one stderr line containing every one of `parts`.
    fn failed_with(&self, parts: &[&str]) -> &str {
        assert_eq!(self.code, 1, "exit code; stderr: {}", self.stderr);
        assert_eq!(self.stderr.lines().count(), 1, "{:?}", self.stderr);
        for part in parts {
            assert!(self.stderr.contains(part), "{part:?} in {:?}", self.stderr);
        }
        &self.stderr
    }
}

fn oxutl(args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_oxutl"))
        .args(args)
        .output()
        .expect("run oxutl");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout).expect("utf-8 stdout"),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn wal(cmd: &str, dir: &Path, extra: &[&str]) -> Run {
    let mut args = vec!["wal", cmd, dir.to_str().expect("utf-8 path")];
    args.extend_from_slice(extra);
    oxutl(&args)
}

fn internal(build: impl FnOnce(&mut InternalRaftRequest)) -> Vec<u8> {
    let mut request = InternalRaftRequest {
        header: Some(RequestHeader {
            id: 7,
            ..RequestHeader::default()
        }),
        ..InternalRaftRequest::default()
    };
    build(&mut request);
    request.encode_to_vec()
}

fn put(key: &str, value_len: usize) -> PutRequest {
    PutRequest {
        key: key.as_bytes().to_vec(),
        value: vec![b'v'; value_len],
        ..PutRequest::default()
    }
}

fn normal(term: u64, index: u64, data: Vec<u8>) -> Entry {
    Entry::normal(term, index, data)
}

fn state(term: u64, commit: u64) -> HardState {
    HardState {
        term,
        vote: 0xabc,
        commit,
    }
}

/// Writes the sample WAL (see the file's doc) and returns the data dir.
fn sample(root: &Path) -> PathBuf {
    let data = root.join("data");
    let metadata = Metadata {
        node_id: 0xabc,
        cluster_id: 0xdef,
    };
    let opts = WalOptions {
        segment_size_bytes: SEGMENT_SIZE_BYTES,
        ..WalOptions::default()
    };
    let mut w =
        Wal::create(&data.join("member/wal"), &metadata.encode_to_vec(), opts).expect("create wal");
    let add = ConfChange {
        id: 1,
        change_type: 0,
        node_id: 0xabc,
        context: Some(b"{\"name\":\"a\"}".to_vec()),
    };
    let first = Entry {
        entry_type: EntryType::EntryConfChange as i32,
        term: 1,
        index: 1,
        data: add.encode_to_vec(),
    };
    w.save(Some(&state(1, 1)), &[first]).expect("save");
    w.save(Some(&state(2, 2)), &[normal(2, 2, vec![])])
        .expect("save");
    for index in 3..=40 {
        let data = internal(|r| r.put = Some(put(&format!("key-{index:03}"), 200)));
        w.save(Some(&state(2, index)), &[normal(2, index, data)])
            .expect("save");
        if index == 10 {
            w.save_snapshot(SnapshotMark { index: 10, term: 2 })
                .expect("snapshot");
        }
    }
    let lost = internal(|r| r.put = Some(put("lost", 1)));
    w.save(None, &[normal(2, 41, lost)]).expect("save");
    let txn = internal(|r| {
        r.txn = Some(TxnRequest {
            compare: vec![Compare {
                key: b"key-003".to_vec(),
                value: Some(b"x".to_vec()),
                target: 3,
                ..Compare::default()
            }],
            success: vec![RequestOp {
                request_put: Some(put("t1", 2)),
                ..RequestOp::default()
            }],
            failure: vec![],
        })
    });
    let delete = internal(|r| {
        r.delete_range = Some(DeleteRangeRequest {
            key: b"key-004".to_vec(),
            ..DeleteRangeRequest::default()
        })
    });
    let grant = internal(|r| r.lease_grant = Some(LeaseGrantRequest { ttl: 30, id: 0x99 }));
    let v2 = Request {
        id: 5,
        method: b"PUT".to_vec(),
        path: b"/0/version".to_vec(),
        val: b"3.4.0".to_vec(),
    };
    let compaction = internal(|r| {
        r.compaction = Some(CompactionRequest {
            revision: 20,
            physical: true,
        })
    });
    let tail = [
        normal(3, 41, txn),
        normal(3, 42, delete),
        normal(3, 43, grant),
        normal(3, 44, v2.encode_to_vec()),
        normal(3, 45, compaction),
    ];
    w.save(Some(&state(3, 45)), &tail).expect("save");
    drop(w);
    let snap_dir = data.join("member/snap");
    std::fs::create_dir_all(&snap_dir).expect("mkdir snap");
    let snapshot = Snapshot {
        data: b"{}".to_vec(),
        metadata: SnapshotMetadata {
            conf_state: ConfState {
                voters: vec![0xabc],
                ..ConfState::default()
            },
            index: 10,
            term: 2,
        },
    };
    Snapshotter::new(&snap_dir)
        .save(&snapshot)
        .expect("save snap");
    std::fs::write(snap_dir.join(BROKEN_SNAP), b"not a snapshot").expect("write broken snap");
    data
}

/// A snap file with a valid name and garbage inside.
const BROKEN_SNAP: &str = "0000000000000003-0000000000000020.snap";

fn segments(wal_dir: &Path) -> Vec<PathBuf> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(wal_dir)
        .expect("read wal dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "wal"))
        .collect();
    names.sort();
    names
}

/// The entry lines of a text dump (after the column header).
fn entry_lines(text: &str) -> Vec<&str> {
    let header = text
        .lines()
        .position(|l| l.starts_with("term\t"))
        .expect("column header");
    text.lines().skip(header + 1).collect()
}

#[test]
fn dump_prints_header_records_and_one_line_per_entry() {
    // Proves the whole text dump: metadata, snapshot marks, last hard state, the effective log.
    let root = tempfile::tempdir().expect("tempdir");
    let data = sample(root.path());
    let wal_dir = data.join("member/wal");
    let count = segments(&wal_dir).len();
    assert!(count >= 3, "the sample spans several segments, got {count}");
    let run = wal("dump", &data, &[]);
    let text = run.ok();
    let head: Vec<&str> = text.lines().take(9).collect();
    let broken = data.join("member/snap").join(BROKEN_SNAP);
    let broken_line = format!(
        "Snap file: {BROKEN_SNAP} unreadable: {}: corrupt at offset 0: snap: does not decode",
        broken.display()
    );
    assert_eq!(
        head,
        [
            format!("WAL: {} ({count} segments)", wal_dir.display()).as_str(),
            "Metadata: node_id=abc cluster_id=def",
            "Snapshot: term=0 index=0",
            "Snapshot: term=2 index=10",
            "Hard state: term=3 vote=abc commit=45",
            "Snap file: 0000000000000002-000000000000000a.snap term=2 index=10 voters=[abc] \
             learners=[] data_size=2",
            broken_line.as_str(),
            "Entries: 45 (index 1 to 45), 45 shown",
            "term\t     index\ttype\tdata",
        ]
    );
    let lines = entry_lines(text);
    assert_eq!(lines.len(), 45, "{text}");
    assert_eq!(
        lines[0],
        "   1\t         1\tconf\tconf_change type=ConfChangeAddNode node_id=abc context_size=12"
    );
    assert_eq!(lines[1], "   2\t         2\tnorm\tempty");
    assert_eq!(
        lines[2],
        "   2\t         3\tnorm\tput key=\"key-003\" value_size=200"
    );
    assert_eq!(
        &lines[40..],
        [
            "   3\t        41\tnorm\ttxn compare=[value(\"key-003\") = \"x\"] \
             success=[put key=\"t1\" value_size=2] failure=[]",
            "   3\t        42\tnorm\tdelete_range key=\"key-004\"",
            "   3\t        43\tnorm\tlease_grant id=99 ttl=30",
            "   3\t        44\tnorm\tv2 method=PUT path=\"/0/version\" val=\"3.4.0\"",
            "   3\t        45\tnorm\tcompaction revision=20 physical",
        ]
    );
    assert!(!text.contains("lost"), "the overwritten entry is not shown");
    assert!(broken.exists(), "dump never renames a broken snap file");
    // The WAL directory itself gives the same entries.
    let direct = wal("dump", &wal_dir, &[]);
    assert_eq!(entry_lines(direct.ok()), lines);
}

#[test]
fn dump_filters_by_type_and_index() {
    // Proves --entry-type (our names, etcd-dump-logs' names, comma lists) and the index range.
    let root = tempfile::tempdir().expect("tempdir");
    let data = sample(root.path());
    let shown = |extra: &[&str]| -> Vec<String> {
        let run = wal("dump", &data, extra);
        entry_lines(run.ok())
            .iter()
            .map(|l| l.to_string())
            .collect()
    };
    let conf = shown(&["--entry-type", "conf"]);
    assert_eq!(conf.len(), 1);
    assert!(conf[0].contains("\tconf\t"), "{conf:?}");
    assert_eq!(shown(&["--entry-type", "norm"]).len(), 44);
    assert_eq!(shown(&["--entry-type", "put"]).len(), 38);
    assert_eq!(shown(&["--entry-type", "IRRPut"]).len(), 38);
    let mixed = shown(&["--entry-type", "txn,delete,Request"]);
    let indexes: Vec<&str> = mixed
        .iter()
        .map(|l| l.split('\t').nth(1).expect("index").trim())
        .collect();
    assert_eq!(indexes, ["41", "42", "44"]);
    assert_eq!(shown(&["--entry-type", "InternalRaftRequest"]).len(), 42);
    let range = shown(&["--start-index", "5", "--end-index", "7"]);
    assert_eq!(range.len(), 3);
    assert!(range[0].contains("key-005") && range[2].contains("key-007"));
    let both = shown(&["--entry-type", "conf,empty", "--end-index", "1"]);
    assert_eq!(both.len(), 1);
    let run = wal("dump", &data, &["--entry-type", "bogus"]);
    assert_eq!(run.code, 2, "usage error: {}", run.stderr);
}

#[test]
fn dump_json_parses_and_carries_the_same_facts() {
    // Proves --json is one parseable object with the records, counts and decoded entries.
    let root = tempfile::tempdir().expect("tempdir");
    let data = sample(root.path());
    let run = wal("dump", &data, &["--json", "--entry-type", "put,conf"]);
    let json: Value = serde_json::from_str(run.ok()).expect("stdout is JSON");
    assert_eq!(json["metadata"]["node_id"], 0xabc);
    assert_eq!(json["metadata"]["cluster_id"], 0xdef);
    assert_eq!(json["metadata"]["hex"], "08bc1510ef1b");
    assert_eq!(json["hard_state"]["commit"], 45);
    assert_eq!(json["hard_state"]["vote"], 0xabc);
    assert_eq!(json["snapshots"][1]["index"], 10);
    assert_eq!(json["entry_count"], 45);
    assert_eq!(json["last_index"], 45);
    assert_eq!(json["torn_tail"], Value::Null);
    let entries = json["entries"].as_array().expect("entries");
    assert_eq!(entries.len(), 39);
    assert_eq!(entries[0]["type"], "conf");
    assert_eq!(entries[0]["kind"], "conf_change");
    assert_eq!(entries[1]["index"], 3);
    assert_eq!(entries[1]["kind"], "put");
    assert_eq!(entries[1]["summary"], "put key=\"key-003\" value_size=200");
    assert!(entries[1]["data_size_bytes"].as_u64().expect("size") > 200);
}

#[test]
fn verify_accepts_a_clean_wal() {
    // Proves verify reads every segment and prints OK with exit 0.
    let root = tempfile::tempdir().expect("tempdir");
    let data = sample(root.path());
    let run = wal("verify", &data, &[]);
    let text = run.ok();
    assert!(text.contains("Entries: 45 (index 1 to 45)"), "{text}");
    assert!(
        text.contains("Hard state: term=3 vote=abc commit=45"),
        "{text}"
    );
    assert_eq!(text.lines().last(), Some("OK"));
}

#[test]
fn corruption_in_a_middle_segment_is_one_line_naming_file_and_offset() {
    // Proves a flipped data byte is reported by dump and verify as one line, exit 1.
    let root = tempfile::tempdir().expect("tempdir");
    let data = sample(root.path());
    let wal_dir = data.join("member/wal");
    let records = read_records(&wal_dir).expect("records");
    let second = segments(&wal_dir)[1].clone();
    let name = second.file_name().and_then(|n| n.to_str()).expect("name");
    let victim = records
        .iter()
        .filter(|r| r.segment == name && r.body.record_type().name() == "entry")
        .nth(1)
        .expect("an entry in the second segment");
    let mut bytes = std::fs::read(&second).expect("read segment");
    let at = victim.offset as usize;
    let word = u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
    let record_len = (word & ((1 << 56) - 1)) as usize;
    bytes[at + 8 + record_len - 1] ^= 0x5a;
    std::fs::write(&second, &bytes).expect("write segment");
    let offset = format!("offset {}", victim.offset);
    let path = second.display().to_string();
    for cmd in ["dump", "verify"] {
        let run = wal(cmd, &data, &[]);
        let line = run
            .failed_with(&[&path, &offset, "crc mismatch"])
            .to_string();
        assert!(line.starts_with("oxutl: "), "{line}");
        if cmd == "dump" {
            assert!(run.stdout.is_empty(), "no partial dump: {}", run.stdout);
        }
    }
    let run = wal("dump", &data, &["--json"]);
    run.failed_with(&[&path, &offset]);
}

#[test]
fn torn_tail_is_shown_and_fails_verify_unless_allowed() {
    // Proves a torn last segment dumps its intact prefix and makes verify exit 1 by default.
    let root = tempfile::tempdir().expect("tempdir");
    let data = sample(root.path());
    let wal_dir = data.join("member/wal");
    let last = segments(&wal_dir).pop().expect("a segment");
    let mut bytes = std::fs::read(&last).expect("read");
    bytes.extend_from_slice(&[0xee; 3]);
    std::fs::write(&last, &bytes).expect("write");
    let run = wal("dump", &data, &[]);
    let text = run.ok();
    let name = last.file_name().and_then(|n| n.to_str()).expect("name");
    assert!(
        text.contains(&format!("Torn tail: {name} at offset ")),
        "{text}"
    );
    assert_eq!(entry_lines(text).len(), 45);
    let run = wal("verify", &data, &[]);
    run.failed_with(&[&last.display().to_string(), "torn write at offset"]);
    let run = wal("verify", &data, &["--allow-torn-tail"]);
    assert_eq!(run.ok().lines().last(), Some("OK"));
}

#[test]
fn missing_and_empty_directories_are_one_line_errors() {
    // Proves a wrong path fails cleanly, naming the path.
    let root = tempfile::tempdir().expect("tempdir");
    let missing = root.path().join("nope");
    wal("dump", &missing, &[]).failed_with(&[&missing.display().to_string(), "no such"]);
    let empty = root.path().join("empty");
    std::fs::create_dir(&empty).expect("mkdir");
    for cmd in ["dump", "verify"] {
        wal(cmd, &empty, &[]).failed_with(&[&empty.display().to_string(), "no WAL segments"]);
    }
}

/// One write to a small WAL.
enum Step {
    Save(HardState, Vec<Entry>),
    Mark(SnapshotMark),
}

/// A WAL in `root/name` with metadata "m" and the given writes.
fn small_wal(root: &Path, name: &str, steps: Vec<Step>) -> PathBuf {
    let dir = root.join(name);
    let mut w = Wal::create(&dir, b"m", WalOptions::default()).expect("create wal");
    for step in steps {
        match step {
            Step::Save(state, entries) => w.save(Some(&state), &entries).expect("save"),
            Step::Mark(mark) => w.save_snapshot(mark).expect("snapshot"),
        }
    }
    dir
}

fn entries(term: u64, indexes: std::ops::RangeInclusive<u64>) -> Vec<Entry> {
    indexes.map(|i| normal(term, i, vec![])).collect()
}

#[test]
fn index_rules_follow_raft_gaps_only_after_a_snapshot() {
    // Proves a jump right after a later snapshot mark is accepted and any other gap refused.
    let root = tempfile::tempdir().expect("tempdir");
    let follower = small_wal(
        root.path(),
        "follower",
        vec![
            Step::Save(state(2, 3), entries(2, 1..=3)),
            Step::Mark(SnapshotMark {
                index: 100,
                term: 2,
            }),
            Step::Save(state(2, 102), entries(2, 101..=102)),
        ],
    );
    let run = wal("dump", &follower, &[]);
    let text = run.ok();
    assert!(text.contains("Metadata: hex=6d\n"), "{text}");
    assert!(
        text.contains("Entries: 5 (index 1 to 102), 5 shown"),
        "{text}"
    );
    assert_eq!(
        wal("verify", &follower, &[]).ok().lines().last(),
        Some("OK")
    );

    let gap = small_wal(
        root.path(),
        "gap",
        vec![
            Step::Save(state(2, 3), entries(2, 1..=3)),
            Step::Save(state(2, 5), entries(2, 5..=5)),
        ],
    );
    for cmd in ["dump", "verify"] {
        wal(cmd, &gap, &[]).failed_with(&[
            &gap.display().to_string(),
            ".wal: corrupt at offset ",
            "entry index 5 leaves a gap after index 3",
        ]);
    }
}

#[test]
fn verify_reports_term_regressions_and_commit_beyond_the_log() {
    // Proves verify's raft checks: terms never decrease, commit never passes the last index.
    let root = tempfile::tempdir().expect("tempdir");
    let dir = small_wal(
        root.path(),
        "bad",
        vec![
            Step::Save(state(3, 2), entries(3, 1..=2)),
            Step::Save(state(3, 9), entries(2, 3..=3)),
        ],
    );
    let run = wal("verify", &dir, &[]);
    run.failed_with(&[&dir.display().to_string(), "verify found 2 problem(s)"]);
    let problems: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| l.starts_with("Problem: "))
        .collect();
    assert_eq!(problems.len(), 2, "{}", run.stdout);
    assert!(
        problems[0].contains("entry 3 has term 2, below the previous entry's term 3"),
        "{problems:?}"
    );
    assert!(
        problems[1].ends_with("hard state commit 9 is beyond the last index 3"),
        "{problems:?}"
    );
    // dump still shows such a log: etcd reads it too.
    assert!(wal("dump", &dir, &[]).ok().contains("Entries: 3"));
}
