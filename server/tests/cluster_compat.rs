//! etcdctl 3.4.23's cluster views against a 3-member real etcd 3.4.23 cluster and a 3-member
//! oxcd cluster started by the same test: `member list` from the leader and from a follower,
//! `endpoint status` (`--cluster` and every endpoint), `endpoint health --cluster`, `endpoint
//! hashkv --cluster` after the same writes, `move-leader` (success, to the leader itself, from a
//! follower endpoint only, unknown and malformed IDs, each output format), and `endpoint status`
//! and `endpoint health` with one member SIGKILLed. Every output format etcdctl has is tried.
//! Members are compared by the rank of their IDs; what is normalised is listed in
//! `cluster_pair::normalise`.

mod cluster_pair;
mod grpc;

use cluster_pair::normalise::{MemberFacts, Normaliser, Rows};
use cluster_pair::{At, Case, ClusterPair, Side, SIZE, WAIT};
use oxcd_server::config::ETCD_SERVER_VERSION;

/// Every `-w` value etcdctl accepts (the first is the default, simple).
const FORMATS: [&[&str]; 5] = [
    &[],
    &["-w", "table"],
    &["-w", "json"],
    &["-w", "fields"],
    &["-w", "protobuf"],
];

/// Small enough to keep the dead-member cases quick, large enough for a live member's
/// linearizable read on a loaded 2-core machine. The same on both sides.
const TIMEOUTS: [&str; 2] = ["--dial-timeout=1s", "--command-timeout=2s"];

/// `args` followed by each output format in turn.
fn in_every_format(at: At, args: &[&str]) -> Vec<Case> {
    FORMATS
        .iter()
        .map(|format| Case::new(at, &[args, format].concat()))
        .collect()
}

/// Waits until every member of `side` has applied the revision the leader is at.
fn settle(side: &Side) {
    let leader = side.index(0);
    let rev = side.cluster.status(leader).unwrap().revision;
    for i in side.cluster.running_members() {
        if let Err(e) = side.cluster.wait_revision(i, rev, WAIT) {
            panic!("{}: {e}", side.cluster.flavor().name());
        }
    }
}

#[test]
fn cluster_views_match_etcd() {
    // Proves member list, endpoint status/health/hashkv, move-leader and the dead-member views
    // print what etcd prints, in every output format, oxcd's Status version being its own.
    let pair = ClusterPair::start(grpc::oxcd_flavor(), ETCD_SERVER_VERSION);

    // member list, from the leader (<m0>) and from a follower (<m1>).
    for at in [At::Rank(0), At::Rank(1)] {
        for case in in_every_format(at, &["member", "list"]) {
            pair.check(case);
        }
    }

    // The same writes on both, replicated everywhere before anything reports revisions.
    for args in [
        &["put", "k1", "v1"][..],
        &["put", "k2", "v2"],
        &["put", "k1", "v1b"],
        &["del", "k2"],
    ] {
        pair.check(Case::new(At::Rank(1), args));
    }
    settle(&pair.etcd);
    settle(&pair.oxcd);

    for case in in_every_format(At::Rank(0), &["endpoint", "status", "--cluster"]) {
        pair.check(case);
    }
    for case in in_every_format(At::All, &["endpoint", "status"]) {
        pair.check(case);
    }
    for case in in_every_format(At::Rank(0), &["endpoint", "health", "--cluster"]) {
        pair.check(case.unordered());
    }
    for case in in_every_format(At::Rank(0), &["endpoint", "hashkv", "--cluster"]) {
        pair.check(case);
    }

    check_move_leader(&pair);
    check_dead_member(&pair);
    pair.finish();
}

/// move-leader: each outcome etcdctl has, in each output format. Leads `<m0>` on entry.
fn check_move_leader(pair: &ClusterPair) {
    // Only a follower's endpoint: etcdctl finds no leader to send MoveLeader to.
    pair.check(Case::new(At::Rank(1), &["move-leader", "{m1}"]));
    let to_follower = Case::new(At::All, &["move-leader", "{m1}"]);
    pair.check(to_follower.clone());
    pair.check_leader_moved(1, &to_follower);
    // To the leader itself.
    pair.check(Case::new(At::All, &["move-leader", "{m1}"]));
    pair.check(Case::new(At::All, &["move-leader", "1234"]));
    pair.check(Case::new(At::All, &["move-leader", "zz"]));
    pair.check(Case::new(At::All, &["move-leader"]));
    // Each output format, each moving leadership on: json, protobuf, then table and fields
    // (which transfer, then refuse to print).
    for (format, next) in [("json", 2), ("protobuf", 0), ("table", 2), ("fields", 1)] {
        let target = format!("{{m{next}}}");
        let case = Case::new(At::All, &["move-leader", &target, "-w", format]);
        pair.check(case.clone());
        pair.check_leader_moved(next, &case);
    }
}

/// `endpoint status` and `endpoint health` over the member list with the member ranked last
/// (a follower) SIGKILLed, asked of the leader `<m0>`.
fn check_dead_member(pair: &ClusterPair) {
    pair.make_leader(0);
    for side in [&pair.etcd, &pair.oxcd] {
        side.cluster.kill(side.index(SIZE - 1)).unwrap();
    }
    let mut cases = Vec::new();
    for format in &FORMATS {
        let status = [&["endpoint", "status", "--cluster"][..], &TIMEOUTS, format].concat();
        cases.push(Case::new(At::Rank(0), &status));
        let health = [&["endpoint", "health", "--cluster"][..], &TIMEOUTS, format].concat();
        cases.push(Case::new(At::Rank(0), &health).unordered());
    }
    pair.check_all(cases);
}

