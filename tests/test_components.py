"""The model built from components: per-instance parameters, spread, rows of racks.

References are not the model's own formulas: a series thermal resistance (one more
``dR`` under a chip at constant power raises its junction by ``P dR`` and nothing else),
an independent nodal solve of the row's network (``scipy.optimize.root``, as
tests/test_reference_hydraulics.py), the first law over the whole row, and the sampling
statistics of the spread's distributions.
"""
import math

import numpy as np
import pytest

import twin
from twin.build import LPM, build_model
from twin.components.base import draw_factor
from twin.errors import TwinInputError
from twin.network import Network
from twin.scenario import Spread

from .conftest import REFERENCE, ROOT, steady_overrides
from .test_reference_hydraulics import RACK_FLOW_RTOL, _nodal_solve, _rack_edge_laws

ROW = ROOT / "scenarios" / "row-8x-nvl72-w32.toml"
# Junction changes that are "no change": the 0.01 K.
UNCHANGED_K = 0.01
# A junction at steady state under constant power sits ``P R`` above its plate base; the
# steady start converges to 1e-9 K per 100 pseudo-steps (twin.steady.STEADY_TOL_K) and the
# run holds it: 1e-4 K is far above that and far below the 4.8 K being checked.
STEADY_K = 1e-4
# The first law over a run: heat in minus heat out minus the change in stored heat, over
# the heat in; the 0.1 %.
ENERGY_RTOL = 1e-3


def _junctions(result):
    return np.asarray(result.final_state.chip_x[:, 0])


def _row(racks=8, **over):
    out = {"simulation.duration_s": 60.0, "row.racks": [{"count": racks}],
           "controls.flow_setpoint_lpm": 150.0 * racks, **over}
    return twin.load_scenario(ROW, out)


# --------------------------------------------------------------------------- one instance


def test_one_gpu_with_twice_its_tim_runs_hotter_by_its_power_times_the_added_resistance():
    """Doubling one GPU's TIM resistance (0.004 K/W) through ``[overrides]`` at full power
    (1200 W, steady): that junction rises by 1200 W x 0.004 K/W = 4.8 K (the series
    resistance), and no other chip moves by more than 0.01 K (its plate and coolant see
    the same heat).

    Catches: an override applied to every chip of the type, or to the wrong instance, or
    not at all; a per-instance parameter that does not reach the kernel's arrays."""
    base = twin.simulate(twin.load_scenario(REFERENCE, steady_overrides()))
    path = "rack01/tray09/gpu1"
    r_tim = base.scenario.rack.chip_types["gpu"].r_tim_k_per_w
    hot = twin.simulate(twin.load_scenario(REFERENCE, steady_overrides(
        **{"overrides": {path: {"r_tim_k_per_w": 2 * r_tim}}})))
    k = base.model.chip_names.index(path)
    d = _junctions(hot) - _junctions(base)
    power = base.telemetry()["gpu/power"][-1, list(base.telemetry().labels["gpu/labels"]).index(path)]
    assert power == pytest.approx(1200.0, rel=1e-9)
    assert d[k] == pytest.approx(power * r_tim, abs=STEADY_K)
    others = np.delete(d, k)
    assert np.max(np.abs(others)) <= UNCHANGED_K
    assert hot.margins["gpu_junction_margin_k"] == pytest.approx(base.margins["gpu_junction_margin_k"] - power * r_tim,
                                                                 abs=0.05)  # it is now the hottest GPU
    assert hot.margin_table.rows[0].instance == path


