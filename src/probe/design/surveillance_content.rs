//! What triggered surveillance, as a model and two figures: the logistic
//! regression of "surveilled" on the items' content features
//! (`surveillance_model.csv`), a forest plot of topic and feature effects,
//! and a grid of every item's trials. Fed by the surveillance analysis
//! (`super::surveillance`), which owns the per-item counts.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::corpus::features::FeatureRow;
use crate::dataset::tables::{Chart, Figure, ForestRow, GridCell, Table};
use crate::stats::logit::{self, Dropped, Method};
use crate::stats::{self, words};

/// The report section these tables and figures belong to.
pub(super) const SECTION: &str = "What triggered surveillance";

/// The model's covariates, in order: name and what it is (the `note` of
/// its row); [`covariates`] reads them from an item's features, in the
/// same order.
const TERMS: [(&str, &str); 5] = [
    ("sensitive", "the item is labelled sensitive"),
    ("document", "a document (an image otherwise)"),
    ("has_text", "carries text (unknown counts as no)"),
    ("sensitive_keywords", "keywords of the list its text holds"),
    ("log2_kib", "log2 of its size in KiB"),
];

/// An item's values of [`TERMS`].
fn covariates(f: &FeatureRow) -> [f64; TERMS.len()] {
    [
        f64::from(u8::from(f.label == "sensitive")),
        f64::from(u8::from(f.kind == "document")),
        f64::from(u8::from(f.has_text == Some(true))),
        f.sensitive_keywords as f64,
        (f.bytes.max(1) as f64 / 1024.0).log2(),
    ]
}

/// An item's trials for the model: experiment, item, trials judged, of
/// which surveilled.
pub(super) struct Tally<'a> {
    pub experiment: &'a str,
    pub item_id: &'a str,
    pub n: u64,
    pub surveilled: u64,
}

/// How a fit's terms are judged: standard errors, intervals (log-odds
/// scale) and p values, one per coefficient, and the method's name.
struct Inference {
    se: Vec<f64>,
    ci: Vec<(Option<f64>, Option<f64>)>,
    p: Vec<Option<f64>>,
    method: String,
}

/// A row of surveillance_model.csv.
#[derive(Serialize)]
struct ModelRow {
    experiment_name: String,
    term: String,
    estimate: Option<f64>,
    se: Option<f64>,
    z: Option<f64>,
    p: Option<f64>,
    odds_ratio: Option<f64>,
    ci_low: Option<f64>,
    ci_high: Option<f64>,
    method: String,
    n: u64,
    events: u64,
    items: u64,
    note: String,
}

const MODEL_COLUMNS: [&str; 14] = [
    "experiment_name",
    "term",
    "estimate",
    "se",
    "z",
    "p",
    "odds_ratio",
    "ci_low",
    "ci_high",
    "method",
    "n",
    "events",
    "items",
    "note",
];

