"""`twin import`: measured telemetry (CSV wide or long, Parquet, HDF5) into our format.

The round trip takes our own simulated telemetry, writes it the way a rack's logger might
(renamed columns, degF, gpm, psi and K, each channel at its own rate, a 5-minute hole, text
and empty cells, one sensor whose clock runs 3 s ahead) and imports it back: every output
sample matches the simulation within the error of linear interpolation, bounded below;
the hole stays NaN; the clock offset is gone. Then the other layouts and formats, and a
corpus of bad inputs in the style of tests/test_bad_inputs.py.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

import twin
from twin.cli import cli
from twin.importer import GALLON_L, PSI_KPA, import_telemetry, interval_mean, load_mapping, resample
from twin.telemetry import REQUIRED_CHANNELS, read_telemetry

from .conftest import REFERENCE, ROOT

DT = 0.5  # the simulation's output interval [s]: the "2 Hz" sensors
GAP = (150.0, 450.0)  # return temperature missing strictly between these times [s]
OFFSET_S = 3.0  # the return-temperature sensor's clock runs this far ahead
GPUS = [0, 37, 71]
TEXT_CELLS = {30.5: "NaN", 61.0: "ERR", 90.0: ""}  # return temperature cells that are not numbers


@pytest.fixture(scope="module")
def sim():
    """600 s of the reference rack (power steps at 120 s), sampled every 0.5 s."""
    s = twin.load_scenario(REFERENCE, {"simulation.duration_s": 600.0, "simulation.output_interval_s": DT})
    return twin.simulate(s).telemetry()


def _ix(t):
    """Index of the simulated sample at time t (samples at 0.5, 1.0, ... s)."""
    return np.round(np.asarray(t) / DT).astype(int) - 1


def _cli(*args):
    r = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=True)
    tb = None if r.exception is None or isinstance(r.exception, SystemExit) else repr(r.exception)
    return r.exit_code, r.stdout, r.stderr, tb


ROUND_TRIP_TOML = """\
description = "a logger's view of the reference rack"
[source]
time = "Timestamp"
time_unit = "s"
[output]
interval_s = 1.0
[channels."rack/supply_temp"]
columns = "SupplyTemp_F"
unit = "degF"
max_gap_s = 15.0
[channels."rack/return_temp"]
columns = "ReturnTemp_F"
unit = "degF"
offset_s = 3.0
[channels."rack/flow"]
columns = "Flow_gpm"
unit = "gpm"
[channels."rack/dp"]
columns = "dP_psi"
unit = "psi"
[channels."gpu/junction_temp"]
columns = ["GPU0_K", "GPU37_K", "GPU71_K"]
unit = "K"
labels = ["rack01/tray00/gpu0", "rack01/tray09/gpu1", "rack01/tray17/gpu3"]
"""


def _logger_csv(sim, path: Path):
    """The simulation as a logger writes it: one row per time stamp any sensor has."""
    t = sim.time
    rows: dict = {}

    def put(stamp, column, text):
        rows.setdefault(round(stamp * 2), {})[column] = text

    for k, tk in enumerate(t):
        if round(tk * 2) % 10 == 0:  # every 5 s
            put(tk, "SupplyTemp_F", repr(float(sim["rack/supply_temp"][k] * 9 / 5 + 32)))
        if round(tk * 2) % 2 == 0:  # every 1 s
            put(tk, "Flow_gpm", repr(float(sim["rack/flow"][k] / GALLON_L)))
        put(tk, "dP_psi", repr(float(sim["rack/dp"][k] / PSI_KPA)))
        for g in GPUS:
            put(tk, f"GPU{g}_K", repr(float(sim["gpu/junction_temp"][k, g]) + 273.15))
        if not GAP[0] < tk < GAP[1]:
            text = TEXT_CELLS.get(float(tk), repr(float(sim["rack/return_temp"][k] * 9 / 5 + 32)))
            put(tk + OFFSET_S, "ReturnTemp_F", text)
    header = ["Timestamp", "SupplyTemp_F", "ReturnTemp_F", "Flow_gpm", "dP_psi"] + [f"GPU{g}_K" for g in GPUS]
    lines = [",".join(header)]
    for key in sorted(rows):
        lines.append(",".join([repr(key / 2)] + [rows[key].get(h, "") for h in header[1:]]))
    path.write_text("\n".join(lines) + "\n")


def _interp_bound(f, ti, tj, t):
    """|linear interpolation - truth| at t between samples ti, tj of data f on the 0.5 s grid:
    (t - ti)(tj - t)/2 * max |second difference| / dt^2 over the interior of [ti, tj] (the
    discrete form of h^2/8 max|f''|: the discrete Green's function is non-negative and sums
    to (t - ti)(tj - t) / (2 dt^2))."""
    a, b = _ix(ti), _ix(tj)
    d2 = np.abs(f[a:b - 1] - 2 * f[a + 1:b] + f[a + 2:b + 1]) / DT ** 2
    return (t - ti) * (tj - t) / 2 * (d2.max() if d2.size else 0.0)


def test_round_trip_of_simulated_telemetry(sim, tmp_path):
    src, mapping, out = tmp_path / "logger.csv", tmp_path / "map.toml", tmp_path / "out.h5"
    _logger_csv(sim, src)
    mapping.write_text(ROUND_TRIP_TOML)
    code, stdout, err, tb = _cli("import", src, "--mapping", mapping, "-o", out)
    assert tb is None and code == 0, err
    assert err == "" and "5 channels" in stdout
    tel = read_telemetry(out)  # a measured file: the simulation's other channels may be absent
    assert tel.attrs["measured"] and tel.attrs["source"] == str(src) and not tel.attrs["truncated"]
    assert tel.attrs["mapping"] == ROUND_TRIP_TOML
    grid = tel.time
    # span: the latest first sample (supply temperature at 5 s) to the earliest last (600 s)
    np.testing.assert_allclose(grid, np.arange(5.0, 601.0, 1.0))
    truth = {name: sim[name][_ix(grid)] for name in ("rack/supply_temp", "rack/return_temp", "rack/flow", "rack/dp")}
    assert tel.units["rack/flow"] == "L/min" and tel.units["rack/dp"] == "kPa" and tel.units["rack/supply_temp"] == "degC"
    # on their own sample instants: the samples themselves (units converted back)
    np.testing.assert_allclose(tel["rack/flow"], truth["rack/flow"], rtol=1e-12)
    np.testing.assert_allclose(tel["rack/dp"], truth["rack/dp"], rtol=1e-12)
    np.testing.assert_allclose(tel["gpu/junction_temp"], sim["gpu/junction_temp"][_ix(grid)][:, GPUS], atol=1e-9)
    assert tel.labels["gpu/labels"] == ["rack01/tray00/gpu0", "rack01/tray09/gpu1", "rack01/tray17/gpu3"]
    # the 0.2 Hz supply temperature: exact every 5 s, between within the interpolation bound
    f = sim["rack/supply_temp"]
    got = tel["rack/supply_temp"]
    assert not np.isnan(got).any()
    for t, y in zip(grid, got):
        ti = np.floor(t / 5) * 5
        bound = 0.0 if t == ti else _interp_bound(f, ti, ti + 5, t)
        assert abs(y - f[_ix(t)]) <= bound + 1e-9, (t, y - f[_ix(t)], bound)
    assert np.abs(got - truth["rack/supply_temp"]).max() > 1e-4  # the bound was exercised
    # the return temperature: its clock offset removed, the 5-minute hole NaN, text cells
    # interpolated across (their neighbours are 1 s apart, within max_gap_s = 3 s)
    ret = tel["rack/return_temp"]
    hole = (grid > GAP[0]) & (grid < GAP[1])
    assert np.isnan(ret[hole]).all() and not np.isnan(ret[~hole]).any()
    clean = ~hole & ~np.isin(grid, list(TEXT_CELLS))
    np.testing.assert_allclose(ret[clean], truth["rack/return_temp"][clean], atol=1e-9)
    shifted = sim["rack/return_temp"][_ix(grid + OFFSET_S)[grid + OFFSET_S <= 600]]
    assert np.abs(shifted - truth["rack/return_temp"][:shifted.size]).max() > 1.0  # an offset left in would show
    f = sim["rack/return_temp"]
    for t in (61.0, 90.0):
        k = np.flatnonzero(grid == t)[0]
        assert abs(ret[k] - f[_ix(t)]) <= _interp_bound(f, t - DT, t + DT, t) + 1e-9
    # what was done, per channel
    info = json.loads(tel.attrs["channel_sources"])
    r = info["rack/return_temp"]
    assert r["source_columns"] == ["ReturnTemp_F"] and r["offset_s"] == OFFSET_S
    assert r["source_interval_s"] == [DT] and r["nan_samples"] == int(hole.sum()) == 299
    assert r["non_numeric"] == 2 and r["empty_cells"] > 0
    assert info["rack/supply_temp"]["source_interval_s"] == [5.0] and info["rack/supply_temp"]["nan_samples"] == 0
    assert info["gpu/junction_temp"]["source_columns"] == ["GPU0_K", "GPU37_K", "GPU71_K"]
    with h5py.File(out, "r") as h:
        assert h["rack/return_temp"].attrs["nan_samples"] == 299
        assert h["rack/return_temp"].attrs["offset_s"] == OFFSET_S
        assert list(h["rack/return_temp"].attrs["source_columns"]) == ["ReturnTemp_F"]
    # calibration may insist on channels: the simulation's required set is not all here
    with pytest.raises(twin.TwinInputError, match="required channel missing"):
        read_telemetry(out, require=REQUIRED_CHANNELS)
    assert set(read_telemetry(out, require=["rack/flow"]).channels) == set(info)
    # and `twin inspect` lists it
    code, stdout, err, _ = _cli("inspect", out)
    assert code == 0 and "measured: imported from" in stdout and "rack/return_temp" in stdout


def test_resample_rule():
    """Interpolation within max_gap_s, the sample itself on its instant, NaN across a wider
    gap and outside the samples (no extrapolation)."""
    t = np.array([0.0, 1.0, 2.0, 10.0, 11.0])
    v = np.array([0.0, 1.0, 4.0, 5.0, 7.0])
    grid = np.array([-0.5, 0.0, 0.5, 1.5, 2.0, 3.0, 9.0, 10.0, 10.5, 11.0, 11.5])
    got = resample(t, v, grid, max_gap_s=3.0)
    np.testing.assert_array_equal(np.isnan(got), [True, False, False, False, False, True, True, False, False, False,
                                                  True])
    np.testing.assert_allclose(got[~np.isnan(got)], [0.0, 0.5, 2.5, 4.0, 5.0, 6.0, 7.0])
    # a gap of exactly max_gap_s is bridged
    assert resample(t, v, np.array([6.0]), max_gap_s=8.0)[0] == pytest.approx(4.5)


def test_interval_mean_of_a_fast_power_signal(tmp_path):
    """resample = "mean": each output sample is the mean over its interval (how our format
    holds powers), the exact integral of the samples' linear interpolant; NaN over a gap
    and where the interval starts before the first sample."""
    t = np.round(np.arange(0.0, 20.0001, 0.1), 10)  # 10 Hz
    v = np.where(t < 5.05, 1000.0, 3000.0) + 50.0 * np.sin(t)
    keep = ~((t > 12.0) & (t < 14.0))  # a 2 s hole
    grid = np.arange(1.0, 21.0)
    got = interval_mean(t[keep], v[keep], grid, 1.0, max_gap_s=0.5)
    fine = np.linspace(0, 1, 2001)
    for k, g in enumerate(grid):
        x = g - 1 + fine
        ref = np.trapezoid(np.interp(x, t[keep], v[keep]), x)
        if 12.0 < g <= 14.0:  # (12, 13] and (13, 14] lie in the hole; (14, 15] starts on a sample
            assert np.isnan(got[k]), g
        else:
            assert got[k] == pytest.approx(ref, rel=1e-9), g
    # the step at 5.05 s: the mean over (5, 6] is not the value at 6 s
    assert abs(got[5] - v[np.flatnonzero(t == 6.0)[0]]) > 50.0
    # through the mapping: the grid starts one interval after the first sample
    rows = "\n".join(f"{float(x)!r},{float(y)!r}" for x, y in zip(t, v))
    (tmp_path / "p.csv").write_text("t,P\n" + rows + "\n")
    (tmp_path / "map.toml").write_text(WIDE_TOML.replace('"rack/supply_temp"', '"rack/it_power"')
                                       .replace('"T"', '"P"').replace("degC", "W") + 'resample = "mean"\n')
    tel = read_telemetry(import_telemetry(tmp_path / "p.csv", tmp_path / "map.toml", tmp_path / "o.h5"))
    np.testing.assert_allclose(tel.time, np.arange(1.0, 21.0))
    np.testing.assert_allclose(tel["rack/it_power"], interval_mean(t, v, tel.time, 1.0, 3.0), rtol=1e-12)
    assert json.loads(tel.attrs["channel_sources"])["rack/it_power"]["resample"] == "mean"


def test_simulated_files_still_need_the_required_channels(tmp_path):
    s = twin.load_scenario(REFERENCE, {"simulation.duration_s": 2.0})
    out = tmp_path / "sim.h5"
    twin.simulate(s, output=out)
    with h5py.File(out, "r+") as f:
        del f["rack/flow"]
    with pytest.raises(twin.TwinInputError, match="rack/flow: required channel missing"):
        read_telemetry(out)
    assert "rack/flow" not in read_telemetry(out, require=()).channels


LONG_CSV = """\
time,channel,value
2024-05-01T12:00:00Z,CDU1.SupplyTemp,30.0
2024-05-01T12:00:00Z,CDU1.Flow,10.0
2024-05-01T12:00:01Z,CDU1.SupplyTemp,30.5
2024-05-01T12:00:02Z,CDU1.SupplyTemp,31.0
2024-05-01T12:00:02Z,CDU1.Flow,10.2
2024-05-01T12:00:02Z,CDU1.Flow,10.4
2024-05-01T12:00:02Z,Room.Humidity,40
2024-05-01T12:00:03Z,CDU1.SupplyTemp,n/a
2024-05-01T12:00:04Z,CDU1.SupplyTemp,32.0
2024-05-01T12:00:04Z,CDU1.Flow,10.6
2024-05-01T12:00:05Z,CDU1.SupplyTemp,32.5
"""
LONG_TOML = """\
[source]
time_unit = "iso"
[output]
interval_s = 1.0
[channels."cdu/supply_temp"]
columns = "CDU1.SupplyTemp"
unit = "degC"
[channels."facility/flow"]
columns = "CDU1.Flow"
unit = "L/s"
"""


def test_long_csv_with_iso_times_and_duplicate_stamps(tmp_path):
    """Long layout (detected: time, channel, value), ISO times as seconds from the first
    stamp, each signal at its own rate; two samples of one stamp are averaged (and said)."""
    (tmp_path / "long.csv").write_text(LONG_CSV)
    (tmp_path / "map.toml").write_text(LONG_TOML)
    code, stdout, err, tb = _cli("import", tmp_path / "long.csv", "-m", tmp_path / "map.toml", "-o", tmp_path / "o.h5")
    assert tb is None and code == 0, err
    assert err.startswith("warning: ") and "averaged" in err and len(err.strip().splitlines()) == 1
    tel = read_telemetry(tmp_path / "o.h5")
    np.testing.assert_allclose(tel.time, [0.0, 1.0, 2.0, 3.0, 4.0])  # both signals from 0 s to 4 s (flow's last)
    np.testing.assert_allclose(tel["cdu/supply_temp"], [30.0, 30.5, 31.0, 31.5, 32.0])  # 'n/a' interpolated across
    np.testing.assert_allclose(tel["facility/flow"], np.array([10.0, 10.15, 10.3, 10.45, 10.6]) * 60)
    assert tel.attrs["time_origin"] == "2024-05-01T12:00:00+00:00"
    info = json.loads(tel.attrs["channel_sources"])
    assert info["facility/flow"]["duplicate_times"] == 1 and info["cdu/supply_temp"]["non_numeric"] == 1


def test_parquet_with_nulls_and_ms_times(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    t_ms = np.arange(0, 10_000, 500, dtype=np.int64)  # 2 Hz for 10 s
    temp = 30.0 + 0.1 * np.arange(t_ms.size)
    speed = [None if k % 4 == 1 else 80.0 for k in range(t_ms.size)]  # a pump speed in %, every other sample
    speed[6] = 81.0
    pq.write_table(pa.table({"ts_ms": t_ms, "supply_degF": temp * 9 / 5 + 32, "pump0_pct": speed,
                             "pump1_pct": pa.array([50.0] * t_ms.size)}), tmp_path / "rack.parquet")
    (tmp_path / "map.toml").write_text("""\
