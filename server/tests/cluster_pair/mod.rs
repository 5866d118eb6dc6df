//! Shared machinery for `cluster_compat.rs`: a [`ClusterPair`] — a 3-member real etcd 3.4.23
//! cluster and a 3-member oxcd cluster, started by the same test with the same flags — that runs
//! each etcdctl command ([`Case`]) against both at once and compares the outputs once
//! normalised (see [`normalise`]: members are named by the rank of their ID, `<m0>`…).
//!
//! Differences are collected rather than panicked on at once, so one run reports all of them;
//! [`ClusterPair::finish`] fails the test with the whole list. A case marked
//! [`Case::known_bug`] is an oxcd difference waiting for a fix: it keeps failing the test until
//! it matches, and once it matches, the test fails until the mark is removed.

pub mod normalise;

use std::fmt::Write as _;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use normalise::{MemberFacts, Normaliser, Rows, Run};
use oxcd_tests::cluster::Cluster;
use oxcd_tests::etcd::{Flavor, ETCD_VERSION};

/// How long leader changes and replication may take.
pub const WAIT: Duration = Duration::from_secs(30);

/// How long members may take to agree on a new leader once `move-leader` has returned.
const LEADER_MOVE_TIMEOUT: Duration = Duration::from_secs(10);
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Members per cluster.
pub const SIZE: usize = 3;

/// Where etcdctl is pointed, by member rank.
#[derive(Clone, Copy, Debug)]
pub enum At {
    /// `--endpoints=<client URL of the member ranked k>`.
    Rank(usize),
    /// `--endpoints=` every member's client URL, in rank order.
    All,
}

impl At {
    fn describe(self) -> String {
        match self {
            At::Rank(k) => format!("--endpoints=<client-m{k}>"),
            At::All => "--endpoints=<client-m0>,<client-m1>,<client-m2>".to_string(),
        }
    }
}

/// One command to run against both clusters.
#[derive(Clone, Debug)]
pub struct Case {
    pub at: At,
    /// etcdctl arguments; `{mk}` stands for the hex ID of the member ranked k on each side.
    pub args: Vec<String>,
    pub rows: Rows,
    /// `Some(why)` marks a known oxcd bug: the case is expected to differ until it is fixed.
    pub known_bug: Option<&'static str>,
}

impl Case {
    pub fn new(at: At, args: &[&str]) -> Case {
        Case {
            at,
            args: args.iter().map(|a| a.to_string()).collect(),
            rows: Rows::Ordered,
            known_bug: None,
        }
    }

    /// Rows come in completion order: compare them sorted.
    pub fn unordered(mut self) -> Case {
        self.rows = Rows::Unordered;
        self
    }

    /// Marks the case as a known oxcd difference (a bug to fix), described by `why`.
    #[allow(dead_code)] // no case differs today; this is how the next one is recorded
    pub fn known_bug(mut self, why: &'static str) -> Case {
        self.known_bug = Some(why);
        self
    }

    fn command(&self) -> String {
        format!("etcdctl {} {}", self.at.describe(), self.args.join(" "))
    }
}

/// One cluster and its normaliser.
pub struct Side {
    pub cluster: Cluster,
    /// Member index (start order) of the member ranked k.
    by_rank: Vec<usize>,
    /// Member IDs by rank.
    ids: Vec<u64>,
    normaliser: Normaliser,
}

impl Side {
    fn new(cluster: Cluster, version: &str) -> Side {
        let name = cluster.flavor().name();
        let members: Vec<MemberFacts> = (0..cluster.size())
            .map(|i| MemberFacts {
                id: cluster
                    .member_id(i)
                    .unwrap_or_else(|e| panic!("{name}: member {i}'s ID: {e}")),
                name: cluster.name(i).to_string(),
                client_url: cluster.client_url(i).to_string(),
                peer_url: cluster.peer_url(i).to_string(),
            })
            .collect();
        let mut by_rank: Vec<usize> = (0..members.len()).collect();
        by_rank.sort_by_key(|&i| members[i].id);
        let (cluster_id, _) = cluster
            .member_list(0)
            .unwrap_or_else(|e| panic!("{name}: member list: {e}"));
        Side {
            ids: by_rank.iter().map(|&i| members[i].id).collect(),
            by_rank,
            normaliser: Normaliser::new(cluster_id, &members, version),
            cluster,
        }
    }

    fn name(&self) -> String {
        self.cluster.flavor().name()
    }

    /// The member index (start order) of the member ranked `rank`.
    pub fn index(&self, rank: usize) -> usize {
        self.by_rank[rank]
    }

