//! `transform`: which changes to a blocked image evade the filter? With
//! `prime` (the default), a fresh copy is seeded between intl accounts and,
//! after `delay_s`, sent into the china chat (`prime`: it must be blocked
//! for the trial to count); then the transformed copy is sent (`test`).

use std::collections::BTreeMap;
use std::sync::Arc;

use rand_chacha::ChaCha8Rng;

use super::analysis::Analysis;
use super::{blocked_or_evaded, Common, Design, Experiment, ParseCx, TrialOutcomes, TrialVerdict};
use crate::corpus::transform::{SpecError, Transform};
use crate::dataset::tables::{Bar, Chart, Figure, Table};
use crate::dataset::{Outcome, SendRow, Verdict};
use crate::error::InputError;
use crate::probe::chat::Chat;
use crate::probe::items::CorpusItem;
use crate::probe::plan::{seed_and_prime, send, trial, Content, Role, Trial};
use crate::stats::{rate, Interval};

/// The registry entry.
pub const DESIGN: Design = Design {
    name: "transform",
    about: "variants of a blocked image: which transforms evade the filter",
    keys: &["items", "seed_chat", "prime", "delay_s", "transforms"],
    ranges: &[super::parse::DELAY_S],
    parse,
    verdicts: &[Verdict::Blocked, Verdict::Evaded],
    analysis: Some(|| Box::new(TransformTables::default())),
    findings: None,
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

    fn verdict(&self, _t: &Trial, o: &TrialOutcomes) -> TrialVerdict {
        let prime = o.role(Role::Prime);
        let primed = !o.has(Role::Prime) || prime == Some(Outcome::Blocked);
        blocked_or_evaded(o, primed, prime)
    }
}

/// The analysis: `transforms.csv` (how often each transform evaded) and
/// `threshold.csv` (a logistic fit of blocked on the pHash distance from
/// the original), with their plots.
///
/// The unit is the trial, and only a trial whose verdict is `blocked` or
/// `evaded` answers the question "does this transform evade a filter that
/// blocks its original?": a trial whose prime was delivered (the original
/// was not blocked, so there was nothing to evade) or whose sends were lost
/// is counted in `inconclusive` and in nothing else. The verdict comes
/// from trials.csv (read before sends.csv in each input), the pHash
/// distance from the trial's test send.
#[derive(Default)]
struct TransformTables {
    /// (run_id, trial_id) → the trial's verdict, from trials.csv.
    verdicts: std::collections::HashMap<(String, String), Verdict>,
    /// transform → its counts.
    counts: BTreeMap<String, Counts>,
    /// (pHash distance, blocked) of every conclusive test with a distance.
    points: Vec<(f64, bool)>,
}

/// One transform's trials.
#[derive(Default)]
struct Counts {
    /// Conclusive trials (blocked or evaded).
    n: u64,
    /// Of them, evaded.
    evaded: u64,
    /// Trials that could not conclude.
    inconclusive: u64,
    /// Sum of the conclusive tests' pHash distances, and how many had one.
    distance_sum: f64,
    distances: u64,
}

/// A row of transforms.csv.
#[derive(serde::Serialize)]
struct TransformRow {
    transform: String,
    n: u64,
    blocked: u64,
    evaded: u64,
    inconclusive: u64,
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
    fn trial(&mut self, t: &crate::dataset::TrialRow) {
        self.verdicts
            .insert((t.run_id.clone(), t.trial_id.clone()), t.verdict);
    }

    fn send(&mut self, r: &SendRow) {
        if r.role != "test" || r.transform.is_empty() {
            return;
        }
        let verdict = self
            .verdicts
            .get(&(r.run_id.clone(), r.trial_id.clone()))
            .copied();
        let e = self.counts.entry(r.transform.clone()).or_default();
        let blocked = match verdict {
            Some(Verdict::Blocked) => true,
            Some(Verdict::Evaded) => false,
            _ => {
                e.inconclusive += 1;
                return;
            }
        };
        e.n += 1;
        e.evaded += u64::from(!blocked);
        if let Some(d) = r.phash_distance {
            e.distance_sum += d;
            e.distances += 1;
            self.points.push((d, blocked));
        }
    }

