//! The probe stage: a measurement campaign from its spec to its plan.
//!
//! - [`spec`]: the probe spec (TOML, docs/SPEC.md), read and validated
//!   against the accounts file and the corpus;
//! - [`design`]: the experiment designs, one module each, and their registry;
//! - [`plan`]: the reproducible list of trials and sends (grown step by step
//!   by adaptive designs);
//! - [`budget`]: the daily send budget per account;
//! - [`chat`], [`items`]: what experiments are made of (keyword files
//!   are the corpus's: `corpus::keywords`);
//! - [`locate`]: where in a spec file a key is, for errors.

pub mod budget;
pub mod chat;
pub mod design;
pub mod isolate;
pub mod items;
pub mod locate;
pub mod plan;
pub mod spec;

pub use plan::{Plan, Role};
pub use spec::Spec;
