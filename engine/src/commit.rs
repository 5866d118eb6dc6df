//! Commit: turning a write transaction's nodes into pages on disk.
//!
//! Order (the crash-safety argument lives in FORMAT.md):
//! 1. rebalance: merge nodes that deletes left under a quarter page full;
//! 2. spill: split nodes by the bucket's fill percent and give every changed node a freshly
//!    allocated page (pages it replaces go to the freelist as pending); sub-buckets first, so
//!    their new roots can be recorded in their parents; small buckets become inline;
//! 3. write the freelist to fresh pages;
//! 4. pwrite every dirty page, fdatasync; then pwrite the meta page (txid % 2), fdatasync.
//!
//! Until step 4's second fdatasync the previous meta is the valid one and none of the pages
//! it reaches has been touched, so a crash leaves either the old or the new state.

use std::os::unix::fs::FileExt;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::layout::*;
use crate::node::{Inode, Node, NodeId};
use crate::page::Mapping;
use crate::wtx::WriteTx;
use crate::BucketId;

/// Most buffers one pwritev takes (Linux's IOV_MAX).
const WRITEV_MAX: usize = 1024;

impl WriteTx {
    /// Writes every change and makes it durable (unless opened with no_sync).
    ///
    /// Panics if fdatasync fails (see `Inner::sync`).
    pub fn commit(mut self) -> Result<()> {
        let result = self.commit_inner();
        if result.is_err() && !self.finished {
            self.finish_rollback();
        }
        result
    }

    fn sync_if_durable(&self) {
        if self.durable {
            self.inner.sync();
        }
    }

    fn commit_inner(&mut self) -> Result<()> {
        if self.inner.is_poisoned() {
            return Err(Error::Poisoned {
                file: self.inner.path.clone(),
            });
        }
        let root = BucketId(0);
        self.rebalance_bucket(root)?;
        self.spill_bucket(root)?;
        {
            let buckets = self.buckets.get_mut();
            self.meta.root_pgid = buckets[0].root_pgid;
            self.meta.sequence = buckets[0].sequence;
        }
        self.write_freelist()?;
        self.write_pages()?;
        // Everything that can fail happens before the meta is written: until then the
        // previous state is intact on disk and a rollback is complete.
        let map = self.mapping_for_new_state()?;
        if self.inner.opts.strict {
            let tx = crate::ReadTx::unregistered(self.inner.clone(), map.clone(), self.meta);
            crate::check::check_tx(&tx)?;
        }
        let meta_page = self.meta.encode_page(self.inner.page_size);
        let meta_at = (self.meta.txid % 2) * self.inner.page_size as u64;
        if let Err(e) = self.inner.file.write_all_at(&meta_page, meta_at) {
            // The meta may be partly on disk: nothing may run against this file any more.
            self.inner.poison();
            return Err(Error::io(&self.inner.path, e));
        }
        self.sync_if_durable();
        self.install(map);
        Ok(())
    }

    /// The mapping the new state needs: the current one, or a larger one if it grew.
    fn mapping_for_new_state(&self) -> Result<Arc<Mapping>> {
        let needed = self.meta.high_water_pgid * self.inner.page_size as u64;
        if needed <= self.map.len() {
            return Ok(self.map.clone());
        }
        let want = needed.max(self.inner.opts.initial_mmap_size);
        let len =
            mmap_size(want, self.inner.page_size as u64).ok_or_else(|| Error::MapTooLarge {
                file: self.inner.path.clone(),
            })?;
        let map = Mapping::new(
            &self.inner.file,
            &self.inner.path,
            len,
            self.inner.page_size,
        )?;
        Ok(Arc::new(map))
    }

    /// Makes the committed state visible to new readers and frees the writer slot. Cannot
    /// fail: the state is already durable.
    fn install(&mut self, map: Arc<Mapping>) {
        {
            let mut shared = self.inner.shared.lock().expect("shared state lock");
            shared.meta = self.meta;
            shared.map = map;
        }
        self.finished = true;
        self.original_freelist = None;
        let freelist = std::mem::take(&mut self.freelist);
        self.inner.end_writer(freelist, self.file_len);
    }

