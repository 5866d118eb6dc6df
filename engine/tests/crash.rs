//! Crash test: a child copy of this test binary commits numbered transactions and prints
//! "committed i" after each commit returns; the parent SIGKILLs it at a random moment, reopens
//! the file and proves that it passes `check()` and holds exactly the state after some
//! transaction j with last-acknowledged <= j <= last-acknowledged + 1 (the kill may land after
//! the commit became durable but before the line was printed). The next round's child continues
//! from j, so recovery is exercised on top of recovered files.
//!
//! A SIGKILL leaves the page cache intact, so this proves atomicity and ordering of a commit's
//! writes against a process crash, not durability against power loss.
//!
//! Knobs: `OXCD_CRASH_ROUNDS` (default 40).

mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{
    env_u64, first_difference, pattern_bytes, read_tree, splitmix64, Entry, ModelBucket, Must,
    WalkOpts,
};
use oxcd_engine::{BucketId, Db, Options, TxRead, WriteTx};
use rand::Rng;

/// Environment variable that carries the database path to the child.
const DB_ENV: &str = "OXCD_CRASH_DB";
/// Keys older than this many transactions are deleted, so the file stays small.
const KEY_WINDOW: u64 = 150;
/// How long a child runs if nobody kills it (a safety net against orphans).
const CHILD_LIFETIME: Duration = Duration::from_secs(60);

type BucketPath = Vec<Vec<u8>>;

/// One change made by a numbered transaction.
enum Change {
    EnsureBucket(BucketPath),
    Put(BucketPath, Vec<u8>, Vec<u8>),
    Delete(BucketPath, Vec<u8>),
    DeleteBucket(BucketPath),
    NextSequence(BucketPath),
}

fn data_key(i: u64) -> Vec<u8> {
    format!("key{i:010}").into_bytes()
}

/// The value transaction `i` stores: empty, small, a few pages, or well over four pages.
fn data_value(i: u64) -> Vec<u8> {
    let h = splitmix64(i);
    let len = match h % 20 {
        0 => 0,
        1..=11 => (h >> 8) % 200,
        12..=17 => 200 + (h >> 8) % 4000,
        _ => 16_000 + (h >> 8) % 50_000,
    };
    pattern_bytes(i, len as usize)
}

fn batch_name(i: u64) -> Vec<u8> {
    format!("batch{i:010}").into_bytes()
}

/// Everything transaction `i` (1-based) does, in order.
fn changes(i: u64) -> Vec<Change> {
    let data = vec![b"data".to_vec()];
    let meta = vec![b"meta".to_vec()];
    let mut c = vec![
        Change::EnsureBucket(data.clone()),
        Change::EnsureBucket(meta.clone()),
        Change::Put(data.clone(), data_key(i), data_value(i)),
        Change::NextSequence(data.clone()),
    ];
    if i > KEY_WINDOW {
        c.push(Change::Delete(data.clone(), data_key(i - KEY_WINDOW)));
    }
    if i.is_multiple_of(7) {
        c.push(Change::Delete(data.clone(), data_key(i / 2)));
    }
    if i.is_multiple_of(40) {
        let batch = vec![batch_name(i)];
        let inner = vec![batch_name(i), b"inner".to_vec()];
        c.push(Change::EnsureBucket(batch.clone()));
        c.push(Change::EnsureBucket(inner.clone()));
        for k in 0..30u64 {
            let len = ((k * 977 + i) % 3000) as usize;
            c.push(Change::Put(
                batch.clone(),
                k.to_be_bytes().to_vec(),
                pattern_bytes(i + k, len),
            ));
        }
        for k in 0..5u64 {
            c.push(Change::Put(
                inner.clone(),
                vec![k as u8],
                pattern_bytes(i ^ k, 10),
            ));
        }
    }
    if i % 40 == 20 && i >= 100 {
        c.push(Change::DeleteBucket(vec![batch_name(i - 60)]));
    }
    c.push(Change::Put(
        meta,
        b"last".to_vec(),
        i.to_be_bytes().to_vec(),
    ));
    c
}

fn apply_to_model(model: &mut ModelBucket, i: u64) {
    for change in changes(i) {
        match change {
            Change::EnsureBucket(path) => {
                let (name, parent) = path.split_last().expect("non-empty path");
                let parent = model.bucket_mut(parent).expect("parent exists");
                parent
                    .entries
                    .entry(name.clone())
                    .or_insert(Entry::Bucket(ModelBucket::default()));
            }
            Change::Put(path, k, v) => {
                model
                    .bucket_mut(&path)
                    .expect("bucket")
                    .entries
                    .insert(k, Entry::Value(v));
            }
            Change::Delete(path, k) => {
                model.bucket_mut(&path).expect("bucket").entries.remove(&k);
            }
            Change::DeleteBucket(path) => {
                let (name, parent) = path.split_last().expect("non-empty path");
                model
                    .bucket_mut(parent)
                    .expect("parent")
                    .entries
                    .remove(name);
            }
            Change::NextSequence(path) => model.bucket_mut(&path).expect("bucket").sequence += 1,
        }
    }
}

fn resolve(tx: &WriteTx, path: &[Vec<u8>]) -> oxcd_engine::Result<BucketId> {
    let mut id = tx.root();
    for name in path {
        id = tx
            .bucket(id, name)?
            .expect("bucket created by an earlier change");
    }
    Ok(id)
}

