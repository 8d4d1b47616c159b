//! The datasets of a run, as docs/DATASET.md defines them: `sends.csv` (one row
//! per transmission) and `trials.csv` (one row per trial). Row types here are
//! the contract between the run stage, which writes them, and the analysis,
//! which reads them — also from datasets made elsewhere.
//!
//! The shared vocabulary lives here too, below every stage that uses it:
//! [`Outcome`] and [`Failure`], the run folder's manifest
//! ([`manifest`], run.json) and the catalogue of runs ([`runs`]).
//!
//! Reading streams the file row by row and checks it as it goes: a missing
//! column, a value outside a closed vocabulary or a malformed time is an
//! [`InputError`] naming the file, the line and the column.

pub mod manifest;
pub mod merge;
pub mod package;
pub mod published;
pub mod runs;
pub mod tables;
mod vocabulary;

pub use vocabulary::{Failure, Outcome, Verdict};

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::InputError;

/// A boolean cell as every chatprobe CSV writes it: `TRUE` or `FALSE`, the
/// spelling that R's `read.csv`, pandas, DuckDB and Frictionless all read as
/// a boolean without options (R reads `true`/`false` as text).
pub fn bool_cell(b: bool) -> &'static str {
    if b {
        "TRUE"
    } else {
        "FALSE"
    }
}

/// A boolean cell as read: `TRUE`/`true`/`True` (and the same for false),
/// so that datasets written before 0.2 still read.
pub fn parse_bool_cell(s: &str) -> Option<bool> {
    match s {
        "TRUE" | "true" | "True" => Some(true),
        "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// serde helpers for boolean columns ([`bool_cell`], [`parse_bool_cell`]).
pub mod bool_column {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(b: &bool, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(super::bool_cell(*b))
    }

    /// An optional boolean: empty for `None`.
    pub mod option {
        use super::*;

        pub fn serialize<S: Serializer>(b: &Option<bool>, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_str(b.map_or("", super::super::bool_cell))
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
            let text = String::deserialize(d)?;
            if text.is_empty() {
                return Ok(None);
            }
            super::super::parse_bool_cell(&text)
                .map(Some)
                .ok_or_else(|| serde::de::Error::custom(format!("`{text}` is not TRUE or FALSE")))
        }
    }
}

/// serde helper for whole-number columns held as `f64` (a pHash distance,
/// a latency in milliseconds): written as integers (`386`, not `386.0`),
/// so that R, DuckDB and pandas read them as such; files of earlier
/// versions, which wrote `386.0`, still read. The readers check that the
/// values are whole.
pub mod whole_column {
    use serde::Serializer;

    pub fn serialize<S: Serializer>(v: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(x) if x.is_finite() && x.fract() == 0.0 && x.abs() < 9.0e15 => {
                s.serialize_i64(*x as i64)
            }
            Some(x) => s.serialize_f64(*x),
            None => s.serialize_none(),
        }
    }
}

/// The columns of sends.csv, in order.
pub const SEND_COLUMNS: [&str; 29] = [
    "run_id",
    "trial_id",
    "send_id",
    "experiment",
    "experiment_name",
    "role",
    "item_id",
    "variant_id",
    "content_kind",
    "label",
    "topic",
    "transform",
    "md5",
    "phash",
    "phash_distance",
    "channel",
    "chat",
    "sender",
    "sender_region",
    "receiver",
    "receiver_region",
    "scheduled_at",
    "sent_at",
    "observed_at",
    "offset_s",
    "outcome",
    "failure",
    "latency_ms",
    "attempt",
];

/// The columns of trials.csv, in order.
pub const TRIAL_COLUMNS: [&str; 13] = [
    "run_id",
    "trial_id",
    "experiment",
    "experiment_name",
    "item_id",
    "label",
    "content_kind",
    "topic",
    "channel",
    "parameter",
    "verdict",
    "seeded_outcome",
    "control_outcome",
];

/// One row of sends.csv.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SendRow {
    pub run_id: String,
    pub trial_id: String,
    pub send_id: String,
    pub experiment: String,
    pub experiment_name: String,
    pub role: String,
    pub item_id: String,
    pub variant_id: String,
    pub content_kind: String,
    pub label: String,
    pub topic: String,
    pub transform: String,
    pub md5: String,
    pub phash: String,
    #[serde(serialize_with = "whole_column::serialize")]
    pub phash_distance: Option<f64>,
    pub channel: String,
    pub chat: String,
    pub sender: String,
    pub sender_region: String,
    pub receiver: String,
    pub receiver_region: String,
    pub scheduled_at: String,
    pub sent_at: String,
    pub observed_at: String,
    pub offset_s: Option<f64>,
    pub outcome: Option<Outcome>,
    pub failure: String,
    #[serde(serialize_with = "whole_column::serialize")]
    pub latency_ms: Option<f64>,
    pub attempt: Option<u32>,
    /// Added column: the design's offset (seconds after the seed send) this
    /// send was planned at; `offset_s` is when it really went.
    #[serde(default)]
    pub planned_offset_s: Option<f64>,
    /// Added column: when the sentinel after the probe showed on the
    /// receiver's side.
    #[serde(default)]
    pub sentinel_observed_at: String,
    /// Added column: the harness's error text, for `error` outcomes.
    #[serde(default)]
    pub error: String,
    /// Added column: the attempt's nonce (its text's tag, its file's name,
    /// its sentinel's seed).
    #[serde(default)]
    pub nonce: String,
    /// Added column: images recognised by picture, the pHash distance (bits)
    /// between the received bubble and the picture sent.
    #[serde(default)]
    pub match_distance: Option<u32>,
    /// Added column: images recognised by picture, how clearly the bubble
    /// was this probe rather than another image in flight (z, ≥ the
    /// profile's margin; empty if no other image was close).
    #[serde(default)]
    pub match_margin: Option<f64>,
}

