//! Write load and convergence checks shared by the cluster tests (`cluster.rs`,
//! `cluster_faults.rs`): writers that put unique keys under `load/` and record the acknowledged
//! ones, the keys a member holds, and HashKV equality across members.

#![allow(dead_code)] // Each test binary uses its own subset.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use oxcd_server::pb::etcdserverpb::kv_client::KvClient;
use oxcd_server::pb::etcdserverpb::{PutRequest, RangeRequest};
use oxcd_tests::cluster::Cluster;
use oxcd_tests::etcd::poll_until;

use crate::grpc::connect;

/// How long a convergence check waits.
const WAIT: Duration = Duration::from_secs(30);

/// What one writer puts and how fast.
#[derive(Clone, Copy, Debug)]
pub struct Writer {
    /// Value size of every put.
    pub value_bytes: usize,
    /// Pause after each acknowledged put.
    pub pause: Duration,
    /// How long one put may take before the writer reconnects.
    pub put_timeout: Duration,
}

impl Writer {
    /// One-byte puts, back to back, each given 10 s.
    pub fn small() -> Writer {
        Writer {
            value_bytes: 1,
            pause: Duration::ZERO,
            put_timeout: Duration::from_secs(10),
        }
    }
}

/// The acknowledged keys of a load, shared with its writers.
pub type Acked = Arc<Mutex<BTreeSet<String>>>;

/// Puts unique keys (`load/ID/N`) through `url` as `writer` says until `stop`, recording the
/// acknowledged ones in `acked`; failures (a member killed, no leader for a moment, a put stuck
/// behind a broken link) are retried with a new key.
pub async fn write_until_stopped(
    url: String,
    id: usize,
    writer: Writer,
    acked: Acked,
    stop: Arc<AtomicBool>,
) {
    let mut client = None;
    let mut n = 0;
    while !stop.load(Ordering::SeqCst) {
        n += 1;
        let key = format!("load/{id}/{n:06}");
        if client.is_none() {
            match tonic::transport::Channel::from_shared(url.clone())
                .unwrap()
                .connect_timeout(Duration::from_millis(500))
                .connect()
                .await
            {
                Ok(channel) => client = Some(KvClient::new(channel)),
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            }
        }
        let kv = client.as_mut().unwrap();
        let put = kv.put(PutRequest {
            key: key.clone().into_bytes(),
            value: vec![b'x'; writer.value_bytes],
            ..PutRequest::default()
        });
        match tokio::time::timeout(writer.put_timeout, put).await {
            Ok(Ok(_)) => {
                acked.lock().unwrap().insert(key);
                if !writer.pause.is_zero() {
                    tokio::time::sleep(writer.pause).await;
                }
            }
            Ok(Err(_)) => tokio::time::sleep(Duration::from_millis(20)).await,
            Err(_) => client = None,
        }
    }
}

/// Every key under `load/` on the member at `url`: linearizably, or from its local view when
/// `serializable`.
pub async fn load_keys_at(url: &str, serializable: bool) -> BTreeSet<String> {
    let mut kv = KvClient::new(connect(url).await);
    let response = kv
        .range(RangeRequest {
            key: b"load/".to_vec(),
            range_end: b"load0".to_vec(),
            keys_only: true,
            serializable,
            ..RangeRequest::default()
        })
        .await
        .unwrap()
        .into_inner();
    response
        .kvs
        .into_iter()
        .map(|kv| String::from_utf8(kv.key).unwrap())
        .collect()
}

/// Waits until every member reaches the revision member `leader` is at, then asserts they all
/// have the same HashKV there.
pub fn assert_same_hashkv(cluster: &Cluster, leader: usize) {
    let rev = cluster.status(leader).unwrap().revision;
    let hashes = poll_until(WAIT, "every member at the same revision", || {
        let all = cluster.hashkv_all(rev)?;
        Ok(all.iter().all(|(_, _, r)| *r == rev).then_some(all))
    })
    .unwrap();
    let distinct: BTreeSet<u32> = hashes.iter().map(|(_, h, _)| *h).collect();
    assert_eq!(distinct.len(), 1, "HashKV differs: {hashes:?}");
}
