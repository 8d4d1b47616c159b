//! The commands that measure: `run` (one run or `--every`), `send` (one
//! transmission) and `login` (an account's browser profile, by hand).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;

use super::cli::{LoginArgs, PlatformArgs, RunArgs, ScheduleCommand, SendArgs, ViaArg};
use super::shutdown_signal;
use crate::accounts::Accounts;
use crate::campaign::due::{Slots, Tick};
use crate::campaign::install::{self, Backend};
use crate::error::{InputError, Interrupted};
use crate::platform::{
    check_allowed, default_observer, profile, stage_file, transmit, Payload, Platform, Target,
    Transmission, Waits,
};
use crate::run::endpoint::{Endpoint, Request};

pub(super) fn run_spec(args: RunArgs, quiet: bool) -> anyhow::Result<()> {
    if args.results.exists() && !args.results.is_dir() {
        return Err(InputError::new(
            "--results",
            format!("`{}` is a file, not a folder", args.results.display()),
        )
        .hint("name a folder for the run folders (it is made if missing)")
        .into());
    }
    let opts = crate::run::RunOptions {
        spec: args.spec.clone(),
        resume: args.resume.clone(),
        results: args.results.clone(),
        base_url: args.base_url.clone(),
        policy: args.policy.clone(),
        webdriver: args.webdriver.clone(),
        quiet,
        fresh_testbed: args.fresh_testbed,
        repair: args.repair,
        crash_after: None,
        disk_full_after: None,
    };
    let period = args
        .every
        .as_deref()
        .map(crate::campaign::parse_period)
        .transpose()?;
    let Some(platform) = args.platform.as_deref() else {
        return measure(&args, &opts, period, &crate::run::Real);
    };
    let Some(file) = platform.strip_prefix("sim:") else {
        return Err(InputError::new(
            "--platform",
            format!("`{platform}` is no platform chatprobe can simulate"),
        )
        .hint("write sim:FILE")
        .into());
    };
    let spec = match (&opts.spec, &opts.resume) {
        (Some(spec), _) => spec.clone(),
        (None, Some(dir)) => PathBuf::from(crate::dataset::manifest::read_manifest(dir)?.spec_path),
        (None, None) => return Err(InputError::new("run", "needs a spec or --resume").into()),
    };
    let accounts = crate::probe::Spec::load(&spec)?.accounts;
    let config = crate::platform::sim::SimConfig::from_file(std::path::Path::new(file), &accounts)?;
    // The simulated platform's clock is the runtime's: a current-thread
    // runtime keeps it on the thread that made it.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let _guard = rt.enter();
    let sim = crate::platform::sim::SimPlatform::new(config);
    let on = crate::run::On {
        platform: &sim,
        kind: "simulated",
    };
    measure_in(&rt, &args, &opts, period, &on)
}

/// `run`, `--every` or `--if-due` with runs made by `launcher`.
fn measure(
    args: &RunArgs,
    opts: &crate::run::RunOptions,
    period: Option<Duration>,
    launcher: &impl crate::run::Launcher,
) -> anyhow::Result<()> {
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    measure_in(&rt, args, opts, period, launcher)
}

fn measure_in(
    rt: &tokio::runtime::Runtime,
    args: &RunArgs,
    opts: &crate::run::RunOptions,
    period: Option<Duration>,
    launcher: &impl crate::run::Launcher,
) -> anyhow::Result<()> {
    if let Some(p) = args.if_due.as_deref() {
        let slots = Slots::new(crate::campaign::parse_period(p)?, &args.at)?;
        let tick = rt.block_on(async {
            crate::campaign::due::run_if_due(opts, &slots, launcher, super::run_interrupt()).await
        })?;
        let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ");
        return match tick {
            Tick::Busy(who) => {
                println!("{now} skipped: a run of this spec is under way ({who})");
                Ok(())
            }
            Tick::NotDue { last_run, next } => {
                println!(
                    "{now} not due: {last_run} ran since the last slot; next slot {}",
                    next.format("%Y-%m-%dT%H:%M:%SZ")
                );
                Ok(())
            }
            Tick::Ran(s) => report_runs(&[s]),
        };
    }
    let summaries = rt.block_on(async {
        let interrupt = super::run_interrupt();
        match period {
            Some(p) => crate::campaign::run_every(opts, p, args.runs, launcher, interrupt).await,
            None => launcher.launch(opts, interrupt).await.map(|s| vec![s]),
        }
    })?;
    report_runs(&summaries)
}

