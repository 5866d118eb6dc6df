//! WAL micro-benchmark: `oxcd_wal::Wal::save` with group commit against the physical limit of
//! the same disk, measured in the same run, with WAL/raw ratios.
//!
//! Run: `cargo bench -p oxcd-benches --bench wal`. Without cargo bench's `--bench` flag (for
//! example `cargo test --all-targets`) it runs a smoke-size version (60 ms per row), so the
//! benchmark is exercised end to end in a few seconds.
//!
//! Workload, as raft's ready loop drives the WAL: every `save` carries a batch of B normal
//! entries (term 1, consecutive indices from 1, 256-byte payloads) and one hard state, and is
//! one group commit: one write and one fdatasync, durable on return. B is 1, 8, 64 and 512.
//! Subjects, for each B:
//!
//! - `WAL io_uring`: `IoMode::Uring`. If io_uring is unavailable here (`probe_io_uring`, the
//!   probe `IoMode::Auto` falls back on, fails) its rows show `-` and the header says why; that
//!   is not a failure;
//! - `WAL pwrite`: `IoMode::Pwrite`, the fallback path;
//! - `raw`, the anchor and physical limit: a loop of one `pwrite` of as many bytes as the WAL
//!   writes per save (its frames, sized at the widest index and CRC values of a run; the 8-byte
//!   frame padding makes that equal to the WAL's, which the bytes/save column shows), appended
//!   into a file preallocated with `fallocate` to the WAL's segment size (64 MB) as the WAL's
//!   segments are, then one `fdatasync`. A full file is replaced by a fresh preallocated one
//!   outside the timed section, whereas the WAL cuts its segments inside `save` (a real cost).
//!
//! Every subject gets a fresh directory under one base directory: `OXCD_BENCH_DIR`, else the
//! cargo target directory the benchmark binary sits in, else the system temp dir; the header
//! names the device and file system (on tmpfs fdatasync reaches no disk and the numbers mean
//! little). For each B the three subjects are opened side by side, make a few untimed warm-up
//! saves, then take turns in time slices (`OXCD_WAL_BENCH_SLICE_MS`, default 250 ms) until each
//! has run `OXCD_WAL_BENCH_SECS` seconds (default 4): on a shared machine a neighbour's burst
//! of I/O then hits every subject alike instead of whichever ran at that moment. Only the time
//! inside the durable call (`save`, or pwrite + fdatasync) counts. A slice's rate is its saves
//! divided by that time; a row's syncs/s is the median over its slices (robust to the odd
//! disturbed slice), entries/s = syncs/s x B, MB/s = syncs/s x bytes written per save (1 MB =
//! 10^6 bytes); latency percentiles are over every save of the row. With the defaults the
//! whole benchmark takes about a minute.
//!
//! After every WAL run the log is read back with every CRC verified, and must hold exactly the
//! entries saved, in order, and the last hard state: a fast wrong WAL fails instead of winning.
//! A failure leaves `-` in its row and the process exits with status 1 after the table. Timings
//! are reported, never asserted: the goals (at batch 1, at least 0.90x the raw loop's syncs/s;
//! throughput growing with B) are printed as met or not met.

use std::error::Error;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use prost::Message as _;
use rustix::fs::FallocateFlags;
use tempfile::TempDir;

use oxcd_benches::disk::mount_of;
use oxcd_benches::grid;
use oxcd_benches::table::{format_ratio, format_value};
use oxcd_benches::timing::{per_second, Latencies};
use oxcd_benches::workload::ValuePool;
use oxcd_wal::layout::{append_frame, RecordType, DEFAULT_SEGMENT_SIZE_BYTES};
use oxcd_wal::{Entry, HardState, IoMode, RecordBody, Wal, WalOptions, WalReader};

type BoxError = Box<dyn Error>;
type BenchResult<T> = Result<T, BoxError>;

