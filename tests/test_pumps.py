"""CDU pump electrical power: efficiency curve, affinity laws, a vendor data sheet."""
import numpy as np
import pytest

import twin
from twin import correlations as corr
from twin.build import build_model
from twin.engine import Network, NetworkState

from .conftest import REFERENCE

# Wilo VeroLine IP-E 80/115-2,2/2, 2900 rpm, electronic speed control: flow [m3/s], head
# [Pa] and electrical input power P1 [W] read from the Wilo product datasheet, as recorded
# in Modelica Buildings, Buildings.Fluid.Movers.Data.Pumps.VeroLine80slash115dash2comma2slash2
# (LBNL, BSD licence; data, not code).
WILO_FLOW_M3S = np.array([0.00381944444444, 0.00770833333333, 0.0111111111111, 0.014375,
                          0.0171527777778, 0.0197916666667, 0.0220138888889])
WILO_HEAD_PA = np.array([150053.76, 139302.0, 127431.9, 113011.2, 97943.04, 76596.48, 57133.44])
WILO_POWER_W = np.array([1939.82995422, 2319.7768316, 2599.92683819, 2775.17985612,
                         2815.09529219, 2709.57970466, 2571.61543492])
# ANSI/HI 9.6.3 preferred operating region: 70-120 % of the BEP flow, where a pump is
# meant to run and its catalogue curve is meant to be used.
POR = (0.70, 1.20)
# ISO 9906:2012 acceptance grade 2B: power input within +8 % of the guaranteed curve, the
# grade such catalogue curves are stated to.
ISO9906_2B_POWER_RTOL = 0.08
# Similar points by construction (laminar terms removed): only round-off and the
# hydraulic solver's 0.1 Pa residual on ~1e5 Pa remain.
AFFINITY_RTOL = 1e-6


def test_efficiency_parabola_published_points():
    """eta_BEP at the BEP, 3/4 of it at half and one and a half times the BEP flow, zero at
    shutoff and at twice the BEP flow (the quadratic through the origin of Ulanicki et al.
    2008); at half speed the BEP is at half the flow (affinity laws)."""
    q_bep, eta = 0.01, 0.7
    x = np.array([0.0, 0.5, 1.0, 1.5, 2.0])
    got = corr.pump_efficiency_bep_parabola(x * q_bep, 1.0, q_bep, eta)
    np.testing.assert_allclose(got, [0.0, 0.525, 0.7, 0.525, 0.0], atol=1e-15)
    np.testing.assert_allclose(corr.pump_efficiency_bep_parabola(x * q_bep * 0.5, 0.5, q_bep, eta), got, atol=1e-15)
    assert corr.pump_efficiency_bep_parabola(q_bep, 0.0, q_bep, eta) == 0.0


def test_power_matches_a_vendor_data_sheet_in_the_preferred_operating_region():
    """The BEP taken from the data sheet (its best listed point, wire-to-water efficiency),
    the parabola predicts the electrical power at the other points of the preferred
    operating region within the ISO 9906 grade 2B power tolerance."""
    eta_total = WILO_FLOW_M3S * WILO_HEAD_PA / WILO_POWER_W
    b = int(np.argmax(eta_total))
    q_bep = WILO_FLOW_M3S[b]
    x = WILO_FLOW_M3S / q_bep
    inside = (x >= POR[0]) & (x <= POR[1]) & (np.arange(x.size) != b)
    assert inside.sum() >= 2
    power = corr.pump_electric_power_w(WILO_FLOW_M3S, WILO_HEAD_PA, 1.0, q_bep, eta_total[b], 1.0)
    np.testing.assert_allclose(power[inside], WILO_POWER_W[inside], rtol=ISO9906_2B_POWER_RTOL)


