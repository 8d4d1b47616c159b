//! `latency`: how long after a seed is a file blocked? Each trial seeds a
//! fresh copy between intl accounts and tests it once, `offset` seconds
//! later, in a chat with a china account; one trial per offset.

use std::collections::HashSet;
use std::sync::Arc;

use rand_chacha::ChaCha8Rng;

use super::{Common, Design, Experiment, ParseCx, TrialOutcomes, Verdict, INCONCLUSIVE};
use crate::dataset::Outcome;
use crate::error::InputError;
use crate::probe::chat::Chat;
use crate::probe::items::CorpusItem;
use crate::probe::plan::{num, send, trial, Content, Role, Trial};
use crate::probe::spec::{MAX_LIST, MAX_SPAN_S};

/// The registry entry.
pub const DESIGN: Design = Design {
    name: "latency",
    about: "seed fresh copies, test each once at its offset: when does blocking start",
    keys: &["items", "seed_chat", "offsets_s"],
    parse,
    verdicts: &["surveilled", "not_surveilled"],
    analysis: None,
};

#[derive(Debug)]
struct Latency {
    common: Common,
    items: Vec<CorpusItem>,
    seed_chat: Chat,
    offsets_s: Vec<f64>,
}

fn parse(cx: &ParseCx) -> Result<Arc<dyn Experiment>, InputError> {
    let items = cx.items()?;
    let offs: Vec<f64> = cx.require("offsets_s")?;
    if offs.is_empty()
        || offs.len() > MAX_LIST
        || offs
            .iter()
            .any(|o| !(o.is_finite() && *o > 0.0 && *o <= MAX_SPAN_S))
    {
        return Err(cx.err(
            "offsets_s",
            format!("offsets must be a list of 1 to {MAX_LIST} positive seconds, each at most {MAX_SPAN_S} (a year)"),
        ));
    }
    let mut seen = HashSet::new();
    for o in &offs {
        if !seen.insert(o.to_bits()) {
            return Err(cx.err("offsets_s", format!("offset {o} is listed twice")));
        }
    }
    Ok(Arc::new(Latency {
        common: cx.common(),
        items,
        seed_chat: cx.seed_chat()?,
        offsets_s: offs,
    }))
}

impl Experiment for Latency {
    fn common(&self) -> &Common {
        &self.common
    }

    fn max_sends(&self) -> u64 {
        (self.items.len() * self.offsets_s.len()) as u64 * self.common.replicates as u64 * 2
    }

    fn first_trials(&self, _rng: &mut ChaCha8Rng) -> Vec<Trial> {
        let mut out = Vec::new();
        for rep in 1..=self.common.replicates {
            for it in &self.items {
                for &off in &self.offsets_s {
                    let id = format!("{}/{}/{}s/r{rep}", self.common.name, it.item.id, num(off));
                    let sends = vec![
                        send(
                            &id,
                            Role::Seed,
                            0.0,
                            &self.seed_chat,
                            Content::Fresh('A'),
                            it,
                        ),
                        send(
                            &id,
                            Role::Test,
                            off,
                            &self.common.test_chat,
                            Content::Fresh('A'),
                            it,
                        ),
                    ];
                    out.push(trial(id, self, Some(it), num(off), sends));
                }
            }
        }
        out
    }

    fn verdict(&self, _t: &Trial, o: &TrialOutcomes) -> Verdict {
        let test = o.role(Role::Test);
        let verdict = if !o.complete || o.role(Role::Seed) == Some(Outcome::Blocked) {
            INCONCLUSIVE
        } else if test == Some(Outcome::Blocked) {
            "surveilled"
        } else {
            "not_surveilled"
        };
        Verdict {
            verdict,
            seeded: test,
            control: None,
        }
    }
}
