// Proves the multi-member cluster harness (`oxcd_tests::cluster`) against real etcd 3.4.23.
//! Real etcd members: election and replication, leader failover and restart with equal HashKV,
//! fault proxies in front of the peer ports (one member cut off, then all), member replacement
//! and addition, and a failed start. The same harness later starts oxcd clusters, so these
//! tests pin down what it reports for the reference implementation.

use std::time::Duration;

use oxcd_tests::cluster::{initial_cluster_of, Cluster};
use oxcd_tests::etcd::{poll_until, Flavor};
use oxcd_tests::{ensure, Error, Result};

/// Deadline for anything a healthy cluster does within a few election timeouts.
const TIMEOUT: Duration = Duration::from_secs(30);

#[test]
fn three_members_elect_one_leader_and_replicate() -> Result<()> {
    // Proves a 3-member etcd cluster elects a leader every member agrees on, replicates a put to every member, and lists 3 started members with the harness's names, URLs and IDs.
    let cluster = Cluster::start(Flavor::Etcd, 3, &[])?;
    let leader = cluster.wait_leader(TIMEOUT)?;
    ensure!(cluster.is_running(leader), "the leader is not running");
    // Every member names the same leader, and leader() maps that ID to the member that has it.
    poll_until(TIMEOUT, "every member to name the same leader", || {
        let named: Vec<u64> = (0..3)
            .filter_map(|i| cluster.status(i).ok().map(|s| s.leader))
            .collect();
        if named.len() != 3 || named[0] == 0 || named.iter().any(|&id| id != named[0]) {
            return Ok(None);
        }
        let Some(index) = cluster.leader()? else {
            return Ok(None);
        };
        ensure!(
            cluster.member_id(index)? == named[0],
            "leader() gave {index}, whose ID is not the leader's {:x}",
            named[0]
        );
        Ok(Some(()))
    })?;
    let ids: std::collections::BTreeSet<u64> = (0..3)
        .map(|i| cluster.member_id(i))
        .collect::<Result<_>>()?;
    ensure!(ids.len() == 3, "member IDs are not distinct: {ids:?}");

    cluster.ctl(0, &["put", "greeting", "hello"])?;
    for i in [1, 2] {
        cluster.wait_local_value(i, "greeting", "hello", TIMEOUT)?;
    }

    let list = cluster.ctl(0, &["member", "list"])?;
    let lines: Vec<&str> = list.lines().collect();
    ensure!(
        lines.len() == 3,
        "member list has {} lines:\n{list}",
        lines.len()
    );
    for i in 0..3 {
        let expected = format!(
            "{:x}, started, m{i}, {}, {}, false",
            cluster.member_id(i)?,
            cluster.peer_url(i),
            cluster.client_url(i)
        );
        ensure!(
            lines.contains(&expected.as_str()),
            "member list lacks {expected:?}:\n{list}"
        );
    }
    let endpoints = cluster.endpoints();
    ensure!(
        endpoints.split(',').count() == 3,
        "endpoints() should name 3 running members: {endpoints}"
    );
    Ok(())
}

#[test]
fn killed_leader_is_replaced_and_rejoins_with_equal_hashkv() -> Result<()> {
    // Proves SIGKILLing the leader yields a new leader among the others, the killed member restarts on its dir and catches up, and HashKV then agrees on all three at one revision.
    let cluster = Cluster::start(Flavor::Etcd, 3, &[])?;
    let old = cluster.wait_leader(TIMEOUT)?;
    for n in 0..5 {
        cluster.ctl(old, &["put", &format!("before-{n}"), &format!("v{n}")])?;
    }

    cluster.kill(old)?;
    ensure!(!cluster.is_running(old), "killed member still running");
    ensure!(
        cluster.endpoints().split(',').count() == 2,
        "endpoints() still names the killed member: {}",
        cluster.endpoints()
    );
    let new = cluster.wait_leader_other_than(old, TIMEOUT)?;
    ensure!(new != old, "wait_leader_other_than returned the old leader");
    // The killed member's ID stays known (cached), so leader IDs still map to indexes.
    ensure!(
        cluster.member_id(old).is_ok(),
        "killed member's ID forgotten"
    );
    for n in 0..20 {
        cluster.ctl(new, &["put", &format!("after-{n}"), &format!("w{n}")])?;
    }

    cluster.start_member(old)?;
    ensure!(cluster.is_running(old), "restarted member not running");
    cluster.ctl(new, &["put", "last", "done"])?;
    cluster.wait_local_value(old, "last", "done", TIMEOUT)?;

    let revision = cluster.status(new)?.revision;
    let hashes = cluster.same_hashkv(&cluster.running_members(), revision, TIMEOUT)?;
    ensure!(
        hashes.len() == 3,
        "HashKV answered by {} running members: {hashes:?}",
        hashes.len()
    );
    Ok(())
}

