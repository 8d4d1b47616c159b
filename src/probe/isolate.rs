//! Which keyword combination triggers a filter: adaptive sample tests on a
//! censored text.
//!
//! The filter model is the one the field measured on WeChat and similar
//! apps: a rule is a set of parts (`习近平+小熊维尼`), and a message is
//! blocked when every part of some rule appears in it. A sample test sends
//! some *fragments* of the text (character ranges), joined by a separator
//! that never forms a part with its neighbours, and watches whether it is
//! blocked. Because a message with more of the text can only contain more
//! parts, the answers are monotone, and [`Isolator`] uses that twice: to
//! search (binary searches on a prefix and on a part's length) and to skip a
//! test whose answer already follows from one observed (a message whose
//! every fragment lies inside a fragment of a delivered one is delivered; a
//! message holding every fragment of a blocked one is blocked).
//!
//! For one text it:
//! 1. tests it whole (blocked, or nothing to isolate);
//! 2. tries the known triggers of a dictionary whose parts all occur in what
//!    is left of the text, each alone, cutting each one found out at once
//!    (no send); the triggers found are verified together (step 4: the
//!    messages without one part of different triggers share a send), and
//!    it goes on from 2 while that finds more;
//! 3. tests what is left (the first time: the whole text, already
//!    answered); if blocked, isolates one combination: the shortest blocked prefix ends
//!    with the part that completes a rule; a search on its length finds
//!    where it starts (the search tree with the fewest expected tests for
//!    the lengths keywords have); with the parts found so far kept in every
//!    test, the same search finds the next part, until the parts alone are
//!    blocked. The dictionary's keywords found in the text come first in
//!    that order, each whole, so a rule made of known keywords in a new
//!    combination is found among them in a few tests, and one test more
//!    (all of them, not blocked) sends the search on to the characters;
//! 4. verifies the combination by sending it: alone it is blocked, and
//!    without any one of its parts it is delivered (a dictionary entry with
//!    a part the filter does not need loses that part here);
//! 5. cuts every occurrence of every part found out of the text (the first
//!    character of each) and goes on from 2, until what is left is
//!    delivered.
//!
//! Every step is a function of the answers so far ([`Isolator::next`]
//! replays them), so a run that crashed resumes with the same tests. An
//! inconclusive answer (the send was lost, or failed) is asked again, never
//! guessed; after [`Isolator::retries`] in a row the text is reported
//! incomplete, with the reason, as it is when the budget of sends runs out.
//!
//! Written here rather than taken from a crate: no crate implements
//! combination isolation; the method follows Xiong & Knockel (FOCI 2019),
//! with the changes described above.

use std::ops::Range;

/// A character range of the text, end exclusive.
pub type Frag = Range<usize>;

/// Why a test is sent: the step of the method it belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Step {
    /// The text whole.
    Whole,
    /// A known trigger of the dictionary, alone.
    Known,
    /// The parts found so far and a prefix of the text.
    Prefix,
    /// The parts found so far, the prefix before a part's last character,
    /// and a candidate part.
    Part,
    /// The parts found so far, alone.
    Check,
    /// A combination, alone or without one of its parts.
    Verify,
    /// The text with every part found cut out.
    Residual,
}

impl Step {
    /// Its name in datasets.
    pub fn name(self) -> &'static str {
        match self {
            Step::Whole => "whole",
            Step::Known => "known",
            Step::Prefix => "prefix",
            Step::Part => "part",
            Step::Check => "check",
            Step::Verify => "verify",
            Step::Residual => "residual",
        }
    }
}

/// A sample test: fragments of the text, in text order, sent joined by the
/// separator.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Query {
    /// Why it is sent.
    pub step: Step,
    /// Its fragments, sorted by start then end, none empty.
    pub fragments: Vec<Frag>,
}

impl Query {
    fn new(step: Step, mut fragments: Vec<Frag>) -> Query {
        fragments.retain(|f| f.start < f.end);
        fragments.sort_by_key(|f| (f.start, f.end));
        fragments.dedup();
        Query { step, fragments }
    }

