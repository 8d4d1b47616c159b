//! `isolate` (adaptive): which keyword combination gets a censored text
//! blocked? For each text (a line of a text file, a row of a CSV, or a
//! corpus document's text) the method of [`crate::probe::isolate`] sends
//! sample tests — fragments of the text joined by the `separator` — one
//! trial each, and every next test follows from the verdicts so far: the
//! text whole, then the searches that find each combination, their
//! verification, and the text with every part found cut out, until that is
//! delivered. A dictionary of known triggers (a keyword file, or the
//! isolations.csv of earlier runs) is tried first.
//!
//! A message is sent once in an experiment: a test whose message was
//! answered before, for this text or another, takes that answer without a
//! send (the filter judges content; every send still gets a fresh tag), and
//! a test whose message is in flight for another text waits for it. So a
//! known trigger, or the verification of a combination, common to many
//! texts is sent once. This assumes what the method assumes anyway: the
//! same message gets the same answer.
//!
//! A trial's `parameter` is the test's step and its fragments as character
//! ranges (`part 12-15,40-42`); its `item_id` is the text's id. A lost or
//! failed test is inconclusive and asked again (`retries` times in a row at
//! most); a text that runs out of `budget` sends or retries is reported
//! incomplete, with the reason.
//!
//! Its own table, `isolations.csv`, is written into the run folder with
//! trials.csv (it needs the texts, which the datasets do not hold); its
//! analysis gathers the isolations.csv of every run folder analysed.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use rand_chacha::ChaCha8Rng;

use super::analysis::Findings;
use super::{
    blocked_or_evaded, Common, Design, Experiment, Finished, ParseCx, RunTable, TrialOutcomes,
    TrialVerdict,
};
use crate::corpus::keywords::{load_keywords, Keyword};
use crate::dataset::Verdict;
use crate::error::InputError;
use crate::probe::isolate::{Answer, Isolation, Isolator, Next, Query, Step};
use crate::probe::plan::{send_text, trial, Content, Trial};
use crate::ranges::{Declared, Range};

/// The registry entry.
pub const DESIGN: Design = Design {
    name: "isolate",
    about: "find every keyword combination that gets a censored text blocked, by sample tests of its fragments (adaptive)",
    keys: &[
        "texts",
        "items",
        "separator",
        "dictionary",
        "budget",
        "retries",
    ],
    ranges: &[
        Declared {
            path: "separator",
            range: Range::Text { min: 1, max: 20 },
        },
        Declared {
            path: "budget",
            range: Range::int(2, BUDGET.1 as i64),
        },
        Declared {
            path: "retries",
            range: Range::int(1, RETRIES.1 as i64),
        },
    ],
    parse,
    verdicts: &[Verdict::Blocked, Verdict::Evaded],
    analysis: Some(|| Box::new(Isolations::default())),
    findings: Some(findings),
};

/// What a run's isolations.csv found (empty without one): per
/// (experiment name, text) whose isolation finished, the finished
/// replicates and the replicates in which each combination was found.
fn findings(run: &Path) -> Result<Findings, InputError> {
    let path = run.join("isolations.csv");
    let mut out = Findings::new();
    if !path.is_file() {
        return Ok(out);
    }
    let mut rd = csv::Reader::from_path(&path)
        .map_err(|e| InputError::new(&path, format!("cannot read: {e}")))?;
    let header = rd
        .headers()
        .map_err(|e| InputError::new(&path, format!("malformed header: {e}")).line(1))?
        .clone();
    let col = |name: &str| {
        header.iter().position(|h| h == name).ok_or_else(|| {
            InputError::new(&path, format!("no `{name}` column"))
                .line(1)
                .hint("its columns are listed in docs/DATASET.md")
        })
    };
    let (ni, ti, ri, ci, ii) = (
        col("experiment_name")?,
        col("text_id")?,
        col("replicate")?,
        col("combination")?,
        col("incomplete")?,
    );
    // A text's replicate is counted once, from its first row.
    let mut seen = std::collections::BTreeSet::new();
    for rec in rd.records() {
        let rec = rec.map_err(|e| {
            let line = e.position().map_or(0, |p| p.line());
            InputError::new(&path, format!("malformed row: {e}")).line(line)
        })?;
        if !rec[ii].is_empty() {
            continue;
        }
        let text = (rec[ni].to_string(), rec[ti].to_string());
        let e = out.entry(text.clone()).or_default();
        if seen.insert((text, rec[ri].to_string())) {
            e.0 += 1;
        }
        if !rec[ci].is_empty() {
            *e.1.entry(rec[ci].to_string()).or_default() += 1;
        }
    }
    Ok(out)
}

