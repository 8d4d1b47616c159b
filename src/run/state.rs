//! The state of a run, as the journal records it: which files were made,
//! which sends were attempted and with what outcome, which trials are done.
//! The scheduler applies each record as it writes it, and a resume replays
//! the journal into the same state, so both see one truth. The datasets
//! (sends.csv, trials.csv) are projections of it.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::journal::Record;
use crate::dataset::{Failure, Outcome, SendRow, TrialRow};
use crate::probe::design::{Experiment, TrialOutcomes};
use crate::probe::plan::{Content, Plan, Role, Trial};

/// A file made for a trial.
#[derive(Debug, Clone)]
pub struct FileRec {
    /// Relative to the run folder.
    pub path: String,
    /// MD5.
    pub md5: String,
    /// pHash.
    pub phash: Option<String>,
    /// pHash distance to the original item.
    pub phash_distance: Option<u32>,
    /// Transform (empty for fresh copies).
    pub transform: String,
    /// Variant id.
    pub variant_id: String,
}

/// The outcome of one attempt.
#[derive(Debug, Clone)]
pub struct OutcomeRec {
    /// The outcome.
    pub outcome: Outcome,
    /// Failure code.
    pub failure: Option<String>,
    /// Error text.
    pub error: Option<String>,
    /// When sent.
    pub sent_at: Option<DateTime<Utc>>,
    /// When the receiver showed it.
    pub observed_at: Option<DateTime<Utc>>,
    /// When the receiver showed the sentinel.
    pub sentinel_observed_at: Option<DateTime<Utc>>,
    /// Latency.
    pub latency_ms: Option<i64>,
    /// pHash distance of a picture match.
    pub match_distance: Option<u32>,
    /// Margin of a picture match.
    pub match_margin: Option<f64>,
    /// How it was settled, when not observed directly (journal `settled`).
    pub settled: Option<String>,
}

/// Tries of one send that may meet a platform outage (each waits up to
/// [`crate::platform::OUTAGE_WAIT`] for it) before the send is given up.
pub const MAX_OUTAGE_TRIES: u32 = 60;

/// `settled` of an error whose send may or may not have reached the
/// platform: never retried, so nothing is sent twice.
pub const UNSETTLED: &str = "unsettled";

/// One attempt of a send.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// 1-based.
    pub attempt: u32,
    /// When the intent was written.
    pub intent_at: DateTime<Utc>,
    /// When the design wanted it.
    pub scheduled_at: DateTime<Utc>,
    /// File key.
    pub file: Option<String>,
    /// Text.
    pub text: Option<String>,
    /// Sentinel nonce.
    pub nonce: String,
    /// The outcome, once known.
    pub outcome: Option<OutcomeRec>,
    /// A resume found it was never carried out.
    pub not_sent: bool,
}

/// Where a send stands.
#[derive(Debug, Clone, PartialEq)]
pub enum SendStatus {
    /// To be made, as this attempt.
    Ready(u32),
    /// An intent without an outcome: may or may not have happened.
    Pending(u32),
    /// Finished (also a final error).
    Done(Outcome),
}

/// Where a trial stands.
#[derive(Debug, Clone, PartialEq)]
pub enum TrialStatus {
    /// Every send is done (or it ended early).
    Done,
    /// Send `i` is next (`Ready`) …
    Next(usize, u32),
    /// … or was in flight when the run stopped.
    Pending(usize, u32),
}

/// The state of a run.
#[derive(Debug, Clone, Default)]
pub struct RunState {
    /// Retries allowed per send.
    pub retries: u32,
    /// Files by (trial, key).
    pub files: HashMap<(String, String), FileRec>,
    /// Attempts by send id.
    pub attempts: HashMap<String, Vec<Attempt>>,
    /// Abandoned trials and why.
    pub abandoned: HashMap<String, String>,
    /// Starts (time, resume).
    pub starts: Vec<(DateTime<Utc>, bool)>,
    /// Stops (time, reason).
    pub stops: Vec<(DateTime<Utc>, crate::dataset::manifest::StopReason)>,
    /// Starts followed by another start with no stop between (killed,
    /// crashed, power lost): counted in journal order, not by timestamps,
    /// which a clock set back (or virtual time) can make equal or reversed.
    pub crashes: usize,
    /// Whether the last start has no stop yet.
    running: bool,
    /// `not_sent` records by (send, attempt): how often an attempt was
    /// found never carried out, and so made again.
    not_sent: HashMap<(String, u32), u32>,
    /// The platform of the first start.
    pub platform: String,
    /// Its URL, if external.
    pub base_url: Option<String>,
}