def test_the_same_override_in_a_row_changes_only_its_rack():
    """Three racks on the row CDU at full power: the override on ``rack02/tray09/gpu1``
    raises that junction by ``P dR``; every chip of rack01 and rack03 stays within 0.01 K."""
    over = steady_overrides(**{"workload.jobs": []})
    over.pop("simulation.duration_s")
    base = twin.simulate(_row(3, **over))
    r_tim = base.scenario.rack.chip_types["gpu"].r_tim_k_per_w
    hot = twin.simulate(_row(3, **over, overrides={"rack02/tray09/gpu1": {"r_tim_k_per_w": 2 * r_tim}}))
    m = base.model
    k = m.chip_names.index("rack02/tray09/gpu1")
    d = _junctions(hot) - _junctions(base)
    assert d[k] == pytest.approx(1200.0 * r_tim, abs=STEADY_K)
    other_racks = m.chip_rack != m.chip_rack[k]
    assert other_racks.sum() == 2 * 126
    assert np.max(np.abs(d[other_racks])) <= UNCHANGED_K


def test_wildcards_short_paths_and_parameters_of_every_component_kind():
    """``*`` matches within a path segment; in a one-rack scenario ``tray03/gpu1`` is
    ``rack01/tray03/gpu1`` and ``cdu/pump0`` is ``cdu1/pump0``; trays, quick disconnects,
    hoses, the manifold, pumps and the heat exchanger take their own definitions'
    parameters per instance."""
    s = twin.load_scenario(REFERENCE, {"overrides": {
        "tray0*/gpu*": {"r_tim_k_per_w": 0.005},
        "rack01/tray05/qd": {"cv_gpm_per_psi": 1.0},
        "rack01/supply_hose": {"length_m": 10.0},
        "cdu/pump1": {"head_scale": 0.9},
        "cdu1/hx": {"ua_scale": 0.8},
        "rack01/tray02/gpu0": {"fouling_k_per_w": 0.01},
    }})
    m = build_model(s)
    changed = {p for p, inst in m.instances.items() if inst.changed}
    gpus_0x = {f"rack01/tray0{t}/gpu{g}" for t in range(10) for g in range(4)}
    assert {p for p in changed if "/gpu" in p} == {p for p in gpus_0x if p in m.chip_names}
    assert len(gpus_0x & set(m.chip_names)) == 4 * sum(m.tray_type[t] == "compute" for t in range(10))
    assert {"rack01/tray05/qd", "rack01/supply_hose", "cdu1/pump1", "cdu1/hx"} <= changed
    ref = build_model(twin.load_scenario(REFERENCE))
    k = m.chip_names.index("rack01/tray02/gpu0")
    assert m.chip_fouling[k] == 0.01 and ref.chip_fouling[k] == 0.0
    e = m.edge_names.index("rack01/tray05/supply")
    assert m.edge_b[e] > ref.edge_b[e] * 1.5  # Cv 1 against the rack file's larger coupling
    e4 = m.edge_names.index("rack01/tray04/supply")
    assert m.edge_b[e4] == ref.edge_b[e4]  # only tray05's coupling
    assert m.edge_b[m.edge["supply_hose"]] > ref.edge_b[ref.edge["supply_hose"]]
    assert m.pump_shutoff_pa[1] == pytest.approx(0.9 * ref.pump_shutoff_pa[1])
    assert m.pump_shutoff_pa[0] == ref.pump_shutoff_pa[0]
    assert m.hx_ua_scale[0] == 0.8


@pytest.mark.parametrize("overrides, field, words", [
    ({"rack01/tray9/gpu1": {"r_tim_k_per_w": 0.008}}, 'overrides."rack01/tray9/gpu1"', "rack01/tray09/gpu1"),
    ({"rack01/tray09/gpu1": {"r_tim": 0.008}}, 'overrides."rack01/tray09/gpu1".r_tim', "r_tim_k_per_w"),
    ({"rack01/tray09/gpu1": {"r_tim_k_per_w": -1.0}}, 'overrides."rack01/tray09/gpu1".r_tim_k_per_w', "greater than 0"),
    ({"rack01/tray09/qd": {"r_tim_k_per_w": 0.01}}, 'overrides."rack01/tray09/qd".r_tim_k_per_w', "cv_gpm_per_psi"),
])
def test_an_override_that_names_nothing_is_a_clean_error_with_near_matches(overrides, field, words):
    s = twin.load_scenario(REFERENCE, {"overrides": overrides})
    with pytest.raises(TwinInputError) as exc:
        build_model(s, "ref.toml")
    assert exc.value.field == field and words in exc.value.message and "\n" not in str(exc.value)


