//! The censorship engine: decides every transmission, runs the asynchronous
//! inspection, keeps the hash indexes, and writes the ground truth.
//!
//! A transmission goes through, in order:
//! 1. images are re-encoded to JPEG when `[images] reencode` (the index keys
//!    on the re-encoded bytes, as WeChat's did);
//! 2. the real-time filter, when it applies to the chat: texts against
//!    `text_keywords`, files against the MD5 index of the chat's channel,
//!    images against the reference images when `visual`;
//! 3. if delivered and within the inspection's scope, kinds and channels, and
//!    a seeded draw under `probability`: inspection after a seeded delay; a
//!    sensitive verdict adds the MD5 to the channel's index (both when the
//!    channels share one), with a seeded expiry.
//!
//! All draws come from one ChaCha8 stream seeded by the policy's `seed`;
//! durations are multiplied by `time_scale`.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use image::DynamicImage;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use chrono::{DateTime, Utc};

use super::policy::{keyword_hit, Applies, Channel, ContentKind, MatchMode, Policy, Scope};
use super::store::{Added, Change, Queued, Store};
use crate::accounts::{Accounts, Region};
use crate::corpus::hash::{self, Hash64, PerceptualHasher};
use crate::corpus::{text, Format};

/// A chat, from the point of view of the platform.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Chat {
    /// 1-to-1 with this peer (login).
    Direct(String),
    /// The group of this name.
    Group(String),
}

impl Chat {
    /// Parse `direct:LOGIN` or `group:NAME`.
    pub fn parse(s: &str) -> Option<Chat> {
        if let Some(l) = s.strip_prefix("direct:") {
            Some(Chat::Direct(l.to_string()))
        } else {
            s.strip_prefix("group:").map(|g| Chat::Group(g.to_string()))
        }
    }

    /// The channel of the chat.
    pub fn channel(&self) -> Channel {
        match self {
            Chat::Direct(_) => Channel::Direct,
            Chat::Group(_) => Channel::Group,
        }
    }
}

/// What a user sends.
#[derive(Debug, Clone)]
pub enum Content {
    /// A text message.
    Text(String),
    /// A file, with its name as uploaded.
    File {
        /// Name as uploaded (shown, never used on disk).
        name: String,
        /// The bytes.
        bytes: Vec<u8>,
    },
}

/// Why a transmission was refused outright (not censorship: bad request).
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The sender may not write in this chat.
    #[error("not a member of this chat")]
    NotAllowed,
    /// The peer or group does not exist.
    #[error("no such chat")]
    NoSuchChat,
    /// An image that cannot be decoded.
    #[error("the image cannot be decoded")]
    BadImage,
    /// Storing the file failed.
    #[error("storage failed: {0}")]
    Storage(String),
}

/// One message as stored.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Message {
    /// Transmission id (also the message id).
    pub id: u64,
    /// Login of the sender.
    pub sender: String,
    /// The chat key (`direct:a|b` sorted, or `group:NAME`).
    #[serde(skip)]
    pub key: String,
    /// text | image | document.
    pub kind: ContentKind,
    /// The text (texts only).
    pub text: Option<String>,
    /// The file name as uploaded (files only).
    pub filename: Option<String>,
    /// SHA-256 of the stored file (its storage name).
    pub sha256: Option<String>,
    /// Bytes of the stored file.
    pub bytes: Option<u64>,
    /// RFC 3339 time of sending.
    pub sent_at: String,
    /// Whether receivers see it.
    #[serde(skip)]
    pub delivered: bool,
}

