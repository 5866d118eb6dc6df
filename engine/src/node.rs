//! In-memory nodes: the writable form of a branch or leaf page inside a write transaction.
//!
//! A write transaction copies a page into a [`Node`] the first time it changes anything on
//! the page's path (copy-on-write); untouched pages stay in the map. At commit nodes are
//! rebalanced, split by bbolt's rule and written to newly allocated pages. Nodes live in an
//! arena owned by the transaction and refer to each other by [`NodeId`].

use crate::error::Result;
use crate::layout::*;
use crate::page::PageView;

pub(crate) type NodeId = usize;

#[derive(Clone, Debug, Default)]
pub(crate) struct Inode {
    pub(crate) flags: u32,
    pub(crate) key: Vec<u8>,
    /// Leaf value (empty for branch inodes).
    pub(crate) value: Vec<u8>,
    /// Child page of a branch inode (0 for leaf inodes).
    pub(crate) pgid: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Node {
    pub(crate) is_leaf: bool,
    pub(crate) unbalanced: bool,
    pub(crate) spilled: bool,
    /// False once merged away or freed: the arena slot is dead.
    pub(crate) alive: bool,
    /// The page this node was read from (0 for a node created in this transaction).
    pub(crate) pgid: u64,
    /// Overflow count of the page it was read from, so freeing it frees every page.
    pub(crate) overflow: u32,
    /// The key under which the parent refers to this node (its first key when read).
    pub(crate) key: Vec<u8>,
    pub(crate) parent: Option<NodeId>,
    /// Materialised children, for spilling.
    pub(crate) children: Vec<NodeId>,
    pub(crate) inodes: Vec<Inode>,
}

impl Node {
    /// Copies a page into a node.
    pub(crate) fn read(page: &PageView<'_>, pgid: u64, parent: Option<NodeId>) -> Result<Node> {
        let is_leaf = page.is_leaf();
        let count = page.count();
        let mut inodes = Vec::with_capacity(count);
        for i in 0..count {
            if is_leaf {
                let (flags, key, value) = page.leaf(i)?;
                inodes.push(Inode {
                    flags,
                    key: key.to_vec(),
                    value: value.to_vec(),
                    pgid: 0,
                });
            } else {
                let (key, child) = page.branch(i)?;
                inodes.push(Inode {
                    flags: 0,
                    key: key.to_vec(),
                    value: Vec::new(),
                    pgid: child,
                });
            }
        }
        // Node operations rely on non-empty, strictly ascending keys; a page breaking that
        // came from a damaged file and must not reach them.
        if !is_leaf && inodes.is_empty() {
            return Err(page.bad("branch page without elements"));
        }
        if inodes.iter().any(|i| i.key.is_empty()) {
            return Err(page.bad("page holds an empty key"));
        }
        if inodes
            .windows(2)
            .any(|w| cmp_keys(&w[0].key, &w[1].key) != std::cmp::Ordering::Less)
        {
            return Err(page.bad("page keys are out of order"));
        }
        let key = inodes.first().map(|i| i.key.clone()).unwrap_or_default();
        Ok(Node {
            is_leaf,
            alive: true,
            pgid,
            overflow: if pgid == 0 { 0 } else { page.overflow() },
            key,
            parent,
            inodes,
            ..Node::default()
        })
    }

    pub(crate) fn min_keys(&self) -> usize {
        if self.is_leaf {
            1
        } else {
            2
        }
    }

    fn element_size(inode: &Inode) -> usize {
        LEAF_ELEMENT_SIZE + inode.key.len() + inode.value.len()
    }

    /// Bytes this node occupies when written as a page.
    pub(crate) fn size(&self) -> usize {
        PAGE_HEADER_SIZE + self.inodes.iter().map(Self::element_size).sum::<usize>()
    }

    /// Whether `inodes` fit in fewer than `limit` bytes as a page (stops counting early).
    pub(crate) fn size_less_than(inodes: &[Inode], limit: usize) -> bool {
        let mut sz = PAGE_HEADER_SIZE;
        for inode in inodes {
            sz += Self::element_size(inode);
            if sz >= limit {
                return false;
            }
        }
        true
    }

    /// Index of the first inode whose key is >= `key`, and whether it matches exactly.
    pub(crate) fn search(&self, key: &[u8]) -> (usize, bool) {
        // Appends (etcd's revision keys) land past the last key: check it first.
        if let Some(last) = self.inodes.last() {
            if cmp_keys(&last.key, key) == std::cmp::Ordering::Less {
                return (self.inodes.len(), false);
            }
        }
        match self.inodes.binary_search_by(|i| cmp_keys(&i.key, key)) {
            Ok(i) => (i, true),
            Err(i) => (i, false),
        }
    }

    /// Inserts or replaces the inode keyed `old_key` (bbolt's node.put).
    pub(crate) fn put(
        &mut self,
        old_key: &[u8],
        new_key: &[u8],
        value: &[u8],
        pgid: u64,
        flags: u32,
    ) {
        assert!(!old_key.is_empty() && !new_key.is_empty(), "put: empty key");
        let (index, exact) = self.search(old_key);
        let inode = Inode {
            flags,
            key: new_key.to_vec(),
            value: value.to_vec(),
            pgid,
        };
        if exact {
            self.inodes[index] = inode;
        } else {
            self.inodes.insert(index, inode);
        }
    }