/// The separator when the spec sets none: white space around a character
/// no keyword holds (a filter that ignores white space would otherwise
/// join the fragments' ends into a new keyword).
const SEPARATOR: &str = " | ";
/// Most characters of a text (after white space is collapsed).
const MAX_TEXT_CHARS: usize = 5000;
/// Most sends of one text, the default and the limit of `budget`.
const BUDGET: (u32, u32) = (300, 5000);
/// Inconclusive answers in a row before a text is given up, the default
/// and the limit of `retries`.
const RETRIES: (u32, u32) = (3, 20);

/// The columns of isolations.csv.
pub const ISOLATION_COLUMNS: [&str; 14] = [
    "run_id",
    "experiment_name",
    "text_id",
    "replicate",
    "label",
    "topic",
    "text_blocked",
    "combination",
    "positions",
    "parts",
    "sends",
    "verified",
    "known",
    "incomplete",
];

/// One text to isolate.
#[derive(Debug)]
struct Text {
    id: String,
    label: String,
    topic: String,
    isolator: Isolator,
}

#[derive(Debug)]
struct Isolate {
    common: Common,
    texts: Vec<Text>,
    separator: String,
    budget: u32,
}

fn parse(cx: &ParseCx) -> Result<Arc<dyn Experiment>, InputError> {
    let separator: String = cx.get("separator")?.unwrap_or_else(|| SEPARATOR.into());
    if separator.trim().is_empty() || separator.contains(['\n', '\r']) {
        return Err(cx
            .err(
                "separator",
                "must hold a visible character and no line break",
            )
            .hint("a filter that ignores white space would join fragments into new keywords; e.g. separator = \" | \""));
    }
    if let Some(why) = crate::corpus::keywords::keyword_problem(&separator) {
        return Err(cx.err("separator", format!("`{separator}` {why}")));
    }
    let budget: u32 = cx.get("budget")?.unwrap_or(BUDGET.0);
    let retries: u32 = cx.get("retries")?.unwrap_or(RETRIES.0);
    let dictionary = match cx.get::<String>("dictionary")? {
        Some(_) => load_dictionary(cx, &cx.path("dictionary")?)?,
        None => Vec::new(),
    };
    let raw = match (cx.get::<toml::Value>("texts")?, cx.get::<toml::Value>("items")?) {
        (Some(_), Some(_)) => {
            return Err(cx
                .err("items", "give `texts` or `items`, not both")
                .hint("one isolate experiment reads one source of texts"))
        }
        (Some(_), None) => load_texts(&cx.path("texts")?)?,
        (None, Some(_)) => corpus_texts(cx)?,
        (None, None) => {
            return Err(cx
                .err("kind", "an `isolate` experiment needs `texts` or `items`")
                .hint("texts = \"texts.txt\" (one text a line, or a CSV with `id` and `text` columns), or items = { kind = [\"document\"] }"))
        }
    };
    let texts = raw
        .into_iter()
        .map(|r| {
            let mut isolator = Isolator::new(&r.text, dictionary.clone());
            isolator.budget = budget;
            isolator.retries = retries;
            Text {
                id: r.id,
                label: r.label,
                topic: r.topic,
                isolator,
            }
        })
        .collect();
    Ok(Arc::new(Isolate {
        common: cx.common(),
        texts,
        separator,
        budget,
    }))
}

/// A text as read, before its isolator is made.
#[derive(Debug, PartialEq, Eq)]
struct RawText {
    id: String,
    label: String,
    topic: String,
    text: String,
}

