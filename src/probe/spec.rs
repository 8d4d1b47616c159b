//! The probe spec (TOML, docs/SPEC.md): one measurement campaign.
//!
//! [`Spec::load`] parses the file (unknown keys are errors), resolves every
//! path relative to it, loads the accounts file and the corpus (manifest and
//! index), and checks everything a run would otherwise trip over later: every
//! alias and group exists, seed chats hold no china account, test chats hold
//! one, item filters match something, transforms parse, keys belong to the
//! experiment's kind. Every error names the file, the line and the key.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::accounts::{Accounts, Region};
use crate::corpus::index::IndexRow;
use crate::corpus::transform::{SpecError, Transform};
use crate::corpus::{CorpusError, Item, ItemKind, Manifest};
use crate::error::InputError;
use crate::platform::Target;

/// The experiment designs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Design {
    /// Seed in an intl-only chat, then test seeded + unseeded control.
    Surveillance,
    /// Fresh copies seeded, each tested once at its offset.
    Latency,
    /// Variants of an item known to be blocked.
    Transform,
    /// Text messages from keyword lists and combinations.
    Keyword,
    /// How long a blocked hash stays blocked.
    Expiry,
    /// Two files with one MD5: seed the first, test the second.
    Collision,
}

impl Design {
    /// The name used in datasets.
    pub fn as_str(self) -> &'static str {
        match self {
            Design::Surveillance => "surveillance",
            Design::Latency => "latency",
            Design::Transform => "transform",
            Design::Keyword => "keyword",
            Design::Expiry => "expiry",
            Design::Collision => "collision",
        }
    }

    /// The experiment keys this design takes (besides `kind` and `name`).
    fn keys(self) -> &'static [&'static str] {
        match self {
            Design::Surveillance => &["items", "seed_chat", "test_chat", "delay_s", "replicates"],
            Design::Latency => &["items", "seed_chat", "test_chat", "offsets_s", "replicates"],
            Design::Transform => &[
                "items",
                "seed_chat",
                "test_chat",
                "prime",
                "delay_s",
                "transforms",
                "replicates",
            ],
            Design::Keyword => &[
                "items",
                "keywords",
                "combinations",
                "test_chat",
                "replicates",
            ],
            Design::Expiry => &[
                "items",
                "seed_chat",
                "test_chat",
                "delay_s",
                "retest_every_s",
                "retests",
                "replicates",
            ],
            Design::Collision => &["pairs", "seed_chat", "test_chat", "delay_s", "replicates"],
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SpecFile {
    name: String,
    seed: u64,
    accounts: PathBuf,
    profile: PathBuf,
    corpus: PathBuf,
    #[serde(default)]
    testbed: Option<TestbedFile>,
    #[serde(default)]
    limits: LimitsFile,
    #[serde(default)]
    experiment: Vec<ExperimentFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestbedFile {
    policy: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitsFile {
    #[serde(default = "d_spm")]
    sends_per_minute: f64,
    #[serde(default = "d_pairs")]
    parallel_pairs: u32,
    #[serde(default = "d_timeout")]
    deliver_timeout_s: f64,
    #[serde(default = "d_true")]
    sentinel: bool,
    #[serde(default = "d_retries")]
    retries: u32,
    #[serde(default = "d_runtime")]
    max_runtime_s: f64,
    #[serde(default = "d_after")]
    after_sentinel_s: f64,
    #[serde(default = "d_jitter")]
    jitter: f64,
}

fn d_spm() -> f64 {
    20.0
}
fn d_pairs() -> u32 {
    2
}
fn d_timeout() -> f64 {
    15.0
}
fn d_true() -> bool {
    true
}
fn d_retries() -> u32 {
    2
}
fn d_runtime() -> f64 {
    86_400.0
}
fn d_after() -> f64 {
    3.0
}
fn d_jitter() -> f64 {
    0.2
}

impl Default for LimitsFile {
    fn default() -> Self {
        LimitsFile {
            sends_per_minute: d_spm(),
            parallel_pairs: d_pairs(),
            deliver_timeout_s: d_timeout(),
            sentinel: true,
            retries: d_retries(),
            max_runtime_s: d_runtime(),
            after_sentinel_s: d_after(),
            jitter: d_jitter(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExperimentFile {
    kind: Design,
    name: Option<String>,
    items: Option<FilterFile>,
    seed_chat: Option<ChatFile>,
    test_chat: Option<ChatFile>,
    delay_s: Option<f64>,
    replicates: Option<u32>,
    offsets_s: Option<Vec<f64>>,
    prime: Option<bool>,
    transforms: Option<Vec<String>>,
    keywords: Option<PathBuf>,
    combinations: Option<u32>,
    retest_every_s: Option<f64>,
    retests: Option<u32>,
    pairs: Option<Vec<[String; 2]>>,
}

impl ExperimentFile {
    fn present_keys(&self) -> Vec<&'static str> {
        let mut k = Vec::new();
        macro_rules! has {
            ($($f:ident),*) => { $( if self.$f.is_some() { k.push(stringify!($f)); } )* };
        }
        has!(
            items,
            seed_chat,
            test_chat,
            delay_s,
            replicates,
            offsets_s,
            prime,
            transforms,
            keywords,
            combinations,
            retest_every_s,
            retests,
            pairs
        );
        k
    }
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FilterFile {
    #[serde(default)]
    id: Vec<String>,
    #[serde(default)]
    label: Vec<String>,
    #[serde(default)]
    kind: Vec<String>,
    #[serde(default)]
    topic: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChatFile {
    from: String,
    to: Option<String>,
    group: Option<String>,
    observer: Option<String>,
}

/// Limits of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Probe sends per minute per sending account (a sentinel belongs to its probe).
    pub sends_per_minute: f64,
    /// Transmissions in flight at once (each between its own accounts).
    pub parallel_pairs: u32,
    /// How long a probe has to arrive.
    pub deliver_timeout_s: f64,
    /// Send a sentinel text after every probe.
    pub sentinel: bool,
    /// Retries of a send whose outcome is `error`.
    pub retries: u32,
    /// Stop dispatching after this long.
    pub max_runtime_s: f64,
    /// Once the sentinel arrived, how much longer to wait for the probe.
    pub after_sentinel_s: f64,
    /// Extra random spacing between two sends of one account, as a fraction
    /// of the minimum spacing (0.2 = up to 20 % more).
    pub jitter: f64,
}

/// A resolved chat: who sends, where, and who watches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chat {
    /// Sender alias.
    pub from: String,
    /// Direct peer or group.
    pub target: Target,
    /// The alias whose client is watched.
    pub observer: String,
}

impl Chat {
    /// `direct` or `group`.
    pub fn channel(&self) -> &'static str {
        match self.target {
            Target::Direct(_) => "direct",
            Target::Group(_) => "group",
        }
    }

    /// The peer's alias or the group's name (the `chat` column).
    pub fn name(&self) -> &str {
        match &self.target {
            Target::Direct(a) | Target::Group(a) => a,
        }
    }
}

/// A keyword (or an A+B combination) to send as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keyword {
    /// The parts, joined by `+` in datasets.
    pub parts: Vec<String>,
    /// sensitive | benign (from the keyword file).
    pub label: String,
    /// Topic (from the keyword file).
    pub topic: String,
}

impl Keyword {
    /// `A+B`.
    pub fn joined(&self) -> String {
        self.parts.join("+")
    }
}

/// A corpus item with the index row of its original file.
#[derive(Debug, Clone)]
pub struct CorpusItem {
    /// The manifest row.
    pub item: Item,
    /// Its index row.
    pub index: IndexRow,
}

/// One validated experiment.
#[derive(Debug, Clone)]
pub struct Experiment {
    /// The design.
    pub design: Design,
    /// Its name (`experiment_name`): the spec's, or the design's with a number.
    pub name: String,
    /// The items it covers, in corpus order.
    pub items: Vec<CorpusItem>,
    /// Where seeds go.
    pub seed_chat: Chat,
    /// Where tests go.
    pub test_chat: Chat,
    /// Seconds from seed to test.
    pub delay_s: f64,
    /// Replicates of every trial.
    pub replicates: u32,
    /// Latency offsets.
    pub offsets_s: Vec<f64>,
    /// Transform: seed and confirm the original first.
    pub prime: bool,
    /// Transforms to test.
    pub transforms: Vec<Transform>,
    /// Keywords and combinations to test.
    pub keywords: Vec<Keyword>,
    /// Expiry: seconds between retests.
    pub retest_every_s: f64,
    /// Expiry: how many retests.
    pub retests: u32,
    /// Collision pairs (seeded, tested).
    pub pairs: Vec<(CorpusItem, CorpusItem)>,
}

/// A validated probe spec.
#[derive(Debug, Clone)]
pub struct Spec {
    /// The spec file.
    pub path: PathBuf,
    /// Its text (copied into run.json).
    pub text: String,
    /// SHA-256 of the text.
    pub sha256: String,
    /// Campaign name.
    pub name: String,
    /// RNG seed of the plan.
    pub seed: u64,
    /// Accounts file (resolved).
    pub accounts_path: PathBuf,
    /// The accounts.
    pub accounts: Accounts,
    /// Profile file (resolved).
    pub profile_path: PathBuf,
    /// Corpus folder (resolved).
    pub corpus: PathBuf,
    /// SHA-256 of corpus/index.csv.
    pub index_sha256: String,
    /// Testbed policy (resolved), if the spec names one.
    pub policy: Option<PathBuf>,
    /// Limits.
    pub limits: Limits,
    /// Experiments, in file order.
    pub experiments: Vec<Experiment>,
}

/// Where in the spec text: the line of `key` inside the `nth` `[[experiment]]`
/// (or inside `[section]`, or at the top when both are `None`).
fn locate(text: &str, experiment: Option<usize>, section: Option<&str>, key: &str) -> Option<u64> {
    let lines: Vec<&str> = text.lines().collect();
    let start: usize;
    let end: usize;
    if let Some(n) = experiment {
        let heads: Vec<usize> = lines
            .iter()
            .enumerate()
            .filter(|(_, l)| l.trim_start().starts_with("[[experiment]]"))
            .map(|(i, _)| i)
            .collect();
        start = *heads.get(n)?;
        end = heads.get(n + 1).copied().unwrap_or(lines.len());
    } else if let Some(s) = section {
        let head = format!("[{s}]");
        start = lines.iter().position(|l| l.trim() == head)?;
        end = (start + 1..lines.len())
            .find(|&i| lines[i].trim_start().starts_with('['))
            .unwrap_or(lines.len());
    } else {
        start = 0;
        end = lines
            .iter()
            .position(|l| l.trim_start().starts_with('['))
            .unwrap_or(lines.len());
    }
    let found = (start..end).find(|&i| {
        let l = lines[i].trim_start();
        l.strip_prefix(key)
            .is_some_and(|rest| rest.trim_start().starts_with('='))
    });
    Some(found.unwrap_or(start) as u64 + 1)
}

/// Builds errors that point into the spec.
struct At<'a> {
    path: &'a Path,
    text: &'a str,
}

impl At<'_> {
    fn top(&self, key: &str, msg: impl Into<String>) -> InputError {
        let mut e = InputError::new(self.path, msg).key(key);
        if let Some(l) = locate(self.text, None, None, key) {
            e = e.line(l);
        }
        e
    }
    fn section(&self, section: &str, key: &str, msg: impl Into<String>) -> InputError {
        let mut e = InputError::new(self.path, msg).key(format!("{section}.{key}"));
        if let Some(l) = locate(self.text, None, Some(section), key) {
            e = e.line(l);
        }
        e
    }
    fn exp(&self, n: usize, key: &str, msg: impl Into<String>) -> InputError {
        let mut e = InputError::new(self.path, msg).key(format!("experiment[{n}].{key}"));
        if let Some(l) = locate(self.text, Some(n), None, key) {
            e = e.line(l);
        }
        e
    }
}

fn corpus_input(e: CorpusError, fallback: &Path) -> InputError {
    match e {
        CorpusError::Input(i) => i,
        other => InputError::new(fallback, other.to_string()),
    }
}

impl Spec {
    /// Read and validate a spec (and the accounts, corpus and keyword files
    /// it names).
    pub fn load(path: &Path) -> Result<Spec, InputError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            InputError::new(path, format!("cannot read the probe spec: {e}")).hint("check the path")
        })?;
        let file: SpecFile = crate::tomlfile::parse(path, &text)?;
        let at = At { path, text: &text };
        let dir = path.parent().unwrap_or(Path::new("."));
        let rel = |p: &Path| -> PathBuf {
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                dir.join(p)
            }
        };
        // The name becomes part of a folder name: keep it to characters
        // every file system and shell takes as they are.
        if !safe_name(&file.name) {
            return Err(at
                .top(
                    "name",
                    format!(
                        "`{}` cannot name a run folder: use 1 to {MAX_NAME} letters, digits, `-`, `_` or `.`, not starting with `.`",
                        file.name.escape_debug()
                    ),
                )
                .hint("e.g. name = \"replication\""));
        }
        let accounts_path = rel(&file.accounts);
        if !accounts_path.is_file() {
            return Err(at
                .top(
                    "accounts",
                    format!("no accounts file at {}", accounts_path.display()),
                )
                .hint("paths are relative to the spec file"));
        }
        let accounts = Accounts::load(&accounts_path)?;
        let profile_path = rel(&file.profile);
        if !profile_path.is_file() {
            return Err(at
                .top(
                    "profile",
                    format!("no profile at {}", profile_path.display()),
                )
                .hint("paths are relative to the spec file; see probes/profiles/"));
        }
        let corpus = rel(&file.corpus);
        if !corpus.join("manifest.csv").is_file() {
            return Err(at
                .top(
                    "corpus",
                    format!("no corpus (manifest.csv) in {}", corpus.display()),
                )
                .hint("paths are relative to the spec file"));
        }
        let policy = match file.testbed.as_ref().and_then(|t| t.policy.as_ref()) {
            Some(p) => {
                let p = rel(p);
                if !p.is_file() {
                    return Err(at
                        .section("testbed", "policy", format!("no policy at {}", p.display()))
                        .hint("paths are relative to the spec file; see probes/policies/"));
                }
                Some(p)
            }
            None => None,
        };
        let l = &file.limits;
        let positive = |v: f64, key: &str| -> Result<(), InputError> {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(at.section("limits", key, format!("must be a positive number, not {v}")))
            }
        };
        positive(l.sends_per_minute, "sends_per_minute")?;
        positive(l.deliver_timeout_s, "deliver_timeout_s")?;
        positive(l.max_runtime_s, "max_runtime_s")?;
        if !(l.after_sentinel_s.is_finite() && l.after_sentinel_s >= 0.0) {
            return Err(at.section("limits", "after_sentinel_s", "must be ≥ 0"));
        }
        // What the clock and the scheduler can keep: a value past these
        // would overflow a time or stall the run, not measure anything.
        let within = |v: f64, lo: f64, hi: f64, key: &str, unit: &str| {
            if (lo..=hi).contains(&v) {
                Ok(())
            } else {
                Err(at.section(
                    "limits",
                    key,
                    format!("{v} is out of range: allowed {lo} to {hi} {unit}"),
                ))
            }
        };
        within(
            l.sends_per_minute,
            MIN_SENDS_PER_MINUTE,
            MAX_SENDS_PER_MINUTE,
            "sends_per_minute",
            "sends a minute",
        )?;
        within(
            l.deliver_timeout_s,
            0.1,
            MAX_WAIT_S,
            "deliver_timeout_s",
            "seconds",
        )?;
        within(
            l.after_sentinel_s,
            0.0,
            MAX_WAIT_S,
            "after_sentinel_s",
            "seconds",
        )?;
        within(l.max_runtime_s, 1.0, MAX_SPAN_S, "max_runtime_s", "seconds")?;
        if l.parallel_pairs > MAX_PARALLEL {
            return Err(at.section(
                "limits",
                "parallel_pairs",
                format!("at most {MAX_PARALLEL}, not {}", l.parallel_pairs),
            ));
        }
        if l.retries > MAX_RETRIES {
            return Err(at.section(
                "limits",
                "retries",
                format!("at most {MAX_RETRIES}, not {}", l.retries),
            ));
        }
        if !(l.jitter.is_finite() && (0.0..=10.0).contains(&l.jitter)) {
            return Err(at.section("limits", "jitter", "must be between 0 and 10"));
        }
        if l.parallel_pairs == 0 {
            return Err(at.section("limits", "parallel_pairs", "must be at least 1"));
        }
        let limits = Limits {
            sends_per_minute: l.sends_per_minute,
            parallel_pairs: l.parallel_pairs,
            deliver_timeout_s: l.deliver_timeout_s,
            sentinel: l.sentinel,
            retries: l.retries,
            max_runtime_s: l.max_runtime_s,
            after_sentinel_s: l.after_sentinel_s,
            jitter: l.jitter,
        };
        if file.experiment.is_empty() {
            return Err(InputError::new(path, "the spec has no [[experiment]]")
                .hint("add at least one; see docs/SPEC.md"));
        }
        let manifest = Manifest::load(&corpus).map_err(|e| corpus_input(e, &corpus))?;
        let index = crate::corpus::index::load(&corpus).map_err(|e| corpus_input(e, &corpus))?;
        let index_path = corpus.join(crate::corpus::index::INDEX_FILE);
        let index_sha256 = crate::corpus::hash::sha256_hex(
            &std::fs::read(&index_path)
                .map_err(|e| InputError::new(&index_path, format!("cannot read: {e}")))?,
        );
        let originals: BTreeMap<&str, &IndexRow> = index
            .iter()
            .filter(|r| r.variant_id == r.item_id)
            .map(|r| (r.item_id.as_str(), r))
            .collect();
        let mut items: Vec<CorpusItem> = Vec::new();
        for item in &manifest.items {
            let Some(ix) = originals.get(item.id.as_str()) else {
                return Err(InputError::new(
                    &index_path,
                    format!("item `{}` is in the manifest but not in the index", item.id),
                )
                .hint("run `chatprobe corpus index` again"));
            };
            items.push(CorpusItem {
                item: item.clone(),
                index: (*ix).clone(),
            });
        }
        let mut names = HashSet::new();
        let mut experiments = Vec::new();
        let mut sends = 0u64;
        for (n, e) in file.experiment.iter().enumerate() {
            let x = validate_experiment(&at, n, e, &accounts, &items, dir)?;
            if !names.insert(x.name.clone()) {
                return Err(at
                    .exp(n, "name", format!("two experiments are named `{}`", x.name))
                    .hint("give each experiment its own name"));
            }
            // Bound the plan before it is built: its size is known from
            // the keys alone.
            sends = sends.saturating_add(x.max_sends());
            if sends > MAX_PLAN_SENDS {
                return Err(at
                    .exp(
                        n,
                        "replicates",
                        format!(
                            "the plan would hold more than {MAX_PLAN_SENDS} sends (up to {} so far)",
                            sends
                        ),
                    )
                    .hint("lower replicates or select fewer items; split a larger campaign into runs"));
            }
            experiments.push(x);
        }
        Ok(Spec {
            path: path.to_path_buf(),
            sha256: crate::corpus::hash::sha256_hex(text.as_bytes()),
            text,
            name: file.name,
            seed: file.seed,
            accounts_path,
            accounts,
            profile_path,
            corpus,
            index_sha256,
            policy,
            limits,
            experiments,
        })
    }
}

