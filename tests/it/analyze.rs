//! `chatprobe analyze` on hand-made datasets that follow docs/DATASET.md, and on
//! bad input. Expected p-values were computed with scipy and statsmodels.

use std::path::Path;

use chatprobe::dataset::{Outcome, SendRow, TrialRow};

use crate::util::{chatprobe, chatprobe_ok, csv_maps, s};

fn trial(
    id: u32,
    name: &str,
    label: &str,
    channel: &str,
    seeded: Outcome,
    control: Outcome,
) -> TrialRow {
    TrialRow {
        run_id: "r1".into(),
        trial_id: format!("t{id}"),
        experiment: "surveillance".into(),
        experiment_name: name.into(),
        item_id: format!("img-{id}"),
        label: label.into(),
        content_kind: "image".into(),
        topic: "june4".into(),
        channel: channel.into(),
        parameter: "30".into(),
        verdict: "surveilled".parse().unwrap(),
        seeded_outcome: Some(seeded),
        control_outcome: Some(control),
    }
}

fn send(
    id: u32,
    experiment: &str,
    offset: Option<f64>,
    transform: &str,
    dist: Option<f64>,
    outcome: Outcome,
) -> SendRow {
    SendRow {
        run_id: "r1".into(),
        trial_id: format!("t{id}"),
        send_id: format!("s{id}"),
        experiment: experiment.into(),
        experiment_name: experiment.into(),
        role: "test".into(),
        item_id: "img-s01".into(),
        variant_id: "img-s01--fresh-s1".into(),
        content_kind: "image".into(),
        label: "sensitive".into(),
        topic: "june4".into(),
        transform: transform.into(),
        md5: "0".repeat(32),
        phash: "0".repeat(16),
        phash_distance: dist,
        channel: "direct".into(),
        chat: "china-c".into(),
        sender: "intl-a".into(),
        sender_region: "intl".into(),
        receiver: "china-c".into(),
        receiver_region: "china".into(),
        scheduled_at: "2026-11-23T10:00:00.000Z".into(),
        sent_at: "2026-11-23T10:00:01.250Z".into(),
        observed_at: String::new(),
        offset_s: offset,
        outcome: Some(outcome),
        failure: String::new(),
        latency_ms: None,
        attempt: Some(1),
        planned_offset_s: None,
        sentinel_observed_at: String::new(),
        error: String::new(),
        nonce: String::new(),
        match_distance: None,
        match_margin: None,
    }
}

fn write<T: serde::Serialize>(path: &Path, rows: &[T]) {
    let mut w = csv::Writer::from_path(path).unwrap();
    for r in rows {
        w.serialize(r).unwrap();
    }
    w.flush().unwrap();
}

