//! The platform driver: chatprobe's instrument.
//!
//! [`Platform`] is the I/O edge: make sure an account has a live session, open
//! a chat, send a text or a file, and look at what a chat shows. Its real
//! implementation, [`webdriver::WebDriverPlatform`], drives one browser
//! session per account through fantoccini; everything platform-specific is in
//! a [`profile::Profile`].
//!
//! [`transmit`] is the measurement on top of it: refuse any peer that is not
//! in the accounts file before touching the browser; send the probe, then a
//! sentinel text; watch the receiver's side; and classify the outcome exactly
//! as docs/DATASET.md defines it — `delivered` (the probe arrived within the
//! timeout), `blocked` (it did not, the sentinel did), `lost` (neither) or
//! `error` (the harness failed; a failure code says how). A crashed browser
//! is an `error` (`session_lost`), never `blocked`.

pub mod chromedriver;
pub mod identity;
pub mod locator;
pub mod profile;
pub mod sim;
pub mod source;
pub mod webdriver;

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::accounts::Accounts;
use crate::dataset::{Failure, Outcome};
use crate::error::InputError;
use identity::{Candidate, FileRule, Identity, InFlight, Picture, PictureMatch, TextRule};

/// Where a message goes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    /// The direct chat with this alias.
    Direct(String),
    /// The group of this name.
    Group(String),
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Direct(a) => write!(f, "{a}"),
            Target::Group(g) => write!(f, "group {g}"),
        }
    }
}

/// What is sent.
#[derive(Debug, Clone)]
pub enum Payload {
    /// A text (its marker is the whole text).
    Text(String),
    /// A file (its marker is its file name, which must be unique).
    File(PathBuf),
}

impl Payload {
    /// The file name or text by which the receiver recognises it.
    pub fn marker(&self) -> String {
        match self {
            Payload::Text(t) => t.clone(),
            Payload::File(p) => p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        }
    }
}

/// A message as a chat view shows it.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    /// Platform message id, if the client exposes one.
    pub id: Option<String>,
    /// Sender login, if exposed.
    pub sender: Option<String>,
    /// File name, for files (an attribute, or the name the client shows).
    pub filename: Option<String>,
    /// Text content.
    pub text: Option<String>,
    /// The received picture, for profiles that recognise images by picture.
    pub picture: Option<Arc<Picture>>,
    /// A picture is there but cannot be photographed yet (still loading,
    /// or not wholly in view): it may be the probe.
    pub picture_pending: bool,
}

/// Whether a message in a chat view is a probe (see [`identity`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Recognised {
    /// Not this probe.
    No,
    /// This probe; for pictures, the pHash distance and the margin over the
    /// other images in flight.
    Yes {
        /// pHash distance in bits (pictures).
        distance: Option<u32>,
        /// Smallest position against another close image in flight.
        margin: Option<f64>,
    },
    /// A picture close to this probe and to another image in flight.
    Ambiguous,
}

/// What a chat view is searched for: a payload under the platform's
/// identity rules.
#[derive(Debug, Clone)]
pub struct Probe {
    payload: Payload,
    rule: Identity,
    picture: Option<Arc<Candidate>>,
}

impl Probe {
    /// The probe for `payload` on `platform` (an image recognised by
    /// picture is decoded now).
    pub fn new<P: Platform>(platform: &P, payload: &Payload) -> Probe {
        let rule = platform.identity();
        let picture = match payload {
            Payload::File(p) if rule.image == FileRule::Picture && identity::is_image(p) => {
                Candidate::load(p).map(Arc::new)
            }
            _ => None,
        };
        Probe {
            payload: payload.clone(),
            rule,
            picture,
        }
    }

    /// Is `seen` this probe, with `others` in flight in the chat?
    pub fn check(&self, seen: &Seen, others: &[Arc<Candidate>]) -> Recognised {
        let yes = Recognised::Yes {
            distance: None,
            margin: None,
        };
        let hit = |b: bool| if b { yes } else { Recognised::No };
        match &self.payload {
            Payload::Text(t) => match (self.rule.text, identity::tag_of(t)) {
                (TextRule::Nonce, Some(tag)) => {
                    hit(seen.text.as_deref().is_some_and(|s| s.contains(tag)))
                }
                _ => hit(seen.text.as_deref().map(str::trim) == Some(t.trim())),
            },
            Payload::File(_) => match (&self.picture, &seen.picture) {
                (Some(c), Some(p)) => match identity::compare(p, c, others, &self.rule) {
                    PictureMatch::No => Recognised::No,
                    PictureMatch::Ambiguous { .. } => Recognised::Ambiguous,
                    PictureMatch::Yes { distance, margin } => Recognised::Yes {
                        distance: Some(distance),
                        margin,
                    },
                },
                (Some(_), None) => Recognised::No,
                (None, _) => hit(seen.filename.as_deref() == Some(self.payload.marker().as_str())),
            },
        }
    }

