//! Three `oxcd` processes under network faults and leader changes: a lossy, slow link to a
//! follower or to the leader loses no acknowledged write and the members end with equal HashKV;
//! a lease kept alive through a follower survives the SIGKILL of the leader and is revoked by
//! the new leader once the keep-alives stop.
//!
//! Faults come from the harness's [`FaultProxy`] in front of each member's advertised peer URL.
//! oxcd's peer connections are dialed by the sender, so member i's proxy carries everything sent
//! *to* member i (`server/src/raft/transport/FORMAT.md`): `Direction::ToTarget` is the raft
//! traffic, `Direction::FromTarget` only the hello replies.
//!
//! On loopback the proxy's reads (64 KiB at most) end where the sender's writes end, so
//! dropping a chunk usually drops whole frames: raft messages lost without a trace, which raft
//! repairs by resending. A chunk cut from the middle of a frame breaks the CRC-32C framing
//! instead: the receiver closes the connection ("peer inbound connection closed" with a
//! "protocol error") and the sender dials again. To get both, one writer puts values larger
//! than a proxy read, so each frame carrying one arrives in two chunks or more.
//!
//! Writers count only acknowledged puts; a failed or timed-out put is retried under a new key,
//! so an unacknowledged put that did commit is simply an extra key.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use oxcd_tests::cluster::Cluster;
use oxcd_tests::etcd::poll_until;
use oxcd_tests::proxy::{Direction, FaultProxy, Faults};
use tokio::runtime::Runtime;
use tokio::task::JoinHandle;

mod cluster_load;
mod grpc;
use cluster_load::{assert_same_hashkv, load_keys_at, write_until_stopped, Writer};
use grpc::oxcd_flavor;

const WAIT: Duration = Duration::from_secs(30);
/// How long the load runs under faults at least, so that the faulty link has time to lag.
const LOAD_UNDER_FAULTS: Duration = Duration::from_secs(4);
/// How many acknowledged puts under faults make the run meaningful.
const MIN_ACKED_UNDER_FAULTS: usize = 200;
/// A put that takes longer is abandoned (and its channel dropped).
const PUT_TIMEOUT: Duration = Duration::from_secs(5);
/// Larger than one proxy read (64 KiB), so that a frame carrying it spans several chunks.
const LARGE_VALUE_BYTES: usize = 80 * 1024;
/// Between two large puts, to keep the data dirs small.
const LARGE_PUT_PAUSE: Duration = Duration::from_millis(50);
/// What a receiving member logs when a peer's frames stop making sense
/// (`raft/transport/listener.rs`, a non-I/O error ending an inbound Messages connection).
const BROKEN_CONNECTION_LOG: &str = "peer inbound connection closed";

#[test]
fn a_lossy_slow_link_to_a_follower_loses_no_acknowledged_write() {
    // Proves a follower whose inbound link delays and drops data breaks and redials its
    // connections, yet every acknowledged put reaches every member and HashKV ends equal.
    let cluster = Cluster::start_with_proxies(oxcd_flavor(), 3, &[]).unwrap();
    let leader = cluster.wait_leader(WAIT).unwrap();
    let faulty = (leader + 1) % 3;
    let other = (leader + 2) % 3;
    let lossy = Faults {
        delay: Duration::from_millis(10),
        drop_fraction: 0.05,
        ..Faults::default()
    };
    // The leader's appends carry the large values to the faulty follower.
    let writers = [
        Source::small(leader),
        Source::small(leader),
        Source::small(other),
        Source::small(other),
        Source::large(leader),
    ];
    let acked = run_load_under_faults(&cluster, faulty, lossy, &writers);
    assert_every_member_has(&cluster, &acked);
    let leader = cluster.wait_leader(WAIT).unwrap();
    assert_same_hashkv(&cluster, leader);
}

#[test]
fn a_lossy_link_to_the_leader_still_commits() {
    // Proves the cluster keeps committing while what the followers send to the leader is
    // delayed and thinned out, and no acknowledged put is lost (a leader change is allowed).
    let cluster = Cluster::start_with_proxies(oxcd_flavor(), 3, &[]).unwrap();
    let leader = cluster.wait_leader(WAIT).unwrap();
    let follower = (leader + 1) % 3;
    let lossy = Faults {
        delay: Duration::from_millis(5),
        drop_fraction: 0.02,
        ..Faults::default()
    };
    // A follower forwards the large puts to the leader as proposals.
    let mut writers: Vec<Source> = (0..6).map(|w| Source::small(w % 3)).collect();
    writers.push(Source::large(follower));
    let acked = run_load_under_faults(&cluster, leader, lossy, &writers);
    assert_every_member_has(&cluster, &acked);
    let leader = cluster.wait_leader(WAIT).unwrap();
    assert_same_hashkv(&cluster, leader);
}

