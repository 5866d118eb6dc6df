//! Engine micro-benchmark: oxcd-engine against LMDB (through heed) and redb, in one run, with
//! oxcd/anchor ratios.
//!
//! Run: `cargo bench -p oxcd-benches --bench engine` (N = `OXCD_BENCH_N`, default 1_000_000;
//! see `oxcd_benches::workload` for the other `OXCD_BENCH_*` knobs; `OXCD_BENCH_DIR` picks the
//! directory for the temporary databases, default the system temp dir). Without cargo bench's
//! `--bench` flag (for example `cargo test --all-targets`) it runs a smoke-size workload, so the
//! benchmark is exercised end to end without taking minutes.
//!
//! Every engine gets the same treatment, in the same order (oxcd, LMDB, redb), each on a fresh
//! file in its own temporary directory under the same base directory:
//!
//! - (a) load: N etcd revision keys (appends) with 256-byte values, 1,000 puts per durable
//!   commit (oxcd: default options, so fdatasync on commit, 4 KiB pages, fill percent 0.9 on the
//!   key bucket each transaction as etcd's batch tx sets it; LMDB: default flags, so synced
//!   commits; redb: `Durability::Immediate`, 4 KiB pages by default);
//! - (b) seeded random point gets over the N keys, 1,000 per read transaction;
//! - (c) range scans of 1,000 keys from seeded random start keys, one read transaction each;
//! - (d) data file size after the load, the bytes of pages in use by the engine's own count
//!   (oxcd: `DbInfo::size_in_use_bytes`, etcd's "size in use"; LMDB: leaf, branch and overflow
//!   pages; redb: allocated pages, including its system tables), and the data file size after
//!   compaction (oxcd: `compact` into a new file as etcd's defrag does it: fill percent 0.9,
//!   a commit every 10,000 keys; LMDB: compacting environment copy, then fsync; redb:
//!   `Database::compact` until it reports nothing left to do).
//!
//! Each workload runs `OXCD_BENCH_REPEAT` times (default 2) and the best run counts; every load
//! starts from a fresh file, and the reads use the last one, right after it was loaded, on a
//! page cache warmed by the load, the same for every engine. Compaction runs once. Every read
//! is checked against what the load wrote (count and digest), so a fast wrong answer fails the
//! engine instead of winning. An engine that fails leaves `-` in its column and the process
//! exits with status 1 after printing the table.

use std::error::Error;
use std::fs;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use oxcd_benches::table::{Better, Table};
use oxcd_benches::timing::{best_of, per_second, time, Latencies};
use oxcd_benches::workload::{load_key, ReadTally, ValuePool, WorkloadConfig};
use oxcd_engine::TxRead as _;

type BoxError = Box<dyn Error>;
type BenchResult<T> = Result<T, BoxError>;

const PAGE_SIZE_BYTES: u32 = 4096;
const MIB: f64 = 1024.0 * 1024.0;
/// Fill percent etcd sets on its key bucket for every batch transaction and uses for defrag.
const ETCD_FILL_PERCENT: f64 = 0.9;
/// etcd's defrag commits its copy every 10,000 keys (`defragLimit`).
const ETCD_DEFRAG_KEYS_PER_TX: u64 = 10_000;
/// etcd's bucket (oxcd) / table (redb) of revision keys.
const KEY_BUCKET: &str = "key";
const ENV_BENCH_DIR: &str = "OXCD_BENCH_DIR";

/// One engine under test, open on a fresh database in a directory of its own.
trait Subject {
    /// Puts load keys `first..first + count` in one durable commit.
    fn commit_batch(&mut self, first: u64, count: u64, values: &ValuePool) -> BenchResult<()>;
    /// Point gets of the load keys at `indices`, in one read transaction.
    fn get_batch(&self, indices: &[u64]) -> BenchResult<ReadTally>;
    /// Reads up to `length` pairs from the first key `>= start`, in one read transaction.
    fn scan(&self, start: &[u8], length: u64) -> BenchResult<ReadTally>;
    /// Size of the data file now.
    fn file_size_bytes(&self) -> BenchResult<u64>;
    /// Bytes of pages the engine's own statistics count as in use (not free) now.
    fn size_in_use_bytes(&self) -> BenchResult<u64>;
    /// Compacts with the engine's own tool and returns the size of the resulting data file.
    fn compact(&mut self) -> BenchResult<u64>;
    /// Closes the engine, releasing its map and locks.
    fn close(self: Box<Self>) -> BenchResult<()>;
}

