//! The run stage: `chatprobe run SPEC` carries out a plan on a platform and
//! writes the dataset.
//!
//! - [`journal`]: journal.jsonl, append-only and synced, intent before every send;
//! - [`ledger`]: every MD5 ever sent from a corpus, so fresh copies stay fresh;
//! - [`state`]: the run's state replayed from the journal, and the datasets
//!   (sends.csv, trials.csv) projected from it.
//!
//! The scheduler is one tokio task driving up to `parallel_pairs`
//! transmissions at once (each between accounts no other transmission in
//! flight uses), keeping each design's timings (trial t0 + `at_s`), spacing
//! each account's sends by `sends_per_minute` with jitter, retrying errors,
//! and admitting a new trial only when the work already promised fits before
//! the new trial's next send falls due, so planned offsets stay honest.
//! After every finished trial the datasets and run.json are rewritten
//! (atomically) from the state. Ctrl-C lets the sends in flight finish and
//! stops cleanly; `--resume` settles unknown sends by looking at the chats,
//! never by sending again.

pub mod journal;
pub mod ledger;
pub mod lock;
pub mod state;

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use futures_util::stream::{FuturesUnordered, StreamExt};
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::corpus::hash::{Hash64, PerceptualHasher};
use crate::corpus::transform::{self, Transform};
use crate::corpus::{Format, ItemKind};
use crate::dataset::Outcome;
use crate::error::InputError;
use crate::platform::profile::Profile;
use crate::platform::webdriver::WebDriverPlatform;
use crate::platform::{self, Observation, Payload, Platform, Transmission};
use crate::probe::plan::{Content, Plan, Trial};
use crate::probe::spec::Spec;
use journal::{Journal, Record};
use state::{RunState, TrialStatus};

/// run.json's file name.
pub const RUN_FILE: &str = "run.json";

/// What `chatprobe run` was asked.
#[derive(Debug, Clone)]
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
}

/// run.json: the provenance of a run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunManifest {
    /// "chatprobe".
    pub software: String,
    /// Its version.
    pub version: String,
    /// Git revision it was built from (empty if unknown).
    pub git_revision: String,
    /// The run id (its folder's name).
    pub run_id: String,
    /// The spec's name.
    pub spec_name: String,
    /// The spec's path (absolute).
    pub spec_path: String,
    /// SHA-256 of the spec's text.
    pub spec_sha256: String,
    /// The spec's text.
    pub spec_text: String,
    /// SHA-256 of corpus/index.csv.
    pub corpus_index_sha256: String,
    /// The corpus folder.
    pub corpus: String,
    /// The profile's name.
    pub profile: String,
    /// `embedded-testbed` or `external`.
    pub platform: String,
    /// The policy of an embedded testbed (path).
    pub policy: Option<String>,
    /// WebDriver endpoint kind and timeouts.
    pub webdriver: serde_json::Value,
    /// The plan's seed.
    pub seed: u64,
    /// Limits used.
    pub limits: serde_json::Value,
    /// First start.
    pub started_at: String,
    /// Last stop (empty while running).
    pub finished_at: String,
    /// `running`, `complete` or `interrupted`.
    pub state: String,
    /// Why it stopped last: `complete`, `interrupted`, `max_runtime`.
    pub stop_reason: String,
    /// The process running it (to tell a crash from a live run).
    pub pid: u32,
    /// Trials planned and finished.
    pub trials_planned: usize,
    /// Trials finished.
    pub trials_done: usize,
    /// Sends planned.
    pub sends_planned: usize,
    /// Attempts by outcome.
    pub counts: HashMap<String, u64>,
    /// Times the run stopped before completion.
    pub interrupted: Vec<String>,
    /// Times it was resumed.
    pub resumed: Vec<String>,
    /// Starts that ended without a stop record (killed, crashed, power lost).
    #[serde(default)]
    pub crashes: usize,
}

/// What one run did.
#[derive(Debug, Clone)]
pub struct RunSummary {
    /// The run folder.
    pub dir: PathBuf,
    /// The run id.
    pub run_id: String,
    /// `complete` or `interrupted`.
    pub state: String,
    /// Why it stopped.
    pub stop_reason: String,
    /// Trials finished / planned.
    pub trials_done: usize,
    /// Trials planned.
    pub trials_planned: usize,
    /// Attempts by outcome.
    pub counts: [(Outcome, u64); 4],
}

fn git_revision() -> String {
    option_env!("CHATPROBE_GIT_REVISION")
        .unwrap_or("")
        .to_string()
}

/// A fresh run id: UTC time and the spec's name.
fn new_run_id(results: &Path, name: &str) -> String {
    let base = format!("{}-{name}", Utc::now().format("%Y%m%dT%H%M%SZ"));
    let mut id = base.clone();
    let mut k = 2;
    while results.join(&id).exists() {
        id = format!("{base}-{k}");
        k += 1;
    }
    id
}

/// Everything a run needs, resolved.
struct Ctx<'a> {
    dir: PathBuf,
    run_id: String,
    spec: &'a Spec,
    manifest: RunManifest,
    regions: HashMap<String, String>,
    poll_ms: u64,
}

