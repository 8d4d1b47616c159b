//! The analysis stage. `chatprobe analyze`: the tables a paper needs, from sends.csv and
//! trials.csv (one run or several, or files made elsewhere that follow
//! docs/DATASET.md). Input is streamed, aggregated into counts, and only the
//! counts are kept. [`compute_with`] gives the tables and [`write_tables`]
//! writes them; `report::publish` puts them, the plots and report.html in
//! place.
//!
//! Each design computes its own tables in its module (`surveillance.csv`
//! in `probe::design::surveillance`, and so on), through
//! [`crate::probe::design::analysis`]: this module reads the input, hands each
//! design its rows, and adds the tables every design shares: `trend.csv`
//! (test sends per run and date) and, over two runs or more,
//! `timeline.csv` ([`timeline`]); `replication.csv` beside published
//! figures ([`replication`]); and, between two runs, [`changes`]. No code
//! here names a design: what differs between designs comes through the
//! registry (`probe::design::DESIGNS`).

pub mod changes;
mod replication;
mod timeline;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::dataset::tables::{Chart, Figure, Point, Series, Table};
use crate::dataset::{self, SendRow};
use crate::error::InputError;
use crate::probe::design::analysis::{Analysis, DesignAnalysis};
use crate::stats::{rate, Interval};

/// Every table of an analysis, in the report's order: each design's (in
/// the registry's order), then `trend.csv`.
#[derive(Debug, Clone, Default)]
pub struct Tables {
    /// The tables.
    pub tables: Vec<Table>,
    /// Rows read.
    pub sends: u64,
    /// Trials read.
    pub trials: u64,
}

impl Tables {
    /// The table written as `file`.
    pub fn get(&self, file: &str) -> Option<&Table> {
        self.tables.iter().find(|t| t.file == file)
    }
}

