//! The run stage end to end: probe spec → plan → `chatprobe run` through
//! real headless Chromium against the real testbed, checked against the
//! testbed's ground truth; kill -9 and `--resume`; rate limits; plans;
//! bad specs.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::{chatprobe, chatprobe_ok, csv_maps, root, s};

/// A campaign folder: accounts, profile, a sped-up wechat-2020 policy, the
/// corpus (indexed) and a spec written from `body`.
pub struct Campaign {
    pub dir: tempfile::TempDir,
    pub spec: PathBuf,
}

impl Campaign {
    pub fn new(time_scale: &str, limits: &str, body: &str) -> Campaign {
        Campaign::with_policy(time_scale, &[], limits, body)
    }

    /// With more edits of the shipped wechat-2020 policy.
    pub fn with_policy(
        time_scale: &str,
        edits: &[(&str, &str)],
        limits: &str,
        body: &str,
    ) -> Campaign {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let (_keep, corpus) = crate::util::starter_corpus();
        copy_tree(&corpus, &d.join("corpus"));
        chatprobe_ok(&[
            "corpus",
            "index",
            "--quiet",
            "--corpus",
            s(&d.join("corpus")),
        ]);
        std::fs::create_dir_all(d.join("probes/policies")).unwrap();
        std::fs::copy(
            root().join("probes/accounts.testbed.toml"),
            d.join("probes/accounts.testbed.toml"),
        )
        .unwrap();
        std::fs::create_dir_all(d.join("probes/profiles")).unwrap();
        for p in [
            "testbed.toml",
            "testbed-noids.toml",
            "testbed-thumbnails.toml",
            "testbed-appium.toml",
        ] {
            std::fs::copy(
                root().join("probes/profiles").join(p),
                d.join("probes/profiles").join(p),
            )
            .unwrap();
        }
        let scale = format!("time_scale = {time_scale}");
        let mut all = vec![("time_scale = 1.0", scale.as_str())];
        all.extend_from_slice(edits);
        crate::testbed::shipped_wechat_policy(&d.join("probes/policies"), &all);
        let spec = d.join("probes/spec.toml");
        std::fs::write(
            &spec,
            format!(
                "name = \"t\"\nseed = 7\naccounts = \"accounts.testbed.toml\"\nprofile = \"profiles/testbed.toml\"\ncorpus = \"../corpus\"\n\n[testbed]\npolicy = \"policies/policy.toml\"\n\n[limits]\n{limits}\n\n{body}"
            ),
        )
        .unwrap();
        Campaign { dir, spec }
    }

    pub fn results(&self) -> PathBuf {
        self.dir.path().join("results")
    }

    /// A simulated platform for `run --platform sim:FILE` (no browser):
    /// the starter corpus's sensitive files and two keywords censored,
    /// 50 ms latency, inspections 0.5 s after a send.
    pub fn sim_file(&self) -> PathBuf {
        let p = self.dir.path().join("probes/sim.toml");
        std::fs::write(
            &p,
            "keywords = [\"六四\", \"天安门\"]\nsensitive_names = [\"img-s\", \"doc-s\"]\nlatency_ms = 50\ninspect_delay_ms = 500\n",
        )
        .unwrap();
        p
    }

    pub fn policy(&self) -> PathBuf {
        self.dir.path().join("probes/policies/policy.toml")
    }

    /// The only run folder.
    pub fn run_dir(&self) -> PathBuf {
        let dirs: Vec<PathBuf> = std::fs::read_dir(self.results())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_dir())
            .collect();
        assert_eq!(dirs.len(), 1, "{dirs:?}");
        dirs[0].clone()
    }
}

fn copy_tree(src: &Path, dst: &Path) {
    for e in walkdir::WalkDir::new(src) {
        let e = e.unwrap();
        let rel = e.path().strip_prefix(src).unwrap();
        let to = dst.join(rel);
        if e.file_type().is_dir() {
            std::fs::create_dir_all(&to).unwrap();
        } else {
            std::fs::copy(e.path(), &to).unwrap();
        }
    }
}

