//! A simulated platform: [`Platform`] in process, on tokio's clock, so that
//! what does not need a browser — the driver's classification, identities,
//! and (later) the scheduler and every design — is tested in milliseconds
//! under `tokio::time::pause` (virtual time) instead of through Chromium.
//!
//! It censors as the testbed's wechat-2020 policy does, in miniature:
//! - texts to a China-registered receiver that hold every part of a keyword
//!   (`a+b`: both parts, anywhere) are not delivered to that receiver;
//! - files: every transmission is inspected with `inspect_probability`,
//!   `inspect_delay` later; a file whose MD5 is in `sensitive_md5`, or whose
//!   name holds one of `sensitive_names`, then joins the hash index (by its
//!   MD5), and from then on it is not delivered to China-registered
//!   receivers;
//! - anything else arrives `latency` after it was sent, except that each
//!   message is lost outright with probability `loss` (seeded).
//!
//! Faults, for the scheduler's tests: a send fails before anything goes out
//! with probability `fail_before`, and goes out but reports an error (the
//! client failed after handing the message over) with probability
//! `fail_after`; the sender's own view fails to show a message it sent
//! (as a client that draws a picture beyond recognition) with probability
//! `own_view_misses`.
//!
//! Every decision is kept ([`SimPlatform::truth`]) for tests to compare
//! with what the driver concluded. The sender sees its own messages at once.
//! The platform lives as long as the value: a run "crashed" and resumed on
//! the same value finds the chats as the crash left them.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::time::Instant;

use super::identity::Identity;
use super::{Payload, Platform, PlatformError, Seen, Target};
use crate::corpus::hash::md5_hex;
use crate::dataset::Failure;

/// How the simulated platform behaves.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Every account's alias (only these exist).
    pub accounts: Vec<String>,
    /// Aliases of China-registered accounts.
    pub china: HashSet<String>,
    /// Groups: name → member aliases.
    pub groups: HashMap<String, Vec<String>>,
    /// Censored keywords (`a+b`: every part must appear).
    pub keywords: Vec<String>,
    /// MD5s that an inspection judges sensitive.
    pub sensitive_md5: HashSet<String>,
    /// File-name parts that an inspection judges sensitive (chatprobe names
    /// probe files after their corpus item: `img-s` marks the sensitive
    /// images of the starter corpus).
    pub sensitive_names: Vec<String>,
    /// Probability that a file transmission is inspected.
    pub inspect_probability: f64,
    /// How long after sending an inspection happens.
    pub inspect_delay: Duration,
    /// When set, each inspection happens at a time drawn uniformly from
    /// `inspect_delay` up to this, so that a latency design meets a known
    /// distribution.
    pub inspect_delay_to: Option<Duration>,
    /// Delivery latency.
    pub latency: Duration,
    /// Probability that a message is lost outright.
    pub loss: f64,
    /// Probability that a send fails with nothing sent.
    pub fail_before: f64,
    /// Probability that a send goes out but reports an error.
    pub fail_after: f64,
    /// Probability that a message goes out but the sender's own view never
    /// shows it.
    pub own_view_misses: f64,
    /// Seed of the platform's random draws.
    pub seed: u64,
    /// How the driver recognises messages on it.
    pub identity: Identity,
    /// How many of a chat's latest messages a look shows, as a client
    /// renders only its recent window of a long chat; `None`: the whole
    /// chat. A long campaign sets it, since looking at a whole day's chat
    /// on every poll makes the day quadratic.
    pub window: Option<usize>,
    /// An outage: from this long after the platform was made until that
    /// long, nothing answers (every call fails, `reachable` is false).
    pub outage: Option<(Duration, Duration)>,
}