    fn finish(self: Box<Self>, interval: Interval) -> Vec<Table> {
        let rows: Vec<TransformRow> = self
            .counts
            .into_iter()
            .map(|(t, c)| {
                let (lo, hi) = interval.ci(c.evaded, c.n);
                TransformRow {
                    transform: t,
                    n: c.n,
                    blocked: c.n - c.evaded,
                    evaded: c.evaded,
                    inconclusive: c.inconclusive,
                    evasion_rate: rate(c.evaded, c.n),
                    ci_low: lo,
                    ci_high: hi,
                    mean_phash_distance: (c.distances > 0)
                        .then(|| c.distance_sum / c.distances as f64),
                }
            })
            .collect();
        let mut transforms = Table::from_rows(
            "transforms.csv",
            "Transforms",
            "Each row is one transform (design transform); the unit is the trial. n counts the trials that could conclude: the original's fresh copy (the prime) was blocked, so the filter knew the image, and the transformed copy was then blocked or evaded it. inconclusive counts the others (prime delivered: nothing to evade; a send lost), which are in no other column. The mean pHash distance from the original is over the conclusive trials.",
            &[
                "transform",
                "n",
                "blocked",
                "evaded",
                "inconclusive",
                "evasion_rate",
                "ci_low",
                "ci_high",
                "mean_phash_distance",
            ],
            &rows,
        );
        transforms.summary.extend(transform_sentence(&rows));
        transforms.figures.push(Figure {
            name: "transforms".into(),
            title: "Transforms".into(),
            heading: "Evasion rate by transform".into(),
            x_label: String::new(),
            y_label: "evaded (95% CI)".into(),
            chart: if rows.iter().any(|r| r.n > 0) {
                Chart::Bars(
                    rows.iter()
                        .filter(|r| r.n > 0)
                        .map(|r| Bar {
                            label: r.transform.clone(),
                            y: r.evasion_rate,
                            lo: r.ci_low,
                            hi: r.ci_high,
                        })
                        .collect(),
                )
            } else {
                Chart::Nothing(
                    "no transform trial could conclude (no original was blocked when primed)"
                        .into(),
                )
            },
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
            "A logistic fit of blocked on the pHash distance between a transformed test and its original, over the conclusive transform trials only (prime blocked, test blocked or evaded; the unit is the trial); distance_at_50 is where blocking falls to half (empty estimates when the data are completely separated or hold one outcome only).",
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
            chart: match fit {
                Some(f) => Chart::Logistic {
                    points: self.points,
                    fit: Some((f.intercept, f.slope)),
                },
                None => Chart::Nothing(threshold_why_not(&self.points)),
            },
        });
        vec![transforms, threshold]
    }
}

/// What transforms.csv shows, in words: only conclusive trials count, and
/// the inconclusive ones are said apart.
fn transform_sentence(rows: &[TransformRow]) -> Option<String> {
    if rows.is_empty() {
        return None;
    }
    let conclusive: Vec<String> = rows
        .iter()
        .filter(|r| r.n > 0)
        .map(|r| format!("{} {} of {}", r.transform, r.evaded, r.n))
        .collect();
    let inconclusive: u64 = rows.iter().map(|r| r.inconclusive).sum();
    let total = inconclusive + rows.iter().map(|r| r.n).sum::<u64>();
    let head = if conclusive.is_empty() {
        "No transform trial could conclude: no original was blocked when primed, so nothing could be evaded.".to_string()
    } else {
        format!(
            "Transforms of images the filter blocked (prime blocked) that evaded it: {}.",
            conclusive.join(", ")
        )
    };
    Some(if inconclusive > 0 {
        format!("{head} {inconclusive} of {total} transform trials were inconclusive (the prime was delivered or a send was lost) and are counted in none of these.")
    } else {
        head
    })
}

/// Why the threshold plot has no fit to draw, in words.
fn threshold_why_not(points: &[(f64, bool)]) -> String {
    let blocked = points.iter().filter(|p| p.1).count();
    if points.is_empty() {
        "no conclusive transform trial had a pHash distance".into()
    } else if blocked == 0 || blocked == points.len() {
        format!(
            "all {} conclusive transform trials were {}, so no logistic fit of blocked on the distance exists",
            points.len(),
            if blocked == 0 { "evaded" } else { "blocked" }
        )
    } else {
        format!(
            "the {} conclusive transform trials separate completely by distance (every blocked one closer than every evading one), so the fit's estimates are infinite",
            points.len()
        )
    }
}
