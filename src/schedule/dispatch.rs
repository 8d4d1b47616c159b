//! The scheduler loop: settle what a crash left open, then dispatch sends as
//! they fall due and admit new trials into idle time, up to
//! `parallel_pairs` at once, each between accounts no other send in flight
//! uses, each account's sends spaced by `sends_per_minute` with jitter;
//! record every intent and outcome; back off and retry errors; grow the
//! plan as adaptive experiments ask; stop cleanly on an interrupt or at
//! `max_runtime_s`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use futures_util::stream::{FuturesUnordered, StreamExt};
use rand::{Rng, SeedableRng};

use super::files::{prepare_file, transmission};
use super::journal::{Journal, Record};
use super::manifest::StopReason;
use super::outputs::write_outputs;
use super::state::{self, RunState, TrialStatus};
use super::{ledger, record, Ctx};
use crate::corpus::hash::PerceptualHasher;
use crate::platform::{self, Observation, Platform};
use crate::probe::plan::{Content, Plan, Trial};

/// One trial in the scheduler.
struct Active {
    idx: usize,
    t0: Option<DateTime<Utc>>,
    not_before: DateTime<Utc>,
    busy: bool,
}

type Done = (
    usize,
    usize,
    u32,
    Observation,
    Vec<String>,
    Option<&'static str>,
);

/// `settled` of an outcome found in the chats after a harness error.
const SETTLED_AFTER_ERROR: &str = "after_error";

