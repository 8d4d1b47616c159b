//! `make bench` — the analysis: a generated dataset of 1,000,000 sends
//! (sends.csv, with its trials.csv) analysed by `chatprobe analyze` and by
//! benches/analyze_pandas.py (pandas + scipy + statsmodels + lifelines
//! computing the same tables), in one run: wall time and peak memory (the
//! child's max RSS from wait4) of each, and the ratios.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

mod common;

use chatprobe::dataset::{Outcome, SendRow, TrialRow};
use rand::{Rng, SeedableRng};

const SENDS: usize = 1_000_000;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn outcome(blocked: bool) -> Option<Outcome> {
    Some(if blocked {
        Outcome::Blocked
    } else {
        Outcome::Delivered
    })
}

/// Write a dataset of `SENDS` sends over 10 runs, every design represented.
fn generate(dir: &Path) -> (usize, usize) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(20191127);
    let mut sends = csv::Writer::from_path(dir.join("sends.csv")).unwrap();
    let mut trials = csv::Writer::from_path(dir.join("trials.csv")).unwrap();
    let transforms = [
        "mirror", "crop:0.1", "border:8", "blur:2", "jpeg:40", "tile:3",
    ];
    let keywords = [
        "六四",
        "天安门",
        "刘晓波+诺贝尔",
        "刘晓波",
        "诺贝尔",
        "火锅",
        "天气+周末",
    ];
    let (mut n_sends, mut n_trials) = (0usize, 0usize);
    let mut k = 0u64;
    while n_sends < SENDS {
        k += 1;
        let run = k % 10;
        let run_id = format!("2026-11-{:02}-replication", run + 1);
        let day = format!("2026-11-{:02}T10:00:00.000Z", run + 1);
        let trial_id = format!("t{k}");
        let sensitive = rng.random_bool(0.5);
        let label = if sensitive { "sensitive" } else { "benign" };
        let design = match k % 20 {
            0..=7 => "surveillance",
            8..=11 => "latency",
            12..=14 => "transform",
            15..=17 => "keyword",
            _ => "expiry",
        };
        let mut row =
            |role: &str, blocked: bool, offset: f64, transform: &str, dist: Option<f64>| {
                let r = SendRow {
                    run_id: run_id.clone(),
                    trial_id: trial_id.clone(),
                    send_id: format!("{trial_id}/{role}{n_sends}"),
                    experiment: design.into(),
                    experiment_name: design.into(),
                    role: role.into(),
                    item_id: format!("img-{:02}", k % 24),
                    variant_id: String::new(),
                    content_kind: "image".into(),
                    label: label.into(),
                    topic: "june4".into(),
                    transform: transform.into(),
                    md5: format!("{:032x}", k),
                    phash: "8f3a9c01d2e4b657".into(),
                    phash_distance: dist,
                    channel: "direct".into(),
                    chat: "china-c".into(),
                    sender: "intl-a".into(),
                    sender_region: "intl".into(),
                    receiver: "china-c".into(),
                    receiver_region: "china".into(),
                    scheduled_at: day.clone(),
                    sent_at: day.clone(),
                    observed_at: if blocked { String::new() } else { day.clone() },
                    offset_s: Some(offset),
                    outcome: outcome(blocked),
                    failure: String::new(),
                    latency_ms: if blocked { None } else { Some(412.0) },
                    attempt: Some(1),
                    planned_offset_s: Some(offset),
                    sentinel_observed_at: String::new(),
                    error: String::new(),
                    nonce: String::new(),
                    match_distance: None,
                    match_margin: None,
                };
                sends.serialize(r).unwrap();
                n_sends += 1;
            };
        let (verdict, seeded, control, parameter) = match design {
            "surveillance" => {
                let sb = sensitive && rng.random_bool(0.8);
                let cb = rng.random_bool(0.02);
                row("seed", false, 0.0, "", None);
                row("test", sb, 30.0, "", None);
                row("control", cb, 30.0, "", None);
                let v = if cb {
                    "filtered_realtime"
                } else if sb {
                    "surveilled"
                } else {
                    "not_surveilled"
                };
                (v, outcome(sb), outcome(cb), "30".to_string())
            }
            "latency" => {
                let off = [5.0, 10.0, 20.0, 40.0, 80.0][(k / 20 % 5) as usize];
                let b = rng.random_bool(1.0 / (1.0 + (-(off - 20.0) / 5.0f64).exp()));
                row("seed", false, 0.0, "", None);
                row("test", b, off, "", None);
                (
                    if b { "surveilled" } else { "not_surveilled" },
                    outcome(b),
                    None,
                    off.to_string(),
                )
            }
            "transform" => {
                let t = transforms[(k / 20 % 6) as usize];
                let d = rng.random_range(0..30) as f64;
                let b = rng.random_bool(1.0 / (1.0 + (-(8.0 - 0.6 * d)).exp()));
                row("seed", false, 0.0, "", None);
                row("prime", true, 30.0, "", None);
                row("test", b, 30.0, t, Some(d));
                (
                    if b { "blocked" } else { "evaded" },
                    outcome(b),
                    outcome(true),
                    t.to_string(),
                )
            }
            "keyword" => {
                let kw = keywords[(k / 20 % 7) as usize];
                let b = !matches!(kw, "诺贝尔" | "火锅" | "天气+周末");
                row("test", b, 0.0, "", None);
                (
                    if b { "blocked" } else { "evaded" },
                    outcome(b),
                    None,
                    kw.to_string(),
                )
            }
            _ => {
                row("seed", false, 0.0, "", None);
                row("prime", true, 30.0, "", None);
                let expires = rng.random_range(1..12);
                for i in 1..=8 {
                    row("retest", i < expires, 30.0 + 3600.0 * i as f64, "", None);
                }
                (
                    if expires <= 8 {
                        "expired"
                    } else {
                        "still_blocked"
                    },
                    None,
                    outcome(true),
                    "3600".to_string(),
                )
            }
        };
        trials
            .serialize(TrialRow {
                run_id: run_id.clone(),
                trial_id: trial_id.clone(),
                experiment: design.into(),
                experiment_name: design.into(),
                item_id: format!("img-{:02}", k % 24),
                label: label.into(),
                content_kind: "image".into(),
                topic: "june4".into(),
                channel: "direct".into(),
                parameter,
                verdict: verdict.parse().unwrap(),
                seeded_outcome: seeded,
                control_outcome: control,
            })
            .unwrap();
        n_trials += 1;
    }
    sends.flush().unwrap();
    trials.flush().unwrap();
    (n_sends, n_trials)
}

