//! Logistic regression of a binary outcome on several covariates, by
//! maximum likelihood or with Firth's penalised likelihood.
//!
//! Surveillance data separate easily: with a dozen items, "every sensitive
//! item surveilled, no benign one" is the expected result, and there the
//! maximum-likelihood estimate does not exist (it runs off to infinity).
//! [`fit_auto`] fits by maximum likelihood, and when the data separate (the
//! fit does not converge, or it drives fitted probabilities to 0 or 1)
//! fits again with Firth's penalty (Firth 1993; Heinze & Schemper 2002),
//! whose estimates are finite, and says which it used. Standard errors are
//! Wald's, from the inverse information at the estimate (as statsmodels
//! and, for Firth, logistf and firthmodels report them).
//!
//! Covariates that are constant or a linear combination of the ones before
//! them are dropped before the fit and reported, not left to make the
//! information matrix singular.
//!
//! Matrices come from `nalgebra` (already in the tree through `statrs`).
//! Checked against statsmodels' `Logit` and firthmodels'
//! `FirthLogisticRegression` in tests/reference/.

use nalgebra::{DMatrix, DVector};

/// How a model was fitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Plain maximum likelihood.
    MaximumLikelihood,
    /// Firth's penalised likelihood (Jeffreys prior).
    Firth,
}

impl Method {
    /// The name used in tables: `mle` or `firth`.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::MaximumLikelihood => "mle",
            Method::Firth => "firth",
        }
    }
}

/// Why a covariate was left out of a model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dropped {
    /// It takes one value in the data.
    Constant,
    /// It is a linear combination of the intercept and the covariates kept
    /// before it.
    Collinear,
}

/// A fitted model. `coef` and `se` are in the order of the kept columns:
/// the intercept first, then each covariate of `kept`.
#[derive(Debug, Clone, PartialEq)]
pub struct Fit {
    /// How it was fitted.
    pub method: Method,
    /// The covariates used (indices into the caller's columns).
    pub kept: Vec<usize>,
    /// The covariates left out, with why.
    pub dropped: Vec<(usize, Dropped)>,
    /// Intercept, then one per kept covariate.
    pub coef: Vec<f64>,
    /// Wald standard errors, same order.
    pub se: Vec<f64>,
    /// The (penalised, for Firth) log-likelihood at the estimate.
    pub loglik: f64,
    /// Newton iterations used.
    pub iterations: usize,
    /// Observations.
    pub n: usize,
    /// Observations with outcome 1.
    pub events: usize,
    /// Whether the maximum-likelihood fit found the data separated (the
    /// reason for Firth, when `method` is Firth).
    pub separated: bool,
}

/// Why no model could be fitted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FitError {
    /// Fewer than two observations, or rows of different lengths.
    #[error("too few observations for a model ({0})")]
    TooFew(usize),
    /// Every outcome is the same: no model says anything.
    #[error("every outcome is {0}: there is nothing to model")]
    OneOutcome(bool),
    /// The iterations did not settle.
    #[error("the fit did not converge in {0} iterations")]
    NoConvergence(usize),
}

const MAX_ITER: usize = 200;
const MAX_STEP: f64 = 5.0;
const TOL: f64 = 1e-10;

/// The log-likelihood at linear predictor `eta`, computed stably.
fn loglik(eta: &DVector<f64>, y: &[bool]) -> f64 {
    eta.iter()
        .zip(y)
        .map(|(&e, &yi)| {
            // log σ(e) = −log(1 + e^−e); log(1 − σ(e)) = −log(1 + e^e)
            let s = if yi { -e } else { e };
            -(if s > 0.0 {
                s + (-s).exp().ln_1p()
            } else {
                s.exp().ln_1p()
            })
        })
        .sum()
}

fn sigmoid(e: f64) -> f64 {
    1.0 / (1.0 + (-e).exp())
}

