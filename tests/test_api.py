"""The public Python API the notebooks use (``import twin`` and the names it exports):
catalogue names in ``load_scenario``, ``plot`` of a Result or a file, and the calibration
wrappers ``synthetic_telemetry``, ``calibrate``, ``accept``, ``residuals_frame``,
``overlay_toml``; and that importing twin loads none of the heavy libraries."""
import os
import subprocess
import sys
import tomllib

import numpy as np
import pytest
from click.testing import CliRunner

import twin
from twin.cli import cli

from .conftest import REFERENCE, ROOT

# A quick line test: 4 load plateaus of 60 s; the quick spec's 120 s warm-up leaves 120 s.
PLATEAU_S = 60.0
LINE_TEST_S = 240.0
TIM = {"overrides": {"rack01/tray05/gpu2": {"r_tim_k_per_w": 0.008}}}  # twice its TIM


def test_every_exported_name_exists():
    for name in twin.__all__:
        assert getattr(twin, name) is not None, name


def test_load_scenario_takes_catalogue_names_from_any_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    s = twin.load_scenario("reference-w32", {"facility.supply_temp_c": 45})
    assert s.name == "reference-w32" and s.facility.supply_temp_c == 45
    assert twin.load_scenario("catalogue/gb300-nvl72-class.toml").name == "catalogue-gb300-nvl72-class"
    assert twin.load_scenario(REFERENCE).name == "reference-w32"  # a path as before
    with pytest.raises(twin.TwinInputError, match="did you mean 'reference-w32'"):
        twin.load_scenario("referenc-w32")
    (tmp_path / "reference-w32.toml").write_text('include = ["%s"]\nname = "mine"\n' % REFERENCE.as_posix())
    assert twin.load_scenario("reference-w32.toml").name == "mine"  # an existing file wins


@pytest.fixture(scope="module")
def short_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("api") / "ref.h5"
    r = twin.simulate(twin.load_scenario(REFERENCE, {"simulation.duration_s": 10.0}))
    r.to_hdf5(out)
    return r, out


def test_load_scenario_takes_python_objects_as_overrides(tmp_path, monkeypatch):
    """numpy numbers, a pathlib.Path for a file (relative to the working directory, where
    the caller made it), a table as a dict, a list of faults."""
    import pathlib

    trace = ROOT / "scenarios" / "data" / "hpc-cdu-power-trace" / "input_04-07-24.csv"
    monkeypatch.chdir(trace.parent)
    s = twin.load_scenario("replay-hpc-trace", {"workload.replay.file": pathlib.Path(trace.name),
                                                "facility.supply_temp_c": np.float64(35.5),
                                                "workload.seed": np.int64(3),
                                                "simulation": {"duration_s": np.float64(600.0)},
                                                "faults": [{"kind": "pump_trip", "target": "cdu1/pump0",
                                                            "start_s": np.float32(10.0)}]})
    assert s.workload.replay.file == str(trace)
    assert s.facility.supply_temp_c == 35.5 and s.workload.seed == 3 and s.simulation.duration_s == 600.0
    assert s.faults[-1].start_s == 10.0
    monkeypatch.chdir(tmp_path)  # a Path that does not exist is named as the caller gave it
    with pytest.raises(twin.TwinInputError, match="workload.replay.file: replay file .*nope.csv not found"):
        twin.load_scenario("replay-hpc-trace", {"workload.replay.file": pathlib.Path("nope.csv")})


def test_a_file_given_as_an_override_is_relative_to_the_working_directory(tmp_path, monkeypatch):
    """A replay trace named in an override, as text (Python) or by `--set` (the command
    line): relative to where the caller is, as a Path already is, not to the catalogue's
    folder. A file in the scenario stays relative to that file. Catches: 'replay file
    .../scenarios/input_04-07-24.csv not found' for a file in the working directory."""
    trace = ROOT / "scenarios" / "data" / "hpc-cdu-power-trace" / "input_04-07-24.csv"
    monkeypatch.chdir(trace.parent)
    s = twin.load_scenario("replay-hpc-trace", {"workload.replay.file": trace.name})
    assert s.workload.replay.file == str(trace)
    own = twin.load_scenario("replay-hpc-trace")  # the catalogue file's own relative path
    assert own.workload.replay.file == str(trace)
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(cli, ["run", "replay-hpc-trace", "--set", f"workload.replay.file={trace.name}",
                                 "--duration", "60"])
    assert r.exit_code == 2 and f"{tmp_path / trace.name} not found" in r.stderr, r.stderr


@pytest.mark.parametrize("value", [np.bool_(True), True, "35 degC"])
def test_a_number_field_refuses_booleans_numpy_ones_too_and_text(value):
    with pytest.raises(twin.TwinInputError, match="facility.supply_temp_c: expected a number, got"):
        twin.load_scenario(REFERENCE, {"facility.supply_temp_c": value})


