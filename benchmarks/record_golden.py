"""Record what every runnable scenario computes now: the golden files tests/test_golden.py
compares later runs against (run: python benchmarks/record_golden.py).

Recorded before the refactor of the network assembly (twin/build.py into component
builders, twin/engine.py split): the refactored code must give the same results, every
temperature within 0.01 K (tests/test_golden.py holds the tolerances).

A runnable scenario is a TOML file with a top-level ``name`` (the rule of
``twin.catalogue``) directly in scenarios/, scenarios/faults/ or scenarios/catalogue/;
the parts they include (scenarios/racks, cdus, facilities, workloads-full-power.toml) are
not. Each runs in this process through the public API (``twin.load_scenario``,
``twin.simulate``) for its own duration: the whole set takes about 20 s of wall time on
an idle two-core machine with a warm Numba cache, inside the test's budget of 40 s, so no
run is capped (``--cap S`` caps the long ones and the file records the cap).

Each scenario gives ``tests/data/golden/<path below scenarios/, "/" as "__">.json``:

- ``scenario`` (path from the repository root), ``duration_s`` (the duration the run was
  given: the test reuses it), ``scenario_duration_s``, ``duration_cap_s``, ``commit``
  (``git rev-parse HEAD``; ``dirty`` when twin/ or scenarios/ had uncommitted changes),
  ``time_step_s``;
- ``end``: whether the run completed, when it ended and why (a run may stop at a model
  limit, e.g. coolant boiling);
- ``margins``: every margin's value, unit, limit and status; ``verdict``;
- ``energy``: the run's energy accounting [J];
- ``events``: (time, kind, target) of the run's events, the first ``MAX_EVENTS``, and
  their count;
- ``telemetry``: the number of rows, the sampled rows (``SAMPLES`` evenly spaced from the
  first, plus the last) and their times; per channel its units, shape, the values at the
  sampled rows (for a 2-D channel a row of values per sampled row) and the maximum and
  minimum over the run (per column for a 2-D channel). A row of a 2-D channel whose
  columns all hold the same value (constant power, no throttling) is written as that one
  number;
- ``labels``: the channel labels, for information only (the test compares columns by
  position: labels may gain a rack prefix).

Numbers are rounded to 1e-6 (absolute) and written in their shortest form; a number that
is not finite is written as the string ``"nan"``, ``"inf"`` or ``"-inf"``.
"""
from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import twin  # noqa: E402

SCENARIOS = ROOT / "scenarios"
SCENARIO_DIRS = (SCENARIOS, SCENARIOS / "faults", SCENARIOS / "catalogue")
GOLDEN = ROOT / "tests" / "data" / "golden"
FORMAT = 1
SAMPLES = 10  # evenly spaced sample rows, the first row included; the last row is added
DIGITS = 6  # numbers rounded to 1e-6
MAX_EVENTS = 100  # events kept per scenario (the count is always kept)


def runnable_scenarios() -> list[Path]:
    """Every whole scenario (top-level ``name``) of SCENARIO_DIRS, sorted by path."""
    out = []
    for folder in SCENARIO_DIRS:
        for path in sorted(folder.glob("*.toml")):
            if "name" in tomllib.loads(path.read_text(encoding="utf-8")):
                out.append(path)
    return sorted(out)


def golden_path(scenario: Path) -> Path:
    rel = scenario.resolve().relative_to(SCENARIOS).with_suffix("").as_posix()
    return GOLDEN / (rel.replace("/", "__") + ".json")


def sample_rows(n_rows: int) -> list[int]:
    """SAMPLES evenly spaced rows from the first, plus the last."""
    if n_rows <= 0:
        return []
    rows = {int(round(i * (n_rows - 1) / SAMPLES)) for i in range(SAMPLES)}
    return sorted(rows | {n_rows - 1})


def num(x):
    """A JSON number rounded to 1e-6 (an integral value as an int), or "nan"/"inf"/"-inf"."""
    x = float(x)
    if not math.isfinite(x):
        return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")
    x = round(x, DIGITS)
    return int(x) if x.is_integer() and abs(x) < 2**53 else x


def nums(a):
    """Nested lists of :func:`num` of an array."""
    a = np.asarray(a, dtype=float)
    if a.ndim == 0:
        return num(a)
    return [nums(v) for v in a] if a.ndim > 1 else [num(v) for v in a]


def compact_row(a):
    """A row of a 2-D channel (its columns): one number when every column holds the same
    (after rounding), else the list."""
    out = nums(a)
    return out[0] if out and all(v == out[0] for v in out) else out


def commit() -> tuple[str, bool]:
    """HEAD's commit and whether twin/ or scenarios/ differ from it."""
    def git(*args):
        return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=True).stdout
    head = git("rev-parse", "HEAD").strip()
    dirty = bool(git("status", "--porcelain", "--", "twin", "scenarios").strip())
    return head, dirty


