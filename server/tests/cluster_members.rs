//! Membership changes on a running 3-member cluster, driven through etcdctl 3.4.23 and checked
//! against what etcd 3.4.23 does: replacing a member (remove, wipe, add under a new ID, rejoin
//! with `--initial-cluster-state existing`), a removed member that can never come back, adding a
//! learner and promoting it, updating a member's peer URLs, and a member that lost its data dir
//! refusing to start again as new. One oxcd-only scenario: a joining member SIGKILLed before it
//! received any entry catches up after its restart.
//!
//! Each scenario is a private function run on a fresh cluster of any [`Flavor`]: its `#[test]`
//! runs it on oxcd, and an `#[ignore]`d twin runs the very same function on real etcd, to prove
//! the scenario itself (`cargo test --release -p oxcd-server --test cluster_members --
//! --ignored`). A failure carries every member's log tail.
//!
//! etcd's strict reconfiguration check (on by default) refuses `member add` and `member remove`
//! of a live voter with `etcdserver: unhealthy cluster` until every voter has been connected for
//! 5 s, so those commands are retried on that one error ([`Cluster::ctl_past_strict_check`]);
//! any other error fails at once.

mod grpc;

use std::time::Duration;

use grpc::oxcd_flavor;
use oxcd_tests::cluster::{free_peer_url, initial_cluster_of, Cluster, ListedMember};
use oxcd_tests::etcd::{poll_until, Flavor};
use oxcd_tests::{ensure, Error, Result};

/// Deadline for anything a healthy cluster does within a few election timeouts.
const WAIT: Duration = Duration::from_secs(30);

/// What a member logs (etcd: `etcdserver`, on `errorc`) once it knows it was removed.
const REMOVED_LOG: &str = "the member has been permanently removed from the cluster";

