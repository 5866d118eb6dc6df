//! Errors of the engine. Corruption is a value naming the file and byte offset; nothing read
//! from disk can make the engine panic.

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}: {source}", file.display())]
    Io {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: corrupt at offset {offset}: {what}", file.display())]
    Corrupted {
        file: PathBuf,
        offset: u64,
        what: Corruption,
    },
    #[error("{}: database is locked by another process", file.display())]
    Locked { file: PathBuf },
    #[error("database is in read-only mode")]
    ReadOnly,
    #[error("bucket not found")]
    BucketNotFound,
    #[error("bucket already exists")]
    BucketExists,
    #[error("bucket name required")]
    BucketNameRequired,
    #[error("key required")]
    KeyRequired,
    #[error("key too large")]
    KeyTooLarge,
    #[error("value too large")]
    ValueTooLarge,
    #[error("incompatible value")]
    IncompatibleValue,
    #[error("{}: consistency check failed: {}", file.display(), problems.join("; "))]
    Check {
        file: PathBuf,
        problems: Vec<String>,
    },
    #[error("{}: a durable write failed earlier; reopen the database", file.display())]
    Poisoned { file: PathBuf },
    #[error("invalid page size {0}: must be a power of two from 512 to 1048576")]
    InvalidPageSize(u32),
    #[error("{}: database would exceed the largest mappable size", file.display())]
    MapTooLarge { file: PathBuf },
}

/// What exactly is wrong with a corrupt file.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Corruption {
    #[error("file is too short to hold its meta pages ({len} bytes)")]
    Truncated { len: u64 },
    #[error("bad magic 0x{0:08x} (not a bbolt file)")]
    BadMagic(u32),
    #[error("unsupported format version {0}")]
    BadVersion(u32),
    #[error("meta checksum mismatch (stored 0x{stored:016x}, computed 0x{computed:016x})")]
    BadChecksum { stored: u64, computed: u64 },
    #[error("invalid page size {0}")]
    BadPageSize(u32),
    #[error("page {pgid} is beyond the high water mark {high_water}")]
    PageOutOfRange { pgid: u64, high_water: u64 },
    #[error("file length {len} is shorter than the {needed} bytes the meta page claims")]
    ShortFile { len: u64, needed: u64 },
    #[error("{0}")]
    BadPage(String),
}

impl Error {
    pub(crate) fn io(file: &std::path::Path, source: std::io::Error) -> Error {
        Error::Io {
            file: file.to_path_buf(),
            source,
        }
    }
}