    /// The message: each fragment's characters, joined by `separator`.
    pub fn message(&self, text: &[char], separator: &str) -> String {
        let parts: Vec<String> = self
            .fragments
            .iter()
            .map(|f| text[f.clone()].iter().collect())
            .collect();
        parts.join(separator)
    }

    /// The fragments as `a-b,c-d` (character offsets, end exclusive).
    pub fn ranges(&self) -> String {
        self.fragments
            .iter()
            .map(|f| format!("{}-{}", f.start, f.end))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Whether every fragment of `self` lies inside a fragment of `other`
    /// (so every part `self` holds, `other` holds too).
    fn within(&self, other: &Query) -> bool {
        self.fragments.iter().all(|f| {
            other
                .fragments
                .iter()
                .any(|g| g.start <= f.start && f.end <= g.end)
        })
    }
}

/// The answer to a sample test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// The message was blocked.
    Blocked,
    /// It was delivered.
    Delivered,
    /// It was lost or failed: no answer (asked again).
    Inconclusive,
}

/// A combination found in a text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Combination {
    /// Its parts' positions, in text order.
    pub parts: Vec<Frag>,
    /// Found from the dictionary.
    pub known: bool,
    /// Sent alone it was blocked, and each message without one of its parts
    /// was delivered (sent, or inside a message sent and delivered).
    pub verified: bool,
}

impl Combination {
    /// Its parts' texts, in text order.
    pub fn texts(&self, text: &[char]) -> Vec<String> {
        self.parts
            .iter()
            .map(|f| text[f.clone()].iter().collect())
            .collect()
    }
}

/// Why a text's isolation could not finish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incomplete {
    /// A test stayed inconclusive this many times in a row.
    Inconclusive {
        /// The test.
        step: Step,
        /// How many times.
        times: u32,
    },
    /// The budget of sends ran out.
    Budget(u32),
    /// A combination was found whose removal changed nothing.
    NoProgress,
}

impl std::fmt::Display for Incomplete {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Incomplete::Inconclusive { step, times } => write!(
                f,
                "a {} test was lost or failed {times} times in a row",
                step.name()
            ),
            Incomplete::Budget(n) => write!(f, "the budget of {n} sends ran out"),
            Incomplete::NoProgress => write!(
                f,
                "a combination was found again after it had been cut out: the answers do not fit keyword combinations"
            ),
        }
    }
}

/// The result for one text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Isolation {
    /// Whether the whole text was blocked (false too when it never got a
    /// conclusive answer: see `incomplete`).
    pub blocked: bool,
    /// The combinations found, in the order found.
    pub combinations: Vec<Combination>,
    /// Set when it stopped before the end.
    pub incomplete: Option<Incomplete>,
    /// Sends used, the first whole-text test included.
    pub sends: u32,
}

/// What to do next for a text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Send this test and add its answer.
    Send(Query),
    /// Finished.
    Done(Isolation),
}

/// Isolates the combinations in one text.
#[derive(Debug, Clone)]
pub struct Isolator {
    text: Vec<char>,
    /// Known triggers, each a list of parts.
    dictionary: Vec<Vec<String>>,
    /// The dictionary's distinct parts, shortest first.
    keywords: Vec<String>,
    /// Prior weights of a part's length (index 0: one character).
    lengths: Vec<f64>,
    /// Inconclusive answers in a row before giving up a text.
    pub retries: u32,
    /// Sends a text may use at most (the first whole-text test included).
    pub budget: u32,
}

impl Isolator {
    /// An isolator for `text`, trying `dictionary`'s triggers (lists of
    /// parts) first.
    pub fn new(text: &str, dictionary: Vec<Vec<String>>) -> Isolator {
        let mut keywords: Vec<String> = Vec::new();
        for p in dictionary.iter().flatten() {
            if !p.is_empty() && !keywords.contains(p) {
                keywords.push(p.clone());
            }
        }
        keywords.sort_by_key(|k| k.chars().count());
        // The dictionary's part lengths, as much again as the default.
        let mut lengths = LENGTH_PRIOR.to_vec();
        for k in &keywords {
            let n = k.chars().count();
            if n > lengths.len() {
                lengths.resize(n, 0.0);
            }
            lengths[n - 1] += 1.0 / keywords.len() as f64;
        }
        Isolator {
            text: text.chars().collect(),
            dictionary,
            keywords,
            lengths,
            retries: 3,
            budget: 500,
        }
    }

