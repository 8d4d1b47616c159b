//! End-to-end: headless Chromium through chromedriver and fantoccini, driving
//! the testbed's own web client exactly as a person would.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use crate::testbed::{wechat_like, Bed};
use crate::util::root;

/// chromedriver on a free loopback port, killed on drop.
pub struct Driver {
    child: Child,
    pub url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    pub fn start() -> Driver {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let bin = ["/usr/bin/chromedriver", "chromedriver"]
            .into_iter()
            .find(|b| Command::new(b).arg("--version").output().is_ok())
            .expect("chromedriver missing: `make test` installs chromium-driver");
        let child = Command::new(bin)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let url = format!("http://127.0.0.1:{port}");
        let t0 = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "chromedriver did not start"
            );
            std::thread::sleep(Duration::from_millis(25));
        }
        Driver { child, url }
    }

    pub async fn session(&self, profile: &std::path::Path) -> Client {
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--no-first-run", "--window-size=1200,800",
                    format!("--user-data-dir={}", profile.display()),
                ]
            }),
        );
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&self.url)
            .await
            .expect("a Chromium session")
    }
}

async fn log_in(c: &Client, base: &str, login: &str) {
    c.goto(base).await.unwrap();
    c.wait()
        .for_element(Locator::Css("#login"))
        .await
        .unwrap()
        .send_keys(login)
        .await
        .unwrap();
    c.find(Locator::Css("#password"))
        .await
        .unwrap()
        .send_keys(&format!("testbed-{login}"))
        .await
        .unwrap();
    c.find(Locator::Css("#login-button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.wait()
        .for_element(Locator::Css("#contacts li"))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_browsers_log_in_and_the_receiver_sees_the_image() {
    let bed = Bed::start(&wechat_like("")).await;
    let driver = Driver::start();
    let profiles = tempfile::tempdir().unwrap();
    let alice = driver.session(&profiles.path().join("alice")).await;
    let bob = driver.session(&profiles.path().join("bob")).await;
    let base = bed.tb.url();
    let result = async {
        log_in(&alice, &base, "alice").await;
        log_in(&bob, &base, "bob").await;
        alice.find(Locator::Css("#chat-direct_bob")).await.unwrap().click().await.unwrap();
        bob.find(Locator::Css("#chat-direct_alice")).await.unwrap().click().await.unwrap();
        let image = root().join("corpus/images/img-b03.jpg");
        alice
            .find(Locator::Css("#file-input"))
            .await
            .unwrap()
            .send_keys(image.to_str().unwrap())
            .await
            .unwrap();
        let sel = r#".msg[data-kind="image"][data-filename="img-b03.jpg"]"#;
        let got = bob
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Css(sel))
            .await
            .expect("the receiver's page shows the image");
        assert_eq!(got.attr("data-sender").await.unwrap().as_deref(), Some("alice"));
        assert!(got.attr("data-message-id").await.unwrap().is_some());
        // The picture really loaded in the receiver's browser.
        let loaded = bob
            .execute(
                "const i = document.querySelector(arguments[0] + ' img'); return i && i.complete && i.naturalWidth;",
                vec![json!(sel)],
            )
            .await
            .unwrap();
        assert_eq!(loaded, json!(800));
        // A text, both ways.
        bob.find(Locator::Css("#text-input")).await.unwrap().send_keys("收到，谢谢").await.unwrap();
        bob.find(Locator::Css("#send-button")).await.unwrap().click().await.unwrap();
        let t = alice
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Css(r#".msg[data-kind="text"][data-sender="bob"]"#))
            .await
            .unwrap();
        assert!(t.text().await.unwrap().contains("收到，谢谢"));
        // For a person to look at: CHATPROBE_SCREENSHOT=file.png cargo test browser
        if let Ok(path) = std::env::var("CHATPROBE_SCREENSHOT") {
            std::fs::write(path, alice.screenshot().await.unwrap()).unwrap();
        }
    }
    .await;
    alice.close().await.unwrap();
    bob.close().await.unwrap();
    bed.tb.stop().await;
    result
}
