//! Page access: the memory map of the data file and safe, bounds-checked views of pages.
//!
//! This module holds the engine's only `unsafe` code: creating the read-only shared mapping.
//! Everything else reads pages through [`PageView`], whose accessors check every offset read
//! from disk against the page's bounds and return `Error::Corrupted` instead of panicking.
//!
//! Invariant relied on by callers: a [`Mapping`] is never unmapped or shrunk while any
//! transaction holds it (it lives in an `Arc`), and the engine only touches pages below the
//! high water mark of a meta page whose pages were fsynced before that meta was written, so
//! every byte a view covers is backed by the file.

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::error::{Corruption, Error, Result};
use crate::layout::*;

/// A read-only shared mapping of the data file, possibly longer than the file.
pub(crate) struct Mapping {
    map: Option<memmap2::Mmap>,
    pub(crate) path: PathBuf,
    pub(crate) page_size: usize,
}

impl Mapping {
    /// Maps `len` bytes of `file` read-only. `len` may exceed the file's length: bytes past
    /// the end are never read (see the module invariant).
    pub(crate) fn new(file: &File, path: &Path, len: u64, page_size: usize) -> Result<Mapping> {
        let map = if len == 0 {
            None
        } else {
            let len = usize::try_from(len).map_err(|_| Error::MapTooLarge { file: path.into() })?;
            // SAFETY: the mapping is read-only and shared. The file is locked against other
            // writers (flock); this process only changes it with pwrite to pages no live
            // reader can reach (copy-on-write), and never truncates it below a page a
            // mapping's users may read, so the bytes a reader sees never change under it and
            // are always backed by the file.
            let map = unsafe { memmap2::MmapOptions::new().len(len).map(file) }
                .map_err(|e| Error::io(path, e))?;
            Some(map)
        };
        Ok(Mapping {
            map,
            path: path.to_path_buf(),
            page_size,
        })
    }

    pub(crate) fn len(&self) -> u64 {
        self.map.as_ref().map_or(0, |m| m.len() as u64)
    }

    fn bytes(&self) -> &[u8] {
        self.map.as_deref().unwrap_or(&[])
    }

    /// Bytes `start..end` of the mapping; the caller has checked the range is mapped.
    pub(crate) fn range(&self, start: usize, end: usize) -> &[u8] {
        &self.bytes()[start..end]
    }

    /// Where `slice` starts within the mapping, if it lies inside it.
    pub(crate) fn offset_of(&self, slice: &[u8]) -> Option<usize> {
        let base = self.bytes().as_ptr() as usize;
        let at = slice.as_ptr() as usize;
        (at >= base && at + slice.len() <= base + self.bytes().len()).then(|| at - base)
    }

    /// The page `id` with its overflow pages. `high_water` is the meta's first unallocated
    /// page id: anything at or past it is corruption, not a read past the file.
    pub(crate) fn page(&self, id: u64, high_water: u64) -> Result<PageView<'_>> {
        let ps = self.page_size as u64;
        if id >= high_water {
            return Err(self.corrupt(
                0,
                Corruption::PageOutOfRange {
                    pgid: id,
                    high_water,
                },
            ));
        }
        let offset = id * ps;
        let bytes = self.bytes();
        if offset + ps > bytes.len() as u64 {
            return Err(self.corrupt(
                offset,
                Corruption::PageOutOfRange {
                    pgid: id,
                    high_water,
                },
            ));
        }
        let start = offset as usize;
        let overflow = get_u32(bytes, start + PAGE_OVERFLOW) as u64;
        let last = id.saturating_add(overflow);
        if last >= high_water || (last + 1) * ps > bytes.len() as u64 {
            return Err(self.corrupt(
                offset,
                Corruption::BadPage(format!("page {id} overflow {overflow} runs past the end")),
            ));
        }
        let end = ((last + 1) * ps) as usize;
        PageView::new(&bytes[start..end], offset, &self.path)
    }

    pub(crate) fn corrupt(&self, offset: u64, what: Corruption) -> Error {
        Error::Corrupted {
            file: self.path.clone(),
            offset,
            what,
        }
    }
}

/// A bounds-checked view of one page (with its overflow), or of an inline bucket's page.
#[derive(Clone, Copy)]
pub(crate) struct PageView<'a> {
    pub(crate) bytes: &'a [u8],
    /// File offset of the page, for error messages (for inline pages: of the page holding
    /// the bucket's value).
    pub(crate) offset: u64,
    pub(crate) path: &'a Path,
}