/// surveillance_model.csv: per experiment, "surveilled" on the content
/// features of its items (one observation per judged trial), by maximum
/// likelihood or, when the data separate, Firth's penalised likelihood;
/// Wald intervals. Also returns each experiment's fitted terms as rows of
/// the forest plot.
pub(super) fn model_table(
    tallies: &[Tally],
    features: &HashMap<String, FeatureRow>,
) -> (Table, Vec<ForestRow>) {
    let z95 = stats::z(0.95);
    let mut by_experiment: BTreeMap<&str, Vec<&Tally>> = BTreeMap::new();
    for t in tallies.iter().filter(|t| t.n > 0) {
        by_experiment.entry(t.experiment).or_default().push(t);
    }
    let several = by_experiment.len() > 1;
    let mut rows = Vec::new();
    let mut effects = Vec::new();
    let mut summary = Vec::new();
    for (experiment, items) in by_experiment {
        let with: Vec<(&Tally, [f64; 5])> = items
            .iter()
            .filter_map(|t| features.get(t.item_id).map(|f| (*t, covariates(f))))
            .collect();
        let missing = items.len() - with.len();
        let mut cols: Vec<Vec<f64>> = vec![Vec::new(); TERMS.len()];
        let mut y = Vec::new();
        let mut groups: Vec<&str> = Vec::new();
        for (t, x) in &with {
            for k in 0..t.n {
                y.push(k < t.surveilled);
                groups.push(t.item_id);
                for (c, v) in cols.iter_mut().zip(x) {
                    c.push(*v);
                }
            }
        }
        let base = |term: &str, method: &str, note: String| ModelRow {
            experiment_name: experiment.to_string(),
            term: term.to_string(),
            estimate: None,
            se: None,
            z: None,
            p: None,
            odds_ratio: None,
            ci_low: None,
            ci_high: None,
            method: method.to_string(),
            n: y.len() as u64,
            events: y.iter().filter(|v| **v).count() as u64,
            items: with.len() as u64,
            note,
        };
        let fit = match logit::fit_auto(&cols, &y) {
            Ok(f) => f,
            Err(e) => {
                let why = if with.is_empty() {
                    format!("no item's features are known ({missing} items without a row in the run's items.csv)")
                } else {
                    e.to_string()
                };
                summary.push(format!(
                    "Model of surveillance on content features ({experiment}): not fitted, {why}."
                ));
                rows.push(base("(model)", "", why));
                continue;
            }
        };
        // Enough information for the terms the data can estimate?
        if let Err(why) = enough(fit.kept.len(), &y, with.len()) {
            summary.push(format!(
                "Model of surveillance on content features ({experiment}): not fitted, {why}."
            ));
            rows.push(base("(model)", "", why));
            continue;
        }
        // Trials of one item are not independent: maximum-likelihood
        // errors are clustered by item; a Firth fit gets profile-likelihood
        // intervals and likelihood-ratio p values (as logistf).
        let Inference { se, ci, p, method } = match fit.method {
            Method::MaximumLikelihood => {
                let Some(se) = logit::cluster_se(&fit, &cols, &y, &groups) else {
                    let why =
                        "fewer than two items: no spread between items to estimate".to_string();
                    rows.push(base("(model)", "", why));
                    continue;
                };
                let ci = fit
                    .coef
                    .iter()
                    .zip(&se)
                    .map(|(c, s)| (Some(c - z95 * s), Some(c + z95 * s)))
                    .collect();
                let p = fit
                    .coef
                    .iter()
                    .zip(&se)
                    .map(|(c, s)| Some(logit::wald_p(*c, *s)))
                    .collect();
                Inference {
                    se,
                    ci,
                    p,
                    method: "mle; Wald, cluster-robust by item".into(),
                }
            }
            Method::Firth => {
                let prof = logit::profile_intervals(&fit, &cols, &y, 0.95);
                Inference {
                    se: fit.se.clone(),
                    ci: prof.ci,
                    p: prof.p,
                    method: "firth; profile-likelihood interval, penalised likelihood-ratio p (trials taken as independent)".into(),
                }
            }
        };
        let mut fitted = Vec::new();
        for (i, c) in fit.coef.iter().enumerate() {
            let term = if i == 0 {
                "intercept"
            } else {
                TERMS[fit.kept[i - 1]].0
            };
            let se = se[i];
            let mut r = base(term, &method, String::new());
            r.estimate = Some(*c);
            r.se = Some(se);
            r.z = Some(c / se);
            r.p = p[i];
            r.odds_ratio = Some(c.exp());
            r.ci_low = ci[i].0.map(f64::exp);
            r.ci_high = ci[i].1.map(f64::exp);
            if i == 0 {
                r.note = "odds of surveillance when every term is 0".into();
            } else {
                r.note = TERMS[fit.kept[i - 1]].1.into();
                if let (Some(lo), Some(hi)) = (r.ci_low, r.ci_high) {
                    effects.push(ForestRow {
                        label: if several {
                            format!("model: {term} ({experiment})")
                        } else {
                            format!("model: {term}")
                        },
                        estimate: c.exp(),
                        lo,
                        hi,
                    });
                }
                if r.p.is_some_and(|p| p < 0.05) {
                    fitted.push(format!(
                        "{term} (odds ratio {}, {}, {})",
                        words::ratio(c.exp()),
                        words::ci_ratio(r.ci_low, r.ci_high),
                        words::p_value(r.p)
                    ));
                }
            }
            rows.push(r);
        }
        let mut dropped = Vec::new();
        for (j, why) in &fit.dropped {
            let note = match why {
                Dropped::Constant => "left out: one value in these data",
                Dropped::Collinear => "left out: determined by the terms above in these data",
            };
            rows.push(base(TERMS[*j].0, &method, note.into()));
            dropped.push(TERMS[*j].0);
        }
        summary.push(format!(
            "Model of surveillance on content features ({experiment}: {} trials of {} items, {} surveilled): {}{}{}",
            fit.n,
            with.len(),
            fit.events,
            match (fit.method, fit.separated) {
                (Method::Firth, _) => "the data separate (some features predict the outcome perfectly, so maximum-likelihood estimates would be infinite); fitted by Firth's penalised likelihood, whose estimates are finite but shrunk, with profile-likelihood intervals and penalised likelihood-ratio tests, which take an item's trials as independent. ".to_string(),
                _ => "fitted by maximum likelihood, with Wald tests on standard errors clustered by item (an item's trials may be correlated). ".to_string(),
            },
            if fitted.is_empty() {
                "No term differs from no effect at p < 0.05.".to_string()
            } else {
                format!("Terms with p < 0.05: {}.", fitted.join("; "))
            },
            if dropped.is_empty() {
                String::new()
            } else {
                format!(
                    " Left out, as these data cannot estimate them (one value, or fixed by the other terms): {}.",
                    dropped.join(", ")
                )
            },
        ));
    }
    let mut table = Table::from_rows(
        "surveillance_model.csv",
        "What predicts surveillance: a logistic model on content features",
        "Each row is one term of one experiment's logistic regression of 'surveilled' (one observation per trial judged surveilled or not) on its items' content features (from the run's items.csv): the estimate on the log-odds scale, its standard error, z, p, and the odds ratio with its 95% interval. method names how: mle with Wald tests and intervals on standard errors clustered by item; or, when the data separate, firth (Firth's penalised likelihood) with profile-likelihood intervals and penalised likelihood-ratio p values, as R's logistf. The model is fitted only with at least 10 trials of the rarer outcome and 10 items per estimated term (Peduzzi et al. 1996; the terms vary between items only); otherwise one row says why. Terms the data cannot estimate are listed with a note.",
        &MODEL_COLUMNS,
        &rows,
    );
    table.summary = summary;
    table.section = Some(SECTION.into());
    (table, effects)
}

