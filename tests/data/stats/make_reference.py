"""Generate reference values for rollout-guard's statistics unit tests.

This script uses SciPy/NumPy as an independent implementation and writes
``tests/data/stats/reference.json`` with reference results for:

  * mannwhitneyu   -- scipy.stats.mannwhitneyu (U statistic for x, p-value)
  * fisher_exact   -- scipy.stats.fisher_exact on 2x2 tables (p-value)
  * binomtest      -- scipy.stats.binomtest (p-value)
  * hodges_lehmann -- two-sample Hodges-Lehmann shift estimate:
                      numpy.median of all pairwise differences x_i - y_j

Rerun from the repository root with:

    python3 tests/data/stats/make_reference.py

(requires ``pip install scipy numpy``). All random inputs come from fixed
seeds, so the inputs are reproducible; the JSON records the scipy and numpy
versions used (``scipy_version`` / ``numpy_version``), since p-values may
differ in the last bits between library versions.

Conventions worth knowing when comparing against Rust:
  * mannwhitneyu ``statistic`` is U for x (the first sample):
    R_x - n_x (n_x + 1) / 2, with ties given mid-ranks.
    Asymptotic p-values use the tie-corrected variance and (if
    use_continuity) a 0.5 continuity correction; two-sided p = 2 * one-sided,
    clipped to 1.
  * fisher_exact alternative 'greater' tests odds ratio > 1, i.e.
    P(X >= table[0][0]) under the hypergeometric distribution with the
    table's margins fixed; 'less' is P(X <= table[0][0]). Two-sided sums the
    probabilities of all tables no more likely than the observed one (with a
    relative tolerance of 1e-7).
  * binomtest two-sided uses the same "sum of outcomes no more likely than the
    observed one" rule (relative tolerance 1e-7).
Floats are written with json.dump (shortest round-trip repr, full double
precision); cases whose results are not finite are skipped, never written.
"""

import json
import math
import os

import numpy as np
import scipy
from scipy import stats

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "reference.json")


def fl(values, decimals=None):
    """Convert to a list of Python floats, optionally rounded.

    The returned list is exactly what is passed to scipy and written to JSON.
    """
    out = [float(v) for v in values]
    if decimals is not None:
        out = [round(v, decimals) for v in out]
    return out


def cpu(rng, n, median, sigma, decimals=6):
    """CPU-like usage (cores): lognormal noise around a median, clipped."""
    v = median * rng.lognormal(mean=0.0, sigma=sigma, size=n)
    return fl(np.clip(v, 0.05, 4.0), decimals)


def finite(*vals):
    return all(math.isfinite(v) for v in vals)


