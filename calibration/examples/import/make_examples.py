"""Write the synthetic example sources of this folder (deterministic: a fixed seed).

    python calibration/examples/import/make_examples.py            # the two CSV files, here
    python calibration/examples/import/make_examples.py --binary D  # also rack.parquet and bms.h5 in D

Every number below is made up to look like a rack logger's export (README.md): none of
it is a measurement.
"""
from __future__ import annotations

import argparse
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
START = datetime(2025, 3, 14, 9, 0, 0, tzinfo=timezone.utc)
DURATION_S = 180
GPUS = 4


def signals(t: np.ndarray) -> dict:
    """Made-up rack signals at times t [s]: idle, a load step at 30 s, idle again at 150 s."""
    load = ((t >= 30) & (t < 150)).astype(float)

    def lag(x, tau):
        y = np.empty_like(x)
        y[0] = x[0]
        for k in range(1, x.size):
            y[k] = y[k - 1] + (x[k] - y[k - 1]) * (1 - np.exp(-(t[k] - t[k - 1]) / tau))
        return y

    supply = 32.0 + 0.4 * lag(load, 40.0)
    ret = supply + 2.0 + 6.5 * lag(load, 12.0)
    gpu = np.column_stack([supply + 6.0 + (30.0 + 2 * g) * lag(load, 4.0) for g in range(GPUS)])
    return dict(supply_c=supply, return_c=ret, gpu_c=gpu, load=load)


def wide_csv(rng) -> str:
    """One row per second, ISO time stamps; supply temperature every 5 s only; the return
    temperature sensor's clock 2 s ahead; a 40 s hole in the flow; a few bad cells."""
    t = np.arange(0.0, DURATION_S + 1)
    s = signals(t)
    ret_true = signals(t - 2.0)["return_c"]  # logged 2 s late: its stamp t holds the value of t - 2
    rows = ["Timestamp,SupplyTemp_F,ReturnTemp_F,Flow_gpm,RackDP_psi," + ",".join(f"GPU{g}_Temp_C" for g in range(GPUS))]
    for k, tk in enumerate(t):
        stamp = (START + timedelta(seconds=float(tk))).strftime("%Y-%m-%dT%H:%M:%SZ")
        supply = f"{s['supply_c'][k] * 9 / 5 + 32 + rng.normal(0, 0.05):.1f}" if tk % 5 == 0 else ""
        ret = f"{ret_true[k] * 9 / 5 + 32 + rng.normal(0, 0.05):.1f}"
        flow = "" if 60 <= tk < 100 else f"{(150.0 + rng.normal(0, 0.3)) / 3.785411784:.2f}"
        dp = f"{(90.0 + 3.0 * s['load'][k] + rng.normal(0, 0.2)) / 6.894757293168:.2f}"
        gpus = [f"{x + rng.normal(0, 0.2):.0f}" for x in s["gpu_c"][k]]  # whole degrees, as nvidia-smi
        if tk in (17, 121):
            ret = "ERR"
        rows.append(",".join([stamp, supply, ret, flow, dp, *gpus]))
    return "\n".join(rows) + "\n"


def long_csv(rng) -> str:
    """Time in ms since the logger started; each signal its own rate, jittered stamps."""
    out = ["time_ms,signal,value"]
    events = []
    for name, every, f in (
        ("CDU1/SupplyTemp", 1.0, lambda t: signals(t)["supply_c"] - 0.2),
        ("CDU1/ReturnTemp", 1.0, lambda t: signals(t)["return_c"] + 0.1),
        ("FWS/Temp_K", 10.0, lambda t: np.full(t.size, 32.0 + 273.15 - 4.0)),
        ("FWS/Flow_Ls", 2.0, lambda t: np.full(t.size, 3.2)),
        ("CDU1/Pump1_pct", 1.0, lambda t: np.full(t.size, 62.0)),
        ("CDU1/Pump2_pct", 1.0, lambda t: np.full(t.size, 61.5)),
    ):
        t = np.arange(0.0, DURATION_S + every, every) + rng.uniform(0, 0.05, int(DURATION_S / every) + 1)
        for tk, v in zip(t, f(t)):
            events.append((int(round(tk * 1000)), name, f"{v + rng.normal(0, 0.02):.2f}"))
    events.sort()
    out += [f"{ms},{name},{v}" for ms, name, v in events]
    return "\n".join(out) + "\n"


def write_binary(folder: Path, rng) -> None:
    """rack.parquet (the wide CSV's columns, time as Arrow time stamps) and bms.h5 (a
    building-management export: one group per signal, each with its own time in ms)."""
    import csv
    import io

    import h5py
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    rows = list(csv.reader(io.StringIO((HERE / "rack-wide.csv").read_text())))
    header, body = rows[0], rows[1:]
    cols = {}
    for i, name in enumerate(header):
        cells = [r[i] for r in body]
        if name == "Timestamp":
            cols[name] = pa.array([datetime.fromisoformat(c) for c in cells], type=pa.timestamp("ms", tz="UTC"))
        else:
            cols[name] = pa.array([float(c) if c not in ("", "ERR") else None for c in cells], type=pa.float64())
    pq.write_table(pa.table(cols), folder / "rack.parquet")
    with h5py.File(folder / "bms.h5", "w") as f:
        for name, every, values in (("supply_temp", 2.0, lambda t: signals(t)["supply_c"] + 273.15),
                                    ("flow", 1.0, lambda t: np.full(t.size, 150.0 / 60))):
            t = np.arange(0.0, DURATION_S, every)
            g = f.create_group(f"site/row1/rack01/{name}")
            g["time"] = (t * 1000).astype(np.int64)
            g["time"].attrs["units"] = "ms"
            g["value"] = values(t) + rng.normal(0, 0.01, t.size)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--binary", type=Path, help="also write rack.parquet and bms.h5 into this folder")
    args = ap.parse_args(argv)
    rng = np.random.default_rng(2025)
    (HERE / "rack-wide.csv").write_text(wide_csv(rng))
    (HERE / "rack-long.csv").write_text(long_csv(rng))
    if args.binary is not None:
        write_binary(args.binary, rng)


if __name__ == "__main__":
    main()
