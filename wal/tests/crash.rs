//! Crash test: a child copy of this test binary appends numbered entries in batches, each
//! with a hard state, and prints "saved i" after each `save` returns; every few hundred
//! entries it also saves a snapshot mark, releases and purges old segments. The parent
//! SIGKILLs it at a random moment, then opens the WAL at the newest snapshot mark and proves
//! that every acknowledged entry is there, intact and consecutive, with the hard state of an
//! acknowledged or later batch. The next round's child continues from what was recovered, so recovery is
//! exercised on top of recovered files (including torn tails and interrupted cuts).
//!
//! A SIGKILL leaves the page cache intact, so this proves the ordering and atomicity of the
//! WAL's writes, renames and purges against a process crash, not durability against power
//! loss. Runs once per write path (`pwrite::...`, `uring::...`); the child learns its path from
//! `OXCD_WAL_CRASH_IO`. Knobs: `OXCD_CRASH_ROUNDS` (default 30 per path).

mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{entry, opts, splitmix64, state, METADATA};
use oxcd_wal::{read_records, Entry, IoMode, ReadAll, RecordBody, SnapshotMark, Wal, WalOptions};
use rand::Rng;

/// Environment variable that carries the WAL directory to the child.
const DIR_ENV: &str = "OXCD_WAL_CRASH_DIR";
/// Environment variable that carries the write path (`IoMode`) to the child.
const IO_ENV: &str = "OXCD_WAL_CRASH_IO";
/// How long a child runs if nobody kills it (a safety net against orphans).
const CHILD_LIFETIME: Duration = Duration::from_secs(60);
/// A snapshot mark is saved (and old segments purged) every this many entries.
const SNAPSHOT_EVERY: u64 = 300;
/// Largest batch a child saves in one call.
const MAX_BATCH: u64 = 8;

fn wal_opts(io: IoMode) -> WalOptions {
    WalOptions {
        max_wals: 3,
        ..opts(32 * 1024, io)
    }
}

/// The newest snapshot mark recorded in the WAL (the mark of `create` if none later).
fn newest_mark(dir: &Path) -> SnapshotMark {
    let records = read_records(dir).unwrap_or_else(|e| panic!("read_records: {e}"));
    records
        .iter()
        .filter_map(|r| match r.body {
            RecordBody::Snapshot(mark) => Some(mark),
            _ => None,
        })
        .next_back()
        .unwrap_or_default()
}

/// The last entry index a recovered WAL holds.
fn last_index(mark: SnapshotMark, read: &ReadAll) -> u64 {
    read.entries.last().map_or(mark.index, |e| e.index)
}

#[test]
#[ignore = "child process of crash_recovery_keeps_every_acknowledged_save"]
fn crash_child() {
    // Proves nothing alone: the workload that the crash test kills (does nothing without DIR_ENV).
    let Some(dir) = std::env::var_os(DIR_ENV) else {
        return;
    };
    let dir = Path::new(&dir);
    let io: IoMode = std::env::var(IO_ENV)
        .expect("child: write path")
        .parse()
        .expect("child: IoMode");
    let mark = newest_mark(dir);
    let (mut wal, read) = Wal::open(dir, mark, wal_opts(io)).expect("child: open");
    assert_eq!(
        wal.io_mode(),
        io,
        "child: writes through the path asked for"
    );
    let mut next = last_index(mark, &read) + 1;
    let deadline = Instant::now() + CHILD_LIFETIME;
    let mut out = std::io::stdout().lock();
    while Instant::now() < deadline {
        let batch = 1 + splitmix64(next) % MAX_BATCH;
        let entries: Vec<Entry> = (next..next + batch).map(entry).collect();
        let last = next + batch - 1;
        wal.save(Some(&state(last)), &entries).expect("child: save");
        writeln!(out, "saved {last}").expect("stdout");
        out.flush().expect("flush stdout");
        if next / SNAPSHOT_EVERY != (last + 1) / SNAPSHOT_EVERY {
            let mark = SnapshotMark {
                index: last,
                term: entry(last).term,
            };
            wal.save_snapshot(mark).expect("child: snapshot");
            wal.release_lock_to(last);
            wal.purge().expect("child: purge");
        }
        next = last + 1;
    }
}

/// Parses a "saved i" line (libtest may print its own text before it on the same line).
fn parse_saved(line: &str) -> Option<u64> {
    let at = line.rfind("saved ")?;
    line[at + "saved ".len()..].trim().parse().ok()
}

