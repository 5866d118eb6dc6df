// Proves oxcd reads the `member/wal` real etcd 3.4.23 writes, and `oxutl wal dump` shows its puts.
//! Interoperability acceptance of the WAL (issue 3): a real etcd takes single puts, txns of
//! puts and a delete through etcdctl, reports its raft index (`etcdctl endpoint status`) and
//! is stopped; then `oxcd_wal::read_all` (at the snapshot mark (0, 0)) and `WalReader` read
//! its WAL: the last entry's index and the entry count equal that raft index, and the puts
//! decoded from the entries are exactly the puts made. Finally the real `oxutl` binary dumps
//! and verifies the data dir.
//!
//! Needs etcd and etcdctl 3.4.23 (Debian etcd-server, etcd-client); fails without them.

use std::collections::BTreeSet;
use std::process::Command;

use oxcd_tests::Etcd;
use oxcd_tools::wal::etcdpb::{InternalRaftRequest, RequestOp};
use oxcd_tools::wal::summary::{decode_normal, NormalData};
use oxcd_wal::{read_all, EntryType, RecordBody, SnapshotMark, WalReader};

const SINGLE_PUTS: usize = 40;
const TXNS: usize = 3;
const PUTS_PER_TXN: usize = 2;

fn oxutl(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_oxutl"))
        .args(args)
        .output()
        .expect("run oxutl");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.code().unwrap_or(-1), stdout, stderr)
}

/// Puts `etcd` was asked to make, by key: single puts `p000`.., txn puts `t<n><a|b>`.
fn workload(etcd: &Etcd) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    for i in 0..SINGLE_PUTS {
        let key = format!("p{i:03}");
        etcd.ctl(&["put", &key, &format!("value-{i}")])
            .expect("put");
        keys.insert(key);
    }
    for t in 0..TXNS {
        // No compares, then the success ops, then (empty) failure ops.
        let ops: Vec<String> = (0..PUTS_PER_TXN)
            .map(|p| format!("t{t}{}", char::from(b'a' + p as u8)))
            .collect();
        let mut script = String::from("\n");
        for key in &ops {
            script.push_str(&format!("put {key} txn-value\n"));
        }
        script.push_str("\n\n");
        let out = etcd.ctl_with_stdin(&["txn"], Some(&script)).expect("txn");
        assert!(out.starts_with("SUCCESS"), "txn answered {out:?}");
        keys.extend(ops);
    }
    assert_eq!(etcd.ctl(&["del", "p000"]).expect("del").trim(), "1");
    keys
}

fn raft_index(etcd: &Etcd) -> u64 {
    let status = etcd
        .ctl(&["endpoint", "status", "-w", "json"])
        .expect("endpoint status");
    let status: serde_json::Value = serde_json::from_str(&status).expect("status is JSON");
    status[0]["Status"]["raftIndex"]
        .as_u64()
        .unwrap_or_else(|| panic!("no raftIndex in {status}"))
}

/// Keys of the puts in `ops`, recursively through nested txns.
fn op_puts(ops: &[RequestOp], keys: &mut Vec<String>) {
    for op in ops {
        if let Some(put) = &op.request_put {
            keys.push(String::from_utf8_lossy(&put.key).into_owned());
        }
        if let Some(txn) = &op.request_txn {
            op_puts(&txn.success, keys);
            op_puts(&txn.failure, keys);
        }
    }
}

fn request_puts(request: &InternalRaftRequest, keys: &mut Vec<String>) {
    if let Some(put) = &request.put {
        keys.push(String::from_utf8_lossy(&put.key).into_owned());
    }
    if let Some(txn) = &request.txn {
        op_puts(&txn.success, keys);
        op_puts(&txn.failure, keys);
    }
}

#[test]
fn real_etcd_wal_reads_and_dumps() {
    // Proves entry count, last index and decoded puts match what etcd reported and was sent.
    let mut etcd = Etcd::start().expect("start etcd 3.4.23");
    let puts = workload(&etcd);
    let reported_index = raft_index(&etcd);
    etcd.stop().expect("stop etcd");
    let data_dir = etcd.data_dir();
    let wal_dir = data_dir.join("member").join("wal");

    let read = read_all(&wal_dir, SnapshotMark { index: 0, term: 0 }).expect("read_all");
    let last = read.entries.last().expect("etcd wrote entries");
    assert_eq!(
        last.index, reported_index,
        "last entry index vs etcd's raftIndex"
    );
    assert_eq!(read.entries.len() as u64, reported_index);
    assert!(read.hard_state.commit >= reported_index);
    let mut put_keys = Vec::new();
    for entry in &read.entries {
        if entry.entry_type != EntryType::EntryNormal as i32 {
            continue;
        }
        if let NormalData::Internal(request) = decode_normal(&entry.data) {
            request_puts(&request, &mut put_keys);
        }
    }
    assert_eq!(put_keys.len(), SINGLE_PUTS + TXNS * PUTS_PER_TXN);
    assert_eq!(put_keys.into_iter().collect::<BTreeSet<_>>(), puts);

    let mut reader = WalReader::open(&wal_dir).expect("open reader");
    let mut last_entry_index = 0;
    let mut entry_records = 0u64;
    for record in reader.by_ref() {
        if let RecordBody::Entry(entry) = record.expect("record verifies").body {
            last_entry_index = entry.index;
            entry_records += 1;
        }
    }
    assert!(reader.torn_tail().is_none(), "{:?}", reader.torn_tail());
    assert_eq!(last_entry_index, reported_index);
    assert!(entry_records >= reported_index);

    let data = data_dir.to_str().expect("utf-8 path");
    let (code, out, err) = oxutl(&["wal", "dump", data]);
    assert_eq!(code, 0, "dump failed: {err}");
    assert!(
        out.contains(&format!(
            "Entries: {reported_index} (index 1 to {reported_index})"
        )),
        "{out}"
    );
    assert!(
        out.lines().any(|l| l.starts_with("Metadata: node_id=")),
        "{out}"
    );
    for key in &puts {
        let needle = format!("put key=\"{key}\" value_size=");
        assert!(
            out.contains(&needle),
            "{needle} missing from the dump:\n{out}"
        );
    }
    assert!(out.contains("delete_range key=\"p000\""), "{out}");
    let (code, out, err) = oxutl(&["wal", "dump", "--entry-type", "put", data]);
    assert_eq!(code, 0, "dump failed: {err}");
    let shown = out
        .lines()
        .filter(|l| l.contains("\tnorm\tput key="))
        .count();
    assert_eq!(shown, SINGLE_PUTS);
    let (code, out, err) = oxutl(&["wal", "verify", data]);
    assert_eq!((code, out.lines().last()), (0, Some("OK")), "{out} {err}");
}
