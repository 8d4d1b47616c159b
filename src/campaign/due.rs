//! `chatprobe run SPEC --if-due PERIOD --at HH:MM`: the command a schedule
//! installs (crontab line or systemd timer, see [`super::install`]). The
//! timer fires often (hourly, or every minute for periods under an hour);
//! this decides whether a run is due, so that the timer daemon needs no
//! memory of its own:
//!
//! - the spec's runs are due at *slots*: `--at` local time every day, and
//!   every PERIOD after it for periods that divide a day (12h, 6h, 30m …);
//!   periods of whole days (48h, 7d) fall on every n-th day since
//!   1970-01-01;
//! - a run is due when no run of the spec has started since the latest slot:
//!   a machine that was off at 03:00 runs once when it is back, not once per
//!   missed day;
//! - an interrupted run started since the latest slot (the machine rebooted
//!   mid-run) is resumed rather than started again;
//! - the campaign lock (`results/.every-<name>.lock`, the one `--every`
//!   takes) keeps two runs of one spec from overlapping: a tick that finds
//!   it held does nothing.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Local, NaiveTime, TimeZone, Utc};

use crate::dataset::manifest::RunStatus;
use crate::dataset::runs::list_runs;
use crate::error::InputError;

/// When a spec's runs fall due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slots {
    /// The period: divides a day, or is whole days.
    pub period: Duration,
    /// The local time of day the slots are anchored at.
    pub at: NaiveTime,
}

const DAY: u64 = 86_400;

impl Slots {
    /// Check a period and an `HH:MM` time (`--every`/`--if-due`, `--at`).
    pub fn new(period: Duration, at: &str) -> Result<Slots, InputError> {
        let at = NaiveTime::parse_from_str(at, "%H:%M").map_err(|_| {
            InputError::new("--at", format!("`{at}` is not a time of day"))
                .hint("HH:MM in local time, e.g. 03:00")
        })?;
        let s = period.as_secs();
        if period.subsec_nanos() != 0 || s < 60 || !(DAY.is_multiple_of(s) || s.is_multiple_of(DAY))
        {
            return Err(InputError::new(
                "--every",
                format!(
                    "a schedule's period must divide a day or be whole days (at least 1m), not {}",
                    humantime::format_duration(period)
                ),
            )
            .hint("e.g. 24h, 12h, 6h, 1h, 30m, 48h, 7d"));
        }
        Ok(Slots { period, at })
    }

    /// The latest slot at or before `now` (in `now`'s time zone).
    pub fn latest<Tz: TimeZone>(&self, now: &DateTime<Tz>) -> DateTime<Utc> {
        let tz = now.timezone();
        let p = self.period.as_secs() as i64;
        // Today's anchor, or yesterday's when today's is still ahead.
        let mut date = now.date_naive();
        let anchor = |d: chrono::NaiveDate| {
            tz.from_local_datetime(&d.and_time(self.at))
                .earliest()
                // A time skipped by a clock change: an hour later exists.
                .or_else(|| {
                    tz.from_local_datetime(&(d.and_time(self.at) + chrono::Duration::hours(1)))
                        .earliest()
                })
                .map(|t| t.with_timezone(&Utc))
        };
        if p >= DAY as i64 {
            let every = p / DAY as i64;
            loop {
                let days = date
                    .signed_duration_since(chrono::NaiveDate::default())
                    .num_days();
                if days.rem_euclid(every) == 0 {
                    if let Some(t) = anchor(date) {
                        if t <= now.with_timezone(&Utc) {
                            return t;
                        }
                    }
                }
                date = date.pred_opt().expect("a date after year -262144");
            }
        }
        let mut a = anchor(date);
        if a.is_none_or(|a| a > now.with_timezone(&Utc)) {
            date = date.pred_opt().expect("a date after year -262144");
            a = anchor(date);
        }
        let a = a.unwrap_or_else(|| now.with_timezone(&Utc));
        let since = (now.with_timezone(&Utc) - a).num_seconds().max(0);
        a + chrono::Duration::seconds(since / p * p)
    }

    /// The next slot after `now`.
    pub fn next<Tz: TimeZone>(&self, now: &DateTime<Tz>) -> DateTime<Utc> {
        let tz = now.timezone();
        let latest = self.latest(now);
        let mut t =
            (latest + chrono::Duration::seconds(self.period.as_secs() as i64)).with_timezone(&tz);
        // Whole-day periods and clock changes: step until past the latest.
        while self.latest(&t) == latest {
            t += chrono::Duration::minutes(1);
        }
        self.latest(&t)
    }
}

/// What a tick should do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Due {
    /// Start a new run.
    Start,
    /// Resume this interrupted run (started since the latest slot).
    Resume(PathBuf),
    /// Nothing: a run started since the latest slot.
    NotDue {
        /// The run that did.
        last_run: String,
        /// The next slot.
        next: DateTime<Utc>,
    },
}

