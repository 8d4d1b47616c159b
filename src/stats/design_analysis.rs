//! A design's own analysis: a design that has tables of its own implements
//! [`Analysis`] (it is fed its design's trials.csv rows and gives its
//! [`Table`]s), and names it in its registry entry
//! (`probe::design::Design::analysis`). `chatprobe analyze` feeds every
//! registered analysis, writes each table as CSV beside the others, and the
//! report shows each as the design's part of the page, so a new design's
//! tables need no edit here, in `analyze` or in `report`.

use super::analyze::Interval;
use crate::dataset::TrialRow;

/// A table a design computed.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// Its CSV file's name in the analysis folder.
    pub file: String,
    /// Its heading in the report.
    pub title: String,
    /// What a row says, for the report (one or two sentences).
    pub about: String,
    /// The columns.
    pub header: Vec<String>,
    /// The rows, formatted (numbers as they should appear in the CSV).
    pub rows: Vec<Vec<String>>,
    /// Plain-language sentences for the report's summary ("What this run
    /// shows").
    pub summary: Vec<String>,
}

impl Table {
    /// A table whose rows are serialized as every chatprobe CSV is (so
    /// numbers read the same as in the other tables); no summary.
    pub fn from_rows<T: serde::Serialize>(
        file: &str,
        title: &str,
        about: &str,
        header: &[&str],
        rows: &[T],
    ) -> Table {
        let mut w = csv::WriterBuilder::new()
            .has_headers(false)
            .from_writer(Vec::new());
        for r in rows {
            w.serialize(r).expect("a row serializes");
        }
        let bytes = w.into_inner().expect("in memory");
        let rows = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(bytes.as_slice())
            .records()
            .map(|r| r.expect("just written").iter().map(String::from).collect())
            .collect();
        Table {
            file: file.into(),
            title: title.into(),
            about: about.into(),
            header: header.iter().map(|h| h.to_string()).collect(),
            rows,
            summary: Vec::new(),
        }
    }
}

/// A design's analysis, fed its rows one at a time (the input is
/// streamed: keep counts, not rows, where the design allows).
pub trait Analysis {
    /// One trials.csv row of this design.
    fn trial(&mut self, t: &TrialRow);
    /// The tables, once every row is read.
    fn finish(self: Box<Self>, interval: Interval) -> Vec<Table>;
}

/// A registered analysis: the design (trials.csv `experiment`) and a maker.
#[derive(Clone, Copy)]
pub struct DesignAnalysis {
    /// The design's name.
    pub design: &'static str,
    /// A fresh, empty analysis.
    pub make: fn() -> Box<dyn Analysis>,
}
