//! Random-walk operations through cursors: a full scan of one bucket's subtree, a seek followed
//! by random next/prev steps, and deletion through `cursor_mut` while iterating.
//!
//! Invariant: every item a cursor yields is compared with the model's entry at the same
//! position; a cursor deletion must neither skip nor repeat a key.

use rand::Rng;

use crate::case::{expect_err, Case};
use crate::common::{
    first_difference, read_bucket, show, show_path, Entry, ModelBucket, Must, WalkOpts,
};
use oxcd_engine::{Error, TxRead, WriteTx};

impl Case {
    /// Reads one bucket's subtree through the write tx (first/next, last/prev and get).
    pub(crate) fn op_scan(&mut self, tx: &mut WriteTx, model: &mut ModelBucket) {
        let (path, id) = self.pick_bucket(tx, model);
        self.log(format!("scan {}", show_path(&path)));
        let mut budget = WalkOpts::THOROUGH.max_entries;
        let got = read_bucket(&*tx, id, false, 0, &mut budget, &WalkOpts::THOROUGH)
            .unwrap_or_else(|e| panic!("scan {}: {e}", show_path(&path)));
        if let Some(d) = first_difference(model.bucket(&path).expect("picked"), &got) {
            panic!("scan {}: {d}", show_path(&path));
        }
    }

    /// Seeks to a random key, then steps next/prev at random, comparing every item.
    pub(crate) fn op_seek(&mut self, tx: &mut WriteTx, model: &mut ModelBucket) {
        let (path, id) = self.pick_bucket(tx, model);
        let b = model.bucket(&path).expect("picked");
        let mut target = self.pick_key(b, 50);
        match self.rng.gen_range(0..10) {
            0 => target.clear(),
            1 => target.push(0),
            2 => target.truncate(target.len() / 2),
            _ => {}
        }
        let entries: Vec<(&Vec<u8>, &Entry)> = b.entries.iter().collect();
        let mut pos = entries.partition_point(|(k, _)| k.as_slice() < target.as_slice());
        let steps = self.rng.gen_range(0..20);
        let mut moves = Vec::with_capacity(steps);
        for _ in 0..steps {
            moves.push(self.rng.gen_bool(0.6));
        }
        self.log(format!(
            "seek {} {} then {steps} steps",
            show_path(&path),
            show(&target)
        ));
        let same = |got: Option<oxcd_engine::Item<'_>>, pos: usize, what: &str| {
            let want = entries.get(pos);
            match (got, want) {
                (None, None) => {}
                (Some(it), Some((k, e))) => {
                    assert!(
                        it.key == k.as_slice(),
                        "{what}: key {} want {}",
                        show(it.key),
                        show(k)
                    );
                    match e {
                        Entry::Value(v) => assert!(
                            !it.is_bucket && it.value == v.as_slice(),
                            "{what}: value of {}",
                            show(k)
                        ),
                        Entry::Bucket(_) => {
                            assert!(it.is_bucket, "{what}: {} should be a bucket", show(k))
                        }
                    }
                }
                (got, want) => panic!(
                    "{what}: got {:?}, want {:?}",
                    got.map(|it| show(it.key)),
                    want.map(|(k, _)| show(k))
                ),
            }
        };
        let mut c = tx.cursor(id).must("cursor");
        same(c.seek(&target).must("seek"), pos, "seek");
        for forward in moves {
            if pos >= entries.len() {
                break; // past the end: what prev() does there is not specified
            }
            if forward {
                pos += 1;
                same(c.next().must("next"), pos, "next after seek");
            } else if pos == 0 {
                same(
                    c.prev().must("prev"),
                    usize::MAX,
                    "prev before the first key",
                );
                break;
            } else {
                pos -= 1;
                same(c.prev().must("prev"), pos, "prev after seek");
            }
        }
    }

    /// Iterates with `cursor_mut`, deleting some plain keys as it goes (sometimes a bounded
    /// range from a seek position): every key must still be visited once, in order.
    pub(crate) fn op_cursor_delete(&mut self, tx: &mut WriteTx, model: &mut ModelBucket) {
        let (path, id) = self.pick_bucket(tx, model);
        let b = model.bucket(&path).expect("picked");
        let start = if self.rng.gen_bool(0.5) {
            None
        } else {
            Some(self.pick_key(b, 50))
        };
        let expected: Vec<(Vec<u8>, bool)> = b
            .entries
            .iter()
            .filter(|(k, _)| start.as_ref().is_none_or(|s| *k >= s))
            .map(|(k, e)| (k.clone(), matches!(e, Entry::Bucket(_))))
            .collect();
        let p = if self.shrinking {
            self.rng.gen_range(0.3..=1.0)
        } else {
            self.rng.gen_range(0.05..0.5)
        };
        let limit = if self.rng.gen_bool(0.3) {
            self.rng.gen_range(1..200)
        } else {
            usize::MAX
        };
        self.log(format!(
            "cursor_mut delete in {} from {:?}, p {p:.2}, at most {limit} keys",
            show_path(&path),
            start.as_deref().map(show)
        ));
        let mut visited = Vec::new();
        let mut deleted = Vec::new();
        let mut c = tx.cursor_mut(id).must("cursor_mut");
        let first = match &start {
            None => c.first().must("first"),
            Some(k) => c.seek(k).must("seek"),
        };
        let mut item = first.map(|it| (it.key.to_vec(), it.is_bucket));
        while let Some((key, is_bucket)) = item {
            if !is_bucket && self.rng.gen_bool(p) {
                c.delete().must("cursor delete");
                deleted.push(key.clone());
            } else if is_bucket && self.rng.gen_bool(0.2) {
                let r = c.delete();
                expect_err(
                    r,
                    |e| matches!(e, Error::IncompatibleValue),
                    "cursor delete of bucket",
                );
            }
            visited.push((key, is_bucket));
            if visited.len() >= limit {
                break;
            }
            item = c
                .next()
                .must("next after delete")
                .map(|it| (it.key.to_vec(), it.is_bucket));
        }
        drop(c);
        let want = &expected[..visited.len().min(expected.len())];
        if visited != want || (limit == usize::MAX && visited.len() != expected.len()) {
            let at = visited.iter().zip(&expected).position(|(a, b)| a != b);
            panic!(
                "cursor delete iteration visited {} keys, expected {} (first mismatch at {at:?})",
                visited.len(),
                expected.len()
            );
        }
        let b = model.bucket_mut(&path).expect("picked");
        for k in deleted {
            b.entries.remove(&k);
        }
    }
}
