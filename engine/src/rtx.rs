//! Read transactions: a consistent snapshot of one committed state, read straight from the
//! memory map with no copying.
//!
//! Bucket handles are indices into a small per-transaction table. An inline bucket's page
//! lives inside its parent's leaf page, so the table records where in the mapping it is.

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use crate::cursor::{Cursor, NodeRef, TreeSource};
use crate::db::Inner;
use crate::error::{Corruption, Error, Result};
use crate::layout::*;
use crate::meta::Meta;
use crate::page::{Mapping, PageView};
use crate::stats::{self, BucketStats};
use crate::{BucketId, TxRead};

#[derive(Clone, Copy)]
pub(crate) struct RBucket {
    pub(crate) root_pgid: u64,
    pub(crate) sequence: u64,
    /// For an inline bucket: offset and length of its page within the mapping, and the file
    /// offset of the page holding it (for errors).
    inline: Option<(usize, usize, u64)>,
}

/// A read-only snapshot. Many may be open at once, alongside one write transaction.
pub struct ReadTx {
    pub(crate) inner: Arc<Inner>,
    pub(crate) map: Arc<Mapping>,
    pub(crate) meta: Meta,
    buckets: Mutex<BucketTable>,
    /// Whether `Db::begin_read` counted this snapshot among the open readers.
    registered: bool,
    /// The freelist, once something asked for it.
    free_ids: OnceLock<Vec<u64>>,
}

/// Buckets opened by a read transaction; opening the same one again returns the same id, so
/// a long-lived snapshot's table stays bounded.
#[derive(Default)]
struct BucketTable {
    entries: Vec<RBucket>,
    by_parent: HashMap<u32, HashMap<Vec<u8>, u32>>,
}

impl ReadTx {
    pub(crate) fn new(inner: Arc<Inner>, map: Arc<Mapping>, meta: Meta) -> ReadTx {
        let root = RBucket {
            root_pgid: meta.root_pgid,
            sequence: meta.sequence,
            inline: None,
        };
        ReadTx {
            inner,
            map,
            meta,
            buckets: Mutex::new(BucketTable {
                entries: vec![root],
                ..Default::default()
            }),
            registered: true,
            free_ids: OnceLock::new(),
        }
    }

    /// A view of a state that is not published yet (the strict check before a commit's meta
    /// is written); it is not counted among the readers.
    pub(crate) fn unregistered(inner: Arc<Inner>, map: Arc<Mapping>, meta: Meta) -> ReadTx {
        let mut tx = ReadTx::new(inner, map, meta);
        tx.registered = false;
        tx
    }

    /// The transaction id of the state this snapshot reads.
    pub fn txid(&self) -> u64 {
        self.meta.txid
    }

    /// The meta page this snapshot reads.
    pub fn meta(&self) -> Meta {
        self.meta
    }

    /// Bytes of the file this snapshot spans (high water mark × page size).
    pub fn size_bytes(&self) -> u64 {
        self.meta.high_water_pgid * self.meta.page_size as u64
    }

    pub(crate) fn page(&self, id: u64) -> Result<PageView<'_>> {
        self.map.page(id, self.meta.high_water_pgid)
    }

    /// The bytes of page `id` including its overflow pages.
    pub fn raw_page(&self, id: u64) -> Result<&[u8]> {
        Ok(self.page(id)?.bytes)
    }

    /// The freelist as this snapshot's meta records it (rebuilt by scanning if the file
    /// has none), sorted.
    pub fn free_page_ids(&self) -> Result<Vec<u64>> {
        Ok(self.free_ids_sorted()?.to_vec())
    }

    /// The freelist, read (or, for a file without one, rebuilt by a full tree scan) once per
    /// snapshot: per-page callers such as `page_info` would otherwise repeat that work for
    /// every page.
    pub(crate) fn free_ids_sorted(&self) -> Result<&[u64]> {
        if let Some(ids) = self.free_ids.get() {
            return Ok(ids);
        }
        let mut ids = if self.meta.freelist_pgid == NO_FREELIST {
            crate::check::unreachable_pages(&self.map, &self.meta)?
        } else {
            let page = self.page(self.meta.freelist_pgid)?;
            crate::freelist::read_page(page.bytes, self.meta.high_water_pgid)
                .map_err(|what| self.map.corrupt(page.offset, Corruption::BadPage(what)))?
        };
        ids.sort_unstable();
        Ok(self.free_ids.get_or_init(|| ids))
    }

    /// Writes a consistent copy of this snapshot as a complete database file (bbolt's
    /// Tx.WriteTo): both metas describe this state, then every page below the high water
    /// mark. Returns the bytes written.
    pub fn write_to(&self, w: &mut dyn Write) -> Result<u64> {
        let ps = self.meta.page_size as usize;
        let out_err = |e| Error::io(std::path::Path::new("<copy destination>"), e);
        let mut meta = self.meta;
        meta.txid = meta.txid.max(1);
        let mut page0 = meta.encode_page(ps);
        put_u64(&mut page0, PAGE_ID, 0);
        let mut older = meta;
        older.txid -= 1;
        let mut page1 = older.encode_page(ps);
        put_u64(&mut page1, PAGE_ID, 1);
        // Both metas carry their own checksum over fields only; the id lives in the header.
        w.write_all(&page0).map_err(out_err)?;
        w.write_all(&page1).map_err(out_err)?;
        let mut written = 2 * ps as u64;
        const CHUNK_PAGES: u64 = 256;
        let mut id = 2;
        while id < self.meta.high_water_pgid {
            let n = CHUNK_PAGES.min(self.meta.high_water_pgid - id);
            let chunk = self.map_range(id, n)?;
            w.write_all(chunk).map_err(out_err)?;
            written += chunk.len() as u64;
            id += n;
        }
        Ok(written)
    }

    fn map_range(&self, first: u64, pages: u64) -> Result<&[u8]> {
        let ps = self.meta.page_size as u64;
        let start = first * ps;
        let end = (first + pages) * ps;
        if end > self.map.len() {
            return Err(self.map.corrupt(
                start,
                Corruption::PageOutOfRange {
                    pgid: first + pages,
                    high_water: 0,
                },
            ));
        }
        Ok(self.map.range(start as usize, end as usize))
    }

    /// bbolt's Tx.Page: what page `id` is, or None at or past the high water mark.
    pub fn page_info(&self, id: u64) -> Result<Option<crate::PageInfo>> {
        stats::page_info(self, id)
    }

    /// The table entry of `b`; a handle this transaction did not issue is BucketNotFound.
    fn rbucket(&self, b: BucketId) -> Result<RBucket> {
        let table = self.buckets.lock().expect("bucket table lock");
        table
            .entries
            .get(b.0 as usize)
            .copied()
            .ok_or(Error::BucketNotFound)
    }
}