@pytest.mark.parametrize("path, overrides, words", [
    (None, None, "expected a scenario file or a catalogue name, got NoneType"),
    (REFERENCE, "facility.supply_temp_c=35", "a dict {key: value} or a list of 'key=value' strings"),
    (REFERENCE, 35, "a dict {key: value} or a list of 'key=value' strings")])
def test_load_scenario_refuses_arguments_of_the_wrong_type(path, overrides, words):
    with pytest.raises(twin.TwinInputError, match=words.replace("(", r"\(").replace("{", r"\{")):
        twin.load_scenario(path, overrides)


def test_simulate_refuses_an_output_that_is_not_a_results_file_before_running(tmp_path):
    """As ``twin run -o``: a user's file is not overwritten, a directory is named, and
    nothing is left behind (no ``.partial``)."""
    s = twin.load_scenario(REFERENCE, {"simulation.duration_s": 2.0})
    notes = tmp_path / "notes.txt"
    notes.write_text("precious")
    (tmp_path / "d.h5").mkdir()
    for out, words in ((notes, "not a rack-twin telemetry file; refusing to overwrite it"),
                       (tmp_path / "d.h5", "is a directory")):
        with pytest.raises(twin.TwinInputError, match=words):
            twin.simulate(s, output=out)
    assert notes.read_text() == "precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.h5", "notes.txt"]
    twin.simulate(s, output=tmp_path / "r.h5")  # a new file, then an earlier result, are written
    twin.simulate(s, output=tmp_path / "r.h5")


def test_synthetic_telemetry_takes_a_name_and_refuses_offsets_it_cannot_plant(tmp_path):
    """An offset on a channel or member the run does not have would be recorded as truth
    but never planted: an error naming it, and no file written."""
    out = tmp_path / "syn.h5"
    s = twin.load_scenario(REFERENCE, {"simulation.duration_s": 3.0})
    for offsets, words in (({"rack/supply_tmp": 0.5}, "rack/supply_tmp: no such channel.*'rack/supply_temp'"),
                           ({"gpu/junction_temp": {"rack01/tray05/gpu9": 1.0}},
                            "gpu/junction_temp: no member 'rack01/tray05/gpu9'")):
        with pytest.raises(twin.TwinInputError, match=words):
            twin.synthetic_telemetry(s, out, sensor_offsets=offsets)
        assert list(tmp_path.iterdir()) == []
    (tmp_path / "d.h5").mkdir()
    with pytest.raises(twin.TwinInputError, match="is a directory"):
        twin.synthetic_telemetry(s, tmp_path / "d.h5")
    assert [p.name for p in tmp_path.iterdir()] == ["d.h5"]
    (tmp_path / "d.h5").rmdir()
    short = tmp_path / "short.toml"  # a scenario file, not a loaded Scenario
    short.write_text(f'include = ["{REFERENCE}"]\n[simulation]\nduration_s = 3.0\n')
    path = twin.synthetic_telemetry(str(short), out, sensor_offsets={"rack/supply_temp": 0.5}, noise=False)
    clean = twin.simulate(s).telemetry()
    tel = twin.open_results(path)
    np.testing.assert_allclose(tel["rack_supply_temp"].values[:3], clean["rack/supply_temp"][:3] + 0.5, rtol=1e-12)


def test_result_to_hdf5_refuses_a_user_file_and_writes_whole(tmp_path, monkeypatch):
    r = twin.simulate(twin.load_scenario(REFERENCE, {"simulation.duration_s": 2.0}))
    notes = tmp_path / "notes.txt"
    notes.write_text("precious")
    with pytest.raises(twin.TwinInputError, match="refusing to overwrite it"):
        r.to_hdf5(notes)
    assert notes.read_text() == "precious"
    r.to_hdf5(tmp_path / "r.h5")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt", "r.h5"]  # no scratch file left
    streamed = twin.simulate(twin.load_scenario(REFERENCE, {"simulation.duration_s": 2.0}),
                             output=tmp_path / "s.h5")
    monkeypatch.chdir(tmp_path)
    streamed.to_hdf5("s.h5")  # itself, spelled otherwise: nothing to do
    assert twin.open_results("s.h5").sizes["time"] == 2


@pytest.mark.parametrize("call", ["accept", "residuals_frame", "overlay_toml"])
def test_fit_readers_refuse_what_is_not_a_fit(call, short_run):
    r, _ = short_run
    for bad in (None, r):
        with pytest.raises(twin.TwinInputError, match="expected a fit of twin.calibrate"):
            getattr(twin, call)(bad)


