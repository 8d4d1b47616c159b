//! `chatprobe schedule add|list|remove`: schedules that survive a reboot, a
//! closed terminal and a logout. `add` installs a systemd user timer where
//! systemd runs (the user's manager answers `systemctl --user`), and a line
//! in the user's crontab where it does not. Either calls
//!
//! ```text
//! cd PROJECT && PATH=… chatprobe run SPEC --results DIR --if-due PERIOD --at HH:MM --quiet >> DIR/.schedule-NAME.log 2>&1
//! ```
//!
//! hourly (every minute for periods under an hour); [`super::due`] decides
//! whether the spec's run is due, resumes one a reboot interrupted, and
//! keeps two runs of a spec from overlapping. So a missed run is caught up
//! once, at the first tick after the machine is back, with cron (which has
//! no catch-up of its own) as with systemd.
//!
//! A schedule is named after its spec (`chatprobe-NAME`); only what carries
//! that mark is ever read or removed, so the rest of the user's crontab is
//! left as it was. The crontab program is `crontab` on the PATH, or
//! `CHATPROBE_CRONTAB`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::Serialize;

use super::due::Slots;
use crate::error::InputError;

/// Where schedules are installed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// The user's crontab.
    Cron,
    /// A systemd user timer and service in ~/.config/systemd/user.
    Systemd,
}

impl Backend {
    /// systemd when its user manager answers, else cron.
    pub fn detect() -> Backend {
        let booted = Path::new("/run/systemd/system").is_dir();
        let user = booted
            && Command::new("systemctl")
                .args(["--user", "show-environment"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
        if user {
            Backend::Systemd
        } else {
            Backend::Cron
        }
    }

    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Cron => "cron",
            Backend::Systemd => "systemd",
        }
    }
}

/// A schedule: what `add` installs and `list` reads back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Schedule {
    /// The spec's name (the schedule is `chatprobe-NAME`).
    pub name: String,
    /// Where it is installed.
    pub backend: Backend,
    /// The timer's calendar (cron fields or systemd OnCalendar).
    pub when: String,
    /// The command it runs.
    pub command: String,
}

/// What `schedule add` needs.
#[derive(Debug, Clone)]
pub struct AddOptions {
    /// The spec (made absolute).
    pub spec: PathBuf,
    /// The spec's name.
    pub name: String,
    /// The results folder (made absolute).
    pub results: PathBuf,
    /// The project folder the run starts in (relative paths in run.json
    /// are relative to it).
    pub workdir: PathBuf,
    /// The chatprobe binary.
    pub exe: PathBuf,
    /// When.
    pub slots: Slots,
    /// The PATH the run gets (browsers, chromedriver).
    pub path_env: String,
}

/// The mark of every line and unit chatprobe owns.
pub const MARK: &str = "chatprobe-schedule:";

/// A word for `sh`, single-quoted when it needs quoting. (Five lines, so no
/// crate: `'` becomes `'\''`.)
pub fn sh_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=,+@".contains(c));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// The log a schedule's runs append to.
pub fn log_file(results: &Path, name: &str) -> PathBuf {
    results.join(format!(".schedule-{name}.log"))
}

/// The `chatprobe run … --if-due` arguments (after the binary).
pub fn run_args(o: &AddOptions) -> Vec<String> {
    vec![
        "run".into(),
        o.spec.display().to_string(),
        "--results".into(),
        o.results.display().to_string(),
        "--if-due".into(),
        humantime::format_duration(o.slots.period).to_string(),
        "--at".into(),
        o.slots.at.format("%H:%M").to_string(),
        "--quiet".into(),
    ]
}

/// The shell command a crontab line runs.
pub fn shell_command(o: &AddOptions) -> String {
    let mut words = vec![sh_quote(&o.exe.display().to_string())];
    words.extend(run_args(o).iter().map(|a| sh_quote(a)));
    format!(
        "cd {} && PATH={} exec {} >> {} 2>&1",
        sh_quote(&o.workdir.display().to_string()),
        sh_quote(&o.path_env),
        words.join(" "),
        sh_quote(&log_file(&o.results, &o.name).display().to_string())
    )
}

/// The timer's minute: the `--at` minute, or every minute for periods
/// under an hour.
fn cron_fields(slots: &Slots) -> String {
    use chrono::Timelike;
    if slots.period.as_secs() < 3600 {
        "* * * * *".into()
    } else {
        format!("{} * * * *", slots.at.minute())
    }
}

