//! Corruption tests: a database with known content is damaged (single bytes of either meta page,
//! random bytes of data pages, whole zeroed pages, truncation at many lengths, foreign files)
//! and then opened, walked completely and checked. The engine must answer with a typed error
//! (`Error::Corrupted` naming the file, or `Error::Check`) or with a valid state; it must never
//! panic, abort or hang. Damage to one meta page must fall back to the other one, and meta damage
//! must never yield wrong data: the content is then exactly the older or the newer state.
//!
//! The bbolt format has no checksums on data pages, so a flipped byte inside a value can only be
//! read back silently; for data-page damage these tests demand a typed error or a read that does
//! the process no harm, answers that no valid file can give must make check() fail, and a commit
//! on top of the damage must fail with an error or leave a file that checks clean. They count
//! how often each outcome occurs.
//!
//! Each sweep runs its body in a child process (see `common::run_test_in_child`), so that a
//! SIGBUS on a truncated mapping, a stack overflow or a hang is reported with the case that
//! caused it. Knobs: `OXCD_CORRUPT_CASES` (random data-page cases per test, default 1500) and
//! `OXCD_CORRUPT_SEED` (seed of those cases).

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use common::{
    env_u64, first_difference, in_child, pattern_bytes, read_tree, run_test_in_child, ModelBucket,
    Must, WalkError, WalkOpts,
};
use oxcd_engine::{Db, Error, Options, PageKind, TxRead};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const PAGE_SIZE: usize = 4096;
const PAGE_HEADER_SIZE: usize = 16;
/// magic, version, page size, flags, root bucket (16), freelist, high water, txid, checksum.
const META_SIZE: usize = 64;
const META_TXID_AT: usize = 48;
const META_CHECKSUM_AT: usize = 56;
const CHILD_DEADLINE: Duration = Duration::from_secs(600);
/// Walk limits for damaged files: a valid file here has far fewer entries and levels.
const DAMAGED_WALK: WalkOpts = WalkOpts {
    max_entries: 1_000_000,
    max_depth: 32,
    thorough: true,
};

/// The undamaged file and what it must read as.
struct Pristine {
    bytes: Vec<u8>,
    /// State committed by the transaction that wrote the older meta page.
    older: ModelBucket,
    /// State committed by the transaction that wrote the newer meta page.
    newer: ModelBucket,
    /// 0 or 1: which meta page holds the newer transaction.
    newer_meta: usize,
    /// Page id, kind and element count of every page below the high-water mark.
    pages: Vec<(u64, PageKind, u64)>,
    /// Pages in use by the newer meta (the file may be longer).
    high_water: u64,
}

fn options(read_only: bool) -> Options {
    Options {
        page_size: PAGE_SIZE as u32,
        strict: true,
        no_sync: true,
        read_only,
        ..Options::default()
    }
}

