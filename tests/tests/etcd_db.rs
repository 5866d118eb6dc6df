// Proves oxcd's engine reads, checks and extends the bbolt backend file real etcd 3.4.23 leaves behind.
//! Real etcd 3.4.23 writes, compacts and stops; then oxcd's engine and bbolt (the oracle) both
//! judge `member/snap/db`. etcd's backend runs bbolt with `NoFreelistSync`, so this file has no
//! freelist page: the engine must rebuild the freelist by scanning, as bbolt does.

use std::collections::BTreeSet;

use oxcd_engine::{Db, Options, TxRead};
use oxcd_tests::engine_io::read_model;
use oxcd_tests::spec::hx;
use oxcd_tests::{ensure, Error, Etcd, Oracle, Result};

/// The buckets etcd 3.4.23 creates in its backend.
const ETCD_BUCKETS: [&str; 10] = [
    "alarm",
    "auth",
    "authRoles",
    "authUsers",
    "cluster",
    "key",
    "lease",
    "members",
    "members_removed",
    "meta",
];

/// etcd's 17-byte revision key: main revision (u64 BE), b'_', sub revision (u64 BE).
fn revision_key(main: u64, sub: u64) -> Vec<u8> {
    let mut key = main.to_be_bytes().to_vec();
    key.push(b'_');
    key.extend_from_slice(&sub.to_be_bytes());
    key
}

/// The workload, with the revision each step creates (a fresh etcd is at revision 1).
/// Returns (final revision, compact revision, entries expected in the `key` bucket).
fn run_workload(etcd: &Etcd) -> Result<(u64, u64, usize)> {
    // Revisions 2..=201: one put each.
    for i in 0..200 {
        etcd.ctl(&["put", &format!("k{i:03}"), &format!("value-{i}")])?;
    }
    // Revision 202: one txn of 50 puts, sub revisions 0..=49.
    let mut txn = String::from("\n");
    for i in 0..50 {
        txn.push_str(&format!("put t{i:02} txn-value-{i}\n"));
    }
    txn.push_str("\n\n");
    let out = etcd.ctl_with_stdin(&["txn"], Some(&txn))?;
    ensure!(out.starts_with("SUCCESS"), "txn answered {out:?}");
    // Revisions 203..=232: overwrite k000..k029.
    for i in 0..30 {
        etcd.ctl(&["put", &format!("k{i:03}"), &format!("second-{i}")])?;
    }
    // Revision 233: delete k199 (a tombstone).
    ensure!(
        etcd.ctl(&["del", "k199"])?.trim() == "1",
        "del k199 did not delete one key"
    );
    // Compact at 233 and wait until the old revisions are physically gone.
    etcd.ctl(&["compact", "233", "--physical"])?;
    // Revision 234: delete k198 after the compaction; revision 235: one more put.
    ensure!(
        etcd.ctl(&["del", "k198"])?.trim() == "1",
        "del k198 did not delete one key"
    );
    etcd.ctl(&["put", "after-compaction", "x"])?;
    // Entries left in `key`: k000..k029 keep only their overwrites (30); k030..k197 keep their
    // only revision (168); k198 keeps its put and gains a tombstone after the compaction (2);
    // k199's put and tombstone are both at or below the compaction, so both go (0); the txn's 50
    // entries stay; plus the last put (1). Total 251.
    Ok((235, 233, 30 + 168 + 2 + 50 + 1))
}

fn current_revision(etcd: &Etcd) -> Result<u64> {
    let status: serde_json::Value =
        serde_json::from_str(&etcd.ctl(&["endpoint", "status", "-w", "json"])?)?;
    status[0]["Status"]["header"]["revision"]
        .as_u64()
        .ok_or_else(|| Error::msg(format!("no revision in endpoint status {status}")))
}

