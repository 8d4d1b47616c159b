//! `surveillance`: is content inspected in chats without a china account?
//! A fresh copy is seeded between intl accounts; after `delay_s` that same
//! file (`test`) and an unseeded fresh copy (`control`), in random order,
//! are sent into a chat with a china account. Blocked test, delivered
//! control: the seed was surveilled.

use std::collections::BTreeMap;
use std::sync::Arc;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use super::analysis::Analysis;
use super::surveillance_content as content;
use super::{Common, Design, Experiment, ParseCx, TrialOutcomes, TrialVerdict};
use crate::dataset::tables::{ForestRow, GridCell, Table};
use crate::dataset::{Outcome, TrialRow, Verdict};
use crate::error::InputError;
use crate::probe::chat::Chat;
use crate::probe::items::CorpusItem;
use crate::probe::plan::{num, send, trial, Content, Role, Trial};
use crate::stats::{self, words};
use crate::stats::{rate, Interval};

/// The registry entry.
pub const DESIGN: Design = Design {
    name: "surveillance",
    about: "seed in an intl-only chat, then test the seeded file and an unseeded control",
    keys: &["items", "seed_chat", "delay_s"],
    ranges: &[super::parse::DELAY_S],
    parse,
    verdicts: &[
        Verdict::Surveilled,
        Verdict::NotSurveilled,
        Verdict::FilteredRealtime,
    ],
    analysis: Some(|| Box::new(SurveillanceTable::default())),
    findings: None,
};

#[derive(Debug)]
struct Surveillance {
    common: Common,
    items: Vec<CorpusItem>,
    seed_chat: Chat,
    delay_s: f64,
}

fn parse(cx: &ParseCx) -> Result<Arc<dyn Experiment>, InputError> {
    Ok(Arc::new(Surveillance {
        common: cx.common(),
        items: cx.items()?,
        seed_chat: cx.seed_chat()?,
        delay_s: cx.delay_s()?,
    }))
}

impl Experiment for Surveillance {
    fn common(&self) -> &Common {
        &self.common
    }

    fn max_sends(&self) -> u64 {
        self.items.len() as u64 * self.common.replicates as u64 * 3
    }

    fn first_trials(&self, rng: &mut ChaCha8Rng) -> Vec<Trial> {
        let mut out = Vec::new();
        for rep in 1..=self.common.replicates {
            for it in &self.items {
                let id = format!("{}/{}/r{rep}", self.common.name, it.item.id);
                let t = &self.common.test_chat;
                let mut tail = vec![
                    send(&id, Role::Test, self.delay_s, t, Content::Fresh('A'), it),
                    send(&id, Role::Control, self.delay_s, t, Content::Fresh('B'), it),
                ];
                if rng.random_bool(0.5) {
                    tail.swap(0, 1);
                }
                let mut sends = vec![send(
                    &id,
                    Role::Seed,
                    0.0,
                    &self.seed_chat,
                    Content::Fresh('A'),
                    it,
                )];
                sends.extend(tail);
                out.push(trial(id, self, Some(it), num(self.delay_s), sends));
            }
        }
        out
    }

    fn verdict(&self, _t: &Trial, o: &TrialOutcomes) -> TrialVerdict {
        let b = |o: Option<Outcome>| o == Some(Outcome::Blocked);
        let (seed, test, control) = (
            o.role(Role::Seed),
            o.role(Role::Test),
            o.role(Role::Control),
        );
        let verdict = if !o.complete {
            Verdict::Inconclusive
        } else if b(seed) || b(control) {
            Verdict::FilteredRealtime
        } else if b(test) {
            Verdict::Surveilled
        } else {
            Verdict::NotSurveilled
        };
        TrialVerdict {
            verdict,
            seeded: test,
            control,
        }
    }
}

/// The analysis: `surveillance.csv`, one row per experiment, content kind,
/// label and channel: seeded against control, Fisher's exact test, Holm's
/// correction over the rows.
#[derive(Default)]
struct SurveillanceTable {
    /// Each group's pairs (seeded copy and control of one trial).
    counts: BTreeMap<Group, Pairs>,
    /// Each item's verdicts, by (experiment_name, item_id).
    items: BTreeMap<(String, String), ItemCounts>,
    /// The content features of the items, from the run folders' items.csv.
    features: std::collections::HashMap<String, crate::corpus::features::FeatureRow>,
    /// The date of each trial's seed send, by (run_id, trial_id).
    seed_day: std::collections::HashMap<(String, String), String>,
}

