//! Child processes chatprobe starts (chromedriver, Prosody): each in a
//! process group of its own, tied to chatprobe's life.

use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// Start `cmd` in a process group of its own (so a terminal's Ctrl-C meant
/// for chatprobe does not reach it, and the group can be killed as one),
/// and have the kernel send it SIGTERM when chatprobe dies (Linux).
pub fn own_group_dying_with_us(cmd: &mut Command) {
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
    }
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: prctl is async-signal-safe; it only sets this child's
        // parent-death signal.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
    }
}

/// Stop `child` as its own Ctrl-C would: SIGTERM, then up to `grace` for it
/// to finish what it is writing (Prosody its stores), then SIGKILL.
pub fn stop_gently(child: &mut Child, grace: Duration) {
    if !matches!(child.try_wait(), Ok(None)) {
        return;
    }
    #[cfg(unix)]
    {
        if let Ok(pid) = libc::pid_t::try_from(child.id()) {
            // SAFETY: kill(2) on our own child's pid, which is not reaped
            // yet (try_wait above), so the pid is still this child's.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
        let t0 = Instant::now();
        while t0.elapsed() < grace {
            if !matches!(child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}