fn crash_recovery_keeps_every_acknowledged_save(io: IoMode) {
    // Proves: after SIGKILL at random moments every acknowledged entry survives, intact.
    let rounds = std::env::var("OXCD_CRASH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30u64);
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("wal");
    drop(Wal::create(&dir, METADATA, wal_opts(io)).expect("create"));
    let mut rng = rand::thread_rng();
    let mut recovered = 0u64;
    let mut purged_rounds = 0;
    for round in 0..rounds {
        let (acked, child_err) = run_and_kill(&dir, io, round, &mut rng);
        let floor = acked.unwrap_or(recovered);
        let mark = newest_mark(&dir);
        let (wal, read) = open_after_kill(&dir, mark, io).unwrap_or_else(|e| {
            panic!("round {round}: reopen after kill failed: {e}\nchild stderr:\n{child_err}")
        });
        drop(wal);
        let found = last_index(mark, &read);
        assert!(
            found >= floor,
            "round {round}: entry {floor} was acknowledged but the WAL ends at {found}"
        );
        assert!(
            found <= floor + MAX_BATCH,
            "round {round}: WAL ends at {found}, past any batch after {floor}"
        );
        let want: Vec<Entry> = (mark.index + 1..=found).map(entry).collect();
        assert!(
            read.entries == want,
            "round {round}: entries differ after {}",
            mark.index
        );
        // A kill can cut the write of an unacknowledged batch at a page boundary, keeping
        // some of its entries but not its hard state, which comes last.
        let committed = read.hard_state.commit;
        if found > mark.index && !(committed == 0 && floor == 0) {
            assert_eq!(read.hard_state, state(committed), "round {round}");
            assert!(
                (floor..=found).contains(&committed),
                "round {round}: hard state commits {committed}, acknowledged {floor}, found {found}"
            );
        }
        assert_eq!(read.metadata, METADATA);
        if mark.index > 0 {
            purged_rounds += 1;
        }
        println!("round {round}: acknowledged {acked:?}, recovered {found} after mark {mark:?}");
        recovered = found;
    }
    println!("{io}: {rounds} rounds, {recovered} entries, {purged_rounds} rounds after a purge");
    assert!(
        recovered > 0,
        "no child ever saved an entry: the test proved nothing"
    );
}

/// Opens the WAL a killed child wrote. The segment locks of a child killed during an
/// io_uring write are released only once the kernel has finished the ring's in-flight
/// operations, which can be a moment after the child was reaped: `Locked` is retried until a
/// deadline.
fn open_after_kill(dir: &Path, mark: SnapshotMark, io: IoMode) -> oxcd_wal::Result<(Wal, ReadAll)> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match Wal::open(dir, mark, wal_opts(io)) {
            Err(oxcd_wal::Error::Locked { .. }) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(1));
            }
            result => return result,
        }
    }
}

/// Starts a child writing through `io` on `dir`, kills it at a random moment and returns the
/// last entry it acknowledged (None if none) and its stderr.
fn run_and_kill(dir: &Path, io: IoMode, round: u64, rng: &mut impl Rng) -> (Option<u64>, String) {
    let mut child = Command::new(std::env::current_exe().expect("current_exe"))
        .args([
            "crash_child",
            "--exact",
            "--nocapture",
            "--include-ignored",
            "--test-threads=1",
        ])
        .env(DIR_ENV, dir)
        .env(IO_ENV, io.as_str())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let stderr = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut text);
        text
    });
    let (acks, acked_rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout);
        let mut line = String::new();
        while lines.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
            // A line cut short by the kill is not an acknowledgement.
            if line.ends_with('\n') {
                if let Some(i) = parse_saved(&line) {
                    let _ = acks.send(i);
                }
            }
            line.clear();
        }
    });
    let mut max_ack: Option<u64> = None;
    if rng.gen_bool(0.25) {
        // Anywhere, including while the child is still opening the WAL.
        std::thread::sleep(Duration::from_millis(rng.gen_range(0..100)));
    } else {
        // After a random number of saves (some rounds long enough to cut and purge), then a
        // random sub-save delay.
        let want = if rng.gen_bool(0.3) {
            rng.gen_range(100..400)
        } else {
            rng.gen_range(1..60)
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut seen = 0;
        while seen < want && Instant::now() < deadline {
            if let Ok(i) = acked_rx.recv_timeout(Duration::from_millis(100)) {
                max_ack = max_ack.max(Some(i));
                seen += 1;
            }
            if child.try_wait().expect("try_wait").is_some() {
                break;
            }
        }
        std::thread::sleep(Duration::from_micros(rng.gen_range(0..3000)));
    }
    let _ = child.kill();
    let status = child.wait().expect("wait for child");
    reader.join().expect("stdout reader");
    let err = stderr.join().expect("stderr reader");
    if status.signal() != Some(libc::SIGKILL) {
        panic!("round {round}: child ended by itself ({status}) before the kill:\n{err}");
    }
    (max_ack.max(acked_rx.try_iter().max()), err)
}

common::io_mode_tests!(crash_recovery_keeps_every_acknowledged_save);
