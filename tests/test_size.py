"""`twin size`: the rack flow for a junction margin, fed back through `twin run`, across
facility supply temperatures, unreachable targets and bad input."""
import csv
import json
import math

import pytest

from twin import sizing
from twin.scenario import load

from .conftest import REFERENCE
from .test_cli import assert_clean_error, twin_cli

FLOW = "controls.flow_setpoint_lpm"
SUPPLY = "facility.supply_temp_c"
TARGET = "gpu_junction_margin_k=5"
# What feeding the answer back must give: the target within 0.1 K (the search stops at
# 0.005 K; the rest is the printed value's rounding).
FEEDBACK_ATOL_K = 0.1


def _size_json(*args):
    proc = twin_cli("size", REFERENCE, *args, "--json")
    return proc, (json.loads(proc.stdout) if proc.stdout.strip() else None)


def _run_margin(*sets):
    proc = twin_cli("run", REFERENCE, *[x for s in sets for x in ("--set", s)], "--json")
    assert proc.returncode == 0, proc.stderr
    return {m["name"]: m["value"] for m in json.loads(proc.stdout)["margins"]}


@pytest.mark.parametrize("supply", [32, 45])
def test_flow_for_a_5k_margin_fed_back_through_twin_run_gives_5k(supply):
    proc, out = _size_json("--vary", FLOW, "--target", TARGET, "--set", f"{SUPPLY}={supply}")
    assert proc.returncode == 0, proc.stderr
    (ans,) = out["answers"]
    assert ans["status"] == "found" and out["unit"] == "L/min"
    assert abs(ans["margin"] - 5.0) <= out["tolerance"]
    margins = _run_margin(f"{SUPPLY}={supply}", f"{FLOW}={ans['value']:.6g}")
    assert margins["gpu_junction_margin_k"] == pytest.approx(5.0, abs=FEEDBACK_ATOL_K)
    # physics: the flow the margin needs is the flow the rack carries, its heat the rack's
    assert ans["figures"]["flow_lpm"] == pytest.approx(ans["value"], rel=0.02)
    assert 95 < ans["figures"]["liquid_heat_kw"] < 115


def test_text_output_names_value_unit_margin_runs_and_tolerance():
    proc = twin_cli("size", REFERENCE, "--vary", FLOW, "--target", TARGET, "--set", f"{SUPPLY}=45", "--duration", 1)
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    assert f"found: {FLOW} = " in text and "L/min" in text
    assert "gpu_junction_margin_k there: 5.0" in text
    assert "tolerance 0.005 K" in text
    assert "runs: " in text
    assert f"check: twin run {REFERENCE} --set {SUPPLY}=45 --set {FLOW}=" in text


def test_flow_rises_steeply_and_monotonically_with_supply_temperature(tmp_path):
    """The 17-45 degC sweep: every point found, the flow rising at every step and faster
    as the supply warms (as vendor tray flow tables: [LEN] 4.4 -> 7.0 L/min from 27 to
    45 degC); the CSV holds every point."""
    sz = sizing.size(REFERENCE, [], FLOW, TARGET, sweep_text=f"{SUPPLY}=17:45:8")  # full 600 s runs
    assert sz.all_found
    temps = [v for v, _ in sz.answers]
    flows = [a.point.x for _, a in sz.answers]
    assert temps[0] == 17 and temps[-1] == 45
    steps = [b - a for a, b in zip(flows, flows[1:])]
    assert all(s > 0 for s in steps), flows
    assert steps[-1] > 3 * steps[0], flows  # steep: the last 4 K cost far more flow than the first
    assert flows[-1] > 2.5 * flows[0], flows
    # reusing each point's answer as the next one's start costs fewer runs than the first point's search
    runs = [a.runs for _, a in sz.answers]
    assert sum(runs[1:]) / len(runs[1:]) < runs[0], runs
    out = tmp_path / "sweep.csv"
    sizing.write_csv(sz, out)
    lines = list(csv.DictReader(out.open()))
    assert [float(r[f"{SUPPLY} [degC]"]) for r in lines] == temps
    assert [r["status"] for r in lines] == ["found"] * 8


