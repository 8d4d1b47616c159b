//! `threshold` (adaptive): how strong must a transform be to evade the
//! filter? For each item, a bisection over the transform's parameter
//! between `blocked_at` (a value at which the image is still blocked) and
//! `evaded_at` (one at which it is expected to evade): each step is a
//! transform trial (seed, prime, test) at the midpoint; a blocked test
//! moves `blocked_at` there, an evading one moves `evaded_at`, and an
//! inconclusive step is repeated. `steps` trials per item and replicate.
//! Transforms with whole-number parameters (`jpeg`, `border`, `tile`,
//! `brightness`, `noise`) are searched over whole numbers and stop when the
//! two ends are adjacent.
//!
//! Its analysis table, `threshold_search.csv`: per search (experiment,
//! item, replicate), the blocked and the evading value closest to each
//! other, and the threshold estimate between them.

use std::collections::HashMap;
use std::sync::Arc;

use rand_chacha::ChaCha8Rng;

use super::{
    blocked_or_evaded, Common, Design, Experiment, Finished, ParseCx, TrialOutcomes, TrialVerdict,
};
use crate::corpus::transform::Transform;
use crate::dataset::{Outcome, Verdict};
use crate::error::InputError;
use crate::probe::chat::Chat;
use crate::probe::items::CorpusItem;
use crate::probe::plan::{num, seed_and_prime, send, trial, Content, Role, Trial};
use crate::ranges::{Declared, Range};

/// The registry entry.
pub const DESIGN: Design = Design {
    name: "threshold",
    about:
        "bisect a transform's parameter for the value at which a blocked image evades (adaptive)",
    keys: &[
        "items",
        "seed_chat",
        "delay_s",
        "transform",
        "blocked_at",
        "evaded_at",
        "steps",
    ],
    ranges: &[
        super::parse::DELAY_S,
        Declared {
            path: "steps",
            range: Range::int(1, MAX_STEPS as i64),
        },
        Declared {
            path: "blocked_at",
            range: Range::float(-1e9, 1e9),
        },
        Declared {
            path: "evaded_at",
            range: Range::float(-1e9, 1e9),
        },
    ],
    parse,
    verdicts: &[Verdict::Blocked, Verdict::Evaded],
    analysis: Some(|| Box::new(Searches::default())),
    findings: None,
};

/// Most steps of one search.
const MAX_STEPS: u32 = 30;

#[derive(Debug)]
struct Threshold {
    common: Common,
    items: Vec<CorpusItem>,
    seed_chat: Chat,
    delay_s: f64,
    transform: String,
    whole: bool,
    blocked_at: f64,
    evaded_at: f64,
    steps: u32,
}

fn parse(cx: &ParseCx) -> Result<Arc<dyn Experiment>, InputError> {
    let items = cx.items()?;
    cx.images_only(&items, "transforms")?;
    let transform: String = cx.require("transform")?;
    let blocked_at: f64 = cx.require("blocked_at")?;
    let evaded_at: f64 = cx.require("evaded_at")?;
    let steps: u32 = cx.get("steps")?.unwrap_or(5);
    if blocked_at == evaded_at {
        return Err(cx.err(
            "evaded_at",
            "blocked_at and evaded_at must be two different numbers",
        ));
    }
    // Every value the search can try must make a transform: check those
    // nearest each end.
    let whole = spec_of(&transform, 0.5, false)
        .parse::<Transform>()
        .is_err();
    let (nearest_lo, nearest_hi) = if whole {
        let dir = (evaded_at - blocked_at).signum();
        (blocked_at.round() + dir, evaded_at.round() - dir)
    } else {
        let step = (evaded_at - blocked_at) / 2f64.powi(steps as i32);
        (blocked_at + step, evaded_at - step)
    };
    for (key, v) in [("blocked_at", nearest_lo), ("evaded_at", nearest_hi)] {
        let spec = spec_of(&transform, v, whole);
        let t = spec.parse::<Transform>().map_err(|e| {
            cx.err(key, format!("`{spec}`: {e}"))
                .hint("`transform` is a transform's name taking a number, e.g. \"crop\", \"blur\", \"jpeg\"")
        })?;
        super::transform::transforms(cx, "transform", &[t.to_string()])?;
    }
    Ok(Arc::new(Threshold {
        common: cx.common(),
        items,
        seed_chat: cx.seed_chat()?,
        delay_s: cx.delay_s()?,
        transform,
        whole,
        blocked_at,
        evaded_at,
        steps,
    }))
}

/// `name:value` (a whole value for whole-number transforms).
fn spec_of(name: &str, v: f64, whole: bool) -> String {
    if whole {
        format!("{name}:{}", v.round() as i64)
    } else {
        format!("{name}:{}", num((v * 1e6).round() / 1e6))
    }
}