    fn endpoints(&self, at: At) -> String {
        match at {
            At::Rank(k) => self.cluster.client_url(self.by_rank[k]).to_string(),
            At::All => self
                .by_rank
                .iter()
                .map(|&i| self.cluster.client_url(i))
                .collect::<Vec<_>>()
                .join(","),
        }
    }

    /// `args` with `{mk}` replaced by this side's hex ID of the member ranked k.
    fn concrete_args(&self, args: &[String]) -> Vec<String> {
        args.iter()
            .map(|arg| {
                let mut arg = arg.clone();
                for (k, id) in self.ids.iter().enumerate() {
                    arg = arg.replace(&format!("{{m{k}}}"), &format!("{id:x}"));
                }
                arg
            })
            .collect()
    }

    /// Runs the case's command on this side and normalises what etcdctl printed.
    fn run(&self, case: &Case) -> Run {
        let args = self.concrete_args(&case.args);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let output = self
            .cluster
            .ctl_output_at(&self.endpoints(case.at), &args, None)
            .unwrap_or_else(|e| panic!("cannot run etcdctl {args:?} on {}: {e}", self.name()));
        let member_list_protobuf = args.starts_with(&["member", "list"])
            && args.windows(2).any(|w| w == ["-w", "protobuf"])
            && output.status.success();
        self.normaliser.run(
            &output.stdout,
            &output.stderr,
            output.status.code(),
            member_list_protobuf,
            case.rows,
        )
    }

    /// Waits until every running member names the member ranked `rank` as leader.
    pub fn wait_leader(&self, rank: usize) {
        self.await_leader(rank, WAIT)
            .unwrap_or_else(|e| panic!("{}: waiting for <m{rank}> to lead: {e}", self.name()));
    }

