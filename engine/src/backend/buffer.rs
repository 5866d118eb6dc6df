//! The write buffer: writes applied by batch transactions but not yet committed, kept so that
//! readers see them at once (etcd's `txWriteBuffer` / `txReadBuffer`).
//!
//! Owns three pure structures and the merge that reads through them; it touches no file and
//! takes no lock.
//!
//! - [`Layer`]: one bucket's writes as an ordered map `key -> Some(value) | None (tombstone)`,
//!   plus `cleared`, set when the bucket was deleted: a cleared layer hides everything older
//!   (older layers and the committed bucket).
//! - [`WriteBuffer`]: the writes of the batch-transaction session in progress, one layer per
//!   bucket. Readers never see it; it is published whole when the session ends, so a reader
//!   sees a session's writes all or nothing, and sessions in the order they ran.
//! - [`ReadBuffer`]: every published session since the last commit, per bucket a stack of
//!   immutable `Arc<Layer>`s, oldest first. Publishing builds a new `ReadBuffer` and leaves the
//!   old one untouched, so a reader's snapshot is two `Arc` clones (etcd copies the whole buffer
//!   for every concurrent read instead).
//!
//! Invariants of a layer stack (checked by `debug_assert` in `push_layer`):
//! - only the bottom layer may be `cleared` (pushing a cleared layer drops everything below it);
//! - weights (`entries + 1`) more than double from each layer to the one below it, so a stack
//!   holds at most ~log2(n) layers and a read merges few sources. Keeping this costs a merge of
//!   the top layers when a push breaks it, like a binary counter: each entry is copied O(log n)
//!   times over a batch, amortised.
//!
//! Worked example (bucket "key", committed holds a=1, b=1):
//! ```text
//! session 1: put c=2          stack: [{c:2}]
//! session 2: delete a         push {a:None}; weight 2 > 2*2? no -> merge: [{a:None, c:2}]
//! read "a".."z"               sources newest first: {a:None,c:2}, committed {a:1,b:1}
//!                             -> b=1, c=2  (a hidden by its tombstone)
//! session 3: delete bucket    stack: [{cleared}]  -> committed hidden, reads see nothing
//! ```

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::Arc;

use super::Error;

/// One bucket's buffered writes; newer writes to a key replace older ones.
#[derive(Clone, Debug, Default, PartialEq)]
pub(super) struct Layer {
    /// The bucket was deleted within this layer's span: older data is hidden.
    pub(super) cleared: bool,
    /// `None` is a tombstone: the key was deleted.
    pub(super) entries: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
}

impl Layer {
    fn put(&mut self, key: &[u8], value: &[u8]) {
        self.entries.insert(key.to_vec(), Some(value.to_vec()));
    }

    fn delete(&mut self, key: &[u8]) {
        if self.cleared {
            // Nothing older is visible, so there is nothing for a tombstone to hide.
            self.entries.remove(key);
        } else {
            self.entries.insert(key.to_vec(), None);
        }
    }

    fn clear(&mut self) {
        self.entries.clear();
        self.cleared = true;
    }

    fn weight(&self) -> usize {
        self.entries.len() + 1
    }

    /// `newer` applied on top of `older`.
    fn merged(older: &Layer, newer: &Layer) -> Layer {
        if newer.cleared {
            return newer.clone();
        }
        let mut entries = older.entries.clone();
        entries.extend(newer.entries.iter().map(|(k, v)| (k.clone(), v.clone())));
        if older.cleared {
            entries.retain(|_, v| v.is_some());
        }
        Layer {
            cleared: older.cleared,
            entries,
        }
    }
}

/// The writes of the batch-transaction session in progress, by bucket name.
#[derive(Debug, Default)]
pub(super) struct WriteBuffer {
    buckets: HashMap<Vec<u8>, Layer>,
}

