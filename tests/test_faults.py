"""Faults on the schedule: pump trip with N+1, CDU trip ride-through, clogged plate,
isolated tray, facility excursion, sensor offset."""
import re

import numpy as np
import pytest

import twin
from twin.telemetry import read_telemetry

from .conftest import ROOT

FAULTS = ROOT / "scenarios" / "faults"
# Acceptance figure: flow back within 2 % of its setpoint after the failover delay
# (docs/model.md, What the tests hold the model to).
FLOW_RECOVERY_RTOL = 0.02


def _run(name, **over):
    r = twin.simulate(twin.load_scenario(FAULTS / f"{name}.toml", over))
    return r, r.telemetry()


@pytest.mark.parametrize("running", [2, 1])
def test_pump_trip_with_n_plus_1_dips_and_recovers_without_throttling(running):
    """running=2: both pumps share the load, the survivor is sped up after the delay;
    running=1: duty + standby, the standby starts after the delay."""
    r, tel = _run("pump-trip-n1", **{"cdu.pumps.running": running, "simulation.duration_s": 120.0})
    t, flow = tel.time, tel["rack/flow"]
    setpoint = 150.0
    before = flow[t <= 60.0]
    during = flow[(t > 60.0) & (t <= 65.0)]
    after = flow[t > 66.0]
    np.testing.assert_allclose(before, setpoint, rtol=1e-5)
    assert during.max() < (1 - FLOW_RECOVERY_RTOL) * setpoint  # a real dip
    np.testing.assert_allclose(after, setpoint, rtol=FLOW_RECOVERY_RTOL)
    assert tel["cdu/pump_speed"][-1, 0] == 0.0 and tel["cdu/pump_speed"][-1, 1] > 0.0
    kinds = [k for _, k, _ in r.events]
    assert kinds.count("pump_trip") == 1 and kinds.count("failover") == 1
    if running == 2:
        assert r.margins["gpu_throttled_s_max"] == 0.0
        assert r.margins["gpu_shutdowns"] == 0


def test_cdu_trip_throttles_before_shutdown_and_ride_through_grows_with_volume():
    small, tel = _run("cdu-trip", **{"simulation.duration_s": 400.0})
    big, _ = _run("cdu-trip", **{"simulation.duration_s": 400.0, "cdu.reservoir_volume_l": 60.0})
    thr, shut = small.margins["ride_through_throttle_s"], small.margins["ride_through_shutdown_s"]
    assert 0 < thr < shut
    tj = tel["gpu/junction_temp_max"].max(axis=1)
    t = tel.time
    assert tj[t > 61.0][0] < tj[-1] or small.margins["gpu_shutdowns"] > 0  # junctions rise after the trip
    # at the first throttle no GPU is at shutdown
    clock = tel["gpu/clock_fraction"]
    first_throttle_row = np.argmax(clock.min(axis=1) < 1.0)
    assert tel["gpu/junction_temp_max"][first_throttle_row].max() < 92.0
    # more coolant, more time
    assert big.margins["ride_through_throttle_s"] > 1.5 * thr
    assert big.margins["ride_through_shutdown_s"] > shut


def test_clogged_plate_runs_hotter_and_the_network_redistributes():
    r, tel = _run("clogged-plate", **{"simulation.duration_s": 200.0})
    m = r.model
    k = m.chip_names.index("rack01/tray04/gpu0")
    twin_k = m.chip_names.index("rack01/tray04/gpu2")  # same place in the parallel path
    gpu = list(m.gpu_index)
    tj_before = tel["gpu/junction_temp"][50]
    tj_after = tel["gpu/junction_temp"][-1]
    assert tj_after[gpu.index(k)] > tj_before[gpu.index(k)] + 1.0
    assert tj_after[gpu.index(k)] > tj_after[gpu.index(twin_k)] + 1.0
    # the clogged plate's path loses flow, the parallel path and the other trays gain a little
    clean, _ = _run("clogged-plate", **{"faults": [], "simulation.duration_s": 20.0})
    q0, q1 = clean.hydraulics.flow_m3s, r.hydraulics.flow_m3s
    path, other = m.chip_path_edge[k], m.chip_path_edge[twin_k]
    assert q1[path] < 0.8 * q0[path]
    assert q0[other] < q1[other] < 1.3 * q0[other]
    tray_flow = tel["tray/flow"]
    assert tray_flow[-1, 4] < tray_flow[50, 4]
    others = np.delete(np.arange(tray_flow.shape[1]), 4)
    assert np.all(tray_flow[-1, others] > tray_flow[50, others])
    assert np.all(tray_flow[-1, others] < 1.01 * tray_flow[50, others])  # slightly


