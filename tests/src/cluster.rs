//! A cluster of several members — real etcd 3.4.23, or oxcd started with the same flags — for
//! multi-member integration tests.
//!
//! [`Cluster::start`] starts `size` members named `m0`, `m1`, … on 127.0.0.1 with ports the OS
//! picks, one temporary dir each (data dir `data/`, log `server.log`), a cluster token unique to
//! this cluster, `--initial-cluster-state=new`, and waits until every member answers
//! `etcdctl endpoint health` (a multi-member cluster serves only once a quorum is up).
//! [`Cluster::start_with_proxies`] puts a [`FaultProxy`] in front of each member's peer port and
//! advertises the proxy's address as the member's peer URL, so peers reach the member only
//! through it.
//!
//! Which traffic a member's proxy carries depends on the peer protocol. In oxcd's
//! (CLUSTERING-NOTES f1) every connection is dialed by the sender, so a member's proxy carries
//! everything sent *to* it. In etcd's (rafthttp) the *receiver* of a stream dials the sender:
//! what B sends to A over a stream travels back on a connection A opened to B's proxy. B's
//! proxy thus carries what B sends over streams (`Direction::FromTarget`) and what others send
//! to B over pipelines and snapshots (`Direction::ToTarget`), but not the stream messages others
//! send to B: blackholing B's proxy silences B without cutting the leader's appends to B. Once
//! a silenced stream hits rafthttp's 5 s read timeout, B falls back to pipelines, which it dials
//! to the *others'* proxies. Only blackholing every proxy cuts an etcd member off for good.
//!
//! Every member runs with `--heartbeat-interval=100 --election-timeout=1000`, then the test's
//! extra flags. Both etcd (Go's flag package) and oxcd keep the last value of a repeated flag,
//! so the extra flags override anything the harness sets, including `--initial-cluster` and
//! `--initial-cluster-state` (see [`Cluster::set_args`]).
//!
//! Between picking ports and binding them another process can take one; the member exits at
//! once and the whole cluster start is retried on new ports (five attempts in all). A start
//! that merely never becomes healthy is not retried: its error carries every member's log tail.
//!
//! Lifecycle methods ([`Cluster::kill`], [`Cluster::stop`], [`Cluster::start_member`]) take
//! `&self`, so one thread can kill a member while others write through the cluster. A running
//! member is one the harness started and has not stopped or killed, and which has not exited.
//! Dropping a `Cluster` SIGKILLs every member still running and removes every dir.
//!
//! Member indexes are the order of start (and of [`Cluster::reserve_member`]); an index out of
//! range is a bug in the calling test and panics.
//!
//! What tests ask of a running cluster (local reads, revisions, HashKV convergence, `member
//! list`, membership changes past the strict reconfiguration check) lives in `cluster_ops`,
//! re-exported here.

use std::fs::OpenOptions;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use tempfile::TempDir;

use crate::cluster_ops::parse_member_list;
use crate::etcd::{
    binaries, log_tail_of, poll_until, run_etcdctl, stdout_of, terminate, Flavor, HEALTHY_TIMEOUT,
    START_ATTEMPTS,
};
use crate::proxy::FaultProxy;
use crate::{bail, ensure, Error, Result};

pub use crate::cluster_ops::{free_peer_url, initial_cluster_of, ListedMember, UNHEALTHY_CLUSTER};

/// Raft timing every member starts with, before the test's extra flags: etcd's defaults, said
/// out loud so both flavors run the same.
pub const DEFAULT_TIMING_ARGS: [&str; 2] = ["--heartbeat-interval=100", "--election-timeout=1000"];

/// How long one etcdctl probe (health, status, hashkv) may take.
pub(crate) const PROBE_TIMEOUT_ARG: &str = "--command-timeout=3s";
const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// How long a probe waits for a member's client port to accept a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

/// Makes cluster tokens unique within this process; the pid and clock make them unique across.
static CLUSTER_SEQUENCE: AtomicU64 = AtomicU64::new(0);