/// White space runs (line breaks included) as one space, trimmed: a chat
/// client sends a message at a line break.
fn collapse(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A text checked: not empty, not too long, no tag character.
fn checked(path: &Path, line: u64, raw: RawText) -> Result<RawText, InputError> {
    let at = |msg: String| InputError::new(path, msg).line(line);
    if raw.text.is_empty() {
        return Err(at(format!("text `{}` is empty", raw.id)).key("text"));
    }
    let n = raw.text.chars().count();
    if n > MAX_TEXT_CHARS {
        return Err(at(format!(
            "text `{}` has {n} characters, more than a message takes ({MAX_TEXT_CHARS})",
            raw.id
        ))
        .key("text")
        .hint("split it into several texts"));
    }
    if let Some(why) = crate::corpus::keywords::keyword_problem(&raw.text) {
        return Err(at(format!("text `{}` {why}", raw.id))
            .key("text")
            .hint("remove the box-drawing characters (U+2500–U+257F)"));
    }
    Ok(raw)
}

/// The texts of a file: a CSV (`.csv`: `id` and `text` columns, `label`
/// and `topic` if present) or one text a line (ids `line1`, `line2`, …;
/// blank lines skipped).
fn load_texts(path: &Path) -> Result<Vec<RawText>, InputError> {
    let bytes = std::fs::read(path).map_err(|e| {
        InputError::new(path, format!("cannot read the texts file: {e}"))
            .hint("paths are relative to the spec file")
    })?;
    let Ok(s) = std::str::from_utf8(&bytes) else {
        return Err(InputError::new(path, "the texts file is not UTF-8"));
    };
    let s = s.trim_start_matches('\u{feff}');
    let csv = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    let mut out = Vec::new();
    if csv {
        let mut rdr = csv::Reader::from_reader(s.as_bytes());
        let headers = rdr
            .headers()
            .map_err(|e| InputError::new(path, format!("malformed header: {e}")).line(1))?
            .clone();
        let col = |name: &str| headers.iter().position(|h| h.trim() == name);
        let (Some(ic), Some(tc)) = (col("id"), col("text")) else {
            return Err(
                InputError::new(path, "a texts CSV needs `id` and `text` columns")
                    .line(1)
                    .hint("or give a plain text file (not .csv): one text a line"),
            );
        };
        let (lc, pc) = (col("label"), col("topic"));
        let mut ids = HashSet::new();
        for rec in rdr.records() {
            let rec = rec.map_err(|e| {
                let line = e.position().map_or(0, |p| p.line());
                InputError::new(path, format!("malformed row: {e}")).line(line)
            })?;
            let line = rec.position().map_or(0, |p| p.line());
            let field = |c: Option<usize>| c.and_then(|c| rec.get(c)).unwrap_or("").trim();
            let id = field(Some(ic)).to_string();
            if !crate::corpus::manifest::valid_id(&id) {
                return Err(InputError::new(path, format!("`{id}` is not a valid text id"))
                    .line(line)
                    .key("id")
                    .hint("ids are 1 to 120 letters, digits, `-`, `_` or `.`, not starting with `.`"));
            }
            if !ids.insert(id.clone()) {
                return Err(
                    InputError::new(path, format!("two texts have the id `{id}`"))
                        .line(line)
                        .key("id"),
                );
            }
            let raw = RawText {
                id,
                label: field(lc).to_string(),
                topic: field(pc).to_string(),
                text: collapse(field(Some(tc))),
            };
            out.push(checked(path, line, raw)?);
        }
    } else {
        for (i, line) in s.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let n = i as u64 + 1;
            let raw = RawText {
                id: format!("line{n}"),
                label: String::new(),
                topic: String::new(),
                text: collapse(line),
            };
            out.push(checked(path, n, raw)?);
        }
    }
    if out.is_empty() {
        return Err(InputError::new(path, "no text in the texts file"));
    }
    Ok(out)
}

/// The texts of the corpus documents `items` selects.
fn corpus_texts(cx: &ParseCx) -> Result<Vec<RawText>, InputError> {
    let items = cx.items()?;
    let mut out = Vec::new();
    for it in items {
        if it.item.kind != crate::corpus::ItemKind::Document {
            return Err(cx
                .err(
                    "items",
                    format!("`{}` is an image: isolate sends texts", it.item.id),
                )
                .hint("add kind = [\"document\"] to the filter"));
        }
        let path = cx.corpus.join(&it.item.path);
        let text = std::fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|bytes| {
                let format = crate::corpus::manifest::Format::from_path(&path)
                    .ok_or_else(|| "not a known document format".to_string())?;
                crate::corpus::text::extract(&path, &bytes, format).map_err(|e| e.to_string())
            })
            .map_err(|e| cx.err("items", format!("`{}`: {e}", it.item.id)))?;
        let raw = RawText {
            id: it.item.id.clone(),
            label: it.item.label.to_string(),
            topic: it.item.topic.clone(),
            text: collapse(&text),
        };
        out.push(checked(&path, 1, raw).map_err(|e| cx.err("items", e.to_string()))?);
    }
    Ok(out)
}