/// The crontab entry: a marked comment and the job (in cron, `%` ends the
/// command, so it is escaped).
pub fn cron_entry(o: &AddOptions) -> String {
    format!(
        "# {MARK} {} (every {} at {})\n{} {}\n",
        o.name,
        humantime::format_duration(o.slots.period),
        o.slots.at.format("%H:%M"),
        cron_fields(&o.slots),
        shell_command(o).replace('%', r"\%")
    )
}

/// A word for a systemd `ExecStart=` line: double-quoted, `%` doubled.
fn unit_quote(s: &str) -> String {
    format!(
        "\"{}\"",
        s.replace('\\', r"\\")
            .replace('"', "\\\"")
            .replace('%', "%%")
    )
}

/// The systemd user service and timer (file name, text) pairs.
pub fn systemd_units(o: &AddOptions) -> [(String, String); 2] {
    use chrono::Timelike;
    let unit = format!("chatprobe-{}", o.name);
    let mut exec = vec![unit_quote(&o.exe.display().to_string())];
    exec.extend(run_args(o).iter().map(|a| unit_quote(a)));
    let calendar = if o.slots.period.as_secs() < 3600 {
        "minutely".to_string()
    } else {
        format!("*-*-* *:{:02}:00", o.slots.at.minute())
    };
    let service = format!(
        "# {MARK} {name}\n[Unit]\nDescription=chatprobe: run {spec} when due (every {every} at {at})\n\n[Service]\nType=oneshot\nWorkingDirectory={wd}\nEnvironment={path}\nExecStart={exec}\nStandardOutput=append:{log}\nStandardError=append:{log}\n",
        name = o.name,
        spec = o.spec.display(),
        every = humantime::format_duration(o.slots.period),
        at = o.slots.at.format("%H:%M"),
        // A path, not a word list: not quoted (spaces are kept), `%` doubled.
        wd = o.workdir.display().to_string().replace('%', "%%"),
        path = unit_quote(&format!("PATH={}", o.path_env)),
        exec = exec.join(" "),
        log = log_file(&o.results, &o.name).display(),
    );
    let timer = format!(
        "# {MARK} {name}\n[Unit]\nDescription=chatprobe: tick for {name}\n\n[Timer]\nOnCalendar={calendar}\nPersistent=true\nUnit={unit}.service\n\n[Install]\nWantedBy=timers.target\n",
        name = o.name,
    );
    [
        (format!("{unit}.service"), service),
        (format!("{unit}.timer"), timer),
    ]
}

/// Why installing or reading schedules failed (not the user's input).
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// A program could not be run.
    #[error("cannot run `{program}`: {source} (is it installed? Debian: apt install {package})")]
    Spawn {
        /// The program.
        program: String,
        /// Its package.
        package: &'static str,
        /// Why.
        source: std::io::Error,
    },
    /// A program failed.
    #[error("`{command}` failed: {stderr}")]
    Failed {
        /// The command.
        command: String,
        /// What it printed.
        stderr: String,
    },
    /// A unit file could not be written or removed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

fn crontab_program() -> String {
    std::env::var("CHATPROBE_CRONTAB").unwrap_or_else(|_| "crontab".into())
}

