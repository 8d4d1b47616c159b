//! The run journal: `results/<run-id>/journal.jsonl`, append-only, one JSON
//! record a line, each synced to disk before chatprobe goes on. An `intent`
//! is written before every send and an `outcome` after it, so after any crash
//! the journal says exactly which sends may have happened and which did.
//! sends.csv, trials.csv and run.json are rebuilt from it.
//!
//! A line cut short by a crash (the last one) is ignored on reading, and cut
//! off when the journal is next opened for appending; a malformed line
//! anywhere else is an error naming the line.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::dataset::Outcome;
use crate::error::InputError;

/// The journal's file name in a run folder.
pub const JOURNAL_FILE: &str = "journal.jsonl";

/// One journal record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Record {
    /// The run started, or resumed.
    Start {
        /// When.
        at: DateTime<Utc>,
        /// The run id.
        run_id: String,
        /// A resume of an earlier start.
        resume: bool,
        /// `embedded-testbed` or `external`.
        platform: String,
        /// The platform's URL, for an external platform.
        base_url: Option<String>,
        /// chatprobe's version.
        version: String,
    },
    /// A probe file was made for a trial.
    File {
        /// The trial.
        trial_id: String,
        /// Which file of the trial: `fresh:A`, `mirror of fresh:A` …
        key: String,
        /// Path relative to the run folder.
        path: String,
        /// MD5 of the file.
        md5: String,
        /// pHash (images).
        phash: Option<String>,
        /// pHash distance to the original item (images).
        phash_distance: Option<u32>,
        /// Transform applied (empty for a fresh copy).
        transform: String,
        /// Variant id: `<item>--<transform slug>-s<seed>`.
        variant_id: String,
    },
    /// A send is about to be made.
    Intent {
        /// The send.
        send_id: String,
        /// Its trial.
        trial_id: String,
        /// 1 for the first try.
        attempt: u32,
        /// When this record was written.
        at: DateTime<Utc>,
        /// When the design wanted it.
        scheduled_at: DateTime<Utc>,
        /// The file key (see `File`), for files.
        file: Option<String>,
        /// The text, for texts.
        text: Option<String>,
        /// The nonce of its sentinel.
        nonce: String,
    },
    /// What a send gave.
    Outcome {
        /// The send.
        send_id: String,
        /// The attempt.
        attempt: u32,
        /// When recorded.
        at: DateTime<Utc>,
        /// The outcome.
        outcome: Outcome,
        /// Failure code, for `error`.
        failure: Option<String>,
        /// Error text, for `error`.
        error: Option<String>,
        /// When the probe was handed to the client.
        sent_at: Option<DateTime<Utc>>,
        /// When the receiver showed it.
        observed_at: Option<DateTime<Utc>>,
        /// When the receiver showed the sentinel.
        sentinel_observed_at: Option<DateTime<Utc>>,
        /// observed_at − sent_at.
        latency_ms: Option<i64>,
        /// Images recognised by picture: pHash bits between bubble and probe.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        match_distance: Option<u32>,
        /// Images recognised by picture: the margin over other images in flight.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        match_margin: Option<f64>,
        /// How a resume settled it: `history` (seen in the chat), `sentinel`
        /// (a new sentinel was sent) or `platform_restarted`.
        settled: Option<String>,
    },
    /// A resume found that an intent was never carried out (the sender's
    /// own chat does not show it): the send is still to be made.
    NotSent {
        /// The send.
        send_id: String,
        /// The attempt.
        attempt: u32,
        /// When settled.
        at: DateTime<Utc>,
    },
    /// A trial was given up (its platform state is gone).
    Abandon {
        /// The trial.
        trial_id: String,
        /// When.
        at: DateTime<Utc>,
        /// Why.
        reason: String,
    },
    /// The run stopped.
    Stop {
        /// When.
        at: DateTime<Utc>,
        /// `complete`, `interrupted` or `max_runtime`.
        reason: crate::dataset::manifest::StopReason,
    },
}

/// An open journal, appending.
pub struct Journal {
    file: File,
    path: PathBuf,
    /// Records appended by this process.
    appended: usize,
    /// Simulated crash: the append after this many fails (tests).
    crash_after: Option<usize>,
}

/// The error of an append past a simulated crash point: the process is, as
/// far as the run folder can tell, gone.
#[derive(Debug, thiserror::Error)]
#[error("simulated crash after {0} journal records")]
pub struct SimulatedCrash(pub usize);

