//! The fault suite: runs are killed with -9 at seeded random points (with
//! the embedded testbed and with an external one), chromedriver is killed
//! mid-send, the testbed is killed and restarted mid-run, and two resumes
//! race for one run folder. Each ends checked against the platform's own
//! ground truth, not against chatprobe's records: every planned send reached
//! the platform exactly once, every outcome is the platform's decision,
//! every trial is conclusive, and no process of chatprobe's is left.
//!
//! `CHATPROBE_KILLS` sets the number of kills (5 in `make test`, 20 in
//! `make soak`); `CHATPROBE_FAULT_SEED` replays a failing draw (printed).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use serde_json::Value;

use crate::run::{jsonl, markers, truth_by_marker, Campaign, TestbedProcess};
use crate::util::{chatprobe_ok, csv_maps, s};

const LIMITS: &str =
    "sends_per_minute = 120\nparallel_pairs = 2\ndeliver_timeout_s = 20\nafter_sentinel_s = 0.6";

/// Images and documents seeded then tested, and keywords: every kind of send.
const BODY: &str = r#"
[[experiment]]
kind = "surveillance"
name = "files"
items = { id = ["img-s01", "img-s02", "img-s03", "img-b01", "doc-s01", "doc-b01"] }
seed_chat = { from = "intl-a", to = "intl-b" }
test_chat = { from = "intl-a", to = "china-c" }
delay_s = 3

[[experiment]]
kind = "keyword"
keywords = "../corpus/keywords.csv"
items = { topic = ["june4", "food"] }
test_chat = { from = "intl-c", to = "china-d" }
"#;

fn kills() -> usize {
    std::env::var("CHATPROBE_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5)
}

fn rng(test: &str) -> rand_chacha::ChaCha8Rng {
    let seed = std::env::var("CHATPROBE_FAULT_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| rand::rng().random::<u32>() as u64);
    eprintln!("{test}: CHATPROBE_FAULT_SEED={seed}");
    rand_chacha::ChaCha8Rng::seed_from_u64(seed)
}

/// A campaign whose chatprobe processes get their own TMPDIR, so that every
/// process they start (chromedriver, Chromium, watchdogs) can be found.
struct Faulty {
    c: Campaign,
    tmp: PathBuf,
}

impl Faulty {
    fn new() -> Faulty {
        Faulty::with_body(BODY)
    }

    /// A run long enough for `kills()` kills a few journal records apart.
    fn for_kills() -> Faulty {
        let reps = (kills() / 6).max(1);
        Faulty::with_body(
            &BODY.replace("delay_s = 3", &format!("delay_s = 3\nreplicates = {reps}")),
        )
    }

    fn with_body(body: &str) -> Faulty {
        let c = Campaign::new("0.05", LIMITS, body);
        let tmp = c.dir.path().join("tmp");
        std::fs::create_dir_all(&tmp).unwrap();
        Faulty { c, tmp }
    }

    fn spawn(&self, args: &[&str], log: &str) -> Child {
        Command::new(env!("CARGO_BIN_EXE_chatprobe"))
            .args(args)
            .env("TMPDIR", &self.tmp)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.c.dir.path().join(log)).unwrap())
            .spawn()
            .unwrap()
    }

    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.c.dir.path().join(name)).unwrap_or_default()
    }

    /// The first run's arguments, or a resume's.
    fn args(&self, first: bool, base_url: Option<&str>) -> Vec<String> {
        let mut a: Vec<String> = vec!["run".into(), "--quiet".into()];
        if first {
            a.extend([
                s(&self.c.spec).into(),
                "--results".into(),
                s(&self.c.results()).into(),
            ]);
            if let Some(u) = base_url {
                a.extend(["--base-url".into(), u.into()]);
            }
        } else {
            a.extend(["--resume".into(), s(&self.c.run_dir()).into()]);
        }
        a
    }

    /// Processes whose environment carries our TMPDIR (chromedriver,
    /// Chromium, the watchdog), chatprobe's own aside.
    fn leftovers(&self) -> Vec<(i32, String)> {
        let needle = format!("TMPDIR={}", self.tmp.display());
        let mut out = Vec::new();
        for p in std::fs::read_dir("/proc").unwrap().flatten() {
            let Some(pid) = p.file_name().to_str().and_then(|x| x.parse::<i32>().ok()) else {
                continue;
            };
            let Ok(env) = std::fs::read(p.path().join("environ")) else {
                continue;
            };
            if env.split(|b| *b == 0).any(|kv| kv == needle.as_bytes()) {
                let comm = std::fs::read_to_string(p.path().join("comm")).unwrap_or_default();
                // A zombie already dead but not reaped has no environ left.
                out.push((pid, comm.trim().to_string()));
            }
        }
        out
    }

    /// Wait (≤ 10 s) until nothing of ours runs; how long it took.
    fn nothing_left(&self) -> Duration {
        let t0 = Instant::now();
        loop {
            let left = self.leftovers();
            if left.is_empty() {
                return t0.elapsed();
            }
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "10 s after chatprobe ended these still run: {left:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Lines of the run's journal (0 before it exists).
fn journal_lines(results: &Path) -> usize {
    let Ok(rd) = std::fs::read_dir(results) else {
        return 0;
    };
    rd.flatten()
        .map(|e| {
            std::fs::read_to_string(e.path().join("journal.jsonl"))
                .map(|t| t.lines().count())
                .unwrap_or(0)
        })
        .sum()
}

fn last_record_is_stop(results: &Path) -> bool {
    std::fs::read_dir(results)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("journal.jsonl")).ok())
        .any(|t| {
            t.lines()
                .last()
                .is_some_and(|l| l.contains("\"event\":\"stop\""))
        })
}

