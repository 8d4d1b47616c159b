//! `make bench` — isolating keyword combinations: sends per combination
//! found, chatprobe's `isolate` method against CompAwareBinSplit, on the
//! same generated texts and rules, in one run.
//!
//! Texts (100–2,000 characters) are made from the sentences of the
//! project's own benign documents (corpus/documents/doc-b*.txt) with 1 to 3
//! rules planted at random places; rules are combinations of 1 to 4
//! sensitive keywords of corpus/keywords.csv, each keyword in one rule,
//! none a substring of another. The filter
//! blocks a message when every part of some rule lies inside one of its
//! fragments. Both methods are counted the same way: every send after the
//! first whole-text test.
//!
//! Each method isolates the texts in order, as one campaign. chatprobe's
//! `isolate` design never sends the same message twice in an experiment
//! (the filter judges content; a message answered for one text answers it
//! for every text), so the bench measures it the same way; the rows "per
//! text" show it without that, and "CompAwareBinSplit, shared" shows the
//! published method given the same advantage.
//!
//! CompAwareBinSplit is written here from its description in Xiong &
//! Knockel, "An Efficient Method to Determine which Combination of Keywords
//! Triggered Automatic Filtering of a Message" (FOCI 2019): a binary search
//! for the start of the rightmost needed component, then a linear search
//! for its end, the components found so far kept in every test, until they
//! are censored alone. It stops at the first combination of a text;
//! chatprobe finds them all, and verifies each.

use chatprobe::probe::isolate::{Answer, Isolator, Next};
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const TEXTS: usize = 400;
const SEP: char = '\u{0}';

/// A rule: its parts.
type Rule = Vec<Vec<char>>;

fn root() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Whether `message` (fragments joined by SEP) is blocked by `rules`.
fn blocked(rules: &[Rule], message: &[char]) -> bool {
    let frags: Vec<&[char]> = message.split(|c| *c == SEP).collect();
    rules.iter().any(|r| {
        r.iter().all(|p| {
            frags
                .iter()
                .any(|f| f.windows(p.len()).any(|w| w == &p[..]))
        })
    })
}

fn join(strings: &[Vec<char>]) -> Vec<char> {
    let mut out = Vec::new();
    for (i, s) in strings.iter().enumerate() {
        if i > 0 {
            out.push(SEP);
        }
        out.extend_from_slice(s);
    }
    out
}

