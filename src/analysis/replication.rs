//! `replication.csv`: the run's figures beside the published ones it
//! replicates. A spec declares each published figure (`[[published]]`:
//! experiment, label, measure, k of n, what, source); the run writes them
//! into its folder as published.csv, and here each is set beside the same
//! count from the run's trials.csv, both with Clopper–Pearson intervals,
//! with Fisher's exact test of the difference between the two
//! proportions. No design is named: the measures are read off trials.csv
//! columns every design fills.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::Serialize;

use crate::dataset::published::{self, measure_verdict, PublishedRow};
use crate::dataset::tables::Table;
use crate::dataset::{Outcome, TrialRow};
use crate::error::InputError;
use crate::stats::words;
use crate::stats::{rate, Interval};

/// The report section of the table.
pub const SECTION: &str = "Beside the published study";

/// The replication table's analysis: published figures from the run
/// folders, counts from their trials.
#[derive(Default)]
pub struct Replication {
    /// Every published figure read, once.
    figures: BTreeSet<(String, String, String, u64, u64, String, String)>,
    /// (experiment_name, label) → (trials whose seeded copy was blocked
    /// or delivered, of them blocked).
    seeded: BTreeMap<(String, String), (u64, u64)>,
    /// (experiment_name, label, verdict) → trials.
    verdicts: BTreeMap<(String, String, String), u64>,
}

/// A row of replication.csv.
#[derive(Serialize)]
struct Row {
    what: String,
    source: String,
    experiment_name: String,
    label: String,
    measure: String,
    published_k: u64,
    published_n: u64,
    published_rate: Option<f64>,
    published_ci_low: Option<f64>,
    published_ci_high: Option<f64>,
    k: u64,
    n: u64,
    rate: Option<f64>,
    ci_low: Option<f64>,
    ci_high: Option<f64>,
    fisher_p: Option<f64>,
}

const COLUMNS: [&str; 16] = [
    "what",
    "source",
    "experiment_name",
    "label",
    "measure",
    "published_k",
    "published_n",
    "published_rate",
    "published_ci_low",
    "published_ci_high",
    "k",
    "n",
    "rate",
    "ci_low",
    "ci_high",
    "fisher_p",
];

impl Replication {
    /// A run folder's published figures.
    pub fn folder(&mut self, dir: &Path) -> Result<(), InputError> {
        for r in published::load(dir)? {
            self.figures.insert((
                r.experiment_name,
                r.label,
                r.measure,
                r.k,
                r.n,
                r.what,
                r.source,
            ));
        }
        Ok(())
    }

    /// One trials.csv row, of any design.
    pub fn trial(&mut self, r: &TrialRow) {
        // Under "every label" (empty) and under its own label, once when
        // the trial has none.
        let labels = if r.label.is_empty() {
            vec![String::new()]
        } else {
            vec![String::new(), r.label.clone()]
        };
        for label in labels {
            let key = (r.experiment_name.clone(), label);
            if let Some(s) = r.seeded_outcome.filter(|o| o.conclusive()) {
                let e = self.seeded.entry(key.clone()).or_default();
                e.0 += 1;
                e.1 += u64::from(s == Outcome::Blocked);
            }
            *self
                .verdicts
                .entry((key.0, key.1, r.verdict.to_string()))
                .or_default() += 1;
        }
    }

    /// The run's k of n for a published figure.
    fn count(&self, f: &PublishedRow) -> (u64, u64) {
        let key = (f.experiment_name.clone(), f.label.clone());
        match measure_verdict(&f.measure) {
            Ok(Some(v)) => {
                let of = |verdict: &str| {
                    self.verdicts
                        .get(&(key.0.clone(), key.1.clone(), verdict.to_string()))
                        .copied()
                        .unwrap_or(0)
                };
                let conclusive: u64 = self
                    .verdicts
                    .iter()
                    .filter(|((x, l, v), _)| *x == key.0 && *l == key.1 && v != "inconclusive")
                    .map(|(_, n)| n)
                    .sum();
                (of(v), conclusive)
            }
            _ => self.seeded.get(&key).map_or((0, 0), |&(n, k)| (k, n)),
        }
    }

