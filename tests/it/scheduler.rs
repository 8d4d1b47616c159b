//! The scheduler on the simulated platform, in virtual time (tokio's paused
//! clock): every design runs and agrees with the platform's own decisions;
//! rate limits, account exclusivity and parallelism hold; errors are retried
//! without sending anything twice; and a run crashed right after any journal
//! record resumes to the verdicts of a run that never crashed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use chatprobe::dataset::manifest::RunStatus;
use chatprobe::platform::sim::{SimConfig, SimPlatform};
use chatprobe::probe::Spec;
use chatprobe::run::journal::{self, Record, SimulatedCrash};
use chatprobe::run::{run_on, RunOptions, RunSummary};
use chrono::{DateTime, Utc};

use crate::run::{check_against_truth, jsonl, markers, truth_by_marker, Campaign};
use crate::util::{chatprobe_ok, csv_maps, root};

/// The limits of every run here: 30 sends a minute (2 s apart, in virtual
/// time), two pairs at once.
const LIMITS: &str = "sends_per_minute = 30\nparallel_pairs = 2\ndeliver_timeout_s = 10\nafter_sentinel_s = 1\nretries = 6\nmax_runtime_s = 864000";

/// A platform that censors like the testbed's policy, in miniature: a few
/// keywords, and the starter corpus's sensitive images and documents
/// (`img-s…`, `doc-s…`) indexed 2 s after an inspection.
fn sim_config(c: &Campaign) -> SimConfig {
    let spec = Spec::load(&c.spec).unwrap();
    let mut cfg = SimConfig::for_accounts(&spec.accounts);
    cfg.keywords = vec!["六四".into(), "天安门".into(), "坦克人+烛光".into()];
    cfg.sensitive_names = vec!["img-s".into(), "doc-s".into()];
    cfg
}

/// One run (or resume) on `sim`, as `chatprobe run` would make it.
async fn run(
    c: &Campaign,
    sim: &SimPlatform,
    resume: Option<&Path>,
    crash_after: Option<usize>,
) -> anyhow::Result<RunSummary> {
    run_in(c, &c.results(), sim, resume, crash_after).await
}

/// [`run`], with run folders under `results`.
async fn run_in(
    c: &Campaign,
    results: &Path,
    sim: &SimPlatform,
    resume: Option<&Path>,
    crash_after: Option<usize>,
) -> anyhow::Result<RunSummary> {
    let opts = RunOptions {
        spec: resume.is_none().then(|| c.spec.clone()),
        resume: resume.map(Path::to_path_buf),
        results: results.to_path_buf(),
        quiet: true,
        crash_after,
        ..RunOptions::default()
    };
    run_on(&opts, sim, "simulated", std::future::pending()).await
}

/// `run --resume DIR --repair` on `sim`.
async fn repair_in(results: &Path, dir: &Path, sim: &SimPlatform) -> anyhow::Result<RunSummary> {
    let opts = RunOptions {
        resume: Some(dir.to_path_buf()),
        results: results.to_path_buf(),
        quiet: true,
        repair: true,
        ..RunOptions::default()
    };
    run_on(&opts, sim, "simulated", std::future::pending()).await
}

/// The platform's decisions as the testbed writes its ground truth, so the
/// run tests' checks apply unchanged.
fn write_truth(sim: &SimPlatform, path: &Path) {
    let mut out = String::new();
    for d in sim.truth() {
        let key = if d.marker.contains('.') && !d.marker.contains(' ') {
            "filename"
        } else {
            "text"
        };
        out.push_str(
            &serde_json::json!({
                "event": "transmission",
                key: d.marker,
                "sender": d.sender,
                "receiver": d.receiver,
                "decision": d.decision,
            })
            .to_string(),
        );
        out.push('\n');
    }
    std::fs::write(path, out).unwrap();
}

/// trial_id → verdict.
fn verdicts(run: &Path) -> HashMap<String, String> {
    csv_maps(&run.join("trials.csv"))
        .into_iter()
        .map(|r| (r["trial_id"].clone(), r["verdict"].clone()))
        .collect()
}

/// A threshold search over crops of `item` between 0 and 0.5, in chats of
/// its own (intl-c seeds, china-d tests).
fn crop_search(item: &str, steps: u32) -> String {
    format!(
        r#"
[[experiment]]
kind = "threshold"
name = "crop"
items = {{ id = ["{item}"] }}
transform = "crop"
blocked_at = 0
evaded_at = 0.5
steps = {steps}
delay_s = 5
seed_chat = {{ from = "intl-c", to = "intl-b" }}
test_chat = {{ from = "intl-c", to = "china-d" }}
"#
    )
}

/// Every design of the golden spec, and an adaptive threshold search.
fn every_design() -> Campaign {
    let golden = std::fs::read_to_string(root().join("tests/golden/designs.toml")).unwrap();
    Campaign::new(
        "1.0",
        LIMITS,
        &format!("{golden}\n{}", crop_search("img-s05", 3)),
    )
}

#[tokio::test(start_paused = true)]
async fn every_design_runs_on_the_simulated_platform_and_agrees_with_its_decisions() {
    let c = every_design();
    let sim = SimPlatform::new(sim_config(&c));
    let s = run(&c, &sim, None, None).await.unwrap();
    assert_eq!(s.state, RunStatus::Complete, "{s:?}");
    let s_dir = s.dir.clone();
    write_truth(&sim, &s.dir.join("truth.jsonl"));
    let sends = check_against_truth(&s.dir, &s.dir.join("truth.jsonl"));
    assert!(sends.len() > 100, "{} sends", sends.len());
    let trials = csv_maps(&s.dir.join("trials.csv"));
    assert_eq!(trials.len(), s.trials_planned);
    // items.csv: the content features of exactly the corpus items sent.
    let sent: std::collections::BTreeSet<&str> = sends
        .iter()
        .map(|r| r["item_id"].as_str())
        .filter(|i| !i.is_empty())
        .collect();
    let features = csv_maps(&s.dir.join("items.csv"));
    let described: std::collections::BTreeSet<&str> =
        features.iter().map(|r| r["item_id"].as_str()).collect();
    assert_eq!(described, sent);
    assert!(features
        .iter()
        .all(|r| !r["format"].is_empty() && r["has_text"] == "TRUE"));
    let offsets: HashMap<String, f64> = sends
        .iter()
        .filter(|r| r["experiment"] == "latency" && r["role"] == "test")
        .map(|r| (r["trial_id"].clone(), r["offset_s"].parse().unwrap()))
        .collect();
    let mut seen_designs = std::collections::BTreeSet::new();
    for t in &trials {
        seen_designs.insert(t["experiment"].clone());
        let sensitive = t["item_id"].starts_with("img-s") || t["item_id"].starts_with("doc-s");
        let expected = match t["experiment"].as_str() {
            // Inspected 2 s after the seed, tested 5 s after it.
            "surveillance" if sensitive => "surveilled",
            "surveillance" => "not_surveilled",
            // Indexed 2 s after the seed: the test's actual offset (the
            // rate limit may have pushed it past the planned 1 s) decides.
            "latency" if offsets[&t["trial_id"]] < 2.0 => "not_surveilled",
            "latency" => "surveilled",
            // A transformed copy has another MD5: the index misses it.
            "transform" | "threshold" => "evaded",
            "keyword" => {
                let parts: Vec<&str> = t["parameter"].split('+').collect();
                let hit = ["六四", "天安门"]
                    .iter()
                    .any(|k| parts.iter().any(|p| p.contains(k)))
                    || (parts.iter().any(|p| p.contains("坦克人"))
                        && parts.iter().any(|p| p.contains("烛光")));
                if hit {
                    "blocked"
                } else {
                    "evaded"
                }
            }
            // Nothing ever leaves the index.
            "expiry" => "still_blocked",
            other => panic!("unexpected design {other}"),
        };
        assert_eq!(t["verdict"], expected, "{t:?}");
    }
    assert_eq!(
        seen_designs.into_iter().collect::<Vec<_>>(),
        [
            "expiry",
            "keyword",
            "latency",
            "surveillance",
            "threshold",
            "transform"
        ]
    );
    // The search went on past its first step: each step halves the interval.
    let crops: Vec<&str> = trials
        .iter()
        .filter(|t| t["experiment"] == "threshold")
        .map(|t| t["parameter"].as_str())
        .collect();
    assert_eq!(crops, ["crop:0.25", "crop:0.125", "crop:0.0625"]);
    // Its analysis: every step evaded, so no threshold, only how far down
    // the search went.
    chatprobe_ok(&["analyze", crate::util::s(&s_dir)]);
    crate::data::check_package(&s_dir);
    crate::data::check_package(&s_dir.join("analysis"));
    let search = csv_maps(&s_dir.join("analysis/threshold_search.csv"));
    assert_eq!(search.len(), 1, "{search:?}");
    assert_eq!(
        [
            search[0]["transform"].as_str(),
            &search[0]["steps"],
            &search[0]["blocked_nearest"],
            &search[0]["evaded_nearest"],
            &search[0]["threshold"],
            &search[0]["consistent"],
        ],
        ["crop", "3", "", "0.0625", "", "TRUE"]
    );

    // The platform's clock: each account's probes at least 2 s apart.
    let mut by_sender: HashMap<String, Vec<tokio::time::Instant>> = HashMap::new();
    for d in sim.truth() {
        if !d.marker.starts_with("chatprobe sentinel") {
            by_sender.entry(d.sender.clone()).or_default().push(d.at);
        }
    }
    for (sender, mut times) in by_sender {
        times.sort();
        for w in times.windows(2) {
            let gap = w[1] - w[0];
            assert!(
                gap >= std::time::Duration::from_millis(1999),
                "{sender}: probes {gap:?} apart"
            );
        }
    }

    // The journal's clock: no account in two sends at once, never more
    // than two sends in flight, and two at some point.
    let records = journal::read(&s.dir).unwrap();
    let accounts: HashMap<String, [String; 2]> = sends
        .iter()
        .map(|r| {
            (
                r["send_id"].clone(),
                [r["sender"].clone(), r["receiver"].clone()],
            )
        })
        .collect();
    let mut open: HashMap<(String, u32), DateTime<Utc>> = HashMap::new();
    let mut spans: Vec<(DateTime<Utc>, DateTime<Utc>, &[String; 2])> = Vec::new();
    for r in &records {
        match r {
            Record::Intent {
                send_id,
                attempt,
                at,
                ..
            } => {
                open.insert((send_id.clone(), *attempt), *at);
            }
            Record::Outcome {
                send_id,
                attempt,
                at,
                ..
            }
            | Record::NotSent {
                send_id,
                attempt,
                at,
            } => {
                let from = open.remove(&(send_id.clone(), *attempt)).unwrap();
                spans.push((from, *at, &accounts[send_id]));
            }
            _ => {}
        }
    }
    assert!(open.is_empty(), "intents without an outcome: {open:?}");
    let first = spans.iter().map(|s| s.0).min().unwrap();
    let last = spans.iter().map(|s| s.1).max().unwrap();
    eprintln!(
        "{} sends, {} trials, {} s of virtual time",
        sends.len(),
        trials.len(),
        (last - first).num_seconds()
    );
    for (i, a) in spans.iter().enumerate() {
        for b in &spans[i + 1..] {
            if b.0 < a.1 && a.0 < b.1 {
                assert!(
                    !a.2.iter().any(|x| b.2.contains(x)),
                    "sends of {:?} and {:?} overlap in time",
                    a.2,
                    b.2
                );
            }
        }
    }
    // Most in flight at once: a sweep over starts and ends (an end before a
    // start at the same instant).
    let mut events: Vec<(DateTime<Utc>, i32)> =
        spans.iter().flat_map(|s| [(s.0, 1), (s.1, -1)]).collect();
    events.sort();
    let (mut now, mut most) = (0, 0);
    for (_, d) in events {
        now += d;
        most = most.max(now);
    }
    assert_eq!(most, 2, "most sends in flight at once");
}