impl Journal {
    /// Open (creating) `dir/journal.jsonl` for appending.
    pub fn open(dir: &Path) -> std::io::Result<Journal> {
        let path = dir.join(JOURNAL_FILE);
        let mut file = OpenOptions::new().create(true).append(true).open(&path)?;
        // A crash may have cut the last line. A whole record that only
        // lacks its newline is ended; a torn one (it never counted: `read`
        // skips it) is cut off, so that it cannot end up in the middle of
        // the journal, where it would read as corruption.
        let (offset, tail) = last_line(&path)?;
        if !tail.is_empty() {
            if serde_json::from_slice::<Record>(&tail).is_ok() {
                file.write_all(b"\n")?;
            } else {
                file.set_len(offset)?;
            }
            file.sync_data()?;
        }
        Ok(Journal {
            file,
            path,
            appended: 0,
            crash_after: None,
        })
    }

    /// Fail every append after the first `n` of this process, as if the
    /// process had been killed right after writing record `n` (fault
    /// injection: a run on the simulated platform is crashed at every
    /// journal position this way).
    pub fn crash_after(&mut self, n: Option<usize>) {
        self.crash_after = n;
    }

    /// Append one record and sync it to disk.
    pub fn append(&mut self, r: &Record) -> std::io::Result<()> {
        if self.crash_after.is_some_and(|n| self.appended >= n) {
            return Err(std::io::Error::other(SimulatedCrash(self.appended)));
        }
        let mut line = serde_json::to_vec(r).map_err(std::io::Error::other)?;
        line.push(b'\n');
        self.file.write_all(&line)?;
        self.file.sync_data()?;
        self.appended += 1;
        Ok(())
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The offset and bytes of the file's last line if it lacks its newline
/// (empty if it ends with one). Reads from the end, 1 MiB at a time.
fn last_line(path: &Path) -> std::io::Result<(u64, Vec<u8>)> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = File::open(path)?;
    let len = f.metadata()?.len();
    let mut start = len;
    let mut tail: Vec<u8> = Vec::new();
    while start > 0 {
        let step = start.min(1 << 20);
        start -= step;
        let mut chunk = vec![0u8; step as usize];
        f.seek(SeekFrom::Start(start))?;
        f.read_exact(&mut chunk)?;
        chunk.extend_from_slice(&tail);
        tail = chunk;
        if tail.last() == Some(&b'\n') {
            return Ok((len, Vec::new()));
        }
        if let Some(i) = tail.iter().rposition(|b| *b == b'\n') {
            return Ok((start + i as u64 + 1, tail.split_off(i + 1)));
        }
    }
    Ok((0, tail))
}

/// Read every record of `dir/journal.jsonl`.
pub fn read(dir: &Path) -> Result<Vec<Record>, InputError> {
    let path = dir.join(JOURNAL_FILE);
    let f = File::open(&path).map_err(|e| {
        InputError::new(&path, format!("cannot read the journal: {e}"))
            .hint("pass a run folder made by `chatprobe run` (results/<run-id>)")
    })?;
    // Bytes, not text: a crash can cut a line inside a character (texts are
    // often Chinese), and that torn line must not make the rest unreadable.
    let lines: Vec<Vec<u8>> = BufReader::new(f)
        .split(b'\n')
        .collect::<Result<_, _>>()
        .map_err(|e| InputError::new(&path, format!("cannot read the journal: {e}")))?;
    let blank = |l: &[u8]| l.iter().all(u8::is_ascii_whitespace);
    let mut out = Vec::with_capacity(lines.len());
    let last = lines.iter().rposition(|l| !blank(l));
    // The next record after line `i`, parsed.
    let next_record = |i: usize| {
        lines[i + 1..]
            .iter()
            .find(|l| !blank(l))
            .and_then(|l| serde_json::from_slice::<Record>(l).ok())
    };
    for (i, l) in lines.iter().enumerate() {
        if blank(l) {
            continue;
        }
        match serde_json::from_slice::<Record>(l) {
            Ok(r) => out.push(r),
            // The last line cut short by a crash: it never finished, so it
            // never counted (the next start cuts it off).
            Err(_) if Some(i) == last => {}
            // The same, left by an earlier chatprobe that did not cut it
            // before a resume: a torn line right before a start record.
            Err(_)
                if l.trim_ascii_end().last() != Some(&b'}')
                    && matches!(next_record(i), Some(Record::Start { .. })) => {}
            // Anywhere else a damaged record hides what it recorded (an
            // intent lost there was sent again on resume): refuse.
            Err(e) => {
                return Err(InputError::new(
                    &path,
                    format!("a damaged record in the middle of the journal: {e}"),
                )
                .line(i as u64 + 1)
                .hint(format!(
                    "the journal is append-only and only its last line can be cut by a crash; restore journal.jsonl from a copy of the run folder (the {} records before line {} are whole)",
                    out.len(),
                    i + 1
                )))
            }
        }
    }
    Ok(out)
}
