//! The corpus stage: the researcher's probe files and everything derived from
//! them.
//!
//! - [`manifest`]: `corpus/manifest.csv`, the items with labels and provenance;
//! - [`transform`]: transform specs (`crop:0.1`, `fresh` …) and how they apply;
//! - [`fresh`]: fresh copies — same content, new MD5 — for images and documents;
//! - [`text`]: the text of txt, docx and pdf documents (shared with the testbed);
//! - [`hash`]: MD5, SHA-256 and the perceptual hashes (pHash, dHash);
//! - [`variants`]: derived files under `corpus/variants/` with their lineage;
//! - [`index`]: `corpus/index.csv`, every item and variant with its hashes;
//! - [`import`]: adding a researcher's own folder of files;
//! - [`keywords`]: keyword files, with `A+B` combinations.
//!
//! Other stages read the corpus only through `manifest.csv`, `index.csv` and
//! `variants/lineage.csv` (documented in docs/DATASET.md).

pub mod features;
pub mod fresh;
pub mod hash;
pub mod import;
pub mod index;
pub mod keywords;
pub mod manifest;
pub mod text;
pub mod transform;
pub mod variants;

use std::io;
use std::path::{Path, PathBuf};

use crate::error::{InputError, MaybeInput};

pub use manifest::{Format, Item, ItemKind, Label, Manifest};

/// Errors of the corpus stage.
#[derive(Debug, thiserror::Error)]
pub enum CorpusError {
    /// The user's input is wrong (exit code 2).
    #[error(transparent)]
    Input(#[from] InputError),
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// An I/O error not yet tied to a file.
    #[error("I/O error: {0}")]
    BareIo(#[from] io::Error),
    /// Writing CSV failed.
    #[error("CSV: {0}")]
    Csv(#[from] csv::Error),
    /// Encoding an image failed.
    #[error("{}: cannot encode image: {source}", path.display())]
    Encode {
        /// The file being written.
        path: PathBuf,
        /// The cause.
        #[source]
        source: image::ImageError,
    },
}

impl CorpusError {
    /// An I/O error about `path`.
    pub fn io(path: &Path, source: io::Error) -> Self {
        CorpusError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// Attach `path` to an error that lacks one.
    pub fn with_path(self, path: &Path) -> Self {
        match self {
            CorpusError::BareIo(source) => CorpusError::io(path, source),
            other => other,
        }
    }
}

impl MaybeInput for CorpusError {
    fn input_error(&self) -> Option<&InputError> {
        match self {
            CorpusError::Input(e) => Some(e),
            _ => None,
        }
    }
}

/// Read a whole file, turning "not found" into an input error naming it.
pub fn read_file(path: &Path) -> Result<Vec<u8>, CorpusError> {
    std::fs::read(path).map_err(|e| {
        if e.kind() == io::ErrorKind::NotFound {
            InputError::new(path, "file not found")
                .hint("restore the file or remove it from the manifest")
                .into()
        } else {
            CorpusError::io(path, e)
        }
    })
}

/// The file of a corpus entry `rel` (a manifest or lineage path), refused if
/// it leaves the corpus folder `dir` — by `..`, an absolute path, or a
/// symbolic link pointing outside — so nothing outside the corpus is ever
/// hashed, copied or uploaded.
pub fn entry_path(dir: &Path, rel: &str) -> Result<PathBuf, CorpusError> {
    let full = dir.join(rel);
    let refuse = |why: &str| -> CorpusError {
        InputError::new(&full, format!("refusing a corpus file that {why}"))
            .hint("copy the file into the corpus folder instead of linking to it")
            .into()
    };
    if Path::new(rel).is_absolute()
        || Path::new(rel)
            .components()
            .any(|c| matches!(c, std::path::Component::ParentDir))
    {
        return Err(refuse("lies outside the corpus folder"));
    }
    let (Ok(root), Ok(real)) = (dir.canonicalize(), full.canonicalize()) else {
        // Missing: the caller reports it with its own words.
        return Ok(full);
    };
    if !real.starts_with(&root) {
        return Err(refuse(&format!(
            "is a link to {}, outside the corpus folder",
            real.display()
        )));
    }
    Ok(full)
}

/// Today's date (UTC) as YYYY-MM-DD.
pub fn today() -> String {
    chrono::Utc::now().format("%Y-%m-%d").to_string()
}