/// Surveillance of two images and two documents, and the keywords of two
/// topics: every kind of send, in few trials.
const FILES_AND_TEXTS: &str = r#"
[[experiment]]
kind = "surveillance"
items = { id = ["img-s01", "img-b01", "doc-s01", "doc-b01"] }
seed_chat = { from = "intl-a", to = "intl-b" }
test_chat = { from = "intl-a", to = "china-c" }
delay_s = 5

[[experiment]]
kind = "keyword"
keywords = "../corpus/keywords.csv"
items = { topic = ["june4", "weather"] }
"#;

#[tokio::test(start_paused = true)]
async fn failed_sends_are_retried_and_nothing_is_sent_twice() {
    let c = Campaign::new("1.0", LIMITS, FILES_AND_TEXTS);
    let mut cfg = sim_config(&c);
    // Failures before sending are retried; after, settled from the chats.
    cfg.fail_before = 0.3;
    cfg.fail_after = 0.1;
    cfg.seed = 11;
    let sim = SimPlatform::new(cfg);
    let s = run(&c, &sim, None, None).await.unwrap();
    assert_eq!(s.state, RunStatus::Complete);
    write_truth(&sim, &s.dir.join("truth.jsonl"));
    // One transmission per send, the outcome the platform's decision.
    let finals = check_final_against_truth(&s.dir, &s.dir.join("truth.jsonl"));
    let retried = finals.iter().filter(|r| r["attempt"] != "1").count();
    assert!(retried >= 2, "{retried} sends needed a second attempt");
    let records = journal::read(&s.dir).unwrap();
    let after_error = records
        .iter()
        .filter(|r| matches!(r, Record::Outcome { settled: Some(s), .. } if s == "after_error"))
        .count();
    assert!(
        after_error >= 1,
        "no send that failed after going out was settled from the chats"
    );
    for t in csv_maps(&s.dir.join("trials.csv")) {
        assert_ne!(t["verdict"], "inconclusive", "{t:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_send_the_sender_cannot_see_is_settled_never_sent_again() {
    let c = Campaign::new("1.0", LIMITS, FILES_AND_TEXTS);
    let mut cfg = sim_config(&c);
    // The probe reaches the platform, but its sender's own chat never
    // shows it (as a client that draws a picture beyond recognition).
    cfg.own_view_misses = 0.3;
    cfg.seed = 5;
    let sim = SimPlatform::new(cfg);
    let s = run(&c, &sim, None, None).await.unwrap();
    assert_eq!(s.state, RunStatus::Complete);
    write_truth(&sim, &s.dir.join("truth.jsonl"));
    let by_marker = truth_by_marker(&jsonl(&s.dir.join("truth.jsonl")));
    let markers = markers(&s.dir);
    let sends = csv_maps(&s.dir.join("sends.csv"));
    let plan = csv_maps(&s.dir.join("plan.csv"));
    let records = journal::read(&s.dir).unwrap();
    let (mut settled, mut unsettled) = (0, 0);
    for p in &plan {
        let id = &p["send_id"];
        let Some(ms) = markers.get(id) else { continue };
        // Each send the run made reached the platform once, in one attempt.
        let attempts: Vec<_> = sends.iter().filter(|r| &r["send_id"] == id).collect();
        assert_eq!(attempts.len(), 1, "{id} was tried {} times", attempts.len());
        let reached: usize = ms
            .iter()
            .map(|m| by_marker.get(m).map_or(0, Vec::len))
            .sum();
        assert_eq!(reached, 1, "{id} reached the platform {reached} times");
        let r = attempts[0];
        let settled_as = records.iter().find_map(|x| match x {
            Record::Outcome {
                send_id, settled, ..
            } if send_id == id => Some(settled.clone()),
            _ => None,
        });
        match settled_as.flatten().as_deref() {
            // Looked for in the receiver's chat and found there.
            Some("after_error") => {
                settled += 1;
                let truth = &by_marker[&ms[0]][0]["decision"];
                assert_eq!(truth.as_str().unwrap(), r["outcome"], "{r:?}");
            }
            // Found nowhere: the error stands, with its failure code.
            Some("unsettled") => {
                unsettled += 1;
                assert_eq!(r["outcome"], "error", "{r:?}");
                assert!(
                    ["upload_failed", "send_failed"].contains(&r["failure"].as_str()),
                    "{r:?}"
                );
            }
            _ => assert_ne!(r["outcome"], "error", "{r:?}"),
        }
    }
    assert!(
        settled >= 1 && unsettled >= 1,
        "{settled} settled, {unsettled} unsettled"
    );
}

#[tokio::test(start_paused = true)]
async fn a_run_whose_first_sends_all_fail_stops_as_failed() {
    let c = Campaign::new(
        "1.0",
        LIMITS,
        r#"
[[experiment]]
kind = "keyword"
keywords = "../corpus/keywords.csv"
items = { topic = ["june4", "weather", "food"] }
"#,
    );
    let mut cfg = sim_config(&c);
    // Every send fails: a profile step that cannot work on this client.
    cfg.fail_before = 1.0;
    let sim = SimPlatform::new(cfg);
    let s = run(&c, &sim, None, None).await.unwrap();
    assert_eq!(s.state, RunStatus::Failed);
    assert_eq!(
        s.stop_reason,
        chatprobe::dataset::manifest::StopReason::CannotMeasure
    );
    let why = s.why.unwrap();
    assert!(
        why.contains("the first 6 sends all failed (send_failed)"),
        "{why}"
    );
    assert!(why.contains("simulated failure before sending"), "{why}");
    assert!(
        s.trials_done < s.trials_planned,
        "{} of {}",
        s.trials_done,
        s.trials_planned
    );
    // run.json and the journal say so; nothing reached the platform.
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(s.dir.join("run.json")).unwrap()).unwrap();
    assert_eq!(
        (m["state"].as_str(), m["stop_reason"].as_str()),
        (Some("failed"), Some("cannot_measure"))
    );
    assert!(matches!(
        journal::read(&s.dir).unwrap().last(),
        Some(Record::Stop { .. })
    ));
    assert!(sim.truth().is_empty());
}

/// With retries, sends.csv holds a row per attempt: each send's last
/// attempt is no error, all its attempts together reached the platform
/// exactly once, and its outcome is the platform's decision. Returns the
/// last attempts.
fn check_final_against_truth(run: &Path, truth: &Path) -> Vec<HashMap<String, String>> {
    let by_marker = truth_by_marker(&jsonl(truth));
    let markers = markers(run);
    let mut last: HashMap<String, HashMap<String, String>> = HashMap::new();
    for r in csv_maps(&run.join("sends.csv")) {
        let n: u32 = r["attempt"].parse().unwrap();
        let newer = last
            .get(&r["send_id"])
            .is_none_or(|l| l["attempt"].parse::<u32>().unwrap() < n);
        if newer {
            last.insert(r["send_id"].clone(), r);
        }
    }
    for (id, r) in &last {
        assert_ne!(r["outcome"], "error", "{r:?}");
        let sent: Vec<_> = markers[id]
            .iter()
            .flat_map(|m| by_marker.get(m).into_iter().flatten())
            .collect();
        assert_eq!(
            sent.len(),
            1,
            "{id} reached the platform {} times",
            sent.len()
        );
        assert_eq!(sent[0]["decision"].as_str().unwrap(), r["outcome"], "{r:?}");
    }
    last.into_values().collect()
}

/// A spec small enough to crash at every journal position: two document
/// surveillance trials, two keywords, and a two-step threshold search.
fn small() -> Campaign {
    small_with(LIMITS)
}

/// [`small`] with other limits.
fn small_with(limits: &str) -> Campaign {
    let body = r#"
[[experiment]]
kind = "surveillance"
items = { id = ["doc-s01", "doc-b01"] }
seed_chat = { from = "intl-a", to = "intl-b" }
test_chat = { from = "intl-a", to = "china-c" }
delay_s = 5

[[experiment]]
kind = "keyword"
keywords = "../corpus/kw-small.csv"
"#
    .to_string()
        + &crop_search("img-s02", 2);
    let c = Campaign::new("1.0", limits, &body);
    std::fs::write(
        c.dir.path().join("corpus/kw-small.csv"),
        "keyword,lang,topic,source,label\n六四,zh-Hans,june4,test,sensitive\n今天天气,zh-Hans,weather,test,benign\n",
    )
    .unwrap();
    c
}

#[tokio::test(start_paused = true)]
async fn a_run_crashed_after_any_journal_record_resumes_to_the_same_verdicts() {
    let c = small();
    let whole = {
        let sim = SimPlatform::new(sim_config(&c));
        let s = run(&c, &sim, None, None).await.unwrap();
        assert_eq!(s.state, RunStatus::Complete);
        s.dir
    };
    let expected = verdicts(&whole);
    assert_eq!(expected.len(), 6, "{expected:?}");
    let records = journal::read(&whole).unwrap().len();
    assert!(records > 30, "{records} journal records");
    eprintln!("crashing after each of {records} journal positions");
    // Crash right after record k (the start is record 1; k = 0: before
    // it), then resume.
    for k in 0..records {
        let results = c.dir.path().join(format!("crash-{k}"));
        let sim = SimPlatform::new(sim_config(&c));
        let err = run_in(&c, &results, &sim, None, Some(k)).await.unwrap_err();
        assert!(
            err.chain().any(|e| e
                .downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .is_some_and(|inner| inner.is::<SimulatedCrash>())),
            "crash after {k}: {err:#}"
        );
        let dir = only_run(&results);
        assert_eq!(journal::read(&dir).unwrap().len(), k);
        let s = run_in(&c, &results, &sim, Some(&dir), None).await.unwrap();
        assert_eq!(s.state, RunStatus::Complete, "crash after {k}");
        assert_eq!(verdicts(&dir), expected, "crash after {k}");
        write_truth(&sim, &dir.join("truth.jsonl"));
        // Nothing sent twice, nothing the journal does not know of, every
        // outcome the platform's decision.
        check_against_truth(&dir, &dir.join("truth.jsonl"));
        let m = chatprobe::dataset::manifest::read_manifest(&dir).unwrap();
        assert_eq!(m.crashes, usize::from(k > 0), "crash after {k}");
    }
}

/// A journal damaged at any record of a run stopped halfway (a value
/// edited, a line torn, garbage) is refused on resume, naming the line and
/// `--repair`, with nothing written; `--repair` keeps the records before
/// the damage, settles every send after it by looking, and the run ends
/// with the verdicts of an undamaged one, nothing sent twice and nothing
/// sent that the journal does not know of. run.json says what was mended.
#[tokio::test(start_paused = true)]
async fn a_journal_damaged_at_any_record_is_refused_then_repaired_without_sending_twice() {
    let c = small();
    let expected = {
        let sim = SimPlatform::new(sim_config(&c));
        verdicts(&run(&c, &sim, None, None).await.unwrap().dir)
    };
    let records = {
        let sim = SimPlatform::new(sim_config(&c));
        let s = run_in(&c, &c.dir.path().join("whole"), &sim, None, None)
            .await
            .unwrap();
        journal::read(&s.dir).unwrap().len()
    };
    let k = records / 2;
    eprintln!("damaging each of the first {} of {k} records", k - 1);
    let mut restored = 0;
    for j in 0..k - 1 {
        let results = c.dir.path().join(format!("damaged-{j}"));
        let sim = SimPlatform::new(sim_config(&c));
        run_in(&c, &results, &sim, None, Some(k)).await.unwrap_err();
        let dir = only_run(&results);
        let path = dir.join(journal::JOURNAL_FILE);
        // sends.csv as the outputs write it after finished sends: a row
        // for every outcome the journal holds (a damaged outcome record
        // then has its row there, which a repair must accept).
        let mut rows = String::from("send_id,attempt\n");
        for r in journal::read(&dir).unwrap() {
            if let Record::Outcome {
                send_id, attempt, ..
            } = r
            {
                rows.push_str(&format!("{send_id},{attempt}\n"));
            }
        }
        std::fs::write(dir.join("sends.csv"), rows).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        let line = &mut lines[j];
        let how = match j % 3 {
            // A value edited in place: the first digit after the event.
            0 => {
                let at = line
                    .char_indices()
                    .skip(12)
                    .find(|(_, ch)| ch.is_ascii_digit())
                    .unwrap()
                    .0;
                let d = line.as_bytes()[at];
                line.replace_range(at..at + 1, if d == b'1' { "2" } else { "1" });
                "edited"
            }
            1 => {
                line.truncate(line.len() / 2);
                "torn"
            }
            _ => {
                *line = r#"{"event":"nope"}"#.to_string();
                "garbage"
            }
        };
        let damaged = lines.join("\n") + "\n";
        std::fs::write(&path, &damaged).unwrap();
        let err = run_in(&c, &results, &sim, Some(&dir), None)
            .await
            .unwrap_err();
        let msg = format!("{err:#}");
        assert!(
            msg.contains(&format!(":{}", j + 1)) && msg.contains("--repair"),
            "{how} record {}: {msg}",
            j + 1
        );
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            damaged,
            "{how}: written"
        );
        let s = repair_in(&results, &dir, &sim)
            .await
            .unwrap_or_else(|e| panic!("{how} record {}: {e:#}", j + 1));
        if s.state != RunStatus::Complete {
            eprintln!("{}", std::fs::read_to_string(&path).unwrap());
        }
        assert_eq!(
            s.state,
            RunStatus::Complete,
            "{how} record {}: {s:?}",
            j + 1
        );
        assert_eq!(verdicts(&dir), expected, "{how} record {}", j + 1);
        write_truth(&sim, &dir.join("truth.jsonl"));
        check_against_truth(&dir, &dir.join("truth.jsonl"));
        let m = chatprobe::dataset::manifest::read_manifest(&dir).unwrap();
        assert_eq!(m.repairs.len(), 1, "{how}");
        let r = &m.repairs[0];
        assert_eq!(r.journal_line, Some(j as u64 + 1), "{how}");
        assert_eq!(r.records_kept + r.records_dropped, k, "{how}: {r:?}");
        let copy = dir.join(r.damaged_copy.as_deref().unwrap());
        assert_eq!(std::fs::read_to_string(copy).unwrap(), damaged);
        restored += r.intents_restored.len();
    }
    eprintln!("{restored} intents restored over {} repairs", k - 1);
}

