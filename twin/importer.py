"""Measured telemetry into the rack-twin format (docs/telemetry.md, *Importing measured
telemetry*).

A *source* (a CSV file, wide or long; a Parquet file; an HDF5 file, ours or a foreign one
with a time dataset per signal) and a *mapping* (TOML, validated: which source column is
which of our channels, in which unit, with which clock offset, and the output interval)
give a telemetry file of schema ``rack-twin-telemetry/1`` marked ``measured = true``.

Each source column keeps its own time stamps, rate and missing samples until the end:
every column is resampled onto one output grid by linear interpolation between its two
nearest valid samples, or NaN where those lie further apart than ``max_gap_s`` (a gap
stays a gap; nothing is extrapolated). Noise and quantisation are left as they are.
Cells that are not numbers become NaN and are counted; physically impossible values stop
the import (or become NaN with ``output.drop_out_of_range = true``). Samples that share a
time stamp are averaged. The writer writes ``OUT.partial`` and renames it when done.

    from twin.importer import import_telemetry, load_mapping
    import_telemetry("rack.csv", "mapping.toml", "rack.h5")
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .channels import is_scale_name, labels_key, member_dimension
from .errors import TwinInputError, did_you_mean
from .files import MAX_TOML_BYTES, is_hdf5, regular_file

# Unit conversions, exact by the definitions of the units (NIST SP 811, appendix B).
GALLON_L = 3.785411784  # a US gallon: 231 cubic inches [L]
PSI_KPA = 6.894757293168  # a pound-force per square inch [kPa]
# Source unit -> (our unit, scale, shift): ours = theirs * scale + shift (unit conversions).
UNITS = {
    "degC": ("degC", 1.0, 0.0),
    "degF": ("degC", 5.0 / 9.0, -32.0 * 5.0 / 9.0),
    "K": ("degC", 1.0, -273.15),
    "L/min": ("L/min", 1.0, 0.0),
    "gpm": ("L/min", GALLON_L, 0.0),
    "L/s": ("L/min", 60.0, 0.0),
    "m3/h": ("L/min", 1000.0 / 60.0, 0.0),
    "kPa": ("kPa", 1.0, 0.0),
    "Pa": ("kPa", 1e-3, 0.0),
    "psi": ("kPa", PSI_KPA, 0.0),
    "bar": ("kPa", 100.0, 0.0),
    "W": ("W", 1.0, 0.0),
    "kW": ("W", 1000.0, 0.0),
    "1": ("1", 1.0, 0.0),
    "%": ("1", 0.01, 0.0),
    "s": ("s", 1.0, 0.0),
}
TIME_UNITS = ("s", "ms", "iso")
# A CSV number's decimal mark: a point, or a comma (European exports, with delimiter ";").
DECIMALS = (".", ",")
# A cell that is a number but for a comma: a decimal comma, or a thousands separator.
_COMMA_NUMBER = re.compile(r"^\s*[+-]?\d+(,\d+)+\s*$")
RESAMPLE = ("interpolate", "mean")
# What no coolant, facility water or chip temperature sensor of a running rack reads
# [degC] (ASSUMPTION: glycol mixes freeze above -50 degC, chips shut down far below
# 150 degC): a value outside is a broken sensor, a unit error or garbage.
TEMP_MIN_C, TEMP_MAX_C = -50.0, 150.0
# Flows that may be negative (a stopped CDU's check-valve leakage, docs/telemetry.md).
SIGNED_FLOWS = frozenset({"cdu/flow"})
# Channel groups of one chip each (their power is one chip's: twin.scenario.MAX_CHIP_W).
CHIP_GROUPS = frozenset({"gpu", "cpu", "nvswitch"})
# Relative quantities (unit 1), held to 0 .. RELATIVE_MAX.
RELATIVE = frozenset({"pump_speed", "clock_fraction"})
# VFDs run pumps up to ~120 % of their base speed (twin.scenario, pump_speed_max), and a
# clock relative to nominal stays below that (ASSUMPTION); a percentage read as a
# fraction (72.5) is far above.
RELATIVE_MAX = 1.2
# The default max_gap_s, in output intervals (resampling rule: docs/telemetry.md).
GAP_INTERVALS = 3
# The resampled channels are held in memory before they are written (input size limit).
MAX_IMPORT_BYTES = 2_000_000_000
# A grid instant within this fraction of max_gap_s, or within this many units of float
# round-off of its value, of a sample's instant is that instant (numerical tolerance).
SNAP_GAP_FRACTION = 1e-9
ROUND_OFF = 64 * 2.0 ** -52  # 64 units in the last place, relative
# Parquet files begin and end with these four bytes (Apache Parquet file format).
PARQUET_MAGIC = b"PAR1"

_CHANNEL_NAME = re.compile(r"^[a-z][a-z0-9_]*/[a-z][a-z0-9_]*$")


# --------------------------------------------------------------------------- the mapping


@dataclass
class ChannelMap:
    """One of our channels and where it comes from."""

    name: str
    columns: list  # source column (or dataset, or long-format signal) names, member order
    per_member: bool  # columns given as a list: a (time, member) channel
    unit: str  # the source's unit
    ours: str  # our unit (after conversion)
    scale: float
    shift: float
    offset_s: float  # the sensor's clock is this far ahead of true time
    labels: list | None
    times: list | None  # HDF5: each column's time dataset
    max_gap_s: float | None
    resample: str = "interpolate"  # or "mean": the mean over each output interval


@dataclass
class Mapping:
    """A validated mapping file (see the module docstring and docs/telemetry.md)."""

    file: str
    text: str
    format: str | None
    layout: str | None
    time: str
    time_unit: str
    channel_column: str
    value_column: str
    delimiter: str
    decimal: str
    interval_s: float
    max_gap_s: float
    start_s: float | None
    end_s: float | None
    span_channels: list | None
    drop_out_of_range: bool
    channels: dict = field(default_factory=dict)

    def where(self, channel: str, key: str = "") -> str:
        """The dotted field of a channel's key, as errors name it."""
        return f'channels."{channel}"' + (f".{key}" if key else "")


_SPEC = {
    "": {"description": "text", "source": "table", "output": "table", "channels": "table"},
    "source": {"format": "text", "layout": "text", "time": "text", "time_unit": "text", "channel_column": "text",
               "value_column": "text", "delimiter": "text", "decimal": "text"},
    "output": {"interval_s": "number", "max_gap_s": "number", "start_s": "number", "end_s": "number",
               "span_channels": "texts", "drop_out_of_range": "bool"},
    "channel": {"columns": "text or texts", "unit": "text", "offset_s": "number", "labels": "texts",
                "time": "text or texts", "max_gap_s": "number", "resample": "text"},
}


