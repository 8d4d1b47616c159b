//! Before a run: load and check the spec, or the run to resume (its spec and
//! corpus unchanged since it started), then make or reopen the run folder
//! and hold its lock (one process per run folder).
//!
//! [`Prepared::load`] writes nothing; [`Prepared::open`] makes the folder,
//! plan.csv and run.json (run.json first of all, so a run killed at any
//! point can be resumed).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::Context;

use super::journal::{self, Record};
use super::lock::{self, RunLock};
use super::provenance::{git_revision, new_run_id, vantage};
use super::{evidence, state, RunOptions};
use crate::dataset::manifest::{read_manifest, RunManifest, RunStatus, RUN_FILE};
use crate::error::InputError;
use crate::platform::profile::Profile;
use crate::probe::plan::Plan;
use crate::probe::spec::Spec;

/// A checked spec (and the run it resumes), nothing written yet.
pub struct Prepared {
    /// The spec.
    pub spec: Spec,
    /// Its profile.
    pub profile: Profile,
    /// Its plan (adaptive experiments: their first steps).
    pub plan: Plan,
    prior: Option<(PathBuf, RunManifest)>,
    held: Option<RunLock>,
    repair: Option<evidence::Repair>,
}

/// An open, locked run folder.
pub struct Folder {
    /// The folder.
    pub dir: PathBuf,
    /// The run id (the folder's name).
    pub run_id: String,
    /// run.json as of now.
    pub manifest: RunManifest,
    /// The spec.
    pub spec: Spec,
    /// Its profile.
    pub profile: Profile,
    /// The plan.
    pub plan: Plan,
    /// Whether this start resumes an earlier one.
    pub resuming: bool,
    _held: RunLock,
}

impl Prepared {
    /// Load the spec of a new run, or of the run `--resume` names (checking
    /// that neither it nor the corpus changed since).
    pub fn load(opts: &RunOptions) -> anyhow::Result<Prepared> {
        let mut held = None;
        let (spec, prior) = match (&opts.resume, &opts.spec) {
            (Some(dir), _) => {
                let m = read_manifest(dir)?;
                held = Some(RunLock::acquire(
                    &dir.join(lock::LOCK_FILE),
                    &format!("run {}", m.run_id),
                )?);
                if !Path::new(&m.spec_path).is_file() {
                    return Err(InputError::new(
                        &m.spec_path,
                        "the run's spec is not there (run.json records it relative to the folder the run was started in)",
                    )
                    .hint("run --resume from that folder, or restore the spec (run.json holds its text)")
                    .into());
                }
                let spec = Spec::load(Path::new(&m.spec_path))?;
                if spec.sha256 != m.spec_sha256 {
                    return Err(InputError::new(
                        &m.spec_path,
                        "the spec changed since this run started",
                    )
                    .hint("restore it (run.json holds its text), or start a new run")
                    .into());
                }
                if spec.index_sha256 != m.corpus_index_sha256 {
                    return Err(InputError::new(
                        spec.corpus.join(crate::corpus::index::INDEX_FILE),
                        "the corpus index changed since this run started, so the plan would differ",
                    )
                    .hint("restore the corpus, or start a new run")
                    .into());
                }
                (spec, Some((dir.clone(), m)))
            }
            (None, Some(path)) => (Spec::load(path)?, None),
            (None, None) => {
                return Err(
                    InputError::new("SPEC", "give a probe spec, or --resume RUN_DIR").into(),
                )
            }
        };
        let profile = Profile::load(&spec.profile_path)?;
        let plan = Plan::build(&spec);
        corpus_files_indexed(&spec, &plan)?;
        // The run folder is evidence: its journal, dataset and plan are
        // checked (or, with --repair, mended) before anything starts.
        let repair = match &prior {
            Some((dir, m)) => {
                let checked = evidence::check(dir, m, &spec, &plan, opts.repair)?;
                checked.repair
            }
            None => None,
        };
        // A new run whose day does not fit the send budget is refused
        // before anything is made.
        if prior.is_none() {
            if let Some(fit) = crate::probe::budget::fit(&plan, &spec.limits) {
                if !fit.dropped.is_empty() {
                    return Err(crate::probe::budget::refusal(&spec, &fit).into());
                }
            }
        }
        Ok(Prepared {
            spec,
            profile,
            plan,
            prior,
            held,
            repair,
        })
    }