/// One line per run; an interrupted run says how to continue (exit 130).
fn report_runs(summaries: &[crate::run::RunSummary]) -> anyhow::Result<()> {
    let mut interrupted = false;
    for s in summaries {
        if s.state == crate::dataset::manifest::RunStatus::Complete {
            note_changes(&s.dir);
        }
        let c = &s.counts;
        println!(
            "{}: {} ({} of {} trials; {} delivered, {} blocked, {} lost, {} error)",
            s.dir.display(),
            s.state,
            s.trials_done,
            s.trials_planned,
            c[0].1,
            c[1].1,
            c[2].1,
            c[3].1
        );
        if s.state == crate::dataset::manifest::RunStatus::Failed {
            anyhow::bail!(
                "the run cannot measure: {}\nfix the profile, the accounts or the platform, then continue with: chatprobe run --resume {}",
                s.why.as_deref().unwrap_or("no details"),
                s.dir.display()
            );
        }
        if s.state != crate::dataset::manifest::RunStatus::Complete {
            interrupted = true;
            eprintln!(
                "stopped ({}); continue with: chatprobe run --resume {}",
                s.stop_reason,
                s.dir.display()
            );
        }
    }
    if interrupted {
        return Err(Interrupted.into());
    }
    Ok(())
}

/// After a complete run: what changed since the spec's previous run, into
/// the run's changes.csv and one line on the terminal. A failure here is
/// reported, never fatal: the run's own data is already safe.
fn note_changes(run: &std::path::Path) {
    use crate::analysis::changes;
    let Some(prev) = changes::previous_run(run) else {
        return;
    };
    match changes::compare(&prev, run, crate::stats::Interval::Wilson) {
        Ok(c) => match c.write(&run.join(changes::CHANGES_FILE)) {
            Ok(()) => eprintln!("{}", c.summary()),
            Err(e) => eprintln!("warning: writing {}: {e}", changes::CHANGES_FILE),
        },
        Err(e) => eprintln!("warning: comparing with {}: {e}", prev.display()),
    }
}