/// Blackholes (`on`) or clears both directions of member `i`'s proxy.
fn set_blackhole(cluster: &Cluster, i: usize, on: bool) {
    cluster
        .proxy(i)
        .expect("the cluster was started with proxies")
        .blackhole(on);
}

/// A put through member `i` that gives up after a few seconds: (succeeded, what etcdctl said).
fn try_put(cluster: &Cluster, i: usize, key: &str, value: &str) -> Result<(bool, String)> {
    let out = cluster.ctl_output(i, &["put", key, value, "--command-timeout=3s"], None)?;
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok((out.status.success(), said))
}

#[test]
fn proxied_member_cut_off_and_healed_converges() -> Result<()> {
    // Proves members advertise their proxies, a blackholed member's proxy leaves a quorum of two writing, and once healed the member serves writes and matches the others' HashKV.
    let cluster = Cluster::start_with_proxies(Flavor::Etcd, 3, &[])?;
    for i in 0..3 {
        let proxy = cluster
            .proxy(i)
            .expect("start_with_proxies gives every member a proxy");
        ensure!(
            cluster.peer_url(i) == format!("http://{}", proxy.addr()),
            "member {i} should advertise its proxy"
        );
        ensure!(
            cluster.listen_peer_url(i) != cluster.peer_url(i),
            "member {i} should listen behind its proxy"
        );
    }
    let list = cluster.ctl(0, &["member", "list"])?;
    for i in 0..3 {
        ensure!(
            list.contains(&format!(", {}, ", cluster.peer_url(i))),
            "member list lacks {}'s proxy URL:\n{list}",
            cluster.name(i)
        );
    }
    let leader = cluster.wait_leader(TIMEOUT)?;
    // Cut off a follower, and write through member 0, which is never the one cut off.
    let cut_off = if leader == 2 { 1 } else { 2 };

    set_blackhole(&cluster, cut_off, true);
    cluster.ctl(0, &["put", "partitioned", "yes"])?;
    let other = 3 - cut_off;
    cluster.wait_local_value(other, "partitioned", "yes", TIMEOUT)?;
    // etcd's streams are dialed by the receiver, so the leader's appends still reach the
    // cut-off member through the connection it opened to the leader's proxy (module docs of
    // `oxcd_tests::cluster`); with oxcd's sender-dialed connections it would not see the write.
    cluster.wait_local_value(cut_off, "partitioned", "yes", TIMEOUT)?;

    set_blackhole(&cluster, cut_off, false);
    poll_until(TIMEOUT, "a put through the healed member", || {
        Ok(try_put(&cluster, cut_off, "healed", "yes")?.0.then_some(()))
    })?;
    for i in 0..3 {
        cluster.wait_local_value(i, "healed", "yes", TIMEOUT)?;
    }
    let revision = cluster.status(0)?.revision;
    cluster.same_hashkv(&cluster.running_members(), revision, TIMEOUT)?;
    Ok(())
}

#[test]
fn blackholing_every_proxy_stops_the_cluster_until_healed() -> Result<()> {
    // Proves every byte between members passes through the proxies: with all of them blackholed no write commits and no leader remains; healed, a leader returns and writes commit everywhere.
    let cluster = Cluster::start_with_proxies(Flavor::Etcd, 3, &[])?;
    cluster.wait_leader(TIMEOUT)?;
    cluster.ctl(0, &["put", "before", "1"])?;

    for i in 0..3 {
        set_blackhole(&cluster, i, true);
    }
    // The leader steps down once it misses a quorum (etcd's check-quorum) and no election can
    // succeed; a member still naming a leader would mean some path bypasses the proxies.
    poll_until(TIMEOUT, "no member to name a leader", || {
        Ok((cluster.leader()?.is_none()).then_some(()))
    })?;
    let (ok, said) = try_put(&cluster, 0, "during", "1")?;
    ensure!(!ok, "a put committed with every proxy blackholed: {said}");

    for i in 0..3 {
        set_blackhole(&cluster, i, false);
    }
    cluster.wait_leader(TIMEOUT)?;
    poll_until(TIMEOUT, "a put after healing", || {
        Ok(try_put(&cluster, 0, "after", "1")?.0.then_some(()))
    })?;
    for i in 0..3 {
        cluster.wait_local_value(i, "after", "1", TIMEOUT)?;
    }
    let revision = cluster.status(0)?.revision;
    cluster.same_hashkv(&cluster.running_members(), revision, TIMEOUT)?;
    Ok(())
}

