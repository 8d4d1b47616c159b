//! The testbed's censorship policy (TOML), as documented in
//! docs/TESTBED.md: the real-time filter, image re-encoding, hash indexes and
//! their expiry, the asynchronous inspection, and what inspection judges
//! sensitive. Every key is checked; an unknown key or a bad value names the
//! file, line and key.

use std::path::{Path, PathBuf};

use rand::Rng;
use rand_distr::{Distribution, Exp, LogNormal};
use serde::Deserialize;

use crate::error::InputError;
use crate::ranges::{Declared, Range};

/// Which chats a rule applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Applies {
    /// Chats with at least one china account.
    #[serde(rename = "any-china")]
    AnyChina,
    /// Every chat.
    #[serde(rename = "all")]
    All,
    /// No chat.
    #[serde(rename = "none")]
    None,
}

/// Which chats inspection looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Every chat, intl-only included.
    All,
    /// Chats with at least one china account.
    China,
    /// None.
    None,
}

/// What is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ContentKind {
    /// A text message.
    Text,
    /// A picture.
    Image,
    /// Any other file.
    Document,
}

/// A direct (1-to-1) or group chat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    /// 1-to-1.
    Direct,
    /// Group chat.
    Group,
}

/// A random duration, in seconds before `time_scale`.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(tag = "dist", rename_all = "lowercase", deny_unknown_fields)]
pub enum Dist {
    /// Never (expiry only).
    None,
    /// Always `s`.
    Fixed {
        /// Seconds.
        s: f64,
    },
    /// Exponential with this mean.
    Exponential {
        /// Mean seconds.
        mean_s: f64,
    },
    /// Log-normal with this median and log-sd.
    Lognormal {
        /// Median seconds.
        median_s: f64,
        /// Standard deviation of the log.
        sigma: f64,
    },
}

impl Dist {
    /// Draw seconds (None = never).
    pub fn sample<R: Rng>(&self, rng: &mut R) -> Option<f64> {
        match *self {
            Dist::None => None,
            Dist::Fixed { s } => Some(s),
            Dist::Exponential { mean_s } => {
                Some(Exp::new(1.0 / mean_s).expect("validated").sample(rng))
            }
            Dist::Lognormal { median_s, sigma } => Some(
                LogNormal::new(median_s.ln(), sigma)
                    .expect("validated")
                    .sample(rng),
            ),
        }
    }

    fn validate(&self) -> Result<(), String> {
        let year = 366.0 * 86400.0;
        let ok = match *self {
            Dist::None => true,
            Dist::Fixed { s } => (0.0..=year).contains(&s),
            Dist::Exponential { mean_s } => mean_s > 0.0 && mean_s <= year,
            Dist::Lognormal { median_s, sigma } => {
                median_s > 0.0 && median_s <= year && (0.0..=5.0).contains(&sigma)
            }
        };
        if ok {
            Ok(())
        } else {
            Err("durations must be positive and at most a year (31622400 s); sigma 0 to 5".into())
        }
    }
}

fn yes() -> bool {
    true
}
fn default_quality() -> u8 {
    75
}
fn default_scope() -> Scope {
    Scope::None
}
fn default_kinds() -> Vec<ContentKind> {
    vec![ContentKind::Image, ContentKind::Document]
}
fn default_channels() -> Vec<Channel> {
    vec![Channel::Direct, Channel::Group]
}
fn one() -> f64 {
    1.0
}
fn default_delay() -> Dist {
    Dist::Fixed { s: 10.0 }
}
fn default_expiry() -> Dist {
    Dist::None
}
fn default_match() -> MatchMode {
    MatchMode::Shape
}
fn default_match_size() -> u32 {
    32
}
fn default_match_threshold() -> f64 {
    1.5
}
fn default_sharpness_size() -> u32 {
    128
}
fn default_phash_threshold() -> u32 {
    10
}

/// `[filter]`: real-time filtering at the moment of sending.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    /// Which chats are filtered.
    pub applies_to: Applies,
    /// Files whose MD5 is in the channel's index are blocked.
    #[serde(default = "yes")]
    pub md5: bool,
    /// Images matching a reference image are blocked outright.
    #[serde(default)]
    pub visual: bool,
    /// Texts holding a keyword, or every part of an `A+B` combination, are blocked.
    #[serde(default)]
    pub text_keywords: Vec<String>,
    /// The sender's client marks a blocked message.
    #[serde(default)]
    pub notify_sender: bool,
}

/// `[images]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Images {
    /// Uploaded images are re-encoded as JPEG before hashing and storing.
    #[serde(default = "yes")]
    pub reencode: bool,
    /// JPEG quality of the re-encoding (added key).
    #[serde(default = "default_quality")]
    pub quality: u8,
}

