//! `make bench` — longitudinal monitoring at scale: a simulated 120-day
//! campaign of 2,000 keywords a day, with rules that change over time.
//!
//! Every day one run of the same keyword spec goes through chatprobe's
//! scheduler (journal, rate limit, sentinels, retries, datasets) against
//! the simulated platform on tokio's paused clock, so a day of sending
//! takes virtual hours and real seconds; run ids and timestamps follow the
//! virtual days. The platform blocks 10 % of the keywords on day one, and
//! 40 planted changes (a keyword newly blocked, or no longer blocked) fall
//! on random days; one send in a thousand fails and is retried, as a flaky
//! client's would. After each run, what `chatprobe run` does after every
//! complete run: changes.csv against the previous run. At the end, what a
//! researcher does with the series: `chatprobe merge` of the results
//! folder, then `chatprobe analyze` of the merged tables (the timeline and
//! report.html).
//!
//! Measured in one run: wall time and peak memory of each stage (each a
//! child process: the days a child of this bench, merge and analyze the
//! chatprobe binary; the max RSS from wait4), and the changes detected against those planted —
//! the goal is every planted change detected, none invented, the whole
//! campaign in minutes. The run folders live on /dev/shm where it exists,
//! since the journal's fsync per record is the disk's speed, not
//! chatprobe's.
//!
//! `CHATPROBE_BENCH_DAYS` and `CHATPROBE_BENCH_KEYWORDS` shrink it for a
//! quick look; with `CHATPROBE_BENCH_KEEP=1` the folder (runs, merged
//! tables, analysis and report) is kept and its path printed.

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

mod common;

use chatprobe::analysis::changes;
use chatprobe::dataset::manifest::RunStatus;
use chatprobe::platform::sim::{SimConfig, SimPlatform};
use chatprobe::probe::Spec;
use chatprobe::run::{run_on, RunOptions};
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Changes planted over the campaign.
const PLANTED: usize = 40;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `n` distinct keywords of three CJK characters: equal lengths, so none
/// is part of another and a rule never catches a neighbour's text.
fn keywords(n: usize) -> Vec<String> {
    assert!(n <= 64 * 64, "at most 4,096 keywords");
    (0..n)
        .map(|i| {
            let c = |k: usize| char::from_u32(0x5000 + k as u32).unwrap();
            format!("测{}{}", c(i / 64), c(i % 64))
        })
        .collect()
}

/// Which keywords the platform blocks on each day: 10 % on day one, then
/// `PLANTED` toggles on random days (never two of one keyword on a day).
fn plant(words: &[String], days: usize, rng: &mut ChaCha8Rng) -> Vec<BTreeSet<String>> {
    let mut day0 = BTreeSet::new();
    for w in words {
        if rng.random_bool(0.1) {
            day0.insert(w.clone());
        }
    }
    let mut toggles: Vec<HashSet<String>> = vec![HashSet::new(); days];
    let mut n = 0;
    while n < PLANTED && days > 1 {
        let d = rng.random_range(1..days);
        if toggles[d].insert(words.choose(rng).unwrap().clone()) {
            n += 1;
        }
    }
    let mut out = vec![day0];
    for t in toggles.iter().skip(1) {
        let mut next = out.last().unwrap().clone();
        for w in t {
            if !next.remove(w) {
                next.insert(w.clone());
            }
        }
        out.push(next);
    }
    out
}

/// The spec folder: accounts, profile, keyword list and spec.
fn write_spec(dir: &Path, words: &[String]) -> PathBuf {
    let probes = dir.join("probes");
    std::fs::create_dir_all(probes.join("profiles")).unwrap();
    std::fs::copy(
        root().join("probes/accounts.testbed.toml"),
        probes.join("accounts.testbed.toml"),
    )
    .unwrap();
    std::fs::copy(
        root().join("probes/profiles/testbed.toml"),
        probes.join("profiles/testbed.toml"),
    )
    .unwrap();
    let mut kw = String::from("keyword,lang,topic,source,label\n");
    for w in words {
        kw.push_str(&format!("{w},zh-Hans,bench,generated,unknown\n"));
    }
    std::fs::write(probes.join("keywords.csv"), kw).unwrap();
    let spec = probes.join("daily.toml");
    std::fs::write(
        &spec,
        format!(
            "name = \"daily\"\nseed = 7\naccounts = \"accounts.testbed.toml\"\n\
             profile = \"profiles/testbed.toml\"\ncorpus = {corpus:?}\n\n\
             [limits]\nsends_per_minute = 20\nparallel_pairs = 2\ndeliver_timeout_s = 10\n\
             after_sentinel_s = 1\nretries = 6\n\n\
             [[experiment]]\nkind = \"keyword\"\nname = \"daily-list\"\nkeywords = \"keywords.csv\"\n",
            corpus = root().join("corpus").display().to_string()
        ),
    )
    .unwrap();
    spec
}

