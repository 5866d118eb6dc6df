//! The in-memory tree index: every key's generations of revisions, in key order (etcd's
//! `treeIndex`).
//!
//! The index answers "which revision of which keys does a read at revision R see" without
//! touching disk; the store then fetches those revisions' values from the `key` bucket. It is
//! rebuilt at start by feeding it the `key` bucket's records in revision order
//! ([`TreeIndex::restore`]), and shrunk by compaction, which also tells the store which
//! revisions at or below the compaction revision must stay on disk.
//!
//! Structure: a `BTreeMap<Box<[u8]>, KeyIndex>`. A B-tree keeps keys sorted for range scans
//! with cache-friendly nodes, needs no unsafe code or extra crate, and `Box<[u8]>` keys cost 16
//! bytes instead of a `Vec`'s 24 (the index holds every key, so per-key bytes count toward
//! RSS). A lock-free skip list would let reads run during writes, but the store serialises
//! writes anyway (one apply loop), so a plain map under one lock is enough until measurements
//! say otherwise.
//!
//! Concurrency: no lock inside. Reads take `&self`, writes `&mut self`; the store owns the index
//! behind one `RwLock`. That lets one write txn update several keys under a single acquisition,
//! and lets the store order index updates with its own revision bookkeeping without a second
//! lock. So that compaction never holds the write lock for long, [`TreeIndex::compact_batch`]
//! compacts a bounded number of keys per call and resumes from a [`CompactCursor`]; the store
//! releases the lock between batches. Writes interleaved between batches are safe: they carry
//! revisions above the current revision, hence above the compaction revision, so compaction
//! never has anything to drop from them (etcd interleaves the same way, key by key).
//!
//! Range forms ([`KeyRange::from_request`] maps etcd's `key`/`range_end` pair): an empty
//! `range_end` reads one key; `range_end == "\0"` reads every key `>= key` (and with `key ==
//! "\0"` too, every key, as no key is empty); any other `range_end` reads `[key, range_end)`,
//! which is empty when `range_end <= key`. A prefix read is the caller's `[prefix,
//! prefix_range_end(prefix))`. Pure: no I/O.

use std::collections::{BTreeMap, HashSet};
use std::ops::{Bound, ControlFlow};

use super::key_index::{IndexError, KeyIndex, KeyRevision};
use super::revision::Revision;

/// Lower and upper bound of a key range, as `BTreeMap::range` takes them.
type KeyBounds<'a> = (Bound<&'a [u8]>, Bound<&'a [u8]>);

/// The keys a request covers, decoded from etcd's `key` and `range_end` fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyRange<'a> {
    /// Exactly one key (`range_end` empty).
    Single(&'a [u8]),
    /// Keys in `[start, end)`; empty when `end <= start`.
    Span { start: &'a [u8], end: &'a [u8] },
    /// Every key `>= start` (`range_end == "\0"`); with `start == "\0"`, every key.
    FromKey(&'a [u8]),
}

impl<'a> KeyRange<'a> {
    /// Decodes etcd's `key`/`range_end` pair.
    pub fn from_request(key: &'a [u8], range_end: &'a [u8]) -> Self {
        match range_end {
            [] => KeyRange::Single(key),
            [0] => KeyRange::FromKey(key),
            end => KeyRange::Span { start: key, end },
        }
    }

    /// True when `key` lies in the range.
    pub fn contains(&self, key: &[u8]) -> bool {
        match *self {
            KeyRange::Single(single) => key == single,
            KeyRange::Span { start, end } => start <= key && key < end,
            KeyRange::FromKey(start) => start <= key,
        }
    }

    /// The map bounds of a multi-key range; None when the range cannot hold any key (an
    /// inverted span, which `BTreeMap::range` would panic on).
    fn bounds(&self) -> Option<KeyBounds<'a>> {
        match *self {
            KeyRange::Single(key) => Some((Bound::Included(key), Bound::Included(key))),
            KeyRange::Span { start, end } if start < end => {
                Some((Bound::Included(start), Bound::Excluded(end)))
            }
            KeyRange::Span { .. } => None,
            KeyRange::FromKey(start) => Some((Bound::Included(start), Bound::Unbounded)),
        }
    }
}