impl Default for Images {
    fn default() -> Self {
        Images {
            reencode: true,
            quality: default_quality(),
        }
    }
}

/// `[index]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Index {
    /// Direct and group chats keep separate hash indexes.
    #[serde(default = "yes")]
    pub separate_channels: bool,
    /// How long a hash stays in the index.
    #[serde(default = "default_expiry")]
    pub expiry: Dist,
}

impl Default for Index {
    fn default() -> Self {
        Index {
            separate_channels: true,
            expiry: Dist::None,
        }
    }
}

/// `[inspection]`: the asynchronous analysis of what was sent.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Inspection {
    /// Which chats are inspected.
    #[serde(default = "default_scope")]
    pub scope: Scope,
    /// Which kinds of content.
    #[serde(default = "default_kinds")]
    pub kinds: Vec<ContentKind>,
    /// Which channels.
    #[serde(default = "default_channels")]
    pub channels: Vec<Channel>,
    /// Chance that a transmission is inspected at all.
    #[serde(default = "one")]
    pub probability: f64,
    /// Time from sending to verdict.
    #[serde(default = "default_delay")]
    pub delay: Dist,
}

impl Default for Inspection {
    fn default() -> Self {
        Inspection {
            scope: Scope::None,
            kinds: default_kinds(),
            channels: default_channels(),
            probability: 1.0,
            delay: default_delay(),
        }
    }
}

/// How an image is matched to a reference image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MatchMode {
    /// The published description of WeChat's visual filter.
    Shape,
    /// pHash Hamming distance.
    Phash,
}

/// `[sensitive]`: what inspection judges sensitive.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sensitive {
    /// Document text holding any of these is sensitive.
    #[serde(default)]
    pub keywords: Vec<String>,
    /// A file of keywords, one a line, relative to the policy file.
    #[serde(default)]
    pub keyword_file: String,
    /// Folder of blacklisted images, relative to the policy file.
    #[serde(default)]
    pub reference_images: String,
    /// shape | phash.
    #[serde(default = "default_match", rename = "match")]
    pub match_mode: MatchMode,
    /// Shortest side, in pixels, for shape matching.
    #[serde(default = "default_match_size")]
    pub match_size: u32,
    /// Mean absolute grey difference (0–255) at or under which images match.
    #[serde(default = "default_match_threshold")]
    pub match_threshold: f64,
    /// Lost sharpness (shape matching): an upload whose edge energy — the
    /// mean absolute Laplacian of its luminosity grey, shortest side scaled
    /// to `sharpness_size` — is under this fraction of the reference's does
    /// not match, however close its pixels. 0 (the default) turns it off;
    /// WeChat's 2018 filter behaved as about 0.75 (docs/TESTBED.md).
    #[serde(default)]
    pub sharpness_min: f64,
    /// Shortest side, in pixels, at which sharpness is compared (larger
    /// than `match_size`: a thumbnail has lost what blur takes away).
    #[serde(default = "default_sharpness_size")]
    pub sharpness_size: u32,
    /// pHash distance at or under which images match.
    #[serde(default = "default_phash_threshold")]
    pub phash_threshold: u32,
}

impl Default for Sensitive {
    fn default() -> Self {
        Sensitive {
            keywords: Vec::new(),
            keyword_file: String::new(),
            reference_images: String::new(),
            match_mode: MatchMode::Shape,
            match_size: 32,
            match_threshold: 1.5,
            sharpness_min: 0.0,
            sharpness_size: default_sharpness_size(),
            phash_threshold: 10,
        }
    }
}

/// A whole policy file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// The policy's name.
    pub name: String,
    /// RNG seed of every random draw of the engine.
    #[serde(default)]
    pub seed: u64,
    /// Every duration is multiplied by this.
    #[serde(default = "one")]
    pub time_scale: f64,
    /// Real-time filter.
    pub filter: Filter,
    /// Image handling.
    #[serde(default)]
    pub images: Images,
    /// Hash indexes.
    #[serde(default)]
    pub index: Index,
    /// Inspection.
    #[serde(default)]
    pub inspection: Inspection,
    /// Sensitivity judgement.
    #[serde(default)]
    pub sensitive: Sensitive,
    /// The policy file (set on load).
    #[serde(skip)]
    pub path: PathBuf,
}

const YEAR_S: f64 = 366.0 * 86400.0;

const fn key(path: &'static str, range: Range) -> Declared {
    Declared { path, range }
}

