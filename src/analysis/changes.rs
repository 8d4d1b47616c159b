//! What changed between two runs of a spec (`chatprobe changes RUN_A
//! RUN_B`, and after every run against the spec's previous one):
//! `changes.csv`, the first section of report.html, one line on the
//! terminal.
//!
//! A *probe* is a trial's experiment name, item and parameter (the keyword
//! of a keyword trial, the transformation of a transform trial …), its
//! replicates pooled; inconclusive trials are left out. Each design's first
//! verdict is its positive one (`blocked`, `surveilled`, `expired`), the
//! second its negative one. Rows:
//!
//! - `newly_<positive>` (`newly_blocked`, `newly_surveilled`,
//!   `newly_expired`): never positive in A, positive in B;
//! - `newly_<negative>` (`newly_delivered` for `evaded`,
//!   `newly_not_surveilled`, …): positive in A, never in B;
//! - `rate_up` / `rate_down`: an experiment's rate over the probes both runs
//!   tested moved beyond chance: Fisher's exact test, p < 0.05 (p given).
//!
//! An adaptive design whose trials two runs need not share (the `isolate`
//! design's sample tests) is compared by what it found instead, which its
//! registry entry reads (`findings`): a probe is a unit and a finding (for
//! isolate, a text and a keyword combination of isolations.csv), counted
//! over the replicates whose search of that unit finished, in units that
//! finished in both runs (`newly_blocked`: found in B only;
//! `newly_delivered`: in A only).
//!
//! Every row has both runs' counts, B's interval and the exact test's p, so
//! a flip of one trial each (p = 1) reads for what it is.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::probe::design::analysis::Findings;

use serde::Serialize;

use crate::dataset::tables::Table;
use crate::dataset::Verdict;
use crate::error::InputError;
use crate::stats::{rate, Interval};

/// The file.
pub const CHANGES_FILE: &str = "changes.csv";
/// The level below which a rate's move is reported.
pub const ALPHA: f64 = 0.05;

/// A row of changes.csv.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ChangeRow {
    /// Run A (before).
    pub run_a: String,
    /// Run B (after).
    pub run_b: String,
    /// The design.
    pub experiment: String,
    /// The experiment's name.
    pub experiment_name: String,
    /// The item (empty for rate rows and keywords).
    pub item_id: String,
    /// The trial's parameter: keyword, transformation … (empty for rate rows).
    pub parameter: String,
    /// What changed.
    pub change: String,
    /// Positive verdicts in A.
    pub a_positive: u64,
    /// Conclusive trials in A.
    pub a_n: u64,
    /// Positive verdicts in B.
    pub b_positive: u64,
    /// Conclusive trials in B.
    pub b_n: u64,
    /// A's rate.
    pub a_rate: Option<f64>,
    /// B's rate.
    pub b_rate: Option<f64>,
    /// B's 95 % interval.
    pub b_ci_low: Option<f64>,
    /// B's 95 % interval.
    pub b_ci_high: Option<f64>,
    /// Fisher's exact test of A against B (two-sided).
    pub p: f64,
}

const HEADER: &[&str] = &[
    "run_a",
    "run_b",
    "experiment",
    "experiment_name",
    "item_id",
    "parameter",
    "change",
    "a_positive",
    "a_n",
    "b_positive",
    "b_n",
    "a_rate",
    "b_rate",
    "b_ci_low",
    "b_ci_high",
    "p",
];

/// The comparison.
#[derive(Debug, Clone, Default)]
pub struct Changes {
    /// The rows.
    pub rows: Vec<ChangeRow>,
    /// Probes tested in both runs.
    pub compared: usize,
    /// Probes tested in one run only.
    pub unmatched: usize,
    /// Run ids.
    pub run_a: String,
    /// Run ids.
    pub run_b: String,
    /// The spec's text differed between the runs (run.json's
    /// `spec_sha256`): probes one run tested and the other did not are
    /// counted as unmatched, and rates may have moved because the
    /// experiment did.
    pub spec_changed: bool,
    /// RUN_B started before RUN_A (run.json's `started_at`): the changes
    /// read backwards in time.
    pub b_before_a: bool,
}

type Probe = (String, String, String, String); // experiment, name, item, parameter
/// (positive, conclusive) per probe.
type Counts = BTreeMap<Probe, (u64, u64)>;

