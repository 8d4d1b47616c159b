//! The per-corpus ledger of sent files: `corpus/sent-md5.csv`, one row for
//! every file chatprobe has ever sent from this corpus (`md5, item_id,
//! run_id, send_id, at`). A fresh copy whose MD5 is in it is refused and
//! made again with another seed, so no "fresh" probe is ever one the platform
//! may have seen. Appends are synced; the file is never rewritten.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::InputError;

/// The ledger's file name in a corpus folder.
pub const LEDGER_FILE: &str = "sent-md5.csv";

/// The ledger of a corpus.
pub struct Ledger {
    path: PathBuf,
    sent: HashSet<String>,
    file: File,
}

impl Ledger {
    /// Open (creating) the ledger of `corpus`.
    pub fn open(corpus: &Path) -> Result<Ledger, InputError> {
        let path = corpus.join(LEDGER_FILE);
        let mut sent = HashSet::new();
        if path.is_file() {
            let mut rdr = csv::ReaderBuilder::new()
                .flexible(true)
                .from_path(&path)
                .map_err(|e| InputError::new(&path, format!("cannot read the ledger: {e}")))?;
            // A row cut short by a crash still names its MD5, or is skipped.
            for rec in rdr.records().flatten() {
                if let Some(m) = rec.get(0).filter(|m| m.len() == 32) {
                    sent.insert(m.to_string());
                }
            }
        }
        let new = !path.is_file();
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| InputError::new(&path, format!("cannot write the ledger: {e}")))?;
        if new {
            file.write_all(b"md5,item_id,run_id,send_id,at\n")
                .map_err(|e| InputError::new(&path, format!("cannot write the ledger: {e}")))?;
        }
        Ok(Ledger { path, sent, file })
    }

    /// Whether this MD5 was ever sent.
    pub fn contains(&self, md5: &str) -> bool {
        self.sent.contains(md5)
    }

    /// Record a file about to be sent.
    pub fn record(
        &mut self,
        md5: &str,
        item_id: &str,
        run_id: &str,
        send_id: &str,
    ) -> std::io::Result<()> {
        if !self.sent.insert(md5.to_string()) {
            return Ok(());
        }
        let mut w = csv::Writer::from_writer(Vec::new());
        w.write_record([
            md5,
            item_id,
            run_id,
            send_id,
            &super::state::rfc(Some(crate::clock::now())),
        ])
        .map_err(std::io::Error::other)?;
        let bytes = w
            .into_inner()
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        self.file.write_all(&bytes)?;
        self.file.sync_data()
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }
}
