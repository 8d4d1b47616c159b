//! chatprobe: measure content censorship and content surveillance on chat
//! platforms by driving their own clients through W3C WebDriver.
//!
//! The pipeline (README.md and docs/) is a chain of stages that
//! talk through documented files:
//!
//! - [`corpus`]: probe files, their variants and hash index
//!   (`corpus/manifest.csv`, `corpus/index.csv`).
//! - [`dataset`]: the rows of sends.csv and trials.csv, read with checks.
//! - [`platform`]: the WebDriver driver (profiles, chromedriver, sessions,
//!   send and observe).
//! - [`testbed`]: the embedded chat platform with its censorship engine.
//! - [`stats`]: intervals, exact tests, logistic and survival fits (pure
//!   maths, no I/O).
//! - [`analysis`]: `chatprobe analyze`: reads datasets, hands each design
//!   its rows, and adds the tables across designs and runs.
//! - [`probe`]: probe specs and the plans made from them.
//! - [`run`]: a run: the platform it measures, scheduler, journal, resume,
//!   the datasets.
//! - [`campaign`]: runs over time: `--every`, `--if-due`, cron and systemd
//!   timers.
//! - [`report`]: plots and report.html from the analysis.
//! - [`targets`]: third-party platforms chatprobe starts (Prosody + Converse).
//! - [`accounts`]: the accounts file shared by every stage.
//! - [`process`]: child processes that die with chatprobe.

pub mod accounts;
pub mod analysis;
pub mod campaign;
pub mod clock;
pub mod cmd;
pub mod corpus;
pub mod dataset;
pub mod error;
pub mod fsutil;
pub mod platform;
pub mod probe;
pub mod process;
pub mod ranges;
pub mod redact;
pub mod report;
pub mod run;
pub mod stats;
pub mod targets;
pub mod testbed;
pub mod tomlfile;
