//! `keyword`: which texts are blocked? Each keyword (or `A+B` combination,
//! with its sub-combinations when `combinations` is set) of a keyword file
//! is sent once as a text into a chat with a china account.

use std::sync::Arc;

use rand_chacha::ChaCha8Rng;

use super::{
    blocked_or_evaded, Common, Design, Experiment, ItemFilter, ParseCx, TrialOutcomes, Verdict,
};
use crate::error::InputError;
use crate::probe::keywords::{load_keywords, Keyword};
use crate::probe::plan::{send_text, trial, Trial};

/// The registry entry.
pub const DESIGN: Design = Design {
    name: "keyword",
    about: "texts from keyword lists and their combinations",
    keys: &["items", "keywords", "combinations"],
    parse,
    verdicts: &["blocked", "evaded"],
    analysis: None,
};

#[derive(Debug)]
struct KeywordDesign {
    common: Common,
    keywords: Vec<Keyword>,
}

fn parse(cx: &ParseCx) -> Result<Arc<dyn Experiment>, InputError> {
    let filter: Option<ItemFilter> = cx.get("items")?;
    if let Some(f) = &filter {
        if f.is_empty() {
            return Err(cx
                .err(
                    "items",
                    "an empty filter would select every keyword silently",
                )
                .hint("leave `items` out to test every keyword, or filter by label or topic"));
        }
        if !f.id.is_empty() || !f.kind.is_empty() {
            return Err(cx.err(
                "items",
                "a keyword experiment filters keywords by `label` and `topic` only",
            ));
        }
    }
    let kpath = cx.path("keywords")?;
    let combos: u32 = cx.get("combinations")?.unwrap_or(0);
    if combos > 4 {
        return Err(cx.err("combinations", "at most 4 parts a combination"));
    }
    let f = filter.unwrap_or_default();
    let keywords = load_keywords(&kpath, combos, &f.label, &f.topic).map_err(|err| {
        if err.path == kpath {
            err
        } else {
            cx.err("keywords", err.message)
        }
    })?;
    if keywords.is_empty() {
        return Err(cx
            .err("items", "no keyword matches this filter")
            .hint("check label and topic against the keyword file"));
    }
    Ok(Arc::new(KeywordDesign {
        common: cx.common(),
        keywords,
    }))
}

impl Experiment for KeywordDesign {
    fn common(&self) -> &Common {
        &self.common
    }

    fn max_sends(&self) -> u64 {
        self.keywords.len() as u64 * self.common.replicates as u64
    }

    fn first_trials(&self, _rng: &mut ChaCha8Rng) -> Vec<Trial> {
        let mut out = Vec::new();
        for rep in 1..=self.common.replicates {
            for k in &self.keywords {
                let id = format!("{}/{}/r{rep}", self.common.name, k.joined());
                let s = send_text(&id, &self.common.test_chat, k.parts.join(" "));
                let mut t = trial(id, self, None, k.joined(), vec![s]);
                t.keyword = Some(k.clone());
                out.push(t);
            }
        }
        out
    }

    fn verdict(&self, _t: &Trial, o: &TrialOutcomes) -> Verdict {
        blocked_or_evaded(o, true, None)
    }
}