/// One group's trials, as pairs: the unit of the headline test is the
/// trial, whose seeded copy and unseeded control are a matched pair.
#[derive(Default)]
struct Pairs {
    /// Trials with both outcomes conclusive (blocked or delivered).
    n: u64,
    /// Of them, the seeded copy blocked.
    seeded_blocked: u64,
    /// Of them, the control blocked.
    control_blocked: u64,
    /// Discordant: seeded blocked, control delivered.
    seeded_only: u64,
    /// Discordant: control blocked, seeded delivered.
    control_only: u64,
    /// Trials that could not conclude (a send lost or failed).
    inconclusive: u64,
}

/// One item's trials (design surveillance), across runs and days.
#[derive(Default)]
struct ItemCounts {
    content_kind: String,
    label: String,
    topic: String,
    /// Trials judged surveilled or not (the rest are left out of `n`).
    n: u64,
    surveilled: u64,
    /// Trials whose seed or control was blocked at once.
    filtered_realtime: u64,
    runs: std::collections::BTreeSet<String>,
    /// Dates (of the seed's `sent_at`) its trials ran on.
    days: std::collections::BTreeSet<String>,
    /// Every trial, inconclusive ones included: (run_id, trial_id, verdict).
    cells: Vec<(String, String, GridCell)>,
}

/// A row of surveillance_items.csv.
#[derive(Serialize)]
struct ItemRow {
    experiment_name: String,
    item_id: String,
    content_kind: String,
    label: String,
    topic: String,
    n: u64,
    surveilled: u64,
    filtered_realtime: u64,
    rate: Option<f64>,
    ci_low: Option<f64>,
    ci_high: Option<f64>,
    runs: u64,
    days: u64,
}

/// A row of surveillance_topics.csv.
#[derive(Serialize)]
struct TopicRow {
    experiment_name: String,
    content_kind: String,
    label: String,
    topic: String,
    items: u64,
    n: u64,
    surveilled: u64,
    rate: Option<f64>,
    ci_low: Option<f64>,
    ci_high: Option<f64>,
    benign_n: u64,
    benign_surveilled: u64,
    benign_rate: Option<f64>,
    fisher_p: Option<f64>,
    odds_ratio: Option<f64>,
    p_holm: Option<f64>,
    /// The odds ratio with 0.5 added to every cell when one is zero.
    or_adj: Option<f64>,
    /// Its Woolf 95 % interval.
    or_ci_low: Option<f64>,
    or_ci_high: Option<f64>,
    /// Why there is no odds ratio, when there is none.
    or_note: String,
    /// The between-items test's p value, and which test it is.
    p: Option<f64>,
    test: String,
    holm_family: String,
}

/// (experiment_name, content_kind, label, channel), or topic in place of
/// channel for the topic table.
type Group = (String, String, String, String);

/// A row of surveillance.csv.
#[derive(Serialize)]
struct SurveillanceRow {
    experiment_name: String,
    content_kind: String,
    label: String,
    channel: String,
    n: u64,
    seeded_blocked: u64,
    control_blocked: u64,
    seeded_rate: Option<f64>,
    seeded_ci_low: Option<f64>,
    seeded_ci_high: Option<f64>,
    control_rate: Option<f64>,
    control_ci_low: Option<f64>,
    control_ci_high: Option<f64>,
    fisher_p: Option<f64>,
    odds_ratio: Option<f64>,
    p_holm: Option<f64>,
    inconclusive: u64,
    seeded_only: u64,
    control_only: u64,
    mcnemar_p: Option<f64>,
    holm_family: String,
}

/// The Holm family of surveillance.csv: the claims it tests.
const HEADLINE_FAMILY: &str = "surveillance.csv sensitive rows";
/// The Holm families of the topic and format tables.
const TOPIC_FAMILY: &str = "surveillance_topics.csv sensitive rows";
const FORMAT_FAMILY: &str = "surveillance_formats.csv sensitive rows";

/// Random splits when a permutation test has too many to enumerate, and
/// their generator's seed (fixed: the same data, the same p).
const PERMUTATIONS: u32 = 20_000;
const PERMUTATION_SEED: u64 = 20200507;

/// Holm's adjustment of each row's p value within its family: rows with
/// an empty family name (the benign controls) are no claim and get none.
fn holm_within_family<'a>(
    rows: impl Iterator<Item = (Option<f64>, &'a String)>,
) -> Vec<Option<f64>> {
    let ps: Vec<f64> = rows
        .map(|(p, family)| {
            if family.is_empty() {
                f64::NAN
            } else {
                p.unwrap_or(f64::NAN)
            }
        })
        .collect();
    stats::holm(&ps)
        .into_iter()
        .map(|h| (!h.is_nan()).then_some(h))
        .collect()
}