@pytest.mark.parametrize("kind", ["rack", "junction", "trays", "cdu", "margins"])
def test_plot_draws_a_result_as_its_file(short_run, kind):
    from matplotlib.figure import Figure

    r, path = short_run
    a, b = twin.plot(r, kind), twin.plot(path, kind)
    assert isinstance(a, Figure) and isinstance(b, Figure)
    assert len(a.axes) == len(b.axes) > 0
    for x, y in zip(a.axes, b.axes):  # the same lines, the same data
        assert len(x.lines) == len(y.lines)
        for lx, ly in zip(x.lines, y.lines):
            np.testing.assert_array_equal(lx.get_ydata(), ly.get_ydata())
    assert "reference-w32" in a._suptitle.get_text()


def test_plot_refuses_an_unknown_kind_and_a_kind_without_data(short_run, tmp_path):
    r, _ = short_run
    with pytest.raises(twin.TwinInputError, match="not one of rack, junction"):
        twin.plot(r, "heatmap")
    # a run that kept no tray flow has nothing for the trays figure
    lean = twin.simulate(twin.load_scenario(REFERENCE, {"simulation.duration_s": 5.0}), channels=["rack/it_power"])
    with pytest.raises(twin.TwinInputError, match="tray/flow"):
        twin.plot(lean, "trays")


def _staircase():
    levels = (1.0, 0.4, 0.9, 0.3)
    gpu = [dict(chips="gpu", kind="constant", start_s=i * PLATEAU_S, end_s=(i + 1) * PLATEAU_S,
                fraction_of_tdp=lv) for i, lv in enumerate(levels)]
    return gpu + [dict(chips="cpu", fraction_of_tdp=0.7), dict(chips="nvswitch", fraction_of_tdp=0.8)]


@pytest.fixture(scope="module")
def line_test(tmp_path_factory):
    base = twin.load_scenario("reference-w32", {"workload.schedule": _staircase(), "simulation.duration_s": LINE_TEST_S})
    path = twin.synthetic_telemetry(base, tmp_path_factory.mktemp("line") / "rack.h5", overrides=TIM,
                                    sensor_offsets={"rack/return_temp": 1.0}, seed=4)
    return base, path


def test_synthetic_telemetry_is_marked_and_carries_its_truth(line_test):
    _, path = line_test
    ds = twin.open_results(path)
    assert ds.attrs["measured"] == 1 and ds.attrs["synthetic"] == 1
    assert '"rack01/tray05/gpu2"' in ds.attrs["truth"]
    assert ds["gpu_junction_temp"].sizes["time"] == int(LINE_TEST_S)


def test_calibrate_accept_residuals_and_overlay_find_the_planted_faults(line_test, tmp_path, monkeypatch):
    base, path = line_test
    monkeypatch.chdir(tmp_path)  # the spec by name, from any directory
    fit = twin.calibrate(base, path, "nvl72-gpu-tim")
    verdicts = twin.accept(fit)
    assert list(verdicts.columns) == ["component", "status", "fitted", "low", "high", "reference", "tolerance",
                                      "evidence"]
    assert len(verdicts) == 73 and set(verdicts.status) <= {"pass", "suspect", "not judged"}
    suspects = set(verdicts.component[verdicts.status == "suspect"])
    assert suspects == {"tim[rack01/tray05/gpu2]", "rack_return_sensor"}
    row = verdicts.set_index("component").loc["tim[rack01/tray05/gpu2]"]
    assert row.low <= row.fitted <= row.high and row.fitted == pytest.approx(0.008, rel=0.05)
    res = twin.residuals_frame(fit)
    assert set(res.window) == {"fit", "holdout"}
    assert set(res.channel) == {"gpu/junction_temp", "rack/return_temp", "tray/return_temp"}
    assert {"n", "rmse", "bias", "cv_rmse_pct", "nmbe_pct"} <= set(res.columns)
    overlay = tomllib.loads(twin.overlay_toml(fit))
    assert overlay["overrides"]["rack01/tray05/gpu2"]["r_tim_k_per_w"] == pytest.approx(0.008, rel=0.05)
    assert overlay["faults"][0]["target"] == "rack/return_temp"
    # a scenario by name and a spec by path give the same fit
    again = twin.calibrate("reference-w32", path, ROOT / "calibration" / "specs" / "nvl72-gpu-tim.toml")
    assert again.problem.spec.name == "nvl72-gpu-tim"


def test_a_spec_that_is_neither_a_file_nor_a_name_is_an_input_error(line_test):
    base, path = line_test
    with pytest.raises(twin.TwinInputError):
        twin.calibrate(base, path, "no-such-spec")
    for bad in (None, 3):
        with pytest.raises(twin.TwinInputError, match="expected a spec file or the name of one"):
            twin.calibrate(base, path, bad)


def test_import_twin_loads_no_heavy_library():
    heavy = ("matplotlib", "pandas", "xarray", "nbclient", "pydantic", "scipy", "numba")
    code = "import sys, twin\nprint('loaded:', *(m for m in %r if m in sys.modules))" % (heavy,)
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       env=dict(os.environ))
    assert p.stdout.splitlines()[-1] == "loaded:", p.stdout + p.stderr