/// `chatprobe run` (one run; `--every` is [`run_every`]).
pub async fn run(
    opts: &RunOptions,
    interrupt: impl Future<Output = ()>,
) -> anyhow::Result<RunSummary> {
    let resuming = opts.resume.is_some();
    // Held until this function returns: one process per run folder.
    let mut held: Option<lock::RunLock> = None;
    let (spec, prior) = match (&opts.resume, &opts.spec) {
        (Some(dir), _) => {
            let m = read_manifest(dir)?;
            held = Some(lock::RunLock::acquire(
                &dir.join(lock::LOCK_FILE),
                &format!("run {}", m.run_id),
            )?);
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
            return Err(InputError::new("SPEC", "give a probe spec, or --resume RUN_DIR").into())
        }
    };
    let profile = Profile::load(&spec.profile_path)?;
    let mut plan = Plan::build(&spec);
    let limits = &spec.limits;
    // The platform: an external URL (flag, or the one the run started
    // with), the profile's, or an embedded testbed.
    let base_url =
        match &opts.base_url {
            Some(u) => Some(u.clone()),
            None => match prior.as_ref().and_then(|(d, _)| external_url(d)) {
                Some(u) if u.contains("***@") => return Err(InputError::new(
                    "--base-url",
                    "this run's platform URL carried credentials, which chatprobe does not store",
                )
                .hint("pass the URL again with --base-url")
                .into()),
                other => other,
            },
        };
    let embedded = base_url.is_none() && profile.urls.base.is_empty();
    if embedded && !profile.testbed {
        return Err(InputError::new(&profile.path, "no base URL")
            .key("urls.base")
            .hint("set it in the profile or pass --base-url")
            .into());
    }
    let policy = opts.policy.clone().or(spec.policy.clone());
    if embedded {
        let Some(p) = &policy else {
            return Err(InputError::new(
                &spec.path,
                "the profile is the embedded testbed but no policy is named",
            )
            .key("testbed.policy")
            .hint("add [testbed] policy = \"policies/wechat-2020.toml\", or pass --policy")
            .into());
        };
        crate::testbed::Policy::load(p)?;
    }
    for u in &opts.webdriver {
        reachable("--webdriver", u)?;
    }
    if let Some(u) = &base_url {
        reachable("--base-url", u)?;
    }
    if opts.webdriver.is_empty() {
        crate::platform::chromedriver::find()?;
    }
    // Every credential must resolve (variable set, file present and private)
    // before anything is written.
    for a in &spec.accounts.accounts {
        spec.accounts.password(a, true)?;
    }
    // Everything is checked: now make the run folder.
    let (dir, run_id, mut manifest) = match prior {
        Some((dir, m)) => (dir, m.run_id.clone(), m),
        None => {
            std::fs::create_dir_all(&opts.results)
                .with_context(|| format!("creating {}", opts.results.display()))?;
            let run_id = new_run_id(&opts.results, &spec.name);
            let dir = opts.results.join(&run_id);
            std::fs::create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
            held = Some(lock::RunLock::acquire(
                &dir.join(lock::LOCK_FILE),
                &format!("run {run_id}"),
            )?);
            let m = RunManifest {
                software: "chatprobe".into(),
                version: env!("CARGO_PKG_VERSION").into(),
                git_revision: git_revision(),
                run_id: run_id.clone(),
                spec_name: spec.name.clone(),
                spec_path: std::fs::canonicalize(&spec.path)
                    .unwrap_or(spec.path.clone())
                    .display()
                    .to_string(),
                spec_sha256: spec.sha256.clone(),
                spec_text: spec.text.clone(),
                corpus_index_sha256: spec.index_sha256.clone(),
                corpus: spec.corpus.display().to_string(),
                profile: profile.name.clone(),
                platform: if embedded {
                    "embedded-testbed"
                } else {
                    "external"
                }
                .into(),
                policy: if embedded {
                    policy.as_ref().map(|p| p.display().to_string())
                } else {
                    None
                },
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
                }),
                started_at: state::rfc(Some(Utc::now())),
                finished_at: String::new(),
                state: "running".into(),
                stop_reason: String::new(),
                pid: std::process::id(),
                trials_planned: plan.trials.len(),
                trials_done: 0,
                sends_planned: plan.sends(),
                counts: HashMap::new(),
                interrupted: Vec::new(),
                resumed: Vec::new(),
                crashes: 0,
            };
            plan.save(&dir.join("plan.csv"))
                .with_context(|| format!("writing {}", dir.join("plan.csv").display()))?;
            // run.json first of all, so a run killed at any point can be resumed.
            crate::fsutil::atomic_write_bytes(&dir.join(RUN_FILE), &serde_json::to_vec_pretty(&m)?)
                .with_context(|| format!("writing {}", dir.join(RUN_FILE).display()))?;
            (dir, run_id, m)
        }
    };
    manifest.pid = std::process::id();
    manifest.state = "running".into();
    // Replay the journal.
    let mut st = RunState::new(limits.retries);
    if resuming {
        for r in journal::read(&dir)? {
            st.apply(&r);
        }
        // Adaptive experiments ask again for what followed from the
        // replayed outcomes.
        grow_plan(&dir, &mut plan, &st)?;
    }
    // Start the platform.
    let testbed = if embedded {
        let mut cfg =
            crate::testbed::Config::new(policy.as_ref().expect("checked"), &spec.accounts_path);
        cfg.truth = Some(dir.join("truth.jsonl"));
        // Its state lives in the run folder, so a resume after a crash
        // finds the platform as the crash left it.
        cfg.state = Some(dir.join("testbed"));
        cfg.no_ids = profile.testbed_no_ids;
        Some(crate::testbed::Testbed::start(&cfg).await?)
    } else {
        None
    };
    let url = match (&testbed, &base_url) {
        (Some(tb), _) => tb.url(),
        (None, Some(u)) => u.clone(),
        (None, None) => profile.urls.base.clone(),
    };
    let wd = WebDriverPlatform::new(
        profile.clone(),
        spec.accounts.clone(),
        &url,
        &opts.webdriver,
        embedded,
    )?;
    manifest.webdriver = serde_json::to_value(wd.endpoint_info()).unwrap_or_default();
    let mut jr =
        Journal::open(&dir).with_context(|| format!("opening the journal in {}", dir.display()))?;
    let start = Record::Start {
        at: Utc::now(),
        run_id: run_id.clone(),
        resume: resuming,
        platform: if embedded {
            "embedded-testbed"
        } else {
            "external"
        }
        .into(),
        base_url: if embedded {
            None
        } else {
            Some(crate::redact::url(&url))
        },
        version: env!("CARGO_PKG_VERSION").into(),
    };
    record(&mut jr, &mut st, &start)?;
    let regions = spec
        .accounts
        .accounts
        .iter()
        .map(|a| (a.alias.clone(), a.region.to_string()))
        .collect();
    let mut ctx = Ctx {
        dir: dir.clone(),
        run_id: run_id.clone(),
        spec: &spec,
        manifest,
        regions,
        poll_ms: profile.timeouts.poll_ms,
    };
    let result = execute(
        &mut ctx, &mut plan, &wd, &mut st, &mut jr, opts.quiet, interrupt,
    )
    .await;
    wd.close().await;
    if let Some(tb) = testbed {
        tb.stop().await;
    }
    let reason = result?;
    let stop = Record::Stop {
        at: Utc::now(),
        reason: reason.clone(),
    };
    record(&mut jr, &mut st, &stop)?;
    let done = write_outputs(&mut ctx, &plan, &st, Some(&reason))?;
    drop(held);
    Ok(RunSummary {
        dir,
        run_id,
        state: ctx.manifest.state.clone(),
        stop_reason: reason,
        trials_done: done,
        trials_planned: plan.trials.len(),
        counts: st.counts(),
    })
}