/// The forest plot: each sensitive topic's odds ratio against the benign
/// items (Haldane–Anscombe when a cell is zero, Woolf interval) and each
/// model term's, on a log scale.
pub(super) fn forest(topics: Vec<ForestRow>, terms: Vec<ForestRow>) -> Figure {
    let mut rows = topics;
    rows.extend(terms);
    Figure {
        name: "surveillance_effects".into(),
        title: "What triggered surveillance: odds ratios with 95% intervals, each topic's sensitive items against the other topics' benign items, and each term of the content model (log scale; 1 = no effect)".into(),
        heading: "Effects on surveillance (odds ratio)".into(),
        x_label: "odds ratio (log scale)".into(),
        y_label: String::new(),
        chart: Chart::Forest(rows),
    }
}

/// The per-item grid: one row per item, one column per (day, replicate of
/// that day), each cell the trial's verdict.
pub(super) fn grid(trials: &[(String, String, String, GridCell)]) -> Figure {
    // (item label) → day → cells in trial order.
    let mut by_item: BTreeMap<&str, BTreeMap<&str, Vec<GridCell>>> = BTreeMap::new();
    for (item, day, _, cell) in trials {
        by_item
            .entry(item)
            .or_default()
            .entry(day)
            .or_default()
            .push(*cell);
    }
    // Columns: for each day, as many as the most trials an item had then.
    let mut width: BTreeMap<&str, usize> = BTreeMap::new();
    for days in by_item.values() {
        for (day, cells) in days {
            let w = width.entry(day).or_default();
            *w = (*w).max(cells.len());
        }
    }
    let mut columns = Vec::new();
    for (day, w) in &width {
        for k in 1..=*w {
            columns.push(format!("{day} #{k}"));
        }
    }
    let rows: Vec<(String, Vec<GridCell>)> = by_item
        .iter()
        .map(|(item, days)| {
            let mut cells = Vec::new();
            for (day, w) in &width {
                let got = days.get(day).map_or(&[][..], |c| c.as_slice());
                for k in 0..*w {
                    cells.push(got.get(k).copied().unwrap_or(GridCell::None));
                }
            }
            (item.to_string(), cells)
        })
        .collect();
    Figure {
        name: "surveillance_items".into(),
        title: "Every item's surveillance trials: one row per item, one column per day and replicate (dark: surveilled; light: not surveilled; orange: filtered in real time; grey: inconclusive; blank: no trial)".into(),
        heading: "Surveillance, item by trial".into(),
        x_label: "day and replicate".into(),
        y_label: String::new(),
        chart: Chart::Grid {
            columns,
            rows,
            legend: vec![
                (GridCell::Yes, "surveilled".into()),
                (GridCell::No, "not surveilled".into()),
                (GridCell::Other, "filtered in real time".into()),
                (GridCell::Inconclusive, "inconclusive".into()),
                (GridCell::None, "no trial".into()),
            ],
        },
    }
}

/// Fewest trials of the rarer outcome, and fewest items, per estimated
/// term (Peduzzi et al. 1996: about 10 events per variable; items count
/// too, since the terms are item features and an item's trials repeat
/// them).
pub(super) const PER_TERM: usize = 10;

/// Whether `terms` estimated terms (the intercept aside) have enough
/// information in `y` (one outcome per trial) from `items` items.
fn enough(terms: usize, y: &[bool], items: usize) -> Result<(), String> {
    let events = y.iter().filter(|v| **v).count();
    let rarer = events.min(y.len() - events);
    let need = PER_TERM * terms.max(1);
    if rarer < need || items < need {
        return Err(format!(
            "too little information for {terms} terms: {rarer} trials of the rarer outcome and {items} items, where the rule is at least {PER_TERM} of each per term ({need}; Peduzzi et al. 1996); read the item and topic tables instead"
        ));
    }
    Ok(())
}