/// The corpus index is built, not kept in git: build it if missing.
fn ensure_corpus_index(bin: &Path) {
    if root().join("corpus/index.csv").is_file() {
        return;
    }
    let ok = Command::new(bin)
        .args(["corpus", "index", "--quiet", "--corpus"])
        .arg(root().join("corpus"))
        .status()
        .unwrap()
        .success();
    assert!(ok, "chatprobe corpus index failed");
}

/// This process's peak resident memory so far, MiB.
fn own_peak_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// A change as (day, keyword, change).
type Change = (usize, String, String);

/// The campaign's keywords and each day's blocked set (the same in the
/// parent and in the child that runs the days).
fn campaign(days: usize, n: usize) -> (Vec<String>, Vec<BTreeSet<String>>) {
    let words = keywords(n);
    let rules = plant(&words, days, &mut ChaCha8Rng::seed_from_u64(20200101));
    (words, rules)
}

/// What the child that ran the days found, in `dir/days.tsv`.
const DAYS_FILE: &str = "days.tsv";

/// The child: every day's run and its changes.csv, on the virtual clock.
/// Its findings go to `dir/days.tsv`: a line of totals, then one line per
/// probe change detected.
fn run_days(dir: &Path, days: usize, n: usize) {
    let (_, rules) = campaign(days, n);
    let spec_path = dir.join("probes/daily.toml");
    let spec = Spec::load(&spec_path).unwrap();
    let opts = RunOptions {
        spec: Some(spec_path.clone()),
        results: dir.join("results"),
        quiet: true,
        ..RunOptions::default()
    };
    let t0 = Instant::now();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    let mut detected: Vec<Change> = Vec::new();
    let (mut other_rows, mut rate_rows, mut sends) = (0usize, 0usize, 0u64);
    let mut changes_secs = 0.0;
    rt.block_on(async {
        let mut prev: Option<PathBuf> = None;
        for (d, blocked) in rules.iter().enumerate() {
            let mut cfg = SimConfig::for_accounts(&spec.accounts);
            cfg.keywords = blocked.iter().cloned().collect();
            cfg.fail_before = 0.001;
            // A client shows its latest messages, not a day's chat.
            cfg.window = Some(50);
            cfg.seed = d as u64;
            let sim = SimPlatform::new(cfg);
            let day_start = tokio::time::Instant::now();
            let s = run_on(&opts, &sim, "simulated", std::future::pending())
                .await
                .unwrap();
            assert_eq!(s.state, RunStatus::Complete, "day {d}: {s:?}");
            sends += s.counts.iter().map(|c| c.1).sum::<u64>();
            // What `chatprobe run` does after a complete run.
            let c0 = Instant::now();
            let before = changes::previous_run(&s.dir);
            assert_eq!(before, prev, "day {d}: the previous run");
            if let Some(p) = &before {
                let c = changes::compare(p, &s.dir, chatprobe::stats::Interval::Wilson).unwrap();
                c.write(&s.dir.join(changes::CHANGES_FILE)).unwrap();
                let mut rdr = csv::Reader::from_path(s.dir.join(changes::CHANGES_FILE)).unwrap();
                let h = rdr.headers().unwrap().clone();
                let col = |name: &str| h.iter().position(|x| x == name).unwrap();
                let (e, p, ch) = (col("experiment"), col("parameter"), col("change"));
                for r in rdr.records() {
                    let r = r.unwrap();
                    if &r[e] == "keyword" && r[ch].starts_with("newly_") {
                        detected.push((d, r[p].to_string(), r[ch].to_string()));
                    } else if r[ch].starts_with("rate_") {
                        rate_rows += 1;
                    } else {
                        other_rows += 1;
                    }
                }
            }
            changes_secs += c0.elapsed().as_secs_f64();
            prev = Some(s.dir.clone());
            if d == 0 {
                eprintln!(
                    "day 0: {} trials in {:.1} virtual hours, {:.2} s real",
                    s.trials_done,
                    day_start.elapsed().as_secs_f64() / 3600.0,
                    t0.elapsed().as_secs_f64()
                );
            }
            // The next day's run starts 24 h after this one started.
            tokio::time::sleep_until(day_start + Duration::from_secs(86_400)).await;
        }
    });
    let mut out = format!("{sends}\t{changes_secs}\t{rate_rows}\t{other_rows}\n");
    for (d, w, c) in detected {
        out.push_str(&format!("{d}\t{w}\t{c}\n"));
    }
    std::fs::write(dir.join(DAYS_FILE), out).unwrap();
}

