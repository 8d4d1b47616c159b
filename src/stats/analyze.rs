//! `chatprobe analyze`: the tables a paper needs, from sends.csv and
//! trials.csv (one run or several, or files made elsewhere that follow
//! docs/DATASET.md). Input is streamed, aggregated into counts, and only the
//! counts are kept. [`compute`] gives the tables and [`write_tables`] writes
//! them; `report::publish` puts them, the plots and report.html in place.
//!
//! Tables: `surveillance.csv` (seeded vs control, Fisher, Holm),
//! `latency.csv` (+ `latency_median.csv`, the offset of 50 % blocking from a
//! logistic fit), `transforms.csv`, `threshold.csv`, `expiry.csv`
//! (Kaplan–Meier) and `trend.csv` (per run and date). Designs with tables of
//! their own (`keywords.csv`, `threshold_search.csv`) compute them in their
//! modules, through [`super::design_analysis`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::design_analysis::{Analysis, DesignAnalysis};
use crate::dataset::{self, Outcome};
use crate::error::InputError;

/// Which interval for proportions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interval {
    /// Wilson score (default).
    Wilson,
    /// Clopper–Pearson.
    Exact,
}

impl Interval {
    /// The 95 % interval of k successes in n.
    pub fn ci(self, k: u64, n: u64) -> (Option<f64>, Option<f64>) {
        let r = match self {
            Interval::Wilson => super::wilson(k, n, 0.95),
            Interval::Exact => super::clopper_pearson(k, n, 0.95),
        };
        (r.map(|x| x.0), r.map(|x| x.1))
    }
}

/// k of n as a rate (none of none: no rate).
pub fn rate(k: u64, n: u64) -> Option<f64> {
    (n > 0).then(|| k as f64 / n as f64)
}

/// A row of surveillance.csv.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SurveillanceRow {
    pub experiment_name: String,
    pub content_kind: String,
    pub label: String,
    pub channel: String,
    pub n: u64,
    pub seeded_blocked: u64,
    pub control_blocked: u64,
    pub seeded_rate: Option<f64>,
    pub seeded_ci_low: Option<f64>,
    pub seeded_ci_high: Option<f64>,
    pub control_rate: Option<f64>,
    pub control_ci_low: Option<f64>,
    pub control_ci_high: Option<f64>,
    pub fisher_p: Option<f64>,
    pub odds_ratio: Option<f64>,
    pub p_holm: Option<f64>,
}

/// A row of latency.csv.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LatencyRow {
    pub experiment_name: String,
    pub offset_s: f64,
    pub n: u64,
    pub blocked: u64,
    pub rate: Option<f64>,
    pub ci_low: Option<f64>,
    pub ci_high: Option<f64>,
}

/// A row of latency_median.csv.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LatencyMedianRow {
    pub experiment_name: String,
    pub n: u64,
    pub median_s: Option<f64>,
    pub ci_low: Option<f64>,
    pub ci_high: Option<f64>,
}

/// A row of transforms.csv.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TransformRow {
    pub transform: String,
    pub n: u64,
    pub blocked: u64,
    pub evaded: u64,
    pub evasion_rate: Option<f64>,
    pub ci_low: Option<f64>,
    pub ci_high: Option<f64>,
    pub mean_phash_distance: Option<f64>,
}

/// The row of threshold.csv.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ThresholdRow {
    pub intercept: Option<f64>,
    pub slope: Option<f64>,
    pub se_intercept: Option<f64>,
    pub se_slope: Option<f64>,
    pub distance_at_50: Option<f64>,
    pub ci_low: Option<f64>,
    pub ci_high: Option<f64>,
    pub n: u64,
}

/// A row of expiry.csv (one step of the Kaplan–Meier curve).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ExpiryRow {
    pub experiment_name: String,
    pub time_s: f64,
    pub at_risk: u64,
    pub expired: u64,
    pub censored: u64,
    pub still_blocked: f64,
    pub ci_low: f64,
    pub ci_high: f64,
    pub median_s: Option<f64>,
}