fn main() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    std::fs::create_dir_all(&dir).unwrap();
    let t0 = Instant::now();
    let (n, t) = generate(&dir);
    let mib = std::fs::metadata(dir.join("sends.csv")).unwrap().len() as f64 / 1048576.0;
    println!(
        "dataset: {n} sends ({mib:.0} MiB), {t} trials, generated in {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    let bin = root().join("target/release/chatprobe");
    let (ct, cm) = common::measure(
        Command::new(&bin)
            .args(["analyze", "--quiet", "--out"])
            .arg(tmp.path().join("out-chatprobe"))
            .arg(&dir),
    );
    println!("chatprobe analyze (tables, plots, report.html): {ct:.2} s, peak {cm:.0} MiB");
    let (pt, pm) = common::measure(
        Command::new("python3")
            .arg(root().join("benches/analyze_pandas.py"))
            .arg(&dir)
            .arg(tmp.path().join("out-pandas")),
    );
    println!("pandas + scipy + statsmodels + lifelines (tables only): {pt:.2} s, peak {pm:.0} MiB");
    println!(
        "ratios: chatprobe is {:.1}x faster (goal >= 10) and uses {:.2} of the memory (goal <= 0.20)",
        pt / ct,
        cm / pm
    );
    // The two agree on the main table.
    let rd = |p: PathBuf| std::fs::read_to_string(p).unwrap();
    let ours = rd(tmp.path().join("out-chatprobe/surveillance.csv"));
    let theirs = rd(tmp.path().join("out-pandas/surveillance.csv"));
    let _ = std::io::stdout().flush();
    println!(
        "surveillance.csv rows: chatprobe {}, pandas {}",
        ours.lines().count() - 1,
        theirs.lines().count() - 1
    );
}
