//! Watch options beyond events, on oxcd and on real etcd 3.4.23 started by the same test:
//! `fragment` splits a large catch-up response as etcd does, and progress notifications
//! arrive at the interval `--experimental-watch-progress-notify-interval` sets.

use std::time::Duration;

use oxcd_server::pb::etcdserverpb::kv_client::KvClient;
use oxcd_server::pb::etcdserverpb::watch_client::WatchClient;
use oxcd_server::pb::etcdserverpb::watch_request::RequestUnion;
use oxcd_server::pb::etcdserverpb::{PutRequest, WatchCreateRequest, WatchRequest, WatchResponse};
use oxcd_tests::etcd::Flavor;
use oxcd_tests::Etcd;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tonic::Streaming;

/// 40 values of 100,000 bytes: about 4 MB of events, twice the fragment limit of etcd's
/// default `--max-request-bytes` (1.5 MiB plus 512 KiB).
const BIG_VALUES: usize = 40;
const BIG_VALUE_BYTES: usize = 100_000;
const FRAGMENT_LIMIT_BYTES: usize = 1_572_864 + 512 * 1024;

mod grpc;
use grpc::connect;

fn both(args: &[&str]) -> [Etcd; 2] {
    [
        Etcd::start_with_args(Flavor::Etcd, args).unwrap(),
        grpc::start_oxcd(args),
    ]
}

/// Opens a stream with one watch; returns the stream after its `created` response.
async fn watch(
    channel: Channel,
    create: WatchCreateRequest,
) -> (mpsc::Sender<WatchRequest>, Streaming<WatchResponse>) {
    let (tx, rx) = mpsc::channel(4);
    tx.send(WatchRequest {
        request_union: Some(RequestUnion::CreateRequest(create)),
    })
    .await
    .unwrap();
    let mut stream = WatchClient::new(channel)
        .watch(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let created = stream.message().await.unwrap().unwrap();
    assert!(created.created);
    (tx, stream)
}

async fn next(stream: &mut Streaming<WatchResponse>) -> WatchResponse {
    tokio::time::timeout(Duration::from_secs(20), stream.message())
        .await
        .expect("a watch response within 20 s")
        .unwrap()
        .unwrap()
}

/// (events per part, fragment flag per part, revisions in order) of a fragmented catch-up.
async fn fragments(url: &str) -> (Vec<usize>, Vec<bool>, Vec<i64>) {
    let channel = connect(url).await;
    let mut kv = KvClient::new(channel.clone());
    for i in 0..BIG_VALUES {
        kv.put(PutRequest {
            key: format!("big/{i:02}").into_bytes(),
            value: vec![b'a' + (i % 26) as u8; BIG_VALUE_BYTES],
            ..PutRequest::default()
        })
        .await
        .unwrap();
    }
    let create = WatchCreateRequest {
        key: b"big/".to_vec(),
        range_end: b"big0".to_vec(),
        start_revision: 2,
        fragment: true,
        ..WatchCreateRequest::default()
    };
    let (_tx, mut stream) = watch(channel, create).await;
    let (mut counts, mut flags, mut revisions) = (Vec::new(), Vec::new(), Vec::new());
    while revisions.len() < BIG_VALUES {
        let part = next(&mut stream).await;
        let size = prost::Message::encoded_len(&part);
        assert!(
            size < FRAGMENT_LIMIT_BYTES || part.events.len() == 1,
            "a part of {size} bytes"
        );
        counts.push(part.events.len());
        flags.push(part.fragment);
        revisions.extend(
            part.events
                .iter()
                .map(|e| e.kv.as_ref().unwrap().mod_revision),
        );
    }
    (counts, flags, revisions)
}

#[test]
fn fragment_splits_a_large_response_as_etcd_does() {
    // A fragmented catch-up of ~4 MB arrives in the same parts, flags and order as etcd's.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let [mut etcd, mut oxcd] = both(&[]);
    let want = runtime.block_on(fragments(etcd.client_url()));
    let got = runtime.block_on(fragments(oxcd.client_url()));
    etcd.stop().unwrap();
    oxcd.stop().unwrap();
    assert!(want.0.len() > 1, "etcd split the response: {want:?}");
    assert_eq!(want.2, (2..2 + BIG_VALUES as i64).collect::<Vec<_>>());
    assert_eq!(got, want);
}

/// What a `progress_notify` watcher gets on a quiet key, then after a put, then quiet again:
/// for each response, (events, revision in its header).
async fn progress(url: &str) -> Vec<(usize, i64)> {
    let channel = connect(url).await;
    let mut kv = KvClient::new(channel.clone());
    let put = |key: &'static str| PutRequest {
        key: key.as_bytes().to_vec(),
        value: b"v".to_vec(),
        ..PutRequest::default()
    };
    kv.put(put("other")).await.unwrap();
    let create = WatchCreateRequest {
        key: b"quiet".to_vec(),
        progress_notify: true,
        ..WatchCreateRequest::default()
    };
    let (_tx, mut stream) = watch(channel, create).await;
    let mut seen = Vec::new();
    let mut record = |r: WatchResponse| seen.push((r.events.len(), r.header.unwrap().revision));
    record(next(&mut stream).await);
    kv.put(put("other")).await.unwrap();
    record(next(&mut stream).await);
    kv.put(put("quiet")).await.unwrap();
    record(next(&mut stream).await);
    record(next(&mut stream).await);
    seen
}

#[test]
fn progress_notifications_follow_the_configured_interval() {
    // With a 300 ms interval an idle progress_notify watcher hears the current revision
    // without waiting etcd's default 10 minutes, exactly as etcd 3.4.23 answers.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let [mut etcd, mut oxcd] = both(&["--experimental-watch-progress-notify-interval=300ms"]);
    let want = runtime.block_on(progress(etcd.client_url()));
    let got = runtime.block_on(progress(oxcd.client_url()));
    etcd.stop().unwrap();
    oxcd.stop().unwrap();
    assert_eq!(want, vec![(0, 2), (0, 3), (1, 4), (0, 4)]);
    assert_eq!(got, want);
}
