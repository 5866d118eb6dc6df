//! Three `oxcd` processes on loopback form one cluster: they elect a leader, publish their
//! client URLs through raft, replicate writes made through any member (a follower forwards
//! them to the leader), serve linearizable reads on followers, hand leadership over on
//! MoveLeader, and lose no acknowledged write when the leader is SIGKILLed under load.

use std::time::Duration;

use oxcd_server::pb::etcdserverpb::kv_client::KvClient;
use oxcd_server::pb::etcdserverpb::PutRequest;
use oxcd_tests::cluster::Cluster;
use oxcd_tests::etcd::poll_until;

mod cluster_load;
mod grpc;
use cluster_load::{assert_every_member_has, assert_same_hashkv, Load, Writer};
use grpc::{connect, oxcd_flavor};

const WAIT: Duration = Duration::from_secs(30);

/// `etcdctl get KEY --print-value-only` (a linearizable read) on member `i`.
fn value_at(cluster: &Cluster, i: usize, key: &str) -> String {
    cluster
        .ctl(i, &["get", key, "--print-value-only"])
        .unwrap()
        .trim()
        .to_string()
}

#[test]
fn three_members_publish_replicate_and_forward() {
    // Proves bootstrap, publish, replication, follower forwarding and follower ReadIndex.
    let cluster = Cluster::start(oxcd_flavor(), 3, &[]).unwrap();
    let leader = cluster.wait_leader(WAIT).unwrap();
    // Every member lists all three as started, with the client URLs each published.
    for i in 0..3 {
        let list = cluster.ctl(i, &["member", "list"]).unwrap();
        for j in 0..3 {
            let row = format!(
                ", started, {}, {}, {}, false",
                cluster.name(j),
                cluster.peer_url(j),
                cluster.client_url(j)
            );
            assert!(
                list.contains(&row),
                "member {i} lists {list:?}, wanted {row:?}"
            );
        }
    }
    // A write through each member is visible on every member.
    for i in 0..3 {
        let key = format!("via-{i}");
        cluster.ctl(i, &["put", &key, &format!("v{i}")]).unwrap();
        for j in 0..3 {
            // Linearizable reads through a follower see the write at once.
            assert_eq!(value_at(&cluster, j, &key), format!("v{i}"));
        }
    }
    let follower = (leader + 1) % 3;
    assert_eq!(
        cluster.local_value(follower, "via-0").unwrap().as_deref(),
        Some("v0")
    );
}

#[test]
fn move_leader_hands_leadership_to_the_target() {
    // Proves MoveLeader on the leader makes the target lead, and a follower refuses it.
    let cluster = Cluster::start(oxcd_flavor(), 3, &[]).unwrap();
    let leader = cluster.wait_leader(WAIT).unwrap();
    let target = (leader + 1) % 3;
    let other = (leader + 2) % 3;
    let target_id = format!("{:x}", cluster.member_id(target).unwrap());
    let out = cluster
        .ctl_output(other, &["move-leader", &target_id], None)
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stderr)
            .trim_end()
            .lines()
            .last(),
        Some(
            format!(
                "Error: no leader endpoint given at [{}]",
                cluster.client_url(other)
            )
            .as_str()
        )
    );
    let out = cluster
        .ctl_output_at(&cluster.endpoints(), &["move-leader", &target_id], None)
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let leader_id = format!("{:x}", cluster.member_id(leader).unwrap());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("Leadership transferred from {leader_id} to {target_id}")
    );
    poll_until(WAIT, "the target to lead", || {
        Ok((cluster.leader()? == Some(target)).then_some(()))
    })
    .unwrap();
    cluster.ctl(target, &["put", "after-move", "x"]).unwrap();
    assert_eq!(value_at(&cluster, leader, "after-move"), "x");
}

