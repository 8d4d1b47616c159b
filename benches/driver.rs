//! `make bench` — the driver: wall time per send on the testbed, split into
//! WebDriver round trips, time idle waiting for the platform, and the rest
//! (chatprobe itself); beside it a straightforward Python Selenium script
//! (benches/driver_python.py) doing the same flow against the same testbed,
//! in one run. Then the same flow through clients without ids: the testbed
//! with `--no-ids` (images recognised by their picture) and Converse.js on
//! Prosody (`chatprobe xmpp`): seconds per send on a client nobody here
//! wrote against the testbed's.
//!
//! Flow per send: upload a file (a fresh copy of a starter image under a
//! unique name), wait for it in the sender's view, send a sentinel text, wait
//! for it, then watch the receiver's view until the file shows. The testbed
//! (open policy: no censorship) runs as its own process for both.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chatprobe::accounts::Accounts;
use chatprobe::corpus::transform::{apply, Transform};
use chatprobe::corpus::Format;
use chatprobe::dataset::Outcome;
use chatprobe::platform::profile::Profile;
use chatprobe::platform::webdriver::WebDriverPlatform;
use chatprobe::platform::{transmit, Payload, Target, Transmission, Waits};

const N: usize = 20;

mod common;
use common::Testbed;

fn testbed(root: &Path) -> Testbed {
    testbed_with(root, &[])
}

fn testbed_with(root: &Path, more: &[&str]) -> Testbed {
    common::testbed(
        root,
        &root.join("probes/policies/open.toml"),
        &root.join("probes/accounts.testbed.toml"),
        more,
    )
}

fn files(root: &Path, dir: &Path) -> Vec<PathBuf> {
    let src = root.join("corpus/images/img-b02.png");
    let bytes = std::fs::read(&src).unwrap();
    (0..N + 1)
        .map(|k| {
            let (out, _) =
                apply(Transform::Fresh, &src, &bytes, Format::Png, 500 + k as u64).unwrap();
            let p = dir.join(format!("bench-{k:03}.png"));
            std::fs::write(&p, out).unwrap();
            p
        })
        .collect()
}

/// Seconds per send through `profile` at `url`: (total, WebDriver round
/// trips, idle waiting for the platform, round trips per send).
async fn measure(
    root: &Path,
    profile: &str,
    url: &str,
    testbed: bool,
    probes: &[PathBuf],
) -> (f64, f64, f64, f64) {
    let accounts = Accounts::load(&root.join("probes/accounts.testbed.toml")).unwrap();
    let profile = Profile::load(&root.join("probes/profiles").join(profile)).unwrap();
    let platform = WebDriverPlatform::new(profile, accounts.clone(), url, &[], testbed).unwrap();
    let limits = Waits {
        deliver_timeout: Duration::from_secs(15),
        after_sentinel: Duration::from_secs(3),
        poll: Duration::from_millis(100),
    };
    let send = |p: &PathBuf| Transmission {
        from: "intl-a".into(),
        to: Target::Direct("intl-b".into()),
        observer: "intl-b".into(),
        payload: Payload::File(p.clone()),
        sentinel: true,
    };
    // Warm-up: sessions, logins, chats.
    let o = transmit(&platform, &accounts, &send(&probes[N]), &limits, "warm")
        .await
        .unwrap();
    assert_eq!(o.outcome, Outcome::Delivered, "{o:?}");
    let rt0 = platform.round_trips();
    let t0 = Instant::now();
    let mut waited = 0u64;
    for (k, p) in probes[..N].iter().enumerate() {
        let o = transmit(&platform, &accounts, &send(p), &limits, &format!("b{k}"))
            .await
            .unwrap();
        assert_eq!(o.outcome, Outcome::Delivered, "{o:?}");
        waited += o.waited_ms;
    }
    let total = t0.elapsed().as_secs_f64() / N as f64;
    let rt1 = platform.round_trips();
    platform.close().await;
    let rt = (rt1.total - rt0.total).as_secs_f64() / N as f64;
    let rt_n = (rt1.count - rt0.count) as f64 / N as f64;
    (total, rt, waited as f64 / 1000.0 / N as f64, rt_n)
}