[source]
time = "ts_ms"
time_unit = "ms"
[output]
interval_s = 1.0
[channels."rack/supply_temp"]
columns = "supply_degF"
unit = "degF"
[channels."cdu/pump_speed"]
columns = ["pump0_pct", "pump1_pct"]
unit = "%"
labels = ["cdu1/pump0", "cdu1/pump1"]
""")
    out = import_telemetry(tmp_path / "rack.parquet", tmp_path / "map.toml", tmp_path / "o.h5")
    tel = read_telemetry(out)
    np.testing.assert_allclose(tel.time, np.arange(0.0, 10.0, 1.0))
    np.testing.assert_allclose(tel["rack/supply_temp"], temp[::2], atol=1e-12)
    np.testing.assert_allclose(tel["cdu/pump_speed"][:, 1], 0.5)
    np.testing.assert_allclose(tel["cdu/pump_speed"][:4, 0], [0.8, 0.8, 0.8, 0.81])
    assert tel.labels["cdu/pump_labels"] == ["cdu1/pump0", "cdu1/pump1"]
    assert json.loads(tel.attrs["channel_sources"])["cdu/pump_speed"]["empty_cells"] == 5


def _foreign_h5(path: Path):
    """A building-management export: one group per signal, each with its own time."""
    with h5py.File(path, "w") as f:
        g = f.create_group("bms/rack01")
        t1 = np.arange(0, 60_000, 2_000, dtype=np.int64)  # ms, every 2 s
        g["supply/time"] = t1
        g["supply/time"].attrs["units"] = "ms"
        g["supply/value"] = 305.15 + 0.01 * t1 / 1000  # K
        g["supply/value"].attrs["units"] = "K"
        t2 = np.arange(500, 60_000, 1_000, dtype=np.int64)  # every 1 s, half a second later
        g["pumps/time"] = t2
        g["pumps/speed"] = np.column_stack([np.full(t2.size, 90.0), np.full(t2.size, 0.0)])
        g["pumps/speed"][10, 0] = np.nan


def test_foreign_hdf5_with_a_time_per_signal(tmp_path):
    _foreign_h5(tmp_path / "bms.h5")
    (tmp_path / "map.toml").write_text(H5_TOML + """\
