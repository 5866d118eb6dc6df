//! The bbolt 1.3.x on-disk layout as named constants: the single place in code where byte
//! offsets and sizes of the file format live. `engine/FORMAT.md` is the prose version.
//!
//! Every integer on disk is little-endian (bbolt writes host order and every platform etcd
//! ships on is little-endian; we fix it explicitly). Offsets below are relative to the start
//! of the structure named in the constant's prefix.

/// Every page starts with this header: id u64, flags u16, count u16, overflow u32.
pub const PAGE_HEADER_SIZE: usize = 16;
pub const PAGE_ID: usize = 0;
pub const PAGE_FLAGS: usize = 8;
pub const PAGE_COUNT: usize = 10;
pub const PAGE_OVERFLOW: usize = 12;

/// Page kinds, in the header's flags field.
pub const BRANCH_PAGE: u16 = 0x01;
pub const LEAF_PAGE: u16 = 0x02;
pub const META_PAGE: u16 = 0x04;
pub const FREELIST_PAGE: u16 = 0x10;

/// Leaf element: flags u32, pos u32, ksize u32, vsize u32. `pos` counts from the element's
/// own first byte to its key; the value follows the key directly.
pub const LEAF_ELEMENT_SIZE: usize = 16;
pub const LEAF_FLAGS: usize = 0;
pub const LEAF_POS: usize = 4;
pub const LEAF_KSIZE: usize = 8;
pub const LEAF_VSIZE: usize = 12;
/// Leaf element flag: the value is a bucket (header plus, when inline, a page).
pub const BUCKET_LEAF_FLAG: u32 = 0x01;

/// Branch element: pos u32, ksize u32, pgid u64. `pos` as for leaf elements.
pub const BRANCH_ELEMENT_SIZE: usize = 16;
pub const BRANCH_POS: usize = 0;
pub const BRANCH_KSIZE: usize = 4;
pub const BRANCH_PGID: usize = 8;

/// Bucket header, the first bytes of a bucket's value: root pgid u64 (0 = inline), sequence u64.
pub const BUCKET_HEADER_SIZE: usize = 16;
pub const BUCKET_ROOT: usize = 0;
pub const BUCKET_SEQUENCE: usize = 8;

/// Meta, stored right after the page header of pages 0 and 1.
pub const META_MAGIC: usize = 0;
pub const META_VERSION: usize = 4;
pub const META_PAGE_SIZE: usize = 8;
pub const META_FLAGS: usize = 12;
pub const META_ROOT: usize = 16; // a bucket header: root pgid, sequence
pub const META_FREELIST: usize = 32;
pub const META_PGID: usize = 40; // high water mark: first page id never allocated
pub const META_TXID: usize = 48;
pub const META_CHECKSUM: usize = 56; // FNV-1a 64 over bytes [0, 56)
pub const META_SIZE: usize = 64;

pub const MAGIC: u32 = 0xED0C_DAED;
pub const VERSION: u32 = 2;
/// Meta freelist value meaning "no freelist was written" (NoFreelistSync).
pub const NO_FREELIST: u64 = u64::MAX;
/// A freelist page whose count field holds this stores the real count in its first u64.
pub const FREELIST_COUNT_OVERFLOW: u16 = 0xFFFF;

/// bbolt's limits on keys and values.
pub const MAX_KEY_SIZE: usize = 32_768;
pub const MAX_VALUE_SIZE: usize = (1 << 31) - 2;
/// A node keeps at least this many keys per page when split.
pub const MIN_KEYS_PER_PAGE: usize = 2;
pub const MIN_FILL_PERCENT: f64 = 0.1;
pub const MAX_FILL_PERCENT: f64 = 1.0;
pub const DEFAULT_FILL_PERCENT: f64 = 0.5;
/// The largest file bbolt maps on 64-bit platforms (0xFFFFFFFFFFFF bytes).
pub const MAX_MAP_SIZE: u64 = 0xFFFF_FFFF_FFFF;
/// Above 1 GiB the map grows in 1 GiB steps instead of doubling.
pub const MAX_MMAP_STEP: u64 = 1 << 30;

const _: () = assert!(PAGE_HEADER_SIZE == 16);
const _: () = assert!(LEAF_ELEMENT_SIZE == 16 && BRANCH_ELEMENT_SIZE == 16);
const _: () = assert!(BUCKET_HEADER_SIZE == 16);
const _: () = assert!(META_SIZE == 64 && META_CHECKSUM + 8 == META_SIZE);

pub fn get_u16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
pub fn get_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
pub fn get_u64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}
pub fn put_u16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_le_bytes());
}
pub fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}
pub fn put_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// Byte-wise key order (what bbolt's bytes.Compare gives), with a fast path comparing the
/// first eight bytes as one big-endian integer: etcd's revision keys differ there.
#[inline]
pub fn cmp_keys(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    if a.len() >= 8 && b.len() >= 8 {
        let x = u64::from_be_bytes(a[..8].try_into().expect("8 bytes"));
        let y = u64::from_be_bytes(b[..8].try_into().expect("8 bytes"));
        if x != y {
            return x.cmp(&y);
        }
        return a[8..].cmp(&b[8..]);
    }
    a.cmp(b)
}

/// bbolt's mmap sizing: double from 32 KiB up to 1 GiB, then grow in 1 GiB steps, always a
/// multiple of the page size. Returns None above the largest mappable size.
pub fn mmap_size(size: u64, page_size: u64) -> Option<u64> {
    for shift in 15..=30 {
        if size <= 1 << shift {
            return Some(1 << shift);
        }
    }
    if size > MAX_MAP_SIZE {
        return None;
    }
    let mut sz = size.div_ceil(MAX_MMAP_STEP) * MAX_MMAP_STEP;
    sz = sz.div_ceil(page_size) * page_size;
    Some(sz.min(MAX_MAP_SIZE))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mmap_size_doubles_then_steps_by_a_gib() {
        // Proves the growth rule: powers of two from 32 KiB to 1 GiB, then 1 GiB steps.
        assert_eq!(mmap_size(0, 4096), Some(32 * 1024));
        assert_eq!(mmap_size(32 * 1024 + 1, 4096), Some(64 * 1024));
        assert_eq!(mmap_size(1 << 30, 4096), Some(1 << 30));
        assert_eq!(mmap_size((1 << 30) + 1, 4096), Some(2 << 30));
        assert_eq!(mmap_size(5 << 30, 4096), Some(5 << 30));
        assert_eq!(mmap_size(MAX_MAP_SIZE + 1, 4096), None);
    }
}
