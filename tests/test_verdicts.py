"""Margins are verdicts: limits from the scenario, ok / fail / not judged (never ok on NaN
or infinity), stored in the file and printed as JSON; `--strict` gates on them; a run
that is interrupted or leaves the model's range ends with a whole file that says so."""
import json
import math
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest

import twin
from twin.margins import FAIL, NOT_JUDGED, OK, MarginRow, Margins
from twin.telemetry import read_telemetry

from .conftest import REFERENCE, ROOT

TRAINING_W45 = ROOT / "scenarios" / "training-w45.toml"


def twin_cli(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "twin.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("sense", ["min", "max"])
def test_a_non_finite_margin_is_never_ok(value, sense):
    row = MarginRow("x", value, "K", 0.0, sense)
    assert row.status == NOT_JUDGED and row.ok is False
    table = Margins([row, MarginRow("y", 1.0, "K", 0.0, "min")])
    assert table.verdict == NOT_JUDGED and not table.ok


def test_a_fail_reason_fails_a_margin_whatever_its_value():
    row = MarginRow("gpu_junction_margin_k", 5.0, "K", 0.0, "min", fail_reason="3 GPUs throttled")
    assert row.status == FAIL
    assert Margins([row, MarginRow("z", math.nan, "K", 0.0, "max")]).verdict == FAIL  # fail outranks not judged


def test_a_run_too_short_to_judge_says_so():
    """Half an output interval: no sample of the rack return or the tray flows."""
    r = twin.simulate(twin.load_scenario(REFERENCE), duration_s=0.5)
    rows = {x.name: x for x in r.margin_table.rows}
    assert rows["rack_return_temp_max_c"].status == NOT_JUDGED
    assert rows["tray_flow_ratio_min"].status == NOT_JUDGED
    assert r.margin_table.verdict == NOT_JUDGED
    assert "shorter than one output interval" in rows["rack_return_temp_max_c"].note
    assert not any(x.status == OK and not math.isfinite(x.value) for x in r.margin_table.rows)


def test_limits_come_from_the_scenario_then_the_rack_then_the_default():
    base = twin.load_scenario(REFERENCE)
    assert base.margin_limit("gpu_throttled_s_max") == 0.0
    assert base.margin_limit("rack_return_temp_max_c") == base.rack.max_return_temp_c
    rack = twin.load_scenario(REFERENCE, {"rack.margin_limits.gpu_junction_margin_k": 5.0})
    assert rack.margin_limit("gpu_junction_margin_k") == 5.0
    both = twin.load_scenario(REFERENCE, {"rack.margin_limits.gpu_junction_margin_k": 5.0,
                                          "margins.gpu_junction_margin_k": 25.0})
    assert both.margin_limit("gpu_junction_margin_k") == 25.0
    # and a run judges against it: 21 K of margin fails a 25 K limit
    r = twin.simulate(both, duration_s=5.0)
    row = next(x for x in r.margin_table.rows if x.name == "gpu_junction_margin_k")
    assert row.limit == 25.0 and row.status == FAIL and 15.0 < row.value < 25.0


def test_strict_exits_1_on_a_failing_margin_and_json_and_the_file_agree(tmp_path):
    out = tmp_path / "hot.h5"
    proc = twin_cli("run", TRAINING_W45, "--duration", 20, "--set", "controls.flow_setpoint_lpm=45",
                    "-o", out, "--strict", "--json")
    assert proc.returncode == 1, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["verdict"] == "fail" and doc["complete"] is True
    assert doc["overrides"] == ["controls.flow_setpoint_lpm=45"] and doc["duration_s"] == 20.0
    by_name = {m["name"]: m for m in doc["margins"]}
    assert by_name["gpu_throttled_s_max"]["status"] == "fail" and by_name["gpu_throttled_s_max"]["limit"] == 0.0
    assert by_name["gpu_shutdowns"]["value"] == 0 and isinstance(by_name["gpu_shutdowns"]["value"], int)
    with h5py.File(out, "r") as f:
        assert f.attrs["verdict"] == "fail"
        assert bool(f.attrs["complete"]) and f.attrs["end_time_s"] == 20.0 and f.attrs["duration_s"] == 20.0
        assert json.loads(f.attrs["overrides"]) == ["controls.flow_setpoint_lpm=45"]
        table = {r["name"].decode(): r for r in f["margins/verdicts"][()]}
    for name, m in by_name.items():
        row = table[name]
        assert row["status"].decode() == (m["status"] or "")
        if m["value"] is not None:
            assert row["value"] == pytest.approx(m["value"])
        if m["limit"] is not None:
            assert row["limit"] == m["limit"]
    # the reader still reads the file (the verdict table is not a channel)
    assert "gpu/power" in read_telemetry(out).channels


def test_strict_exits_0_when_every_margin_is_ok():
    proc = twin_cli("run", REFERENCE, "--duration", 10, "--strict")
    assert proc.returncode == 0, proc.stderr
    assert "verdict: OK" in proc.stdout
    # counts print as integers
    line = next(x for x in proc.stdout.splitlines() if x.startswith("gpu_shutdowns"))
    assert line.split()[1] == "0"


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_an_interrupted_run_leaves_a_readable_file_marked_incomplete(tmp_path, sig, code):
    out = tmp_path / "long.h5"
    proc = subprocess.Popen([sys.executable, "-m", "twin.cli", "run", ROOT / "scenarios" / "training-w32.toml",
                             "--duration", "86400", "-o", out], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    partial = tmp_path / "long.h5.partial"
    deadline = time.monotonic() + 120
    while not partial.exists() and time.monotonic() < deadline:  # the run has started writing
        time.sleep(0.05)
    time.sleep(1.0)
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == code, stderr
    assert "Traceback" not in stderr
    assert out.exists() and not partial.exists()
    with h5py.File(out, "r") as f:
        assert not f.attrs["complete"]
        t_end = f.attrs["end_time_s"]
        assert 0 < t_end < 86400
        assert "interrupted" in f.attrs["end_reason"]
        assert f["time"][-1] == pytest.approx(t_end)  # samples up to the interruption
        assert f["gpu/power"].shape[0] == f["time"].shape[0]
    tel = read_telemetry(out)
    assert np.all(np.isfinite(tel["gpu/junction_temp"]))
    inspect = twin_cli("inspect", out)
    assert inspect.returncode == 0 and "INCOMPLETE" in inspect.stdout


def test_a_run_started_with_sigint_ignored_keeps_ignoring_it(tmp_path):
    """`nohup`, a background job of a non-interactive shell, `twin check`'s workers: a
    process started with SIGINT ignored. Catches: the run installing its own SIGINT
    handler over the ignore, so that a Ctrl-C meant for the foreground job (or the whole
    process group) ends this run early, incomplete."""
    out = tmp_path / "nohup.h5"
    proc = subprocess.Popen([sys.executable, "-m", "twin.cli", "run", REFERENCE, "--duration", "600", "-o", out],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    partial = tmp_path / "nohup.h5.partial"
    deadline = time.monotonic() + 120
    while not partial.exists() and time.monotonic() < deadline:  # the run has started writing
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    with h5py.File(out, "r") as f:
        assert f.attrs["complete"] and f.attrs["end_time_s"] == pytest.approx(600.0)


def test_a_loop_that_would_boil_stops_with_a_named_event_not_a_traceback(tmp_path):
    """10 L/min through a 100 kW rack: the loop's steady state is above boiling. It once
    ended in 'outside the pg25 table'."""
    out = tmp_path / "boil.h5"
    proc = twin_cli("run", REFERENCE, "--set", "controls.flow_setpoint_lpm=10", "--duration", 60, "-o", out, "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["complete"] is False and "coolant_boiling" in doc["end_reason"]
    by_name = {m["name"]: m for m in doc["margins"]}
    assert by_name["coolant_temp_max_c"]["status"] == "fail"
    assert doc["verdict"] == "fail"
    r = read_telemetry(out)
    assert any(k == "coolant_boiling" for _, k, _ in r.events)
    assert not r.attrs["complete"]


def test_a_cdu_trip_stops_at_boiling_and_without_clock_control_every_tray_powers_off():
    """With throttling the chips keep heating the loop at their lowest clocks after the CDU
    loses heat rejection: the run stops at boiling with a named event. Without it every
    chip shuts down and its tray powers off, and the loop stays below boiling (the model
    once clamped its tables and went on to 1784 degC)."""
    throttled = twin.simulate(twin.load_scenario(ROOT / "scenarios" / "faults" / "cdu-trip.toml"))
    assert throttled.end.kind == "coolant_boiling" and 60.0 < throttled.end.time_s < 900.0
    tel = throttled.telemetry()
    assert tel.time[-1] == pytest.approx(throttled.end.time_s)
    assert np.max(tel["rack/return_temp"]) < 100.0
    assert throttled.margin_table.verdict == FAIL
    assert 0 < throttled.margins["ride_through_throttle_s"] < throttled.margins["ride_through_shutdown_s"]

    s = twin.load_scenario(ROOT / "scenarios" / "faults" / "cdu-trip.toml", {
        "rack.chip_types.gpu.throttles": False, "rack.chip_types.cpu.throttles": False,
        "rack.chip_types.nvswitch.throttles": False, "simulation.duration_s": 7200.0})
    r = twin.simulate(s)
    assert r.end.is_complete
    assert r.margins["gpu_shutdowns"] == 72
    tel = r.telemetry()
    assert tel["rack/it_power"][-1] == 0.0
    assert np.max(tel["rack/return_temp"]) < 100.0
    # the GPUs reached their throttle temperature (no clock control) before shutting down
    assert 0 < r.margins["ride_through_throttle_s"] < r.margins["ride_through_shutdown_s"]


def test_a_margin_a_hair_past_its_limit_prints_its_sign_and_size():
    """A throttled GPU held at its throttle point: junction margin -1e-4 K, verdict fail.
    Catches: "-0.000 K fail" (3 decimals hide the sign's cause) and "-0.000" for a zero."""
    from twin.margins import MarginRow

    row = MarginRow("gpu_junction_margin_k", -1.2e-4, "K", 0.0, "min")
    assert row.status == "fail" and row.formatted() == "-1.2e-04"
    assert MarginRow("gpu_junction_margin_k", -0.0, "K", 0.0, "min").formatted() == "0.000"
    assert MarginRow("gpu_junction_margin_k", 3.21049, "K", 0.0, "min").formatted() == "3.210"
    assert MarginRow("gpu_shutdowns", 2.0, "1", 0.0, "max", integer=True).formatted() == "2"


def test_a_ctrl_c_while_a_finished_run_closes_its_file_is_not_lost(monkeypatch):
    """Ctrl-C after a run has completed, while it closes its file (a window of a few ms
    in each of a search's many runs): the run's own handler used to take it and do
    nothing, the run was complete, and `twin size` went on to print its answers, exit 0
    (its SIGTERM test failed so once in a fresh clone's CI). Catches: the signal lost
    instead of reaching the caller's handler once the run's is gone."""
    import os

    from twin.telemetry import TelemetryWriter

    finish = TelemetryWriter.finish

    def finish_with_ctrl_c(self):
        os.kill(os.getpid(), signal.SIGINT)  # the run's handler is still installed
        return finish(self)

    monkeypatch.setattr(TelemetryWriter, "finish", finish_with_ctrl_c)
    s = twin.load_scenario(REFERENCE, {"simulation.duration_s": 5.0})
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    with pytest.raises(KeyboardInterrupt):
        twin.simulate(s)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the caller's, back
