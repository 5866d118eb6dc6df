//! A pure, bounds-checked decoder of bbolt pages for `oxutl db page`.
//!
//! The byte offsets are the engine's (`oxcd_engine::layout`, the one place they live); this
//! module only reads them a second time, independently of the engine's tree code, so the
//! tool shows what is really on disk even where the engine would refuse it. Nothing from the
//! page is trusted: every offset and length is checked, and bytes that do not fit become an
//! error string, never a panic (the engine's own `get_u*` helpers index unchecked, so they
//! are not used here). All integers are little-endian.
//!
//! Worked example, a leaf page holding `a => xy` (offsets from the page start):
//! ```text
//! 0..8   id            8..10 flags=0x02   10..12 count=1   12..16 overflow=0
//! 16..32 element 0: flags=0 pos=16 ksize=1 vsize=2   (pos counts from the element itself)
//! 32     "a"   33..35 "xy"
//! ```

use oxcd_engine::layout::{
    BRANCH_ELEMENT_SIZE, BRANCH_KSIZE, BRANCH_PAGE, BRANCH_PGID, BRANCH_POS, BUCKET_HEADER_SIZE,
    BUCKET_ROOT, BUCKET_SEQUENCE, FREELIST_COUNT_OVERFLOW, FREELIST_PAGE, LEAF_ELEMENT_SIZE,
    LEAF_FLAGS, LEAF_KSIZE, LEAF_PAGE, LEAF_POS, LEAF_VSIZE, META_PAGE, PAGE_COUNT, PAGE_FLAGS,
    PAGE_HEADER_SIZE, PAGE_ID, PAGE_OVERFLOW,
};
use oxcd_engine::Meta;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageHeader {
    pub id: u64,
    pub flags: u16,
    pub count: u16,
    pub overflow: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BranchElement<'a> {
    pub key: &'a [u8],
    pub child_pgid: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeafElement<'a> {
    pub flags: u32,
    pub key: &'a [u8],
    pub value: &'a [u8],
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PageBody<'a> {
    Meta(Meta),
    Freelist(Vec<u64>),
    Branch(Vec<BranchElement<'a>>),
    Leaf(Vec<LeafElement<'a>>),
    /// Flags name no known page type; nothing past the header is interpreted.
    Unknown,
}

/// A nested bucket's value header, and the item count of its inline page if it has one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BucketValue {
    pub root_pgid: u64,
    pub sequence: u64,
    pub inline_items: Option<u16>,
}

/// bbolt's word for a page's flags (first matching bit wins, in bbolt's order).
pub fn kind_name(flags: u16) -> String {
    if flags & BRANCH_PAGE != 0 {
        "branch".to_string()
    } else if flags & LEAF_PAGE != 0 {
        "leaf".to_string()
    } else if flags & META_PAGE != 0 {
        "meta".to_string()
    } else if flags & FREELIST_PAGE != 0 {
        "freelist".to_string()
    } else {
        format!("unknown<{flags:02x}>")
    }
}

pub fn decode_header(page: &[u8]) -> Result<PageHeader, String> {
    if page.len() < PAGE_HEADER_SIZE {
        return Err(format!(
            "{} bytes is shorter than a page header",
            page.len()
        ));
    }
    Ok(PageHeader {
        id: read_u64(page, PAGE_ID)?,
        flags: read_u16(page, PAGE_FLAGS)?,
        count: read_u16(page, PAGE_COUNT)?,
        overflow: read_u32(page, PAGE_OVERFLOW)?,
    })
}

/// Decodes the elements of `page` (the page bytes including its overflow pages).
pub fn decode_body<'a>(page: &'a [u8], header: &PageHeader) -> Result<PageBody<'a>, String> {
    let flags = header.flags;
    if flags & BRANCH_PAGE != 0 {
        decode_branch(page, header.count).map(PageBody::Branch)
    } else if flags & LEAF_PAGE != 0 {
        decode_leaf(page, header.count).map(PageBody::Leaf)
    } else if flags & META_PAGE != 0 {
        decode_meta(page).map(PageBody::Meta)
    } else if flags & FREELIST_PAGE != 0 {
        decode_freelist(page, header.count).map(PageBody::Freelist)
    } else {
        Ok(PageBody::Unknown)
    }
}

pub fn decode_meta(page: &[u8]) -> Result<Meta, String> {
    Meta::from_page(page).ok_or_else(|| "meta page too short".to_string())
}