/// `etcdctl member add NAME --peer-urls=<slot's advertised peer URL>` through member 0, retried
/// while etcd's strict reconfiguration check answers `unhealthy cluster` (it wants every voter
/// connected for a few seconds first).
fn member_add(cluster: &Cluster, name: &str, slot: usize) -> Result<String> {
    let peer_url = format!("--peer-urls={}", cluster.peer_url(slot));
    cluster.ctl_past_strict_check(0, &["member", "add", name, &peer_url], TIMEOUT)
}

#[test]
fn members_are_replaced_on_a_wiped_dir_and_added_as_new_processes() -> Result<()> {
    // Proves wipe + set_args rejoin a removed member's slot under a new ID, and reserve_member + add_process start a 4th member that joins and replicates.
    let mut cluster = Cluster::start(Flavor::Etcd, 3, &[])?;
    cluster.wait_leader(TIMEOUT)?;
    cluster.ctl(0, &["put", "k", "v1"])?;

    let old_id = cluster.member_id(2)?;
    cluster.stop(2)?;
    ensure!(
        cluster.wipe(0).is_err(),
        "wipe must refuse a running member"
    );
    cluster.ctl(0, &["member", "remove", &format!("{old_id:x}")])?;
    cluster.wipe(2)?;
    ensure!(!cluster.data_dir(2).exists(), "wipe left the data dir");
    let added = member_add(&cluster, "m2", 2)?;
    let initial_cluster = format!("--initial-cluster={}", initial_cluster_of(&added)?);
    cluster.set_args(2, &["--initial-cluster-state=existing", &initial_cluster]);
    cluster.start_member(2)?;
    ensure!(
        cluster.member_id(2)? != old_id,
        "the re-added member kept its old ID"
    );
    cluster.wait_local_value(2, "k", "v1", TIMEOUT)?;

    let new = cluster.reserve_member("m3")?;
    ensure!(!cluster.is_running(new), "a reserved member must not run");
    let added = member_add(&cluster, "m3", new)?;
    let index = cluster.add_process("m3", &initial_cluster_of(&added)?, &[])?;
    ensure!(index == new, "add_process did not use the reserved slot");
    cluster.wait_healthy(new, TIMEOUT)?;
    cluster.ctl(1, &["put", "k", "v2"])?;
    cluster.wait_local_value(new, "k", "v2", TIMEOUT)?;

    let list = cluster.ctl(0, &["member", "list"])?;
    ensure!(
        list.lines().filter(|l| l.contains(", started, ")).count() == 4,
        "member list should show 4 started members:\n{list}"
    );
    let revision = cluster.status(0)?.revision;
    let hashes = cluster.same_hashkv(&cluster.running_members(), revision, TIMEOUT)?;
    ensure!(
        hashes.len() == 4,
        "HashKV should be answered by 4 running members: {hashes:?}"
    );
    Ok(())
}

#[test]
fn a_failed_start_reports_every_log_tail() -> Result<()> {
    // Proves extra flags override the harness's defaults (a too-short election timeout), and members that exit at once fail the start after retries with every member's log tail.
    let Err(error) = Cluster::start(Flavor::Etcd, 2, &["--election-timeout=100"]) else {
        return Err(Error::msg("a cluster started with --election-timeout=100"));
    };
    let text = error.to_string();
    for needle in [
        "start attempts failed",
        "exited during start-up",
        "m0 (etcd) log tail",
        "m1 (etcd) log tail",
        "--election-timeout[100ms] should be at least as 5 times as --heartbeat-interval[100ms]",
    ] {
        ensure!(
            text.contains(needle),
            "start error lacks {needle:?}:\n{text}"
        );
    }
    Ok(())
}
