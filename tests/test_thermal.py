"""The thermal network against hand calculations, analytic responses and invariants."""
import math

import ht
import numpy as np
import pytest
from scipy.linalg import expm

import twin
from twin.coolant import coolant_table
from twin.kernels import thermal as tk
from twin.kernels.thermal import plate_propagator

from .conftest import REFERENCE, single_plate_overrides, steady_overrides

# Plate conductance is read from a table (5 K x 7 % flow grid, bilinear): its error on a
# 1200 W chip's temperature rise is a few hundredths of a kelvin.
PLATE_HAND_ATOL_K = 0.05
# An exact integrator against the analytic first-order response: round-off only, plus
# the inlet drifting by < 1e-6 K in the first second (transport delay of the loop).
RC_ATOL_K = 1e-3
# Time-step convergence: an acceptance figure (docs/model.md, What the tests hold the model to).
DT_HALVING_ATOL_K = 0.05
# Facility supply +5 K at fixed flow moves steady junctions by 5 K; property changes
# (viscosity, conductivity) with temperature may move it by up to 0.3 K.
SUPPLY_SHIFT_ATOL_K = 0.3


@pytest.mark.parametrize("clog", [0.0, 0.7])
def test_single_cold_plate_matches_hand_calculation(clog):
    """One GPU on one plate at a held flow, by hand from the cited correlations (Shah &
    London's Nusselt number via ``ht``, Baehr-Stephan's entry factor, the adiabatic-tip fin,
    Incropera eq. 8.42b). With a share ``clog`` of its channels blocked from the start
    (a ``plate_clog`` fault) the same flow runs through the open (1 - clog) of them, with
    their fin area only, over the same base. Catches a clogged plate that keeps the heat
    transfer area of its blocked channels, or the velocity of its open ones wrong."""
    faults = [{"kind": "plate_clog", "start_s": 0.0, "target": "tray00/gpu0", "severity": clog}] if clog else []
    s = twin.load_scenario(REFERENCE, single_plate_overrides(faults=faults))
    r = twin.simulate(s)
    tel = r.telemetry()
    flow_m3s = tel["tray/flow"][-1, 0] / 60000.0
    t_in = tel["rack/supply_temp"][-1]
    tj = tel["gpu/junction_temp"][-1, 0]

    # --- by hand, from the cited correlations -----------------------------------
    gpu = s.rack.chip_types["gpu"]
    cp_plate = s.rack.cold_plates["gpu_plate"]
    wc, hc, wf = (cp_plate.channel_width_mm * 1e-3, cp_plate.channel_height_mm * 1e-3, cp_plate.fin_width_mm * 1e-3)
    L, n, ks = cp_plate.channel_length_mm * 1e-3, cp_plate.channel_count, cp_plate.solid_conductivity_w_per_m_k
    n_open = n * (1.0 - clog)
    # fluid properties at the plate's outlet coolant temperature (where the model reads its table)
    props = coolant_table("pg25").at(float(r.final_state.chip_x[0, 2]))
    rho_loop, cp_loop = r.model.rho, r.model.cp
    dh = 2 * wc * hc / (wc + hc)
    v = flow_m3s / (n_open * wc * hc)
    re = props["rho"] * v * dh / props["mu"]
    pr = props["cp"] * props["mu"] / props["k"]
    assert re < 2300
    nu = ht.Nu_laminar_rectangular_Shan_London(wc / hc) * ht.conv_internal.laminar_entry_Baehr_Stephan(re, pr, L, dh) / 3.657
    h = nu * props["k"] / dh
    mH = math.sqrt(2 * h / (ks * wf)) * hc
    eta = math.tanh(mH) / mH  # Incropera eq. 3.89
    hA = h * n_open * L * (wc + 2 * eta * hc)
    mcp = flow_m3s * rho_loop * cp_loop
    g = mcp * (1 - math.exp(-hA / mcp))  # Incropera eq. 8.42b
    r_base = cp_plate.base_thickness_mm * 1e-3 / (ks * n * (wc + wf) * L)  # the whole base conducts
    r_total = gpu.r_jc_k_per_w + gpu.r_tim_k_per_w + r_base + 1.0 / g
    tj_hand = t_in + gpu.tdp_w * r_total
    assert tj == pytest.approx(tj_hand, abs=PLATE_HAND_ATOL_K)
    if not clog:  # the plate resistance is in the range cold-plate vendors quote (< 0.03 K/W)
        assert r_base + 1.0 / g < 0.03