/// A ground-truth record (one JSON line each).
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Truth {
    /// A transmission and the real-time decision.
    Transmission {
        /// Transmission id.
        id: u64,
        /// Time.
        at: String,
        /// Sender alias.
        sender: String,
        /// Receiver alias (direct chats).
        receiver: Option<String>,
        /// Group name (group chats).
        group: Option<String>,
        /// direct | group.
        channel: Channel,
        /// text | image | document.
        kind: ContentKind,
        /// File name as uploaded.
        filename: Option<String>,
        /// The text, for text messages.
        text: Option<String>,
        /// MD5 of the stored bytes (after re-encoding).
        md5: Option<String>,
        /// MD5 of the bytes as uploaded.
        upload_md5: Option<String>,
        /// pHash of an image.
        phash: Option<String>,
        /// delivered | blocked.
        decision: String,
        /// Why: `md5_index`, `visual_match`, `keyword:…`, or `none`.
        reason: String,
    },
    /// An inspection, queued at sending and done after the delay.
    Inspection {
        /// Transmission id.
        transmission: u64,
        /// When queued.
        queued_at: String,
        /// When done.
        done_at: String,
        /// sensitive | benign.
        verdict: String,
        /// Why.
        reason: String,
    },
    /// An MD5 joins an index.
    IndexAdd {
        /// The index's channel.
        channel: Channel,
        /// The MD5.
        md5: String,
        /// Time.
        at: String,
        /// The transmission whose inspection added it.
        transmission: u64,
        /// When it will expire (empty = never).
        expires_at: Option<String>,
    },
    /// An MD5 leaves an index.
    IndexExpire {
        /// The index's channel.
        channel: Channel,
        /// The MD5.
        md5: String,
        /// Time.
        at: String,
    },
}

/// RFC 3339 UTC with milliseconds.
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

struct IndexEntry {
    generation: u64,
    expires: Option<Instant>,
}

struct State {
    rng: ChaCha8Rng,
    next_id: u64,
    generation: u64,
    index: HashMap<Channel, HashMap<String, IndexEntry>>,
    messages: Vec<Message>,
    /// The durable journal, when the testbed has a state folder.
    store: Option<Store>,
    /// Inspections replayed from the journal, not yet rescheduled.
    pending: Vec<Queued>,
    /// Expiries replayed from the journal, not yet rescheduled.
    expiring: Vec<Added>,
}

impl State {
    /// Journal a change (synced) while the state lock is held, so the
    /// journal's order is the order of the changes.
    fn journal(&mut self, c: Change) {
        if let Some(s) = self.store.as_mut() {
            if let Err(e) = s.append(&c) {
                eprintln!(
                    "testbed: cannot write {}: {e}; state after this change is not durable",
                    s.path().display()
                );
            }
        }
    }
}

impl State {
    /// Restore what a journal holds.
    fn replay(&mut self, changes: Vec<Change>) {
        let mut pending: HashMap<u64, Queued> = HashMap::new();
        let mut live: HashMap<(Channel, String), Added> = HashMap::new();
        for c in changes {
            match c {
                Change::Message {
                    mut message,
                    key,
                    delivered,
                    queued,
                    rng_pos,
                    ..
                } => {
                    message.key = key;
                    message.delivered = delivered;
                    self.next_id = self.next_id.max(message.id + 1);
                    self.messages.push(*message);
                    if let Some(q) = queued {
                        pending.insert(q.id, q);
                    }
                    self.rng.set_word_pos(super::store::pos_parse(&rng_pos));
                }
                Change::Inspected {
                    id, added, rng_pos, ..
                } => {
                    pending.remove(&id);
                    for a in added {
                        self.generation = self.generation.max(a.generation);
                        live.insert((a.channel, a.md5.clone()), a);
                    }
                    self.rng.set_word_pos(super::store::pos_parse(&rng_pos));
                }
                Change::Expired {
                    channel,
                    md5,
                    generation,
                    ..
                } => {
                    let k = (channel, md5);
                    if live.get(&k).is_some_and(|a| a.generation == generation) {
                        live.remove(&k);
                    }
                }
            }
        }
        for a in live.into_values() {
            self.index.entry(a.channel).or_default().insert(
                a.md5.clone(),
                IndexEntry {
                    generation: a.generation,
                    expires: a.expires_at.map(instant_of),
                },
            );
            if a.expires_at.is_some() {
                self.expiring.push(a);
            }
        }
        let mut pending: Vec<Queued> = pending.into_values().collect();
        pending.sort_by_key(|q| q.id);
        self.pending = pending;
    }
}

