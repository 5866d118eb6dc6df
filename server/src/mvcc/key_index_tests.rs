//! Unit tests of [`KeyIndex`]: the cases of etcd's `key_index_test.go`, written as our own
//! tables from the semantics in `key_index.rs`.

use std::collections::HashSet;

use super::key_index::{Generation, IndexError, KeyIndex, KeyRevision};
use super::revision::Revision;

fn rev(main: i64) -> Revision {
    Revision::new(main, 0)
}

fn generation(created: Revision, version: i64, revisions: &[Revision]) -> Generation {
    Generation {
        version,
        created,
        revisions: revisions.to_vec(),
    }
}

fn key_index(modified: Revision, generations: Vec<Generation>) -> KeyIndex {
    KeyIndex {
        modified,
        generations,
    }
}

/// The module doc's example: put@2 put@4 del@6 put@8 put@10 del@12 put@14.0 put@14.1 del@16.
fn example() -> KeyIndex {
    let mut ki = KeyIndex::new();
    ki.put(rev(2)).unwrap();
    ki.put(rev(4)).unwrap();
    ki.tombstone(rev(6)).unwrap();
    ki.put(rev(8)).unwrap();
    ki.put(rev(10)).unwrap();
    ki.tombstone(rev(12)).unwrap();
    ki.put(rev(14)).unwrap();
    ki.put(Revision::new(14, 1)).unwrap();
    ki.tombstone(rev(16)).unwrap();
    ki.check_invariants();
    ki
}

fn found(modified: Revision, created: Revision, version: i64) -> Result<KeyRevision, IndexError> {
    Ok(KeyRevision {
        modified,
        created,
        version,
    })
}

#[test]
fn get_sees_the_generation_alive_at_each_revision() {
    // Proves get() answers per generation, with gaps between generations, after compact(4).
    let mut ki = example();
    ki.compact(4, &mut HashSet::new());
    let not_found = Err(IndexError::RevisionNotFound);
    let r14_1 = Revision::new(14, 1);
    let cases: Vec<(i64, Result<KeyRevision, IndexError>)> = vec![
        (17, not_found.clone()),
        (16, not_found.clone()),
        (15, found(r14_1, rev(14), 2)),
        (14, found(r14_1, rev(14), 2)),
        (13, not_found.clone()),
        (12, not_found.clone()),
        (11, found(rev(10), rev(8), 2)),
        (10, found(rev(10), rev(8), 2)),
        (9, found(rev(8), rev(8), 1)),
        (8, found(rev(8), rev(8), 1)),
        (7, not_found.clone()),
        (6, not_found.clone()),
        (5, found(rev(4), rev(2), 2)),
        (4, found(rev(4), rev(2), 2)),
        (3, not_found.clone()),
        (2, not_found.clone()),
        (1, not_found.clone()),
        (0, not_found),
    ];
    for (at, want) in cases {
        assert_eq!(ki.get(at), want, "get({at})");
    }
}

#[test]
fn since_returns_one_revision_per_main_revision() {
    // Proves since() starts at the right generation and keeps only the highest sub per main.
    let mut ki = example();
    ki.compact(4, &mut HashSet::new());
    let all = [
        rev(4),
        rev(6),
        rev(8),
        rev(10),
        rev(12),
        Revision::new(14, 1),
        rev(16),
    ];
    let cases: &[(i64, &[Revision])] = &[
        (17, &[]),
        (16, &all[6..]),
        (15, &all[6..]),
        (14, &all[5..]),
        (13, &all[5..]),
        (12, &all[4..]),
        (11, &all[4..]),
        (10, &all[3..]),
        (9, &all[3..]),
        (8, &all[2..]),
        (7, &all[2..]),
        (6, &all[1..]),
        (5, &all[1..]),
        (4, &all),
        (3, &all),
        (0, &all),
    ];
    for &(since, want) in cases {
        assert_eq!(ki.since(since), want, "since({since})");
    }
}

