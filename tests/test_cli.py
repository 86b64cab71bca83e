"""The command line as a user meets it: a good run, and every kind of bad input."""
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pytest

from twin.telemetry import REQUIRED_CHANNELS, SCHEMA, read_telemetry

from .conftest import REFERENCE, ROOT


def twin_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "twin.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=600)


def assert_clean_error(proc, *needles):
    """Exit 2, exactly one line on stderr naming what it must, no traceback."""
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert lines[0].startswith("error: ")
    for n in needles:
        assert n in lines[0], lines[0]


def test_run_writes_every_design_channel_with_units(tmp_path):
    out = tmp_path / "out.h5"
    proc = twin_cli("run", REFERENCE, "-o", out, "--duration", 30)
    assert proc.returncode == 0, proc.stderr
    assert "gpu_junction_margin_k" in proc.stdout
    with h5py.File(out, "r") as f:
        for name, units in REQUIRED_CHANNELS.items():
            assert f[name].attrs["units"] == units, name
            assert f[name].shape[0] == 30
        assert f["time"].attrs["units"] == "s"
        assert f.attrs["schema"] == SCHEMA
        assert f.attrs["coolant"] == "pg25"
        assert "[rack.chip_types.gpu]" in f.attrs["scenario"]
        assert f["gpu/junction_temp"].shape == (30, 72)
        assert f["tray/flow"].shape == (30, 27)
        assert f["cdu/pump_speed"].shape == (30, 2)
    assert not (tmp_path / "out.h5.partial").exists()


def test_the_resolved_scenario_in_the_file_runs_again(tmp_path):
    """The root attribute holds the whole resolved scenario: it loads on its own."""
    import twin
    out = tmp_path / "out.h5"
    r = twin.simulate(twin.load_scenario(REFERENCE, {"simulation.duration_s": 5.0}), output=out)
    text = read_telemetry(out).attrs["scenario"]
    (tmp_path / "again.toml").write_text(text)
    again = twin.load_scenario(tmp_path / "again.toml")
    assert again == r.scenario


def test_missing_file(tmp_path):
    out = tmp_path / "o.h5"
    assert_clean_error(twin_cli("run", tmp_path / "nope.toml", "-o", out), "nope.toml", "not found")
    assert not out.exists()


