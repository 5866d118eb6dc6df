//! Shared helpers for the engine's acceptance tests (`model`, `crash`, `corrupt`).
//!
//! Owns: the `BTreeMap` model of a bucket tree ([`ModelBucket`]), a walker that reads a whole
//! database into that model without trusting the engine ([`read_tree`]: engine errors, runaway
//! cursors and inconsistent answers all come back as values, never as panics), a readable
//! first-difference report, deterministic value bytes, and [`run_test_in_child`], which re-runs
//! one test of the current test binary in a child process so that an abort (SIGBUS, stack
//! overflow) or a hang is reported with the child's last output instead of killing the run.
//!
//! Invariant: nothing here panics on engine output except [`Must::must`], which is meant for
//! calls that the calling test expects to succeed.
#![allow(dead_code)] // each test binary uses a different subset

use std::collections::BTreeMap;
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use oxcd_engine::{BucketId, Error, TxRead};

/// A bucket as the tests expect it: ordered entries plus the bucket's sequence.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ModelBucket {
    pub entries: BTreeMap<Vec<u8>, Entry>,
    pub sequence: u64,
}

/// One key of a bucket: a plain value or a nested bucket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    Value(Vec<u8>),
    Bucket(ModelBucket),
}

/// Totals over a subtree, used to keep random tests within a size budget.
#[derive(Clone, Copy, Debug, Default)]
pub struct ModelSize {
    pub values: usize,
    pub buckets: usize,
    pub bytes: usize,
}

impl ModelBucket {
    pub fn bucket(&self, path: &[Vec<u8>]) -> Option<&ModelBucket> {
        let mut b = self;
        for name in path {
            match b.entries.get(name) {
                Some(Entry::Bucket(child)) => b = child,
                _ => return None,
            }
        }
        Some(b)
    }

    pub fn bucket_mut(&mut self, path: &[Vec<u8>]) -> Option<&mut ModelBucket> {
        let mut b = self;
        for name in path {
            match b.entries.get_mut(name) {
                Some(Entry::Bucket(child)) => b = child,
                _ => return None,
            }
        }
        Some(b)
    }

    /// Every nested bucket's path, parents before children.
    pub fn bucket_paths(&self) -> Vec<Vec<Vec<u8>>> {
        let mut out = Vec::new();
        let mut stack = vec![(Vec::new(), self)];
        while let Some((path, b)) = stack.pop() {
            for (name, e) in &b.entries {
                if let Entry::Bucket(child) = e {
                    let mut p: Vec<Vec<u8>> = path.clone();
                    p.push(name.clone());
                    out.push(p.clone());
                    stack.push((p, child));
                }
            }
        }
        out
    }

    pub fn size(&self) -> ModelSize {
        let mut s = ModelSize::default();
        for (k, e) in &self.entries {
            s.bytes += k.len();
            match e {
                Entry::Value(v) => {
                    s.values += 1;
                    s.bytes += v.len();
                }
                Entry::Bucket(b) => {
                    let c = b.size();
                    s.buckets += 1 + c.buckets;
                    s.values += c.values;
                    s.bytes += c.bytes;
                }
            }
        }
        s
    }
}

/// How far [`read_tree`] goes before it declares the engine's answers runaway.
#[derive(Clone, Copy, Debug)]
pub struct WalkOpts {
    /// Total entries over the whole tree; more means a cursor that does not terminate.
    pub max_entries: u64,
    /// Bucket nesting depth; deeper means a bucket that (indirectly) contains itself.
    pub max_depth: usize,
    /// Also compare `get` with the cursor's values and a last/prev walk with the first/next one.
    pub thorough: bool,
}

impl WalkOpts {
    pub const THOROUGH: WalkOpts = WalkOpts {
        max_entries: 10_000_000,
        max_depth: 64,
        thorough: true,
    };
}

/// Why a walk did not produce a tree.
#[derive(Debug)]
pub enum WalkError {
    /// The engine returned an error.
    Engine(Error),
    /// The engine answered Ok with something no valid database can contain.
    Inconsistent(String),
}

impl From<Error> for WalkError {
    fn from(e: Error) -> Self {
        WalkError::Engine(e)
    }
}

impl std::fmt::Display for WalkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WalkError::Engine(e) => write!(f, "engine error: {e} ({e:?})"),
            WalkError::Inconsistent(s) => write!(f, "inconsistent answer: {s}"),
        }
    }
}

