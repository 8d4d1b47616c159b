//! Phone-app flows in the profile language, against Appium's fake driver
//! (`@appium/fake-driver`, installed by `make test`): an app model in XML
//! (written here) stands for a chat app, and a profile drives it with the
//! strategies a phone app needs (accessibility id, id, xpath, class name),
//! taps, waits, Appium's `push_file`, and a message list read from the page
//! source without ids.
//!
//! Between chatprobe and Appium sits a recording proxy (axum, in this
//! test): it writes down every WebDriver command and forwards it, except
//! `push_file`, which the fake driver does not have — the proxy answers it
//! itself, as a phone would (`{"value": null}`), after recording its body.
//! The test then checks that chatprobe sent exactly the commands the
//! profile describes, and asks the fake driver which elements were tapped.

use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use chatprobe::accounts::Accounts;
use chatprobe::platform::profile::Profile;
use chatprobe::platform::webdriver::WebDriverPlatform;
use chatprobe::platform::{Payload, Platform, Target};
use http_body_util::{BodyExt, Full};
use serde_json::{json, Value};

use crate::appium::Appium;
use crate::util::root;

/// One recorded command: method, path with ids replaced (`S` the session,
/// `E` an element), body.
type Command = (String, String, Value);

#[derive(Clone)]
struct Proxy {
    upstream: String,
    log: Arc<Mutex<Vec<Command>>>,
    session: Arc<Mutex<String>>,
}

impl Proxy {
    /// The commands recorded since the last call.
    fn take(&self) -> Vec<Command> {
        std::mem::take(&mut *self.log.lock().unwrap())
    }
}

/// Replace the session id and element ids in a command's path.
fn normalise(path: &str) -> String {
    let parts: Vec<&str> = path.split('/').collect();
    let mut out = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        let prev = if i > 0 { parts[i - 1] } else { "" };
        out.push(match prev {
            "session" => "S",
            "element" if *p != "active" => "E",
            _ => p,
        });
    }
    out.join("/")
}

async fn forward(State(p): State<Proxy>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    let path = parts.uri.path().to_string();
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    if let Some(sid) = path
        .strip_prefix("/session/")
        .and_then(|r| r.split('/').next())
    {
        *p.session.lock().unwrap() = sid.to_string();
    }
    p.log
        .lock()
        .unwrap()
        .push((parts.method.to_string(), normalise(&path), body));
    if path.ends_with("/appium/device/push_file") {
        return axum::Json(json!({ "value": null })).into_response();
    }
    let uri = format!(
        "{}{}",
        p.upstream,
        parts
            .uri
            .path_and_query()
            .map(|q| q.as_str())
            .unwrap_or("/")
    );
    match request(parts.method, &uri, bytes).await {
        Ok(resp) => {
            let (head, body) = resp.into_parts();
            Response::from_parts(head, Body::from(body))
        }
        Err(e) => (http::StatusCode::BAD_GATEWAY, e).into_response(),
    }
}

async fn request(
    method: http::Method,
    uri: &str,
    body: bytes::Bytes,
) -> Result<http::Response<bytes::Bytes>, String> {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http();
    let req = http::Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json; charset=utf-8")
        .body(Full::new(body))
        .unwrap();
    let resp = client.request(req).await.map_err(|e| e.to_string())?;
    let (head, body) = resp.into_parts();
    let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
    Ok(http::Response::from_parts(head, body))
}

/// A WebDriver command sent straight to Appium (not through chatprobe).
async fn direct(method: http::Method, uri: &str, body: Value) -> Value {
    let body = match body {
        Value::Null => bytes::Bytes::new(),
        b => bytes::Bytes::from(b.to_string()),
    };
    let r = request(method, uri, body).await.unwrap();
    serde_json::from_slice::<Value>(r.body()).unwrap()["value"].clone()
}

