//! `chatprobe merge RESULTS_DIR… --out DIR`: every run under one or more
//! results folders (of one spec, or all) as one set of tidy tables:
//!
//! - `runs.csv`: one row per run, with its provenance (vantage, dates, tool
//!   version and revision, spec hash, platform, state) and the merged
//!   tables' `schema_version`;
//! - `sends.csv` and `trials.csv`: every run's rows, each prefixed with the
//!   run-level columns a longitudinal analysis groups by (`run_key`,
//!   `vantage`, `date`, `tool_version`, `spec_sha256`);
//! - `datapackage.json`: their schemas, keys and the keys between them.
//!
//! Run ids are a start second and a spec name, so two machines can make the
//! same one: rows are keyed by `run_key` = `RUN_ID@VANTAGE`. The same run
//! found twice (a results folder copied into another) is merged once; two
//! different runs with one key are refused. Columns are matched by name, so
//! runs written by older versions (fewer columns) merge, their missing cells
//! empty. Input is streamed: memory does not grow with the number of rows.
//!
//! CSV only, on purpose: a Parquet writer (`parquet` with `arrow`, default
//! features off) would add 29 crates to chatprobe's 276 (the arrow-*
//! crates, flatbuffers, thrift, lexical-*, half …) for tables of a few
//! hundred thousand rows that every tool the field uses reads as CSV, and
//! DuckDB writes Parquet from them in one statement:
//! `COPY (FROM 'sends.csv') TO 'sends.parquet'`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::manifest::{read_manifest, RunManifest, RUN_FILE};
use super::package::{self, Field, Kind, Resource};
use crate::error::InputError;

/// The version of the merged tables' layout (runs.csv `schema_version`).
pub const SCHEMA_VERSION: u32 = 1;

/// What `merge` was asked.
#[derive(Debug, Clone)]
pub struct MergeOptions {
    /// Results folders (each holds run folders).
    pub results: Vec<PathBuf>,
    /// Only runs of this spec name.
    pub spec: Option<String>,
    /// The output folder (replaced whole).
    pub out: PathBuf,
}

/// What `merge` did.
#[derive(Debug, Clone, Default)]
pub struct MergeSummary {
    /// Runs merged.
    pub runs: usize,
    /// Copies of a run found more than once, merged once.
    pub duplicates: usize,
    /// Send rows.
    pub sends: u64,
    /// Trial rows.
    pub trials: u64,
}

/// Why a merge failed.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    /// Bad input.
    #[error(transparent)]
    Input(#[from] InputError),
    /// Writing failed.
    #[error("writing {path}: {source}")]
    Write {
        /// Where.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> MergeError + '_ {
    move |source| MergeError::Write {
        path: path.to_path_buf(),
        source,
    }
}

fn csv_io(path: &Path) -> impl FnOnce(csv::Error) -> MergeError + '_ {
    move |e| MergeError::Write {
        path: path.to_path_buf(),
        source: std::io::Error::other(e),
    }
}

/// A run found, with its folder.
struct Found {
    key: String,
    dir: PathBuf,
    m: RunManifest,
}

/// The run-level columns prefixed to sends.csv and trials.csv.
fn run_fields() -> Vec<Field> {
    let f = |name: &str, kind, d: &str, required| Field {
        name: name.into(),
        kind,
        description: d.into(),
        values: Vec::new(),
        required,
    };
    vec![
        f(
            "run_key",
            Kind::String,
            "RUN_ID@VANTAGE: unique across machines",
            true,
        ),
        f(
            "vantage",
            Kind::String,
            "where the run was measured from (CHATPROBE_VANTAGE or a hash of the machine id)",
            false,
        ),
        f(
            "date",
            Kind::String,
            "the run's start date (UTC, YYYY-MM-DD)",
            true,
        ),
        f(
            "tool_version",
            Kind::String,
            "the chatprobe version that made the run",
            true,
        ),
        f(
            "spec_sha256",
            Kind::String,
            "SHA-256 of the spec's text",
            true,
        ),
    ]
}

const RUNS_HEADER: &[&str] = &[
    "run_key",
    "run_id",
    "vantage",
    "spec_name",
    "spec_sha256",
    "date",
    "started_at",
    "finished_at",
    "state",
    "tool_version",
    "git_revision",
    "platform",
    "profile",
    "trials_planned",
    "trials_done",
    "schema_version",
];

fn run_key(m: &RunManifest) -> String {
    let v = if m.vantage.is_empty() {
        "unknown"
    } else {
        &m.vantage
    };
    format!("{}@{v}", m.run_id)
}

