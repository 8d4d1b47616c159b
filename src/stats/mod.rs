//! Statistics for small counts, as censorship papers report them: every rate
//! with an honest interval, every comparison with an exact test.
//!
//! - [`wilson`] and [`clopper_pearson`] intervals for a proportion;
//! - [`fisher_exact`]: two-sided p and the sample odds ratio of a 2×2 table;
//! - [`mcnemar_exact`]: the exact test of paired binary outcomes (the
//!   binomial test on the discordant pairs);
//! - [`holm`]: Holm's step-down adjustment of a family of p-values;
//! - [`permutation_test`]: the exact test of a difference in means
//!   between two groups of units (items, each with its own rate);
//! - [`odds_ratio_estimable`]: whether a 2×2 table carries information on
//!   an odds ratio at all;
//! - [`current_status`]: time to censorship from tests at offsets, with a
//!   never-inspected share;
//! - [`odds_ratio_woolf`]: an odds ratio with its Woolf interval, finite
//!   under zero cells (Haldane–Anscombe);
//! - [`logit`]: logistic regression on several covariates, by maximum
//!   likelihood or Firth's penalised likelihood when the data separate;
//! - [`logistic`]: logistic regression of a binary outcome on one covariate,
//!   fitted by IRLS, with the covariate value at 50 % and its delta-method
//!   interval;
//! - [`kaplan_meier`]: the survival curve with Greenwood intervals and its
//!   median.
//!
//! Distributions come from `statrs`. Fisher's test is written here (a dozen
//! lines over log-factorials, following scipy's two-sided rule) because the
//! only crate for it, `fishers_exact`, has not been released since 2018. Every
//! function is checked against scipy, statsmodels and lifelines in
//! tests/reference/.

pub mod current_status;
pub mod logit;
pub mod words;

use statrs::distribution::{Beta, ContinuousCDF, Normal};
use statrs::function::factorial::ln_factorial;

/// Which interval for proportions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interval {
    /// Wilson score (default).
    Wilson,
    /// Clopper–Pearson.
    Exact,
}

impl Interval {
    /// The 95 % interval of k successes in n.
    pub fn ci(self, k: u64, n: u64) -> (Option<f64>, Option<f64>) {
        let r = match self {
            Interval::Wilson => wilson(k, n, 0.95),
            Interval::Exact => clopper_pearson(k, n, 0.95),
        };
        (r.map(|x| x.0), r.map(|x| x.1))
    }
}

/// k of n as a rate (none of none: no rate).
pub fn rate(k: u64, n: u64) -> Option<f64> {
    (n > 0).then(|| k as f64 / n as f64)
}

/// The two-sided normal quantile for confidence `conf` (0.95 → 1.95996…).
pub fn z(conf: f64) -> f64 {
    Normal::new(0.0, 1.0)
        .expect("standard normal")
        .inverse_cdf(1.0 - (1.0 - conf) / 2.0)
}

/// Wilson score interval for `k` successes in `n` trials.
pub fn wilson(k: u64, n: u64, conf: f64) -> Option<(f64, f64)> {
    if n == 0 {
        return None;
    }
    let (k, n) = (k as f64, n as f64);
    let z = z(conf);
    let p = k / n;
    let denom = 1.0 + z * z / n;
    let centre = (p + z * z / (2.0 * n)) / denom;
    let half = z * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt() / denom;
    // At k = 0 and k = n the bounds are exactly 0 and 1; computed, they
    // come out a rounding error away (2.8e-17), which a table should not
    // print.
    let lo = if k == 0.0 {
        0.0
    } else {
        (centre - half).max(0.0)
    };
    let hi = if k == n {
        1.0
    } else {
        (centre + half).min(1.0)
    };
    Some((lo, hi))
}

/// Clopper–Pearson ("exact") interval for `k` successes in `n` trials.
pub fn clopper_pearson(k: u64, n: u64, conf: f64) -> Option<(f64, f64)> {
    if n == 0 {
        return None;
    }
    let a = (1.0 - conf) / 2.0;
    let lo = if k == 0 {
        0.0
    } else {
        Beta::new(k as f64, (n - k + 1) as f64).ok()?.inverse_cdf(a)
    };
    let hi = if k == n {
        1.0
    } else {
        Beta::new((k + 1) as f64, (n - k) as f64)
            .ok()?
            .inverse_cdf(1.0 - a)
    };
    Some((lo, hi))
}