    /// The text, as characters (fragments index into it).
    pub fn text(&self) -> &[char] {
        &self.text
    }

    /// The next test, given the answers to every test asked so far, in
    /// order; or the result.
    pub fn next(&self, answers: &[Answer]) -> Next {
        self.next_with(|i, _| answers.get(i).map(|a| (*a, true)))
    }

    /// The next test or the result, with the answers given by `oracle`:
    /// called with the index of each ask (0 for the first, counting every
    /// ask, answered or not, in order) and its query, it gives the answer
    /// and whether it cost a send (`false`: the same message was answered
    /// before, e.g. for another text), or `None` when the answer is not
    /// known yet: that query is then returned as [`Next::Send`]. The
    /// budget counts sends only.
    pub fn next_with(&self, oracle: impl FnMut(usize, &Query) -> Option<(Answer, bool)>) -> Next {
        let mut r = Replay {
            oracle: Box::new(oracle),
            used: 0,
            sent: 0,
            seen: Vec::new(),
            retries: self.retries,
            budget: self.budget,
        };
        let mut found = Vec::new();
        let out = self.run(&mut r, &mut found);
        let sends = r.sent;
        // The first answer, if any, is the whole text's.
        let whole_blocked = r
            .seen
            .first()
            .is_some_and(|(q, b)| q.step == Step::Whole && *b);
        match out {
            Err(Stop::Need(q)) => Next::Send(q),
            Ok(blocked) => Next::Done(Isolation {
                blocked,
                combinations: found,
                incomplete: None,
                sends,
            }),
            Err(Stop::Incomplete(why)) => Next::Done(Isolation {
                blocked: whole_blocked,
                combinations: found,
                incomplete: Some(why),
                sends,
            }),
        }
    }

    /// The method; `Ok(whether the whole text was blocked)`.
    fn run(&self, r: &mut Replay, found: &mut Vec<Combination>) -> Result<bool, Stop> {
        let n = self.text.len();
        let mut work: Vec<Frag> = std::iter::once(0..n).collect();
        if n == 0 || !r.ask(Query::new(Step::Whole, work.clone()))? {
            return Ok(false);
        }
        let mut tried: Vec<usize> = Vec::new();
        loop {
            let before = work.clone();
            // Every known trigger present, each cut out as soon as it is
            // found (no send), so that several cost one residual test; then
            // verified together, and tried again on the text as verified
            // (verification may drop a part a rule does not need, and only
            // the needed ones are cut).
            let first = found.len();
            while let Some(c) = self.try_known(r, &work, &mut tried)? {
                found.push(c);
                work = self.cut(&before, found);
            }
            if found.len() > first {
                verify_together(r, &mut found[first..])?;
                work = self.progress(&before, found)?;
                if work.is_empty() {
                    return Ok(true);
                }
                continue;
            }
            // No known trigger left: is the rest still blocked? (The first
            // time, this is the whole text, already answered.)
            if work.is_empty() || !r.ask(Query::new(Step::Residual, work.clone()))? {
                return Ok(true);
            }
            let c = Combination {
                parts: search(r, &work, &self.units(&work), &self.lengths)?,
                known: false,
                verified: false,
            };
            found.push(verify(r, c)?);
            work = self.progress(&before, found)?;
        }
    }

    /// `before` with every part found cut out; an error if that changed
    /// nothing.
    fn progress(&self, before: &[Frag], found: &[Combination]) -> Result<Vec<Frag>, Stop> {
        let work = self.cut(before, found);
        if work == before {
            // Cutting what was found changed nothing, yet the rest is still
            // blocked: the answers do not fit the model (a noisy platform,
            // or a filter that is not keyword combinations). Going on would
            // find the same again, forever.
            return Err(Stop::Incomplete(Incomplete::NoProgress));
        }
        Ok(work)
    }