def load_mapping(path) -> Mapping:
    """Read and validate a mapping file; bad input raises :class:`TwinInputError`."""
    from .sources import read_toml

    path = Path(path)
    st = regular_file(path, path, "", "mapping file")
    if st.st_size > MAX_TOML_BYTES:
        raise TwinInputError(path, "", f"{st.st_size} bytes: not a mapping file (limit {MAX_TOML_BYTES // 1_000_000} MB)")
    data = read_toml(path)
    return mapping_from_dict(data, path, path.read_text(encoding="utf-8"))


def mapping_from_dict(data: dict, file="<mapping>", text: str | None = None) -> Mapping:
    """Validate mapping data (as TOML gives it); errors name ``file`` and the field."""
    if text is None:
        import tomli_w
        text = tomli_w.dumps(data)

    def err(key, message):
        return TwinInputError(file, key, message)

    def check(table: dict, spec: dict, prefix: str):
        for key, value in table.items():
            where = f"{prefix}{key}"
            if key not in spec:
                raise err(where, "unknown key" + did_you_mean(key, spec))
            kind = spec[key]
            ok = {"text": isinstance(value, str),
                  "number": isinstance(value, (int, float)) and not isinstance(value, bool),
                  "bool": isinstance(value, bool),
                  "table": isinstance(value, dict),
                  "texts": isinstance(value, list) and all(isinstance(v, str) for v in value),
                  }.get(kind)
            if kind == "text or texts":
                ok = isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value))
            if not ok:
                shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
                want = {"text": "text", "number": "a number", "bool": "true or false", "table": "a table",
                        "texts": "a list of text", "text or texts": "text or a list of text"}[kind]
                raise err(where, f"expected {want}, got {shown}")
            if kind == "number" and not math.isfinite(value):
                raise err(where, f"{value} is not a finite number")

    check(data, _SPEC[""], "")
    src, out, chans = data.get("source", {}), data.get("output", {}), data.get("channels")
    check(src, _SPEC["source"], "source.")
    check(out, _SPEC["output"], "output.")

    def choice(key, value, allowed):
        if value is not None and value not in allowed:
            raise err(key, f"{value!r} is not one of " + ", ".join(repr(a) for a in allowed) + did_you_mean(value, allowed))
        return value

    fmt = choice("source.format", src.get("format"), ("csv", "parquet", "hdf5"))
    layout = choice("source.layout", src.get("layout"), ("wide", "long"))
    if "time_unit" not in src:
        raise err("source.time_unit", "required: the unit of the time column, one of 's', 'ms', 'iso'")
    time_unit = choice("source.time_unit", src["time_unit"], TIME_UNITS)
    for key in ("time", "channel_column", "value_column", "delimiter"):
        if key in src and not src[key]:
            raise err(f"source.{key}", "empty")
    delimiter = src.get("delimiter", ",")
    if len(delimiter) != 1:
        raise err("source.delimiter", f"expected one character, got {delimiter!r}")
    decimal = choice("source.decimal", src.get("decimal", "."), DECIMALS)
    if "interval_s" not in out:
        raise err("output.interval_s", "required: the output sample interval [s]")
    interval = float(out["interval_s"])
    if interval <= 0:
        raise err("output.interval_s", f"{interval:g} s: must be greater than 0")
    max_gap = float(out.get("max_gap_s", GAP_INTERVALS * interval))
    if max_gap <= 0:
        raise err("output.max_gap_s", f"{max_gap:g} s: must be greater than 0")
    start, end = out.get("start_s"), out.get("end_s")
    if start is not None and end is not None and not end > start:
        raise err("output.end_s", f"{end:g} s is not after output.start_s {start:g} s")
    if not isinstance(chans, dict) or not chans:
        raise err("channels", "required: a table of channels (channels.\"rack/supply_temp\" = {columns = ..., "
                              "unit = ...})")
    m = Mapping(file=str(file), text=text, format=fmt, layout=layout, time=src.get("time", "time"),
                time_unit=time_unit, channel_column=src.get("channel_column", "channel"),
                value_column=src.get("value_column", "value"), delimiter=delimiter, decimal=decimal, interval_s=interval,
                max_gap_s=max_gap, start_s=None if start is None else float(start),
                end_s=None if end is None else float(end), span_channels=out.get("span_channels"),
                drop_out_of_range=bool(out.get("drop_out_of_range", False)))
    known, shapes = _our_channels()
    for name, spec in chans.items():
        where = m.where(name)
        if not isinstance(spec, dict):
            raise err(where, "expected a table (columns, unit, ...)")
        if not _CHANNEL_NAME.match(name) or name.endswith("labels"):
            raise err(where, "not a channel name: expected group/quantity in lower case (rack/supply_temp, "
                             "gpu/junction_temp)" + did_you_mean(name, known))
        if is_scale_name(name):
            raise err(where, "the name of the format's time or member labels (docs/telemetry.md), not a channel")
        check(spec, _SPEC["channel"], where + ".")
        for key in ("columns", "unit"):
            if key not in spec:
                raise err(m.where(name, key), "required")
        cols = spec["columns"]
        per_member = isinstance(cols, list)
        cols = list(cols) if per_member else [cols]
        if not cols or any(not c for c in cols):
            raise err(m.where(name, "columns"), "empty column name" if cols else "empty list")
        if len(set(cols)) != len(cols):
            dup = next(c for c in cols if cols.count(c) > 1)
            raise err(m.where(name, "columns"), f"{dup!r} is listed twice")
        unit = spec["unit"]
        if unit not in UNITS:
            raise err(m.where(name, "unit"), f"unknown unit {unit!r}; known: " + ", ".join(UNITS)
                      + did_you_mean(unit, UNITS))
        ours, scale, shift = UNITS[unit]
        if name in known and known[name] != ours:
            raise err(m.where(name, "unit"), f"{unit!r} converts to {ours}, but {name} is in {known[name]}")
        shape = shapes.get(name)
        if shape == "member" and not per_member:
            raise err(m.where(name, "columns"), f"{name} has one column per member (time x member): give a list of "
                                                f"columns in member order, and their labels")
        if shape == "single" and per_member:
            raise err(m.where(name, "columns"), f"{name} is one value per sample: give one column, not a list")
        labels = spec.get("labels")
        if labels is not None:
            if not per_member:
                raise err(m.where(name, "labels"), "labels name the members of a channel given a list of columns")
            if len(set(labels)) != len(labels):
                raise err(m.where(name, "labels"), f"{next(x for x in labels if labels.count(x) > 1)!r} twice")
        times = spec.get("time")
        if times is not None:
            times = [times] * len(cols) if isinstance(times, str) else list(times)
            if len(times) != len(cols):
                raise err(m.where(name, "time"), f"{len(times)} time datasets for {len(cols)} columns")
        offset = float(spec.get("offset_s", 0.0))
        how = choice(m.where(name, "resample"), spec.get("resample", "interpolate"), RESAMPLE)
        gap = spec.get("max_gap_s")
        if gap is not None and not gap > 0:
            raise err(m.where(name, "max_gap_s"), f"{gap:g} s: must be greater than 0")
        m.channels[name] = ChannelMap(name=name, columns=cols, per_member=per_member, unit=unit, ours=ours,
                                      scale=scale, shift=shift, offset_s=offset, labels=labels, times=times,
                                      max_gap_s=None if gap is None else float(gap), resample=how)
    for i, name in enumerate(m.span_channels or []):
        if name not in m.channels:
            raise err(f"output.span_channels.{i}", f"{name!r} is not a channel of this mapping"
                      + did_you_mean(name, m.channels))
    if m.span_channels == []:
        raise err("output.span_channels", "empty list")
    _labels_agree(m, None)
    return m