/// Builds a file with branch, leaf, overflow and freelist pages, nested and inline buckets,
/// sequences, and two metas whose states differ.
fn build_pristine() -> Pristine {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("db");
    let db = Db::open(&path, options(false)).must("create");
    let mut rng = StdRng::seed_from_u64(7);
    for round in 0..10u64 {
        db.update(|tx| {
            let alpha = tx.create_bucket_if_not_exists(tx.root(), b"alpha")?;
            for _ in 0..60 {
                let k = format!("a{:05}", rng.gen_range(0..800));
                tx.put(
                    alpha,
                    k.as_bytes(),
                    &pattern_bytes(rng.gen(), rng.gen_range(0..150)),
                )?;
            }
            let beta = tx.create_bucket_if_not_exists(tx.root(), b"beta")?;
            for _ in 0..4 {
                let k = format!("b{:03}", rng.gen_range(0..30));
                tx.put(
                    beta,
                    k.as_bytes(),
                    &pattern_bytes(rng.gen(), rng.gen_range(0..20_000)),
                )?;
            }
            tx.next_sequence(beta)?;
            let gamma = tx.create_bucket_if_not_exists(tx.root(), b"gamma")?;
            let inner = tx.create_bucket_if_not_exists(gamma, b"inner")?;
            tx.put(
                inner,
                format!("i{round}").as_bytes(),
                b"small: stays inline",
            )?;
            let deep = tx.create_bucket_if_not_exists(inner, b"deep")?;
            tx.set_sequence(deep, 1000 + round)?;
            let wide = tx.create_bucket_if_not_exists(gamma, b"wide")?;
            for i in 0..40u64 {
                tx.put(
                    wide,
                    &(round * 40 + i).to_be_bytes(),
                    &pattern_bytes(i, 300),
                )?;
            }
            if round % 3 == 2 {
                for _ in 0..40 {
                    let k = format!("a{:05}", rng.gen_range(0..800));
                    tx.delete(alpha, k.as_bytes())?;
                }
                tx.delete_bucket(gamma, b"wide")?;
            }
            Ok(())
        })
        .must("fill");
    }
    let read = |db: &Db| {
        db.view(|tx| Ok(read_tree(tx, &WalkOpts::THOROUGH)))
            .must("view")
            .expect("walk pristine")
    };
    let older = read(&db);
    db.update(|tx| {
        let alpha = tx.bucket(tx.root(), b"alpha")?.expect("alpha");
        tx.put(alpha, b"newer", b"only in the newer state")?;
        let beta = tx.bucket(tx.root(), b"beta")?.expect("beta");
        tx.delete(beta, b"b007")?;
        tx.put(beta, b"b031", &pattern_bytes(31, 9000))?;
        Ok(())
    })
    .must("last tx");
    let newer = read(&db);
    assert!(
        first_difference(&older, &newer).is_some(),
        "the two metas must differ in content"
    );
    let high_water = db.info().must("info").high_water_pgid;
    let tx = db.begin_read().must("begin_read");
    let mut pages = Vec::new();
    for id in 0..high_water {
        if let Some(p) = tx.page_info(id).must("page_info") {
            pages.push((p.id, p.kind, p.count));
        }
    }
    drop(tx);
    drop(db);
    let bytes = std::fs::read(&path).expect("read pristine");
    let newer_meta = if meta_txid(&bytes, 1) > meta_txid(&bytes, 0) {
        1
    } else {
        0
    };
    assert_eq!(
        meta_txid(&bytes, newer_meta),
        meta_txid(&bytes, 1 - newer_meta) + 1
    );
    println!(
        "pristine file: {} bytes, high water {high_water} pages",
        bytes.len()
    );
    Pristine {
        bytes,
        older,
        newer,
        newer_meta,
        pages,
        high_water,
    }
}

fn meta_at(page: usize) -> usize {
    page * PAGE_SIZE + PAGE_HEADER_SIZE
}

fn meta_txid(bytes: &[u8], page: usize) -> u64 {
    let at = meta_at(page) + META_TXID_AT;
    u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}

/// FNV-1a 64, bbolt's meta checksum over the meta bytes before the checksum field.
fn fnv1a64(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    })
}

/// Rewrites a meta page's checksum so that it matches its (possibly edited) fields.
fn reseal_meta(bytes: &mut [u8], page: usize) {
    let at = meta_at(page);
    let sum = fnv1a64(&bytes[at..at + META_CHECKSUM_AT]);
    bytes[at + META_CHECKSUM_AT..at + META_SIZE].copy_from_slice(&sum.to_le_bytes());
}

/// What opening, walking and checking a damaged file gave.
enum Outcome {
    /// Opened, walked and checked clean.
    Read(ModelBucket),
    /// Opened and walked, but check() reported problems.
    CheckFailed(Error),
    /// A typed error (Corrupted naming the file, or Check) from open, walk or check.
    Rejected(Error),
    /// The walker caught the engine answering Ok with impossible data (check() failed).
    Inconsistent(String),
}

/// True for the errors a damaged file may produce: Corrupted or Check, naming `path`.
fn is_typed_damage_error(e: &Error, path: &Path) -> bool {
    match e {
        Error::Corrupted { file, .. } | Error::Check { file, .. } => file == path,
        _ => false,
    }
}