/// Reads every bucket, key, value and sequence reachable from the root of `tx`.
/// The root's own sequence is not read (the model never sets it).
pub fn read_tree<T: TxRead>(tx: &T, opts: &WalkOpts) -> Result<ModelBucket, WalkError> {
    let mut budget = opts.max_entries;
    read_bucket(tx, tx.root(), true, 0, &mut budget, opts)
}

/// Reads one bucket (and everything below it) through a first/next cursor walk.
pub fn read_bucket<T: TxRead>(
    tx: &T,
    id: BucketId,
    is_root: bool,
    depth: usize,
    budget: &mut u64,
    opts: &WalkOpts,
) -> Result<ModelBucket, WalkError> {
    if depth > opts.max_depth {
        return Err(WalkError::Inconsistent(format!(
            "buckets nested deeper than {depth}"
        )));
    }
    let mut out = ModelBucket {
        sequence: if is_root { 0 } else { tx.sequence(id)? },
        ..ModelBucket::default()
    };
    let mut order: Vec<(Vec<u8>, bool)> = Vec::new();
    let mut cursor = tx.cursor(id)?;
    let mut item = cursor.first()?;
    while let Some(it) = item {
        if *budget == 0 {
            return Err(WalkError::Inconsistent("cursor does not terminate".into()));
        }
        *budget -= 1;
        if let Some((last, _)) = order.last() {
            if last.as_slice() >= it.key {
                return Err(WalkError::Inconsistent(format!(
                    "next() went from {} to {}, not ascending",
                    show(last),
                    show(it.key)
                )));
            }
        }
        order.push((it.key.to_vec(), it.is_bucket));
        let entry = if it.is_bucket {
            let Some(child) = tx.bucket(id, it.key)? else {
                return Err(WalkError::Inconsistent(format!(
                    "cursor says {} is a bucket, bucket() finds none",
                    show(it.key)
                )));
            };
            Entry::Bucket(read_bucket(tx, child, false, depth + 1, budget, opts)?)
        } else {
            if opts.thorough {
                let got = tx.get(id, it.key)?;
                if got != Some(it.value) {
                    return Err(WalkError::Inconsistent(format!(
                        "get({}) = {:?} bytes, cursor value has {} bytes",
                        show(it.key),
                        got.map(<[u8]>::len),
                        it.value.len()
                    )));
                }
            }
            Entry::Value(it.value.to_vec())
        };
        out.entries.insert(it.key.to_vec(), entry);
        item = cursor.next()?;
    }
    if opts.thorough {
        let backward = read_keys_backward(tx, id, order.len() as u64 + 1)?;
        let forward: Vec<_> = order.into_iter().rev().collect();
        if backward != forward {
            return Err(WalkError::Inconsistent(format!(
                "last/prev gave {} keys, first/next {} (or a different order)",
                backward.len(),
                forward.len()
            )));
        }
    }
    Ok(out)
}

/// Keys of one bucket (not descending into sub-buckets) through a last/prev walk.
pub fn read_keys_backward<T: TxRead>(
    tx: &T,
    id: BucketId,
    max_entries: u64,
) -> Result<Vec<(Vec<u8>, bool)>, WalkError> {
    let mut out = Vec::new();
    let mut cursor = tx.cursor(id)?;
    let mut item = cursor.last()?;
    while let Some(it) = item {
        if out.len() as u64 >= max_entries {
            return Err(WalkError::Inconsistent("prev() does not terminate".into()));
        }
        out.push((it.key.to_vec(), it.is_bucket));
        item = cursor.prev()?;
    }
    Ok(out)
}

/// Describes the first place where `got` differs from `expected`, or None when equal.
pub fn first_difference(expected: &ModelBucket, got: &ModelBucket) -> Option<String> {
    diff_bucket(expected, got, "/")
}

fn diff_bucket(expected: &ModelBucket, got: &ModelBucket, at: &str) -> Option<String> {
    if expected.sequence != got.sequence {
        return Some(format!(
            "bucket {at}: sequence expected {} got {}",
            expected.sequence, got.sequence
        ));
    }
    let mut e = expected.entries.iter().peekable();
    let mut g = got.entries.iter().peekable();
    loop {
        match (e.peek(), g.peek()) {
            (None, None) => return None,
            (Some((k, _)), None) => return Some(format!("bucket {at}: missing key {}", show(k))),
            (None, Some((k, _))) => return Some(format!("bucket {at}: extra key {}", show(k))),
            (Some((ek, ev)), Some((gk, gv))) => {
                if ek < gk {
                    return Some(format!("bucket {at}: missing key {}", show(ek)));
                }
                if gk < ek {
                    return Some(format!("bucket {at}: extra key {}", show(gk)));
                }
                if let Some(d) = diff_entry(ev, gv, &format!("{at}{}/", show(ek)), ek) {
                    return Some(d);
                }
                e.next();
                g.next();
            }
        }
    }
}

