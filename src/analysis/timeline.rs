//! `timeline.csv` and the `timeline` heat map: every probe's state run by
//! run, when `analyze` is given two runs or more (a monitoring campaign's
//! days).
//!
//! A probe is as in [`super::changes`]: a trial's experiment name, item and
//! parameter, its replicates pooled (the adaptive tests of a design
//! compared by its findings, such as `isolate`, are left out). Its state in a run is the design's first verdict when every
//! conclusive trial got it (`blocked`, `surveilled`, `expired`), the
//! second's word when none did (`delivered`, `not_surveilled`,
//! `still_blocked`), `mixed` in between, `inconclusive` without a
//! conclusive trial. The heat map draws the probes whose state changed,
//! first changed first: at 120 days × 2,000 keywords the few that move are
//! what a reader looks for, and the table holds every cell.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::changes::{negative_word, positive_verdict};
use crate::dataset::tables::{Chart, Figure, GridCell, Table};
use crate::dataset::{SendRow, TrialRow, Verdict};

/// Most probes the heat map draws (16 px a row: the figure's 2,000 px).
pub const MAX_ROWS: usize = 120;

type Probe = (String, String, String, String); // experiment, name, item, parameter

/// Counts per probe and run, and each run's first date.
#[derive(Default)]
pub(super) struct Timeline {
    /// probe → run → (positive, conclusive, inconclusive)
    cells: BTreeMap<Probe, BTreeMap<String, (u64, u64, u64)>>,
    /// run → its earliest sent_at date.
    dates: BTreeMap<String, String>,
}

/// A row of timeline.csv.
#[derive(Debug, Serialize)]
struct Row<'a> {
    experiment: &'a str,
    experiment_name: &'a str,
    item_id: &'a str,
    parameter: &'a str,
    run_id: &'a str,
    date: &'a str,
    n: u64,
    positive: u64,
    inconclusive: u64,
    state: String,
}

impl Timeline {
    pub(super) fn trial(&mut self, t: &TrialRow) {
        if super::changes::by_findings(&t.experiment) {
            return;
        }
        let c = self
            .cells
            .entry((
                t.experiment.clone(),
                t.experiment_name.clone(),
                t.item_id.clone(),
                t.parameter.clone(),
            ))
            .or_default()
            .entry(t.run_id.clone())
            .or_default();
        if t.verdict == Verdict::Inconclusive {
            c.2 += 1;
        } else {
            c.0 += u64::from(Some(t.verdict) == positive_verdict(&t.experiment));
            c.1 += 1;
        }
    }

    pub(super) fn send(&mut self, s: &SendRow) {
        let date = s.sent_at.get(..10).unwrap_or("");
        if date.is_empty() {
            return;
        }
        let d = self.dates.entry(s.run_id.clone()).or_default();
        if d.is_empty() || date < d.as_str() {
            *d = date.to_string();
        }
    }