pub fn decode_freelist(page: &[u8], count: u16) -> Result<Vec<u64>, String> {
    let (count, first) = if count == FREELIST_COUNT_OVERFLOW {
        let real = read_u64(page, PAGE_HEADER_SIZE)?;
        (real, PAGE_HEADER_SIZE + 8)
    } else {
        (u64::from(count), PAGE_HEADER_SIZE)
    };
    let available = (page.len().saturating_sub(first) / 8) as u64;
    if count > available {
        return Err(format!(
            "freelist claims {count} ids but the page holds at most {available}"
        ));
    }
    (0..count as usize)
        .map(|index| read_u64(page, first + index * 8))
        .collect()
}

pub fn decode_branch(page: &[u8], count: u16) -> Result<Vec<BranchElement<'_>>, String> {
    (0..usize::from(count))
        .map(|index| {
            let element = PAGE_HEADER_SIZE + index * BRANCH_ELEMENT_SIZE;
            let pos = read_u32(page, element + BRANCH_POS)? as usize;
            let key_size = read_u32(page, element + BRANCH_KSIZE)? as usize;
            let child_pgid = read_u64(page, element + BRANCH_PGID)?;
            let key = slice(page, element.saturating_add(pos), key_size, "branch key")?;
            Ok(BranchElement { key, child_pgid })
        })
        .collect()
}

pub fn decode_leaf(page: &[u8], count: u16) -> Result<Vec<LeafElement<'_>>, String> {
    (0..usize::from(count))
        .map(|index| {
            let element = PAGE_HEADER_SIZE + index * LEAF_ELEMENT_SIZE;
            let flags = read_u32(page, element + LEAF_FLAGS)?;
            let pos = read_u32(page, element + LEAF_POS)? as usize;
            let key_size = read_u32(page, element + LEAF_KSIZE)? as usize;
            let value_size = read_u32(page, element + LEAF_VSIZE)? as usize;
            let key_start = element.saturating_add(pos);
            let key = slice(page, key_start, key_size, "leaf key")?;
            let value = slice(page, key_start + key_size, value_size, "leaf value")?;
            Ok(LeafElement { flags, key, value })
        })
        .collect()
}

/// Reads a nested bucket's value; `None` if it is too short to be one.
pub fn decode_bucket_value(value: &[u8]) -> Option<BucketValue> {
    let root_pgid = read_u64(value, BUCKET_ROOT).ok()?;
    let sequence = read_u64(value, BUCKET_SEQUENCE).ok()?;
    let inline_items = if root_pgid == 0 {
        let inline = value.get(BUCKET_HEADER_SIZE..)?;
        Some(decode_header(inline).ok()?.count)
    } else {
        None
    };
    Some(BucketValue {
        root_pgid,
        sequence,
        inline_items,
    })
}

fn slice<'a>(page: &'a [u8], start: usize, len: usize, what: &str) -> Result<&'a [u8], String> {
    start
        .checked_add(len)
        .and_then(|end| page.get(start..end))
        .ok_or_else(|| {
            format!(
                "{what} at {start}+{len} runs past the page end ({})",
                page.len()
            )
        })
}

fn read_u16(page: &[u8], offset: usize) -> Result<u16, String> {
    let bytes = slice(page, offset, 2, "u16")?;
    Ok(u16::from_le_bytes([bytes[0], bytes[1]]))
}

fn read_u32(page: &[u8], offset: usize) -> Result<u32, String> {
    let mut bytes = [0u8; 4];
    bytes.copy_from_slice(slice(page, offset, 4, "u32")?);
    Ok(u32::from_le_bytes(bytes))
}