    /// The first dictionary trigger not tried yet whose parts all occur in
    /// `work` and that is blocked alone.
    fn try_known(
        &self,
        r: &mut Replay,
        work: &[Frag],
        tried: &mut Vec<usize>,
    ) -> Result<Option<Combination>, Stop> {
        for (i, parts) in self.dictionary.iter().enumerate() {
            if tried.contains(&i) {
                continue;
            }
            let mut frags = Vec::new();
            for p in parts {
                match self.find(work, p).into_iter().next() {
                    Some(f) => frags.push(f),
                    None => break,
                }
            }
            if frags.len() != parts.len() || frags.is_empty() {
                continue;
            }
            tried.push(i);
            if r.ask(Query::new(Step::Known, frags.clone()))? {
                frags.sort_by_key(|f| (f.start, f.end));
                return Ok(Some(Combination {
                    parts: frags,
                    known: true,
                    verified: false,
                }));
            }
        }
        Ok(None)
    }

    /// Every occurrence of `part` inside one fragment of `work`.
    fn find(&self, work: &[Frag], part: &str) -> Vec<Frag> {
        let p: Vec<char> = part.chars().collect();
        if p.is_empty() {
            return Vec::new();
        }
        let mut out = Vec::new();
        for f in work {
            let mut s = f.start;
            while s + p.len() <= f.end {
                if self.text[s..s + p.len()] == p[..] {
                    out.push(s..s + p.len());
                }
                s += 1;
            }
        }
        out
    }

    /// Every occurrence in `work` of a keyword of the dictionary, shortest
    /// keywords first: the units searched before single characters.
    fn units(&self, work: &[Frag]) -> Vec<Frag> {
        let mut out: Vec<Frag> = Vec::new();
        for k in &self.keywords {
            for f in self.find(work, k) {
                if !out.contains(&f) {
                    out.push(f);
                }
            }
        }
        out
    }

    /// `work` without the first character of every occurrence of every
    /// part found.
    fn cut(&self, work: &[Frag], found: &[Combination]) -> Vec<Frag> {
        let mut cuts: Vec<usize> = Vec::new();
        for c in found {
            for part in c.texts(&self.text) {
                cuts.extend(self.find(work, &part).into_iter().map(|f| f.start));
            }
        }
        cuts.sort_unstable();
        cuts.dedup();
        let mut out = Vec::new();
        for f in work {
            let mut start = f.start;
            for &c in cuts.iter().filter(|c| f.contains(c)) {
                if start < c {
                    out.push(start..c);
                }
                start = c + 1;
            }
            if start < f.end {
                out.push(start..f.end);
            }
        }
        out
    }
}

/// Why the method stopped before its end.
enum Stop {
    /// It needs the answer to this test.
    Need(Query),
    /// It cannot finish.
    Incomplete(Incomplete),
}

/// The answers so far, handed out in order.
struct Replay<'a> {
    /// Where answers come from ([`Isolator::next_with`]).
    #[allow(clippy::type_complexity)]
    oracle: Box<dyn FnMut(usize, &Query) -> Option<(Answer, bool)> + 'a>,
    /// Asks answered so far.
    used: usize,
    /// Of them, those that cost a send.
    sent: u32,
    /// Every test answered, with its answer.
    seen: Vec<(Query, bool)>,
    retries: u32,
    budget: u32,
}

impl Replay<'_> {
    /// Send `q` (or reuse the answer of the very same message), asking
    /// again while the answer is inconclusive.
    fn ask(&mut self, q: Query) -> Result<bool, Stop> {
        if let Some((_, b)) = self.seen.iter().find(|(s, _)| s.fragments == q.fragments) {
            return Ok(*b);
        }
        let mut times = 0;
        loop {
            let Some((a, sent)) = (self.oracle)(self.used, &q) else {
                if self.sent >= self.budget {
                    return Err(Stop::Incomplete(Incomplete::Budget(self.budget)));
                }
                return Err(Stop::Need(q));
            };
            self.used += 1;
            self.sent += u32::from(sent);
            match a {
                Answer::Blocked | Answer::Delivered => {
                    let b = a == Answer::Blocked;
                    self.seen.push((q, b));
                    return Ok(b);
                }
                Answer::Inconclusive => {
                    times += 1;
                    if times >= self.retries {
                        return Err(Stop::Incomplete(Incomplete::Inconclusive {
                            step: q.step,
                            times,
                        }));
                    }
                }
            }
        }
    }

    /// The answer to `q` if one observed implies it, else [`Replay::ask`].
    fn infer(&mut self, q: Query) -> Result<bool, Stop> {
        for (s, b) in &self.seen {
            if *b && s.within(&q) {
                return Ok(true);
            }
            if !*b && q.within(s) {
                return Ok(false);
            }
        }
        self.ask(q)
    }
}

