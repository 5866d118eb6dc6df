//! etcdctl 3.4.23's lease commands against real etcd 3.4.23 and oxcd started by the same test:
//! grant (with the minimum TTL), put --lease, timetolive --keys, list, keep-alive --once,
//! revoke (keys deleted at one revision), the answers for missing leases, expiry of a lease's
//! keys after its TTL, and leases with their keys surviving a restart. Lease IDs are chosen by
//! each server, so each side's IDs are shown as placeholders; everything else must match.

#[allow(dead_code)] // shared with etcdctl_compat.rs, which uses the rest
mod compat;

use std::time::Duration;

use compat::{Pair, Side};
use oxcd_tests::etcd::poll_until;

/// `lease grant TTL` on one side; the ID in hex, as etcdctl prints it.
fn grant(side: &Side, ttl: &str) -> String {
    let out = side.ok(&["lease", "grant", ttl], None);
    out.split_whitespace()
        .nth(1)
        .unwrap_or_else(|| panic!("no lease ID in {out:?}"))
        .to_string()
}

/// Grants `ttl` on one side and shows the ID (hex and decimal) as `placeholder`.
fn grant_shown_as(side: &mut Side, ttl: &str, placeholder: &'static str) -> String {
    let id = grant(side, ttl);
    let decimal = i64::from_str_radix(&id, 16).unwrap().to_string();
    side.alias(id.clone(), placeholder);
    side.alias(decimal, placeholder);
    id
}

/// Grants `ttl` on both sides and shows the two IDs (hex and decimal) as `placeholder`.
fn grant_both(pair: &mut Pair, ttl: &str, placeholder: &'static str) -> (String, String) {
    let etcd = grant_shown_as(&mut pair.etcd, ttl, placeholder);
    let oxcd = grant_shown_as(&mut pair.oxcd, ttl, placeholder);
    (etcd, oxcd)
}

/// Runs `args`, with `{L}` replaced by each side's own lease ID, on both; asserts equal output.
/// In JSON output the keys' `lease` numbers (each server's own IDs) are blanked; the text forms
/// of the IDs show as placeholders.
fn both(pair: &Pair, ids: &(String, String), args: &[&str]) -> compat::Run {
    both_with(pair, ids, args, |run| run)
}

/// [`both`], with `adjust` applied to each side's run before comparing.
fn both_with(
    pair: &Pair,
    ids: &(String, String),
    args: &[&str],
    adjust: impl Fn(compat::Run) -> compat::Run,
) -> compat::Run {
    let with = |id: &str| -> Vec<String> { args.iter().map(|a| a.replace("{L}", id)).collect() };
    let etcd_args = with(&ids.0);
    let oxcd_args = with(&ids.1);
    let etcd_args: Vec<&str> = etcd_args.iter().map(String::as_str).collect();
    let oxcd_args: Vec<&str> = oxcd_args.iter().map(String::as_str).collect();
    let want = adjust(pair.etcd.run(&etcd_args, None, &["lease", "id"]));
    let got = adjust(pair.oxcd.run(&oxcd_args, None, &["lease", "id"]));
    compat::assert_same(args, &want, &got);
    want
}

/// A `lease timetolive --keys -w json` answer with what varies from run to run made stable:
/// the keys sorted (etcd lists them in Go map order) and the seconds left (`ttl`, which drops
/// as each command takes its time) hidden after checking they are within the granted TTL.
fn stable_timetolive_json(mut run: compat::Run) -> compat::Run {
    let Ok(mut value) = serde_json::from_str::<serde_json::Value>(run.stdout.trim()) else {
        return run;
    };
    if let Some(keys) = value.get_mut("keys").and_then(|keys| keys.as_array_mut()) {
        keys.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
    }
    let granted = value["granted-ttl"].as_i64();
    if let Some(ttl) = value.get_mut("ttl") {
        let left = ttl.as_i64().unwrap_or(-1);
        assert!(
            granted.is_some_and(|granted| (0..=granted).contains(&left)),
            "ttl {left} outside 0..=granted-ttl in {}",
            run.stdout
        );
        *ttl = "<ttl>".into();
    }
    run.stdout = format!("{value}\n");
    run
}

