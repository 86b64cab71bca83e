"""Measured power traces for ``workload.replay``, read and checked once, before a run.

A trace is a CSV file (a time column [s] and a power column [W], named in the scenario)
or a rack-twin telemetry HDF5 file (its ``time`` and ``rack/it_power``). Every row is
read and checked: a cell that is empty, not a number, NaN or infinite, a negative or
absurd power, a time that does not increase, fewer than two rows or a trace that is zero
throughout is refused with the file, the field and the row. :func:`read_trace` is called
when the scenario is loaded (so a bad trace fails before anything is built) and again by
the run; the second call is served from a cache keyed on the file's size and mtime.
"""
from __future__ import annotations

import csv
import math
from functools import lru_cache
from pathlib import Path

import numpy as np

from .errors import TwinInputError, did_you_mean
from .files import is_hdf5, regular_file
from .scenario import MAX_TIME_S

# The largest power a trace may hold [W]: the biggest data-centre campuses draw 1-5 GW
# (ASSUMPTION: 10 GW is beyond any facility, so a larger value is a unit error or garbage).
MAX_TRACE_POWER_W = 1e10
COLUMN, TIME_COLUMN, FILE = "workload.replay.column", "workload.replay.time_column", "workload.replay.file"


def held(times_s) -> tuple[float, float]:
    """The trace time a trace's samples hold power over: each sample until the next
    (twin.workload.ReplaySource), the first also over the interval before it (a telemetry
    file records interval means at the interval's end: its first sample, at 1 s, is the
    mean over 0-1 s), the last over nothing after itself."""
    t = np.asarray(times_s, dtype=float)
    return float(t[0] - (t[1] - t[0])), float(t[-1])


def check_span(path, times_s, start_s: float, duration_s: float) -> None:
    """Refuse a run the trace does not cover: trace time ``start_s`` to ``start_s +
    duration_s`` must lie within what its samples hold (:func:`held`: from one interval
    before the first sample to the last). Past that the replay would have no power to
    give and the chips would idle, under a verdict of the whole run."""
    t0, t1 = held(times_s)
    a, b = float(start_s), float(start_s) + float(duration_s)
    slack = 1e-9 * max(1.0, abs(t0), abs(t1))  # round-off of times written in decimal
    if a < t0 - slack or b > t1 + slack:
        raise TwinInputError(path, FILE, f"covers trace time {t0:g} s to {t1:g} s and the run needs {a:g} s to {b:g} s "
                                                  "(workload.replay.start_s + simulation.duration_s): a shorter run, "
                                                  "another start_s or a longer trace")


def read_trace(path, column: str, time_column: str = "time") -> tuple[np.ndarray, np.ndarray]:
    """(times [s], power [W]) of a replay trace, checked; raises :class:`TwinInputError`."""
    path = Path(path)
    st = regular_file(path, path, FILE, "replay file")
    return _read(str(path.resolve()), column, time_column, st.st_mtime_ns, st.st_size)


@lru_cache(maxsize=8)
def _read(path: str, column: str, time_column: str, mtime_ns: int, size: int):  # noqa: ARG001 (cache key)
    p = Path(path)
    if is_hdf5(p) or p.suffix.lower() in (".h5", ".hdf5"):
        t, w = _read_hdf5(p)
    else:
        t, w = _read_csv(p, column, time_column)
    for a in (t, w):
        a.setflags(write=False)  # shared by every caller through the cache
    return t, w


def _read_hdf5(path: Path):
    from .telemetry import read_telemetry

    try:
        tel = read_telemetry(path)
    except TwinInputError as err:
        raise TwinInputError(path, FILE, f"{err.field}: {err.message}" if err.field else err.message) from None
    if "rack/it_power" not in tel.channels:
        raise TwinInputError(path, FILE, "rack/it_power: channel missing (a replay takes a telemetry file's "
                                         "rack IT power)")
    power = tel["rack/it_power"]
    if power.ndim != 1:
        raise TwinInputError(path, FILE, f"rack/it_power: expected one value per sample, got shape {power.shape}")
    rows = [f"sample {i}" for i in range(power.size)]
    return check_series(path, np.asarray(tel.time, dtype=float), np.asarray(power, dtype=float), rows,
                        ("time", FILE), ("rack/it_power", FILE))


