"""Coolant tables against CoolProp values [COOLPROP] and a datasheet [DOWFROST] (docs/sources.md)."""
import numpy as np
import pytest

from twin.coolant import coolant_table, compute_coolant_table

# The values below are CoolProp at 1 atm quoted to 4-5 digits; the table interpolates linearly on a
# 0.5 K grid (curvature error < 1e-5 relative): 2e-4 covers the rounding of the quote.
QUOTE_RTOL = 2e-4
# DOWFROST LC 25 is a different product (inhibited, its own glycol fraction basis) from
# CoolProp's MPG[0.25]: density and cp agree within 1.5 %, conductivity within 3 %.
DATASHEET_RTOL = {"rho": 0.015, "cp": 0.015, "k": 0.03}


@pytest.mark.parametrize("t, rho, cp, mu, k", [
    (25.0, 1017.2, 3933, 2.071e-3, 0.4724),
    (35.0, 1012.5, 3957, 1.542e-3, 0.4814),
    (45.0, 1007.2, 3981, 1.199e-3, 0.4903),
])
def test_pg25_matches_coolprop_quote(t, rho, cp, mu, k):
    p = coolant_table("pg25").at(t)
    assert p["rho"] == pytest.approx(rho, rel=QUOTE_RTOL)
    assert p["cp"] == pytest.approx(cp, rel=QUOTE_RTOL)
    assert p["mu"] == pytest.approx(mu, rel=2e-3)
    assert p["k"] == pytest.approx(k, rel=QUOTE_RTOL)


def test_water_matches_iapws_quote():
    p = coolant_table("water").at(35.0)
    assert p["rho"] == pytest.approx(994.0, rel=QUOTE_RTOL)
    assert p["cp"] == pytest.approx(4179, rel=QUOTE_RTOL)
    assert p["mu"] == pytest.approx(0.719e-3, rel=2e-3)
    assert p["k"] == pytest.approx(0.6217, rel=QUOTE_RTOL)


def test_pg25_near_datasheet_at_40c():
    p = coolant_table("pg25").at(40.0)
    for key, ref in (("rho", 1022.5), ("cp", 3920.0), ("k", 0.476)):
        assert p[key] == pytest.approx(ref, rel=DATASHEET_RTOL[key])


def test_cached_table_equals_a_fresh_coolprop_table():
    cached, fresh = coolant_table("pg25"), compute_coolant_table("pg25")
    for key in ("rho", "cp", "mu", "k"):
        np.testing.assert_array_equal(getattr(cached, key), getattr(fresh, key))


def test_viscosity_falls_and_boiling_point_is_water_at_1_atm():
    t = coolant_table("pg25")
    assert np.all(np.diff(t.mu) < 0)
    assert t.boiling_temp_c == pytest.approx(99.97, abs=0.02)
