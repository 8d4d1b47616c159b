//! `chatprobe schedule`: the installed crontab line, and its command run as
//! cron would run it (a bare environment, from the user's home): a due run
//! happens once, a second tick does nothing, a held lock skips, and a
//! machine that was off for days catches up with one run, not one a day.
//! (This machine has no systemd user manager; the units are checked by the
//! unit tests of `campaign::install`.)

use std::path::Path;
use std::process::Command;

use crate::run::Campaign;
use crate::util::{chatprobe, s};

fn crontab() -> String {
    let o = Command::new("crontab").arg("-l").output().expect("crontab");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Run a crontab job's command as cron does: `sh -c`, an empty
/// environment but HOME, started in HOME.
fn tick(command: &str) {
    let home = std::env::var("HOME").unwrap_or_else(|_| "/".into());
    let st = Command::new("/bin/sh")
        .arg("-c")
        .arg(command)
        .env_clear()
        .env("HOME", &home)
        .env("SHELL", "/bin/sh")
        .current_dir(&home)
        .status()
        .unwrap();
    assert!(st.success(), "{command}");
}

fn run_dirs(results: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(results)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.path().is_dir())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Removes the test's crontab entry however the test ends.
struct Cleanup(String);
impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = chatprobe(&["schedule", "remove", &self.0]);
    }
}

#[test]
fn a_cron_schedule_runs_when_due_once_skips_when_locked_and_catches_up_once() {
    let c = Campaign::new(
        "1.0",
        "sends_per_minute = 120\nparallel_pairs = 1\ndeliver_timeout_s = 20\nafter_sentinel_s = 0.5",
        r#"
[[experiment]]
kind = "keyword"
keywords = "../corpus/keywords.csv"
items = { topic = ["sports"] }
test_chat = { from = "intl-a", to = "china-c" }
"#,
    );
    let name = format!("it-sched-{}", std::process::id());
    let text = std::fs::read_to_string(&c.spec).unwrap().replacen(
        "name = \"t\"",
        &format!("name = \"{name}\""),
        1,
    );
    std::fs::write(&c.spec, text).unwrap();
    let _cleanup = Cleanup(name.clone());
    let results = c.results();
    // Anchored a minute ago: the latest slot has passed and nothing ran.
    let at = (chrono::Local::now() - chrono::Duration::minutes(1))
        .format("%H:%M")
        .to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_chatprobe"))
        .args(["schedule", "add", "probes/spec.toml", "--every", "24h"])
        .args(["--at", &at, "--via", "cron", "--results", "results"])
        .current_dir(c.dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("scheduled {name} via cron")),
        "{stdout}"
    );

    // The installed line: marked, hourly at the --at minute, and calling
    // `run --if-due` with absolute paths.
    let tab = crontab();
    let mut lines = tab.lines().skip_while(|l| !l.contains(&name));
    let mark = lines.next().expect("the marked entry");
    assert!(mark.starts_with("# chatprobe-schedule: "), "{mark}");
    let job = lines.next().unwrap();
    let fields: Vec<&str> = job.split_whitespace().take(5).collect();
    let minute: u32 = at[3..].parse().unwrap();
    assert_eq!(fields, [minute.to_string().as_str(), "*", "*", "*", "*"]);
    let command = job.splitn(6, char::is_whitespace).nth(5).unwrap().trim();
    for part in [
        format!("cd {}", s(c.dir.path())),
        format!("run {}", s(&c.spec)),
        format!("--results {}", s(&results)),
        format!("--if-due 1day --at {at}"),
    ] {
        assert!(command.contains(&part), "{part} in {command}");
    }

    // The ticks run the installed command on the simulated platform: what
    // is tested here is the schedule, not the browser (run.rs has those).
    let installed = command;
    let sim = format!("--platform sim:{} --if-due", s(&c.sim_file()));
    let command = &installed.replacen("--if-due", &sim, 1);
    assert_ne!(command, installed);

    // First tick: due, one complete run.
    tick(command);
    let first = run_dirs(&results);
    assert_eq!(first.len(), 1, "{first:?}");
    let m: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(results.join(&first[0]).join("run.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(m["state"], "complete");
    // Second tick in the same slot: nothing.
    tick(command);
    assert_eq!(run_dirs(&results), first);
    let log = std::fs::read_to_string(results.join(format!(".schedule-{name}.log"))).unwrap();
    assert!(log.contains("complete"), "{log}");
    assert!(log.contains(&format!("not due: {} ran", first[0])), "{log}");

    // The machine was off for three days: the run looks three days old.
    let manifest = results.join(&first[0]).join("run.json");
    let mut m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&manifest).unwrap()).unwrap();
    let old = (chrono::Utc::now() - chrono::Duration::days(3)).to_rfc3339();
    m["started_at"] = old.into();
    std::fs::write(&manifest, serde_json::to_string(&m).unwrap()).unwrap();

    // A run of the spec under way (its lock held): the tick does nothing.
    {
        let lock = chatprobe::run::lock::RunLock::acquire(
            &chatprobe::campaign::every::campaign_lock(&results, &name),
            "test",
        )
        .unwrap();
        tick(command);
        assert_eq!(run_dirs(&results), first);
        drop(lock);
    }
    let log = std::fs::read_to_string(results.join(format!(".schedule-{name}.log"))).unwrap();
    assert!(
        log.contains("skipped: a run of this spec is under way"),
        "{log}"
    );

    // Back: one catch-up run, then nothing until the next slot.
    tick(command);
    tick(command);
    let after = run_dirs(&results);
    assert_eq!(
        after.len(),
        2,
        "three missed days, one catch-up run: {after:?}"
    );
    // Each run after the first says what changed since the one before:
    // nothing, on the same testbed.
    let second = after.iter().find(|d| **d != first[0]).unwrap();
    let changes = crate::util::csv_maps(&results.join(second).join("changes.csv"));
    assert!(changes.is_empty(), "{changes:?}");
    let log = std::fs::read_to_string(results.join(format!(".schedule-{name}.log"))).unwrap();
    assert!(
        log.contains(&format!("changes since {}: nothing changed (", first[0])),
        "{log}"
    );
    assert!(!results.join(&first[0]).join("changes.csv").exists());

    // list and remove.
    let l = chatprobe(&["schedule", "list", "--json"]);
    assert_eq!(l.code, 0, "{}", l.stderr);
    let all: serde_json::Value = serde_json::from_str(&l.stdout).unwrap();
    let mine = all
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name.as_str())
        .expect("listed");
    assert_eq!(mine["backend"], "cron");
    assert_eq!(mine["command"], installed);
    let r = chatprobe(&["schedule", "remove", s(&c.spec)]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(!crontab().contains(&name));
    let r = chatprobe(&["schedule", "remove", &name]);
    assert_eq!(r.code, 2, "nothing left to remove: {}", r.stderr);
    assert!(r.stderr.contains("schedule list"), "{}", r.stderr);
}
