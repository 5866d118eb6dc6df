//! A real etcd 3.4.23 child process for compatibility tests.
//!
//! [`Etcd::start`] picks free ports by binding port 0 on 127.0.0.1 and releasing them, starts
//! `etcd` with a fresh temporary data dir, and polls `etcdctl endpoint health` until it answers
//! or a deadline passes. Another process can grab a port between the probe and etcd's bind; etcd
//! then exits at once and the start is retried with new ports.
//!
//! [`Etcd::stop`] sends SIGTERM (etcd closes its backend cleanly) and waits with a deadline.
//! Dropping an `Etcd` that still runs SIGKILLs it, so a failing test leaves no process behind; the
//! data dir is removed with it.
//!
//! Binaries: `$OXCD_ETCD_BIN` / `$OXCD_ETCDCTL_BIN`, else `etcd` / `etcdctl` from `PATH`. Both must
//! report version 3.4.23.

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::{bail, Error, Result};

/// The etcd version every compatibility test is written against.
pub const ETCD_VERSION: &str = "3.4.23";

const START_ATTEMPTS: usize = 3;
const HEALTHY_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// A running (or stopped) etcd member, alone in its cluster.
pub struct Etcd {
    child: Option<Child>,
    dir: TempDir,
    client_url: String,
    etcdctl: PathBuf,
}

fn etcd_bin() -> PathBuf {
    std::env::var_os("OXCD_ETCD_BIN").map_or_else(|| PathBuf::from("etcd"), PathBuf::from)
}

fn etcdctl_bin() -> PathBuf {
    std::env::var_os("OXCD_ETCDCTL_BIN").map_or_else(|| PathBuf::from("etcdctl"), PathBuf::from)
}

/// Fails unless `bin VERSION_ARG` runs and names [`ETCD_VERSION`] (`etcd --version`,
/// `etcdctl version`).
fn ensure_version(bin: &Path, version_arg: &str, package: &str) -> Result<()> {
    let output = Command::new(bin).arg(version_arg).output().map_err(|e| {
        Error::msg(format!(
            "cannot run {} ({e}); install etcd {ETCD_VERSION} (Debian {package}, which .ci/run \
             installs) or set OXCD_ETCD_BIN/OXCD_ETCDCTL_BIN",
            bin.display()
        ))
    })?;
    let text = String::from_utf8_lossy(&output.stdout);
    let version_line = text
        .lines()
        .find(|l| l.to_ascii_lowercase().contains("version"))
        .unwrap_or("");
    if !version_line.ends_with(ETCD_VERSION) {
        bail!(
            "{} reports {:?}; these tests need etcd {ETCD_VERSION}",
            bin.display(),
            text.trim()
        );
    }
    Ok(())
}

fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// Calls `probe` every [`POLL_INTERVAL`] until it yields a value or `timeout` passes.
pub fn poll_until<T>(
    timeout: Duration,
    what: &str,
    mut probe: impl FnMut() -> Result<Option<T>>,
) -> Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe()? {
            return Ok(value);
        }
        if Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

impl Etcd {
    /// Starts etcd in a new temporary data dir and waits until it is healthy.
    pub fn start() -> Result<Etcd> {
        let etcd = etcd_bin();
        let etcdctl = etcdctl_bin();
        ensure_version(&etcd, "--version", "etcd-server")?;
        ensure_version(&etcdctl, "version", "etcd-client")?;
        let mut last_error = Error::msg("etcd never started");
        for _ in 0..START_ATTEMPTS {
            match Etcd::start_once(&etcd, &etcdctl) {
                Ok(started) => return Ok(started),
                Err(e) => last_error = e,
            }
        }
        Err(last_error)
    }