pub fn fixture(dir: &Path) {
    use Outcome::*;
    let mut trials = Vec::new();
    // 12 sensitive images in direct chats: 10 seeded blocked, no control blocked.
    for i in 0..12 {
        trials.push(trial(
            i,
            "images",
            "sensitive",
            "direct",
            if i < 10 { Blocked } else { Delivered },
            Delivered,
        ));
    }
    // 5 benign: nothing blocked. One more inconclusive (lost) trial is left out.
    for i in 12..17 {
        trials.push(trial(i, "images", "benign", "direct", Delivered, Delivered));
    }
    trials.push(trial(17, "images", "benign", "direct", Lost, Delivered));
    // Keywords: 法轮功 alone blocks; 刘晓波 alone does not, 刘晓波+诺贝尔 does;
    // 法轮功+天气 blocks too but is not minimal.
    for (i, (k, verdict)) in [
        ("法轮功", "blocked"),
        ("刘晓波", "evaded"),
        ("诺贝尔", "evaded"),
        ("刘晓波+诺贝尔", "blocked"),
        ("法轮功+天气", "blocked"),
        ("天气", "evaded"),
    ]
    .into_iter()
    .enumerate()
    {
        let mut t = trial(
            100 + i as u32,
            "keywords",
            "sensitive",
            "direct",
            Blocked,
            Delivered,
        );
        t.experiment = "keyword".into();
        t.parameter = k.into();
        t.verdict = verdict.parse().unwrap();
        t.seeded_outcome = None;
        t.control_outcome = None;
        trials.push(t);
    }
    let mut sends = Vec::new();
    let mut id = 0;
    // Latency: blocked fraction rises with the offset.
    for (off, blocked) in [(2.0, 0), (5.0, 1), (10.0, 3), (20.0, 4), (40.0, 5)] {
        for k in 0..5 {
            id += 1;
            sends.push(send(
                id,
                "latency",
                Some(off),
                "",
                None,
                if k < blocked { Blocked } else { Delivered },
            ));
        }
    }
    // Transforms: mirror always evades (far), blur:2 never (near).
    for k in 0..6 {
        id += 1;
        sends.push(send(
            id,
            "transform",
            None,
            "mirror",
            Some(28.0 + k as f64),
            Delivered,
        ));
        id += 1;
        sends.push(send(
            id,
            "transform",
            None,
            "blur:2",
            Some(k as f64 % 3.0),
            Blocked,
        ));
        id += 1;
        sends.push(send(
            id,
            "transform",
            None,
            "crop:0.1",
            Some(8.0 + 2.0 * k as f64),
            if k % 2 == 0 { Blocked } else { Delivered },
        ));
    }
    // Expiry: retests every hour; trial A delivered again at 3 h, B at 5 h,
    // C never (censored at 6 h).
    for (trial_no, delivered_from) in [(900, Some(3.0)), (901, Some(5.0)), (902, None)] {
        for h in 1..=6 {
            id += 1;
            let off = h as f64 * 3600.0;
            let blocked = delivered_from.is_none_or(|d: f64| (h as f64) < d);
            let mut r = send(
                id,
                "expiry",
                Some(off),
                "",
                None,
                if blocked { Blocked } else { Delivered },
            );
            r.role = "retest".into();
            r.trial_id = format!("t{trial_no}");
            sends.push(r);
        }
    }
    // Every latency and transform send has its trial, whose verdict the
    // tables count; and three transform trials could not conclude (their
    // prime was delivered: nothing to evade), whose test sends were
    // delivered all the same.
    for r in &sends {
        let verdict = match (r.experiment.as_str(), r.outcome) {
            ("latency", Some(Blocked)) => "surveilled",
            ("latency", Some(Delivered)) => "not_surveilled",
            ("transform", Some(Blocked)) => "blocked",
            ("transform", Some(Delivered)) => "evaded",
            _ => continue,
        };
        trials.push(design_trial(r, verdict));
    }
    for k in 0..3 {
        id += 1;
        let r = send(
            id,
            "transform",
            None,
            "mirror",
            Some(30.0 + k as f64),
            Delivered,
        );
        trials.push(design_trial(&r, "inconclusive"));
        sends.push(r);
    }
    write(&dir.join("trials.csv"), &trials);
    write(&dir.join("sends.csv"), &sends);
}

/// The trial row of a latency or transform test send.
fn design_trial(r: &SendRow, verdict: &str) -> TrialRow {
    TrialRow {
        run_id: r.run_id.clone(),
        trial_id: r.trial_id.clone(),
        experiment: r.experiment.clone(),
        experiment_name: r.experiment_name.clone(),
        item_id: r.item_id.clone(),
        label: r.label.clone(),
        content_kind: r.content_kind.clone(),
        topic: r.topic.clone(),
        channel: r.channel.clone(),
        parameter: r.transform.clone(),
        verdict: verdict.parse().unwrap(),
        seeded_outcome: r.outcome,
        control_outcome: None,
    }
}