    /// The picture sent, for images recognised by picture.
    pub fn candidate(&self) -> Option<&Arc<Candidate>> {
        self.picture.as_ref()
    }

    /// Keep the picture the sender's own client shows for this probe (the
    /// first of `seen` that is it), to compare receivers' bubbles with.
    pub fn remember_shown(&self, seen: &[Seen]) {
        let Some(c) = &self.picture else { return };
        if let Some(p) = seen
            .iter()
            .filter(|m| self.check(m, &[]) != Recognised::No)
            .find_map(|m| m.picture.clone())
        {
            let _ = c.shown.set(p);
        }
    }

    /// For a probe recognised by picture: a new picture in `seen` that is
    /// neither this probe nor close to any other image in flight. Between
    /// accounts the researcher controls every picture is chatprobe's, so one
    /// that matches nothing is a failure to recognise — maybe of this probe.
    pub fn unexplained(&self, seen: &[Seen], others: &[Arc<Candidate>]) -> bool {
        if self.picture.is_none() {
            return false;
        }
        seen.iter()
            .filter_map(|m| m.picture.as_ref().map(|p| (m, p)))
            .any(|(m, p)| {
                self.check(m, others) == Recognised::No
                    && !others
                        .iter()
                        .any(|o| o.distance(p) <= self.rule.max_distance)
            })
    }

    /// The best verdict over `seen`: a match wins, then an ambiguity.
    pub fn find(&self, seen: &[Seen], others: &[Arc<Candidate>]) -> Recognised {
        let mut best = Recognised::No;
        for m in seen {
            match self.check(m, others) {
                y @ Recognised::Yes { .. } => return y,
                Recognised::Ambiguous => best = Recognised::Ambiguous,
                Recognised::No => {}
            }
        }
        best
    }
}

/// A harness error.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{failure}: {message}")]
pub struct PlatformError {
    /// Which failure.
    pub failure: Failure,
    /// Details (never a secret).
    pub message: String,
    /// Set by [`Platform::send`] for an error that happened before the
    /// payload was handed to the client (the file could not be read, the
    /// input was not found): nothing can have reached the platform, so the
    /// send may be tried again. Any other error of `send` may have come
    /// after the hand-over.
    pub nothing_sent: bool,
}

impl PlatformError {
    /// A new error.
    pub fn new(failure: Failure, message: impl Into<String>) -> Self {
        PlatformError {
            failure,
            message: message.into(),
            nothing_sent: false,
        }
    }

    /// This error happened before anything was handed to the client.
    pub fn before_sending(mut self) -> Self {
        self.nothing_sent = true;
        self
    }
}

/// The driver's I/O edge: one implementation drives browsers, tests may
/// drive anything else.
#[allow(async_fn_in_trait)]
pub trait Platform {
    /// Make sure `alias` has a live, logged-in session (rebuilding a dead one).
    async fn ensure_session(&self, alias: &str) -> Result<(), PlatformError>;
    /// Open `target`'s chat in `alias`'s client: true if it was not the
    /// open one (the client is then still filling the view in).
    async fn open_chat(&self, alias: &str, target: &Target) -> Result<bool, PlatformError>;
    /// Send `payload` in the chat open in `alias`'s client.
    async fn send(&self, alias: &str, payload: &Payload) -> Result<(), PlatformError>;
    /// What the chat open in `alias`'s client shows now.
    async fn look(&self, alias: &str) -> Result<Vec<Seen>, PlatformError>;
    /// How probes are recognised (the profile's `[identity]`).
    fn identity(&self) -> Identity {
        Identity::default()
    }
    /// The images in flight in each chat, for platforms that recognise
    /// images by picture.
    fn in_flight(&self) -> Option<&InFlight> {
        None
    }
    /// What run.json records of the endpoints at the end of a run (which
    /// endpoint and Grid node served each account), if the platform knows.
    fn provenance(&self) -> Option<serde_json::Value> {
        None
    }
    /// Whether the platform itself answers (its server, not a client):
    /// asked after a failed send, to tell an outage from a harness error.
    async fn reachable(&self) -> bool {
        true
    }
}

/// How long a send that found the platform unreachable waits for it to
/// answer again before its try is recorded (`platform_unreachable`) and
/// made again; a probe already handed over waits ten times as long before
/// it is looked for.
pub const OUTAGE_WAIT: Duration = Duration::from_secs(60);

