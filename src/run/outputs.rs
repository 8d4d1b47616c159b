//! The run's outputs, rewritten (atomically) from the state after finished
//! trials (at most every 2 s, so the cost stays linear in the run) and at
//! every stop: sends.csv, trials.csv and run.json.

use std::path::Path;

use anyhow::Context;
use serde::Serialize;

use super::state::{self, RunState};
use super::Ctx;
use crate::dataset::manifest::{StopReason, RUN_FILE};
use crate::probe::plan::Plan;

/// Rewrite sends.csv, trials.csv and run.json from the state; returns the
/// number of finished trials.
pub(super) fn write_outputs(
    ctx: &mut Ctx,
    plan: &Plan,
    st: &RunState,
    stop: Option<StopReason>,
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
    let tables = write_run_tables(ctx, plan, st)?;
    write_package(ctx, &tables, matches!(stop, Some(StopReason::Complete)))?;
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
        .filter(|s| s.1 != StopReason::Complete)
        .map(|s| state::rfc(Some(s.0)))
        .collect();
    m.crashes = st.crashes;
    if let Some(reason) = stop {
        m.finished_at = state::rfc(Some(crate::clock::now()));
        m.stop_reason = Some(reason);
        m.state = reason.status();
    }
    let json = serde_json::to_vec_pretty(m)?;
    crate::fsutil::atomic_write_bytes(&ctx.dir.join(RUN_FILE), &json)
        .with_context(|| format!("writing {}", ctx.dir.join(RUN_FILE).display()))?;
    Ok(trials.len())
}

/// The experiments' own tables ([`crate::probe::design::Experiment::run_tables`]),
/// rows of the same file concatenated in spec order.
/// datapackage.json for the run folder: sends.csv and trials.csv with
/// their typed schemas, the designs' tables and items.csv with types read
/// off their values.
fn write_package(
    ctx: &mut Ctx,
    tables: &[crate::probe::design::RunTable],
    complete: bool,
) -> anyhow::Result<()> {
    use crate::dataset::package::{self, Resource};
    let mut resources: Vec<Resource> = package::run_resources(complete).into();
    for t in tables {
        let header: Vec<String> = t.header.iter().map(|h| h.to_string()).collect();
        resources.push(Resource::from_table(
            t.file,
            t.file.trim_end_matches(".csv"),
            "A table of the run's experiments (docs/DATASET.md).",
            &header,
            &t.rows,
        ));
    }
    if ctx.fixed_resources.is_none() {
        let mut fixed = Vec::new();
        for (file, title, about) in [
            (
                "plan.csv",
                "Plan",
                "The run's plan: every send in order, as `chatprobe plan` prints it.",
            ),
            (
                crate::corpus::features::RUN_ITEMS_FILE,
                "Items",
                "The content features of the corpus items the run sends.",
            ),
        ] {
            if ctx.dir.join(file).is_file() {
                fixed.push(
                    Resource::from_file(&ctx.dir, file, title, about)
                        .with_context(|| format!("reading {}", ctx.dir.join(file).display()))?,
                );
            }
        }
        ctx.fixed_resources = Some(fixed);
    }
    resources.extend(ctx.fixed_resources.iter().flatten().cloned());
    package::write(
        &ctx.dir,
        &ctx.run_id,
        &format!(
            "chatprobe run {} (spec {})",
            ctx.run_id, ctx.manifest.spec_name
        ),
        &resources,
    )
    .with_context(|| format!("writing {}", ctx.dir.join(package::PACKAGE_FILE).display()))
}

fn write_run_tables(
    ctx: &Ctx,
    plan: &Plan,
    st: &RunState,
) -> anyhow::Result<Vec<crate::probe::design::RunTable>> {
    let mut files: Vec<crate::probe::design::RunTable> = Vec::new();
    for (k, x) in plan.experiments.iter().enumerate() {
        let seen = plan.finished(k, |x, t| st.finished_verdict(x, t));
        for t in x.run_tables(&ctx.run_id, &seen, &plan.planned(k)) {
            match files.iter_mut().find(|f| f.file == t.file) {
                Some(f) => f.rows.extend(t.rows),
                None => files.push(t),
            }
        }
    }
    for t in &files {
        let path = ctx.dir.join(t.file);
        crate::fsutil::atomic_write(&path, |f| -> anyhow::Result<()> {
            let mut w = csv::Writer::from_writer(f);
            w.write_record(t.header)?;
            for r in &t.rows {
                w.write_record(r)?;
            }
            w.flush()?;
            Ok(())
        })
        .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(files)
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