def test_isolated_tray_loses_its_flow_and_the_rest_shares_it():
    r, tel = _run("isolated-tray", **{"simulation.duration_s": 90.0})
    t5 = r.model.tray_names.index("rack01/tray05")
    assert tel["tray/flow"][-1, t5] < 0.05
    assert tel["rack/flow"][-1] == pytest.approx(150.0, rel=1e-4)
    assert r.margins["gpu_shutdowns"] == 4  # its four GPUs, nobody else
    assert ("tray_isolation" in [k for _, k, _ in r.events])


def test_facility_excursion_moves_the_loop_and_clears(tmp_path):
    s = twin.load_scenario(FAULTS / "w45-hot-day.toml", {"simulation.duration_s": 900.0,
                                                         "faults.0.start_s": 300.0, "faults.0.end_s": 600.0})
    out = tmp_path / "h.h5"
    twin.simulate(s, output=out)
    tel = read_telemetry(out)
    fac = tel["facility/supply_temp"]
    t = tel.time
    assert np.all(fac[(t > 300) & (t <= 600)] == 45.0) and fac[-1] == 40.0
    cdu = tel["cdu/supply_temp"]
    assert cdu[t == 600][0] > cdu[t == 300][0] + 3.0


def test_sensor_offset_shifts_the_channel_only():
    over = {"faults": [{"kind": "sensor_offset", "target": "rack/supply_temp", "start_s": 20.0, "end_s": 40.0,
                        "value": 1.5}], "simulation.duration_s": 60.0}
    base = twin.simulate(twin.load_scenario(FAULTS / "clogged-plate.toml", {"faults": [], "simulation.duration_s": 60.0}))
    off = twin.simulate(twin.load_scenario(FAULTS / "clogged-plate.toml", over))
    a, b = base.telemetry(), off.telemetry()
    d = b["rack/supply_temp"] - a["rack/supply_temp"]
    t = a.time
    np.testing.assert_allclose(d[(t > 20) & (t <= 40)], 1.5, atol=1e-9)
    np.testing.assert_allclose(d[(t <= 20) | (t > 40)], 0.0, atol=1e-9)
    np.testing.assert_array_equal(a["gpu/junction_temp"], b["gpu/junction_temp"])


def test_a_member_sensor_offset_shifts_that_member_only():
    """One tray's return sensor reads 2 K high: that column moves by 2 K, every other
    tray's and every other channel stays as it was."""
    fault = {"kind": "sensor_offset", "target": "tray/return_temp", "member": "tray05", "start_s": 0.0, "value": 2.0}
    s = twin.load_scenario(FAULTS / "clogged-plate.toml", {"faults": [], "simulation.duration_s": 30.0})
    a = twin.simulate(s).telemetry()
    b = twin.simulate(s.with_overrides({"faults": [fault]})).telemetry()
    col = b.labels["tray/labels"].index("rack01/tray05")
    d = b["tray/return_temp"] - a["tray/return_temp"]
    np.testing.assert_allclose(d[:, col], 2.0, atol=1e-9)
    np.testing.assert_allclose(np.delete(d, col, axis=1), 0.0, atol=0.0)
    np.testing.assert_array_equal(a["rack/return_temp"], b["rack/return_temp"])


@pytest.mark.parametrize("member, message", [("tray99", "no member 'tray99'"),
                                             ("rack01/tray05", "one value a sample")])
def test_a_member_that_is_not_one_is_a_clean_error(member, message):
    target = "tray/return_temp" if member == "tray99" else "rack/supply_temp"
    s = twin.load_scenario(FAULTS / "clogged-plate.toml", {"faults": [
        {"kind": "sensor_offset", "target": target, "member": member, "start_s": 0.0, "value": 1.0}],
        "simulation.duration_s": 10.0})
    with pytest.raises(twin.TwinInputError, match="faults.0.member") as exc:
        twin.simulate(s)
    assert message in exc.value.message


def test_bad_fault_target_is_a_clean_error():
    s = twin.load_scenario(FAULTS / "clogged-plate.toml", {"faults.0.target": "tray99/gpu0"})
    with pytest.raises(twin.TwinInputError, match="faults.0.target"):
        twin.simulate(s)