/// The first `len` characters of `work`, as fragments.
fn prefix(work: &[Frag], len: usize) -> Vec<Frag> {
    let mut out = Vec::new();
    let mut left = len;
    for f in work {
        if left == 0 {
            break;
        }
        let take = left.min(f.len());
        out.push(f.start..f.start + take);
        left -= take;
    }
    out
}

/// The text position of the `i`-th character of `work`, and where its
/// fragment starts.
fn position(work: &[Frag], mut i: usize) -> (usize, usize) {
    for f in work {
        if i < f.len() {
            return (f.start + i, f.start);
        }
        i -= f.len();
    }
    unreachable!("position inside work")
}

/// Prior weights of a part's length, 1 to 8 characters: the parts of the
/// starter keyword list (corpus/keywords.csv, terms from Citizen Lab's
/// published lists: 6 of 43 are 2 characters long, 17 are 3, 15 are 4, 1
/// is 5, 3 are 6, 1 is longer), smoothed so that no length is ruled out.
/// Only the number of tests depends on it, never what is found.
const LENGTH_PRIOR: [f64; 8] = [0.01, 0.14, 0.37, 0.33, 0.05, 0.06, 0.02, 0.02];

/// The elements searched, in order: the dictionary's keyword occurrences
/// (`units`, whole), then every character of `work`.
struct Elements<'a> {
    units: &'a [Frag],
    work: &'a [Frag],
}

impl Elements<'_> {
    fn len(&self) -> usize {
        self.units.len() + self.work.iter().map(|f| f.len()).sum::<usize>()
    }

    /// The first `len` elements, as fragments.
    fn prefix(&self, len: usize) -> Vec<Frag> {
        let m = self.units.len();
        let mut out: Vec<Frag> = self.units[..len.min(m)].to_vec();
        out.extend(prefix(self.work, len.saturating_sub(m)));
        out
    }
}

