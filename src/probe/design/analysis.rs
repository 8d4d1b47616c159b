//! A design's analysis: each design that has tables of its own implements
//! [`Analysis`] and names it in its registry entry ([`super::Design`]'s
//! `analysis`). `chatprobe analyze` feeds it its design's rows and writes
//! the [`Table`]s it returns (types in `dataset::tables`), so a new
//! design's analysis needs no edit in the analysis stage or in `report`.

use std::collections::BTreeMap;

use crate::dataset::tables::Table;
use crate::dataset::{SendRow, TrialRow};
use crate::stats::Interval;

/// A design's analysis, fed its rows one at a time (the input is
/// streamed: keep counts, not rows, where the design allows).
pub trait Analysis {
    /// One trials.csv row of this design.
    fn trial(&mut self, t: &TrialRow) {
        let _ = t;
    }
    /// One sends.csv row of this design.
    fn send(&mut self, s: &SendRow) {
        let _ = s;
    }
    /// An input that is a run folder, before its rows: for the tables
    /// its design's experiments wrote there
    /// (`probe::design::Experiment::run_tables`).
    fn folder(&mut self, dir: &std::path::Path) -> Result<(), crate::error::InputError> {
        let _ = dir;
        Ok(())
    }
    /// The tables, once every row is read.
    fn finish(self: Box<Self>, interval: Interval) -> Vec<Table>;
}

/// A registered analysis: the design (the datasets' `experiment`) and a
/// maker.
#[derive(Clone, Copy)]
pub struct DesignAnalysis {
    /// The design's name.
    pub design: &'static str,
    /// A fresh, empty analysis.
    pub make: fn() -> Box<dyn Analysis>,
}

/// What an adaptive design found in one run ([`super::Design`]'s
/// `findings`): per (experiment name, unit searched, such as a text) whose
/// search finished, the replicates that finished and, per finding (such as
/// a keyword combination), the replicates in which it turned up.
pub type Findings = BTreeMap<(String, String), (u64, BTreeMap<String, u64>)>;

/// Reads a design's [`Findings`] from a run folder (empty when the run has
/// none).
pub type ReadFindings = fn(&std::path::Path) -> Result<Findings, crate::error::InputError>;
