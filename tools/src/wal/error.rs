//! The one error type of `oxutl wal`.
//!
//! Invariant: every variant's Display is a single line that names the directory or segment
//! file it concerns (and the offset, for damage), except [`WalToolError::Output`], which
//! concerns stdout; the binary prints it unchanged.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WalToolError {
    #[error("{}: no such directory", .dir.display())]
    NotFound { dir: PathBuf },
    #[error("{}: no WAL segments (*.wal) here or in member/wal", .dir.display())]
    NoSegments { dir: PathBuf },
    #[error("{}", wal_line(.dir, .source))]
    Wal {
        dir: PathBuf,
        source: oxcd_wal::Error,
    },
    /// Damage the WAL reader accepts but raft cannot (etcd's `ReadAll` refuses it too).
    #[error("{}: corrupt at offset {offset}: {what}", .file.display())]
    Damaged {
        file: PathBuf,
        offset: u64,
        what: String,
    },
    #[error(
        "{}: torn write at offset {offset} ({what}); the records before it are intact and \
         the server cuts the tail off when it opens the WAL",
        .file.display()
    )]
    TornTail {
        file: PathBuf,
        offset: u64,
        what: &'static str,
    },
    #[error("{}: {source}", .file.display())]
    Io {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: verify found {count} problem(s)", .dir.display())]
    VerifyFailed { dir: PathBuf, count: usize },
    #[error("writing output: {0}")]
    Output(#[from] std::io::Error),
}

impl WalToolError {
    /// Wraps an error of the WAL crate met while reading `dir`.
    pub fn wal(dir: &Path, source: oxcd_wal::Error) -> Self {
        match source {
            oxcd_wal::Error::NotFound { .. } => WalToolError::NoSegments {
                dir: dir.to_path_buf(),
            },
            source => WalToolError::Wal {
                dir: dir.to_path_buf(),
                source,
            },
        }
    }

    /// True when stdout was closed by the reader (`oxutl wal dump ... | head`): not a failure.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, WalToolError::Output(err) if err.kind() == std::io::ErrorKind::BrokenPipe)
    }
}

/// The WAL crate's message on one line, prefixed with the directory unless it already names
/// a file (its damage and I/O errors name the segment).
fn wal_line(dir: &Path, source: &oxcd_wal::Error) -> String {
    let message = source
        .to_string()
        .lines()
        .map(str::trim)
        .collect::<Vec<_>>()
        .join("; ");
    if message.contains(&dir.display().to_string()) {
        message
    } else {
        format!("{}: {message}", dir.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Every error names its directory or file on one line.
    #[test]
    fn messages_name_the_directory() {
        let dir = Path::new("/tmp/w");
        let err = WalToolError::wal(dir, oxcd_wal::Error::NoSnapshot);
        assert_eq!(err.to_string(), "/tmp/w: snap: no available snapshot");
        let err = WalToolError::wal(
            dir,
            oxcd_wal::Error::NotFound {
                dir: dir.to_path_buf(),
            },
        );
        assert_eq!(
            err.to_string(),
            "/tmp/w: no WAL segments (*.wal) here or in member/wal"
        );
        assert_eq!(err.to_string().lines().count(), 1);
    }
}
