//! Watch correctness on the real `oxcd` binary: writers put and delete concurrently while
//! watchers (one fast, one deliberately slow, one starting at an old revision) watch the
//! prefix; every watcher must see exactly the acknowledged changes from its start revision,
//! in revision order, with nothing lost or duplicated. A watch starting below a compaction is
//! cancelled with the compaction revision, and after a restart a watch resuming at the last
//! revision seen + 1 gets exactly what followed.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use oxcd_server::pb::etcdserverpb::kv_client::KvClient;
use oxcd_server::pb::etcdserverpb::watch_client::WatchClient;
use oxcd_server::pb::etcdserverpb::watch_request::RequestUnion;
use oxcd_server::pb::etcdserverpb::{
    CompactionRequest, DeleteRangeRequest, PutRequest, WatchCreateRequest, WatchRequest,
};
use oxcd_server::pb::mvccpb::event::EventType;
use oxcd_tests::etcd::Flavor;
use oxcd_tests::Etcd;
use tokio::sync::mpsc;
use tonic::transport::Channel;

mod grpc;
use grpc::connect;

const WRITERS: usize = 4;
const OPS_PER_WRITER: usize = 300;
const PREFIX: &str = "w/";
/// Keys whose put ends a phase; watchers stop once they see theirs.
const END_1: &str = "w/~end-1";
const END_2: &str = "w/~end-2";

/// (revision) -> (key, Some(value) for a put, None for a delete), as acknowledged.
type History = Arc<Mutex<BTreeMap<i64, (String, Option<String>)>>>;

/// What a watcher saw: (revision, key, value or None).
type Seen = Vec<(i64, String, Option<String>)>;

/// Puts `key` (the end marker of a phase) and records it.
async fn mark(channel: Channel, key: &str, history: &History) {
    let r = KvClient::new(channel)
        .put(PutRequest {
            key: key.as_bytes().to_vec(),
            value: b"end".to_vec(),
            ..PutRequest::default()
        })
        .await
        .unwrap()
        .into_inner();
    let rev = r.header.unwrap().revision;
    history
        .lock()
        .unwrap()
        .insert(rev, (key.to_string(), Some("end".to_string())));
}

async fn writer(channel: Channel, n: usize, history: History) {
    let mut kv = KvClient::new(channel);
    for i in 0..OPS_PER_WRITER {
        let key = format!("{PREFIX}{n}/{}", i % 50);
        if i % 7 == 6 {
            let r = kv
                .delete_range(DeleteRangeRequest {
                    key: key.clone().into_bytes(),
                    ..DeleteRangeRequest::default()
                })
                .await
                .unwrap()
                .into_inner();
            if r.deleted == 1 {
                let rev = r.header.unwrap().revision;
                history.lock().unwrap().insert(rev, (key, None));
            }
        } else {
            let value = format!("{n}-{i}");
            let r = kv
                .put(PutRequest {
                    key: key.clone().into_bytes(),
                    value: value.clone().into_bytes(),
                    ..PutRequest::default()
                })
                .await
                .unwrap()
                .into_inner();
            let rev = r.header.unwrap().revision;
            history.lock().unwrap().insert(rev, (key, Some(value)));
        }
    }
}

