//! Write transactions: the single writer's copy-on-write view.
//!
//! A change copies every page on the path from the bucket's root to the affected leaf into
//! [`Node`]s (once per transaction); unchanged pages are read from the map. Nothing is
//! written to the file before commit, so dropping the transaction is a complete rollback.
//! Commit (see `commit.rs`) rebalances, splits and writes the nodes to fresh pages.
//!
//! Bucket handles index a table of the buckets this transaction has opened. An inline
//! bucket's page lives inside its parent's value, so until its root is copied into a node it
//! is found again through the parent each time.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::cursor::{Cursor, Item, NodeRef, TreePath, TreeSource, MAX_TREE_DEPTH};
use crate::db::Inner;
use crate::error::{Error, Result};
use crate::freelist::Freelist;
use crate::layout::*;
use crate::meta::Meta;
use crate::node::{Node, NodeId};
use crate::page::{Mapping, PageView};
use crate::stats::{self, BucketStats};
use crate::{BucketId, TxRead};

pub(crate) struct WBucket {
    pub(crate) parent: Option<BucketId>,
    pub(crate) name: Vec<u8>,
    /// Root page, or 0 for an inline bucket.
    pub(crate) root_pgid: u64,
    pub(crate) sequence: u64,
    pub(crate) root_node: Option<NodeId>,
    /// Pages of this bucket copied into nodes, by page id.
    pub(crate) nodes: HashMap<u64, NodeId, PgidHash>,
    /// Sub-buckets opened in this transaction.
    pub(crate) children: BTreeMap<Vec<u8>, BucketId>,
    pub(crate) fill_percent: f64,
    pub(crate) deleted: bool,
}

impl WBucket {
    fn new(parent: Option<BucketId>, name: &[u8], root_pgid: u64, sequence: u64) -> WBucket {
        WBucket {
            parent,
            name: name.to_vec(),
            root_pgid,
            sequence,
            root_node: None,
            nodes: HashMap::default(),
            children: BTreeMap::new(),
            fill_percent: DEFAULT_FILL_PERCENT,
            deleted: false,
        }
    }
}

/// Hashing for page ids: they are small distinct integers, so one multiply spreads them well
/// enough, far cheaper than SipHash on the put path.
#[derive(Clone, Copy, Default)]
pub(crate) struct PgidHash;

impl std::hash::BuildHasher for PgidHash {
    type Hasher = PgidHasher;
    fn build_hasher(&self) -> PgidHasher {
        PgidHasher(0)
    }
}

pub(crate) struct PgidHasher(u64);

impl std::hash::Hasher for PgidHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ b as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u64(&mut self, id: u64) {
        self.0 = (self.0 ^ id).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// The write transaction. Dropping it without `commit` rolls it back.
pub struct WriteTx {
    pub(crate) inner: Arc<Inner>,
    pub(crate) map: Arc<Mapping>,
    /// The meta this transaction will commit (txid already advanced).
    pub(crate) meta: Meta,
    /// The committed meta this transaction started from.
    pub(crate) base: Meta,
    pub(crate) freelist: Freelist,
    /// The freelist as it was, restored on rollback.
    pub(crate) original_freelist: Option<Freelist>,
    pub(crate) file_len: u64,
    pub(crate) buckets: RefCell<Vec<WBucket>>,
    pub(crate) nodes: Vec<Node>,
    /// Pages written by this commit: first page id → bytes (with overflow pages).
    pub(crate) dirty: BTreeMap<u64, Vec<u8>>,
    pub(crate) finished: bool,
    /// False for commits that need not be durable on their own (compaction's intermediate
    /// commits into a file nobody uses yet; its last commit syncs everything).
    pub(crate) durable: bool,
}

impl WriteTx {
    pub(crate) fn new(
        inner: Arc<Inner>,
        map: Arc<Mapping>,
        base: Meta,
        freelist: Freelist,
        file_len: u64,
    ) -> WriteTx {
        let mut meta = base;
        meta.txid += 1;
        let root = WBucket::new(None, b"", base.root_pgid, base.sequence);
        WriteTx {
            inner,
            map,
            meta,
            base,
            freelist: freelist.clone(),
            original_freelist: Some(freelist),
            file_len,
            buckets: RefCell::new(vec![root]),
            nodes: Vec::new(),
            dirty: BTreeMap::new(),
            finished: false,
            durable: true,
        }
    }