def test_short_runs_give_the_reference_margin_of_a_full_run():
    """Why --duration 1 is allowed for the reference rack: its peak junction is its
    full-power steady start, so a 1 s run and the 600 s run (1 Hz bursts, checkpoint)
    give the same margin."""
    import twin

    s = load(REFERENCE, {SUPPLY: 45, FLOW: 110.0}).scenario
    full = twin.simulate(s).margins["gpu_junction_margin_k"]
    short = twin.simulate(s, duration_s=1.0).margins["gpu_junction_margin_k"]
    assert short == pytest.approx(full, abs=1e-3)


def test_unreachable_target_exits_1_with_the_margin_at_both_ends():
    proc = twin_cli("size", REFERENCE, "--vary", FLOW, "--target", "gpu_junction_margin_k=60",
                    "--set", f"{SUPPLY}=45")
    assert proc.returncode == 1, proc.stderr
    line = next(x for x in proc.stdout.splitlines() if x.startswith("unreachable"))
    assert "at 15 L/min" in line and "at 600 L/min" in line and "below the target 60 K" in line


def test_sweep_marks_unreachable_points_in_table_csv_and_plot(tmp_path):
    csv_path, png = tmp_path / "s.csv", tmp_path / "s.png"
    proc = twin_cli("size", REFERENCE, "--vary", FLOW, "--target", "gpu_junction_margin_k=15",
                    "--sweep", f"{SUPPLY}=30:45:3", "--duration", 1, "--csv", csv_path, "--plot", png)
    assert proc.returncode == 1, proc.stderr  # some points unreachable
    assert "unreachable" in proc.stdout
    rows = list(csv.DictReader(csv_path.open()))
    assert len(rows) == 3  # none dropped
    assert rows[0]["status"] == "found" and rows[-1]["status"] == "unreachable"
    assert rows[-1][f"{FLOW} [L/min]"] == ""
    assert float(rows[-1]["gpu_junction_margin_k at hi [K]"]) < 15
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_other_keys_temperature_pump_speed_and_a_plate_parameter():
    """The warmest supply for the margin at the scenario's flow; a pump speed (speed
    mode); a plate's resistance by instance override: each answer fed back gives it."""
    import twin

    cases = [(SUPPLY, [], None),
             ("controls.pump_speed_fraction", ["controls.pump_mode=speed", f"{SUPPLY}=45"], None),
             ('overrides."rack01/tray09/gpu1".fouling_k_per_w', [], "0:0.05")]
    for key, sets, rng in cases:
        sz = sizing.size(REFERENCE, sets, key, TARGET, range_text=rng, duration_s=1.0)
        (_, ans), = sz.answers
        assert ans.found, (key, ans)
        over = dict(p.split("=") for p in sets)
        over = {k: (float(v) if v[0].isdigit() else v) for k, v in over.items()}
        s = load(REFERENCE, {**over, key: float(f"{ans.point.x:.6g}")}).scenario
        got = twin.simulate(s, duration_s=1.0).margins["gpu_junction_margin_k"]
        assert got == pytest.approx(5.0, abs=FEEDBACK_ATOL_K), key
    assert sz.key.unit == "K/W" and "rack01/tray09/gpu1" in sz.key.note


def test_the_check_line_repeats_the_duration_the_answer_was_found_over():
    """Catches: `--duration 1` searched over 1-s runs, but the check line printed the
    scenario's full run, whose answer differs (the reference's 600 s reach the
    checkpoint phase)."""
    sz = sizing.size(REFERENCE, [f"{SUPPLY}=45"], FLOW, TARGET, duration_s=1.0)
    sz.scenario = str(REFERENCE)
    check = [line for line in sizing.report(sz).splitlines() if line.startswith("check: ")]
    assert check and check[0].endswith(" --duration 1"), check
    full = sizing.size(REFERENCE, [f"{SUPPLY}=45"], FLOW, TARGET, range_text="100:120")
    full.scenario = str(REFERENCE)
    assert "--duration" not in sizing.report(full)


