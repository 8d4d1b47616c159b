//! The time the scheduler and the driver read.
//!
//! [`now`] is the wall clock (UTC) in a normal run. Under tokio's paused
//! time (`tokio::time::pause`, `#[tokio::test(start_paused = true)]`) it
//! follows the virtual clock instead: UTC at the pause plus the virtual
//! time advanced since. So a run on the simulated platform keeps its
//! timings (a trial's sends `at_s` apart, rate limits, back-offs) in virtual
//! seconds and finishes in milliseconds, with every timestamp in the journal
//! and the datasets consistent with the delays the scheduler waited.
//!
//! Read so, virtual time picks up microseconds of noise (the wall clock and
//! the monotonic one are read at slightly different moments): two events at
//! the same virtual instant can come out either way round. A thread that
//! runs a simulation calls [`anchor_to_virtual_time`] (`SimPlatform::new`
//! does) and from then on reads an exact mapping, UTC at the anchor plus
//! the virtual time since it, so equal instants stay equal and a run's
//! timings repeat.

use std::cell::Cell;

use chrono::{DateTime, Utc};

thread_local! {
    /// (UTC, monotonic instant) read together once, on threads that asked.
    static ANCHOR: Cell<Option<(DateTime<Utc>, std::time::Instant)>> = const { Cell::new(None) };
}

/// From now on, read tokio's clock on this thread as an exact offset from
/// this moment (kept if already set). Meant for the thread of a
/// current-thread runtime with paused time (a simulation); in a normal run
/// it would freeze the offset between the wall clock and the monotonic one.
pub fn anchor_to_virtual_time() {
    ANCHOR.with(|a| {
        if a.get().is_none() {
            a.set(Some((Utc::now(), std::time::Instant::now())));
        }
    });
}

/// UTC now, on tokio's clock: the wall clock, or the virtual clock while
/// time is paused.
pub fn now() -> DateTime<Utc> {
    if let Some((wall, at)) = ANCHOR.with(Cell::get) {
        let virt = tokio::time::Instant::now().into_std();
        let ahead = virt.saturating_duration_since(at);
        let behind = at.saturating_duration_since(virt);
        return wall + chrono::Duration::from_std(ahead).unwrap_or_default()
            - chrono::Duration::from_std(behind).unwrap_or_default();
    }
    // Outside paused time tokio's Instant is std's: the offset is ~0.
    let virt = tokio::time::Instant::now().into_std();
    let real = std::time::Instant::now();
    let wall = Utc::now();
    let ahead = virt.saturating_duration_since(real);
    let behind = real.saturating_duration_since(virt);
    wall + chrono::Duration::from_std(ahead).unwrap_or_default()
        - chrono::Duration::from_std(behind).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn follows_virtual_time_while_paused() {
        let a = now();
        tokio::time::advance(Duration::from_secs(3600)).await;
        let b = now();
        let d = (b - a).num_milliseconds();
        // An hour of virtual time (the real time the test took cancels out).
        assert!((3_599_990..3_600_010).contains(&d), "{d} ms");
    }

    #[tokio::test(start_paused = true)]
    async fn anchored_equal_instants_read_equal() {
        anchor_to_virtual_time();
        let a = now();
        // Real time passes (a few milliseconds of it), virtual time does not.
        let real = std::time::Instant::now();
        while real.elapsed() < Duration::from_millis(3) {
            std::hint::spin_loop();
        }
        assert_eq!(now(), a);
        tokio::time::advance(Duration::from_millis(1500)).await;
        assert_eq!((now() - a).num_milliseconds(), 1500);
    }

    #[tokio::test]
    async fn is_the_wall_clock_otherwise() {
        let d = (now() - Utc::now()).num_milliseconds().abs();
        assert!(d < 50, "{d} ms off the wall clock");
    }
}
