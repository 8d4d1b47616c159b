//! Appium 3 as the WebDriver endpoint: an Appium server on 127.0.0.1 with
//! its Chromium driver (installed by `make test` into third_party/), and a
//! replication slice run through it with `probes/profiles/testbed-appium.toml`
//! (Appium's capabilities, a chromedriver port of its own for every
//! session). Appium has no file-upload command: files go by their local
//! path, which this test proves reaches the browsers.

use std::process::{Child, Command, Stdio};

use crate::grid::{free_port, http_get, run_through};
use crate::run::Campaign;
use crate::util::{root, wait_until};

/// An Appium server, killed (as a process group) when dropped.
pub struct Appium {
    child: Child,
    pub url: String,
    _log: tempfile::TempDir,
}

impl Drop for Appium {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the child's own process group.
        unsafe {
            libc::kill(-(self.child.id() as i32), libc::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

impl Appium {
    pub fn start() -> Appium {
        let bin = root().join("third_party/appium/node_modules/.bin/appium");
        assert!(
            bin.exists(),
            "{} (make deps-appium installs it)",
            bin.display()
        );
        let log = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut cmd = Command::new(bin);
        cmd.args(["--address", "127.0.0.1", "--port", &port.to_string()])
            .env("APPIUM_HOME", root().join("third_party/appium-home"))
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(log.path().join("appium.log")).unwrap())
            .stderr(Stdio::null());
        chatprobe::process::own_group_dying_with_us(&mut cmd);
        let child = cmd.spawn().expect("appium");
        let url = format!("http://127.0.0.1:{port}");
        let status = format!("{url}/status");
        wait_until("Appium to be ready", || {
            http_get(&status)
                .ok()
                .and_then(|b| serde_json::from_str::<serde_json::Value>(&b).ok())
                .is_some_and(|v| v["value"]["ready"] == true)
        });
        Appium {
            child,
            url,
            _log: log,
        }
    }
}

/// The replication slice through Appium's Chromium driver: outcomes equal
/// the testbed's truth, images and documents included, and every account's
/// session is on record as served by the Appium server.
#[test]
fn a_replication_slice_runs_through_appium() {
    let appium = Appium::start();
    let c = Campaign::new(
        "0.05",
        "sends_per_minute = 120\nparallel_pairs = 2\ndeliver_timeout_s = 20\nafter_sentinel_s = 0.6\nmax_runtime_s = 600",
        r#"
[[experiment]]
kind = "surveillance"
name = "images"
items = { id = ["img-s01", "img-b01"] }
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
    let spec = std::fs::read_to_string(&c.spec)
        .unwrap()
        .replace("profiles/testbed.toml", "profiles/testbed-appium.toml");
    std::fs::write(&c.spec, spec).unwrap();
    let (sends, manifest) = run_through(&c, &appium.url);
    assert_eq!(sends.len(), 4 * 3, "seed, test and control of 4 trials");
    assert!(sends.iter().any(|r| r["outcome"] == "blocked"));
    let sessions = manifest["webdriver"]["sessions"].as_array().unwrap();
    assert!(sessions.len() >= 5, "{sessions:?}");
    for x in sessions {
        assert_eq!(x["endpoint"], appium.url.as_str(), "{x}");
        assert_eq!(x["node"], "", "Appium is no Grid: {x}");
    }
}
