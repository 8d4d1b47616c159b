//! Keyword files: the texts keyword experiments send, with `A+B`
//! combinations and their sub-combinations.

use std::collections::HashSet;
use std::path::Path;

use crate::error::InputError;
use crate::ranges::{check_cell, Declared, Range};

/// The sixteen characters the tag chatprobe appends to a text is spelled in
/// (box drawing, U+2500 block: never emoji, never markup, in every font;
/// see `platform::identity`). A keyword may not hold them.
pub const TAG_ALPHABET: [char; 16] = [
    '─', '│', '┌', '┐', '└', '┘', '├', '┤', '┬', '┴', '┼', '═', '║', '╔', '╗', '╚',
];
/// Why a keyword cannot be sent with a tag after it (None: it can).
pub fn keyword_problem(keyword: &str) -> Option<String> {
    if let Some(c) = keyword.chars().find(|c| TAG_ALPHABET.contains(c)) {
        return Some(format!(
            "holds `{c}`, one of the box-drawing characters chatprobe tags every text with"
        ));
    }
    None
}

/// A keyword (or an A+B combination) to send as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keyword {
    /// The parts, joined by `+` in datasets.
    pub parts: Vec<String>,
    /// sensitive | benign (from the keyword file).
    pub label: String,
    /// Topic (from the keyword file).
    pub topic: String,
}

impl Keyword {
    /// `A+B`.
    pub fn joined(&self) -> String {
        self.parts.join("+")
    }
}

/// The longest keyword (or `+` combination) a keyword file may hold, in
/// characters: published lists' longest are a few dozen.
pub const MAX_KEYWORD_CHARS: usize = 200;

/// The columns of a keyword file chatprobe reads and their ranges (others
/// are kept for the researcher: a translation, a source). Every row is
/// checked against them before it is used; the bad-input tests are
/// generated from them.
pub const COLUMNS: &[Declared] = &[
    Declared {
        path: "keyword",
        range: Range::Text {
            min: 1,
            max: MAX_KEYWORD_CHARS,
        },
    },
    Declared {
        path: "topic",
        range: Range::Text { min: 0, max: 100 },
    },
    Declared {
        path: "label",
        range: Range::OneOf {
            words: &["sensitive", "benign"],
            empty: true,
        },
    },
];

/// Read a keyword file (`keyword,…,topic,…,label` columns; parts of a
/// combination joined by `+`) and expand combinations: with `combinations =
/// k`, every sub-combination of up to `k` parts of a multi-part row is
/// tested too (so minimal triggers can be found). Order: file order, each
/// row's sub-combinations before it; duplicates dropped.
pub fn load_keywords(
    path: &Path,
    combinations: u32,
    labels: &[String],
    topics: &[String],
) -> Result<Vec<Keyword>, InputError> {
    let mut rdr = csv::Reader::from_path(path).map_err(|e| {
        InputError::new(path, format!("cannot read the keyword file: {e}")).hint("check the path")
    })?;
    let headers = rdr
        .headers()
        .map_err(|e| InputError::new(path, format!("malformed header: {e}")).line(1))?
        .clone();
    let col = |name: &str| headers.iter().position(|h| h.trim() == name);
    let Some(kc) = col("keyword") else {
        return Err(InputError::new(path, "no `keyword` column")
            .line(1)
            .key("keyword"));
    };
    let (tc, lc) = (col("topic"), col("label"));
    let mut out: Vec<Keyword> = Vec::new();
    let mut seen = HashSet::new();
    for (i, rec) in rdr.records().enumerate() {
        let line = i as u64 + 2;
        let rec =
            rec.map_err(|e| InputError::new(path, format!("malformed row: {e}")).line(line))?;
        for d in COLUMNS {
            if let Some(v) = col(d.path).and_then(|c| rec.get(c)) {
                check_cell(path, line, d, v.trim())?;
            }
        }
        let kw = rec.get(kc).unwrap_or("").trim();
        let parts: Vec<String> = kw
            .split('+')
            .map(|p| p.trim().to_string())
            .filter(|p| !p.is_empty())
            .collect();
        if parts.is_empty() {
            return Err(InputError::new(path, "empty keyword")
                .line(line)
                .key("keyword"));
        }
        if let Some(why) = keyword_problem(kw) {
            return Err(InputError::new(path, format!("keyword `{kw}` {why}"))
                .line(line)
                .key("keyword")
                .hint("remove the box-drawing characters (U+2500–U+257F) from the keyword"));
        }
        if kw.chars().count() > MAX_KEYWORD_CHARS {
            return Err(InputError::new(
                path,
                format!(
                    "a keyword of {} characters: a keyword (or combination) is at most {MAX_KEYWORD_CHARS}",
                    kw.chars().count()
                ),
            )
            .line(line)
            .key("keyword")
            .hint("texts to search for keywords in go in an isolate experiment's texts file"));
        }
        let topic = tc.and_then(|c| rec.get(c)).unwrap_or("").to_string();
        let label = lc.and_then(|c| rec.get(c)).unwrap_or("").trim().to_string();
        if !label.is_empty() {
            if let Err(m) = label.parse::<crate::corpus::Label>() {
                return Err(InputError::new(path, m)
                    .line(line)
                    .key("label")
                    .hint("write `sensitive` or `benign` (or leave it empty)"));
            }
        }
        if !labels.is_empty() && !labels.contains(&label) {
            continue;
        }
        if !topics.is_empty() && !topics.contains(&topic) {
            continue;
        }
        let mut subs: Vec<Vec<String>> = Vec::new();
        if parts.len() > 1 && combinations > 0 {
            let k = parts.len();
            for mask in 1u32..(1 << k) - 1 {
                if mask.count_ones() <= combinations {
                    subs.push(
                        (0..k)
                            .filter(|b| mask >> b & 1 == 1)
                            .map(|b| parts[b].clone())
                            .collect(),
                    );
                }
            }
            subs.sort_by_key(|s| s.len());
        }
        subs.push(parts);
        for s in subs {
            if seen.insert(s.join("+")) {
                out.push(Keyword {
                    parts: s,
                    label: label.clone(),
                    topic: topic.clone(),
                });
            }
        }
    }
    Ok(out)
}
