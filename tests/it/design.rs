//! Experiment designs as units: static plans stay byte for byte what they
//! were, and an adaptive design (`threshold`) is grown from verdicts the
//! same way live and on replay, and runs end to end on the testbed.

use chatprobe::dataset::Verdict;
use std::collections::{HashMap, HashSet};

use chatprobe::probe::{Plan, Spec};

use crate::run::{check_against_truth, Campaign};
use crate::util::{chatprobe, chatprobe_ok, csv_maps, root, s, wait_until};

#[test]
fn static_plans_are_byte_for_byte_the_golden_plan() {
    let body = std::fs::read_to_string(root().join("tests/golden/designs.toml")).unwrap();
    let c = Campaign::new("1.0", "", &body);
    let plan = chatprobe_ok(&["plan", s(&c.spec)]).stdout;
    let golden = std::fs::read_to_string(root().join("tests/golden/designs-plan.csv")).unwrap();
    assert_eq!(plan, golden);
}

pub const THRESHOLD: &str = r#"
[[experiment]]
kind = "threshold"
name = "crop"
items = { id = ["img-s01", "img-s02"] }
transform = "crop"
blocked_at = 0
evaded_at = 0.5
steps = 4
delay_s = 1
seed_chat = { from = "intl-a", to = "intl-b" }
test_chat = { from = "intl-a", to = "china-c" }
"#;

/// The crop fraction a trial tests.
fn crop(t: &chatprobe::probe::plan::Trial) -> f64 {
    t.parameter.strip_prefix("crop:").unwrap().parse().unwrap()
}

#[test]
fn threshold_bisects_on_verdicts_and_a_replay_asks_for_the_same_trials() {
    let c = Campaign::new("1.0", "", THRESHOLD);
    let spec = Spec::load(&c.spec).unwrap();
    // A filter that blocks crops under 0.3 for img-s01 and under 0.1 for img-s02.
    let cut = |t: &chatprobe::probe::plan::Trial| {
        if t.item_id() == "img-s01" {
            0.3
        } else {
            0.1
        }
    };
    let judge = |t: &chatprobe::probe::plan::Trial| -> Verdict {
        if crop(t) < cut(t) {
            Verdict::Blocked
        } else {
            Verdict::Evaded
        }
    };
    // Live: trials finish one at a time, newest first.
    let mut live = Plan::build(&spec);
    assert_eq!(live.trials.len(), 2, "the first step of each search");
    assert!(live.trials.iter().all(|t| crop(t) == 0.25));
    let mut done: HashSet<String> = HashSet::new();
    while let Some(t) = live
        .trials
        .iter()
        .rev()
        .find(|t| !done.contains(&t.trial_id))
    {
        done.insert(t.trial_id.clone());
        live.grow(|_, t| done.contains(&t.trial_id).then(|| judge(t)));
    }
    let path = |p: &Plan, item: &str| -> Vec<f64> {
        p.trials
            .iter()
            .filter(|t| t.item_id() == item)
            .map(crop)
            .collect()
    };
    assert_eq!(path(&live, "img-s01"), [0.25, 0.375, 0.3125, 0.28125]);
    assert_eq!(path(&live, "img-s02"), [0.25, 0.125, 0.0625, 0.09375]);
    // Replay: every verdict known at once asks for the same trials.
    let mut replay = Plan::build(&spec);
    replay.grow(|_, t| done.contains(&t.trial_id).then(|| judge(t)));
    let ids = |p: &Plan| -> Vec<(String, String)> {
        let mut v: Vec<_> = p
            .trials
            .iter()
            .map(|t| (t.trial_id.clone(), t.parameter.clone()))
            .collect();
        v.sort();
        v
    };
    assert_eq!(ids(&live), ids(&replay));
    // An inconclusive step is tried again at the same value.
    let mut again = Plan::build(&spec);
    again.grow(|_, t| (t.trial_id.ends_with("/s1/r1")).then_some(Verdict::Inconclusive));
    let s2: Vec<f64> = again
        .trials
        .iter()
        .filter(|t| t.trial_id.contains("/s2/"))
        .map(crop)
        .collect();
    assert_eq!(s2, [0.25, 0.25]);
}