/// A wall-clock time as an `Instant` (now, if it has passed).
fn instant_of(t: DateTime<Utc>) -> Instant {
    Instant::now() + (t - Utc::now()).to_std().unwrap_or_default()
}

/// A reference image, prepared for both match modes.
struct Reference {
    name: String,
    shape: (u32, u32, Vec<u8>),
    /// Its edge energy at the policy's `sharpness_size`.
    sharpness: f64,
    phash: Hash64,
}

/// The engine. Cheap to share (`Arc`).
pub struct Engine {
    policy: Policy,
    accounts: Accounts,
    state: Mutex<State>,
    truth: Mutex<Option<std::io::BufWriter<std::fs::File>>>,
    references: Vec<Reference>,
    files: PathBuf,
    /// Inspections and expiries waiting: aborted when the testbed stops
    /// (a state folder keeps them for the next start).
    timers: Mutex<Vec<tokio::task::AbortHandle>>,
}

impl Engine {
    /// Build an engine storing files under `files` and writing ground truth to
    /// `truth` (if given).
    pub fn new(
        policy: Policy,
        accounts: Accounts,
        files: PathBuf,
        truth: Option<&Path>,
    ) -> Result<Engine, crate::error::InputError> {
        Engine::with_state(policy, accounts, files, truth, None)
    }