/// The `range_end` that makes `[prefix, range_end)` cover every key starting with `prefix`
/// (clientv3's rule): the prefix with its last byte below 0xff incremented and the rest cut;
/// `"\0"` (from-key) when there is no such byte.
pub fn prefix_range_end(prefix: &[u8]) -> Vec<u8> {
    match prefix.iter().rposition(|&byte| byte < 0xff) {
        Some(last) => {
            let mut end = prefix[..=last].to_vec();
            end[last] += 1;
            end
        }
        None => vec![0],
    }
}

/// One record of the `key` bucket, as [`TreeIndex::restore`] consumes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RestoredRecord<'a> {
    /// The key (from the stored mvccpb.KeyValue).
    pub key: &'a [u8],
    /// The revision the record is stored under.
    pub revision: Revision,
    /// Whether the bucket key carries the tombstone mark.
    pub tombstone: bool,
    /// The KeyValue's `create_revision` (ignored for tombstones).
    pub create_revision: i64,
    /// The KeyValue's `version` (ignored for tombstones).
    pub version: i64,
}

/// Where a batched compaction resumes, and at which revision it compacts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompactCursor {
    at_rev: i64,
    resume_after: Option<Box<[u8]>>,
    finished: bool,
}

impl CompactCursor {
    /// A cursor for compacting the whole index at `at_rev`, starting from the first key.
    pub fn new(at_rev: i64) -> Self {
        CompactCursor {
            at_rev,
            resume_after: None,
            finished: false,
        }
    }

    pub fn at_rev(&self) -> i64 {
        self.at_rev
    }

    /// True once every key has been compacted.
    pub fn is_finished(&self) -> bool {
        self.finished
    }
}

/// Every key's generations of revisions, in key order. See the module doc.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TreeIndex {
    keys: BTreeMap<Box<[u8]>, KeyIndex>,
}

impl TreeIndex {
    pub fn new() -> Self {
        TreeIndex::default()
    }

    /// Keys indexed, including deleted keys whose history compaction has not dropped yet.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Records a put of `key` at `rev`. `rev` must be above every revision of `key` so far.
    pub fn put(&mut self, key: &[u8], rev: Revision) -> Result<(), IndexError> {
        match self.keys.get_mut(key) {
            Some(key_index) => key_index.put(rev),
            None => {
                let mut key_index = KeyIndex::new();
                key_index.put(rev)?;
                self.keys.insert(key.into(), key_index);
                Ok(())
            }
        }
    }

    /// Records a delete of `key` at `rev`; `RevisionNotFound` if the key is not live.
    pub fn tombstone(&mut self, key: &[u8], rev: Revision) -> Result<(), IndexError> {
        match self.keys.get_mut(key) {
            Some(key_index) => key_index.tombstone(rev),
            None => Err(IndexError::RevisionNotFound),
        }
    }

    /// What a read at `at_rev` sees of `key`; `RevisionNotFound` if it did not exist then.
    pub fn get(&self, key: &[u8], at_rev: i64) -> Result<KeyRevision, IndexError> {
        match self.keys.get(key) {
            Some(key_index) => key_index.get(at_rev),
            None => Err(IndexError::RevisionNotFound),
        }
    }

    /// The full history of `key`, if indexed.
    pub fn key_index(&self, key: &[u8]) -> Option<&KeyIndex> {
        self.keys.get(key)
    }