[channels."cdu/pump_speed"]
columns = ["/bms/rack01/pumps/speed"]
time = "/bms/rack01/pumps/time"
unit = "%"
labels = ["cdu1/pump0", "cdu1/pump1"]
""")
    out = import_telemetry(tmp_path / "bms.h5", tmp_path / "map.toml", tmp_path / "o.h5")
    tel = read_telemetry(out)
    np.testing.assert_allclose(tel.time, np.arange(2.0, 59.0, 2.0))  # pumps from 0.5 s (grid on multiples of 2 s), supply to 58 s
    np.testing.assert_allclose(tel["rack/supply_temp"], 32.0 + 0.01 * tel.time, atol=1e-9)
    np.testing.assert_allclose(tel["cdu/pump_speed"], np.tile([0.9, 0.0], (tel.time.size, 1)))
    info = json.loads(tel.attrs["channel_sources"])["cdu/pump_speed"]
    assert info["source_columns"] == ["/bms/rack01/pumps/speed[:, 0]", "/bms/rack01/pumps/speed[:, 1]"]
    assert info["non_numeric"] == 1


def test_our_own_hdf5_carries_labels_through(tmp_path):
    s = twin.load_scenario(REFERENCE, {"simulation.duration_s": 6.0})
    sim = tmp_path / "sim.h5"
    twin.simulate(s, output=sim)
    (tmp_path / "map.toml").write_text("""\
