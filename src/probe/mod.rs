//! The probe stage: a measurement campaign from its spec to its plan.
//!
//! - [`spec`]: the probe spec (TOML, docs/SPEC.md), read and validated against
//!   the accounts file and the corpus;
//! - [`plan`]: the exact, reproducible list of trials and sends.

pub mod plan;
pub mod spec;

pub use plan::{Plan, Role};
pub use spec::{Design, Spec};
