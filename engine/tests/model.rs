//! Randomised model tests of the engine: long seeded sequences of bucket, key, sequence, cursor
//! and transaction operations are applied both to the engine (in strict mode, so `check()` runs
//! after every commit) and to a `BTreeMap` model, and every answer and every committed state is
//! compared. Read transactions opened along the way must keep seeing the model as it was when
//! they began. A few deterministic tests pin down properties the random walk only touches:
//! cursor deletion during iteration, freelist reuse, and snapshot isolation across threads.
//!
//! Knobs: `OXCD_MODEL_CASES` (number of seeds, default 20), `OXCD_MODEL_SEED` (first seed),
//! `OXCD_MODEL_TXS` (write transactions per seed, default 300).

mod common;

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use common::{
    env_u64, first_difference, pattern_bytes, read_bucket, read_tree, show, show_path, Entry,
    ModelBucket, Must, WalkOpts,
};
use oxcd_engine::{BucketId, Db, Error, Options, ReadTx, TxRead, WriteTx};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

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

/// Size budget of one random walk: keeps strict checks and full comparisons fast.
const MAX_MODEL_BYTES: usize = 3 << 20;
const MAX_MODEL_VALUES: usize = 3000;
const MAX_READERS: usize = 8;
const LOG_LINES: usize = 60;

/// Operations inside a write transaction, with weights while growing and while shrinking.
#[derive(Clone, Copy, Debug)]
enum Op {
    Put,
    Delete,
    Get,
    CreateBucket,
    DeleteBucket,
    Sequence,
    Scan,
    Seek,
    CursorDelete,
    FillPercent,
    Misuse,
    OpenReader,
    VerifyReader,
    WalkTx,
}

const OPS: [(Op, u32, u32); 14] = [
    (Op::Put, 60, 8),
    (Op::Delete, 8, 24),
    (Op::Get, 8, 6),
    (Op::CreateBucket, 2, 1),
    (Op::DeleteBucket, 0, 2),
    (Op::Sequence, 3, 2),
    (Op::Scan, 2, 2),
    (Op::Seek, 4, 4),
    (Op::CursorDelete, 1, 8),
    (Op::FillPercent, 2, 2),
    (Op::Misuse, 3, 3),
    (Op::OpenReader, 1, 1),
    (Op::VerifyReader, 1, 1),
    (Op::WalkTx, 1, 1),
];

type Path = Vec<Vec<u8>>;

/// A read transaction with the model state it must keep seeing.
struct Reader {
    tx: ReadTx,
    snapshot: ModelBucket,
    txid: u64,
}

/// One seeded random walk over a fresh database.
struct Case {
    seed: u64,
    rng: StdRng,
    dir: tempfile::TempDir,
    opts: Options,
    db: Option<Db>,
    committed: ModelBucket,
    txid: u64,
    readers: Vec<Reader>,
    log: VecDeque<String>,
    shrinking: bool,
    stats: BTreeMap<&'static str, u64>,
    max_values: usize,
    max_bytes: usize,
}

impl Drop for Case {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "model case seed {s} failed (rerun with OXCD_MODEL_SEED={s} OXCD_MODEL_CASES=1), \
                 options {:?}; last operations, oldest first:",
                self.opts,
                s = self.seed
            );
            for line in &self.log {
                eprintln!("  {line}");
            }
        }
    }
}

fn expect_err<T: std::fmt::Debug>(r: oxcd_engine::Result<T>, want: fn(&Error) -> bool, what: &str) {
    match r {
        Err(e) if want(&e) => {}
        other => panic!("{what}: expected a specific error, got {other:?}"),
    }
}

/// The bucket at `path` (root when empty); panics if it is missing, as the model says it exists.
fn resolve<T: TxRead>(tx: &T, path: &[Vec<u8>]) -> BucketId {
    let mut id = tx.root();
    for name in path {
        id = tx.bucket(id, name).must("bucket").unwrap_or_else(|| {
            panic!("bucket {} missing (model has it)", show_path(path));
        });
    }
    id
}