/// The longest name a spec may have (it is part of a folder name).
pub const MAX_NAME: usize = 64;
/// Fewest and most sends a minute per account.
pub const MIN_SENDS_PER_MINUTE: f64 = 0.01;
/// See [`MIN_SENDS_PER_MINUTE`].
pub const MAX_SENDS_PER_MINUTE: f64 = 600.0;
/// The longest wait for one message (deliver timeout, after-sentinel wait).
pub const MAX_WAIT_S: f64 = 3600.0;
/// The longest span of a run or of a trial's timings: a year.
pub const MAX_SPAN_S: f64 = 366.0 * 86400.0;
/// Most replicates of an experiment.
pub const MAX_REPLICATES: u32 = 10_000;
/// Most offsets, retests … in one list.
pub const MAX_LIST: usize = 10_000;
/// Most sends in one plan.
pub const MAX_PLAN_SENDS: u64 = 1_000_000;
/// Most parallel pairs.
pub const MAX_PARALLEL: u32 = 64;
/// Most retries of a send.
pub const MAX_RETRIES: u32 = 20;

/// Whether `name` is safe as part of a folder name.
pub fn safe_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

impl Experiment {
    /// An upper bound of the sends this experiment plans (every design's
    /// trial is at most a seed, a prime or two, its tests and its retests).
    pub fn max_sends(&self) -> u64 {
        let units = (self.items.len() + self.keywords.len() + self.pairs.len()).max(1) as u64;
        let per_trial =
            4 + self.offsets_s.len() as u64 + self.transforms.len() as u64 + self.retests as u64;
        units
            .saturating_mul(self.replicates as u64)
            .saturating_mul(per_trial)
    }
}

