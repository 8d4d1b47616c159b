//! The real [`Platform`]: one browser session per account through fantoccini
//! and W3C WebDriver, logged in once and reused.
//!
//! Endpoints: without `--webdriver`, chatprobe starts chromedriver itself
//! (see [`super::chromedriver`]) and restarts it if it dies; with one or more
//! URLs (a Selenium Grid, an Appium server) it spreads the account sessions
//! over them round-robin. Files go to the client by typing their path into the
//! file input; on a remote endpoint the file is first pushed with Selenium's
//! file-upload command (`POST /session/{id}/se/file`) and the returned path is
//! typed instead. Page-load, script and implicit timeouts are set explicitly
//! on every session. A session found dead (browser or driver gone) is dropped
//! and the send in flight fails with `session_lost`; the next use rebuilds it
//! and logs in again. [`WebDriverPlatform::close`] ends every session.
//!
//! Here: the struct, its endpoints and sessions. Beside it: `platform`
//! (the [`Platform`] impl), `steps` (profile steps, login, failures),
//! `pictures` (photographed bubbles, file pushes), `look` (the scripts that
//! read a chat), `errors` (WebDriver errors to failure codes), `session`
//! (raw session commands, credentials), `processes` (browsers left behind).

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use fantoccini::elements::Element;
use fantoccini::error::CmdError;
use fantoccini::wd::TimeoutConfiguration;
use fantoccini::{Client, ClientBuilder};
use serde_json::{json, Value};
use tokio::sync::Mutex;

use super::chromedriver::Chromedriver;
use super::identity::{FileRule, Identity, InFlight, Picture, Screenshots};
use super::locator::{element_id, Find, Locator, PushFile};
use super::profile::{fill_selector, ClientKind, Profile, Step};
use super::{Payload, Platform, PlatformError, Seen, Target};
use crate::accounts::Accounts;
use crate::dataset::Failure;
use crate::error::InputError;

mod errors;
mod look;
mod pictures;
mod platform;
mod processes;
mod session;
mod steps;

use errors::{classify, classify_quiet};
use look::{crop_pictures, Look, LOGGED_IN_SCRIPT, LOOK_SCRIPT, PICTURE_TAIL, SHOW_PICTURE_SCRIPT};
use processes::{kill_orphaned_browsers, reap_dead_owners};

/// Stop the browsers and remove the profile folders (`chatprobe-profiles-*`
/// in the temporary folder) that a chatprobe killed with kill -9 left
/// behind: every chatprobe command does this first, so what a browser
/// wrote there (sessions, logs) outlives its run only until then.
pub fn reap_left_behind() {
    reap_dead_owners(&std::env::temp_dir());
}
use session::{fill_free_ports, grid_node, substitute, SessionPost};

/// Where sessions are created.
enum Endpoints {
    /// chromedriver started and owned by chatprobe.
    Managed(StdMutex<Option<Chromedriver>>),
    /// URLs given by the user.
    Remote(Vec<String>),
}

/// What kind of endpoint, for run.json.
#[derive(Debug, Clone, serde::Serialize)]
pub struct EndpointInfo {
    /// `managed-chromedriver` or `remote`.
    pub kind: &'static str,
    /// How many endpoints.
    pub count: usize,
    /// The timeouts set on every session.
    pub timeouts: super::profile::Timeouts,
    /// Which endpoint (and, behind a Selenium Grid, which node) served each
    /// account's sessions, in the order they were created.
    pub sessions: Vec<ServedBy>,
}

/// Where one account's browser session ran.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ServedBy {
    /// The account's alias.
    pub account: String,
    /// The WebDriver endpoint the session was asked of (credentials
    /// redacted); `managed` for chatprobe's own chromedriver.
    pub endpoint: String,
    /// The Grid node that runs it (its URI, from the Grid's GraphQL
    /// endpoint), or empty when the endpoint is no Grid.
    pub node: String,
}

struct Slot {
    client: Option<Client>,
    chat: Option<Target>,
    endpoint: String,
    generation: u32,
}

/// Time spent in WebDriver round trips (for the benchmark and run.json).
#[derive(Debug, Clone, Copy, Default)]
pub struct RoundTrips {
    /// Commands issued.
    pub count: u64,
    /// Their total wall time.
    pub total: Duration,
}