#[test]
fn analyze_writes_the_surveillance_latency_and_transform_tables() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    std::fs::create_dir_all(&run).unwrap();
    fixture(&run);
    let r = chatprobe_ok(&["analyze", s(&run)]);
    assert!(r.stdout.contains("70 trials"), "{}", r.stdout);
    let a = run.join("analysis");
    let surv = csv_maps(&a.join("surveillance.csv"));
    assert_eq!(surv.len(), 2);
    let sens = surv.iter().find(|r| r["label"] == "sensitive").unwrap();
    assert_eq!(
        (
            sens["n"].as_str(),
            sens["seeded_blocked"].as_str(),
            sens["control_blocked"].as_str()
        ),
        ("12", "10", "0")
    );
    // The unpaired comparison, kept for earlier readers…
    let p: f64 = sens["fisher_p"].parse().unwrap();
    assert!((p - 6.73038093956118e-05).abs() < 1e-12, "{p}");
    // …and the test: McNemar's exact on the 10 discordant pairs (10 seeded
    // only, 0 control only): 2 · ½¹⁰ (statsmodels: 0.001953125), Holm over
    // the sensitive rows alone, a family of one.
    assert_eq!(
        (sens["seeded_only"].as_str(), sens["control_only"].as_str()),
        ("10", "0")
    );
    assert_eq!(sens["mcnemar_p"], "0.001953125");
    assert_eq!(sens["p_holm"], "0.001953125");
    assert_eq!(sens["holm_family"], "surveillance.csv sensitive rows");
    assert_eq!(
        sens["odds_ratio"], "",
        "infinite odds ratio is missing, not inf"
    );
    let lo: f64 = sens["seeded_ci_low"].parse().unwrap();
    let hi: f64 = sens["seeded_ci_high"].parse().unwrap();
    let (wl, wh) = chatprobe::stats::wilson(10, 12, 0.95).unwrap();
    assert!((lo - wl).abs() < 1e-12 && (hi - wh).abs() < 1e-12);
    let benign = surv.iter().find(|r| r["label"] == "benign").unwrap();
    assert_eq!(benign["n"], "5", "the lost trial is inconclusive");
    assert_eq!(benign["inconclusive"], "1", "and counted apart");
    // Benign content is a specificity control: tested, not a claim.
    assert_eq!(benign["mcnemar_p"], "1.0");
    assert_eq!(
        (benign["p_holm"].as_str(), benign["holm_family"].as_str()),
        ("", "")
    );

    let lat = csv_maps(&a.join("latency.csv"));
    assert_eq!(lat.len(), 5);
    assert_eq!(lat[0]["offset_s"], "2.0");
    assert_eq!(lat[4]["blocked"], "5");
    let npmle: Vec<&str> = lat.iter().map(|r| r["npmle"].as_str()).collect();
    assert_eq!(npmle, ["0.0", "0.2", "0.6", "0.8", "1.0"]);
    // Blocked by 40 s: all; half of them first by 10 s (0.6 ≥ 0.5, 0.2 is
    // not), so the median lies in (5, 10] s; its interval never below 0.
    let med = csv_maps(&a.join("latency_median.csv"));
    assert_eq!(med[0]["inspected"], "1.0");
    assert_eq!(
        (med[0]["median_low_s"].as_str(), med[0]["median_s"].as_str()),
        ("5.0", "10.0")
    );
    let lo: f64 = med[0]["ci_low"].parse().unwrap();
    let hi: f64 = med[0]["ci_high"].parse().unwrap();
    assert!(
        (0.0..=5.0).contains(&lo) && (10.0..=40.0).contains(&hi),
        "{lo}–{hi}"
    );

    // Whole-number columns are written as integers (R and DuckDB read
    // them so), not as 28.0.
    let raw = csv_maps(&run.join("sends.csv"));
    assert!(raw.iter().any(|r| r["phash_distance"] == "28"));
    assert!(raw.iter().all(|r| !r["phash_distance"].contains('.')));

    let tr = csv_maps(&a.join("transforms.csv"));
    let row = |t: &str| tr.iter().find(|r| r["transform"] == t).unwrap().clone();
    assert_eq!(row("mirror")["evasion_rate"], "1.0");
    // The three trials whose prime was delivered evaded nothing: apart.
    assert_eq!(
        (
            row("mirror")["n"].as_str(),
            row("mirror")["evaded"].as_str()
        ),
        ("6", "6")
    );
    assert_eq!(row("mirror")["inconclusive"], "3");
    assert_eq!(row("blur:2")["inconclusive"], "0");
    assert_eq!(row("blur:2")["evaded"], "0");
    assert_eq!(row("crop:0.1")["n"], "6");
    let th = csv_maps(&a.join("threshold.csv"));
    let d50: f64 = th[0]["distance_at_50"].parse().unwrap();
    assert!(d50 > 5.0 && d50 < 28.0, "{d50}");
    assert_eq!(th[0]["n"], "18", "conclusive trials only");

    let kw = csv_maps(&a.join("keywords.csv"));
    let k = |w: &str| kw.iter().find(|r| r["keyword"] == w).unwrap().clone();
    assert_eq!(k("法轮功")["minimal_trigger"], "TRUE");
    assert_eq!(k("刘晓波+诺贝尔")["minimal_trigger"], "TRUE");
    assert_eq!(k("刘晓波+诺贝尔")["parts"], "2");
    assert_eq!(k("法轮功+天气")["minimal_trigger"], "FALSE");
    assert_eq!(k("刘晓波")["minimal_trigger"], "FALSE");

    let ex = csv_maps(&a.join("expiry.csv"));
    let steps: Vec<(f64, f64)> = ex
        .iter()
        .map(|r| {
            (
                r["time_s"].parse().unwrap(),
                r["still_blocked"].parse().unwrap(),
            )
        })
        .collect();
    assert_eq!(steps[0].0, 10800.0);
    assert!((steps[0].1 - 2.0 / 3.0).abs() < 1e-12 && (steps[1].1 - 1.0 / 3.0).abs() < 1e-12);
    assert_eq!(ex[0]["median_s"], "18000.0");
    assert_eq!(ex.last().unwrap()["censored"], "1");

    let tr = csv_maps(&a.join("trend.csv"));
    assert!(tr.iter().all(|r| r["date"] == "2026-11-23"));
    let lat_trend = tr
        .iter()
        .find(|r| r["experiment_name"] == "latency")
        .unwrap();
    assert_eq!(
        (lat_trend["n"].as_str(), lat_trend["blocked"].as_str()),
        ("25", "13")
    );

    // --interval exact and --out elsewhere; a trials.csv alone works too.
    let out = tmp.path().join("elsewhere");
    chatprobe_ok(&[
        "analyze",
        s(&run.join("trials.csv")),
        "--out",
        s(&out),
        "--interval",
        "exact",
    ]);
    let surv = csv_maps(&out.join("surveillance.csv"));
    let sens = surv.iter().find(|r| r["label"] == "sensitive").unwrap();
    let (cl, _) = chatprobe::stats::clopper_pearson(10, 12, 0.95).unwrap();
    assert!((sens["seeded_ci_low"].parse::<f64>().unwrap() - cl).abs() < 1e-12);
}