/// Check, before anything is written, that `url` parses and something
/// listens at its host and port.
fn reachable(flag: &str, url: &str) -> Result<(), InputError> {
    let shown = crate::redact::url(url);
    let u = url::Url::parse(url)
        .map_err(|e| InputError::new(flag, format!("`{shown}` is not a URL: {e}")))?;
    let addrs: Vec<std::net::SocketAddr> = u
        .socket_addrs(|| None)
        .map_err(|e| InputError::new(flag, format!("`{shown}`: {e}")))?;
    let ok = addrs
        .iter()
        .any(|a| std::net::TcpStream::connect_timeout(a, Duration::from_secs(3)).is_ok());
    if ok {
        Ok(())
    } else {
        Err(InputError::new(flag, format!("nothing answers at {shown}"))
            .hint("start the endpoint first, or fix the URL"))
    }
}

fn external_url(dir: &Path) -> Option<String> {
    journal::read(dir).ok()?.into_iter().find_map(|r| match r {
        Record::Start {
            resume: false,
            base_url,
            ..
        } => base_url,
        _ => None,
    })
}

/// Read a run folder's run.json.
pub fn read_manifest(dir: &Path) -> Result<RunManifest, InputError> {
    let p = dir.join(RUN_FILE);
    let text = std::fs::read_to_string(&p).map_err(|e| {
        InputError::new(&p, format!("cannot read: {e}"))
            .hint("pass a run folder made by `chatprobe run` (results/<run-id>)")
    })?;
    serde_json::from_str(&text)
        .map_err(|e| InputError::new(&p, format!("malformed run.json: {e}")).line(e.line() as u64))
}

/// Rewrite sends.csv, trials.csv and run.json from the state; returns the
/// number of finished trials.
fn write_outputs(
    ctx: &mut Ctx,
    plan: &Plan,
    st: &RunState,
    stop: Option<&str>,
) -> anyhow::Result<usize> {
    let sends = st.send_rows(&ctx.run_id, plan, &ctx.regions);
    let trials = st.trial_rows(&ctx.run_id, plan);
    write_csv(
        &ctx.dir.join("sends.csv"),
        &crate::dataset::SEND_COLUMNS,
        &sends,
    )?;
    write_csv(
        &ctx.dir.join("trials.csv"),
        &crate::dataset::TRIAL_COLUMNS,
        &trials,
    )?;
    let m = &mut ctx.manifest;
    m.trials_done = trials.len();
    m.trials_planned = plan.trials.len();
    m.sends_planned = plan.sends();
    m.counts = st
        .counts()
        .iter()
        .map(|(o, n)| (format!("{o:?}").to_lowercase(), *n))
        .collect();
    // From the journal, so a start killed before it wrote run.json counts.
    m.resumed = st
        .starts
        .iter()
        .filter(|s| s.1)
        .map(|s| state::rfc(Some(s.0)))
        .collect();
    m.interrupted = st
        .stops
        .iter()
        .filter(|s| s.1 != "complete")
        .map(|s| state::rfc(Some(s.0)))
        .collect();
    m.crashes = st
        .starts
        .windows(2)
        .filter(|w| !st.stops.iter().any(|s| s.0 >= w[0].0 && s.0 <= w[1].0))
        .count();
    if let Some(reason) = stop {
        m.finished_at = state::rfc(Some(Utc::now()));
        m.stop_reason = reason.to_string();
        m.state = if reason == "complete" {
            "complete"
        } else {
            "interrupted"
        }
        .into();
    }
    let json = serde_json::to_vec_pretty(m)?;
    crate::fsutil::atomic_write_bytes(&ctx.dir.join(RUN_FILE), &json)
        .with_context(|| format!("writing {}", ctx.dir.join(RUN_FILE).display()))?;
    Ok(trials.len())
}

/// Write rows atomically; with no rows, the header alone (so the file still
/// loads).
fn write_csv<T: Serialize>(path: &Path, header: &[&str], rows: &[T]) -> anyhow::Result<()> {
    crate::fsutil::atomic_write(path, |f| -> anyhow::Result<()> {
        let mut w = csv::WriterBuilder::new().from_writer(f);
        if rows.is_empty() {
            w.write_record(header)?;
        }
        for r in rows {
            w.serialize(r)?;
        }
        w.flush()?;
        Ok(())
    })
    .with_context(|| format!("writing {}", path.display()))
}

/// One trial in the scheduler.
struct Active {
    idx: usize,
    t0: Option<DateTime<Utc>>,
    not_before: DateTime<Utc>,
    busy: bool,
}

type Done = (
    usize,
    usize,
    u32,
    Observation,
    Vec<String>,
    Option<&'static str>,
);

/// `settled` of an outcome found in the chats after a harness error.
const SETTLED_AFTER_ERROR: &str = "after_error";