impl Case {
    fn new(seed: u64) -> Case {
        let mut rng = StdRng::seed_from_u64(seed);
        let opts = Options {
            strict: true,
            no_sync: true,
            no_freelist_sync: rng.gen_bool(0.25),
            initial_mmap_size: [0, 0, 1 << 20][rng.gen_range(0..3)],
            // Small pages make deep trees and long overflow chains out of the same data.
            page_size: [0, 4096, 4096, 1024, 512, 16_384][rng.gen_range(0..6)],
            ..Options::default()
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Db::open(dir.path().join("db"), opts.clone()).must("open new db");
        let txid = db.begin_read().must("begin_read").txid();
        Case {
            seed,
            rng,
            dir,
            opts,
            db: Some(db),
            committed: ModelBucket::default(),
            txid,
            readers: Vec::new(),
            log: VecDeque::new(),
            shrinking: false,
            stats: BTreeMap::new(),
            max_values: 0,
            max_bytes: 0,
        }
    }

    fn db(&self) -> Db {
        self.db.clone().expect("db is open")
    }

    fn count(&mut self, what: &'static str) {
        *self.stats.entry(what).or_default() += 1;
    }

    fn log(&mut self, line: String) {
        if self.log.len() == LOG_LINES {
            self.log.pop_front();
        }
        self.log.push_back(line);
    }

    fn run(mut self, txs: usize) {
        for t in 0..txs {
            let size = self.committed.size();
            self.max_values = self.max_values.max(size.values);
            self.max_bytes = self.max_bytes.max(size.bytes);
            self.shrinking =
                t % 100 >= 70 || size.bytes > MAX_MODEL_BYTES || size.values > MAX_MODEL_VALUES;
            match self.rng.gen_range(0..100) {
                0..=3 => self.reopen(),
                4..=9 => self.open_reader(),
                10..=15 => self.verify_some_reader(),
                16..=18 => self.drop_some_reader(),
                19..=22 => self.update_closure(),
                _ => {}
            }
            self.write_tx(t);
        }
        while !self.readers.is_empty() {
            self.verify_reader(0);
            self.readers.remove(0);
        }
        self.reopen();
        let info = self.db().info().must("info");
        self.delete_everything();
        println!(
            "seed {}: {:?}; largest model {} values, {} bytes; high water {} pages of {}",
            self.seed,
            self.stats,
            self.max_values,
            self.max_bytes,
            info.high_water_pgid,
            info.page_size
        );
    }

    fn write_tx(&mut self, t: usize) {
        let db = self.db();
        let mut tx = db.begin_write().must("begin_write");
        assert_eq!(
            tx.txid(),
            self.txid + 1,
            "a write tx's id is the last committed id + 1"
        );
        let mut model = self.committed.clone();
        // Mostly small transactions, sometimes a bulk load that splits many pages at once.
        let ops = if self.rng.gen_bool(0.1) {
            self.rng.gen_range(100..=500)
        } else {
            self.rng.gen_range(1..=40)
        };
        self.log(format!("tx {t} (id {}), {ops} ops", tx.txid()));
        for _ in 0..ops {
            self.random_op(&mut tx, &mut model);
            self.count("ops");
        }
        match self.rng.gen_range(0..100) {
            0..=79 => {
                self.log("commit".into());
                self.count("commits");
                tx.commit().must("commit (strict: check() ran)");
                self.committed = model;
                self.txid += 1;
                self.compare_committed("after commit");
            }
            80..=89 => {
                self.log("rollback".into());
                self.count("rollbacks");
                tx.rollback();
                self.compare_committed("after rollback");
            }
            _ => {
                self.log("drop without commit".into());
                drop(tx);
                self.compare_committed("after dropping a write tx");
            }
        }
    }

    fn random_op(&mut self, tx: &mut WriteTx, model: &mut ModelBucket) {
        let total: u32 = OPS
            .iter()
            .map(|o| if self.shrinking { o.2 } else { o.1 })
            .sum();
        let mut pick = self.rng.gen_range(0..total);
        let mut op = Op::Put;
        for (o, grow, shrink) in OPS {
            let w = if self.shrinking { shrink } else { grow };
            if pick < w {
                op = o;
                break;
            }
            pick -= w;
        }
        match op {
            Op::Put => self.op_put(tx, model),
            Op::Delete => self.op_delete(tx, model),
            Op::Get => self.op_get(tx, model),
            Op::CreateBucket => self.op_create_bucket(tx, model),
            Op::DeleteBucket => self.op_delete_bucket(tx, model),
            Op::Sequence => self.op_sequence(tx, model),
            Op::Scan => self.op_scan(tx, model),
            Op::Seek => self.op_seek(tx, model),
            Op::CursorDelete => self.op_cursor_delete(tx, model),
            Op::FillPercent => {
                let (path, id) = self.pick_bucket(tx, model);
                let fill = self.rng.gen_range(0.1..=1.0);
                self.log(format!("set_fill_percent {} {fill:.2}", show_path(&path)));
                tx.set_fill_percent(id, fill);
            }
            Op::Misuse => self.op_misuse(tx, model),
            Op::OpenReader => self.open_reader(),
            Op::VerifyReader => self.verify_some_reader(),
            Op::WalkTx => {
                self.log("walk the write tx".into());
                let got = read_tree(&*tx, &WalkOpts::THOROUGH)
                    .unwrap_or_else(|e| panic!("seed {}: walking the write tx: {e}", self.seed));
                if let Some(d) = first_difference(model, &got) {
                    panic!(
                        "seed {}: uncommitted state differs from the model: {d}",
                        self.seed
                    );
                }
            }
        }
    }

    /// A random existing bucket (creating a top-level one when there is none).
    fn pick_bucket(&mut self, tx: &mut WriteTx, model: &mut ModelBucket) -> (Path, BucketId) {
        let paths = model.bucket_paths();
        if paths.is_empty() {
            let name = format!("top{}", self.rng.gen_range(0..100)).into_bytes();
            self.log(format!("create_bucket <root> {}", show(&name)));
            let id = tx
                .create_bucket(tx.root(), &name)
                .must("create first bucket");
            model
                .entries
                .insert(name.clone(), Entry::Bucket(ModelBucket::default()));
            return (vec![name], id);
        }
        // Favour top-level buckets so that some grow large enough for several tree levels.
        let top: Vec<&Path> = paths.iter().filter(|p| p.len() == 1).collect();
        let path = if self.rng.gen_bool(0.6) {
            top[self.rng.gen_range(0..top.len())].clone()
        } else {
            paths[self.rng.gen_range(0..paths.len())].clone()
        };
        let id = resolve(&*tx, &path);
        if self.rng.gen_bool(0.1) {
            let refs: Vec<&[u8]> = path.iter().map(Vec::as_slice).collect();
            let via_path = tx.bucket_path(&refs).must("bucket_path");
            assert!(
                via_path.is_some(),
                "bucket_path({}) is None",
                show_path(&path)
            );
        }
        (path, id)
    }

    /// A key of `bucket` with probability `existing_pct`%, else a fresh random key.
    fn pick_key(&mut self, bucket: &ModelBucket, existing_pct: u32) -> Vec<u8> {
        if !bucket.entries.is_empty() && self.rng.gen_range(0..100) < existing_pct {
            let i = self.rng.gen_range(0..bucket.entries.len());
            return bucket
                .entries
                .keys()
                .nth(i)
                .expect("index in range")
                .clone();
        }
        self.gen_key()
    }

    fn gen_key(&mut self) -> Vec<u8> {
        let rng = &mut self.rng;
        match rng.gen_range(0..100) {
            0..=64 => format!("k{:04}", rng.gen_range(0..1500)).into_bytes(),
            65..=84 => (0..rng.gen_range(1..=12)).map(|_| rng.gen()).collect(),
            85..=98 => {
                let mut k = format!("long{}", rng.gen_range(0..10)).into_bytes();
                k.extend(pattern_bytes(rng.gen(), rng.gen_range(40..2000)));
                k
            }
            // Huge keys, sometimes exactly the largest allowed one.
            _ if rng.gen_bool(0.2) => pattern_bytes(rng.gen(), 32_768),
            _ => pattern_bytes(rng.gen(), rng.gen_range(4000..10_000)),
        }
    }

    fn gen_value(&mut self) -> Vec<u8> {
        let big_ok = self.committed.size().bytes < MAX_MODEL_BYTES;
        let rng = &mut self.rng;
        let len = match rng.gen_range(0..100) {
            0..=19 => 0,
            20..=54 => rng.gen_range(1..64),
            55..=79 => rng.gen_range(64..1024),
            80..=91 if big_ok => rng.gen_range(1024..4096),
            92..=96 if big_ok => rng.gen_range(4096..16_384),
            97..=99 if big_ok => rng.gen_range(16_385..24_000),
            _ => rng.gen_range(1..64),
        };
        pattern_bytes(rng.gen(), len)
    }

    fn op_put(&mut self, tx: &mut WriteTx, model: &mut ModelBucket) {
        let (path, id) = self.pick_bucket(tx, model);
        let key = self.pick_key(model.bucket(&path).expect("picked"), 45);
        let value = self.gen_value();
        self.log(format!(
            "put {} {} ({} bytes)",
            show_path(&path),
            show(&key),
            value.len()
        ));
        let r = tx.put(id, &key, &value);
        let b = model.bucket_mut(&path).expect("picked");
        if let Some(Entry::Bucket(_)) = b.entries.get(&key) {
            expect_err(
                r,
                |e| matches!(e, Error::IncompatibleValue),
                "put over a bucket",
            );
        } else {
            r.must("put");
            if self.rng.gen_bool(0.2) {
                let got = tx.get(id, &key).must("get after put");
                assert!(got == Some(value.as_slice()), "get right after put differs");
            }
            b.entries.insert(key, Entry::Value(value));
        }
    }

    fn op_delete(&mut self, tx: &mut WriteTx, model: &mut ModelBucket) {
        let (path, id) = self.pick_bucket(tx, model);
        let key = self.pick_key(model.bucket(&path).expect("picked"), 75);
        self.log(format!("delete {} {}", show_path(&path), show(&key)));
        let r = tx.delete(id, &key);
        let b = model.bucket_mut(&path).expect("picked");
        if let Some(Entry::Bucket(_)) = b.entries.get(&key) {
            expect_err(
                r,
                |e| matches!(e, Error::IncompatibleValue),
                "delete of a bucket key",
            );
        } else {
            r.must("delete");
            b.entries.remove(&key);
        }
    }

    fn op_get(&mut self, tx: &mut WriteTx, model: &mut ModelBucket) {
        let (path, id) = self.pick_bucket(tx, model);
        let b = model.bucket(&path).expect("picked");
        let key = self.pick_key(b, 60);
        self.log(format!("get {} {}", show_path(&path), show(&key)));
        let want = match b.entries.get(&key) {
            Some(Entry::Value(v)) => Some(v.as_slice()),
            _ => None,
        };
        let got = tx.get(id, &key).must("get");
        assert!(
            got == want,
            "get {}: got {:?} bytes, want {:?}",
            show(&key),
            got.map(<[u8]>::len),
            want.map(<[u8]>::len)
        );
    }

    /// A parent for bucket operations: the root or an existing bucket at most 3 deep.
    fn pick_parent(&mut self, model: &ModelBucket) -> Path {
        let paths: Vec<Path> = model
            .bucket_paths()
            .into_iter()
            .filter(|p| p.len() < 4)
            .collect();
        if paths.is_empty() || self.rng.gen_bool(0.35) {
            return Vec::new();
        }
        paths[self.rng.gen_range(0..paths.len())].clone()
    }

    fn op_create_bucket(&mut self, tx: &mut WriteTx, model: &mut ModelBucket) {
        let parent_path = self.pick_parent(model);
        let name = self.pick_key(model.bucket(&parent_path).expect("picked"), 30);
        let if_not_exists = self.rng.gen_bool(0.3);
        self.log(format!(
            "create_bucket{} {} {}",
            if if_not_exists { "_if_not_exists" } else { "" },
            show_path(&parent_path),
            show(&name)
        ));
        let pid = resolve(&*tx, &parent_path);
        let r = if if_not_exists {
            tx.create_bucket_if_not_exists(pid, &name)
        } else {
            tx.create_bucket(pid, &name)
        };
        let parent = model.bucket_mut(&parent_path).expect("picked");
        let id = match parent.entries.get(&name) {
            Some(Entry::Bucket(_)) if if_not_exists => r.must("create_bucket_if_not_exists"),
            Some(Entry::Bucket(_)) => {
                return expect_err(r, |e| matches!(e, Error::BucketExists), "create existing");
            }
            Some(Entry::Value(_)) => {
                return expect_err(
                    r,
                    |e| matches!(e, Error::IncompatibleValue),
                    "bucket over value",
                );
            }
            None => {
                let id = r.must("create_bucket");
                parent
                    .entries
                    .insert(name.clone(), Entry::Bucket(ModelBucket::default()));
                id
            }
        };
        // Use the returned id straight away.
        if self.rng.gen_bool(0.5) {
            let key = self.gen_key();
            let value = self.gen_value();
            self.log(format!(
                "  put via returned id {} ({} bytes)",
                show(&key),
                value.len()
            ));
            let mut path = parent_path;
            path.push(name);
            let b = model.bucket_mut(&path).expect("just created");
            let r = tx.put(id, &key, &value);
            if let Some(Entry::Bucket(_)) = b.entries.get(&key) {
                expect_err(
                    r,
                    |e| matches!(e, Error::IncompatibleValue),
                    "put over a bucket",
                );
            } else {
                r.must("put via returned bucket id");
                b.entries.insert(key, Entry::Value(value));
            }
        }
    }

    fn op_delete_bucket(&mut self, tx: &mut WriteTx, model: &mut ModelBucket) {
        let parent_path = self.pick_parent(model);
        let parent = model.bucket(&parent_path).expect("picked");
        let subs: Vec<&Vec<u8>> = parent
            .entries
            .iter()
            .filter(|(_, e)| matches!(e, Entry::Bucket(_)))
            .map(|(k, _)| k)
            .collect();
        let name = if !subs.is_empty() && self.rng.gen_bool(0.7) {
            subs[self.rng.gen_range(0..subs.len())].clone()
        } else {
            self.pick_key(parent, 40)
        };
        self.log(format!(
            "delete_bucket {} {}",
            show_path(&parent_path),
            show(&name)
        ));
        let pid = resolve(&*tx, &parent_path);
        let r = tx.delete_bucket(pid, &name);
        let parent = model.bucket_mut(&parent_path).expect("picked");
        match parent.entries.get(&name) {
            Some(Entry::Bucket(_)) => {
                r.must("delete_bucket");
                parent.entries.remove(&name);
                assert!(
                    tx.bucket(pid, &name).must("bucket").is_none(),
                    "deleted bucket still found"
                );
            }
            Some(Entry::Value(_)) => expect_err(
                r,
                |e| matches!(e, Error::IncompatibleValue),
                "delete_bucket on value",
            ),
            None => expect_err(
                r,
                |e| matches!(e, Error::BucketNotFound),
                "delete missing bucket",
            ),
        }
    }

    fn op_sequence(&mut self, tx: &mut WriteTx, model: &mut ModelBucket) {
        let (path, id) = self.pick_bucket(tx, model);
        let b = model.bucket_mut(&path).expect("picked");
        if self.rng.gen_bool(0.85) {
            self.log(format!("next_sequence {}", show_path(&path)));
            b.sequence += 1;
            assert_eq!(
                tx.next_sequence(id).must("next_sequence"),
                b.sequence,
                "next_sequence"
            );
        } else {
            let v = if self.rng.gen_bool(0.5) {
                self.rng.gen_range(0..1000)
            } else {
                self.rng.gen::<u64>() >> 2
            };
            self.log(format!("set_sequence {} {v}", show_path(&path)));
            tx.set_sequence(id, v).must("set_sequence");
            b.sequence = v;
        }
        assert_eq!(tx.sequence(id).must("sequence"), b.sequence, "sequence");
    }

    /// Reads one bucket's subtree through the write tx (first/next, last/prev and get).
    fn op_scan(&mut self, tx: &mut WriteTx, model: &mut ModelBucket) {
        let (path, id) = self.pick_bucket(tx, model);
        self.log(format!("scan {}", show_path(&path)));
        let mut budget = WalkOpts::THOROUGH.max_entries;
        let got = read_bucket(&*tx, id, false, 0, &mut budget, &WalkOpts::THOROUGH)
            .unwrap_or_else(|e| panic!("scan {}: {e}", show_path(&path)));
        if let Some(d) = first_difference(model.bucket(&path).expect("picked"), &got) {
            panic!("scan {}: {d}", show_path(&path));
        }
    }

    /// Seeks to a random key, then steps next/prev at random, comparing every item.
    fn op_seek(&mut self, tx: &mut WriteTx, model: &mut ModelBucket) {
        let (path, id) = self.pick_bucket(tx, model);
        let b = model.bucket(&path).expect("picked");
        let mut target = self.pick_key(b, 50);
        match self.rng.gen_range(0..10) {
            0 => target.clear(),
            1 => target.push(0),
            2 => target.truncate(target.len() / 2),
            _ => {}
        }
        let entries: Vec<(&Vec<u8>, &Entry)> = b.entries.iter().collect();
        let mut pos = entries.partition_point(|(k, _)| k.as_slice() < target.as_slice());
        let steps = self.rng.gen_range(0..20);
        let mut moves = Vec::with_capacity(steps);
        for _ in 0..steps {
            moves.push(self.rng.gen_bool(0.6));
        }
        self.log(format!(
            "seek {} {} then {steps} steps",
            show_path(&path),
            show(&target)
        ));
        let same = |got: Option<oxcd_engine::Item<'_>>, pos: usize, what: &str| {
            let want = entries.get(pos);
            match (got, want) {
                (None, None) => {}
                (Some(it), Some((k, e))) => {
                    assert!(
                        it.key == k.as_slice(),
                        "{what}: key {} want {}",
                        show(it.key),
                        show(k)
                    );
                    match e {
                        Entry::Value(v) => assert!(
                            !it.is_bucket && it.value == v.as_slice(),
                            "{what}: value of {}",
                            show(k)
                        ),
                        Entry::Bucket(_) => {
                            assert!(it.is_bucket, "{what}: {} should be a bucket", show(k))
                        }
                    }
                }
                (got, want) => panic!(
                    "{what}: got {:?}, want {:?}",
                    got.map(|it| show(it.key)),
                    want.map(|(k, _)| show(k))
                ),
            }
        };
        let mut c = tx.cursor(id).must("cursor");
        same(c.seek(&target).must("seek"), pos, "seek");
        for forward in moves {
            if pos >= entries.len() {
                break; // past the end: what prev() does there is not specified
            }
            if forward {
                pos += 1;
                same(c.next().must("next"), pos, "next after seek");
            } else if pos == 0 {
                same(
                    c.prev().must("prev"),
                    usize::MAX,
                    "prev before the first key",
                );
                break;
            } else {
                pos -= 1;
                same(c.prev().must("prev"), pos, "prev after seek");
            }
        }
    }
}