    /// Calls `visit` with every key in `range` that exists at `at_rev`, in key order, until it
    /// breaks. The primitive under the other range reads (sorting by create/mod revision or
    /// version needs nothing more than what it passes).
    pub fn for_each<F>(&self, range: KeyRange<'_>, at_rev: i64, mut visit: F)
    where
        F: FnMut(&[u8], KeyRevision) -> ControlFlow<()>,
    {
        if let KeyRange::Single(key) = range {
            if let Ok(seen) = self.get(key, at_rev) {
                let _ = visit(key, seen);
            }
            return;
        }
        let Some(bounds) = range.bounds() else {
            return;
        };
        for (key, key_index) in self.keys.range::<[u8], _>(bounds) {
            if let Ok(seen) = key_index.get(at_rev) {
                if visit(key, seen).is_break() {
                    return;
                }
            }
        }
    }

    /// The keys in `range` existing at `at_rev` with the revision a read there sees, in key
    /// order.
    pub fn range(&self, range: KeyRange<'_>, at_rev: i64) -> Vec<(Vec<u8>, Revision)> {
        let mut out = Vec::new();
        self.for_each(range, at_rev, |key, seen| {
            out.push((key.to_vec(), seen.modified));
            ControlFlow::Continue(())
        });
        out
    }

    /// The revisions a read of `range` at `at_rev` returns, in key order, at most `limit` of
    /// them (None: all), and how many there are in total (etcd's `count`).
    pub fn revisions(
        &self,
        range: KeyRange<'_>,
        at_rev: i64,
        limit: Option<usize>,
    ) -> (Vec<Revision>, usize) {
        let limit = limit.unwrap_or(usize::MAX);
        let mut revisions = Vec::new();
        let mut total = 0;
        self.for_each(range, at_rev, |_, seen| {
            if total < limit {
                revisions.push(seen.modified);
            }
            total += 1;
            ControlFlow::Continue(())
        });
        (revisions, total)
    }

    /// How many keys in `range` exist at `at_rev` (the count-only read), without allocating.
    pub fn count(&self, range: KeyRange<'_>, at_rev: i64) -> usize {
        let mut total = 0;
        self.for_each(range, at_rev, |_, _| {
            total += 1;
            ControlFlow::Continue(())
        });
        total
    }

    /// Every revision of the keys in `range` with `main >= rev`, in revision order, one per key
    /// per main revision (the highest sub): what a watcher starting at `rev` must catch up on.
    pub fn range_since(&self, range: KeyRange<'_>, rev: i64) -> Vec<Revision> {
        let mut out = Vec::new();
        if let KeyRange::Single(key) = range {
            if let Some(key_index) = self.keys.get(key) {
                key_index.append_since(rev, &mut out);
            }
            return out;
        }
        let Some(bounds) = range.bounds() else {
            return out;
        };
        for key_index in self.keys.range::<[u8], _>(bounds).map(|(_, k)| k) {
            key_index.append_since(rev, &mut out);
        }
        out.sort_unstable();
        out
    }

    /// Compacts every key at `at_rev` in one go and returns the revisions at or below `at_rev`
    /// the store must keep on disk. Holds `&mut self` throughout; the store should prefer
    /// [`Self::compact_batch`].
    pub fn compact(&mut self, at_rev: i64) -> HashSet<Revision> {
        let mut available = HashSet::new();
        let mut cursor = CompactCursor::new(at_rev);
        while !cursor.is_finished() {
            self.compact_batch(&mut cursor, usize::MAX, &mut available);
        }
        available
    }

    /// Compacts up to `max_keys` keys (at least one) after the cursor's position at the
    /// cursor's revision, removing keys left empty, adding the revisions to keep to `available`,
    /// and advancing the cursor. Call until the cursor is finished; writes may come in between.
    pub fn compact_batch(
        &mut self,
        cursor: &mut CompactCursor,
        max_keys: usize,
        available: &mut HashSet<Revision>,
    ) {
        if cursor.finished {
            return;
        }
        let lower = match &cursor.resume_after {
            Some(key) => Bound::Excluded(&**key),
            None => Bound::Unbounded,
        };
        let max_keys = max_keys.max(1);
        let mut emptied: Vec<Box<[u8]>> = Vec::new();
        let mut last_key = None;
        let mut visited = 0;
        let batch = self.keys.range_mut::<[u8], _>((lower, Bound::Unbounded));
        for (key, key_index) in batch.take(max_keys) {
            key_index.compact(cursor.at_rev, available);
            if key_index.is_empty() {
                emptied.push(key.clone());
            }
            last_key = Some(key);
            visited += 1;
        }
        cursor.finished = visited < max_keys;
        if let Some(key) = last_key {
            cursor.resume_after = Some(key.clone());
        }
        for key in emptied {
            self.keys.remove(&key);
        }
    }

    /// The revisions at or below `at_rev` that compacting at `at_rev` would keep, without
    /// compacting (for hashing the key space as of a compaction revision).
    pub fn keep(&self, at_rev: i64) -> HashSet<Revision> {
        let mut available = HashSet::new();
        for key_index in self.keys.values() {
            key_index.keep(at_rev, &mut available);
        }
        available
    }

    /// Rebuilds the index from one `key` bucket record; feed the records in bucket (revision)
    /// order. The first record of a key's surviving history creates its entry from the stored
    /// create revision and version; later ones add puts and tombstones. A tombstone for a key
    /// not indexed (its history compacted away) or already deleted is skipped, as etcd does.
    /// Errors only when records come out of revision order.
    pub fn restore(&mut self, record: RestoredRecord<'_>) -> Result<(), IndexError> {
        if let Some(new) = restore_into(self.keys.get_mut(record.key), &record)? {
            self.keys.insert(record.key.into(), new);
        }
        Ok(())
    }

    /// Every key with its history, in key order (tests and debugging tools).
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &KeyIndex)> {
        self.keys.iter().map(|(key, key_index)| (&**key, key_index))
    }
}

