//! One key's history in the in-memory index: its generations of revisions (etcd's `keyIndex`).
//!
//! A generation is one life of the key: the revisions from the put that created it up to and
//! including the tombstone (delete) that ended it. A tombstone closes the current generation and
//! opens a new, empty one; the next put fills it. The index stores revisions only; the values
//! live in the `key` bucket under those revisions.
//!
//! Worked example. `put@2, put@4, delete@6, put@8, put@10, delete@12, put@14.0, put@14.1,
//! delete@16` (a `.n` suffix is the sub revision; `t` marks the tombstone) gives, oldest first:
//!
//! ```text
//! generation 0: created 2    version 3   revisions [2, 4, 6t]
//! generation 1: created 8    version 3   revisions [8, 10, 12t]
//! generation 2: created 14.0 version 3   revisions [14.0, 14.1, 16t]
//! generation 3: (empty: the key is deleted now)
//! ```
//!
//! * `get(5)` → modified 4, created 2, version 2; `get(6)` and `get(7)` → not found (the key was
//!   deleted at 6 and not re-created before 8); `get(14)` → modified 14.1 (the last change of
//!   main revision 14), version 2.
//! * `compact(10)` keeps, per key, the newest revision at or below 10 so reads at 10 and later
//!   still work, and drops everything older: generation 0 goes, generation 1 becomes
//!   `[10, 12t]`, and 10 is reported "available" (the store must keep its value on disk).
//! * `compact(12)` drops generation 1 entirely: its newest revision at or below 12 is a
//!   tombstone, and a tombstone is never worth keeping once compacted. `compact(16)` leaves only
//!   the empty generation: the key is then empty and the tree index removes it.
//!
//! `version` counts the revisions ever put into a generation (the tombstone included), so it
//! stays right after compaction drops revisions from the front.
//!
//! Invariants (kept by construction; tests check them after every step): there is at least
//! one generation; every generation but the last is non-empty and ends with its tombstone;
//! revisions strictly increase across all generations; `modified` is the newest revision put.
//! Pure: no I/O, no locking.

use std::collections::HashSet;

use super::revision::Revision;

/// Errors of index operations. The display text of `RevisionNotFound` is etcd's.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IndexError {
    /// The key does not exist at the requested revision (or at all).
    #[error("mvcc: revision not found")]
    RevisionNotFound,
    /// A put or tombstone did not come after the key's newest revision: the caller broke the
    /// monotonic revision order (or the `key` bucket being restored is corrupt).
    #[error("mvcc: revision {given} is not after the key's last modification {modified}")]
    RevisionNotIncreasing { given: Revision, modified: Revision },
}

/// What a read at some revision sees of one key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyRevision {
    /// The revision whose value the read returns (the key's `mod_revision` is its `main`).
    pub modified: Revision,
    /// The revision that created the current generation (`create_revision` is its `main`).
    pub created: Revision,
    /// The number of puts in this generation up to `modified` (the key's `version`).
    pub version: i64,
}

/// One life of a key, from the put that created it to the tombstone that ended it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Generation {
    pub(super) version: i64,
    pub(super) created: Revision,
    pub(super) revisions: Vec<Revision>,
}

impl Generation {
    /// Puts ever made in this generation, the tombstone included, compacted ones included.
    pub fn version(&self) -> i64 {
        self.version
    }

    /// The revision that created this generation.
    pub fn created(&self) -> Revision {
        self.created
    }

    /// The revisions still indexed, oldest first.
    pub fn revisions(&self) -> &[Revision] {
        &self.revisions
    }

    pub fn is_empty(&self) -> bool {
        self.revisions.is_empty()
    }
}

/// The generations of one key. The key itself is the tree index's map key, not stored here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyIndex {
    pub(super) modified: Revision,
    pub(super) generations: Vec<Generation>,
}

impl Default for KeyIndex {
    fn default() -> Self {
        Self::new()
    }
}