/// Isolate one combination in `work` (known to be blocked whole), trying
/// `units` (keyword occurrences) before single characters.
fn search(
    r: &mut Replay,
    work: &[Frag],
    units: &[Frag],
    lengths: &[f64],
) -> Result<Vec<Frag>, Stop> {
    let el = Elements { units, work };
    let m = units.len();
    let mut parts: Vec<Frag> = Vec::new();
    let with = |parts: &[Frag], mut q: Vec<Frag>| {
        q.extend_from_slice(parts);
        q
    };
    // Invariant: parts + el.prefix(hi) is blocked.
    let mut hi = el.len();
    loop {
        if !parts.is_empty() && r.infer(Query::new(Step::Check, parts.clone()))? {
            parts.sort_by_key(|f| (f.start, f.end));
            return Ok(parts);
        }
        // The shortest blocked prefix, with the parts found so far: the
        // keywords alone first, then halving.
        let mut lo = 0;
        if 0 < m && m < hi {
            if r.infer(Query::new(Step::Prefix, with(&parts, el.prefix(m))))? {
                hi = m;
            } else {
                lo = m;
            }
        }
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if r.infer(Query::new(Step::Prefix, with(&parts, el.prefix(mid))))? {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        let base = with(&parts, el.prefix(hi - 1));
        if hi <= m {
            // A keyword completes the rule: it is the part.
            parts.push(units[hi - 1].clone());
        } else {
            // A part ends at the prefix's last character: how long is it?
            let (last, run_start) = position(work, hi - 1 - m);
            let end = last + 1;
            let len = part_length(r, &base, end, end - run_start, lengths)?;
            parts.push(end - len..end);
        }
        // parts (with the new one) + el.prefix(hi - 1) is blocked.
        hi -= 1;
        if hi == 0 {
            // The parts alone are blocked (the last test said so).
            parts.sort_by_key(|f| (f.start, f.end));
            return Ok(parts);
        }
    }
}

/// The length of the part that ends at `end` (at most `longest`): the
/// shortest `len` with `base` + `end - len..end` blocked. The tests follow
/// the search tree with the fewest expected tests under the prior
/// `lengths`; past its lengths, doubling.
fn part_length(
    r: &mut Replay,
    base: &[Frag],
    end: usize,
    longest: usize,
    lengths: &[f64],
) -> Result<usize, Stop> {
    let mut test = |len: usize| {
        let mut q = base.to_vec();
        q.push(end - len..end);
        r.infer(Query::new(Step::Part, q))
    };
    // Lengths 1..=top, and top + 1 for "longer than top" when it can be.
    let top = longest.min(lengths.len());
    let mut w: Vec<f64> = lengths[..top].to_vec();
    if top < longest {
        w.push(lengths[top..].iter().sum::<f64>().max(0.01));
    }
    let tree = SearchTree::new(&w);
    // The length is in (lo, hi]; `hi` is blocked (or stands for "longer").
    let (mut lo, mut hi) = (0, w.len());
    while hi - lo > 1 {
        let t = tree.split(lo, hi);
        if test(t)? {
            hi = t;
        } else {
            lo = t;
        }
    }
    if hi <= top {
        return Ok(hi);
    }
    // Longer than the prior's lengths: doubling, then halving.
    let (mut lo, mut top) = (top, (top * 2).min(longest));
    loop {
        let mut h = top;
        while h - lo > 1 {
            let mid = lo + (h - lo) / 2;
            if test(mid)? {
                h = mid;
            } else {
                lo = mid;
            }
        }
        // `h` is blocked if it was observed so, or is the longest.
        if h < top || top == longest || test(top)? {
            return Ok(h);
        }
        lo = top;
        top = (top * 2).min(longest);
    }
}

/// The optimal binary search tree over ordered outcomes 1..=n with weights
/// `w` (Knuth's dynamic programme; n is small): for an outcome known to lie
/// in (lo, hi], which threshold to test first.
struct SearchTree {
    /// split[lo][hi]: the threshold t in (lo, hi) to test.
    split: Vec<Vec<usize>>,
}

impl SearchTree {
    fn new(w: &[f64]) -> SearchTree {
        let n = w.len();
        let mut cost = vec![vec![0.0f64; n + 1]; n + 1];
        let mut split = vec![vec![0usize; n + 1]; n + 1];
        for span in 2..=n {
            for lo in 0..=n - span {
                let hi = lo + span;
                let weight: f64 = w[lo..hi].iter().sum();
                let best = (lo + 1..hi).map(|t| (cost[lo][t] + cost[t][hi], t)).fold(
                    (f64::INFINITY, lo + 1),
                    |b, c| if c.0 < b.0 { c } else { b },
                );
                cost[lo][hi] = weight + best.0;
                split[lo][hi] = best.1;
            }
        }
        SearchTree { split }
    }

    fn split(&self, lo: usize, hi: usize) -> usize {
        self.split[lo][hi]
    }
}

/// Verify several combinations, sending the messages without one part of
/// different combinations together first: a union delivered shows each of
/// them delivered in one send (a blocked one is split up by [`verify`]).
fn verify_together(r: &mut Replay, found: &mut [Combination]) -> Result<(), Stop> {
    let rounds = found.iter().map(|c| c.parts.len()).max().unwrap_or(0);
    for j in 0..rounds {
        let members: Vec<&Combination> =
            found.iter().filter(|c| c.parts.len() > j.max(1)).collect();
        if members.len() < 2 {
            break;
        }
        let mut union = Vec::new();
        for c in members {
            union.extend(
                c.parts
                    .iter()
                    .enumerate()
                    .filter(|(k, _)| *k != j)
                    .map(|(_, f)| f.clone()),
            );
        }
        r.infer(Query::new(Step::Verify, union))?;
    }
    for c in found.iter_mut() {
        *c = verify(r, c.clone())?;
    }
    Ok(())
}

/// Send the combination alone and without each of its parts; a part whose
/// removal leaves it blocked is dropped (a dictionary entry longer than the
/// rule).
fn verify(r: &mut Replay, mut c: Combination) -> Result<Combination, Stop> {
    let alone = r.infer(Query::new(Step::Verify, c.parts.clone()))?;
    let mut minimal = true;
    let mut j = 0;
    while c.parts.len() > 1 && j < c.parts.len() {
        let mut without = c.parts.clone();
        without.remove(j);
        if r.infer(Query::new(Step::Verify, without))? {
            c.parts.remove(j);
            minimal = c.known;
        } else {
            j += 1;
        }
    }
    c.verified = alone && minimal;
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A substring-conjunction filter.
    fn blocked(rules: &[Vec<&str>], message: &str, sep: &str) -> bool {
        rules.iter().any(|r| {
            r.iter()
                .all(|p| message.split(sep).any(|frag| frag.contains(p)))
        })
    }

    fn isolate(
        text: &str,
        rules: &[Vec<&str>],
        dict: Vec<Vec<String>>,
    ) -> (Isolation, Vec<String>) {
        let iso = Isolator::new(text, dict);
        let mut answers = Vec::new();
        let mut log = Vec::new();
        loop {
            match iso.next(&answers) {
                Next::Send(q) => {
                    let m = q.message(iso.text(), "|");
                    log.push(format!("{} {}", q.step.name(), m));
                    answers.push(if blocked(rules, &m, "|") {
                        Answer::Blocked
                    } else {
                        Answer::Delivered
                    });
                }
                Next::Done(i) => return (i, log),
            }
        }
    }

    fn found(text: &str, i: &Isolation) -> Vec<Vec<String>> {
        let chars: Vec<char> = text.chars().collect();
        i.combinations.iter().map(|c| c.texts(&chars)).collect()
    }

    #[test]
    fn finds_every_combination_and_verifies_it() {
        let text = "今天天气很好，我们去公园散步。习近平在北京开会，小熊维尼也来了。后来下雨了，大家都回家了。六四那天很多人在广场。";
        let rules = vec![vec!["习近平", "小熊维尼"], vec!["六四"]];
        let (i, log) = isolate(text, &rules, Vec::new());
        assert!(i.blocked && i.incomplete.is_none(), "{i:?}");
        assert_eq!(
            found(text, &i),
            vec![
                vec!["习近平".to_string(), "小熊维尼".into()],
                vec!["六四".into()]
            ],
            "{log:#?}"
        );
        assert!(i.combinations.iter().all(|c| c.verified && !c.known));
        assert_eq!(i.sends as usize, log.len());
    }

    #[test]
    fn a_delivered_text_costs_one_send() {
        let (i, log) = isolate("天气很好", &[vec!["六四"]], Vec::new());
        assert_eq!((i.blocked, i.sends, log.len()), (false, 1, 1));
        assert!(i.combinations.is_empty());
    }

    #[test]
    fn a_known_trigger_costs_a_handful_and_the_rest_is_still_searched() {
        let text = "今天天气很好，我们去公园散步。习近平在北京开会，小熊维尼也来了。后来下雨了，大家都回家了。六四那天很多人在广场。";
        let rules = vec![vec!["习近平", "小熊维尼"], vec!["六四"]];
        let dict = vec![vec!["习近平".to_string(), "小熊维尼".to_string()]];
        let (known, _) = isolate(text, &rules, dict);
        let (unknown, _) = isolate(text, &rules, Vec::new());
        assert_eq!(found(text, &known).len(), 2);
        assert!(known.combinations[0].known && known.combinations[0].verified);
        assert!(
            known.sends < unknown.sends,
            "{} vs {}",
            known.sends,
            unknown.sends
        );
    }

    #[test]
    fn known_keywords_in_an_unknown_combination_are_searched_first() {
        let text = "今天天气很好，我们去公园散步。习近平在北京开会，小熊维尼也来了。后来下雨了，大家都回家了。六四那天很多人在广场。";
        let rules = vec![vec!["习近平", "小熊维尼"]];
        // Keywords only, as keyword lists give them: how they combine is
        // not known, and 六四 is no rule here.
        let dict: Vec<Vec<String>> = ["六四", "习近平", "小熊维尼"]
            .iter()
            .map(|k| vec![k.to_string()])
            .collect();
        let (known, log) = isolate(text, &rules, dict);
        let (unknown, _) = isolate(text, &rules, Vec::new());
        assert_eq!(
            found(text, &known),
            vec![vec!["习近平".to_string(), "小熊维尼".into()]],
            "{log:#?}"
        );
        assert!(!known.combinations[0].known && known.combinations[0].verified);
        assert!(
            known.sends + 5 <= unknown.sends,
            "{} vs {}",
            known.sends,
            unknown.sends
        );
    }

    #[test]
    fn known_triggers_found_together_are_verified_together_and_cut_as_verified() {
        // 六四+烛光 is blocked for 六四 alone: verification drops 烛光, and
        // 烛光 must stay in the text for the rule 烛光+维尼.
        let text = "那年六四，广场上有烛光，后来小熊维尼也来了，大家都回家了。";
        let rules = vec![vec!["六四"], vec!["烛光", "维尼"], vec!["广场", "大家"]];
        let dict: Vec<Vec<String>> = [
            vec!["六四", "烛光"],
            vec!["广场", "大家"],
            vec!["烛光", "维尼"],
        ]
        .iter()
        .map(|r| r.iter().map(|p| p.to_string()).collect())
        .collect();
        let (i, log) = isolate(text, &rules, dict);
        let mut got = found(text, &i);
        got.sort();
        assert_eq!(
            got,
            [
                vec!["六四".to_string()],
                vec!["广场".into(), "大家".into()],
                vec!["烛光".into(), "维尼".into()]
            ],
            "{log:#?}"
        );
        assert!(
            i.combinations.iter().all(|c| c.known && c.verified),
            "{log:#?}"
        );
        assert!(i.incomplete.is_none());
        // The two-part triggers' messages without one part went together.
        assert!(
            log.iter()
                .any(|l| l.starts_with("verify") && l.matches('|').count() >= 1),
            "{log:#?}"
        );
    }

    #[test]
    fn the_length_search_tree_is_optimal_for_its_weights() {
        // Outcomes 1..=3, nearly all weight on 3: test 2 first (one test
        // for the likely 3), not 1.
        let t = SearchTree::new(&[0.05, 0.05, 0.9]);
        assert_eq!(t.split(0, 3), 2);
        let t = SearchTree::new(&[0.9, 0.05, 0.05]);
        assert_eq!(t.split(0, 3), 1);
    }

    #[test]
    fn a_dictionary_entry_with_a_needless_part_loses_it() {
        let text = "今天天气很好，法轮功，我们去公园散步。";
        let rules = vec![vec!["法轮功"]];
        let dict = vec![vec!["法轮功".to_string(), "公园".to_string()]];
        let (i, _) = isolate(text, &rules, dict);
        assert_eq!(found(text, &i), vec![vec!["法轮功".to_string()]]);
        assert!(i.combinations[0].known);
    }

    #[test]
    fn inconclusive_answers_are_asked_again_then_reported() {
        let iso = Isolator::new("六四", Vec::new());
        let Next::Send(q) = iso.next(&[]) else {
            panic!()
        };
        // Asked again after an inconclusive answer: the same test.
        assert_eq!(iso.next(&[Answer::Inconclusive]), Next::Send(q));
        let Next::Done(i) = iso.next(&[Answer::Inconclusive; 3]) else {
            panic!()
        };
        assert_eq!(
            i.incomplete,
            Some(Incomplete::Inconclusive {
                step: Step::Whole,
                times: 3
            })
        );
        assert!(!i.blocked, "never answered, so not known to be blocked");
    }
}