impl RunState {
    /// An empty state.
    pub fn new(retries: u32) -> RunState {
        RunState {
            retries,
            ..RunState::default()
        }
    }

    /// Apply one record.
    pub fn apply(&mut self, r: &Record) {
        match r {
            Record::Start {
                at,
                resume,
                platform,
                base_url,
                ..
            } => {
                self.starts.push((*at, *resume));
                if self.running {
                    self.crashes += 1;
                }
                self.running = true;
                if !resume {
                    self.platform = platform.clone();
                    self.base_url = base_url.clone();
                }
            }
            Record::File {
                trial_id,
                key,
                path,
                md5,
                phash,
                phash_distance,
                transform,
                variant_id,
            } => {
                self.files.insert(
                    (trial_id.clone(), key.clone()),
                    FileRec {
                        path: path.clone(),
                        md5: md5.clone(),
                        phash: phash.clone(),
                        phash_distance: *phash_distance,
                        transform: transform.clone(),
                        variant_id: variant_id.clone(),
                    },
                );
            }
            Record::Intent {
                send_id,
                attempt,
                at,
                scheduled_at,
                file,
                text,
                nonce,
                ..
            } => {
                let v = self.attempts.entry(send_id.clone()).or_default();
                // A re-made intent after `not_sent` replaces that attempt.
                v.retain(|a| a.attempt != *attempt);
                v.push(Attempt {
                    attempt: *attempt,
                    intent_at: *at,
                    scheduled_at: *scheduled_at,
                    file: file.clone(),
                    text: text.clone(),
                    nonce: nonce.clone(),
                    outcome: None,
                    not_sent: false,
                });
            }
            Record::Outcome {
                send_id,
                attempt,
                outcome,
                failure,
                error,
                sent_at,
                observed_at,
                sentinel_observed_at,
                latency_ms,
                match_distance,
                match_margin,
                settled,
                ..
            } => {
                if let Some(a) = self
                    .attempts
                    .get_mut(send_id)
                    .and_then(|v| v.iter_mut().find(|a| a.attempt == *attempt))
                {
                    a.outcome = Some(OutcomeRec {
                        outcome: *outcome,
                        failure: failure.clone(),
                        error: error.clone(),
                        sent_at: *sent_at,
                        observed_at: *observed_at,
                        sentinel_observed_at: *sentinel_observed_at,
                        latency_ms: *latency_ms,
                        match_distance: *match_distance,
                        match_margin: *match_margin,
                        settled: settled.clone(),
                    });
                }
            }
            Record::NotSent {
                send_id, attempt, ..
            } => {
                *self
                    .not_sent
                    .entry((send_id.clone(), *attempt))
                    .or_default() += 1;
                if let Some(a) = self
                    .attempts
                    .get_mut(send_id)
                    .and_then(|v| v.iter_mut().find(|a| a.attempt == *attempt))
                {
                    a.not_sent = true;
                }
            }
            Record::Abandon {
                trial_id, reason, ..
            } => {
                self.abandoned.insert(trial_id.clone(), reason.clone());
            }
            Record::Stop { at, reason } => {
                self.stops.push((*at, *reason));
                self.running = false;
            }
        }
    }

    /// How often `attempt` of `send_id` was found not sent (and so is made
    /// again): 0 for a first intent.
    pub fn remade(&self, send_id: &str, attempt: u32) -> u32 {
        self.not_sent
            .get(&(send_id.to_string(), attempt))
            .copied()
            .unwrap_or(0)
    }

    /// Where a send stands.
    pub fn send_status(&self, send_id: &str) -> SendStatus {
        let Some(last) = self.attempts.get(send_id).and_then(|v| v.last()) else {
            return SendStatus::Ready(1);
        };
        if last.not_sent {
            return SendStatus::Ready(last.attempt);
        }
        match &last.outcome {
            None => SendStatus::Pending(last.attempt),
            // Only an error before the hand-over (no `sent_at`) is tried
            // again: a probe handed to the client may be on the platform.
            Some(o)
                if o.outcome == Outcome::Error
                    && o.sent_at.is_none()
                    && o.settled.as_deref() != Some(UNSETTLED)
                    && self.may_try_again(send_id, o) =>
            {
                SendStatus::Ready(last.attempt + 1)
            }
            Some(o) => SendStatus::Done(o.outcome),
        }
    }