/// CompAwareBinSplit (Xiong & Knockel 2019), from the paper's description.
/// Returns the combination and the sends it used.
/// With `shared`, a message sent before (for any text) is not sent again.
fn comp_aware_bin_split(
    text: &[char],
    rules: &[Rule],
    mut shared: Option<&mut Shared>,
) -> (Vec<Vec<char>>, usize) {
    let mut sends = 0;
    let mut test = |set: &[Vec<char>]| {
        let m = join(set);
        if let Some(b) = shared.as_ref().and_then(|c| c.get(&m)) {
            return *b;
        }
        sends += 1;
        let b = blocked(rules, &m);
        if let Some(c) = shared.as_mut() {
            c.insert(m, b);
        }
        b
    };
    let mut found: Vec<Vec<char>> = Vec::new();
    let mut s: Vec<char> = text.to_vec();
    let mut j = 0;
    loop {
        // The last start i such that found + s[i..] is still censored.
        let (mut lo, mut hi) = (0, s.len());
        while hi - lo > 1 {
            let mid = (lo + hi) / 2;
            let mut q = found.clone();
            q.push(s[mid..].to_vec());
            if test(&q) {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        let i = lo;
        // The component's end: the first j with found + s[i..j] + s[i+1..]
        // censored, scanning forward.
        j = j.max(i + 1);
        let k = s.len();
        while j < k {
            let mut q = found.clone();
            q.push(s[i..j].to_vec());
            q.push(s[i + 1..].to_vec());
            if test(&q) {
                break;
            }
            j += 1;
        }
        found.push(s[i..j].to_vec());
        s = if j != s.len() {
            s[i + 1..].to_vec()
        } else {
            Vec::new()
        };
        if s.is_empty() || test(&found) {
            break;
        }
        j -= i;
    }
    (found, sends)
}

/// One group's tallies: sends by step, sends until the first combination,
/// sends per combination of each text, sends, combinations.
type Group = (
    std::collections::BTreeMap<&'static str, usize>,
    usize,
    Vec<f64>,
    usize,
    usize,
);

/// Answers by message, shared across the texts of a campaign.
type Shared = std::collections::HashMap<Vec<char>, bool>;

/// chatprobe's method: (combinations found, sends after the whole-text
/// test, every combination verified and planted). `first` gets the sends
/// after the whole-text test until the first combination was found and
/// verified (the first residual test), as CompAwareBinSplit counts them.
fn chatprobe(
    text: &[char],
    rules: &[Rule],
    dictionary: &[Rule],
    steps: &mut std::collections::BTreeMap<&'static str, usize>,
    first: &mut usize,
    mut shared: Option<&mut Shared>,
) -> (usize, usize, bool) {
    let dict: Vec<Vec<String>> = dictionary
        .iter()
        .map(|r| r.iter().map(|p| p.iter().collect()).collect())
        .collect();
    let s: String = text.iter().collect();
    let iso = Isolator::new(&s, dict);
    // The answers of this text's sends, in order; a message answered
    // before (shared) is not sent. The design does the same (one answer a
    // message for every text of an experiment).
    let mut answers: Vec<(Answer, bool)> = Vec::new();
    let mut first_done = false;
    loop {
        let next = iso.next_with(|i, _| answers.get(i).copied());
        match next {
            Next::Send(q) => {
                if q.step == chatprobe::probe::isolate::Step::Residual && !first_done {
                    *first += answers.iter().skip(1).filter(|a| a.1).count();
                    first_done = true;
                }
                let m: Vec<char> = q.message(iso.text(), "\u{0}").chars().collect();
                let cached = shared.as_ref().and_then(|c| c.get(&m)).copied();
                let b = match cached {
                    Some(b) => b,
                    None => {
                        *steps.entry(q.step.name()).or_default() += 1;
                        let b = blocked(rules, &m);
                        if let Some(c) = shared.as_mut() {
                            c.insert(m, b);
                        }
                        b
                    }
                };
                let a = if b {
                    Answer::Blocked
                } else {
                    Answer::Delivered
                };
                answers.push((a, cached.is_none()));
            }
            Next::Done(i) => {
                let ok = i.incomplete.is_none()
                    && i.combinations.iter().all(|c| {
                        let mut parts: Vec<Vec<char>> = c
                            .texts(iso.text())
                            .iter()
                            .map(|p| p.chars().collect())
                            .collect();
                        parts.sort();
                        c.verified
                            && rules.iter().any(|r| {
                                let mut r = r.clone();
                                r.sort();
                                r == parts
                            })
                    });
                if !first_done {
                    *first += (i.sends as usize).saturating_sub(1);
                }
                return (
                    i.combinations.len(),
                    (i.sends as usize).saturating_sub(1),
                    ok,
                );
            }
        }
    }
}

/// The planted rules present in `text`.
fn present(text: &[char], rules: &[Rule]) -> usize {
    rules
        .iter()
        .filter(|r| r.iter().all(|p| text.windows(p.len()).any(|w| w == &p[..])))
        .count()
}

struct Case {
    text: Vec<char>,
    planted: usize,
}

fn generate(rng: &mut ChaCha8Rng, rules: &[Rule]) -> Vec<Case> {
    let mut sentences: Vec<Vec<char>> = Vec::new();
    for f in ["doc-b01.txt", "doc-b04.txt"] {
        let t = std::fs::read_to_string(root().join("corpus/documents").join(f)).unwrap();
        for s in t.split(['。', '\n']) {
            let s = s.trim();
            if !s.is_empty() {
                sentences.push(format!("{s}。").chars().collect());
            }
        }
    }
    let mut cases = Vec::new();
    while cases.len() < TEXTS {
        let len = rng.random_range(100..=2000);
        let mut text: Vec<char> = Vec::new();
        while text.len() < len {
            text.extend(sentences.choose(rng).unwrap());
        }
        text.truncate(len);
        let k = rng.random_range(1..=3);
        let chosen: Vec<&Rule> = rules.choose_multiple(rng, k).collect();
        // Insert every part at a random place (from the end backwards, so
        // earlier places stay valid).
        let mut inserts: Vec<(usize, &Vec<char>)> = chosen
            .iter()
            .flat_map(|r| r.iter())
            .map(|p| (rng.random_range(0..=text.len()), p))
            .collect();
        inserts.sort_by_key(|x| std::cmp::Reverse(x.0));
        for (at, p) in inserts {
            text.splice(at..at, p.iter().copied());
        }
        let planted = present(&text, rules);
        cases.push(Case { text, planted });
    }
    cases
}

/// Rules of 1–4 sensitive keywords, each keyword in one rule only and none
/// a substring of another (so a rule present is one that can be found).
fn make_rules(rng: &mut ChaCha8Rng) -> Vec<Rule> {
    let mut rdr = csv::Reader::from_path(root().join("corpus/keywords.csv")).unwrap();
    let mut words: Vec<Vec<char>> = Vec::new();
    for r in rdr.records() {
        let r = r.unwrap();
        if &r[4] != "sensitive" {
            continue;
        }
        for w in r[0].split('+') {
            let w: Vec<char> = w.chars().collect();
            if !words.contains(&w) {
                words.push(w);
            }
        }
    }
    let contains = |a: &[char], b: &[char]| a.len() > b.len() && a.windows(b.len()).any(|w| w == b);
    let mut pool: Vec<Vec<char>> = words
        .iter()
        .filter(|w| !words.iter().any(|o| contains(o, w) || contains(w, o)))
        .cloned()
        .collect();
    pool.shuffle(rng);
    let mut rules = Vec::new();
    while !pool.is_empty() {
        let k = rng.random_range(1..=4).min(pool.len());
        rules.push(pool.drain(..k).collect());
    }
    rules
}

fn stats(v: &mut [f64]) -> (f64, f64) {
    if v.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    v.sort_by(f64::total_cmp);
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    let p90 = v[((v.len() as f64 * 0.9).ceil() as usize).clamp(1, v.len()) - 1];
    (mean, p90)
}

fn main() {
    let mut rng = ChaCha8Rng::seed_from_u64(20190813);
    let rules = make_rules(&mut rng);
    let cases = generate(&mut rng, &rules);
    let mut known: Vec<Rule> = rules.clone();
    known.shuffle(&mut rng);
    known.truncate(rules.len() * 7 / 10);
    // (method, group) → sends per combination found, per text.
    let mut rows: Vec<(&str, &str, Vec<f64>, usize, usize)> = Vec::new();
    let mut all_correct = true;
    let mut by_step = Vec::new();
    // Each method isolates every text in order, as one campaign; `shared`:
    // a message sent for an earlier text is not sent again.
    for (method, dict, share) in [
        ("CompAwareBinSplit", None, false),
        ("CompAwareBinSplit, shared", None, true),
        ("chatprobe, no dict., per text", Some(&[][..]), false),
        ("chatprobe, no dictionary", Some(&[][..]), true),
        ("chatprobe, 70% known, per text", Some(&known[..]), false),
        ("chatprobe, 70% known", Some(&known[..]), true),
    ] {
        let mut shared = Shared::new();
        // Per group (one combination, several): steps, first, per-text
        // ratios, sends, combinations.
        let mut acc: [Group; 2] = Default::default();
        for c in &cases {
            let g = &mut acc[usize::from(c.planted > 1)];
            let cache = share.then_some(&mut shared);
            let (found, s) = match dict {
                None => {
                    let (combo, s) = comp_aware_bin_split(&c.text, &rules, cache);
                    let mut combo = combo;
                    combo.sort();
                    let ok = rules.iter().any(|r| {
                        let mut r = r.clone();
                        r.sort();
                        r == combo
                    });
                    if !ok {
                        eprintln!("CompAwareBinSplit found no planted rule: {combo:?}");
                    }
                    (1, s)
                }
                Some(d) => {
                    let (found, s, ok) = chatprobe(&c.text, &rules, d, &mut g.0, &mut g.1, cache);
                    if !ok || found != c.planted {
                        all_correct = false;
                        eprintln!(
                            "chatprobe: {found} of {} combinations, correct {ok}",
                            c.planted
                        );
                    }
                    (found, s)
                }
            };
            g.2.push(s as f64 / found.max(1) as f64);
            g.3 += s;
            g.4 += found;
        }
        for ((group, _), (steps, first, per, sends, combos)) in
            [("one combination", false), ("several", true)]
                .into_iter()
                .zip(acc)
        {
            if !steps.is_empty() {
                let texts = per.len();
                by_step.push((method, group, combos, steps, first as f64 / texts as f64));
            }
            rows.push((method, group, per, sends, combos));
        }
    }
    println!(
        "isolating keyword combinations: {TEXTS} texts, {} rules (seeded), {} known",
        rules.len(),
        known.len()
    );
    println!(
        "{:<31} {:<16} {:>6} {:>12} {:>10} {:>10}",
        "method", "texts", "n", "combinations", "mean", "p90"
    );
    for (method, group, per, sends, combos) in &mut rows {
        let n = per.len();
        let (mean, p90) = stats(per);
        println!(
            "{method:<31} {group:<16} {n:>6} {combos:>12} {mean:>10.2} {p90:>10.1}   ({sends} sends)"
        );
    }
    for (method, group, combos, steps, first) in &by_step {
        let parts: Vec<String> = steps
            .iter()
            .map(|(k, v)| format!("{k} {:.2}", *v as f64 / *combos as f64))
            .collect();
        println!(
            "{method}, {group}: sends per combination by step: {}; until its first combination, {first:.2} a text",
            parts.join(", ")
        );
    }
    let total = |m: &str| {
        let (s, c) = rows
            .iter()
            .filter(|r| r.0 == m)
            .fold((0, 0), |a, r| (a.0 + r.3, a.1 + r.4));
        s as f64 / c as f64
    };
    let cabs = total("CompAwareBinSplit");
    // CompAwareBinSplit finds one combination a text.
    let cabs_first = cabs;
    let none = total("chatprobe, no dictionary");
    let dict = total("chatprobe, 70% known");
    println!(
        "sends per combination found, all texts: CompAwareBinSplit {cabs:.2}, chatprobe {none:.2} ({:.2}x), with 70% known {dict:.2} ({:.2}x fewer than CompAwareBinSplit)",
        cabs / none,
        cabs / dict
    );
    let (cabs_s, none_t, dict_t) = (
        total("CompAwareBinSplit, shared"),
        total("chatprobe, no dict., per text"),
        total("chatprobe, 70% known, per text"),
    );
    println!(
        "  each text alone (no answers shared across texts): chatprobe {none_t:.2} ({:.2}x), with 70% known {dict_t:.2} ({:.2}x); CompAwareBinSplit sharing answers too: {cabs_s:.2} (chatprobe {:.2}x, with 70% known {:.2}x)",
        cabs / none_t,
        cabs / dict_t,
        cabs_s / none,
        cabs_s / dict
    );
    // The task CompAwareBinSplit does (one combination a text): the sends
    // until chatprobe has found and verified its first.
    let first = |m: &str| {
        let (s, n) = by_step
            .iter()
            .filter(|r| r.0 == m)
            .map(|r| {
                let texts = rows
                    .iter()
                    .find(|x| x.0 == m && x.1 == r.1)
                    .map_or(0, |x| x.2.len());
                (r.4 * texts as f64, texts)
            })
            .fold((0.0, 0), |a, x| (a.0 + x.0, a.1 + x.1));
        s / n as f64
    };
    println!(
        "sends until the first combination of a text: CompAwareBinSplit {cabs_first:.2}, chatprobe {:.2} ({:.2}x), with 70% known {:.2} ({:.2}x)",
        first("chatprobe, no dictionary"),
        cabs_first / first("chatprobe, no dictionary"),
        first("chatprobe, 70% known"),
        cabs_first / first("chatprobe, 70% known"),
    );
    println!(
        "every chatprobe isolation correct and complete: {}",
        if all_correct { "yes" } else { "NO" }
    );
}