#[test]
fn analyze_draws_the_plots_and_a_self_contained_report() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    std::fs::create_dir_all(&run).unwrap();
    fixture(&run);
    std::fs::write(
        run.join("run.json"),
        r#"{"run_id": "r1", "software": "chatprobe", "spec_name": "fixture", "seed": 42}"#,
    )
    .unwrap();
    chatprobe_ok(&["analyze", s(&run)]);
    let a = run.join("analysis");
    for name in [
        "latency",
        "transforms",
        "threshold",
        "surveillance_topics",
        "surveillance_items",
    ] {
        let svg = std::fs::read_to_string(a.join(format!("{name}.svg"))).unwrap();
        assert!(svg.contains("<svg") && svg.contains("</svg>"), "{name}.svg");
        let png = image::open(a.join(format!("{name}.png"))).unwrap();
        assert_eq!((png.width(), png.height()), (720, 420), "{name}.png");
        // Something was drawn beyond the white background.
        let rgb = png.to_rgb8();
        let coloured = rgb.pixels().filter(|p| p.0 != [255, 255, 255]).count();
        assert!(
            coloured > 5_000,
            "{name}.png is nearly blank ({coloured} px)"
        );
    }
    let html = std::fs::read_to_string(a.join("report.html")).unwrap();
    // Self-contained: the plots are inline, nothing is loaded from elsewhere.
    // (No effects plot: the fixture's topics have no benign items of
    // other topics to be tested against, and no features for a model.)
    assert_eq!(html.matches("<svg").count(), 5);
    assert!(!a.join("surveillance_effects.svg").exists());
    // One run has no trend to draw: a sentence says so where the plot
    // would be, and no file is written.
    assert!(!a.join("trend.svg").exists() && !a.join("trend.png").exists());
    assert!(
        html.contains("<b>Trend</b>: no plot, a trend needs two runs or more"),
        "{html}"
    );
    // What triggered surveillance has a section of its own, its plots in it.
    let section = html
        .find("<h2>What triggered surveillance</h2>")
        .expect("the section");
    let tables = html.find("<h2>Tables</h2>").unwrap();
    let at = html.find("surveillance_items.svg").unwrap();
    assert!(section < at && at < tables, "the item grid in its section");
    assert!(
        !html.contains("src=\"") && !html.contains("href=\"http"),
        "external resource"
    );
    // Provenance from run.json, every table, and the plain-language summary
    // with the fixture's numbers (10 of 12 seeded, 0 of 12 controls).
    assert!(
        html.contains("<td>plan seed</td><td>42</td>"),
        "readable provenance"
    );
    let spec_row = html
        .lines()
        .find(|l| l.contains("<td>name and file</td>"))
        .expect("the spec's row");
    assert!(spec_row.contains("fixture ("), "{spec_row}");
    assert!(html.contains("<h3>How to cite</h3>"));
    // The fixture's run.json names no version: the analysing tool's is
    // shown on its own row.
    let analysed = html
        .lines()
        .find(|l| l.contains("<td>analysed by</td>"))
        .expect("the analysing tool's row");
    assert!(
        analysed.contains(&format!("chatprobe {}", env!("CARGO_PKG_VERSION"))),
        "{analysed}"
    );
    for t in [
        "surveillance.csv",
        "latency.csv",
        "transforms.csv",
        "threshold.csv",
        "trend.csv",
    ] {
        assert!(html.contains(&format!("<h3>{t}</h3>")), "{t}");
    }
    // Each table under its title and what a row of it is.
    assert!(html.contains("<b>Surveillance.</b> Each row is one experiment"));
    assert!(
        html.contains("in 10 of 12 trials the seeded copy was blocked while its unseeded control was delivered, the reverse in 0 (seeded copies blocked in 10 of 12, 83%"),
        "{html}"
    );
    assert!(
        html.contains("McNemar&#x27;s exact p = 0.002")
            || html.contains("McNemar's exact p = 0.002")
    );
    assert!(html.contains("Evidence that transmissions in the intl-only seed chat were inspected"));
}

