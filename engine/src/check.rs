//! The consistency check: every page below the high water mark is reachable exactly once
//! (metas, freelist, bucket trees) or free, never both; tree pages are well formed, their
//! keys strictly ordered and within the range their parent assigns them.

use crate::cursor::MAX_TREE_DEPTH;
use crate::error::{Error, Result};
use crate::layout::*;
use crate::meta::Meta;
use crate::page::{Mapping, PageView};
use crate::ReadTx;

const UNSEEN: u8 = 0;
const REACHABLE: u8 = 1;
const FREE: u8 = 2;

struct Walk<'a> {
    map: &'a Mapping,
    meta: &'a Meta,
    marks: Vec<u8>,
    problems: Vec<String>,
}

impl<'a> Walk<'a> {
    fn new(map: &'a Mapping, meta: &'a Meta) -> Walk<'a> {
        let mut marks = vec![UNSEEN; meta.high_water_pgid as usize];
        marks[0] = REACHABLE;
        marks[1] = REACHABLE;
        Walk {
            map,
            meta,
            marks,
            problems: Vec::new(),
        }
    }

    /// Marks pages reachable; returns false if any was already reachable (then the caller
    /// must not descend again: a page reached twice may be a cycle).
    fn mark(&mut self, first: u64, count: u64) -> bool {
        let mut fresh = true;
        for id in first..first.saturating_add(count) {
            match self.marks.get(id as usize).copied() {
                None => {
                    self.problems.push(format!("page {id}: out of bounds"));
                    return false;
                }
                Some(REACHABLE) => {
                    self.problems
                        .push(format!("page {id}: multiple references"));
                    fresh = false;
                }
                Some(FREE) => self.problems.push(format!("page {id}: reachable freed")),
                Some(_) => self.marks[id as usize] = REACHABLE,
            }
        }
        fresh
    }

    /// Walks a bucket tree rooted at `pgid` (or the inline page `inline`).
    fn bucket(&mut self, pgid: u64, inline: Option<PageView<'a>>, depth: usize) {
        if let Some(page) = inline {
            if page.flags() & LEAF_PAGE == 0 {
                self.problems.push(format!(
                    "inline bucket near offset {}: not a leaf",
                    page.offset
                ));
                return;
            }
            self.tree_page(page, None, None, depth, true);
            return;
        }
        self.tree(pgid, None, None, depth);
    }

    fn tree(&mut self, pgid: u64, lo: Option<&'a [u8]>, hi: Option<&'a [u8]>, depth: usize) {
        if depth > MAX_TREE_DEPTH {
            self.problems
                .push(format!("page {pgid}: tree deeper than {MAX_TREE_DEPTH}"));
            return;
        }
        let page = match self.map.page(pgid, self.meta.high_water_pgid) {
            Ok(p) => p,
            Err(e) => return self.problems.push(format!("page {pgid}: {e}")),
        };
        if let Err(e) = page.expect_tree_page(pgid) {
            return self.problems.push(e.to_string());
        }
        if self.mark(pgid, page.overflow() as u64 + 1) {
            self.tree_page(page, lo, hi, depth, false);
        }
    }

    fn tree_page(
        &mut self,
        page: PageView<'a>,
        lo: Option<&'a [u8]>,
        hi: Option<&'a [u8]>,
        depth: usize,
        inline: bool,
    ) {
        let at = page.offset;
        let mut keys: Vec<&'a [u8]> = Vec::with_capacity(page.count());
        for i in 0..page.count() {
            match page.key(i) {
                Ok(k) => keys.push(k),
                Err(e) => return self.problems.push(e.to_string()),
            }
        }
        for w in keys.windows(2) {
            if w[0] >= w[1] {
                self.problems
                    .push(format!("page at offset {at}: keys out of order"));
                return;
            }
        }
        if let (Some(lo), Some(first)) = (lo, keys.first()) {
            if *first < lo {
                self.problems
                    .push(format!("page at offset {at}: key below its parent's range"));
            }
        }
        if let (Some(hi), Some(last)) = (hi, keys.last()) {
            if *last >= hi {
                self.problems
                    .push(format!("page at offset {at}: key above its parent's range"));
            }
        }
        if !page.is_leaf() {
            for i in 0..page.count() {
                let Ok((key, child)) = page.branch(i) else {
                    continue;
                };
                let next = keys.get(i + 1).copied().or(hi);
                self.tree(child, Some(key), next, depth + 1);
            }
            return;
        }
        for i in 0..page.count() {
            let Ok((flags, _key, value)) = page.leaf(i) else {
                continue;
            };
            if flags & BUCKET_LEAF_FLAG == 0 {
                continue;
            }
            if inline {
                self.problems
                    .push(format!("inline bucket at offset {at}: holds a sub-bucket"));
                continue;
            }
            if value.len() < BUCKET_HEADER_SIZE {
                self.problems
                    .push(format!("page at offset {at}: bucket value too short"));
                continue;
            }
            let root = get_u64(value, BUCKET_ROOT);
            if root == 0 {
                match PageView::new(&value[BUCKET_HEADER_SIZE..], at, &self.map.path) {
                    Ok(p) => self.bucket(0, Some(p), depth + 1),
                    Err(e) => self.problems.push(e.to_string()),
                }
            } else {
                self.bucket(root, None, depth + 1);
            }
        }
    }
}

