//! The freelist: which pages below the high water mark hold nothing reachable.
//!
//! Pages freed by transaction T stay *pending* under T until no reader that could still see
//! them remains; only then are they *free* and may be allocated again. On disk bbolt's array
//! layout stores free and pending ids together, sorted (after a restart there are no readers,
//! so everything pending is free). Allocation takes the lowest run of contiguous free ids.

use std::collections::BTreeMap;

use crate::layout::*;

#[derive(Clone, Debug, Default)]
pub(crate) struct Freelist {
    /// Free page ids, sorted ascending, no duplicates.
    free: Vec<u64>,
    /// Pages freed by each transaction, not yet free.
    pending: BTreeMap<u64, Vec<u64>>,
}

impl Freelist {
    pub(crate) fn from_ids(mut ids: Vec<u64>) -> Freelist {
        ids.sort_unstable();
        ids.dedup();
        Freelist {
            free: ids,
            pending: BTreeMap::new(),
        }
    }

    pub(crate) fn free_count(&self) -> usize {
        self.free.len()
    }

    pub(crate) fn pending_count(&self) -> usize {
        self.pending.values().map(Vec::len).sum()
    }

    /// Number of ids the on-disk freelist holds.
    pub(crate) fn count(&self) -> usize {
        self.free_count() + self.pending_count()
    }

    /// Bytes the freelist page needs, including the count overflow slot.
    pub(crate) fn size_bytes(&self) -> usize {
        let mut n = self.count();
        if n >= FREELIST_COUNT_OVERFLOW as usize {
            n += 1;
        }
        PAGE_HEADER_SIZE + 8 * n
    }

    /// Allocates `n` contiguous pages, returning the first id, or None if no run is long
    /// enough.
    pub(crate) fn allocate(&mut self, n: usize) -> Option<u64> {
        if n == 0 || self.free.is_empty() {
            return None;
        }
        let mut run_start = 0usize;
        for i in 0..self.free.len() {
            if i > 0 && self.free[i] != self.free[i - 1] + 1 {
                run_start = i;
            }
            if i + 1 - run_start == n {
                let first = self.free[run_start];
                // Page ids 0 and 1 are the metas: a freelist naming them is corrupt, and
                // allocation must never hand them out.
                assert!(first > 1, "freelist holds a meta page id");
                self.free.drain(run_start..=i);
                return Some(first);
            }
        }
        None
    }

    /// Marks `first..first+count` as freed by transaction `txid`.
    pub(crate) fn free(&mut self, txid: u64, first: u64, count: u64) {
        assert!(first > 1, "freeing meta page {first}");
        let list = self.pending.entry(txid).or_default();
        list.extend(first..first + count);
    }

    /// Makes pages freed by transactions older than `below_txid` allocatable again.
    pub(crate) fn release_below(&mut self, below_txid: u64) {
        let keep = self.pending.split_off(&below_txid);
        let released = std::mem::replace(&mut self.pending, keep);
        if released.is_empty() {
            return;
        }
        let mut ids: Vec<u64> = released.into_values().flatten().collect();
        ids.extend_from_slice(&self.free);
        ids.sort_unstable();
        ids.dedup();
        self.free = ids;
    }

    /// Every id the on-disk freelist records: free and pending, sorted.
    pub(crate) fn all_ids(&self) -> Vec<u64> {
        let mut ids: Vec<u64> = self.free.clone();
        for p in self.pending.values() {
            ids.extend_from_slice(p);
        }
        ids.sort_unstable();
        ids
    }

    /// Encodes the freelist into `page` (already sized by the caller, header id and
    /// overflow set) in bbolt's array layout.
    pub(crate) fn write_page(&self, page: &mut [u8]) {
        let ids = self.all_ids();
        put_u16(page, PAGE_FLAGS, FREELIST_PAGE);
        let mut at = PAGE_HEADER_SIZE;
        if ids.len() < FREELIST_COUNT_OVERFLOW as usize {
            put_u16(page, PAGE_COUNT, ids.len() as u16);
        } else {
            put_u16(page, PAGE_COUNT, FREELIST_COUNT_OVERFLOW);
            put_u64(page, at, ids.len() as u64);
            at += 8;
        }
        for id in ids {
            put_u64(page, at, id);
            at += 8;
        }
    }
}

/// Decodes the ids of a freelist page. Returns a description of the problem if the page is
/// not a well-formed freelist whose ids lie in [2, high_water).
pub(crate) fn read_page(page: &[u8], high_water: u64) -> Result<Vec<u64>, String> {
    let flags = get_u16(page, PAGE_FLAGS);
    if flags & FREELIST_PAGE == 0 {
        return Err(format!("expected a freelist page, flags 0x{flags:02x}"));
    }
    let mut at = PAGE_HEADER_SIZE;
    let mut count = get_u16(page, PAGE_COUNT) as u64;
    if count == FREELIST_COUNT_OVERFLOW as u64 {
        if page.len() < at + 8 {
            return Err("freelist count overflow slot missing".into());
        }
        count = get_u64(page, at);
        at += 8;
    }
    let room = ((page.len() - at) / 8) as u64;
    if count > room {
        return Err(format!(
            "freelist claims {count} ids, the page holds {room}"
        ));
    }
    let mut ids = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let id = get_u64(page, at);
        if id < 2 || id >= high_water {
            return Err(format!(
                "freelist names page {id}, outside [2, {high_water})"
            ));
        }
        ids.push(id);
        at += 8;
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocates_lowest_contiguous_run() {
        // Proves allocation picks the first run long enough and removes exactly it.
        let mut f = Freelist::from_ids(vec![3, 5, 6, 7, 9, 10]);
        assert_eq!(f.allocate(2), Some(5));
        assert_eq!(f.all_ids(), vec![3, 7, 9, 10]);
        assert_eq!(f.allocate(3), None);
        assert_eq!(f.allocate(1), Some(3));
    }

    #[test]
    fn pending_pages_become_free_only_when_released() {
        // Proves pages freed by a tx are not allocatable until released past that tx.
        let mut f = Freelist::default();
        f.free(5, 10, 2);
        assert_eq!(f.allocate(1), None);
        assert_eq!(f.count(), 2);
        f.release_below(5);
        assert_eq!(f.allocate(1), None);
        f.release_below(6);
        assert_eq!(f.allocate(2), Some(10));
    }

    #[test]
    fn page_round_trip_including_count_overflow() {
        // Proves the array layout, also past 0xFFFF ids where the count moves into the data.
        for n in [0usize, 3, 0xFFFE, 0xFFFF, 70_000] {
            let f = Freelist::from_ids((2..2 + n as u64).collect());
            let size = f.size_bytes();
            let mut page = vec![0u8; size.div_ceil(4096) * 4096];
            f.write_page(&mut page);
            let ids = read_page(&page, 2 + n as u64).unwrap();
            assert_eq!(ids.len(), n);
            assert_eq!(ids, f.all_ids());
        }
    }
}
