//! Tests of [`Store`] on real (temporary) backends: revisions, reads at past revisions,
//! compaction, restore after reopen, the consistent index, HashKV, and readers racing writers
//! and the compactor.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use oxcd_engine::backend::{Backend, BackendConfig};
use tempfile::TempDir;

use super::index_tests::normalized;
use super::revision::{BucketKey, Revision};
use super::{MvccError, RangeOptions, ReadView, Store, StoreConfig};
use crate::pb::mvccpb::KeyValue;
use crate::schema;

/// A store on a backend file in a temp dir, reopenable.
pub(super) struct TestStore {
    pub(super) dir: TempDir,
    pub(super) store: Option<Store>,
    pub(super) cfg: StoreConfig,
}

/// Small compaction batches with no pause, so tests cross batch boundaries quickly.
pub(super) fn test_config() -> StoreConfig {
    StoreConfig {
        compaction_batch_limit: 3,
        compaction_sleep: Duration::ZERO,
        index_compaction_batch_keys: 2,
    }
}

fn backend_at(path: PathBuf) -> Backend {
    let mut cfg = BackendConfig::new(path);
    cfg.batch_interval = Duration::ZERO;
    cfg.options.no_sync = true;
    cfg.strict = true;
    Backend::open(cfg).expect("open backend")
}

impl TestStore {
    pub(super) fn new() -> TestStore {
        TestStore::with_config(test_config())
    }

    pub(super) fn with_config(cfg: StoreConfig) -> TestStore {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open_with(backend_at(dir.path().join("db")), cfg.clone()).unwrap();
        TestStore {
            dir,
            store: Some(store),
            cfg,
        }
    }

    pub(super) fn path(&self) -> PathBuf {
        self.dir.path().join("db")
    }

    /// Closes the store and its backend (committing), then opens both again.
    pub(super) fn reopen(&mut self) {
        self.close();
        let backend = backend_at(self.path());
        self.store = Some(Store::open_with(backend, self.cfg.clone()).unwrap());
    }

    pub(super) fn close(&mut self) {
        if let Some(store) = self.store.take() {
            store.close();
            let backend = store.backend().clone();
            drop(store);
            backend.close().unwrap();
        }
    }
}

impl std::ops::Deref for TestStore {
    type Target = Store;
    fn deref(&self) -> &Store {
        self.store.as_ref().expect("store open")
    }
}

pub(super) fn put(store: &Store, key: &str, value: &str) -> i64 {
    let mut w = store.write(0, 0).unwrap();
    let rev = w.put(key.as_bytes(), value.as_bytes(), 0).unwrap();
    w.end().unwrap();
    rev
}

pub(super) fn delete(store: &Store, key: &str, end: &str) -> (i64, i64) {
    let mut w = store.write(0, 0).unwrap();
    let out = w.delete_range(key.as_bytes(), end.as_bytes()).unwrap();
    w.end().unwrap();
    out
}

pub(super) fn get_at(store: &Store, key: &str, rev: i64) -> Option<KeyValue> {
    let opts = RangeOptions {
        rev,
        ..RangeOptions::default()
    };
    store
        .range(key.as_bytes(), &[], &opts)
        .unwrap()
        .kvs
        .into_iter()
        .next()
}

/// Every `key` bucket entry as (revision, tombstone, KeyValue), in bucket order.
fn key_bucket(store: &Store) -> Vec<(BucketKey, KeyValue)> {
    use prost::Message;
    let tx = store.backend().read_tx().unwrap();
    let mut out = Vec::new();
    tx.for_each::<oxcd_engine::backend::Error>(schema::KEY, |k, v| {
        out.push((BucketKey::decode(k).unwrap(), KeyValue::decode(v).unwrap()));
        Ok(())
    })
    .unwrap();
    out
}