fn diff_entry(expected: &Entry, got: &Entry, at: &str, key: &[u8]) -> Option<String> {
    match (expected, got) {
        (Entry::Value(a), Entry::Value(b)) if a == b => None,
        (Entry::Value(a), Entry::Value(b)) => {
            let first = a.iter().zip(b.iter()).position(|(x, y)| x != y);
            Some(format!(
                "key {}: value expected {} bytes, got {} bytes (first differing byte {:?})",
                show(key),
                a.len(),
                b.len(),
                first
            ))
        }
        (Entry::Bucket(a), Entry::Bucket(b)) => diff_bucket(a, b, at),
        (Entry::Value(_), Entry::Bucket(_)) => {
            Some(format!("key {}: expected a value, got a bucket", show(key)))
        }
        (Entry::Bucket(_), Entry::Value(_)) => {
            Some(format!("key {}: expected a bucket, got a value", show(key)))
        }
    }
}

/// A short printable form of a key: text when it is printable ASCII, else hex; long keys cut.
pub fn show(bytes: &[u8]) -> String {
    let cut = &bytes[..bytes.len().min(24)];
    let mut s = if cut.iter().all(|b| b.is_ascii_graphic()) {
        format!("{:?}", String::from_utf8_lossy(cut))
    } else {
        let hex: String = cut.iter().map(|b| format!("{b:02x}")).collect();
        format!("0x{hex}")
    };
    if bytes.len() > cut.len() {
        s.push_str(&format!("..({} bytes)", bytes.len()));
    }
    s
}

/// Shows a bucket path such as `"a"/"b"`.
pub fn show_path(path: &[Vec<u8>]) -> String {
    if path.is_empty() {
        return "<root>".into();
    }
    path.iter().map(|p| show(p)).collect::<Vec<_>>().join("/")
}

/// SplitMix64: a tiny deterministic mixer for values that tests must be able to recompute.
pub fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// `len` pseudo-random bytes determined by `seed`.
pub fn pattern_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    let mut state = seed;
    while out.len() < len {
        state = splitmix64(state);
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Reads a numeric environment variable (for longer runs), falling back to `default`.
pub fn env_u64(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
        Err(_) => default,
    }
}

/// Unwraps engine results that the calling test expects to be Ok, naming the operation.
pub trait Must<T> {
    fn must(self, what: &str) -> T;
}

impl<T> Must<T> for Result<T, Error> {
    #[track_caller]
    fn must(self, what: &str) -> T {
        match self {
            Ok(v) => v,
            Err(e) => panic!("{what}: unexpected error: {e} ({e:?})"),
        }
    }
}

/// Set in a child process started by [`run_test_in_child`].
pub const CHILD_ENV: &str = "OXCD_ENGINE_TEST_CHILD";

/// True inside a child started by [`run_test_in_child`]: the test should run its body.
pub fn in_child() -> bool {
    std::env::var_os(CHILD_ENV).is_some()
}

/// Runs test `name` of this test binary in a child process (with [`CHILD_ENV`] set) and panics
/// with the tail of its output unless it passes within `deadline`. A body that aborts the
/// process (SIGBUS on a truncated mmap, stack overflow) or hangs is thereby reported as a
/// failure with the last progress lines the child printed.
pub fn run_test_in_child(name: &str, deadline: Duration) {
    let exe = std::env::current_exe().expect("current_exe");
    let mut child = Command::new(exe)
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn child test process");
    let stdout = drain(child.stdout.take().expect("piped stdout"));
    let stderr = drain(child.stderr.take().expect("piped stderr"));
    let started = Instant::now();
    let (status, timed_out) = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break (status, false);
        }
        if started.elapsed() > deadline {
            let _ = child.kill();
            break (child.wait().expect("wait"), true);
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = stdout.join().expect("stdout reader");
    let err = stderr.join().expect("stderr reader");
    let passed = status.success() && out.contains("1 passed");
    if timed_out || !passed {
        panic!(
            "child test {name} {} ({status})\n--- last stdout ---\n{}\n--- last stderr ---\n{}",
            if timed_out { "timed out" } else { "failed" },
            tail(&out, 30),
            tail(&err, 40)
        );
    }
}

/// Reads a pipe to its end on a thread, so the child never blocks on a full pipe.
pub fn drain(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}

/// The last `lines` lines of `text`.
pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
