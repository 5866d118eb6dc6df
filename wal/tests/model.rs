//! Property test against a simple model: random batches (entries with any data, including
//! empty and all-zero, hard states including empty ones, snapshot marks), random segment
//! sizes and reopens at random points; what the WAL returns always equals the model.

mod common;

use common::METADATA;
use oxcd_wal::{read_all, Entry, HardState, ReadAll, SnapshotMark, Wal, WalOptions};
use proptest::prelude::*;

/// One step of a workload.
#[derive(Clone, Debug)]
enum Op {
    /// Save this many entries (data lengths given) and maybe a hard state.
    Save {
        data_lens: Vec<usize>,
        zero_data: bool,
        state: Option<(u64, u64)>,
    },
    /// Save a snapshot mark at the last entry.
    Snapshot,
    /// Drop the WAL and open it again.
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (
            proptest::collection::vec(0usize..700, 0..6),
            any::<bool>(),
            proptest::option::of((0u64..4, 0u64..4)),
        )
            .prop_map(|(data_lens, zero_data, state)| Op::Save {
                data_lens,
                zero_data,
                state,
            }),
        1 => Just(Op::Snapshot),
        1 => Just(Op::Reopen),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn wal_matches_the_model(ops in proptest::collection::vec(op(), 1..40), segment in 256u64..4096) {
        // Proves read-back equals the model for any mix of saves, marks and reopens.
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("wal");
        let opts = WalOptions { segment_size_bytes: segment, max_wals: 5, ..WalOptions::default() };
        let mut wal = Some(Wal::create(&dir, METADATA, opts.clone()).expect("create"));
        let mut model = ReadAll { metadata: METADATA.to_vec(), ..ReadAll::default() };
        let mut marks = vec![SnapshotMark::default()];
        for op in ops {
            match op {
                Op::Save { data_lens, zero_data, state } => {
                    let first = model.entries.len() as u64 + 1;
                    let entries: Vec<Entry> = data_lens
                        .iter()
                        .enumerate()
                        .map(|(i, &len)| {
                            let index = first + i as u64;
                            let byte = if zero_data { 0 } else { index as u8 | 1 };
                            Entry::normal(7, index, vec![byte; len])
                        })
                        .collect();
                    let state = state.map(|(vote, commit)| HardState { term: 0, vote, commit });
                    let w = wal.as_mut().expect("open");
                    w.save(state.as_ref(), &entries).expect("save");
                    model.entries.extend(entries);
                    if let Some(s) = state.filter(|s| !s.is_empty()) {
                        model.hard_state = s;
                    }
                }
                // A mark at index 0 would clash with create's mark (0, 0).
                Op::Snapshot if model.entries.is_empty() => {}
                Op::Snapshot => {
                    let mark = SnapshotMark { index: model.entries.len() as u64, term: 7 };
                    wal.as_mut().expect("open").save_snapshot(mark).expect("snapshot");
                    marks.push(mark);
                }
                Op::Reopen => {
                    drop(wal.take());
                    let (w, read) = Wal::open(&dir, SnapshotMark::default(), opts.clone())
                        .expect("reopen");
                    prop_assert_eq!(&read, &model);
                    wal = Some(w);
                }
            }
        }
        drop(wal);
        prop_assert_eq!(&read_all(&dir, SnapshotMark::default()).expect("read"), &model);
        for mark in marks {
            let read = read_all(&dir, mark).expect("read at mark");
            prop_assert_eq!(&read.entries[..], &model.entries[mark.index as usize..]);
            prop_assert_eq!(read.hard_state, model.hard_state);
        }
    }
}