fn meta(store: &Store, key: &[u8]) -> Option<Vec<u8>> {
    let tx = store.backend().read_tx().unwrap();
    tx.get(schema::META, key).unwrap().map(<[u8]>::to_vec)
}

/// Polls `done` until it holds or 10 s pass.
pub(super) fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn kv(key: &str, value: &str, create: i64, modified: i64, version: i64) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: value.into(),
        create_revision: create,
        mod_revision: modified,
        version,
        lease: 0,
    }
}

#[test]
fn fresh_store_starts_at_revision_one() {
    // Proves etcd's starting values (revision 1, compaction -1, no consistent index) and
    // that every bucket of the registry exists (writing to a missing one fails).
    let store = TestStore::new();
    assert_eq!(store.rev().unwrap(), 1);
    assert_eq!(store.compact_rev().unwrap(), -1);
    assert_eq!(store.consistent_index().unwrap(), 0);
    let mut tx = store.backend().batch_tx().unwrap();
    for bucket in schema::ALL_BUCKETS {
        tx.put(bucket, b"probe", b"x").unwrap();
        tx.delete(bucket, b"probe").unwrap();
    }
}

#[test]
fn one_write_is_one_main_revision_with_sub_revisions() {
    // Proves puts and deletes of one write share main revision begin+1 with increasing subs,
    // tombstones carry the mark and only the key, and an empty write changes no revision.
    let store = TestStore::new();
    assert_eq!(put(&store, "a", "1"), 2);
    let mut w = store.write(0, 0).unwrap();
    assert_eq!(w.put(b"b", b"2", 0).unwrap(), 3);
    assert_eq!(w.put(b"a", b"3", 7).unwrap(), 3);
    assert_eq!(w.delete_range(b"b", b"").unwrap(), (1, 3));
    let outcome = w.end().unwrap();
    assert_eq!(outcome.rev, 3);
    assert_eq!(outcome.changes.len(), 3);
    assert_eq!(store.rev().unwrap(), 3);

    // Nothing changes: no revision bump, and delete_range reports the revision begun at.
    let mut w = store.write(0, 0).unwrap();
    assert_eq!(w.delete_range(b"zz", b"").unwrap(), (0, 3));
    assert_eq!(w.end().unwrap().rev, 3);
    assert_eq!(store.rev().unwrap(), 3);

    let bucket = key_bucket(&store);
    let keys: Vec<(Revision, bool)> = bucket
        .iter()
        .map(|(k, _)| (k.revision, k.tombstone))
        .collect();
    assert_eq!(
        keys,
        vec![
            (Revision::new(2, 0), false),
            (Revision::new(3, 0), false),
            (Revision::new(3, 1), false),
            (Revision::new(3, 2), true),
        ]
    );
    assert_eq!(bucket[2].1, {
        let mut want = kv("a", "3", 2, 3, 2);
        want.lease = 7;
        want
    });
    assert_eq!(
        bucket[3].1,
        KeyValue {
            key: b"b".to_vec(),
            ..KeyValue::default()
        }
    );
}

#[test]
fn reads_at_past_revisions() {
    // Proves create/mod revision, version and lease at every revision of a key's life, and
    // that reads after a delete and re-create start a new generation.
    let store = TestStore::new();
    put(&store, "k", "v1"); // 2
    put(&store, "k", "v2"); // 3
    delete(&store, "k", ""); // 4
    put(&store, "k", "v3"); // 5
    assert_eq!(get_at(&store, "k", 1), None);
    assert_eq!(get_at(&store, "k", 2), Some(kv("k", "v1", 2, 2, 1)));
    assert_eq!(get_at(&store, "k", 3), Some(kv("k", "v2", 2, 3, 2)));
    assert_eq!(get_at(&store, "k", 4), None);
    assert_eq!(get_at(&store, "k", 5), Some(kv("k", "v3", 5, 5, 1)));
    assert_eq!(get_at(&store, "k", 0), Some(kv("k", "v3", 5, 5, 1)));
    let future = store.range(
        b"k",
        &[],
        &RangeOptions {
            rev: 6,
            ..RangeOptions::default()
        },
    );
    assert!(matches!(future, Err(MvccError::FutureRev)));
}

