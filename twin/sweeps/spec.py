"""Sweep files: which scenario, which keys to vary and how, what to collect; and the plan
of runs they expand to.

A sweep file (TOML) names a ``base`` scenario (a path relative to the sweep file, or a
catalogue name) and the dotted keys to vary, the same keys ``twin run --set`` takes:

- ``[grid]``: each key a list of values or a range ``"a:b:n"`` (n values from a to b);
  the runs are the full factorial;
- ``[[list]]``: explicit rows, one run each;
- ``[sample]``: ``method = "random"`` or ``"latin_hypercube"`` (n runs), ``"sobol"`` or
  ``"morris"`` (a sensitivity design: n base samples / trajectories), with ``bounds`` per
  key and a ``seed``;
- ``[spread]``: ``replicates`` runs per design point, each with its own seed fed to the
  scenario's ``[[spread]]`` draws (and its ``workload.seed``), plus optional
  ``[[spread.draw]]`` entries added to the scenario's own.

The parts present are crossed (grid x list x sample x replicates). ``[set]`` fixes keys
for every run, ``duration_s`` the simulated time; ``[collect]`` names the margins
(default: every margin of the run) and the channel summaries (``{"rack/return_temp" =
"max"}``) each run returns.

Every run is identified by a hash of the base scenario's content (includes merged), its
overrides and what it collects: a restarted sweep skips the runs it already has.

Standard library and pydantic only (the schema): numpy, scipy and SALib are imported
when a sample is drawn.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, StrictBool, model_validator

from ..errors import TwinInputError
from ..scenario import MAX_TIME_S, Bounds, Spread, validate_as
from ..sources import key_parts, read_toml, set_dotted

Value = Union[StrictBool, int, float, str]
REDUCTIONS = ("max", "min", "mean", "last", "std", "p5", "p95")
Reduction = Literal["max", "min", "mean", "last", "std", "p5", "p95"]
SENSITIVITY = ("sobol", "morris")
# The largest sweep one file may plan: 10 million runs is beyond any cluster we would use
# and catches a factorial typo (ten keys of 100 values) before it allocates.
MAX_RUNS = 10_000_000


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, populate_by_name=True)


class Sample(_Model):
    method: Literal["random", "latin_hypercube", "sobol", "morris"]
    n: Annotated[int, Bounds(1, MAX_RUNS)] = Field(
        description="random, latin_hypercube: runs; sobol: base samples N (N (D+2) runs, a power of 2); "
                    "morris: trajectories (N (D+1) runs)")
    seed: Annotated[int, Bounds(0, 2**32 - 1)] = 0
    bounds: dict[str, tuple[float, float]] = Field(min_length=1, description="key -> [low, high]")
    second_order: StrictBool = Field(default=False, description="sobol: also second-order indices (N (2D+2) runs)")
    levels: Annotated[int, Bounds(2, 100)] = Field(default=4, description="morris: grid levels")

    @model_validator(mode="after")
    def _bounds(self):
        for key, (lo, hi) in self.bounds.items():
            if not lo < hi:
                raise ValueError(f"bounds: {_q(key)}: low {lo:g} must be below high {hi:g}")
        return self


class SweepSpread(_Model):
    replicates: Annotated[int, Bounds(1, MAX_RUNS)] = Field(description="runs per design point, one seed each")
    seed: Annotated[int, Bounds(0, 2**32 - 1)] = 0
    workload_seed: StrictBool = Field(default=True, description="also vary workload.seed (failures, stragglers)")
    draw: list[Spread] = Field(default_factory=list, description="[[spread]] entries added to the scenario's")


class Collect(_Model):
    margins: Optional[list[str]] = Field(default=None, description="margin names (default: every margin)")
    channels: dict[str, Union[Reduction, list[Reduction]]] = Field(
        default_factory=dict, description="telemetry channel -> reduction(s) over the run and every element")


class Sweep(_Model):
    name: Optional[str] = None
    description: str = ""
    base: str = Field(min_length=1, description="scenario file (relative to the sweep file) or catalogue name")
    duration_s: Optional[Annotated[float, Bounds(0, MAX_TIME_S, "s", lo_open=True)]] = Field(
        default=None, description="simulated time of every run [s] (default: the scenario's)")
    set: dict[str, Value] = Field(default_factory=dict, description="keys fixed for every run")
    grid: dict[str, Union[list[Value], str]] = Field(default_factory=dict)
    rows: list[dict[str, Value]] = Field(default_factory=list, alias="list")
    sample: Optional[Sample] = None
    spread: Optional[SweepSpread] = None
    collect: Collect = Field(default_factory=Collect)

    @model_validator(mode="after")
    def _design(self):
        if self.sample is not None and self.sample.method in SENSITIVITY:
            for part, present in (("grid", self.grid), ("list", self.rows), ("spread", self.spread)):
                if present:
                    raise ValueError(f"sample: a {self.sample.method} design is analysed as drawn: "
                                     f"give no [{part}] with it")
        return self


def _q(key: str) -> str:
    """A dotted key as a TOML table key (quoted: it holds dots)."""
    return json.dumps(key)


@dataclass
class Run:
    """One run of the plan: its index, hash, the varied values (the table's parameter
    columns) and every override it applies to the base scenario."""

    run: int
    hash: str
    params: dict
    overrides: dict

    def task(self) -> dict:
        return dict(run=self.run, hash=self.hash, params=self.params, overrides=self.overrides)


@dataclass
class Plan:
    file: str  # the sweep file (or "<sweep>" for a dict)
    spec: Sweep
    base_path: Path
    base_data: dict  # the base scenario, includes merged (what the workers build from)
    runs: list = field(default_factory=list)
    problem: Optional[dict] = None  # a sensitivity design's SALib problem
    samples: object = None  # and its sample matrix (runs x keys)

    @property
    def payload(self) -> dict:
        """What every worker needs once: the base scenario's data and how to collect."""
        c = self.spec.collect
        channels = {k: [v] if isinstance(v, str) else list(v) for k, v in c.channels.items()}
        return dict(path=str(self.base_path), data=self.base_data, margins=c.margins, channels=channels)

    @property
    def param_names(self) -> list:
        return list(dict.fromkeys(k for r in self.runs for k in r.params))


