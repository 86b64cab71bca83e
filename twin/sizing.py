"""Design sizing (``twin size``): the value of one scenario key at which a margin reaches
its target, by a bracketing root search over runs of the scenario, and that answer
tabulated against a second key (``--sweep``).

What a run is. Every evaluation is :func:`twin.engine.simulate` of the scenario with the
key set, over the scenario's own duration unless ``duration_s`` is given. A run starts
from the steady state of its t = 0 workload (:mod:`twin.steady`), so a constant workload
is judged at steady state whatever the duration; a bursty or phased workload (the
reference scenario's 1 Hz training bursts, its checkpoint) and faults are judged on their
peaks because the run covers them. The answer is therefore the value at which
``twin run SCENARIO --set KEY=VALUE`` gives the target margin, to the stated tolerance.
A shorter ``duration_s`` saves time where the peak is known to come early (the reference
rack's peak junction is its full-power steady start: the 1 s and 600 s runs agree to
1e-4 K, docs/model.md, *Design sizing*).

The search. The key's range (given, or :func:`default_range`) is bracketed by its two
ends; when the margin minus its target has one sign at both, the target is unreachable
there (reported with the margin at both ends). Otherwise Brent's method
(:func:`scipy.optimize.brentq`) narrows the bracket and stops at the first run whose
margin is within ``ftol`` of the target. A sweep point starts from the previous point's
answer and walks outward to a bracket (:func:`_walk`), which usually takes fewer runs
than the two ends.

Reading the scenario, the key and its bounds is :mod:`twin.sources` and
:mod:`twin.scenario`: this module has no parser of its own beyond the option syntax
(``MARGIN=VALUE``, ``LO:HI``, ``KEY=A:B:N``).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from .errors import TwinInputError, did_you_mean
from .files import PNG_MAGIC, prepare_output, writing
from .sources import key_parts

# Default range of a key with a positive value (a flow, a resistance, a speed, a scale):
# a tenth of the scenario's value to four times it (ASSUMPTION: for the reference rack's
# 150 L/min that is 15 L/min, where full power brings PG25 near boiling, to 600 L/min,
# beyond what its CDU's pumps deliver), within the field's physical range.
RANGE_BELOW = 0.1  # ASSUMPTION (above)
RANGE_ABOVE = 4.0  # ASSUMPTION (above)
# Default range of a temperature key other than the facility supply (whose range is the
# ASHRAE classes and W+, twin.scenario.FACILITY_SUPPLY_C): the scenario's value +-25 K
# within the field's range (ASSUMPTION: W17 to W45 spans 28 K).
TEMP_SPAN_K = 25.0
# The search stops at the first run whose margin is within this of its target, relative
# to the target (at least this in the margin's unit): 0.005 K at a 5 K margin.
FTOL_REL = 1e-3
# Brent's own stop on the key, relative to the range's width: reached only where the
# margin steps (throttling sets in, a pump runs out of head) across the target.
XTOL_REL = 1e-7
MAX_ITER = 100  # Brent iterations (each a run)
# An end of the range where the run stops at a model limit (boiling) moves this share of
# the way to the other end, at most END_TRIES times.
END_STEP = 0.25
END_TRIES = 4  # (as END_STEP)
# A sweep point's walk from the previous answer: first step this share of it, doubling.
WALK_STEP = 0.1
MAX_SWEEP_POINTS = 200  # a sweep's points (run-size limit)

# Units of keys whose schema range has none (``facility.supply_temp_c`` is checked
# against the coolant, not by a range of its own): by the key's suffix.
SUFFIX_UNITS = (("_lpm", "L/min"), ("_c", "degC"), ("_kpa", "kPa"), ("_k_per_w", "K/W"), ("_kw", "kW"),
                ("_w", "W"), ("_s", "s"), ("_mm", "mm"), ("_k", "K"))


# --------------------------------------------------------------------------- options


def _number(text: str, option: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise TwinInputError(option, "", f"{what} {text.strip()!r} is not a finite number")
    return value


def parse_target(text: str) -> tuple[str, float]:
    """``gpu_junction_margin_k=5`` -> (margin name, target value)."""
    name, sep, value = text.partition("=")
    if not sep or not name.strip() or not value.strip():
        raise TwinInputError("--target", "", f"{text!r}: expected MARGIN=VALUE, e.g. gpu_junction_margin_k=5")
    return name.strip(), _number(value, "--target", f"{name.strip()}: value")


def parse_range(text: str) -> tuple[float, float]:
    """``LO:HI`` -> (lo, hi), lo < hi."""
    parts = text.split(":")
    if len(parts) != 2:
        raise TwinInputError("--range", "", f"{text!r}: expected LO:HI, e.g. 20:400")
    lo, hi = (_number(p, "--range", "bound") for p in parts)
    if not lo < hi:
        raise TwinInputError("--range", "", f"{text!r}: LO must be below HI")
    return lo, hi


def parse_sweep(text: str) -> tuple[str, list[float]]:
    """``KEY=A:B:N`` -> (key, N values from A to B)."""
    key, sep, spec = text.partition("=")
    parts = spec.split(":")
    if not sep or not key.strip() or len(parts) != 3:
        raise TwinInputError("--sweep", "", f"{text!r}: expected KEY=A:B:N, e.g. facility.supply_temp_c=17:45:8")
    a, b = (_number(p, "--sweep", "end") for p in parts[:2])
    try:
        n = int(parts[2])
    except ValueError:
        raise TwinInputError("--sweep", "", f"{text!r}: N {parts[2].strip()!r} is not a whole number") from None
    if not 1 <= n <= MAX_SWEEP_POINTS:
        raise TwinInputError("--sweep", "", f"{text!r}: N must be 1-{MAX_SWEEP_POINTS}, got {n}")
    if n > 1 and a == b:
        raise TwinInputError("--sweep", "", f"{text!r}: A and B are equal")
    if n == 1 and a != b:  # as a sweep file's range 'a:b:n'
        raise TwinInputError("--sweep", "", f"{text!r}: N = 1 is one point: give it as A:A:1 (A = B), or N >= 2")
    values = [a] if n == 1 else [a + (b - a) * i / (n - 1) for i in range(n)]
    return key.strip(), values


# --------------------------------------------------------------------------- the key


@dataclass
class Knob:
    """The key varied (or swept): its scenario value, unit and physical range."""

    key: str
    nominal: Optional[float]
    unit: str
    bounds: tuple  # (lo, hi) the schema allows, open ends nudged inside
    note: str = ""  # e.g. which instance an override pattern's value was read from

    def show(self, x: float) -> str:
        return f"{x:.6g} {self.unit}".rstrip()


def _unit(key: str, bounds) -> str:
    if bounds is not None and bounds.unit:
        return bounds.unit
    last = key_parts(key)[-1]
    return next((u for suffix, u in SUFFIX_UNITS if last.endswith(suffix)), "")


def _inside(b) -> tuple:
    """A schema range as a closed interval inside it (open ends moved in by round-off)."""
    if b is None:
        return (-math.inf, math.inf)
    lo = b.lo + (abs(b.lo) * 1e-9 or 1e-12) if b.lo_open else b.lo
    hi = b.hi - (abs(b.hi) * 1e-9 or 1e-12) if b.hi_open else b.hi
    return (float(lo), float(hi))


def knob(path, sets, key: str, option: str) -> Knob:
    """The key ``option`` (``--vary`` or ``--sweep``) names, read from the scenario with
    its ``--set`` overrides: a number field of the schema (``controls.flow_setpoint_lpm``,
    ``workload.schedule.0.fraction_of_tdp``) or a parameter of a component instance
    (``overrides."rack01/tray09/gpu1".r_tim_k_per_w``). Anything else is an input error
    naming the option."""
    from .scenario import FACILITY_SUPPLY_C, field_at, field_bounds, load

    label = f"{option} {key}"
    parts = key_parts(key)
    if parts[0] == "simulation":  # the run's length and steps: the answer must not depend on them
        raise TwinInputError(option, "", f"{key} sets how the runs are computed, not a design value"
                                         + ("; --duration sets the length of each run" if parts[-1] == "duration_s"
                                            else ""))
    loaded = load(path, list(sets))
    if parts[0] == "overrides":
        return _instance_knob(path, sets, key, parts, loaded, label)
    value = loaded.scenario.model_dump(mode="python")
    for i, p in enumerate(parts):
        here = ".".join(parts[:i]) or "the scenario"
        if isinstance(value, list):
            if not (p.lstrip("-").isdigit() and -len(value) <= int(p) < len(value)):
                raise TwinInputError(option, "", f"{key}: no list element {p!r} ({here} has {len(value)})")
            value = value[int(p)]
        elif isinstance(value, dict):
            if p not in value:
                raise TwinInputError(option, "", f"{key}: {here} has no key {p!r}" + did_you_mean(p, value))
            value = value[p]
        else:
            raise TwinInputError(option, "", f"{key}: {here} is a value, not a table")
    info = field_at(key, loaded.sources.data)
    bounds = field_bounds(info)
    _check_number(key, value, info.annotation if info is not None else None, option)
    lo_hi = FACILITY_SUPPLY_C if key == "facility.supply_temp_c" else _inside(bounds)
    return Knob(key, None if value is None else float(value), _unit(key, bounds), tuple(lo_hi))


def _check_number(key, value, annotation, option):
    if isinstance(value, bool):
        what = f"is true or false ({value!r})"
    elif isinstance(value, str):
        what = f"is text ({value!r})"
    elif isinstance(value, dict):
        what = "is a table"
    elif isinstance(value, (list, tuple)):
        what = "is a list"
    elif annotation is int or isinstance(value, int):
        what = f"is a whole number ({value}): twin size varies keys that take any value in a range"
    else:
        return
    raise TwinInputError(option, "", f"{key} {what}, not a number to vary")


def _instance_knob(path, sets, key, parts, loaded, label) -> Knob:
    """A component instance's parameter: its value (the first instance the pattern
    matches) and range (its definition's field)."""
    from .build import build_model, path_alias
    from .components.base import _matches
    from .scenario import field_bounds, load

    option = label.split()[0]
    if len(parts) != 3:
        raise TwinInputError(option, "", f'{key}: an instance parameter is overrides."PATH".parameter')
    pattern, param = parts[1], parts[2]
    s = loaded.scenario
    model = build_model(s, str(loaded.where(key)))
    alias = path_alias(s)
    inst = next((i for p, i in model.instances.items() if _matches(alias(pattern), p)), None)
    if inst is None or param not in inst.parameters():
        # the builder names the path or parameter that matches nothing, with near matches
        probe = load(path, list(sets), {key: (1.0, label)})
        build_model(probe.scenario, str(probe.where(key)))
        raise TwinInputError(option, "", f"{key}: no such instance parameter")
    spec = next(sp for sp in inst.specs if param in type(sp).model_fields)
    info = type(spec).model_fields[param]
    value = inst.parameters()[param]
    _check_number(key, value, info.annotation, option)
    bounds = field_bounds(info)
    n = sum(1 for p in model.instances if _matches(alias(pattern), p))
    note = f"value of {inst.path}" + (f", the first of the {n} instances {pattern!r} matches" if n > 1 else "")
    return Knob(key, float(value), _unit(key, bounds), _inside(bounds), note)


def default_range(k: Knob) -> tuple[float, float, str]:
    """The range searched when none is given, and how it was chosen."""
    lo_b, hi_b = k.bounds
    if k.key == "facility.supply_temp_c":
        return lo_b, hi_b, "the facility supply range (ASHRAE W17-W45 and W+)"
    if k.nominal is None:
        raise TwinInputError("--range", "", f"{k.key} has no value in this scenario: give --range LO:HI")
    if k.unit == "degC" or k.nominal > 0:
        if k.unit == "degC":
            want = k.nominal - TEMP_SPAN_K, k.nominal + TEMP_SPAN_K
            why = f"the scenario's {k.show(k.nominal)} +-{TEMP_SPAN_K:g} K"
        else:
            want = k.nominal * RANGE_BELOW, k.nominal * RANGE_ABOVE
            why = f"{RANGE_BELOW:g} to {RANGE_ABOVE:g} times the scenario's {k.show(k.nominal)}"
        lo, hi = max(lo_b, want[0]), min(hi_b, want[1])
        # say so: "4 times 1" is not the 1.2 searched
        why += "".join(f", cut at the field's {end} {b:g}" for end, b, cut in
                       (("minimum", lo_b, lo != want[0]), ("maximum", hi_b, hi != want[1])) if cut)
    elif math.isfinite(lo_b) and math.isfinite(hi_b):
        lo, hi, why = lo_b, hi_b, "the field's physical range"
    else:
        raise TwinInputError("--range", "", f"{k.key} is {k.nominal:g} here: no default range, give --range LO:HI")
    if not lo < hi:
        raise TwinInputError("--range", "", f"{k.key}: no default range inside {lo_b:g}-{hi_b:g}: give --range LO:HI")
    return lo, hi, why


# --------------------------------------------------------------------------- runs


@dataclass
class Point:
    """One run: the key's value, the margin there, how the run went, a few figures."""

    x: float
    value: float
    status: str = ""  # the margin's status in that run (ok, fail, not judged, "" for a figure)
    stopped: str = ""  # why the run ended early (a model limit), "" when it completed
    figures: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Whether the run answers: completed, with a finite margin."""
        return not self.stopped and math.isfinite(self.value)


class Runs:
    """Runs a scenario at values of one key (``fixed``: other keys held, a sweep's),
    counting and caching them. ``label``: the option errors in the key's value name."""

    def __init__(self, path, sets, key: str, margin: str, duration_s=None, fixed=None, allow_large=False,
                 flag="--allow-large"):
        self.path, self.sets, self.key, self.margin = path, list(sets), key, margin
        self.duration_s, self.fixed, self.allow_large, self.flag = duration_s, dict(fixed or {}), allow_large, flag
        self.cache: dict = {}
        self.count = 0
        self.wall_s = 0.0
        self.unit, self.sense = "", None
        self.label = f"--vary {key}"

    def at(self, x: float) -> Point:
        x = float(x)
        if x in self.cache:
            return self.cache[x]
        from .budget import check
        from .engine import simulate
        from .scenario import load

        loaded = load(self.path, self.sets, {**self.fixed, self.key: (x, self.label)})
        s = loaded.scenario
        if self.duration_s is not None:
            s = s.with_overrides({"simulation.duration_s": self.duration_s})
        if not self.allow_large and self.count == 0:
            check(s, loaded.where, in_memory=True, flag=self.flag)
        t0 = time.perf_counter()
        try:
            r = simulate(s)
            r.end.reraise()  # Ctrl-C stops the search, not one run of it
        except TwinInputError as err:  # found while building: an instance parameter out of its range
            if err.file == "<scenario>":
                err.file = str(loaded.where(err.field))
            raise
        self.wall_s += time.perf_counter() - t0
        self.count += 1
        row = next((r_ for r_ in r.margin_table.rows if r_.name == self.margin), None)
        if row is None:
            names = [r_.name for r_ in r.margin_table.rows]
            raise TwinInputError("--target", "", f"no margin named {self.margin!r}" + (
                did_you_mean(self.margin, names) or f"; margins: {', '.join(names)}"))
        self.unit, self.sense = row.unit, row.sense
        p = Point(x, float(row.value), row.status, "" if r.end.is_complete else r.end.reason, _figures(r))
        self.cache[x] = p
        return p


def _figures(r) -> dict:
    """A run's rack flow, heat and temperature rise: the physics sanity of an answer."""
    import numpy as np

    m = r.margins
    tel = r.telemetry()
    whole = "row" if "row/flow" in tel.channels else "rack"
    rise = np.asarray(tel["rack/return_temp"], dtype=float) - np.asarray(tel["rack/supply_temp"], dtype=float)
    out = dict(flow_lpm=float(np.max(tel[f"{whole}/flow"])) if tel.time.size else math.nan,
               liquid_heat_kw=m.get(f"{whole}_liquid_heat_peak_kw", math.nan),
               flow_per_kw_lpm=m.get(f"{whole}_flow_per_kw_lpm", math.nan),
               rack_rise_max_k=float(np.max(rise)) if rise.size else math.nan,
               return_max_c=m.get("rack_return_temp_max_c", math.nan),
               gpu_junction_max_c=m.get("gpu_junction_max_c", math.nan),
               pump_power_kw=m.get("cdu_pump_power_mean_kw", math.nan))
    return {k: float(v) for k, v in out.items()}


# --------------------------------------------------------------------------- the search


@dataclass
class Answer:
    """The result of one search. ``status``: ``found``, ``unreachable`` (the margin is on
    one side of the target at both ends), ``step`` (the margin jumps across the target
    between two values closer than the tolerance) or ``no answer`` (runs at an end stop
    at a model limit)."""

    status: str
    point: Optional[Point] = None  # the run at the answer (found, step)
    lo: Optional[Point] = None  # the ends searched (the walk of a sweep may skip them)
    hi: Optional[Point] = None
    bracket: Optional[tuple] = None  # nearest runs either side of the target
    runs: int = 0
    rising: Optional[bool] = None  # whether the margin rises with the key
    notes: list = field(default_factory=list)

    @property
    def found(self) -> bool:
        return self.status == "found"


class _Hit(Exception):
    def __init__(self, point):
        self.point = point


class _NoAnswer(Exception):
    def __init__(self, point):
        self.point = point


def solve(runs: Runs, target: float, ftol: float, lo: float, hi: float, start: Optional[float] = None,
          rising: Optional[bool] = None) -> Answer:
    """The value of ``runs.key`` in [lo, hi] where the margin is within ``ftol`` of
    ``target``. ``start`` and ``rising``: a previous answer and the direction the margin
    went there (a sweep's previous point): the search walks out from it first."""
    n0 = runs.count
    ans = None
    if start is not None and rising is not None and lo <= start <= hi:
        ans = _walk(runs, target, ftol, start, lo, hi, rising)
    if ans is None:
        ans = _from_ends(runs, target, ftol, lo, hi)
    ans.runs = runs.count - n0
    if ans.point is not None:
        ans.bracket = _bracket(runs, target, ans.point.x)
    return ans


def _from_ends(runs, target, ftol, lo, hi) -> Answer:
    notes = []
    a, b = _usable_end(runs, lo, hi, notes), _usable_end(runs, hi, lo, notes)
    if not (a.ok and b.ok):
        bad = a if not a.ok else b
        return Answer("no answer", lo=a, hi=b, notes=notes + [f"at {bad.x:.6g} the run {bad.stopped or 'has no margin'}"])
    rising = b.value > a.value
    for p in (a, b):
        if abs(p.value - target) <= ftol:
            return Answer("found", p, a, b, rising=rising, notes=notes)
    if (a.value - target) * (b.value - target) > 0:
        if abs(a.value - b.value) <= ftol / 10:
            ta, tb = (p.figures.get("gpu_junction_max_c", math.nan) for p in (a, b))
            if abs(ta - tb) > 0.01:  # the key acts on the rack, not on this margin
                notes.append(f"the margin is the same at both ends although the runs differ (GPU Tj max "
                             f"{ta:.1f} and {tb:.1f} degC): it does not respond to {runs.key} over this range")
            else:
                notes.append(f"the margin is the same at both ends: {runs.key} changes nothing in this scenario "
                             "(is it used? e.g. controls.pump_speed_fraction acts only with controls.pump_mode = speed)")
        return Answer("unreachable", lo=a, hi=b, rising=rising, notes=notes)
    ans = _brent(runs, target, ftol, a, b)
    ans.lo, ans.hi, ans.rising, ans.notes = a, b, rising, notes + ans.notes
    return ans


def _usable_end(runs, x, other, notes) -> Point:
    """The run at an end of the range; where it stops at a model limit (the coolant boils
    at a tiny flow), the end moves toward the other end."""
    p = runs.at(x)
    for _ in range(END_TRIES):
        if p.ok:
            break
        first = p
        x = x + (other - x) * END_STEP
        p = runs.at(x)
        if p.ok:
            notes.append(f"at {first.x:.6g} the run {first.stopped or 'has no margin'}: searched from {x:.6g}")
    return p


def _brent(runs, target, ftol, a: Point, b: Point) -> Answer:
    from scipy.optimize import brentq

    def g(x):
        p = runs.at(x)
        if not p.ok:
            raise _NoAnswer(p)
        d = p.value - target
        if abs(d) <= ftol:
            raise _Hit(p)
        return d

    try:
        x = brentq(g, a.x, b.x, xtol=XTOL_REL * abs(b.x - a.x), rtol=1e-12, maxiter=MAX_ITER, disp=False)
    except _Hit as hit:
        return Answer("found", hit.point)
    except _NoAnswer as bad:
        return Answer("no answer", notes=[f"at {bad.point.x:.6g} the run {bad.point.stopped or 'has no margin'}"])
    p = runs.at(x)
    if abs(p.value - target) <= ftol:
        return Answer("found", p)
    return Answer("step", p, notes=["the margin steps across the target there (throttling setting in, a pump out "
                                    "of head): no value of the key gives the target within the tolerance"])


def _walk(runs, target, ftol, x0, lo, hi, rising) -> Optional[Answer]:
    """From a previous answer ``x0``, step outward (doubling) toward where the target
    lies until the margin crosses it; None when it does not within the range (the caller
    then searches from both ends)."""
    a, x, up = None, x0, None
    step = WALK_STEP * (abs(x0) if x0 != 0 else hi - lo)
    while True:
        b = runs.at(x)
        if not b.ok:
            return None
        db = b.value - target
        if abs(db) <= ftol:
            return Answer("found", b, rising=rising)
        if a is None:  # the start: which side of it the target lies
            up = (db < 0) == rising
        elif db * (a.value - target) < 0:
            ans = _brent(runs, target, ftol, a, b) if up else _brent(runs, target, ftol, b, a)
            ans.rising = rising
            return ans
        else:
            step *= 2
        a = b
        x = min(a.x + step, hi) if up else max(a.x - step, lo)
        if x == a.x:
            return None


def _bracket(runs, target, x) -> Optional[tuple]:
    """The nearest runs below and above ``x`` whose margins lie either side of the target."""
    pts = sorted((p for p in runs.cache.values() if p.ok), key=lambda p: p.x)
    below = [p for p in pts if p.x < x]
    above = [p for p in pts if p.x > x]
    if not below or not above:
        return None
    return below[-1], above[0]


# --------------------------------------------------------------------------- the command


@dataclass
class Sizing:
    """A sizing question and its answers (one, or one per sweep value)."""

    scenario: str
    key: Knob
    margin: str
    target: float
    ftol: float
    lo: float
    hi: float
    range_note: str
    duration_s: float
    unit: str = ""  # the margin's
    sense: Optional[str] = None
    sweep: Optional[Knob] = None
    answers: list = field(default_factory=list)  # [(sweep value or None, Answer)]
    wall_s: float = 0.0
    sets: list = field(default_factory=list)
    duration_given: bool = False  # --duration: the check line repeats it

    @property
    def runs(self) -> int:
        return sum(a.runs for _, a in self.answers)

    @property
    def all_found(self) -> bool:
        return all(a.found for _, a in self.answers)


def size(path, sets, vary: str, target: str, range_text=None, sweep_text=None, duration_s=None, tol=None,
         allow_large=False, flag="--allow-large") -> Sizing:
    """Answer ``twin size``: parse the options, read the key(s), search (per sweep value)."""
    name, goal = parse_target(target)
    given = parse_range(range_text) if range_text is not None else None
    sweep_key, sweep_values = parse_sweep(sweep_text) if sweep_text is not None else (None, [None])
    if tol is not None and not (math.isfinite(tol) and tol > 0):
        raise TwinInputError("--tol", "", f"must be a positive number, got {tol:g}")
    from .scenario import load  # the schema (pydantic) once the options are read

    k = knob(path, sets, vary, "--vary")
    sk = None
    if sweep_key is not None:
        if sweep_key == vary:
            raise TwinInputError("--sweep", "", f"{sweep_key} is the key --vary varies")
        sk = knob(path, sets, sweep_key, "--sweep")
        for v in (sweep_values[0], sweep_values[-1]):  # the schema checks the sweep's ends now, not after runs
            load(path, list(sets), {sweep_key: (v, f"--sweep {sweep_key}")})
    lo, hi, why = (*given, "--range") if given else default_range(k)
    base = load(path, list(sets)).scenario
    duration = duration_s if duration_s is not None else base.simulation.duration_s
    out = Sizing(str(path), k, name, goal, tol if tol is not None else FTOL_REL * max(1.0, abs(goal)), lo, hi, why,
                 duration, sweep=sk, sets=list(sets), duration_given=duration_s is not None)
    start = rising = None
    for v in sweep_values:
        fixed = {sweep_key: (v, f"--sweep {sweep_key}")} if sweep_key is not None else {}
        runs = Runs(path, sets, vary, name, duration_s, fixed, allow_large, flag)
        if given and start is None:
            runs.label = "--range"
            runs.at(lo), runs.at(hi)  # the ends first: an end outside the key's range names --range
            runs.label = f"--vary {vary}"
        ans = solve(runs, goal, out.ftol, lo, hi, start, rising)
        out.unit, out.sense = runs.unit, runs.sense
        out.answers.append((v, ans))
        out.wall_s += runs.wall_s
        if ans.found:
            start, rising = ans.point.x, ans.rising if ans.rising is not None else rising
    return out


# --------------------------------------------------------------------------- output


def _side(sz: Sizing, ans: Answer) -> str:
    """Which side of the answer meets the target."""
    if ans.rising is None:
        return ""
    k = sz.key
    grows = "rises" if ans.rising else "falls"
    line = f"{sz.margin} {grows} with {k.key}"
    if sz.sense is None:
        return line
    # a "min" margin must stay at or above its target, a "max" margin at or below it
    above = (sz.sense == "min") == ans.rising
    return f"{line}: {'at least' if above else 'at most'} {k.show(ans.point.x)} keeps it " \
           f"{'>=' if sz.sense == 'min' else '<='} {sz.target:g}{_u(sz.unit)}"


def _u(unit: str) -> str:
    """A unit after a number: none for a ratio (unit ``1``)."""
    return f" {unit}" if unit and unit != "1" else ""


def _fmt(x, spec=".3f") -> str:
    return "n/a" if x is None or not math.isfinite(x) else format(x, spec)


def report(sz: Sizing) -> str:
    """The answer as text: one block, or a table for a sweep."""
    k = sz.key
    head = (f"twin size {sz.scenario}: {k.key} for {sz.margin} = {sz.target:g}{_u(sz.unit)}"
            + (f", swept over {sz.sweep.key}" if sz.sweep else ""))
    lines = [head]
    if sz.sets:
        lines.append("  with " + " ".join(f"--set {s}" for s in sz.sets))
    lines.append(f"  searched {k.show(sz.lo)} to {k.show(sz.hi)} ({sz.range_note}); runs of {sz.duration_s:g} s "
                 f"from the steady start; Brent's method, stopped at |margin - target| <= {sz.ftol:g}{_u(sz.unit)}")
    if k.note:
        lines.append(f"  {k.key}: {k.note}")
    if sz.sweep is None:
        _, ans = sz.answers[0]
        lines += _single(sz, ans)
    else:
        lines += _table(sz)
        bad = [v for v, a in sz.answers if not a.found]
        lines.append(f"{len(sz.answers) - len(bad)} of {len(sz.answers)} points found"
                     + (f"; not found at {sz.sweep.key} = " + ", ".join(f"{v:g}" for v in bad) if bad else ""))
    lines.append(f"runs: {sz.runs} ({sz.wall_s / max(sz.runs, 1):.2f} s each)")
    return "\n".join(lines)


def _single(sz: Sizing, ans: Answer) -> list:
    k = sz.key
    out = [f"  note: {n}" for n in ans.notes]
    if ans.status in ("found", "step"):
        p = ans.point
        word = "found" if ans.found else "NOT MET (a step)"
        out.append(f"{word}: {k.key} = {k.show(p.x)}")
        u = _u(sz.unit)
        out.append(f"  {sz.margin} there: {p.value:.3f}{u} (target {sz.target:g}{u}, tolerance {sz.ftol:g}{u})")
        if ans.bracket:
            a, b = ans.bracket
            q = min((a, b), key=lambda r: abs(r.x - p.x))  # the slope next to the answer
            slope = (q.value - p.value) / (q.x - p.x) if q.x != p.x else (b.value - a.value) / (b.x - a.x)
            out.append(f"  bracket: {k.show(a.x)} ({a.value:.3f}) to {k.show(b.x)} ({b.value:.3f}); local slope "
                       f"{slope:.3g} {sz.unit} per {k.unit or 'unit'}: the value is good to about "
                       f"+-{sz.ftol / abs(slope) if slope else math.inf:.2g} {k.unit}".rstrip())
        side = _side(sz, ans) if ans.found else ""
        if side:
            out.append(f"  {side}")
        f = p.figures
        out.append(f"  there: rack flow {_fmt(f.get('flow_lpm'), '.1f')} L/min, {_fmt(f.get('flow_per_kw_lpm'))} "
                   f"L/min/kW of {_fmt(f.get('liquid_heat_kw'), '.1f')} kW liquid heat, rack rise "
                   f"{_fmt(f.get('rack_rise_max_k'), '.1f')} K, return {_fmt(f.get('return_max_c'), '.1f')} degC, "
                   f"GPU Tj max {_fmt(f.get('gpu_junction_max_c'), '.1f')} degC")
        sets = " ".join(f"--set {s}" for s in sz.sets)
        out.append(f"check: twin run {sz.scenario} {sets + ' ' if sets else ''}--set {k.key}={p.x:.6g}"
                   + (f" --duration {sz.duration_s:g}" if sz.duration_given else ""))
    elif ans.status == "unreachable":
        u = _u(sz.unit)
        out.append(f"unreachable: {sz.margin} is {ans.lo.value:.3f}{u} at {k.show(ans.lo.x)} and "
                   f"{ans.hi.value:.3f}{u} at {k.show(ans.hi.x)}: both {'below' if ans.lo.value < sz.target else 'above'} "
                   f"the target {sz.target:g}{u} in the range searched")
    else:
        out.append(f"no answer: the runs do not reach a margin ({'; '.join(ans.notes) or 'model limit'})")
    return out


def rows(sz: Sizing) -> list:
    """One dict per answer (a sweep's points): what the table, CSV and JSON hold."""
    out = []
    for v, a in sz.answers:
        p = a.point
        out.append(dict(
            sweep_value=v, status=a.status, value=p.x if p is not None and a.found else None,
            margin=p.value if p is not None else None, runs=a.runs,
            margin_at_lo=a.lo.value if a.lo is not None else None, lo=a.lo.x if a.lo is not None else None,
            margin_at_hi=a.hi.value if a.hi is not None else None, hi=a.hi.x if a.hi is not None else None,
            bracket=[a.bracket[0].x, a.bracket[1].x] if a.bracket else None,
            figures=p.figures if p is not None and a.found else None, notes=list(a.notes)))
    return out


def _table(sz: Sizing) -> list:
    k, s = sz.key, sz.sweep
    cols = [f"{s.key} [{s.unit}]", f"{k.key} [{k.unit}]", f"{sz.margin} [{sz.unit}]", "runs",
            "L/min/kW", "rise [K]", "note"]
    body = []
    for r in rows(sz):
        f = r["figures"] or {}
        if r["status"] == "found":
            note = ""
        elif r["status"] == "unreachable":
            note = (f"unreachable: {r['margin_at_lo']:.3f} at {r['lo']:.6g}, {r['margin_at_hi']:.3f} at "
                    f"{r['hi']:.6g}")
        else:
            note = r["status"] + (": " + "; ".join(r["notes"]) if r["notes"] else "")
        body.append([f"{r['sweep_value']:g}", _fmt(r["value"], ".2f") if r["value"] is not None else "-",
                     _fmt(r["margin"]) if r["status"] == "found" else "-", str(r["runs"]),
                     _fmt(f.get("flow_per_kw_lpm")) if f else "-", _fmt(f.get("rack_rise_max_k"), ".1f") if f else "-",
                     note])
    widths = [max(len(c), *(len(b[i]) for b in body)) for i, c in enumerate(cols[:-1])]
    fmt = lambda cells: "  ".join(x.rjust(w) for x, w in zip(cells, widths)) + ("  " + cells[-1] if cells[-1] else "")
    return [fmt(cols), *(fmt(b) for b in body)]


def to_json(sz: Sizing) -> dict:
    return dict(scenario=sz.scenario, overrides=sz.sets, key=sz.key.key, unit=sz.key.unit, margin=sz.margin,
                margin_unit=sz.unit, target=sz.target, tolerance=sz.ftol, range=[sz.lo, sz.hi],
                range_note=sz.range_note, duration_s=sz.duration_s,
                sweep_key=sz.sweep.key if sz.sweep else None, sweep_unit=sz.sweep.unit if sz.sweep else None,
                runs=sz.runs, all_found=sz.all_found, answers=rows(sz))


CSV_MARK = b",status,runs,"  # in the header of every table write_csv writes


def write_csv(sz: Sizing, path: Path) -> None:
    """The answers as CSV, one line per point; unreachable points keep their line with an
    empty value and the margin at both ends."""
    import csv

    check_outputs(path, None, False)
    k = sz.key
    head = ([f"{sz.sweep.key} [{sz.sweep.unit}]"] if sz.sweep else []) + [
        f"{k.key} [{k.unit}]", f"{sz.margin} [{sz.unit}]", "status", "runs", f"{sz.margin} at lo [{sz.unit}]", "lo",
        f"{sz.margin} at hi [{sz.unit}]", "hi", "flow_per_kw [L/min/kW]", "rack_rise [K]"]
    tmp = Path(str(path) + ".partial")
    with writing(path, "--csv"), open(tmp, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(head)
        for r in rows(sz):
            f = r["figures"] or {}
            cells = ([r["sweep_value"]] if sz.sweep else []) + [
                r["value"], r["margin"] if r["status"] == "found" else None, r["status"], r["runs"],
                r["margin_at_lo"], r["lo"], r["margin_at_hi"], r["hi"], f.get("flow_per_kw_lpm"),
                f.get("rack_rise_max_k")]
            w.writerow(["" if c is None else (f"{c:.6g}" if isinstance(c, float) else c) for c in cells])
    with writing(path, "--csv"):
        tmp.replace(path)


def check_outputs(csv_path: Optional[Path], plot_path: Optional[Path], sweep: bool) -> None:
    """Refuse bad output paths before any run."""
    if csv_path is not None:
        _check_out(csv_path, "--csv")
    if plot_path is not None:
        _check_out(plot_path, "--plot")
        if plot_path.suffix.lower() != ".png":
            raise TwinInputError(plot_path, "--plot", "must name a .png file")
        if not sweep:
            raise TwinInputError(plot_path, "--plot", "needs --sweep: the plot is the answer against the swept key")


def write_plot(sz: Sizing, path: Path) -> None:
    """The answer against the swept key (matplotlib, Agg); points without an answer are
    marked at the bottom of the axes with their status."""
    check_outputs(None, path, sz.sweep is not None)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k, s = sz.key, sz.sweep
    found = [(v, a.point.x) for v, a in sz.answers if a.found]
    missing = [(v, a.status) for v, a in sz.answers if not a.found]
    fig, ax = plt.subplots(figsize=(7, 4.2))
    if found:
        ax.plot(*zip(*found), "o-", label=f"{sz.margin} = {sz.target:g} {sz.unit}")
    y = ax.get_ylim()[0] if found else 0.0
    for v, status in missing:
        ax.plot([v], [y], "x", color="red", markersize=10, clip_on=False)
        ax.annotate(status, (v, y), textcoords="offset points", xytext=(0, 8), ha="center", color="red", fontsize=8)
    if missing:
        ax.plot([], [], "x", color="red", label="no answer in the range (status above the mark)")
    ax.set_xlabel(f"{s.key} [{s.unit}]")
    ax.set_ylabel(f"{k.key} [{k.unit}]")
    ax.set_title(f"{Path(sz.scenario).stem}: {k.key} for {sz.margin} = {sz.target:g} {sz.unit}", fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    tmp = Path(str(path) + ".partial.png")
    try:
        with writing(path, "--plot"):
            fig.savefig(tmp, dpi=100)
            tmp.replace(path)
    finally:
        plt.close(fig)
        tmp.unlink(missing_ok=True)


def _check_out(path: Path, option: str) -> None:
    """An output file: not a directory or a device, an earlier output of its kind if it
    exists (never the scenario or another file); missing directories are created."""
    if path.is_dir():
        raise TwinInputError(path, option, "is a directory")
    if path.exists() and not path.is_file():
        raise TwinInputError(path, option, "exists and is not a regular file")
    if option == "--csv":
        prepare_output(path, CSV_MARK, "a CSV table of twin size", option, within=4096)
    else:
        prepare_output(path, PNG_MAGIC, "a PNG image", option)