def _our_channels() -> tuple[dict, dict]:
    """(channel -> our unit, channel -> 'member' | 'single' | 'either') of every channel a
    simulation writes (one rack, or a row)."""
    from .channels import channel_table
    from .telemetry import REQUIRED_CHANNELS

    chips = {"gpu": 1, "cpu": 1, "nvswitch": 1}
    one = channel_table(chips, 1, 1, n_jobs=1)
    row = channel_table(chips, 1, 1, n_jobs=1, n_racks=2, n_cdus=2)
    units = {**REQUIRED_CHANNELS, **{k: v[0] for k, v in {**one, **row}.items()}}
    shapes = {}
    for k in units:
        a = one[k][1] if k in one else None
        b = row[k][1] if k in row else None
        shapes[k] = "member" if (a is not None and k in one) else "single" if b is None else "either"
    return units, shapes


def labels_dataset(channel: str) -> str:
    """Where a 2-D channel's members are named (``gpu/labels``, ``cdu/pump_labels``:
    :attr:`twin.telemetry.Telemetry.labels`; docs/telemetry.md)."""
    return labels_key(member_dimension(channel))


def _labels_agree(m: Mapping, found: dict | None):
    """Channels that share a labels dataset name the same members."""
    seen: dict = {}
    for name, ch in m.channels.items():
        labels = ch.labels if found is None else found.get(name)
        if labels is None:
            continue
        key = labels_dataset(name)
        if key in seen and seen[key][1] != list(labels):
            raise TwinInputError(m.file, m.where(name, "labels"),
                                 f"differ from {seen[key][0]}'s: channels sharing {key} name the same members")
        seen.setdefault(key, (name, list(labels)))


# --------------------------------------------------------------------------- reading sources


@dataclass
class Series:
    """One source column: its time stamps [s] (epoch seconds for ISO times) and values in
    the source's unit (NaN where a cell is not a number), with what each row is called."""

    t: np.ndarray
    v: np.ndarray
    rows: object  # i -> "line 17" / "row 17" / "sample 16 of /x"
    non_numeric: int = 0
    empty: int = 0
    stored_units: str | None = None  # an HDF5 dataset's own units attribute
    column: str = ""  # its name in messages, where not the mapping's column name


@dataclass
class _Read:
    series: dict  # (channel, member index) -> Series
    truncated: str = ""  # why the file was cut, for the warning
    labels: dict = field(default_factory=dict)  # channel -> labels found in the source


def _line_rows(lines):
    return lambda i: f"line {lines[i]}"


def _index_rows(what="row", base=1, suffix=""):
    return lambda i: f"{what} {i + base}{suffix}"


def _numbers(cells) -> tuple[np.ndarray, int, int]:
    """Text cells -> (values, non-numeric count, empty count): NaN where a cell is empty or
    not a finite number."""
    empty = 0
    try:
        v = np.array(cells, dtype=float)
    except ValueError:
        v = np.empty(len(cells))
        for i, c in enumerate(cells):
            try:
                v[i] = float(c)
            except ValueError:
                v[i] = np.nan
                empty += not c.strip()
    bad = ~np.isfinite(v)
    v[bad] = np.nan
    return v, int(np.count_nonzero(bad)) - empty, empty


def _values(raw) -> tuple[np.ndarray, int, int]:
    """Cells as text (a list) or as Arrow gives numbers (values, null mask)."""
    if isinstance(raw, tuple) and len(raw) == 2 and isinstance(raw[0], np.ndarray):
        v, nulls = raw[0].astype(float), raw[1]
        bad = ~np.isfinite(v)
        empty = int(np.count_nonzero(nulls))
        v[bad] = np.nan
        return v, int(np.count_nonzero(bad)) - empty, empty
    return _numbers(raw)


def _parse_times(raw, unit: str, rows, file, field_, column: str) -> np.ndarray:
    """A time column -> seconds (epoch seconds for ISO): every cell must be a time, and
    the times must not go back (equal neighbours are allowed: their samples are averaged)."""
    if unit == "iso":
        t = _iso_seconds(raw, rows, file, field_, column)
        return _increasing(t, rows, file, field_, column, raw)
    if isinstance(raw, np.ndarray) and raw.dtype.kind in "fiu":
        t = raw.astype(float)
        bad = np.flatnonzero(~np.isfinite(t))
        if bad.size:
            raise TwinInputError(file, field_, f"{rows(int(bad[0]))}: {t[bad[0]]} in {column} is not a finite time")
    else:
        cells = [c.decode(errors="replace") if isinstance(c, bytes) else str(c) for c in raw]
        t, _, _ = _numbers(cells)
        bad = np.flatnonzero(~np.isfinite(t))
        if bad.size:
            shown = cells[bad[0]].strip()
            if not shown:
                raise TwinInputError(file, field_, f"{rows(int(bad[0]))}: empty cell in {column}")
            hint = " (ISO times? set source.time_unit = \"iso\")" if re.match(r"^\d{4}-\d\d-\d\d", shown) else ""
            raise TwinInputError(file, field_, f"{rows(int(bad[0]))}: {_short(shown)!r} in {column} is not a "
                                               f"finite time in {unit}" + hint)
    return _increasing(t / 1000.0 if unit == "ms" else t, rows, file, field_, column)


