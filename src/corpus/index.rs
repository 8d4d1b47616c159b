//! `corpus/index.csv`: every item and variant with its hashes.
//!
//! Columns: `variant_id, item_id, path, kind, transform, md5, sha256, bytes,
//! width, height, phash, dhash, phash_distance, seed`. An item is its own
//! variant (`variant_id = item_id`, empty `transform`). `phash_distance` is the
//! Hamming distance of the variant's pHash to its parent item's (0 for an item
//! itself; empty for documents). Rows are in manifest order, each item followed
//! by its variants sorted by id, so the file is a pure function of the corpus.
//!
//! Building is parallel (rayon, all cores), shows a progress bar, and is
//! incremental: a stat cache (`.index-cache.csv`: path, size, mtime, SHA-256)
//! skips files whose size and mtime are unchanged, and a file whose SHA-256
//! matches its previous row is not decoded again. The index is written
//! atomically, and only when every file was read: on any error the previous
//! index is left as it was.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::hash::{self, Hash64, PerceptualHasher};
use super::manifest::{Format, ItemKind, Manifest};
use super::variants::{self, Lineage};
use super::CorpusError;
use crate::error::InputError;
use crate::fsutil;

/// The index's file name inside a corpus folder.
pub const INDEX_FILE: &str = "index.csv";
/// The stat cache's file name inside a corpus folder (not part of any contract).
pub const STAT_CACHE_FILE: &str = ".index-cache.csv";

/// One row of index.csv.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexRow {
    /// The variant's id; equals `item_id` for an item itself.
    pub variant_id: String,
    /// The parent item.
    pub item_id: String,
    /// Path relative to the corpus folder.
    pub path: String,
    /// image | document.
    pub kind: ItemKind,
    /// Transform spec; empty for the item itself.
    pub transform: String,
    /// MD5 of the file, hex.
    pub md5: String,
    /// SHA-256 of the file, hex.
    pub sha256: String,
    /// File size in bytes.
    pub bytes: u64,
    /// Image width in pixels (images only).
    pub width: Option<u32>,
    /// Image height in pixels (images only).
    pub height: Option<u32>,
    /// 64-bit DCT perceptual hash, 16 hex digits (images only).
    pub phash: Option<String>,
    /// 64-bit gradient hash, 16 hex digits (images only).
    pub dhash: Option<String>,
    /// pHash Hamming distance to the parent item (images only).
    pub phash_distance: Option<u32>,
    /// Seed of a seeded transform (fresh, fresh-meta, noise).
    pub seed: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StatRow {
    path: String,
    bytes: u64,
    mtime_ns: u128,
    sha256: String,
}

/// What one index build did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IndexStats {
    /// Rows in the index.
    pub rows: usize,
    /// Files hashed from scratch (read, hashed and, for images, decoded).
    pub hashed: usize,
    /// Files whose content was unchanged and were not hashed again.
    pub unchanged: usize,
}

/// One file to index.
struct Entry {
    variant_id: String,
    item_id: String,
    path: String,
    kind: ItemKind,
    transform: String,
    seed: Option<u64>,
}

/// Load `DIR/index.csv`.
pub fn load(dir: &Path) -> Result<Vec<IndexRow>, CorpusError> {
    let path = dir.join(INDEX_FILE);
    if !path.is_file() {
        return Err(InputError::new(&path, "no corpus index")
            .hint("run `chatprobe corpus index` first")
            .into());
    }
    let mut rdr = csv::Reader::from_path(&path).map_err(|e| CorpusError::io(&path, e.into()))?;
    let mut rows = Vec::new();
    for row in rdr.deserialize() {
        let row: IndexRow = row.map_err(|e| {
            let mut err = InputError::new(&path, format!("malformed index row: {e}"))
                .hint("rebuild it with `chatprobe corpus index`");
            if let Some(p) = e.position() {
                err = err.line(p.line());
            }
            CorpusError::from(err)
        })?;
        rows.push(row);
    }
    Ok(rows)
}

