//! What the benchmarks share: the testbed started as its own process.

use std::io::BufRead;
use std::path::Path;
use std::process::{Command, Stdio};

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