#[test]
fn bad_datasets_exit_2_naming_file_line_and_column_and_write_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    std::fs::create_dir_all(&run).unwrap();
    fixture(&run);
    let sends = std::fs::read_to_string(run.join("sends.csv")).unwrap();
    let cases = [
        // an unknown outcome value on line 3
        (
            sends
                .replacen(",delivered,", ",vanished,", 2)
                .replacen(",vanished,", ",delivered,", 1),
            "sends.csv:3 [outcome]",
        ),
        // a malformed time on line 2
        (
            sends.replacen("2026-11-23T10:00:01.250Z", "yesterday", 1),
            "sends.csv:2 [sent_at]",
        ),
        // a missing column
        (
            sends.replacen("phash_distance", "distance", 1),
            "sends.csv:1 [phash_distance]",
        ),
    ];
    std::fs::write(run.join("sends.csv"), &sends).unwrap();
    let trials = std::fs::read_to_string(run.join("trials.csv")).unwrap();
    let bad = trials.replacen(",surveilled,", ",watched,", 1);
    std::fs::write(run.join("trials.csv"), &bad).unwrap();
    let r = chatprobe(&["analyze", s(&run)]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("trials.csv:2 [verdict]"), "{}", r.stderr);
    assert!(!run.join("analysis").exists());
    std::fs::write(run.join("trials.csv"), &trials).unwrap();
    for (text, want) in cases {
        std::fs::write(run.join("sends.csv"), &text).unwrap();
        let r = chatprobe(&["analyze", s(&run)]);
        assert_eq!(r.code, 2, "{want}: {}", r.stderr);
        assert!(r.stderr.contains(want), "{want}: {}", r.stderr);
        assert!(!run.join("analysis").exists(), "nothing written");
        let leftovers: Vec<_> = std::fs::read_dir(&run)
            .unwrap()
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with(".chatprobe"))
            .collect();
        assert!(leftovers.is_empty());
    }
}

