//! A platform, a client and a censor nobody here wrote: Prosody +
//! Converse.js + mod_firewall, started by `chatprobe xmpp`, driven through
//! `probes/profiles/converse.toml` alone, and checked against Prosody's own
//! records: the log of what it dropped and the archive of what it routed.
//! Both of Converse 14's layouts are driven: fullscreen with a shared
//! roster, and overlayed with empty rosters on another domain.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use crate::run::Campaign;
use crate::util::{chatprobe_ok, csv_maps, root, s};

/// `chatprobe xmpp` in its own process; killed on drop.
struct Target {
    child: Child,
    url: String,
    dir: tempfile::TempDir,
    domain: String,
}

impl Target {
    fn start(accounts: &Path, keywords: &Path, domain: &str, roster: bool) -> Target {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_chatprobe"));
        cmd.args([
            "xmpp",
            "--accounts",
            s(accounts),
            "--keywords",
            s(keywords),
            "--converse",
            s(&root().join("third_party/node_modules/converse.js/dist")),
            "--dir",
            s(&dir.path().join("xmpp")),
            "--domain",
            domain,
        ]);
        if !roster {
            cmd.arg("--no-roster");
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let url = crate::util::listening_url(&mut child);
        Target {
            child,
            url,
            dir,
            domain: domain.to_string(),
        }
    }

    /// The bodies Prosody's censor dropped.
    fn dropped(&self) -> Vec<String> {
        chatprobe::targets::xmpp::read_drops(&self.dir.path().join("xmpp/prosody.log"))
            .into_iter()
            .map(|d| d.body)
            .collect()
    }

    /// The bodies in `login`'s archive: what Prosody routed to or from them.
    fn archived(&self, login: &str) -> Vec<String> {
        chatprobe::targets::xmpp::read_archive(&self.dir.path().join("xmpp"), &self.domain, login)
    }
}

impl Target {
    /// Stop it as Ctrl-C would and wait: Prosody closes its stores (an
    /// archive read while Prosody writes it can be empty).
    fn stop(&mut self) {
        chatprobe::process::stop_gently(&mut self.child, std::time::Duration::from_secs(15));
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A campaign folder with the Converse profile, its variables set.
fn campaign(variables: &[(&str, &str)]) -> Campaign {
    let c = Campaign::new("1.0", "", "");
    let mut profile =
        std::fs::read_to_string(root().join("probes/profiles/converse.toml")).unwrap();
    for (k, v) in variables {
        let line = profile
            .lines()
            .find(|l| l.starts_with(&format!("{k} = ")))
            .unwrap_or_else(|| panic!("no variable {k}"))
            .to_string();
        profile = profile.replace(&line, &format!("{k} = \"{v}\""));
    }
    std::fs::write(c.dir.path().join("probes/profiles/converse.toml"), profile).unwrap();
    c
}

/// What a run looked like against Prosody's records.
struct Checked {
    sends: usize,
    blocked: usize,
    /// Files delivered and blocked.
    files: [usize; 2],
    /// pHash bits between each delivered picture and the sender's own.
    distances: Vec<u32>,
    trials: Vec<HashMap<String, String>>,
    secs: f64,
}

/// Run `spec` against `target` and check every send against Prosody:
/// its outcome is what Prosody did (dropped, or routed), every probe is on
/// the platform exactly once (one drop, or one message in the receiver's
/// archive, never both, never twice), and every delivered picture was
/// recognised within the profile's 12 bits.
fn run_and_check(c: &Campaign, spec: &Path, target: &mut Target) -> Checked {
    let r = chatprobe_ok(&[
        "run",
        s(spec),
        "--results",
        s(&c.results()),
        "--quiet",
        "--base-url",
        &target.url,
    ]);
    assert!(r.stdout.contains("complete"), "{}", r.stdout);
    target.stop();
    let run = c.run_dir();
    // What each send carried (its text, or its file's name), from the journal.
    let markers = crate::run::markers(&run);
    let logins: HashMap<String, String> =
        chatprobe::accounts::Accounts::load(&c.dir.path().join("probes/accounts.testbed.toml"))
            .unwrap()
            .accounts
            .into_iter()
            .map(|a| (a.alias, a.login))
            .collect();
    let mut archives: HashMap<String, Vec<String>> = HashMap::new();
    let dropped = target.dropped();
    let sends = csv_maps(&run.join("sends.csv"));
    let plan = csv_maps(&run.join("plan.csv"));
    assert_eq!(sends.len(), plan.len(), "one attempt per planned send");
    let mut out = Checked {
        sends: sends.len(),
        blocked: 0,
        files: [0, 0],
        distances: Vec::new(),
        trials: csv_maps(&run.join("trials.csv")),
        secs: 0.0,
    };
    for r in &sends {
        let text = r["content_kind"] == "text";
        let hit = |marker: &String, b: &String| {
            if text {
                b == marker
            } else {
                b.contains(marker.as_str())
            }
        };
        let archive = archives
            .entry(r["receiver"].clone())
            .or_insert_with(|| target.archived(&logins[&r["receiver"]]));
        let (mut drops, mut routed) = (0, 0);
        for m in &markers[&r["send_id"]] {
            drops += dropped.iter().filter(|b| hit(m, b)).count();
            routed += archive.iter().filter(|b| hit(m, b)).count();
        }
        let marker = &markers[&r["send_id"]][0];
        // The first line says what went wrong (CI shows the start of it).
        assert_eq!(
            drops + routed,
            1,
            "{} {} ended {} {}, on the platform {drops} + {routed} times ({} bodies in {}'s archive): {}; {r:?}",
            r["content_kind"],
            r["send_id"],
            r["outcome"],
            r["failure"],
            archive.len(),
            r["receiver"],
            r["error"],
        );
        let want = if drops == 1 { "blocked" } else { "delivered" };
        assert_eq!(r["outcome"], want, "{marker}: {r:?}");
        out.blocked += (want == "blocked") as usize;
        if !text {
            out.files[(want == "blocked") as usize] += 1;
        }
        if r["content_kind"] == "image" && want == "delivered" {
            let d: u32 = r["match_distance"].parse().unwrap();
            assert!(d <= 12, "{r:?}");
            out.distances.push(d);
        }
    }
    // Every drop was a probe (never a sentinel).
    assert_eq!(dropped.len(), out.blocked, "{dropped:?}");
    assert!(dropped.iter().all(|b| !b.starts_with("chatprobe sentinel")));
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("run.json")).unwrap()).unwrap();
    let t = |k: &str| chrono::DateTime::parse_from_rfc3339(m[k].as_str().unwrap()).unwrap();
    out.secs = (t("finished_at") - t("started_at")).num_milliseconds() as f64 / 1000.0;
    out.distances.sort();
    out
}

/// The censor's list: `keywords.csv`'s sensitive rows (if `keywords`) and
/// file names (a file message's body is its upload URL, which holds the
/// name).
fn censor(c: &Campaign, keywords: bool, names: &[&str]) -> std::path::PathBuf {
    let d = c.dir.path();
    let mut censored: Vec<String> = csv_maps(&d.join("corpus/keywords.csv"))
        .into_iter()
        .filter(|r| keywords && r["label"] == "sensitive")
        .map(|r| r["keyword"].clone())
        .collect();
    censored.extend(names.iter().map(|n| n.to_string()));
    let path = d.join("censored.txt");
    std::fs::write(&path, censored.join("\n")).unwrap();
    path
}

fn report(layout: &str, k: &Checked) {
    eprintln!(
        "xmpp {layout}: pHash bits between the receiver's and the sender's picture: {:?}",
        k.distances
    );
    eprintln!(
        "xmpp {layout}: {} sends ({} files), {} blocked = drops in Prosody's log, {} delivered = messages in its archive, each once; {:.1} s in all, {:.2} s a send",
        k.sends,
        k.files[0] + k.files[1],
        k.blocked,
        k.sends - k.blocked,
        k.secs,
        k.secs / k.sends as f64
    );
}

#[test]
fn converse_on_prosody_outcomes_equal_prosodys_drop_log() {
    // The campaign's corpus and accounts; the spec names the Converse
    // profile as shipped (fullscreen, domain localhost).
    let c = campaign(&[]);
    let d = c.dir.path();
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
    // The censor: the sensitive keywords, and two file names.
    let keywords = censor(&c, true, &["img-s02", "doc-s01"]);
    let mut target = Target::start(
        &d.join("probes/accounts.testbed.toml"),
        &keywords,
        "localhost",
        true,
    );
    let k = run_and_check(&c, &spec, &mut target);
    // Files of both fates: img-s02 and doc-s01 (seed, test, control) dropped.
    assert_eq!(k.files, [72, 6]);
    // Some texts of each fate: a combination, its parts alone, and benign
    // controls.
    let verdict = |p: &str| {
        k.trials
            .iter()
            .find(|t| t["parameter"] == p)
            .map(|t| t["verdict"].clone())
            .unwrap_or_else(|| panic!("no trial for {p}"))
    };
    assert_eq!(verdict("习近平+小熊维尼"), "blocked");
    assert_eq!(verdict("习近平"), "evaded");
    assert_eq!(verdict("火锅+朋友"), "evaded");
    assert!(k.blocked >= 5, "{} blocked", k.blocked);
    report("fullscreen", &k);
}

#[test]
fn converse_overlayed_with_strangers_on_another_domain() {
    // Converse's default layout, no one in anyone's roster, and an XMPP
    // domain that is not localhost: the profile's variables say so.
    let c = campaign(&[("domain", "chat.test"), ("page", "overlayed.html")]);
    let d = c.dir.path();
    let spec = d.join("probes/xmpp.toml");
    std::fs::write(
        &spec,
        r#"name = "xmpp-overlayed"
seed = 12
accounts = "accounts.testbed.toml"
profile = "profiles/converse.toml"
corpus = "../corpus"

[limits]
sends_per_minute = 120
parallel_pairs = 2
deliver_timeout_s = 10
after_sentinel_s = 1.5

# Every starter-corpus image: a seed between intl accounts, then the seeded
# copy and a fresh control, over two pairs of chats.
[[experiment]]
kind = "surveillance"
name = "small"
items = { id = [IMAGES_S] }
seed_chat = { from = "intl-a", to = "intl-b" }
test_chat = { from = "intl-a", to = "china-c" }
delay_s = 1

[[experiment]]
kind = "surveillance"
name = "big"
items = { id = [IMAGES_B] }
seed_chat = { from = "intl-c", to = "intl-b" }
test_chat = { from = "intl-c", to = "china-d" }
delay_s = 1
"#
        .replace("IMAGES_S", &crate::util::corpus_images('s'))
        .replace("IMAGES_B", &crate::util::corpus_images('b')),
    )
    .unwrap();
    let keywords = censor(&c, false, &["img-b03"]);
    let mut target = Target::start(
        &d.join("probes/accounts.testbed.toml"),
        &keywords,
        "chat.test",
        false,
    );
    let k = run_and_check(&c, &spec, &mut target);
    // img-b03's seed, test and control dropped; every other picture routed.
    assert_eq!(k.files, [69, 3]);
    report("overlayed", &k);
}
