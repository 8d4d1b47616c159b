//! chromedriver as a child process: found on PATH or in /usr/bin, started on
//! a free loopback port, ready when its `/status` answers, and killed on every
//! exit path — on drop, and by the kernel when chatprobe itself dies
//! (`PR_SET_PDEATHSIG` on Linux), so it never outlives the tool.
//!
//! Its browsers must not outlive it either, and the kernel does not kill a
//! dead parent's children: chromedriver runs in a process group of its own
//! (which every Chromium process it starts stays in), watched by a small
//! `bash` watchdog that holds the read end of a pipe whose only writer is
//! chatprobe. However chatprobe ends — return, panic, kill -9 — the kernel
//! closes the pipe, the watchdog's `read` returns, and it kills the whole
//! group. (A shell rather than a forked copy of chatprobe: after `fork` a
//! multi-threaded process may only make async-signal-safe calls, and the
//! shell costs a few MB for the life of the driver.)

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::InputError;

/// A running chromedriver.
pub struct Chromedriver {
    child: Child,
    port: u16,
    watchdog: Option<Child>,
}

/// Where chromedriver is, or an error saying how to install it.
pub fn find() -> Result<PathBuf, InputError> {
    let candidates = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("chromedriver"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default()
        .into_iter()
        .chain([
            PathBuf::from("/usr/bin/chromedriver"),
            PathBuf::from("/usr/lib/chromium/chromedriver"),
        ]);
    for c in candidates {
        if c.is_file() {
            return Ok(c);
        }
    }
    Err(InputError::new("chromedriver", "chromedriver was not found on PATH or in /usr/bin")
        .hint("install it: `apt-get install chromium chromium-driver` (make run does), or pass --webdriver URL"))
}

impl Chromedriver {
    /// Start chromedriver on a free port and wait (≤ 10 s) until it answers.
    pub fn start() -> Result<Chromedriver, InputError> {
        let bin = find()?;
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| InputError::new("chromedriver", format!("no free port: {e}")))?
            .port();
        let mut cmd = Command::new(&bin);
        cmd.arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // Its own group: the watchdog kills it and its browsers as one, and
        // a Ctrl-C meant for chatprobe does not reach them.
        crate::process::own_group_dying_with_us(&mut cmd);
        let child = cmd
            .spawn()
            .map_err(|e| InputError::new(&bin, format!("cannot start chromedriver: {e}")))?;
        let watchdog = watch_group(child.id());
        let mut d = Chromedriver {
            child,
            port,
            watchdog,
        };
        let t0 = Instant::now();
        while !d.ready() {
            if t0.elapsed() > Duration::from_secs(10) || !d.alive() {
                return Err(
                    InputError::new(&bin, "chromedriver did not become ready within 10 s")
                        .hint("run it by hand to see why"),
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(d)
    }

    /// Its URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether `/status` says ready. chromedriver keeps the connection open,
    /// so the answer is read with a timeout.
    fn ready(&self) -> bool {
        let Ok(mut s) = TcpStream::connect_timeout(
            &([127, 0, 0, 1], self.port).into(),
            Duration::from_millis(200),
        ) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
        if s.write_all(b"GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            .is_err()
        {
            return false;
        }
        let mut buf = [0u8; 4096];
        let mut got = Vec::new();
        while let Ok(n) = s.read(&mut buf) {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
            if got
                .windows(13)
                .any(|w| w == b"\"ready\": true" || w == b"\"ready\":true}")
            {
                return true;
            }
        }
        String::from_utf8_lossy(&got).contains("\"ready\":true")
    }

    /// Kill it now, and with it every browser it started.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(mut w) = self.watchdog.take() {
            // Closing its pipe makes it kill the group and exit.
            drop(w.stdin.take());
            let _ = w.wait();
        }
    }
}

/// Start the watchdog of process group `pgid` (see the module's doc); `None`
/// where no bash is found (then only the reaper of the next start cleans up).
fn watch_group(pgid: u32) -> Option<Child> {
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        Command::new("bash")
            .arg("-c")
            .arg("read -r _; kill -KILL -- -\"$1\" 2>/dev/null; exit 0")
            .arg("chatprobe-watchdog")
            .arg(pgid.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .ok()
    }
    #[cfg(not(unix))]
    {
        let _ = pgid;
        None
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        self.kill();
    }
}
