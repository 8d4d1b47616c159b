//! Child processes chatprobe starts (chromedriver, Prosody): each in a
//! process group of its own, tied to chatprobe's life.

use std::process::Command;

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