#[allow(clippy::too_many_arguments)]
async fn execute<P: Platform>(
    ctx: &mut Ctx<'_>,
    plan: &mut Plan,
    wd: &P,
    st: &mut RunState,
    jr: &mut Journal,
    quiet: bool,
    interrupt: impl Future<Output = ()>,
) -> anyhow::Result<String> {
    let spec = ctx.spec;
    let lim = &spec.limits;
    let limits = platform::Limits {
        deliver_timeout: Duration::from_secs_f64(lim.deliver_timeout_s),
        after_sentinel: Duration::from_secs_f64(lim.after_sentinel_s),
        poll: Duration::from_millis(ctx.poll_ms),
    };
    // How long a send whose outcome an error left unknown is looked for.
    let settle_budget = Duration::from_secs_f64((4.0 * lim.deliver_timeout_s).max(60.0));
    let mut ledger = ledger::Ledger::open(&spec.corpus)?;
    let hasher = PerceptualHasher::new();
    let mut rng = rand_chacha::ChaCha8Rng::from_os_rng();
    std::fs::create_dir_all(ctx.dir.join("files/sent"))?;
    // Log every account in at once rather than one by one on first use.
    let mut aliases: Vec<&str> = plan
        .trials
        .iter()
        .flat_map(|t| t.sends.iter())
        .flat_map(|s| [s.chat.from.as_str(), s.chat.observer.as_str()])
        .collect();
    aliases.sort_unstable();
    aliases.dedup();
    futures_util::future::join_all(aliases.iter().map(|a| wd.ensure_session(a))).await;
    // Settle what a crash left open.
    let mut active: Vec<Active> = Vec::new();
    let mut pending: VecDeque<usize> = VecDeque::new();
    for (i, t) in plan.trials.iter().enumerate() {
        match st.trial_status(t) {
            TrialStatus::Done => {}
            TrialStatus::Pending(s, attempt) => {
                let tr = transmission(ctx, st, t, s, attempt, lim.sentinel)?;
                let nonce = attempt_nonce(st, &t.sends[s].send_id, attempt);
                let send_id = &t.sends[s].send_id;
                let r = match platform::settle_patiently(wd, &tr, &limits, &nonce, settle_budget)
                    .await
                {
                    Ok(None) => Record::NotSent {
                        send_id: send_id.clone(),
                        attempt,
                        at: Utc::now(),
                    },
                    Ok(Some(o)) => outcome_record(
                        send_id,
                        attempt,
                        &o,
                        Some(if o.sentinel_observed_at.is_some() {
                            "sentinel"
                        } else {
                            "history"
                        }),
                    ),
                    // Whether it went out is unknown: never send it again.
                    Err(e) => outcome_record(send_id, attempt, &e, Some(state::UNSETTLED)),
                };
                record(jr, st, &r)?;
                if st.trial_status(t) != TrialStatus::Done {
                    active.push(Active {
                        idx: i,
                        t0: st.t0(t),
                        not_before: Utc::now(),
                        busy: false,
                    });
                }
            }
            TrialStatus::Next(..) => {
                if st.started(t) {
                    active.push(Active {
                        idx: i,
                        t0: st.t0(t),
                        not_before: Utc::now(),
                        busy: false,
                    });
                } else {
                    pending.push_back(i);
                }
            }
        }
    }
    // A trial settled just now may be one an adaptive experiment follows up.
    pending.extend(grow_plan(&ctx.dir, plan, st)?);
    let mut done_trials = write_outputs(ctx, plan, st, None)?;
    let total = plan.trials.len();
    // Our own ETA (below): a rate of finished trials says little while
    // trials wait out their delays side by side.
    let pb = crate::fsutil::progress_bar_with(
        total as u64,
        "trials [{elapsed_precise}] {bar:30} {pos}/{len} · {msg}",
        quiet,
    );
    pb.set_position(done_trials as u64);
    let counts_msg = |st: &RunState| {
        let c = st.counts();
        format!(
            "{} delivered, {} blocked, {} lost, {} error",
            c[0].1, c[1].1, c[2].1, c[3].1
        )
    };
    pb.set_message(counts_msg(st));
    let gap_s = 60.0 / lim.sends_per_minute;
    let eta = |plan: &Plan,
               st: &RunState,
               active: &[Active],
               pending: &VecDeque<usize>,
               est: f64|
     -> String {
        let now = Utc::now();
        let mut sends = 0usize;
        let mut floor = 0.0f64;
        let mut per_account: HashMap<String, (usize, usize)> = HashMap::new();
        let mut count = |t: &'_ Trial, from: usize| {
            for s in &t.sends[from..] {
                let e = per_account.entry(s.chat.from.clone()).or_default();
                e.0 += 1;
                e.1 += 1;
                per_account.entry(s.chat.observer.clone()).or_default().0 += 1;
            }
            t.sends.len() - from
        };
        for a in active {
            let t = &plan.trials[a.idx];
            if let TrialStatus::Next(i, _) | TrialStatus::Pending(i, _) = st.trial_status(t) {
                sends += count(t, i);
                let last = due_at(a, t, t.sends.len() - 1);
                if a.t0.is_some() {
                    floor = floor.max((last - now).num_milliseconds() as f64 / 1000.0);
                }
            }
        }
        // The last trial to start still has its whole span ahead of it.
        let mut tail = 0.0f64;
        for &i in pending {
            let t = &plan.trials[i];
            sends += count(t, 0);
            tail = tail.max(t.span_s());
        }
        // The busiest account: its sends one at a time, spaced by the rate limit.
        let busiest = per_account
            .values()
            .map(|(busy, sent)| (*busy as f64 * est).max(*sent as f64 * gap_s))
            .fold(0.0, f64::max);
        let secs =
            ((sends as f64 * est / lim.parallel_pairs as f64).max(busiest) + tail).max(floor);
        format!("eta ~{}m{:02}s", secs as u64 / 60, secs as u64 % 60)
    };
    pb.set_message(format!(
        "{} · {}",
        counts_msg(st),
        eta(plan, st, &active, &pending, 2.0)
    ));
    let began = tokio::time::Instant::now();
    let deadline = began + Duration::from_secs_f64(lim.max_runtime_s);
    let min_gap = chrono::Duration::milliseconds((60_000.0 / lim.sends_per_minute) as i64);
    let mut next_allowed: HashMap<String, DateTime<Utc>> = HashMap::new();
    let mut busy_accounts: HashSet<String> = HashSet::new();
    let mut est_send_s = 2.0f64;
    let mut inflight: FuturesUnordered<std::pin::Pin<Box<dyn Future<Output = Done> + '_>>> =
        FuturesUnordered::new();
    let mut interrupt = std::pin::pin!(interrupt);
    let mut stopping: Option<String> = None;
    loop {
        let now = Utc::now();
        if stopping.is_none() && tokio::time::Instant::now() >= deadline {
            stopping = Some("max_runtime".into());
        }
        if stopping.is_none() {
            // Dispatch what is due, then admit new trials into idle time.
            loop {
                if inflight.len() >= lim.parallel_pairs as usize {
                    break;
                }
                let free = |t: &Trial,
                            s: usize,
                            busy: &HashSet<String>,
                            na: &HashMap<String, DateTime<Utc>>| {
                    let c = &t.sends[s].chat;
                    !busy.contains(&c.from)
                        && !busy.contains(&c.observer)
                        && na.get(&c.from).is_none_or(|at| *at <= now)
                };
                // Due sends of active trials, earliest first.
                let mut best: Option<(usize, DateTime<Utc>)> = None;
                for (k, a) in active.iter().enumerate() {
                    if a.busy {
                        continue;
                    }
                    let t = &plan.trials[a.idx];
                    let TrialStatus::Next(s, _) = st.trial_status(t) else {
                        continue;
                    };
                    let due = due_at(a, t, s).max(a.not_before);
                    if due <= now
                        && free(t, s, &busy_accounts, &next_allowed)
                        && best.is_none_or(|b| due < b.1)
                    {
                        best = Some((k, due));
                    }
                }
                let pick = if let Some((k, _)) = best {
                    Some(k)
                } else {
                    // Admit: the first of the next few pending trials whose
                    // first send can go now and whose timings the promised
                    // work leaves room for.
                    let promised: f64 = active
                        .iter()
                        .map(|a| {
                            let t = &plan.trials[a.idx];
                            match st.trial_status(t) {
                                TrialStatus::Next(s, _) | TrialStatus::Pending(s, _) => {
                                    (t.sends.len() - s) as f64
                                }
                                TrialStatus::Done => 0.0,
                            }
                        })
                        .sum::<f64>()
                        * est_send_s
                        / lim.parallel_pairs as f64;
                    let mut admitted = None;
                    for (q, &i) in pending.iter().enumerate().take(8) {
                        let t = &plan.trials[i];
                        let gap = t
                            .sends
                            .iter()
                            .map(|s| s.at_s)
                            .filter(|x| *x > 0.0)
                            .fold(f64::INFINITY, f64::min);
                        let room = active.is_empty() || t.sends.len() == 1 || promised <= gap;
                        if room && free(t, 0, &busy_accounts, &next_allowed) {
                            admitted = Some(q);
                            break;
                        }
                    }
                    admitted.map(|q| {
                        let i = pending.remove(q).expect("index in range");
                        active.push(Active {
                            idx: i,
                            t0: None,
                            not_before: now,
                            busy: false,
                        });
                        active.len() - 1
                    })
                };
                let Some(k) = pick else { break };
                let a = &mut active[k];
                let t = &plan.trials[a.idx];
                let TrialStatus::Next(s, attempt) = st.trial_status(t) else {
                    break;
                };
                let send = &t.sends[s];
                // Make the file and write the intent before anything is sent.
                let file_key = prepare_file(ctx, st, jr, &mut ledger, &hasher, t, &send.content)
                    .with_context(|| format!("making the probe file of {}", send.send_id))?;
                let nonce = new_nonce(&ctx.run_id, &send.send_id, attempt);
                let scheduled = if s == 0 { now } else { due_at(a, t, s) };
                let text = match &send.content {
                    Content::Text(words) => Some(platform::identity::tagged(words, &nonce)),
                    _ => None,
                };
                let intent = Record::Intent {
                    send_id: send.send_id.clone(),
                    trial_id: t.trial_id.clone(),
                    attempt,
                    at: Utc::now(),
                    scheduled_at: scheduled,
                    file: file_key.clone(),
                    text: text.clone(),
                    nonce: nonce.clone(),
                };
                if let Some(k) = &file_key {
                    let f = &st.files[&(t.trial_id.clone(), k.clone())];
                    ledger.record(&f.md5, &send.item_id, &ctx.run_id, &send.send_id)?;
                }
                record(jr, st, &intent)?;
                let tr = transmission(ctx, st, t, s, attempt, lim.sentinel)?;
                let c = &send.chat;
                let locked = vec![c.from.clone(), c.observer.clone()];
                for l in &locked {
                    busy_accounts.insert(l.clone());
                }
                let jitter = 1.0 + lim.jitter * rng.random::<f64>();
                next_allowed.insert(
                    c.from.clone(),
                    now + chrono::Duration::milliseconds(
                        (min_gap.num_milliseconds() as f64 * jitter) as i64,
                    ),
                );
                a.busy = true;
                let idx = a.idx;
                inflight.push(Box::pin(async move {
                    let started = std::time::Instant::now();
                    let obs = platform::transmit_checked(wd, &tr, &limits, &nonce).await;
                    // Never retry blind: a probe that may have gone out is
                    // first looked for in the chats (the accounts stay
                    // locked meanwhile).
                    let (mut obs, after) =
                        platform::settle_after_error(wd, &tr, &limits, &nonce, obs, settle_budget)
                            .await;
                    obs.waited_ms = started.elapsed().as_millis() as u64;
                    let settled = match after {
                        platform::AfterError::NotSent => None,
                        platform::AfterError::Settled => Some(SETTLED_AFTER_ERROR),
                        platform::AfterError::Unsettled => Some(state::UNSETTLED),
                    };
                    (idx, s, attempt, obs, locked, settled)
                }));
            }
            if active.is_empty() && pending.is_empty() && inflight.is_empty() {
                break;
            }
        } else if inflight.is_empty() {
            break;
        }
        // Wait for a send to finish, the next due time, or a stop.
        let wake = Duration::from_millis(250);
        tokio::select! {
            Some((idx, s, attempt, obs, locked, settled)) = inflight.next(), if !inflight.is_empty() => {
                for l in &locked {
                    busy_accounts.remove(l);
                }
                // The limit counts between probes as the platform got them.
                let from = &plan.trials[idx].sends[s].chat.from;
                let base = obs.confirmed_at.unwrap_or_else(Utc::now);
                let jitter = 1.0 + lim.jitter * rng.random::<f64>();
                let next = base + chrono::Duration::milliseconds((min_gap.num_milliseconds() as f64 * jitter) as i64);
                let e = next_allowed.entry(from.clone()).or_insert(next);
                *e = (*e).max(next);
                est_send_s = 0.8 * est_send_s + 0.2 * (obs.waited_ms as f64 / 1000.0);
                let t = &plan.trials[idx];
                let r = outcome_record(&t.sends[s].send_id, attempt, &obs, settled);
                record(jr, st, &r)?;
                let k = active.iter().position(|a| a.idx == idx).expect("active trial");
                active[k].busy = false;
                if s == 0 && obs.outcome != platform::Outcome::Error {
                    active[k].t0 = obs.sent_at;
                }
                if obs.outcome == platform::Outcome::Error {
                    // Back off: a platform that restarts, or a browser that
                    // is being rebuilt, needs a moment; 2, 4, 8 … 60 s.
                    let wait = 2i64.saturating_pow(attempt.min(6)).min(60);
                    active[k].not_before = Utc::now() + chrono::Duration::seconds(wait);
                }
                if st.trial_status(t) == TrialStatus::Done {
                    active.remove(k);
                    // An adaptive experiment may follow up on this trial.
                    pending.extend(grow_plan(&ctx.dir, plan, st)?);
                    pb.set_length(plan.trials.len() as u64);
                    done_trials = write_outputs(ctx, plan, st, None)?;
                    pb.set_position(done_trials as u64);
                }
                pb.set_message(format!("{} · {}", counts_msg(st), eta(plan, st, &active, &pending, est_send_s)));
            }
            _ = &mut interrupt, if stopping.is_none() => {
                stopping = Some("interrupted".into());
                pb.println("stopping: letting the sends in flight finish");
            }
            _ = tokio::time::sleep(wake) => {}
        }
    }
    pb.finish_and_clear();
    Ok(stopping.unwrap_or_else(|| "complete".into()))
}

