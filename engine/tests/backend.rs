//! Behaviour of the batched backend (etcd's `mvcc/backend`): read-buffer visibility, commit
//! triggers, concurrent readers, buffered deletes, online defrag, durability across reopen.
//! Every backend runs in strict mode (the engine checks itself after each commit) without
//! fsync, in its own temp dir.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use oxcd_engine::backend::{Backend, BackendConfig, Error};
use oxcd_engine::{Db, Options, TxRead};

const BUCKET: &[u8] = b"key";

/// No background commits and a batch limit never reached: commits happen only when a test
/// asks for one.
fn config(dir: &Path) -> BackendConfig {
    let mut cfg = BackendConfig::new(dir.join("db"));
    cfg.batch_interval = Duration::ZERO;
    cfg.batch_limit = usize::MAX;
    cfg.options.initial_mmap_size = 0;
    cfg.options.no_sync = true;
    cfg.strict = true;
    cfg
}

fn open(cfg: BackendConfig) -> Backend {
    let backend = Backend::open(cfg).expect("open backend");
    let mut tx = backend.batch_tx().expect("batch tx");
    tx.create_bucket(BUCKET).expect("create bucket");
    drop(tx);
    backend
}

fn key(i: usize) -> Vec<u8> {
    format!("k{i:06}").into_bytes()
}

fn value(i: usize) -> Vec<u8> {
    format!("value of {i}").into_bytes()
}

fn put(backend: &Backend, k: &[u8], v: &[u8]) {
    let mut tx = backend.batch_tx().expect("batch tx");
    tx.put(BUCKET, k, v).expect("put");
}

fn delete(backend: &Backend, k: &[u8]) {
    let mut tx = backend.batch_tx().expect("batch tx");
    tx.delete(BUCKET, k).expect("delete");
}

/// Every key/value of `bucket` as a reader sees it now.
fn read_all(backend: &Backend, bucket: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let rtx = backend.read_tx().expect("read tx");
    let mut out = Vec::new();
    rtx.for_each::<Error>(bucket, |k, v| {
        out.push((k.to_vec(), v.to_vec()));
        Ok(())
    })
    .expect("for_each");
    out
}

fn keys_in_range(backend: &Backend, start: &[u8], end: &[u8], limit: usize) -> Vec<Vec<u8>> {
    let rtx = backend.read_tx().expect("read tx");
    let kvs = rtx.range(BUCKET, start, Some(end), limit).expect("range");
    kvs.into_iter().map(|(k, _)| k.to_vec()).collect()
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(5));
    }
}

/// The content of a bbolt file, read with the engine directly.
fn file_content(path: &Path, bucket: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let db = Db::open(
        path,
        Options {
            read_only: true,
            ..Options::default()
        },
    )
    .expect("open copy");
    db.view(|tx| {
        let mut out = Vec::new();
        let Some(id) = tx.bucket(tx.root(), bucket)? else {
            return Ok(out);
        };
        let mut cursor = tx.cursor(id)?;
        let mut item = cursor.first()?;
        while let Some(it) = item {
            out.push((it.key.to_vec(), it.value.to_vec()));
            item = cursor.next()?;
        }
        Ok(out)
    })
    .expect("read copy")
}

// Writes are visible to new readers as soon as their session ends, before any commit, and
// never earlier: a reader sees a session all or nothing, and a view never changes.
#[test]
fn read_buffer_shows_writes_before_commit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let backend = open(config(dir.path()));
    let before = backend.read_tx().expect("read tx");
    let mut tx = backend.batch_tx().expect("batch tx");
    tx.put(BUCKET, b"a", b"1").expect("put");
    tx.put(BUCKET, b"b", b"2").expect("put");
    // Reads never wait for the batch mutex, and the open session is not visible yet.
    assert_eq!(
        backend
            .read_tx()
            .expect("read tx")
            .get(BUCKET, b"a")
            .expect("get"),
        None
    );
    drop(tx);
    let rtx = backend.read_tx().expect("read tx");
    assert_eq!(rtx.get(BUCKET, b"a").expect("get"), Some(&b"1"[..]));
    assert_eq!(
        rtx.range(BUCKET, b"b", None, 0).expect("range"),
        vec![(&b"b"[..], &b"2"[..])]
    );
    assert_eq!(
        keys_in_range(&backend, b"a", b"z", 0),
        vec![b"a".to_vec(), b"b".to_vec()]
    );
    assert_eq!(before.get(BUCKET, b"a").expect("get"), None);
    assert_eq!(backend.commits(), 0);
}

