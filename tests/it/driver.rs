//! The WebDriver driver against the testbed (wechat-2020 policy, sped up)
//! through real headless Chromium: outcomes, groups, session loss, refusal,
//! remote endpoints.

use std::time::Duration;

use chatprobe::accounts::Accounts;
use chatprobe::corpus::transform::Transform;
use chatprobe::dataset::{Failure, Outcome};
use chatprobe::platform::identity::Candidate;
use chatprobe::platform::profile::Profile;
use chatprobe::platform::webdriver::WebDriverPlatform;
use chatprobe::platform::{
    chat_key, stage_file, transmit, Payload, Platform, Probe, Recognised, Target, Transmission,
    Waits,
};
use chatprobe::testbed::{Config, Testbed};

use crate::testbed::corpus_file;
use crate::util::{chatprobe, root, s};

struct Rig {
    tb: Testbed,
    platform: WebDriverPlatform,
    accounts: Accounts,
    dir: tempfile::TempDir,
    n: std::cell::Cell<u32>,
}

async fn rig(webdriver: &[String]) -> Rig {
    rig_with(webdriver, "testbed.toml").await
}

/// A rig through `profile` (a testbed-noids profile serves the client
/// without ids).
async fn rig_with(webdriver: &[String], profile: &str) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    // Inspection median 20 s × 0.02 = 0.4 s; every seed inspected.
    let policy = crate::testbed::shipped_wechat_policy(
        dir.path(),
        &[
            ("time_scale = 1.0", "time_scale = 0.02"),
            ("probability = 0.82", "probability = 1.0"),
        ],
    );
    let accounts_path = root().join("probes/accounts.testbed.toml");
    let profile = Profile::load(&root().join("probes/profiles").join(profile)).unwrap();
    let mut config = Config::new(&policy, &accounts_path);
    config.no_ids = profile.testbed_no_ids;
    let tb = Testbed::start(&config).await.unwrap();
    let accounts = Accounts::load(&accounts_path).unwrap();
    let platform =
        WebDriverPlatform::new(profile, accounts.clone(), &tb.url(), webdriver, true).unwrap();
    Rig {
        tb,
        platform,
        accounts,
        dir,
        n: std::cell::Cell::new(0),
    }
}

impl Rig {
    /// A probe file with a unique name (the marker) and the given bytes.
    fn file(&self, bytes: &[u8], ext: &str) -> Payload {
        self.n.set(self.n.get() + 1);
        let src = self.dir.path().join(format!("src.{ext}"));
        std::fs::write(&src, bytes).unwrap();
        let dst = self.dir.path().join("staged");
        std::fs::create_dir_all(&dst).unwrap();
        Payload::File(stage_file(&src, &dst, &format!("n{}", self.n.get())).unwrap())
    }

    async fn send(
        &self,
        from: &str,
        to: Target,
        observer: &str,
        payload: Payload,
    ) -> chatprobe::platform::Observation {
        self.n.set(self.n.get() + 1);
        let t = Transmission {
            from: from.into(),
            to,
            observer: observer.into(),
            payload,
            sentinel: true,
        };
        let limits = Waits {
            deliver_timeout: Duration::from_secs(6),
            after_sentinel: Duration::from_millis(1500),
            poll: Duration::from_millis(100),
        };
        transmit(
            &self.platform,
            &self.accounts,
            &t,
            &limits,
            &format!("s{}", self.n.get()),
        )
        .await
        .unwrap()
    }

    /// A direct message from intl-a to `to`, watched on `to`'s side.
    async fn to(&self, to: &str, payload: Payload) -> chatprobe::platform::Observation {
        self.send("intl-a", direct(to), to, payload).await
    }

    async fn stop(self) {
        self.platform.close().await;
        self.tb.stop().await;
    }
}