impl SimConfig {
    /// The accounts, China-registered accounts and groups of an accounts
    /// file; nothing censored, nothing lost, no faults; 300 ms latency;
    /// inspections (when something is made sensitive) after 2 s.
    pub fn for_accounts(accounts: &crate::accounts::Accounts) -> SimConfig {
        SimConfig {
            accounts: accounts.accounts.iter().map(|a| a.alias.clone()).collect(),
            china: accounts
                .accounts
                .iter()
                .filter(|a| a.region == crate::accounts::Region::China)
                .map(|a| a.alias.clone())
                .collect(),
            groups: accounts
                .groups
                .iter()
                .map(|g| (g.name.clone(), g.members.clone()))
                .collect(),
            keywords: Vec::new(),
            sensitive_md5: HashSet::new(),
            sensitive_names: Vec::new(),
            inspect_probability: 1.0,
            inspect_delay: Duration::from_secs(2),
            inspect_delay_to: None,
            latency: Duration::from_millis(300),
            loss: 0.0,
            fail_before: 0.0,
            fail_after: 0.0,
            own_view_misses: 0.0,
            seed: 1,
            identity: Identity::default(),
            window: None,
            outage: None,
        }
    }
}

/// A simulated platform written as a file, for `chatprobe run --platform
/// sim:FILE` (hidden: it lets tests drive the command line, signals and
/// campaigns without a browser, as hyperfine's `--debug-mode`). Every key
/// is optional; the accounts are the spec's.
///
/// ```toml
/// keywords = ["六四", "坦克人+烛光"]   # censored texts
/// sensitive_names = ["img-s"]         # censored files, by name
/// latency_ms = 50
/// inspect_delay_ms = 500
/// ```
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimFile {
    #[serde(default)]
    keywords: Vec<String>,
    #[serde(default)]
    sensitive_names: Vec<String>,
    #[serde(default)]
    sensitive_md5: Vec<String>,
    latency_ms: Option<u64>,
    inspect_delay_ms: Option<u64>,
    inspect_probability: Option<f64>,
    loss: Option<f64>,
    seed: Option<u64>,
}

/// The ranges of a [`SimFile`]'s numbers.
pub const SIM_RANGES: &[crate::ranges::Declared] = {
    use crate::ranges::{Declared, Range};
    &[
        Declared {
            path: "latency_ms",
            range: Range::int(0, 3_600_000),
        },
        Declared {
            path: "inspect_delay_ms",
            range: Range::int(0, 86_400_000),
        },
        Declared {
            path: "inspect_probability",
            range: Range::float(0.0, 1.0),
        },
        Declared {
            path: "loss",
            range: Range::float(0.0, 1.0),
        },
        Declared {
            path: "seed",
            range: Range::int(0, i64::MAX),
        },
    ]
};

impl SimConfig {
    /// The platform a [`SimFile`] at `path` describes, for `accounts`.
    pub fn from_file(
        path: &std::path::Path,
        accounts: &crate::accounts::Accounts,
    ) -> Result<SimConfig, crate::error::InputError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            crate::error::InputError::new(path, format!("cannot read the simulated platform: {e}"))
        })?;
        crate::tomlfile::check_ranges(path, &text, SIM_RANGES)?;
        let f: SimFile = crate::tomlfile::parse(path, &text)?;
        let mut c = SimConfig::for_accounts(accounts);
        c.keywords = f.keywords;
        c.sensitive_names = f.sensitive_names;
        c.sensitive_md5 = f.sensitive_md5.into_iter().collect();
        if let Some(ms) = f.latency_ms {
            c.latency = Duration::from_millis(ms);
        }
        if let Some(ms) = f.inspect_delay_ms {
            c.inspect_delay = Duration::from_millis(ms);
        }
        if let Some(p) = f.inspect_probability {
            c.inspect_probability = p;
        }
        if let Some(l) = f.loss {
            c.loss = l;
        }
        if let Some(s) = f.seed {
            c.seed = s;
        }
        Ok(c)
    }
}

/// What the platform did with one message, for one receiver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The file name, or the text.
    pub marker: String,
    /// The sender.
    pub sender: String,
    /// The receiver.
    pub receiver: String,
    /// `delivered`, `blocked` or `lost`.
    pub decision: &'static str,
    /// When it was sent (tokio's clock).
    pub at: Instant,
}

struct Message {
    id: u64,
    sender: String,
    text: Option<String>,
    filename: Option<String>,
    /// When each receiver sees it (absent: never).
    visible: HashMap<String, Instant>,
    /// The sender's own view does not show it.
    unseen_by_sender: bool,
}