/// What `etcdctl endpoint status -w json` reports for one member (fields etcd leaves out when
/// zero are zero).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemberStatus {
    /// The answering member's ID.
    pub member_id: u64,
    /// The leader it knows of; 0 when it knows none.
    pub leader: u64,
    /// Its raft term.
    pub raft_term: u64,
    /// Its last raft index.
    pub raft_index: u64,
    /// Its applied raft index.
    pub raft_applied_index: u64,
    /// Its current MVCC revision.
    pub revision: i64,
    /// Whether it is a learner.
    pub is_learner: bool,
}

/// The response header etcdctl prints in JSON (the fields these probes read).
#[derive(Deserialize, Default)]
pub(crate) struct Header {
    #[serde(default)]
    pub(crate) member_id: u64,
    #[serde(default)]
    pub(crate) revision: i64,
}

#[derive(Deserialize)]
struct StatusRow {
    #[serde(rename = "Status")]
    status: StatusBody,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StatusBody {
    #[serde(default)]
    header: Header,
    #[serde(default)]
    leader: u64,
    #[serde(default)]
    raft_term: u64,
    #[serde(default)]
    raft_index: u64,
    #[serde(default)]
    raft_applied_index: u64,
    #[serde(default)]
    is_learner: bool,
}

/// One member slot: its identity, ports and flags, and the process when one runs.
struct Member {
    name: String,
    dir: TempDir,
    client_url: String,
    /// Where the member listens for peers (`--listen-peer-urls`).
    listen_peer_url: String,
    /// What it advertises (`--initial-advertise-peer-urls`): its proxy's address, if any.
    peer_url: String,
    proxy: Option<FaultProxy>,
    /// `--initial-cluster`; empty while the slot is only reserved.
    initial_cluster: String,
    initial_cluster_state: &'static str,
    extra_args: Vec<String>,
    child: Mutex<Option<Child>>,
    /// The member's client and peer ports, bound by the harness from reservation until the
    /// first spawn, so that no other slot, proxy or process is given them meanwhile.
    held_ports: Mutex<Option<[TcpListener; 2]>>,
    /// Cached once known; cleared by [`Cluster::wipe`], which gives the slot a new identity.
    member_id: Mutex<Option<u64>>,
}

/// Locks ignoring poisoning: a panicking test thread must not hide the processes from `Drop`.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

impl Member {
    fn log_path(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }
}

/// Why a cluster start attempt failed.
enum StartFailure {
    /// A member exited during start-up (a port taken between probe and bind): try new ports.
    Exited(Error),
    /// Anything else: give up.
    Fatal(Error),
}

/// Several members of one cluster, each a child process (or a reserved, not yet started slot).
pub struct Cluster {
    flavor: Flavor,
    server_bin: PathBuf,
    etcdctl: PathBuf,
    token: String,
    with_proxies: bool,
    members: Vec<Member>,
}

impl Cluster {
    /// Starts `size` members of `flavor` as a new cluster and waits (60 s) until every one
    /// answers `endpoint health`. `extra_args` go last on every member's command line.
    pub fn start(flavor: Flavor, size: usize, extra_args: &[&str]) -> Result<Cluster> {
        Cluster::start_inner(flavor, size, extra_args, false)
    }

    /// Like [`Cluster::start`], with a [`FaultProxy`] in front of every member's peer port whose
    /// address is the member's advertised peer URL.
    pub fn start_with_proxies(flavor: Flavor, size: usize, extra_args: &[&str]) -> Result<Cluster> {
        Cluster::start_inner(flavor, size, extra_args, true)
    }

    fn start_inner(
        flavor: Flavor,
        size: usize,
        extra_args: &[&str],
        with_proxies: bool,
    ) -> Result<Cluster> {
        ensure!(size > 0, "a cluster needs at least one member");
        let (server_bin, etcdctl) = binaries(&flavor)?;
        let mut last_error = Error::msg(format!("{} cluster never started", flavor.name()));
        for _ in 0..START_ATTEMPTS {
            let mut cluster = Cluster {
                flavor: flavor.clone(),
                server_bin: server_bin.clone(),
                etcdctl: etcdctl.clone(),
                token: unique_token(),
                with_proxies,
                members: Vec::with_capacity(size),
            };
            cluster.reserve_new_cluster(size, extra_args)?;
            // On failure `cluster` is dropped here, which kills whatever did start.
            match cluster.boot() {
                Ok(()) => return Ok(cluster),
                Err(StartFailure::Exited(e)) => last_error = e,
                Err(StartFailure::Fatal(e)) => return Err(e),
            }
        }
        Err(last_error.context(format!("{START_ATTEMPTS} start attempts failed")))
    }

