"""What a calibration says: the fitted values with their intervals, the overlay (a scenario
fragment a calibrated scenario includes), the residual statistics, and the acceptance
verdict per component."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from .fit import Fit

PASS, SUSPECT, NOT_JUDGED = "pass", "suspect", "not judged"


def run(scenario, telemetry, spec, max_evaluations: int = 400) -> Fit:
    """Calibrate a loaded scenario on a telemetry file (path) with a spec (path or Spec)."""
    from ..telemetry import read_telemetry
    from .fit import fit, setup
    from .spec import Spec, load_spec

    spec = spec if isinstance(spec, Spec) else load_spec(spec)
    tel = read_telemetry(telemetry)
    return fit(setup(scenario, tel, spec), max_evaluations)


def overlay(f: Fit, x=None) -> dict:
    """The fitted values (or those of ``x``) as a scenario fragment: ``[overrides]`` per
    instance (a shared parameter under its pattern), sensor offsets as ``sensor_offset``
    faults from t = 0."""
    spec = f.problem.spec
    over, faults = {}, []
    patterns = {p.name: p.instances for p in spec.parameter}
    for u, xi in zip(f.problem.us, f.x if x is None else x):
        v = float(u.value(xi))
        if not u.paths and u.members is None:
            faults.append(dict(kind="sensor_offset", target=u.key, start_s=0.0, value=v))
        elif not u.paths:
            members = f.problem.model.channel_members(u.key)
            faults += [dict(kind="sensor_offset", target=u.key, member=members[i], start_s=0.0, value=v)
                       for i in u.members]
        elif len(u.paths) == 1:
            over.setdefault(u.paths[0], {})[u.key] = v
        else:
            over.setdefault(patterns[u.group], {})[u.key] = v
    out = {"overrides": over}
    if faults:
        out["faults"] = faults
    return out


def predict_margins(f: Fit, scenario, samples: int = 50, seed: int = 0) -> list:
    """The margins of ``scenario`` (a loaded Scenario of the same rack: a hot day, a pump
    failed) with the fitted parameters, and their spread over the fit's uncertainty:
    ``samples`` draws from the fit's Gaussian approximation of the posterior (mean the
    fitted x, covariance from the standard errors and correlations: the Laplace
    approximation, Bates & Watts 1988 ch. 2; multiplicative parameters log-normal), each
    run through the scenario. Sensor offsets are measurement, not rack, and are left out;
    parameters the data do not constrain are held at their fitted values (the fit warns
    of them). Per pass/fail margin: the value at the fitted parameters, the 5th, 50th and
    95th percentiles over the draws, and the share of draws in which it fails."""
    from ..engine import simulate

    us = f.problem.us
    rng = np.random.default_rng(seed)
    rack = [i for i, u in enumerate(us) if u.paths and math.isfinite(f.se[i])]
    cov = (f.corr * np.outer(f.se, f.se))[np.ix_(rack, rack)] if rack else np.zeros((0, 0))
    w, v = np.linalg.eigh(cov) if rack else (np.zeros(0), np.zeros((0, 0)))
    root = v * np.sqrt(np.maximum(w, 0.0))  # cov = root @ root.T, also when cov is singular
    lo, hi = np.array([u.lo for u in us]), np.array([u.hi for u in us])

    def run(x):
        fitted = overlay(f, x)["overrides"]
        over = {k: dict(val) for k, val in scenario.overrides.items()}
        for path, vals in fitted.items():
            over.setdefault(path, {}).update(vals)
        r = simulate(scenario.with_overrides({"overrides": over}))
        return {m.name: m for m in r.margin_table.judged()}

    base = run(f.x)
    draws = []
    for _ in range(samples):
        x = f.x.copy()
        x[rack] = x[rack] + root @ rng.standard_normal(len(rack))
        draws.append(run(np.clip(x, lo, hi)))
    out = []
    for name, m in base.items():
        vals = np.array([d[name].value for d in draws if name in d], dtype=float)
        fails = np.array([d[name].status == "fail" for d in draws if name in d])
        pct = np.nanpercentile(vals, [5, 50, 95]) if vals.size and np.isfinite(vals).any() else [math.nan] * 3
        out.append(dict(name=name, unit=m.unit, limit=m.limit, fitted=m.value, status=m.status, p05=float(pct[0]),
                        p50=float(pct[1]), p95=float(pct[2]), p_fail=float(fails.mean()) if fails.size else math.nan,
                        samples=int(vals.size), instance=m.instance))
    return out


def predict_table(rows: list, scenario_name: str) -> str:
    lines = [f"margins of {scenario_name} with the fitted parameters, over the fit's uncertainty "
             f"({rows[0]['samples'] if rows else 0} draws)",
             f"{'margin':<30} {'unit':<5} {'limit':>8} {'fitted':>9} {'5 %':>9} {'median':>9} {'95 %':>9} "
             f"{'P(fail)':>8}"]
    for r in rows:
        lines.append(f"{r['name']:<30} {r['unit']:<5} {r['limit']:>8.4g} {r['fitted']:>9.4g} {r['p05']:>9.4g} "
                     f"{r['p50']:>9.4g} {r['p95']:>9.4g} {r['p_fail']:>8.2f}")
    return "\n".join(lines)


def overlay_toml(f: Fit, source: str = "") -> str:
    import tomli_w

    head = (f"# Calibrated by twin calibrate ({f.problem.spec.name}){': ' + source if source else ''}\n"
            f"# {len(f.problem.us)} parameters, reduced chi-square {f.chi2_red:.3g}, {f.status}. Include it after\n"
            "# the scenario it was fitted on: include = [\"SCENARIO.toml\", \"THIS.toml\"].\n")
    return head + tomli_w.dumps(overlay(f))


@dataclass
class Judgement:
    label: str
    status: str
    value: float
    low: float
    high: float
    reference: float
    tolerance: float | None
    evidence: str

    def to_dict(self):
        def num(x):
            return None if x is None or not math.isfinite(x) else float(x)
        return dict(component=self.label, status=self.status, fitted=num(self.value), interval=[num(self.low),
                    num(self.high)], reference=num(self.reference), tolerance=num(self.tolerance),
                    evidence=self.evidence)


def judge(f: Fit) -> list:
    """Each unknown against its reference (its design value, or the median of its peers)
    and tolerance: ``suspect`` when it is off by more than the tolerance and its 95 %
    interval (two standard errors) lies wholly outside the tolerance band; ``not judged``
    without a tolerance, when the fit did not converge, when it trades off with another
    unknown beyond JUDGE_CORR, or when the data do not resolve it (:meth:`Fit.unresolved`)
    and its interval reaches into the band; ``pass`` otherwise."""
    prob = f.problem
    specs = {p.name: p for p in prob.spec.parameter}
    values = np.array([u.value(xi) for u, xi in zip(prob.us, f.x)])
    out = []
    for i, u in enumerate(prob.us):
        p = specs[u.group]
        if p.reference == "peers":
            peers = [j for j, w in enumerate(prob.us) if w.group == u.group]
            ref = float(np.median(values[peers]))
        else:
            ref = u.design
        tol = p.tolerance if p.tolerance is not None else (
            p.tolerance_relative * abs(ref) if p.tolerance_relative is not None else None)
        lo, hi = f.interval(i)
        v = float(values[i])
        evidence = _evidence(f, i)
        why = f.unresolved(i, [j for j, w in enumerate(prob.us) if w.group == u.group]
                           if p.reference == "peers" else ())
        if not f.converged:  # values where the fit stopped: no answer to judge
            status, evidence = NOT_JUDGED, f"the fit did not converge ({f.status})"
        elif tol is None:
            status, evidence = NOT_JUDGED, "no tolerance in the spec"
        elif why.startswith("trades off"):  # its interval is not what the data say of it alone
            status, evidence = NOT_JUDGED, why
        elif abs(v - ref) > tol and (lo > ref + tol or hi < ref - tol):
            status = SUSPECT  # even a wide interval wholly outside the band is evidence
        elif why:  # "pass" would claim what the telemetry cannot show
            status, evidence = NOT_JUDGED, why
        else:
            status = PASS
        out.append(Judgement(u.label, status, v, lo, hi, ref, tol, evidence))
    return out


def verdict(f: Fit, judgements: list) -> str:
    """The rack's: ``suspect`` when a component is, ``not judged`` when the fit did not
    converge or no component could be judged, else ``pass`` (of the components judged:
    the others are listed as not judged, with why)."""
    if not f.converged or all(j.status == NOT_JUDGED for j in judgements):
        return NOT_JUDGED
    return SUSPECT if any(j.status == SUSPECT for j in judgements) else PASS


def _evidence(f: Fit, i: int) -> str:
    """The fitted channel (and member) that responds most to unknown ``i``, and how much its
    fit moved it."""
    prob = f.problem
    for name, meas, cols, sd, chips in prob.targets:
        if prob.us[i].chips is not None and chips is not None:
            hit = np.isin(chips, prob.us[i].chips)
            if hit.any():
                k = int(np.nonzero(hit)[0][0])
                return f"{name} of {_member(prob, name, cols[k])}"
        if not prob.us[i].paths and name == prob.us[i].key:
            u = prob.us[i]
            which = "" if u.members is None else " of " + ", ".join(
                prob.model.channel_members(name)[k] for k in u.members)
            return f"{name}{which} (offset against the physics the other channels fix)"
    if prob.us[i].trays is not None:
        return "tray/flow and tray/return_temp of " + ", ".join(prob.model.tray_names[t] for t in prob.us[i].trays)
    return ", ".join(name for name, *_ in prob.targets)


def _member(prob, name, col):
    from .fit import _member_paths

    paths = _member_paths(prob.model, name)
    return paths[col] if col < len(paths) else str(col)


def table(f: Fit, judgements: list | None = None) -> str:
    lines = [f"{'parameter':<40} {'design':>10} {'fitted':>10} {'95 % interval':>23}  status"]
    judged = {j.label: j for j in (judgements or [])}
    for i, u in enumerate(f.problem.us):
        lo, hi = f.interval(i)
        j = judged.get(u.label)
        lines.append(f"{u.label:<40} {u.design:>10.4g} {u.value(f.x[i]):>10.4g} {f'{lo:.4g} .. {hi:.4g}':>23}  "
                     f"{j.status if j else ''}{' (' + j.evidence + ')' if j and j.status in (SUSPECT, NOT_JUDGED) else ''}")
    lines.append("")
    lines.append(f"{'channel':<24} {'window':<8} {'n':>7} {'RMSE':>9} {'bias':>9} {'CV(RMSE) %':>10} {'NMBE %':>8}")
    for name, st in f.stats.items():
        for w, s in st.items():
            lines.append(f"{name:<24} {w:<8} {s['n']:>7} {s['rmse']:>9.4f} {s['bias']:>+9.4f} "
                         f"{s['cv_rmse_pct']:>10.3f} {s['nmbe_pct']:>+8.3f}")
    lines.append("")
    lines.append(f"{f.status}; reduced chi-square {f.chi2_red:.3g} over {f.dof} degrees of freedom; "
                 f"{f.problem.evaluations} model runs in {f.seconds:.1f} s")
    lines += [f"warning: {w}" for w in f.warnings]
    return "\n".join(lines)


def to_dict(f: Fit, judgements: list | None = None) -> dict:
    def num(x):
        return None if not math.isfinite(x) else float(x)
    us = f.problem.us
    return dict(
        spec=f.problem.spec.name, status=f.status, chi2_reduced=num(f.chi2_red), dof=f.dof,
        model_runs=f.problem.evaluations, seconds=f.seconds,
        parameters=[dict(name=u.label, key=u.key, instances=u.paths, design=u.design, fitted=u.value(xi),
                         interval=list(f.interval(i)), standard_error_ln=num(f.se[i]) if u.log else None,
                         standard_error=num(f.se[i]) if not u.log else None)
                    for i, (u, xi) in enumerate(zip(us, f.x))],
        correlation=[[num(c) for c in row] for row in f.corr] if len(us) <= 40 else None,
        warnings=list(f.warnings),
        statistics={k: {w: {a: num(b) for a, b in s.items()} for w, s in v.items()} for k, v in f.stats.items()},
        acceptance=[j.to_dict() for j in judgements] if judgements is not None else None,
        verdict=verdict(f, judgements) if judgements is not None else None,
    )


def windows(scenario, telemetry, spec, window_s: float, max_evaluations: int = 400) -> list:
    """Fit successive windows of ``window_s`` of one telemetry file (each from its own
    steady start; the spec's warm-up applies in each, no held-out part): a list of
    (window start [s], window end [s], Fit)."""
    from ..telemetry import read_telemetry
    from .fit import fit, setup
    from .spec import Spec, load_spec

    spec = spec if isinstance(spec, Spec) else load_spec(spec)
    spec = spec.model_copy(update={"windows": spec.windows.model_copy(update={"holdout_fraction": 0.0})})
    tel = read_telemetry(telemetry)
    t = np.asarray(tel.time, dtype=float)
    out = []
    start = t[0] - (t[1] - t[0])
    while start + window_s <= t[-1] + 1e-9:
        sel = (t > start + 1e-9) & (t <= start + window_s + 1e-9)
        part = dataclasses.replace(tel, time=t[sel], channels={k: np.asarray(v)[sel] for k, v in tel.channels.items()})
        out.append((start - t[0] + (t[1] - t[0]), start + window_s - t[0] + (t[1] - t[0]),
                    fit(setup(scenario, part, spec), max_evaluations)))
        start += window_s
    if not out:
        from ..errors import TwinInputError
        raise TwinInputError(tel.path, "--windows", f"{window_s:g} s is longer than the file ({t[-1] - t[0]:g} s)")
    return out


def trend(fits: list) -> list:
    """Per unknown: its value in each window with its interval, and a straight line through
    them weighted by their standard errors (slope per hour with its standard error)."""
    out = []
    us = fits[0][2].problem.us
    for i, u in enumerate(us):
        mid = np.array([(a + b) / 2 for a, b, _ in fits]) / 3600.0
        val = np.array([f.values()[u.label] for _, _, f in fits])
        lo_hi = np.array([f.interval(i) for _, _, f in fits])
        se = np.maximum((lo_hi[:, 1] - lo_hi[:, 0]) / 4.0, 1e-12)
        if len(fits) >= 2:
            w = 1.0 / se ** 2
            a = np.vstack([np.ones_like(mid), mid]).T
            cov = np.linalg.inv(a.T @ (a * w[:, None]))
            coef = cov @ (a.T @ (w * val))
            slope, slope_se = float(coef[1]), float(np.sqrt(cov[1, 1]))
        else:
            slope = slope_se = math.nan
        out.append(dict(name=u.label, hours=mid.tolist(), values=val.tolist(), low=lo_hi[:, 0].tolist(),
                        high=lo_hi[:, 1].tolist(), slope_per_h=slope, slope_se_per_h=slope_se))
    return out


def trend_table(rows: list) -> str:
    lines = []
    for r in rows:
        lines.append(f"{r['name']}: slope {r['slope_per_h']:+.4g} per hour (standard error {r['slope_se_per_h']:.2g})")
        for h, v, lo, hi in zip(r["hours"], r["values"], r["low"], r["high"]):
            lines.append(f"  {h:8.2f} h  {v:.4g}  ({lo:.4g} .. {hi:.4g})")
    return "\n".join(lines)


def trend_plot(rows: list, path) -> None:
    """Each parameter's windows with their 95 % intervals and the fitted line (matplotlib)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(rows)
    fig, axes = plt.subplots(n, 1, figsize=(7, 2.4 * n), squeeze=False)
    for ax, r in zip(axes[:, 0], rows):
        h = np.array(r["hours"])
        v = np.array(r["values"])
        ax.errorbar(h, v, yerr=[v - np.array(r["low"]), np.array(r["high"]) - v], fmt="o", capsize=3,
                    label="window fit, 95 % interval")
        if math.isfinite(r["slope_per_h"]):
            c = np.average(v - r["slope_per_h"] * h)
            ax.plot(h, c + r["slope_per_h"] * h, "-", label=f"trend {r['slope_per_h']:+.3g} /h")
        ax.set_xlabel("time [h]")
        ax.set_ylabel(r["name"])
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