fn validate_experiment(
    at: &At,
    n: usize,
    e: &ExperimentFile,
    accounts: &Accounts,
    items: &[CorpusItem],
    dir: &Path,
) -> Result<Experiment, InputError> {
    let design = e.kind;
    for key in e.present_keys() {
        if !design.keys().contains(&key) {
            return Err(at
                .exp(
                    n,
                    key,
                    format!(
                        "`{key}` does not apply to a `{}` experiment",
                        design.as_str()
                    ),
                )
                .hint(format!(
                    "keys of `{}`: {}",
                    design.as_str(),
                    design.keys().join(", ")
                )));
        }
    }
    let name = e
        .name
        .clone()
        .unwrap_or_else(|| format!("{}-{}", design.as_str(), n + 1));
    if name.trim().is_empty()
        || name
            .chars()
            .any(|c| c.is_control() || matches!(c, '/' | '\\' | ','))
    {
        return Err(at.exp(
            n,
            "name",
            "a name must be non-empty, without `/`, `\\`, `,` or control characters",
        ));
    }
    let replicates = e.replicates.unwrap_or(1);
    if !(1..=MAX_REPLICATES).contains(&replicates) {
        return Err(at.exp(
            n,
            "replicates",
            format!("must be 1 to {MAX_REPLICATES}, not {replicates}"),
        ));
    }
    let delay_s = e.delay_s.unwrap_or(30.0);
    if !(delay_s.is_finite() && (0.0..=MAX_SPAN_S).contains(&delay_s)) {
        return Err(at.exp(
            n,
            "delay_s",
            format!("must be 0 to {MAX_SPAN_S} seconds (a year), not {delay_s}"),
        ));
    }
    let required = |key: &str, present: bool| -> Result<(), InputError> {
        if present {
            Ok(())
        } else {
            Err(at.exp(
                n,
                "kind",
                format!("a `{}` experiment needs `{key}`", design.as_str()),
            ))
        }
    };
    // Chats.
    let intl: Vec<&str> = accounts
        .accounts
        .iter()
        .filter(|a| a.region == Region::Intl)
        .map(|a| a.alias.as_str())
        .collect();
    let china: Vec<&str> = accounts
        .accounts
        .iter()
        .filter(|a| a.region == Region::China)
        .map(|a| a.alias.as_str())
        .collect();
    let seed_chat = match &e.seed_chat {
        Some(c) => resolve_chat(at, n, "seed_chat", c, accounts)?,
        None => {
            if intl.len() < 2 && design != Design::Keyword {
                return Err(at
                    .exp(n, "kind", "no seed_chat given, and the accounts file has fewer than two intl accounts")
                    .hint("add seed_chat = { from = \"…\", to = \"…\" }"));
            }
            Chat {
                from: intl.first().unwrap_or(&"").to_string(),
                target: Target::Direct(intl.get(1).unwrap_or(&"").to_string()),
                observer: intl.get(1).unwrap_or(&"").to_string(),
            }
        }
    };
    let test_chat = match &e.test_chat {
        Some(c) => resolve_chat(at, n, "test_chat", c, accounts)?,
        None => {
            if intl.is_empty() || china.is_empty() {
                return Err(at
                    .exp(n, "kind", "no test_chat given, and the accounts file lacks an intl or a china account")
                    .hint("add test_chat = { from = \"…\", to = \"…\" }"));
            }
            Chat {
                from: intl[0].to_string(),
                target: Target::Direct(china[0].to_string()),
                observer: china[0].to_string(),
            }
        }
    };
    let involves_china = |c: &Chat| -> bool {
        let members: Vec<String> = match &c.target {
            Target::Direct(a) => vec![c.from.clone(), a.clone()],
            Target::Group(g) => accounts
                .group(g)
                .map(|g| g.members.clone())
                .unwrap_or_default(),
        };
        members
            .iter()
            .any(|m| accounts.get(m).is_some_and(|a| a.region == Region::China))
    };
    if design != Design::Keyword && involves_china(&seed_chat) {
        return Err(at
            .exp(n, "seed_chat", "the seed chat includes a china account")
            .hint("seeds go between intl accounts only; that is the design (docs/SPEC.md)"));
    }
    if !involves_china(&test_chat) {
        return Err(at
            .exp(
                n,
                "test_chat",
                "the test chat has no china account: nothing would be censored there",
            )
            .hint("test in a chat with a china-registered account"));
    }
    // Items.
    let filter_items = |f: &FilterFile| -> Result<Vec<CorpusItem>, InputError> {
        if f.id.is_empty() && f.label.is_empty() && f.kind.is_empty() && f.topic.is_empty() {
            return Err(at
                .exp(n, "items", "an empty filter would select every item silently")
                .hint("name what to select, e.g. items = { label = [\"sensitive\"], kind = [\"image\"] }"));
        }
        for k in &f.kind {
            k.parse::<ItemKind>()
                .map_err(|m| at.exp(n, "items.kind", m))?;
        }
        for l in &f.label {
            if l != "sensitive" && l != "benign" {
                return Err(at.exp(
                    n,
                    "items.label",
                    format!("label must be `sensitive` or `benign`, not `{l}`"),
                ));
            }
        }
        for id in &f.id {
            if !items.iter().any(|i| &i.item.id == id) {
                return Err(at
                    .exp(n, "items", format!("item `{id}` is not in the corpus"))
                    .hint("ids are the `id` column of corpus/manifest.csv"));
            }
        }
        let chosen: Vec<CorpusItem> = items
            .iter()
            .filter(|i| f.id.is_empty() || f.id.contains(&i.item.id))
            .filter(|i| f.label.is_empty() || f.label.contains(&i.item.label.to_string()))
            .filter(|i| f.kind.is_empty() || f.kind.contains(&i.item.kind.to_string()))
            .filter(|i| f.topic.is_empty() || f.topic.contains(&i.item.topic))
            .cloned()
            .collect();
        if chosen.is_empty() {
            return Err(at
                .exp(n, "items", "this filter matches no corpus item")
                .hint("check ids, labels (sensitive, benign), kinds (image, document) and topics against corpus/manifest.csv"));
        }
        Ok(chosen)
    };
    let mut x = Experiment {
        design,
        name,
        items: Vec::new(),
        seed_chat,
        test_chat,
        delay_s,
        replicates,
        offsets_s: Vec::new(),
        prime: e.prime.unwrap_or(true),
        transforms: Vec::new(),
        keywords: Vec::new(),
        retest_every_s: 0.0,
        retests: 0,
        pairs: Vec::new(),
    };
    match design {
        Design::Surveillance | Design::Latency | Design::Transform | Design::Expiry => {
            required("items", e.items.is_some())?;
            x.items = filter_items(e.items.as_ref().expect("checked"))?;
        }
        Design::Keyword => {
            if let Some(f) = &e.items {
                if f.label.is_empty() && f.topic.is_empty() && f.id.is_empty() && f.kind.is_empty()
                {
                    return Err(at
                        .exp(
                            n,
                            "items",
                            "an empty filter would select every keyword silently",
                        )
                        .hint(
                            "leave `items` out to test every keyword, or filter by label or topic",
                        ));
                }
                if !f.id.is_empty() || !f.kind.is_empty() {
                    return Err(at.exp(
                        n,
                        "items",
                        "a keyword experiment filters keywords by `label` and `topic` only",
                    ));
                }
            }
        }
        Design::Collision => {}
    }
    match design {
        Design::Latency => {
            required("offsets_s", e.offsets_s.is_some())?;
            let offs = e.offsets_s.clone().unwrap_or_default();
            if offs.is_empty()
                || offs.len() > MAX_LIST
                || offs
                    .iter()
                    .any(|o| !(o.is_finite() && *o > 0.0 && *o <= MAX_SPAN_S))
            {
                return Err(at.exp(
                    n,
                    "offsets_s",
                    format!("offsets must be a list of 1 to {MAX_LIST} positive seconds, each at most {MAX_SPAN_S} (a year)"),
                ));
            }
            let mut seen = HashSet::new();
            for o in &offs {
                if !seen.insert(o.to_bits()) {
                    return Err(at.exp(n, "offsets_s", format!("offset {o} is listed twice")));
                }
            }
            x.offsets_s = offs;
        }
        Design::Transform => {
            required("transforms", e.transforms.is_some())?;
            let specs = e.transforms.clone().unwrap_or_default();
            if specs.is_empty() {
                return Err(at.exp(n, "transforms", "the list is empty"));
            }
            for s in &specs {
                let t: Transform = s
                    .parse()
                    .map_err(|err: SpecError| at.exp(n, "transforms", err.to_string()))?;
                if matches!(t, Transform::Fresh | Transform::FreshMeta) {
                    return Err(at.exp(
                        n,
                        "transforms",
                        format!("`{t}` is not a transform to test: every probe is fresh already"),
                    ));
                }
                if x.transforms.contains(&t) {
                    return Err(at.exp(n, "transforms", format!("`{t}` is listed twice")));
                }
                x.transforms.push(t);
            }
            if let Some(doc) = x.items.iter().find(|i| i.item.kind != ItemKind::Image) {
                return Err(at
                    .exp(
                        n,
                        "items",
                        format!(
                            "transforms apply to images; `{}` is a document",
                            doc.item.id
                        ),
                    )
                    .hint("add kind = [\"image\"] to the filter"));
            }
        }
        Design::Keyword => {
            required("keywords", e.keywords.is_some())?;
            let kpath = dir.join(e.keywords.as_ref().expect("checked"));
            let combos = e.combinations.unwrap_or(0);
            if combos > 4 {
                return Err(at.exp(n, "combinations", "at most 4 parts a combination"));
            }
            let (labels, topics) = e
                .items
                .as_ref()
                .map(|f| (f.label.clone(), f.topic.clone()))
                .unwrap_or_default();
            x.keywords = load_keywords(&kpath, combos, &labels, &topics).map_err(|err| {
                if err.path == kpath {
                    err
                } else {
                    at.exp(n, "keywords", err.message)
                }
            })?;
            if x.keywords.is_empty() {
                return Err(at
                    .exp(n, "items", "no keyword matches this filter")
                    .hint("check label and topic against the keyword file"));
            }
        }
        Design::Expiry => {
            required("retest_every_s", e.retest_every_s.is_some())?;
            required("retests", e.retests.is_some())?;
            let every = e.retest_every_s.unwrap_or(0.0);
            if !(every.is_finite() && every > 0.0 && every <= MAX_SPAN_S) {
                return Err(at.exp(
                    n,
                    "retest_every_s",
                    format!("must be a positive number of seconds, at most {MAX_SPAN_S} (a year)"),
                ));
            }
            let k = e.retests.unwrap_or(0);
            if !(1..=MAX_LIST as u32).contains(&k) {
                return Err(at.exp(n, "retests", format!("must be 1 to {MAX_LIST}, not {k}")));
            }
            if every * k as f64 + x.delay_s > MAX_SPAN_S {
                return Err(at
                    .exp(
                        n,
                        "retests",
                        format!(
                            "{k} retests every {every} s span more than a year ({MAX_SPAN_S} s)"
                        ),
                    )
                    .hint("split the campaign into runs, or retest less often"));
            }
            x.retest_every_s = every;
            x.retests = k;
        }
        Design::Collision => {
            required("pairs", e.pairs.is_some())?;
            let pairs = e.pairs.clone().unwrap_or_default();
            if pairs.is_empty() {
                return Err(at.exp(n, "pairs", "the list is empty"));
            }
            for [a, b] in pairs {
                let find = |id: &str| -> Result<CorpusItem, InputError> {
                    items
                        .iter()
                        .find(|i| i.item.id == id)
                        .cloned()
                        .ok_or_else(|| {
                            at.exp(n, "pairs", format!("item `{id}` is not in the corpus"))
                                .hint("ids are the `id` column of corpus/manifest.csv")
                        })
                };
                let (ia, ib) = (find(&a)?, find(&b)?);
                if a == b {
                    return Err(at.exp(n, "pairs", format!("`{a}` is paired with itself")));
                }
                if ia.index.md5 != ib.index.md5 {
                    return Err(at
                        .exp(n, "pairs", format!("`{a}` and `{b}` have different MD5s"))
                        .hint("a collision pair is two different files with one MD5"));
                }
                x.pairs.push((ia, ib));
            }
        }
        Design::Surveillance => {}
    }
    Ok(x)
}

