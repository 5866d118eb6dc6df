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
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use oxcd_tests::cluster::Cluster;
use oxcd_tests::etcd::{etcdctl_bin, poll_until};
use oxcd_tests::proxy::Faults;

mod cluster_load;
mod grpc;
use cluster_load::{assert_every_member_has, assert_same_hashkv, Load, Writer};
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
        small_writer(leader),
        small_writer(leader),
        small_writer(other),
        small_writer(other),
        large_writer(leader),
    ];
    let acked = run_load_under_faults(&cluster, faulty, lossy, &writers);
    assert_every_member_has(&cluster, &acked, true);
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
    let mut writers: Vec<(usize, Writer)> = (0..6).map(|w| small_writer(w % 3)).collect();
    writers.push(large_writer(follower));
    let acked = run_load_under_faults(&cluster, leader, lossy, &writers);
    assert_every_member_has(&cluster, &acked, true);
    let leader = cluster.wait_leader(WAIT).unwrap();
    assert_same_hashkv(&cluster, leader);
}

/// A writer through `member` putting one byte, back to back.
fn small_writer(member: usize) -> (usize, Writer) {
    let writer = Writer {
        put_timeout: PUT_TIMEOUT,
        ..Writer::small()
    };
    (member, writer)
}

/// A writer through `member` putting [`LARGE_VALUE_BYTES`], [`LARGE_PUT_PAUSE`] apart.
fn large_writer(member: usize) -> (usize, Writer) {
    let writer = Writer {
        value_bytes: LARGE_VALUE_BYTES,
        pause: LARGE_PUT_PAUSE,
        put_timeout: PUT_TIMEOUT,
    };
    (member, writer)
}

/// Sets `faults` both ways on member `faulty`'s proxy and runs `writers` until the load has
/// run [`LOAD_UNDER_FAULTS`], [`MIN_ACKED_UNDER_FAULTS`] puts were acknowledged under faults
/// and `faulty`'s log shows a connection broken by them; then lifts the faults, closes the
/// proxy's connections, stops the writers and returns the acknowledged keys.
fn run_load_under_faults(
    cluster: &Cluster,
    faulty: usize,
    faults: Faults,
    writers: &[(usize, Writer)],
) -> BTreeSet<String> {
    let proxy = cluster.proxy(faulty).unwrap();
    let breaks_before = broken_connections(cluster, faulty);
    proxy.set_both(faults);
    let load = Load::start(cluster, writers);
    let started = Instant::now();
    let hit = poll_until(WAIT, "load under faults that visibly hit", || {
        let count = load.acked_count();
        let breaks = broken_connections(cluster, faulty);
        let done = started.elapsed() >= LOAD_UNDER_FAULTS
            && count >= MIN_ACKED_UNDER_FAULTS
            && breaks > breaks_before;
        Ok(done.then_some(()))
    });
    proxy.set_both(Faults::default());
    proxy.reset();
    let acked = load.stop();
    if let Err(e) = hit {
        panic!(
            "{e}: {} puts acknowledged, {} broken connections logged by {} (before: \
             {breaks_before})\n{}",
            acked.len(),
            broken_connections(cluster, faulty),
            cluster.name(faulty),
            cluster.log_tails()
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

/// How many inbound peer connections member `i` closed because their bytes broke the wire
/// format (a bad frame length, CRC or hello).
fn broken_connections(cluster: &Cluster, i: usize) -> usize {
    cluster
        .log(i)
        .lines()
        .filter(|l| {
            (l.contains(BROKEN_CONNECTION_LOG) && l.contains("protocol error"))
                || l.contains("rejected peer connection: bad hello")
        })
        .count()
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
            cluster.log_tails()
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
            panic!("{e}\n{}\n{}", self.transcript(), cluster.log_tails());
        }
    }

    /// Panics, with what etcdctl printed, if it has exited (it gives up when the lease is
    /// gone or no answer came within the TTL).
    fn ensure_running(&mut self, cluster: &Cluster) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!(
                "etcdctl lease keep-alive exited ({status})\n{}\n{}",
                self.transcript(),
                cluster.log_tails()
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
