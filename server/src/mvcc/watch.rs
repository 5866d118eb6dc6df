//! Watch events: the hub that publishes every applied change, and history reads for watchers
//! that are behind.
//!
//! Design (pull, not push): nothing is ever queued per watcher. The applier publishes each
//! batch's changes to the [`EventHub`] once they are visible; the hub keeps the most recent
//! events in a ring and announces the last published revision. A watcher remembers only the
//! next revision it owes its client; when woken it takes the events from the ring if the ring
//! still covers them, otherwise reads them from the `key` bucket ([`StoreRead::history`]), at
//! most [`MAX_REVS_PER_READ`] revisions at a time. A slow watcher therefore costs no memory
//! and loses nothing: it falls behind the ring and catches up from the backend, in revision
//! order, exactly once per event (etcd's synced/unsynced groups without the victim list).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use super::error::MvccError;
use super::revision::{BucketKey, Revision};
use super::view::StoreRead;
use super::write::{Change, ChangeKind};
use crate::pb::mvccpb::{event::EventType, Event, KeyValue};

/// Events the ring keeps (whole revisions).
pub const RING_EVENTS: usize = 65_536;
/// Revisions a watcher reads from history per step (etcd's `watchBatchMaxRevs`).
pub const MAX_REVS_PER_READ: i64 = 1_000;

struct Ring {
    /// Events in revision order, shared: a reader copies out only the events it keeps, after
    /// releasing the lock.
    events: VecDeque<Arc<Event>>,
    /// The ring holds every event of revisions `covered_from..=last_rev`.
    covered_from: i64,
    last_rev: i64,
}

/// Publishes applied changes to watchers. See the module doc.
pub struct EventHub {
    ring: Mutex<Ring>,
    rev: tokio::sync::watch::Sender<i64>,
}

impl EventHub {
    /// A hub whose store is at `current_rev`: everything up to it is history.
    pub fn new(current_rev: i64) -> EventHub {
        EventHub {
            ring: Mutex::new(Ring {
                events: VecDeque::new(),
                covered_from: current_rev + 1,
                last_rev: current_rev,
            }),
            rev: tokio::sync::watch::channel(current_rev).0,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Ring> {
        self.ring.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Publishes one batch's changes (in revision order), now visible at `rev`.
    pub fn publish(&self, changes: Vec<Change>, rev: i64) {
        {
            let mut ring = self.lock();
            for change in changes {
                ring.events.push_back(Arc::new(to_event(change)));
            }
            while ring.events.len() > RING_EVENTS {
                let Some(dropped) = ring.events.pop_front() else {
                    break;
                };
                let dropped_rev = mod_rev(&dropped);
                while ring
                    .events
                    .front()
                    .is_some_and(|e| mod_rev(e) == dropped_rev)
                {
                    ring.events.pop_front();
                }
                ring.covered_from = dropped_rev + 1;
            }
            ring.last_rev = ring.last_rev.max(rev);
        }
        self.rev.send_replace(rev);
    }

    /// Forgets every event: the store was replaced by a snapshot and is now at `rev`. Watchers
    /// behind it catch up from the new store's history.
    pub fn reset(&self, rev: i64) {
        {
            let mut ring = self.lock();
            ring.events.clear();
            ring.covered_from = rev + 1;
            ring.last_rev = rev;
        }
        self.rev.send_replace(rev);
    }

    /// The last revision published.
    pub fn last_rev(&self) -> i64 {
        self.lock().last_rev
    }

    /// Wakes when a revision is published.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<i64> {
        self.rev.subscribe()
    }

    /// The events of revisions `from..=to`, if the ring still holds all of them.
    pub fn events(&self, from: i64, to: i64) -> Option<Vec<Arc<Event>>> {
        let ring = self.lock();
        if from < ring.covered_from || to > ring.last_rev {
            return None;
        }
        let start = ring.events.partition_point(|e| mod_rev(e) < from);
        Some(
            ring.events
                .range(start..)
                .take_while(|e| mod_rev(e) <= to)
                .cloned()
                .collect(),
        )
    }
}

/// The main revision of an event.
pub fn mod_rev(event: &Event) -> i64 {
    event.kv.as_ref().map_or(0, |kv| kv.mod_revision)
}

fn to_event(change: Change) -> Event {
    let kind = match change.kind {
        ChangeKind::Put => EventType::Put,
        ChangeKind::Delete => EventType::Delete,
    };
    Event {
        r#type: kind as i32,
        kv: Some(change.kv),
        prev_kv: None,
    }
}

impl StoreRead {
    /// Every event of revisions `from..=to` from the `key` bucket, in revision order (the
    /// catch-up path of a watcher behind the ring). The caller checks `from` against the
    /// compaction revision first.
    pub fn history(&self, from: i64, to: i64) -> Result<Vec<Event>, MvccError> {
        let start = Revision::new(from, 0).encode();
        let end = Revision::new(to + 1, 0).encode();
        let mut events = Vec::new();
        for (key, value) in self.key_bucket_range(&start, &end)? {
            let bucket_key = BucketKey::decode(&key)?;
            let kv = <KeyValue as prost::Message>::decode(&value[..])?;
            let event = if bucket_key.tombstone {
                Event {
                    r#type: EventType::Delete as i32,
                    kv: Some(KeyValue {
                        key: kv.key,
                        mod_revision: bucket_key.revision.main,
                        ..KeyValue::default()
                    }),
                    prev_kv: None,
                }
            } else {
                Event {
                    r#type: EventType::Put as i32,
                    kv: Some(kv),
                    prev_kv: None,
                }
            };
            events.push(event);
        }
        Ok(events)
    }
}
