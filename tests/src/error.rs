//! The harness's single error type: a message meant for the person reading a failed test.
//!
//! Tests return `Result<(), Error>`; the test runner prints the error with `Debug`, so `Debug`
//! prints the message verbatim (multi-line oracle output stays readable).

use std::fmt;

/// A harness failure, already phrased for a human.
pub struct Error(String);

/// Result with the harness [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error with this message.
    pub fn msg(message: impl Into<String>) -> Error {
        Error(message.into())
    }

    /// This error with `context` put in front of it.
    pub fn context(self, context: impl fmt::Display) -> Error {
        Error(format!("{context}: {}", self.0))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl From<oxcd_engine::Error> for Error {
    fn from(e: oxcd_engine::Error) -> Error {
        match e {
            // One problem a line: a failed check can list hundreds.
            oxcd_engine::Error::Check { file, problems } => {
                let shown = problems
                    .iter()
                    .take(40)
                    .map(String::as_str)
                    .collect::<Vec<_>>();
                Error(format!(
                    "engine: {}: consistency check failed ({} problems):\n  {}",
                    file.display(),
                    problems.len(),
                    shown.join("\n  ")
                ))
            }
            other => Error(format!("engine: {other}")),
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Error {
        Error(format!("io: {e}"))
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Error {
        Error(format!("json: {e}"))
    }
}

/// Return early with a formatted [`Error`].
#[macro_export]
macro_rules! bail {
    ($($arg:tt)*) => {
        return Err($crate::Error::msg(format!($($arg)*)))
    };
}

/// Return early with a formatted [`Error`] unless the condition holds.
#[macro_export]
macro_rules! ensure {
    ($cond:expr, $($arg:tt)*) => {
        if !$cond {
            $crate::bail!($($arg)*);
        }
    };
}
