"""Reference values for chatprobe's statistics, computed with the tools a
researcher would use: scipy, statsmodels, lifelines and firthmodels. Regenerate with

    python3 tests/reference/make_reference.py > tests/reference/reference.json

(pip install scipy statsmodels lifelines firthmodels scikit-learn), or `make reference`. The data sets are fixed here, so
the file is reproducible; tests/it/stats.rs compares chatprobe against it.
"""
import importlib.metadata
import json
import sys

import numpy as np
import scipy
import scipy.stats
import statsmodels
import statsmodels.api as sm
import lifelines
import firthmodels
from lifelines import KaplanMeierFitter
from scipy.stats import fisher_exact
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportion_confint

out = {"versions": {"scipy": scipy.__version__, "statsmodels": statsmodels.__version__,
                    "lifelines": lifelines.__version__, "numpy": np.__version__}}

# Proportions: the published counts and edge cases.
props = [(49, 60), (4, 5), (0, 10), (10, 10), (1, 3), (27, 100), (0, 1), (500, 1000)]
out["proportions"] = []
for k, n in props:
    w = proportion_confint(k, n, alpha=0.05, method="wilson")
    cp = proportion_confint(k, n, alpha=0.05, method="beta")
    out["proportions"].append({"k": k, "n": n, "wilson": list(w), "clopper_pearson": list(cp)})

# Fisher's exact test, two-sided.
tables = [[[49, 11], [2, 58]], [[4, 1], [0, 5]], [[0, 5], [0, 5]], [[3, 0], [0, 3]],
          [[12, 8], [9, 11]], [[1, 9], [11, 3]], [[100, 200], [150, 150]], [[2, 7], [8, 2]]]
out["fisher"] = []
for t in tables:
    odds, p = fisher_exact(t, alternative="two-sided")
    out["fisher"].append({"table": t, "p": p, "odds_ratio": None if np.isnan(odds) else (
        "inf" if np.isinf(odds) else odds)})

# Holm.
pvals = [0.01, 0.04, 0.03, 0.005, 0.5, 0.2]
out["holm"] = {"p": pvals, "adjusted": list(multipletests(pvals, method="holm")[1])}

# Logistic regression of blocked on pHash distance (a fixed, overlapping set).
rng = np.random.default_rng(20191127)
x = np.repeat(np.arange(0, 33, 2), 6).astype(float)
p_true = 1 / (1 + np.exp(-(4.0 - 0.35 * x)))
y = (rng.random(len(x)) < p_true).astype(int)
model = sm.Logit(y, sm.add_constant(x)).fit(disp=0, tol=1e-12, maxiter=200)
b0, b1 = model.params
cov = model.cov_params()
x50 = -b0 / b1
g = np.array([-1 / b1, b0 / b1 ** 2])
se50 = float(np.sqrt(g @ cov @ g))
z = 1.959963984540054
out["logistic"] = {"x": x.tolist(), "y": y.tolist(), "intercept": b0, "slope": b1,
                   "se_intercept": float(np.sqrt(cov[0, 0])), "se_slope": float(np.sqrt(cov[1, 1])),
                   "x_at_50": x50, "x_at_50_ci": [x50 - z * se50, x50 + z * se50]}

# Kaplan-Meier: hours until a blocked hash expired (False = still blocked at the end).
times = [2, 3, 3, 5, 8, 8, 8, 12, 13, 20, 24, 24, 24, 30, 36]
events = [1, 1, 0, 1, 1, 1, 0, 1, 0, 1, 0, 0, 1, 1, 0]
kmf = KaplanMeierFitter(alpha=0.05).fit(times, events)
sf = kmf.survival_function_
ci = kmf.confidence_interval_
steps = []
for t in sorted(set(times)):
    steps.append({"time": t, "survival": float(sf.loc[t].iloc[0]),
                  "ci_low": float(ci.loc[t].iloc[0]), "ci_high": float(ci.loc[t].iloc[1])})
out["kaplan_meier"] = {"times": times, "events": events, "steps": steps,
                       "median": float(kmf.median_survival_time_)}