def test_cdu_trip_with_pumps_lost_stops_the_flow_and_leaves_seconds():
    """All pumps lost: no flow, the plates' own heat capacity is all the GPUs have."""
    r, tel = _run("cdu-trip", **{"faults.0.pumps_run": False, "simulation.duration_s": 120.0})
    t = tel.time
    assert np.all(tel["rack/flow"][t > 61.0] < 0.5)
    assert np.all(tel["cdu/pump_speed"][t > 61.0] == 0.0)
    thr, shut = r.margins["ride_through_throttle_s"], r.margins["ride_through_shutdown_s"]
    assert 0 < thr < shut < 30.0  # seconds, not minutes (REFERENCE: rack-side loss, under a minute)
    circulating, _ = _run("cdu-trip", **{"simulation.duration_s": 400.0})
    assert circulating.margins["ride_through_throttle_s"] > 3 * thr



def test_a_clogged_plate_drops_what_a_plate_with_fewer_channels_drops():
    """A plate with a share f of its channels blocked carries its flow in (1 - f) of them:
    per channel the velocity rises by 1/(1 - f), so the viscous (laminar) part of its drop
    rises by 1/(1 - f) and the inertial part by 1/(1 - f)^2 (Hagen-Poiseuille and
    dynamic-pressure scaling). The two parts' shares at the running flow follow from the
    clean plate's measured slope n = d ln dp / d ln Q: viscous 2 - n, inertial n - 1. One
    isothermal GPU plate (no power) at a held flow, f = 0.5. Catches a clog that scales
    the inertial part like the viscous one, or the drop not at all."""
    from .conftest import REFERENCE, single_plate_overrides

    def path_dp(flow_lpm, clog=0.0):
        faults = [{"kind": "plate_clog", "start_s": 0.0, "target": "tray00/gpu0", "severity": clog}] if clog else []
        r = twin.simulate(twin.load_scenario(REFERENCE, single_plate_overrides(**{
            "faults": faults, "controls.flow_setpoint_lpm": flow_lpm, "simulation.duration_s": 1.0,
            "workload.schedule": [{"chips": "gpu", "fraction_of_tdp": 0.0}]})))
        m, p = r.model, r.hydraulics.pressure_pa
        e = m.edge_names.index("rack01/tray00/path0")
        return p[m.edge_from[e]] - p[m.edge_to[e]]

    q, f, eps = 3.0, 0.5, 0.01
    n = np.log(path_dp(q * (1 + eps)) / path_dp(q * (1 - eps))) / np.log((1 + eps) / (1 - eps))
    assert 1.5 < n < 2.0  # a plate between viscous and inertial, as measured plates are
    expected = (2 - n) / (1 - f) + (n - 1) / (1 - f) ** 2
    assert path_dp(q, clog=f) / path_dp(q) == pytest.approx(expected, rel=1e-3)


def test_no_ride_through_is_claimed_for_a_cdu_trip_after_the_end_of_the_run():
    """The CDU trip scenario (trip at 60 s) run for 50 s. Catches: ride-through margins of
    "-10 s ... at least this long" for a trip that never happened."""
    r = twin.simulate(twin.load_scenario(ROOT / "scenarios" / "faults" / "cdu-trip.toml",
                                         {"simulation.duration_s": 50.0}))
    rows = {m.name: m for m in r.margin_table.rows}
    for key in ("ride_through_throttle_s", "ride_through_shutdown_s"):
        assert np.isnan(rows[key].value), (key, rows[key].value)
        assert "after the end of the run" in rows[key].note and "60 s" in rows[key].note, rows[key].note


def test_the_pump_head_margin_says_when_every_pump_of_a_cdu_stopped():
    """Both pumps of the N+1 pair trip at 10 s (no standby left). Catches:
    "pump_head_margin_kpa 177.6 ok: full-speed head at the operating flow minus delivered
    head" with no pump running, the reserve of the first 10 s passed off as the run's."""
    r = twin.simulate(twin.load_scenario(FAULTS / "pump-trip-n1.toml", {"simulation.duration_s": 20.0, "faults": [
        {"kind": "pump_trip", "target": "cdu/pump0", "start_s": 10.0},
        {"kind": "pump_trip", "target": "cdu/pump1", "start_s": 10.0}]}))
    row = next(m for m in r.margin_table.rows if m.name == "pump_head_margin_kpa")
    assert "no pump of cdu1 running from 10 s" in row.note, row.note
    ok = twin.simulate(twin.load_scenario(FAULTS / "pump-trip-n1.toml", {"simulation.duration_s": 20.0}))
    assert "no pump" not in next(m for m in ok.margin_table.rows if m.name == "pump_head_margin_kpa").note
    # the duty pump trips at 60 s, the standby runs after the 5 s failover delay: an outage,
    # not the rest of the run ("no pump of cdu1 running from 60 s" said otherwise)
    failover = twin.simulate(twin.load_scenario(FAULTS / "pump-trip-n1.toml", {"simulation.duration_s": 80.0,
                                                                                "cdu.pumps.running": 1}))
    note = next(m for m in failover.margin_table.rows if m.name == "pump_head_margin_kpa").note
    assert "no pump of cdu1 running 60-65 s" in note and "from 60" not in note, note