    /// Reserves `size` slots `m0..` whose `--initial-cluster` names them all.
    fn reserve_new_cluster(&mut self, size: usize, extra_args: &[&str]) -> Result<()> {
        for i in 0..size {
            self.reserve_member(&format!("m{i}"))?;
        }
        let initial_cluster = self
            .members
            .iter()
            .map(|m| format!("{}={}", m.name, m.peer_url))
            .collect::<Vec<_>>()
            .join(",");
        for member in &mut self.members {
            member.initial_cluster = initial_cluster.clone();
            member.initial_cluster_state = "new";
            member.extra_args = extra_args.iter().map(|a| a.to_string()).collect();
        }
        Ok(())
    }

    /// Spawns every member, then waits until all are healthy and caches their IDs.
    fn boot(&self) -> Result<(), StartFailure> {
        for i in 0..self.members.len() {
            self.spawn_member(i).map_err(StartFailure::Fatal)?;
        }
        let deadline = Instant::now() + HEALTHY_TIMEOUT;
        let mut healthy = vec![false; self.members.len()];
        loop {
            for i in 0..self.members.len() {
                if let Some(status) = self.exit_status(i).map_err(StartFailure::Fatal)? {
                    let e = Error::msg(format!(
                        "{} exited during start-up ({status})",
                        self.members[i].name
                    ));
                    return Err(StartFailure::Exited(e.context(self.log_tails())));
                }
            }
            for (i, ok) in healthy.iter_mut().enumerate() {
                *ok = *ok || self.is_healthy(i);
            }
            if healthy.iter().all(|&ok| ok) {
                break;
            }
            if Instant::now() >= deadline {
                let waiting: Vec<&str> = (0..healthy.len())
                    .filter(|&i| !healthy[i])
                    .map(|i| self.members[i].name.as_str())
                    .collect();
                let e = Error::msg(format!(
                    "timed out after {HEALTHY_TIMEOUT:?} waiting for {} to become healthy",
                    waiting.join(", ")
                ));
                return Err(StartFailure::Fatal(e.context(self.log_tails())));
            }
            std::thread::sleep(POLL_INTERVAL);
        }
        for i in 0..self.members.len() {
            self.member_id(i).map_err(StartFailure::Fatal)?;
        }
        Ok(())
    }

    /// Reserves one more member slot named `name` — ports, a dir, and a proxy when the cluster
    /// has proxies — without starting anything, so that its [`Cluster::peer_url`] can be given
    /// to `etcdctl member add` before [`Cluster::add_process`] starts it.
    pub fn reserve_member(&mut self, name: &str) -> Result<usize> {
        let client = TcpListener::bind("127.0.0.1:0")?;
        let peer = TcpListener::bind("127.0.0.1:0")?;
        let peer_addr: SocketAddr = peer.local_addr()?;
        let proxy = if self.with_proxies {
            Some(FaultProxy::start(peer_addr)?)
        } else {
            None
        };
        let client_url = format!("http://{}", client.local_addr()?);
        let listen_peer_url = format!("http://{peer_addr}");
        let peer_url = proxy.as_ref().map_or_else(
            || listen_peer_url.clone(),
            |p| format!("http://{}", p.addr()),
        );
        self.members.push(Member {
            name: name.to_string(),
            dir: tempfile::Builder::new()
                .prefix(&format!("oxcd-cluster-{name}-"))
                .tempdir()?,
            client_url,
            listen_peer_url,
            peer_url,
            proxy,
            initial_cluster: String::new(),
            initial_cluster_state: "existing",
            extra_args: Vec::new(),
            child: Mutex::new(None),
            held_ports: Mutex::new(Some([client, peer])),
            member_id: Mutex::new(None),
        });
        Ok(self.members.len() - 1)
    }