/// Known triggers, each a list of parts: a keyword file (`keyword` column,
/// `A+B` combinations; rows labelled `benign` left out) or an
/// isolations.csv (`combination` column).
fn load_dictionary(cx: &ParseCx, path: &Path) -> Result<Vec<Vec<String>>, InputError> {
    let mut rdr = csv::Reader::from_path(path).map_err(|e| {
        InputError::new(path, format!("cannot read the dictionary: {e}"))
            .hint("paths are relative to the spec file")
    })?;
    let headers = rdr
        .headers()
        .map_err(|e| InputError::new(path, format!("malformed header: {e}")).line(1))?
        .clone();
    let mut out: Vec<Vec<String>> = Vec::new();
    let mut push = |parts: Vec<String>| {
        if !parts.is_empty() && !out.contains(&parts) {
            out.push(parts);
        }
    };
    if let Some(c) = headers.iter().position(|h| h.trim() == "combination") {
        for rec in rdr.records() {
            let rec = rec.map_err(|e| InputError::new(path, format!("malformed row: {e}")))?;
            push(
                rec.get(c)
                    .unwrap_or("")
                    .split('+')
                    .map(|p| p.trim().to_string())
                    .filter(|p| !p.is_empty())
                    .collect(),
            );
        }
    } else if headers.iter().any(|h| h.trim() == "keyword") {
        let keywords = load_keywords(path, 0, &[], &[]).map_err(|err| {
            if err.path == path {
                err
            } else {
                cx.err("dictionary", err.message)
            }
        })?;
        for k in keywords.into_iter().filter(|k| k.label != "benign") {
            push(k.parts);
        }
    } else {
        return Err(InputError::new(
            path,
            "a dictionary needs a `keyword` or a `combination` column",
        )
        .line(1)
        .hint("give a keyword file (corpus/keywords.csv format) or an isolations.csv"));
    }
    Ok(out)
}

impl Isolate {
    fn trial_id(&self, text: &Text, k: usize, rep: u32) -> String {
        format!("{}/{}/q{k}/r{rep}", self.common.name, text.id)
    }

    /// Test `k` (1-based) of `text`, replicate `rep`: `q`'s message.
    fn ask(&self, text: &Text, rep: u32, k: usize, q: &Query) -> Trial {
        let id = self.trial_id(text, k, rep);
        let words = q.message(text.isolator.text(), &self.separator);
        let mut s = send_text(&id, &self.common.test_chat, words);
        s.item_id = text.id.clone();
        let parameter = format!("{} {}", q.step.name(), q.ranges());
        let mut t = trial(id, self, None, parameter, vec![s]);
        t.keyword = Some(Keyword {
            parts: Vec::new(),
            label: text.label.clone(),
            topic: text.topic.clone(),
        });
        t
    }

    /// Replay `text`, replicate `rep`, from what the experiment observed:
    /// its own finished tests answer it first; a message sent before (for
    /// any text: the filter judges content) is not sent again; a message
    /// in flight for another text, or that a text earlier in this call
    /// asks for (`claimed`), is waited for.
    fn replay(
        &self,
        text: &Text,
        rep: u32,
        obs: &Observed,
        claimed: &mut HashSet<(u32, String)>,
    ) -> Replayed {
        let mut need: Option<(usize, Query, bool)> = None;
        let mut whole: Option<bool> = None;
        let mut sent_here = 0u32;
        let next = text.isolator.next_with(|i, q| {
            let id = self.trial_id(text, i + 1, rep);
            let answer = if let Some(v) = obs.verdicts.get(id.as_str()) {
                sent_here += 1;
                Some((answer_of(*v), true))
            } else if obs.planned.contains(id.as_str()) {
                None // its own test is running
            } else {
                let m = q.message(text.isolator.text(), &self.separator);
                match obs.answers.get(&(rep, m.as_str())) {
                    Some(a) => Some((*a, false)),
                    None => {
                        let ask = !obs.in_flight.contains(&(rep, m.as_str()))
                            && !claimed.contains(&(rep, m.clone()));
                        if ask {
                            claimed.insert((rep, m));
                        }
                        need = Some((i + 1, q.clone(), ask));
                        None
                    }
                }
            };
            if let (Some((a, _)), Step::Whole, None) = (answer, q.step, whole) {
                if a != Answer::Inconclusive {
                    whole = Some(a == Answer::Blocked);
                }
            }
            answer
        });
        match next {
            Next::Done(iso) => Replayed::Done(iso, whole),
            Next::Send(_) => match need {
                Some((k, q, true)) => Replayed::Ask(k, q),
                _ => Replayed::Wait(sent_here, whole),
            },
        }
    }
}

/// Where a text's replay stands.
enum Replayed {
    /// Finished (and whether the whole text was blocked, if known).
    Done(Isolation, Option<bool>),
    /// Its `k`-th test (1-based) is to be asked.
    Ask(usize, Query),
    /// Waiting for a test in flight (sends so far; the whole text's answer).
    Wait(u32, Option<bool>),
}

/// A test's answer from its trial's verdict.
fn answer_of(verdict: Verdict) -> Answer {
    match verdict {
        Verdict::Blocked => Answer::Blocked,
        Verdict::Evaded => Answer::Delivered,
        _ => Answer::Inconclusive,
    }
}

