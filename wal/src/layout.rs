//! The WAL's on-disk layout as named constants and pure functions: frame length words,
//! record types, segment and snap file names, the CRC chain, and the encoding of one frame.
//!
//! Everything here is described in `wal/FORMAT.md`; this module is its single source in code.
//! It touches no files. Invariants: every frame starts 8-aligned and is a multiple of 8 long;
//! a length word's top byte is 0 or `0x80 | pad` with `n + pad` a multiple of 8.

use std::fmt;

/// Size of the little-endian length word that starts every frame.
pub const FRAME_LEN_BYTES: usize = 8;
/// Frames are padded so that every frame starts at a multiple of this.
pub const FRAME_ALIGN: usize = 8;
/// Bit set in the length word's top byte when the record is followed by padding.
pub const PAD_FLAG: u8 = 0x80;
/// The low 56 bits of the length word hold the record's length.
pub const LEN_MASK: u64 = (1 << 56) - 1;
/// Granularity of torn writes assumed when telling a torn tail from corruption.
pub const SECTOR_BYTES: u64 = 512;
/// Largest record a reader accepts (etcd's `maxWALEntrySizeLimit`), and a writer writes.
pub const MAX_RECORD_BYTES: u64 = 10 * 1024 * 1024;
/// Default segment size: etcd's `SegmentSizeBytes`, 64 MB.
pub const DEFAULT_SEGMENT_SIZE_BYTES: u64 = 64 * 1000 * 1000;

const _: () = assert!(FRAME_LEN_BYTES == 8);
const _: () = assert!(FRAME_ALIGN.is_power_of_two());
const _: () = assert!((SECTOR_BYTES as usize).is_multiple_of(FRAME_ALIGN));
const _: () = assert!(MAX_RECORD_BYTES < LEN_MASK);

/// Suffix of segment files.
pub const WAL_SUFFIX: &str = ".wal";
/// Suffix of snap files.
pub const SNAP_SUFFIX: &str = ".snap";
/// Suffix given to a damaged file (or the saved tail of one) that was set aside.
pub const BROKEN_SUFFIX: &str = ".broken";
/// Length of a `%016x-%016x` name stem.
const STEM_LEN: usize = 33;

/// The type of a `walpb.Record`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RecordType {
    /// Opaque metadata, repeated at the start of every segment.
    Metadata = 1,
    /// A `raftpb.Entry`.
    Entry = 2,
    /// A `raftpb.HardState`.
    State = 3,
    /// Carries the previous segment's running CRC; first record of every segment.
    Crc = 4,
    /// A `walpb.Snapshot` mark.
    Snapshot = 5,
}

impl RecordType {
    /// The type for a record's `type` field, if it is one of the five.
    pub fn from_wire(value: i64) -> Option<RecordType> {
        match value {
            1 => Some(RecordType::Metadata),
            2 => Some(RecordType::Entry),
            3 => Some(RecordType::State),
            4 => Some(RecordType::Crc),
            5 => Some(RecordType::Snapshot),
            _ => None,
        }
    }

    /// The value written in a record's `type` field.
    pub fn wire(self) -> i64 {
        self as i64
    }

    /// etcd's name for the type, as dump tools print it.
    pub fn name(self) -> &'static str {
        match self {
            RecordType::Metadata => "metadata",
            RecordType::Entry => "entry",
            RecordType::State => "state",
            RecordType::Crc => "crc",
            RecordType::Snapshot => "snapshot",
        }
    }
}

impl fmt::Display for RecordType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Number of zero bytes that follow a record of `record_bytes` to keep frames 8-aligned.
pub fn padding_for(record_bytes: u64) -> u64 {
    (FRAME_ALIGN as u64 - record_bytes % FRAME_ALIGN as u64) % FRAME_ALIGN as u64
}

/// The length word for a record of `record_bytes` (which must fit in 56 bits).
pub fn encode_len_word(record_bytes: u64) -> u64 {
    assert!(
        record_bytes <= LEN_MASK,
        "record length {record_bytes} exceeds 56 bits"
    );
    let pad = padding_for(record_bytes);
    if pad == 0 {
        record_bytes
    } else {
        record_bytes | (u64::from(PAD_FLAG) | pad) << 56
    }
}

/// Splits a length word into (record bytes, padding bytes), or says why it is malformed.
///
/// A word with top byte 0 is accepted for any length (etcd 2.x wrote unpadded frames); a
/// word with the padding flag must have only the flag and 1..=7 in its top byte and describe
/// an 8-aligned frame.
pub fn decode_len_word(word: u64) -> Result<(u64, u64), &'static str> {
    let top = (word >> 56) as u8;
    let record_bytes = word & LEN_MASK;
    if top == 0 {
        return Ok((record_bytes, 0));
    }
    if top & PAD_FLAG == 0 || top & 0x78 != 0 {
        return Err("length word has stray bits in its top byte");
    }
    let pad = u64::from(top & 0x07);
    if pad == 0 || !(record_bytes + pad).is_multiple_of(FRAME_ALIGN as u64) {
        return Err("length word's padding does not align the frame");
    }
    Ok((record_bytes, pad))
}

