//! Errors shared by every stage, and the mapping to exit codes.
//!
//! A stage returns its own `thiserror` type; anything that is the user's input
//! being wrong (a malformed file, a missing corpus file, an unknown transform)
//! is carried as an [`InputError`], which names the file, where in it, and the
//! fix. `main` maps an error chain holding an `InputError` to exit code 2 and
//! anything else to 1.

use std::fmt;
use std::path::{Path, PathBuf};

/// Exit code for success.
pub const EXIT_OK: i32 = 0;
/// Exit code for a failure of the tool or its environment.
pub const EXIT_FAILURE: i32 = 1;
/// Exit code for bad input: the user must fix a file or an argument.
pub const EXIT_BAD_INPUT: i32 = 2;
/// Stopped by Ctrl-C or SIGTERM before the work was done (128 + SIGINT).
pub const EXIT_INTERRUPTED: i32 = 130;

/// Work stopped by Ctrl-C or SIGTERM (what was done is kept; the command
/// says how to continue).
#[derive(Debug, thiserror::Error)]
#[error("interrupted")]
pub struct Interrupted;

/// Bad input: names the file (or argument), where in it, what is wrong and the fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputError {
    /// The file at fault, or the argument's name (e.g. `--transform`).
    pub path: PathBuf,
    /// 1-based line in the file, when known.
    pub line: Option<u64>,
    /// The key or column at fault, when known.
    pub key: Option<String>,
    /// What is wrong.
    pub message: String,
    /// How to fix it (may be empty).
    pub hint: String,
}

impl InputError {
    /// A new input error about `path`.
    pub fn new(path: impl AsRef<Path>, message: impl Into<String>) -> Self {
        InputError {
            path: path.as_ref().to_path_buf(),
            line: None,
            key: None,
            message: message.into(),
            hint: String::new(),
        }
    }

    /// Set the 1-based line.
    pub fn line(mut self, line: u64) -> Self {
        self.line = Some(line);
        self
    }

    /// Set the key or column.
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Set the fix.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = hint.into();
        self
    }
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(key) = &self.key {
            write!(f, " [{key}]")?;
        }
        write!(f, ": {}", self.message)?;
        if !self.hint.is_empty() {
            write!(f, " — {}", self.hint)?;
        }
        Ok(())
    }
}

impl std::error::Error for InputError {}

/// Something that may be, or wrap, bad input.
pub trait MaybeInput {
    /// The input error inside, if this is bad input.
    fn input_error(&self) -> Option<&InputError>;
}
