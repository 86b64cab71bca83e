"""Telemetry in HDF5: one format for simulated and measured data (docs/telemetry.md).

Layout: a ``time`` dataset [s]; one dataset per channel, named ``group/quantity``
(``gpu/junction_temp``), shape (time,) or (time, member), each with a ``units`` attribute;
HDF5 dimension scales, as netCDF-4 has them (so ``xarray`` opens a group with its
coordinates): each group's own copy of ``time`` (``gpu/time``) and its members' labels
(``gpu/gpu``, ``cdu/pump``: instance paths); root attributes
``schema``, ``scenario`` (resolved scenario TOML), ``software_version``, ``coolant``,
``rack``, ``time_step_s``, what was asked (``source``, ``overrides``, ``duration_s``) and
how the run ended (``complete``, ``end_time_s``, ``end_reason``, ``verdict``); the group
``margins`` and the ``events`` table (docs/telemetry.md).

The writer streams: datasets are chunked and extended in whole chunks as rows arrive, so
memory is bounded by one write batch whatever the duration. It writes to ``PATH.partial``
and renames it when the run ends, also when it ends early (interrupted, or stopped at a
model limit: the file is whole, marked ``complete = false``); a run that fails with an
error leaves no file behind.
"""
from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from .channels import dim_of_labels, is_scale_name, labels_key, member_dimension
from .errors import TwinInputError
from .files import writing

_mem_ids = itertools.count()  # names of in-memory telemetry files (TelemetryWriter)

# /2: time and the members' labels are HDF5 dimension scales (netCDF-4: xarray reads the
# file); /1 wrote the labels as ``*/labels`` datasets, still read
SCHEMA = "rack-twin-telemetry/2"
# Channels every telemetry file must carry (docs/telemetry.md), with their units.
REQUIRED_CHANNELS = {
    "gpu/power": "W",
    "gpu/junction_temp": "degC",
    "gpu/clock_fraction": "1",
    "rack/liquid_heat": "W",
    "rack/supply_temp": "degC",
    "rack/return_temp": "degC",
    "rack/flow": "L/min",
    "rack/dp": "kPa",
    "tray/flow": "L/min",
    "cdu/pump_speed": "1",
    "facility/supply_temp": "degC",
    "facility/return_temp": "degC",
    "facility/flow": "L/min",
}
# The columns of ``margins/verdicts`` (docs/telemetry.md), in order.
MARGIN_COLUMNS = ("name", "value", "unit", "limit", "sense", "status", "instance", "note")
# netCDF-4's mark of a dimension scale that is not a variable (netCDF-C writes it with the
# size, as here); readers of netCDF (h5netcdf) hide such a dataset
NOT_A_VARIABLE = "This is a netCDF dimension but not a netCDF variable."
CHUNK_ROWS = 1024  # rows per HDF5 chunk
# Rows queued before a write (memory: ~2 KB a row for the reference rack). Writes cover
# whole chunks only (the rest waits for the next batch), so HDF5 never re-reads a chunk
# and needs no chunk cache: with its default cache (1 MB per dataset) the process grew by
# ~100 MB over a 24 h run (docs/performance.md); without it, memory stays flat.
BATCH_ROWS = 4096


def margin_records(margins) -> list:
    """The rows of ``margins/verdicts`` as written (:data:`MARGIN_COLUMNS`): NaN for an
    absent number, an empty string for an absent text."""
    return [dict(name=d["name"], value=r.value, unit=d["unit"], limit=np.nan if d["limit"] is None else d["limit"],
                 sense=d["sense"] or "", status=d["status"] or "", instance=d["instance"] or "", note=d["note"])
            for r, d in zip(margins.rows, margins.to_dicts())]


