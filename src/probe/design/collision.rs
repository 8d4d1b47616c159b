//! `collision`: does the filter match by MD5 alone? Two different files with
//! one MD5: the first is seeded between intl accounts, the second tested in
//! a chat with a china account after `delay_s`.

use std::sync::Arc;

use rand_chacha::ChaCha8Rng;

use super::{blocked_or_evaded, Common, Design, Experiment, ParseCx, TrialOutcomes, TrialVerdict};
use crate::dataset::Verdict;
use crate::error::InputError;
use crate::probe::chat::Chat;
use crate::probe::items::CorpusItem;
use crate::probe::plan::{send, trial, Content, Role, Trial};

/// The registry entry.
pub const DESIGN: Design = Design {
    name: "collision",
    about: "two files with one MD5: seed the first, test the second",
    keys: &["pairs", "seed_chat", "delay_s"],
    ranges: &[super::parse::DELAY_S],
    parse,
    verdicts: &[Verdict::Blocked, Verdict::Evaded],
    analysis: None,
    findings: None,
};

#[derive(Debug)]
struct Collision {
    common: Common,
    pairs: Vec<(CorpusItem, CorpusItem)>,
    seed_chat: Chat,
    delay_s: f64,
}

fn parse(cx: &ParseCx) -> Result<Arc<dyn Experiment>, InputError> {
    let list: Vec<[String; 2]> = cx.require("pairs")?;
    if list.is_empty() {
        return Err(cx.err("pairs", "the list is empty"));
    }
    let mut pairs = Vec::new();
    for [a, b] in list {
        let (ia, ib) = (cx.item(&a, "pairs")?, cx.item(&b, "pairs")?);
        if a == b {
            return Err(cx.err("pairs", format!("`{a}` is paired with itself")));
        }
        if ia.index.md5 != ib.index.md5 {
            return Err(cx
                .err("pairs", format!("`{a}` and `{b}` have different MD5s"))
                .hint("a collision pair is two different files with one MD5"));
        }
        pairs.push((ia, ib));
    }
    Ok(Arc::new(Collision {
        common: cx.common(),
        pairs,
        seed_chat: cx.seed_chat()?,
        delay_s: cx.delay_s()?,
    }))
}

impl Experiment for Collision {
    fn common(&self) -> &Common {
        &self.common
    }

    fn max_sends(&self) -> u64 {
        self.pairs.len() as u64 * self.common.replicates as u64 * 2
    }

    fn first_trials(&self, _rng: &mut ChaCha8Rng) -> Vec<Trial> {
        let mut out = Vec::new();
        for rep in 1..=self.common.replicates {
            for (a, b) in &self.pairs {
                let id = format!("{}/{}+{}/r{rep}", self.common.name, a.item.id, b.item.id);
                let sends = vec![
                    send(
                        &id,
                        Role::Seed,
                        0.0,
                        &self.seed_chat,
                        Content::Original(a.item.id.clone()),
                        a,
                    ),
                    send(
                        &id,
                        Role::Test,
                        self.delay_s,
                        &self.common.test_chat,
                        Content::Original(b.item.id.clone()),
                        b,
                    ),
                ];
                out.push(trial(id, self, Some(b), a.item.id.clone(), sends));
            }
        }
        out
    }

    fn verdict(&self, _t: &Trial, o: &TrialOutcomes) -> TrialVerdict {
        blocked_or_evaded(o, true, None)
    }
}
