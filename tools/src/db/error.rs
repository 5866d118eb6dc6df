//! The one error type of `oxutl db`.
//!
//! Invariant: every variant's Display is a single line that names the data file it concerns
//! (except [`ToolError::Output`], which concerns stdout), so the binary prints it unchanged.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ToolError {
    #[error("{}: no such file", .file.display())]
    NotFound { file: PathBuf },
    #[error("{}", engine_line(.file, .source))]
    Engine {
        file: PathBuf,
        source: oxcd_engine::Error,
    },
    #[error("{}: bucket not found: {bucket}", .file.display())]
    BucketNotFound { file: PathBuf, bucket: String },
    #[error("{}: key not found in bucket {bucket}: {key}", .file.display())]
    KeyNotFound {
        file: PathBuf,
        bucket: String,
        key: String,
    },
    #[error("{}: {key} in bucket {bucket} is a nested bucket, not a value", .file.display())]
    KeyIsBucket {
        file: PathBuf,
        bucket: String,
        key: String,
    },
    #[error("{}: page {id} does not exist (the file has {high_water} pages)", .file.display())]
    PageNotFound {
        file: PathBuf,
        id: u64,
        high_water: u64,
    },
    #[error("{}: page {id} cannot be decoded: {reason}", .file.display())]
    BadPage {
        file: PathBuf,
        id: u64,
        reason: String,
    },
    #[error("{}: check found {count} problem(s)", .file.display())]
    CheckFailed { file: PathBuf, count: usize },
    #[error("{}: {reason}", .file.display())]
    Refused { file: PathBuf, reason: String },
    #[error("{}: {source}", .file.display())]
    Io {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("writing output: {0}")]
    Output(#[from] std::io::Error),
}

impl ToolError {
    pub fn engine(file: &Path, source: oxcd_engine::Error) -> Self {
        ToolError::Engine {
            file: file.to_path_buf(),
            source,
        }
    }

    /// True when stdout was closed by the reader (`oxutl db keys ... | head`): not a failure.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, ToolError::Output(err) if err.kind() == std::io::ErrorKind::BrokenPipe)
    }
}

/// The engine's message on one line, prefixed with the file unless it already names it.
fn engine_line(file: &Path, source: &oxcd_engine::Error) -> String {
    let message = one_line(&source.to_string());
    let file = file.display().to_string();
    if message.contains(&file) {
        message
    } else {
        format!("{file}: {message}")
    }
}

fn one_line(text: &str) -> String {
    text.trim()
        .lines()
        .map(str::trim)
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    // Multi-line messages collapse to one line so stderr stays one line per error.
    #[test]
    fn one_line_joins_lines() {
        assert_eq!(one_line("a\n  b\nc\n"), "a; b; c");
        assert_eq!(one_line("single"), "single");
    }

    // Every file-bound error names its file.
    #[test]
    fn messages_name_the_file() {
        let err = ToolError::BucketNotFound {
            file: PathBuf::from("/tmp/x.db"),
            bucket: "key".into(),
        };
        assert_eq!(err.to_string(), "/tmp/x.db: bucket not found: key");
        let err = ToolError::NotFound {
            file: PathBuf::from("/tmp/y.db"),
        };
        assert_eq!(err.to_string(), "/tmp/y.db: no such file");
    }
}
