//! The run journal: `results/<run-id>/journal.jsonl`, append-only, one JSON
//! record a line, each synced to disk before chatprobe goes on. An `intent`
//! is written before every send and an `outcome` after it, so after any crash
//! the journal says exactly which sends may have happened and which did.
//! sends.csv, trials.csv and run.json are rebuilt from it.
//!
//! Every record ends with its checksum (`"sum"`: the first 16 hex digits of
//! the SHA-256 of the record without it), so a record edited, bit-flipped
//! or torn is told from a whole one. A line cut short by a crash (the last
//! one) is ignored on reading, and cut off when the journal is next opened
//! for appending; a damaged record anywhere else is an error naming the
//! line, and [`scan`] gives what `run --resume --repair` needs to go on
//! from the records before it. Journals written before checksums (no
//! `sum` on any line) read as they always did.

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

/// The space kept free beside the journal (`journal.reserve`), given up
/// when the disk is full so that the stop record can still be written.
const RESERVE_BYTES: usize = 64 * 1024;
/// Its file name.
pub const RESERVE_FILE: &str = "journal.reserve";

/// An open journal, appending.
pub struct Journal {
    file: File,
    path: PathBuf,
    /// Records appended by this process.
    appended: usize,
    /// Simulated crash: the append after this many fails (tests).
    crash_after: Option<usize>,
    /// Simulated full disk: appends after this many fail with
    /// `StorageFull` until the reserve is given up (tests).
    full_after: Option<usize>,
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
            if parse_line(&tail).is_ok() {
                file.write_all(b"\n")?;
            } else {
                file.set_len(offset)?;
            }
            file.sync_data()?;
        }
        // Space for the stop record of a run stopped by a full disk.
        let reserve = dir.join(RESERVE_FILE);
        if !reserve.exists() {
            let _ = crate::fsutil::atomic_write_bytes(&reserve, &[0u8; RESERVE_BYTES]);
        }
        Ok(Journal {
            file,
            path,
            appended: 0,
            crash_after: None,
            full_after: None,
        })
    }

    /// Fail every append after the first `n` of this process with a full
    /// disk (`StorageFull`), until [`Journal::free_reserve`] (fault
    /// injection).
    pub fn full_after(&mut self, n: Option<usize>) {
        self.full_after = n;
    }

    /// Give up the reserved space (the disk is full): the stop record and
    /// run.json can then still be written.
    pub fn free_reserve(&mut self) {
        if let Some(dir) = self.path.parent() {
            let _ = std::fs::remove_file(dir.join(RESERVE_FILE));
        }
        self.full_after = None;
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
        if self.full_after.is_some_and(|n| self.appended >= n) {
            return Err(std::io::Error::from(std::io::ErrorKind::StorageFull));
        }
        let mut line = line_of(r).map_err(std::io::Error::other)?;
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

/// Length of a record's checksum, in hex digits.
const SUM_LEN: usize = 16;
/// What ends a checksummed line before its digits.
const SUM_KEY: &[u8] = b",\"sum\":\"";

/// A record as one journal line (without its newline): its JSON with the
/// checksum of that JSON as a last key.
pub fn line_of(r: &Record) -> serde_json::Result<Vec<u8>> {
    let mut line = serde_json::to_vec(r)?;
    let sum = checksum(&line);
    line.pop(); // the closing brace
    line.extend_from_slice(SUM_KEY);
    line.extend_from_slice(sum.as_bytes());
    line.extend_from_slice(b"\"}");
    Ok(line)
}

fn checksum(json: &[u8]) -> String {
    crate::corpus::hash::sha256_hex(json)[..SUM_LEN].to_string()
}

/// Why a line is not a whole record.
#[derive(Debug, Clone, PartialEq)]
pub enum Damage {
    /// Cut short: the line ends before its record does.
    Torn(String),
    /// Not a record (garbled, not JSON, an unknown event).
    Malformed(String),
    /// A record whose checksum does not match what it says (edited or
    /// damaged in place).
    Checksum,
    /// A record without a checksum after records with one.
    NoChecksum,
}

impl std::fmt::Display for Damage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Damage::Torn(e) => write!(f, "a record cut short ({e})"),
            Damage::Malformed(e) => write!(f, "not a record ({e})"),
            Damage::Checksum => {
                write!(
                    f,
                    "its checksum does not match its content (edited or damaged)"
                )
            }
            Damage::NoChecksum => write!(f, "a record without a checksum among checksummed ones"),
        }
    }
}

