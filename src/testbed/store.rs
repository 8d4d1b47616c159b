//! The testbed's durable state: `state.jsonl` and `files/` in a state folder
//! (`chatprobe testbed --state DIR`; a run's embedded testbed uses
//! `<run>/testbed/`), so that a testbed killed with -9 and started again
//! carries on as if nothing happened — the same messages in every chat, the
//! same hash indexes with the same expiry times, the inspections still
//! pending due when they were due, and the engine's random stream at the
//! same position.
//!
//! Every change of state is one JSON line, written and fsync'd under the
//! engine's state lock (so the lines are in the order the changes happened)
//! and before the ground truth line that reports it; each line carries the
//! truth records it implies, so a crash between the two writes is repaired
//! on the next start by appending the truth lines that are missing. A torn
//! last line (a crash mid-write) is ignored: the change it described never
//! reached anyone.

use std::collections::HashSet;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::engine::{Message, Truth};
use super::policy::{Channel, ContentKind};

/// The journal's file name inside the state folder.
pub const STATE_FILE: &str = "state.jsonl";
/// The stored files' folder inside the state folder.
pub const FILES_DIR: &str = "files";

/// An inspection waiting for its due time.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Queued {
    /// The transmission inspected.
    pub id: u64,
    /// Its channel.
    pub channel: Channel,
    /// MD5 of the stored bytes.
    pub md5: String,
    /// SHA-256 (storage name).
    pub sha256: String,
    /// The file name as uploaded.
    pub name: String,
    /// image | document.
    pub kind: ContentKind,
    /// When queued (RFC 3339, as the truth reports it).
    pub queued_at: String,
    /// When it is due.
    pub due_at: DateTime<Utc>,
}

/// An MD5 added to an index.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Added {
    /// The index.
    pub channel: Channel,
    /// The MD5.
    pub md5: String,
    /// Which insertion (a later one of the same MD5 outlives this one's expiry).
    pub generation: u64,
    /// When it expires (never when empty).
    pub expires_at: Option<DateTime<Utc>>,
}

/// One change of state.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Change {
    /// A message was stored (and maybe queued for inspection).
    Message {
        /// The message.
        message: Box<Message>,
        /// Its chat's storage key.
        key: String,
        /// Whether receivers see it.
        delivered: bool,
        /// The inspection it queued.
        queued: Option<Queued>,
        /// The random stream's position after its draws (a decimal u128:
        /// JSON numbers in tagged enums stop at 64 bits).
        rng_pos: String,
        /// Its truth record.
        truth: Box<Truth>,
    },
    /// An inspection finished.
    Inspected {
        /// The transmission.
        id: u64,
        /// MD5s it added.
        added: Vec<Added>,
        /// The random stream's position after its draws (a decimal u128:
        /// JSON numbers in tagged enums stop at 64 bits).
        rng_pos: String,
        /// Its truth records.
        truth: Vec<Truth>,
    },
    /// An MD5 expired from an index.
    Expired {
        /// The index.
        channel: Channel,
        /// The MD5.
        md5: String,
        /// The insertion that expired.
        generation: u64,
        /// Its truth record.
        truth: Truth,
    },
}

/// The random stream's position as journaled.
pub fn pos_text(pos: u128) -> String {
    pos.to_string()
}

/// Read a journaled position (0 if unreadable).
pub fn pos_parse(s: &str) -> u128 {
    s.parse().unwrap_or(0)
}

/// The append-only journal of changes.
pub struct Store {
    file: std::fs::File,
    path: PathBuf,
}

impl Store {
    /// Open (creating) the state folder `dir`; returns the store and the
    /// changes already in it.
    pub fn open(dir: &Path) -> std::io::Result<(Store, Vec<Change>)> {
        let path = dir.join(STATE_FILE);
        let mut changes = Vec::new();
        if path.is_file() {
            let f = std::fs::File::open(&path)?;
            let lines: Vec<String> = std::io::BufReader::new(f)
                .lines()
                .collect::<Result<_, _>>()?;
            let n = lines.len();
            for (i, line) in lines.iter().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                match serde_json::from_str::<Change>(line) {
                    Ok(c) => changes.push(c),
                    // A torn last line: the crash came mid-write.
                    Err(_) if i + 1 == n => {}
                    Err(e) => {
                        return Err(std::io::Error::new(
                            std::io::ErrorKind::InvalidData,
                            format!("{}:{}: {e}", path.display(), i + 1),
                        ))
                    }
                }
            }
        }
        // Only a state that reads whole is opened for writing: a corrupt
        // one is refused before anything is made in its folder.
        std::fs::create_dir_all(dir.join(FILES_DIR))?;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)?;
        // Start on a fresh line if the last one was torn.
        if std::fs::metadata(&path)?.len() > 0 {
            let text = std::fs::read(&path)?;
            if text.last() != Some(&b'\n') {
                file.write_all(b"\n")?;
            }
        }
        Ok((Store { file, path }, changes))
    }

    /// Append one change and sync it to disk.
    pub fn append(&mut self, c: &Change) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(c).map_err(std::io::Error::other)?;
        line.push(b'\n');
        self.file.write_all(&line)?;
        self.file.sync_data()
    }

    /// The journal's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The truth records the changes imply that the truth file at `truth` lacks
/// (a crash fell between the two writes), in order.
pub fn missing_truth(changes: &[Change], truth: &Path) -> Vec<Truth> {
    let mut have: HashSet<String> = HashSet::new();
    if let Ok(f) = std::fs::File::open(truth) {
        for line in std::io::BufReader::new(f).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                have.insert(truth_key(&v));
            }
        }
    }
    let mut out = Vec::new();
    for c in changes {
        let ts: Vec<&Truth> = match c {
            Change::Message { truth, .. } => vec![&**truth],
            Change::Inspected { truth, .. } => truth.iter().collect(),
            Change::Expired { truth, .. } => vec![truth],
        };
        for t in ts {
            let v = serde_json::to_value(t).unwrap_or_default();
            if !have.contains(&truth_key(&v)) {
                out.push(t.clone());
            }
        }
    }
    out
}

/// What identifies a truth record: its event and the ids and times in it.
fn truth_key(v: &serde_json::Value) -> String {
    let f = |k: &str| v.get(k).map(|x| x.to_string()).unwrap_or_default();
    format!(
        "{}|{}|{}|{}|{}|{}",
        f("event"),
        f("id"),
        f("transmission"),
        f("channel"),
        f("md5"),
        f("at")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_corrupt_state_is_refused_before_anything_is_made() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(STATE_FILE),
            "{not json\n{\"also\": \"not\"}\n",
        )
        .unwrap();
        let e = Store::open(dir.path()).err().expect("refused");
        assert!(e.to_string().contains("state.jsonl:1"), "{e}");
        assert!(!dir.path().join(FILES_DIR).exists(), "files/ was made");
        std::fs::remove_file(dir.path().join(STATE_FILE)).unwrap();
        let (_, changes) = Store::open(dir.path()).unwrap();
        assert!(changes.is_empty());
        assert!(dir.path().join(FILES_DIR).is_dir());
    }
}
