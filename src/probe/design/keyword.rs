//! `keyword`: which texts are blocked? Each keyword (or `A+B` combination,
//! with its sub-combinations when `combinations` is set) of a keyword file
//! is sent once as a text into a chat with a china account.

use std::sync::Arc;

use rand_chacha::ChaCha8Rng;

use super::{
    blocked_or_evaded, Common, Design, Experiment, ItemFilter, ParseCx, TrialOutcomes, TrialVerdict,
};
use crate::corpus::keywords::{load_keywords, Keyword};
use crate::dataset::Verdict;
use crate::error::InputError;
use crate::probe::plan::{send_text, trial, Trial};
use crate::ranges::{Declared, Range};

/// The registry entry.
pub const DESIGN: Design = Design {
    name: "keyword",
    about: "texts from keyword lists and their combinations",
    keys: &["items", "keywords", "combinations"],
    ranges: &[Declared {
        path: "combinations",
        range: Range::int(0, MAX_COMBINATION_PARTS as i64),
    }],
    parse,
    verdicts: &[Verdict::Blocked, Verdict::Evaded],
    analysis: Some(|| Box::new(KeywordTable::default())),
    findings: None,
};

#[derive(Debug)]
struct KeywordDesign {
    common: Common,
    keywords: Vec<Keyword>,
}

/// Most parts of a sub-combination `combinations` may ask for.
const MAX_COMBINATION_PARTS: u32 = 4;

fn parse(cx: &ParseCx) -> Result<Arc<dyn Experiment>, InputError> {
    let filter: Option<ItemFilter> = cx.get("items")?;
    if let Some(f) = &filter {
        if f.is_empty() {
            return Err(cx
                .err(
                    "items",
                    "an empty filter would select every keyword silently",
                )
                .hint("leave `items` out to test every keyword, or filter by label or topic"));
        }
        if !f.id.is_empty() || !f.kind.is_empty() {
            return Err(cx.err(
                "items",
                "a keyword experiment filters keywords by `label` and `topic` only",
            ));
        }
    }
    let kpath = cx.path("keywords")?;
    let combos: u32 = cx.get("combinations")?.unwrap_or(0);
    let f = filter.unwrap_or_default();
    let keywords = load_keywords(&kpath, combos, &f.label, &f.topic).map_err(|err| {
        if err.path == kpath {
            err
        } else {
            cx.err("keywords", err.message)
        }
    })?;
    if keywords.is_empty() {
        return Err(cx
            .err("items", "no keyword matches this filter")
            .hint("check label and topic against the keyword file"));
    }
    Ok(Arc::new(KeywordDesign {
        common: cx.common(),
        keywords,
    }))
}

impl Experiment for KeywordDesign {
    fn common(&self) -> &Common {
        &self.common
    }

    fn max_sends(&self) -> u64 {
        self.keywords.len() as u64 * self.common.replicates as u64
    }

    fn first_trials(&self, _rng: &mut ChaCha8Rng) -> Vec<Trial> {
        let mut out = Vec::new();
        for rep in 1..=self.common.replicates {
            for k in &self.keywords {
                let id = format!("{}/{}/r{rep}", self.common.name, k.joined());
                let s = send_text(&id, &self.common.test_chat, k.parts.join(" "));
                let mut t = trial(id, self, None, k.joined(), vec![s]);
                t.keyword = Some(k.clone());
                out.push(t);
            }
        }
        out
    }

    fn verdict(&self, _t: &Trial, o: &TrialOutcomes) -> TrialVerdict {
        blocked_or_evaded(o, true, None)
    }
}

/// The analysis: `keywords.csv`, one row per experiment and keyword (or
/// `A+B` combination), inconclusive trials left out.
#[derive(Default)]
struct KeywordTable {
    /// (experiment_name, keyword) → (trials, blocked).
    counts: std::collections::BTreeMap<(String, String), (u64, u64)>,
}

/// A row of keywords.csv.
#[derive(serde::Serialize)]
struct KeywordRow {
    experiment_name: String,
    keyword: String,
    parts: usize,
    n: u64,
    blocked: u64,
    rate: Option<f64>,
    ci_low: Option<f64>,
    ci_high: Option<f64>,
    /// Blocked, and no tested combination of a proper subset of its parts was.
    #[serde(with = "crate::dataset::bool_column")]
    minimal_trigger: bool,
}

/// The parts of a keyword combination (`A+B`), trimmed.
fn parts(keyword: &str) -> std::collections::BTreeSet<String> {
    keyword
        .split('+')
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect()
}

impl super::analysis::Analysis for KeywordTable {
    fn trial(&mut self, t: &crate::dataset::TrialRow) {
        if t.verdict == Verdict::Inconclusive {
            return;
        }
        let c = self
            .counts
            .entry((t.experiment_name.clone(), t.parameter.clone()))
            .or_default();
        c.0 += 1;
        c.1 += u64::from(t.verdict == Verdict::Blocked);
    }

    fn finish(
        self: Box<Self>,
        interval: crate::stats::Interval,
    ) -> Vec<crate::dataset::tables::Table> {
        // A combination is a minimal trigger when it was blocked and no
        // tested keyword made of a proper subset of its parts was.
        let blocked_sets: Vec<(&String, std::collections::BTreeSet<String>)> = self
            .counts
            .iter()
            .filter(|(_, c)| c.1 > 0)
            .map(|((e, k), _)| (e, parts(k)))
            .collect();
        let rows: Vec<KeywordRow> = self
            .counts
            .iter()
            .map(|((name, keyword), &(n, k))| {
                let mine = parts(keyword);
                let minimal = k > 0
                    && !blocked_sets.iter().any(|(e, other)| {
                        *e == name && other.len() < mine.len() && other.is_subset(&mine)
                    });
                let (lo, hi) = interval.ci(k, n);
                KeywordRow {
                    experiment_name: name.clone(),
                    keyword: keyword.clone(),
                    parts: mine.len(),
                    n,
                    blocked: k,
                    rate: crate::stats::rate(k, n),
                    ci_low: lo,
                    ci_high: hi,
                    minimal_trigger: minimal,
                }
            })
            .collect();
        let mut table = crate::dataset::tables::Table::from_rows(
            "keywords.csv",
            "Keywords",
            "Each row is a keyword or an A+B combination sent as text (design keyword): how often it was blocked, with its interval; minimal_trigger: blocked, and no tested keyword made of a proper subset of its parts was.",
            &[
                "experiment_name",
                "keyword",
                "parts",
                "n",
                "blocked",
                "rate",
                "ci_low",
                "ci_high",
                "minimal_trigger",
            ],
            &rows,
        );
        if !rows.is_empty() {
            let blocked = rows.iter().filter(|k| k.blocked > 0).count();
            let minimal: Vec<&str> = rows
                .iter()
                .filter(|k| k.minimal_trigger && k.parts > 1)
                .map(|k| k.keyword.as_str())
                .collect();
            table.summary.push(format!(
                "Keywords: {} of {} tested keywords and combinations were blocked in texts.{}",
                blocked,
                rows.len(),
                if minimal.is_empty() {
                    String::new()
                } else {
                    format!(
                        " Combinations blocked although no part of them was blocked alone: {}.",
                        minimal.join(", ")
                    )
                }
            ));
        }
        vec![table]
    }
}