#[test]
fn range_forms_limit_and_count() {
    // Proves single, span, prefix and from-key ranges, limit with an unlimited count,
    // count_only, keys_only, and the view's revision in results read at older revisions.
    let store = TestStore::new();
    for key in ["a", "ab", "abc", "b", "c"] {
        put(&store, key, key);
    }
    let keys = |key: &[u8], end: &[u8], opts: RangeOptions| {
        let result = store.range(key, end, &opts).unwrap();
        let names: Vec<String> = result
            .kvs
            .iter()
            .map(|kv| String::from_utf8(kv.key.clone()).unwrap())
            .collect();
        (names, result.count, result.rev)
    };
    let all = RangeOptions::default();
    assert_eq!(keys(b"ab", b"", all.clone()).0, ["ab"]);
    assert_eq!(keys(b"a", b"b", all.clone()).0, ["a", "ab", "abc"]);
    assert_eq!(keys(b"ab", b"ac", all.clone()).0, ["ab", "abc"]);
    assert_eq!(keys(b"b", b"\0", all.clone()).0, ["b", "c"]);
    assert_eq!(keys(b"\0", b"\0", all.clone()).1, 5);
    assert_eq!(keys(b"c", b"a", all.clone()).1, 0);
    let limited = RangeOptions {
        limit: 2,
        ..RangeOptions::default()
    };
    assert_eq!(
        keys(b"\0", b"\0", limited),
        (vec!["a".to_string(), "ab".to_string()], 5, 6)
    );
    let count_only = RangeOptions {
        count_only: true,
        ..RangeOptions::default()
    };
    assert_eq!(keys(b"a", b"b", count_only), (vec![], 3, 6));
    let old = RangeOptions {
        rev: 3,
        ..RangeOptions::default()
    };
    assert_eq!(
        keys(b"\0", b"\0", old),
        (vec!["a".to_string(), "ab".to_string()], 2, 6)
    );
    let keys_only = RangeOptions {
        keys_only: true,
        ..RangeOptions::default()
    };
    let result = store.range(b"a", b"", &keys_only).unwrap();
    assert_eq!(result.kvs[0].value, b"");
    assert_eq!(result.kvs[0].version, 1);
}

#[test]
fn a_write_reads_its_own_changes() {
    // Proves reads inside a write see the revision begun at until the first change, and the
    // write's own changes afterwards; other readers see nothing until the end.
    let store = TestStore::new();
    put(&store, "a", "old"); // 2
    let mut w = store.write(0, 0).unwrap();
    let before = w.range(b"a", b"", &RangeOptions::default()).unwrap();
    assert_eq!(
        (before.kvs[0].value.as_slice(), before.rev),
        (&b"old"[..], 2)
    );
    w.put(b"a", b"new", 0).unwrap();
    let after = w.range(b"a", b"", &RangeOptions::default()).unwrap();
    assert_eq!((after.kvs[0].value.as_slice(), after.rev), (&b"new"[..], 3));
    assert_eq!(w.rev(), 2);
    let outside = store.read().unwrap();
    assert_eq!(outside.rev(), 2);
    w.end().unwrap();
    let seen = outside.range(b"a", b"", &RangeOptions::default()).unwrap();
    assert_eq!(seen.kvs[0].value, b"old");
    assert_eq!(get_at(&store, "a", 0).unwrap().value, b"new");
}

#[test]
fn dropped_write_ends_like_end() {
    // Proves there is no rollback: a write dropped without end() is published and counted.
    let store = TestStore::new();
    {
        let mut w = store.write(0, 0).unwrap();
        w.put(b"a", b"1", 0).unwrap();
    }
    assert_eq!(store.rev().unwrap(), 2);
    assert_eq!(get_at(&store, "a", 0).unwrap().value, b"1");
}

