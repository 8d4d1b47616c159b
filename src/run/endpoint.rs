//! One place that chooses, checks and starts the platform a command
//! measures: an embedded testbed (the testbed profile with no base URL) or
//! an external platform at a URL, driven through a chromedriver chatprobe
//! starts or through given WebDriver endpoints (a Selenium Grid, Appium).
//!
//! [`Endpoint::resolve`] decides and checks everything before anything is
//! written or started (a policy that loads, URLs that answer, a chromedriver
//! on PATH), so bad input is a clear error with nothing half-done;
//! [`Endpoint::start`] then starts the testbed if there is one and builds the
//! [`WebDriverPlatform`]; [`Started::stop`] closes both. `chatprobe run`,
//! `send` and `login` all go through here.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::accounts::Accounts;
use crate::error::InputError;
use crate::platform::profile::Profile;
use crate::platform::webdriver::WebDriverPlatform;

/// What a command was asked about the platform.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// An external platform's URL (`--base-url`); none: the profile's, or
    /// the embedded testbed.
    pub base_url: Option<String>,
    /// The embedded testbed's policy.
    pub policy: Option<PathBuf>,
    /// WebDriver endpoints (none: start chromedriver).
    pub webdriver: Vec<String>,
}

/// Where the platform is.
#[derive(Debug, Clone)]
pub enum Site {
    /// chatprobe starts the testbed with this policy.
    Embedded {
        /// The policy file.
        policy: PathBuf,
    },
    /// A platform already running at this URL.
    External {
        /// Its base URL (may carry credentials: show it only redacted).
        url: String,
    },
}

/// A checked choice of platform and WebDriver endpoints.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// The platform.
    pub site: Site,
    /// WebDriver endpoints (none: a managed chromedriver).
    pub webdriver: Vec<String>,
}

/// A started platform and the driver for it.
pub struct Started {
    /// The driver.
    pub driver: WebDriverPlatform,
    /// The platform's base URL.
    pub url: String,
    testbed: Option<crate::testbed::Testbed>,
}

impl Endpoint {
    /// Decide where the platform is and check that it can be reached.
    /// `no_policy` is the error for the testbed profile with no policy named.
    pub fn resolve(
        profile: &Profile,
        req: &Request,
        no_policy: impl FnOnce() -> InputError,
    ) -> Result<Endpoint, InputError> {
        let url = req
            .base_url
            .clone()
            .or_else(|| (!profile.urls.base.is_empty()).then(|| profile.urls.base.clone()));
        let site = match url {
            Some(url) => {
                // A URL given now must answer now; the profile's is left to
                // the first page load (its error names the page).
                if req.base_url.is_some() {
                    reachable("--base-url", &url)?;
                }
                Site::External { url }
            }
            None if profile.testbed => {
                let policy = req.policy.clone().ok_or_else(no_policy)?;
                crate::testbed::Policy::load(&policy)?;
                Site::Embedded { policy }
            }
            None => {
                return Err(InputError::new(&profile.path, "no base URL")
                    .key("urls.base")
                    .hint("set it in the profile or pass --base-url"))
            }
        };
        for u in &req.webdriver {
            reachable("--webdriver", u)?;
        }
        if req.webdriver.is_empty() {
            crate::platform::chromedriver::find()?;
        }
        Ok(Endpoint {
            site,
            webdriver: req.webdriver.clone(),
        })
    }

    /// Whether chatprobe starts the testbed.
    pub fn embedded(&self) -> bool {
        matches!(self.site, Site::Embedded { .. })
    }

    /// `embedded-testbed` or `external` (run.json, the journal).
    pub fn kind(&self) -> &'static str {
        match self.site {
            Site::Embedded { .. } => "embedded-testbed",
            Site::External { .. } => "external",
        }
    }

    /// The embedded testbed's policy.
    pub fn policy(&self) -> Option<&Path> {
        match &self.site {
            Site::Embedded { policy } => Some(policy),
            Site::External { .. } => None,
        }
    }

    /// The external URL with any credentials masked.
    pub fn shown_url(&self) -> Option<String> {
        match &self.site {
            Site::External { url } => Some(crate::redact::url(url)),
            Site::Embedded { .. } => None,
        }
    }

    /// Start the platform (an embedded testbed keeps its ground truth and
    /// state in `state_dir` if given: `truth.jsonl`, `testbed/`) and build
    /// the driver (which leaves the screenshots of failed login and chat
    /// steps in `state_dir/screenshots/`).
    pub async fn start(
        &self,
        profile: Profile,
        accounts: &Accounts,
        state_dir: Option<&Path>,
    ) -> Result<Started, InputError> {
        let testbed = match &self.site {
            Site::Embedded { policy } => {
                let mut cfg = crate::testbed::Config::new(policy, &accounts.path);
                if let Some(d) = state_dir {
                    cfg.truth = Some(d.join("truth.jsonl"));
                    // A resume after a crash finds the platform as the crash
                    // left it.
                    cfg.state = Some(d.join("testbed"));
                }
                cfg.no_ids = profile.testbed_no_ids;
                cfg.thumbnails = profile.testbed_thumbnails;
                Some(crate::testbed::Testbed::start(&cfg).await?)
            }
            Site::External { .. } => None,
        };
        let url = match (&testbed, &self.site) {
            (Some(tb), _) => tb.url(),
            (None, Site::External { url }) => url.clone(),
            (None, Site::Embedded { .. }) => unreachable!("started above"),
        };
        let driver = match WebDriverPlatform::new(
            profile,
            accounts.clone(),
            &url,
            &self.webdriver,
            testbed.is_some(),
        ) {
            Ok(mut d) => {
                if let Some(dir) = state_dir {
                    d.set_failure_screenshots(dir.join("screenshots"));
                }
                d
            }
            Err(e) => {
                if let Some(tb) = testbed {
                    tb.stop().await;
                }
                return Err(e);
            }
        };
        Ok(Started {
            driver,
            url,
            testbed,
        })
    }
}

impl Started {
    /// Close every browser session, and stop the testbed if chatprobe
    /// started it.
    pub async fn stop(self) {
        self.driver.close().await;
        if let Some(tb) = self.testbed {
            tb.stop().await;
        }
    }
}

/// Check, before anything is written, that `url` parses and something
/// listens at its host and port.
fn reachable(flag: &str, url: &str) -> Result<(), InputError> {
    let shown = crate::redact::url(url);
    let u = url::Url::parse(url)
        .map_err(|e| InputError::new(flag, format!("`{shown}` is not a URL: {e}")))?;
    let addrs: Vec<std::net::SocketAddr> = u
        .socket_addrs(|| None)
        .map_err(|e| InputError::new(flag, format!("`{shown}`: {e}")))?;
    let ok = addrs
        .iter()
        .any(|a| std::net::TcpStream::connect_timeout(a, Duration::from_secs(3)).is_ok());
    if ok {
        Ok(())
    } else {
        Err(InputError::new(flag, format!("nothing answers at {shown}"))
            .hint("start the endpoint first, or fix the URL"))
    }
}

/// Whether `dir` holds an embedded testbed's saved state (a run folder's
/// `testbed/`).
pub fn testbed_state_saved(dir: &Path) -> bool {
    dir.join(crate::testbed::store::STATE_FILE).is_file()
}
