//! etcdctl 3.4.23's client-side concurrency commands against real etcd 3.4.23 and oxcd started
//! by the same test: `lock` (holding, queueing, hand-over on SIGINT/SIGTERM, a waiter giving up,
//! release by session-lease expiry after SIGKILL, running a command with `ETCD_LOCK_KEY` and
//! `ETCD_LOCK_REV`), `elect` (campaign, `-l` listen, take-over when the leader resigns),
//! `watch -i` (watch, `--prefix`, `--rev`, `--prev-kv`, `progress`, exec) and `watch KEY -- CMD`
//! (`ETCD_WATCH_*`), `lease keep-alive` until its lease is revoked, and 8 processes taking turns
//! at one lock around a guarded read-modify-write.
//!
//! etcdctl builds locks and elections itself from KV, Lease and Watch (clientv3/concurrency), so
//! each scenario runs once against each server and writes a transcript: what every etcdctl
//! process printed at each step, and how it exited. The two transcripts must be equal once lease
//! IDs, which each server chooses, read `<lease-N>` (N counts IDs in order of first appearance).
//! A step that never happens is recorded as timed out rather than panicking, so a failure shows
//! both whole transcripts side by side.
//!
//! Every etcdctl runs in a process group of its own; an [`Etcdctl`] that has not been reaped kills
//! its group when dropped, so no etcdctl, nor a command it started, outlives a failing test.

#[allow(dead_code)] // shared with etcdctl_compat.rs, which uses the rest
mod compat;

use std::io::{Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use compat::{Pair, Side};
use oxcd_tests::etcd::etcdctl_bin;

/// How long any one expected step may take (a lease expiry included) before it counts as missed.
const STEP_TIMEOUT: Duration = Duration::from_secs(20);
const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// Marks a transcript entry whose step did not happen within [`STEP_TIMEOUT`].
const TIMED_OUT: &str = "(timed out)";

/// A shell function for scripts run under etcdctl: the same etcdctl binary, endpoints inherited.
const SH_CTL: &str = r#"ctl() { "${OXCD_ETCDCTL_BIN:-etcdctl}" "$@"; }"#;

/// One etcdctl process in the background against one member, endpoints given through
/// `ETCDCTL_ENDPOINTS` so commands it runs inherit them. Output is collected as it comes.
struct Etcdctl {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    readers: Vec<JoinHandle<()>>,
    /// Set once the process is reaped; until then its pid (and group ID) cannot be reused.
    status: Option<ExitStatus>,
    /// How much of stdout is already in a transcript.
    recorded: usize,
}

/// Copies everything `from` yields into `into` until end of file.
fn collect(mut from: impl Read + Send + 'static, into: Arc<Mutex<Vec<u8>>>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = from.read(&mut buf) {
            into.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    })
}

