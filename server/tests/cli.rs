//! Runs the real `oxcd` binary: `--version`, `--help`, flag errors with etcd's words and exit
//! codes, and the notice a valid configuration gets until the server exists.

use std::process::{Command, Output};

fn oxcd(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_oxcd"))
        .args(args)
        .env_clear()
        .output()
        .expect("the oxcd binary runs")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn version_prints_both_versions() {
    // Proves --version exits 0 and prints oxcd's version and the etcd API version it serves.
    let output = oxcd(&["--version"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let stdout = String::from_utf8(output.stdout).unwrap();
    let mut lines = stdout.lines();
    assert_eq!(
        lines.next(),
        Some(format!("oxcd Version: {}", env!("CARGO_PKG_VERSION")).as_str())
    );
    assert_eq!(lines.next(), Some("etcd API version: 3.5"));
}

#[test]
fn help_lists_the_flags() {
    // Proves --help exits 0 and documents etcd's flags.
    let output = oxcd(&["--help"]);
    assert_eq!(output.status.code(), Some(0));
    let stdout = String::from_utf8(output.stdout).unwrap();
    for flag in [
        "--listen-client-urls",
        "--initial-cluster-state",
        "--config-file",
    ] {
        assert!(stdout.contains(flag), "help lacks {flag}:\n{stdout}");
    }
}

#[test]
fn unknown_flag_is_a_usage_error() {
    // Proves an unknown flag gets Go's flag-package message on one line and etcd's exit code 2.
    let output = oxcd(&["--bogus"]);
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(stderr(&output), "flag provided but not defined: -bogus\n");
}

#[test]
fn bad_initial_cluster_state_is_refused() {
    // Proves a bad --initial-cluster-state is refused as etcd refuses it, on one line, exit 2.
    let output = oxcd(&["--initial-cluster-state", "maybe"]);
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        stderr(&output),
        "invalid value \"maybe\" for flag -initial-cluster-state: invalid value\n"
    );
}

#[test]
fn validation_error_exits_1() {
    // Proves etcd's validation failures print "error verifying flags, ..." and exit 1.
    let output = oxcd(&["--election-timeout", "100"]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr(&output),
        "error verifying flags, --election-timeout[100ms] should be at least as 5 times as \
         --heartbeat-interval[100ms]. See 'oxcd --help'.\n"
    );
}

#[test]
fn unbindable_client_url_fails_with_exit_1() {
    // Proves a valid configuration whose client address cannot be bound ends with an error
    // naming it and exit code 1, instead of a member that serves nobody.
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", taken.local_addr().unwrap());
    let peer = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let peer_url = format!("http://{}", peer.local_addr().unwrap());
    drop(peer);
    let data_dir = dir.path().join("d");
    let output = oxcd(&[
        "--data-dir",
        data_dir.to_str().unwrap(),
        "--listen-client-urls",
        &url,
        "--advertise-client-urls",
        &url,
        "--listen-peer-urls",
        &peer_url,
        "--initial-advertise-peer-urls",
        &peer_url,
        "--initial-cluster",
        &format!("default={peer_url}"),
    ]);
    assert_eq!(output.status.code(), Some(1));
    let text = stderr(&output);
    assert!(text.contains("cannot serve clients"), "{text}");
}