impl Threshold {
    /// The trial of step `k` (1-based) of the search of `it`, replicate `rep`, at `v`.
    fn step(&self, it: &CorpusItem, rep: u32, k: u32, v: f64) -> Trial {
        let spec = spec_of(&self.transform, v, self.whole);
        let t: Transform = spec.parse().expect("checked when the spec was read");
        let id = format!("{}/{}/s{k}/r{rep}", self.common.name, it.item.id);
        let d = self.delay_s;
        let [seed, prime] = seed_and_prime(&id, &self.seed_chat, &self.common.test_chat, d, it);
        let sends = vec![
            seed,
            prime,
            send(
                &id,
                Role::Test,
                d,
                &self.common.test_chat,
                Content::Transformed('A', t),
                it,
            ),
        ];
        trial(id, self, Some(it), t.to_string(), sends)
    }

    /// The midpoint of `lo` and `hi`, or `None` when whole numbers are adjacent.
    fn mid(&self, lo: f64, hi: f64) -> Option<f64> {
        if self.whole {
            let (lo, hi) = (lo.round(), hi.round());
            ((hi - lo).abs() > 1.0).then(|| ((lo + hi) / 2.0).round())
        } else {
            Some((lo + hi) / 2.0)
        }
    }
}

impl Experiment for Threshold {
    fn common(&self) -> &Common {
        &self.common
    }

    fn max_sends(&self) -> u64 {
        self.items.len() as u64 * self.common.replicates as u64 * self.steps as u64 * 3
    }

    fn first_trials(&self, _rng: &mut ChaCha8Rng) -> Vec<Trial> {
        let Some(v) = self.mid(self.blocked_at, self.evaded_at) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for rep in 1..=self.common.replicates {
            for it in &self.items {
                out.push(self.step(it, rep, 1, v));
            }
        }
        out
    }

    fn adaptive(&self) -> bool {
        true
    }

