//! The run stage: `chatprobe run SPEC` carries out a plan on a platform and
//! writes the dataset.
//!
//! - [`prepare`]: load and check the spec (or the run to resume), then make
//!   or reopen the run folder, locked;
//! - [`journal`]: journal.jsonl, append-only and synced, intent before every send;
//! - [`state`]: the run's state replayed from the journal, and the datasets
//!   (sends.csv, trials.csv) projected from it;
//! - [`dispatch`]: the scheduler loop;
//! - [`files`]: the probe files a run makes and sends;
//! - [`ledger`]: every MD5 ever sent from a corpus, so fresh copies stay fresh;
//! - [`outputs`]: sends.csv, trials.csv and run.json, rewritten atomically;
//! - [`provenance`]: the vantage, revision and id a new run records;
//! - [`endpoint`]: which platform a run measures (the embedded testbed or
//!   an external URL), started and stopped; [`lock`]: one process a run.
//!
//! Runs over time (`--every`, `--if-due`, timers) are [`crate::campaign`]'s.
//!
//! The scheduler is generic over [`Platform`]: [`run`] assembles the real
//! one (an embedded testbed or an external URL, through WebDriver) with
//! [`endpoint`], and [`run_on`] takes any other, such as
//! the simulated platform, whose tests run in virtual time. Ctrl-C lets the
//! sends in flight finish and stops cleanly; `--resume` settles unknown
//! sends by looking at the chats, never by sending again.

mod dispatch;
pub mod endpoint;
pub mod evidence;
mod files;
pub mod journal;
pub mod ledger;
pub mod lock;
mod outputs;
pub mod prepare;
mod provenance;
pub mod state;

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;

use anyhow::Context;

use crate::dataset::manifest::{RunManifest, RunStatus, StopReason};
use crate::dataset::Outcome;
use crate::error::InputError;
use crate::platform::Platform;
use crate::probe::plan::Plan;
use crate::probe::spec::Spec;
use endpoint::{Endpoint, Request};
pub use files::fresh_copy;
use journal::{Journal, Record};
use prepare::{Folder, Prepared};
use state::RunState;

/// What `chatprobe run` was asked.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// The spec (new runs).
    pub spec: Option<PathBuf>,
    /// A run folder to resume.
    pub resume: Option<PathBuf>,
    /// Where run folders go.
    pub results: PathBuf,
    /// An external platform's URL.
    pub base_url: Option<String>,
    /// A policy overriding the spec's (embedded testbed).
    pub policy: Option<PathBuf>,
    /// WebDriver endpoints (none: start chromedriver).
    pub webdriver: Vec<String>,
    /// No progress display.
    pub quiet: bool,
    /// Resume although the embedded testbed's saved state is gone: it then
    /// starts empty (no index, no files), which the user accepts.
    pub fresh_testbed: bool,
    /// Mend a damaged journal or plan.csv before resuming (see
    /// [`evidence`]): never by sending.
    pub repair: bool,
    /// Fault injection for tests: stop as if the process were killed right
    /// after it wrote this many journal records (see
    /// [`journal::Journal::crash_after`]); the run returns
    /// [`journal::SimulatedCrash`].
    pub crash_after: Option<usize>,
    /// Fault injection for tests: the disk fills after this many journal
    /// records of this process (see [`journal::Journal::full_after`]).
    pub disk_full_after: Option<usize>,
}

/// What one run did.
#[derive(Debug, Clone)]
pub struct RunSummary {
    /// The run folder.
    pub dir: PathBuf,
    /// The run id.
    pub run_id: String,
    /// `complete` or `interrupted`.
    pub state: RunStatus,
    /// Why it stopped.
    pub stop_reason: StopReason,
    /// Trials finished / planned.
    pub trials_done: usize,
    /// Trials planned.
    pub trials_planned: usize,
    /// Attempts by outcome.
    pub counts: [(Outcome, u64); 4],
    /// Why the run could not measure (state `failed`): the profile, the
    /// step, the selector and the page, as the platform said.
    pub why: Option<String>,
}

/// Everything a run needs, resolved.
struct Ctx<'a> {
    dir: PathBuf,
    run_id: String,
    spec: &'a Spec,
    manifest: RunManifest,
    regions: HashMap<String, String>,
    poll_ms: u64,
    /// datapackage.json's resources for the files written once at the
    /// start (plan.csv, items.csv), read off them at the first rewrite.
    fixed_resources: Option<Vec<crate::dataset::package::Resource>>,
}

