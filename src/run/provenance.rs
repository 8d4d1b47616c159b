//! What a new run records of where and with what it was made: the
//! vantage (a stable, anonymous name for this machine), the git revision
//! chatprobe was built from, and the run's id.

use std::path::Path;

/// This machine's vantage name (see [`crate::dataset::manifest::RunManifest::vantage`]).
pub(super) fn vantage() -> String {
    if let Ok(v) = std::env::var("CHATPROBE_VANTAGE") {
        let v = v.trim();
        if !v.is_empty() {
            return v.to_string();
        }
    }
    let id = ["/etc/machine-id", "/var/lib/dbus/machine-id"]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .filter(|s| !s.trim().is_empty())
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .unwrap_or_default();
    use sha2::Digest;
    let h = sha2::Sha256::digest(format!("chatprobe-vantage:{}", id.trim()).as_bytes());
    let hex: String = h.iter().take(6).map(|b| format!("{b:02x}")).collect();
    format!("machine-{hex}")
}

pub(super) fn git_revision() -> String {
    option_env!("CHATPROBE_GIT_REVISION")
        .unwrap_or("")
        .to_string()
}

/// A fresh run id: UTC time and the spec's name.
pub(super) fn new_run_id(results: &Path, name: &str) -> String {
    let base = format!("{}-{name}", crate::clock::now().format("%Y%m%dT%H%M%SZ"));
    let mut id = base.clone();
    let mut k = 2;
    while results.join(&id).exists() {
        id = format!("{base}-{k}");
        k += 1;
    }
    id
}
