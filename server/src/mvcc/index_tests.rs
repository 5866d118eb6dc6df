//! Unit tests of [`TreeIndex`]: the cases of etcd's `index_test.go` written as our own tables,
//! plus every range form, batched compaction and the rebuild from `key` bucket records.

use std::collections::HashSet;
use std::ops::ControlFlow;

use super::index::{prefix_range_end, CompactCursor, KeyRange, RestoredRecord, TreeIndex};
use super::key_index::{IndexError, KeyIndex, KeyRevision};
use super::revision::Revision;

fn rev(main: i64) -> Revision {
    Revision::new(main, 0)
}

/// The index's keys and histories with `created.sub` zeroed: the `key` bucket stores only the
/// main create revision, so a rebuilt index cannot know the sub of a live-built one.
pub(super) fn normalized(index: &TreeIndex) -> Vec<(Vec<u8>, KeyIndex)> {
    index
        .iter()
        .map(|(key, key_index)| {
            let mut key_index = key_index.clone();
            for generation in &mut key_index.generations {
                generation.created.sub = 0;
            }
            (key.to_vec(), key_index)
        })
        .collect()
}

#[test]
fn get_follows_puts_and_tombstone() {
    // Proves get() at each revision around put@2, put@4, delete@6.
    let mut index = TreeIndex::new();
    index.put(b"foo", rev(2)).unwrap();
    index.put(b"foo", rev(4)).unwrap();
    index.tombstone(b"foo", rev(6)).unwrap();
    let seen = |modified, version| {
        Ok(KeyRevision {
            modified,
            created: rev(2),
            version,
        })
    };
    let not_found = Err(IndexError::RevisionNotFound);
    let cases = [
        (0, not_found.clone()),
        (1, not_found.clone()),
        (2, seen(rev(2), 1)),
        (3, seen(rev(2), 1)),
        (4, seen(rev(4), 2)),
        (5, seen(rev(4), 2)),
        (6, not_found.clone()),
        (7, not_found.clone()),
    ];
    for (at, want) in cases {
        assert_eq!(index.get(b"foo", at), want, "get(foo, {at})");
    }
    assert_eq!(index.get(b"bar", 5), not_found);
}

fn three_keys() -> TreeIndex {
    let mut index = TreeIndex::new();
    index.put(b"foo", rev(1)).unwrap();
    index.put(b"foo1", rev(2)).unwrap();
    index.put(b"foo2", rev(3)).unwrap();
    index
}

/// key, range_end, and the (key, revision) pairs a read at revision 3 returns.
type RangeCase<'a> = (&'a [u8], &'a [u8], Vec<(Vec<u8>, Revision)>);

#[test]
fn range_covers_every_request_form() {
    // Proves range() for single keys, spans, inverted spans, prefixes, from-key and all keys.
    let index = three_keys();
    let entry = |key: &[u8], main| (key.to_vec(), rev(main));
    let foo = entry(b"foo", 1);
    let foo1 = entry(b"foo1", 2);
    let foo2 = entry(b"foo2", 3);
    let prefix_end = prefix_range_end(b"foo");
    let cases: Vec<RangeCase> = vec![
        (b"bar", b"", vec![]),
        (b"foo", b"", vec![foo.clone()]),
        (b"foo", b"foo1", vec![foo.clone()]),
        (b"foo", b"foo2", vec![foo.clone(), foo1.clone()]),
        (
            b"foo",
            b"fop",
            vec![foo.clone(), foo1.clone(), foo2.clone()],
        ),
        (b"foo1", b"fop", vec![foo1.clone(), foo2.clone()]),
        (b"foo2", b"fop", vec![foo2.clone()]),
        (b"foo3", b"fop", vec![]),
        (b"fop", b"foo", vec![]),
        (b"foo", b"foo", vec![]),
        (b"foo1", &prefix_end, vec![foo1.clone(), foo2.clone()]),
        (b"foo1", b"\0", vec![foo1.clone(), foo2.clone()]),
        (b"\0", b"\0", vec![foo.clone(), foo1.clone(), foo2.clone()]),
        (b"a", b"\0", vec![foo.clone(), foo1, foo2]),
        (b"g", b"\0", vec![]),
    ];
    for (key, end, want) in cases {
        let range = KeyRange::from_request(key, end);
        assert_eq!(index.range(range, 3), want, "range({key:?}, {end:?})");
        assert_eq!(index.count(range, 3), want.len(), "count({key:?}, {end:?})");
    }
    // Reads at an older revision see fewer keys.
    assert_eq!(
        index.range(KeyRange::from_request(b"\0", b"\0"), 1),
        vec![foo]
    );
}

