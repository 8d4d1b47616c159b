//! The plan: the exact list of trials and sends a spec asks for, in the
//! order they will start. It is a pure function of the spec, the corpus
//! index and the spec's seed (a seeded ChaCha shuffle), so a reviewer can
//! re-derive it byte for byte (`chatprobe plan SPEC --out plan.csv`).
//!
//! Files are not in the plan: fresh copies are made at run time, one per
//! trial and copy, and never reused (see `run::ledger`).

use std::io::Write;
use std::path::Path;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use std::sync::Arc;

use super::chat::Chat;
use super::design::{Experiment, Finished};
use super::items::CorpusItem;
use super::spec::Spec;
use crate::corpus::keywords::Keyword;
use crate::corpus::transform::Transform;

/// The role of a send in its trial.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Into the intl-only seed chat.
    Seed,
    /// The seeded (or transformed, or keyword) content into the test chat.
    Test,
    /// The unseeded fresh copy into the test chat.
    Control,
    /// The seeded original into the test chat, to confirm it is blocked.
    Prime,
    /// A later test of the seeded content (expiry).
    Retest,
}

impl Role {
    /// The name used in datasets.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Seed => "seed",
            Role::Test => "test",
            Role::Control => "control",
            Role::Prime => "prime",
            Role::Retest => "retest",
        }
    }
}

/// What a send carries.
#[derive(Debug, Clone, PartialEq)]
pub enum Content {
    /// Fresh copy `copy` (`A`, `B`) of the trial's item, made at run time.
    Fresh(char),
    /// `transform` applied to fresh copy `copy`.
    Transformed(char, Transform),
    /// The corpus file of this item as it is (collision pairs).
    Original(String),
    /// A text message: these words (a nonce is added at run time).
    Text(String),
}

impl Content {
    /// How the plan CSV names it.
    pub fn describe(&self) -> String {
        match self {
            Content::Fresh(c) => format!("fresh:{c}"),
            Content::Transformed(c, t) => format!("{t} of fresh:{c}"),
            Content::Original(id) => format!("original:{id}"),
            Content::Text(_) => "text".to_string(),
        }
    }
}

/// One planned send.
#[derive(Debug, Clone)]
pub struct PlannedSend {
    /// `{trial_id}/{role}` (`retestN` for retests).
    pub send_id: String,
    /// Role in the trial.
    pub role: Role,
    /// Not before this many seconds after the trial's first send.
    pub at_s: f64,
    /// Where it goes.
    pub chat: Chat,
    /// What it carries.
    pub content: Content,
    /// The corpus item it derives from (empty for texts).
    pub item_id: String,
}

/// One planned trial.
#[derive(Debug, Clone)]
pub struct Trial {
    /// Stable id: experiment name, item or keyword, parameter, replicate.
    pub trial_id: String,
    /// The design's name.
    pub design: &'static str,
    /// The experiment's name.
    pub experiment_name: String,
    /// The experiment's position in the spec (set by the plan).
    pub experiment: usize,
    /// The item (tested item for collisions); `None` for keywords.
    pub item: Option<CorpusItem>,
    /// The keyword, for keyword trials.
    pub keyword: Option<Keyword>,
    /// The design value: delay, offset, transform or keyword.
    pub parameter: String,
    /// The sends, in the order they are made.
    pub sends: Vec<PlannedSend>,
}

