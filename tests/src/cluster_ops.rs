//! What cluster tests ask of a running [`Cluster`] beyond starting and stopping it: local
//! (serializable) reads, waiting for a revision, HashKV and its convergence, `member list`
//! parsed, and membership changes past etcd's strict reconfiguration check. These helpers use only the
//! cluster's public methods (etcdctl against one member); `cluster.rs` owns the processes.
//!
//! Every wait has a deadline and, when it passes, says what it saw last.

use std::process::Output;
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::cluster::{Cluster, Header, PROBE_TIMEOUT_ARG};
use crate::etcd::{poll_until, stdout_of};
use crate::{bail, ensure, Error, Result};

/// What etcd's strict reconfiguration check (on by default) answers to `member add` and
/// `member remove` of a live voter until every voter has been connected for 5 s.
pub const UNHEALTHY_CLUSTER: &str = "etcdserver: unhealthy cluster";

/// How long [`Cluster::ctl_output_past_strict_check`] waits between two attempts.
const STRICT_CHECK_RETRY: Duration = Duration::from_millis(200);

/// One member as `etcdctl member list -w json` lists it. etcd leaves out what is empty: an
/// unstarted member has no name and no client URLs; a voter has no `isLearner`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct ListedMember {
    /// The member ID.
    #[serde(rename = "ID", default)]
    pub id: u64,
    /// Its name; empty until it has started and published it.
    #[serde(default)]
    pub name: String,
    /// Its advertised peer URLs.
    #[serde(rename = "peerURLs", default)]
    pub peer_urls: Vec<String>,
    /// Its client URLs; empty until it has started and published them.
    #[serde(rename = "clientURLs", default)]
    pub client_urls: Vec<String>,
    /// Whether it is a learner.
    #[serde(rename = "isLearner", default)]
    pub is_learner: bool,
}

#[derive(Deserialize)]
struct MemberList {
    #[serde(default)]
    header: ListHeader,
    #[serde(default)]
    members: Vec<ListedMember>,
}

#[derive(Deserialize, Default)]
struct ListHeader {
    cluster_id: Option<u64>,
}

#[derive(Deserialize)]
struct HashKvRow {
    #[serde(rename = "HashKV")]
    hash_kv: HashKvBody,
}

#[derive(Deserialize)]
struct HashKvBody {
    #[serde(default)]
    header: Header,
    #[serde(default)]
    hash: u32,
}

/// The cluster ID and members of `etcdctl member list -w json` output.
pub(crate) fn parse_member_list(out: &str) -> Result<(u64, Vec<ListedMember>)> {
    let list: MemberList = serde_json::from_str(out)
        .map_err(|e| Error::msg(format!("member list printed {out:?}: {e}")))?;
    let Some(cluster_id) = list.header.cluster_id else {
        bail!("member list has no cluster_id: {out}");
    };
    Ok((cluster_id, list.members))
}

/// The `ETCD_INITIAL_CLUSTER` value `etcdctl member add` prints (without its quotes): what the
/// new member's `--initial-cluster` must be.
pub fn initial_cluster_of(member_add_output: &str) -> Result<String> {
    member_add_output
        .lines()
        .find_map(|l| l.strip_prefix("ETCD_INITIAL_CLUSTER="))
        .map(|v| v.trim_matches('"').to_string())
        .ok_or_else(|| {
            Error::msg(format!(
                "member add printed no ETCD_INITIAL_CLUSTER: {member_add_output:?}"
            ))
        })
}

/// A loopback peer URL, `http://127.0.0.1:PORT`, on a port the OS just gave out and nobody
/// listens on now (for a member that is added but never started, or a URL to move one to).
pub fn free_peer_url() -> Result<String> {
    Ok(format!("http://127.0.0.1:{}", crate::etcd::free_port()?))
}

impl Cluster {
    /// The indexes of the running members.
    pub fn running_members(&self) -> Vec<usize> {
        (0..self.size()).filter(|&i| self.is_running(i)).collect()
    }

    /// The value of `key` as member `i` sees it locally (a serializable read), if it has one.
    pub fn local_value(&self, i: usize, key: &str) -> Result<Option<String>> {
        let out = self.ctl(i, &["get", key, "--consistency=s", "--print-value-only"])?;
        let value = out.trim_end_matches('\n');
        Ok((!value.is_empty()).then(|| value.to_string()))
    }

    /// Waits until member `i` reads `value` for `key` locally. Failed reads count as not yet;
    /// past the deadline the error says what the member read last.
    pub fn wait_local_value(
        &self,
        i: usize,
        key: &str,
        value: &str,
        timeout: Duration,
    ) -> Result<()> {
        let what = format!("{} to read {key}={value} locally", self.name(i));
        let mut last = String::from("nothing yet");
        poll_until(timeout, &what, || {
            let seen = self.local_value(i, key);
            let done = matches!(&seen, Ok(Some(v)) if v == value);
            last = match seen {
                Ok(Some(v)) => format!("{v:?}"),
                Ok(None) => "no value".to_string(),
                Err(e) => e.to_string(),
            };
            Ok(done.then_some(()))
        })
        .map_err(|e| Error::msg(format!("{e}; last read: {last}")))
    }