/// Entries per save, one table block each.
const BATCH_SIZES: [usize; 4] = [1, 8, 64, 512];
const ENTRY_DATA_BYTES: usize = 256;
const ENTRY_TERM: u64 = 1;
const VALUE_SEED: u64 = 0x6f78_6364; // "oxcd"
const WAL_METADATA: &[u8] = b"oxcd WAL benchmark";
/// The widest index a run can reach in practice (a 4-byte varint: 268 million entries), used
/// to size the raw loop's writes so they are never smaller than the WAL's.
const WIDEST_INDEX: u64 = (1 << 28) - 1;
/// The goal at batch 1: the WAL reaches this fraction of the raw loop's syncs/s.
const BATCH_1_GOAL_RATIO: f64 = 0.9;
const MB: f64 = 1e6;

const ENV_BENCH_DIR: &str = "OXCD_BENCH_DIR";
const ENV_SECS: &str = "OXCD_WAL_BENCH_SECS";
const ENV_SLICE_MS: &str = "OXCD_WAL_BENCH_SLICE_MS";

/// What is measured; `SUBJECTS` is the order they run in for each batch size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Subject {
    WalUring,
    WalPwrite,
    Raw,
}

const SUBJECTS: [Subject; 3] = [Subject::WalUring, Subject::WalPwrite, Subject::Raw];
/// The order of the table: the anchor first, then what is compared with it.
const TABLE_ORDER: [Subject; 3] = [Subject::Raw, Subject::WalUring, Subject::WalPwrite];

impl Subject {
    fn name(self) -> &'static str {
        match self {
            Subject::WalUring => "WAL io_uring",
            Subject::WalPwrite => "WAL pwrite",
            Subject::Raw => "raw pwrite+fdatasync",
        }
    }

    fn column(self) -> usize {
        SUBJECTS
            .iter()
            .position(|s| *s == self)
            .expect("every subject is in SUBJECTS")
    }
}

// ---------------------------------------------------------------------------------------------
// Parameters

struct Config {
    /// Time each subject is measured for in each row, in slices.
    measure_time: Duration,
    /// Length of one turn of one subject.
    slice_time: Duration,
    /// Untimed saves before the first slice.
    warmup_saves: u32,
    bench_mode: bool,
}

impl Config {
    /// `cargo bench` passes `--bench`; anything else (cargo test --all-targets) gets a smoke run.
    fn for_mode(bench_mode: bool) -> BenchResult<Config> {
        if !bench_mode {
            return Ok(Config {
                measure_time: Duration::from_millis(60),
                slice_time: Duration::from_millis(20),
                warmup_saves: 2,
                bench_mode,
            });
        }
        let secs = env_positive(ENV_SECS, 4.0)?;
        let slice_ms = env_positive(ENV_SLICE_MS, 250.0)?;
        let duration = |name: &str, secs: f64| {
            Duration::try_from_secs_f64(secs).map_err(|e| format!("{name}: {e}"))
        };
        Ok(Config {
            measure_time: duration(ENV_SECS, secs)?,
            slice_time: duration(ENV_SLICE_MS, slice_ms / 1e3)?,
            warmup_saves: 5,
            bench_mode,
        })
    }

    /// Turns each subject takes per row (at least one).
    fn slices(&self) -> u32 {
        let slices = self.measure_time.as_secs_f64() / self.slice_time.as_secs_f64();
        (slices.round() as u32).max(1)
    }
}

/// The number in variable `name`, or `default` when it is not set; must be positive.
fn env_positive(name: &str, default: f64) -> BenchResult<f64> {
    let Ok(text) = std::env::var(name) else {
        return Ok(default);
    };
    match text.trim().replace('_', "").parse::<f64>() {
        Ok(value) if value.is_finite() && value > 0.0 => Ok(value),
        _ => Err(format!("{name}={text:?}: not a positive number").into()),
    }
}

