"""Bad input, as a new user (or a hostile file) brings it: every case exits 2 with one line
``error: FILE: FIELD: MESSAGE`` on stderr naming the file and the field (or the option),
no traceback, no pydantic wording, no output or ``.partial`` file left, every input
byte-identical afterwards, and no hang.

The corpus runs in-process through click's CliRunner (fast); the cases that would block
or run without end on a careless reader (FIFOs, devices, absurd steps and durations) run
in a subprocess with a timeout. Every case works on copies in its own directory.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from twin.cli import cli

from .conftest import ROOT

SCEN = ROOT / "scenarios"
# Generous for a process that should exit within a second: the hang families fail on it.
HANG_TIMEOUT_S = 20.0
# TWIN_CORPUS_SUBPROCESS=1 runs every case in its own process (slower; safe against a
# build that would hang or exhaust memory on an absurd value).
ALL_IN_SUBPROCESS = os.environ.get("TWIN_CORPUS_SUBPROCESS") == "1"
# What pydantic says in its own words (the CLI must say it in the project's).
PYDANTIC_WORDING = ("Input should", "Value error", "validation error", "pydantic", "type=")
PARTS = ("racks/nvl72-class.toml", "cdus/row-cdu-250kw.toml", "facilities/w32.toml")

REPLAY_TOML = """\
name = "replay-case"
description = "replay of a small trace"
include = ["racks/nvl72-class.toml", "cdus/row-cdu-250kw.toml", "facilities/w32.toml"]
[controls]
flow_setpoint_lpm = 150.0
[[workload.schedule]]
chips = "cpu"
fraction_of_tdp = 0.7
[[workload.schedule]]
chips = "nvswitch"
fraction_of_tdp = 0.8
[workload.replay]
file = "{file}"
column = "power_w"
[simulation]
duration_s = 5.0
"""
GOOD_TRACE = "time,power_w\n0,1000\n1,1200\n2,900\n3,1100\n4,1000\n5,1200\n6,900\n"  # covers the 5 s runs


# --------------------------------------------------------------------------- the case machinery


@dataclass
class Case:
    """One bad input. ``make(d)`` prepares files in the case directory ``d`` and returns
    the CLI arguments; ``needles`` must all appear in the error line (``{d}`` is replaced
    by the case directory); ``proc`` runs it in a subprocess with a timeout."""

    id: str
    make: object
    needles: tuple
    proc: bool = False
    repo_inputs: tuple = field(default=())  # repository files the case reads (hashed too)


def scenario_dir(d: Path, name="scen.toml", source="reference-w32.toml") -> Path:
    """A copy of a catalogue scenario and the parts it includes."""
    for part in PARTS:
        (d / part).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(SCEN / part, d / part)
    shutil.copyfile(SCEN / source, d / name)
    return d / name


def run_args(path, *extra, duration=5):
    """``run PATH -o out.h5 ... --duration 5``: a short run, should the input be accepted."""
    args = ["run", str(path), "-o", str(Path(path).parent / "out.h5"), *extra]
    return args + ["--duration", str(duration)] if duration is not None else args


def toml(text_edit, *needles, source="reference-w32.toml", **kw):
    """The scenario file edited by ``text_edit(text) -> text``."""
    def make(d):
        path = scenario_dir(d, source=source)
        path.write_text(text_edit(path.read_text()))
        return run_args(path)
    return make, needles, kw


def append(extra, *needles, **kw):
    return toml(lambda t: t + "\n" + extra + "\n", *needles, **kw)


def part(rel, text_edit, *needles):
    """An included part (rack, CDU, facility) edited."""
    def make(d):
        path = scenario_dir(d)
        (d / rel).write_text(text_edit((d / rel).read_text()))
        return run_args(path)
    return make, needles, {}


def sets(*assignments, needles=(), source="reference-w32.toml", proc=False, duration=5):
    """``--set`` overrides on a copy of a catalogue scenario; the needles default to the
    scenario file and the first key."""
    def make(d):
        path = scenario_dir(d, source=source)
        return run_args(path, *[x for a in assignments for x in ("--set", a)], duration=duration)
    return make, needles or ("scen.toml", assignments[0].split("=")[0]), {"proc": proc}


def replay_csv(text, *needles, column="power_w", binary=None, proc=False):
    def make(d):
        scenario_dir(d)
        trace = d / "trace.csv"
        if binary is not None:
            trace.write_bytes(binary)
        else:
            trace.write_text(text)
        (d / "scen.toml").write_text(REPLAY_TOML.format(file="trace.csv").replace('"power_w"', f'"{column}"'))
        return run_args(d / "scen.toml")
    return make, needles or ("trace.csv", "workload.replay.column"), {"proc": proc}


# --------------------------------------------------------------------------- files built for cases


@pytest.fixture(scope="session")
def telemetry_file(tmp_path_factory):
    """A real telemetry file of a 5 s reference run."""
    import twin
    path = tmp_path_factory.mktemp("telemetry") / "good.h5"
    twin.simulate(twin.load_scenario(SCEN / "reference-w32.toml", {"simulation.duration_s": 5.0}), output=path)
    return path


GOOD_H5 = {}  # filled by the autouse fixture below (cases are built at collection time)


@pytest.fixture(autouse=True)
def _good_h5(telemetry_file):
    GOOD_H5["path"] = telemetry_file


def h5_copy(d, name="t.h5", edit=None):
    """A copy of the good telemetry file, edited in place by ``edit(h5py.File)``."""
    path = d / name
    shutil.copyfile(GOOD_H5["path"], path)
    if edit is not None:
        with h5py.File(path, "r+") as f:
            edit(f)
    return path


def truncated(d, name="t.h5"):
    data = GOOD_H5["path"].read_bytes()
    (d / name).write_bytes(data[: len(data) // 2])
    return d / name


def random_bytes(d, name, n=4096, seed=0):
    (d / name).write_bytes(np.random.default_rng(seed).bytes(n))
    return d / name


def fifo(d, name):
    os.mkfifo(d / name)
    return d / name


def replay_h5(make_trace, *needles):
    """A replay scenario whose ``workload.replay.file`` is the HDF5 file ``make_trace(d)``."""
    def make(d):
        scenario_dir(d)
        trace = make_trace(d)
        (d / "scen.toml").write_text(REPLAY_TOML.format(file=trace.name))
        return run_args(d / "scen.toml")
    return make, needles or ("t.h5", "workload.replay.file"), {}


def inspect(make_file, *needles, proc=False):
    def make(d):
        return ["inspect", str(make_file(d))]
    return make, needles, {"proc": proc}


def output(make_out, *needles, source=None):
    """``run`` with ``-o`` at ``make_out(d, scenario)``."""
    def make(d):
        path = scenario_dir(d)
        if source is not None:
            path = source(d)
        out = make_out(d, path)
        return ["run", str(path), "-o", str(out), "--duration", "5"]
    return make, needles, {}


def cli_args(args, *needles, proc=False, repo=()):
    def make(d):
        path = scenario_dir(d)
        return [str(a).replace("{scen}", str(path)).replace("{d}", str(d)) for a in args]
    return make, needles, {"proc": proc, "repo_inputs": repo}


def _del(path):
    def edit(f):
        del f[path]
    return edit


def _set(path, index, value):
    def edit(f):
        data = f[path][()]
        data[index] = value
        f[path][...] = data
    return edit


def _attr(name, value):
    def edit(f):
        if value is None:
            del f.attrs[name]
        else:
            f.attrs[name] = value
    return edit


def _sub(old, new):
    def edit(text):
        assert old in text, old
        return text.replace(old, new, 1)
    return edit


def _job(**fields):
    """A training job table for ``--set workload.jobs=[...]``."""
    body = {"kind": '"training"', "name": '"llm"', "gpus": "72", "step_time_s": "0.5", **fields}
    return "workload.jobs=[{" + ", ".join(f"{k} = {v}" for k, v in body.items()) + "}]"


def _fault(**fields):
    return "faults=[{" + ", ".join(f"{k} = {v}" for k, v in fields.items()) + "}]"


def _deep(n=5000):
    return "x = " + "[" * n + "]" * n + "\n"


# --------------------------------------------------------------------------- the corpus

C = {}


def case(id, spec, proc=None):
    make, needles, kw = spec
    if proc is not None:
        kw = {**kw, "proc": proc}
    assert id not in C, id
    C[id] = Case(id, make, tuple(needles), **kw)


# TOML syntax: the file and the line
case("toml/unclosed-table", toml(_sub("[coolant]", "[coolant"), "scen.toml", "malformed TOML", "line"))
case("toml/duplicate-key", toml(lambda t: 'name = "again"\n' + t, "scen.toml", "malformed TOML", "line"))
case("toml/unterminated-string", toml(_sub('name = "reference-w32"', 'name = "reference-w32'), "scen.toml", "line"))
case("toml/missing-value", append("[facility]\nflow_lpm =", "scen.toml", "malformed TOML"))
case("toml/bare-word-value", toml(_sub('name = "pg25"', "name = pg25"), "scen.toml", "malformed TOML", "line"))
case("toml/table-twice", append("[coolant]\nname = \"water\"", "scen.toml", "malformed TOML"))
case("toml/binary-garbage", (lambda d: (random_bytes(d, "scen.toml"), run_args(d / "scen.toml"))[1],
                             ("scen.toml", "not a TOML text file"), {}))
case("toml/nul-bytes", toml(lambda t: t.replace("[coolant]", "[coolant]\x00"), "scen.toml", "malformed TOML"))
case("toml/nested-too-deeply", append(_deep(), "scen.toml", "nested too deeply"))
case("toml/utf16", (lambda d: ((d / "scen.toml").write_bytes((SCEN / "reference-w32.toml").read_text().encode("utf-16")),
                                run_args(d / "scen.toml"))[1], ("scen.toml", "UTF-8"), {}))
case("toml/empty-file", toml(lambda t: "", "scen.toml", "name", "required field is missing"))
case("toml/array-of-tables-clash", append("[[coolant]]\nname = \"water\"", "scen.toml", "malformed TOML"))

# unknown keys, wherever they are
case("unknown/top-level", toml(lambda t: 'colour = "red"\n' + t, "scen.toml", ": colour: unknown key"))
case("unknown/nested", toml(_sub("[simulation]\n", "[simulation]\ncolour = 1\n"), "scen.toml", "simulation.colour",
                            "unknown key"))
case("unknown/nested-table", toml(_sub("[coolant]\n", "[coolant]\ncolour = 1\n"), "scen.toml", "coolant.colour",
                                  "unknown key"))
case("unknown/typo-near-match", toml(_sub('pump_mode = "flow"', 'pump_mode = "flow"\nflow_setpoint_lmp = 2.0'),
                                     "scen.toml", "controls.flow_setpoint_lmp", "did you mean 'flow_setpoint_lpm'"))
case("unknown/in-rack-include", part("racks/nvl72-class.toml", _sub("[rack.manifold]\n", "[rack.manifold]\ncolour = 1\n"),
                                     "nvl72-class.toml", "rack.manifold.colour", "unknown key"))
case("unknown/in-cdu-include", part("cdus/row-cdu-250kw.toml", _sub("[cdu.pumps]\n", "[cdu.pumps]\nspare = 1\n"),
                                    "row-cdu-250kw.toml", "cdu.pumps.spare", "unknown key"))
case("unknown/in-facility-include", part("facilities/w32.toml", lambda t: t + "humidity = 0.5\n",
                                         "w32.toml", "facility.humidity", "unknown key"))
case("unknown/in-job", sets(_job(colour='"red"'), "workload.schedule=[]",
                            needles=("scen.toml", "workload.jobs.0.colour", "unknown key")))
case("unknown/in-fault", sets(_fault(kind='"cdu_trip"', start_s="1.0", colour="1"),
                              needles=("scen.toml", "faults.0.colour", "unknown key")))
case("unknown/from-set", sets("facility.colour=3", needles=("scen.toml", "facility.colour", "unknown key")))
# a --set that makes another field, set by a file, fail a check across both: the option is named too
case("cross/set-moves-the-other-field", sets("controls.pump_speed_max=0.1", needles=(
    "row-cdu-250kw.toml", "controls.pump_speed_min", "must not exceed", "given --set controls.pump_speed_max")))
case("unknown/table", append("[workloads]\nseed = 1", "scen.toml", "workloads", "unknown key"))

# wrong types
case("type/name-number", toml(_sub('name = "reference-w32"', "name = 5"), "scen.toml", "name", "expected text"))
case("type/number-text", part("facilities/w32.toml", _sub("supply_temp_c = 32.0", 'supply_temp_c = "warm"'),
                              "w32.toml", "facility.supply_temp_c", "expected a number, got 'warm'"))
case("type/number-quoted", part("facilities/w32.toml", _sub("supply_temp_c = 32.0", 'supply_temp_c = "32"'),
                                "w32.toml", "facility.supply_temp_c", "expected a number"))
case("type/number-bool", part("facilities/w32.toml", _sub("flow_lpm = 200.0", "flow_lpm = true"),
                              "w32.toml", "facility.flow_lpm", "expected a number"))
case("type/count-fraction", sets("rack.tray_stack.0.count=2.5", needles=("scen.toml", "rack.tray_stack.0.count",
                                                                          "whole number")))
case("type/count-text", sets("cdu.pumps.count=two", needles=("scen.toml", "cdu.pumps.count", "whole number")))
case("type/table-is-number", sets("facility=5", needles=("scen.toml", "facility", "expected a table")))
case("type/list-is-table", append("[faults]\nkind = \"cdu_trip\"", "scen.toml", "faults", "expected a list"))
case("type/paths-text", sets('rack.tray_types.compute.paths="gpu"', needles=("scen.toml", "rack.tray_types.compute.paths",
                                                                           "expected a list")))
case("type/flag-text", sets('controls.supply_temp_control="yes"', needles=("scen.toml", "controls.supply_temp_control",
                                                                           "true or false")))
case("type/pair-not-list", sets("controls.setpoint_changes=[1, 2]", needles=("scen.toml", "controls.setpoint_changes.0",
                                                                            "expected a list")))
case("type/pair-three", sets("controls.setpoint_changes=[[1.0, 2.0, 3.0]]",
                             needles=("scen.toml", "controls.setpoint_changes.0", "expected 2 values")))
case("type/coolant-unknown", sets("coolant.name=brine", needles=("scen.toml", "coolant.name", "must be one of")))
case("type/job-kind-unknown", sets(_job(kind='"mining"'), "workload.schedule=[]",
                                   needles=("scen.toml", "workload.jobs.0", "kind must be one of")))
case("type/job-gpus-text", sets(_job(gpus='"all"'), "workload.schedule=[]",
                                needles=("scen.toml", "workload.jobs.0.gpus", "whole number")))
case("type/simulation-list", sets("simulation=[]", needles=("scen.toml", "simulation", "expected a table"),
                                  duration=None))
case("type/load-curve-text", sets('workload.jobs=[{kind = "inference", name = "s", gpus = 8, load_curve = "flat"}]',
                                  "workload.schedule=[]", needles=("scen.toml", "workload.jobs.0.load_curve",
                                                                   "expected a list")))
case("type/chip-type-name", sets("rack.chip_types.gpu/x={}", needles=("scen.toml", "rack.chip_types.gpu/x",
                                                                      "not a valid name")))

# out of range: every field with a unit, at a value no rack has
RANGES = [
    ("rack.chip_types.gpu.tdp_w", "1e6"), ("rack.chip_types.gpu.idle_w", "-5.0"),
    ("rack.chip_types.gpu.shutdown_temp_c", "400.0"), ("rack.chip_types.gpu.throttle_temp_c", "10.0"),
    ("rack.chip_types.gpu.r_jc_k_per_w", "1e3"), ("rack.chip_types.gpu.r_tim_k_per_w", "1e-9"),
    ("rack.chip_types.gpu.c_junction_j_per_k", "1e9"), ("rack.chip_types.gpu.c_plate_j_per_k", "1e-300"),
    ("rack.cold_plates.gpu_plate.channel_width_mm", "1e4"), ("rack.cold_plates.gpu_plate.channel_height_mm", "1e-6"),
    ("rack.cold_plates.gpu_plate.fin_width_mm", "500.0"), ("rack.cold_plates.gpu_plate.channel_length_mm", "1e7"),
    ("rack.cold_plates.gpu_plate.channel_count", "1000000000"),
    ("rack.cold_plates.gpu_plate.port_inner_diameter_mm", "1e5"),
    ("rack.cold_plates.gpu_plate.base_thickness_mm", "1e-9"),
    ("rack.cold_plates.gpu_plate.solid_conductivity_w_per_m_k", "1e7"),
    ("rack.cold_plates.gpu_plate.fluid_volume_ml", "1e12"), ("rack.cold_plates.gpu_plate.fouling_k_per_w", "1e3"),
    ("rack.cold_plates.gpu_plate.dp_scale", "1e9"), ("rack.tray_types.compute.aux_power_w", "1e8"),
    ("rack.tray_types.compute.aux_liquid_fraction", "1.5"), ("rack.tray_types.compute.required_flow_lpm", "1e6"),
    ("rack.tray_types.compute.tubing.length_m", "1e6"), ("rack.tray_types.compute.tubing.inner_diameter_mm", "1e-5"),
    ("rack.tray_types.compute.tubing.k_fittings", "1e9"), ("rack.tray_types.compute.tubing.roughness_um", "1e9"),
    ("rack.tray_types.compute.quick_disconnect.cv_gpm_per_psi", "1e6"),
    ("rack.tray_types.compute.quick_disconnect.inner_diameter_mm", "1e4"),
    ("rack.tray_types.compute.branch_k", "-1.0"), ("rack.tray_types.switch.balancing_k", "1e12"),
    ("rack.tray_stack.0.count", "100000"), ("rack.manifold.inner_diameter_mm", "1e6"),
    ("rack.manifold.port_spacing_mm", "1e-4"), ("rack.manifold.roughness_um", "-1.0"),
    ("rack.supply_hose.length_m", "1e7"), ("rack.return_hose.inner_diameter_mm", "1e4"),
    ("rack.max_return_temp_c", "500.0"), ("cdu.pumps.count", "1000"), ("cdu.pumps.shutoff_head_kpa", "1e9"),
    ("cdu.pumps.rated_flow_lpm", "1e9"), ("cdu.pumps.rated_head_kpa", "1e-300"), ("cdu.pumps.head_scale", "1e6"),
    ("cdu.heat_exchanger.rated_heat_kw", "1e9"), ("cdu.heat_exchanger.approach_k", "1e-9"),
    ("cdu.heat_exchanger.rated_secondary_flow_lpm", "1e9"), ("cdu.heat_exchanger.rated_facility_flow_lpm", "1e-300"),
    ("cdu.heat_exchanger.rated_secondary_dp_kpa", "1e9"), ("cdu.heat_exchanger.ua_scale", "1e-9"),
    ("cdu.heat_exchanger.flow_exponent", "5.0"), ("cdu.heat_exchanger.volume_l", "1e9"),
    ("cdu.reservoir_volume_l", "1e12"), ("cdu.filter_dp_kpa", "1e9"), ("cdu.internal_volume_l", "1e-12"),
    ("facility.flow_lpm", "1e-300"), ("facility.flow_lpm", "1e9"), ("controls.flow_setpoint_lpm", "1e-300"),
    ("controls.flow_setpoint_lpm", "1e9"), ("controls.failover_delay_s", "1e9"),
    ("controls.control_interval_s", "1e-9"), ("controls.dp_setpoint_kpa", "1e9"),
    ("controls.setpoint_changes", "[[10.0, 1e9]]"), ("controls.pump_ti_s", "1e-12"),
    ("controls.pump_ramp_per_s", "1e9"), ("controls.pump_speed_fraction", "5.0"), ("controls.valve_ti_s", "1e12"),
    ("controls.valve_ramp_per_s", "1e9"), ("controls.valve_kp", "1e9"),
    ("simulation.hydraulic_update_s", "100000.0"), ("simulation.output_interval_s", "1000000.0"),
    ("workload.gpu_power_cap_w", "1e-300"), ("workload.seed", "-1"), ("workload.schedule.1.period_s", "1e-9"),
    ("workload.schedule.1.start_s", "1e300"), ("workload.schedule.0.fraction_of_tdp", "10.0"),
]
for key, value in RANGES:
    case(f"range/{key}={value}", sets(f"{key}={value}", needles=("scen.toml", key, "outside")))
# where a positive quantity is zero or negative, the message says so
for key in ("facility.flow_lpm", "cdu.pumps.rated_flow_lpm", "rack.chip_types.gpu.tdp_w"):
    case(f"range/{key}=-20", sets(f"{key}=-20.0", needles=("scen.toml", key, "must be greater than 0")))
for key, value in (("rack.chip_types.gpu.r_jc_k_per_w", "0.0"), ("simulation.duration_s", "0.0")):
    case(f"range/{key}={value}", sets(f"{key}={value}", needles=("scen.toml", key, "must be greater than 0"),
                                      duration=None))

# in range one by one, impossible together: the build would fail or the run record nothing
case("design/exchanger-rating-impossible", sets("cdu.heat_exchanger.rated_facility_flow_lpm=5.0",
                                                needles=("scen.toml", "cdu.heat_exchanger.rated_facility_flow_lpm",
                                                         "effectiveness")))
case("design/output-longer-than-run", sets("simulation.output_interval_s=600.0",
                                           needles=("scen.toml", "simulation.output_interval_s", "longer than the run")))

# jobs and faults: values that stall the DES or make no physical sense
JOB_RANGES = [
    ("checkpoint_interval_s", "1e-9"), ("failures_per_day", "1e12"), ("restart_time_s", "1e12"),
    ("checkpoint_duration_s", "1e9"), ("straggler_speed", "1e-9"), ("compute_power_fraction_of_tdp", "20.0"),
    ("power_jitter_fraction", "0.9"), ("start_s", "-5.0"),
]
for key, value in JOB_RANGES:
    case(f"job/{key}={value}", sets(_job(**{key: value}), "workload.schedule=[]",
                                    needles=("scen.toml", f"workload.jobs.0.{key}")))
case("job/step-time-tiny", sets(_job(step_time_s="1e-9"), "workload.schedule=[]",
                                needles=("scen.toml", "workload.jobs.0.step_time_s", "outside")), proc=True)
case("job/inference-update-tiny", sets('workload.jobs=[{kind = "inference", name = "s", gpus = 72, '
                                       'load_curve = [[0.0, 0.5], [24.0, 0.5]], update_interval_s = 1e-9}]',
                                       "workload.schedule=[]",
                                       needles=("scen.toml", "workload.jobs.0.update_interval_s")), proc=True)
case("job/inference-start-hour", sets('workload.jobs=[{kind = "inference", name = "s", gpus = 72, start_hour = 25.0, '
                                      'load_curve = [[0.0, 0.5], [24.0, 0.5]]}]', "workload.schedule=[]",
                                      needles=("scen.toml", "workload.jobs.0.start_hour")))
case("job/load-curve-hour", sets('workload.jobs=[{kind = "inference", name = "s", gpus = 72, '
                                 'load_curve = [[0.0, 0.5], [25.0, 0.5]]}]', "workload.schedule=[]",
                                 needles=("scen.toml", "workload.jobs.0.load_curve.1.0", "outside")))
case("job/too-many-gpus", sets(_job(gpus="1000000"), "workload.schedule=[]",
                               needles=("scen.toml", "workload.jobs.0.gpus", "outside")))
case("job/more-than-rack", sets(_job(gpus="80"), "workload.schedule=[]",
                                needles=("scen.toml", "workload.jobs.0.gpus", "the rack has 72")))
case("job/stragglers", sets(_job(gpus="4", straggler_count="8"), "workload.schedule=[]",
                            needles=("scen.toml", "workload.jobs.0.straggler_count")))
FAULTS = [
    ("facility-temp-150", dict(kind='"facility_supply_temp"', start_s="1.0", value="150.0"), "faults.0.value"),
    ("facility-temp-minus-40", dict(kind='"facility_supply_temp"', start_s="1.0", value="-40.0"), "faults.0.value"),
    ("facility-temp-nan", dict(kind='"facility_supply_temp"', start_s="1.0", value="nan"), "faults.0.value"),
    ("facility-temp-inf", dict(kind='"facility_supply_temp"', start_s="1.0", value="inf"), "faults.0.value"),
    ("sensor-offset-huge", dict(kind='"sensor_offset"', target='"rack/supply_temp"', start_s="1.0", value="1e9"),
     "faults.0.value"),
    ("sensor-offset-flow", dict(kind='"sensor_offset"', target='"rack/flow"', start_s="1.0", value="1e5"),
     "faults.0.value"),
    ("clog-all-but", dict(kind='"plate_clog"', target='"tray04/gpu0"', start_s="1.0", severity="0.999999"),
     "faults.0.severity"),
    ("flow-loss-150pc", dict(kind='"facility_flow"', start_s="1.0", severity="1.5"), "faults.0.severity"),
    ("start-negative", dict(kind='"cdu_trip"', start_s="-1.0"), "faults.0.start_s"),
    ("start-huge", dict(kind='"cdu_trip"', start_s="1e300"), "faults.0.start_s"),
    ("start-inf", dict(kind='"cdu_trip"', start_s="inf"), "faults.0.start_s"),
    ("end-nan", dict(kind='"cdu_trip"', start_s="1.0", end_s="nan"), "faults.0.end_s"),
    ("end-before-start", dict(kind='"cdu_trip"', start_s="10.0", end_s="5.0"), "faults.0.end_s"),
    ("kind-unknown", dict(kind='"meteor"', start_s="1.0"), "faults.0.kind"),
    ("pump-not-in-cdu", dict(kind='"pump_trip"', target='"cdu/pump7"', start_s="1.0"), "faults.0.target"),
    ("tray-not-in-rack", dict(kind='"tray_isolation"', target='"tray99"', start_s="1.0"), "faults.0.target"),
]
for name, fields, key in FAULTS:
    case(f"fault/{name}", sets(_fault(**fields), needles=("scen.toml", key)))

# instances, spread and rows (twin.components): paths and parameters that name nothing
case("instance/path-typo", sets('overrides."rack01/tray9/gpu1".r_tim_k_per_w=0.008',
                                needles=("scen.toml", 'overrides."rack01/tray9/gpu1"', "near: ", "rack01/tray09/gpu1")))
case("instance/param-typo", sets('overrides."rack01/tray09/gpu1".r_tim=0.008',
                                 needles=("scen.toml", "r_tim", "near: r_tim_k_per_w")))
case("instance/param-of-another-kind", sets('overrides."rack01/tray09/qd".tdp_w=10',
                                            needles=("scen.toml", "tdp_w", "has no parameter")))
case("instance/value-out-of-range", sets('overrides."rack01/tray09/gpu1".r_tim_k_per_w=-1',
                                         needles=("scen.toml", "r_tim_k_per_w", "greater than 0")))
case("instance/value-nan", sets('overrides."tray09/gpu1".tdp_w=nan', needles=("scen.toml", "tdp_w")))
case("instance/value-table", sets('overrides."rack01/tray09/gpu1"=3',
                                  needles=("scen.toml", "overrides", "expected a table")))
case("instance/wildcard-matches-nothing", sets('overrides."rack0*/tray*/tpu*".tdp_w=10',
                                               needles=("scen.toml", "no component instance matches")))
case("instance/idle-above-tdp", sets('overrides."tray00/gpu0".idle_w=2000',
                                     needles=("scen.toml", "idle_w", "tdp_w")))
case("spread/unknown-distribution", sets('spread=[{instances = "tray*/gpu*", parameter = "r_tim_k_per_w", '
                                         'distribution = "cauchy", relative_spread = 0.1}]',
                                         needles=("scen.toml", "spread.0.distribution")))
case("spread/wide-normal", sets('spread=[{instances = "tray*/gpu*", parameter = "r_tim_k_per_w", '
                                'relative_spread = 0.5}]', needles=("scen.toml", "spread.0.relative_spread", "1/3")))
case("spread/parameter-typo", sets('spread=[{instances = "tray*/gpu*", parameter = "r_tim", relative_spread = 0.1}]',
                                   needles=("scen.toml", "spread.0.parameter", "r_tim_k_per_w")))
case("spread/text-parameter", sets('spread=[{instances = "tray*/gpu*", parameter = "cold_plate", '
                                   'relative_spread = 0.1}]', needles=("scen.toml", "spread.0.parameter", "not a number")))
case("spread/no-instances", sets('spread=[{instances = "rack07/tray*/gpu*", parameter = "r_tim_k_per_w", '
                                 'relative_spread = 0.1}]', needles=("scen.toml", "spread.0.instances")))
case("row/no-manifold", sets("row.racks=[{count = 2}]", needles=("scen.toml", "row.manifold")))
case("row/include-missing", sets('row.racks=[{include = "racks/nope.toml"}]',
                                 'row.manifold={inner_diameter_mm = 100.0}',
                                 needles=("scen.toml", "row.racks.0.include", "not found")))
case("row/include-not-a-rack", sets('row.racks=[{include = "facilities/w32.toml"}]',
                                    'row.manifold={inner_diameter_mm = 100.0}',
                                    needles=("scen.toml", "row.racks.0.include", "no [rack] table")))
case("row/count-zero", sets("row.racks=[{count = 0}]", "row.manifold={inner_diameter_mm = 100.0}",
                            needles=("scen.toml", "row.racks.0.count")))
case("row/names-twice", sets('row.racks=[{name = "a"}, {name = "a"}]', "row.manifold={inner_diameter_mm = 100.0}",
                             needles=("scen.toml", "row.racks", "used twice")))
case("row/cdus-zero", sets("row.racks=[{count = 2}]", "row.manifold={inner_diameter_mm = 100.0}", "row.cdu_count=0",
                           needles=("scen.toml", "row.cdu_count")))
case("row/job-too-big-for-its-rack", sets('row.racks=[{count = 2, workload = {jobs = [{kind = "training", '
                                          'name = "j", gpus = 100, step_time_s = 0.5}]}}]',
                                          "row.manifold={inner_diameter_mm = 100.0}",
                                          needles=("scen.toml", "row.racks.0.workload.jobs.0.gpus", "rack01 has 72")))
case("fault/restriction-nowhere", sets(_fault(kind='"restriction"', target='"rack01/supply_hoes"', start_s="1.0",
                                              severity="0.5"), needles=("scen.toml", "faults.0.target", "supply_hose")))
case("fault/cdu-trip-unknown-cdu", sets(_fault(kind='"cdu_trip"', target='"cdu9"', start_s="1.0"),
                                        needles=("scen.toml", "faults.0.target", "cdu1")))

# NaN and infinity (TOML has both literals)
NAN_INF = [
    ("facilities/w32.toml", "supply_temp_c = 32.0", "supply_temp_c = nan", "w32.toml", "facility.supply_temp_c"),
    ("facilities/w32.toml", "flow_lpm = 200.0", "flow_lpm = inf", "w32.toml", "facility.flow_lpm"),
    ("racks/nvl72-class.toml", "tdp_w = 1200.0", "tdp_w = nan", "nvl72-class.toml", "rack.chip_types.gpu.tdp_w"),
    ("racks/nvl72-class.toml", "length_m = 5.0", "length_m = +inf", "nvl72-class.toml", "rack.supply_hose.length_m"),
    ("cdus/row-cdu-250kw.toml", "approach_k = 4.0", "approach_k = -inf", "row-cdu-250kw.toml",
     "cdu.heat_exchanger.approach_k"),
]
for rel, old, new, file, key in NAN_INF:
    case(f"naninf/{key}={new.split()[-1]}", part(rel, _sub(old, new), file, key))
for key, value in (("controls.flow_setpoint_lpm", "-inf"), ("simulation.duration_s", "nan"),
                   ("simulation.time_step_s", "inf"), ("workload.schedule.1.end_s", "nan"),
                   ("workload.gpu_power_cap_w", "nan"), ("controls.setpoint_changes", "[[nan, 160.0]]"),
                   ("simulation.initial_temp_c", "nan"), ("workload.schedule.0.fraction_of_tdp", "inf"),
                   ("rack.tray_types.compute.aux_power_w", "nan")):
    case(f"naninf/{key}={value}", sets(f"{key}={value}", needles=("scen.toml", key), duration=None))
case("naninf/job-duration-nan", sets(_job(duration_s="nan"), "workload.schedule=[]",
                                     needles=("scen.toml", "workload.jobs.0.duration_s")))

# huge values
case("huge/tdp-max-float", sets("rack.chip_types.gpu.tdp_w=1.7976931348623157e308",
                                needles=("scen.toml", "rack.chip_types.gpu.tdp_w", "outside")))
case("huge/count-big-int", sets("rack.tray_stack.0.count=99999999999999999999",
                                needles=("scen.toml", "rack.tray_stack.0.count")))
case("huge/duration", sets("simulation.duration_s=1e300", needles=("scen.toml", "simulation.duration_s"),
                           duration=None))
case("huge/flow", sets("facility.flow_lpm=1.7976931348623157e308", needles=("scen.toml", "facility.flow_lpm")))
case("huge/channel-count", sets("rack.cold_plates.gpu_plate.channel_count=999999999999999999999999",
                                needles=("scen.toml", "rack.cold_plates.gpu_plate.channel_count")))

# temperatures: below freezing, above boiling, facility and fault temperatures
for value in ("150.0", "-40.0", "0.0", "61.0"):
    case(f"temp/facility={value}", sets(f"facility.supply_temp_c={value}",
                                        needles=("scen.toml", "facility.supply_temp_c", "degC")))
case("temp/facility-boiling-water", sets("coolant.name=water", "facility.supply_temp_c=100.5",
                                         needles=("scen.toml", "facility.supply_temp_c", "boiling point")))
case("temp/secondary-setpoint", sets("controls.supply_temp_setpoint_c=150.0",
                                     needles=("scen.toml", "controls.supply_temp_setpoint_c", "degC")))
case("temp/setpoint-change-frozen", sets("controls.supply_temp_changes=[[60.0, -40.0]]",
                                         needles=("scen.toml", "controls.supply_temp_changes.0.1", "degC")))
case("temp/return-limit-absolute-zero", sets("rack.max_return_temp_c=-300.0",
                                             needles=("scen.toml", "rack.max_return_temp_c", "degC")))
case("temp/initial-above-table", sets("simulation.initial_temp_c=150.0",
                                      needles=("scen.toml", "simulation.initial_temp_c", "degC")))


# includes
def _include(items):
    return _sub('include = ["racks/nvl72-class.toml", "cdus/row-cdu-250kw.toml", "facilities/w32.toml"]',
                f"include = {items}")


case("include/missing", toml(_include('["racks/nvl72-class.toml", "cdus/none.toml", "facilities/w32.toml"]'),
                             "scen.toml", "include", "not found"))
case("include/cycle", (lambda d: (scenario_dir(d), (d / "a.toml").write_text('include = ["b.toml"]\n'),
                                  (d / "b.toml").write_text('include = ["a.toml"]\n'),
                                  (d / "scen.toml").write_text(_include('["a.toml"]')((d / "scen.toml").read_text())),
                                  run_args(d / "scen.toml"))[-1],
                       ("b.toml", "include", "cycle"), {}))
case("include/self", toml(_include('["scen.toml"]'), "scen.toml", "include", "cycle"))
case("include/directory", toml(_include('["racks"]'), "scen.toml", "include", "directory"))
case("include/not-a-list", toml(_include("5"), "scen.toml", "include", "list of file paths"))
case("include/list-of-numbers", toml(_include("[1, 2]"), "scen.toml", "include", "list of file paths"))
case("include/empty-string", toml(_include('[""]'), "scen.toml", "include", "list of file paths"))
case("include/non-toml", (lambda d: (scenario_dir(d), random_bytes(d, "junk.toml"),
                                     (d / "scen.toml").write_text(_include('["junk.toml"]')((d / "scen.toml").read_text())),
                                     run_args(d / "scen.toml"))[-1], ("junk.toml", "not a TOML text file"), {}))
case("include/through-a-file", toml(_include('["scen.toml/x.toml"]'), "scen.toml", "include", "not found"))
case("include/fifo", (lambda d: (scenario_dir(d), fifo(d, "pipe.toml"),
                                 (d / "scen.toml").write_text(_include('["pipe.toml"]')((d / "scen.toml").read_text())),
                                 run_args(d / "scen.toml"))[-1], ("scen.toml", "include", "FIFO"), {"proc": True}))

# replay CSV: the file, the column and the row
case("csv/empty-cell", replay_csv("time,power_w\n0,1000\n1,\n2,900\n", "trace.csv", "workload.replay.column",
                                  "row 3", "empty cell in 'power_w'"))
case("csv/nan", replay_csv("time,power_w\n0,1000\n1,nan\n2,900\n", "trace.csv", "workload.replay.column", "row 3"))
case("csv/inf", replay_csv("time,power_w\n0,1000\n1,inf\n2,900\n", "trace.csv", "workload.replay.column", "row 3"))
case("csv/negative", replay_csv("time,power_w\n0,1000\n1,-5\n2,900\n", "trace.csv", "workload.replay.column",
                                "row 3", "negative"))
case("csv/text", replay_csv("time,power_w\n0,1000\n1,abc\n2,900\n", "trace.csv", "workload.replay.column", "row 3",
                            "'abc'"))
case("csv/decreasing-time", replay_csv("time,power_w\n0,1000\n2,1100\n1,900\n", "trace.csv",
                                       "workload.replay.time_column", "row 4"))
case("csv/repeated-time", replay_csv("time,power_w\n0,1000\n1,1100\n1,900\n", "trace.csv",
                                     "workload.replay.time_column", "row 4"))
case("csv/time-nan", replay_csv("time,power_w\n0,1000\nnan,1100\n2,900\n", "trace.csv", "workload.replay.time_column",
                                "row 3"))
case("csv/time-empty", replay_csv("time,power_w\n0,1000\n,1100\n2,900\n", "trace.csv", "workload.replay.time_column",
                                  "row 3"))
case("csv/one-row", replay_csv("time,power_w\n0,1000\n", "trace.csv", "workload.replay.column", "at least 2"))
case("csv/header-only", replay_csv("time,power_w\n", "trace.csv", "workload.replay.column", "at least 2"))
case("csv/empty-file", replay_csv("", "trace.csv", "workload.replay.column"))
case("csv/missing-column", replay_csv(GOOD_TRACE, "trace.csv", "workload.replay.column", "'power_x'",
                                      column="power_x"))
case("csv/missing-time-column", replay_csv("t,power_w\n0,1000\n1,1200\n", "trace.csv", "workload.replay.time_column"))
case("csv/short-row", replay_csv("time,power_w\n0,1000\n1\n2,900\n", "trace.csv", "workload.replay.column", "row 3"))
case("csv/all-zero", replay_csv("time,power_w\n0,0\n1,0\n2,0\n", "trace.csv", "workload.replay.column", "0"))
case("csv/absurd-power", replay_csv("time,power_w\n0,1000\n1,1e20\n", "trace.csv", "workload.replay.column", "row 3"))
case("csv/absurd-time", replay_csv("time,power_w\n0,1000\n1e300,900\n", "trace.csv", "workload.replay.time_column",
                                   "row 3"))
case("csv/binary-garbage", replay_csv("", "trace.csv", "workload.replay.file",
                                      binary=np.random.default_rng(1).bytes(4096)))
case("csv/nul-in-text", replay_csv("", "trace.csv", "row 3",
                                   binary=b"time,power_w\n0,1000\n1,\x0012\n"))
case("csv/no-column-named", replay_csv(GOOD_TRACE, "trace.csv", "workload.replay.column", column=""))
case("csv/missing-file", (lambda d: (scenario_dir(d), (d / "scen.toml").write_text(REPLAY_TOML.format(file="none.csv")),
                                     run_args(d / "scen.toml"))[-1], ("scen.toml", "workload.replay.file", "not found"),
                          {}))
case("csv/directory", (lambda d: (scenario_dir(d), (d / "scen.toml").write_text(REPLAY_TOML.format(file="racks")),
                                  run_args(d / "scen.toml"))[-1], ("scen.toml", "workload.replay.file", "directory"), {}))
case("csv/fifo", (lambda d: (scenario_dir(d), fifo(d, "trace.csv"),
                             (d / "scen.toml").write_text(REPLAY_TOML.format(file="trace.csv")),
                             run_args(d / "scen.toml"))[-1], ("scen.toml", "workload.replay.file", "FIFO"),
                  {"proc": True}))

# replay HDF5: a rack-twin telemetry file with a finite, non-negative rack/it_power
case("h5/not-hdf5", replay_h5(lambda d: (d / "t.h5").write_text(GOOD_TRACE) and d / "t.h5"))
case("h5/truncated", replay_h5(truncated))
case("h5/no-schema", replay_h5(lambda d: h5_copy(d, edit=_attr("schema", None)), "t.h5", "schema"))
case("h5/wrong-schema", replay_h5(lambda d: h5_copy(d, edit=_attr("schema", "other/1")), "t.h5", "schema"))
case("h5/no-it-power", replay_h5(lambda d: h5_copy(d, edit=_del("rack/it_power")), "t.h5", "rack/it_power"))
case("h5/nan-power", replay_h5(lambda d: h5_copy(d, edit=_set("rack/it_power", 2, np.nan)), "t.h5", "rack/it_power",
                               "sample 2"))
case("h5/negative-power", replay_h5(lambda d: h5_copy(d, edit=_set("rack/it_power", 1, -1.0)), "t.h5",
                                    "rack/it_power", "sample 1"))
case("h5/time-backwards", replay_h5(lambda d: h5_copy(d, edit=_set("time", 3, 0.5)), "t.h5", "time", "sample 3"))

# telemetry given to `twin inspect`
case("inspect/truncated", inspect(truncated, "t.h5", "HDF5"))
case("inspect/random-bytes", inspect(lambda d: random_bytes(d, "t.h5"), "t.h5", "HDF5"))
case("inspect/empty-file", inspect(lambda d: (d / "t.h5").write_bytes(b"") or d / "t.h5", "t.h5", "HDF5"))
case("inspect/text-file", inspect(lambda d: (d / "t.h5").write_text("time,power\n") and d / "t.h5", "t.h5", "HDF5"))
case("inspect/wrong-schema", inspect(lambda d: h5_copy(d, edit=_attr("schema", "something-else/3")), "t.h5", "schema"))
case("inspect/schema-not-text", inspect(lambda d: h5_copy(d, edit=_attr("schema", 42)), "t.h5", "schema"))
case("inspect/no-schema", inspect(lambda d: h5_copy(d, edit=_attr("schema", None)), "t.h5", "schema"))
case("inspect/missing-channel", inspect(lambda d: h5_copy(d, edit=_del("rack/flow")), "t.h5", "rack/flow", "missing"))
case("inspect/row-mismatch", inspect(lambda d: h5_copy(d, edit=lambda f: f["rack/dp"].resize((3,))), "t.h5", "rack/dp",
                                     "rows"))
case("inspect/no-time", inspect(lambda d: h5_copy(d, edit=_del("time")), "t.h5", "time"))
case("inspect/scalar-time", inspect(lambda d: h5_copy(d, edit=lambda f: (f.__delitem__("time"),
                                                                         f.create_dataset("time", data=1.0))),
                                    "t.h5", "time"))
case("inspect/time-nan", inspect(lambda d: h5_copy(d, edit=_set("time", 1, np.nan)), "t.h5", "time"))
case("inspect/no-units", inspect(lambda d: h5_copy(d, edit=lambda f: f["rack/dp"].attrs.__delitem__("units")),
                                 "t.h5", "rack/dp", "units"))
case("inspect/missing-file", inspect(lambda d: d / "none.h5", "none.h5", "not found"))
case("inspect/directory", inspect(lambda d: d, "directory"))
case("inspect/fifo", inspect(lambda d: fifo(d, "t.h5"), "t.h5", "FIFO", proc=True))


# output paths: never an input, a device, a FIFO, a directory or someone else's file
def _scenario_named(name):
    def source(d):
        (d / "scen.toml").rename(d / name)
        return d / name
    return source


def _hardlink(d, path):
    os.link(path, d / "link.h5")
    return d / "link.h5"


def _symlink(d, path):
    os.symlink(path, d / "link.h5")
    return d / "link.h5"


def _h5_foreign(d, path):
    with h5py.File(d / "other.h5", "w") as f:
        f["x"] = np.arange(3)
    return d / "other.h5"


case("out/scenario", output(lambda d, p: p, "scen.toml", "-o", "input"))
case("out/include", output(lambda d, p: d / "racks" / "nvl72-class.toml", "nvl72-class.toml", "-o", "input"))
case("out/replay-trace", output(lambda d, p: d / "trace.csv", "trace.csv", "-o", "input",
                                source=lambda d: ((d / "trace.csv").write_text(GOOD_TRACE),
                                                  (d / "scen.toml").write_text(REPLAY_TOML.format(file="trace.csv")),
                                                  d / "scen.toml")[-1]))
case("out/symlink-to-scenario", output(_symlink, "link.h5", "-o", "input"))
case("out/hardlink-to-scenario", output(_hardlink, "link.h5", "-o", "input"))
case("out/partial-is-the-scenario", output(lambda d, p: d / "o.h5", "o.h5", "-o", "input",
                                           source=_scenario_named("o.h5.partial")))
case("out/directory", output(lambda d, p: d / "racks", "racks", "-o", "directory"))
case("out/fifo", output(lambda d, p: fifo(d, "pipe.h5"), "pipe.h5", "-o", "FIFO"))
case("out/existing-text", output(lambda d, p: (d / "notes.txt").write_text("keep me\n") and d / "notes.txt",
                                 "notes.txt", "-o", "not a rack-twin telemetry file"))
case("out/existing-foreign-hdf5", output(_h5_foreign, "other.h5", "-o", "not a rack-twin telemetry file"))
case("out/parent-is-a-file", output(lambda d, p: d / "scen.toml" / "o.h5", "o.h5", "-o", "not a directory"))
case("out/dev-null", output(lambda d, p: "/dev/null", "/dev/null", "-o", "device"))

# outputs the OS refuses although the permission bits allow them (root passes every
# os.access): nothing can be created under /proc; refused before any run, on one line
NOWHERE = "/proc/twin-nowhere"
QUICK_SPEC = ROOT / "calibration" / "specs" / "nvl72-gpu-tim.toml"


def unwritable(args, *needles):
    def make(d):
        h5_copy(d), h5_copy(d, "u.h5")
        path = scenario_dir(d)
        (d / "s.toml").write_text(f'base = "{path.name}"\nduration_s = 5.0\n[grid]\n"facility.supply_temp_c" = [30.0]\n')
        return [str(a).replace("{scen}", str(path)).replace("{d}", str(d)) for a in args]
    return make, needles, {}


if Path("/proc/self").is_dir():
    for _id, _args, _out, _opt in [
            ("run", ["run", "{scen}", "-o", f"{NOWHERE}.h5", "--duration", "5"], f"{NOWHERE}.h5", "-o"),
            ("run-in-a-new-folder", ["run", "{scen}", "-o", f"{NOWHERE}/o.h5", "--duration", "5"], "o.h5", "-o"),
            ("plot-png", ["plot", "{d}/t.h5", "--kind", "cdu", "-o", f"{NOWHERE}.png"], f"{NOWHERE}.png", "-o"),
            ("plot-folder", ["plot", "{d}/t.h5", "-o", NOWHERE], NOWHERE, "-o"),
            ("report", ["report", "{d}/t.h5", "-o", f"{NOWHERE}.html"], f"{NOWHERE}.html", "-o"),
            ("compare-plot", ["compare", "{d}/t.h5", "{d}/u.h5", "--plot", f"{NOWHERE}.png"], f"{NOWHERE}.png",
             "--plot"),
            ("schema", ["schema", "-o", f"{NOWHERE}.json"], f"{NOWHERE}.json", "-o"),
            ("check-junit", ["check", "{scen}", "--jobs", "1", "--duration", "5", "--junit", f"{NOWHERE}.xml"],
             f"{NOWHERE}.xml", "--junit"),
            ("check-update-baseline", ["check", "{scen}", "--jobs", "1", "--duration", "5", "--update-baseline",
                                       "--baseline", f"{NOWHERE}.toml"], f"{NOWHERE}.toml", "--update-baseline"),
            ("size-csv", ["size", "{scen}", "--vary", "controls.flow_setpoint_lpm", "--target",
                          "gpu_junction_margin_k=5", "--duration", "5", "--csv", f"{NOWHERE}.csv"],
             f"{NOWHERE}.csv", "--csv"),
            ("sweep", ["sweep", "{d}/s.toml", "-o", f"{NOWHERE}.parquet"], f"{NOWHERE}.parquet", "-o"),
            # before the fit, which takes minutes
            ("calibrate-overlay", ["calibrate", "{d}/t.h5", "--scenario", "{scen}", "--spec", QUICK_SPEC, "-o",
                                   f"{NOWHERE}.toml"], f"{NOWHERE}.toml", "-o"),
            ("calibrate-trend-plot", ["calibrate", "{d}/t.h5", "--scenario", "{scen}", "--spec", QUICK_SPEC,
                                      "--windows", "60s", "--plot", f"{NOWHERE}.png"], f"{NOWHERE}.png", "--plot"),
            ("accept-json", ["accept", "{d}/t.h5", "--scenario", "{scen}", "--spec", QUICK_SPEC, "--json",
                             f"{NOWHERE}.json"], f"{NOWHERE}.json", "--json")]:
        case(f"unwritable/{_id}", unwritable(_args, _out, _opt, "cannot write"))

# an output path at a file the command did not write (a user's notes, the scenario
# itself): refused, the file kept
def over_notes(args, *needles):
    def make(d):
        (d / "notes.txt").write_text("my notes\n")
        (d / "notes.png").write_text("not a picture\n")
        path = scenario_dir(d)
        return [str(a).replace("{scen}", str(path)).replace("{d}", str(d)) for a in args]
    return make, needles, {}


SIZE = ["size", "{scen}", "--vary", "controls.flow_setpoint_lpm", "--target", "gpu_junction_margin_k=5", "--duration", "5"]
case("overwrite/size-csv-at-the-scenario", over_notes([*SIZE, "--csv", "{scen}"], "scen.toml", "--csv", "refusing"))
case("overwrite/size-csv-at-notes", over_notes([*SIZE, "--csv", "{d}/notes.txt"], "notes.txt", "--csv", "refusing"))
case("overwrite/size-plot-at-notes", over_notes([*SIZE, "--sweep", "facility.supply_temp_c=30:40:2", "--plot",
                                                 "{d}/notes.png"], "notes.png", "--plot", "refusing"))
case("overwrite/check-junit-at-notes", over_notes(["check", "{scen}", "--jobs", "1", "--duration", "5", "--junit",
                                                   "{d}/notes.txt"], "notes.txt", "--junit", "refusing"))
case("overwrite/check-junit-at-the-scenario", over_notes(["check", "{scen}", "--jobs", "1", "--duration", "5",
                                                          "--junit", "{scen}"], "scen.toml", "--junit", "refusing"))
case("overwrite/schema-at-notes", over_notes(["schema", "-o", "{d}/notes.txt"], "notes.txt", "-o", "refusing"))
case("overwrite/accept-json-at-notes", over_notes(["accept", "{d}/t.h5", "--scenario", "{scen}", "--spec", QUICK_SPEC,
                                                   "--json", "{d}/notes.txt"], "notes.txt", "--json", "refusing"))
case("overwrite/accept-json-at-the-scenario", over_notes(["accept", "{d}/t.h5", "--scenario", "{scen}", "--spec",
                                                          QUICK_SPEC, "--json", "{scen}"], "scen.toml", "--json",
                                                         "refusing"))

# special files as the scenario
case("special/dev-zero", cli_args(["run", "/dev/zero"], "/dev/zero", "scenario", "not a regular file", proc=True))
case("special/dev-null", cli_args(["run", "/dev/null"], "/dev/null", "scenario", "not a regular file", proc=True))
case("special/fifo", (lambda d: ["run", str(fifo(d, "scen.toml"))], ("scen.toml", "scenario", "FIFO"),
                      {"proc": True}))
case("special/directory", cli_args(["run", "{d}"], "scenario", "directory"))

# command-line arguments
REF = str(SCEN / "reference-w32.toml")
case("cli/unknown-command", cli_args(["runn", "{scen}"], "runn", "no such command"))
case("cli/unknown-option", cli_args(["run", "{scen}", "--colour", "red"], "--colour", "no such option"))
case("cli/duration-nan", cli_args(["run", "{scen}", "--duration", "nan"], "scen.toml", "--duration",
                                  "simulation.duration_s"))
case("cli/duration-inf", cli_args(["run", "{scen}", "--duration", "inf"], "scen.toml", "--duration",
                                  "simulation.duration_s"))
case("cli/duration-negative", cli_args(["run", "{scen}", "--duration", "-1"], "scen.toml", "--duration",
                                       "simulation.duration_s", "greater than 0"))
case("cli/duration-text", cli_args(["run", "{scen}", "--duration", "abc"], "--duration", "'abc'"))
case("cli/duration-1e12", cli_args(["run", "{scen}", "--duration", "1e12"], "scen.toml", "--duration",
                                   "simulation.duration_s"), proc=True)
case("cli/duration-too-large", cli_args(["run", "{scen}", "--duration", "1e8"], "scen.toml", "--duration",
                                        "simulation.duration_s", "--allow-large"), proc=True)
case("cli/step-too-fine-for-the-duration", cli_args(["run", "{scen}", "--set", "simulation.time_step_s=0.001",
                                                     "--set", "simulation.output_interval_s=1.0",
                                                     "--set", "simulation.hydraulic_update_s=1.0",
                                                     "--duration", "1e6"],
                                                    "scen.toml", "simulation.time_step_s", "--allow-large"), proc=True)
case("cli/output-too-fine", cli_args(["run", "{scen}", "-o", "{d}/o.h5", "--set", "simulation.output_interval_s=0.1",
                                      "--duration", "3e6"], "scen.toml", "simulation.output_interval_s",
                                     "--allow-large"), proc=True)
case("cli/time-step-1e-7", sets("simulation.time_step_s=1e-7", "simulation.output_interval_s=1e-7",
                                "simulation.hydraulic_update_s=1e-7", needles=("scen.toml", "simulation.time_step_s"),
                                proc=True))
case("cli/set-without-equals", cli_args(["run", "{scen}", "--set", "facility.supply_temp_c"], "--set",
                                        "facility.supply_temp_c", "key=value"))
case("cli/set-empty-key", cli_args(["run", "{scen}", "--set", "=3"], "--set", "empty key"))
case("cli/set-empty-part", cli_args(["run", "{scen}", "--set", "facility..flow_lpm=3"], "scen.toml",
                                    "facility..flow_lpm", "empty part"))
case("cli/set-unknown-key", cli_args(["run", "{scen}", "--set", "facility.colour=3"], "scen.toml", "facility.colour",
                                     "unknown key"))
case("cli/set-no-list-element", cli_args(["run", "{scen}", "--set", "workload.schedule.9.duty=0.5"], "scen.toml",
                                         "workload.schedule.9.duty", "no list element"))
case("cli/set-no-list-at-all", cli_args(["run", "{scen}", "--set", "faults.0.value=3"], "scen.toml",
                                        "faults.0.value", "no list element"))
case("cli/set-into-a-value", cli_args(["run", "{scen}", "--set", "facility.supply_temp_c.max=3"], "scen.toml",
                                      "facility.supply_temp_c.max", "not a table"))
case("cli/set-into-a-pair", cli_args(["run", "{scen}", "--set", "controls.setpoint_changes=[[1.0, 2.0]]",
                                      "--set", "controls.setpoint_changes.0.1.x=3"], "scen.toml",
                                     "controls.setpoint_changes.0.1.x", "not a table"))
case("cli/unknown-catalogue-name", cli_args(["run", "reference-w23"], "reference-w23", "SCENARIO",
                                            "did you mean 'reference-w32'"))
case("cli/unknown-catalogue-folder", cli_args(["run", "faults/cdu-tripp"], "faults/cdu-tripp", "SCENARIO",
                                              "did you mean 'faults/cdu-trip'"))
case("cli/missing-scenario-argument", cli_args(["run"], "SCENARIO", "missing"))
case("cli/output-without-value", cli_args(["run", "{scen}", "-o"], "-o"))
case("cli/compare-unknown-name", cli_args(["compare", "nvl72"], "nvl72", "SCENARIO"))
case("cli/compare-facility-nan", cli_args(["compare", "{scen}", "--facility", "nan"], "scen.toml", "--facility",
                                          "facility.supply_temp_c"))
case("cli/compare-facility-hot", cli_args(["compare", "{scen}", "--facility", "80"], "scen.toml", "--facility",
                                          "facility.supply_temp_c"))
case("cli/scenarios-missing-folder", cli_args(["scenarios", "{d}/none"], "none", "FOLDER", "not a directory"))
case("cli/inspect-missing-argument", cli_args(["inspect"], "TELEMETRY", "missing"))


# --------------------------------------------------------------------------- running a case


def _regular_files(root: Path):
    for p in sorted(root.rglob("*")):
        try:
            if stat.S_ISREG(os.lstat(p).st_mode):  # never open a FIFO to hash it
                yield p
        except OSError:
            pass


def _hashes(root: Path, extra=()) -> dict:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in [*_regular_files(root), *map(Path, extra)]}


def _invoke(args, cwd: Path, proc: bool):
    """(exit code, stdout, stderr, traceback or None)."""
    if proc or ALL_IN_SUBPROCESS:
        python = [sys.executable, "-S"] if sys.flags.no_site else [sys.executable]  # started as this one was
        p = subprocess.run([*python, "-m", "twin.cli", *args], capture_output=True, text=True, cwd=cwd,
                           timeout=HANG_TIMEOUT_S)
        return p.returncode, p.stdout, p.stderr, None
    r = CliRunner().invoke(cli, args, catch_exceptions=True)
    tb = None if r.exception is None or isinstance(r.exception, SystemExit) else repr(r.exception)
    return r.exit_code, r.stdout, r.stderr, tb


REPO_PARTS = [SCEN / "reference-w32.toml", *(SCEN / p for p in PARTS)]


@pytest.mark.parametrize("c", list(C.values()), ids=list(C))
def test_bad_input_exits_2_with_one_line_and_leaves_everything_as_it_was(c: Case, tmp_path):
    d = tmp_path / "case"
    d.mkdir()
    args = c.make(d)
    before = _hashes(d, REPO_PARTS)
    code, out, err, tb = _invoke(args, d, c.proc)
    assert tb is None, f"exception: {tb}\n{err}"
    lines = err.strip().splitlines()
    assert code == 2, f"exit {code}\nstdout: {out[-500:]}\nstderr: {err[-2000:]}"
    assert len(lines) == 1, err
    line = lines[0]
    assert line.startswith("error: "), line
    assert "Traceback" not in err
    for word in PYDANTIC_WORDING:
        assert word not in line, line
    # needles are looked for with pytest's temporary root written as TMP: its name
    # ("pytest-of-root", "test_bad_input_exits...") holds "-o" and "input" of its own
    said = line.replace(str(tmp_path), "TMP")
    for needle in c.needles:
        assert needle.replace("{d}", "TMP/case") in said, f"{needle!r} not in {said!r}"
    assert _hashes(d, REPO_PARTS) == before, "an input changed"
    assert not (d / "out.h5").exists() and not (d / "o.h5").exists()
    assert not [p for p in tmp_path.rglob("*.partial") if p.name != "o.h5.partial"], "a .partial was left"
    assert not Path("/dev/null.partial").exists()


def test_the_corpus_is_large_enough():
    assert len(C) >= 150
    assert sum(c.proc for c in C.values()) >= 8  # the hang families run in a subprocess


# --------------------------------------------------------------------------- what stays allowed, and the rest


def _run(*args):
    r = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    return r.exit_code, r.stdout, r.stderr


def test_a_previous_result_may_be_overwritten_and_missing_directories_are_created(tmp_path):
    out = tmp_path / "results" / "deeper" / "run.h5"
    for _ in range(2):
        code, stdout, err = _run("run", SCEN / "reference-w32.toml", "-o", out, "--duration", 2)
        assert code == 0, err
        assert f"telemetry: {out}" in stdout
    assert not list(tmp_path.rglob("*.partial"))


def test_the_size_estimate_counts_the_bytes_of_a_written_row(telemetry_file):
    """The estimate mirrors twin.engine._channels: a channel added there shows up here."""
    import twin
    from twin.budget import row_bytes

    with h5py.File(telemetry_file, "r") as f:
        # the datasets grown along time (channels, and time with each group's copy)
        written = sum(ds.dtype.itemsize * int(np.prod(ds.shape[1:])) for ds in _datasets(f)
                      if ds.maxshape and ds.maxshape[0] is None)
    assert row_bytes(twin.load_scenario(SCEN / "reference-w32.toml")) == written


def _datasets(f):
    out = []
    f.visititems(lambda _, obj: out.append(obj) if isinstance(obj, h5py.Dataset) else None)
    return out


def test_allow_large_lets_a_run_past_the_estimate(tmp_path, monkeypatch):
    from twin import budget

    monkeypatch.setattr(budget, "MAX_WALL_S", 1e-6)
    args = ["run", SCEN / "reference-w32.toml", "--duration", 2]
    code, _, err = _run(*args)
    assert code == 2 and "--allow-large" in err and "simulation.duration_s" in err
    code, stdout, err = _run(*args, "--allow-large")
    assert code == 0, err
    assert "gpu_junction_margin_k" in stdout


def test_catalogue_names_run_from_any_directory(tmp_path):
    twin_exe = [sys.executable, "-m", "twin.cli"]
    listed = subprocess.run([*twin_exe, "scenarios"], capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert listed.returncode == 0, listed.stderr
    names = [line.split()[0] for line in listed.stdout.splitlines()]
    assert "reference-w32.toml" in names and "faults/cdu-trip.toml" in names
    assert "racks/nvl72-class.toml" not in names  # a part, not a scenario
    for name in ("reference-w32", "faults/cdu-trip.toml"):
        run = subprocess.run([*twin_exe, "run", name, "--duration", "2"], capture_output=True, text=True,
                             cwd=tmp_path, timeout=300)
        assert run.returncode == 0, run.stderr
        assert "gpu_junction_margin_k" in run.stdout


def test_the_catalogue_folder_can_be_set(tmp_path, monkeypatch):
    own = tmp_path / "own"
    scenario_dir(own, name="mine.toml")
    monkeypatch.setenv("TWIN_SCENARIO_PATH", str(own))
    code, stdout, _ = _run("scenarios")
    assert code == 0 and stdout.split()[0] == "mine.toml"
    code, stdout, err = _run("run", "mine", "--duration", 2)
    assert code == 0, err
    code, _, err = _run("run", "reference-w32")
    assert code == 2 and "TWIN_SCENARIO_PATH" not in err and str(own) in err


def test_compare_keeps_scenarios_that_share_a_rack(tmp_path):
    """reference-w32 and training-w32 both run the nvl72-class rack: two columns."""
    code, stdout, err = _run("compare", "reference-w32", "training-w32", "--facility", 32)
    assert code == 0, err
    header = stdout.splitlines()[0].split()
    assert header == ["reference-w32", "training-w32"]
    # the same scenario twice, and two files with one name: columns by the path given
    copy = tmp_path / "copy.toml"
    scenario_dir(tmp_path, name="copy.toml")
    code, stdout, err = _run("compare", SCEN / "reference-w32.toml", copy, "--facility", 32)
    assert code == 0, err
    assert stdout.splitlines()[0].split() == [str(SCEN / "reference-w32.toml"), str(copy)]


@pytest.mark.parametrize("args, absent", [
    (["--help"], ("pydantic", "numpy", "numba", "h5py", "scipy", "CoolProp", "xarray", "pandas", "h5netcdf")),
    (["run", "nope.toml"], ("pydantic", "numpy", "numba", "h5py", "scipy", "CoolProp")),
    (["run", "{bad}"], ("pydantic", "numpy", "numba", "h5py", "scipy", "CoolProp")),
    (["run", "/dev/null"], ("pydantic", "numpy", "numba", "h5py", "scipy", "CoolProp")),
    (["run", str(SCEN / "reference-w32.toml"), "--set", "facility.flow_lpm=-1"], ("numba", "h5py", "scipy", "CoolProp")),
])
def test_help_and_bad_input_stay_off_the_heavy_imports(args, absent, tmp_path):
    (tmp_path / "bad.toml").write_text('name = "unterminated\n')
    args = [a.replace("{bad}", str(tmp_path / "bad.toml")) for a in args]
    code = ("import sys\nfrom twin.cli import cli\ntry:\n    cli.main(%r)\nexcept SystemExit:\n    pass\n"
            "print('loaded:', *(m for m in %r if m in sys.modules))" % (args, absent))
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.stdout.splitlines()[-1] == "loaded:", p.stdout[-300:]
