//! The report stage: plots (plotters; SVG and PNG) and `report.html`, one
//! self-contained page with the run's provenance, every table, the plots
//! (inline SVG) and a plain-language summary of what the data shows.
//!
//! It reads only [`Tables`] (the analysis, computed by the analysis stage
//! and the designs, which never call back here) and run.json, so a dataset made
//! elsewhere gets the same report; [`publish`] is `chatprobe analyze`:
//! tables, CSVs, plots and page into one folder, atomically. Each table
//! brings its figures as data (`dataset::tables::Figure`); this
//! module draws each kind of chart one way, for every design. Plots with no
//! data are left out, not drawn empty. Text in PNGs is drawn with a system
//! font that covers Chinese when the machine has one (`make` installs
//! WenQuanYi Micro Hei), else with the embedded DejaVu Sans (see
//! FONT-LICENSE.txt), which has no Chinese glyphs.

mod provenance;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use plotters::chart::MeshStyle;
use plotters::coord::ranged1d::{Ranged, ValueFormatter};
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::analysis::Tables;
use crate::dataset::tables::{Bar, Chart, Figure, ForestRow, GridCell, Series, Table};
use crate::probe::design::analysis::DesignAnalysis;
use crate::stats::Interval;

const FONT: &[u8] = include_bytes!("DejaVuSans.ttf");
const W: u32 = 720;
const H: u32 = 420;

/// The font PNG text is drawn with: a system font that covers Chinese
/// where fontconfig knows one (keyword labels are Chinese, and DejaVu Sans
/// has no CJK glyphs: they would come out as empty boxes), else the
/// embedded DejaVu Sans. SVGs name `sans-serif` and leave the choice to the
/// viewer.
fn register_font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if let Some(font) = chinese_font() {
            if plotters::style::register_font("sans-serif", FontStyle::Normal, font).is_ok() {
                return;
            }
        }
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

/// The bytes of a font covering Chinese (`fc-list :lang=zh`), sans-serif
/// families first; read once and kept for the process's life.
fn chinese_font() -> Option<&'static [u8]> {
    let out = std::process::Command::new("fc-list")
        .args([":lang=zh", "file", "family"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let listing = String::from_utf8_lossy(&out.stdout);
    let mut fonts: Vec<(&str, &str)> = listing
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(file, family)| (file.trim(), family.trim()))
        .filter(|(file, _)| {
            let f = file.to_ascii_lowercase();
            f.ends_with(".ttf") || f.ends_with(".ttc") || f.ends_with(".otf")
        })
        .collect();
    let serif = |family: &str| {
        let f = family.to_ascii_lowercase();
        !(f.contains("sans") || f.contains("hei"))
    };
    fonts.sort_by_key(|(file, family)| (serif(family), file.to_string()));
    let bytes = std::fs::read(fonts.first()?.0).ok()?;
    Some(Box::leak(bytes.into_boxed_slice()))
}

type DrawResult = Result<(), Box<dyn std::error::Error>>;

type DrawSvg<'a> = Box<dyn for<'b> Fn(&DrawingArea<SVGBackend<'b>, Shift>) -> DrawResult + 'a>;
type DrawPng<'a> = Box<dyn for<'b> Fn(&DrawingArea<BitMapBackend<'b>, Shift>) -> DrawResult + 'a>;

/// A figure and how to draw it on either backend.
struct Plot<'a> {
    figure: &'a Figure,
    draw: DrawSvg<'a>,
    draw_png: DrawPng<'a>,
}

const COLOURS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(255, 127, 14),
    RGBColor(140, 86, 75),
];

/// Draw `f` on `area`, whatever its chart.
fn draw<DB: DrawingBackend>(f: &Figure, area: &DrawingArea<DB, Shift>) -> DrawResult
where
    DB::ErrorType: 'static,
{
    area.fill(&WHITE)?;
    match &f.chart {
        Chart::Curves(series) => curves(f, series, area)?,
        Chart::Categories { labels, series } => categories(f, labels, series, area)?,
        Chart::Bars(bars) => bars_chart(f, bars, area)?,
        Chart::GroupedRows(groups) => grouped_rows(f, groups, area)?,
        Chart::Logistic { points, fit } => logistic(f, points, *fit, area)?,
        Chart::Forest(rows) => forest(f, rows, area)?,
        Chart::Grid {
            columns,
            rows,
            legend,
        } => grid(f, columns, rows, legend, area)?,
        // Never drawn: `plots` keeps only figures with data.
        Chart::Nothing(_) => {}
    }
    area.present()?;
    Ok(())
}

