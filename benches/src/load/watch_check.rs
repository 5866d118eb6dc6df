//! The pure half of `oxbench watch`: which key each put and each watcher uses, the check of every
//! event a watcher receives, and the end-of-run report. Nothing here talks to the network; the
//! driver is [`crate::load::watch`].
//!
//! The plan: `puts` measured puts, then one fence put per watched key. Measured put `i` writes
//! watched key `i % watched_keys`; the fence of key `k` is put number `puts + k` and is sent only
//! once every measured event has arrived. Every put's value starts with its number (8 bytes,
//! little-endian), so a watcher knows which put an event carries and when it was sent. Watcher
//! `w` watches key `w % watched_keys` on stream `w % streams`.
//!
//! Worked example, 3 watchers, 2 keys, 5 puts: puts 0..5 write keys 0, 1, 0, 1, 0, so watchers 0
//! and 2 (key 0) expect 3 events and watcher 1 (key 1) expects 2, 8 events in all; the fences
//! are put 5 (key 0) and put 6 (key 1).
//!
//! The check of one watcher: every event is a PUT of its key carrying a put number of that key;
//! mod revisions strictly increase (nothing duplicated or reordered); exactly its expected count
//! of measured events arrives and then its fence, so an extra event cannot hide behind a count
//! that was already reached; and the revisions of those events add up to the revisions the puts
//! of its key were acknowledged with (the events are those puts). A watcher keeps only the first
//! problem it finds.

use std::time::Duration;

use oxcd_server::pb::mvccpb::event::EventType;
use oxcd_server::pb::mvccpb::Event;
use serde_json::{json, Value};

use crate::load::report::Summary;

/// Bytes at the start of each put's value that hold the put's number.
pub const PUT_NUMBER_BYTES: usize = 8;

/// The shape of a watch run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WatchPlan {
    pub watchers: u64,
    pub streams: u64,
    pub watched_keys: u64,
    pub puts: u64,
}

impl WatchPlan {
    pub fn validate(&self) -> Result<(), String> {
        if self.watchers == 0 || self.streams == 0 || self.watched_keys == 0 || self.puts == 0 {
            return Err(
                "--watchers, --streams, --watched-key-total and --put-total must be at least 1"
                    .to_string(),
            );
        }
        if self.streams > self.watchers {
            return Err(format!(
                "--streams {} is more than --watchers {}: a stream would have no watcher",
                self.streams, self.watchers
            ));
        }
        Ok(())
    }

    /// The watched key (0-based) put number `index` writes, fences included.
    pub fn key_of_put(&self, index: u64) -> u64 {
        if index < self.puts {
            index % self.watched_keys
        } else {
            index - self.puts
        }
    }

    pub fn fence_of_key(&self, key: u64) -> u64 {
        self.puts + key
    }

    /// Whether put number `index` exists in this plan (measured or fence).
    pub fn is_put(&self, index: u64) -> bool {
        index < self.puts + self.watched_keys
    }

    /// Measured puts that write watched key `key`.
    pub fn puts_of_key(&self, key: u64) -> u64 {
        self.puts / self.watched_keys + u64::from(key < self.puts % self.watched_keys)
    }

    pub fn key_of_watcher(&self, watcher: u64) -> u64 {
        watcher % self.watched_keys
    }

    pub fn stream_of_watcher(&self, watcher: u64) -> u64 {
        watcher % self.streams
    }

    /// Measured events all watchers together must receive.
    pub fn expected_events(&self) -> u64 {
        (0..self.watchers)
            .map(|watcher| self.puts_of_key(self.key_of_watcher(watcher)))
            .sum()
    }
}

/// The value of put number `index`: `template` with the number written over its first bytes.
/// `template` must be at least [`PUT_NUMBER_BYTES`] long.
pub fn value_of_put(template: &[u8], index: u64) -> Vec<u8> {
    let mut value = template.to_vec();
    value[..PUT_NUMBER_BYTES].copy_from_slice(&index.to_le_bytes());
    value
}

/// The put number a value carries, if it is long enough to carry one.
pub fn put_number(value: &[u8]) -> Option<u64> {
    let bytes = value.get(..PUT_NUMBER_BYTES)?;
    Some(u64::from_le_bytes(bytes.try_into().ok()?))
}

/// What one event was to a watcher.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Seen {
    /// A measured put's event (it may still have revealed a problem, e.g. one too many).
    Measured { put: u64 },
    /// The watcher's fence.
    Fence,
    /// Not an event of this run for this watcher.
    Invalid,
}

/// One watcher's running check.
#[derive(Clone, Debug)]
pub struct WatcherCheck {
    pub watcher: u64,
    pub key: u64,
    expected: u64,
    received: u64,
    last_revision: i64,
    revision_sum: i128,
    fence_seen: bool,
    problem: Option<String>,
}

impl WatcherCheck {
    pub fn new(plan: &WatchPlan, watcher: u64) -> WatcherCheck {
        let key = plan.key_of_watcher(watcher);
        WatcherCheck {
            watcher,
            key,
            expected: plan.puts_of_key(key),
            received: 0,
            last_revision: 0,
            revision_sum: 0,
            fence_seen: false,
            problem: None,
        }
    }