def load(sweep) -> Plan:
    """A sweep file path or a dict (paths relative to the current directory) -> its plan.
    Raises :class:`TwinInputError` naming the file and field."""
    if isinstance(sweep, dict):
        file, data, here = "<sweep>", sweep, Path.cwd()
    else:
        from ..files import regular_file

        path = Path(sweep)
        regular_file(path, path, "", "sweep file")
        file, data, here = str(path), read_toml(path), path.parent
    _finite_values(data, file)
    spec = validate_as(Sweep, _files_from(data, here), file)
    return plan(spec, file, here)


# Scenario fields whose value names a file: set, varied or listed in a sweep, a relative
# one is relative to the sweep file (a dict: to the working directory), as ``base`` is,
# not to the base scenario's folder.
FILE_KEYS = ("workload.replay.file",)


def _files_from(data: dict, here: Path) -> dict:
    """``data`` with the relative paths of :data:`FILE_KEYS` in ``set``, ``grid`` and
    ``list`` made absolute from ``here`` (a copy: a caller's dict is not changed)."""
    def fix(v):
        return str((here / v).resolve()) if isinstance(v, str) and v.strip() and not Path(v).is_absolute() else v

    def fixed(table: dict) -> dict:
        return {k: ([fix(x) for x in v] if isinstance(v, list) else fix(v)) if k in FILE_KEYS else v
                for k, v in table.items()}

    out = dict(data)
    for part in ("set", "grid"):
        if isinstance(data.get(part), dict):
            out[part] = fixed(data[part])
    if isinstance(data.get("list"), list):
        out["list"] = [fixed(r) if isinstance(r, dict) else r for r in data["list"]]
    return out


def _finite_values(data: dict, file) -> None:
    """A value of ``set``, ``grid`` or ``list`` a run could not take (TOML's nan, inf) is
    named here: the union of value types would report it in pydantic's words."""
    def check(where, value):
        if isinstance(value, float) and not math.isfinite(value):
            raise TwinInputError(file, where, f"must be a finite number, got {value}")

    for part in ("set", "grid"):
        table = data.get(part)
        for key, value in (table.items() if isinstance(table, dict) else ()):
            for i, v in enumerate(value) if isinstance(value, list) else [(None, value)]:
                check(f"{part}.{_q(key)}" + (f".{i}" if i is not None else ""), v)
    rows = data.get("list")
    for i, row in enumerate(rows if isinstance(rows, list) else ()):
        for key, v in (row.items() if isinstance(row, dict) else ()):
            check(f"list.{i}.{_q(key)}", v)


