//! The crate's error type. Damage found on disk is always a value (`Corrupted`), never a
//! panic; every I/O error names the file it happened on.

use std::path::{Path, PathBuf};

use crate::layout::RecordType;

/// Result of WAL and snap operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Errors of the WAL and snap files.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An operating system call failed.
    #[error("{}: {source}", file.display())]
    Io {
        file: PathBuf,
        source: std::io::Error,
    },
    /// A file's content is damaged in a way a torn write cannot explain.
    #[error("{}: corrupt at offset {offset}: {what}", file.display())]
    Corrupted {
        file: PathBuf,
        offset: u64,
        what: Corruption,
    },
    /// The directory holds no segment (etcd: "wal: file not found").
    #[error("{}: wal: file not found", dir.display())]
    NotFound { dir: PathBuf },
    /// `create` was asked to create a WAL where segments already exist.
    #[error("{}: wal already exists", dir.display())]
    AlreadyExists { dir: PathBuf },
    /// No segment can hold the snapshot index: the oldest starts after it.
    #[error("{}: wal: no segment covers index {index} (oldest starts at {oldest})", dir.display())]
    IndexNotCovered {
        dir: PathBuf,
        index: u64,
        oldest: u64,
    },
    /// The snapshot mark the WAL was opened at was not found in it.
    #[error("wal: snapshot not found (index {index}, term {term})")]
    SnapshotNotFound { index: u64, term: u64 },
    /// A snapshot mark at the requested index has another term.
    #[error("wal: snapshot mismatch at index {index}: wanted term {wanted}, found {found}")]
    SnapshotMismatch { index: u64, wanted: u64, found: u64 },
    /// Another process (or another open `Wal`) holds a lock on a segment.
    #[error("{}: locked by another process", file.display())]
    Locked { file: PathBuf },
    /// An entry or record is larger than `layout::MAX_RECORD_BYTES`.
    #[error("wal: record of {bytes} bytes exceeds the {max} byte limit")]
    RecordTooLarge { bytes: u64, max: u64 },
    /// A previous write or sync failed; nothing more may be acknowledged. Reopen the WAL.
    #[error("wal: a previous write or sync failed; reopen the wal")]
    Poisoned,
    /// No valid snap file was found (etcd: "snap: no available snapshot").
    #[error("snap: no available snapshot")]
    NoSnapshot,
}

impl Error {
    pub(crate) fn io(file: &Path, source: std::io::Error) -> Error {
        Error::Io {
            file: file.to_path_buf(),
            source,
        }
    }

    pub(crate) fn corrupted(file: &Path, offset: u64, what: Corruption) -> Error {
        Error::Corrupted {
            file: file.to_path_buf(),
            offset,
            what,
        }
    }
}

/// What is wrong with damaged bytes.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Corruption {
    /// The frame's length word is malformed.
    #[error("bad length word 0x{word:016x}: {why}")]
    BadLengthWord { word: u64, why: &'static str },
    /// The length word claims a record over the size limit.
    #[error("record length {bytes} exceeds the limit")]
    RecordTooLarge { bytes: u64 },
    /// The frame runs past the end of a segment that is not the last one.
    #[error("frame of {bytes} bytes runs past the end of the segment")]
    FramePastEnd { bytes: u64 },
    /// Fewer than 8 non-zero bytes at the end of a segment that is not the last one.
    #[error("partial length word at the end of the segment")]
    PartialLengthWord,
    /// Non-zero bytes after a zero length word in a segment that is not the last one.
    #[error("data after the end-of-segment marker")]
    DataAfterEnd,
    /// The record bytes are not a `walpb.Record` of the expected shape.
    #[error("record does not decode")]
    BadRecord,
    /// The record's CRC does not match the running CRC.
    #[error("{record_type} record crc mismatch: stored 0x{stored:08x}, computed 0x{computed:08x}")]
    CrcMismatch {
        record_type: i64,
        stored: u32,
        computed: u32,
    },
    /// A crc record that does not carry the running CRC of the segments before.
    #[error("crc record carries 0x{stored:08x} but the running crc is 0x{running:08x}")]
    CrcChainBroken { stored: u32, running: u32 },
    /// A crc record with a payload.
    #[error("crc record has a payload")]
    CrcRecordWithData,
    /// The first record of a segment is not a crc record.
    #[error("segment starts with a {0} record, not a crc record")]
    MissingCrcRecord(&'static str),
    /// A record type outside 1..=5.
    #[error("unknown record type {0}")]
    UnknownRecordType(i64),
    /// A record's payload does not decode as its type's message.
    #[error("{0} record payload does not decode")]
    BadBody(RecordType),
    /// A metadata record that differs from an earlier one (etcd: ErrMetadataConflict).
    #[error("wal: conflicting metadata found")]
    MetadataConflict,
    /// Entries jump over an index.
    #[error("entry index {index} leaves a gap after index {last}")]
    IndexGap { index: u64, last: u64 },
    /// Segment sequence numbers are not consecutive.
    #[error("segment sequence {seq} does not follow {previous}")]
    SequenceGap { seq: u64, previous: u64 },
    /// No metadata record was found before the log ended.
    #[error("no metadata record")]
    MissingMetadata,
    /// A snap file is empty or has no data (etcd: ErrEmptySnapshot).
    #[error("snap: empty snapshot")]
    EmptySnapshot,
    /// A snap file's CRC does not match its data (etcd: ErrCRCMismatch).
    #[error("snap: crc mismatch: stored 0x{stored:08x}, computed 0x{computed:08x}")]
    SnapCrcMismatch { stored: u32, computed: u32 },
    /// A snap file or its snapshot does not decode.
    #[error("snap: does not decode")]
    BadSnapshot,
}