/// Extends a running CRC-32C (Castagnoli) over `data`, as the WAL chains record checksums.
pub fn chain_crc(previous: u32, data: &[u8]) -> u32 {
    crc32c::crc32c_append(previous, data)
}

/// Appends one frame holding `Record{type, crc, data}` to `out`.
///
/// The record is encoded exactly as etcd's gogoproto code does: field 1 and 2 always, field 3
/// only when `data` is `Some` (even if empty). `out` must already be 8-aligned in length.
pub fn append_frame(out: &mut Vec<u8>, record_type: RecordType, crc: u32, data: Option<&[u8]>) {
    debug_assert_eq!(out.len() % FRAME_ALIGN, 0, "frames start 8-aligned");
    let start = out.len();
    out.extend_from_slice(&[0; FRAME_LEN_BYTES]);
    out.push(0x08);
    prost::encoding::encode_varint(record_type.wire() as u64, out);
    out.push(0x10);
    prost::encoding::encode_varint(u64::from(crc), out);
    if let Some(data) = data {
        out.push(0x1a);
        prost::encoding::encode_varint(data.len() as u64, out);
        out.extend_from_slice(data);
    }
    let record_bytes = (out.len() - start - FRAME_LEN_BYTES) as u64;
    let word = encode_len_word(record_bytes);
    out[start..start + FRAME_LEN_BYTES].copy_from_slice(&word.to_le_bytes());
    out.resize(out.len() + padding_for(record_bytes) as usize, 0);
}

/// The name of segment `seq` whose first entry index is `index`.
pub fn wal_name(seq: u64, index: u64) -> String {
    format!("{seq:016x}-{index:016x}{WAL_SUFFIX}")
}

/// Parses a segment name into (sequence, first index); `None` for any other file name.
pub fn parse_wal_name(name: &str) -> Option<(u64, u64)> {
    parse_pair(name.strip_suffix(WAL_SUFFIX)?)
}

/// The name of the snap file for a snapshot at (term, index).
pub fn snap_name(term: u64, index: u64) -> String {
    format!("{term:016x}-{index:016x}{SNAP_SUFFIX}")
}

/// Parses a snap file name into (term, index); `None` for any other file name.
pub fn parse_snap_name(name: &str) -> Option<(u64, u64)> {
    parse_pair(name.strip_suffix(SNAP_SUFFIX)?)
}

fn parse_pair(stem: &str) -> Option<(u64, u64)> {
    if stem.len() != STEM_LEN || stem.as_bytes()[16] != b'-' {
        return None;
    }
    let hex = |s: &str| {
        if s.bytes().all(|b| b.is_ascii_hexdigit()) {
            u64::from_str_radix(s, 16).ok()
        } else {
            None
        }
    };
    Some((hex(&stem[..16])?, hex(&stem[17..])?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_frame_of_a_new_wal_matches_the_worked_example() {
        // Proves the frame encoding against FORMAT.md's worked example (etcd's bytes).
        let mut out = Vec::new();
        append_frame(&mut out, RecordType::Crc, 0, None);
        assert_eq!(
            out,
            [4, 0, 0, 0, 0, 0, 0, 0x84, 0x08, 0x04, 0x10, 0x00, 0, 0, 0, 0]
        );
    }

    #[test]
    fn length_words_round_trip_and_reject_garbage() {
        // Proves encode/decode of length words for every padding, and rejection of bad tops.
        for n in 0..64u64 {
            let word = encode_len_word(n);
            let (len, pad) = decode_len_word(word).expect("valid word");
            assert_eq!((len, pad), (n, padding_for(n)));
            assert_eq!((8 + len + pad) % 8, 0);
        }
        assert!(decode_len_word(0x0100_0000_0000_0008).is_err());
        assert!(decode_len_word(0x8000_0000_0000_0008).is_err());
        assert!(decode_len_word(0x8500_0000_0000_0004).is_err());
        assert!(decode_len_word(0xc400_0000_0000_0004).is_err());
        assert_eq!(decode_len_word(13), Ok((13, 0)));
    }

    #[test]
    fn names_round_trip_and_reject_lookalikes() {
        // Proves the %016x-%016x naming for segments and snap files and strict parsing.
        assert_eq!(wal_name(1, 0x3e9), "0000000000000001-00000000000003e9.wal");
        assert_eq!(
            parse_wal_name("0000000000000001-00000000000003e9.wal"),
            Some((1, 0x3e9))
        );
        assert_eq!(parse_snap_name(&snap_name(2, 10000)), Some((2, 10000)));
        for bad in [
            "0.tmp",
            "0000000000000001-00000000000003e9.wal.broken",
            "000000000000001-00000000000003e9.wal",
            "0000000000000001_00000000000003e9.wal",
            "000000000000000x-00000000000003e9.wal",
            "+000000000000001-00000000000003e9.wal",
            "0000000000000001-00000000000003e9.snap",
        ] {
            assert_eq!(parse_wal_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn chaining_equals_checksum_of_concatenation() {
        // Proves the chain rule: crc(a) extended by b equals crc(a ++ b).
        let whole = crc32c::crc32c(b"hello world");
        assert_eq!(chain_crc(chain_crc(0, b"hello "), b"world"), whole);
        assert_ne!(chain_crc(0, b"hello"), chain_crc(0, b"hellp"));
    }
}