/// plan.csv is evidence too: missing, garbage or changed, a resume is
/// refused naming it (and the line), with nothing written; `--repair`
/// writes the plan again from the spec and the run ends with the verdicts
/// of an undamaged one. A journal written before records had checksums
/// still resumes.
#[tokio::test(start_paused = true)]
async fn a_missing_or_changed_plan_is_refused_then_repaired_and_old_journals_resume() {
    let c = small();
    let (expected, whole_plan) = {
        let sim = SimPlatform::new(sim_config(&c));
        let dir = run(&c, &sim, None, None).await.unwrap().dir;
        (verdicts(&dir), plan_rows(&dir))
    };
    let k = 12;
    for damage in ["missing", "garbage", "changed", "added", "no checksums"] {
        let results = c.dir.path().join(damage.replace(' ', "-"));
        let sim = SimPlatform::new(sim_config(&c));
        run_in(&c, &results, &sim, None, Some(k)).await.unwrap_err();
        let dir = only_run(&results);
        let plan = dir.join("plan.csv");
        let text = std::fs::read_to_string(&plan).unwrap();
        let journal_path = dir.join(journal::JOURNAL_FILE);
        let line = match damage {
            "missing" => {
                std::fs::remove_file(&plan).unwrap();
                None
            }
            "garbage" => {
                std::fs::write(&plan, "\u{0}\u{1}garbage\n").unwrap();
                Some(1)
            }
            "changed" => {
                std::fs::write(&plan, text.replacen("六四", "六五", 1)).unwrap();
                Some(1 + text.lines().position(|l| l.contains("六四")).unwrap())
            }
            "added" => {
                let last = text.lines().last().unwrap().replace("r1", "r9");
                std::fs::write(&plan, format!("{text}{last}\n")).unwrap();
                Some(text.lines().count() + 1)
            }
            _ => {
                // Strip every checksum, as an earlier chatprobe wrote it.
                let old: String = std::fs::read_to_string(&journal_path)
                    .unwrap()
                    .lines()
                    .map(|l| format!("{}}}\n", &l[..l.rfind(",\"sum\":").unwrap()]))
                    .collect();
                std::fs::write(&journal_path, old).unwrap();
                let s = run_in(&c, &results, &sim, Some(&dir), None).await.unwrap();
                assert_eq!(s.state, RunStatus::Complete, "{damage}");
                assert_eq!(verdicts(&dir), expected, "{damage}");
                write_truth(&sim, &dir.join("truth.jsonl"));
                check_against_truth(&dir, &dir.join("truth.jsonl"));
                continue;
            }
        };
        let before = std::fs::read(&plan).ok();
        let err = run_in(&c, &results, &sim, Some(&dir), None)
            .await
            .unwrap_err();
        let msg = format!("{err:#}");
        assert!(
            msg.contains("plan.csv") && msg.contains("--repair"),
            "{damage}: {msg}"
        );
        if let Some(l) = line {
            assert!(msg.contains(&format!("plan.csv:{l}")), "{damage}: {msg}");
        }
        assert_eq!(std::fs::read(&plan).ok(), before, "{damage}: written");
        let s = repair_in(&results, &dir, &sim).await.unwrap();
        assert_eq!(s.state, RunStatus::Complete, "{damage}");
        assert_eq!(verdicts(&dir), expected, "{damage}");
        assert_eq!(plan_rows(&dir), whole_plan, "{damage}");
        write_truth(&sim, &dir.join("truth.jsonl"));
        check_against_truth(&dir, &dir.join("truth.jsonl"));
        let m = chatprobe::dataset::manifest::read_manifest(&dir).unwrap();
        assert_eq!(m.repairs.len(), 1, "{damage}");
        assert!(m.repairs[0].plan_rewritten.is_some(), "{damage}");
        assert_eq!(m.repairs[0].journal_line, None, "{damage}");
    }
}

/// plan.csv's rows without their `order`, sorted.
fn plan_rows(run: &Path) -> Vec<String> {
    let mut rows: Vec<String> = std::fs::read_to_string(run.join("plan.csv"))
        .unwrap()
        .lines()
        .map(|l| l.split_once(',').unwrap().1.to_string())
        .collect();
    rows.sort();
    rows
}