/// How a [`kill_at`] went.
#[derive(Debug, PartialEq)]
enum Kill {
    /// The run exited by itself first (successfully).
    Finished,
    /// Killed mid-run.
    Crashed,
    /// Killed after it wrote its `stop` record: the run had ended, so this
    /// is no crash (a resume still rewrites its outputs).
    AfterStop,
}

/// Run `child` until the journal holds `lines` lines, then kill it with -9.
fn kill_at(f: &Faulty, mut child: Child, lines: usize, log: &str) -> Kill {
    let t0 = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "{log} failed: {}", f.log(log));
            return Kill::Finished;
        }
        if journal_lines(&f.c.results()) >= lines {
            unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
            let _ = child.wait();
            // A kill that came after the run wrote its last record (`stop`)
            // is not a crash: the run had ended.
            return if last_record_is_stop(&f.c.results()) {
                Kill::AfterStop
            } else {
                Kill::Crashed
            };
        }
        assert!(
            t0.elapsed() < Duration::from_secs(300),
            "{log}: no progress: {}",
            f.log(log)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The run against the platform's truth: every planned send reached the
/// platform exactly once (over all its attempts), its final outcome is the
/// platform's decision, nothing reached the platform that no send made,
/// and every trial is conclusive.
fn check_exactly_once(run: &Path, truth: &Path) {
    check_at_most_once(run, truth, false);
}

/// [`check_exactly_once`], except that with `outage` a send handed to the
/// client while the platform was down may end `error` having reached it
/// 0 times: never retried (it might have arrived), its trial inconclusive.
fn check_at_most_once(run: &Path, truth: &Path, outage: bool) {
    let truth = jsonl(truth);
    let by_marker = truth_by_marker(&truth);
    let markers = markers(run);
    let plan = csv_maps(&run.join("plan.csv"));
    let sends = csv_maps(&run.join("sends.csv"));
    let mut last: HashMap<&str, &HashMap<String, String>> = HashMap::new();
    for r in &sends {
        let e = last.entry(r["send_id"].as_str()).or_insert(r);
        if r["attempt"].parse::<u32>().unwrap() > e["attempt"].parse::<u32>().unwrap() {
            *e = r;
        }
    }
    let (mut dup, mut mismatch) = (0, 0);
    let mut stood: HashSet<String> = HashSet::new();
    let mut unsent: Vec<&HashMap<String, String>> = Vec::new();
    for p in &plan {
        let id = p["send_id"].as_str();
        let Some(r) = last.get(id) else {
            unsent.push(p);
            continue;
        };
        let sent: Vec<&Value> = markers[id]
            .iter()
            .flat_map(|m| by_marker.get(m).into_iter().flatten())
            .collect();
        if outage && sent.is_empty() && r["outcome"] == "error" && !r["sent_at"].is_empty() {
            eprintln!("{id}: handed over during the outage, never reached the platform: error, not retried");
            stood.insert(r["trial_id"].clone());
            continue;
        }
        if sent.len() != 1 {
            dup += 1;
            eprintln!("{id}: reached the platform {} times", sent.len());
            continue;
        }
        if sent[0]["decision"].as_str().unwrap() != r["outcome"] {
            mismatch += 1;
            eprintln!(
                "{id}: dataset says {}, the platform decided {}",
                r["outcome"], sent[0]["decision"]
            );
        }
    }
    // A trial ends at its first send that stood as `error`: the sends
    // planned after it are never made (its verdict is inconclusive).
    // Any other planned send missing from sends.csv was lost.
    let lost = unsent
        .iter()
        .filter(|p| {
            let after_stood = stood.contains(&p["trial_id"]);
            if !after_stood {
                eprintln!("{}: planned, never in sends.csv", p["send_id"]);
            }
            !after_stood
        })
        .count();
    let all: HashSet<&String> = markers.values().flatten().collect();
    let stray: Vec<&String> = by_marker.keys().filter(|m| !all.contains(m)).collect();
    assert_eq!(
        (dup, lost, mismatch, stray.len()),
        (0, 0, 0, 0),
        "duplicates, lost sends, mismatches, strays ({stray:?})"
    );
    let trials = csv_maps(&run.join("trials.csv"));
    let planned: HashSet<&str> = plan.iter().map(|p| p["trial_id"].as_str()).collect();
    assert_eq!(trials.len(), planned.len(), "every trial has a verdict");
    let bad: Vec<_> = trials
        .iter()
        .filter(|t| t["verdict"] == "inconclusive" && !stood.contains(&t["trial_id"]))
        .collect();
    assert!(bad.is_empty(), "inconclusive trials: {bad:?}");
    let m: Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("run.json")).unwrap()).unwrap();
    assert_eq!(m["state"], "complete");
}