impl Case {
    /// Iterates with `cursor_mut`, deleting some plain keys as it goes (sometimes a bounded
    /// range from a seek position): every key must still be visited once, in order.
    fn op_cursor_delete(&mut self, tx: &mut WriteTx, model: &mut ModelBucket) {
        let (path, id) = self.pick_bucket(tx, model);
        let b = model.bucket(&path).expect("picked");
        let start = if self.rng.gen_bool(0.5) {
            None
        } else {
            Some(self.pick_key(b, 50))
        };
        let expected: Vec<(Vec<u8>, bool)> = b
            .entries
            .iter()
            .filter(|(k, _)| start.as_ref().is_none_or(|s| *k >= s))
            .map(|(k, e)| (k.clone(), matches!(e, Entry::Bucket(_))))
            .collect();
        let p = if self.shrinking {
            self.rng.gen_range(0.3..=1.0)
        } else {
            self.rng.gen_range(0.05..0.5)
        };
        let limit = if self.rng.gen_bool(0.3) {
            self.rng.gen_range(1..200)
        } else {
            usize::MAX
        };
        self.log(format!(
            "cursor_mut delete in {} from {:?}, p {p:.2}, at most {limit} keys",
            show_path(&path),
            start.as_deref().map(show)
        ));
        let mut visited = Vec::new();
        let mut deleted = Vec::new();
        let mut c = tx.cursor_mut(id).must("cursor_mut");
        let first = match &start {
            None => c.first().must("first"),
            Some(k) => c.seek(k).must("seek"),
        };
        let mut item = first.map(|it| (it.key.to_vec(), it.is_bucket));
        while let Some((key, is_bucket)) = item {
            if !is_bucket && self.rng.gen_bool(p) {
                c.delete().must("cursor delete");
                deleted.push(key.clone());
            } else if is_bucket && self.rng.gen_bool(0.2) {
                let r = c.delete();
                expect_err(
                    r,
                    |e| matches!(e, Error::IncompatibleValue),
                    "cursor delete of bucket",
                );
            }
            visited.push((key, is_bucket));
            if visited.len() >= limit {
                break;
            }
            item = c
                .next()
                .must("next after delete")
                .map(|it| (it.key.to_vec(), it.is_bucket));
        }
        drop(c);
        let want = &expected[..visited.len().min(expected.len())];
        if visited != want || (limit == usize::MAX && visited.len() != expected.len()) {
            let at = visited.iter().zip(&expected).position(|(a, b)| a != b);
            panic!(
                "cursor delete iteration visited {} keys, expected {} (first mismatch at {at:?})",
                visited.len(),
                expected.len()
            );
        }
        let b = model.bucket_mut(&path).expect("picked");
        for k in deleted {
            b.entries.remove(&k);
        }
    }

