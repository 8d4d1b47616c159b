//! The vocabulary every stage shares: what became of a send ([`Outcome`],
//! the `outcome` column), when the harness could not measure, why
//! ([`Failure`], the `failure` column), and what a trial found
//! ([`Verdict`], trials.csv's `verdict`). All are closed lists that
//! docs/DATASET.md defines and datapackage.json declares.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The outcome of a send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Arrived within the timeout.
    Delivered,
    /// Did not arrive, but the sentinel after it did.
    Blocked,
    /// Neither arrived: inconclusive.
    Lost,
    /// The harness failed.
    Error,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Outcome::Delivered => "delivered",
            Outcome::Blocked => "blocked",
            Outcome::Lost => "lost",
            Outcome::Error => "error",
        })
    }
}

impl Outcome {
    /// Delivered or blocked: a send that tells something.
    pub fn conclusive(self) -> bool {
        matches!(self, Outcome::Delivered | Outcome::Blocked)
    }
}

/// The closed list of harness failures (the `failure` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Failure {
    /// Logging in failed.
    LoginFailed,
    /// The file could not be uploaded (or its upload never showed).
    UploadFailed,
    /// A text could not be sent (or never showed on the sender's side).
    SendFailed,
    /// The chat to send in or watch could not be opened.
    ChatNotFound,
    /// The browser session or the WebDriver endpoint died.
    SessionLost,
    /// A WebDriver command timed out.
    DriverTimeout,
    /// The WebDriver endpoint cannot be reached or refused a session.
    DriverUnreachable,
    /// An element the profile names is missing.
    ElementMissing,
    /// A received picture was as close to this probe as to another image
    /// in flight in the chat: the probe is `lost`, as nobody can say which
    /// of them arrived.
    AmbiguousImage,
    /// A received picture never became readable (it did not load, or could
    /// not be photographed whole) within the timeout: it may have been the
    /// probe, so the probe is `lost`.
    PictureUnreadable,
    /// A received picture matched no image chatprobe had in flight in the
    /// chat: recognition failed, and it may have been the probe, so the
    /// probe is `lost`.
    UnrecognisedPicture,
    /// The client showed its login page (the platform restarted, or ended
    /// the session); chatprobe logs in again before the next try.
    LoggedOut,
    /// The platform itself did not answer (its server down or cut off):
    /// chatprobe waits for it to answer again, and the try does not count
    /// against `retries`.
    PlatformUnreachable,
}

impl Failure {
    /// Every failure code, for the closed vocabulary of the `failure`
    /// column (datapackage.json); a new variant goes here and in
    /// [`Failure::code`] (whose match the compiler checks).
    pub const ALL: [Failure; 13] = [
        Failure::LoginFailed,
        Failure::UploadFailed,
        Failure::SendFailed,
        Failure::ChatNotFound,
        Failure::SessionLost,
        Failure::DriverTimeout,
        Failure::DriverUnreachable,
        Failure::ElementMissing,
        Failure::AmbiguousImage,
        Failure::PictureUnreadable,
        Failure::UnrecognisedPicture,
        Failure::LoggedOut,
        Failure::PlatformUnreachable,
    ];

    /// The code written in the `failure` column.
    pub fn code(self) -> &'static str {
        match self {
            Failure::LoginFailed => "login_failed",
            Failure::UploadFailed => "upload_failed",
            Failure::SendFailed => "send_failed",
            Failure::ChatNotFound => "chat_not_found",
            Failure::SessionLost => "session_lost",
            Failure::DriverTimeout => "driver_timeout",
            Failure::DriverUnreachable => "driver_unreachable",
            Failure::ElementMissing => "element_missing",
            Failure::AmbiguousImage => "ambiguous_image",
            Failure::PictureUnreadable => "picture_unreadable",
            Failure::UnrecognisedPicture => "unrecognised_picture",
            Failure::LoggedOut => "logged_out",
            Failure::PlatformUnreachable => "platform_unreachable",
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// A trial's verdict (trials.csv's `verdict`): each design gives a few of
/// these (its `Design::verdicts`) and `inconclusive` to a trial that did
/// not complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Verdict {
    /// Seeded content was censored for a china account (surveillance).
    Surveilled,
    /// Seeded content reached the china account (surveillance).
    NotSurveilled,
    /// A control, never seeded, was censored too: the filter acts in real
    /// time, not from what was seen before (surveillance).
    FilteredRealtime,
    /// The test send was censored.
    Blocked,
    /// The test send was delivered.
    Evaded,
    /// A blocked item was blocked still at the last retest (expiry).
    StillBlocked,
    /// A blocked item was delivered at a retest (expiry).
    Expired,
    /// The trial did not complete, or a send of it is inconclusive.
    Inconclusive,
}

impl Verdict {
    /// Every verdict; a new variant goes here and in [`Verdict::name`]
    /// (whose match the compiler checks).
    pub const ALL: [Verdict; 8] = [
        Verdict::Surveilled,
        Verdict::NotSurveilled,
        Verdict::FilteredRealtime,
        Verdict::Blocked,
        Verdict::Evaded,
        Verdict::StillBlocked,
        Verdict::Expired,
        Verdict::Inconclusive,
    ];

    /// The word written in trials.csv.
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Surveilled => "surveilled",
            Verdict::NotSurveilled => "not_surveilled",
            Verdict::FilteredRealtime => "filtered_realtime",
            Verdict::Blocked => "blocked",
            Verdict::Evaded => "evaded",
            Verdict::StillBlocked => "still_blocked",
            Verdict::Expired => "expired",
            Verdict::Inconclusive => "inconclusive",
        }
    }

    /// Every verdict's word, in [`Verdict::ALL`]'s order.
    pub fn names() -> [&'static str; 8] {
        Verdict::ALL.map(Verdict::name)
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Verdict {
    type Err = String;
    fn from_str(s: &str) -> Result<Verdict, String> {
        Verdict::ALL
            .into_iter()
            .find(|v| v.name() == s)
            .ok_or_else(|| format!("unknown verdict `{s}`"))
    }
}

impl Serialize for Verdict {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for Verdict {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Verdict, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}