/// Fisher's exact test on the table `[[a, b], [c, d]]`: (two-sided p, sample
/// odds ratio a·d / b·c). The two-sided p sums the probabilities of every
/// table with the same margins no more likely than the observed one (with
/// scipy's relative tolerance of 1e-7).
pub fn fisher_exact(a: u64, b: u64, c: u64, d: u64) -> (f64, f64) {
    let odds = if b * c == 0 {
        if a * d == 0 {
            f64::NAN
        } else {
            f64::INFINITY
        }
    } else {
        (a * d) as f64 / (b * c) as f64
    };
    let (r1, c1, n) = (a + b, a + c, a + b + c + d);
    let lo = c1.saturating_sub(n - r1);
    let hi = r1.min(c1);
    let ln_pmf = |x: u64| {
        ln_factorial(r1) + ln_factorial(n - r1) + ln_factorial(c1) + ln_factorial(n - c1)
            - ln_factorial(n)
            - ln_factorial(x)
            - ln_factorial(r1 - x)
            - ln_factorial(c1 - x)
            // n − r1 − c1 + x ≥ 0 for every x ≥ lo, but n − r1 − c1 alone
            // may be negative: add x first.
            - ln_factorial(n + x - r1 - c1)
    };
    let observed = ln_pmf(a);
    let more_extreme = |l: f64| l <= observed + 1e-7_f64.ln_1p();
    // When every table counts the p value is exactly 1; summed, it comes
    // out a rounding error below (0.9999999999999964).
    let p: f64 = if (lo..=hi).all(|x| more_extreme(ln_pmf(x))) {
        1.0
    } else {
        (lo..=hi)
            .map(ln_pmf)
            .filter(|&l| more_extreme(l))
            .map(f64::exp)
            .sum()
    };
    (p.min(1.0), odds)
}

/// McNemar's exact test of paired binary outcomes: `b` pairs where only
/// the first member had the event, `c` where only the second did (the
/// concordant pairs carry no information on the difference). Two-sided:
/// twice the binomial(b + c, ½) tail of the smaller count, at most 1; 1
/// when no pair is discordant. As statsmodels' `mcnemar(exact=True)`.
pub fn mcnemar_exact(b: u64, c: u64) -> f64 {
    use statrs::distribution::{Binomial, DiscreteCDF};
    let n = b + c;
    if n == 0 || b == c {
        return 1.0;
    }
    let tail = if n <= 1000 {
        // The binomial(n, ½) probabilities by their recurrence from ½ⁿ,
        // exact at the small counts a paired design has (statrs' cdf comes
        // out a rounding error off 2⁻¹⁰).
        let mut pmf = 0.5f64.powi(n as i32);
        let mut sum = pmf;
        for i in 0..b.min(c) {
            pmf *= (n - i) as f64 / (i + 1) as f64;
            sum += pmf;
        }
        sum
    } else {
        Binomial::new(0.5, n)
            .expect("p = ½ and n > 0")
            .cdf(b.min(c))
    };
    (2.0 * tail).min(1.0)
}

/// Whether the table `[[a, b], [c, d]]` (rows: groups; columns: event, no
/// event) says anything on an odds ratio: not when neither group had an
/// event, or neither had a non-event, or a group is empty. Then any
/// number (a continuity shift gives one) is made, not measured.
pub fn odds_ratio_estimable(a: u64, b: u64, c: u64, d: u64) -> Result<(), &'static str> {
    if a + b == 0 || c + d == 0 {
        Err("not estimable: a group has no trial")
    } else if a + c == 0 {
        Err("not estimable: no event in either group")
    } else if b + d == 0 {
        Err("not estimable: no non-event in either group")
    } else {
        Ok(())
    }
}

/// Holm's step-down adjustment; NaN p-values stay NaN and do not count.
pub fn holm(p: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..p.len()).filter(|&i| !p[i].is_nan()).collect();
    idx.sort_by(|&i, &j| p[i].total_cmp(&p[j]));
    let m = idx.len();
    let mut out = vec![f64::NAN; p.len()];
    let mut running = 0.0f64;
    for (rank, &i) in idx.iter().enumerate() {
        let adj = ((m - rank) as f64 * p[i]).min(1.0);
        running = running.max(adj);
        out[i] = running;
    }
    out
}

/// The odds ratio of the table `[[a, b], [c, d]]` with its Woolf (log)
/// interval: (odds ratio, low, high). When a cell is zero, 0.5 is added to
/// every cell first (Haldane–Anscombe), so the ratio and its interval stay
/// finite; as statsmodels' `Table2x2(shift_zeros=True)`.
pub fn odds_ratio_woolf(a: u64, b: u64, c: u64, d: u64, conf: f64) -> (f64, f64, f64) {
    let shift = if a * b * c * d == 0 { 0.5 } else { 0.0 };
    let [a, b, c, d] = [a, b, c, d].map(|v| v as f64 + shift);
    let log_or = (a * d / (b * c)).ln();
    let se = (1.0 / a + 1.0 / b + 1.0 / c + 1.0 / d).sqrt();
    let h = z(conf) * se;
    (log_or.exp(), (log_or - h).exp(), (log_or + h).exp())
}

