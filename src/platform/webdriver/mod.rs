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
mod processes;
mod session;

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

    async fn log_in(&self, c: &Client, alias: &str) -> Result<(), PlatformError> {
        let account = self.accounts.get(alias).expect("checked alias");
        let wait = Duration::from_millis(self.profile.timeouts.page_load_ms);
        self.run_steps(
            c,
            alias,
            "login.steps",
            &self.profile.login.steps,
            wait,
            Failure::LoginFailed,
            |v| {
                v.replace("{login}", &account.login)
                    .replace("{password}", &self.passwords[alias])
            },
        )
        .await?;
        self.rt(self.wait_for(c, &self.profile.login.logged_in, wait))
            .await
            .map_err(|e| {
                classify_quiet(
                    e,
                    Failure::LoginFailed,
                    &format!("`{alias}` did not reach the logged-in page"),
                )
            })?;
        Ok(())
    }

    /// Open the login page: a web client's URL; a phone app opens with its
    /// session, so there is nothing to open.
    async fn open_login_page(&self, c: &Client) -> Result<(), CmdError> {
        if self.profile.kind == ClientKind::Appium {
            return Ok(());
        }
        self.rt(c.goto(&self.profile.login_url(&self.base_url)))
            .await
    }

    /// Every element `sel` (CSS or a prefixed strategy) names now.
    async fn find_all(&self, c: &Client, sel: &str) -> Result<Vec<Element>, CmdError> {
        let l = Locator::parse(sel);
        let v = c
            .issue_cmd(Find {
                using: l.using,
                value: l.value.to_string(),
                from: None,
                many: true,
            })
            .await?;
        Ok(v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(element_id)
                    .map(|id| Element::from_element_id(c.clone(), id.into()))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// The first element `sel` names (the endpoint's "no such element"
    /// when there is none).
    async fn find(&self, c: &Client, sel: &str) -> Result<Element, CmdError> {
        let l = Locator::parse(sel);
        let v = c
            .issue_cmd(Find {
                using: l.using,
                value: l.value.to_string(),
                from: None,
                many: false,
            })
            .await?;
        let id = element_id(&v).ok_or_else(|| {
            CmdError::NotW3C(json!({ "unexpected element reference": v.to_string() }))
        })?;
        Ok(Element::from_element_id(c.clone(), id.into()))
    }

    /// The first element `sel` names, waiting up to `wait` for it (looking
    /// every `poll_ms`).
    async fn wait_for(&self, c: &Client, sel: &str, wait: Duration) -> Result<Element, CmdError> {
        let deadline = Instant::now() + wait;
        let period = Duration::from_millis(self.profile.timeouts.poll_ms.clamp(20, 1000));
        loop {
            if let Some(e) = self.find_all(c, sel).await?.into_iter().next() {
                return Ok(e);
            }
            if Instant::now() >= deadline {
                return Err(CmdError::WaitTimeout);
            }
            tokio::time::sleep(period).await;
        }
    }

    /// Wait until `sel` or `other` exists; whether `other` does (checked
    /// first, so that both there counts as `other`).
    async fn first_of(
        &self,
        c: &Client,
        sel: &str,
        other: &str,
        wait: Duration,
    ) -> Result<bool, CmdError> {
        let deadline = Instant::now() + wait;
        let period = Duration::from_millis(self.profile.timeouts.poll_ms.clamp(20, 1000));
        loop {
            if !self.find_all(c, other).await?.is_empty() {
                return Ok(true);
            }
            if !self.find_all(c, sel).await?.is_empty() {
                return Ok(false);
            }
            if Instant::now() >= deadline {
                return Err(CmdError::WaitTimeout);
            }
            tokio::time::sleep(period).await;
        }
    }

    /// Run a profile's step list (`login.steps`, `chat.open_direct` …) in
    /// order. A failed step is named: the list, the step's number, verb and
    /// selector, the page it was on (redacted) and the path of a screenshot
    /// of it where one could be taken. A `fill` step's WebDriver error is
    /// dropped, as it could echo what was typed (a password).
    #[allow(clippy::too_many_arguments)]
    async fn run_steps(
        &self,
        c: &Client,
        alias: &str,
        list: &str,
        steps: &[Step],
        wait: Duration,
        during: Failure,
        subst: impl Fn(&str) -> String,
    ) -> Result<(), PlatformError> {
        for (i, step) in steps.iter().enumerate() {
            let Err(e) = self.step(c, step, wait, &subst).await else {
                continue;
            };
            let (verb, sel) = match (&step.fill, &step.click, &step.wait) {
                (Some(s), ..) => ("fill", s.as_str()),
                (_, Some(s), _) => ("click", s.as_str()),
                (.., Some(s)) => ("wait", s.as_str()),
                _ => ("execute", ""),
            };
            let page = self
                .rt(c.current_url())
                .await
                .map(|u| crate::redact::url(u.as_str()))
                .unwrap_or_else(|_| "an unknown page".into());
            let why = match &e {
                CmdError::WaitTimeout => format!("not there after {} s", wait.as_secs()),
                _ if verb == "fill" => String::new(),
                e => e.to_string(),
            };
            let mut what = format!(
                "step {} of `{list}` in profile `{}` ({verb} {}) failed on {page}",
                i + 1,
                self.profile.name,
                if sel.is_empty() {
                    "a script".into()
                } else {
                    format!("`{sel}`")
                },
            );
            if !why.is_empty() {
                what.push_str(&format!(": {why}"));
            }
            if let Some(shot) = self.screenshot_of_failure(c, alias, list, i + 1).await {
                what.push_str(&format!(" (screenshot: {})", shot.display()));
            }
            return Err(classify_quiet(e, during, &what));
        }
        Ok(())
    }

    /// A screenshot of the whole page, saved in the folder
    /// [`Self::set_failure_screenshots`] named, as
    /// `ALIAS-LIST-stepN-UNIXMS.png`; `None` without a folder or when the
    /// browser cannot take one.
    async fn screenshot_of_failure(
        &self,
        c: &Client,
        alias: &str,
        list: &str,
        step: usize,
    ) -> Option<PathBuf> {
        let dir = self.failure_screenshots.as_ref()?;
        let png = tokio::time::timeout(Duration::from_secs(10), c.screenshot())
            .await
            .ok()?
            .ok()?;
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or_default();
        let path = dir.join(format!("{alias}-{list}-step{step}-{ms}.png"));
        std::fs::create_dir_all(dir).ok()?;
        std::fs::write(&path, png).ok()?;
        Some(path)
    }

    /// One `fill`, `click` (`tap`), `wait` or `execute` step; `fill` values
    /// and `execute` arguments go through `subst` (placeholders).
    async fn step(
        &self,
        c: &Client,
        step: &Step,
        wait: Duration,
        subst: &impl Fn(&str) -> String,
    ) -> Result<(), CmdError> {
        if let (Some(unless), Some(sel)) = (&step.unless, step.locator()) {
            if self.first_of(c, sel, unless, wait).await? {
                return Ok(());
            }
        }
        if let (Some(sel), Some(value)) = (&step.fill, &step.value) {
            let el = self.rt(self.wait_for(c, sel, wait)).await?;
            self.rt(el.send_keys(&subst(value))).await?;
        } else if let Some(sel) = &step.click {
            let el = self.rt(self.wait_for(c, sel, wait)).await?;
            self.rt(el.click()).await?;
        } else if let Some(sel) = &step.wait {
            self.rt(self.wait_for(c, sel, wait)).await?;
        } else if let Some(script) = &step.execute {
            let mut args =
                serde_json::to_value(step.args.clone().unwrap_or_default()).unwrap_or_default();
            substitute(&mut args, &subst);
            self.rt(c.execute(script, vec![args])).await?;
        }
        Ok(())
    }

    /// Whether the client shows its logged-in marker and not its login page.
    async fn logged_in(&self, c: &Client) -> Result<bool, CmdError> {
        let p = &self.profile.login;
        if self.profile.kind == ClientKind::Web {
            let v = self
                .rt(c.execute(
                    LOGGED_IN_SCRIPT,
                    vec![json!(p.logged_in), json!(p.logged_out)],
                ))
                .await?;
            return Ok(v.as_bool() == Some(true));
        }
        if self.rt(self.find_all(c, &p.logged_in)).await?.is_empty() {
            return Ok(false);
        }
        Ok(p.logged_out.is_empty() || self.rt(self.find_all(c, &p.logged_out)).await?.is_empty())
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
                for sel in [
                    &mut step.fill,
                    &mut step.click,
                    &mut step.wait,
                    &mut step.unless,
                ]
                .into_iter()
                .flatten()
                {
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

    /// The picture of a bubble (element reference `r`), photographed once
    /// per element and session. None: it went stale meanwhile, or is empty.
    async fn picture(
        &self,
        c: &Client,
        alias: &str,
        r: &serde_json::Map<String, Value>,
    ) -> Result<Option<Arc<Picture>>, PlatformError> {
        let Some(id) = r.values().next().and_then(|v| v.as_str()) else {
            return Ok(None);
        };
        let key = format!("{alias}|{id}");
        if let Some(p) = self.screenshots.get(&key) {
            return Ok(Some(p));
        }
        let el = fantoccini::elements::Element::from_element_id(c.clone(), id.to_string().into());
        // Two shots, frames apart, must agree: a browser may first paint a
        // freshly loaded picture through another decode path (pixels ±1 in
        // a third of the picture, seen with Chromium 156), which is
        // more than what tells two fresh copies of a picture apart. Only a
        // settled picture is kept; an unsettled one is pending, and the next
        // look photographs it again.
        let Some((png, (w, h))) = self.shot(c, &el).await? else {
            return Ok(None);
        };
        match self.shot(c, &el).await? {
            Some((again, _)) if again == png => {}
            _ => return Ok(None),
        }
        let picture = tokio::task::spawn_blocking(move || Picture::from_png(&png))
            .await
            .ok()
            .flatten()
            .filter(|p| {
                (p.grey.width() as f64 - w).abs() <= 2.0
                    && (p.grey.height() as f64 - h).abs() <= 2.0
            })
            .map(Arc::new);
        if let Some(p) = &picture {
            self.screenshots.put(&key, p.clone());
        }
        Ok(picture)
    }

    /// One screenshot of picture element `el`, loaded, wholly in view and
    /// not moved while it was taken, with its size in CSS pixels; None if
    /// it cannot be taken now.
    async fn shot(
        &self,
        c: &Client,
        el: &fantoccini::elements::Element,
    ) -> Result<Option<(Vec<u8>, (f64, f64))>, PlatformError> {
        // Whole and in view, or not yet: a screenshot of a picture cut by
        // the window or its chat's scroll box would be another picture.
        let shown = self
            .rt(c.execute_async(
                SHOW_PICTURE_SCRIPT,
                vec![serde_json::to_value(el).unwrap_or_default()],
            ))
            .await;
        let rect =
            |v: Value| -> Option<Vec<f64>> { v.as_array()?.iter().map(Value::as_f64).collect() };
        let Some(before) = shown.ok().and_then(rect).filter(|r| r.len() == 4) else {
            return Ok(None);
        };
        let png = match self.rt(el.screenshot()).await {
            Ok(png) => png,
            Err(e) => {
                let e = classify(
                    e,
                    Failure::ElementMissing,
                    "photographing a received picture",
                );
                return match e.failure {
                    Failure::SessionLost | Failure::DriverTimeout => Err(e),
                    _ => Ok(None),
                };
            }
        };
        // The client may scroll its chat while the screenshot is taken (a
        // new message arrived): then it shows another part of the page.
        let moved = self
            .rt(c.execute(
                "const r = arguments[0].getBoundingClientRect(); return [r.top, r.left];",
                vec![serde_json::to_value(el).unwrap_or_default()],
            ))
            .await
            .ok()
            .and_then(rect)
            .is_none_or(|after| {
                after.len() != 2
                    || (after[0] - before[2]).abs() > 0.5
                    || (after[1] - before[3]).abs() > 0.5
            });
        Ok((!moved).then_some((png, (before[0], before[1]))))
    }

    /// Put the file where the remote browser can read it: Selenium's
    /// `se/file` (Grid), else the older `file`; an endpoint that has
    /// neither (Appium's Chromium driver) gets the local path, which works
    /// when it runs on this machine (and is remembered, so the two failing
    /// commands are not tried again).
    async fn push_file(
        &self,
        c: &Client,
        endpoint: &str,
        path: &Path,
    ) -> Result<String, PlatformError> {
        let local = || path.to_string_lossy().into_owned();
        if self.no_upload.lock().expect("no_upload").contains(endpoint) {
            return Ok(local());
        }
        let bytes = std::fs::read(path).map_err(|e| {
            PlatformError::new(Failure::UploadFailed, format!("{}: {e}", path.display()))
        })?;
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("file")
            .to_string();
        let mut zipped = std::io::Cursor::new(Vec::new());
        {
            let mut z = zip::ZipWriter::new(&mut zipped);
            z.start_file(name, zip::write::SimpleFileOptions::default())
                .and_then(|_| z.write_all(&bytes).map_err(Into::into))
                .and_then(|_| z.finish().map(|_| ()))
                .map_err(|e| PlatformError::new(Failure::UploadFailed, e.to_string()))?;
        }
        let b64 = base64::engine::general_purpose::STANDARD.encode(zipped.into_inner());
        let unknown = |e: &CmdError| e.is_unknown_command() || e.is_unknown_path();
        let v = match self
            .rt(c.issue_cmd(SessionPost("se/file", json!({ "file": b64.clone() }))))
            .await
        {
            Err(e) if unknown(&e) => match self
                .rt(c.issue_cmd(SessionPost("file", json!({ "file": b64 }))))
                .await
            {
                Err(e) if unknown(&e) => {
                    self.no_upload
                        .lock()
                        .expect("no_upload")
                        .insert(endpoint.to_string());
                    return Ok(local());
                }
                other => other,
            },
            other => other,
        }
        .map_err(|e| {
            classify(
                e,
                Failure::UploadFailed,
                "pushing the file to the remote browser",
            )
        })?;
        v.as_str().map(String::from).ok_or_else(|| {
            PlatformError::new(Failure::UploadFailed, "the endpoint returned no path")
        })
    }
}

impl Platform for WebDriverPlatform {
    fn identity(&self) -> Identity {
        self.profile.identity
    }

    /// The platform's URL answers an HTTP request (any status) within 3 s
    /// (an `https` URL is not checked: taken as answering).
    async fn reachable(&self) -> bool {
        session::answers(&self.base_url, self.authorization.as_deref())
            .await
            .unwrap_or(true)
    }

    fn in_flight(&self) -> Option<&InFlight> {
        Some(&self.in_flight)
    }

    fn provenance(&self) -> Option<Value> {
        serde_json::to_value(self.endpoint_info()).ok()
    }

    async fn ensure_session(&self, alias: &str) -> Result<(), PlatformError> {
        let mut slot = self.slot(alias)?.lock().await;
        // A managed driver that died takes its sessions with it.
        if let Endpoints::Managed(m) = &self.endpoints {
            let dead = m
                .lock()
                .expect("driver")
                .as_mut()
                .is_none_or(|d| !d.alive());
            if dead {
                slot.client = None;
                slot.chat = None;
            }
        }
        if let Some(c) = slot.client.clone() {
            // Still logged in? A platform that restarted, or expired the
            // session, shows its login page: log in again in this browser.
            match self.logged_in(&c).await {
                Ok(true) => return Ok(()),
                Ok(false) => {
                    slot.chat = None;
                    let again = async {
                        self.open_login_page(&c).await.map_err(|e| {
                            classify(e, Failure::LoginFailed, "opening the login page")
                        })?;
                        self.log_in(&c, alias).await
                    };
                    return match again.await {
                        Err(e) if e.failure == Failure::SessionLost => {
                            slot.client = None;
                            Err(e)
                        }
                        other => other,
                    };
                }
                Err(e) => {
                    let e = classify(e, Failure::SessionLost, "checking the login");
                    if e.failure != Failure::SessionLost {
                        return Err(e);
                    }
                    // Dead: rebuild below.
                    slot.client = None;
                    slot.chat = None;
                    tokio::spawn(async move {
                        let _ = tokio::time::timeout(Duration::from_secs(5), c.close()).await;
                    });
                }
            }
        }
        let client = self.new_session(alias, &mut slot).await?;
        slot.client = Some(client);
        slot.chat = None;
        Ok(())
    }

    async fn open_chat(&self, alias: &str, target: &Target) -> Result<bool, PlatformError> {
        let (name, value, template, steps) = match target {
            Target::Direct(peer) => (
                "login",
                self.peer_login(peer)?,
                &self.profile.chat.direct,
                &self.profile.chat.open_direct,
            ),
            Target::Group(g) => (
                "group",
                g.clone(),
                &self.profile.chat.group,
                &self.profile.chat.open_group,
            ),
        };
        let selector = fill_selector(template, name, &value);
        let needle = format!("{{{name}}}");
        let wait = Duration::from_millis(self.profile.timeouts.page_load_ms);
        self.with_client(alias, async |c, chat| {
            if chat.as_ref() == Some(target) {
                return Ok(false);
            }
            if !steps.is_empty() {
                let steps: Vec<Step> = steps
                    .iter()
                    .map(|step| {
                        let mut step = step.clone();
                        for sel in [
                            &mut step.fill,
                            &mut step.click,
                            &mut step.wait,
                            &mut step.unless,
                        ]
                        .into_iter()
                        .flatten()
                        {
                            *sel = fill_selector(sel, name, &value);
                        }
                        step
                    })
                    .collect();
                let list = match target {
                    Target::Direct(_) => "chat.open_direct",
                    Target::Group(_) => "chat.open_group",
                };
                self.run_steps(c, alias, list, &steps, wait, Failure::ChatNotFound, |v| {
                    v.replace(&needle, &value)
                })
                .await
                .map_err(|e| {
                    PlatformError::new(
                        e.failure,
                        format!("opening the chat with {target}: {}", e.message),
                    )
                })?;
                *chat = Some(target.clone());
                return Ok(true);
            }
            let el = self
                .rt(self.wait_for(c, &selector, wait))
                .await
                .map_err(|e| {
                    classify(
                        e,
                        Failure::ChatNotFound,
                        &format!("opening the chat with {target}"),
                    )
                })?;
            self.rt(el.click()).await.map_err(|e| {
                classify(
                    e,
                    Failure::ChatNotFound,
                    &format!("opening the chat with {target}"),
                )
            })?;
            *chat = Some(target.clone());
            Ok(true)
        })
        .await
    }

    async fn send(&self, alias: &str, payload: &Payload) -> Result<(), PlatformError> {
        let p = &self.profile.chat;
        let endpoint = self
            .slot(alias)
            .map_err(PlatformError::before_sending)?
            .lock()
            .await
            .endpoint
            .clone();
        self.with_client(alias, async |c, chat| match payload {
            Payload::Text(text) => {
                let text_input = self
                    .in_chat(&p.text_input, chat)
                    .map_err(PlatformError::before_sending)?;
                let send_button = self
                    .in_chat(&p.send_button, chat)
                    .map_err(PlatformError::before_sending)?;
                let input = self.rt(self.find(c, &text_input)).await.map_err(|e| {
                    classify(e, Failure::SendFailed, "finding the text input").before_sending()
                })?;
                let r = async {
                    if send_button.is_empty() {
                        self.rt(input.send_keys(&format!("{text}\u{E007}"))).await?;
                    } else {
                        self.rt(input.send_keys(text)).await?;
                        let b = self.rt(self.find(c, &send_button)).await?;
                        self.rt(b.click()).await?;
                    }
                    Ok::<(), CmdError>(())
                };
                r.await
                    .map_err(|e| classify(e, Failure::SendFailed, "sending a text"))
            }
            Payload::File(path) => {
                let local = path.canonicalize().map_err(|e| {
                    PlatformError::new(Failure::UploadFailed, format!("{}: {e}", path.display()))
                        .before_sending()
                })?;
                self.send_file(c, chat, &endpoint, &local).await
            }
        })
        .await
    }

    async fn look(&self, alias: &str) -> Result<Vec<Seen>, PlatformError> {
        let m = &self.profile.messages;
        self.with_client(alias, async |c, chat| {
            if self.profile.kind == ClientKind::Appium {
                return self.look_source(c, alias, chat).await;
            }
            let pictures = self.profile.identity.image == FileRule::Picture;
            let args = vec![
                json!(self.in_chat(&m.item, chat)?),
                json!(m.id_attr),
                json!(m.sender_attr),
                json!(m.filename_attr),
                json!(m.text),
                json!(self.profile.login.logged_out),
                json!(self.in_chat(&m.file_name, chat)?),
                json!(m.file_name_attr),
                json!(if pictures { m.image.as_str() } else { "" }),
                json!(PICTURE_TAIL),
            ];
            let v = self
                .rt(c.execute(LOOK_SCRIPT, args))
                .await
                .map_err(|e| classify(e, Failure::ElementMissing, "reading the chat view"))?;
            let look = serde_json::from_value::<Look>(v).map_err(|e| {
                PlatformError::new(
                    Failure::ElementMissing,
                    format!("unexpected chat view: {e}"),
                )
            })?;
            if look.logged_out {
                return Err(PlatformError::new(
                    Failure::LoggedOut,
                    format!("`{alias}`'s client shows its login page"),
                ));
            }
            let mut out = Vec::with_capacity(look.items.len());
            for it in look.items {
                let picture = match &it.picture {
                    Some(r) => self.picture(c, alias, r).await?,
                    None => None,
                };
                out.push(Seen {
                    id: it.id,
                    sender: it.sender,
                    filename: it.filename,
                    text: it.text,
                    picture_pending: it.pending || (it.picture.is_some() && picture.is_none()),
                    picture,
                });
            }
            Ok(out)
        })
        .await
    }
}