/// A row of trend.csv.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TrendRow {
    pub run_id: String,
    pub date: String,
    pub experiment_name: String,
    pub n: u64,
    pub blocked: u64,
    pub rate: Option<f64>,
    pub ci_low: Option<f64>,
    pub ci_high: Option<f64>,
}

/// Every table.
#[derive(Debug, Clone, Default)]
pub struct Tables {
    pub surveillance: Vec<SurveillanceRow>,
    pub latency: Vec<LatencyRow>,
    pub latency_median: Vec<LatencyMedianRow>,
    pub transforms: Vec<TransformRow>,
    pub threshold: Vec<ThresholdRow>,
    pub expiry: Vec<ExpiryRow>,
    pub trend: Vec<TrendRow>,
    /// The designs' own tables ([`super::design_analysis`]).
    pub designs: Vec<super::design_analysis::Table>,
    /// The (pHash distance, blocked) points of the threshold fit, for its plot.
    pub threshold_points: Vec<(f64, bool)>,
    /// Rows read.
    pub sends: u64,
    /// Trials read.
    pub trials: u64,
}

/// The sends.csv and trials.csv of an input: a run folder, or one of the files.
pub fn input_files(input: &Path) -> Result<(Option<PathBuf>, Option<PathBuf>), InputError> {
    if input.is_dir() {
        let s = input.join("sends.csv");
        let t = input.join("trials.csv");
        if !s.is_file() && !t.is_file() {
            return Err(InputError::new(input, "no sends.csv or trials.csv here")
                .hint("pass a run folder (results/<run-id>) or the CSV files"));
        }
        return Ok((s.is_file().then_some(s), t.is_file().then_some(t)));
    }
    if !input.is_file() {
        return Err(InputError::new(input, "no such file or folder"));
    }
    let header = std::fs::read_to_string(input)
        .map_err(|e| InputError::new(input, format!("cannot read: {e}")))?;
    let first = header.lines().next().unwrap_or("");
    if first.split(',').any(|c| c.trim() == "send_id") {
        Ok((Some(input.to_path_buf()), None))
    } else if first.split(',').any(|c| c.trim() == "verdict") {
        Ok((None, Some(input.to_path_buf())))
    } else {
        Err(InputError::new(
            input,
            "neither a sends.csv nor a trials.csv (no send_id or verdict column)",
        )
        .line(1))
    }
}

/// (experiment_name, content_kind, label, channel).
type SurvKey = (String, String, String, String);

#[derive(Default)]
struct Counts {
    n: u64,
    k: u64,
}

/// Read every input and compute the tables.
pub fn compute(inputs: &[PathBuf], interval: Interval) -> Result<Tables, InputError> {
    compute_with(inputs, interval, &[])
}

