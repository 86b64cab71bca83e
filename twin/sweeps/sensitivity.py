"""Sampled designs and sensitivity analysis of a sweep's margins.

``random`` and ``latin_hypercube`` (scipy.stats.qmc.LatinHypercube) draw ``n`` points in
the bounds; ``sobol`` is SALib's Saltelli-type design for Sobol indices
(``SALib.sample.sobol``: N (D+2) runs, N (2D+2) with second order) analysed by
``SALib.analyze.sobol`` (first-order S1 and total ST indices with 95 % confidence
intervals); ``morris`` is SALib's elementary-effects design (N (D+1) runs) analysed by
``SALib.analyze.morris`` (mu*, sigma). Both analyses need every run's value: a margin
with failed runs (NaN) is reported as not analysed, with the count.
"""
from __future__ import annotations

import numpy as np


def draw(sample, problem: dict) -> np.ndarray:
    """The design matrix (runs x keys) of a ``[sample]`` table."""
    d = problem["num_vars"]
    lo, hi = np.array(problem["bounds"], dtype=float).T
    if sample.method == "random":
        return lo + (hi - lo) * np.random.default_rng(sample.seed).random((sample.n, d))
    if sample.method == "latin_hypercube":
        from scipy.stats import qmc

        try:
            lhs = qmc.LatinHypercube(d, rng=sample.seed)
        except TypeError:  # scipy < 1.15 names it seed
            lhs = qmc.LatinHypercube(d, seed=sample.seed)
        return qmc.scale(lhs.random(sample.n), lo, hi)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SALib warns when N is not a power of 2; the docs say so
        if sample.method == "sobol":
            from SALib.sample import sobol

            return sobol.sample(problem, sample.n, calc_second_order=sample.second_order, seed=sample.seed)
        from SALib.sample import morris

        return morris.sample(problem, sample.n, num_levels=sample.levels, seed=sample.seed)


def analyze(sample, problem: dict, matrix: np.ndarray, table, outputs: list) -> dict:
    """Per output column of ``table`` (a DataFrame in run order): a list of rows, one per
    key, of the indices (sobol: S1, S1_conf, ST, ST_conf; morris: mu, mu_star,
    mu_star_conf, sigma); or a string saying why it was not analysed."""
    out = {}
    for name in outputs:
        y = table[name].to_numpy(dtype=float) if name in table else np.full(len(matrix), np.nan)
        bad = int(np.count_nonzero(~np.isfinite(y)))
        if bad:
            out[name] = f"not analysed: {bad} of {len(y)} runs have no value (failed or missing)"
            continue
        if np.ptp(y) == 0.0:
            out[name] = "not analysed: the same value in every run"
            continue
        if sample.method == "sobol":
            from SALib.analyze import sobol

            res = sobol.analyze(problem, y, calc_second_order=sample.second_order, seed=sample.seed)
            out[name] = [dict(parameter=k, S1=float(res["S1"][i]), S1_conf=float(res["S1_conf"][i]),
                              ST=float(res["ST"][i]), ST_conf=float(res["ST_conf"][i]))
                         for i, k in enumerate(problem["names"])]
        else:
            from SALib.analyze import morris

            res = morris.analyze(problem, matrix, y, num_levels=sample.levels, seed=sample.seed)
            out[name] = [dict(parameter=k, mu=float(res["mu"][i]), mu_star=float(res["mu_star"][i]),
                              mu_star_conf=float(res["mu_star_conf"][i]), sigma=float(res["sigma"][i]))
                         for i, k in enumerate(problem["names"])]
    return out


def to_frame(result: dict):
    """The analysis as one long table: output, parameter, indices (or the note)."""
    import pandas as pd

    rows = []
    for name, value in result.items():
        if isinstance(value, str):
            rows.append(dict(output=name, parameter=None, note=value))
        else:
            rows += [dict(output=name, **r, note="") for r in value]
    return pd.DataFrame(rows)


def text(result: dict, method: str) -> str:
    """The indices as a table for the terminal, per output."""
    lines = []
    for name, value in result.items():
        lines.append(f"sensitivity of {name} ({method})")
        if isinstance(value, str):
            lines.append(f"  {value}")
            continue
        width = max(len(r["parameter"]) for r in value)
        if method == "sobol":
            lines.append(f"  {'parameter':<{width}}  {'S1':>7} {'+-':>6}  {'ST':>7} {'+-':>6}")
            for r in sorted(value, key=lambda r: -r["ST"]):
                lines.append(f"  {r['parameter']:<{width}}  {r['S1']:>7.3f} {r['S1_conf']:>6.3f}  "
                             f"{r['ST']:>7.3f} {r['ST_conf']:>6.3f}")
        else:
            lines.append(f"  {'parameter':<{width}}  {'mu*':>9} {'+-':>8}  {'mu':>9} {'sigma':>9}")
            for r in sorted(value, key=lambda r: -r["mu_star"]):
                lines.append(f"  {r['parameter']:<{width}}  {r['mu_star']:>9.4g} {r['mu_star_conf']:>8.3g}  "
                             f"{r['mu']:>9.4g} {r['sigma']:>9.4g}")
    return "\n".join(lines)
