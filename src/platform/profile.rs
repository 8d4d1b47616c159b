//! Platform profiles (TOML): everything that differs between platforms —
//! URLs, login steps, selectors, the marker of an arrived message, browser
//! capabilities and timeouts — so that adapting chatprobe to a real client
//! needs no recompiling. See docs/PROFILES.md and probes/profiles/.
//!
//! In selectors, `{login}` and `{group}` stand for the peer's login and the
//! group's name with every character outside `A-Z a-z 0-9 _ -` replaced by
//! `_`. In login steps, `{login}` and `{password}` stand for the account's
//! credentials (never logged).

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::identity::{FileRule, Identity};
use crate::error::InputError;
use crate::ranges::{Declared, Range};

/// What kind of client the profile drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientKind {
    /// A web client in Chromium.
    Web,
    /// A phone app through Appium.
    Appium,
}

/// One step of a flow (logging in, sending a file). Every element is named
/// by a locator (see [`super::locator`]): CSS by default, or any WebDriver
/// or Appium strategy with its prefix (`xpath:`, `accessibility id:`,
/// `id:`, `-android uiautomator:` …).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// Type `value` into this element.
    #[serde(default)]
    pub fill: Option<String>,
    /// The text to type (`{login}`, `{password}` substituted in login
    /// steps; `{file}`, the file's name, in file steps).
    #[serde(default)]
    pub value: Option<String>,
    /// Click (on a phone: tap) this element.
    #[serde(default, alias = "tap")]
    pub click: Option<String>,
    /// Wait until this element exists.
    #[serde(default)]
    pub wait: Option<String>,
    /// File steps only: put the file on the device at this path (`{file}`:
    /// its name), with Appium's `push_file`.
    #[serde(default)]
    pub push: Option<String>,
    /// File steps only: type the file's path into this `<input type=file>`
    /// (the path the endpoint's upload command returned, on a remote one).
    #[serde(default)]
    pub upload: Option<String>,
    /// Run this script or Appium extension command (`mobile: scanMedia`)
    /// with `args` as its one argument.
    #[serde(default)]
    pub execute: Option<String>,
    /// The argument of `execute` (placeholders substituted in its strings).
    #[serde(default)]
    pub args: Option<toml::Table>,
    /// With `fill`, `click` or `wait`: skip the step when this element is
    /// there. The step waits until its own element or this one exists,
    /// and does nothing if this one does (a layout that needs a click the
    /// other does not, a dialog shown only sometimes).
    #[serde(default)]
    pub unless: Option<String>,
}

impl Step {
    /// Every selector the step names (`fill`, `click`, `wait`, `unless`),
    /// to fill in a placeholder of each.
    pub fn selectors_mut(&mut self) -> impl Iterator<Item = &mut String> {
        [
            &mut self.fill,
            &mut self.click,
            &mut self.wait,
            &mut self.unless,
        ]
        .into_iter()
        .flatten()
    }

    /// How many actions the step names (a valid step names one); a `fill`
    /// without its `value`, or a `value` without a `fill`, counts as none.
    fn actions(&self) -> usize {
        if self.fill.is_some() != self.value.is_some()
            || (self.args.is_some() && self.execute.is_none())
            || (self.unless.is_some()
                && self.fill.is_none()
                && self.click.is_none()
                && self.wait.is_none())
        {
            return 0;
        }
        [
            self.execute.is_some(),
            self.fill.is_some(),
            self.click.is_some(),
            self.wait.is_some(),
            self.push.is_some(),
            self.upload.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count()
    }

    /// The step's locator, if it names an element.
    pub fn locator(&self) -> Option<&str> {
        self.fill
            .as_deref()
            .or(self.click.as_deref())
            .or(self.wait.as_deref())
            .or(self.upload.as_deref())
    }
}

/// `[urls]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Urls {
    /// Base URL of the platform (empty: given by --base-url or the embedded testbed).
    #[serde(default)]
    pub base: String,
    /// Path (or URL) of the login page.
    pub login: String,
}

