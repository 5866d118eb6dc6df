//! `oxbench` against a real etcd 3.4.23: every workload completes, the counts in its summary are
//! right, the keys land in etcd, a server error makes it fail, and `watch` verifies every event
//! (and fails when events it did not cause reach its watchers).

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use oxcd_tests::etcd::poll_until;
use oxcd_tests::Etcd;
use serde_json::Value;

fn oxbench(etcd: &Etcd, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_oxbench"))
        .arg(format!("--endpoints={}", etcd.client_url()))
        .args(args)
        .output()
        .expect("oxbench runs")
}

/// Runs oxbench with `--json`, requires success, and returns the summary.
fn summary(etcd: &Etcd, args: &[&str]) -> Value {
    let mut with_json = args.to_vec();
    with_json.push("--json");
    let output = oxbench(etcd, &with_json);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "oxbench {args:?} failed ({}): {stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

fn assert_all_succeeded(summary: &Value, command: &str, total: u64) {
    assert_eq!(summary["command"], command, "{summary}");
    assert_eq!(summary["succeeded"], total, "{summary}");
    assert_eq!(summary["failed"], 0, "{summary}");
    assert!(
        summary["requests_per_sec"].as_f64().unwrap() > 0.0,
        "{summary}"
    );
    let bucketed: u64 = summary["histogram"]
        .as_array()
        .unwrap()
        .iter()
        .map(|bucket| bucket["count"].as_u64().unwrap())
        .sum();
    assert_eq!(bucketed, total, "{summary}");
    assert_eq!(
        summary["percentiles"].as_array().unwrap().len(),
        8,
        "{summary}"
    );
}

/// Number of keys etcd holds (every key sorts at or after "\0"; etcdctl 3.4 has no
/// --count-only, but its JSON carries the range's count).
fn key_count(etcd: &Etcd) -> u64 {
    let out = etcd
        .ctl(&["get", "", "--from-key", "--keys-only", "-w", "json"])
        .expect("etcdctl get");
    let parsed: Value = serde_json::from_str(&out).expect("etcdctl JSON");
    parsed["count"].as_u64().unwrap_or(0)
}

// Proves put, range and txn-put complete against real etcd with exact counts and written keys.
#[test]
fn workloads_run_against_real_etcd() {
    let etcd = Etcd::start().expect("etcd starts");

    let put = summary(
        &etcd,
        &[
            "put",
            "--total",
            "200",
            "--clients",
            "4",
            "--conns",
            "2",
            "--sequential-keys",
            "--key-space-size",
            "50",
        ],
    );
    assert_all_succeeded(&put, "put", 200);
    assert_eq!(key_count(&etcd), 50);

    let range = summary(
        &etcd,
        &["range", "foo", "--total", "100", "--consistency", "s"],
    );
    assert_all_succeeded(&range, "range", 100);

    // 9-byte keys cannot collide with the 8-byte keys written by `put`.
    let txn = summary(
        &etcd,
        &[
            "txn-put",
            "--total",
            "50",
            "--key-size",
            "9",
            "--key-space-size",
            "1000",
        ],
    );
    assert_all_succeeded(&txn, "txn-put", 50);
    assert_eq!(key_count(&etcd), 100);

    let text = oxbench(&etcd, &["range", "foo", "--total", "10", "--clients", "2"]);
    assert!(text.status.success());
    let text = String::from_utf8_lossy(&text.stdout);
    for line in [
        "Total:",
        "Slowest:",
        "Fastest:",
        "Average:",
        "Stddev:",
        "Requests/sec:",
    ] {
        assert!(text.contains(line), "missing {line}: {text}");
    }
    assert!(
        text.contains("Response time histogram:") && text.contains("99.9% in"),
        "{text}"
    );
}

// Proves requests the server rejects are counted and make oxbench exit non-zero.
#[test]
fn server_errors_fail_the_run() {
    let etcd = Etcd::start().expect("etcd starts");
    // Two puts of the same key in one txn: etcd answers "duplicate key given in txn request".
    let output = oxbench(
        &etcd,
        &[
            "txn-put",
            "--total",
            "5",
            "--txn-ops",
            "2",
            "--key-space-size",
            "1",
            "--json",
        ],
    );
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let summary: Value = serde_json::from_slice(&output.stdout).expect("summary JSON");
    assert_eq!(summary["succeeded"], 0, "{summary}");
    assert_eq!(summary["failed"], 5, "{summary}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("duplicate key given in txn request"),
        "{stderr}"
    );
}

/// The revision etcd's store is at.
fn revision(etcd: &Etcd) -> u64 {
    let out = etcd.ctl(&["get", "x", "-w", "json"]).expect("etcdctl get");
    let parsed: Value = serde_json::from_str(&out).expect("etcdctl JSON");
    parsed["header"]["revision"].as_u64().unwrap_or(0)
}

// Proves watch and lease-keepalive complete against real etcd with exact, verified counts.
#[test]
fn watch_and_keepalive_run_against_real_etcd() {
    let etcd = Etcd::start().expect("etcd starts");
    let start_revision = revision(&etcd);
    // 30 watchers of 3 keys on 4 streams over 2 connections; 100 puts write each key 33 or 34
    // times, and watcher w watches key w % 3 (10 watchers each): 1,000 events.
    let watch = summary(
        &etcd,
        &[
            "--conns",
            "2",
            "--clients",
            "4",
            "--val-size",
            "16",
            "watch",
            "--watchers",
            "30",
            "--streams",
            "4",
            "--watched-key-total",
            "3",
            "--put-total",
            "100",
        ],
    );
    assert_all_succeeded(&watch, "watch", 1000);
    assert_eq!(watch["expected_events"], 1000, "{watch}");
    assert_eq!(watch["verified"], true, "{watch}");
    assert_eq!(
        watch["problems"].as_array().map(Vec::len),
        Some(0),
        "{watch}"
    );
    assert_eq!(watch["put_failed"], 0, "{watch}");
    assert!(watch["events_per_sec"].as_f64() > Some(0.0), "{watch}");
    let responses = watch["responses"].as_u64().unwrap_or(0);
    assert!((1..=1000).contains(&responses), "{watch}");
    // 100 measured puts and 3 fences.
    assert_eq!(revision(&etcd), start_revision + 103);

    let text = oxbench(
        &etcd,
        &["watch", "--watchers", "4", "--streams", "2", "--puts", "10"],
    );
    assert!(text.status.success(), "{text:?}");
    let text = String::from_utf8_lossy(&text.stdout);
    for section in [
        "Watch creation summary:",
        "Put summary",
        "Watch events received summary (40 events",
    ] {
        assert!(text.contains(section), "missing {section}: {text}");
    }

    let keepalive = summary(
        &etcd,
        &[
            "lease-keepalive",
            "--total",
            "200",
            "--clients",
            "5",
            "--conns",
            "2",
        ],
    );
    assert_all_succeeded(&keepalive, "lease-keepalive", 200);
}

// Proves watch fails when another writer's puts reach its watchers: the counts no longer match.
#[test]
fn watch_fails_when_foreign_events_arrive() {
    let etcd = Etcd::start().expect("etcd starts");
    let start_revision = revision(&etcd);
    let args = |puts: &str, rate: &str| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_oxbench"));
        command
            .arg(format!("--endpoints={}", etcd.client_url()))
            .args(["watch", "--watchers", "4", "--streams", "2"])
            .args(["--put-total", puts, "--put-rate", rate, "--json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    };
    // A puts slowly; B starts once A's puts have begun, so both runs watch the same key while
    // the other writes it.
    let slow = args("200", "40").spawn().expect("oxbench runs");
    poll_until(Duration::from_secs(30), "the first run's puts", || {
        Ok((revision(&etcd) > start_revision).then_some(()))
    })
    .expect("the first run puts");
    let fast = args("50", "0").output().expect("oxbench runs");
    let slow = slow.wait_with_output().expect("oxbench ends");
    for (name, output) in [("slow", slow), ("fast", fast)] {
        assert_eq!(output.status.code(), Some(1), "{name}: {output:?}");
        let summary: Value = serde_json::from_slice(&output.stdout).expect("summary JSON");
        assert_eq!(summary["verified"], false, "{name}: {summary}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("watch check failed"), "{name}: {stderr}");
    }
}