[source]
time_unit = "s"
[output]
interval_s = 2.0
[channels."gpu/junction_temp"]
columns = ["gpu/junction_temp"]
unit = "degC"
[channels."rack/it_power"]
columns = "rack/it_power"
unit = "W"
[channels."cdu/pump_speed"]
columns = ["cdu/pump_speed"]
unit = "1"
""")
    out = import_telemetry(sim, tmp_path / "map.toml", tmp_path / "o.h5")
    a, b = read_telemetry(sim), read_telemetry(out)
    np.testing.assert_allclose(b.time, [2.0, 4.0, 6.0])  # on multiples of the interval
    np.testing.assert_allclose(b["gpu/junction_temp"], a["gpu/junction_temp"][[1, 3, 5]], rtol=1e-6)
    assert b.labels["gpu/labels"] == a.labels["gpu/labels"]
    assert b.labels["cdu/pump_labels"] == a.labels["cdu/pump_labels"] == ["cdu1/pump0", "cdu1/pump1"]
    # the measured file has the dimension scales a run's has: xarray opens it labelled
    import xarray as xr
    for group, quantity, dim, key in (("gpu", "junction_temp", "gpu", "gpu/labels"),
                                      ("cdu", "pump_speed", "pump", "cdu/pump_labels")):
        with xr.open_dataset(out, engine="h5netcdf", group=group) as ds:
            assert ds[quantity].dims == ("time", dim) and list(ds[dim].values) == b.labels[key]
            np.testing.assert_array_equal(ds["time"].values, b.time)
            np.testing.assert_array_equal(ds[quantity].values, b[f"{group}/{quantity}"])
    # a measured file with rack/it_power replays as a power trace
    from twin.traces import read_trace
    t, w = read_trace(out, "")
    np.testing.assert_allclose(w, a["rack/it_power"][[1, 3, 5]])


WIDE = "t,T\n0,30\n1,31\n2,32\n3,33\n4,34\n"
WIDE_TOML = """\
[source]
time = "t"
time_unit = "s"
[output]
interval_s = 1.0
[channels."rack/supply_temp"]
columns = "T"
unit = "degC"
"""


def test_a_csv_cut_mid_line_imports_its_complete_lines(tmp_path):
    (tmp_path / "cut.csv").write_text(WIDE + "5,3")  # the logger died writing "5,35"
    (tmp_path / "map.toml").write_text(WIDE_TOML)
    code, stdout, err, tb = _cli("import", tmp_path / "cut.csv", "-m", tmp_path / "map.toml", "-o", tmp_path / "o.h5")
    assert tb is None and code == 0, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning: ") and "truncated" in lines[0]
    tel = read_telemetry(tmp_path / "o.h5")
    assert tel.attrs["truncated"]
    np.testing.assert_allclose(tel["rack/supply_temp"], [30, 31, 32, 33, 34])
    code, stdout, _, _ = _cli("inspect", tmp_path / "o.h5")
    assert "TRUNCATED" in stdout


def test_duplicate_time_stamps_are_averaged(tmp_path):
    """Two rows with one time stamp (a logger that re-sent a row, or stamps of 1 s
    resolution on a faster sensor): the samples are averaged, counted and said."""
    (tmp_path / "s.csv").write_text("t,T\n0,30\n1,31\n1,33\n2,34\n3,35\n")
    (tmp_path / "map.toml").write_text(WIDE_TOML)
    said = []
    tel = read_telemetry(import_telemetry(tmp_path / "s.csv", tmp_path / "map.toml", tmp_path / "o.h5",
                                          on_warning=said.append))
    np.testing.assert_allclose(tel["rack/supply_temp"], [30, 32, 34, 35])
    assert json.loads(tel.attrs["channel_sources"])["rack/supply_temp"]["duplicate_times"] == 1
    assert len(said) == 1 and "averaged" in said[0]


def test_out_of_range_values_can_be_dropped(tmp_path):
    (tmp_path / "s.csv").write_text("t,T,F\n0,30,10\n1,-300,10\n2,32,-1\n3,33,10\n")
    toml = WIDE_TOML + '[channels."rack/flow"]\ncolumns = "F"\nunit = "L/min"\n'
    (tmp_path / "map.toml").write_text(toml.replace("interval_s = 1.0", "interval_s = 1.0\ndrop_out_of_range = true"))
    tel = read_telemetry(import_telemetry(tmp_path / "s.csv", tmp_path / "map.toml", tmp_path / "o.h5"))
    np.testing.assert_allclose(tel["rack/supply_temp"], [30, 31, 32, 33])  # interpolated across the dropped value
    info = json.loads(tel.attrs["channel_sources"])
    assert info["rack/supply_temp"]["out_of_range"] == 1 and info["rack/flow"]["out_of_range"] == 1


def test_a_european_bms_export_with_decimal_commas(tmp_path):
    """Semicolons, decimal commas, a byte-order mark, CRLF line ends, quoted headers with
    units and a degree sign, blank lines at the end: as a European BMS writes CSV."""
    rows = ['"Zeit";"Supply Temp [\u00b0C]";"Flow [gpm]"'] + [
        f"2025-03-14 09:00:0{i};{30 + i / 4:.2f};{40 + i / 10:.1f}".replace(".", ",") for i in range(5)]
    (tmp_path / "bms.csv").write_bytes(("\r\n".join(rows) + "\r\n\r\n\r\n").encode("utf-8-sig"))
    (tmp_path / "map.toml").write_text(
        '[source]\ntime = "Zeit"\ntime_unit = "iso"\ndelimiter = ";"\ndecimal = ","\n[output]\ninterval_s = 1.0\n'
        '[channels."rack/supply_temp"]\ncolumns = "Supply Temp [\u00b0C]"\nunit = "degC"\n'
        '[channels."rack/flow"]\ncolumns = "Flow [gpm]"\nunit = "gpm"\n', encoding="utf-8")
    tel = read_telemetry(import_telemetry(tmp_path / "bms.csv", tmp_path / "map.toml", tmp_path / "o.h5"))
    np.testing.assert_allclose(tel["rack/supply_temp"], [30.0, 30.25, 30.5, 30.75, 31.0])
    np.testing.assert_allclose(tel["rack/flow"], (40 + np.arange(5) / 10) * GALLON_L)
    info = json.loads(tel.attrs["channel_sources"])
    assert info["rack/supply_temp"]["non_numeric"] == 0 and info["rack/flow"]["non_numeric"] == 0


# --------------------------------------------------------------------------- bad input


def _write(d: Path, name: str, content):
    p = d / name
    if isinstance(content, bytes):
        p.write_bytes(content)
    else:
        p.write_text(content)
    return p


def _truncated_h5(d):
    src = d / "full.h5"
    _foreign_h5(src)
    data = src.read_bytes()
    src.unlink()
    return _write(d, "bms.h5", data[: len(data) // 2])


def _truncated_parquet(d):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"t": np.arange(100.0), "T": np.full(100, 30.0)}), d / "full.parquet")
    data = (d / "full.parquet").read_bytes()
    (d / "full.parquet").unlink()
    return _write(d, "rack.parquet", data[: len(data) * 2 // 3])


H5_TOML = """\
[source]
time_unit = "ms"
[output]
interval_s = 2.0
[channels."rack/supply_temp"]
columns = "bms/rack01/supply/value"
time = "bms/rack01/supply/time"
unit = "K"
"""


def _case(source, mapping=WIDE_TOML, *needles, name="s.csv", out="out.h5"):
    """``source``: text, bytes or d -> path; ``mapping``: text or (d -> path)."""
    def make(d):
        src = source(d) if callable(source) else _write(d, name, source)
        m = mapping(d) if callable(mapping) else _write(d, "map.toml", mapping)
        o = out(d, src, m) if callable(out) else d / out
        return ["import", str(src), "--mapping", str(m), "-o", str(o)]
    return make, needles


def _edit(old, new):
    assert old in WIDE_TOML, old
    return WIDE_TOML.replace(old, new, 1)


def _plus(extra):
    return WIDE_TOML + extra


GPU = '[channels."gpu/junction_temp"]\ncolumns = ["T"]\nunit = "degC"\n'
BAD = {
    # the mapping
    "mapping/missing-column": _case(WIDE, _edit('columns = "T"', 'columns = "Temp"'), "map.toml",
                                    'channels."rack/supply_temp".columns', "no column 'Temp'", "'T'"),
    "mapping/missing-column-near": _case("t,SupplyTemp_F,ReturnTemp_F\n0,1,2\n1,1,2\n",
                                         _edit('columns = "T"', 'columns = "SuplyTemp_F"'), "map.toml",
                                         "did you mean 'SupplyTemp_F'"),
    "mapping/missing-time-column": _case(WIDE, _edit('time = "t"', 'time = "time"'), "map.toml", "source.time",
                                         "no column 'time'"),
    "mapping/another-delimiter": _case(WIDE.replace(",", ";"), WIDE_TOML, "map.toml", "source.time", "no column 't'",
                                       "set source.delimiter = ';'"),
    "mapping/unknown-unit": _case(WIDE, _edit('unit = "degC"', 'unit = "Celsius"'), "map.toml",
                                  'channels."rack/supply_temp".unit', "unknown unit 'Celsius'"),
    "mapping/unit-of-another-quantity": _case(WIDE, _edit('unit = "degC"', 'unit = "gpm"'), "map.toml",
                                              'channels."rack/supply_temp".unit', "L/min", "degC"),
    "mapping/unknown-key": _case(WIDE, _edit("interval_s", "intervl_s = 1.0\ninterval_s"), "map.toml",
                                 "output.intervl_s", "unknown key", "did you mean 'interval_s'"),
    "mapping/unknown-channel-key": _case(WIDE, _edit('unit = "degC"', 'unit = "degC"\noffset = 2.0'), "map.toml",
                                         'channels."rack/supply_temp".offset', "unknown key", "offset_s"),
    "mapping/unknown-table": _case(WIDE, WIDE_TOML + "[resample]\nx = 1\n", "map.toml", "resample", "unknown key"),
    "mapping/malformed-toml": _case(WIDE, WIDE_TOML.replace("[output]", "[output"), "map.toml", "malformed TOML"),
    "mapping/no-interval": _case(WIDE, _edit("interval_s = 1.0", ""), "map.toml", "output.interval_s", "required"),
    "mapping/negative-interval": _case(WIDE, _edit("interval_s = 1.0", "interval_s = -1.0"), "map.toml",
                                       "output.interval_s", "greater than 0"),
    "mapping/interval-text": _case(WIDE, _edit("interval_s = 1.0", 'interval_s = "1"'), "map.toml",
                                   "output.interval_s", "expected a number"),
    "mapping/interval-nan": _case(WIDE, _edit("interval_s = 1.0", "interval_s = nan"), "map.toml",
                                  "output.interval_s", "finite"),
    "mapping/no-time-unit": _case(WIDE, _edit('time_unit = "s"\n', ""), "map.toml", "source.time_unit", "required"),
    "mapping/time-unit-unknown": _case(WIDE, _edit('time_unit = "s"', 'time_unit = "min"'), "map.toml",
                                       "source.time_unit", "'min'"),
    "mapping/no-channels": _case(WIDE, WIDE_TOML.split("[channels")[0], "map.toml", "channels", "required"),
    "mapping/channel-name": _case(WIDE, _edit('"rack/supply_temp"', '"rack.supply_temp"'), "map.toml",
                                  'channels."rack.supply_temp"', "not a channel name"),
    "mapping/channel-named-as-a-scale": _case(WIDE, _plus(GPU.replace("gpu/junction_temp", "gpu/gpu")), "map.toml",
                                              'channels."gpu/gpu"', "member labels"),
    "mapping/channel-named-time": _case(WIDE, _edit('"rack/supply_temp"', '"rack/time"'), "map.toml",
                                        'channels."rack/time"', "time"),
    "mapping/member-channel-one-column": _case(WIDE, _plus(GPU.replace('["T"]', '"T"')), "map.toml",
                                               'channels."gpu/junction_temp".columns', "list"),
    "mapping/no-labels": _case(WIDE, _plus(GPU), "map.toml", 'channels."gpu/junction_temp".labels', "required"),
    "mapping/labels-count": _case(WIDE, _plus(GPU + 'labels = ["a", "b"]\n'), "map.toml",
                                  'channels."gpu/junction_temp".labels', "2 labels for 1"),
    "mapping/labels-disagree": _case(WIDE, _plus(GPU + 'labels = ["a"]\n[channels."gpu/power"]\ncolumns = ["T"]\n'
                                                       'unit = "W"\nlabels = ["b"]\n'), "map.toml",
                                     'channels."gpu/power".labels', "gpu/labels"),
    "mapping/time-per-column-in-csv": _case(WIDE, _edit('unit = "degC"', 'unit = "degC"\ntime = "t"'), "map.toml",
                                            'channels."rack/supply_temp".time', "HDF5"),
    "mapping/slow-channel-default-gap": _case("t,T\n0,30\n10,31\n20,32\n30,33\n", WIDE_TOML, "map.toml",
                                              "output.max_gap_s", "every 10 s",
                                              'channels."rack/supply_temp".max_gap_s'),
    "mapping/missing-file": _case(WIDE, lambda d: d / "none.toml", "none.toml", "not found"),
    "mapping/resample-unknown": _case(WIDE, _edit('unit = "degC"', 'unit = "degC"\nresample = "average"'),
                                      "map.toml", 'channels."rack/supply_temp".resample', "'mean'"),
    "mapping/span-unknown": _case(WIDE, _edit("interval_s = 1.0", 'interval_s = 1.0\nspan_channels = ["rack/flow"]'),
                                  "map.toml", "output.span_channels.0", "not a channel"),
    # the source's time
    "time/not-monotonic": _case("t,T\n0,30\n1,31\n2,32\n1.5,33\n3,34\n", WIDE_TOML, "s.csv", "source.time",
                                "line 5", "before the previous"),
    "time/text": _case("t,T\n0,30\n1,31\nnoon,32\n", WIDE_TOML, "s.csv", "source.time", "line 4", "'noon'"),
    "time/empty": _case("t,T\n0,30\n,31\n2,32\n", WIDE_TOML, "s.csv", "source.time", "line 3"),
    "time/iso-in-seconds": _case("t,T\n2024-05-01T00:00:00,30\n", WIDE_TOML, "s.csv", "source.time", "iso"),
    "time/bad-iso": _case("t,T\n2024-05-01T00:00:00,30\n2024-05-01T00:00:61,31\n",
                          _edit('time_unit = "s"', 'time_unit = "iso"'), "s.csv", "line 3", "ISO 8601"),
    "time/iso-mixed-zones": _case("t,T\n2024-05-01T00:00:00Z,30\n2024-05-01T00:00:01,31\n",
                                  _edit('time_unit = "s"', 'time_unit = "iso"'), "s.csv", "line 3", "time zone"),
    "time/iso-not-monotonic": _case("t,T\n2024-05-01T00:00:02Z,30\n2024-05-01T00:00:01Z,31\n",
                                    _edit('time_unit = "s"', 'time_unit = "iso"'), "s.csv", "line 3",
                                    "'2024-05-01T00:00:01Z'", "before the previous"),
    "time/long-signal-not-monotonic": _case(LONG_CSV.replace("12:00:04Z,CDU1.Flow", "12:00:01Z,CDU1.Flow"), LONG_TOML,
                                            "s.csv", "source.time", "line 11", "before the previous"),
    "time/hdf5-goes-back": _case(lambda d: (_foreign_h5(d / "bms.h5"), _h5_set(d / "bms.h5", "bms/rack01/supply/time", 5,
                                                                                0), d / "bms.h5")[-1],
                                 H5_TOML, "bms.h5", 'channels."rack/supply_temp".time', "sample 5 of",
                                 "before the previous"),
    "time/no-overlap": _case("t,T,F\n0,30,\n1,31,\n2,,10\n3,,10\n",
                             _plus('[channels."rack/flow"]\ncolumns = "F"\nunit = "L/min"\n'), "s.csv",
                             "no time when every span channel has data"),
    # the source's values
    "value/temperature-out-of-range": _case("t,T\n0,30\n1,31\n2,212\n", WIDE_TOML, "s.csv",
                                            'channels."rack/supply_temp"', "line 4", "t = 2 s", "212 degC",
                                            "drop_out_of_range"),
    "value/kelvin-given-as-celsius": _case("t,T\n0,303.15\n1,304\n", WIDE_TOML, "s.csv", "line 2", "outside -50-150"),
    "value/negative-flow": _case("t,F\n0,10\n1,-2\n", WIDE_TOML.replace('"rack/supply_temp"', '"rack/flow"')
                                 .replace('"T"', '"F"').replace("degC", "gpm"), "s.csv", 'channels."rack/flow"',
                                 "line 3", "below 0 L/min"),
    "value/decimal-comma-unset": _case("t;T\r\n0;30\r\n1;30,5\r\n2;31\r\n", _edit('time_unit = "s"',
                                       'time_unit = "s"\ndelimiter = ";"'), "s.csv", 'channels."rack/supply_temp"',
                                       "line 3", "'30,5'", 'source.decimal = ","'),
    "value/decimal-comma-everywhere": _case("t;T\n0;30,25\n1;30,5\n", _edit('time_unit = "s"',
                                            'time_unit = "s"\ndelimiter = ";"'), "s.csv", "line 2", "'30,25'",
                                            'source.decimal = ","'),
    "value/thousands-separator": _case('t,P\n0,"1,250"\n1,"1,300"\n', _edit('"rack/supply_temp"', '"rack/it_power"')
                                       .replace('"T"', '"P"').replace("degC", "W"), "s.csv", "'1,250'"),
    "mapping/decimal-unknown": _case(WIDE, _edit('time_unit = "s"', 'time_unit = "s"\ndecimal = "\'"'), "map.toml",
                                     "source.decimal", "','"),
    "value/negative-chip-power": _case("t,P\n0,900\n1,-5\n", GPU.replace("junction_temp", "power")
                                       .replace('["T"]', '["P"]').replace("degC", "W") + 'labels = ["rack01/tray00/gpu0"]\n'
                                       + WIDE_TOML.split("[channels")[0], "s.csv", 'channels."gpu/power"', "line 3",
                                       "-5 W", "below 0 W"),
    "value/chip-power-in-w-declared-kw": _case("t,P\n0,900\n1,950\n", GPU.replace("junction_temp", "power")
                                               .replace('["T"]', '["P"]').replace("degC", "kW")
                                               + 'labels = ["rack01/tray00/gpu0"]\n' + WIDE_TOML.split("[channels")[0],
                                               "s.csv", "line 2", "900000 W (900 kW)", "outside 0-5000 W"),
    "value/percent-given-as-fraction": _case("t,S\n0,72.5\n1,72.5\n", WIDE_TOML.split("[channels")[0]
                                             + '[channels."cdu/pump_speed"]\ncolumns = ["S"]\nunit = "1"\n'
                                               'labels = ["cdu1/pump0"]\n', "s.csv", 'channels."cdu/pump_speed"',
                                             "line 2", "72.5 1", "outside 0-1.2 1"),
    "value/flow-beyond-any-loop": _case("t,F\n0,150\n1,150000\n", WIDE_TOML.replace('"rack/supply_temp"', '"rack/flow"')
                                        .replace('"T"', '"F"').replace("degC", "L/min"), "s.csv", "line 3",
                                        "outside 0-20000 L/min"),
    "value/no-number-at-all": _case("t,T\n0,x\n1,\n", WIDE_TOML, "s.csv", 'channels."rack/supply_temp"',
                                    "no numeric value"),
    # the source file
    "file/garbage-bytes": _case(np.random.default_rng(3).bytes(4096), WIDE_TOML, "s.csv"),
    "file/garbage-named-h5": _case(np.random.default_rng(4).bytes(4096), WIDE_TOML, "s.h5", "HDF5", name="s.h5"),
    "file/garbage-named-parquet": _case(np.random.default_rng(5).bytes(4096), WIDE_TOML, "s.parquet", "Parquet",
                                        name="s.parquet"),
    "file/empty": _case(b"", WIDE_TOML, "s.csv", "empty"),
    "file/only-blank-lines": _case("\n\n\n", WIDE_TOML, "s.csv", "empty"),
    "file/header-only": _case("t,T\n", WIDE_TOML, "s.csv", "no data rows"),
    "file/one-cut-line": _case("t,T", WIDE_TOML, "s.csv", "truncated"),
    "file/ragged-row": _case("t,T\n0,30\n1,31,7\n2,32\n", WIDE_TOML, "s.csv", "line 3", "3 cells"),
    "file/nul-byte": _case(b"t,T\n0,30\n1,3\x001\n", WIDE_TOML, "s.csv", "line 3", "NUL"),
    "file/truncated-hdf5": _case(_truncated_h5, H5_TOML, "bms.h5", "HDF5"),
    "file/truncated-parquet": _case(_truncated_parquet, WIDE_TOML.replace('"T"', '"T"'), "rack.parquet", "Parquet"),
    "file/missing": _case(lambda d: d / "none.csv", WIDE_TOML, "none.csv", "SOURCE", "not found"),
    "file/directory": _case(lambda d: d, WIDE_TOML, "SOURCE", "directory"),
    "hdf5/dataset-missing": _case(lambda d: (_foreign_h5(d / "bms.h5"), d / "bms.h5")[1],
                                  H5_TOML.replace("supply/value", "supply/valu"), "map.toml",
                                  'channels."rack/supply_temp".columns', "did you mean 'bms/rack01/supply/value'"),
    "hdf5/time-unit-disagrees": _case(lambda d: (_foreign_h5(d / "bms.h5"), d / "bms.h5")[1],
                                      H5_TOML.replace('time_unit = "ms"', 'time_unit = "s"'), "map.toml",
                                      'channels."rack/supply_temp".time', "ms"),
    "hdf5/unit-disagrees": _case(lambda d: (_foreign_h5(d / "bms.h5"), d / "bms.h5")[1],
                                 H5_TOML.replace('unit = "K"', 'unit = "degC"'), "map.toml",
                                 'channels."rack/supply_temp".unit', "'K'"),
    "hdf5/time-length": _case(lambda d: (_foreign_h5(d / "bms.h5"), d / "bms.h5")[1],
                              H5_TOML.replace("supply/time", "pumps/time"), "bms.h5", "samples but its time dataset"),
    "long/signal-missing": _case(LONG_CSV, LONG_TOML.replace('"CDU1.Flow"', '"CDU1.Flw"'), "map.toml",
                                 'channels."facility/flow".columns', "did you mean 'CDU1.Flow'"),
    "parquet/column-missing": _case(lambda d: _parquet(d), WIDE_TOML.replace('"T"', '"Temp"'), "map.toml",
                                    'channels."rack/supply_temp".columns', "no column 'Temp'"),
    # the output
    "out/is-the-source": _case(WIDE, WIDE_TOML, "-o", "input", out=lambda d, s, m: s),
    "out/is-the-mapping": _case(WIDE, WIDE_TOML, "-o", "input", out=lambda d, s, m: m),
    "out/someone-elses-file": _case(WIDE, WIDE_TOML, "notes.txt", "-o", "not a rack-twin telemetry file",
                                    out=lambda d, s, m: _write(d, "notes.txt", "keep\n")),
}


def _h5_set(path, key, index, value):
    with h5py.File(path, "r+") as f:
        data = f[key][()]
        data[index] = value
        f[key][...] = data


def _parquet(d):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"t": np.arange(5.0), "T": np.full(5, 30.0)}), d / "rack.parquet")
    return d / "rack.parquet"


def _hashes(d: Path) -> dict:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
def test_bad_import_exits_2_with_one_line_and_writes_nothing(case, tmp_path):
    make, needles = BAD[case]
    d = tmp_path / "case"
    d.mkdir()
    args = make(d)
    before = _hashes(d)
    code, out, err, tb = _cli(*args)
    assert tb is None, f"exception: {tb}\n{err}"
    lines = err.strip().splitlines()
    assert code == 2, f"exit {code}\nstdout: {out[-500:]}\nstderr: {err[-2000:]}"
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    for needle in needles:
        assert needle in lines[0], f"{needle!r} not in {lines[0]!r}"
    assert _hashes(d) == before, "an input changed"
    assert not (d / "out.h5").exists()
    assert not list(tmp_path.rglob("*.partial")), "a .partial was left"


def test_missing_mapping_option_is_one_line():
    code, _, err, tb = _cli("import", "x.csv", "-o", "o.h5")
    assert tb is None and code == 2 and err.strip() == "error: --mapping: missing option"


def test_import_leaves_no_partial_when_the_write_fails(tmp_path, monkeypatch):
    """An error while writing (here: a full disk, simulated) removes OUT.partial."""
    from twin import telemetry

    (tmp_path / "s.csv").write_text(WIDE)
    (tmp_path / "map.toml").write_text(WIDE_TOML)

    def boom(self, time, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(telemetry.TelemetryWriter, "append", boom)
    with pytest.raises(OSError):
        import_telemetry(tmp_path / "s.csv", tmp_path / "map.toml", tmp_path / "o.h5")
    assert sorted(os.listdir(tmp_path)) == ["map.toml", "s.csv"]


def test_the_examples_are_what_the_script_writes_and_import(tmp_path):
    """calibration/examples/import/: the CSV files are the generator's (same seed), and
    every mapping imports its source (Parquet and HDF5 written by the generator)."""
    import importlib.util

    ex = ROOT / "calibration" / "examples" / "import"
    spec = importlib.util.spec_from_file_location("make_examples", ex / "make_examples.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    rng = np.random.default_rng(2025)
    assert gen.wide_csv(rng) == (ex / "rack-wide.csv").read_text()
    assert gen.long_csv(rng) == (ex / "rack-long.csv").read_text()
    gen.write_binary(tmp_path, rng)
    pairs = [(ex / "rack-wide.csv", "rack-wide.toml"), (ex / "rack-long.csv", "rack-long.toml"),
             (tmp_path / "rack.parquet", "rack-parquet.toml"), (tmp_path / "bms.h5", "bms-hdf5.toml")]
    said = []
    for src, mapping in pairs:
        tel = read_telemetry(import_telemetry(src, ex / mapping, tmp_path / "out" / (src.stem + ".h5"),
                                             on_warning=said.append))
        assert tel.time.size >= 80 and tel.attrs["measured"]
        assert all(np.isfinite(v).mean() > 0.7 for v in tel.channels.values())
    assert said == []
    wide = read_telemetry(tmp_path / "out" / "rack-wide.h5")
    assert np.isnan(wide["rack/flow"]).sum() == 40  # the 40 s hole stays a hole
    assert wide.attrs["time_origin"] == "2025-03-14T09:00:00+00:00"


def test_epoch_ms_stamps_print_as_a_span_not_in_exponent_notation(tmp_path):
    """A logger's epoch milliseconds keep their axis (seconds since 1970): the summary and
    `twin inspect` print the span's ends whole and its length, not '1.74194e+09-1.74194e+09 s'
    (which hides a 10-minute file as a point)."""
    t0_ms = 1_741_939_200_000  # 2025-03-14T08:00:00Z
    rows = ["ts,supply_C"] + [f"{t0_ms + 1000 * k},{30 + 0.01 * k}" for k in range(601)]
    (tmp_path / "log.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "map.toml").write_text('[source]\ntime = "ts"\ntime_unit = "ms"\n[output]\ninterval_s = 1.0\n'
                                       '[channels."rack/supply_temp"]\ncolumns = "supply_C"\nunit = "degC"\n')
    code, stdout, err, tb = _cli("import", tmp_path / "log.csv", "-m", tmp_path / "map.toml", "-o", tmp_path / "o.h5")
    assert code == 0 and tb is None, err
    assert "e+09" not in stdout and "1741939200.000-1741939800.000 s (600 s)" in stdout, stdout
    code, stdout, err, tb = _cli("inspect", tmp_path / "o.h5")
    assert code == 0 and tb is None, err
    assert "e+09" not in stdout and "(600 s)" in stdout, stdout
    assert "imported from" in stdout and "log.csv" in stdout, stdout