/// Wait, re-checking with growing pauses (1 s … 15 s), until the platform
/// answers or `limit` is spent: whether it answers.
pub async fn wait_reachable<P: Platform>(platform: &P, limit: Duration) -> bool {
    let t0 = Instant::now();
    let mut pause = Duration::from_secs(1);
    loop {
        if platform.reachable().await {
            return true;
        }
        if t0.elapsed() + pause > limit {
            return false;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(15));
    }
}

/// A failed send on a platform that does not answer: its failure is the
/// outage (`platform_unreachable`), and the send waits for the platform,
/// so that the try is neither counted against `retries` nor a probe that
/// went out looked for while nothing can be seen.
pub async fn note_outage<P: Platform>(platform: &P, mut obs: Observation) -> Observation {
    if obs.outcome != Outcome::Error || platform.reachable().await {
        return obs;
    }
    if obs.sent_at.is_none() {
        obs.failure = Some(Failure::PlatformUnreachable);
        obs.error = Some(format!(
            "the platform did not answer ({})",
            obs.error.as_deref().unwrap_or("no details")
        ));
        wait_reachable(platform, OUTAGE_WAIT).await;
    } else {
        wait_reachable(platform, OUTAGE_WAIT * 10).await;
    }
    obs
}

/// The key of the chat `t` goes through, the same from both sides.
pub fn chat_key(t: &Transmission) -> String {
    chat_key_of(&t.from, &t.to)
}

/// The key of the chat `from` writes to `to` in, the same from both sides.
pub fn chat_key_of(from: &str, to: &Target) -> String {
    match to {
        Target::Direct(peer) => {
            let (a, b) = if from <= peer.as_str() {
                (from, peer.as_str())
            } else {
                (peer.as_str(), from)
            };
            format!("direct:{a}|{b}")
        }
        Target::Group(g) => format!("group:{g}"),
    }
}

/// One transmission to make.
#[derive(Debug, Clone)]
pub struct Transmission {
    /// Sender alias.
    pub from: String,
    /// Where it goes.
    pub to: Target,
    /// Alias whose client is watched (the receiver).
    pub observer: String,
    /// What is sent.
    pub payload: Payload,
    /// Send a sentinel text after it.
    pub sentinel: bool,
}

/// How long one transmission waits (the spec's `[limits]` are `probe::spec::Limits`).
#[derive(Debug, Clone, Copy)]
pub struct Waits {
    /// How long the probe has to arrive.
    pub deliver_timeout: Duration,
    /// Once the sentinel is seen, how much longer to wait for the probe
    /// (messages may arrive out of order on a real platform).
    pub after_sentinel: Duration,
    /// Between two looks.
    pub poll: Duration,
}

impl Default for Waits {
    fn default() -> Self {
        Waits {
            deliver_timeout: Duration::from_secs(15),
            after_sentinel: Duration::from_secs(3),
            poll: Duration::from_millis(100),
        }
    }
}

/// What was observed.
#[derive(Debug, Clone, Serialize)]
pub struct Observation {
    /// The outcome.
    pub outcome: Outcome,
    /// The failure, for `error`.
    pub failure: Option<Failure>,
    /// The error text, for `error` (never a secret).
    pub error: Option<String>,
    /// When the probe was handed to the client.
    pub sent_at: Option<DateTime<Utc>>,
    /// When the receiver first showed it.
    pub observed_at: Option<DateTime<Utc>>,
    /// When the receiver first showed the sentinel.
    pub sentinel_observed_at: Option<DateTime<Utc>>,
    /// observed_at − sent_at.
    pub latency_ms: Option<i64>,
    /// Images recognised by picture: the pHash distance (bits) between the
    /// received bubble and the picture sent.
    pub match_distance: Option<u32>,
    /// Images recognised by picture: how clearly the bubble was this probe
    /// rather than another close image in flight (`z`, see [`identity`]).
    pub match_margin: Option<f64>,
    /// Time spent idle between looks, waiting for the platform (ms).
    #[serde(skip)]
    pub waited_ms: u64,
    /// When the sender's own chat first showed the probe (so the platform
    /// had it): rate limits count from here.
    #[serde(skip)]
    pub confirmed_at: Option<DateTime<Utc>>,
}

impl Observation {
    fn error(e: PlatformError, sent_at: Option<DateTime<Utc>>) -> Self {
        Observation {
            outcome: Outcome::Error,
            failure: Some(e.failure),
            error: Some(e.message),
            sent_at,
            observed_at: None,
            sentinel_observed_at: None,
            latency_ms: None,
            match_distance: None,
            match_margin: None,
            waited_ms: 0,
            confirmed_at: None,
        }
    }
}