    pub(super) fn finish(self) -> Vec<Table> {
        // Runs in date order (then id).
        let mut runs: Vec<(String, String)> = self
            .cells
            .values()
            .flat_map(|r| r.keys())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .map(|id| (self.dates.get(id).cloned().unwrap_or_default(), id.clone()))
            .collect();
        runs.sort();
        if runs.len() < 2 {
            return Vec::new();
        }
        let state = |design: &str, (k, n, _): (u64, u64, u64)| -> (String, GridCell) {
            if n == 0 {
                ("inconclusive".into(), GridCell::Inconclusive)
            } else if k == n {
                (
                    positive_verdict(design)
                        .map_or("positive", Verdict::name)
                        .into(),
                    GridCell::Yes,
                )
            } else if k == 0 {
                (negative_word(design).into(), GridCell::No)
            } else {
                ("mixed".into(), GridCell::Other)
            }
        };
        let mut rows = Vec::new();
        // (first change's run index, probe label, cells, design) of probes
        // that moved.
        let mut moved: Vec<(usize, String, Vec<GridCell>, &str)> = Vec::new();
        let (mut always, mut never) = (0usize, 0usize);
        for (probe, by_run) in &self.cells {
            let mut cells = Vec::with_capacity(runs.len());
            let mut seen: Option<GridCell> = None;
            let mut first_change = None;
            for (i, (date, id)) in runs.iter().enumerate() {
                let Some(&c) = by_run.get(id) else {
                    cells.push(GridCell::None);
                    continue;
                };
                let (word, cell) = state(&probe.0, c);
                rows.push(Row {
                    experiment: &probe.0,
                    experiment_name: &probe.1,
                    item_id: &probe.2,
                    parameter: &probe.3,
                    run_id: id,
                    date,
                    n: c.1,
                    positive: c.0,
                    inconclusive: c.2,
                    state: word,
                });
                if cell != GridCell::Inconclusive {
                    match seen {
                        Some(s) if s != cell && first_change.is_none() => first_change = Some(i),
                        None => seen = Some(cell),
                        _ => {}
                    }
                }
                cells.push(cell);
            }
            match (first_change, seen) {
                (Some(i), _) => {
                    let what = [probe.3.as_str(), probe.2.as_str()]
                        .into_iter()
                        .filter(|s| !s.is_empty())
                        .collect::<Vec<_>>()
                        .join(" ");
                    moved.push((i, format!("{}: {what}", probe.1), cells, &probe.0));
                }
                (None, Some(GridCell::Yes)) => always += 1,
                (None, _) => never += 1,
            }
        }
        let mut table = Table::from_rows(
            "timeline.csv",
            "Timeline",
            "Each row is one probe (experiment, item, parameter) in one run: its trials, how many got the design's first verdict, and its state (that verdict, its opposite, mixed or inconclusive).",
            &[
                "experiment",
                "experiment_name",
                "item_id",
                "parameter",
                "run_id",
                "date",
                "n",
                "positive",
                "inconclusive",
                "state",
            ],
            &rows,
        );
        moved.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
        let n_moved = moved.len();
        table.summary.push(format!(
            "{} probes over {} runs: {n_moved} changed state, {always} kept the first verdict (blocked, surveilled …) throughout, {never} never got it.{}",
            self.cells.len(),
            runs.len(),
            if n_moved > MAX_ROWS {
                format!(" The timeline plot shows the first {MAX_ROWS} to change.")
            } else {
                String::new()
            }
        ));
        moved.truncate(MAX_ROWS);
        // The verdicts' own words when the drawn probes share a design
        // (blocked / delivered), the general ones when designs mix.
        let designs: BTreeSet<&str> = moved.iter().map(|m| m.3).collect();
        let (yes, no) = match designs.into_iter().collect::<Vec<_>>()[..] {
            [d] => (
                positive_verdict(d)
                    .map_or("positive", Verdict::name)
                    .to_string(),
                negative_word(d).replace('_', " "),
            ),
            _ => (
                "first verdict (blocked …)".to_string(),
                "its opposite".to_string(),
            ),
        };
        table.figures.push(Figure {
            name: "timeline".into(),
            title: "Timeline of the probes that changed".into(),
            heading: "Probes that changed state, run by run".into(),
            x_label: "run (date)".into(),
            y_label: String::new(),
            chart: Chart::Grid {
                // A run's date, or its id where the input had no sends.
                columns: column_labels(&runs),
                rows: moved.into_iter().map(|(_, l, c, _)| (l, c)).collect(),
                legend: vec![
                    (GridCell::Yes, yes),
                    (GridCell::No, no),
                    (GridCell::Other, "mixed".into()),
                    (GridCell::Inconclusive, "inconclusive".into()),
                    (GridCell::None, "not in that run".into()),
                ],
            },
        });
        vec![table]
    }
}

/// The timeline's column labels, one per run (date, id): the run's date,
/// with its start time (from the id) where several runs share a day, so
/// that no two columns read the same; the id where the run has no date.
fn column_labels(runs: &[(String, String)]) -> Vec<String> {
    let dates: Vec<String> = runs
        .iter()
        .map(|(date, id)| {
            if date.is_empty() {
                id_date(id)
            } else {
                date.clone()
            }
        })
        .collect();
    dates
        .iter()
        .zip(runs)
        .map(|(d, (_, id))| {
            let shared = dates.iter().filter(|o| *o == d).count() > 1;
            let b = id.as_bytes();
            if shared && b.len() >= 15 && b[9..15].iter().all(u8::is_ascii_digit) {
                format!("{d} {}:{}:{}", &id[9..11], &id[11..13], &id[13..15])
            } else if shared {
                format!("{d} {id}")
            } else {
                d.clone()
            }
        })
        .collect()
}

/// A run id's date (`20260105T030000Z-name` → `2026-01-05`), or the id.
fn id_date(id: &str) -> String {
    let b = id.as_bytes();
    if b.len() >= 9 && b[..8].iter().all(u8::is_ascii_digit) && b[8] == b'T' {
        format!("{}-{}-{}", &id[..4], &id[4..6], &id[6..8])
    } else {
        id.to_string()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn run_ids_read_as_dates() {
        assert_eq!(super::id_date("20260105T030000Z-daily"), "2026-01-05");
        assert_eq!(super::id_date("my-run"), "my-run");
    }

    #[test]
    fn runs_of_one_day_are_told_apart_by_their_time() {
        let runs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
            v.iter()
                .map(|(d, i)| (d.to_string(), i.to_string()))
                .collect()
        };
        assert_eq!(
            super::column_labels(&runs(&[
                ("2026-12-07", "20261207T100000Z-a"),
                ("2026-12-07", "20261207T101500Z-a"),
                ("2026-12-08", "20261208T100000Z-a"),
                ("", "20261209T100000Z-a"),
            ])),
            [
                "2026-12-07 10:00:00",
                "2026-12-07 10:15:00",
                "2026-12-08",
                "2026-12-09"
            ]
        );
        assert_eq!(
            super::column_labels(&runs(&[("2026-12-07", "x"), ("2026-12-07", "y")])),
            ["2026-12-07 x", "2026-12-07 y"]
        );
    }
}