/// Tables that cannot be trusted are refused, exit 2, naming the file:
/// `merge` of one run found twice with different data, `merge` of a
/// sends.csv without `trial_id`, a corpus manifest with a date that is no
/// date, a keyword list with an unknown label or a keyword of 10,000
/// characters, `analyze` of a run folder whose sends.csv is a folder.
#[tokio::test(start_paused = true)]
async fn tables_that_cannot_be_trusted_are_refused() {
    use crate::util::{chatprobe, s};
    let c = small();
    let sim = SimPlatform::new(sim_config(&c));
    let run = run(&c, &sim, None, None).await.unwrap().dir;
    let id = run.file_name().unwrap().to_owned();
    let copy = |to: &Path, edit: &dyn Fn(&Path)| {
        let dir = to.join(&id);
        std::fs::create_dir_all(&dir).unwrap();
        for e in std::fs::read_dir(&run).unwrap().flatten() {
            if e.path().is_file() {
                std::fs::copy(e.path(), dir.join(e.file_name())).unwrap();
            }
        }
        edit(&dir);
        to.to_path_buf()
    };
    let out = c.dir.path().join("merged");
    // The same run twice, one copy with a row less (taken before the end).
    let older = copy(&c.dir.path().join("older"), &|d| {
        let text = std::fs::read_to_string(d.join("sends.csv")).unwrap();
        let cut = text.trim_end().rfind('\n').unwrap() + 1;
        std::fs::write(d.join("sends.csv"), &text[..cut]).unwrap();
    });
    let r = chatprobe(&["merge", s(&c.results()), s(&older), "--out", s(&out)]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("twice with different data") && r.stderr.contains("sends.csv"),
        "{}",
        r.stderr
    );
    assert!(!out.exists());
    // The same copy, identical: merged once.
    let same = copy(&c.dir.path().join("same"), &|_| {});
    let r = chatprobe(&["merge", s(&c.results()), s(&same), "--out", s(&out)]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    std::fs::remove_dir_all(&out).unwrap();
    // A sends.csv without trial_id.
    let keyless = copy(&c.dir.path().join("keyless"), &|d| {
        let mut rd = csv::Reader::from_path(d.join("sends.csv")).unwrap();
        let head = rd.headers().unwrap().clone();
        let keep: Vec<usize> = (0..head.len())
            .filter(|i| &head[*i] != "trial_id")
            .collect();
        let mut w = csv::Writer::from_path(d.join("sends.new")).unwrap();
        w.write_record(keep.iter().map(|i| &head[*i])).unwrap();
        for r in rd.records() {
            let r = r.unwrap();
            w.write_record(keep.iter().map(|i| &r[*i])).unwrap();
        }
        w.flush().unwrap();
        std::fs::rename(d.join("sends.new"), d.join("sends.csv")).unwrap();
        let mut m: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(d.join("run.json")).unwrap()).unwrap();
        m["vantage"] = "elsewhere".into();
        std::fs::write(d.join("run.json"), m.to_string()).unwrap();
    });
    let r = chatprobe(&["merge", s(&c.results()), s(&keyless), "--out", s(&out)]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("sends.csv:1") && r.stderr.contains("trial_id"),
        "{}",
        r.stderr
    );
    assert!(!out.exists());
    // analyze of a run folder whose sends.csv is a folder.
    let odd = copy(&c.dir.path().join("odd"), &|d| {
        std::fs::remove_file(d.join("sends.csv")).unwrap();
        std::fs::create_dir(d.join("sends.csv")).unwrap();
    });
    let r = chatprobe(&["analyze", s(&odd.join(&id)), "--quiet"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("sends.csv") && r.stderr.contains("not a file"),
        "{}",
        r.stderr
    );
    // A corpus manifest whose date is no date; a keyword list with an
    // unknown label, or a keyword of 10,000 characters.
    let corpus = c.dir.path().join("corpus");
    let manifest = std::fs::read_to_string(corpus.join("manifest.csv")).unwrap();
    std::fs::write(
        corpus.join("manifest.csv"),
        manifest.replacen("2026-11-23", "2026-13-45", 1),
    )
    .unwrap();
    let r = chatprobe(&["corpus", "index", "--quiet", "--corpus", s(&corpus)]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("manifest.csv:2") && r.stderr.contains("date_added"),
        "{}",
        r.stderr
    );
    std::fs::write(corpus.join("manifest.csv"), &manifest).unwrap();
    let kw = corpus.join("kw-small.csv");
    let good = std::fs::read_to_string(&kw).unwrap();
    for (bad, key) in [
        (good.replacen(",sensitive", ",sensitve", 1), "label"),
        (good.replacen("六四", &"六".repeat(10_000), 1), "keyword"),
    ] {
        std::fs::write(&kw, bad).unwrap();
        let r = chatprobe(&["plan", s(&c.spec)]);
        assert_eq!(r.code, 2, "{key}: {}", r.stderr);
        assert!(
            r.stderr.contains("kw-small.csv:2") && r.stderr.contains(&format!("[{key}]")),
            "{}",
            r.stderr
        );
    }
}

/// A corpus file the plan sends, replaced after `corpus index`, is
/// refused (exit 2, nothing written) until the corpus is indexed again.
#[tokio::test(start_paused = true)]
async fn a_corpus_file_changed_after_indexing_is_refused_until_reindexed() {
    let c = small();
    let doc = c.dir.path().join("corpus/documents/doc-s01.txt");
    let text = std::fs::read_to_string(&doc).unwrap();
    std::fs::write(&doc, format!("{text}\nan added line\n")).unwrap();
    let sim = SimPlatform::new(sim_config(&c));
    let err = run(&c, &sim, None, None).await.unwrap_err();
    let msg = format!("{err:#}");
    assert!(
        msg.contains("doc-s01") && msg.contains("corpus index"),
        "{msg}"
    );
    assert!(!c.results().exists(), "a run folder was made");
    chatprobe_ok(&[
        "corpus",
        "index",
        "--quiet",
        "--corpus",
        crate::util::s(&c.dir.path().join("corpus")),
    ]);
    let s = run(&c, &sim, None, None).await.unwrap();
    assert_eq!(s.state, RunStatus::Complete);
}

/// A disk that fills mid-run: the run gives up the space it reserved
/// beside the journal, so the journal still ends with a stop record
/// (`error`), run.json says so, and the error says how to resume; once
/// there is space again, the resume ends with an undamaged run's verdicts,
/// nothing sent twice.
#[tokio::test(start_paused = true)]
async fn a_full_disk_stops_the_run_with_a_stop_record_and_the_resume_hint() {
    let c = small();
    let expected = {
        let sim = SimPlatform::new(sim_config(&c));
        verdicts(&run(&c, &sim, None, None).await.unwrap().dir)
    };
    let results = c.dir.path().join("full");
    let sim = SimPlatform::new(sim_config(&c));
    let opts = RunOptions {
        spec: Some(c.spec.clone()),
        results: results.clone(),
        quiet: true,
        disk_full_after: Some(9),
        ..RunOptions::default()
    };
    let err = run_on(&opts, &sim, "simulated", std::future::pending())
        .await
        .unwrap_err();
    let dir = only_run(&results);
    let msg = format!("{err:#}");
    assert!(
        msg.contains(&format!("chatprobe run --resume {}", dir.display()))
            && msg.contains("no storage space"),
        "{msg}"
    );
    let records = journal::read(&dir).unwrap();
    assert_eq!(records.len(), 10, "{records:?}");
    assert!(matches!(
        records.last(),
        Some(Record::Stop {
            reason: chatprobe::dataset::manifest::StopReason::Error,
            ..
        })
    ));
    let m = chatprobe::dataset::manifest::read_manifest(&dir).unwrap();
    assert_eq!(m.stop_reason.map(|r| r.as_str()), Some("error"));
    assert!(!dir.join(journal::RESERVE_FILE).exists());
    let s = run_in(&c, &results, &sim, Some(&dir), None).await.unwrap();
    assert_eq!(s.state, RunStatus::Complete);
    assert_eq!(verdicts(&dir), expected);
    write_truth(&sim, &dir.join("truth.jsonl"));
    check_against_truth(&dir, &dir.join("truth.jsonl"));
}

/// A platform outage mid-run (the simulated platform answers nothing from
/// 20 s to 200 s): the sends that meet it fail `platform_unreachable`,
/// wait for the platform to answer and are made again without spending
/// `retries` (this spec allows none), a probe handed over before it is
/// looked for once the platform is back, and the run ends complete with
/// the verdicts of a run without the outage, nothing sent twice.
#[tokio::test(start_paused = true)]
async fn a_platform_outage_is_waited_out_without_spending_retries() {
    let c = small_with(&LIMITS.replace("retries = 6", "retries = 0"));
    let expected = {
        let sim = SimPlatform::new(sim_config(&c));
        verdicts(&run(&c, &sim, None, None).await.unwrap().dir)
    };
    let mut cfg = sim_config(&c);
    cfg.outage = Some((
        std::time::Duration::from_secs(20),
        std::time::Duration::from_secs(200),
    ));
    let sim = SimPlatform::new(cfg);
    let results = c.dir.path().join("outage");
    let s = run_in(&c, &results, &sim, None, None).await.unwrap();
    assert_eq!(s.state, RunStatus::Complete, "{s:?}");
    assert_eq!(verdicts(&s.dir), expected);
    let rows = csv_maps(&s.dir.join("sends.csv"));
    let outages = rows
        .iter()
        .filter(|r| r["failure"] == "platform_unreachable")
        .count();
    assert!(outages >= 1, "no send met the outage");
    assert!(
        rows.iter()
            .all(|r| r["outcome"] != "error" || r["failure"] == "platform_unreachable"),
        "another error: {rows:?}"
    );
    write_truth(&sim, &s.dir.join("truth.jsonl"));
    check_final_against_truth(&s.dir, &s.dir.join("truth.jsonl"));
    eprintln!("{outages} tries met the outage");
}

/// The one run folder under `results`.
fn only_run(results: &Path) -> PathBuf {
    let dirs: Vec<PathBuf> = std::fs::read_dir(results)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    dirs[0].clone()
}

/// The keyword list's sensitive rows, as the simulated platform's rules
/// (the testbed's wechat-2020 policy censors the same list).
fn sensitive_keywords() -> Vec<String> {
    csv_maps(&root().join("corpus/keywords.csv"))
        .into_iter()
        .filter(|k| k["label"] == "sensitive")
        .map(|k| k["keyword"].clone())
        .collect()
}

/// Texts for isolate: one per multi-part row of the keyword list (its
/// parts spread through benign words), and three written by hand.
fn isolate_texts() -> String {
    let mut csv = String::from("id,text,label,topic\n");
    for (i, k) in csv_maps(&root().join("corpus/keywords.csv"))
        .iter()
        .filter(|k| k["keyword"].contains('+'))
        .enumerate()
    {
        let fillers = ["我们今天说起", "然后又谈到", "后来还有", "最后"];
        let mut text = String::new();
        for (f, p) in fillers.iter().zip(k["keyword"].split('+')) {
            text.push_str(f);
            text.push_str(p);
        }
        text.push_str("，就这样。");
        csv.push_str(&format!("row{i},{text},{},{}\n", k["label"], k["topic"]));
    }
    csv.push_str("benign,今天天气很好，我们先去西湖散步，再吃火锅。,benign,food\n");
    csv.push_str("nested,一九八九年的八九六四，人们在广场点起烛光纪念。,sensitive,june4\n");
    csv.push_str("three,李文亮医生是一位吹哨人，刘晓波获得了诺贝尔和平奖。,sensitive,mixed\n");
    csv
}

/// isolate, without and with a dictionary, beside a keyword experiment on
/// the same list.
fn isolate_campaign() -> Campaign {
    let body = r#"
[[experiment]]
kind = "isolate"
name = "plain"
texts = "texts.csv"

[[experiment]]
kind = "isolate"
name = "known"
texts = "texts.csv"
dictionary = "../corpus/keywords.csv"

[[experiment]]
kind = "keyword"
name = "list"
keywords = "../corpus/keywords.csv"
combinations = 3
"#;
    let c = Campaign::new("1.0", LIMITS, body);
    std::fs::write(c.dir.path().join("probes/texts.csv"), isolate_texts()).unwrap();
    c
}

#[tokio::test(start_paused = true)]
async fn isolate_finds_every_combination_and_agrees_with_the_keyword_table() {
    let c = isolate_campaign();
    let mut cfg = SimConfig::for_accounts(&Spec::load(&c.spec).unwrap().accounts);
    cfg.keywords = sensitive_keywords();
    let sim = SimPlatform::new(cfg.clone());
    let s = run(&c, &sim, None, None).await.unwrap();
    assert_eq!(s.state, RunStatus::Complete, "{s:?}");
    write_truth(&sim, &s.dir.join("truth.jsonl"));
    let sends = check_against_truth(&s.dir, &s.dir.join("truth.jsonl"));
    chatprobe_ok(&["analyze", crate::util::s(&s.dir)]);
    crate::data::check_package(&s.dir);
    crate::data::check_package(&s.dir.join("analysis"));

    // What each experiment found in each text: (combinations, sends).
    let rows = csv_maps(&s.dir.join("isolations.csv"));
    let mut found: HashMap<(String, String), (Vec<String>, u32)> = HashMap::new();
    for r in &rows {
        assert_eq!(r["incomplete"], "", "{r:?}");
        let e = found
            .entry((r["experiment_name"].clone(), r["text_id"].clone()))
            .or_default();
        e.1 = r["sends"].parse().unwrap();
        if !r["combination"].is_empty() {
            assert_eq!(r["verified"], "TRUE", "{r:?}");
            assert_eq!(r["text_blocked"], "TRUE", "{r:?}");
            // Positions point at the parts in the text.
            e.0.push(r["combination"].clone());
        }
        // Known before only with the dictionary.
        if r["experiment_name"] == "plain" {
            assert_ne!(r["known"], "TRUE", "{r:?}");
        }
    }
    let texts = csv_maps(&c.dir.path().join("probes/texts.csv"));
    assert_eq!(found.len(), 2 * texts.len(), "{found:?}");
    // The analysis folder gathers the table, and the report shows it.
    assert_eq!(csv_maps(&s.dir.join("analysis/isolations.csv")), rows);
    let report = std::fs::read_to_string(s.dir.join("analysis/report.html")).unwrap();
    assert!(report.contains("Isolated keyword combinations"));

    // By hand: nested keywords give the shortest; three rules, three finds.
    let got = |x: &str, t: &str| {
        let mut v = found[&(x.to_string(), t.to_string())].0.clone();
        v.sort();
        v
    };
    for x in ["plain", "known"] {
        assert!(got(x, "benign").is_empty());
        assert_eq!(got(x, "nested"), ["六四"]);
        assert_eq!(got(x, "three"), ["刘晓波", "李文亮", "诺贝尔和平奖"]);
    }

    // The keyword table's minimal triggers among each row's parts are what
    // isolate finds in the text made of them.
    let table = csv_maps(&s.dir.join("analysis/keywords.csv"));
    let minimal: Vec<Vec<&str>> = table
        .iter()
        .filter(|k| k["minimal_trigger"] == "TRUE")
        .map(|k| k["keyword"].split('+').collect())
        .collect();
    for t in texts.iter().filter(|t| t["id"].starts_with("row")) {
        let source = csv_maps(&root().join("corpus/keywords.csv"))
            .into_iter()
            .filter(|k| k["keyword"].contains('+'))
            .nth(t["id"][3..].parse().unwrap())
            .unwrap();
        let parts: Vec<&str> = source["keyword"].split('+').collect();
        let mut expected: Vec<String> = minimal
            .iter()
            .filter(|m| m.iter().all(|p| parts.contains(p)))
            .map(|m| m.join("+"))
            .collect();
        expected.sort();
        for x in ["plain", "known"] {
            assert_eq!(got(x, &t["id"]), expected, "{x}: {}", source["keyword"]);
        }
    }

    // A dictionary that knows the rules saves sends: per text never more,
    // and fewer in all.
    let total = |x: &str| -> u32 {
        found
            .iter()
            .filter(|(k, _)| k.0 == x)
            .map(|(_, v)| v.1)
            .sum()
    };
    for t in &texts {
        let (p, k) = (
            found[&("plain".to_string(), t["id"].clone())].1,
            found[&("known".to_string(), t["id"].clone())].1,
        );
        assert!(
            k <= p,
            "{}: {k} sends with the dictionary, {p} without",
            t["id"]
        );
    }
    assert!(
        total("known") * 2 < total("plain"),
        "{} vs {}",
        total("known"),
        total("plain")
    );
    // A message is sent once an experiment: no two conclusive isolate
    // trials of one experiment carry the same words (a verification or a
    // known trigger common to several texts took the first one's answer).
    let words: HashMap<String, String> = csv_maps(&s.dir.join("plan.csv"))
        .into_iter()
        .map(|r| (r["trial_id"].clone(), r["text"].clone()))
        .collect();
    let mut once = std::collections::HashSet::new();
    for t in csv_maps(&s.dir.join("trials.csv")) {
        if t["experiment"] == "isolate" && t["verdict"] != "inconclusive" {
            let key = (t["experiment_name"].clone(), words[&t["trial_id"]].clone());
            assert!(once.insert(key.clone()), "sent twice: {key:?}");
        }
    }
    // Every send of the design is in sends.csv, a test per trial.
    let isolate_sends = sends
        .iter()
        .filter(|r| r["experiment"] == "isolate")
        .count() as u32;
    assert_eq!(isolate_sends, total("plain") + total("known"));
    eprintln!(
        "isolate: {} sends without a dictionary, {} with",
        total("plain"),
        total("known")
    );

    // A crash half way through resumes into the same isolations.
    let records = journal::read(&s.dir).unwrap().len();
    let results = c.dir.path().join("crashed");
    let sim = SimPlatform::new(cfg);
    run_in(&c, &results, &sim, None, Some(records / 2))
        .await
        .unwrap_err();
    let dir = only_run(&results);
    let r = run_in(&c, &results, &sim, Some(&dir), None).await.unwrap();
    assert_eq!(r.state, RunStatus::Complete);
    let strip = |rows: Vec<HashMap<String, String>>| -> Vec<Vec<String>> {
        rows.into_iter()
            .map(|r| {
                let mut v: Vec<String> = r
                    .into_iter()
                    .filter(|(k, _)| k != "run_id")
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                v.sort();
                v
            })
            .collect()
    };
    assert_eq!(strip(csv_maps(&dir.join("isolations.csv"))), strip(rows));
}

/// Validation against a known truth: a platform on which only the June 4th
/// and Falun Gong items are sensitive. Surveillance of every item, four
/// replicates: the topic table singles out exactly those two topics (for
/// images and for documents) and no other.
#[tokio::test(start_paused = true)]
async fn the_topic_table_singles_out_exactly_the_sensitive_topics() {
    let body = r#"
[[experiment]]
kind = "surveillance"
name = "all"
items = { label = ["sensitive", "benign"] }
replicates = 4
delay_s = 5
seed_chat = { from = "intl-a", to = "intl-b" }
test_chat = { from = "intl-a", to = "china-c" }
"#;
    let c = Campaign::new("1.0", LIMITS, body);
    let mut cfg = SimConfig::for_accounts(&Spec::load(&c.spec).unwrap().accounts);
    let manifest = csv_maps(&c.dir.path().join("corpus/manifest.csv"));
    let sensitive_topics = ["june4", "falun-gong"];
    cfg.sensitive_names = manifest
        .iter()
        .filter(|m| sensitive_topics.contains(&m["topic"].as_str()) && m["label"] == "sensitive")
        .map(|m| m["id"].clone())
        .collect();
    assert_eq!(cfg.sensitive_names.len(), 6);
    let sim = SimPlatform::new(cfg);
    let s = run(&c, &sim, None, None).await.unwrap();
    assert_eq!(s.state, RunStatus::Complete, "{s:?}");
    chatprobe_ok(&["analyze", crate::util::s(&s.dir)]);
    let topics = csv_maps(&s.dir.join("analysis/surveillance_topics.csv"));
    assert_eq!(topics.len(), 30, "every topic of each kind and label");
    let mut surveilled: Vec<(String, String)> = topics
        .iter()
        .filter(|r| r["surveilled"] != "0")
        .map(|r| (r["content_kind"].clone(), r["topic"].clone()))
        .collect();
    surveilled.sort();
    assert_eq!(
        surveilled,
        [
            ("document", "falun-gong"),
            ("document", "june4"),
            ("image", "falun-gong"),
            ("image", "june4")
        ]
        .map(|(k, t)| (k.to_string(), t.to_string())),
        "{topics:#?}"
    );
    // Between items, the unit: june4's three images (all surveilled)
    // against twelve benign ones (none) is the most extreme of 455 splits,
    // p = 2/455; a topic of one item can do no better than 2/13 (images)
    // or 2/7 (documents). Over the 14 sensitive rows, Holm leaves none
    // significant: four replicates of one item are one item.
    let june4 = topics
        .iter()
        .find(|r| r["content_kind"] == "image" && r["topic"] == "june4")
        .unwrap();
    assert_eq!(june4["test"], "permutation, item rates");
    assert!((june4["p"].parse::<f64>().unwrap() - 2.0 / 455.0).abs() < 1e-12);
    assert!(topics
        .iter()
        .filter_map(|r| r["p_holm"].parse::<f64>().ok())
        .all(|p| p >= 0.05));
    // Per item: the sensitive topics' items surveilled in all 4 replicates,
    // every other item in none.
    for r in csv_maps(&s.dir.join("analysis/surveillance_items.csv")) {
        let expected =
            if r["label"] == "sensitive" && sensitive_topics.contains(&r["topic"].as_str()) {
                "4"
            } else {
                "0"
            };
        assert_eq!(
            (r["n"].as_str(), r["surveilled"].as_str()),
            ("4", expected),
            "{r:?}"
        );
    }
    // By format: each sensitive format's surveilled trials are 4 for each
    // planted item of that format, and no benign format has any.
    let mut planted: std::collections::BTreeMap<String, u64> = Default::default();
    for m in manifest.iter().filter(|m| cfg_has(&sensitive_topics, m)) {
        let ext = m["path"].rsplit('.').next().unwrap().to_string();
        *planted.entry(ext).or_default() += 4;
    }
    let formats = csv_maps(&s.dir.join("analysis/surveillance_formats.csv"));
    let got: std::collections::BTreeMap<String, u64> = formats
        .iter()
        .filter(|r| r["surveilled"] != "0")
        .map(|r| {
            assert_eq!(r["label"], "sensitive", "{r:?}");
            (r["format"].clone(), r["surveilled"].parse().unwrap())
        })
        .collect();
    assert_eq!(got, planted);
    // The content model: 24 surveilled trials of 36 items are too little
    // for its terms (10 of each per term), so it is not fitted and
    // one sentence says why; the forest plot has the topics alone.
    let model = csv_maps(&s.dir.join("analysis/surveillance_model.csv"));
    assert_eq!(model.len(), 1, "{model:#?}");
    assert_eq!(model[0]["term"], "(model)");
    assert!(
        model[0]["note"].contains("24 trials of the rarer outcome and 36 items"),
        "{model:#?}"
    );
    let html = std::fs::read_to_string(s.dir.join("analysis/report.html")).unwrap();
    assert!(html.contains("<h2>What triggered surveillance</h2>"));
    assert!(html.contains("not fitted, too little information for "));
    let forest = std::fs::read_to_string(s.dir.join("analysis/surveillance_effects.svg")).unwrap();
    for t in ["june4 (images)", "falun-gong (documents)"] {
        assert!(forest.contains(t), "{t} in the forest plot");
    }
    assert!(!forest.contains("model: "));
    // No odds ratio where neither group had a surveilled trial: the benign
    // topics' rows say so and draw nothing.
    for r in topics.iter().filter(|r| r["label"] == "benign") {
        assert_eq!(r["or_adj"], "", "{r:?}");
        assert_eq!(r["or_note"], "not estimable: no event in either group");
    }
    let grid = std::fs::read_to_string(s.dir.join("analysis/surveillance_items.svg")).unwrap();
    assert!(grid.contains("img-s01") && grid.contains("doc-b06"));
    // Its legend, under the cells, in the SVG itself.
    for words in ["surveilled", "not surveilled", "filtered in real time"] {
        assert!(
            grid.contains(&format!("\n{words}\n</text>")),
            "legend: {words}"
        );
    }
    legend_fits(&grid, "no trial");
}

/// The legend's last entry, `last`, ends inside the plot's width: its
/// text starts at the SVG's x and takes about 7 px a character.
fn legend_fits(svg: &str, last: &str) {
    let end = svg.find(&format!("\n{last}\n</text>")).expect(last);
    let tag = &svg[svg[..end].rfind("<text").unwrap()..end];
    let x: i32 = tag.split('"').nth(1).unwrap().parse().unwrap();
    let width: i32 = svg.split('"').nth(1).unwrap().parse().unwrap();
    assert!(
        x + 7 * last.chars().count() as i32 <= width,
        "the legend runs past the plot ({x} px + {last:?} > {width} px)"
    );
}

/// Whether manifest row `m` is a sensitive item of one of `topics`.
fn cfg_has(topics: &[&str], m: &std::collections::HashMap<String, String>) -> bool {
    topics.contains(&m["topic"].as_str()) && m["label"] == "sensitive"
}

/// `changes` between two runs of one spec on a platform whose rules changed
/// in between (a keyword dropped, one added, images no longer inspected):
/// exactly the planted changes, per keyword, per combination isolated in a
/// text and per item, the surveillance rate's fall with its exact test,
/// and nothing invented (the keyword rate, equal before and after, has no
/// row). The report shows them first.
#[tokio::test(start_paused = true)]
async fn changes_between_two_runs_are_exactly_the_rules_changed_in_between() {
    let body = r#"
[[experiment]]
kind = "keyword"
name = "list"
keywords = "kw.csv"
replicates = 2

[[experiment]]
kind = "isolate"
name = "texts"
texts = "texts.csv"

[[experiment]]
kind = "surveillance"
items = { kind = ["image"] }
seed_chat = { from = "intl-a", to = "intl-b" }
test_chat = { from = "intl-a", to = "china-c" }
delay_s = 5
"#;
    let c = Campaign::new("1.0", LIMITS, body);
    let probes = c.dir.path().join("probes");
    let mut kw = String::from("keyword,lang,topic,source,label\n");
    for (k, label) in [
        ("六四", "sensitive"),
        ("天安门", "sensitive"),
        ("刘晓波", "sensitive"),
        ("火锅", "benign"),
    ] {
        kw.push_str(&format!("{k},zh-Hans,t,test,{label}\n"));
    }
    std::fs::write(probes.join("kw.csv"), kw).unwrap();
    std::fs::write(
        probes.join("texts.csv"),
        "id,text,label,topic\nt1,今天我们在天安门前说起刘晓波，然后去吃火锅。,sensitive,mixed\n",
    )
    .unwrap();
    let spec = Spec::load(&c.spec).unwrap();
    let mut before = SimConfig::for_accounts(&spec.accounts);
    before.keywords = vec!["六四".into(), "天安门".into()];
    before.sensitive_names = vec!["img-s".into()];
    let mut after = before.clone();
    after.keywords = vec!["六四".into(), "刘晓波".into()];
    after.sensitive_names = Vec::new();
    let a = run(&c, &SimPlatform::new(before), None, None)
        .await
        .unwrap();
    let b = run(&c, &SimPlatform::new(after), None, None).await.unwrap();
    assert_eq!(b.state, RunStatus::Complete, "{b:?}");
    assert_eq!(
        chatprobe::analysis::changes::previous_run(&b.dir).as_deref(),
        Some(a.dir.as_path())
    );
    assert_eq!(chatprobe::analysis::changes::previous_run(&a.dir), None);

    let out = chatprobe_ok(&["changes", crate::util::s(&a.dir), crate::util::s(&b.dir)]);
    assert!(!out.stderr.contains("started before"), "{}", out.stderr);
    // Given the other way round, the changes read backwards: it says so.
    let back = chatprobe_ok(&[
        "changes",
        crate::util::s(&b.dir),
        crate::util::s(&a.dir),
        "--out",
        crate::util::s(&c.dir.path().join("back.csv")),
    ]);
    assert!(
        back.stderr
            .contains(&format!("{} started before {}", a.run_id, b.run_id)),
        "{}",
        back.stderr
    );
    let rows = csv_maps(&b.dir.join("changes.csv"));
    let mut got: Vec<(String, String, String, String)> = rows
        .iter()
        .filter(|r| r["experiment"] != "surveillance")
        .map(|r| {
            (
                r["experiment"].clone(),
                r["item_id"].clone(),
                r["parameter"].clone(),
                r["change"].clone(),
            )
        })
        .collect();
    got.sort();
    let row = |e: &str, i: &str, p: &str, ch: &str| (e.into(), i.into(), p.into(), ch.into());
    let mut want = vec![
        row("isolate", "t1", "刘晓波", "newly_blocked"),
        row("isolate", "t1", "天安门", "newly_delivered"),
    ];
    for r in rows.iter().filter(|r| r["experiment"] == "keyword") {
        want.push(row("keyword", &r["item_id"], &r["parameter"], &r["change"]));
    }
    want.sort();
    assert_eq!(got, want, "{rows:#?}");
    let keyword = |p: &str| {
        rows.iter()
            .find(|r| r["experiment"] == "keyword" && r["parameter"] == p)
            .unwrap_or_else(|| panic!("{p}: {rows:#?}"))
    };
    let k = keyword("刘晓波");
    assert_eq!(
        (
            k["change"].as_str(),
            k["a_positive"].as_str(),
            k["a_n"].as_str()
        ),
        ("newly_blocked", "0", "2")
    );
    assert_eq!((k["b_positive"].as_str(), k["b_n"].as_str()), ("2", "2"));
    assert_eq!(keyword("天安门")["change"], "newly_delivered");
    assert_eq!(
        rows.iter().filter(|r| r["experiment"] == "keyword").count(),
        2
    );

    // Surveillance: every sensitive image, and the rate's fall.
    let mut items: Vec<&str> = rows
        .iter()
        .filter(|r| r["experiment"] == "surveillance" && r["change"] != "rate_down")
        .map(|r| {
            assert_eq!(r["change"], "newly_not_surveilled", "{r:?}");
            r["item_id"].as_str()
        })
        .collect();
    items.sort();
    let sensitive: Vec<String> = (1..=12).map(|i| format!("img-s{i:02}")).collect();
    assert_eq!(items, sensitive);
    let fall: Vec<_> = rows.iter().filter(|r| r["change"] == "rate_down").collect();
    assert_eq!(fall.len(), 1, "{rows:#?}");
    assert_eq!(fall[0]["experiment"], "surveillance");
    assert_eq!(
        (
            fall[0]["a_positive"].as_str(),
            fall[0]["b_positive"].as_str()
        ),
        ("12", "0")
    );
    let p: f64 = fall[0]["p"].parse().unwrap();
    assert!(p < 0.001, "{p}");
    assert!(!rows.iter().any(|r| r["change"] == "rate_up"));

    // One line on the terminal, counting the rows.
    let a_id = a.dir.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        out.stdout.starts_with(&format!(
            "changes since {a_id}: 2 newly blocked, 2 newly delivered, 12 newly not surveilled, 1 rate down ("
        )),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains(", 0 in one only)"), "{}", out.stdout);

    // The report opens with them; the analysis package describes them.
    chatprobe_ok(&["analyze", crate::util::s(&b.dir)]);
    let report = std::fs::read_to_string(b.dir.join("analysis/report.html")).unwrap();
    let changed = report
        .find("What changed since the previous run")
        .expect("section");
    assert!(changed < report.find("What this run shows").unwrap());
    assert!(report[changed..].contains("刘晓波"));
    assert_eq!(csv_maps(&b.dir.join("analysis/changes.csv")), rows);
    crate::data::check_package(&b.dir.join("analysis"));

    // Both runs analysed together: the timeline holds every probe in each
    // run, and its heat map exactly the probes that changed.
    let both = c.dir.path().join("both");
    chatprobe_ok(&[
        "analyze",
        crate::util::s(&a.dir),
        crate::util::s(&b.dir),
        "--out",
        crate::util::s(&both),
    ]);
    let timeline = csv_maps(&both.join("timeline.csv"));
    let state = |run: &Path, name: &str, item: &str, param: &str| -> String {
        let id = run.file_name().unwrap().to_string_lossy();
        timeline
            .iter()
            .find(|r| {
                r["run_id"] == id
                    && r["experiment_name"] == name
                    && r["item_id"] == item
                    && r["parameter"] == param
            })
            .unwrap_or_else(|| panic!("{name} {item} {param}"))["state"]
            .clone()
    };
    let kw_item = keyword("刘晓波")["item_id"].clone();
    assert_eq!(state(&a.dir, "list", &kw_item, "刘晓波"), "delivered");
    assert_eq!(state(&b.dir, "list", &kw_item, "刘晓波"), "blocked");
    assert_eq!(state(&a.dir, "list", &kw_item, "六四"), "blocked");
    assert_eq!(state(&b.dir, "list", &kw_item, "六四"), "blocked");
    let s01 = rows
        .iter()
        .find(|r| r["experiment"] == "surveillance" && r["item_id"] == "img-s01")
        .unwrap();
    let (sname, sparam) = (s01["experiment_name"].as_str(), s01["parameter"].as_str());
    assert_eq!(state(&a.dir, sname, "img-s01", sparam), "surveilled");
    assert_eq!(state(&b.dir, sname, "img-s01", sparam), "not_surveilled");
    assert!(!timeline.iter().any(|r| r["experiment"] == "isolate"));
    let keys: std::collections::HashSet<_> = timeline
        .iter()
        .map(|r| (&r["experiment_name"], &r["item_id"], &r["parameter"]))
        .collect();
    assert_eq!(timeline.len(), 2 * keys.len(), "every probe in both runs");
    let report = std::fs::read_to_string(both.join("report.html")).unwrap();
    assert!(
        report.contains(&format!(
            "{} probes over 2 runs: 14 changed state,",
            keys.len()
        )),
        "{report}"
    );
    let svg = std::fs::read_to_string(both.join("timeline.svg")).unwrap();
    let s12 = format!("{sname}: {} img-s12", sparam);
    for label in ["list: 刘晓波", "list: 天安门", s12.trim()] {
        assert!(svg.contains(label), "{label}");
    }
    assert!(!svg.contains("list: 六四"));
    // A legend says what the colours are; this timeline mixes designs.
    for words in [
        "first verdict (blocked …)",
        "its opposite",
        "not in that run",
    ] {
        assert!(
            svg.contains(&format!("\n{words}\n</text>")),
            "legend: {words}"
        );
    }
    legend_fits(&svg, "not in that run");
    crate::data::check_package(&both);

    // A run against itself: nothing changed. Not a run folder: exit 2.
    let same = c.dir.path().join("same.csv");
    let o = chatprobe_ok(&[
        "changes",
        crate::util::s(&a.dir),
        crate::util::s(&a.dir),
        "--out",
        crate::util::s(&same),
    ]);
    assert!(o.stdout.contains("nothing changed"), "{}", o.stdout);
    assert!(csv_maps(&same).is_empty());
    let bad = crate::util::chatprobe(&["changes", crate::util::s(&a.dir), crate::util::s(&probes)]);
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    assert!(bad.stderr.contains("trials.csv"), "{}", bad.stderr);

    // The spec edited between runs: compared all the same, and said so.
    assert!(!out.stdout.contains("spec changed"), "{}", out.stdout);
    let text = std::fs::read_to_string(&c.spec).unwrap();
    std::fs::write(&c.spec, text.replace("replicates = 2", "replicates = 3")).unwrap();
    let sim = SimPlatform::new(SimConfig::for_accounts(&spec.accounts));
    let d = run(&c, &sim, None, None).await.unwrap();
    let o = chatprobe_ok(&[
        "changes",
        crate::util::s(&b.dir),
        crate::util::s(&d.dir),
        "--out",
        crate::util::s(&c.dir.path().join("edited.csv")),
    ]);
    assert!(
        o.stdout
            .trim_end()
            .ends_with("; the spec changed in between (spec_sha256 differs)"),
        "{}",
        o.stdout
    );
}