#[derive(Default)]
struct State {
    open: HashMap<String, Target>,
    chats: HashMap<String, Vec<Message>>,
    index: HashSet<String>,
    inspections: Vec<(Instant, String)>,
    truth: Vec<Decision>,
    next_id: u64,
}

/// The simulated platform.
pub struct SimPlatform {
    config: SimConfig,
    born: Instant,
    state: Mutex<State>,
    rng: Mutex<ChaCha8Rng>,
}

impl SimPlatform {
    /// A platform behaving as `config` says. It anchors this thread's clock
    /// to virtual time (`clock::anchor_to_virtual_time`): build it on the
    /// thread of the paused runtime that will use it.
    pub fn new(config: SimConfig) -> SimPlatform {
        // Timestamps in exact virtual time (see `clock`).
        crate::clock::anchor_to_virtual_time();
        let rng = ChaCha8Rng::seed_from_u64(config.seed);
        SimPlatform {
            config,
            born: Instant::now(),
            state: Mutex::new(State::default()),
            rng: Mutex::new(rng),
        }
    }

    /// Every decision so far, in order.
    pub fn truth(&self) -> Vec<Decision> {
        self.state.lock().expect("sim").truth.clone()
    }

    /// Whether `md5` is in the hash index now.
    pub fn indexed(&self, md5: &str) -> bool {
        let mut st = self.state.lock().expect("sim");
        Self::inspect_due(&mut st);
        st.index.contains(md5)
    }

    fn inspect_due(st: &mut State) {
        let now = Instant::now();
        let (due, later): (Vec<_>, Vec<_>) =
            st.inspections.drain(..).partition(|(at, _)| *at <= now);
        st.inspections = later;
        for (_, md5) in due {
            st.index.insert(md5);
        }
    }

    /// Whether the simulated outage is on now.
    fn down(&self) -> bool {
        self.config
            .outage
            .is_some_and(|(from, to)| (from..to).contains(&self.born.elapsed()))
    }

    fn known(&self, alias: &str) -> Result<(), PlatformError> {
        if self.down() {
            return Err(PlatformError::new(
                Failure::SendFailed,
                "connection refused: the simulated platform is down",
            )
            .before_sending());
        }
        if self.config.accounts.iter().any(|a| a == alias) {
            Ok(())
        } else {
            Err(PlatformError::new(
                Failure::ChatNotFound,
                format!("no account `{alias}` on the simulated platform"),
            ))
        }
    }

    fn receivers(&self, from: &str, to: &Target) -> Result<Vec<String>, PlatformError> {
        match to {
            Target::Direct(peer) => {
                self.known(peer)?;
                Ok(vec![peer.clone()])
            }
            Target::Group(g) => {
                let members = self.config.groups.get(g).ok_or_else(|| {
                    PlatformError::new(Failure::ChatNotFound, format!("no group `{g}`"))
                })?;
                Ok(members.iter().filter(|m| *m != from).cloned().collect())
            }
        }
    }

    fn keyword_hit(&self, text: &str) -> bool {
        self.config.keywords.iter().any(|k| {
            k.split('+')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .all(|p| text.contains(p))
        })
    }
}

/// How a send of `p` fails.
fn failure_of(p: &Payload) -> Failure {
    match p {
        Payload::Text(_) => Failure::SendFailed,
        Payload::File(_) => Failure::UploadFailed,
    }
}

impl Platform for SimPlatform {
    async fn ensure_session(&self, alias: &str) -> Result<(), PlatformError> {
        self.known(alias)
    }

    async fn open_chat(&self, alias: &str, target: &Target) -> Result<bool, PlatformError> {
        self.known(alias)?;
        self.receivers(alias, target)?;
        let mut st = self.state.lock().expect("sim");
        let was = st.open.insert(alias.to_string(), target.clone());
        Ok(was.as_ref() != Some(target))
    }

