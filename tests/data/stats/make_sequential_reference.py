"""Reference values for rollout-guard's sequential error-rate test (stats::rate_ratio_log_evalue).

Writes ``tests/data/stats/sequential.json``. Independent of the Rust code's closed form: each
stratum's likelihood ratio is taken from SciPy's binomial pmf (``scipy.stats.binom.logpmf``),
the conditional distribution of the new side's errors given the stratum's total:

    ln e = logsumexp_θ( Σ_j [logpmf(k_j; n_j, p_j(θ)) − logpmf(k_j; n_j, p_j(1))] / φ ) − ln(#θ)
    p_j(θ) = θ·t·E_new / (θ·t·E_new + E_old),  n_j = k_j + errors_old_j

over the mixture's ratios θ (equal weights), with t the tolerance and φ the dispersion.
Strata with no errors or no requests on a side are left out, as in the Rust code. Counts are
whole numbers here (SciPy's pmf needs them). Rerun from the repository root with

    python3 tests/data/stats/make_sequential_reference.py

(requires ``pip install scipy numpy``); the JSON records the versions used.
"""

import json
import math
import os

import numpy as np
import scipy
from scipy import stats
from scipy.special import logsumexp

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "sequential.json")

# Must match stats::MIXTURE_RATIOS.
RATIOS = [1.25, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0, 100.0, 1000.0, 10000.0]


def log_evalue(strata, tolerance, phi):
    per_theta = []
    for theta in RATIOS:
        total = 0.0
        for (k, rn, ko, ro) in strata:
            n = k + ko
            if rn <= 0 or ro <= 0 or n == 0:
                continue
            p1 = tolerance * rn / (tolerance * rn + ro)
            pt = theta * tolerance * rn / (theta * tolerance * rn + ro)
            total += stats.binom.logpmf(k, n, pt) - stats.binom.logpmf(k, n, p1)
        per_theta.append(total / phi)
    return float(logsumexp(per_theta) - math.log(len(RATIOS)))


def cases():
    rng = np.random.default_rng(20261125)
    out = []

    def add(name, strata, tolerance=1.0, phi=1.0):
        strata = [[int(a), float(b), int(c), float(d)] for (a, b, c, d) in strata]
        out.append({
            "name": name,
            "strata": strata,
            "tolerance": tolerance,
            "dispersion": phi,
            "log_evalue": log_evalue(strata, tolerance, phi),
        })

    add("class errors, none on the old side", [(3, 100, 0, 300)])
    add("class errors over three minutes", [(2, 500, 0, 4500), (0, 600, 0, 4400), (4, 650, 0, 4300)])
    add("no errors at all", [(0, 100, 0, 100)])
    add("new side quieter", [(1, 1000, 30, 3000), (0, 1000, 25, 3000)])
    add("equal rates", [(10, 1000, 30, 3000), (12, 1000, 29, 3000), (9, 1000, 31, 3000)])
    add("tolerance 1.5", [(20, 1000, 30, 3000), (25, 1000, 29, 3000)], tolerance=1.5)
    add("bursty, widened", [(40, 1000, 30, 3000), (35, 1000, 29, 3000)], phi=3.0)
    add("a side without requests is left out", [(5, 0, 3, 100), (5, 100, 3, 0), (6, 500, 2, 500)])
    # Random rollouts: a canary at 10% of the traffic, errors at ×1 to ×3 the old pods' rate.
    for i in range(8):
        ratio = [1.0, 1.5, 2.0, 3.0][i % 4]
        strata = []
        for _ in range(int(rng.integers(3, 25))):
            rn = float(rng.integers(200, 3000))
            ro = float(rng.integers(2000, 30000))
            base = float(rng.uniform(0.001, 0.01))
            strata.append((int(rng.poisson(rn * base * ratio)), rn, int(rng.poisson(ro * base)), ro))
        add(f"random canary #{i} (×{ratio})", strata, phi=float(rng.choice([1.0, 1.0, 1.7])))
    return out


def main():
    data = {
        "scipy_version": scipy.__version__,
        "numpy_version": np.__version__,
        "ratios": RATIOS,
        "cases": cases(),
    }
    with open(OUT, "w") as f:
        json.dump(data, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
