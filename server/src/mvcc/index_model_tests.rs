//! Property test of [`TreeIndex`] against a deliberately naive model: the list of every write
//! event ever made. Random txns (several changes per main revision, the same key possibly
//! touched twice) and compactions run against both; afterwards every read at every revision
//! the compaction left readable must agree, and a rebuild from the records compaction keeps
//! must reproduce the index.

use std::collections::HashSet;

use proptest::prelude::*;

use super::index::{prefix_range_end, CompactCursor, KeyRange, RestoredRecord, TreeIndex};
use super::index_tests::normalized;
use super::key_index::KeyRevision;
use super::revision::Revision;

/// The keys writes use, sorted. "\0" is the smallest non-empty key.
const KEYS: [&[u8]; 6] = [b"\0", b"a", b"ab", b"b", b"\xff", b"\xff\xff"];
/// Keys ranges may start or end at: the written ones and some never written.
const RANGE_KEYS: [&[u8]; 9] = [
    b"\0",
    b"a",
    b"ab",
    b"b",
    b"\xff",
    b"\xff\xff",
    b"",
    b"aa",
    b"c",
];

/// One write as the `key` bucket would record it.
#[derive(Clone, Debug)]
struct Event {
    key: &'static [u8],
    revision: Revision,
    tombstone: bool,
    created: Revision,
    version: i64,
}

#[derive(Default)]
struct Model {
    events: Vec<Event>,
}

impl Model {
    /// The newest event of `key` at or below `at`, if the key exists then.
    fn get(&self, key: &[u8], at: i64) -> Option<KeyRevision> {
        let last = self
            .events
            .iter()
            .rev()
            .find(|e| e.key == key && e.revision.main <= at)?;
        (!last.tombstone).then_some(KeyRevision {
            modified: last.revision,
            created: last.created,
            version: last.version,
        })
    }

    fn range(&self, range: KeyRange<'_>, at: i64) -> Vec<(Vec<u8>, Revision)> {
        let keys = KEYS.iter().filter(|key| range.contains(key));
        keys.filter_map(|key| self.get(key, at).map(|seen| (key.to_vec(), seen.modified)))
            .collect()
    }

    fn range_since(&self, range: KeyRange<'_>, since: i64) -> Vec<Revision> {
        let mut out: Vec<Revision> = Vec::new();
        for event in &self.events {
            if !range.contains(event.key) || event.revision.main < since {
                continue;
            }
            // A later change of the same key in the same main revision replaces the earlier.
            let same_change = self.events.iter().any(|later| {
                later.key == event.key
                    && later.revision.main == event.revision.main
                    && later.revision.sub > event.revision.sub
            });
            if !same_change {
                out.push(event.revision);
            }
        }
        out
    }

    /// What compacting at `at` must keep: each key's visible revision at `at`.
    fn available(&self, at: i64) -> HashSet<Revision> {
        KEYS.iter()
            .filter_map(|key| self.get(key, at))
            .map(|seen| seen.modified)
            .collect()
    }
}

#[derive(Clone, Debug)]
enum Op {
    /// One atomic change set: (key index, delete?) per change.
    Txn(Vec<(usize, bool)>),
    /// Compact at a point between the last compaction and now (0 = last, 255 = now), in
    /// batches of the given size.
    Compact(u8, usize),
}

fn op() -> impl Strategy<Value = Op> {
    let change = (0..KEYS.len(), any::<bool>());
    prop_oneof![
        4 => prop::collection::vec(change, 1..4).prop_map(Op::Txn),
        1 => (any::<u8>(), 1usize..4).prop_map(|(point, batch)| Op::Compact(point, batch)),
    ]
}

/// A range request: form, then two indexes into RANGE_KEYS.
fn range_request() -> impl Strategy<Value = (u8, usize, usize)> {
    (0u8..5, 0..RANGE_KEYS.len(), 0..RANGE_KEYS.len())
}

fn request_of(form: u8, a: usize, b: usize) -> (Vec<u8>, Vec<u8>) {
    let (a, b) = (RANGE_KEYS[a].to_vec(), RANGE_KEYS[b].to_vec());
    match form {
        0 => (a, Vec::new()),
        1 => (a, b),
        2 => (a, vec![0]),
        3 => (vec![0], vec![0]),
        _ => {
            let end = prefix_range_end(&a);
            (a, end)
        }
    }
}

