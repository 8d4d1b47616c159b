//! Numbers as the report's sentences write them, shared by every design's
//! summary so that all sentences read alike.

/// A rate as a whole percentage (`–` for no rate).
pub fn pct(x: Option<f64>) -> String {
    x.map_or("–".into(), |x| format!("{:.0}%", x * 100.0))
}

/// A 95 % interval of a rate, in percent.
pub fn ci(lo: Option<f64>, hi: Option<f64>) -> String {
    match (lo, hi) {
        (Some(l), Some(h)) => format!("95% CI {:.0}–{:.0}%", l * 100.0, h * 100.0),
        _ => "no interval".into(),
    }
}

/// A 95 % interval in seconds.
pub fn ci_s(lo: Option<f64>, hi: Option<f64>) -> String {
    match (lo, hi) {
        (Some(l), Some(h)) => format!("95% CI {l:.0}–{h:.0} s"),
        _ => "no interval".into(),
    }
}

/// A p value (`p < 0.001` below that).
pub fn p_value(p: Option<f64>) -> String {
    match p {
        Some(p) if p < 0.001 => "p < 0.001".into(),
        Some(p) => format!("p = {p:.3}"),
        None => "p –".into(),
    }
}

/// A ratio (an odds ratio) to three significant figures.
pub fn ratio(x: f64) -> String {
    if !x.is_finite() {
        return "–".into();
    }
    let digits = 2 - x.abs().max(1e-300).log10().floor() as i32;
    format!("{:.*}", digits.max(0) as usize, x)
}

/// A 95 % interval of a ratio.
pub fn ci_ratio(lo: Option<f64>, hi: Option<f64>) -> String {
    match (lo, hi) {
        (Some(l), Some(h)) => format!("95% CI {}–{}", ratio(l), ratio(h)),
        _ => "no interval".into(),
    }
}
