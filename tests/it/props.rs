//! Rules that hold for all inputs, checked on many generated ones
//! (proptest): a journal cut anywhere by a crash reads as the records
//! written whole before the cut; a threshold search against any monotone
//! filter brackets the filter's cut, live or replayed; the messages new in
//! a chat view are exactly those added since the earlier look.

use std::collections::HashSet;

use chatprobe::platform::{new_since, Seen};
use chatprobe::probe::plan::Trial;
use chatprobe::probe::{Plan, Spec};
use chatprobe::run::journal::{self, Journal, Record};
use proptest::prelude::*;

use crate::run::Campaign;

fn not_sent(id: &str, attempt: u32) -> Record {
    Record::NotSent {
        send_id: id.to_string(),
        attempt,
        at: chrono::DateTime::from_timestamp(1_700_000_000 + i64::from(attempt), 0).unwrap(),
    }
}

/// Only the last line can be cut by a crash: a damaged record anywhere
/// else (an intent lost there would be sent again on resume) is refused,
/// naming its line; a torn line an earlier version left before a resume's
/// start record is still read past.
#[test]
fn a_damaged_record_in_the_middle_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut j = Journal::open(dir.path()).unwrap();
        for i in 1..=3 {
            j.append(&not_sent("s", i)).unwrap();
        }
    }
    let path = dir.path().join(journal::JOURNAL_FILE);
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let start = journal::line_of(&Record::Start {
        at: chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
        run_id: "r".into(),
        resume: true,
        platform: "p".into(),
        base_url: None,
        version: "0".into(),
    })
    .unwrap();
    let start = std::str::from_utf8(&start).unwrap();
    for (second, ok) in [
        (&lines[1][..20], false), // torn, then a record
        (&lines[1].replace("not_sent", "nut_sent")[..], false), // whole but garbled
        ("{\"event\":\"int", true), // torn, then a start
    ] {
        let third = if ok { start } else { lines[2] };
        std::fs::write(&path, format!("{}\n{second}\n{third}\n", lines[0])).unwrap();
        let r = journal::read(dir.path());
        if ok {
            assert_eq!(r.unwrap().len(), 2, "{second}");
        } else {
            let e = r.unwrap_err().to_string();
            assert!(
                e.contains(":2") && e.contains("damaged record"),
                "{second}: {e}"
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any prefix of the journal's bytes (a crash mid-write) reads without
    /// error as the records written whole before the cut; the next start
    /// drops the torn line and appends after the whole ones.
    #[test]
    fn a_journal_cut_anywhere_reads_as_its_whole_records(
        ids in prop::collection::vec(r#"[a-z0-9/{}"\\\x{4e00}-\x{4e20}-]{1,20}"#, 1..12),
        cut_at in 0.0f64..1.0,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let records: Vec<Record> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| not_sent(id, i as u32 + 1))
            .collect();
        {
            let mut j = Journal::open(dir.path()).unwrap();
            for r in &records {
                j.append(r).unwrap();
            }
        }
        let path = dir.path().join(journal::JOURNAL_FILE);
        let bytes = std::fs::read(&path).unwrap();
        let cut = (bytes.len() as f64 * cut_at) as usize;
        std::fs::write(&path, &bytes[..cut]).unwrap();
        // A record is whole once its closing brace is in (its newline may
        // not be).
        let whole = bytes
            .iter()
            .enumerate()
            .filter(|(i, b)| **b == b'\n' && *i <= cut)
            .count();
        let read = journal::read(dir.path()).unwrap();
        prop_assert_eq!(&read[..], &records[..whole]);
        {
            let mut j = Journal::open(dir.path()).unwrap();
            j.append(&not_sent("after", 99)).unwrap();
        }
        let again = journal::read(dir.path()).unwrap();
        prop_assert_eq!(&again[..whole], &records[..whole]);
        prop_assert_eq!(&again[whole..], &[not_sent("after", 99)][..]);
    }

    /// Against a filter that blocks crops below `cut` (monotone), every
    /// step is the midpoint of what the earlier verdicts left, the nearest
    /// blocked and evading steps bracket `cut`, and a replay with every
    /// verdict known asks for the same trials.
    #[test]
    fn a_threshold_search_brackets_any_monotone_cut(
        cut1 in 0.001f64..0.499,
        cut2 in 0.001f64..0.499,
    ) {
        SPEC.with(|spec| search_brackets(&spec.1, cut1, cut2))?;
    }

    /// The messages new since an earlier look: those whose ids the earlier
    /// look lacked, in order, whatever else scrolled away meanwhile.
    #[test]
    fn new_since_gives_exactly_the_added_messages(
        kept in prop::collection::vec(any::<bool>(), 1..20),
        added in 0usize..10,
    ) {
        let seen = |id: usize| Seen { id: Some(format!("m{id}")), text: Some(format!("t{id}")), ..Seen::default() };
        let before: Vec<Seen> = (0..kept.len()).map(seen).collect();
        let mut now: Vec<Seen> = (0..kept.len()).filter(|i| kept[*i]).map(seen).collect();
        now.extend((kept.len()..kept.len() + added).map(seen));
        let new: Vec<Option<String>> = new_since(&before, now).into_iter().map(|m| m.id).collect();
        let want: Vec<Option<String>> = (kept.len()..kept.len() + added).map(|i| Some(format!("m{i}"))).collect();
        prop_assert_eq!(new, want);
    }
}

fn search_brackets(spec: &Spec, cut1: f64, cut2: f64) -> Result<(), TestCaseError> {
    let cut = |t: &Trial| if t.item_id() == "img-s01" { cut1 } else { cut2 };
    let judge = |t: &Trial| {
        if crop(t) < cut(t) {
            chatprobe::dataset::Verdict::Blocked
        } else {
            chatprobe::dataset::Verdict::Evaded
        }
    };
    let mut live = Plan::build(spec);
    let mut done: HashSet<String> = HashSet::new();
    while let Some(t) = live.trials.iter().find(|t| !done.contains(&t.trial_id)) {
        done.insert(t.trial_id.clone());
        live.grow(|_, t| done.contains(&t.trial_id).then(|| judge(t)));
    }
    for item in ["img-s01", "img-s02"] {
        let steps: Vec<&Trial> = live.trials.iter().filter(|t| t.item_id() == item).collect();
        prop_assert_eq!(steps.len(), 4);
        let (mut lo, mut hi) = (0.0f64, 0.5f64);
        for t in &steps {
            prop_assert_eq!(crop(t), (lo + hi) / 2.0);
            if judge(t) == chatprobe::dataset::Verdict::Blocked {
                lo = crop(t)
            } else {
                hi = crop(t)
            }
        }
        let c = cut(steps[0]);
        prop_assert!(lo < c && c <= hi, "{} not in ({}, {}]", c, lo, hi);
        prop_assert!(hi - lo <= 0.5 / 16.0 + 1e-12);
    }
    let mut replay = Plan::build(spec);
    replay.grow(|_, t| done.contains(&t.trial_id).then(|| judge(t)));
    let ids = |p: &Plan| {
        let mut v: Vec<String> = p
            .trials
            .iter()
            .map(|t| t.trial_id.clone() + &t.parameter)
            .collect();
        v.sort();
        v
    };
    prop_assert_eq!(ids(&live), ids(&replay));
    Ok(())
}

/// The crop fraction a threshold trial tests.
fn crop(t: &Trial) -> f64 {
    t.parameter.strip_prefix("crop:").unwrap().parse().unwrap()
}

thread_local! {
    /// A spec with two four-step crop searches between 0 and 0.5 (made once
    /// per thread: it indexes a corpus).
    static SPEC: (Campaign, Spec) = {
        let c = Campaign::new("1.0", "", crate::design::THRESHOLD);
        let spec = Spec::load(&c.spec).unwrap();
        (c, spec)
    };
}

/// A generated isolation case: a text, its rules, and the rules present.
#[derive(Debug)]
struct IsolationCase {
    text: String,
    rules: Vec<Vec<String>>,
    /// The present rules' parts, each sorted.
    present: Vec<Vec<String>>,
}

/// A text of 100–2,000 filler characters with 1–3 rules of 1–4 parts (2–6
/// characters) planted in it: some parts of a rule overlap in the text (the
/// next part starts with the last character of the one before), some parts
/// also appear a second time elsewhere. Parts are CJK, the filler ASCII, so
/// a part occurs only where it was planted; `None` when occurrences of two
/// rules' parts would overlap (that case is drawn again).
fn isolation_case(seed: u64) -> Option<IsolationCase> {
    use rand::seq::{IndexedRandom, SliceRandom};
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let cjk: Vec<char> = (0x4e00u32..0x4e00 + 200)
        .filter_map(char::from_u32)
        .collect();
    let mut parts_seen: Vec<String> = Vec::new();
    let mut fresh = |rng: &mut rand_chacha::ChaCha8Rng, lead: Option<char>| -> String {
        loop {
            let len = rng.random_range(2..=6);
            let mut p: String = lead.into_iter().collect();
            while p.chars().count() < len {
                p.push(*cjk.choose(rng).unwrap());
            }
            let clash = parts_seen
                .iter()
                .any(|o| o.contains(&p) || p.contains(o.as_str()));
            if !clash {
                parts_seen.push(p.clone());
                return p;
            }
        }
    };
    let n_rules = rng.random_range(1..=3);
    let mut rules: Vec<Vec<String>> = Vec::new();
    // Blocks to insert: (rule, text).
    let mut blocks: Vec<(usize, String)> = Vec::new();
    for r in 0..n_rules {
        let k = rng.random_range(1..=4);
        let mut rule: Vec<String> = Vec::new();
        let mut i = 0;
        while i < k {
            let p = fresh(&mut rng, None);
            if i + 1 < k && rng.random_bool(0.3) {
                // The next part starts with this one's last character.
                let q = fresh(&mut rng, p.chars().last());
                let mut block = p.clone();
                block.extend(q.chars().skip(1));
                blocks.push((r, block));
                rule.push(p);
                rule.push(q);
                i += 2;
            } else {
                blocks.push((r, p.clone()));
                rule.push(p);
                i += 1;
            }
        }
        if rng.random_bool(0.3) {
            let again = rule.choose(&mut rng).unwrap().clone();
            blocks.push((r, again));
        }
        rules.push(rule);
    }
    let len = rng.random_range(100..=2000);
    let filler: Vec<char> = (0..len)
        .map(|_| rng.random_range(b'a'..=b'z') as char)
        .collect();
    // Distinct insertion points, so that filler separates every two blocks.
    let mut at: Vec<usize> = Vec::new();
    while at.len() < blocks.len() {
        let p = rng.random_range(1..len);
        if !at.contains(&p) {
            at.push(p);
        }
    }
    at.sort_unstable();
    blocks.shuffle(&mut rng);
    let mut text = String::new();
    let mut from = 0;
    for (p, (_, b)) in at.iter().zip(&blocks) {
        text.extend(&filler[from..*p]);
        text.push_str(b);
        from = *p;
    }
    text.extend(&filler[from..]);
    // Occurrences of different rules' parts must not overlap.
    let chars: Vec<char> = text.chars().collect();
    let mut spans: Vec<(usize, usize, usize)> = Vec::new();
    for (r, rule) in rules.iter().enumerate() {
        for p in rule {
            let pc: Vec<char> = p.chars().collect();
            for (s, w) in chars.windows(pc.len()).enumerate() {
                if w == &pc[..] {
                    spans.push((r, s, s + pc.len()));
                }
            }
        }
    }
    for a in &spans {
        for b in &spans {
            if a.0 != b.0 && a.1 < b.2 && b.1 < a.2 {
                return None;
            }
        }
    }
    let present = rules
        .iter()
        .filter(|r| r.iter().all(|p| text.contains(p.as_str())))
        .map(|r| {
            let mut r = r.clone();
            r.sort();
            r
        })
        .collect();
    Some(IsolationCase {
        text,
        rules,
        present,
    })
}

/// Drive an isolation against the rules (a message is blocked when every
/// part of a rule lies in one of its fragments).
fn isolate_against(
    case: &IsolationCase,
    dictionary: Vec<Vec<String>>,
) -> chatprobe::probe::isolate::Isolation {
    use chatprobe::probe::isolate::{Answer, Isolator, Next};
    let mut iso = Isolator::new(&case.text, dictionary);
    // A broken search fails here fast instead of spending the default budget.
    iso.budget = 300;
    let mut answers = Vec::new();
    loop {
        match iso.next(&answers) {
            Next::Send(q) => {
                let m = q.message(iso.text(), "|");
                let blocked = case.rules.iter().any(|r| {
                    r.iter()
                        .all(|p| m.split('|').any(|f| f.contains(p.as_str())))
                });
                answers.push(if blocked {
                    Answer::Blocked
                } else {
                    Answer::Delivered
                });
            }
            Next::Done(i) => return i,
        }
    }
}

proptest! {
    // No shrinking: a case is made from a seed, and a nearby seed is
    // another case, no simpler; the failing seed is printed.
    #![proptest_config(ProptestConfig { cases: 200, max_shrink_iters: 0, ..ProptestConfig::default() })]

    /// Every planted combination present in the text is found, verified,
    /// and nothing else is reported; with or without a dictionary that
    /// knows some of the rules, or only their parts.
    #[test]
    fn isolation_finds_exactly_the_planted_combinations(seed in any::<u64>(), know in 0usize..4) {
        let case = isolation_case(seed);
        prop_assume!(case.is_some());
        let case = case.unwrap();
        // 0–2: the first rules, as rules; 3: every part as a keyword of its
        // own, as keyword lists give them (how they combine unknown).
        let dictionary: Vec<Vec<String>> = if know < 3 {
            case.rules.iter().take(know).cloned().collect()
        } else {
            case.rules.iter().flatten().map(|p| vec![p.clone()]).collect()
        };
        let i = isolate_against(&case, dictionary);
        prop_assert!(i.incomplete.is_none(), "{:?}", i.incomplete);
        prop_assert!(i.blocked);
        let chars: Vec<char> = case.text.chars().collect();
        let mut found: Vec<Vec<String>> = i
            .combinations
            .iter()
            .map(|c| {
                let mut t = c.texts(&chars);
                t.sort();
                t
            })
            .collect();
        found.sort();
        let mut present = case.present.clone();
        present.sort();
        prop_assert_eq!(&found, &present, "rules {:?}", case.rules);
        prop_assert!(i.combinations.iter().all(|c| c.verified));
    }
}

/// Set `path` (dotted; `[]` is the first table of an array, or, last, a
/// list of one value) in `t`.
fn set_at(t: &mut toml::Table, path: &str, v: toml::Value) {
    let (head, rest) = match path.split_once('.') {
        Some((h, r)) => (h, Some(r)),
        None => (path, None),
    };
    match (head.strip_suffix("[]"), rest) {
        (Some(name), Some(r)) => {
            let a = t.entry(name).or_insert_with(|| {
                toml::Value::Array(vec![toml::Value::Table(Default::default())])
            });
            let first = a.as_array_mut().unwrap()[0].as_table_mut().unwrap();
            set_at(first, r, v);
        }
        (Some(name), None) => {
            t.insert(name.to_string(), toml::Value::Array(vec![v]));
        }
        (None, Some(r)) => {
            let sub = t
                .entry(head)
                .or_insert_with(|| toml::Value::Table(Default::default()));
            set_at(sub.as_table_mut().unwrap(), r, v);
        }
        (None, None) => {
            t.insert(head.to_string(), v);
        }
    }
}

type Loader = Box<dyn Fn(&std::path::Path) -> Result<(), chatprobe::error::InputError>>;
/// A file kind for the bad-input table: its name, a valid sample, its
/// declared keys (full paths) and its loader.
type Kind = (
    String,
    std::path::PathBuf,
    Vec<(String, chatprobe::ranges::Range)>,
    Loader,
);

/// One experiment of each design, for [`every_declared_key_refuses_every_value_outside_its_range`].
/// A collision pair needs two files with one MD5, which the starter
/// corpus has not: that sample fails on `pairs` alone.
const DESIGN_SAMPLES: &[(&str, &str)] = &[
    ("surveillance", "items = { id = [\"img-s01\"] }\ndelay_s = 4"),
    ("latency", "items = { id = [\"img-s05\"] }\noffsets_s = [0.2, 5]"),
    ("transform", "items = { id = [\"img-s04\"] }\ndelay_s = 4\ntransforms = [\"mirror\"]"),
    ("keyword", "keywords = \"../corpus/keywords.csv\"\nitems = { topic = [\"june4\"] }\ncombinations = 1"),
    ("expiry", "items = { id = [\"doc-s01\"] }\ndelay_s = 8\nretest_every_s = 14\nretests = 2"),
    ("collision", "pairs = [[\"img-s01\", \"img-s02\"]]\ndelay_s = 4"),
    ("threshold", "items = { id = [\"img-s01\"] }\ntransform = \"crop\"\nblocked_at = 0\nevaded_at = 0.5\nsteps = 4\ndelay_s = 1"),
    ("isolate", "texts = \"texts.txt\"\nbudget = 40\nretries = 2\nseparator = \" | \""),
];

/// Every declared key of every input file kind (the spec, each design's
/// experiment keys, the profile, the testbed policy, the accounts file;
/// the columns of keyword files and corpus manifests), set in a valid
/// file to each value outside its range (just below, just above, NaN,
/// infinity, a value of another type; text too long, empty, with a
/// control character, a word out of the vocabulary, a date that is none)
/// is refused by that kind's loader naming the file, the key and the line
/// that sets it. The table is generated from the declarations: a key is
/// covered as soon as it is declared, and a design without a sample here
/// fails the test. `make soak` prints the table.
#[test]
fn every_declared_key_refuses_every_value_outside_its_range() {
    use chatprobe::probe::design::{COMMON_RANGES, DESIGNS};
    use chatprobe::ranges::Declared;
    let c = Campaign::new(
        "1.0",
        "sends_per_minute = 60",
        "[[experiment]]\nkind = \"surveillance\"\nname = \"s\"\nitems = { id = [\"img-s01\"] }\nseed_chat = { from = \"intl-a\", to = \"intl-b\" }\ntest_chat = { from = \"intl-a\", to = \"china-c\" }\n\n[[published]]\nexperiment = \"s\"\nlabel = \"sensitive\"\nk = 1\nn = 2\nwhat = \"seeded files blocked\"\nsource = \"a paper\"\n",
    );
    let probes = c.spec.parent().unwrap().to_path_buf();
    std::fs::write(probes.join("texts.txt"), "六四 吃饭 天气\n").unwrap();
    let spec_text = std::fs::read_to_string(&c.spec).unwrap();
    let head = &spec_text[..spec_text.find("[[experiment]]").unwrap()];
    let owned = |keys: &[Declared], prefix: &str| -> Vec<(String, chatprobe::ranges::Range)> {
        keys.iter()
            .map(|d| (format!("{prefix}{}", d.path), d.range))
            .collect()
    };
    let spec_loader = || -> Loader { Box::new(|p| Spec::load(p).map(drop)) };
    let mut kinds: Vec<Kind> = vec![
        (
            "spec".into(),
            c.spec.clone(),
            owned(chatprobe::probe::spec::RANGES, ""),
            spec_loader(),
        ),
        (
            "profile".into(),
            probes.join("profiles/testbed.toml"),
            owned(chatprobe::platform::profile::RANGES, ""),
            Box::new(|p| chatprobe::platform::profile::Profile::load(p).map(drop)),
        ),
        (
            "policy".into(),
            c.policy(),
            owned(chatprobe::testbed::policy::RANGES, ""),
            Box::new(|p| chatprobe::testbed::policy::Policy::load(p).map(drop)),
        ),
        (
            "accounts".into(),
            probes.join("accounts.testbed.toml"),
            owned(chatprobe::accounts::RANGES, ""),
            Box::new(|p| chatprobe::accounts::Accounts::load(p).map(drop)),
        ),
    ];
    for d in DESIGNS {
        let (_, body) = DESIGN_SAMPLES
            .iter()
            .find(|(n, _)| *n == d.name)
            .unwrap_or_else(|| panic!("design `{}` has no sample here: add one", d.name));
        let sample = probes.join(format!("design-{}.toml", d.name));
        let seed = if ["keyword", "isolate"].contains(&d.name) {
            ""
        } else {
            "seed_chat = { from = \"intl-a\", to = \"intl-b\" }\n"
        };
        std::fs::write(
            &sample,
            format!(
                "{head}[[experiment]]\nkind = \"{}\"\nreplicates = 2\n{seed}test_chat = {{ from = \"intl-a\", to = \"china-c\" }}\n{body}\n",
                d.name
            ),
        )
        .unwrap();
        let mut keys = owned(COMMON_RANGES, "experiment[].");
        keys.extend(owned(d.ranges, "experiment[]."));
        kinds.push((format!("spec:{}", d.name), sample, keys, spec_loader()));
    }
    let mut table = Vec::new();
    for (kind, sample, keys, load) in &kinds {
        let text = std::fs::read_to_string(sample).unwrap();
        // The sample loads, or (a collision pair) fails on a key no
        // declaration varies.
        let base = load(sample).err().map(|e| e.key.unwrap_or_default());
        if let Some(k) = &base {
            assert!(
                kind == "spec:collision" && k.ends_with("pairs"),
                "the {kind} sample must load: {k}"
            );
        }
        let bad = sample.with_file_name(format!("bad-{}.toml", kind.replace(':', "-")));
        for (path, range) in keys {
            for v in range.outside() {
                let mut t: toml::Table = text.parse().unwrap();
                set_at(&mut t, path, v.clone());
                let written = toml::to_string(&t).unwrap();
                std::fs::write(&bad, &written).unwrap();
                let e = match load(&bad) {
                    Ok(()) => panic!("{kind}: {path} = {v} was accepted"),
                    Err(e) => e,
                };
                let key = e.key.clone().unwrap_or_default();
                assert!(
                    e.path == bad && !key.is_empty() && path.replace("[]", "[0]") == key,
                    "{kind}: {path} = {v}: the error must name the file and the key: {e}"
                );
                let line = e
                    .line
                    .unwrap_or_else(|| panic!("{kind}: {path} = {v}: no line: {e}"));
                let last = key.rsplit('.').next().unwrap().split('[').next().unwrap();
                let at = written.lines().nth(line as usize - 1).unwrap_or_default();
                assert!(
                    at.contains(last),
                    "{kind}: {path} = {v}: line {line} is `{at}`: {e}"
                );
                let shown: String = v.to_string().chars().take(12).collect();
                table.push(format!("{kind:18} {path:36} {shown:>12} → {}", e.message));
            }
        }
    }
    // The CSV kinds: each declared column of the first row set to each
    // text outside its range.
    let corpus = c.dir.path().join("corpus");
    type CsvLoader = fn(&std::path::Path) -> Result<(), String>;
    let csv_kinds: [(&str, std::path::PathBuf, &[Declared], CsvLoader); 2] = [
        (
            "keywords",
            corpus.join("keywords.csv"),
            chatprobe::corpus::keywords::COLUMNS,
            |p| {
                chatprobe::corpus::keywords::load_keywords(p, 0, &[], &[])
                    .map(drop)
                    .map_err(|e| {
                        format!(
                            "{}|{}|{}",
                            e.key.unwrap_or_default(),
                            e.line.unwrap_or(0),
                            e.message
                        )
                    })
            },
        ),
        (
            "manifest",
            corpus.join("manifest.csv"),
            chatprobe::corpus::manifest::COLUMNS,
            |p| match chatprobe::corpus::Manifest::load(p.parent().unwrap()) {
                Ok(_) => Ok(()),
                Err(chatprobe::corpus::CorpusError::Input(e)) => Err(format!(
                    "{}|{}|{}",
                    e.key.unwrap_or_default(),
                    e.line.unwrap_or(0),
                    e.message
                )),
                Err(e) => Err(format!("||{e}")),
            },
        ),
    ];
    for (kind, file, columns, load) in csv_kinds {
        let original = std::fs::read(&file).unwrap();
        load(&file).unwrap_or_else(|e| panic!("the {kind} sample must load: {e}"));
        let mut rdr = csv::Reader::from_path(&file).unwrap();
        let headers = rdr.headers().unwrap().clone();
        let rows: Vec<csv::StringRecord> = rdr.records().map(Result::unwrap).collect();
        for d in columns {
            let col = headers
                .iter()
                .position(|h| h == d.path)
                .unwrap_or_else(|| panic!("{kind}: the sample has no column {}", d.path));
            for v in d.range.outside() {
                let toml::Value::String(v) = v else { continue };
                let mut w = csv::Writer::from_path(&file).unwrap();
                w.write_record(&headers).unwrap();
                for (i, r) in rows.iter().enumerate() {
                    let mut r: Vec<&str> = r.iter().collect();
                    if i == 0 {
                        r[col] = &v;
                    }
                    w.write_record(&r).unwrap();
                }
                w.flush().unwrap();
                drop(w);
                let e = load(&file)
                    .err()
                    .unwrap_or_else(|| panic!("{kind}: {} = {v:?} was accepted", d.path));
                assert!(
                    e.starts_with(&format!("{}|2|", d.path)),
                    "{kind}: {} = {v:?}: the error must name the column and line 2: {e}",
                    d.path
                );
                let shown: String = format!("{v:?}").chars().take(12).collect();
                table.push(format!(
                    "{kind:18} {:36} {shown:>12} → {}",
                    d.path,
                    e.splitn(3, '|').nth(2).unwrap_or_default()
                ));
            }
        }
        std::fs::write(&file, original).unwrap();
    }
    eprintln!(
        "{} bad values in {} file kinds, all refused:\n{}",
        table.len(),
        kinds.len() + 2,
        table.join("\n")
    );
    assert!(table.len() >= 250, "{}", table.len());
}