/// Opens `bytes` as a database file and reads all of it. Errors other than the typed damage
/// errors fail the test.
fn examine(dir: &Path, bytes: &[u8], read_only: bool, case: &str) -> Outcome {
    let path = dir.join("damaged");
    std::fs::write(&path, bytes).expect("write damaged file");
    let typed = |e: Error, stage: &str| -> Outcome {
        assert!(
            is_typed_damage_error(&e, &path),
            "{case}: {stage} gave an untyped error: {e:?}"
        );
        Outcome::Rejected(e)
    };
    let db = match Db::open(&path, options(read_only)) {
        Ok(db) => db,
        Err(e) => return typed(e, "open"),
    };
    let walked = match db.begin_read() {
        Ok(tx) => read_tree(&tx, &DAMAGED_WALK),
        Err(e) => return typed(e, "begin_read"),
    };
    let tree = match walked {
        Ok(tree) => tree,
        Err(WalkError::Engine(e)) => return typed(e, "walk"),
        Err(WalkError::Inconsistent(s)) => {
            // Answers no valid file can give (keys out of order, get() disagreeing with the
            // cursor, a runaway cursor) come from damage that check() must report.
            match db.check() {
                Err(e) if is_typed_damage_error(&e, &path) => {}
                other => panic!("{case}: reads were inconsistent ({s}) but check() gave {other:?}"),
            }
            return Outcome::Inconsistent(s);
        }
    };
    match db.check() {
        Ok(()) => Outcome::Read(tree),
        Err(e) => {
            assert!(
                is_typed_damage_error(&e, &path),
                "{case}: check gave an untyped error: {e:?}"
            );
            Outcome::CheckFailed(e)
        }
    }
}

/// Requires a clean read of exactly one of `allowed` (by name) and returns its name.
fn require_state<'a>(outcome: Outcome, allowed: &[(&'a str, &ModelBucket)], case: &str) -> &'a str {
    let tree = match outcome {
        Outcome::Read(tree) => tree,
        Outcome::CheckFailed(e) => panic!("{case}: check failed on a valid state: {e}"),
        Outcome::Rejected(e) => panic!("{case}: rejected, expected a valid state: {e}"),
        Outcome::Inconsistent(s) => panic!("{case}: inconsistent read: {s}"),
    };
    for (name, state) in allowed {
        if first_difference(state, &tree).is_none() {
            return name;
        }
    }
    let diffs: Vec<String> = allowed
        .iter()
        .map(|(n, s)| format!("vs {n}: {}", first_difference(s, &tree).unwrap_or_default()))
        .collect();
    panic!(
        "{case}: opened with content that is no valid state ({})",
        diffs.join("; ")
    );
}

#[test]
fn one_damaged_meta_page_falls_back_to_the_other() {
    // Proves: any single damaged byte of one meta page yields exactly the state of the other meta.
    if !in_child() {
        return run_test_in_child(
            "one_damaged_meta_page_falls_back_to_the_other",
            CHILD_DEADLINE,
        );
    }
    let p = build_pristine();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut rng = StdRng::seed_from_u64(11);
    let mut seen: BTreeMap<&str, u32> = BTreeMap::new();
    for page in 0..2 {
        // The fallback state when this page's meta is unusable.
        let other = if page == p.newer_meta {
            ("older", &p.older)
        } else {
            ("newer", &p.newer)
        };
        // The page header, every meta byte, and a sample of the unused rest of the page.
        let mut offsets: Vec<usize> = (0..PAGE_HEADER_SIZE + META_SIZE).collect();
        offsets.extend((0..32).map(|_| rng.gen_range(PAGE_HEADER_SIZE + META_SIZE..PAGE_SIZE)));
        for (n, off) in offsets.into_iter().enumerate() {
            let at = page * PAGE_SIZE + off;
            for flip in [0xffu8, 1 << (n % 8)] {
                let mut bytes = p.bytes.clone();
                bytes[at] ^= flip;
                let read_only = n % 4 == 3;
                let case =
                    format!("meta page {page} byte {off} ^ {flip:#04x} (read_only {read_only})");
                println!("case {case}");
                let outcome = examine(dir.path(), &bytes, read_only, &case);
                let state = if (PAGE_HEADER_SIZE..PAGE_HEADER_SIZE + META_SIZE).contains(&off) {
                    // Covered by the checksum: the other meta is the only valid answer.
                    require_state(outcome, &[other], &case)
                } else {
                    require_state(outcome, &[("older", &p.older), ("newer", &p.newer)], &case)
                };
                *seen.entry(state).or_default() += 1;
                if n % 8 == 0 && !read_only {
                    write_after_fallback(dir.path(), &case);
                }
            }
        }
    }
    println!("states read after single meta damage: {seen:?}");
}