    /// One documented misuse; the model stays unchanged.
    fn op_misuse(&mut self, tx: &mut WriteTx, model: &mut ModelBucket) {
        let (path, id) = self.pick_bucket(tx, model);
        // A bucket that has a parent bucket (not the root), if any.
        let nested: Vec<Path> = model
            .bucket_paths()
            .into_iter()
            .filter(|p| p.len() >= 2)
            .collect();
        let pick = self.rng.gen_range(0..6);
        self.log(format!("misuse #{pick} in {}", show_path(&path)));
        match pick {
            0 => expect_err(
                tx.put(id, b"", b"x"),
                |e| matches!(e, Error::KeyRequired),
                "empty key",
            ),
            1 => {
                let key = vec![b'x'; self.rng.gen_range(32_769..40_000)];
                expect_err(
                    tx.put(id, &key, b"x"),
                    |e| matches!(e, Error::KeyTooLarge),
                    "huge key",
                );
            }
            2 => {
                let r = tx.create_bucket(id, b"").map(drop);
                expect_err(
                    r,
                    |e| matches!(e, Error::BucketNameRequired),
                    "empty bucket name",
                );
            }
            3 => {
                let (parent, name) = path.split_at(path.len() - 1);
                let pid = resolve(&*tx, parent);
                let r = tx.create_bucket(pid, &name[0]).map(drop);
                expect_err(
                    r,
                    |e| matches!(e, Error::BucketExists),
                    "create existing bucket",
                );
            }
            4 if !nested.is_empty() => {
                let p = &nested[self.rng.gen_range(0..nested.len())];
                let pid = resolve(&*tx, &p[..p.len() - 1]);
                let last = &p[p.len() - 1];
                let r = tx.put(pid, last, b"x");
                expect_err(
                    r,
                    |e| matches!(e, Error::IncompatibleValue),
                    "put over a bucket",
                );
            }
            _ if !nested.is_empty() => {
                let p = &nested[self.rng.gen_range(0..nested.len())];
                let pid = resolve(&*tx, &p[..p.len() - 1]);
                let r = tx.delete(pid, &p[p.len() - 1]);
                expect_err(
                    r,
                    |e| matches!(e, Error::IncompatibleValue),
                    "delete a bucket key",
                );
            }
            _ => {}
        }
    }