    /// The id this transaction commits as.
    pub fn txid(&self) -> u64 {
        self.meta.txid
    }

    pub(crate) fn page(&self, id: u64) -> Result<PageView<'_>> {
        self.map.page(id, self.base.high_water_pgid)
    }

    fn live(&self, b: BucketId) -> Result<()> {
        let buckets = self.buckets.borrow();
        match buckets.get(b.0 as usize) {
            Some(wb) if !wb.deleted => Ok(()),
            _ => Err(Error::BucketNotFound),
        }
    }

    /// The page of an inline bucket, found through its parent's value.
    fn inline_page(&self, b: BucketId) -> Result<PageView<'_>> {
        let (parent, name) = {
            let buckets = self.buckets.borrow();
            let wb = &buckets[b.0 as usize];
            (
                wb.parent.expect("the root bucket is never inline"),
                wb.name.clone(),
            )
        };
        let item = crate::cursor::lookup(self, parent, &name)?;
        let item = item.filter(|i| i.is_bucket).ok_or(Error::BucketNotFound)?;
        let bytes = &item.value[BUCKET_HEADER_SIZE.min(item.value.len())..];
        PageView::new(bytes, 0, &self.map.path)
    }

    /// Copies page `pgid` of bucket `b` into a node (once), linked under `parent`.
    pub(crate) fn materialize(
        &mut self,
        b: BucketId,
        pgid: u64,
        parent: Option<NodeId>,
    ) -> Result<NodeId> {
        {
            let buckets = self.buckets.borrow();
            let wb = &buckets[b.0 as usize];
            if parent.is_none() {
                if let Some(root) = wb.root_node {
                    return Ok(root);
                }
            } else if let Some(&id) = wb.nodes.get(&pgid) {
                return Ok(id);
            }
        }
        let node = if pgid == 0 && parent.is_none() {
            Node::read(&self.inline_page(b)?, 0, None)?
        } else {
            let page = self.page(pgid)?;
            page.expect_tree_page(pgid)?;
            Node::read(&page, pgid, parent)?
        };
        if parent.is_some() && node.inodes.is_empty() {
            let page = self.page(pgid)?;
            return Err(page.bad("an empty page below a branch"));
        }
        let id = self.nodes.len();
        self.nodes.push(node);
        let wb = &mut self.buckets.get_mut()[b.0 as usize];
        match parent {
            None => wb.root_node = Some(id),
            Some(p) => self.nodes[p].children.push(id),
        }
        if pgid != 0 {
            wb.nodes.insert(pgid, id);
        }
        Ok(id)
    }

    pub(crate) fn materialize_root(&mut self, b: BucketId) -> Result<NodeId> {
        let root = self.buckets.get_mut()[b.0 as usize].root_pgid;
        self.materialize(b, root, None)
    }

    /// The node of child `index` of node `n`.
    pub(crate) fn child_at(&mut self, b: BucketId, n: NodeId, index: usize) -> Result<NodeId> {
        let pgid = self.nodes[n].inodes[index].pgid;
        self.materialize(b, pgid, Some(n))
    }

    /// Copies the path found by a cursor search into nodes; returns the leaf node.
    pub(crate) fn leaf_for_path(&mut self, b: BucketId, path: &[usize]) -> Result<NodeId> {
        let mut n = self.materialize_root(b)?;
        for &index in &path[..path.len() - 1] {
            n = self.child_at(b, n, index)?;
        }
        Ok(n)
    }

    /// Where `key` is or would go in bucket `b`: the path and the item found, if any.
    pub(crate) fn locate(&self, b: BucketId, key: &[u8]) -> Result<(TreePath, Option<Item<'_>>)> {
        crate::cursor::locate(self, b, key)
    }

    /// Inserts or replaces `key` in bucket `b` (bbolt's Bucket.Put).
    pub fn put(&mut self, bucket: BucketId, key: &[u8], value: &[u8]) -> Result<()> {
        self.live(bucket)?;
        if bucket.0 == 0 {
            return Err(Error::IncompatibleValue);
        }
        if key.is_empty() {
            return Err(Error::KeyRequired);
        }
        if key.len() > MAX_KEY_SIZE {
            return Err(Error::KeyTooLarge);
        }
        if value.len() > MAX_VALUE_SIZE {
            return Err(Error::ValueTooLarge);
        }
        let (path, found) = self.locate(bucket, key)?;
        if found.is_some_and(|i| i.is_bucket) {
            return Err(Error::IncompatibleValue);
        }
        let exact = found.is_some();
        let leaf = self.leaf_for_path(bucket, path.levels())?;
        self.nodes[leaf].put_at(path.leaf_index(), exact, key, value, 0);
        Ok(())
    }

    /// Removes `key` from bucket `b`; a missing key is not an error.
    pub fn delete(&mut self, bucket: BucketId, key: &[u8]) -> Result<()> {
        self.live(bucket)?;
        let (path, found) = self.locate(bucket, key)?;
        match found {
            None => return Ok(()),
            Some(i) if i.is_bucket => return Err(Error::IncompatibleValue),
            Some(_) => {}
        }
        let leaf = self.leaf_for_path(bucket, path.levels())?;
        self.nodes[leaf].del(key);
        Ok(())
    }

    /// Creates sub-bucket `name` of `parent`.
    pub fn create_bucket(&mut self, parent: BucketId, name: &[u8]) -> Result<BucketId> {
        self.live(parent)?;
        if name.is_empty() {
            return Err(Error::BucketNameRequired);
        }
        if name.len() > MAX_KEY_SIZE {
            return Err(Error::KeyTooLarge);
        }
        let (path, found) = self.locate(parent, name)?;
        match found {
            Some(i) if i.is_bucket => return Err(Error::BucketExists),
            Some(_) => return Err(Error::IncompatibleValue),
            None => {}
        }
        // A new bucket is inline: a zero header and an empty leaf page.
        let mut value = vec![0u8; BUCKET_HEADER_SIZE + PAGE_HEADER_SIZE];
        put_u16(&mut value, BUCKET_HEADER_SIZE + PAGE_FLAGS, LEAF_PAGE);
        let leaf = self.leaf_for_path(parent, path.levels())?;
        self.nodes[leaf].put(name, name, &value, 0, BUCKET_LEAF_FLAG);
        self.bucket(parent, name)?.ok_or(Error::BucketNotFound)
    }

    /// Returns sub-bucket `name` of `parent`, creating it if missing.
    pub fn create_bucket_if_not_exists(
        &mut self,
        parent: BucketId,
        name: &[u8],
    ) -> Result<BucketId> {
        match self.create_bucket(parent, name) {
            Err(Error::BucketExists) => self.bucket(parent, name)?.ok_or(Error::BucketNotFound),
            other => other,
        }
    }

    /// Deletes sub-bucket `name` of `parent` with everything in it.
    pub fn delete_bucket(&mut self, parent: BucketId, name: &[u8]) -> Result<()> {
        self.delete_bucket_at(parent, name, 0)
    }

    fn delete_bucket_at(&mut self, parent: BucketId, name: &[u8], nesting: usize) -> Result<()> {
        if nesting > MAX_TREE_DEPTH {
            return Err(crate::cursor::too_deep(&self.map.path));
        }
        self.live(parent)?;
        match self.locate(parent, name)?.1 {
            None => return Err(Error::BucketNotFound),
            Some(i) if !i.is_bucket => return Err(Error::IncompatibleValue),
            Some(_) => {}
        }
        let child = self.bucket(parent, name)?.ok_or(Error::BucketNotFound)?;
        let mut sub_buckets = Vec::new();
        {
            let mut cursor = Cursor::new(&*self, child);
            let mut item = cursor.first()?;
            while let Some(i) = item {
                if i.is_bucket {
                    sub_buckets.push(i.key.to_vec());
                }
                item = cursor.next()?;
            }
        }
        for sub in sub_buckets {
            self.delete_bucket_at(child, &sub, nesting + 1)?;
        }
        self.free_bucket_pages(child)?;
        {
            let buckets = self.buckets.get_mut();
            buckets[child.0 as usize].deleted = true;
            buckets[parent.0 as usize].children.remove(name);
        }
        let (path, _) = self.locate(parent, name)?;
        let leaf = self.leaf_for_path(parent, path.levels())?;
        self.nodes[leaf].del(name);
        Ok(())
    }

    /// Frees every page of bucket `b`'s tree (nothing for an inline bucket).
    pub(crate) fn free_bucket_pages(&mut self, b: BucketId) -> Result<()> {
        let root = self.buckets.get_mut()[b.0 as usize].root_pgid;
        if root != 0 {
            let mut seen = std::collections::HashSet::new();
            self.free_tree(b, root, 0, &mut seen)?;
        }
        self.buckets.get_mut()[b.0 as usize].root_pgid = 0;
        Ok(())
    }

    fn free_tree(
        &mut self,
        b: BucketId,
        pgid: u64,
        depth: usize,
        seen: &mut std::collections::HashSet<u64>,
    ) -> Result<()> {
        if depth > MAX_TREE_DEPTH {
            return Err(crate::cursor::too_deep(&self.map.path));
        }
        if !seen.insert(pgid) {
            let what = crate::error::Corruption::BadPage(format!("page {pgid} is reached twice"));
            return Err(self.map.corrupt(pgid * self.inner.page_size as u64, what));
        }
        let node = self.buckets.get_mut()[b.0 as usize]
            .nodes
            .get(&pgid)
            .copied();
        let children: Vec<u64> = match node {
            Some(n) => {
                self.free_node(n);
                let node = &self.nodes[n];
                if node.is_leaf {
                    Vec::new()
                } else {
                    node.inodes.iter().map(|i| i.pgid).collect()
                }
            }
            None => {
                let page = self.page(pgid)?;
                page.expect_tree_page(pgid)?;
                let overflow = page.overflow() as u64;
                let kids = if page.is_leaf() {
                    Vec::new()
                } else {
                    (0..page.count())
                        .map(|i| page.branch(i).map(|e| e.1))
                        .collect::<Result<_>>()?
                };
                self.freelist.free(self.meta.txid, pgid, overflow + 1);
                kids
            }
        };
        for child in children {
            self.free_tree(b, child, depth + 1, seen)?;
        }
        Ok(())
    }

    /// Returns a node's original page to the freelist (pending until readers move on).
    pub(crate) fn free_node(&mut self, n: NodeId) {
        let node = &mut self.nodes[n];
        if node.pgid != 0 {
            self.freelist
                .free(self.meta.txid, node.pgid, node.overflow as u64 + 1);
            node.pgid = 0;
        }
    }

    /// Increments and returns bucket `b`'s sequence.
    pub fn next_sequence(&mut self, bucket: BucketId) -> Result<u64> {
        self.live(bucket)?;
        self.materialize_root(bucket)?;
        let wb = &mut self.buckets.get_mut()[bucket.0 as usize];
        wb.sequence = wb.sequence.wrapping_add(1); // bbolt's uint64 increment wraps too
        Ok(wb.sequence)
    }

    /// Sets bucket `b`'s sequence.
    pub fn set_sequence(&mut self, bucket: BucketId, sequence: u64) -> Result<()> {
        self.live(bucket)?;
        self.materialize_root(bucket)?;
        self.buckets.get_mut()[bucket.0 as usize].sequence = sequence;
        Ok(())
    }

    /// How full to pack pages when splitting bucket `b` at commit (bbolt's FillPercent;
    /// 0.5 by default, 0.9 suits append-only keys). Lasts for this transaction.
    pub fn set_fill_percent(&mut self, bucket: BucketId, fill_percent: f64) {
        if let Some(wb) = self.buckets.get_mut().get_mut(bucket.0 as usize) {
            wb.fill_percent = fill_percent;
        }
    }

    /// A cursor that can delete the entry it is on.
    pub fn cursor_mut(&mut self, bucket: BucketId) -> Result<CursorMut<'_>> {
        self.live(bucket)?;
        Ok(CursorMut {
            tx: self,
            bucket,
            current: None,
            deleted: false,
        })
    }

    /// Discards every change.
    pub fn rollback(mut self) {
        self.finish_rollback();
    }

    pub(crate) fn finish_rollback(&mut self) {
        if self.finished {
            return;
        }
        self.finished = true;
        let original = self
            .original_freelist
            .take()
            .expect("freelist held until finished");
        self.inner.end_writer(original, self.file_len);
    }
}

