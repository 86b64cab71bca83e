"""Golden results: every scenario still computes what it computed when its golden file was
recorded (benchmarks/record_golden.py, before the network assembly was refactored into
component builders and the engine split into several modules).

Each file of tests/data/golden/ holds one scenario's margins, energy accounting, events,
end of run and a down-sampled copy of its telemetry (every channel at about ten evenly
spaced rows plus the last, and each column's maximum and minimum over the run). The test
re-runs the scenario for the recorded duration and compares. Channels are compared by
column position, never by label (labels may gain a rack prefix); a channel of the golden
file must exist with the same shape, new channels may be added.

To re-record after an intended change of the physics: python benchmarks/record_golden.py
(and say in the commit why the numbers moved).
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

import twin

from .conftest import ROOT

GOLDEN_DIR = Path(__file__).resolve().parent / "data" / "golden"
GOLDEN_FILES = sorted(GOLDEN_DIR.glob("*.json"))

# Tolerances.
# Temperatures (channels in degC, margins in K or degC, names ending in _c or _k): the
# refactor issue's acceptance criterion, every temperature within 0.01 K.
TEMP_ATOL_K = 0.01
# Flows, pressures, powers, heat and energies (and the margins in kPa, kW, kWh, L/min/kW,
# the tray flow ratio, the CDU pump speed): the same model re-assembled, round-off only.
# Relative, with room for the iterative solves to stop at a slightly different point (the
# hydraulic solve at 0.1 Pa of residual, about 1e-6 of the rack's drop; the flow
# controller at 1e-6 of its setpoint).
REL_TOL = 1e-4
# ... plus an absolute floor for values near zero, as a fraction of a scale: a channel's
# largest magnitude, the largest energy figure, a margin's own value. Round-off only.
REL_FLOOR = 1e-6
# Goodput, counts (job steps, shutdowns), clock fractions and the liquid heat fraction:
# the same model re-assembled, round-off only.
FRACTION_ATOL = 1e-6
# Throttled seconds: within one time step (round-off can move a throttling decision that
# sits at its threshold by one step); the extra 1 % of a step covers the float32
# accumulation of the channel. A job's throttled GPU-seconds: one step per GPU of the rack.
THROTTLE_STEPS = 1.01
# The golden files store numbers rounded to 1e-6: half of that is allowed on top of every
# tolerance.
ROUNDING_ATOL = 5e-7
# Sample times agree within this fraction of a step; the end of a run and event times
# within one step more (round-off can move a limit crossing by a step).
TIME_RTOL_STEP = 1e-6
# At most this many differences are listed in a failure message (all are counted).
MAX_LISTED = 25

# Dimensionless channels that are not fractions of a whole: the CDU pump speed is the
# flow controller's output (its solve stops at FLOW_CONTROL_RTOL of the setpoint in
# twin/engine.py): compared as a flow.
RELATIVE_DIMENSIONLESS_CHANNELS = frozenset({"cdu/pump_speed"})


# --------------------------------------------------------------------------- reading

def load_golden(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _value(v) -> float:
    """A recorded number ("nan", "inf", "-inf" for the non-finite ones)."""
    return float(v) if v is not None else math.nan


def _vector(v, width: int) -> np.ndarray:
    """A recorded row of a 2-D channel: a list of ``width`` values, or one number that
    every column holds."""
    if isinstance(v, list):
        return np.array([_value(x) for x in v], dtype=float)
    return np.full(width, _value(v))


def _matrix(rows: list, width: int) -> np.ndarray:
    return np.array([_vector(r, width) for r in rows], dtype=float).reshape(len(rows), width)


# --------------------------------------------------------------------------- kinds

def channel_kind(name: str, units: str) -> str:
    """How a channel is compared: temperature, throttle, fraction or relative."""
    if units in ("degC", "K"):
        return "temperature"
    if units == "s":
        return "throttle"
    if units == "1" and name not in RELATIVE_DIMENSIONLESS_CHANNELS:
        return "fraction"
    return "relative"


def margin_kind(name: str, unit: str) -> str:
    """How a margin is compared: temperature, throttle, gpu_throttle, fraction or relative."""
    if name.endswith(("_c", "_k")) or unit in ("degC", "K"):
        return "temperature"
    if unit == "s":
        return "throttle"
    if unit == "GPU*s":
        return "gpu_throttle"
    if unit == "1" and "flow" not in name:  # goodput, counts, fractions (a flow ratio is a flow)
        return "fraction"
    return "relative"


def tolerance(kind: str, old: np.ndarray, scale: float, dt: float, n_gpu: int = 1) -> np.ndarray:
    """The allowed absolute difference from ``old``, element by element."""
    old = np.abs(np.asarray(old, dtype=float))
    if kind == "temperature":
        tol = np.full_like(old, TEMP_ATOL_K)
    elif kind == "throttle":
        tol = np.full_like(old, THROTTLE_STEPS * dt)
    elif kind == "gpu_throttle":  # summed over a job's GPUs: a step each
        tol = np.full_like(old, THROTTLE_STEPS * dt * n_gpu)
    elif kind == "fraction":
        tol = np.full_like(old, FRACTION_ATOL)
    else:
        tol = REL_TOL * np.nan_to_num(old, nan=0.0, posinf=0.0) + REL_FLOOR * scale
    return tol + ROUNDING_ATOL


def _differ(old: np.ndarray, new: np.ndarray, tol: np.ndarray) -> np.ndarray:
    """Where ``new`` is not ``old`` within ``tol``: a NaN matches only a NaN, an infinity
    only the same infinity."""
    old, new = np.asarray(old, dtype=float), np.asarray(new, dtype=float)
    finite = np.isfinite(old) & np.isfinite(new)
    with np.errstate(invalid="ignore"):
        far = np.abs(new - old) > tol
    same_special = (np.isnan(old) & np.isnan(new)) | (np.isinf(old) & (old == new))
    return np.where(finite, far, ~same_special)


# --------------------------------------------------------------------------- comparing

def run_golden(golden: dict, overrides=None):
    """Re-run a golden file's scenario for its recorded duration."""
    scenario = twin.load_scenario(ROOT / golden["scenario"], overrides)
    return twin.simulate(scenario, duration_s=float(golden["duration_s"]))