    /// Runs a small transaction through `Db::update`, half the time ending it with an error
    /// (which must roll everything back).
    fn update_closure(&mut self) {
        let paths = self.committed.bucket_paths();
        if paths.is_empty() {
            return;
        }
        let path = paths[self.rng.gen_range(0..paths.len())].clone();
        let fail = self.rng.gen_bool(0.5);
        let mut puts = Vec::new();
        for _ in 0..self.rng.gen_range(1..10) {
            let key = self.gen_key();
            let bucket = self.committed.bucket(&path).expect("picked");
            if !matches!(bucket.entries.get(&key), Some(Entry::Bucket(_))) {
                puts.push((key, self.gen_value()));
            }
        }
        self.log(format!(
            "update {} puts in {}, fail: {fail}",
            puts.len(),
            show_path(&path)
        ));
        let r = self.db().update(|tx| {
            let id = resolve(&*tx, &path);
            for (k, v) in &puts {
                tx.put(id, k, v)?;
            }
            if fail {
                tx.put(id, b"", b"this fails with KeyRequired")?;
            }
            Ok(())
        });
        if fail {
            expect_err(
                r,
                |e| matches!(e, Error::KeyRequired),
                "update ending with an error",
            );
        } else {
            r.must("update");
            self.txid += 1;
            let b = self.committed.bucket_mut(&path).expect("picked");
            for (k, v) in puts {
                b.entries.insert(k, Entry::Value(v));
            }
        }
        self.compare_committed("after update");
    }