/// `OXCD_BENCH_DIR`, else the cargo target directory holding this binary
/// (`<target>/<profile>/deps/wal-<hash>`), else the system temp dir.
fn base_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os(ENV_BENCH_DIR) {
        return PathBuf::from(dir);
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| {
            let deps = exe.parent()?;
            if deps.file_name()? != "deps" {
                return None;
            }
            Some(deps.parent()?.parent()?.to_path_buf())
        })
        .unwrap_or_else(std::env::temp_dir)
}

// ---------------------------------------------------------------------------------------------
// What a save carries

/// One save's worth of work: B entries with consecutive indices and the hard state after them.
struct Batch {
    entries: Vec<Entry>,
    next_index: u64,
}

impl Batch {
    fn new(size: usize, values: &ValuePool) -> Batch {
        let entries = (0..size as u64)
            .map(|i| Entry::normal(ENTRY_TERM, 0, values.value(i).to_vec()))
            .collect();
        Batch {
            entries,
            next_index: 1,
        }
    }

    /// Gives the entries the next indices; returns the hard state saved with them.
    fn advance(&mut self) -> HardState {
        for entry in &mut self.entries {
            entry.index = self.next_index;
            self.next_index += 1;
        }
        HardState {
            term: ENTRY_TERM,
            vote: 1,
            commit: self.last_index(),
        }
    }

    fn last_index(&self) -> u64 {
        self.next_index - 1
    }

    /// The frames the WAL writes for one save of this batch, with the widest index and CRC
    /// values (frames are padded to 8 bytes, so in practice every save has exactly this size).
    fn widest_frames(&self) -> Vec<u8> {
        let mut frames = Vec::new();
        for entry in &self.entries {
            let entry = Entry {
                index: WIDEST_INDEX,
                ..entry.clone()
            };
            let body = entry.encode_to_vec();
            append_frame(&mut frames, RecordType::Entry, u32::MAX, Some(&body));
        }
        let state = HardState {
            term: ENTRY_TERM,
            vote: 1,
            commit: WIDEST_INDEX,
        };
        let body = state.encode_to_vec();
        append_frame(&mut frames, RecordType::State, u32::MAX, Some(&body));
        frames
    }
}

// ---------------------------------------------------------------------------------------------
// Measuring

/// Something that saves batches durably.
trait Saver {
    /// Untimed work before the next save (new indices, a fresh file).
    fn prepare(&mut self) -> BenchResult<()>;
    /// One durable save: the timed part.
    fn save(&mut self) -> BenchResult<()>;
    /// Ends the run (a WAL is closed and read back); returns the bytes written per save.
    fn finish(self: Box<Self>) -> BenchResult<f64>;
}

/// One subject during one row: its saver, in a directory of its own, and what it measured.
struct Contender {
    subject: Subject,
    dir: TempDir,
    saver: Box<dyn Saver>,
    latencies: Latencies,
    slice_rates: Vec<f64>,
}

impl Contender {
    /// Opens `subject`'s saver in a fresh directory and makes the warm-up saves.
    fn start(
        subject: Subject,
        batch_size: usize,
        base_dir: &Path,
        values: &ValuePool,
        config: &Config,
    ) -> BenchResult<Contender> {
        let dir = tempfile::Builder::new()
            .prefix("oxcd-wal-bench-")
            .tempdir_in(base_dir)?;
        let batch = Batch::new(batch_size, values);
        let mut saver: Box<dyn Saver> = match subject {
            Subject::WalUring => WalSaver::create(dir.path(), IoMode::Uring, batch)?,
            Subject::WalPwrite => WalSaver::create(dir.path(), IoMode::Pwrite, batch)?,
            Subject::Raw => RawSaver::create(dir.path(), &batch)?,
        };
        for _ in 0..config.warmup_saves {
            saver.prepare()?;
            saver.save()?;
        }
        Ok(Contender {
            subject,
            dir,
            saver,
            latencies: Latencies::with_capacity(4096),
            slice_rates: Vec::with_capacity(config.slices() as usize),
        })
    }

