//! Browsers a chatprobe left behind: a chatprobe killed with -9 (or a
//! power loss) cannot close its browsers, so the next one kills those
//! whose owner is gone and removes their profile folders.

use std::path::Path;

/// Browsers of a chatprobe that died without cleaning up (kill -9, power
/// loss) keep running: kill those whose profiles folder's owner is gone, and
/// remove the folder.
pub(super) fn reap_dead_owners(tmp: &Path) {
    let Ok(rd) = std::fs::read_dir(tmp) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name();
        if !name.to_string_lossy().starts_with("chatprobe-profiles-") {
            continue;
        }
        let Some(pid) = std::fs::read_to_string(e.path().join("owner.pid"))
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok())
        else {
            continue;
        };
        // SAFETY: signal 0 only asks whether the process exists.
        if pid > 0 && unsafe { libc::kill(pid, 0) } != 0 {
            kill_orphaned_browsers(&e.path());
            // Dying browsers may still write for a moment.
            if std::fs::remove_dir_all(e.path()).is_err() {
                std::thread::sleep(std::time::Duration::from_millis(300));
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
}

/// Kill browser processes started with a `--user-data-dir` under `root`
/// (ours alone: the folder is this platform's own temporary directory).
/// A chromedriver killed from outside leaves its Chromium processes behind.
pub(super) fn kill_orphaned_browsers(root: &Path) {
    #[cfg(target_os = "linux")]
    {
        let needle = format!("--user-data-dir={}", root.display());
        let Ok(procs) = std::fs::read_dir("/proc") else {
            return;
        };
        for p in procs.filter_map(Result::ok) {
            let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
                continue;
            };
            let Ok(cmdline) = std::fs::read(p.path().join("cmdline")) else {
                continue;
            };
            if cmdline
                .split(|b| *b == 0)
                .any(|arg| arg.starts_with(needle.as_bytes()))
            {
                // SAFETY: plain kill(2) on a pid we just read.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = root;
}