# --------------------------------------------------------------------------- spread


def test_spread_draws_are_reproducible_and_have_the_distribution_asked_for():
    """A factor depends on the seed and the instance path only; over 4000 instances the
    draws have the mean and spread asked for: normal (1, s) truncated at 3 s, lognormal
    with mean 1 and sd of ln s, uniform on [1-s, 1+s] (sampling tolerance: 4 standard
    errors)."""
    paths = [f"rack01/tray{t:02d}/gpu{g}" for t in range(1000) for g in range(4)]
    for dist, s in (("normal", 0.1), ("lognormal", 0.2), ("uniform", 0.3)):
        sp = Spread(instances="*", parameter="r_tim_k_per_w", distribution=dist, relative_spread=s, seed=3)
        x = np.array([draw_factor(sp, p) for p in paths])
        assert np.array_equal(x, [draw_factor(sp, p) for p in paths])
        other = np.array([draw_factor(sp.model_copy(update={"seed": 4}), p) for p in paths])
        assert not np.allclose(x, other)
        n = x.size
        if dist == "lognormal":
            y = np.log(x)
            assert y.mean() == pytest.approx(-s * s / 2, abs=4 * s / math.sqrt(n))
            assert y.std() == pytest.approx(s, rel=4 / math.sqrt(2 * n))
        elif dist == "normal":
            sd = s * math.sqrt(1 - 6 * math.exp(-4.5) / math.sqrt(2 * math.pi) / 0.9973)  # truncated at 3 sd
            assert x.mean() == pytest.approx(1.0, abs=4 * s / math.sqrt(n))
            assert x.std() == pytest.approx(sd, rel=4 / math.sqrt(2 * n))
            assert np.all(np.abs(x - 1) <= 3 * s)
        else:
            assert x.min() >= 1 - s and x.max() <= 1 + s
            assert x.std() == pytest.approx(s / math.sqrt(3), rel=4 / math.sqrt(1.8 * n))


def test_a_spread_of_tim_gives_a_reproducible_junction_distribution_reported_as_margins():
    """A 20 % lognormal TIM spread over the 72 GPUs: the same seed gives the same run, bit
    for bit; another seed another; the GPUs' peak junctions spread by about P x r_tim x
    20 %; the margins report the worst and the 95th percentile of the GPUs' peaks (as
    numpy computes them from the telemetry)."""
    spread = [{"instances": "rack01/tray*/gpu*", "parameter": "r_tim_k_per_w", "distribution": "lognormal",
               "relative_spread": 0.2, "seed": 11}]
    a = twin.simulate(twin.load_scenario(REFERENCE, steady_overrides(spread=spread)))
    b = twin.simulate(twin.load_scenario(REFERENCE, steady_overrides(spread=spread)))
    c = twin.simulate(twin.load_scenario(REFERENCE, steady_overrides(spread=[{**spread[0], "seed": 12}])))
    gpu = a.model.gpu_index
    assert np.array_equal(a.final_state.chip_tj_max, b.final_state.chip_tj_max)
    assert not np.allclose(a.final_state.chip_tj_max[gpu], c.final_state.chip_tj_max[gpu])
    tel = a.telemetry()
    peaks = tel["gpu/junction_temp_max"].max(axis=0)
    assert a.margins["gpu_junction_max_c"] == pytest.approx(peaks.max(), abs=1e-4)  # float32 telemetry
    assert a.margins["gpu_junction_p95_c"] == pytest.approx(np.percentile(peaks, 95), abs=1e-4)
    r_tim = a.scenario.rack.chip_types["gpu"].r_tim_k_per_w
    base = twin.simulate(twin.load_scenario(REFERENCE, steady_overrides()))
    d = a.final_state.chip_tj_max[gpu] - base.final_state.chip_tj_max[gpu]
    factors = np.array([a.model.instances[a.model.chip_names[k]].changed["r_tim_k_per_w"] for k in gpu]) / r_tim
    np.testing.assert_allclose(d, 1200.0 * r_tim * (factors - 1.0), atol=STEADY_K)
    assert 0.1 < np.std(np.log(factors)) < 0.3  # 72 draws of a 0.2 sd