/// (positive, conclusive) per probe of one run, and its id.
fn counts(run: &Path) -> Result<(String, Counts), InputError> {
    let trials = run.join("trials.csv");
    if !trials.is_file() {
        return Err(InputError::new(run, "no trials.csv here")
            .hint("pass run folders made by `chatprobe run` (results/<run-id>)"));
    }
    let mut id = String::new();
    let mut out = Counts::new();
    crate::dataset::for_each_trial(&trials, |t| {
        id.clone_from(&t.run_id);
        if t.verdict == Verdict::Inconclusive || by_findings(&t.experiment) {
            return Ok(());
        }
        let positive = positive_verdict(&t.experiment);
        let c = out
            .entry((t.experiment, t.experiment_name, t.item_id, t.parameter))
            .or_default();
        c.0 += u64::from(Some(t.verdict) == positive);
        c.1 += 1;
        Ok(())
    })?;
    if id.is_empty() {
        id = run
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
    }
    Ok((id, out))
}

/// Whether `design` is compared by what it found, not by its trials.
pub(super) fn by_findings(design: &str) -> bool {
    crate::probe::design::find(design).is_some_and(|d| d.findings.is_some())
}

/// A design's findings as probes, in units that finished in both runs,
/// each finding made in either counted in both.
fn add_findings(design: &str, fa: &Findings, fb: &Findings, ca: &mut Counts, cb: &mut Counts) {
    for (text, (na, found_a)) in fa {
        let Some((nb, found_b)) = fb.get(text) else {
            continue;
        };
        for combination in found_a.keys().chain(found_b.keys()) {
            let probe = (
                design.to_string(),
                text.0.clone(),
                text.1.clone(),
                combination.clone(),
            );
            let k = |f: &BTreeMap<String, u64>| f.get(combination).copied().unwrap_or(0);
            ca.insert(probe.clone(), (k(found_a), *na));
            cb.insert(probe, (k(found_b), *nb));
        }
    }
}

fn verdicts(design: &str) -> &'static [Verdict] {
    crate::probe::design::DESIGNS
        .iter()
        .find(|d| d.name == design)
        .map(|d| d.verdicts)
        .unwrap_or(&[])
}

pub(super) fn positive_verdict(design: &str) -> Option<Verdict> {
    verdicts(design).first().copied()
}

pub(super) fn negative_word(design: &str) -> &'static str {
    match verdicts(design).get(1).copied() {
        Some(Verdict::Evaded) => "delivered",
        Some(v) => v.name(),
        None => "negative",
    }
}

/// Compare run B with run A.
pub fn compare(a: &Path, b: &Path, interval: Interval) -> Result<Changes, InputError> {
    let (run_a, mut ca) = counts(a)?;
    let (run_b, mut cb) = counts(b)?;
    for d in crate::probe::design::DESIGNS {
        if let Some(read) = d.findings {
            add_findings(d.name, &read(a)?, &read(b)?, &mut ca, &mut cb);
        }
    }
    let sha = |run: &Path| {
        crate::dataset::manifest::read_manifest(run)
            .ok()
            .map(|m| m.spec_sha256)
    };
    let started = |run: &Path| {
        crate::dataset::manifest::read_manifest(run)
            .ok()
            .and_then(|m| m.started_at.parse::<chrono::DateTime<chrono::Utc>>().ok())
    };
    let mut c = Changes {
        run_a: run_a.clone(),
        run_b: run_b.clone(),
        spec_changed: matches!((sha(a), sha(b)), (Some(x), Some(y)) if x != y),
        b_before_a: matches!((started(a), started(b)), (Some(x), Some(y)) if y < x),
        ..Default::default()
    };
    // Per experiment: pooled counts over the probes both runs tested.
    let mut pooled: BTreeMap<(String, String), (u64, u64, u64, u64)> = BTreeMap::new();
    let row = |probe: &Probe, change: String, (ka, na): (u64, u64), (kb, nb): (u64, u64)| {
        let (lo, hi) = interval.ci(kb, nb);
        ChangeRow {
            run_a: run_a.clone(),
            run_b: run_b.clone(),
            experiment: probe.0.clone(),
            experiment_name: probe.1.clone(),
            item_id: probe.2.clone(),
            parameter: probe.3.clone(),
            change,
            a_positive: ka,
            a_n: na,
            b_positive: kb,
            b_n: nb,
            a_rate: rate(ka, na),
            b_rate: rate(kb, nb),
            b_ci_low: lo,
            b_ci_high: hi,
            p: crate::stats::fisher_exact(ka, na - ka, kb, nb - kb).0,
        }
    };
    for (probe, &(ka, na)) in &ca {
        let Some(&(kb, nb)) = cb.get(probe) else {
            c.unmatched += 1;
            continue;
        };
        c.compared += 1;
        // An experiment's rate: not one compared by its findings (its
        // probes are what it found).
        if !by_findings(&probe.0) {
            let p = pooled
                .entry((probe.0.clone(), probe.1.clone()))
                .or_default();
            *p = (p.0 + ka, p.1 + na, p.2 + kb, p.3 + nb);
        }
        let pos = positive_verdict(&probe.0).map_or("positive", Verdict::name);
        let change = if ka == 0 && kb > 0 {
            format!("newly_{pos}")
        } else if ka > 0 && kb == 0 {
            format!("newly_{}", negative_word(&probe.0))
        } else {
            continue;
        };
        c.rows.push(row(probe, change, (ka, na), (kb, nb)));
    }
    c.unmatched += cb.keys().filter(|k| !ca.contains_key(*k)).count();
    for ((design, name), (ka, na, kb, nb)) in pooled {
        let p = crate::stats::fisher_exact(ka, na - ka, kb, nb - kb).0;
        if p < ALPHA {
            let change = if kb * na > ka * nb {
                "rate_up"
            } else {
                "rate_down"
            };
            let probe = (design, name, String::new(), String::new());
            c.rows.push(row(&probe, change.into(), (ka, na), (kb, nb)));
        }
    }
    Ok(c)
}

