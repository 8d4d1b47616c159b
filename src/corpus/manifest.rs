//! `corpus/manifest.csv`: the list of corpus items, one row per file.
//!
//! Columns: `id, kind, path, label, topic, lang, source, date_added, notes`.
//! `kind` is `image` or `document`; `label` is `sensitive` or `benign`;
//! `path` is relative to the corpus folder. Reading validates every row and
//! names the file, line and column of the first problem.

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::CorpusError;
use crate::error::InputError;
use crate::ranges::{check_cell, Declared, Range};

/// The manifest's file name inside a corpus folder.
pub const MANIFEST_FILE: &str = "manifest.csv";

/// The columns of manifest.csv, in order.
pub const MANIFEST_COLUMNS: [&str; 9] = [
    "id",
    "kind",
    "path",
    "label",
    "topic",
    "lang",
    "source",
    "date_added",
    "notes",
];

/// What an item is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum ItemKind {
    /// A picture (PNG or JPEG).
    Image,
    /// A document (txt, docx or pdf).
    Document,
}

impl fmt::Display for ItemKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ItemKind::Image => "image",
            ItemKind::Document => "document",
        })
    }
}

impl FromStr for ItemKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "image" => Ok(ItemKind::Image),
            "document" => Ok(ItemKind::Document),
            _ => Err(format!("kind must be `image` or `document`, not `{s}`")),
        }
    }
}

/// The researcher's label of an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Label {
    /// Content expected to be censored.
    Sensitive,
    /// A specificity control.
    Benign,
}

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Label::Sensitive => "sensitive",
            Label::Benign => "benign",
        })
    }
}

impl FromStr for Label {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "sensitive" => Ok(Label::Sensitive),
            "benign" => Ok(Label::Benign),
            _ => Err(format!("label must be `sensitive` or `benign`, not `{s}`")),
        }
    }
}

/// One row of manifest.csv.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    /// Stable identifier, e.g. `img-001`: letters, digits, `-` and `_`.
    pub id: String,
    /// image | document.
    pub kind: ItemKind,
    /// Path relative to the corpus folder, with `/` separators.
    pub path: String,
    /// sensitive | benign.
    pub label: Label,
    /// Free-form topic, e.g. `june4`, `food`.
    pub topic: String,
    /// BCP 47 language tag of the content, e.g. `zh-Hans`; empty if none.
    pub lang: String,
    /// Provenance of the item.
    pub source: String,
    /// Date the item joined the corpus, YYYY-MM-DD.
    pub date_added: String,
    /// Anything else.
    pub notes: String,
}

/// File formats chatprobe knows how to transform, hash and extract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// PNG image.
    Png,
    /// JPEG image.
    Jpeg,
    /// Plain UTF-8 text.
    Txt,
    /// Office Open XML word-processing document.
    Docx,
    /// PDF document.
    Pdf,
}

impl Format {
    /// The format from a file name's extension (case-insensitive).
    pub fn from_path(path: &Path) -> Option<Format> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "png" => Some(Format::Png),
            "jpg" | "jpeg" => Some(Format::Jpeg),
            "txt" => Some(Format::Txt),
            "docx" => Some(Format::Docx),
            "pdf" => Some(Format::Pdf),
            _ => None,
        }
    }

    /// The item kind of files in this format.
    pub fn kind(self) -> ItemKind {
        match self {
            Format::Png | Format::Jpeg => ItemKind::Image,
            _ => ItemKind::Document,
        }
    }

    /// The canonical file extension.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Png => "png",
            Format::Jpeg => "jpg",
            Format::Txt => "txt",
            Format::Docx => "docx",
            Format::Pdf => "pdf",
        }
    }
}

/// The columns of a manifest and their ranges (`notes` is free text).
/// Every row is checked against them before it is used; the bad-input
/// tests are generated from them.
pub const COLUMNS: &[Declared] = &[
    Declared {
        path: "id",
        range: Range::Name {
            max: 120,
            also: "-_.",
        },
    },
    Declared {
        path: "kind",
        range: Range::OneOf {
            words: &["image", "document"],
            empty: false,
        },
    },
    Declared {
        path: "path",
        range: Range::Text { min: 1, max: 4096 },
    },
    Declared {
        path: "label",
        range: Range::OneOf {
            words: &["sensitive", "benign"],
            empty: false,
        },
    },
    Declared {
        path: "topic",
        range: Range::Text { min: 0, max: 100 },
    },
    Declared {
        path: "lang",
        range: Range::Text { min: 0, max: 35 },
    },
    Declared {
        path: "source",
        range: Range::Text { min: 0, max: 2000 },
    },
    Declared {
        path: "date_added",
        range: Range::Date { empty: true },
    },
];

/// Whether `id` is a valid item id.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 120
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        && !id.starts_with('.')
}

/// A corpus manifest with the folder it lives in.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// The corpus folder.
    pub dir: PathBuf,
    /// The items, in file order.
    pub items: Vec<Item>,
}