/// Whether the names (of experiments) hold more than one.
fn several<'a>(mut names: impl Iterator<Item = &'a String>) -> bool {
    let first = names.next();
    names.any(|n| Some(n) != first)
}

/// The test between two groups of items, the unit of a comparison of
/// content, from each item's (trials judged, surveilled): Fisher's exact
/// test on the trials when every item has one (trials are then items),
/// otherwise an exact permutation test of the mean item rate, since an
/// item's trials are not independent. (p, the test's name); None when a
/// group has no item with a judged trial.
fn between_items(a: &[(u64, u64)], b: &[(u64, u64)]) -> Option<(f64, &'static str)> {
    let judged =
        |v: &[(u64, u64)]| -> Vec<(u64, u64)> { v.iter().copied().filter(|i| i.0 > 0).collect() };
    let (a, b) = (judged(a), judged(b));
    if a.is_empty() || b.is_empty() {
        return None;
    }
    if a.iter().chain(&b).all(|i| i.0 == 1) {
        let (ka, kb) = (
            a.iter().map(|i| i.1).sum::<u64>(),
            b.iter().map(|i| i.1).sum::<u64>(),
        );
        let (na, nb) = (a.len() as u64, b.len() as u64);
        return Some((
            stats::fisher_exact(ka, na - ka, kb, nb - kb).0,
            "fisher, items",
        ));
    }
    let rates =
        |v: &[(u64, u64)]| -> Vec<f64> { v.iter().map(|i| i.1 as f64 / i.0 as f64).collect() };
    stats::permutation_test(&rates(&a), &rates(&b), PERMUTATIONS, PERMUTATION_SEED)
        .map(|p| (p, "permutation, item rates"))
}

impl Analysis for SurveillanceTable {
    fn folder(&mut self, dir: &std::path::Path) -> Result<(), InputError> {
        let path = dir.join(crate::corpus::features::RUN_ITEMS_FILE);
        if !path.is_file() {
            return Ok(());
        }
        let mut rdr = csv::Reader::from_path(&path)
            .map_err(|e| InputError::new(&path, format!("cannot read: {e}")))?;
        for (i, r) in rdr.deserialize().enumerate() {
            let f: crate::corpus::features::FeatureRow = r.map_err(|e| {
                InputError::new(&path, format!("malformed row: {e}"))
                    .line(i as u64 + 2)
                    .hint("its columns are those of corpus/features.csv (docs/DATASET.md)")
            })?;
            self.features.insert(f.item_id.clone(), f);
        }
        Ok(())
    }

    fn send(&mut self, r: &crate::dataset::SendRow) {
        if r.role != "seed" || r.sent_at.len() < 10 {
            return;
        }
        let e = self
            .items
            .entry((r.experiment_name.clone(), r.item_id.clone()))
            .or_default();
        e.days.insert(r.sent_at[..10].to_string());
        self.seed_day.insert(
            (r.run_id.clone(), r.trial_id.clone()),
            r.sent_at[..10].to_string(),
        );
    }

    fn trial(&mut self, r: &TrialRow) {
        let cell = match r.verdict {
            Verdict::Surveilled => GridCell::Yes,
            Verdict::NotSurveilled => GridCell::No,
            Verdict::Inconclusive => GridCell::Inconclusive,
            _ => GridCell::Other,
        };
        self.items
            .entry((r.experiment_name.clone(), r.item_id.clone()))
            .or_default()
            .cells
            .push((r.run_id.clone(), r.trial_id.clone(), cell));
        if r.verdict != Verdict::Inconclusive {
            let e = self
                .items
                .entry((r.experiment_name.clone(), r.item_id.clone()))
                .or_default();
            e.content_kind.clone_from(&r.content_kind);
            e.label.clone_from(&r.label);
            e.topic.clone_from(&r.topic);
            e.runs.insert(r.run_id.clone());
            match r.verdict {
                Verdict::Surveilled => {
                    e.n += 1;
                    e.surveilled += 1;
                }
                Verdict::NotSurveilled => e.n += 1,
                _ => e.filtered_realtime += 1,
            }
        }
        let e = self
            .counts
            .entry((
                r.experiment_name.clone(),
                r.content_kind.clone(),
                r.label.clone(),
                r.channel.clone(),
            ))
            .or_default();
        let (Some(s), Some(c)) = (r.seeded_outcome, r.control_outcome) else {
            e.inconclusive += 1;
            return;
        };
        if !(s.conclusive() && c.conclusive()) {
            e.inconclusive += 1;
            return;
        }
        let (s, c) = (s == Outcome::Blocked, c == Outcome::Blocked);
        e.n += 1;
        e.seeded_blocked += u64::from(s);
        e.control_blocked += u64::from(c);
        e.seeded_only += u64::from(s && !c);
        e.control_only += u64::from(c && !s);
    }