/// The x axis's label, when there is one (an empty one would still take
/// room).
fn axis_label<'m, 'a, 'b, X, Y, DB>(
    mesh: &'m mut MeshStyle<'a, 'b, X, Y, DB>,
    label: &str,
) -> &'m mut MeshStyle<'a, 'b, X, Y, DB>
where
    X: Ranged<ValueType = f64> + ValueFormatter<f64>,
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
    DB: DrawingBackend,
{
    if !label.is_empty() {
        mesh.x_desc(label);
    }
    mesh
}

/// The label of category `x` (a tick at a whole index), or nothing.
fn category_label(labels: &[String], x: f64) -> String {
    let i = x.round();
    if (x - i).abs() < 1e-6 && i >= 0.0 {
        labels.get(i as usize).cloned().unwrap_or_default()
    } else {
        String::new()
    }
}

fn curves<DB: DrawingBackend>(
    f: &Figure,
    series: &[Series],
    area: &DrawingArea<DB, Shift>,
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let xmax = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.x))
        .fold(1.0, f64::max)
        * 1.05;
    let mut c = ChartBuilder::on(area)
        .caption(&f.heading, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0.0..xmax, 0.0..1.0)?;
    c.configure_mesh()
        .x_desc(&f.x_label)
        .y_desc(&f.y_label)
        .draw()?;
    for (k, s) in series.iter().enumerate() {
        let col = COLOURS[k % COLOURS.len()];
        let mut band: Vec<(f64, f64)> = s
            .points
            .iter()
            .map(|p| (p.x, p.hi.unwrap_or(0.0)))
            .collect();
        band.extend(s.points.iter().rev().map(|p| (p.x, p.lo.unwrap_or(0.0))));
        c.draw_series(std::iter::once(Polygon::new(band, col.mix(0.2))))?;
        c.draw_series(LineSeries::new(
            s.points.iter().map(|p| (p.x, p.y.unwrap_or(0.0))),
            col.stroke_width(2),
        ))?
        .label(s.name.clone())
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], col.stroke_width(2)));
        c.draw_series(
            s.points
                .iter()
                .map(|p| Circle::new((p.x, p.y.unwrap_or(0.0)), 4, col.filled())),
        )?;
    }
    c.configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerRight)
        .draw()?;
    Ok(())
}

