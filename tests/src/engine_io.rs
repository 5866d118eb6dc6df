//! Writing a [`Spec`] with oxcd's engine, and reading a database back into a [`Model`].
//!
//! [`write_spec`] mirrors the oracle's `write` command operation for operation (same two phases,
//! same batching into transactions, same fill percents), so a spec written by either side is
//! produced by the same sequence of puts, deletes and commits.
//!
//! [`read_model`] is deliberately redundant: for every bucket it walks the cursor forward and
//! backward and demands the same entries, demands strictly ascending keys, and finds every entry
//! again with `get`, `bucket` and `seek` (including a seek just past each key). A page layout that
//! iterates correctly but routes lookups wrongly is caught here.

use oxcd_engine::{BucketId, Cursor, Db, Options, TxRead, WriteTx};

use crate::spec::{hx, BucketModel, BucketSpec, ItemSpec, Model, Spec};
use crate::{bail, ensure, Error, Result};

/// Engine options for a new file that will hold `spec`: strict (check after every commit), no
/// fsync (durability is not under test here), and the spec's page size and freelist mode.
pub fn options_for(spec: &Spec) -> Options {
    Options {
        page_size: spec.page_size,
        no_freelist_sync: spec.no_freelist_sync,
        strict: true,
        no_sync: true,
        ..Options::default()
    }
}

/// Applies `spec` to `db` (which should be empty) in the oracle's two phases.
pub fn write_spec(db: &Db, spec: &Spec) -> Result<()> {
    let mut writer = BatchWriter {
        db,
        batch_size: spec.batch_size,
        tx: None,
        ops: 0,
    };
    for bucket in &spec.buckets {
        writer.create(&[], bucket)?;
    }
    writer.commit()?;
    for bucket in &spec.buckets {
        writer.remove(&[bucket])?;
    }
    writer.commit()
}

/// Runs operations in write transactions of at most `batch_size` operations (0 = unbounded).
struct BatchWriter<'a> {
    db: &'a Db,
    batch_size: usize,
    tx: Option<WriteTx>,
    ops: usize,
}

impl BatchWriter<'_> {
    fn op(&mut self, f: impl FnOnce(&mut WriteTx) -> Result<()>) -> Result<()> {
        if self.tx.is_none() {
            self.tx = Some(self.db.begin_write()?);
            self.ops = 0;
        }
        let tx = self
            .tx
            .as_mut()
            .ok_or_else(|| Error::msg("no write transaction"))?;
        if let Err(e) = f(tx) {
            self.tx = None; // dropping rolls back
            return Err(e);
        }
        self.ops += 1;
        if self.batch_size > 0 && self.ops >= self.batch_size {
            self.commit()?;
        }
        Ok(())
    }

    fn commit(&mut self) -> Result<()> {
        match self.tx.take() {
            Some(tx) => Ok(tx.commit()?),
            None => Ok(()),
        }
    }

    /// Phase 1 for `spec` under the bucket at `parent` (empty = the root).
    fn create(&mut self, parent: &[&BucketSpec], spec: &BucketSpec) -> Result<()> {
        let mut path = parent.to_vec();
        path.push(spec);
        self.op(|tx| {
            let parent_id = lookup(tx, parent)?;
            let id = tx.create_bucket(parent_id, &spec.name).map_err(|e| {
                Error::from(e).context(format!("create bucket {}", path_string(&path)))
            })?;
            Ok(tx.set_sequence(id, spec.sequence)?)
        })?;
        for item in spec.items.iter().chain(&spec.delete) {
            self.op(|tx| {
                let id = lookup(tx, &path)?;
                tx.put(id, &item.key, &item.value).map_err(|e| {
                    Error::from(e).context(format!(
                        "put {} key {}",
                        path_string(&path),
                        hx(&item.key)
                    ))
                })
            })?;
        }
        for child in spec.buckets.iter().chain(&spec.delete_buckets) {
            self.create(&path, child)?;
        }
        Ok(())
    }

    /// Phase 2 for the bucket at the end of `path`.
    fn remove(&mut self, path: &[&BucketSpec]) -> Result<()> {
        let Some(spec) = path.last() else {
            return Ok(());
        };
        for ItemSpec { key, .. } in &spec.delete {
            self.op(|tx| {
                let id = lookup(tx, path)?;
                tx.delete(id, key).map_err(|e| {
                    Error::from(e).context(format!("delete {} key {}", path_string(path), hx(key)))
                })
            })?;
        }
        for child in &spec.delete_buckets {
            self.op(|tx| {
                let id = lookup(tx, path)?;
                tx.delete_bucket(id, &child.name).map_err(|e| {
                    Error::from(e).context(format!(
                        "delete bucket {}/{}",
                        path_string(path),
                        hx(&child.name)
                    ))
                })
            })?;
        }
        for child in &spec.buckets {
            let mut child_path = path.to_vec();
            child_path.push(child);
            self.remove(&child_path)?;
        }
        Ok(())
    }
}