    /// One turn: saves for `slice_time` of wall-clock time, timing only the saves.
    fn run_slice(&mut self, slice_time: Duration) -> BenchResult<()> {
        let mut busy = Duration::ZERO;
        let mut saves = 0;
        let start = Instant::now();
        while start.elapsed() < slice_time {
            self.saver.prepare()?;
            let save_start = Instant::now();
            self.saver.save()?;
            let took = save_start.elapsed();
            self.latencies.record(took);
            busy += took;
            saves += 1;
        }
        self.slice_rates.push(per_second(saves, busy));
        Ok(())
    }

    fn finish(self, batch_size: usize) -> BenchResult<Summary> {
        let bytes_per_save = self.saver.finish()?;
        self.dir.close()?;
        Ok(Summary::new(
            self.latencies,
            self.slice_rates,
            batch_size,
            bytes_per_save,
        ))
    }
}

/// One row's result.
#[derive(Clone, Copy, Debug)]
struct Summary {
    syncs_per_s: f64,
    entries_per_s: f64,
    mb_per_s: f64,
    bytes_per_save: f64,
    p50_us: f64,
    p99_us: f64,
}

impl Summary {
    fn new(
        mut latencies: Latencies,
        slice_rates: Vec<f64>,
        batch_size: usize,
        bytes_per_save: f64,
    ) -> Summary {
        let syncs_per_s = median(slice_rates);
        Summary {
            syncs_per_s,
            entries_per_s: syncs_per_s * batch_size as f64,
            mb_per_s: syncs_per_s * bytes_per_save / MB,
            bytes_per_save,
            p50_us: latencies.quantile(0.50).as_secs_f64() * 1e6,
            p99_us: latencies.quantile(0.99).as_secs_f64() * 1e6,
        }
    }
}

/// The middle value (the mean of the two middle ones for an even count); zero when empty.
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    match values.len() {
        0 => 0.0,
        n if n % 2 == 1 => values[middle],
        _ => (values[middle - 1] + values[middle]) / 2.0,
    }
}

type Row = [Option<Summary>; 3];

/// Measures every subject at `batch_size`, interleaved in slices; failures are described in
/// `failures` and leave their subject's cell empty.
fn measure_row(
    batch_size: usize,
    base_dir: &Path,
    values: &ValuePool,
    config: &Config,
    uring_available: bool,
    failures: &mut Vec<String>,
) -> Row {
    let mut fail = |subject: Subject, error: BoxError| {
        let failure = format!("batch {batch_size}, {}: {error}", subject.name());
        eprintln!("  FAILED: {failure}");
        failures.push(failure);
    };
    let mut contenders = Vec::new();
    for subject in SUBJECTS {
        if subject == Subject::WalUring && !uring_available {
            continue;
        }
        match Contender::start(subject, batch_size, base_dir, values, config) {
            Ok(contender) => contenders.push(contender),
            Err(error) => fail(subject, error),
        }
    }
    for _ in 0..config.slices() {
        contenders.retain_mut(|contender| match contender.run_slice(config.slice_time) {
            Ok(()) => true,
            Err(error) => {
                fail(contender.subject, error);
                false
            }
        });
    }
    let mut row = [None; 3];
    for contender in contenders {
        let subject = contender.subject;
        match contender.finish(batch_size) {
            Ok(summary) => row[subject.column()] = Some(summary),
            Err(error) => fail(subject, error),
        }
    }
    row
}

// ---------------------------------------------------------------------------------------------
// The WAL

struct WalSaver {
    wal: Wal,
    batch: Batch,
    state: HardState,
}

impl WalSaver {
    fn create(dir: &Path, mode: IoMode, batch: Batch) -> BenchResult<Box<dyn Saver>> {
        let options = WalOptions {
            io: mode,
            ..WalOptions::default()
        };
        let wal = Wal::create(&dir.join("wal"), WAL_METADATA, options)?;
        if wal.io_mode() != mode {
            return Err(format!("asked for {mode:?}, the WAL uses {:?}", wal.io_mode()).into());
        }
        Ok(Box::new(WalSaver {
            wal,
            batch,
            state: HardState::default(),
        }))
    }
}