/// Watches the prefix from `start_rev` until an event for `stop_key` is seen (or the watch is
/// cancelled, returned as `Err(compact_revision)`), sleeping `delay` after each response.
async fn watch(
    channel: Channel,
    start_rev: i64,
    stop_key: &'static str,
    delay: Duration,
) -> Result<Seen, i64> {
    let (tx, rx) = mpsc::channel(4);
    let end = {
        let mut end = PREFIX.as_bytes().to_vec();
        *end.last_mut().unwrap() += 1;
        end
    };
    tx.send(WatchRequest {
        request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
            key: PREFIX.as_bytes().to_vec(),
            range_end: end,
            start_revision: start_rev,
            ..WatchCreateRequest::default()
        })),
    })
    .await
    .unwrap();
    let mut stream = WatchClient::new(channel)
        .watch(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let mut seen = Seen::new();
    while let Some(response) = stream.message().await.unwrap() {
        if response.canceled {
            return Err(response.compact_revision);
        }
        for event in response.events {
            let kv = event.kv.unwrap();
            let value = (event.r#type == EventType::Put as i32)
                .then(|| String::from_utf8(kv.value).unwrap());
            seen.push((kv.mod_revision, String::from_utf8(kv.key).unwrap(), value));
        }
        if seen.iter().any(|(_, key, _)| key == stop_key) {
            break;
        }
        tokio::time::sleep(delay).await;
    }
    drop(tx);
    Ok(seen)
}

fn expected(history: &History, from_rev: i64) -> Seen {
    history
        .lock()
        .unwrap()
        .range(from_rev..)
        .map(|(rev, (key, value))| (*rev, key.clone(), value.clone()))
        .collect()
}

#[test]
fn watchers_see_every_change_in_order_across_slowness_compaction_and_restart() {
    // Proves the watch guarantees of the module doc on a real process.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut member = Etcd::start_with_args(
        Flavor::Binary(Path::new(env!("CARGO_BIN_EXE_oxcd")).to_path_buf()),
        &[],
    )
    .unwrap();
    let url = member.client_url().to_string();
    let history: History = Arc::default();
    runtime.block_on(async {
        let channel = connect(&url).await;
        let first = 2; // the first write of a fresh member gets revision 2
        let fast = tokio::spawn(watch(channel.clone(), first, END_1, Duration::ZERO));
        let slow = tokio::spawn(watch(
            channel.clone(),
            first,
            END_1,
            Duration::from_millis(20),
        ));
        let writers: Vec<_> = (0..WRITERS)
            .map(|n| tokio::spawn(writer(channel.clone(), n, Arc::clone(&history))))
            .collect();
        for w in writers {
            w.await.unwrap();
        }
        mark(channel.clone(), END_1, &history).await;
        let want = expected(&history, first);
        assert_eq!(fast.await.unwrap().unwrap(), want, "fast watcher");
        assert_eq!(slow.await.unwrap().unwrap(), want, "slow watcher");
        let final_rev = *history.lock().unwrap().keys().last().unwrap();
        let middle = first + (final_rev - first) / 2;
        let old = watch(channel.clone(), middle, END_1, Duration::ZERO)
            .await
            .unwrap();
        assert_eq!(
            old,
            expected(&history, middle),
            "watcher from an old revision"
        );

        KvClient::new(channel.clone())
            .compact(CompactionRequest {
                revision: middle,
                physical: true,
            })
            .await
            .unwrap();
        let compacted = watch(channel.clone(), first, END_1, Duration::ZERO).await;
        assert_eq!(
            compacted,
            Err(middle),
            "a start below the compaction is cancelled"
        );
        let after = watch(channel.clone(), middle, END_1, Duration::ZERO)
            .await
            .unwrap();
        assert_eq!(after, expected(&history, middle));
    });
    let last_seen = *history.lock().unwrap().keys().last().unwrap();
    let middle = 2 + (last_seen - 2) / 2;
    member.restart().unwrap();
    let url = member.client_url().to_string();
    runtime.block_on(async {
        let channel = connect(&url).await;
        let resumed = tokio::spawn(watch(channel.clone(), last_seen + 1, END_2, Duration::ZERO));
        writer(channel.clone(), 9, Arc::clone(&history)).await;
        mark(channel.clone(), END_2, &history).await;
        assert_eq!(
            resumed.await.unwrap().unwrap(),
            expected(&history, last_seen + 1),
            "resumed after restart"
        );
        // A fresh member's hub holds nothing from before the restart: this one is served
        // from the key bucket (the catch-up path), then from the hub. It starts just above
        // the compaction revision: compacting at `middle` removed a delete made at `middle`
        // from the bucket, as etcd's compaction removes tombstones at its revision.
        let from_history = watch(channel, middle + 1, END_2, Duration::ZERO)
            .await
            .unwrap();
        assert_eq!(
            from_history,
            expected(&history, middle + 1),
            "catch-up from history"
        );
    });
    member.stop().unwrap();
}