/// Build or update `DIR/index.csv`. Progress goes to stderr unless `quiet`.
pub fn build(dir: &Path, quiet: bool) -> Result<IndexStats, CorpusError> {
    let manifest = Manifest::load(dir)?;
    let lineage = variants::load_lineage(dir, &manifest)?;
    let entries = entries(&manifest, &lineage);

    // The previous index and stat cache are only caches: unreadable → ignored.
    let previous: HashMap<String, IndexRow> = load(dir)
        .map(|rows| rows.into_iter().map(|r| (r.path.clone(), r)).collect())
        .unwrap_or_default();
    let stat_cache = load_stat_cache(dir);

    let pb = fsutil::progress_bar(entries.len() as u64, "indexing", quiet);
    let results: Vec<Result<(IndexRow, StatRow, bool), CorpusError>> = entries
        .par_iter()
        .map_init(PerceptualHasher::new, |hasher, e| {
            let r = index_one(dir, e, hasher, &previous, &stat_cache);
            pb.inc(1);
            r
        })
        .collect();
    pb.finish_and_clear();

    let mut rows = Vec::with_capacity(results.len());
    let mut stats_rows = Vec::with_capacity(results.len());
    let mut stats = IndexStats::default();
    for r in results {
        let (row, stat, reused) = r?;
        if reused {
            stats.unchanged += 1;
        } else {
            stats.hashed += 1;
        }
        rows.push(row);
        stats_rows.push(stat);
    }
    fill_distances(&mut rows);
    stats.rows = rows.len();

    let index_path = dir.join(INDEX_FILE);
    write_rows(&index_path, &rows)?;
    let features = super::features::build(dir, &manifest, &rows)?;
    write_rows(&dir.join(super::features::FEATURES_FILE), &features)?;
    // The stat cache is best effort: losing it only costs time.
    let _ = write_rows(&dir.join(STAT_CACHE_FILE), &stats_rows);
    Ok(stats)
}

fn entries(manifest: &Manifest, lineage: &[Lineage]) -> Vec<Entry> {
    let mut by_item: HashMap<&str, Vec<&Lineage>> = HashMap::new();
    for l in lineage {
        by_item.entry(l.item_id.as_str()).or_default().push(l);
    }
    let mut out = Vec::new();
    for item in &manifest.items {
        out.push(Entry {
            variant_id: item.id.clone(),
            item_id: item.id.clone(),
            path: item.path.clone(),
            kind: item.kind,
            transform: String::new(),
            seed: None,
        });
        let mut vs = by_item.remove(item.id.as_str()).unwrap_or_default();
        vs.sort_by(|a, b| a.variant_id.cmp(&b.variant_id));
        for v in vs {
            out.push(Entry {
                variant_id: v.variant_id.clone(),
                item_id: v.item_id.clone(),
                path: v.path.clone(),
                kind: item.kind,
                transform: v.transform.clone(),
                seed: v.seed,
            });
        }
    }
    out
}

fn mtime_ns(meta: &std::fs::Metadata) -> u128 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