/// Add the trials adaptive experiments ask for after what `st` holds, and
/// rewrite the run's plan.csv if any were added. Returns their indices.
fn grow_plan(dir: &Path, plan: &mut Plan, st: &RunState) -> anyhow::Result<Vec<usize>> {
    let added = plan.grow(|x, t| st.finished_verdict(x, t));
    if !added.is_empty() {
        let path = dir.join("plan.csv");
        plan.save(&path)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(added)
}

/// Journal a record, then apply it: the state never holds what the journal
/// does not.
fn record(jr: &mut Journal, st: &mut RunState, r: &Record) -> std::io::Result<()> {
    jr.append(r)?;
    st.apply(r);
    Ok(())
}

fn due_at(a: &Active, t: &Trial, s: usize) -> DateTime<Utc> {
    match a.t0 {
        Some(t0) => t0 + chrono::Duration::milliseconds((t.sends[s].at_s * 1000.0) as i64),
        // Not started yet: due at once (callers take the max with not_before).
        None => DateTime::<Utc>::MIN_UTC,
    }
}

fn new_nonce(run_id: &str, send_id: &str, attempt: u32) -> String {
    let t = Utc::now().timestamp_nanos_opt().unwrap_or_default();
    crate::corpus::hash::sha256_hex(format!("{run_id}|{send_id}|{attempt}|{t}").as_bytes())[..12]
        .to_string()
}

fn attempt_nonce(st: &RunState, send_id: &str, attempt: u32) -> String {
    st.attempts
        .get(send_id)
        .and_then(|v| v.iter().find(|a| a.attempt == attempt))
        .map(|a| a.nonce.clone())
        .unwrap_or_default()
}

fn outcome_record(send_id: &str, attempt: u32, o: &Observation, settled: Option<&str>) -> Record {
    Record::Outcome {
        send_id: send_id.to_string(),
        attempt,
        at: Utc::now(),
        outcome: o.outcome,
        failure: o.failure.map(|f| f.to_string()),
        error: o.error.clone(),
        sent_at: o.sent_at,
        observed_at: o.observed_at,
        sentinel_observed_at: o.sentinel_observed_at,
        latency_ms: o.latency_ms,
        match_distance: o.match_distance,
        match_margin: o.match_margin,
        settled: settled.map(str::to_string),
    }
}

/// The transmission of attempt `attempt` of send `s` (its intent is in the state).
fn transmission(
    ctx: &Ctx,
    st: &RunState,
    t: &Trial,
    s: usize,
    attempt: u32,
    sentinel: bool,
) -> anyhow::Result<Transmission> {
    let send = &t.sends[s];
    let a = st
        .attempts
        .get(&send.send_id)
        .and_then(|v| v.iter().find(|a| a.attempt == attempt))
        .ok_or_else(|| anyhow::anyhow!("no intent for {} attempt {attempt}", send.send_id))?;
    let payload = match (&a.file, &a.text) {
        (_, Some(text)) => Payload::Text(text.clone()),
        (Some(k), None) => {
            let f = st
                .files
                .get(&(t.trial_id.clone(), k.clone()))
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "journal names file `{k}` of {} but never made it",
                        t.trial_id
                    )
                })?;
            Payload::File(stage(&ctx.dir, &f.path, &a.nonce)?)
        }
        (None, None) => anyhow::bail!("intent of {} has neither file nor text", send.send_id),
    };
    Ok(Transmission {
        from: send.chat.from.clone(),
        to: send.chat.target.clone(),
        observer: send.chat.observer.clone(),
        payload,
        sentinel,
    })
}