// Proves the engine reads real etcd's backend exactly as bbolt does and can commit to it safely.
#[test]
fn real_etcd_backend_interop() -> Result<()> {
    let oracle = Oracle::get()?;
    let mut etcd = Etcd::start()?;
    let (final_revision, compact_revision, key_entries) = run_workload(&etcd)?;
    ensure!(
        current_revision(&etcd)? == final_revision,
        "etcd is not at revision {final_revision}"
    );
    etcd.stop()?;
    let path = etcd.backend_path();

    let db = Db::open(
        &path,
        Options {
            read_only: true,
            ..Options::default()
        },
    )?;
    ensure!(
        db.info()?.freelist_pgid == u64::MAX,
        "etcd's file unexpectedly has a freelist page"
    );
    db.check()?;
    let model = read_model(&db)?;
    let names: BTreeSet<&[u8]> = model.buckets.keys().map(Vec::as_slice).collect();
    let want: BTreeSet<&[u8]> = ETCD_BUCKETS.iter().map(|n| n.as_bytes()).collect();
    ensure!(
        names == want,
        "buckets {:?}",
        names
            .iter()
            .map(|n| String::from_utf8_lossy(n))
            .collect::<Vec<_>>()
    );

    let key = &model.buckets[b"key".as_slice()];
    ensure!(
        key.items.len() == key_entries,
        "`key` has {} entries, want {key_entries}",
        key.items.len()
    );
    for k in key.items.keys() {
        let tombstone = k.len() == 18 && k[17] == b't';
        ensure!(
            (k.len() == 17 || tombstone) && k[8] == b'_',
            "odd revision key {}",
            hx(k)
        );
    }
    let last = key.items.keys().next_back().map(|k| k[..17].to_vec());
    ensure!(
        last == Some(revision_key(final_revision, 0)),
        "last revision key is not {final_revision}"
    );
    ensure!(
        key.items.contains_key(&revision_key(202, 49)),
        "txn's last sub revision missing"
    );

    let meta = &model.buckets[b"meta".as_slice()];
    for name in ["finishedCompactRev", "scheduledCompactRev"] {
        let got = meta.items.get(name.as_bytes());
        ensure!(
            got == Some(&revision_key(compact_revision, 0)),
            "meta {name} = {:?}",
            got.map(|v| hx(v))
        );
    }
    ensure!(
        meta.items.get(b"consistent_index".as_slice()).map(Vec::len) == Some(8),
        "no consistent_index"
    );
    drop(db);

    oracle.check(&path)?;
    model.ensure_eq(&oracle.dump_model(&path)?, "etcd's backend, oxcd vs bbolt")?;

    // Copies opened writable, with and without a synced freelist: one committed put each, then
    // bbolt must still accept the file and see the new key.
    let mut want = model;
    if let Some(meta) = want.buckets.get_mut(b"meta".as_slice()) {
        meta.items
            .insert(b"oxcd-test".to_vec(), b"written by oxcd".to_vec());
    }
    let dir = tempfile::tempdir()?;
    for no_freelist_sync in [false, true] {
        let copy = dir
            .path()
            .join(format!("db-no-freelist-sync-{no_freelist_sync}"));
        std::fs::copy(&path, &copy)?;
        let opts = Options {
            strict: true,
            no_freelist_sync,
            ..Options::default()
        };
        let db = Db::open(&copy, opts)?;
        db.update(|tx| {
            let meta = tx
                .bucket(tx.root(), b"meta")?
                .ok_or(oxcd_engine::Error::BucketNotFound)?;
            tx.put(meta, b"oxcd-test", b"written by oxcd")
        })?;
        db.check()?;
        drop(db);
        let what =
            format!("etcd's backend after an oxcd commit (no_freelist_sync {no_freelist_sync})");
        oracle.check(&copy).map_err(|e| e.context(&what))?;
        want.ensure_eq(
            &oracle.dump_model(&copy)?,
            &format!("{what}, read by bbolt"),
        )?;
    }
    Ok(())
}