def summarize(scenario_path: Path, result, duration: float, scenario_duration: float,
              cap: float | None, head: str, dirty: bool) -> dict:
    """The golden record of one run (see the module docstring)."""
    tel = result.telemetry()
    n = int(tel.time.shape[0])
    rows = sample_rows(n)
    channels = {}
    for name in sorted(tel.channels):
        data = np.asarray(tel.channels[name], dtype=float)
        if data.shape[0]:
            hi, lo = data.max(axis=0), data.min(axis=0)  # NaN, if any, propagates
        else:
            hi = lo = np.full(data.shape[1:], np.nan)
        if data.ndim == 1:
            samples, hi, lo = nums(data[rows]), num(hi), num(lo)
        else:
            samples, hi, lo = [compact_row(data[r]) for r in rows], compact_row(hi), compact_row(lo)
        channels[name] = dict(units=tel.units[name], shape=list(data.shape), samples=samples, max=hi, min=lo)
    margins = {r.name: dict(value=num(r.value), unit=r.unit, limit=None if r.limit is None else num(r.limit),
                            status=r.status or None, integer=bool(r.integer))
               for r in result.margin_table.rows}
    end = result.end
    events = [[num(t), kind, target] for t, kind, target in result.events]
    return dict(
        format=FORMAT,
        scenario=scenario_path.resolve().relative_to(ROOT).as_posix(),
        duration_s=num(duration),
        scenario_duration_s=num(scenario_duration),
        duration_cap_s=None if cap is None else num(cap),
        commit=head,
        dirty=dirty,
        software_version=twin.__version__,
        time_step_s=num(result.scenario.simulation.time_step_s),
        end=dict(complete=bool(end.is_complete), end_time_s=num(end.time_s), reason=str(end.reason)),
        verdict=result.margin_table.verdict,
        margins=margins,
        energy={k: num(v) for k, v in result.energy.items()},
        events=dict(count=len(events), first=events[:MAX_EVENTS]),
        telemetry=dict(rows=n, sample_rows=rows, time=nums(tel.time[rows]), channels=channels),
        labels={k: list(v) for k, v in sorted(tel.labels.items())},
    )


def dumps(record: dict) -> str:
    """JSON with one line per top-level entry, per margin and per channel (small diffs)."""
    def flat(v):
        return json.dumps(v, separators=(",", ":"), allow_nan=False)

    def block(d, indent):
        pad = " " * indent
        return "{\n" + ",\n".join(f"{pad}{json.dumps(k)}: {flat(v)}" for k, v in d.items()) + "\n" + pad[:-1] + "}"

    lines = []
    for k, v in record.items():
        if k in ("margins", "energy", "labels"):
            text = block(v, 2)
        elif k == "telemetry":
            parts = [f'  "{kk}": {flat(vv)}' for kk, vv in v.items() if kk != "channels"]
            parts.append('  "channels": ' + block(v["channels"], 4))
            text = "{\n" + ",\n".join(parts) + "\n }"
        else:
            text = flat(v)
        lines.append(f" {json.dumps(k)}: {text}")
    return "{\n" + ",\n".join(lines) + "\n}\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("scenarios", nargs="*", type=Path, help="scenario files (default: every runnable scenario)")
    ap.add_argument("--cap", type=float, default=None, metavar="S",
                    help="run no scenario longer than S seconds (recorded in the file)")
    args = ap.parse_args(argv)
    paths = [p.resolve() for p in args.scenarios] or runnable_scenarios()
    head, dirty = commit()
    if dirty:
        print("warning: twin/ or scenarios/ have uncommitted changes; the files say dirty", file=sys.stderr)
    GOLDEN.mkdir(parents=True, exist_ok=True)
    total = 0.0
    for path in paths:
        scenario = twin.load_scenario(path)
        own = float(scenario.simulation.duration_s)
        duration = own if args.cap is None else min(own, args.cap)
        t0 = time.perf_counter()
        result = twin.simulate(scenario, duration_s=duration)
        record = summarize(path, result, duration, own, args.cap, head, dirty)
        seconds = time.perf_counter() - t0
        total += seconds
        out = golden_path(path)
        out.write_text(dumps(record), encoding="utf-8")
        json.loads(out.read_text(encoding="utf-8"))  # it reads back
        nan = [k for k, m in record["margins"].items() if isinstance(m["value"], str)]
        print(f"{record['scenario']:<46} {duration:>8g} s  {seconds:5.1f} s wall  "
              f"{out.stat().st_size / 1024:5.1f} kB  {record['verdict']:<10} {record['end']['reason']}"
              + (f"  non-finite margins: {', '.join(nan)}" if nan else ""), flush=True)
    print(f"{len(paths)} scenarios, {total:.1f} s of runs", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
