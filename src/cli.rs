//! Command-line definitions (clap). Only the shape of the command line lives
//! here; `main.rs` calls the library with what was parsed.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::corpus::Label;

/// Measure content censorship and surveillance on chat platforms.
#[derive(Debug, Parser)]
#[command(name = "chatprobe", version, about, propagate_version = true)]
pub struct Cli {
    /// Hide progress bars.
    #[arg(long, short, global = true)]
    pub quiet: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Manage the probe corpus: items, variants, hashes.
    #[command(subcommand)]
    Corpus(CorpusCommand),
    /// Run the embedded test platform (web chat + censorship engine).
    Testbed(TestbedArgs),
}

/// `chatprobe testbed …`
#[derive(Debug, Args)]
pub struct TestbedArgs {
    /// The censorship policy (TOML).
    #[arg(long, value_name = "FILE")]
    pub policy: PathBuf,
    /// The accounts file (TOML); the testbed creates these accounts and groups.
    #[arg(long, value_name = "FILE")]
    pub accounts: PathBuf,
    /// Where to listen (loopback only unless --allow-remote).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub addr: std::net::SocketAddr,
    /// Allow a non-loopback --addr.
    #[arg(long)]
    pub allow_remote: bool,
    /// Write the ground truth (JSONL) here.
    #[arg(long, value_name = "FILE")]
    pub truth: Option<PathBuf>,
    /// Upload cap in MiB.
    #[arg(long, default_value_t = 25)]
    pub max_upload_mib: usize,
}

/// Where the corpus is.
#[derive(Debug, Clone, Args)]
pub struct CorpusDir {
    /// The corpus folder (holding manifest.csv).
    #[arg(long = "corpus", value_name = "DIR", default_value = "corpus")]
    pub dir: PathBuf,
}

/// `chatprobe corpus …`
#[derive(Debug, Subcommand)]
pub enum CorpusCommand {
    /// Hash every item and variant into index.csv (incremental, all cores).
    Index {
        #[command(flatten)]
        corpus: CorpusDir,
    },
    /// Make transformed variants and fresh copies of items.
    Variants {
        #[command(flatten)]
        corpus: CorpusDir,
        /// Transform spec(s), repeatable or comma-separated: mirror, flip,
        /// rotate:DEG, crop:FRAC, border:PX, pad:FRAC, scale:F, squash-x:F,
        /// squash-y:F, grey, otsu, blur:SIGMA, jpeg:Q, brightness:D, noise:A,
        /// tile:N, fresh, fresh-meta.
        #[arg(long = "transform", short = 't', value_name = "SPEC", required = true)]
        transforms: Vec<String>,
        /// Only these items (repeatable); default: every item of a fitting kind.
        #[arg(long = "item", value_name = "ID")]
        items: Vec<String>,
        /// Seed for seeded transforms (fresh, fresh-meta, noise).
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Add a folder of your own files to the corpus (duplicates skipped).
    Import {
        #[command(flatten)]
        corpus: CorpusDir,
        /// The folder to import (walked recursively).
        #[arg(value_name = "DIR")]
        folder: PathBuf,
        /// Label of the imported files.
        #[arg(long, value_parser = parse_label)]
        label: Label,
        /// Topic of the imported files, e.g. `june4`.
        #[arg(long)]
        topic: String,
        /// Provenance, e.g. "Citizen Lab 2019, censored image set".
        #[arg(long)]
        source: String,
        /// Language tag of the content, e.g. zh-Hans.
        #[arg(long, default_value = "")]
        lang: String,
        /// Notes for every imported item.
        #[arg(long, default_value = "")]
        notes: String,
    },
}

fn parse_label(s: &str) -> Result<Label, String> {
    s.parse()
}
