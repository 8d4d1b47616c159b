"""What a researcher would otherwise write: the tables of `chatprobe analyze`
computed with pandas + scipy + statsmodels + lifelines from sends.csv and
trials.csv (benches/analyze.rs runs it beside chatprobe on the same files).

    python3 benches/analyze_pandas.py RUN_DIR OUT_DIR
"""
import os
import sys

import numpy as np
import pandas as pd
import statsmodels.api as sm
from lifelines import KaplanMeierFitter
from scipy.stats import fisher_exact
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportion_confint


def wilson(k, n):
    lo, hi = proportion_confint(k, n, alpha=0.05, method="wilson")
    return lo, hi


def main(run, out):
    os.makedirs(out, exist_ok=True)
    sends = pd.read_csv(os.path.join(run, "sends.csv"))
    trials = pd.read_csv(os.path.join(run, "trials.csv"))
    conclusive = sends[sends.outcome.isin(["delivered", "blocked"])].copy()
    conclusive["blocked"] = conclusive.outcome == "blocked"

    # surveillance.csv
    s = trials[(trials.experiment == "surveillance")
               & trials.seeded_outcome.isin(["delivered", "blocked"])
               & trials.control_outcome.isin(["delivered", "blocked"])].copy()
    s["sb"] = s.seeded_outcome == "blocked"
    s["cb"] = s.control_outcome == "blocked"
    g = s.groupby(["experiment_name", "content_kind", "label", "channel"]).agg(
        n=("sb", "size"), seeded_blocked=("sb", "sum"), control_blocked=("cb", "sum")).reset_index()
    rows = []
    for r in g.itertuples():
        slo, shi = wilson(r.seeded_blocked, r.n)
        clo, chi = wilson(r.control_blocked, r.n)
        odds, p = fisher_exact([[r.seeded_blocked, r.n - r.seeded_blocked],
                                [r.control_blocked, r.n - r.control_blocked]])
        rows.append(dict(r._asdict(), seeded_rate=r.seeded_blocked / r.n, seeded_ci_low=slo,
                         seeded_ci_high=shi, control_rate=r.control_blocked / r.n,
                         control_ci_low=clo, control_ci_high=chi, fisher_p=p, odds_ratio=odds))
    surv = pd.DataFrame(rows)
    if len(surv):
        surv["p_holm"] = multipletests(surv.fisher_p, method="holm")[1]
    surv.drop(columns=["Index"], errors="ignore").to_csv(os.path.join(out, "surveillance.csv"), index=False)

    # latency.csv (+ median by logistic fit)
    lat = conclusive[(conclusive.experiment == "latency") & (conclusive.role == "test")]
    off = lat.planned_offset_s if "planned_offset_s" in lat else lat.offset_s
    lt = lat.assign(off=off).groupby(["experiment_name", "off"]).blocked.agg(["size", "sum"]).reset_index()
    lt[["ci_low", "ci_high"]] = [wilson(k, n) for k, n in zip(lt["sum"], lt["size"])]
    lt["rate"] = lt["sum"] / lt["size"]
    lt.to_csv(os.path.join(out, "latency.csv"), index=False)
    med = []
    for name, d in lat.assign(off=off).groupby("experiment_name"):
        m = sm.Logit(d.blocked.astype(int), sm.add_constant(d.off.astype(float))).fit(disp=0)
        med.append({"experiment_name": name, "median_s": -m.params.iloc[0] / m.params.iloc[1]})
    pd.DataFrame(med).to_csv(os.path.join(out, "latency_median.csv"), index=False)

    # transforms.csv and threshold.csv
    tr = conclusive[(conclusive.experiment == "transform") & (conclusive.role == "test")
                    & conclusive["transform"].notna()]
    tt = tr.groupby("transform").agg(n=("blocked", "size"), blocked=("blocked", "sum"),
                                     mean_phash_distance=("phash_distance", "mean")).reset_index()
    tt["evaded"] = tt.n - tt.blocked
    tt["evasion_rate"] = tt.evaded / tt.n
    tt[["ci_low", "ci_high"]] = [wilson(k, n) for k, n in zip(tt.evaded, tt.n)]
    tt.to_csv(os.path.join(out, "transforms.csv"), index=False)
    pts = tr.dropna(subset=["phash_distance"])
    m = sm.Logit(pts.blocked.astype(int), sm.add_constant(pts.phash_distance.astype(float))).fit(disp=0)
    b0, b1 = m.params.iloc[0], m.params.iloc[1]
    cov = m.cov_params().values
    x50 = -b0 / b1
    grad = np.array([-1 / b1, b0 / b1 ** 2])
    se = float(np.sqrt(grad @ cov @ grad))
    pd.DataFrame([{"intercept": b0, "slope": b1, "se_intercept": np.sqrt(cov[0, 0]),
                   "se_slope": np.sqrt(cov[1, 1]), "distance_at_50": x50,
                   "ci_low": x50 - 1.96 * se, "ci_high": x50 + 1.96 * se, "n": len(pts)}]).to_csv(
        os.path.join(out, "threshold.csv"), index=False)

    # keywords.csv
    kw = trials[(trials.experiment == "keyword") & (trials.verdict != "inconclusive")].copy()
    kw["b"] = kw.verdict == "blocked"
    kt = kw.groupby(["experiment_name", "parameter"]).b.agg(["size", "sum"]).reset_index()
    kt[["ci_low", "ci_high"]] = [wilson(k, n) for k, n in zip(kt["sum"], kt["size"])]
    blocked = set(kt[kt["sum"] > 0].parameter)
    kt["minimal_trigger"] = [
        s > 0 and not any(("+".join(sorted(set(p.split("+")) - {q})) in blocked) for q in p.split("+") if "+" in p)
        for p, s in zip(kt.parameter, kt["sum"])]
    kt.to_csv(os.path.join(out, "keywords.csv"), index=False)

    # expiry.csv: first delivered retest offset = event, else censored at the last
    ex = conclusive[(conclusive.experiment == "expiry") & (conclusive.role == "retest")]
    rows = []
    for name, d in ex.groupby("experiment_name"):
        per = d.groupby(["run_id", "trial_id"]).apply(
            lambda t: pd.Series({"T": t[~t.blocked].offset_s.min() if (~t.blocked).any() else t.offset_s.max(),
                                 "E": bool((~t.blocked).any())}), include_groups=False)
        kmf = KaplanMeierFitter().fit(per["T"], per["E"])
        sf = kmf.survival_function_.join(kmf.confidence_interval_)
        sf["experiment_name"] = name
        sf["median_s"] = kmf.median_survival_time_
        rows.append(sf.reset_index())
    (pd.concat(rows) if rows else pd.DataFrame()).to_csv(os.path.join(out, "expiry.csv"), index=False)

    # trend.csv
    t = conclusive[conclusive.role == "test"].assign(date=lambda d: d.sent_at.str[:10])
    tr = t.groupby(["run_id", "date", "experiment_name"]).blocked.agg(["size", "sum"]).reset_index()
    tr[["ci_low", "ci_high"]] = [wilson(k, n) for k, n in zip(tr["sum"], tr["size"])]
    tr.to_csv(os.path.join(out, "trend.csv"), index=False)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