/// After opening a file that needed a fallback, a new commit must work and survive a reopen.
fn write_after_fallback(dir: &Path, case: &str) {
    let path = dir.join("damaged");
    let db = Db::open(&path, options(false)).must("reopen damaged");
    let before = db
        .view(|tx| Ok(read_tree(tx, &WalkOpts::THOROUGH)))
        .must("view");
    let mut expected = before.unwrap_or_else(|e| panic!("{case}: walk: {e}"));
    db.update(|tx| {
        let alpha = tx.bucket(tx.root(), b"alpha")?.expect("alpha");
        tx.put(alpha, b"after fallback", b"written")?;
        Ok(())
    })
    .unwrap_or_else(|e| panic!("{case}: commit after fallback: {e}"));
    drop(db);
    let alpha = expected.bucket_mut(&[b"alpha".to_vec()]).expect("alpha");
    alpha.entries.insert(
        b"after fallback".to_vec(),
        common::Entry::Value(b"written".to_vec()),
    );
    let db = Db::open(&path, options(false)).unwrap_or_else(|e| panic!("{case}: reopen: {e}"));
    db.check()
        .unwrap_or_else(|e| panic!("{case}: check after commit on fallback: {e}"));
    let got = db
        .view(|tx| Ok(read_tree(tx, &WalkOpts::THOROUGH)))
        .must("view");
    let got = got.unwrap_or_else(|e| panic!("{case}: walk after reopen: {e}"));
    if let Some(d) = first_difference(&expected, &got) {
        panic!("{case}: commit after fallback did not survive a reopen: {d}");
    }
}

#[test]
fn both_meta_pages_damaged_is_a_typed_error() {
    // Proves: with no valid meta left, open fails with Corrupted naming the file, changing nothing.
    if !in_child() {
        return run_test_in_child("both_meta_pages_damaged_is_a_typed_error", CHILD_DEADLINE);
    }
    let p = build_pristine();
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, field_at) in [
        ("magic", 0),
        ("version", 4),
        ("root", 16),
        ("txid", 48),
        ("checksum", 56),
    ] {
        let mut bytes = p.bytes.clone();
        for page in 0..2 {
            bytes[meta_at(page) + field_at] ^= 0x5a;
        }
        expect_corrupted(
            dir.path(),
            &bytes,
            &format!("both metas: {name} byte flipped"),
            |_| true,
        );
    }
    // A well-formed meta of an unknown version, checksums fixed: BadVersion, not BadChecksum.
    let mut bytes = p.bytes.clone();
    for page in 0..2 {
        bytes[meta_at(page) + 4..meta_at(page) + 8].copy_from_slice(&9u32.to_le_bytes());
        reseal_meta(&mut bytes, page);
    }
    let bad_version = |e: &Error| format!("{e:?}").contains("BadVersion");
    expect_corrupted(
        dir.path(),
        &bytes,
        "both metas: version 9 with valid checksums",
        bad_version,
    );
}

#[test]
fn pristine_meta_checksums_are_bbolts() {
    // Proves: metas carry bbolt's FNV-1a checksum, so the meta tests damage what bbolt checks.
    let p = build_pristine();
    for page in 0..2 {
        let mut resealed = p.bytes.clone();
        reseal_meta(&mut resealed, page);
        assert!(
            resealed == p.bytes,
            "meta page {page}: checksum is not FNV-1a 64 over bytes 0..56"
        );
    }
}

/// Opens `bytes` read-write and read-only: both must fail with Corrupted naming the file whose
/// `what` satisfies `what_ok`, and the file must be left byte for byte as it was.
fn expect_corrupted(dir: &Path, bytes: &[u8], case: &str, what_ok: fn(&Error) -> bool) {
    let path = dir.join("damaged");
    for read_only in [false, true] {
        println!("case {case} (read_only {read_only})");
        std::fs::write(&path, bytes).expect("write");
        match Db::open(&path, options(read_only)) {
            Ok(_) => panic!("{case}: opened (read_only {read_only}), expected Corrupted"),
            Err(e @ Error::Corrupted { .. }) => {
                assert!(
                    is_typed_damage_error(&e, &path),
                    "{case}: error names another file: {e}"
                );
                assert!(what_ok(&e), "{case}: unexpected kind of corruption: {e:?}");
                println!("  -> {e}");
            }
            Err(e) => panic!("{case}: expected Corrupted, got {e:?}"),
        }
        let after = std::fs::read(&path).expect("read back");
        assert!(after == bytes, "{case}: a failed open modified the file");
    }
}