    /// Allocates `count` contiguous pages: from the freelist, else past the high water mark.
    pub(crate) fn allocate(&mut self, count: usize) -> u64 {
        if let Some(id) = self.freelist.allocate(count) {
            return id;
        }
        let id = self.meta.high_water_pgid;
        self.meta.high_water_pgid += count as u64;
        id
    }

    fn page_buffer(&mut self, size: usize) -> (u64, Vec<u8>) {
        let ps = self.inner.page_size;
        let count = size.div_ceil(ps).max(1);
        let id = self.allocate(count);
        let mut buf = vec![0u8; count * ps];
        put_u64(&mut buf, PAGE_ID, id);
        put_u32(&mut buf, PAGE_OVERFLOW, (count - 1) as u32);
        (id, buf)
    }

    fn write_freelist(&mut self) -> Result<()> {
        let old = self.base.freelist_pgid;
        if old != NO_FREELIST {
            let overflow = self.page(old)?.overflow() as u64;
            self.freelist.free(self.meta.txid, old, overflow + 1);
        }
        if self.inner.opts.no_freelist_sync {
            self.meta.freelist_pgid = NO_FREELIST;
            return Ok(());
        }
        // Sized before allocating: allocation only shrinks the list, so this never
        // underestimates (bbolt's rule, including its extra page).
        let ps = self.inner.page_size;
        let size = (self.freelist.size_bytes() / ps + 1) * ps;
        let (id, mut buf) = self.page_buffer(size);
        self.freelist.write_page(&mut buf);
        self.dirty.insert(id, buf);
        self.meta.freelist_pgid = id;
        Ok(())
    }

    /// Grows the file if needed, writes dirty pages (adjacent ones in one pwrite), syncs.
    fn write_pages(&mut self) -> Result<()> {
        let ps = self.inner.page_size as u64;
        let needed = self.meta.high_water_pgid * ps;
        if needed > self.file_len {
            const STEP: u64 = 16 << 20;
            let new_len = if needed < STEP {
                needed.next_power_of_two().max(32 << 10)
            } else {
                needed.div_ceil(STEP) * STEP
            };
            self.inner
                .file
                .set_len(new_len)
                .map_err(|e| Error::io(&self.inner.path, e))?;
            self.file_len = new_len;
        }
        let dirty = std::mem::take(&mut self.dirty);
        let mut run: Vec<&[u8]> = Vec::new();
        let (mut run_start, mut run_end) = (0u64, 0u64);
        for (&id, buf) in &dirty {
            let at = id * ps;
            if !run.is_empty() && (at != run_end || run.len() == WRITEV_MAX) {
                self.pwritev(&run, run_start)?;
                run.clear();
            }
            if run.is_empty() {
                run_start = at;
            }
            run.push(buf);
            run_end = at + buf.len() as u64;
        }
        if !run.is_empty() {
            self.pwritev(&run, run_start)?;
        }
        self.sync_if_durable();
        Ok(())
    }

    /// Writes adjacent page buffers starting at `offset` with as few syscalls as possible,
    /// finishing any short write piece by piece.
    fn pwritev(&self, bufs: &[&[u8]], offset: u64) -> Result<()> {
        let io_err = |e| Error::io(&self.inner.path, e);
        let slices: Vec<std::io::IoSlice<'_>> =
            bufs.iter().map(|b| std::io::IoSlice::new(b)).collect();
        let mut done =
            rustix::io::pwritev(&self.inner.file, &slices, offset).map_err(|e| io_err(e.into()))?;
        let mut at = offset;
        for buf in bufs {
            let len = buf.len();
            if done >= len {
                done -= len;
            } else {
                self.inner
                    .file
                    .write_all_at(&buf[done..], at + done as u64)
                    .map_err(io_err)?;
                done = 0;
            }
            at += len as u64;
        }
        Ok(())
    }

    fn damaged(&self, what: &str) -> Error {
        let what = crate::error::Corruption::BadPage(what.to_string());
        Error::Corrupted {
            file: self.inner.path.clone(),
            offset: 0,
            what,
        }
    }

    // ---- rebalance -------------------------------------------------------------------