impl Changes {
    /// Rows whose change is `kind`.
    pub fn count(&self, kind: &str) -> usize {
        self.rows.iter().filter(|r| r.change == kind).count()
    }

    /// The one-line summary.
    pub fn summary(&self) -> String {
        let line = summary_of(
            &self.run_a,
            self.rows.iter().map(|r| r.change.as_str()),
            self.compared,
            self.unmatched,
        );
        if self.spec_changed {
            format!("{line}; the spec changed in between (spec_sha256 differs)")
        } else {
            line
        }
    }

    /// Write changes.csv (atomically).
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        crate::fsutil::atomic_write(path, |w| {
            // The header by hand: serialize writes none when there are no rows.
            let mut c = csv::WriterBuilder::new().has_headers(false).from_writer(w);
            c.write_record(HEADER)?;
            for r in &self.rows {
                c.serialize(r)?;
            }
            c.flush()?;
            Ok::<(), std::io::Error>(())
        })
    }
}

fn summary_of<'a>(
    run_a: &str,
    changes: impl Iterator<Item = &'a str>,
    compared: usize,
    unmatched: usize,
) -> String {
    let mut by: BTreeMap<&str, usize> = BTreeMap::new();
    for c in changes {
        *by.entry(c).or_default() += 1;
    }
    let list = if by.is_empty() {
        "nothing changed".to_string()
    } else {
        by.iter()
            .map(|(k, n)| format!("{n} {}", k.replace('_', " ")))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let probes = if compared > 0 || unmatched > 0 {
        format!(" ({compared} probes in both runs, {unmatched} in one only)")
    } else {
        String::new()
    };
    format!("changes since {run_a}: {list}{probes}")
}

/// The run of the same spec before `run` in its results folder (the latest
/// that started earlier and has trials), if any.
pub fn previous_run(run: &Path) -> Option<PathBuf> {
    let m = crate::dataset::manifest::read_manifest(run).ok()?;
    let results = run.parent()?;
    crate::dataset::runs::list_runs(results)
        .into_iter()
        .filter(|r| {
            r.spec_name == m.spec_name && (&r.started_at, &r.run_id) < (&m.started_at, &m.run_id)
        })
        .map(|r| results.join(r.run_id))
        .rfind(|d| d.join("trials.csv").is_file())
}

/// changes.csv of a run folder as the report's first section (None when
/// the folder has none).
pub fn table_from_file(path: &Path) -> Option<Table> {
    let mut rd = csv::Reader::from_path(path).ok()?;
    let header: Vec<String> = rd.headers().ok()?.iter().map(str::to_string).collect();
    let rows: Vec<Vec<String>> = rd
        .records()
        .filter_map(Result::ok)
        .map(|r| r.iter().map(str::to_string).collect())
        .collect();
    let col = |name: &str| header.iter().position(|h| h == name);
    let (ci, ai) = (col("change")?, col("run_a")?);
    let run_a = rows
        .first()
        .map(|r| r[ai].clone())
        .unwrap_or_else(|| "the previous run".into());
    let mut t = Table {
        file: CHANGES_FILE.into(),
        title: "What changed".into(),
        about: "Each row is a probe (experiment, item, parameter) whose verdict flipped since the previous run of the spec, or an experiment whose rate moved beyond chance (Fisher's exact test, p < 0.05), with both runs' counts.".into(),
        header,
        rows,
        summary: Vec::new(),
        figures: Vec::new(),
        section: Some("What changed since the previous run".into()),
    };
    let changes: Vec<String> = t.rows.iter().map(|r| r[ci].clone()).collect();
    t.summary
        .push(summary_of(&run_a, changes.iter().map(String::as_str), 0, 0));
    Some(t)
}