fn categories<DB: DrawingBackend>(
    f: &Figure,
    labels: &[String],
    series: &[Series],
    area: &DrawingArea<DB, Shift>,
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let n = labels.len();
    let mut c = ChartBuilder::on(area)
        .caption(&f.heading, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(-0.5..(n as f64 - 0.5), 0.0..1.0)?;
    let fmt = |x: &f64| category_label(labels, *x);
    let mut mesh = c.configure_mesh();
    mesh.x_labels(n.min(12))
        .x_label_formatter(&fmt)
        .y_desc(&f.y_label);
    axis_label(&mut mesh, &f.x_label).draw()?;
    for (k, s) in series.iter().enumerate() {
        let col = COLOURS[k % COLOURS.len()];
        c.draw_series(LineSeries::new(
            s.points.iter().map(|p| (p.x, p.y.unwrap_or(0.0))),
            col.stroke_width(2),
        ))?
        .label(s.name.clone())
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], col.stroke_width(2)));
        c.draw_series(s.points.iter().map(|p| {
            ErrorBar::new_vertical(
                p.x,
                p.lo.unwrap_or(0.0),
                p.y.unwrap_or(0.0),
                p.hi.unwrap_or(0.0),
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
    Ok(())
}

fn bars_chart<DB: DrawingBackend>(
    f: &Figure,
    bars: &[Bar],
    area: &DrawingArea<DB, Shift>,
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let n = bars.len();
    let labels: Vec<String> = bars.iter().map(|b| b.label.clone()).collect();
    // Labels wider than their bar's slot (7 px a character at 12 px) are
    // turned upright, in a label area tall enough for the longest.
    let longest = labels.iter().map(|l| l.chars().count()).max().unwrap_or(0) as u32;
    let slot = (area.dim_in_pixel().0.saturating_sub(90)) / n.max(1) as u32;
    let upright = longest * 7 > slot;
    let label_area = if upright {
        (longest * 6 + 30).clamp(40, 200)
    } else {
        40
    };
    let mut c = ChartBuilder::on(area)
        .caption(&f.heading, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(label_area)
        .y_label_area_size(50)
        .build_cartesian_2d(-0.5..(n as f64 - 0.5), 0.0..1.0)?;
    let fmt = |x: &f64| {
        if upright {
            String::new()
        } else {
            category_label(&labels, *x)
        }
    };
    let mut mesh = c.configure_mesh();
    mesh.x_labels(n)
        .x_label_formatter(&fmt)
        .disable_x_mesh()
        .y_desc(&f.y_label);
    axis_label(&mut mesh, &f.x_label).draw()?;
    if upright {
        // Drawn here rather than by the mesh, which centres every label on
        // its tick: upright, they start under the axis and run down.
        let style = TextStyle::from(("sans-serif", 12).into_font())
            .transform(FontTransform::Rotate90)
            .pos(plotters::style::text_anchor::Pos::new(
                plotters::style::text_anchor::HPos::Left,
                plotters::style::text_anchor::VPos::Center,
            ));
        let root = c.plotting_area().strip_coord_spec();
        for (i, l) in labels.iter().enumerate() {
            let (x, y) = c.backend_coord(&(i as f64, 0.0));
            let (ox, oy) = root.get_base_pixel();
            root.draw(&Text::new(l.clone(), (x - ox, y - oy + 8), style.clone()))?;
        }
    }
    let col = COLOURS[0];
    c.draw_series(bars.iter().enumerate().map(|(i, b)| {
        let x = i as f64;
        Rectangle::new(
            [(x - 0.3, 0.0), (x + 0.3, b.y.unwrap_or(0.0))],
            col.mix(0.6).filled(),
        )
    }))?;
    c.draw_series(bars.iter().enumerate().map(|(i, b)| {
        ErrorBar::new_vertical(
            i as f64,
            b.lo.unwrap_or(0.0),
            b.y.unwrap_or(0.0),
            b.hi.unwrap_or(0.0),
            BLACK.stroke_width(1),
            10,
        )
    }))?;
    Ok(())
}

fn logistic<DB: DrawingBackend>(
    f: &Figure,
    points: &[(f64, bool)],
    fit: Option<(f64, f64)>,
    area: &DrawingArea<DB, Shift>,
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let xmax = points.iter().map(|p| p.0).fold(8.0, f64::max) + 2.0;
    let mut c = ChartBuilder::on(area)
        .caption(&f.heading, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(-1.0..xmax, -0.05..1.05)?;
    c.configure_mesh()
        .x_desc(&f.x_label)
        .y_desc(&f.y_label)
        .draw()?;
    // Jitter the 0/1 points vertically so repeated ones stay visible.
    c.draw_series(points.iter().enumerate().map(|(i, (x, b))| {
        let j = ((i * 37) % 11) as f64 / 11.0 * 0.06 - 0.03;
        Circle::new(
            (*x, if *b { 1.0 } else { 0.0 } + j),
            3,
            COLOURS[1].mix(0.6).filled(),
        )
    }))?;
    if let Some((a, b)) = fit {
        let steps = 200;
        c.draw_series(LineSeries::new(
            (0..=steps).map(|k| {
                let x = -1.0 + (xmax + 1.0) * k as f64 / steps as f64;
                (x, 1.0 / (1.0 + (-(a + b * x)).exp()))
            }),
            COLOURS[0].stroke_width(2),
        ))?;
    }
    Ok(())
}

/// A chart whose rows are labelled on the y axis: the label area as wide
/// as the longest label needs (forest plots, grids).
fn labelled_rows<'a, 'b, DB: DrawingBackend>(
    f: &Figure,
    labels: &[String],
    area: &'a DrawingArea<DB, Shift>,
) -> ChartBuilder<'a, 'b, DB> {
    let longest = labels.iter().map(|l| l.chars().count()).max().unwrap_or(4);
    let mut b = ChartBuilder::on(area);
    b.caption(&f.heading, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size((longest as u32 * 7).clamp(40, 300));
    b
}

/// A forest plot: one row per effect, its ratio as a dot and its interval
/// as a bar, on a log10 x axis, with a dashed line at 1.
fn forest<DB: DrawingBackend>(
    f: &Figure,
    rows: &[ForestRow],
    area: &DrawingArea<DB, Shift>,
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let finite = |v: f64| v.is_finite() && v > 0.0;
    let logs: Vec<f64> = rows
        .iter()
        .flat_map(|r| [r.lo, r.estimate, r.hi])
        .filter(|v| finite(*v))
        .map(f64::log10)
        .collect();
    // At most 10^-4 to 10^5: intervals reaching further (separated data,
    // few trials) run to the edge, which says "unbounded here".
    let lo = logs.iter().copied().fold(0.0, f64::min).floor().max(-4.0) - 0.2;
    let hi = logs.iter().copied().fold(0.0, f64::max).ceil().min(5.0) + 0.2;
    let n = rows.len();
    let labels: Vec<String> = rows.iter().map(|r| r.label.clone()).collect();
    let mut c =
        labelled_rows(f, &labels, area).build_cartesian_2d(lo..hi, -0.5..(n as f64 - 0.5))?;
    // Decades as plain numbers (0.001, 1, 1000); other ticks to three
    // significant figures.
    let xfmt = |x: &f64| {
        if (x - x.round()).abs() < 1e-9 {
            format!("{}", 10f64.powi(x.round() as i32))
        } else {
            crate::stats::words::ratio(10f64.powf(*x))
        }
    };
    // Row i is drawn from the top.
    let yfmt = |y: &f64| category_label(&labels, n as f64 - 1.0 - *y);
    c.configure_mesh()
        .x_labels(((hi - lo) as usize + 1).clamp(2, 10))
        .x_label_formatter(&xfmt)
        .y_labels(n)
        .y_label_formatter(&yfmt)
        .disable_y_mesh()
        .x_desc(&f.x_label)
        .draw()?;
    c.draw_series(DashedLineSeries::new(
        [(0.0, -0.5), (0.0, n as f64 - 0.5)],
        4,
        4,
        BLACK.mix(0.6).stroke_width(1),
    ))?;
    let clamp = |v: f64| {
        if finite(v) {
            v.log10().clamp(lo, hi)
        } else if v > 0.0 {
            hi
        } else {
            lo
        }
    };
    c.draw_series(rows.iter().enumerate().map(|(i, r)| {
        let y = n as f64 - 1.0 - i as f64;
        PathElement::new(
            vec![(clamp(r.lo), y), (clamp(r.hi), y)],
            COLOURS[0].stroke_width(2),
        )
    }))?;
    c.draw_series(rows.iter().enumerate().map(|(i, r)| {
        let y = n as f64 - 1.0 - i as f64;
        Circle::new((clamp(r.estimate), y), 4, COLOURS[1].filled())
    }))?;
    Ok(())
}

/// Rates as horizontal bars, one row per category under its label, with
/// their intervals; each group (an experiment) in a colour of its own,
/// named in a legend under the bars when there are several.
fn grouped_rows<DB: DrawingBackend>(
    f: &Figure,
    groups: &[(String, Vec<Bar>)],
    area: &DrawingArea<DB, Shift>,
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let split;
    let area = if groups.len() > 1 {
        let h = area.dim_in_pixel().1;
        split = area.split_vertically(h.saturating_sub(LEGEND_H));
        let mut x = 12;
        for (i, (name, _)) in groups.iter().enumerate() {
            let colour = COLOURS[i % COLOURS.len()];
            split.1.draw(&Rectangle::new(
                [(x, 6), (x + 12, 18)],
                colour.mix(0.6).filled(),
            ))?;
            split
                .1
                .draw(&Text::new(name.as_str(), (x + 17, 5), LEGEND_FONT))?;
            x += entry_width(name);
        }
        &split.0
    } else {
        area
    };
    let rows: Vec<(usize, &Bar)> = groups
        .iter()
        .enumerate()
        .flat_map(|(g, (_, bars))| bars.iter().map(move |b| (g, b)))
        .collect();
    let n = rows.len();
    let labels: Vec<String> = rows.iter().map(|(_, b)| b.label.clone()).collect();
    let mut c =
        labelled_rows(f, &labels, area).build_cartesian_2d(0.0..1.0, -0.5..(n as f64 - 0.5))?;
    // Row i is drawn from the top.
    let yfmt = |y: &f64| category_label(&labels, n as f64 - 1.0 - *y);
    c.configure_mesh()
        .y_labels(n)
        .y_label_formatter(&yfmt)
        .disable_y_mesh()
        .x_desc(&f.y_label)
        .draw()?;
    c.draw_series(rows.iter().enumerate().map(|(i, (g, b))| {
        let y = n as f64 - 1.0 - i as f64;
        Rectangle::new(
            [(0.0, y - 0.3), (b.y.unwrap_or(0.0), y + 0.3)],
            COLOURS[g % COLOURS.len()].mix(0.6).filled(),
        )
    }))?;
    c.draw_series(rows.iter().enumerate().filter_map(|(i, (_, b))| {
        let y = n as f64 - 1.0 - i as f64;
        Some(PathElement::new(
            vec![(b.lo?, y), (b.hi?, y)],
            BLACK.stroke_width(1),
        ))
    }))?;
    Ok(())
}

/// A grid of outcomes: rows of cells, coloured by outcome.
fn grid<DB: DrawingBackend>(
    f: &Figure,
    columns: &[String],
    rows: &[(String, Vec<GridCell>)],
    legend: &[(GridCell, String)],
    area: &DrawingArea<DB, Shift>,
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let split;
    let area = if legend.is_empty() {
        area
    } else {
        let h = area.dim_in_pixel().1;
        split = area.split_vertically(h.saturating_sub(LEGEND_H));
        grid_legend(legend, &split.1)?;
        &split.0
    };
    let (nc, nr) = (columns.len().max(1), rows.len());
    let labels: Vec<String> = rows.iter().map(|r| r.0.clone()).collect();
    let mut c = labelled_rows(f, &labels, area)
        .build_cartesian_2d(-0.5..(nc as f64 - 0.5), -0.5..(nr as f64 - 0.5))?;
    let yfmt = |y: &f64| category_label(&labels, nr as f64 - 1.0 - *y);
    let xfmt = |x: &f64| category_label(columns, *x);
    // As many column labels as fit side by side (about 7 px a character).
    let widest = columns.iter().map(|c| c.chars().count()).max().unwrap_or(1);
    let fit = (600 / (7 * widest + 12)).max(2);
    c.configure_mesh()
        .x_labels(nc.min(12).min(fit))
        .x_label_formatter(&xfmt)
        .y_labels(nr.min(60))
        .y_label_formatter(&yfmt)
        .disable_mesh()
        .x_desc(&f.x_label)
        .draw()?;
    // Cells apart by a gap while cells are wide; past 40 columns (or rows)
    // the gap is under a pixel and would round into uneven stripes.
    let half = |n: usize| if n > 40 { 0.5 } else { 0.45 };
    let (hx, hy) = (half(nc), half(nr));
    c.draw_series(rows.iter().enumerate().flat_map(|(i, (_, cells))| {
        let y = nr as f64 - 1.0 - i as f64;
        cells.iter().enumerate().filter_map(move |(j, cell)| {
            let colour = cell_colour(*cell)?;
            let x = j as f64;
            Some(Rectangle::new(
                [(x - hx, y - hy), (x + hx, y + hy)],
                colour.filled(),
            ))
        })
    }))?;
    Ok(())
}

/// A grid cell's colour; none for an empty cell.
fn cell_colour(cell: GridCell) -> Option<RGBColor> {
    match cell {
        GridCell::None => None,
        GridCell::Yes => Some(COLOURS[1]),
        GridCell::No => Some(RGBColor(250, 210, 200)),
        GridCell::Other => Some(COLOURS[4]),
        GridCell::Inconclusive => Some(RGBColor(180, 180, 180)),
    }
}

/// Height in pixels of the strip under a grid that holds its legend.
const LEGEND_H: u32 = 26;

/// The legends' font. An even size: plotters 0.3.7 places each glyph of a
/// PNG at `(size / 2 + glyph top) as i32`, and with half a pixel in that
/// sum the truncation sets flat-topped letters (u, v, x) a pixel above the
/// others.
const LEGEND_FONT: (&str, u32) = ("sans-serif", 14);

/// A grid's legend on one line: a square of each cell's colour (an
/// outline for an empty cell) and what it means.
fn grid_legend<DB: DrawingBackend>(
    legend: &[(GridCell, String)],
    strip: &DrawingArea<DB, Shift>,
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let mut x = 12;
    for (cell, words) in legend {
        let square = [(x, 6), (x + 12, 18)];
        match cell_colour(*cell) {
            Some(c) => strip.draw(&Rectangle::new(square, c.filled()))?,
            None => strip.draw(&Rectangle::new(square, BLACK.stroke_width(1)))?,
        }
        strip.draw(&Text::new(words.as_str(), (x + 17, 5), LEGEND_FONT))?;
        x += entry_width(words);
    }
    Ok(())
}

/// One legend entry's width: its square, about 7 px a character, a gap.
fn entry_width(words: &str) -> i32 {
    17 + 7 * words.chars().count() as i32 + 16
}

/// A figure's size in pixels: 720×420, taller for charts with a row per
/// thing (forest plots, grids) when their rows need it (16 px a row, at
/// most 2,000 px), a grid's legend strip (26 px) included.
fn size(f: &Figure) -> (u32, u32) {
    let rows = match &f.chart {
        Chart::Forest(r) => r.len(),
        Chart::Grid { rows, .. } => rows.len(),
        Chart::GroupedRows(groups) => groups.iter().map(|g| g.1.len()).sum(),
        _ => 0,
    } as u32;
    let legend = match &f.chart {
        Chart::Grid { legend, .. } if !legend.is_empty() => LEGEND_H,
        Chart::GroupedRows(groups) if groups.len() > 1 => LEGEND_H,
        _ => 0,
    };
    (W, (90 + 16 * rows + legend).clamp(H, 2000 + legend))
}

/// Draw every figure of every table that has data into `dir` (`NAME.svg`,
/// `NAME.png`); returns (name, title, svg text) of each.
pub fn plots(t: &Tables, dir: &Path) -> anyhow::Result<Vec<(String, String, String)>> {
    register_font();
    let list: Vec<Plot> = t
        .tables
        .iter()
        .flat_map(|t| &t.figures)
        .filter(|f| f.has_data())
        .map(|f| Plot {
            figure: f,
            draw: Box::new(move |a| draw(f, a)),
            draw_png: Box::new(move |a| draw(f, a)),
        })
        .collect();
    let mut out = Vec::new();
    for p in list {
        let name = &p.figure.name;
        let size = size(p.figure);
        let mut svg = String::new();
        {
            let area = SVGBackend::with_string(&mut svg, size).into_drawing_area();
            (p.draw)(&area).map_err(|e| anyhow::anyhow!("drawing {name}: {e}"))?;
        }
        std::fs::write(dir.join(format!("{name}.svg")), &svg)?;
        // Drawn into a pixel buffer and encoded by the `image` crate the
        // rest of chatprobe uses: plotters' own PNG encoder would bring a
        // second `image` and `png` into the build.
        let png = dir.join(format!("{name}.png"));
        let mut pixels = vec![0u8; size.0 as usize * size.1 as usize * 3];
        {
            let area = BitMapBackend::with_buffer(&mut pixels, size).into_drawing_area();
            (p.draw_png)(&area).map_err(|e| anyhow::anyhow!("drawing {name}: {e}"))?;
        }
        image::RgbImage::from_raw(size.0, size.1, pixels)
            .expect("a buffer of width × height × 3")
            .save(&png)
            .map_err(|e| anyhow::anyhow!("writing {}: {e}", png.display()))?;
        out.push((name.clone(), p.figure.title.clone(), svg));
    }
    Ok(out)
}

/// A number as the report's tables show it (the CSVs keep every digit):
/// four decimals in the usual range, three significant digits in
/// scientific notation for the very large and the very small (an odds
/// ratio's interval under separation reaches 10^20, which four decimals
/// would spell out in 30 digits).
fn shown(x: f64) -> String {
    if x != 0.0 && x.is_finite() && !(1e-3..1e6).contains(&x.abs()) {
        format!("{x:.2e}")
    } else {
        format!("{x:.4}")
    }
}

/// Where a plot with nothing to show would be: its title and why.
fn no_plot(f: &Figure, why: &str) -> String {
    format!(
        "<p class=\"noplot\"><b>{}</b>: no plot, {}</p>\n",
        esc(&f.title),
        esc(why)
    )
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The plain-language summary: every table's sentences, in order.
pub fn summary(t: &Tables) -> Vec<String> {
    let mut out: Vec<String> = t.tables.iter().flat_map(|t| t.summary.clone()).collect();
    if out.is_empty() {
        out.push("The input holds no trial that a table could use.".into());
    }
    out
}

/// One table as HTML (at most 500 rows; numbers with a decimal point to
/// four places), under its file name, title and description; nothing for a
/// table without rows.
fn table(t: &Table) -> String {
    if t.rows.is_empty() {
        return String::new();
    }
    let mut h = format!(
        "<h3>{}</h3>\n<p><b>{}.</b> {}</p>\n<table>\n<tr>",
        esc(&t.file),
        esc(&t.title),
        esc(&t.about)
    );
    for c in &t.header {
        let _ = write!(h, "<th>{}</th>", esc(c));
    }
    h.push_str("</tr>\n");
    for r in t.rows.iter().take(500) {
        h.push_str("<tr>");
        for v in r {
            let v = match v.parse::<f64>() {
                Ok(x) if v.contains(['.', 'e', 'E']) => shown(x),
                _ => v.clone(),
            };
            let _ = write!(h, "<td>{}</td>", esc(&v));
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</table>\n");
    if t.rows.len() > 500 {
        let _ = writeln!(
            h,
            "<p>… {} more rows in {}</p>",
            t.rows.len() - 500,
            esc(&t.file)
        );
    }
    h
}

/// Write `dir/report.html` from the tables, the plots, and run.json
/// (`manifest`, if the input was a run folder).
pub fn write_html(
    dir: &Path,
    t: &Tables,
    plots: &[(String, String, String)],
    manifest: Option<&serde_json::Value>,
) -> anyhow::Result<()> {
    let mut h = String::from(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>chatprobe report</title>\n<style>body{font-family:sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;color:#222}table{border-collapse:collapse;font-size:12px;margin-bottom:1em}td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}th{background:#f3f3f3}.provenance td,.provenance th{text-align:left}svg{max-width:100%;height:auto}li{margin-bottom:.4em}</style></head><body>\n<h1>chatprobe report</h1>\n",
    );
    // Tables with a section get a heading of their own, with their
    // sentences, plots and tables; the rest go under the general headings.
    let mut sections: Vec<(&str, Vec<&Table>)> = Vec::new();
    let changes_file = crate::analysis::changes::CHANGES_FILE;
    for tab in t
        .tables
        .iter()
        .filter(|x| !x.rows.is_empty() && x.file != changes_file)
    {
        if let Some(name) = tab.section.as_deref() {
            match sections.iter_mut().find(|(n, _)| *n == name) {
                Some((_, list)) => list.push(tab),
                None => sections.push((name, vec![tab])),
            }
        }
    }
    let in_section = |tab: &Table| {
        tab.file == changes_file
            || tab
                .section
                .as_deref()
                .is_some_and(|name| sections.iter().any(|(n, _)| *n == name))
    };
    let own_plots: Vec<&str> = sections
        .iter()
        .flat_map(|(_, list)| {
            list.iter()
                .flat_map(|x| x.figures.iter().map(|f| f.name.as_str()))
        })
        .collect();
    let figure_html = |name: &str, title: &str, svg: &str| {
        let svg = svg.find("<svg").map_or(svg, |i| &svg[i..]);
        format!(
            "<figure><figcaption>{} ({name}.svg, {name}.png)</figcaption>\n{svg}</figure>\n",
            esc(title)
        )
    };
    // What changed since the previous run: at the very top.
    if let Some(ch) = t
        .tables
        .iter()
        .find(|x| x.file == crate::analysis::changes::CHANGES_FILE)
    {
        let _ = writeln!(
            h,
            "<h2>{}</h2>\n<ul>",
            esc(ch.section.as_deref().unwrap_or("What changed"))
        );
        for s in &ch.summary {
            let _ = writeln!(h, "<li>{}</li>", esc(s));
        }
        h.push_str("</ul>\n");
        if !ch.rows.is_empty() {
            h.push_str(&table(ch));
        }
    }
    h.push_str("<h2>What this run shows</h2>\n<ul>\n");
    let general: Vec<String> = t
        .tables
        .iter()
        .filter(|x| !in_section(x))
        .flat_map(|x| x.summary.clone())
        .collect();
    if general.is_empty() && sections.is_empty() {
        h.push_str("<li>The input holds no trial that a table could use.</li>\n");
    }
    for s in general {
        let _ = writeln!(h, "<li>{}</li>", esc(&s));
    }
    for (name, _) in &sections {
        let _ = writeln!(h, "<li>{}: see its section below.</li>", esc(name));
    }
    h.push_str("</ul>\n");
    for (name, list) in &sections {
        let _ = writeln!(h, "<h2>{}</h2>\n<ul>", esc(name));
        for s in list.iter().flat_map(|x| &x.summary) {
            let _ = writeln!(h, "<li>{}</li>", esc(s));
        }
        h.push_str("</ul>\n");
        for fig in list.iter().flat_map(|x| &x.figures) {
            if let Some((n, title, svg)) = plots.iter().find(|p| p.0 == fig.name) {
                h.push_str(&figure_html(n, title, svg));
            } else if let Some(why) = fig.why_not() {
                h.push_str(&no_plot(fig, why));
            }
        }
        for tab in list {
            h.push_str(&table(tab));
        }
    }
    if let Some(m) = manifest {
        h.push_str(&provenance::html(m));
    }
    let rest: Vec<_> = plots
        .iter()
        .filter(|p| !own_plots.contains(&p.0.as_str()))
        .collect();
    let none: Vec<(&Figure, &str)> = t
        .tables
        .iter()
        .filter(|x| !in_section(x))
        .flat_map(|x| &x.figures)
        .filter_map(|f| f.why_not().map(|w| (f, w)))
        .collect();
    if !rest.is_empty() || !none.is_empty() {
        h.push_str("<h2>Plots</h2>\n");
        for (name, title, svg) in rest {
            h.push_str(&figure_html(name, title, svg));
        }
        for (f, why) in none {
            h.push_str(&no_plot(f, why));
        }
    }
    h.push_str("<h2>Tables</h2>\n<p>Intervals are 95% Wilson score intervals unless the analysis was run with <code>--interval exact</code>; Fisher p values are two-sided. docs/DATASET.md describes every column.</p>\n");
    for t in t.tables.iter().filter(|x| !in_section(x)) {
        h.push_str(&table(t));
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
    let mut tables = crate::analysis::compute_with(inputs, interval, analyses)?;
    // A run's changes since the previous run of its spec come first.
    if let [run] = inputs {
        let f = run.join(crate::analysis::changes::CHANGES_FILE);
        if let Some(t) = crate::analysis::changes::table_from_file(&f) {
            tables.tables.insert(0, t);
        }
    }
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
    crate::analysis::write_tables(d, &tables)?;
    let manifest = inputs
        .iter()
        .find(|i| i.is_dir())
        .and_then(|i| std::fs::read_to_string(i.join("run.json")).ok())
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok());
    let run_id = manifest
        .as_ref()
        .and_then(|m| m["run_id"].as_str())
        .filter(|_| inputs.len() == 1)
        .map(str::to_string);
    crate::analysis::write_package(d, &tables, run_id.as_deref())
        .context("writing datapackage.json")?;
    let plots = plots(&tables, d).context("drawing the plots")?;
    write_html(d, &tables, &plots, manifest.as_ref()).context("writing report.html")?;
    if out.is_dir() {
        std::fs::remove_dir_all(out).with_context(|| format!("replacing {}", out.display()))?;
    }
    // On failure the temporary folder is dropped, and removed with it.
    std::fs::rename(tmp.path(), out).with_context(|| format!("writing {}", out.display()))?;
    let _ = tmp.keep();
    Ok(tables)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A one-cell grid whose row is labelled `label`.
    fn one_cell(label: &str, legend: Vec<(GridCell, String)>) -> Figure {
        Figure {
            name: "g".into(),
            title: String::new(),
            heading: String::new(),
            x_label: String::new(),
            y_label: String::new(),
            chart: Chart::Grid {
                columns: vec!["d1".into()],
                rows: vec![(label.to_string(), vec![GridCell::Yes])],
                legend,
            },
        }
    }

    /// The pixels of a one-cell grid whose row is labelled `label`.
    fn png_of(label: &str) -> Vec<u8> {
        register_font();
        let f = one_cell(label, Vec::new());
        let size = size(&f);
        let mut pixels = vec![0u8; size.0 as usize * size.1 as usize * 3];
        {
            let area = BitMapBackend::with_buffer(&mut pixels, size).into_drawing_area();
            draw(&f, &area).unwrap();
        }
        pixels
    }

    #[test]
    fn grids_draw_their_legend_under_the_cells() {
        register_font();
        let legend = vec![
            (GridCell::Yes, "blocked".to_string()),
            (GridCell::None, "not in that run".to_string()),
        ];
        let f = one_cell("k", legend);
        let (w, h) = size(&f);
        assert_eq!(h, H, "one row and the legend fit the usual height");
        let mut svg = String::new();
        draw(
            &f,
            &SVGBackend::with_string(&mut svg, (w, h)).into_drawing_area(),
        )
        .unwrap();
        for words in ["blocked", "not in that run"] {
            assert!(
                svg.contains(&format!("\n{words}\n</text>")),
                "{words} missing: {svg}"
            );
        }
        // The blocked square in the cells' own red, in the strip.
        let red = format!(
            "#{:02X}{:02X}{:02X}",
            COLOURS[1].0, COLOURS[1].1, COLOURS[1].2
        );
        let squares = svg.matches(&format!("fill=\"{red}\"")).count();
        assert_eq!(squares, 2, "one red cell and one red legend square: {svg}");
        let mut bare = String::new();
        let f = one_cell("k", Vec::new());
        draw(
            &f,
            &SVGBackend::with_string(&mut bare, size(&f)).into_drawing_area(),
        )
        .unwrap();
        assert!(!bare.contains("\nblocked\n</text>"));
    }

    /// The lowest row with ink of each letter drawn at (x, 5) in `font`.
    fn letter_bottoms(font: (&str, u32), letters: &[&str]) -> Vec<usize> {
        register_font();
        let (w, h) = (40 * letters.len() as u32, 40u32);
        let mut pixels = vec![255u8; (w * h * 3) as usize];
        {
            let area = BitMapBackend::with_buffer(&mut pixels, (w, h)).into_drawing_area();
            for (i, l) in letters.iter().enumerate() {
                area.draw(&Text::new(*l, (i as i32 * 40 + 10, 5), font))
                    .unwrap();
            }
        }
        (0..letters.len())
            .map(|i| {
                (0..h as usize)
                    .filter(|&y| {
                        (i * 40..i * 40 + 40).any(|x| pixels[(y * w as usize + x) * 3] < 128)
                    })
                    .max()
                    .expect("the letter was drawn")
            })
            .collect()
    }

    #[test]
    fn report_numbers_are_short_and_csv_numbers_untouched() {
        assert_eq!(shown(0.04761904761904767), "0.0476");
        assert_eq!(shown(8.225165647665761e20), "8.23e20");
        assert_eq!(shown(1.0557377516918516e-18), "1.06e-18");
        assert_eq!(shown(0.0), "0.0000");
        assert_eq!(shown(12345.678), "12345.6780");
    }

    #[test]
    fn legend_letters_in_pngs_sit_on_one_baseline() {
        // Flat-bottomed letters of different heights: with an odd size
        // plotters sets some a pixel high (the reason for LEGEND_FONT).
        let letters = ["u", "x", "z", "l", "n", "i", "r"];
        let bottoms = letter_bottoms(LEGEND_FONT, &letters);
        assert!(
            bottoms.iter().all(|b| *b == bottoms[0]),
            "{letters:?} end on rows {bottoms:?}"
        );
        let odd = letter_bottoms(("sans-serif", 13), &letters);
        assert!(
            odd.iter().any(|b| *b != odd[0]),
            "plotters no longer misplaces glyphs at odd sizes: {odd:?}"
        );
    }

    #[test]
    fn chinese_labels_are_drawn_in_pngs() {
        assert!(
            chinese_font().is_some(),
            "no font covers Chinese here (fc-list :lang=zh): `make deps` installs fonts-wqy-microhei"
        );
        // A font without the glyphs draws every Chinese character as the
        // same empty box, so two labels would come out alike.
        assert!(
            png_of("六四") != png_of("天安"),
            "two Chinese labels drew alike: the glyphs are missing"
        );
    }
}