/// `chatprobe run` (one run; `--every` is [`run_every`]): check
/// everything, make the run folder, start the platform the profile and
/// flags name, run, stop the platform.
pub async fn run(
    opts: &RunOptions,
    interrupt: impl Future<Output = ()>,
) -> anyhow::Result<RunSummary> {
    let prep = Prepared::load(opts)?;
    let req = Request {
        base_url: prep.base_url(opts)?,
        policy: opts.policy.clone().or(prep.spec.policy.clone()),
        webdriver: opts.webdriver.clone(),
    };
    let spec_path = prep.spec.path.clone();
    let endpoint = Endpoint::resolve(&prep.profile, &req, || {
        InputError::new(
            &spec_path,
            "the profile is the embedded testbed but no policy is named",
        )
        .key("testbed.policy")
        .hint("add [testbed] policy = \"policies/wechat-2020.toml\", or pass --policy")
    })?;
    // Every credential must resolve (variable set, file present and private)
    // before anything is written.
    for a in &prep.spec.accounts.accounts {
        prep.spec.accounts.password(a, true)?;
    }
    let policy = endpoint.policy().map(|p| p.display().to_string());
    if let (Some(dir), Some(_)) = (&opts.resume, endpoint.policy()) {
        testbed_state_kept(dir, opts.fresh_testbed)?;
    }
    let mut folder = prep.open(opts, endpoint.kind(), policy)?;
    let started = match endpoint
        .start(
            folder.profile.clone(),
            &folder.spec.accounts,
            Some(&folder.dir),
        )
        .await
    {
        Ok(s) => s,
        Err(e) => {
            // Nothing was sent: a new run's folder goes, so that no
            // half-made run is left to list, resume or merge (a resumed
            // run's folder is as it was).
            if !folder.resuming {
                let _ = std::fs::remove_dir_all(&folder.dir);
            }
            return Err(e.into());
        }
    };
    folder.manifest.webdriver =
        serde_json::to_value(started.driver.endpoint_info()).unwrap_or_default();
    let result = drive(
        &mut folder,
        &started.driver,
        endpoint.shown_url(),
        opts,
        interrupt,
    )
    .await;
    started.stop().await;
    result
}

/// Refuse to resume on an embedded testbed whose saved state (the run
/// folder's `testbed/`) is gone once something was sent: the testbed would
/// start with an empty index, and what was seeded, inspected or in flight
/// would be measured against a platform that never saw it. `fresh` is the
/// user's `--fresh-testbed`: they accept that.
fn testbed_state_kept(dir: &std::path::Path, fresh: bool) -> Result<(), InputError> {
    let state = dir.join("testbed");
    if fresh || endpoint::testbed_state_saved(&state) {
        return Ok(());
    }
    let sent = journal::scan(dir)
        .map(|s| s.records().any(|r| matches!(r, Record::Intent { .. })))
        .unwrap_or(false);
    if !sent {
        return Ok(());
    }
    Err(InputError::new(
        &state,
        "the embedded testbed's saved state is gone: resumed without it, the testbed would start with an empty index, and what this run seeded or had in flight would meet a platform that never saw it",
    )
    .hint("restore testbed/ from a copy of the run folder, or pass --fresh-testbed to resume on a testbed that starts empty"))
}

/// A run on a platform the caller built (the simulated platform, or any
/// other [`Platform`]): the same preparation, journal, scheduler and
/// outputs as [`run`], without starting anything. `kind` names the platform
/// in run.json and the journal.
pub async fn run_on<P: Platform>(
    opts: &RunOptions,
    platform: &P,
    kind: &str,
    interrupt: impl Future<Output = ()>,
) -> anyhow::Result<RunSummary> {
    let prep = Prepared::load(opts)?;
    let mut folder = prep.open(opts, kind, None)?;
    drive(&mut folder, platform, None, opts, interrupt).await
}

/// What makes one run: [`Real`] starts the platform the profile and flags
/// name ([`run`]); [`On`] runs on a platform the caller built
/// ([`run_on`]). Runs over time (`--every`, `--if-due`) take one, so that
/// a campaign runs on the simulated platform in virtual time as it runs on
/// a browser in real time.
pub trait Launcher {
    /// One run (or resume), as `opts` says.
    fn launch(
        &self,
        opts: &RunOptions,
        interrupt: impl Future<Output = ()>,
    ) -> impl Future<Output = anyhow::Result<RunSummary>>;
}

/// The platform the profile and flags name, started for each run.
#[derive(Debug, Clone, Copy, Default)]
pub struct Real;