/// Check, before any browser action, that everyone involved is in the
/// accounts file.
pub fn check_allowed(accounts: &Accounts, t: &Transmission) -> Result<(), InputError> {
    let unknown = |what: &str, name: &str| {
        InputError::new(
            &accounts.path,
            format!("{what} `{name}` is not in the accounts file"),
        )
        .hint("chatprobe only messages accounts listed there; add it, or fix the name")
    };
    if let Target::Group(g) = &t.to {
        if accounts.group(g).is_none() {
            return Err(unknown("group", g));
        }
    }
    for alias in [&t.from, &t.observer] {
        if accounts.get(alias).is_none() {
            return Err(unknown("account", alias));
        }
    }
    match &t.to {
        Target::Direct(a) => {
            if accounts.get(a).is_none() {
                return Err(unknown("account", a));
            }
            if *a != t.observer {
                return Err(InputError::new(
                    &accounts.path,
                    format!("a direct message to `{a}` can only be observed by `{a}`"),
                ));
            }
        }
        Target::Group(g) => {
            let group = accounts.group(g).ok_or_else(|| unknown("group", g))?;
            for who in [&t.from, &t.observer] {
                if !group.members.contains(who) {
                    return Err(InputError::new(
                        &accounts.path,
                        format!("`{who}` is not a member of group `{g}`"),
                    ));
                }
            }
        }
    }
    if t.from == t.observer {
        return Err(InputError::new(
            &accounts.path,
            "sender and observer must differ",
        ));
    }
    Ok(())
}

/// The sentinel text of the send with `nonce`: tagged (see [`identity`])
/// with a nonce derived from the probe's, so the two never share a tag.
pub fn sentinel_text(nonce: &str) -> String {
    identity::tagged(
        "chatprobe sentinel",
        &crate::corpus::hash::sha256_hex(format!("sentinel|{nonce}").as_bytes()),
    )
}

/// Send `t` and observe it. Refuses (input error) before touching the
/// platform if anyone involved is not in `accounts`.
pub async fn transmit<P: Platform>(
    platform: &P,
    accounts: &Accounts,
    t: &Transmission,
    limits: &Waits,
    nonce: &str,
) -> Result<Observation, InputError> {
    check_allowed(accounts, t)?;
    Ok(transmit_checked(platform, t, limits, nonce).await)
}

/// [`transmit`] without the accounts check (the caller has made it).
pub async fn transmit_checked<P: Platform>(
    platform: &P,
    t: &Transmission,
    limits: &Waits,
    nonce: &str,
) -> Observation {
    // The receiver's view first, so nothing is missed.
    let recv_chat = match &t.to {
        Target::Direct(_) => Target::Direct(t.from.clone()),
        Target::Group(g) => Target::Group(g.clone()),
    };
    // What both views show already: only messages new since then count, so
    // an identical earlier text (or picture) is never taken for this one. A
    // chat just opened is still being filled in: wait until it settles.
    let prepare = async {
        platform.ensure_session(&t.observer).await?;
        let recv_opened = platform.open_chat(&t.observer, &recv_chat).await?;
        platform.ensure_session(&t.from).await?;
        if platform.open_chat(&t.from, &t.to).await? {
            steady_look(platform, &t.from, limits).await?;
        }
        if recv_opened {
            steady_look(platform, &t.observer, limits).await
        } else {
            platform.look(&t.observer).await
        }
    };
    let before_recv = match prepare.await {
        Ok(s) => s,
        Err(e) => return Observation::error(e, None),
    };
    let probe = Probe::new(platform, &t.payload);
    let key = chat_key(t);
    if let (Some(c), Some(f)) = (probe.candidate(), platform.in_flight()) {
        f.add(
            &key,
            c.clone(),
            limits.deliver_timeout * 2 + limits.after_sentinel,
        );
    }
    let others = || {
        platform
            .in_flight()
            .map(|f| f.get(&key))
            .unwrap_or_default()
    };
    let t0 = Instant::now();
    let mut waited_sending = Duration::ZERO;
    // `sent_at` is set once the probe was handed to the client: from then
    // on it may be on the platform, and it is settled, never sent again.
    let sent_at = match send_confirmed(platform, &t.from, &probe, limits).await {
        Ok(s) => {
            waited_sending += s.waited;
            s.at
        }
        Err(SendFailed::Before(e)) => return Observation::error(e, None),
        Err(SendFailed::After(e, at)) => return Observation::error(e, Some(at)),
    };
    let confirmed_at = Some(crate::clock::now());
    let sentinel = Probe::new(platform, &Payload::Text(sentinel_text(nonce)));
    if t.sentinel {
        match send_confirmed(platform, &t.from, &sentinel, limits).await {
            Ok(s) => waited_sending += s.waited,
            Err(SendFailed::Before(e) | SendFailed::After(e, _)) => {
                return Observation::error(e, Some(sent_at))
            }
        }
    }
    // Watch the receiver.
    let mut waited = Duration::ZERO;
    let deadline = t0 + limits.deliver_timeout;
    let mut sentinel_seen: Option<(Instant, DateTime<Utc>)> = None;
    let mut ambiguous = false;
    let mut unexplained = false;
    loop {
        let seen = match platform.look(&t.observer).await {
            Ok(s) => new_since(&before_recv, s),
            Err(e) => return Observation::error(e, Some(sent_at)),
        };
        let now = crate::clock::now();
        match probe.find(&seen, &others()) {
            Recognised::Yes { distance, margin } => {
                if let Some(f) = platform.in_flight() {
                    f.remove(&key, &t.payload.marker());
                }
                return Observation {
                    outcome: Outcome::Delivered,
                    failure: None,
                    error: None,
                    sent_at: Some(sent_at),
                    observed_at: Some(now),
                    sentinel_observed_at: sentinel_seen.map(|s| s.1),
                    latency_ms: Some((now - sent_at).num_milliseconds()),
                    match_distance: distance,
                    match_margin: margin,
                    waited_ms: (waited + waited_sending).as_millis() as u64,
                    confirmed_at,
                };
            }
            Recognised::Ambiguous => ambiguous = true,
            Recognised::No => {}
        }
        // A picture still loading may be this probe: no verdict before it
        // can be looked at (or the timeout).
        let pending = probe.candidate().is_some() && seen.iter().any(|m| m.picture_pending);
        unexplained |= probe.unexplained(&seen, &others());
        if t.sentinel && sentinel_seen.is_none() && sentinel.find(&seen, &[]) != Recognised::No {
            sentinel_seen = Some((Instant::now(), now));
        }
        let give_up = Instant::now() >= deadline
            || (!pending
                && sentinel_seen.is_some_and(|(at, _)| at.elapsed() >= limits.after_sentinel));
        if give_up {
            let (outcome, failure, error) = unseen(Watched {
                pending,
                unexplained,
                ambiguous,
                sentinel: sentinel_seen.is_some(),
            });
            return Observation {
                outcome,
                failure,
                error: error.map(str::to_string),
                sent_at: Some(sent_at),
                observed_at: None,
                sentinel_observed_at: sentinel_seen.map(|s| s.1),
                latency_ms: None,
                match_distance: None,
                match_margin: None,
                waited_ms: (waited + waited_sending).as_millis() as u64,
                confirmed_at,
            };
        }
        tokio::time::sleep(limits.poll).await;
        waited += limits.poll;
    }
}