fn index_one(
    dir: &Path,
    e: &Entry,
    hasher: &PerceptualHasher,
    previous: &HashMap<String, IndexRow>,
    stat_cache: &HashMap<String, StatRow>,
) -> Result<(IndexRow, StatRow, bool), CorpusError> {
    let full: PathBuf = super::entry_path(dir, &e.path)?;
    let meta = std::fs::metadata(&full).map_err(|err| {
        if err.kind() == std::io::ErrorKind::NotFound {
            CorpusError::from(
                InputError::new(&full, "file listed in the corpus is missing").hint(
                    "restore it, or remove its row from manifest.csv or variants/lineage.csv",
                ),
            )
        } else {
            CorpusError::io(&full, err)
        }
    })?;
    let mtime = mtime_ns(&meta);
    let prev = previous.get(&e.path);
    let make_row = |p: &IndexRow| IndexRow {
        variant_id: e.variant_id.clone(),
        item_id: e.item_id.clone(),
        path: e.path.clone(),
        kind: e.kind,
        transform: e.transform.clone(),
        seed: e.seed,
        phash_distance: None,
        ..p.clone()
    };
    // 1. Size and mtime unchanged since the last build: trust the cache.
    if let (Some(p), Some(s)) = (prev, stat_cache.get(&e.path)) {
        if s.bytes == meta.len()
            && s.mtime_ns == mtime
            && s.sha256 == p.sha256
            && p.bytes == s.bytes
        {
            return Ok((make_row(p), s.clone(), true));
        }
    }
    // 2. Read; same content as before: no decode.
    let bytes = super::read_file(&full)?;
    let sha256 = hash::sha256_hex(&bytes);
    let stat = StatRow {
        path: e.path.clone(),
        bytes: bytes.len() as u64,
        mtime_ns: mtime,
        sha256: sha256.clone(),
    };
    if let Some(p) = prev {
        if p.sha256 == sha256 && p.kind == e.kind {
            return Ok((make_row(p), stat, true));
        }
    }
    // 3. Hash from scratch.
    let mut row = IndexRow {
        variant_id: e.variant_id.clone(),
        item_id: e.item_id.clone(),
        path: e.path.clone(),
        kind: e.kind,
        transform: e.transform.clone(),
        md5: hash::md5_hex(&bytes),
        sha256,
        bytes: bytes.len() as u64,
        width: None,
        height: None,
        phash: None,
        dhash: None,
        phash_distance: None,
        seed: e.seed,
    };
    match e.kind {
        ItemKind::Image => {
            let h = hasher.hash_bytes(&full, &bytes)?;
            row.width = Some(h.width);
            row.height = Some(h.height);
            row.phash = Some(h.phash.to_string());
            row.dhash = Some(h.dhash.to_string());
        }
        ItemKind::Document => check_document(&full, &bytes)?,
    }
    Ok((row, stat, false))
}

/// Cheap sanity check of a document's container (full text extraction is the
/// testbed's job, and slow for PDFs).
fn check_document(path: &Path, bytes: &[u8]) -> Result<(), CorpusError> {
    let bad = |m: &str| -> CorpusError {
        InputError::new(path, m.to_string())
            .hint("replace the file, or remove it from the manifest")
            .into()
    };
    match Format::from_path(path) {
        Some(Format::Pdf) if !bytes.starts_with(b"%PDF") => Err(bad("corrupt PDF: no %PDF header")),
        Some(Format::Docx) if !bytes.starts_with(b"PK") => Err(bad("corrupt DOCX: not a zip file")),
        Some(Format::Txt) if std::str::from_utf8(bytes).is_err() => {
            Err(bad("text file is not UTF-8"))
        }
        _ => Ok(()),
    }
}

fn fill_distances(rows: &mut [IndexRow]) {
    let parents: HashMap<String, Option<Hash64>> = rows
        .iter()
        .filter(|r| r.variant_id == r.item_id)
        .map(|r| {
            (
                r.item_id.clone(),
                r.phash.as_deref().and_then(Hash64::parse),
            )
        })
        .collect();
    for r in rows.iter_mut() {
        let own = r.phash.as_deref().and_then(Hash64::parse);
        let parent = parents.get(&r.item_id).copied().flatten();
        r.phash_distance = match (own, parent) {
            (Some(a), Some(b)) => Some(a.distance(b)),
            _ => None,
        };
    }
}

fn write_rows<T: Serialize>(path: &Path, rows: &[T]) -> Result<(), CorpusError> {
    fsutil::atomic_write(path, |w| {
        let mut wtr = csv::Writer::from_writer(w);
        for r in rows {
            wtr.serialize(r)?;
        }
        wtr.flush()?;
        Ok::<(), CorpusError>(())
    })
    .map_err(|e| e.with_path(path))
}

fn load_stat_cache(dir: &Path) -> HashMap<String, StatRow> {
    let Ok(mut rdr) = csv::Reader::from_path(dir.join(STAT_CACHE_FILE)) else {
        return HashMap::new();
    };
    rdr.deserialize::<StatRow>()
        .filter_map(Result::ok)
        .map(|s| (s.path.clone(), s))
        .collect()
}