/// The copy of a probe file sent by one attempt, under a name no other
/// attempt uses (the marker the receiver's chat is searched for). Same bytes,
/// so the same MD5.
fn stage(dir: &Path, rel: &str, nonce: &str) -> anyhow::Result<PathBuf> {
    let src = dir.join(rel);
    let sent = dir.join("files/sent");
    let stem = src.file_stem().and_then(|s| s.to_str()).unwrap_or("probe");
    let ext = src.extension().and_then(|s| s.to_str()).unwrap_or("bin");
    let dst = sent.join(format!("{stem}-{nonce}.{ext}"));
    if !dst.is_file() {
        std::fs::create_dir_all(&sent)?;
        if std::fs::hard_link(&src, &dst).is_err() {
            std::fs::copy(&src, &dst).with_context(|| format!("copying {}", src.display()))?;
        }
    }
    Ok(dst)
}

fn seed_of(run_id: &str, trial: &str, key: &str, round: u32) -> u64 {
    let h = crate::corpus::hash::sha256_hex(format!("{run_id}|{trial}|{key}|{round}").as_bytes());
    u64::from_str_radix(&h[..16], 16).expect("hex")
}

/// A fresh copy of `orig` whose MD5 the ledger has never seen: seeds are
/// drawn from `seed(round)` for rounds 0, 1, … until one gives an unsent
/// MD5; after 32 sent ones it gives up. Returns bytes, format and seed.
pub fn fresh_copy(
    ledger: &ledger::Ledger,
    path: &Path,
    orig: &[u8],
    format: Format,
    seed: impl Fn(u32) -> u64,
) -> anyhow::Result<(Vec<u8>, Format, u64)> {
    for round in 0..32 {
        let s = seed(round);
        let (b, f) = transform::apply(Transform::Fresh, path, orig, format, s)?;
        if !ledger.contains(&crate::corpus::hash::md5_hex(&b)) {
            return Ok((b, f, s));
        }
    }
    anyhow::bail!(
        "32 fresh copies of {} were all in the ledger {}: refusing to send a copy the platform may have seen",
        path.display(),
        ledger.path().display()
    )
}