def _base(spec: Sweep, file, here: Path):
    """The base scenario's path and its merged data (replay traces made absolute)."""
    from ..catalogue import resolve
    from ..sources import gather, relative_base

    candidate = here / spec.base
    try:
        path = candidate if candidate.exists() else resolve(spec.base, "base")
    except TwinInputError as err:
        raise TwinInputError(file, "base", f"{spec.base}: {err.message}") from None
    try:
        src = gather(path)
    except TwinInputError as err:
        if err.file == str(path) and err.field in ("scenario", ""):
            raise TwinInputError(file, "base", f"{path}: {err.message}") from None
        raise
    replay = src.data.get("workload", {}).get("replay") if isinstance(src.data.get("workload"), dict) else None
    if isinstance(replay, dict) and isinstance(replay.get("file"), str) and not Path(replay["file"]).is_absolute():
        replay["file"] = str((relative_base(src.origins.get(("workload", "replay", "file"), path))
                              / replay["file"]).resolve())
    return path.resolve(), src.data


def _range(text: str, file, key: str) -> list:
    """``"a:b:n"``: n values from a to b (whole numbers stay whole when a, b and the step are)."""
    parts = text.split(":")
    bad = TwinInputError(file, f"grid.{_q(key)}", f"expected a list of values or a range 'a:b:n', got {text!r}")
    if len(parts) != 3:
        raise bad
    try:
        a, b, n = float(parts[0]), float(parts[1]), int(parts[2])
    except ValueError:
        raise bad from None
    if n < 1 or not (math.isfinite(a) and math.isfinite(b)) or n == 1 and a != b:
        raise TwinInputError(file, f"grid.{_q(key)}", f"range {text!r}: n must be at least 1 (1 only when a = b), "
                                                      "a and b finite")
    values = [a + (b - a) * i / (n - 1) for i in range(n)] if n > 1 else [a]
    whole = all(p.strip().lstrip("+-").isdigit() for p in parts[:2]) and all(float(v).is_integer() for v in values)
    return [int(round(v)) for v in values] if whole else values


def _design(spec: Sweep, file) -> tuple[list, Optional[dict], object]:
    """The design points (dicts of varied values), and a sensitivity design's problem and matrix."""
    parts, seen = [], {}

    def claim(key, where):
        if key in seen:
            raise TwinInputError(file, where, f"{_q(key)} is also varied or set in {seen[key]}")
        if not all(p.strip() for p in key_parts(key)):
            raise TwinInputError(file, where, "empty part in the dotted key")
        seen[key] = where.split(".")[0]

    for key in spec.set:
        claim(key, f"set.{_q(key)}")
    if spec.grid:
        axes = []
        for key, values in spec.grid.items():
            claim(key, f"grid.{_q(key)}")
            values = _range(values, file, key) if isinstance(values, str) else values
            if not values:
                raise TwinInputError(file, f"grid.{_q(key)}", "must not be empty")
            axes.append([(key, v) for v in values])
        n = math.prod(len(a) for a in axes)
        if n > MAX_RUNS:
            raise TwinInputError(file, "grid", f"{n:,} runs: more than {MAX_RUNS:,}")
        parts.append([dict(c) for c in itertools.product(*axes)])
    if spec.rows:
        for i, row in enumerate(spec.rows):
            for key in row:
                if key in seen and seen[key] != "list":
                    claim(key, f"list.{i}.{_q(key)}")
                seen[key] = "list"
        parts.append([dict(r) for r in spec.rows])
    problem = matrix = None
    if spec.sample is not None:
        sm = spec.sample
        for key in sm.bounds:
            claim(key, f"sample.bounds.{_q(key)}")
        names = list(sm.bounds)
        problem = dict(num_vars=len(names), names=names, bounds=[list(sm.bounds[k]) for k in names])
        from .sensitivity import draw

        matrix = draw(sm, problem)
        parts.append([{k: float(x) for k, x in zip(names, row)} for row in matrix])
    total = math.prod(len(p) for p in parts) * (spec.spread.replicates if spec.spread else 1)
    if total > MAX_RUNS:
        raise TwinInputError(file, "spread.replicates" if spec.spread else "sample.n",
                             f"{total:,} runs: more than {MAX_RUNS:,}")
    points = [{k: v for d in combo for k, v in d.items()} for combo in itertools.product(*parts)]
    return points, problem, matrix