    fn finish(self: Box<Self>, interval: Interval) -> Vec<Table> {
        let mut rows: Vec<SurveillanceRow> = self
            .counts
            .into_iter()
            .map(|((name, kind, label, channel), pairs)| {
                let (n, sb, cb) = (pairs.n, pairs.seeded_blocked, pairs.control_blocked);
                let (slo, shi) = interval.ci(sb, n);
                let (clo, chi) = interval.ci(cb, n);
                let fisher = (n > 0).then(|| stats::fisher_exact(sb, n - sb, cb, n - cb));
                let family = if label == "benign" {
                    String::new()
                } else {
                    HEADLINE_FAMILY.to_string()
                };
                SurveillanceRow {
                    experiment_name: name,
                    content_kind: kind,
                    label,
                    channel,
                    n,
                    seeded_blocked: sb,
                    control_blocked: cb,
                    seeded_rate: rate(sb, n),
                    seeded_ci_low: slo,
                    seeded_ci_high: shi,
                    control_rate: rate(cb, n),
                    control_ci_low: clo,
                    control_ci_high: chi,
                    fisher_p: fisher.map(|f| f.0),
                    odds_ratio: fisher.map(|f| f.1).filter(|o| o.is_finite()),
                    p_holm: None,
                    inconclusive: pairs.inconclusive,
                    seeded_only: pairs.seeded_only,
                    control_only: pairs.control_only,
                    mcnemar_p: (n > 0)
                        .then(|| stats::mcnemar_exact(pairs.seeded_only, pairs.control_only)),
                    holm_family: family,
                }
            })
            .collect();
        // Holm over the claims only: the sensitive rows. Benign rows are
        // specificity controls, expected to show nothing, and are not
        // tested as findings.
        let adjusted = holm_within_family(rows.iter().map(|r| (r.mcnemar_p, &r.holm_family)));
        for (r, h) in rows.iter_mut().zip(adjusted) {
            r.p_holm = h;
        }
        let mut table = Table::from_rows(
            "surveillance.csv",
            "Surveillance",
            "Each row is one experiment's trials of one content kind, label and channel (design surveillance). The unit is the trial: its seeded copy and its unseeded control of the same item are a matched pair. n counts the trials with both outcomes conclusive; inconclusive the others (in no other column). seeded_only counts pairs whose seeded copy was blocked and control delivered (evidence of surveillance), control_only the reverse; mcnemar_p is McNemar's exact test on those discordant pairs, and p_holm adjusts it by Holm's method within the family named in holm_family (the sensitive rows; benign rows are specificity controls, not claims, and get none). fisher_p and odds_ratio, an unpaired comparison of the two columns, are kept for earlier readers and are not the test.",
            &[
                "experiment_name",
                "content_kind",
                "label",
                "channel",
                "n",
                "seeded_blocked",
                "control_blocked",
                "seeded_rate",
                "seeded_ci_low",
                "seeded_ci_high",
                "control_rate",
                "control_ci_low",
                "control_ci_high",
                "fisher_p",
                "odds_ratio",
                "p_holm",
                "inconclusive",
                "seeded_only",
                "control_only",
                "mcnemar_p",
                "holm_family",
            ],
            &rows,
        );
        table.summary = rows.iter().map(sentence).collect();
        let items: Vec<(String, String, ItemCounts)> = self
            .items
            .into_iter()
            .filter(|(_, c)| c.n + c.filtered_realtime > 0)
            .map(|((x, id), c)| (x, id, c))
            .collect();
        let mut by_item = item_table(&items);
        let (mut by_topic, topic_effects) = topic_table(&items, interval);
        let mut by_format = format_table(&items, &self.features, interval);
        let tallies: Vec<content::Tally> = items
            .iter()
            .map(|(x, id, c)| content::Tally {
                experiment: x,
                item_id: id,
                n: c.n,
                surveilled: c.surveilled,
            })
            .collect();
        let (mut model, terms) = content::model_table(&tallies, &self.features);
        model.figures.push(content::forest(topic_effects, terms));
        let several = several(items.iter().map(|i| &i.0));
        let cells: Vec<(String, String, String, GridCell)> = items
            .iter()
            .flat_map(|(x, id, c)| {
                let label = if several {
                    format!("{id} ({x})")
                } else {
                    id.clone()
                };
                let days = &self.seed_day;
                c.cells.iter().map(move |(run, trial, cell)| {
                    let day = days
                        .get(&(run.clone(), trial.clone()))
                        .cloned()
                        .unwrap_or_default();
                    (label.clone(), day, format!("{run}/{trial}"), *cell)
                })
            })
            .collect();
        by_item.figures.push(content::grid(&cells));
        for t in [&mut by_item, &mut by_topic, &mut by_format] {
            t.section = Some(content::SECTION.into());
        }
        vec![table, by_item, by_topic, by_format, model]
    }
}

