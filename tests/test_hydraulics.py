"""The hydraulic network: continuity, loop closure, maldistribution, flow control.

Manifold distributions (U and Z) against the closed-form ladder and an independent nodal
solve, and the pump curve against a vendor curve with the affinity laws:
tests/test_reference_hydraulics.py."""
import math

import numpy as np
import pytest

import twin
from twin.build import LPM, build_model
from twin.engine import Network, NetworkState

from .conftest import REFERENCE

# Newton stops at a loop residual of 0.1 Pa: continuity is exact by construction
# (flows are B^T q), so only round-off remains.
CONTINUITY_ATOL_M3S = 1e-12
LOOP_RESIDUAL_PA = 0.1


def _solve(scenario):
    model = build_model(scenario)
    net = Network(model)
    state = NetworkState.uniform(model, 35.0)
    hyd = net.update_flows(state)
    return model, hyd


def test_flows_conserve_mass_at_every_node(reference_scenario):
    model, hyd = _solve(reference_scenario)
    q = hyd.flow_m3s
    net_in = np.zeros(len(model.node_names))
    np.add.at(net_in, model.edge_to, q)
    np.add.at(net_in, model.edge_from, -q)
    assert np.max(np.abs(net_in)) < CONTINUITY_ATOL_M3S
    assert hyd.residual_pa < LOOP_RESIDUAL_PA


def test_pressure_drops_close_around_every_loop(reference_scenario):
    model, hyd = _solve(reference_scenario)
    p = hyd.pressure_pa
    net = Network(model)
    r, b, head = net._edge_params(NetworkState.uniform(model, 35.0), hyd.speed)
    from twin.kernels.hydraulics import edge_dp
    dp, _ = edge_dp(hyd.flow_m3s, model.edge_a, r, b, head, model.edge_bcv)
    # every edge agrees with the node pressures: tree edges exactly (the pressures are
    # walked along them), each chord to its loop's residual
    assert np.max(np.abs(p[model.edge_from] - p[model.edge_to] - dp)) < LOOP_RESIDUAL_PA


def test_flow_control_meets_its_setpoint(reference_scenario):
    model, hyd = _solve(reference_scenario)
    assert hyd.flow_m3s[model.edge["supply_hose"]] / LPM == pytest.approx(150.0, rel=1e-5)
    # two identical pumps in parallel share the flow
    q = hyd.flow_m3s[model.pump_edges] / LPM
    assert q[0] == pytest.approx(q[1], rel=1e-6) and q.sum() == pytest.approx(150.0, rel=1e-5)


def test_a_standby_pump_is_held_shut_by_its_check_valve():
    model, hyd = _solve(twin.load_scenario(REFERENCE, {"cdu.pumps.running": 1}))
    assert hyd.flow_m3s[model.edge["supply_hose"]] / LPM == pytest.approx(150.0, rel=1e-5)
    assert abs(hyd.flow_m3s[model.pump_edges[1]]) / LPM < 0.1


def test_reference_trays_share_flow_within_a_few_percent(reference_scenario):
    model, hyd = _solve(reference_scenario)
    q = hyd.flow_m3s[model.tray_supply_edge] / LPM
    compute = np.array([t == "compute" for t in model.tray_type])
    spread = (q[compute].max() - q[compute].min()) / q[compute].mean()
    assert spread < 0.05


def test_fitted_pressure_drops_track_fluids_where_it_matters(reference_scenario):
    """Plates, couplings and hoses: the two-term fit within 10 % over 0.05-3x nominal
    flow (hoses and tray tubing cross the laminar-turbulent transition there)."""
    model = build_model(reference_scenario)
    for name, err in zip(model.edge_names, model.edge_fit_error):
        if "/path" in name:
            # laminar plate + fittings: exactly linear + quadratic (a plate with a measured
            # exponent is the two-term form by construction)
            assert err < 1e-6, name
        elif name.endswith(("supply", "return", "_hose")):
            assert err < 0.10, name