def run_seed(base_seed: int, replicate: int) -> int:
    """The seed of replicate ``replicate``: independent streams from one sweep seed."""
    import numpy as np

    return int(np.random.SeedSequence([base_seed, replicate]).generate_state(1)[0])


def plan(spec: Sweep, file, here: Path) -> Plan:
    base_path, base_data = _base(spec, file, here)
    points, problem, matrix = _design(spec, file)
    fixed = dict(spec.set)
    if spec.duration_s is not None:
        fixed["simulation.duration_s"] = spec.duration_s
    sp = spec.spread
    reps = range(sp.replicates) if sp else [None]
    own = list(base_data.get("spread", []) or [])
    c = spec.collect
    collect = dict(margins=c.margins, channels=c.channels)
    content = json.dumps(base_data, sort_keys=True, default=str)
    runs, seen = [], {}
    for point in points:
        for rep in reps:
            params, overrides = dict(point), {**fixed, **point}
            if rep is not None:
                seed = run_seed(sp.seed, rep)
                params.update(replicate=rep, run_seed=seed)
                if sp.workload_seed:
                    overrides["workload.seed"] = seed
                entries = own + [d.model_dump(mode="json") for d in sp.draw]
                if entries:
                    overrides["spread"] = [{**e, "seed": seed} for e in entries]
            key = json.dumps(dict(base=content, overrides=overrides, collect=collect), sort_keys=True, default=str)
            # a design may repeat a point (Morris trajectories): the k-th repeat is a run of its own
            seen[key] = seen.get(key, -1) + 1
            digest = hashlib.sha256(f"{key}#{seen[key]}".encode()).hexdigest()[:20]
            runs.append(Run(len(runs), digest, params, overrides))
    p = Plan(file, spec, base_path, base_data, runs, problem, matrix)
    _check_keys(p)
    return p


def _check_keys(p: Plan) -> None:
    """The first run's keys must name fields of the base scenario: an unknown key (a typo)
    is the sweep file's error (exit 2), not a run that fails. A value out of range is a
    run's failure: other runs may be fine."""
    import copy

    from ..scenario import _validate

    if not p.runs:
        return
    data = copy.deepcopy(p.base_data)
    first = p.runs[0].overrides
    for key, value in first.items():
        try:
            set_dotted(data, key, value, p.file)
        except TwinInputError as err:
            raise TwinInputError(p.file, _where(p, key), f"{key}: {err.message}") from None
    try:
        _validate(data, p.base_path)
    except TwinInputError as err:
        structural = err.message.startswith(("unknown key", "expected a table", "no list element"))
        for key in first:
            if structural and (err.field == key or err.field.startswith(key + ".") or key.startswith(err.field + ".")):
                raise TwinInputError(p.file, _where(p, key), f"{err.field}: {err.message}") from None
        # a field the base lacks and no run sets (a rack fragment as the base): every run would fail
        varied = {k for r in p.runs for k in r.overrides}
        if err.message.startswith("required field is missing") and not any(
                err.field == k or err.field.startswith(k + ".") or k.startswith(err.field + ".") for k in varied):
            raise TwinInputError(p.file, "base", f"{p.base_path}: {err.field}: {err.message}") from None


def _where(p: Plan, key: str) -> str:
    """The sweep file field that sets a dotted scenario key."""
    s = p.spec
    if key in s.set:
        return f"set.{_q(key)}"
    if key in s.grid:
        return f"grid.{_q(key)}"
    if s.sample is not None and key in s.sample.bounds:
        return f"sample.bounds.{_q(key)}"
    if key == "simulation.duration_s":
        return "duration_s"
    if key in ("workload.seed", "spread"):
        return "spread"
    return f"list.0.{_q(key)}"