    /// Waits until member `i`'s `endpoint status` reports revision `rev` or later. Failed
    /// probes count as not yet; past the deadline the error says the last revision seen and
    /// carries the member's log tail.
    pub fn wait_revision(&self, i: usize, rev: i64, timeout: Duration) -> Result<()> {
        let what = format!("{} to reach revision {rev}", self.name(i));
        let mut last = String::from("nothing yet");
        poll_until(timeout, &what, || {
            Ok(match self.status(i) {
                Ok(s) if s.revision >= rev => Some(()),
                Ok(s) => {
                    last = format!("revision {}", s.revision);
                    None
                }
                Err(e) => {
                    last = e.to_string();
                    None
                }
            })
        })
        .map_err(|e| Error::msg(format!("{e}; last seen: {last}\n{}", self.log_tail(i))))
    }

    /// `etcdctl endpoint hashkv --rev=REV` on member `i`: the hash of its keys and values up to
    /// `rev` (0: its current revision), and the revision it was at when it answered (the
    /// response header's). A member not yet at `rev` answers an error.
    pub fn hashkv(&self, i: usize, rev: i64) -> Result<(u32, i64)> {
        let rev_arg = format!("--rev={rev}");
        let args = [
            "endpoint",
            "hashkv",
            &rev_arg,
            "-w",
            "json",
            PROBE_TIMEOUT_ARG,
        ];
        let out = self.ctl(i, &args)?;
        let rows: Vec<HashKvRow> = serde_json::from_str(&out)
            .map_err(|e| Error::msg(format!("endpoint hashkv printed {out:?}: {e}")))?;
        let [row] = <[HashKvRow; 1]>::try_from(rows)
            .map_err(|rows| Error::msg(format!("endpoint hashkv gave {} rows", rows.len())))?;
        Ok((row.hash_kv.hash, row.hash_kv.header.revision))
    }

    /// Waits until each of `members` answers `endpoint hashkv --rev=REV` from revision `rev`
    /// or later (all within `timeout`), then fails at once, listing every hash, unless all
    /// hashes are equal. Returns `(index, hash, revision answered at)` per member.
    pub fn same_hashkv(
        &self,
        members: &[usize],
        rev: i64,
        timeout: Duration,
    ) -> Result<Vec<(usize, u32, i64)>> {
        let deadline = Instant::now() + timeout;
        let mut hashes = Vec::with_capacity(members.len());
        for &i in members {
            let what = format!("{} to answer hashkv at revision {rev}", self.name(i));
            let mut last = String::from("nothing yet");
            let left = deadline.saturating_duration_since(Instant::now());
            let (hash, at) = poll_until(left, &what, || {
                Ok(match self.hashkv(i, rev) {
                    Ok((hash, at)) if at >= rev => Some((hash, at)),
                    Ok((_, at)) => {
                        last = format!("answered at revision {at}");
                        None
                    }
                    Err(e) => {
                        last = e.to_string();
                        None
                    }
                })
            })
            .map_err(|e| Error::msg(format!("{e}; last: {last}\n{}", self.log_tail(i))))?;
            hashes.push((i, hash, at));
        }
        ensure!(
            hashes.windows(2).all(|w| w[0].1 == w[1].1),
            "HashKV at revision {rev} differs (index, hash, revision): {hashes:?}"
        );
        Ok(hashes)
    }

    /// The cluster ID and the members, as member `i`'s `member list -w json` gives them.
    pub fn member_list(&self, i: usize) -> Result<(u64, Vec<ListedMember>)> {
        parse_member_list(&self.ctl(i, &["member", "list", "-w", "json"])?)
    }

    /// Runs etcdctl against member `i` like [`Cluster::ctl_output`] (no stdin), again while it
    /// fails with [`UNHEALTHY_CLUSTER`] (etcd's strict reconfiguration check, which wants every
    /// voter connected for a few seconds first). Returns the first other answer, success or
    /// not; past `timeout` the last answer.
    pub fn ctl_output_past_strict_check(
        &self,
        i: usize,
        args: &[&str],
        timeout: Duration,
    ) -> Result<Output> {
        let deadline = Instant::now() + timeout;
        loop {
            let out = self.ctl_output(i, args, None)?;
            let refused = !out.status.success()
                && String::from_utf8_lossy(&out.stderr).contains(UNHEALTHY_CLUSTER);
            if !refused || Instant::now() >= deadline {
                return Ok(out);
            }
            std::thread::sleep(STRICT_CHECK_RETRY);
        }
    }

    /// [`Cluster::ctl_output_past_strict_check`] as [`Cluster::ctl`]: its stdout, or an error
    /// with stderr if it failed for another reason or still met the check at the deadline.
    pub fn ctl_past_strict_check(
        &self,
        i: usize,
        args: &[&str],
        timeout: Duration,
    ) -> Result<String> {
        stdout_of(args, &self.ctl_output_past_strict_check(i, args, timeout)?)
    }
}