#[test]
fn request_forms_decode_as_etcd_reads_them() {
    // Proves from_request() maps etcd's range_end conventions and contains() agrees.
    assert_eq!(KeyRange::from_request(b"a", b""), KeyRange::Single(b"a"));
    assert_eq!(KeyRange::from_request(b"a", b"\0"), KeyRange::FromKey(b"a"));
    let span = KeyRange::from_request(b"a", b"c");
    assert_eq!(
        span,
        KeyRange::Span {
            start: b"a",
            end: b"c"
        }
    );
    assert!(span.contains(b"a") && span.contains(b"bzz") && !span.contains(b"c"));
    assert!(KeyRange::FromKey(b"\0").contains(b"\0"));
    assert!(!KeyRange::FromKey(b"\0").contains(b""));
    assert!(!KeyRange::Span {
        start: b"c",
        end: b"a"
    }
    .contains(b"b"));
}

#[test]
fn prefix_range_end_follows_clientv3() {
    // Proves prefix ends increment the last non-0xff byte and fall back to from-key.
    assert_eq!(prefix_range_end(b"foo"), b"fop");
    assert_eq!(prefix_range_end(b"a\xff"), b"b");
    assert_eq!(prefix_range_end(b"a\xfe\xff\xff"), b"a\xff");
    assert_eq!(prefix_range_end(b"\xff\xff"), b"\0");
    assert_eq!(prefix_range_end(b""), b"\0");
}

#[test]
fn revisions_limits_but_counts_everything() {
    // Proves revisions() returns at most `limit` revisions with the full count, and for_each
    // stops when the visitor breaks.
    let index = three_keys();
    let all = KeyRange::from_request(b"\0", b"\0");
    assert_eq!(index.revisions(all, 3, Some(2)), (vec![rev(1), rev(2)], 3));
    assert_eq!(
        index.revisions(all, 3, None),
        (vec![rev(1), rev(2), rev(3)], 3)
    );
    assert_eq!(index.revisions(all, 3, Some(0)), (vec![], 3));
    let mut visited = 0;
    index.for_each(all, 3, |_, _| {
        visited += 1;
        ControlFlow::Break(())
    });
    assert_eq!(visited, 1);
}

#[test]
fn tombstone_of_a_deleted_or_unknown_key_fails() {
    // Proves tombstone() needs a live key and get() misses a deleted one.
    let mut index = TreeIndex::new();
    index.put(b"foo", rev(1)).unwrap();
    index.tombstone(b"foo", rev(2)).unwrap();
    assert_eq!(index.get(b"foo", 2), Err(IndexError::RevisionNotFound));
    assert_eq!(
        index.tombstone(b"foo", rev(3)),
        Err(IndexError::RevisionNotFound)
    );
    assert_eq!(
        index.tombstone(b"bar", rev(3)),
        Err(IndexError::RevisionNotFound)
    );
    assert_eq!(index.get(b"foo", 1).map(|seen| seen.modified), Ok(rev(1)));
}

#[test]
fn range_since_merges_keys_in_revision_order() {
    // Proves range_since() gathers every key's revisions since 1 and sorts them by revision.
    let mut index = TreeIndex::new();
    let writes: [(&[u8], i64); 6] = [
        (b"foo", 1),
        (b"foo1", 2),
        (b"foo2", 3),
        (b"foo2", 4),
        (b"foo1", 5),
        (b"foo", 6),
    ];
    for (key, main) in writes {
        index.put(key, rev(main)).unwrap();
    }
    let revs = |mains: &[i64]| mains.iter().map(|&m| rev(m)).collect::<Vec<_>>();
    let cases: [(&[u8], &[u8], Vec<Revision>); 9] = [
        (b"bar", b"", vec![]),
        (b"foo", b"", revs(&[1, 6])),
        (b"foo", b"foo1", revs(&[1, 6])),
        (b"foo", b"foo2", revs(&[1, 2, 5, 6])),
        (b"foo", b"fop", revs(&[1, 2, 3, 4, 5, 6])),
        (b"foo1", b"fop", revs(&[2, 3, 4, 5])),
        (b"foo2", b"fop", revs(&[3, 4])),
        (b"foo3", b"fop", vec![]),
        (b"\0", b"\0", revs(&[1, 2, 3, 4, 5, 6])),
    ];
    for (key, end, want) in cases {
        let got = index.range_since(KeyRange::from_request(key, end), 1);
        assert_eq!(got, want, "range_since({key:?}, {end:?})");
    }
    assert_eq!(
        index.range_since(KeyRange::from_request(b"\0", b"\0"), 5),
        revs(&[5, 6])
    );
}