/// The WebDriver implementation of [`Platform`].
pub struct WebDriverPlatform {
    profile: Profile,
    accounts: Accounts,
    passwords: HashMap<String, String>,
    base_url: String,
    /// The `Authorization` header the platform URL's credentials make
    /// (they are never in a URL the browser sees).
    authorization: Option<String>,
    endpoints: Endpoints,
    slots: HashMap<String, Mutex<Slot>>,
    user_data: tempfile::TempDir,
    round_trips: StdMutex<RoundTrips>,
    visible: bool,
    in_flight: InFlight,
    screenshots: Screenshots,
    /// Where a failed login or chat step leaves its screenshot.
    failure_screenshots: Option<PathBuf>,
    served: StdMutex<Vec<ServedBy>>,
    /// Endpoints that have no file-upload command.
    no_upload: StdMutex<std::collections::HashSet<String>>,
}

impl WebDriverPlatform {
    /// A platform for `accounts` through `profile` at `base_url`. With no
    /// `webdriver` URLs, chromedriver is started (now, so a missing one is
    /// reported before anything else happens).
    pub fn new(
        profile: Profile,
        accounts: Accounts,
        base_url: &str,
        webdriver: &[String],
        testbed: bool,
    ) -> Result<WebDriverPlatform, InputError> {
        let mut passwords = HashMap::new();
        for a in &accounts.accounts {
            passwords.insert(a.alias.clone(), accounts.password(a, testbed)?);
        }
        let endpoints = if webdriver.is_empty() {
            Endpoints::Managed(StdMutex::new(Some(Chromedriver::start()?)))
        } else {
            for u in webdriver {
                url::Url::parse(u).map_err(|e| {
                    InputError::new("--webdriver", format!("`{u}` is not a URL: {e}"))
                })?;
            }
            Endpoints::Remote(webdriver.to_vec())
        };
        let slots = accounts
            .accounts
            .iter()
            .enumerate()
            .map(|(i, a)| {
                let endpoint = match &endpoints {
                    Endpoints::Remote(urls) => urls[i % urls.len()].clone(),
                    Endpoints::Managed(_) => String::new(),
                };
                (
                    a.alias.clone(),
                    Mutex::new(Slot {
                        client: None,
                        chat: None,
                        endpoint,
                        generation: 0,
                    }),
                )
            })
            .collect();
        let (bare_url, authorization) = session::split_credentials(base_url);
        let user_data = tempfile::Builder::new()
            .prefix("chatprobe-profiles-")
            .tempdir()
            .map_err(|e| {
                InputError::new("<tmp>", format!("cannot create browser profiles: {e}"))
            })?;
        reap_dead_owners(user_data.path().parent().unwrap_or(Path::new("/tmp")));
        // Who owns these browsers: a later chatprobe reaps them if we die
        // without cleaning up (kill -9 leaves Chromium running).
        let _ = std::fs::write(
            user_data.path().join("owner.pid"),
            std::process::id().to_string(),
        );
        Ok(WebDriverPlatform {
            profile,
            accounts,
            passwords,
            base_url: bare_url.trim_end_matches('/').to_string(),
            authorization,
            endpoints,
            slots,
            user_data,
            round_trips: StdMutex::new(RoundTrips::default()),
            visible: false,
            in_flight: InFlight::default(),
            screenshots: Screenshots::default(),
            failure_screenshots: None,
            served: StdMutex::new(Vec::new()),
            no_upload: StdMutex::new(Default::default()),
        })
    }

    /// Keep a screenshot of the page where a login or chat step failed, in
    /// this folder (created when the first is taken).
    pub fn set_failure_screenshots(&mut self, dir: PathBuf) {
        self.failure_screenshots = Some(dir);
    }

    /// Show the browser (drop `--headless`): for `chatprobe login`.
    pub fn set_visible(&mut self, visible: bool) {
        self.visible = visible;
    }

    /// What endpoints are used, for run.json.
    pub fn endpoint_info(&self) -> EndpointInfo {
        let (kind, count) = match &self.endpoints {
            Endpoints::Managed(_) => ("managed-chromedriver", 1),
            Endpoints::Remote(u) => ("remote", u.len()),
        };
        EndpointInfo {
            kind,
            count,
            timeouts: self.profile.timeouts,
            sessions: self.served.lock().expect("served").clone(),
        }
    }

    /// WebDriver round trips so far.
    pub fn round_trips(&self) -> RoundTrips {
        *self.round_trips.lock().expect("round trips")
    }

    /// The managed chromedriver's pid (tests kill it to simulate a crash).
    pub fn chromedriver_pid(&self) -> Option<u32> {
        match &self.endpoints {
            Endpoints::Managed(d) => d.lock().expect("driver").as_ref().map(|d| d.pid()),
            Endpoints::Remote(_) => None,
        }
    }