/// Opens an engine on a fresh database inside the given directory.
type OpenSubject = fn(&Path, &WorkloadConfig) -> BenchResult<Box<dyn Subject>>;

/// The engines, in the order they run and appear in the table (oxcd first: ratios are oxcd's).
const SUBJECTS: [(&str, OpenSubject); 3] = [
    ("oxcd", OxcdSubject::open),
    ("LMDB", LmdbSubject::open),
    ("redb", RedbSubject::open),
];

// ---------------------------------------------------------------------------------------------
// oxcd

struct OxcdSubject {
    dir: PathBuf,
    value_size_bytes: usize,
    db: oxcd_engine::Db,
}

fn oxcd_options() -> oxcd_engine::Options {
    oxcd_engine::Options {
        page_size: PAGE_SIZE_BYTES,
        ..oxcd_engine::Options::default()
    }
}

fn oxcd_key_bucket(tx: &impl oxcd_engine::TxRead) -> oxcd_engine::Result<oxcd_engine::BucketId> {
    tx.bucket(tx.root(), KEY_BUCKET.as_bytes())?
        .ok_or(oxcd_engine::Error::BucketNotFound)
}

impl OxcdSubject {
    fn open(dir: &Path, config: &WorkloadConfig) -> BenchResult<Box<dyn Subject>> {
        let db = oxcd_engine::Db::open(dir.join("oxcd.db"), oxcd_options())?;
        db.update(|tx| {
            let root = tx.root();
            tx.create_bucket_if_not_exists(root, KEY_BUCKET.as_bytes())
                .map(drop)
        })?;
        Ok(Box::new(OxcdSubject {
            dir: dir.to_path_buf(),
            value_size_bytes: config.value_size_bytes,
            db,
        }))
    }
}

impl Subject for OxcdSubject {
    fn commit_batch(&mut self, first: u64, count: u64, values: &ValuePool) -> BenchResult<()> {
        self.db.update(|tx| {
            let bucket = oxcd_key_bucket(tx)?;
            tx.set_fill_percent(bucket, ETCD_FILL_PERCENT);
            for index in first..first + count {
                tx.put(bucket, &load_key(index), values.value(index))?;
            }
            Ok(())
        })?;
        Ok(())
    }

    fn get_batch(&self, indices: &[u64]) -> BenchResult<ReadTally> {
        Ok(self.db.view(|tx| {
            let bucket = oxcd_key_bucket(tx)?;
            let mut tally = ReadTally::default();
            for &index in indices {
                let key = load_key(index);
                if let Some(value) = tx.get(bucket, &key)? {
                    tally.record(&key, value);
                }
            }
            Ok(tally)
        })?)
    }

    fn scan(&self, start: &[u8], length: u64) -> BenchResult<ReadTally> {
        Ok(self.db.view(|tx| {
            let mut cursor = tx.cursor(oxcd_key_bucket(tx)?)?;
            let mut tally = ReadTally::default();
            let mut item = cursor.seek(start)?;
            while let Some(pair) = item {
                tally.record(pair.key, pair.value);
                if tally.pairs >= length {
                    break;
                }
                item = cursor.next()?;
            }
            Ok(tally)
        })?)
    }

    fn file_size_bytes(&self) -> BenchResult<u64> {
        Ok(fs::metadata(self.db.path())?.len())
    }

    fn size_in_use_bytes(&self) -> BenchResult<u64> {
        Ok(self.db.info()?.size_in_use_bytes)
    }

    fn compact(&mut self) -> BenchResult<u64> {
        let path = self.dir.join("oxcd-compacted.db");
        let dst = oxcd_engine::Db::open(&path, oxcd_options())?;
        // As etcd's defrag: 0.9 fill and a commit every 10,000 keys (counted here in bytes of
        // this workload's keys and values, which is what the engine's limit measures).
        let pair_bytes = (oxcd_benches::workload::REVISION_KEY_LEN + self.value_size_bytes) as u64;
        let options = oxcd_engine::CompactOptions {
            fill_percent: ETCD_FILL_PERCENT,
            tx_max_bytes: ETCD_DEFRAG_KEYS_PER_TX * pair_bytes,
        };
        oxcd_engine::compact(&self.db, &dst, &options, &mut |_copied_bytes| {})?;
        drop(dst);
        Ok(fs::metadata(path)?.len())
    }

