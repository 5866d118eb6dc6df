//! oxcd-wal: etcd's write-ahead log format (`$seq-$index.wal` segments) and snap files.
//!
//! This crate is filled by issue 2. For now it owns only the CRC-32C chain rule that every
//! later piece builds on: each record's checksum continues the running CRC of the records
//! before it, so a segment can be verified without the ones before it given the seed.
#![forbid(unsafe_code)]

/// Extends a running CRC-32C (Castagnoli) over `data`, as etcd's WAL chains record checksums.
pub fn chain_crc(previous: u32, data: &[u8]) -> u32 {
    crc32c::crc32c_append(previous, data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chaining_equals_checksum_of_concatenation() {
        // Proves the chain rule: crc(a) extended by b equals crc(a ++ b).
        let whole = crc32c::crc32c(b"hello world");
        assert_eq!(chain_crc(chain_crc(0, b"hello "), b"world"), whole);
        assert_ne!(chain_crc(0, b"hello"), chain_crc(0, b"hellp"));
    }
}
