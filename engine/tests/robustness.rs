// Proves damaged files and API misuse give errors, never panics, hangs or a damaged file.
//! Regression tests from a correctness review of the engine core. Each test builds a small database,
//! optionally damages a few bytes of it the way a damaged or hostile file could, and asserts
//! what a correct engine must answer. Tests that would abort or hang the process run their body
//! in a child process (see `common::run_test_in_child`).

mod common;

use std::path::Path;
use std::time::Duration;

use common::{in_child, run_test_in_child, Must};
use oxcd_engine::layout::*;
use oxcd_engine::{compact, CompactOptions, Db, Error, Options, TxRead};

const PS: usize = 4096;

fn opts(page_size: usize) -> Options {
    Options {
        page_size: page_size as u32,
        no_sync: true,
        ..Options::default()
    }
}

fn patch(path: &Path, at: usize, bytes: &[u8]) {
    let mut file = std::fs::read(path).expect("read db");
    file[at..at + bytes.len()].copy_from_slice(bytes);
    std::fs::write(path, file).expect("write db");
}

/// The page id a bucket value (bucket header first) names as its root.
fn bucket_root(value: &[u8]) -> u64 {
    get_u64(value, BUCKET_ROOT)
}

/// File offset of leaf element `i`'s value inside page `pgid` (page size `ps`).
fn leaf_value_at(page: &[u8], pgid: u64, ps: usize, i: usize) -> usize {
    let elem = PAGE_HEADER_SIZE + i * LEAF_ELEMENT_SIZE;
    let pos = get_u32(page, elem + LEAF_POS) as usize;
    let ksize = get_u32(page, elem + LEAF_KSIZE) as usize;
    pgid as usize * ps + elem + pos + ksize
}

#[test]
fn branch_child_pgid_zero_in_root_bucket_is_an_error_not_a_panic() {
    // Proves: a root-bucket branch element naming page 0 makes a merging commit fail, not panic.
    let ps = 1024;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("db");
    let names: Vec<Vec<u8>> = (0..60)
        .map(|i| format!("bucket-{i:03}-{}", "x".repeat(30)).into_bytes())
        .collect();
    let (root, leaf0_keys) = {
        let db = Db::open(&path, opts(ps)).must("open");
        db.update(|tx| {
            for n in &names {
                tx.create_bucket(tx.root(), n)?;
            }
            Ok(())
        })
        .must("fill");
        let rtx = db.begin_read().must("read");
        let root = rtx.meta().root_pgid;
        let page = rtx.raw_page(root).must("root page").to_vec();
        assert_eq!(
            get_u16(&page, PAGE_FLAGS),
            BRANCH_PAGE,
            "root bucket is a branch"
        );
        assert!(get_u16(&page, PAGE_COUNT) >= 3);
        let split_key = {
            let e = PAGE_HEADER_SIZE + BRANCH_ELEMENT_SIZE;
            let pos = get_u32(&page, e + BRANCH_POS) as usize;
            let k = get_u32(&page, e + BRANCH_KSIZE) as usize;
            page[e + pos..e + pos + k].to_vec()
        };
        let keys: Vec<Vec<u8>> = names.iter().filter(|n| **n < split_key).cloned().collect();
        (root, keys)
    };
    // Element 1 of the root branch now names page 0.
    let at = root as usize * ps + PAGE_HEADER_SIZE + BRANCH_ELEMENT_SIZE + BRANCH_PGID;
    patch(&path, at, &0u64.to_le_bytes());
    let db = Db::open(&path, opts(ps)).must("reopen");
    let mut tx = db.begin_write().must("begin");
    // Leave one bucket in the first leaf so commit merges it with its right sibling (page 0).
    for k in &leaf0_keys[1..] {
        tx.delete_bucket(tx.root(), k).must("delete bucket");
    }
    let r = tx.commit();
    assert!(
        matches!(r, Err(Error::Corrupted { .. })),
        "expected Corrupted, got {r:?}"
    );
}