    /// As [`Engine::new`], with a state folder: files are stored in it, every
    /// change is journaled there, and what an earlier engine journaled there
    /// is restored (call [`Engine::resume_pending`] once the engine is shared).
    pub fn with_state(
        policy: Policy,
        accounts: Accounts,
        files: PathBuf,
        truth: Option<&Path>,
        state: Option<&Path>,
    ) -> Result<Engine, crate::error::InputError> {
        let (files, store, changes) = match state {
            Some(dir) => {
                let (store, changes) = Store::open(dir).map_err(|e| {
                    crate::error::InputError::new(
                        dir,
                        format!("cannot open the testbed's state: {e}"),
                    )
                    .hint("give another --state folder, or remove this one to start afresh")
                })?;
                (dir.join(super::store::FILES_DIR), Some(store), changes)
            }
            None => (files, None, Vec::new()),
        };
        // Truth lines a crash kept from the truth file.
        let repair = truth
            .map(|t| super::store::missing_truth(&changes, t))
            .unwrap_or_default();
        let references = match policy.reference_dir() {
            Some(dir) => load_references(&dir, &policy)?,
            None => Vec::new(),
        };
        let truth = match truth {
            // Appended: a resumed run keeps one ground-truth file.
            Some(p) => Some(std::io::BufWriter::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                    .map_err(|e| {
                        crate::error::InputError::new(
                            p,
                            format!("cannot write the ground truth: {e}"),
                        )
                    })?,
            )),
            None => None,
        };
        std::fs::create_dir_all(&files).map_err(|e| {
            crate::error::InputError::new(&files, format!("cannot create the file store: {e}"))
        })?;
        let mut st = State {
            rng: ChaCha8Rng::seed_from_u64(policy.seed),
            next_id: 1,
            generation: 0,
            index: HashMap::new(),
            messages: Vec::new(),
            store,
            pending: Vec::new(),
            expiring: Vec::new(),
        };
        st.replay(changes);
        let engine = Engine {
            state: Mutex::new(st),
            policy,
            accounts,
            truth: Mutex::new(truth),
            references,
            files,
            timers: Mutex::new(Vec::new()),
        };
        for t in &repair {
            engine.log(t);
        }
        Ok(engine)
    }

    /// Reschedule the inspections and expiries restored from the state
    /// folder: each at its own due time, at once if that has passed.
    pub fn resume_pending(self: &Arc<Self>) {
        let (pending, expiring) = {
            let mut st = self.state.lock().expect("state");
            (
                std::mem::take(&mut st.pending),
                std::mem::take(&mut st.expiring),
            )
        };
        for q in pending {
            self.inspect_at(q);
        }
        for a in expiring {
            if let Some(at) = a.expires_at {
                self.expire_at(a.channel, a.md5, a.generation, instant_of(at));
            }
        }
    }

    /// The policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The accounts.
    pub fn accounts(&self) -> &Accounts {
        &self.accounts
    }

    /// Where stored files live (named by SHA-256).
    pub fn file_path(&self, sha256: &str) -> Option<PathBuf> {
        (sha256.len() == 64 && sha256.chars().all(|c| c.is_ascii_hexdigit()))
            .then(|| self.files.join(sha256))
    }

    fn log(&self, t: &Truth) {
        let mut guard = self.truth.lock().expect("truth lock");
        if let Some(w) = guard.as_mut() {
            let line = serde_json::to_string(t).expect("truth serialises");
            let _ = writeln!(w, "{line}");
            let _ = w.flush();
        }
    }

    fn alias(&self, login: &str) -> String {
        self.accounts
            .by_login(login)
            .map(|a| a.alias.clone())
            .unwrap_or_else(|| login.to_string())
    }

    fn region(&self, login: &str) -> Region {
        self.accounts
            .by_login(login)
            .map(|a| a.region)
            .unwrap_or(Region::Intl)
    }

    /// Logins taking part in `chat` as seen by `sender`, or an error.
    pub fn participants(&self, sender: &str, chat: &Chat) -> Result<Vec<String>, SendError> {
        match chat {
            Chat::Direct(peer) => {
                if peer == sender {
                    return Err(SendError::NoSuchChat);
                }
                self.accounts.by_login(peer).ok_or(SendError::NoSuchChat)?;
                Ok(vec![sender.to_string(), peer.clone()])
            }
            Chat::Group(name) => {
                let g = self.accounts.group(name).ok_or(SendError::NoSuchChat)?;
                let logins: Vec<String> = g
                    .members
                    .iter()
                    .filter_map(|m| self.accounts.get(m).map(|a| a.login.clone()))
                    .collect();
                if !logins.iter().any(|l| l == sender) {
                    return Err(SendError::NotAllowed);
                }
                Ok(logins)
            }
        }
    }

    /// The storage key of a chat.
    pub fn chat_key(&self, sender: &str, chat: &Chat) -> String {
        match chat {
            Chat::Direct(peer) => {
                let (a, b) = if sender < peer.as_str() {
                    (sender, peer.as_str())
                } else {
                    (peer.as_str(), sender)
                };
                format!("direct:{a}|{b}")
            }
            Chat::Group(g) => format!("group:{g}"),
        }
    }

    /// Messages of a chat visible to `viewer`, after id `after`.
    pub fn messages(&self, viewer: &str, chat: &Chat, after: u64) -> Vec<(Message, &'static str)> {
        let key = self.chat_key(viewer, chat);
        let st = self.state.lock().expect("state");
        st.messages
            .iter()
            .filter(|m| m.id > after && m.key == key)
            .filter_map(|m| {
                if m.sender == viewer {
                    let status = if !m.delivered && self.policy.filter.notify_sender {
                        "blocked"
                    } else {
                        "sent"
                    };
                    Some((m.clone(), status))
                } else if m.delivered {
                    Some((m.clone(), "received"))
                } else {
                    None
                }
            })
            .collect()
    }

    /// Whether `viewer` may fetch the stored file `sha256`.
    pub fn may_read_file(&self, viewer: &str, sha256: &str) -> bool {
        let st = self.state.lock().expect("state");
        st.messages.iter().any(|m| {
            m.sha256.as_deref() == Some(sha256)
                && (m.sender == viewer || (m.delivered && self.key_has_member(&m.key, viewer)))
        })
    }

    fn key_has_member(&self, key: &str, login: &str) -> bool {
        if let Some(pair) = key.strip_prefix("direct:") {
            pair.split('|').any(|l| l == login)
        } else if let Some(g) = key.strip_prefix("group:") {
            self.accounts
                .group(g)
                .map(|g| {
                    g.members
                        .iter()
                        .any(|m| self.accounts.get(m).is_some_and(|a| a.login == login))
                })
                .unwrap_or(false)
        } else {
            false
        }
    }

    /// Send `content` from `sender` into `chat`: decide, store, log, and
    /// schedule inspection. Returns the stored message.
    pub fn send(
        self: &Arc<Self>,
        sender: &str,
        chat: &Chat,
        content: Content,
    ) -> Result<Message, SendError> {
        let participants = self.participants(sender, chat)?;
        let china = participants.iter().any(|l| self.region(l) == Region::China);
        let channel = chat.channel();
        let filter_applies = match self.policy.filter.applies_to {
            Applies::All => true,
            Applies::AnyChina => china,
            Applies::None => false,
        };
        let at = now_rfc3339();
        let hasher = PerceptualHasher::new();

        let (kind, text_body, filename, stored, upload_md5, decoded) = match content {
            Content::Text(t) => (ContentKind::Text, Some(t), None, None, None, None),
            Content::File { name, bytes } => {
                let upload_md5 = hash::md5_hex(&bytes);
                let is_image = matches!(
                    image::guess_format(&bytes),
                    Ok(image::ImageFormat::Png
                        | image::ImageFormat::Jpeg
                        | image::ImageFormat::Gif
                        | image::ImageFormat::WebP)
                );
                if is_image {
                    let img = hash::decode_image(Path::new(&name), &bytes)
                        .map_err(|_| SendError::BadImage)?;
                    let stored = if self.policy.images.reencode {
                        crate::corpus::transform::encode(
                            &img,
                            Format::Jpeg,
                            self.policy.images.quality,
                            Path::new(&name),
                        )
                        .map_err(|e| SendError::Storage(e.to_string()))?
                    } else {
                        bytes
                    };
                    let img = if self.policy.images.reencode {
                        hash::decode_image(Path::new(&name), &stored)
                            .map_err(|_| SendError::BadImage)?
                    } else {
                        img
                    };
                    (
                        ContentKind::Image,
                        None,
                        Some(name),
                        Some(stored),
                        Some(upload_md5),
                        Some(img),
                    )
                } else {
                    (
                        ContentKind::Document,
                        None,
                        Some(name),
                        Some(bytes),
                        Some(upload_md5),
                        None,
                    )
                }
            }
        };
        let md5 = stored.as_deref().map(hash::md5_hex);
        let sha256 = stored.as_deref().map(hash::sha256_hex);
        let phash = decoded.as_ref().map(|i| hasher.hash(i).phash);
        if let (Some(bytes), Some(sha)) = (&stored, &sha256) {
            let p = self.files.join(sha);
            if !p.exists() {
                crate::fsutil::atomic_write_bytes(&p, bytes)
                    .map_err(|e| SendError::Storage(e.to_string()))?;
            }
        }

        // The real-time filter.
        let mut reason = String::from("none");
        if filter_applies {
            if let Some(t) = &text_body {
                let sq = text::squeeze(t);
                if let Some(k) = self
                    .policy
                    .filter
                    .text_keywords
                    .iter()
                    .find(|k| keyword_hit(&sq, k))
                {
                    reason = format!("keyword:{k}");
                }
            }
            if reason == "none" && self.policy.filter.md5 {
                if let Some(m) = &md5 {
                    if self.in_index(channel, m) {
                        reason = "md5_index".into();
                    }
                }
            }
            if reason == "none" && self.policy.filter.visual {
                if let Some(img) = &decoded {
                    if let Some(r) = self.match_reference(img) {
                        reason = format!("visual_match:{r}");
                    }
                }
            }
        }
        let delivered = reason == "none";

        let (receiver, group) = match chat {
            Chat::Direct(peer) => (Some(self.alias(peer)), None),
            Chat::Group(g) => (None, Some(g.clone())),
        };
        let (message, queued, truth) = {
            let mut st = self.state.lock().expect("state");
            let id = st.next_id;
            st.next_id += 1;
            let message = Message {
                id,
                sender: sender.to_string(),
                key: self.chat_key(sender, chat),
                kind,
                text: text_body,
                filename: filename.clone(),
                sha256: sha256.clone(),
                bytes: stored.as_ref().map(|b| b.len() as u64),
                sent_at: at.clone(),
                delivered,
            };
            st.messages.push(message.clone());
            // Inspection draws happen for every transmission in scope, in
            // order, so the stream of draws is reproducible.
            let in_scope = match self.policy.inspection.scope {
                Scope::All => true,
                Scope::China => china,
                Scope::None => false,
            } && self.policy.inspection.kinds.contains(&kind)
                && self.policy.inspection.channels.contains(&channel)
                && kind != ContentKind::Text;
            let inspect = if in_scope {
                let p: f64 = st.rng.random();
                let delay = self
                    .policy
                    .inspection
                    .delay
                    .sample(&mut st.rng)
                    .unwrap_or(0.0);
                (p < self.policy.inspection.probability && delivered).then_some(delay)
            } else {
                None
            };
            let queued = match (inspect, &md5) {
                (Some(delay), Some(md5)) => Some(Queued {
                    id,
                    channel,
                    md5: md5.clone(),
                    sha256: sha256.clone().unwrap_or_default(),
                    name: message.filename.clone().unwrap_or_default(),
                    kind,
                    queued_at: now_rfc3339(),
                    due_at: Utc::now()
                        + chrono::Duration::from_std(self.policy.scaled(delay))
                            .unwrap_or(chrono::Duration::MAX),
                }),
                _ => None,
            };
            let truth = Truth::Transmission {
                id: message.id,
                at,
                sender: self.alias(sender),
                receiver,
                group,
                channel,
                kind,
                filename,
                text: message.text.clone(),
                md5: md5.clone(),
                upload_md5,
                phash: phash.map(|h| h.to_string()),
                decision: if delivered { "delivered" } else { "blocked" }.into(),
                reason,
            };
            let rng_pos = super::store::pos_text(st.rng.get_word_pos());
            st.journal(Change::Message {
                message: Box::new(message.clone()),
                key: message.key.clone(),
                delivered,
                queued: queued.clone(),
                rng_pos,
                truth: Box::new(truth.clone()),
            });
            (message, queued, truth)
        };
        self.log(&truth);

        if let Some(q) = queued {
            self.inspect_at(q);
        }
        Ok(message)
    }

    fn in_index(&self, channel: Channel, md5: &str) -> bool {
        let st = self.state.lock().expect("state");
        st.index
            .get(&channel)
            .and_then(|m| m.get(md5))
            .is_some_and(|e| e.expires.is_none_or(|t| t > Instant::now()))
    }

    /// Run `fut` as a timer that [`Engine::stop_timers`] aborts.
    fn timer(&self, fut: impl std::future::Future<Output = ()> + Send + 'static) {
        let h = tokio::spawn(fut).abort_handle();
        let mut t = self.timers.lock().expect("timers");
        t.retain(|h| !h.is_finished());
        t.push(h);
    }

    /// Stop every pending inspection and expiry (the testbed is stopping;
    /// with a state folder they resume at the next start).
    pub fn stop_timers(&self) {
        for h in self.timers.lock().expect("timers").drain(..) {
            h.abort();
        }
    }

    /// Inspect `q` at its due time.
    fn inspect_at(self: &Arc<Self>, q: Queued) {
        let engine = Arc::clone(self);
        self.timer(async move {
            tokio::time::sleep_until(instant_of(q.due_at).into()).await;
            // Off the runtime's threads: decoding and text extraction block.
            let e = Arc::clone(&engine);
            let _ = tokio::task::spawn_blocking(move || e.inspect(&q)).await;
        });
    }

    /// Run a queued inspection: judge, and index a sensitive file's MD5.
    fn inspect(self: &Arc<Self>, q: &Queued) {
        let bytes = std::fs::read(self.files.join(&q.sha256)).unwrap_or_default();
        let name = q.name.as_str();
        let reason = match q.kind {
            ContentKind::Image => hash::decode_image(Path::new(name), &bytes)
                .ok()
                .and_then(|img| self.match_reference(&img))
                .map(|r| format!("reference_image:{r}")),
            ContentKind::Document => document_text(name, &bytes).and_then(|t| {
                let sq = text::squeeze(&t);
                self.policy
                    .sensitive
                    .keywords
                    .iter()
                    .find(|k| keyword_hit(&sq, k))
                    .map(|k| format!("keyword:{k}"))
            }),
            ContentKind::Text => None,
        };
        let done_at = now_rfc3339();
        let mut truths = vec![Truth::Inspection {
            transmission: q.id,
            queued_at: q.queued_at.clone(),
            done_at: done_at.clone(),
            verdict: if reason.is_some() {
                "sensitive"
            } else {
                "benign"
            }
            .into(),
            reason: reason.clone().unwrap_or_else(|| "no_match".into()),
        }];
        let channels = match reason {
            None => Vec::new(),
            Some(_) if self.policy.index.separate_channels => vec![q.channel],
            Some(_) => vec![Channel::Direct, Channel::Group],
        };
        let added = {
            let mut st = self.state.lock().expect("state");
            let mut added = Vec::new();
            for ch in channels {
                let expiry = self.policy.index.expiry.sample(&mut st.rng);
                st.generation += 1;
                let generation = st.generation;
                let expires_at = expiry.map(|s| {
                    Utc::now()
                        + chrono::Duration::from_std(self.policy.scaled(s))
                            .unwrap_or(chrono::Duration::MAX)
                });
                st.index.entry(ch).or_default().insert(
                    q.md5.clone(),
                    IndexEntry {
                        generation,
                        expires: expires_at.map(instant_of),
                    },
                );
                truths.push(Truth::IndexAdd {
                    channel: ch,
                    md5: q.md5.clone(),
                    at: done_at.clone(),
                    transmission: q.id,
                    expires_at: expires_at
                        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
                });
                added.push(Added {
                    channel: ch,
                    md5: q.md5.clone(),
                    generation,
                    expires_at,
                });
            }
            let rng_pos = super::store::pos_text(st.rng.get_word_pos());
            st.journal(Change::Inspected {
                id: q.id,
                added: added.clone(),
                rng_pos,
                truth: truths.clone(),
            });
            added
        };
        for t in &truths {
            self.log(t);
        }
        for a in added {
            if let Some(at) = a.expires_at {
                self.expire_at(a.channel, a.md5, a.generation, instant_of(at));
            }
        }
    }

    /// Remove `md5` from `channel`'s index at `when`, unless a later
    /// insertion replaced this `generation`.
    fn expire_at(self: &Arc<Self>, channel: Channel, md5: String, generation: u64, when: Instant) {
        let engine = Arc::clone(self);
        self.timer(async move {
            tokio::time::sleep_until(when.into()).await;
            let truth = {
                let mut st = engine.state.lock().expect("state");
                let idx = st.index.entry(channel).or_default();
                if idx.get(&md5).is_some_and(|e| e.generation == generation) {
                    idx.remove(&md5);
                    let truth = Truth::IndexExpire {
                        channel,
                        md5: md5.clone(),
                        at: now_rfc3339(),
                    };
                    st.journal(Change::Expired {
                        channel,
                        md5,
                        generation,
                        truth: truth.clone(),
                    });
                    Some(truth)
                } else {
                    None
                }
            };
            if let Some(t) = truth {
                engine.log(&t);
            }
        });
    }

    /// The name of the first reference image `img` matches, if any.
    pub fn match_reference(&self, img: &DynamicImage) -> Option<String> {
        let s = &self.policy.sensitive;
        match s.match_mode {
            MatchMode::Shape => {
                let (w, h, px) = shape_normalise(img, s.match_size);
                // Computed once, and only when some reference is close.
                let mut own_sharpness = None;
                self.references.iter().find_map(|r| {
                    let (rw, rh, rpx) = &r.shape;
                    if (*rw, *rh) != (w, h) {
                        return None;
                    }
                    let mad = px
                        .iter()
                        .zip(rpx)
                        .map(|(a, b)| (*a as f64 - *b as f64).abs())
                        .sum::<f64>()
                        / px.len() as f64;
                    if mad > s.match_threshold {
                        return None;
                    }
                    if s.sharpness_min > 0.0 && r.sharpness > 0.0 {
                        let own =
                            *own_sharpness.get_or_insert_with(|| sharpness(img, s.sharpness_size));
                        if own < s.sharpness_min * r.sharpness {
                            return None;
                        }
                    }
                    Some(r.name.clone())
                })
            }
            MatchMode::Phash => {
                let ph = PerceptualHasher::new().hash(img).phash;
                self.references
                    .iter()
                    .find(|r| r.phash.distance(ph) <= s.phash_threshold)
                    .map(|r| r.name.clone())
            }
        }
    }
}

