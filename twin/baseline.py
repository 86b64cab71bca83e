"""The margin baseline of ``twin check``: what each scenario's margins were when last accepted.

A readable TOML file in the repository, ``.twin/baseline.toml`` by default (beside the
``scenarios/`` catalogue, found beside the installed package). One table per scenario (by
catalogue name: ``faults/cdu-trip``) and one per scenario and margin::

    [scenario."row-8x-nvl72-w32"]
    duration_s = 3600.0          # what twin check simulates, and the values below were taken at
    reason = "why this duration"

    [margin."row-8x-nvl72-w32".gpu_junction_margin_k]
    value = 22.527               # in unit
    unit = "K"
    tolerance = 0.2              # absolute, in unit: a change within it is no change
    regression = "smaller"       # the direction that counts as worse: "smaller" or "larger"
    status = "ok"                # pass/fail margins: the status accepted ("fail": a known violation)
    reason = "initial baseline 2026-12-02"

Entries are compared, never silently rewritten: ``--update-baseline`` replaces only the
entries whose value moved beyond their tolerance (or whose status, unit or direction
changed), adds new ones and drops those whose margin is gone; every other line of the file,
comments included, stays as it was. Standard library only.
"""
from __future__ import annotations

import datetime
import difflib
import fnmatch
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from .errors import TwinInputError, did_you_mean

DEFAULT_PATH = Path(__file__).resolve().parent.parent / ".twin" / "baseline.toml"
SMALLER, LARGER = "smaller", "larger"
STATUSES = ("ok", "fail", "not judged")

# Figures (margins without a limit) that are checked against the baseline too, with the
# direction that is worse: hotter chips, more pressure drop or pump power, less
# ride-through, fewer training steps, more throttled GPU time. The rest (heat and flow per
# kW of the workload, the energy over the run) describe the load, not the cooling.
FIGURES = {
    "gpu_junction_max_c": LARGER,
    "gpu_junction_p95_c": LARGER,
    "worst_rack_gpu_junction_max_c": LARGER,
    "rack_dp_max_kpa": LARGER,
    "cdu_pump_power_mean_kw": LARGER,
    "ride_through_throttle_s": SMALLER,
    "ride_through_shutdown_s": SMALLER,
    "job_*_steps": SMALLER,
    "job_*_throttled_gpu_s": LARGER,
}

# Default tolerances by unit, (absolute in the unit, relative to the value): the larger
# applies, written into the baseline entry, where it can be edited. ASSUMPTION, not
# physics: each is well above the run-to-run round-off (runs are deterministic: 0) and the
# solver tolerances (REUSE_TOL_K 0.05 K), and below a change a reviewer would want to see:
# 0.2 K of junction or coolant temperature, 1 % of a ratio (flow ratio, goodput, balance),
# a second of throttling or ride-through (10 steps of 0.1 s), 1 kPa, 2 % of a power,
# no extra shutdown, 1 % of training steps.
TOLERANCES = {
    "K": (0.2, 0.0),
    "degC": (0.2, 0.0),
    "1": (0.01, 0.0),
    "s": (1.0, 0.0),
    "kPa": (1.0, 0.0),
    "kW": (0.05, 0.02),
    "GPU*s": (1.0, 0.02),
}
# Margins whose default tolerance is not their unit's (ASSUMPTION, as above): a count of
# shutdowns has no slack, training steps 1 % of the count.
TOLERANCE_BY_NAME = {
    "gpu_shutdowns": (0.0, 0.0),
    "job_*_steps": (0.0, 0.01),
}
FALLBACK_TOLERANCE = (0.0, 0.01)  # any other unit: 1 % (ASSUMPTION, as above)

ENTRY_FIELDS = {"value": "a number", "unit": "a string", "tolerance": "a number >= 0",
                "regression": "'smaller' or 'larger'", "status": "'ok', 'fail' or 'not judged'",
                "reason": "a string"}
REQUIRED = ("value", "unit", "tolerance", "regression", "reason")
SCENARIO_FIELDS = {"duration_s": "a number of seconds > 0", "reason": "a string"}


def _match(name: str, table: dict):
    for pattern, value in table.items():
        if fnmatch.fnmatchcase(name, pattern):
            return value
    return None


def figure_direction(name: str):
    """The worse direction of a figure checked against the baseline, else None."""
    return _match(name, FIGURES)


def default_tolerance(name: str, unit: str, value: float) -> float:
    absolute, relative = _match(name, TOLERANCE_BY_NAME) or TOLERANCES.get(unit, FALLBACK_TOLERANCE)
    tol = max(absolute, relative * abs(value)) if math.isfinite(value) else absolute
    return float(f"{tol:.3g}")