/// `[login]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Login {
    /// Steps to log in; empty for platforms logged in once by `chatprobe login`.
    #[serde(default)]
    pub steps: Vec<Step>,
    /// An element that exists once logged in.
    pub logged_in: String,
    /// An element that exists only while the client shows its login page
    /// (optional): a session whose platform restarted or expired it shows
    /// this, and chatprobe logs in again. Without it, a missing `logged_in`
    /// element is the only sign.
    #[serde(default)]
    pub logged_out: String,
}

/// `[chat]`: how to open a chat and send.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatSelectors {
    /// Click this to open the direct chat with `{login}` (empty when
    /// `open_direct` says how).
    #[serde(default)]
    pub direct: String,
    /// Click this to open the group `{group}` (empty when `open_group` says
    /// how).
    #[serde(default)]
    pub group: String,
    /// Steps that open the direct chat with `{login}`, whether or not it is
    /// a contact (a client that opens a chat from a URL or a "new chat"
    /// form); instead of clicking `direct`.
    #[serde(default)]
    pub open_direct: Vec<Step>,
    /// Steps that open the group `{group}`; instead of clicking `group`.
    #[serde(default)]
    pub open_group: Vec<Step>,
    /// The text box.
    pub text_input: String,
    /// The send button (empty: press Enter).
    #[serde(default)]
    pub send_button: String,
    /// The `<input type=file>` that takes uploads (a web client); short
    /// for `send_file = [{ upload = "…" }]`.
    #[serde(default)]
    pub file_input: String,
    /// How a file is sent, as steps (a phone app: `push` it to the device,
    /// `tap` the attach control, the newest item, the confirm button).
    /// Empty: `upload` into `file_input`.
    #[serde(default)]
    pub send_file: Vec<Step>,
    /// How a picture is sent, when it differs from a document (WeChat's
    /// app: the album, not the file browser). Empty: as `send_file`.
    #[serde(default)]
    pub send_image: Vec<Step>,
}

/// `[messages]`: how a message looks in the chat view. In a web profile the
/// selectors are CSS, read in the page by one script; in an `appium`
/// profile (a phone app, no JavaScript) they are XPath 1.0 over the page
/// source (Appium's `GET /source`): `item` absolute, the others relative to
/// an item, each yielding the string value of the first node it selects
/// (an element's text, or an attribute's value: `.//*[@resource-id="x"]/@text`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageSelectors {
    /// Every message element.
    pub item: String,
    /// Attribute with a stable message id.
    #[serde(default)]
    pub id_attr: String,
    /// Attribute with the sender's login.
    #[serde(default)]
    pub sender_attr: String,
    /// Attribute with the file name (the marker of an arrived file).
    #[serde(default)]
    pub filename_attr: String,
    /// Element inside an item holding the text (empty: the item itself).
    #[serde(default)]
    pub text: String,
    /// Element inside an item showing the file's name (for clients with no
    /// file-name attribute): its text, or its `file_name_attr` attribute; a
    /// URL or path is cut to its last segment and percent-decoded.
    #[serde(default)]
    pub file_name: String,
    /// The attribute of `file_name` to read (empty: its text), e.g. `href`.
    #[serde(default)]
    pub file_name_attr: String,
    /// Element inside an item showing a received picture, photographed for
    /// `[identity] image = "picture"`.
    #[serde(default)]
    pub image: String,
}