def test_malformed_toml(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\n[facility\nsupply_temp_c = 3\n')
    out = tmp_path / "o.h5"
    assert_clean_error(twin_cli("run", bad, "-o", out), "bad.toml", "malformed TOML", "line 2")
    assert not out.exists()


def test_unknown_key_in_an_included_rack_file_names_that_file(tmp_path):
    scen = tmp_path / "scenarios"
    shutil.copytree(ROOT / "scenarios", scen)
    rack = scen / "racks" / "nvl72-class.toml"
    rack.write_text(rack.read_text().replace("[rack.manifold]\n", "[rack.manifold]\ncolour = \"red\"\n"))
    out = tmp_path / "o.h5"
    assert_clean_error(twin_cli("run", scen / "reference-w32.toml", "-o", out),
                       "nvl72-class.toml", "rack.manifold.colour", "unknown key")
    assert not out.exists()


def test_unknown_key_from_set():
    assert_clean_error(twin_cli("run", REFERENCE, "--set", "facility.colour=3"), "facility.colour", "unknown key")


def test_negative_flow(tmp_path):
    out = tmp_path / "o.h5"
    assert_clean_error(twin_cli("run", REFERENCE, "--set", "facility.flow_lpm=-20", "-o", out),
                       "reference-w32.toml", "facility.flow_lpm", "greater than 0")
    assert not out.exists()


def test_supply_temperature_above_boiling(tmp_path):
    out = tmp_path / "o.h5"
    assert_clean_error(twin_cli("run", REFERENCE, "--set", "facility.supply_temp_c=105", "-o", out),
                       "facility.supply_temp_c", "boiling point")
    assert not out.exists()


def test_corrupt_hdf5_to_the_reader(tmp_path):
    junk = tmp_path / "junk.h5"
    junk.write_bytes(np.random.default_rng(0).bytes(4096))
    assert_clean_error(twin_cli("inspect", junk), "junk.h5", "HDF5")
    # a real file cut short
    good = tmp_path / "good.h5"
    assert twin_cli("run", REFERENCE, "-o", good, "--duration", 5).returncode == 0
    data = good.read_bytes()
    cut = tmp_path / "cut.h5"
    cut.write_bytes(data[: len(data) // 2])
    assert_clean_error(twin_cli("inspect", cut), "cut.h5")
    # an HDF5 file that is not telemetry
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["x"] = np.arange(3)
    assert_clean_error(twin_cli("inspect", other), "other.h5", "schema")


def test_a_failing_run_leaves_no_file(tmp_path, monkeypatch):
    import twin
    from twin import recorder

    def boom(*a, **k):
        raise RuntimeError("kernel failure")

    s = twin.load_scenario(REFERENCE, {"simulation.duration_s": 30.0})
    monkeypatch.setattr(recorder, "_record_rows", boom)
    out = tmp_path / "o.h5"
    with pytest.raises(RuntimeError):
        twin.simulate(s, output=out)
    assert not out.exists()
    assert not (tmp_path / "o.h5.partial").exists()


def test_bad_fault_target_and_bad_replay_column_exit_2(tmp_path):
    out = tmp_path / "o.h5"
    fault = ROOT / "scenarios" / "faults" / "clogged-plate.toml"
    assert_clean_error(twin_cli("run", fault, "--set", "faults.0.target=tray99/gpu0", "-o", out),
                       "clogged-plate.toml", "faults.0.target", "tray99/gpu0")
    replay = ROOT / "scenarios" / "replay-hpc-trace.toml"
    assert_clean_error(twin_cli("run", replay, "--set", "workload.replay.column=power[99]", "-o", out),
                       "workload.replay.column")
    assert not out.exists()


def test_a_row_runs_compares_and_inspects_from_the_command_line(tmp_path):
    """A two-rack row from another directory: `twin run` names the row and writes per-rack
    channels, `twin compare` puts it beside a single rack (row totals, its least-served
    rack's flow), `twin inspect` lists its rack members."""
    row = ROOT / "scenarios" / "row-8x-nvl72-w32.toml"
    sets = ["--set", "row.racks=[{count = 2}]", "--set", "controls.flow_setpoint_lpm=300"]
    out = tmp_path / "row.h5"
    proc = twin_cli("run", row, *sets, "-o", out, "--duration", 20, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "a row of 2 x nvl72-class on 1 CDU" in proc.stdout and "cdu_capacity_margin_kw" in proc.stdout
    tel = read_telemetry(out)
    assert tel["rack/flow"].shape == (2, 2) and tel.labels["rack/labels"] == ["rack01", "rack02"]
    proc = twin_cli("inspect", out)
    assert proc.returncode == 0 and "rack/flow" in proc.stdout
    cmp_ = twin_cli("compare", REFERENCE, row, "--facility", 32, cwd=tmp_path)
    assert cmp_.returncode == 0, cmp_.stderr
    lines = {ln.split("  ")[0].strip(): ln.split()[-2:] for ln in cmp_.stdout.splitlines()[1:]}
    reference_it, row_it = map(float, lines["IT power [kW]"])
    assert 6.0 < row_it / reference_it < 8.0  # eight racks training at their mean against one at full power


def test_a_fault_after_the_end_of_the_run_is_said_not_to_happen(tmp_path):
    """A pump trip at 100 s of a 30 s run. Catches: "verdict: OK" printed for a fault
    scenario whose fault never struck, with nothing said."""
    proc = twin_cli("run", REFERENCE, "--duration", 30, "--set",
                    'faults=[{kind="pump_trip",target="cdu/pump1",start_s=100.0},'
                    '{kind="pump_trip",target="cdu/pump0",start_s=10.0}]')
    assert proc.returncode == 0, proc.stderr
    notes = [line for line in proc.stdout.splitlines() if line.startswith("note: ")]
    assert notes == ["note: faults.0 (pump_trip cdu/pump1) starts at 100 s, after the end of the run (30 s): "
                     "it did not happen"], proc.stdout


def test_a_rack_above_its_cdus_rating_says_so_beside_its_heat():
    """The next-generation rack (~183 kW into the coolant) on its CDU derated to 150 kW.
    Catches: "verdict: OK" with nothing anywhere saying the CDU carries 122 % of its
    rating (a row has cdu_capacity_margin_kw for it; a single rack had nothing)."""
    import twin

    cat = ROOT / "scenarios" / "catalogue" / "next-gen-220kw-class.toml"
    r = twin.simulate(twin.load_scenario(cat, {"simulation.duration_s": 2.0, "cdu.heat_exchanger.rated_heat_kw": 150.0}))
    row = next(m for m in r.margin_table.rows if m.name == "rack_liquid_heat_peak_kw")
    assert f"above the CDU's rated 150 kW ({100 * row.value / 150:.0f} %)" in row.note, row.note
    ok = twin.simulate(twin.load_scenario(cat, {"simulation.duration_s": 2.0}))
    assert "rated" not in next(m for m in ok.margin_table.rows if m.name == "rack_liquid_heat_peak_kw").note