def compare(golden: dict, result) -> list:
    """Every difference between a golden record and a new run, one line each."""
    where = golden["scenario"]
    problems: list = []
    dt = float(golden["time_step_s"])
    time_tol = TIME_RTOL_STEP * dt + ROUNDING_ATOL

    def bad(msg):
        problems.append(f"{where}: {msg}")

    # end of the run
    end, g_end = result.end, golden["end"]
    if bool(end.is_complete) != g_end["complete"]:
        bad(f"run complete {end.is_complete}, golden {g_end['complete']} (golden end: {g_end['reason']}; "
            f"new: {end.reason})")
    if abs(float(end.time_s) - _value(g_end["end_time_s"])) > dt + time_tol:
        bad(f"run ended at {end.time_s:g} s, golden at {g_end['end_time_s']} s (more than one step apart)")

    # telemetry
    tel = result.telemetry()
    g_tel = golden["telemetry"]
    n_rows = int(g_tel["rows"])
    if tel.time.shape[0] != n_rows:
        bad(f"telemetry has {tel.time.shape[0]} rows, golden {n_rows}")
    rows = [int(r) for r in g_tel["sample_rows"]]
    rows_ok = tel.time.shape[0] == n_rows
    if rows_ok:
        t_new = tel.time[rows]
        t_old = np.array([_value(t) for t in g_tel["time"]])
        for i in np.flatnonzero(np.abs(t_new - t_old) > time_tol):
            bad(f"time at time index {rows[i]}: golden {float(t_old[i])!r} s, new {float(t_new[i])!r} s")
    n_gpu = 1
    for name, g in g_tel["channels"].items():
        shape = tuple(int(s) for s in g["shape"])
        if name == "gpu/junction_temp" and len(shape) == 2:
            n_gpu = max(1, shape[1])
        if name not in tel.channels:
            bad(f"channel {name} missing from the new telemetry")
            continue
        data = np.asarray(tel.channels[name], dtype=float)
        if data.shape != shape:
            bad(f"channel {name}: shape {data.shape}, golden {shape}")
            continue
        kind = channel_kind(name, g["units"])
        if tel.units.get(name) != g["units"]:
            bad(f"channel {name}: units {tel.units.get(name)!r}, golden {g['units']!r}")
        width = shape[1] if len(shape) == 2 else 1
        old_s = _matrix(g["samples"], width) if len(shape) == 2 else np.array([[_value(v)] for v in g["samples"]])
        old_hi, old_lo = _vector(g["max"], width), _vector(g["min"], width)
        finite = np.concatenate([a[np.isfinite(a)] for a in (old_s.ravel(), old_hi, old_lo)])
        scale = float(np.max(np.abs(finite))) if finite.size else 0.0
        new2 = data.reshape(data.shape[0], width)
        empty = np.full(width, np.nan)
        checks = [("max over the run", old_hi, new2.max(axis=0) if new2.shape[0] else empty),
                  ("min over the run", old_lo, new2.min(axis=0) if new2.shape[0] else empty)]
        checks += [(f"time index {r} (t = {g_tel['time'][i]} s)", old_s[i], new2[r]) for i, r in enumerate(rows)]
        for what, old, new in checks:
            tol = tolerance(kind, old, scale, dt)
            for c in np.flatnonzero(_differ(old, new, tol)):
                col = f"column {c}, " if len(shape) == 2 else ""
                o, n = float(old[c]), float(new[c])
                bad(f"channel {name} [{g['units']}], {col}{what}: golden {o!r}, new {n!r}, "
                    f"diff {n - o:+.3g}, allowed {float(tol[c]):.3g} ({kind})")

    # margins
    rows_by_name = {r.name: r for r in result.margin_table.rows}
    for name, g in golden["margins"].items():
        row = rows_by_name.get(name)
        if row is None:
            bad(f"margin {name} missing")
            continue
        kind = margin_kind(name, g["unit"])
        old, new = _value(g["value"]), float(row.value)
        tol = tolerance(kind, np.array([old]), abs(old) if math.isfinite(old) else 0.0, dt, n_gpu)
        if _differ(np.array([old]), np.array([new]), tol)[0]:
            bad(f"margin {name} [{g['unit']}]: golden {old!r}, new {new!r}, diff {new - old:+.3g}, "
                f"allowed {float(tol[0]):.3g} ({kind})")
        if (row.status or None) != g["status"]:
            bad(f"margin {name}: status {row.status or None!r}, golden {g['status']!r} (value {new!r}, golden {old!r})")
        g_limit = g["limit"]
        if (row.limit is None) != (g_limit is None) or (
                g_limit is not None and _differ(np.array([_value(g_limit)]), np.array([float(row.limit)]),
                                                tolerance("relative", np.array([_value(g_limit)]), 0.0, dt))[0]):
            bad(f"margin {name}: limit {row.limit!r}, golden {g_limit!r}")
    if result.margin_table.verdict != golden["verdict"]:
        bad(f"verdict {result.margin_table.verdict!r}, golden {golden['verdict']!r}")

    # energy accounting
    g_energy = {k: _value(v) for k, v in golden["energy"].items()}
    e_scale = max([abs(v) for v in g_energy.values() if math.isfinite(v)], default=0.0)
    for name, old in g_energy.items():
        if name not in result.energy:
            bad(f"energy {name} missing")
            continue
        new = float(result.energy[name])
        tol = tolerance("relative", np.array([old]), e_scale, dt)
        if _differ(np.array([old]), np.array([new]), tol)[0]:
            bad(f"energy {name} [J]: golden {old!r}, new {new!r}, diff {new - old:+.3g}, allowed {float(tol[0]):.3g}")

    # events: their number, kinds and times (targets are labels: not compared)
    g_events = golden["events"]
    if len(result.events) != g_events["count"]:
        bad(f"{len(result.events)} events, golden {g_events['count']}: "
            f"new {[(t, k) for t, k, _ in result.events][:10]}, golden {[(t, k) for t, k, _ in g_events['first'][:10]]}")
    else:
        old_ev = sorted((_value(t), k) for t, k, _ in g_events["first"])
        new_ev = sorted((float(t), k) for t, k, _ in result.events)[:len(old_ev)]
        for i, ((t0, k0), (t1, k1)) in enumerate(zip(old_ev, new_ev)):
            if k0 != k1 or abs(t1 - t0) > dt + time_tol:
                bad(f"event {i}: golden {k0} at {t0:g} s, new {k1} at {t1:g} s")
    return problems


def report(problems: list) -> str:
    listed = problems[:MAX_LISTED]
    more = len(problems) - len(listed)
    return "\n".join([f"{len(problems)} differences from the golden results:", *listed]
                     + ([f"... and {more} more"] if more > 0 else []))


# --------------------------------------------------------------------------- tests

def test_golden_files_exist():
    assert GOLDEN_FILES, f"no golden files in {GOLDEN_DIR} (record them: python benchmarks/record_golden.py)"


@pytest.mark.parametrize("path", GOLDEN_FILES, ids=[load_golden(p)["scenario"] for p in GOLDEN_FILES])
def test_scenario_matches_golden(path):
    golden = load_golden(path)
    assert (ROOT / golden["scenario"]).is_file(), f"{path.name}: scenario {golden['scenario']} no longer exists"
    problems = compare(golden, run_golden(golden))
    assert not problems, report(problems)