fn default_args() -> Vec<String> {
    [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1280,900",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// `[browser]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Browser {
    /// The browser binary (Chromium).
    #[serde(default)]
    pub binary: String,
    /// Command-line flags.
    #[serde(default = "default_args")]
    pub args: Vec<String>,
    /// Extra W3C capabilities, merged as given (Appium's go here).
    #[serde(default)]
    pub capabilities: toml::Table,
    /// A folder of persistent browser profiles, one per alias (relative to the
    /// profile file; `~/` allowed). Empty: a fresh profile for every session.
    /// `chatprobe login ALIAS` fills it for platforms with QR or manual login.
    #[serde(default)]
    pub profile_dir: String,
}

impl Default for Browser {
    fn default() -> Self {
        Browser {
            binary: String::new(),
            args: default_args(),
            capabilities: toml::Table::new(),
            profile_dir: String::new(),
        }
    }
}

fn ms_20000() -> u64 {
    20_000
}
fn ms_10000() -> u64 {
    10_000
}
fn ms_100() -> u64 {
    100
}

/// `[timeouts]`, in milliseconds; set explicitly on every session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Timeouts {
    /// Page load.
    #[serde(default = "ms_20000")]
    pub page_load_ms: u64,
    /// Script.
    #[serde(default = "ms_10000")]
    pub script_ms: u64,
    /// Implicit element wait (0: chatprobe polls itself).
    #[serde(default)]
    pub implicit_ms: u64,
    /// Between two looks at the receiver's chat.
    #[serde(default = "ms_100")]
    pub poll_ms: u64,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            page_load_ms: 20_000,
            script_ms: 10_000,
            implicit_ms: 0,
            poll_ms: 100,
        }
    }
}

/// A platform profile.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Its name (recorded in run.json).
    pub name: String,
    /// What differs between deployments of one client (an XMPP domain, a
    /// page path): `{name}` anywhere in the profile is replaced by the value
    /// before it is read ([`RESERVED`] names are chatprobe's own).
    #[serde(default)]
    pub variables: std::collections::BTreeMap<String, String>,
    /// web | appium.
    pub kind: ClientKind,
    /// Whether this profile is the embedded testbed (chatprobe can start it).
    #[serde(default)]
    pub testbed: bool,
    /// Whether the profile was tested against its platform (false: a template).
    #[serde(default)]
    pub tested: bool,
    /// URLs.
    pub urls: Urls,
    /// Login.
    pub login: Login,
    /// Chat selectors.
    pub chat: ChatSelectors,
    /// Message selectors.
    pub messages: MessageSelectors,
    /// Browser.
    #[serde(default)]
    pub browser: Browser,
    /// Timeouts.
    #[serde(default)]
    pub timeouts: Timeouts,
    /// How each kind of message is recognised on the receiver's side.
    #[serde(default)]
    pub identity: Identity,
    /// The embedded testbed serves its client without any `data-*` ids
    /// (as `chatprobe testbed --no-ids`).
    #[serde(default)]
    pub testbed_no_ids: bool,
    /// The embedded testbed shows pictures as small square thumbnails (as
    /// `chatprobe testbed --thumbnails`).
    #[serde(default)]
    pub testbed_thumbnails: bool,
    /// Where it was read from.
    #[serde(skip)]
    pub path: PathBuf,
}

/// Every numeric key of a profile and its range.
pub const RANGES: &[Declared] = &[
    Declared {
        path: "timeouts.page_load_ms",
        range: Range::int(100, 600_000),
    },
    Declared {
        path: "timeouts.script_ms",
        range: Range::int(100, 600_000),
    },
    Declared {
        path: "timeouts.implicit_ms",
        range: Range::int(0, 60_000),
    },
    Declared {
        path: "timeouts.poll_ms",
        range: Range::int(10, 10_000),
    },
    Declared {
        path: "identity.max_distance",
        range: Range::int(0, 64),
    },
    Declared {
        path: "identity.margin",
        range: Range::float(0.0, 2.0),
    },
];