/// surveillance_items.csv: each item's trials, with an exact interval.
fn item_table(items: &[(String, String, ItemCounts)]) -> Table {
    let rows: Vec<ItemRow> = items
        .iter()
        .map(|(x, id, c)| {
            let (lo, hi) = Interval::Exact.ci(c.surveilled, c.n);
            ItemRow {
                experiment_name: x.clone(),
                item_id: id.clone(),
                content_kind: c.content_kind.clone(),
                label: c.label.clone(),
                topic: c.topic.clone(),
                n: c.n,
                surveilled: c.surveilled,
                filtered_realtime: c.filtered_realtime,
                rate: rate(c.surveilled, c.n),
                ci_low: lo,
                ci_high: hi,
                runs: c.runs.len() as u64,
                days: c.days.len() as u64,
            }
        })
        .collect();
    let mut table = Table::from_rows(
        "surveillance_items.csv",
        "Surveillance by item",
        "Each row is one item of one surveillance experiment, across every run and day analysed: in how many of its trials the seeded copy was surveilled (blocked while the unseeded control was delivered), with a Clopper–Pearson interval; n leaves out trials filtered in real time (seed or control blocked) and inconclusive ones.",
        &[
            "experiment_name",
            "item_id",
            "content_kind",
            "label",
            "topic",
            "n",
            "surveilled",
            "filtered_realtime",
            "rate",
            "ci_low",
            "ci_high",
            "runs",
            "days",
        ],
        &rows,
    );
    let several = several(rows.iter().map(|r| &r.experiment_name));
    let name = |r: &ItemRow| {
        if several {
            format!("{} ({})", r.item_id, r.experiment_name)
        } else {
            r.item_id.clone()
        }
    };
    let always: Vec<String> = rows
        .iter()
        .filter(|r| r.n > 0 && r.surveilled == r.n)
        .map(name)
        .collect();
    let never: Vec<String> = rows
        .iter()
        .filter(|r| r.n > 0 && r.surveilled == 0)
        .map(name)
        .collect();
    let fewest = rows.iter().filter(|r| r.n > 0).map(|r| r.n).min();
    if let Some(fewest) = fewest {
        table.summary.push(format!(
            "By item: {} of {} items were surveilled in every trial judged ({}), {} in none{}. With as few as {fewest} {} an item, an item's rate is uncertain: read its interval, not the rate alone.",
            always.len(),
            rows.len(),
            always.join(", "),
            never.len(),
            if never.is_empty() { String::new() } else { format!(" ({})", never.join(", ")) },
            if fewest == 1 { "trial" } else { "trials" },
        ));
    }
    table
}

/// A row of surveillance_formats.csv.
#[derive(Serialize)]
struct FormatRow {
    experiment_name: String,
    format: String,
    label: String,
    items: u64,
    n: u64,
    surveilled: u64,
    rate: Option<f64>,
    ci_low: Option<f64>,
    ci_high: Option<f64>,
    benign_n: u64,
    benign_surveilled: u64,
    benign_rate: Option<f64>,
    fisher_p: Option<f64>,
    odds_ratio: Option<f64>,
    p_holm: Option<f64>,
    p: Option<f64>,
    test: String,
    holm_family: String,
}