# ---------------------------------------------------------------- mannwhitneyu
def mwu_cases():
    cases = []

    def add(name, x, y, alternative, method, use_continuity=True):
        # Naming convention: a case has tied values iff its name contains "ties".
        has_ties = len(set(x) | set(y)) < len(x) + len(y)
        assert has_ties == ("ties" in name), name
        r = stats.mannwhitneyu(x, y, alternative=alternative, method=method,
                               use_continuity=use_continuity)
        s, p = float(r.statistic), float(r.pvalue)
        if not finite(s, p):
            print("skipping non-finite case", name)
            return
        cases.append({"name": name, "x": x, "y": y, "alternative": alternative,
                      "method": method, "use_continuity": bool(use_continuity),
                      "statistic": s, "pvalue": p})

    # Small samples without ties, exact distribution, all alternatives.
    rng = np.random.default_rng(1001)
    x = cpu(rng, 5, 0.9, 0.2)
    y = cpu(rng, 6, 0.7, 0.2)
    for alt in ("two-sided", "greater", "less"):
        add(f"exact_n5_n6_cpu_{alt}", x, y, alt, "exact")

    rng = np.random.default_rng(1002)
    x = cpu(rng, 3, 1.0, 0.15)
    y = cpu(rng, 8, 1.0, 0.15)
    for alt in ("two-sided", "greater", "less"):
        add(f"exact_n3_n8_cpu_{alt}", x, y, alt, "exact")

    # Exact, complete separation (x entirely above y): smallest possible p.
    x = [1.41, 1.52, 1.63, 1.74, 1.85, 1.96, 1.47, 1.58]
    y = [0.21, 0.32, 0.43, 0.54, 0.65, 0.76, 0.87, 0.98]
    add("exact_n8_n8_x_all_above_y_greater", x, y, "greater", "exact")

    # Larger samples, asymptotic, continuity on and off.
    rng = np.random.default_rng(2001)
    x = cpu(rng, 40, 0.85, 0.25)
    y = cpu(rng, 35, 0.75, 0.25)
    for cc in (True, False):
        tag = "cc" if cc else "nocc"
        for alt in ("two-sided", "greater"):
            add(f"asymp_n40_n35_cpu_shift_{alt}_{tag}", x, y, alt, "asymptotic", cc)

    rng = np.random.default_rng(2002)
    x = cpu(rng, 9, 0.5, 0.3)
    y = cpu(rng, 12, 0.6, 0.3)
    for cc in (True, False):
        tag = "cc" if cc else "nocc"
        add(f"asymp_n9_n12_cpu_less_{tag}", x, y, "less", "asymptotic", cc)

    rng = np.random.default_rng(2003)
    x = cpu(rng, 300, 1.2, 0.3)
    y = cpu(rng, 250, 1.15, 0.3)
    for cc in (True, False):
        tag = "cc" if cc else "nocc"
        add(f"asymp_n300_n250_cpu_small_shift_greater_{tag}", x, y, "greater", "asymptotic", cc)

    # Ties: CPU readings rounded to 0.01 cores (asymptotic, tie-corrected variance).
    rng = np.random.default_rng(3001)
    x = cpu(rng, 60, 0.40, 0.15, decimals=2)
    y = cpu(rng, 50, 0.38, 0.15, decimals=2)
    for alt in ("two-sided", "greater", "less"):
        add(f"asymp_ties_round001_n60_n50_{alt}_cc", x, y, alt, "asymptotic", True)
    add("asymp_ties_round001_n60_n50_two-sided_nocc", x, y, "two-sided", "asymptotic", False)

    # Heavy ties: readings rounded to 0.1 cores.
    rng = np.random.default_rng(3002)
    x = cpu(rng, 30, 0.6, 0.2, decimals=1)
    y = cpu(rng, 25, 0.5, 0.2, decimals=1)
    add("asymp_heavy_ties_round01_n30_n25_greater_cc", x, y, "greater", "asymptotic", True)

    # Very unequal sizes: 3 canary readings vs 200 baseline readings.
    rng = np.random.default_rng(4001)
    x = cpu(rng, 3, 1.6, 0.2)
    y = cpu(rng, 200, 1.0, 0.25)
    for alt in ("two-sided", "greater"):
        add(f"asymp_unequal_n3_n200_{alt}_cc", x, y, alt, "asymptotic", True)

    # x clearly greater: tiny p-value.
    rng = np.random.default_rng(5001)
    x = cpu(rng, 60, 1.8, 0.1)
    y = cpu(rng, 60, 0.6, 0.1)
    add("asymp_x_clearly_greater_n60_n60_greater_cc_tiny_p", x, y, "greater", "asymptotic", True)
    add("asymp_x_clearly_greater_n60_n60_two-sided_nocc_tiny_p", x, y, "two-sided", "asymptotic", False)

    # Identical distributions (same generator parameters).
    rng = np.random.default_rng(6001)
    x = cpu(rng, 80, 0.9, 0.3)
    y = cpu(rng, 80, 0.9, 0.3)
    add("asymp_identical_dist_n80_n80_two-sided_cc", x, y, "two-sided", "asymptotic", True)

    # Identical samples (x == y exactly, all tied pairwise): U = n^2/2, p = 1.
    x = [0.5, 0.7, 0.9, 1.1, 1.3, 1.5, 1.7, 1.9, 2.1, 2.3]
    add("asymp_ties_x_equals_y_n10_two-sided_cc_p_is_1", x, list(x), "two-sided", "asymptotic", True)

    return cases


# ---------------------------------------------------------------- fisher_exact
def fisher_cases():
    cases = []

    def add(name, table, alternatives=("two-sided", "greater", "less")):
        for alt in alternatives:
            r = stats.fisher_exact(table, alternative=alt)
            p = float(r.pvalue)
            if not finite(p):
                print("skipping non-finite case", name, alt)
                continue
            cases.append({"name": f"{name}_{alt}", "table": [[int(v) for v in row] for row in table],
                          "alternative": alt, "pvalue": p})

    add("zero_cell_0_1000_5_3000", [[0, 1000], [5, 3000]])
    add("small_3_5_4_50", [[3, 5], [4, 50]])
    add("large_12_200000_3_600000", [[12, 200000], [3, 600000]])
    add("textbook_tea_3_1_1_3", [[3, 1], [1, 3]])
    add("canary_errors_8_992_2_998", [[8, 992], [2, 998]], ("greater", "two-sided"))
    add("balanced_10_10_10_10", [[10, 10], [10, 10]], ("two-sided",))
    add("zero_row_0_0_5_10_p_is_1", [[0, 0], [5, 10]], ("two-sided",))
    return cases


