//! Decoding one segment's bytes frame by frame: length word, record, CRC chain, body, and the
//! rule that tells a torn tail from corruption (FORMAT.md, "Reading and torn writes").
//!
//! Pure functions over a byte slice; no I/O. Invariants: never panics on any input; never
//! allocates more than the input's length; the running CRC is advanced only by a record
//! that verified.

use crate::error::Corruption;
use crate::layout::{
    chain_crc, decode_len_word, RecordType, FRAME_LEN_BYTES, MAX_RECORD_BYTES, SECTOR_BYTES,
};
use crate::pb::{
    decode_shaped, Entry, EntryType, HardState, Record, SnapshotMark, ENTRY_SHAPE,
    HARD_STATE_SHAPE, RECORD_SHAPE, SNAPSHOT_MARK_SHAPE,
};

/// A record's decoded payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordBody {
    /// Opaque metadata (etcd: `etcdserverpb.Metadata`).
    Metadata(Vec<u8>),
    /// A raft log entry.
    Entry(Entry),
    /// A raft hard state.
    HardState(HardState),
    /// A crc record; its value is the record's `crc`.
    Crc,
    /// A snapshot mark.
    Snapshot(SnapshotMark),
}

impl RecordBody {
    /// The record type this body is stored as.
    pub fn record_type(&self) -> RecordType {
        match self {
            RecordBody::Metadata(_) => RecordType::Metadata,
            RecordBody::Entry(_) => RecordType::Entry,
            RecordBody::HardState(_) => RecordType::State,
            RecordBody::Crc => RecordType::Crc,
            RecordBody::Snapshot(_) => RecordType::Snapshot,
        }
    }
}

/// One verified record and where its frame lies in the segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Frame {
    pub offset: u64,
    pub frame_bytes: u64,
    pub crc: u32,
    pub body: RecordBody,
}