fn run_program(program: &str, args: &[&str], input: Option<&str>) -> Result<String, InstallError> {
    let package = if program.ends_with("crontab") {
        "cron"
    } else {
        "systemd"
    };
    let mut child = Command::new(program)
        .args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| InstallError::Spawn {
            program: program.into(),
            package,
            source,
        })?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin
            .write_all(text.as_bytes())
            .map_err(|source| InstallError::Spawn {
                program: program.into(),
                package,
                source,
            })?;
    }
    let out = child
        .wait_with_output()
        .map_err(|source| InstallError::Spawn {
            program: program.into(),
            package,
            source,
        })?;
    if !out.status.success() {
        return Err(InstallError::Failed {
            command: format!("{program} {}", args.join(" ")),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The user's crontab ("no crontab" reads as empty).
fn read_crontab() -> Result<String, InstallError> {
    match run_program(&crontab_program(), &["-l"], None) {
        Ok(t) => Ok(t),
        Err(InstallError::Failed { stderr, .. }) if stderr.contains("no crontab") => {
            Ok(String::new())
        }
        Err(e) => Err(e),
    }
}

/// The crontab without `name`'s entry (or without every chatprobe entry
/// when `name` is None), and the entries taken out.
fn without(crontab: &str, name: &str) -> (String, Vec<Schedule>) {
    let mut keep = String::new();
    let mut taken = Vec::new();
    let mut lines = crontab.lines();
    while let Some(l) = lines.next() {
        if let Some(rest) = l.strip_prefix("# ").and_then(|r| r.strip_prefix(MARK)) {
            let this = rest.split_whitespace().next().unwrap_or("");
            if let Some(job) = lines.next() {
                if this == name || name.is_empty() {
                    taken.push(parse_cron_job(this, job));
                    continue;
                }
                keep.push_str(l);
                keep.push('\n');
                keep.push_str(job);
                keep.push('\n');
                continue;
            }
        }
        keep.push_str(l);
        keep.push('\n');
    }
    (keep, taken)
}

fn parse_cron_job(name: &str, job: &str) -> Schedule {
    let mut rest = job.trim_start();
    let mut fields = Vec::new();
    for _ in 0..5 {
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        fields.push(&rest[..end]);
        rest = rest[end..].trim_start();
    }
    Schedule {
        name: name.to_string(),
        backend: Backend::Cron,
        when: fields.join(" "),
        command: rest.replace(r"\%", "%"),
    }
}

/// The folder of the user's systemd units.
pub fn systemd_dir() -> PathBuf {
    std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .unwrap_or_else(|| PathBuf::from(".config"))
        .join("systemd/user")
}

/// Install (or replace) the schedule; returns what was installed.
pub fn add(o: &AddOptions, backend: Backend) -> Result<Schedule, InstallError> {
    match backend {
        Backend::Cron => {
            let (mut tab, _) = without(&read_crontab()?, &o.name);
            let entry = cron_entry(o);
            tab.push_str(&entry);
            run_program(&crontab_program(), &["-"], Some(&tab))?;
            let job = entry.lines().nth(1).unwrap_or("");
            Ok(parse_cron_job(&o.name, job))
        }
        Backend::Systemd => {
            let dir = systemd_dir();
            std::fs::create_dir_all(&dir).map_err(|source| InstallError::Io {
                path: dir.clone(),
                source,
            })?;
            let units = systemd_units(o);
            for (file, text) in &units {
                crate::fsutil::atomic_write_bytes(&dir.join(file), text.as_bytes()).map_err(
                    |source| InstallError::Io {
                        path: dir.join(file),
                        source,
                    },
                )?;
            }
            run_program("systemctl", &["--user", "daemon-reload"], None)?;
            run_program(
                "systemctl",
                &["--user", "enable", "--now", &units[1].0],
                None,
            )?;
            Ok(read_unit(&dir, &o.name).expect("the units just written"))
        }
    }
}

fn read_unit(dir: &Path, name: &str) -> Option<Schedule> {
    let service = std::fs::read_to_string(dir.join(format!("chatprobe-{name}.service"))).ok()?;
    let timer = std::fs::read_to_string(dir.join(format!("chatprobe-{name}.timer"))).ok()?;
    let key = |text: &str, k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(k))
            .unwrap_or("")
            .to_string()
    };
    Some(Schedule {
        name: name.to_string(),
        backend: Backend::Systemd,
        when: key(&timer, "OnCalendar="),
        command: key(&service, "ExecStart="),
    })
}

/// Every chatprobe schedule, in the crontab and among the user's units.
pub fn list() -> Result<Vec<Schedule>, InstallError> {
    let mut out = Vec::new();
    match read_crontab() {
        Ok(tab) => out.extend(without(&tab, "").1),
        // No crontab program: no cron schedules.
        Err(InstallError::Spawn { .. }) => {}
        Err(e) => return Err(e),
    }
    if let Ok(rd) = std::fs::read_dir(systemd_dir()) {
        let mut names: Vec<String> = rd
            .flatten()
            .filter_map(|e| {
                let f = e.file_name().to_string_lossy().into_owned();
                f.strip_prefix("chatprobe-")?
                    .strip_suffix(".timer")
                    .map(str::to_string)
            })
            .collect();
        names.sort();
        out.extend(names.iter().filter_map(|n| read_unit(&systemd_dir(), n)));
    }
    Ok(out)
}

/// Remove `name`'s schedule wherever it is; the removed ones (none: the
/// caller says there was none).
pub fn remove(name: &str) -> Result<Vec<Schedule>, InstallError> {
    let mut removed = Vec::new();
    if name.is_empty() {
        return Ok(removed);
    }
    if let Ok(tab) = read_crontab() {
        let (rest, taken) = without(&tab, name);
        if !taken.is_empty() {
            run_program(&crontab_program(), &["-"], Some(&rest))?;
            removed.extend(taken);
        }
    }
    let dir = systemd_dir();
    if let Some(s) = read_unit(&dir, name) {
        let timer = format!("chatprobe-{name}.timer");
        // The manager may be gone (the units were copied elsewhere): the
        // files go anyway.
        let _ = run_program("systemctl", &["--user", "disable", "--now", &timer], None);
        for f in [timer, format!("chatprobe-{name}.service")] {
            let p = dir.join(f);
            std::fs::remove_file(&p).map_err(|source| InstallError::Io { path: p, source })?;
        }
        let _ = run_program("systemctl", &["--user", "daemon-reload"], None);
        removed.push(s);
    }
    Ok(removed)
}

/// Check a spec name fits in a unit name and a crontab mark.
pub fn check_name(name: &str, spec: &Path) -> Result<(), InputError> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return Err(InputError::new(
            spec,
            format!("the spec's name `{name}` cannot name a schedule"),
        )
        .key("name")
        .hint("use letters, digits, '-', '_' and '.' only"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn opts() -> AddOptions {
        AddOptions {
            spec: "/home/r/my project/probes/daily.toml".into(),
            name: "daily".into(),
            results: "/home/r/my project/results".into(),
            workdir: "/home/r/my project".into(),
            exe: "/usr/local/bin/chatprobe".into(),
            slots: Slots::new(Duration::from_secs(86_400), "03:07").unwrap(),
            path_env: "/usr/bin:/bin:/opt/50%".into(),
        }
    }

    #[test]
    fn the_crontab_entry_is_marked_quoted_and_escapes_percent() {
        let e = cron_entry(&opts());
        let mut lines = e.lines();
        assert_eq!(
            lines.next().unwrap(),
            "# chatprobe-schedule: daily (every 1day at 03:07)"
        );
        let job = lines.next().unwrap();
        assert!(job.starts_with("7 * * * * cd '/home/r/my project' && PATH='/usr/bin:/bin:/opt/50\\%' exec /usr/local/bin/chatprobe run '/home/r/my project/probes/daily.toml' --results '/home/r/my project/results' --if-due 1day --at 03:07 --quiet >> "), "{job}");
        // Read back: the command as the shell gets it.
        let (rest, taken) = without(&format!("MAILTO=x\n{e}0 1 * * * other\n"), "daily");
        assert_eq!(rest, "MAILTO=x\n0 1 * * * other\n");
        assert_eq!(taken.len(), 1);
        assert_eq!(taken[0].when, "7 * * * *");
        assert_eq!(taken[0].command, shell_command(&opts()));
        let (_, none) = without(&rest, "daily");
        assert!(none.is_empty());
    }

    #[test]
    fn systemd_units_run_the_same_command_hourly_and_catch_up() {
        let [(sname, service), (tname, timer)] = systemd_units(&opts());
        assert_eq!(sname, "chatprobe-daily.service");
        assert_eq!(tname, "chatprobe-daily.timer");
        assert!(timer.contains("OnCalendar=*-*-* *:07:00\n"), "{timer}");
        assert!(timer.contains("Persistent=true\n"));
        assert!(service.contains("ExecStart=\"/usr/local/bin/chatprobe\" \"run\" \"/home/r/my project/probes/daily.toml\" \"--results\" \"/home/r/my project/results\" \"--if-due\" \"1day\" \"--at\" \"03:07\" \"--quiet\"\n"), "{service}");
        assert!(service.contains("Environment=\"PATH=/usr/bin:/bin:/opt/50%%\"\n"));
        assert!(service.contains("WorkingDirectory=/home/r/my project\n"));
    }

    #[test]
    fn shell_quoting_survives_quotes() {
        assert_eq!(sh_quote("a'b"), r"'a'\''b'");
        assert_eq!(sh_quote("/usr/bin"), "/usr/bin");
        assert_eq!(sh_quote(""), "''");
    }
}