@dataclass
class Entry:
    value: float
    unit: str
    tolerance: float
    regression: str
    reason: str
    status: str | None = None

    def worse_by(self, value: float) -> float:
        """How far ``value`` is on the worse side of this entry (negative: better)."""
        return (self.value - value) if self.regression == SMALLER else (value - self.value)


@dataclass
class ScenarioEntry:
    duration_s: float
    reason: str


@dataclass
class Baseline:
    path: Path | None
    text: str = ""
    scenarios: dict = field(default_factory=dict)  # key -> ScenarioEntry
    margins: dict = field(default_factory=dict)  # (key, margin) -> Entry

    def margin_names(self, key: str) -> list:
        return [m for k, m in self.margins if k == key]


def _key(k: str) -> str:
    """A TOML key: bare where it can be, else quoted."""
    return k if k and all(c.isascii() and (c.isalnum() or c in "_-") for c in k) else _q(k)


def _field(kind: str, key: str, name: str = "", sub: str = "") -> str:
    """A dotted key of the baseline, as written in a table header and in error messages."""
    out = f"{kind}.{_q(key)}"
    if name:
        out += f".{_key(name)}"
    return out + (f".{sub}" if sub else "")


def _check_fields(path, where: str, table, allowed: dict | None = None, required=()) -> None:
    """``table`` is a table whose keys are among ``allowed`` (None: any) and include ``required``."""
    if not isinstance(table, dict):
        raise TwinInputError(path, where, f"must be a table, got {type(table).__name__}")
    for k in table if allowed is not None else ():
        if k not in allowed:
            raise TwinInputError(path, f"{where}.{k}", "unknown field" + did_you_mean(k, allowed)
                                 + f" (fields: {', '.join(allowed)})")
    for k in required:
        if k not in table:
            raise TwinInputError(path, f"{where}.{k}", f"missing ({allowed[k]})")


def _number(path, where, v, positive=False, nonnegative=False, finite=True) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise TwinInputError(path, where, f"must be a number, got {type(v).__name__} {v!r}")
    v = float(v)
    if finite and not math.isfinite(v):
        raise TwinInputError(path, where, f"must be finite, got {v}")
    if positive and not v > 0:
        raise TwinInputError(path, where, f"must be > 0, got {v:g}")
    if nonnegative and not v >= 0:
        raise TwinInputError(path, where, f"must be >= 0, got {v:g}")
    return v


def _string(path, where, v, choices=None) -> str:
    if not isinstance(v, str):
        raise TwinInputError(path, where, f"must be a string, got {type(v).__name__} {v!r}")
    if choices is not None and v not in choices:
        raise TwinInputError(path, where, f"must be one of {', '.join(repr(c) for c in choices)}, got {v!r}")
    return v


def load(path) -> Baseline:
    """Read and validate a baseline; a missing file is an error (TwinInputError)."""
    from .files import regular_file
    from .sources import read_toml

    path = Path(path)
    regular_file(path, field="--baseline", what="baseline file")
    text = path.read_text(encoding="utf-8", errors="replace")
    data = read_toml(path)
    return parse(data, path, text)


def parse(data: dict, path, text: str = "") -> Baseline:
    """A baseline from its parsed TOML (``text``: the file as written, kept for updates)."""
    b = Baseline(Path(path), text)
    for k in data:
        if k not in ("scenario", "margin"):
            raise TwinInputError(path, k, "unknown table" + did_you_mean(k, ("scenario", "margin"))
                                 + " (a baseline has [scenario.\"NAME\"] and [margin.\"NAME\".MARGIN] tables)")
    scen = data.get("scenario", {})
    _check_fields(path, "scenario", scen)
    for key, t in scen.items():
        where = _field("scenario", key)
        _check_fields(path, where, t, SCENARIO_FIELDS, tuple(SCENARIO_FIELDS))
        b.scenarios[key] = ScenarioEntry(_number(path, where + ".duration_s", t["duration_s"], positive=True),
                                         _string(path, where + ".reason", t["reason"]))
    margins = data.get("margin", {})
    _check_fields(path, "margin", margins)
    for key, table in margins.items():
        _check_fields(path, _field("margin", key), table)
        for name, t in table.items():
            where = _field("margin", key, name)
            _check_fields(path, where, t, ENTRY_FIELDS, REQUIRED)
            status = t.get("status")
            b.margins[(key, name)] = Entry(
                value=_number(path, where + ".value", t["value"], finite=False),
                unit=_string(path, where + ".unit", t["unit"]),
                tolerance=_number(path, where + ".tolerance", t["tolerance"], nonnegative=True),
                regression=_string(path, where + ".regression", t["regression"], (SMALLER, LARGER)),
                reason=_string(path, where + ".reason", t["reason"]),
                status=None if status is None else _string(path, where + ".status", status, STATUSES))
    return b