impl WriteBuffer {
    pub(super) fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }

    pub(super) fn put(&mut self, bucket: &[u8], key: &[u8], value: &[u8]) {
        self.layer(bucket).put(key, value);
    }

    pub(super) fn delete(&mut self, bucket: &[u8], key: &[u8]) {
        self.layer(bucket).delete(key);
    }

    pub(super) fn delete_bucket(&mut self, bucket: &[u8]) {
        self.layer(bucket).clear();
    }

    fn layer(&mut self, bucket: &[u8]) -> &mut Layer {
        // Look up by slice first so the common case allocates nothing.
        if !self.buckets.contains_key(bucket) {
            self.buckets.insert(bucket.to_vec(), Layer::default());
        }
        self.buckets.get_mut(bucket).expect("layer inserted above")
    }
}

/// Every published session since the last commit. Immutable once shared: publishing makes a
/// new one with [`ReadBuffer::with_writes`].
#[derive(Clone, Debug, Default)]
pub(super) struct ReadBuffer {
    /// Per bucket, layers oldest first.
    buckets: HashMap<Vec<u8>, Vec<Arc<Layer>>>,
}

impl ReadBuffer {
    /// A new buffer: `self` with one session's writes on top. `self` is left as it was, since
    /// readers may hold it.
    pub(super) fn with_writes(&self, writes: WriteBuffer) -> ReadBuffer {
        let mut next = self.clone();
        for (bucket, layer) in writes.buckets {
            push_layer(next.buckets.entry(bucket).or_default(), layer);
        }
        next
    }

    /// What the buffer holds for `bucket`.
    pub(super) fn view(&self, bucket: &[u8]) -> BucketView<'_> {
        let layers = self
            .buckets
            .get(bucket)
            .map(Vec::as_slice)
            .unwrap_or_default();
        BucketView { layers }
    }

    #[cfg(test)]
    fn layer_count(&self, bucket: &[u8]) -> usize {
        self.buckets.get(bucket).map_or(0, Vec::len)
    }
}

fn push_layer(stack: &mut Vec<Arc<Layer>>, layer: Layer) {
    if layer.cleared {
        stack.clear();
    }
    let mut top = layer;
    while let Some(below) = stack.last() {
        if below.weight() > 2 * top.weight() {
            break;
        }
        top = Layer::merged(below, &top);
        stack.pop();
    }
    stack.push(Arc::new(top));
    debug_assert!(
        stack.iter().skip(1).all(|l| !l.cleared),
        "cleared layer above the bottom"
    );
    debug_assert!(stack.windows(2).all(|w| w[0].weight() > 2 * w[1].weight()));
}

/// What a key looks like through the buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Lookup<'a> {
    /// Written in the buffer with this value.
    Put(&'a [u8]),
    /// Deleted in the buffer (or its bucket was): the committed value is hidden.
    Deleted,
    /// The buffer says nothing: the committed value, if any, stands.
    Unknown,
}

/// One bucket's layers, borrowed from a [`ReadBuffer`].
#[derive(Clone, Copy, Debug)]
pub(super) struct BucketView<'a> {
    /// Oldest first.
    layers: &'a [Arc<Layer>],
}

impl<'a> BucketView<'a> {
    /// The bucket was deleted since the last commit: committed data must not be read.
    pub(super) fn hides_committed(&self) -> bool {
        self.layers.first().is_some_and(|l| l.cleared)
    }

    pub(super) fn lookup(&self, key: &[u8]) -> Lookup<'a> {
        for layer in self.layers.iter().rev() {
            match layer.entries.get(key) {
                Some(Some(value)) => return Lookup::Put(value),
                Some(None) => return Lookup::Deleted,
                None => {}
            }
        }
        if self.hides_committed() {
            Lookup::Deleted
        } else {
            Lookup::Unknown
        }
    }

    /// One source per layer, newest first, over `[start, end)` (`end: None` = to the end).
    pub(super) fn sources<'b>(&self, start: &'b [u8], end: Option<&'b [u8]>) -> Vec<Source<'a, 'b>>
    where
        'a: 'b,
    {
        let upper = end.map_or(Bound::Unbounded, Bound::Excluded);
        self.layers
            .iter()
            .rev()
            .map(|layer| {
                let iter = layer
                    .entries
                    .range::<[u8], _>((Bound::Included(start), upper))
                    .map(|(k, v)| Ok((k.as_slice(), v.as_deref())));
                Box::new(iter) as Source<'a, 'b>
            })
            .collect()
    }
}