    /// Waits up to `timeout` until every running member names the member ranked `rank` as
    /// leader; past it, says whom each one named last (normalised).
    fn await_leader(&self, rank: usize, timeout: Duration) -> Result<(), String> {
        let want = self.ids[rank];
        let deadline = Instant::now() + timeout;
        loop {
            let named: Vec<(usize, Option<u64>)> = (0..self.by_rank.len())
                .filter(|&k| self.cluster.is_running(self.by_rank[k]))
                .map(|k| {
                    (
                        k,
                        self.cluster.status(self.by_rank[k]).ok().map(|s| s.leader),
                    )
                })
                .collect();
            if named.iter().all(|&(_, leader)| leader == Some(want)) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let named: Vec<String> = named
                    .iter()
                    .map(|&(k, leader)| match leader {
                        Some(id) => {
                            format!("<m{k}> names {}", self.normaliser.text(&id.to_string()))
                        }
                        None => format!("<m{k}> does not answer"),
                    })
                    .collect();
                return Err(named.join(", "));
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// Makes the member ranked `rank` the leader (with `move-leader` if another one leads).
    pub fn make_leader(&self, rank: usize) {
        let name = self.name();
        let leader = self
            .cluster
            .wait_leader(WAIT)
            .unwrap_or_else(|e| panic!("{name}: no leader: {e}"));
        if leader != self.by_rank[rank] {
            let target = format!("{:x}", self.ids[rank]);
            let out = self
                .cluster
                .ctl_output_at(&self.endpoints(At::All), &["move-leader", &target], None)
                .unwrap_or_else(|e| panic!("{name}: move-leader: {e}"));
            assert!(
                out.status.success(),
                "{name}: move-leader {target}: {out:?}"
            );
        }
        self.wait_leader(rank);
    }
}

/// A difference between the two clusters' normalised outputs.
struct Difference {
    command: String,
    known_bug: Option<&'static str>,
    etcd: Run,
    oxcd: Run,
}

/// Real etcd and oxcd clusters side by side.
pub struct ClusterPair {
    pub etcd: Side,
    pub oxcd: Side,
    differences: Mutex<Vec<Difference>>,
    /// Known-bug cases that matched: their mark must go.
    fixed: Mutex<Vec<String>>,
}

impl ClusterPair {
    /// Starts both clusters concurrently and makes the member with the smallest ID lead on
    /// both sides. `oxcd_version` is the server version oxcd's Status is meant to report.
    pub fn start(oxcd: Flavor, oxcd_version: &str) -> ClusterPair {
        let start = |flavor: Flavor, version: &str| {
            let name = flavor.name();
            let cluster = Cluster::start(flavor, SIZE, &[])
                .unwrap_or_else(|e| panic!("start a {name} cluster: {e}"));
            Side::new(cluster, version)
        };
        let (etcd, oxcd) = both(
            // Real etcd's Status reports its own version.
            || start(Flavor::Etcd, ETCD_VERSION),
            || start(oxcd, oxcd_version),
        );
        let pair = ClusterPair {
            etcd,
            oxcd,
            differences: Mutex::default(),
            fixed: Mutex::default(),
        };
        pair.make_leader(0);
        pair
    }

    /// Makes the member ranked `rank` lead on both sides.
    pub fn make_leader(&self, rank: usize) {
        both(
            || self.etcd.make_leader(rank),
            || self.oxcd.make_leader(rank),
        );
    }

    /// Checks that `after` (a command that transfers leadership) made the member ranked `rank`
    /// the leader on both sides, recording a difference if not; then makes it lead anyway, so
    /// that later cases start alike.
    pub fn check_leader_moved(&self, rank: usize, after: &Case) {
        let outcome = |side: &Side| {
            let stdout = match side.await_leader(rank, LEADER_MOVE_TIMEOUT) {
                Ok(()) => format!("every member names <m{rank}> leader\n"),
                Err(named) => format!("{named}\n"),
            };
            Run {
                stdout,
                stderr: String::new(),
                code: None,
            }
        };
        let (etcd, oxcd) = both(|| outcome(&self.etcd), || outcome(&self.oxcd));
        if etcd != oxcd {
            lock(&self.differences).push(Difference {
                command: format!("(who leads after) {}", after.command()),
                known_bug: None,
                etcd,
                oxcd,
            });
        }
        self.make_leader(rank);
    }

    /// Runs `case` on both sides at once and records any difference.
    pub fn check(&self, case: Case) {
        let (etcd, oxcd) = both(|| self.etcd.run(&case), || self.oxcd.run(&case));
        match (etcd == oxcd, case.known_bug) {
            (true, None) => {}
            (true, Some(_)) => lock(&self.fixed).push(case.command()),
            (false, known_bug) => lock(&self.differences).push(Difference {
                command: case.command(),
                known_bug,
                etcd,
                oxcd,
            }),
        }
    }

    /// Runs every case concurrently (for commands that mostly wait on timeouts).
    pub fn check_all(&self, cases: Vec<Case>) {
        std::thread::scope(|s| {
            for case in cases {
                s.spawn(move || self.check(case));
            }
        });
    }

    /// Fails the test if any case differed (listing every difference, unexpected ones first),
    /// or if a case marked as a known bug now matches.
    pub fn finish(self) {
        let mut differences = self
            .differences
            .into_inner()
            .unwrap_or_else(|p| p.into_inner());
        let fixed = self.fixed.into_inner().unwrap_or_else(|p| p.into_inner());
        if differences.is_empty() && fixed.is_empty() {
            return;
        }
        differences.sort_by_key(|d| d.known_bug.is_some());
        let mut report = String::new();
        for d in &differences {
            let kind = d
                .known_bug
                .unwrap_or("UNEXPECTED: not marked as a known bug");
            let _ = write!(
                report,
                "\n=== {}\n    [{kind}]\n--- etcd (exit {:?}) stdout:\n{}--- etcd stderr:\n{}\
                 --- oxcd (exit {:?}) stdout:\n{}--- oxcd stderr:\n{}",
                d.command,
                d.etcd.code,
                d.etcd.stdout,
                d.etcd.stderr,
                d.oxcd.code,
                d.oxcd.stdout,
                d.oxcd.stderr
            );
        }
        for command in &fixed {
            let _ = write!(
                report,
                "\n=== {command}\n    now matches etcd: remove its known_bug mark"
            );
        }
        panic!(
            "{} case(s) differ from etcd ({} unexpected), {} known bug(s) fixed:{report}",
            differences.len(),
            differences.iter().filter(|d| d.known_bug.is_none()).count(),
            fixed.len()
        );
    }
}

/// Locks ignoring poisoning: one failed case must not hide the others.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// Runs `a` and `b` on two threads and returns both results; a panic in either is resumed.
fn both<A: Send, B: Send>(a: impl FnOnce() -> A + Send, b: impl FnOnce() -> B + Send) -> (A, B) {
    std::thread::scope(|s| {
        let a = s.spawn(a);
        let b = s.spawn(b);
        match (a.join(), b.join()) {
            (Ok(a), Ok(b)) => (a, b),
            (Err(panic), _) | (_, Err(panic)) => std::panic::resume_unwind(panic),
        }
    })
}