/// The sends.csv and trials.csv of an input: a run folder, or one of the files.
pub fn input_files(input: &Path) -> Result<(Option<PathBuf>, Option<PathBuf>), InputError> {
    if input.is_dir() {
        let s = input.join("sends.csv");
        let t = input.join("trials.csv");
        for p in [&s, &t] {
            if p.exists() && !p.is_file() {
                return Err(InputError::new(p, "is not a file")
                    .hint("a run folder's sends.csv and trials.csv are CSV files written by `chatprobe run`"));
            }
        }
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

/// Read every input and compute the tables that need no design:
/// `trend.csv`.
pub fn compute(inputs: &[PathBuf], interval: Interval) -> Result<Tables, InputError> {
    compute_with(inputs, interval, &[])
}

/// [`compute`], feeding each design's rows to its registered analysis too
/// (their tables come first, in the order of `analyses`).
pub fn compute_with(
    inputs: &[PathBuf],
    interval: Interval,
    analyses: &[DesignAnalysis],
) -> Result<Tables, InputError> {
    let mut own: Vec<(&str, Box<dyn Analysis>)> =
        analyses.iter().map(|a| (a.design, (a.make)())).collect();
    let mut trend = Trend::default();
    let mut timeline = timeline::Timeline::default();
    let mut replication = replication::Replication::default();
    let mut tables = Tables::default();
    for input in inputs {
        let (sends, trials) = input_files(input)?;
        if input.is_dir() {
            for (_, a) in own.iter_mut() {
                a.folder(input)?;
            }
            replication.folder(input)?;
        }
        if let Some(t) = trials {
            tables.trials += dataset::for_each_trial(&t, |r| {
                for (design, a) in own.iter_mut() {
                    if r.experiment == *design {
                        a.trial(&r);
                    }
                }
                timeline.trial(&r);
                replication.trial(&r);
                Ok(())
            })?;
        }
        if let Some(s) = sends {
            tables.sends += dataset::for_each_send(&s, |r| {
                for (design, a) in own.iter_mut() {
                    if r.experiment == *design {
                        a.send(&r);
                    }
                }
                trend.send(&r);
                timeline.send(&r);
                Ok(())
            })?;
        }
    }
    // The replication beside the published study first: the comparison
    // a reviewer of a replication asks for before any other.
    tables.tables.extend(replication.finish());
    for (_, a) in own {
        tables.tables.extend(a.finish(interval));
    }
    tables.tables.extend(Box::new(trend).finish(interval));
    tables.tables.extend(timeline.finish());
    Ok(tables)
}

/// `trend.csv`: the blocked rate of every design's test sends per run and
/// date, the table longitudinal monitoring reads.
#[derive(Default)]
struct Trend {
    /// (run_id, date, experiment_name) → (n, blocked).
    counts: BTreeMap<(String, String, String), (u64, u64)>,
}

/// A row of trend.csv.
#[derive(Debug, Clone, Serialize, PartialEq)]
struct TrendRow {
    run_id: String,
    date: String,
    experiment_name: String,
    n: u64,
    blocked: u64,
    rate: Option<f64>,
    ci_low: Option<f64>,
    ci_high: Option<f64>,
}

impl Analysis for Trend {
    fn send(&mut self, r: &SendRow) {
        let Some(blocked) = r.test_blocked() else {
            return;
        };
        let date = r.sent_at.get(..10).unwrap_or("").to_string();
        let c = self
            .counts
            .entry((r.run_id.clone(), date, r.experiment_name.clone()))
            .or_default();
        c.0 += 1;
        c.1 += u64::from(blocked);
    }

    fn finish(self: Box<Self>, interval: Interval) -> Vec<Table> {
        let mut rows: Vec<TrendRow> = self
            .counts
            .into_iter()
            .map(|((run_id, date, name), (n, k))| {
                let (lo, hi) = interval.ci(k, n);
                TrendRow {
                    run_id,
                    date,
                    experiment_name: name,
                    n,
                    blocked: k,
                    rate: rate(k, n),
                    ci_low: lo,
                    ci_high: hi,
                }
            })
            .collect();
        rows.sort_by(|a, b| {
            a.date
                .cmp(&b.date)
                .then(a.run_id.cmp(&b.run_id))
                .then(a.experiment_name.cmp(&b.experiment_name))
        });
        // One category per (date, run), in that order; one series per
        // experiment.
        let mut runs: Vec<(String, String)> = rows
            .iter()
            .map(|r| (r.date.clone(), r.run_id.clone()))
            .collect();
        runs.dedup();
        let mut names: Vec<&str> = rows.iter().map(|r| r.experiment_name.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        let series = names
            .iter()
            .map(|name| Series {
                name: name.to_string(),
                points: rows
                    .iter()
                    .filter(|r| r.experiment_name == *name)
                    .map(|r| Point {
                        x: runs
                            .iter()
                            .position(|(d, id)| *d == r.date && *id == r.run_id)
                            .unwrap_or(0) as f64,
                        y: r.rate,
                        lo: r.ci_low,
                        hi: r.ci_high,
                    })
                    .collect(),
            })
            .collect();
        let mut table = Table::from_rows(
            "trend.csv",
            "Trend",
            "Each row is one run's test sends of one experiment on one date (of sent_at), every design together; the unit is the send: how often a test send that was blocked or delivered was blocked (lost and failed sends are left out). It describes what the platform did, not a design's verdict: see the design's own tables for those.",
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
            &rows,
        );
        // A trend needs two runs at least: one run's experiments would
        // stack on one vertical line.
        let chart = if runs.len() < 2 {
            Chart::Nothing(
                "a trend needs two runs or more, and this input holds one (trend.csv has its rates)"
                    .into(),
            )
        } else {
            Chart::Categories {
                labels: runs.into_iter().map(|(date, _)| date).collect(),
                series,
            }
        };
        table.figures.push(Figure {
            name: "trend".into(),
            title: "Trend".into(),
            heading: "Blocked rate of test sends, run by run".into(),
            x_label: String::new(),
            y_label: "blocked (95% CI)".into(),
            chart,
        });
        vec![table]
    }
}

/// datapackage.json for the analysis folder: every table written by
/// [`write_tables`], its types read off its values; `run_id` names the
/// package when one run was analysed.
pub fn write_package(dir: &Path, tables: &Tables, run_id: Option<&str>) -> std::io::Result<()> {
    use crate::dataset::package::{self, Resource};
    let resources: Vec<Resource> = tables
        .tables
        .iter()
        .map(|t| Resource::from_table(&t.file, &t.title, &t.about, &t.header, &t.rows))
        .collect();
    let (name, title) = match run_id {
        Some(id) => (
            format!("{id}-analysis"),
            format!("chatprobe analysis of run {id}"),
        ),
        None => ("chatprobe-analysis".into(), "chatprobe analysis".into()),
    };
    package::write(dir, &name, &title, &resources)
}

/// Write every table as CSV into `dir` (the analysis folder being made).
pub fn write_tables(dir: &Path, tables: &Tables) -> std::io::Result<()> {
    for t in &tables.tables {
        let mut w = csv::Writer::from_path(dir.join(&t.file))?;
        w.write_record(&t.header)?;
        for r in &t.rows {
            w.write_record(r)?;
        }
        w.flush()?;
    }
    Ok(())
}