/// What the receiver's chat showed, by the end of a watch in which the
/// probe was not recognised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Watched {
    /// A received picture was still loading (it may be the probe).
    pub pending: bool,
    /// A received picture matched no image in flight (it may be the probe).
    pub unexplained: bool,
    /// A received picture was as close to the probe as to another in flight.
    pub ambiguous: bool,
    /// The sentinel sent after the probe arrived.
    pub sentinel: bool,
}

/// The outcome of a probe the receiver was not seen to get (docs/DATASET.md,
/// "outcome" and "Failure codes"): `blocked` only when the sentinel after it
/// arrived and nothing received could have been the probe; a picture that
/// may have been it makes the probe `lost` with the reason (one still
/// loading before one unrecognised before one ambiguous); with no sentinel,
/// `lost`. The error text goes to the log, never to a dataset.
pub fn unseen(w: Watched) -> (Outcome, Option<Failure>, Option<&'static str>) {
    if w.pending {
        (
            Outcome::Lost,
            Some(Failure::PictureUnreadable),
            Some("a received picture could not be photographed before the timeout"),
        )
    } else if w.unexplained {
        (
            Outcome::Lost,
            Some(Failure::UnrecognisedPicture),
            Some("a received picture matched no image in flight"),
        )
    } else if w.ambiguous {
        (
            Outcome::Lost,
            Some(Failure::AmbiguousImage),
            Some("a received picture was as close to this probe as to another image in flight"),
        )
    } else if w.sentinel {
        (Outcome::Blocked, None, None)
    } else {
        (Outcome::Lost, None, None)
    }
}