impl<'a> PageView<'a> {
    pub(crate) fn new(bytes: &'a [u8], offset: u64, path: &'a Path) -> Result<PageView<'a>> {
        let view = PageView {
            bytes,
            offset,
            path,
        };
        if bytes.len() < PAGE_HEADER_SIZE {
            return Err(view.bad("page shorter than its header"));
        }
        let flags = view.flags();
        if flags & (BRANCH_PAGE | LEAF_PAGE) != 0 {
            let elements = view.count() * LEAF_ELEMENT_SIZE;
            if PAGE_HEADER_SIZE + elements > bytes.len() {
                return Err(view.bad(&format!("{} elements do not fit the page", view.count())));
            }
        }
        Ok(view)
    }

    pub(crate) fn bad(&self, what: &str) -> Error {
        Error::Corrupted {
            file: self.path.to_path_buf(),
            offset: self.offset,
            what: Corruption::BadPage(what.to_string()),
        }
    }

    pub(crate) fn id(&self) -> u64 {
        get_u64(self.bytes, PAGE_ID)
    }
    pub(crate) fn flags(&self) -> u16 {
        get_u16(self.bytes, PAGE_FLAGS)
    }
    pub(crate) fn count(&self) -> usize {
        get_u16(self.bytes, PAGE_COUNT) as usize
    }
    pub(crate) fn overflow(&self) -> u32 {
        get_u32(self.bytes, PAGE_OVERFLOW)
    }
    pub(crate) fn is_leaf(&self) -> bool {
        self.flags() & LEAF_PAGE != 0
    }

    /// Checks that this is a branch or leaf page stored where it claims to be.
    pub(crate) fn expect_tree_page(&self, id: u64) -> Result<()> {
        if id < 2 {
            return Err(self.bad(&format!("a tree refers to meta page {id}")));
        }
        let flags = self.flags();
        if flags & (BRANCH_PAGE | LEAF_PAGE) == 0 {
            return Err(self.bad(&format!(
                "page {id}: expected branch or leaf, flags 0x{flags:02x}"
            )));
        }
        if self.id() != id {
            return Err(self.bad(&format!("page {id}: header says page {}", self.id())));
        }
        Ok(())
    }

    fn slice(&self, elem_at: usize, pos: u32, len: usize) -> Result<&'a [u8]> {
        let start = elem_at.checked_add(pos as usize);
        let end = start.and_then(|s| s.checked_add(len));
        match (start, end) {
            (Some(s), Some(e)) if e <= self.bytes.len() => Ok(&self.bytes[s..e]),
            _ => Err(self.bad(&format!(
                "element at byte {elem_at} points outside the page"
            ))),
        }
    }

    /// Leaf element `i`: (flags, key, value). `i` must be below `count()`.
    pub(crate) fn leaf(&self, i: usize) -> Result<(u32, &'a [u8], &'a [u8])> {
        debug_assert!(i < self.count());
        let at = PAGE_HEADER_SIZE + i * LEAF_ELEMENT_SIZE;
        let b = self.bytes;
        let flags = get_u32(b, at + LEAF_FLAGS);
        let pos = get_u32(b, at + LEAF_POS);
        let ksize = get_u32(b, at + LEAF_KSIZE) as usize;
        let vsize = get_u32(b, at + LEAF_VSIZE) as usize;
        let kv = self.slice(at, pos, ksize.saturating_add(vsize))?;
        Ok((flags, &kv[..ksize], &kv[ksize..]))
    }

    /// Key of element `i`, for leaf and branch pages alike.
    pub(crate) fn key(&self, i: usize) -> Result<&'a [u8]> {
        if self.is_leaf() {
            return Ok(self.leaf(i)?.1);
        }
        Ok(self.branch(i)?.0)
    }

    /// Branch element `i`: (key, child pgid).
    pub(crate) fn branch(&self, i: usize) -> Result<(&'a [u8], u64)> {
        debug_assert!(i < self.count());
        let at = PAGE_HEADER_SIZE + i * BRANCH_ELEMENT_SIZE;
        let b = self.bytes;
        let pos = get_u32(b, at + BRANCH_POS);
        let ksize = get_u32(b, at + BRANCH_KSIZE) as usize;
        let pgid = get_u64(b, at + BRANCH_PGID);
        Ok((self.slice(at, pos, ksize)?, pgid))
    }

    /// Index of the first element whose key is >= `key` (count() if none), and whether it
    /// is an exact match.
    pub(crate) fn search(&self, key: &[u8]) -> Result<(usize, bool)> {
        // Key fields sit at the same offsets in leaf and branch elements except for their
        // position: leaf (pos @4, ksize @8), branch (pos @0, ksize @4).
        let (pos_at, ksize_at) = if self.is_leaf() {
            (LEAF_POS, LEAF_KSIZE)
        } else {
            (BRANCH_POS, BRANCH_KSIZE)
        };
        let (mut lo, mut hi) = (0usize, self.count());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            // Ask for the next probe's element headers early; the branch taken needs one.
            prefetch(
                self.bytes,
                PAGE_HEADER_SIZE + (lo + (mid - lo) / 2) * LEAF_ELEMENT_SIZE,
            );
            prefetch(
                self.bytes,
                PAGE_HEADER_SIZE + (mid + 1 + (hi - mid) / 2) * LEAF_ELEMENT_SIZE,
            );
            let at = PAGE_HEADER_SIZE + mid * LEAF_ELEMENT_SIZE;
            let pos = get_u32(self.bytes, at + pos_at);
            let ksize = get_u32(self.bytes, at + ksize_at) as usize;
            match cmp_keys(self.slice(at, pos, ksize)?, key) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Equal => return Ok((mid, true)),
                std::cmp::Ordering::Greater => hi = mid,
            }
        }
        Ok((lo, false))
    }
}

/// Hints the CPU to load the cache line holding `bytes[at]`, if `at` is inside `bytes`.
#[inline(always)]
fn prefetch(bytes: &[u8], at: usize) {
    #[cfg(target_arch = "x86_64")]
    if at < bytes.len() {
        // SAFETY: prefetching is only a hint and never faults; the address is inside a live
        // slice anyway.
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                bytes.as_ptr().add(at) as *const i8,
            )
        };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (bytes, at);
}