impl Drop for WriteTx {
    fn drop(&mut self) {
        self.finish_rollback();
    }
}

impl TreeSource for WriteTx {
    fn root_ref(&self, bucket: BucketId) -> Result<NodeRef<'_>> {
        let (root_pgid, root_node, deleted) = {
            let buckets = self.buckets.borrow();
            let wb = buckets
                .get(bucket.0 as usize)
                .ok_or(Error::BucketNotFound)?;
            (wb.root_pgid, wb.root_node, wb.deleted)
        };
        if deleted {
            return Err(Error::BucketNotFound);
        }
        match (root_node, root_pgid) {
            (Some(n), _) => Ok(NodeRef::Node(&self.nodes[n])),
            (None, 0) => Ok(NodeRef::Page(self.inline_page(bucket)?)),
            (None, pgid) => self.child_ref(bucket, pgid),
        }
    }

    fn child_ref(&self, bucket: BucketId, pgid: u64) -> Result<NodeRef<'_>> {
        let node = self.buckets.borrow()[bucket.0 as usize]
            .nodes
            .get(&pgid)
            .copied();
        if let Some(n) = node {
            return Ok(NodeRef::Node(&self.nodes[n]));
        }
        let page = self.page(pgid)?;
        page.expect_tree_page(pgid)?;
        Ok(NodeRef::Page(page))
    }

    fn file_path(&self) -> &std::path::Path {
        &self.map.path
    }

    fn page_size(&self) -> u64 {
        self.inner.page_size as u64
    }

    fn is_inline(&self, bucket: BucketId) -> bool {
        let buckets = self.buckets.borrow();
        bucket.0 != 0
            && buckets
                .get(bucket.0 as usize)
                .is_some_and(|b| b.root_pgid == 0)
    }
}