    /// Compares what a fresh read tx sees with the committed model.
    fn compare_committed(&mut self, what: &str) {
        let db = self.db();
        let got = if self.rng.gen_bool(0.5) {
            let tx = db.begin_read().must("begin_read");
            assert_eq!(tx.txid(), self.txid, "{what}: read tx id");
            read_tree(&tx, &WalkOpts::THOROUGH)
        } else {
            db.view(|tx| Ok(read_tree(tx, &WalkOpts::THOROUGH)))
                .must("view")
        };
        let got = got.unwrap_or_else(|e| panic!("seed {}: {what}: walk failed: {e}", self.seed));
        if let Some(d) = first_difference(&self.committed, &got) {
            panic!(
                "seed {}: {what}: committed state differs from the model: {d}",
                self.seed
            );
        }
        if self.rng.gen_bool(0.1) {
            db.check().must("check");
            let info = db.info().must("info");
            assert_eq!(info.txid, self.txid, "info().txid");
            assert_eq!(info.page_size, db.page_size(), "info().page_size");
        }
    }

    fn open_reader(&mut self) {
        if self.readers.len() >= MAX_READERS {
            self.drop_some_reader();
        }
        let tx = self.db().begin_read().must("begin_read");
        assert_eq!(tx.txid(), self.txid, "a new reader sees the last commit");
        self.log(format!(
            "open reader #{} at id {}",
            self.readers.len(),
            self.txid
        ));
        let snapshot = self.committed.clone();
        self.readers.push(Reader {
            tx,
            snapshot,
            txid: self.txid,
        });
    }