def test_a_flow_setpoint_the_pumps_cannot_reach_fails_the_pump_head_margin():
    """The N+1 pair of the reference CDU at full speed delivers some flow Q (speed mode,
    speed 1); a flow controller asked for 2 % less holds it with head to spare, asked for
    2 % more runs the pumps flat out and delivers Q. Catches: "pump_head_margin_kpa 0.000
    ok" with the setpoint not held (the reserve taken at the flow the saturated pumps
    deliver, always 0), and a held setpoint flagged."""
    base = {"simulation.duration_s": 20.0, "faults": []}
    full = twin.simulate(twin.load_scenario(FAULTS / "pump-trip-n1.toml", {
        **base, "controls.pump_mode": "speed", "controls.pump_speed_fraction": 1.0}))
    q_max = float(full.telemetry()["rack/flow"][-1])

    def head_row(setpoint):
        r = twin.simulate(twin.load_scenario(FAULTS / "pump-trip-n1.toml",
                                             {**base, "controls.flow_setpoint_lpm": setpoint}))
        return next(m for m in r.margin_table.rows if m.name == "pump_head_margin_kpa")

    held = head_row(0.98 * q_max)
    assert held.status == "ok" and held.value > 0 and "not held" not in held.note, held
    short = head_row(1.02 * q_max)
    assert short.status == "fail" and short.value < 0, short
    delivered, asked = (float(x) for x in re.search(r"not held: ([\d.]+) of ([\d.]+) L/min", short.note).groups())
    assert delivered == pytest.approx(q_max, abs=0.05) and asked == pytest.approx(1.02 * q_max, abs=1e-3)



def test_the_reserve_short_of_a_setpoint_matches_the_loop_solved_at_the_setpoint():
    """The shortfall of an unheld setpoint is estimated with the loop's head taken to grow
    with the flow squared (twin.margins, an ASSUMPTION). Here the loop is solved at the
    setpoint itself: the pumps run faster than full speed (speed mode, the speed found by
    root search) until they deliver it, and the head they then deliver is the loop's at
    the setpoint; the full-speed pump curve at each running pump's share of it, minus that
    head, is the reserve the margin should report. Catches: a scale applied to the flow
    but not the head (or squared twice), and the exponent assumption failing on this loop
    (1.8 instead of 2 would be off by ~10 % of the shortfall: the tolerance is 3 %). Found:
    -36.20 kPa against -35.25 solved (2.7 %), on the safe side (this loop's head grows a
    little slower than the flow squared); the row of 8 racks with one of three CDU
    pumps tripped: -3.197 against -3.145 (1.7 %)."""
    from scipy.optimize import brentq

    from twin.build import build_model

    base = {"simulation.duration_s": 20.0, "faults": []}

    def speed_run(x):
        r = twin.simulate(twin.load_scenario(FAULTS / "pump-trip-n1.toml", {
            **base, "controls.pump_mode": "speed", "controls.pump_speed_fraction": x}))
        return r.telemetry()

    q_max = float(speed_run(1.0)["rack/flow"][-1])
    setpoint = 1.05 * q_max
    s = twin.load_scenario(FAULTS / "pump-trip-n1.toml", {**base, "controls.flow_setpoint_lpm": setpoint})
    row = next(m for m in twin.simulate(s).margin_table.rows if m.name == "pump_head_margin_kpa")
    x = brentq(lambda v: float(speed_run(v)["rack/flow"][-1]) - setpoint, 1.0, 1.2, xtol=1e-6)
    tel = speed_run(x)
    loop_kpa = float(tel["cdu/dp"][-1][0] if np.ndim(tel["cdu/dp"][-1]) else tel["cdu/dp"][-1])
    running = np.flatnonzero(np.asarray(tel["cdu/pump_speed"][-1]) > 0)
    m = build_model(s)
    share = setpoint / running.size * 1e-3 / 60  # m3/s through each running pump
    curve_kpa = (m.pump_shutoff_pa[running] - m.pump_k[running] * share ** 2) / 1e3  # each at full speed
    truth = float(np.min(curve_kpa - loop_kpa))
    assert truth < 0 and row.status == "fail"
    assert row.value == pytest.approx(truth, rel=0.03), (row.value, truth)
    assert row.value <= truth, (row.value, truth)  # the estimate may overstate the shortfall, never hide it