impl Trial {
    /// `image`, `document` or `text`.
    pub fn content_kind(&self) -> String {
        self.item
            .as_ref()
            .map_or("text".to_string(), |i| i.item.kind.to_string())
    }
    /// The item's or keyword's label.
    pub fn label(&self) -> String {
        match (&self.item, &self.keyword) {
            (Some(i), _) => i.item.label.to_string(),
            (None, Some(k)) => k.label.clone(),
            _ => String::new(),
        }
    }
    /// The item's or keyword's topic.
    pub fn topic(&self) -> String {
        match (&self.item, &self.keyword) {
            (Some(i), _) => i.item.topic.clone(),
            (None, Some(k)) => k.topic.clone(),
            _ => String::new(),
        }
    }
    /// The item id: the corpus item's, else the first its sends name (a
    /// text's id, for isolate); empty for keywords.
    pub fn item_id(&self) -> String {
        match &self.item {
            Some(i) => i.item.id.clone(),
            None => self
                .sends
                .iter()
                .map(|s| s.item_id.as_str())
                .find(|i| !i.is_empty())
                .unwrap_or_default()
                .to_string(),
        }
    }
    /// The test chat's channel.
    pub fn channel(&self) -> &'static str {
        self.sends
            .iter()
            .find(|s| s.role != Role::Seed)
            .map_or("direct", |s| s.chat.channel())
    }
    /// The last planned offset.
    pub fn span_s(&self) -> f64 {
        self.sends.iter().map(|s| s.at_s).fold(0.0, f64::max)
    }
}

/// The plan of a spec.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Trials in start order (an adaptive experiment's later trials are
    /// added as they are asked for).
    pub trials: Vec<Trial>,
    /// The spec's experiments, which `Trial::experiment` indexes.
    pub experiments: Vec<Arc<dyn Experiment>>,
}

/// A number as plans and trial ids write it: no `.0` on whole numbers.
pub fn num(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        format!("{x}")
    }
}

impl Plan {
    /// Build the plan of `spec`: every experiment's first trials, shuffled
    /// together with the spec's seed.
    pub fn build(spec: &Spec) -> Plan {
        let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
        let mut trials = Vec::new();
        for (k, x) in spec.experiments.iter().enumerate() {
            trials.extend(x.first_trials(&mut rng).into_iter().map(|mut t| {
                t.experiment = k;
                t
            }));
        }
        trials.shuffle(&mut rng);
        Plan {
            trials,
            experiments: spec.experiments.clone(),
        }
    }

    /// Whether an experiment is adaptive: the plan holds only its first step.
    pub fn adaptive(&self) -> bool {
        self.experiments.iter().any(|x| x.adaptive())
    }

    /// Add the trials adaptive experiments ask for, given the verdicts of
    /// the finished trials (`verdict(experiment, trial)`, `None` while
    /// unfinished), until none asks for more. Returns the indices of the
    /// trials added.
    pub fn grow(
        &mut self,
        verdict: impl Fn(&dyn Experiment, &Trial) -> Option<crate::dataset::Verdict>,
    ) -> Vec<usize> {
        let mut added = Vec::new();
        loop {
            let before = self.trials.len();
            for (k, x) in self.experiments.iter().enumerate() {
                if !x.adaptive() {
                    continue;
                }
                let seen = self.finished(k, &verdict);
                let planned = self.planned(k);
                let known: std::collections::HashSet<&str> =
                    self.trials.iter().map(|t| t.trial_id.as_str()).collect();
                let new: Vec<Trial> = x
                    .next_trials(&seen, &planned)
                    .into_iter()
                    .filter(|t| !known.contains(t.trial_id.as_str()))
                    .map(|mut t| {
                        t.experiment = k;
                        t
                    })
                    .collect();
                drop((seen, planned));
                self.trials.extend(new);
            }
            if self.trials.len() == before {
                return added;
            }
            added.extend(before..self.trials.len());
        }
    }

