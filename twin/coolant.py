"""Coolant properties versus temperature, tabulated once from CoolProp.

Water comes from CoolProp's IAPWS-95 reference equation of state (``Water``) at the
loop pressure; PG25 from CoolProp's incompressible-fluid library
(``INCOMP::MPG[0.25]``, 25 % by mass propylene glycol, fitted to the
Melinder (2010) data). The tables are built in plain Python once per coolant and
interpolated inside kernels (:func:`twin.kernels.props.interp_uniform`).

References (docs/sources.md)
----------------------------
- [COOLPROP] Bell, Wronski, Quoilin, Lemort, "Pure and Pseudo-pure Fluid Thermophysical Property
  Evaluation and the Open-Source Thermophysical Property Library CoolProp",
  Ind. Eng. Chem. Res. 53 (2014) 2498-2508.
- [MELINDER] Melinder, "Properties of Secondary Working Fluids for Indirect Systems", IIR 2010.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from importlib.metadata import version
from pathlib import Path

import numpy as np

# CoolProp fluid strings for the coolants we support (scenario name -> CoolProp name).
COOLANTS = {
    "water": "Water",
    "pg25": "INCOMP::MPG[0.25]",
}

# Freezing points at 1 atm [degC]: water 0 (the ice point); propylene glycol 25 % by mass
# -10 ([DOWFROST], freezing point of a 25 wt% solution; [MELINDER] gives -9.6).
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


@lru_cache(maxsize=None)
def coolant_table(name: str) -> CoolantTable:
    """Tabulate density, cp, viscosity and conductivity of a coolant, 1-99 degC.

    Importing CoolProp costs seconds, so the table is computed once per CoolProp version
    and kept in the user cache directory (``~/.cache/rack-twin``, a plain ``.npz`` with
    no pickled objects); delete it to recompute.
    """
    if name not in COOLANTS:
        raise KeyError(name)
    key = f"{name}-coolprop{version('CoolProp')}-{TABLE_T_MIN_C}-{TABLE_T_MAX_C}-{TABLE_STEP_C}-{TABLE_PRESSURE_PA:.0f}"
    path = _cache_dir() / f"coolant-{key}.npz"
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


def compute_coolant_table(name: str) -> CoolantTable:
    """The table straight from CoolProp (no cache)."""
    from CoolProp.CoolProp import PropsSI

    fluid = COOLANTS[name]
    temp_c = np.arange(TABLE_T_MIN_C, TABLE_T_MAX_C + 1e-9, TABLE_STEP_C)
    temp_k = temp_c + 273.15
    props = {}
    for key, code in (("rho", "D"), ("cp", "C"), ("mu", "V"), ("k", "L")):
        props[key] = np.array([PropsSI(code, "T", t, "P", TABLE_PRESSURE_PA, fluid) for t in temp_k])
    # Boiling point at atmospheric pressure: the loop is vented through its reservoir in
    # the worst case. CoolProp's incompressible PG25 has no saturation state; a 25 %
    # glycol solution boils above water (Raoult), so water's value is the conservative
    # limit for both (ASSUMPTION).
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
