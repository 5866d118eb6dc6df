// Proves oxcd's engine and bbolt 1.3.6 read and write each other's files, byte format included.
//! Interoperability with bbolt 1.3.6 through the Go oracle (`tests/oracle/bboltoracle`).
//!
//! Each test runs over the same three variants of seeded random content (see `oxcd_tests::gen`):
//! 4 KiB pages with many small transactions; 16 KiB pages; and a file without a synced freelist
//! (as etcd writes it) built in one transaction per phase. Contents are compared as whole
//! models, so a failure names the first differing bucket paths and keys.

use std::path::Path;

use oxcd_engine::{Db, Options, TxRead, WriteTx};
use oxcd_tests::engine_io::{options_for, read_model, write_spec};
use oxcd_tests::gen::{random_spec, random_value, GenConfig};
use oxcd_tests::spec::hx;
use oxcd_tests::{bail, ensure, BucketModel, Error, Model, Oracle, Result, Spec};
use rand::rngs::StdRng;
use rand::seq::{IteratorRandom, SliceRandom};
use rand::{Rng, SeedableRng};

/// The content variants every direction is tested with: (seed, spec).
fn variants() -> Vec<(u64, Spec)> {
    let config = GenConfig::default();
    let mut small_tx = random_spec(&mut StdRng::seed_from_u64(11), &config);
    small_tx.batch_size = 97;
    let mut big_pages = random_spec(&mut StdRng::seed_from_u64(12), &config);
    big_pages.page_size = 16384;
    let mut no_freelist = random_spec(&mut StdRng::seed_from_u64(13), &config);
    no_freelist.no_freelist_sync = true;
    no_freelist.batch_size = 0;
    vec![(11, small_tx), (12, big_pages), (13, no_freelist)]
}

fn read_only() -> Options {
    Options {
        read_only: true,
        ..Options::default()
    }
}

/// Our engine's own checks of the file at `path`: `check()` passes and the contents equal `want`.
fn engine_verifies(path: &Path, opts: Options, want: &Model, what: &str) -> Result<()> {
    let db = Db::open(path, opts)?;
    db.check()
        .map_err(|e| Error::from(e).context(format!("{what}: engine check")))?;
    want.ensure_eq(&read_model(&db)?, &format!("{what}, read by oxcd"))
}

/// bbolt's checks of the file at `path`: `tx.Check()` passes and its dump equals `want`.
fn bbolt_verifies(oracle: &Oracle, path: &Path, want: &Model, what: &str) -> Result<()> {
    oracle.check(path).map_err(|e| e.context(what))?;
    want.ensure_eq(&oracle.dump_model(path)?, &format!("{what}, read by bbolt"))
}

// Proves a file written by oxcd (strict mode) passes bbolt's check and bbolt reads back exactly it.
#[test]
fn oxcd_writes_bbolt_reads() -> Result<()> {
    let oracle = Oracle::get()?;
    for (seed, spec) in variants() {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("oxcd.db");
        let want = spec.expected_model();
        let what = format!("seed {seed}: file written by oxcd");
        {
            let db = Db::open(&path, options_for(&spec))?;
            write_spec(&db, &spec).map_err(|e| e.context(&what))?;
        }
        engine_verifies(&path, read_only(), &want, &what)?;
        bbolt_verifies(oracle, &path, &want, &what)?;
    }
    Ok(())
}

// Proves oxcd reads every key, value, bucket and sequence of a file bbolt wrote, by every cursor path.
#[test]
fn bbolt_writes_oxcd_reads() -> Result<()> {
    let oracle = Oracle::get()?;
    for (seed, spec) in variants() {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("bbolt.db");
        let want = spec.expected_model();
        let what = format!("seed {seed}: file written by bbolt");
        oracle.write(&path, &spec)?;
        // The oracle must agree with itself before its file can judge ours.
        bbolt_verifies(oracle, &path, &want, &what)?;
        engine_verifies(&path, read_only(), &want, &what)?;
    }
    Ok(())
}

// Proves oxcd can modify a file bbolt wrote, over many commits and rollbacks, and bbolt still accepts it.
#[test]
fn bbolt_writes_oxcd_modifies_bbolt_checks() -> Result<()> {
    let oracle = Oracle::get()?;
    for (seed, spec) in variants() {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("shared.db");
        let what = format!("seed {seed}: bbolt file modified by oxcd");
        oracle.write(&path, &spec)?;
        let mut model = spec.expected_model();
        let mut rng = StdRng::seed_from_u64(seed ^ 0x0c0d);
        {
            let opts = Options {
                strict: true,
                no_sync: true,
                ..Options::default()
            };
            let db = Db::open(&path, opts)?;
            for round in 0..25 {
                mutate(&db, &mut model, &mut rng)
                    .map_err(|e| e.context(format!("{what}, round {round}")))?;
            }
        }
        engine_verifies(&path, read_only(), &model, &what)?;
        bbolt_verifies(oracle, &path, &model, &what)?;
    }
    Ok(())
}

/// One write transaction of random operations mirrored in `model`; committed, or (sometimes)
/// rolled back, in which case the model is restored.
fn mutate(db: &Db, model: &mut Model, rng: &mut StdRng) -> Result<()> {
    let before = model.clone();
    let mut tx = db.begin_write()?;
    for _ in 0..rng.gen_range(1..=300) {
        random_op(&mut tx, model, rng)?;
    }
    if rng.gen_bool(0.15) {
        tx.rollback();
        *model = before;
        return Ok(());
    }
    Ok(tx.commit()?)
}

