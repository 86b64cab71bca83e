"""Shared fixtures: the reference scenario and small variants of it."""
from pathlib import Path

import pytest

import twin

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "scenarios" / "reference-w32.toml"


def steady_overrides(duration_s=20.0, **extra):
    """Constant full power on every chip (steady state from t = 0)."""
    sched = [
        {"chips": "gpu", "kind": "constant", "fraction_of_tdp": 1.0},
        {"chips": "cpu", "kind": "constant", "fraction_of_tdp": 0.7},
        {"chips": "nvswitch", "kind": "constant", "fraction_of_tdp": 0.8},
    ]
    out = {"workload.schedule": sched, "simulation.duration_s": duration_s}
    out.update(extra)
    return out


def single_plate_overrides(**extra):
    """One compute tray with one path holding one GPU plate, no aux power."""
    out = {
        "rack.tray_stack": [{"type": "compute", "count": 1}],
        "rack.tray_types.compute.paths": [["gpu"]],
        "rack.tray_types.compute.aux_power_w": 0.0,
        "rack.tray_types.compute.aux_idle_power_w": 0.0,
        "controls.flow_setpoint_lpm": 3.0,
        "workload.schedule": [{"chips": "gpu", "kind": "constant", "fraction_of_tdp": 1.0}],
        "simulation.duration_s": 10.0,
    }
    out.update(extra)
    return out


@pytest.fixture(scope="session")
def reference_scenario():
    return twin.load_scenario(REFERENCE)