impl Drop for ReadTx {
    fn drop(&mut self) {
        if self.registered {
            self.inner.end_reader(self.meta.txid);
        }
    }
}

impl TreeSource for ReadTx {
    fn root_ref(&self, bucket: BucketId) -> Result<NodeRef<'_>> {
        let b = self.rbucket(bucket)?;
        match b.inline {
            Some((off, len, file_off)) => {
                let bytes = self.map.range(off, off + len);
                Ok(NodeRef::Page(PageView::new(
                    bytes,
                    file_off,
                    &self.map.path,
                )?))
            }
            None => self.child_ref(bucket, b.root_pgid),
        }
    }

    fn child_ref(&self, _bucket: BucketId, pgid: u64) -> Result<NodeRef<'_>> {
        let page = self.page(pgid)?;
        page.expect_tree_page(pgid)?;
        Ok(NodeRef::Page(page))
    }

    fn file_path(&self) -> &std::path::Path {
        &self.map.path
    }

    fn page_size(&self) -> u64 {
        self.meta.page_size as u64
    }

    fn is_inline(&self, bucket: BucketId) -> bool {
        self.rbucket(bucket).is_ok_and(|b| b.inline.is_some())
    }
}

impl TxRead for ReadTx {
    fn root(&self) -> BucketId {
        BucketId(0)
    }

    fn bucket(&self, parent: BucketId, name: &[u8]) -> Result<Option<BucketId>> {
        {
            let table = self.buckets.lock().expect("bucket table lock");
            if let Some(&id) = table.by_parent.get(&parent.0).and_then(|m| m.get(name)) {
                return Ok(Some(BucketId(id)));
            }
        }
        let item = match crate::cursor::lookup(self, parent, name)? {
            Some(item) if item.is_bucket => item,
            _ => return Ok(None),
        };
        let v = item.value;
        if v.len() < BUCKET_HEADER_SIZE {
            return Err(self
                .map
                .corrupt(0, Corruption::BadPage("bucket value too short".into())));
        }
        let root_pgid = get_u64(v, BUCKET_ROOT);
        let sequence = get_u64(v, BUCKET_SEQUENCE);
        let inline = if root_pgid == 0 {
            let page = &v[BUCKET_HEADER_SIZE..];
            let off = self
                .map
                .offset_of(page)
                .expect("read transactions read only the mapping");
            let file_off = (off as u64 / self.meta.page_size as u64) * self.meta.page_size as u64;
            PageView::new(page, file_off, &self.map.path)?;
            Some((off, page.len(), file_off))
        } else {
            if root_pgid < 2 || root_pgid >= self.meta.high_water_pgid {
                let hw = self.meta.high_water_pgid;
                return Err(self.map.corrupt(
                    0,
                    Corruption::PageOutOfRange {
                        pgid: root_pgid,
                        high_water: hw,
                    },
                ));
            }
            None
        };
        let mut table = self.buckets.lock().expect("bucket table lock");
        let id = table.entries.len() as u32;
        table.entries.push(RBucket {
            root_pgid,
            sequence,
            inline,
        });
        table
            .by_parent
            .entry(parent.0)
            .or_default()
            .insert(name.to_vec(), id);
        Ok(Some(BucketId(id)))
    }

    fn get(&self, bucket: BucketId, key: &[u8]) -> Result<Option<&[u8]>> {
        let item = crate::cursor::lookup(self, bucket, key)?;
        Ok(item.filter(|i| !i.is_bucket).map(|i| i.value))
    }

    fn cursor(&self, bucket: BucketId) -> Result<Cursor<'_>> {
        Ok(Cursor::new(self, bucket))
    }

    fn sequence(&self, bucket: BucketId) -> Result<u64> {
        Ok(self.rbucket(bucket)?.sequence)
    }

    fn bucket_stats(&self, bucket: BucketId) -> Result<BucketStats> {
        stats::bucket_stats(self, bucket)
    }
}