/// Make the file `content` of trial `t` (once per trial and key), journal
/// it, and return its key; `None` for texts.
fn prepare_file(
    ctx: &Ctx,
    st: &mut RunState,
    jr: &mut Journal,
    ledger: &mut ledger::Ledger,
    hasher: &PerceptualHasher,
    t: &Trial,
    content: &Content,
) -> anyhow::Result<Option<String>> {
    let key = match content {
        Content::Text(_) => return Ok(None),
        Content::Fresh(c) => format!("fresh:{c}"),
        Content::Transformed(c, tr) => format!("{tr} of fresh:{c}"),
        Content::Original(id) => format!("original:{id}"),
    };
    if st.files.contains_key(&(t.trial_id.clone(), key.clone())) {
        return Ok(Some(key));
    }
    let corpus = &ctx.spec.corpus;
    let (bytes, format, item, transform, variant_id) = match content {
        Content::Fresh(_) => {
            let item = t.item.as_ref().expect("file trials have an item");
            let path = crate::corpus::entry_path(corpus, &item.item.path)?;
            let orig = crate::corpus::read_file(&path)?;
            let format = Format::from_path(&path)
                .ok_or_else(|| InputError::new(&path, "unsupported file type"))?;
            let (b, f, seed) = fresh_copy(ledger, &path, &orig, format, |round| {
                seed_of(&ctx.run_id, &t.trial_id, &key, round)
            })?;
            let vid = crate::corpus::variants::variant_id(&item.item.id, Transform::Fresh, seed);
            (b, f, item, String::new(), vid)
        }
        Content::Transformed(c, tr) => {
            let base_key = format!("fresh:{c}");
            prepare_file(ctx, st, jr, ledger, hasher, t, &Content::Fresh(*c))?;
            let base = st.files[&(t.trial_id.clone(), base_key)].clone();
            let path = ctx.dir.join(&base.path);
            let b = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
            let format = Format::from_path(&path).expect("made by chatprobe");
            let seed = seed_of(&ctx.run_id, &t.trial_id, &key, 0);
            let (out, f) = transform::apply(*tr, &path, &b, format, seed)?;
            let item = t.item.as_ref().expect("file trials have an item");
            let vid = format!("{}--{}", base.variant_id, tr.slug());
            (out, f, item, tr.to_string(), vid)
        }
        Content::Original(id) => {
            let item = if t.item.as_ref().is_some_and(|i| &i.item.id == id) {
                t.item.as_ref().expect("checked")
            } else {
                ctx.spec
                    .items
                    .iter()
                    .find(|i| &i.item.id == id)
                    .expect("the spec checked the corpus has it")
            };
            let path = crate::corpus::entry_path(corpus, &item.item.path)?;
            let b = crate::corpus::read_file(&path)?;
            let format = Format::from_path(&path)
                .ok_or_else(|| InputError::new(&path, "unsupported file type"))?;
            (b, format, item, String::new(), id.clone())
        }
        Content::Text(_) => unreachable!(),
    };
    let md5 = crate::corpus::hash::md5_hex(&bytes);
    let rel = format!(
        "files/{}.{}",
        variant_id.replace([':', '/'], "_"),
        format.extension()
    );
    let full = ctx.dir.join(&rel);
    crate::fsutil::atomic_write_bytes(&full, &bytes)
        .with_context(|| format!("writing {}", full.display()))?;
    let (phash, distance) = if format.kind() == ItemKind::Image {
        let h = hasher.hash_bytes(&full, &bytes)?;
        let d = item
            .index
            .phash
            .as_deref()
            .and_then(Hash64::parse)
            .map(|o| o.distance(h.phash));
        (Some(format!("{:016x}", h.phash.0)), d)
    } else {
        (None, None)
    };
    let r = Record::File {
        trial_id: t.trial_id.clone(),
        key: key.clone(),
        path: rel,
        md5,
        phash,
        phash_distance: distance,
        transform,
        variant_id,
    };
    record(jr, st, &r)?;
    Ok(Some(key))
}