#[test]
fn compaction_errors_and_reads() {
    // Proves compact's ErrFutureRev / ErrCompacted, reads below the compaction revision fail
    // at once, and reads at or after it still see every key.
    let store = TestStore::new();
    put(&store, "a", "1"); // 2
    put(&store, "a", "2"); // 3
    put(&store, "b", "1"); // 4
    assert!(matches!(store.compact(5), Err(MvccError::FutureRev)));
    store.compact(3).unwrap().wait().unwrap();
    assert_eq!(store.compact_rev().unwrap(), 3);
    assert!(matches!(store.compact(3), Err(MvccError::Compacted)));
    assert!(matches!(store.compact(2), Err(MvccError::Compacted)));
    let at = |rev| {
        store.range(
            b"\0",
            b"\0",
            &RangeOptions {
                rev,
                ..RangeOptions::default()
            },
        )
    };
    assert!(matches!(at(2), Err(MvccError::Compacted)));
    assert_eq!(at(3).unwrap().kvs, vec![kv("a", "2", 2, 3, 2)]);
    assert_eq!(at(4).unwrap().count, 2);
    store.compact(4).unwrap().wait().unwrap();
}

#[test]
fn compaction_removes_exactly_the_unreachable_revisions() {
    // Proves the key bucket keeps, at or below the compaction revision, only each live key's
    // newest revision (no tombstones), across several small batches, and records progress in
    // meta.
    let store = TestStore::new();
    for i in 0..4 {
        put(&store, "a", &format!("a{i}")); // 2..=5
    }
    put(&store, "b", "b"); // 6
    delete(&store, "b", ""); // 7
    put(&store, "c", "c"); // 8
    put(&store, "d", "d"); // 9
    delete(&store, "d", ""); // 10
    store.compact(9).unwrap().wait().unwrap();
    let left: Vec<(i64, bool)> = key_bucket(&store)
        .iter()
        .map(|(k, _)| (k.revision.main, k.tombstone))
        .collect();
    assert_eq!(left, vec![(5, false), (8, false), (9, false), (10, true)]);
    let rev9 = Revision::new(9, 0).encode().to_vec();
    assert_eq!(
        meta(&store, schema::META_SCHEDULED_COMPACT),
        Some(rev9.clone())
    );
    assert_eq!(meta(&store, schema::META_FINISHED_COMPACT), Some(rev9));
    assert_eq!(get_at(&store, "d", 9).unwrap().value, b"d");
    assert_eq!(get_at(&store, "a", 9).unwrap().version, 4);
}

/// Everything observable of a store: revisions, the normalized index, reads at every
/// readable revision, and HashKV at each.
fn observe(store: &Store) -> impl PartialEq + std::fmt::Debug {
    let rev = store.rev().unwrap();
    let compact = store.compact_rev().unwrap();
    let index = normalized(&store.inner().index_read().unwrap());
    let mut reads = Vec::new();
    for at in compact.max(1)..=rev {
        let opts = RangeOptions {
            rev: at,
            ..RangeOptions::default()
        };
        let kvs = store.range(b"\0", b"\0", &opts).unwrap().kvs;
        let hash = (at > compact).then(|| store.hash_kv(at).unwrap());
        reads.push((kvs, hash));
    }
    (
        rev,
        compact,
        store.consistent_index().unwrap(),
        index,
        reads,
    )
}

