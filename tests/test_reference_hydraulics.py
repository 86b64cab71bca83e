"""The hydraulic network against references outside the model: the closed-form solution of
a resistive ladder (U and Z manifolds), an independent nodal solve with scipy, and a vendor
pump curve with the affinity laws."""
import numpy as np
import pytest
from scipy.interpolate import PchipInterpolator
from scipy.optimize import root

import twin
from twin.build import LPM, _compress_basis, _cycle_basis, build_model
from twin.engine import HYDRAULIC_TOL_PA, Network, NetworkState
from twin.kernels.hydraulics import edge_dp, solve_network

from .conftest import REFERENCE, steady_overrides

# Synthetic ladders are solved by the kernel to a loop residual of SYNTH_TOL_PA on branch
# drops of ~1e5 Pa: a flow error of about SYNTH_TOL_PA / (n dp) ~ 1e-11 of the flow (n the
# flow exponent, 1 or 2). scipy's hybr runs to xtol 1e-13. 1e-9 is a hundred times both.
SYNTH_TOL_PA = 1e-6
SYNTH_FLOW_RTOL = 1e-9
# The engine's solve stops once every loop residual is below HYDRAULIC_TOL_PA (0.1 Pa). A
# tray (and the synthetic trays below) carries at least ~60 kPa at a flow exponent of 1-2,
# so 0.1 Pa left in its loop is a flow error below 0.1 / 60e3 = 1.7e-6 of itself; allow
# the residuals of ten loops sharing a header segment to add up.
RACK_FLOW_RTOL = 10 * HYDRAULIC_TOL_PA / 60e3

# Wilo VeroLine IP-E 80/115-2,2/2 at 2900 rpm, full speed: flow [m3/s], head [Pa] and
# electrical power P1 [W], digitised from the Wilo product data sheet and recorded in the
# Modelica Buildings library, Buildings.Fluid.Movers.Data.Pumps.Wilo.
# VeroLine80slash115dash2comma2slash2 (LBNL, BSD licence; data, not code). The first point
# is shutoff.
WILO_FLOW_M3S = np.array([0.0, 0.00381944444444, 0.00770833333333, 0.0111111111111, 0.014375,
                          0.0171527777778, 0.0197916666667, 0.0220138888889])
WILO_HEAD_PA = np.array([157548.6, 150053.76, 139302.0, 127431.9, 113011.2, 97943.04, 76596.48, 57133.44])
WILO_POWER_W = np.array([1712.23021583, 1939.82995422, 2319.7768316, 2599.92683819, 2775.17985612,
                         2815.09529219, 2709.57970466, 2571.61543492])
# The range of flows (fraction of the rated flow) over which the fitted curve must hold.
PUMP_RANGE = (0.30, 1.10)
# ISO 9906:2012, Table 8, acceptance grade 2B: pump head within +-5 % of the guaranteed
# curve (grade 2 tolerances t_Q +-8 %, t_H +-5 %; also KSB, Centrifugal pump lexicon,
# "Total tolerance"), the grade catalogue curves like this one are stated to.
ISO9906_2B_HEAD_RTOL = 0.05


# --------------------------------------------------------------------------- helpers


def _ladder(n, layout, a_header, a_branch, b_header, b_branch, a_pump, b_pump):
    """A manifold of ``n`` parallel branches between a supply header S0..S(n-1) and a return
    header R0..R(n-1), fed at S0, closed by a pump edge from the outlet to S0. U (direct
    return): the outlet is R0; Z (reverse return): R(n-1). Edge 0 is the pump; edges
    ``branches`` are the branches, S_i -> R_i."""
    s_node = np.arange(n)
    r_node = n + np.arange(n)
    frm, to, a, b = [], [], [], []

    def add(f, t, ai, bi):
        frm.append(f), to.append(t), a.append(ai), b.append(bi)
        return len(frm) - 1
    out = r_node[0] if layout == "U" else r_node[-1]
    add(out, s_node[0], a_pump, b_pump)
    for i in range(n - 1):
        add(s_node[i], s_node[i + 1], a_header, b_header)
    branches = [add(s_node[i], r_node[i], a_branch, b_branch) for i in range(n)]
    for i in range(n - 1):
        if layout == "U":
            add(r_node[i + 1], r_node[i], a_header, b_header)
        else:
            add(r_node[i], r_node[i + 1], a_header, b_header)
    return (np.array(frm, dtype=np.int64), np.array(to, dtype=np.int64), np.array(a, dtype=float),
            np.array(b, dtype=float), 2 * n, np.array(branches))


