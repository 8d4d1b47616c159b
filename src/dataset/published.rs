//! `published.csv`: the published figures a spec declares that its run
//! replicates (`[[published]]` in the spec), written into the run folder
//! when the run is made, so that `analyze` can set each beside the run's
//! own figure wherever the folder is read. One row a figure.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::InputError;

/// The file's name in a run folder.
pub const PUBLISHED_FILE: &str = "published.csv";

/// Its columns, in order.
pub const PUBLISHED_COLUMNS: [&str; 7] = [
    "experiment_name",
    "label",
    "measure",
    "k",
    "n",
    "what",
    "source",
];

/// The measures a published figure can be compared on, each computed from
/// trials.csv: `seeded_blocked` (trials whose seeded copy was blocked, of
/// those whose seeded copy was blocked or delivered) or `verdict:NAME`
/// (trials with that verdict, of the conclusive ones).
pub const MEASURES: &str = "`seeded_blocked` or `verdict:NAME`";

/// One published figure: `k` of `n`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishedRow {
    /// The experiment (its `name` in the spec) that replicates it.
    pub experiment_name: String,
    /// The label of the items it counts (empty: every label).
    pub label: String,
    /// What is counted ([`MEASURES`]).
    pub measure: String,
    /// Events published.
    pub k: u64,
    /// Of how many.
    pub n: u64,
    /// What the figure is, in words.
    pub what: String,
    /// Where it was published.
    pub source: String,
}

/// Whether `measure` is one of [`MEASURES`]; the verdict it names, if any.
pub fn measure_verdict(measure: &str) -> Result<Option<&str>, String> {
    match measure.strip_prefix("verdict:") {
        Some(v) if !v.is_empty() => Ok(Some(v)),
        Some(_) => Err("`verdict:` names no verdict".into()),
        None if measure == "seeded_blocked" => Ok(None),
        None => Err(format!("unknown measure `{measure}`: use {MEASURES}")),
    }
}

/// Read a run folder's published.csv (none: no rows).
pub fn load(dir: &Path) -> Result<Vec<PublishedRow>, InputError> {
    let path = dir.join(PUBLISHED_FILE);
    if !path.is_file() {
        return Ok(Vec::new());
    }
    let mut rdr = csv::Reader::from_path(&path)
        .map_err(|e| InputError::new(&path, format!("cannot read: {e}")))?;
    let mut out = Vec::new();
    for (i, r) in rdr.deserialize().enumerate() {
        let row: PublishedRow = r.map_err(|e| {
            InputError::new(&path, format!("malformed row: {e}"))
                .line(i as u64 + 2)
                .hint("its columns are listed in docs/DATASET.md (published.csv)")
        })?;
        if row.k > row.n || row.n == 0 {
            return Err(InputError::new(&path, "k must be at most n, and n above 0")
                .line(i as u64 + 2)
                .key("k"));
        }
        out.push(row);
    }
    Ok(out)
}

/// Write `rows` as `dir/published.csv` (atomically).
pub fn write(dir: &Path, rows: &[PublishedRow]) -> csv::Result<()> {
    crate::fsutil::atomic_write(&dir.join(PUBLISHED_FILE), |w| -> csv::Result<()> {
        let mut out = csv::WriterBuilder::new().has_headers(false).from_writer(w);
        out.write_record(PUBLISHED_COLUMNS)?;
        for r in rows {
            out.serialize(r)?;
        }
        out.flush()?;
        Ok(())
    })
}