/// A key and its value, `None` for a tombstone.
pub(super) type Entry<'a> = (&'a [u8], Option<&'a [u8]>);

/// Entries in ascending key order, each key at most once. Entries borrow from the data (`'t`);
/// the iterator itself may also borrow the range bounds (`'b`).
pub(super) type Source<'t, 'b> = Box<dyn Iterator<Item = Result<Entry<'t>, Error>> + 'b>;

/// `end` is empty or not above `start`: the range `[start, end)` is empty.
pub(super) fn range_is_empty(start: &[u8], end: Option<&[u8]>) -> bool {
    end.is_some_and(|end| end <= start)
}

/// Visits, in ascending key order, the live entries of `sources` (index 0 is the newest): when
/// several sources hold a key the newest one decides, and a tombstone hides the key. Stops
/// after `limit` visits (0 = no limit) or when `visit` returns `Ok(false)`.
pub(super) fn merge<'t, E: From<Error>>(
    mut sources: Vec<Source<'t, '_>>,
    limit: usize,
    mut visit: impl FnMut(&'t [u8], &'t [u8]) -> Result<bool, E>,
) -> Result<(), E> {
    let mut heads: Vec<Option<Entry<'t>>> = Vec::with_capacity(sources.len());
    for source in &mut sources {
        heads.push(source.next().transpose()?);
    }
    let mut visited = 0usize;
    while let Some(key) = heads.iter().flatten().map(|(k, _)| *k).min() {
        let mut winner: Option<Option<&'t [u8]>> = None;
        for (head, source) in heads.iter_mut().zip(sources.iter_mut()) {
            if let Some((k, v)) = *head {
                if k == key {
                    winner.get_or_insert(v);
                    *head = source.next().transpose()?;
                }
            }
        }
        if let Some(Some(value)) = winner {
            visited += 1;
            if !visit(key, value)? || visited == limit {
                break;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    type Model = BTreeMap<Vec<u8>, Vec<u8>>;

    fn committed_source(model: &Model) -> Source<'_, '_> {
        Box::new(
            model
                .iter()
                .map(|(k, v)| Ok((k.as_slice(), Some(v.as_slice())))),
        )
    }

    fn read_all(buffer: &ReadBuffer, committed: &Model, bucket: &[u8]) -> Model {
        let view = buffer.view(bucket);
        let mut sources = view.sources(b"", None);
        if !view.hides_committed() {
            sources.push(committed_source(committed));
        }
        let mut out = Model::new();
        merge::<Error>(sources, 0, |k, v| {
            out.insert(k.to_vec(), v.to_vec());
            Ok(true)
        })
        .expect("in-memory sources cannot fail");
        out
    }

    // The worked example of the module doc holds step by step.
    #[test]
    fn worked_example() {
        let committed: Model = [
            (b"a".to_vec(), b"1".to_vec()),
            (b"b".to_vec(), b"1".to_vec()),
        ]
        .into_iter()
        .collect();
        let mut w = WriteBuffer::default();
        w.put(b"key", b"c", b"2");
        let buffer = ReadBuffer::default().with_writes(w);
        let mut w = WriteBuffer::default();
        w.delete(b"key", b"a");
        let buffer = buffer.with_writes(w);
        assert_eq!(buffer.layer_count(b"key"), 1);
        let seen: Vec<_> = read_all(&buffer, &committed, b"key").into_iter().collect();
        assert_eq!(
            seen,
            vec![
                (b"b".to_vec(), b"1".to_vec()),
                (b"c".to_vec(), b"2".to_vec())
            ]
        );
        assert_eq!(buffer.view(b"key").lookup(b"a"), Lookup::Deleted);
        assert_eq!(buffer.view(b"key").lookup(b"b"), Lookup::Unknown);
        let mut w = WriteBuffer::default();
        w.delete_bucket(b"key");
        let buffer = buffer.with_writes(w);
        assert!(read_all(&buffer, &committed, b"key").is_empty());
        assert_eq!(buffer.view(b"key").lookup(b"b"), Lookup::Deleted);
    }

    // Publishing never changes a buffer a reader already holds.
    #[test]
    fn published_buffers_are_immutable() {
        let mut w = WriteBuffer::default();
        w.put(b"b", b"k", b"old");
        let first = ReadBuffer::default().with_writes(w);
        let mut w = WriteBuffer::default();
        w.put(b"b", b"k", b"new");
        let second = first.with_writes(w);
        assert_eq!(first.view(b"b").lookup(b"k"), Lookup::Put(b"old"));
        assert_eq!(second.view(b"b").lookup(b"k"), Lookup::Put(b"new"));
    }

    // Random sessions of puts, deletes and bucket deletes read back exactly like a BTreeMap
    // model, for full scans, bounded ranges with limits and point lookups; stacks stay short.
    #[test]
    fn matches_model() {
        let mut rng = StdRng::seed_from_u64(7);
        for _round in 0..40 {
            let committed: Model = (0..rng.gen_range(0..30))
                .map(|_| (vec![rng.gen_range(b'a'..=b'p')], vec![rng.gen()]))
                .collect();
            let mut model = committed.clone();
            let mut buffer = ReadBuffer::default();
            for _session in 0..rng.gen_range(1..60) {
                let mut w = WriteBuffer::default();
                for _op in 0..rng.gen_range(1..6) {
                    let key = vec![rng.gen_range(b'a'..=b'p')];
                    match rng.gen_range(0..20) {
                        0 => {
                            w.delete_bucket(b"b");
                            model.clear();
                        }
                        1..=6 => {
                            w.delete(b"b", &key);
                            model.remove(&key);
                        }
                        _ => {
                            let value = vec![rng.gen()];
                            w.put(b"b", &key, &value);
                            model.insert(key, value);
                        }
                    }
                }
                buffer = buffer.with_writes(w);
                assert_eq!(read_all(&buffer, &committed, b"b"), model);
                assert!(buffer.layer_count(b"b") <= 8);
            }
            check_ranges(&mut rng, &buffer, &committed, &model);
        }
    }

    fn check_ranges(rng: &mut StdRng, buffer: &ReadBuffer, committed: &Model, model: &Model) {
        let view = buffer.view(b"b");
        for key in b'a'..=b'p' {
            let expected = model.get(&[key][..]).map(Vec::as_slice);
            let got = match view.lookup(&[key]) {
                Lookup::Put(v) => Some(v),
                Lookup::Deleted => None,
                Lookup::Unknown => committed.get(&[key][..]).map(Vec::as_slice),
            };
            assert_eq!(got, expected, "key {}", key as char);
        }
        for _ in 0..20 {
            let (start, end) = ([rng.gen_range(b'a'..=b'q')], [rng.gen_range(b'a'..=b'q')]);
            let limit = rng.gen_range(0..5);
            let expected: Vec<_> = model
                .iter()
                .filter(|(k, _)| k.as_slice() >= &start[..] && k.as_slice() < &end[..])
                .take(if limit == 0 { usize::MAX } else { limit })
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            let mut got = Vec::new();
            if !range_is_empty(&start, Some(&end)) {
                let mut sources = view.sources(&start, Some(&end));
                let committed_range = committed
                    .range::<[u8], _>((Bound::Included(&start[..]), Bound::Excluded(&end[..])))
                    .map(|(k, v)| Ok((k.as_slice(), Some(v.as_slice()))));
                if !view.hides_committed() {
                    sources.push(Box::new(committed_range));
                }
                merge::<Error>(sources, limit, |k, v| {
                    got.push((k.to_vec(), v.to_vec()));
                    Ok(true)
                })
                .expect("in-memory sources cannot fail");
            }
            assert_eq!(got, expected);
        }
    }
}