    fn rebalance_bucket(&mut self, b: BucketId) -> Result<()> {
        let (mut ids, children): (Vec<NodeId>, Vec<BucketId>) = {
            let wb = &self.buckets.get_mut()[b.0 as usize];
            let mut ids: Vec<NodeId> = wb.nodes.values().copied().collect();
            ids.extend(wb.root_node);
            (ids, wb.children.values().copied().collect())
        };
        ids.sort_unstable();
        ids.dedup();
        for n in ids {
            if self.nodes[n].alive {
                self.rebalance_node(b, n)?;
            }
        }
        for child in children {
            if !self.buckets.get_mut()[child.0 as usize].deleted {
                self.rebalance_bucket(child)?;
            }
        }
        Ok(())
    }

    fn rebalance_node(&mut self, b: BucketId, n: NodeId) -> Result<()> {
        if !self.nodes[n].unbalanced {
            return Ok(());
        }
        self.nodes[n].unbalanced = false;
        let threshold = self.inner.page_size / 4;
        let node = &self.nodes[n];
        if node.size() > threshold && node.inodes.len() > node.min_keys() {
            return Ok(());
        }
        let Some(parent) = node.parent else {
            return self.collapse_root(b, n);
        };
        if node.inodes.is_empty() {
            let key = node.key.clone();
            self.nodes[parent].del(&key);
            self.remove_child(parent, n);
            self.forget_node(b, n);
            return self.rebalance_node(b, parent);
        }
        if self.nodes[parent].inodes.len() < 2 {
            // A branch written by bbolt's rules always has two or more children, so this
            // tree came from a damaged file.
            return Err(self.damaged("a branch page with a single child"));
        }
        let index = self.child_index(parent, n);
        if index == 0 {
            // Merge the right sibling into this node.
            let target = self.child_at(b, parent, index + 1)?;
            self.reparent_children(b, target, n);
            let moved = std::mem::take(&mut self.nodes[target].inodes);
            self.nodes[n].inodes.extend(moved);
            let key = self.nodes[target].key.clone();
            self.nodes[parent].del(&key);
            self.remove_child(parent, target);
            self.forget_node(b, target);
        } else {
            // Merge this node into its left sibling.
            let target = self.child_at(b, parent, index - 1)?;
            self.reparent_children(b, n, target);
            let moved = std::mem::take(&mut self.nodes[n].inodes);
            self.nodes[target].inodes.extend(moved);
            let key = self.nodes[n].key.clone();
            self.nodes[parent].del(&key);
            self.remove_child(parent, n);
            self.forget_node(b, n);
        }
        self.rebalance_node(b, parent)
    }

    /// A root branch with a single child takes the child's place.
    fn collapse_root(&mut self, b: BucketId, n: NodeId) -> Result<()> {
        if self.nodes[n].is_leaf || self.nodes[n].inodes.len() != 1 {
            return Ok(());
        }
        let child = self.child_at(b, n, 0)?;
        let inodes = std::mem::take(&mut self.nodes[child].inodes);
        let grandchildren = std::mem::take(&mut self.nodes[child].children);
        let is_leaf = self.nodes[child].is_leaf;
        {
            let root = &mut self.nodes[n];
            root.is_leaf = is_leaf;
            root.inodes = inodes;
            root.children = grandchildren;
        }
        let pgids: Vec<u64> = self.nodes[n].inodes.iter().map(|i| i.pgid).collect();
        for pgid in pgids {
            if let Some(&g) = self.buckets.get_mut()[b.0 as usize].nodes.get(&pgid) {
                self.nodes[g].parent = Some(n);
            }
        }
        self.nodes[child].parent = None;
        self.forget_node(b, child);
        Ok(())
    }

    /// Moves the materialised children of `from`'s inodes under `to`.
    fn reparent_children(&mut self, b: BucketId, from: NodeId, to: NodeId) {
        let pgids: Vec<u64> = self.nodes[from].inodes.iter().map(|i| i.pgid).collect();
        for pgid in pgids {
            let Some(&child) = self.buckets.get_mut()[b.0 as usize].nodes.get(&pgid) else {
                continue;
            };
            if let Some(old) = self.nodes[child].parent {
                self.remove_child(old, child);
            }
            self.nodes[child].parent = Some(to);
            self.nodes[to].children.push(child);
        }
    }