/// Shortest side scaled to `size`, the other in proportion; luminosity grey.
pub fn shape_normalise(img: &DynamicImage, size: u32) -> (u32, u32, Vec<u8>) {
    let (w, h) = (img.width().max(1), img.height().max(1));
    let (nw, nh) = if w <= h {
        (
            size,
            ((h as f64 * size as f64 / w as f64).round() as u32).max(1),
        )
    } else {
        (
            ((w as f64 * size as f64 / h as f64).round() as u32).max(1),
            size,
        )
    };
    let small = img.resize_exact(nw, nh, image::imageops::FilterType::Triangle);
    let grey = hash::luminosity(&small);
    (nw, nh, grey.into_raw())
}

/// Edge energy: the mean absolute 4-neighbour Laplacian of the luminosity
/// grey, the shortest side scaled to `size`. Blur lowers it steeply (it is
/// the fine detail that blur removes), while the pixel difference of a
/// thumbnail hardly moves; mirroring, re-encoding and small shifts leave it
/// about the same.
pub fn sharpness(img: &DynamicImage, size: u32) -> f64 {
    let (w, h, px) = shape_normalise(img, size);
    let (w, h) = (w as usize, h as usize);
    if w < 3 || h < 3 {
        return 0.0;
    }
    let at = |x: usize, y: usize| f64::from(px[y * w + x]);
    let mut sum = 0.0;
    for y in 1..h - 1 {
        for x in 1..w - 1 {
            let lap = 4.0 * at(x, y) - at(x - 1, y) - at(x + 1, y) - at(x, y - 1) - at(x, y + 1);
            sum += lap.abs();
        }
    }
    sum / ((w - 2) * (h - 2)) as f64
}

