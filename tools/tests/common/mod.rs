//! Shared harness of the `oxutl` integration tests: building data files with the engine,
//! running the real binary, and reading the engine's view of a file for comparison.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, MutexGuard};

use oxcd_engine::{BucketId, Db, Options, ReadTx, TxRead};
use serde_json::Value;

pub const PAGE_SIZE: u32 = 4096;

/// Held while this process has a data file open and while it spawns a child. flock locks
/// belong to the open file, and a child forked by another test thread holds a copy of every
/// descriptor until it execs, so without this a sibling's spawn could keep a just-closed
/// file locked long enough for oxutl to find it "locked by another process".
static FILE_AND_SPAWN: Mutex<()> = Mutex::new(());

pub fn exclusive() -> MutexGuard<'static, ()> {
    FILE_AND_SPAWN
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Spawns `command` with piped output under [`exclusive`] and waits for it. spawn() returns
/// only once the child has exec'd, so the guard covers the whole inheritance window.
pub fn run_child(command: &mut Command) -> std::process::Output {
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = {
        let _guard = exclusive();
        command.spawn().expect("spawn child")
    };
    child.wait_with_output().expect("wait for child")
}

pub struct Run {
    pub code: i32,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl Run {
    pub fn text(&self) -> String {
        String::from_utf8(self.stdout.clone()).expect("stdout is UTF-8")
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.stdout).expect("stdout is JSON")
    }