    /// Experiment `k`'s finished trials with their verdicts, in plan order
    /// (`verdict` is `None` while a trial is unfinished).
    pub fn finished(
        &self,
        k: usize,
        verdict: impl Fn(&dyn Experiment, &Trial) -> Option<crate::dataset::Verdict>,
    ) -> Vec<Finished<'_>> {
        let x = self.experiments[k].as_ref();
        self.trials
            .iter()
            .filter(|t| t.experiment == k)
            .filter_map(|t| {
                verdict(x, t).map(|v| Finished {
                    trial: t,
                    verdict: v,
                })
            })
            .collect()
    }

    /// Every trial of experiment `k`, in plan order.
    pub fn planned(&self, k: usize) -> Vec<&Trial> {
        self.trials.iter().filter(|t| t.experiment == k).collect()
    }

    /// Number of sends.
    pub fn sends(&self) -> usize {
        self.trials.iter().map(|t| t.sends.len()).sum()
    }

    /// Write the plan as CSV (one row per send, in start order).
    pub fn write_csv<W: Write>(&self, w: W) -> csv::Result<()> {
        let mut out = csv::Writer::from_writer(w);
        out.write_record([
            "order",
            "trial_id",
            "send_id",
            "experiment",
            "experiment_name",
            "role",
            "item_id",
            "content_kind",
            "label",
            "topic",
            "content",
            "transform",
            "channel",
            "chat",
            "sender",
            "receiver",
            "at_s",
            "parameter",
            "text",
        ])?;
        for (i, t) in self.trials.iter().enumerate() {
            for s in &t.sends {
                let (transform, text) = match &s.content {
                    Content::Transformed(_, tr) => (tr.to_string(), String::new()),
                    Content::Text(x) => (String::new(), x.clone()),
                    _ => (String::new(), String::new()),
                };
                out.write_record([
                    (i + 1).to_string(),
                    t.trial_id.clone(),
                    s.send_id.clone(),
                    t.design.to_string(),
                    t.experiment_name.clone(),
                    s.role.as_str().to_string(),
                    s.item_id.clone(),
                    t.content_kind(),
                    t.label(),
                    t.topic(),
                    s.content.describe(),
                    transform,
                    s.chat.channel().to_string(),
                    s.chat.name().to_string(),
                    s.chat.from.clone(),
                    s.chat.observer.clone(),
                    num(s.at_s),
                    t.parameter.clone(),
                    text,
                ])?;
            }
        }
        out.flush()?;
        Ok(())
    }

    /// Write the plan CSV to `path` atomically.
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        crate::fsutil::atomic_write(path, |f| self.write_csv(f).map_err(std::io::Error::other))
    }
}

/// A send of a trial: `{trial}/{role}`.
pub fn send(
    trial: &str,
    role: Role,
    at_s: f64,
    chat: &Chat,
    content: Content,
    it: &CorpusItem,
) -> PlannedSend {
    PlannedSend {
        send_id: format!("{trial}/{}", role.as_str()),
        role,
        at_s,
        chat: chat.clone(),
        content,
        item_id: it.item.id.clone(),
    }
}

/// The seed (fresh copy `A`, `seed_chat`, at 0) and the prime (the same
/// copy into `test_chat` at `delay_s`) that start every design whose test
/// needs the seeded copy confirmed blocked first (transform, expiry,
/// threshold).
pub fn seed_and_prime(
    trial: &str,
    seed_chat: &Chat,
    test_chat: &Chat,
    delay_s: f64,
    it: &CorpusItem,
) -> [PlannedSend; 2] {
    [
        send(trial, Role::Seed, 0.0, seed_chat, Content::Fresh('A'), it),
        send(
            trial,
            Role::Prime,
            delay_s,
            test_chat,
            Content::Fresh('A'),
            it,
        ),
    ]
}

/// The test send of a text.
pub fn send_text(trial: &str, chat: &Chat, text: String) -> PlannedSend {
    PlannedSend {
        send_id: format!("{trial}/test"),
        role: Role::Test,
        at_s: 0.0,
        chat: chat.clone(),
        content: Content::Text(text),
        item_id: String::new(),
    }
}

/// A trial of experiment `x` (its `experiment` index is set by the plan).
pub fn trial(
    trial_id: String,
    x: &dyn Experiment,
    item: Option<&CorpusItem>,
    parameter: String,
    sends: Vec<PlannedSend>,
) -> Trial {
    Trial {
        trial_id,
        design: x.design(),
        experiment_name: x.name().to_string(),
        experiment: 0,
        item: item.cloned(),
        keyword: None,
        parameter,
        sends,
    }
}
