"""One run of a sweep, as a worker executes it: the base scenario's data with the run's
overrides, validated, built, simulated in memory (only the collected channels kept), and
returned as one table row.

What is shipped is plain data (the base scenario's merged TOML data, once per worker, and
a few values per run), not models: the worker builds the model, and the numba kernels
come from the on-disk cache, loaded once per worker process.

A run that cannot be built (a value out of range, an instance that does not exist) or
that stops at a model limit (the coolant boiling) is a row with ``status = "failed"`` and
its error, not an exception: the sweep goes on.
"""
from __future__ import annotations

import copy
import os
import socket
import time
from pathlib import Path

OK, FAILED = "ok", "failed"


def reduce(values, how: str) -> float:
    """A channel's summary over the run and all its elements."""
    import numpy as np

    a = np.asarray(values, dtype=float)
    if a.size == 0:
        return float("nan")
    if how == "last":
        return float(np.nanmax(a[-1])) if a.ndim > 1 else float(a[-1])
    fn = dict(max=np.nanmax, min=np.nanmin, mean=np.nanmean, std=np.nanstd)
    if how in fn:
        return float(fn[how](a))
    return float(np.nanpercentile(a, float(how[1:])))


def scenario_of(payload: dict, overrides: dict):
    """The run's scenario: the base data with the overrides set in order, validated as
    :func:`twin.load_scenario` validates a file with ``--set`` overrides."""
    from ..scenario import validate
    from ..sources import Sources, set_dotted

    path = Path(payload["path"])
    data = copy.deepcopy(payload["data"])
    for key, value in overrides.items():
        set_dotted(data, key, value, f"{path} (sweep {key})")
    return validate(Sources(path, data)).scenario


def run_one(payload: dict, run: dict) -> dict:
    """Execute one run; never raises for a bad run (the row says what went wrong)."""
    from ..errors import TwinInputError, did_you_mean

    t0, c0, started = time.perf_counter(), time.thread_time(), time.time()
    row = dict(run=run["run"], run_hash=run["hash"], **run["params"], status=FAILED, error=None, verdict=None,
               failing=None)
    build_s = sim_s = float("nan")
    try:
        s = scenario_of(payload, run["overrides"])
        from ..build import build_model
        from ..engine import simulate

        model = build_model(s)
        build_s = time.perf_counter() - t0
        channels = payload["channels"]
        t1 = time.perf_counter()
        r = simulate(s, model=model, channels=list(channels), track_margins=True)
        sim_s = time.perf_counter() - t1
        table = r.margin_table
        row.update(verdict=table.verdict, failing=",".join(m.name for m in table.rows if m.status == "fail") or None)
        wanted = payload["margins"] if payload["margins"] is not None else list(r.margins)
        missing = [m for m in wanted if m not in r.margins]
        for name in wanted:
            row[name] = float(r.margins[name]) if name in r.margins else float("nan")
        tel = r.telemetry(()) if channels else None
        absent = [c for c in channels if c not in tel.channels] if channels else []
        for name, hows in channels.items():
            for how in hows:
                row[f"{name}:{how}"] = reduce(tel[name], how) if name not in absent else float("nan")
        if missing:
            row["error"] = (f"collect.margins: no margin {missing[0]!r} in this run"
                            + did_you_mean(missing[0], r.margins))
        elif absent:
            from ..recorder import _channels

            row["error"] = (f"collect.channels: no channel {absent[0]!r} in this run"
                            + did_you_mean(absent[0], _channels(model, len(s.workload.jobs))))
        elif not r.end.is_complete:
            row["error"] = f"run ended early: {r.end.reason}"
        else:
            row["status"] = OK
    except TwinInputError as err:
        row["error"] = err.line()
    except Exception as err:  # a model failure is this run's, not the sweep's
        row["error"] = f"{type(err).__name__}: {err}"
    row.update(wall_s=time.perf_counter() - t0, cpu_s=time.thread_time() - c0, build_s=build_s, simulate_s=sim_s,
               started_at=started,
               worker=f"{socket.gethostname()}:{os.getpid()}")
    return row