#[test]
fn foreign_files_are_rejected_as_corrupted() {
    // Proves: files that are not databases (random bytes, text, zeros, a program) give Corrupted.
    if !in_child() {
        return run_test_in_child("foreign_files_are_rejected_as_corrupted", CHILD_DEADLINE);
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let mut rng = StdRng::seed_from_u64(13);
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    for len in [1, 15, 100, 4095, 4096, 8192, 16_384, 100_000] {
        files.push((
            format!("{len} random bytes"),
            (0..len).map(|_| rng.gen()).collect(),
        ));
    }
    files.push(("16 KiB of zeros".into(), vec![0; 16_384]));
    files.push(("64 KiB of 0xff".into(), vec![0xff; 65_536]));
    files.push((
        "a short text".into(),
        b"hello, I am not a database\n".to_vec(),
    ));
    files.push(("a long text".into(), b"key = value\n".repeat(5000)));
    let exe = std::fs::read(std::env::current_exe().expect("current_exe")).expect("read exe");
    files.push((
        "the test program".into(),
        exe[..exe.len().min(1 << 20)].to_vec(),
    ));
    for (name, bytes) in files {
        expect_corrupted(dir.path(), &bytes, &name, |_| true);
    }
}

#[test]
fn truncated_files_give_a_typed_error_or_a_valid_state() {
    // Proves: a file cut at any length opens as a valid state or fails with a typed error.
    if !in_child() {
        return run_test_in_child(
            "truncated_files_give_a_typed_error_or_a_valid_state",
            CHILD_DEADLINE,
        );
    }
    let p = build_pristine();
    let dir = tempfile::tempdir().expect("tempdir");
    let ps = PAGE_SIZE;
    let mut lengths = vec![
        0,
        1,
        8,
        16,
        79,
        80,
        100,
        ps / 2,
        ps - 1,
        ps,
        ps + 1,
        ps + 80,
        2 * ps - 1,
    ];
    // Every page boundary in use (and around it), then a sample of the unused tail.
    let in_use = p.high_water as usize;
    for k in 2..=in_use {
        lengths.extend([k * ps - 1, k * ps, k * ps + 1, k * ps + ps / 2]);
    }
    let tail_pages = p.bytes.len().div_ceil(ps) - in_use;
    lengths.extend((1..=16).map(|n| (in_use + n * tail_pages / 16) * ps - n % 2));
    lengths.retain(|&l| l < p.bytes.len());
    lengths.sort_unstable();
    lengths.dedup();
    let mut counts: BTreeMap<String, u32> = BTreeMap::new();
    let empty = ModelBucket::default();
    for len in lengths {
        for read_only in [false, true] {
            let case = format!("truncated to {len} bytes (read_only {read_only})");
            println!("case {case}");
            let key = match examine(dir.path(), &p.bytes[..len], read_only, &case) {
                Outcome::Rejected(e) => format!("rejected: {}", kind(&e)),
                Outcome::CheckFailed(e) => format!("check failed: {}", kind(&e)),
                Outcome::Inconsistent(s) => panic!("{case}: inconsistent read: {s}"),
                outcome => {
                    let mut allowed = vec![("older", &p.older), ("newer", &p.newer)];
                    if len == 0 && !read_only {
                        allowed.push(("empty (a zero-length file is initialised)", &empty));
                    }
                    require_state(outcome, &allowed, &case).to_string()
                }
            };
            *counts.entry(key).or_default() += 1;
        }
    }
    println!("truncation outcomes: {counts:#?}");
}

/// The variant name of an error's `what` (or of the error), for outcome statistics.
fn kind(e: &Error) -> String {
    let s = match e {
        Error::Corrupted { what, .. } => format!("{what:?}"),
        other => format!("{other:?}"),
    };
    s.split(|c: char| !c.is_alphanumeric())
        .next()
        .unwrap_or_default()
        .to_string()
}

/// One random piece of damage to a data page: where and what, and a description.
fn damage_data_page(p: &Pristine, rng: &mut StdRng, bytes: &mut [u8]) -> String {
    let in_use: Vec<&(u64, PageKind, u64)> = p
        .pages
        .iter()
        .filter(|(_, k, _)| matches!(k, PageKind::Branch | PageKind::Leaf | PageKind::Freelist))
        .collect();
    let (id, kind, count) = *in_use[rng.gen_range(0..in_use.len())];
    let page_at = id as usize * PAGE_SIZE;
    let at = match rng.gen_range(0..100) {
        0..=29 => rng.gen_range(2 * PAGE_SIZE..p.high_water as usize * PAGE_SIZE),
        30..=59 => page_at + rng.gen_range(0..PAGE_HEADER_SIZE),
        60..=89 => {
            let span = (count as usize * 16 + 32).min(PAGE_SIZE - PAGE_HEADER_SIZE);
            page_at + PAGE_HEADER_SIZE + rng.gen_range(0..span)
        }
        _ => {
            bytes[page_at..page_at + PAGE_SIZE].fill(0);
            return format!("page {id} ({kind}) zeroed");
        }
    };
    let old = bytes[at];
    bytes[at] = match rng.gen_range(0..10) {
        0..=1 if old != 0 => 0,
        2 if old != 0xff => 0xff,
        _ => old ^ rng.gen_range(1..=255u8),
    };
    format!(
        "byte {at} (page {}) {old:#04x} -> {:#04x}",
        at / PAGE_SIZE,
        bytes[at]
    )
}

#[test]
fn damaged_data_pages_never_crash_the_reader() {
    // Proves: random damage to data pages yields a typed error or a read, never a panic or hang.
    if !in_child() {
        return run_test_in_child("damaged_data_pages_never_crash_the_reader", CHILD_DEADLINE);
    }
    let p = build_pristine();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut rng = StdRng::seed_from_u64(env_u64("OXCD_CORRUPT_SEED", 17));
    let mut counts: BTreeMap<String, u32> = BTreeMap::new();
    for n in 0..env_u64("OXCD_CORRUPT_CASES", 1500) {
        let mut bytes = p.bytes.clone();
        let what = damage_data_page(&p, &mut rng, &mut bytes);
        let read_only = n % 3 == 0;
        let case = format!("data case {n}: {what} (read_only {read_only})");
        println!("case {case}");
        let key = match examine(dir.path(), &bytes, read_only, &case) {
            Outcome::Read(tree) if first_difference(&p.newer, &tree).is_none() => {
                "read: unharmed".into()
            }
            Outcome::Read(_) => "read: different content (no data checksums)".into(),
            Outcome::CheckFailed(e) => format!("check failed: {}", kind(&e)),
            Outcome::Rejected(e) => format!("rejected: {}", kind(&e)),
            Outcome::Inconsistent(_) => "inconsistent reads, check failed".into(),
        };
        *counts.entry(key).or_default() += 1;
    }
    println!("data page damage outcomes: {counts:#?}");
    let detected: u32 = counts
        .iter()
        .filter(|(k, _)| !k.starts_with("read"))
        .map(|(_, n)| n)
        .sum();
    assert!(detected > 0, "no damage was ever detected: {counts:#?}");
}

#[test]
fn writing_to_damaged_data_pages_never_crashes() {
    // Proves: committing over damaged data pages fails with an error or leaves a file that checks.
    if !in_child() {
        return run_test_in_child(
            "writing_to_damaged_data_pages_never_crashes",
            CHILD_DEADLINE,
        );
    }
    let p = build_pristine();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("damaged");
    let mut rng = StdRng::seed_from_u64(env_u64("OXCD_CORRUPT_SEED", 19));
    let mut counts: BTreeMap<String, u32> = BTreeMap::new();
    for n in 0..env_u64("OXCD_CORRUPT_CASES", 1500) {
        let mut bytes = p.bytes.clone();
        let what = damage_data_page(&p, &mut rng, &mut bytes);
        println!("case write case {n}: {what}");
        std::fs::write(&path, &bytes).expect("write");
        let Ok(db) = Db::open(&path, options(false)) else {
            *counts.entry("open failed".into()).or_default() += 1;
            continue;
        };
        let r = db.update(|tx| {
            for name in [&b"alpha"[..], b"beta", b"gamma"] {
                let Some(b) = tx.bucket(tx.root(), name)? else {
                    continue;
                };
                tx.put(b, b"written after damage", &pattern_bytes(n, 5000))?;
                let keys = {
                    let mut c = tx.cursor(b)?;
                    let mut keys = Vec::new();
                    let mut item = c.first()?;
                    while let Some(it) = item {
                        if !it.is_bucket && keys.len() < 20 {
                            keys.push(it.key.to_vec());
                        }
                        item = c.next()?;
                    }
                    keys
                };
                for k in keys {
                    tx.delete(b, &k)?;
                }
            }
            Ok(())
        });
        drop(db);
        let key = match r {
            Err(e) => format!("commit failed: {}", kind(&e)),
            Ok(()) => {
                // Strict mode checked the file before the commit was accepted.
                let db = Db::open(&path, options(false)).unwrap_or_else(|e| {
                    panic!("case {n}: {what}: reopen after accepted commit: {e}")
                });
                db.check().unwrap_or_else(|e| {
                    panic!("case {n}: {what}: check after accepted commit: {e}")
                });
                "committed, checks clean".into()
            }
        };
        *counts.entry(key).or_default() += 1;
    }
    println!("write-after-damage outcomes: {counts:#?}");
}

/// Creates a database with `fill`, lets `damage` edit the file's bytes, reopens it, runs
/// `write` in one transaction and returns how that ended. A panic anywhere fails the test.
fn write_after_patch(
    fill: impl FnOnce(&mut oxcd_engine::WriteTx) -> oxcd_engine::Result<()>,
    damage: impl FnOnce(&mut [u8]),
    write: impl FnOnce(&mut oxcd_engine::WriteTx) -> oxcd_engine::Result<()>,
) -> oxcd_engine::Result<()> {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("db");
    Db::open(&path, options(false))
        .must("create")
        .update(fill)
        .must("fill");
    let mut bytes = std::fs::read(&path).expect("read");
    damage(&mut bytes);
    std::fs::write(&path, &bytes).expect("write");
    let db = Db::open(&path, options(false)).must("open damaged");
    assert!(db.check().is_err(), "the damage must be visible to check()");
    db.update(write)
}

/// Offset of the first leaf page whose first key starts with `prefix`.
fn leaf_starting_with(bytes: &[u8], prefix: &[u8]) -> usize {
    (2..bytes.len() / PAGE_SIZE)
        .map(|id| id * PAGE_SIZE)
        .find(|&at| {
            let flags = u16::from_le_bytes([bytes[at + 8], bytes[at + 9]]);
            let pos = u32::from_le_bytes(bytes[at + 20..at + 24].try_into().expect("4 bytes"));
            flags == 0x02 && bytes[at + PAGE_HEADER_SIZE + pos as usize..].starts_with(prefix)
        })
        .expect("leaf page")
}

#[test]
fn committing_over_a_zero_length_key_on_disk_is_an_error() {
    // Proves: a leaf whose first key was damaged to length 0 makes commit fail, not panic.
    let r = write_after_patch(
        |tx| {
            let b = tx.create_bucket(tx.root(), b"b")?;
            for i in 0..200u32 {
                tx.put(b, format!("k{i:03}").as_bytes(), &[7; 100])?;
            }
            Ok(())
        },
        |bytes| {
            let leaf = leaf_starting_with(bytes, b"k000");
            // ksize of element 0 (leaf element: flags, pos, ksize, vsize).
            bytes[leaf + PAGE_HEADER_SIZE + 8..leaf + PAGE_HEADER_SIZE + 12].fill(0);
        },
        |tx| {
            let b = tx.bucket(tx.root(), b"b")?.expect("bucket b");
            tx.delete(b, b"k001")
        },
    );
    assert!(r.is_err(), "commit over a damaged leaf succeeded");
}

#[test]
fn committing_over_out_of_order_bucket_names_is_an_error() {
    // Proves: a root leaf whose keys were damaged out of order makes commit fail, not panic.
    let r = write_after_patch(
        |tx| {
            for name in [&b"alpha"[..], b"beta", b"gamma"] {
                let b = tx.create_bucket(tx.root(), name)?;
                tx.put(b, b"k", &[1; 3000])?; // too big to stay inline
            }
            Ok(())
        },
        |bytes| {
            let leaf = leaf_starting_with(bytes, b"alpha");
            // pos of element 2 ("gamma") now points at zero bytes: its name reads as 5 zeros.
            let pos_at = leaf + PAGE_HEADER_SIZE + 2 * 16 + 4;
            bytes[pos_at..pos_at + 4].copy_from_slice(&222u32.to_le_bytes());
        },
        |tx| {
            for name in [&b"alpha"[..], b"beta"] {
                let b = tx.bucket(tx.root(), name)?.expect("bucket");
                tx.put(b, b"x", b"y")?;
            }
            Ok(())
        },
    );
    assert!(r.is_err(), "commit over a damaged root leaf succeeded");
}