    /// Starts one more member process named `name` with `--initial-cluster-state=existing` and
    /// `--initial-cluster=INITIAL_CLUSTER` (what `etcdctl member add` printed), then
    /// `extra_args`; it does NOT wait for health (a joining member serves only once the cluster
    /// accepted it). Uses the never-started slot reserved under `name` by
    /// [`Cluster::reserve_member`] if there is one, else reserves a new slot (behind a proxy
    /// when the cluster has proxies). Returns its index.
    pub fn add_process(
        &mut self,
        name: &str,
        initial_cluster: &str,
        extra_args: &[&str],
    ) -> Result<usize> {
        let reserved = self
            .members
            .iter()
            .position(|m| m.name == name && m.initial_cluster.is_empty());
        let i = match reserved {
            Some(i) => i,
            None => self.reserve_member(name)?,
        };
        let member = &mut self.members[i];
        member.initial_cluster = initial_cluster.to_string();
        member.initial_cluster_state = "existing";
        member.extra_args = extra_args.iter().map(|a| a.to_string()).collect();
        self.spawn_member(i)?;
        Ok(i)
    }

    /// Replaces the extra flags member `i` starts with from its next start on. They go last on
    /// the command line, so e.g. `--initial-cluster-state=existing` and `--initial-cluster=...`
    /// there override the harness's own (for a member re-added after [`Cluster::wipe`]).
    pub fn set_args(&mut self, i: usize, extra_args: &[&str]) {
        self.members[i].extra_args = extra_args.iter().map(|a| a.to_string()).collect();
    }

    /// Deletes member `i`'s data dir (its log stays), so its next start is a new member. The
    /// member must not be running. Forgets the cached member ID.
    pub fn wipe(&self, i: usize) -> Result<()> {
        ensure!(
            !self.is_running(i),
            "cannot wipe {}: it is running",
            self.members[i].name
        );
        let dir = self.members[i].data_dir();
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        *lock(&self.members[i].member_id) = None;
        Ok(())
    }

    fn command(&self, i: usize) -> Result<Command> {
        let m = &self.members[i];
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(m.log_path())?;
        let mut cmd = Command::new(&self.server_bin);
        cmd.arg(format!("--name={}", m.name))
            .arg(format!("--data-dir={}", m.data_dir().display()))
            .arg(format!("--listen-client-urls={}", m.client_url))
            .arg(format!("--advertise-client-urls={}", m.client_url))
            .arg(format!("--listen-peer-urls={}", m.listen_peer_url))
            .arg(format!("--initial-advertise-peer-urls={}", m.peer_url))
            .arg(format!("--initial-cluster={}", m.initial_cluster))
            .arg(format!("--initial-cluster-token={}", self.token))
            .arg(format!(
                "--initial-cluster-state={}",
                m.initial_cluster_state
            ))
            .args(DEFAULT_TIMING_ARGS)
            .args(&m.extra_args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        Ok(cmd)
    }

    /// Starts member `i`'s process (same command line, same dir) without waiting for anything;
    /// its output is appended to its log. Fails if it is already running.
    pub fn spawn_member(&self, i: usize) -> Result<()> {
        let m = &self.members[i];
        ensure!(
            !m.initial_cluster.is_empty(),
            "{} is only reserved: start it with add_process",
            m.name
        );
        ensure!(!self.is_running(i), "{} is already running", m.name);
        let mut child = lock(&m.child);
        // Release the ports just before the server binds them.
        drop(lock(&m.held_ports).take());
        let spawned = self
            .command(i)?
            .spawn()
            .map_err(|e| Error::msg(format!("cannot start {}: {e}", self.server_bin.display())))?;
        *child = Some(spawned);
        Ok(())
    }

    /// Starts member `i` again (same command line, same dir, same ports) and waits (60 s) until
    /// it answers `endpoint health`, i.e. serves a linearizable read: it is back in a cluster
    /// that has a quorum and a leader. When that quorum needs members not yet restarted, use
    /// [`Cluster::spawn_member`] for each, then [`Cluster::wait_healthy`]. On failure the member
    /// is killed and the error carries its log tail.
    pub fn start_member(&self, i: usize) -> Result<()> {
        self.spawn_member(i)?;
        if let Err(e) = self.wait_healthy(i, HEALTHY_TIMEOUT) {
            let _ = self.kill(i);
            return Err(e);
        }
        Ok(())
    }

    /// Waits until member `i` answers `endpoint health`; fails at once if its process exits.
    /// Errors carry its log tail.
    pub fn wait_healthy(&self, i: usize, timeout: Duration) -> Result<()> {
        let name = &self.members[i].name;
        poll_until(timeout, &format!("{name} to become healthy"), || {
            if let Some(status) = self.exit_status(i)? {
                bail!("{name} exited ({status})");
            }
            ensure!(self.has_process(i), "{name} is not running");
            Ok(self.is_healthy(i).then_some(()))
        })
        .map_err(|e| e.context(self.log_tail(i)))
    }

    /// Whether member `i` answers `endpoint health`. etcdctl is only run once the client port
    /// accepts connections: against a closed port it would spend its whole dial timeout.
    fn is_healthy(&self, i: usize) -> bool {
        let client_url = &self.members[i].client_url;
        let Some(addr) = client_url
            .strip_prefix("http://")
            .and_then(|a| a.parse::<SocketAddr>().ok())
        else {
            return false;
        };
        TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT).is_ok()
            && self
                .ctl(i, &["endpoint", "health", PROBE_TIMEOUT_ARG])
                .is_ok()
    }