/// The chat app: a conversation list, a chat with a composer, an attach
/// button, a gallery whose newest item comes first, a confirm button, and
/// three received bubbles (a text, a file, a picture) with no ids.
const APP: &str = r#"<app name="Chat" width="200" height="426">
  <MockNavBar id="conversations">
    <MockListItem id="chat-alice" name="alice">alice</MockListItem>
    <MockListItem id="chat-bob" name="bob">bob</MockListItem>
  </MockNavBar>
  <MockInputField id="composer"/>
  <MockButton id="send">Send</MockButton>
  <MockButton id="attach">Attach</MockButton>
  <Gallery>
    <GalleryItem id="newest"/>
    <GalleryItem id="older"/>
  </Gallery>
  <MockButton id="confirm">Send file</MockButton>
  <MessageList>
    <Bubble sender="alice"><TextView text="TAGGED"/></Bubble>
    <Bubble sender="alice"><FileName text="/storage/emulated/0/Download/report%20q3.pdf"/></Bubble>
    <Bubble sender="alice"><ImageView left="10" top="100" width="50" height="40"/></Bubble>
  </MessageList>
</app>
"#;

fn profile(app: &std::path::Path) -> String {
    format!(
        r#"name = "fake-chat-app"
kind = "appium"
tested = true

[urls]
login = "app://"

[login]
logged_in = "accessibility id:conversations"
logged_out = "accessibility id:login-screen"

[chat]
direct = "xpath://MockListItem[@name='{{login}}']"
group = "xpath://MockListItem[@name='{{group}}']"
text_input = "class name:MockInputField"
send_button = "id:send"
send_file = [
  {{ push = "/sdcard/Download/{{file}}" }},
  {{ tap = "accessibility id:attach" }},
  {{ wait = "xpath://Gallery" }},
  {{ tap = "xpath:(//GalleryItem)[1]" }},
  {{ tap = "id:confirm" }},
]
# A picture goes by the album: pushed where the gallery looks, announced
# (on Android: `mobile: scanMedia`; here the fake driver's "thing" keeps
# the file's name, so the test can ask what was announced).
send_image = [
  {{ push = "/sdcard/Pictures/{{file}}" }},
  {{ execute = "fake: setThing", args = {{ thing = "{{file}}" }} }},
  {{ tap = "accessibility id:attach" }},
  {{ tap = "xpath:(//GalleryItem)[1]" }},
  {{ tap = "id:confirm" }},
]

[messages]
item = "//MessageList/Bubble"
sender_attr = "sender"
text = ".//TextView/@text"
file_name = ".//FileName"
file_name_attr = "text"
image = ".//ImageView"

[identity]
text = "nonce"
document = "name"
image = "picture"

[browser.capabilities]
platformName = "Fake"
"appium:automationName" = "Fake"
"appium:deviceName" = "Fake"
"appium:app" = "{}"

[timeouts]
page_load_ms = 5000
poll_ms = 50
"#,
        app.display()
    )
}

fn strip_bodies(cmds: &[Command]) -> Vec<(&str, &str)> {
    cmds.iter()
        .map(|(m, p, _)| (m.as_str(), p.as_str()))
        .collect()
}

