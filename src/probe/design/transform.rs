//! `transform`: which changes to a blocked image evade the filter? With
//! `prime` (the default), a fresh copy is seeded between intl accounts and,
//! after `delay_s`, sent into the china chat (`prime`: it must be blocked
//! for the trial to count); then the transformed copy is sent (`test`).

use std::sync::Arc;

use rand_chacha::ChaCha8Rng;

use super::{blocked_or_evaded, Common, Design, Experiment, ParseCx, TrialOutcomes, Verdict};
use crate::corpus::transform::{SpecError, Transform};
use crate::dataset::Outcome;
use crate::error::InputError;
use crate::probe::chat::Chat;
use crate::probe::items::CorpusItem;
use crate::probe::plan::{seed_and_prime, send, trial, Content, Role, Trial};

/// The registry entry.
pub const DESIGN: Design = Design {
    name: "transform",
    about: "variants of a blocked image: which transforms evade the filter",
    keys: &["items", "seed_chat", "prime", "delay_s", "transforms"],
    parse,
    verdicts: &["blocked", "evaded"],
    analysis: None,
};

#[derive(Debug)]
struct TransformDesign {
    common: Common,
    items: Vec<CorpusItem>,
    seed_chat: Chat,
    prime: bool,
    delay_s: f64,
    transforms: Vec<Transform>,
}

/// Read a list of transforms to test (not `fresh`, no repeats) under `key`.
pub fn transforms(cx: &ParseCx, key: &str, specs: &[String]) -> Result<Vec<Transform>, InputError> {
    let mut out = Vec::new();
    for s in specs {
        let t: Transform = s
            .parse()
            .map_err(|err: SpecError| cx.err(key, err.to_string()))?;
        if matches!(t, Transform::Fresh | Transform::FreshMeta) {
            return Err(cx.err(
                key,
                format!("`{t}` is not a transform to test: every probe is fresh already"),
            ));
        }
        if out.contains(&t) {
            return Err(cx.err(key, format!("`{t}` is listed twice")));
        }
        out.push(t);
    }
    Ok(out)
}

fn parse(cx: &ParseCx) -> Result<Arc<dyn Experiment>, InputError> {
    let items = cx.items()?;
    let specs: Vec<String> = cx.require("transforms")?;
    if specs.is_empty() {
        return Err(cx.err("transforms", "the list is empty"));
    }
    let transforms = transforms(cx, "transforms", &specs)?;
    cx.images_only(&items, "transforms")?;
    Ok(Arc::new(TransformDesign {
        common: cx.common(),
        items,
        seed_chat: cx.seed_chat()?,
        prime: cx.get("prime")?.unwrap_or(true),
        delay_s: cx.delay_s()?,
        transforms,
    }))
}

impl Experiment for TransformDesign {
    fn common(&self) -> &Common {
        &self.common
    }

    fn max_sends(&self) -> u64 {
        (self.items.len() * self.transforms.len()) as u64 * self.common.replicates as u64 * 3
    }

    fn first_trials(&self, _rng: &mut ChaCha8Rng) -> Vec<Trial> {
        let mut out = Vec::new();
        for rep in 1..=self.common.replicates {
            for it in &self.items {
                for &t in &self.transforms {
                    let id = format!("{}/{}/{t}/r{rep}", self.common.name, it.item.id);
                    let mut sends = Vec::new();
                    let mut at = 0.0;
                    if self.prime {
                        sends.extend(seed_and_prime(
                            &id,
                            &self.seed_chat,
                            &self.common.test_chat,
                            self.delay_s,
                            it,
                        ));
                        at = self.delay_s;
                    }
                    sends.push(send(
                        &id,
                        Role::Test,
                        at,
                        &self.common.test_chat,
                        Content::Transformed('A', t),
                        it,
                    ));
                    out.push(trial(id, self, Some(it), t.to_string(), sends));
                }
            }
        }
        out
    }

    fn verdict(&self, _t: &Trial, o: &TrialOutcomes) -> Verdict {
        let prime = o.role(Role::Prime);
        let primed = !o.has(Role::Prime) || prime == Some(Outcome::Blocked);
        blocked_or_evaded(o, primed, prime)
    }
}