/// XᵀWX for weights `w`.
fn information(x: &DMatrix<f64>, w: &DVector<f64>) -> DMatrix<f64> {
    let mut xw = x.clone();
    for (mut row, &wi) in xw.row_iter_mut().zip(w.iter()) {
        row *= wi;
    }
    x.transpose() * xw
}

/// The objective, gradient and inverse information at `beta`.
struct Point {
    objective: f64,
    gradient: DVector<f64>,
    inverse: DMatrix<f64>,
    mu: DVector<f64>,
}

fn evaluate(x: &DMatrix<f64>, y: &[bool], beta: &DVector<f64>, firth: bool) -> Option<Point> {
    let eta = x * beta;
    let mu = eta.map(sigmoid);
    let w = mu.map(|m| (m * (1.0 - m)).max(1e-300));
    let info = information(x, &w);
    let chol = info.clone().cholesky()?;
    let inverse = chol.inverse();
    let mut objective = loglik(&eta, y);
    let mut resid = DVector::from_iterator(
        y.len(),
        y.iter()
            .zip(mu.iter())
            .map(|(&yi, &m)| f64::from(u8::from(yi)) - m),
    );
    if firth {
        // log|I|^½ = Σ log of the Cholesky factor's diagonal.
        objective += chol.l().diagonal().iter().map(|d| d.ln()).sum::<f64>();
        // Leverages h_i = w_i x_iᵀ I⁻¹ x_i.
        for (i, r) in resid.iter_mut().enumerate() {
            let xi = x.row(i);
            let h = w[i] * (xi * &inverse * xi.transpose())[(0, 0)];
            *r += h * (0.5 - mu[i]);
        }
    }
    let gradient = x.transpose() * resid;
    Some(Point {
        objective,
        gradient,
        inverse,
        mu,
    })
}

/// Newton–Raphson with step halving on the (penalised) log-likelihood, as
/// logistf does. Returns the estimate, the point there, and the iterations.
fn newton(
    x: &DMatrix<f64>,
    y: &[bool],
    firth: bool,
) -> Result<(DVector<f64>, Point, usize), FitError> {
    let p = x.ncols();
    let mut beta = DVector::zeros(p);
    let mut at = evaluate(x, y, &beta, firth).ok_or(FitError::NoConvergence(0))?;
    for it in 1..=MAX_ITER {
        let mut step = &at.inverse * &at.gradient;
        let largest = step.amax();
        if largest > MAX_STEP {
            step *= MAX_STEP / largest;
        }
        let mut accepted = None;
        for halvings in 0..30 {
            let cand = &beta + &step;
            if let Some(pt) = evaluate(x, y, &cand, firth) {
                if pt.objective >= at.objective - 1e-12 {
                    accepted = Some((cand, pt, halvings));
                    break;
                }
            }
            step *= 0.5;
        }
        let Some((cand, pt, halvings)) = accepted else {
            return Err(FitError::NoConvergence(it));
        };
        let moved = (&cand - &beta).amax();
        beta = cand;
        at = pt;
        // Converged: the score is zero, or a full Newton step moves nothing
        // (a step shrunk by halving is no sign of convergence).
        if at.gradient.amax() < TOL || (moved < TOL && halvings == 0) {
            return Ok((beta, at, it));
        }
        if beta.amax() > 50.0 && !firth {
            // Running off to infinity: separation.
            return Err(FitError::NoConvergence(it));
        }
    }
    Err(FitError::NoConvergence(MAX_ITER))
}

