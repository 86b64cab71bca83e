"""Synthetic measured telemetry with a known truth: a scenario run with planted parameter
values (``[overrides]``), faults and sensor offsets, its telemetry with sensor noise and
quantisation added. Labelled synthetic in the file (root attributes ``synthetic``,
``truth``). For tests, the examples under ``calibration/examples/`` and the benchmark.

The load is an acceptance-test staircase by default: GPU plateaus of a few minutes
(:func:`staircase`), on which a sampled junction is not stroboscopic (docs/calibration.md).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

# Realistic measurement errors, the figures calibration must cope with (ASSUMPTION, as
# issue 12 sets them): a temperature sensor's noise [K],
TEMP_NOISE_K = 0.1
# the 1/16 K resolution of a digital temperature readout (ASSUMPTION: a 12-bit sensor's LSB),
TEMP_QUANTUM_K = 0.0625
# a flow meter's noise, relative (ASSUMPTION: magnetic and ultrasonic meters, about 1 %).
FLOW_NOISE_REL = 0.01


def staircase(duration_s: float, plateau_s: float = 180.0, levels=(1.0, 0.5, 0.8, 0.3, 0.9, 0.6)) -> list:
    """GPU schedule entries: plateaus of ``plateau_s`` cycling through ``levels`` (fractions
    of TDP); CPUs at 0.7 and switches at 0.8 of TDP (as the reference scenario)."""
    out, t, i = [], 0.0, 0
    while t < duration_s:
        out.append(dict(chips="gpu", kind="constant", start_s=t, end_s=t + plateau_s,
                        fraction_of_tdp=levels[i % len(levels)]))
        t += plateau_s
        i += 1
    return out + [dict(chips="cpu", fraction_of_tdp=0.7), dict(chips="nvswitch", fraction_of_tdp=0.8)]


def make(scenario, out, *, overrides: dict | None = None, seed: int = 0, noise: bool = True,
         sensor_offsets: dict | None = None, truth: dict | None = None) -> Path:
    """Run ``scenario`` (a loaded Scenario) with ``overrides`` (dotted keys, e.g.
    ``{"overrides": {...}, "rack.manifold.layout": "direct_return"}``), then write its
    telemetry to ``out`` with sensor noise (normal, ``TEMP_NOISE_K`` on temperatures,
    ``FLOW_NOISE_REL`` of flows), temperatures quantised to ``TEMP_QUANTUM_K`` and
    ``sensor_offsets`` (channel -> offset in its unit, or -> {member path: offset} for
    single sensors of a 2-D channel) added. ``truth`` (JSON-able) is
    stored in the file with ``overrides``."""
    import h5py

    from ..engine import simulate
    from ..telemetry import member_labels

    s = scenario.with_overrides(overrides or {}) if overrides else scenario
    out = Path(out)
    raw = out.with_name(out.name + ".raw.h5")
    simulate(s, output=raw)
    rng = np.random.default_rng(seed)
    tmp = out.with_name(out.name + ".partial")
    raw.replace(tmp)  # the whole file: its dimension scales' references stay whole
    try:
        with h5py.File(tmp, "r") as f:
            _check_offsets(f, sensor_offsets or {})
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    with h5py.File(tmp, "r+") as dst:
        for name in _channels(dst):
            ds = dst[name]
            units = ds.attrs.get("units", "")
            units = units.decode() if isinstance(units, bytes) else str(units)
            x = ds[...].astype(float)
            if noise and units == "degC":
                x = x + rng.normal(0.0, TEMP_NOISE_K, x.shape)
            elif noise and units == "L/min":
                x = x * (1.0 + rng.normal(0.0, FLOW_NOISE_REL, x.shape))
            off = (sensor_offsets or {}).get(name, 0.0)
            if isinstance(off, dict):  # member path -> offset: one sensor of a 2-D channel
                labels = member_labels(dst, name)
                per = np.zeros(x.shape[1])
                for member, v in off.items():
                    per[labels.index(member)] += v
                off = per
            x = x + off
            if noise and units == "degC":
                x = np.round(x / TEMP_QUANTUM_K) * TEMP_QUANTUM_K
            ds[...] = x.astype(ds.dtype)
        dst.attrs["measured"] = True
        dst.attrs["synthetic"] = True
        dst.attrs["truth"] = json.dumps(dict(truth or {}, overrides=overrides or {}, sensor_offsets=sensor_offsets or {},
                                             noise=dict(temp_k=TEMP_NOISE_K, temp_quantum_k=TEMP_QUANTUM_K,
                                                        flow_rel=FLOW_NOISE_REL) if noise else None, seed=seed),
                                        default=str)
    tmp.replace(out)
    return out


def _check_offsets(f, offsets: dict) -> None:
    """Every offset names a channel of the run (and a member of it): one that does not
    would be written as truth and never planted."""
    from ..errors import TwinInputError, did_you_mean
    from ..telemetry import member_labels

    names = _channels(f)
    for name, off in offsets.items():
        if name not in names:
            raise TwinInputError("sensor_offsets", name, "no such channel in this run" + did_you_mean(name, names))
        if isinstance(off, dict):
            labels = member_labels(f, name) or []  # a 1-D channel has no members
            for member in off:
                if member not in labels:
                    raise TwinInputError("sensor_offsets", name, f"no member {member!r}"
                                         + did_you_mean(member, labels))


def _channels(f) -> list:
    out = []
    for group in f:
        g = f[group]
        if hasattr(g, "keys") and group not in ("margins",):
            for name in g:
                ds = g[name]
                if (not name.endswith("labels") and hasattr(ds, "dtype") and ds.dtype.kind == "f"
                        and ds.attrs.get("CLASS") != b"DIMENSION_SCALE"):  # time and members: no sensor
                    out.append(f"{group}/{name}")
    return out