/// The bucket at `path` in `tx` (empty path = the root), with each level's fill percent applied.
fn lookup(tx: &mut WriteTx, path: &[&BucketSpec]) -> Result<BucketId> {
    let mut id = tx.root();
    for (depth, spec) in path.iter().enumerate() {
        id = match tx.bucket(id, &spec.name)? {
            Some(child) => child,
            None => bail!("bucket {} vanished", path_string(&path[..=depth])),
        };
        if spec.fill_percent > 0.0 {
            tx.set_fill_percent(id, spec.fill_percent);
        }
    }
    Ok(id)
}

fn path_string(path: &[&BucketSpec]) -> String {
    path.iter().map(|b| format!("/{}", hx(&b.name))).collect()
}

/// Reads all of `db` in one read transaction, cross-checking every access path.
pub fn read_model(db: &Db) -> Result<Model> {
    let tx = db.begin_read()?;
    read_model_tx(&tx)
}

/// [`read_model`] inside an existing transaction.
pub fn read_model_tx(tx: &impl TxRead) -> Result<Model> {
    let root = tx.root();
    let mut model = Model::default();
    for entry in read_entries(tx, root, "")? {
        ensure!(entry.is_bucket, "root holds a plain key {}", hx(&entry.key));
        let here = format!("/{}", hx(&entry.key));
        let Some(id) = tx.bucket(root, &entry.key)? else {
            bail!("{here}: cursor shows a bucket that bucket() cannot open");
        };
        model.buckets.insert(entry.key, read_bucket(tx, id, &here)?);
    }
    Ok(model)
}

fn read_bucket(tx: &impl TxRead, id: BucketId, path: &str) -> Result<BucketModel> {
    let mut bucket = BucketModel {
        sequence: tx.sequence(id)?,
        ..BucketModel::default()
    };
    for entry in read_entries(tx, id, path)? {
        let here = format!("{path}/{}", hx(&entry.key));
        let got = tx.get(id, &entry.key)?;
        if entry.is_bucket {
            ensure!(got.is_none(), "{here}: get() returns a value for a bucket");
            let Some(child) = tx.bucket(id, &entry.key)? else {
                bail!("{here}: cursor shows a bucket that bucket() cannot open");
            };
            bucket
                .buckets
                .insert(entry.key, read_bucket(tx, child, &here)?);
        } else {
            ensure!(
                tx.bucket(id, &entry.key)?.is_none(),
                "{here}: bucket() opens a plain key"
            );
            ensure!(
                got == Some(entry.value.as_slice()),
                "{here}: get() returns {:?}, the cursor saw {} bytes",
                got.map(<[u8]>::len),
                entry.value.len()
            );
            bucket.items.insert(entry.key, entry.value);
        }
    }
    Ok(bucket)
}

/// One entry of a bucket as a cursor returned it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Entry {
    key: Vec<u8>,
    value: Vec<u8>,
    is_bucket: bool,
}

/// All entries of a bucket, after checking forward and backward walks agree, keys ascend, and
/// `seek` finds each key and lands after it when asked for the key with a 0 byte appended.
fn read_entries(tx: &impl TxRead, id: BucketId, path: &str) -> Result<Vec<Entry>> {
    let forward = walk(tx.cursor(id)?, true)?;
    let mut backward = walk(tx.cursor(id)?, false)?;
    backward.reverse();
    if forward != backward {
        let at = forward
            .iter()
            .zip(&backward)
            .position(|(f, b)| f != b)
            .unwrap_or(forward.len().min(backward.len()));
        bail!(
            "{path}: forward walk has {} entries, backward walk {}; they first differ at index {at}",
            forward.len(),
            backward.len()
        );
    }
    for pair in forward.windows(2) {
        ensure!(
            pair[0].key < pair[1].key,
            "{path}: key {} not after {}",
            hx(&pair[1].key),
            hx(&pair[0].key)
        );
    }
    let first = tx.cursor(id)?.seek(&[])?.map(|i| i.key.to_vec());
    ensure!(
        first == forward.first().map(|e| e.key.clone()),
        "{path}: seek(\"\") is not the first key"
    );
    for (i, entry) in forward.iter().enumerate() {
        let mut cursor = tx.cursor(id)?;
        let found = cursor.seek(&entry.key)?.map(to_entry);
        ensure!(
            found.as_ref() == Some(entry),
            "{path}: seek({}) does not find it",
            hx(&entry.key)
        );
        let mut past = entry.key.clone();
        past.push(0);
        let after = tx.cursor(id)?.seek(&past)?.map(|i| i.key.to_vec());
        ensure!(
            after == forward.get(i + 1).map(|e| e.key.clone()),
            "{path}: seek({}00) does not land on the next key",
            hx(&entry.key)
        );
    }
    Ok(forward)
}

fn walk(mut cursor: Cursor<'_>, forward: bool) -> Result<Vec<Entry>> {
    let mut out = Vec::new();
    let mut item = if forward {
        cursor.first()?
    } else {
        cursor.last()?
    };
    while let Some(i) = item {
        out.push(to_entry(i));
        item = if forward {
            cursor.next()?
        } else {
            cursor.prev()?
        };
    }
    Ok(out)
}

fn to_entry(item: oxcd_engine::Item<'_>) -> Entry {
    Entry {
        key: item.key.to_vec(),
        value: item.value.to_vec(),
        is_bucket: item.is_bucket,
    }
}