    fn close(self: Box<Self>) -> BenchResult<()> {
        drop(self.db);
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// LMDB (heed)

struct LmdbSubject {
    dir: PathBuf,
    env: heed::Env,
    db: heed::Database<heed::types::Bytes, heed::types::Bytes>,
}

impl LmdbSubject {
    fn open(dir: &Path, config: &WorkloadConfig) -> BenchResult<Box<dyn Subject>> {
        let env_dir = dir.join("lmdb");
        fs::create_dir(&env_dir)?;
        // The map only reserves address space; LMDB grows the file as pages are written. Room
        // for 4 KiB per key covers half-full leaves and the copy-on-write churn of the load.
        let map_size_bytes = config.key_count.saturating_mul(4096).max(4 << 30);
        let mut options = heed::EnvOpenOptions::new();
        options.map_size(usize::try_from(map_size_bytes)?);
        // SAFETY: heed's open is unsafe because the mapped file must not be modified behind
        // LMDB's back. The directory is fresh and private to this process, and the only flags
        // are LMDB's defaults (no NO_LOCK, NO_SYNC or WRITE_MAP).
        let env = unsafe { options.open(&env_dir)? };
        let mut wtxn = env.write_txn()?;
        let db = env.create_database(&mut wtxn, None)?;
        wtxn.commit()?;
        Ok(Box::new(LmdbSubject {
            dir: dir.to_path_buf(),
            env,
            db,
        }))
    }
}

impl Subject for LmdbSubject {
    fn commit_batch(&mut self, first: u64, count: u64, values: &ValuePool) -> BenchResult<()> {
        let mut wtxn = self.env.write_txn()?;
        for index in first..first + count {
            self.db
                .put(&mut wtxn, &load_key(index), values.value(index))?;
        }
        wtxn.commit()?;
        Ok(())
    }

    fn get_batch(&self, indices: &[u64]) -> BenchResult<ReadTally> {
        let rtxn = self.env.read_txn()?;
        let mut tally = ReadTally::default();
        for &index in indices {
            let key = load_key(index);
            if let Some(value) = self.db.get(&rtxn, &key)? {
                tally.record(&key, value);
            }
        }
        Ok(tally)
    }

    fn scan(&self, start: &[u8], length: u64) -> BenchResult<ReadTally> {
        let rtxn = self.env.read_txn()?;
        let mut tally = ReadTally::default();
        let range = (Bound::Included(start), Bound::Unbounded);
        for pair in self.db.range(&rtxn, &range)?.take(usize::try_from(length)?) {
            let (key, value) = pair?;
            tally.record(key, value);
        }
        Ok(tally)
    }

    fn file_size_bytes(&self) -> BenchResult<u64> {
        Ok(fs::metadata(self.env.path().join("data.mdb"))?.len())
    }

    fn size_in_use_bytes(&self) -> BenchResult<u64> {
        Ok(self.env.non_free_pages_size()?)
    }

    fn compact(&mut self) -> BenchResult<u64> {
        let path = self.dir.join("lmdb-compacted.mdb");
        let copy = self
            .env
            .copy_to_file(&path, heed::CompactionOption::Enabled)?;
        // LMDB's copy does not sync; the other engines' compactions end durable, so this must too.
        copy.sync_all()?;
        Ok(copy.metadata()?.len())
    }

    fn close(self: Box<Self>) -> BenchResult<()> {
        let LmdbSubject { env, .. } = *self;
        env.prepare_for_closing().wait();
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// redb

const REDB_TABLE: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new(KEY_BUCKET);

struct RedbSubject {
    path: PathBuf,
    db: redb::Database,
}

impl RedbSubject {
    fn open(dir: &Path, _config: &WorkloadConfig) -> BenchResult<Box<dyn Subject>> {
        let path = dir.join("redb.db");
        let db = redb::Database::create(&path)?;
        let txn = db.begin_write()?;
        txn.open_table(REDB_TABLE)?;
        txn.commit()?;
        Ok(Box::new(RedbSubject { path, db }))
    }
}

impl Subject for RedbSubject {
    fn commit_batch(&mut self, first: u64, count: u64, values: &ValuePool) -> BenchResult<()> {
        let mut txn = self.db.begin_write()?;
        txn.set_durability(redb::Durability::Immediate);
        {
            let mut table = txn.open_table(REDB_TABLE)?;
            for index in first..first + count {
                table.insert(load_key(index).as_slice(), values.value(index))?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    fn get_batch(&self, indices: &[u64]) -> BenchResult<ReadTally> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(REDB_TABLE)?;
        let mut tally = ReadTally::default();
        for &index in indices {
            let key = load_key(index);
            if let Some(value) = table.get(key.as_slice())? {
                tally.record(&key, value.value());
            }
        }
        Ok(tally)
    }

    fn scan(&self, start: &[u8], length: u64) -> BenchResult<ReadTally> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(REDB_TABLE)?;
        let mut tally = ReadTally::default();
        for pair in table
            .range::<&[u8]>(start..)?
            .take(usize::try_from(length)?)
        {
            let (key, value) = pair?;
            tally.record(key.value(), value.value());
        }
        Ok(tally)
    }

    fn file_size_bytes(&self) -> BenchResult<u64> {
        Ok(fs::metadata(&self.path)?.len())
    }

    fn size_in_use_bytes(&self) -> BenchResult<u64> {
        // redb reports allocations only from a write transaction; it is aborted, nothing changes.
        let txn = self.db.begin_write()?;
        let stats = txn.stats()?;
        txn.abort()?;
        Ok(stats.allocated_pages() * u64::try_from(stats.page_size())?)
    }

    fn compact(&mut self) -> BenchResult<u64> {
        // Each call moves what it can; redb says `false` once nothing more can be reclaimed.
        while self.db.compact()? {}
        self.file_size_bytes()
    }

    fn close(self: Box<Self>) -> BenchResult<()> {
        drop(self.db);
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Driver

/// What one engine measured; `None` where it failed before getting there.
#[derive(Clone, Debug, Default)]
struct Measured {
    load_puts_per_s: Option<f64>,
    commit_p50_ms: Option<f64>,
    commit_p99_ms: Option<f64>,
    gets_per_s: Option<f64>,
    scans_per_s: Option<f64>,
    loaded_size_mib: Option<f64>,
    in_use_mib: Option<f64>,
    compacted_size_mib: Option<f64>,
    compaction_s: Option<f64>,
}

/// The reads every engine performs, with the tallies a correct engine returns.
struct Reads {
    get_indices: Vec<u64>,
    expected_gets: ReadTally,
    scan_starts: Vec<u64>,
    expected_scans: ReadTally,
}

impl Reads {
    fn new(config: &WorkloadConfig, values: &ValuePool) -> Reads {
        let get_indices = config.get_indices();
        let expected_gets = ReadTally::expected(values, get_indices.iter().copied());
        let scan_starts = config.scan_starts();
        let length = config.effective_scan_length();
        let expected_scans =
            ReadTally::expected(values, scan_starts.iter().flat_map(|&s| s..s + length));
        Reads {
            get_indices,
            expected_gets,
            scan_starts,
            expected_scans,
        }
    }
}

fn check_tally(what: &str, got: ReadTally, expected: ReadTally) -> BenchResult<()> {
    if got == expected {
        return Ok(());
    }
    Err(format!(
        "{what} returned wrong data: {} pairs (digest {:#x}), expected {} pairs (digest {:#x})",
        got.pairs, got.digest, expected.pairs, expected.digest
    )
    .into())
}

fn run_load(
    subject: &mut dyn Subject,
    config: &WorkloadConfig,
    values: &ValuePool,
) -> BenchResult<(Duration, Latencies)> {
    let commits = config.key_count.div_ceil(config.keys_per_commit);
    let mut latencies = Latencies::with_capacity(usize::try_from(commits)?);
    let start = Instant::now();
    let mut first = 0;
    while first < config.key_count {
        let count = config.keys_per_commit.min(config.key_count - first);
        let (committed, elapsed) = time(|| subject.commit_batch(first, count, values));
        committed?;
        latencies.record(elapsed);
        first += count;
    }
    Ok((start.elapsed(), latencies))
}

fn run_gets(
    subject: &dyn Subject,
    config: &WorkloadConfig,
    reads: &Reads,
) -> BenchResult<Duration> {
    let batch = usize::try_from(config.gets_per_read_tx)?;
    best_of(config.repeats, || {
        let start = Instant::now();
        let mut tally = ReadTally::default();
        for indices in reads.get_indices.chunks(batch) {
            tally.merge(subject.get_batch(indices)?);
        }
        let elapsed = start.elapsed();
        check_tally("point gets", tally, reads.expected_gets)?;
        Ok(elapsed)
    })
}

fn run_scans(
    subject: &dyn Subject,
    config: &WorkloadConfig,
    reads: &Reads,
) -> BenchResult<Duration> {
    let length = config.effective_scan_length();
    best_of(config.repeats, || {
        let start = Instant::now();
        let mut tally = ReadTally::default();
        for &first in &reads.scan_starts {
            tally.merge(subject.scan(&load_key(first), length)?);
        }
        let elapsed = start.elapsed();
        check_tally("range scans", tally, reads.expected_scans)?;
        Ok(elapsed)
    })
}

/// Workload (a): loads a fresh database `config.repeats` times and keeps the fastest load's
/// timings. The last database (all loads write identical data) stays open for the reads.
fn best_load(
    name: &str,
    open: OpenSubject,
    base_dir: &Path,
    config: &WorkloadConfig,
    values: &ValuePool,
    out: &mut Measured,
) -> BenchResult<(TempDir, Box<dyn Subject>)> {
    let mut best: Option<(Duration, Latencies)> = None;
    let mut attempt = 1;
    loop {
        let dir = tempfile::Builder::new()
            .prefix("oxcd-bench-")
            .tempdir_in(base_dir)?;
        let mut subject = open(dir.path(), config)?;
        let (load_time, latencies) = run_load(subject.as_mut(), config, values)?;
        eprintln!("  {name}: load {:.2} s", load_time.as_secs_f64());
        if best
            .as_ref()
            .is_none_or(|(fastest, _)| load_time < *fastest)
        {
            best = Some((load_time, latencies));
        }
        if attempt >= config.repeats {
            let (load_time, mut latencies) = best.unwrap_or_default();
            out.load_puts_per_s = Some(per_second(config.key_count, load_time));
            out.commit_p50_ms = Some(latencies.quantile(0.50).as_secs_f64() * 1e3);
            out.commit_p99_ms = Some(latencies.quantile(0.99).as_secs_f64() * 1e3);
            return Ok((dir, subject));
        }
        subject.close()?;
        dir.close()?;
        attempt += 1;
    }
}

/// Workloads (b) to (d) on one loaded engine, filling `out` as results arrive.
fn run_reads_and_compaction(
    name: &str,
    mut subject: Box<dyn Subject>,
    config: &WorkloadConfig,
    reads: &Reads,
    out: &mut Measured,
) -> BenchResult<()> {
    let gets_time = run_gets(subject.as_ref(), config, reads)?;
    out.gets_per_s = Some(per_second(config.get_count, gets_time));
    eprintln!(
        "  {name}: gets {:.2} s (best of {})",
        gets_time.as_secs_f64(),
        config.repeats
    );

    let scans_time = run_scans(subject.as_ref(), config, reads)?;
    out.scans_per_s = Some(per_second(config.scan_count, scans_time));
    eprintln!(
        "  {name}: scans {:.2} s (best of {})",
        scans_time.as_secs_f64(),
        config.repeats
    );

    out.loaded_size_mib = Some(subject.file_size_bytes()? as f64 / MIB);
    out.in_use_mib = Some(subject.size_in_use_bytes()? as f64 / MIB);
    let (compacted, compaction_time) = time(|| subject.compact());
    out.compacted_size_mib = Some(compacted? as f64 / MIB);
    out.compaction_s = Some(compaction_time.as_secs_f64());
    eprintln!(
        "  {name}: compaction {:.2} s",
        compaction_time.as_secs_f64()
    );
    subject.close()
}

/// Selects one row's number from an engine's results.
type PickMetric = fn(&Measured) -> Option<f64>;

fn build_table(config: &WorkloadConfig, measured: &[Measured]) -> Table {
    let names: Vec<&str> = SUBJECTS.iter().map(|(name, _)| *name).collect();
    let mut table = Table::new(&names);
    let column = |pick: PickMetric| -> Vec<Option<f64>> { measured.iter().map(pick).collect() };
    let per_commit = config.keys_per_commit;
    let scan_length = config.effective_scan_length();
    let rows: [(String, &str, Better, PickMetric); 9] = [
        (
            format!("(a) load, {per_commit} puts/commit"),
            "puts/s",
            Better::Higher,
            |m| m.load_puts_per_s,
        ),
        (
            "(a) load, commit latency p50".into(),
            "ms",
            Better::Lower,
            |m| m.commit_p50_ms,
        ),
        (
            "(a) load, commit latency p99".into(),
            "ms",
            Better::Lower,
            |m| m.commit_p99_ms,
        ),
        (
            "(b) random point gets".into(),
            "gets/s",
            Better::Higher,
            |m| m.gets_per_s,
        ),
        (
            format!("(c) range scans of {scan_length} keys"),
            "scans/s",
            Better::Higher,
            |m| m.scans_per_s,
        ),
        (
            "(d) file size after load".into(),
            "MiB",
            Better::Lower,
            |m| m.loaded_size_mib,
        ),
        (
            "(d) pages in use after load".into(),
            "MiB",
            Better::Lower,
            |m| m.in_use_mib,
        ),
        (
            "(d) file size after compaction".into(),
            "MiB",
            Better::Lower,
            |m| m.compacted_size_mib,
        ),
        ("(d) compaction time".into(), "s", Better::Lower, |m| {
            m.compaction_s
        }),
    ];
    for (workload, unit, better, pick) in rows {
        table.row(&workload, unit, better, &column(pick));
    }
    table
}

/// `cargo bench` passes `--bench`; anything else (cargo test --all-targets) gets a smoke run.
fn config_for_mode(bench_mode: bool) -> BenchResult<WorkloadConfig> {
    let config = WorkloadConfig::from_env()?;
    if bench_mode {
        return Ok(config);
    }
    Ok(WorkloadConfig {
        key_count: 3_000,
        get_count: 3_000,
        scan_count: 20,
        repeats: 1,
        ..config
    })
}

fn print_header(config: &WorkloadConfig, base_dir: &Path, bench_mode: bool) {
    let lmdb = heed::lmdb_version();
    println!(
        "oxcd engine benchmark{}",
        if bench_mode {
            ""
        } else {
            " (smoke run: no --bench flag)"
        }
    );
    println!(
        "  N = {} keys (17-byte revision keys, {}-byte values), {} puts per durable commit, {} B pages",
        config.key_count, config.value_size_bytes, config.keys_per_commit, PAGE_SIZE_BYTES
    );
    println!(
        "  {} random gets ({} per read tx), {} scans of {} keys; loads and reads best of {}",
        config.get_count,
        config.gets_per_read_tx,
        config.scan_count,
        config.effective_scan_length(),
        config.repeats
    );
    println!(
        "  databases in {} (set {ENV_BENCH_DIR} to move them)",
        base_dir.display()
    );
    println!(
        "  oxcd-engine {}, {} (heed 0.20), redb 2",
        env!("CARGO_PKG_VERSION"),
        lmdb.string
    );
    println!("  order: oxcd, LMDB, redb; reads on a warm page cache right after each load");
}

fn run(bench_mode: bool) -> BenchResult<bool> {
    let config = config_for_mode(bench_mode)?;
    let base_dir = std::env::var_os(ENV_BENCH_DIR).map_or_else(std::env::temp_dir, PathBuf::from);
    print_header(&config, &base_dir, bench_mode);
    let values = ValuePool::new(config.seed, config.value_size_bytes);
    let reads = Reads::new(&config, &values);

    let mut all_ok = true;
    let mut measured = Vec::new();
    for (name, open) in SUBJECTS {
        eprintln!("{name}:");
        let mut out = Measured::default();
        let outcome = best_load(name, open, &base_dir, &config, &values, &mut out).and_then(
            |(dir, subject)| {
                run_reads_and_compaction(name, subject, &config, &reads, &mut out)?;
                Ok(dir.close()?)
            },
        );
        if let Err(error) = outcome {
            eprintln!("  {name}: FAILED: {error}");
            all_ok = false;
        }
        measured.push(out);
    }
    println!();
    print!("{}", build_table(&config, &measured).render());
    println!(
        "ratios are oxcd / anchor: above 1.00x wins on 'higher' rows and loses on 'lower' rows"
    );
    Ok(all_ok)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        return ExitCode::SUCCESS; // test listers (nextest) find no unit tests here
    }
    let bench_mode = args.iter().any(|a| a == "--bench");
    match run(bench_mode) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("engine benchmark: {error}");
            ExitCode::FAILURE
        }
    }
}