/// Kill -9 the run `kills()` times at random points of its journal, resume
/// each time, then resume to the end.
fn kill_and_resume(f: &Faulty, base_url: Option<&str>, label: &str) -> usize {
    let mut rng = rng(label);
    let mut killed = 0;
    let mut finished = false;
    let mut slowest = Duration::ZERO;
    for i in 0..kills() {
        let lines = journal_lines(&f.c.results()) + rng.random_range(2..9);
        let args = f.args(i == 0, base_url);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let log = format!("{label}-{i}.log");
        match kill_at(f, f.spawn(&args, &log), lines, &log) {
            Kill::Crashed => {
                killed += 1;
                slowest = slowest.max(f.nothing_left());
            }
            Kill::AfterStop => slowest = slowest.max(f.nothing_left()),
            Kill::Finished => {
                finished = true;
                break;
            }
        }
    }
    if !finished {
        let args = f.args(false, base_url);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let status = f.spawn(&args, "last.log").wait().unwrap();
        assert!(status.success(), "the last resume: {}", f.log("last.log"));
    }
    f.nothing_left();
    eprintln!("{label}: {killed} kills, every process gone within {slowest:?}");
    let m: Value =
        serde_json::from_str(&std::fs::read_to_string(f.c.run_dir().join("run.json")).unwrap())
            .unwrap();
    assert_eq!(m["crashes"].as_u64().unwrap(), killed as u64);
    killed
}

#[test]
fn kill_9_with_the_embedded_testbed_loses_nothing() {
    let f = Faulty::for_kills();
    let killed = kill_and_resume(&f, None, "embedded");
    assert_eq!(killed, kills(), "every kill lands mid-run");
    let run = f.c.run_dir();
    check_exactly_once(&run, &run.join("truth.jsonl"));
}

#[ignore = "make soak; make test: faults::kill_9_with_the_embedded_testbed_loses_nothing"]
#[test]
fn kill_9_with_an_external_testbed_loses_nothing() {
    let f = Faulty::for_kills();
    let truth = f.c.dir.path().join("truth.jsonl");
    let tb = TestbedProcess::start(
        &f.c.policy(),
        &f.c.dir.path().join("probes/accounts.testbed.toml"),
        &truth,
    );
    let killed = kill_and_resume(&f, Some(&tb.url), "external");
    assert_eq!(killed, kills(), "every kill lands mid-run");
    check_exactly_once(&f.c.run_dir(), &truth);
}

/// An intent without an outcome in the journal: a send is in flight.
fn in_flight(run_dir: &Path, file_only: bool) -> bool {
    last_intent_in_flight(run_dir, file_only).is_some()
}

/// The journal's last intent, if it has no outcome yet (and, with
/// `file_only`, sends a file).
fn last_intent_in_flight(run_dir: &Path, file_only: bool) -> Option<Value> {
    let text = std::fs::read_to_string(run_dir.join("journal.jsonl")).ok()?;
    let recs: Vec<Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let last = recs.iter().rev().find(|r| r["event"] == "intent")?;
    let done = recs.iter().any(|r| {
        r["event"] == "outcome"
            && r["send_id"] == last["send_id"]
            && r["attempt"] == last["attempt"]
    });
    (!done && (!file_only || last["file"].is_string())).then(|| last.clone())
}

/// The last send in flight is a file whose upload the platform has
/// recorded in its ground truth, and it has no outcome yet.
fn reached_platform_unsettled(run_dir: &Path) -> bool {
    let Some(last) = last_intent_in_flight(run_dir, true) else {
        return false;
    };
    let Some(marker) = markers(run_dir)
        .remove(last["send_id"].as_str().unwrap_or_default())
        .and_then(|mut m| m.pop())
    else {
        return false;
    };
    std::fs::read_to_string(run_dir.join("truth.jsonl")).is_ok_and(|t| t.contains(&marker))
}

fn children_named(parent: u32, name: &str) -> Vec<i32> {
    let mut out = Vec::new();
    for p in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|x| x.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(p.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid …
        let Some(rest) = stat.rsplit_once(") ") else {
            continue;
        };
        let comm = stat.split_once(" (").map(|x| x.1).unwrap_or("");
        let ppid: u32 = rest.1.split(' ').nth(1).unwrap_or("0").parse().unwrap_or(0);
        if ppid == parent && comm.starts_with(name) {
            out.push(pid);
        }
    }
    out
}

/// Wait until `cond` holds, or the child exits (a failure), for ≤ 300 s.
fn wait_for(f: &Faulty, child: &mut Child, log: &str, mut cond: impl FnMut() -> bool) {
    crate::util::wait_until(log, || {
        if cond() {
            return true;
        }
        if let Some(st) = child.try_wait().unwrap() {
            panic!("{log} ended ({st}) first: {}", f.log(log));
        }
        false
    });
}

