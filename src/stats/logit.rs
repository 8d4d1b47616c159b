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
    let x = DMatrix::from_fn(n, kept.len() + 1, |i, j| {
        if j == 0 {
            1.0
        } else {
            cols[kept[j - 1]][i]
        }
    });
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
