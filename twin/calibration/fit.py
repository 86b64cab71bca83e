"""Fitting the model to measured telemetry: weighted least squares on the model's own
finite-difference sensitivities, with standard errors, correlations, identifiability
and ASHRAE Guideline 14 residual statistics.

Unknowns are the spec's parameters, one per instance (``per_instance``) or one shared by
every matched instance, and additive sensor offsets. Multiplicative parameters are fitted
as ``x = ln(value / design)`` (positive, and a relative step means the same thing for
every parameter); offsets as themselves. Residuals are ``(predicted - measured) / sd``
over the fit samples (after the warm-up, before the held-out window, where the
measurement and its boundary were present), plus one row per prior. The Jacobian is
sparse where a parameter acts on one chip (its junction at the measured power: a TIM,
a plate's convective resistance): ``scipy.optimize.least_squares`` perturbs all such
columns of disjoint rows in one run (Curtis, Powell & Reid, 1974).

Each evaluation is a run of the model driven by the measured boundary
(:mod:`twin.calibration.measured`), with the parameters written into the model's arrays
directly where the model has an array for them (no rebuild), else by rebuilding it with
the values as ``[overrides]``.
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field

import numpy as np

from ..build import build_model, path_alias
from ..components.base import _matches
from ..errors import TwinInputError, did_you_mean
from ..run_end import Interrupted
from .measured import Measured, MeasuredBoundary, MeasuredPower

# Chip parameters written straight into the model's arrays: (array, how).
CHIP_ARRAYS = {"r_tim_k_per_w": ("chip_r_jb", "add"), "r_jc_k_per_w": ("chip_r_jb", "add"),
               "fouling_k_per_w": ("chip_fouling", "set"), "convective_resistance_scale": ("chip_convective_scale", "set"),
               "c_junction_j_per_k": ("chip_cj", "set"), "c_plate_j_per_k": ("chip_cb", "set")}
# Parameters that act on one chip alone at measured power (sparse Jacobian columns).
LOCAL = {"r_tim_k_per_w", "r_jc_k_per_w", "fouling_k_per_w", "convective_resistance_scale", "c_junction_j_per_k",
         "c_plate_j_per_k"}
# A parameter whose standard error of ln(value) exceeds this is "not identifiable": its
# value is unknown to within a factor of e^0.5 ~ 1.6 (ASSUMPTION: a conventional threshold).
UNIDENTIFIABLE_SE = 0.5
# Two parameters whose estimates correlate beyond this "trade off" (ASSUMPTION: a
# conventional threshold of collinearity diagnostics).
TRADE_OFF_CORR = 0.95
# Two parameters correlating beyond this are not judged one by one (ASSUMPTION): their
# pair's weak direction is then resolved ~sqrt(1 - r) ~ 30 times less than its strong one,
# and a model mismatch of hundredths of a kelvin, which no statistical interval holds,
# moves the pair along it by more than their intervals (docs/calibration.md: constant
# load put plate, UA and a sensor offset at +1.000, every interval missing the truth).
JUDGE_CORR = 0.999
# The thermal step of a calibration run: the sampling interval divided until it is at
# most this [s]. The update is exact for power held over a step, but the coolant's
# transport passes step means from cell to cell: at 1 s, a rack return sampled just
# after a load step is off by ~0.5 K; at 0.2 s by < 0.05 K (docs/model.md, step
# convergence).
CAL_STEP_S = 0.2
# Finite-difference step of the Jacobian, in x (1 % of a multiplicative parameter): well
# above the model's own noise (hydraulic tolerance, coefficient reuse band), small
# against the curvature of a junction in its resistances.
DIFF_STEP = 1e-2


@dataclass
class Unknown:
    label: str  # "tim[rack01/tray09/gpu1]", "plate_fouling", "rack_return_sensor"
    group: str  # the spec parameter's name
    key: str  # the instances' parameter, or the sensor channel
    paths: list  # instances it sets (none for a sensor)
    design: float  # the design value (0 for a sensor offset)
    log: bool  # fitted as ln(value / design)
    lo: float
    hi: float
    chips: np.ndarray | None = None  # the chips it alone acts on (sparse column), None: all
    prior_sd: float | None = None
    trays: np.ndarray | None = None  # a tray loss: its trays (the evidence; its column is dense)
    members: np.ndarray | None = None  # a sensor offset: the channel's columns it adds to (None: all)

    def value(self, x: float) -> float:
        return self.design * math.exp(x) if self.log else x


def unknowns(spec, model) -> list:
    """The spec's parameters as unknowns, against the model's instances."""
    out = []
    alias = path_alias(model.scenario)
    for p in spec.parameter:
        if p.sensor is not None:
            members = model.channel_members(p.sensor)
            if p.instances is None:
                out.append(Unknown(p.name, p.name, p.sensor, [], 0.0, False, p.bounds[0], p.bounds[1]))
                continue
            if members is None:
                raise TwinInputError("<spec>", f"parameter.{p.name}.instances",
                                     f"{p.sensor!r} has one value a sample, no members to choose from")
            pattern = alias(p.instances)
            hit = [i for i, path in enumerate(members) if _matches(pattern, path)]
            if not hit:
                raise TwinInputError("<spec>", f"parameter.{p.name}.instances",
                                     f"no member of {p.sensor!r} matches {p.instances!r}")
            for g in ([[i] for i in hit] if p.per_instance else [hit]):
                label = f"{p.name}[{members[g[0]]}]" if p.per_instance else p.name
                out.append(Unknown(label, p.name, p.sensor, [], 0.0, False, p.bounds[0], p.bounds[1],
                                   members=np.array(g, dtype=np.int64)))
            continue
        pattern = alias(p.instances)
        matched = [path for path in model.instances if _matches(pattern, path)]
        paths = [path for path in matched if p.parameter in model.instances[path].parameters()]
        if not paths and matched:  # the instances are there: the parameter's name is wrong
            known = sorted({k for path in matched for k in model.instances[path].parameters()})
            raise TwinInputError("<spec>", f"parameter.{p.name}.parameter",
                                 f"no instance matching {p.instances!r} has a parameter {p.parameter!r}"
                                 + did_you_mean(p.parameter, known))
        if not paths:
            raise TwinInputError("<spec>", f"parameter.{p.name}.instances",
                                 f"no instance matches {p.instances!r}" + did_you_mean(p.instances, model.instances))
        groups = [[path] for path in paths] if p.per_instance else [paths]
        for g in groups:
            design = float(model.instances[g[0]].parameters()[p.parameter])
            if design <= 0:
                raise TwinInputError("<spec>", f"parameter.{p.name}.parameter",
                                     f"{p.parameter} of {g[0]} is {design:g}: a fitted parameter must have a "
                                     "positive design value (use convective_resistance_scale, not fouling_k_per_w)")
            chips = trays = None
            if p.parameter in LOCAL:
                chips = np.array([model.chip_names.index(q) for q in g if q in model.chip_names], dtype=np.int64)
            elif p.parameter == "loss_scale" and all(q in model.tray_names for q in g):
                # a tray's loss moves its own flow first, but the others share what it gives
                # up (1/26 of it each in a 27-tray rack): its column is dense (perturbing
                # several trays' losses in one run under a held rack flow would cancel
                # most of what each does alone); the trays name the evidence
                trays = np.array([model.tray_names.index(q) for q in g], dtype=np.int64)
            label = f"{p.name}[{g[0]}]" if p.per_instance else p.name
            out.append(Unknown(label, p.name, p.parameter, g, design, True, math.log(p.bounds_relative[0]),
                               math.log(p.bounds_relative[1]), chips, p.prior_sd_relative, trays))
    return out


def apply(model, us: list, x: np.ndarray):
    """A copy of ``model`` with the unknowns' values ``x`` (rebuilt only for parameters the
    model has no array for)."""
    arrays = ("chip_r_jb", "chip_fouling", "chip_convective_scale", "chip_cj", "chip_cb", "edge_a", "edge_b",
              "hx_ua_scale", "pump_shutoff_pa", "pump_k")
    rebuild = {}
    for u, xi in zip(us, x):
        if u.paths and not _fast(model, u):
            for p in u.paths:
                rebuild.setdefault(p, {})[u.key] = u.value(xi)
    if rebuild:
        s = model.scenario
        over = {k: dict(v) for k, v in s.overrides.items()}
        for p, vals in rebuild.items():
            over.setdefault(p, {}).update(vals)
        base = build_model(s.model_copy(update={"overrides": over}))
    else:
        base = model
    m = dataclasses.replace(base, **{a: getattr(base, a).copy() for a in arrays})
    for u, xi in zip(us, x):
        if not u.paths or not _fast(model, u):
            continue
        v = u.value(xi)
        ratio = v / u.design
        for p in u.paths:
            if u.key in CHIP_ARRAYS:
                arr, how = CHIP_ARRAYS[u.key]
                k = model.chip_names.index(p)
                if how == "add":
                    getattr(m, arr)[k] += v - u.design
                else:
                    getattr(m, arr)[k] = v
            elif u.key == "loss_scale" and p in model.tray_names:
                t = model.tray_names.index(p)
                for e in (model.tray_supply_edge[t], model.tray_return_edge[t]):
                    m.edge_a[e] *= ratio
                    m.edge_b[e] *= ratio
            elif u.key == "loss_scale" and p.endswith("/manifold"):
                for e, name in enumerate(model.edge_names):
                    if name.startswith(p + "/"):
                        m.edge_a[e] *= ratio
                        m.edge_b[e] *= ratio
            elif u.key == "ua_scale":
                m.hx_ua_scale[model.cdu_names.index(p.rsplit("/", 1)[0])] = v
            elif u.key == "head_scale":
                i = [model.edge_names[e] for e in model.pump_edges].index(p)
                m.pump_shutoff_pa[i] *= ratio
                m.pump_k[i] *= ratio
    return m


def _fast(model, u) -> bool:
    p = u.paths[0]
    return (u.key in CHIP_ARRAYS and p in model.chip_names
            or u.key == "loss_scale" and (p in model.tray_names or p.endswith("/manifold"))
            or u.key == "ua_scale" and p.endswith("/hx") or u.key == "head_scale" and "/pump" in p)


@dataclass
class Problem:
    """A measured file on a model: what runs, what is compared, with which weights."""

    model: object
    scenario: object
    measured: Measured
    spec: object
    us: list
    fit_mask: np.ndarray  # samples fitted
    hold_mask: np.ndarray  # samples held out
    targets: list = field(default_factory=list)  # per fit channel: (name, meas (n, members), cols, sd, chips)
    evaluations: int = 0
    seconds: float = 0.0
    _last: tuple | None = None  # (x as bytes, predict(x)) of the latest run

    def predict(self, x) -> dict:
        """Every fit channel as the model predicts it at the measured samples (with the
        sensor offsets of ``x`` added)."""
        from ..engine import simulate

        key = np.asarray(x, dtype=float).tobytes()
        if self._last is not None and self._last[0] == key:  # the run just made (the fit's end)
            return self._last[1]
        t0 = time.perf_counter()
        m = apply(self.model, self.us, x)
        power = MeasuredPower(m, self.measured, self.scenario.simulation.time_step_s)
        r = simulate(self.scenario, model=m, power=power, boundary=MeasuredBoundary(m, self.measured),
                     channels={t[0] for t in self.targets})
        tel = r.telemetry(require=())
        if r.end.kind == "interrupted":  # Ctrl-C or SIGTERM: the fit stops (not a failed step to step around)
            raise Interrupted(r.end.signal)
        if not r.end.is_complete:
            raise FloatingPointError(f"the model run stopped: {r.end.reason}")
        out = {}
        for name, meas, cols, sd, chips in self.targets:
            # a simulated 2-D channel's columns are in model instance order (chips of a
            # type by chip index, trays, pumps, racks, CDUs): the order _member_paths gives
            pred = np.asarray(tel[name], dtype=float)
            pred = pred[:, None] if pred.ndim == 1 else pred
            out[name] = pred[:meas.shape[0], cols]
        cols_of = {t[0]: t[2] for t in self.targets}
        for u, xi in zip(self.us, x):
            if not u.paths and u.key in out:
                hit = 1.0 if u.members is None else np.isin(cols_of[u.key], u.members)
                out[u.key] = out[u.key] + xi * hit
        self.evaluations += 1
        self.seconds += time.perf_counter() - t0
        self._last = (key, out)
        return out

    def residuals(self, x, mask=None) -> np.ndarray:
        mask = self.fit_mask if mask is None else mask
        pred = self.predict(x)
        parts = []
        for name, meas, cols, sd, chips in self.targets:
            r = (pred[name] - meas) / sd
            ok = np.isfinite(meas) & mask[:, None]
            parts.append(np.where(ok, r, 0.0).ravel())
        for u, xi in zip(self.us, x):
            if u.prior_sd:
                parts.append(np.array([xi / u.prior_sd]))
        return np.concatenate(parts)

    def sparsity(self):
        """Which residual rows each unknown can move (scipy's jac_sparsity)."""
        from scipy.sparse import lil_matrix

        rows = []
        for name, meas, cols, sd, chips in self.targets:
            n, k = meas.shape
            rows.append((n, k, chips))
        n_res = sum(n * k for n, k, _ in rows) + sum(1 for u in self.us if u.prior_sd)
        sp = lil_matrix((n_res, len(self.us)), dtype=int)
        for j, u in enumerate(self.us):
            start = 0
            for (name, meas, cols, _, _), (n, k, chips) in zip(self.targets, rows):
                if not u.paths:  # a sensor offset: its own channel, its members
                    if name == u.key:
                        hit = np.ones(k, dtype=bool) if u.members is None else np.isin(cols, u.members)
                        for c in np.nonzero(hit)[0]:
                            sp[np.arange(start + c, start + n * k, k), j] = 1
                elif u.chips is None:
                    sp[start:start + n * k, j] = 1
                else:  # a chip's own parameter: its junction; at measured power no coolant temperature
                    hit = np.isin(chips, u.chips) if chips is not None else np.zeros(k, dtype=bool)
                    for c in np.nonzero(hit)[0]:
                        sp[np.arange(start + c, start + n * k, k), j] = 1
                start += n * k
        prior_row = sum(n * k for n, k, _ in rows)
        for j, u in enumerate(self.us):
            if u.prior_sd:
                sp[prior_row, j] = 1
                prior_row += 1
        return sp


def setup(scenario, tel, spec) -> Problem:
    """The calibration problem of a measured file: the model on the measured grid, its
    unknowns, the fit and held-out samples, the compared channels and their weights."""
    measured = Measured(tel, spec, path_alias(scenario))
    dt = measured.dt
    if not 1e-3 <= dt <= 10.0:
        raise TwinInputError(tel.path, "time", f"sampled every {dt:g} s: calibration needs 1 ms to 10 s (resample "
                                               "with `twin import`)")
    n = measured.t.size
    step = dt / math.ceil(dt / CAL_STEP_S - 1e-9)
    sim = {"simulation.time_step_s": step, "simulation.output_interval_s": dt,
           "simulation.hydraulic_update_s": dt * max(1, round(10.0 / dt)), "simulation.duration_s": n * dt,
           "simulation.initial_temp_c": None, "faults": [], "workload.jobs": [], "workload.replay": None}
    if spec.boundary.flow:
        sim["controls.pump_mode"] = "flow"
    s = scenario.with_overrides(sim)
    model = build_model(s)
    us = unknowns(spec, model)
    t_rel = measured.t - measured.t[0]
    n_hold = int(round(spec.windows.holdout_fraction * n))
    fit = (t_rel >= spec.windows.warmup_s) & (np.arange(n) < n - n_hold)
    hold = np.arange(n) >= n - n_hold
    bad = MeasuredBoundary(model, measured).bad | MeasuredPower(model, measured, dt).bad
    fit &= ~bad
    hold &= ~bad
    if fit.sum() < 2:
        raise TwinInputError(tel.path, "time", "no samples left to fit after the warm-up, the held-out window and "
                                               "the gaps in the boundary")
    prob = Problem(model, s, measured, spec, us, fit, hold)
    for fc in spec.fit:
        meas = measured.channel(fc.channel)
        meas = meas[:, None] if meas.ndim == 1 else meas
        paths = _member_paths(model, fc.channel)
        if meas.shape[1] > 1 or len(paths) > 1:
            cols = measured.columns(fc.channel, paths)
        else:
            cols = np.array([0])
        scale = np.nanmean(np.abs(meas), axis=0)
        sd = np.full(meas.shape[1], fc.noise) if fc.noise is not None else fc.noise_relative * scale
        chips = None
        if fc.channel.split("/")[0] in set(model.chip_type):
            chips = np.array([model.chip_names.index(paths[c]) for c in cols], dtype=np.int64)
        prob.targets.append((fc.channel, meas, cols, sd, chips))
    return prob


def _member_paths(model, channel) -> list:
    """The model's instance paths of a channel's columns; a 1-D channel: its name."""
    return model.channel_members(channel) or [channel]


@dataclass
class Fit:
    """What a calibration found."""

    problem: Problem
    x: np.ndarray
    se: np.ndarray  # standard errors in x
    corr: np.ndarray
    cost: float
    dof: int
    chi2_red: float
    warnings: list
    stats: dict  # channel -> {"fit": {...}, "holdout": {...}}
    status: str
    seconds: float

    @property
    def converged(self) -> bool:
        """False when the fit stopped on its model-run budget or found no step: its values
        are where it stopped, not the best fit, and acceptance judges nothing."""
        return not self.status.startswith("stopped")

    def values(self) -> dict:
        return {u.label: u.value(xi) for u, xi in zip(self.problem.us, self.x)}

    def unresolved(self, i, ignore=()) -> str:
        """Why the telemetry does not fix unknown ``i`` on its own ('' when it does): no
        fitted channel responds to it; its standard error is too large
        (UNIDENTIFIABLE_SE in ln, or half its bounds' span for an additive one); or it
        trades off with another beyond JUDGE_CORR, the data fixing their combination
        (not counting the unknowns in ``ignore``: peers judged against their median share
        a common mode that the comparison cancels, as every tray's loss under a held rack
        flow)."""
        u, se = self.problem.us[i], self.se[i]
        if not math.isfinite(se):
            return ("not constrained by the data (no fitted channel responds to it, or only together with "
                    "another parameter)")
        if u.log and se > UNIDENTIFIABLE_SE:
            return f"not identifiable (standard error of ln(value) {se:.2f})"
        if not u.log and se > 0.5 * (u.hi - u.lo):
            return f"not identifiable (standard error {se:.3g} against bounds {u.lo:g}..{u.hi:g})"
        others = np.ones(len(self.x), dtype=bool)
        others[[i, *ignore]] = False
        c = np.abs(np.where(others, self.corr[i], 0.0))
        j = int(np.argmax(c)) if c.size else i
        if j != i and c[j] > JUDGE_CORR and math.isfinite(self.se[j]):
            return (f"trades off with {self.problem.us[j].label} (correlation {self.corr[i, j]:+.4f}): the data fix "
                    "their combination, not each (fit on load steps)")
        return ""

    def interval(self, i, z=2.0):
        u, xi, se = self.problem.us[i], self.x[i], self.se[i]
        if u.log:
            return u.design * math.exp(xi - z * se), u.design * math.exp(xi + z * se)
        return xi - z * se, xi + z * se


def fit(prob: Problem, max_evaluations: int = 400) -> Fit:
    """Weighted least squares from the design values (x = 0), within the bounds
    (:func:`_solve`)."""
    t0 = time.perf_counter()
    us = prob.us
    x0 = np.array([min(max(0.0, u.lo + 1e-9), u.hi - 1e-9) for u in us])
    lo = np.array([u.lo for u in us])
    hi = np.array([u.hi for u in us])
    structure = prob.sparsity().tocsc()
    groups = _groups(structure)

    def jac(x, f):
        return _grouped_jacobian(prob.residuals, x, f, structure, groups, lo, hi)

    res = _solve(prob.residuals, jac, x0, lo, hi, max_evaluations, lambda: prob.evaluations)
    n_obs = sum(int((np.isfinite(meas) & prob.fit_mask[:, None]).sum()) for _, meas, _, _, _ in prob.targets)
    dof = max(n_obs - len(us), 1)
    chi2_red = 2.0 * res.cost / dof
    # covariance from the eigenvalues of J^T J, columns scaled to unit norm (directions
    # the data do not constrain, below 1e-14 of the largest, are left out: their
    # parameters show as unidentifiable)
    jtj = _normal(res.jac)
    col = np.sqrt(np.maximum(np.diag(jtj), 0.0))
    d = np.where(col > 0, col, 1.0)
    w, v = np.linalg.eigh(jtj / np.outer(d, d))
    keep = w > 1e-14 * max(w.max(initial=0.0), 1e-300)
    cov = (v * np.where(keep, 1.0 / np.where(keep, w, 1.0), 0.0)) @ v.T / np.outer(d, d) * max(chi2_red, 1.0)
    free = np.abs(v[:, ~keep]).max(axis=1) > 1e-6 if (~keep).any() else np.zeros(len(us), dtype=bool)
    se = np.sqrt(np.maximum(np.diag(cov), 0.0))
    d = np.where(se > 0, se, 1.0)
    corr = np.clip(cov / np.outer(d, d), -1.0, 1.0)
    warnings = []
    if not res.success:
        warnings.append(f"the fit did not converge ({res.message}): the values and intervals are where it stopped, "
                        "not the best fit; nothing is judged")
    se[(col == 0.0) | free] = math.inf
    pred = prob.predict(res.x)
    stats = {}
    for name, meas, cols, sd, chips in prob.targets:
        stats[name] = {w: guideline14(pred[name], meas, mask, len(us)) for w, mask in
                       (("fit", prob.fit_mask), ("holdout", prob.hold_mask))}
    out = Fit(prob, res.x, se, corr, float(res.cost), dof, chi2_red, warnings, stats,
              "converged" if res.success else f"stopped: {res.message}", time.perf_counter() - t0)
    for i, u in enumerate(us):
        why = out.unresolved(i)
        if why and not why.startswith("trades off"):  # the pairs are listed below, each once
            warnings.append(f"{u.label}: {why}")
        if np.isclose(res.x[i], u.lo) or np.isclose(res.x[i], u.hi):
            warnings.append(f"{u.label}: at its bound ({u.value(res.x[i]):.4g})")
    warnings += _trade_offs(us, corr, col > 0)
    return out


def _trade_offs(us, corr, responds) -> list:
    """The pairs of unknowns whose estimates correlate beyond TRADE_OFF_CORR, one line per
    pair, or per pair of spec groups when a group pair has several (27 tray losses under a
    held rack flow share their common scale: 351 pairs, one line)."""
    pairs: dict = {}
    for i in range(len(us)):
        for j in range(i + 1, len(us)):
            if abs(corr[i, j]) > TRADE_OFF_CORR and responds[i] and responds[j]:
                pairs.setdefault((us[i].group, us[j].group), []).append((i, j))
    lines = []
    for (gi, gj), got in pairs.items():
        i, j = got[0]
        if len(got) == 1:
            lines.append(f"{us[i].label} and {us[j].label} trade off (correlation {corr[i, j]:+.3f})")
            continue
        c = [corr[a, b] for a, b in got]
        who = f"members of {gi}" if gi == gj else f"{gi} and {gj}"
        what = ("their differences are resolved, their common level is not" if min(c) > 0 else
                "their sums are resolved, their splits are not" if max(c) < 0 else "combinations are resolved, not each")
        lines.append(f"{len(got)} pairs of {who} trade off (correlations {min(c):+.3f} .. {max(c):+.3f}; e.g. "
                     f"{us[i].label} and {us[j].label}): {what}")
    return lines


# The fit stops when the Gauss-Newton step left would move the parameters by less than
# this many standard errors (in every direction at once): iterating further changes
# nothing the data can tell. It is Bates & Watts' (1981, Technometrics 23:179) relative
# offset times sqrt(p); their 0.001 asks for numerical convergence, this for statistical
# convergence (ASSUMPTION: 0.2 standard errors, small against the 2-standard-error
# intervals the acceptance test reads).
CONVERGED_SE = 0.2
# ... or when this many steps in a row (each from a fresh Jacobian, or gaining less than
# the 0.2-standard-error rule's worth) gain nothing: along a weak direction (a ridge of
# in-series resistances) the model's own numerical noise is then larger than what the
# Jacobian still promises (ASSUMPTION: three tries, the third with a step damped 100x) ...
STALLS = 3
# ... counted only once the step left is within this many standard errors (far from the
# answer a failed step means the model is not linear over it: damping is the cure); the
# fit's status says how many are left (ASSUMPTION).
NOISE_SE = 3.0
# Iterations a Broyden-updated Jacobian serves before a fresh finite-difference one
# (Broyden 1965; Dennis & Schnabel 1996 sec. 8.1) (ASSUMPTION: tuned on the benchmark's
# cases; a fresh one is taken whenever a step disappoints).
BROYDEN_STEPS = 3


@dataclass
class _Solution:
    x: np.ndarray
    f: np.ndarray
    cost: float
    jac: object  # the Jacobian at x, fresh (finite differences)
    success: bool
    message: str


def _normal(jac) -> np.ndarray:
    """J^T J as a dense array (J dense or scipy.sparse)."""
    jtj = jac.T @ jac
    return jtj.toarray() if hasattr(jtj, "toarray") else np.asarray(jtj)


def _solve(fun, jac, x0, lo, hi, max_evaluations, evaluations) -> _Solution:
    """Levenberg-Marquardt in column-scaled parameters (Marquardt 1963; More 1978), within
    the bounds (a parameter at a bound that the gradient pushes out of is held), with
    Broyden updates of the Jacobian between finite-difference ones, stopped by the
    statistical rule ``CONVERGED_SE`` (or ``STALLS``). ``fun(x)`` gives the whitened residuals, ``jac(x,
    f)`` their Jacobian (dense or sparse), ``evaluations()`` the model runs so far.

    Why not ``scipy.optimize.least_squares``: its tolerances are relative to the cost
    (~n/2 for n residuals of unit noise) and to x, so on a ridge (two in-series
    resistances) it crawls for hundreds of model runs along directions the data cannot
    resolve; the rule here stops when the remaining step is small against the standard
    errors, and Broyden steps save most Jacobians on a nearly linear problem."""
    x = np.clip(np.asarray(x0, dtype=float), lo, hi)
    f = fun(x)
    cost = 0.5 * float(f @ f)
    n = max(f.size - x.size, 1)
    J = jac(x, f)
    fresh, age = True, 0
    lam = 1e-4
    stalls = 0  # steps in a row that gained nothing worth having
    while True:
        jtj = _normal(J)
        g = np.asarray(J.T @ f).ravel()
        held = ((x <= lo) & (g > 0)) | ((x >= hi) & (g < 0))
        d = np.sqrt(np.maximum(np.diag(jtj), 0.0))
        free = ~held & (d > 0)
        step = np.zeros_like(x)
        pred_gn = 0.0
        s2 = max(2.0 * cost / n, 1.0)  # the reduced chi-square, at least 1
        if free.any():
            df = d[free]
            w, v = np.linalg.eigh(jtj[np.ix_(free, free)] / np.outer(df, df))
            # directions the data resolve: a standard error below UNIDENTIFIABLE_SE in
            # every parameter they move; along the others (a ridge of in-series
            # resistances) the parameters stay where they are, near their design values
            se_dir = np.abs(v / df[:, None]).max(axis=0) * np.sqrt(s2 / np.maximum(w, 1e-300))
            keep = (w > 1e-12 * w.max()) & (se_dir <= UNIDENTIFIABLE_SE)
            c = v[:, keep].T @ (g[free] / df)
            pred_gn = 0.5 * float(np.sum(c ** 2 / w[keep]))
            z = -v[:, keep] @ (c / (w[keep] + lam))
            step[free] = z / df
        tol = 0.5 * CONVERGED_SE ** 2 * s2
        if pred_gn <= tol:
            if fresh:
                return _Solution(x, f, cost, J, True, "converged")
            J, fresh, age = jac(x, f), True, 0
            continue
        if evaluations() >= max_evaluations:
            if not fresh:
                J = jac(x, f)
            return _Solution(x, f, cost, J, False, f"{max_evaluations} model runs")
        x_new = np.clip(x + step, lo, hi)
        s = x_new - x
        js = np.asarray(J @ s).ravel()
        pred = -(float(g @ s) + 0.5 * float(js @ js))
        try:
            f_new = fun(x_new)
            cost_new = 0.5 * float(f_new @ f_new)
        except FloatingPointError:  # the model left its range: a shorter step
            f_new, cost_new = None, math.inf
        if not math.isfinite(cost_new):
            f_new = None
        ratio = (cost - cost_new) / pred if pred > 0 else -1.0
        gained = f_new is not None and cost_new < cost
        if gained and cost - cost_new > tol:
            stalls = 0
        elif (fresh or gained) and pred_gn <= 0.5 * NOISE_SE ** 2 * s2:  # near the end, a step that gains nothing
            stalls += 1
        if stalls >= STALLS:
            # what the Jacobian still promises, the model does not deliver: along a weak
            # direction (a ridge of in-series resistances) its own numerical noise
            # (hydraulic tolerance, coefficient reuse) is larger than what is left
            if gained:
                x, f, cost = x_new, f_new, cost_new
            if gained or not fresh:
                J = jac(x, f)
            left = math.sqrt(2.0 * pred_gn / s2)
            return _Solution(x, f, cost, J, True, f"converged to the model's numerical noise ({left:.1f} standard "
                                                  "errors of predicted step left along its weakest direction)")
        if gained:
            if fresh and lam <= 1e-3 and cost - cost_new <= tol:  # a full step that gained nothing
                x, f, cost = x_new, f_new, cost_new
                return _Solution(x, f, cost, jac(x, f), True, "converged")
            if ratio > 0.75:
                lam = max(lam / 5.0, 1e-8)
            elif ratio < 0.25:
                lam *= 4.0
            # Broyden's update, kept to the Jacobian's structure
            u = (f_new - f - js) / float(s @ s)
            x, f, cost = x_new, f_new, cost_new
            if ratio < 0.5 or age + 1 >= BROYDEN_STEPS:
                J, fresh, age = jac(x, f), True, 0
            else:
                J = _broyden(J, u, s)
                fresh, age = False, age + 1
        elif not fresh:  # a stale Jacobian misled the step: a fresh one first
            J, fresh, age = jac(x, f), True, 0
        else:
            lam = max(lam * 10.0, 1e-3)
            if lam > 1e8:
                return _Solution(x, f, cost, J, False, "no step reduces the misfit")


def _broyden(J, u, s):
    """``J + u s^T``, only where J has entries (a sparse J keeps its structure)."""
    if hasattr(J, "tocsc"):
        J = J.tocsc(copy=True)
        cols = np.repeat(np.arange(J.shape[1]), np.diff(J.indptr))
        J.data += u[J.indices] * s[cols]
        return J
    return J + np.outer(u, s)


def _groups(structure) -> np.ndarray:
    """Columns whose rows do not overlap, greedily in order (each group costs one run)."""
    n = structure.shape[1]
    groups = np.full(n, -1)
    used: list = []  # rows taken by each group
    for j in range(n):
        rows = set(structure[:, j].nonzero()[0])
        for g, taken in enumerate(used):
            if not rows & taken:
                groups[j] = g
                taken |= rows
                break
        else:
            groups[j] = len(used)
            used.append(set(rows))
    return groups


def _grouped_jacobian(fun, x, f0, structure, groups, lo, hi):
    """Forward differences of ``DIFF_STEP`` (backward at an upper bound), one run per group
    of columns with disjoint rows; each row's change goes to the one column of the group
    the structure gives it (Curtis, Powell & Reid 1974). A scipy.sparse CSC matrix with
    the structure's pattern."""
    from scipy.sparse import csc_matrix

    S = structure.tocsc()
    S.sort_indices()
    data = np.zeros(S.nnz)
    for g in range(int(groups.max()) + 1):
        cols = np.nonzero(groups == g)[0]
        h = np.where(x[cols] + DIFF_STEP <= hi[cols], DIFF_STEP, -DIFF_STEP)
        xp = x.copy()
        xp[cols] += h
        df = fun(xp) - f0
        for c, hc in zip(cols, h):
            a, b = S.indptr[c], S.indptr[c + 1]
            data[a:b] = df[S.indices[a:b]] / hc
    return csc_matrix((data, S.indices.copy(), S.indptr.copy()), shape=S.shape)


def guideline14(pred, meas, mask, n_params) -> dict:
    """Residual statistics of one channel over the samples of ``mask`` (ASHRAE Guideline
    14-2014, section 4.3.2 / annex B): RMSE in the channel's unit, bias (mean of predicted
    minus measured), CV(RMSE) = RMSE / mean(measured) [%], NMBE = sum(measured -
    predicted) / ((n - p) mean(measured)) [%], n the samples, p the fitted parameters."""
    ok = np.isfinite(meas) & mask[:, None]
    n = int(ok.sum())
    if n == 0:
        return dict(n=0, rmse=math.nan, bias=math.nan, cv_rmse_pct=math.nan, nmbe_pct=math.nan)
    err = (pred - meas)[ok]
    mean = float(np.mean(meas[ok]))
    rmse = float(np.sqrt(np.mean(err ** 2)))
    dof = max(n - n_params, 1)
    return dict(n=n, rmse=rmse, bias=float(np.mean(err)), cv_rmse_pct=100.0 * rmse / mean if mean else math.nan,
                nmbe_pct=100.0 * float(np.sum(-err)) / (dof * mean) if mean else math.nan)