# Logistic regression on several covariates (surveillance on content
# features): maximum likelihood (statsmodels) on overlapping data, and
# Firth's penalised likelihood (firthmodels) on separated data.
rng = np.random.default_rng(20200507)
n = 80
sensitive = (rng.random(n) < 0.5).astype(float)
document = (rng.random(n) < 0.4).astype(float)
keywords = np.where(sensitive == 1, rng.integers(0, 4, n), 0).astype(float)
kib = np.round(rng.uniform(2, 9, n), 3)
eta = -1.5 + 1.8 * sensitive - 0.6 * document + 0.4 * keywords + 0.1 * kib
y = (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(int)
X = np.column_stack([sensitive, document, keywords, kib])
mle = sm.Logit(y, sm.add_constant(X)).fit(disp=0, tol=1e-12, maxiter=200)
out["logit_mle"] = {"columns": X.T.tolist(), "y": y.tolist(), "coef": list(mle.params),
                    "se": list(mle.bse), "p": list(mle.pvalues), "loglik": float(mle.llf)}
# Separated: every sensitive trial surveilled, no benign one, with two
# covariates beside it.
from firthmodels import FirthLogisticRegression
ys = sensitive.astype(int)
Xs = np.column_stack([sensitive, document, kib])
firth = FirthLogisticRegression(gtol=1e-9, xtol=1e-9, max_iter=500).fit(Xs, ys)
# firthmodels puts the intercept last; chatprobe puts it first. Standard
# errors as logistf and Heinze & Schemper (2002) give them: the inverse of
# the Fisher information X'WX at the penalised estimate (firthmodels' own
# bse_ uses the augmented-data information instead).
coef = np.array([float(firth.intercept_)] + list(firth.coef_))
Xc = sm.add_constant(Xs)
mu = 1 / (1 + np.exp(-Xc @ coef))
se = np.sqrt(np.diag(np.linalg.inv(Xc.T @ (Xc * (mu * (1 - mu))[:, None]))))
out["logit_firth"] = {"columns": Xs.T.tolist(), "y": ys.tolist(), "coef": coef.tolist(),
                      "se": se.tolist(), "p": (2 * scipy.stats.norm.sf(np.abs(coef / se))).tolist(),
                      "loglik": float(firth.loglik_)}
# Profile-likelihood intervals and penalised likelihood-ratio p values of
# Firth fits (as R's logistf reports them), intercept first, on separated
# data of the surveillance kind (every sensitive trial surveilled) small
# enough for firthmodels to converge to 1e-10.
rng = np.random.default_rng(20191202)
m = 36
sens = np.repeat([0.0, 1.0], m // 2)
kib = np.round(rng.uniform(1, 6, m), 3)
yp = np.where(sens == 1, 1, (rng.random(m) < 0.25).astype(int))
yp[-1] = 1
Xp = np.column_stack([sens, kib])
fp = FirthLogisticRegression(gtol=1e-8, xtol=1e-8, max_iter=500).fit(Xp, yp)
fp.lrt()
pl = fp.conf_int(alpha=0.05, method="pl", tol=1e-10, max_iter=500)
lp = list(fp.lrt_pvalues_)
out["firth_profile"] = {"columns": Xp.T.tolist(), "y": yp.tolist(),
                        "coef": [float(fp.intercept_)] + list(fp.coef_),
                        "ci": [pl[-1].tolist()] + [r.tolist() for r in pl[:-1]],
                        "lrt_p": [lp[-1]] + lp[:-1]}
# Cluster-robust standard errors of the maximum-likelihood fit, by item
# (four trials an item), as statsmodels' cov_type="cluster" gives them.
groups = np.arange(n) // 4
mle_c = sm.Logit(y, sm.add_constant(X)).fit(disp=0, tol=1e-12, maxiter=200, cov_type="cluster",
                                               cov_kwds={"groups": groups})
out["logit_mle"]["groups"] = groups.tolist()
out["logit_mle"]["cluster_se"] = list(mle_c.bse)
out["versions"]["firthmodels"] = importlib.metadata.version("firthmodels")

# Odds ratios of 2x2 tables with 0.5 added to every cell when one is zero
# (Haldane-Anscombe) and Woolf's interval: statsmodels' Table2x2. Its own
# shift_zeros replaces only the zero cells by 0.5 (statsmodels 0.15, though
# its docstring says all cells), so the shift is made here.
from statsmodels.stats.contingency_tables import Table2x2
out["odds_ratio"] = []
for t in tables:
    a = np.array(t, dtype=float)
    tt = Table2x2(a + 0.5 if (a == 0).any() else a, shift_zeros=False)
    lo, hi = tt.oddsratio_confint(alpha=0.05)
    out["odds_ratio"].append({"table": t, "odds_ratio": float(tt.oddsratio),
                              "ci": [float(lo), float(hi)]})

# McNemar's exact test of paired outcomes (the surveillance headline):
# [[both blocked, seeded only], [control only, neither]].
from statsmodels.stats.contingency_tables import mcnemar
out["mcnemar"] = []
for both, b, c, neither in [(0, 4, 0, 1), (3, 10, 2, 5), (0, 0, 0, 6), (1, 5, 5, 0),
                            (2, 1, 7, 0), (10, 25, 9, 3), (0, 6, 0, 0), (0, 1, 0, 0)]:
    r = mcnemar([[both, b], [c, neither]], exact=True)
    out["mcnemar"].append({"table": [[both, b], [c, neither]], "p": float(r.pvalue)})

# Time to censorship from current-status tests (latency): the NPMLE is the
# isotonic regression of the blocked fractions on the offsets, weighted by
# the tests (Groeneboom & Wellner 1992); scikit-learn's IsotonicRegression
# computes it independently. (lifelines' interval-censored Kaplan-Meier
# stops short of it on these data, with the never-inspected mass moved to
# finite times, so it is not the reference here.)
from sklearn.isotonic import IsotonicRegression
out["current_status"] = []
for data in [[(5, 10, 1), (10, 10, 2), (20, 10, 5), (40, 10, 7), (60, 10, 8)],
             [(5, 3, 2), (10, 3, 1), (20, 3, 3), (40, 3, 2), (60, 3, 3)],
             [(5, 4, 0), (10, 4, 0), (20, 4, 1)],
             [(10, 6, 6), (20, 2, 0), (30, 5, 4), (45, 1, 1), (60, 7, 3)]]:
    t = np.array([d[0] for d in data], dtype=float)
    w = np.array([d[1] for d in data], dtype=float)
    y = np.array([d[2] / d[1] for d in data])
    f = IsotonicRegression(increasing=True).fit(t, y, sample_weight=w).predict(t)
    out["current_status"].append({"tests": [list(d) for d in data], "npmle": f.tolist()})

# Exact permutation test of a difference in mean item rates (the topic
# and format tables compare items, each with its own rate).
from scipy.stats import permutation_test
out["permutation"] = []
for a, b in [([1.0, 0.75, 1.0], [0.0, 0.0, 0.25]),
             ([1.0, 1.0, 1.0], [0.0] * 12),
             ([0.5, 0.25], [0.0, 0.25, 0.5, 0.0, 0.0]),
             ([1.0, 0.0], [0.0, 0.0, 1.0]),
             ([0.0, 0.0], [0.0, 0.0, 0.0]),
             ([2 / 3, 1 / 3, 1.0, 1.0], [0.0, 1 / 3, 0.0, 0.0, 2 / 3, 0.0])]:
    r = permutation_test((np.array(a), np.array(b)), lambda x, y: np.mean(x) - np.mean(y),
                         permutation_type="independent", alternative="two-sided",
                         n_resamples=np.inf, vectorized=False)
    out["permutation"].append({"a": a, "b": b, "p": float(r.pvalue)})

# Exact bounds: Wilson at k = 0 and k = n, Fisher's p of a table whose
# every table counts.
out["exact_ends"] = {
    "wilson": [{"k": k, "n": n, "ci": list(proportion_confint(k, n, alpha=0.05, method="wilson"))}
               for k, n in [(0, 5), (5, 5), (0, 1), (12, 12)]],
    "fisher": [{"table": t, "p": fisher_exact(t)[1]} for t in [[[2, 3], [2, 3]], [[0, 5], [0, 10]], [[1, 1], [1, 1]]]],
}

json.dump(out, sys.stdout, indent=1)
print()