/// Which columns of `cols` to keep: each must vary and not be a linear
/// combination of the intercept and the columns kept before it.
fn choose_columns(cols: &[Vec<f64>], n: usize) -> (Vec<usize>, Vec<(usize, Dropped)>) {
    let mut kept = Vec::new();
    let mut dropped = Vec::new();
    // An orthonormal basis of the span so far (Gram–Schmidt, twice for
    // stability), starting with the intercept.
    let mut basis: Vec<DVector<f64>> = vec![DVector::from_element(n, 1.0 / (n as f64).sqrt())];
    for (j, c) in cols.iter().enumerate() {
        let v = DVector::from_column_slice(c);
        if c.iter().all(|&a| (a - c[0]).abs() < 1e-12) {
            dropped.push((j, Dropped::Constant));
            continue;
        }
        let mut r = v.clone();
        for _ in 0..2 {
            for b in &basis {
                let d = b.dot(&r);
                r -= b * d;
            }
        }
        if r.norm() <= 1e-8 * v.norm().max(1.0) {
            dropped.push((j, Dropped::Collinear));
            continue;
        }
        basis.push(r.normalize());
        kept.push(j);
    }
    (kept, dropped)
}

/// Fit `y ~ 1 + cols` (each column one covariate, of length `y.len()`),
/// by maximum likelihood, or with Firth's penalty when `firth`.
pub fn fit(cols: &[Vec<f64>], y: &[bool], firth: bool) -> Result<Fit, FitError> {
    let n = y.len();
    if n < 2 || cols.iter().any(|c| c.len() != n) {
        return Err(FitError::TooFew(n));
    }
    if y.iter().all(|&v| v == y[0]) {
        return Err(FitError::OneOutcome(y[0]));
    }
    let (kept, dropped) = choose_columns(cols, n);
    let x = design_matrix(cols, &kept, n);
    let (beta, at, iterations) = newton(&x, y, firth)?;
    // Fitted probabilities at 0 or 1: the maximum-likelihood fit is
    // (quasi-)separated, its estimates meaningless.
    let separated = !firth && at.mu.iter().any(|&m| !(1e-8..=1.0 - 1e-8).contains(&m));
    Ok(Fit {
        method: if firth {
            Method::Firth
        } else {
            Method::MaximumLikelihood
        },
        kept,
        dropped,
        coef: beta.iter().copied().collect(),
        se: at.inverse.diagonal().iter().map(|v| v.sqrt()).collect(),
        loglik: at.objective,
        iterations,
        n,
        events: y.iter().filter(|&&v| v).count(),
        separated,
    })
}

/// Maximum likelihood when the data allow it; Firth's penalised likelihood
/// when they separate (the returned fit says `separated` and `Firth`).
pub fn fit_auto(cols: &[Vec<f64>], y: &[bool]) -> Result<Fit, FitError> {
    match fit(cols, y, false) {
        Ok(f) if !f.separated => Ok(f),
        Err(e @ (FitError::TooFew(_) | FitError::OneOutcome(_))) => Err(e),
        _ => fit(cols, y, true).map(|f| Fit {
            separated: true,
            ..f
        }),
    }
}

/// The design matrix of a fit: the intercept, then the kept columns.
fn design_matrix(cols: &[Vec<f64>], kept: &[usize], n: usize) -> DMatrix<f64> {
    DMatrix::from_fn(n, kept.len() + 1, |i, j| {
        if j == 0 {
            1.0
        } else {
            cols[kept[j - 1]][i]
        }
    })
}

