//! The scheduler loop: settle what a crash left open, then dispatch sends as
//! they fall due and admit new trials into idle time, up to
//! `parallel_pairs` at once, each between accounts no other send in flight
//! uses, each account's sends spaced by `sends_per_minute` with jitter;
//! record every intent and outcome; back off and retry errors; grow the
//! plan as adaptive experiments ask; stop cleanly on an interrupt or at
//! `max_runtime_s`.
//!
//! [`execute`] builds a [`Scheduler`] and runs it: [`Scheduler::settle_open`]
//! (start-up), then the loop of [`Scheduler::pick`] (what goes next),
//! [`Scheduler::dispatch`] (intent, then the send in flight) and
//! [`Scheduler::finished`] (outcome, back-off, follow-ups, outputs).

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use futures_util::stream::{FuturesUnordered, StreamExt};
use futures_util::FutureExt;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::files::{prepare_file, transmission};
use super::journal::{Journal, Record};
use super::ledger::Ledger;
use super::outputs::write_outputs;
use super::state::{self, RunState, TrialStatus};
use super::{record, Ctx};
use crate::corpus::hash::PerceptualHasher;
use crate::dataset::manifest::StopReason;
use crate::platform::{self, Observation, Platform};
use crate::probe::plan::{Content, Plan, Trial};
use crate::probe::spec::Limits;

/// One trial in the scheduler.
struct Active {
    idx: usize,
    t0: Option<DateTime<Utc>>,
    not_before: DateTime<Utc>,
    busy: bool,
}

/// A send that came back: trial, send, attempt, what was observed, the
/// accounts it held, and how an error was settled.
struct Done {
    idx: usize,
    s: usize,
    attempt: u32,
    obs: Observation,
    locked: Vec<String>,
    settled: Option<&'static str>,
}

/// A send in flight.
type InFlight<'p> = Pin<Box<dyn Future<Output = Done> + 'p>>;

/// What [`Scheduler::dispatch`] did.
enum Dispatched<'p> {
    /// A send is in flight.
    Sent(InFlight<'p>),
    /// The trial was left out (the daily budget); pick again.
    Dropped,
    /// Nothing was ready after all.
    Nothing,
}

/// `settled` of an outcome found in the chats after a harness error.
const SETTLED_AFTER_ERROR: &str = "after_error";

/// Carry out `plan` on `wd` until every trial is done, `interrupt` fires, or
/// `max_runtime_s` runs out.
pub(super) async fn execute<P: Platform>(
    ctx: &mut Ctx<'_>,
    plan: &mut Plan,
    wd: &P,
    st: &mut RunState,
    jr: &mut Journal,
    quiet: bool,
    interrupt: impl Future<Output = ()>,
) -> anyhow::Result<(StopReason, Option<String>)> {
    let mut s = Scheduler::new(ctx, plan, wd, st, jr)?;
    // An interrupt during start-up (a signal may have come before this
    // point: it is kept) stops the run before anything is sent.
    let mut interrupt = std::pin::pin!(interrupt);
    tokio::select! {
        biased;
        _ = &mut interrupt => return Ok((StopReason::Interrupted, None)),
        why = s.log_in() => if let Some(why) = why {
            return Ok((StopReason::CannotMeasure, Some(why)));
        },
    }
    tokio::select! {
        biased;
        _ = &mut interrupt => return Ok((StopReason::Interrupted, None)),
        r = s.settle_open() => r?,
    }
    s.run(quiet, interrupt).await
}

/// A run whose first this many sends all fail, with nothing measured in
/// between, cannot measure: it stops (state `failed`).
const CANNOT_MEASURE_AFTER: usize = 6;

/// The scheduler's state.
struct Scheduler<'r, 'a, P> {
    ctx: &'r mut Ctx<'a>,
    plan: &'r mut Plan,
    wd: &'r P,
    st: &'r mut RunState,
    jr: &'r mut Journal,
    lim: &'a Limits,
    limits: platform::Waits,
    /// How long a send whose outcome an error left unknown is looked for.
    settle_budget: Duration,
    ledger: Ledger,
    hasher: PerceptualHasher,
    rng: ChaCha8Rng,
    /// Trials started (or settled at start-up) and not done.
    active: Vec<Active>,
    /// Trials not started, in plan order.
    pending: VecDeque<usize>,
    /// When each account may send next (the rate limit).
    next_allowed: HashMap<String, DateTime<Utc>>,
    /// Accounts a send in flight holds.
    busy: HashSet<String>,
    /// Seconds a send takes, smoothed.
    est_send_s: f64,
    min_gap: chrono::Duration,
    /// Messages each account sent in this run (the daily budget's count).
    sent_by: HashMap<String, u64>,
    /// Accounts whose budget stopped a trial (told once).
    spent: HashSet<String>,
    /// When the outputs were last rewritten (real time, not the virtual
    /// clock: the point is to bound the work, not the run's pace).
    written_at: std::time::Instant,
    /// Whether any send of this process ended other than `error`.
    measured: bool,
    /// The errors in a row since the start, while nothing was measured.
    first_errors: Vec<platform::Observation>,
    /// Why the run cannot measure, once it is known.
    cannot_measure: Option<String>,
}

