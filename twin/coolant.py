"""Coolant properties versus temperature, tabulated once per coolant.

``water``: CoolProp's IAPWS-95 reference equation of state (``Water``) at the loop
pressure.

``pg25``: DOWFROST LC 25 (Dow), the pre-mixed inhibited propylene-glycol coolant the
NVL72-class loops are specified with (OCP-derived switch and manifold requirements quote
"PG25 / DowFrost LC-25"): 25 % propylene glycol **by volume** (about 25.7 % by mass) with a
phosphate inhibitor package, freezing at -10 degC. Its properties are Dow's published
table (:data:`DOWFROST_LC25`), not those of a binary glycol-water solution: at 40 degC
the inhibited fluid is 1.2 % denser, has 1.3 % less cp, 2 % less conductivity and 14 %
more viscosity than CoolProp's ``INCOMP::MPG[0.25]`` (Melinder's 25 wt% fit), which the
twin used before.

How the ``pg25`` table is built (:func:`compute_coolant_table`): smooth fits to the
datasheet points (density and conductivity quadratic, cp linear, viscosity
``ln mu = A + B/(T + C)``, Vogel's form), each within about half a unit of the
datasheet's last printed digit; outside the datasheet's 20-55 degC the ratio of the fit
to Melinder's binary solution at the same glycol content (``INCOMP::MPG[0.257]``) is held
at its end value, so the temperature dependence there is Melinder's measured one. The
tables are interpolated inside kernels (:func:`twin.kernels.props.interp_uniform`).

References (docs/sources.md)
----------------------------
- [DOWFROST] The Dow Chemical Company, *DOWFROST LC Inhibited Propylene Glycol-Based Heat
  Transfer Fluid: Engineering and Operating Guide*, Form No. 176-01641-01-0623 (June 2023),
  Table 2 (properties of DOWFROST LC 25, 5 K steps) and Table 1 (25 vol% PG, freezing
  point -10 degC); *DOWFROST LC Technical Data Sheet*, Form No. 180-01627-01-0523
  (25 vol%, use -10 to 90 degC, boiling point 101.4 degC at 760 mmHg). Values 20-55
  degC as transcribed, in a public design repository, from a distributor copy of the
  guide (Dow's own PDF was not read here); the 40 degC row equals the one quoted in
  docs/sources.md. The guide's earlier revision (Form 176-01641-01-0222, Feb. 2022)
  printed the same cp and conductivity but a density 1.9 kg/m3 higher and a viscosity
  12-14 % lower (1.39 mPa s at 40 degC, close to Melinder's binary solution); Dow's
  current revision is used.
- [MELINDER] Melinder, *Properties of Secondary Working Fluids for Indirect Systems*, IIR
  2010, as fitted in CoolProp ``INCOMP::MPG`` (mass fraction).
- [ASHRAE-F] ASHRAE Handbook Fundamentals (2001), propylene glycol solutions: 25 % by
  volume is 25.7 % by mass (the volume-to-mass table as carried in CoolProp's ``APG`` data).
- [COOLPROP] Bell, Wronski, Quoilin, Lemort, "Pure and Pseudo-pure Fluid Thermophysical
  Property Evaluation and the Open-Source Thermophysical Property Library CoolProp",
  Ind. Eng. Chem. Res. 53 (2014) 2498-2508.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from functools import lru_cache
from importlib.metadata import version
from pathlib import Path

import numpy as np

# CoolProp fluid strings (scenario name -> CoolProp name): the whole table for water;
# for pg25 the binary solution whose temperature dependence extends the datasheet fits
# outside the datasheet's range (25 vol% = 25.7 wt%, ASHRAE).
COOLANTS = {
    "water": "Water",
    "pg25": "INCOMP::MPG[0.257]",
}

# DOWFROST LC 25, [DOWFROST] Engineering and Operating Guide Form 176-01641-01-0623, Table 2:
# temperature [degC], density [kg/m3], cp [J/(kg K)] (printed in kJ/(kg K)), conductivity
# [W/(m K)], dynamic viscosity [Pa s] (printed in mPa s). The table states no accuracy
# ("typical properties"): the printed digits are its resolution.
DOWFROST_LC25 = {
    "temp_c": (20.0, 25.0, 30.0, 35.0, 40.0, 45.0, 50.0, 55.0),
    "rho": (1032.7, 1030.3, 1027.8, 1025.2, 1022.5, 1019.7, 1016.8, 1013.7),
    "cp": (3870.0, 3880.0, 3890.0, 3900.0, 3920.0, 3930.0, 3940.0, 3950.0),
    "k": (0.456, 0.462, 0.467, 0.472, 0.476, 0.481, 0.485, 0.488),
    "mu": (2.84e-3, 2.39e-3, 2.05e-3, 1.78e-3, 1.58e-3, 1.41e-3, 1.27e-3, 1.15e-3),
}
DATASHEETS = {"pg25": DOWFROST_LC25}
# Version of the way a table is built from its sources: part of the cache key, bump it
# when the construction changes (the data are hashed into the key as well).
TABLE_METHOD = 2

# Freezing points at 1 atm [degC]: water 0 (the ice point); DOWFROST LC 25 -10 ([DOWFROST]
# guide Table 1 and data sheet; [MELINDER] gives -9.6 for a 25 wt% binary solution).
FREEZING_C = {"water": 0.0, "pg25": -10.0}

# The property tables' temperature grid [degC]: from just above water's freezing point to
# just below its boiling point, every 0.5 K (linear interpolation error < 1e-5 relative).
TABLE_T_MIN_C = 1.0
TABLE_T_MAX_C = 99.0  # (grid, above)
TABLE_STEP_C = 0.5  # (grid, above)
# Pressure at which the tables are evaluated: 2 bar absolute, a typical secondary-loop
# pressure (ASSUMPTION; liquid properties move < 0.01 % per bar here).
TABLE_PRESSURE_PA = 2.0e5
ATMOSPHERIC_PA = 101325.0  # the standard atmosphere [SI-BROCHURE]


@dataclass(frozen=True)
class CoolantTable:
    """Uniformly spaced property table; every array is indexed like ``temp_c``.

    Attributes: ``rho`` density [kg/m3], ``cp`` specific heat [J/(kg K)],
    ``mu`` dynamic viscosity [Pa s], ``k`` thermal conductivity [W/(m K)].
    """

    name: str
    coolprop_name: str
    t0_c: float
    dt_c: float
    temp_c: np.ndarray
    rho: np.ndarray
    cp: np.ndarray
    mu: np.ndarray
    k: np.ndarray
    boiling_temp_c: float

    @property
    def freezing_temp_c(self) -> float:
        return FREEZING_C[self.name]

    def at(self, temp_c: float) -> dict:
        """Properties at one temperature (linear interpolation in the table), SI units."""
        if not (self.temp_c[0] <= temp_c <= self.temp_c[-1]):
            raise ValueError(
                f"{temp_c:.2f} degC is outside the {self.name} table "
                f"({self.temp_c[0]:.0f}-{self.temp_c[-1]:.0f} degC)"
            )
        return {
            name: float(np.interp(temp_c, self.temp_c, getattr(self, name)))
            for name in ("rho", "cp", "mu", "k")
        }

    def packed(self) -> np.ndarray:
        """(4, n) array rho, cp, mu, k for the kernels."""
        return np.vstack([self.rho, self.cp, self.mu, self.k])


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "rack-twin"


def table_cache_key(name: str) -> str:
    """Cache-file key of a coolant's table: the coolant, the CoolProp version, the grid,
    the construction method and a hash of the data it is built from (the CoolProp fluid
    string and any datasheet), so a table whose sources change is never read back stale."""
    sources = repr((COOLANTS[name], DATASHEETS.get(name), FREEZING_C[name], TABLE_METHOD))
    digest = hashlib.sha256(sources.encode()).hexdigest()[:12]
    return (f"{name}-coolprop{version('CoolProp')}-m{TABLE_METHOD}-{digest}-{TABLE_T_MIN_C}-{TABLE_T_MAX_C}-"
            f"{TABLE_STEP_C}-{TABLE_PRESSURE_PA:.0f}")


@lru_cache(maxsize=None)
def coolant_table(name: str) -> CoolantTable:
    """Tabulate density, cp, viscosity and conductivity of a coolant, 1-99 degC.

    Importing CoolProp costs seconds, so the table is computed once per
    :func:`table_cache_key` (CoolProp version, sources, grid) and kept in the user cache
    directory (``~/.cache/rack-twin``, a plain ``.npz`` with no pickled objects); delete it
    to recompute.
    """
    if name not in COOLANTS:
        raise KeyError(name)
    path = _cache_dir() / f"coolant-{table_cache_key(name)}.npz"
    if path.exists():
        try:
            with np.load(path, allow_pickle=False) as z:
                return CoolantTable(name=name, coolprop_name=COOLANTS[name], t0_c=float(z["temp_c"][0]),
                                    dt_c=TABLE_STEP_C, temp_c=z["temp_c"], rho=z["rho"], cp=z["cp"], mu=z["mu"],
                                    k=z["k"], boiling_temp_c=float(z["boiling_temp_c"]))
        except (OSError, KeyError, ValueError):
            pass  # unreadable cache: recompute below
    table = compute_coolant_table(name)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + f".{os.getpid()}.tmp.npz")
        np.savez(tmp, temp_c=table.temp_c, rho=table.rho, cp=table.cp, mu=table.mu, k=table.k,
                 boiling_temp_c=table.boiling_temp_c)
        os.replace(tmp, path)
    except OSError:
        pass  # read-only home: run without the cache
    return table


def fit_datasheet(sheet: dict) -> dict:
    """Smooth fits to a coolant datasheet: ``{property: callable(temp_c) -> value in SI units}``.

    Density and conductivity: quadratic in temperature; cp: linear (the datasheet prints
    it to 0.01 kJ/(kg K), so its points step); viscosity: Vogel's
    ``ln mu = A + B/(T + C)`` (e.g. Reid, Prausnitz & Poling, *The Properties of Gases
    and Liquids*, 4th ed., eq. 9-10.1), least squares in ``ln mu`` with ``C`` scanned.
    Least squares in each, so a fit passes within the datasheet's rounding, not through
    its rounded points.
    """
    t = np.asarray(sheet["temp_c"], dtype=float)
    out = {}
    for key, degree in (("rho", 2), ("cp", 1), ("k", 2)):
        coef = np.polyfit(t, np.asarray(sheet[key], dtype=float), degree)
        out[key] = lambda x, coef=coef: np.polyval(coef, x)
    ln_mu = np.log(np.asarray(sheet["mu"], dtype=float))
    best = None
    for c in np.arange(-float(t.min()) + 5.0, 400.0, 0.25):
        b, a = np.polyfit(1.0 / (t + c), ln_mu, 1)
        res = float(np.sum((a + b / (t + c) - ln_mu) ** 2))
        if best is None or res < best[0]:
            best = (res, a, b, c)
    _, a, b, c = best
    out["mu"] = lambda x: np.exp(a + b / (np.asarray(x, dtype=float) + c))
    return out


def compute_coolant_table(name: str) -> CoolantTable:
    """The table from its sources (no cache): CoolProp for water; for a coolant with a
    datasheet (:data:`DATASHEETS`), the datasheet fits inside its temperature range and,
    outside it, CoolProp's binary solution scaled by the fit's ratio to it at the range's
    nearer end (continuous there; the temperature dependence beyond is Melinder's)."""
    from CoolProp.CoolProp import PropsSI

    fluid = COOLANTS[name]
    temp_c = np.arange(TABLE_T_MIN_C, TABLE_T_MAX_C + 1e-9, TABLE_STEP_C)
    temp_k = temp_c + 273.15
    props = {}
    for key, code in (("rho", "D"), ("cp", "C"), ("mu", "V"), ("k", "L")):
        props[key] = np.array([PropsSI(code, "T", t, "P", TABLE_PRESSURE_PA, fluid) for t in temp_k])
    sheet = DATASHEETS.get(name)
    if sheet is not None:
        fits = fit_datasheet(sheet)
        t_held = np.clip(temp_c, min(sheet["temp_c"]), max(sheet["temp_c"]))
        for key, fit in fits.items():
            base_held = np.array([PropsSI({"rho": "D", "cp": "C", "mu": "V", "k": "L"}[key], "T", t + 273.15, "P",
                                          TABLE_PRESSURE_PA, fluid) for t in t_held])
            props[key] = props[key] * fit(t_held) / base_held
    # Boiling point at atmospheric pressure: the loop is vented through its reservoir in
    # the worst case. DOWFROST LC 25 boils at 101.4 degC at 760 mmHg ([DOWFROST] data
    # sheet); water's value is kept for both coolants as the conservative limit (ASSUMPTION).
    boiling_c = PropsSI("T", "P", ATMOSPHERIC_PA, "Q", 0, "Water") - 273.15
    return CoolantTable(
        name=name,
        coolprop_name=fluid,
        t0_c=float(temp_c[0]),
        dt_c=TABLE_STEP_C,
        temp_c=temp_c,
        boiling_temp_c=float(boiling_c),
        **props,
    )