/// A profile's phone flow, command by command: logging in by waiting for an
/// accessibility id, opening a chat by xpath, a file pushed to the device
/// and sent by taps, a text typed into an element found by class name and
/// sent by id, and the chat read from the page source with its picture cut
/// from a screenshot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_app_flow_sends_exactly_the_commands_the_profile_describes() {
    let appium = Appium::start();
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("chat-app.xml");
    let text = chatprobe::platform::identity::tagged("see you", "a1b2c3d4e5f6");
    std::fs::write(&app, APP.replace("TAGGED", &text)).unwrap();
    let profile_path = dir.path().join("fake.toml");
    std::fs::write(&profile_path, profile(&app)).unwrap();
    let profile = Profile::load(&profile_path).unwrap();

    let proxy = Proxy {
        upstream: appium.url.clone(),
        log: Arc::default(),
        session: Arc::default(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let router = axum::Router::new()
        .fallback(forward)
        .with_state(proxy.clone());
    let server = tokio::spawn(async move { axum::serve(listener, router).await });

    let accounts = Accounts::load(&root().join("probes/accounts.testbed.toml")).unwrap();
    let platform = WebDriverPlatform::new(profile, accounts, "", &[url], true).unwrap();

    // A session: only the implicit wait set, no page to open (an app opens
    // with its session), the logged-in marker found by accessibility id,
    // and the endpoint asked whether it is a Grid (which node serves it).
    platform.ensure_session("intl-a").await.unwrap();
    let cmds = proxy.take();
    assert_eq!(
        strip_bodies(&cmds),
        [
            ("POST", "/session"),
            ("POST", "/session/S/timeouts"),
            ("POST", "/session/S/elements"),
            ("POST", "/graphql"),
        ],
        "{cmds:#?}"
    );
    assert_eq!(
        cmds[0].2["capabilities"]["alwaysMatch"]["appium:automationName"],
        "Fake"
    );
    assert_eq!(cmds[1].2, json!({ "implicit": 0 }));
    assert_eq!(
        cmds[2].2,
        json!({ "using": "accessibility id", "value": "conversations" })
    );

    // The chat with bob (intl-b's login), by xpath, tapped.
    assert!(platform
        .open_chat("intl-a", &Target::Direct("intl-b".into()))
        .await
        .unwrap());
    let cmds = proxy.take();
    assert_eq!(
        strip_bodies(&cmds),
        [
            ("POST", "/session/S/elements"),
            ("POST", "/session/S/element/E/click")
        ]
    );
    assert_eq!(
        cmds[0].2,
        json!({ "using": "xpath", "value": "//MockListItem[@name='bob']" })
    );

    // A file: pushed to the device under its own name, then the taps.
    let file = dir.path().join("probe-n1.pdf");
    std::fs::write(&file, b"%PDF-1.4 probe").unwrap();
    platform
        .send("intl-a", &Payload::File(file.clone()))
        .await
        .unwrap();
    let cmds = proxy.take();
    assert_eq!(
        strip_bodies(&cmds),
        [
            ("POST", "/session/S/appium/device/push_file"),
            ("POST", "/session/S/elements"),
            ("POST", "/session/S/element/E/click"),
            ("POST", "/session/S/elements"),
            ("POST", "/session/S/elements"),
            ("POST", "/session/S/element/E/click"),
            ("POST", "/session/S/elements"),
            ("POST", "/session/S/element/E/click"),
        ],
        "{cmds:#?}"
    );
    assert_eq!(cmds[0].2["path"], "/sdcard/Download/probe-n1.pdf");
    let pushed = base64::engine::general_purpose::STANDARD
        .decode(cmds[0].2["data"].as_str().unwrap())
        .unwrap();
    assert_eq!(pushed, b"%PDF-1.4 probe");
    let finds: Vec<&Value> = cmds
        .iter()
        .filter(|c| c.1.ends_with("/elements"))
        .map(|c| &c.2)
        .collect();
    assert_eq!(
        finds,
        [
            &json!({ "using": "accessibility id", "value": "attach" }),
            &json!({ "using": "xpath", "value": "//Gallery" }),
            &json!({ "using": "xpath", "value": "(//GalleryItem)[1]" }),
            &json!({ "using": "id", "value": "confirm" }),
        ]
    );

    // A picture: by its own flow, the extension command run with the
    // file's name in its argument.
    let picture = dir.path().join("probe-n2.png");
    std::fs::write(&picture, b"\x89PNG fake").unwrap();
    platform
        .send("intl-a", &Payload::File(picture.clone()))
        .await
        .unwrap();
    let cmds = proxy.take();
    assert_eq!(
        strip_bodies(&cmds),
        [
            ("POST", "/session/S/appium/device/push_file"),
            ("POST", "/session/S/execute/sync"),
            ("POST", "/session/S/elements"),
            ("POST", "/session/S/element/E/click"),
            ("POST", "/session/S/elements"),
            ("POST", "/session/S/element/E/click"),
            ("POST", "/session/S/elements"),
            ("POST", "/session/S/element/E/click"),
        ],
        "{cmds:#?}"
    );
    assert_eq!(cmds[0].2["path"], "/sdcard/Pictures/probe-n2.png");
    assert_eq!(
        cmds[1].2,
        json!({ "script": "fake: setThing", "args": [{ "thing": "probe-n2.png" }] })
    );

    // A text: typed into the composer, sent with the send button.
    platform
        .send("intl-a", &Payload::Text("hello".into()))
        .await
        .unwrap();
    let cmds = proxy.take();
    assert_eq!(
        strip_bodies(&cmds),
        [
            ("POST", "/session/S/element"),
            ("POST", "/session/S/element/E/value"),
            ("POST", "/session/S/element"),
            ("POST", "/session/S/element/E/click"),
        ],
        "{cmds:#?}"
    );
    assert_eq!(
        cmds[0].2,
        json!({ "using": "class name", "value": "MockInputField" })
    );
    assert_eq!(cmds[1].2["text"], "hello");

    // The taps landed where the profile said: the fake driver counts clicks.
    let session = proxy.session.lock().unwrap().clone();
    let base = format!("{}/session/{session}", appium.url);
    let clicks = async |id: &str| {
        let el = direct(
            http::Method::POST,
            &format!("{base}/element"),
            json!({ "using": "id", "value": id }),
        )
        .await;
        let eid = el["element-6066-11e4-a52e-4f735466cecf"]
            .as_str()
            .unwrap()
            .to_string();
        direct(
            http::Method::GET,
            &format!("{base}/element/{eid}/attribute/clicks"),
            Value::Null,
        )
        .await
    };
    assert_eq!(clicks("chat-bob").await, "1");
    assert_eq!(clicks("chat-alice").await, "");
    assert_eq!(clicks("attach").await, "2");
    assert_eq!(clicks("newest").await, "2");
    assert_eq!(clicks("older").await, "");
    assert_eq!(clicks("confirm").await, "2");
    let thing = direct(
        http::Method::POST,
        &format!("{base}/execute/sync"),
        json!({ "script": "fake: getThing", "args": [] }),
    )
    .await;
    assert_eq!(thing, "probe-n2.png");
    assert_eq!(clicks("send").await, "1");
    proxy.take();

    // The chat read without ids: one page source, one screenshot for the
    // picture (cut at the bubble's bounds, scaled to the screenshot).
    let seen = platform.look("intl-a").await.unwrap();
    let cmds = proxy.take();
    assert_eq!(
        strip_bodies(&cmds),
        [
            ("POST", "/session/S/elements"),
            ("GET", "/session/S/source"),
            ("GET", "/session/S/screenshot"),
            ("GET", "/session/S/window/rect"),
        ],
        "{cmds:#?}"
    );
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert!(seen.iter().all(|s| s.id.is_none()));
    assert!(seen.iter().all(|s| s.sender.as_deref() == Some("alice")));
    assert_eq!(
        chatprobe::platform::identity::tag_of(seen[0].text.as_deref().unwrap()),
        Some(chatprobe::platform::identity::tag("a1b2c3d4e5f6").as_str())
    );
    assert_eq!(seen[1].filename.as_deref(), Some("report q3.pdf"));
    assert_eq!(seen[0].filename, None);
    let pic = seen[2]
        .picture
        .as_ref()
        .expect("a picture cut from the screen");
    // The app is 200 wide, the fake screen 400: bounds 50×40 become 100×80.
    assert_eq!((pic.grey.width(), pic.grey.height()), (100, 80));
    assert!(seen[0].picture.is_none() && !seen[0].picture_pending);

    platform.close().await;
    server.abort();
}

/// An appium profile's message selectors are XPath: one that is not says
/// which key and how to fix it; so does a file flow that never hands the
/// file over. The shipped WeChat template loads.
#[test]
fn an_appium_profile_with_a_bad_xpath_is_refused_with_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    let text = profile(std::path::Path::new("/x.xml")).replace(
        "item = \"//MessageList/Bubble\"",
        "item = \"//MessageList[\"",
    );
    std::fs::write(&path, text).unwrap();
    let e = Profile::load(&path).unwrap_err().to_string();
    assert!(e.contains("messages.item") && e.contains("XPath"), "{e}");
    let no_hand_over = profile(std::path::Path::new("/x.xml"))
        .replace("  {{ push = \"/sdcard/Download/{{file}}\" }},\n", "")
        .replace("  { push = \"/sdcard/Download/{file}\" },\n", "");
    std::fs::write(&path, no_hand_over).unwrap();
    let e = Profile::load(&path).unwrap_err().to_string();
    assert!(e.contains("chat.send_file") && e.contains("push"), "{e}");
    let wechat = Profile::load(&root().join("probes/profiles/appium-android.toml")).unwrap();
    assert!(!wechat.tested);
    assert!(!wechat.file_steps(true).is_empty() && !wechat.file_steps(false).is_empty());
}