/// The largest (penalised) log-likelihood with coefficient `j` held at
/// `value`, the others free, by Newton's method with step halving started
/// at `start`; None when it does not settle.
fn profile(
    x: &DMatrix<f64>,
    y: &[bool],
    firth: bool,
    j: usize,
    value: f64,
    start: &DVector<f64>,
) -> Option<f64> {
    let p = x.ncols();
    let free: Vec<usize> = (0..p).filter(|&i| i != j).collect();
    let mut beta = start.clone();
    beta[j] = value;
    let mut at = evaluate(x, y, &beta, firth)?;
    for _ in 0..MAX_ITER {
        // Newton on the free coefficients: (I_ff)⁻¹ g_f, with the
        // information rebuilt from the inverse.
        let info = at.inverse.clone().try_inverse()?;
        let sub = DMatrix::from_fn(free.len(), free.len(), |a, b| info[(free[a], free[b])]);
        let g = DVector::from_iterator(free.len(), free.iter().map(|&i| at.gradient[i]));
        if g.amax() < TOL {
            return Some(at.objective);
        }
        let mut step = sub.cholesky()?.solve(&g);
        let largest = step.amax();
        if largest > MAX_STEP {
            step *= MAX_STEP / largest;
        }
        let mut accepted = None;
        for _ in 0..30 {
            let mut cand = beta.clone();
            for (a, &i) in free.iter().enumerate() {
                cand[i] += step[a];
            }
            if let Some(pt) = evaluate(x, y, &cand, firth) {
                if pt.objective >= at.objective - 1e-12 {
                    accepted = Some((cand, pt));
                    break;
                }
            }
            step *= 0.5;
        }
        let Some((cand, pt)) = accepted else {
            // No step improves: at the maximum to the objective's
            // precision, when the score is small.
            return (g.amax() < 1e-6).then_some(at.objective);
        };
        let moved = (&cand - &beta).amax();
        beta = cand;
        at = pt;
        if moved < TOL {
            return Some(at.objective);
        }
    }
    None
}

/// Profile-likelihood intervals and likelihood-ratio p values of a fit's
/// coefficients (intercept first), as R's logistf reports them for Firth
/// fits: the interval holds every value b of a coefficient whose profile
/// (penalised) log-likelihood is within χ²₁(conf) / 2 of the maximum; the
/// p value compares the maximum with the profile at 0. An end that cannot
/// be found (the profile never falls that far) is None.
#[derive(Debug, Clone, PartialEq)]
pub struct Profiled {
    /// (low, high) of each coefficient.
    pub ci: Vec<(Option<f64>, Option<f64>)>,
    /// Likelihood-ratio p value of each coefficient being 0.
    pub p: Vec<Option<f64>>,
}

/// [`Profiled`] for `fit`, made from the same `cols` and `y`.
pub fn profile_intervals(fit: &Fit, cols: &[Vec<f64>], y: &[bool], conf: f64) -> Profiled {
    use statrs::distribution::{ChiSquared, ContinuousCDF};
    let chi = ChiSquared::new(1.0).expect("one degree of freedom");
    let crit = chi.inverse_cdf(conf) / 2.0;
    let firth = fit.method == Method::Firth;
    let x = design_matrix(cols, &fit.kept, y.len());
    let beta = DVector::from_column_slice(&fit.coef);
    let top = fit.loglik;
    let mut out = Profiled {
        ci: Vec::new(),
        p: Vec::new(),
    };
    for j in 0..fit.coef.len() {
        // Drop below the maximum at b: positive outside the interval.
        let drop = |b: f64| profile(&x, y, firth, j, b, &beta).map(|l| top - l - crit);
        let se = fit.se[j].max(1e-3);
        let end = |dir: f64| -> Option<f64> {
            let (mut inside, mut step) = (fit.coef[j], se);
            let mut outside = None;
            let mut failures = 0;
            for _ in 0..80 {
                let b = inside + dir * step;
                match drop(b) {
                    Some(d) if d > 0.0 => {
                        outside = Some(b);
                        break;
                    }
                    Some(_) => {
                        inside = b;
                        step *= 2.0;
                    }
                    // The profile could not be maximised that far out
                    // (fitted probabilities at 0 or 1): a shorter step.
                    None if failures < 30 => {
                        failures += 1;
                        step *= 0.5;
                    }
                    None => return None,
                }
            }
            let mut outside = outside?;
            // Bisection to 1e-10 on the coefficient's scale.
            for _ in 0..200 {
                if (outside - inside).abs() < 1e-10 * (1.0 + inside.abs()) {
                    break;
                }
                let mid = 0.5 * (inside + outside);
                match drop(mid) {
                    Some(d) if d > 0.0 => outside = mid,
                    Some(_) => inside = mid,
                    None => return None,
                }
            }
            Some(0.5 * (inside + outside))
        };
        out.ci.push((end(-1.0), end(1.0)));
        out.p.push(
            profile(&x, y, firth, j, 0.0, &beta).map(|l| 1.0 - chi.cdf((2.0 * (top - l)).max(0.0))),
        );
    }
    out
}

