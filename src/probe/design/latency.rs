//! `latency`: how long after a seed is a file blocked? Each trial seeds a
//! fresh copy between intl accounts and tests it once, `offset` seconds
//! later, in a chat with a china account; one trial per offset.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use rand_chacha::ChaCha8Rng;

use super::{Common, Design, Experiment, ParseCx, TrialOutcomes, Verdict, INCONCLUSIVE};
use crate::dataset::{Outcome, SendRow};
use crate::error::InputError;
use crate::probe::chat::Chat;
use crate::probe::items::CorpusItem;
use crate::probe::plan::{num, send, trial, Content, Role, Trial};
use crate::probe::spec::{MAX_LIST, MAX_SPAN_S};
use crate::stats::analyze::{rate, Interval};
use crate::stats::design_analysis::{Analysis, Chart, Figure, Point, Series, Table};
use crate::stats::{self, words};

/// The registry entry.
pub const DESIGN: Design = Design {
    name: "latency",
    about: "seed fresh copies, test each once at its offset: when does blocking start",
    keys: &["items", "seed_chat", "offsets_s"],
    parse,
    verdicts: &["surveilled", "not_surveilled"],
    analysis: Some(|| Box::new(LatencyTables::default())),
};

#[derive(Debug)]
struct Latency {
    common: Common,
    items: Vec<CorpusItem>,
    seed_chat: Chat,
    offsets_s: Vec<f64>,
}

fn parse(cx: &ParseCx) -> Result<Arc<dyn Experiment>, InputError> {
    let items = cx.items()?;
    let offs: Vec<f64> = cx.require("offsets_s")?;
    if offs.is_empty()
        || offs.len() > MAX_LIST
        || offs
            .iter()
            .any(|o| !(o.is_finite() && *o > 0.0 && *o <= MAX_SPAN_S))
    {
        return Err(cx.err(
            "offsets_s",
            format!("offsets must be a list of 1 to {MAX_LIST} positive seconds, each at most {MAX_SPAN_S} (a year)"),
        ));
    }
    let mut seen = HashSet::new();
    for o in &offs {
        if !seen.insert(o.to_bits()) {
            return Err(cx.err("offsets_s", format!("offset {o} is listed twice")));
        }
    }
    Ok(Arc::new(Latency {
        common: cx.common(),
        items,
        seed_chat: cx.seed_chat()?,
        offsets_s: offs,
    }))
}

impl Experiment for Latency {
    fn common(&self) -> &Common {
        &self.common
    }

    fn max_sends(&self) -> u64 {
        (self.items.len() * self.offsets_s.len()) as u64 * self.common.replicates as u64 * 2
    }

    fn first_trials(&self, _rng: &mut ChaCha8Rng) -> Vec<Trial> {
        let mut out = Vec::new();
        for rep in 1..=self.common.replicates {
            for it in &self.items {
                for &off in &self.offsets_s {
                    let id = format!("{}/{}/{}s/r{rep}", self.common.name, it.item.id, num(off));
                    let sends = vec![
                        send(
                            &id,
                            Role::Seed,
                            0.0,
                            &self.seed_chat,
                            Content::Fresh('A'),
                            it,
                        ),
                        send(
                            &id,
                            Role::Test,
                            off,
                            &self.common.test_chat,
                            Content::Fresh('A'),
                            it,
                        ),
                    ];
                    out.push(trial(id, self, Some(it), num(off), sends));
                }
            }
        }
        out
    }

    fn verdict(&self, _t: &Trial, o: &TrialOutcomes) -> Verdict {
        let test = o.role(Role::Test);
        let verdict = if !o.complete || o.role(Role::Seed) == Some(Outcome::Blocked) {
            INCONCLUSIVE
        } else if test == Some(Outcome::Blocked) {
            "surveilled"
        } else {
            "not_surveilled"
        };
        Verdict {
            verdict,
            seeded: test,
            control: None,
        }
    }
}

/// The analysis: `latency.csv` (the blocked rate of test sends at each
/// planned offset) and `latency_median.csv` (the offset of 50 % blocking,
/// from a logistic fit), with the latency plot.
#[derive(Default)]
struct LatencyTables {
    /// (experiment_name, offset's bits) → (tests, blocked).
    counts: BTreeMap<(String, u64), (u64, u64)>,
    /// experiment_name → every test's (offset, blocked), for the fit.
    points: BTreeMap<String, (Vec<f64>, Vec<bool>)>,
}