/// Text output with the seconds left (`remaining(Ns)`) hidden: they depend on how long the
/// commands before took.
fn hide_remaining(mut run: compat::Run) -> compat::Run {
    if let Some(start) = run.stdout.find("remaining(") {
        let end = start + run.stdout[start..].find(')').unwrap();
        run.stdout.replace_range(start..=end, "remaining(N)");
    }
    run
}

#[test]
fn lease_commands_match_etcd() {
    // Proves grant, put --lease, timetolive, list, keep-alive, revoke and the missing-lease
    // answers print what etcd prints, and a revoke deletes its keys at one revision.
    let mut pair = Pair::start(&[]);
    let long = grant_both(&mut pair, "100", "<lease-long>");
    let longer = grant_both(&mut pair, "200", "<lease-longer>");
    // A TTL of 1 is raised to the minimum (2 s with these timeouts). Granted, shown and
    // revoked on one side before the other, so it cannot expire in between.
    let mut short = Vec::new();
    for side in [&mut pair.etcd, &mut pair.oxcd] {
        let id = grant_shown_as(side, "1", "<lease-short>");
        let blank = ["lease", "id"];
        let shown = side.run(&["lease", "timetolive", &id], None, &blank);
        let revoked = side.run(&["lease", "revoke", &id], None, &blank);
        short.push((hide_remaining(shown), revoked));
    }
    compat::assert_same(&["lease", "timetolive", "{L}"], &short[0].0, &short[1].0);
    compat::assert_same(&["lease", "revoke", "{L}"], &short[0].1, &short[1].1);
    both(&pair, &long, &["put", "a", "1", "--lease={L}"]);
    both(&pair, &long, &["put", "b", "2", "--lease={L}"]);
    both(&pair, &long, &["get", "a", "-w", "json"]);
    both_with(
        &pair,
        &long,
        &["lease", "timetolive", "{L}", "--keys", "-w", "json"],
        stable_timetolive_json,
    );
    both(&pair, &long, &["lease", "keep-alive", "--once", "{L}"]);
    // Sorted by expiry in both: the 100 s lease, then the 200 s one.
    both(&pair, &long, &["lease", "list"]);
    both(&pair, &longer, &["lease", "revoke", "{L}"]);
    both(&pair, &long, &["lease", "revoke", "{L}"]);
    both(&pair, &long, &["get", "", "--prefix", "-w", "json"]);
    both(&pair, &long, &["lease", "timetolive", "{L}"]);
    both(&pair, &long, &["lease", "revoke", "{L}"]);
    both(&pair, &long, &["put", "c", "3", "--lease={L}"]);
    both(&pair, &long, &["lease", "keep-alive", "--once", "{L}"]);
    pair.fails(&["lease", "grant", "9000000001"]);
}

#[test]
fn expired_leases_take_their_keys_and_live_leases_survive_a_restart() {
    // Proves keys vanish after their lease's TTL plus an election timeout, and a lease with
    // its keys survives a restart on both servers alike.
    let mut pair = Pair::start(&[]);
    let short = grant_both(&mut pair, "2", "<lease-short>");
    let long = grant_both(&mut pair, "600", "<lease-long>");
    both(&pair, &short, &["put", "gone", "x", "--lease={L}"]);
    both(&pair, &long, &["put", "kept", "y", "--lease={L}"]);
    for side in [&pair.etcd, &pair.oxcd] {
        poll_until(
            Duration::from_secs(15),
            "the short lease's key to vanish",
            || {
                let out = side.ok(&["get", "gone", "--print-value-only"], None);
                Ok(out.is_empty().then_some(()))
            },
        )
        .unwrap();
    }
    both(&pair, &short, &["lease", "timetolive", "{L}"]);
    for side in [&mut pair.etcd, &mut pair.oxcd] {
        side.member.restart().unwrap();
    }
    both(&pair, &long, &["get", "kept", "-w", "json"]);
    // After a restart a leader extends every lease by an election timeout when it takes over
    // (etcd: on applying its first entry; oxcd: within 500 ms of leading), so the seconds left
    // depend on how long each start took: only those are hidden.
    let ttl = both_with(
        &pair,
        &long,
        &["lease", "timetolive", "{L}", "--keys"],
        hide_remaining,
    );
    assert!(ttl.stdout.contains("attached keys([kept])"), "{ttl:?}");
    both(&pair, &long, &["lease", "list"]);
}