/// A JSON-lines file's records. A last line still being written (no
/// newline yet) is left out, so a running process's file can be read.
pub fn jsonl(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    let whole = match text.rfind('\n') {
        Some(i) => &text[..=i],
        None => "",
    };
    whole
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Ground-truth transmissions that are not sentinels, by their marker (file
/// name or text).
pub fn truth_by_marker(truth: &[Value]) -> HashMap<String, Vec<Value>> {
    let mut m: HashMap<String, Vec<Value>> = HashMap::new();
    for t in truth.iter().filter(|t| t["event"] == "transmission") {
        let marker = t["filename"]
            .as_str()
            .or(t["text"].as_str())
            .unwrap()
            .to_string();
        if marker.starts_with("chatprobe sentinel") {
            continue;
        }
        m.entry(marker).or_default().push(t.clone());
    }
    m
}

/// The marker each attempt used, from the journal: send_id → markers.
pub fn markers(run: &Path) -> HashMap<String, Vec<String>> {
    let journal = jsonl(&run.join("journal.jsonl"));
    let files: HashMap<(String, String), String> = journal
        .iter()
        .filter(|r| r["event"] == "file")
        .map(|r| {
            (
                (
                    r["trial_id"].as_str().unwrap().to_string(),
                    r["key"].as_str().unwrap().to_string(),
                ),
                r["path"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    for r in journal.iter().filter(|r| r["event"] == "intent") {
        let marker = match r["text"].as_str() {
            Some(t) => t.to_string(),
            None => {
                let path = &files[&(
                    r["trial_id"].as_str().unwrap().to_string(),
                    r["file"].as_str().unwrap().to_string(),
                )];
                let p = Path::new(path);
                format!(
                    "{}-{}.{}",
                    p.file_stem().unwrap().to_str().unwrap(),
                    r["nonce"].as_str().unwrap(),
                    p.extension().unwrap().to_str().unwrap()
                )
            }
        };
        out.entry(r["send_id"].as_str().unwrap().to_string())
            .or_default()
            .push(marker);
    }
    out
}

/// Every send of sends.csv against the ground truth: exactly one truth
/// transmission per send, and the outcome is the testbed's decision.
pub fn check_against_truth(run: &Path, truth: &Path) -> Vec<HashMap<String, String>> {
    let truth = jsonl(truth);
    let by_marker = truth_by_marker(&truth);
    let markers = markers(run);
    let sends = csv_maps(&run.join("sends.csv"));
    let mut seen = HashSet::new();
    for r in &sends {
        assert_ne!(r["outcome"], "error", "harness error: {r:?}");
        assert!(
            seen.insert(r["send_id"].clone()),
            "send twice in sends.csv: {}",
            r["send_id"]
        );
        let sent: Vec<&Value> = markers[&r["send_id"]]
            .iter()
            .flat_map(|m| by_marker.get(m).into_iter().flatten())
            .collect();
        assert_eq!(
            sent.len(),
            1,
            "{} transmitted {} times",
            r["send_id"],
            sent.len()
        );
        assert_eq!(
            sent[0]["decision"].as_str().unwrap(),
            r["outcome"],
            "{}: dataset says {} ({} {}), testbed decided {}",
            r["send_id"],
            r["outcome"],
            r["failure"],
            r["error"],
            sent[0]["decision"]
        );
    }
    // And nothing was transmitted that the dataset lacks.
    let all: HashSet<&String> = markers.values().flatten().collect();
    for m in by_marker.keys() {
        assert!(
            all.contains(m),
            "the testbed saw {m}, which no send of the journal made"
        );
    }
    sends
}

#[test]
fn replication_verdicts_match_the_ground_truth() {
    replication_slice("testbed.toml");
}

/// The same slice with a client that shows no ids: texts recognised by
/// their tag, documents by their shown name, images by their picture.
#[test]
fn replication_without_ids_matches_the_ground_truth() {
    let (_c, run) = replication_slice("testbed-noids.toml");
    let sends = csv_maps(&run.join("sends.csv"));
    let images: Vec<_> = sends
        .iter()
        .filter(|r| r["content_kind"] == "image" && r["outcome"] == "delivered")
        .collect();
    assert!(images.len() >= 5, "{} images delivered", images.len());
    for r in &images {
        let d: u32 = r["match_distance"]
            .parse()
            .unwrap_or_else(|_| panic!("{r:?}"));
        assert!(d <= 12, "{r:?}");
    }
    // Test and control of a surveillance trial are fresh copies of one
    // item, in flight in one chat: told apart by their pixels.
    let margins: Vec<f64> = images
        .iter()
        .filter_map(|r| r["match_margin"].parse().ok())
        .collect();
    assert!(
        !margins.is_empty(),
        "no two close pictures were ever in flight"
    );
    assert!(margins.iter().all(|z| *z >= 0.5), "{margins:?}");
    eprintln!(
        "no ids: {} images delivered, pHash distance ≤ {}, margins {:?}",
        images.len(),
        images
            .iter()
            .map(|r| r["match_distance"].parse::<u32>().unwrap())
            .max()
            .unwrap(),
        margins
    );
    for r in sends.iter().filter(|r| r["content_kind"] == "text") {
        assert_eq!(r["nonce"].len(), 12, "{r:?}");
    }
}

/// Every starter-corpus image, and a fresh copy of each, through a client
/// that draws pictures as WeChat's chat does (small square thumbnails,
/// centre-cropped, re-encoded): every picture recognised on both sides,
/// every outcome the platform's, every probe on the platform once.
#[test]
fn every_corpus_picture_is_recognised_as_a_thumbnail() {
    let c = Campaign::new(
        "0.05",
        "sends_per_minute = 240\nparallel_pairs = 2\ndeliver_timeout_s = 8\nafter_sentinel_s = 0.6\nmax_runtime_s = 600",
        &format!(
            r#"
[[experiment]]
kind = "surveillance"
name = "sensitive"
items = {{ id = [{}] }}
seed_chat = {{ from = "intl-a", to = "intl-b" }}
test_chat = {{ from = "intl-a", to = "china-c" }}
delay_s = 4

[[experiment]]
kind = "surveillance"
name = "benign"
items = {{ id = [{}] }}
seed_chat = {{ from = "intl-c", to = "intl-b" }}
test_chat = {{ from = "intl-c", to = "china-d" }}
delay_s = 4
"#,
            crate::util::corpus_images('s'),
            crate::util::corpus_images('b')
        ),
    );
    let spec = std::fs::read_to_string(&c.spec)
        .unwrap()
        .replace("profiles/testbed.toml", "profiles/testbed-thumbnails.toml");
    std::fs::write(&c.spec, spec).unwrap();
    let r = chatprobe_ok(&["run", s(&c.spec), "--results", s(&c.results()), "--quiet"]);
    assert!(r.stdout.contains("complete"), "{}", r.stdout);
    let run = c.run_dir();
    // No error, every send once on the platform, its outcome the
    // platform's — except that a fresh control arriving while its seeded
    // twin (blocked) is still in flight may be `lost` as `ambiguous_image`:
    // at 120 pixels and JPEG 70 the grey level that tells two fresh copies
    // apart is mostly gone. That is honest, never a wrong verdict; it is
    // counted, and must stay rare.
    let by_marker = truth_by_marker(&jsonl(&run.join("truth.jsonl")));
    let markers = markers(&run);
    let sends = csv_maps(&run.join("sends.csv"));
    let mut ambiguous = 0;
    for r in &sends {
        let sent: Vec<&Value> = markers[&r["send_id"]]
            .iter()
            .flat_map(|m| by_marker.get(m).into_iter().flatten())
            .collect();
        assert_eq!(
            sent.len(),
            1,
            "{r:?} reached the platform {} times",
            sent.len()
        );
        let truth = sent[0]["decision"].as_str().unwrap();
        if r["outcome"] == "lost" && r["failure"] == "ambiguous_image" && truth == "delivered" {
            ambiguous += 1;
            continue;
        }
        assert_eq!(r["outcome"], truth, "{r:?}");
    }
    assert!(ambiguous <= 2, "{ambiguous} pictures ambiguous");
    assert_eq!(sends.len(), 72, "24 items × seed, test and fresh control");
    let plan = csv_maps(&run.join("plan.csv"));
    assert_eq!(sends.len(), plan.len(), "every planned send made once");
    let delivered: Vec<u32> = sends
        .iter()
        .filter(|r| r["outcome"] == "delivered")
        .map(|r| r["match_distance"].parse().unwrap())
        .collect();
    let blocked = sends.iter().filter(|r| r["outcome"] == "blocked").count();
    assert!(blocked >= 6, "{blocked} blocked: the censor never acted");
    let margins: Vec<f64> = sends
        .iter()
        .filter_map(|r| r["match_margin"].parse().ok())
        .collect();
    assert!(margins.iter().all(|z| *z >= 0.5), "{margins:?}");
    let worst = delivered.iter().max().copied().unwrap_or(0);
    let least = margins.iter().copied().fold(f64::INFINITY, f64::min);
    eprintln!(
        "thumbnails: {} delivered (pHash from the sender's thumbnail ≤ {worst} bits), {blocked} blocked, {ambiguous} ambiguous; {} pairs told apart, least z {least:.2}",
        delivered.len(),
        margins.len()
    );
}

/// A profile whose login cannot work on this client: every account fails
/// at start-up, and the run stops at once (exit 1, state `failed`) naming
/// the profile, the step, the selector and the page, not "complete".
#[test]
fn a_run_where_no_account_can_log_in_stops_and_says_why() {
    let c = Campaign::new(
        "1.0",
        "sends_per_minute = 120\nparallel_pairs = 2\ndeliver_timeout_s = 5",
        r#"
[[experiment]]
kind = "keyword"
keywords = "../corpus/keywords.csv"
items = { topic = ["food"] }
"#,
    );
    let profile = c.dir.path().join("probes/profiles/testbed.toml");
    // A login step waits up to the page-load timeout: 3 s, not 20.
    let text = std::fs::read_to_string(&profile)
        .unwrap()
        .replace("\"#login\"", "\"#no-such-login\"")
        .replace("page_load_ms = 20000", "page_load_ms = 3000");
    assert!(
        text.contains("#no-such-login") && text.contains("page_load_ms = 3000"),
        "the testbed profile changed"
    );
    std::fs::write(&profile, text).unwrap();
    let r = chatprobe(&["run", s(&c.spec), "--results", s(&c.results()), "--quiet"]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    for part in [
        "every account failed to log in",
        "step 1 of `login.steps` in profile `testbed`",
        "(fill `#no-such-login`)",
        "on http://127.0.0.1:",
        "not there after",
        "(screenshot: ",
        "chatprobe run --resume",
    ] {
        assert!(r.stderr.contains(part), "no `{part}` in: {}", r.stderr);
    }
    // The screenshot named is in the run folder, a picture of the page.
    let shot = r.stderr.split("(screenshot: ").nth(1).unwrap();
    let shot = PathBuf::from(&shot[..shot.find(".png").unwrap() + 4]);
    assert!(
        shot.starts_with(c.run_dir().join("screenshots")),
        "{shot:?}"
    );
    let png = image::open(&shot).unwrap();
    assert!(png.width() > 100 && png.height() > 100, "{shot:?}");
    let m: Value =
        serde_json::from_str(&std::fs::read_to_string(c.run_dir().join("run.json")).unwrap())
            .unwrap();
    assert_eq!(m["state"], "failed");
    assert_eq!(m["stop_reason"], "cannot_measure");
    let runs = chatprobe_ok(&["runs", "--results", s(&c.results())]);
    assert!(runs.stdout.contains("failed"), "{}", runs.stdout);
}

/// A replication slice through `profile`, checked against the testbed's
/// truth; returns the campaign (which holds the folder) and its run.
fn replication_slice(profile: &str) -> (Campaign, PathBuf) {
    // wechat-2020 sped up 20×: inspection median 1 s; seeds tested 4 s later.
    let c = Campaign::new(
        "0.05",
        "sends_per_minute = 120\nparallel_pairs = 2\ndeliver_timeout_s = 8\nafter_sentinel_s = 0.6\nmax_runtime_s = 600",
        r#"
[[experiment]]
kind = "surveillance"
name = "images"
items = { id = ["img-s01", "img-s02", "img-s03", "img-b01", "img-b02"] }
seed_chat = { from = "intl-a", to = "intl-b" }
test_chat = { from = "intl-a", to = "china-c" }
delay_s = 4

[[experiment]]
kind = "surveillance"
name = "documents-group"
items = { id = ["doc-s01", "doc-s02", "doc-b01"] }
seed_chat = { from = "intl-b", group = "seed-group-2", observer = "intl-c" }
test_chat = { from = "intl-c", group = "test-group-2", observer = "china-d" }
delay_s = 4

[[experiment]]
kind = "latency"
items = { id = ["img-s05"] }
offsets_s = [0.2, 5]
seed_chat = { from = "intl-a", to = "intl-c" }
test_chat = { from = "intl-a", to = "china-c" }

[[experiment]]
kind = "transform"
items = { id = ["img-s04"] }
delay_s = 4
transforms = ["mirror", "jpeg:40"]
seed_chat = { from = "intl-b", to = "intl-a" }
test_chat = { from = "intl-b", to = "china-c" }

[[experiment]]
kind = "keyword"
keywords = "../corpus/keywords.csv"
items = { topic = ["leadership", "food"] }
combinations = 1
test_chat = { from = "intl-c", to = "china-d" }
"#,
    );
    let spec = std::fs::read_to_string(&c.spec)
        .unwrap()
        .replace("profiles/testbed.toml", &format!("profiles/{profile}"));
    std::fs::write(&c.spec, spec).unwrap();
    let r = chatprobe_ok(&["run", s(&c.spec), "--results", s(&c.results()), "--quiet"]);
    assert!(r.stdout.contains("complete"), "{}", r.stdout);
    let run = c.run_dir();
    let sends = check_against_truth(&run, &run.join("truth.jsonl"));
    let plan = csv_maps(&run.join("plan.csv"));
    assert_eq!(sends.len(), plan.len(), "every planned send made once");
    // A sentinel after every probe.
    let truth_all = jsonl(&run.join("truth.jsonl"));
    let sentinels = truth_all
        .iter()
        .filter(|t| t["event"] == "transmission")
        .filter(|t| {
            t["text"]
                .as_str()
                .is_some_and(|x| x.starts_with("chatprobe sentinel"))
        })
        .count();
    assert_eq!(sentinels, sends.len());
    // At most parallel_pairs (2) sends in flight, never two on one account.
    let journal = jsonl(&run.join("journal.jsonl"));
    let at = |r: &Value| chrono::DateTime::parse_from_rfc3339(r["at"].as_str().unwrap()).unwrap();
    let plan_by_send: HashMap<&str, &HashMap<String, String>> =
        plan.iter().map(|p| (p["send_id"].as_str(), p)).collect();
    let mut spans = Vec::new();
    for i in journal.iter().filter(|r| r["event"] == "intent") {
        let o = journal
            .iter()
            .find(|o| {
                o["event"] == "outcome"
                    && o["send_id"] == i["send_id"]
                    && o["attempt"] == i["attempt"]
            })
            .unwrap();
        let p = plan_by_send[i["send_id"].as_str().unwrap()];
        spans.push((at(i), at(o), [p["sender"].clone(), p["receiver"].clone()]));
    }
    for a in &spans {
        // Everything in flight at the moment `a` started, `a` included.
        let running: Vec<_> = spans.iter().filter(|b| b.0 <= a.0 && a.0 < b.1).collect();
        assert!(
            running.len() <= 2,
            "{} sends in flight at once",
            running.len()
        );
        for b in spans
            .iter()
            .filter(|b| !std::ptr::eq(*b, a) && b.0 < a.1 && a.0 < b.1)
        {
            assert!(
                !a.2.iter().any(|x| b.2.contains(x)),
                "{:?} and {:?} share an account",
                a.2,
                b.2
            );
        }
    }
    // Verdicts against the truth: a surveilled trial's seed was judged
    // sensitive and indexed before its test; a not_surveilled one's was not.
    let truth = jsonl(&run.join("truth.jsonl"));
    let md5_of: HashMap<String, String> = truth
        .iter()
        .filter(|t| t["event"] == "transmission" && t["md5"].is_string())
        .map(|t| {
            (
                t["filename"].as_str().unwrap().to_string(),
                t["md5"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let added: HashMap<(String, String), String> = truth
        .iter()
        .filter(|t| t["event"] == "index_add")
        .map(|t| {
            (
                (
                    t["channel"].as_str().unwrap().to_string(),
                    t["md5"].as_str().unwrap().to_string(),
                ),
                t["at"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let markers = markers(&run);
    let trials = csv_maps(&run.join("trials.csv"));
    assert_eq!(
        trials.len(),
        plan.iter()
            .map(|p| &p["trial_id"])
            .collect::<HashSet<_>>()
            .len()
    );
    let mut verdicts = HashMap::new();
    for t in &trials {
        *verdicts.entry(t["verdict"].clone()).or_insert(0) += 1;
        if t["experiment"] != "surveillance" {
            continue;
        }
        let test_send = sends
            .iter()
            .find(|s| s["trial_id"] == t["trial_id"] && s["role"] == "test")
            .unwrap();
        let marker = &markers[&test_send["send_id"]][0];
        let md5 = &md5_of[marker];
        let indexed = added.get(&(t["channel"].clone(), md5.clone()));
        let before_test = indexed.is_some_and(|at| at.as_str() < test_send["sent_at"].as_str());
        match t["verdict"].as_str() {
            "surveilled" => assert!(before_test, "{t:?}"),
            "not_surveilled" => assert!(!before_test, "{t:?}"),
            v => panic!("unexpected verdict {v} for {t:?}"),
        }
        if t["label"] == "benign" {
            assert_eq!(t["verdict"], "not_surveilled", "{t:?}");
        }
    }
    assert!(
        verdicts.get("surveilled").copied().unwrap_or(0) >= 3,
        "{verdicts:?}"
    );
    // Keywords: the truth's decision is the verdict.
    for t in trials.iter().filter(|t| t["experiment"] == "keyword") {
        let want = if t["label"] == "sensitive"
            && t["parameter"] != "小熊维尼"
            && t["parameter"] != "习近平"
        {
            "blocked"
        } else {
            "evaded"
        };
        assert_eq!(t["verdict"], want, "{t:?}");
    }
    // The datasets load with no options and run.json is complete.
    let m: Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("run.json")).unwrap()).unwrap();
    assert_eq!(m["state"], "complete");
    assert_eq!(m["software"], "chatprobe");
    assert_eq!(m["seed"], 7);
    assert_eq!(m["trials_done"].as_u64().unwrap() as usize, trials.len());
    assert!(m["spec_text"].as_str().unwrap().contains("[[experiment]]"));
    // Paths relative to where the run started (the tests' working folder),
    // never absolute; the version and revision of the tool are there.
    for key in ["spec_path", "corpus", "policy"] {
        let p = m[key].as_str().unwrap();
        assert!(!p.starts_with('/') && !p.is_empty(), "{key}: {p}");
        assert!(std::path::Path::new(p).exists(), "{key}: {p}");
    }
    assert_eq!(m["version"], env!("CARGO_PKG_VERSION"));
    assert!(m["git_revision"].is_string());
    // The analysis reads the run.
    chatprobe_ok(&["analyze", s(&run), "--quiet"]);
    let surv = csv_maps(&run.join("analysis/surveillance.csv"));
    assert!(surv
        .iter()
        .any(|r| r["experiment_name"] == "images" && r["label"] == "sensitive"));
    // Both folders are valid data packages that R and DuckDB load typed;
    // a complete run declares the key from sends to trials.
    let package = crate::data::check_package(&run);
    assert_eq!(
        package["resources"][0]["schema"]["foreignKeys"][0]["reference"]["resource"],
        "trials"
    );
    crate::data::check_package(&run.join("analysis"));
    package_catches_bad_values(&run);
    (c, run)
}

/// The package is what catches a bad dataset: an unknown outcome, a send
/// of a trial that is not in trials.csv and a time that is no time are
/// each named by frictionless.
fn package_catches_bad_values(run: &Path) {
    let bad = tempfile::tempdir().unwrap();
    for f in std::fs::read_dir(run).unwrap() {
        let f = f.unwrap();
        let name = f.file_name().to_string_lossy().into_owned();
        if name.ends_with(".csv") || name == "datapackage.json" {
            std::fs::copy(f.path(), bad.path().join(&name)).unwrap();
        }
    }
    let (header, mut rows) = crate::util::read_csv(&bad.path().join("sends.csv"));
    let col = |c: &str| header.iter().position(|h| h == c).unwrap();
    rows[0][col("outcome")] = "maybe".into();
    rows[1][col("trial_id")] = "nowhere/r1".into();
    rows[2][col("sent_at")] = "yesterday".into();
    let mut w = csv::Writer::from_path(bad.path().join("sends.csv")).unwrap();
    w.write_record(&header).unwrap();
    for r in &rows {
        w.write_record(r).unwrap();
    }
    w.flush().unwrap();
    let errors = crate::data::frictionless_errors(bad.path()).join("\n");
    for want in ["maybe", "nowhere/r1", "yesterday"] {
        assert!(errors.contains(want), "{want} not named:\n{errors}");
    }
}

/// A testbed in its own process (so killing the run leaves the platform up).
pub struct TestbedProcess {
    pub child: Child,
    pub url: String,
}

impl TestbedProcess {
    pub fn start(policy: &Path, accounts: &Path, truth: &Path) -> TestbedProcess {
        TestbedProcess::start_with(policy, accounts, truth, &[])
    }

    /// With more arguments (`--state DIR`, `--addr A`).
    pub fn start_with(
        policy: &Path,
        accounts: &Path,
        truth: &Path,
        more: &[&str],
    ) -> TestbedProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_chatprobe"))
            .args([
                "testbed",
                "--policy",
                s(policy),
                "--accounts",
                s(accounts),
                "--truth",
                s(truth),
            ])
            .args(more)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let url = crate::util::listening_url(&mut child);
        TestbedProcess { child, url }
    }
}

impl Drop for TestbedProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[ignore = "make soak; make test: faults::kill_9_with_the_embedded_testbed_loses_nothing"]
#[test]
fn kill_9_then_resume_sends_everything_exactly_once() {
    let c = Campaign::new(
        "0.05",
        "sends_per_minute = 120\nparallel_pairs = 2\ndeliver_timeout_s = 8\nafter_sentinel_s = 0.6",
        r#"
[[experiment]]
kind = "surveillance"
name = "images"
items = { id = ["img-s01", "img-s02", "img-s03", "img-s04", "img-b01", "img-b02", "doc-s01", "doc-b01"] }
seed_chat = { from = "intl-a", to = "intl-b" }
test_chat = { from = "intl-a", to = "china-c" }
delay_s = 3

[[experiment]]
kind = "keyword"
keywords = "../corpus/keywords.csv"
items = { topic = ["june4", "food", "hong-kong"] }
test_chat = { from = "intl-c", to = "china-d" }
"#,
    );
    let truth = c.dir.path().join("truth.jsonl");
    let tb = TestbedProcess::start(
        &c.policy(),
        &c.dir.path().join("probes/accounts.testbed.toml"),
        &truth,
    );
    let planned = {
        let r = chatprobe_ok(&["plan", s(&c.spec)]);
        r.stdout.lines().count() - 1
    };
    // Kill at random points once browsers are up (printed, for a failure).
    use rand::Rng;
    let mut rng = rand::rng();
    let points: Vec<f64> = (0..3).map(|_| rng.random_range(4.0..9.0)).collect();
    eprintln!("kill -9 after {points:?} s");
    let mut kills = 0;
    for (i, after) in points.iter().enumerate() {
        let mut args = vec![
            "run".to_string(),
            "--quiet".into(),
            "--results".into(),
            s(&c.results()).into(),
        ];
        if i == 0 {
            args.extend([s(&c.spec).to_string(), "--base-url".into(), tb.url.clone()]);
        } else {
            args.extend(["--resume".to_string(), s(&c.run_dir()).to_string()]);
        }
        let log = c.dir.path().join(format!("run{i}.log"));
        let mut child = Command::new(env!("CARGO_BIN_EXE_chatprobe"))
            .args(&args)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let t0 = Instant::now();
        let mut finished = false;
        while t0.elapsed() < Duration::from_secs_f64(*after) {
            if let Some(status) = child.try_wait().unwrap() {
                assert!(
                    status.success(),
                    "run {i} failed: {}",
                    std::fs::read_to_string(&log).unwrap()
                );
                finished = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if !finished {
            unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
            kills += 1;
        }
        let _ = child.wait();
    }
    assert!(kills >= 2, "the run finished before it could be killed");
    let runs = chatprobe_ok(&["runs", "--results", s(&c.results())]);
    assert!(runs.stdout.contains("interrupted"), "{}", runs.stdout);
    // Resume to the end.
    let r = chatprobe_ok(&["run", "--quiet", "--resume", s(&c.run_dir())]);
    assert!(r.stdout.contains("complete"), "{}", r.stdout);
    let run = c.run_dir();
    let sends = check_against_truth(&run, &truth);
    assert_eq!(sends.len(), planned, "every planned send once");
    let m: Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("run.json")).unwrap()).unwrap();
    assert_eq!(m["state"], "complete");
    assert_eq!(m["resumed"].as_array().unwrap().len(), 3);
    assert_eq!(m["crashes"].as_u64().unwrap(), kills as u64);
    let runs = chatprobe_ok(&["runs", "--results", s(&c.results())]);
    assert!(runs.stdout.contains("complete"), "{}", runs.stdout);
}

#[ignore = "make soak; make test: scheduler::every_starts_one_run_a_period_each_within_the_rate_limit"]
#[test]
fn rate_limit_holds_and_every_starts_one_run_per_period() {
    // 20 sends a minute: one probe every 3 s or more per account.
    let c = Campaign::new(
        "1.0",
        "sends_per_minute = 20\nparallel_pairs = 2\ndeliver_timeout_s = 8\nafter_sentinel_s = 0.5\njitter = 0.1",
        r#"
[[experiment]]
kind = "keyword"
keywords = "../corpus/keywords.csv"
items = { topic = ["food", "weather"] }
test_chat = { from = "intl-a", to = "china-c" }
"#,
    );
    let r = chatprobe_ok(&[
        "run",
        s(&c.spec),
        "--results",
        s(&c.results()),
        "--quiet",
        "--every",
        "1s",
        "--runs",
        "2",
    ]);
    let dirs: Vec<PathBuf> = std::fs::read_dir(c.results())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    assert_eq!(dirs.len(), 2, "{}", r.stdout);
    for d in &dirs {
        let truth = jsonl(&d.join("truth.jsonl"));
        let probes: Vec<chrono::DateTime<chrono::FixedOffset>> = truth
            .iter()
            .filter(|t| t["event"] == "transmission")
            .filter(|t| {
                !t["text"]
                    .as_str()
                    .unwrap_or("")
                    .starts_with("chatprobe sentinel")
            })
            .map(|t| chrono::DateTime::parse_from_rfc3339(t["at"].as_str().unwrap()).unwrap())
            .collect();
        assert_eq!(probes.len(), 5, "{d:?}");
        for w in probes.windows(2) {
            let gap = (w[1] - w[0]).num_milliseconds();
            assert!(
                gap >= 2_900,
                "two probes {gap} ms apart, the limit is 3000 ms"
            );
        }
    }
    let runs = chatprobe_ok(&["runs", "--results", s(&c.results())]);
    assert_eq!(
        runs.stdout
            .lines()
            .filter(|l| l.contains("complete"))
            .count(),
        2,
        "{}",
        runs.stdout
    );
}

#[test]
fn every_after_downtime_starts_the_missed_run_at_once() {
    let results = tempfile::tempdir().unwrap();
    let old = results.path().join("20200101T000000Z-t");
    std::fs::create_dir(&old).unwrap();
    let manifest = serde_json::json!({
        "software": "chatprobe", "version": "0", "git_revision": "", "run_id": "20200101T000000Z-t",
        "spec_name": "t", "spec_path": "", "spec_sha256": "", "spec_text": "", "corpus_index_sha256": "",
        "corpus": "", "profile": "testbed", "platform": "embedded-testbed", "policy": null, "webdriver": null,
        "seed": 1, "limits": null, "started_at": "2020-01-01T00:00:00.000Z", "finished_at": "2020-01-01T00:10:00.000Z",
        "state": "complete", "stop_reason": "complete", "pid": 0, "trials_planned": 1, "trials_done": 1,
        "sends_planned": 1, "counts": {}, "interrupted": [], "resumed": []
    });
    std::fs::write(old.join("run.json"), manifest.to_string()).unwrap();
    let period = Duration::from_secs(24 * 3600);
    let due = chatprobe::campaign::next_due(results.path(), "t", period);
    assert!(
        (due - chrono::Utc::now()).num_seconds().abs() < 5,
        "missed run due now, not {due}"
    );
    // A run an hour ago: the next is due in 23 h.
    let recent = chrono::Utc::now() - chrono::Duration::hours(1);
    let mut m2 = manifest.clone();
    m2["run_id"] = "recent".into();
    m2["started_at"] = recent.to_rfc3339().into();
    std::fs::create_dir(results.path().join("recent")).unwrap();
    std::fs::write(results.path().join("recent/run.json"), m2.to_string()).unwrap();
    let due = chatprobe::campaign::next_due(results.path(), "t", period);
    let hours = (due - chrono::Utc::now()).num_minutes() as f64 / 60.0;
    assert!((22.9..=23.1).contains(&hours), "{hours}");
}

#[test]
fn plans_are_reproducible_and_seeded() {
    let c = Campaign::new(
        "1.0",
        "",
        &std::fs::read_to_string(root().join("probes/replication.toml"))
            .unwrap()
            .split("[[experiment]]")
            .skip(1)
            .map(|e| format!("[[experiment]]{e}"))
            .collect::<String>(),
    );
    let a = chatprobe_ok(&["plan", s(&c.spec)]).stdout;
    let b = chatprobe_ok(&["plan", s(&c.spec)]).stdout;
    assert_eq!(a, b, "same spec, corpus and seed: the same plan");
    let out = c.dir.path().join("plan.csv");
    chatprobe_ok(&["plan", s(&c.spec), "--out", s(&out)]);
    assert_eq!(std::fs::read_to_string(&out).unwrap(), a);
    let text = std::fs::read_to_string(&c.spec).unwrap();
    std::fs::write(&c.spec, text.replace("seed = 7\n", "seed = 8\n")).unwrap();
    let other = chatprobe_ok(&["plan", s(&c.spec)]).stdout;
    assert_ne!(a, other, "another seed: another order");
    let sorted = |p: &str| {
        let mut l: Vec<String> = p
            .lines()
            .skip(1)
            .map(|l| l.split_once(',').unwrap().1.to_string())
            .collect();
        l.sort();
        l
    };
    // The same trials, sends and timings; only the order (and the random
    // order of test and control) differ.
    assert_eq!(sorted(&a).len(), sorted(&other).len());
    let ids = |p: &str| -> HashSet<String> {
        p.lines()
            .skip(1)
            .map(|l| l.split(',').nth(2).unwrap().to_string())
            .collect()
    };
    assert_eq!(ids(&a), ids(&other));
    // Every design is in the plan, with roles and timings.
    for design in ["surveillance", "latency", "transform", "keyword"] {
        assert!(a.contains(&format!(",{design},")), "{design}");
    }
    assert!(a.contains("/prime,"));
}

#[test]
fn bad_specs_exit_2_and_write_nothing() {
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
    // (edit, what the error must say)
    let cases: Vec<(&str, &str, &str)> = vec![
        ("delay_s = 5", "delay_s = 5\ncolour = 1", "colour"),
        (
            "kind = \"surveillance\"",
            "kind = \"surveilance\"",
            "surveilance",
        ),
        ("to = \"china-c\"", "to = \"china-z\"", "china-z"),
        (
            "to = \"intl-b\"",
            "to = \"china-c\"",
            "seed chat includes a china account",
        ),
        (
            "to = \"china-c\" }",
            "to = \"intl-b\" }",
            "no china account",
        ),
        (
            "items = { kind = [\"image\"] }",
            "items = { id = [\"img-999\"] }",
            "img-999",
        ),
        (
            "items = { kind = [\"image\"] }",
            "items = { topic = [\"nothing\"] }",
            "matches no corpus item",
        ),
        (
            "items = { kind = [\"image\"] }",
            "items = { kind = [\"video\"] }",
            "video",
        ),
        ("delay_s = 5", "delay_s = -5", "delay_s"),
        (
            "delay_s = 5",
            "delay_s = 5\noffsets_s = [1]",
            "does not apply",
        ),
        (
            "sends_per_minute = 20",
            "sends_per_minute = 0",
            "sends_per_minute",
        ),
        ("seed = 7\n", "seed = \"x\"\n", "seed"),
        (
            "accounts = \"accounts.testbed.toml\"",
            "accounts = \"nope.toml\"",
            "nope.toml",
        ),
        (
            "policy = \"policies/policy.toml\"",
            "policy = \"policies/none.toml\"",
            "none.toml",
        ),
        (
            "kind = \"surveillance\"",
            "kind = \"transform\"",
            "needs `transforms`",
        ),
        (
            "kind = \"surveillance\"\nname = \"x\"",
            "kind = \"latency\"\nname = \"x\"\noffsets_s = []",
            "offsets",
        ),
        (
            "seed_chat = { from = \"intl-a\", to = \"intl-b\" }",
            "seed_chat = { from = \"intl-a\", group = \"no-group\" }",
            "no-group",
        ),
        (
            "seed_chat = { from = \"intl-a\", to = \"intl-b\" }",
            "seed_chat = { from = \"intl-a\", group = \"seed-group-2\" }",
            "not a member",
        ),
        (
            "seed_chat = { from = \"intl-a\", to = \"intl-b\" }",
            "seed_chat = { from = \"intl-a\", to = \"intl-a\" }",
            "itself",
        ),
        ("name = \"x\"", "name = \"x\"\nreplicates = 0", "replicates"),
        ("[limits]", "[limits]\nparallel_pairs = 0", "parallel_pairs"),
        (
            "corpus = \"../corpus\"",
            "corpus = \"../nowhere\"",
            "nowhere",
        ),
    ];
    assert!(cases.len() >= 15);
    let results = c.results();
    for (from, to, needle) in &cases {
        assert!(base.contains(from), "{from}");
        let bad = c.dir.path().join("probes/bad.toml");
        std::fs::write(&bad, base.replacen(from, to, 1)).unwrap();
        for args in [
            vec!["plan", s(&bad)],
            vec!["run", s(&bad), "--results", s(&results), "--quiet"],
        ] {
            let r = chatprobe(&args);
            assert_eq!(r.code, 2, "{to}: {args:?}\n{}", r.stderr);
            assert!(
                r.stderr.contains(needle),
                "{to}: error lacks `{needle}`: {}",
                r.stderr
            );
            assert!(
                r.stderr.contains("bad.toml") || r.stderr.contains(".toml"),
                "{}",
                r.stderr
            );
        }
        assert!(!results.exists(), "{to}: a bad spec left {results:?}");
    }
    // An unreachable WebDriver endpoint or platform: exit 2, nothing written.
    for flag in ["--webdriver", "--base-url"] {
        let r = chatprobe(&[
            "run",
            s(&c.spec),
            "--results",
            s(&results),
            "--quiet",
            flag,
            "http://127.0.0.1:9",
        ]);
        assert_eq!(r.code, 2, "{}", r.stderr);
        assert!(
            r.stderr.contains(flag) && r.stderr.contains("nothing answers"),
            "{}",
            r.stderr
        );
        assert!(!results.exists());
    }
    // The line is named for experiment keys.
    let bad = c.dir.path().join("probes/bad.toml");
    std::fs::write(&bad, base.replacen("delay_s = 5", "delay_s = -5", 1)).unwrap();
    let r = chatprobe(&["plan", s(&bad)]);
    let line = base.lines().position(|l| l.starts_with("delay_s")).unwrap() + 1;
    assert!(
        r.stderr
            .contains(&format!("bad.toml:{line} [experiment[0].delay_s]")),
        "{}",
        r.stderr
    );
}

#[test]
fn the_ledger_refuses_a_fresh_copy_it_has_sent() {
    let (_tmp, corpus) = crate::util::starter_corpus();
    let path = corpus.join("images/img-s01.jpg");
    let orig = std::fs::read(&path).unwrap();
    let format = chatprobe::corpus::Format::from_path(&path).unwrap();
    let mut ledger = chatprobe::run::ledger::Ledger::open(&corpus).unwrap();
    let first =
        chatprobe::run::fresh_copy(&ledger, &path, &orig, format, |round| 100 + round as u64)
            .unwrap();
    assert_eq!(first.2, 100);
    ledger
        .record(
            &chatprobe::corpus::hash::md5_hex(&first.0),
            "img-s01",
            "r",
            "s",
        )
        .unwrap();
    // Reopened from disk, it still knows that MD5, and makes another copy.
    let ledger = chatprobe::run::ledger::Ledger::open(&corpus).unwrap();
    let second =
        chatprobe::run::fresh_copy(&ledger, &path, &orig, format, |round| 100 + round as u64)
            .unwrap();
    assert_eq!(second.2, 101, "the seed whose copy was sent is skipped");
    assert_ne!(
        chatprobe::corpus::hash::md5_hex(&first.0),
        chatprobe::corpus::hash::md5_hex(&second.0)
    );
    // If every candidate was sent, it refuses.
    let mut ledger = ledger;
    for round in 0..32u64 {
        let (b, _) = chatprobe::corpus::transform::apply(
            chatprobe::corpus::transform::Transform::Fresh,
            &path,
            &orig,
            format,
            500 + round,
        )
        .unwrap();
        ledger
            .record(&chatprobe::corpus::hash::md5_hex(&b), "img-s01", "r", "s")
            .unwrap();
    }
    assert!(
        chatprobe::run::fresh_copy(&ledger, &path, &orig, format, |round| 500 + round as u64)
            .is_err()
    );
}

#[test]
fn expiry_sees_a_hash_leave_the_index() {
    // Every seed inspected (after about 1 s, under 5 s even on a loaded
    // machine); an indexed MD5 expires 400 s × 0.05 = 20 s later: blocked at
    // the prime (8 s), free by the last retest (22 s, 36 s). The margins are
    // wide because the schedule is the platform's clock: on a loaded CI
    // machine a browser send alone can take several seconds, and with a
    // 10 s life the prime once arrived after the hash had left the index.
    let c = Campaign::with_policy(
        "0.05",
        &[
            ("probability = 0.82", "probability = 1.0"),
            (
                "expiry = { dist = \"none\" }",
                "expiry = { dist = \"fixed\", s = 400 }",
            ),
        ],
        "sends_per_minute = 120\ndeliver_timeout_s = 8\nafter_sentinel_s = 0.6",
        r#"
[[experiment]]
kind = "expiry"
items = { id = ["doc-s01"] }
seed_chat = { from = "intl-a", to = "intl-b" }
test_chat = { from = "intl-a", to = "china-c" }
delay_s = 8
retest_every_s = 14
retests = 2
"#,
    );
    chatprobe_ok(&["run", s(&c.spec), "--results", s(&c.results()), "--quiet"]);
    let run = c.run_dir();
    let sends = check_against_truth(&run, &run.join("truth.jsonl"));
    let by_role: HashMap<&str, &str> = sends
        .iter()
        .map(|r| {
            (
                r["send_id"].rsplit('/').next().unwrap(),
                r["outcome"].as_str(),
            )
        })
        .collect();
    assert_eq!(by_role["prime"], "blocked", "{sends:?}");
    // Expired by a retest (which, delivered, is inspected again and may put
    // the MD5 back: measuring changes the censor).
    assert!(
        by_role["retest1"] == "delivered" || by_role["retest2"] == "delivered",
        "{sends:?}"
    );
    let trials = csv_maps(&run.join("trials.csv"));
    assert_eq!(trials[0]["verdict"], "expired");
    let truth = std::fs::read_to_string(run.join("truth.jsonl")).unwrap();
    assert!(truth.contains("\"event\":\"index_expire\""));
    chatprobe_ok(&["analyze", s(&run), "--quiet"]);
    let ex = csv_maps(&run.join("analysis/expiry.csv"));
    assert!(!ex.is_empty());
}

/// SIGTERM mid-run: exit 130, the send in flight finished, a stop record,
/// the resume hint, and a resume that finishes; `max_runtime_s` stops a run
/// cleanly. The command line's part, on the simulated platform (`--platform
/// sim:FILE`): the browser's part is `faults::a_signal_at_any_moment_stops_the_run_before_another_send`'s.
#[test]
fn sigterm_and_max_runtime_stop_cleanly_and_resume_finishes() {
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
    // The command line's signals and limits need no browser.
    let sim = format!("sim:{}", s(&c.sim_file()));
    let child = Command::new(env!("CARGO_BIN_EXE_chatprobe"))
        .args(["run", s(&c.spec), "--results", s(&c.results()), "--quiet"])
        .args(["--platform", &sim])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Once a few sends are done, SIGTERM (what Ctrl-C does, too).
    let t0 = Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let done = std::fs::read_dir(c.results())
            .ok()
            .and_then(|mut d| d.next())
            .map(|e| e.unwrap().path().join("journal.jsonl"))
            .and_then(|j| std::fs::read_to_string(j).ok())
            .map_or(0, |j| j.matches("\"event\":\"outcome\"").count());
        if done >= 3 {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(90), "no progress");
    }
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("--resume"));
    let run = c.run_dir();
    let journal = jsonl(&run.join("journal.jsonl"));
    assert_eq!(journal.last().unwrap()["event"], "stop");
    assert_eq!(journal.last().unwrap()["reason"], "interrupted");
    // The send in flight was finished: every intent has its outcome.
    let intents = journal.iter().filter(|r| r["event"] == "intent").count();
    let outcomes = journal.iter().filter(|r| r["event"] == "outcome").count();
    assert_eq!(intents, outcomes);
    let m: Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("run.json")).unwrap()).unwrap();
    assert_eq!(m["state"], "interrupted");
    assert!(csv_maps(&run.join("trials.csv")).len() < csv_maps(&run.join("plan.csv")).len());
    // A resume runs to the end.
    let r = chatprobe_ok(&["run", "--quiet", "--resume", s(&run), "--platform", &sim]);
    assert!(r.stdout.contains("complete"), "{}", r.stdout);
    assert_eq!(
        csv_maps(&run.join("sends.csv")).len(),
        csv_maps(&run.join("plan.csv")).len()
    );

    // max_runtime_s: a spec that cannot finish in 4 s stops there, cleanly.
    let c = Campaign::new("1.0", "sends_per_minute = 6\nmax_runtime_s = 4", body);
    let sim = format!("sim:{}", s(&c.sim_file()));
    let r = chatprobe(&[
        "run",
        s(&c.spec),
        "--results",
        s(&c.results()),
        "--quiet",
        "--platform",
        &sim,
    ]);
    assert_eq!(r.code, 130, "{}", r.stderr);
    let m: Value =
        serde_json::from_str(&std::fs::read_to_string(c.run_dir().join("run.json")).unwrap())
            .unwrap();
    assert_eq!(m["stop_reason"], "max_runtime");
    assert_eq!(m["state"], "interrupted");
}

/// Validation against a known truth, through the browser: the shipped
/// topics-validation policy (only June 4th images and Falun Gong documents
/// are sensitive), sped up 20×; surveillance of images of four topics and
/// documents of five, three replicates (enough for the two planted topics
/// to pass Holm's correction over the nine topic rows). Every outcome matches the testbed's
/// decisions, the testbed judged only those items sensitive, and the
/// analysis singles out exactly june4 (images) and falun-gong (documents).
#[ignore = "make soak; make test: scheduler::the_topic_table_singles_out_exactly_the_sensitive_topics"]
#[test]
fn the_topic_validation_policy_is_recovered_through_the_browser() {
    let c = Campaign::new(
        "0.05",
        "sends_per_minute = 120\nparallel_pairs = 2\ndeliver_timeout_s = 20\nafter_sentinel_s = 0.6\nmax_runtime_s = 900",
        r#"
[[experiment]]
kind = "surveillance"
name = "images"
items = { id = ["img-s01", "img-s02", "img-s03", "img-s04", "img-b01", "img-b02"] }
replicates = 3
seed_chat = { from = "intl-a", to = "intl-b" }
test_chat = { from = "intl-a", to = "china-c" }
delay_s = 6

[[experiment]]
kind = "surveillance"
name = "documents"
items = { id = ["doc-s01", "doc-s03", "doc-b01", "doc-b02", "doc-b03"] }
replicates = 3
seed_chat = { from = "intl-c", to = "intl-b" }
test_chat = { from = "intl-c", to = "china-d" }
delay_s = 6
"#,
    );
    // The shipped validation policy in place of wechat-2020, sped up 20×.
    let shipped = root().join("probes/policies");
    let policies = c.dir.path().join("probes/policies");
    copy_tree(
        &shipped.join("reference-june4"),
        &policies.join("reference-june4"),
    );
    let text = std::fs::read_to_string(shipped.join("topics-validation.toml"))
        .unwrap()
        .replace("time_scale = 1.0", "time_scale = 0.05");
    std::fs::write(c.policy(), text).unwrap();
    let r = chatprobe_ok(&["run", s(&c.spec), "--results", s(&c.results()), "--quiet"]);
    assert!(r.stdout.contains("complete"), "{}", r.stdout);
    let run = c.run_dir();
    check_against_truth(&run, &run.join("truth.jsonl"));
    // The testbed judged sensitive only June 4th images and Falun Gong text.
    let reasons: HashSet<String> = jsonl(&run.join("truth.jsonl"))
        .iter()
        .filter(|t| t["event"] == "inspection" && t["verdict"] == "sensitive")
        .map(|t| t["reason"].as_str().unwrap().to_string())
        .collect();
    assert!(!reasons.is_empty());
    for why in &reasons {
        assert!(
            ["img-s01", "img-s02", "img-s03", "法轮"]
                .iter()
                .any(|k| why.contains(k)),
            "judged sensitive for {why}"
        );
    }
    chatprobe_ok(&["analyze", s(&run)]);
    let a = run.join("analysis");
    for r in csv_maps(&a.join("surveillance_items.csv")) {
        let planted = ["img-s01", "img-s02", "img-s03", "doc-s03"].contains(&r["item_id"].as_str());
        assert_eq!(r["n"], "3", "{r:?}");
        assert_eq!(r["surveilled"], if planted { "3" } else { "0" }, "{r:?}");
    }
    // Exactly the planted topics have surveilled items; between items (the
    // unit), one to three items a topic cannot make a topic significant
    // over every sensitive row, and the report says so.
    let mut surveilled: Vec<(String, String)> = csv_maps(&a.join("surveillance_topics.csv"))
        .iter()
        .filter(|r| r["surveilled"] != "0")
        .map(|r| (r["content_kind"].clone(), r["topic"].clone()))
        .collect();
    surveilled.sort();
    assert_eq!(
        surveilled,
        [("document", "falun-gong"), ("image", "june4")]
            .map(|(k, t)| (k.to_string(), t.to_string()))
    );
    let html = std::fs::read_to_string(a.join("report.html")).unwrap();
    assert!(html.contains(
        "no topic was surveilled significantly more often than the benign items (between-items tests"
    ));
    assert!(a.join("surveillance_effects.svg").is_file());
    // 9 and 3 surveilled trials are too few for a model of the content
    // (10 of the rarer outcome per term): each experiment says so.
    let model = csv_maps(&a.join("surveillance_model.csv"));
    assert_eq!(model.len(), 2, "{model:#?}");
    assert!(
        model
            .iter()
            .all(|r| r["term"] == "(model)" && r["note"].starts_with("too little information")),
        "{model:#?}"
    );
}

/// The shipped evasion-2018 spec, on two images, through the browser: the
/// 2018 transformations against the wechat-2018-moments policy give the
/// graded picture of the study — re-encoded copies caught, mirrored,
/// squashed, bordered and Otsu copies evading, blur caught for its first
/// steps and evading from step 4 on — in transforms.csv and the report.
#[ignore = "make soak; make test: testbed::the_2018_moments_policy_evades_as_wechat_did_in_2018"]
#[test]
fn the_evasion_2018_spec_shows_blur_evading_after_a_few_steps() {
    let dir = tempfile::tempdir().unwrap();
    let probes = dir.path().join("probes");
    copy_tree(&root().join("probes"), &probes);
    // A fresh clone has no corpus index (it is built, not committed): index
    // a copy of the starter corpus beside the probes, as `make run` does.
    let (_keep, corpus) = crate::util::starter_corpus();
    copy_tree(&corpus, &dir.path().join("corpus"));
    chatprobe_ok(&[
        "corpus",
        "index",
        "--quiet",
        "--corpus",
        s(&dir.path().join("corpus")),
    ]);
    let spec = probes.join("evasion-2018.toml");
    let text = std::fs::read_to_string(&spec).unwrap().replace(
        "items = { kind = [\"image\"], label = [\"sensitive\"] }",
        "items = { id = [\"img-s03\", \"img-s05\"] }",
    );
    assert_eq!(
        text.matches("img-s03").count(),
        2,
        "both experiments cut down"
    );
    std::fs::write(&spec, text).unwrap();
    let results = dir.path().join("results");
    let r = chatprobe_ok(&["run", s(&spec), "--results", s(&results), "--quiet"]);
    assert!(r.stdout.contains("complete"), "{}", r.stdout);
    let run = std::fs::read_dir(&results)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.is_dir())
        .unwrap();
    check_against_truth(&run, &run.join("truth.jsonl"));
    chatprobe_ok(&["analyze", s(&run), "--quiet"]);
    let rate: HashMap<String, String> = csv_maps(&run.join("analysis/transforms.csv"))
        .into_iter()
        .map(|r| (r["transform"].clone(), r["evasion_rate"].clone()))
        .collect();
    let evaded = |t: &str| {
        rate.get(t)
            .unwrap_or_else(|| panic!("no {t} in {rate:?}"))
            .parse::<f64>()
            .unwrap()
    };
    for t in ["jpeg:95", "blur:0.5", "blur:1", "blur:1.5"] {
        assert_eq!(evaded(t), 0.0, "{t} is caught: {rate:?}");
    }
    for t in [
        "mirror",
        "squash-y:0.75",
        "squash-x:0.75",
        "border:6",
        "border:40",
        "otsu",
        "blur:2",
        "blur:3",
        "blur:5",
    ] {
        assert_eq!(evaded(t), 1.0, "{t} evades: {rate:?}");
    }
    let html = std::fs::read_to_string(run.join("analysis/report.html")).unwrap();
    assert!(html.contains("<h3>transforms.csv</h3>") && html.contains("blur:2.5"));
    assert!(run.join("analysis/transforms.svg").is_file());
}

/// A run against a platform behind HTTP Basic authentication, with the
/// credentials in `--base-url`: a loopback proxy in front of an external
/// testbed refuses (401) any connection whose first request lacks them.
/// Every login works, no request reached the proxy without them, and no
/// file the run leaves (its folder) or its browsers leave (their profile
/// folder, kept by a kill -9 mid-run) holds the password or its Base64
/// form; the next start of a platform removes that folder.
#[test]
fn credentials_in_the_url_log_in_and_reach_no_file() {
    use base64::Engine;
    let c = Campaign::new(
        "1.0",
        "sends_per_minute = 120\nafter_sentinel_s = 0.5",
        r#"
[[experiment]]
kind = "keyword"
keywords = "../corpus/keywords.csv"
items = { topic = ["june4", "food", "hong-kong", "sports"] }
test_chat = { from = "intl-a", to = "china-c" }
"#,
    );
    let truth = c.dir.path().join("truth.jsonl");
    let tb = TestbedProcess::start(
        &c.policy(),
        &c.dir.path().join("probes/accounts.testbed.toml"),
        &truth,
    );
    let (user, pass) = ("reviewer", "s3cret-Pa55");
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
    let proxy = BasicAuthProxy::start(tb.url.trim_end_matches('/'), &format!("Basic {basic}"));
    let url = format!("http://{user}:{pass}@{}/", proxy.addr);
    // Its own temporary folder: other tests' chatprobes reap the folders
    // of dead chatprobes in theirs.
    let tmp = c.dir.path().join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let chatprobe_in_tmp = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_chatprobe"))
            .args(args)
            .env("TMPDIR", &tmp)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let profiles_before: std::collections::HashSet<_> = profile_dirs(&tmp).into_iter().collect();
    let mut child = Command::new(env!("CARGO_BIN_EXE_chatprobe"))
        .env("TMPDIR", &tmp)
        .args([
            "run",
            s(&c.spec),
            "--results",
            s(&c.results()),
            "--quiet",
            "--base-url",
            &url,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    crate::util::wait_until("a send's outcome", || {
        std::fs::read_dir(c.results())
            .ok()
            .and_then(|mut d| d.next())
            .map(|e| e.unwrap().path().join("journal.jsonl"))
            .is_some_and(|j| std::fs::read_to_string(j).is_ok_and(|t| t.contains("\"outcome\"")))
    });
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    let _ = child.wait();
    let left: Vec<PathBuf> = profile_dirs(&tmp)
        .into_iter()
        .filter(|d| !profiles_before.contains(d))
        .collect();
    assert!(
        !left.is_empty(),
        "a kill -9 leaves the browsers' profile folder"
    );
    let run = c.run_dir();
    for dir in left.iter().chain([&run]) {
        for (file, bytes) in files_under(dir) {
            for secret in [pass, basic.as_str()] {
                assert!(
                    !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                    "{} holds `{secret}`",
                    file.display()
                );
            }
        }
    }
    // The next chatprobe, whatever its command, removes them.
    let (code, _) = chatprobe_in_tmp(&["runs", "--results", s(&c.results())]);
    assert_eq!(code, Some(0));
    for d in &left {
        assert!(!d.exists(), "{} was not removed", d.display());
    }
    let (code, out) =
        chatprobe_in_tmp(&["run", "--quiet", "--resume", s(&run), "--base-url", &url]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("complete"), "{out}");
    assert!(
        profile_dirs(&tmp).is_empty(),
        "a run left its profile folder"
    );
    for (file, bytes) in files_under(&run) {
        assert!(
            !bytes.windows(pass.len()).any(|w| w == pass.as_bytes()),
            "{} holds the password",
            file.display()
        );
    }
    let (with, without) = proxy.counts();
    assert!(with > 0, "no request reached the platform");
    assert_eq!(
        without, 0,
        "{without} requests came without the credentials"
    );
    let sends = csv_maps(&run.join("sends.csv"));
    assert!(sends.iter().all(|r| r["outcome"] != "error"), "{sends:?}");
}

/// chatprobe's browser profile folders under `tmp`.
fn profile_dirs(tmp: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(tmp)
        .map(|rd| {
            rd.flatten()
                .filter(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .starts_with("chatprobe-profiles-")
                })
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
}

/// Every readable file under `dir`, with its bytes.
fn files_under(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            match e.file_type() {
                Ok(t) if t.is_dir() => todo.push(p),
                Ok(t) if t.is_file() => {
                    if let Ok(b) = std::fs::read(&p) {
                        out.push((p, b));
                    }
                }
                _ => {}
            }
        }
    }
    out
}

/// A loopback TCP proxy in front of `upstream` that answers 401 to a
/// connection whose first request lacks `Authorization: <auth>`, and
/// forwards the others byte for byte. Counts first requests with and
/// without it.
struct BasicAuthProxy {
    addr: String,
    counts: std::sync::Arc<std::sync::Mutex<(usize, usize)>>,
}

impl BasicAuthProxy {
    fn start(upstream: &str, auth: &str) -> BasicAuthProxy {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let up = upstream.trim_start_matches("http://").to_string();
        let want = format!("authorization: {}", auth.to_lowercase());
        let counts = std::sync::Arc::new(std::sync::Mutex::new((0, 0)));
        let c2 = counts.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let (up, want, counts) = (up.clone(), want.clone(), c2.clone());
                std::thread::spawn(move || {
                    let mut conn = conn;
                    let mut head = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match conn.read(&mut buf) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let text = String::from_utf8_lossy(&head).to_lowercase();
                    let ok = text.lines().any(|l| l.trim() == want);
                    {
                        let mut c = counts.lock().unwrap();
                        if ok {
                            c.0 += 1
                        } else {
                            c.1 += 1
                        }
                    }
                    if !ok {
                        let _ = conn.write_all(b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"t\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                        return;
                    }
                    let Ok(mut server) = std::net::TcpStream::connect(&up) else {
                        return;
                    };
                    if server.write_all(&head).is_err() {
                        return;
                    }
                    let (mut c_read, mut s_write) =
                        (conn.try_clone().unwrap(), server.try_clone().unwrap());
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut c_read, &mut s_write);
                        let _ = s_write.shutdown(std::net::Shutdown::Write);
                    });
                    let _ = std::io::copy(&mut server, &mut conn);
                    let _ = conn.shutdown(std::net::Shutdown::Write);
                });
            }
        });
        BasicAuthProxy { addr, counts }
    }

    fn counts(&self) -> (usize, usize) {
        *self.counts.lock().unwrap()
    }
}