def test_plate_update_equals_the_matrix_exponential():
    r_jb, cj, cb, cf, g, mcp, dt = 0.018, 5.0, 80.0, 60.0, 150.0, 230.0, 0.1
    phi, gam = np.zeros((3, 3)), np.zeros((3, 2))
    psi, lam = np.zeros((3, 3)), np.zeros((3, 2))
    plate_propagator(dt, r_jb, cj, cb, cf, g, mcp, phi, gam, psi, lam)
    a = np.array([[-1 / (r_jb * cj), 1 / (r_jb * cj), 0], [1 / (r_jb * cb), -(1 / r_jb + g) / cb, 0],
                  [0, g / cf, -mcp / cf]])
    b = np.array([[1 / cj, 0], [0, g / cb], [0, (mcp - g) / cf]])
    e = expm(a * dt)
    np.testing.assert_allclose(phi, e, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(gam, np.linalg.solve(a, (e - np.eye(3)) @ b), rtol=1e-10, atol=1e-12)
    # step means: the blocks of the augmented exponential (Van Loan 1978) computed by scipy
    m = np.zeros((8, 8))
    m[:3, :3], m[:3, 6:], m[3:6, :3] = a, b, np.eye(3)
    big = expm(m * dt)
    np.testing.assert_allclose(psi, big[3:6, :3] / dt, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(lam, big[3:6, 6:] / dt, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("dt", [0.01, 1.0, 30.0])
def test_plate_propagator_over_step_sizes_and_no_flow(dt):
    """Many doublings (long steps) and a plate with no flow (singular A) against scipy."""
    for g, mcp in ((150.0, 230.0), (0.0, 0.0)):
        r_jb, cj, cb, cf = 0.018, 5.0, 80.0, 60.0
        phi, gam = np.zeros((3, 3)), np.zeros((3, 2))
        psi, lam = np.zeros((3, 3)), np.zeros((3, 2))
        plate_propagator(dt, r_jb, cj, cb, cf, g, mcp, phi, gam, psi, lam)
        m = np.zeros((8, 8))
        m[:3, :3] = [[-1 / (r_jb * cj), 1 / (r_jb * cj), 0], [1 / (r_jb * cb), -(1 / r_jb + g) / cb, 0],
                     [0, g / cf, -mcp / cf]]
        m[0, 6], m[1, 7], m[2, 7] = 1 / cj, g / cb, (mcp - g) / cf
        m[3:6, :3] = np.eye(3)
        big = expm(m * dt)
        for got, want in ((phi, big[:3, :3]), (gam, big[:3, 6:]), (psi, big[3:6, :3] / dt), (lam, big[3:6, 6:] / dt)):
            np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12 * np.abs(want).max())


# A stopped loop's hydraulic solve leaves ~1e-8 L/min (about 1e-6 W/K of mcp): the cases
# below run from no flow through that residue to a cell that empties 100 times per step.
FLUID_MCP_W_PER_K = [0.0, 1e-30, 1e-12, 1e-6, 1e-3, 0.5, 30.0, 8e4]
# scipy's expm (Pade, scaling and squaring) is accurate to ~1e-15 relative: 1e-9 K is far above it
FLUID_ATOL_K = 1e-9


@pytest.mark.parametrize("mcp", FLUID_MCP_W_PER_K)
def test_a_fluid_cell_over_a_step_equals_the_exponential_from_no_flow_to_no_capacity(mcp):
    """``C dT/dt = mcp (T_in - T) + Q`` over one step, end temperature and step mean,
    against scipy's expm of the augmented system [T, int T, 1] (the form of Van Loan 1978
    that needs no division by mcp). Catches the form ``T_eq + (T0 - T_eq) e^-x`` with
    ``T_eq = T_in + Q / mcp``: its step mean is off by 2.2 K at 1e-6 W/K (a stopped loop)
    and 1.6e-5 K at 1e-3 W/K, and at 1e-30 W/K its end temperature is 0 degC."""
    cap, q, t0, t_in, dt = 80.0, 400.0, 50.0, 45.0, 0.1  # ~20 mL of coolant, a tray's aux heat
    coef = np.zeros((1, tk.N_CF))
    coef[0, tk.CF_CAP] = cap
    tk.fluid_coefficients(dt, mcp, cap, coef, 0)
    end, mean = tk.fluid_step(t0, t_in, q, mcp, coef, 0)
    m = np.zeros((3, 3))
    m[0, 0], m[0, 2], m[1, 0] = -mcp / cap, (mcp * t_in + q) / cap, 1.0
    want = expm(m * dt) @ np.array([t0, 0.0, 1.0])
    assert end == pytest.approx(want[0], abs=FLUID_ATOL_K)
    assert mean == pytest.approx(want[1] / dt, abs=FLUID_ATOL_K)


def test_a_fluid_cell_without_capacity_passes_its_heat_on():
    """No capacity: the outflow is ``T_in + Q / mcp`` (what the mcp leaving carries), the
    inflow where nothing flows."""
    coef = np.zeros((1, tk.N_CF))
    tk.fluid_coefficients(0.1, 30.0, 0.0, coef, 0)
    assert tk.fluid_step(50.0, 45.0, 300.0, 30.0, coef, 0) == pytest.approx((55.0, 55.0), abs=1e-12)
    assert tk.fluid_step(50.0, 45.0, 0.0, 0.0, coef, 0) == (45.0, 45.0)


def test_power_step_gives_first_order_rc_response():
    """With negligible plate and coolant capacity the chip is one RC: after a power step
    Tj(t) = T_inf + (T0 - T_inf) exp(-t/tau), tau = Cj (R_jb + 1/G)."""
    step_at = 5.0
    s = twin.load_scenario(REFERENCE, single_plate_overrides(**{
        "rack.chip_types.gpu.c_plate_j_per_k": 1e-3,
        "rack.cold_plates.gpu_plate.fluid_volume_ml": 1e-3,
        "workload.schedule": [{"chips": "gpu", "kind": "constant", "fraction_of_tdp": 0.3},
                              {"chips": "gpu", "kind": "constant", "fraction_of_tdp": 1.0, "start_s": step_at}],
        "simulation.duration_s": 6.0, "simulation.time_step_s": 0.01, "simulation.output_interval_s": 0.01,
        "simulation.hydraulic_update_s": 1.0,
    }))
    r = twin.simulate(s)
    tel = r.telemetry()
    t = tel.time
    tj = tel["gpu/junction_temp"][:, 0].astype(float)
    t_in = tel["rack/supply_temp"]
    before = t < step_at - 1e-9
    after = (t > step_at + 1e-9) & (t <= step_at + 1.0 + 1e-9)
    gpu = s.rack.chip_types["gpu"]
    # total resistance from the steady state before the step
    r_total = (tj[before][-1] - t_in[before][-1]) / (0.3 * gpu.tdp_w)
    tau = gpu.c_junction_j_per_k * r_total
    t0 = tj[before][-1]
    t_inf = t_in[before][-1] + gpu.tdp_w * r_total
    expected = t_inf + (t0 - t_inf) * np.exp(-(t[after] - step_at) / tau)
    # float32 storage of junction temperatures: 1e-5 K at 60 degC
    np.testing.assert_allclose(tj[after], expected, atol=RC_ATOL_K)
    assert 0.05 < tau < 0.5  # the stiff node the step must follow


def test_halving_the_time_step_changes_junctions_by_less_than_0_05_k():
    over = {"simulation.duration_s": 200.0, "workload.schedule.1.start_s": 60.0,
            "workload.schedule.1.end_s": 150.0, "workload.schedule.2.start_s": 150.0}
    coarse = twin.simulate(twin.load_scenario(REFERENCE, over)).telemetry()
    fine = twin.simulate(twin.load_scenario(REFERENCE, {**over, "simulation.time_step_s": 0.05})).telemetry()
    np.testing.assert_array_equal(coarse.time, fine.time)
    diff = np.abs(coarse["gpu/junction_temp"].astype(float) - fine["gpu/junction_temp"])
    assert diff.max() < DT_HALVING_ATOL_K
    # and the run did swing: bursts move junctions by kelvins
    assert np.ptp(coarse["gpu/junction_temp"][:, 0]) > 5.0


def _steady_junctions(supply_c, coolant="pg25"):
    s = twin.load_scenario(REFERENCE, steady_overrides(**{"facility.supply_temp_c": supply_c, "coolant.name": coolant}))
    r = twin.simulate(s)
    return r, r.telemetry()


@pytest.mark.parametrize("coolant", ["pg25", "water"])
def test_facility_plus_5k_raises_steady_junctions_by_5k(coolant):
    _, a = _steady_junctions(32.0, coolant)
    _, b = _steady_junctions(37.0, coolant)
    assert a["rack/flow"][-1] == pytest.approx(b["rack/flow"][-1], rel=1e-5)  # fixed flow
    shift = b["gpu/junction_temp"][-1].astype(float) - a["gpu/junction_temp"][-1]
    assert np.all(np.abs(shift - 5.0) < SUPPLY_SHIFT_ATOL_K)


def test_temperature_rises_along_the_flow():
    r = twin.simulate(twin.load_scenario(REFERENCE, steady_overrides()))
    m, st = r.model, r.final_state
    # along each path the plate coolant warms plate by plate
    for e in np.unique(m.chip_path_edge):
        cells = range(m.edge_cell_ptr[e], m.edge_cell_ptr[e + 1])
        tf = [st.chip_x[m.cell_chip[c], 2] for c in cells]
        assert np.all(np.diff(tf) > 0)
        assert tf[0] > st.node_t[m.edge_from[e]]
    # every junction sits above its plate base, every base above its coolant
    assert np.all(st.chip_x[:, 0] > st.chip_x[:, 1])
    assert np.all(st.chip_x[:, 1] > st.chip_x[:, 2])
    tel = r.telemetry()
    assert np.all(tel["tray/return_temp"][-1] > tel["rack/supply_temp"][-1])
    assert tel["rack/return_temp"][-1] > tel["rack/supply_temp"][-1]
    # the facility side warms, the CDU supply sits above the facility supply
    assert tel["facility/return_temp"][-1] > tel["facility/supply_temp"][-1]
    assert tel["cdu/supply_temp"][-1] > tel["facility/supply_temp"][-1]