#[test]
fn empty_branch_root_materialized_by_next_sequence_is_an_error_not_a_panic() {
    // Proves: a bucket whose root is an empty branch page gives Corrupted on get, not a panic.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("db");
    let root = {
        let db = Db::open(&path, opts(PS)).must("open");
        db.update(|tx| {
            let b = tx.create_bucket(tx.root(), b"b")?;
            tx.put(b, b"k", &[7u8; 2000])
        })
        .must("fill");
        let rtx = db.begin_read().must("read");
        let v = rtx
            .cursor(rtx.root())
            .must("c")
            .first()
            .must("first")
            .expect("b");
        bucket_root(v.value)
    };
    assert_ne!(root, 0, "bucket b lives in its own page");
    let at = root as usize * PS;
    patch(&path, at + PAGE_FLAGS, &BRANCH_PAGE.to_le_bytes());
    patch(&path, at + PAGE_COUNT, &0u16.to_le_bytes());
    let db = Db::open(&path, opts(PS)).must("reopen");
    let mut tx = db.begin_write().must("begin");
    let b = tx.bucket(tx.root(), b"b").must("bucket").expect("b");
    let seq = tx.next_sequence(b);
    let got = seq.and_then(|_| tx.get(b, b"k").map(|v| v.map(<[u8]>::to_vec)));
    assert!(
        matches!(got, Err(Error::Corrupted { .. })),
        "expected Corrupted, got {got:?}"
    );
}

#[test]
fn compact_of_a_plain_key_in_the_root_bucket_is_an_error_not_a_panic() {
    // Proves: compact() of a file whose root bucket holds a non-bucket key fails with an error.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("src");
    let root = {
        let db = Db::open(&path, opts(PS)).must("open");
        db.update(|tx| tx.create_bucket(tx.root(), b"a").map(|_| ()))
            .must("fill");
        let rtx = db.begin_read().must("read");
        rtx.meta().root_pgid
    };
    // Clear the bucket flag of the root leaf's only element.
    patch(
        &path,
        root as usize * PS + PAGE_HEADER_SIZE + LEAF_FLAGS,
        &0u32.to_le_bytes(),
    );
    let src = Db::open(&path, opts(PS)).must("reopen src");
    let dst = Db::open(dir.path().join("dst"), opts(PS)).must("open dst");
    let r = compact(&src, &dst, &CompactOptions::default(), &mut |_| {});
    assert!(r.is_err(), "expected an error, got {r:?}");
}

#[test]
fn read_tx_given_a_bucket_id_it_never_issued_returns_an_error() {
    // Proves: a BucketId from another transaction gives BucketNotFound in a ReadTx, as in a WriteTx.
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open(dir.path().join("db"), opts(PS)).must("open");
    let mut wtx = db.begin_write().must("begin");
    let foreign = wtx.create_bucket(wtx.root(), b"x").must("create");
    wtx.rollback();
    let rtx = db.begin_read().must("read");
    let r = rtx.sequence(foreign);
    assert!(matches!(r, Err(Error::BucketNotFound)), "got {r:?}");
}

#[test]
fn tiny_page_size_option_is_an_error_not_a_panic() {
    // Proves: Options.page_size below a meta page's size is rejected with an error.
    let dir = tempfile::tempdir().expect("tempdir");
    let r = Db::open(dir.path().join("db"), opts(64));
    assert!(r.is_err(), "expected an error");
}

