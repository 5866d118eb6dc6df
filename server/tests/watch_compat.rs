//! etcdctl 3.4.23's `watch` against real etcd 3.4.23 and oxcd started by the same test: the
//! same history replayed with `--rev`, key ranges, `--prefix` and `--prev-kv` prints the same
//! events on both, and a start below the compaction revision ends with etcd's message.

#[allow(dead_code)] // shared with etcdctl_compat.rs, which uses the rest
mod compat;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use compat::{Pair, Side};

/// Runs `etcdctl watch ARGS` until it has printed `lines` lines or exited (or 10 s passed),
/// then kills it; returns what it printed, stdout then stderr.
fn watch_output(side: &Side, args: &[&str], lines: usize) -> String {
    let etcdctl = std::env::var("OXCD_ETCDCTL_BIN").unwrap_or_else(|_| "etcdctl".to_string());
    let mut child = Command::new(etcdctl)
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={}", side.member.client_url()))
        .arg("watch")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("etcdctl runs");
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
            if out.iter().filter(|&&b| b == b'\n').count() >= lines {
                break;
            }
        }
        out
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while !reader.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    let out = reader.join().unwrap();
    let mut err = String::new();
    if let Some(mut stderr) = child.stderr.take() {
        let _ = stderr.read_to_string(&mut err);
    }
    let err: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("watch was canceled"))
        .collect();
    format!("{}{}", String::from_utf8_lossy(&out), err.join("\n"))
}

#[test]
fn watch_replays_history_like_etcd() {
    // Proves watch --rev over ranges, prefixes and prev-kv prints what etcd prints, and a
    // compacted start is cancelled with etcd's message.
    let pair = Pair::start(&[]);
    for args in [
        ["put", "a", "1"],
        ["put", "a", "2"],
        ["del", "a", ""],
        ["put", "b", "3"],
        ["put", "c", "4"],
    ] {
        let args: Vec<&str> = args.iter().copied().filter(|a| !a.is_empty()).collect();
        pair.ok(&args);
    }
    for (args, lines) in [
        (vec!["--rev=1", "a"], 9),
        (vec!["--rev=1", "a", "c"], 12),
        (vec!["--rev=1", "--prefix", ""], 15),
        (vec!["--rev=2", "--prev-kv", "a"], 13),
    ] {
        let want = watch_output(&pair.etcd, &args, lines);
        let got = watch_output(&pair.oxcd, &args, lines);
        assert_eq!(got, want, "etcdctl watch {args:?}");
        assert_eq!(want.lines().count(), lines, "{want}");
    }
    pair.ok(&["compaction", "4"]);
    let want = watch_output(&pair.etcd, &["--rev=2", "a"], 1);
    let got = watch_output(&pair.oxcd, &["--rev=2", "a"], 1);
    assert_eq!(got, want, "watch below the compaction");
    assert!(
        want.contains("required revision has been compacted"),
        "{want}"
    );
}