/// What one etcdctl run said.
struct Said {
    ok: bool,
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Said {
    /// The last line of stderr (etcdctl's `Error: ...`, after its `{"level":"warn"}` retry
    /// lines).
    fn error(&self) -> &str {
        self.stderr.trim_end().lines().last().unwrap_or("")
    }
}

/// Runs etcdctl against member `i`, whatever it answers.
fn said(cluster: &Cluster, i: usize, args: &[&str]) -> Result<Said> {
    let out = cluster.ctl_output(i, args, None)?;
    Ok(Said {
        ok: out.status.success(),
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// Runs etcdctl against member `i` and requires that it fails with exit code 1 and the last
/// stderr line `expected`.
fn expect_error(cluster: &Cluster, i: usize, args: &[&str], expected: &str) -> Result<()> {
    let got = said(cluster, i, args)?;
    ensure!(
        !got.ok && got.code == Some(1) && got.error() == expected,
        "etcdctl {}: wanted exit 1 and {expected:?}, got exit {:?}, stdout {:?}, stderr {:?}",
        args.join(" "),
        got.code,
        got.stdout,
        got.stderr
    );
    Ok(())
}

/// `Member <id> <verb> cluster <cluster id>` as etcdctl prints it (`%16x`: space-padded).
fn member_line(id: u64, verb: &str, cluster_id: u64) -> String {
    format!("Member {id:16x} {verb} cluster {cluster_id:16x}")
}

/// The new member's ID from `member add`'s first line, `Member <id> added to cluster <cid>`.
fn added_id(member_add_output: &str) -> Result<u64> {
    let first = member_add_output.lines().next().unwrap_or("");
    let id = first
        .strip_prefix("Member ")
        .and_then(|rest| rest.split(" added to cluster ").next())
        .map(str::trim)
        .ok_or_else(|| Error::msg(format!("member add printed {member_add_output:?}")))?;
    u64::from_str_radix(id, 16)
        .map_err(|e| Error::msg(format!("member add printed ID {id:?}: {e}")))
}

/// The entry for `id` in member `i`'s member list.
fn listed(cluster: &Cluster, i: usize, id: u64) -> Result<ListedMember> {
    let (_, members) = cluster.member_list(i)?;
    members
        .iter()
        .find(|m| m.id == id)
        .cloned()
        .ok_or_else(|| Error::msg(format!("member list lacks {id:x}: {members:?}")))
}

/// Waits until every running member has reached member `at`'s revision, then requires equal
/// HashKV there on all of them.
fn wait_same_hashkv(cluster: &Cluster, at: usize) -> Result<()> {
    let rev = cluster.status(at)?.revision;
    cluster.same_hashkv(&cluster.running_members(), rev, WAIT)?;
    Ok(())
}

/// Waits until member `i` exits on its own, and requires exit status 0 and [`REMOVED_LOG`] in
/// what it logged after the first `log_from` bytes.
fn wait_exit_as_removed(cluster: &Cluster, i: usize, log_from: usize) -> Result<()> {
    let what = format!("{} to exit after its removal", cluster.name(i));
    let status = poll_until(WAIT, &what, || cluster.exit_status(i))?;
    ensure!(
        status.success(),
        "{} exited with {status}, wanted status 0",
        cluster.name(i)
    );
    let log = cluster.log(i);
    ensure!(
        log.get(log_from..).is_some_and(|l| l.contains(REMOVED_LOG)),
        "{} did not log {REMOVED_LOG:?}",
        cluster.name(i)
    );
    // Reap it, so the harness sees no process in the slot.
    cluster.stop(i)
}

/// A follower of the current leader: (leader, follower, the other follower).
fn leader_and_followers(cluster: &Cluster) -> Result<(usize, usize, usize)> {
    let leader = cluster.wait_leader(WAIT)?;
    Ok((leader, (leader + 1) % 3, (leader + 2) % 3))
}

/// Starts a 3-member cluster of `flavor` with `args` and runs `scenario` on it; a failure
/// carries every member's log tail.
fn run_on(flavor: Flavor, args: &[&str], scenario: fn(&mut Cluster) -> Result<()>) -> Result<()> {
    let mut cluster = Cluster::start(flavor, 3, args)?;
    scenario(&mut cluster).map_err(|e| Error::msg(format!("{e}\n\n{}", cluster.log_tails())))
}

/// Remove a live follower (it exits 0), wipe it, add it back under a new ID with the same peer
/// URL, rejoin with `existing`: it catches up and all three agree.
fn member_replacement(cluster: &mut Cluster) -> Result<()> {
    let (leader, target, _) = leader_and_followers(cluster)?;
    let keys: Vec<(String, String)> = (0..20)
        .map(|n| (format!("key-{n:02}"), format!("value-{n}")))
        .collect();
    for (key, value) in &keys {
        cluster.ctl(leader, &["put", key, value])?;
    }
    let (cluster_id, _) = cluster.member_list(leader)?;
    let old_id = cluster.member_id(target)?;
    let log_from = cluster.log(target).len();

    let removed =
        cluster.ctl_past_strict_check(leader, &["member", "remove", &hex(old_id)], WAIT)?;
    let expected = member_line(old_id, "removed from", cluster_id);
    ensure!(
        removed.trim_end() == expected,
        "member remove printed {removed:?}, wanted {expected:?}"
    );
    wait_exit_as_removed(cluster, target, log_from)?;
    let (_, members) = cluster.member_list(leader)?;
    ensure!(
        members.len() == 2 && members.iter().all(|m| m.id != old_id),
        "after the removal the member list is {members:?}"
    );

    cluster.wipe(target)?;
    let name = cluster.name(target).to_string();
    let peer_urls = format!("--peer-urls={}", cluster.peer_url(target));
    let added =
        cluster.ctl_past_strict_check(leader, &["member", "add", &name, &peer_urls], WAIT)?;
    let new_id = added_id(&added)?;
    ensure!(new_id != old_id, "the re-added member got its old ID back");
    let initial_cluster = format!("--initial-cluster={}", initial_cluster_of(&added)?);
    cluster.set_args(
        target,
        &["--initial-cluster-state=existing", &initial_cluster],
    );
    cluster.start_member(target)?;
    ensure!(
        cluster.member_id(target)? == new_id,
        "the rejoined member does not have the ID member add gave"
    );

    for (key, value) in &keys {
        cluster.wait_local_value(target, key, value, WAIT)?;
    }
    let (_, members) = cluster.member_list(target)?;
    let started = members.iter().filter(|m| !m.name.is_empty()).count();
    ensure!(
        members.len() == 3 && started == 3,
        "member list should show 3 started members: {members:?}"
    );
    let rejoined = listed(cluster, leader, new_id)?;
    ensure!(
        rejoined.name == name
            && rejoined.peer_urls == [cluster.peer_url(target)]
            && rejoined.client_urls == [cluster.client_url(target)]
            && !rejoined.is_learner,
        "the rejoined member is listed as {rejoined:?}"
    );
    wait_same_hashkv(cluster, leader)
}

/// A member removed while stopped exits 0 when restarted on its old data dir, and its ID can
/// never be named again.
fn removed_member_cannot_come_back(cluster: &mut Cluster) -> Result<()> {
    let (leader, target, _) = leader_and_followers(cluster)?;
    cluster.ctl(leader, &["put", "before", "1"])?;
    cluster.wait_local_value(target, "before", "1", WAIT)?;
    let id = cluster.member_id(target)?;
    cluster.stop(target)?;
    cluster.ctl_past_strict_check(leader, &["member", "remove", &hex(id)], WAIT)?;

    let log_from = cluster.log(target).len();
    cluster.spawn_member(target)?;
    wait_exit_as_removed(cluster, target, log_from)?;

    expect_error(
        cluster,
        leader,
        &["member", "remove", &hex(id)],
        "Error: etcdserver: member not found",
    )?;
    let (_, members) = cluster.member_list(leader)?;
    ensure!(
        members.len() == 2 && members.iter().all(|m| m.id != id),
        "the removed member is listed again: {members:?}"
    );
    // The two left still make a quorum.
    cluster.ctl(leader, &["put", "after", "2"])?;
    cluster.wait_local_value((target + 1) % 3, "after", "2", WAIT)?;
    wait_same_hashkv(cluster, leader)
}

/// A learner is added unstarted, cannot be promoted before it catches up, serves only
/// serializable reads, and once promoted is a voter that serves writes.
fn learner_added_and_promoted(cluster: &mut Cluster) -> Result<()> {
    let (leader, _, _) = leader_and_followers(cluster)?;
    for n in 0..10 {
        cluster.ctl(leader, &["put", &format!("k{n}"), &format!("v{n}")])?;
    }
    let (cluster_id, _) = cluster.member_list(leader)?;
    let slot = cluster.reserve_member("learner")?;
    let peer_urls = format!("--peer-urls={}", cluster.peer_url(slot));
    let added = cluster.ctl_past_strict_check(
        leader,
        &["member", "add", "learner", "--learner", &peer_urls],
        WAIT,
    )?;
    let id = added_id(&added)?;
    let unstarted = listed(cluster, leader, id)?;
    ensure!(
        unstarted.is_learner && unstarted.name.is_empty() && unstarted.client_urls.is_empty(),
        "the added learner is listed as {unstarted:?}"
    );
    expect_error(
        cluster,
        leader,
        &["member", "promote", &hex(id)],
        "Error: etcdserver: can only promote a learner member which is in sync with leader",
    )?;

    let learner = cluster.add_process("learner", &initial_cluster_of(&added)?, &[])?;
    cluster.wait_local_value(learner, "k9", "v9", WAIT)?;
    let row = format!(
        "{id:x}, started, learner, {}, {}, true",
        cluster.peer_url(learner),
        cluster.client_url(learner)
    );
    poll_until(WAIT, "the learner to be listed as started", || {
        let list = cluster.ctl(leader, &["member", "list"])?;
        Ok(list.lines().any(|l| l == row).then_some(()))
    })?;
    let refused = "Error: etcdserver: rpc not supported for learner";
    expect_error(cluster, learner, &["put", "on-learner", "x"], refused)?;
    expect_error(cluster, learner, &["get", "k0"], refused)?;

    let promoted = poll_until(WAIT, "the learner to be promoted", || {
        let got = said(cluster, leader, &["member", "promote", &hex(id)])?;
        if got.ok {
            return Ok(Some(got.stdout));
        }
        ensure!(
            got.error().ends_with("which is in sync with leader"),
            "member promote failed: {}",
            got.stderr.trim_end()
        );
        Ok(None)
    })?;
    let expected = member_line(id, "promoted in", cluster_id);
    ensure!(
        promoted.trim_end() == expected,
        "member promote printed {promoted:?}, wanted {expected:?}"
    );
    let voter = listed(cluster, leader, id)?;
    ensure!(
        !voter.is_learner,
        "the promoted member is listed as {voter:?}"
    );

    // The promoted member applies its promotion shortly after the leader does.
    poll_until(WAIT, "a put through the promoted member", || {
        let got = said(cluster, learner, &["put", "via-promoted", "yes"])?;
        ensure!(
            got.ok || got.error() == refused,
            "put through the promoted member failed: {}",
            got.stderr.trim_end()
        );
        Ok(got.ok.then_some(()))
    })?;
    cluster.wait_local_value(leader, "via-promoted", "yes", WAIT)?;
    wait_same_hashkv(cluster, leader)
}

/// A member's peer URLs are updated (listed at once, no restart) and back; another member's
/// URL is refused.
fn member_update(cluster: &mut Cluster) -> Result<()> {
    let (leader, target, other) = leader_and_followers(cluster)?;
    let (cluster_id, _) = cluster.member_list(leader)?;
    let id = cluster.member_id(target)?;
    let before = listed(cluster, leader, id)?;
    // A port nobody listens on: the target is unreachable while it is advertised.
    let new_url = free_peer_url()?;

    let updated = cluster.ctl(
        leader,
        &[
            "member",
            "update",
            &hex(id),
            &format!("--peer-urls={new_url}"),
        ],
    )?;
    let expected = member_line(id, "updated in", cluster_id);
    ensure!(
        updated.trim_end() == expected,
        "member update printed {updated:?}, wanted {expected:?}"
    );
    let after = listed(cluster, leader, id)?;
    ensure!(
        after.peer_urls == [new_url.clone()]
            && after.name == before.name
            && after.client_urls == before.client_urls,
        "after the update the member is listed as {after:?}"
    );

    let taken = format!("--peer-urls={}", cluster.peer_url(other));
    expect_error(
        cluster,
        leader,
        &["member", "update", &hex(id), &taken],
        "Error: etcdserver: Peer URLs already exists",
    )?;
    ensure!(
        listed(cluster, leader, id)?.peer_urls == [new_url],
        "a refused update changed the member"
    );

    let back = format!("--peer-urls={}", cluster.peer_url(target));
    cluster.ctl(leader, &["member", "update", &hex(id), &back])?;
    ensure!(
        listed(cluster, leader, id)? == before,
        "updating back did not restore the member's entry"
    );
    // Reachable again at its own URL, it follows the log.
    cluster.ctl(leader, &["put", "after-update", "1"])?;
    cluster.wait_local_value(target, "after-update", "1", WAIT)?;
    wait_same_hashkv(cluster, leader)
}

/// A member ID as etcdctl takes it.
fn hex(id: u64) -> String {
    format!("{id:x}")
}

#[test]
fn member_replacement_on_oxcd() -> Result<()> {
    // Proves oxcd replaces a member like etcd: the removed one exits 0, the re-added one joins under a new ID, catches up and matches HashKV.
    run_on(oxcd_flavor(), &[], member_replacement)
}

#[test]
#[ignore = "proves the scenario on real etcd; run with --ignored"]
fn member_replacement_on_etcd() -> Result<()> {
    // Proves the member replacement scenario holds on real etcd 3.4.23.
    run_on(Flavor::Etcd, &[], member_replacement)
}

#[test]
fn removed_member_cannot_come_back_on_oxcd() -> Result<()> {
    // Proves a member removed while down exits 0 on restart, logging its removal, and its ID is then unknown to member remove.
    run_on(oxcd_flavor(), &[], removed_member_cannot_come_back)
}

#[test]
#[ignore = "proves the scenario on real etcd; run with --ignored"]
fn removed_member_cannot_come_back_on_etcd() -> Result<()> {
    // Proves the removed-member scenario holds on real etcd 3.4.23.
    run_on(Flavor::Etcd, &[], removed_member_cannot_come_back)
}

#[test]
fn learner_added_and_promoted_on_oxcd() -> Result<()> {
    // Proves a learner joins unpromotable until in sync, refuses writes and linearizable reads, serves serializable reads, and after promotion is a voter serving writes.
    run_on(oxcd_flavor(), &[], learner_added_and_promoted)
}

#[test]
#[ignore = "proves the scenario on real etcd; run with --ignored"]
fn learner_added_and_promoted_on_etcd() -> Result<()> {
    // Proves the learner scenario holds on real etcd 3.4.23.
    run_on(Flavor::Etcd, &[], learner_added_and_promoted)
}

#[test]
fn member_update_on_oxcd() -> Result<()> {
    // Proves member update changes a member's peer URLs in the list at once, refuses another member's URL, and updating back lets the member follow again.
    run_on(oxcd_flavor(), &[], member_update)
}

#[test]
#[ignore = "proves the scenario on real etcd; run with --ignored"]
fn member_update_on_etcd() -> Result<()> {
    // Proves the member update scenario holds on real etcd 3.4.23.
    run_on(Flavor::Etcd, &[], member_update)
}

/// Membership changes, accepted and refused, made after the last snapshot and committed to
/// every backend; then every member is SIGKILLed and restarted, so each replays the changes
/// over a membership that already holds their effects. Each must decide them as the first
/// time: the same member list, and the learner still in raft's configuration (started now,
/// it receives the log).
fn membership_survives_restart(cluster: &mut Cluster) -> Result<()> {
    let leader = cluster.wait_leader(WAIT)?;
    let put_some = |cluster: &Cluster, n: usize, prefix: &str| -> Result<()> {
        for k in 0..n {
            cluster.ctl(leader, &["put", &format!("{prefix}-{k}"), "v"])?;
        }
        Ok(())
    };
    // Past --snapshot-count=10: a snapshot falls here, before the changes below, which with
    // the puts after them stay under 10 entries (no later snapshot).
    put_some(cluster, 15, "before")?;
    let added = cluster.ctl(
        leader,
        &[
            "member",
            "add",
            "n4",
            &format!("--peer-urls={}", free_peer_url()?),
        ],
    )?;
    let n4 = added_id(&added)?;
    put_some(cluster, 2, "between")?;
    cluster.ctl(leader, &["member", "remove", &hex(n4)])?;
    // A refused change: it still takes a log index, which every replay must refuse again.
    expect_error(
        cluster,
        leader,
        &["member", "remove", &hex(n4)],
        "Error: etcdserver: member not found",
    )?;
    let slot = cluster.reserve_member("learner")?;
    let learner_url = format!("--peer-urls={}", cluster.peer_url(slot));
    let added = cluster.ctl(
        leader,
        &["member", "add", "learner", "--learner", &learner_url],
    )?;
    put_some(cluster, 1, "after")?;
    let (_, before) = cluster.member_list(leader)?;
    ensure!(
        before.len() == 4 && before.iter().filter(|m| m.is_learner).count() == 1,
        "before the restart the members are {before:?}"
    );
    for i in 0..3 {
        cluster.wait_local_value(i, "after-0", "v", WAIT)?;
        // Defragmenting commits the backend: the changes are below every consistent index.
        cluster.ctl(i, &["defrag"])?;
    }

    for i in 0..3 {
        cluster.kill(i)?;
    }
    for i in 0..3 {
        cluster.spawn_member(i)?;
    }
    for i in 0..3 {
        cluster.wait_healthy(i, WAIT)?;
    }
    for i in 0..3 {
        let (_, after) = cluster.member_list(i)?;
        ensure!(
            after == before,
            "{} lists {after:?} after the restart, wanted {before:?}",
            cluster.name(i)
        );
    }
    expect_error(
        cluster,
        leader,
        &["member", "remove", &hex(n4)],
        "Error: etcdserver: member not found",
    )?;
    let learner = cluster.add_process("learner", &initial_cluster_of(&added)?, &[])?;
    cluster.ctl(leader, &["put", "for-the-learner", "yes"])?;
    cluster.wait_local_value(learner, "for-the-learner", "yes", WAIT)?;
    // HashKV is refused on a learner (as by etcd): compare the voters.
    let leader = cluster.wait_leader(WAIT)?;
    let rev = cluster.status(leader)?.revision;
    cluster
        .same_hashkv(&[0, 1, 2], rev, WAIT)
        .map_err(|e| e.context("the voters after the restart"))?;
    Ok(())
}

#[test]
fn membership_survives_a_restart_of_every_member_on_oxcd() -> Result<()> {
    // Proves conf changes (accepted and refused) replayed after a SIGKILL of every member get the same verdicts: same member list, the learner still replicated to, equal HashKV.
    let args = ["--strict-reconfig-check=false", "--snapshot-count=10"];
    run_on(oxcd_flavor(), &args, membership_survives_restart)
}

/// A member whose data dir was lost, started again as a *new* member of the cluster it was
/// part of, refuses to start: its peers list it as started, so it would fork the cluster.
fn lost_data_dir_restarted_as_new(cluster: &mut Cluster) -> Result<()> {
    let (_, target, _) = leader_and_followers(cluster)?;
    let id = cluster.member_id(target)?;
    cluster.stop(target)?;
    cluster.wipe(target)?;
    let log_from = cluster.log(target).len();
    cluster.spawn_member(target)?;
    let what = format!("{} to refuse to start", cluster.name(target));
    let status = poll_until(WAIT, &what, || cluster.exit_status(target))?;
    ensure!(
        !status.success(),
        "it exited with {status}, wanted a failure"
    );
    let wanted = format!("member {id:x} has already been bootstrapped");
    let log = cluster.log(target);
    ensure!(
        log.get(log_from..).is_some_and(|l| l.contains(&wanted)),
        "it did not log {wanted:?}"
    );
    cluster.stop(target)
}

#[test]
fn lost_data_dir_restarted_as_new_on_oxcd() -> Result<()> {
    // Proves a member restarted as new after losing its data dir refuses to start, as etcd.
    run_on(oxcd_flavor(), &[], lost_data_dir_restarted_as_new)
}

#[test]
#[ignore = "proves the scenario on real etcd; run with --ignored"]
fn lost_data_dir_restarted_as_new_on_etcd() -> Result<()> {
    // Proves the lost-data-dir scenario holds on real etcd 3.4.23.
    run_on(Flavor::Etcd, &[], lost_data_dir_restarted_as_new)
}

/// A new member that is SIGKILLed after joining but before the leader reached it (its inbound
/// link blackholed) restarts from its own data dir, which holds no entry yet, and still
/// catches up once the link heals.
fn joiner_killed_before_its_first_entry(cluster: &mut Cluster) -> Result<()> {
    let (leader, _, _) = leader_and_followers(cluster)?;
    cluster.ctl(leader, &["put", "before-join", "v"])?;
    let slot = cluster.reserve_member("joiner")?;
    let proxy = cluster.proxy(slot).expect("a cluster with proxies");
    proxy.blackhole(true);
    let peer_urls = format!("--peer-urls={}", cluster.peer_url(slot));
    let added = cluster.ctl_past_strict_check(
        leader,
        &["member", "add", "joiner", "--learner", &peer_urls],
        WAIT,
    )?;
    let joiner = cluster.add_process("joiner", &initial_cluster_of(&added)?, &[])?;
    poll_until(WAIT, "the joiner to start raft", || {
        Ok(cluster
            .log(joiner)
            .contains("joining an existing cluster")
            .then_some(()))
    })?;
    cluster.kill(joiner)?;
    cluster.proxy(slot).expect("proxy").blackhole(false);
    cluster.spawn_member(joiner)?;
    cluster.wait_local_value(joiner, "before-join", "v", WAIT)?;
    cluster.ctl(leader, &["put", "after-restart", "w"])?;
    cluster.wait_local_value(joiner, "after-restart", "w", WAIT)
}

#[test]
fn a_joiner_killed_before_its_first_entry_catches_up_on_oxcd() -> Result<()> {
    // Proves a joining member restarted before it received anything still catches up.
    let mut cluster = Cluster::start_with_proxies(oxcd_flavor(), 3, &[])?;
    joiner_killed_before_its_first_entry(&mut cluster)
        .map_err(|e| Error::msg(format!("{e}\n\n{}", cluster.log_tails())))
}