#[allow(clippy::too_many_arguments)]
pub(super) async fn execute<P: Platform>(
    ctx: &mut Ctx<'_>,
    plan: &mut Plan,
    wd: &P,
    st: &mut RunState,
    jr: &mut Journal,
    quiet: bool,
    interrupt: impl Future<Output = ()>,
) -> anyhow::Result<StopReason> {
    let spec = ctx.spec;
    let lim = &spec.limits;
    let limits = platform::Limits {
        deliver_timeout: Duration::from_secs_f64(lim.deliver_timeout_s),
        after_sentinel: Duration::from_secs_f64(lim.after_sentinel_s),
        poll: Duration::from_millis(ctx.poll_ms),
    };
    // How long a send whose outcome an error left unknown is looked for.
    let settle_budget = Duration::from_secs_f64((4.0 * lim.deliver_timeout_s).max(60.0));
    let mut ledger = ledger::Ledger::open(&spec.corpus)?;
    let hasher = PerceptualHasher::new();
    let mut rng = rand_chacha::ChaCha8Rng::from_os_rng();
    std::fs::create_dir_all(ctx.dir.join("files/sent"))?;
    // Log every account in at once rather than one by one on first use.
    let mut aliases: Vec<&str> = plan
        .trials
        .iter()
        .flat_map(|t| t.sends.iter())
        .flat_map(|s| [s.chat.from.as_str(), s.chat.observer.as_str()])
        .collect();
    aliases.sort_unstable();
    aliases.dedup();
    futures_util::future::join_all(aliases.iter().map(|a| wd.ensure_session(a))).await;
    // Settle what a crash left open.
    let mut active: Vec<Active> = Vec::new();
    let mut pending: VecDeque<usize> = VecDeque::new();
    for (i, t) in plan.trials.iter().enumerate() {
        match st.trial_status(t) {
            TrialStatus::Done => {}
            TrialStatus::Pending(s, attempt) => {
                let tr = transmission(ctx, st, t, s, attempt, lim.sentinel)?;
                let nonce = attempt_nonce(st, &t.sends[s].send_id, attempt);
                let send_id = &t.sends[s].send_id;
                let r = match platform::settle_patiently(wd, &tr, &limits, &nonce, settle_budget)
                    .await
                {
                    Ok(None) => Record::NotSent {
                        send_id: send_id.clone(),
                        attempt,
                        at: crate::clock::now(),
                    },
                    Ok(Some(o)) => outcome_record(
                        send_id,
                        attempt,
                        &o,
                        Some(if o.sentinel_observed_at.is_some() {
                            "sentinel"
                        } else {
                            "history"
                        }),
                    ),
                    // Whether it went out is unknown: never send it again.
                    Err(e) => outcome_record(send_id, attempt, &e, Some(state::UNSETTLED)),
                };
                record(jr, st, &r)?;
                if st.trial_status(t) != TrialStatus::Done {
                    active.push(Active {
                        idx: i,
                        t0: st.t0(t),
                        not_before: crate::clock::now(),
                        busy: false,
                    });
                }
            }
            TrialStatus::Next(..) => {
                if st.started(t) {
                    active.push(Active {
                        idx: i,
                        t0: st.t0(t),
                        not_before: crate::clock::now(),
                        busy: false,
                    });
                } else {
                    pending.push_back(i);
                }
            }
        }
    }
    // A trial settled just now may be one an adaptive experiment follows up.
    pending.extend(grow_plan(&ctx.dir, plan, st)?);
    let mut done_trials = write_outputs(ctx, plan, st, None)?;
    let total = plan.trials.len();
    // Our own ETA (below): a rate of finished trials says little while
    // trials wait out their delays side by side.
    let pb = crate::fsutil::progress_bar_with(
        total as u64,
        "trials [{elapsed_precise}] {bar:30} {pos}/{len} · {msg}",
        quiet,
    );
    pb.set_position(done_trials as u64);
    let counts_msg = |st: &RunState| {
        let c = st.counts();
        format!(
            "{} delivered, {} blocked, {} lost, {} error",
            c[0].1, c[1].1, c[2].1, c[3].1
        )
    };
    pb.set_message(counts_msg(st));
    let gap_s = 60.0 / lim.sends_per_minute;
    let eta = |plan: &Plan,
               st: &RunState,
               active: &[Active],
               pending: &VecDeque<usize>,
               est: f64|
     -> String {
        let now = crate::clock::now();
        let mut sends = 0usize;
        let mut floor = 0.0f64;
        let mut per_account: HashMap<String, (usize, usize)> = HashMap::new();
        let mut count = |t: &'_ Trial, from: usize| {
            for s in &t.sends[from..] {
                let e = per_account.entry(s.chat.from.clone()).or_default();
                e.0 += 1;
                e.1 += 1;
                per_account.entry(s.chat.observer.clone()).or_default().0 += 1;
            }
            t.sends.len() - from
        };
        for a in active {
            let t = &plan.trials[a.idx];
            if let TrialStatus::Next(i, _) | TrialStatus::Pending(i, _) = st.trial_status(t) {
                sends += count(t, i);
                let last = due_at(a, t, t.sends.len() - 1);
                if a.t0.is_some() {
                    floor = floor.max((last - now).num_milliseconds() as f64 / 1000.0);
                }
            }
        }
        // The last trial to start still has its whole span ahead of it.
        let mut tail = 0.0f64;
        for &i in pending {
            let t = &plan.trials[i];
            sends += count(t, 0);
            tail = tail.max(t.span_s());
        }
        // The busiest account: its sends one at a time, spaced by the rate limit.
        let busiest = per_account
            .values()
            .map(|(busy, sent)| (*busy as f64 * est).max(*sent as f64 * gap_s))
            .fold(0.0, f64::max);
        let secs =
            ((sends as f64 * est / lim.parallel_pairs as f64).max(busiest) + tail).max(floor);
        format!("eta ~{}m{:02}s", secs as u64 / 60, secs as u64 % 60)
    };
    pb.set_message(format!(
        "{} · {}",
        counts_msg(st),
        eta(plan, st, &active, &pending, 2.0)
    ));
    let began = tokio::time::Instant::now();
    let deadline = began + Duration::from_secs_f64(lim.max_runtime_s);
    let min_gap = chrono::Duration::milliseconds((60_000.0 / lim.sends_per_minute) as i64);
    let mut next_allowed: HashMap<String, DateTime<Utc>> = HashMap::new();
    let mut busy_accounts: HashSet<String> = HashSet::new();
    let mut est_send_s = 2.0f64;
    let mut inflight: FuturesUnordered<std::pin::Pin<Box<dyn Future<Output = Done> + '_>>> =
        FuturesUnordered::new();
    let mut interrupt = std::pin::pin!(interrupt);
    let mut stopping: Option<StopReason> = None;
    loop {
        let now = crate::clock::now();
        if stopping.is_none() && tokio::time::Instant::now() >= deadline {
            stopping = Some(StopReason::MaxRuntime);
        }
        if stopping.is_none() {
            // Dispatch what is due, then admit new trials into idle time.
            loop {
                if inflight.len() >= lim.parallel_pairs as usize {
                    break;
                }
                let free = |t: &Trial,
                            s: usize,
                            busy: &HashSet<String>,
                            na: &HashMap<String, DateTime<Utc>>| {
                    let c = &t.sends[s].chat;
                    !busy.contains(&c.from)
                        && !busy.contains(&c.observer)
                        && na.get(&c.from).is_none_or(|at| *at <= now)
                };
                // Due sends of active trials, earliest first.
                let mut best: Option<(usize, DateTime<Utc>)> = None;
                for (k, a) in active.iter().enumerate() {
                    if a.busy {
                        continue;
                    }
                    let t = &plan.trials[a.idx];
                    let TrialStatus::Next(s, _) = st.trial_status(t) else {
                        continue;
                    };
                    let due = due_at(a, t, s).max(a.not_before);
                    if due <= now
                        && free(t, s, &busy_accounts, &next_allowed)
                        && best.is_none_or(|b| due < b.1)
                    {
                        best = Some((k, due));
                    }
                }
                let pick = if let Some((k, _)) = best {
                    Some(k)
                } else {
                    // Admit: the first of the next few pending trials whose
                    // first send can go now and whose timings the promised
                    // work leaves room for.
                    let promised: f64 = active
                        .iter()
                        .map(|a| {
                            let t = &plan.trials[a.idx];
                            match st.trial_status(t) {
                                TrialStatus::Next(s, _) | TrialStatus::Pending(s, _) => {
                                    (t.sends.len() - s) as f64
                                }
                                TrialStatus::Done => 0.0,
                            }
                        })
                        .sum::<f64>()
                        * est_send_s
                        / lim.parallel_pairs as f64;
                    let mut admitted = None;
                    for (q, &i) in pending.iter().enumerate().take(8) {
                        let t = &plan.trials[i];
                        let gap = t
                            .sends
                            .iter()
                            .map(|s| s.at_s)
                            .filter(|x| *x > 0.0)
                            .fold(f64::INFINITY, f64::min);
                        let room = active.is_empty() || t.sends.len() == 1 || promised <= gap;
                        if room && free(t, 0, &busy_accounts, &next_allowed) {
                            admitted = Some(q);
                            break;
                        }
                    }
                    admitted.map(|q| {
                        let i = pending.remove(q).expect("index in range");
                        active.push(Active {
                            idx: i,
                            t0: None,
                            not_before: now,
                            busy: false,
                        });
                        active.len() - 1
                    })
                };
                let Some(k) = pick else { break };
                let a = &mut active[k];
                let t = &plan.trials[a.idx];
                let TrialStatus::Next(s, attempt) = st.trial_status(t) else {
                    break;
                };
                let send = &t.sends[s];
                // Make the file and write the intent before anything is sent.
                let file_key = prepare_file(ctx, st, jr, &mut ledger, &hasher, t, &send.content)
                    .with_context(|| format!("making the probe file of {}", send.send_id))?;
                let nonce = new_nonce(&ctx.run_id, &send.send_id, attempt);
                let scheduled = if s == 0 { now } else { due_at(a, t, s) };
                let text = match &send.content {
                    Content::Text(words) => Some(platform::identity::tagged(words, &nonce)),
                    _ => None,
                };
                let intent = Record::Intent {
                    send_id: send.send_id.clone(),
                    trial_id: t.trial_id.clone(),
                    attempt,
                    at: crate::clock::now(),
                    scheduled_at: scheduled,
                    file: file_key.clone(),
                    text: text.clone(),
                    nonce: nonce.clone(),
                };
                if let Some(k) = &file_key {
                    let f = &st.files[&(t.trial_id.clone(), k.clone())];
                    ledger.record(&f.md5, &send.item_id, &ctx.run_id, &send.send_id)?;
                }
                record(jr, st, &intent)?;
                let tr = transmission(ctx, st, t, s, attempt, lim.sentinel)?;
                let c = &send.chat;
                let locked = vec![c.from.clone(), c.observer.clone()];
                for l in &locked {
                    busy_accounts.insert(l.clone());
                }
                let jitter = 1.0 + lim.jitter * rng.random::<f64>();
                next_allowed.insert(
                    c.from.clone(),
                    now + chrono::Duration::milliseconds(
                        (min_gap.num_milliseconds() as f64 * jitter) as i64,
                    ),
                );
                a.busy = true;
                let idx = a.idx;
                inflight.push(Box::pin(async move {
                    let started = tokio::time::Instant::now();
                    let obs = platform::transmit_checked(wd, &tr, &limits, &nonce).await;
                    // Never retry blind: a probe that may have gone out is
                    // first looked for in the chats (the accounts stay
                    // locked meanwhile).
                    let (mut obs, after) =
                        platform::settle_after_error(wd, &tr, &limits, &nonce, obs, settle_budget)
                            .await;
                    obs.waited_ms = started.elapsed().as_millis() as u64;
                    let settled = match after {
                        platform::AfterError::NotSent => None,
                        platform::AfterError::Settled => Some(SETTLED_AFTER_ERROR),
                        platform::AfterError::Unsettled => Some(state::UNSETTLED),
                    };
                    (idx, s, attempt, obs, locked, settled)
                }));
            }
            if active.is_empty() && pending.is_empty() && inflight.is_empty() {
                break;
            }
        } else if inflight.is_empty() {
            break;
        }
        // Wait for a send to finish, the next due time, or a stop.
        let wake = Duration::from_millis(250);
        tokio::select! {
            Some((idx, s, attempt, obs, locked, settled)) = inflight.next(), if !inflight.is_empty() => {
                for l in &locked {
                    busy_accounts.remove(l);
                }
                // The limit counts between probes as the platform got them.
                let from = &plan.trials[idx].sends[s].chat.from;
                let base = obs.confirmed_at.unwrap_or_else(crate::clock::now);
                let jitter = 1.0 + lim.jitter * rng.random::<f64>();
                let next = base + chrono::Duration::milliseconds((min_gap.num_milliseconds() as f64 * jitter) as i64);
                let e = next_allowed.entry(from.clone()).or_insert(next);
                *e = (*e).max(next);
                est_send_s = 0.8 * est_send_s + 0.2 * (obs.waited_ms as f64 / 1000.0);
                let t = &plan.trials[idx];
                let r = outcome_record(&t.sends[s].send_id, attempt, &obs, settled);
                record(jr, st, &r)?;
                let k = active.iter().position(|a| a.idx == idx).expect("active trial");
                active[k].busy = false;
                if s == 0 && obs.outcome != platform::Outcome::Error {
                    active[k].t0 = obs.sent_at;
                }
                if obs.outcome == platform::Outcome::Error {
                    // Back off: a platform that restarts, or a browser that
                    // is being rebuilt, needs a moment; 2, 4, 8 … 60 s.
                    let wait = 2i64.saturating_pow(attempt.min(6)).min(60);
                    active[k].not_before = crate::clock::now() + chrono::Duration::seconds(wait);
                }
                if st.trial_status(t) == TrialStatus::Done {
                    active.remove(k);
                    // An adaptive experiment may follow up on this trial.
                    pending.extend(grow_plan(&ctx.dir, plan, st)?);
                    pb.set_length(plan.trials.len() as u64);
                    done_trials = write_outputs(ctx, plan, st, None)?;
                    pb.set_position(done_trials as u64);
                }
                pb.set_message(format!("{} · {}", counts_msg(st), eta(plan, st, &active, &pending, est_send_s)));
            }
            _ = &mut interrupt, if stopping.is_none() => {
                stopping = Some(StopReason::Interrupted);
                pb.println("stopping: letting the sends in flight finish");
            }
            _ = tokio::time::sleep(wake) => {}
        }
    }
    pb.finish_and_clear();
    Ok(stopping.unwrap_or(StopReason::Complete))
}

