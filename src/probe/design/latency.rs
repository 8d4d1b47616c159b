//! `latency`: how long after a seed is a file blocked? Each trial seeds a
//! fresh copy between intl accounts and tests it once, `offset` seconds
//! later, in a chat with a china account; one trial per offset.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use rand_chacha::ChaCha8Rng;

use super::analysis::Analysis;
use super::{Common, Design, Experiment, ParseCx, TrialOutcomes, TrialVerdict};
use crate::dataset::tables::{Chart, Figure, Point, Series, Table};
use crate::dataset::{Outcome, SendRow, Verdict};
use crate::error::InputError;
use crate::probe::chat::Chat;
use crate::probe::items::CorpusItem;
use crate::probe::plan::{num, send, trial, Content, Role, Trial};
use crate::probe::spec::{MAX_LIST, MAX_SPAN_S};
use crate::ranges::{Declared, Range};
use crate::stats::{current_status, words};
use crate::stats::{rate, Interval};

/// The registry entry.
pub const DESIGN: Design = Design {
    name: "latency",
    about: "seed fresh copies, test each once at its offset: when does blocking start",
    keys: &["items", "seed_chat", "offsets_s"],
    ranges: &[Declared {
        path: "offsets_s[]",
        range: Range::above(0.0, MAX_SPAN_S),
    }],
    parse,
    verdicts: &[Verdict::Surveilled, Verdict::NotSurveilled],
    analysis: Some(|| Box::new(LatencyTables::default())),
    findings: None,
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
    // Each offset's range is declared (DESIGN.ranges); the list's length
    // is not a value's range.
    if offs.is_empty() || offs.len() > MAX_LIST {
        return Err(cx.err(
            "offsets_s",
            format!("offsets must be a list of 1 to {MAX_LIST} positive seconds"),
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

    fn verdict(&self, _t: &Trial, o: &TrialOutcomes) -> TrialVerdict {
        let test = o.role(Role::Test);
        let verdict = if !o.complete || o.role(Role::Seed) == Some(Outcome::Blocked) {
            Verdict::Inconclusive
        } else if test == Some(Outcome::Blocked) {
            Verdict::Surveilled
        } else {
            Verdict::NotSurveilled
        };
        TrialVerdict {
            verdict,
            seeded: test,
            control: None,
        }
    }
}

/// The analysis: `latency.csv` (the blocked rate of the tests at each
/// planned offset, and Turnbull's estimate of the share blocked by then)
/// and `latency_median.csv` (the share of seeds inspected, and the median
/// time to censorship among them), with the latency plot. The unit is the
/// trial; only trials whose verdict is `surveilled` or `not_surveilled`
/// count (a seed blocked at once, or a send lost, answers nothing about
/// timing), the others are counted as inconclusive.
#[derive(Default)]
struct LatencyTables {
    /// (run_id, trial_id) → verdict, from trials.csv.
    verdicts: HashMap<(String, String), Verdict>,
    /// (experiment_name, offset's bits) → (conclusive tests, blocked,
    /// inconclusive).
    counts: BTreeMap<(String, u64), (u64, u64, u64)>,
}

/// Draws for the latency intervals, and their generator's seed (fixed, so
/// the same data give the same intervals).
const REPS: u32 = 2000;
const BOOT_SEED: u64 = 20200507;

/// A row of latency.csv.
#[derive(serde::Serialize)]
struct LatencyRow {
    experiment_name: String,
    offset_s: f64,
    n: u64,
    blocked: u64,
    inconclusive: u64,
    rate: Option<f64>,
    ci_low: Option<f64>,
    ci_high: Option<f64>,
    npmle: Option<f64>,
}

/// A row of latency_median.csv.
#[derive(serde::Serialize)]
struct LatencyMedianRow {
    experiment_name: String,
    n: u64,
    inconclusive: u64,
    inspected: Option<f64>,
    inspected_ci_low: Option<f64>,
    inspected_ci_high: Option<f64>,
    median_low_s: Option<f64>,
    median_s: Option<f64>,
    ci_low: Option<f64>,
    ci_high: Option<f64>,
    method: String,
}

impl Analysis for LatencyTables {
    fn trial(&mut self, t: &crate::dataset::TrialRow) {
        self.verdicts
            .insert((t.run_id.clone(), t.trial_id.clone()), t.verdict);
    }

    fn send(&mut self, r: &SendRow) {
        if r.role != "test" {
            return;
        }
        // Group by the design's offset when the file has it: the real
        // offsets differ by the scheduler's jitter.
        let Some(off) = r.planned_offset_s.or(r.offset_s) else {
            return;
        };
        let verdict = self
            .verdicts
            .get(&(r.run_id.clone(), r.trial_id.clone()))
            .copied();
        let c = self
            .counts
            .entry((r.experiment_name.clone(), off.to_bits()))
            .or_default();
        match verdict {
            Some(Verdict::Surveilled) => {
                c.0 += 1;
                c.1 += 1;
            }
            Some(Verdict::NotSurveilled) => c.0 += 1,
            _ => c.2 += 1,
        }
    }

    fn finish(self: Box<Self>, interval: Interval) -> Vec<Table> {
        let mut rows: Vec<LatencyRow> = self
            .counts
            .into_iter()
            .map(|((name, bits), (n, k, inconclusive))| {
                let (lo, hi) = interval.ci(k, n);
                LatencyRow {
                    experiment_name: name,
                    offset_s: f64::from_bits(bits),
                    n,
                    blocked: k,
                    inconclusive,
                    rate: rate(k, n),
                    ci_low: lo,
                    ci_high: hi,
                    npmle: None,
                }
            })
            .collect();
        rows.sort_by(|a, b| {
            a.experiment_name
                .cmp(&b.experiment_name)
                .then(a.offset_s.total_cmp(&b.offset_s))
        });
        let mut experiments: Vec<String> = rows.iter().map(|r| r.experiment_name.clone()).collect();
        experiments.dedup();
        let medians: Vec<LatencyMedianRow> = experiments
            .iter()
            .map(|name| {
                let tests: Vec<current_status::Tests> = rows
                    .iter()
                    .filter(|r| r.experiment_name == *name)
                    .map(|r| (r.offset_s, r.n, r.blocked))
                    .collect();
                let inconclusive = rows
                    .iter()
                    .filter(|r| r.experiment_name == *name)
                    .map(|r| r.inconclusive)
                    .sum();
                let fit = current_status::fit(&tests, 0.95, REPS, BOOT_SEED);
                if let Some(f) = &fit {
                    for r in rows.iter_mut().filter(|r| r.experiment_name == *name) {
                        r.npmle = f.steps.iter().find(|s| s.0 == r.offset_s).map(|s| s.1);
                    }
                }
                let f = fit.as_ref();
                LatencyMedianRow {
                    experiment_name: name.clone(),
                    n: tests.iter().map(|t| t.1).sum(),
                    inconclusive,
                    inspected: f.map(|f| f.inspected),
                    inspected_ci_low: f.map(|f| f.inspected_ci.0),
                    inspected_ci_high: f.map(|f| f.inspected_ci.1),
                    median_low_s: f.and_then(|f| f.median).map(|m| m.0),
                    median_s: f.and_then(|f| f.median).map(|m| m.1),
                    ci_low: f.and_then(|f| f.median_ci).map(|c| c.0),
                    ci_high: f.and_then(|f| f.median_ci).and_then(|c| c.1),
                    method: format!(
                        "Turnbull NPMLE (current status); median among the inspected seeds; intervals from {REPS} draws of each offset's share from its Jeffreys posterior"
                    ),
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
            "Each row is one experiment's trials at one planned offset after the seed (design latency; the unit is the trial, one test each): how often the test was blocked, over the trials that could conclude (seed delivered, test blocked or delivered); inconclusive trials are counted apart. npmle is Turnbull's estimate of the share blocked by that offset (the blocked rates made non-decreasing, as they must be).",
            &[
                "experiment_name",
                "offset_s",
                "n",
                "blocked",
                "inconclusive",
                "rate",
                "ci_low",
                "ci_high",
                "npmle",
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
            "Latency: time to censorship",
            "Each row is one latency experiment (the unit is the trial; conclusive trials only). inspected is the share of seeds blocked by the last offset (Turnbull's estimate; a lower bound on the share ever inspected, since some seeds are never inspected), with an interval from redrawing each offset's share (Jeffreys posterior). Among the inspected seeds, the median time to censorship lies between median_low_s and median_s (the estimate places it no closer than two offsets); ci_low and ci_high are its interval from the same draws (empty at the top when too many draws saw no block), never below 0. Empty when no seed was blocked.",
            &[
                "experiment_name",
                "n",
                "inconclusive",
                "inspected",
                "inspected_ci_low",
                "inspected_ci_high",
                "median_low_s",
                "median_s",
                "ci_low",
                "ci_high",
                "method",
            ],
            &medians,
        );
        median.summary = medians.iter().map(median_sentence).collect();
        vec![latency, median]
    }
}

/// What one row of latency_median.csv says, in words.
fn median_sentence(r: &LatencyMedianRow) -> String {
    let inspected = format!(
        "{} of the seeds were inspected (blocked) by the last offset ({}; {} conclusive tests{})",
        words::pct(r.inspected),
        words::ci(r.inspected_ci_low, r.inspected_ci_high),
        r.n,
        if r.inconclusive > 0 {
            format!(", {} inconclusive left out", r.inconclusive)
        } else {
            String::new()
        }
    );
    match (r.median_low_s, r.median_s) {
        (Some(lo), Some(hi)) => format!(
            "{}: {inspected}; among those, half were blocked between {lo:.0} s and {hi:.0} s after the seed (95% CI {:.0} s to {}).",
            r.experiment_name,
            r.ci_low.unwrap_or(lo),
            r.ci_high.map_or("beyond the last offset".to_string(), |h| format!("{h:.0} s")),
        ),
        _ => format!("{}: {inspected}; no time to censorship can be estimated.", r.experiment_name),
    }
}