def _kernel_solve(frm, to, a, b, n_node, head_pa):
    """The project's path: fundamental loops of the graph (twin.build) and the Newton loop
    solve (twin.kernels.hydraulics), from zero loop flows."""
    basis, *_ = _cycle_basis(n_node, frm, to, root=0)
    c = _compress_basis(basis)
    n_edge = frm.size
    head = np.zeros(n_edge)
    head[0] = head_pa
    q, _, res = solve_network(c["loop_ptr"], c["loop_idx"], c["loop_sign"], np.zeros(basis.shape[0]), a,
                              np.ones(n_edge), b, head, np.zeros(n_edge), SYNTH_TOL_PA, 100)
    assert res < SYNTH_TOL_PA
    return q


def _nodal_solve(frm, to, a_eff, b, bcv, head, n_node, ref_node, q_typical):
    """Independent solve of the same edge laws on node pressures (scipy.optimize.root):
    every edge's flow is the inverse of ``p_from - p_to + head = a_eff Q + b Q|Q|`` (with
    ``b + bcv`` for reverse flow), continuity at every node but the reference. Starts from
    a linear solve with each edge's slope at ``q_typical``. Returns (edge flows, pressures)."""
    free = np.array([i for i in range(n_node) if i != ref_node])

    def flows(p):
        x = p[frm] - p[to] + head
        bb = np.where(x >= 0.0, b, b + bcv)
        root_ = np.sqrt(a_eff * a_eff + 4.0 * bb * np.abs(x))
        q = np.where(root_ > 0.0, 2.0 * x / (a_eff + np.where(root_ > 0.0, root_, 1.0)), 0.0)
        return q, 1.0 / np.maximum(root_, 1e-300)

    def residual(pf):
        p = np.zeros(n_node)
        p[free] = pf
        q, dq = flows(p)
        res = np.zeros(n_node)
        np.add.at(res, to, q)
        np.add.at(res, frm, -q)
        jac = np.zeros((n_node, n_node))
        np.add.at(jac, (to, frm), dq)
        np.add.at(jac, (to, to), -dq)
        np.add.at(jac, (frm, frm), -dq)
        np.add.at(jac, (frm, to), dq)
        return res[free], jac[np.ix_(free, free)]

    g = 1.0 / (a_eff + 2.0 * b * q_typical)
    lap = np.zeros((n_node, n_node))
    np.add.at(lap, (frm, frm), g)
    np.add.at(lap, (to, to), g)
    np.add.at(lap, (frm, to), -g)
    np.add.at(lap, (to, frm), -g)
    rhs = np.zeros(n_node)
    np.add.at(rhs, frm, -g * head)
    np.add.at(rhs, to, g * head)
    p0 = np.linalg.solve(lap[np.ix_(free, free)], rhs[free])
    sol = root(residual, p0, jac=True, method="hybr", options={"xtol": 1e-13})
    assert sol.success, sol.message
    p = np.zeros(n_node)
    p[free] = sol.x
    return flows(p)[0], p


def _ladder_closed_form(n, layout, a_header, a_branch, total):
    """Branch flows of a ladder with uniform linear header segments ``a_header`` and branches
    ``a_branch``, from Kirchhoff's laws: the branch drops obey the recurrence
    ``q(i+1) - 2 cosh(lam) q(i) + q(i-1) = 0``, ``cosh(lam) = 1 + a_header / a_branch``
    (second difference of the header pressures), so ``q(i) = C cosh(lam (i - c))``. Z
    (reverse return) is symmetric about the middle, ``c = (n-1)/2``; U (direct return)
    about the virtual branch past the far end, ``c = n - 1/2`` (no header flow there). The
    end conditions and ``sum q = total`` give C. (The discrete counterpart of the cosh/sinh
    profiles of the linear, momentum-free continuous manifold models reviewed by J. Wang,
    "Theory of flow distribution in manifolds", Chem. Eng. J. 168 (2011) 1331-1345.)"""
    lam = np.arccosh(1.0 + a_header / a_branch)
    i = np.arange(n)
    if layout == "Z":
        return total * np.sinh(lam / 2) / np.sinh(n * lam / 2) * np.cosh(lam * (i - (n - 1) / 2))
    return total * 2.0 * np.sinh(lam / 2) / np.sinh(n * lam) * np.cosh(lam * (n - 0.5 - i))