def _increasing(t, rows, file, field_, column, raw=None) -> np.ndarray:
    back = np.flatnonzero(np.diff(t) < 0)
    if back.size:
        i = int(back[0]) + 1
        now, before = (repr(_short(str(raw[i]).strip())), repr(_short(str(raw[i - 1]).strip()))) if raw is not None \
            else (_secs(t[i]), _secs(t[i - 1]))
        raise TwinInputError(file, field_, f"{rows(i)}: time {now} in {column} is before the previous sample's "
                                           f"{before}: times must not go back")
    return t


def _iso_seconds(raw, rows, file, field_, column) -> np.ndarray:
    from datetime import datetime, timezone

    out = np.empty(len(raw))
    cache: dict = {}
    aware = None
    for i, c in enumerate(raw):
        c = c.decode(errors="replace") if isinstance(c, bytes) else c
        if not isinstance(c, str):
            raise TwinInputError(file, field_, f"{rows(i)}: {c!r} in {column} is not an ISO 8601 time "
                                               f"(source.time_unit = \"iso\")")
        if c in cache:
            out[i] = cache[c]
            continue
        try:
            d = datetime.fromisoformat(c.strip())
        except ValueError:
            raise TwinInputError(file, field_, f"{rows(i)}: {_short(c)!r} in {column} is not an ISO 8601 time "
                                               f"(source.time_unit = \"iso\")") from None
        has_zone = d.tzinfo is not None
        if aware is None:
            aware = has_zone
        elif aware != has_zone:
            raise TwinInputError(file, field_, f"{rows(i)}: {_short(c)!r} in {column}: the times mix ones with a "
                                               f"time zone and ones without")
        cache[c] = out[i] = (d if has_zone else d.replace(tzinfo=timezone.utc)).timestamp()
    return out


def _short(text: str, n: int = 24) -> str:
    return text if len(text) <= n else text[:n - 3] + "..."


def _missing(m: Mapping, where: str, name: str, available, what: str, source, hint: str = "") -> TwinInputError:
    """A mapping naming a column that is not in the source: the field and the near names
    (and ``hint``, when the near names are not the point)."""
    available = [str(a) for a in available]
    near = did_you_mean(name, available)
    if not near:
        listed = ", ".join(repr(a) for a in available[:8]) + (", ..." if len(available) > 8 else "")
        near = (f"; {what}s in the source: {listed}" if available else f"; the source has no {what}s") + hint
    return TwinInputError(m.file, where, f"no {what} {name!r} in {source}{near}")


def _delimiter_hint(m: Mapping, header: list) -> str:
    """A CSV header read as one column that holds another delimiter: say which to set."""
    seps = [c for c in ";\t|," if len(header) == 1 and c != m.delimiter and c in header[0]]
    return f"; one column: set source.delimiter = {seps[0]!r} in the mapping if the file is delimited by it" \
        if seps else ""


def _detect(path: Path, m: Mapping, head: bytes) -> str:
    if m.format:
        return m.format
    if is_hdf5(path):
        return "hdf5"
    if head[:4] == PARQUET_MAGIC:
        return "parquet"
    suffix = path.suffix.lower()
    if suffix in (".h5", ".hdf5", ".hdf"):
        return "hdf5"
    if suffix in (".parquet", ".pq"):
        return "parquet"
    return "csv"


def _read_csv(path: Path, m: Mapping) -> _Read:
    import csv
    import io

    raw = path.read_bytes()
    if not raw.strip():
        raise TwinInputError(path, "", "empty file: no header row")
    truncated = ""
    if not raw.endswith((b"\n", b"\r")):
        cut = max(raw.rfind(b"\n"), raw.rfind(b"\r"))
        if cut < 0:
            raise TwinInputError(path, "", "truncated: not one complete line (no line end)")
        truncated = f"the last line has no line end (a file cut short?): it was dropped ({len(raw) - cut - 1} bytes)"
        raw = raw[:cut + 1]
    if b"\x00" in raw:
        line = raw.count(b"\n", 0, raw.index(b"\x00")) + 1
        raise TwinInputError(path, "", f"line {line}: NUL byte: not a text CSV file")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise TwinInputError(path, "", f"not a text CSV file: byte {exc.start} is not UTF-8") from None
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=m.delimiter)
    try:
        header = [h.strip() for h in next(reader, [])]
        while not any(header):
            header = [h.strip() for h in next(reader)]
        width = len(header)
        body, lines = [], []
        for row in reader:
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            if len(row) != width:
                raise TwinInputError(path, "", f"line {reader.line_num}: {len(row)} cells, the header has {width}")
            body.append(row)
            lines.append(reader.line_num)
    except StopIteration:
        raise TwinInputError(path, "", "no header row") from None
    except csv.Error as exc:
        raise TwinInputError(path, "", f"line {reader.line_num}: malformed CSV ({exc})") from None
    columns = [list(c) for c in zip(*body)] if body else [[] for _ in range(width)]
    long = _is_long(m, header)
    out = _Read(series={}, truncated=truncated)
    rows = _line_rows(lines)
    if m.time not in header:
        raise _missing(m, "source.time", m.time, header, "column", path, _delimiter_hint(m, header))
    if long:
        if m.value_column in header:
            i = header.index(m.value_column)
            columns[i] = _decimal_points(columns[i], m)
        if m.time_unit != "iso":
            i = header.index(m.time)
            columns[i] = _decimal_points(columns[i], m)
        _long_series(path, m, header, columns, rows, out, "column")
    else:
        t = _parse_times(_decimal_points(columns[header.index(m.time)], m, m.time_unit != "iso"), m.time_unit, rows,
                         path, "source.time", repr(m.time))
        for name, ch in m.channels.items():
            for k, col in enumerate(ch.columns):
                if col not in header:
                    raise _missing(m, m.where(name, "columns"), col, header, "column", path)
                if header.count(col) > 1:
                    raise TwinInputError(path, m.where(name, "columns"), f"column {col!r} appears twice in the header")
                cells = _decimal_points(columns[header.index(col)], m)
                v, bad, empty = _numbers(cells)
                _no_comma_numbers(path, m, name, col, cells, v, rows)
                out.series[(name, k)] = Series(t, v, rows, bad, empty)
    if not body:
        raise TwinInputError(path, "", "no data rows after the header")
    return out


def _decimal_points(cells, m: Mapping, numeric: bool = True) -> list:
    """A CSV column's text cells, a decimal comma (``source.decimal = ","``) made a point."""
    if m.decimal == "," and numeric:
        return [c.replace(",", ".") for c in cells]
    return list(cells)


