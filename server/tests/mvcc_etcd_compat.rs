//! The MVCC store against real etcd 3.4.23, each test starting its own etcd:
//!
//! - HashKV: the same sequence of puts (with and without a lease), deletes, prefix deletes,
//!   multi-op txns and physical compactions, applied to etcd through etcdctl and to oxcd's
//!   store through its API, gives the same hash, current revision and compaction revision at
//!   every readable revision. Same data, same hash.
//! - Sorted ranges: keys that tie on the sort target come out in etcd's order.

use std::time::Duration;

use oxcd_engine::backend::{Backend, BackendConfig};
use oxcd_server::mvcc::{prefix_range_end, HashKv, MvccError, Store};
use oxcd_tests::etcd::poll_until;
use oxcd_tests::Etcd;

/// One step, as etcdctl is told it and as the store applies it.
enum Op {
    Put(&'static str, &'static str),
    /// A put attached to the lease granted at the start of the test.
    PutLeased(&'static str, &'static str),
    Del(&'static str),
    DelPrefix(&'static str),
    /// Puts then deletes of single keys, in one txn (one revision).
    Txn(
        &'static [(&'static str, &'static str)],
        &'static [&'static str],
    ),
    Compact(i64),
}

const OPS: &[Op] = &[
    Op::Put("a", "1"),
    Op::Put("b", "1"),
    Op::Put("a", "2"),
    Op::PutLeased("leased", "x"),
    Op::Txn(&[("c", "1"), ("d", "1"), ("e", "")], &["b"]),
    Op::Del("nothing-here"),
    Op::Put("prefix/1", "p"),
    Op::Put("prefix/2", "p"),
    Op::Put("a", "3"),
    Op::Compact(5),
    Op::DelPrefix("prefix/"),
    Op::Put("b", "again"),
    Op::Txn(&[("f", "1")], &["a", "c"]),
    Op::Compact(9),
    Op::Del("d"),
    // Everything but the leased key and e is gone: keep sets shrink toward empty.
    Op::Del("b"),
    Op::Del("f"),
    Op::Compact(14),
    Op::Del("leased"),
    Op::Del("e"),
];

fn ctl(etcd: &Etcd, args: &[&str]) -> String {
    etcd.ctl(args)
        .unwrap_or_else(|e| panic!("etcdctl {args:?}: {e}"))
}

/// etcd's HashKV at `rev` through `etcdctl endpoint hashkv -w json`.
fn etcd_hash_kv(etcd: &Etcd, rev: i64) -> HashKv {
    let out = ctl(
        etcd,
        &["endpoint", "hashkv", "-w", "json", &format!("--rev={rev}")],
    );
    let json: serde_json::Value = serde_json::from_str(&out).expect("hashkv json");
    let reply = &json[0]["HashKV"];
    let number = |v: &serde_json::Value| v.as_i64().unwrap_or(0);
    HashKv {
        hash: u32::try_from(number(&reply["hash"])).expect("hash is a u32"),
        current_rev: number(&reply["header"]["revision"]),
        compact_rev: number(&reply["compact_revision"]),
    }
}

fn apply(store: &Store, etcd: &Etcd, lease: i64, lease_hex: &str, op: &Op) {
    let mut w = store.write(0, 0).unwrap();
    match *op {
        Op::Put(key, value) => {
            ctl(etcd, &["put", key, value]);
            w.put(key.as_bytes(), value.as_bytes(), 0).unwrap();
        }
        Op::PutLeased(key, value) => {
            ctl(etcd, &["put", key, value, &format!("--lease={lease_hex}")]);
            w.put(key.as_bytes(), value.as_bytes(), lease).unwrap();
        }
        Op::Del(key) => {
            ctl(etcd, &["del", key]);
            w.delete_range(key.as_bytes(), b"").unwrap();
        }
        Op::DelPrefix(prefix) => {
            ctl(etcd, &["del", "--prefix", prefix]);
            w.delete_range(prefix.as_bytes(), &prefix_range_end(prefix.as_bytes()))
                .unwrap();
        }
        Op::Txn(puts, dels) => {
            let mut script = String::from("\n");
            for (key, value) in puts {
                script.push_str(&format!("put {key} \"{value}\"\n"));
                w.put(key.as_bytes(), value.as_bytes(), 0).unwrap();
            }
            for key in dels {
                script.push_str(&format!("del {key}\n"));
                w.delete_range(key.as_bytes(), b"").unwrap();
            }
            script.push_str("\n\n");
            etcd.ctl_with_stdin(&["txn"], Some(&script))
                .unwrap_or_else(|e| panic!("etcdctl txn: {e}"));
        }
        Op::Compact(rev) => {
            ctl(etcd, &["compact", &rev.to_string(), "--physical"]);
            drop(w);
            store.compact(rev).unwrap().wait().unwrap();
            return;
        }
    }
    w.end().unwrap();
}

/// Compares HashKV at every revision the two can still hash, polling a little because etcd
/// hashes its uncommitted compaction deletes until its next commit (within 100 ms).
fn compare_hashes(store: &Store, etcd: &Etcd) {
    let current = store.rev().unwrap();
    let compacted = store.compact_rev().unwrap();
    for rev in compacted.max(0) + 1..=current {
        let ours = store.hash_kv(rev).unwrap();
        let theirs = poll_until(Duration::from_secs(3), "equal HashKV", || {
            let theirs = etcd_hash_kv(etcd, rev);
            Ok((theirs == ours).then_some(theirs))
        });
        if theirs.is_err() {
            panic!(
                "HashKV at revision {rev}: oxcd {ours:?}, etcd {:?}",
                etcd_hash_kv(etcd, rev)
            );
        }
    }
    if compacted > 0 {
        assert!(matches!(
            store.hash_kv(compacted),
            Err(MvccError::Compacted)
        ));
        let out = etcd.ctl(&["endpoint", "hashkv", &format!("--rev={compacted}")]);
        assert!(out.is_err(), "etcd hashed a compacted revision: {out:?}");
    }
}

#[test]
fn hash_kv_matches_etcd() {
    // Proves HashKV equals etcd 3.4.23's at every readable revision after the same history.
    let etcd = Etcd::start().expect("start etcd 3.4.23");
    let granted = ctl(&etcd, &["lease", "grant", "600"]);
    // "lease 694d8a1c2f1b2c0b granted with TTL(600s)"
    let lease_hex = granted
        .split_whitespace()
        .nth(1)
        .expect("lease id")
        .to_string();
    let lease = u64::from_str_radix(&lease_hex, 16).expect("hex lease id") as i64;

    let dir = tempfile::tempdir().unwrap();
    let mut cfg = BackendConfig::new(dir.path().join("db"));
    cfg.options.no_sync = true;
    let store = Store::open(Backend::open(cfg).unwrap()).unwrap();

    compare_hashes(&store, &etcd);
    for op in OPS {
        apply(&store, &etcd, lease, &lease_hex, op);
        compare_hashes(&store, &etcd);
    }
    assert_eq!(store.rev().unwrap(), 17);
}

#[test]
fn sorted_ties_come_out_as_etcds() {
    // Proves sorted ranges with many ties (beyond Go's insertion-sort cutoff) order keys as
    // etcd 3.4.23 does, for each target and order etcdctl offers.
    use oxcd_server::mvcc::kv;
    use oxcd_server::pb::etcdserverpb::range_request::{SortOrder, SortTarget};
    use oxcd_server::pb::etcdserverpb::RangeRequest;

    let etcd = Etcd::start().expect("start etcd 3.4.23");
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = BackendConfig::new(dir.path().join("db"));
    cfg.options.no_sync = true;
    let store = Store::open(Backend::open(cfg).unwrap()).unwrap();
    // 30 keys, values in 3 groups; every third key written twice (version 2).
    let mut writes: Vec<(String, String)> = (0..30)
        .map(|i| (format!("k{i:02}"), format!("v{}", (i * 7) % 3)))
        .collect();
    writes.extend(
        (0..30)
            .step_by(3)
            .map(|i| (format!("k{i:02}"), format!("v{}", i % 3))),
    );
    for (key, value) in &writes {
        ctl(&etcd, &["put", key, value]);
        let mut w = store.write(0, 0).unwrap();
        w.put(key.as_bytes(), value.as_bytes(), 0).unwrap();
        w.end().unwrap();
    }
    let targets = [
        ("VERSION", SortTarget::Version),
        ("VALUE", SortTarget::Value),
        ("CREATE", SortTarget::Create),
        ("MODIFY", SortTarget::Mod),
    ];
    let orders = [
        ("ASCEND", SortOrder::Ascend),
        ("DESCEND", SortOrder::Descend),
    ];
    for (target_name, target) in targets {
        for (order_name, order) in orders {
            let out = ctl(
                &etcd,
                &[
                    "get",
                    "k",
                    "--prefix",
                    "--keys-only",
                    &format!("--sort-by={target_name}"),
                    &format!("--order={order_name}"),
                ],
            );
            let theirs: Vec<&str> = out.lines().filter(|l| !l.is_empty()).collect();
            let req = RangeRequest {
                key: b"k".to_vec(),
                range_end: prefix_range_end(b"k"),
                sort_order: order as i32,
                sort_target: target as i32,
                keys_only: true,
                ..RangeRequest::default()
            };
            let resp = kv::range(&store.read().unwrap(), &req).unwrap();
            let ours: Vec<String> = resp
                .kvs
                .iter()
                .map(|kv| String::from_utf8(kv.key.clone()).unwrap())
                .collect();
            assert_eq!(ours, theirs, "--sort-by={target_name} --order={order_name}");
        }
    }
}
