//! `chatprobe runs`: every run under a results folder, from the run.json
//! files, with a crashed run (its process gone) shown as interrupted.

use std::path::Path;

use serde::Serialize;

use super::manifest::{read_manifest, RunStatus};

/// A row of `chatprobe runs`.
#[derive(Debug, Clone, Serialize)]
pub struct RunListing {
    /// The run id.
    pub run_id: String,
    /// The spec's name.
    pub spec_name: String,
    /// First start.
    pub started_at: String,
    /// Last stop.
    pub finished_at: String,
    /// complete | interrupted | running.
    pub state: RunStatus,
    /// Trials done.
    pub trials_done: usize,
    /// Trials planned.
    pub trials_planned: usize,
    /// Attempts by outcome.
    pub delivered: u64,
    /// Blocked.
    pub blocked: u64,
    /// Lost.
    pub lost: u64,
    /// Error.
    pub error: u64,
}

fn alive(pid: u32) -> bool {
    // SAFETY: kill with signal 0 only checks that the process exists.
    pid != 0 && unsafe { libc::kill(pid as i32, 0) } == 0
}

/// Every run under `results`, oldest first.
pub fn list_runs(results: &Path) -> Vec<RunListing> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(results) else {
        return out;
    };
    for e in rd.flatten() {
        let Ok(m) = read_manifest(&e.path()) else {
            continue;
        };
        let state =
            if m.state == RunStatus::Running && !(alive(m.pid) && m.pid != std::process::id()) {
                RunStatus::Interrupted
            } else {
                m.state
            };
        let c = |k: &str| m.counts.get(k).copied().unwrap_or(0);
        out.push(RunListing {
            run_id: m.run_id.clone(),
            spec_name: m.spec_name.clone(),
            started_at: m.started_at.clone(),
            finished_at: m.finished_at.clone(),
            state,
            trials_done: m.trials_done,
            trials_planned: m.trials_planned,
            delivered: c("delivered"),
            blocked: c("blocked"),
            lost: c("lost"),
            error: c("error"),
        });
    }
    out.sort_by(|a, b| {
        a.started_at
            .cmp(&b.started_at)
            .then(a.run_id.cmp(&b.run_id))
    });
    out
}