/// Every run to merge, oldest first; the same run twice is kept once.
fn find(o: &MergeOptions) -> Result<(Vec<Found>, usize), InputError> {
    let mut by_key: BTreeMap<String, Found> = BTreeMap::new();
    let mut dups = 0;
    for r in &o.results {
        let rd = std::fs::read_dir(r).map_err(|e| {
            InputError::new(r, format!("cannot read the results folder: {e}"))
                .hint("pass the folder `chatprobe run --results` wrote into")
        })?;
        let mut dirs: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
        dirs.sort();
        for dir in dirs {
            if !dir.join(RUN_FILE).is_file() {
                continue;
            }
            let m = read_manifest(&dir)?;
            if o.spec.as_ref().is_some_and(|s| *s != m.spec_name) {
                continue;
            }
            let key = run_key(&m);
            if let Some(prev) = by_key.get(&key) {
                if prev.m.spec_sha256 == m.spec_sha256 && prev.m.started_at == m.started_at {
                    // The same run twice: merged once, if both copies hold
                    // the same data (a copy taken mid-run, then the run
                    // resumed, holds less: which is right is the user's
                    // call, not the merge's).
                    if let Some(file) = differing_table(&prev.dir, &dir) {
                        return Err(InputError::new(
                            &dir,
                            format!(
                                "run {} is here twice with different data: its {file} differs from {}'s",
                                m.run_id,
                                prev.dir.display()
                            ),
                        )
                        .hint("keep one copy of the run (the one whose run.json has the later `finished_at` holds more of it) and merge again"));
                    }
                    dups += 1;
                    continue;
                }
                return Err(InputError::new(
                    &dir,
                    format!(
                        "run {} (vantage `{}`) is also {}, with another spec or start",
                        m.run_id,
                        m.vantage,
                        prev.dir.display()
                    ),
                )
                .hint("runs of different machines need different vantages: set CHATPROBE_VANTAGE on each, or merge them separately"));
            }
            by_key.insert(key.clone(), Found { key, dir, m });
        }
    }
    let mut v: Vec<Found> = by_key.into_values().collect();
    v.sort_by(|a, b| a.m.started_at.cmp(&b.m.started_at).then(a.key.cmp(&b.key)));
    if v.is_empty() {
        let what = o
            .spec
            .as_ref()
            .map(|s| format!(" of spec `{s}`"))
            .unwrap_or_default();
        return Err(InputError::new(
            o.results
                .first()
                .map(PathBuf::as_path)
                .unwrap_or(Path::new(".")),
            format!("no runs{what} here"),
        )
        .hint("`chatprobe runs --results DIR` lists them"));
    }
    Ok((v, dups))
}

/// The first of a run's tables whose bytes differ between two copies.
fn differing_table(a: &Path, b: &Path) -> Option<&'static str> {
    ["sends.csv", "trials.csv"]
        .into_iter()
        .find(|f| std::fs::read(a.join(f)).ok() != std::fs::read(b.join(f)).ok())
}

/// The columns a run's table must have to be merged: its key, and the
/// trial its rows belong to.
fn required_columns(file: &str) -> &'static [&'static str] {
    match file {
        "sends.csv" => &["send_id", "attempt", "trial_id"],
        _ => &["trial_id"],
    }
}

/// Append one table of every run to `w`, run-level columns first, the
/// table's columns by name in `fields`' order.
fn append(
    w: &mut csv::Writer<std::fs::File>,
    out: &Path,
    runs: &[Found],
    file: &str,
    fields: &[Field],
) -> Result<u64, MergeError> {
    let mut n = 0;
    let mut row: Vec<String> = vec![String::new(); fields.len() + 5];
    for r in runs {
        let path = r.dir.join(file);
        if !path.is_file() {
            continue;
        }
        let mut rd = csv::Reader::from_path(&path)
            .map_err(|e| InputError::new(&path, format!("cannot read: {e}")))?;
        let header = rd
            .headers()
            .map_err(|e| InputError::new(&path, format!("cannot read the header: {e}")).line(1))?
            .clone();
        if let Some(col) = required_columns(file)
            .iter()
            .find(|c| !header.iter().any(|h| h == **c))
        {
            return Err(InputError::new(&path, format!("no `{col}` column"))
                .line(1)
                .key(*col)
                .hint("a run's tables are written by `chatprobe run`; restore this one from the run's journal with `chatprobe run --resume` of a copy, or leave the run out")
                .into());
        }
        let pos: Vec<Option<usize>> = fields
            .iter()
            .map(|f| header.iter().position(|h| h == f.name))
            .collect();
        let date = r.m.started_at.get(..10).unwrap_or("").to_string();
        let fixed = [
            r.key.clone(),
            r.m.vantage.clone(),
            date,
            r.m.version.clone(),
            r.m.spec_sha256.clone(),
        ];
        for (i, rec) in rd.records().enumerate() {
            let rec = rec.map_err(|e| {
                InputError::new(&path, format!("malformed row: {e}")).line(i as u64 + 2)
            })?;
            for (slot, v) in row.iter_mut().zip(fixed.iter()) {
                slot.clone_from(v);
            }
            for (j, p) in pos.iter().enumerate() {
                row[5 + j].clear();
                if let Some(v) = p.and_then(|p| rec.get(p)) {
                    row[5 + j].push_str(v);
                }
            }
            w.write_record(&row).map_err(csv_io(out))?;
            n += 1;
        }
    }
    Ok(n)
}