#[test]
fn reopen_restores_the_same_store() {
    // Proves the index, revisions, reads and hashes rebuilt from disk equal those before,
    // including after compaction, leases, deletes and more keys than etcd's restore chunk
    // (10,000).
    let mut store = TestStore::new();
    let mut w = store.write(0, 0).unwrap();
    for i in 0..10_005 {
        w.put(format!("bulk{i:05}").as_bytes(), b"x", 0).unwrap();
    }
    w.end().unwrap();
    put(&store, "a", "1");
    let mut w = store.write(3, 1).unwrap();
    w.put(b"leased", b"v", 42).unwrap();
    w.put(b"a", b"2", 0).unwrap();
    w.end().unwrap();
    delete(&store, "bulk00001", "bulk00003");
    store.compact(4).unwrap().wait().unwrap();
    put(&store, "a", "3");
    delete(&store, "a", "");
    let before = observe(&store);
    store.reopen();
    assert_eq!(observe(&store), before);
    assert_eq!(store.restored_key_leases(), &[(b"leased".to_vec(), 42)]);
}

#[test]
fn compaction_past_every_entry_keeps_the_revision() {
    // Proves etcd's rule: when compaction removed every entry above the last one left, the
    // restored current revision is the compaction revision, not the last entry's.
    let mut store = TestStore::new();
    put(&store, "a", "1"); // 2
    delete(&store, "a", ""); // 3
    put(&store, "b", "1"); // 4
    delete(&store, "b", ""); // 5
    store.compact(5).unwrap().wait().unwrap();
    assert!(key_bucket(&store).is_empty());
    store.reopen();
    assert_eq!(store.rev().unwrap(), 5);
    assert_eq!(store.compact_rev().unwrap(), 5);
    assert_eq!(put(&store, "c", "1"), 6);
}

#[test]
fn consistent_index_is_saved_with_the_data() {
    // Proves the consistent index and term land in meta in the same published session as the
    // data, survive a forced commit and reopen, and that re-applying an index is refused.
    let mut store = TestStore::new();
    let mut w = store.write(5, 2).unwrap();
    w.put(b"a", b"1", 0).unwrap();
    w.end().unwrap();
    let tx = store.backend().read_tx().unwrap();
    assert_eq!(
        tx.get(schema::META, schema::META_CONSISTENT_INDEX).unwrap(),
        Some(&5u64.to_be_bytes()[..])
    );
    assert!(tx
        .get(schema::KEY, &Revision::new(2, 0).encode())
        .unwrap()
        .is_some());
    drop(tx);
    // An entry that changes nothing still advances the index.
    store.write(6, 3).unwrap().end().unwrap();
    store.force_commit().unwrap();
    store.reopen();
    assert_eq!(store.consistent_index().unwrap(), 6);
    assert_eq!(store.term().unwrap(), 3);
    assert!(matches!(
        store.write(6, 3),
        Err(MvccError::AlreadyApplied {
            index: 6,
            consistent_index: 6
        })
    ));
    assert!(matches!(
        store.write(2, 3),
        Err(MvccError::AlreadyApplied { .. })
    ));
    let mut w = store.write(7, 3).unwrap();
    w.put(b"b", b"1", 0).unwrap();
    w.end().unwrap();
    // Writes outside raft leave it alone.
    put(&store, "c", "1");
    assert_eq!(store.consistent_index().unwrap(), 7);
}

#[test]
fn unfinished_compaction_resumes_at_open() {
    // Proves a scheduled but unfinished compaction (scheduledCompactRev above
    // finishedCompactRev) runs again at open, as etcd's restore does.
    let mut store = TestStore::new();
    for i in 0..10 {
        put(&store, "a", &i.to_string()); // 2..=11
    }
    {
        let mut tx = store.backend().batch_tx().unwrap();
        tx.put(
            schema::META,
            schema::META_SCHEDULED_COMPACT,
            &Revision::new(8, 0).encode(),
        )
        .unwrap();
    }
    store.reopen();
    assert_eq!(store.compact_rev().unwrap(), 8);
    wait_until("the resumed compaction", || {
        meta(&store, schema::META_FINISHED_COMPACT) == Some(Revision::new(8, 0).encode().to_vec())
    });
    let left: Vec<i64> = key_bucket(&store)
        .iter()
        .map(|(k, _)| k.revision.main)
        .collect();
    assert_eq!(left, vec![8, 9, 10, 11]);
}