/// surveillance_formats.csv: each file format's sensitive items against
/// the benign items of the same format (Fisher, Holm over the rows), and
/// the benign items themselves; formats from the run folders' items.csv.
fn format_table(
    items: &[(String, String, ItemCounts)],
    features: &std::collections::HashMap<String, crate::corpus::features::FeatureRow>,
    interval: Interval,
) -> Table {
    // (experiment, format, label) → (items, n, surveilled), and each
    // item's (n, surveilled).
    let mut groups: BTreeMap<(String, String, String), (u64, u64, u64)> = BTreeMap::new();
    let mut units: BTreeMap<(String, String, String), Vec<(u64, u64)>> = BTreeMap::new();
    for (x, id, c) in items {
        let Some(f) = features.get(id) else { continue };
        let key = (x.clone(), f.format.clone(), c.label.clone());
        units
            .entry(key.clone())
            .or_default()
            .push((c.n, c.surveilled));
        let e = groups.entry(key).or_default();
        e.0 += 1;
        e.1 += c.n;
        e.2 += c.surveilled;
    }
    let mut rows: Vec<FormatRow> = groups
        .iter()
        .map(|((x, format, label), (k_items, n, k))| {
            let benign = groups
                .get(&(x.clone(), format.clone(), "benign".to_string()))
                .filter(|_| label != "benign");
            let (bn, bk) = benign.map_or((0, 0), |b| (b.1, b.2));
            let (lo, hi) = interval.ci(*k, *n);
            let test = (*n > 0 && bn > 0).then(|| stats::fisher_exact(*k, n - k, bk, bn - bk));
            let key = (x.clone(), format.clone(), label.clone());
            let benign_key = (x.clone(), format.clone(), "benign".to_string());
            let between = (label != "benign")
                .then(|| {
                    between_items(
                        units.get(&key).map_or(&[][..], Vec::as_slice),
                        units.get(&benign_key).map_or(&[][..], Vec::as_slice),
                    )
                })
                .flatten();
            FormatRow {
                experiment_name: x.clone(),
                format: format.clone(),
                label: label.clone(),
                items: *k_items,
                n: *n,
                surveilled: *k,
                rate: rate(*k, *n),
                ci_low: lo,
                ci_high: hi,
                benign_n: bn,
                benign_surveilled: bk,
                benign_rate: rate(bk, bn),
                fisher_p: test.map(|t| t.0),
                odds_ratio: test.map(|t| t.1).filter(|o| o.is_finite()),
                p_holm: None,
                p: between.map(|b| b.0),
                test: between.map_or(String::new(), |b| b.1.to_string()),
                holm_family: if label == "benign" {
                    String::new()
                } else {
                    FORMAT_FAMILY.to_string()
                },
            }
        })
        .collect();
    let adjusted = holm_within_family(rows.iter().map(|r| (r.p, &r.holm_family)));
    for (r, h) in rows.iter_mut().zip(adjusted) {
        r.p_holm = h;
    }
    let mut table = Table::from_rows(
        "surveillance_formats.csv",
        "Surveillance by file format",
        "Each row is one file format and label of one surveillance experiment (formats from the run's items.csv): how often its items' seeded copies were surveilled. A sensitive row is compared with the benign items of the same format, between items (the unit): p is Fisher's exact test when every item has one trial, otherwise an exact permutation test of the mean item rate (test names it), Holm-adjusted within the family in holm_family (this table's sensitive rows). fisher_p and odds_ratio, on trials, are kept for earlier readers.",
        &[
            "experiment_name",
            "format",
            "label",
            "items",
            "n",
            "surveilled",
            "rate",
            "ci_low",
            "ci_high",
            "benign_n",
            "benign_surveilled",
            "benign_rate",
            "fisher_p",
            "odds_ratio",
            "p_holm",
            "p",
            "test",
            "holm_family",
        ],
        &rows,
    );
    let significant: Vec<String> = rows
        .iter()
        .filter(|r| r.p_holm.is_some_and(|p| p < 0.05) && r.rate > r.benign_rate)
        .map(|r| {
            format!(
                "{} ({} of {}, {})",
                r.format,
                r.surveilled,
                r.n,
                words::pct(r.rate)
            )
        })
        .collect();
    if !significant.is_empty() {
        table.summary.push(format!(
            "By file format, a comparison between items as by topic: sensitive files surveilled significantly more often than benign files of the same format (between-items tests, Holm-adjusted over this table's sensitive rows, p < 0.05): {}.",
            significant.join("; ")
        ));
    }
    table
}

