//! Time to censorship from a latency design: each seeded copy is tested
//! once, at its own offset after the seed, so for each copy we only know
//! whether it had been blocked by then ("current-status" data, the
//! simplest interval censoring: a blocked test says the time lies in
//! (0, offset], a delivered one says it lies in (offset, ∞)). Some seeds
//! are never inspected, so the distribution has mass at infinity.
//!
//! - [`npmle`]: Turnbull's nonparametric maximum-likelihood estimate of
//!   F(t) = P(blocked by t) at the offsets. For current-status data it is
//!   the isotonic (non-decreasing) regression of the blocked fractions on
//!   the offsets, weighted by the tests at each offset, computed by pool
//!   adjacent violators (Groeneboom & Wellner 1992, ch. 1; the same
//!   estimate as lifelines' interval-censored Kaplan–Meier). F is not
//!   forced to reach 1: F at the last offset is the share inspected by
//!   then, a lower bound on the share ever inspected.
//! - [`fit`]: that share with its interval, and the median time to
//!   censorship among the inspected seeds (where F reaches half of that
//!   share), which the estimate can only place between two offsets. Their
//!   intervals come from redrawing each offset's blocked share from its
//!   Jeffreys posterior, Beta(k + ½, n − k + ½), and estimating again (a
//!   smoothed bootstrap: plain resampling would hold an offset with none
//!   of its tests blocked at 0 every time). Every interval of the median
//!   is made of offsets, so none is ever below 0.
//!
//! Written here (thirty lines of pool-adjacent-violators) because no
//! maintained crate offers weighted isotonic regression or Turnbull's
//! estimator; the result is checked against lifelines in tests/reference/.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Beta, Distribution};

/// The tests at one offset: (offset in seconds, tests, blocked).
pub type Tests = (f64, u64, u64);

/// Turnbull's NPMLE of F(t) = P(blocked by t) at each offset with tests,
/// in increasing order of offset: `(offset, F̂(offset))`. Offsets are
/// merged when equal; those without tests are left out.
pub fn npmle(data: &[Tests]) -> Vec<(f64, f64)> {
    let merged = merged_tests(data);
    let fitted = pava(
        &merged
            .iter()
            .map(|&(_, n, k)| (n as f64, k as f64 / n as f64))
            .collect::<Vec<_>>(),
    );
    merged.iter().map(|m| m.0).zip(fitted).collect()
}

/// The tests in increasing order of offset, equal offsets merged, those
/// without tests left out.
fn merged_tests(data: &[Tests]) -> Vec<Tests> {
    let mut d: Vec<Tests> = data.iter().copied().filter(|t| t.1 > 0).collect();
    d.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut merged: Vec<Tests> = Vec::with_capacity(d.len());
    for (t, n, k) in d {
        match merged.last_mut() {
            Some(last) if last.0 == t => {
                last.1 += n;
                last.2 += k;
            }
            _ => merged.push((t, n, k)),
        }
    }
    merged
}

/// Pool adjacent violators: the non-decreasing sequence closest to the
/// values `y` in weighted least squares, for `(weight, y)` in order.
fn pava(points: &[(f64, f64)]) -> Vec<f64> {
    // Blocks of (weight, weighted mean, points pooled).
    let mut blocks: Vec<(f64, f64, usize)> = Vec::with_capacity(points.len());
    for &(w, y) in points {
        blocks.push((w, y, 1));
        while blocks.len() > 1 {
            let (w2, y2, c2) = blocks[blocks.len() - 1];
            let (w1, y1, c1) = blocks[blocks.len() - 2];
            if y1 <= y2 {
                break;
            }
            blocks.pop();
            let w = w1 + w2;
            *blocks.last_mut().expect("two blocks") = (w, (w1 * y1 + w2 * y2) / w, c1 + c2);
        }
    }
    blocks
        .into_iter()
        .flat_map(|(_, y, c)| std::iter::repeat_n(y, c))
        .collect()
}

/// What [`fit`] estimates.
#[derive(Debug, Clone, PartialEq)]
pub struct LatencyFit {
    /// Tests used (every conclusive test at an offset).
    pub n: u64,
    /// The NPMLE at each offset: (offset, F̂).
    pub steps: Vec<(f64, f64)>,
    /// F̂ at the last offset: the share of seeds inspected (blocked) by
    /// then.
    pub inspected: f64,
    /// Its percentile interval over the draws.
    pub inspected_ci: (f64, f64),
    /// Among the inspected, the median time to censorship lies in
    /// (low, high]: the offsets around the point where F̂ reaches half of
    /// `inspected`. None when no seed was blocked.
    pub median: Option<(f64, f64)>,
    /// Its interval: from the 2.5 % quantile of the drawn medians' low
    /// ends to the 97.5 % quantile of their high ends (None at the top
    /// when more than 2.5 % of the draws saw no block).
    pub median_ci: Option<(f64, Option<f64>)>,
    /// Draws made.
    pub reps: u32,
}

/// The (low, high] interval holding the median of the inspected seeds'
/// times: the first offset where F̂ ≥ F̂(last) / 2, and the offset before
/// it (0 before the first).
fn median_of(steps: &[(f64, f64)]) -> Option<(f64, f64)> {
    let last = steps.last()?.1;
    if last <= 0.0 {
        return None;
    }
    let j = steps.iter().position(|s| s.1 >= last / 2.0)?;
    let low = if j == 0 { 0.0 } else { steps[j - 1].0 };
    Some((low, steps[j].0))
}