// The batch transaction's own reads see its uncommitted writes and deletes at once.
#[test]
fn batch_tx_reads_its_own_writes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let backend = open(config(dir.path()));
    put(&backend, b"a", b"1");
    backend.force_commit().expect("commit");
    let mut tx = backend.batch_tx().expect("batch tx");
    tx.put(BUCKET, b"b", b"2").expect("put");
    tx.delete(BUCKET, b"a").expect("delete");
    assert_eq!(tx.get(BUCKET, b"a").expect("get"), None);
    assert_eq!(
        tx.range(BUCKET, b"a", Some(b"z"), 0).expect("range"),
        vec![(&b"b"[..], &b"2"[..])]
    );
    let mut seen = Vec::new();
    tx.for_each::<Error>(BUCKET, |k, _| {
        seen.push(k.to_vec());
        Ok(())
    })
    .expect("for_each");
    assert_eq!(seen, vec![b"b".to_vec()]);
    assert_eq!(tx.pending(), 2);
}

// Releasing a session with batch_limit operations pending commits; fewer do not.
#[test]
fn commits_when_batch_limit_reached() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = config(dir.path());
    cfg.batch_limit = 5;
    let backend = open(cfg); // create_bucket is pending operation 1
    for i in 0..3 {
        put(&backend, &key(i), &value(i));
        assert_eq!(backend.commits(), 0, "committed early after {} puts", i + 1);
    }
    put(&backend, &key(3), &value(3));
    assert_eq!(backend.commits(), 1);
    assert_eq!(backend.batch_tx().expect("batch tx").pending(), 0);
    assert_eq!(read_all(&backend, BUCKET).len(), 4);
}

// The background thread commits pending writes within the batch interval, unprompted.
#[test]
fn commits_after_batch_interval() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = config(dir.path());
    cfg.batch_interval = Duration::from_millis(10);
    let backend = open(cfg);
    put(&backend, b"a", b"1");
    wait_until("a background commit", || backend.commits() >= 1);
    wait_until("nothing pending", || {
        backend.batch_tx().expect("batch tx").pending() == 0
    });
    assert_eq!(
        read_all(&backend, BUCKET),
        vec![(b"a".to_vec(), b"1".to_vec())]
    );
}

// force_commit commits what is pending, and only when something is.
#[test]
fn force_commit_commits_pending_writes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let backend = open(config(dir.path()));
    put(&backend, b"a", b"1");
    let txid_before = backend.read_tx().expect("read tx").committed_txid();
    backend.force_commit().expect("commit");
    assert_eq!(backend.commits(), 1);
    assert!(backend.read_tx().expect("read tx").committed_txid() > txid_before);
    backend.force_commit().expect("commit");
    assert_eq!(backend.commits(), 1);
}

// While one thread writes k0, k1, ... in order, one key per session, with commits happening
// all along, every concurrent read sees exactly k0..kn for some n that never goes backwards:
// full scans check the prefix, fast point reads hammer the commit swaps (a key once seen must
// stay visible in every later view).
#[test]
fn concurrent_readers_see_a_contiguous_prefix() {
    const KEYS: usize = 3000;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = config(dir.path());
    cfg.batch_limit = 7;
    cfg.batch_interval = Duration::from_millis(1);
    let backend = open(cfg);
    let done = Arc::new(AtomicBool::new(false));
    let mut readers = Vec::new();
    for _ in 0..2 {
        let (backend, done) = (backend.clone(), Arc::clone(&done));
        readers.push(thread::spawn(move || {
            let mut last_len = 0;
            while !done.load(Ordering::Acquire) || last_len == 0 {
                let seen = read_all(&backend, BUCKET);
                assert!(
                    seen.len() >= last_len,
                    "went back from {last_len} to {}",
                    seen.len()
                );
                for (i, (k, v)) in seen.iter().enumerate() {
                    assert_eq!((k, v), (&key(i), &value(i)), "hole or stray at {i}");
                }
                last_len = seen.len();
            }
        }));
    }
    let (reader_backend, reader_done) = (backend.clone(), Arc::clone(&done));
    readers.push(thread::spawn(move || {
        let mut visible = 0; // k0..k(visible-1) have been seen
        while !reader_done.load(Ordering::Acquire) || visible < KEYS {
            let rtx = reader_backend.read_tx().expect("read tx");
            if visible > 0 {
                let last = rtx.get(BUCKET, &key(visible - 1)).expect("get");
                assert_eq!(
                    last,
                    Some(&value(visible - 1)[..]),
                    "k{} vanished",
                    visible - 1
                );
            }
            while visible < KEYS && rtx.get(BUCKET, &key(visible)).expect("get").is_some() {
                visible += 1;
            }
            if visible < KEYS {
                assert_eq!(
                    rtx.get(BUCKET, &key(visible + 1)).expect("get"),
                    None,
                    "hole"
                );
            }
        }
    }));
    for i in 0..KEYS {
        let mut tx = backend.batch_tx().expect("batch tx");
        tx.put_seq(BUCKET, &key(i), &value(i)).expect("put");
    }
    done.store(true, Ordering::Release);
    for reader in readers {
        reader.join().expect("reader thread");
    }
    assert!(backend.commits() >= (KEYS / 7) as u64);
    assert_eq!(read_all(&backend, BUCKET).len(), KEYS);
}