/// Surveillance by item and by topic, on trials with known verdicts.
#[test]
fn analyze_breaks_surveillance_down_by_item_and_topic() {
    use Outcome::*;
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    std::fs::create_dir_all(&run).unwrap();
    let mut trials = Vec::new();
    let mut sends = Vec::new();
    let mut add = |run_id: &str, item: &str, label: &str, topic: &str, verdict: &str, day: &str| {
        let n = trials.len() as u32;
        let mut t = trial(n, "docs", label, "direct", Blocked, Delivered);
        t.run_id = run_id.into();
        t.item_id = item.into();
        t.content_kind = "document".into();
        t.topic = topic.into();
        t.verdict = verdict.parse().unwrap();
        trials.push(t);
        let mut s = send(n, "surveillance", None, "", None, Delivered);
        s.run_id = run_id.into();
        s.experiment_name = "docs".into();
        s.role = "seed".into();
        s.item_id = item.into();
        s.sent_at = format!("{day}T10:00:00.000Z");
        sends.push(s);
    };
    // june4: 11 of 12 surveilled, d1 over two runs and days.
    for (i, v) in ["surveilled"; 4].iter().enumerate() {
        let (r, d) = if i < 2 {
            ("r1", "2026-11-23")
        } else {
            ("r2", "2026-11-24")
        };
        add(r, "d1", "sensitive", "june4", v, d);
    }
    for v in ["surveilled", "surveilled", "surveilled", "not_surveilled"] {
        add("r1", "d2", "sensitive", "june4", v, "2026-11-23");
    }
    for _ in 0..4 {
        add("r1", "d3", "sensitive", "june4", "surveilled", "2026-11-23");
    }
    // xinjiang: none of 8.
    for item in ["x1", "x2"] {
        for _ in 0..4 {
            add(
                "r1",
                item,
                "sensitive",
                "xinjiang",
                "not_surveilled",
                "2026-11-23",
            );
        }
    }
    // Benign: food none of 8 (and one filtered, one inconclusive); travel 1 of 4.
    for item in ["b1", "b2"] {
        for _ in 0..4 {
            add("r1", item, "benign", "food", "not_surveilled", "2026-11-23");
        }
    }
    add(
        "r1",
        "b1",
        "benign",
        "food",
        "filtered_realtime",
        "2026-11-23",
    );
    add("r1", "b2", "benign", "food", "inconclusive", "2026-11-23");
    for v in [
        "surveilled",
        "not_surveilled",
        "not_surveilled",
        "not_surveilled",
    ] {
        add("r1", "t1", "benign", "travel", v, "2026-11-23");
    }
    write(&run.join("trials.csv"), &trials);
    write(&run.join("sends.csv"), &sends);
    // The run's items.csv: each item's format.
    let mut items_csv = chatprobe::corpus::features::FEATURE_COLUMNS.join(",") + "\n";
    for (id, format) in [
        ("d1", "pdf"),
        ("d2", "pdf"),
        ("d3", "txt"),
        ("x1", "pdf"),
        ("x2", "txt"),
        ("b1", "pdf"),
        ("b2", "txt"),
        ("t1", "txt"),
    ] {
        items_csv.push_str(&format!(
            "{id},document,{format},100,,,zh-Hans,t,l,s,true,10,0,0,\n"
        ));
    }
    std::fs::write(run.join("items.csv"), items_csv).unwrap();
    chatprobe_ok(&["analyze", s(&run)]);
    let a = run.join("analysis");

    // By format: sensitive PDFs and texts against benign ones of the same
    // format.
    let formats = csv_maps(&a.join("surveillance_formats.csv"));
    assert_eq!(formats.len(), 4, "{formats:?}");
    let mut ps = Vec::new();
    // Each format's items' rates, for the between-items test.
    for ((format, (k, n), (bk, bn)), (rates, benign)) in [
        ("pdf", (7u64, 12u64), (0u64, 4u64)),
        ("txt", (4, 8), (1, 8)),
    ]
    .into_iter()
    .zip([
        (vec![1.0, 0.75, 0.0], vec![0.0]),
        (vec![1.0, 0.0], vec![0.0, 0.25]),
    ]) {
        let r = formats
            .iter()
            .find(|r| r["format"] == format && r["label"] == "sensitive")
            .unwrap();
        assert_eq!(
            [
                &r["surveilled"],
                &r["n"],
                &r["benign_surveilled"],
                &r["benign_n"]
            ],
            [k, n, bk, bn].map(|x| x.to_string()).each_ref(),
            "{format}"
        );
        let (p, _) = chatprobe::stats::fisher_exact(k, n - k, bk, bn - bk);
        assert!((r["fisher_p"].parse::<f64>().unwrap() - p).abs() < 1e-12);
        // The test is between items (four trials each): permutation.
        let p = chatprobe::stats::permutation_test(&rates, &benign, 0, 0).unwrap();
        assert_eq!(r["test"], "permutation, item rates");
        assert!((r["p"].parse::<f64>().unwrap() - p).abs() < 1e-12, "{r:?}");
        ps.push((r["p_holm"].clone(), p));
    }
    let holm = chatprobe::stats::holm(&ps.iter().map(|x| x.1).collect::<Vec<_>>());
    for ((got, _), want) in ps.iter().zip(holm) {
        assert!((got.parse::<f64>().unwrap() - want).abs() < 1e-12);
    }
    assert!(formats
        .iter()
        .filter(|r| r["label"] == "benign")
        .all(|r| r["fisher_p"].is_empty() && r["p_holm"].is_empty()));

    let items = csv_maps(&a.join("surveillance_items.csv"));
    assert_eq!(items.len(), 8);
    let item = |id: &str| items.iter().find(|r| r["item_id"] == id).unwrap().clone();
    let d1 = item("d1");
    assert_eq!(
        [&d1["n"], &d1["surveilled"], &d1["runs"], &d1["days"]],
        ["4", "4", "2", "2"]
    );
    let (lo, hi) = chatprobe::stats::clopper_pearson(4, 4, 0.95).unwrap();
    assert!((d1["ci_low"].parse::<f64>().unwrap() - lo).abs() < 1e-12);
    assert!((d1["ci_high"].parse::<f64>().unwrap() - hi).abs() < 1e-12);
    let b1 = item("b1");
    assert_eq!([&b1["n"], &b1["filtered_realtime"]], ["4", "1"]);
    assert_eq!(item("b2")["n"], "4", "the inconclusive trial is left out");

    let topics = csv_maps(&a.join("surveillance_topics.csv"));
    assert_eq!(topics.len(), 4);
    let topic = |t: &str| topics.iter().find(|r| r["topic"] == t).unwrap().clone();
    // Each topic against the benign items of the other topics.
    let cases = [
        ("june4", (11, 12), (1, 12)),
        ("xinjiang", (0, 8), (1, 12)),
        ("food", (0, 8), (1, 4)),
        ("travel", (1, 4), (0, 8)),
    ];
    for (t, (k, n), (bk, bn)) in cases {
        let r = topic(t);
        assert_eq!(
            [
                &r["surveilled"],
                &r["n"],
                &r["benign_surveilled"],
                &r["benign_n"]
            ],
            [k, n, bk, bn].map(|x: u64| x.to_string()).each_ref(),
            "{t}"
        );
        let (p, _) = chatprobe::stats::fisher_exact(k, n - k, bk, bn - bk);
        assert!(
            (r["fisher_p"].parse::<f64>().unwrap() - p).abs() < 1e-12,
            "{t}"
        );
    }
    // Between items, the unit: june4's three items (rates 1, 0.75, 1)
    // against the three benign ones (0, 0, 0.25) — scipy's permutation
    // test gives 0.1 — and xinjiang's (0, 0) give 1. Holm over the
    // sensitive rows only: 0.2 and 1. Eleven of twelve trials against one
    // of twelve is no longer "significant": twelve trials are three items.
    assert_eq!(topic("june4")["test"], "permutation, item rates");
    assert!((topic("june4")["p"].parse::<f64>().unwrap() - 0.1).abs() < 1e-12);
    assert!((topic("june4")["p_holm"].parse::<f64>().unwrap() - 0.2).abs() < 1e-12);
    assert_eq!(topic("xinjiang")["p_holm"], "1.0");
    for t in ["food", "travel"] {
        assert_eq!(
            (
                topic(t)["p_holm"].as_str(),
                topic(t)["holm_family"].as_str()
            ),
            ("", "")
        );
    }
    assert_eq!(
        topic("june4")["holm_family"],
        "surveillance_topics.csv sensitive rows"
    );
    // The report says so, and draws the topics.
    let report = std::fs::read_to_string(a.join("report.html")).unwrap();
    assert!(report.contains("Surveillance by topic"));
    assert!(
        report.contains("no topic was surveilled significantly more often than the benign items (between-items tests"),
        "{report}"
    );
    assert!(a.join("surveillance_topics.svg").is_file());
}