/// One writer of the load: which member it writes through and what.
#[derive(Clone, Copy)]
struct Source {
    member: usize,
    writer: Writer,
}

impl Source {
    /// Puts of one byte, back to back.
    fn small(member: usize) -> Source {
        Source {
            member,
            writer: Writer {
                put_timeout: PUT_TIMEOUT,
                ..Writer::small()
            },
        }
    }

    /// Puts of [`LARGE_VALUE_BYTES`], [`LARGE_PUT_PAUSE`] apart.
    fn large(member: usize) -> Source {
        Source {
            member,
            writer: Writer {
                value_bytes: LARGE_VALUE_BYTES,
                pause: LARGE_PUT_PAUSE,
                put_timeout: PUT_TIMEOUT,
            },
        }
    }
}

/// Sets `faults` both ways on member `faulty`'s proxy and runs `writers` until the load has
/// run [`LOAD_UNDER_FAULTS`], [`MIN_ACKED_UNDER_FAULTS`] puts were acknowledged under faults
/// and `faulty`'s log shows a connection broken by them; then lifts the faults, closes the
/// proxy's connections, stops the writers and returns the acknowledged keys.
fn run_load_under_faults(
    cluster: &Cluster,
    faulty: usize,
    faults: Faults,
    writers: &[Source],
) -> BTreeSet<String> {
    let proxy = cluster.proxy(faulty).unwrap();
    let breaks_before = broken_connections(cluster, faulty);
    set_both_ways(proxy, faults);
    let runtime = Runtime::new().unwrap();
    let acked: Arc<Mutex<BTreeSet<String>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<JoinHandle<()>> = writers
        .iter()
        .enumerate()
        .map(|(w, source)| {
            let url = cluster.client_url(source.member).to_string();
            let (acked, stop) = (Arc::clone(&acked), Arc::clone(&stop));
            runtime.spawn(write_until_stopped(url, w, source.writer, acked, stop))
        })
        .collect();
    let started = Instant::now();
    let hit = poll_until(WAIT, "load under faults that visibly hit", || {
        let count = acked.lock().unwrap().len();
        let breaks = broken_connections(cluster, faulty);
        let done = started.elapsed() >= LOAD_UNDER_FAULTS
            && count >= MIN_ACKED_UNDER_FAULTS
            && breaks > breaks_before;
        Ok(done.then_some(()))
    });
    set_both_ways(proxy, Faults::default());
    proxy.reset();
    stop.store(true, Ordering::SeqCst);
    for task in tasks {
        runtime.block_on(task).unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    if let Err(e) = hit {
        panic!(
            "{e}: {} puts acknowledged, {} broken connections logged by {} (before: \
             {breaks_before})\n{}",
            acked.len(),
            broken_connections(cluster, faulty),
            cluster.name(faulty),
            all_log_tails(cluster)
        );
    }
    eprintln!(
        "{} puts acknowledged in {:?}; {} logged {} connections broken by the faults",
        acked.len(),
        started.elapsed(),
        cluster.name(faulty),
        broken_connections(cluster, faulty) - breaks_before
    );
    acked
}

fn set_both_ways(proxy: &FaultProxy, faults: Faults) {
    proxy.set(Direction::ToTarget, faults);
    proxy.set(Direction::FromTarget, faults);
}

/// Waits until every member has applied up to the leader's revision, then asserts that each
/// one's own (serializable) view holds every acknowledged key.
fn assert_every_member_has(cluster: &Cluster, acked: &BTreeSet<String>) {
    let leader = cluster.wait_leader(WAIT).unwrap();
    let rev = cluster.status(leader).unwrap().revision;
    let runtime = Runtime::new().unwrap();
    for i in 0..cluster.size() {
        poll_until(
            WAIT,
            &format!("{} to reach revision {rev}", cluster.name(i)),
            || {
                Ok(cluster
                    .status(i)
                    .is_ok_and(|s| s.revision >= rev)
                    .then_some(()))
            },
        )
        .unwrap_or_else(|e| panic!("{e}\n{}", cluster.log_tail(i)));
        let present = runtime.block_on(load_keys_at(cluster.client_url(i), true));
        let missing: Vec<_> = acked.difference(&present).collect();
        assert!(
            missing.is_empty(),
            "{} lacks {} of {} acknowledged keys, e.g. {:?}",
            cluster.name(i),
            missing.len(),
            acked.len(),
            &missing[..missing.len().min(5)]
        );
    }
}

/// Member `i`'s whole log (the harness keeps it next to the data dir).
fn full_log(cluster: &Cluster, i: usize) -> String {
    let dir = cluster.data_dir(i);
    let path = dir.parent().map(|p| p.join("server.log")).unwrap_or(dir);
    std::fs::read_to_string(path).unwrap_or_default()
}

/// How many inbound peer connections member `i` closed because their bytes broke the wire
/// format (a bad frame length, CRC or hello).
fn broken_connections(cluster: &Cluster, i: usize) -> usize {
    full_log(cluster, i)
        .lines()
        .filter(|l| {
            (l.contains(BROKEN_CONNECTION_LOG) && l.contains("protocol error"))
                || l.contains("rejected peer connection: bad hello")
        })
        .count()
}

fn all_log_tails(cluster: &Cluster) -> String {
    (0..cluster.size())
        .map(|i| cluster.log_tail(i))
        .collect::<Vec<_>>()
        .join("\n")
}

const LEASE_TTL_SECS: u64 = 6;

#[test]
fn leases_survive_a_leader_change() {
    // Proves keep-alives through a follower keep a lease alive across the SIGKILL of the
    // leader (the new leader's lessor takes over), TimeToLive agrees on the survivors, and the
    // new leader revokes the lease once the keep-alives stop.
    let cluster = Cluster::start(oxcd_flavor(), 3, &[]).unwrap();
    let old_leader = cluster.wait_leader(WAIT).unwrap();
    let keeper = (old_leader + 1) % 3;
    let survivors = [keeper, (old_leader + 2) % 3];
    let ttl = LEASE_TTL_SECS.to_string();
    let granted = cluster.ctl(keeper, &["lease", "grant", &ttl]).unwrap();
    // "lease 694d7a... granted with TTL(6s)"
    let id = granted.split_whitespace().nth(1).unwrap().to_string();
    cluster
        .ctl(keeper, &["put", "leased", "v", "--lease", &id])
        .unwrap();
    let mut keep_alive = KeepAlive::start(cluster.client_url(keeper), &id);
    keep_alive.wait_for_answers(1, Instant::now(), &cluster);

    cluster.kill(old_leader).unwrap();
    let killed_at = Instant::now();
    let new_leader = cluster.wait_leader_other_than(old_leader, WAIT).unwrap();
    let led_at = Instant::now();
    // Answers after the new leader took over come from its lessor.
    keep_alive.wait_for_answers(2, led_at, &cluster);
    let well_past_ttl = Duration::from_secs(2 * LEASE_TTL_SECS);
    // Reads that fail (a member busy for a moment) are retried; a read that answers must find
    // the key, and the last round, past twice the TTL, must answer on both survivors.
    poll_until(WAIT, "twice the TTL after the kill", || {
        keep_alive.ensure_running(&cluster);
        let late = killed_at.elapsed() >= well_past_ttl;
        let mut answered = 0;
        for &i in &survivors {
            let Ok(value) = cluster.ctl(i, &["get", "leased", "--print-value-only"]) else {
                continue;
            };
            answered += 1;
            assert_eq!(
                value.trim(),
                "v",
                "the leased key vanished from {} {:?} after the kill\n{}",
                cluster.name(i),
                killed_at.elapsed(),
                keep_alive.transcript()
            );
        }
        Ok((late && answered == survivors.len()).then_some(()))
    })
    .unwrap();
    for &i in &survivors {
        let answer = cluster
            .ctl(i, &["lease", "timetolive", &id, "--keys"])
            .unwrap();
        let remaining = remaining_secs(&answer, &id, &["leased"]);
        assert!(
            (1..=LEASE_TTL_SECS as i64 + 1).contains(&remaining),
            "{} answers {answer:?} while the lease is kept alive",
            cluster.name(i)
        );
    }

    keep_alive.stop();
    let stopped_at = Instant::now();
    let revoke_deadline = Duration::from_secs(LEASE_TTL_SECS + 5);
    poll_until(
        revoke_deadline,
        "the new leader to revoke the lease",
        || {
            let gone = survivors.iter().all(|&i| {
                cluster
                    .ctl(i, &["get", "leased", "--print-value-only"])
                    .is_ok_and(|v| v.trim().is_empty())
            });
            Ok(gone.then_some(()))
        },
    )
    .unwrap_or_else(|e| {
        panic!(
            "{e} ({:?} after the keep-alives stopped)\n{}\n{}",
            stopped_at.elapsed(),
            keep_alive.transcript(),
            all_log_tails(&cluster)
        )
    });
    for &i in &survivors {
        let answer = cluster.ctl(i, &["lease", "timetolive", &id]).unwrap();
        assert_eq!(
            answer.trim(),
            format!("lease {id} already expired"),
            "{}",
            cluster.name(i)
        );
    }
    assert_same_hashkv(&cluster, new_leader);
}

/// The remaining TTL in `etcdctl lease timetolive ID --keys` output, after checking the rest:
/// "lease ID granted with TTL(6s), remaining(5s), attached keys([leased])".
fn remaining_secs(answer: &str, id: &str, keys: &[&str]) -> i64 {
    let prefix = format!("lease {id} granted with TTL({LEASE_TTL_SECS}s), remaining(");
    let suffix = format!("s), attached keys([{}])", keys.join(" "));
    answer
        .trim()
        .strip_prefix(&prefix)
        .and_then(|rest| rest.strip_suffix(&suffix))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("unexpected timetolive answer {answer:?}"))
}