def test_a_default_range_cut_by_the_field_says_where_it_ends():
    """The pump speed's default range, 0.1 to 4 times 1, is cut at the field's maximum.
    Catches: "searched 0.1 to 1.2 (0.1 to 4 times the scenario's 1)" (4 times 1 is not 1.2)."""
    k = sizing.knob(REFERENCE, [], "controls.pump_speed_fraction", "--vary")
    lo, hi, why = sizing.default_range(k)
    assert hi == k.bounds[1] < 4 * k.nominal
    assert f"{k.bounds[1]:g}" in why and "field" in why, why


@pytest.mark.parametrize("sig, code, last", [("SIGINT", 130, "error: interrupted"),
                                             ("SIGTERM", 143, "error: interrupted by SIGTERM")])
def test_an_interrupted_search_stops_and_prints_no_answer(tmp_path, sig, code, last):
    """Ctrl-C in the middle of a sweep of searches. Catches: each run's own interrupt
    handling (the run ends whole, marked incomplete) taking the signal, so that the
    search went on with a run cut short as one of its points, printed answers and
    exited 0."""
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "answers.csv"
    p = subprocess.Popen([sys.executable, "-m", "twin.cli", "size", str(REFERENCE), "--vary", FLOW, "--target", TARGET,
                          "--sweep", f"{SUPPLY}=17:45:15", "--csv", str(out)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(4.0)  # imported, searching
    assert p.poll() is None, "the sweep ended before it could be interrupted"
    p.send_signal(getattr(signal, sig))
    stdout, stderr = p.communicate(timeout=60)
    assert p.returncode == code, stderr
    assert stderr.strip().splitlines()[-1] == last, stderr
    assert stderr.splitlines()[-2:-1] != [""], stderr  # no empty line above it (click's own Ctrl-C echo)
    assert "found" not in stdout and not out.exists() and not list(tmp_path.glob("*.partial"))


def test_a_key_that_changes_nothing_says_so():
    sz = sizing.size(REFERENCE, [], "controls.pump_speed_fraction", TARGET, duration_s=1.0)
    (_, ans), = sz.answers
    assert ans.status == "unreachable"
    assert any("changes nothing" in n for n in ans.notes)


def test_a_margin_flat_over_a_key_that_acts_is_not_called_a_key_that_changes_nothing():
    """No GPU shuts down at 2 or at 60 degC supply, but the supply moves every
    temperature. Catches: "facility.supply_temp_c changes nothing in this scenario"."""
    sz = sizing.size(REFERENCE, [], SUPPLY, "gpu_shutdowns=1", duration_s=1.0)
    (_, ans), = sz.answers
    assert ans.status == "unreachable"
    assert not any("changes nothing" in n for n in ans.notes), ans.notes
    assert any("does not respond" in n and "GPU Tj max" in n for n in ans.notes), ans.notes


BAD = [
    (["--vary", "controls.flow_setpont_lpm"], ["--vary", "flow_setpoint_lpm"]),  # unknown key, near match
    (["--vary", "foo.bar"], ["--vary", "no key 'foo'"]),
    (["--vary", "coolant.name"], ["--vary", "not a number"]),  # text
    (["--vary", "rack.manifold.layout"], ["--vary", "not a number"]),
    (["--vary", "controls"], ["--vary", "is a table"]),
    (["--vary", "cdu.pumps.count"], ["--vary", "whole number"]),
    # how the run is computed, not the design ("searched 6 s to 240 s ...; runs of 60 s")
    (["--vary", "simulation.duration_s"], ["--vary", "simulation.duration_s", "--duration"]),
    (["--vary", "simulation.time_step_s"], ["--vary", "simulation.time_step_s", "not a design"]),
    (["--sweep", "simulation.time_step_s=0.1:1:2"], ["--sweep", "not a design"]),
    (["--vary", 'overrides."rack01/tray09/gpu9".r_tim_k_per_w'], ["--vary", "no component instance"]),
    (["--target", "gpu_junction_margin_k"], ["--target", "MARGIN=VALUE"]),
    (["--target", "gpu_junction_margin_k=abc"], ["--target", "not a finite number"]),
    (["--range", "5"], ["--range", "LO:HI"]),
    (["--range", "50:10"], ["--range", "below"]),
    (["--range", "0:100"], ["--range", "0.1-20000 L/min"]),  # outside the field's range
    (["--sweep", f"{SUPPLY}=17:45"], ["--sweep", "KEY=A:B:N"]),
    (["--sweep", f"{SUPPLY}=17:45:x"], ["--sweep", "whole number"]),
    # one point of a range: which end? (the answer at 30 alone, 40 dropped without a word)
    (["--sweep", f"{SUPPLY}=30:40:1"], ["--sweep", "N = 1", "A = B"]),
    (["--sweep", f"{SUPPLY}=17:99:3"], ["--sweep", "99 degC outside"]),
    (["--sweep", "facility.supply_tmp_c=17:45:3"], ["--sweep", "supply_temp_c"]),
    (["--sweep", f"{FLOW}=17:45:3"], ["--sweep", "--vary"]),
    (["--plot", "x.png"], ["--plot", "needs --sweep"]),
    (["--tol", "-1"], ["--tol"]),
]


@pytest.mark.parametrize("args,needles", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_input_is_one_line_naming_the_option(args, needles):
    base = {"--vary": FLOW, "--target": TARGET}
    opts = dict(base)
    extra = []
    for i in range(0, len(args), 2):
        if args[i] in opts:
            opts[args[i]] = args[i + 1]
        else:
            extra += args[i:i + 2]
    cli = [x for k, v in opts.items() for x in (k, v)] + extra
    assert_clean_error(twin_cli("size", REFERENCE, *cli), *needles)


def test_unknown_margin_is_one_line_naming_target():
    proc = twin_cli("size", REFERENCE, "--vary", FLOW, "--target", "gpu_junction_margn_k=5", "--duration", 1)
    assert_clean_error(proc, "--target", "gpu_junction_margin_k")


def test_parsers():
    assert sizing.parse_target(" tray_flow_ratio_min = 1 ") == ("tray_flow_ratio_min", 1.0)
    assert sizing.parse_range("20:400") == (20.0, 400.0)
    key, values = sizing.parse_sweep(f"{SUPPLY}=17:45:8")
    assert key == SUPPLY and values[0] == 17 and values[-1] == 45 and len(values) == 8
    assert all(math.isclose(b - a, 4.0) for a, b in zip(values, values[1:]))
    assert sizing.parse_sweep(f"{SUPPLY}=30:30:1") == (SUPPLY, [30.0])  # one point: A = B


@pytest.mark.parametrize("args, absent", [
    (["--target", "bad"], ("pydantic", "numpy", "numba", "h5py", "scipy", "matplotlib")),
    (["--range", "9"], ("pydantic", "numpy", "numba", "h5py", "scipy", "matplotlib")),
    (["--vary", "foo.bar"], ("numba", "h5py", "scipy", "matplotlib")),
    (["--sweep", f"{SUPPLY}=17:99:3"], ("numba", "h5py", "scipy", "matplotlib")),
])
def test_bad_input_stays_off_the_heavy_imports(args, absent):
    import subprocess
    import sys

    opts = {"--vary": FLOW, "--target": TARGET}
    opts.update(dict(zip(args[::2], args[1::2])))
    argv = ["size", str(REFERENCE), *[x for kv in opts.items() for x in kv]]
    code = ("import sys\nfrom twin.cli import cli\ntry:\n    cli.main(%r)\nexcept SystemExit:\n    pass\n"
            "print('loaded:', *(m for m in %r if m in sys.modules))" % (argv, absent))
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.stdout.splitlines()[-1] == "loaded:", p.stdout[-300:]
