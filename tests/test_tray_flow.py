"""Tray flow requirements against supply temperature (Lenovo LP2048) and the tray flow margin."""
import numpy as np
import pytest

import twin
from twin.errors import TwinInputError

from .conftest import REFERENCE

# Lenovo LP2048 (ThinkSystem SC777 V4, GB200 NVL4 tray, 4 x 1200 W): flow the tray needs
# at each supply temperature [degC: L/min], as published ([LEN] in docs/sources.md).
LENOVO_LP2048_LPM = {27.0: 4.4, 32.0: 4.8, 40.0: 6.0, 45.0: 7.0}
# The ideal flow controller meets its setpoint to 1e-6 (twin.engine.FLOW_CONTROL_RTOL);
# a ratio built on it is good to that, plus the solver's residual.
RATIO_RTOL = 1e-5


def _compute_tray():
    return twin.load_scenario(REFERENCE).rack.tray_types["compute"]


@pytest.mark.parametrize("supply_c, flow_lpm", sorted(LENOVO_LP2048_LPM.items()))
def test_compute_tray_needs_the_published_flow_at_each_tabulated_supply(supply_c, flow_lpm):
    assert _compute_tray().required_flow_at(supply_c) == flow_lpm


def test_requirement_is_linear_between_points_and_held_outside_the_table():
    tray = _compute_tray()
    # midpoints of the published intervals
    assert tray.required_flow_at(36.0) == pytest.approx((4.8 + 6.0) / 2, rel=1e-12)
    assert tray.required_flow_at(42.5) == pytest.approx((6.0 + 7.0) / 2, rel=1e-12)
    assert tray.required_flow_at(29.5) == pytest.approx((4.4 + 4.8) / 2, rel=1e-12)
    # outside 27-45 C the vendor says nothing: the end values hold (docs/model.md)
    assert tray.required_flow_at(17.0) == 4.4
    assert tray.required_flow_at(50.0) == 7.0


@pytest.mark.parametrize("tray, message", [
    ({"required_flow_table": [[40.0, 6.0], [32.0, 4.8]]}, "increase"),
    ({"required_flow_table": [[32.0, 4.8], [40.0, 0.0]]}, "greater than 0"),
    ({"required_flow_table": [[32.0, 4.8]]}, "two"),
    ({"required_flow_lpm": 6.0}, "exactly one"),  # the rack file already has a table
])
def test_a_bad_requirement_is_an_input_error(tray, message):
    overrides = {f"rack.tray_types.compute.{k}": v for k, v in tray.items()}
    with pytest.raises(TwinInputError, match=message):
        twin.load_scenario(REFERENCE, overrides)


def test_a_constant_requirement_still_loads_and_holds_at_every_temperature():
    s = twin.load_scenario(REFERENCE)
    switch = s.rack.tray_types["switch"]
    assert switch.required_flow_table is None
    assert switch.required_flow_at(20.0) == switch.required_flow_at(45.0) == switch.required_flow_lpm


def _one_tray(supply_c, flow_lpm, **extra):
    """A rack of one compute tray at full power, the tray's flow held at ``flow_lpm``."""
    out = {
        "rack.tray_stack": [{"type": "compute", "count": 1}],
        "facility.supply_temp_c": supply_c,
        "controls.flow_setpoint_lpm": flow_lpm,
        "workload.schedule": [{"chips": "gpu", "kind": "constant", "fraction_of_tdp": 1.0},
                              {"chips": "cpu", "kind": "constant", "fraction_of_tdp": 0.7}],
        "simulation.duration_s": 20.0,
    }
    out.update(extra)
    return twin.simulate(twin.load_scenario(REFERENCE, out))


def test_margin_at_w32_uses_the_w32_requirement():
    """5.0 L/min through a GB200 NVL4-class tray: enough at W32 (4.8 L/min needed), not at
    W45 (7.0 L/min), nor at W40 (6.0 L/min, inside the table)."""
    # a fouled CDU exchanger lifts the rack supply ~0.8 K above the facility water: the
    # requirement is the one at the supply the tray sees, not at the facility's
    r = _one_tray(32.0, 5.0, **{"cdu.heat_exchanger.ua_scale": 0.2})
    supply = r.telemetry()["rack/supply_temp"].max()
    assert supply - 32.0 > 0.5
    published = np.interp(supply, list(LENOVO_LP2048_LPM), list(LENOVO_LP2048_LPM.values()))
    assert r.margins["tray_flow_ratio_min"] == pytest.approx(5.0 / published, rel=RATIO_RTOL)
    assert r.margin_table.ok
    for supply_c in (40.0, 45.0):
        hot = _one_tray(supply_c, 5.0)
        assert hot.margins["tray_flow_ratio_min"] < 1.0
        assert not hot.margin_table.ok
    assert "above the compute table (45 degC)" in {m.name: m for m in hot.margin_table.rows}["tray_flow_ratio_min"].note


def test_margin_follows_the_supply_the_run_sees():
    """A facility excursion from 32 to 40 degC mid-run: the worst sample is judged against
    the 40 degC requirement, though the run started well inside its margin."""
    fault = [{"kind": "facility_supply_temp", "start_s": 10.0, "value": 40.0}]
    r = _one_tray(32.0, 5.5, **{"faults": fault, "simulation.duration_s": 300.0})
    supply = r.telemetry()["rack/supply_temp"]
    assert supply[0] < 33.0 and supply.max() > 39.0
    published = np.interp(supply.max(), list(LENOVO_LP2048_LPM), list(LENOVO_LP2048_LPM.values()))
    assert r.margins["tray_flow_ratio_min"] == pytest.approx(5.5 / published, rel=RATIO_RTOL)
    assert r.margins["tray_flow_ratio_min"] < 1.0


def test_a_supply_sensor_offset_does_not_move_the_margin():
    """The margin judges the coolant, not a faulty sensor (sensor_offset biases telemetry only)."""
    plain = _one_tray(32.0, 5.0)
    offset = _one_tray(32.0, 5.0, faults=[{"kind": "sensor_offset", "start_s": 0.0, "target": "rack/supply_temp",
                                           "value": 10.0}])
    assert offset.telemetry()["rack/supply_temp"][-1] == pytest.approx(plain.telemetry()["rack/supply_temp"][-1] + 10.0)
    assert offset.margins["tray_flow_ratio_min"] == pytest.approx(plain.margins["tray_flow_ratio_min"], rel=1e-12)