fn main() {
    let days = env_usize("CHATPROBE_BENCH_DAYS", 120);
    let n = env_usize("CHATPROBE_BENCH_KEYWORDS", 2000);
    if let Some(dir) = std::env::var_os("CHATPROBE_BENCH_CAMPAIGN_DIR") {
        return run_days(Path::new(&dir), days, n);
    }
    let bin = root().join("target/release/chatprobe");
    assert!(
        bin.is_file(),
        "target/release/chatprobe: run `cargo build --release` first (make bench does)"
    );
    ensure_corpus_index(&bin);
    let shm = Path::new("/dev/shm");
    let tmp = if shm.is_dir() {
        tempfile::tempdir_in(shm).unwrap()
    } else {
        tempfile::tempdir().unwrap()
    };
    let (words, rules) = campaign(days, n);
    let mut planted: BTreeSet<Change> = BTreeSet::new();
    for d in 1..days {
        for w in rules[d].difference(&rules[d - 1]) {
            planted.insert((d, w.clone(), "newly_blocked".into()));
        }
        for w in rules[d - 1].difference(&rules[d]) {
            planted.insert((d, w.clone(), "newly_delivered".into()));
        }
    }
    write_spec(tmp.path(), &words);
    let results = tmp.path().join("results");
    eprintln!(
        "campaign: {days} days × {n} keywords, {} blocked on day one, {} changes planted; in {}",
        rules[0].len(),
        planted.len(),
        tmp.path().display()
    );
    drop((words, rules));
    // The days run in a child of their own, so that each stage's peak
    // memory is its own: a child's max RSS starts from its parent's.
    let own = own_peak_mib();
    let (run_secs, run_peak) = common::measure(
        Command::new(std::env::current_exe().unwrap())
            .env("CHATPROBE_BENCH_CAMPAIGN_DIR", tmp.path()),
    );
    let found = std::fs::read_to_string(tmp.path().join(DAYS_FILE)).unwrap();
    let mut lines = found.lines();
    let totals: Vec<&str> = lines.next().unwrap().split('\t').collect();
    let sends: u64 = totals[0].parse().unwrap();
    let changes_secs: f64 = totals[1].parse().unwrap();
    let (rate_rows, other_rows): (usize, usize) =
        (totals[2].parse().unwrap(), totals[3].parse().unwrap());
    let detected: BTreeSet<Change> = lines
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f[0].parse().unwrap(), f[1].to_string(), f[2].to_string())
        })
        .collect();

    let merged = tmp.path().join("merged");
    let (merge_secs, merge_mib) = common::measure(
        Command::new(&bin)
            .args(["merge", "--quiet", "--out"])
            .arg(&merged)
            .arg(&results),
    );
    let analysis = tmp.path().join("analysis");
    let (analyze_secs, analyze_mib) = common::measure(
        Command::new(&bin)
            .args(["analyze", "--quiet", "--out"])
            .arg(&analysis)
            .arg(merged.join("sends.csv"))
            .arg(merged.join("trials.csv")),
    );
    let report = analysis.join("report.html");
    assert!(report.is_file(), "no report.html");
    let timeline_rows = csv::Reader::from_path(analysis.join("timeline.csv"))
        .map(|mut r| r.records().count())
        .unwrap_or(0);

    let missed: Vec<&Change> = planted.difference(&detected).collect();
    let invented: Vec<&Change> = detected.difference(&planted).collect();
    println!("\nA simulated {days}-day campaign, {n} keywords a day ({sends} sends)\n");
    println!("(the bench's own peak before the stages: {own:.0} MiB, the floor of each figure)\n");
    println!("| stage | wall time | peak memory |");
    println!("|---|---:|---:|");
    println!(
        "| {days} runs (scheduler, journal, datasets) + changes.csv after each | {run_secs:.1} s ({:.2} s a run; changes {changes_secs:.1} s in all) | {run_peak:.0} MiB |",
        run_secs / days as f64
    );
    println!("| chatprobe merge | {merge_secs:.1} s | {merge_mib:.0} MiB |");
    println!("| chatprobe analyze of the merged tables (timeline, report) | {analyze_secs:.1} s | {analyze_mib:.0} MiB |");
    println!(
        "| whole campaign | {:.1} s | |",
        run_secs + merge_secs + analyze_secs
    );
    println!(
        "\nrule changes: {} planted, {} detected, {} missed, {} invented; {rate_rows} days on which the list's blocked rate moved (Fisher p < 0.05); {other_rows} other rows in changes.csv; timeline.csv {timeline_rows} rows",
        planted.len(),
        detected.len(),
        missed.len(),
        invented.len()
    );
    for m in missed.iter().take(10) {
        println!("  missed: day {} {} {}", m.0, m.1, m.2);
    }
    for m in invented.iter().take(10) {
        println!("  invented: day {} {} {}", m.0, m.1, m.2);
    }
    if std::env::var_os("CHATPROBE_BENCH_KEEP").is_some() {
        println!("kept: {}", tmp.keep().display());
    }
}