/// What an experiment has observed, for replaying its texts.
struct Observed<'a> {
    /// Verdicts of finished trials, by trial id.
    verdicts: HashMap<&'a str, Verdict>,
    /// Every trial asked for, by id.
    planned: HashSet<&'a str>,
    /// The first conclusive answer to each message of a replicate (a
    /// replicate measures again: it shares no answer with another), in plan
    /// order.
    answers: HashMap<(u32, &'a str), Answer>,
    /// Messages of trials asked for and not finished, by replicate.
    in_flight: HashSet<(u32, &'a str)>,
}

/// The replicate a trial id ends with (`…/rR`).
fn replicate_of(id: &str) -> u32 {
    id.rsplit('/')
        .next()
        .and_then(|r| r.strip_prefix('r'))
        .and_then(|r| r.parse().ok())
        .unwrap_or(1)
}

impl<'a> Observed<'a> {
    fn new(seen: &'a [Finished<'a>], planned: &[&'a Trial]) -> Observed<'a> {
        let verdicts: HashMap<&str, Verdict> = seen
            .iter()
            .map(|f| (f.trial.trial_id.as_str(), f.verdict))
            .collect();
        let words = |t: &'a Trial| {
            t.sends.first().and_then(|s| match &s.content {
                Content::Text(w) => Some(w.as_str()),
                _ => None,
            })
        };
        let mut answers = HashMap::new();
        for f in seen {
            if let (Some(m), a) = (words(f.trial), answer_of(f.verdict)) {
                if a != Answer::Inconclusive {
                    answers
                        .entry((replicate_of(&f.trial.trial_id), m))
                        .or_insert(a);
                }
            }
        }
        let in_flight = planned
            .iter()
            .filter(|t| !verdicts.contains_key(t.trial_id.as_str()))
            .filter_map(|t| Some((replicate_of(&t.trial_id), words(t)?)))
            .collect();
        Observed {
            planned: planned.iter().map(|t| t.trial_id.as_str()).collect(),
            verdicts,
            answers,
            in_flight,
        }
    }
}

impl Experiment for Isolate {
    fn common(&self) -> &Common {
        &self.common
    }

    fn max_sends(&self) -> u64 {
        self.texts.len() as u64 * self.common.replicates as u64 * self.budget as u64
    }

    fn first_trials(&self, _rng: &mut ChaCha8Rng) -> Vec<Trial> {
        let mut out = Vec::new();
        for rep in 1..=self.common.replicates {
            for text in &self.texts {
                if let Next::Send(q) = text.isolator.next(&[]) {
                    out.push(self.ask(text, rep, 1, &q));
                }
            }
        }
        out
    }

    fn adaptive(&self) -> bool {
        true
    }

    fn next_trials(&self, seen: &[Finished<'_>], planned: &[&Trial]) -> Vec<Trial> {
        let obs = Observed::new(seen, planned);
        let mut claimed = HashSet::new();
        let mut out = Vec::new();
        for rep in 1..=self.common.replicates {
            for text in &self.texts {
                if let Replayed::Ask(k, q) = self.replay(text, rep, &obs, &mut claimed) {
                    out.push(self.ask(text, rep, k, &q));
                }
            }
        }
        out
    }

    fn verdict(&self, _t: &Trial, o: &TrialOutcomes) -> TrialVerdict {
        blocked_or_evaded(o, true, None)
    }

    fn run_tables(&self, run_id: &str, seen: &[Finished<'_>], planned: &[&Trial]) -> Vec<RunTable> {
        let obs = Observed::new(seen, planned);
        let mut rows = Vec::new();
        for rep in 1..=self.common.replicates {
            for text in &self.texts {
                let replayed = self.replay(text, rep, &obs, &mut HashSet::new());
                let whole = match &replayed {
                    Replayed::Done(_, w) | Replayed::Wait(_, w) => *w,
                    Replayed::Ask(..) => None,
                }
                .map_or(String::new(), |b| crate::dataset::bool_cell(b).to_string());
                let row = |combination: &str,
                           positions: &str,
                           parts: &str,
                           verified: &str,
                           known: &str,
                           sends: usize,
                           incomplete: &str| {
                    vec![
                        run_id.to_string(),
                        self.common.name.clone(),
                        text.id.clone(),
                        rep.to_string(),
                        text.label.clone(),
                        text.topic.clone(),
                        whole.clone(),
                        combination.to_string(),
                        positions.to_string(),
                        parts.to_string(),
                        sends.to_string(),
                        verified.to_string(),
                        known.to_string(),
                        incomplete.to_string(),
                    ]
                };
                let iso: Isolation = match replayed {
                    Replayed::Done(iso, _) => iso,
                    Replayed::Wait(sends, _) => {
                        rows.push(row("", "", "", "", "", sends as usize, UNFINISHED));
                        continue;
                    }
                    Replayed::Ask(k, _) => {
                        let sends = (1..k)
                            .filter(|j| {
                                obs.verdicts
                                    .contains_key(self.trial_id(text, *j, rep).as_str())
                            })
                            .count();
                        rows.push(row("", "", "", "", "", sends, UNFINISHED));
                        continue;
                    }
                };
                let incomplete = iso
                    .incomplete
                    .as_ref()
                    .map(|i| i.to_string())
                    .unwrap_or_default();
                let sends = iso.sends as usize;
                if iso.combinations.is_empty() {
                    rows.push(row("", "", "", "", "", sends, &incomplete));
                }
                for c in &iso.combinations {
                    let positions: Vec<String> = c
                        .parts
                        .iter()
                        .map(|f| format!("{}-{}", f.start, f.end))
                        .collect();
                    rows.push(row(
                        &c.texts(text.isolator.text()).join("+"),
                        &positions.join("+"),
                        &c.parts.len().to_string(),
                        crate::dataset::bool_cell(c.verified),
                        crate::dataset::bool_cell(c.known),
                        sends,
                        &incomplete,
                    ));
                }
            }
        }
        vec![RunTable {
            file: "isolations.csv",
            header: &ISOLATION_COLUMNS,
            rows,
        }]
    }
}

/// The `incomplete` of a text whose isolation had not ended when the table
/// was written.
const UNFINISHED: &str =
    "not finished: the run stopped (or is still running) before its isolation ended";

/// The analysis: the isolations.csv of every run folder analysed, and a
/// summary.
#[derive(Default)]
struct Isolations {
    rows: Vec<Vec<String>>,
}

impl super::analysis::Analysis for Isolations {
    fn folder(&mut self, dir: &Path) -> Result<(), InputError> {
        let path = dir.join("isolations.csv");
        if !path.is_file() {
            return Ok(());
        }
        let mut rdr = csv::Reader::from_path(&path)
            .map_err(|e| InputError::new(&path, format!("cannot read: {e}")))?;
        let header = rdr
            .headers()
            .map_err(|e| InputError::new(&path, format!("malformed header: {e}")).line(1))?;
        if header.iter().ne(ISOLATION_COLUMNS) {
            return Err(
                InputError::new(&path, "not the columns of an isolations.csv")
                    .line(1)
                    .hint("its columns are listed in docs/DATASET.md"),
            );
        }
        for rec in rdr.records() {
            let rec = rec.map_err(|e| {
                let line = e.position().map_or(0, |p| p.line());
                InputError::new(&path, format!("malformed row: {e}")).line(line)
            })?;
            self.rows.push(rec.iter().map(String::from).collect());
        }
        Ok(())
    }

    fn finish(
        self: Box<Self>,
        _interval: crate::stats::Interval,
    ) -> Vec<crate::dataset::tables::Table> {
        let col = |name: &str| {
            ISOLATION_COLUMNS
                .iter()
                .position(|c| *c == name)
                .expect("a column")
        };
        let key = |r: &Vec<String>| {
            (
                r[col("run_id")].clone(),
                r[col("experiment_name")].clone(),
                r[col("text_id")].clone(),
                r[col("replicate")].clone(),
            )
        };
        let mut texts: Vec<(String, String, String, String)> = Vec::new();
        let (mut blocked, mut incomplete, mut extra_sends) = (0u64, 0u64, 0u64);
        let (mut found, mut verified, mut known) = (0u64, 0u64, 0u64);
        for r in &self.rows {
            let k = key(r);
            let first = !texts.contains(&k);
            if first {
                texts.push(k);
                blocked += u64::from(
                    crate::dataset::parse_bool_cell(&r[col("text_blocked")]) == Some(true),
                );
                incomplete += u64::from(!r[col("incomplete")].is_empty());
                // Sends after the first whole-text test.
                let sends: u64 = r[col("sends")].parse().unwrap_or(0);
                extra_sends += sends.saturating_sub(1);
            }
            if !r[col("combination")].is_empty() {
                found += 1;
                verified +=
                    u64::from(crate::dataset::parse_bool_cell(&r[col("verified")]) == Some(true));
                known += u64::from(crate::dataset::parse_bool_cell(&r[col("known")]) == Some(true));
            }
        }
        let mut summary = Vec::new();
        if !texts.is_empty() {
            summary.push(format!(
                "Isolation: {} of {} texts were blocked whole; {found} keyword combinations were found in them ({verified} verified, {known} from the dictionary), with {extra_sends} sends after the whole-text tests{}.{}",
                blocked,
                texts.len(),
                if found > 0 {
                    format!(" ({:.1} a combination)", extra_sends as f64 / found as f64)
                } else {
                    String::new()
                },
                if incomplete > 0 {
                    format!(" {incomplete} texts are incomplete (see the `incomplete` column).")
                } else {
                    String::new()
                }
            ));
        }
        vec![crate::dataset::tables::Table {
            file: "isolations.csv".into(),
            title: "Isolated keyword combinations".into(),
            about: "Each row is one keyword combination found in a text (design isolate), or a text in which none was found: its parts joined by + in text order, their character positions, the sends the text used (the whole-text test included), whether the combination was verified (alone blocked, without any one part delivered) and whether it came from the dictionary. incomplete says why a text's isolation could not finish.".into(),
            header: ISOLATION_COLUMNS.iter().map(|h| h.to_string()).collect(),
            rows: self.rows,
            summary,
            figures: Vec::new(),
            section: None,
        }]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    /// Runs `x` as the scheduler would, under a filter that blocks a
    /// message holding every part of a rule in one fragment each. Between
    /// two asks, `mode` 0 finishes the oldest trial in flight (the others
    /// stay in flight), 1 finishes every trial in flight, 2 finishes the
    /// oldest of replicate 1 while it has any (replicate 2 waits). Returns
    /// the trials sent, with their verdicts, and isolations.csv's rows.
    fn drive(x: &Isolate, rules: &[Vec<&str>], mode: u8) -> (Vec<Trial>, Vec<Vec<String>>) {
        use rand::SeedableRng;
        let mut planned: Vec<Trial> = x.first_trials(&mut ChaCha8Rng::seed_from_u64(1));
        let mut verdicts: Vec<Option<Verdict>> = vec![None; planned.len()];
        let verdict = |t: &Trial| {
            let Content::Text(w) = &t.sends[0].content else {
                panic!("isolate sends texts")
            };
            let frags: Vec<&str> = w.split(x.separator.as_str()).collect();
            let b = rules
                .iter()
                .any(|r| r.iter().all(|p| frags.iter().any(|f| f.contains(p))));
            if b {
                Verdict::Blocked
            } else {
                Verdict::Evaded
            }
        };
        loop {
            let open: Vec<usize> = (0..planned.len())
                .filter(|i| verdicts[*i].is_none())
                .collect();
            let pick: Vec<usize> = match mode {
                0 => open.into_iter().take(1).collect(),
                1 => open,
                _ => {
                    let first = open
                        .iter()
                        .copied()
                        .find(|i| planned[*i].trial_id.ends_with("/r1"));
                    first.or(open.first().copied()).into_iter().collect()
                }
            };
            for i in pick {
                verdicts[i] = Some(verdict(&planned[i]));
            }
            let new: Vec<Trial> = {
                let seen: Vec<Finished> = planned
                    .iter()
                    .zip(&verdicts)
                    .filter_map(|(trial, v)| v.map(|verdict| Finished { trial, verdict }))
                    .collect();
                let refs: Vec<&Trial> = planned.iter().collect();
                x.next_trials(&seen, &refs)
                    .into_iter()
                    .filter(|t| !planned.iter().any(|p| p.trial_id == t.trial_id))
                    .collect()
            };
            if new.is_empty() && verdicts.iter().all(Option::is_some) {
                break;
            }
            verdicts.extend(new.iter().map(|_| None));
            planned.extend(new);
        }
        let seen: Vec<Finished> = planned
            .iter()
            .zip(&verdicts)
            .map(|(trial, v)| Finished {
                trial,
                verdict: v.expect("all finished"),
            })
            .collect();
        let refs: Vec<&Trial> = planned.iter().collect();
        let rows = x.run_tables("run", &seen, &refs).remove(0).rows;
        (planned.clone(), rows)
    }

    #[test]
    fn a_message_is_sent_once_a_replicate_whatever_the_concurrency() {
        let chat = crate::probe::chat::Chat {
            from: "a".into(),
            target: crate::platform::Target::Direct("c".into()),
            observer: "c".into(),
        };
        let texts = [
            "今天天气很好，六四那天我们去公园散步，回家吃饭。",
            "习近平和小熊维尼，还有六四，都是敏感的词语。",
            "六四，六四，一九八九年六四，广场上的烛光。",
            "习近平在北京开会，小熊维尼也来了，后来下雨了。",
        ];
        let rules = vec![vec!["六四"], vec!["习近平", "小熊维尼"]];
        let x = Isolate {
            common: Common {
                design: DESIGN.name,
                name: "x".into(),
                test_chat: chat,
                replicates: 2,
            },
            texts: texts
                .iter()
                .enumerate()
                .map(|(i, t)| Text {
                    id: format!("t{i}"),
                    label: String::new(),
                    topic: String::new(),
                    isolator: Isolator::new(t, Vec::new()),
                })
                .collect(),
            separator: SEPARATOR.into(),
            budget: 300,
        };
        let found = |rows: &[Vec<String>]| -> Vec<(String, String, String, String)> {
            let mut v: Vec<_> = rows
                .iter()
                .map(|r| (r[2].clone(), r[3].clone(), r[7].clone(), r[13].clone()))
                .collect();
            v.sort();
            v
        };
        // Each text alone, as if nothing were shared: the sends it needs.
        let alone: u32 = texts
            .iter()
            .map(|t| {
                let iso = Isolator::new(t, Vec::new());
                let mut answers = Vec::new();
                loop {
                    match iso.next(&answers) {
                        Next::Send(q) => {
                            let m = q.message(iso.text(), SEPARATOR);
                            let frags: Vec<&str> = m.split(SEPARATOR).collect();
                            let b = rules
                                .iter()
                                .any(|r| r.iter().all(|p| frags.iter().any(|f| f.contains(p))));
                            answers.push(if b {
                                Answer::Blocked
                            } else {
                                Answer::Delivered
                            });
                        }
                        Next::Done(i) => return i.sends,
                    }
                }
            })
            .sum();
        let mut results = Vec::new();
        for mode in [0, 1, 2] {
            let (sent, rows) = drive(&x, &rules, mode);
            let mut per_rep = Vec::new();
            // Every text finished, with the combinations present.
            let f = found(&rows);
            assert!(f.iter().all(|r| r.3.is_empty()), "{f:?}");
            for rep in ["1", "2"] {
                let mine: Vec<&(String, String, String, String)> =
                    f.iter().filter(|r| r.1 == rep).collect();
                let combos: Vec<&str> = mine.iter().map(|r| r.2.as_str()).collect();
                assert_eq!(
                    combos,
                    ["六四", "习近平+小熊维尼", "六四", "六四", "习近平+小熊维尼"],
                    "{mine:?}"
                );
                // A message is sent once a replicate, and each replicate
                // sends its own.
                let words: Vec<String> = sent
                    .iter()
                    .filter(|t| t.trial_id.ends_with(&format!("/r{rep}")))
                    .map(|t| match &t.sends[0].content {
                        Content::Text(w) => w.clone(),
                        _ => unreachable!(),
                    })
                    .collect();
                let distinct: HashSet<&String> = words.iter().collect();
                assert_eq!(distinct.len(), words.len(), "mode {mode}: {words:#?}");
                assert!(!words.is_empty());
                assert!(
                    (words.len() as u32) < alone,
                    "{} sends shared, {alone} alone",
                    words.len()
                );
                let mut words = words;
                words.sort();
                per_rep.push(words);
            }
            // Each replicate sends every message it needs itself.
            assert_eq!(per_rep[0], per_rep[1], "mode {mode}");
            results.push(f);
        }
        assert_eq!(results[0], results[1]);
        assert_eq!(results[0], results[2]);
    }

    #[test]
    fn texts_load_from_lines_and_from_a_csv() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            "t.txt",
            "\u{feff}天气 很好\n\n习近平  和\t小熊维尼\n",
        );
        let t = load_texts(&p).unwrap();
        assert_eq!(
            t.iter()
                .map(|t| (t.id.as_str(), t.text.as_str()))
                .collect::<Vec<_>>(),
            [("line1", "天气 很好"), ("line3", "习近平 和 小熊维尼")]
        );
        let p = write(
            dir.path(),
            "t.csv",
            "id,text,label\na1,\"one\ntwo\",sensitive\nb2,three,benign\n",
        );
        let t = load_texts(&p).unwrap();
        assert_eq!(t[0].text, "one two");
        assert_eq!(t[0].label, "sensitive");
        assert_eq!(t[1].id, "b2");
    }

    #[test]
    fn bad_texts_name_the_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            ("a.csv", "id,text\nx,ok\nx,again\n", ":3", "two texts"),
            ("b.csv", "id,words\nx,ok\n", ":1", "`id` and `text`"),
            ("c.csv", "id,text\nx y,ok\n", ":2", "not a valid text id"),
            ("d.txt", "ok\nbad ┼ text\n", ":2", "box-drawing"),
            ("e.txt", "\n\n", "", "no text"),
        ];
        for (name, body, line, what) in cases {
            let p = write(dir.path(), name, body);
            let e = load_texts(&p).unwrap_err().to_string();
            assert!(
                e.contains(name) && e.contains(line) && e.contains(what),
                "{name}: {e}"
            );
        }
        let long = "字".repeat(MAX_TEXT_CHARS + 1);
        let p = write(dir.path(), "f.txt", &long);
        assert!(load_texts(&p).unwrap_err().to_string().contains("split it"));
    }
}