/// One write of the compaction scenario: key, delete?, revision, create revision, version.
type Write = (&'static [u8], bool, Revision, i64, i64);

fn compaction_writes() -> Vec<Write> {
    vec![
        (b"foo", false, rev(1), 1, 1),
        (b"foo1", false, rev(2), 2, 1),
        (b"foo2", false, rev(3), 3, 1),
        (b"foo2", false, rev(4), 3, 2),
        (b"foo", false, rev(5), 1, 2),
        (b"foo1", false, rev(6), 2, 2),
        (b"foo1", true, rev(7), 0, 0),
        (b"foo2", true, rev(8), 0, 0),
        (b"foo", true, rev(9), 0, 0),
        (b"foo", false, rev(10), 10, 1),
        (b"foo1", false, Revision::new(10, 1), 10, 1),
    ]
}

fn built(writes: &[Write]) -> TreeIndex {
    let mut index = TreeIndex::new();
    for &(key, delete, revision, _, _) in writes {
        if delete {
            index.tombstone(key, revision).unwrap();
        } else {
            index.put(key, revision).unwrap();
        }
    }
    index
}

/// Rebuilds an index from the writes a `key` bucket compacted at `at` still holds.
fn restored_after_compaction(writes: &[Write], at: i64, kept: &HashSet<Revision>) -> TreeIndex {
    let mut index = TreeIndex::new();
    for &(key, tombstone, revision, create_revision, version) in writes {
        if revision.main > at || kept.contains(&revision) {
            let record = RestoredRecord {
                key,
                revision,
                tombstone,
                create_revision,
                version,
            };
            index.restore(record).unwrap();
        }
    }
    index
}

#[test]
fn compaction_equals_a_rebuild_from_what_it_keeps() {
    // Proves compact() (continuous and once) keeps what keep() predicts, and the result equals
    // an index rebuilt from the bucket records compaction leaves.
    let writes = compaction_writes();
    let mut continuous = built(&writes);
    for at in 1..20 {
        let predicted = continuous.keep(at);
        let kept = continuous.compact(at);
        assert_eq!(kept, predicted, "continuous keep({at})");
        let want = restored_after_compaction(&writes, at, &kept);
        assert_eq!(
            normalized(&continuous),
            normalized(&want),
            "continuous compact({at})"
        );

        let mut once = built(&writes);
        let predicted = once.keep(at);
        let kept = once.compact(at);
        assert_eq!(kept, predicted, "once keep({at})");
        let want = restored_after_compaction(&writes, at, &kept);
        assert_eq!(normalized(&once), normalized(&want), "once compact({at})");
    }
    // Every key was deleted at or below 9 and re-created at 10 (except foo2): 2 keys remain.
    assert_eq!(continuous.len(), 2);
}

#[test]
fn compact_batch_matches_compact_and_tolerates_interleaved_writes() {
    // Proves compaction in batches of any size equals one-shot compaction, also with puts
    // landing between batches.
    let writes = compaction_writes();
    for at in 1..12 {
        let mut whole = built(&writes);
        let want_kept = whole.compact(at);
        for batch in 1..5 {
            let mut batched = built(&writes);
            let mut cursor = CompactCursor::new(at);
            let mut kept = HashSet::new();
            let mut next_main = 20;
            while !cursor.is_finished() {
                batched.compact_batch(&mut cursor, batch, &mut kept);
                batched.put(b"foo0", rev(next_main)).unwrap();
                whole.put(b"foo0", rev(next_main)).unwrap();
                next_main += 1;
            }
            assert_eq!(kept, want_kept, "compact({at}) in batches of {batch}");
            assert_eq!(batched, whole, "compact({at}) in batches of {batch}");
            whole = built(&writes);
            whole.compact(at);
        }
    }
}

#[test]
fn restore_of_every_record_equals_the_live_index() {
    // Proves a rebuild from an uncompacted key bucket reproduces the index the writes built,
    // and skips tombstones of keys it never saw.
    let writes = compaction_writes();
    let live = built(&writes);
    let rebuilt = restored_after_compaction(&writes, 0, &HashSet::new());
    assert_eq!(normalized(&rebuilt), normalized(&live));

    let mut index = TreeIndex::new();
    let orphan = RestoredRecord {
        key: b"gone",
        revision: rev(3),
        tombstone: true,
        create_revision: 0,
        version: 0,
    };
    index.restore(orphan).unwrap();
    assert!(index.is_empty());
}

#[test]
fn restore_out_of_order_is_an_error() {
    // Proves records out of revision order (a corrupt bucket) give an error, not a panic.
    let mut index = TreeIndex::new();
    let record = |main, tombstone| RestoredRecord {
        key: b"k",
        revision: rev(main),
        tombstone,
        create_revision: 1,
        version: 1,
    };
    index.restore(record(5, false)).unwrap();
    let err = index.restore(record(4, false)).unwrap_err();
    assert!(matches!(err, IndexError::RevisionNotIncreasing { .. }));
    assert!(index.restore(record(5, true)).is_err());
    // A second tombstone in a row is skipped, as etcd skips it.
    index.restore(record(6, true)).unwrap();
    index.restore(record(7, true)).unwrap();
    assert_eq!(index.get(b"k", 5).map(|seen| seen.version), Ok(1));
}