# tray returns are kept as float32: 7.6e-6 K apart at 100 degC
STORED_ATOL_K = 1e-5
_STOPPED = {"cdu.pumps.running": 1, "facility.supply_temp_c": 45.0, "simulation.duration_s": 80.0}
_NO_TUBING = {"rack.tray_types.compute.tubing.length_m": 0.0, "rack.tray_types.switch.tubing.length_m": 0.0}


@pytest.mark.parametrize("name, over", [
    ("faults/pump-trip-n1", _STOPPED),
    ("faults/pump-trip-n1", {**_STOPPED, **_NO_TUBING}),
    ("row-8x-nvl72-w32", {"simulation.duration_s": 120.0}),
], ids=["stopped-loop", "stopped-loop-no-tubing", "row"])
def test_every_recorded_coolant_temperature_lies_within_the_runs_coolant_extremes(name, over):
    """Every coolant temperature recorded (tray and rack returns and supplies, CDU) lies
    between the run's ``coolant_temp_min_c`` and ``coolant_temp_max_c``.

    The duty pump tripping at 45 degC with one pump running leaves 5 s without a pump
    until the standby starts, the hydraulic solve leaving ~1e-8 L/min. Catches step-mean
    outflows that divide the tray's aux heat by that residue: tray returns of 5,252 degC
    and a rack return of 176 degC beside a coolant maximum of 66 degC. With tray tubing of
    zero length the tray's return still holds its quick disconnect's coolant: a finite
    temperature (it boils, and the run says so), not 2.5e9 degC. The row (8 racks,
    segments of 30 s, records every 10 s): catches extremes taken from the cells at
    segment ends only, which missed tray returns recorded 0.02 K above them."""
    r = twin.simulate(twin.load_scenario(ROOT / "scenarios" / f"{name}.toml", over))
    tel = r.telemetry()
    t = tel.time
    if name.startswith("faults/"):
        assert np.all(tel["rack/flow"][(t > 61.0) & (t <= 65.0)] < 1e-3)  # the loop did stop
    hi, lo = r.margins["coolant_temp_max_c"], r.margins["coolant_temp_min_c"]
    assert 30.0 <= lo and hi < 110.0
    for channel in ("tray/return_temp", "rack/return_temp", "rack/supply_temp", "cdu/return_temp", "cdu/supply_temp"):
        v = np.asarray(tel[channel], dtype=float)
        assert np.all(np.isfinite(v)), channel
        assert lo - STORED_ATOL_K <= v.min() and v.max() <= hi + STORED_ATOL_K, (channel, v.min(), v.max(), lo, hi)


def test_a_liquid_heat_peak_above_what_the_rack_drew_is_said_to_be_stored_heat():
    """After 5 s without flow the restarted flow carries off what the chips, plates and
    stagnant coolant stored: 177 kW from a rack that never drew more than 116 kW. The peak's
    note says where it comes from; a rack running steadily gets no such note."""
    r, _ = _run("pump-trip-n1", **_STOPPED)
    row = next(m for m in r.margin_table.rows if m.name == "rack_liquid_heat_peak_kw")
    it_peak = float(np.max(r.telemetry()["rack/it_power"])) / 1e3
    assert row.value > 1.3 * it_peak and "above the peak IT power" in row.note, (row.value, it_peak, row.note)
    ok, _ = _run("pump-trip-n1", **{"simulation.duration_s": 80.0})
    assert "above the peak IT power" not in next(m for m in ok.margin_table.rows
                                                 if m.name == "rack_liquid_heat_peak_kw").note


def test_a_lost_facility_flow_leaves_its_return_temperature_unread_without_a_warning():
    """Facility flow lost at 60 s: its return temperature has no value (NaN, as a gap in
    measured telemetry) rather than a division by zero that numpy warns about on the
    user's terminal; before the loss it is the supply plus the CDU's heat over its mcp."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = twin.simulate(twin.load_scenario(ROOT / "scenarios" / "reference-w32.toml", {
            "simulation.duration_s": 120.0, "faults": [{"kind": "facility_flow", "start_s": 60.0, "severity": 1.0}]}))
    tel = r.telemetry()
    t, ret = tel.time, np.asarray(tel["facility/return_temp"], dtype=float)
    assert np.all(np.isfinite(ret[t <= 60.0])) and np.all(np.isnan(ret[t > 61.0]))
    assert np.all(tel["facility/flow"][t > 61.0] == 0.0)