// Buffered deletes hide committed keys in gets, ranges and limits, before and after the
// commit; a buffered bucket delete hides the whole committed bucket.
#[test]
fn buffered_deletes_hide_committed_keys() {
    let dir = tempfile::tempdir().expect("tempdir");
    let backend = open(config(dir.path()));
    for k in [b"a", b"b", b"c", b"d", b"e"] {
        put(&backend, k, b"v");
    }
    backend.force_commit().expect("commit");
    delete(&backend, b"b");
    delete(&backend, b"d");
    let expect = vec![b"a".to_vec(), b"c".to_vec(), b"e".to_vec()];
    for committed in [false, true] {
        assert_eq!(
            keys_in_range(&backend, b"a", b"z", 0),
            expect,
            "committed: {committed}"
        );
        assert_eq!(
            keys_in_range(&backend, b"a", b"z", 2),
            expect[..2],
            "committed: {committed}"
        );
        assert_eq!(
            keys_in_range(&backend, b"b", b"c", 0),
            Vec::<Vec<u8>>::new()
        );
        let rtx = backend.read_tx().expect("read tx");
        assert_eq!(rtx.get(BUCKET, b"b").expect("get"), None);
        assert_eq!(rtx.range(BUCKET, b"d", None, 0).expect("range"), vec![]);
        drop(rtx);
        backend.force_commit().expect("commit");
    }

    let mut tx = backend.batch_tx().expect("batch tx");
    tx.delete_bucket(BUCKET).expect("delete bucket");
    drop(tx);
    assert_eq!(read_all(&backend, BUCKET), vec![]);
    assert_eq!(
        backend
            .read_tx()
            .expect("read tx")
            .get(BUCKET, b"a")
            .expect("get"),
        None
    );
    let mut tx = backend.batch_tx().expect("batch tx");
    tx.create_bucket(BUCKET).expect("create bucket");
    tx.put(BUCKET, b"x", b"new").expect("put");
    drop(tx);
    for _ in 0..2 {
        assert_eq!(
            read_all(&backend, BUCKET),
            vec![(b"x".to_vec(), b"new".to_vec())]
        );
        backend.force_commit().expect("commit");
    }
}

// Writing to a missing bucket is an error that changes nothing; reading one yields nothing.
#[test]
fn missing_buckets() {
    let dir = tempfile::tempdir().expect("tempdir");
    let backend = open(config(dir.path()));
    let mut tx = backend.batch_tx().expect("batch tx");
    assert!(matches!(
        tx.put(b"nope", b"k", b"v"),
        Err(Error::BucketNotFound { .. })
    ));
    assert!(matches!(
        tx.delete(b"nope", b"k"),
        Err(Error::BucketNotFound { .. })
    ));
    assert_eq!(
        tx.range(b"nope", b"a", Some(b"z"), 0).expect("range"),
        vec![]
    );
    tx.delete_bucket(b"nope")
        .expect("deleting a missing bucket is a no-op");
    tx.create_bucket(BUCKET)
        .expect("creating an existing bucket is a no-op");
    drop(tx);
    assert_eq!(read_all(&backend, b"nope"), vec![]);
    assert_eq!(
        backend
            .read_tx()
            .expect("read tx")
            .get(b"nope", b"k")
            .expect("get"),
        None
    );
}