impl Profile {
    /// Read and validate a profile.
    pub fn load(path: &Path) -> Result<Profile, InputError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            InputError::new(path, format!("cannot read: {e}")).hint("check the path")
        })?;
        let text = with_variables(path, &text)?;
        crate::tomlfile::check_ranges(path, &text, RANGES)?;
        let mut p: Profile = crate::tomlfile::parse(path, &text)?;
        p.path = path.to_path_buf();
        for (key, sel, steps) in [
            ("login.logged_in", &p.login.logged_in, false),
            (
                "chat.direct",
                &p.chat.direct,
                !p.chat.open_direct.is_empty(),
            ),
            ("chat.group", &p.chat.group, !p.chat.open_group.is_empty()),
            ("chat.text_input", &p.chat.text_input, false),
            ("messages.item", &p.messages.item, false),
        ] {
            if sel.trim().is_empty() && !steps {
                return Err(InputError::new(path, "selector must not be empty").key(key));
            }
        }
        for (key, flow) in [
            ("chat.open_direct", &p.chat.open_direct),
            ("chat.open_group", &p.chat.open_group),
        ] {
            for (i, s) in flow.iter().enumerate() {
                if s.actions() != 1 || s.push.is_some() || s.upload.is_some() {
                    return Err(InputError::new(
                        path,
                        "a chat step is one of {fill, value}, {click} (or {tap}), {wait} or {execute, args}; `unless` goes with fill, click or wait",
                    )
                    .key(format!("{key}[{i}]")));
                }
            }
        }
        let m = &p.messages;
        let names = !m.filename_attr.is_empty() || !m.file_name.is_empty();
        if p.identity.image == FileRule::Picture && m.image.trim().is_empty() {
            return Err(InputError::new(path, "images are recognised by picture, but the profile names no picture element")
                .key("messages.image")
                .hint("set messages.image to the selector of a received picture inside a message, e.g. \"img\""));
        }
        if p.identity.document == FileRule::Picture {
            return Err(
                InputError::new(path, "documents cannot be recognised by picture")
                    .key("identity.document")
                    .hint("use \"name\""),
            );
        }
        if !names && (p.identity.image == FileRule::Name || p.identity.document == FileRule::Name) {
            return Err(InputError::new(path, "files are recognised by name, but the profile says neither where a file name is shown nor which attribute holds it")
                .key("messages.file_name")
                .hint("set messages.file_name (an element showing the name) or messages.filename_attr"));
        }
        for (i, s) in p.login.steps.iter().enumerate() {
            if s.actions() != 1 || s.push.is_some() || s.upload.is_some() {
                return Err(InputError::new(
                    path,
                    "a login step is one of {fill, value}, {click} (or {tap}), {wait} or {execute, args}; `unless` goes with fill, click or wait",
                )
                .key(format!("login.steps[{i}]")));
            }
        }
        if !p.chat.send_file.is_empty() && !p.chat.file_input.is_empty() {
            return Err(InputError::new(
                path,
                "both chat.file_input and chat.send_file say how a file is sent",
            )
            .key("chat.file_input")
            .hint("keep one: file_input is short for send_file = [{ upload = \"…\" }]"));
        }
        if p.file_steps(false).is_empty() {
            return Err(InputError::new(path, "the profile does not say how a file is sent")
                .key("chat.send_file")
                .hint("set chat.file_input (a web client's <input type=file>) or chat.send_file (steps: push, tap, wait, upload)"));
        }
        for (key, flow) in [
            ("chat.send_file", &p.chat.send_file),
            ("chat.send_image", &p.chat.send_image),
        ] {
            for (i, s) in flow.iter().enumerate() {
                if s.actions() != 1 {
                    return Err(InputError::new(
                        path,
                        "a file step is one of {push}, {upload}, {fill, value}, {click} (or {tap}), {wait} or {execute, args}; `unless` goes with fill, click or wait",
                    )
                    .key(format!("{key}[{i}]")));
                }
            }
            if !flow.is_empty() && !flow.iter().any(|s| s.push.is_some() || s.upload.is_some()) {
                return Err(InputError::new(path, format!("no step of {key} hands the file over"))
                    .key(key)
                    .hint("add a { push = \"/sdcard/Download/{file}\" } step (a phone) or an { upload = \"input[type=file]\" } step (a web client)"));
            }
        }
        let locators = [
            ("login.logged_in", p.login.logged_in.as_str()),
            ("login.logged_out", p.login.logged_out.as_str()),
            ("chat.direct", p.chat.direct.as_str()),
            ("chat.group", p.chat.group.as_str()),
            ("chat.text_input", p.chat.text_input.as_str()),
            ("chat.send_button", p.chat.send_button.as_str()),
        ];
        let steps = p
            .login
            .steps
            .iter()
            .chain(&p.chat.send_file)
            .chain(&p.chat.send_image)
            .chain(&p.chat.open_direct)
            .chain(&p.chat.open_group);
        for (key, sel) in locators
            .into_iter()
            .chain(steps.filter_map(|s| s.locator()).map(|l| ("a step", l)))
        {
            if let Err(e) = super::locator::Locator::parse(sel).check() {
                return Err(InputError::new(path, e).key(key));
            }
        }
        if p.kind == ClientKind::Appium {
            let m = &p.messages;
            for (key, sel) in [
                ("messages.item", &m.item),
                ("messages.text", &m.text),
                ("messages.file_name", &m.file_name),
                ("messages.image", &m.image),
            ] {
                if let Err(e) = super::source::check_xpath(sel) {
                    return Err(InputError::new(path, format!("not an XPath 1.0 expression: {e}"))
                        .key(key)
                        .hint("an appium profile reads messages from the page source: item is an absolute XPath (//…), the others relative to an item (.//…)"));
                }
            }
        }
        Ok(p)
    }

    /// The steps that send a file: for a picture `chat.send_image` if
    /// given, else `chat.send_file`, else an upload into `chat.file_input`.
    pub fn file_steps(&self, image: bool) -> Vec<Step> {
        if image && !self.chat.send_image.is_empty() {
            return self.chat.send_image.clone();
        }
        if !self.chat.send_file.is_empty() {
            return self.chat.send_file.clone();
        }
        if self.chat.file_input.trim().is_empty() {
            return Vec::new();
        }
        vec![Step {
            upload: Some(self.chat.file_input.clone()),
            ..Step::default()
        }]
    }

    /// The persistent browser profile of `alias`, if the profile keeps them.
    pub fn persistent_dir(&self, alias: &str) -> Option<PathBuf> {
        let d = self.browser.profile_dir.trim();
        if d.is_empty() {
            return None;
        }
        let root = if let Some(rest) = d.strip_prefix("~/") {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(rest)
        } else {
            self.path.parent().unwrap_or(Path::new(".")).join(d)
        };
        Some(root.join(alias))
    }

    /// The login page's URL, given the platform's base URL.
    pub fn login_url(&self, base: &str) -> String {
        if self.urls.login.starts_with("http://") || self.urls.login.starts_with("https://") {
            self.urls.login.clone()
        } else {
            format!("{}{}", base.trim_end_matches('/'), self.urls.login)
        }
    }
}