    pub fn expected(&self) -> u64 {
        self.expected
    }

    pub fn fence_seen(&self) -> bool {
        self.fence_seen
    }

    fn note(&mut self, problem: String) {
        if self.problem.is_none() {
            self.problem = Some(problem);
        }
    }

    /// Checks one event; `key_bytes` is the watcher's key as sent.
    pub fn observe(&mut self, plan: &WatchPlan, key_bytes: &[u8], event: &Event) -> Seen {
        let Some(kv) = &event.kv else {
            self.note("an event without a key-value".to_string());
            return Seen::Invalid;
        };
        if event.r#type != EventType::Put as i32 {
            self.note(format!("an event of type {} (not PUT)", event.r#type));
            return Seen::Invalid;
        }
        if kv.key != key_bytes {
            self.note(format!("an event of key {:02x?}", kv.key));
            return Seen::Invalid;
        }
        let put = match put_number(&kv.value) {
            Some(put) if plan.is_put(put) && plan.key_of_put(put) == self.key => put,
            _ => {
                self.note(format!(
                    "a value not written by this run: {:02x?}",
                    kv.value
                ));
                return Seen::Invalid;
            }
        };
        if kv.mod_revision <= self.last_revision {
            self.note(format!(
                "revision {} after revision {} (duplicated or out of order)",
                kv.mod_revision, self.last_revision
            ));
        }
        self.last_revision = self.last_revision.max(kv.mod_revision);
        if self.fence_seen {
            self.note(format!("an event after the fence (put {put})"));
        }
        if put == plan.fence_of_key(self.key) {
            self.fence_seen = true;
            if self.received != self.expected {
                self.note(format!(
                    "the fence after {} of {} events",
                    self.received, self.expected
                ));
            }
            return Seen::Fence;
        }
        self.received += 1;
        self.revision_sum += i128::from(kv.mod_revision);
        if self.received > self.expected {
            self.note(format!("more than the {} expected events", self.expected));
        }
        Seen::Measured { put }
    }

    /// What is wrong with this watcher at the end of the run, given the sum of the revisions
    /// the puts of its key were acknowledged with.
    pub fn verdict(&self, acknowledged_revision_sum: i128) -> Option<String> {
        let problem = if let Some(problem) = &self.problem {
            problem.clone()
        } else if self.received != self.expected {
            format!("received {} of {} events", self.received, self.expected)
        } else if !self.fence_seen {
            "no fence event".to_string()
        } else if self.revision_sum != acknowledged_revision_sum {
            format!(
                "event revisions sum to {}, the acknowledged puts' to {}",
                self.revision_sum, acknowledged_revision_sum
            )
        } else {
            return None;
        };
        Some(format!(
            "watcher {} (key {}): {problem}",
            self.watcher, self.key
        ))
    }
}

/// The end-of-run figures of `oxbench watch`.
#[derive(Clone, Debug)]
pub struct WatchReport {
    pub plan: WatchPlan,
    pub conns: usize,
    pub put_clients: usize,
    /// From the first create request to the last watcher created.
    pub creation: Duration,
    /// Put-sent-to-event-received delays over the measured interval (first put sent to last
    /// expected event received); its requests/sec is events/sec.
    pub events: Summary,
    /// Watch responses that carried those events.
    pub responses: u64,
    /// The puts' own latencies over the same interval's start to their last acknowledgement.
    pub puts: Summary,
    /// Problems found (lost, duplicated, reordered or foreign events, failed puts, stalls).
    pub problems: Vec<String>,
}

/// Problems printed in full; the rest are only counted.
const PRINTED_PROBLEMS: usize = 10;

impl WatchReport {
    pub fn verified(&self) -> bool {
        self.problems.is_empty()
    }

    /// etcd's report layout, in three parts: creation, puts, events received.
    pub fn text(&self) -> String {
        let plan = &self.plan;
        let mut out = format!(
            "\nWatch creation summary:\n  {} watchers of {} key(s) on {} streams over {} \
             connections, created in {:.4} secs.\n",
            plan.watchers,
            plan.watched_keys,
            plan.streams,
            self.conns,
            self.creation.as_secs_f64()
        );
        out += &format!("\nPut summary ({} clients):", self.put_clients);
        out += &self.puts.text();
        out += &format!(
            "\nWatch events received summary ({} events in {} responses; latency is put sent to \
             event received; Requests/sec is events/sec):",
            self.events.succeeded, self.responses
        );
        out += &self.events.text();
        if !self.problems.is_empty() {
            out += &format!("\nCheck FAILED ({} problems):\n", self.problems.len());
            for problem in self.problems.iter().take(PRINTED_PROBLEMS) {
                out += &format!("  {problem}\n");
            }
        }
        out
    }