impl TxRead for WriteTx {
    fn root(&self) -> BucketId {
        BucketId(0)
    }

    fn bucket(&self, parent: BucketId, name: &[u8]) -> Result<Option<BucketId>> {
        self.live(parent)?;
        if let Some(&id) = self.buckets.borrow()[parent.0 as usize].children.get(name) {
            return Ok(Some(id));
        }
        let value = match crate::cursor::lookup(self, parent, name)? {
            Some(i) if i.is_bucket => i.value,
            _ => return Ok(None),
        };
        if value.len() < BUCKET_HEADER_SIZE {
            return Err(self.map.corrupt(
                0,
                crate::error::Corruption::BadPage("bucket value too short".into()),
            ));
        }
        let root_pgid = get_u64(value, BUCKET_ROOT);
        let sequence = get_u64(value, BUCKET_SEQUENCE);
        if root_pgid == 1 || root_pgid >= self.base.high_water_pgid {
            let hw = self.base.high_water_pgid;
            let what = crate::error::Corruption::PageOutOfRange {
                pgid: root_pgid,
                high_water: hw,
            };
            return Err(self.map.corrupt(0, what));
        }
        let mut buckets = self.buckets.borrow_mut();
        let id = BucketId(buckets.len() as u32);
        buckets.push(WBucket::new(Some(parent), name, root_pgid, sequence));
        buckets[parent.0 as usize]
            .children
            .insert(name.to_vec(), id);
        Ok(Some(id))
    }

