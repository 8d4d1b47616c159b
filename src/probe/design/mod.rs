//! Experiment designs: one module per design, one trait, one registry.
//!
//! A design reads its own keys of an `[[experiment]]` table ([`Design::parse`],
//! through a [`ParseCx`] whose errors name the file, the line and the key),
//! and the experiment it returns says which trials to run ([`Experiment`]):
//! all of them at once for a static design, or step by step, from what it
//! has observed, for an adaptive one. It also gives each finished trial its
//! verdict. The scheduler runs experiments, not plans: it asks each for its
//! trials and, as trials finish, for the ones that follow.
//!
//! Adding a design: a file here implementing [`Experiment`] with a
//! [`Design`] constant, one line in [`DESIGNS`], and its section in
//! docs/SPEC.md (and docs/DATASET.md for its verdicts).

use std::fmt;
use std::sync::Arc;

use rand_chacha::ChaCha8Rng;

use super::chat::Chat;
use super::plan::{Role, Trial};
use crate::dataset::{Outcome, Verdict};
use crate::error::InputError;
use crate::ranges::{Declared, Range};

pub mod analysis;
mod collision;
mod expiry;
mod isolate;
mod keyword;
mod latency;
mod parse;
mod surveillance;
mod surveillance_content;
mod threshold;
mod transform;

pub use parse::{ItemFilter, ParseCx};

/// A design: its name, its keys, and how an experiment of it is read.
pub struct Design {
    /// The `kind` of its experiments, and the `experiment` column of datasets.
    pub name: &'static str,
    /// One line on what it measures (`chatprobe designs` prints it).
    pub about: &'static str,
    /// The keys it takes besides `kind`, `name`, `replicates` and `test_chat`.
    pub keys: &'static [&'static str],
    /// The ranges of those of its keys that have one (paths relative to
    /// the experiment's table). The spec refuses a value outside before
    /// [`Design::parse`] runs, and the bad-input tests are generated
    /// from them.
    pub ranges: &'static [Declared],
    /// Read and validate one experiment.
    pub parse: fn(&ParseCx) -> Result<Arc<dyn Experiment>, InputError>,
    /// The verdicts its trials get besides `inconclusive` (trials.csv).
    pub verdicts: &'static [Verdict],
    /// Its own analysis tables, if it has any (`chatprobe analyze` writes
    /// them and the report shows them; see [`analysis`]).
    pub analysis: Option<fn() -> Box<dyn analysis::Analysis>>,
    /// For an adaptive design whose trials two runs need not share: how
    /// to read what it found from a run folder, which `chatprobe changes`
    /// compares between runs instead of its trials' verdicts.
    pub findings: Option<analysis::ReadFindings>,
}

/// Every design, in the order docs/SPEC.md lists them.
pub const DESIGNS: &[Design] = &[
    surveillance::DESIGN,
    latency::DESIGN,
    transform::DESIGN,
    keyword::DESIGN,
    expiry::DESIGN,
    collision::DESIGN,
    threshold::DESIGN,
    isolate::DESIGN,
];

/// The analyses of every design that has one, for `chatprobe analyze`.
pub fn analyses() -> Vec<analysis::DesignAnalysis> {
    DESIGNS
        .iter()
        .filter_map(|d| {
            d.analysis.map(|make| analysis::DesignAnalysis {
                design: d.name,
                make,
            })
        })
        .collect()
}

/// The design named `kind`.
pub fn find(kind: &str) -> Option<&'static Design> {
    DESIGNS.iter().find(|d| d.name == kind)
}

/// Keys every experiment takes.
pub const COMMON_KEYS: &[&str] = &["kind", "name", "replicates", "test_chat"];

/// The ranges of the keys every experiment takes (see [`Design::ranges`]).
pub const COMMON_RANGES: &[Declared] = &[
    Declared {
        path: "name",
        range: Range::Text { min: 1, max: 100 },
    },
    Declared {
        path: "replicates",
        range: Range::int(1, crate::probe::spec::MAX_REPLICATES as i64),
    },
];

/// What every experiment has, whatever its design.
#[derive(Debug, Clone)]
pub struct Common {
    /// Its design's name (the `experiment` column).
    pub design: &'static str,
    /// Its name (the `experiment_name` column).
    pub name: String,
    /// Where tests go (it holds a china account).
    pub test_chat: Chat,
    /// Replicates of every trial.
    pub replicates: u32,
}

/// One experiment of a spec, validated.
pub trait Experiment: fmt::Debug + Send + Sync {
    /// The keys every experiment has.
    fn common(&self) -> &Common;