impl Saver for WalSaver {
    fn prepare(&mut self) -> BenchResult<()> {
        self.state = self.batch.advance();
        Ok(())
    }

    fn save(&mut self) -> BenchResult<()> {
        Ok(self.wal.save(Some(&self.state), &self.batch.entries)?)
    }

    fn finish(self: Box<Self>) -> BenchResult<f64> {
        let WalSaver { wal, batch, state } = *self;
        let dir = wal.dir().to_path_buf();
        drop(wal);
        let saves = batch.last_index() / batch.entries.len() as u64;
        let bytes = verify_wal(&dir, &batch, state)?;
        Ok(bytes as f64 / saves.max(1) as f64)
    }
}

/// Reads the closed WAL back, verifying every CRC, and checks it holds every entry `batch` gave
/// out (`1..=batch.last_index()`, each with its payload) in order, and ends with hard state
/// `state`. Returns the bytes of the entry and hard-state frames (what the saves wrote, plus
/// one hard state per segment cut).
fn verify_wal(dir: &Path, batch: &Batch, state: HardState) -> BenchResult<u64> {
    let last_index = batch.last_index();
    let mut reader = WalReader::open(dir)?;
    let mut expected_index = 1;
    let mut last_state = None;
    let mut save_bytes = 0;
    for record in &mut reader {
        let record = record?;
        match record.body {
            RecordBody::Entry(entry) => {
                // Slot k of every batch carries the same payload.
                let slot = (expected_index - 1) as usize % batch.entries.len();
                if entry.index != expected_index || entry.data != batch.entries[slot].data {
                    return Err(format!(
                        "read back: entry {} where entry {expected_index} with its payload \
                         belongs ({} offset {})",
                        entry.index, record.segment, record.offset
                    )
                    .into());
                }
                expected_index += 1;
                save_bytes += record.frame_bytes;
            }
            RecordBody::HardState(read) => {
                last_state = Some(read);
                save_bytes += record.frame_bytes;
            }
            _ => {}
        }
    }
    if let Some(torn) = reader.torn_tail() {
        return Err(format!(
            "read back: torn tail in {} at offset {}: {}",
            torn.segment, torn.offset, torn.what
        )
        .into());
    }
    if expected_index - 1 != last_index || last_state != Some(state) {
        return Err(format!(
            "read back: {} entries and hard state {last_state:?}, saved {last_index} entries and \
             {state:?}",
            expected_index - 1
        )
        .into());
    }
    Ok(save_bytes)
}

/// Whether io_uring works here, as the WAL's own probe (the one `IoMode::Auto` uses) finds it:
/// `Err` holds why not.
fn uring_status() -> Result<(), String> {
    oxcd_wal::probe_io_uring().map_err(|error| error.to_string())
}

// ---------------------------------------------------------------------------------------------
// The raw loop (the anchor)

/// Appends into files preallocated to the WAL's segment size; a full one is replaced by a
/// fresh one (and removed) outside the timed section.
struct RawLog {
    dir: PathBuf,
    file: File,
    offset: u64,
    files: u64,
}

impl RawLog {
    fn create(dir: &Path) -> io::Result<RawLog> {
        Ok(RawLog {
            dir: dir.to_path_buf(),
            file: preallocated(&raw_path(dir, 0))?,
            offset: 0,
            files: 1,
        })
    }

    fn make_room(&mut self, len: u64) -> io::Result<()> {
        if self.offset + len <= DEFAULT_SEGMENT_SIZE_BYTES {
            return Ok(());
        }
        self.file = preallocated(&raw_path(&self.dir, self.files))?;
        std::fs::remove_file(raw_path(&self.dir, self.files - 1))?;
        self.files += 1;
        self.offset = 0;
        Ok(())
    }

    fn append_durable(&mut self, data: &[u8]) -> io::Result<()> {
        self.file.write_all_at(data, self.offset)?;
        self.file.sync_data()?;
        self.offset += data.len() as u64;
        Ok(())
    }
}