/// The outputs are rebuilt from the whole state, so rewriting them after
/// every trial would cost a run quadratic time: at most this often, then,
/// and always at a stop. A real platform's trials take seconds each, so
/// there this is still after every trial; a simulated run of thousands of
/// trials a second stays linear.
const REWRITE_EVERY: Duration = Duration::from_secs(2);

/// The generator of the rate limit's jitter: from the spec's seed, so that
/// a run on the simulated platform is repeatable in its timings too, on a
/// stream of its own per start of the run (the plan draws from stream 0;
/// a resume does not replay the first start's jitter).
fn jitter_rng(seed: u64, starts: usize) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(starts as u64 + 1);
    rng
}

impl<'r, 'a, P: Platform> Scheduler<'r, 'a, P> {
    fn new(
        ctx: &'r mut Ctx<'a>,
        plan: &'r mut Plan,
        wd: &'r P,
        st: &'r mut RunState,
        jr: &'r mut Journal,
    ) -> anyhow::Result<Self> {
        let spec = ctx.spec;
        let lim = &spec.limits;
        std::fs::create_dir_all(ctx.dir.join("files/sent"))?;
        // Messages sent before a resume count against the day too.
        let mut sent_by: HashMap<String, u64> = HashMap::new();
        for s in plan.trials.iter().flat_map(|t| t.sends.iter()) {
            let made = st
                .attempts
                .get(&s.send_id)
                .map_or(0, |v| v.iter().filter(|a| !a.not_sent).count() as u64);
            *sent_by.entry(s.chat.from.clone()).or_default() +=
                made * crate::probe::budget::per_send(lim);
        }
        Ok(Scheduler {
            sent_by,
            spent: HashSet::new(),
            written_at: std::time::Instant::now(),
            measured: false,
            first_errors: Vec::new(),
            cannot_measure: None,
            limits: platform::Waits {
                deliver_timeout: Duration::from_secs_f64(lim.deliver_timeout_s),
                after_sentinel: Duration::from_secs_f64(lim.after_sentinel_s),
                poll: Duration::from_millis(ctx.poll_ms),
            },
            settle_budget: Duration::from_secs_f64((4.0 * lim.deliver_timeout_s).max(60.0)),
            ledger: Ledger::open(&spec.corpus)?,
            hasher: PerceptualHasher::new(),
            rng: jitter_rng(spec.seed, st.starts.len()),
            active: Vec::new(),
            pending: VecDeque::new(),
            next_allowed: HashMap::new(),
            busy: HashSet::new(),
            est_send_s: 2.0,
            min_gap: chrono::Duration::milliseconds((60_000.0 / lim.sends_per_minute) as i64),
            lim,
            ctx,
            plan,
            wd,
            st,
            jr,
        })
    }

    /// Log every account in at once rather than one by one on first use.
    /// Log every account of the plan in, side by side. None: at least one
    /// could; else why none could (the run cannot measure).
    async fn log_in(&self) -> Option<String> {
        let mut aliases: Vec<&str> = self
            .plan
            .trials
            .iter()
            .flat_map(|t| t.sends.iter())
            .flat_map(|s| [s.chat.from.as_str(), s.chat.observer.as_str()])
            .collect();
        aliases.sort_unstable();
        aliases.dedup();
        let tried =
            futures_util::future::join_all(aliases.iter().map(|a| self.wd.ensure_session(a))).await;
        let failed: Vec<String> = aliases
            .iter()
            .zip(&tried)
            .filter_map(|(a, r)| r.as_ref().err().map(|e| format!("`{a}`: {e}")))
            .collect();
        (!aliases.is_empty() && failed.len() == aliases.len()).then(|| {
            format!(
                "every account failed to log in ({} of {}); {}",
                failed.len(),
                aliases.len(),
                failed.join("; ")
            )
        })
    }