/// What the next frame of a segment turned out to be.
#[derive(Debug)]
pub(crate) enum Step {
    /// A verified record.
    Record(Frame),
    /// No more records in this segment; `torn` says why, when the end was a torn write.
    End { torn: Option<&'static str> },
}

/// Where a frame is read from and what the reader knows about it.
pub(crate) struct FramePos {
    /// Byte offset of the frame in the segment.
    pub offset: usize,
    /// The segment is the last one: its tail may be torn.
    pub is_last: bool,
    /// No record of this segment has been read yet: it must be a crc record.
    pub first: bool,
}

/// Decodes the frame at `pos.offset` of `segment`, checking and advancing the running `crc`.
///
/// Errors carry the frame's offset and what is wrong.
pub(crate) fn decode_frame(
    segment: &[u8],
    pos: &FramePos,
    crc: &mut u32,
) -> Result<Step, (u64, Corruption)> {
    let offset = pos.offset;
    let at = |what| (offset as u64, what);
    let rest = segment.get(offset..).unwrap_or_default();
    let (record_bytes, frame_bytes) = match frame_extent(rest, pos.is_last).map_err(at)? {
        Extent::Frame {
            record_bytes,
            frame_bytes,
        } => (record_bytes, frame_bytes),
        Extent::End { torn } => return Ok(Step::End { torn }),
    };
    let padded = &rest[FRAME_LEN_BYTES..frame_bytes];
    let record = match verify_record(&padded[..record_bytes], crc) {
        Ok(record) => record,
        // A damaged record is a torn write only at the end of the last segment, and only if
        // a whole sector of it never reached the disk.
        Err(Corruption::BadRecord | Corruption::CrcMismatch { .. })
            if pos.is_last && has_zero_sector((offset + FRAME_LEN_BYTES) as u64, padded) =>
        {
            return Ok(Step::End {
                torn: Some("damaged record with a zeroed sector"),
            });
        }
        Err(what) => return Err(at(what)),
    };
    let body = decode_body(
        record.record_type,
        record.data.as_deref().unwrap_or_default(),
    )
    .map_err(at)?;
    if pos.first && body != RecordBody::Crc {
        return Err(at(Corruption::MissingCrcRecord(body.record_type().name())));
    }
    Ok(Step::Record(Frame {
        offset: offset as u64,
        frame_bytes: frame_bytes as u64,
        crc: record.crc,
        body,
    }))
}

/// Where the frame at the start of `rest` ends, or why there is none.
enum Extent {
    Frame {
        record_bytes: usize,
        frame_bytes: usize,
    },
    End {
        torn: Option<&'static str>,
    },
}

/// Reads the length word at the start of `rest` (the segment from a frame's offset on).
fn frame_extent(rest: &[u8], is_last: bool) -> Result<Extent, Corruption> {
    // The end of a segment, or of the last segment's valid data: zeroes are a clean end,
    // anything else a torn write in the last segment and damage in any other.
    let end = |torn, damage| {
        if is_zero(rest) {
            Ok(Extent::End { torn: None })
        } else if is_last {
            Ok(Extent::End { torn: Some(torn) })
        } else {
            Err(damage)
        }
    };
    let Some(word_bytes) = rest.first_chunk::<FRAME_LEN_BYTES>() else {
        return end("partial length word", Corruption::PartialLengthWord);
    };
    let word = u64::from_le_bytes(*word_bytes);
    if word == 0 {
        return end("data after a zero length word", Corruption::DataAfterEnd);
    }
    let (record_bytes, pad) =
        decode_len_word(word).map_err(|why| Corruption::BadLengthWord { word, why })?;
    if record_bytes >= MAX_RECORD_BYTES - pad {
        return Err(Corruption::RecordTooLarge {
            bytes: record_bytes,
        });
    }
    let frame_bytes = FRAME_LEN_BYTES as u64 + record_bytes + pad;
    if frame_bytes > rest.len() as u64 {
        return if is_last {
            Ok(Extent::End {
                torn: Some("frame runs past the end of the file"),
            })
        } else {
            Err(Corruption::FramePastEnd { bytes: frame_bytes })
        };
    }
    // Both fit in usize: they are at most `rest.len()`.
    Ok(Extent::Frame {
        record_bytes: record_bytes as usize,
        frame_bytes: frame_bytes as usize,
    })
}

/// Decodes a `walpb.Record` and checks it against the running `crc`, which it advances.
fn verify_record(record_data: &[u8], crc: &mut u32) -> Result<Record, Corruption> {
    let record =
        decode_shaped::<Record>(&RECORD_SHAPE, record_data).ok_or(Corruption::BadRecord)?;
    let data = record.data.as_deref().unwrap_or_default();
    if record.record_type == RecordType::Crc.wire() {
        if !data.is_empty() {
            return Err(Corruption::CrcRecordWithData);
        }
        // A reader that starts at this segment has no running CRC yet and adopts this one.
        if *crc != 0 && record.crc != *crc {
            return Err(Corruption::CrcChainBroken {
                stored: record.crc,
                running: *crc,
            });
        }
        *crc = record.crc;
    } else {
        let computed = chain_crc(*crc, data);
        if computed != record.crc {
            return Err(Corruption::CrcMismatch {
                record_type: record.record_type,
                stored: record.crc,
                computed,
            });
        }
        *crc = computed;
    }
    Ok(record)
}

/// Decodes a verified record's payload according to its type.
fn decode_body(record_type: i64, data: &[u8]) -> Result<RecordBody, Corruption> {
    let Some(kind) = RecordType::from_wire(record_type) else {
        return Err(Corruption::UnknownRecordType(record_type));
    };
    let body = match kind {
        RecordType::Metadata => Some(RecordBody::Metadata(data.to_vec())),
        RecordType::Crc => Some(RecordBody::Crc),
        RecordType::Entry => decode_shaped::<Entry>(&ENTRY_SHAPE, data)
            .filter(|e| EntryType::try_from(e.entry_type).is_ok())
            .map(RecordBody::Entry),
        RecordType::State => {
            decode_shaped::<HardState>(&HARD_STATE_SHAPE, data).map(RecordBody::HardState)
        }
        RecordType::Snapshot => {
            decode_shaped::<SnapshotMark>(&SNAPSHOT_MARK_SHAPE, data).map(RecordBody::Snapshot)
        }
    };
    body.ok_or(Corruption::BadBody(kind))
}

fn is_zero(bytes: &[u8]) -> bool {
    bytes.iter().all(|&b| b == 0)
}

/// True when some sector-aligned piece of `bytes` (which start at `file_offset`) is all zero.
fn has_zero_sector(file_offset: u64, bytes: &[u8]) -> bool {
    let mut start = 0usize;
    let mut at = file_offset;
    while start < bytes.len() {
        let to_boundary = (SECTOR_BYTES - at % SECTOR_BYTES) as usize;
        let end = bytes.len().min(start + to_boundary);
        if is_zero(&bytes[start..end]) {
            return true;
        }
        at += (end - start) as u64;
        start = end;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::append_frame;
    use prost::Message;

    fn segment_with(records: &[(RecordType, Option<Vec<u8>>)]) -> (Vec<u8>, Vec<u32>) {
        let mut out = Vec::new();
        let mut crc = 0;
        let mut crcs = Vec::new();
        for (kind, data) in records {
            if *kind != RecordType::Crc {
                crc = chain_crc(crc, data.as_deref().unwrap_or_default());
            }
            crcs.push(crc);
            append_frame(&mut out, *kind, crc, data.as_deref());
        }
        (out, crcs)
    }

    type Decoded = (Vec<Frame>, Option<&'static str>);

    fn decode_all(seg: &[u8], is_last: bool) -> Result<Decoded, (u64, Corruption)> {
        let mut crc = 0;
        let mut frames = Vec::new();
        let mut offset = 0usize;
        loop {
            let pos = FramePos {
                offset,
                is_last,
                first: frames.is_empty(),
            };
            match decode_frame(seg, &pos, &mut crc)? {
                Step::Record(f) => {
                    offset += f.frame_bytes as usize;
                    frames.push(f);
                }
                Step::End { torn } => return Ok((frames, torn)),
            }
        }
    }

    fn sample() -> Vec<(RecordType, Option<Vec<u8>>)> {
        vec![
            (RecordType::Crc, None),
            (RecordType::Metadata, Some(b"meta".to_vec())),
            (
                RecordType::Entry,
                Some(Entry::normal(1, 1, vec![7; 700]).encode_to_vec()),
            ),
            (
                RecordType::State,
                Some(
                    HardState {
                        term: 1,
                        vote: 1,
                        commit: 1,
                    }
                    .encode_to_vec(),
                ),
            ),
        ]
    }

    #[test]
    fn decodes_a_segment_and_ends_at_zeroes() {
        // Proves a well-formed segment decodes fully and a zero tail ends it cleanly.
        let (mut seg, crcs) = segment_with(&sample());
        seg.resize(seg.len() + 4096, 0);
        let (frames, torn) = decode_all(&seg, false).expect("clean");
        assert_eq!(frames.len(), 4);
        assert_eq!(torn, None);
        assert_eq!(frames.iter().map(|f| f.crc).collect::<Vec<_>>(), crcs);
        assert!(matches!(frames[2].body, RecordBody::Entry(ref e) if e.index == 1));
    }

    #[test]
    fn zeroed_sector_inside_the_last_record_is_torn_only_in_the_last_segment() {
        // Proves the torn rule: a zeroed sector of a bad record ends the last segment only.
        let (mut seg, _) = segment_with(&sample());
        seg.resize(2048, 0);
        let (clean, _) = decode_all(&seg, true).expect("clean");
        let entry_start = clean[2].offset as usize;
        let sector = (entry_start / 512 + 1) * 512;
        assert!(sector < entry_start + clean[2].frame_bytes as usize);
        seg[sector..sector + 512].fill(0);
        let (frames, torn) = decode_all(&seg, true).expect("torn is clean");
        assert_eq!(frames.len(), 2);
        assert!(torn.is_some());
        let (offset, what) = decode_all(&seg, false).expect_err("corrupt in the middle");
        assert_eq!(offset, entry_start as u64);
        assert!(matches!(what, Corruption::CrcMismatch { .. }), "{what:?}");
    }

    #[test]
    fn every_truncation_yields_the_complete_prefix() {
        // Proves truncating the last segment anywhere keeps exactly the complete frames.
        let (seg, _) = segment_with(&sample());
        let (all, _) = decode_all(&seg, true).expect("clean");
        for cut in 0..=seg.len() {
            let (frames, _) = decode_all(&seg[..cut], true).expect("clean prefix");
            let want: Vec<_> = all
                .iter()
                .filter(|f| f.offset + f.frame_bytes <= cut as u64)
                .cloned()
                .collect();
            assert_eq!(frames, want, "cut at {cut}");
        }
    }

    #[test]
    fn first_record_must_be_a_crc_record() {
        // Proves a segment that does not start with a crc record is corrupt.
        let (seg, _) = segment_with(&sample()[1..]);
        let (offset, what) = decode_all(&seg, true).expect_err("no crc record");
        assert_eq!(offset, 0);
        assert_eq!(what, Corruption::MissingCrcRecord("metadata"));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..2048), is_last: bool) {
            // Proves decoding any bytes gives records, a clean end or a typed error, no panic.
            let _ = decode_all(&bytes, is_last);
        }

        #[test]
        fn damaged_segments_never_panic(cut in 0usize..1200, garbage in proptest::collection::vec(proptest::num::u8::ANY, 0..600), is_last: bool) {
            // Proves a valid prefix followed by arbitrary bytes decodes without panicking, and
            // that everything decoded before the damage is the valid prefix.
            let (seg, _) = segment_with(&sample());
            let cut = cut.min(seg.len());
            let mut damaged = seg[..cut].to_vec();
            damaged.extend_from_slice(&garbage);
            let (clean, _) = decode_all(&seg, true).expect("clean");
            if let Ok((frames, _)) = decode_all(&damaged, is_last) {
                for (got, want) in frames.iter().zip(&clean) {
                    if want.offset + want.frame_bytes <= cut as u64 {
                        proptest::prop_assert_eq!(got, want);
                    }
                }
            }
        }
    }
}