/// The daily send budget per account. A spec whose day does not fit is
/// refused before anything is made, naming the key and the trials it would
/// drop (`run` exits 2; `plan` says the same). A spec that fits at the
/// start but grows past it (an adaptive design's follow-ups) leaves out
/// the trials the budget cannot carry, and no account sends more than it.
#[tokio::test(start_paused = true)]
async fn the_daily_send_budget_refuses_a_day_that_does_not_fit_and_is_never_exceeded() {
    let body = r#"
[[experiment]]
kind = "keyword"
name = "list"
keywords = "kw.csv"
replicates = 3
test_chat = { from = "intl-a", to = "china-c" }
"#;
    let limits = |budget: u32| format!("{LIMITS}\ndaily_sends_per_account = {budget}");
    // 4 keywords × 3 replicates = 12 sends, each with its sentinel: 24
    // messages from intl-a; 20 allowed.
    let c = Campaign::new("1.0", &limits(20), body);
    let probes = c.dir.path().join("probes");
    let mut kw = String::from("keyword,lang,topic,source,label\n");
    for k in ["六四", "天安门", "刘晓波", "火锅"] {
        kw.push_str(&format!("{k},zh-Hans,t,test,sensitive\n"));
    }
    std::fs::write(probes.join("kw.csv"), kw).unwrap();
    let spec = Spec::load(&c.spec).unwrap();
    let sim = SimPlatform::new(SimConfig::for_accounts(&spec.accounts));
    let e = run(&c, &sim, None, None).await.unwrap_err();
    let msg = format!("{e:#}");
    assert!(
        msg.contains("spec.toml:") && msg.contains(" [limits.daily_sends_per_account]: "),
        "{msg}"
    );
    assert!(
        msg.contains("intl-a: 24 messages planned, 20 a day allowed: 2 trials would not fit"),
        "{msg}"
    );
    assert_eq!(msg.matches("would drop list/").count(), 2, "{msg}");
    assert_eq!(chatprobe::cmd::exit_code(&e), 2);
    assert!(!c.results().exists() || std::fs::read_dir(c.results()).unwrap().next().is_none());
    // `plan` shows the plan and why, and exits 2 as `run` does.
    let p = crate::util::chatprobe(&["plan", crate::util::s(&c.spec)]);
    assert_eq!(p.code, 2, "{}", p.stderr);
    assert!(!p.stdout.is_empty(), "the plan is still shown");
    assert!(
        p.stderr.contains("daily budget: does not fit")
            && p.stderr.contains("[limits.daily_sends_per_account]"),
        "{}",
        p.stderr
    );
    assert_eq!(
        p.stderr.matches("would drop list/").count(),
        2,
        "{}",
        p.stderr
    );

    // An isolation whose first test fits, and whose search does not.
    let body = r#"
[[experiment]]
kind = "isolate"
name = "texts"
texts = "texts.csv"
test_chat = { from = "intl-a", to = "china-c" }
"#;
    let c = Campaign::new("1.0", &limits(12), body);
    std::fs::write(
        c.dir.path().join("probes/texts.csv"),
        "id,text,label,topic\nt1,今天我们在天安门前说起刘晓波，然后去吃火锅。,sensitive,mixed\n",
    )
    .unwrap();
    let spec = Spec::load(&c.spec).unwrap();
    let mut cfg = SimConfig::for_accounts(&spec.accounts);
    cfg.keywords = vec!["刘晓波".into()];
    let p = chatprobe_ok(&["plan", crate::util::s(&c.spec)]);
    assert!(
        p.stderr.contains("daily budget: fits (2 of 12"),
        "{}",
        p.stderr
    );
    let s = run(&c, &SimPlatform::new(cfg), None, None).await.unwrap();
    assert_eq!(s.state, RunStatus::Complete, "{s:?}");
    let sends = csv_maps(&s.dir.join("sends.csv"));
    let by_a = sends.iter().filter(|r| r["sender"] == "intl-a").count();
    assert_eq!(by_a * 2, 12, "6 sends and their sentinels: {sends:#?}");
    let abandoned: Vec<String> = journal::read(&s.dir)
        .unwrap()
        .into_iter()
        .filter_map(|r| match r {
            Record::Abandon { reason, .. } => Some(reason),
            _ => None,
        })
        .collect();
    assert!(!abandoned.is_empty());
    assert!(
        abandoned[0].starts_with("daily budget: intl-a has sent 12 of 12 messages"),
        "{abandoned:?}"
    );
    let iso = csv_maps(&s.dir.join("isolations.csv"));
    assert!(iso.iter().all(|r| !r["incomplete"].is_empty()), "{iso:#?}");
}