/// Add the trials adaptive experiments ask for after what `st` holds, and
/// rewrite the run's plan.csv if any were added. Returns their indices.
pub(super) fn grow_plan(dir: &Path, plan: &mut Plan, st: &RunState) -> anyhow::Result<Vec<usize>> {
    let added = plan.grow(|x, t| st.finished_verdict(x, t));
    if !added.is_empty() {
        let path = dir.join("plan.csv");
        plan.save(&path)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(added)
}

fn due_at(a: &Active, t: &Trial, s: usize) -> DateTime<Utc> {
    match a.t0 {
        Some(t0) => t0 + chrono::Duration::milliseconds((t.sends[s].at_s * 1000.0) as i64),
        // Not started yet: due at once (callers take the max with not_before).
        None => DateTime::<Utc>::MIN_UTC,
    }
}

fn new_nonce(run_id: &str, send_id: &str, attempt: u32) -> String {
    let t = chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default();
    crate::corpus::hash::sha256_hex(format!("{run_id}|{send_id}|{attempt}|{t}").as_bytes())[..12]
        .to_string()
}

pub(super) fn attempt_nonce(st: &RunState, send_id: &str, attempt: u32) -> String {
    st.attempts
        .get(send_id)
        .and_then(|v| v.iter().find(|a| a.attempt == attempt))
        .map(|a| a.nonce.clone())
        .unwrap_or_default()
}

pub(super) fn outcome_record(
    send_id: &str,
    attempt: u32,
    o: &Observation,
    settled: Option<&str>,
) -> Record {
    Record::Outcome {
        send_id: send_id.to_string(),
        attempt,
        at: crate::clock::now(),
        outcome: o.outcome,
        failure: o.failure.map(|f| f.to_string()),
        error: o.error.clone(),
        sent_at: o.sent_at,
        observed_at: o.observed_at,
        sentinel_observed_at: o.sentinel_observed_at,
        latency_ms: o.latency_ms,
        match_distance: o.match_distance,
        match_margin: o.match_margin,
        settled: settled.map(str::to_string),
    }
}