/// Settle a transmission whose outcome a crash left unknown, by looking and
/// never by sending the probe again: if the receiver's chat shows the probe,
/// it was `delivered`; if it shows the sentinel, `blocked`; if the sender's
/// own chat shows the probe but nothing arrived, a new sentinel is sent and
/// watched, giving `delivered`, `blocked` or `lost`. `None`: the sender's
/// chat does not show the probe, so it was never sent.
pub async fn settle<P: Platform>(
    platform: &P,
    t: &Transmission,
    limits: &Waits,
    nonce: &str,
) -> Option<Observation> {
    let recv_chat = match &t.to {
        Target::Direct(_) => Target::Direct(t.from.clone()),
        Target::Group(g) => Target::Group(g.clone()),
    };
    // Whole views only: a probe missed in a view still filling in would be
    // taken for one never sent, and sent again.
    let look_at = |alias: String, chat: Target| async move {
        platform.ensure_session(&alias).await?;
        platform.open_chat(&alias, &chat).await?;
        steady_look(platform, &alias, limits).await
    };
    let settled = |outcome: Outcome| Observation {
        outcome,
        failure: None,
        error: None,
        sent_at: None,
        observed_at: None,
        sentinel_observed_at: None,
        latency_ms: None,
        match_distance: None,
        match_margin: None,
        waited_ms: 0,
        confirmed_at: None,
    };
    let received = match look_at(t.observer.clone(), recv_chat).await {
        Ok(s) => s,
        Err(e) => return Some(Observation::error(e, None)),
    };
    let probe = Probe::new(platform, &t.payload);
    let others = platform
        .in_flight()
        .map(|f| f.get(&chat_key(t)))
        .unwrap_or_default();
    match probe.find(&received, &others) {
        Recognised::Yes { distance, margin } => {
            let mut o = settled(Outcome::Delivered);
            o.match_distance = distance;
            o.match_margin = margin;
            return Some(o);
        }
        Recognised::Ambiguous => {
            let mut o = settled(Outcome::Lost);
            o.failure = Some(Failure::AmbiguousImage);
            return Some(o);
        }
        Recognised::No => {}
    }
    let first_sentinel = Probe::new(platform, &Payload::Text(sentinel_text(nonce)));
    if t.sentinel && first_sentinel.find(&received, &[]) != Recognised::No {
        return Some(settled(Outcome::Blocked));
    }
    let shown = match look_at(t.from.clone(), t.to.clone()).await {
        Ok(s) => s,
        Err(e) => return Some(Observation::error(e, None)),
    };
    if probe.find(&shown, &others) == Recognised::No {
        return None;
    }
    // Sent, nothing arrived, no sentinel: send one now and watch. Watch
    // everything new since the receiver's first look: the probe may arrive
    // while the sender's chat is being read, and a baseline taken after
    // that would hide it (and turn a late delivery into `blocked`).
    let before = received;
    let sentinel = Probe::new(
        platform,
        &Payload::Text(sentinel_text(&format!("{nonce}-settle"))),
    );
    if let Err(SendFailed::Before(e) | SendFailed::After(e, _)) =
        send_confirmed(platform, &t.from, &sentinel, limits).await
    {
        return Some(Observation::error(e, None));
    }
    let t0 = Instant::now();
    let mut seen_at: Option<Instant> = None;
    loop {
        let now = match platform.look(&t.observer).await {
            Ok(s) => new_since(&before, s),
            Err(e) => return Some(Observation::error(e, None)),
        };
        if let Recognised::Yes { distance, margin } = probe.find(&now, &others) {
            let mut o = settled(Outcome::Delivered);
            o.match_distance = distance;
            o.match_margin = margin;
            return Some(o);
        }
        if seen_at.is_none() && sentinel.find(&now, &[]) != Recognised::No {
            seen_at = Some(Instant::now());
        }
        if let Some(at) = seen_at {
            if at.elapsed() >= limits.after_sentinel {
                let mut o = settled(Outcome::Blocked);
                o.sentinel_observed_at = Some(crate::clock::now());
                return Some(o);
            }
        } else if t0.elapsed() >= limits.deliver_timeout {
            return Some(settled(Outcome::Lost));
        }
        tokio::time::sleep(limits.poll).await;
    }
}

/// How [`settle_after_error`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterError {
    /// The error happened before the probe was handed to the client: a
    /// retry may send it.
    NotSent,
    /// The chat history settled it: the observation is its real outcome.
    Settled,
    /// The probe was handed to the client and the chats do not say what
    /// became of it (or could not be looked at within the budget): it
    /// must not be sent again.
    Unsettled,
}

/// After a harness error, settle what happened before anything is sent
/// again: a probe handed to the client may have reached the platform even
/// though the session died right after. Errors before the hand-over (no
/// `sent_at`) need nothing. Otherwise [`settle`] is tried (sessions
/// rebuilt, logins redone) with growing pauses until `budget` is spent;
/// whatever it finds, a probe handed over is never sent again.
pub async fn settle_after_error<P: Platform>(
    platform: &P,
    t: &Transmission,
    limits: &Waits,
    nonce: &str,
    error: Observation,
    budget: Duration,
) -> (Observation, AfterError) {
    if error.outcome != Outcome::Error || error.sent_at.is_none() {
        return (error, AfterError::NotSent);
    }
    match settle_patiently(platform, t, limits, nonce, budget).await {
        // Handed to the client, yet neither chat shows it: a client may
        // show nothing of a send it lost, or draw a picture beyond
        // recognition, so it may still be on the platform. Never sent
        // again: the error stands.
        Ok(None) => (error, AfterError::Unsettled),
        Ok(Some(mut o)) => {
            o.sent_at = error.sent_at;
            (o, AfterError::Settled)
        }
        Err(_) => (error, AfterError::Unsettled),
    }
}