def _no_comma_numbers(path, m: Mapping, name: str, col: str, cells, v, rows):
    """A cell that is not a number but for a comma (``30,5``, ``1,250``) is an error, not a
    dropped sample: a decimal comma the mapping does not declare, or a thousands
    separator, would otherwise lose every such value without a word."""
    if m.decimal == "," or not np.isnan(v).any():
        return
    for i in np.flatnonzero(np.isnan(v)):
        c = cells[i]
        if isinstance(c, str) and _COMMA_NUMBER.match(c):
            raise TwinInputError(path, m.where(name), f"{rows(int(i))}: {_short(c.strip())!r} in {col!r} is a number "
                                                      f"with a comma: a decimal comma (set source.decimal = \",\") or a "
                                                      f"thousands separator (remove it)")


def _is_long(m: Mapping, names) -> bool:
    if m.layout:
        return m.layout == "long"
    mapped = {c for ch in m.channels.values() for c in ch.columns}
    return m.channel_column in names and m.value_column in names and not mapped & set(names)


def _long_series(path, m: Mapping, header, columns, rows, out: _Read, what):
    """Long layout (time, channel, value): one series per signal named in the channel column.
    ``columns``: the source's columns in ``header`` order, each a sequence of text cells or
    (values, null mask) as Arrow gives numbers."""
    for key, name in (("source.channel_column", m.channel_column), ("source.value_column", m.value_column)):
        if name not in header:
            raise _missing(m, key, name, header, what, path)
    names = columns[header.index(m.channel_column)]
    if isinstance(names, tuple):  # numeric signal identifiers (Arrow)
        names = ["" if null else f"{x:g}" for x, null in zip(*names)]
    signals = np.asarray([str(x).strip() for x in names], dtype=object)
    t_all = columns[header.index(m.time)]
    v_all = columns[header.index(m.value_column)]
    present = sorted(set(signals.tolist()))
    for name, ch in m.channels.items():
        for k, col in enumerate(ch.columns):
            idx = np.flatnonzero(signals == col)
            if not idx.size:
                raise _missing(m, m.where(name, "columns"), col, present, f"signal (in {m.channel_column!r})", path)
            sub_rows = (lambda ix: lambda i: rows(int(ix[i])))(idx)
            t = _times_of(_take(t_all, idx), m, sub_rows, path, f"{m.time!r} (signal {col!r})")
            cells = _take(v_all, idx)
            v, bad, empty = _values(cells)
            if isinstance(cells, list):
                _no_comma_numbers(path, m, name, col, cells, v, sub_rows)
            out.series[(name, k)] = Series(t, v, sub_rows, bad, empty)


def _times_of(raw, m: Mapping, rows, path, column=None) -> np.ndarray:
    """The time column's cells (text, Arrow numbers, or seconds already parsed) -> seconds."""
    if isinstance(raw, tuple) and len(raw) == 2 and isinstance(raw[0], np.ndarray):
        values, nulls = raw
        if nulls.any():
            raise TwinInputError(path, "source.time", f"{rows(int(np.argmax(nulls)))}: empty cell in {m.time!r}")
        raw = values
    column = repr(m.time) if column is None else column
    if isinstance(raw, _Seconds):
        return _increasing(raw.t, rows, path, "source.time", column)
    return _parse_times(raw, m.time_unit, rows, path, "source.time", column)


class _Seconds:
    """Time stamps already in seconds (Arrow timestamps)."""

    def __init__(self, t):
        self.t = t

    def __getitem__(self, idx):
        return _Seconds(self.t[idx])


def _take(column, idx):
    if isinstance(column, tuple) and isinstance(column[0], np.ndarray):
        return tuple(c[idx] for c in column)
    if isinstance(column, (np.ndarray, _Seconds)):
        return column[idx]
    return [column[i] for i in idx]


def _read_parquet(path: Path, m: Mapping) -> _Read:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:  # pragma: no cover - a dependency of the package
        raise TwinInputError(path, "", "reading Parquet needs pyarrow (pip install pyarrow)") from None
    broken = (pa.ArrowException, OSError, ValueError, TypeError)
    try:
        pf = pq.ParquetFile(path)
        names = list(pf.schema_arrow.names)
    except broken as exc:
        raise TwinInputError(path, "", f"not a readable Parquet file (truncated or corrupt): {_first_line(exc)}") \
            from None
    if m.time not in names:
        raise _missing(m, "source.time", m.time, names, "column", path)
    long = _is_long(m, names)
    if long:
        wanted = [m.time, m.channel_column, m.value_column]
        for key, name in (("source.channel_column", m.channel_column), ("source.value_column", m.value_column)):
            if name not in names:
                raise _missing(m, key, name, names, "column", path)
    else:
        wanted = [m.time]
        for name, ch in m.channels.items():
            for col in ch.columns:
                if col not in names:
                    raise _missing(m, m.where(name, "columns"), col, names, "column", path)
                if names.count(col) > 1:
                    raise TwinInputError(path, m.where(name, "columns"), f"column {col!r} appears twice")
                wanted.append(col)
    wanted = list(dict.fromkeys(wanted))
    try:
        table = pf.read(columns=wanted)
        columns = {name: _arrow_values(table.column(name), name == m.time, m, path) for name in wanted}
    except TwinInputError:
        raise
    except broken as exc:
        raise TwinInputError(path, "", f"not a readable Parquet file (truncated or corrupt): {_first_line(exc)}") \
            from None
    rows = _index_rows("row")
    out = _Read(series={})
    if long:
        header = [m.time, m.channel_column, m.value_column]
        _long_series(path, m, header, [columns[h] for h in header], rows, out, "column")
        return out
    t = _times_of(columns[m.time], m, rows, path)
    for name, ch in m.channels.items():
        for k, col in enumerate(ch.columns):
            v, bad, empty = _values(columns[col])
            out.series[(name, k)] = Series(t, v, rows, bad, empty)
    return out


def _first_line(exc) -> str:
    text = str(exc).strip().splitlines()
    return _short(text[0], 120) if text else exc.__class__.__name__


def _arrow_values(col, is_time: bool, m: Mapping, path):
    """An Arrow column as (numbers, null mask), as text cells, or (a time column of time
    stamps) as seconds since the epoch."""
    import pyarrow as pa

    kind = col.type
    if is_time and (pa.types.is_timestamp(kind) or pa.types.is_date(kind)):
        if m.time_unit != "iso":
            raise TwinInputError(m.file, "source.time_unit", f"column {m.time!r} of {path} holds time stamps "
                                                             f"({kind}): set time_unit = \"iso\"")
        if col.null_count:
            i = int(np.argmax(np.asarray(col.is_null())))
            raise TwinInputError(path, "source.time", f"row {i + 1}: empty cell in {m.time!r}")
        if pa.types.is_date(kind):
            col = col.cast(pa.timestamp("s"))
        return _Seconds(col.cast(pa.timestamp("ns")).cast(pa.int64()).to_numpy().astype(float) / 1e9)
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind) \
            or pa.types.is_decimal(kind):
        values = col.cast(pa.float64()).to_numpy(zero_copy_only=False).astype(float)
        nulls = np.asarray(col.is_null()) if col.null_count else np.zeros(values.size, dtype=bool)
        values[nulls] = np.nan
        return values, nulls
    return ["" if x is None else str(x) for x in col.to_pylist()]


