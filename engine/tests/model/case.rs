//! One seeded random walk over a fresh database ([`Case`]): the walk's size budget, the loop of
//! write transactions (commit, rollback or drop) interleaved with `Db::update` closures, reader
//! events and reopens, and the comparison of every committed state with the model.
//!
//! Owns the `Case` state and the helpers every operation module uses ([`expect_err`],
//! [`resolve`]). The operations themselves live in the sibling modules `ops`, `point_ops`,
//! `cursor_ops` and `readers`, each adding an `impl Case` block; that is why the fields are
//! `pub(crate)`.
//!
//! Invariants: `committed` is the model of the last committed transaction and `txid` its id;
//! when a case panics, its `Drop` prints the seed, the options and the last operations.

use std::collections::{BTreeMap, VecDeque};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::common::{first_difference, read_tree, show_path, Entry, ModelBucket, Must, WalkOpts};
use crate::readers::Reader;
use oxcd_engine::{BucketId, Db, Error, Options, TxRead};

/// Size budget of one random walk: keeps strict checks and full comparisons fast.
pub(crate) const MAX_MODEL_BYTES: usize = 3 << 20;
const MAX_MODEL_VALUES: usize = 3000;
pub(crate) const MAX_READERS: usize = 8;
const LOG_LINES: usize = 60;

pub(crate) type Path = Vec<Vec<u8>>;

/// One seeded random walk over a fresh database.
pub(crate) struct Case {
    pub(crate) seed: u64,
    pub(crate) rng: StdRng,
    pub(crate) dir: tempfile::TempDir,
    pub(crate) opts: Options,
    pub(crate) db: Option<Db>,
    pub(crate) committed: ModelBucket,
    pub(crate) txid: u64,
    pub(crate) readers: Vec<Reader>,
    pub(crate) log: VecDeque<String>,
    pub(crate) shrinking: bool,
    pub(crate) stats: BTreeMap<&'static str, u64>,
    pub(crate) max_values: usize,
    pub(crate) max_bytes: usize,
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

pub(crate) fn expect_err<T: std::fmt::Debug>(
    r: oxcd_engine::Result<T>,
    want: fn(&Error) -> bool,
    what: &str,
) {
    match r {
        Err(e) if want(&e) => {}
        other => panic!("{what}: expected a specific error, got {other:?}"),
    }
}

/// The bucket at `path` (root when empty); panics if it is missing, as the model says it exists.
pub(crate) fn resolve<T: TxRead>(tx: &T, path: &[Vec<u8>]) -> BucketId {
    let mut id = tx.root();
    for name in path {
        id = tx.bucket(id, name).must("bucket").unwrap_or_else(|| {
            panic!("bucket {} missing (model has it)", show_path(path));
        });
    }
    id
}

impl Case {
    pub(crate) fn new(seed: u64) -> Case {
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

    pub(crate) fn db(&self) -> Db {
        self.db.clone().expect("db is open")
    }

    pub(crate) fn count(&mut self, what: &'static str) {
        *self.stats.entry(what).or_default() += 1;
    }

    pub(crate) fn log(&mut self, line: String) {
        if self.log.len() == LOG_LINES {
            self.log.pop_front();
        }
        self.log.push_back(line);
    }

    pub(crate) fn run(mut self, txs: usize) {
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

    pub(crate) fn write_tx(&mut self, t: usize) {
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

    /// Runs a small transaction through `Db::update`, half the time ending it with an error
    /// (which must roll everything back).
    pub(crate) fn update_closure(&mut self) {
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
    pub(crate) fn compare_committed(&mut self, what: &str) {
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

    /// Closes everything and opens the file again, sometimes read-only first.
    pub(crate) fn reopen(&mut self) {
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
    pub(crate) fn delete_everything(&mut self) {
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
