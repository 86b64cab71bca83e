"""CDU controllers: PI pump speed on flow or dP, PI facility valve on supply temperature."""
import numpy as np
import pytest

import twin
from twin.controls import PI

from .conftest import ROOT

BASE = ROOT / "scenarios" / "faults" / "pump-trip-n1.toml"
# Acceptance figures at steady state (docs/model.md, What the tests hold the model to).
HOLD_FLOW_RTOL = 0.02
HOLD_TEMP_ATOL_K = 0.5


def _step_response(y, t, t_step, old, new):
    after = t > t_step
    span = new - old
    overshoot = max(0.0, (y[after] - new).max() / span if span > 0 else (new - y[after]).min() / -span)
    band = np.abs(y - new) > 0.02 * abs(new)
    outside = np.nonzero(band & after)[0]
    settle = (t[outside[-1]] - t_step) if outside.size else 0.0
    return overshoot, settle


@pytest.mark.parametrize("variable, old, new", [("flow", 150.0, 170.0), ("dp", 80.0, 90.0)])
def test_pump_controller_settles_a_setpoint_step_without_oscillation(variable, old, new):
    over = {"faults": [], "controls.pump_mode": "pid", "controls.pid_variable": variable,
            "controls.setpoint_changes": [[30.0, new]], "simulation.duration_s": 120.0,
            "simulation.hydraulic_update_s": 1.0}
    if variable == "dp":
        over["controls.dp_setpoint_kpa"] = old
    tel = twin.simulate(twin.load_scenario(BASE, over)).telemetry()
    y = tel["rack/flow"] if variable == "flow" else tel["rack/dp"]
    t = tel.time
    np.testing.assert_allclose(y[t <= 30.0], old, rtol=1e-4)  # steady before the step
    overshoot, settle = _step_response(y, t, 30.0, old, new)
    assert overshoot < 0.05
    assert settle < 20.0
    tail = y[t > 90.0]
    np.testing.assert_allclose(tail, new, rtol=HOLD_FLOW_RTOL)
    assert np.std(tail) < 0.002 * new  # no sustained oscillation


def test_pump_controller_recovers_a_pump_trip():
    tel = twin.simulate(twin.load_scenario(BASE, {"controls.pump_mode": "pid", "simulation.duration_s": 120.0,
                                                  "simulation.hydraulic_update_s": 1.0})).telemetry()
    f, t = tel["rack/flow"], tel.time
    assert f[(t > 60) & (t <= 62)].min() < 0.98 * 150.0
    np.testing.assert_allclose(f[t > 90.0], 150.0, rtol=HOLD_FLOW_RTOL)


def test_valve_controller_settles_a_supply_temperature_step_and_holds_under_bursts():
    over = {"faults": [], "controls.supply_temp_control": True, "controls.supply_temp_setpoint_c": 36.0,
            "controls.supply_temp_changes": [[60.0, 38.0]], "simulation.duration_s": 600.0,
            "simulation.hydraulic_update_s": 1.0,
            "workload.schedule": [{"chips": "gpu", "kind": "square", "period_s": 1.0, "duty": 0.7,
                                   "high_fraction_of_tdp": 1.0, "low_fraction_of_tdp": 0.35},
                                  {"chips": "cpu", "fraction_of_tdp": 0.7}, {"chips": "nvswitch", "fraction_of_tdp": 0.8}]}
    tel = twin.simulate(twin.load_scenario(BASE, over)).telemetry()
    y, t = tel["cdu/supply_temp"], tel.time
    assert np.all(np.abs(y[t <= 60.0] - 36.0) < HOLD_TEMP_ATOL_K)
    assert y[t > 60.0].max() < 38.0 + 0.25  # overshoot well inside the band
    settled = t[np.nonzero(np.abs(y - 38.0) > HOLD_TEMP_ATOL_K)[0][-1]] - 60.0
    assert settled < 120.0
    tail = y[t > 400.0]
    assert np.all(np.abs(tail - 38.0) < HOLD_TEMP_ATOL_K)
    assert np.ptp(tail) < 0.2  # bursts at the chips, not at the supply
    # the valve moved to do it: less facility flow for a warmer supply
    fac = tel["facility/flow"]
    assert fac[-1] < fac[0]


def test_pi_anti_windup_releases_at_once_from_a_limit():
    pi = PI(kp=0.5, ti_s=2.0, lo=0.0, hi=1.0, ramp_per_s=10.0, output=0.5)
    pi.start_at(0.5)
    for _ in range(100):  # a long push into the upper limit
        pi.step(1.0, 1.0)
    assert pi.output == 1.0
    pi.step(-0.2, 1.0)  # the error reverses: the output leaves the limit at once
    assert pi.output < 1.0
