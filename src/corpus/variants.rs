//! Derived files: `corpus/variants/<variant_id>.<ext>` and their lineage in
//! `corpus/variants/lineage.csv` (`variant_id, item_id, transform, seed, path`).
//!
//! A variant id is `<item_id>--<transform slug>`, plus `-s<seed>` for seeded
//! transforms (`img-001--crop_0.1`, `img-001--fresh-s7`). Variants are
//! deterministic: the same item, transform and seed give the same bytes.
//! Generation is all-or-nothing: every variant is made in memory first (in
//! parallel), and files, lineage and index are written only when all succeeded.

use std::collections::HashMap;
use std::path::Path;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::manifest::{Format, Item, Manifest};
use super::transform::{self, Transform};
use super::CorpusError;
use crate::error::InputError;
use crate::fsutil;

/// Folder of variants inside a corpus.
pub const VARIANTS_DIR: &str = "variants";
/// The lineage file inside a corpus.
pub const LINEAGE_FILE: &str = "variants/lineage.csv";

/// One row of variants/lineage.csv.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lineage {
    /// The variant's id.
    pub variant_id: String,
    /// The parent item.
    pub item_id: String,
    /// Transform spec, e.g. `crop:0.1`.
    pub transform: String,
    /// Seed, for seeded transforms.
    pub seed: Option<u64>,
    /// Path relative to the corpus folder.
    pub path: String,
}

/// The variant id of `item_id` under `t` with `seed`.
pub fn variant_id(item_id: &str, t: Transform, seed: u64) -> String {
    if t.is_seeded() {
        format!("{item_id}--{}-s{seed}", t.slug())
    } else {
        format!("{item_id}--{}", t.slug())
    }
}

/// Read the lineage file (absent = no variants). Every row must name an item
/// of the manifest and a valid transform.
pub fn load_lineage(dir: &Path, manifest: &Manifest) -> Result<Vec<Lineage>, CorpusError> {
    let path = dir.join(LINEAGE_FILE);
    if !path.exists() {
        return Ok(Vec::new());
    }
    let mut rdr = csv::Reader::from_path(&path).map_err(|e| CorpusError::io(&path, e.into()))?;
    let mut out = Vec::new();
    for row in rdr.deserialize() {
        let row: Lineage = row.map_err(|e| {
            let mut err = InputError::new(&path, format!("malformed lineage row: {e}"));
            if let Some(p) = e.position() {
                err = err.line(p.line());
            }
            CorpusError::from(err)
        })?;
        let line = out.len() as u64 + 2;
        if manifest.get(&row.item_id).is_none() {
            return Err(InputError::new(
                &path,
                format!(
                    "variant `{}` names unknown item `{}`",
                    row.variant_id, row.item_id
                ),
            )
            .line(line)
            .key("item_id")
            .hint("remove the row, or add the item back to manifest.csv")
            .into());
        }
        if let Err(e) = row.transform.parse::<Transform>() {
            return Err(InputError::new(&path, e.to_string())
                .line(line)
                .key("transform")
                .into());
        }
        out.push(row);
    }
    Ok(out)
}

/// What `make` did.
#[derive(Debug, Clone, Default)]
pub struct VariantReport {
    /// The variants made (or re-made, identical), in order.
    pub made: Vec<Lineage>,
    /// (item, transform) pairs skipped because the transform does not apply.
    pub skipped: usize,
}

/// Make `transforms` of the chosen items (all items when `item_ids` is empty),
/// write them under variants/, record their lineage and update the index.
/// An (item, transform) pair whose kinds do not fit (an image transform on a
/// document) is skipped and counted; a named item that no transform fits is
/// bad input.
pub fn make(
    dir: &Path,
    transforms: &[Transform],
    item_ids: &[String],
    seed: u64,
    quiet: bool,
) -> Result<VariantReport, CorpusError> {
    let manifest = Manifest::load(dir)?;
    let mut lineage = load_lineage(dir, &manifest)?;
    let items: Vec<&Item> = if item_ids.is_empty() {
        manifest.items.iter().collect()
    } else {
        item_ids
            .iter()
            .map(|id| {
                manifest.get(id).ok_or_else(|| {
                    CorpusError::from(
                        InputError::new("--item", format!("unknown item `{id}`"))
                            .hint(format!("ids are listed in {}", manifest.path().display())),
                    )
                })
            })
            .collect::<Result<_, _>>()?
    };
    let mut jobs = Vec::new();
    let mut report = VariantReport::default();
    for item in &items {
        let fitting: Vec<Transform> = transforms
            .iter()
            .copied()
            .filter(|t| t.applies_to(item.kind))
            .collect();
        if fitting.is_empty() && !item_ids.is_empty() {
            return Err(InputError::new(
                "--transform",
                format!(
                    "no transform given applies to item `{}` ({}); documents take only `fresh`",
                    item.id, item.kind
                ),
            )
            .into());
        }
        report.skipped += transforms.len() - fitting.len();
        jobs.extend(fitting.into_iter().map(|t| (*item, t)));
    }
    let pb = fsutil::progress_bar(jobs.len() as u64, "variants", quiet);
    let made: Vec<Result<(Lineage, Vec<u8>), CorpusError>> = jobs
        .par_iter()
        .map(|(item, t)| {
            let r = make_one(dir, item, *t, seed);
            pb.inc(1);
            r
        })
        .collect();
    pb.finish_and_clear();
    let made: Vec<(Lineage, Vec<u8>)> = made.into_iter().collect::<Result<_, _>>()?;

    for (l, bytes) in &made {
        let path = dir.join(&l.path);
        fsutil::atomic_write_bytes(&path, bytes).map_err(|e| CorpusError::io(&path, e))?;
    }
    let mut pos: HashMap<String, usize> = lineage
        .iter()
        .enumerate()
        .map(|(i, l)| (l.variant_id.clone(), i))
        .collect();
    for (l, _) in &made {
        match pos.get(&l.variant_id) {
            Some(&i) => lineage[i] = l.clone(),
            None => {
                pos.insert(l.variant_id.clone(), lineage.len());
                lineage.push(l.clone());
            }
        }
    }
    save_lineage(dir, &lineage)?;
    report.made = made.into_iter().map(|(l, _)| l).collect();
    super::index::build(dir, quiet)?;
    Ok(report)
}

/// Make one variant in memory: its lineage row and its bytes.
pub fn make_one(
    dir: &Path,
    item: &Item,
    t: Transform,
    seed: u64,
) -> Result<(Lineage, Vec<u8>), CorpusError> {
    let src = super::entry_path(dir, &item.path)?;
    let format = Format::from_path(&src)
        .ok_or_else(|| CorpusError::from(InputError::new(&src, "unsupported file type")))?;
    let bytes = super::read_file(&src)?;
    let (out, out_format) = transform::apply(t, &src, &bytes, format, seed)?;
    let id = variant_id(&item.id, t, seed);
    Ok((
        Lineage {
            path: format!("{VARIANTS_DIR}/{id}.{}", out_format.extension()),
            variant_id: id,
            item_id: item.id.clone(),
            transform: t.to_string(),
            seed: t.is_seeded().then_some(seed),
        },
        out,
    ))
}

fn save_lineage(dir: &Path, lineage: &[Lineage]) -> Result<(), CorpusError> {
    let path = dir.join(LINEAGE_FILE);
    fsutil::atomic_write(&path, |w| {
        let mut wtr = csv::Writer::from_writer(w);
        for l in lineage {
            wtr.serialize(l)?;
        }
        wtr.flush()?;
        Ok::<(), CorpusError>(())
    })
    .map_err(|e| e.with_path(&path))
}