/// The findings of a run with known truth: a latency drawn from a planted
/// distribution (80 % of seeds inspected, uniformly 5–35 s after the seed:
/// median 20 s among the inspected), transform trials whose prime was
/// delivered (a benign image: nothing to evade), and benign topics where
/// nothing is surveilled. No inconclusive trial counts as evasion, no
/// estimate comes from a table without events, and the latency interval
/// covers the planted median and never goes below 0.
#[tokio::test(start_paused = true)]
async fn planted_inconclusive_trials_empty_tables_and_latency_are_reported_as_they_are() {
    let body = r#"
[[experiment]]
kind = "latency"
name = "latency"
items = { id = ["img-s01"] }
offsets_s = [5, 10, 15, 25, 30, 60]
replicates = 25
seed_chat = { from = "intl-a", to = "intl-b" }
test_chat = { from = "intl-a", to = "china-c" }

[[experiment]]
kind = "transform"
name = "transforms"
items = { id = ["img-s02", "img-b01"] }
transforms = ["mirror", "crop:0.1"]
delay_s = 60
replicates = 2
seed_chat = { from = "intl-c", to = "intl-b" }
test_chat = { from = "intl-c", to = "china-d" }

[[experiment]]
kind = "surveillance"
name = "topics"
items = { id = ["img-s03", "img-s04", "img-b01", "img-b02", "img-b03", "img-b04"] }
delay_s = 60
seed_chat = { from = "intl-b", to = "intl-a" }
test_chat = { from = "intl-b", to = "china-c" }

[[published]]
experiment = "topics"
label = "sensitive"
k = 49
n = 60
what = "sensitive images censored after seeding"
source = "Citizen Lab, We Chat, They Watch (2020)"

[[published]]
experiment = "latency"
measure = "verdict:surveilled"
k = 3
n = 4
what = "a made-up share"
source = "this test"
"#;
    let c = Campaign::new("1.0", LIMITS, body);
    let mut cfg = sim_config(&c);
    cfg.inspect_probability = 0.8;
    cfg.inspect_delay = std::time::Duration::from_secs(5);
    cfg.inspect_delay_to = Some(std::time::Duration::from_secs(35));
    let sim = SimPlatform::new(cfg);
    let s = run(&c, &sim, None, None).await.unwrap();
    assert_eq!(s.state, RunStatus::Complete, "{s:?}");
    chatprobe_ok(&["analyze", crate::util::s(&s.dir)]);
    let a = s.dir.join("analysis");
    let trials = csv_maps(&s.dir.join("trials.csv"));

    // Transforms: the benign image's prime was delivered, so its 4 trials
    // are inconclusive, never evasions; the sensitive image's were primed.
    let inconclusive = trials
        .iter()
        .filter(|t| t["experiment"] == "transform" && t["verdict"] == "inconclusive")
        .count();
    assert!(inconclusive >= 4, "{inconclusive}");
    let tr = csv_maps(&a.join("transforms.csv"));
    let (n, evaded, inc): (u64, u64, u64) = tr.iter().fold((0, 0, 0), |acc, r| {
        (
            acc.0 + r["n"].parse::<u64>().unwrap(),
            acc.1 + r["evaded"].parse::<u64>().unwrap(),
            acc.2 + r["inconclusive"].parse::<u64>().unwrap(),
        )
    });
    let conclusive = trials
        .iter()
        .filter(|t| t["experiment"] == "transform" && t["verdict"] != "inconclusive")
        .count() as u64;
    assert_eq!((n, inc), (conclusive, inconclusive as u64), "{tr:?}");
    assert!(evaded <= n && n <= 4, "only img-s02's trials: {tr:?}");

    // Topics: nothing benign was surveilled, so no benign topic has an odds
    // ratio, and the sentence of the benign rows is a specificity control's.
    let topics = csv_maps(&a.join("surveillance_topics.csv"));
    for r in topics.iter().filter(|r| r["label"] == "benign") {
        assert_eq!(r["surveilled"], "0", "{r:?}");
        assert_eq!((r["or_adj"].as_str(), r["or_ci_low"].as_str()), ("", ""));
        assert!(r["or_note"].starts_with("not estimable"), "{r:?}");
    }
    let surv = csv_maps(&a.join("surveillance.csv"));
    let benign = surv.iter().find(|r| r["label"] == "benign").unwrap();
    assert_eq!(benign["p_holm"], "");

    // Latency: the interval covers the planted median (20 s among the
    // inspected) and the share inspected (0.8); nothing below 0.
    let med = csv_maps(&a.join("latency_median.csv"));
    let m = &med[0];
    let num = |k: &str| m[k].parse::<f64>().unwrap();
    assert!(num("ci_low") >= 0.0 && num("median_low_s") >= 0.0, "{m:?}");
    assert!(num("ci_low") <= 20.0 && 20.0 <= num("ci_high"), "{m:?}");
    assert!(num("median_low_s") < num("median_s"), "{m:?}");
    assert!(
        num("inspected_ci_low") <= 0.8 && 0.8 <= num("inspected_ci_high"),
        "{m:?}"
    );
    assert_eq!(num("n") as u64 + num("inconclusive") as u64, 150);

    // Beside the published figures: the run's own counts, from its trials.
    assert!(s.dir.join("published.csv").is_file());
    let rep = csv_maps(&a.join("replication.csv"));
    assert_eq!(rep.len(), 2, "{rep:?}");
    let count = |x: &str, f: &dyn Fn(&std::collections::HashMap<String, String>) -> bool| {
        trials
            .iter()
            .filter(|t| t["experiment_name"] == x && f(t))
            .count()
            .to_string()
    };
    let topics_row = rep
        .iter()
        .find(|r| r["experiment_name"] == "topics")
        .unwrap();
    assert_eq!(
        (topics_row["k"].clone(), topics_row["n"].clone()),
        (
            count("topics", &|t| t["label"] == "sensitive"
                && t["seeded_outcome"] == "blocked"),
            count("topics", &|t| t["label"] == "sensitive"
                && ["blocked", "delivered"]
                    .contains(&t["seeded_outcome"].as_str())),
        )
    );
    assert_eq!(topics_row["published_rate"], (49.0 / 60.0f64).to_string());
    let lat = rep
        .iter()
        .find(|r| r["experiment_name"] == "latency")
        .unwrap();
    assert_eq!(
        (lat["k"].clone(), lat["n"].clone()),
        (
            count("latency", &|t| t["verdict"] == "surveilled"),
            count("latency", &|t| t["verdict"] != "inconclusive"),
        )
    );
    let html = std::fs::read_to_string(a.join("report.html")).unwrap();
    let first = html.find("<h2>").map(|i| &html[i..i + 40]).unwrap();
    assert!(
        html.contains("<h2>Beside the published study</h2>")
            && html.contains("published 49 of 60 (82%"),
        "{first}"
    );
}

