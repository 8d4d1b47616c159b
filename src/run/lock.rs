//! One process per run folder (and per `--every` campaign): an OS file lock
//! (`flock` on Unix, through `std::fs::File::try_lock`) held for the life of
//! a run or resume. The kernel drops it when the process dies, kill -9
//! included, so a crash never leaves a stale lock; the holder's pid is
//! written into the file only to name it in the refusal.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::error::InputError;

/// The lock file inside a run folder.
pub const LOCK_FILE: &str = ".lock";

/// A held lock; released on drop (and by the kernel when the process dies).
#[derive(Debug)]
pub struct RunLock {
    _file: File,
    path: PathBuf,
}

impl RunLock {
    /// Take the lock at `path`, or refuse (bad input, exit 2) naming the pid
    /// that holds it. `what` says what is locked, for the message.
    pub fn acquire(path: &Path, what: &str) -> Result<RunLock, InputError> {
        match RunLock::try_acquire(path)? {
            Ok(l) => Ok(l),
            Err(who) => Err(
                InputError::new(path, format!("{what} is already being run by {who}"))
                    .hint("wait for it to finish, or stop it (Ctrl-C / kill) and resume then"),
            ),
        }
    }

    /// Take the lock at `path`, or say who holds it (`Ok(Err(holder))`).
    pub fn try_acquire(path: &Path) -> Result<Result<RunLock, String>, InputError> {
        let mut f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| InputError::new(path, format!("cannot open the lock file: {e}")))?;
        match f.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = f.read_to_string(&mut holder);
                let holder = holder.trim();
                let who = if holder.is_empty() {
                    "another chatprobe process".to_string()
                } else {
                    format!("chatprobe (pid {holder})")
                };
                return Ok(Err(who));
            }
            Err(TryLockError::Error(e)) => {
                return Err(InputError::new(path, format!("cannot lock: {e}")))
            }
        }
        let _ = f.set_len(0);
        let _ = f.seek(SeekFrom::Start(0));
        let _ = write!(f, "{}", std::process::id());
        let _ = f.flush();
        Ok(Ok(RunLock {
            _file: f,
            path: path.to_path_buf(),
        }))
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_until_the_first_lets_go() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join(LOCK_FILE);
        let a = RunLock::acquire(&p, "this run").unwrap();
        let e = RunLock::acquire(&p, "this run").unwrap_err();
        assert!(
            e.message.contains(&format!("pid {}", std::process::id())),
            "{e}"
        );
        drop(a);
        RunLock::acquire(&p, "this run").unwrap();
    }
}
