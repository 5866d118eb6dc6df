//! Building and running the bbolt format oracle (`tests/oracle/bboltoracle`, Go, bbolt 1.3.6).
//!
//! The oracle is built once per test process by `scripts/go-build-offline.sh` into
//! `<workspace>/target/oracle/`. The build script writes under a temporary name and renames, so
//! test binaries building concurrently never run a half-written file, and Go's build cache makes
//! every build after the first one take about a second.
//!
//! Exit codes of the oracle: 0 success, 1 `check` found problems, 2 anything else (including a
//! bbolt panic on a corrupt file). Every non-zero exit is an [`Error`] here, carrying the
//! oracle's output.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use crate::spec::{Model, Spec};
use crate::{Error, Result};

/// A built oracle binary.
#[derive(Debug)]
pub struct Oracle {
    bin: PathBuf,
}

/// The workspace root (the directory holding the workspace `Cargo.toml`).
pub fn workspace_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir).to_path_buf()
}

impl Oracle {
    /// The oracle, built on first use in this process. A failed build (Go or the bbolt sources
    /// missing) is an error naming what to install; it is reported again on every call.
    pub fn get() -> Result<&'static Oracle> {
        static ORACLE: OnceLock<Result<Oracle, String>> = OnceLock::new();
        ORACLE
            .get_or_init(|| Oracle::build().map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|e| Error::msg(e.clone()))
    }

    fn build() -> Result<Oracle> {
        let root = workspace_root();
        let out_dir = root.join("target").join("oracle");
        let script = root.join("scripts").join("go-build-offline.sh");
        let bin = out_dir.join("bboltoracle");
        let output = Command::new("bash")
            .arg(&script)
            .arg(root.join("tests").join("oracle").join("bboltoracle"))
            .arg(&bin)
            .arg("go.etcd.io/bbolt")
            .output()
            .map_err(|e| Error::msg(format!("cannot run {}: {e}", script.display())))?;
        if !output.status.success() {
            return Err(Error::msg(format!(
                "building the bbolt oracle failed ({}); it needs Go (Debian golang-go) and bbolt \
                 1.3.6 sources (golang-github-coreos-bbolt-dev), which .ci/run installs:\n{}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim_end()
            )));
        }
        Ok(Oracle { bin })
    }

    /// The path of the oracle binary.
    pub fn path(&self) -> &Path {
        &self.bin
    }

    /// bbolt's verdict on `db`: `Ok` when `tx.Check()` and the oracle's own walk find nothing,
    /// otherwise an error listing every problem.
    pub fn check(&self, db: &Path) -> Result<()> {
        let output = self.run(&["check".as_ref(), db.as_os_str()])?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        if output.status.success() && stdout.trim() == "ok" {
            return Ok(());
        }
        Err(Error::msg(format!(
            "bbolt check of {} failed ({}):\n{}{}",
            db.display(),
            output.status,
            tail(&stdout, 40),
            tail(&String::from_utf8_lossy(&output.stderr), 20)
        )))
    }

    /// The whole content of `db` as bbolt reads it, in bbolt's iteration order.
    pub fn dump(&self, db: &Path) -> Result<Spec> {
        let output = self.run(&["dump".as_ref(), db.as_os_str()])?;
        self.ensure_success("dump", db, &output)?;
        serde_json::from_slice(&output.stdout)
            .map_err(|e| Error::msg(format!("oracle dump of {}: bad JSON: {e}", db.display())))
    }

    /// The content of `db` as bbolt reads it, as a [`Model`] (the dump's order is checked).
    pub fn dump_model(&self, db: &Path) -> Result<Model> {
        self.dump(db)?
            .dump_to_model()
            .map_err(|e| e.context(format!("oracle dump of {}", db.display())))
    }

    /// Has bbolt create the new file `db` holding `spec` (see the oracle's `write` command).
    /// The spec travels through `<db>.spec.json`, which is removed afterwards.
    pub fn write(&self, db: &Path, spec: &Spec) -> Result<()> {
        let mut spec_path = db.as_os_str().to_owned();
        spec_path.push(".spec.json");
        let spec_path = PathBuf::from(spec_path);
        std::fs::write(&spec_path, serde_json::to_vec(spec)?)?;
        let output = self.run(&["write".as_ref(), db.as_os_str(), spec_path.as_os_str()]);
        std::fs::remove_file(&spec_path)?;
        self.ensure_success("write", db, &output?)
    }

    fn run(&self, args: &[&std::ffi::OsStr]) -> Result<Output> {
        Command::new(&self.bin)
            .args(args)
            .output()
            .map_err(|e| Error::msg(format!("cannot run the oracle {}: {e}", self.bin.display())))
    }

    fn ensure_success(&self, what: &str, db: &Path, output: &Output) -> Result<()> {
        if output.status.success() {
            return Ok(());
        }
        Err(Error::msg(format!(
            "oracle {what} {} failed ({}):\n{}",
            db.display(),
            output.status,
            tail(&String::from_utf8_lossy(&output.stderr), 20)
        )))
    }
}

/// The last `lines` lines of `text`, each ending in a newline.
fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    let skip = all.len().saturating_sub(lines);
    let mut out = String::new();
    if skip > 0 {
        out.push_str(&format!("[{skip} earlier lines]\n"));
    }
    for line in &all[skip..] {
        out.push_str(line);
        out.push('\n');
    }
    out
}
