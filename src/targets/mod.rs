//! Third-party platforms chatprobe can start on this machine for a
//! measurement or a test — software nobody here wrote, driven only through
//! a profile, with a censor of its own whose log is the ground truth.
//!
//! - [`xmpp`]: Prosody (server) + Converse.js (web client) + mod_firewall
//!   (censor), from `probes/targets/xmpp/`.

pub mod xmpp;