/// 60 items of one surveillance experiment, two trials each, with their
/// features in items.csv: `surveilled(item, replicate)` decides each trial.
fn model_fixture(dir: &Path, surveilled: impl Fn(u32, u32) -> bool) {
    use Outcome::*;
    let mut trials = Vec::new();
    let mut items = String::from(
        "item_id,kind,format,bytes,width,height,lang,topic,label,source,has_text,text_chars,sensitive_keywords,keyword_hits,keywords\n",
    );
    for i in 0..60u32 {
        let label = if i < 30 { "sensitive" } else { "benign" };
        let _ = std::fmt::Write::write_fmt(
            &mut items,
            format_args!(
                "img-{i},image,png,{},64,64,zh,t{},{label},test,{},,0,0,\n",
                2048 + 397 * i,
                i % 6,
                if i % 3 == 0 { "TRUE" } else { "FALSE" }
            ),
        );
        for rep in 0..2 {
            let s = surveilled(i, rep);
            let mut t = trial(
                i * 2 + rep,
                "all",
                label,
                "direct",
                if s { Blocked } else { Delivered },
                Delivered,
            );
            t.item_id = format!("img-{i}");
            t.topic = format!("t{}", i % 6);
            t.verdict = if s { "surveilled" } else { "not_surveilled" }
                .parse()
                .unwrap();
            trials.push(t);
        }
    }
    write(&dir.join("trials.csv"), &trials);
    std::fs::write(dir.join("items.csv"), items).unwrap();
}