    fn has_process(&self, i: usize) -> bool {
        lock(&self.members[i].child).is_some()
    }

    /// The exit status if member `i`'s process has exited on its own; `None` while it runs or
    /// when there is no process.
    pub fn exit_status(&self, i: usize) -> Result<Option<ExitStatus>> {
        match lock(&self.members[i].child).as_mut() {
            Some(child) => Ok(child.try_wait()?),
            None => Ok(None),
        }
    }

    /// Whether member `i` has a process that has not exited.
    pub fn is_running(&self, i: usize) -> bool {
        self.has_process(i) && matches!(self.exit_status(i), Ok(None))
    }

    /// Sends SIGKILL to member `i` and reaps it: a crash. A no-op when it does not run.
    pub fn kill(&self, i: usize) -> Result<()> {
        let Some(mut child) = lock(&self.members[i].child).take() else {
            return Ok(());
        };
        child.kill()?;
        child.wait()?;
        Ok(())
    }

    /// Sends SIGTERM to member `i` and waits (30 s) for it to exit; past the deadline it is
    /// killed and the error carries its log tail. A no-op when it does not run.
    pub fn stop(&self, i: usize) -> Result<()> {
        let Some(mut child) = lock(&self.members[i].child).take() else {
            return Ok(());
        };
        terminate(&mut child, &self.members[i].name).map_err(|e| e.context(self.log_tail(i)))
    }

    /// How many member slots there are (started or not).
    pub fn size(&self) -> usize {
        self.members.len()
    }

    /// Which server the members run.
    pub fn flavor(&self) -> &Flavor {
        &self.flavor
    }

    /// Member `i`'s name (`m0`, `m1`, … or the name given to `reserve_member`/`add_process`).
    pub fn name(&self, i: usize) -> &str {
        &self.members[i].name
    }

    /// Member `i`'s client URL, e.g. `http://127.0.0.1:40123`.
    pub fn client_url(&self, i: usize) -> &str {
        &self.members[i].client_url
    }

    /// Member `i`'s advertised peer URL: its proxy's address when it has one.
    pub fn peer_url(&self, i: usize) -> &str {
        &self.members[i].peer_url
    }

    /// The URL member `i` itself listens on for peers (behind its proxy, if any).
    pub fn listen_peer_url(&self, i: usize) -> &str {
        &self.members[i].listen_peer_url
    }

    /// Member `i`'s `--data-dir`.
    pub fn data_dir(&self, i: usize) -> PathBuf {
        self.members[i].data_dir()
    }

