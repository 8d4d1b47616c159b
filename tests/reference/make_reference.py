"""Reference values for chatprobe's statistics, computed with the tools a
researcher would use: scipy, statsmodels, lifelines and firthmodels. Regenerate with

    python3 tests/reference/make_reference.py > tests/reference/reference.json

(pip install scipy statsmodels lifelines firthmodels). The data sets are fixed here, so
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

json.dump(out, sys.stdout, indent=1)
print()
