//! `surveillance`: is content inspected in chats without a china account?
//! A fresh copy is seeded between intl accounts; after `delay_s` that same
//! file (`test`) and an unseeded fresh copy (`control`), in random order,
//! are sent into a chat with a china account. Blocked test, delivered
//! control: the seed was surveilled.

use std::collections::BTreeMap;
use std::sync::Arc;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use super::{Common, Design, Experiment, ParseCx, TrialOutcomes, Verdict, INCONCLUSIVE};
use crate::dataset::{Outcome, TrialRow};
use crate::error::InputError;
use crate::probe::chat::Chat;
use crate::probe::items::CorpusItem;
use crate::probe::plan::{num, send, trial, Content, Role, Trial};
use crate::stats::analyze::{rate, Interval};
use crate::stats::design_analysis::{Analysis, Table};
use crate::stats::{self, words};

/// The registry entry.
pub const DESIGN: Design = Design {
    name: "surveillance",
    about: "seed in an intl-only chat, then test the seeded file and an unseeded control",
    keys: &["items", "seed_chat", "delay_s"],
    parse,
    verdicts: &["surveilled", "not_surveilled", "filtered_realtime"],
    analysis: Some(|| Box::new(SurveillanceTable::default())),
};

#[derive(Debug)]
struct Surveillance {
    common: Common,
    items: Vec<CorpusItem>,
    seed_chat: Chat,
    delay_s: f64,
}

fn parse(cx: &ParseCx) -> Result<Arc<dyn Experiment>, InputError> {
    Ok(Arc::new(Surveillance {
        common: cx.common(),
        items: cx.items()?,
        seed_chat: cx.seed_chat()?,
        delay_s: cx.delay_s()?,
    }))
}

impl Experiment for Surveillance {
    fn common(&self) -> &Common {
        &self.common
    }

    fn max_sends(&self) -> u64 {
        self.items.len() as u64 * self.common.replicates as u64 * 3
    }

    fn first_trials(&self, rng: &mut ChaCha8Rng) -> Vec<Trial> {
        let mut out = Vec::new();
        for rep in 1..=self.common.replicates {
            for it in &self.items {
                let id = format!("{}/{}/r{rep}", self.common.name, it.item.id);
                let t = &self.common.test_chat;
                let mut tail = vec![
                    send(&id, Role::Test, self.delay_s, t, Content::Fresh('A'), it),
                    send(&id, Role::Control, self.delay_s, t, Content::Fresh('B'), it),
                ];
                if rng.random_bool(0.5) {
                    tail.swap(0, 1);
                }
                let mut sends = vec![send(
                    &id,
                    Role::Seed,
                    0.0,
                    &self.seed_chat,
                    Content::Fresh('A'),
                    it,
                )];
                sends.extend(tail);
                out.push(trial(id, self, Some(it), num(self.delay_s), sends));
            }
        }
        out
    }

    fn verdict(&self, _t: &Trial, o: &TrialOutcomes) -> Verdict {
        let b = |o: Option<Outcome>| o == Some(Outcome::Blocked);
        let (seed, test, control) = (
            o.role(Role::Seed),
            o.role(Role::Test),
            o.role(Role::Control),
        );
        let verdict = if !o.complete {
            INCONCLUSIVE
        } else if b(seed) || b(control) {
            "filtered_realtime"
        } else if b(test) {
            "surveilled"
        } else {
            "not_surveilled"
        };
        Verdict {
            verdict,
            seeded: test,
            control,
        }
    }
}

/// The analysis: `surveillance.csv`, one row per experiment, content kind,
/// label and channel: seeded against control, Fisher's exact test, Holm's
/// correction over the rows.
#[derive(Default)]
struct SurveillanceTable {
    /// (trials, seeded blocked, control blocked) of each group, over trials
    /// with both outcomes conclusive.
    counts: BTreeMap<Group, (u64, u64, u64)>,
}

/// (experiment_name, content_kind, label, channel).
type Group = (String, String, String, String);