# --------------------------------------------------------------------------- rows


def test_row_energy_balance_closes_and_every_rack_is_reported():
    """Eight racks on the 1350 kW CDU, training bursts on every rack: heat in (chips, aux
    into the liquid) equals heat out through the exchanger plus the change in stored heat
    within 0.1 %; the per-rack channels have one column per rack, labelled by path; the
    CDU's heat is the row's."""
    r = twin.simulate(_row(8, **{"simulation.duration_s": 300.0}))
    e = r.energy
    heat_in = e["chip_j"] + e["aux_liquid_j"]
    assert heat_in > 8 * 60e3 * 300  # eight racks well loaded
    closure = heat_in - e["hx_j"] - (e["stored_end_j"] - e["stored_start_j"])
    assert abs(closure) <= ENERGY_RTOL * heat_in
    tel = r.telemetry()
    assert tel.labels["rack/labels"] == [f"rack{i:02d}" for i in range(1, 9)]
    assert tel["rack/flow"].shape[1] == 8 and tel["cdu/heat"].shape[1] == 1
    np.testing.assert_allclose(tel["row/flow"], tel["rack/flow"].sum(axis=1), rtol=1e-9)
    np.testing.assert_allclose(tel["cdu/heat"][:, 0], tel["facility/flow"] * LPM * r.model.facility_rho
                               * r.model.facility_cp * (tel["facility/return_temp"][:, 0] - tel["facility/supply_temp"]),
                               rtol=1e-9)
    assert r.margins["rack_flow_balance_min"] > 0.99  # reverse return, identical racks
    assert r.margins["cdu_capacity_margin_kw"] == pytest.approx(1350.0 - r.margins["row_liquid_heat_peak_kw"])


def test_a_partly_blocked_rack_hose_starves_that_rack_and_feeds_its_neighbours():
    """Rack03's supply hose 60 % blocked (its drop x 1/0.4^2) in the 8-rack row under flow
    control: rack03's flow falls, every other rack's rises, the CDU still delivers the
    setpoint, and every flow is the one an independent nodal solve of the same network
    (scipy.optimize.root on node pressures) gives."""
    fault = [{"kind": "restriction", "target": "rack03/supply_hose", "start_s": 0.0, "severity": 0.6}]
    base = twin.simulate(_row(8, **{"simulation.duration_s": 30.0}))
    blocked = twin.simulate(_row(8, **{"simulation.duration_s": 30.0, "faults": fault}))
    m = blocked.model
    q0 = base.hydraulics.flow_m3s[m.rack_supply_edge] / LPM
    q1 = blocked.hydraulics.flow_m3s[m.rack_supply_edge] / LPM
    assert q1[2] < 0.8 * q0[2]
    assert np.all(np.delete(q1 - q0, 2) > 0.0)
    assert q1.sum() == pytest.approx(1200.0, rel=1e-5) and q0.sum() == pytest.approx(1200.0, rel=1e-5)
    assert np.delete(q1 - q0, 2).sum() == pytest.approx(q0[2] - q1[2], rel=1e-3)
    # the same network solved independently, at the run's temperatures and pump speed
    net = Network(m)
    e = m.edge_names.index("rack03/supply_hose")
    net.edge_a[e] /= 0.4
    net.edge_b[e] /= 0.4 ** 2
    state = blocked.final_state
    hyd = net.update_flows(state)  # at the final temperatures (the run's last solve is up to 0.5 K older)
    a_eff, b, bcv, head = _rack_edge_laws(m, net, state, hyd.speed)
    q_ref, _ = _nodal_solve(m.edge_from, m.edge_to, a_eff, b, bcv, head, len(m.node_names),
                            ref_node=m.node["suction"], q_typical=5.0 * LPM)
    np.testing.assert_allclose(hyd.flow_m3s[m.rack_supply_edge], q_ref[m.rack_supply_edge], rtol=RACK_FLOW_RTOL)
    np.testing.assert_allclose(hyd.flow_m3s[m.tray_supply_edge], q_ref[m.tray_supply_edge], rtol=RACK_FLOW_RTOL)
    assert blocked.margins["rack_flow_balance_min"] < 0.9 and blocked.margin_table.rows