def _read_csv(path: Path, column: str, time_column: str):
    if not column:
        raise TwinInputError(path, COLUMN, "name the CSV column of power [W]")
    cols = ((time_column, TIME_COLUMN), (column, COLUMN))
    values: list = []
    rows: list = []
    reader = None
    try:
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.reader(f)
            header = [h.strip() for h in next(reader, [])]
            if not header:
                raise TwinInputError(path, COLUMN, "no header row (an empty file?)")
            for name, field in cols:
                if name not in header:
                    raise TwinInputError(path, field, f"no column {name!r} in the header" + did_you_mean(name, header))
            index = [header.index(name) for name, _ in cols]
            for row in reader:
                if not row:
                    continue  # a blank line
                rows.append(f"row {reader.line_num}")
                values.append([_cell(row, i, name, field, rows[-1], path) for i, (name, field) in zip(index, cols)])
    except UnicodeDecodeError as exc:
        raise TwinInputError(path, FILE, f"not a text CSV file: byte {exc.start} is not UTF-8") from None
    except csv.Error as exc:
        raise TwinInputError(path, FILE, f"row {reader.line_num if reader else 1}: malformed CSV ({exc})") from None
    data = np.array(values, dtype=float).reshape(-1, 2)
    return check_series(path, data[:, 0], data[:, 1], rows, *cols)


def _cell(row, i, name, field, where, path) -> float:
    if i >= len(row):
        raise TwinInputError(path, field, f"{where}: no cell for {name!r} (the row has {len(row)})")
    text = row[i].strip()
    if not text:
        raise TwinInputError(path, field, f"{where}: empty cell in {name!r}")
    try:
        return float(text)
    except ValueError:
        shown = text if len(text) <= 20 else text[:17] + "..."
        raise TwinInputError(path, field, f"{where}: expected a number in {name!r}, got {shown!r}") from None


def check_series(path, t, w, rows, time_col, power_col):
    """Check a trace's samples; ``rows`` labels each sample, ``*_col`` are (name, field).
    Reports the first sample that breaks a rule (rules in the order below at a tie)."""
    (tn, tf), (pn, pf) = time_col, power_col
    if t.size < 2:
        raise TwinInputError(path, pf, f"needs at least 2 samples, found {t.size}")
    prev = np.concatenate([[-math.inf], t[:-1]])
    with np.errstate(invalid="ignore"):
        rules = [
            (~np.isfinite(t), tf, lambda i: f"{t[i]} in {tn!r} is not a finite time"),
            (~np.isfinite(w), pf, lambda i: f"{w[i]} in {pn!r} is not a finite power"),
            (np.abs(t) > MAX_TIME_S, tf, lambda i: f"time {t[i]:g} s in {tn!r} outside +-{MAX_TIME_S:g} s"),
            (w < 0, pf, lambda i: f"negative power {w[i]:g} W in {pn!r}"),
            (w > MAX_TRACE_POWER_W, pf, lambda i: f"{w[i]:g} W in {pn!r} is beyond {MAX_TRACE_POWER_W:g} W (10 GW)"),
            (t <= prev, tf, lambda i: f"time {t[i]:g} s in {tn!r} is not after the previous sample's {t[i - 1]:g} s"),
        ]
    first = [(int(np.argmax(bad)), k) for k, (bad, _, _) in enumerate(rules) if bad.any()]
    if first:
        i, k = min(first)
        _, field, say = rules[k]
        raise TwinInputError(path, field, f"{rows[i]}: {say(i)}")
    if not np.max(w) > 0:
        raise TwinInputError(path, pf, f"every power in {pn!r} is 0: nothing to scale chip power by")
    return t, w