#[test]
fn put_creates_then_extends_a_generation() {
    // Proves put() sets created on the first put and counts versions.
    let mut ki = KeyIndex::new();
    assert!(ki.is_empty());
    ki.put(rev(5)).unwrap();
    assert_eq!(
        ki,
        key_index(rev(5), vec![generation(rev(5), 1, &[rev(5)])])
    );
    ki.put(rev(7)).unwrap();
    assert_eq!(
        ki,
        key_index(rev(7), vec![generation(rev(5), 2, &[rev(5), rev(7)])])
    );
    assert!(!ki.is_empty());
}

#[test]
fn put_refuses_a_revision_not_after_the_last() {
    // Proves an out-of-order put is an error value and leaves the index unchanged.
    let mut ki = KeyIndex::new();
    ki.put(rev(5)).unwrap();
    let before = ki.clone();
    let want = Err(IndexError::RevisionNotIncreasing {
        given: rev(5),
        modified: rev(5),
    });
    assert_eq!(ki.put(rev(5)), want);
    assert!(ki.put(Revision::new(4, 9)).is_err());
    assert!(ki.tombstone(rev(3)).is_err());
    assert_eq!(ki, before);
}

#[test]
fn restored_holds_only_the_newest_revision() {
    // Proves restored() keeps created and version while indexing only the modified revision.
    let ki = KeyIndex::restored(rev(5), rev(7), 2);
    assert_eq!(
        ki,
        key_index(rev(7), vec![generation(rev(5), 2, &[rev(7)])])
    );
    assert_eq!(ki.get(7), found(rev(7), rev(5), 2));
    assert_eq!(ki.get(6), Err(IndexError::RevisionNotFound));
}

#[test]
fn tombstone_closes_the_generation() {
    // Proves tombstone() ends a generation, opens an empty one, and fails when already deleted.
    let mut ki = KeyIndex::new();
    assert_eq!(ki.tombstone(rev(1)), Err(IndexError::RevisionNotFound));
    ki.put(rev(5)).unwrap();
    ki.tombstone(rev(7)).unwrap();
    let first = generation(rev(5), 2, &[rev(5), rev(7)]);
    assert_eq!(
        ki,
        key_index(rev(7), vec![first.clone(), Generation::default()])
    );

    ki.put(rev(8)).unwrap();
    ki.put(rev(9)).unwrap();
    ki.tombstone(rev(15)).unwrap();
    let second = generation(rev(8), 3, &[rev(8), rev(9), rev(15)]);
    assert_eq!(
        ki,
        key_index(rev(15), vec![first, second, Generation::default()])
    );
    assert_eq!(ki.tombstone(rev(16)), Err(IndexError::RevisionNotFound));
    ki.check_invariants();
}

/// One row of the compaction oracle: compacting the example at `at` leaves `generations`
/// (created, version, revisions) plus the trailing empty one, and reports `available`.
struct CompactionCase {
    at: i64,
    generations: Vec<Generation>,
    available: Vec<Revision>,
}

fn compaction_table() -> Vec<CompactionCase> {
    let g0 = |revs: &[Revision]| generation(rev(2), 3, revs);
    let g1 = |revs: &[Revision]| generation(rev(8), 3, revs);
    let g2 = |revs: &[Revision]| generation(rev(14), 3, revs);
    let full0 = g0(&[rev(2), rev(4), rev(6)]);
    let full1 = g1(&[rev(8), rev(10), rev(12)]);
    let full2 = g2(&[rev(14), Revision::new(14, 1), rev(16)]);
    let case = |at, generations: Vec<Generation>, available: Vec<Revision>| CompactionCase {
        at,
        generations,
        available,
    };
    let all = vec![full0.clone(), full1.clone(), full2.clone()];
    let from4 = vec![g0(&[rev(4), rev(6)]), full1.clone(), full2.clone()];
    let from8 = vec![full1, full2.clone()];
    let from10 = vec![g1(&[rev(10), rev(12)]), full2.clone()];
    let from14_1 = vec![g2(&[Revision::new(14, 1), rev(16)])];
    vec![
        case(1, all.clone(), vec![]),
        case(2, all.clone(), vec![rev(2)]),
        case(3, all, vec![rev(2)]),
        case(4, from4.clone(), vec![rev(4)]),
        case(5, from4, vec![rev(4)]),
        // 6 is generation 0's tombstone: the whole generation goes, nothing is kept.
        case(6, from8.clone(), vec![]),
        case(7, from8.clone(), vec![]),
        case(8, from8.clone(), vec![rev(8)]),
        case(9, from8, vec![rev(8)]),
        case(10, from10.clone(), vec![rev(10)]),
        case(11, from10, vec![rev(10)]),
        case(12, vec![full2.clone()], vec![]),
        case(13, vec![full2], vec![]),
        case(14, from14_1.clone(), vec![Revision::new(14, 1)]),
        case(15, from14_1, vec![Revision::new(14, 1)]),
        case(16, vec![], vec![]),
    ]
}

