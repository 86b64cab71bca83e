"""Correlations we wrote ourselves, against published values and limits."""
import math

import numpy as np

import ht
import pytest

from twin import correlations as corr

# Shah & London (1978) Table 18 quote fRe to 4-5 digits; the polynomial fit is stated
# accurate to 0.05 %: allow 0.1 %.
FRE_RTOL = 1e-3


@pytest.mark.parametrize("aspect, fre", [(1.0, 14.227), (0.5, 15.548), (0.25, 18.233), (0.125, 20.585)])
def test_shah_london_fRe_matches_table(aspect, fre):
    assert corr.fanning_fRe_rectangular_Shah_London(aspect) == pytest.approx(fre, rel=FRE_RTOL)


def test_shah_london_fRe_parallel_plate_limit_and_symmetry():
    assert corr.fanning_fRe_rectangular_Shah_London(1e-9) == pytest.approx(24.0, rel=1e-6)
    assert corr.fanning_fRe_rectangular_Shah_London(4.0) == corr.fanning_fRe_rectangular_Shah_London(0.25)


def test_hagenbach_parallel_plate_limit():
    # Shah & London: K(inf) = 0.674 for parallel plates; the fit gives 0.6796 (1 %).
    assert corr.hagenbach_K_rectangular_Shah_London(1e-9) == pytest.approx(0.674, rel=0.01)


def test_fin_efficiency_limits_and_value():
    # mH = 1 -> tanh(1)/1 (Incropera eq. 3.89)
    k, t, h_fin = 400.0, 1e-3, 0.01
    h = (1.0 / h_fin) ** 2 * k * t / 2.0
    assert corr.fin_efficiency_straight_adiabatic_tip(h, k, t, h_fin) == pytest.approx(math.tanh(1.0), rel=1e-12)
    assert corr.fin_efficiency_straight_adiabatic_tip(1e-12, k, t, h_fin) == pytest.approx(1.0, abs=1e-9)


def test_pump_affinity_laws_map_the_curve():
    h0, k = 350e3, corr.pump_curve_k(350e3, 280 / 60000, 250e3)
    q, s = 0.004, 0.7
    h_full = corr.pump_head_pa(q, 1.0, h0, k)
    # the point (Q, H) on the full-speed curve maps to (sQ, s^2 H)
    assert corr.pump_head_pa(s * q, s, h0, k) == pytest.approx(s * s * h_full, rel=1e-12)
    assert corr.pump_head_pa(280 / 60000, 1.0, h0, k) == pytest.approx(250e3, rel=1e-12)


def test_hx_design_ua_reproduces_its_rating():
    c_hot, c_cold, heat, approach = 18e3, 19e3, 250e3, 4.0
    ua = corr.hx_design_ua(heat, approach, c_hot, c_cold)
    cmin, cmax = min(c_hot, c_cold), max(c_hot, c_cold)
    eps = corr.counterflow_effectiveness(ua / cmin, cmin / cmax)
    dt_max = approach + heat / c_hot
    assert eps * cmin * dt_max == pytest.approx(heat, rel=1e-9)
    assert eps == pytest.approx(ht.effectiveness_from_NTU(ua / cmin, cmin / cmax, subtype="counterflow"), rel=1e-12)


def test_plate_conductance_is_effectiveness_times_capacity_rate():
    assert corr.plate_conductance_w_per_k(100.0, 50.0) == pytest.approx(50.0 * (1 - math.exp(-2.0)))
    # large NTU: the fluid leaves at the wall temperature
    assert corr.plate_conductance_w_per_k(1e6, 50.0) == pytest.approx(50.0)


def test_dp_fit_is_exact_for_laminar_plus_quadratic():
    a, b, err = corr.fit_dp_coefficients(lambda q: 3e6 * q + 2e9 * q * q, 1e-4)
    assert a == pytest.approx(3e6, rel=1e-9) and b == pytest.approx(2e9, rel=1e-9) and err < 1e-9


def test_quick_disconnect_cv_and_kv_agree():
    """Kv = 0.865 Cv (fluids.Cv_to_Kv): the same coupling gives the same drop either way,
    and a Cv of 1 passes 1 US gpm at 1 psi."""
    import fluids
    rho, d = 999.0, 8e-3
    q = 1.0 * 3.785411784e-3 / 60.0  # 1 US gpm
    dp_cv = corr.quick_disconnect_dp_pa(q, rho, d, cv_gpm_psi=1.0)
    dp_kv = corr.quick_disconnect_dp_pa(q, rho, d, kv_m3h_bar=fluids.Cv_to_Kv(1.0))
    assert dp_cv == pytest.approx(dp_kv, rel=1e-9)
    assert dp_cv == pytest.approx(6894.757 * rho / 999.0, rel=0.01)


def test_two_term_nnls_equals_scipy_nnls():
    """The pressure-drop fit's own non-negative least squares (kept off scipy.optimize for
    start-up time) against scipy's Lawson-Hanson NNLS, including problems whose
    unconstrained solution has a negative coefficient."""
    from scipy.optimize import nnls

    from twin.correlations import _nnls2

    rng = np.random.default_rng(1)
    clipped = 0
    for _ in range(500):
        a = rng.standard_normal((24, 2))
        y = rng.standard_normal(24)
        expected = nnls(a, y)[0]
        clipped += int(np.any(expected == 0.0))
        np.testing.assert_allclose(_nnls2(a, y), expected, atol=1e-10)
    assert clipped > 100  # the constrained cases were exercised


def test_two_term_drop_through_a_point_has_its_value_and_log_slope_there():
    """dp = aQ + bQ|Q| through (Q0, dp0) with d ln dp / d ln Q = n at Q0 (checked by a
    central difference), and the 1.85 form within 4 % of the power law over 0.5-2 Q0."""
    q0, dp0 = 5e-5, 1.2e4
    for n in (1.0, 1.5, 1.85, 2.0):
        a, b = corr.dp_coefficients_through_point(dp0, q0, n)
        dp = lambda q: a * q + b * q * abs(q)  # noqa: E731
        assert dp(q0) == pytest.approx(dp0, rel=1e-12)
        h = 1e-6
        assert math.log(dp(q0 * (1 + h)) / dp(q0 * (1 - h))) / math.log((1 + h) / (1 - h)) == pytest.approx(n, rel=1e-8)
    a, b = corr.dp_coefficients_through_point(dp0, q0, 1.85)
    for x in (0.5, 0.75, 1.5, 2.0):
        assert (a * x * q0 + b * (x * q0) ** 2) / (dp0 * x**1.85) == pytest.approx(1.0, abs=0.04)
    with pytest.raises(ValueError):
        corr.dp_coefficients_through_point(dp0, q0, 2.5)