/// Merge; the output folder appears whole or not at all.
pub fn merge(o: &MergeOptions) -> Result<MergeSummary, MergeError> {
    let (runs, duplicates) = find(o)?;
    let parent = match o.out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).map_err(io(&parent))?;
    let tmp = tempfile::Builder::new()
        .prefix(".chatprobe-tmp-merge-")
        .tempdir_in(&parent)
        .map_err(io(&parent))?;
    let d = tmp.path();
    let mut s = MergeSummary {
        runs: runs.len(),
        duplicates,
        ..Default::default()
    };

    // runs.csv
    let p = d.join("runs.csv");
    let mut w = csv::Writer::from_path(&p).map_err(csv_io(&p))?;
    w.write_record(RUNS_HEADER).map_err(csv_io(&p))?;
    for r in &runs {
        let m = &r.m;
        w.write_record([
            r.key.as_str(),
            &m.run_id,
            &m.vantage,
            &m.spec_name,
            &m.spec_sha256,
            m.started_at.get(..10).unwrap_or(""),
            &m.started_at,
            &m.finished_at,
            m.state.as_str(),
            &m.version,
            &m.git_revision,
            &m.platform,
            &m.profile,
            &m.trials_planned.to_string(),
            &m.trials_done.to_string(),
            &SCHEMA_VERSION.to_string(),
        ])
        .map_err(csv_io(&p))?;
    }
    w.flush().map_err(io(&p))?;

    let [sends_res, trials_res] = package::run_resources(false);
    let mut resources = Vec::new();
    for (res, file) in [(sends_res, "sends.csv"), (trials_res, "trials.csv")] {
        let p = d.join(file);
        let mut w = csv::Writer::from_path(&p).map_err(csv_io(&p))?;
        let mut fields = run_fields();
        fields.extend(res.fields.iter().cloned());
        w.write_record(fields.iter().map(|f| f.name.as_str()))
            .map_err(csv_io(&p))?;
        let n = append(&mut w, &p, &runs, file, &res.fields)?;
        w.flush().map_err(io(&p))?;
        if file == "sends.csv" {
            s.sends = n;
        } else {
            s.trials = n;
        }
        let mut key: Vec<String> = vec!["run_key".into()];
        key.extend(res.primary_key.iter().filter(|k| *k != "run_id").cloned());
        resources.push(Resource {
            path: file.into(),
            title: format!("{} of every run", res.title),
            description: format!(
                "{} Prefixed with the run-level columns of runs.csv.",
                res.description
            ),
            fields,
            primary_key: key,
            foreign_keys: vec![(
                vec!["run_key".into()],
                "runs.csv".into(),
                vec!["run_key".into()],
            )],
        });
    }
    let mut runs_res = Resource::from_file(
        d,
        "runs.csv",
        "Runs",
        "One row per run merged, with its provenance.",
    )
    .map_err(csv_io(&d.join("runs.csv")))?;
    runs_res.primary_key = vec!["run_key".into()];
    resources.insert(0, runs_res);
    let name = o.spec.clone().unwrap_or_else(|| "all-specs".into());
    package::write(
        d,
        &format!("{name}-merged"),
        &format!("chatprobe runs merged ({name}, {} runs)", s.runs),
        &resources,
    )
    .map_err(io(d))?;

    // Into place: the old output (if any) goes only once the new one is whole.
    let tmp = tmp.keep();
    if o.out.exists() {
        if !o.out.join("runs.csv").is_file() {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(InputError::new(
                &o.out,
                "exists and is not a merge output (no runs.csv): not replaced",
            )
            .hint("choose a new --out folder")
            .into());
        }
        let old = parent.join(format!(".chatprobe-tmp-merge-old-{}", std::process::id()));
        std::fs::rename(&o.out, &old).map_err(io(&o.out))?;
        std::fs::rename(&tmp, &o.out).map_err(io(&o.out))?;
        let _ = std::fs::remove_dir_all(&old);
    } else {
        std::fs::rename(&tmp, &o.out).map_err(io(&o.out))?;
    }
    Ok(s)
}