/// Cluster-robust (sandwich) standard errors of a maximum-likelihood fit,
/// clustered by `groups` (one label per observation): A⁻¹ B A⁻¹ with B the
/// sum over clusters of their score's outer product, times the small-sample
/// correction G/(G−1) · (N−1)/(N−K), as statsmodels' `cov_type="cluster"`.
/// Observations of one cluster (the trials of one item) may then be
/// correlated. None with fewer than two clusters.
pub fn cluster_se(fit: &Fit, cols: &[Vec<f64>], y: &[bool], groups: &[&str]) -> Option<Vec<f64>> {
    let n = y.len();
    let x = design_matrix(cols, &fit.kept, n);
    let beta = DVector::from_column_slice(&fit.coef);
    let at = evaluate(&x, y, &beta, false)?;
    let k = x.ncols();
    let mut scores: std::collections::BTreeMap<&str, DVector<f64>> = Default::default();
    for i in 0..n {
        let r = f64::from(u8::from(y[i])) - at.mu[i];
        let s = scores.entry(groups[i]).or_insert_with(|| DVector::zeros(k));
        *s += x.row(i).transpose() * r;
    }
    let g = scores.len();
    if g < 2 || n <= k {
        return None;
    }
    let mut meat = DMatrix::zeros(k, k);
    for s in scores.values() {
        meat += s * s.transpose();
    }
    let c = g as f64 / (g - 1) as f64 * (n - 1) as f64 / (n - k) as f64;
    let v = &at.inverse * meat * &at.inverse * c;
    Some(v.diagonal().iter().map(|d| d.max(0.0).sqrt()).collect())
}

/// Two-sided Wald p value of `coef / se`.
pub fn wald_p(coef: f64, se: f64) -> f64 {
    use statrs::distribution::{ContinuousCDF, Normal};
    let z = (coef / se).abs();
    2.0 * (1.0 - Normal::new(0.0, 1.0).expect("standard normal").cdf(z))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_constant_or_collinear_covariate_is_dropped_and_the_rest_fitted() {
        let a = vec![0.0, 1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 0.0];
        let b: Vec<f64> = a.iter().map(|v| 2.0 * v + 1.0).collect();
        let c = vec![3.0; 8];
        let d = vec![1.0, 2.0, 3.0, 1.0, 2.0, 3.0, 2.0, 2.0];
        let y = [false, true, false, true, false, false, true, true];
        let f = fit(&[a, b, c, d], &y, false).unwrap();
        assert_eq!(f.kept, vec![0, 3]);
        assert_eq!(
            f.dropped,
            vec![(1, Dropped::Collinear), (2, Dropped::Constant)]
        );
        assert_eq!(f.coef.len(), 3);
        assert!(!f.separated);
    }

    #[test]
    fn separated_data_fall_back_to_finite_firth_estimates() {
        let x = vec![0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0];
        let y = [false, false, false, false, true, true, true, true];
        assert!(fit(std::slice::from_ref(&x), &y, false).map_or(true, |f| f.separated));
        let f = fit_auto(&[x], &y).unwrap();
        assert_eq!(f.method, Method::Firth);
        assert!(f.separated);
        // Firth on a 2×2 table is the Haldane-corrected log odds ratio:
        // log((4.5·4.5)/(0.5·0.5)).
        assert!((f.coef[1] - (81.0f64).ln()).abs() < 1e-6, "{:?}", f.coef);
        assert!(f.se.iter().all(|s| s.is_finite()));
    }

    #[test]
    fn one_outcome_is_refused() {
        assert_eq!(
            fit(&[vec![1.0, 2.0, 3.0]], &[true, true, true], false),
            Err(FitError::OneOutcome(true))
        );
    }
}