/// Parse a period: `24h`, `30m`, `90s`, `1d`, `1h30m` (humantime).
pub fn parse_period(s: &str) -> Result<Duration, InputError> {
    let d = humantime::parse_duration(s).map_err(|e| {
        InputError::new("--every", format!("`{s}` is not a period: {e}"))
            .hint("e.g. 24h, 12h, 30m, 1d")
    })?;
    if d < Duration::from_secs(1) {
        return Err(InputError::new(
            "--every",
            "the period must be at least 1 s",
        ));
    }
    Ok(d)
}

/// When the next run of `spec_sha`'s campaign is due, given the runs in
/// `results`: now if none ran, or if the last start plus the period has
/// passed (after downtime: one run at once, not one per missed period).
pub fn next_due(results: &Path, spec_name: &str, period: Duration) -> DateTime<Utc> {
    let last = list_runs(results)
        .into_iter()
        .filter(|r| r.spec_name == spec_name)
        .filter_map(|r| DateTime::parse_from_rfc3339(&r.started_at).ok())
        .map(|t| t.with_timezone(&Utc))
        .max();
    match last {
        Some(t) => (t + chrono::Duration::from_std(period).unwrap_or_default()).max(Utc::now()),
        None => Utc::now(),
    }
}

/// `chatprobe run SPEC --every PERIOD [--runs N]`: one run per period, each
/// in its own folder. Returns the summaries.
pub async fn run_every(
    opts: &RunOptions,
    period: Duration,
    runs: Option<u32>,
    interrupt: impl Future<Output = ()>,
) -> anyhow::Result<Vec<RunSummary>> {
    let spec_path = opts
        .spec
        .clone()
        .ok_or_else(|| InputError::new("--every", "needs a probe spec, not --resume"))?;
    let spec = Spec::load(&spec_path)?;
    // One campaign loop per spec name and results folder (two would double
    // every send); each run also locks its own folder.
    std::fs::create_dir_all(&opts.results)
        .with_context(|| format!("creating {}", opts.results.display()))?;
    let _campaign = lock::RunLock::acquire(
        &opts.results.join(format!(".every-{}.lock", spec.name)),
        &format!("the --every campaign `{}`", spec.name),
    )?;
    let mut out = Vec::new();
    let mut interrupt = std::pin::pin!(interrupt);
    let (tx, rx) = tokio::sync::watch::channel(false);
    loop {
        if runs.is_some_and(|n| out.len() as u32 >= n) {
            break;
        }
        let due = next_due(&opts.results, &spec.name, period);
        let wait = (due - Utc::now()).to_std().unwrap_or_default();
        if !wait.is_zero() {
            eprintln!("next run at {}", state::rfc(Some(due)));
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = &mut interrupt => break,
            }
        }
        let mut rx2 = rx.clone();
        let stop = async move {
            let _ = rx2.wait_for(|v| *v).await;
        };
        let r = {
            let fut = run(opts, stop);
            tokio::pin!(fut);
            loop {
                tokio::select! {
                    r = &mut fut => break r,
                    _ = &mut interrupt, if !*tx.borrow() => { let _ = tx.send(true); }
                }
            }
        };
        let r = r?;
        let interrupted = r.state != "complete" && r.stop_reason == "interrupted";
        eprintln!(
            "run {}: {} ({} of {} trials)",
            r.run_id, r.state, r.trials_done, r.trials_planned
        );
        out.push(r);
        if interrupted || *tx.borrow() {
            break;
        }
    }
    Ok(out)
}

/// A row of `chatprobe runs`.
#[derive(Debug, Clone, Serialize)]
pub struct RunListing {
    /// The run id.
    pub run_id: String,
    /// The spec's name.
    pub spec_name: String,
    /// First start.
    pub started_at: String,
    /// Last stop.
    pub finished_at: String,
    /// complete | interrupted | running.
    pub state: String,
    /// Trials done.
    pub trials_done: usize,
    /// Trials planned.
    pub trials_planned: usize,
    /// Attempts by outcome.
    pub delivered: u64,
    /// Blocked.
    pub blocked: u64,
    /// Lost.
    pub lost: u64,
    /// Error.
    pub error: u64,
}

fn alive(pid: u32) -> bool {
    // SAFETY: kill with signal 0 only checks that the process exists.
    pid != 0 && unsafe { libc::kill(pid as i32, 0) } == 0
}

/// Every run under `results`, oldest first.
pub fn list_runs(results: &Path) -> Vec<RunListing> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(results) else {
        return out;
    };
    for e in rd.flatten() {
        let Ok(m) = read_manifest(&e.path()) else {
            continue;
        };
        let state = if m.state == "running" && !(alive(m.pid) && m.pid != std::process::id()) {
            "interrupted".to_string()
        } else {
            m.state.clone()
        };
        let c = |k: &str| m.counts.get(k).copied().unwrap_or(0);
        out.push(RunListing {
            run_id: m.run_id.clone(),
            spec_name: m.spec_name.clone(),
            started_at: m.started_at.clone(),
            finished_at: m.finished_at.clone(),
            state,
            trials_done: m.trials_done,
            trials_planned: m.trials_planned,
            delivered: c("delivered"),
            blocked: c("blocked"),
            lost: c("lost"),
            error: c("error"),
        });
    }
    out.sort_by(|a, b| {
        a.started_at
            .cmp(&b.started_at)
            .then(a.run_id.cmp(&b.run_id))
    });
    out
}