/// [`settle`], tried again (sessions rebuilt, logins redone) with growing
/// pauses while it fails, until `budget` is spent: `Ok(None)` never sent,
/// `Ok(Some(o))` settled, `Err(last error)` the chats could not be read.
pub async fn settle_patiently<P: Platform>(
    platform: &P,
    t: &Transmission,
    limits: &Waits,
    nonce: &str,
    budget: Duration,
) -> Result<Option<Observation>, Observation> {
    let t0 = Instant::now();
    let mut pause = Duration::from_millis(500);
    loop {
        match settle(platform, t, limits, nonce).await {
            None => return Ok(None),
            Some(o) if o.outcome != Outcome::Error => return Ok(Some(o)),
            Some(e) if t0.elapsed() + pause > budget => return Err(e),
            Some(_) => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(8));
            }
        }
    }
}

/// What `alias`'s chat shows once it has stopped changing: three looks a
/// poll apart that agree (at most 5 s; then the last look).
pub async fn steady_look<P: Platform>(
    platform: &P,
    alias: &str,
    limits: &Waits,
) -> Result<Vec<Seen>, PlatformError> {
    let t0 = Instant::now();
    let mut last = platform.look(alias).await?;
    let mut same = 0;
    while same < 2 && t0.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(limits.poll).await;
        let now = platform.look(alias).await?;
        let unchanged = now.len() == last.len()
            && now.iter().zip(&last).all(|(a, b)| {
                a.id == b.id
                    && a.text == b.text
                    && a.filename == b.filename
                    && a.picture_pending == b.picture_pending
                    && a.picture.is_some() == b.picture.is_some()
            });
        same = if unchanged { same + 1 } else { 0 };
        last = now;
    }
    Ok(last)
}

/// The messages of `now` that were not in `before`: by id when the client
/// exposes ids, else by position.
pub fn new_since(before: &[Seen], now: Vec<Seen>) -> Vec<Seen> {
    if !before.is_empty() && before.iter().all(|m| m.id.is_some()) {
        let old: std::collections::HashSet<&str> =
            before.iter().filter_map(|m| m.id.as_deref()).collect();
        now.into_iter()
            .filter(|m| m.id.as_deref().is_none_or(|id| !old.contains(id)))
            .collect()
    } else {
        now.into_iter().skip(before.len()).collect()
    }
}

/// How a send into a chat failed.
#[derive(Debug)]
enum SendFailed {
    /// Before the payload was handed to the client: nothing went out, and
    /// the send may be tried again.
    Before(PlatformError),
    /// After the hand-over (at the time given): the payload may have
    /// reached the platform.
    After(PlatformError, DateTime<Utc>),
}

/// A send the sender's own view confirmed.
#[derive(Debug)]
struct Sent {
    /// When the payload was handed to the client.
    at: DateTime<Utc>,
    /// Time spent idle between looks.
    waited: Duration,
}

/// What the sender's own view, after a send, says of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Own {
    /// It shows it.
    Shown,
    /// A picture is there but still loading.
    Loading,
    /// Not yet.
    Absent,
}

impl Probe {
    /// The sender's own view of its send, from `new` (the messages new in
    /// its chat since just before the send). A picture probe is the newest
    /// new picture: sends in a chat are exclusive, so it can be no other,
    /// and it is never compared with the file, which the client may have
    /// drawn beyond recognition (scaled, cropped, re-encoded). Its
    /// rendering is kept to recognise the receiver's bubble by.
    fn own(&self, new: &[Seen]) -> Own {
        match &self.picture {
            Some(c) => match new
                .iter()
                .rev()
                .find(|m| m.picture.is_some() || m.picture_pending)
            {
                Some(Seen {
                    picture: Some(p), ..
                }) => {
                    let _ = c.shown.set(p.clone());
                    Own::Shown
                }
                Some(_) => Own::Loading,
                None => Own::Absent,
            },
            None if self.find(new, &[]) != Recognised::No => Own::Shown,
            None => Own::Absent,
        }
    }
}