    fn get(&self, bucket: BucketId, key: &[u8]) -> Result<Option<&[u8]>> {
        let item = crate::cursor::lookup(self, bucket, key)?;
        Ok(item.filter(|i| !i.is_bucket).map(|i| i.value))
    }

    fn cursor(&self, bucket: BucketId) -> Result<Cursor<'_>> {
        self.live(bucket)?;
        Ok(Cursor::new(self, bucket))
    }

    fn sequence(&self, bucket: BucketId) -> Result<u64> {
        self.live(bucket)?;
        Ok(self.buckets.borrow()[bucket.0 as usize].sequence)
    }

    fn bucket_stats(&self, bucket: BucketId) -> Result<BucketStats> {
        stats::bucket_stats(self, bucket)
    }
}

/// A write-transaction cursor that can delete the entry it is on. After `delete`, `next`
/// yields the entry that followed the deleted one and `prev` the one before it: nothing is
/// skipped. It finds its place again by key on every move.
pub struct CursorMut<'t> {
    tx: &'t mut WriteTx,
    bucket: BucketId,
    current: Option<Vec<u8>>,
    deleted: bool,
}

impl CursorMut<'_> {
    fn settle(&mut self, key: Option<Vec<u8>>) {
        self.current = key;
        self.deleted = false;
    }

    pub fn first(&mut self) -> Result<Option<Item<'_>>> {
        let key = Cursor::new(&*self.tx, self.bucket)
            .first()?
            .map(|i| i.key.to_vec());
        self.settle(key);
        self.at_current()
    }

    pub fn last(&mut self) -> Result<Option<Item<'_>>> {
        let key = Cursor::new(&*self.tx, self.bucket)
            .last()?
            .map(|i| i.key.to_vec());
        self.settle(key);
        self.at_current()
    }

    pub fn seek(&mut self, key: &[u8]) -> Result<Option<Item<'_>>> {
        let key = Cursor::new(&*self.tx, self.bucket)
            .seek(key)?
            .map(|i| i.key.to_vec());
        self.settle(key);
        self.at_current()
    }

    #[allow(clippy::should_implement_trait)] // fallible, and tied to the cursor's borrow
    pub fn next(&mut self) -> Result<Option<Item<'_>>> {
        let Some(current) = self.current.take() else {
            return Ok(None);
        };
        let key = {
            let mut c = Cursor::new(&*self.tx, self.bucket);
            match c.seek(&current)? {
                Some(i) if !self.deleted && i.key == current.as_slice() => c.next()?,
                other => other,
            }
            .map(|i| i.key.to_vec())
        };
        self.settle(key);
        self.at_current()
    }

    pub fn prev(&mut self) -> Result<Option<Item<'_>>> {
        let Some(current) = self.current.take() else {
            return Ok(None);
        };
        let key = {
            let mut c = Cursor::new(&*self.tx, self.bucket);
            match c.seek(&current)? {
                Some(_) => c.prev()?,
                None => c.last()?,
            }
            .map(|i| i.key.to_vec())
        };
        self.settle(key);
        self.at_current()
    }

    /// Deletes the entry the cursor is on. A sub-bucket cannot be deleted this way.
    pub fn delete(&mut self) -> Result<()> {
        let Some(key) = self.current.clone() else {
            return Ok(());
        };
        if self.deleted {
            return Ok(());
        }
        self.tx.delete(self.bucket, &key)?;
        self.deleted = true;
        Ok(())
    }

    fn at_current(&self) -> Result<Option<Item<'_>>> {
        match &self.current {
            None => Ok(None),
            Some(key) => Cursor::new(&*self.tx, self.bucket).search(key),
        }
    }
}