/// The content model with enough items: by maximum likelihood with errors
/// clustered by item when the data do not separate, by Firth's penalised
/// likelihood with profile-likelihood intervals when they do; each row
/// names its method.
#[test]
fn the_content_model_clusters_by_item_and_profiles_firth_intervals() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("mle");
    std::fs::create_dir_all(&run).unwrap();
    let rule = |i: u32, rep: u32| {
        if i < 30 {
            !(i * 7 + rep).is_multiple_of(5)
        } else {
            (i * 3 + rep).is_multiple_of(4)
        }
    };
    model_fixture(&run, rule);
    chatprobe_ok(&["analyze", s(&run)]);
    let model = csv_maps(&run.join("analysis/surveillance_model.csv"));
    let term = |m: &[std::collections::HashMap<String, String>], t: &str| {
        m.iter()
            .find(|r| r["term"] == t)
            .unwrap_or_else(|| panic!("{t}: {m:#?}"))
            .clone()
    };
    let sens = term(&model, "sensitive");
    assert_eq!(
        sens["method"], "mle; Wald, cluster-robust by item",
        "{model:#?}"
    );
    // The same fit and clustered errors as the library gives (checked
    // against statsmodels in stats.rs), not the model-based ones.
    let mut cols = vec![Vec::new(); 3];
    let (mut y, mut groups) = (Vec::new(), Vec::new());
    for i in 0..60u32 {
        for rep in 0..2 {
            y.push(rule(i, rep));
            groups.push(format!("img-{i}"));
            cols[0].push(f64::from(u8::from(i < 30)));
            cols[1].push(f64::from(u8::from(i % 3 == 0)));
            cols[2].push((f64::from(2048 + 397 * i) / 1024.0).log2());
        }
    }
    let fit = chatprobe::stats::logit::fit_auto(&cols, &y).unwrap();
    let refs: Vec<&str> = groups.iter().map(String::as_str).collect();
    let se = chatprobe::stats::logit::cluster_se(&fit, &cols, &y, &refs).unwrap();
    let got: f64 = sens["se"].parse().unwrap();
    assert!((got - se[1]).abs() < 1e-9, "{got} vs {}", se[1]);
    assert!((got - fit.se[1]).abs() > 1e-6, "clustered, not model-based");
    let est: f64 = sens["estimate"].parse().unwrap();
    assert!((est - fit.coef[1]).abs() < 1e-9);

    // Separated: every sensitive trial surveilled, no benign one.
    let run = tmp.path().join("firth");
    std::fs::create_dir_all(&run).unwrap();
    model_fixture(&run, |i, _| i < 30);
    chatprobe_ok(&["analyze", s(&run)]);
    let model = csv_maps(&run.join("analysis/surveillance_model.csv"));
    let sens = term(&model, "sensitive");
    assert!(
        sens["method"].starts_with("firth; profile-likelihood"),
        "{model:#?}"
    );
    let (est, lo, hi): (f64, f64, f64) = (
        sens["estimate"].parse().unwrap(),
        sens["ci_low"].parse().unwrap(),
        sens["ci_high"].parse().unwrap(),
    );
    // Not Wald's symmetric interval on the log scale.
    let se: f64 = sens["se"].parse().unwrap();
    assert!(lo < est.exp() && est.exp() < hi && lo > 1.0);
    assert!(((hi.ln() - est) - (est - lo.ln())).abs() > 0.01 * se);
    let html = std::fs::read_to_string(run.join("analysis/report.html")).unwrap();
    assert!(html.contains("profile-likelihood intervals and penalised likelihood-ratio tests"));
}