# --------------------------------------------------------------------------- manifolds


@pytest.mark.parametrize("layout", ["U", "Z"])
def test_laminar_ladder_solved_by_the_kernel_matches_the_closed_form(layout):
    """A 27-branch manifold with linear (laminar) header segments and branches, solved by the
    project's cycle basis and loop Newton kernel, against the closed form of the resistive
    ladder (:func:`_ladder_closed_form`). Header-to-branch ratio 2.5e-3: the U manifold feeds
    its first branch 3.3 times its last, the Z manifold 1.45 times its middle.

    Catches: a cycle basis with a wrong orientation or a missing chord, a Jacobian assembled
    from the wrong loop pairs, a header wired in the wrong direction (a U solved as a Z
    gives a symmetric profile)."""
    n, a_h, a_b = 27, 1.0e6, 4.0e8
    frm, to, a, b, n_node, branches = _ladder(n, layout, a_h, a_b, 0.0, 0.0, 1.0e8, 0.0)
    q = _kernel_solve(frm, to, a, b, n_node, head_pa=2.0e5)
    expected = _ladder_closed_form(n, layout, a_h, a_b, q[0])
    np.testing.assert_allclose(q[branches], expected, rtol=SYNTH_FLOW_RTOL)
    spread = q[branches].max() / q[branches].min()
    assert spread > (3.0 if layout == "U" else 1.4)  # the case is not a uniform one


@pytest.mark.parametrize("layout", ["U", "Z"])
def test_turbulent_ladder_solved_by_the_kernel_matches_an_independent_nodal_solve(layout):
    """The same manifold with quadratic (turbulent) header segments and branches, against the
    same edge laws solved on node pressures by ``scipy.optimize.root`` (MINPACK hybrd): a
    different unknown (pressures, not loop flows), a different method.

    Catches: a quadratic term evaluated wrongly (any law other than ``b Q|Q|``), a kernel
    that reports convergence at a point that is not the network's (loop sums or Jacobian
    built from the wrong edges)."""
    n, b_h, b_b = 27, 2.0e9, 2.0e12
    frm, to, a, b, n_node, branches = _ladder(n, layout, 0.0, 0.0, b_h, b_b, 0.0, 1.0e10)
    head = 2.0e5
    q = _kernel_solve(frm, to, a, b, n_node, head_pa=head)
    heads = np.zeros(frm.size)
    heads[0] = head
    q_ref, _ = _nodal_solve(frm, to, a, b, np.zeros(frm.size), heads, n_node, ref_node=0, q_typical=q[0] / n)
    np.testing.assert_allclose(q, q_ref, rtol=SYNTH_FLOW_RTOL)
    assert q[branches].max() / q[branches].min() > (1.3 if layout == "U" else 1.05)


def _rack(layout, **over):
    return twin.load_scenario(REFERENCE, {"rack.manifold.layout": layout, **over})


@pytest.mark.parametrize("layout, form", [("direct_return", "U"), ("reverse_return", "Z")])
def test_rack_manifold_topology_with_uniform_linear_trays_matches_the_closed_form(layout, form):
    """The rack network ``twin.build`` wires (27 compute trays, headers, hoses, CDU), with
    every header segment given the linear resistance ``a_h`` and every tray, port to port,
    ``a_b`` (supply and return couplings a quarter each, its two paths in parallel half):
    the tray flows must follow the closed-form ladder of the layout named, whatever the
    pumps, hoses and heat exchanger around it do.

    Catches: a builder that connects the rack outlet at the wrong end (direct and reverse
    return swapped), numbers trays from the wrong end, or skips a header segment."""
    s = _rack(layout, **{"rack.tray_stack": [{"type": "compute", "count": 27}], "controls.pump_mode": "speed",
                         "controls.pump_speed_fraction": 0.8})
    model = build_model(s)
    net = Network(model)
    a_h, a_b = 2.0e6, 2.0e9
    for e, name in enumerate(model.edge_names):
        if "_header" in name:
            net.edge_a[e], net.edge_b[e] = a_h, 0.0
        elif "/tray" in name and name.endswith(("/supply", "/return")):
            net.edge_a[e], net.edge_b[e] = a_b / 4.0, 0.0
        elif "/tray" in name and "/path" in name:
            n_paths = len(s.rack.tray_types[model.tray_type[model.tray_names.index(name.rsplit("/", 1)[0])]].paths)
            net.edge_a[e], net.edge_b[e] = a_b / 2.0 * n_paths, 0.0
    state = NetworkState.uniform(model, 40.0)  # one viscosity: every linear term scaled alike
    hyd = net.solve_hydraulics(state)
    q = hyd.flow_m3s[model.tray_supply_edge]
    expected = _ladder_closed_form(27, form, a_h, a_b, q.sum())
    np.testing.assert_allclose(q, expected, rtol=RACK_FLOW_RTOL)