    fn remove_child(&mut self, parent: NodeId, child: NodeId) {
        self.nodes[parent].children.retain(|&c| c != child);
    }

    /// Drops a merged-away node: frees its page and removes it from the bucket's cache.
    fn forget_node(&mut self, b: BucketId, n: NodeId) {
        let pgid = self.nodes[n].pgid;
        self.buckets.get_mut()[b.0 as usize].nodes.remove(&pgid);
        self.free_node(n);
        self.nodes[n].alive = false;
    }

    fn child_index(&self, parent: NodeId, child: NodeId) -> usize {
        self.nodes[parent].search(&self.nodes[child].key).0
    }

    // ---- spill -----------------------------------------------------------------------

    fn spill_bucket(&mut self, b: BucketId) -> Result<()> {
        let children: Vec<(Vec<u8>, BucketId)> = self.buckets.get_mut()[b.0 as usize]
            .children
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        for (name, child) in children {
            if self.buckets.get_mut()[child.0 as usize].deleted {
                continue;
            }
            let value = if self.inlineable(child) {
                self.free_bucket_pages(child)?;
                self.inline_value(child)
            } else {
                self.spill_bucket(child)?;
                let wb = &self.buckets.get_mut()[child.0 as usize];
                let mut header = vec![0u8; BUCKET_HEADER_SIZE];
                put_u64(&mut header, BUCKET_ROOT, wb.root_pgid);
                put_u64(&mut header, BUCKET_SEQUENCE, wb.sequence);
                header
            };
            if self.buckets.get_mut()[child.0 as usize].root_node.is_none() {
                continue;
            }
            let (path, found) = self.locate(b, &name)?;
            if !found.is_some_and(|i| i.is_bucket) {
                // It was found by name earlier in this transaction; only a parent whose keys
                // are out of order (a damaged file) hides it now.
                return Err(self.damaged("a sub-bucket cannot be found again in its parent"));
            }
            let leaf = self.leaf_for_path(b, path.levels())?;
            self.nodes[leaf].put(&name, &name, &value, 0, BUCKET_LEAF_FLAG);
        }
        let Some(root) = self.buckets.get_mut()[b.0 as usize].root_node else {
            return Ok(());
        };
        self.spill_node(b, root)?;
        let mut top = root;
        while let Some(p) = self.nodes[top].parent {
            top = p;
        }
        let wb = &mut self.buckets.get_mut()[b.0 as usize];
        wb.root_node = Some(top);
        wb.root_pgid = self.nodes[top].pgid;
        Ok(())
    }

    /// bbolt's rule: a bucket whose root is one small leaf with no sub-buckets is stored
    /// inside its parent's value.
    fn inlineable(&mut self, b: BucketId) -> bool {
        let Some(root) = self.buckets.get_mut()[b.0 as usize].root_node else {
            return false;
        };
        let node = &self.nodes[root];
        if !node.is_leaf {
            return false;
        }
        let max = self.inner.page_size / 4;
        let mut size = PAGE_HEADER_SIZE;
        for inode in &node.inodes {
            size += LEAF_ELEMENT_SIZE + inode.key.len() + inode.value.len();
            if inode.flags & BUCKET_LEAF_FLAG != 0 || size > max {
                return false;
            }
        }
        true
    }

    fn inline_value(&mut self, b: BucketId) -> Vec<u8> {
        let wb = &self.buckets.get_mut()[b.0 as usize];
        let node = &self.nodes[wb.root_node.expect("inlineable buckets have a root node")];
        let mut value = vec![0u8; BUCKET_HEADER_SIZE + node.size()];
        put_u64(&mut value, BUCKET_ROOT, 0);
        put_u64(&mut value, BUCKET_SEQUENCE, wb.sequence);
        node.write(&mut value[BUCKET_HEADER_SIZE..]);
        value
    }

