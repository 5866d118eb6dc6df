//! `benches/compare-etcd.sh` in quick mode with real etcd 3.4.23 on both sides: the script runs
//! every workload against both servers, leaves no process behind, and its JSON-lines summary
//! holds a result row with figures from both sides for every metric. Timings are never asserted.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

/// Every row the script reports, in its order.
const METRICS: [&str; 31] = [
    "put_latency_mean_ms",
    "put_latency_p99_ms",
    "put_latency_qps",
    "put_qps",
    "put_p99_ms",
    "rss_after_puts_mib",
    "peak_rss_mib",
    "range_l_qps",
    "range_l_p99_ms",
    "range_s_qps",
    "range_s_p99_ms",
    "watch_events_per_sec",
    "watch_event_p99_ms",
    "watch_create_ms",
    "watch_flood_events_per_sec",
    "watch_flood_event_p99_ms",
    "keepalive_qps",
    "keepalive_p99_ms",
    "restart_ready_secs",
    "restart_load_qps",
    "restart_stop_secs",
    "restart_data_dir_mib",
    "cluster_lat_mean_ms",
    "cluster_lat_p99_ms",
    "cluster_lat_qps",
    "cluster_leader_qps",
    "cluster_leader_p99_ms",
    "cluster_all_qps",
    "cluster_all_p99_ms",
    "cluster_start_secs",
    "cluster_stop_secs",
];

/// `$OXCD_ETCD_BIN` (as the compatibility tests use it), else `etcd` from PATH.
fn etcd_bin() -> String {
    std::env::var("OXCD_ETCD_BIN").unwrap_or_else(|_| "etcd".to_string())
}

/// The script's summary lines of `kind`, keyed by metric (results) or in order (others).
fn rows(summary: &str, kind: &str) -> Vec<Value> {
    summary
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .filter(|row| row["type"] == kind)
        .collect()
}

/// Whether a process whose command line contains `needle` is still running.
fn process_running(needle: &str) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return false;
    };
    entries.flatten().any(|entry| {
        std::fs::read(entry.path().join("cmdline"))
            .map(|cmdline| String::from_utf8_lossy(&cmdline).contains(needle))
            .unwrap_or(false)
    })
}

// Proves a quick etcd-vs-etcd run completes and reports both sides of every metric.
#[test]
fn quick_run_reports_every_metric() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("compare-etcd.sh");
    let work = tempfile::tempdir().expect("temp dir");
    let out = work.path().join("summary.jsonl");
    let mut command = Command::new("bash");
    command.arg(&script).arg("--out").arg(&out);
    for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("OXCD_CMP_")) {
        command.env_remove(name);
    }
    let output = command
        .env("OXCD_CMP_QUICK", "1")
        .env("OXCD_CMP_ETCD_BIN", etcd_bin())
        .env("OXCD_CMP_OXCD_BIN", etcd_bin())
        .env("OXCD_CMP_OXBENCH_BIN", env!("CARGO_BIN_EXE_oxbench"))
        .env("OXCD_CMP_TMPDIR", work.path())
        .output()
        .expect("bash runs the script");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "script failed ({}):\n{stdout}\n{stderr}",
        output.status
    );

    let summary = std::fs::read_to_string(&out).expect("summary file");
    let run = rows(&summary, "run");
    assert_eq!(run.len(), 1, "{summary}");
    assert_eq!(run[0]["quick"], 1, "{summary}");
    assert!(rows(&summary, "error").is_empty(), "{summary}");
    let results: BTreeMap<String, Value> = rows(&summary, "result")
        .into_iter()
        .map(|row| (row["metric"].as_str().unwrap_or("").to_string(), row))
        .collect();
    for metric in METRICS {
        let row = results
            .get(metric)
            .unwrap_or_else(|| panic!("no result row for {metric}:\n{summary}"));
        for side in ["etcd", "oxcd"] {
            let value = row[side].as_f64();
            assert!(value.is_some_and(|v| v >= 0.0), "{metric} {side}: {row}");
            assert_eq!(row[format!("{side}_samples")], 1, "{row}");
        }
        assert!(row["ratio"].is_number(), "{row}");
        assert!(
            stdout.lines().any(|line| line.starts_with(metric)),
            "{metric} missing from the table:\n{stdout}"
        );
    }
    for throughput in [
        "put_qps",
        "range_l_qps",
        "range_s_qps",
        "watch_events_per_sec",
        "watch_flood_events_per_sec",
        "keepalive_qps",
        "restart_load_qps",
        "cluster_lat_qps",
        "cluster_leader_qps",
        "cluster_all_qps",
    ] {
        assert!(
            results[throughput]["etcd"].as_f64() > Some(0.0),
            "{summary}"
        );
    }
    let samples = rows(&summary, "sample");
    assert_eq!(samples.len(), 2 * METRICS.len(), "{summary}");

    // Every server ran with a data dir under the work dir; none may outlive the script.
    let work_dir = work.path().to_string_lossy().into_owned();
    assert!(!process_running(&work_dir), "a server still runs");
}