/// Names chatprobe fills in itself; a profile's `[variables]` may not use
/// them.
pub const RESERVED: [&str; 5] = ["login", "password", "group", "file", "free_port"];

/// The profile text with each `{name}` of its `[variables]` replaced by the
/// value, line for line (so errors still name the right line). A value
/// holds letters, digits and `. _ - : / @` only: it goes into TOML strings,
/// selectors and URLs unescaped.
fn with_variables(path: &Path, text: &str) -> Result<String, InputError> {
    #[derive(Deserialize)]
    struct Only {
        #[serde(default)]
        variables: std::collections::BTreeMap<String, toml::Value>,
    }
    let only: Only = toml::from_str(text).unwrap_or(Only {
        variables: Default::default(),
    });
    let mut out = text.to_string();
    for (name, value) in &only.variables {
        let key = format!("variables.{name}");
        let bad = |why: &str| InputError::new(path, why.to_string()).key(key.clone());
        if RESERVED.contains(&name.as_str()) {
            return Err(bad("is one of the names chatprobe fills in itself")
                .hint(format!("rename it; reserved: {}", RESERVED.join(", "))));
        }
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            return Err(bad("a variable's name is lower-case letters, digits and _"));
        }
        let Some(v) = value.as_str() else {
            return Err(bad("a variable's value is a quoted string"));
        };
        if v.is_empty()
            || !v
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-_:/@".contains(c))
        {
            return Err(
                bad("a variable's value is letters, digits and . _ - : / @ (not empty)")
                    .hint("e.g. domain = \"chat.example.org\""),
            );
        }
        out = out.replace(&format!("{{{name}}}"), v);
    }
    Ok(out)
}

