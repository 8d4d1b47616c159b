//! `expiry`: how long does a blocked file stay blocked? A fresh copy is
//! seeded, confirmed blocked (`prime`) after `delay_s`, then retested every
//! `retest_every_s`, `retests` times.

use std::collections::BTreeMap;
use std::sync::Arc;

use rand_chacha::ChaCha8Rng;

use super::analysis::Analysis;
use super::{Common, Design, Experiment, ParseCx, TrialOutcomes, TrialVerdict};
use crate::dataset::tables::Table;
use crate::dataset::{Outcome, SendRow, Verdict};
use crate::error::InputError;
use crate::probe::chat::Chat;
use crate::probe::items::CorpusItem;
use crate::probe::plan::{num, seed_and_prime, send, trial, Content, Role, Trial};
use crate::probe::spec::{MAX_LIST, MAX_SPAN_S};
use crate::ranges::{Declared, Range};
use crate::stats::Interval;

/// The registry entry.
pub const DESIGN: Design = Design {
    name: "expiry",
    about: "how long a blocked hash stays blocked (retests after a confirmed block)",
    keys: &["items", "seed_chat", "delay_s", "retest_every_s", "retests"],
    ranges: &[
        super::parse::DELAY_S,
        Declared {
            path: "retest_every_s",
            range: Range::above(0.0, MAX_SPAN_S),
        },
        Declared {
            path: "retests",
            range: Range::int(1, MAX_LIST as i64),
        },
    ],
    parse,
    verdicts: &[Verdict::Expired, Verdict::StillBlocked],
    analysis: Some(|| Box::new(ExpiryTable::default())),
    findings: None,
};

#[derive(Debug)]
struct Expiry {
    common: Common,
    items: Vec<CorpusItem>,
    seed_chat: Chat,
    delay_s: f64,
    retest_every_s: f64,
    retests: u32,
}

fn parse(cx: &ParseCx) -> Result<Arc<dyn Experiment>, InputError> {
    let items = cx.items()?;
    let every: f64 = cx.require("retest_every_s")?;
    let k: u32 = cx.require("retests")?;
    let delay_s = cx.delay_s()?;
    if every * k as f64 + delay_s > MAX_SPAN_S {
        return Err(cx
            .err(
                "retests",
                format!("{k} retests every {every} s span more than a year ({MAX_SPAN_S} s)"),
            )
            .hint("split the campaign into runs, or retest less often"));
    }
    Ok(Arc::new(Expiry {
        common: cx.common(),
        items,
        seed_chat: cx.seed_chat()?,
        delay_s,
        retest_every_s: every,
        retests: k,
    }))
}

impl Experiment for Expiry {
    fn common(&self) -> &Common {
        &self.common
    }

    fn max_sends(&self) -> u64 {
        self.items.len() as u64 * self.common.replicates as u64 * (2 + self.retests as u64)
    }

    fn first_trials(&self, _rng: &mut ChaCha8Rng) -> Vec<Trial> {
        let mut out = Vec::new();
        for rep in 1..=self.common.replicates {
            for it in &self.items {
                let id = format!("{}/{}/r{rep}", self.common.name, it.item.id);
                let mut sends = seed_and_prime(
                    &id,
                    &self.seed_chat,
                    &self.common.test_chat,
                    self.delay_s,
                    it,
                )
                .to_vec();
                for k in 1..=self.retests {
                    let at = self.delay_s + k as f64 * self.retest_every_s;
                    let mut s = send(
                        &id,
                        Role::Retest,
                        at,
                        &self.common.test_chat,
                        Content::Fresh('A'),
                        it,
                    );
                    s.send_id = format!("{id}/retest{k}");
                    sends.push(s);
                }
                out.push(trial(id, self, Some(it), num(self.retest_every_s), sends));
            }
        }
        out
    }

    fn verdict(&self, _t: &Trial, o: &TrialOutcomes) -> TrialVerdict {
        let prime = o.role(Role::Prime);
        let retests: Vec<Option<Outcome>> = o
            .sends
            .iter()
            .filter(|(r, _)| *r == Role::Retest)
            .map(|(_, o)| *o)
            .collect();
        let last = retests.last().copied().flatten();
        let verdict = if !o.complete || prime != Some(Outcome::Blocked) {
            Verdict::Inconclusive
        } else if retests.contains(&Some(Outcome::Delivered)) {
            Verdict::Expired
        } else {
            Verdict::StillBlocked
        };
        TrialVerdict {
            verdict,
            seeded: last,
            control: prime,
        }
    }
}

/// The analysis: `expiry.csv`, the Kaplan–Meier estimate of "still
/// blocked" over the retests. A trial's event is its first delivered
/// retest; it is censored at its last retest if it never was.
#[derive(Default)]
struct ExpiryTable {
    /// (experiment_name, run_id, trial_id) → (first offset delivered, last
    /// offset seen).
    trials: BTreeMap<(String, String, String), (Option<f64>, f64)>,
}

/// A row of expiry.csv (one step of the curve).
#[derive(serde::Serialize)]
struct ExpiryRow {
    experiment_name: String,
    time_s: f64,
    at_risk: u64,
    expired: u64,
    censored: u64,
    still_blocked: f64,
    ci_low: f64,
    ci_high: f64,
    median_s: Option<f64>,
}

impl Analysis for ExpiryTable {
    fn send(&mut self, r: &SendRow) {
        let Some(blocked) = r.blocked() else {
            return;
        };
        let (true, Some(off)) = (r.role == "retest", r.offset_s) else {
            return;
        };
        let e = self
            .trials
            .entry((
                r.experiment_name.clone(),
                r.run_id.clone(),
                r.trial_id.clone(),
            ))
            .or_insert((None, off));
        e.1 = e.1.max(off);
        if !blocked {
            e.0 = Some(e.0.map_or(off, |f: f64| f.min(off)));
        }
    }

    fn finish(self: Box<Self>, _interval: Interval) -> Vec<Table> {
        let mut by_exp: BTreeMap<String, Vec<(f64, bool)>> = BTreeMap::new();
        for ((name, _, _), (first, last)) in self.trials {
            by_exp
                .entry(name)
                .or_default()
                .push(first.map_or((last, false), |t| (t, true)));
        }
        let mut rows = Vec::new();
        let mut summary = Vec::new();
        for (name, data) in by_exp {
            let steps = crate::stats::kaplan_meier(&data, 0.95);
            let median = crate::stats::km_median(&steps);
            if let Some(m) = median {
                summary.push(format!(
                    "{name}: blocked hashes stayed blocked for a median of {m:.0} s (Kaplan–Meier)."
                ));
            }
            for st in steps {
                rows.push(ExpiryRow {
                    experiment_name: name.clone(),
                    time_s: st.time,
                    at_risk: st.at_risk,
                    expired: st.events,
                    censored: st.censored,
                    still_blocked: st.survival,
                    ci_low: st.ci_low,
                    ci_high: st.ci_high,
                    median_s: median,
                });
            }
        }
        let mut table = Table::from_rows(
            "expiry.csv",
            "Expiry",
            "Each row is one step of the Kaplan–Meier estimate of the share of blocked hashes still blocked (design expiry), with Greenwood log(−log) intervals; median_s is the first time at or under one half.",
            &[
                "experiment_name",
                "time_s",
                "at_risk",
                "expired",
                "censored",
                "still_blocked",
                "ci_low",
                "ci_high",
                "median_s",
            ],
            &rows,
        );
        table.summary = summary;
        vec![table]
    }
}
