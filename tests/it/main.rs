//! chatprobe's integration tests: one test binary (as in ripgrep), one module
//! per pipeline stage, helpers in `util`. Tests use real files and the real
//! binary; nothing is mocked.

mod analyze;
mod browser;
mod corpus;
mod driver;
mod faults;
mod run;
mod stats;
mod testbed;
mod transforms;
mod util;
mod xmpp;
