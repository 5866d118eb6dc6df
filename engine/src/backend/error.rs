//! Errors of the backend. Engine errors pass through unchanged; the backend adds the states a
//! plain `Db` does not have (closed, failed) and a bucket name where etcd would log one.

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Engine(#[from] crate::Error),
    /// A write named a bucket that does not exist (etcd treats this as fatal).
    #[error("backend: bucket {:?} not found", String::from_utf8_lossy(name))]
    BucketNotFound { name: Vec<u8> },
    /// `close()` was called, or every handle was dropped.
    #[error("backend: closed")]
    Closed,
    /// A commit (or the reopen after a defrag) failed. Readers had already been shown writes
    /// that may now never reach the disk, so the backend refuses all further use; the caller
    /// must stop, as etcd does (it exits on a failed backend commit).
    #[error("backend: failed and refuses further use: {reason}")]
    Failed { reason: String },
    /// A file operation of the backend itself (defrag's temp file, rename, directory sync).
    #[error("backend: {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl Error {
    pub(super) fn io(path: &std::path::Path, source: std::io::Error) -> Error {
        Error::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