/// Every numeric key of a policy file and its range.
pub const RANGES: &[Declared] = &[
    key("seed", Range::int(0, i64::MAX)),
    key("time_scale", Range::above(0.0, 1000.0)),
    key("images.quality", Range::int(1, 100)),
    key("inspection.probability", Range::float(0.0, 1.0)),
    key("inspection.delay.s", Range::float(0.0, YEAR_S)),
    key("inspection.delay.mean_s", Range::above(0.0, YEAR_S)),
    key("inspection.delay.median_s", Range::above(0.0, YEAR_S)),
    key("inspection.delay.sigma", Range::float(0.0, 5.0)),
    key("index.expiry.s", Range::float(0.0, YEAR_S)),
    key("index.expiry.mean_s", Range::above(0.0, YEAR_S)),
    key("index.expiry.median_s", Range::above(0.0, YEAR_S)),
    key("index.expiry.sigma", Range::float(0.0, 5.0)),
    key("sensitive.match_size", Range::int(4, 1024)),
    // A mean absolute difference of 8-bit grey levels.
    key("sensitive.match_threshold", Range::float(0.0, 255.0)),
    key("sensitive.sharpness_min", Range::below(0.0, 1.0)),
    key("sensitive.sharpness_size", Range::int(8, 2048)),
    key("sensitive.phash_threshold", Range::int(0, 64)),
];

impl Policy {
    /// Read and validate a policy file.
    pub fn load(path: &Path) -> Result<Policy, InputError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| InputError::new(path, format!("cannot read the policy: {e}")))?;
        crate::tomlfile::check_ranges(path, &text, RANGES)?;
        let mut p: Policy = crate::tomlfile::parse(path, &text)?;
        p.path = path.to_path_buf();
        let line_of = |key: &str| -> u64 {
            text.lines()
                .position(|l| l.trim_start().starts_with(key))
                .map(|i| i as u64 + 1)
                .unwrap_or(1)
        };
        let bad = |key: &str, msg: String| {
            InputError::new(path, msg)
                .line(line_of(key.rsplit('.').next().unwrap_or(key)))
                .key(key)
        };
        p.inspection
            .delay
            .validate()
            .map_err(|m| bad("inspection.delay", m))?;
        p.index
            .expiry
            .validate()
            .map_err(|m| bad("index.expiry", m))?;
        if matches!(p.inspection.delay, Dist::None) {
            return Err(bad(
                "inspection.delay",
                "inspection needs a delay distribution, not none".into(),
            ));
        }
        for k in p.filter.text_keywords.iter().chain(&p.sensitive.keywords) {
            if k.split('+').any(|part| part.trim().is_empty()) {
                return Err(bad(
                    "text_keywords",
                    format!("empty keyword or combination part in `{k}`"),
                ));
            }
        }
        if !p.sensitive.reference_images.is_empty() {
            let dir = p.reference_dir().expect("non-empty");
            if !dir.is_dir() {
                return Err(bad(
                    "sensitive.reference_images",
                    format!("folder {} does not exist", dir.display()),
                ));
            }
        } else if p.filter.visual {
            return Err(bad(
                "filter.visual",
                "the visual filter needs [sensitive] reference_images".into(),
            ));
        }
        if !p.sensitive.keyword_file.is_empty() {
            let f = p.base_dir().join(&p.sensitive.keyword_file);
            let text = std::fs::read_to_string(&f).map_err(|e| {
                bad(
                    "sensitive.keyword_file",
                    format!("cannot read {}: {e}", f.display()),
                )
            })?;
            p.sensitive.keywords.extend(
                text.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                    .map(String::from),
            );
        }
        Ok(p)
    }

    /// The folder the policy file is in.
    pub fn base_dir(&self) -> PathBuf {
        self.path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default()
    }

    /// The reference-image folder, if any.
    pub fn reference_dir(&self) -> Option<PathBuf> {
        (!self.sensitive.reference_images.is_empty())
            .then(|| self.base_dir().join(&self.sensitive.reference_images))
    }

    /// Scale seconds to real time; a random draw from a long tail is
    /// capped at ten years (a duration must stay representable).
    pub fn scaled(&self, s: f64) -> std::time::Duration {
        let v = s * self.time_scale;
        let cap = 10.0 * 366.0 * 86400.0;
        std::time::Duration::from_secs_f64(if v.is_finite() {
            v.clamp(0.0, cap)
        } else {
            cap
        })
    }
}

/// Whether `text` holds `keyword` (or, for `A+B`, every part), white space
/// ignored on both sides.
pub fn keyword_hit(squeezed_text: &str, keyword: &str) -> bool {
    keyword
        .split('+')
        .map(crate::corpus::text::squeeze)
        .all(|part| !part.is_empty() && squeezed_text.contains(&part))
}