fn resolve_chat(
    at: &At,
    n: usize,
    key: &str,
    c: &ChatFile,
    accounts: &Accounts,
) -> Result<Chat, InputError> {
    let known = |alias: &str, k: &str| -> Result<(), InputError> {
        if accounts.get(alias).is_some() {
            Ok(())
        } else {
            Err(at
                .exp(
                    n,
                    key,
                    format!(
                        "account `{alias}` ({k}) is not in the accounts file {}",
                        accounts.path.display()
                    ),
                )
                .hint("chatprobe only messages accounts listed there"))
        }
    };
    known(&c.from, "from")?;
    let chat = match (&c.to, &c.group) {
        (Some(to), None) => {
            known(to, "to")?;
            if to == &c.from {
                return Err(at.exp(n, key, format!("`{to}` would message itself")));
            }
            if let Some(o) = &c.observer {
                if o != to {
                    return Err(at.exp(n, key, "in a direct chat the observer is the receiver"));
                }
            }
            Chat {
                from: c.from.clone(),
                target: Target::Direct(to.clone()),
                observer: to.clone(),
            }
        }
        (None, Some(g)) => {
            let Some(group) = accounts.group(g) else {
                return Err(at
                    .exp(n, key, format!("group `{g}` is not in the accounts file"))
                    .hint("groups are [[group]] tables of the accounts file"));
            };
            if !group.members.contains(&c.from) {
                return Err(at.exp(n, key, format!("`{}` is not a member of group `{g}`", c.from)));
            }
            let observer = match &c.observer {
                Some(o) => {
                    known(o, "observer")?;
                    if !group.members.contains(o) || o == &c.from {
                        return Err(at.exp(
                            n,
                            key,
                            format!("observer `{o}` must be another member of group `{g}`"),
                        ));
                    }
                    o.clone()
                }
                None => crate::platform::default_observer(accounts, g, &c.from)
                    .ok_or_else(|| at.exp(n, key, format!("group `{g}` has no other member")))?,
            };
            Chat {
                from: c.from.clone(),
                target: Target::Group(g.clone()),
                observer,
            }
        }
        _ => {
            return Err(at
                .exp(n, key, "a chat needs exactly one of `to` and `group`")
                .hint("{ from = \"intl-a\", to = \"intl-b\" } or { from = \"intl-a\", group = \"seed-group\" }"))
        }
    };
    Ok(chat)
}