#[test]
fn killing_the_leader_under_load_loses_no_acknowledged_write() {
    // Proves every acknowledged put survives a SIGKILLed leader, a new leader takes over, and
    // all members end with equal HashKV at the same revision.
    let cluster = Cluster::start(oxcd_flavor(), 3, &[]).unwrap();
    let old_leader = cluster.wait_leader(WAIT).unwrap();
    let writers: Vec<(usize, Writer)> = (0..6).map(|w| (w % 3, Writer::small())).collect();
    let load = Load::start(&cluster, &writers);
    load.wait_acked(300, "writes before the kill");
    cluster.kill(old_leader).unwrap();
    let new_leader = cluster.wait_leader_other_than(old_leader, WAIT).unwrap();
    load.wait_acked(load.acked_count() + 300, "writes under the new leader");
    cluster.start_member(old_leader).unwrap();
    let acked = load.stop();
    // Every acknowledged key is on every member (read linearizably through each).
    assert_every_member_has(&cluster, &acked, false);
    assert_same_hashkv(&cluster, new_leader);
}

#[test]
fn a_follower_cut_off_past_the_log_catches_up_by_snapshot() {
    // Proves a follower the leader's log no longer covers receives and installs a snapshot of
    // the database, then follows the log again, ending with the same HashKV.
    let cluster =
        Cluster::start_with_proxies(oxcd_flavor(), 3, &["--snapshot-count=1000"]).unwrap();
    let leader = cluster.wait_leader(WAIT).unwrap();
    let follower = (leader + 1) % 3;
    cluster.ctl(leader, &["put", "before", "1"]).unwrap();
    cluster
        .wait_local_value(follower, "before", "1", WAIT)
        .unwrap();
    let proxy = cluster.proxy(follower).unwrap();
    let log_from = cluster.log(follower).len();
    proxy.blackhole(true);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(put_many(cluster.client_url(leader).to_string(), 8_000));
    assert_eq!(
        cluster.local_value(follower, "bulk/7999").unwrap(),
        None,
        "the follower got writes through the blackhole"
    );
    proxy.blackhole(false);
    proxy.reset();
    cluster
        .wait_local_value(follower, "bulk/7999", "v", Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("{e}\nfollower log:\n{}", cluster.log_tail(follower)));
    // The whole log since the cut-off, not its tail: the member logs on after installing.
    let log = cluster.log(follower);
    assert!(
        log.get(log_from..)
            .is_some_and(|l| l.contains("installed the database snapshot received from the leader")),
        "the follower logged no snapshot install after it was cut off\n{}",
        cluster.log_tail(follower)
    );
    cluster.ctl(follower, &["put", "after", "2"]).unwrap();
    assert_same_hashkv(&cluster, leader);
}

/// Puts `bulk/0` .. `bulk/<n-1>` through `url`, 32 at a time.
async fn put_many(url: String, n: usize) {
    let channel = connect(&url).await;
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..32 {
        let mut kv = KvClient::new(channel.clone());
        tasks.spawn(async move {
            for i in (t..n).step_by(32) {
                kv.put(PutRequest {
                    key: format!("bulk/{i}").into_bytes(),
                    value: b"v".to_vec(),
                    ..PutRequest::default()
                })
                .await
                .unwrap();
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
}

#[test]
fn keep_alives_through_a_follower_reach_the_leaders_lessor() {
    // Proves a lease kept alive only through a follower outlives its TTL (the follower
    // forwards to the leader, whose lessor expires leases), TimeToLive through a follower
    // shows the leader's deadline, and the lease expires once keep-alives stop.
    let cluster = Cluster::start(oxcd_flavor(), 3, &[]).unwrap();
    let leader = cluster.wait_leader(WAIT).unwrap();
    let follower = (leader + 1) % 3;
    let granted = cluster.ctl(follower, &["lease", "grant", "3"]).unwrap();
    // "lease 694d7a... granted with TTL(3s)"
    let id = granted.split_whitespace().nth(1).unwrap().to_string();
    cluster
        .ctl(follower, &["put", "leased", "v", "--lease", &id])
        .unwrap();
    let until = std::time::Instant::now() + Duration::from_secs(6);
    while std::time::Instant::now() < until {
        cluster
            .ctl(follower, &["lease", "keep-alive", "--once", &id])
            .unwrap();
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(value_at(&cluster, leader, "leased"), "v");
    let ttl = cluster
        .ctl(follower, &["lease", "timetolive", &id])
        .unwrap();
    assert!(
        ttl.contains("granted with TTL(3s), remaining(") && !ttl.contains("remaining(-1s)"),
        "{ttl}"
    );
    poll_until(WAIT, "the lease to expire", || {
        Ok(value_at(&cluster, follower, "leased")
            .is_empty()
            .then_some(()))
    })
    .unwrap();
}
