//! A real etcd 3.4.23 child process — or oxcd, started with exactly the same flags — for
//! compatibility tests.
//!
//! [`Etcd::start`] picks free ports by binding port 0 on 127.0.0.1 and releasing them, starts
//! `etcd` with a fresh temporary data dir, and polls `etcdctl endpoint health` until it answers
//! or a deadline passes. Another process can grab a port between the probe and etcd's bind; etcd
//! then exits at once and the start is retried with new ports.
//!
//! [`Etcd::start_oxcd`] and [`Etcd::start_with_args`] start another [`Flavor`] (a binary that
//! takes etcd's flags) the same way, optionally with extra flags given to whichever server runs,
//! so one test can start etcd and oxcd identically and compare what etcdctl says to each.
//!
//! [`Etcd::stop`] sends SIGTERM (the server closes its backend cleanly) and waits with a deadline;
//! [`Etcd::kill`] sends SIGKILL (for crash tests); [`Etcd::restart`] stops and starts the same
//! binary again on the same data dir, ports and flags. Dropping an `Etcd` that still runs
//! SIGKILLs it, so a failing test leaves no process behind; the data dir is removed with it.
//!
//! Binaries: `$OXCD_ETCD_BIN` / `$OXCD_ETCDCTL_BIN`, else `etcd` / `etcdctl` from `PATH`. Both must
//! report version 3.4.23.

use std::fs::{File, OpenOptions};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::{bail, Error, Result};

/// The etcd version every compatibility test is written against.
pub const ETCD_VERSION: &str = "3.4.23";

/// The member name every flavor is started with, so `member list` names match.
pub const MEMBER_NAME: &str = "oxcd-test";

pub(crate) const START_ATTEMPTS: usize = 5;
pub(crate) const HEALTHY_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// How many log lines [`Etcd::log_tail`] and the cluster's `log_tail` show.
const LOG_TAIL_LINES: usize = 15;

/// Which server a member runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Flavor {
    /// Real etcd 3.4.23 (`$OXCD_ETCD_BIN`, else `etcd` from `PATH`).
    Etcd,
    /// Another binary taking etcd's flags, e.g. oxcd (`env!("CARGO_BIN_EXE_oxcd")`).
    Binary(PathBuf),
}

impl Flavor {
    /// A short name for messages: `etcd`, or the binary's file name.
    pub fn name(&self) -> String {
        match self {
            Flavor::Etcd => "etcd".to_string(),
            Flavor::Binary(path) => path.file_name().map_or_else(
                || path.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            ),
        }
    }
}

/// A running (or stopped) member, alone in its cluster.
pub struct Etcd {
    child: Option<Child>,
    dir: TempDir,
    flavor: Flavor,
    server_bin: PathBuf,
    extra_args: Vec<String>,
    client_url: String,
    peer_url: String,
    etcdctl: PathBuf,
}

fn etcd_bin() -> PathBuf {
    std::env::var_os("OXCD_ETCD_BIN").map_or_else(|| PathBuf::from("etcd"), PathBuf::from)
}