def _read_hdf5(path: Path, m: Mapping) -> _Read:
    from .telemetry import open_hdf5

    f = open_hdf5(path)
    damaged = (OSError, RuntimeError, KeyError, ValueError, TypeError, IndexError, UnicodeDecodeError)
    try:
        with f:
            return _read_hdf5_open(f, path, m)
    except TwinInputError:
        raise
    except damaged as exc:
        raise TwinInputError(path, "", f"corrupt HDF5 structure ({exc.__class__.__name__})") from None


def _read_hdf5_open(f, path: Path, m: Mapping) -> _Read:
    import h5py

    from .telemetry import member_labels

    names: list = []
    f.visititems(lambda k, obj: names.append(k) if isinstance(obj, h5py.Dataset) else None)
    out = _Read(series={})
    cache: dict = {}

    def dataset(key, where):
        key = key.lstrip("/")
        if key in cache:
            return cache[key]
        obj = f.get(key)
        if not isinstance(obj, h5py.Dataset):
            raise _missing(m, where, key, names, "dataset", path)
        try:
            data = obj[()]
        except (OSError, RuntimeError, ValueError, TypeError) as exc:
            raise TwinInputError(path, key, f"unreadable dataset (corrupt or truncated: "
                                            f"{exc.__class__.__name__})") from None
        units = obj.attrs.get("units")
        units = units.decode(errors="replace") if isinstance(units, bytes) else units
        cache[key] = (data, units if isinstance(units, str) else None)
        return cache[key]

    for name, ch in m.channels.items():
        members = []
        for k, col in enumerate(ch.columns):
            tkey = ch.times[k] if ch.times else m.time
            twhere = m.where(name, "time") if ch.times else "source.time"
            data, units = dataset(col, m.where(name, "columns"))
            traw, tunits = dataset(tkey, twhere)
            if traw.ndim != 1:
                raise TwinInputError(path, tkey, f"a time dataset has one value per sample, got shape {traw.shape}")
            if tunits in ("s", "ms") and tunits != m.time_unit:
                raise TwinInputError(m.file, twhere, f"{tkey!r} of {path} is in {tunits} (its units attribute), "
                                                     f"the mapping says source.time_unit = {m.time_unit!r}")
            rows = _index_rows("sample", 0, f" of {tkey}")
            traw_in = traw if traw.dtype.kind in "fiu" else list(traw)
            t = _parse_times(traw_in, m.time_unit, rows, path, twhere, repr(tkey))
            if data.ndim not in (1, 2) or data.dtype.kind not in "fiub":
                raise TwinInputError(path, col, f"expected numbers of shape (time,) or (time, member), got "
                                                f"{data.dtype} of shape {data.shape}")
            if data.shape[0] != t.size:
                raise TwinInputError(path, col, f"{data.shape[0]} samples but its time dataset {tkey!r} has {t.size}")
            block = data.astype(float).reshape(t.size, -1)
            for j in range(block.shape[1]):
                v = block[:, j].copy()
                bad = ~np.isfinite(v)
                v[bad] = np.nan
                label = col if block.shape[1] == 1 else f"{col}[:, {j}]"
                members.append(Series(t, v, _index_rows("sample", 0, f" of {label}"), int(np.count_nonzero(bad)), 0,
                                      units, label))
            if data.ndim == 2 and ch.labels is None and len(ch.columns) == 1:
                lab = member_labels(f, col.lstrip("/"))
                if lab is not None:
                    out.labels[name] = lab
        if not ch.per_member and len(members) != 1:
            raise TwinInputError(m.file, m.where(name, "columns"), f"{ch.columns[0]!r} of {path} has "
                                                                   f"{len(members)} columns: give a list, and labels")
        for k, s in enumerate(members):
            out.series[(name, k)] = s
    return out


# --------------------------------------------------------------------------- resampling


def resample(t: np.ndarray, v: np.ndarray, grid: np.ndarray, max_gap_s: float) -> np.ndarray:
    """Values at ``grid`` from samples ``(t, v)`` (t increasing, v finite): the sample
    itself at its own instant, else linear interpolation between the two nearest samples on
    either side, or NaN where those are further apart than ``max_gap_s`` or one is missing
    (no extrapolation)."""
    out = np.full(grid.size, np.nan)
    n = t.size
    if n == 0 or grid.size == 0:
        return out
    right = np.searchsorted(t, grid, side="right")  # first sample after each instant
    i = np.clip(right - 1, 0, n - 1)
    j = np.clip(right, 0, n - 1)
    inside = (right >= 1) & (right < n)
    span = t[j] - t[i]
    ok = inside & (span <= max_gap_s)
    with np.errstate(invalid="ignore", divide="ignore"):
        w = np.where(ok, (grid - t[i]) / np.where(span > 0, span, 1.0), 0.0)
    out[ok] = v[i[ok]] + w[ok] * (v[j[ok]] - v[i[ok]])
    # an instant on (or within round-off of) a sample takes that sample, also at either end
    tol = np.maximum(SNAP_GAP_FRACTION * max_gap_s, ROUND_OFF * np.abs(grid))
    for k in (i, j):
        hit = np.abs(t[k] - grid) <= tol
        out[hit] = v[k[hit]]
    return out


def interval_mean(t: np.ndarray, v: np.ndarray, grid: np.ndarray, width: float, max_gap_s: float) -> np.ndarray:
    """The mean over ``(g - width, g]`` of the linear interpolant of samples ``(t, v)`` (t
    increasing, v finite), for each ``g`` of ``grid``: how our format holds powers and
    heats (interval means). NaN where the interval reaches past the samples or across two
    samples further apart than ``max_gap_s``."""
    out = np.full(grid.size, np.nan)
    n = t.size
    if n < 2 or grid.size == 0:
        return out
    seg = np.diff(t)
    slope = np.diff(v) / seg
    area = np.concatenate([[0.0], np.cumsum((v[:-1] + v[1:]) / 2 * seg)])  # integral from t[0] to t[i]
    gaps = np.concatenate([[0], np.cumsum(seg > max_gap_s)])  # wide segments before sample i
    tol = np.maximum(SNAP_GAP_FRACTION * max_gap_s, ROUND_OFF * np.abs(grid))
    a, b = grid - width, grid
    ok = (a >= t[0] - tol) & (b <= t[-1] + tol)
    a, b = np.clip(a, t[0], t[-1]), np.clip(b, t[0], t[-1])
    ia = np.clip(np.searchsorted(t, a, side="right") - 1, 0, n - 2)  # the segment a starts in
    ib = np.clip(np.searchsorted(t, b, side="left") - 1, 0, n - 2)  # the segment b ends in
    ok &= gaps[ib + 1] == gaps[ia]

    def integral(x, i):
        dx = x - t[i]
        return area[i] + dx * (v[i] + 0.5 * slope[i] * dx)

    out[ok] = ((integral(b, ib) - integral(a, ia)) / width)[ok]
    return out


