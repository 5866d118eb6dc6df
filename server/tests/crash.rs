//! Crash safety of the real `oxcd` binary: clients put under load, the member is SIGKILLed
//! while they do, and after each restart every acknowledged put must be there at the revision
//! it was acknowledged with, new writes must get higher revisions, and HashKV at revisions
//! taken before the crash must be unchanged. A small `--snapshot-count` makes the rounds cross
//! snapshots and WAL purges, so restarts go through snap file + db + WAL replay.
//!
//! The load runs for a fixed number of puts per round, not a fixed time, and the kill comes
//! when a share of them has been acknowledged, so the test does the same work on a slow or a
//! fast machine.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use oxcd_server::pb::etcdserverpb::kv_client::KvClient;
use oxcd_server::pb::etcdserverpb::maintenance_client::MaintenanceClient;
use oxcd_server::pb::etcdserverpb::{HashKvRequest, PutRequest, RangeRequest};
use oxcd_tests::etcd::{poll_until, Flavor};
use oxcd_tests::Etcd;
use tonic::transport::Channel;

const CLIENTS: usize = 8;
const ROUNDS: usize = 3;
/// Acknowledged puts per round before the kill.
const ACKED_BEFORE_KILL: usize = 1_500;

type Acked = Arc<Mutex<BTreeMap<String, (i64, String)>>>;

fn oxcd() -> Etcd {
    Etcd::start_with_args(
        Flavor::Binary(Path::new(env!("CARGO_BIN_EXE_oxcd")).to_path_buf()),
        &["--snapshot-count=400", "--max-snapshots=2", "--max-wals=2"],
    )
    .expect("oxcd starts")
}

async fn connect(url: &str) -> Channel {
    Channel::from_shared(url.to_string())
        .expect("valid url")
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(10))
        .connect()
        .await
        .expect("connects")
}

async fn hash_kv(channel: &Channel, revision: i64) -> u32 {
    MaintenanceClient::new(channel.clone())
        .hash_kv(HashKvRequest { revision })
        .await
        .expect("hashkv")
        .into_inner()
        .hash
}

/// One client: puts unique keys until the server goes away, recording what was acknowledged.
async fn put_until_error(channel: Channel, client: usize, round: usize, acked: Acked) {
    let mut kv = KvClient::new(channel);
    for n in 0.. {
        let key = format!("r{round}/c{client}/{n:06}");
        let value = format!("v-{round}-{client}-{n}");
        let request = PutRequest {
            key: key.clone().into_bytes(),
            value: value.clone().into_bytes(),
            ..PutRequest::default()
        };
        match kv.put(request).await {
            Ok(response) => {
                let revision = response.into_inner().header.expect("header").revision;
                acked.lock().unwrap().insert(key, (revision, value));
            }
            Err(_) => return,
        }
    }
}

async fn check_acked(channel: &Channel, acked: &Acked) -> i64 {
    let mut kv = KvClient::new(channel.clone());
    let acked = acked.lock().unwrap().clone();
    let mut max_rev = 0;
    for (key, (revision, value)) in &acked {
        let response = kv
            .range(RangeRequest {
                key: key.clone().into_bytes(),
                ..RangeRequest::default()
            })
            .await
            .expect("range")
            .into_inner();
        let kv = response
            .kvs
            .first()
            .unwrap_or_else(|| panic!("acknowledged put of {key} at {revision} is lost"));
        assert_eq!(kv.mod_revision, *revision, "{key} moved revision");
        assert_eq!(kv.value, value.as_bytes(), "{key} changed value");
        max_rev = max_rev.max(*revision);
    }
    max_rev
}

#[test]
fn sigkill_under_load_loses_no_acknowledged_put() {
    // Proves acknowledged puts survive SIGKILL at their revisions, revisions keep rising, and
    // HashKV at earlier revisions is unchanged across restarts (crossing snapshots).
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut member = oxcd();
    let acked: Acked = Arc::default();
    let mut hashes: Vec<(i64, u32)> = Vec::new();
    for round in 0..ROUNDS {
        let url = member.client_url().to_string();
        let channel = runtime.block_on(connect(&url));
        let tasks: Vec<_> = (0..CLIENTS)
            .map(|client| {
                let channel = channel.clone();
                runtime.spawn(put_until_error(channel, client, round, Arc::clone(&acked)))
            })
            .collect();
        let target = ACKED_BEFORE_KILL * (round + 1);
        poll_until(Duration::from_secs(120), "puts to be acknowledged", || {
            Ok((acked.lock().unwrap().len() >= target).then_some(()))
        })
        .unwrap();
        // A revision every client has passed, hashed while the load still runs.
        let sample_rev = acked
            .lock()
            .unwrap()
            .values()
            .map(|(r, _)| *r)
            .min()
            .unwrap();
        hashes.push((sample_rev, runtime.block_on(hash_kv(&channel, sample_rev))));
        member.kill().unwrap();
        for task in tasks {
            runtime.block_on(task).unwrap();
        }
        member.restart().unwrap();
        let channel = runtime.block_on(connect(member.client_url()));
        let max_rev = runtime.block_on(check_acked(&channel, &acked));
        for &(revision, hash) in &hashes {
            assert_eq!(
                runtime.block_on(hash_kv(&channel, revision)),
                hash,
                "HashKV at {revision} changed across the restart of round {round}"
            );
        }
        let next = runtime
            .block_on(KvClient::new(channel.clone()).put(PutRequest {
                key: format!("after/{round}").into_bytes(),
                value: b"x".to_vec(),
                ..PutRequest::default()
            }))
            .unwrap()
            .into_inner();
        assert!(
            next.header.unwrap().revision > max_rev,
            "revisions went back"
        );
    }
    let snaps = std::fs::read_dir(member.data_dir().join("member/snap"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".snap"))
        })
        .count();
    assert!(
        (1..=2).contains(&snaps),
        "expected 1..=2 snap files after purging, found {snaps}"
    );
    member.stop().unwrap();
}