def test_a_row_mixes_rack_generations_and_workloads():
    """Row positions from their own rack files (``include``) and their own workloads: each
    rack keeps its definition's chips, and an idle rack draws its chips' idle power."""
    s = twin.load_scenario(ROW, {
        "simulation.duration_s": 20.0,
        "row.racks": [{"count": 1}, {"name": "gb300", "rack": twin.load_scenario(
            ROOT / "scenarios" / "catalogue" / "gb300-nvl72-class.toml").rack.model_dump(),
            "workload": {"schedule": []}}],
        "controls.flow_setpoint_lpm": 300.0})
    r = twin.simulate(s)
    m = r.model
    assert m.rack_names == ["rack01", "gb300"]
    tel = r.telemetry()
    gpu_power = tel["gpu/power"][-1]
    labels = list(tel.labels["gpu/labels"])
    second = [i for i, lab in enumerate(labels) if lab.startswith("gb300/")]
    k = [m.chip_names.index(labels[i]) for i in second]
    np.testing.assert_allclose(gpu_power[second], m.chip_idle[k], rtol=1e-6)
    assert m.chip_tdp[k[0]] != m.chip_tdp[0]  # a different GPU generation


def test_two_cdus_one_tripped_the_other_carries_the_row_as_a_one_cdu_row_would():
    """Two 1350 kW CDUs in parallel on the row headers, cdu1 tripped from the start with its
    pumps stopped (behind their check valves): cdu2 delivers the row's setpoint and
    rejects all its heat, cdu1 passes only check-valve leakage, and the row's temperatures
    are those of the same row on one CDU (the network minus a dead branch) within 0.02 K;
    the capacity margin counts the CDU that is up only; energy closes within 0.1 %."""
    over = {"simulation.duration_s": 120.0}
    trip = [{"kind": "cdu_trip", "target": "cdu1", "start_s": 0.0, "pumps_run": False}]
    two = twin.simulate(_row(4, **over, **{"row.cdu_count": 2, "faults": trip}))
    one = twin.simulate(_row(4, **over))
    tel2, tel1 = two.telemetry(), one.telemetry()
    flow = tel2["cdu/flow"][-1]
    assert tel2["rack/flow"][-1].sum() == pytest.approx(600.0, rel=1e-5)  # four racks at 150 L/min
    assert abs(flow[0]) < 1e-3 * 600.0  # leakage back through the stopped pumps' check valves
    assert flow[1] == pytest.approx(600.0 - flow[0], rel=1e-5)
    heat = tel2["cdu/heat"][-20:].mean(axis=0)
    assert heat[0] == 0.0 and heat[1] == pytest.approx(tel2["row/liquid_heat"][-20:].mean(), rel=2e-3)
    for k in ("rack/supply_temp", "rack/return_temp", "gpu/junction_temp_max"):
        np.testing.assert_allclose(tel2[k], tel1[k], atol=0.02)
    assert two.margins["cdu_capacity_margin_kw"] == pytest.approx(1350.0 - two.margins["row_liquid_heat_peak_kw"],
                                                                  abs=0.5)
    e = two.energy
    heat_in = e["chip_j"] + e["aux_liquid_j"]
    assert abs(heat_in - e["hx_j"] - (e["stored_end_j"] - e["stored_start_j"])) <= ENERGY_RTOL * heat_in
