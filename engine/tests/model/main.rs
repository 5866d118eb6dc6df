//! Randomised model tests of the engine: long seeded sequences of bucket, key, sequence, cursor
//! and transaction operations are applied both to the engine (in strict mode, so `check()` runs
//! after every commit) and to a `BTreeMap` model, and every answer and every committed state is
//! compared. Read transactions opened along the way must keep seeing the model as it was when
//! they began. A few deterministic tests pin down properties the random walk only touches:
//! cursor deletion during iteration, freelist reuse, and snapshot isolation across threads.
//!
//! Knobs: `OXCD_MODEL_CASES` (number of seeds, default 20), `OXCD_MODEL_SEED` (first seed),
//! `OXCD_MODEL_TXS` (write transactions per seed, default 300).
//!
//! This file owns the `#[test]` entry points (kept at the crate root so their names carry no
//! module prefix) and the fixtures of the deterministic tests. The random walk lives in:
//! - [`case`]: one seeded walk ([`case::Case`]): its budget, transaction loop, reopen and
//!   comparison of committed state with the model;
//! - [`ops`]: the weighted operation table, its dispatch, and the key, value and bucket
//!   generators;
//! - [`point_ops`]: operations on one key or one bucket (put, delete, get, buckets, sequences,
//!   documented misuse);
//! - [`cursor_ops`]: scans, seeks with random steps, and deletion through `cursor_mut`;
//! - [`readers`]: read transactions held across commits and checked against their snapshot.
//!
//! The `BTreeMap` model itself ([`common::ModelBucket`]) and the tree walker are shared with the
//! other engine tests in `tests/common/mod.rs`.

#[path = "../common/mod.rs"]
mod common;

mod case;
mod cursor_ops;
mod ops;
mod point_ops;
mod readers;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use case::Case;
use common::{env_u64, first_difference, pattern_bytes, read_tree, Must, WalkOpts};
use oxcd_engine::{Db, Options, TxRead};

#[test]
fn random_operations_match_the_model() {
    // Proves: for many seeds, every answer and every committed or snapshot state equals the model.
    let cases = env_u64("OXCD_MODEL_CASES", 20);
    let first = env_u64("OXCD_MODEL_SEED", 0);
    let txs = env_u64("OXCD_MODEL_TXS", 300) as usize;
    for seed in first..first + cases {
        Case::new(seed).run(txs);
    }
}

fn test_options() -> Options {
    Options {
        strict: true,
        no_sync: true,
        ..Options::default()
    }
}

#[test]
fn cursor_delete_then_next_yields_the_following_key() {
    // Proves: deleting through a cursor while iterating over a multi-page bucket skips no key.
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("db"), test_options()).must("open");
    let keys: Vec<Vec<u8>> = (0..3000u32)
        .map(|i| format!("key{i:06}").into_bytes())
        .collect();
    db.update(|tx| {
        let b = tx.create_bucket(tx.root(), b"b")?;
        for (i, k) in keys.iter().enumerate() {
            tx.put(b, k, &pattern_bytes(i as u64, i % 300))?;
        }
        Ok(())
    })
    .must("fill");
    // Delete every key whose index is in `doomed`, including runs of consecutive keys.
    let doomed = |i: usize| i % 3 != 1 || (1000..1400).contains(&i);
    let mut tx = db.begin_write().must("begin_write");
    let b = tx.bucket(tx.root(), b"b").must("bucket").expect("bucket b");
    let mut visited = Vec::new();
    {
        let mut c = tx.cursor_mut(b).must("cursor_mut");
        let mut item = c.first().must("first").map(|it| it.key.to_vec());
        while let Some(key) = item {
            let i = visited.len();
            visited.push(key);
            if doomed(i) {
                c.delete().must("cursor delete");
            }
            item = c.next().must("next").map(|it| it.key.to_vec());
        }
    }
    assert_eq!(
        visited.len(),
        keys.len(),
        "iteration with deletes visited a different number of keys"
    );
    assert!(
        visited == keys,
        "iteration with deletes visited keys out of order or skipped some"
    );
    tx.commit().must("commit");
    let expected: Vec<&Vec<u8>> = keys
        .iter()
        .enumerate()
        .filter(|(i, _)| !doomed(*i))
        .map(|(_, k)| k)
        .collect();
    db.view(|tx| {
        let b = tx.bucket(tx.root(), b"b")?.expect("bucket b");
        let mut c = tx.cursor(b)?;
        let mut got = Vec::new();
        let mut item = c.first()?;
        while let Some(it) = item {
            got.push(it.key.to_vec());
            item = c.next()?;
        }
        assert!(
            got.iter().eq(expected.iter().copied()),
            "wrong keys survived the deletes"
        );
        Ok(())
    })
    .must("view");
}

#[test]
fn freed_pages_are_reused_instead_of_growing_the_file() {
    // Proves: filling and emptying a bucket repeatedly reaches a steady high-water mark.
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("db"), test_options()).must("open");
    let mut high_water = Vec::new();
    for round in 0..12u64 {
        db.update(|tx| {
            let b = tx.create_bucket_if_not_exists(tx.root(), b"b")?;
            for i in 0..300u64 {
                tx.put(
                    b,
                    format!("k{i:05}").as_bytes(),
                    &pattern_bytes(round * 1000 + i, 2500),
                )?;
            }
            Ok(())
        })
        .must("fill");
        db.update(|tx| {
            let b = tx.bucket(tx.root(), b"b")?.expect("bucket b");
            for i in 0..300u64 {
                tx.delete(b, format!("k{i:05}").as_bytes())?;
            }
            Ok(())
        })
        .must("empty");
        let info = db.info().must("info");
        high_water.push(info.high_water_pgid);
    }
    let info = db.info().must("info");
    assert!(
        info.free_page_count + info.pending_page_count > 0,
        "nothing freed: {info:?}"
    );
    let settled = high_water[2];
    let last = *high_water.last().unwrap();
    assert!(
        last <= settled + settled / 4 + 8,
        "high water keeps growing although every round frees what it wrote: {high_water:?}"
    );
}