impl Manifest {
    /// The manifest's own path.
    pub fn path(&self) -> PathBuf {
        self.dir.join(MANIFEST_FILE)
    }

    /// Read and validate `DIR/manifest.csv`. Checks the header, every value,
    /// unique ids and paths, and that every file exists.
    pub fn load(dir: &Path) -> Result<Manifest, CorpusError> {
        let path = dir.join(MANIFEST_FILE);
        if !path.is_file() {
            return Err(InputError::new(&path, "no corpus manifest here")
                .hint("pass --corpus DIR pointing at a folder with manifest.csv")
                .into());
        }
        let mut rdr = csv::ReaderBuilder::new()
            .has_headers(true)
            .from_path(&path)
            .map_err(|e| CorpusError::io(&path, e.into()))?;
        let headers = rdr.headers().map_err(|e| csv_input(&path, e))?.clone();
        for col in MANIFEST_COLUMNS {
            if !headers.iter().any(|h| h == col) {
                return Err(InputError::new(&path, format!("missing column `{col}`"))
                    .line(1)
                    .key(col)
                    .hint(format!(
                        "the header must be: {}",
                        MANIFEST_COLUMNS.join(",")
                    ))
                    .into());
            }
        }
        let mut items = Vec::new();
        let mut ids = HashSet::new();
        let mut paths = HashSet::new();
        for record in rdr.records() {
            let record = record.map_err(|e| csv_input(&path, e))?;
            let line = record.position().map(|p| p.line()).unwrap_or(0);
            let get = |col: &str| -> String {
                headers
                    .iter()
                    .position(|h| h == col)
                    .and_then(|i| record.get(i))
                    .unwrap_or("")
                    .trim()
                    .to_string()
            };
            let bad = |col: &str, msg: String| -> CorpusError {
                InputError::new(&path, msg).line(line).key(col).into()
            };
            for d in COLUMNS {
                check_cell(&path, line, d, &get(d.path))?;
            }
            let id = get("id");
            if !valid_id(&id) {
                return Err(bad(
                    "id",
                    format!("invalid id `{id}`: use letters, digits, `-`, `_` and `.`"),
                ));
            }
            if !ids.insert(id.clone()) {
                return Err(bad("id", format!("duplicate id `{id}`")));
            }
            let kind: ItemKind = get("kind").parse().map_err(|m| bad("kind", m))?;
            let label: Label = get("label").parse().map_err(|m| bad("label", m))?;
            let rel = get("path");
            if rel.is_empty() || Path::new(&rel).is_absolute() || rel.split('/').any(|c| c == "..")
            {
                return Err(bad(
                    "path",
                    format!("path `{rel}` must be relative to the corpus folder, without `..`"),
                ));
            }
            let format = Format::from_path(Path::new(&rel)).ok_or_else(|| {
                bad(
                    "path",
                    format!("`{rel}`: unsupported file type (png, jpg, jpeg, txt, docx, pdf)"),
                )
            })?;
            if format.kind() != kind {
                return Err(bad(
                    "kind",
                    format!("`{rel}` is a {} file but kind says {kind}", format.kind()),
                ));
            }
            if !paths.insert(rel.clone()) {
                return Err(bad("path", format!("`{rel}` is listed twice")));
            }
            if !dir.join(&rel).is_file() {
                return Err(InputError::new(
                    dir.join(&rel),
                    "file listed in the manifest is missing",
                )
                .hint(format!(
                    "restore it, or remove item `{id}` from {} (line {line})",
                    path.display()
                ))
                .into());
            }
            let date = get("date_added");
            if !date.is_empty() && chrono::NaiveDate::parse_from_str(&date, "%Y-%m-%d").is_err() {
                return Err(bad(
                    "date_added",
                    format!("`{date}` is no date: write it as YYYY-MM-DD (or leave it empty)"),
                ));
            }
            items.push(Item {
                id,
                kind,
                path: rel,
                label,
                topic: get("topic"),
                lang: get("lang"),
                source: get("source"),
                date_added: date,
                notes: get("notes"),
            });
        }
        Ok(Manifest {
            dir: dir.to_path_buf(),
            items,
        })
    }

    /// Write the manifest atomically.
    pub fn save(&self) -> Result<(), CorpusError> {
        let path = self.path();
        crate::fsutil::atomic_write(&path, |w| {
            let mut wtr = csv::Writer::from_writer(w);
            for item in &self.items {
                wtr.serialize(item)?;
            }
            wtr.flush()?;
            Ok::<(), CorpusError>(())
        })
        .map_err(|e| e.with_path(&path))
    }

    /// The item with this id.
    pub fn get(&self, id: &str) -> Option<&Item> {
        self.items.iter().find(|i| i.id == id)
    }
}

fn csv_input(path: &Path, e: csv::Error) -> CorpusError {
    let line = e.position().map(|p| p.line());
    let mut err = InputError::new(path, format!("malformed CSV: {e}"));
    if let Some(l) = line {
        err = err.line(l);
    }
    err.into()
}