impl KeyIndex {
    /// A key index with one empty generation: `is_empty()` until the first put.
    pub fn new() -> Self {
        KeyIndex {
            modified: Revision::default(),
            generations: vec![Generation::default()],
        }
    }

    /// A key index rebuilt from the newest record of a key in the `key` bucket: one generation
    /// created at `created` with `version` puts, of which only `modified` is still indexed.
    pub fn restored(created: Revision, modified: Revision, version: i64) -> Self {
        KeyIndex {
            modified,
            generations: vec![Generation {
                version,
                created,
                revisions: vec![modified],
            }],
        }
    }

    /// The newest revision put (or tombstoned).
    pub fn modified(&self) -> Revision {
        self.modified
    }

    /// The generations, oldest first; the last one is the current life of the key.
    pub fn generations(&self) -> &[Generation] {
        &self.generations
    }

    /// True when nothing is indexed: a single empty generation.
    pub fn is_empty(&self) -> bool {
        self.generations.len() == 1 && self.generations[0].is_empty()
    }

    /// Records a put at `rev`, creating the key's current generation if it is empty.
    pub fn put(&mut self, rev: Revision) -> Result<(), IndexError> {
        if rev <= self.modified {
            return Err(IndexError::RevisionNotIncreasing {
                given: rev,
                modified: self.modified,
            });
        }
        let generation = self.current_mut();
        if generation.revisions.is_empty() {
            generation.created = rev;
        }
        generation.revisions.push(rev);
        generation.version += 1;
        self.modified = rev;
        Ok(())
    }

    /// Records a delete at `rev`: ends the current generation with `rev` and opens a new empty
    /// one. `RevisionNotFound` when the key is deleted already (its current generation is empty).
    pub fn tombstone(&mut self, rev: Revision) -> Result<(), IndexError> {
        if self.current_mut().is_empty() {
            return Err(IndexError::RevisionNotFound);
        }
        self.put(rev)?;
        self.generations.push(Generation::default());
        Ok(())
    }

    /// What a read at main revision `at_rev` sees of the key, or `RevisionNotFound` when the key
    /// did not exist then (not yet created, deleted, or compacted away).
    pub fn get(&self, at_rev: i64) -> Result<KeyRevision, IndexError> {
        let generation = match self.find_generation(at_rev) {
            Some(index) => &self.generations[index],
            None => return Err(IndexError::RevisionNotFound),
        };
        let revs = &generation.revisions;
        match revs.iter().rposition(|rev| rev.main <= at_rev) {
            Some(n) => Ok(KeyRevision {
                modified: revs[n],
                created: generation.created,
                version: generation.version - (revs.len() - n - 1) as i64,
            }),
            None => Err(IndexError::RevisionNotFound),
        }
    }

    /// The revisions with `main >= rev`, oldest first, keeping only the highest sub revision of
    /// each main revision (a watcher sees one event per key per atomic change).
    pub fn since(&self, rev: i64) -> Vec<Revision> {
        let mut out = Vec::new();
        self.append_since(rev, &mut out);
        out
    }

    /// [`Self::since`] appending to `out`, for callers gathering many keys.
    pub fn append_since(&self, rev: i64, out: &mut Vec<Revision>) {
        let since = Revision::new(rev, 0);
        // Start at the newest generation created before `since`: older ones end before it.
        let mut start = self.generations.len() - 1;
        while start > 0 {
            let generation = &self.generations[start];
            if !generation.is_empty() && since > generation.created {
                break;
            }
            start -= 1;
        }
        let mut last_main = None;
        let revs = self.generations[start..].iter().flat_map(|g| &g.revisions);
        for &r in revs.filter(|&&r| r >= since) {
            if last_main == Some(r.main) {
                // A later change of the same atomic set supersedes the earlier one.
                let last = out.len() - 1;
                out[last] = r;
                continue;
            }
            out.push(r);
            last_main = Some(r.main);
        }
    }