fn raw_path(dir: &Path, number: u64) -> PathBuf {
    dir.join(format!("raw-{number}.log"))
}

/// A new file with `DEFAULT_SEGMENT_SIZE_BYTES` allocated, as the WAL preallocates segments.
fn preallocated(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(path)?;
    match rustix::fs::fallocate(
        &file,
        FallocateFlags::empty(),
        0,
        DEFAULT_SEGMENT_SIZE_BYTES,
    ) {
        Ok(()) => Ok(file),
        Err(rustix::io::Errno::OPNOTSUPP) => {
            file.set_len(DEFAULT_SEGMENT_SIZE_BYTES)?;
            Ok(file)
        }
        Err(error) => Err(error.into()),
    }
}

struct RawSaver {
    log: RawLog,
    frames: Vec<u8>,
}

impl RawSaver {
    fn create(dir: &Path, batch: &Batch) -> BenchResult<Box<dyn Saver>> {
        Ok(Box::new(RawSaver {
            log: RawLog::create(dir)?,
            frames: batch.widest_frames(),
        }))
    }
}

impl Saver for RawSaver {
    fn prepare(&mut self) -> BenchResult<()> {
        Ok(self.log.make_room(self.frames.len() as u64)?)
    }

    fn save(&mut self) -> BenchResult<()> {
        Ok(self.log.append_durable(&self.frames)?)
    }

    fn finish(self: Box<Self>) -> BenchResult<f64> {
        Ok(self.frames.len() as f64)
    }
}

// ---------------------------------------------------------------------------------------------
// Report

fn print_header(config: &Config, base_dir: &Path, uring: &Result<(), String>) {
    println!(
        "oxcd WAL benchmark{}",
        if config.bench_mode {
            ""
        } else {
            " (smoke run: no --bench flag)"
        }
    );
    println!(
        "  Wal::save of B entries ({ENTRY_DATA_BYTES}-byte payloads) + 1 hard state, one write + \
         one fdatasync each (group commit), B = {BATCH_SIZES:?}"
    );
    println!(
        "  anchor: raw loop of pwrite (same bytes per save, appended) + fdatasync into files \
         preallocated to {} MB",
        DEFAULT_SEGMENT_SIZE_BYTES / 1_000_000
    );
    println!(
        "  each row: {:.2} s per subject in {} interleaved slices of {:.0} ms ({ENV_SECS}, \
         {ENV_SLICE_MS}); syncs/s = median slice rate, counting time inside the durable call only",
        config.measure_time.as_secs_f64(),
        config.slices(),
        config.slice_time.as_secs_f64() * 1e3,
    );
    println!(
        "  directory: {} (set {ENV_BENCH_DIR} to move it)",
        base_dir.display()
    );
    match mount_of(base_dir) {
        Some(mount) => {
            println!(
                "  disk: {} ({}), mounted at {}",
                mount.source,
                mount.fs_type,
                mount.mount_point.display()
            );
            if mount.is_in_memory() {
                println!(
                    "  WARNING: {} keeps data in memory: fdatasync reaches no disk",
                    mount.fs_type
                );
            }
        }
        None => println!("  disk: unknown (no /proc/self/mountinfo entry found)"),
    }
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let uring = match uring {
        Ok(()) => "available".to_string(),
        Err(why) => format!("unavailable ({why}): its rows are skipped"),
    };
    println!("  kernel {}, io_uring {uring}", kernel.trim());
}

type Results = Vec<Row>;

