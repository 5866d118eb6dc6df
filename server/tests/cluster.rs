//! Three `oxcd` processes on loopback form one cluster: they elect a leader, publish their
//! client URLs through raft, replicate writes made through any member (a follower forwards
//! them to the leader), serve linearizable reads on followers, hand leadership over on
//! MoveLeader, and lose no acknowledged write when the leader is SIGKILLed under load.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use oxcd_server::pb::etcdserverpb::kv_client::KvClient;
use oxcd_server::pb::etcdserverpb::PutRequest;
use oxcd_tests::cluster::Cluster;
use oxcd_tests::etcd::poll_until;

mod cluster_load;
mod grpc;
use cluster_load::{assert_same_hashkv, load_keys_at, write_until_stopped, Writer};
use grpc::{connect, oxcd_flavor};

const WAIT: Duration = Duration::from_secs(30);

/// `etcdctl get KEY --print-value-only` on member `i`, with `extra` flags.
fn value_at(cluster: &Cluster, i: usize, key: &str, extra: &[&str]) -> String {
    let mut args = vec!["get", key, "--print-value-only"];
    args.extend_from_slice(extra);
    cluster.ctl(i, &args).unwrap().trim().to_string()
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
            assert_eq!(value_at(&cluster, j, &key, &[]), format!("v{i}"));
        }
    }
    let follower = (leader + 1) % 3;
    assert_eq!(
        value_at(&cluster, follower, "via-0", &["--consistency=s"]),
        "v0"
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
    assert_eq!(value_at(&cluster, leader, "after-move", &[]), "x");
}

#[test]
fn killing_the_leader_under_load_loses_no_acknowledged_write() {
    // Proves every acknowledged put survives a SIGKILLed leader, a new leader takes over, and
    // all members end with equal HashKV at the same revision.
    let cluster = Cluster::start(oxcd_flavor(), 3, &[]).unwrap();
    let old_leader = cluster.wait_leader(WAIT).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let acked: Arc<Mutex<BTreeSet<String>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..6)
        .map(|w| {
            let url = cluster.client_url(w % 3).to_string();
            let (acked, stop) = (Arc::clone(&acked), Arc::clone(&stop));
            runtime.spawn(write_until_stopped(url, w, Writer::small(), acked, stop))
        })
        .collect();
    poll_until(WAIT, "writes before the kill", || {
        Ok((acked.lock().unwrap().len() >= 300).then_some(()))
    })
    .unwrap();
    cluster.kill(old_leader).unwrap();
    let new_leader = cluster.wait_leader_other_than(old_leader, WAIT).unwrap();
    let at_kill = acked.lock().unwrap().len();
    poll_until(WAIT, "writes under the new leader", || {
        Ok((acked.lock().unwrap().len() >= at_kill + 300).then_some(()))
    })
    .unwrap();
    cluster.start_member(old_leader).unwrap();
    stop.store(true, Ordering::SeqCst);
    for writer in writers {
        runtime.block_on(writer).unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    // Every acknowledged key is on every member (read linearizably through each).
    for i in 0..3 {
        let present = runtime.block_on(load_keys_at(cluster.client_url(i), false));
        let missing: Vec<_> = acked.difference(&present).take(5).collect();
        assert!(
            missing.is_empty(),
            "member {i} lacks acknowledged keys {missing:?}"
        );
    }
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
    poll_until(WAIT, "the follower to have the first key", || {
        Ok((value_at(&cluster, follower, "before", &["--consistency=s"]) == "1").then_some(()))
    })
    .unwrap();
    let proxy = cluster.proxy(follower).unwrap();
    proxy.blackhole(true);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(put_many(cluster.client_url(leader).to_string(), 8_000));
    assert_eq!(
        value_at(&cluster, follower, "bulk/7999", &["--consistency=s"]),
        "",
        "the follower got writes through the blackhole"
    );
    proxy.blackhole(false);
    proxy.reset();
    poll_until(Duration::from_secs(60), "the follower to catch up", || {
        let got = cluster.ctl(
            follower,
            &["get", "bulk/7999", "--print-value-only", "--consistency=s"],
        )?;
        Ok((got.trim() == "v").then_some(()))
    })
    .unwrap_or_else(|e| panic!("{e}\nfollower log:\n{}", cluster.log_tail(follower)));
    assert!(
        cluster
            .log_tail(follower)
            .contains("installed the database snapshot received from the leader"),
        "{}",
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
    assert_eq!(value_at(&cluster, leader, "leased", &[]), "v");
    let ttl = cluster
        .ctl(follower, &["lease", "timetolive", &id])
        .unwrap();
    assert!(
        ttl.contains("granted with TTL(3s), remaining(") && !ttl.contains("remaining(-1s)"),
        "{ttl}"
    );
    poll_until(WAIT, "the lease to expire", || {
        Ok(value_at(&cluster, follower, "leased", &[])
            .is_empty()
            .then_some(()))
    })
    .unwrap();
}