// Defrag while writers and readers run: readers never see a hole or a wrong value, a view
// taken before the defrag keeps reading its snapshot after it, nothing written is lost.
#[test]
fn defrag_under_concurrent_reads_and_writes() {
    const INITIAL: usize = 500;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = config(dir.path());
    cfg.batch_limit = 50;
    cfg.batch_interval = Duration::from_millis(2);
    let backend = open(cfg.clone());
    for i in 0..INITIAL {
        put(&backend, &key(i), &value(i));
    }
    backend.force_commit().expect("commit");
    let old_view = backend.read_tx().expect("read tx");

    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let (backend, done) = (backend.clone(), Arc::clone(&done));
        thread::spawn(move || {
            let mut next = INITIAL;
            while !done.load(Ordering::Acquire) {
                let mut tx = backend.batch_tx().expect("batch tx");
                tx.put_seq(BUCKET, &key(next), &value(next)).expect("put");
                next += 1;
            }
            next
        })
    };
    let reader = {
        let (backend, done) = (backend.clone(), Arc::clone(&done));
        thread::spawn(move || {
            let mut reads = 0;
            while !done.load(Ordering::Acquire) || reads == 0 {
                let seen = read_all(&backend, BUCKET);
                assert!(seen.len() >= INITIAL);
                for (i, (k, v)) in seen.iter().enumerate() {
                    assert_eq!((k, v), (&key(i), &value(i)), "hole or stray at {i}");
                }
                reads += 1;
            }
        })
    };
    for _ in 0..3 {
        let written_before = read_all(&backend, BUCKET).len();
        backend.defrag().expect("defrag");
        assert!(read_all(&backend, BUCKET).len() >= written_before);
    }
    done.store(true, Ordering::Release);
    let written = writer.join().expect("writer thread");
    reader.join().expect("reader thread");

    assert_eq!(
        old_view
            .range(BUCKET, b"", Some(b"\xff"), 0)
            .expect("range")
            .len(),
        INITIAL
    );
    assert_eq!(
        old_view.get(BUCKET, &key(7)).expect("get"),
        Some(&value(7)[..])
    );
    drop(old_view);
    let expected: Vec<_> = (0..written).map(|i| (key(i), value(i))).collect();
    assert_eq!(read_all(&backend, BUCKET), expected);
    backend.close().expect("close");
    drop(backend);
    let reopened = Backend::open(cfg).expect("reopen");
    assert_eq!(read_all(&reopened, BUCKET), expected);
}

// Defrag after deleting most data shrinks the file, keeps the rest, leaves no temp file.
#[test]
fn defrag_shrinks_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let backend = open(config(dir.path()));
    let big = vec![7u8; 1000];
    for i in 0..2000 {
        put(&backend, &key(i), &big);
    }
    backend.force_commit().expect("commit");
    for i in (0..2000).filter(|i| i % 10 != 0) {
        delete(&backend, &key(i));
    }
    backend.force_commit().expect("commit");
    let (size, in_use) = (backend.size(), backend.size_in_use());
    assert!(in_use <= size);
    backend.defrag().expect("defrag");
    assert!(
        backend.size() < size,
        "size {} not below {size}",
        backend.size()
    );
    assert!(backend.size_in_use() < in_use);
    assert!(backend.size_in_use() <= backend.size());
    let keys: Vec<_> = read_all(&backend, BUCKET)
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(keys, (0..2000).step_by(10).map(key).collect::<Vec<_>>());
    let files: Vec<_> = std::fs::read_dir(dir.path())
        .expect("read dir")
        .flatten()
        .collect();
    assert_eq!(files.len(), 1, "temp files left: {files:?}");
}

// close() commits pending writes and releases the file: reopening shows everything, and the
// closed backend refuses further use. Dropping the last handle alone does the same.
#[test]
fn reopen_after_close_keeps_everything() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(dir.path());
    let backend = open(cfg.clone());
    put(&backend, b"a", b"1");
    backend.force_commit().expect("commit");
    put(&backend, b"b", b"2");
    delete(&backend, b"a");
    let clone = backend.clone();
    backend.close().expect("close");
    assert!(matches!(clone.batch_tx(), Err(Error::Closed)));
    assert!(matches!(clone.read_tx(), Err(Error::Closed)));
    backend.close().expect("closing twice is a no-op");
    drop((backend, clone));

    let backend = Backend::open(cfg.clone()).expect("reopen");
    assert_eq!(
        read_all(&backend, BUCKET),
        vec![(b"b".to_vec(), b"2".to_vec())]
    );
    put(&backend, b"c", b"3");
    drop(backend);
    let backend = Backend::open(cfg).expect("reopen");
    assert_eq!(read_all(&backend, BUCKET).len(), 2);
}

