//! The embedded testbed: a real web chat platform with a configurable
//! censorship and surveillance engine, which chatprobe drives through a real
//! browser exactly as it would drive a real client, and which writes down the
//! truth of what it did so every measurement can be checked against it.
//!
//! - [`policy`]: the policy file (what is filtered, inspected, judged sensitive);
//! - [`engine`]: decisions, inspection queue, hash indexes, ground truth;
//! - [`server`]: the axum server, its JSON API and the embedded web client.
//!
//! It listens on loopback only, unless told `--allow-remote`.

pub mod engine;
pub mod policy;
pub mod server;
pub mod store;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::accounts::Accounts;
use crate::error::InputError;

pub use policy::Policy;

/// Default upload cap: 25 MiB.
pub const DEFAULT_MAX_UPLOAD: usize = 25 * 1024 * 1024;

/// How to start a testbed.
#[derive(Debug, Clone)]
pub struct Config {
    /// Policy file.
    pub policy: PathBuf,
    /// Accounts file.
    pub accounts: PathBuf,
    /// Where to listen.
    pub addr: SocketAddr,
    /// Accept a non-loopback address.
    pub allow_remote: bool,
    /// Ground-truth JSONL file.
    pub truth: Option<PathBuf>,
    /// Upload cap in bytes.
    pub max_upload: usize,
    /// A state folder: files, messages, indexes and pending inspections are
    /// kept there durably and restored on the next start (none: in memory).
    pub state: Option<PathBuf>,
    /// The web client shows no `data-*` ids and no image file names (as a
    /// client like WeChat's): see docs/TESTBED.md.
    pub no_ids: bool,
    /// The web client shows a received or sent picture as WeChat's chat
    /// does: a small square thumbnail, centre-cropped and re-encoded
    /// ([`server::THUMBNAIL_SIDE`] pixels, JPEG), with the full picture one
    /// tap away.
    pub thumbnails: bool,
}

impl Config {
    /// A config on a free loopback port.
    pub fn new(policy: &Path, accounts: &Path) -> Config {
        Config {
            policy: policy.to_path_buf(),
            accounts: accounts.to_path_buf(),
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            allow_remote: false,
            truth: None,
            max_upload: DEFAULT_MAX_UPLOAD,
            state: None,
            no_ids: false,
            thumbnails: false,
        }
    }
}

/// A running testbed: its server, engine and file store.
pub struct Testbed {
    /// The server.
    pub server: server::Running,
    /// The engine.
    pub engine: Arc<engine::Engine>,
    _files: tempfile::TempDir,
}

impl Testbed {
    /// Load policy and accounts, and start serving. Errors are bad input.
    pub async fn start(config: &Config) -> Result<Testbed, InputError> {
        if !config.addr.ip().is_loopback() && !config.allow_remote {
            return Err(InputError::new(
                "--addr",
                format!("{} is not a loopback address", config.addr),
            )
            .hint("the testbed listens on 127.0.0.1 or ::1; pass --allow-remote to override"));
        }
        let policy = Policy::load(&config.policy)?;
        let accounts = Accounts::load(&config.accounts)?;
        let mut passwords = HashMap::new();
        for a in &accounts.accounts {
            passwords.insert(a.login.clone(), accounts.password(a, true)?);
        }
        let files = tempfile::Builder::new()
            .prefix("chatprobe-testbed-")
            .tempdir()
            .map_err(|e| InputError::new("<tmp>", format!("cannot create the file store: {e}")))?;
        let engine = Arc::new(engine::Engine::with_state(
            policy,
            accounts,
            files.path().to_path_buf(),
            config.truth.as_deref(),
            config.state.as_deref(),
        )?);
        engine.resume_pending();
        let mut app = server::App::new(Arc::clone(&engine), passwords);
        app.no_ids = config.no_ids;
        app.thumbnails = config.thumbnails;
        let app = Arc::new(app);
        let server = server::serve(app, config.addr, config.max_upload)
            .await
            .map_err(|e| {
                InputError::new("--addr", format!("cannot listen on {}: {e}", config.addr))
            })?;
        Ok(Testbed {
            server,
            engine,
            _files: files,
        })
    }

    /// The base URL.
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// Stop serving, and stop the engine's pending timers.
    pub async fn stop(self) {
        self.server.stop().await;
        self.engine.stop_timers();
    }
}