fn open_at(path: &Path) -> Store {
    Store::open_with(backend_at(path.to_path_buf()), test_config()).unwrap()
}

#[test]
fn hash_kv_depends_on_history_only() {
    // Proves equal histories hash equal (in separate files, across reopen and commit timing),
    // different histories differ, and the revision arguments fail as etcd's do.
    let dir = tempfile::tempdir().unwrap();
    let apply = |store: &Store, last: &str| {
        put(store, "a", "1");
        let mut w = store.write(0, 0).unwrap();
        w.put(b"b", b"2", 0).unwrap();
        w.put(b"c", b"3", 9).unwrap();
        w.end().unwrap();
        delete(store, "a", "");
        put(store, "b", last);
        store.compact(3).unwrap().wait().unwrap();
    };
    let one = open_at(&dir.path().join("one"));
    let two = open_at(&dir.path().join("two"));
    let three = open_at(&dir.path().join("three"));
    apply(&one, "x");
    apply(&two, "x");
    apply(&three, "y");
    two.force_commit().unwrap();
    for rev in [0, 4, 5] {
        assert_eq!(one.hash_kv(rev).unwrap(), two.hash_kv(rev).unwrap());
    }
    assert_eq!(one.hash_kv(4).unwrap(), three.hash_kv(4).unwrap());
    assert_ne!(one.hash_kv(5).unwrap().hash, three.hash_kv(5).unwrap().hash);
    let got = one.hash_kv(0).unwrap();
    assert_eq!((got.current_rev, got.compact_rev), (5, 3));
    assert!(matches!(one.hash_kv(3), Err(MvccError::Compacted)));
    assert!(matches!(one.hash_kv(6), Err(MvccError::FutureRev)));
}

#[test]
fn hash_kv_of_a_fresh_store_is_the_bucket_name() {
    // Proves the starting point of the hash: CRC-32C of "key" alone, compaction revision -1.
    let store = TestStore::new();
    let got = store.hash_kv(0).unwrap();
    assert_eq!(got.hash, crc32c::crc32c(b"key"));
    assert_eq!((got.current_rev, got.compact_rev), (1, -1));
}