/// Read a keyword file (`keyword,…,topic,…,label` columns; parts of a
/// combination joined by `+`) and expand combinations: with `combinations =
/// k`, every sub-combination of up to `k` parts of a multi-part row is
/// tested too (so minimal triggers can be found). Order: file order, each
/// row's sub-combinations before it; duplicates dropped.
pub fn load_keywords(
    path: &Path,
    combinations: u32,
    labels: &[String],
    topics: &[String],
) -> Result<Vec<Keyword>, InputError> {
    let mut rdr = csv::Reader::from_path(path).map_err(|e| {
        InputError::new(path, format!("cannot read the keyword file: {e}")).hint("check the path")
    })?;
    let headers = rdr
        .headers()
        .map_err(|e| InputError::new(path, format!("malformed header: {e}")).line(1))?
        .clone();
    let col = |name: &str| headers.iter().position(|h| h.trim() == name);
    let Some(kc) = col("keyword") else {
        return Err(InputError::new(path, "no `keyword` column")
            .line(1)
            .key("keyword"));
    };
    let (tc, lc) = (col("topic"), col("label"));
    let mut out: Vec<Keyword> = Vec::new();
    let mut seen = HashSet::new();
    for (i, rec) in rdr.records().enumerate() {
        let line = i as u64 + 2;
        let rec =
            rec.map_err(|e| InputError::new(path, format!("malformed row: {e}")).line(line))?;
        let kw = rec.get(kc).unwrap_or("").trim();
        let parts: Vec<String> = kw
            .split('+')
            .map(|p| p.trim().to_string())
            .filter(|p| !p.is_empty())
            .collect();
        if parts.is_empty() {
            return Err(InputError::new(path, "empty keyword")
                .line(line)
                .key("keyword"));
        }
        if let Some(why) = crate::platform::identity::keyword_problem(kw) {
            return Err(InputError::new(path, format!("keyword `{kw}` {why}"))
                .line(line)
                .key("keyword")
                .hint("remove the box-drawing characters (U+2500–U+257F) from the keyword"));
        }
        let topic = tc.and_then(|c| rec.get(c)).unwrap_or("").to_string();
        let label = lc.and_then(|c| rec.get(c)).unwrap_or("").to_string();
        if !labels.is_empty() && !labels.contains(&label) {
            continue;
        }
        if !topics.is_empty() && !topics.contains(&topic) {
            continue;
        }
        let mut subs: Vec<Vec<String>> = Vec::new();
        if parts.len() > 1 && combinations > 0 {
            let k = parts.len();
            for mask in 1u32..(1 << k) - 1 {
                if mask.count_ones() <= combinations {
                    subs.push(
                        (0..k)
                            .filter(|b| mask >> b & 1 == 1)
                            .map(|b| parts[b].clone())
                            .collect(),
                    );
                }
            }
            subs.sort_by_key(|s| s.len());
        }
        subs.push(parts);
        for s in subs {
            if seen.insert(s.join("+")) {
                out.push(Keyword {
                    parts: s,
                    label: label.clone(),
                    topic: topic.clone(),
                });
            }
        }
    }
    Ok(out)
}