/// Substitute `{name}` with `value` in a selector. Inside a quoted string
/// (an attribute value: `[data-jid="{login}@localhost"]`) the value goes in
/// as it is, with `"`, `'` and `\\` escaped; elsewhere (an id:
/// `#chat-direct_{login}`) every character outside `A-Z a-z 0-9 _ -` becomes
/// `_`.
pub fn fill_selector(template: &str, name: &str, value: &str) -> String {
    let safe: String = value
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let quoted: String = value
        .chars()
        .flat_map(|c| match c {
            '"' | '\'' | '\\' => vec!['\\', c],
            c => vec![c],
        })
        .collect();
    let needle = format!("{{{name}}}");
    let mut out = String::new();
    let mut quote: Option<char> = None;
    let mut rest = template;
    while !rest.is_empty() {
        if rest.starts_with(&needle) {
            out.push_str(if quote.is_some() { &quoted } else { &safe });
            rest = &rest[needle.len()..];
            continue;
        }
        let c = rest.chars().next().expect("not empty");
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            _ => {}
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::fill_selector;

    #[test]
    fn ids_are_made_safe_and_quoted_values_kept() {
        assert_eq!(
            fill_selector("#chat-direct_{login}", "login", "a.b@c"),
            "#chat-direct_a_b_c"
        );
        assert_eq!(
            fill_selector("a[data-jid=\"{login}@localhost\"] b", "login", "al\"ice"),
            "a[data-jid=\"al\\\"ice@localhost\"] b"
        );
    }

    #[test]
    fn variables_fill_the_profile_and_bad_ones_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let converse = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("probes/profiles/converse.toml"),
        )
        .unwrap();
        let at = |text: &str| {
            let p = dir.path().join("p.toml");
            std::fs::write(&p, text).unwrap();
            super::Profile::load(&p)
        };
        // Another deployment: one line changed, every selector follows.
        let p = at(&converse.replace("domain = \"localhost\"", "domain = \"chat.example.org\""))
            .unwrap();
        assert_eq!(
            p.login.steps[1].value.as_deref(),
            Some("{login}@chat.example.org")
        );
        assert!(p.messages.item.contains("{login}@chat.example.org"));
        assert!(p
            .chat
            .open_direct
            .iter()
            .any(|s| s.value.as_deref() == Some("{login}@chat.example.org")));
        assert!(
            !converse.contains("@localhost"),
            "a deployment value outside [variables]"
        );
        for (bad, key) in [
            ("domain = \"localhost\"", "login = \"x\""),
            ("domain = \"localhost\"", "domain = \"a b\""),
            ("domain = \"localhost\"", "domain = \"\""),
            ("domain = \"localhost\"", "Domain = \"x\""),
        ] {
            let e = at(&converse.replace(bad, key)).unwrap_err().to_string();
            assert!(e.contains("variables."), "{key}: {e}");
        }
    }

    #[test]
    fn unless_goes_with_an_element_step_only() {
        let dir = tempfile::tempdir().unwrap();
        let converse = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("probes/profiles/converse.toml"),
        )
        .unwrap();
        let p = dir.path().join("p.toml");
        std::fs::write(&p, &converse).unwrap();
        let ok = super::Profile::load(&p).unwrap();
        assert_eq!(ok.login.steps[0].unless.as_deref(), Some("#converse-login"));
        let toggle = "{ click = \"converse-controlbox-toggle button.toggle-controlbox\", unless = \"#converse-login\" }";
        assert!(converse.contains(toggle));
        for (bad, key) in [
            (
                "{ execute = \"return 1\", unless = \"#converse-login\" }",
                "login.steps[0]",
            ),
            ("{ unless = \"#converse-login\" }", "login.steps[0]"),
        ] {
            std::fs::write(&p, converse.replacen(toggle, bad, 1)).unwrap();
            let e = super::Profile::load(&p).unwrap_err().to_string();
            assert!(
                e.contains(key) && e.contains("`unless` goes with"),
                "{bad}: {e}"
            );
        }
    }
}