/// A background `etcdctl lease keep-alive ID` and the lines it printed, with when each arrived.
struct KeepAlive {
    child: Child,
    lines: Arc<Mutex<Vec<(Instant, String)>>>,
}

impl KeepAlive {
    fn start(endpoint: &str, id: &str) -> KeepAlive {
        let mut child = Command::new(etcdctl_bin())
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={endpoint}"))
            .args(["lease", "keep-alive", id])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines: Arc<Mutex<Vec<(Instant, String)>>> = Arc::default();
        let outputs: [Box<dyn std::io::Read + Send>; 2] = [
            Box::new(child.stdout.take().unwrap()),
            Box::new(child.stderr.take().unwrap()),
        ];
        for output in outputs {
            let lines = Arc::clone(&lines);
            std::thread::spawn(move || {
                for line in BufReader::new(output).lines().map_while(|l| l.ok()) {
                    lines.lock().unwrap().push((Instant::now(), line));
                }
            });
        }
        KeepAlive { child, lines }
    }

    /// Waits until at least `n` keep-alive answers arrived after `since`; fails if etcdctl
    /// exits meanwhile.
    fn wait_for_answers(&mut self, n: usize, since: Instant, cluster: &Cluster) {
        let answered = poll_until(WAIT, &format!("{n} keep-alive answers"), || {
            self.ensure_running(cluster);
            let count = self
                .lines
                .lock()
                .unwrap()
                .iter()
                .filter(|(at, line)| *at >= since && line.contains("keepalived with TTL("))
                .count();
            Ok((count >= n).then_some(()))
        });
        if let Err(e) = answered {
            panic!("{e}\n{}\n{}", self.transcript(), all_log_tails(cluster));
        }
    }

    /// Panics, with what etcdctl printed, if it has exited (it gives up when the lease is
    /// gone or no answer came within the TTL).
    fn ensure_running(&mut self, cluster: &Cluster) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!(
                "etcdctl lease keep-alive exited ({status})\n{}\n{}",
                self.transcript(),
                all_log_tails(cluster)
            );
        }
    }

    fn transcript(&self) -> String {
        let lines = self.lines.lock().unwrap();
        let first = lines.first().map(|(at, _)| *at);
        let text: Vec<String> = lines
            .iter()
            .map(|(at, line)| format!("  +{:?} {line}", at.duration_since(first.unwrap())))
            .collect();
        format!("etcdctl lease keep-alive printed:\n{}", text.join("\n"))
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for KeepAlive {
    fn drop(&mut self) {
        self.stop();
    }
}

/// etcdctl as the harness finds it (`$OXCD_ETCDCTL_BIN`, else `etcdctl` from `PATH`).
fn etcdctl_bin() -> PathBuf {
    std::env::var_os("OXCD_ETCDCTL_BIN").map_or_else(|| PathBuf::from("etcdctl"), PathBuf::from)
}