#[test]
fn bucket_whose_root_is_its_parents_page_does_not_overflow_the_stack() {
    // Proves: a sub-bucket pointing back at its parent's root page yields an error, not an abort.
    if !in_child() {
        return run_test_in_child(
            "bucket_whose_root_is_its_parents_page_does_not_overflow_the_stack",
            Duration::from_secs(120),
        );
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("db");
    let (a_root, b_value_at) = {
        let db = Db::open(&path, opts(PS)).must("open");
        db.update(|tx| {
            let a = tx.create_bucket(tx.root(), b"a")?;
            tx.put(a, b"v", &[1u8; 2000])?;
            tx.create_bucket(a, b"b")?;
            Ok(())
        })
        .must("fill");
        let rtx = db.begin_read().must("read");
        let a = rtx
            .cursor(rtx.root())
            .must("c")
            .first()
            .must("first")
            .expect("a");
        let a_root = bucket_root(a.value);
        let page = rtx.raw_page(a_root).must("a's root").to_vec();
        // a's leaf holds "b" (bucket) then "v".
        (a_root, leaf_value_at(&page, a_root, PS, 0))
    };
    patch(&path, b_value_at, &a_root.to_le_bytes());
    let db = Db::open(&path, opts(PS)).must("reopen");
    let rtx = db.begin_read().must("read");
    let a = rtx.bucket(rtx.root(), b"a").must("a").expect("a");
    println!("walking bucket stats of a cyclic bucket graph");
    let r = rtx.bucket_stats(a);
    assert!(r.is_err(), "expected an error, got {r:?}");
}

#[test]
fn self_referencing_branch_does_not_hang_open_without_a_freelist() {
    // Proves: opening with no_freelist_sync a file whose root branch names itself twice fails fast.
    if !in_child() {
        return run_test_in_child(
            "self_referencing_branch_does_not_hang_open_without_a_freelist",
            Duration::from_secs(20),
        );
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("db");
    let root = {
        let db = Db::open(&path, opts(PS)).must("open");
        let rtx = db.begin_read().must("read");
        rtx.meta().root_pgid
    };
    let mut page = vec![0u8; PS];
    put_u64(&mut page, PAGE_ID, root);
    put_u16(&mut page, PAGE_FLAGS, BRANCH_PAGE);
    put_u16(&mut page, PAGE_COUNT, 2);
    let data = PAGE_HEADER_SIZE + 2 * BRANCH_ELEMENT_SIZE;
    for (i, key) in [b'a', b'b'].into_iter().enumerate() {
        let e = PAGE_HEADER_SIZE + i * BRANCH_ELEMENT_SIZE;
        put_u32(&mut page, e + BRANCH_POS, (data + i - e) as u32);
        put_u32(&mut page, e + BRANCH_KSIZE, 1);
        put_u64(&mut page, e + BRANCH_PGID, root);
        page[data + i] = key;
    }
    patch(&path, root as usize * PS, &page);
    println!("opening with no_freelist_sync");
    let r = Db::open(
        &path,
        Options {
            no_freelist_sync: true,
            ..opts(PS)
        },
    );
    assert!(r.is_err(), "expected Corrupted");
}

#[test]
fn strict_commit_that_reports_failure_is_not_applied() {
    // Proves: when strict mode fails a commit, the commit's changes are not visible afterwards.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("db");
    let newer = {
        let db = Db::open(&path, opts(PS)).must("open");
        db.update(|tx| tx.create_bucket(tx.root(), b"b").map(|_| ()))
            .must("fill");
        let m = db.begin_read().must("read").meta();
        (m.txid % 2) as usize
    };
    // Leak one page: raise the newer meta's high water mark by one and reseal it.
    let mut bytes = std::fs::read(&path).expect("read");
    let m = newer * PS + PAGE_HEADER_SIZE;
    let hw = get_u64(&bytes, m + META_PGID);
    assert!((hw as usize + 1) * PS <= bytes.len());
    put_u64(&mut bytes, m + META_PGID, hw + 1);
    let sum = fnv1a64(&bytes[m..m + META_CHECKSUM]);
    put_u64(&mut bytes, m + META_CHECKSUM, sum);
    std::fs::write(&path, &bytes).expect("write");
    let db = Db::open(
        &path,
        Options {
            strict: true,
            ..opts(PS)
        },
    )
    .must("reopen strict");
    let r = db.update(|tx| {
        let b = tx.bucket(tx.root(), b"b")?.expect("b");
        tx.put(b, b"k", b"v")
    });
    assert!(matches!(r, Err(Error::Check { .. })), "got {r:?}");
    let visible = db
        .view(|tx| {
            let b = tx.bucket(tx.root(), b"b")?.expect("b");
            Ok(tx.get(b, b"k")?.is_some())
        })
        .must("view");
    assert!(
        !visible,
        "commit() returned Err, yet its write is visible (and durable)"
    );
}

fn fnv1a64(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    })
}

fn vm_size_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("status");
    let line = status
        .lines()
        .find(|l| l.starts_with("VmSize:"))
        .expect("VmSize");
    let kb: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("kB");
    kb * 1024
}

fn set_soft_limit(resource: libc::__rlimit_resource_t, bytes: u64) -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscalls on a local struct.
    unsafe {
        assert_eq!(libc::getrlimit(resource, &mut lim), 0);
        let old = lim.rlim_cur;
        lim.rlim_cur = bytes;
        assert_eq!(libc::setrlimit(resource, &lim), 0);
        old
    }
}