# ---------------------------------------------------------------- binomtest
def binom_cases():
    cases = []

    def add(name, k, n, p, alt):
        r = stats.binomtest(k, n, p, alternative=alt)
        pv = float(r.pvalue)
        if not finite(pv):
            print("skipping non-finite case", name)
            return
        cases.append({"name": name, "k": int(k), "n": int(n), "p": float(p),
                      "alternative": alt, "pvalue": pv})

    add("k0_n20_p0.05_two-sided", 0, 20, 0.05, "two-sided")
    add("k0_n20_p0.05_less", 0, 20, 0.05, "less")
    add("k0_n200_p0.5_two-sided_tiny_p", 0, 200, 0.5, "two-sided")
    add("kn_n30_k30_p0.9_greater", 30, 30, 0.9, "greater")
    add("kn_n30_k30_p0.9_two-sided", 30, 30, 0.9, "two-sided")
    add("k60_n200_p0.05_greater_tiny_p", 60, 200, 0.05, "greater")
    add("k7_n50_p0.05_greater", 7, 50, 0.05, "greater")
    add("k7_n50_p0.05_two-sided", 7, 50, 0.05, "two-sided")
    add("k3_n10_p0.3_two-sided_observed_equals_mode", 3, 10, 0.3, "two-sided")
    add("k12_n40_p0.5_less", 12, 40, 0.5, "less")
    add("k12_n40_p0.5_two-sided", 12, 40, 0.5, "two-sided")
    add("k50_n100_p0.5_two-sided_p_is_1", 50, 100, 0.5, "two-sided")
    add("k25_n60_p0.35_two-sided_asymmetric", 25, 60, 0.35, "two-sided")
    add("k45_n120_p0.25_greater", 45, 120, 0.25, "greater")
    add("k5_n5_p0.5_two-sided", 5, 5, 0.5, "two-sided")
    add("k1_n100_p0.1_less", 1, 100, 0.1, "less")
    return cases


# ---------------------------------------------------------------- hodges_lehmann
def hl_cases():
    cases = []

    def add(name, x, y):
        d = np.subtract.outer(np.asarray(x, dtype=float), np.asarray(y, dtype=float)).ravel()
        shift = float(np.median(d))
        if not finite(shift):
            print("skipping non-finite case", name)
            return
        cases.append({"name": f"{name}_pairs{d.size}", "x": x, "y": y, "shift": shift})

    add("odd_pairs_n3_n5", [1.0, 2.5, 4.0], [0.5, 1.5, 2.0, 3.0, 3.5])
    add("even_pairs_n4_n6", [1.1, 1.3, 1.8, 2.4], [0.9, 1.0, 1.2, 1.6, 1.7, 2.0])
    add("ties_rounded_even_pairs", [0.4, 0.4, 0.5, 0.6], [0.3, 0.4, 0.4, 0.5])
    add("ties_rounded_odd_pairs", [0.4, 0.5, 0.5], [0.3, 0.4, 0.4, 0.5, 0.6])
    add("single_x_vs_n7", [1.0], [0.2, 0.4, 0.6, 0.8, 1.0, 1.2, 1.4])
    add("identical_samples_zero_shift", [0.5, 0.7, 0.9, 1.1], [0.5, 0.7, 0.9, 1.1])
    rng = np.random.default_rng(7001)
    add("cpu_unequal_n3_n200", cpu(rng, 3, 1.6, 0.2), cpu(rng, 200, 1.0, 0.25))
    rng = np.random.default_rng(7002)
    add("cpu_ties_round001_n25_n31", cpu(rng, 25, 0.8, 0.2, 2), cpu(rng, 31, 0.7, 0.2, 2))
    rng = np.random.default_rng(7003)
    add("cpu_n40_n35_negative_shift", cpu(rng, 40, 0.6, 0.25), cpu(rng, 35, 0.75, 0.25))
    return cases


def main():
    data = {
        "generated_by": "tests/data/stats/make_reference.py",
        "scipy_version": scipy.__version__,
        "numpy_version": np.__version__,
        "mannwhitneyu": mwu_cases(),
        "fisher_exact": fisher_cases(),
        "binomtest": binom_cases(),
        "hodges_lehmann": hl_cases(),
    }
    with open(OUT, "w") as f:
        json.dump(data, f, indent=1, allow_nan=False)
        f.write("\n")
    for key in ("mannwhitneyu", "fisher_exact", "binomtest", "hodges_lehmann"):
        print(f"{key}: {len(data[key])} cases")
    print("wrote", OUT)


if __name__ == "__main__":
    main()
