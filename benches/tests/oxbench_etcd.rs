//! `oxbench` against a real etcd 3.4.23: every workload completes, the counts in its summary are
//! right, the keys land in etcd, and a server error makes it fail.

use std::process::{Command, Output};

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
