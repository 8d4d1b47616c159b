//! Runs over time, for longitudinal monitoring: the same spec again and
//! again, each time a run of its own (see [`crate::run`]).
//!
//! - [`every`]: `chatprobe run --every`, one run per period in one process;
//! - [`due`]: `chatprobe run --if-due`, the tick a timer runs: a run only
//!   when one is due and none is running;
//! - [`install`]: `chatprobe schedule`, the crontab line or systemd timer
//!   that runs the ticks.

pub mod due;
pub mod every;
pub mod install;

pub use every::{next_due, parse_period, run_every};