// size_in_use never exceeds size, through writes, deletes, commits and a defrag.
#[test]
fn size_in_use_at_most_size() {
    let dir = tempfile::tempdir().expect("tempdir");
    let backend = open(config(dir.path()));
    let check = |backend: &Backend| {
        assert!(backend.size() > 0);
        assert!(backend.size_in_use() > 0);
        assert!(
            backend.size_in_use() <= backend.size(),
            "{} > {}",
            backend.size_in_use(),
            backend.size()
        );
    };
    check(&backend);
    for round in 0..5 {
        for i in 0..300 {
            put(&backend, &key(i), &vec![round as u8; 200 + i]);
        }
        backend.force_commit().expect("commit");
        check(&backend);
        for i in (0..300).step_by(3) {
            delete(&backend, &key(i));
        }
        backend.force_commit().expect("commit");
        check(&backend);
    }
    backend.defrag().expect("defrag");
    check(&backend);
}

// snapshot() writes a consistent file holding every write applied before the call.
#[test]
fn snapshot_copies_all_applied_writes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let backend = open(config(dir.path()));
    put(&backend, b"a", b"1");
    backend.force_commit().expect("commit");
    put(&backend, b"b", b"2"); // not yet committed
    let mut bytes = Vec::new();
    let written = backend.snapshot(&mut bytes).expect("snapshot");
    assert_eq!(written, bytes.len() as u64);
    let copy = dir.path().join("copy");
    std::fs::write(&copy, &bytes).expect("write copy");
    assert_eq!(file_content(&copy, BUCKET), read_all(&backend, BUCKET));
    assert_eq!(file_content(&copy, BUCKET).len(), 2);
}

// hash() depends on content only: equal content hashes equal, a change or an ignored key
// shows up exactly as expected, and uncommitted writes are included.
#[test]
fn hash_follows_content() {
    let dirs = [
        tempfile::tempdir().expect("tempdir"),
        tempfile::tempdir().expect("tempdir"),
    ];
    let (one, two) = (open(config(dirs[0].path())), open(config(dirs[1].path())));
    for i in 0..100 {
        put(&one, &key(i), &value(i));
    }
    for i in (0..100).rev() {
        put(&two, &key(i), &value(i));
        if i % 10 == 0 {
            two.force_commit().expect("commit");
        }
    }
    let no_ignore = |_: &[u8], _: &[u8]| false;
    assert_eq!(
        one.hash(no_ignore).expect("hash"),
        two.hash(no_ignore).expect("hash")
    );
    put(&two, &key(5), b"changed");
    assert_ne!(
        one.hash(no_ignore).expect("hash"),
        two.hash(no_ignore).expect("hash")
    );
    let skip_5 = |b: &[u8], k: &[u8]| b == BUCKET && k == key(5).as_slice();
    assert_eq!(
        one.hash(skip_5).expect("hash"),
        two.hash(skip_5).expect("hash")
    );
}

// replace_with swaps the whole database for another bbolt file: new readers and writers see
// only the new contents, a reader opened before keeps the old ones, the source file is gone,
// and a source that is not a database is refused with the old contents left in place.
#[test]
fn replace_with_installs_another_database() {
    let dir = tempfile::tempdir().expect("tempdir");
    let backend = open(config(dir.path()));
    put(&backend, b"old", b"1");
    backend.force_commit().expect("commit");
    let other_dir = dir.path().join("other");
    std::fs::create_dir(&other_dir).expect("mkdir");
    let other = open(config(&other_dir));
    put(&other, b"new", b"2");
    other.close().expect("close other");
    let src = dir.path().join("0000000000000007.snap.db");
    std::fs::rename(other_dir.join("db"), &src).expect("move");
    let garbage = dir.path().join("garbage.snap.db");
    std::fs::write(&garbage, b"not a database").expect("write");
    assert!(backend.replace_with(&garbage).is_err());
    assert_eq!(
        read_all(&backend, BUCKET),
        vec![(b"old".to_vec(), b"1".to_vec())]
    );

    let before = backend.read_tx().expect("read tx");
    put(&backend, b"pending", b"lost-or-not");
    backend.replace_with(&src).expect("replace");
    assert!(!src.exists());
    assert_eq!(
        read_all(&backend, BUCKET),
        vec![(b"new".to_vec(), b"2".to_vec())]
    );
    assert_eq!(
        before.get(BUCKET, b"old").expect("old read"),
        Some(&b"1"[..])
    );
    drop(before);
    put(&backend, b"later", b"3");
    backend.force_commit().expect("commit");
    let keys: Vec<_> = read_all(&backend, BUCKET)
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(keys, vec![b"later".to_vec(), b"new".to_vec()]);
}