    /// Whether a send whose last try failed before the hand-over may be
    /// tried again: tries that met a platform outage do not count against
    /// `retries` (at most [`MAX_OUTAGE_TRIES`] of them), the others do.
    fn may_try_again(&self, send_id: &str, last: &OutcomeRec) -> bool {
        let outage = |a: &Attempt| {
            a.outcome.as_ref().and_then(|o| o.failure.as_deref())
                == Some(Failure::PlatformUnreachable.code())
        };
        let tries = self.attempts.get(send_id).map(Vec::as_slice).unwrap_or(&[]);
        let outages = tries.iter().filter(|a| outage(a)).count() as u32;
        if last.failure.as_deref() == Some(Failure::PlatformUnreachable.code()) {
            outages <= MAX_OUTAGE_TRIES
        } else {
            tries.len() as u32 - outages <= self.retries
        }
    }

    /// The final outcome of a send, if done.
    pub fn final_outcome(&self, send_id: &str) -> Option<&OutcomeRec> {
        match self.send_status(send_id) {
            SendStatus::Done(_) => self
                .attempts
                .get(send_id)
                .and_then(|v| v.last())
                .and_then(|a| a.outcome.as_ref()),
            _ => None,
        }
    }

    /// Where a trial stands. A send that finally failed ends its trial: the
    /// sends after it would measure nothing.
    pub fn trial_status(&self, t: &Trial) -> TrialStatus {
        if self.abandoned.contains_key(&t.trial_id) {
            return TrialStatus::Done;
        }
        for (i, s) in t.sends.iter().enumerate() {
            match self.send_status(&s.send_id) {
                SendStatus::Done(Outcome::Error) => return TrialStatus::Done,
                SendStatus::Done(_) => {}
                SendStatus::Ready(a) => return TrialStatus::Next(i, a),
                SendStatus::Pending(a) => return TrialStatus::Pending(i, a),
            }
        }
        TrialStatus::Done
    }

    /// Whether any send of the trial was attempted.
    pub fn started(&self, t: &Trial) -> bool {
        t.sends
            .iter()
            .any(|s| self.attempts.contains_key(&s.send_id))
    }

    /// The trial's t0: when its first send went.
    pub fn t0(&self, t: &Trial) -> Option<DateTime<Utc>> {
        let first = self.attempts.get(&t.sends.first()?.send_id)?;
        let ok = first.iter().rev().find(|a| a.outcome.is_some())?;
        ok.outcome
            .as_ref()
            .and_then(|o| o.sent_at)
            .or(Some(ok.intent_at))
    }

    /// Counts of final outcomes over every send.
    pub fn counts(&self) -> [(Outcome, u64); 4] {
        let mut c = [
            (Outcome::Delivered, 0),
            (Outcome::Blocked, 0),
            (Outcome::Lost, 0),
            (Outcome::Error, 0),
        ];
        for v in self.attempts.values() {
            for a in v {
                if let Some(o) = &a.outcome {
                    if let Some(e) = c.iter_mut().find(|e| e.0 == o.outcome) {
                        e.1 += 1;
                    }
                }
            }
        }
        c
    }