    /// Asserts the command succeeded and returns its stdout as (lossy) text.
    pub fn ok(&self) -> String {
        assert_eq!(self.code, 0, "exit code; stderr: {}", self.stderr);
        assert!(self.stderr.is_empty(), "unexpected stderr: {}", self.stderr);
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Asserts the command failed with exit 1 and exactly one stderr line naming `file`.
    pub fn failed_naming(&self, file: &Path) -> &str {
        assert_eq!(self.code, 1, "exit code; stderr: {}", self.stderr);
        assert_eq!(
            self.stderr.lines().count(),
            1,
            "one stderr line: {:?}",
            self.stderr
        );
        assert!(
            self.stderr.contains(&file.display().to_string()),
            "stderr names {}: {:?}",
            file.display(),
            self.stderr
        );
        &self.stderr
    }
}

pub fn oxutl<I, S>(args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let output = run_child(Command::new(env!("CARGO_BIN_EXE_oxutl")).args(args));
    Run {
        code: output.status.code().expect("exit code, not a signal"),
        stdout: output.stdout,
        stderr: String::from_utf8(output.stderr).expect("stderr is UTF-8"),
    }
}

/// `oxutl db <command> <path> <rest...>`
pub fn db_cmd(command: &str, path: &Path, rest: &[&str]) -> Run {
    let mut args: Vec<std::ffi::OsString> = vec!["db".into(), command.into(), path.into()];
    args.extend(rest.iter().map(|arg| arg.into()));
    oxutl(args)
}

pub fn write_options() -> Options {
    Options {
        page_size: PAGE_SIZE,
        no_sync: true,
        strict: true,
        ..Options::default()
    }
}

pub fn read_options() -> Options {
    Options {
        read_only: true,
        ..Options::default()
    }
}

/// Buckets: alpha {00ff => ff0001, a1 => one, a2 => two, inner {deep => value}},
/// beta {k0000..k0199 => 100 x 'v'} (several leaves under a branch), zeta {big => 10000 x 7}
/// (a leaf with overflow pages). The Db is closed on return so the binary can lock the file.
pub fn sample_db(dir: &Path) -> PathBuf {
    let path = dir.join("sample.db");
    let _guard = exclusive();
    let db = Db::open(&path, write_options()).expect("create sample db");
    db.update(|tx| {
        let root = tx.root();
        let alpha = tx.create_bucket(root, b"alpha")?;
        tx.put(alpha, b"a1", b"one")?;
        tx.put(alpha, b"a2", b"two")?;
        tx.put(alpha, &[0x00, 0xff], &[0xff, 0x00, 0x01])?;
        let inner = tx.create_bucket(alpha, b"inner")?;
        tx.put(inner, b"deep", b"value")?;
        let beta = tx.create_bucket(root, b"beta")?;
        for i in 0..200 {
            tx.put(beta, format!("k{i:04}").as_bytes(), &[b'v'; 100])?;
        }
        let zeta = tx.create_bucket(root, b"zeta")?;
        tx.put(zeta, b"big", &[7u8; 10_000])?;
        Ok(())
    })
    .expect("fill sample db");
    // A second transaction so the file has free pages and a non-trivial freelist.
    db.update(|tx| {
        let beta = tx.bucket(tx.root(), b"beta")?.expect("beta");
        tx.delete(beta, b"k0000")
    })
    .expect("second transaction");
    drop(db);
    path
}

#[derive(Debug, PartialEq, Eq)]
pub enum Entry {
    Bucket { sequence: u64 },
    Value(Vec<u8>),
}

/// Every bucket and key in the file, depth first, keyed by its full path.
pub fn dump(path: &Path) -> Vec<(Vec<Vec<u8>>, Entry)> {
    let _guard = exclusive();
    let db = Db::open(path, read_options()).expect("open for dump");
    db.view(|tx| {
        let mut entries = Vec::new();
        walk(tx, tx.root(), &mut Vec::new(), &mut entries)?;
        Ok(entries)
    })
    .expect("dump")
}

fn walk(
    tx: &ReadTx,
    bucket: BucketId,
    prefix: &mut Vec<Vec<u8>>,
    entries: &mut Vec<(Vec<Vec<u8>>, Entry)>,
) -> oxcd_engine::Result<()> {
    let mut items = Vec::new();
    let mut cursor = tx.cursor(bucket)?;
    let mut item = cursor.first()?;
    while let Some(current) = item {
        items.push((
            current.key.to_vec(),
            current.is_bucket,
            current.value.to_vec(),
        ));
        item = cursor.next()?;
    }
    for (key, is_bucket, value) in items {
        prefix.push(key.clone());
        if is_bucket {
            let child = tx.bucket(bucket, &key)?.expect("listed bucket exists");
            let sequence = tx.sequence(child)?;
            entries.push((prefix.clone(), Entry::Bucket { sequence }));
            walk(tx, child, prefix, entries)?;
        } else {
            entries.push((prefix.clone(), Entry::Value(value)));
        }
        prefix.pop();
    }
    Ok(())
}

/// The engine's own `Db::info` of the file, opened read-only.
pub fn engine_info(path: &Path) -> oxcd_engine::DbInfo {
    let _guard = exclusive();
    let db = Db::open(path, read_options()).expect("open read-only");
    db.info().expect("engine info")
}

pub fn pages_json(path: &Path) -> Vec<Value> {
    let run = db_cmd("pages", path, &["--json"]);
    run.ok();
    run.json().as_array().expect("pages array").clone()
}

pub fn page_json(path: &Path, id: u64) -> Value {
    let run = db_cmd("page", path, &[&id.to_string(), "--json"]);
    run.ok();
    run.json()
}

pub fn ids_of_type(pages: &[Value], kind: &str) -> Vec<u64> {
    let rows = pages.iter().filter(|row| row["type"] == kind);
    rows.map(|row| row["id"].as_u64().expect("id")).collect()
}

/// A file that held 2000 keys of which 1900 were deleted, plus a nested bucket with a sequence.
pub fn mostly_deleted_db(dir: &Path) -> PathBuf {
    let path = dir.join("big.db");
    let _guard = exclusive();
    let db = Db::open(&path, write_options()).expect("create");
    db.update(|tx| {
        let key = tx.create_bucket(tx.root(), b"key")?;
        for i in 0..2000u32 {
            tx.put(key, &i.to_be_bytes(), &[b'x'; 200])?;
        }
        let meta = tx.create_bucket(tx.root(), b"meta")?;
        tx.set_sequence(meta, 42)?;
        let nested = tx.create_bucket(meta, b"nested")?;
        tx.put(nested, b"consistent_index", &7u64.to_be_bytes())
    })
    .expect("fill");
    db.update(|tx| {
        let key = tx.bucket(tx.root(), b"key")?.expect("key bucket");
        for i in 100..2000u32 {
            tx.delete(key, &i.to_be_bytes())?;
        }
        Ok(())
    })
    .expect("delete most");
    drop(db);
    path
}
