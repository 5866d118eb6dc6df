//! The meta page: decoding, validation and encoding of the 64-byte meta record that roots
//! every committed state. Two copies (pages 0 and 1) are written alternately by txid, so a
//! torn meta write leaves the other, older one valid.

use crate::error::Corruption;
use crate::layout::*;

/// A decoded meta record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Meta {
    pub magic: u32,
    pub version: u32,
    pub page_size: u32,
    pub flags: u32,
    pub root_pgid: u64,
    pub sequence: u64,
    pub freelist_pgid: u64,
    pub high_water_pgid: u64,
    pub txid: u64,
    pub checksum: u64,
}

/// FNV-1a, 64-bit: bbolt's meta checksum.
pub(crate) fn fnv1a64(data: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in data {
        hash ^= b as u64;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

impl Meta {
    /// Decodes a meta from the 64 bytes after a page header. `b` must be META_SIZE long.
    pub(crate) fn decode(b: &[u8]) -> Meta {
        Meta {
            magic: get_u32(b, META_MAGIC),
            version: get_u32(b, META_VERSION),
            page_size: get_u32(b, META_PAGE_SIZE),
            flags: get_u32(b, META_FLAGS),
            root_pgid: get_u64(b, META_ROOT + BUCKET_ROOT),
            sequence: get_u64(b, META_ROOT + BUCKET_SEQUENCE),
            freelist_pgid: get_u64(b, META_FREELIST),
            high_water_pgid: get_u64(b, META_PGID),
            txid: get_u64(b, META_TXID),
            checksum: get_u64(b, META_CHECKSUM),
        }
    }

    fn encode_fields(&self) -> [u8; META_SIZE] {
        let mut b = [0u8; META_SIZE];
        put_u32(&mut b, META_MAGIC, self.magic);
        put_u32(&mut b, META_VERSION, self.version);
        put_u32(&mut b, META_PAGE_SIZE, self.page_size);
        put_u32(&mut b, META_FLAGS, self.flags);
        put_u64(&mut b, META_ROOT + BUCKET_ROOT, self.root_pgid);
        put_u64(&mut b, META_ROOT + BUCKET_SEQUENCE, self.sequence);
        put_u64(&mut b, META_FREELIST, self.freelist_pgid);
        put_u64(&mut b, META_PGID, self.high_water_pgid);
        put_u64(&mut b, META_TXID, self.txid);
        b
    }

    /// Decodes the meta stored in a whole meta page (header included); None if the page is
    /// too short to hold one. Nothing is validated: see `checksum_ok`.
    pub fn from_page(page: &[u8]) -> Option<Meta> {
        let fields = page.get(PAGE_HEADER_SIZE..PAGE_HEADER_SIZE + META_SIZE)?;
        Some(Meta::decode(fields))
    }

    /// Whether the stored checksum matches the fields (bbolt's FNV-1a 64).
    pub fn checksum_ok(&self) -> bool {
        self.compute_checksum() == self.checksum
    }

    /// The checksum this meta's fields should carry.
    pub(crate) fn compute_checksum(&self) -> u64 {
        fnv1a64(&self.encode_fields()[..META_CHECKSUM])
    }

    /// A full meta page (`page_size` bytes) for this meta, stored at page `txid % 2`, with a
    /// fresh checksum.
    pub fn encode_page(&self, page_size: usize) -> Vec<u8> {
        let mut page = vec![0u8; page_size];
        put_u64(&mut page, PAGE_ID, self.txid % 2);
        put_u16(&mut page, PAGE_FLAGS, META_PAGE);
        let mut fields = self.encode_fields();
        put_u64(&mut fields, META_CHECKSUM, self.compute_checksum());
        page[PAGE_HEADER_SIZE..PAGE_HEADER_SIZE + META_SIZE].copy_from_slice(&fields);
        page
    }

    /// bbolt's validation: magic, version, checksum, in that order.
    pub(crate) fn validate(&self) -> Result<(), Corruption> {
        if self.magic != MAGIC {
            return Err(Corruption::BadMagic(self.magic));
        }
        if self.version != VERSION {
            return Err(Corruption::BadVersion(self.version));
        }
        let computed = self.compute_checksum();
        if computed != self.checksum {
            return Err(Corruption::BadChecksum {
                stored: self.checksum,
                computed,
            });
        }
        Ok(())
    }

    /// Checks beyond bbolt's: the fields must be usable with a file of `file_len` bytes, so
    /// no later read can run past the file.
    pub(crate) fn validate_against_file(&self, file_len: u64) -> Result<(), Corruption> {
        let ps = self.page_size;
        if !(512..=(1 << 20)).contains(&ps) || !ps.is_power_of_two() {
            return Err(Corruption::BadPageSize(ps));
        }
        let hw = self.high_water_pgid;
        let needed = hw.saturating_mul(ps as u64);
        if hw < 2 || needed > file_len {
            return Err(Corruption::ShortFile {
                len: file_len,
                needed,
            });
        }
        if self.root_pgid < 2 || self.root_pgid >= hw {
            return Err(Corruption::PageOutOfRange {
                pgid: self.root_pgid,
                high_water: hw,
            });
        }
        let fl = self.freelist_pgid;
        if fl != NO_FREELIST && (fl < 2 || fl >= hw) {
            return Err(Corruption::PageOutOfRange {
                pgid: fl,
                high_water: hw,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Meta {
        Meta {
            magic: MAGIC,
            version: VERSION,
            page_size: 4096,
            flags: 0,
            root_pgid: 3,
            sequence: 0,
            freelist_pgid: 2,
            high_water_pgid: 4,
            txid: 1,
            checksum: 0,
        }
    }

    #[test]
    fn encode_then_decode_round_trips_and_validates() {
        // Proves a meta page we write decodes to the same fields and passes validation.
        let m = sample();
        let page = m.encode_page(4096);
        assert_eq!(get_u64(&page, PAGE_ID), 1, "txid 1 goes to page 1");
        let back = Meta::decode(&page[PAGE_HEADER_SIZE..PAGE_HEADER_SIZE + META_SIZE]);
        assert_eq!(back.validate(), Ok(()));
        assert_eq!(
            Meta {
                checksum: back.checksum,
                ..m
            },
            back
        );
        assert_eq!(back.validate_against_file(4 * 4096), Ok(()));
        assert!(back.validate_against_file(3 * 4096).is_err());
    }

    #[test]
    fn any_flipped_bit_in_the_fields_fails_validation() {
        // Proves the checksum covers every byte before it, so torn or flipped metas are caught.
        let page = sample().encode_page(4096);
        for byte in PAGE_HEADER_SIZE..PAGE_HEADER_SIZE + META_SIZE {
            let mut p = page.clone();
            p[byte] ^= 0x10;
            let m = Meta::decode(&p[PAGE_HEADER_SIZE..PAGE_HEADER_SIZE + META_SIZE]);
            assert!(m.validate().is_err(), "flip at byte {byte} went unnoticed");
        }
    }

    #[test]
    fn fnv_matches_reference_vectors() {
        // Proves our FNV-1a 64 against the published test vectors.
        assert_eq!(fnv1a64(b""), 0xcbf29ce484222325);
        assert_eq!(fnv1a64(b"a"), 0xaf63dc4c8601ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x85944171f73967e8);
    }
}
