//! chromedriver as a child process: found on PATH or in /usr/bin, started on
//! a free loopback port, ready when its `/status` answers, and killed on every
//! exit path — on drop, and by the kernel when chatprobe itself dies
//! (`PR_SET_PDEATHSIG` on Linux), so it never outlives the tool.

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
        #[cfg(target_os = "linux")]
        {
            use std::os::unix::process::CommandExt;
            // SAFETY: prctl is async-signal-safe; it only sets this child's
            // parent-death signal, so chromedriver dies with chatprobe.
            unsafe {
                cmd.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                    Ok(())
                });
            }
        }
        let child = cmd
            .spawn()
            .map_err(|e| InputError::new(&bin, format!("cannot start chromedriver: {e}")))?;
        let mut d = Chromedriver { child, port };
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

    /// Kill it now.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        self.kill();
    }
}