def test_tray_fits_match_fluids_at_the_flow_the_solve_gives_them(reference_scenario):
    """Each tray's supply and return edge (one quick-disconnect coupling, half the tray
    tubing with its fittings, tee and restrictor losses) evaluated the way the kernel does,
    ``a Q + b Q|Q|`` at the reference viscosity, at the flow the network solve gives it,
    against the same parts computed by the ``fluids`` library at that flow
    (``fluids.Cv_to_K`` and ``dP_from_K`` for the coupling [FLUIDS], Darcy-Weisbach with
    Clamond's Colebrook below, 64/Re in laminar flow): within the fit's own stated error.
    Catches a fit centred on the wrong flow (it can be exact over its own range and far
    off where the tray runs)."""
    import fluids

    model, hyd = _solve(reference_scenario)
    rack = reference_scenario.rack
    rho, mu = model.rho, model.mu_ref
    for i, tname in enumerate(model.tray_names):
        tt = rack.tray_types[model.tray_type[i]]
        for e in (model.tray_supply_edge[i], model.tray_return_edge[i]):
            q = abs(hyd.flow_m3s[e])
            d_qd = tt.quick_disconnect.inner_diameter_mm * 1e-3
            v_qd = q / (math.pi * d_qd**2 / 4)
            dp = fluids.dP_from_K(K=fluids.Cv_to_K(Cv=tt.quick_disconnect.cv_gpm_per_psi, D=d_qd), rho=rho, V=v_qd)
            d = tt.tubing.inner_diameter_mm * 1e-3
            v = q / (math.pi * d**2 / 4)
            re = rho * v * d / mu
            fd = 64.0 / re if re < 2300 else fluids.friction_factor(Re=re, eD=tt.tubing.roughness_um * 1e-6 / d)
            k = fd * (tt.tubing.length_m / 2) / d + (tt.tubing.k_fittings + tt.branch_k + tt.balancing_k) / 2
            dp += fluids.dP_from_K(K=k, rho=rho, V=v)
            fit = model.edge_a[e] * q + model.edge_b[e] * q * q
            assert fit == pytest.approx(dp, rel=model.edge_fit_error[e] + 1e-9), (tname, fit, dp)


# Rack pressure drop against flow, NVL72-class rack (18 compute + 9 switch trays, PG25):
# NVIDIA, "VR NVL72 Rack-Level Thermal Model" v0.7, Max-P and Max-Q flow tables (flow
# [L/min], rack dP [psid]), as transcribed in github.com/daniel-kearney/firmus-ai-factory,
# src/firmus_ai_factory/thermal/vera_rubin_thermal.py (a secondary source: the NVIDIA
# document is not public). One rack, one impedance: all ten points are fitted together.
PUBLISHED_RACK_FLOW_LPM = [150, 170, 200, 250, 320, 120, 140, 160, 205, 280]
PUBLISHED_RACK_DP_PSID = [5.0, 6.0, 8.0, 12.0, 19.0, 3.0, 4.0, 5.5, 8.5, 16.0]


def _published_exponent_range(confidence=0.95):
    """The log-log slope of the published table and its confidence interval (Student t
    on the regression's standard error: the table's own scatter, psid rounding included)."""
    from scipy import stats
    fit = stats.linregress(np.log(PUBLISHED_RACK_FLOW_LPM), np.log(PUBLISHED_RACK_DP_PSID))
    half = stats.t.ppf(0.5 + confidence / 2, len(PUBLISHED_RACK_FLOW_LPM) - 2) * fit.stderr
    return fit.slope - half, fit.slope + half


def test_rack_dp_grows_with_flow_as_published_racks_do():
    """d ln dP / d ln Q of the rack between 120 and 180 L/min, at coolant temperatures
    spanning the table's 25-45 degC supplies, inside the table's 95 % interval (about
    1.79-1.97). Laminar-dominated cold plates (dP ~ Q^1.2) put the rack near 1.7."""
    lo, hi = _published_exponent_range()
    model = build_model(twin.load_scenario(REFERENCE))  # its own copy: the setpoint is changed below
    for temp_c in (25.0, 35.0, 45.0):
        dp = {}
        for flow in (120.0, 180.0):
            model.scenario.controls.flow_setpoint_lpm = flow
            net = Network(model)
            hyd = net.update_flows(NetworkState.uniform(model, temp_c))
            q = hyd.flow_m3s[model.edge["supply_hose"]] / LPM
            dp[flow] = (q, hyd.pressure_pa[model.node["rack_in"]] - hyd.pressure_pa[model.node["rack_out"]])
        n = np.log(dp[180.0][1] / dp[120.0][1]) / np.log(dp[180.0][0] / dp[120.0][0])
        assert lo <= n <= hi, (temp_c, n, (lo, hi))