impl SendRow {
    /// Whether it was blocked, for a conclusive outcome (`blocked` or
    /// `delivered`); `None` for `lost`, `error` or none, which no table
    /// counts.
    pub fn blocked(&self) -> Option<bool> {
        self.outcome
            .filter(|o| o.conclusive())
            .map(|o| o == Outcome::Blocked)
    }

    /// [`SendRow::blocked`] for a `test` send; `None` for every other role.
    pub fn test_blocked(&self) -> Option<bool> {
        if self.role == "test" {
            self.blocked()
        } else {
            None
        }
    }
}

/// One row of trials.csv.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrialRow {
    pub run_id: String,
    pub trial_id: String,
    pub experiment: String,
    pub experiment_name: String,
    pub item_id: String,
    pub label: String,
    pub content_kind: String,
    pub topic: String,
    pub channel: String,
    pub parameter: String,
    pub verdict: Verdict,
    pub seeded_outcome: Option<Outcome>,
    pub control_outcome: Option<Outcome>,
}

/// Values allowed in the closed columns of sends.csv.
const ROLES: [&str; 6] = ["seed", "test", "control", "prime", "retest", "sentinel"];
fn check_header(path: &Path, header: &csv::StringRecord, want: &[&str]) -> Result<(), InputError> {
    for col in want {
        if !header.iter().any(|h| h == *col) {
            return Err(InputError::new(path, format!("missing column `{col}`"))
                .line(1)
                .key(*col)
                .hint("sends.csv and trials.csv columns are listed in docs/DATASET.md"));
        }
    }
    Ok(())
}

fn row_error(path: &Path, header: &csv::StringRecord, e: &csv::Error) -> InputError {
    let line = e.position().map(|p| p.line()).unwrap_or(0);
    let mut err = InputError::new(path, format!("{e}")).line(line);
    if let csv::ErrorKind::Deserialize { err: de, .. } = e.kind() {
        if let Some(col) = de.field().and_then(|i| header.get(i as usize)) {
            err = InputError::new(path, format!("bad value: {}", de.kind()))
                .line(line)
                .key(col);
        }
    }
    err
}

const OUTCOMES: [&str; 4] = ["delivered", "blocked", "lost", "error"];

