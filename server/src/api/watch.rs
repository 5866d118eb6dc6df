//! The Watch service (etcd's `v3rpc/watch.go`): one task per stream owns its watchers and
//! serves them from the event hub or, when they are behind it, from history (see
//! `mvcc::watch`). Responses go out through a small bounded channel: a client that does not
//! read stops its own task, and nothing is queued or dropped meanwhile.
//!
//! etcd's rules kept here: watch IDs count from 0 per stream (a client-chosen `watch_id`, etcd
//! 3.5's, is honoured when free); `start_revision` 0 means "after the current revision"; a start
//! below the compaction revision answers `compact_revision` and cancels the watch; events come
//! in revision order, at most 1,000 revisions per response; NOPUT / NODELETE filters and
//! `prev_kv` (the key as of the revision before the event); a progress request answers a
//! header with watch ID -1.
//!
//! Progress (etcd's `sendLoop` rule): every `--experimental-watch-progress-notify-interval`,
//! each `progress_notify` watcher that is caught up and got no events since the previous tick
//! receives an empty response carrying the current revision.
//!
//! Fragments: a watcher created with `fragment` has an events response larger than
//! `--max-request-bytes` plus gRPC's 512 KiB slack split into several, each as large as the
//! limit allows (at least one event), all but the last flagged `fragment` (etcd's
//! `sendFragments`). Without `fragment` a response is sent whole, as in etcd.

use prost::Message as _;
use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::errors::GRPC_OVERHEAD_BYTES;
use crate::etcdserver::EtcdServer;
use crate::mvcc::watch::{mod_rev, MAX_REVS_PER_READ};
use crate::mvcc::{KeyRange, MvccError, RangeOptions, ReadView, StoreRead};
use crate::pb::etcdserverpb::watch_create_request::FilterType;
use crate::pb::etcdserverpb::watch_request::RequestUnion;
use crate::pb::etcdserverpb::watch_server::Watch;
use crate::pb::etcdserverpb::{WatchCreateRequest, WatchRequest, WatchResponse};
use crate::pb::mvccpb::event::EventType;
use crate::pb::mvccpb::Event;

/// The field number of `WatchResponse.events`.
const EVENTS_FIELD: u32 = 11;
/// Responses a stream may have in flight to its client.
const STREAM_BUFFER: usize = 16;

/// The Watch service over one member.
pub struct WatchService {
    server: EtcdServer,
}

impl WatchService {
    pub fn new(server: EtcdServer) -> WatchService {
        WatchService { server }
    }
}

struct Watcher {
    key: Vec<u8>,
    range_end: Vec<u8>,
    /// The next revision whose events this watcher owes its client.
    next_rev: i64,
    no_put: bool,
    no_delete: bool,
    prev_kv: bool,
    progress_notify: bool,
    /// No events were sent since the last progress tick.
    quiet: bool,
    fragment: bool,
}

type Outbox = mpsc::Sender<Result<WatchResponse, Status>>;

#[tonic::async_trait]
impl Watch for WatchService {
    type WatchStream = ReceiverStream<Result<WatchResponse, Status>>;