fn apply_to_engine(tx: &mut WriteTx, i: u64) -> oxcd_engine::Result<()> {
    for change in changes(i) {
        match change {
            Change::EnsureBucket(path) => {
                let (name, parent) = path.split_last().expect("non-empty path");
                let pid = resolve(tx, parent)?;
                tx.create_bucket_if_not_exists(pid, name)?;
            }
            Change::Put(path, k, v) => {
                let id = resolve(tx, &path)?;
                tx.put(id, &k, &v)?;
            }
            Change::Delete(path, k) => {
                let id = resolve(tx, &path)?;
                tx.delete(id, &k)?;
            }
            Change::DeleteBucket(path) => {
                let (name, parent) = path.split_last().expect("non-empty path");
                let pid = resolve(tx, parent)?;
                tx.delete_bucket(pid, name)?;
            }
            Change::NextSequence(path) => {
                let id = resolve(tx, &path)?;
                assert_eq!(
                    tx.next_sequence(id)?,
                    i,
                    "the data bucket's sequence tracks i"
                );
            }
        }
    }
    Ok(())
}

fn options() -> Options {
    Options {
        strict: true,
        ..Options::default()
    }
}

/// The number of the last transaction whose state the database holds (0 when none).
fn last_committed(tree: &ModelBucket) -> u64 {
    match tree
        .bucket(&[b"meta".to_vec()])
        .and_then(|m| m.entries.get(&b"last"[..]))
    {
        Some(Entry::Value(v)) => u64::from_be_bytes(v.as_slice().try_into().expect("8 bytes")),
        _ => 0,
    }
}

#[test]
#[ignore = "child process of crash_recovery_keeps_every_acknowledged_commit"]
fn crash_child() {
    // Proves nothing alone: the workload that the crash test kills (does nothing without DB_ENV).
    let Some(path) = std::env::var_os(DB_ENV) else {
        return;
    };
    let db = Db::open(&path, options()).must("child: open");
    let tree = db
        .view(|tx| Ok(read_tree(tx, &WalkOpts::THOROUGH)))
        .must("child: view");
    let start = last_committed(&tree.expect("child: walk"));
    let deadline = Instant::now() + CHILD_LIFETIME;
    let mut out = std::io::stdout().lock();
    let mut i = start + 1;
    while Instant::now() < deadline {
        db.update(|tx| apply_to_engine(tx, i)).must("child: commit");
        writeln!(out, "committed {i}").expect("stdout");
        out.flush().expect("flush stdout");
        i += 1;
    }
}

/// Parses a "committed i" line (libtest may print its own text before it on the same line).
fn parse_committed(line: &str) -> Option<u64> {
    let at = line.rfind("committed ")?;
    line[at + "committed ".len()..].trim().parse().ok()
}

#[test]
fn crash_recovery_keeps_every_acknowledged_commit() {
    // Proves: after SIGKILL at random moments the file checks clean and keeps every acked commit.
    let rounds = env_u64("OXCD_CRASH_ROUNDS", 40);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("db");
    // Create the file here so that no child is ever killed halfway through creating it.
    drop(Db::open(&path, options()).must("create"));
    let mut rng = rand::thread_rng();
    let mut model = ModelBucket::default();
    let mut j = 0u64;
    let mut landed_after_ack = 0;
    for round in 0..rounds {
        let (acked, child_err) = run_and_kill(&path, round, &mut rng);
        let floor = acked.unwrap_or(j);
        let db = Db::open(&path, options()).unwrap_or_else(|e| {
            panic!("round {round}: reopen after kill failed: {e}\nchild stderr:\n{child_err}")
        });
        db.check()
            .unwrap_or_else(|e| panic!("round {round}: check after kill: {e}"));
        let tree = db
            .view(|tx| Ok(read_tree(tx, &WalkOpts::THOROUGH)))
            .must("view");
        let tree = tree.unwrap_or_else(|e| panic!("round {round}: walk after kill: {e}"));
        let found = last_committed(&tree);
        assert!(
            found >= floor,
            "round {round}: transaction {floor} was acknowledged but the file holds only {found}"
        );
        assert!(
            found <= floor + 1,
            "round {round}: file holds {found}, child never got past {}",
            floor + 1
        );
        if acked.is_some_and(|a| found == a + 1) {
            landed_after_ack += 1;
        }
        for i in j + 1..=found {
            apply_to_model(&mut model, i);
        }
        if let Some(d) = first_difference(&model, &tree) {
            panic!("round {round}: file holds transaction {found} but differs from its state: {d}");
        }
        j = found;
        println!("round {round}: acknowledged {acked:?}, recovered {found}");
    }
    println!("{rounds} rounds, {j} transactions, {landed_after_ack} kills between commit and ack");
    assert!(
        j > 0,
        "no child ever committed a transaction: the test proved nothing"
    );
}

/// Starts a child on `path`, kills it at a random moment and returns the last transaction it
/// acknowledged (None if none) and its stderr.
fn run_and_kill(path: &Path, round: u64, rng: &mut impl Rng) -> (Option<u64>, String) {
    let mut child = Command::new(std::env::current_exe().expect("current_exe"))
        .args([
            "crash_child",
            "--exact",
            "--nocapture",
            "--include-ignored",
            "--test-threads=1",
        ])
        .env(DB_ENV, path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("piped stdout");
    let stderr = common::drain(child.stderr.take().expect("piped stderr"));
    let (acks, acked_rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout);
        let mut line = String::new();
        while lines.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
            // A line cut short by the kill is not an acknowledgement.
            if line.ends_with('\n') {
                if let Some(i) = parse_committed(&line) {
                    let _ = acks.send(i);
                }
            }
            line.clear();
        }
    });
    let mut max_ack: Option<u64> = None;
    if rng.gen_bool(0.3) {
        // Anywhere, including while the child is still opening the file.
        std::thread::sleep(Duration::from_millis(rng.gen_range(0..150)));
    } else {
        // After a random number of commits, then a random sub-commit delay.
        let want = rng.gen_range(1..40);
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
        std::thread::sleep(Duration::from_micros(rng.gen_range(0..5000)));
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