/// `chatprobe schedule add|list|remove`.
pub(super) fn schedule(cmd: ScheduleCommand) -> anyhow::Result<()> {
    match cmd {
        ScheduleCommand::Add(a) => {
            let spec = crate::probe::spec::Spec::load(&a.spec)?;
            install::check_name(&spec.name, &a.spec)?;
            let period = crate::campaign::parse_period(&a.every)?;
            let at =
                a.at.clone()
                    .unwrap_or_else(|| chrono::Local::now().format("%H:%M").to_string());
            let slots = Slots::new(period, &at)?;
            let abs = |p: &std::path::Path| {
                std::path::absolute(p).with_context(|| format!("resolving {}", p.display()))
            };
            std::fs::create_dir_all(&a.results)
                .with_context(|| format!("creating {}", a.results.display()))?;
            let o = install::AddOptions {
                spec: abs(&a.spec)?,
                name: spec.name.clone(),
                results: abs(&a.results)?,
                workdir: std::env::current_dir().context("reading the current folder")?,
                exe: std::env::current_exe().context("finding the chatprobe binary")?,
                slots,
                path_env: std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into()),
            };
            let backend = match a.via {
                Some(ViaArg::Cron) => Backend::Cron,
                Some(ViaArg::Systemd) => Backend::Systemd,
                None => Backend::detect(),
            };
            let s = install::add(&o, backend)
                .with_context(|| format!("installing the schedule of {}", a.spec.display()))?;
            let due = slots.next(&chrono::Local::now());
            println!(
                "scheduled {} via {}: every {} at {} (next slot {}, missed slots caught up once); log: {}",
                s.name,
                s.backend.as_str(),
                humantime::format_duration(period),
                slots.at.format("%H:%M"),
                due.with_timezone(&chrono::Local).format("%Y-%m-%d %H:%M %Z"),
                install::log_file(&o.results, &o.name).display()
            );
        }
        ScheduleCommand::List(a) => {
            let all = install::list().context("reading the installed schedules")?;
            if a.json {
                println!("{}", serde_json::to_string_pretty(&all)?);
            } else if all.is_empty() {
                eprintln!("no chatprobe schedules installed");
            } else {
                for s in &all {
                    println!(
                        "{}\t{}\t{}\t{}",
                        s.name,
                        s.backend.as_str(),
                        s.when,
                        s.command
                    );
                }
            }
        }
        ScheduleCommand::Remove(a) => {
            let p = std::path::Path::new(&a.spec);
            let name = if p.is_file() {
                crate::probe::spec::Spec::load(p)?.name
            } else {
                a.spec.clone()
            };
            let removed = install::remove(&name).context("removing the schedule")?;
            if removed.is_empty() {
                return Err(InputError::new(
                    &a.spec,
                    format!("no schedule named `{name}` is installed"),
                )
                .hint("`chatprobe schedule list` shows the installed ones")
                .into());
            }
            for s in removed {
                println!("removed {} ({})", s.name, s.backend.as_str());
            }
        }
    }
    Ok(())
}

pub(super) fn send(args: SendArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    rt.block_on(async {
        let obs = cli_send(&args, shutdown_signal()).await?;
        println!("{}", serde_json::to_string(&obs)?);
        // The harness could not send or watch: not a measurement (exit 1).
        if obs["outcome"] == "error" {
            anyhow::bail!(
                "the send could not be measured ({}): {}",
                obs["failure"].as_str().unwrap_or("unknown"),
                obs["error"].as_str().unwrap_or("no details")
            );
        }
        Ok(())
    })
}

pub(super) fn login(args: LoginArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    rt.block_on(async {
        let dir = cli_login(&args, shutdown_signal()).await?;
        println!("logged in; browser profile kept in {}", dir.display());
        Ok(())
    })
}

/// `chatprobe send`: check everything, start what is needed (the embedded
/// testbed, chromedriver), transmit once, close every session — also when
/// `interrupt` fires first — and return the observation.
async fn cli_send(
    args: &super::cli::SendArgs,
    interrupt: impl std::future::Future<Output = ()>,
) -> anyhow::Result<serde_json::Value> {
    use anyhow::Context;
    let accounts = Accounts::load(&args.accounts)?;
    let profile = profile::Profile::load(&args.profile)?;
    let to = match (&args.to, &args.group) {
        (Some(a), _) => Target::Direct(a.clone()),
        (None, Some(g)) => Target::Group(g.clone()),
        (None, None) => unreachable!("clap requires one"),
    };
    let observer = match (&args.observer, &to) {
        (Some(o), _) => o.clone(),
        (None, Target::Direct(a)) => a.clone(),
        (None, Target::Group(g)) => default_observer(&accounts, g, &args.from).unwrap_or_default(),
    };
    let nonce = crate::corpus::fresh::nonce(
        chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default() as u64,
    )[..12]
        .to_string();
    let staging = tempfile::tempdir().context("creating a staging folder")?;
    let payload = match (&args.text, &args.file) {
        (Some(t), _) => Payload::Text(t.clone()),
        (None, Some(f)) => {
            if !f.is_file() {
                return Err(InputError::new(f, "no such file").into());
            }
            Payload::File(stage_file(f, staging.path(), &nonce)?)
        }
        (None, None) => unreachable!("clap requires one"),
    };
    let t = Transmission {
        from: args.from.clone(),
        to,
        observer,
        payload,
        sentinel: !args.no_sentinel,
    };
    // Refuse before anything starts.
    check_allowed(&accounts, &t)?;
    if !(args.timeout.is_finite() && args.timeout > 0.0) {
        return Err(InputError::new("--timeout", "must be a positive number of seconds").into());
    }
    let limits = Waits {
        deliver_timeout: Duration::from_secs_f64(args.timeout),
        poll: Duration::from_millis(profile.timeouts.poll_ms),
        ..Waits::default()
    };
    let endpoint = resolve(&profile, &args.platform)?;
    let started = endpoint.start(profile, &accounts, None).await?;
    let result = tokio::select! {
        r = transmit(&started.driver, &accounts, &t, &limits, &nonce) => Some(r),
        _ = interrupt => None,
    };
    started.stop().await;
    let obs = result.ok_or(crate::error::Interrupted)??;
    Ok(serde_json::json!({
        "from": t.from,
        "to": t.to.to_string(),
        "observer": t.observer,
        "marker": t.payload.marker(),
        "outcome": obs.outcome,
        "failure": obs.failure,
        "error": obs.error,
        "sent_at": obs.sent_at,
        "observed_at": obs.observed_at,
        "sentinel_observed_at": obs.sentinel_observed_at,
        "latency_ms": obs.latency_ms,
        "match_distance": obs.match_distance,
        "match_margin": obs.match_margin,
    }))
}