#[test]
fn readers_never_see_half_a_write() {
    // Proves atomic visibility under concurrency: every write sets two keys to the same
    // value; readers racing writers and the compactor always see them equal, or get
    // ErrCompacted for a revision compacted away.
    let store = TestStore::with_config(StoreConfig {
        compaction_batch_limit: 2,
        compaction_sleep: Duration::ZERO,
        index_compaction_batch_keys: 1,
    });
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        for reader in 0..2 {
            let store = &*store;
            let stop = &stop;
            scope.spawn(move || {
                let mut reads = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) || reads < 10 {
                    let view = store.read().unwrap();
                    let back = if reader == 0 { 0 } else { view.rev() - 3 };
                    let opts = RangeOptions {
                        rev: back.max(0),
                        ..RangeOptions::default()
                    };
                    match view.range(b"x", b"z", &opts) {
                        Ok(result) => {
                            if let [x, y] = result.kvs.as_slice() {
                                assert_eq!(x.value, y.value, "half a write seen");
                                assert_eq!(x.mod_revision, y.mod_revision);
                            } else {
                                assert!(result.kvs.is_empty(), "{:?}", result.kvs);
                            }
                        }
                        Err(MvccError::Compacted) => {}
                        Err(e) => panic!("read failed: {e}"),
                    }
                    reads += 1;
                }
            });
        }
        for i in 0..300 {
            let mut w = store.write(0, 0).unwrap();
            let value = i.to_string();
            w.put(b"x", value.as_bytes(), 0).unwrap();
            w.put(b"y", value.as_bytes(), 0).unwrap();
            w.end().unwrap();
            if i % 50 == 49 {
                let rev = store.rev().unwrap() - 1;
                store.compact(rev).unwrap();
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
}

#[test]
fn store_and_views_cross_threads() {
    // Proves the store can be shared between threads and read views moved between them.
    fn shared<T: Send + Sync>() {}
    fn sent<T: Send>() {}
    shared::<Store>();
    shared::<super::StoreRead>();
    sent::<super::CompactionWait>();
}

#[test]
fn next_entry_gives_each_entry_a_revision_and_publishes_all_at_end() {
    // Proves group apply: entries in one write get consecutive main revisions, read each
    // other's changes, stay invisible to readers until `end`, and `meta` records the last
    // entry's index and term; a non-rising index is refused.
    let store = TestStore::new();
    let mut w = store.write(10, 2).unwrap();
    assert_eq!(w.put(b"a", b"1", 0).unwrap(), 2);
    let first = w.next_entry(11, 2).unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(w.put(b"a", b"2", 0).unwrap(), 3);
    assert_eq!(
        w.range(b"a", b"", &RangeOptions::default()).unwrap().kvs[0].version,
        2
    );
    assert!(matches!(
        w.next_entry(11, 2),
        Err(MvccError::AlreadyApplied { .. })
    ));
    w.next_entry(12, 3).unwrap();
    assert_eq!(w.delete_range(b"a", b"").unwrap(), (1, 4));
    assert_eq!(store.rev().unwrap(), 1);
    assert!(store
        .range(b"a", b"", &RangeOptions::default())
        .unwrap()
        .kvs
        .is_empty());
    let outcome = w.end().unwrap();
    assert_eq!(outcome.rev, 4);
    assert_eq!(store.rev().unwrap(), 4);
    assert_eq!(store.consistent_index().unwrap(), 12);
    assert_eq!(store.term().unwrap(), 3);
    let at = |rev| RangeOptions {
        rev,
        ..RangeOptions::default()
    };
    assert_eq!(store.range(b"a", b"", &at(3)).unwrap().kvs[0].value, b"2");
    assert!(store.range(b"a", b"", &at(4)).unwrap().kvs.is_empty());
    assert_eq!(
        meta(&store, schema::META_CONSISTENT_INDEX),
        Some(12u64.to_be_bytes().to_vec())
    );
}

#[test]
fn replace_db_takes_on_another_stores_contents() {
    // Proves a store switched to another database (a snapshot from the leader) answers from
    // it alone: keys, revision, compaction revision, consistent index; and keeps writing.
    let store = TestStore::new();
    put(&store, "mine", "1");
    put(&store, "mine", "2");
    let mut leader = TestStore::new();
    put(&leader, "theirs", "a");
    put(&leader, "theirs", "b");
    put(&leader, "theirs", "c");
    leader.compact(2).unwrap().wait().unwrap();
    {
        let mut w = leader.write(42, 3).unwrap();
        w.put(b"at-42", b"x", 0).unwrap();
        w.end().unwrap();
    }
    leader.close();
    let src = store.path().with_file_name("0000000000000042.snap.db");
    std::fs::rename(leader.path(), &src).unwrap();

    store.replace_db(&src).unwrap();
    assert_eq!(get_at(&store, "mine", 0), None);
    assert_eq!(get_at(&store, "theirs", 0).unwrap().value, b"c");
    assert_eq!(store.rev().unwrap(), 5);
    assert_eq!(store.compact_rev().unwrap(), 2);
    assert_eq!(store.consistent_index().unwrap(), 42);
    assert!(matches!(
        store.range(
            b"theirs",
            &[],
            &RangeOptions {
                rev: 1,
                ..RangeOptions::default()
            }
        ),
        Err(MvccError::Compacted)
    ));
    assert_eq!(put(&store, "after", "y"), 6);
    store.compact(4).unwrap().wait().unwrap();
    assert_eq!(get_at(&store, "after", 0).unwrap().value, b"y");
}
