// Proves `oxutl db` inspects and checks files written by real etcd 3.4.23 and by real bbolt.
//! `oxutl` is run as a real process on files the engine did not write: etcd's own
//! `member/snap/db` (no freelist page, ten buckets, revision keys) and a bbolt-written file with
//! nested and inline buckets, checked against the bbolt oracle's own dump.

use std::path::Path;
use std::process::Command;

use oxcd_tests::gen::{random_spec, GenConfig};
use oxcd_tests::{Etcd, Oracle};
use rand::rngs::StdRng;
use rand::SeedableRng;

fn oxutl(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_oxutl"))
        .args(args)
        .output()
        .expect("run oxutl");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.code().unwrap_or(-1), stdout, stderr)
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

#[test]
fn oxutl_reads_and_checks_a_real_etcd_backend() {
    // Proves check, buckets, keys, get and compact work on etcd's own member/snap/db.
    let mut etcd = Etcd::start().expect("start etcd 3.4.23");
    for i in 0..120 {
        etcd.ctl(&["put", &format!("key{i:03}"), &format!("value{i}")])
            .expect("put");
    }
    etcd.ctl(&["del", "key007"]).expect("del");
    etcd.stop().expect("stop etcd");
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("db");
    std::fs::copy(etcd.backend_path(), &db).expect("copy etcd's db");
    let db = path_str(&db);

    let (code, out, err) = oxutl(&["db", "check", db]);
    assert_eq!(code, 0, "check failed: {out} {err}");
    assert_eq!(out.trim(), "OK");

    let (code, out, _) = oxutl(&["db", "buckets", db]);
    assert_eq!(code, 0);
    let buckets: Vec<&str> = out.lines().collect();
    for name in [
        "key", "meta", "members", "lease", "auth", "cluster", "alarm",
    ] {
        assert!(
            buckets.contains(&name),
            "bucket {name} missing from {buckets:?}"
        );
    }

    // 120 puts and one delete tombstone: 121 revisions in the key bucket.
    let (code, out, _) = oxutl(&["db", "keys", "--format", "hex", db, "key"]);
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), 121);

    let (code, out, _) = oxutl(&["db", "get", db, "cluster", "clusterVersion"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("3.4"), "cluster version {out:?}");

    let compacted = dir.path().join("compacted");
    let (code, out, err) = oxutl(&["db", "compact", db, "-o", path_str(&compacted)]);
    assert_eq!(code, 0, "compact failed: {out} {err}");
    Oracle::get()
        .expect("oracle")
        .check(&compacted)
        .expect("bbolt accepts the compacted file");
    let (code, out, _) = oxutl(&["db", "keys", "--format", "hex", path_str(&compacted), "key"]);
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), 121);
}

#[test]
fn oxutl_checks_a_bbolt_written_file_and_lists_what_bbolt_wrote() {
    // Proves check passes on a bbolt file and buckets/keys list exactly bbolt's contents.
    let oracle = Oracle::get().expect("oracle");
    let mut rng = StdRng::seed_from_u64(4242);
    let config = GenConfig {
        root_buckets: 3,
        max_depth: 2,
        max_items: 600,
        batch_size: 200,
    };
    let spec = random_spec(&mut rng, &config);
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("bbolt.db");
    oracle.write(&db, &spec).expect("bbolt writes the file");
    let model = oracle.dump_model(&db).expect("bbolt dumps the file");
    let db = path_str(&db);

    let (code, out, err) = oxutl(&["db", "check", db]);
    assert_eq!(code, 0, "check failed: {out} {err}");

    let (code, out, _) = oxutl(&["db", "buckets", "--format", "hex", db]);
    assert_eq!(code, 0);
    let listed: Vec<String> = out.lines().map(str::to_string).collect();
    let expected: Vec<String> = model
        .bucket_paths()
        .into_iter()
        .filter(|p| p.len() == 1)
        .map(|p| p[0].iter().map(|b| format!("{b:02x}")).collect())
        .collect();
    assert_eq!(listed, expected);
}