/// The rules of [`TreeIndex::restore`] for one record: updates `existing`, or returns the new
/// key index to insert.
fn restore_into(
    existing: Option<&mut KeyIndex>,
    record: &RestoredRecord<'_>,
) -> Result<Option<KeyIndex>, IndexError> {
    match existing {
        Some(key_index) if record.tombstone => match key_index.tombstone(record.revision) {
            Err(IndexError::RevisionNotFound) => Ok(None),
            other => other.map(|()| None),
        },
        Some(key_index) => key_index.put(record.revision).map(|()| None),
        None if record.tombstone => Ok(None),
        None => {
            let created = Revision::new(record.create_revision, 0);
            Ok(Some(KeyIndex::restored(
                created,
                record.revision,
                record.version,
            )))
        }
    }
}

/// Rebuilds a [`TreeIndex`] from records in revision order, as [`TreeIndex::restore`] would
/// one by one, but without a tree descent per record (a million keys cost a million descents,
/// comparing keys all the way down): records are collected, stably sorted by key (so each
/// key's records stay in revision order), folded into key indexes, and bulk-loaded into the
/// tree in key order.
#[derive(Default)]
pub struct IndexBuilder {
    records: Vec<OwnedRecord>,
}

struct OwnedRecord {
    key: Box<[u8]>,
    revision: Revision,
    tombstone: bool,
    create_revision: i64,
    version: i64,
}

impl IndexBuilder {
    /// Adds one record (records must come in revision order).
    pub fn restore(&mut self, record: RestoredRecord<'_>) {
        self.records.push(OwnedRecord {
            key: record.key.into(),
            revision: record.revision,
            tombstone: record.tombstone,
            create_revision: record.create_revision,
            version: record.version,
        });
    }

    /// The tree index, or the first record the rules refuse: its key, revision and why.
    pub fn build(mut self) -> Result<TreeIndex, (Box<[u8]>, Revision, IndexError)> {
        self.records.sort_by(|a, b| a.key.cmp(&b.key));
        let mut keys: Vec<(Box<[u8]>, KeyIndex)> = Vec::new();
        let mut records = self.records.into_iter().peekable();
        while let Some(first) = records.next() {
            let mut key_index = None;
            let mut current = first;
            loop {
                let record = RestoredRecord {
                    key: &current.key,
                    revision: current.revision,
                    tombstone: current.tombstone,
                    create_revision: current.create_revision,
                    version: current.version,
                };
                match restore_into(key_index.as_mut(), &record) {
                    Ok(Some(new)) => key_index = Some(new),
                    Ok(None) => {}
                    Err(e) => return Err((current.key, current.revision, e)),
                }
                match records.next_if(|next| next.key == current.key) {
                    Some(next) => current = next,
                    None => break,
                }
            }
            if let Some(key_index) = key_index {
                keys.push((current.key, key_index));
            }
        }
        Ok(TreeIndex {
            keys: keys.into_iter().collect(),
        })
    }
}