@dataclass
class _Column:
    """A source column ready to resample, with what was done to it."""

    t: np.ndarray
    v: np.ndarray
    name: str
    non_numeric: int
    empty: int
    out_of_range: int
    duplicates: int
    interval_s: float


def _prepare(m: Mapping, ch: ChannelMap, k: int, s: Series, source) -> _Column:
    """A source column in our unit, checked, its clock offset removed, its duplicate time
    stamps averaged and its invalid samples dropped."""
    col = s.column or ch.columns[k]
    if s.stored_units in UNITS and s.stored_units != ch.unit:  # a units attribute we can read disagrees
        raise TwinInputError(m.file, m.where(ch.name, "unit"), f"{ch.unit!r}, but {col!r} of {source} is in "
                                                               f"{s.stored_units!r} (its units attribute)")
    t, v = s.t, s.v * ch.scale + ch.shift
    valid = np.isfinite(v)
    lo, hi = _range(ch)
    out_of_range = 0
    with np.errstate(invalid="ignore"):
        bad = valid & ((v < lo) | (v > hi))
    if bad.any():
        if not m.drop_out_of_range:
            i = int(np.argmax(bad))
            shown = f"{v[i]:g} {ch.ours}" + ("" if ch.unit == ch.ours else f" ({s.v[i]:g} {ch.unit})")
            allowed = (f"below {lo:g} {ch.ours}" if v[i] < lo else f"outside {lo:g}-{hi:g} {ch.ours}"
                       if math.isfinite(lo) else f"above {hi:g} {ch.ours}")
            raise TwinInputError(source, m.where(ch.name), f"{s.rows(i)} (t = {_secs(t[i])}): {shown} in {col!r} is "
                                                          f"{allowed}: not a physical value (output.drop_out_of_range"
                                                          f" = true imports it as NaN)")
        out_of_range = int(np.count_nonzero(bad))
        valid &= ~bad
    t, v = t[valid] - ch.offset_s, v[valid]
    duplicates = 0
    if t.size > 1 and np.any(np.diff(t) == 0):
        uniq, first, counts = np.unique(t, return_index=True, return_counts=True)
        v = np.add.reduceat(v, first) / counts
        duplicates = int(t.size - uniq.size)
        t = uniq
    if t.size == 0:
        raise TwinInputError(source, m.where(ch.name), f"no numeric value in {col!r}")
    interval = float(np.median(np.diff(t))) if t.size > 1 else math.nan
    return _Column(t, v, col, s.non_numeric, s.empty, out_of_range, duplicates, interval)


def _secs(t: float) -> str:
    return f"{t:.6g} s" if abs(t) < 1e6 else f"{t:.3f} s"


def _range(ch: ChannelMap):
    """(lowest, highest) physical value in our unit (infinite where unbounded): what a
    sensor of a running rack can read; the limits of flows, pressures and chip power are
    the scenario format's (twin.scenario, with their sources)."""
    from .scenario import MAX_CHIP_W, MAX_FLOW_LPM, MAX_KPA

    group, quantity = ch.name.split("/", 1)
    if ch.ours == "degC":
        return TEMP_MIN_C, TEMP_MAX_C
    if ch.ours == "L/min":
        return (-MAX_FLOW_LPM if ch.name in SIGNED_FLOWS else 0.0), MAX_FLOW_LPM
    if ch.ours == "kPa":
        return -MAX_KPA, MAX_KPA
    if ch.ours == "W" and quantity == "power" and group in CHIP_GROUPS:
        return 0.0, MAX_CHIP_W
    if ch.ours == "W" and quantity.endswith("power"):  # electrical power drawn (heats may be negative)
        return 0.0, math.inf
    if ch.ours == "1" and quantity in RELATIVE:
        return 0.0, RELATIVE_MAX
    return -math.inf, math.inf


# --------------------------------------------------------------------------- the import


def import_telemetry(source, mapping, out, on_warning=None) -> Path:
    """Import ``source`` with ``mapping`` (a path, or a :class:`Mapping`) into the telemetry
    file ``out``; returns its path. Bad input raises :class:`TwinInputError` and leaves no
    file. ``on_warning(text)`` receives the warnings (default: :func:`warnings.warn`): a
    truncated CSV whose complete lines were imported, averaged duplicate time stamps."""
    report = _import(source, mapping, out)
    for text in report["warnings"]:
        if on_warning is None:
            import warnings
            warnings.warn(text, stacklevel=2)
        else:
            on_warning(text)
    return report["path"]


