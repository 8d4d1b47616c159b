//! `corpus/features.csv`: what can be known of each item without the
//! platform, for the analyses that ask which content triggers censorship
//! or surveillance (joined to the datasets by item id).
//!
//! One row per item (not per variant): its kind and format, size and
//! dimensions, language, topic, label and source from the manifest; whether
//! it carries text, and how much; and the sensitive keywords of the
//! corpus's keyword list (`keywords.csv`, rows labelled `sensitive`) that
//! its text holds, with counts. A document's text is what a censor's
//! inspection reads ([`super::text::extract`]); an image's is what the
//! manifest says it shows, in a `notes` field starting `text:` (the
//! starter corpus's convention; `has_text` is empty when the manifest does
//! not say). Matching ignores white space, as the testbed's filter does.
//!
//! Written by `corpus index`, beside index.csv, from scratch each time:
//! extraction is fast for the documents a chat carries.

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::index::IndexRow;
use super::manifest::{Format, Item, ItemKind};
use super::{CorpusError, Manifest};

/// The file's name in the corpus folder.
pub const FEATURES_FILE: &str = "features.csv";

/// The file in a run folder holding the features of the items the run
/// sends (the same columns).
pub const RUN_ITEMS_FILE: &str = "items.csv";

/// The columns of features.csv, in order.
pub const FEATURE_COLUMNS: [&str; 15] = [
    "item_id",
    "kind",
    "format",
    "bytes",
    "width",
    "height",
    "lang",
    "topic",
    "label",
    "source",
    "has_text",
    "text_chars",
    "sensitive_keywords",
    "keyword_hits",
    "keywords",
];

/// One row of features.csv.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureRow {
    /// The item.
    pub item_id: String,
    /// `image` or `document`.
    pub kind: String,
    /// `png`, `jpg`, `txt`, `docx`, `pdf` (the file's extension).
    pub format: String,
    /// File size.
    pub bytes: u64,
    /// Image width (images only).
    pub width: Option<u32>,
    /// Image height (images only).
    pub height: Option<u32>,
    /// From the manifest.
    pub lang: String,
    /// From the manifest.
    pub topic: String,
    /// From the manifest.
    pub label: String,
    /// From the manifest.
    pub source: String,
    /// Whether it carries text (empty: unknown, an image whose manifest
    /// row does not say).
    #[serde(with = "crate::dataset::bool_column::option", default)]
    pub has_text: Option<bool>,
    /// Characters of its text, white space left out (empty: unknown).
    pub text_chars: Option<u64>,
    /// How many rows of the keyword list its text holds (a combination
    /// `A+B` counts when every part is there).
    pub sensitive_keywords: u64,
    /// Their occurrences in all (a combination: its rarest part's).
    pub keyword_hits: u64,
    /// `keyword:count` for each, `;`-separated, in keyword-list order.
    pub keywords: String,
}

/// The text an item carries, if known: a document's extracted text, or an
/// image's `text:` note.
fn item_text(dir: &Path, item: &Item) -> Result<Option<String>, CorpusError> {
    match item.kind {
        ItemKind::Document => {
            let path = super::entry_path(dir, &item.path)?;
            let bytes = super::read_file(&path)?;
            // A document whose text cannot be read has unknown features,
            // not a broken index (its container was checked already).
            Ok(Format::from_path(&path)
                .and_then(|format| super::text::extract(&path, &bytes, format).ok()))
        }
        ItemKind::Image => Ok(item
            .notes
            .trim()
            .strip_prefix("text:")
            .map(|t| t.trim().to_string())),
    }
}

/// The sensitive rows of `dir/keywords.csv` (none if there is no such
/// file), each as its parts, with its `A+B` name.
fn sensitive_keywords(dir: &Path) -> Result<Vec<(String, Vec<String>)>, CorpusError> {
    let path = dir.join("keywords.csv");
    if !path.is_file() {
        return Ok(Vec::new());
    }
    let rows = crate::corpus::keywords::load_keywords(&path, 0, &["sensitive".to_string()], &[])?;
    Ok(rows
        .into_iter()
        .map(|k| {
            let parts = k.parts.iter().map(|p| super::text::squeeze(p)).collect();
            (k.joined(), parts)
        })
        .collect())
}

/// Occurrences of `needle` in `hay`, not overlapping.
fn count(hay: &str, needle: &str) -> u64 {
    if needle.is_empty() {
        0
    } else {
        hay.matches(needle).count() as u64
    }
}

/// The features of every item of `manifest`, with its index rows.
pub fn build(
    dir: &Path,
    manifest: &Manifest,
    index: &[IndexRow],
) -> Result<Vec<FeatureRow>, CorpusError> {
    let keywords = sensitive_keywords(dir)?;
    let by_item: HashMap<&str, &IndexRow> = index
        .iter()
        .filter(|r| r.variant_id == r.item_id)
        .map(|r| (r.item_id.as_str(), r))
        .collect();
    let mut out = Vec::with_capacity(manifest.items.len());
    for item in &manifest.items {
        let ix = by_item.get(item.id.as_str());
        let text = item_text(dir, item)?.map(|t| super::text::squeeze(&t));
        let mut found = Vec::new();
        let mut hits = 0;
        if let Some(t) = &text {
            for (name, parts) in &keywords {
                let n = parts.iter().map(|p| count(t, p)).min().unwrap_or(0);
                if n > 0 {
                    hits += n;
                    found.push(format!("{name}:{n}"));
                }
            }
        }
        out.push(FeatureRow {
            item_id: item.id.clone(),
            kind: item.kind.to_string(),
            format: Format::from_path(Path::new(&item.path))
                .map(|f| f.extension().to_string())
                .unwrap_or_default(),
            bytes: ix.map_or(0, |r| r.bytes),
            width: ix.and_then(|r| r.width),
            height: ix.and_then(|r| r.height),
            lang: item.lang.clone(),
            topic: item.topic.clone(),
            label: item.label.to_string(),
            source: item.source.clone(),
            has_text: text.as_ref().map(|t| !t.is_empty()),
            text_chars: text.as_ref().map(|t| t.chars().count() as u64),
            sensitive_keywords: found.len() as u64,
            keyword_hits: hits,
            keywords: found.join(";"),
        });
    }
    Ok(out)
}

/// Read `dir/features.csv` (empty if there is none).
pub fn load(dir: &Path) -> Result<Vec<FeatureRow>, CorpusError> {
    let path = dir.join(FEATURES_FILE);
    if !path.is_file() {
        return Ok(Vec::new());
    }
    let mut rdr = csv::Reader::from_path(&path)
        .map_err(|e| crate::error::InputError::new(&path, format!("cannot read: {e}")))?;
    let mut out = Vec::new();
    for (i, r) in rdr.deserialize().enumerate() {
        out.push(r.map_err(|e| {
            crate::error::InputError::new(&path, format!("malformed row: {e}"))
                .line(i as u64 + 2)
                .hint("run `chatprobe corpus index` again")
        })?);
    }
    Ok(out)
}