    fn spill_node(&mut self, b: BucketId, n: NodeId) -> Result<()> {
        if self.nodes[n].spilled {
            return Ok(());
        }
        let mut children = std::mem::take(&mut self.nodes[n].children);
        children.sort_by(|&x, &y| {
            let kx = self.nodes[x].inodes.first().map(|i| i.key.as_slice());
            let ky = self.nodes[y].inodes.first().map(|i| i.key.as_slice());
            kx.cmp(&ky)
        });
        self.nodes[n].children = children;
        // Spilling a child may add siblings (splits), so re-read the length each time.
        let mut i = 0;
        while i < self.nodes[n].children.len() {
            let child = self.nodes[n].children[i];
            self.spill_node(b, child)?;
            i += 1;
        }
        self.nodes[n].children.clear();
        for part in self.split(b, n) {
            self.free_node(part);
            let size = self.nodes[part].size();
            if size > u32::MAX as usize {
                // Element positions are u32: a page this large cannot be encoded.
                return Err(Error::ValueTooLarge);
            }
            let (id, mut buf) = self.page_buffer(size);
            self.nodes[part].write(&mut buf);
            self.dirty.insert(id, buf);
            let node = &mut self.nodes[part];
            node.pgid = id;
            node.spilled = true;
            if let Some(parent) = node.parent {
                let first = node
                    .inodes
                    .first()
                    .map(|i| i.key.clone())
                    .unwrap_or_default();
                let key = if node.key.is_empty() {
                    first.clone()
                } else {
                    node.key.clone()
                };
                node.key = first.clone();
                if first.is_empty() {
                    return Err(self.damaged("an empty page below a branch"));
                }
                self.nodes[parent].put(&key, &first, &[], id, 0);
            }
        }
        // A split root made a new parent: spill it too.
        if let Some(parent) = self.nodes[n].parent {
            if self.nodes[parent].pgid == 0 && !self.nodes[parent].spilled {
                self.nodes[n].children.clear();
                return self.spill_node(b, parent);
            }
        }
        Ok(())
    }

    /// Splits node `n` into page-sized nodes (n first), creating a parent if n was a root.
    /// The cut points follow bbolt's rule piece by piece; the inodes are moved once.
    fn split(&mut self, b: BucketId, n: NodeId) -> Vec<NodeId> {
        let ps = self.inner.page_size;
        if !Node::needs_split(&self.nodes[n].inodes, ps) {
            return vec![n];
        }
        let fill = self.buckets.get_mut()[b.0 as usize]
            .fill_percent
            .clamp(MIN_FILL_PERCENT, MAX_FILL_PERCENT);
        let threshold = (ps as f64 * fill) as usize;
        let mut cuts = Vec::new();
        let mut start = 0;
        {
            let inodes = &self.nodes[n].inodes;
            while Node::needs_split(&inodes[start..], ps) {
                start += Node::split_index(&inodes[start..], threshold);
                cuts.push(start);
            }
        }
        let parent = match self.nodes[n].parent {
            Some(p) => p,
            None => {
                let p = self.nodes.len();
                self.nodes.push(Node {
                    alive: true,
                    children: vec![n],
                    ..Node::default()
                });
                self.nodes[n].parent = Some(p);
                p
            }
        };
        let is_leaf = self.nodes[n].is_leaf;
        let mut rest = std::mem::take(&mut self.nodes[n].inodes).into_iter();
        let mut parts = vec![n];
        let mut taken = 0;
        for (i, &cut) in cuts.iter().enumerate() {
            let piece: Vec<_> = rest.by_ref().take(cut - taken).collect();
            taken = cut;
            if i == 0 {
                self.nodes[n].inodes = piece;
                continue;
            }
            parts.push(self.push_part(is_leaf, parent, piece));
        }
        let last: Vec<_> = rest.collect();
        parts.push(self.push_part(is_leaf, parent, last));
        parts
    }

    fn push_part(&mut self, is_leaf: bool, parent: NodeId, inodes: Vec<Inode>) -> NodeId {
        let id = self.nodes.len();
        self.nodes.push(Node {
            is_leaf,
            alive: true,
            parent: Some(parent),
            inodes,
            ..Node::default()
        });
        self.nodes[parent].children.push(id);
        id
    }
}