def test_pump_power_goes_as_speed_cubed_between_similar_points():
    """With only quadratic losses in the loop, operating points at two speeds are similar
    (Q ~ s, H ~ s^2): the model's electrical power must scale as s^3."""
    out = {}
    for speed in (1.0, 0.6):
        s = twin.load_scenario(REFERENCE, {"controls.pump_mode": "speed", "controls.pump_speed_fraction": speed})
        model = build_model(s)
        net = Network(model)
        net.edge_a[:] = 0.0  # the laminar parts (plates, fits) would make the points dissimilar
        state = NetworkState.uniform(model, 35.0)
        hyd = net.update_flows(state)
        out[speed] = (hyd, model.pump_power_w(hyd.flow_m3s, hyd.pressure_pa, hyd.speed))
    (h1, p1), (h2, p2) = out[1.0], out[0.6]
    np.testing.assert_allclose(h2.flow_m3s / h1.flow_m3s, 0.6, rtol=AFFINITY_RTOL, atol=0)
    np.testing.assert_allclose(p2 / p1, 0.6**3, rtol=AFFINITY_RTOL)
    assert np.all(p1 > 0)


def test_a_stopped_pump_draws_nothing_and_the_channel_is_the_models_power():
    """N+1 with one pump running: the standby pump reads 0 W; the running one what the
    model gives for the run's hydraulic state, and the energy rows integrate it."""
    s = twin.load_scenario(REFERENCE, {"cdu.pumps.running": 1, "simulation.duration_s": 30.0,
                                       "workload.schedule": [{"chips": "gpu", "fraction_of_tdp": 1.0}]})
    r = twin.simulate(s)
    tel = r.telemetry()
    power = tel["cdu/pump_power"]
    assert tel.units["cdu/pump_power"] == "W" and power.shape == (30, 2)
    assert np.all(power[:, 1] == 0.0) and np.all(power[:, 0] > 0.0)
    h = r.hydraulics
    expected = r.model.pump_power_w(h.flow_m3s, h.pressure_pa, h.speed)
    np.testing.assert_allclose(power[-1], expected, rtol=1e-6)  # the channel is stored as float32
    mean_w = power.sum(axis=1).mean()
    assert r.margins["cdu_pump_power_mean_kw"] == pytest.approx(mean_w / 1e3, rel=1e-6)
    assert r.margins["cdu_pump_energy_kwh"] == pytest.approx(mean_w * 30.0 / 3.6e6, rel=1e-6)



def test_wire_to_water_power_at_part_load_and_at_the_best_efficiency_point():
    """Electrical power from the published shape of the efficiency curve, by hand: at the
    best-efficiency point the pump draws ``Q H / (eta_BEP eta_motor eta_VFD)`` (the CDU
    file's 0.60 x 0.859 x 0.97: [ULANICKI08], [IEC-IE3], [DOE-VFD]); at half its BEP flow
    the hydraulic efficiency is 0.75 eta_BEP ([ULANICKI08]'s parabola), so the same
    hydraulic power costs 1/0.75 more. Catches: a flat efficiency (power at part load as at
    the BEP), a drive chain that leaves out the motor or the VFD."""
    s = twin.load_scenario(REFERENCE)
    pumps = s.cdu.pumps
    q_bep = pumps.bep_flow_lpm / 60000.0 if pumps.bep_flow_lpm else pumps.rated_flow_lpm / 60000.0
    wire = pumps.bep_efficiency * pumps.motor_efficiency * pumps.vfd_efficiency
    head = 250e3  # any head: power is linear in it
    for x, hydraulic in ((1.0, 1.0), (0.5, 0.75)):  # flow / BEP flow, efficiency / eta_BEP
        p = corr.pump_electric_power_w(x * q_bep, head, 1.0, q_bep, pumps.bep_efficiency,
                                       pumps.motor_efficiency * pumps.vfd_efficiency)
        assert float(p) == pytest.approx(x * q_bep * head / (hydraulic * wire), rel=1e-9), x
    # the model's pumps take that drive chain from the CDU file: every pump at its BEP
    # flow against the head draws the wire-to-water power above
    model = build_model(s)
    q = np.zeros(len(model.edge_names))
    q[model.pump_edges] = q_bep
    p_node = np.zeros(len(model.node_names))
    p_node[model.cdu_discharge_node] = head
    power = model.pump_power_w(q, p_node, np.ones(model.pump_edges.size))
    np.testing.assert_allclose(power, q_bep * head / (0.60 * 0.859 * 0.97), rtol=1e-9)