    /// The external platform's URL: `--base-url`, else the one the resumed
    /// run started with (none: the profile's, or the embedded testbed).
    pub fn base_url(&self, opts: &RunOptions) -> Result<Option<String>, InputError> {
        if let Some(u) = &opts.base_url {
            return Ok(Some(u.clone()));
        }
        match self.prior.as_ref().and_then(|(d, _)| external_url(d)) {
            Some(u) if u.contains("***@") => Err(InputError::new(
                "--base-url",
                "this run's platform URL carried credentials, which chatprobe does not store",
            )
            .hint("pass the URL again with --base-url")),
            other => Ok(other),
        }
    }

    /// Make the run folder (a new run: plan.csv and run.json, naming the
    /// platform `kind` and the testbed `policy`), or reopen the resumed one.
    pub fn open(
        self,
        opts: &RunOptions,
        kind: &str,
        policy: Option<String>,
    ) -> anyhow::Result<Folder> {
        let Prepared {
            spec,
            profile,
            plan,
            prior,
            held,
            repair,
        } = self;
        let resuming = prior.is_some();
        let (dir, run_id, mut manifest, held) = match (prior, held) {
            (Some((dir, mut m)), Some(held)) => {
                if let Some(r) = &repair {
                    evidence::apply(&dir, r, &mut m)
                        .with_context(|| format!("repairing {}", dir.display()))?;
                    eprintln!("{}", repaired(&dir, m.repairs.last().unwrap_or(&r.note)));
                } else if opts.repair {
                    eprintln!(
                        "{}: the journal and plan.csv are whole; nothing to repair",
                        dir.display()
                    );
                }
                (dir, m.run_id.clone(), m, held)
            }
            _ => {
                std::fs::create_dir_all(&opts.results)
                    .with_context(|| format!("creating {}", opts.results.display()))?;
                let run_id = new_run_id(&opts.results, &spec.name);
                let dir = opts.results.join(&run_id);
                std::fs::create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
                let held = RunLock::acquire(&dir.join(lock::LOCK_FILE), &format!("run {run_id}"))?;
                let m = new_manifest(&spec, &profile, &plan, &run_id, kind, policy);
                plan.save(&dir.join("plan.csv"))
                    .with_context(|| format!("writing {}", dir.join("plan.csv").display()))?;
                // run.json first of all, so a run killed at any point can be resumed.
                crate::fsutil::atomic_write_bytes(
                    &dir.join(RUN_FILE),
                    &serde_json::to_vec_pretty(&m)?,
                )
                .with_context(|| format!("writing {}", dir.join(RUN_FILE).display()))?;
                write_items(&dir, &spec, &plan)?;
                if !spec.published.is_empty() {
                    crate::dataset::published::write(&dir, &spec.published).with_context(|| {
                        format!(
                            "writing {}",
                            dir.join(crate::dataset::published::PUBLISHED_FILE)
                                .display()
                        )
                    })?;
                }
                (dir, run_id, m, held)
            }
        };
        manifest.pid = std::process::id();
        manifest.state = RunStatus::Running;
        Ok(Folder {
            dir,
            run_id,
            manifest,
            spec,
            profile,
            plan,
            resuming,
            _held: held,
        })
    }
}

/// Refuse a corpus file the plan sends that changed since `corpus index`:
/// fresh copies are made from the file, but their distance to the item,
/// its features and the ledger are the index's, so a replaced file would
/// be measured as another (its "fresh copies" 24 pHash bits from the
/// indexed item, once).
fn corpus_files_indexed(spec: &Spec, plan: &Plan) -> Result<(), InputError> {
    let used: std::collections::BTreeSet<&str> = plan
        .trials
        .iter()
        .flat_map(|t| t.sends.iter().map(|s| s.item_id.as_str()))
        .filter(|id| !id.is_empty())
        .collect();
    for item in spec
        .items
        .iter()
        .filter(|i| used.contains(i.item.id.as_str()))
    {
        let path =
            crate::corpus::entry_path(&spec.corpus, &item.item.path).map_err(|e| match e {
                crate::corpus::CorpusError::Input(i) => i,
                other => InputError::new(&spec.corpus, other.to_string()),
            })?;
        let size = std::fs::metadata(&path).map(|m| m.len()).ok();
        let same = size == Some(item.index.bytes)
            && std::fs::read(&path)
                .is_ok_and(|b| crate::corpus::hash::md5_hex(&b) == item.index.md5);
        if !same {
            return Err(InputError::new(
                &path,
                format!(
                    "item `{}` changed since the corpus was indexed: its bytes are not those corpus/index.csv holds",
                    item.item.id
                ),
            )
            .hint(format!(
                "run `chatprobe corpus index --corpus {}` again (or restore the file)",
                spec.corpus.display()
            )));
        }
    }
    Ok(())
}

