//! Write load and convergence checks shared by the cluster tests (`cluster.rs`,
//! `cluster_faults.rs`): a [`Load`] of writers that put unique keys under `load/` and record the
//! acknowledged ones, the keys a member holds, that every member holds every acknowledged key,
//! and HashKV equality across members.

#![allow(dead_code)] // Each test binary uses its own subset.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use oxcd_server::pb::etcdserverpb::kv_client::KvClient;
use oxcd_server::pb::etcdserverpb::{PutRequest, RangeRequest};
use oxcd_tests::cluster::Cluster;
use oxcd_tests::etcd::poll_until;
use tokio::runtime::Runtime;
use tokio::task::JoinHandle;

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

/// Writers running on their own runtime until [`Load::stop`].
pub struct Load {
    runtime: Runtime,
    acked: Acked,
    stop: Arc<AtomicBool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Load {
    /// Starts one writer per `(member, writer)`, the k-th putting `load/k/N` through that
    /// member's client URL (see [`write_until_stopped`]).
    pub fn start(cluster: &Cluster, writers: &[(usize, Writer)]) -> Load {
        let runtime = Runtime::new().unwrap();
        let acked = Acked::default();
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = writers
            .iter()
            .enumerate()
            .map(|(k, &(member, writer))| {
                let url = cluster.client_url(member).to_string();
                let (acked, stop) = (Arc::clone(&acked), Arc::clone(&stop));
                runtime.spawn(write_until_stopped(url, k, writer, acked, stop))
            })
            .collect();
        Load {
            runtime,
            acked,
            stop,
            tasks,
        }
    }

    /// How many puts have been acknowledged so far.
    pub fn acked_count(&self) -> usize {
        self.acked.lock().unwrap().len()
    }

    /// Waits until at least `n` puts have been acknowledged in all.
    pub fn wait_acked(&self, n: usize, what: &str) {
        poll_until(WAIT, what, || Ok((self.acked_count() >= n).then_some(())))
            .unwrap_or_else(|e| panic!("{e}: {} of {n} puts acknowledged", self.acked_count()));
    }

    /// Stops the writers, waits for each to finish its put in flight, and returns the
    /// acknowledged keys.
    pub fn stop(self) -> BTreeSet<String> {
        self.stop.store(true, Ordering::SeqCst);
        for task in self.tasks {
            self.runtime.block_on(task).unwrap();
        }
        let acked = self.acked.lock().unwrap().clone();
        acked
    }
}

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

/// Asserts that every member holds every key in `acked`, read through each one: linearizably,
/// or from its own view when `serializable` (then only once it has reached the revision the
/// leader is at).
pub fn assert_every_member_has(cluster: &Cluster, acked: &BTreeSet<String>, serializable: bool) {
    let rev = serializable.then(|| {
        let leader = cluster.wait_leader(WAIT).unwrap();
        cluster.status(leader).unwrap().revision
    });
    let runtime = Runtime::new().unwrap();
    for i in 0..cluster.size() {
        if let Some(rev) = rev {
            cluster
                .wait_revision(i, rev, WAIT)
                .unwrap_or_else(|e| panic!("{e}"));
        }
        let present = runtime.block_on(load_keys_at(cluster.client_url(i), serializable));
        let missing: Vec<_> = acked.difference(&present).collect();
        assert!(
            missing.is_empty(),
            "{} lacks {} of {} acknowledged keys ({} read), e.g. {:?}",
            cluster.name(i),
            missing.len(),
            acked.len(),
            if serializable {
                "serializable"
            } else {
                "linearizable"
            },
            &missing[..missing.len().min(5)]
        );
    }
}

/// Waits until every running member reaches the revision member `leader` is at, then asserts
/// they all have the same HashKV there.
pub fn assert_same_hashkv(cluster: &Cluster, leader: usize) {
    let rev = cluster.status(leader).unwrap().revision;
    if let Err(e) = cluster.same_hashkv(&cluster.running_members(), rev, WAIT) {
        panic!("{e}");
    }
}
