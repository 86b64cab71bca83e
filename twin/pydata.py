"""The PyData interface: results as an :class:`xarray.Dataset`, margins as a
:class:`pandas.DataFrame` (docs/telemetry.md, *Python and PyData*).

xarray and pandas are imported here, when first used: ``import twin``, ``twin --help``
and ``twin run`` do not load them.

The Dataset (:func:`to_dataset`): dimension ``time`` [s], and a dimension per kind of
member, named as the file's dimension scales (``gpu``, ``cpu``, ``nvswitch``, ``tray``,
``pump``; in a row ``rack`` and ``cdu``; ``job`` with jobs), whose coordinates are the
instance paths (``rack01/tray09/gpu1``); one variable per channel, named ``group_quantity``
(``gpu/junction_temp`` -> ``gpu_junction_temp``: a ``/`` is not allowed in a netCDF name and
keeps a variable from being an attribute), with attributes ``units`` and ``channel`` (the
channel's name in the file); the events as ``event_time`` [s], ``event_kind`` and
``event_target`` along ``event``; the file's root attributes (``scenario``, ``verdict``,
``complete``, ...) as the Dataset's, booleans as 1 / 0 (netCDF has no boolean attribute:
``ds.to_netcdf(path, engine="h5netcdf")`` writes the Dataset as it is).
"""
from __future__ import annotations

import numpy as np

from .channels import labels_key, member_dimension
from .errors import TwinInputError
from .telemetry import MARGIN_COLUMNS, Telemetry, margin_records, read_margins, read_telemetry


def variable_name(channel: str) -> str:
    """A channel's variable in the Dataset: ``gpu/junction_temp`` -> ``gpu_junction_temp``."""
    return channel.replace("/", "_")


def to_dataset(tel: Telemetry):
    """The telemetry as an :class:`xarray.Dataset` (the module's docstring says how)."""
    import xarray as xr

    coords: dict = {"time": ("time", np.asarray(tel.time, dtype=float), {"units": "s"})}
    variables: dict = {}
    sizes: dict = {}
    for name in sorted(tel.channels):
        x = tel.channels[name]
        attrs = {"units": tel.units[name], "channel": name}
        if x.ndim == 1:
            dims: tuple = ("time",)
        elif x.ndim == 2:
            dim = member_dimension(name)
            if sizes.setdefault(dim, x.shape[1]) != x.shape[1]:
                raise TwinInputError(tel.path, name, f"{x.shape[1]} members, but another channel has {sizes[dim]} "
                                                     f"along {dim!r}")
            labels = tel.labels.get(labels_key(dim))
            if labels is not None and len(labels) == x.shape[1]:
                coords.setdefault(dim, (dim, np.array(labels, dtype=str)))
            dims = ("time", dim)
        else:
            dims = ("time",) + tuple(f"{variable_name(name)}_dim{i}" for i in range(1, x.ndim))
        variables[variable_name(name)] = (dims, x, attrs)
    if tel.events:
        t, kind, target = zip(*tel.events)
        variables["event_time"] = ("event", np.array(t, dtype=float), {"units": "s"})
        variables["event_kind"] = ("event", np.array(kind, dtype=str))
        variables["event_target"] = ("event", np.array(target, dtype=str))
    # netCDF has no boolean attribute: complete, measured as 1 / 0 (the Dataset writes back)
    attrs = {k: (int(v) if isinstance(v, (bool, np.bool_)) else v) for k, v in tel.attrs.items()}
    return xr.Dataset(variables, coords=coords, attrs=attrs)


def open_results(path):
    """A results file (a run's, or measured telemetry from ``twin import``; schema /1 or
    /2) as an :class:`xarray.Dataset`, read whole into memory. A file that is not
    telemetry raises :class:`twin.TwinInputError`."""
    return to_dataset(read_telemetry(_path(path, "twin.open_results"), require=()))


def _path(source, where: str):
    """A results file's path; anything else (None, a number, a list) is bad input."""
    import os

    if not isinstance(source, (str, os.PathLike)):
        raise TwinInputError(where, "source", f"expected a results file (a path) or a twin Result, got "
                                              f"{type(source).__name__}")
    return source


def frame(records):
    """Margin records (dicts of :data:`twin.telemetry.MARGIN_COLUMNS`) as a DataFrame:
    ``value`` and ``limit`` floats (NaN: no limit, a figure), the rest text."""
    import pandas as pd

    df = pd.DataFrame([{k: r.get(k) for k in MARGIN_COLUMNS} for r in records], columns=list(MARGIN_COLUMNS))
    df["value"] = pd.to_numeric(df["value"]).astype(float)
    df["limit"] = pd.to_numeric(df["limit"]).astype(float)
    for k in MARGIN_COLUMNS:
        if k not in ("value", "limit"):
            df[k] = df[k].fillna("").astype(str)
    return df


def margins_frame(source):
    """The margins of a :class:`twin.result.Result` or of a results file, one row per
    margin, columns name, value, unit, limit, sense, status, instance, note (as
    ``margins/verdicts``); no rows for a file without margins (measured telemetry). A
    file that is not rack-twin telemetry raises :class:`twin.TwinInputError`.

    A list or tuple of them: their frames stacked, with a first column ``source`` (the
    file's path as given, or the Result's scenario name)."""
    from .result import Result

    if isinstance(source, (list, tuple)):
        import pandas as pd

        frames = []
        for one in source:
            df = margins_frame(one)
            df.insert(0, "source", one.scenario.name if isinstance(one, Result) else str(one))
            frames.append(df)
        if not frames:
            return frame([]).assign(source="")[["source", *MARGIN_COLUMNS]]
        return pd.concat(frames, ignore_index=True)
    if isinstance(source, Result):
        return frame(margin_records(source.margin_table))
    records = read_margins(_path(source, "twin.margins_frame"))
    if records is None:  # measured telemetry has none; a foreign file is not telemetry
        from .telemetry import open_hdf5

        with open_hdf5(source) as f:
            if f.attrs.get("schema") is None:
                raise TwinInputError(source, "schema", "root attribute missing: not a rack-twin telemetry file")
    return frame(records or [])
