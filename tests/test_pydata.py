"""The PyData interface: results files that xarray opens with their coordinates (HDF5
dimension scales, schema /2), ``twin.open_results`` / ``Result.to_xarray`` (an
xarray.Dataset) and ``twin.margins_frame`` (a pandas.DataFrame), and old (/1) files."""
import subprocess
import sys

import h5py
import numpy as np
import pytest
import xarray as xr

import twin
from twin.importer import import_telemetry
from twin.telemetry import BATCH_ROWS, CHUNK_ROWS, MARGIN_COLUMNS, TelemetryWriter, read_telemetry

from .conftest import REFERENCE, ROOT

ROW = ROOT / "scenarios" / "row-8x-nvl72-w32.toml"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A 20 s reference run streamed to a file, and its Result."""
    out = tmp_path_factory.mktemp("pydata") / "ref.h5"
    s = twin.load_scenario(REFERENCE, {"simulation.duration_s": 20.0})
    return out, twin.simulate(s, output=out)


@pytest.fixture(scope="module")
def row_run(tmp_path_factory):
    """Two racks on two CDUs for 10 s: rack and cdu members."""
    out = tmp_path_factory.mktemp("pydata-row") / "row.h5"
    s = twin.load_scenario(ROW, {"simulation.duration_s": 10.0, "row.racks": [{"count": 2}], "row.cdu_count": 2,
                                 "controls.flow_setpoint_lpm": 300.0})
    return out, twin.simulate(s, output=out)


def _check_group(path, group, channel, dim, tel):
    """xarray opens ``group`` of the file with coordinates ``time`` and ``dim`` that are
    the file's times and labels, and the channel's values and units."""
    ds = xr.open_dataset(path, engine="h5netcdf", group=group)
    quantity = channel.split("/")[1]
    assert ds[quantity].dims == ("time", dim)
    np.testing.assert_array_equal(ds["time"].values, tel.time)
    key = "cdu/pump_labels" if dim == "pump" else f"{dim}/labels"
    assert list(ds[dim].values) == tel.labels[key]
    np.testing.assert_array_equal(ds[quantity].values, tel[channel])
    assert ds[quantity].attrs["units"] == tel.units[channel]
    ds.close()


def test_xarray_opens_each_group_of_a_results_file_with_labelled_members(run):
    path, _ = run
    tel = read_telemetry(path)
    assert tel.attrs["schema"] == "rack-twin-telemetry/2"
    assert tel.labels["gpu/labels"][9] == "rack01/tray02/gpu1"  # chips in tray order, as ever
    for group, channel, dim in (("gpu", "gpu/junction_temp", "gpu"), ("cpu", "cpu/power", "cpu"),
                                ("nvswitch", "nvswitch/junction_temp", "nvswitch"), ("tray", "tray/flow", "tray"),
                                ("cdu", "cdu/pump_speed", "pump")):
        _check_group(path, group, channel, dim, tel)
    root = xr.open_dataset(path, engine="h5netcdf")
    np.testing.assert_array_equal(root["time"].values, tel.time)
    assert root.attrs["verdict"] == "ok" and root.attrs["scenario"] == tel.attrs["scenario"]
    root.close()
    # the whole tree: every dataset has its dimensions (a dataset without would raise)
    tree = xr.open_datatree(path, engine="h5netcdf")
    assert {"/gpu", "/tray", "/cdu", "/rack", "/facility", "/margins"} <= set(tree.groups)
    assert list(tree["margins"]["margin"].values) == list(twin.margins_frame(path)["name"])
    np.testing.assert_array_equal(tree["rack"]["supply_temp"].values, tel["rack/supply_temp"])
    tree.close()


def test_xarray_opens_a_row_with_rack_and_cdu_members(row_run):
    path, _ = row_run
    tel = read_telemetry(path)
    assert tel.labels["rack/labels"] == ["rack01", "rack02"] and tel.labels["cdu/labels"] == ["cdu1", "cdu2"]
    _check_group(path, "rack", "rack/supply_temp", "rack", tel)
    _check_group(path, "cdu", "cdu/heat", "cdu", tel)
    _check_group(path, "cdu", "cdu/pump_power", "pump", tel)
    _check_group(path, "facility", "facility/return_temp", "cdu", tel)  # each CDU's facility water
    ds = twin.open_results(path)
    assert list(ds["rack"].values) == ["rack01", "rack02"] and list(ds["cdu"].values) == ["cdu1", "cdu2"]
    assert ds["facility_return_temp"].dims == ("time", "cdu") and ds["row_flow"].dims == ("time",)
    assert ds["gpu"].size == 144 and str(ds["gpu"].values[72]).startswith("rack02/")


def test_open_results_and_to_xarray_give_the_same_dataset(run):
    path, result = run
    tel = read_telemetry(path)
    ds = twin.open_results(path)
    mem = result.to_xarray()
    xr.testing.assert_identical(ds.drop_attrs(deep=False), mem.drop_attrs(deep=False))
    assert set(ds.data_vars) >= {name.replace("/", "_") for name in tel.channels}
    for name, values in tel.channels.items():
        var = ds[name.replace("/", "_")]
        np.testing.assert_array_equal(var.values, values)
        assert var.attrs["units"] == tel.units[name] and var.attrs["channel"] == name
    assert list(ds["gpu"].values) == tel.labels["gpu/labels"]
    assert list(ds["pump"].values) == tel.labels["cdu/pump_labels"]
    assert ds["gpu_junction_temp"].sel(gpu="rack01/tray09/gpu3").shape == (20,)
    assert ds["time"].attrs["units"] == "s"
    for key in ("scenario", "verdict", "complete", "end_reason", "schema", "overrides"):
        assert ds.attrs[key] == tel.attrs[key], key
    assert ds.attrs["complete"] == 1 and type(ds.attrs["complete"]) is int  # netCDF has no boolean
    assert mem.attrs["verdict"] == result.margin_table.verdict


def test_the_dataset_keeps_the_events_and_writes_back_to_netcdf(tmp_path):
    s = twin.load_scenario(ROOT / "scenarios" / "faults" / "pump-trip-n1.toml", {"simulation.duration_s": 70.0})
    r = twin.simulate(s)  # the pump trips at 60 s
    ds = r.to_xarray()
    kinds = list(ds["event_kind"].values)
    assert "pump_trip" in kinds and ds["event_time"].attrs["units"] == "s"
    k = kinds.index("pump_trip")
    assert (float(ds["event_time"].values[k]), str(ds["event_target"].values[k])) in \
        {(t, g) for t, kind, g in r.telemetry().events if kind == "pump_trip"}
    out = tmp_path / "again.nc"
    ds.to_netcdf(out, engine="h5netcdf")
    back = xr.open_dataset(out, engine="h5netcdf")
    np.testing.assert_array_equal(back["gpu_power"].values, ds["gpu_power"].values)
    back.close()


def test_margins_frame_of_a_result_and_of_its_file_agree(run):
    path, result = run
    a, b = result.margins_frame(), twin.margins_frame(path)
    assert list(a.columns) == list(MARGIN_COLUMNS) == ["name", "value", "unit", "limit", "sense", "status",
                                                      "instance", "note"]
    assert list(a["name"]) == [r.name for r in result.margin_table.rows]
    np.testing.assert_array_equal(a["value"].to_numpy(), b["value"].to_numpy())
    np.testing.assert_array_equal(a["limit"].to_numpy(), b["limit"].to_numpy())  # NaN where a figure
    for col in ("name", "unit", "sense", "status", "instance", "note"):
        assert list(a[col]) == list(b[col]), col
    gpu = a.set_index("name").loc["gpu_junction_margin_k"]
    assert gpu["value"] == pytest.approx(result.margins["gpu_junction_margin_k"])
    assert gpu["status"] == "ok" and gpu["sense"] == "min" and gpu["unit"] == "K" and gpu["limit"] == 0.0
    figure = a.set_index("name").loc["gpu_junction_max_c"]
    assert np.isnan(figure["limit"]) and figure["status"] == ""
    assert twin.margins_frame(result).equals(a)


def test_in_memory_result_saved_to_hdf5_keeps_its_dimension_scales(tmp_path):
    r = twin.simulate(twin.load_scenario(REFERENCE, {"simulation.duration_s": 4.0}))
    out = tmp_path / "saved.h5"
    r.to_hdf5(out)
    tel = r.telemetry()
    _check_group(out, "gpu", "gpu/power", "gpu", tel)
    _check_group(out, "tray", "tray/return_temp", "tray", tel)


def test_streamed_writes_keep_each_groups_time_and_its_members(tmp_path):
    """Rows in pieces across several flushes: the root time, each group's copy of it and
    the data stay whole and in order; members keep their labels; a member dimension
    without labels is a dimension, not a variable."""
    channels = {"a/x": ("K", None, "f8"), "a/y": ("W", 3, "f4"), "b/z": ("1", 2, "f4")}
    out = tmp_path / "w.h5"
    w = TelemetryWriter(out, {"schema": "rack-twin-telemetry/2", "measured": True}, channels,
                        {"a/labels": ["p", "q", "r"]})
    sizes = [1, CHUNK_ROWS - 1, 2 * BATCH_ROWS + 7, 3, BATCH_ROWS]
    n = sum(sizes)
    t = np.arange(n, dtype=float) * 0.5
    rng = np.random.default_rng(2)
    y, z = rng.standard_normal((n, 3)), rng.standard_normal((n, 2))
    done = 0
    for k in sizes:
        w.append(t[done:done + k], {"a/x": t[done:done + k] * 2, "a/y": y[done:done + k], "b/z": z[done:done + k]})
        done += k
    w.finish()
    a = xr.open_dataset(out, engine="h5netcdf", group="a")
    np.testing.assert_array_equal(a["time"].values, t)
    np.testing.assert_array_equal(a["x"].values, t * 2)
    np.testing.assert_array_equal(a["y"].values, y.astype("f4"))
    assert list(a["a"].values) == ["p", "q", "r"] and a["y"].dims == ("time", "a")
    b = xr.open_dataset(out, engine="h5netcdf", group="b")
    np.testing.assert_array_equal(b["time"].values, t)
    assert b["z"].dims == ("time", "b") and "b" not in b.variables  # no labels: no coordinate
    a.close(), b.close()
    tel = read_telemetry(out)
    assert set(tel.channels) == set(channels) and tel.labels == {"a/labels": ["p", "q", "r"]}


def test_a_schema_1_file_is_still_read_and_opened(tmp_path):
    """The format before dimension scales: ``*/labels`` datasets, no scales."""
    path = tmp_path / "old.h5"
    labels = ["rack01/tray00/gpu0", "rack01/tray00/gpu1"]
    with h5py.File(path, "w") as f:
        f.attrs["schema"] = "rack-twin-telemetry/1"
        f.attrs["measured"] = True
        f.create_dataset("time", data=[1.0, 2.0, 3.0]).attrs["units"] = "s"
        f.create_dataset("gpu/junction_temp", data=np.arange(6.0).reshape(3, 2)).attrs["units"] = "degC"
        f.create_dataset("gpu/labels", data=np.array(labels, dtype=h5py.string_dtype()))
        f.create_dataset("cdu/pump_speed", data=np.ones((3, 2))).attrs["units"] = "1"
        f.create_dataset("cdu/pump_labels", data=np.array(["cdu1/pump0", "cdu1/pump1"], dtype=h5py.string_dtype()))
    tel = read_telemetry(path)
    assert tel.labels == {"gpu/labels": labels, "cdu/pump_labels": ["cdu1/pump0", "cdu1/pump1"]}
    ds = twin.open_results(path)
    assert list(ds["gpu"].values) == labels and list(ds["pump"].values) == ["cdu1/pump0", "cdu1/pump1"]
    assert ds["gpu_junction_temp"].attrs["units"] == "degC"
    assert len(twin.margins_frame(path)) == 0 and list(twin.margins_frame(path).columns) == list(MARGIN_COLUMNS)
    # an import from it carries its labels into the new format
    (tmp_path / "map.toml").write_text('[source]\ntime_unit = "s"\n[output]\ninterval_s = 1.0\n'
                                       '[channels."gpu/junction_temp"]\ncolumns = ["gpu/junction_temp"]\n'
                                       'unit = "degC"\n')
    out = import_telemetry(path, tmp_path / "map.toml", tmp_path / "new.h5")
    g = xr.open_dataset(out, engine="h5netcdf", group="gpu")
    assert list(g["gpu"].values) == labels
    g.close()


def test_synthetic_measurements_keep_the_scales(tmp_path):
    from twin.calibration.synthetic import make

    s = twin.load_scenario(REFERENCE, {"simulation.duration_s": 5.0})
    out = make(s, tmp_path / "syn.h5", seed=3)
    tel = read_telemetry(out)
    _check_group(out, "gpu", "gpu/junction_temp", "gpu", tel)
    np.testing.assert_array_equal(xr.open_dataset(out, engine="h5netcdf", group="gpu")["time"].values, tel.time)


def test_import_twin_and_twin_run_do_not_load_xarray_or_pandas(tmp_path):
    heavy = ("xarray", "pandas", "h5netcdf")
    code = ("import sys\nimport twin\nfrom twin.cli import cli\ntry:\n    cli.main(%r)\nexcept SystemExit as e:\n"
            "    assert not e.code, e.code\nprint('loaded:', *(m for m in %r if m in sys.modules))"
            % (["run", str(REFERENCE), "--duration", "2", "-o", str(tmp_path / "r.h5")], heavy))
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert p.stdout.splitlines()[-1] == "loaded:", p.stdout[-300:] + p.stderr[-500:]
    assert (tmp_path / "r.h5").exists()


def test_margins_frame_refuses_a_file_that_is_not_telemetry_as_open_results_does(tmp_path):
    """A foreign HDF5 file (another tool's, a netCDF file) is not "a run without margins":
    an empty frame would say it holds no failing margin."""
    foreign = tmp_path / "other.h5"
    with h5py.File(foreign, "w") as f:
        f["x"] = np.arange(3.0)
    for call in (twin.open_results, twin.margins_frame):
        with pytest.raises(twin.TwinInputError, match="not a rack-twin telemetry file"):
            call(foreign)


@pytest.mark.parametrize("bad", [None, 3.5, {"a": 1}])
def test_open_results_and_margins_frame_refuse_what_is_not_a_path_or_result(bad):
    for call in (twin.open_results, twin.margins_frame):
        with pytest.raises(twin.TwinInputError, match="a results file"):
            call(bad)


def test_margins_frame_of_several_results_stacks_them_with_their_source(run, tmp_path):
    path, result = run
    other = twin.simulate(twin.load_scenario(REFERENCE, {"simulation.duration_s": 2.0,
                                                        "facility.supply_temp_c": 40.0}))
    df = twin.margins_frame([path, other])
    assert list(df.columns) == ["source"] + list(MARGIN_COLUMNS)
    assert list(df["source"].unique()) == [str(path), "reference-w32"]
    assert len(df) == len(result.margin_table.rows) + len(other.margin_table.rows)
    assert df["value"].dtype == np.float64 and df["limit"].dtype == np.float64
    a = df[df.source == "reference-w32"].set_index("name")["value"]
    assert a["gpu_junction_max_c"] == other.margins["gpu_junction_max_c"]
    b = df[df.source == str(path)].set_index("name")["value"]
    assert b["gpu_junction_max_c"] == result.margins["gpu_junction_max_c"]