/// [`compute`], feeding each design's trials to its registered analysis too
/// (their tables go to [`Tables::designs`]).
pub fn compute_with(
    inputs: &[PathBuf],
    interval: Interval,
    analyses: &[DesignAnalysis],
) -> Result<Tables, InputError> {
    let mut own: Vec<(&str, Box<dyn Analysis>)> =
        analyses.iter().map(|a| (a.design, (a.make)())).collect();
    let mut surv: BTreeMap<SurvKey, (u64, u64, u64)> = BTreeMap::new();
    let mut lat: BTreeMap<(String, u64), Counts> = BTreeMap::new();
    let mut lat_points: BTreeMap<String, (Vec<f64>, Vec<bool>)> = BTreeMap::new();
    let mut trans: BTreeMap<String, (Counts, f64, u64)> = BTreeMap::new();
    let (mut tx, mut ty) = (Vec::new(), Vec::new());
    // (experiment_name, trial) → (first offset delivered, last offset seen)
    let mut exp: BTreeMap<(String, String, String), (Option<f64>, f64)> = BTreeMap::new();
    let mut trend: BTreeMap<(String, String, String), Counts> = BTreeMap::new();
    let mut tables = Tables::default();
    for input in inputs {
        let (sends, trials) = input_files(input)?;
        if let Some(t) = trials {
            tables.trials += dataset::for_each_trial(&t, |r| {
                for (design, a) in own.iter_mut() {
                    if r.experiment == *design {
                        a.trial(&r);
                    }
                }
                if r.experiment == "surveillance" {
                    if let (Some(s), Some(c)) = (r.seeded_outcome, r.control_outcome) {
                        if s.conclusive() && c.conclusive() {
                            let e = surv
                                .entry((r.experiment_name, r.content_kind, r.label, r.channel))
                                .or_default();
                            e.0 += 1;
                            e.1 += u64::from(s == Outcome::Blocked);
                            e.2 += u64::from(c == Outcome::Blocked);
                        }
                    }
                }
                Ok(())
            })?;
        }
        if let Some(s) = sends {
            tables.sends += dataset::for_each_send(&s, |r| {
                let Some(outcome) = r.outcome.filter(|o| o.conclusive()) else {
                    return Ok(());
                };
                let blocked = outcome == Outcome::Blocked;
                if r.experiment == "expiry" && r.role == "retest" {
                    if let Some(off) = r.offset_s {
                        let e = exp
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
                }
                if r.role == "test" {
                    let date = r.sent_at.get(..10).unwrap_or("").to_string();
                    let c = trend
                        .entry((r.run_id.clone(), date, r.experiment_name.clone()))
                        .or_default();
                    c.n += 1;
                    c.k += u64::from(blocked);
                }
                if r.experiment == "latency" && r.role == "test" {
                    // Group by the design's offset when the file has it: the
                    // real offsets differ by the scheduler's jitter.
                    if let Some(off) = r.planned_offset_s.or(r.offset_s) {
                        let c = lat
                            .entry((r.experiment_name.clone(), off.to_bits()))
                            .or_default();
                        c.n += 1;
                        c.k += u64::from(blocked);
                        let p = lat_points.entry(r.experiment_name).or_default();
                        p.0.push(off);
                        p.1.push(blocked);
                    }
                }
                if r.experiment == "transform" && r.role == "test" && !r.transform.is_empty() {
                    let e = trans.entry(r.transform.clone()).or_default();
                    e.0.n += 1;
                    e.0.k += u64::from(!blocked);
                    if let Some(d) = r.phash_distance {
                        e.1 += d;
                        e.2 += 1;
                        tx.push(d);
                        ty.push(blocked);
                    }
                }
                Ok(())
            })?;
        }
    }
    for ((name, kind, label, channel), (n, sb, cb)) in surv {
        let (slo, shi) = interval.ci(sb, n);
        let (clo, chi) = interval.ci(cb, n);
        let (p, odds) = super::fisher_exact(sb, n - sb, cb, n - cb);
        tables.surveillance.push(SurveillanceRow {
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
        });
    }
    let ps: Vec<f64> = tables
        .surveillance
        .iter()
        .map(|r| r.fisher_p.unwrap_or(f64::NAN))
        .collect();
    for (r, h) in tables.surveillance.iter_mut().zip(super::holm(&ps)) {
        r.p_holm = (!h.is_nan()).then_some(h);
    }
    let mut lat_rows: Vec<LatencyRow> = lat
        .into_iter()
        .map(|((name, bits), c)| {
            let (lo, hi) = interval.ci(c.k, c.n);
            LatencyRow {
                experiment_name: name,
                offset_s: f64::from_bits(bits),
                n: c.n,
                blocked: c.k,
                rate: rate(c.k, c.n),
                ci_low: lo,
                ci_high: hi,
            }
        })
        .collect();
    lat_rows.sort_by(|a, b| {
        a.experiment_name
            .cmp(&b.experiment_name)
            .then(a.offset_s.total_cmp(&b.offset_s))
    });
    tables.latency = lat_rows;
    for (name, (x, y)) in lat_points {
        let fit = super::logistic(&x, &y).filter(|f| f.slope > 0.0);
        let ci = fit.map(|f| f.x_at_50_ci(0.95));
        tables.latency_median.push(LatencyMedianRow {
            experiment_name: name,
            n: x.len() as u64,
            median_s: fit.map(|f| f.x_at_50()),
            ci_low: ci.map(|c| c.0),
            ci_high: ci.map(|c| c.1),
        });
    }
    for (t, (c, sum, nd)) in trans {
        let (lo, hi) = interval.ci(c.k, c.n);
        tables.transforms.push(TransformRow {
            transform: t,
            n: c.n,
            blocked: c.n - c.k,
            evaded: c.k,
            evasion_rate: rate(c.k, c.n),
            ci_low: lo,
            ci_high: hi,
            mean_phash_distance: (nd > 0).then(|| sum / nd as f64),
        });
    }
    // Expiry: time until a blocked item was delivered again (censored at the
    // last retest when it never was).
    let mut by_exp: BTreeMap<String, Vec<(f64, bool)>> = BTreeMap::new();
    for ((name, _, _), (first, last)) in exp {
        by_exp
            .entry(name)
            .or_default()
            .push(first.map_or((last, false), |t| (t, true)));
    }
    for (name, data) in by_exp {
        let steps = super::kaplan_meier(&data, 0.95);
        let median = super::km_median(&steps);
        for st in steps {
            tables.expiry.push(ExpiryRow {
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
    for ((run_id, date, name), c) in trend {
        let (lo, hi) = interval.ci(c.k, c.n);
        tables.trend.push(TrendRow {
            run_id,
            date,
            experiment_name: name,
            n: c.n,
            blocked: c.k,
            rate: rate(c.k, c.n),
            ci_low: lo,
            ci_high: hi,
        });
    }
    tables.trend.sort_by(|a, b| {
        a.date
            .cmp(&b.date)
            .then(a.run_id.cmp(&b.run_id))
            .then(a.experiment_name.cmp(&b.experiment_name))
    });
    tables.threshold_points = tx.iter().copied().zip(ty.iter().copied()).collect();
    let fit = super::logistic(&tx, &ty);
    let ci = fit.map(|f| f.x_at_50_ci(0.95));
    tables.threshold.push(ThresholdRow {
        intercept: fit.map(|f| f.intercept),
        slope: fit.map(|f| f.slope),
        se_intercept: fit.map(|f| f.se_intercept),
        se_slope: fit.map(|f| f.se_slope),
        distance_at_50: fit.map(|f| f.x_at_50()),
        ci_low: ci.map(|c| c.0),
        ci_high: ci.map(|c| c.1),
        n: tx.len() as u64,
    });
    for (_, a) in own {
        tables.designs.extend(a.finish(interval));
    }
    Ok(tables)
}

fn write_csv<T: Serialize>(
    dir: &Path,
    name: &str,
    header: &[&str],
    rows: &[T],
) -> std::io::Result<()> {
    let mut w = csv::Writer::from_path(dir.join(name))?;
    if rows.is_empty() {
        w.write_record(header)?;
    }
    for r in rows {
        w.serialize(r)?;
    }
    w.flush()
}

/// Write every table as CSV into `dir` (the analysis folder being made).
pub fn write_tables(d: &Path, tables: &Tables) -> anyhow::Result<()> {
    write_csv(
        d,
        "surveillance.csv",
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
        &tables.surveillance,
    )?;
    write_csv(
        d,
        "latency.csv",
        &[
            "experiment_name",
            "offset_s",
            "n",
            "blocked",
            "rate",
            "ci_low",
            "ci_high",
        ],
        &tables.latency,
    )?;
    write_csv(
        d,
        "latency_median.csv",
        &["experiment_name", "n", "median_s", "ci_low", "ci_high"],
        &tables.latency_median,
    )?;
    write_csv(
        d,
        "transforms.csv",
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
        &tables.transforms,
    )?;
    write_csv(
        d,
        "threshold.csv",
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
        &tables.threshold,
    )?;
    write_csv(
        d,
        "expiry.csv",
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
        &tables.expiry,
    )?;
    write_csv(
        d,
        "trend.csv",
        &[
            "run_id",
            "date",
            "experiment_name",
            "n",
            "blocked",
            "rate",
            "ci_low",
            "ci_high",
        ],
        &tables.trend,
    )?;
    for t in &tables.designs {
        let mut w = csv::Writer::from_path(d.join(&t.file))?;
        w.write_record(&t.header)?;
        for r in &t.rows {
            w.write_record(r)?;
        }
        w.flush()?;
    }
    Ok(())
}