#[test]
fn chromedriver_killed_mid_send_is_settled_not_resent() {
    let f = Faulty::new();
    let args = f.args(true, None);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut child = f.spawn(&args, "run.log");
    // Wait for a file send in flight (after the first two have finished,
    // so the browsers are warm), then kill the driver under it.
    // Kill only once the file has reached the platform and its outcome is
    // not yet known: the send is then surely watching the receiver through
    // the driver. (Killed between sends, the driver would just be rebuilt
    // before the next one, and nothing would be tested here.)
    wait_for(&f, &mut child, "run.log", || {
        journal_lines(&f.c.results()) > 8 && reached_platform_unsettled(&f.c.run_dir())
    });
    let drivers = children_named(child.id(), "chromedriver");
    assert_eq!(drivers.len(), 1, "{drivers:?}");
    unsafe { libc::kill(drivers[0], libc::SIGKILL) };
    let status = child.wait().unwrap();
    assert!(status.success(), "{}", f.log("run.log"));
    f.nothing_left();
    let run = f.c.run_dir();
    check_exactly_once(&run, &run.join("truth.jsonl"));
    // The kill was felt: some attempt failed or was settled from the chats.
    let journal = jsonl(&run.join("journal.jsonl"));
    assert!(
        journal.iter().any(|r| r["event"] == "outcome"
            && (r["outcome"] == "error" || r["settled"] == "after_error")),
        "no send noticed the dead driver"
    );
}

#[test]
fn a_testbed_restarted_mid_run_is_logged_into_again() {
    let f = Faulty::new();
    let truth = f.c.dir.path().join("truth.jsonl");
    let state = f.c.dir.path().join("tb-state");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let accounts = f.c.dir.path().join("probes/accounts.testbed.toml");
    let more = ["--state", s(&state), "--addr", &addr];
    let mut tb = TestbedProcess::start_with(&f.c.policy(), &accounts, &truth, &more);
    let args = f.args(true, Some(&tb.url));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut child = f.spawn(&args, "run.log");
    wait_for(&f, &mut child, "run.log", || {
        journal_lines(&f.c.results()) > 8 && in_flight(&f.c.run_dir(), false)
    });
    // kill -9 the platform and bring it back on the same address and state.
    unsafe { libc::kill(tb.child.id() as i32, libc::SIGKILL) };
    let _ = tb.child.wait();
    let restarted = chrono::Utc::now();
    tb = TestbedProcess::start_with(&f.c.policy(), &accounts, &truth, &more);
    let status = child.wait().unwrap();
    assert!(status.success(), "{}", f.log("run.log"));
    f.nothing_left();
    check_at_most_once(&f.c.run_dir(), &truth, true);
    // The new testbed process knew no session: whatever it received came
    // from browsers that logged in again.
    let after = jsonl(&truth)
        .iter()
        .filter(|t| t["event"] == "transmission")
        .filter(|t| {
            chrono::DateTime::parse_from_rfc3339(t["at"].as_str().unwrap()).unwrap() > restarted
        })
        .count();
    assert!(after > 0, "nothing was sent after the restart");
    drop(tb);
}

/// Two resumes of one crashed run at once: the first holds the run's lock
/// and finishes it; the second is refused (exit 2) naming the holder's pid
/// and the lock. What is tested is the lock, not a client: the runs are on
/// the simulated platform (`--platform sim:FILE`); that a crash's resume
/// sends nothing twice through a browser is the kill tests' claim.
#[test]
fn two_resumes_at_once_one_runs_the_other_is_refused() {
    let f = Faulty::new();
    let sim = format!("sim:{}", s(&f.c.sim_file()));
    let on_sim = |mut a: Vec<String>| {
        a.extend(["--platform".to_string(), sim.clone()]);
        a
    };
    let args = on_sim(f.args(true, None));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    assert_eq!(
        kill_at(&f, f.spawn(&args, "first.log"), 10, "first.log"),
        Kill::Crashed
    );
    f.nothing_left();
    let args = on_sim(f.args(false, None));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut a = f.spawn(&args, "a.log");
    // The second starts once the first holds the lock (it has journaled its
    // start), so the refusal is not left to the scheduler's luck.
    let lines = journal_lines(&f.c.results());
    wait_for(&f, &mut a, "a.log", || {
        journal_lines(&f.c.results()) > lines
    });
    let b = f.spawn(&args, "b.log").wait().unwrap();
    assert_eq!(b.code(), Some(2), "{}", f.log("b.log"));
    let why = f.log("b.log");
    assert!(
        why.contains(&format!("pid {}", a.id())) && why.contains(".lock"),
        "{why}"
    );
    assert!(a.wait().unwrap().success(), "{}", f.log("a.log"));
    f.nothing_left();
    // The run the first resume finished: every planned send has an
    // outcome, and the refused one added no journal record of its own.
    let run = f.c.run_dir();
    let planned: HashSet<String> = csv_maps(&run.join("plan.csv"))
        .into_iter()
        .map(|r| r["send_id"].clone())
        .collect();
    let sent: HashSet<String> = csv_maps(&run.join("sends.csv"))
        .into_iter()
        .map(|r| r["send_id"].clone())
        .collect();
    assert_eq!(planned, sent);
    let starts = jsonl(&run.join("journal.jsonl"))
        .iter()
        .filter(|r| r["event"] == "start")
        .count();
    assert_eq!(starts, 2, "the first run and one resume");
    let r = chatprobe_ok(&["runs", "--results", s(&f.c.results())]);
    assert!(r.stdout.contains("complete"), "{}", r.stdout);
}

