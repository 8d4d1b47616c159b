//! `transform`: which changes to a blocked image evade the filter? With
//! `prime` (the default), a fresh copy is seeded between intl accounts and,
//! after `delay_s`, sent into the china chat (`prime`: it must be blocked
//! for the trial to count); then the transformed copy is sent (`test`).

use std::collections::BTreeMap;
use std::sync::Arc;

use rand_chacha::ChaCha8Rng;

use super::{blocked_or_evaded, Common, Design, Experiment, ParseCx, TrialOutcomes, Verdict};
use crate::corpus::transform::{SpecError, Transform};
use crate::dataset::{Outcome, SendRow};
use crate::error::InputError;
use crate::probe::chat::Chat;
use crate::probe::items::CorpusItem;
use crate::probe::plan::{seed_and_prime, send, trial, Content, Role, Trial};
use crate::stats::analyze::{rate, Interval};
use crate::stats::design_analysis::{Analysis, Bar, Chart, Figure, Table};

/// The registry entry.
pub const DESIGN: Design = Design {
    name: "transform",
    about: "variants of a blocked image: which transforms evade the filter",
    keys: &["items", "seed_chat", "prime", "delay_s", "transforms"],
    parse,
    verdicts: &["blocked", "evaded"],
    analysis: Some(|| Box::new(TransformTables::default())),
};

#[derive(Debug)]
struct TransformDesign {
    common: Common,
    items: Vec<CorpusItem>,
    seed_chat: Chat,
    prime: bool,
    delay_s: f64,
    transforms: Vec<Transform>,
}

/// Read a list of transforms to test (not `fresh`, no repeats) under `key`.
pub fn transforms(cx: &ParseCx, key: &str, specs: &[String]) -> Result<Vec<Transform>, InputError> {
    let mut out = Vec::new();
    for s in specs {
        let t: Transform = s
            .parse()
            .map_err(|err: SpecError| cx.err(key, err.to_string()))?;
        if matches!(t, Transform::Fresh | Transform::FreshMeta) {
            return Err(cx.err(
                key,
                format!("`{t}` is not a transform to test: every probe is fresh already"),
            ));
        }
        if out.contains(&t) {
            return Err(cx.err(key, format!("`{t}` is listed twice")));
        }
        out.push(t);
    }
    Ok(out)
}

fn parse(cx: &ParseCx) -> Result<Arc<dyn Experiment>, InputError> {
    let items = cx.items()?;
    let specs: Vec<String> = cx.require("transforms")?;
    if specs.is_empty() {
        return Err(cx.err("transforms", "the list is empty"));
    }
    let transforms = transforms(cx, "transforms", &specs)?;
    cx.images_only(&items, "transforms")?;
    Ok(Arc::new(TransformDesign {
        common: cx.common(),
        items,
        seed_chat: cx.seed_chat()?,
        prime: cx.get("prime")?.unwrap_or(true),
        delay_s: cx.delay_s()?,
        transforms,
    }))
}

impl Experiment for TransformDesign {
    fn common(&self) -> &Common {
        &self.common
    }

    fn max_sends(&self) -> u64 {
        (self.items.len() * self.transforms.len()) as u64 * self.common.replicates as u64 * 3
    }

    fn first_trials(&self, _rng: &mut ChaCha8Rng) -> Vec<Trial> {
        let mut out = Vec::new();
        for rep in 1..=self.common.replicates {
            for it in &self.items {
                for &t in &self.transforms {
                    let id = format!("{}/{}/{t}/r{rep}", self.common.name, it.item.id);
                    let mut sends = Vec::new();
                    let mut at = 0.0;
                    if self.prime {
                        sends.extend(seed_and_prime(
                            &id,
                            &self.seed_chat,
                            &self.common.test_chat,
                            self.delay_s,
                            it,
                        ));
                        at = self.delay_s;
                    }
                    sends.push(send(
                        &id,
                        Role::Test,
                        at,
                        &self.common.test_chat,
                        Content::Transformed('A', t),
                        it,
                    ));
                    out.push(trial(id, self, Some(it), t.to_string(), sends));
                }
            }
        }
        out
    }

    fn verdict(&self, _t: &Trial, o: &TrialOutcomes) -> Verdict {
        let prime = o.role(Role::Prime);
        let primed = !o.has(Role::Prime) || prime == Some(Outcome::Blocked);
        blocked_or_evaded(o, primed, prime)
    }
}

/// The analysis: `transforms.csv` (how often each transform evaded) and
/// `threshold.csv` (a logistic fit of blocked on the pHash distance from
/// the original), with their plots.
#[derive(Default)]
struct TransformTables {
    /// transform → (tests, evaded, sum of pHash distances, tests with one).
    counts: BTreeMap<String, (u64, u64, f64, u64)>,
    /// (pHash distance, blocked) of every test that has a distance.
    points: Vec<(f64, bool)>,
}