/// Send and wait until the sender's own view shows it.
async fn send_confirmed<P: Platform>(
    platform: &P,
    alias: &str,
    probe: &Probe,
    limits: &Waits,
) -> Result<Sent, SendFailed> {
    let payload = &probe.payload;
    let before = platform.look(alias).await.map_err(SendFailed::Before)?;
    let at = crate::clock::now();
    match platform.send(alias, payload).await {
        Ok(()) => {}
        Err(e) if e.nothing_sent => return Err(SendFailed::Before(e)),
        Err(e) => return Err(SendFailed::After(e, at)),
    }
    let t0 = Instant::now();
    let mut waited = Duration::ZERO;
    let mut loading = false;
    loop {
        let new = new_since(
            &before,
            platform
                .look(alias)
                .await
                .map_err(|e| SendFailed::After(e, at))?,
        );
        match probe.own(&new) {
            Own::Shown => return Ok(Sent { at, waited }),
            Own::Loading => loading = true,
            Own::Absent => {}
        }
        if t0.elapsed() >= limits.deliver_timeout {
            let failure = match payload {
                Payload::File(_) => Failure::UploadFailed,
                Payload::Text(_) => Failure::SendFailed,
            };
            let what = if loading {
                "the picture never finished loading in the sender's own chat view"
            } else {
                "the message never showed in the sender's own chat view"
            };
            return Err(SendFailed::After(PlatformError::new(failure, what), at));
        }
        tokio::time::sleep(limits.poll).await;
        waited += limits.poll;
    }
}

/// In a group, the observer by default: the first china member other than the
/// sender, else the first other member.
pub fn default_observer(accounts: &Accounts, group: &str, from: &str) -> Option<String> {
    let g = accounts.group(group)?;
    let others: Vec<&String> = g.members.iter().filter(|m| *m != from).collect();
    others
        .iter()
        .find(|m| {
            accounts
                .get(m)
                .is_some_and(|a| a.region == crate::accounts::Region::China)
        })
        .or(others.first())
        .map(|m| (*m).clone())
}

/// Copy `file` into `dir` under a unique name (`stem-NONCE.ext`), the marker
/// by which the receiver's view is searched.
pub fn stage_file(
    file: &std::path::Path,
    dir: &std::path::Path,
    nonce: &str,
) -> Result<PathBuf, InputError> {
    let stem = file.file_stem().and_then(|s| s.to_str()).unwrap_or("probe");
    let name = match file.extension().and_then(|e| e.to_str()) {
        Some(ext) => format!("{stem}-{nonce}.{ext}"),
        None => format!("{stem}-{nonce}"),
    };
    let dst = dir.join(name);
    std::fs::copy(file, &dst).map_err(|e| InputError::new(file, format!("cannot read: {e}")))?;
    Ok(dst)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every row of the truth table [`unseen`] implements, written out:
    /// (pending, unexplained, ambiguous, sentinel) → outcome, failure.
    /// `blocked` needs the sentinel and nothing that could be the probe;
    /// docs/DATASET.md defines each word.
    #[test]
    fn the_unseen_truth_table_row_by_row() {
        use Failure::{
            AmbiguousImage as Amb, PictureUnreadable as Pend, UnrecognisedPicture as Unex,
        };
        use Outcome::{Blocked, Lost};
        // (pending, unexplained, ambiguous, sentinel), outcome, failure.
        type Row = ((bool, bool, bool, bool), Outcome, Option<Failure>);
        let rows: [Row; 16] = [
            ((false, false, false, false), Lost, None),
            ((false, false, false, true), Blocked, None),
            ((false, false, true, false), Lost, Some(Amb)),
            ((false, false, true, true), Lost, Some(Amb)),
            ((false, true, false, false), Lost, Some(Unex)),
            ((false, true, false, true), Lost, Some(Unex)),
            ((false, true, true, false), Lost, Some(Unex)),
            ((false, true, true, true), Lost, Some(Unex)),
            ((true, false, false, false), Lost, Some(Pend)),
            ((true, false, false, true), Lost, Some(Pend)),
            ((true, false, true, false), Lost, Some(Pend)),
            ((true, false, true, true), Lost, Some(Pend)),
            ((true, true, false, false), Lost, Some(Pend)),
            ((true, true, false, true), Lost, Some(Pend)),
            ((true, true, true, false), Lost, Some(Pend)),
            ((true, true, true, true), Lost, Some(Pend)),
        ];
        for ((pending, unexplained, ambiguous, sentinel), outcome, failure) in rows {
            let w = Watched {
                pending,
                unexplained,
                ambiguous,
                sentinel,
            };
            let (o, f, e) = unseen(w);
            assert_eq!((o, f), (outcome, failure), "{w:?}");
            // A reason is logged exactly when there is a failure code.
            assert_eq!(e.is_some(), f.is_some(), "{w:?}");
        }
    }
}