fn direct(a: &str) -> Target {
    Target::Direct(a.into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeded_images_and_keywords_are_blocked_for_china_and_controls_delivered() {
    let rig = rig(&[]).await;
    let result = async {
        let seeded = corpus_file("images/img-s06.png", Some((Transform::Fresh, 11)));
        let control = corpus_file("images/img-s06.png", Some((Transform::Fresh, 12)));
        let seed = rig.to("intl-b", rig.file(&seeded, "png")).await;
        assert_eq!(seed.outcome, Outcome::Delivered, "{seed:?}");
        assert!(seed.latency_ms.unwrap() >= 0);
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let test = rig.to("china-c", rig.file(&seeded, "png")).await;
        assert_eq!(test.outcome, Outcome::Blocked, "{test:?}");
        assert!(test.sentinel_observed_at.is_some() && test.observed_at.is_none());
        let ctl = rig.to("china-c", rig.file(&control, "png")).await;
        assert_eq!(ctl.outcome, Outcome::Delivered, "{ctl:?}");

        let kw = rig
            .to("china-c", Payload::Text("纪念六四 天安门".into()))
            .await;
        assert_eq!(kw.outcome, Outcome::Blocked, "{kw:?}");
        let ok = rig
            .to("china-c", Payload::Text("今天天气不错".into()))
            .await;
        assert_eq!(ok.outcome, Outcome::Delivered, "{ok:?}");
        // The same texts again: an earlier copy in the chat is never taken
        // for the new one, in either direction.
        let again = rig
            .to("china-c", Payload::Text("今天天气不错".into()))
            .await;
        assert_eq!(again.outcome, Outcome::Delivered);
        let kw2 = rig
            .to("china-c", Payload::Text("纪念六四 天安门".into()))
            .await;
        assert_eq!(kw2.outcome, Outcome::Blocked);
    }
    .await;
    rig.stop().await;
    result
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_in_group_chats() {
    let rig = rig(&[]).await;
    let result = async {
        let seeded = corpus_file("documents/doc-s03.pdf", Some((Transform::Fresh, 21)));
        let control = corpus_file("documents/doc-s03.pdf", Some((Transform::Fresh, 22)));
        let g = |n: &str| Target::Group(n.into());
        let seed = rig
            .send(
                "intl-a",
                g("seed-group"),
                "intl-c",
                rig.file(&seeded, "pdf"),
            )
            .await;
        assert_eq!(seed.outcome, Outcome::Delivered, "{seed:?}");
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let test = rig
            .send(
                "intl-a",
                g("test-group"),
                "china-c",
                rig.file(&seeded, "pdf"),
            )
            .await;
        assert_eq!(test.outcome, Outcome::Blocked, "{test:?}");
        let ctl = rig
            .send(
                "intl-a",
                g("test-group"),
                "china-c",
                rig.file(&control, "pdf"),
            )
            .await;
        assert_eq!(ctl.outcome, Outcome::Delivered, "{ctl:?}");
        let kw = rig
            .send(
                "intl-a",
                g("test-group"),
                "china-c",
                Payload::Text("法轮功".into()),
            )
            .await;
        assert_eq!(kw.outcome, Outcome::Blocked);
        // The group index is not the direct one: the seed did not reach it.
        let direct_test = rig.to("china-c", rig.file(&seeded, "pdf")).await;
        assert_eq!(direct_test.outcome, Outcome::Delivered, "{direct_test:?}");
    }
    .await;
    rig.stop().await;
    result
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_chromedriver_is_an_error_not_a_block_and_the_next_send_works() {
    let rig = rig(&[]).await;
    let result = async {
        let first = rig.to("intl-b", Payload::Text("hello".into())).await;
        assert_eq!(first.outcome, Outcome::Delivered);
        let pid = rig.platform.chromedriver_pid().unwrap();
        let bytes = corpus_file("images/img-b04.png", Some((Transform::Fresh, 31)));
        let killer = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(150)).await;
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        });
        let hit = rig.to("intl-b", rig.file(&bytes, "png")).await;
        killer.await.unwrap();
        assert_eq!(hit.outcome, Outcome::Error, "{hit:?}");
        assert_eq!(hit.failure, Some(Failure::SessionLost), "{hit:?}");
        let next = rig.to("intl-b", rig.file(&bytes, "png")).await;
        assert_eq!(next.outcome, Outcome::Delivered, "{next:?}");
        assert_ne!(
            rig.platform.chromedriver_pid(),
            Some(pid),
            "a new chromedriver"
        );
    }
    .await;
    rig.stop().await;
    result
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_endpoint_gets_files_through_selenium_upload() {
    let driver = crate::browser::Driver::start();
    let rig = rig(std::slice::from_ref(&driver.url)).await;
    let result = async {
        assert_eq!(rig.platform.endpoint_info().kind, "remote");
        let bytes = corpus_file("images/img-b09.jpg", Some((Transform::Fresh, 41)));
        let o = rig.to("intl-b", rig.file(&bytes, "jpg")).await;
        assert_eq!(o.outcome, Outcome::Delivered, "{o:?}");
    }
    .await;
    rig.stop().await;
    result
}

#[test]
fn a_send_to_an_unknown_alias_is_refused_before_any_browser_action() {
    // An unreachable WebDriver URL: any browser action would fail differently.
    let accounts = root().join("probes/accounts.testbed.toml");
    let r = chatprobe(&[
        "send",
        "--accounts",
        accounts.to_str().unwrap(),
        "--from",
        "intl-a",
        "--to",
        "mallory",
        "--text",
        "hi",
        "--webdriver",
        "http://127.0.0.1:9",
    ]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("`mallory` is not in the accounts file"),
        "{}",
        r.stderr
    );
    assert!(r.stdout.is_empty());
    let r = chatprobe(&[
        "send",
        "--accounts",
        accounts.to_str().unwrap(),
        "--from",
        "intl-a",
        "--group",
        "secret-group",
        "--text",
        "hi",
        "--webdriver",
        "http://127.0.0.1:9",
    ]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("secret-group"), "{}", r.stderr);
}

#[test]
fn chatprobe_send_runs_the_whole_chain_from_the_command_line() {
    let accounts = root().join("probes/accounts.testbed.toml");
    let img = root().join("corpus/images/img-b01.jpg");
    let r = chatprobe(&[
        "send",
        "--accounts",
        accounts.to_str().unwrap(),
        "--from",
        "intl-a",
        "--to",
        "intl-b",
        "--file",
        img.to_str().unwrap(),
        "--policy",
        root().join("probes/policies/open.toml").to_str().unwrap(),
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: serde_json::Value = serde_json::from_str(r.stdout.trim()).unwrap();
    assert_eq!(v["outcome"], "delivered");
    assert!(v["marker"].as_str().unwrap().starts_with("img-b01-"));
    assert!(
        !r.stdout.contains("alice") && !r.stdout.contains("testbed-alice"),
        "aliases only"
    );
}

#[test]
fn chatprobe_send_exits_1_when_it_could_not_measure() {
    // A text box the client does not have: the send is an `error`, which is
    // no measurement. The observation is still printed, and the exit is 1.
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(root().join("probes/profiles/testbed.toml")).unwrap();
    let changed = text
        .replace(
            "text_input = \"#text-input\"",
            "text_input = \"#no-text-input\"",
        )
        .replace("page_load_ms = 20000", "page_load_ms = 3000");
    assert!(changed.contains("#no-text-input") && changed.contains("= 3000"));
    let profile = dir.path().join("testbed.toml");
    std::fs::write(&profile, changed).unwrap();
    let r = chatprobe(&[
        "send",
        "--accounts",
        s(&root().join("probes/accounts.testbed.toml")),
        "--profile",
        s(&profile),
        "--from",
        "intl-a",
        "--to",
        "intl-b",
        "--text",
        "hello",
        "--policy",
        s(&root().join("probes/policies/open.toml")),
    ]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    let v: serde_json::Value = serde_json::from_str(r.stdout.trim()).unwrap();
    assert_eq!(v["outcome"], "error");
    assert!(r.stderr.contains("could not be measured"), "{}", r.stderr);
}

#[test]
fn login_keeps_a_persistent_browser_profile_per_alias() {
    let dir = tempfile::tempdir().unwrap();
    let profile = std::fs::read_to_string(root().join("probes/profiles/testbed.toml"))
        .unwrap()
        .replace("[browser]\n", "[browser]\nprofile_dir = \"browsers\"\n");
    let p = dir.path().join("testbed.toml");
    std::fs::write(&p, profile).unwrap();
    let accounts = root().join("probes/accounts.testbed.toml");
    let policy = root().join("probes/policies/open.toml");
    let args = [
        "login",
        "intl-a",
        "--accounts",
        accounts.to_str().unwrap(),
        "--profile",
        p.to_str().unwrap(),
        "--headless",
        "--wait",
        "20",
        "--policy",
        policy.to_str().unwrap(),
    ];
    let r = chatprobe(&args);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let kept = dir.path().join("browsers/intl-a");
    assert!(r.stdout.contains(kept.to_str().unwrap()), "{}", r.stdout);
    assert!(
        kept.join("Default").is_dir(),
        "Chromium wrote its profile there"
    );
    // Again: the same profile opens (its lock was released).
    assert_eq!(chatprobe(&args).code, 0);
    // The stock testbed profile keeps no browser profiles: bad input.
    let r = chatprobe(&[
        "login",
        "intl-a",
        "--accounts",
        accounts.to_str().unwrap(),
        "--profile",
        root()
            .join("probes/profiles/testbed.toml")
            .to_str()
            .unwrap(),
        "--headless",
    ]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("browser.profile_dir"), "{}", r.stderr);
}

/// The photographed pictures of `alias`'s open chat, once it shows `n` of
/// them (each look is a WebDriver round trip; at most 20 s).
async fn pictures(p: &WebDriverPlatform, alias: &str, n: usize) -> Vec<chatprobe::platform::Seen> {
    let t0 = std::time::Instant::now();
    loop {
        let pics: Vec<_> = p
            .look(alias)
            .await
            .unwrap()
            .into_iter()
            .filter(|m| m.picture.is_some())
            .collect();
        if pics.len() >= n {
            return pics;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "{alias} shows {} of {n} pictures",
            pics.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Two fresh copies of one picture (pHash 0–2 bits apart) in flight in one
/// chat of a client without ids are told apart by their pixels; the same
/// picture under two names cannot be, and such a probe is `lost`
/// (`ambiguous_image`), never delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_fresh_copies_in_flight_are_told_apart_by_their_pixels() {
    let rig = rig_with(&[], "testbed-noids.toml").await;
    let result = async {
        let p = &rig.platform;
        let a = rig.file(
            &corpus_file("images/img-b03.jpg", Some((Transform::Fresh, 1))),
            "jpg",
        );
        let b = rig.file(
            &corpus_file("images/img-b03.jpg", Some((Transform::Fresh, 2))),
            "jpg",
        );
        for alias in ["intl-a", "intl-b"] {
            p.ensure_session(alias).await.unwrap();
        }
        p.open_chat("intl-b", &direct("intl-a")).await.unwrap();
        p.open_chat("intl-a", &direct("intl-b")).await.unwrap();
        let (pa, pb) = (Probe::new(p, &a), Probe::new(p, &b));
        // Both sent, each kept as the sender's own chat shows it (what
        // chatprobe compares with), neither recognised yet: both in flight.
        for (n, (payload, probe)) in [(&a, &pa), (&b, &pb)].into_iter().enumerate() {
            p.send("intl-a", payload).await.unwrap();
            let pics = pictures(p, "intl-a", n + 1).await;
            probe.remember_shown(&pics[n..]);
        }
        // Both arrive (the open policy of intl accounts delivers them).
        let bubbles = pictures(p, "intl-b", 2).await;
        let others: Vec<_> = [&pa, &pb]
            .iter()
            .map(|x| x.candidate().unwrap().clone())
            .collect();
        assert!(others.iter().all(|c| c.shown.get().is_some()));
        let (ca, cb) = (&others[0].picture, &others[1].picture);
        eprintln!(
            "pHash distance between the copies: {} bits",
            ca.phash.distance(cb.phash)
        );
        assert!(ca.phash.distance(cb.phash) <= 4);
        let mut margins = Vec::new();
        for (bubble, mine, other) in [(&bubbles[0], &pa, &pb), (&bubbles[1], &pb, &pa)] {
            match mine.check(bubble, &others) {
                Recognised::Yes { distance, margin } => {
                    assert!(distance.unwrap() <= 12);
                    margins.push(margin.unwrap());
                }
                r => {
                    let dims = |c: &Candidate| c.shown.get().map(|p| p.grey.dimensions());
                    let g = &bubble.picture.as_ref().unwrap().grey;
                    let pos: Vec<_> = bubbles
                        .iter()
                        .map(|b| {
                            let g = &b.picture.as_ref().unwrap().grey;
                            chatprobe::platform::identity::position(g, &others[0], &others[1])
                        })
                        .collect();
                    panic!(
                        "not recognised: {r:?}; bubble {:?}, shown {:?} {:?}, positions of the bubbles between a and b: {pos:?}",
                        g.dimensions(),
                        dims(&others[0]),
                        dims(&others[1])
                    )
                }
            }
            assert_eq!(other.check(bubble, &others), Recognised::No);
        }
        eprintln!("margins (z, 1 = exactly this copy): {margins:?}");
        assert!(margins.iter().all(|z| *z >= 0.5), "{margins:?}");
        // The same pixels under another name, in flight: nobody can say
        // which arrived.
        let twin = rig.file(
            &corpus_file("images/img-b03.jpg", Some((Transform::Fresh, 3))),
            "jpg",
        );
        let Payload::File(twin_path) = &twin else {
            unreachable!()
        };
        let copy = twin_path.with_file_name("twin-copy.jpg");
        std::fs::copy(twin_path, &copy).unwrap();
        let t = Transmission {
            from: "intl-a".into(),
            to: direct("intl-b"),
            observer: "intl-b".into(),
            payload: twin.clone(),
            sentinel: true,
        };
        p.in_flight().unwrap().add(
            &chat_key(&t),
            std::sync::Arc::new(Candidate::load(&copy).unwrap()),
            Duration::from_secs(60),
        );
        let o = rig.to("intl-b", twin).await;
        assert_eq!(o.outcome, Outcome::Lost, "{o:?}");
        assert_eq!(o.failure, Some(Failure::AmbiguousImage), "{o:?}");
    }
    .await;
    rig.stop().await;
    result
}