/// Runs `keep` then `compact` for one row against `ki` and checks both against the oracle.
fn check_compaction_row(ki: &mut KeyIndex, case: &CompactionCase) {
    let want_available: HashSet<Revision> = case.available.iter().copied().collect();
    let before = ki.clone();
    let mut kept = HashSet::new();
    ki.keep(case.at, &mut kept);
    assert_eq!(*ki, before, "keep({}) changed the index", case.at);
    assert_eq!(kept, want_available, "keep({})", case.at);

    let mut available = HashSet::new();
    ki.compact(case.at, &mut available);
    let mut generations = case.generations.clone();
    generations.push(Generation::default());
    assert_eq!(*ki, key_index(rev(16), generations), "compact({})", case.at);
    assert_eq!(available, want_available, "compact({}) available", case.at);
    ki.check_invariants();
}

#[test]
fn compaction_oracle_continuous() {
    // Proves compact()/keep() match the oracle when compacting at every revision in turn.
    let mut ki = example();
    for case in compaction_table() {
        check_compaction_row(&mut ki, &case);
    }
    assert!(ki.is_empty());
}

#[test]
fn compaction_oracle_jumping() {
    // Proves compacting at every other revision (skipping rows) reaches the same states.
    let mut ki = example();
    for (i, case) in compaction_table().iter().enumerate() {
        if (i % 2 == 0 && i < 6) || (i % 2 == 1 && i > 6) {
            check_compaction_row(&mut ki, case);
        }
    }
}

#[test]
fn compaction_oracle_once() {
    // Proves a single compaction of the fresh example at each revision gives each row.
    for case in compaction_table() {
        check_compaction_row(&mut example(), &case);
    }
}

#[test]
fn compact_beyond_the_last_revision_keeps_the_live_one() {
    // Proves compacting above a live key's newest revision keeps exactly that revision.
    let mut ki = KeyIndex::new();
    ki.put(rev(1)).unwrap();
    ki.put(rev(2)).unwrap();
    let mut available = HashSet::new();
    ki.compact(3, &mut available);
    assert_eq!(
        ki,
        key_index(rev(2), vec![generation(rev(1), 2, &[rev(2)])])
    );
    assert_eq!(available, HashSet::from([rev(2)]));
    assert_eq!(ki.get(3), found(rev(2), rev(1), 2));
}

#[test]
fn is_empty_only_for_a_single_empty_generation() {
    // Proves is_empty() is true before any put and after compacting past a final tombstone.
    assert!(KeyIndex::new().is_empty());
    assert!(!KeyIndex::restored(rev(1), rev(2), 2).is_empty());
    let mut deleted = KeyIndex::new();
    deleted.put(rev(1)).unwrap();
    deleted.tombstone(rev(2)).unwrap();
    assert!(!deleted.is_empty());
    deleted.compact(2, &mut HashSet::new());
    assert!(deleted.is_empty());
}

#[test]
fn get_finds_generations_of_the_uncompacted_example() {
    // Proves the generation lookup across gaps on the example before any compaction.
    let ki = example();
    let alive: &[(i64, Option<i64>)] = &[
        (0, None),
        (1, None),
        (2, Some(2)),
        (3, Some(2)),
        (4, Some(2)),
        (5, Some(2)),
        (6, None),
        (7, None),
        (8, Some(8)),
        (11, Some(8)),
        (12, None),
        (13, None),
        (14, Some(14)),
        (16, None),
    ];
    for &(at, created) in alive {
        let got = ki.get(at).ok().map(|seen| seen.created.main);
        assert_eq!(got, created, "generation at {at}");
    }
}