    /// End every session (and with it the browsers); browsers orphaned by a
    /// dead chromedriver are killed too.
    pub async fn close(&self) {
        for slot in self.slots.values() {
            let mut s = slot.lock().await;
            if let Some(c) = s.client.take() {
                let _ = tokio::time::timeout(Duration::from_secs(10), c.close()).await;
            }
        }
        kill_orphaned_browsers(self.user_data.path());
    }

    fn managed_url(&self) -> Result<String, PlatformError> {
        match &self.endpoints {
            Endpoints::Managed(m) => {
                let mut guard = m.lock().expect("driver");
                let alive = guard.as_mut().is_some_and(|d| d.alive());
                if !alive {
                    // Its browsers outlive it: end them before starting anew.
                    kill_orphaned_browsers(self.user_data.path());
                    *guard = Some(Chromedriver::start().map_err(|e| {
                        PlatformError::new(Failure::DriverUnreachable, e.to_string())
                    })?);
                }
                Ok(guard.as_ref().expect("started").url())
            }
            Endpoints::Remote(_) => unreachable!("remote endpoints are per slot"),
        }
    }

    fn is_remote(&self) -> bool {
        matches!(self.endpoints, Endpoints::Remote(_))
    }

    /// Time one WebDriver command.
    async fn rt<T>(
        &self,
        fut: impl std::future::Future<Output = Result<T, CmdError>>,
    ) -> Result<T, CmdError> {
        let t0 = Instant::now();
        let r = fut.await;
        let mut s = self.round_trips.lock().expect("round trips");
        s.count += 1;
        s.total += t0.elapsed();
        r
    }

    fn capabilities(&self, alias: &str, generation: u32) -> serde_json::Map<String, Value> {
        let mut caps = serde_json::Map::new();
        if self.profile.kind == ClientKind::Web {
            let mut args: Vec<String> = self
                .profile
                .browser
                .args
                .iter()
                .filter(|a| !(self.visible && a.starts_with("--headless")))
                .cloned()
                .collect();
            let dir = self
                .profile
                .persistent_dir(alias)
                .unwrap_or_else(|| self.user_data.path().join(format!("{alias}-{generation}")));
            args.push(format!("--user-data-dir={}", dir.display()));
            let mut opts = json!({ "args": args });
            if !self.profile.browser.binary.is_empty() {
                opts["binary"] = json!(self.profile.browser.binary);
            }
            caps.insert("browserName".into(), json!("chrome"));
            caps.insert("goog:chromeOptions".into(), opts);
        }
        for (k, v) in &self.profile.browser.capabilities {
            let mut v = serde_json::to_value(v).unwrap_or(Value::Null);
            fill_free_ports(&mut v);
            caps.insert(k.clone(), v);
        }
        caps
    }