    fn next_trials(&self, seen: &[Finished<'_>], _planned: &[&Trial]) -> Vec<Trial> {
        let verdicts: HashMap<&str, Verdict> = seen
            .iter()
            .map(|f| (f.trial.trial_id.as_str(), f.verdict))
            .collect();
        let mut out = Vec::new();
        for rep in 1..=self.common.replicates {
            for it in &self.items {
                // Replay the search from its first step.
                let (mut lo, mut hi) = (self.blocked_at, self.evaded_at);
                for k in 1..=self.steps {
                    let Some(v) = self.mid(lo, hi) else { break };
                    let id = format!("{}/{}/s{k}/r{rep}", self.common.name, it.item.id);
                    let Some(verdict) = verdicts.get(id.as_str()) else {
                        // Not finished yet (or not asked for yet: ask now).
                        if k > 1 {
                            out.push(self.step(it, rep, k, v));
                        }
                        break;
                    };
                    match *verdict {
                        Verdict::Blocked => lo = v,
                        Verdict::Evaded => hi = v,
                        _ => {} // inconclusive: the next step tries the same value
                    }
                }
            }
        }
        out
    }

    fn verdict(&self, _t: &Trial, o: &TrialOutcomes) -> TrialVerdict {
        let prime = o.role(Role::Prime);
        blocked_or_evaded(o, prime == Some(Outcome::Blocked), prime)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn midpoints_halve_and_whole_numbers_stop_when_adjacent() {
        let chat = |to: &str| Chat {
            from: "a".into(),
            target: crate::platform::Target::Direct(to.into()),
            observer: to.into(),
        };
        let mut t = Threshold {
            common: Common {
                design: DESIGN.name,
                name: "x".into(),
                test_chat: chat("c"),
                replicates: 1,
            },
            items: Vec::new(),
            seed_chat: chat("b"),
            delay_s: 1.0,
            transform: "jpeg".into(),
            whole: true,
            blocked_at: 90.0,
            evaded_at: 10.0,
            steps: 10,
        };
        assert_eq!(t.mid(90.0, 10.0), Some(50.0));
        assert_eq!(t.mid(51.0, 50.0), None);
        assert_eq!(t.mid(52.0, 50.0), Some(51.0));
        t.whole = false;
        assert_eq!(t.mid(0.0, 0.5), Some(0.25));
        assert_eq!(spec_of("crop", 0.1 + 0.2, false), "crop:0.3");
        assert_eq!(spec_of("jpeg", 50.4, true), "jpeg:50");
    }
}

/// The analysis: every search's steps, by (experiment_name, item_id,
/// replicate).
#[derive(Default)]
struct Searches {
    steps: std::collections::BTreeMap<(String, String, String), Search>,
}

/// One search's steps.
#[derive(Default)]
struct Search {
    /// The transform's name.
    transform: String,
    /// (value, blocked) of each conclusive step.
    steps: Vec<(f64, bool)>,
    /// Inconclusive steps.
    inconclusive: u64,
}

impl super::analysis::Analysis for Searches {
    fn trial(&mut self, t: &crate::dataset::TrialRow) {
        // `crop:0.25`; trial ids end in `/sK/rR`.
        let Some((name, value)) = t.parameter.split_once(':') else {
            return;
        };
        let Ok(value) = value.parse::<f64>() else {
            return;
        };
        let replicate = t
            .trial_id
            .rsplit('/')
            .next()
            .and_then(|r| r.strip_prefix('r'))
            .unwrap_or("1")
            .to_string();
        let e = self
            .steps
            .entry((t.experiment_name.clone(), t.item_id.clone(), replicate))
            .or_insert_with(|| Search {
                transform: name.to_string(),
                ..Search::default()
            });
        match t.verdict {
            Verdict::Blocked => e.steps.push((value, true)),
            Verdict::Evaded => e.steps.push((value, false)),
            _ => e.inconclusive += 1,
        }
    }

    fn finish(
        self: Box<Self>,
        _interval: crate::stats::Interval,
    ) -> Vec<crate::dataset::tables::Table> {
        let header = [
            "experiment_name",
            "item_id",
            "replicate",
            "transform",
            "steps",
            "inconclusive",
            "blocked_nearest",
            "evaded_nearest",
            "threshold",
            "consistent",
        ];
        let fmt = |x: Option<f64>| x.map(|v| format!("{v}")).unwrap_or_default();
        let rows = self
            .steps
            .into_iter()
            .map(|((name, item, rep), search)| {
                let Search {
                    transform,
                    steps,
                    inconclusive,
                } = search;
                let found = bracket(&steps);
                let (b, e) = found.unwrap_or((None, None));
                let threshold = b.zip(e).map(|(b, e)| (b + e) / 2.0);
                let consistent = found.is_some();
                vec![
                    name,
                    item,
                    rep,
                    transform,
                    (steps.len() as u64 + inconclusive).to_string(),
                    inconclusive.to_string(),
                    fmt(b),
                    fmt(e),
                    fmt(threshold),
                    crate::dataset::bool_cell(consistent).to_string(),
                ]
            })
            .collect();
        vec![crate::dataset::tables::Table {
            file: "threshold_search.csv".into(),
            title: "Threshold searches".into(),
            about: "Each row is one bisection (design threshold): the transform's blocked and evading values closest to each other, and the threshold estimate halfway between. consistent = false: the blocked and evading values interleave (a filter that is not monotone in the parameter, or noise), so there is no single threshold.".into(),
            header: header.iter().map(|h| h.to_string()).collect(),
            rows,
            summary: Vec::new(),
            figures: Vec::new(),
            section: None,
        }]
    }
}

/// The blocked and the evading value nearest each other, if every blocked
/// value lies on one side of every evading one (either direction); one side
/// alone if the search saw only one; `None` if they interleave.
fn bracket(steps: &[(f64, bool)]) -> Option<(Option<f64>, Option<f64>)> {
    let blocked: Vec<f64> = steps.iter().filter(|s| s.1).map(|s| s.0).collect();
    let evaded: Vec<f64> = steps.iter().filter(|s| !s.1).map(|s| s.0).collect();
    let max = |v: &[f64]| v.iter().copied().reduce(f64::max);
    let min = |v: &[f64]| v.iter().copied().reduce(f64::min);
    match (blocked.is_empty(), evaded.is_empty()) {
        (true, true) => Some((None, None)),
        // One side only: which end is nearer the threshold depends on the
        // search's direction, unknown here; the value a bisection reaches
        // last is the extreme one in practice (it moves one way).
        (false, true) => Some((max(&blocked), None)),
        (true, false) => Some((None, min(&evaded))),
        (false, false) => {
            let (bmax, bmin, emax, emin) = (
                max(&blocked).expect("some"),
                min(&blocked).expect("some"),
                max(&evaded).expect("some"),
                min(&evaded).expect("some"),
            );
            if bmax < emin {
                Some((Some(bmax), Some(emin)))
            } else if bmin > emax {
                Some((Some(bmin), Some(emax)))
            } else {
                None
            }
        }
    }
}

#[cfg(test)]
mod analysis_tests {
    use super::bracket;

    #[test]
    fn brackets_either_direction_and_refuses_interleaving() {
        let up = [
            (0.25, true),
            (0.375, false),
            (0.3125, false),
            (0.28125, true),
        ];
        assert_eq!(bracket(&up), Some((Some(0.28125), Some(0.3125))));
        let down = [(40.0, false), (70.0, true), (55.0, true), (47.0, false)];
        assert_eq!(bracket(&down), Some((Some(55.0), Some(47.0))));
        let noisy = [(0.2, true), (0.3, false), (0.4, true)];
        assert_eq!(bracket(&noisy), None);
        let one_side = [(0.25, false), (0.125, false)];
        assert_eq!(bracket(&one_side), Some((None, Some(0.125))));
    }
}
