//! Rules that hold for all inputs, checked on many generated ones
//! (proptest): a journal cut anywhere by a crash reads as the records
//! written whole before the cut; a threshold search against any monotone
//! filter brackets the filter's cut, live or replayed; the messages new in
//! a chat view are exactly those added since the earlier look.

use std::collections::HashSet;

use chatprobe::platform::{new_since, Seen};
use chatprobe::probe::plan::Trial;
use chatprobe::probe::{Plan, Spec};
use chatprobe::schedule::journal::{self, Journal, Record};
use proptest::prelude::*;

use crate::run::Campaign;

fn not_sent(id: &str, attempt: u32) -> Record {
    Record::NotSent {
        send_id: id.to_string(),
        attempt,
        at: chrono::DateTime::from_timestamp(1_700_000_000 + i64::from(attempt), 0).unwrap(),
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
            "blocked"
        } else {
            "evaded"
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
            if judge(t) == "blocked" {
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