fn read_u64(page: &[u8], offset: usize) -> Result<u64, String> {
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(slice(page, offset, 8, "u64")?);
    Ok(u64::from_le_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use oxcd_engine::layout::MAGIC;

    fn header(id: u64, flags: u16, count: u16, size: usize) -> Vec<u8> {
        let mut page = vec![0u8; size];
        page[PAGE_ID..PAGE_ID + 8].copy_from_slice(&id.to_le_bytes());
        page[PAGE_FLAGS..PAGE_FLAGS + 2].copy_from_slice(&flags.to_le_bytes());
        page[PAGE_COUNT..PAGE_COUNT + 2].copy_from_slice(&count.to_le_bytes());
        page
    }

    fn put_u32(page: &mut [u8], offset: usize, value: u32) {
        page[offset..offset + 4].copy_from_slice(&value.to_le_bytes());
    }

    fn put_u64(page: &mut [u8], offset: usize, value: u64) {
        page[offset..offset + 8].copy_from_slice(&value.to_le_bytes());
    }

    // The module doc's worked example decodes to exactly `a => xy`.
    #[test]
    fn leaf_worked_example() {
        let mut page = header(7, LEAF_PAGE, 1, 64);
        put_u32(&mut page, 16 + 4, 16);
        put_u32(&mut page, 16 + 8, 1);
        put_u32(&mut page, 16 + 12, 2);
        page[32..35].copy_from_slice(b"axy");
        let head = decode_header(&page).unwrap();
        assert_eq!(head.id, 7);
        assert_eq!(kind_name(head.flags), "leaf");
        let body = decode_body(&page, &head).unwrap();
        let expected = LeafElement {
            flags: 0,
            key: b"a",
            value: b"xy",
        };
        assert_eq!(body, PageBody::Leaf(vec![expected]));
    }

    // A branch element's key is found relative to the element and its child id is read.
    #[test]
    fn branch_elements() {
        let mut page = header(3, BRANCH_PAGE, 2, 64);
        for (index, (pos, child)) in [(32u32, 9u64), (17, 11)].iter().enumerate() {
            let element = 16 + index * 16;
            put_u32(&mut page, element, *pos);
            put_u32(&mut page, element + 4, 1);
            put_u64(&mut page, element + 8, *child);
        }
        page[48] = b'k';
        page[49] = b'm';
        let elements = decode_branch(&page, 2).unwrap();
        assert_eq!(
            elements[0],
            BranchElement {
                key: b"k",
                child_pgid: 9
            }
        );
        assert_eq!(
            elements[1],
            BranchElement {
                key: b"m",
                child_pgid: 11
            }
        );
    }

    // Element offsets that point past the page are errors, not panics.
    #[test]
    fn out_of_range_elements_are_errors() {
        let mut page = header(3, LEAF_PAGE, 1, 40);
        put_u32(&mut page, 16 + 4, u32::MAX);
        put_u32(&mut page, 16 + 8, 4);
        assert!(decode_leaf(&page, 1).is_err());
        assert!(decode_leaf(&page, 100).is_err());
        assert!(decode_header(&page[..10]).is_err());
        assert!(decode_meta(&page).is_err());
    }

    // Freelists with 0xFFFF in the header read their real count from the first u64.
    #[test]
    fn freelist_counts() {
        let mut page = header(2, FREELIST_PAGE, 2, 64);
        put_u64(&mut page, 16, 5);
        put_u64(&mut page, 24, 6);
        assert_eq!(decode_freelist(&page, 2).unwrap(), vec![5, 6]);
        let mut page = header(2, FREELIST_PAGE, FREELIST_COUNT_OVERFLOW, 64);
        put_u64(&mut page, 16, 2);
        put_u64(&mut page, 24, 8);
        put_u64(&mut page, 32, 9);
        assert_eq!(
            decode_freelist(&page, FREELIST_COUNT_OVERFLOW).unwrap(),
            vec![8, 9]
        );
        put_u64(&mut page, 16, 1000);
        assert!(decode_freelist(&page, FREELIST_COUNT_OVERFLOW).is_err());
    }

    // Meta fields are decoded by the engine and a changed byte fails the checksum.
    #[test]
    fn meta_fields_and_checksum() {
        let meta = Meta {
            magic: MAGIC,
            version: 2,
            page_size: 4096,
            flags: 0,
            root_pgid: 3,
            sequence: 0,
            freelist_pgid: 2,
            high_water_pgid: 4,
            txid: 1,
            checksum: 0,
        };
        let mut page = meta.encode_page(4096);
        let back = decode_meta(&page).unwrap();
        assert_eq!((back.magic, back.version, back.page_size), (MAGIC, 2, 4096));
        assert_eq!(
            (back.root_pgid, back.freelist_pgid, back.high_water_pgid),
            (3, 2, 4)
        );
        assert!(back.checksum_ok());
        page[PAGE_HEADER_SIZE + oxcd_engine::layout::META_TXID] = 2;
        assert!(!decode_meta(&page).unwrap().checksum_ok());
        assert!(decode_meta(&page[..40]).is_err());
    }

    // Bucket values give root and sequence, plus the inline page's count when root is 0.
    #[test]
    fn bucket_values() {
        let mut value = vec![0u8; 16];
        put_u64(&mut value, 0, 12);
        put_u64(&mut value, 8, 4);
        let expected = BucketValue {
            root_pgid: 12,
            sequence: 4,
            inline_items: None,
        };
        assert_eq!(decode_bucket_value(&value), Some(expected));
        let mut inline = header(0, LEAF_PAGE, 3, 32);
        value[..8].copy_from_slice(&0u64.to_le_bytes());
        value.append(&mut inline);
        assert_eq!(decode_bucket_value(&value).unwrap().inline_items, Some(3));
        assert_eq!(decode_bucket_value(&[1, 2, 3]), None);
    }
}