/// A row of latency.csv.
#[derive(serde::Serialize)]
struct LatencyRow {
    experiment_name: String,
    offset_s: f64,
    n: u64,
    blocked: u64,
    rate: Option<f64>,
    ci_low: Option<f64>,
    ci_high: Option<f64>,
}

/// A row of latency_median.csv.
#[derive(serde::Serialize)]
struct LatencyMedianRow {
    experiment_name: String,
    n: u64,
    median_s: Option<f64>,
    ci_low: Option<f64>,
    ci_high: Option<f64>,
}

impl Analysis for LatencyTables {
    fn send(&mut self, r: &SendRow) {
        let Some(blocked) = r.test_blocked() else {
            return;
        };
        // Group by the design's offset when the file has it: the real
        // offsets differ by the scheduler's jitter.
        let Some(off) = r.planned_offset_s.or(r.offset_s) else {
            return;
        };
        let c = self
            .counts
            .entry((r.experiment_name.clone(), off.to_bits()))
            .or_default();
        c.0 += 1;
        c.1 += u64::from(blocked);
        let p = self.points.entry(r.experiment_name.clone()).or_default();
        p.0.push(off);
        p.1.push(blocked);
    }

    fn finish(self: Box<Self>, interval: Interval) -> Vec<Table> {
        let mut rows: Vec<LatencyRow> = self
            .counts
            .into_iter()
            .map(|((name, bits), (n, k))| {
                let (lo, hi) = interval.ci(k, n);
                LatencyRow {
                    experiment_name: name,
                    offset_s: f64::from_bits(bits),
                    n,
                    blocked: k,
                    rate: rate(k, n),
                    ci_low: lo,
                    ci_high: hi,
                }
            })
            .collect();
        rows.sort_by(|a, b| {
            a.experiment_name
                .cmp(&b.experiment_name)
                .then(a.offset_s.total_cmp(&b.offset_s))
        });
        let medians: Vec<LatencyMedianRow> = self
            .points
            .into_iter()
            .map(|(name, (x, y))| {
                let fit = stats::logistic(&x, &y).filter(|f| f.slope > 0.0);
                let ci = fit.map(|f| f.x_at_50_ci(0.95));
                LatencyMedianRow {
                    experiment_name: name,
                    n: x.len() as u64,
                    median_s: fit.map(|f| f.x_at_50()),
                    ci_low: ci.map(|c| c.0),
                    ci_high: ci.map(|c| c.1),
                }
            })
            .collect();
        let mut names: Vec<&str> = rows.iter().map(|r| r.experiment_name.as_str()).collect();
        names.dedup();
        let series = names
            .iter()
            .map(|name| Series {
                name: name.to_string(),
                points: rows
                    .iter()
                    .filter(|r| r.experiment_name == *name)
                    .map(|r| Point {
                        x: r.offset_s,
                        y: r.rate,
                        lo: r.ci_low,
                        hi: r.ci_high,
                    })
                    .collect(),
            })
            .collect();
        let mut latency = Table::from_rows(
            "latency.csv",
            "Latency",
            "Each row is one experiment's test sends at one planned offset after the seed (design latency): how often they were blocked.",
            &[
                "experiment_name",
                "offset_s",
                "n",
                "blocked",
                "rate",
                "ci_low",
                "ci_high",
            ],
            &rows,
        );
        latency.figures.push(Figure {
            name: "latency".into(),
            title: "Latency".into(),
            heading: "Blocked fraction by time since the seed".into(),
            x_label: "seconds after the seed send".into(),
            y_label: "blocked (95% CI)".into(),
            chart: Chart::Curves(series),
        });
        let mut median = Table::from_rows(
            "latency_median.csv",
            "Latency: half blocked",
            "Each row is one latency experiment: the offset at which half of the seeded copies are blocked, from a logistic fit of blocked on offset, with its delta-method interval (empty when the data allow no fit).",
            &["experiment_name", "n", "median_s", "ci_low", "ci_high"],
            &medians,
        );
        median.summary = medians
            .iter()
            .filter_map(|r| {
                r.median_s.map(|m| {
                    format!(
                        "{}: half of the seeded copies were blocked about {:.0} s after the seed ({}); {} tests.",
                        r.experiment_name,
                        m,
                        words::ci_s(r.ci_low, r.ci_high),
                        r.n
                    )
                })
            })
            .collect();
        vec![latency, median]
    }
}