    async fn send(&self, alias: &str, payload: &Payload) -> Result<(), PlatformError> {
        self.known(alias).map_err(PlatformError::before_sending)?;
        let target = self
            .state
            .lock()
            .expect("sim")
            .open
            .get(alias)
            .cloned()
            .ok_or_else(|| {
                PlatformError::new(Failure::ChatNotFound, "no chat open").before_sending()
            })?;
        let receivers = self
            .receivers(alias, &target)
            .map_err(PlatformError::before_sending)?;
        let (text, filename, md5) = match payload {
            Payload::Text(t) => (Some(t.clone()), None, None),
            Payload::File(p) => {
                let bytes = std::fs::read(p).map_err(|e| {
                    PlatformError::new(Failure::UploadFailed, format!("{}: {e}", p.display()))
                        .before_sending()
                })?;
                (None, Some(payload.marker()), Some(md5_hex(&bytes)))
            }
        };
        let now = Instant::now();
        let mut rng = self.rng.lock().expect("sim rng");
        if rng.random::<f64>() < self.config.fail_before {
            return Err(PlatformError::new(
                failure_of(payload),
                "simulated failure before sending",
            )
            .before_sending());
        }
        let fail_after = rng.random::<f64>() < self.config.fail_after;
        let unseen_by_sender =
            self.config.own_view_misses > 0.0 && rng.random::<f64>() < self.config.own_view_misses;
        let mut st = self.state.lock().expect("sim");
        Self::inspect_due(&mut st);
        let lost = rng.random::<f64>() < self.config.loss;
        let mut visible = HashMap::new();
        for r in &receivers {
            let china = self.config.china.contains(r);
            let blocked = china
                && match (&text, &md5) {
                    (Some(t), _) => self.keyword_hit(t),
                    (None, Some(m)) => st.index.contains(m),
                    _ => false,
                };
            let decision = if blocked {
                "blocked"
            } else if lost {
                "lost"
            } else {
                visible.insert(r.clone(), now + self.config.latency);
                "delivered"
            };
            st.truth.push(Decision {
                marker: payload.marker(),
                sender: alias.to_string(),
                receiver: r.clone(),
                decision,
                at: now,
            });
        }
        if let Some(m) = md5 {
            let name = filename.as_deref().unwrap_or_default();
            let sensitive = self.config.sensitive_md5.contains(&m)
                || self
                    .config
                    .sensitive_names
                    .iter()
                    .any(|n| name.contains(n.as_str()));
            if rng.random::<f64>() < self.config.inspect_probability && sensitive {
                let delay = match self.config.inspect_delay_to {
                    Some(to) if to > self.config.inspect_delay => {
                        let (a, b) = (self.config.inspect_delay, to);
                        a + (b - a).mul_f64(rng.random::<f64>())
                    }
                    _ => self.config.inspect_delay,
                };
                st.inspections.push((now + delay, m));
            }
        }
        st.next_id += 1;
        let id = st.next_id;
        st.chats
            .entry(super::chat_key_of(alias, &target))
            .or_default()
            .push(Message {
                id,
                sender: alias.to_string(),
                text,
                filename,
                visible,
                unseen_by_sender,
            });
        if fail_after {
            return Err(PlatformError::new(
                failure_of(payload),
                "simulated failure after sending",
            ));
        }
        Ok(())
    }

    async fn look(&self, alias: &str) -> Result<Vec<Seen>, PlatformError> {
        self.known(alias)?;
        let now = Instant::now();
        let mut st = self.state.lock().expect("sim");
        Self::inspect_due(&mut st);
        let Some(target) = st.open.get(alias).cloned() else {
            return Err(PlatformError::new(Failure::ChatNotFound, "no chat open"));
        };
        let chat = super::chat_key_of(alias, &target);
        let Some(messages) = st.chats.get(&chat) else {
            return Ok(Vec::new());
        };
        // From the newest back, so a window costs its size, not the chat's.
        let mut seen: Vec<Seen> = messages
            .iter()
            .rev()
            .filter(|m| {
                (m.sender == alias && !m.unseen_by_sender)
                    || m.visible.get(alias).is_some_and(|at| *at <= now)
            })
            .take(self.config.window.unwrap_or(usize::MAX))
            .map(|m| Seen {
                id: Some(m.id.to_string()),
                sender: Some(m.sender.clone()),
                filename: m.filename.clone(),
                text: m.text.clone(),
                picture: None,
                picture_pending: false,
            })
            .collect();
        seen.reverse();
        Ok(seen)
    }

    fn identity(&self) -> Identity {
        self.config.identity
    }

    async fn reachable(&self) -> bool {
        !self.down()
    }
}
