//! chatprobe's integration tests: one test binary (as in ripgrep), one module
//! per pipeline stage, helpers in `util`. Tests use real files and the real
//! binary; the platform is simulated (in process, virtual time) only in
//! `sim` (the driver's logic) and `scheduler` (the scheduler and every
//! design), where no browser is needed.

mod analyze;
mod appium;
mod architecture;
mod browser;
mod campaign;
// The longest tests (Converse on Prosody, minutes each): libtest starts
// tests in name order, so these start early instead of setting the tail.
mod converse;
mod corpus;
mod data;
mod design;
mod driver;
mod faults;
mod grid;
mod phone;
mod props;
mod run;
mod scheduler;
mod setup;
mod sim;
mod stats;
mod testbed;
mod transforms;
mod util;
