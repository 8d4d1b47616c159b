//! The driver's classification on the simulated platform, in virtual time
//! (tokio's paused clock): outcomes against the platform's own decisions,
//! the tag identity, surveillance by hash index, and what a lost sentinel
//! or a lost probe does to a verdict.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chatprobe::corpus::hash::md5_hex;
use chatprobe::dataset::Outcome;
use chatprobe::platform::identity::{tagged, Identity, TextRule};
use chatprobe::platform::sim::{SimConfig, SimPlatform};
use chatprobe::platform::{
    sentinel_text, transmit_checked, Observation, Payload, Platform, Target, Transmission, Waits,
};

fn config() -> SimConfig {
    SimConfig {
        accounts: ["intl-a", "intl-b", "china-c"].map(String::from).to_vec(),
        china: HashSet::from(["china-c".to_string()]),
        groups: HashMap::new(),
        keywords: vec!["法轮功".into(), "习近平+小熊维尼".into()],
        sensitive_md5: HashSet::new(),
        sensitive_names: Vec::new(),
        inspect_probability: 1.0,
        inspect_delay: Duration::from_secs(20),
        inspect_delay_to: None,
        latency: Duration::from_millis(300),
        loss: 0.0,
        fail_before: 0.0,
        fail_after: 0.0,
        own_view_misses: 0.0,
        seed: 1,
        identity: Identity {
            text: TextRule::Nonce,
            ..Identity::default()
        },
        window: None,
        outage: None,
    }
}

const LIMITS: Waits = Waits {
    deliver_timeout: Duration::from_secs(10),
    after_sentinel: Duration::from_secs(2),
    poll: Duration::from_millis(100),
};

async fn send(p: &SimPlatform, from: &str, to: &str, payload: Payload, nonce: &str) -> Observation {
    let t = Transmission {
        from: from.into(),
        to: Target::Direct(to.into()),
        observer: to.into(),
        payload,
        sentinel: true,
    };
    transmit_checked(p, &t, &LIMITS, nonce).await
}

#[tokio::test(start_paused = true)]
async fn keywords_are_blocked_for_china_by_their_tag_and_only_with_every_part() {
    let p = SimPlatform::new(config());
    let cases = [
        ("纪念 法轮功", "china-c", Outcome::Blocked),
        ("纪念 法轮功", "intl-b", Outcome::Delivered),
        ("习近平", "china-c", Outcome::Delivered),
        ("习近平 和 小熊维尼", "china-c", Outcome::Blocked),
        ("今天天气不错", "china-c", Outcome::Delivered),
        // The same text again: the tag tells it from the first.
        ("今天天气不错", "china-c", Outcome::Delivered),
    ];
    for (k, (words, to, want)) in cases.into_iter().enumerate() {
        let nonce = format!("{k:012x}");
        let o = send(
            &p,
            "intl-a",
            to,
            Payload::Text(tagged(words, &nonce)),
            &nonce,
        )
        .await;
        assert_eq!(o.outcome, want, "{words} → {to}: {o:?}");
    }
    // Every sentinel was delivered (the tag cannot complete a keyword).
    let truth = p.truth();
    assert!(truth
        .iter()
        .filter(|d| d.marker.starts_with("chatprobe sentinel"))
        .all(|d| d.decision == "delivered"));
    assert_eq!(truth.len(), 12);
    assert!(sentinel_text("x").starts_with("chatprobe sentinel "));
}

#[tokio::test(start_paused = true)]
async fn a_seeded_file_is_blocked_for_china_once_inspected_and_a_fresh_copy_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str, bytes: &[u8]| {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        Payload::File(p)
    };
    let mut c = config();
    c.sensitive_md5.insert(md5_hex(b"sensitive"));
    let p = SimPlatform::new(c);
    let seed = send(
        &p,
        "intl-a",
        "intl-b",
        file("seed-1.txt", b"sensitive"),
        "n1",
    )
    .await;
    assert_eq!(seed.outcome, Outcome::Delivered);
    // Before the inspection is due: still delivered.
    let early = send(
        &p,
        "intl-a",
        "china-c",
        file("early-2.txt", b"sensitive"),
        "n2",
    )
    .await;
    assert_eq!(early.outcome, Outcome::Delivered, "{early:?}");
    // Virtual time: the inspection falls due.
    assert!(!p.indexed(&md5_hex(b"sensitive")));
    tokio::time::advance(Duration::from_secs(20)).await;
    assert!(p.indexed(&md5_hex(b"sensitive")));
    let test = send(
        &p,
        "intl-a",
        "china-c",
        file("test-3.txt", b"sensitive"),
        "n3",
    )
    .await;
    assert_eq!(test.outcome, Outcome::Blocked, "{test:?}");
    let control = send(
        &p,
        "intl-a",
        "china-c",
        file("ctl-4.txt", b"sensitive "),
        "n4",
    )
    .await;
    assert_eq!(control.outcome, Outcome::Delivered, "{control:?}");
    assert!(control.latency_ms.is_some());
}

/// Over many seeded sends with loss, the driver's outcome always agrees
/// with what the platform did: `delivered` exactly when the probe was; a
/// `blocked` probe was blocked — or lost with its sentinel delivered, which
/// no observer can tell apart (why sends are replicated); `lost` when the
/// sentinel was lost too.
#[tokio::test(start_paused = true)]
async fn outcomes_agree_with_the_platform_under_loss() {
    // Also through a client that shows only its latest messages, as real
    // ones render a window of a long chat.
    for window in [None, Some(8)] {
        let mut c = config();
        c.loss = 0.25;
        c.seed = 7;
        c.window = window;
        let p = SimPlatform::new(c);
        let words = ["法轮功 真相", "你好", "习近平 小熊维尼", "天气"];
        let mut seen = HashMap::new();
        for k in 0..200 {
            let nonce = format!("{k:012x}");
            let text = tagged(words[k % words.len()], &nonce);
            let o = send(&p, "intl-a", "china-c", Payload::Text(text.clone()), &nonce).await;
            let truth = p.truth();
            let of = |m: &str| {
                truth
                    .iter()
                    .rev()
                    .find(|d| d.marker == m)
                    .map(|d| d.decision)
                    .unwrap()
            };
            let (probe, sentinel) = (of(&text), of(&sentinel_text(&nonce)));
            match o.outcome {
                Outcome::Delivered => assert_eq!(probe, "delivered"),
                Outcome::Blocked => {
                    assert_ne!(probe, "delivered");
                    assert_eq!(sentinel, "delivered");
                }
                Outcome::Lost => {
                    assert_ne!(probe, "delivered");
                    assert_ne!(sentinel, "delivered");
                }
                Outcome::Error => panic!("{o:?}"),
            }
            *seen.entry((o.outcome.to_string(), probe)).or_insert(0) += 1;
        }
        // The sender sees its 400 messages, or the window's worth.
        let shown = p.look("intl-a").await.unwrap();
        assert_eq!(shown.len(), window.unwrap_or(400), "{window:?}");
        assert_eq!(
            shown.last().unwrap().text.as_deref(),
            Some(sentinel_text("0000000000c7").as_str())
        );
        // All four kinds happened.
        for kind in [
            (Outcome::Delivered, "delivered"),
            (Outcome::Blocked, "blocked"),
            (Outcome::Blocked, "lost"),
            (Outcome::Lost, "lost"),
        ] {
            let kind = (kind.0.to_string(), kind.1);
            assert!(
                seen.contains_key(&kind),
                "{window:?}: {kind:?} never happened: {seen:?}"
            );
        }
    }
}