/// A closed-vocabulary column: its name, what its values are, the words,
/// and whether it may be empty.
type Closed<'a> = (&'a str, &'a str, &'a [&'a str], bool);

/// Check closed-vocabulary columns on the raw record, so the error names
/// the column (serde's enum errors do not carry it).
fn check_closed(
    path: &Path,
    header: &csv::StringRecord,
    raw: &csv::StringRecord,
    cols: &[Closed],
) -> Result<(), InputError> {
    let line = raw.position().map(|p| p.line()).unwrap_or(0);
    for (col, what, words, empty) in cols {
        if let Some(v) = header
            .iter()
            .position(|h| h == *col)
            .and_then(|i| raw.get(i))
        {
            if !(words.contains(&v) || (*empty && v.is_empty())) {
                return Err(InputError::new(path, format!("unknown {what} `{v}`"))
                    .line(line)
                    .key(*col)
                    .hint(format!(
                        "one of {}{}",
                        words.join(", "),
                        if *empty { ", or empty" } else { "" }
                    )));
            }
        }
    }
    Ok(())
}

fn check_time(path: &Path, line: u64, col: &str, v: &str) -> Result<(), InputError> {
    if v.is_empty() || chrono::DateTime::parse_from_rfc3339(v).is_ok() {
        Ok(())
    } else {
        Err(
            InputError::new(path, format!("`{v}` is not an RFC 3339 time"))
                .line(line)
                .key(col),
        )
    }
}

/// Stream the rows of a CSV with `columns` through `check` and then `f`:
/// header checked, closed outcome columns checked on the raw record, each row
/// deserialised into `T`.
fn for_each_row<T: serde::de::DeserializeOwned>(
    path: &Path,
    columns: &[&str],
    closed: &[Closed],
    check: impl Fn(&T, u64) -> Result<(), InputError>,
    mut f: impl FnMut(T) -> Result<(), InputError>,
) -> Result<u64, InputError> {
    let mut rdr = csv::Reader::from_path(path)
        .map_err(|e| InputError::new(path, format!("cannot read: {e}")))?;
    let header = rdr
        .headers()
        .map_err(|e| InputError::new(path, format!("malformed header: {e}")))?
        .clone();
    check_header(path, &header, columns)?;
    let mut n = 0;
    let mut raw = csv::StringRecord::new();
    loop {
        match rdr.read_record(&mut raw) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => return Err(row_error(path, &header, &e)),
        }
        let line = raw.position().map(|p| p.line()).unwrap_or(0);
        check_closed(path, &header, &raw, closed)?;
        let row: T = raw
            .deserialize(Some(&header))
            .map_err(|e| row_error(path, &header, &e))?;
        check(&row, line)?;
        n += 1;
        f(row)?;
    }
    Ok(n)
}

/// Stream the rows of a sends.csv through `f`, checking each.
pub fn for_each_send(
    path: &Path,
    f: impl FnMut(SendRow) -> Result<(), InputError>,
) -> Result<u64, InputError> {
    let check = |row: &SendRow, line: u64| {
        if !ROLES.contains(&row.role.as_str()) {
            return Err(
                InputError::new(path, format!("unknown role `{}`", row.role))
                    .line(line)
                    .key("role")
                    .hint(format!("one of {}", ROLES.join(", "))),
            );
        }
        for (col, v) in [
            ("scheduled_at", &row.scheduled_at),
            ("sent_at", &row.sent_at),
            ("observed_at", &row.observed_at),
        ] {
            check_time(path, line, col, v)?;
        }
        // NaN and inf parse as numbers but are not measurements: they
        // would flow into every mean and fit.
        for (col, v) in [
            ("phash_distance", row.phash_distance),
            ("offset_s", row.offset_s),
            ("latency_ms", row.latency_ms),
            ("planned_offset_s", row.planned_offset_s),
            ("match_margin", row.match_margin),
        ] {
            if v.is_some_and(|x| !x.is_finite()) {
                return Err(InputError::new(path, "not a finite number")
                    .line(line)
                    .key(col)
                    .hint("leave the cell empty for a missing value"));
            }
        }
        for (col, v) in [
            ("phash_distance", row.phash_distance),
            ("latency_ms", row.latency_ms),
        ] {
            if v.is_some_and(|x| x.fract() != 0.0 || x < 0.0) {
                return Err(InputError::new(path, "not a whole number of at least 0")
                    .line(line)
                    .key(col)
                    .hint("bits of a pHash distance and milliseconds are whole numbers"));
            }
        }
        Ok(())
    };
    for_each_row(
        path,
        &SEND_COLUMNS,
        &[("outcome", "outcome", &OUTCOMES, true)],
        check,
        f,
    )
}

/// Stream the rows of a trials.csv through `f`, checking each.
pub fn for_each_trial(
    path: &Path,
    f: impl FnMut(TrialRow) -> Result<(), InputError>,
) -> Result<u64, InputError> {
    let verdicts = Verdict::names();
    for_each_row(
        path,
        &TRIAL_COLUMNS,
        &[
            ("verdict", "verdict", &verdicts, false),
            ("seeded_outcome", "outcome", &OUTCOMES, true),
            ("control_outcome", "outcome", &OUTCOMES, true),
        ],
        |_: &TrialRow, _| Ok(()),
        f,
    )
}