/// `items.csv`: the content features (corpus/features.csv) of the corpus
/// items the plan sends, so that the run's datasets carry what the
/// analyses join by item id, wherever they are read.
fn write_items(dir: &Path, spec: &Spec, plan: &Plan) -> anyhow::Result<()> {
    let used: std::collections::HashSet<&str> = plan
        .trials
        .iter()
        .flat_map(|t| t.sends.iter().map(|s| s.item_id.as_str()))
        .collect();
    let mut features = crate::corpus::features::load(&spec.corpus)?;
    if features.is_empty() {
        // A corpus indexed before features.csv existed.
        let manifest = crate::corpus::Manifest::load(&spec.corpus)?;
        let index: Vec<_> = spec.items.iter().map(|i| i.index.clone()).collect();
        features = crate::corpus::features::build(&spec.corpus, &manifest, &index)?;
    }
    features.retain(|f| used.contains(f.item_id.as_str()));
    let path = dir.join(crate::corpus::features::RUN_ITEMS_FILE);
    crate::fsutil::atomic_write(&path, |w| -> anyhow::Result<()> {
        let mut out = csv::WriterBuilder::new().has_headers(false).from_writer(w);
        out.write_record(crate::corpus::features::FEATURE_COLUMNS)?;
        for f in &features {
            out.serialize(f)?;
        }
        out.flush()?;
        Ok(())
    })
    .with_context(|| format!("writing {}", path.display()))
}

fn new_manifest(
    spec: &Spec,
    profile: &Profile,
    plan: &Plan,
    run_id: &str,
    kind: &str,
    policy: Option<String>,
) -> RunManifest {
    let limits = &spec.limits;
    RunManifest {
        software: "chatprobe".into(),
        vantage: vantage(),
        version: env!("CARGO_PKG_VERSION").into(),
        git_revision: git_revision(),
        run_id: run_id.to_string(),
        spec_name: spec.name.clone(),
        spec_path: crate::fsutil::relative_to_cwd(&spec.path),
        spec_sha256: spec.sha256.clone(),
        spec_text: spec.text.clone(),
        corpus_index_sha256: spec.index_sha256.clone(),
        corpus: crate::fsutil::relative_to_cwd(&spec.corpus),
        profile: profile.name.clone(),
        platform: kind.to_string(),
        policy: policy.map(|p| crate::fsutil::relative_to_cwd(Path::new(&p))),
        webdriver: serde_json::Value::Null,
        seed: spec.seed,
        limits: serde_json::json!({
            "sends_per_minute": limits.sends_per_minute,
            "parallel_pairs": limits.parallel_pairs,
            "deliver_timeout_s": limits.deliver_timeout_s,
            "sentinel": limits.sentinel,
            "retries": limits.retries,
            "max_runtime_s": limits.max_runtime_s,
            "after_sentinel_s": limits.after_sentinel_s,
            "jitter": limits.jitter,
            "daily_sends_per_account": limits.daily_sends_per_account,
        }),
        plan_sha256: evidence::plan_sha256(plan),
        repairs: Vec::new(),
        started_at: state::rfc(Some(crate::clock::now())),
        finished_at: String::new(),
        state: RunStatus::Running,
        stop_reason: None,
        pid: std::process::id(),
        trials_planned: plan.trials.len(),
        trials_done: 0,
        sends_planned: plan.sends(),
        counts: HashMap::new(),
        interrupted: Vec::new(),
        resumed: Vec::new(),
        crashes: 0,
    }
}

/// The URL an external run first started with (from its journal's whole
/// records).
fn external_url(dir: &Path) -> Option<String> {
    journal::scan(dir).ok()?.records().find_map(|r| match r {
        Record::Start {
            resume: false,
            base_url,
            ..
        } => base_url.clone(),
        _ => None,
    })
}

/// What a repair did, in a line.
fn repaired(dir: &Path, n: &crate::dataset::manifest::Repair) -> String {
    let mut parts = Vec::new();
    if let Some(line) = n.journal_line {
        parts.push(format!(
            "journal.jsonl line {line} was damaged ({}): kept {} records, dropped {}, {} sends to settle by looking (the damaged journal is kept as {})",
            n.damage,
            n.records_kept,
            n.records_dropped,
            n.sends_to_settle.len(),
            n.damaged_copy.as_deref().unwrap_or("-")
        ));
    }
    if let Some(why) = &n.plan_rewritten {
        parts.push(format!("plan.csv rewritten from the spec ({why})"));
    }
    format!(
        "repaired {}: {} (run.json `repairs`)",
        dir.display(),
        parts.join("; ")
    )
}