/// etcdctl as the harness finds it: `$OXCD_ETCDCTL_BIN`, else `etcdctl` from `PATH`.
pub fn etcdctl_bin() -> PathBuf {
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

/// A loopback port the OS just gave out and nobody listens on now.
pub(crate) fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// The server binary `flavor` runs and etcdctl, both checked to be [`ETCD_VERSION`] (the server
/// only when it is real etcd).
pub(crate) fn binaries(flavor: &Flavor) -> Result<(PathBuf, PathBuf)> {
    let etcdctl = etcdctl_bin();
    ensure_version(&etcdctl, "version", "etcd-client")?;
    let server_bin = match flavor {
        Flavor::Etcd => {
            let etcd = etcd_bin();
            ensure_version(&etcd, "--version", "etcd-server")?;
            etcd
        }
        Flavor::Binary(path) => path.clone(),
    };
    Ok((server_bin, etcdctl))
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
        Etcd::start_with_args(Flavor::Etcd, &[])
    }

    /// Starts `bin` (oxcd) with exactly the flags [`Etcd::start`] gives etcd, in a new temporary
    /// data dir, and waits until `etcdctl endpoint health` answers.
    pub fn start_oxcd(bin: &Path) -> Result<Etcd> {
        Etcd::start_with_args(Flavor::Binary(bin.to_path_buf()), &[])
    }

    /// Starts `flavor` like [`Etcd::start`], appending `extra_args` (e.g.
    /// `--quota-backend-bytes=2097152`) to the standard flags; they are kept for
    /// [`Etcd::restart`].
    pub fn start_with_args(flavor: Flavor, extra_args: &[&str]) -> Result<Etcd> {
        let (server_bin, etcdctl) = binaries(&flavor)?;
        let mut last_error = Error::msg(format!("{} never started", flavor.name()));
        for _ in 0..START_ATTEMPTS {
            let mut member = Etcd {
                child: None,
                dir: tempfile::Builder::new().prefix("oxcd-etcd-").tempdir()?,
                flavor: flavor.clone(),
                server_bin: server_bin.clone(),
                extra_args: extra_args.iter().map(|a| a.to_string()).collect(),
                client_url: format!("http://127.0.0.1:{}", free_port()?),
                peer_url: format!("http://127.0.0.1:{}", free_port()?),
                etcdctl: etcdctl.clone(),
            };
            match member.spawn_and_wait() {
                Ok(()) => return Ok(member),
                Err(e) => last_error = e,
            }
        }
        Err(last_error)
    }

    /// Stops the member (SIGTERM; a no-op if already stopped or killed) and starts the same
    /// binary again with the same flags, data dir and ports, waiting until it is healthy.
    pub fn restart(&mut self) -> Result<()> {
        self.stop()?;
        // The very same command line: with a member already in the data dir, etcd ignores the
        // initial-cluster flags, as an operator rerunning it expects.
        self.spawn_and_wait()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    /// Spawns the server (appending to its log) and waits for health; on failure the child is
    /// killed and the error carries the log tail.
    fn spawn_and_wait(&mut self) -> Result<()> {
        debug_assert!(self.child.is_none(), "spawn over a running member");
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())?;
        let child = self
            .command(log)?
            .spawn()
            .map_err(|e| Error::msg(format!("cannot start {}: {e}", self.server_bin.display())))?;
        self.child = Some(child);
        if let Err(e) = self.wait_healthy() {
            // The start already failed; a failure to reap adds nothing to that error.
            let _ = self.kill();
            return Err(e.context(self.log_tail()));
        }
        Ok(())
    }

    fn command(&self, log: File) -> Result<Command> {
        let mut cmd = Command::new(&self.server_bin);
        let (client, peer) = (&self.client_url, &self.peer_url);
        cmd.arg(format!("--name={MEMBER_NAME}"))
            .arg(format!("--data-dir={}", self.data_dir().display()))
            .arg(format!("--listen-client-urls={client}"))
            .arg(format!("--advertise-client-urls={client}"))
            .arg(format!("--listen-peer-urls={peer}"))
            .arg(format!("--initial-advertise-peer-urls={peer}"))
            .arg(format!("--initial-cluster={MEMBER_NAME}={peer}"))
            .arg("--initial-cluster-state=new")
            .args(&self.extra_args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        Ok(cmd)
    }

    fn wait_healthy(&mut self) -> Result<()> {
        let what = format!("{} to become healthy", self.flavor.name());
        let name = self.flavor.name();
        poll_until(HEALTHY_TIMEOUT, &what, || {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().transpose()) {
                bail!("{name} exited during start-up ({})", status?);
            }
            Ok(self
                .ctl(&["endpoint", "health", "--command-timeout=2s"])
                .ok()
                .map(|_| ()))
        })
    }

    /// Which server this member runs.
    pub fn flavor(&self) -> &Flavor {
        &self.flavor
    }

    /// The client URL, e.g. `http://127.0.0.1:40123`.
    pub fn client_url(&self) -> &str {
        &self.client_url
    }

    /// The peer URL, e.g. `http://127.0.0.1:40124`.
    pub fn peer_url(&self) -> &str {
        &self.peer_url
    }

    /// The `--data-dir` the member was started with (`member/snap/db` is the bbolt backend).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Path of the member's backend database file.
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
        stdout_of(args, &self.ctl_output(args, stdin)?)
    }

    /// Runs `etcdctl --endpoints=<this member> ARGS...` (feeding `stdin` if given) and returns
    /// everything it did — stdout, stderr, exit status — whether it succeeded or not. Only
    /// failing to run etcdctl at all is an error.
    pub fn ctl_output(&self, args: &[&str], stdin: Option<&str>) -> Result<Output> {
        run_etcdctl(&self.etcdctl, &self.client_url, args, stdin)
    }

    /// Sends SIGTERM and waits (with a deadline) for the server to exit. Stopping a stopped
    /// member is a no-op.
    pub fn stop(&mut self) -> Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        terminate(&mut child, &self.flavor.name()).map_err(|e| e.context(self.log_tail()))
    }

    /// Sends SIGKILL and reaps the process: a crash, with no chance to flush or close anything.
    /// Killing a stopped member is a no-op.
    pub fn kill(&mut self) -> Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        // kill() fails only if the child was already reaped, which `take` rules out; an
        // already-exited (zombie) child is still killable.
        child.kill()?;
        child.wait()?;
        Ok(())
    }

    /// The last lines of the server's log, for error messages.
    pub fn log_tail(&self) -> String {
        log_tail_of(&self.log_path(), &self.flavor.name())
    }
}