fn load_references(
    dir: &Path,
    policy: &Policy,
) -> Result<Vec<Reference>, crate::error::InputError> {
    let mut out = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| {
            crate::error::InputError::new(dir, format!("cannot read reference images: {e}"))
        })?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| matches!(Format::from_path(p), Some(Format::Png | Format::Jpeg)))
        .collect();
    entries.sort();
    let hasher = PerceptualHasher::new();
    for p in entries {
        let bytes =
            std::fs::read(&p).map_err(|e| crate::error::InputError::new(&p, e.to_string()))?;
        let img = hash::decode_image(&p, &bytes)
            .map_err(|e| crate::error::InputError::new(&p, e.to_string()))?;
        out.push(Reference {
            name: p
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("")
                .to_string(),
            shape: shape_normalise(&img, policy.sensitive.match_size),
            sharpness: sharpness(&img, policy.sensitive.sharpness_size),
            phash: hasher.hash(&img).phash,
        });
    }
    Ok(out)
}

/// The text of an uploaded document, by its name or, failing that, its bytes.
fn document_text(name: &str, bytes: &[u8]) -> Option<String> {
    let by_name = Format::from_path(Path::new(name))
        .filter(|f| f.kind() == crate::corpus::ItemKind::Document);
    let format = by_name.or_else(|| {
        if bytes.starts_with(b"%PDF") {
            Some(Format::Pdf)
        } else if bytes.starts_with(b"PK") {
            Some(Format::Docx)
        } else if std::str::from_utf8(bytes).is_ok() {
            Some(Format::Txt)
        } else {
            None
        }
    })?;
    text::extract(Path::new(name), bytes, format).ok()
}
