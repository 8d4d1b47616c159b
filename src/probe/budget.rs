//! The daily send budget per account (`[limits] daily_sends_per_account`):
//! platforms ban accounts that send too much, so a run (one day of a
//! monitoring campaign) never makes an account send more messages than
//! this. A message is a send attempt, and its sentinel text when sentinels
//! are on.
//!
//! [`fit`] walks the plan in its order and says which trials would not fit
//! (a trial either fits whole or not at all: half a trial measures
//! nothing); `chatprobe run` refuses such a spec before anything is made,
//! listing them, and `chatprobe plan` prints the same. At run time the
//! scheduler keeps the count (adaptive follow-ups and retries are not in
//! the plan) and leaves out a trial the budget cannot carry (see
//! docs/SPEC.md).

use std::collections::BTreeMap;

use super::plan::{Plan, Trial};
use super::spec::Limits;

/// Messages one send costs an account.
pub fn per_send(limits: &Limits) -> u64 {
    1 + u64::from(limits.sentinel)
}

/// Messages each sender of `t` sends from send `from` on.
pub fn trial_cost(t: &Trial, from: usize, limits: &Limits) -> BTreeMap<String, u64> {
    let mut out: BTreeMap<String, u64> = BTreeMap::new();
    for s in t.sends.iter().skip(from) {
        *out.entry(s.chat.from.clone()).or_default() += per_send(limits);
    }
    out
}

/// One account's day.
#[derive(Debug, Clone, PartialEq)]
pub struct AccountDay {
    /// The alias.
    pub account: String,
    /// Messages the whole plan would have it send.
    pub planned: u64,
    /// Messages of the trials that fit.
    pub fitting: u64,
}

/// How a plan fits the budget.
#[derive(Debug, Clone, PartialEq)]
pub struct Fit {
    /// The budget (messages per account per run).
    pub budget: u64,
    /// Every sending account, by alias.
    pub accounts: Vec<AccountDay>,
    /// Trials that would not fit, in plan order, with the account whose
    /// budget they overrun.
    pub dropped: Vec<(String, String)>,
}

/// Fit `plan` into the budget, trials in plan order; `None` without one.
pub fn fit(plan: &Plan, limits: &Limits) -> Option<Fit> {
    let budget = limits.daily_sends_per_account?;
    let mut days: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut dropped = Vec::new();
    for t in &plan.trials {
        let cost = trial_cost(t, 0, limits);
        let over = cost
            .iter()
            .find(|(a, n)| days.get(*a).map_or(0, |d| d.1) + **n > budget)
            .map(|(a, _)| a.clone());
        for (a, n) in &cost {
            let d = days.entry(a.clone()).or_default();
            d.0 += n;
            if over.is_none() {
                d.1 += n;
            }
        }
        if let Some(a) = over {
            dropped.push((t.trial_id.clone(), a));
        }
    }
    Some(Fit {
        budget,
        accounts: days
            .into_iter()
            .map(|(account, (planned, fitting))| AccountDay {
                account,
                planned,
                fitting,
            })
            .collect(),
        dropped,
    })
}

impl Fit {
    /// Lines for the terminal: each account over its budget, and the first
    /// `show` trials that would be left out.
    pub fn describe(&self, show: usize) -> Vec<String> {
        let mut out = Vec::new();
        for a in self.accounts.iter().filter(|a| a.planned > self.budget) {
            let n = self.dropped.iter().filter(|d| d.1 == a.account).count();
            out.push(format!(
                "{}: {} messages planned, {} a day allowed: {n} trial{} would not fit",
                a.account,
                a.planned,
                self.budget,
                if n == 1 { "" } else { "s" }
            ));
        }
        for (t, a) in self.dropped.iter().take(show) {
            out.push(format!("  would drop {t} ({a})"));
        }
        if self.dropped.len() > show {
            out.push(format!("  … and {} more", self.dropped.len() - show));
        }
        out
    }
}

/// The error `chatprobe run` gives for a plan that does not fit: the spec
/// file, the key's line, every account over budget and the first trials
/// that would be left out.
pub fn refusal(spec: &super::Spec, fit: &Fit) -> crate::error::InputError {
    let at = super::locate::At {
        path: &spec.path,
        text: &spec.text,
    };
    let mut msg = String::from("a run's sends do not fit the daily budget:");
    for line in fit.describe(10) {
        msg.push_str("\n  ");
        msg.push_str(&line);
    }
    at.section("limits", "daily_sends_per_account", msg).hint(
        "raise it, give the experiments more accounts, or cut items or replicates; `chatprobe plan SPEC` lists every trial that would not fit",
    )
}

/// [`refusal`] for `chatprobe plan`, which has listed every trial that
/// would not fit already: the file, the key and the fix, without the list.
pub fn refusal_listed(spec: &super::Spec) -> crate::error::InputError {
    let at = super::locate::At {
        path: &spec.path,
        text: &spec.text,
    };
    at.section(
        "limits",
        "daily_sends_per_account",
        "a run's sends do not fit the daily budget (every trial that would not fit is listed above): `chatprobe run` refuses this spec",
    )
    .hint("raise it, give the experiments more accounts, or cut items or replicates")
}