/// `chatprobe xmpp` (Prosody + Converse), if Converse is installed.
fn xmpp(root: &Path, dir: &Path) -> Option<Testbed> {
    let converse = root.join("third_party/node_modules/converse.js/dist");
    if !converse.is_dir() {
        return None;
    }
    let mut child = Command::new(root.join("target/release/chatprobe"))
        .arg("xmpp")
        .arg("--accounts")
        .arg(root.join("probes/accounts.testbed.toml"))
        .arg("--keywords")
        .arg(root.join("corpus/keywords.csv"))
        .arg("--converse")
        .arg(&converse)
        .arg("--dir")
        .arg(dir.join("xmpp"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .ok()?;
    let url = line.trim().strip_prefix("listening on ")?.to_string();
    Some(Testbed(child, url))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let tmp = tempfile::tempdir().unwrap();
    let probes = files(&root, tmp.path());

    // chatprobe.
    let tb = testbed(&root);
    let (total, rt, wait, rt_n) = measure(&root, "testbed.toml", &tb.1, true, &probes).await;
    drop(tb);
    let own = total - rt - wait;

    // Clients without ids.
    let tb = testbed_with(&root, &["--no-ids"]);
    let noids = measure(&root, "testbed-noids.toml", &tb.1, true, &probes).await;
    drop(tb);
    let converse = match xmpp(&root, tmp.path()) {
        Some(x) => {
            let m = measure(&root, "converse.toml", &x.1, false, &probes).await;
            drop(x);
            Some(m)
        }
        None => None,
    };

    // Python Selenium, against a fresh testbed.
    let tb = testbed(&root);
    let list = tmp.path().join("files.txt");
    std::fs::write(
        &list,
        probes[..N]
            .iter()
            .map(|p| p.to_str().unwrap())
            .collect::<Vec<_>>()
            .join("\n"),
    )
    .unwrap();
    let out = Command::new("python3")
        .arg(root.join("benches/driver_python.py"))
        .arg(&tb.1)
        .arg("/usr/bin/chromedriver")
        .arg(&list)
        .output()
        .expect("python3");
    drop(tb);
    let py: Option<f64> = String::from_utf8_lossy(&out.stdout)
        .trim()
        .strip_prefix("seconds_per_send ")
        .and_then(|s| s.parse().ok());

    println!("{N} sends (file + sentinel + receiver watch) on the testbed, open policy\n");
    println!("chatprobe, seconds per send:          {total:.3}");
    println!("  WebDriver round trips ({rt_n:.0}/send):     {rt:.3}");
    println!("  idle, waiting for the platform:     {wait:.3}");
    println!("  the rest (chatprobe itself):        {own:.3}");
    println!(
        "  overhead = total / (round trips + platform) = {:.3}  (goal <= 1.2)",
        total / (rt + wait)
    );
    match py {
        Some(p) => {
            println!("Python Selenium, seconds per send:    {p:.3}");
            println!(
                "Python / chatprobe:                   {:.2}x  (goal >= 1.5)",
                p / total
            );
        }
        None => println!(
            "Python baseline failed (`make deps-bench` installs selenium): {}",
            String::from_utf8_lossy(&out.stderr)
        ),
    }
    println!("\nThe same sends through clients that show no ids (images by picture):");
    println!(
        "testbed --no-ids, seconds per send:   {:.3}  ({:.2}x the testbed's; {:.0} round trips/send)",
        noids.0,
        noids.0 / total,
        noids.3
    );
    match converse {
        Some(c) => println!(
            "Converse.js on Prosody, s per send:   {:.3}  ({:.2}x the testbed's; {:.0} round trips/send, {:.3} s of them)",
            c.0,
            c.0 / total,
            c.3,
            c.1
        ),
        None => println!("Converse.js: not installed (`make deps-xmpp`)"),
    }
}