/// surveillance_topics.csv: each topic's items against the benign items of
/// the other topics (same experiment and content kind), Fisher's exact test,
/// Holm-adjusted over the rows; and its plot.
/// Also returns each sensitive topic's odds ratio against the benign items
/// with its Woolf interval, as rows of the forest plot.
fn topic_table(
    items: &[(String, String, ItemCounts)],
    interval: Interval,
) -> (Table, Vec<ForestRow>) {
    // (experiment, kind, label, topic) → (items, n, surveilled).
    let mut topics: BTreeMap<Group, (u64, u64, u64)> = BTreeMap::new();
    for (x, _, c) in items {
        let e = topics
            .entry((
                x.clone(),
                c.content_kind.clone(),
                c.label.clone(),
                c.topic.clone(),
            ))
            .or_default();
        e.0 += 1;
        e.1 += c.n;
        e.2 += c.surveilled;
    }
    let mut rows: Vec<TopicRow> = topics
        .iter()
        .map(|((x, kind, label, topic), (k_items, n, k))| {
            // The benign items of the same experiment and kind, this topic's
            // own left out.
            let benign: Vec<(u64, u64)> = items
                .iter()
                .filter(|(bx, _, c)| {
                    bx == x && c.content_kind == *kind && c.label == "benign" && c.topic != *topic
                })
                .map(|(_, _, c)| (c.n, c.surveilled))
                .collect();
            let own: Vec<(u64, u64)> = items
                .iter()
                .filter(|(ox, _, c)| {
                    ox == x && c.content_kind == *kind && c.label == *label && c.topic == *topic
                })
                .map(|(_, _, c)| (c.n, c.surveilled))
                .collect();
            let (bn, bk) = benign.iter().fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
            let (lo, hi) = interval.ci(*k, *n);
            let test = (*n > 0 && bn > 0).then(|| stats::fisher_exact(*k, n - k, bk, bn - bk));
            let between = between_items(&own, &benign);
            TopicRow {
                experiment_name: x.clone(),
                content_kind: kind.clone(),
                label: label.clone(),
                topic: topic.clone(),
                items: *k_items,
                n: *n,
                surveilled: *k,
                rate: rate(*k, *n),
                ci_low: lo,
                ci_high: hi,
                benign_n: bn,
                benign_surveilled: bk,
                benign_rate: rate(bk, bn),
                fisher_p: test.map(|t| t.0),
                odds_ratio: test.map(|t| t.1).filter(|o| o.is_finite()),
                p_holm: None,
                or_adj: None,
                or_ci_low: None,
                or_ci_high: None,
                or_note: String::new(),
                p: between.map(|b| b.0),
                test: between.map_or(String::new(), |b| b.1.to_string()),
                holm_family: if label == "benign" {
                    String::new()
                } else {
                    TOPIC_FAMILY.to_string()
                },
            }
        })
        .collect();
    let adjusted = holm_within_family(rows.iter().map(|r| (r.p, &r.holm_family)));
    for (r, h) in rows.iter_mut().zip(adjusted) {
        r.p_holm = h;
    }
    let several = several(rows.iter().map(|r| &r.experiment_name));
    let mut effects = Vec::new();
    for r in rows.iter_mut() {
        let (k, n, bk, bn) = (r.surveilled, r.n, r.benign_surveilled, r.benign_n);
        // No number where the table holds no information: no event (or no
        // non-event) in both groups, or a group without trials.
        if let Err(why) = stats::odds_ratio_estimable(k, n - k, bk, bn - bk) {
            r.or_note = why.to_string();
            r.odds_ratio = None;
            continue;
        }
        let (or, lo, hi) = stats::odds_ratio_woolf(k, n - k, bk, bn - bk, 0.95);
        (r.or_adj, r.or_ci_low, r.or_ci_high) = (Some(or), Some(lo), Some(hi));
        if r.label != "benign" {
            effects.push(ForestRow {
                label: if several {
                    format!("{} ({}s, {})", r.topic, r.content_kind, r.experiment_name)
                } else {
                    format!("{} ({}s)", r.topic, r.content_kind)
                },
                estimate: or,
                lo,
                hi,
            });
        }
    }
    let mut table = Table::from_rows(
        "surveillance_topics.csv",
        "Surveillance by topic",
        "Each row is one topic of one surveillance experiment and content kind. It asks a different question from surveillance.csv: not whether seeding made a copy blocked (a paired test within each trial), but whether this topic's items were surveilled more often than the benign items of the same experiment and kind (a comparison between items, the unit). n counts the trials judged surveilled or not (inconclusive trials and trials filtered in real time are left out). p is the between-items test named in test: Fisher's exact test when every item has one trial (trials are then items), otherwise an exact permutation test of the mean item rate (an item's trials are not independent); p_holm adjusts it within the family in holm_family (this table's sensitive rows; benign rows are controls). fisher_p and odds_ratio, on trials, are kept for earlier readers. The odds ratio (or_adj: 0.5 added to every cell when one is zero; Woolf interval) is left empty, with or_note saying why, when neither group had a surveilled trial, or neither had one that was not: such a table holds no information on the ratio.",
        &[
            "experiment_name",
            "content_kind",
            "label",
            "topic",
            "items",
            "n",
            "surveilled",
            "rate",
            "ci_low",
            "ci_high",
            "benign_n",
            "benign_surveilled",
            "benign_rate",
            "fisher_p",
            "odds_ratio",
            "p_holm",
            "or_adj",
            "or_ci_low",
            "or_ci_high",
            "or_note",
            "p",
            "test",
            "holm_family",
        ],
        &rows,
    );
    let significant: Vec<String> = rows
        .iter()
        .filter(|r| r.p_holm.is_some_and(|p| p < 0.05) && r.rate > r.benign_rate)
        .map(|r| {
            format!(
                "{} ({}s, {} of {}, {})",
                r.topic,
                r.content_kind,
                r.surveilled,
                r.n,
                words::pct(r.rate)
            )
        })
        .collect();
    if !rows.is_empty() {
        let question = "By topic, a comparison between items (were this topic's items surveilled more often than the benign items?), not the paired test of the headline (did seeding, rather than content already known to the censor, make the copy blocked?)";
        table.summary.push(if significant.is_empty() {
            format!("{question}: no topic was surveilled significantly more often than the benign items (between-items tests, Holm-adjusted over this table's sensitive rows); with few items a topic, that says little.")
        } else {
            format!(
                "{question}: surveilled significantly more often than the benign items (between-items tests, Holm-adjusted over this table's sensitive rows, p < 0.05): {}. The two can disagree: this test compares a topic's items with the benign items, which are rarely blocked, while the paired test counts only the trials whose seeded copy and control differ, and with five such trials or fewer it cannot reach p < 0.05 at all.",
                significant.join("; ")
            )
        });
    }
    table.figures.push(crate::dataset::tables::Figure {
        name: "surveillance_topics".into(),
        title: "Surveillance by topic: the share of trials whose seeded copy was surveilled, with its interval".into(),
        heading: "Surveilled, by topic".into(),
        x_label: "topic".into(),
        y_label: "surveilled (share of trials)".into(),
        chart: crate::dataset::tables::Chart::GroupedRows(topic_bars(&rows)),
    });
    (table, effects)
}