impl Etcdctl {
    /// Starts `etcdctl ARGS` against `side`; `stdin` piped only if `interactive`.
    fn start(side: &Side, args: &[&str], interactive: bool) -> Etcdctl {
        let mut child = Command::new(etcdctl_bin())
            .env("ETCDCTL_API", "3")
            .env("ETCDCTL_ENDPOINTS", side.member.client_url())
            .args(args)
            .stdin(if interactive {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run etcdctl {args:?}: {e}"));
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let readers = vec![
            collect(child.stdout.take().unwrap(), Arc::clone(&stdout)),
            collect(child.stderr.take().unwrap(), Arc::clone(&stderr)),
        ];
        Etcdctl {
            stdin: child.stdin.take(),
            child,
            stdout,
            stderr,
            readers,
            status: None,
            recorded: 0,
        }
    }

    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.stdout.lock().unwrap()).into_owned()
    }

    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned()
    }

    /// Stdout printed since the last call.
    fn new_stdout(&mut self) -> String {
        let all = self.stdout.lock().unwrap().clone();
        let start = self.recorded.min(all.len());
        self.recorded = all.len();
        String::from_utf8_lossy(&all[start..]).into_owned()
    }

    /// Polls until stdout satisfies `until`; false if it did not within [`STEP_TIMEOUT`].
    fn wait_stdout(&self, until: impl Fn(&str) -> bool) -> bool {
        let deadline = Instant::now() + STEP_TIMEOUT;
        loop {
            if until(&self.stdout()) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// Waits up to `timeout` for the process to exit and its output to be read to the end.
    fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        while self.status.is_none() {
            self.status = self.child.try_wait().expect("waitpid on etcdctl");
            if self.status.is_none() {
                if Instant::now() >= deadline {
                    return None;
                }
                std::thread::sleep(POLL_INTERVAL);
            }
        }
        // A command etcdctl started may still hold the pipes; read what is there by the deadline.
        while self.readers.iter().any(|r| !r.is_finished()) && Instant::now() < deadline {
            std::thread::sleep(POLL_INTERVAL);
        }
        self.status
    }

    /// Sends `signal` (a name `kill -s` knows: INT, TERM, KILL) to the etcdctl process alone.
    fn signal(&self, signal: &str) {
        assert!(self.status.is_none(), "signal {signal} to a reaped etcdctl");
        let sent = Command::new("kill")
            .args(["-s", signal, &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(sent.success(), "kill -s {signal} {}", self.child.id());
    }

    /// Writes one line to the process's stdin (interactive commands).
    fn write_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("etcdctl started interactive");
        writeln!(stdin, "{line}").expect("write to etcdctl's stdin");
        stdin.flush().expect("flush etcdctl's stdin");
    }

    fn close_stdin(&mut self) {
        self.stdin = None;
    }
}

impl Drop for Etcdctl {
    fn drop(&mut self) {
        if self.status.is_none() {
            // Not reaped, so the group ID (the pid) still names this process's group.
            let _ = Command::new("kill")
                .args(["-s", "KILL", "--", &format!("-{}", self.child.id())])
                .stderr(Stdio::null())
                .status();
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `text` has at least `n` line ends.
fn lines_at_least(n: usize) -> impl Fn(&str) -> bool {
    move |text| text.matches('\n').count() >= n
}

/// Shows every run of 12 to 16 hex digits — a lease ID as etcdctl prints it, zero-padded
/// (`lease ...`) or not (lock and election keys) — as `<lease-N>`; `seen` holds the IDs met so
/// far, in order of first appearance. Member IDs, the only other such numbers in these outputs,
/// are replaced before this runs.
fn number_leases(text: &str, seen: &mut Vec<u64>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(|c: char| c.is_ascii_hexdigit()) {
        out.push_str(&rest[..start]);
        let tail = &rest[start..];
        let len = tail
            .find(|c: char| !c.is_ascii_hexdigit())
            .unwrap_or(tail.len());
        let run = &tail[..len];
        match u64::from_str_radix(run, 16) {
            Ok(id) if (12..=16).contains(&len) => {
                let n = match seen.iter().position(|&s| s == id) {
                    Some(at) => at + 1,
                    None => {
                        seen.push(id);
                        seen.len()
                    }
                };
                out.push_str(&format!("<lease-{n}>"));
            }
            _ => out.push_str(run),
        }
        rest = &tail[len..];
    }
    out.push_str(rest);
    out
}

/// `remaining(7s)` -> `remaining(N)`: seconds left depend on when the command ran.
fn hide_remaining(text: &str) -> String {
    match text.find("remaining(") {
        Some(start) => match text[start..].find(')') {
            Some(len) => format!("{}remaining(N){}", &text[..start], &text[start + len + 1..]),
            None => text.to_string(),
        },
        None => text.to_string(),
    }
}

/// Collapses runs of equal lines into one: how many keep-alive lines print depends on timing.
fn distinct_runs(text: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for line in text.lines() {
        if out.last() != Some(&line) {
            out.push(line);
        }
    }
    out.iter().map(|l| format!("{l}\n")).collect()
}

/// How a process ended (or that it did not), and what it printed.
fn exit_report(status: Option<ExitStatus>, stdout: &str, stderr: &str) -> String {
    let how = match status {
        None => TIMED_OUT.to_string(),
        Some(status) => match (status.code(), status.signal()) {
            (Some(code), _) => format!("exit {code}"),
            (None, signal) => format!("killed by signal {signal:?}"),
        },
    };
    format!("{how}\n--- stdout\n{stdout}--- stderr\n{stderr}")
}

/// What one scenario saw on one server, step by step, normalised.
struct Transcript<'a> {
    side: &'a Side,
    leases: Vec<u64>,
    entries: Vec<String>,
}

impl<'a> Transcript<'a> {
    fn new(side: &'a Side) -> Transcript<'a> {
        Transcript {
            side,
            leases: Vec::new(),
            entries: Vec::new(),
        }
    }

    fn start(&self, args: &[&str]) -> Etcdctl {
        Etcdctl::start(self.side, args, false)
    }

    /// The raw hex ID behind `<lease-N>` on this server (for commands that name a lease key).
    fn lease(&self, n: usize) -> String {
        self.leases
            .get(n - 1)
            .map_or_else(|| format!("no-lease-{n}-seen"), |id| format!("{id:x}"))
    }

    /// Records `text` (already normalised by the side) under `label`.
    fn note(&mut self, label: &str, text: &str) {
        let text = number_leases(text, &mut self.leases);
        self.entries.push(format!("{label}:\n{text}"));
    }

    /// Records raw output of a background etcdctl.
    fn record(&mut self, label: &str, raw: &str) {
        let text = self.side.normalise_text(raw);
        self.note(label, &text);
    }

    /// Runs a short etcdctl command to its end and records its exit code and output.
    fn ctl(&mut self, label: &str, args: &[&str]) {
        let run = self.side.run(args, None, &[]);
        let how = run
            .code
            .map_or("killed by a signal".to_string(), |c| format!("exit {c}"));
        let text = format!("{how}\n{}{}", hide_remaining(&run.stdout), run.stderr);
        self.note(label, &text);
    }

    /// Waits until `proc`'s stdout satisfies `until`, then records what it printed since the
    /// last record.
    fn await_output(&mut self, label: &str, proc: &mut Etcdctl, until: impl Fn(&str) -> bool) {
        let mark = if proc.wait_stdout(until) {
            ""
        } else {
            TIMED_OUT
        };
        let text = format!("{mark}{}", proc.new_stdout());
        self.record(label, &text);
    }

    /// Records what `proc` printed since the last record, without waiting: it must be nothing
    /// more while it waits for a lock or an election (checked after a step that takes a while).
    fn still_waiting(&mut self, label: &str, proc: &mut Etcdctl) {
        let text = proc.new_stdout();
        self.record(label, &text);
    }

    /// Waits for `proc` to exit and records how, with the rest of its stdout and all of stderr.
    fn await_exit(&mut self, label: &str, proc: &mut Etcdctl) {
        let status = proc.wait_exit(STEP_TIMEOUT);
        let stdout = proc.new_stdout();
        self.record(label, &exit_report(status, &stdout, &proc.stderr()));
    }

    /// Polls until exactly `count` keys exist under `prefix/`, then records them.
    fn await_keys(&mut self, label: &str, prefix: &str, count: usize) {
        let args = ["get", &format!("{prefix}/"), "--prefix", "--keys-only"];
        let deadline = Instant::now() + STEP_TIMEOUT;
        let keys = loop {
            let run = self.side.run(&args, None, &[]);
            let found = run.stdout.lines().filter(|l| !l.is_empty()).count();
            if found == count {
                break run.stdout;
            }
            if Instant::now() >= deadline {
                break format!("{TIMED_OUT} {found} keys\n{}", run.stdout);
            }
            std::thread::sleep(POLL_INTERVAL);
        };
        self.note(label, &keys);
    }
}

/// Runs `scenario` against etcd and oxcd at once and asserts equal transcripts; returns etcd's,
/// which must show every step happening.
fn compare(pair: &Pair, scenario: fn(&mut Transcript)) -> Vec<String> {
    let run = |side: &Side| {
        let mut transcript = Transcript::new(side);
        scenario(&mut transcript);
        transcript.entries
    };
    let (want, got) = std::thread::scope(|s| {
        let etcd = s.spawn(|| run(&pair.etcd));
        let oxcd = s.spawn(|| run(&pair.oxcd));
        let join = |h: std::thread::ScopedJoinHandle<'_, Vec<String>>| {
            h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))
        };
        (join(etcd), join(oxcd))
    });
    if want != got {
        let first = want
            .iter()
            .zip(&got)
            .position(|(w, g)| w != g)
            .unwrap_or(want.len().min(got.len()));
        panic!(
            "oxcd differs from etcd from step {first} on\n=== etcd:\n{}\n=== oxcd:\n{}",
            want[first..].join("\n"),
            got[first..].join("\n"),
        );
    }
    let missed: Vec<&String> = want.iter().filter(|e| e.contains(TIMED_OUT)).collect();
    assert!(missed.is_empty(), "steps etcd never took: {missed:#?}");
    want
}

/// Panics unless `transcript` has an entry `label` reading `text`.
fn assert_entry(transcript: &[String], label: &str, text: &str) {
    let entry = format!("{label}:\n{text}");
    assert!(
        transcript.contains(&entry),
        "no entry {entry:?} in {transcript:#?}"
    );
}

/// Two holders of `jobs` in turn, a waiter that gives up, and a holder that dies without
/// unlocking.
fn lock_scenario(t: &mut Transcript) {
    let mut first = t.start(&["lock", "jobs"]);
    t.await_output("first holds", &mut first, lines_at_least(2));
    let mut second = t.start(&["lock", "jobs"]);
    t.await_keys("second queued", "jobs", 2);
    t.ctl(
        "first's key is on its session lease",
        &["lease", "timetolive", &t.lease(1), "--keys"],
    );
    t.still_waiting("second while first holds", &mut second);
    first.signal("INT");
    t.await_exit("first after SIGINT", &mut first);
    t.await_output("second holds", &mut second, lines_at_least(2));
    t.await_keys("after the hand-over", "jobs", 1);

    let mut third = t.start(&["lock", "jobs"]);
    t.await_keys("third queued", "jobs", 2);
    third.signal("TERM");
    t.await_exit("third, still waiting, after SIGTERM", &mut third);
    t.await_keys("third's key withdrawn", "jobs", 1);
    second.signal("TERM");
    t.await_exit("second after SIGTERM", &mut second);
    t.await_keys("all released", "jobs", 0);

    // SIGKILL leaves no chance to unlock: the key goes when its session lease (3 s) expires.
    let mut doomed = t.start(&["lock", "--ttl=3", "crash"]);
    t.await_output("doomed holds", &mut doomed, lines_at_least(2));
    let mut heir = t.start(&["lock", "crash"]);
    t.await_keys("heir queued", "crash", 2);
    doomed.signal("KILL");
    t.await_exit("doomed after SIGKILL", &mut doomed);
    t.await_output(
        "heir holds once the lease expired",
        &mut heir,
        lines_at_least(2),
    );
    t.await_keys("only heir's key left", "crash", 1);
    heir.signal("INT");
    t.await_exit("heir after SIGINT", &mut heir);
}

#[test]
fn lock_holds_queues_and_hands_over_like_etcd() {
    // Proves etcdctl lock prints the same ownership keys, blocks and hands over in the same order,
    // and releases on SIGINT/SIGTERM or lease expiry after SIGKILL on oxcd as on etcd.
    let pair = Pair::start(&[]);
    let etcd = compare(&pair, lock_scenario);
    assert_entry(&etcd, "second while first holds", "");
    assert_entry(&etcd, "second holds", "jobs/<lease-2>\n\n");
    assert_entry(
        &etcd,
        "heir holds once the lease expired",
        "crash/<lease-5>\n\n",
    );
}

/// Prints the lock environment and the lock keys from inside the lock.
const SHOW_LOCK: &str =
    r#"echo "key=$ETCD_LOCK_KEY rev=$ETCD_LOCK_REV"; ctl get jobs --prefix --keys-only"#;

/// `lock NAME -- CMD`: uncontended, failing, missing, and queued behind a holder.
fn lock_command_scenario(t: &mut Transcript) {
    let show = format!("{SH_CTL}; {SHOW_LOCK}");
    t.ctl("a first write", &["put", "before", "x"]);
    let mut alone = t.start(&["lock", "jobs", "--", "sh", "-c", &show]);
    t.await_exit("command under an uncontended lock", &mut alone);
    t.await_keys("unlocked after the command", "jobs", 0);

    let mut failing = t.start(&["lock", "jobs", "--", "sh", "-c", "echo no >&2; exit 3"]);
    t.await_exit("failing command", &mut failing);
    t.await_keys("unlocked after the failure", "jobs", 0);
    let mut missing = t.start(&["lock", "jobs", "--", "/nonexistent/command"]);
    t.await_exit("missing command", &mut missing);
    t.await_keys("unlocked after the missing command", "jobs", 0);

    let mut holder = t.start(&["lock", "jobs"]);
    t.await_output("holder holds", &mut holder, lines_at_least(2));
    let mut queued = t.start(&["lock", "jobs", "--", "sh", "-c", &show]);
    t.await_keys("command queued", "jobs", 2);
    t.still_waiting("queued command before the hand-over", &mut queued);
    holder.signal("INT");
    t.await_exit("holder after SIGINT", &mut holder);
    t.await_exit("command after the hand-over", &mut queued);
    t.await_keys("all released", "jobs", 0);
}

#[test]
fn lock_runs_a_command_like_etcd() {
    // Proves etcdctl lock NAME -- CMD gives the command the same ETCD_LOCK_KEY/ETCD_LOCK_REV,
    // output and exit status, and unlocks after it, on oxcd as on etcd.
    let pair = Pair::start(&[]);
    let etcd = compare(&pair, lock_command_scenario);
    assert_entry(
        &etcd,
        "command under an uncontended lock",
        "exit 0\n--- stdout\nkey=jobs/<lease-1> rev=3\njobs/<lease-1>\n\n--- stderr\n",
    );
    assert_entry(
        &etcd,
        "failing command",
        "exit 1\n--- stdout\n--- stderr\nno\nError: exit status 3\n",
    );
}

/// An observer, a leader, a queued candidate taking over when the leader resigns.
fn election_scenario(t: &mut Transcript) {
    let mut observer = t.start(&["elect", "-l", "office"]);
    let mut alice = t.start(&["elect", "office", "alice"]);
    t.await_output("alice elected", &mut alice, lines_at_least(2));
    t.await_output("observer sees alice", &mut observer, lines_at_least(2));
    let mut bob = t.start(&["elect", "office", "bob"]);
    t.await_keys("bob queued", "office", 2);
    t.ctl("candidates", &["get", "office/", "--prefix"]);
    t.still_waiting("bob while alice leads", &mut bob);
    // A new value on the leader's key (what a proclamation writes) reaches observers.
    let leader_key = format!("office/{}", t.lease(1));
    t.ctl("alice's key rewritten", &["put", &leader_key, "alice-2"]);
    t.await_output("observer sees alice-2", &mut observer, lines_at_least(4));
    alice.signal("TERM");
    t.await_exit("alice resigns on SIGTERM", &mut alice);
    t.await_output("bob elected", &mut bob, lines_at_least(2));
    t.await_output("observer sees bob", &mut observer, lines_at_least(6));
    t.await_keys("only bob's key", "office", 1);
    bob.signal("INT");
    t.await_exit("bob resigns on SIGINT", &mut bob);
    t.await_keys("no candidates", "office", 0);
    observer.signal("INT");
    t.await_exit("observer after SIGINT", &mut observer);
}

#[test]
fn elect_campaigns_and_listens_like_etcd() {
    // Proves etcdctl elect (campaign) and elect -l (listen) print the same leaders and values,
    // and a queued candidate takes over when the leader resigns, on oxcd as on etcd.
    let pair = Pair::start(&[]);
    let etcd = compare(&pair, election_scenario);
    assert_entry(&etcd, "bob while alice leads", "");
    assert_entry(&etcd, "bob elected", "office/<lease-2>\nbob\n");
    assert_entry(&etcd, "observer sees bob", "office/<lease-2>\nbob\n");
}

/// Prints every `ETCD_WATCH_*` variable a watch command gets.
const PRINT_WATCH_ENV: [&str; 5] = [
    "printenv",
    "ETCD_WATCH_REVISION",
    "ETCD_WATCH_EVENT_TYPE",
    "ETCD_WATCH_KEY",
    "ETCD_WATCH_VALUE",
];

/// `watch -i` with its commands, then `watch KEY -- CMD` outside interactive mode.
fn watch_scenario(t: &mut Transcript) {
    t.ctl("seed", &["put", "a", "0"]);
    let mut watch = Etcdctl::start(t.side, &["watch", "-i"], true);
    // A progress request goes out on the same stream after the watch request, so its answer
    // (broadcast to every watcher) shows the watchers are in place before the next put.
    watch.write_line("watch a");
    watch.write_line("progress");
    t.await_output("watch a, progress", &mut watch, lines_at_least(1));
    t.ctl("put a", &["put", "a", "1"]);
    t.await_output("event on a", &mut watch, lines_at_least(4));
    watch.write_line("watch --prefix b");
    watch.write_line("progress");
    t.await_output("watch --prefix b, progress", &mut watch, lines_at_least(6));
    t.ctl("put b/x", &["put", "b/x", "2"]);
    t.await_output("event on b/x", &mut watch, lines_at_least(9));
    watch.write_line("watch --rev=2 --prev-kv a");
    t.await_output("history of a with prev-kv", &mut watch, lines_at_least(17));
    watch.write_line(&format!("watch x -- {}", PRINT_WATCH_ENV.join(" ")));
    watch.write_line("progress");
    t.await_output(
        "watch x -- printenv, progress",
        &mut watch,
        lines_at_least(21),
    );
    t.ctl("put x", &["put", "x", "v v"]);
    t.ctl("del x", &["del", "x"]);
    t.await_output(
        "events on x and their commands",
        &mut watch,
        lines_at_least(35),
    );
    for line in ["frob", "", "watch", "watch a --prefix c"] {
        watch.write_line(line);
    }
    watch.close_stdin();
    t.await_exit("watch -i at the end of its input", &mut watch);

    // Outside interactive mode there is no progress request to wait on: the watch starts at the
    // next revision, so it sees the same events however late it starts.
    let next = format!("--rev={}", t.side.revision() + 1);
    let mut args = vec!["watch", next.as_str(), "k", "--"];
    args.extend(PRINT_WATCH_ENV);
    let mut exec = t.start(&args);
    // One event at a time: a watcher that connects after both writes would get them in one
    // response (one revision in both commands' ETCD_WATCH_REVISION), on etcd as on oxcd.
    t.ctl("put k", &["put", "k", "v1"]);
    t.await_output("event put k and its command", &mut exec, lines_at_least(7));
    t.ctl("del k", &["del", "k"]);
    t.await_output("event del k and its command", &mut exec, lines_at_least(14));
    exec.signal("INT");
    t.await_exit("watch -- printenv after SIGINT", &mut exec);
    let next = format!("--rev={}", t.side.revision() + 1);
    let fails = "echo ran >&2; exit 3";
    let mut failing = t.start(&["watch", &next, "k", "--", "sh", "-c", fails]);
    t.ctl("put k again", &["put", "k", "v2"]);
    t.await_exit("watch whose command fails", &mut failing);
}

#[test]
fn watch_interactive_and_exec_like_etcd() {
    // Proves etcdctl watch -i (watch, --prefix, --rev, --prev-kv, progress, exec) and watch KEY
    // -- CMD with its ETCD_WATCH_* variables print and exit on oxcd as on etcd.
    let pair = Pair::start(&[]);
    let etcd = compare(&pair, watch_scenario);
    assert_entry(&etcd, "watch a, progress", "progress notify: 2\n");
    assert_entry(
        &etcd,
        "event put k and its command",
        "PUT\nk\nv1\n7\n\"PUT\"\n\"k\"\n\"v1\"\n",
    );
    assert_entry(
        &etcd,
        "event del k and its command",
        "DELETE\nk\n\n8\n\"DELETE\"\n\"k\"\n\"\"\n",
    );
}

/// `lease keep-alive` until revoked, on a revoked lease, and stopped so its lease expires.
/// Keep-alive answers come once a third of the TTL, so how many print depends on timing: runs
/// of equal lines count once.
fn keep_alive_scenario(t: &mut Transcript) {
    t.ctl("grant", &["lease", "grant", "3"]);
    let id = t.lease(1);
    let mut keeper = t.start(&["lease", "keep-alive", &id]);
    // Four answers a second apart: the lease has outlived its 3 s TTL.
    let answered = keeper.wait_stdout(lines_at_least(4));
    let text = format!(
        "{}{}",
        if answered { "" } else { TIMED_OUT },
        keeper.stdout()
    );
    t.record("keep-alive answers", &distinct_runs(&text));
    let alive = t.side.run(&["lease", "timetolive", &id], None, &[]);
    t.note("alive past its TTL", &hide_remaining(&alive.stdout));
    t.ctl("revoke", &["lease", "revoke", &id]);
    let status = keeper.wait_exit(STEP_TIMEOUT);
    let report = exit_report(status, &distinct_runs(&keeper.stdout()), &keeper.stderr());
    t.record("keep-alive after the revoke", &report);
    let mut late = t.start(&["lease", "keep-alive", &id]);
    t.await_exit("keep-alive of a revoked lease", &mut late);

    t.ctl("second grant", &["lease", "grant", "3"]);
    let id = t.lease(2);
    let mut stopped = t.start(&["lease", "keep-alive", &id]);
    stopped.wait_stdout(lines_at_least(1));
    stopped.signal("INT");
    let status = stopped.wait_exit(STEP_TIMEOUT);
    let report = exit_report(status, &distinct_runs(&stopped.stdout()), &stopped.stderr());
    t.record("keep-alive after SIGINT", &report);
    let deadline = Instant::now() + STEP_TIMEOUT;
    let expired = loop {
        let run = t.side.run(&["lease", "timetolive", &id], None, &[]);
        if run.stdout.contains("already expired") || Instant::now() >= deadline {
            break run.stdout;
        }
        std::thread::sleep(POLL_INTERVAL);
    };
    t.note(
        "lease once nothing keeps it alive",
        &hide_remaining(&expired),
    );
}

#[test]
fn lease_keep_alive_runs_until_revoked_like_etcd() {
    // Proves etcdctl lease keep-alive prints the same answers, keeps its lease past its TTL and
    // ends with "expired or revoked." when the lease is revoked, on oxcd as on etcd.
    let pair = Pair::start(&[]);
    let etcd = compare(&pair, keep_alive_scenario);
    assert_entry(
        &etcd,
        "keep-alive after the revoke",
        "exit 0\n--- stdout\nlease <lease-1> keepalived with TTL(3)\n\
         lease <lease-1> expired or revoked.\n--- stderr\n",
    );
    assert_entry(
        &etcd,
        "lease once nothing keeps it alive",
        "lease <lease-2> already expired\n",
    );
}

const WORKERS: usize = 8;
const HOLDS_PER_WORKER: usize = 6;
/// How long one `etcdctl lock` may wait in a queue of all the workers.
const HOLD_TIMEOUT: Duration = Duration::from_secs(90);

/// Run under the lock: checks the lock's oldest key is ours, reads `counter` and writes it plus
/// one in a txn that fails if `counter` changed since the read. Any second holder shows up as a
/// failed check or txn, i.e. a non-zero exit.
const INCREMENT: &str = r#"set -e
owner=$(ctl get counter-lock/ --prefix --sort-by=CREATE --order=ASCEND --limit=1 --keys-only | head -n 1)
[ "$owner" = "$ETCD_LOCK_KEY" ] || { echo "owner $owner, not $ETCD_LOCK_KEY" >&2; exit 1; }
read=$(ctl get counter -w fields)
rev=$(printf '%s\n' "$read" | sed -n 's/^"ModRevision" : //p')
value=$(printf '%s\n' "$read" | sed -n 's/^"Value" : "\(.*\)"$/\1/p')
next=$((${value:-0} + 1))
result=$(printf 'mod("counter") = "%s"\n\nput counter %s\n\n\n' "${rev:-0}" "$next" | ctl txn)
[ "${result%%[!A-Z]*}" = SUCCESS ] || { echo "guarded txn failed: $result" >&2; exit 1; }"#;

/// What the workers did on one server.
#[derive(Debug, PartialEq, Eq)]
struct Contention {
    holds: usize,
    counter: String,
    failures: Vec<String>,
    keys_left: String,
}

/// [`WORKERS`] threads each take the lock [`HOLDS_PER_WORKER`] times, incrementing `counter`.
fn contend(side: &Side) -> Contention {
    let script = format!("{SH_CTL}\n{INCREMENT}");
    let args = ["lock", "counter-lock", "--", "sh", "-c", &script];
    let started = Instant::now();
    let results: Vec<Result<(), String>> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..WORKERS)
            .map(|_| {
                s.spawn(|| {
                    (0..HOLDS_PER_WORKER)
                        .map(|_| {
                            let mut lock = Etcdctl::start(side, &args, false);
                            match lock.wait_exit(HOLD_TIMEOUT) {
                                Some(status) if status.success() => Ok(()),
                                status => Err(format!("{status:?}: {}", lock.stderr())),
                            }
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("worker thread"))
            .collect()
    });
    eprintln!(
        "{} lock holds on {} in {:?}",
        results.len(),
        side.member.flavor().name(),
        started.elapsed()
    );
    let counter = side.ok(&["get", "counter", "--print-value-only"], None);
    let keys_left = side.ok(&["get", "counter-lock/", "--prefix", "--keys-only"], None);
    Contention {
        holds: results.iter().filter(|r| r.is_ok()).count(),
        counter,
        failures: results.into_iter().filter_map(Result::err).collect(),
        keys_left,
    }
}

#[test]
fn lock_excludes_concurrent_holders() {
    // Proves 8 etcdctl lock processes taking turns never overlap on oxcd (nor on etcd): every
    // guarded read-modify-write under the lock succeeds and the counter equals the holds.
    let pair = Pair::start(&[]);
    let expected = Contention {
        holds: WORKERS * HOLDS_PER_WORKER,
        counter: format!("{}\n", WORKERS * HOLDS_PER_WORKER),
        failures: Vec::new(),
        keys_left: String::new(),
    };
    assert_eq!(contend(&pair.etcd), expected, "etcd, the reference");
    assert_eq!(contend(&pair.oxcd), expected, "oxcd");
}