/// The `q` quantile of sorted `v` (the order statistic at ⌈q·len⌉, as a
/// percentile bootstrap takes it).
fn quantile(v: &[f64], q: f64) -> f64 {
    let i = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1;
    v[i]
}

/// Fit the inspected share and the median time to censorship from the
/// tests, with `reps` draws (each offset's share from its Jeffreys
/// posterior) from a generator seeded with `seed`, so that the same data
/// give the same intervals. None without any test.
pub fn fit(data: &[Tests], conf: f64, reps: u32, seed: u64) -> Option<LatencyFit> {
    let steps = npmle(data);
    if steps.is_empty() {
        return None;
    }
    let n = data.iter().map(|t| t.1).sum();
    let inspected = steps.last().map_or(0.0, |s| s.1);
    let median = median_of(&steps);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut shares = Vec::with_capacity(reps as usize);
    let (mut lows, mut highs) = (Vec::new(), Vec::new());
    let offsets: Vec<f64> = steps.iter().map(|s| s.0).collect();
    // Each offset's share drawn from its Jeffreys posterior, so that an
    // offset with 0 of 3 blocked still varies (a resample of its tests
    // would keep it at 0 every time and make the interval too narrow).
    let posteriors: Vec<(f64, Beta<f64>)> = merged_tests(data)
        .iter()
        .map(|&(_, n, k)| {
            let b = Beta::new(k as f64 + 0.5, (n - k) as f64 + 0.5).expect("positive shapes");
            (n as f64, b)
        })
        .collect();
    for _ in 0..reps {
        let draw: Vec<(f64, f64)> = posteriors
            .iter()
            .map(|(w, b)| (*w, b.sample(&mut rng)))
            .collect();
        let s: Vec<(f64, f64)> = offsets.iter().copied().zip(pava(&draw)).collect();
        shares.push(s.last().map_or(0.0, |x| x.1));
        let m = median_of(&s);
        lows.push(m.map_or(f64::INFINITY, |m| m.0));
        highs.push(m.map_or(f64::INFINITY, |m| m.1));
    }
    let a = (1.0 - conf) / 2.0;
    for v in [&mut shares, &mut lows, &mut highs] {
        v.sort_by(f64::total_cmp);
    }
    let inspected_ci = if reps == 0 {
        (inspected, inspected)
    } else {
        (quantile(&shares, a), quantile(&shares, 1.0 - a))
    };
    let median_ci = (reps > 0 && median.is_some())
        .then(|| {
            let lo = quantile(&lows, a);
            let hi = quantile(&highs, 1.0 - a);
            lo.is_finite().then_some((lo, hi.is_finite().then_some(hi)))
        })
        .flatten();
    Some(LatencyFit {
        n,
        steps,
        inspected,
        inspected_ci,
        median,
        median_ci,
        reps,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_monotone_series_is_its_own_estimate_and_violators_are_pooled() {
        let f = npmle(&[(5.0, 4, 1), (10.0, 4, 2), (20.0, 4, 4)]);
        assert_eq!(f, [(5.0, 0.25), (10.0, 0.5), (20.0, 1.0)]);
        // 3/4 then 1/4: pooled to 4/8 at both.
        let f = npmle(&[(20.0, 4, 1), (10.0, 4, 3), (40.0, 2, 2)]);
        assert_eq!(f, [(10.0, 0.5), (20.0, 0.5), (40.0, 1.0)]);
        // Equal offsets are merged, offsets without tests left out.
        assert_eq!(
            npmle(&[(5.0, 1, 1), (5.0, 1, 0), (9.0, 0, 0)]),
            [(5.0, 0.5)]
        );
    }

    #[test]
    fn the_median_of_the_inspected_lies_between_two_offsets_and_never_below_zero() {
        // 80 % inspected by 60 s; half of that (40 %) is first reached at 20 s.
        let data = [
            (5.0, 10, 1),
            (10.0, 10, 2),
            (20.0, 10, 5),
            (40.0, 10, 7),
            (60.0, 10, 8),
        ];
        let f = fit(&data, 0.95, 500, 1).unwrap();
        assert_eq!(f.n, 50);
        assert!((f.inspected - 0.8).abs() < 1e-12);
        assert_eq!(f.median, Some((10.0, 20.0)));
        let (lo, hi) = f.median_ci.unwrap();
        assert!((0.0..=10.0).contains(&lo), "{lo}");
        assert!(hi.unwrap() >= 20.0);
        assert!(f.inspected_ci.0 <= 0.8 && f.inspected_ci.1 >= 0.8);
        assert!(f.inspected_ci.0 >= 0.0 && f.inspected_ci.1 <= 1.0);
        // An offset with nothing blocked still varies: the interval's low
        // end can reach below the first blocked offset.
        let g = fit(&[(5.0, 3, 0), (10.0, 3, 0), (20.0, 3, 3)], 0.95, 2000, 1).unwrap();
        assert_eq!(g.median, Some((10.0, 20.0)));
        assert!(g.median_ci.unwrap().0 < 10.0, "{g:?}");
        // The same data and seed, the same interval.
        assert_eq!(fit(&data, 0.95, 500, 1).unwrap(), f);
    }

    #[test]
    fn nothing_blocked_gives_no_median() {
        let f = fit(&[(5.0, 3, 0), (10.0, 3, 0)], 0.95, 100, 1).unwrap();
        assert_eq!(f.inspected, 0.0);
        assert_eq!(f.median, None);
        assert_eq!(f.median_ci, None);
        assert!(f.inspected_ci.1 > 0.0, "none of 6 does not prove none ever");
        assert!(fit(&[], 0.95, 100, 1).is_none());
    }
}
