//! `chatprobe corpus import DIR`: add a researcher's own files (for example a
//! local copy of a published censored-image set) to the corpus.
//!
//! Files are walked recursively in name order; PNG, JPEG, txt, docx and pdf are
//! taken, anything else is reported and left alone. A file whose SHA-256 is
//! already in the corpus (or earlier in the same import) is skipped and
//! reported. Images must decode. Files are copied to
//! `corpus/imported/<topic>/`, and manifest and index are written only when
//! every file was read: a corrupt file aborts the import with nothing written.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::hash;
use super::manifest::{valid_id, Format, Item, ItemKind, Label, Manifest};
use super::CorpusError;
use crate::error::InputError;
use crate::fsutil;

/// Folder inside the corpus that imported files are copied to.
pub const IMPORTED_DIR: &str = "imported";

/// A file read for import: source path, format, bytes, SHA-256.
type ReadFile = (PathBuf, Format, Vec<u8>, String);

/// What an import is told about the files.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// Label of every imported file.
    pub label: Label,
    /// Topic of every imported file.
    pub topic: String,
    /// Provenance of every imported file.
    pub source: String,
    /// Language tag of their content (may be empty).
    pub lang: String,
    /// Notes for every imported file (may be empty).
    pub notes: String,
}

/// What an import did.
#[derive(Debug, Clone, Default)]
pub struct ImportReport {
    /// Items added: (id, path in the corpus).
    pub added: Vec<(String, String)>,
    /// Duplicates skipped: (source file, id of the item it duplicates, or the
    /// earlier file of this import).
    pub duplicates: Vec<(PathBuf, String)>,
    /// Files of an unsupported type, left alone.
    pub unsupported: Vec<PathBuf>,
    /// The corpus was new: its folder and manifest were made.
    pub created: bool,
}

/// Import the files under `src` into the corpus at `dir`.
pub fn import(
    dir: &Path,
    src: &Path,
    opts: &ImportOptions,
    quiet: bool,
) -> Result<ImportReport, CorpusError> {
    if !src.is_dir() {
        return Err(InputError::new(src, "not a folder")
            .hint("pass the folder holding the files to import")
            .into());
    }
    let topic_slug = slug(&opts.topic);
    if topic_slug.is_empty() {
        return Err(InputError::new("--topic", "the topic must contain a letter or digit").into());
    }
    // A folder without a manifest (or no folder yet) is a new corpus: its
    // manifest is made with the first files imported.
    let created = !dir.join(super::manifest::MANIFEST_FILE).exists();
    if created && dir.exists() && !dir.is_dir() {
        return Err(InputError::new(dir, "not a folder")
            .hint("pass --corpus DIR naming the corpus folder (made if missing)")
            .into());
    }
    let mut manifest = if created {
        Manifest {
            dir: dir.to_path_buf(),
            items: Vec::new(),
        }
    } else {
        Manifest::load(dir)?
    };

    let mut files = Vec::new();
    let mut report = ImportReport::default();
    for entry in walkdir::WalkDir::new(src).sort_by_file_name() {
        let entry = entry.map_err(|e| {
            let p = e.path().unwrap_or(src).to_path_buf();
            CorpusError::io(&p, e.into())
        })?;
        if !entry.file_type().is_file() {
            continue;
        }
        match Format::from_path(entry.path()) {
            Some(f) => files.push((entry.path().to_path_buf(), f)),
            None => report.unsupported.push(entry.path().to_path_buf()),
        }
    }

    // SHA-256 of what the corpus already holds.
    let known: Vec<Result<(String, String), CorpusError>> = manifest
        .items
        .par_iter()
        .map(|i| {
            let bytes = super::read_file(&dir.join(&i.path))?;
            Ok((hash::sha256_hex(&bytes), i.id.clone()))
        })
        .collect();
    let mut known: HashMap<String, String> = known.into_iter().collect::<Result<_, _>>()?;

    let pb = fsutil::progress_bar(files.len() as u64, "reading", quiet);
    let read: Vec<Result<ReadFile, CorpusError>> = files
        .par_iter()
        .map(|(p, f)| {
            let bytes = super::read_file(p)?;
            if f.kind() == ItemKind::Image {
                hash::decode_image(p, &bytes)?;
            }
            let sha = hash::sha256_hex(&bytes);
            pb.inc(1);
            Ok((p.clone(), *f, bytes, sha))
        })
        .collect();
    pb.finish_and_clear();
    let read: Vec<_> = read.into_iter().collect::<Result<_, _>>()?;

    let mut ids: HashSet<String> = manifest.items.iter().map(|i| i.id.clone()).collect();
    let mut paths: HashSet<String> = manifest.items.iter().map(|i| i.path.clone()).collect();
    let mut to_write = Vec::new();
    let today = super::today();
    for (src_path, format, bytes, sha) in read {
        if let Some(prev) = known.get(&sha) {
            report.duplicates.push((src_path, prev.clone()));
            continue;
        }
        let stem = src_path
            .file_stem()
            .and_then(|s| s.to_str())
            .map(slug)
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| sha[..12].to_string());
        let prefix = match format.kind() {
            ItemKind::Image => "img",
            ItemKind::Document => "doc",
        };
        let id = unique(&format!("{prefix}-{topic_slug}-{stem}"), |c| {
            ids.contains(c)
        });
        let rel = unique(&format!("{IMPORTED_DIR}/{topic_slug}/{stem}"), |c| {
            paths.contains(&format!("{c}.{}", format.extension()))
                || dir.join(format!("{c}.{}", format.extension())).exists()
        });
        let rel = format!("{rel}.{}", format.extension());
        debug_assert!(valid_id(&id));
        ids.insert(id.clone());
        paths.insert(rel.clone());
        known.insert(sha, id.clone());
        manifest.items.push(Item {
            id: id.clone(),
            kind: format.kind(),
            path: rel.clone(),
            label: opts.label,
            topic: opts.topic.clone(),
            lang: opts.lang.clone(),
            source: opts.source.clone(),
            date_added: today.clone(),
            notes: opts.notes.clone(),
        });
        report.added.push((id, rel.clone()));
        to_write.push((rel, bytes));
    }
    for (rel, bytes) in &to_write {
        let p = dir.join(rel);
        fsutil::atomic_write_bytes(&p, bytes).map_err(|e| CorpusError::io(&p, e))?;
    }
    if created && to_write.is_empty() {
        return Err(InputError::new(
            src,
            "no file chatprobe can send is here (png, jpg, jpeg, txt, docx, pdf): no corpus was made",
        )
        .into());
    }
    if !to_write.is_empty() {
        manifest.save()?;
    }
    super::index::build(dir, quiet)?;
    report.created = created;
    Ok(report)
}

/// Lowercase ASCII letters and digits, other runs as a single `-`.
pub fn slug(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    out.trim_end_matches('-').chars().take(60).collect()
}

fn unique(base: &str, taken: impl Fn(&str) -> bool) -> String {
    if !taken(base) {
        return base.to_string();
    }
    (2..)
        .map(|n| format!("{base}-{n}"))
        .find(|c| !taken(c))
        .expect("an unused name")
}
