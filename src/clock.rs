//! The time the scheduler and the driver read.
//!
//! [`now`] is the wall clock (UTC) in a normal run. Under tokio's paused
//! time (`tokio::time::pause`, `#[tokio::test(start_paused = true)]`) it
//! follows the virtual clock instead: UTC at the pause plus the virtual
//! time advanced since. So a run on the simulated platform keeps its
//! timings (a trial's sends `at_s` apart, rate limits, back-offs) in virtual
//! seconds and finishes in milliseconds, with every timestamp in the journal
//! and the datasets consistent with the delays the scheduler waited.

use chrono::{DateTime, Utc};

/// UTC now, on tokio's clock: the wall clock, or the virtual clock while
/// time is paused.
pub fn now() -> DateTime<Utc> {
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

    #[tokio::test]
    async fn is_the_wall_clock_otherwise() {
        let d = (now() - Utc::now()).num_milliseconds().abs();
        assert!(d < 50, "{d} ms off the wall clock");
    }
}
