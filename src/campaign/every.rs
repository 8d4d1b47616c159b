//! `chatprobe run SPEC --every PERIOD`: one run per period, each in its
//! own folder, the next one due a period after the last start (after
//! downtime: one run at once, not one per missed period).

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};

use crate::dataset::manifest::StopReason;
use crate::dataset::runs::list_runs;
use crate::error::InputError;
use crate::probe::spec::Spec;
use crate::run::{lock, state, Launcher, RunOptions, RunSummary};

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

/// The lock one spec's campaign holds (`--every` and scheduled runs alike).
pub fn campaign_lock(results: &Path, spec_name: &str) -> std::path::PathBuf {
    results.join(format!(".every-{spec_name}.lock"))
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
        Some(t) => {
            (t + chrono::Duration::from_std(period).unwrap_or_default()).max(crate::clock::now())
        }
        None => crate::clock::now(),
    }
}

/// `chatprobe run SPEC --every PERIOD [--runs N]`: one run per period, each
/// in its own folder. Returns the summaries.
pub async fn run_every(
    opts: &RunOptions,
    period: Duration,
    runs: Option<u32>,
    launcher: &impl Launcher,
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
        &campaign_lock(&opts.results, &spec.name),
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
        let wait = (due - crate::clock::now()).to_std().unwrap_or_default();
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
            let fut = launcher.launch(opts, stop);
            tokio::pin!(fut);
            loop {
                tokio::select! {
                    r = &mut fut => break r,
                    _ = &mut interrupt, if !*tx.borrow() => { let _ = tx.send(true); }
                }
            }
        };
        let r = r?;
        let interrupted = r.stop_reason == StopReason::Interrupted;
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