/// A row of transforms.csv.
#[derive(serde::Serialize)]
struct TransformRow {
    transform: String,
    n: u64,
    blocked: u64,
    evaded: u64,
    evasion_rate: Option<f64>,
    ci_low: Option<f64>,
    ci_high: Option<f64>,
    mean_phash_distance: Option<f64>,
}

/// The row of threshold.csv.
#[derive(serde::Serialize)]
struct ThresholdRow {
    intercept: Option<f64>,
    slope: Option<f64>,
    se_intercept: Option<f64>,
    se_slope: Option<f64>,
    distance_at_50: Option<f64>,
    ci_low: Option<f64>,
    ci_high: Option<f64>,
    n: u64,
}

impl Analysis for TransformTables {
    fn send(&mut self, r: &SendRow) {
        let Some(blocked) = r.test_blocked() else {
            return;
        };
        if r.transform.is_empty() {
            return;
        }
        let e = self.counts.entry(r.transform.clone()).or_default();
        e.0 += 1;
        e.1 += u64::from(!blocked);
        if let Some(d) = r.phash_distance {
            e.2 += d;
            e.3 += 1;
            self.points.push((d, blocked));
        }
    }

    fn finish(self: Box<Self>, interval: Interval) -> Vec<Table> {
        let rows: Vec<TransformRow> = self
            .counts
            .into_iter()
            .map(|(t, (n, k, sum, nd))| {
                let (lo, hi) = interval.ci(k, n);
                TransformRow {
                    transform: t,
                    n,
                    blocked: n - k,
                    evaded: k,
                    evasion_rate: rate(k, n),
                    ci_low: lo,
                    ci_high: hi,
                    mean_phash_distance: (nd > 0).then(|| sum / nd as f64),
                }
            })
            .collect();
        let mut transforms = Table::from_rows(
            "transforms.csv",
            "Transforms",
            "Each row is one transform of a blocked image (design transform): how often the transformed copy evaded the filter, and its mean pHash distance from the original.",
            &[
                "transform",
                "n",
                "blocked",
                "evaded",
                "evasion_rate",
                "ci_low",
                "ci_high",
                "mean_phash_distance",
            ],
            &rows,
        );
        if !rows.is_empty() {
            let parts: Vec<String> = rows
                .iter()
                .map(|r| format!("{} {} of {}", r.transform, r.evaded, r.n))
                .collect();
            transforms.summary.push(format!(
                "Transforms of blocked images that evaded the filter: {}.",
                parts.join(", ")
            ));
        }
        transforms.figures.push(Figure {
            name: "transforms".into(),
            title: "Transforms".into(),
            heading: "Evasion rate by transform".into(),
            x_label: String::new(),
            y_label: "evaded (95% CI)".into(),
            chart: Chart::Bars(
                rows.iter()
                    .map(|r| Bar {
                        label: r.transform.clone(),
                        y: r.evasion_rate,
                        lo: r.ci_low,
                        hi: r.ci_high,
                    })
                    .collect(),
            ),
        });
        let (x, y): (Vec<f64>, Vec<bool>) = self.points.iter().copied().unzip();
        let fit = crate::stats::logistic(&x, &y);
        let ci = fit.map(|f| f.x_at_50_ci(0.95));
        let row = ThresholdRow {
            intercept: fit.map(|f| f.intercept),
            slope: fit.map(|f| f.slope),
            se_intercept: fit.map(|f| f.se_intercept),
            se_slope: fit.map(|f| f.se_slope),
            distance_at_50: fit.map(|f| f.x_at_50()),
            ci_low: ci.map(|c| c.0),
            ci_high: ci.map(|c| c.1),
            n: x.len() as u64,
        };
        let mut threshold = Table::from_rows(
            "threshold.csv",
            "Threshold",
            "A logistic fit of blocked on the pHash distance between a transformed test and its original, over every transform test; distance_at_50 is where blocking falls to half (empty estimates when the data are completely separated).",
            &[
                "intercept",
                "slope",
                "se_intercept",
                "se_slope",
                "distance_at_50",
                "ci_low",
                "ci_high",
                "n",
            ],
            // No transform test, no fit: a header alone, not a row of blanks.
            &[&row][..usize::from(row.n > 0)],
        );
        if let Some(d) = row.distance_at_50 {
            threshold.summary.push(format!(
                "Blocking falls to 50% at a pHash distance of about {d:.1} bits (logistic fit, {} sends).",
                row.n
            ));
        }
        threshold.figures.push(Figure {
            name: "threshold".into(),
            title: "Threshold".into(),
            heading: "Blocked against pHash distance".into(),
            x_label: "pHash distance from the original (bits)".into(),
            y_label: "blocked (1) / evaded (0)".into(),
            chart: Chart::Logistic {
                points: self.points,
                fit: fit.map(|f| (f.intercept, f.slope)),
            },
        });
        vec![transforms, threshold]
    }
}
