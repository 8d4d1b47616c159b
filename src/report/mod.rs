//! The report stage: plots (plotters; SVG and PNG) and `report.html`, one
//! self-contained page with the run's provenance, every table, the plots
//! (inline SVG) and a plain-language summary of what the data shows.
//!
//! It reads only [`Tables`] (the analysis, computed by `stats`, which never
//! calls back here) and run.json, so a dataset made elsewhere gets the same
//! report; [`publish`] is `chatprobe analyze`: tables, CSVs, plots and page
//! into one folder, atomically. Plots with no data are left out, not
//! drawn empty. Text in PNGs is drawn with the embedded DejaVu Sans (see
//! FONT-LICENSE.txt), so no system font is needed.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::stats::analyze::{Interval, Tables};
use crate::stats::design_analysis::DesignAnalysis;

const FONT: &[u8] = include_bytes!("DejaVuSans.ttf");
const W: u32 = 720;
const H: u32 = 420;

fn register_font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

type DrawResult = Result<(), Box<dyn std::error::Error>>;

type DrawSvg<'a> = Box<dyn for<'b> Fn(&DrawingArea<SVGBackend<'b>, Shift>) -> DrawResult + 'a>;
type DrawPng<'a> = Box<dyn for<'b> Fn(&DrawingArea<BitMapBackend<'b>, Shift>) -> DrawResult + 'a>;

/// A plot: a name and how to draw it on either backend.
struct Plot<'a> {
    name: &'static str,
    title: &'static str,
    draw: DrawSvg<'a>,
    draw_png: DrawPng<'a>,
}

macro_rules! plot {
    ($name:expr, $title:expr, $f:expr) => {
        Plot {
            name: $name,
            title: $title,
            draw: Box::new(move |a| $f(a)),
            draw_png: Box::new(move |a| $f(a)),
        }
    };
}

const COLOURS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(255, 127, 14),
    RGBColor(140, 86, 75),
];

fn latency<DB: DrawingBackend>(t: &Tables, area: &DrawingArea<DB, Shift>) -> DrawResult
where
    DB::ErrorType: 'static,
{
    area.fill(&WHITE)?;
    let xmax = t.latency.iter().map(|r| r.offset_s).fold(1.0, f64::max) * 1.05;
    let mut c = ChartBuilder::on(area)
        .caption(
            "Blocked fraction by time since the seed",
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0.0..xmax, 0.0..1.0)?;
    c.configure_mesh()
        .x_desc("seconds after the seed send")
        .y_desc("blocked (95% CI)")
        .draw()?;
    let mut names: Vec<&str> = t
        .latency
        .iter()
        .map(|r| r.experiment_name.as_str())
        .collect();
    names.dedup();
    for (k, name) in names.iter().enumerate() {
        let col = COLOURS[k % COLOURS.len()];
        let rows: Vec<_> = t
            .latency
            .iter()
            .filter(|r| r.experiment_name == *name)
            .collect();
        let mut band: Vec<(f64, f64)> = rows
            .iter()
            .map(|r| (r.offset_s, r.ci_high.unwrap_or(0.0)))
            .collect();
        band.extend(
            rows.iter()
                .rev()
                .map(|r| (r.offset_s, r.ci_low.unwrap_or(0.0))),
        );
        c.draw_series(std::iter::once(Polygon::new(band, col.mix(0.2))))?;
        c.draw_series(LineSeries::new(
            rows.iter().map(|r| (r.offset_s, r.rate.unwrap_or(0.0))),
            col.stroke_width(2),
        ))?
        .label(name.to_string())
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], col.stroke_width(2)));
        c.draw_series(
            rows.iter()
                .map(|r| Circle::new((r.offset_s, r.rate.unwrap_or(0.0)), 4, col.filled())),
        )?;
    }
    c.configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerRight)
        .draw()?;
    area.present()?;
    Ok(())
}