struct Run {
    index: TreeIndex,
    model: Model,
    current: i64,
    compacted: i64,
}

impl Run {
    fn txn(&mut self, changes: &[(usize, bool)]) {
        let main = self.current + 1;
        let mut sub = 0;
        for &(key_index, delete) in changes {
            let key = KEYS[key_index];
            let now = self.model.get(key, main);
            if delete && now.is_none() {
                continue; // etcd's delete of a missing key writes nothing
            }
            let revision = Revision::new(main, sub);
            sub += 1;
            let (created, version) = match (delete, now) {
                (true, _) => (Revision::default(), 0),
                (false, Some(seen)) => (seen.created, seen.version + 1),
                (false, None) => (revision, 1),
            };
            if delete {
                self.index.tombstone(key, revision).unwrap();
            } else {
                self.index.put(key, revision).unwrap();
            }
            let event = Event {
                key,
                revision,
                tombstone: delete,
                created,
                version,
            };
            self.model.events.push(event);
        }
        if sub > 0 {
            self.current = main;
        }
    }

    fn compact(&mut self, point: u8, batch: usize) -> Result<(), TestCaseError> {
        let at = self.compacted + (self.current - self.compacted) * i64::from(point) / 255;
        let predicted = self.index.keep(at);
        let mut cursor = CompactCursor::new(at);
        let mut kept = HashSet::new();
        while !cursor.is_finished() {
            self.index.compact_batch(&mut cursor, batch, &mut kept);
        }
        prop_assert_eq!(&kept, &predicted, "keep({}) != compact({})", at, at);
        prop_assert_eq!(
            kept,
            self.model.available(at),
            "available after compact({})",
            at
        );
        self.compacted = at;
        Ok(())
    }

    fn check_reads(&self, ranges: &[(u8, usize, usize)]) -> Result<(), TestCaseError> {
        for at in self.compacted..=self.current + 1 {
            for key in RANGE_KEYS {
                prop_assert_eq!(self.index.get(key, at).ok(), self.model.get(key, at));
            }
            for &(form, a, b) in ranges {
                let (key, end) = request_of(form, a, b);
                let range = KeyRange::from_request(&key, &end);
                let want = self.model.range(range, at);
                prop_assert_eq!(self.index.count(range, at), want.len());
                prop_assert_eq!(self.index.range(range, at), want, "{:?} at {}", range, at);
                if at > self.compacted {
                    let want = self.model.range_since(range, at);
                    prop_assert_eq!(self.index.range_since(range, at), want, "since {}", at);
                }
            }
        }
        Ok(())
    }

    /// Rebuilds the index from the records the `key` bucket holds after the compactions.
    fn rebuilt(&self) -> TreeIndex {
        let kept = self.model.available(self.compacted);
        let mut index = TreeIndex::new();
        for event in &self.model.events {
            if event.revision.main > self.compacted || kept.contains(&event.revision) {
                let record = RestoredRecord {
                    key: event.key,
                    revision: event.revision,
                    tombstone: event.tombstone,
                    create_revision: event.created.main,
                    version: event.version,
                };
                index.restore(record).unwrap();
            }
        }
        index
    }
}

proptest! {
    #[test]
    fn index_agrees_with_the_event_list(
        ops in prop::collection::vec(op(), 1..40),
        ranges in prop::collection::vec(range_request(), 1..5),
    ) {
        // Proves get/range/count/range_since at every readable revision match the naive model
        // through random writes and compactions, and the rebuild from kept records matches.
        let mut run = Run { index: TreeIndex::new(), model: Model::default(), current: 1, compacted: 0 };
        for op in &ops {
            match op {
                Op::Txn(changes) => run.txn(changes),
                Op::Compact(point, batch) => run.compact(*point, *batch)?,
            }
            for (_, key_index) in run.index.iter() {
                key_index.check_invariants();
                prop_assert!(!key_index.is_empty());
            }
        }
        run.check_reads(&ranges)?;
        prop_assert_eq!(normalized(&run.rebuilt()), normalized(&run.index));
    }
}
