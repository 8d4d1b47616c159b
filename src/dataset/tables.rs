//! Result tables and figures as data: what a design's analysis returns
//! (`probe::design::analysis`) and the analysis stage adds, each [`Table`]
//! with its summary sentences and its [`Figure`]s. `chatprobe analyze`
//! writes each table as CSV, and the report shows each table, its
//! sentences and its plots.
//!
//! A [`Figure`] is data, not drawing: a design says what to plot (curves with
//! intervals, bars, 0/1 outcomes with a logistic fit, series over runs) and
//! `report` draws it with plotters, the same way for every design.

/// A table an analysis computed.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// Its CSV file's name in the analysis folder.
    pub file: String,
    /// Its heading in the report.
    pub title: String,
    /// What a row says, for the report (one or two sentences).
    pub about: String,
    /// The columns.
    pub header: Vec<String>,
    /// The rows, formatted (numbers as they should appear in the CSV).
    pub rows: Vec<Vec<String>>,
    /// Plain-language sentences for the report's summary ("What this run
    /// shows").
    pub summary: Vec<String>,
    /// Its plots (drawn only when they have data).
    pub figures: Vec<Figure>,
    /// The report section it belongs to (its own heading, before the
    /// general plots and tables), if any.
    pub section: Option<String>,
}

impl Table {
    /// A table whose rows are serialized as every chatprobe CSV is (so
    /// numbers read the same as in the other tables); no summary, no plots.
    ///
    /// # Panics
    /// When the rows' field names are not `header` (a programming error,
    /// caught by any test that analyses a row).
    pub fn from_rows<T: serde::Serialize>(
        file: &str,
        title: &str,
        about: &str,
        header: &[&str],
        rows: &[T],
    ) -> Table {
        let mut w = csv::Writer::from_writer(Vec::new());
        for r in rows {
            w.serialize(r).expect("a row serializes");
        }
        let bytes = w.into_inner().expect("in memory");
        let mut records = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(bytes.as_slice())
            .into_records()
            .map(|r| -> Vec<String> {
                r.expect("just written").iter().map(String::from).collect()
            });
        if let Some(names) = records.next() {
            assert_eq!(
                names, header,
                "{file}: the row type's fields are not its header"
            );
        }
        Table {
            file: file.into(),
            title: title.into(),
            about: about.into(),
            header: header.iter().map(|h| h.to_string()).collect(),
            rows: records.collect(),
            summary: Vec::new(),
            figures: Vec::new(),
            section: None,
        }
    }
}

/// A plot, as data: `report` draws it as `NAME.svg` and `NAME.png`.
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    /// The files' stem (unique in the analysis folder).
    pub name: String,
    /// Its caption in the report.
    pub title: String,
    /// The heading drawn above the chart.
    pub heading: String,
    /// The x axis's label.
    pub x_label: String,
    /// The y axis's label.
    pub y_label: String,
    /// What is drawn.
    pub chart: Chart,
}

/// The kinds of chart a design can ask for.
#[derive(Debug, Clone, PartialEq)]
pub enum Chart {
    /// Rates over a numeric x, one line per series, with a shaded interval.
    Curves(Vec<Series>),
    /// Rates over named categories (runs, dates), one line per series,
    /// with error bars; each point's `x` is its category's index.
    Categories {
        /// The categories' labels, in order.
        labels: Vec<String>,
        /// The series.
        series: Vec<Series>,
    },
    /// One bar per category with its interval.
    Bars(Vec<Bar>),
    /// Horizontal bars, one row per category under its label, in groups
    /// (name, bars) drawn each in a colour of its own: for many categories
    /// of several experiments.
    GroupedRows(Vec<(String, Vec<Bar>)>),
    /// 0/1 outcomes against x, with the logistic curve
    /// `1 / (1 + exp(-(intercept + slope x)))` when there is a fit.
    Logistic {
        /// (x, outcome is 1).
        points: Vec<(f64, bool)>,
        /// (intercept, slope).
        fit: Option<(f64, f64)>,
    },
    /// A forest plot: one row per effect, a ratio and its interval on a
    /// log scale, with a line at 1 (no effect).
    Forest(Vec<ForestRow>),
    /// A grid of outcomes: one row per thing (an item), one cell per
    /// column (a trial).
    Grid {
        /// The columns' labels.
        columns: Vec<String>,
        /// Each row's label and its cells, one per column.
        rows: Vec<(String, Vec<GridCell>)>,
        /// What each kind of cell means here, drawn under the grid in
        /// this order (empty: no legend).
        legend: Vec<(GridCell, String)>,
    },
    /// Nothing worth drawing: the report says why in this sentence where
    /// the plot would be, and no file is written.
    Nothing(String),
}

/// One effect of a forest plot.
#[derive(Debug, Clone, PartialEq)]
pub struct ForestRow {
    /// What it is.
    pub label: String,
    /// The ratio.
    pub estimate: f64,
    /// Its interval's low end.
    pub lo: f64,
    /// Its interval's high end.
    pub hi: f64,
}

/// One cell of a [`Chart::Grid`]: a trial's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GridCell {
    /// No trial there.
    None,
    /// Judged, the answer yes (surveilled, blocked).
    Yes,
    /// Judged, the answer no.
    No,
    /// Settled otherwise (filtered in real time).
    Other,
    /// Inconclusive.
    Inconclusive,
}

/// A named series of rates.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Its legend entry.
    pub name: String,
    /// Its points, in x order.
    pub points: Vec<Point>,
}

/// A rate and its interval at `x`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// Where.
    pub x: f64,
    /// The rate (none of none: no rate).
    pub y: Option<f64>,
    /// The interval's low end.
    pub lo: Option<f64>,
    /// The interval's high end.
    pub hi: Option<f64>,
}

/// A bar: a category's rate and its interval.
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    /// The category.
    pub label: String,
    /// The rate.
    pub y: Option<f64>,
    /// The interval's low end.
    pub lo: Option<f64>,
    /// The interval's high end.
    pub hi: Option<f64>,
}

impl Figure {
    /// Whether there is anything to draw.
    pub fn has_data(&self) -> bool {
        match &self.chart {
            Chart::Curves(s) | Chart::Categories { series: s, .. } => {
                s.iter().any(|s| !s.points.is_empty())
            }
            Chart::Bars(b) => !b.is_empty(),
            Chart::GroupedRows(g) => g.iter().any(|g| !g.1.is_empty()),
            Chart::Logistic { points, .. } => !points.is_empty(),
            Chart::Forest(rows) => !rows.is_empty(),
            Chart::Grid { rows, .. } => !rows.is_empty(),
            Chart::Nothing(_) => false,
        }
    }

    /// Why there is no plot, when the figure says so.
    pub fn why_not(&self) -> Option<&str> {
        match &self.chart {
            Chart::Nothing(why) => Some(why),
            _ => None,
        }
    }
}