    /// Settle what a crash left open (by looking, never by sending again),
    /// and sort the trials into active (started) and pending.
    async fn settle_open(&mut self) -> anyhow::Result<()> {
        for i in 0..self.plan.trials.len() {
            let t = &self.plan.trials[i];
            // A crash leaves at most one send of a trial open; a repaired
            // journal can leave several: each in turn.
            let mut settled = false;
            while let TrialStatus::Pending(s, attempt) = self.st.trial_status(t) {
                let tr = transmission(self.ctx, self.st, t, s, attempt, self.lim.sentinel)?;
                let send_id = &t.sends[s].send_id;
                let nonce = attempt_nonce(self.st, send_id, attempt);
                let seen = platform::settle_patiently(
                    self.wd,
                    &tr,
                    &self.limits,
                    &nonce,
                    self.settle_budget,
                )
                .await;
                let r = match seen {
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
                record(self.jr, self.st, &r)?;
                settled = true;
            }
            if let TrialStatus::Next(..) = self.st.trial_status(t) {
                if settled || self.st.started(t) {
                    self.activate(i, self.st.t0(t));
                } else {
                    self.pending.push_back(i);
                }
            }
        }
        // A trial settled just now may be one an adaptive experiment follows up.
        let added = grow_plan(&self.ctx.dir, self.plan, self.st)?;
        self.pending.extend(added);
        Ok(())
    }

    fn activate(&mut self, idx: usize, t0: Option<DateTime<Utc>>) {
        self.active.push(Active {
            idx,
            t0,
            not_before: crate::clock::now(),
            busy: false,
        });
    }

    /// The loop: dispatch what is due, wait for a send to finish, the next
    /// due time, or a stop.
    async fn run(
        mut self,
        quiet: bool,
        interrupt: impl Future<Output = ()>,
    ) -> anyhow::Result<(StopReason, Option<String>)> {
        let done_trials = write_outputs(self.ctx, self.plan, self.st, None)?;
        // Our own ETA (below): a rate of finished trials says little while
        // trials wait out their delays side by side.
        let pb = crate::fsutil::progress_bar_with(
            self.plan.trials.len() as u64,
            "trials [{elapsed_precise}] {bar:30} {pos}/{len} · {msg}",
            quiet,
        );
        pb.set_position(done_trials as u64);
        pb.set_message(self.progress());
        let deadline =
            tokio::time::Instant::now() + Duration::from_secs_f64(self.lim.max_runtime_s);
        let mut inflight: FuturesUnordered<InFlight<'r>> = FuturesUnordered::new();
        let mut interrupt = std::pin::pin!(interrupt);
        let mut stopping: Option<StopReason> = None;
        loop {
            if stopping.is_none() && tokio::time::Instant::now() >= deadline {
                stopping = Some(StopReason::MaxRuntime);
            }
            if stopping.is_none() && self.cannot_measure.is_some() {
                stopping = Some(StopReason::CannotMeasure);
                pb.println("stopping: the run cannot measure; letting the sends in flight finish");
            }
            // A signal is honoured before anything more is sent.
            if stopping.is_none() && interrupt.as_mut().now_or_never().is_some() {
                stopping = Some(StopReason::Interrupted);
                pb.println("stopping: letting the sends in flight finish");
            }
            if stopping.is_none() {
                let now = crate::clock::now();
                while inflight.len() < self.lim.parallel_pairs as usize {
                    let Some(k) = self.pick(now) else { break };
                    match self.dispatch(k, now)? {
                        Dispatched::Sent(f) => inflight.push(f),
                        Dispatched::Dropped => {}
                        Dispatched::Nothing => break,
                    }
                }
                if self.active.is_empty() && self.pending.is_empty() && inflight.is_empty() {
                    break;
                }
            } else if inflight.is_empty() {
                break;
            }
            tokio::select! {
                Some(done) = inflight.next(), if !inflight.is_empty() => {
                    if let Some(n) = self.finished(done)? {
                        pb.set_length(self.plan.trials.len() as u64);
                        pb.set_position(n as u64);
                    }
                    pb.set_message(self.progress());
                }
                _ = &mut interrupt, if stopping.is_none() => {
                    stopping = Some(StopReason::Interrupted);
                    pb.println("stopping: letting the sends in flight finish");
                }
                _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            }
        }
        pb.finish_and_clear();
        Ok((
            stopping.unwrap_or(StopReason::Complete),
            self.cannot_measure,
        ))
    }

    /// Whether send `s` of `t` could go now: neither account busy, and the
    /// sender's rate limit passed.
    fn free(&self, t: &Trial, s: usize, now: DateTime<Utc>) -> bool {
        let c = &t.sends[s].chat;
        !self.busy.contains(&c.from)
            && !self.busy.contains(&c.observer)
            && self.next_allowed.get(&c.from).is_none_or(|at| *at <= now)
    }

    /// What goes next: the earliest due send of an active trial, else the
    /// first of the next few pending trials whose first send can go now and
    /// whose timings the promised work leaves room for (it is made active).
    /// Returns its index in `active`.
    fn pick(&mut self, now: DateTime<Utc>) -> Option<usize> {
        let mut best: Option<(usize, DateTime<Utc>)> = None;
        for (k, a) in self.active.iter().enumerate() {
            if a.busy {
                continue;
            }
            let t = &self.plan.trials[a.idx];
            let TrialStatus::Next(s, _) = self.st.trial_status(t) else {
                continue;
            };
            let due = due_at(a, t, s).max(a.not_before);
            if due <= now && self.free(t, s, now) && best.is_none_or(|b| due < b.1) {
                best = Some((k, due));
            }
        }
        if let Some((k, _)) = best {
            return Some(k);
        }
        let promised: f64 = self
            .active
            .iter()
            .map(|a| {
                let t = &self.plan.trials[a.idx];
                match self.st.trial_status(t) {
                    TrialStatus::Next(s, _) | TrialStatus::Pending(s, _) => {
                        (t.sends.len() - s) as f64
                    }
                    TrialStatus::Done => 0.0,
                }
            })
            .sum::<f64>()
            * self.est_send_s
            / self.lim.parallel_pairs as f64;
        let q = self.pending.iter().take(8).position(|&i| {
            let t = &self.plan.trials[i];
            let gap = t
                .sends
                .iter()
                .map(|s| s.at_s)
                .filter(|x| *x > 0.0)
                .fold(f64::INFINITY, f64::min);
            let room = self.active.is_empty() || t.sends.len() == 1 || promised <= gap;
            room && self.free(t, 0, now)
        })?;
        let i = self.pending.remove(q).expect("index in range");
        self.active.push(Active {
            idx: i,
            t0: None,
            not_before: now,
            busy: false,
        });
        Some(self.active.len() - 1)
    }

    /// Make the next send of active trial `k` go: its file, its intent in
    /// the journal, the accounts held and the rate limit set; returns the
    /// send to run, or says the trial was left out or had nothing ready.
    fn dispatch(&mut self, k: usize, now: DateTime<Utc>) -> anyhow::Result<Dispatched<'r>> {
        let a = &self.active[k];
        let idx = a.idx;
        let t = &self.plan.trials[idx];
        let TrialStatus::Next(s, attempt) = self.st.trial_status(t) else {
            return Ok(Dispatched::Nothing);
        };
        let send = &t.sends[s];
        // The daily budget: a trial goes on only if every account can
        // still send what it has left.
        if let Some(budget) = self.lim.daily_sends_per_account {
            let cost = crate::probe::budget::trial_cost(t, s, self.lim);
            if let Some((account, n)) = cost
                .iter()
                .find(|(a, n)| self.sent_by.get(*a).copied().unwrap_or(0) + **n > budget)
            {
                let sent = self.sent_by.get(account).copied().unwrap_or(0);
                let reason = format!(
                    "daily budget: {account} has sent {sent} of {budget} messages and this trial needs {n} more"
                );
                if self.spent.insert(account.clone()) {
                    eprintln!("{reason}; trials that need more are left out (journal: abandon)");
                }
                let r = Record::Abandon {
                    trial_id: t.trial_id.clone(),
                    at: crate::clock::now(),
                    reason,
                };
                record(self.jr, self.st, &r)?;
                self.retire(k)?;
                return Ok(Dispatched::Dropped);
            }
        }
        // Make the file and write the intent before anything is sent.
        let file_key = prepare_file(
            self.ctx,
            self.st,
            self.jr,
            &mut self.ledger,
            &self.hasher,
            t,
            &send.content,
        )
        .with_context(|| format!("making the probe file of {}", send.send_id))?;
        let nonce = new_nonce(
            &self.ctx.run_id,
            &send.send_id,
            attempt,
            self.st.remade(&send.send_id, attempt),
        );
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
            text,
            nonce: nonce.clone(),
        };
        if let Some(key) = &file_key {
            let f = &self.st.files[&(t.trial_id.clone(), key.clone())];
            self.ledger
                .record(&f.md5, &send.item_id, &self.ctx.run_id, &send.send_id)?;
        }
        record(self.jr, self.st, &intent)?;
        *self.sent_by.entry(send.chat.from.clone()).or_default() +=
            crate::probe::budget::per_send(self.lim);
        let tr = transmission(self.ctx, self.st, t, s, attempt, self.lim.sentinel)?;
        let c = &send.chat;
        let locked = vec![c.from.clone(), c.observer.clone()];
        self.busy.extend(locked.iter().cloned());
        let jitter = 1.0 + self.lim.jitter * self.rng.random::<f64>();
        self.next_allowed.insert(
            c.from.clone(),
            now + chrono::Duration::milliseconds(
                (self.min_gap.num_milliseconds() as f64 * jitter) as i64,
            ),
        );
        self.active[k].busy = true;
        let (wd, limits, budget) = (self.wd, self.limits, self.settle_budget);
        Ok(Dispatched::Sent(Box::pin(async move {
            let started = tokio::time::Instant::now();
            let obs = platform::transmit_checked(wd, &tr, &limits, &nonce).await;
            // An outage is waited out, not counted as a harness error.
            let obs = platform::note_outage(wd, obs).await;
            // Never retry blind: a probe that may have gone out is
            // first looked for in the chats (the accounts stay locked
            // meanwhile).
            let (mut obs, after) =
                platform::settle_after_error(wd, &tr, &limits, &nonce, obs, budget).await;
            obs.waited_ms = started.elapsed().as_millis() as u64;
            let settled = match after {
                platform::AfterError::NotSent => None,
                platform::AfterError::Settled => Some(SETTLED_AFTER_ERROR),
                platform::AfterError::Unsettled => Some(state::UNSETTLED),
            };
            Done {
                idx,
                s,
                attempt,
                obs,
                locked,
                settled,
            }
        })))
    }

    /// A send came back: free its accounts, set the sender's rate limit from
    /// when the platform had the probe, journal the outcome, back off after
    /// an error; a trial now done may be followed up (adaptive designs), and
    /// the outputs are rewritten (see [`REWRITE_EVERY`]). Returns the
    /// trials done, when the outputs were rewritten.
    fn finished(&mut self, d: Done) -> anyhow::Result<Option<usize>> {
        self.note_measured(&d.obs);
        for l in &d.locked {
            self.busy.remove(l);
        }
        // The limit counts between probes as the platform got them.
        let t = &self.plan.trials[d.idx];
        let from = &t.sends[d.s].chat.from;
        let base = d.obs.confirmed_at.unwrap_or_else(crate::clock::now);
        let jitter = 1.0 + self.lim.jitter * self.rng.random::<f64>();
        let next = base
            + chrono::Duration::milliseconds(
                (self.min_gap.num_milliseconds() as f64 * jitter) as i64,
            );
        let e = self.next_allowed.entry(from.clone()).or_insert(next);
        *e = (*e).max(next);
        self.est_send_s = 0.8 * self.est_send_s + 0.2 * (d.obs.waited_ms as f64 / 1000.0);
        let r = outcome_record(&t.sends[d.s].send_id, d.attempt, &d.obs, d.settled);
        record(self.jr, self.st, &r)?;
        let k = self
            .active
            .iter()
            .position(|a| a.idx == d.idx)
            .expect("active trial");
        self.active[k].busy = false;
        if d.s == 0 && d.obs.outcome != crate::dataset::Outcome::Error {
            self.active[k].t0 = d.obs.sent_at;
        }
        if d.obs.outcome == crate::dataset::Outcome::Error {
            // Back off: a platform that restarts, or a browser that is
            // being rebuilt, needs a moment; 2, 4, 8 … 60 s.
            let wait = 2i64.saturating_pow(d.attempt.min(6)).min(60);
            self.active[k].not_before = crate::clock::now() + chrono::Duration::seconds(wait);
        }
        if self.st.trial_status(t) != TrialStatus::Done {
            return Ok(None);
        }
        self.retire(k)
    }

    /// A run that has measured nothing and whose first
    /// [`CANNOT_MEASURE_AFTER`] sends all failed the same way cannot
    /// measure: say why, naming what the last of them said.
    fn note_measured(&mut self, obs: &platform::Observation) {
        if self.measured {
            return;
        }
        if obs.outcome != crate::dataset::Outcome::Error {
            self.measured = true;
            self.first_errors.clear();
            return;
        }
        self.first_errors.push(obs.clone());
        if self.first_errors.len() >= CANNOT_MEASURE_AFTER {
            let mut codes: Vec<&str> = self
                .first_errors
                .iter()
                .map(|o| o.failure.map_or("error", |f| f.code()))
                .collect();
            codes.sort_unstable();
            codes.dedup();
            self.cannot_measure = Some(format!(
                "the first {} sends all failed ({}) and none measured anything; the last said: {}",
                self.first_errors.len(),
                codes.join(", "),
                obs.error.as_deref().unwrap_or("no details")
            ));
        }
    }

    /// Active trial `k` is done: drop it, let an adaptive experiment follow
    /// it up, rewrite the outputs if [`REWRITE_EVERY`] has passed; returns
    /// the trials done when it rewrote them.
    fn retire(&mut self, k: usize) -> anyhow::Result<Option<usize>> {
        self.active.remove(k);
        let added = grow_plan(&self.ctx.dir, self.plan, self.st)?;
        self.pending.extend(added);
        if self.written_at.elapsed() < REWRITE_EVERY {
            return Ok(None);
        }
        let done = write_outputs(self.ctx, self.plan, self.st, None)?;
        self.written_at = std::time::Instant::now();
        Ok(Some(done))
    }

    /// The progress line: counts and an ETA.
    fn progress(&self) -> String {
        let c = self.st.counts();
        format!(
            "{} delivered, {} blocked, {} lost, {} error · {}",
            c[0].1,
            c[1].1,
            c[2].1,
            c[3].1,
            self.eta()
        )
    }

    /// The time left: the sends to go over the pairs, or the busiest
    /// account's sends spaced by the rate limit, whichever is longer, plus
    /// the span of the last trial to start, and never less than the last
    /// due time of a started trial.
    fn eta(&self) -> String {
        let now = crate::clock::now();
        let gap_s = 60.0 / self.lim.sends_per_minute;
        let mut sends = 0usize;
        let mut floor = 0.0f64;
        // account → (sends it takes part in, sends it makes)
        let mut per_account: HashMap<String, (usize, usize)> = HashMap::new();
        let mut count = |t: &Trial, from: usize| {
            for s in &t.sends[from..] {
                let e = per_account.entry(s.chat.from.clone()).or_default();
                e.0 += 1;
                e.1 += 1;
                per_account.entry(s.chat.observer.clone()).or_default().0 += 1;
            }
            t.sends.len() - from
        };
        for a in &self.active {
            let t = &self.plan.trials[a.idx];
            if let TrialStatus::Next(i, _) | TrialStatus::Pending(i, _) = self.st.trial_status(t) {
                sends += count(t, i);
                let last = due_at(a, t, t.sends.len() - 1);
                if a.t0.is_some() {
                    floor = floor.max((last - now).num_milliseconds() as f64 / 1000.0);
                }
            }
        }
        // The last trial to start still has its whole span ahead of it.
        let mut tail = 0.0f64;
        for &i in &self.pending {
            let t = &self.plan.trials[i];
            sends += count(t, 0);
            tail = tail.max(t.span_s());
        }
        let est = self.est_send_s;
        // The busiest account: its sends one at a time, spaced by the rate limit.
        let busiest = per_account
            .values()
            .map(|(busy, sent)| (*busy as f64 * est).max(*sent as f64 * gap_s))
            .fold(0.0, f64::max);
        let secs =
            ((sends as f64 * est / self.lim.parallel_pairs as f64).max(busiest) + tail).max(floor);
        format!("eta ~{}m{:02}s", secs as u64 / 60, secs as u64 % 60)
    }
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

/// The nonce of an attempt's intent: derived from the run, the send, the
/// attempt and how often that attempt was found not sent and made again,
/// so that `--repair` can give a send whose intent record was lost the
/// nonce it went out with (texts carry its tag), and look for it.
pub(super) fn new_nonce(run_id: &str, send_id: &str, attempt: u32, remade: u32) -> String {
    crate::corpus::hash::sha256_hex(format!("{run_id}|{send_id}|{attempt}|{remade}").as_bytes())
        [..12]
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