fn render_table(results: &Results) -> String {
    let header = [
        "batch",
        "subject",
        "syncs/s",
        "entries/s",
        "MB/s",
        "bytes/save",
        "p50 us",
        "p99 us",
        "WAL/raw syncs",
    ];
    let mut lines = vec![header.iter().map(|h| h.to_string()).collect::<Vec<_>>()];
    for (row, batch_size) in results.iter().zip(BATCH_SIZES) {
        let raw = row[Subject::Raw.column()].map(|s| s.syncs_per_s);
        for subject in TABLE_ORDER {
            let summary = row[subject.column()];
            let number = |pick: fn(&Summary) -> f64| {
                summary
                    .as_ref()
                    .map_or("-".into(), |s| format_value(pick(s)))
            };
            let ratio = match subject {
                Subject::Raw => "anchor".to_string(),
                _ => format_ratio(summary.map(|s| s.syncs_per_s), raw),
            };
            lines.push(vec![
                batch_size.to_string(),
                subject.name().to_string(),
                number(|s| s.syncs_per_s),
                number(|s| s.entries_per_s),
                number(|s| s.mb_per_s),
                number(|s| s.bytes_per_save),
                number(|s| s.p50_us),
                number(|s| s.p99_us),
                ratio,
            ]);
        }
    }
    grid::render(&lines, 2)
}

/// The goals, each stated with the numbers it rests on and whether it was met.
fn goal_lines(results: &Results) -> Vec<String> {
    let met = |ok: bool| if ok { "met" } else { "NOT met" };
    let mut lines = Vec::new();
    for subject in [Subject::WalUring, Subject::WalPwrite] {
        let batch_1 = &results[0];
        let wal = batch_1[subject.column()].map(|s| s.syncs_per_s);
        let raw = batch_1[Subject::Raw.column()].map(|s| s.syncs_per_s);
        lines.push(match (wal, raw) {
            (Some(wal), Some(raw)) if raw > 0.0 => format!(
                "goal, batch 1: {} reaches {:.2}x the raw loop's syncs/s (at least {:.2}x: {})",
                subject.name(),
                wal / raw,
                BATCH_1_GOAL_RATIO,
                met(wal / raw >= BATCH_1_GOAL_RATIO)
            ),
            _ => format!("goal, batch 1: {} not measured", subject.name()),
        });
        let rates: Option<Vec<f64>> = results
            .iter()
            .map(|row| row[subject.column()].map(|s| s.entries_per_s))
            .collect();
        lines.push(match rates {
            Some(rates) => format!(
                "goal, growth: {} entries/s at B = {BATCH_SIZES:?}: {} (grows at every step: {})",
                subject.name(),
                rates
                    .iter()
                    .map(|r| format_value(*r))
                    .collect::<Vec<_>>()
                    .join(" -> "),
                met(rates.windows(2).all(|pair| pair[1] > pair[0]))
            ),
            None => format!("goal, growth: {} not measured at every B", subject.name()),
        });
    }
    lines
}

// ---------------------------------------------------------------------------------------------
// Driver

fn run(bench_mode: bool) -> BenchResult<bool> {
    let config = Config::for_mode(bench_mode)?;
    let base_dir = base_dir();
    std::fs::create_dir_all(&base_dir)
        .map_err(|e| format!("{}: {e} (set {ENV_BENCH_DIR})", base_dir.display()))?;
    let uring = uring_status();
    print_header(&config, &base_dir, &uring);

    let values = ValuePool::new(VALUE_SEED, ENTRY_DATA_BYTES);
    let mut failures = Vec::new();
    let mut results = Results::new();
    for batch_size in BATCH_SIZES {
        let row = measure_row(
            batch_size,
            &base_dir,
            &values,
            &config,
            uring.is_ok(),
            &mut failures,
        );
        let measured: Vec<String> = SUBJECTS
            .iter()
            .filter_map(|s| {
                let summary = row[s.column()]?;
                Some(format!(
                    "{} {}",
                    s.name(),
                    format_value(summary.syncs_per_s)
                ))
            })
            .collect();
        eprintln!("batch {batch_size}: syncs/s {}", measured.join(", "));
        results.push(row);
    }

    println!();
    print!("{}", render_table(&results));
    for line in goal_lines(&results) {
        println!("{line}");
    }
    for failure in &failures {
        println!("FAILED: {failure}");
    }
    Ok(failures.is_empty())
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
            eprintln!("WAL benchmark: {error}");
            ExitCode::FAILURE
        }
    }
}