    async fn new_session(&self, alias: &str, slot: &mut Slot) -> Result<Client, PlatformError> {
        let endpoint = if self.is_remote() {
            slot.endpoint.clone()
        } else {
            self.managed_url()?
        };
        slot.generation += 1;
        let caps = self.capabilities(alias, slot.generation);
        let t = self.profile.timeouts;
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&endpoint)
            .await
            .map_err(|e| {
                PlatformError::new(
                    Failure::DriverUnreachable,
                    format!("no session at {endpoint}: {e}"),
                )
            })?;
        // A phone app has no scripts or pages to time (and Appium's native
        // drivers refuse those two): only the implicit wait is set there.
        let web = self.profile.kind == ClientKind::Web;
        let timeouts = TimeoutConfiguration::new(
            web.then(|| Duration::from_millis(t.script_ms)),
            web.then(|| Duration::from_millis(t.page_load_ms)),
            Some(Duration::from_millis(t.implicit_ms)),
        );
        if let (Some(auth), true) = (&self.authorization, web) {
            // The credentials go as a header, set in the browser's memory,
            // never in a URL its profile could keep. Only a Chromium-based
            // browser has the DevTools command; the error does not quote
            // the command (it holds the credentials).
            let cdp = |cmd: &str, params: Value| {
                SessionPost("goog/cdp/execute", json!({ "cmd": cmd, "params": params }))
            };
            let set = async {
                self.rt(client.issue_cmd(cdp("Network.enable", json!({}))))
                    .await?;
                self.rt(client.issue_cmd(cdp(
                    "Network.setExtraHTTPHeaders",
                    json!({ "headers": { "Authorization": auth } }),
                )))
                .await
            };
            if let Err(e) = set.await {
                let _ = client.clone().close().await;
                return Err(classify_quiet(
                    e,
                    Failure::LoginFailed,
                    "the platform URL carries credentials, which chatprobe sends as a header through the browser's DevTools, and this endpoint's browser has none: run a Chromium-based browser there, or log in with the profile's login steps instead",
                ));
            }
        }
        let setup = async {
            self.rt(client.update_timeouts(timeouts)).await?;
            self.open_login_page(&client).await
        };
        if let Err(e) = setup.await {
            let _ = client.close().await;
            return Err(classify(e, Failure::LoginFailed, "opening the login page"));
        }
        if let Err(e) = self.log_in(&client, alias).await {
            let _ = client.clone().close().await;
            return Err(e);
        }
        let node = match (self.is_remote(), client.session_id().await) {
            (true, Ok(Some(id))) => grid_node(&endpoint, &id).await.unwrap_or_default(),
            _ => String::new(),
        };
        let served = ServedBy {
            account: alias.to_string(),
            endpoint: if self.is_remote() {
                crate::redact::url(&endpoint)
            } else {
                "managed".into()
            },
            node,
        };
        let mut list = self.served.lock().expect("served");
        if list.last() != Some(&served) {
            list.push(served);
        }
        Ok(client)
    }

    /// Send the file at `local` by the profile's file steps.
    async fn send_file(
        &self,
        c: &Client,
        chat: &Option<Target>,
        endpoint: &str,
        local: &Path,
    ) -> Result<(), PlatformError> {
        let name = local
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("file")
            .to_string();
        let wait = Duration::from_millis(self.profile.timeouts.page_load_ms);
        let image = super::identity::is_image(local);
        for (i, step) in self.profile.file_steps(image).iter().enumerate() {
            let what = format!("file step {} of profile `{}`", i + 1, self.profile.name);
            if let Some(dest) = &step.push {
                let bytes = std::fs::read(local).map_err(|e| {
                    PlatformError::new(Failure::UploadFailed, format!("{}: {e}", local.display()))
                        .before_sending()
                })?;
                let cmd = PushFile {
                    path: dest.replace("{file}", &name),
                    data: base64::engine::general_purpose::STANDARD.encode(bytes),
                };
                self.rt(c.issue_cmd(cmd)).await.map_err(|e| {
                    classify(
                        e,
                        Failure::UploadFailed,
                        &format!("{what}: pushing the file to the device"),
                    )
                    .before_sending()
                })?;
            } else if let Some(sel) = &step.upload {
                let typed = if self.is_remote() {
                    self.push_file(c, endpoint, local)
                        .await
                        .map_err(PlatformError::before_sending)?
                } else {
                    local.to_string_lossy().into_owned()
                };
                let sel = self
                    .in_chat(sel, chat)
                    .map_err(PlatformError::before_sending)?;
                let input = self.rt(self.find(c, &sel)).await.map_err(|e| {
                    classify(e, Failure::UploadFailed, "finding the file input").before_sending()
                })?;
                // Typing a path into an input that takes `multiple` files
                // adds to what it holds: a client that does not empty it
                // after an upload (Converse) would send the previous file
                // again. Empty it first.
                if self.profile.kind == ClientKind::Web {
                    self.rt(c.execute(
                        "arguments[0].value = '';",
                        vec![serde_json::to_value(&input).unwrap_or_default()],
                    ))
                    .await
                    .map_err(|e| {
                        classify(e, Failure::UploadFailed, "emptying the file input")
                            .before_sending()
                    })?;
                }
                self.rt(input.send_keys(&typed))
                    .await
                    .map_err(|e| classify(e, Failure::UploadFailed, "uploading the file"))?;
            } else {
                let mut step = step.clone();
                for sel in step.selectors_mut() {
                    *sel = self.in_chat(sel, chat)?;
                }
                self.step(c, &step, wait, &|v: &str| v.replace("{file}", &name))
                    .await
                    .map_err(|e| classify(e, Failure::UploadFailed, &what))?;
            }
        }
        Ok(())
    }

    /// Read the chat of a phone app from its page source (see
    /// [`super::source`]); pictures are cut from one screenshot.
    async fn look_source(
        &self,
        c: &Client,
        alias: &str,
        chat: &Option<Target>,
    ) -> Result<Vec<Seen>, PlatformError> {
        let m = &self.profile.messages;
        let logged_out = &self.profile.login.logged_out;
        if !logged_out.is_empty()
            && !self
                .rt(self.find_all(c, logged_out))
                .await
                .map_err(|e| classify(e, Failure::ElementMissing, "reading the chat view"))?
                .is_empty()
        {
            return Err(PlatformError::new(
                Failure::LoggedOut,
                format!("`{alias}`'s client shows its login page"),
            ));
        }
        let xml = self
            .rt(c.source())
            .await
            .map_err(|e| classify(e, Failure::ElementMissing, "reading the page source"))?;
        let (item, text, file_name, image) = (
            self.in_chat(&m.item, chat)?,
            self.in_chat(&m.text, chat)?,
            self.in_chat(&m.file_name, chat)?,
            self.in_chat(&m.image, chat)?,
        );
        let pictures = self.profile.identity.image == FileRule::Picture;
        let selectors = super::source::Selectors {
            item: &item,
            id_attr: &m.id_attr,
            sender_attr: &m.sender_attr,
            filename_attr: &m.filename_attr,
            text: &text,
            file_name: &file_name,
            file_name_attr: &m.file_name_attr,
            image: if pictures { &image } else { "" },
        };
        let items = super::source::read(&xml, &selectors)
            .map_err(|e| PlatformError::new(Failure::ElementMissing, e))?;
        let tail = items.len().saturating_sub(PICTURE_TAIL);
        let wanted: Vec<(usize, [f64; 4])> = items
            .iter()
            .enumerate()
            .skip(tail)
            .filter_map(|(k, it)| it.image.map(|r| (k, r)))
            .collect();
        let mut cut: HashMap<usize, Option<Arc<Picture>>> = HashMap::new();
        if !wanted.is_empty() {
            let png = self
                .rt(c.screenshot())
                .await
                .map_err(|e| classify(e, Failure::ElementMissing, "taking a screenshot"))?;
            let window = self
                .rt(c.get_window_size())
                .await
                .map_err(|e| classify(e, Failure::ElementMissing, "reading the window size"))?;
            let rects = wanted.clone();
            let pics =
                tokio::task::spawn_blocking(move || crop_pictures(&png, window.0 as u32, &rects))
                    .await
                    .unwrap_or_default();
            cut.extend(pics);
        }
        Ok(items
            .into_iter()
            .enumerate()
            .map(|(k, it)| {
                let picture = cut.remove(&k).flatten();
                Seen {
                    id: it.id,
                    sender: it.sender,
                    filename: it.filename,
                    text: it.text,
                    picture_pending: it.image.is_some() && picture.is_none() && k >= tail,
                    picture,
                }
            })
            .collect())
    }

    fn slot(&self, alias: &str) -> Result<&Mutex<Slot>, PlatformError> {
        self.slots.get(alias).ok_or_else(|| {
            PlatformError::new(Failure::LoginFailed, format!("no account `{alias}`"))
        })
    }

    /// Run `f` on `alias`'s live client; a lost session is dropped.
    async fn with_client<T>(
        &self,
        alias: &str,
        f: impl AsyncFnOnce(&Client, &mut Option<Target>) -> Result<T, PlatformError>,
    ) -> Result<T, PlatformError> {
        let mut slot = self.slot(alias)?.lock().await;
        let Some(client) = slot.client.clone() else {
            return Err(PlatformError::new(
                Failure::SessionLost,
                format!("`{alias}` has no live session"),
            )
            .before_sending());
        };
        let mut chat = slot.chat.clone();
        let r = f(&client, &mut chat).await;
        match &r {
            Err(e) if e.failure == Failure::SessionLost => {
                slot.client = None;
                slot.chat = None;
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(Duration::from_secs(5), client.close()).await;
                });
            }
            _ => slot.chat = chat,
        }
        r
    }

    fn peer_login(&self, alias: &str) -> Result<String, PlatformError> {
        self.accounts
            .get(alias)
            .map(|a| a.login.clone())
            .ok_or_else(|| {
                PlatformError::new(Failure::ChatNotFound, format!("no account `{alias}`"))
            })
    }

    /// A selector of the open chat's view: `{login}` (the peer's) or
    /// `{group}` filled in, for clients that keep several chats in the page.
    fn in_chat(&self, template: &str, chat: &Option<Target>) -> Result<String, PlatformError> {
        Ok(match chat {
            Some(Target::Direct(peer)) => fill_selector(template, "login", &self.peer_login(peer)?),
            Some(Target::Group(g)) => fill_selector(template, "group", g),
            None => template.to_string(),
        })
    }
}