/// A logistic fit of y ∈ {0, 1} on one covariate x.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LogisticFit {
    /// Intercept.
    pub intercept: f64,
    /// Slope.
    pub slope: f64,
    /// Standard error of the intercept.
    pub se_intercept: f64,
    /// Standard error of the slope.
    pub se_slope: f64,
    /// Covariance of intercept and slope.
    pub cov: f64,
    /// Observations.
    pub n: usize,
    /// IRLS iterations used.
    pub iterations: usize,
}

impl LogisticFit {
    /// The x at which the fitted probability is 0.5 (−intercept / slope).
    pub fn x_at_50(&self) -> f64 {
        -self.intercept / self.slope
    }

    /// Delta-method interval for [`Self::x_at_50`].
    pub fn x_at_50_ci(&self, conf: f64) -> (f64, f64) {
        let x = self.x_at_50();
        let (b0, b1) = (self.intercept, self.slope);
        // gradient of −b0/b1 with respect to (b0, b1)
        let (g0, g1) = (-1.0 / b1, b0 / (b1 * b1));
        let var = g0 * g0 * self.se_intercept.powi(2)
            + g1 * g1 * self.se_slope.powi(2)
            + 2.0 * g0 * g1 * self.cov;
        let h = z(conf) * var.sqrt();
        (x - h, x + h)
    }
}

/// Fit `y ~ 1 + x` by iteratively reweighted least squares. None when the
/// data do not allow a fit (fewer than two distinct x, one outcome only, or
/// complete separation, where the estimates run off to infinity).
pub fn logistic(x: &[f64], y: &[bool]) -> Option<LogisticFit> {
    let n = x.len();
    if n != y.len() || n < 3 || y.iter().all(|&v| v) || y.iter().all(|&v| !v) {
        return None;
    }
    let (mut b0, mut b1) = (0.0f64, 0.0f64);
    for it in 1..=100 {
        // Accumulate XᵀWX and Xᵀ(W z) for the working response z.
        let (mut s00, mut s01, mut s11, mut t0, mut t1) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for (&xi, &yi) in x.iter().zip(y) {
            let eta = b0 + b1 * xi;
            let mu = 1.0 / (1.0 + (-eta).exp());
            let w = (mu * (1.0 - mu)).max(1e-12);
            let zi = eta + (f64::from(u8::from(yi)) - mu) / w;
            s00 += w;
            s01 += w * xi;
            s11 += w * xi * xi;
            t0 += w * zi;
            t1 += w * xi * zi;
        }
        let det = s00 * s11 - s01 * s01;
        if det.abs() < 1e-12 {
            return None;
        }
        let nb0 = (s11 * t0 - s01 * t1) / det;
        let nb1 = (s00 * t1 - s01 * t0) / det;
        if !nb0.is_finite() || !nb1.is_finite() || nb1.abs() > 1e6 {
            return None;
        }
        let done = (nb0 - b0).abs() < 1e-10 && (nb1 - b1).abs() < 1e-10;
        b0 = nb0;
        b1 = nb1;
        if done {
            // Covariance at the estimate: (XᵀWX)⁻¹.
            let (mut s00, mut s01, mut s11) = (0.0, 0.0, 0.0);
            for &xi in x {
                let mu = 1.0 / (1.0 + (-(b0 + b1 * xi)).exp());
                let w = mu * (1.0 - mu);
                s00 += w;
                s01 += w * xi;
                s11 += w * xi * xi;
            }
            let det = s00 * s11 - s01 * s01;
            return Some(LogisticFit {
                intercept: b0,
                slope: b1,
                se_intercept: (s11 / det).sqrt(),
                se_slope: (s00 / det).sqrt(),
                cov: -s01 / det,
                n,
                iterations: it,
            });
        }
    }
    None
}

/// One step of a Kaplan–Meier curve.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KmStep {
    /// Time of the step.
    pub time: f64,
    /// At risk just before it.
    pub at_risk: u64,
    /// Events at it.
    pub events: u64,
    /// Censored at it.
    pub censored: u64,
    /// Survival estimate just after it.
    pub survival: f64,
    /// Greenwood lower bound (log–log transform, as lifelines).
    pub ci_low: f64,
    /// Greenwood upper bound.
    pub ci_high: f64,
}

