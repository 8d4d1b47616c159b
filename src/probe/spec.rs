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
use std::sync::Arc;

use serde::Deserialize;

use super::chat::{involves_china, Chat, ChatFile};
use super::design::{self, Experiment, ParseCx, COMMON_KEYS, COMMON_RANGES};
use super::items::CorpusItem;
use super::locate::At;
use crate::accounts::{Accounts, Region};
use crate::corpus::index::IndexRow;
use crate::corpus::{CorpusError, Manifest};
use crate::error::InputError;
use crate::platform::Target;

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
    experiment: Vec<toml::Table>,
    #[serde(default)]
    published: Vec<PublishedFile>,
}

/// A `[[published]]` figure: what a replication sets its own beside.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PublishedFile {
    experiment: String,
    #[serde(default)]
    label: String,
    #[serde(default = "d_measure")]
    measure: String,
    k: u64,
    n: u64,
    what: String,
    source: String,
}

fn d_measure() -> String {
    "seeded_blocked".into()
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
    #[serde(default)]
    daily_sends_per_account: Option<u64>,
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
            daily_sends_per_account: None,
        }
    }
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
    /// Most messages (sends and their sentinels) one account may send in a
    /// run, a day of monitoring (none: no limit); see [`super::budget`].
    pub daily_sends_per_account: Option<u64>,
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
    /// Every corpus item, in corpus order.
    pub items: Vec<CorpusItem>,
    /// Experiments, in file order.
    pub experiments: Vec<Arc<dyn Experiment>>,
    /// The published figures the run replicates (`[[published]]`).
    pub published: Vec<crate::dataset::published::PublishedRow>,
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
        crate::tomlfile::check_ranges(path, &text, RANGES)?;
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
        let limits = Limits {
            sends_per_minute: l.sends_per_minute,
            parallel_pairs: l.parallel_pairs,
            deliver_timeout_s: l.deliver_timeout_s,
            sentinel: l.sentinel,
            retries: l.retries,
            max_runtime_s: l.max_runtime_s,
            after_sentinel_s: l.after_sentinel_s,
            jitter: l.jitter,
            daily_sends_per_account: l.daily_sends_per_account,
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
            let x = parse_experiment(&at, n, e, &accounts, &items, dir, &corpus)?;
            if !names.insert(x.name().to_string()) {
                return Err(at
                    .exp(
                        n,
                        "name",
                        format!("two experiments are named `{}`", x.name()),
                    )
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
        let published = published(&at, file.published, &experiments)?;
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
            items,
            experiments,
            published,
        })
    }
}

/// Check the `[[published]]` figures against the experiments they name.
fn published(
    at: &At,
    figures: Vec<PublishedFile>,
    experiments: &[Arc<dyn Experiment>],
) -> Result<Vec<crate::dataset::published::PublishedRow>, InputError> {
    use crate::dataset::published::{measure_verdict, PublishedRow};
    let mut out = Vec::new();
    for (i, f) in figures.into_iter().enumerate() {
        let Some(x) = experiments.iter().find(|x| x.name() == f.experiment) else {
            let names: Vec<&str> = experiments.iter().map(|x| x.name()).collect();
            return Err(at
                .published(
                    i,
                    "experiment",
                    format!("no experiment is named `{}`", f.experiment),
                )
                .hint(format!("name one of: {}", names.join(", "))));
        };
        let verdict = measure_verdict(&f.measure).map_err(|e| at.published(i, "measure", e))?;
        if let Some(v) = verdict {
            let known: Vec<&str> = crate::probe::design::find(x.design())
                .map_or(&[][..], |d| d.verdicts)
                .iter()
                .map(|v| v.name())
                .collect();
            if !known.contains(&v) {
                return Err(at
                    .published(
                        i,
                        "measure",
                        format!("design `{}` has no verdict `{v}`", x.design()),
                    )
                    .hint(format!("its verdicts: {}", known.join(", "))));
            }
        }
        if !["", "sensitive", "benign"].contains(&f.label.as_str()) {
            return Err(at
                .published(i, "label", format!("unknown label `{}`", f.label))
                .hint("use \"sensitive\" or \"benign\", or leave it out for every item"));
        }
        if f.n == 0 || f.k > f.n {
            return Err(at
                .published(i, "k", format!("{} of {} is not a count", f.k, f.n))
                .hint("k events of n, with 0 <= k <= n and n > 0"));
        }
        out.push(PublishedRow {
            experiment_name: f.experiment,
            label: f.label,
            measure: f.measure,
            k: f.k,
            n: f.n,
            what: f.what,
            source: f.source,
        });
    }
    Ok(out)
}

/// The longest name a spec may have (it is part of a folder name).
pub const MAX_NAME: usize = 64;