fn transforms<DB: DrawingBackend>(t: &Tables, area: &DrawingArea<DB, Shift>) -> DrawResult
where
    DB::ErrorType: 'static,
{
    area.fill(&WHITE)?;
    let n = t.transforms.len();
    let names: Vec<String> = t.transforms.iter().map(|r| r.transform.clone()).collect();
    let mut c = ChartBuilder::on(area)
        .caption("Evasion rate by transform", ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(-0.5..(n as f64 - 0.5), 0.0..1.0)?;
    c.configure_mesh()
        .x_labels(n)
        .x_label_formatter(&|x| {
            let i = x.round();
            if (x - i).abs() < 1e-6 && i >= 0.0 {
                names.get(i as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .disable_x_mesh()
        .y_desc("evaded (95% CI)")
        .draw()?;
    let col = COLOURS[0];
    c.draw_series(t.transforms.iter().enumerate().map(|(i, r)| {
        let x = i as f64;
        Rectangle::new(
            [(x - 0.3, 0.0), (x + 0.3, r.evasion_rate.unwrap_or(0.0))],
            col.mix(0.6).filled(),
        )
    }))?;
    c.draw_series(t.transforms.iter().enumerate().map(|(i, r)| {
        ErrorBar::new_vertical(
            i as f64,
            r.ci_low.unwrap_or(0.0),
            r.evasion_rate.unwrap_or(0.0),
            r.ci_high.unwrap_or(0.0),
            BLACK.stroke_width(1),
            10,
        )
    }))?;
    area.present()?;
    Ok(())
}

fn threshold<DB: DrawingBackend>(t: &Tables, area: &DrawingArea<DB, Shift>) -> DrawResult
where
    DB::ErrorType: 'static,
{
    area.fill(&WHITE)?;
    let xmax = t.threshold_points.iter().map(|p| p.0).fold(8.0, f64::max) + 2.0;
    let mut c = ChartBuilder::on(area)
        .caption("Blocked against pHash distance", ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(-1.0..xmax, -0.05..1.05)?;
    c.configure_mesh()
        .x_desc("pHash distance from the original (bits)")
        .y_desc("blocked (1) / evaded (0)")
        .draw()?;
    // Jitter the 0/1 points vertically so repeated ones stay visible.
    c.draw_series(t.threshold_points.iter().enumerate().map(|(i, (x, b))| {
        let j = ((i * 37) % 11) as f64 / 11.0 * 0.06 - 0.03;
        Circle::new(
            (*x, if *b { 1.0 } else { 0.0 } + j),
            3,
            COLOURS[1].mix(0.6).filled(),
        )
    }))?;
    if let Some(fit) = t.threshold.first() {
        if let (Some(a), Some(b)) = (fit.intercept, fit.slope) {
            let steps = 200;
            c.draw_series(LineSeries::new(
                (0..=steps).map(|k| {
                    let x = -1.0 + (xmax + 1.0) * k as f64 / steps as f64;
                    (x, 1.0 / (1.0 + (-(a + b * x)).exp()))
                }),
                COLOURS[0].stroke_width(2),
            ))?;
        }
    }
    area.present()?;
    Ok(())
}

fn trend<DB: DrawingBackend>(t: &Tables, area: &DrawingArea<DB, Shift>) -> DrawResult
where
    DB::ErrorType: 'static,
{
    area.fill(&WHITE)?;
    let mut dates: Vec<String> = t
        .trend
        .iter()
        .map(|r| format!("{} {}", r.date, r.run_id))
        .collect();
    dates.sort();
    dates.dedup();
    let labels: Vec<String> = dates
        .iter()
        .map(|d| d[..10.min(d.len())].to_string())
        .collect();
    let n = dates.len();
    let mut c = ChartBuilder::on(area)
        .caption("Blocked rate of test sends, run by run", ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(-0.5..(n as f64 - 0.5), 0.0..1.0)?;
    c.configure_mesh()
        .x_labels(n.min(12))
        .x_label_formatter(&|x| {
            let i = x.round();
            if (x - i).abs() < 1e-6 && i >= 0.0 {
                labels.get(i as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .y_desc("blocked (95% CI)")
        .draw()?;
    let mut names: Vec<&str> = t.trend.iter().map(|r| r.experiment_name.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    for (k, name) in names.iter().enumerate() {
        let col = COLOURS[k % COLOURS.len()];
        let pos = |r: &crate::stats::analyze::TrendRow| {
            dates
                .iter()
                .position(|d| *d == format!("{} {}", r.date, r.run_id))
                .unwrap_or(0) as f64
        };
        let rows: Vec<_> = t
            .trend
            .iter()
            .filter(|r| r.experiment_name == *name)
            .collect();
        c.draw_series(LineSeries::new(
            rows.iter().map(|r| (pos(r), r.rate.unwrap_or(0.0))),
            col.stroke_width(2),
        ))?
        .label(name.to_string())
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], col.stroke_width(2)));
        c.draw_series(rows.iter().map(|r| {
            ErrorBar::new_vertical(
                pos(r),
                r.ci_low.unwrap_or(0.0),
                r.rate.unwrap_or(0.0),
                r.ci_high.unwrap_or(0.0),
                col.stroke_width(1),
                8,
            )
        }))?;
    }
    c.configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()?;
    area.present()?;
    Ok(())
}

/// Draw every plot that has data into `dir` (`NAME.svg`, `NAME.png`);
/// returns (name, title, svg text) of each.
pub fn plots(t: &Tables, dir: &Path) -> anyhow::Result<Vec<(String, String, String)>> {
    register_font();
    let mut list: Vec<Plot> = Vec::new();
    if !t.latency.is_empty() {
        list.push(plot!("latency", "Latency", |a| latency(t, a)));
    }
    if !t.transforms.is_empty() {
        list.push(plot!("transforms", "Transforms", |a| transforms(t, a)));
    }
    if !t.threshold_points.is_empty() {
        list.push(plot!("threshold", "Threshold", |a| threshold(t, a)));
    }
    if !t.trend.is_empty() {
        list.push(plot!("trend", "Trend", |a| trend(t, a)));
    }
    let mut out = Vec::new();
    for p in list {
        let mut svg = String::new();
        {
            let area = SVGBackend::with_string(&mut svg, (W, H)).into_drawing_area();
            (p.draw)(&area).map_err(|e| anyhow::anyhow!("drawing {}: {e}", p.name))?;
        }
        std::fs::write(dir.join(format!("{}.svg", p.name)), &svg)?;
        let png = dir.join(format!("{}.png", p.name));
        {
            let area = BitMapBackend::new(&png, (W, H)).into_drawing_area();
            (p.draw_png)(&area).map_err(|e| anyhow::anyhow!("drawing {}: {e}", p.name))?;
        }
        out.push((p.name.to_string(), p.title.to_string(), svg));
    }
    Ok(out)
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn pct(x: Option<f64>) -> String {
    x.map_or("–".into(), |x| format!("{:.0}%", x * 100.0))
}

fn ci(lo: Option<f64>, hi: Option<f64>) -> String {
    match (lo, hi) {
        (Some(l), Some(h)) => format!("95% CI {:.0}–{:.0}%", l * 100.0, h * 100.0),
        _ => "no interval".into(),
    }
}

fn p_value(p: Option<f64>) -> String {
    match p {
        Some(p) if p < 0.001 => "p < 0.001".into(),
        Some(p) => format!("p = {p:.3}"),
        None => "p –".into(),
    }
}

/// The plain-language summary: one sentence per finding.
pub fn summary(t: &Tables) -> Vec<String> {
    let mut out = Vec::new();
    for r in &t.surveillance {
        let evidence = r.p_holm.is_some_and(|p| p < 0.05) && r.seeded_rate > r.control_rate;
        out.push(format!(
            "{} ({} {}s, {} chats): seeded copies were blocked in {} of {} trials ({}, {}), unseeded controls in {} of {} ({}); Fisher {}, Holm-adjusted {}. {}",
            r.experiment_name,
            r.label,
            r.content_kind,
            r.channel,
            r.seeded_blocked,
            r.n,
            pct(r.seeded_rate),
            ci(r.seeded_ci_low, r.seeded_ci_high),
            r.control_blocked,
            r.n,
            pct(r.control_rate),
            p_value(r.fisher_p),
            p_value(r.p_holm),
            if evidence {
                "Evidence that transmissions in the intl-only seed chat were inspected and their content then censored."
            } else {
                "No significant evidence of surveillance here."
            }
        ));
    }
    for r in &t.latency_median {
        if let Some(m) = r.median_s {
            out.push(format!(
                "{}: half of the seeded copies were blocked about {:.0} s after the seed ({}); {} tests.",
                r.experiment_name,
                m,
                match (r.ci_low, r.ci_high) {
                    (Some(l), Some(h)) => format!("95% CI {l:.0}–{h:.0} s"),
                    _ => "no interval".into(),
                },
                r.n
            ));
        }
    }
    if !t.transforms.is_empty() {
        let parts: Vec<String> = t
            .transforms
            .iter()
            .map(|r| format!("{} {} of {}", r.transform, r.evaded, r.n))
            .collect();
        out.push(format!(
            "Transforms of blocked images that evaded the filter: {}.",
            parts.join(", ")
        ));
    }
    if let Some(th) = t.threshold.first() {
        if let Some(d) = th.distance_at_50 {
            out.push(format!(
                "Blocking falls to 50% at a pHash distance of about {d:.1} bits (logistic fit, {} sends).",
                th.n
            ));
        }
    }
    for d in &t.designs {
        out.extend(d.summary.iter().cloned());
    }
    let mut medians: Vec<(&str, f64)> = t
        .expiry
        .iter()
        .filter_map(|r| r.median_s.map(|m| (r.experiment_name.as_str(), m)))
        .collect();
    medians.dedup_by(|a, b| a.0 == b.0);
    for (name, m) in medians {
        out.push(format!(
            "{name}: blocked hashes stayed blocked for a median of {m:.0} s (Kaplan–Meier)."
        ));
    }
    if out.is_empty() {
        out.push("The input holds no trial that a table could use.".into());
    }
    out
}

fn table(dir: &Path, file: &str) -> String {
    let Ok(mut rdr) = csv::Reader::from_path(dir.join(file)) else {
        return String::new();
    };
    let header: Vec<String> = rdr
        .headers()
        .map(|h| h.iter().map(String::from).collect())
        .unwrap_or_default();
    let rows: Vec<Vec<String>> = rdr
        .records()
        .flatten()
        .map(|r| {
            r.iter()
                .map(|v| match v.parse::<f64>() {
                    Ok(x) if v.contains('.') => format!("{x:.4}"),
                    _ => v.to_string(),
                })
                .collect()
        })
        .collect();
    if rows.is_empty() {
        return String::new();
    }
    let mut h = format!("<h3>{}</h3>\n<table>\n<tr>", esc(file));
    for c in &header {
        let _ = write!(h, "<th>{}</th>", esc(c));
    }
    h.push_str("</tr>\n");
    for r in rows.iter().take(500) {
        h.push_str("<tr>");
        for v in r {
            let _ = write!(h, "<td>{}</td>", esc(v));
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</table>\n");
    if rows.len() > 500 {
        let _ = writeln!(
            h,
            "<p>… {} more rows in {}</p>",
            rows.len() - 500,
            esc(file)
        );
    }
    h
}

/// Write `dir/report.html` from the tables already written to `dir`, the
/// plots, and run.json (`manifest`, if the input was a run folder).
pub fn write_html(
    dir: &Path,
    t: &Tables,
    plots: &[(String, String, String)],
    manifest: Option<&serde_json::Value>,
) -> anyhow::Result<()> {
    let mut h = String::from(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>chatprobe report</title>\n<style>body{font-family:sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;color:#222}table{border-collapse:collapse;font-size:12px;margin-bottom:1em}td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}th{background:#f3f3f3}dt{font-weight:bold}svg{max-width:100%;height:auto}li{margin-bottom:.4em}</style></head><body>\n<h1>chatprobe report</h1>\n",
    );
    h.push_str("<h2>What this run shows</h2>\n<ul>\n");
    for s in summary(t) {
        let _ = writeln!(h, "<li>{}</li>", esc(&s));
    }
    h.push_str("</ul>\n");
    if let Some(m) = manifest {
        h.push_str("<h2>Provenance</h2>\n<dl>\n");
        for key in [
            "run_id",
            "software",
            "version",
            "git_revision",
            "spec_name",
            "spec_path",
            "spec_sha256",
            "corpus_index_sha256",
            "profile",
            "platform",
            "policy",
            "seed",
            "started_at",
            "finished_at",
            "state",
            "trials_done",
            "trials_planned",
            "counts",
            "webdriver",
            "limits",
            "resumed",
            "crashes",
        ] {
            if let Some(v) = m.get(key) {
                let v = match v {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                let _ = writeln!(h, "<dt>{}</dt><dd>{}</dd>", esc(key), esc(&v));
            }
        }
        h.push_str("</dl>\n");
    }
    if !plots.is_empty() {
        h.push_str("<h2>Plots</h2>\n");
        for (name, title, svg) in plots {
            let svg = svg.find("<svg").map_or(svg.as_str(), |i| &svg[i..]);
            let _ = writeln!(
                h,
                "<figure><figcaption>{} ({name}.svg, {name}.png)</figcaption>\n{svg}</figure>",
                esc(title)
            );
        }
    }
    h.push_str("<h2>Tables</h2>\n<p>Intervals are 95% Wilson score intervals unless the analysis was run with <code>--interval exact</code>; Fisher p values are two-sided. docs/DATASET.md describes every column.</p>\n");
    for f in [
        "surveillance.csv",
        "latency.csv",
        "latency_median.csv",
        "transforms.csv",
        "threshold.csv",
        "expiry.csv",
        "trend.csv",
    ] {
        h.push_str(&table(dir, f));
    }
    // Each design's own tables: its part of the page.
    for d in &t.designs {
        if d.rows.is_empty() {
            continue;
        }
        let _ = writeln!(h, "<h2>{}</h2>\n<p>{}</p>", esc(&d.title), esc(&d.about));
        h.push_str(&table(dir, &d.file));
    }
    let _ = writeln!(
        h,
        "<p><small>{} sends and {} trials read. Made by chatprobe {}.</small></p></body></html>",
        t.sends,
        t.trials,
        env!("CARGO_PKG_VERSION")
    );
    std::fs::write(dir.join("report.html"), h)?;
    Ok(())
}

/// `chatprobe analyze`: compute the tables (stats), write them as CSV, draw
/// the plots and write report.html into `out`, replacing it only on success
/// (everything is made in a temporary folder beside it, then renamed).
pub fn publish(
    inputs: &[PathBuf],
    out: &Path,
    interval: Interval,
    analyses: &[DesignAnalysis],
) -> anyhow::Result<Tables> {
    use anyhow::Context;
    if out.exists() && !out.is_dir() {
        return Err(crate::error::InputError::new(
            out,
            "is a file; analyze writes a folder of tables, plots and report.html",
        )
        .key("--out")
        .hint("name a folder (it is replaced if it exists)")
        .into());
    }
    let tables = crate::stats::analyze::compute_with(inputs, interval, analyses)?;
    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    let tmp = tempfile::Builder::new()
        .prefix(".chatprobe-analysis-")
        .tempdir_in(parent)
        .with_context(|| format!("creating a folder in {}", parent.display()))?;
    let d = tmp.path();
    crate::stats::analyze::write_tables(d, &tables)?;
    let plots = plots(&tables, d).context("drawing the plots")?;
    let manifest = inputs
        .iter()
        .find(|i| i.is_dir())
        .and_then(|i| std::fs::read_to_string(i.join("run.json")).ok())
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok());
    write_html(d, &tables, &plots, manifest.as_ref()).context("writing report.html")?;
    if out.is_dir() {
        std::fs::remove_dir_all(out).with_context(|| format!("replacing {}", out.display()))?;
    }
    // On failure the temporary folder is dropped, and removed with it.
    std::fs::rename(tmp.path(), out).with_context(|| format!("writing {}", out.display()))?;
    let _ = tmp.keep();
    Ok(tables)
}