    /// The rows of sends.csv: every attempt that has an outcome, trials in
    /// plan order.
    pub fn send_rows(
        &self,
        run_id: &str,
        plan: &Plan,
        regions: &HashMap<String, String>,
    ) -> Vec<SendRow> {
        let mut rows = Vec::new();
        for t in &plan.trials {
            let t0 = self.t0(t);
            for s in &t.sends {
                let Some(v) = self.attempts.get(&s.send_id) else {
                    continue;
                };
                for a in v {
                    let Some(o) = &a.outcome else { continue };
                    let file = a
                        .file
                        .as_ref()
                        .and_then(|k| self.files.get(&(t.trial_id.clone(), k.clone())));
                    let region = |alias: &str| regions.get(alias).cloned().unwrap_or_default();
                    let offset = match (o.sent_at, t0) {
                        (Some(s), Some(t0)) => Some((s - t0).num_milliseconds() as f64 / 1000.0),
                        _ => None,
                    };
                    let (kind, label, topic) = match &s.content {
                        Content::Text(_) => ("text".to_string(), t.label(), t.topic()),
                        _ => (t.content_kind(), t.label(), t.topic()),
                    };
                    // A collision's seed is the other item of the pair.
                    let label = if s.item_id != t.item_id() && !s.item_id.is_empty() {
                        String::new()
                    } else {
                        label
                    };
                    rows.push(SendRow {
                        run_id: run_id.to_string(),
                        trial_id: t.trial_id.clone(),
                        send_id: s.send_id.clone(),
                        experiment: t.design.to_string(),
                        experiment_name: t.experiment_name.clone(),
                        role: s.role.as_str().to_string(),
                        item_id: s.item_id.clone(),
                        variant_id: file.map(|f| f.variant_id.clone()).unwrap_or_default(),
                        content_kind: kind,
                        label,
                        topic,
                        transform: file.map(|f| f.transform.clone()).unwrap_or_default(),
                        md5: file.map(|f| f.md5.clone()).unwrap_or_default(),
                        phash: file.and_then(|f| f.phash.clone()).unwrap_or_default(),
                        phash_distance: file.and_then(|f| f.phash_distance).map(f64::from),
                        channel: s.chat.channel().to_string(),
                        chat: s.chat.name().to_string(),
                        sender: s.chat.from.clone(),
                        sender_region: region(&s.chat.from),
                        receiver: s.chat.observer.clone(),
                        receiver_region: region(&s.chat.observer),
                        scheduled_at: rfc(Some(a.scheduled_at)),
                        sent_at: rfc(o.sent_at),
                        observed_at: rfc(o.observed_at),
                        offset_s: offset,
                        outcome: Some(o.outcome),
                        failure: o.failure.clone().unwrap_or_default(),
                        latency_ms: o.latency_ms.map(|l| l as f64),
                        attempt: Some(a.attempt),
                        planned_offset_s: Some(s.at_s),
                        sentinel_observed_at: rfc(o.sentinel_observed_at),
                        error: o.error.clone().unwrap_or_default(),
                        nonce: a.nonce.clone(),
                        match_distance: o.match_distance,
                        match_margin: o.match_margin,
                    });
                }
            }
        }
        rows
    }

    /// The verdict of a trial whose sends are all done, by its experiment.
    pub fn verdict(&self, x: &dyn Experiment, t: &Trial) -> crate::probe::design::TrialVerdict {
        let sends: Vec<(Role, Option<Outcome>)> = t
            .sends
            .iter()
            .map(|s| (s.role, self.final_outcome(&s.send_id).map(|o| o.outcome)))
            .collect();
        let complete = sends.iter().all(|(_, o)| o.is_some_and(|o| o.conclusive()))
            && !self.abandoned.contains_key(&t.trial_id);
        x.verdict(t, &TrialOutcomes { complete, sends })
    }

    /// The verdict of a trial if it is finished (for adaptive designs).
    pub fn finished_verdict(
        &self,
        x: &dyn Experiment,
        t: &Trial,
    ) -> Option<crate::dataset::Verdict> {
        (self.trial_status(t) == TrialStatus::Done && self.started(t))
            .then(|| self.verdict(x, t).verdict)
    }

    /// The rows of trials.csv: every finished trial, in plan order.
    pub fn trial_rows(&self, run_id: &str, plan: &Plan) -> Vec<TrialRow> {
        let mut rows = Vec::new();
        for t in &plan.trials {
            if self.trial_status(t) != TrialStatus::Done || !self.started(t) {
                continue;
            }
            let v = self.verdict(plan.experiments[t.experiment].as_ref(), t);
            rows.push(TrialRow {
                run_id: run_id.to_string(),
                trial_id: t.trial_id.clone(),
                experiment: t.design.to_string(),
                experiment_name: t.experiment_name.clone(),
                item_id: t.item_id(),
                label: t.label(),
                content_kind: t.content_kind(),
                topic: t.topic(),
                channel: t.channel().to_string(),
                parameter: t.parameter.clone(),
                verdict: v.verdict,
                seeded_outcome: v.seeded,
                control_outcome: v.control,
            });
        }
        rows
    }
}

/// RFC 3339 UTC with milliseconds, or empty.
pub fn rfc(t: Option<DateTime<Utc>>) -> String {
    t.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}
