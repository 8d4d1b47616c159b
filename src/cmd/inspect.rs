//! The commands that read and print: `plan`, `designs`, `analyze`, `runs`.

use anyhow::Context;

use super::cli::{AnalyzeArgs, PlanArgs, RunsArgs};

pub(super) fn plan(args: PlanArgs) -> anyhow::Result<()> {
    let spec = crate::probe::Spec::load(&args.spec)?;
    let plan = crate::probe::Plan::build(&spec);
    let adaptive: Vec<String> = plan
        .experiments
        .iter()
        .filter(|x| x.adaptive())
        .map(|x| format!("`{}` ({})", x.name(), x.design()))
        .collect();
    if !adaptive.is_empty() {
        eprintln!(
            "adaptive: {} — the plan holds their first step; the rest depends on outcomes and is added to the run's plan.csv as it runs",
            adaptive.join(", ")
        );
    }
    // A spec `run` refuses is shown whole, then refused the same way
    // (exit 2): a dry run that succeeds must mean the run can start.
    let mut refused = None;
    if let Some(fit) = crate::probe::budget::fit(&plan, &spec.limits) {
        let most = fit.accounts.iter().map(|a| a.planned).max().unwrap_or(0);
        if fit.dropped.is_empty() {
            eprintln!(
                "daily budget: fits ({most} of {} messages for the busiest account)",
                fit.budget
            );
        } else {
            eprintln!("daily budget: does not fit; `chatprobe run` refuses this spec:");
            for line in fit.describe(usize::MAX) {
                eprintln!("  {line}");
            }
            refused = Some(crate::probe::budget::refusal_listed(&spec));
        }
    }
    match &args.out {
        Some(out) => {
            plan.save(out)
                .with_context(|| format!("writing {}", out.display()))?;
            eprintln!(
                "{}: {} trials, {} sends",
                out.display(),
                plan.trials.len(),
                plan.sends()
            );
        }
        None => {
            plan.write_csv(std::io::stdout().lock())?;
            eprintln!("{} trials, {} sends", plan.trials.len(), plan.sends());
        }
    }
    match refused {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}

pub(super) fn designs() {
    use crate::probe::design::{COMMON_KEYS, DESIGNS};
    for d in DESIGNS {
        println!(
            "{}\n    {}\n    keys: {}, {}\n    verdicts: {}, inconclusive",
            d.name,
            d.about,
            COMMON_KEYS[1..].join(", "),
            d.keys.join(", "),
            d.verdicts
                .iter()
                .map(|v| v.name())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
}

pub(super) fn analyze(args: AnalyzeArgs) -> anyhow::Result<()> {
    let out = match &args.out {
        Some(o) => o.clone(),
        None => {
            let first = &args.inputs[0];
            let base = if first.is_dir() {
                first.clone()
            } else {
                first.parent().map(|p| p.to_path_buf()).unwrap_or_default()
            };
            base.join("analysis")
        }
    };
    let t = crate::report::publish(
        &args.inputs,
        &out,
        args.interval.into(),
        &crate::probe::design::analyses(),
    )?;
    let filled: Vec<String> = t
        .tables
        .iter()
        .filter(|t| !t.rows.is_empty())
        .map(|t| format!("{} ({} rows)", t.file, t.rows.len()))
        .collect();
    println!(
        "{}: {} sends, {} trials read; {}",
        out.display(),
        t.sends,
        t.trials,
        if filled.is_empty() {
            "no table has rows".to_string()
        } else {
            filled.join(", ")
        }
    );
    Ok(())
}

pub(super) fn runs(args: RunsArgs) -> anyhow::Result<()> {
    let runs = crate::dataset::runs::list_runs(&args.results);
    let mut w = csv::WriterBuilder::new()
        .delimiter(b'\t')
        .from_writer(std::io::stdout().lock());
    for r in &runs {
        w.serialize(r)?;
    }
    w.flush()?;
    if runs.is_empty() {
        eprintln!("no runs in {}", args.results.display());
    }
    Ok(())
}