/// One line: its record, and whether it carried a checksum.
fn parse_line(l: &[u8]) -> Result<(Record, bool), Damage> {
    let l = l.trim_ascii_end();
    if l.last() != Some(&b'}') {
        let e = serde_json::from_slice::<Record>(l).err();
        return Err(Damage::Torn(e.map(|e| e.to_string()).unwrap_or_default()));
    }
    let tail = SUM_KEY.len() + SUM_LEN + 2;
    if l.len() > tail && l[l.len() - tail..].starts_with(SUM_KEY) && l.ends_with(b"\"}") {
        let digits = &l[l.len() - SUM_LEN - 2..l.len() - 2];
        let mut json = l[..l.len() - tail].to_vec();
        json.push(b'}');
        let r = serde_json::from_slice::<Record>(&json)
            .map_err(|e| Damage::Malformed(e.to_string()))?;
        if checksum(&json).as_bytes() != digits {
            return Err(Damage::Checksum);
        }
        return Ok((r, true));
    }
    serde_json::from_slice::<Record>(l)
        .map(|r| (r, false))
        .map_err(|e| Damage::Malformed(e.to_string()))
}

/// A journal read line by line, whole or not.
#[derive(Debug, Clone)]
pub struct Scan {
    /// Its path.
    pub path: PathBuf,
    /// Each non-blank line: its number (1-based) and its record or damage.
    pub lines: Vec<(u64, Result<Record, Damage>)>,
}

impl Scan {
    /// The first damaged line that counts: not the last line (cut by a
    /// crash), nor a torn line an earlier chatprobe left before a resume's
    /// start record.
    pub fn first_damage(&self) -> Option<(usize, &Damage)> {
        let n = self.lines.len();
        (0..n).find_map(|i| {
            let Err(d) = &self.lines[i].1 else {
                return None;
            };
            let last = i + 1 == n;
            let torn_before_start = matches!(d, Damage::Torn(_))
                && matches!(self.lines.get(i + 1), Some((_, Ok(Record::Start { .. }))));
            (!last && !torn_before_start).then_some((i, d))
        })
    }

    /// The whole records, in order.
    pub fn records(&self) -> impl Iterator<Item = &Record> {
        self.lines.iter().filter_map(|(_, r)| r.as_ref().ok())
    }
}

/// Read `dir/journal.jsonl` line by line, keeping damaged lines as such.
pub fn scan(dir: &Path) -> Result<Scan, InputError> {
    let path = dir.join(JOURNAL_FILE);
    let f = File::open(&path).map_err(|e| {
        InputError::new(&path, format!("cannot read the journal: {e}"))
            .hint("pass a run folder made by `chatprobe run` (results/<run-id>)")
    })?;
    // Bytes, not text: a crash can cut a line inside a character (texts are
    // often Chinese), and that torn line must not make the rest unreadable.
    let raw: Vec<Vec<u8>> = BufReader::new(f)
        .split(b'\n')
        .collect::<Result<_, _>>()
        .map_err(|e| InputError::new(&path, format!("cannot read the journal: {e}")))?;
    let mut lines = Vec::with_capacity(raw.len());
    let mut summed = false;
    for (i, l) in raw.iter().enumerate() {
        if l.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let r = match parse_line(l) {
            Ok((_, false)) if summed => Err(Damage::NoChecksum),
            Ok((r, has)) => {
                summed |= has;
                Ok(r)
            }
            Err(d) => Err(d),
        };
        lines.push((i as u64 + 1, r));
    }
    Ok(Scan { path, lines })
}

/// Read every record of `dir/journal.jsonl`, refusing a damaged one.
pub fn read(dir: &Path) -> Result<Vec<Record>, InputError> {
    let scan = scan(dir)?;
    if let Some((i, d)) = scan.first_damage() {
        let (line, _) = scan.lines[i];
        let whole = scan.lines[..i].iter().filter(|(_, r)| r.is_ok()).count();
        // Anywhere but at the end a damaged record hides what it recorded
        // (an intent lost there was sent again on resume): refuse.
        return Err(InputError::new(
            &scan.path,
            format!("a damaged record in the middle of the journal: {d}"),
        )
        .line(line)
        .hint(format!(
            "the journal is append-only and only its last line can be cut by a crash; restore journal.jsonl from a copy of the run folder, or `chatprobe run --resume {} --repair` keeps the {whole} records before line {line} and settles every send after it by looking (never by sending)",
            dir.display()
        )));
    }
    Ok(scan.records().cloned().collect())
}