def _import(source, mapping, out) -> dict:
    from .files import check_output

    m = mapping if isinstance(mapping, Mapping) else load_mapping(mapping)
    source, out = Path(source), Path(out)
    regular_file(source, source, "SOURCE", "source file")
    inputs = {source: "the source file"}
    if m.file != "<mapping>":
        inputs[Path(m.file)] = "the mapping file"
    check_output(out, inputs)
    with open(source, "rb") as fh:
        head = fh.read(8)
    if not head:
        raise TwinInputError(source, "", "empty file")
    fmt = _detect(source, m, head)
    for name, ch in m.channels.items():
        if ch.times is not None and fmt != "hdf5":
            raise TwinInputError(m.file, m.where(name, "time"), f"a time dataset per column is for HDF5 sources; "
                                                                f"{source} is read as {fmt} (its time: source.time)")
    read = {"csv": _read_csv, "parquet": _read_parquet, "hdf5": _read_hdf5}[fmt](source, m)
    labels = {}
    for name, ch in m.channels.items():
        if not ch.per_member:
            continue
        members = sum(1 for key in read.series if key[0] == name)
        labels[name] = ch.labels if ch.labels is not None else read.labels.get(name)
        if labels[name] is None:
            raise TwinInputError(m.file, m.where(name, "labels"), f"required: one label per member column ({members}), "
                                                                  f"in order: instance paths such as rack01/tray00/gpu0")
        if len(labels[name]) != members:
            raise TwinInputError(m.file, m.where(name, "labels"), f"{len(labels[name])} labels for {members} "
                                                                  f"member columns")
    _labels_agree(m, labels)
    origin = None
    if m.time_unit == "iso":  # seconds from the earliest time stamp of the source
        origin = min(float(np.min(s.t)) for s in read.series.values() if s.t.size)
        for s in read.series.values():
            s.t = s.t - origin
    cols: dict = {}
    for (name, k), s in sorted(read.series.items(), key=lambda item: (list(m.channels).index(item[0][0]), item[0][1])):
        cols.setdefault(name, []).append(_prepare(m, m.channels[name], k, s, source))
    for name, ch in m.channels.items():
        gap = ch.max_gap_s if ch.max_gap_s is not None else m.max_gap_s
        for c in cols[name]:
            if c.interval_s > gap:
                key = m.where(name, "max_gap_s") if ch.max_gap_s is not None else "output.max_gap_s"
                raise TwinInputError(m.file, key, f"{gap:g} s, but {c.name!r} is sampled every {c.interval_s:g} s "
                                                  f"(median): nearly every output sample of {name} would be a gap; "
                                                  f"set {m.where(name, 'max_gap_s')} to {3 * c.interval_s:g} or more "
                                                  f"to interpolate across its samples")
    grid = _grid(m, cols, source)
    data, meta = {}, {}
    for name, ch in m.channels.items():
        gap = ch.max_gap_s if ch.max_gap_s is not None else m.max_gap_s
        if ch.resample == "mean":
            block = np.column_stack([interval_mean(c.t, c.v, grid, m.interval_s, gap) for c in cols[name]])
        else:
            block = np.column_stack([resample(c.t, c.v, grid, gap) for c in cols[name]])
        data[name] = block if ch.per_member else block[:, 0]
        meta[name] = dict(
            source_columns=[c.name for c in cols[name]], source_unit=ch.unit, resample=ch.resample,
            source_interval_s=[c.interval_s for c in cols[name]], offset_s=ch.offset_s, max_gap_s=gap,
            nan_samples=int(np.count_nonzero(np.isnan(block))), non_numeric=sum(c.non_numeric for c in cols[name]),
            empty_cells=sum(c.empty for c in cols[name]), out_of_range=sum(c.out_of_range for c in cols[name]),
            duplicate_times=sum(c.duplicates for c in cols[name]))
    warnings = []
    if read.truncated:
        warnings.append(f"{source}: truncated: {read.truncated}; imported the complete lines (truncated = true)")
    for name, info in meta.items():
        if info["duplicate_times"]:
            warnings.append(f"{source}: {m.where(name)}: {info['duplicate_times']} samples shared a time stamp with "
                            f"another: averaged")
    _write(m, source, out, grid, data, meta, labels, bool(read.truncated), origin)
    return {"path": out, "warnings": warnings, "grid": grid, "meta": meta, "format": fmt}


def _grid(m: Mapping, cols: dict, source) -> np.ndarray:
    """The output instants: every ``interval_s`` from the latest first sample to the earliest
    last sample of the span channels (or ``output.start_s`` / ``end_s``), on whole
    multiples of ``interval_s`` (of the source's time axis) unless ``start_s`` is given."""
    from .telemetry import REQUIRED_CHANNELS

    span = m.span_channels or [n for n in m.channels if n in REQUIRED_CHANNELS] or list(m.channels)
    # an interval mean needs the whole interval before its instant
    firsts = {(n, c.name): float(c.t[0]) + (m.interval_s if m.channels[n].resample == "mean" else 0.0)
              for n in span for c in cols[n]}
    lasts = {(n, c.name): float(c.t[-1]) for n in span for c in cols[n]}
    if m.start_s is not None:
        start = m.start_s
    else:  # the first whole multiple of the interval at or after the latest first sample
        latest = max(firsts.values())
        start = math.ceil(latest / m.interval_s - SNAP_GAP_FRACTION) * m.interval_s
    end = m.end_s if m.end_s is not None else min(lasts.values())
    if end < start:
        late = max(firsts, key=firsts.get)
        early = min(lasts, key=lasts.get)
        raise TwinInputError(source, "", f"no time when every span channel has data: {late[0]} ({late[1]!r}) starts "
                                         f"at {_secs(firsts[late])}, {early[0]} ({early[1]!r}) ends at "
                                         f"{_secs(lasts[early])} (output.span_channels, start_s and end_s choose the "
                                         f"span)")
    n = int(math.floor((end - start) / m.interval_s * (1 + 1e-12) + 1e-9)) + 1
    width = sum(len(c) for c in cols.values())
    if n * (width + 1) * 8 > MAX_IMPORT_BYTES:
        raise TwinInputError(m.file, "output.interval_s", f"{n} output samples of {width} columns pass "
                                                          f"{MAX_IMPORT_BYTES / 1e9:g} GB in memory: choose a longer "
                                                          f"interval, or output.start_s and end_s")
    return start + m.interval_s * np.arange(n)


def _write(m, source, out, grid, data, meta, labels, truncated, origin):
    from . import __version__
    from .telemetry import SCHEMA, TelemetryWriter

    attrs = dict(schema=SCHEMA, software_version=__version__, source=str(source), measured=True,
                 mapping=m.text, mapping_file=m.file, truncated=truncated, interval_s=m.interval_s,
                 max_gap_s=m.max_gap_s, channel_sources=json.dumps(_json_safe(meta)),
                 time_origin="" if origin is None else _iso(origin))
    channels = {name: (m.channels[name].ours, data[name].shape[1] if data[name].ndim == 2 else None, "f8")
                for name in data}
    label_sets = {labels_dataset(name): list(v) for name, v in labels.items() if v is not None}
    try:
        w = TelemetryWriter(out, attrs, channels, label_sets)
    except BaseException:
        out.with_name(out.name + ".partial").unlink(missing_ok=True)
        raise
    try:
        w.append(grid, data)
        for name, info in meta.items():
            a = w.f[name].attrs
            for k, v in info.items():
                if isinstance(v, list) and v and isinstance(v[0], str):
                    import h5py
                    v = np.array(v, dtype=h5py.string_dtype())
                a[k] = v
        w.finish()
    except BaseException:
        w.abort()
        raise


def _json_safe(x):
    """NaN (a column of one sample has no interval) as null."""
    if isinstance(x, dict):
        return {k: _json_safe(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_json_safe(v) for v in x]
    return None if isinstance(x, float) and not math.isfinite(x) else x


def _iso(epoch_s: float) -> str:
    from datetime import datetime, timezone

    return datetime.fromtimestamp(epoch_s, tz=timezone.utc).isoformat()
