//! The database hash (etcd's `backend.Hash`): CRC-32C (Castagnoli) over, for each top-level
//! bucket in name order, the bucket's name and then each of its keys and values in key order.
//! etcd computes the same over the same bytes, so equal contents hash equal across the two.

use super::{Backend, Result};
use crate::TxRead;

impl Backend {
    /// Hashes the database as of a commit made by this call, skipping the pairs for which
    /// `ignore(bucket, key)` is true (etcd ignores its consistent index this way).
    pub fn hash(&self, ignore: impl Fn(&[u8], &[u8]) -> bool) -> Result<u32> {
        self.force_commit()?;
        let committed = self.handle.core.committed()?;
        let tx = committed.tx();
        let mut crc = Crc32c::new();
        let mut buckets = tx.cursor(tx.root())?;
        let mut next_bucket = buckets.first()?;
        while let Some(entry) = next_bucket {
            if let Some(bucket) = committed.bucket(entry.key)? {
                crc.update(entry.key);
                let mut items = tx.cursor(bucket)?;
                let mut next_item = items.first()?;
                while let Some(item) = next_item {
                    if !ignore(entry.key, item.key) {
                        crc.update(item.key);
                        // bbolt hands a nested bucket to etcd with a nil value.
                        if !item.is_bucket {
                            crc.update(item.value);
                        }
                    }
                    next_item = items.next()?;
                }
            }
            next_bucket = buckets.next()?;
        }
        Ok(crc.finish())
    }
}

/// CRC-32C, reflected, initial value and final xor all ones (Go's `crc32.Castagnoli`).
struct Crc32c(u32);

const CASTAGNOLI_REFLECTED: u32 = 0x82F6_3B78;

const TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ CASTAGNOLI_REFLECTED
            } else {
                crc >> 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
};

impl Crc32c {
    fn new() -> Crc32c {
        Crc32c(!0)
    }

    fn update(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = TABLE[((self.0 ^ u32::from(b)) & 0xff) as usize] ^ (self.0 >> 8);
        }
    }

    fn finish(&self) -> u32 {
        !self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The CRC matches the standard CRC-32C check value, also when fed in pieces.
    #[test]
    fn crc32c_check_value() {
        let mut crc = Crc32c::new();
        crc.update(b"123456789");
        assert_eq!(crc.finish(), 0xE306_9283);
        let mut crc = Crc32c::new();
        crc.update(b"1234");
        crc.update(b"");
        crc.update(b"56789");
        assert_eq!(crc.finish(), 0xE306_9283);
    }
}