/// `NAME log tail:` and the last lines of the log file at `path` (nothing if it cannot be read).
pub(crate) fn log_tail_of(path: &Path, name: &str) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    format!(
        "{name} log tail:\n{}",
        lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
    )
}

/// Runs `ETCDCTL_API=3 etcdctl --endpoints=ENDPOINTS ARGS...` (feeding `stdin` if given) and
/// returns everything it did; only failing to run it at all is an error.
pub(crate) fn run_etcdctl(
    etcdctl: &Path,
    endpoints: &str,
    args: &[&str],
    stdin: Option<&str>,
) -> Result<Output> {
    let mut cmd = Command::new(etcdctl);
    cmd.env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoints}"))
        .args(args);
    Ok(match stdin {
        None => cmd.stdin(Stdio::null()).output()?,
        Some(text) => run_with_stdin(&mut cmd, text)?,
    })
}

/// etcdctl's stdout, or an error carrying its stderr when it exited non-zero.
pub(crate) fn stdout_of(args: &[&str], output: &Output) -> Result<String> {
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

/// Sends SIGTERM to `child` and waits (with [`STOP_TIMEOUT`]) for it to exit; past the deadline
/// it is SIGKILLed and the timeout is the error.
pub(crate) fn terminate(child: &mut Child, name: &str) -> Result<()> {
    // Once reaped (std keeps the status), the pid may belong to another process: never signal
    // it. A child that has not been reaped keeps its pid, even as a zombie.
    if child.try_wait()?.is_some() {
        return Ok(());
    }
    let pid = libc::pid_t::try_from(child.id())
        .map_err(|_| Error::msg(format!("{name} pid {} out of range", child.id())))?;
    signal_term(pid)?;
    let waited = poll_until(
        STOP_TIMEOUT,
        &format!("{name} to exit after SIGTERM"),
        || Ok(child.try_wait()?),
    );
    if waited.is_err() {
        let _ = child.kill();
        let _ = child.wait();
    }
    waited.map(|_| ())
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

/// Sends SIGTERM to `pid`, which must be a child of ours not yet reaped (see [`terminate`]). std
/// has no safe way to send a signal other than SIGKILL, hence the crate's only `unsafe`.
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