def _rack_edge_laws(model, net, state, speed):
    """The edge laws the engine solves, taken from the model's arrays: linear coefficient
    times the viscosity ratio of the edge's coolant (from the coolant table at that cell's
    temperature), quadratic coefficient, check valves, pump heads ``s^2 H0``."""
    temps = state.cell_t[model.cell_temp_edge]
    ratio = np.array([model.coolant.at(float(t))["mu"] for t in temps]) / model.mu_ref
    head = np.zeros(model.edge_from.size)
    head[model.pump_edges] = speed ** 2 * model.pump_shutoff_pa
    return net.edge_a * ratio, net.edge_b, model.edge_bcv, head


@pytest.mark.parametrize("layout", ["direct_return", "reverse_return"])
def test_rack_tray_flows_match_an_independent_nodal_solve(layout):
    """The reference rack (18 compute and 9 switch trays, PG25) after a steady full-power
    run: the flows the engine solves, at the speed its flow controller found and the
    temperatures of the run (every edge at its own viscosity), against the same edge laws
    solved on node pressures by ``scipy.optimize.root``. Both layouts.

    Catches: a viscosity ratio applied to the wrong edge or not at all, a pump head not
    scaled as ``s^2``, a quadratic law evaluated wrongly, a kernel that converges to a
    point that is not the network's."""
    r = twin.simulate(_rack(layout, **steady_overrides()))
    model, state = r.model, r.final_state
    net = Network(model)
    hyd = net.update_flows(state)
    a_eff, b, bcv, head = _rack_edge_laws(model, net, state, hyd.speed)
    q_ref, _ = _nodal_solve(model.edge_from, model.edge_to, a_eff, b, bcv, head, len(model.node_names),
                            ref_node=model.node["suction"], q_typical=5.0 * LPM)
    trays = model.tray_supply_edge
    np.testing.assert_allclose(hyd.flow_m3s[trays], q_ref[trays], rtol=RACK_FLOW_RTOL)
    path = np.unique(model.chip_path_edge)
    np.testing.assert_allclose(hyd.flow_m3s[path], q_ref[path], rtol=RACK_FLOW_RTOL)
    rack = model.edge["supply_hose"]
    assert hyd.flow_m3s[rack] == pytest.approx(q_ref[rack], rel=RACK_FLOW_RTOL)


# --------------------------------------------------------------------------- pumps


def _wilo_rated_point():
    """The data sheet's best-efficiency point (highest wire-to-water efficiency): a pump is
    selected there, and the CDU files take their rated point as the BEP."""
    eta = WILO_FLOW_M3S * WILO_HEAD_PA / WILO_POWER_W
    i = int(np.argmax(eta))
    return WILO_FLOW_M3S[i], WILO_HEAD_PA[i]


def _wilo_cdu(**over):
    """The CDU with the Wilo pump: its shutoff head and BEP as the model's curve points."""
    q_r, h_r = _wilo_rated_point()
    return {"cdu.pumps.shutoff_head_kpa": WILO_HEAD_PA[0] / 1e3, "cdu.pumps.rated_flow_lpm": q_r / LPM,
            "cdu.pumps.rated_head_kpa": h_r / 1e3, "cdu.pumps.bep_flow_lpm": q_r / LPM, **over}