/// Checks one snapshot; `Err(Error::Check)` lists every problem found.
pub(crate) fn check_tx(tx: &ReadTx) -> Result<()> {
    let meta = tx.meta();
    let mut walk = Walk::new(&tx.map, &meta);
    let free = match tx.free_page_ids() {
        Ok(ids) => ids,
        Err(e) => {
            walk.problems.push(e.to_string());
            Vec::new()
        }
    };
    if meta.freelist_pgid != NO_FREELIST {
        match tx.page(meta.freelist_pgid) {
            Ok(p) => {
                walk.mark(meta.freelist_pgid, p.overflow() as u64 + 1);
            }
            Err(e) => walk.problems.push(e.to_string()),
        }
    }
    for id in free {
        match walk.marks.get(id as usize).copied() {
            Some(FREE) => walk.problems.push(format!("page {id}: already freed")),
            Some(REACHABLE) => walk.problems.push(format!("page {id}: reachable freed")),
            Some(_) => walk.marks[id as usize] = FREE,
            None => walk
                .problems
                .push(format!("page {id}: freed beyond the high water mark")),
        }
    }
    walk.bucket(meta.root_pgid, None, 0);
    for (id, mark) in walk.marks.iter().enumerate() {
        if *mark == UNSEEN {
            walk.problems
                .push(format!("page {id}: unreachable unfreed"));
        }
    }
    if walk.problems.is_empty() {
        return Ok(());
    }
    Err(Error::Check {
        file: tx.map.path.clone(),
        problems: walk.problems,
    })
}

/// Pages in [2, high water) that no tree (nor the meta's freelist page) reaches: the
/// freelist rebuilt by scanning, for files written without one.
pub(crate) fn unreachable_pages(map: &Mapping, meta: &Meta) -> Result<Vec<u64>> {
    let mut walk = Walk::new(map, meta);
    if meta.freelist_pgid != NO_FREELIST {
        let overflow = map
            .page(meta.freelist_pgid, meta.high_water_pgid)?
            .overflow();
        walk.mark(meta.freelist_pgid, overflow as u64 + 1);
    }
    walk.bucket(meta.root_pgid, None, 0);
    if let Some(first) = walk.problems.first() {
        let what = crate::error::Corruption::BadPage(first.clone());
        return Err(map.corrupt(0, what));
    }
    Ok((2..meta.high_water_pgid)
        .filter(|&id| walk.marks[id as usize] == UNSEEN)
        .collect())
}