/// Values `plan` once accepted and `run` then crashed or hung on, secrets
/// that leaked into messages, and files outside the corpus: each is refused
/// with exit 2, naming the file and the key, and nothing is written.
#[test]
fn every_bad_input_exits_2_names_the_file_and_key_and_writes_nothing() {
    let good = r#"
[[experiment]]
kind = "surveillance"
name = "x"
items = { kind = ["image"] }
seed_chat = { from = "intl-a", to = "intl-b" }
test_chat = { from = "intl-a", to = "china-c" }
delay_s = 5
"#;
    let c = Campaign::new("1.0", "sends_per_minute = 20", good);
    let base = std::fs::read_to_string(&c.spec).unwrap();
    let results = c.results();
    // (edit, the key the error names)
    let spec_cases: &[(&str, &str, &str)] = &[
        (
            "sends_per_minute = 20",
            "sends_per_minute = 1e-300",
            "[limits.sends_per_minute]",
        ),
        ("delay_s = 5", "delay_s = 1e300", "[experiment[0].delay_s]"),
        (
            "name = \"x\"",
            "name = \"x\"\nreplicates = 4000000000",
            "[experiment[0].replicates]",
        ),
        (
            "name = \"x\"",
            "name = \"x\"\nreplicates = 1000000",
            "[experiment[0].replicates]",
        ),
        (
            "items = { kind = [\"image\"] }",
            "items = {}",
            "[experiment[0].items]",
        ),
        ("name = \"t\"", "name = \"a\\nb\"", "[name]"),
        ("name = \"t\"", "name = \"../up\"", "[name]"),
        (
            "[limits]",
            "[limits]\ndeliver_timeout_s = 1e12",
            "[limits.deliver_timeout_s]",
        ),
    ];
    let bad = c.dir.path().join("probes/bad.toml");
    for (from, to, key) in spec_cases {
        assert!(base.contains(from), "{from}");
        std::fs::write(&bad, base.replacen(from, to, 1)).unwrap();
        for args in [
            vec!["plan", s(&bad)],
            vec!["run", s(&bad), "--results", s(&results), "--quiet"],
        ] {
            let r = crate::util::chatprobe(&args);
            assert_eq!(r.code, 2, "{to}: {args:?}\n{}", r.stderr);
            assert!(
                r.stderr.contains("bad.toml") && r.stderr.contains(key),
                "{to}: the error must name bad.toml and {key}: {}",
                r.stderr
            );
        }
        assert!(!results.exists(), "{to}: left {results:?}");
    }
    // Credentials: resolved before anything is written, never echoed.
    let accounts = c.dir.path().join("probes/accounts.testbed.toml");
    let acc_text = std::fs::read_to_string(&accounts).unwrap();
    let first_pw = acc_text
        .lines()
        .find(|l| l.trim_start().starts_with("password ="))
        .unwrap()
        .to_string();
    let secret = c.dir.path().join("probes/pw");
    std::fs::write(&secret, "hunter2\n").unwrap();
    let cred_cases: &[(&str, &str)] = &[
        ("password_file = \"pw\"", "readable by others"),
        ("password_file = \"missing\"", "missing"),
        ("password_env = \"CHATPROBE_TEST_UNSET\"", "password_env"),
        ("password = 987654321", "password"),
    ];
    for (line, needle) in cred_cases {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::write(&accounts, acc_text.replacen(&first_pw, line, 1)).unwrap();
        let r = crate::util::chatprobe(&["run", s(&c.spec), "--results", s(&results), "--quiet"]);
        assert_eq!(r.code, 2, "{line}: {}", r.stderr);
        assert!(r.stderr.contains(needle), "{line}: {}", r.stderr);
        assert!(
            !r.stderr.contains("987654321"),
            "a secret echoed: {}",
            r.stderr
        );
        assert!(!results.exists(), "{line}: left {results:?}");
    }
    std::fs::write(&accounts, &acc_text).unwrap();
    // A URL's credentials are never printed.
    let r = crate::util::chatprobe(&[
        "run",
        s(&c.spec),
        "--results",
        s(&results),
        "--quiet",
        "--base-url",
        "http://someone:topsecret@127.0.0.1:9/",
    ]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("--base-url") && !r.stderr.contains("topsecret"),
        "{}",
        r.stderr
    );
    assert!(!results.exists());
    // A corpus file that is a link out of the corpus is never read.
    let corpus = c.dir.path().join("corpus");
    let img = corpus.join("images/img-b01.png");
    let img = if img.exists() {
        img
    } else {
        corpus.join("images/img-b01.jpg")
    };
    let kept = std::fs::read(&img).unwrap();
    std::fs::remove_file(&img).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", &img).unwrap();
    let before = std::fs::read(corpus.join("index.csv")).unwrap();
    let r = crate::util::chatprobe(&["corpus", "index", "--quiet", "--corpus", s(&corpus)]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("img-b01") && r.stderr.contains("outside the corpus"),
        "{}",
        r.stderr
    );
    assert_eq!(std::fs::read(corpus.join("index.csv")).unwrap(), before);
    std::fs::remove_file(&img).unwrap();
    std::fs::write(&img, kept).unwrap();
    // Values out of range in a profile and an accounts file.
    let profile = c.dir.path().join("probes/profiles/testbed.toml");
    let prof_text = std::fs::read_to_string(&profile).unwrap();
    for (from, to, key) in [
        (
            "page_load_ms = 20000",
            "page_load_ms = 99999999999",
            "timeouts.page_load_ms",
        ),
        ("poll_ms = 100", "poll_ms = 0", "timeouts.poll_ms"),
    ] {
        assert!(prof_text.contains(from), "{from}");
        std::fs::write(&profile, prof_text.replacen(from, to, 1)).unwrap();
        let r = crate::util::chatprobe(&["run", s(&c.spec), "--results", s(&results), "--quiet"]);
        assert_eq!(r.code, 2, "{to}: {}", r.stderr);
        assert!(
            r.stderr.contains("testbed.toml") && r.stderr.contains(key),
            "{}",
            r.stderr
        );
        assert!(!results.exists());
    }
    std::fs::write(&profile, &prof_text).unwrap();
    let first_login = acc_text
        .lines()
        .find(|l| l.trim_start().starts_with("login ="))
        .unwrap()
        .to_string();
    std::fs::write(
        &accounts,
        acc_text.replacen(&first_login, "login = \"  \"", 1),
    )
    .unwrap();
    let r = crate::util::chatprobe(&["run", s(&c.spec), "--results", s(&results), "--quiet"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("account[0].login") && r.stderr.contains("not only spaces"),
        "{}",
        r.stderr
    );
    assert!(!results.exists());
    std::fs::write(&accounts, &acc_text).unwrap();
    // A results folder that is a file; a schedule of no runs.
    let file = c.dir.path().join("results-file");
    std::fs::write(&file, "x").unwrap();
    let r = crate::util::chatprobe(&["run", s(&c.spec), "--results", s(&file), "--quiet"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("--results") && r.stderr.contains("is a file"),
        "{}",
        r.stderr
    );
    let r = crate::util::chatprobe(&[
        "run",
        s(&c.spec),
        "--results",
        s(&results),
        "--quiet",
        "--every",
        "24h",
        "--runs",
        "0",
    ]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("--runs"), "{}", r.stderr);
    assert!(!results.exists());
    // Flags out of range.
    for mib in ["0", "100000"] {
        let r = crate::util::chatprobe(&[
            "testbed",
            "--policy",
            s(&c.policy()),
            "--accounts",
            s(&accounts),
            "--max-upload-mib",
            mib,
        ]);
        assert_eq!(r.code, 2, "{mib}: {}", r.stderr);
        assert!(r.stderr.contains("--max-upload-mib"), "{}", r.stderr);
    }
    // analyze: --out naming a file, and non-finite numbers.
    let data = c.dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    crate::analyze::fixture(&data);
    let out_file = c.dir.path().join("out.txt");
    std::fs::write(&out_file, "x").unwrap();
    let r = crate::util::chatprobe(&["analyze", s(&data), "--out", s(&out_file), "--quiet"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("out.txt"), "{}", r.stderr);
    let stray = std::fs::read_dir(c.dir.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".chatprobe"))
        .count();
    assert_eq!(stray, 0, "analyze left a temporary folder");
    let sends = std::fs::read_to_string(data.join("sends.csv")).unwrap();
    let mut rdr = csv::Reader::from_reader(sends.as_bytes());
    let header = rdr.headers().unwrap().clone();
    let col = header.iter().position(|h| h == "latency_ms").unwrap();
    let mut w = csv::Writer::from_path(data.join("sends.csv")).unwrap();
    w.write_record(&header).unwrap();
    for (i, rec) in rdr.records().enumerate() {
        let mut rec: Vec<String> = rec.unwrap().iter().map(String::from).collect();
        if i == 0 {
            rec[col] = "NaN".into();
        }
        w.write_record(&rec).unwrap();
    }
    w.flush().unwrap();
    let r = crate::util::chatprobe(&["analyze", s(&data), "--quiet"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("sends.csv:2") && r.stderr.contains("latency_ms"),
        "{}",
        r.stderr
    );
    assert!(!data.join("analysis").exists());
    // A keyword holding a tag character (it could complete a keyword once
    // the tag is appended), and a profile that recognises pictures without
    // saying where they are.
    let kw = c.dir.path().join("corpus/bad-keywords.csv");
    std::fs::write(
        &kw,
        "keyword,topic,label\n六四,june4,sensitive\n八九┼,june4,sensitive\n",
    )
    .unwrap();
    std::fs::write(
        &bad,
        base.replacen(
            good,
            "\n[[experiment]]\nkind = \"keyword\"\nkeywords = \"../corpus/bad-keywords.csv\"\ntest_chat = { from = \"intl-c\", to = \"china-d\" }\n",
            1,
        ),
    )
    .unwrap();
    let r = crate::util::chatprobe(&["plan", s(&bad)]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("bad-keywords.csv:3") && r.stderr.contains("box-drawing"),
        "{}",
        r.stderr
    );
    let profile = c.dir.path().join("probes/profiles/testbed-noids.toml");
    let text = std::fs::read_to_string(&profile).unwrap();
    std::fs::write(&profile, text.replace("image = \"img\"", "")).unwrap();
    std::fs::write(
        &bad,
        base.replace("profiles/testbed.toml", "profiles/testbed-noids.toml"),
    )
    .unwrap();
    let r = crate::util::chatprobe(&["run", s(&bad), "--results", s(&results), "--quiet"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("testbed-noids.toml") && r.stderr.contains("messages.image"),
        "{}",
        r.stderr
    );
    assert!(!results.exists());
}

#[test]
fn a_closed_stdout_is_a_quiet_exit_0() {
    // Far more than a pipe's buffer (64 KiB), so the write meets the
    // closed pipe.
    let body = BODY.replace("delay_s = 3", "delay_s = 3\nreplicates = 300");
    let c = Campaign::new("1.0", "sends_per_minute = 20", &body);
    let mut child = Command::new(env!("CARGO_BIN_EXE_chatprobe"))
        .args(["plan", s(&c.spec)])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read one line, then close the pipe: `chatprobe plan | head -1`.
    {
        use std::io::BufRead;
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(line.starts_with("order,"), "{line}");
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("error"), "{err}");
}

/// The moments after start at which the signal test interrupts a run:
/// `CHATPROBE_SIGNAL_MOMENTS` (seconds, comma-separated; `make soak` gives
/// ten from 0.1 to 10), else five covering start-up.
fn signal_moments() -> Vec<f64> {
    std::env::var("CHATPROBE_SIGNAL_MOMENTS")
        .ok()
        .map(|v| {
            v.split(',')
                .map(|m| m.trim().parse().expect("seconds"))
                .collect()
        })
        .unwrap_or_else(|| vec![0.1, 0.5, 1.0, 2.0, 4.0])
}

#[test]
fn a_signal_at_any_moment_stops_the_run_before_another_send() {
    use std::os::unix::process::ExitStatusExt;
    let body = r#"
[[experiment]]
kind = "keyword"
keywords = "../corpus/keywords.csv"
items = { topic = ["june4", "food", "hong-kong"] }
test_chat = { from = "intl-a", to = "china-c" }
"#;
    let cases: Vec<(i32, &str, f64)> = signal_moments()
        .into_iter()
        .flat_map(|m| [(libc::SIGINT, "SIGINT", m), (libc::SIGTERM, "SIGTERM", m)])
        .collect();
    let mut table = Vec::new();
    // Two at a time: each run has two browsers.
    for pair in cases.chunks(2) {
        let rows: Vec<String> = std::thread::scope(|scope| {
            let handles: Vec<_> = pair
                .iter()
                .map(|&(sig, name, at)| {
                    scope.spawn(move || {
                        let c = Campaign::new(
                            "1.0",
                            "sends_per_minute = 120\nafter_sentinel_s = 0.5\ndeliver_timeout_s = 5",
                            body,
                        );
                        let child = Command::new(env!("CARGO_BIN_EXE_chatprobe"))
                            .args(["run", s(&c.spec), "--results", s(&c.results()), "--quiet"])
                            .stdout(Stdio::null())
                            .stderr(Stdio::piped())
                            .spawn()
                            .unwrap();
                        std::thread::sleep(Duration::from_secs_f64(at));
                        let signalled = chrono::Utc::now();
                        let t0 = Instant::now();
                        unsafe { libc::kill(child.id() as i32, sig) };
                        let out = child.wait_with_output().unwrap();
                        let took = t0.elapsed().as_secs_f64();
                        let stderr = String::from_utf8_lossy(&out.stderr);
                        let what = format!("{name} at {at} s");
                        assert_eq!(
                            out.status.code(),
                            Some(130),
                            "{what}: {:?} (signal {:?}): {stderr}",
                            out.status,
                            out.status.signal()
                        );
                        assert!(
                            stderr.contains("chatprobe run --resume"),
                            "{what}: {stderr}"
                        );
                        let run = c.run_dir();
                        let journal = jsonl(&run.join("journal.jsonl"));
                        assert_eq!(journal.last().unwrap()["reason"], "interrupted", "{what}");
                        // Nothing was sent after the signal, and what was
                        // in flight was finished.
                        let at_ = |r: &Value| {
                            chrono::DateTime::parse_from_rfc3339(r["at"].as_str().unwrap()).unwrap()
                        };
                        let intents: Vec<_> =
                            journal.iter().filter(|r| r["event"] == "intent").collect();
                        let late = intents
                            .iter()
                            .filter(|r| at_(r) > signalled + chrono::Duration::milliseconds(100))
                            .count();
                        assert_eq!(late, 0, "{what}: {late} sends began after the signal");
                        let outcomes = journal.iter().filter(|r| r["event"] == "outcome").count();
                        assert_eq!(intents.len(), outcomes, "{what}");
                        assert!(took < 10.0, "{what}: exit {took:.1} s after the signal");
                        format!(
                            "{name:7} at {at:>4} s: exit 130 after {took:.1} s, {} sent before",
                            intents.len()
                        )
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        table.extend(rows);
    }
    eprintln!("signals:\n{}", table.join("\n"));
}

#[test]
fn a_journal_that_lost_records_is_not_resumed() {
    let body = r#"
[[experiment]]
kind = "keyword"
keywords = "../corpus/keywords.csv"
items = { topic = ["june4", "food", "hong-kong"] }
test_chat = { from = "intl-a", to = "china-c" }
"#;
    let c = Campaign::new(
        "1.0",
        "sends_per_minute = 120\nafter_sentinel_s = 0.5",
        body,
    );
    let child = Command::new(env!("CARGO_BIN_EXE_chatprobe"))
        .args(["run", s(&c.spec), "--results", s(&c.results()), "--quiet"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Stop it once a few outcomes are in sends.csv.
    crate::util::wait_until("three sends in sends.csv", || {
        std::fs::read_dir(c.results())
            .ok()
            .and_then(|mut d| d.next())
            .map(|e| e.unwrap().path().join("sends.csv"))
            .is_some_and(|p| p.exists() && csv_maps(&p).len() >= 3)
    });
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130));
    let run = c.run_dir();
    let journal = run.join("journal.jsonl");
    let whole = std::fs::read_to_string(&journal).unwrap();
    let sends_before = std::fs::read(run.join("sends.csv")).unwrap();
    // Emptied, then cut before its last outcome: refused, nothing written.
    let cut = &whole[..whole.rfind("\"event\":\"outcome\"").unwrap()];
    let cut = &cut[..cut.rfind('\n').unwrap() + 1];
    for (damage, says) in [("", "is empty or missing"), (cut, "has lost records")] {
        std::fs::write(&journal, damage).unwrap();
        let r = crate::util::chatprobe(&["run", "--quiet", "--resume", s(&run)]);
        assert_eq!(r.code, 2, "{says}: {}", r.stderr);
        assert!(
            r.stderr.contains("journal.jsonl") && r.stderr.contains(says),
            "{}",
            r.stderr
        );
        assert!(
            r.stderr.contains("resuming would send them again"),
            "{}",
            r.stderr
        );
        assert_eq!(
            std::fs::read_to_string(&journal).unwrap(),
            damage,
            "{says}: journal written"
        );
        assert_eq!(std::fs::read(run.join("sends.csv")).unwrap(), sends_before);
    }
    // The whole journal back, but the testbed's saved state gone: refused
    // unless the user accepts a testbed that starts empty.
    std::fs::write(&journal, &whole).unwrap();
    std::fs::remove_dir_all(run.join("testbed")).unwrap();
    let r = crate::util::chatprobe(&["run", "--quiet", "--resume", s(&run)]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("testbed") && r.stderr.contains("--fresh-testbed"),
        "{}",
        r.stderr
    );
    assert_eq!(std::fs::read_to_string(&journal).unwrap(), whole);
    let r = chatprobe_ok(&["run", "--quiet", "--resume", s(&run), "--fresh-testbed"]);
    assert!(r.stdout.contains("complete"), "{}", r.stdout);
}

/// A small run: the June 4th keywords, from intl-a to china-c.
fn june4_keywords() -> Campaign {
    Campaign::new(
        "1.0",
        "sends_per_minute = 120",
        r#"
[[experiment]]
kind = "keyword"
keywords = "../corpus/keywords.csv"
items = { topic = ["june4"] }
test_chat = { from = "intl-a", to = "china-c" }
"#,
    )
}

/// A chromedriver that cannot start (here one that exits at once, found
/// first on PATH): the run is refused, exit 2, naming it, and the new
/// run's folder is gone: nothing was sent, so no half-made run is left to
/// list, resume or merge.
#[test]
fn a_driver_that_cannot_start_leaves_no_run_folder() {
    use std::os::unix::fs::PermissionsExt;
    let c = june4_keywords();
    let bin = c.dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let fake = bin.join("chromedriver");
    std::fs::write(&fake, "#!/bin/sh\nexit 3\n").unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_chatprobe"))
        .args(["run", s(&c.spec), "--results", s(&c.results()), "--quiet"])
        .env("PATH", path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(s(&fake)) && stderr.contains("did not become ready"),
        "{stderr}"
    );
    let left: Vec<_> = std::fs::read_dir(c.results())
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(
        left.iter().all(|p| !p.is_dir()),
        "a run folder was left: {left:?}"
    );
}

/// A profile whose browser cannot start: the run stops before any trial,
/// exit 1, state `failed`, and says which binary and how to go on.
#[test]
fn a_browser_that_cannot_start_stops_the_run_before_any_trial() {
    let c = june4_keywords();
    let profile = c.dir.path().join("probes/profiles/testbed.toml");
    let text = std::fs::read_to_string(&profile).unwrap();
    assert!(text.contains("binary = \"/usr/bin/chromium\""));
    std::fs::write(
        &profile,
        text.replace(
            "binary = \"/usr/bin/chromium\"",
            "binary = \"/nonexistent/chrome\"",
        ),
    )
    .unwrap();
    let r = crate::util::chatprobe(&["run", s(&c.spec), "--results", s(&c.results()), "--quiet"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("/nonexistent/chrome") && r.stderr.contains("chatprobe run --resume"),
        "{}",
        r.stderr
    );
    let run = c.run_dir();
    let m: Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("run.json")).unwrap()).unwrap();
    assert_eq!(m["state"], "failed");
    let journal = jsonl(&run.join("journal.jsonl"));
    assert!(
        journal.iter().all(|r| r["event"] != "intent"),
        "a send was tried"
    );
}