def _pump_head(model, flow_m3s, speed):
    """Head of the model's pump 0 at ``flow_m3s``, as the hydraulic kernel evaluates it
    (minus the pressure drop of the pump edge)."""
    e = model.pump_edges[0]
    n = flow_m3s.size
    dp, _ = edge_dp(np.asarray(flow_m3s, dtype=float), np.full(n, model.edge_a[e]), np.ones(n),
                    np.full(n, model.edge_b[e]), np.full(n, speed ** 2 * model.pump_shutoff_pa[0]),
                    np.full(n, model.edge_bcv[e]))
    return -dp


def test_pump_curve_through_shutoff_and_rated_point_reproduces_a_vendor_curve():
    """The CDU given the Wilo VeroLine IP-E 80/115-2,2/2 shutoff head and best-efficiency
    point: the quadratic the model builds through them (``Model.pump_shutoff_pa``,
    ``pump_k``, evaluated by the kernel) reproduces the data sheet's other points between
    30 and 110 % of the rated flow within the ISO 9906 grade 2B head tolerance (the curve
    is within 4.5 % at 45 % of rated flow, where a real curve's flat top departs most from
    a parabola).

    Catches: a curve through the wrong points (rated head at shutoff flow), a linear term
    of the wrong sign, a head scaled by ``head_scale`` twice."""
    model = build_model(twin.load_scenario(REFERENCE, _wilo_cdu()))
    q_r, _ = _wilo_rated_point()
    x = WILO_FLOW_M3S / q_r
    inside = (x >= PUMP_RANGE[0]) & (x <= PUMP_RANGE[1])
    assert inside.sum() >= 4
    head = _pump_head(model, WILO_FLOW_M3S[inside], 1.0)
    np.testing.assert_allclose(head, WILO_HEAD_PA[inside], rtol=ISO9906_2B_HEAD_RTOL)
    # and it passes through its two points exactly (the fit, not the tolerance, holds them)
    np.testing.assert_allclose(_pump_head(model, np.array([0.0, q_r]), 1.0), [WILO_HEAD_PA[0], _wilo_rated_point()[1]],
                               rtol=1e-12)


def test_pump_operating_points_at_two_speeds_lie_on_the_vendor_curve_by_affinity():
    """A CDU with one Wilo VeroLine IP-E 80/115-2,2/2 serving 100 compute trays (about five
    racks on one CDU loop; headers and hoses 100 mm so the trays, not the pipes, set the
    flow), in speed mode at full and 70 % speed. Each operating point the network settles
    at, carried to full speed by the affinity laws (``Q/s``, ``H/s^2``: Karassik, *Pump
    Handbook*, 4th ed., sec. 2.1), lies on the vendor's full-speed curve (monotone cubic
    interpolation of the data sheet's points) within the ISO 9906 grade 2B head tolerance;
    both points sit in 30-110 % of the rated flow. The head is what the network delivers
    (discharge minus suction pressure), not the curve evaluated at the flow.

    Catches: head scaled as ``s`` (or not at all) with speed, flow scaled with ``s^2``, a
    check valve or a pump edge that eats head, a speed applied to the wrong pump."""
    over = _wilo_cdu(**{"rack.tray_stack": [{"type": "compute", "count": 100}],
                        "rack.manifold.inner_diameter_mm": 100.0, "rack.supply_hose.inner_diameter_mm": 100.0,
                        "rack.return_hose.inner_diameter_mm": 100.0, "cdu.pumps.count": 1, "cdu.pumps.running": 1,
                        "cdu.heat_exchanger.rated_secondary_flow_lpm": 1000.0,
                        "cdu.heat_exchanger.rated_facility_flow_lpm": 1000.0, "controls.pump_mode": "speed"})
    model = build_model(twin.load_scenario(REFERENCE, over))
    vendor = PchipInterpolator(WILO_FLOW_M3S, WILO_HEAD_PA)
    q_r, _ = _wilo_rated_point()
    for speed in (1.0, 0.7):
        net = Network(model)
        hyd = net.solve_hydraulics(NetworkState.uniform(model, 40.0, speed))
        q = hyd.flow_m3s[model.pump_edges[0]]
        delivered = hyd.pressure_pa[model.node["discharge"]] - hyd.pressure_pa[model.node["suction"]]
        assert PUMP_RANGE[0] <= q / speed / q_r <= PUMP_RANGE[1], speed
        assert delivered / speed**2 == pytest.approx(float(vendor(q / speed)), rel=ISO9906_2B_HEAD_RTOL), speed
