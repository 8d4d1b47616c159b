//! `surveillance`: is content inspected in chats without a china account?
//! A fresh copy is seeded between intl accounts; after `delay_s` that same
//! file (`test`) and an unseeded fresh copy (`control`), in random order,
//! are sent into a chat with a china account. Blocked test, delivered
//! control: the seed was surveilled.

use std::sync::Arc;

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::{Common, Design, Experiment, ParseCx, TrialOutcomes, Verdict, INCONCLUSIVE};
use crate::dataset::Outcome;
use crate::error::InputError;
use crate::probe::chat::Chat;
use crate::probe::items::CorpusItem;
use crate::probe::plan::{num, send, trial, Content, Role, Trial};

/// The registry entry.
pub const DESIGN: Design = Design {
    name: "surveillance",
    about: "seed in an intl-only chat, then test the seeded file and an unseeded control",
    keys: &["items", "seed_chat", "delay_s"],
    parse,
    verdicts: &["surveilled", "not_surveilled", "filtered_realtime"],
    analysis: None,
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

    fn verdict(&self, _t: &Trial, o: &TrialOutcomes) -> Verdict {
        let b = |o: Option<Outcome>| o == Some(Outcome::Blocked);
        let (seed, test, control) = (
            o.role(Role::Seed),
            o.role(Role::Test),
            o.role(Role::Control),
        );
        let verdict = if !o.complete {
            INCONCLUSIVE
        } else if b(seed) || b(control) {
            "filtered_realtime"
        } else if b(test) {
            "surveilled"
        } else {
            "not_surveilled"
        };
        Verdict {
            verdict,
            seeded: test,
            control,
        }
    }
}