    /// Inserts (or, if `exact`, replaces) a leaf inode at `index`, which a search of this
    /// node for `key` returned.
    pub(crate) fn put_at(
        &mut self,
        index: usize,
        exact: bool,
        key: &[u8],
        value: &[u8],
        flags: u32,
    ) {
        debug_assert_eq!(self.search(key), (index, exact));
        let inode = Inode {
            flags,
            key: key.to_vec(),
            value: value.to_vec(),
            pgid: 0,
        };
        if exact {
            self.inodes[index] = inode;
        } else {
            self.inodes.insert(index, inode);
        }
    }

    /// Removes the inode keyed `key`, if present, and marks the node for rebalancing.
    pub(crate) fn del(&mut self, key: &[u8]) {
        if let (index, true) = self.search(key) {
            self.inodes.remove(index);
            self.unbalanced = true;
        }
    }

    /// bbolt's split point: fill the first page up to `threshold` bytes, keeping at least
    /// MIN_KEYS_PER_PAGE inodes on each side.
    pub(crate) fn split_index(inodes: &[Inode], threshold: usize) -> usize {
        let mut sz = PAGE_HEADER_SIZE;
        let mut index = 0;
        let limit = inodes.len().saturating_sub(MIN_KEYS_PER_PAGE);
        for (i, inode) in inodes.iter().enumerate().take(limit) {
            index = i;
            let elsize = Self::element_size(inode);
            if i >= MIN_KEYS_PER_PAGE && sz + elsize > threshold {
                break;
            }
            sz += elsize;
        }
        index
    }

    /// Whether a split is warranted at all (bbolt's splitTwo guard).
    pub(crate) fn needs_split(inodes: &[Inode], page_size: usize) -> bool {
        inodes.len() > MIN_KEYS_PER_PAGE * 2 && !Self::size_less_than(inodes, page_size)
    }

    /// Writes the node into `page` (zeroed, sized by the caller; id and overflow set by the
    /// caller for real pages, left 0 for inline pages).
    pub(crate) fn write(&self, page: &mut [u8]) {
        let flags = if self.is_leaf { LEAF_PAGE } else { BRANCH_PAGE };
        put_u16(page, PAGE_FLAGS, flags);
        assert!(
            self.inodes.len() < 0xFFFF,
            "node has too many elements for a page"
        );
        put_u16(page, PAGE_COUNT, self.inodes.len() as u16);
        let mut data_at = PAGE_HEADER_SIZE + self.inodes.len() * LEAF_ELEMENT_SIZE;
        for (i, inode) in self.inodes.iter().enumerate() {
            let elem_at = PAGE_HEADER_SIZE + i * LEAF_ELEMENT_SIZE;
            let pos = (data_at - elem_at) as u32;
            if self.is_leaf {
                put_u32(page, elem_at + LEAF_FLAGS, inode.flags);
                put_u32(page, elem_at + LEAF_POS, pos);
                put_u32(page, elem_at + LEAF_KSIZE, inode.key.len() as u32);
                put_u32(page, elem_at + LEAF_VSIZE, inode.value.len() as u32);
            } else {
                put_u32(page, elem_at + BRANCH_POS, pos);
                put_u32(page, elem_at + BRANCH_KSIZE, inode.key.len() as u32);
                put_u64(page, elem_at + BRANCH_PGID, inode.pgid);
            }
            page[data_at..data_at + inode.key.len()].copy_from_slice(&inode.key);
            data_at += inode.key.len();
            page[data_at..data_at + inode.value.len()].copy_from_slice(&inode.value);
            data_at += inode.value.len();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn leaf(keys: &[&[u8]], vlen: usize) -> Node {
        let mut n = Node {
            is_leaf: true,
            alive: true,
            ..Node::default()
        };
        for k in keys {
            n.put(k, k, &vec![7u8; vlen], 0, 0);
        }
        n
    }

    #[test]
    fn written_page_reads_back_identically() {
        // Proves node.write and PageView agree on the element layout.
        let n = leaf(&[b"a", b"bb", b"ccc"], 5);
        let mut page = vec![0u8; 4096];
        n.write(&mut page);
        let view = PageView::new(&page, 0, Path::new("mem")).unwrap();
        let back = Node::read(&view, 0, None).unwrap();
        assert_eq!(back.inodes.len(), 3);
        for (a, b) in back.inodes.iter().zip(&n.inodes) {
            assert_eq!((&a.key, &a.value, a.flags), (&b.key, &b.value, b.flags));
        }
        assert_eq!(view.search(b"bb").unwrap(), (1, true));
        assert_eq!(view.search(b"b").unwrap(), (1, false));
    }

    #[test]
    fn split_index_keeps_min_keys_and_respects_threshold() {
        // Proves the split rule: first page filled to the threshold, both sides >= 2 keys.
        let keys: Vec<Vec<u8>> = (0..100u32).map(|i| i.to_be_bytes().to_vec()).collect();
        let refs: Vec<&[u8]> = keys.iter().map(|k| k.as_slice()).collect();
        let n = leaf(&refs, 100);
        // element = 16 + 4 + 100 = 120 bytes; half a 4 KiB page holds (2048-16)/120 = 16.
        assert_eq!(Node::split_index(&n.inodes, 2048), 16);
        // 90% fill: (3686-16)/120 = 30.
        assert_eq!(Node::split_index(&n.inodes, (4096.0 * 0.9) as usize), 30);
        let small = leaf(&refs[..3], 3000);
        assert!(!Node::needs_split(&small.inodes, 4096));
    }
}