#[test]
fn reader_threads_keep_their_snapshot_while_a_writer_commits() {
    // Proves: read transactions on other threads see one consistent, unchanging state throughout.
    const ACCOUNTS: u64 = 40;
    const START_BALANCE: u64 = 1000;
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("db"), test_options()).must("open");
    db.update(|tx| {
        let b = tx.create_bucket(tx.root(), b"accounts")?;
        for a in 0..ACCOUNTS {
            tx.put(b, &a.to_be_bytes(), &START_BALANCE.to_be_bytes())?;
        }
        let g = tx.create_bucket(tx.root(), b"gen")?;
        tx.put(g, b"gen", &0u64.to_be_bytes())?;
        tx.put(g, b"blob", &blob(0))?;
        Ok(())
    })
    .must("setup");
    let done = Arc::new(AtomicBool::new(false));
    let verified = Arc::new(AtomicU64::new(0));
    let readers: Vec<_> = (0..2)
        .map(|r| {
            let (db, done, verified) = (db.clone(), done.clone(), verified.clone());
            std::thread::spawn(move || {
                let mut held: Vec<(oxcd_engine::ReadTx, u64, common::ModelBucket)> = Vec::new();
                let mut round = 0u64;
                while !done.load(Ordering::Acquire) {
                    let tx = db.begin_read().must("begin_read");
                    let gen = consistent_generation(&tx, ACCOUNTS * START_BALANCE);
                    let tree = read_tree(&tx, &WalkOpts::THOROUGH).expect("walk");
                    held.push((tx, gen, tree));
                    // Re-verify older readers: their state must not have moved.
                    for (old, old_gen, old_tree) in &held {
                        assert_eq!(
                            consistent_generation(old, ACCOUNTS * START_BALANCE),
                            *old_gen
                        );
                        let again = read_tree(old, &WalkOpts::THOROUGH).expect("walk");
                        if let Some(d) = first_difference(old_tree, &again) {
                            panic!("reader {r}: snapshot of generation {old_gen} changed: {d}");
                        }
                    }
                    if held.len() > 4 {
                        held.remove((round % 5) as usize);
                    }
                    round += 1;
                    verified.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let mut state = 1u64;
    for gen in 1..=300u64 {
        state = common::splitmix64(state);
        let (from, to, amount) = (
            state % ACCOUNTS,
            (state >> 20) % ACCOUNTS,
            (state >> 40) % 50,
        );
        db.update(|tx| {
            let b = tx.bucket(tx.root(), b"accounts")?.expect("accounts");
            let get = |tx: &oxcd_engine::WriteTx, a: u64| -> oxcd_engine::Result<u64> {
                let v = tx.get(b, &a.to_be_bytes())?.expect("account");
                Ok(u64::from_be_bytes(v.try_into().expect("8 bytes")))
            };
            let moved = amount.min(get(tx, from)?);
            let from_balance = get(tx, from)? - moved;
            tx.put(b, &from.to_be_bytes(), &from_balance.to_be_bytes())?;
            let to_balance = get(tx, to)? + moved;
            tx.put(b, &to.to_be_bytes(), &to_balance.to_be_bytes())?;
            let g = tx.bucket(tx.root(), b"gen")?.expect("gen");
            tx.put(g, b"gen", &gen.to_be_bytes())?;
            tx.put(g, b"blob", &blob(gen))?;
            // Keep some history so the file grows (and the mmap with it) while readers hold it.
            tx.put(
                g,
                format!("hist{gen:05}").as_bytes(),
                &pattern_bytes(gen, 3000),
            )?;
            Ok(())
        })
        .must("transfer");
    }
    done.store(true, Ordering::Release);
    for r in readers {
        r.join().expect("reader thread panicked");
    }
    assert!(verified.load(Ordering::Relaxed) > 0, "readers never ran");
}

/// The blob stored at generation `gen`: its length and bytes both depend on `gen`.
fn blob(gen: u64) -> Vec<u8> {
    pattern_bytes(gen ^ 0xb10b, (common::splitmix64(gen) % 40_000) as usize)
}

/// Checks one reader's invariants (balances sum to `total`, blob matches the generation) and
/// returns its generation.
fn consistent_generation(tx: &oxcd_engine::ReadTx, total: u64) -> u64 {
    let b = tx
        .bucket(tx.root(), b"accounts")
        .must("bucket")
        .expect("accounts");
    let mut sum = 0;
    let mut c = tx.cursor(b).must("cursor");
    let mut item = c.first().must("first");
    while let Some(it) = item {
        sum += u64::from_be_bytes(it.value.try_into().expect("8-byte balance"));
        item = c.next().must("next");
    }
    assert_eq!(sum, total, "balances of one snapshot do not add up");
    let g = tx.bucket(tx.root(), b"gen").must("bucket").expect("gen");
    let gen = u64::from_be_bytes(
        tx.get(g, b"gen")
            .must("get")
            .expect("gen")
            .try_into()
            .unwrap(),
    );
    assert!(
        tx.get(g, b"blob").must("get") == Some(blob(gen).as_slice()),
        "blob of gen {gen}"
    );
    gen
}