/// `chatprobe login ALIAS`: open a (visible) browser on the login page with
/// the alias's persistent profile, run the profile's login steps if it has
/// any, and wait until the logged-in page shows (the person logs in by hand
/// meanwhile). The login stays in the profile folder for later runs.
async fn cli_login(
    args: &super::cli::LoginArgs,
    interrupt: impl std::future::Future<Output = ()>,
) -> anyhow::Result<PathBuf> {
    let accounts = Accounts::load(&args.accounts)?;
    if accounts.get(&args.alias).is_none() {
        return Err(InputError::new(
            &accounts.path,
            format!("account `{}` is not in the accounts file", args.alias),
        )
        .into());
    }
    let mut profile = profile::Profile::load(&args.profile)?;
    let dir = profile.persistent_dir(&args.alias).ok_or_else(|| {
        InputError::new(&profile.path, "the profile keeps no browser profiles")
            .key("browser.profile_dir")
            .hint("set [browser] profile_dir, e.g. \"~/.local/share/chatprobe/browsers\"")
    })?;
    std::fs::create_dir_all(&dir)
        .map_err(|e| InputError::new(&dir, format!("cannot create: {e}")))?;
    profile.timeouts.page_load_ms = (args.wait * 1000.0) as u64;
    let endpoint = resolve(&profile, &args.platform)?;
    let mut started = endpoint.start(profile, &accounts, None).await?;
    started.driver.set_visible(!args.headless);
    eprintln!(
        "log in as `{}` in the browser window; waiting up to {} s",
        args.alias, args.wait
    );
    let r = tokio::select! {
        r = started.driver.ensure_session(&args.alias) => Some(r),
        _ = interrupt => None,
    };
    started.stop().await;
    match r {
        Some(Ok(())) => Ok(dir),
        Some(Err(e)) => Err(anyhow::anyhow!(e).context(format!("logging in `{}`", args.alias))),
        None => Err(crate::error::Interrupted.into()),
    }
}

/// The platform `--base-url`, `--policy` and `--webdriver` name, checked.
fn resolve(profile: &profile::Profile, args: &PlatformArgs) -> Result<Endpoint, InputError> {
    let req = Request {
        base_url: args.base_url.clone(),
        policy: Some(args.policy.clone()),
        webdriver: args.webdriver.clone(),
    };
    Endpoint::resolve(profile, &req, || {
        InputError::new("--policy", "the embedded testbed needs a policy")
    })
}