    async fn watch(
        &self,
        request: Request<Streaming<WatchRequest>>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        let server = self.server.clone();
        let inbound = request.into_inner();
        tokio::spawn(async move {
            if let Err(status) = serve_stream(server, inbound, &tx).await {
                let _ = tx.send(Err(status)).await;
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

/// Ends quietly when the client goes away.
struct Gone;

async fn send(tx: &Outbox, response: WatchResponse) -> Result<(), Gone> {
    tx.send(Ok(response)).await.map_err(|_| Gone)
}

async fn serve_stream(
    server: EtcdServer,
    mut inbound: Streaming<WatchRequest>,
    tx: &Outbox,
) -> Result<(), Status> {
    let mut watchers: BTreeMap<i64, Watcher> = BTreeMap::new();
    let mut next_id = 0i64;
    let mut revs = server.hub().subscribe();
    let every = server.limits().watch_progress_interval;
    let mut progress = tokio::time::interval_at(Instant::now() + every, every);
    loop {
        tokio::select! {
            message = inbound.message() => {
                let Some(message) = message? else { return Ok(()) };
                let handled = handle_request(&server, message, &mut watchers, &mut next_id, tx).await;
                if handled.is_err() {
                    return Ok(());
                }
            }
            changed = revs.changed() => {
                if changed.is_err() {
                    return Ok(());
                }
            }
            _ = progress.tick() => {
                if notify_progress(&server, &mut watchers, tx).await.is_err() {
                    return Ok(());
                }
            }
        }
        match sync_watchers(&server, &mut watchers, tx).await {
            Ok(()) => {}
            Err(SyncError::Gone) => return Ok(()),
            Err(SyncError::Status(status)) => return Err(status),
        }
    }
}

async fn handle_request(
    server: &EtcdServer,
    message: WatchRequest,
    watchers: &mut BTreeMap<i64, Watcher>,
    next_id: &mut i64,
    tx: &Outbox,
) -> Result<(), Gone> {
    let current = server.store().rev().unwrap_or_default();
    let header = Some(server.header(current));
    match message.request_union {
        Some(RequestUnion::CreateRequest(create)) => {
            let id = if create.watch_id != 0 {
                create.watch_id
            } else {
                while watchers.contains_key(next_id) {
                    *next_id += 1;
                }
                *next_id
            };
            if watchers.contains_key(&id) {
                // etcd answers a taken client-chosen ID with a create-then-cancel.
                return send(
                    tx,
                    WatchResponse {
                        header,
                        watch_id: id,
                        created: true,
                        canceled: true,
                        ..WatchResponse::default()
                    },
                )
                .await;
            }
            watchers.insert(id, new_watcher(create, current));
            send(
                tx,
                WatchResponse {
                    header,
                    watch_id: id,
                    created: true,
                    ..WatchResponse::default()
                },
            )
            .await
        }
        Some(RequestUnion::CancelRequest(cancel)) => {
            if watchers.remove(&cancel.watch_id).is_none() {
                return Ok(());
            }
            send(
                tx,
                WatchResponse {
                    header,
                    watch_id: cancel.watch_id,
                    canceled: true,
                    ..WatchResponse::default()
                },
            )
            .await
        }
        Some(RequestUnion::ProgressRequest(_)) => {
            let header = Some(server.header(server.hub().last_rev()));
            send(
                tx,
                WatchResponse {
                    header,
                    watch_id: -1,
                    ..WatchResponse::default()
                },
            )
            .await
        }
        None => Ok(()),
    }
}

fn new_watcher(create: WatchCreateRequest, current: i64) -> Watcher {
    let filter = |kind: FilterType| create.filters.contains(&(kind as i32));
    Watcher {
        next_rev: if create.start_revision > 0 {
            create.start_revision
        } else {
            current + 1
        },
        no_put: filter(FilterType::Noput),
        no_delete: filter(FilterType::Nodelete),
        prev_kv: create.prev_kv,
        progress_notify: create.progress_notify,
        quiet: true,
        fragment: create.fragment,
        key: create.key,
        range_end: create.range_end,
    }
}

enum SyncError {
    Gone,
    Status(Status),
}

impl From<Gone> for SyncError {
    fn from(_: Gone) -> SyncError {
        SyncError::Gone
    }
}

impl From<MvccError> for SyncError {
    fn from(e: MvccError) -> SyncError {
        SyncError::Status(e.into())
    }
}

/// Sends every watcher the events it is owed up to the hub's last published revision.
async fn sync_watchers(
    server: &EtcdServer,
    watchers: &mut BTreeMap<i64, Watcher>,
    tx: &Outbox,
) -> Result<(), SyncError> {
    let target = server.hub().last_rev();
    let ids: Vec<i64> = watchers
        .iter()
        .filter(|(_, w)| w.next_rev <= target)
        .map(|(id, _)| *id)
        .collect();
    for id in ids {
        let Some(watcher) = watchers.get_mut(&id) else {
            continue;
        };
        let keep = sync_one(server, id, watcher, target, tx).await?;
        if !keep {
            watchers.remove(&id);
        }
    }
    Ok(())
}

/// Catches one watcher up to `target`; false if it was cancelled (compacted start).
async fn sync_one(
    server: &EtcdServer,
    id: i64,
    watcher: &mut Watcher,
    target: i64,
    tx: &Outbox,
) -> Result<bool, SyncError> {
    while watcher.next_rev <= target {
        let compact_rev = server.store().compact_rev()?;
        if watcher.next_rev < compact_rev {
            send(
                tx,
                WatchResponse {
                    header: Some(server.header(target)),
                    watch_id: id,
                    canceled: true,
                    compact_revision: compact_rev,
                    ..WatchResponse::default()
                },
            )
            .await?;
            return Ok(false);
        }
        let to = target.min(watcher.next_rev + MAX_REVS_PER_READ - 1);
        let mut view = None;
        let events = read_events(server, watcher.next_rev, to, &mut view)?;
        if watcher.prev_kv && view.is_none() {
            view = Some(server.store().read()?);
        }
        let range = KeyRange::from_request(&watcher.key, &watcher.range_end);
        let mut out = Vec::new();
        for shared in events {
            let Some(kv) = shared.kv.as_ref() else {
                continue;
            };
            if !range.contains(&kv.key) {
                continue;
            }
            let is_put = shared.r#type == EventType::Put as i32;
            if (is_put && watcher.no_put) || (!is_put && watcher.no_delete) {
                continue;
            }
            let mut event = Arc::unwrap_or_clone(shared);
            if let Some(view) = view.as_ref().filter(|_| watcher.prev_kv) {
                event.prev_kv = previous(view, &event);
            }
            out.push(event);
        }
        watcher.next_rev = to + 1;
        if !out.is_empty() {
            watcher.quiet = false;
            let response = WatchResponse {
                header: Some(server.header(target)),
                watch_id: id,
                events: out,
                ..WatchResponse::default()
            };
            if watcher.fragment {
                let limit = server.limits().max_request_bytes + GRPC_OVERHEAD_BYTES;
                send_fragments(tx, response, limit as usize).await?;
            } else {
                send(tx, response).await?;
            }
        }
    }
    Ok(true)
}

/// The events of revisions `from..=to`: from the hub while it holds them, otherwise from the
/// `key` bucket through `view` (opened here; a store view is taken only when needed). The
/// caller checks `from` against the compact revision first.
pub(super) fn read_events(
    server: &EtcdServer,
    from: i64,
    to: i64,
    view: &mut Option<StoreRead>,
) -> Result<Vec<Arc<Event>>, MvccError> {
    if let Some(events) = server.hub().events(from, to) {
        return Ok(events);
    }
    let view = match view {
        Some(view) => view,
        None => view.insert(server.store().read()?),
    };
    Ok(view.history(from, to)?.into_iter().map(Arc::new).collect())
}

/// The key as it was just before `event` (none if it did not exist or is compacted away).
fn previous(view: &StoreRead, event: &Event) -> Option<crate::pb::mvccpb::KeyValue> {
    let kv = event.kv.as_ref()?;
    let opts = RangeOptions {
        rev: mod_rev(event) - 1,
        ..RangeOptions::default()
    };
    if opts.rev <= 0 {
        return None;
    }
    view.range(&kv.key, &[], &opts).ok()?.kvs.into_iter().next()
}

/// A progress tick: an empty response to each caught-up `progress_notify` watcher that got no
/// events since the previous tick; then every watcher starts a new quiet period.
async fn notify_progress(
    server: &EtcdServer,
    watchers: &mut BTreeMap<i64, Watcher>,
    tx: &Outbox,
) -> Result<(), Gone> {
    let target = server.hub().last_rev();
    for (id, watcher) in watchers.iter_mut() {
        let due = std::mem::replace(&mut watcher.quiet, true);
        if watcher.progress_notify && due && watcher.next_rev > target {
            send(
                tx,
                WatchResponse {
                    header: Some(server.header(target)),
                    watch_id: *id,
                    ..WatchResponse::default()
                },
            )
            .await?;
        }
    }
    Ok(())
}

/// Sends `response` split so each part stays under `limit_bytes` where possible (a part holds
/// at least one event); every part but the last has `fragment` set (etcd's `sendFragments`).
async fn send_fragments(
    tx: &Outbox,
    response: WatchResponse,
    limit_bytes: usize,
) -> Result<(), Gone> {
    if response.events.len() < 2 || response.encoded_len() < limit_bytes {
        return send(tx, response).await;
    }
    let mut events = response.events.into_iter().peekable();
    let empty = WatchResponse {
        events: Vec::new(),
        fragment: true,
        ..response
    };
    loop {
        let mut part = empty.clone();
        let mut size = part.encoded_len();
        while let Some(event) = events.peek() {
            let added = prost::encoding::message::encoded_len(EVENTS_FIELD, event);
            if !part.events.is_empty() && size + added >= limit_bytes {
                break;
            }
            size += added;
            part.events.extend(events.next());
        }
        let last = events.peek().is_none();
        part.fragment = !last;
        send(tx, part).await?;
        if last {
            return Ok(());
        }
    }
}