impl Launcher for Real {
    fn launch(
        &self,
        opts: &RunOptions,
        interrupt: impl Future<Output = ()>,
    ) -> impl Future<Output = anyhow::Result<RunSummary>> {
        run(opts, interrupt)
    }
}

/// A platform the caller built, named `kind` in run.json and the journal.
#[derive(Debug)]
pub struct On<'a, P> {
    /// The platform.
    pub platform: &'a P,
    /// Its name in run.json (`platform`).
    pub kind: &'a str,
}

impl<P: Platform> Launcher for On<'_, P> {
    fn launch(
        &self,
        opts: &RunOptions,
        interrupt: impl Future<Output = ()>,
    ) -> impl Future<Output = anyhow::Result<RunSummary>> {
        run_on(opts, self.platform, self.kind, interrupt)
    }
}

/// Replay the journal, record the start, run the scheduler, record the
/// stop and write the outputs.
async fn drive<P: Platform>(
    folder: &mut Folder,
    platform: &P,
    base_url: Option<String>,
    opts: &RunOptions,
    interrupt: impl Future<Output = ()>,
) -> anyhow::Result<RunSummary> {
    let dir = folder.dir.clone();
    let mut st = RunState::new(folder.spec.limits.retries);
    if folder.resuming {
        for r in journal::read(&dir)? {
            st.apply(&r);
        }
        // Adaptive experiments ask again for what followed from the
        // replayed outcomes.
        dispatch::grow_plan(&dir, &mut folder.plan, &st)?;
    }
    let mut jr =
        Journal::open(&dir).with_context(|| format!("opening the journal in {}", dir.display()))?;
    jr.crash_after(opts.crash_after);
    jr.full_after(opts.disk_full_after);
    let start = Record::Start {
        at: crate::clock::now(),
        run_id: folder.run_id.clone(),
        resume: folder.resuming,
        platform: folder.manifest.platform.clone(),
        base_url,
        version: env!("CARGO_PKG_VERSION").into(),
    };
    record(&mut jr, &mut st, &start)?;
    let regions = folder
        .spec
        .accounts
        .accounts
        .iter()
        .map(|a| (a.alias.clone(), a.region.to_string()))
        .collect();
    let mut ctx = Ctx {
        dir: dir.clone(),
        run_id: folder.run_id.clone(),
        spec: &folder.spec,
        manifest: folder.manifest.clone(),
        regions,
        poll_ms: folder.profile.timeouts.poll_ms,
        fixed_resources: None,
    };
    let plan: &mut Plan = &mut folder.plan;
    let executed = dispatch::execute(
        &mut ctx, plan, platform, &mut st, &mut jr, opts.quiet, interrupt,
    )
    .await;
    let (reason, why) = match executed {
        Ok(v) => v,
        // A simulated kill leaves the journal as a kill would.
        Err(e) if crashed(&e) => return Err(e),
        Err(e) => {
            // An error of its own (a full disk, a file it could not
            // write): give up the reserved space, record the stop and
            // the outputs as far as they go, and say how to go on.
            jr.free_reserve();
            let stop = Record::Stop {
                at: crate::clock::now(),
                reason: StopReason::Error,
            };
            if record(&mut jr, &mut st, &stop).is_ok() {
                let _ = outputs::write_outputs(&mut ctx, plan, &st, Some(StopReason::Error));
            }
            return Err(e.context(format!(
                "run {} stopped (continue with `chatprobe run --resume {}` once this is fixed)",
                ctx.run_id,
                dir.display()
            )));
        }
    };
    let stop = Record::Stop {
        at: crate::clock::now(),
        reason,
    };
    record(&mut jr, &mut st, &stop)?;
    // Stopped: the reserved space is not needed until the next start.
    jr.free_reserve();
    if let Some(v) = platform.provenance() {
        ctx.manifest.webdriver = v;
    }
    let done = outputs::write_outputs(&mut ctx, plan, &st, Some(reason))?;
    Ok(RunSummary {
        dir,
        run_id: ctx.run_id.clone(),
        state: ctx.manifest.state,
        stop_reason: reason,
        trials_done: done,
        trials_planned: plan.trials.len(),
        counts: st.counts(),
        why,
    })
}

/// Whether `e` is a simulated kill ([`journal::SimulatedCrash`]).
fn crashed(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .is_some_and(|inner| inner.is::<journal::SimulatedCrash>())
    })
}

/// Journal a record, then apply it: the state never holds what the journal
/// does not.
fn record(jr: &mut Journal, st: &mut RunState, r: &Record) -> std::io::Result<()> {
    jr.append(r)?;
    st.apply(r);
    Ok(())
}
