//! `expiry`: how long does a blocked file stay blocked? A fresh copy is
//! seeded, confirmed blocked (`prime`) after `delay_s`, then retested every
//! `retest_every_s`, `retests` times.

use std::sync::Arc;

use rand_chacha::ChaCha8Rng;

use super::{Common, Design, Experiment, ParseCx, TrialOutcomes, Verdict, INCONCLUSIVE};
use crate::dataset::Outcome;
use crate::error::InputError;
use crate::probe::chat::Chat;
use crate::probe::items::CorpusItem;
use crate::probe::plan::{num, seed_and_prime, send, trial, Content, Role, Trial};
use crate::probe::spec::{MAX_LIST, MAX_SPAN_S};

/// The registry entry.
pub const DESIGN: Design = Design {
    name: "expiry",
    about: "how long a blocked hash stays blocked (retests after a confirmed block)",
    keys: &["items", "seed_chat", "delay_s", "retest_every_s", "retests"],
    parse,
    verdicts: &["expired", "still_blocked"],
    analysis: None,
};

#[derive(Debug)]
struct Expiry {
    common: Common,
    items: Vec<CorpusItem>,
    seed_chat: Chat,
    delay_s: f64,
    retest_every_s: f64,
    retests: u32,
}

fn parse(cx: &ParseCx) -> Result<Arc<dyn Experiment>, InputError> {
    let items = cx.items()?;
    let every: f64 = cx.require("retest_every_s")?;
    let k: u32 = cx.require("retests")?;
    let delay_s = cx.delay_s()?;
    if !(every.is_finite() && every > 0.0 && every <= MAX_SPAN_S) {
        return Err(cx.err(
            "retest_every_s",
            format!("must be a positive number of seconds, at most {MAX_SPAN_S} (a year)"),
        ));
    }
    if !(1..=MAX_LIST as u32).contains(&k) {
        return Err(cx.err("retests", format!("must be 1 to {MAX_LIST}, not {k}")));
    }
    if every * k as f64 + delay_s > MAX_SPAN_S {
        return Err(cx
            .err(
                "retests",
                format!("{k} retests every {every} s span more than a year ({MAX_SPAN_S} s)"),
            )
            .hint("split the campaign into runs, or retest less often"));
    }
    Ok(Arc::new(Expiry {
        common: cx.common(),
        items,
        seed_chat: cx.seed_chat()?,
        delay_s,
        retest_every_s: every,
        retests: k,
    }))
}

impl Experiment for Expiry {
    fn common(&self) -> &Common {
        &self.common
    }

    fn max_sends(&self) -> u64 {
        self.items.len() as u64 * self.common.replicates as u64 * (2 + self.retests as u64)
    }

    fn first_trials(&self, _rng: &mut ChaCha8Rng) -> Vec<Trial> {
        let mut out = Vec::new();
        for rep in 1..=self.common.replicates {
            for it in &self.items {
                let id = format!("{}/{}/r{rep}", self.common.name, it.item.id);
                let mut sends = seed_and_prime(
                    &id,
                    &self.seed_chat,
                    &self.common.test_chat,
                    self.delay_s,
                    it,
                )
                .to_vec();
                for k in 1..=self.retests {
                    let at = self.delay_s + k as f64 * self.retest_every_s;
                    let mut s = send(
                        &id,
                        Role::Retest,
                        at,
                        &self.common.test_chat,
                        Content::Fresh('A'),
                        it,
                    );
                    s.send_id = format!("{id}/retest{k}");
                    sends.push(s);
                }
                out.push(trial(id, self, Some(it), num(self.retest_every_s), sends));
            }
        }
        out
    }

    fn verdict(&self, _t: &Trial, o: &TrialOutcomes) -> Verdict {
        let prime = o.role(Role::Prime);
        let retests: Vec<Option<Outcome>> = o
            .sends
            .iter()
            .filter(|(r, _)| *r == Role::Retest)
            .map(|(_, o)| *o)
            .collect();
        let last = retests.last().copied().flatten();
        let verdict = if !o.complete || prime != Some(Outcome::Blocked) {
            INCONCLUSIVE
        } else if retests.contains(&Some(Outcome::Delivered)) {
            "expired"
        } else {
            "still_blocked"
        };
        Verdict {
            verdict,
            seeded: last,
            control: prime,
        }
    }
}
