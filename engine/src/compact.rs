//! Compaction (defragmentation): copying every bucket, key and sequence of one database into
//! another, packed at a chosen fill percent, in transactions of bounded size.

use crate::cursor::{TreeSource, MAX_TREE_DEPTH};
use crate::error::Result;
use crate::{BucketId, Db, TxRead, WriteTx};

/// How to compact.
#[derive(Clone, Debug)]
pub struct CompactOptions {
    /// Fill percent for every bucket of the destination (bbolt's default 0.5; etcd's defrag
    /// effectively packs tighter).
    pub fill_percent: f64,
    /// Commit the destination after roughly this many bytes of keys and values.
    pub tx_max_bytes: u64,
}

impl Default for CompactOptions {
    fn default() -> Self {
        CompactOptions {
            fill_percent: 0.5,
            tx_max_bytes: 64 << 20,
        }
    }
}

struct Dest<'a> {
    db: &'a Db,
    opts: &'a CompactOptions,
    tx: Option<WriteTx>,
    /// Buckets opened in the current destination transaction, by depth along the path.
    handles: Vec<BucketId>,
    path: Vec<Vec<u8>>,
    tx_bytes: u64,
    total_bytes: u64,
}

impl Dest<'_> {
    fn tx(&mut self) -> Result<&mut WriteTx> {
        if self.tx.is_none() {
            let mut tx = self.db.begin_write()?;
            // Intermediate commits skip fdatasync; the final one in `compact` syncs them all.
            tx.durable = false;
            self.tx = Some(tx);
            self.handles.clear();
        }
        Ok(self.tx.as_mut().expect("just set"))
    }

    /// The destination handle of the bucket at the current path.
    fn current(&mut self) -> Result<BucketId> {
        let depth = self.path.len();
        while self.handles.len() < depth {
            let parent = match self.handles.last() {
                Some(&h) => h,
                None => self.tx()?.root(),
            };
            let name = self.path[self.handles.len()].clone();
            let fill = self.opts.fill_percent;
            let tx = self.tx()?;
            let h = tx.create_bucket_if_not_exists(parent, &name)?;
            tx.set_fill_percent(h, fill);
            self.handles.push(h);
        }
        Ok(*self.handles.last().expect("depth >= 1"))
    }

    fn account(&mut self, bytes: u64, progress: &mut dyn FnMut(u64)) -> Result<()> {
        self.tx_bytes += bytes;
        self.total_bytes += bytes;
        if self.tx_bytes >= self.opts.tx_max_bytes {
            if let Some(tx) = self.tx.take() {
                tx.commit()?;
            }
            self.handles.clear();
            self.tx_bytes = 0;
            progress(self.total_bytes);
        }
        Ok(())
    }
}

/// Copies everything in `src` into `dst` (normally a new, empty file), keeping bucket
/// sequences. `progress` is called with the bytes of keys and values copied so far.
pub fn compact(
    src: &Db,
    dst: &Db,
    opts: &CompactOptions,
    progress: &mut dyn FnMut(u64),
) -> Result<()> {
    let rtx = src.begin_read()?;
    let mut dest = Dest {
        db: dst,
        opts,
        tx: None,
        handles: Vec::new(),
        path: Vec::new(),
        tx_bytes: 0,
        total_bytes: 0,
    };
    copy_bucket(&rtx, rtx.root(), &mut dest, progress)?;
    // One durable commit at the end: its fdatasync flushes every earlier commit's pages
    // before its meta is written.
    let mut last = match dest.tx.take() {
        Some(tx) => tx,
        None => dst.begin_write()?,
    };
    last.durable = true;
    last.commit()?;
    progress(dest.total_bytes);
    Ok(())
}

fn copy_bucket(
    rtx: &crate::ReadTx,
    b: BucketId,
    dest: &mut Dest<'_>,
    progress: &mut dyn FnMut(u64),
) -> Result<()> {
    let mut cursor = rtx.cursor(b)?;
    let mut item = cursor.first()?;
    while let Some(i) = item {
        if dest.path.len() >= MAX_TREE_DEPTH {
            return Err(crate::cursor::too_deep(rtx.file_path()));
        }
        if i.is_bucket {
            let child = rtx.bucket(b, i.key)?.ok_or(crate::Error::BucketNotFound)?;
            dest.path.push(i.key.to_vec());
            let h = dest.current()?;
            let seq = rtx.sequence(child)?;
            if seq != 0 {
                dest.tx()?.set_sequence(h, seq)?;
            }
            copy_bucket(rtx, child, dest, progress)?;
            dest.path.pop();
            dest.handles.truncate(dest.path.len());
        } else if dest.path.is_empty() {
            // bbolt's root bucket holds only buckets; a plain key there is damage.
            let what = crate::Corruption::BadPage("a plain key in the root bucket".into());
            return Err(crate::Error::Corrupted {
                file: rtx.file_path().into(),
                offset: 0,
                what,
            });
        } else {
            let h = dest.current()?;
            dest.tx()?.put(h, i.key, i.value)?;
            dest.account((i.key.len() + i.value.len()) as u64, progress)?;
        }
        item = cursor.next()?;
    }
    Ok(())
}
