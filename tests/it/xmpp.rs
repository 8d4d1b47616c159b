//! A platform, a client and a censor nobody here wrote: Prosody +
//! Converse.js + mod_firewall, started by `chatprobe xmpp`, driven through
//! `probes/profiles/converse.toml` alone, and checked against Prosody's own
//! log of what it dropped.

use std::process::{Child, Command, Stdio};

use crate::run::Campaign;
use crate::util::{chatprobe_ok, csv_maps, root, s};

/// `chatprobe xmpp` in its own process; killed on drop.
struct Target {
    child: Child,
    url: String,
    dir: tempfile::TempDir,
}

impl Target {
    fn start(accounts: &std::path::Path, keywords: &std::path::Path) -> Target {
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_chatprobe"))
            .args([
                "xmpp",
                "--accounts",
                s(accounts),
                "--keywords",
                s(keywords),
                "--converse",
                s(&root().join("third_party/node_modules/converse.js/dist")),
                "--dir",
                s(&dir.path().join("xmpp")),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let url = crate::util::listening_url(&mut child);
        Target { child, url, dir }
    }

    /// The bodies Prosody's censor dropped.
    fn dropped(&self) -> Vec<String> {
        chatprobe::targets::xmpp::read_drops(&self.dir.path().join("xmpp/prosody.log"))
            .into_iter()
            .map(|d| d.body)
            .collect()
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn converse_on_prosody_outcomes_equal_prosodys_drop_log() {
    // The campaign's corpus and accounts; the spec names the Converse profile.
    let c = Campaign::new("1.0", "", "");
    let d = c.dir.path();
    std::fs::copy(
        root().join("probes/profiles/converse.toml"),
        d.join("probes/profiles/converse.toml"),
    )
    .unwrap();
    let spec = d.join("probes/xmpp.toml");
    std::fs::write(
        &spec,
        r#"name = "xmpp"
seed = 11
accounts = "accounts.testbed.toml"
profile = "profiles/converse.toml"
corpus = "../corpus"

[limits]
sends_per_minute = 120
parallel_pairs = 2
deliver_timeout_s = 10
after_sentinel_s = 1.5

[[experiment]]
kind = "keyword"
keywords = "../corpus/keywords.csv"
items = { topic = ["leadership", "liu-xiaobo", "food"] }
combinations = 2
test_chat = { from = "intl-c", to = "china-d" }

[[experiment]]
kind = "keyword"
name = "keyword-other-pair"
keywords = "../corpus/keywords.csv"
items = { topic = ["falun-gong", "weather"] }
test_chat = { from = "intl-a", to = "china-c" }

# Every starter-corpus image and two documents: a seed between intl
# accounts, then the seeded copy and a fresh control (two copies of one
# picture in flight in one chat), over two pairs of chats.
[[experiment]]
kind = "surveillance"
name = "files"
items = { id = ["doc-s01", "doc-b01", IMAGES_S] }
seed_chat = { from = "intl-b", to = "intl-a" }
test_chat = { from = "intl-b", to = "china-d" }
delay_s = 1

[[experiment]]
kind = "surveillance"
name = "pictures"
items = { id = [IMAGES_B] }
seed_chat = { from = "intl-c", to = "intl-a" }
test_chat = { from = "intl-c", to = "china-c" }
delay_s = 1
"#
        .replace("IMAGES_S", &crate::util::corpus_images('s'))
        .replace("IMAGES_B", &crate::util::corpus_images('b')),
    )
    .unwrap();
    // The censor: the sensitive keywords, and two file names (a file
    // message's body is its upload URL, which holds the name).
    let mut censored: Vec<String> = csv_maps(&d.join("corpus/keywords.csv"))
        .into_iter()
        .filter(|r| r["label"] == "sensitive")
        .map(|r| r["keyword"].clone())
        .collect();
    censored.extend(["img-s02".to_string(), "doc-s01".to_string()]);
    let keywords = d.join("censored.txt");
    std::fs::write(&keywords, censored.join("\n")).unwrap();
    let target = Target::start(&d.join("probes/accounts.testbed.toml"), &keywords);
    let r = chatprobe_ok(&[
        "run",
        s(&spec),
        "--results",
        s(&c.results()),
        "--quiet",
        "--base-url",
        &target.url,
    ]);
    assert!(r.stdout.contains("complete"), "{}", r.stdout);
    let run = c.run_dir();
    // What each send carried (its text, or its file's name), from the journal.
    let markers = crate::run::markers(&run);
    let dropped = target.dropped();
    let sends = csv_maps(&run.join("sends.csv"));
    let plan = csv_maps(&run.join("plan.csv"));
    assert_eq!(sends.len(), plan.len(), "one attempt per planned send");
    let mut blocked = 0;
    let mut files = [0, 0];
    let mut distances = Vec::new();
    for r in &sends {
        let marker = &markers[&r["send_id"]][0];
        let hit = |b: &String| {
            if r["content_kind"] == "text" {
                b == marker
            } else {
                b.contains(marker.as_str())
            }
        };
        let want = if dropped.iter().any(hit) {
            "blocked"
        } else {
            "delivered"
        };
        assert_eq!(r["outcome"], want, "{marker}: {r:?}");
        blocked += (want == "blocked") as usize;
        if r["content_kind"] != "text" {
            files[(want == "blocked") as usize] += 1;
        }
        if r["content_kind"] == "image" && want == "delivered" {
            let d: u32 = r["match_distance"].parse().unwrap();
            assert!(d <= 12, "{r:?}");
            distances.push(d);
        }
    }
    // Files of both fates: img-s02 and doc-s01 (seed, test, control) dropped.
    assert_eq!(files[1], 6, "{files:?}");
    assert_eq!(files[0], 72, "{files:?}");
    // Every drop was a probe (never a sentinel), and there were some of
    // each: a combination, its parts alone, and benign controls.
    assert_eq!(dropped.len(), blocked, "{dropped:?}");
    assert!(dropped.iter().all(|b| !b.starts_with("chatprobe sentinel")));
    let trials = csv_maps(&run.join("trials.csv"));
    let verdict = |p: &str| {
        trials
            .iter()
            .find(|t| t["parameter"] == p)
            .map(|t| t["verdict"].clone())
            .unwrap_or_else(|| panic!("no trial for {p}"))
    };
    assert_eq!(verdict("习近平+小熊维尼"), "blocked");
    assert_eq!(verdict("习近平"), "evaded");
    assert_eq!(verdict("火锅+朋友"), "evaded");
    assert!(blocked >= 5, "{blocked} blocked");
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("run.json")).unwrap()).unwrap();
    let t = |k: &str| chrono::DateTime::parse_from_rfc3339(m[k].as_str().unwrap()).unwrap();
    let secs = (t("finished_at") - t("started_at")).num_milliseconds() as f64 / 1000.0;
    distances.sort();
    eprintln!("xmpp: pHash bits between the receiver's and the sender's picture: {distances:?}");
    eprintln!(
        "xmpp: {} sends ({} files), {blocked} blocked = {} drops in Prosody's log, {} delivered, 0 lost, 0 error; {secs:.1} s in all, {:.2} s a send",
        sends.len(),
        files[0] + files[1],
        dropped.len(),
        sends.len() - blocked,
        secs / sends.len() as f64
    );
}
