//! Introspection for tools: bbolt's bucket statistics and per-page information.

use std::collections::HashSet;

use crate::cursor::{NodeRef, TreeSource, MAX_TREE_DEPTH};
use crate::error::Result;
use crate::layout::*;
use crate::{BucketId, ReadTx, TxRead};

/// bbolt's Bucket.Stats, summed over a bucket and all its sub-buckets.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BucketStats {
    pub branch_page_n: u64,
    pub branch_overflow_n: u64,
    pub leaf_page_n: u64,
    pub leaf_overflow_n: u64,
    pub key_n: u64,
    pub depth: u64,
    pub branch_alloc: u64,
    pub branch_inuse: u64,
    pub leaf_alloc: u64,
    pub leaf_inuse: u64,
    pub bucket_n: u64,
    pub inline_bucket_n: u64,
    pub inline_bucket_inuse: u64,
}

impl BucketStats {
    pub fn add(&mut self, o: &BucketStats) {
        self.branch_page_n += o.branch_page_n;
        self.branch_overflow_n += o.branch_overflow_n;
        self.leaf_page_n += o.leaf_page_n;
        self.leaf_overflow_n += o.leaf_overflow_n;
        self.key_n += o.key_n;
        self.depth = self.depth.max(o.depth);
        self.branch_alloc += o.branch_alloc;
        self.branch_inuse += o.branch_inuse;
        self.leaf_alloc += o.leaf_alloc;
        self.leaf_inuse += o.leaf_inuse;
        self.bucket_n += o.bucket_n;
        self.inline_bucket_n += o.inline_bucket_n;
        self.inline_bucket_inuse += o.inline_bucket_inuse;
    }
}

fn used_bytes(n: &NodeRef<'_>) -> Result<u64> {
    let mut used = PAGE_HEADER_SIZE as u64;
    for i in 0..n.count() {
        used += LEAF_ELEMENT_SIZE as u64;
        if n.is_leaf() {
            let item = n.item(i)?;
            used += (item.key.len() + item.value.len()) as u64;
        } else if let NodeRef::Page(p) = n {
            used += p.branch(i)?.0.len() as u64;
        } else if let NodeRef::Node(node) = n {
            used += node.inodes[i].key.len() as u64;
        }
    }
    Ok(used)
}

fn overflow_of(n: &NodeRef<'_>) -> u64 {
    match n {
        NodeRef::Page(p) => p.overflow() as u64,
        NodeRef::Node(_) => 0,
    }
}

#[allow(clippy::too_many_arguments)]
fn walk<T: TreeSource + TxRead>(
    tx: &T,
    seen: &mut HashSet<u64>,
    b: BucketId,
    n: NodeRef<'_>,
    depth: u64,
    inline: bool,
    s: &mut BucketStats,
    sub: &mut BucketStats,
) -> Result<()> {
    if depth as usize > MAX_TREE_DEPTH {
        return Err(crate::cursor::too_deep(tx.file_path()));
    }
    if let NodeRef::Page(p) = n {
        if !inline && !seen.insert(p.id()) {
            let what = crate::Corruption::BadPage(format!("page {} is reached twice", p.id()));
            let file = tx.file_path().to_path_buf();
            return Err(crate::Error::Corrupted {
                file,
                offset: p.offset,
                what,
            });
        }
    }
    s.depth = s.depth.max(depth + 1);
    let used = used_bytes(&n)?;
    let ps = tx.page_size();
    if n.is_leaf() {
        // bbolt counts every leaf element as a key, sub-bucket entries included.
        s.key_n += n.count() as u64;
        if inline {
            s.inline_bucket_inuse += used;
            return Ok(());
        }
        s.leaf_page_n += 1;
        s.leaf_overflow_n += overflow_of(&n);
        s.leaf_alloc += (overflow_of(&n) + 1) * ps;
        s.leaf_inuse += used;
        for i in 0..n.count() {
            let item = n.item(i)?;
            if item.is_bucket {
                if let Some(child) = tx.bucket(b, item.key)? {
                    sub.add(&stats_at(tx, seen, child)?);
                }
            }
        }
        return Ok(());
    }
    s.branch_page_n += 1;
    s.branch_overflow_n += overflow_of(&n);
    s.branch_alloc += (overflow_of(&n) + 1) * ps;
    s.branch_inuse += used;
    for i in 0..n.count() {
        let child = tx.child_ref(b, n.child(i)?)?;
        walk(tx, seen, b, child, depth + 1, false, s, sub)?;
    }
    Ok(())
}

pub(crate) fn bucket_stats<T: TreeSource + TxRead>(tx: &T, b: BucketId) -> Result<BucketStats> {
    stats_at(tx, &mut HashSet::new(), b)
}

/// Stats of one bucket; `seen` holds every page visited so far, so a damaged file whose
/// trees share or loop through pages gives an error instead of endless recursion.
fn stats_at<T: TreeSource + TxRead>(
    tx: &T,
    seen: &mut HashSet<u64>,
    b: BucketId,
) -> Result<BucketStats> {
    let root = tx.root_ref(b)?;
    let inline = tx.is_inline(b);
    let mut s = BucketStats {
        bucket_n: 1,
        ..BucketStats::default()
    };
    if inline {
        s.inline_bucket_n = 1;
    }
    let mut sub = BucketStats::default();
    walk(tx, seen, b, root, 0, inline, &mut s, &mut sub)?;
    // As bbolt: nesting adds the deepest sub-bucket's depth, then sub-bucket totals are added.
    s.depth += sub.depth;
    s.add(&sub);
    Ok(s)
}

/// What a page is, as bbolt's Tx.Page reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PageInfo {
    pub id: u64,
    pub kind: PageKind,
    pub count: u64,
    pub overflow: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageKind {
    Meta,
    Freelist,
    Branch,
    Leaf,
    Free,
    Unknown(u16),
}

impl std::fmt::Display for PageKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PageKind::Meta => f.write_str("meta"),
            PageKind::Freelist => f.write_str("freelist"),
            PageKind::Branch => f.write_str("branch"),
            PageKind::Leaf => f.write_str("leaf"),
            PageKind::Free => f.write_str("free"),
            PageKind::Unknown(flags) => write!(f, "unknown<{flags:02x}>"),
        }
    }
}

pub(crate) fn page_info(tx: &ReadTx, id: u64) -> Result<Option<PageInfo>> {
    let meta = tx.meta();
    if id >= meta.high_water_pgid {
        return Ok(None);
    }
    let ps = meta.page_size as usize;
    let start = id as usize * ps;
    let header = tx.map.range(start, start + PAGE_HEADER_SIZE);
    let flags = get_u16(header, PAGE_FLAGS);
    let mut count = get_u16(header, PAGE_COUNT) as u64;
    let overflow = get_u32(header, PAGE_OVERFLOW);
    let free = tx.free_ids_sorted()?;
    let kind = if free.binary_search(&id).is_ok() {
        PageKind::Free
    } else {
        match flags {
            BRANCH_PAGE => PageKind::Branch,
            LEAF_PAGE => PageKind::Leaf,
            META_PAGE => PageKind::Meta,
            FREELIST_PAGE => PageKind::Freelist,
            other => PageKind::Unknown(other),
        }
    };
    if kind == PageKind::Freelist && count == FREELIST_COUNT_OVERFLOW as u64 {
        let page = tx.raw_page(id)?;
        count = get_u64(page, PAGE_HEADER_SIZE);
    }
    Ok(Some(PageInfo {
        id,
        kind,
        count,
        overflow,
    }))
}
