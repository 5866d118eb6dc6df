//! Property test of [`Store`] against a naive model: a map of every key to its key-value,
//! copied whole at every revision. Random writes (several puts and deletes per write, keys
//! touched twice), compactions and reopens run against both; every read at every revision
//! still readable must agree, reads below the compaction must fail, and HashKV must survive a
//! reopen unchanged.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::store_tests::TestStore;
use super::{HashKv, MvccError, RangeOptions, Store};
use crate::pb::mvccpb::KeyValue;

const KEYS: [&[u8]; 5] = [b"\0", b"a", b"ab", b"b", b"\xff"];

#[derive(Clone, Debug)]
enum Change {
    Put {
        key: usize,
        value: u8,
        lease: i64,
    },
    /// Deletes `[KEYS[key], KEYS[end])`, or the single key when `end` is None; `KEYS[0]` is
    /// `"\0"`, so `end == Some(0)` is etcd's from-key form.
    Delete {
        key: usize,
        end: Option<usize>,
    },
}

#[derive(Clone, Debug)]
enum Step {
    Write(Vec<Change>),
    /// Compacts at `compact_rev + 1 + n % (current - compact_rev)` when possible.
    Compact(usize),
    Reopen,
}

fn change() -> impl Strategy<Value = Change> {
    prop_oneof![
        3 => (0..KEYS.len(), any::<u8>(), 0i64..3)
            .prop_map(|(key, value, lease)| Change::Put { key, value, lease }),
        1 => (0..KEYS.len(), proptest::option::of(0..KEYS.len()))
            .prop_map(|(key, end)| Change::Delete { key, end }),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        8 => proptest::collection::vec(change(), 0..4).prop_map(Step::Write),
        1 => any::<usize>().prop_map(Step::Compact),
        1 => Just(Step::Reopen),
    ]
}

type Snapshot = BTreeMap<Vec<u8>, KeyValue>;

struct Model {
    /// The key space after each revision that changed it; revision 1 is empty.
    history: BTreeMap<i64, Snapshot>,
    compact_rev: i64,
}

impl Model {
    fn new() -> Model {
        Model {
            history: BTreeMap::from([(1, Snapshot::new())]),
            compact_rev: -1,
        }
    }

    fn rev(&self) -> i64 {
        *self.history.keys().next_back().unwrap()
    }

    fn at(&self, rev: i64) -> &Snapshot {
        self.history.range(..=rev).next_back().unwrap().1
    }

    fn write(&mut self, changes: &[Change]) {
        let rev = self.rev() + 1;
        let mut next = self.at(rev - 1).clone();
        let mut changed = false;
        for change in changes {
            match *change {
                Change::Put { key, value, lease } => {
                    let prev = next.get(KEYS[key]);
                    let kv = KeyValue {
                        key: KEYS[key].to_vec(),
                        create_revision: prev.map_or(rev, |p| p.create_revision),
                        mod_revision: rev,
                        version: prev.map_or(1, |p| p.version + 1),
                        value: vec![value],
                        lease,
                    };
                    next.insert(KEYS[key].to_vec(), kv);
                    changed = true;
                }
                Change::Delete { key, end } => {
                    let doomed: Vec<Vec<u8>> = next
                        .keys()
                        .filter(|k| match end {
                            None => k.as_slice() == KEYS[key],
                            // etcd's from-key form.
                            Some(0) => KEYS[key] <= k.as_slice(),
                            Some(end) => KEYS[key] <= k.as_slice() && k.as_slice() < KEYS[end],
                        })
                        .cloned()
                        .collect();
                    changed |= !doomed.is_empty();
                    for k in doomed {
                        next.remove(&k);
                    }
                }
            }
        }
        if changed {
            self.history.insert(rev, next);
        }
    }
}

fn apply(store: &Store, changes: &[Change]) {
    let mut w = store.write(0, 0).unwrap();
    for change in changes {
        match *change {
            Change::Put { key, value, lease } => {
                w.put(KEYS[key], &[value], lease).unwrap();
            }
            Change::Delete { key, end } => {
                let end = end.map_or(&b""[..], |end| KEYS[end]);
                w.delete_range(KEYS[key], end).unwrap();
            }
        }
    }
    w.end().unwrap();
}

/// Checks every revision against the model and returns the HashKV at each readable one.
fn check(store: &Store, model: &Model) -> Result<Vec<HashKv>, TestCaseError> {
    prop_assert_eq!(store.rev().unwrap(), model.rev());
    prop_assert_eq!(store.compact_rev().unwrap(), model.compact_rev);
    let mut hashes = Vec::new();
    for rev in 1..=model.rev() {
        let opts = RangeOptions {
            rev,
            ..RangeOptions::default()
        };
        let read = store.range(b"\0", b"\0", &opts);
        if rev < model.compact_rev {
            prop_assert!(matches!(read, Err(MvccError::Compacted)));
            continue;
        }
        let want: Vec<KeyValue> = model.at(rev).values().cloned().collect();
        prop_assert_eq!(&read.unwrap().kvs, &want, "at revision {}", rev);
        let limited = RangeOptions {
            rev,
            limit: 2,
            ..RangeOptions::default()
        };
        let read = store.range(b"a", b"\xff", &limited).unwrap();
        let in_span = want.iter().filter(|kv| {
            let key = kv.key.as_slice();
            key >= &b"a"[..] && key < &b"\xff"[..]
        });
        prop_assert_eq!(read.count, in_span.clone().count());
        prop_assert_eq!(read.kvs, in_span.take(2).cloned().collect::<Vec<_>>());
        if rev > model.compact_rev {
            hashes.push(store.hash_kv(rev).unwrap());
        }
    }
    Ok(hashes)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn store_matches_model(steps in proptest::collection::vec(step(), 1..30)) {
        // Proves reads at every revision, compaction and reopen agree with the model.
        let mut store = TestStore::new();
        let mut model = Model::new();
        for step in &steps {
            match step {
                Step::Write(changes) => {
                    apply(&store, changes);
                    model.write(changes);
                }
                Step::Compact(n) => {
                    let (low, high) = (model.compact_rev.max(0) + 1, model.rev());
                    if low <= high {
                        let at = low + (*n as i64).rem_euclid(high - low + 1);
                        store.compact(at).unwrap().wait().unwrap();
                        model.compact_rev = at;
                    }
                }
                Step::Reopen => {
                    let before = check(&store, &model)?;
                    store.reopen();
                    prop_assert_eq!(check(&store, &model)?, before);
                }
            }
        }
        check(&store, &model)?;
    }
}