    /// Its design's name (the `experiment` column).
    fn design(&self) -> &'static str {
        self.common().design
    }

    /// Its name (the `experiment_name` column).
    fn name(&self) -> &str {
        &self.common().name
    }

    /// An upper bound of the sends it can make, known before any is planned
    /// (a spec whose experiments could exceed the plan limit is refused).
    fn max_sends(&self) -> u64;

    /// The trials it runs before observing anything, in a fixed order. A
    /// design drawing random numbers draws them from `rng`, the plan's
    /// seeded generator (the plan then shuffles every experiment's trials
    /// together).
    fn first_trials(&self, rng: &mut ChaCha8Rng) -> Vec<Trial>;

    /// Whether trials follow from observations ([`Experiment::next_trials`]).
    fn adaptive(&self) -> bool {
        false
    }

    /// The trials that follow from its finished trials and their verdicts
    /// (`seen`, in the order they were planned), knowing every trial it has
    /// asked for so far, finished or not (`planned`, in plan order). It
    /// must be a function of these alone, and never take back a trial it
    /// once asked for: a resume replays it from the journal and must get
    /// the same trials. Static designs ask for none.
    fn next_trials(&self, seen: &[Finished<'_>], planned: &[&Trial]) -> Vec<Trial> {
        let _ = (seen, planned);
        Vec::new()
    }

    /// The verdict of one of its trials whose sends are all done.
    fn verdict(&self, t: &Trial, o: &TrialOutcomes) -> TrialVerdict;

    /// Tables of its own that the run writes beside trials.csv, from its
    /// finished trials (rewritten with trials.csv): what only the
    /// experiment can say, because it needs more than the datasets hold
    /// (isolate's isolations.csv needs the texts). Most designs have none.
    fn run_tables(&self, run_id: &str, seen: &[Finished<'_>], planned: &[&Trial]) -> Vec<RunTable> {
        let _ = (run_id, seen, planned);
        Vec::new()
    }
}

/// A table an experiment writes into the run folder
/// ([`Experiment::run_tables`]); experiments writing the same file have
/// their rows concatenated, in spec order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunTable {
    /// Its file name in the run folder.
    pub file: &'static str,
    /// The columns.
    pub header: &'static [&'static str],
    /// The rows, formatted.
    pub rows: Vec<Vec<String>>,
}

/// A finished trial and its verdict, as an adaptive design sees it.
#[derive(Debug, Clone, Copy)]
pub struct Finished<'a> {
    /// The trial.
    pub trial: &'a Trial,
    /// Its verdict.
    pub verdict: Verdict,
}

/// The final outcomes of a trial's sends, for its verdict.
#[derive(Debug, Clone)]
pub struct TrialOutcomes {
    /// Every send has a conclusive final outcome and the trial was not abandoned.
    pub complete: bool,
    /// Each send's role and final outcome, in the trial's order.
    pub sends: Vec<(Role, Option<Outcome>)>,
}

impl TrialOutcomes {
    /// The final outcome of the last send with `role`.
    pub fn role(&self, role: Role) -> Option<Outcome> {
        self.sends
            .iter()
            .filter(|(r, o)| *r == role && o.is_some())
            .map(|(_, o)| *o)
            .next_back()
            .flatten()
    }

    /// Whether the trial has a send with `role`.
    pub fn has(&self, role: Role) -> bool {
        self.sends.iter().any(|(r, _)| *r == role)
    }
}

/// A trial's verdict, with the outcomes trials.csv reports beside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrialVerdict {
    /// The verdict (docs/DATASET.md lists each design's).
    pub verdict: Verdict,
    /// The `seeded_outcome` column.
    pub seeded: Option<Outcome>,
    /// The `control_outcome` column.
    pub control: Option<Outcome>,
}

/// `blocked` or `evaded` from the test send: the verdict of designs that
/// test one piece of content in a chat with a china account.
pub fn blocked_or_evaded(o: &TrialOutcomes, valid: bool, control: Option<Outcome>) -> TrialVerdict {
    let test = o.role(Role::Test);
    let verdict = if !o.complete || !valid {
        Verdict::Inconclusive
    } else if test == Some(Outcome::Blocked) {
        Verdict::Blocked
    } else {
        Verdict::Evaded
    };
    TrialVerdict {
        verdict,
        seeded: test,
        control,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn design_names_are_unique_and_keys_do_not_shadow_common_ones() {
        let mut names: Vec<&str> = DESIGNS.iter().map(|d| d.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), DESIGNS.len());
        for d in DESIGNS {
            for k in d.keys {
                assert!(!COMMON_KEYS.contains(k), "{}: {k}", d.name);
            }
        }
    }

    /// Every table a design can write has a file name of its own, a plot
    /// name of its own, and a row in docs/DATASET.md (so a new design's
    /// table fails here until it is documented).
    #[test]
    fn design_tables_and_plots_are_unique_and_documented() {
        let dataset = include_str!("../../../docs/DATASET.md");
        let mut files = vec!["trend.csv".to_string()];
        let mut plots = vec!["trend".to_string()];
        for a in analyses() {
            for t in (a.make)().finish(crate::stats::Interval::Wilson) {
                assert!(
                    dataset.contains(&format!("| `{}`", t.file)),
                    "{}: {} is not in docs/DATASET.md",
                    a.design,
                    t.file
                );
                files.push(t.file);
                plots.extend(t.figures.into_iter().map(|f| f.name));
            }
        }
        let n = (files.len(), plots.len());
        files.sort_unstable();
        files.dedup();
        plots.sort_unstable();
        plots.dedup();
        assert_eq!((files.len(), plots.len()), n, "{files:?} {plots:?}");
    }

    /// The closed verdict list (`dataset::Verdict`, docs/DATASET.md) holds
    /// exactly the designs' verdicts and `inconclusive`: a verdict no design
    /// gives is a word the dataset would accept for nothing.
    #[test]
    fn the_dataset_verdicts_are_the_designs_verdicts() {
        let mut designs: Vec<Verdict> = DESIGNS
            .iter()
            .flat_map(|d| d.verdicts.iter().copied())
            .chain([Verdict::Inconclusive])
            .collect();
        designs.sort_unstable();
        designs.dedup();
        let mut dataset = Verdict::ALL.to_vec();
        dataset.sort_unstable();
        assert_eq!(designs, dataset);
    }
}