    /// The table, when a published figure was declared (none otherwise).
    pub fn finish(self) -> Option<Table> {
        if self.figures.is_empty() {
            return None;
        }
        let exact = Interval::Exact;
        let rows: Vec<Row> = self
            .figures
            .iter()
            .map(|(x, label, measure, pk, pn, what, source)| {
                let f = PublishedRow {
                    experiment_name: x.clone(),
                    label: label.clone(),
                    measure: measure.clone(),
                    k: *pk,
                    n: *pn,
                    what: what.clone(),
                    source: source.clone(),
                };
                let (k, n) = self.count(&f);
                let (plo, phi) = exact.ci(*pk, *pn);
                let (lo, hi) = exact.ci(k, n);
                Row {
                    what: what.clone(),
                    source: source.clone(),
                    experiment_name: x.clone(),
                    label: label.clone(),
                    measure: measure.clone(),
                    published_k: *pk,
                    published_n: *pn,
                    published_rate: rate(*pk, *pn),
                    published_ci_low: plo,
                    published_ci_high: phi,
                    k,
                    n,
                    rate: rate(k, n),
                    ci_low: lo,
                    ci_high: hi,
                    fisher_p: (n > 0).then(|| crate::stats::fisher_exact(*pk, pn - pk, k, n - k).0),
                }
            })
            .collect();
        let mut table = Table::from_rows(
            "replication.csv",
            "Beside the published study",
            "Each row is one figure a published study reported, as the spec declares it ([[published]]), beside the same count in these data: k of n with Clopper–Pearson 95% intervals for both, and Fisher's exact test (two-sided) of the difference between the two proportions. The measure says what is counted: seeded_blocked, the trials whose seeded copy was blocked of those whose seeded copy was blocked or delivered; verdict:NAME, the trials with that verdict of the conclusive ones.",
            &COLUMNS,
            &rows,
        );
        table.summary = rows.iter().map(sentence).collect();
        table.section = Some(SECTION.into());
        Some(table)
    }
}

/// One row in words.
fn sentence(r: &Row) -> String {
    let ours = if r.n == 0 {
        format!(
            "these data hold no trial of experiment `{}` to compare",
            r.experiment_name
        )
    } else {
        format!(
            "here {} of {} ({}, Clopper–Pearson {})",
            r.k,
            r.n,
            words::pct(r.rate),
            words::ci(r.ci_low, r.ci_high).replace("95% CI ", "")
        )
    };
    let verdict = match r.fisher_p {
        Some(p) if p < 0.05 => format!(
            "; the difference is significant (Fisher's exact {}): the replication does not reproduce the figure",
            words::p_value(Some(p))
        ),
        Some(p) => format!(
            "; no significant difference (Fisher's exact {}; not significant is not the same as equal: read both intervals)",
            words::p_value(Some(p))
        ),
        None => String::new(),
    };
    format!(
        "{} ({}): published {} of {} ({}, Clopper–Pearson {}); {ours}{verdict}.",
        r.what,
        r.source,
        r.published_k,
        r.published_n,
        words::pct(r.published_rate),
        words::ci(r.published_ci_low, r.published_ci_high).replace("95% CI ", ""),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trial(label: &str, seeded: Outcome, verdict: &str) -> TrialRow {
        TrialRow {
            run_id: "r".into(),
            trial_id: "t".into(),
            experiment: "surveillance".into(),
            experiment_name: "x".into(),
            item_id: "i".into(),
            label: label.into(),
            content_kind: "image".into(),
            topic: "t".into(),
            channel: "direct".into(),
            parameter: String::new(),
            verdict: verdict.parse().unwrap(),
            seeded_outcome: Some(seeded),
            control_outcome: Some(Outcome::Delivered),
        }
    }

    #[test]
    fn each_trial_counts_once_under_every_label_and_once_under_its_own() {
        let mut r = Replication::default();
        r.trial(&trial("sensitive", Outcome::Blocked, "surveilled"));
        r.trial(&trial("", Outcome::Blocked, "surveilled"));
        r.trial(&trial("benign", Outcome::Delivered, "not_surveilled"));
        r.trial(&trial("benign", Outcome::Lost, "inconclusive"));
        let figure = |label: &str, measure: &str| PublishedRow {
            experiment_name: "x".into(),
            label: label.into(),
            measure: measure.into(),
            k: 1,
            n: 2,
            what: String::new(),
            source: String::new(),
        };
        assert_eq!(r.count(&figure("", "seeded_blocked")), (2, 3));
        assert_eq!(r.count(&figure("sensitive", "seeded_blocked")), (1, 1));
        assert_eq!(r.count(&figure("benign", "seeded_blocked")), (0, 1));
        assert_eq!(r.count(&figure("", "verdict:surveilled")), (2, 3));
        assert_eq!(r.count(&figure("benign", "verdict:surveilled")), (0, 1));
    }
}