    /// The events summary's JSON (command `watch`) with the run's shape and the put figures.
    pub fn json(&self) -> Value {
        let mut value = self.events.json();
        let put_p99 = self
            .puts
            .percentiles
            .iter()
            .find(|(p, _)| *p == 99.0)
            .map_or(0.0, |(_, secs)| *secs);
        let extra = json!({
            "events": self.events.succeeded,
            "expected_events": self.plan.expected_events(),
            "events_per_sec": self.events.requests_per_sec,
            "responses": self.responses,
            "watchers": self.plan.watchers,
            "streams": self.plan.streams,
            "watched_keys": self.plan.watched_keys,
            "conns": self.conns,
            "puts": self.plan.puts,
            "put_clients": self.put_clients,
            "creation_secs": self.creation.as_secs_f64(),
            "put_failed": self.puts.failed,
            "put_requests_per_sec": self.puts.requests_per_sec,
            "put_average_secs": self.puts.average_secs,
            "put_p99_secs": put_p99,
            "verified": self.verified(),
            "problems": self.problems,
        });
        if let (Value::Object(map), Value::Object(extra)) = (&mut value, extra) {
            map.extend(extra);
        }
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oxcd_server::pb::mvccpb::KeyValue;

    const PLAN: WatchPlan = WatchPlan {
        watchers: 3,
        streams: 2,
        watched_keys: 2,
        puts: 5,
    };

    fn event(key: &[u8], put: u64, revision: i64) -> Event {
        Event {
            r#type: EventType::Put as i32,
            kv: Some(KeyValue {
                key: key.to_vec(),
                value: value_of_put(&[7u8; 16], put),
                mod_revision: revision,
                ..KeyValue::default()
            }),
            ..Event::default()
        }
    }

    // Proves the plan matches the module doc's worked example.
    #[test]
    fn plan_matches_the_worked_example() {
        assert!(PLAN.validate().is_ok());
        let keys: Vec<u64> = (0..7).map(|put| PLAN.key_of_put(put)).collect();
        assert_eq!(keys, [0, 1, 0, 1, 0, 0, 1]);
        assert_eq!((PLAN.puts_of_key(0), PLAN.puts_of_key(1)), (3, 2));
        assert_eq!(PLAN.expected_events(), 8);
        assert_eq!((PLAN.fence_of_key(0), PLAN.fence_of_key(1)), (5, 6));
        assert_eq!(put_number(&value_of_put(&[0u8; 9], 258)), Some(258));
        assert_eq!(put_number(&[1, 2, 3]), None);
        assert!(WatchPlan { streams: 4, ..PLAN }.validate().is_err());
    }

    // Proves a watcher that sees exactly its puts in order, then its fence, passes.
    #[test]
    fn complete_ordered_events_pass() {
        let mut check = WatcherCheck::new(&PLAN, 2);
        assert_eq!(
            check.observe(&PLAN, b"k0", &event(b"k0", 0, 10)),
            Seen::Measured { put: 0 }
        );
        assert_eq!(
            check.observe(&PLAN, b"k0", &event(b"k0", 2, 12)),
            Seen::Measured { put: 2 }
        );
        assert_eq!(
            check.observe(&PLAN, b"k0", &event(b"k0", 4, 14)),
            Seen::Measured { put: 4 }
        );
        assert_eq!(
            check.observe(&PLAN, b"k0", &event(b"k0", 5, 20)),
            Seen::Fence
        );
        assert_eq!(check.verdict(36), None);
        let mismatch = check
            .verdict(35)
            .expect("a wrong revision sum is a problem");
        assert!(mismatch.contains("sum"), "{mismatch}");
    }

    // Proves lost, duplicated, reordered, extra and foreign events are each reported.
    #[test]
    fn wrong_event_streams_fail() {
        let lost = {
            let mut check = WatcherCheck::new(&PLAN, 1);
            check.observe(&PLAN, b"k1", &event(b"k1", 1, 11));
            check.observe(&PLAN, b"k1", &event(b"k1", 6, 20));
            check.verdict(11)
        };
        assert!(lost.is_some_and(|p| p.contains("fence after 1 of 2")));
        let duplicated = {
            let mut check = WatcherCheck::new(&PLAN, 1);
            check.observe(&PLAN, b"k1", &event(b"k1", 1, 11));
            check.observe(&PLAN, b"k1", &event(b"k1", 1, 11));
            check.verdict(22)
        };
        assert!(duplicated.is_some_and(|p| p.contains("out of order")));
        let extra = {
            let mut check = WatcherCheck::new(&PLAN, 1);
            for (put, revision) in [(1, 11), (3, 13), (3, 15)] {
                check.observe(&PLAN, b"k1", &event(b"k1", put, revision));
            }
            check.verdict(24)
        };
        assert!(extra.is_some_and(|p| p.contains("more than")));
        let mut foreign = WatcherCheck::new(&PLAN, 1);
        assert_eq!(
            foreign.observe(&PLAN, b"k1", &event(b"k1", 0, 10)),
            Seen::Invalid
        );
        assert!(foreign
            .verdict(0)
            .is_some_and(|p| p.contains("not written by this run")));
        let mut no_fence = WatcherCheck::new(&PLAN, 1);
        no_fence.observe(&PLAN, b"k1", &event(b"k1", 1, 11));
        no_fence.observe(&PLAN, b"k1", &event(b"k1", 3, 13));
        assert!(no_fence.verdict(24).is_some_and(|p| p.contains("no fence")));
    }
}