    fn drop_some_reader(&mut self) {
        if !self.readers.is_empty() {
            let i = self.rng.gen_range(0..self.readers.len());
            self.log(format!("drop reader #{i}"));
            self.readers.remove(i);
        }
    }

    fn verify_some_reader(&mut self) {
        if !self.readers.is_empty() {
            let i = self.rng.gen_range(0..self.readers.len());
            self.verify_reader(i);
        }
    }

    /// A reader must still see exactly the state committed when it began.
    fn verify_reader(&mut self, i: usize) {
        self.log(format!("verify reader #{i}"));
        self.count("reader verifications");
        let r = &self.readers[i];
        assert_eq!(r.tx.txid(), r.txid, "reader #{i} changed its id");
        let got = read_tree(&r.tx, &WalkOpts::THOROUGH)
            .unwrap_or_else(|e| panic!("seed {}: reader #{i} (id {}): {e}", self.seed, r.txid));
        if let Some(d) = first_difference(&r.snapshot, &got) {
            panic!(
                "seed {}: reader #{i} (id {}) lost its snapshot: {d}",
                self.seed, r.txid
            );
        }
    }

    /// Closes everything and opens the file again, sometimes read-only first.
    fn reopen(&mut self) {
        while !self.readers.is_empty() {
            self.verify_reader(0);
            self.readers.remove(0);
        }
        self.db = None;
        let path = self.dir.path().join("db");
        if self.rng.gen_bool(0.2) {
            self.log("reopen read-only".into());
            let ro = Options {
                read_only: true,
                ..self.opts.clone()
            };
            let db = Db::open(&path, ro).must("open read-only");
            let r = db.begin_write().map(drop);
            expect_err(
                r,
                |e| matches!(e, Error::ReadOnly),
                "begin_write on a read-only db",
            );
            self.db = Some(db);
            self.compare_committed("read-only reopen");
            self.db
                .as_ref()
                .expect("open")
                .check()
                .must("check read-only");
            self.db = None;
        }
        if self.rng.gen_bool(0.2) {
            self.opts.no_freelist_sync = !self.opts.no_freelist_sync;
        }
        self.opts.initial_mmap_size = [0, 0, 1 << 20, 8 << 20][self.rng.gen_range(0..4)];
        self.log(format!("reopen with {:?}", self.opts));
        self.count("reopens");
        self.db = Some(Db::open(&path, self.opts.clone()).must("reopen"));
        self.compare_committed("after reopen");
        self.db().check().must("check after reopen");
    }

    /// Deletes every bucket in one transaction; the result must be empty and consistent.
    fn delete_everything(&mut self) {
        self.log("delete every bucket".into());
        let names: Vec<Vec<u8>> = self.committed.entries.keys().cloned().collect();
        self.db()
            .update(|tx| {
                for n in &names {
                    tx.delete_bucket(tx.root(), n)?;
                }
                Ok(())
            })
            .must("delete every bucket");
        self.txid += 1;
        self.committed = ModelBucket::default();
        self.compare_committed("after deleting everything");
        self.db().check().must("check after deleting everything");
    }
}
