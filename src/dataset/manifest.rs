//! run.json: a run's provenance and state (the run folder's manifest).

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::InputError;

/// Where a run stands (run.json `state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// A process is running it (or was, and crashed: `chatprobe runs`
    /// tells by its pid).
    Running,
    /// Every trial finished.
    Complete,
    /// Stopped before every trial finished; `--resume` continues it.
    Interrupted,
    /// Stopped because it could not measure (every account failed to log
    /// in, or every send failed); fix the cause, then `--resume`.
    Failed,
}

/// Why a run stopped (run.json `stop_reason`, the journal's `stop`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// Every trial finished.
    Complete,
    /// Ctrl-C or SIGTERM.
    Interrupted,
    /// The spec's `max_runtime_s` ran out.
    MaxRuntime,
    /// The run could not measure: every account failed to log in, or its
    /// first sends all failed.
    CannotMeasure,
    /// An error of chatprobe's own stopped it (a disk full, a file it could
    /// not write); it resumes once that is fixed.
    Error,
}

impl RunStatus {
    /// The name run.json uses.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Complete => "complete",
            RunStatus::Interrupted => "interrupted",
            RunStatus::Failed => "failed",
        }
    }
}

impl StopReason {
    /// The name run.json and the journal use.
    pub fn as_str(self) -> &'static str {
        match self {
            StopReason::Complete => "complete",
            StopReason::Interrupted => "interrupted",
            StopReason::MaxRuntime => "max_runtime",
            StopReason::CannotMeasure => "cannot_measure",
            StopReason::Error => "error",
        }
    }

    /// The state a run is left in by this stop.
    pub fn status(self) -> RunStatus {
        match self {
            StopReason::Complete => RunStatus::Complete,
            StopReason::Interrupted | StopReason::MaxRuntime | StopReason::Error => {
                RunStatus::Interrupted
            }
            StopReason::CannotMeasure => RunStatus::Failed,
        }
    }
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Display for StopReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// run.json keeps `stop_reason` a string, empty while running.
mod empty_is_none {
    use super::StopReason;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<StopReason>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(r) => r.serialize(s),
            None => s.serialize_str(""),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<StopReason>, D::Error> {
        let text = String::deserialize(d)?;
        if text.is_empty() {
            return Ok(None);
        }
        StopReason::deserialize(serde::de::value::StrDeserializer::<D::Error>::new(&text)).map(Some)
    }
}

/// run.json's file name.
pub const RUN_FILE: &str = "run.json";

/// run.json: the provenance of a run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunManifest {
    /// "chatprobe".
    pub software: String,
    /// Its version.
    pub version: String,
    /// Git revision it was built from (empty if unknown).
    pub git_revision: String,
    /// The run id (its folder's name).
    pub run_id: String,
    /// The spec's name.
    pub spec_name: String,
    /// The spec's path (absolute).
    pub spec_path: String,
    /// SHA-256 of the spec's text.
    pub spec_sha256: String,
    /// The spec's text.
    pub spec_text: String,
    /// SHA-256 of corpus/index.csv.
    pub corpus_index_sha256: String,
    /// The corpus folder.
    pub corpus: String,
    /// The profile's name.
    pub profile: String,
    /// `embedded-testbed` or `external`.
    pub platform: String,
    /// The policy of an embedded testbed (path).
    pub policy: Option<String>,
    /// WebDriver endpoint kind and timeouts.
    pub webdriver: serde_json::Value,
    /// The plan's seed.
    pub seed: u64,
    /// Limits used.
    pub limits: serde_json::Value,
    /// First start.
    pub started_at: String,
    /// Last stop (empty while running).
    pub finished_at: String,
    /// `running`, `complete` or `interrupted`.
    pub state: RunStatus,
    /// Why it stopped last: `complete`, `interrupted`, `max_runtime` (empty
    /// while running).
    #[serde(with = "empty_is_none")]
    pub stop_reason: Option<StopReason>,
    /// The process running it (to tell a crash from a live run).
    pub pid: u32,
    /// Trials planned and finished.
    pub trials_planned: usize,
    /// Trials finished.
    pub trials_done: usize,
    /// Sends planned.
    pub sends_planned: usize,
    /// Attempts by outcome.
    pub counts: HashMap<String, u64>,
    /// Times the run stopped before completion.
    pub interrupted: Vec<String>,
    /// Times it was resumed.
    pub resumed: Vec<String>,
    /// Starts that ended without a stop record (killed, crashed, power lost).
    #[serde(default)]
    pub crashes: usize,
    /// Where it was measured from: `CHATPROBE_VANTAGE`, or `machine-` and 12
    /// hex digits of a hash of the machine id (never the id itself), so that
    /// runs of several machines merge without clashes (empty: a run made
    /// before vantages were recorded).
    #[serde(default)]
    pub vantage: String,
    /// SHA-256 of plan.csv as the run started with it (the spec's first
    /// steps); a resume checks plan.csv against it. Empty: a run made
    /// before plans were hashed.
    #[serde(default)]
    pub plan_sha256: String,
    /// What each `run --resume --repair` mended, in order.
    #[serde(default)]
    pub repairs: Vec<Repair>,
}

/// What one `run --resume --repair` did to a run folder.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Repair {
    /// When.
    pub at: String,
    /// The first damaged line of journal.jsonl (none: the journal was whole).
    pub journal_line: Option<u64>,
    /// What was wrong with it.
    pub damage: String,
    /// Records kept: those before the damage, and the decisions after it.
    pub records_kept: usize,
    /// Records dropped: the damaged one and the observations after it.
    pub records_dropped: usize,
    /// Sends settled by looking at the chats before the run goes on.
    pub sends_to_settle: Vec<String>,
    /// Of those, the sends whose intent may have been the damaged record,
    /// given back their intent (their nonce derives from the send).
    pub intents_restored: Vec<String>,
    /// The damaged journal, kept beside the new one (file name).
    pub damaged_copy: Option<String>,
    /// Why plan.csv was rewritten from the spec (none: it was the run's).
    pub plan_rewritten: Option<String>,
}

/// Read a run folder's run.json.
pub fn read_manifest(dir: &Path) -> Result<RunManifest, InputError> {
    let p = dir.join(RUN_FILE);
    let text = std::fs::read_to_string(&p).map_err(|e| {
        InputError::new(&p, format!("cannot read: {e}"))
            .hint("pass a run folder made by `chatprobe run` (results/<run-id>)")
    })?;
    serde_json::from_str(&text)
        .map_err(|e| InputError::new(&p, format!("malformed run.json: {e}")).line(e.line() as u64))
}