#[test]
fn commits_that_return_err_never_leave_a_damaged_file() {
    // Proves: after a commit fails in its remap (ENOMEM) and the next fails in pwrite (EFBIG),
    // the file still opens, checks clean and holds neither commit.
    if !in_child() {
        return run_test_in_child(
            "commits_that_return_err_never_leave_a_damaged_file",
            Duration::from_secs(120),
        );
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("db");
    let db = Db::open(&path, opts(PS)).must("open");
    let value = vec![9u8; 64 << 10];
    let commit_chunk = |db: &Db, n: &mut u32| {
        let r = db.update(|tx| {
            let b = tx.create_bucket_if_not_exists(tx.root(), b"b")?;
            for _ in 0..8 {
                tx.put(b, &n.to_be_bytes(), &value)?;
                *n += 1;
            }
            Ok(())
        });
        if r.is_err() {
            *n -= 8;
        }
        r
    };
    let mut n = 0u32;
    // Grow to just under a 16 MiB mapping.
    while db.info().must("info").high_water_pgid * (PS as u64) < (15 << 20) {
        commit_chunk(&db, &mut n).must("grow");
    }
    let hw_before = db.info().must("info").high_water_pgid;
    // 1. Leave room for a commit's buffers but not for a 32 MiB mapping.
    let old_as = set_soft_limit(libc::RLIMIT_AS, vm_size_bytes() + (20 << 20));
    let mut failed = None;
    for _ in 0..8 {
        let first = n;
        if let Err(e) = commit_chunk(&db, &mut n) {
            failed = Some((first, e));
            break;
        }
    }
    set_soft_limit(libc::RLIMIT_AS, old_as);
    let (first, e) = failed.expect("a commit needing a 32 MiB mapping failed");
    let hw_now = db.info().must("info").high_water_pgid;
    println!("commit 1 failed with: {e} (high water {hw_before} -> {hw_now})");
    // 2. A second commit that gets 100 pages past the old high water mark, then EFBIG.
    // SAFETY: ignoring SIGXFSZ so that writes past RLIMIT_FSIZE fail with EFBIG instead.
    unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
    let old_fsize = set_soft_limit(libc::RLIMIT_FSIZE, (hw_now + 100) * PS as u64);
    let r = db.update(|tx| {
        let b = tx.bucket(tx.root(), b"b")?.expect("b");
        tx.put(b, b"zzzz-big", &vec![0xAB; 2 << 20])
    });
    set_soft_limit(libc::RLIMIT_FSIZE, old_fsize);
    println!("commit 2 returned: {r:?}");
    assert!(r.is_err(), "commit 2 was meant to fail in pwrite");
    drop(db);
    let db = Db::open(&path, opts(PS)).must("reopen");
    let checked = db.check();
    let has_first = db.view(|tx| {
        let b = tx.bucket(tx.root(), b"b")?.expect("b");
        Ok(tx.get(b, &first.to_be_bytes())?.is_some())
    });
    if let Err(Error::Check { problems, .. }) = &checked {
        println!(
            "after reopen: {} problems, first: {:?}",
            problems.len(),
            &problems[..3]
        );
    }
    println!("after reopen: key of commit 1 present: {has_first:?}");
    assert!(
        checked.is_ok(),
        "two commits that returned Err left a damaged file"
    );
    assert!(
        !has_first.expect("read"),
        "commit 1 returned Err ({e}) but it is durable"
    );
}

#[test]
fn bucket_rooted_at_a_meta_page_is_an_error_not_a_panic() {
    // Proves: a bucket whose root names meta page 1 (its unchecksummed header made to look like
    // a leaf) makes a commit fail with Corrupted instead of panicking in the freelist.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("db");
    let value_at = {
        let db = Db::open(&path, opts(PS)).must("open");
        db.update(|tx| tx.create_bucket(tx.root(), b"a").map(|_| ()))
            .must("fill");
        let rtx = db.begin_read().must("read");
        let root = rtx.meta().root_pgid;
        let page = rtx.raw_page(root).must("root leaf").to_vec();
        leaf_value_at(&page, root, PS, 0)
    };
    // Bucket "a" now claims page 1 as its root; page 1's header claims: leaf, 1 element,
    // 1 overflow page. The meta record after the header (and its checksum) is untouched.
    patch(&path, value_at + BUCKET_ROOT, &1u64.to_le_bytes());
    patch(&path, PS + PAGE_FLAGS, &LEAF_PAGE.to_le_bytes());
    patch(&path, PS + PAGE_COUNT, &1u16.to_le_bytes());
    patch(&path, PS + PAGE_OVERFLOW, &1u32.to_le_bytes());
    let db = Db::open(&path, opts(PS)).must("reopen");
    let r = db.update(|tx| {
        let a = tx.bucket(tx.root(), b"a")?.ok_or(Error::BucketNotFound)?;
        tx.put(a, b"k", b"v")
    });
    assert!(
        matches!(r, Err(Error::Corrupted { .. })),
        "expected Corrupted, got {r:?}"
    );
}