/// What one row of surveillance.csv shows, in words: the paired test, and
/// for benign rows what a specificity control is for.
fn sentence(r: &SurveillanceRow) -> String {
    let head = format!(
        "{} ({} {}s, {} chats): in {} of {} trials the seeded copy was blocked while its unseeded control was delivered, the reverse in {} (seeded copies blocked in {} of {}, {}, {}; controls in {} of {}, {})",
        r.experiment_name,
        r.label,
        r.content_kind,
        r.channel,
        r.seeded_only,
        r.n,
        r.control_only,
        r.seeded_blocked,
        r.n,
        words::pct(r.seeded_rate),
        words::ci(r.seeded_ci_low, r.seeded_ci_high),
        r.control_blocked,
        r.n,
        words::pct(r.control_rate),
    );
    let inconclusive = if r.inconclusive > 0 {
        format!(
            " {} inconclusive trials (a send lost or failed) are counted in none of these.",
            r.inconclusive
        )
    } else {
        String::new()
    };
    if r.holm_family.is_empty() {
        return format!(
            "{head}; McNemar's exact {}. Benign content is a specificity control: {}{inconclusive}",
            words::p_value(r.mcnemar_p),
            if r.seeded_only > 0 {
                "seeded benign copies were blocked, so the censor also acts on content that is not sensitive."
            } else {
                "no seeded benign copy was blocked, as expected of a censor that targets content."
            }
        );
    }
    let evidence = r.p_holm.is_some_and(|p| p < 0.05) && r.seeded_only > r.control_only;
    format!(
        "{head}; McNemar's exact {}, Holm-adjusted over the sensitive rows {}. {}{inconclusive}",
        words::p_value(r.mcnemar_p),
        words::p_value(r.p_holm),
        if evidence {
            "Evidence that transmissions in the intl-only seed chat were inspected and their content then censored."
        } else if r.seeded_only > r.control_only {
            "Seeded copies were blocked more often than their controls, but with so few discordant pairs the paired test cannot tell this from chance."
        } else {
            "No evidence of surveillance here."
        }
    )
}

/// The topic plot's rows: one group per experiment, a row per topic,
/// content kind and label with trials (`june4 images, sensitive`).
fn topic_bars(rows: &[TopicRow]) -> Vec<(String, Vec<crate::dataset::tables::Bar>)> {
    let mut groups: Vec<(String, Vec<crate::dataset::tables::Bar>)> = Vec::new();
    for r in rows.iter().filter(|r| r.n > 0) {
        let bar = crate::dataset::tables::Bar {
            label: format!("{} {}s, {}", r.topic, r.content_kind, r.label),
            y: r.rate,
            lo: r.ci_low,
            hi: r.ci_high,
        };
        match groups.last_mut() {
            Some((name, bars)) if *name == r.experiment_name => bars.push(bar),
            _ => groups.push((r.experiment_name.clone(), vec![bar])),
        }
    }
    groups
}