/// Whether `spec_name`'s run is due at `now`, given the runs in `results`.
pub fn check(results: &Path, spec_name: &str, slots: &Slots, now: DateTime<Local>) -> Due {
    let slot = slots.latest(&now);
    let since = list_runs(results).into_iter().rfind(|r| {
        r.spec_name == spec_name
            && DateTime::parse_from_rfc3339(&r.started_at)
                .is_ok_and(|t| t.with_timezone(&Utc) >= slot)
    });
    match since {
        None => Due::Start,
        Some(r) if r.state == RunStatus::Interrupted => Due::Resume(results.join(&r.run_id)),
        Some(r) => Due::NotDue {
            last_run: r.run_id,
            next: slots.next(&now),
        },
    }
}

/// What a scheduled tick did.
#[derive(Debug)]
pub enum Tick {
    /// A run started or resumed, and how it ended.
    Ran(crate::run::RunSummary),
    /// The campaign lock is held: a run of the spec is under way.
    Busy(String),
    /// A run started since the latest slot already.
    NotDue {
        /// The run that did.
        last_run: String,
        /// The next slot.
        next: DateTime<Utc>,
    },
}

/// `chatprobe run SPEC --if-due PERIOD --at HH:MM`: under the campaign
/// lock, start (or resume) a run when one is due.
pub async fn run_if_due(
    opts: &crate::run::RunOptions,
    slots: &Slots,
    launcher: &impl crate::run::Launcher,
    interrupt: impl std::future::Future<Output = ()>,
) -> anyhow::Result<Tick> {
    use anyhow::Context;
    let spec_path = opts
        .spec
        .clone()
        .ok_or_else(|| InputError::new("--if-due", "needs a probe spec, not --resume"))?;
    let spec = crate::probe::spec::Spec::load(&spec_path)?;
    std::fs::create_dir_all(&opts.results)
        .with_context(|| format!("creating {}", opts.results.display()))?;
    let _campaign = match crate::run::lock::RunLock::try_acquire(&super::every::campaign_lock(
        &opts.results,
        &spec.name,
    ))? {
        Ok(l) => l,
        Err(who) => return Ok(Tick::Busy(who)),
    };
    let mut opts = opts.clone();
    match check(&opts.results, &spec.name, slots, Local::now()) {
        Due::NotDue { last_run, next } => return Ok(Tick::NotDue { last_run, next }),
        Due::Resume(dir) => {
            opts.spec = None;
            opts.resume = Some(dir);
        }
        Due::Start => {}
    }
    Ok(Tick::Ran(launcher.launch(&opts, interrupt).await?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::FixedOffset;

    fn at(s: &str) -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339(s).unwrap()
    }

    #[test]
    fn daily_slots_fall_at_the_local_time() {
        let s = Slots::new(Duration::from_secs(DAY), "03:00").unwrap();
        assert_eq!(
            s.latest(&at("2026-12-05T09:30:00+08:00")),
            at("2026-12-05T03:00:00+08:00")
        );
        assert_eq!(
            s.latest(&at("2026-12-05T02:59:00+08:00")),
            at("2026-12-04T03:00:00+08:00")
        );
        assert_eq!(
            s.next(&at("2026-12-05T02:59:00+08:00")),
            at("2026-12-05T03:00:00+08:00")
        );
        assert_eq!(
            s.latest(&at("2026-12-05T03:00:00+08:00")),
            at("2026-12-05T03:00:00+08:00")
        );
    }

    #[test]
    fn sub_daily_and_multi_day_periods() {
        let s = Slots::new(Duration::from_secs(6 * 3600), "01:15").unwrap();
        assert_eq!(
            s.latest(&at("2026-12-05T00:10:00Z")),
            at("2026-12-04T19:15:00Z")
        );
        assert_eq!(
            s.latest(&at("2026-12-05T14:00:00Z")),
            at("2026-12-05T13:15:00Z")
        );
        assert_eq!(
            s.next(&at("2026-12-05T14:00:00Z")),
            at("2026-12-05T19:15:00Z")
        );
        let s = Slots::new(Duration::from_secs(2 * DAY), "03:00").unwrap();
        // 2026-12-05 is day 20,792 since 1970-01-01 (even).
        assert_eq!(
            s.latest(&at("2026-12-06T12:00:00Z")),
            at("2026-12-05T03:00:00Z")
        );
        assert_eq!(
            s.next(&at("2026-12-06T12:00:00Z")),
            at("2026-12-07T03:00:00Z")
        );
    }

    #[test]
    fn periods_that_do_not_tile_a_day_are_refused() {
        for p in [7 * 3600, 36 * 3600, 30] {
            let e = Slots::new(Duration::from_secs(p), "03:00").unwrap_err();
            assert_eq!(e.path, PathBuf::from("--every"), "{e}");
        }
        let e = Slots::new(Duration::from_secs(DAY), "3pm").unwrap_err();
        assert!(e.to_string().contains("HH:MM"), "{e}");
    }
}