    /// The proxy in front of member `i`'s peer port, if the cluster has proxies.
    pub fn proxy(&self, i: usize) -> Option<&FaultProxy> {
        self.members[i].proxy.as_ref()
    }

    /// The last lines of member `i`'s log.
    pub fn log_tail(&self, i: usize) -> String {
        let m = &self.members[i];
        log_tail_of(
            &m.log_path(),
            &format!("{} ({})", m.name, self.flavor.name()),
        )
    }

    /// Every member's [`Cluster::log_tail`], for error messages.
    pub fn log_tails(&self) -> String {
        (0..self.members.len())
            .map(|i| self.log_tail(i))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Member `i`'s whole log: what it printed over all its runs (empty if it has none yet).
    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.members[i].log_path()).unwrap_or_default()
    }

    /// The client URLs of the running members, comma-joined (for `--endpoints`).
    pub fn endpoints(&self) -> String {
        (0..self.members.len())
            .filter(|&i| self.is_running(i))
            .map(|i| self.members[i].client_url.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Runs `etcdctl --endpoints=<member i> ARGS...` and returns its stdout; a non-zero exit is
    /// an error carrying stderr.
    pub fn ctl(&self, i: usize, args: &[&str]) -> Result<String> {
        self.ctl_with_stdin(i, args, None)
    }

    /// Like [`Cluster::ctl`], feeding `stdin` to etcdctl (for `txn`).
    pub fn ctl_with_stdin(&self, i: usize, args: &[&str], stdin: Option<&str>) -> Result<String> {
        stdout_of(args, &self.ctl_output(i, args, stdin)?)
    }

    /// Runs `etcdctl --endpoints=<member i> ARGS...` and returns stdout, stderr and exit status
    /// whether it succeeded or not; only failing to run etcdctl is an error.
    pub fn ctl_output(&self, i: usize, args: &[&str], stdin: Option<&str>) -> Result<Output> {
        self.ctl_output_at(&self.members[i].client_url, args, stdin)
    }

    /// Like [`Cluster::ctl_output`] with any `--endpoints` value, e.g. [`Cluster::endpoints`].
    pub fn ctl_output_at(
        &self,
        endpoints: &str,
        args: &[&str],
        stdin: Option<&str>,
    ) -> Result<Output> {
        run_etcdctl(&self.etcdctl, endpoints, args, stdin)
    }

    /// Member `i`'s `endpoint status` (and caches its member ID).
    pub fn status(&self, i: usize) -> Result<MemberStatus> {
        let out = self.ctl(i, &["endpoint", "status", "-w", "json", PROBE_TIMEOUT_ARG])?;
        let rows: Vec<StatusRow> = serde_json::from_str(&out)
            .map_err(|e| Error::msg(format!("endpoint status printed {out:?}: {e}")))?;
        let [row] = <[StatusRow; 1]>::try_from(rows)
            .map_err(|rows| Error::msg(format!("endpoint status gave {} rows", rows.len())))?;
        let s = row.status;
        ensure!(
            s.header.member_id != 0,
            "endpoint status of {} has no member ID: {out}",
            self.members[i].name
        );
        lock(&self.members[i].member_id).get_or_insert(s.header.member_id);
        Ok(MemberStatus {
            member_id: s.header.member_id,
            leader: s.leader,
            raft_term: s.raft_term,
            raft_index: s.raft_index,
            raft_applied_index: s.raft_applied_index,
            revision: s.header.revision,
            is_learner: s.is_learner,
        })
    }

    /// Member `i`'s ID, cached once known: from its own `endpoint status` when it runs, else
    /// from a running member's `member list` (the entry with its advertised peer URL).
    pub fn member_id(&self, i: usize) -> Result<u64> {
        if let Some(id) = *lock(&self.members[i].member_id) {
            return Ok(id);
        }
        if self.is_running(i) {
            if let Ok(status) = self.status(i) {
                return Ok(status.member_id);
            }
        }
        let id = self.member_id_from_list(i)?;
        *lock(&self.members[i].member_id) = Some(id);
        Ok(id)
    }

    fn member_id_from_list(&self, i: usize) -> Result<u64> {
        let peer_url = &self.members[i].peer_url;
        let mut last_error = Error::msg("no running member to ask");
        for j in (0..self.members.len()).filter(|&j| self.is_running(j)) {
            let out = match self.ctl(j, &["member", "list", "-w", "json", PROBE_TIMEOUT_ARG]) {
                Ok(out) => out,
                Err(e) => {
                    last_error = e;
                    continue;
                }
            };
            let (_, members) = parse_member_list(&out)?;
            return members
                .iter()
                .find(|m| m.peer_urls.iter().any(|u| u == peer_url))
                .map(|m| m.id)
                .ok_or_else(|| Error::msg(format!("member list has no member at {peer_url}")));
        }
        Err(last_error.context(format!("cannot learn {}'s ID", self.members[i].name)))
    }

    /// The index of the member with this ID.
    fn index_of(&self, id: u64) -> Result<usize> {
        for i in 0..self.members.len() {
            if *lock(&self.members[i].member_id) == Some(id) {
                return Ok(i);
            }
        }
        for i in 0..self.members.len() {
            if self.member_id(i).ok() == Some(id) {
                return Ok(i);
            }
        }
        bail!("member ID {id:x} is none of this cluster's members")
    }

    /// The leader as the running members see it: each one's `endpoint status` names a leader
    /// (or none); the one reported at the highest raft term wins, since a member cut off from
    /// the cluster may still name an old one. `None` when no running member names a leader.
    /// Members that do not answer are skipped.
    pub fn leader(&self) -> Result<Option<usize>> {
        self.leader_among(&self.running_statuses())
    }

    /// The `endpoint status` of every running member that answers, by index.
    fn running_statuses(&self) -> Vec<(usize, MemberStatus)> {
        (0..self.members.len())
            .filter(|&i| self.is_running(i))
            .filter_map(|i| self.status(i).ok().map(|s| (i, s)))
            .collect()
    }

    /// [`Cluster::leader`] as `statuses` report it.
    fn leader_among(&self, statuses: &[(usize, MemberStatus)]) -> Result<Option<usize>> {
        let reported = statuses
            .iter()
            .map(|(_, s)| s)
            .filter(|s| s.leader != 0)
            .max_by_key(|s| s.raft_term);
        reported.map(|s| self.index_of(s.leader)).transpose()
    }

    /// Waits until [`Cluster::leader`] names a running member that itself says it is the
    /// leader, and returns its index.
    pub fn wait_leader(&self, timeout: Duration) -> Result<usize> {
        self.wait_leader_where(timeout, "a leader", |_| true)
    }

    /// Like [`Cluster::wait_leader`], for a leader other than member `old` (after killing or
    /// isolating it).
    pub fn wait_leader_other_than(&self, old: usize, timeout: Duration) -> Result<usize> {
        let what = format!("a leader other than {}", self.members[old].name);
        self.wait_leader_where(timeout, &what, |i| i != old)
    }

    fn wait_leader_where(
        &self,
        timeout: Duration,
        what: &str,
        accept: impl Fn(usize) -> bool,
    ) -> Result<usize> {
        poll_until(timeout, what, || {
            // One status per member and pass: the leader's own answer is among them.
            let statuses = self.running_statuses();
            let Ok(Some(i)) = self.leader_among(&statuses) else {
                return Ok(None);
            };
            if !accept(i) || !self.is_running(i) {
                return Ok(None);
            }
            let confirmed = statuses
                .iter()
                .any(|(j, s)| *j == i && s.leader != 0 && s.leader == s.member_id);
            Ok(confirmed.then_some(i))
        })
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for member in &self.members {
            if let Some(mut child) = lock(&member.child).take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// A cluster token no other cluster on this machine uses, so members of different tests can
/// never join each other.
fn unique_token() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let sequence = CLUSTER_SEQUENCE.fetch_add(1, Ordering::Relaxed);
    format!("oxcd-test-{}-{sequence}-{nanos}", std::process::id())
}
