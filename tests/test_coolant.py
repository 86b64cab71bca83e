"""Coolant tables against the manufacturer's datasheet [DOWFROST], IAPWS and CoolProp values [COOLPROP] (docs/sources.md)."""
import numpy as np
import pytest

from twin import coolant
from twin.coolant import DOWFROST_LC25, coolant_table, compute_coolant_table

# The values below are CoolProp at 1 atm quoted to 4-5 digits; the table interpolates linearly on a
# 0.5 K grid (curvature error < 1e-5 relative): 2e-4 covers the rounding of the quote.
QUOTE_RTOL = 2e-4
# The DOWFROST LC 25 table (Dow guide Form 176-01641-01-0623, Table 2) states no accuracy
# beyond its printed digits: each value carries +-half a unit of its last digit, and a
# smooth curve through rounded points strays by up to another half unit. One unit of the
# last printed digit (SI units): 0.1 kg/m3, 0.01 kJ/(kg K), 0.001 W/(m K), 0.01 mPa s.
DATASHEET_RESOLUTION = {"rho": 0.1, "cp": 10.0, "k": 1e-3, "mu": 1e-5}

# The datasheet rows, typed from the guide (independently of twin.coolant's copy):
# degC, kg/m3, kJ/(kg K), W/(m K), mPa s
DOWFROST_LC25_TABLE2 = [
    (20, 1032.7, 3.87, 0.456, 2.84), (25, 1030.3, 3.88, 0.462, 2.39),
    (30, 1027.8, 3.89, 0.467, 2.05), (35, 1025.2, 3.90, 0.472, 1.78),
    (40, 1022.5, 3.92, 0.476, 1.58), (45, 1019.7, 3.93, 0.481, 1.41),
    (50, 1016.8, 3.94, 0.485, 1.27), (55, 1013.7, 3.95, 0.488, 1.15),
]


@pytest.mark.parametrize("t, rho, cp_kj, k, mu_mpas", DOWFROST_LC25_TABLE2)
def test_pg25_matches_dowfrost_lc25_datasheet(t, rho, cp_kj, k, mu_mpas):
    """pg25 is DOWFROST LC 25 (25 vol% inhibited PG) as Dow tabulates it. Catches the
    twin's former coolant, CoolProp's binary 25 wt% solution (viscosity 14-16 % low,
    density 1.2 % low, cp 1.3 % and conductivity 2-2.6 % high), a 25 vol%/wt% mix-up
    and the guide's superseded 2022 viscosities (12-14 % low)."""
    p = coolant_table("pg25").at(float(t))
    assert p["rho"] == pytest.approx(rho, abs=DATASHEET_RESOLUTION["rho"])
    assert p["cp"] == pytest.approx(cp_kj * 1e3, abs=DATASHEET_RESOLUTION["cp"])
    assert p["k"] == pytest.approx(k, abs=DATASHEET_RESOLUTION["k"])
    assert p["mu"] == pytest.approx(mu_mpas * 1e-3, abs=DATASHEET_RESOLUTION["mu"])


def test_pg25_at_40c_is_the_reference_sheet_row():
    """The [DOWFROST] 40 degC row quoted in docs/sources.md, within the datasheet's digits."""
    p = coolant_table("pg25").at(40.0)
    for key, ref in (("rho", 1022.5), ("cp", 3920.0), ("k", 0.476), ("mu", 1.58e-3)):
        assert p[key] == pytest.approx(ref, abs=DATASHEET_RESOLUTION[key])


def test_pg25_is_smooth_and_monotone_over_the_operating_range():
    """10-65 degC: viscosity falls, density falls, cp and conductivity rise, and nothing
    jumps where the datasheet fits hand over to Melinder's temperature dependence (20 and
    55 degC): a step in value there would make that 0.5 K step unlike its neighbour.
    (The slopes themselves may differ: the datasheet's conductivity rises 25-30 % faster
    with temperature than Melinder's binary solution.)"""
    t = coolant_table("pg25")
    sel = (t.temp_c >= 10.0) & (t.temp_c <= 65.0)
    assert np.all(np.diff(t.mu[sel]) < 0) and np.all(np.diff(t.rho[sel]) < 0)
    assert np.all(np.diff(t.cp[sel]) > 0) and np.all(np.diff(t.k[sel]) > 0)
    for key in ("rho", "cp", "k", "mu"):
        slope = np.diff(np.log(getattr(t, key)))
        for edge in (20.0, 55.0):
            i = int(np.argmin(np.abs(t.temp_c - edge)))
            assert 2.0 / 3.0 < slope[i] / slope[i - 1] < 1.5, (key, edge)