/// `--every` on the simulated platform, in virtual time: three runs, each
/// started one period after the one before (not sooner, and not a period
/// late), each complete, and in each no account sent two probes closer
/// than the rate limit allows (20 a minute: 3 s). The claim the browser
/// test `run::rate_limit_holds_and_every_starts_one_run_per_period` made
/// in real seconds (now in `make soak`).
#[tokio::test(start_paused = true)]
async fn every_starts_one_run_a_period_each_within_the_rate_limit() {
    use chatprobe::run::On;
    let c = small_with(
        "sends_per_minute = 20\nparallel_pairs = 2\ndeliver_timeout_s = 8\nafter_sentinel_s = 0.5\njitter = 0.1\nmax_runtime_s = 864000",
    );
    let sim = SimPlatform::new(sim_config(&c));
    let opts = RunOptions {
        spec: Some(c.spec.clone()),
        results: c.results(),
        quiet: true,
        ..RunOptions::default()
    };
    let period = std::time::Duration::from_secs(6 * 3600);
    let on = On {
        platform: &sim,
        kind: "simulated",
    };
    let runs = chatprobe::campaign::run_every(&opts, period, Some(3), &on, std::future::pending())
        .await
        .unwrap();
    assert_eq!(runs.len(), 3);
    let mut starts = Vec::new();
    for r in &runs {
        assert_eq!(r.state, RunStatus::Complete, "{:?}", r.dir);
        let m: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(r.dir.join("run.json")).unwrap())
                .unwrap();
        starts.push(
            m["started_at"]
                .as_str()
                .unwrap()
                .parse::<DateTime<Utc>>()
                .unwrap(),
        );
    }
    for w in starts.windows(2) {
        let gap = (w[1] - w[0]).num_milliseconds() as f64 / 1000.0;
        assert!(
            (period.as_secs_f64() - 1.0..=period.as_secs_f64() + 1.0).contains(&gap),
            "runs {gap} s apart, the period is {} s",
            period.as_secs()
        );
    }
    // Per sender, every probe (a sentinel is not one) at least 3 s after
    // the one before, across all three runs.
    let mut by_sender: HashMap<String, Vec<tokio::time::Instant>> = HashMap::new();
    let mut seen = std::collections::HashSet::new();
    for d in sim.truth() {
        if d.marker.starts_with("chatprobe sentinel")
            || !seen.insert((d.sender.clone(), d.marker.clone(), d.at))
        {
            continue;
        }
        by_sender.entry(d.sender.clone()).or_default().push(d.at);
    }
    let mut probes = 0;
    for (sender, mut at) in by_sender {
        at.sort();
        probes += at.len();
        for w in at.windows(2) {
            let gap = w[1] - w[0];
            assert!(
                gap >= std::time::Duration::from_millis(2_999),
                "{sender} sent two probes {gap:?} apart, the limit is 3 s"
            );
        }
    }
    assert!(probes >= 3 * 8, "{probes} probes in three runs");
}