/// The numeric keys of a spec's `[limits]` and their ranges: what the
/// clock and the scheduler can keep (a value past these would overflow a
/// time or stall the run, not measure anything).
pub const RANGES: &[crate::ranges::Declared] = {
    use crate::ranges::{Declared, Range};
    &[
        Declared {
            path: "limits.sends_per_minute",
            range: Range::float(MIN_SENDS_PER_MINUTE, MAX_SENDS_PER_MINUTE),
        },
        Declared {
            path: "limits.deliver_timeout_s",
            range: Range::float(0.1, MAX_WAIT_S),
        },
        Declared {
            path: "limits.after_sentinel_s",
            range: Range::float(0.0, MAX_WAIT_S),
        },
        Declared {
            path: "limits.max_runtime_s",
            range: Range::float(1.0, MAX_SPAN_S),
        },
        Declared {
            path: "limits.parallel_pairs",
            range: Range::int(1, MAX_PARALLEL as i64),
        },
        Declared {
            path: "limits.retries",
            range: Range::int(0, MAX_RETRIES as i64),
        },
        Declared {
            path: "limits.jitter",
            range: Range::float(0.0, 10.0),
        },
        Declared {
            path: "limits.daily_sends_per_account",
            range: Range::int(1, 1_000_000),
        },
        Declared {
            path: "seed",
            range: Range::int(0, i64::MAX),
        },
        Declared {
            path: "name",
            range: Range::Name {
                max: MAX_NAME,
                also: "-_.",
            },
        },
        Declared {
            path: "accounts",
            range: PATH,
        },
        Declared {
            path: "profile",
            range: PATH,
        },
        Declared {
            path: "corpus",
            range: PATH,
        },
        Declared {
            path: "testbed.policy",
            range: PATH,
        },
        Declared {
            path: "published[].label",
            range: Range::OneOf {
                words: &["sensitive", "benign"],
                empty: true,
            },
        },
        Declared {
            path: "published[].k",
            range: Range::int(0, MAX_PUBLISHED_N),
        },
        Declared {
            path: "published[].n",
            range: Range::int(1, MAX_PUBLISHED_N),
        },
        Declared {
            path: "published[].what",
            range: Range::Text { min: 1, max: 500 },
        },
        Declared {
            path: "published[].source",
            range: Range::Text { min: 1, max: 500 },
        },
    ]
};
/// A path in a spec.
const PATH: crate::ranges::Range = crate::ranges::Range::Text { min: 1, max: 4096 };
/// The largest count a published figure may give.
pub const MAX_PUBLISHED_N: i64 = 1_000_000_000;
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

/// Read experiment `n`: its kind, the keys every design shares, then the
/// design's own keys (by the design).
fn parse_experiment(
    at: &At,
    n: usize,
    table: &toml::Table,
    accounts: &Accounts,
    items: &[CorpusItem],
    dir: &Path,
    corpus: &Path,
) -> Result<Arc<dyn Experiment>, InputError> {
    let kinds = || {
        design::DESIGNS
            .iter()
            .map(|d| d.name)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let kind = match table.get("kind") {
        Some(toml::Value::String(k)) => k.as_str(),
        Some(_) => {
            return Err(at
                .exp(n, "kind", "must be a string")
                .hint(format!("one of {}", kinds())))
        }
        None => {
            return Err(at
                .exp(n, "kind", "missing field `kind`")
                .hint(format!("one of {}", kinds())))
        }
    };
    let Some(d) = design::find(kind) else {
        return Err(at
            .exp(n, "kind", format!("unknown design `{kind}`"))
            .hint(format!("one of {}", kinds())));
    };
    for key in table.keys() {
        if !COMMON_KEYS.contains(&key.as_str()) && !d.keys.contains(&key.as_str()) {
            let mut keys: Vec<&str> = COMMON_KEYS[1..].to_vec();
            keys.extend(d.keys);
            return Err(at
                .exp(
                    n,
                    key,
                    format!("`{key}` does not apply to a `{}` experiment", d.name),
                )
                .hint(format!("keys of `{}`: {}", d.name, keys.join(", "))));
        }
    }
    crate::tomlfile::check_ranges_at(
        at.path,
        at.text,
        &toml::Value::Table(table.clone()),
        &format!("experiment[{n}]"),
        COMMON_RANGES.iter().chain(d.ranges),
    )?;
    let name = match table.get("name") {
        None => format!("{}-{}", d.name, n + 1),
        Some(toml::Value::String(s)) => s.clone(),
        Some(_) => return Err(at.exp(n, "name", "must be a string")),
    };
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
    // In range: COMMON_RANGES was checked above.
    let replicates = match table.get("replicates") {
        Some(toml::Value::Integer(r)) => *r as u32,
        _ => 1,
    };
    let test_chat = match table.get("test_chat") {
        Some(v) => {
            let c: ChatFile = v.clone().try_into().map_err(|e| {
                at.exp(
                    n,
                    "test_chat",
                    format!("invalid value: {}", e.message().trim()),
                )
            })?;
            super::chat::resolve(at, n, "test_chat", &c, accounts)?
        }
        None => {
            let first = |r: Region| accounts.accounts.iter().find(|a| a.region == r);
            let (Some(i), Some(c)) = (first(Region::Intl), first(Region::China)) else {
                return Err(at
                    .exp(n, "kind", "no test_chat given, and the accounts file lacks an intl or a china account")
                    .hint("add test_chat = { from = \"…\", to = \"…\" }"));
            };
            Chat {
                from: i.alias.clone(),
                target: Target::Direct(c.alias.clone()),
                observer: c.alias.clone(),
            }
        }
    };
    if !involves_china(&test_chat, accounts) {
        return Err(at
            .exp(
                n,
                "test_chat",
                "the test chat has no china account: nothing would be censored there",
            )
            .hint("test in a chat with a china-registered account"));
    }
    let cx = ParseCx {
        at,
        n,
        table,
        accounts,
        items,
        dir,
        corpus,
        design: d.name,
        name,
        replicates,
        test_chat,
    };
    (d.parse)(&cx)
}