    /// Drops the revisions that no read at `at_rev` or later can see, and adds to `available`
    /// the one revision at or below `at_rev` that such reads still see, if any (the store
    /// keeps its value on disk and deletes every other value at or below `at_rev`).
    ///
    /// Every generation whose tombstone is at or below `at_rev` goes whole: the key was deleted
    /// by then, and a tombstone is never kept. In the first generation that survives, the
    /// revisions older than its newest one at or below `at_rev` go. Afterwards the key may be
    /// empty; the tree index then removes it.
    ///
    /// etcd 3.4 then also drops that newest revision when it is a closed generation's
    /// tombstone. That case cannot arise (the generation chosen ends with a tombstone above
    /// `at_rev`, or is the open one), so it is a `debug_assert!` here instead of a branch.
    pub fn compact(&mut self, at_rev: i64, available: &mut HashSet<Revision>) {
        if self.is_empty() {
            return;
        }
        let (gen_index, rev_index) = self.find_compaction_point(at_rev, available);
        if let Some(rev_index) = rev_index {
            self.generations[gen_index].revisions.drain(..rev_index);
        }
        self.generations.drain(..gen_index);
    }

    /// Adds to `available` exactly what [`Self::compact`] at `at_rev` would, without changing
    /// anything (for hashing the key space as of a compaction revision).
    pub fn keep(&self, at_rev: i64, available: &mut HashSet<Revision>) {
        if self.is_empty() {
            return;
        }
        self.find_compaction_point(at_rev, available);
    }

    /// Finds the first generation that ends after `at_rev` (or the open one), and in it the
    /// newest revision at or below `at_rev`, which it adds to `available`.
    fn find_compaction_point(
        &self,
        at_rev: i64,
        available: &mut HashSet<Revision>,
    ) -> (usize, Option<usize>) {
        let last_gen = self.generations.len() - 1;
        let mut gen_index = 0;
        while gen_index < last_gen {
            let tombstone = self.generations[gen_index].revisions.last();
            if tombstone.is_some_and(|t| t.main > at_rev) {
                break;
            }
            gen_index += 1;
        }
        let revs = &self.generations[gen_index].revisions;
        let rev_index = revs.iter().rposition(|rev| rev.main <= at_rev);
        if let Some(n) = rev_index {
            debug_assert!(
                gen_index == last_gen || n + 1 < revs.len(),
                "kept a tombstone"
            );
            available.insert(revs[n]);
        }
        (gen_index, rev_index)
    }

    /// The generation alive at main revision `rev`, or None when the key did not exist then.
    fn find_generation(&self, rev: i64) -> Option<usize> {
        let last_gen = self.generations.len() - 1;
        for (index, generation) in self.generations.iter().enumerate().rev() {
            let (Some(first), Some(last)) =
                (generation.revisions.first(), generation.revisions.last())
            else {
                continue;
            };
            // A closed generation whose tombstone is at or below rev: deleted by then, and every
            // older generation ended even earlier.
            if index != last_gen && last.main <= rev {
                return None;
            }
            if first.main <= rev {
                return Some(index);
            }
        }
        None
    }

    fn current_mut(&mut self) -> &mut Generation {
        let last = self.generations.len() - 1;
        &mut self.generations[last]
    }

    /// Checks the invariants listed in the module doc.
    #[cfg(test)]
    pub(super) fn check_invariants(&self) {
        assert!(!self.generations.is_empty(), "no generations");
        let last_gen = self.generations.len() - 1;
        for generation in &self.generations[..last_gen] {
            assert!(
                !generation.is_empty(),
                "closed generation is empty: {self:?}"
            );
        }
        let all: Vec<Revision> = self
            .generations
            .iter()
            .flat_map(|g| g.revisions.iter().copied())
            .collect();
        assert!(
            all.windows(2).all(|w| w[0] < w[1]),
            "revisions not increasing: {self:?}"
        );
        if let Some(newest) = all.last() {
            assert_eq!(
                *newest, self.modified,
                "modified is not the newest revision"
            );
        }
    }
}
