//! chatprobe's statistics against reference values computed with scipy,
//! statsmodels, lifelines and firthmodels (tests/reference/make_reference.py).

use chatprobe::stats;
use serde_json::Value;

use crate::util::root;

fn reference() -> Value {
    let text = std::fs::read_to_string(root().join("tests/reference/reference.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn close(a: f64, b: f64, tol: f64, what: &str) {
    assert!(
        (a - b).abs() <= tol * (1.0 + b.abs()),
        "{what}: chatprobe {a} vs reference {b}"
    );
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap()
}

#[test]
fn wilson_and_clopper_pearson_match_statsmodels() {
    for case in reference()["proportions"].as_array().unwrap() {
        let (k, n) = (case["k"].as_u64().unwrap(), case["n"].as_u64().unwrap());
        let (lo, hi) = stats::wilson(k, n, 0.95).unwrap();
        close(
            lo,
            f(&case["wilson"][0]),
            1e-9,
            &format!("wilson low {k}/{n}"),
        );
        close(
            hi,
            f(&case["wilson"][1]),
            1e-9,
            &format!("wilson high {k}/{n}"),
        );
        let (lo, hi) = stats::clopper_pearson(k, n, 0.95).unwrap();
        close(
            lo,
            f(&case["clopper_pearson"][0]),
            1e-7,
            &format!("CP low {k}/{n}"),
        );
        close(
            hi,
            f(&case["clopper_pearson"][1]),
            1e-7,
            &format!("CP high {k}/{n}"),
        );
    }
    assert_eq!(stats::wilson(0, 0, 0.95), None);
}

#[test]
fn fisher_exact_matches_scipy() {
    for case in reference()["fisher"].as_array().unwrap() {
        let t = &case["table"];
        let g = |i: usize, j: usize| t[i][j].as_u64().unwrap();
        let (p, odds) = stats::fisher_exact(g(0, 0), g(0, 1), g(1, 0), g(1, 1));
        close(p, f(&case["p"]), 1e-9, &format!("fisher p {t}"));
        match &case["odds_ratio"] {
            Value::Null => assert!(odds.is_nan(), "{t}"),
            Value::String(s) if s == "inf" => assert!(odds.is_infinite(), "{t}"),
            v => close(odds, f(v), 1e-12, &format!("odds {t}")),
        }
    }
}

#[test]
fn holm_matches_statsmodels() {
    let r = reference();
    let p: Vec<f64> = r["holm"]["p"].as_array().unwrap().iter().map(f).collect();
    let want: Vec<f64> = r["holm"]["adjusted"]
        .as_array()
        .unwrap()
        .iter()
        .map(f)
        .collect();
    for (a, b) in stats::holm(&p).iter().zip(&want) {
        close(*a, *b, 1e-12, "holm");
    }
}

#[test]
fn logistic_irls_matches_statsmodels() {
    let r = &reference()["logistic"];
    let x: Vec<f64> = r["x"].as_array().unwrap().iter().map(f).collect();
    let y: Vec<bool> = r["y"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64() == Some(1))
        .collect();
    let fit = stats::logistic(&x, &y).unwrap();
    close(fit.intercept, f(&r["intercept"]), 1e-6, "intercept");
    close(fit.slope, f(&r["slope"]), 1e-6, "slope");
    close(
        fit.se_intercept,
        f(&r["se_intercept"]),
        1e-6,
        "se intercept",
    );
    close(fit.se_slope, f(&r["se_slope"]), 1e-6, "se slope");
    close(fit.x_at_50(), f(&r["x_at_50"]), 1e-6, "x at 50%");
    let (lo, hi) = fit.x_at_50_ci(0.95);
    close(lo, f(&r["x_at_50_ci"][0]), 1e-6, "x50 low");
    close(hi, f(&r["x_at_50_ci"][1]), 1e-6, "x50 high");
    // Complete separation has no finite fit.
    assert!(stats::logistic(&[1.0, 2.0, 3.0, 4.0], &[true, true, false, false]).is_none());
}

#[test]
fn kaplan_meier_matches_lifelines() {
    let r = &reference()["kaplan_meier"];
    let data: Vec<(f64, bool)> = r["times"]
        .as_array()
        .unwrap()
        .iter()
        .zip(r["events"].as_array().unwrap())
        .map(|(t, e)| (f(t), e.as_u64() == Some(1)))
        .collect();
    let steps = stats::kaplan_meier(&data, 0.95);
    let want = r["steps"].as_array().unwrap();
    assert_eq!(steps.len(), want.len());
    for (s, w) in steps.iter().zip(want) {
        close(s.time, f(&w["time"]), 0.0, "time");
        close(
            s.survival,
            f(&w["survival"]),
            1e-12,
            &format!("S({})", s.time),
        );
        close(s.ci_low, f(&w["ci_low"]), 1e-9, &format!("low({})", s.time));
        close(
            s.ci_high,
            f(&w["ci_high"]),
            1e-9,
            &format!("high({})", s.time),
        );
    }
    close(
        stats::km_median(&steps).unwrap(),
        f(&r["median"]),
        0.0,
        "median",
    );
}

fn columns_and_outcomes(r: &Value) -> (Vec<Vec<f64>>, Vec<bool>) {
    let cols = r["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_array().unwrap().iter().map(f).collect())
        .collect();
    let y = r["y"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64() == Some(1))
        .collect();
    (cols, y)
}

fn same_fit(fit: &stats::logit::Fit, r: &Value, what: &str) {
    for (key, got) in [("coef", &fit.coef), ("se", &fit.se)] {
        let want: Vec<f64> = r[key].as_array().unwrap().iter().map(f).collect();
        assert_eq!(got.len(), want.len(), "{what} {key}");
        for (i, (a, b)) in got.iter().zip(&want).enumerate() {
            close(*a, *b, 1e-6, &format!("{what} {key}[{i}]"));
        }
    }
    for (i, p) in r["p"].as_array().unwrap().iter().enumerate() {
        close(
            stats::logit::wald_p(fit.coef[i], fit.se[i]),
            f(p),
            1e-6,
            &format!("{what} p[{i}]"),
        );
    }
    close(fit.loglik, f(&r["loglik"]), 1e-6, &format!("{what} loglik"));
}

#[test]
fn logistic_on_several_covariates_matches_statsmodels() {
    let r = &reference()["logit_mle"];
    let (cols, y) = columns_and_outcomes(r);
    let fit = stats::logit::fit_auto(&cols, &y).unwrap();
    assert_eq!(fit.method, stats::logit::Method::MaximumLikelihood);
    assert!(!fit.separated);
    same_fit(&fit, r, "mle");
}

#[test]
fn separated_data_get_firths_estimates_as_firthmodels_and_logistf() {
    let r = &reference()["logit_firth"];
    let (cols, y) = columns_and_outcomes(r);
    let fit = stats::logit::fit_auto(&cols, &y).unwrap();
    assert_eq!(fit.method, stats::logit::Method::Firth);
    assert!(fit.separated, "every sensitive trial surveilled, no other");
    same_fit(&fit, r, "firth");
}

#[test]
fn odds_ratios_with_woolf_intervals_match_statsmodels() {
    for case in reference()["odds_ratio"].as_array().unwrap() {
        let t: Vec<u64> = case["table"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|r| r.as_array().unwrap().iter().map(|v| v.as_u64().unwrap()))
            .collect();
        let (or, lo, hi) = stats::odds_ratio_woolf(t[0], t[1], t[2], t[3], 0.95);
        let what = format!("{t:?}");
        close(or, f(&case["odds_ratio"]), 1e-9, &what);
        close(lo, f(&case["ci"][0]), 1e-9, &what);
        close(hi, f(&case["ci"][1]), 1e-9, &what);
    }
}

#[test]
fn mcnemar_exact_matches_statsmodels() {
    for case in reference()["mcnemar"].as_array().unwrap() {
        let t = &case["table"];
        let (b, c) = (t[0][1].as_u64().unwrap(), t[1][0].as_u64().unwrap());
        close(
            stats::mcnemar_exact(b, c),
            f(&case["p"]),
            1e-9,
            &format!("mcnemar {t}"),
        );
    }
}

#[test]
fn current_status_npmle_matches_isotonic_regression() {
    for case in reference()["current_status"].as_array().unwrap() {
        let tests: Vec<(f64, u64, u64)> = case["tests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| (f(&t[0]), t[1].as_u64().unwrap(), t[2].as_u64().unwrap()))
            .collect();
        let got = stats::current_status::npmle(&tests);
        let want: Vec<f64> = case["npmle"].as_array().unwrap().iter().map(f).collect();
        assert_eq!(got.len(), want.len());
        for ((t, a), b) in got.iter().zip(&want) {
            close(*a, *b, 1e-9, &format!("npmle at {t} of {tests:?}"));
        }
    }
}

#[test]
fn bounds_and_p_values_at_the_ends_are_exact() {
    let r = reference();
    for case in r["exact_ends"]["wilson"].as_array().unwrap() {
        let (k, n) = (case["k"].as_u64().unwrap(), case["n"].as_u64().unwrap());
        let (lo, hi) = stats::wilson(k, n, 0.95).unwrap();
        close(lo, f(&case["ci"][0]), 1e-9, &format!("wilson low {k}/{n}"));
        close(hi, f(&case["ci"][1]), 1e-9, &format!("wilson high {k}/{n}"));
        // Exactly 0 and 1 at the ends, never a rounding error away.
        if k == 0 {
            assert_eq!(lo, 0.0, "{k}/{n}");
        }
        if k == n {
            assert_eq!(hi, 1.0, "{k}/{n}");
        }
        assert!((0.0..=1.0).contains(&lo) && (0.0..=1.0).contains(&hi));
    }
    for case in r["exact_ends"]["fisher"].as_array().unwrap() {
        let t = &case["table"];
        let g = |i: usize, j: usize| t[i][j].as_u64().unwrap();
        let (p, _) = stats::fisher_exact(g(0, 0), g(0, 1), g(1, 0), g(1, 1));
        assert_eq!(p, f(&case["p"]), "fisher p {t}");
        assert!(p <= 1.0);
    }
}

#[test]
fn cluster_robust_errors_match_statsmodels() {
    let r = &reference()["logit_mle"];
    let (cols, y) = columns_and_outcomes(r);
    let fit = stats::logit::fit_auto(&cols, &y).unwrap();
    let groups: Vec<String> = r["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g.to_string())
        .collect();
    let refs: Vec<&str> = groups.iter().map(String::as_str).collect();
    let se = stats::logit::cluster_se(&fit, &cols, &y, &refs).unwrap();
    let want: Vec<f64> = r["cluster_se"].as_array().unwrap().iter().map(f).collect();
    assert_eq!(se.len(), want.len());
    for (i, (a, b)) in se.iter().zip(&want).enumerate() {
        close(*a, *b, 1e-6, &format!("cluster se[{i}]"));
    }
    // One cluster says nothing about the spread between clusters.
    assert_eq!(
        stats::logit::cluster_se(&fit, &cols, &y, &vec!["one"; y.len()]),
        None
    );
}

#[test]
fn firth_profile_intervals_and_lrt_match_firthmodels() {
    let r = &reference()["firth_profile"];
    let (cols, y) = columns_and_outcomes(r);
    let fit = stats::logit::fit(&cols, &y, true).unwrap();
    let coef: Vec<f64> = r["coef"].as_array().unwrap().iter().map(f).collect();
    for (i, (a, b)) in fit.coef.iter().zip(&coef).enumerate() {
        close(*a, *b, 1e-6, &format!("firth coef[{i}]"));
    }
    let prof = stats::logit::profile_intervals(&fit, &cols, &y, 0.95);
    for (i, ci) in r["ci"].as_array().unwrap().iter().enumerate() {
        let (lo, hi) = prof.ci[i];
        close(lo.unwrap(), f(&ci[0]), 1e-6, &format!("profile low[{i}]"));
        close(hi.unwrap(), f(&ci[1]), 1e-6, &format!("profile high[{i}]"));
        // The interval holds the estimate, and is not Wald's.
        assert!(lo.unwrap() < fit.coef[i] && fit.coef[i] < hi.unwrap());
    }
    for (i, p) in r["lrt_p"].as_array().unwrap().iter().enumerate() {
        close(prof.p[i].unwrap(), f(p), 1e-6, &format!("lrt p[{i}]"));
    }
}

#[test]
fn permutation_test_of_item_rates_matches_scipy() {
    for case in reference()["permutation"].as_array().unwrap() {
        let v = |k: &str| -> Vec<f64> { case[k].as_array().unwrap().iter().map(f).collect() };
        let p = stats::permutation_test(&v("a"), &v("b"), 0, 1).unwrap();
        close(p, f(&case["p"]), 1e-9, &format!("permutation {case}"));
    }
    // Too many splits to enumerate (C(120, 3) = 280,840): drawn,
    // reproducible, and near the exact tail of three items of rate 1
    // among 120 (2 / C(120, 3)), at the resolution 20,000 draws allow.
    let a = [1.0; 3];
    let b = [0.0; 117];
    let p = stats::permutation_test(&a, &b, 20_000, 7).unwrap();
    assert_eq!(p, stats::permutation_test(&a, &b, 20_000, 7).unwrap());
    assert!((2.0 / 20_001.0..0.002).contains(&p), "{p}");
    assert_eq!(stats::permutation_test(&[], &b, 10, 1), None);
}