/// A row of surveillance.csv.
#[derive(Serialize)]
struct SurveillanceRow {
    experiment_name: String,
    content_kind: String,
    label: String,
    channel: String,
    n: u64,
    seeded_blocked: u64,
    control_blocked: u64,
    seeded_rate: Option<f64>,
    seeded_ci_low: Option<f64>,
    seeded_ci_high: Option<f64>,
    control_rate: Option<f64>,
    control_ci_low: Option<f64>,
    control_ci_high: Option<f64>,
    fisher_p: Option<f64>,
    odds_ratio: Option<f64>,
    p_holm: Option<f64>,
}

impl Analysis for SurveillanceTable {
    fn trial(&mut self, r: &TrialRow) {
        let (Some(s), Some(c)) = (r.seeded_outcome, r.control_outcome) else {
            return;
        };
        if !(s.conclusive() && c.conclusive()) {
            return;
        }
        let e = self
            .counts
            .entry((
                r.experiment_name.clone(),
                r.content_kind.clone(),
                r.label.clone(),
                r.channel.clone(),
            ))
            .or_default();
        e.0 += 1;
        e.1 += u64::from(s == Outcome::Blocked);
        e.2 += u64::from(c == Outcome::Blocked);
    }

    fn finish(self: Box<Self>, interval: Interval) -> Vec<Table> {
        let mut rows: Vec<SurveillanceRow> = self
            .counts
            .into_iter()
            .map(|((name, kind, label, channel), (n, sb, cb))| {
                let (slo, shi) = interval.ci(sb, n);
                let (clo, chi) = interval.ci(cb, n);
                let (p, odds) = stats::fisher_exact(sb, n - sb, cb, n - cb);
                SurveillanceRow {
                    experiment_name: name,
                    content_kind: kind,
                    label,
                    channel,
                    n,
                    seeded_blocked: sb,
                    control_blocked: cb,
                    seeded_rate: rate(sb, n),
                    seeded_ci_low: slo,
                    seeded_ci_high: shi,
                    control_rate: rate(cb, n),
                    control_ci_low: clo,
                    control_ci_high: chi,
                    fisher_p: Some(p),
                    odds_ratio: odds.is_finite().then_some(odds),
                    p_holm: None,
                }
            })
            .collect();
        let ps: Vec<f64> = rows
            .iter()
            .map(|r| r.fisher_p.unwrap_or(f64::NAN))
            .collect();
        for (r, h) in rows.iter_mut().zip(stats::holm(&ps)) {
            r.p_holm = (!h.is_nan()).then_some(h);
        }
        let mut table = Table::from_rows(
            "surveillance.csv",
            "Surveillance",
            "Each row is one experiment's trials of one content kind, label and channel (design surveillance): how often the seeded copy and the unseeded control were blocked, Fisher's exact test between them, and its p value Holm-adjusted over the rows.",
            &[
                "experiment_name",
                "content_kind",
                "label",
                "channel",
                "n",
                "seeded_blocked",
                "control_blocked",
                "seeded_rate",
                "seeded_ci_low",
                "seeded_ci_high",
                "control_rate",
                "control_ci_low",
                "control_ci_high",
                "fisher_p",
                "odds_ratio",
                "p_holm",
            ],
            &rows,
        );
        table.summary = rows.iter().map(sentence).collect();
        vec![table]
    }
}

/// What one row of surveillance.csv shows, in words.
fn sentence(r: &SurveillanceRow) -> String {
    let evidence = r.p_holm.is_some_and(|p| p < 0.05) && r.seeded_rate > r.control_rate;
    format!(
        "{} ({} {}s, {} chats): seeded copies were blocked in {} of {} trials ({}, {}), unseeded controls in {} of {} ({}); Fisher {}, Holm-adjusted {}. {}",
        r.experiment_name,
        r.label,
        r.content_kind,
        r.channel,
        r.seeded_blocked,
        r.n,
        words::pct(r.seeded_rate),
        words::ci(r.seeded_ci_low, r.seeded_ci_high),
        r.control_blocked,
        r.n,
        words::pct(r.control_rate),
        words::p_value(r.fisher_p),
        words::p_value(r.p_holm),
        if evidence {
            "Evidence that transmissions in the intl-only seed chat were inspected and their content then censored."
        } else {
            "No significant evidence of surveillance here."
        }
    )
}