@pytest.mark.parametrize("t, rho, cp, mu, k", [
    (25.0, 1017.2, 3933, 2.071e-3, 0.4724),
    (35.0, 1012.5, 3957, 1.542e-3, 0.4814),
    (45.0, 1007.2, 3981, 1.199e-3, 0.4903),
])
def test_coolprop_melinder_pg_matches_reference_quote(t, rho, cp, mu, k):
    """CoolProp's Melinder fit (INCOMP::MPG), which gives pg25 its temperature dependence
    outside the datasheet's 20-55 degC, is the one [COOLPROP] gives (25 wt%): a
    CoolProp release that changed it would show here."""
    from CoolProp.CoolProp import PropsSI

    tk = t + 273.15
    fluid = "INCOMP::MPG[0.25]"
    assert PropsSI("D", "T", tk, "P", 2e5, fluid) == pytest.approx(rho, rel=QUOTE_RTOL)
    assert PropsSI("C", "T", tk, "P", 2e5, fluid) == pytest.approx(cp, rel=QUOTE_RTOL)
    assert PropsSI("V", "T", tk, "P", 2e5, fluid) == pytest.approx(mu, rel=2e-3)
    assert PropsSI("L", "T", tk, "P", 2e5, fluid) == pytest.approx(k, rel=QUOTE_RTOL)


def test_water_matches_iapws_quote():
    p = coolant_table("water").at(35.0)
    assert p["rho"] == pytest.approx(994.0, rel=QUOTE_RTOL)
    assert p["cp"] == pytest.approx(4179, rel=QUOTE_RTOL)
    assert p["mu"] == pytest.approx(0.719e-3, rel=2e-3)
    assert p["k"] == pytest.approx(0.6217, rel=QUOTE_RTOL)


def test_cached_table_equals_a_fresh_coolprop_table():
    cached, fresh = coolant_table("pg25"), compute_coolant_table("pg25")
    for key in ("rho", "cp", "mu", "k"):
        np.testing.assert_array_equal(getattr(cached, key), getattr(fresh, key))


def test_cache_key_changes_with_the_data_and_the_method(monkeypatch):
    """A table cached from other data is never read back: the key hashes the datasheet,
    the CoolProp fluid and the construction method."""
    key = coolant.table_cache_key("pg25")
    sheet = dict(DOWFROST_LC25, mu=tuple(m * 1.01 for m in DOWFROST_LC25["mu"]))
    monkeypatch.setitem(coolant.DATASHEETS, "pg25", sheet)
    assert coolant.table_cache_key("pg25") != key
    monkeypatch.setitem(coolant.DATASHEETS, "pg25", DOWFROST_LC25)
    assert coolant.table_cache_key("pg25") == key
    monkeypatch.setattr(coolant, "TABLE_METHOD", coolant.TABLE_METHOD + 1)
    assert coolant.table_cache_key("pg25") != key
    monkeypatch.undo()
    monkeypatch.setitem(coolant.COOLANTS, "pg25", "INCOMP::MPG[0.25]")
    assert coolant.table_cache_key("pg25") != key
    assert coolant.table_cache_key("water") != key


def test_viscosity_falls_and_boiling_point_is_water_at_1_atm():
    t = coolant_table("pg25")
    assert np.all(np.diff(t.mu) < 0)
    assert t.boiling_temp_c == pytest.approx(99.97, abs=0.02)


@pytest.mark.parametrize("coolant", ["pg25", "water"])
def test_kernel_lookup_matches_the_table_between_grid_points(coolant):
    """The kernels' uniform-grid look-up (``twin.kernels.props.interp_column``) against
    numpy's interpolation of the same table (``CoolantTable.at``) at temperatures between
    grid points, for every property row, and clamped at the ends. Catches an index or
    spacing error in the look-up (a wrong viscosity there moves every pressure drop)."""
    from twin.kernels.props import interp_column

    table = coolant_table(coolant)
    temps = np.array([1.0, 7.3, 19.99, 32.25, 40.0, 47.71, 63.3, 88.88, 99.0])
    packed = table.packed()
    for row, name in enumerate(("rho", "cp", "mu", "k")):
        got = interp_column(packed, row, table.t0_c, table.dt_c, temps)
        expected = [table.at(float(t))[name] for t in temps]
        np.testing.assert_allclose(got, expected, rtol=1e-12, err_msg=name)
    ends = interp_column(packed, 2, table.t0_c, table.dt_c, np.array([-5.0, 120.0]))
    assert ends[0] == table.mu[0] and ends[1] == table.mu[-1]