fn random_op(tx: &mut WriteTx, model: &mut Model, rng: &mut StdRng) -> Result<()> {
    let paths = model.bucket_paths();
    if paths.is_empty() || rng.gen_bool(0.01) {
        return create_bucket(tx, model, &[], rng);
    }
    let Some(path) = paths.choose(rng) else {
        return Ok(());
    };
    if path.len() == 1 && rng.gen_bool(0.05) {
        let root = tx.root();
        tx.delete_bucket(root, &path[0])?;
        model.buckets.remove(&path[0]);
        return Ok(());
    }
    let names: Vec<&[u8]> = path.iter().map(Vec::as_slice).collect();
    let Some(id) = tx.bucket_path(&names)? else {
        bail!(
            "bucket /{} missing in the transaction",
            names.iter().map(|n| hx(n)).collect::<Vec<_>>().join("/")
        );
    };
    let Some(bucket) = model.bucket_mut(path) else {
        bail!("model lost bucket {path:?}");
    };
    match rng.gen_range(0..100) {
        0..=39 => {
            let len = rng.gen_range(1..=24);
            let mut key = b"oxcd-".to_vec();
            key.extend((0..len).map(|_| rng.gen::<u8>()));
            if !bucket.buckets.contains_key(&key) {
                let value = random_value(rng);
                tx.put(id, &key, &value)?;
                bucket.items.insert(key, value);
            }
        }
        40..=54 => {
            if let Some(key) = bucket.items.keys().choose(rng).cloned() {
                let value = random_value(rng);
                tx.put(id, &key, &value)?;
                bucket.items.insert(key, value);
            }
        }
        55..=74 => {
            if let Some(key) = bucket.items.keys().choose(rng).cloned() {
                tx.delete(id, &key)?;
                bucket.items.remove(&key);
            }
        }
        75..=84 => cursor_delete_run(tx, id, bucket, rng)?,
        85..=89 if path.len() < 3 => create_bucket(tx, model, path, rng)?,
        85..=93 => {
            if let Some(name) = bucket.buckets.keys().choose(rng).cloned() {
                tx.delete_bucket(id, &name)?;
                bucket.buckets.remove(&name);
            }
        }
        94..=96 => {
            let sequence = rng.gen();
            tx.set_sequence(id, sequence)?;
            bucket.sequence = sequence;
        }
        _ if bucket.sequence < u64::MAX => {
            let next = tx.next_sequence(id)?;
            ensure!(
                next == bucket.sequence + 1,
                "next_sequence gave {next} after {}",
                bucket.sequence
            );
            bucket.sequence = next;
        }
        _ => {}
    }
    Ok(())
}

/// Deletes up to 20 plain keys in a row through a write cursor, checking that after each delete
/// the cursor moves on to the key that followed the deleted one.
fn cursor_delete_run(
    tx: &mut WriteTx,
    id: oxcd_engine::BucketId,
    bucket: &mut BucketModel,
    rng: &mut StdRng,
) -> Result<()> {
    let Some(start) = bucket.items.keys().choose(rng).cloned() else {
        return Ok(());
    };
    let mut cursor = tx.cursor_mut(id)?;
    let mut current = cursor.seek(&start)?.map(|i| (i.key.to_vec(), i.is_bucket));
    for _ in 0..rng.gen_range(1..=20) {
        let Some((key, is_bucket)) = current else {
            break;
        };
        if !is_bucket {
            cursor.delete()?;
        }
        let want_next = next_entry(bucket, &key);
        current = cursor.next()?.map(|i| (i.key.to_vec(), i.is_bucket));
        ensure!(
            current.as_ref().map(|(k, _)| k) == want_next.as_ref(),
            "after deleting {} the cursor moved to {:?}, want {:?}",
            hx(&key),
            current.as_ref().map(|(k, _)| hx(k)),
            want_next.as_ref().map(|k| hx(k))
        );
        if !is_bucket {
            bucket.items.remove(&key);
        }
    }
    Ok(())
}

/// The smallest key or bucket name in `bucket` after `key`.
fn next_entry(bucket: &BucketModel, key: &[u8]) -> Option<Vec<u8>> {
    use std::ops::Bound::{Excluded, Unbounded};
    let range = (Excluded(key), Unbounded);
    let item = bucket.items.range::<[u8], _>(range).next().map(|(k, _)| k);
    let child = bucket
        .buckets
        .range::<[u8], _>(range)
        .next()
        .map(|(k, _)| k);
    match (item, child) {
        (Some(a), Some(b)) => Some(a.min(b).clone()),
        (a, b) => a.or(b).cloned(),
    }
}

/// Creates a new bucket under `parent` (empty = root) with a few keys, mirrored in `model`.
fn create_bucket(
    tx: &mut WriteTx,
    model: &mut Model,
    parent: &[Vec<u8>],
    rng: &mut StdRng,
) -> Result<()> {
    let mut name = b"oxcd-bucket-".to_vec();
    name.extend((0..8).map(|_| rng.gen::<u8>()));
    let names: Vec<&[u8]> = parent.iter().map(Vec::as_slice).collect();
    let parent_id = if parent.is_empty() {
        tx.root()
    } else {
        tx.bucket_path(&names)?
            .ok_or_else(|| Error::msg("parent bucket missing"))?
    };
    let siblings = if parent.is_empty() {
        &mut model.buckets
    } else {
        match model.bucket_mut(parent) {
            Some(b) if !b.items.contains_key(&name) => &mut b.buckets,
            _ => return Ok(()),
        }
    };
    if siblings.contains_key(&name) {
        return Ok(());
    }
    let id = tx.create_bucket(parent_id, &name)?;
    let mut bucket = BucketModel::default();
    for i in 0..rng.gen_range(0..=50) {
        let key = format!("new-{i:04}").into_bytes();
        let value = random_value(rng);
        tx.put(id, &key, &value)?;
        bucket.items.insert(key, value);
    }
    siblings.insert(name, bucket);
    Ok(())
}