    fn start_once(etcd: &Path, etcdctl: &Path) -> Result<Etcd> {
        let dir = tempfile::Builder::new().prefix("oxcd-etcd-").tempdir()?;
        let client_url = format!("http://127.0.0.1:{}", free_port()?);
        let peer_url = format!("http://127.0.0.1:{}", free_port()?);
        let log = File::create(dir.path().join("etcd.log"))?;
        let child = Command::new(etcd)
            .arg("--name=oxcd-test")
            .arg(format!("--data-dir={}", dir.path().join("data").display()))
            .arg(format!("--listen-client-urls={client_url}"))
            .arg(format!("--advertise-client-urls={client_url}"))
            .arg(format!("--listen-peer-urls={peer_url}"))
            .arg(format!("--initial-advertise-peer-urls={peer_url}"))
            .arg(format!("--initial-cluster=oxcd-test={peer_url}"))
            .arg("--initial-cluster-state=new")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .map_err(|e| Error::msg(format!("cannot start {}: {e}", etcd.display())))?;
        let mut started = Etcd {
            child: Some(child),
            dir,
            client_url,
            etcdctl: etcdctl.to_path_buf(),
        };
        started
            .wait_healthy()
            .map_err(|e| e.context(started.log_tail()))?;
        Ok(started)
    }

    fn wait_healthy(&mut self) -> Result<()> {
        poll_until(HEALTHY_TIMEOUT, "etcd to become healthy", || {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().transpose()) {
                bail!("etcd exited during start-up ({})", status?);
            }
            Ok(self
                .ctl(&["endpoint", "health", "--command-timeout=2s"])
                .ok()
                .map(|_| ()))
        })
    }

    /// The client URL, e.g. `http://127.0.0.1:40123`.
    pub fn client_url(&self) -> &str {
        &self.client_url
    }

    /// The `--data-dir` etcd was started with (`member/snap/db` is the bbolt backend).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Path of etcd's backend database file.
    pub fn backend_path(&self) -> PathBuf {
        self.data_dir().join("member").join("snap").join("db")
    }

    /// Runs `etcdctl --endpoints=<this member> ARGS...` and returns its stdout; a non-zero exit
    /// is an error carrying stderr.
    pub fn ctl(&self, args: &[&str]) -> Result<String> {
        self.ctl_with_stdin(args, None)
    }

    /// Like [`Etcd::ctl`], feeding `stdin` to etcdctl (for `txn`).
    pub fn ctl_with_stdin(&self, args: &[&str], stdin: Option<&str>) -> Result<String> {
        let mut cmd = Command::new(&self.etcdctl);
        cmd.env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", self.client_url))
            .args(args);
        let output = match stdin {
            None => cmd.stdin(Stdio::null()).output()?,
            Some(text) => run_with_stdin(&mut cmd, text)?,
        };
        if !output.status.success() {
            bail!(
                "etcdctl {} failed ({}): {}",
                args.join(" "),
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Sends SIGTERM and waits (with a deadline) for etcd to exit. Stopping a stopped member is
    /// a no-op.
    pub fn stop(&mut self) -> Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let pid = libc::pid_t::try_from(child.id())
            .map_err(|_| Error::msg(format!("etcd pid {} out of range", child.id())))?;
        signal_term(pid)?;
        let waited = poll_until(STOP_TIMEOUT, "etcd to exit after SIGTERM", || {
            Ok(child.try_wait()?)
        });
        if waited.is_err() {
            let _ = child.kill();
            let _ = child.wait();
        }
        waited.map(|_| ()).map_err(|e| e.context(self.log_tail()))
    }

    /// The last lines of etcd's log, for error messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.path().join("etcd.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        format!(
            "etcd log tail:\n{}",
            lines[lines.len().saturating_sub(15)..].join("\n")
        )
    }
}

fn run_with_stdin(cmd: &mut Command, text: &str) -> Result<Output> {
    use std::io::Write;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(text.as_bytes())?;
    }
    Ok(child.wait_with_output()?)
}

/// Sends SIGTERM to `pid`. std has no safe way to send a signal other than SIGKILL, hence the
/// crate's only `unsafe`.
#[allow(unsafe_code)]
fn signal_term(pid: libc::pid_t) -> Result<()> {
    // SAFETY: kill(2) takes plain integers and touches no memory of ours; `pid` is our own child,
    // not yet waited for, so it cannot have been recycled for another process.
    let rc = unsafe { libc::kill(pid, libc::SIGTERM) };
    if rc != 0 {
        return Err(Error::msg(format!(
            "kill({pid}, SIGTERM): {}",
            std::io::Error::last_os_error()
        )));
    }
    Ok(())
}

impl Drop for Etcd {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