class TelemetryWriter:
    """Stream channels into an HDF5 file (or an in-memory one when ``path`` is None).

    Rows are copied (and converted to each dataset's type) into fixed buffers of
    ``BATCH_ROWS + CHUNK_ROWS`` rows as they arrive; every ``BATCH_ROWS`` the whole chunks
    are written, one low-level write per dataset (h5py's slicing costs ~0.1 ms a call)."""

    def __init__(self, path, attrs: dict, channels: dict, labels: dict | None = None):
        """``channels``: name -> (units, width or None for 1-D, dtype)."""
        self.path = Path(path) if path is not None else None
        if self.path is not None:
            self.tmp = self.path.with_name(self.path.name + ".partial")
            with writing(self.path, "-o"):  # a path the OS refuses is bad input, before the run
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self.f = h5py.File(self.tmp, "w", rdcc_nbytes=0)
        else:
            self.tmp = None
            # a name no open in-memory file has: id(self) is reused once a writer is freed while
            # its file lives on in a Result, and HDF5 refuses to truncate an open file
            self.f = h5py.File(f"mem-{os.getpid()}-{next(_mem_ids)}.h5", "w", driver="core", backing_store=False)
        for k, v in attrs.items():
            self.f.attrs[k] = v
        self.rows = 0  # rows in the file
        self.n = 0  # rows in the buffers
        cap = BATCH_ROWS + CHUNK_ROWS
        self.channels = channels
        # keep the handles: a lookup by path costs more than the write; each dataset
        # is written from the buffer of its name (a group's copy of time: from "time")
        self._ds = {"time": self._time_scale("time")}
        self._src = {"time": "time"}
        self._bufs = {"time": np.empty(cap)}
        members = {dim_of_labels(key): list(values) for key, values in (labels or {}).items()}
        scales: dict = {}  # (group, dimension) -> its scale dataset

        def scale(group, dim, size):
            if (group, dim) not in scales:
                scales[group, dim] = self._member_scale(f"{group}/{dim}", members.get(dim), size)
            return scales[group, dim]

        for name, (units, width, dtype) in channels.items():
            group = name.rpartition("/")[0]
            if is_scale_name(name) or not group:
                raise ValueError(f"channel {name!r}: not group/quantity, or the name of a dimension scale")
            shape, maxshape, chunks = ((0,), (None,), (CHUNK_ROWS,)) if width is None else \
                ((0, width), (None, width), (CHUNK_ROWS, width))
            ds = self.f.create_dataset(name, shape=shape, maxshape=maxshape, dtype=dtype, chunks=chunks)
            ds.attrs["units"] = units
            self._ds[name] = ds
            self._src[name] = name
            self._bufs[name] = np.empty((cap,) + shape[1:], dtype=dtype)
            tname = f"{group}/time"
            if tname not in self._ds:  # each group its own time axis: opened alone, it has its times
                self._ds[tname] = self._time_scale(tname)
                self._src[tname] = "time"
            ds.dims[0].attach_scale(self._ds[tname])
            if width is not None:
                ds.dims[1].attach_scale(scale(group, member_dimension(name), width))
        for dim, values in members.items():  # labels of members no channel here has (kept for the reader)
            group = labels_key(dim).split("/")[0]
            scale(group, dim, len(values))

    def _time_scale(self, name):
        """A growing ``time`` dataset [s], made the dimension scale ``time``."""
        ds = self.f.create_dataset(name, shape=(0,), maxshape=(None,), dtype="f8", chunks=(CHUNK_ROWS,))
        ds.attrs["units"] = "s"
        ds.make_scale("time")
        return ds

    def _member_scale(self, name, values, size):
        """The dimension scale of a member dimension: the members' labels (netCDF: the
        coordinate variable of the dimension), or, without labels, a dimension that is not
        a variable (the netCDF-4 convention's name for it)."""
        if values is not None:
            if len(values) != size:
                raise ValueError(f"{name}: {len(values)} labels for {size} columns")
            ds = self.f.create_dataset(name, data=np.array(values, dtype=h5py.string_dtype()))
            ds.make_scale(name.rsplit("/", 1)[-1])
        else:
            ds = self.f.create_dataset(name, shape=(size,), dtype="f4")
            ds.make_scale(f"{NOT_A_VARIABLE}{size:10d}")
        return ds

    def append(self, time: np.ndarray, data: dict) -> None:
        """Queue rows (copied: the caller may reuse its arrays); they reach the file in
        whole chunks, about every BATCH_ROWS rows."""
        m = time.shape[0]
        done = 0
        while done < m:
            k = min(m - done, self._bufs["time"].shape[0] - self.n)
            self._bufs["time"][self.n:self.n + k] = time[done:done + k]
            for name in self.channels:
                self._bufs[name][self.n:self.n + k] = data[name][done:done + k]
            self.n += k
            done += k
            if self.n >= BATCH_ROWS:
                self._flush()

    def _flush(self, final: bool = False) -> None:
        """Write the buffered rows: whole chunks only, unless ``final``."""
        n = self.n if final else (self.n // CHUNK_ROWS) * CHUNK_ROWS
        if n == 0:
            return
        new = self.rows + n
        for name, ds in self._ds.items():
            buf = self._bufs[self._src[name]]
            ds.id.set_extent((new,) + buf.shape[1:])
            file_space = ds.id.get_space()
            file_space.select_hyperslab((self.rows,) + (0,) * (buf.ndim - 1), (n,) + buf.shape[1:])
            ds.id.write(h5py.h5s.create_simple((n,) + buf.shape[1:]), file_space, buf[:n])
        for buf in self._bufs.values():
            buf[:self.n - n] = buf[n:self.n]  # the part-chunk left over
        self.rows = new
        self.n -= n

    def write_events(self, events) -> None:
        """The ``events`` record: (time [s], kind, target) of each DES event."""
        dtype = np.dtype([("time", "f8"), ("kind", h5py.string_dtype()), ("target", h5py.string_dtype())])
        arr = np.array([(t, k, str(g)) for t, k, g in events], dtype=dtype)
        ds = self.f.create_dataset("events", data=arr)
        ds.attrs["units"] = "s"
        ds.dims[0].attach_scale(self._member_scale("event", None, len(arr)))

    def set_attrs(self, **attrs) -> None:
        for k, v in attrs.items():
            self.f.attrs[k] = v

    def write_margins(self, margins) -> None:
        """The margins: group ``margins`` with each value as an attribute (name -> value),
        and the verdicts as a table ``margins/verdicts`` (one row per margin: name, value,
        unit, limit, sense, status, instance, note; NaN where a number is absent; its
        dimension ``margin``, the names) and the root attribute ``verdict``."""
        grp = self.f.require_group("margins")
        for r in margins.rows:
            grp.attrs[r.name] = r.value
        text = h5py.string_dtype()
        dtype = np.dtype([(k, "f8" if k in ("value", "limit") else text) for k in MARGIN_COLUMNS])
        rows = [tuple(d[k] for k in MARGIN_COLUMNS) for d in margin_records(margins)]
        ds = grp.create_dataset("verdicts", data=np.array(rows, dtype=dtype))
        ds.dims[0].attach_scale(self._member_scale("margins/margin", [row[0] for row in rows], len(rows)))
        self.f.attrs["verdict"] = margins.verdict

    def finish(self):
        """Close and move into place; returns the open in-memory file when path is None."""
        self._flush(final=True)
        if self.path is None:
            self.f.flush()
            return self.f
        self.f.close()
        os.replace(self.tmp, self.path)
        return None

    def abort(self):
        try:
            self.f.close()
        finally:
            if self.tmp is not None and self.tmp.exists():
                self.tmp.unlink()


@dataclass
class Telemetry:
    """Channels read back from a telemetry file."""

    path: str
    attrs: dict
    time: np.ndarray
    channels: dict
    units: dict
    labels: dict
    events: list

    def __getitem__(self, name):
        return self.channels[name]


def open_hdf5(path):
    """An HDF5 file opened for reading; a file that is not one, or is damaged past opening,
    is a :class:`TwinInputError` naming it."""
    from .files import is_hdf5

    if not is_hdf5(path):
        raise TwinInputError(path, "", "not an HDF5 file (no HDF5 signature at its start)")
    try:
        return h5py.File(path, "r")
    except (OSError, RuntimeError, ValueError):
        raise TwinInputError(path, "", "not a readable HDF5 file (corrupt or truncated)") from None


def member_labels(f, channel: str) -> list | None:
    """The labels of a 2-D channel's members in an open file: the dimension scale of its
    member axis (schema /2), else its group's ``*/labels`` dataset (/1); None without."""
    ds = f.get(channel)
    if not isinstance(ds, h5py.Dataset) or ds.ndim != 2:
        return None
    for lab in [*ds.dims[1].values(), f.get(labels_key(member_dimension(channel)))]:
        if isinstance(lab, h5py.Dataset) and lab.shape == (ds.shape[1],) and h5py.check_string_dtype(lab.dtype):
            return [_s(x) for x in lab[()]]
    return None


def read_telemetry(path, require=None) -> Telemetry:
    """Read every channel of a telemetry file; bad files raise :class:`TwinInputError`.

    ``require``: the channels the file must hold. ``None`` (the default): every one of
    ``REQUIRED_CHANNELS`` for a simulated file, none for a measured one (root attribute
    ``measured = true``, as ``twin import`` writes: it holds the channels that were
    measured); or an explicit collection of names (``()`` accepts any set of channels)."""
    from .files import regular_file

    path = Path(path)
    regular_file(path, path, "", "file")  # a FIFO or a device would block or never end
    f = open_hdf5(path)
    with f:
        try:
            return _read_open(f, str(path), require)
        except _DAMAGED as exc:  # an attribute or link of a damaged file
            raise TwinInputError(path, "", f"corrupt HDF5 structure ({exc.__class__.__name__})") from None


# What reading a damaged or foreign HDF5 object raises (h5py and numpy).
_DAMAGED = (OSError, RuntimeError, KeyError, ValueError, TypeError, IndexError, UnicodeDecodeError)


def _read_open(f, name, require=None) -> Telemetry:
    schema = f.attrs.get("schema")
    if schema is None:
        raise TwinInputError(name, "schema", "root attribute missing: not a rack-twin telemetry file")
    if isinstance(schema, bytes):
        schema = schema.decode(errors="replace")
    if not isinstance(schema, str) or schema.split("/")[0] != SCHEMA.split("/")[0]:
        raise TwinInputError(name, "schema", f"unknown schema {str(schema)!r}")
    if not isinstance(f.get("time"), h5py.Dataset):
        raise TwinInputError(name, "time", "dataset missing")
    try:
        time = f["time"][()]
    except _DAMAGED as exc:
        raise TwinInputError(name, "time", f"unreadable ({exc.__class__.__name__})") from None
    if time.ndim != 1 or time.dtype.kind not in "fiu":
        raise TwinInputError(name, "time", f"expected one number per sample, got {time.dtype} of shape {time.shape}")
    if not np.all(np.isfinite(time)):
        raise TwinInputError(name, "time", f"sample {int(np.argmin(np.isfinite(time)))} is not a finite time")
    channels, units, labels = {}, {}, {}
    events: list = []

    def read(key, obj):
        try:
            return obj[()]
        except _DAMAGED as exc:
            raise TwinInputError(name, key, f"unreadable ({exc.__class__.__name__})") from None

    def visit(key, obj):
        if not isinstance(obj, h5py.Dataset) or key == "time":
            return
        if key.startswith("margins/"):
            return
        if key == "events":
            try:
                events.extend((float(r["time"]), _s(r["kind"]), _s(r["target"])) for r in read(key, obj))
            except _DAMAGED:
                raise TwinInputError(name, key, "expected records of (time, kind, target)") from None
            return
        if obj.attrs.get("CLASS") == b"DIMENSION_SCALE":  # schema /2: time (a group's copy), members
            dim = key.rsplit("/", 1)[-1]
            if dim == "time" or NOT_A_VARIABLE in _s(obj.attrs.get("NAME", b"")):
                return
            try:
                labels.setdefault(labels_key(dim), [_s(x) for x in read(key, obj)])
            except _DAMAGED:
                raise TwinInputError(name, key, "unreadable labels") from None
            return
        if key.endswith("labels"):  # schema /1
            try:
                labels[key] = [x.decode() if isinstance(x, bytes) else str(x) for x in read(key, obj)]
            except _DAMAGED:
                raise TwinInputError(name, key, "unreadable labels") from None
            return
        if "units" not in obj.attrs:
            raise TwinInputError(name, key, "dataset has no 'units' attribute")
        data = read(key, obj)
        if data.ndim == 0 or data.shape[0] != time.shape[0]:
            raise TwinInputError(name, key, f"{data.shape[0] if data.ndim else 0} rows but time has {time.shape[0]}")
        channels[key] = data
        units[key] = _s(obj.attrs["units"])

    try:
        f.visititems(visit)
    except TwinInputError:
        raise
    except _DAMAGED as exc:
        raise TwinInputError(name, "", f"corrupt HDF5 structure ({exc.__class__.__name__})") from None
    attrs = {k: (v.decode(errors="replace") if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
    if require is None:
        require = () if _is_true(attrs.get("measured")) else REQUIRED_CHANNELS
    for ch in require:
        if ch not in channels:
            raise TwinInputError(name, ch, "required channel missing")
    return Telemetry(path=name, attrs=attrs, time=time, channels=channels, units=units, labels=labels,
                     events=events)


def _is_true(x) -> bool:
    """An HDF5 boolean attribute (numpy bool, or an integer 0/1) that is set."""
    try:
        return isinstance(x, (bool, np.bool_, int, np.integer)) and bool(x)
    except (TypeError, ValueError):
        return False


def _s(x):
    return x.decode() if isinstance(x, bytes) else str(x)


def read_margins(path) -> list | None:
    """The ``margins/verdicts`` table of a telemetry file as a list of dicts (name, value,
    unit, limit (None for a figure), sense, status, instance, note; a NaN value stays NaN),
    or None when the file holds no margins (measured telemetry, a foreign file)."""
    from .files import regular_file

    path = Path(path)
    regular_file(path, path, "", "file")
    with open_hdf5(path) as f:
        ds = f.get("margins/verdicts")
        if ds is None:
            return None
        if not isinstance(ds, h5py.Dataset):
            raise TwinInputError(path, "margins/verdicts", "not a dataset")
        try:
            rows = ds[()]
            names = rows.dtype.names or ()
            out = [{k: (_s(r[k]) if rows.dtype[k].kind in "OSU" else float(r[k])) for k in names} for r in rows]
        except _DAMAGED as exc:
            raise TwinInputError(path, "margins/verdicts", f"unreadable ({exc.__class__.__name__})") from None
    need = ("name", "value", "unit", "limit", "status")
    if any(k not in names for k in need):
        raise TwinInputError(path, "margins/verdicts", f"expected the columns {', '.join(need)}")
    for r in out:
        r["limit"] = None if not np.isfinite(r["limit"]) else r["limit"]
        for k in ("sense", "instance", "note"):
            r.setdefault(k, "")
    return out