/// Every file of a run folder and its analysis has the mode any new file
/// gets under the user's umask (0644 under 022): a collaborator or a web
/// server can read the dataset. sends.csv, trials.csv, run.json, plan.csv,
/// items.csv and datapackage.json were 0600.
#[tokio::test(start_paused = true)]
async fn a_run_folder_is_readable_as_any_new_file_is() {
    use std::os::unix::fs::PermissionsExt;
    let c = small();
    let sim = SimPlatform::new(sim_config(&c));
    let run = run(&c, &sim, None, None).await.unwrap().dir;
    chatprobe_ok(&["analyze", run.to_str().unwrap(), "--quiet"]);
    let plain = c.dir.path().join("plain");
    std::fs::write(&plain, "x").unwrap();
    let want = std::fs::metadata(&plain).unwrap().permissions().mode() & 0o777;
    let mut checked = Vec::new();
    let mut dirs = vec![run.clone()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
                continue;
            }
            let mode = e.metadata().unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, want, "{p:?} is {mode:o}, a new file {want:o}");
            checked.push(p.file_name().unwrap().to_string_lossy().into_owned());
        }
    }
    for f in [
        "sends.csv",
        "trials.csv",
        "run.json",
        "plan.csv",
        "items.csv",
        "datapackage.json",
        "journal.jsonl",
    ] {
        assert!(checked.iter().any(|c| c == f), "{f} not in {checked:?}");
    }
}
