//! What the benchmarks share: the testbed started as its own process, and a
//! child process timed with its peak memory. Each bench uses a part.

#![allow(dead_code)]

use std::io::BufRead;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

/// A `chatprobe testbed` process and its URL, killed when dropped.
pub struct Testbed(pub std::process::Child, pub String);

impl Drop for Testbed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Start `target/release/chatprobe testbed --policy POLICY --accounts
/// ACCOUNTS MORE…` and wait for its `listening on URL` line.
pub fn testbed(root: &Path, policy: &Path, accounts: &Path, more: &[&str]) -> Testbed {
    let bin = root.join("target/release/chatprobe");
    let mut child = Command::new(&bin)
        .args(["testbed", "--policy"])
        .arg(policy)
        .arg("--accounts")
        .arg(accounts)
        .args(more)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("target/release/chatprobe: run `cargo build --release` first (make bench does)");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap()
        .to_string();
    Testbed(child, url)
}

/// Run a command; wall seconds and the child's peak RSS in MiB (wait4).
pub fn measure(cmd: &mut Command) -> (f64, f64) {
    let t0 = Instant::now();
    let child = cmd.spawn().expect("start");
    let mut status = 0;
    // SAFETY: zeroed rusage is a valid out-parameter for wait4.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = child.id() as i32;
    // SAFETY: waiting for our own child, with valid pointers.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
    let secs = t0.elapsed().as_secs_f64();
    assert_eq!(r, pid, "wait4 failed");
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "{cmd:?} failed"
    );
    std::mem::forget(child);
    (secs, ru.ru_maxrss as f64 / 1024.0)
}