/// A member for [`normalisation_hides_only_what_legitimately_differs`]: ports on 127.0.0.1.
fn facts(id: u64, name: &str, client_port: u16, peer_port: u16) -> MemberFacts {
    MemberFacts {
        id,
        name: name.to_string(),
        client_url: format!("http://127.0.0.1:{client_port}"),
        peer_url: format!("http://127.0.0.1:{peer_port}"),
    }
}

#[test]
fn normalisation_hides_only_what_legitimately_differs() {
    // Proves outputs of two clusters compare equal when only IDs, addresses, raft counters,
    // sizes, timings and each side's declared version differ, and unequal otherwise.
    // On side a, m1 has the smaller ID; on side b, m0 has.
    let a = Normaliser::new(
        0xbc82edb407370eb2,
        &[
            facts(0x9d34c78c823bbeab, "m0", 59717, 41913),
            facts(0x0c70cabb4bab8f48, "m1", 42041, 44411),
        ],
        "3.4.23",
    );
    let b = Normaliser::new(
        0x12345,
        &[
            facts(0x1111222233334444, "m0", 50001, 50002),
            facts(0xeeee000000000001, "m1", 50003, 50004),
        ],
        "3.5.0",
    );
    let same = |x: &str, y: &str| a.text(x) == b.text(y);

    let a_status = "http://127.0.0.1:42041, c70cabb4bab8f48, 3.4.23, 20 kB, true, false, 2, 8, 8, \n\
                    http://127.0.0.1:59717, 9d34c78c823bbeab, 3.4.23, 20 kB, false, false, 2, 8, 8, \n";
    let b_status = "http://127.0.0.1:50001, 1111222233334444, 3.5.0, 25 kB, true, false, 3, 12, 12, \n\
                    http://127.0.0.1:50003, eeee000000000001, 3.5.0, 25 kB, false, false, 3, 12, 11, \n";
    assert!(same(a_status, b_status));
    // The leader flag on the wrong member; a version other than the declared one.
    assert!(!same(a_status, &b_status.replacen("true", "false", 1)));
    assert!(!same(a_status, &b_status.replace("3.5.0", "3.4.23")));

    let a_list =
        "c70cabb4bab8f48, started, m1, http://127.0.0.1:44411, http://127.0.0.1:42041, false\n";
    let b_list =
        "1111222233334444, started, m0, http://127.0.0.1:50002, http://127.0.0.1:50001, false\n";
    assert!(same(a_list, b_list));
    // Another member's name or client URL on the row.
    assert!(!same(a_list, &b_list.replace("m0", "m1")));
    assert!(!same(a_list, &b_list.replace("50001", "50003")));

    // JSON: IDs as numbers, members in ID order; a header naming the other member differs.
    let a_json = r#"{"header":{"cluster_id":13583680783573782194,"member_id":11327898369037942443,"raft_term":4},"members":[{"ID":896439231623958344,"name":"m1"},{"ID":11327898369037942443,"name":"m0"}]}"#;
    let b_json = r#"{"header":{"cluster_id":74565,"member_id":17216698425483984897,"raft_term":9},"members":[{"ID":1229801703532086340,"name":"m0"},{"ID":17216698425483984897,"name":"m1"}]}"#;
    assert!(same(a_json, b_json));
    let b_reordered = r#"{"header":{"cluster_id":74565,"member_id":17216698425483984897,"raft_term":9},"members":[{"ID":17216698425483984897,"name":"m1"},{"ID":1229801703532086340,"name":"m0"}]}"#;
    assert!(!same(a_json, b_reordered));
    assert!(!same(
        a_json,
        &b_json.replace(
            "\"member_id\":17216698425483984897",
            "\"member_id\":1229801703532086340"
        )
    ));

    // Tables: padding follows ID lengths; cells must still match.
    let a_table =
        "+-----------------+\n|       ID        |\n+-----------------+\n|  c70cabb4bab8f48 |\n";
    let b_table =
        "+------------------+\n|        ID        |\n+------------------+\n| 1111222233334444 |\n";
    assert!(same(a_table, b_table));

    // Health rows in completion order, with durations; the unhealthy one must stay unhealthy.
    let a_health = "http://127.0.0.1:59717 is healthy: successfully committed proposal: took = 2.1ms\n\
                    http://127.0.0.1:42041 is healthy: successfully committed proposal: took = 1.9ms\n";
    let b_health = "http://127.0.0.1:50001 is healthy: successfully committed proposal: took = 3ms\n\
                    http://127.0.0.1:50003 is healthy: successfully committed proposal: took = 4ms\n";
    let unordered = |n: &Normaliser, stderr: &str| {
        n.run(b"", stderr.as_bytes(), Some(0), false, Rows::Unordered)
    };
    assert_eq!(unordered(&a, a_health), unordered(&b, b_health));
    let b_sick = b_health.replacen(
        "is healthy: successfully committed proposal: took = 3ms",
        "is unhealthy: failed to commit proposal: context deadline exceeded",
        1,
    );
    assert_ne!(unordered(&a, a_health), unordered(&b, &b_sick));
}