#[test]
fn designs_lists_every_design_with_its_keys() {
    let out = chatprobe_ok(&["designs"]).stdout;
    for d in chatprobe::probe::design::DESIGNS {
        assert!(
            out.contains(&format!("{}\n    {}", d.name, d.about)),
            "{out}"
        );
        assert!(out.contains(&d.keys.join(", ")), "{out}");
        assert!(
            out.contains(&format!(
                "verdicts: {}, inconclusive",
                d.verdicts
                    .iter()
                    .map(|v| v.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            "{out}"
        );
    }
}

#[test]
fn the_isolate_example_plans_its_first_tests_and_bad_keys_are_named() {
    // The example's experiment, in a campaign with an indexed corpus.
    let body: String = std::fs::read_to_string(root().join("probes/isolate.toml"))
        .unwrap()
        .split("[[experiment]]")
        .skip(1)
        .map(|e| format!("[[experiment]]{e}"))
        .collect();
    let c = Campaign::new("1.0", "", &body);
    let texts = std::fs::read_to_string(root().join("probes/isolate-texts.txt")).unwrap();
    std::fs::write(c.dir.path().join("probes/isolate-texts.txt"), &texts).unwrap();
    let r = chatprobe_ok(&["plan", s(&c.spec)]);
    assert!(
        r.stderr.contains("adaptive: `texts` (isolate)"),
        "{}",
        r.stderr
    );
    // One whole-text test a text.
    let rows: Vec<&str> = r.stdout.lines().skip(1).collect();
    assert_eq!(rows.len(), texts.lines().count(), "{}", r.stdout);
    assert!(rows.iter().all(|l| l.contains(",whole 0-")), "{}", r.stdout);
    let text = std::fs::read_to_string(&c.spec).unwrap();
    for (from, to, key) in [
        (
            "separator = \" | \"",
            "separator = \"  \"",
            "[experiment[0].separator]",
        ),
        ("budget = 300", "budget = 1", "[experiment[0].budget]"),
        ("retries = 3", "retries = 0", "[experiment[0].retries]"),
        (
            "texts = \"isolate-texts.txt\"",
            "texts = \"isolate-texts.txt\"\nitems = { kind = [\"document\"] }",
            "[experiment[0].items]",
        ),
        (
            "texts = \"isolate-texts.txt\"",
            "texts = \"nowhere.txt\"",
            "nowhere.txt",
        ),
        (
            "texts = \"isolate-texts.txt\"",
            "items = { kind = [\"image\"] }",
            "[experiment[0].items]",
        ),
    ] {
        std::fs::write(&c.spec, text.replace(from, to)).unwrap();
        let r = chatprobe(&["plan", s(&c.spec)]);
        assert_eq!(r.code, 2, "{to}: {}", r.stderr);
        assert!(r.stderr.contains(key), "{to}: {}", r.stderr);
    }
    // Corpus documents as texts: their extracted text (a PDF's too), one
    // test each.
    std::fs::write(
        &c.spec,
        text.replace(
            "texts = \"isolate-texts.txt\"",
            "items = { kind = [\"document\"], label = [\"sensitive\"] }",
        ),
    )
    .unwrap();
    let r = chatprobe_ok(&["plan", s(&c.spec)]);
    let docs: Vec<&str> = r.stdout.lines().skip(1).collect();
    assert_eq!(docs.len(), 6, "{}", r.stdout);
    assert!(
        docs.iter()
            .any(|l| l.contains("texts/doc-s03/q1/r1") && l.contains("法轮功")),
        "{}",
        r.stdout
    );
}

#[test]
fn adaptive_specs_are_planned_as_first_steps_and_bad_keys_are_named() {
    let c = Campaign::new("1.0", "", THRESHOLD);
    let r = chatprobe_ok(&["plan", s(&c.spec)]);
    assert!(
        r.stderr.contains("adaptive: `crop` (threshold)"),
        "{}",
        r.stderr
    );
    assert_eq!(r.stdout.lines().count(), 1 + 2 * 3);
    let text = std::fs::read_to_string(&c.spec).unwrap();
    for (from, to, key) in [
        (
            "transform = \"crop\"",
            "transform = \"mirror\"",
            "[experiment[0].blocked_at]",
        ),
        ("steps = 4", "steps = 99", "[experiment[0].steps]"),
        (
            "evaded_at = 0.5",
            "evaded_at = 0",
            "[experiment[0].evaded_at]",
        ),
        (
            "steps = 4",
            "steps = 4\nprime = true",
            "[experiment[0].prime]",
        ),
        (
            "kind = \"threshold\"",
            "kind = \"thresold\"",
            "[experiment[0].kind]",
        ),
    ] {
        std::fs::write(&c.spec, text.replace(from, to)).unwrap();
        let r = chatprobe(&["plan", s(&c.spec)]);
        assert_eq!(r.code, 2, "{to}: {}", r.stderr);
        assert!(r.stderr.contains(key), "{to}: {}", r.stderr);
    }
    // A published figure must name an experiment of the spec, a measure
    // its design has, and a count: each error names its key and line.
    let figure = "\n[[published]]\nexperiment = \"crop\"\nmeasure = \"verdict:blocked\"\nk = 3\nn = 4\nwhat = \"w\"\nsource = \"s\"\n";
    std::fs::write(&c.spec, format!("{text}{figure}")).unwrap();
    chatprobe_ok(&["plan", s(&c.spec)]);
    let line = text.lines().count() + 3;
    for (from, to, key) in [
        (
            "experiment = \"crop\"",
            "experiment = \"crops\"",
            "[published[0].experiment]",
        ),
        (
            "verdict:blocked",
            "verdict:surveilled",
            "[published[0].measure]",
        ),
        ("verdict:blocked", "blocked", "[published[0].measure]"),
        ("k = 3", "k = 5", "[published[0].k]"),
    ] {
        std::fs::write(&c.spec, format!("{text}{}", figure.replace(from, to))).unwrap();
        let r = chatprobe(&["plan", s(&c.spec)]);
        assert_eq!(r.code, 2, "{to}: {}", r.stderr);
        assert!(r.stderr.contains(key), "{to}: {}", r.stderr);
        if key.ends_with("experiment]") {
            assert!(r.stderr.contains(&format!(":{line} {key}")), "{}", r.stderr);
        }
    }
}

/// A campaign whose testbed's visual filter matches by pHash: crops far
/// enough from the reference image evade it.
fn threshold_campaign(limits: &str) -> Campaign {
    Campaign::with_policy(
        "0.05",
        &[
            ("visual = false", "visual = true"),
            ("match = \"shape\"", "match = \"phash\""),
        ],
        &format!("sends_per_minute = 120\nparallel_pairs = 2\ndeliver_timeout_s = 8\nafter_sentinel_s = 0.6\n{limits}"),
        &THRESHOLD.replace("steps = 4", "steps = 3"),
    )
}

#[test]
fn threshold_runs_end_to_end_each_step_following_the_last_verdict() {
    let c = threshold_campaign("");
    let r = chatprobe_ok(&["run", s(&c.spec), "--results", s(&c.results()), "--quiet"]);
    assert!(r.stdout.contains("complete"), "{}", r.stdout);
    check_searches(&c.run_dir());
}

#[ignore = "make soak; make test: scheduler::a_run_crashed_after_any_journal_record_resumes_to_the_same_verdicts"]
#[test]
fn a_stopped_threshold_run_resumes_into_the_same_searches() {
    // SIGTERM once a second step has been asked for; the resume starts
    // from the first steps and asks the design again from the journal.
    let c = threshold_campaign("");
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_chatprobe"))
        .args(["run", s(&c.spec), "--results", s(&c.results()), "--quiet"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let plan_rows = || {
        std::fs::read_dir(c.results())
            .ok()
            .and_then(|mut d| d.next())
            .and_then(|e| std::fs::read_to_string(e.unwrap().path().join("plan.csv")).ok())
            .map_or(0, |p| p.lines().count().saturating_sub(1))
    };
    wait_until("plan.csv asking for a second step", || plan_rows() > 6);
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = c.run_dir();
    assert!(csv_maps(&run.join("trials.csv")).len() < 6);
    let r = chatprobe_ok(&["run", "--quiet", "--resume", s(&run)]);
    assert!(r.stdout.contains("complete"), "{}", r.stdout);
    check_searches(&run);
}

/// Two searches of three steps: every send reached the platform once with
/// the platform's outcome, plan.csv grew to hold them, and each step tried
/// the midpoint the previous verdicts left.
fn check_searches(run: &std::path::Path) {
    // Every send the platform got, and its outcome, as the platform decided.
    let sends = check_against_truth(run, &run.join("truth.jsonl"));
    assert_eq!(sends.len(), 2 * 3 * 3, "two searches of three steps");
    // The run's plan.csv grew to hold every step.
    let plan = csv_maps(&run.join("plan.csv"));
    assert_eq!(plan.len(), sends.len());
    // Each step tried the midpoint the previous verdicts left.
    let trials = csv_maps(&run.join("trials.csv"));
    let mut by_item: HashMap<&str, Vec<(&str, f64, &str)>> = HashMap::new();
    for t in &trials {
        let crop: f64 = t["parameter"]
            .strip_prefix("crop:")
            .unwrap()
            .parse()
            .unwrap();
        by_item.entry(t["item_id"].as_str()).or_default().push((
            t["trial_id"].as_str(),
            crop,
            t["verdict"].as_str(),
        ));
    }
    assert_eq!(by_item.len(), 2);
    // The search moved both ways (crops of 0.0625 stay within the pHash
    // threshold, crops of 0.25 do not).
    for v in ["blocked", "evaded"] {
        assert!(trials.iter().any(|t| t["verdict"] == v), "no {v} step");
    }
    // The design's own table, from `chatprobe analyze`: each search's
    // nearest blocked and evading steps and the threshold between them.
    chatprobe_ok(&["analyze", s(run)]);
    let searches: HashMap<String, HashMap<String, String>> =
        csv_maps(&run.join("analysis/threshold_search.csv"))
            .into_iter()
            .map(|r| (r["item_id"].clone(), r))
            .collect();
    assert_eq!(searches.len(), 2, "{searches:?}");
    let report = std::fs::read_to_string(run.join("analysis/report.html")).unwrap();
    assert!(report.contains("Threshold searches"));
    for (item, mut steps) in by_item {
        steps.sort_by_key(|s| s.0.to_string());
        let (mut lo, mut hi) = (0.0f64, 0.5f64);
        let (mut blocked, mut evaded) = (None, None);
        for (id, crop, verdict) in &steps {
            assert_eq!(*crop, (lo + hi) / 2.0, "{item}: {id}");
            match *verdict {
                "blocked" => (lo, blocked) = (*crop, Some(*crop)),
                "evaded" => (hi, evaded) = (*crop, Some(*crop)),
                other => assert_eq!(other, "inconclusive"),
            }
        }
        assert_eq!(steps.len(), 3, "{item}: {steps:?}");
        let row = &searches[item];
        let cell = |x: Option<f64>| x.map(|v| v.to_string()).unwrap_or_default();
        assert_eq!(row["blocked_nearest"], cell(blocked), "{row:?}");
        assert_eq!(row["evaded_nearest"], cell(evaded), "{row:?}");
        let mid = blocked.zip(evaded).map(|(b, e)| (b + e) / 2.0);
        assert_eq!(row["threshold"], cell(mid), "{row:?}");
        assert_eq!(row["consistent"], "TRUE");
        assert_eq!(row["steps"], "3");
    }
}

/// isolate through Chromium on the testbed (the shipped wechat-2020
/// policy): texts built from the policy's keywords in benign words.
#[test]
fn isolate_runs_through_the_browser_and_agrees_with_the_policy() {
    let body = r#"
[[experiment]]
kind = "isolate"
texts = "texts.txt"
test_chat = { from = "intl-a", to = "china-c" }
"#;
    let c = Campaign::new(
        "1.0",
        "sends_per_minute = 120\nparallel_pairs = 1\ndeliver_timeout_s = 8\nafter_sentinel_s = 0.6",
        body,
    );
    // A combination in two parts; a keyword inside a longer one beside a
    // part of a combination it already triggers alone; nothing.
    let texts = [
        (
            "line1",
            "听说习近平也喜欢看动画片，特别是小熊维尼和他的朋友们。",
            vec!["习近平+小熊维尼"],
        ),
        (
            "line2",
            "一九八九年的八九六四，人们在广场点起烛光纪念。",
            vec!["六四"],
        ),
        (
            "line3",
            "今天天气很好，我们先去西湖散步，再吃火锅。",
            vec![],
        ),
    ];
    let file: Vec<&str> = texts.iter().map(|t| t.1).collect();
    std::fs::write(c.dir.path().join("probes/texts.txt"), file.join("\n")).unwrap();
    let r = chatprobe_ok(&["run", s(&c.spec), "--results", s(&c.results()), "--quiet"]);
    assert!(r.stdout.contains("complete"), "{}", r.stdout);
    let run = c.run_dir();
    // Every send reached the testbed once, with the testbed's outcome.
    let sends = check_against_truth(&run, &run.join("truth.jsonl"));
    let rows = csv_maps(&run.join("isolations.csv"));
    // The policy's rules, as the testbed censors them.
    let policy = std::fs::read_to_string(c.policy()).unwrap();
    let rules: toml::Value = toml::from_str(&policy).unwrap();
    let rules: Vec<&str> = rules["filter"]["text_keywords"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap())
        .collect();
    let mut total = 0;
    for (id, text, expected) in &texts {
        let mine: Vec<&HashMap<String, String>> =
            rows.iter().filter(|r| r["text_id"] == *id).collect();
        let found: Vec<&str> = mine
            .iter()
            .map(|r| r["combination"].as_str())
            .filter(|c| !c.is_empty())
            .collect();
        assert_eq!(&found, expected, "{id}: {mine:?}");
        for r in &mine {
            assert_eq!(r["incomplete"], "", "{r:?}");
            assert_eq!(
                r["text_blocked"],
                chatprobe::dataset::bool_cell(!expected.is_empty())
            );
            if r["combination"].is_empty() {
                continue;
            }
            assert!(rules.contains(&r["combination"].as_str()), "{r:?}");
            assert_eq!(r["verified"], "TRUE", "{r:?}");
            // The positions point at the parts in the text.
            let chars: Vec<char> = text.chars().collect();
            let at: Vec<String> = r["positions"]
                .split('+')
                .map(|p| {
                    let (a, b) = p.split_once('-').unwrap();
                    chars[a.parse::<usize>().unwrap()..b.parse::<usize>().unwrap()]
                        .iter()
                        .collect()
                })
                .collect();
            assert_eq!(at.join("+"), r["combination"]);
        }
        total += mine[0]["sends"].parse::<usize>().unwrap();
    }
    // One test send a trial, each counted in the text's sends.
    let tests = sends.iter().filter(|r| r["role"] == "test").count();
    assert_eq!(tests, total);
}