# --------------------------------------------------------------------------- writing


def _q(s: str) -> str:
    """A TOML basic string."""
    out = s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
    return f'"{out}"'


def _num(v: float) -> str:
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    if float(v).is_integer() and abs(v) < 1e15:
        return f"{float(v):.1f}"
    return repr(float(f"{v:.7g}"))


def margin_block(key: str, name: str, e: Entry) -> str:
    lines = [f"[{_field('margin', key, name)}]", f"value = {_num(e.value)}", f"unit = {_q(e.unit)}",
             f"tolerance = {_num(e.tolerance)}", f"regression = {_q(e.regression)}"]
    if e.status is not None:
        lines.append(f"status = {_q(e.status)}")
    lines.append(f"reason = {_q(e.reason)}")
    return "\n".join(lines) + "\n"


def scenario_block(key: str, s: ScenarioEntry) -> str:
    return f"[{_field('scenario', key)}]\nduration_s = {_num(s.duration_s)}\nreason = {_q(s.reason)}\n"


HEADER = """\
# The margin baseline of `twin check` (README.md, "Checking margins"; docs/check.md).
# One [scenario."NAME"] table per scenario (the simulated duration the values were taken at)
# and one [margin."NAME".MARGIN] table per margin: value, unit, tolerance (absolute, in the
# unit), regression (the worse direction), status (pass/fail margins: the accepted status)
# and reason. `twin check --update-baseline` rewrites only the entries that changed.
"""


def _blocks(text: str) -> list:
    """The file as [[table key path or None, text]]: a block is a table header, the
    full-line comments directly above it and the lines up to the next block; what comes
    before the first block (the file's header comment) is a block of its own (key None)."""
    lines = text.splitlines(keepends=True)
    starts = [i for i, ln in enumerate(lines) if ln.lstrip().startswith("[")]
    begin = []
    for i in starts:
        j = i
        while j > 0 and lines[j - 1].lstrip().startswith("#"):
            j -= 1
        begin.append(j)
    out = [[None, "".join(lines[:begin[0] if begin else len(lines)])]]
    for n, (b, i) in enumerate(zip(begin, starts)):
        end = begin[n + 1] if n + 1 < len(begin) else len(lines)
        out.append([_header_key(lines[i]), "".join(lines[b:end])])
    return out


def _header_key(line: str):
    """The key path of a table header line: ``[margin."a/b".x]`` -> ("margin", "a/b", "x")."""
    try:
        data = tomllib.loads(line)
    except tomllib.TOMLDecodeError:
        return None
    path = []
    while isinstance(data, dict) and len(data) == 1:
        k, data = next(iter(data.items()))
        path.append(k)
    return tuple(path)


def _replace(chunk: str, table: str) -> str:
    """A block with its table replaced: the comments above it and the blank lines after it kept."""
    lines = chunk.splitlines(keepends=True)
    h = next(i for i, ln in enumerate(lines) if ln.lstrip().startswith("["))
    blank = len(lines) - len(chunk.rstrip("\n").splitlines(keepends=True))
    return "".join(lines[:h]) + table + "\n" * max(blank, 0)


def update(baseline: Baseline, tables: dict, drop: set) -> str:
    """The baseline's text with ``tables`` (key path -> new table text, in the order new
    tables are to be added: a scenario's table before its margins') replacing or adding
    tables, and the tables whose key path is in ``drop`` removed; every other line as it was.
    A new table goes after the last table of its scenario, else at the end."""
    blocks = _blocks(baseline.text or HEADER)
    out = [b for b in blocks if b[0] not in drop]
    for b in out:
        if b[0] in tables:
            b[1] = _replace(b[1], tables[b[0]])
    have = {b[0] for b in out}
    for key, table in tables.items():
        if key in have:
            continue
        at = max((i for i, (k, _) in enumerate(out) if k and len(k) > 1 and k[1] == key[1]), default=len(out) - 1)
        if not out[at][1].endswith("\n\n"):
            out[at][1] = out[at][1].rstrip("\n") + "\n\n"
        out.insert(at + 1, [key, table + "\n"])
    return "".join(chunk for _, chunk in out).rstrip("\n") + "\n"


def diff(old: str, new: str, path) -> str:
    return "".join(difflib.unified_diff(old.splitlines(keepends=True), new.splitlines(keepends=True),
                                        f"a/{path}", f"b/{path}"))


def today() -> str:
    return datetime.date.today().isoformat()