/// Kaplan–Meier estimate of survival from `(time, event)` pairs (event false
/// = censored), with Greenwood log(−log) intervals; one step per distinct
/// time.
pub fn kaplan_meier(data: &[(f64, bool)], conf: f64) -> Vec<KmStep> {
    let mut d: Vec<(f64, bool)> = data
        .iter()
        .copied()
        .filter(|(t, _)| t.is_finite())
        .collect();
    d.sort_by(|a, b| a.0.total_cmp(&b.0));
    let z = z(conf);
    let mut at_risk = d.len() as u64;
    let (mut s, mut greenwood) = (1.0f64, 0.0f64);
    let mut out = Vec::new();
    let mut i = 0;
    while i < d.len() {
        let t = d[i].0;
        let (mut events, mut censored) = (0u64, 0u64);
        while i < d.len() && d[i].0 == t {
            if d[i].1 {
                events += 1;
            } else {
                censored += 1;
            }
            i += 1;
        }
        if events > 0 && at_risk > 0 {
            s *= 1.0 - events as f64 / at_risk as f64;
            if at_risk > events {
                greenwood += events as f64 / (at_risk as f64 * (at_risk - events) as f64);
            }
        }
        let (lo, hi) = if s > 0.0 && s < 1.0 {
            let v = greenwood / (s.ln() * s.ln());
            let c = s.ln().abs().ln();
            let (a, b) = (c + z * v.sqrt(), c - z * v.sqrt());
            ((-(a.exp())).exp(), (-(b.exp())).exp())
        } else {
            (s, s)
        };
        out.push(KmStep {
            time: t,
            at_risk,
            events,
            censored,
            survival: s,
            ci_low: lo,
            ci_high: hi,
        });
        at_risk -= events + censored;
    }
    out
}

/// The median survival time: the first time the curve is at or below 0.5.
pub fn km_median(steps: &[KmStep]) -> Option<f64> {
    steps.iter().find(|s| s.survival <= 0.5).map(|s| s.time)
}

/// Two-sided exact permutation test of the difference in means between
/// groups `a` and `b` (each value one unit, e.g. an item's surveillance
/// rate): the p value is twice the smaller one-sided tail over every way
/// of splitting the pooled values into groups of the same sizes, at most
/// 1, as scipy's `permutation_test(permutation_type="independent")`.
/// Every split is enumerated when there are at most `MAX_SPLITS` of
/// them; otherwise `reps` random splits from a generator seeded with
/// `seed` are drawn and each tail is (hits + 1) / (reps + 1). None when a
/// group is empty.
pub fn permutation_test(a: &[f64], b: &[f64], reps: u32, seed: u64) -> Option<f64> {
    use rand::seq::SliceRandom;
    use rand::SeedableRng;
    const MAX_SPLITS: f64 = 200_000.0;
    if a.is_empty() || b.is_empty() {
        return None;
    }
    let pooled: Vec<f64> = a.iter().chain(b).copied().collect();
    let (n, k) = (pooled.len(), a.len());
    let total: f64 = pooled.iter().sum();
    // The difference of means is a monotone function of group a's sum.
    let diff = |sum_a: f64| sum_a / k as f64 - (total - sum_a) / (n - k) as f64;
    let observed = diff(a.iter().sum());
    let tol = 1e-12 * observed.abs().max(1.0);
    let (mut ge, mut le, mut count) = (0u64, 0u64, 0u64);
    let mut tally = |d: f64| {
        ge += u64::from(d >= observed - tol);
        le += u64::from(d <= observed + tol);
        count += 1;
    };
    let splits = (0..k).fold(1.0f64, |acc, i| acc * (n - i) as f64 / (i + 1) as f64);
    let exact = splits <= MAX_SPLITS;
    if exact {
        // Every k-subset of the pooled values, by index.
        let mut idx: Vec<usize> = (0..k).collect();
        loop {
            tally(diff(idx.iter().map(|&i| pooled[i]).sum()));
            let Some(i) = (0..k).rev().find(|&i| idx[i] != i + n - k) else {
                break;
            };
            idx[i] += 1;
            for j in i + 1..k {
                idx[j] = idx[j - 1] + 1;
            }
        }
    } else {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut shuffled = pooled.clone();
        for _ in 0..reps {
            shuffled.shuffle(&mut rng);
            tally(diff(shuffled[..k].iter().sum()));
        }
    }
    let tail = |hits: u64| {
        if exact {
            hits as f64 / count as f64
        } else {
            (hits + 1) as f64 / (count + 1) as f64
        }
    };
    Some((2.0 * tail(ge).min(tail(le))).min(1.0))
}
