"""Scenario files: TOML, validated by a pydantic schema, with includes and overrides.

A scenario is plain data. Every field has a dotted key (``facility.supply_temp_c``) that
``--set``, calibration overlays and sweeps share. Units are in the field names.

Reading the files (TOML, includes, overrides) is :mod:`twin.sources`; this module holds the
schema and validates what it gathered.

Validation: every number with a unit has the range a real rack can have (``Bounds``, with
the source or ASSUMPTION beside it), ``nan`` and ``inf`` are refused everywhere except
where infinity is the documented "never" (``end_s``, a job's ``duration_s``,
``checkpoint_interval_s``, ``gpu_power_cap_w``), and errors are reported in the project's
words on one line: ``FILE: dotted.field: message``.
"""
from __future__ import annotations

import math
import typing
from dataclasses import dataclass, field as dc_field
from pathlib import Path
from typing import Annotated, Literal, Optional, Union

import numpy as np
import tomli_w
from pydantic import (BaseModel, ConfigDict, Field, StrictBool, StringConstraints, ValidationError,
                      field_validator, model_validator)
from pydantic_core import PydanticCustomError, core_schema

from .errors import TwinInputError, did_you_mean
from .files import regular_file
from .sources import (Sources, gather, key_parts, option_of, parse_override, relative_base, set_dotted,  # noqa: F401
                      show, where)  # (parse_override: API)


@dataclass(frozen=True)
class Bounds:
    """The physical range of a number field, reported in the error with its unit.

    ``Annotated[float, Bounds(2, 60, "degC")]``: 2 <= x <= 60. ``lo_open`` / ``hi_open``
    exclude a bound; ``inf_ok`` also accepts +inf (the documented default "never"), while
    NaN is refused everywhere."""

    lo: float
    hi: float
    unit: str = ""
    lo_open: bool = False
    hi_open: bool = False
    inf_ok: bool = False

    def __get_pydantic_core_schema__(self, source, handler):
        inner = handler(source)
        if self.inf_ok and inner.get("type") == "float":
            inner = {**inner, "allow_inf_nan": True}
        typed = core_schema.no_info_before_validator_function(self._typed(inner.get("type")), inner)
        return core_schema.no_info_after_validator_function(self.check, typed)

    def __get_pydantic_json_schema__(self, core, handler):
        """The JSON Schema of the field (``twin schema``): its range, and its unit as ``units``
        (infinity, where it means "never", has no JSON spelling: no maximum then)."""
        js = handler(core)
        if math.isfinite(self.lo):
            js["exclusiveMinimum" if self.lo_open else "minimum"] = self.lo
        if math.isfinite(self.hi) and not self.inf_ok:
            js["exclusiveMaximum" if self.hi_open else "maximum"] = self.hi
        if self.unit:
            js["units"] = self.unit
        return js

    @staticmethod
    def _typed(kind):
        """TOML values are typed: a number takes a number, not text or true/false (pydantic
        would read "32" and true as numbers)."""
        what = "a whole number" if kind == "int" else "a number"

        def check(v):
            # numpy's bool is no bool subclass (pydantic would read it as 0 / 1)
            if isinstance(v, (str, bool)) or type(v).__name__ in ("bool_", "bool") and type(v).__module__ == "numpy":
                raise PydanticCustomError("twin_type", "expected {what}, got {got}", {"what": what, "got": repr(v)})
            return v
        return check

    def check(self, v):
        if isinstance(v, float) and math.isnan(v):
            raise PydanticCustomError("twin_nan", "must be a number (inf for never), got nan")
        if self.inf_ok and v == math.inf:
            return v
        below = v <= self.lo if self.lo_open else v < self.lo
        above = v >= self.hi if self.hi_open else v > self.hi
        if not (below or above):
            return v
        u = f" {self.unit}" if self.unit else ""
        if self.lo_open or self.hi_open:  # interval notation: (0, 1] excludes 0
            span = f"{'(['[not self.lo_open]}{_num(self.lo)}, {_num(self.hi)}{')]'[not self.hi_open]}{u}"
        else:
            span = f"{_num(self.lo)}{' to ' if self.lo < 0 else '-'}{_num(self.hi)}{u}"
        if below and self.unit != "degC" and (v <= 0 < self.lo or self.lo_open and self.lo == 0):
            msg = f"must be greater than 0, got {_num(v)}{u}; range {span}"
        else:
            msg = f"{_num(v)}{u} outside {span}"
        raise PydanticCustomError("twin_range", "{msg}", {"msg": msg})


def _num(x) -> str:
    """A number as people write it: whole numbers without an exponent below 1e7."""
    if isinstance(x, int):
        return str(x)
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e7 else f"{x:g}"


# Times: no scenario spans more than a rack's service life; 3.2e9 s is about a century
# (ASSUMPTION), far beyond any run, and keeps step counts within exact float integers.
MAX_TIME_S = 3.2e9
Seconds = Annotated[float, Bounds(0, MAX_TIME_S, "s")]
# ASHRAE TC9.9 liquid classes W17-W45 and W+ (> 45 C) [ASHRAE]; the guidelines' minimum
# facility supply is 2 C.
# 60 C caps W+: hot-water cooled systems run supply up to ~60 C (ASSUMPTION: no W+ site
# above it). The coolant's freezing point (water 0 C, PG25 about -10 C) lies below 2 C.
FACILITY_SUPPLY_C = (2.0, 60.0)
# A secondary supply setpoint: the facility range plus a CDU approach (ASSUMPTION: 5 K).
SECONDARY_SUPPLY_C = (2.0, 65.0)
# Any loop flow [L/min]: a rack's trays need ~2-13 L/min, a row CDU moves ~300-5000 L/min;
# 20,000 L/min (~330 L/s) serves a multi-MW hall (ASSUMPTION: the ceiling of one CDU loop).
MAX_FLOW_LPM = 20000.0
# Pressures [kPa]: rack and CDU hardware is rated 10 bar or less (OCP MGX UQDs, rack hoses;
# ASSUMPTION: 20 bar covers every pump head).
MAX_KPA = 2000.0
# One chip's power [W]: GB300 ~1.4 kW, announced next generations ~2-3.6 kW (ASSUMPTION:
# 5 kW leaves headroom without admitting typos like 120000).
MAX_CHIP_W = 5000.0
# A calibration multiplier (dp_scale, head_scale, ua_scale): beyond 100x the model, not
# the part, is wrong (ASSUMPTION).
Scale = Annotated[float, Bounds(0.01, 100.0)]
Fraction = Annotated[float, Bounds(0.0, 1.0)]
# Power as a fraction of TDP: boost above TDP is short and modest (ASSUMPTION: 1.5 TDP).
TdpFraction = Annotated[float, Bounds(0.0, 1.5)]
Flow = Annotated[float, Bounds(0.1, MAX_FLOW_LPM, "L/min")]
# A loss coefficient K (fittings, tees, restrictors): a fully closed globe valve is a few
# hundred; 1e4 is a valve barely open (Crane TP-410 magnitudes; ASSUMPTION for the cap).
LossK = Annotated[float, Bounds(0.0, 1e4)]
# Heat capacities [J/K]: down to 1e-3 so a test can make a capacity negligible; 1e4 J/K is
# ~26 kg of copper (ASSUMPTION: no cold plate weighs more).
Capacity = Annotated[float, Bounds(1e-3, 1e4, "J/K")]
# A number whose range depends on more than itself (checked in _check_physics).
Number = Annotated[float, Bounds(-math.inf, math.inf)]
# Names used in instance paths and telemetry channel names (``tray04/gpu0``, ``gpu/power``).
Name = Annotated[str, StringConstraints(pattern=r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")]


def _finite_pair(lo_hi_unit_a, lo_hi_unit_b):
    """A ``[a, b]`` pair of bounded numbers (a TOML array of two)."""
    a, b = (Annotated[float, Bounds(*x)] for x in (lo_hi_unit_a, lo_hi_unit_b))
    return tuple[a, b]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False, allow_inf_nan=False)


# --------------------------------------------------------------------------- rack


class ChipType(_Model):
    """A chip on a cold plate: junction - TIM - plate base - coolant."""

    tdp_w: Annotated[float, Bounds(1, MAX_CHIP_W, "W")] = Field(description="thermal design power [W]")
    idle_w: Annotated[float, Bounds(0, MAX_CHIP_W, "W")] = Field(description="power when no workload is scheduled [W]")
    # Junction limits: data-centre parts throttle at 83-105 C; AEC-Q100 grade 0 silicon is
    # rated to 150 C (ASSUMPTION: no part throttles below 40 C or runs above 150 C).
    throttle_temp_c: Annotated[float, Bounds(40, 150, "degC")] = Field(
        description="junction temperature where clocks slow [degC]")
    shutdown_temp_c: Annotated[float, Bounds(40, 150, "degC")] = Field(
        description="junction temperature of thermal shutdown [degC]")
    # Package resistances: a 1.2 kW GPU is ~0.01 K/W, a small ASIC ~1 K/W (ASSUMPTION: 1e-4
    # to 10 K/W spans every package that needs a cold plate).
    r_jc_k_per_w: Annotated[float, Bounds(1e-4, 10, "K/W")] = Field(description="junction to case (lid) resistance [K/W]")
    r_tim_k_per_w: Annotated[float, Bounds(1e-5, 10, "K/W")] = Field(
        description="case to cold-plate TIM resistance [K/W]")
    c_junction_j_per_k: Capacity = Field(description="heat capacity of die and lid [J/K]")
    c_plate_j_per_k: Capacity = Field(description="heat capacity of the cold-plate body [J/K]")
    cold_plate: str = Field(description="name of an entry in rack.cold_plates")
    throttles: bool = Field(default=True, description="whether the chip's firmware slows its clock when hot "
                            "(the shutdown protects it either way)")
    # Clock control (docs/model.md): GPU firmware clock-control laws are not published; the
    # ranges keep the explicit update stable at the largest time step (gain * 10 s * ~60 K
    # per unit clock < 2 needs gain < 0.003 at 10 s: the engine's steps are well inside).
    # The defaults are the catalogue's values (scenarios/racks/nvl72-class.toml gives them
    # for every chip type): a rack file that leaves them out gets the same.
    throttle_gain_per_k_s: Annotated[float, Bounds(1e-4, 0.5, "1/(K s)")] = Field(
        default=0.05, description="integral gain of the thermal clock control: clock fraction lost per second per "
                                  "kelvin of junction peak above throttle_temp_c [1/(K s)] (ASSUMPTION, docs/model.md)")
    throttle_hold_s: Annotated[float, Bounds(0.05, 60, "s")] = Field(
        default=1.0, description="decay time of the junction peak hold the clock control acts on [s] (ASSUMPTION)")
    min_clock_fraction: Annotated[float, Bounds(0.01, 1.0)] = Field(
        default=0.3, description="lowest clock the thermal control goes to, relative to nominal (ASSUMPTION: "
                                 "firmware clock floors are not published)")

    @model_validator(mode="before")
    @classmethod
    def _replaced(cls, data):
        old = ("throttle_hysteresis_k", "throttle_slew_per_s", "recovery_slew_per_s")
        if isinstance(data, dict):
            for key in old:
                if key in data:
                    raise ValueError(f"{key}: was replaced by throttle_gain_per_k_s and throttle_hold_s "
                                     "(a continuous clock controller, docs/model.md)")
        return data

    @model_validator(mode="after")
    def _limits(self):
        if self.shutdown_temp_c <= self.throttle_temp_c:
            raise ValueError("shutdown_temp_c must be above throttle_temp_c")
        if self.idle_w > self.tdp_w:
            raise ValueError("idle_w must not exceed tdp_w")
        return self


class ColdPlate(_Model):
    """Straight microchannel cold plate."""

    # Geometry: skived and etched microchannels go down to ~0.05 mm, minichannel plates up
    # to a few mm (ASSUMPTION: the bounds below admit every plate we know of, not typos).
    channel_width_mm: Annotated[float, Bounds(0.01, 20, "mm")]
    channel_height_mm: Annotated[float, Bounds(0.01, 50, "mm")]
    fin_width_mm: Annotated[float, Bounds(0.01, 20, "mm")]
    channel_length_mm: Annotated[float, Bounds(0.1, 1000, "mm")]
    channel_count: Annotated[int, Bounds(1, 100000)]
    port_inner_diameter_mm: Annotated[float, Bounds(0.5, 100, "mm")]
    base_thickness_mm: Annotated[float, Bounds(0.05, 50, "mm")]
    # Plate materials: stainless ~15, aluminium ~200, copper ~390, CVD diamond ~2000 W/(m K).
    solid_conductivity_w_per_m_k: Annotated[float, Bounds(1, 2500, "W/(m K)")]
    # down to 1e-3 mL so a test can make the plate's coolant negligible
    fluid_volume_ml: Annotated[float, Bounds(1e-3, 1e5, "mL")]
    fouling_k_per_w: Annotated[float, Bounds(0, 10, "K/W")] = Field(
        default=0.0, description="extra base-to-fluid resistance [K/W]")
    dp_scale: Annotated[float, Bounds(0.01, 1000)] = Field(
        default=1.0, description="multiplier on the plate pressure drop (calibration, clogging)")
    convective_resistance_scale: Scale = Field(
        default=1.0, description="multiplier on the plate's convective resistance 1/hA (calibration: fouling, a "
                                 "plate that transfers worse than its geometry says)")
    # Measured plates grow their drop as Q^1.7-2 (laminar channels alone ~1, turbulent 2).
    dp_flow_exponent: Optional[Annotated[float, Bounds(1, 2)]] = Field(
        default=None, description="measured d ln dp / d ln Q of the plate at dp_design_flow_lpm; "
                                  "default: the channel geometry's own")
    dp_design_flow_lpm: Optional[Annotated[float, Bounds(0.01, 1000, "L/min")]] = Field(
        default=None, description="flow [L/min] where the geometry's pressure drop anchors dp_flow_exponent")
    dp_design_temp_c: Annotated[float, Bounds(2, 95, "degC")] = Field(
        default=40.0, description="coolant temperature of that design point [degC] (default: the 40 degC point of "
                                  "the [LEN] tray table the catalogue's design flows come from)")

    @model_validator(mode="after")
    def _exponent_and_anchor(self):
        if (self.dp_flow_exponent is None) != (self.dp_design_flow_lpm is None):
            raise ValueError("dp_flow_exponent: give dp_flow_exponent and dp_design_flow_lpm together")
        return self


# Pipe and hose bores: 1 mm capillaries to DN500 facility mains; wall roughness from drawn
# tubing (1.5 um) to heavily corroded steel (~5 mm) (Moody chart range).
Bore = Annotated[float, Bounds(0.5, 500, "mm")]
Roughness = Annotated[float, Bounds(0, 5000, "um")]


class Tubing(_Model):
    length_m: Annotated[float, Bounds(0, 1000, "m")]  # ASSUMPTION: no hose or tube runs 1 km
    inner_diameter_mm: Bore
    k_fittings: LossK = Field(default=0.0, description="sum of fitting loss coefficients")
    roughness_um: Roughness = 1.5  # drawn tubing [MOODY44]


class QuickDisconnect(_Model):
    """One mated coupling; give its flow coefficient as Cv (US) or Kv (metric), not both."""

    # Couplings: UQD04-UQD16 have Cv ~0.3-10 (Staubli, CPC data sheets); 1000 is a pipe.
    cv_gpm_per_psi: Optional[Annotated[float, Bounds(0.01, 1000, "US gpm/psi^0.5")]] = Field(
        default=None, description="Cv: US gpm of water at 1 psi")
    kv_m3h_per_bar: Optional[Annotated[float, Bounds(0.01, 1000, "m3/h/bar^0.5")]] = Field(
        default=None, description="Kv: m3/h of water at 1 bar")
    inner_diameter_mm: Annotated[float, Bounds(0.5, 100, "mm")]

    @model_validator(mode="after")
    def _one_coefficient(self):
        if (self.cv_gpm_per_psi is None) == (self.kv_m3h_per_bar is None):
            raise ValueError("cv_gpm_per_psi: give exactly one of cv_gpm_per_psi and kv_m3h_per_bar")
        return self


class TrayType(_Model):
    paths: list[list[str]] = Field(description="parallel coolant paths, each a list of chip types in flow order")
    # A tray's power off the cold plates (NICs, DPUs, VRs, SSDs, fans): ~1-2 kW today
    # (ASSUMPTION: 20 kW is a whole tray's budget).
    aux_power_w: Annotated[float, Bounds(0, 20000, "W")] = Field(
        default=0.0, description="tray power not on cold plates (memory, NICs, VRs, fans) at full chip load [W]")
    aux_idle_power_w: Optional[Annotated[float, Bounds(0, 20000, "W")]] = Field(
        default=None, description="aux power with the tray's chips at their idle power [W]; aux power is linear in the "
                                  "tray's chip power through it and aux_power_w at TDP (default: constant aux_power_w)")
    aux_liquid_fraction: Fraction = Field(default=0.0, description="share of aux power picked up by the liquid")
    required_flow_lpm: Optional[Annotated[float, Bounds(0.01, 1000, "L/min")]] = Field(
        default=None, description="flow the tray needs, whatever the supply temperature [L/min]")
    required_flow_table: Optional[list[_finite_pair((2, 95, "degC"), (0.01, 1000, "L/min"))]] = Field(
        default=None, description="[rack supply temperature degC, flow L/min] points the tray needs: linear "
                                  "between points, held at the end values outside the table")
    tubing: Tubing
    quick_disconnect: QuickDisconnect
    branch_k: LossK = Field(default=2.0, description="tee losses at the two manifold ports (dividing + combining; "
                                                     "default ASSUMPTION: about 1 each, [CRANE] magnitudes)")
    balancing_k: LossK = Field(default=0.0, description="flow-balancing restrictor, K on the tubing velocity")
    loss_scale: Scale = Field(default=1.0, description="multiplier on the pressure drop of the tray's supply and "
                                                       "return branches (couplings, tubing, tees: calibration)")

    @model_validator(mode="after")
    def _aux(self):
        if self.aux_idle_power_w is not None and self.aux_idle_power_w > self.aux_power_w:
            raise ValueError("aux_idle_power_w: must not exceed aux_power_w")
        return self

    @field_validator("paths")
    @classmethod
    def _nonempty(cls, v):
        if not v or any(len(p) == 0 for p in v):
            raise ValueError("every tray needs at least one path with at least one chip")
        if len(v) > 64 or any(len(p) > 64 for p in v):  # ASSUMPTION: a tray has fewer chips
            raise ValueError("at most 64 paths of at most 64 chips each")
        return v

    @field_validator("required_flow_table")
    @classmethod
    def _flow_table(cls, v):
        if v is None:
            return v
        if len(v) < 2:
            raise ValueError("needs at least two [supply temperature degC, flow L/min] points")
        if any(b[0] <= a[0] for a, b in zip(v, v[1:])):
            raise ValueError("supply temperatures must increase")
        return v

    @model_validator(mode="after")
    def _one_requirement(self):
        if (self.required_flow_lpm is None) == (self.required_flow_table is None):
            raise ValueError("required_flow_lpm: give exactly one of required_flow_lpm and required_flow_table "
                             "(an included rack file may already set the other)")
        return self

    def required_flow_points(self) -> tuple[list[float], list[float]]:
        """The requirement as (supply temperatures [degC], flows [L/min]); a constant
        requirement is one point, the same at every temperature."""
        if self.required_flow_table is None:
            return [0.0], [self.required_flow_lpm]
        return [t for t, _ in self.required_flow_table], [q for _, q in self.required_flow_table]

    def required_flow_at(self, supply_temp_c: float) -> float:
        """Flow the tray needs at a rack supply temperature [L/min]: linear interpolation
        in the table, held at the end values outside it (a vendor table says nothing past
        its ends; the tray flow margin names a supply outside the table)."""
        temps, flows = self.required_flow_points()
        return float(np.interp(supply_temp_c, temps, flows))


class TrayGroup(_Model):
    type: str
    # a 52U rack holds at most ~50 trays (ASSUMPTION: 200 leaves room for dense sleds)
    count: Annotated[int, Bounds(1, 200)]


class Manifold(_Model):
    layout: Literal["direct_return", "reverse_return"] = "reverse_return"
    inner_diameter_mm: Bore
    port_spacing_mm: Annotated[float, Bounds(1, 5000, "mm")]
    roughness_um: Roughness = 1.5  # drawn tubing [MOODY44]
    loss_scale: Scale = Field(default=1.0, description="multiplier on the header segments' pressure drop "
                                                       "(calibration)")


class MarginLimits(_Model):
    """Limits of the pass/fail margins (``twin.margins``). A scenario's ``[margins]`` table
    overrides the rack definition's ``[rack.margin_limits]``, which overrides the defaults
    here (the design defaults: no throttling, no shutdown, every tray at its flow)."""

    gpu_junction_margin_k: Optional[Annotated[float, Bounds(-50, 50, "K")]] = Field(
        default=None, description="least margin below the throttle temperature, worst GPU [K] (default 0)")
    other_chip_junction_margin_k: Optional[Annotated[float, Bounds(-50, 50, "K")]] = Field(
        default=None, description="the same for CPUs and switches [K] (default 0)")
    gpu_throttled_s_max: Optional[Seconds] = Field(
        default=None, description="longest time any GPU may spend throttled [s] (default 0)")
    gpu_shutdowns: Optional[Annotated[int, Bounds(0, 100000)]] = Field(
        default=None, description="GPUs allowed to shut down (default 0)")
    rack_return_temp_max_c: Optional[Annotated[float, Bounds(20, 95, "degC")]] = Field(
        default=None, description="highest rack return temperature [degC] (default rack.max_return_temp_c)")
    tray_flow_ratio_min: Optional[Annotated[float, Bounds(0, 5)]] = Field(
        default=None, description="least tray flow over its required flow (default 1)")
    pump_head_margin_kpa: Optional[Annotated[float, Bounds(-MAX_KPA, MAX_KPA, "kPa")]] = Field(
        default=None, description="least pump head reserve [kPa] (default 0)")
    job_goodput_min: Optional[Fraction] = Field(
        default=None, description="least goodput of every training job (default 1)")
    cdu_capacity_margin_kw: Optional[Annotated[float, Bounds(-1e4, 1e4, "kW")]] = Field(
        default=None, description="a row: least rated CDU heat minus the row's peak liquid heat [kW] (default 0)")
    rack_flow_balance_min: Optional[Annotated[float, Bounds(0, 1)]] = Field(
        default=None, description="a row: least ratio of the worst-served rack's flow per requirement to the "
                                  "best-served rack's (default 0.9: ASSUMPTION, racks within 10 %)")


# The default limits: the design criteria of docs/model.md (no throttling, no shutdown,
# every tray at its flow, no head deficit, full goodput), not physics numbers.
MARGIN_DEFAULTS = dict(gpu_junction_margin_k=0.0, other_chip_junction_margin_k=0.0, gpu_throttled_s_max=0.0,
                       gpu_shutdowns=0, tray_flow_ratio_min=1.0, pump_head_margin_kpa=0.0, job_goodput_min=1.0,
                       cdu_capacity_margin_kw=0.0, rack_flow_balance_min=0.9)


class Rack(_Model):
    name: str = Field(min_length=1)
    source: str = ""
    chip_types: dict[Name, ChipType]
    cold_plates: dict[Name, ColdPlate]
    tray_types: dict[Name, TrayType]
    tray_stack: list[TrayGroup] = Field(min_length=1, description="tray groups in order from the manifold inlet end")
    manifold: Manifold
    supply_hose: Tubing
    return_hose: Tubing
    # PG25 loops are specified to ~65-70 C return; a limit at or above boiling is no limit.
    max_return_temp_c: Annotated[float, Bounds(20, 95, "degC")] = Field(
        default=65.0, description="limit on the rack return temperature [degC] (default ASSUMPTION: a CDU secondary "
                                  "return limit for PG25 loops, as scenarios/racks/nvl72-class.toml)")
    margin_limits: MarginLimits = Field(default_factory=MarginLimits, description="the rack design's margin limits")

    @model_validator(mode="after")
    def _references(self):
        if "gpu" not in self.chip_types:
            raise ValueError("chip_types: must define 'gpu'")
        for name, chip in self.chip_types.items():
            if chip.cold_plate not in self.cold_plates:
                raise ValueError(f"chip_types.{name}.cold_plate: no cold plate named {chip.cold_plate!r}")
        for name, tray in self.tray_types.items():
            for path in tray.paths:
                for chip in path:
                    if chip not in self.chip_types:
                        raise ValueError(f"tray_types.{name}.paths: no chip type named {chip!r}")
        for group in self.tray_stack:
            if group.type not in self.tray_types:
                raise ValueError(f"tray_stack: no tray type named {group.type!r}" + did_you_mean(group.type, self.tray_types))
        return self


# --------------------------------------------------------------------------- CDU, coolant, facility


class Pumps(_Model):
    # CDUs carry 1-4 pumps (ASSUMPTION: 16 is a generous ceiling)
    count: Annotated[int, Bounds(1, 16)] = Field(description="pumps installed, in parallel")
    running: Annotated[int, Bounds(1, 16)] = Field(
        description="pumps running (the rest are standby, behind check valves)")
    shutoff_head_kpa: Annotated[float, Bounds(1, MAX_KPA, "kPa")]
    rated_flow_lpm: Flow
    rated_head_kpa: Annotated[float, Bounds(0.1, MAX_KPA, "kPa")]
    head_scale: Scale = Field(default=1.0, description="multiplier on the head curve (calibration)")
    bep_flow_lpm: Optional[Flow] = Field(
        default=None, description="flow of best efficiency at full speed [L/min]; default: rated_flow_lpm")
    # Efficiencies: small centrifugal pumps reach 0.3-0.85 at their best point, motors
    # 0.7-0.97 (IEC 60034-30-1 IE1-IE5), drives 0.9-0.99 (ASSUMPTION on the lower ends).
    bep_efficiency: Annotated[float, Bounds(0.05, 1.0)] = Field(
        default=0.6, description="pump (hydraulic) efficiency at its best-efficiency point (default: ASSUMPTION, "
                                 "see scenarios/cdus/row-cdu-250kw.toml)")
    motor_efficiency: Annotated[float, Bounds(0.3, 1.0)] = Field(
        default=0.859, description="motor efficiency, shaft over electrical (default: [IEC-IE3] minimum, 2.2 kW 2-pole)")
    vfd_efficiency: Annotated[float, Bounds(0.5, 1.0)] = Field(
        default=0.97, description="drive efficiency, motor input over drive input (default: ASSUMPTION)")

    @model_validator(mode="after")
    def _check(self):
        if self.running > self.count:
            raise ValueError(f"running: {self.running} pumps running, {self.count} installed (count)")
        if self.rated_head_kpa >= self.shutoff_head_kpa:
            raise ValueError("rated_head_kpa: must be below shutoff_head_kpa")
        # the BEP parabola (twin.correlations.pump_efficiency_bep_parabola) falls to zero
        # at twice the BEP flow: the head curve must reach zero head before that
        runout_lpm = self.rated_flow_lpm * math.sqrt(self.shutoff_head_kpa / (self.shutoff_head_kpa - self.rated_head_kpa))
        bep = self.bep_flow_lpm if self.bep_flow_lpm is not None else self.rated_flow_lpm
        if runout_lpm >= 2.0 * bep:
            raise ValueError(f"bep_flow_lpm: must exceed half the curve's runout flow ({runout_lpm / 2:.0f} L/min): "
                             "the efficiency parabola is zero at twice the BEP flow")
        return self


class HeatExchanger(_Model):
    # CDUs are rated 20 kW (in-rack) to a few MW (row); 10 MW is a plant (ASSUMPTION)
    rated_heat_kw: Annotated[float, Bounds(0.1, 10000, "kW")]
    # plate exchangers are rated at 1-5 K approach (Vertiv CoolChip: kW at 4 K); below
    # 0.1 K the exchanger would be infinite, above 30 K it is not a CDU rating
    approach_k: Annotated[float, Bounds(0.1, 30, "K")]
    rated_secondary_flow_lpm: Flow
    rated_facility_flow_lpm: Flow
    rated_secondary_dp_kpa: Annotated[float, Bounds(0.1, 1000, "kPa")]
    ua_scale: Scale = Field(default=1.0, description="multiplier on UA (calibration, fouling)")
    flow_exponent: Optional[Annotated[float, Bounds(0, 1, lo_open=True)]] = Field(
        default=None, description="hA ~ flow^n; default from ht's Muley-Manglik")
    # Heat-transfer resistance split: plate exchangers are built symmetric, each side about
    # half of 1/UA (ASSUMPTION: no published split for CDU exchangers; the wall is thin copper
    # or stainless and is neglected). Each side's hA follows its own flow (twin.engine.hx_duty).
    secondary_resistance_share: Annotated[float, Bounds(0.05, 0.95)] = Field(
        default=0.5, description="share of the design 1/UA on the secondary side: hA_sec = UA / share, "
                                 "hA_fac = UA / (1 - share) (default ASSUMPTION: a symmetric plate exchanger)")
    volume_l: Annotated[float, Bounds(1e-3, 10000, "L")] = 2.0  # ASSUMPTION: a plate exchanger's secondary hold-up


class Cdu(_Model):
    name: str = "cdu"
    source: str = ""
    pumps: Pumps
    heat_exchanger: HeatExchanger
    # reservoirs hold ~10-100 L in a rack CDU, a few m3 in a row CDU (ASSUMPTION for the cap)
    reservoir_volume_l: Annotated[float, Bounds(1e-3, 10000, "L")]
    filter_dp_kpa: Annotated[float, Bounds(0, 1000, "kPa")] = Field(
        default=10.0, description="filter pressure drop at the pump rated flow (default ASSUMPTION: a clean 25 um "
                                  "filter, as scenarios/cdus/)")
    internal_volume_l: Annotated[float, Bounds(1e-3, 10000, "L")] = Field(
        default=5.0, description="piping volume inside the CDU (default ASSUMPTION, as scenarios/cdus/)")


class Coolant(_Model):
    name: Literal["water", "pg25"] = "pg25"


class Facility(_Model):
    # range FACILITY_SUPPLY_C, checked with the coolant's boiling point (_check_physics)
    supply_temp_c: Number = Field(description="facility water supply temperature [degC]")
    flow_lpm: Annotated[float, Bounds(1, MAX_FLOW_LPM, "L/min")] = Field(
        description="facility water flow through the CDU [L/min]")


class Controls(_Model):
    """CDU controls. ``pump_mode``: ``speed`` (fixed), ``flow`` (an ideal controller that
    holds ``flow_setpoint_lpm`` exactly) or ``pid`` (a PI controller on rack flow or rack
    differential pressure, sampled every ``control_interval_s``, with output limits, a
    speed ramp limit and anti-windup). ``supply_temp_control``: a PI controller on the
    facility valve holds the CDU's secondary supply temperature."""

    pump_mode: Literal["speed", "flow", "pid"] = "flow"
    # VFDs run pumps up to ~120 % of their base speed
    pump_speed_fraction: Annotated[float, Bounds(0, 1.2, lo_open=True)] = Field(
        default=1.0, description="pump speed in speed mode, relative to rated (default: rated speed, ASSUMPTION)")
    flow_setpoint_lpm: Flow = Field(
        default=180.0, description="rack flow setpoint [L/min] (default ASSUMPTION: 1.5 L/min per kW [OCP-FLOW] of a "
                                   "120 kW rack; every scenario of the catalogue sets its own)")
    failover_delay_s: Annotated[float, Bounds(0, 3600, "s")] = Field(
        default=5.0, description="from a pump trip to the standby pump running (default ASSUMPTION: detection and "
                                 "start-up of a CDU; the CDU files of scenarios/cdus/ give theirs)")
    # controllers sample every few ms (PLC scan) to minutes (ASSUMPTION for the bounds)
    control_interval_s: Annotated[float, Bounds(1e-3, 3600, "s")] = Field(
        default=1.0, description="sampling interval of the PI controllers [s] (default ASSUMPTION: a CDU PLC "
                                 "updating its loops once a second)")
    pid_variable: Literal["flow", "dp"] = "flow"
    dp_setpoint_kpa: Annotated[float, Bounds(0.1, MAX_KPA, "kPa")] = Field(
        default=80.0, description="rack differential pressure setpoint (pid on dp; default ASSUMPTION: about the "
                                  "reference rack's dP at its 150 L/min)")
    setpoint_changes: list[_finite_pair((0, MAX_TIME_S, "s"), (0.1, MAX_FLOW_LPM, "L/min or kPa"))] = Field(
        default_factory=list, description="[time_s, new setpoint] of the pump controller (L/min or kPa)")
    # controller gains (dimensionless per unit error) and integral times (ASSUMPTION: a gain
    # above 100 or an integral time beyond a day is a typo, not a tuning). The default tunings
    # are ours (ASSUMPTION), derived in twin.controls; the actuator limits (speeds, ramps,
    # valve travel) are hardware values (ASSUMPTION) the CDU files of scenarios/cdus/ give.
    pump_kp: Annotated[float, Bounds(0, 100, lo_open=True)] = Field(
        default=0.05, description="speed fraction per unit relative error (ASSUMPTION: tuning, twin.controls)")
    pump_ti_s: Annotated[float, Bounds(1e-3, 86400, "s")] = Field(
        default=0.25, description="integral time [s] (ASSUMPTION: tuning, twin.controls)")
    pump_speed_min: Fraction = Field(
        default=0.15, description="lowest speed of the pump controller (ASSUMPTION: a VFD's minimum speed)")
    pump_speed_max: Annotated[float, Bounds(0, 1.2, lo_open=True)] = Field(
        default=1.0, description="highest speed of the pump controller (ASSUMPTION: no overspeed past rated)")
    pump_ramp_per_s: Annotated[float, Bounds(0, 100, "1/s", lo_open=True)] = Field(
        default=0.2, description="VFD ramp limit, speed fraction per second (ASSUMPTION: 0 to full in 5 s)")
    supply_temp_control: StrictBool = False
    supply_temp_setpoint_c: Annotated[float, Bounds(*SECONDARY_SUPPLY_C, "degC")] = Field(
        default=35.0, description="CDU secondary supply setpoint [degC] (ASSUMPTION: W32 plus a few K of approach)")
    supply_temp_changes: list[_finite_pair((0, MAX_TIME_S, "s"), (*SECONDARY_SUPPLY_C, "degC"))] = Field(
        default_factory=list, description="[time_s, setpoint degC]")
    valve_kp: Annotated[float, Bounds(0, 100, "1/K", lo_open=True)] = Field(
        default=0.08, description="valve position per K of error (ASSUMPTION: tuning, twin.controls)")
    valve_ti_s: Annotated[float, Bounds(1e-3, 86400, "s")] = Field(
        default=40.0, description="integral time [s] (ASSUMPTION: tuning, twin.controls)")
    valve_min_position: Fraction = Field(
        default=0.05, description="least facility valve opening (ASSUMPTION: a valve kept cracked open)")
    valve_ramp_per_s: Annotated[float, Bounds(0, 100, "1/s", lo_open=True)] = Field(
        default=0.05, description="actuator stroke limit, position per second (ASSUMPTION: a 20 s full stroke)")

    @model_validator(mode="after")
    def _limits(self):
        if self.pump_speed_min > self.pump_speed_max:
            raise ValueError("pump_speed_min: must not exceed pump_speed_max")
        return self


FAULT_KINDS = ("pump_trip", "cdu_trip", "facility_supply_temp", "facility_flow", "plate_clog",
               "tray_isolation", "restriction", "plate_fouling", "sensor_offset")
# plate_clog: the clog model scales a plate's dP by 1/(1-f)^2; at f = 0.99 that is 1e4 and
# the plate carries almost nothing: beyond it, model a tray isolation (ASSUMPTION).
MAX_CLOG = 0.99
# sensor_offset: the largest offset of a miscalibrated but working sensor, by what the
# channel measures (its name's last part); beyond these a sensor is broken (ASSUMPTION).
SENSOR_OFFSET_MAX = (("temp", 50.0, "K"), ("flow", 1000.0, "L/min"), ("dp", 1000.0, "kPa"),
                     ("power", 1e6, "W"), ("heat", 1e6, "W"), ("", 1.0, ""))
EndTime = Annotated[float, Bounds(0, MAX_TIME_S, "s", lo_open=True, inf_ok=True)]


class Fault(_Model):
    """A fault on the schedule. ``target`` names what it hits by instance path: a pump
    (``cdu1/pump0``; ``cdu/pump0`` with one CDU), a CDU for a ``cdu_trip`` (``cdu2``;
    default: every CDU), a chip's cold plate (``rack01/tray03/gpu1``; ``tray03/gpu1`` with
    one rack), a tray (``rack01/tray05``), a hose, pipe or tray branch for a
    ``restriction`` (``rack03/supply_hose``, ``rack01/tray05/supply``) or a telemetry
    channel (``rack/supply_temp``)."""

    kind: Literal[FAULT_KINDS]
    start_s: Seconds
    end_s: EndTime = Field(default=math.inf, description="when the fault clears (default: never)")
    target: str = ""
    severity: Fraction = Field(
        default=1.0, description="plate_clog: share of channels blocked; restriction: share of the bore's area "
                                 "blocked (the drop grows as 1/(1-f)^2); facility_flow: share of flow lost")
    value: Number = Field(
        default=0.0, description="facility_supply_temp: supply [degC]; sensor_offset: offset in the channel's units; "
                                 "plate_fouling: the convective-resistance multiplier reached at end_s")
    pumps_run: StrictBool = Field(default=True, description="cdu_trip: pumps keep circulating (on UPS) while heat rejection is lost")
    member: str = Field(default="", description="sensor_offset: the one member of a per-instance channel that reads "
                                                "off (rack01/tray05 of tray/return_temp); default: every member")

    @model_validator(mode="after")
    def _check(self):
        if self.end_s <= self.start_s:
            raise ValueError("end_s: must be after start_s")
        if self.kind in ("plate_clog", "restriction") and self.severity > MAX_CLOG:
            raise ValueError(f"severity: {_num(self.severity)} outside 0-{MAX_CLOG:g} for a {self.kind} (a fully "
                             "blocked plate or branch is a tray_isolation)")
        lo, hi = FACILITY_SUPPLY_C
        if self.kind == "facility_supply_temp" and not lo <= self.value <= hi:
            raise ValueError(f"value: {_num(self.value)} degC outside the facility supply range {lo:g}-{hi:g} degC")
        if self.member and self.kind != "sensor_offset":
            raise ValueError(f"member: only a sensor_offset names a member, not a {self.kind}")
        if self.kind == "sensor_offset":
            quantity = self.target.rsplit("/", 1)[-1]
            limit, unit = next((m, u) for key, m, u in SENSOR_OFFSET_MAX if key in quantity)
            if abs(self.value) > limit:
                raise ValueError(f"value: {_num(self.value)} outside -{_num(limit)} to {_num(limit)} {unit} for an "
                                 f"offset of {self.target!r}")
        return self


# --------------------------------------------------------------------------- workload


class ScheduleEntry(_Model):
    """One entry of the chip power schedule; later entries override earlier ones."""

    chips: str = Field(description="chip type the entry applies to")
    kind: Literal["constant", "square"] = "constant"
    start_s: Seconds = 0.0
    end_s: EndTime = math.inf
    # Default levels (ASSUMPTION): a constant entry at TDP; a square wave between TDP and 30 %
    # of it, half the period each, once a second (training swings run at 0.2-3 Hz [PWR-STAB]).
    fraction_of_tdp: TdpFraction = 1.0  # ASSUMPTION (above)
    high_fraction_of_tdp: TdpFraction = 1.0  # ASSUMPTION (above)
    low_fraction_of_tdp: TdpFraction = 0.3  # ASSUMPTION (above)
    # a square wave faster than 1 kHz averages out inside any thermal step (ASSUMPTION for the
    # lower bound)
    period_s: Annotated[float, Bounds(1e-3, 1e6, "s")] = 1.0
    duty: Annotated[float, Bounds(0, 1, lo_open=True, hi_open=True)] = 0.5  # ASSUMPTION (above)

    @model_validator(mode="after")
    def _window(self):
        if self.end_s <= self.start_s:
            raise ValueError("end_s: must be after start_s")
        return self


class _Job(_Model):
    """What every job has: a name, a number of GPUs, when it is submitted, how long it runs."""

    name: str = Field(min_length=1)
    gpus: Annotated[int, Bounds(1, 100000)]  # and no more than the rack has (_check_physics)
    start_s: Seconds = Field(default=0.0, description="submission time [s]")
    duration_s: EndTime = math.inf


class TrainingJob(_Job):
    """A synchronous training job: every step a compute phase near TDP, then a
    communication phase far below it; the job waits for its slowest GPU."""

    kind: Literal["training"] = "training"
    # large-model steps take 0.1-10 s; below 10 ms the step-by-step reference would spend
    # a DES event every few ms (ASSUMPTION for both bounds)
    step_time_s: Annotated[float, Bounds(0.01, 1e5, "s")] = Field(
        description="nominal step time, compute plus communication [s]")
    # Default phase powers and shares: a compute phase near TDP and a communication phase
    # far below it [PWR-STAB]; the values are ours, ASSUMPTION (no published per-phase
    # powers), the ones the training scenarios of scenarios/ write out with their reasons.
    compute_fraction: Annotated[float, Bounds(0, 1, lo_open=True)] = Field(
        default=0.7, description="share of the step spent computing (default ASSUMPTION, above)")
    compute_power_fraction_of_tdp: TdpFraction = 1.0  # ASSUMPTION (above)
    comm_power_fraction_of_tdp: TdpFraction = 0.35  # ASSUMPTION (above)
    # a checkpoint more often than every second is not a checkpoint (ASSUMPTION)
    checkpoint_interval_s: Annotated[float, Bounds(1, MAX_TIME_S, "s", inf_ok=True)] = math.inf
    checkpoint_duration_s: Annotated[float, Bounds(0, 86400, "s")] = 0.0
    checkpoint_power_fraction_of_tdp: TdpFraction = 0.2  # ASSUMPTION: GPUs near idle while state is written
    # Llama 3 405B training saw ~8 interruptions a day on 16k GPUs (Meta, 2024); one a
    # minute is a broken job, not a statistic (ASSUMPTION for the cap)
    failures_per_day: Annotated[float, Bounds(0, 1440, "1/day")] = Field(
        default=0.0, description="job interruptions per day (exponential)")
    restart_time_s: Annotated[float, Bounds(0, 86400, "s")] = 600.0  # ASSUMPTION: reload and warm-up, 10 min
    restart_power_fraction_of_tdp: TdpFraction = 0.1  # ASSUMPTION: GPUs about idle while the job restarts
    straggler_count: Annotated[int, Bounds(0, 100000)] = 0
    straggler_speed: Annotated[float, Bounds(0.1, 1)] = Field(
        default=0.97, description="straggler compute speed relative to the rest (default ASSUMPTION: 3 % slow)")
    power_jitter_fraction: Annotated[float, Bounds(0, 0.2)] = Field(
        default=0.0, description="std dev of per-GPU power (silicon variation)")

    @model_validator(mode="after")
    def _check(self):
        if self.straggler_count > self.gpus:
            raise ValueError(f"straggler_count: {self.straggler_count} stragglers, the job has {self.gpus} GPUs")
        return self


class InferenceJob(_Job):
    """Inference serving: load follows a daily curve; power follows load."""

    kind: Literal["inference"]
    start_hour: Annotated[float, Bounds(0, 24, "h", hi_open=True)] = Field(default=0.0, description="time of day at t = 0 [h]")
    load_curve: list[_finite_pair((0, 24, "h"), (0, 1))] = Field(
        description="[hour, load 0-1] points, linear between, wrapping at 24 h")
    full_load_power_fraction_of_tdp: TdpFraction = 0.9  # ASSUMPTION: serving rarely reaches TDP
    # one DES event per update: below a second the curve (hourly points) gains nothing;
    # default ASSUMPTION: the load is re-read every 5 min
    update_interval_s: Annotated[float, Bounds(1, 86400, "s")] = 300.0

    @field_validator("load_curve")
    @classmethod
    def _curve(cls, v):
        if len(v) < 2 or any(not 0 <= h <= 24 or not 0 <= x <= 1 for h, x in v):
            raise ValueError("needs at least two [hour 0-24, load 0-1] points")
        if any(b[0] <= a[0] for a, b in zip(v, v[1:])):
            raise ValueError("hours must increase")
        return v


class IdleJob(_Job):
    """GPUs held by a job that draws a constant power (reserved, idle, or a burn-in)."""

    kind: Literal["idle"]
    power_fraction_of_tdp: Optional[TdpFraction] = Field(default=None, description="default: idle_w")


class Replay(_Model):
    """Drive chip power from a measured trace instead of jobs."""

    file: str = Field(description="CSV with a time column [s], or a telemetry HDF5; relative to the file that "
                                  "names it (given by --set or in Python: to the working directory)")
    column: str = Field(default="", description="CSV column of power [W]")
    time_column: str = Field(default="time")
    peak_fraction_of_tdp: Annotated[float, Bounds(0, 1.5, lo_open=True)] = Field(
        default=1.0, description="chip power at the trace's maximum (default ASSUMPTION: the trace's peak is TDP)")
    start_s: Seconds = Field(default=0.0, description="trace time at t = 0")


class Workload(_Model):
    mode: Literal["waveform", "step_by_step"] = Field(
        default="waveform", description="training phases as kernel waveforms, or one DES event per phase (reference)")
    seed: Annotated[int, Bounds(0, 2**32 - 1)] = 0  # numpy's generators take non-negative seeds
    gpu_power_cap_w: Annotated[float, Bounds(1, MAX_CHIP_W, "W", inf_ok=True)] = math.inf
    schedule: list[ScheduleEntry] = Field(default_factory=list)
    jobs: list[Annotated[Union[TrainingJob, InferenceJob, IdleJob], Field(discriminator="kind")]] = Field(default_factory=list)
    replay: Optional[Replay] = None


# A power peak is resolved (ASSUMPTION, measured below) when the thermal step fits into its high-power phase twice:
# then at least one step lies wholly inside it, whatever the alignment, and its step-mean
# power is the peak's. Measured (docs/model.md, *Time step*): faults/w45-hot-day, whose
# compute phases last 0.467 s, gives a GPU junction margin of 10.504 K at 0.05 s, 10.512
# at 0.1, 10.534 at 0.2 (below half the phase), then 10.817 at 0.25, 11.396 at 0.5 and
# 13.186 K at 1 s: a coarser step averages the peaks away and overstates the margin.
STEPS_PER_PEAK = 2


def fastest_peak(workload: Workload, chip_types=("gpu",)):
    """(seconds, what) of the shortest high-power phase the workload repeats: a training
    job's compute phase (its step time times its compute share, or the communication
    share where that draws more), a square schedule's high half; None when nothing
    repeats faster than the thermal loop follows (inference curves, constant entries) or
    the power comes from a replayed trace (its own sampling). Of the chips of
    ``chip_types``: jobs run on GPUs, schedule entries on their ``chips``."""
    out = []
    for j in workload.jobs if "gpu" in chip_types else ():
        if isinstance(j, TrainingJob):
            high = j.compute_fraction if j.compute_power_fraction_of_tdp >= j.comm_power_fraction_of_tdp \
                else 1.0 - j.compute_fraction
            if high < 1.0:
                out.append((j.step_time_s * high, f"job {j.name}'s {'compute' if high == j.compute_fraction else 'communication'} phase"))
    for i, e in enumerate(workload.schedule):
        if e.kind == "square" and e.high_fraction_of_tdp != e.low_fraction_of_tdp and e.chips in chip_types:
            high = e.duty if e.high_fraction_of_tdp > e.low_fraction_of_tdp else 1.0 - e.duty
            out.append((e.period_s * high, f"schedule.{i}'s high half-wave"))
    return min(out, default=None, key=lambda x: x[0])


class Simulation(_Model):
    duration_s: Annotated[float, Bounds(0, MAX_TIME_S, "s", lo_open=True)]
    # The fastest dynamics are the junctions' (Cj * R_jb ~ 5 J/K * 0.016 K/W = 0.08 s for
    # the reference GPU) and the step update is exact for any step (docs/model.md), so a
    # step below 1 ms resolves nothing more; 10 s is the coarsest the loop transport allows.
    time_step_s: Annotated[float, Bounds(1e-3, 10, "s")] = 0.1
    output_interval_s: Annotated[float, Bounds(1e-3, 86400, "s")] = 1.0
    # re-solve at least hourly: coolant viscosity follows temperature (ASSUMPTION)
    hydraulic_update_s: Annotated[float, Bounds(1e-3, 3600, "s")] = Field(
        default=10.0, description="interval of network re-solves")
    # range: the coolant tables' (_check_physics)
    initial_temp_c: Optional[Number] = Field(default=None, description="start temperature; default: steady state at t=0")

    @model_validator(mode="after")
    def _multiples(self):
        for name in ("output_interval_s", "hydraulic_update_s"):
            ratio = getattr(self, name) / self.time_step_s
            if abs(ratio - round(ratio)) > 1e-9 or round(ratio) < 1:
                raise ValueError(f"{name}: must be a whole multiple of time_step_s")
        return self


# --------------------------------------------------------------------------- rows, instances


class RowManifold(_Model):
    """The row's supply and return headers: one port pair per rack, racks in row order
    from the CDU end."""

    layout: Literal["direct_return", "reverse_return"] = "reverse_return"
    inner_diameter_mm: Bore
    # a rack's pitch along the row: 600 mm wide racks, 600-800 mm with side cars
    # (ASSUMPTION: 600 mm, the OCP ORV3 / EIA-310 19-inch rack width [OCP-MGX])
    rack_spacing_mm: Annotated[float, Bounds(100, 5000, "mm")] = 600.0
    roughness_um: Roughness = 1.5  # drawn tubing [MOODY44]


class RowRack(_Model):
    """One rack position of the row (or ``count`` identical ones in a run)."""

    name: Optional[Name] = Field(default=None, description="instance name (default rack01, rack02, ... in row order)")
    rack: Optional["Rack"] = Field(default=None, description="its rack definition (default: the scenario's [rack]; "
                                                              "include = FILE takes a rack file's [rack])")
    count: Annotated[int, Bounds(1, 200)] = Field(default=1, description="identical racks at consecutive positions")
    workload: Optional["Workload"] = Field(default=None, description="its workload (default: the scenario's)")
    phase_offset_s: Seconds = Field(default=0.0, description="its workload runs this much later than the "
                                                             "scenario's timeline [s]")


class Row(_Model):
    """Racks on a row manifold fed by ``cdu_count`` CDUs in parallel (each the scenario's
    ``[cdu]``), all on the scenario's facility water."""

    racks: list[RowRack] = Field(min_length=1)
    manifold: RowManifold
    # an in-row CDU serves 8-12 racks (ASSUMPTION for the cap: 64 racks on one row loop)
    cdu_count: Annotated[int, Bounds(1, 16)] = Field(default=1, description="CDUs in parallel on the row headers")
    cdu_pipe: "Tubing" = Field(default_factory=lambda: Tubing(length_m=3.0, inner_diameter_mm=100.0, k_fittings=2.0),
                               description="each CDU's supply (and return) connection to the row headers "
                                           "(default ASSUMPTION: 3 m of DN100 with two elbows, [CRANE] magnitudes)")
    phase_step_s: Seconds = Field(default=0.0, description="each rack's workload starts this much after the "
                                                           "previous rack's, on top of its phase_offset_s [s]")


class Spread(_Model):
    """Unit-to-unit spread: every instance matching ``instances`` draws ``parameter`` as
    its value times a random factor (``twin.components.base.draw_factor``), reproducible
    from ``seed`` and the instance path."""

    instances: str = Field(min_length=1, description="instance path pattern, e.g. rack01/tray*/gpu*")
    parameter: str = Field(min_length=1, description="a parameter of those instances, e.g. r_tim_k_per_w")
    distribution: Literal["normal", "lognormal", "uniform"] = "normal"
    # a normal draw is truncated at 3 sd: below 1/3 every drawn value keeps its sign
    relative_spread: Annotated[float, Bounds(0.0, 1.0)] = Field(
        description="normal: sd over the nominal; lognormal: sd of ln; uniform: half-width over the nominal")
    seed: Annotated[int, Bounds(0, 2**32 - 1)] = 0

    @model_validator(mode="after")
    def _positive(self):
        if self.distribution == "normal" and self.relative_spread >= 1.0 / 3.0:
            raise ValueError("relative_spread: a normal spread must stay below 1/3 (draws are truncated at 3 sd "
                             "and must keep the parameter's sign); use lognormal")
        return self


OverrideValue = Union[StrictBool, int, float, str]


class Scenario(_Model):
    name: str = Field(min_length=1)
    description: str = ""
    rack: Optional[Rack] = Field(default=None, description="the rack (a row: the default rack of its positions)")
    row: Optional[Row] = Field(default=None, description="racks on a row manifold (default: the one rack on the CDU)")
    cdu: Cdu
    coolant: Coolant = Coolant()
    facility: Facility
    controls: Controls = Controls()
    workload: Workload = Workload()
    faults: list[Fault] = Field(default_factory=list)
    simulation: Simulation
    margins: MarginLimits = Field(default_factory=MarginLimits, description="this scenario's margin limits")
    overrides: dict[str, dict[str, OverrideValue]] = Field(
        default_factory=dict, description="per-instance parameters: instance path (wildcards * and ?) -> "
                                          "{parameter: value}, e.g. [overrides.\"rack01/tray09/gpu1\"]")
    spread: list[Spread] = Field(default_factory=list, description="unit-to-unit spread of instance parameters")

    # Set by load_scenario: where the scenario came from (not part of the data).
    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="after")
    def _racks(self):
        if self.row is None:
            if self.rack is None:
                raise ValueError("rack: missing (a scenario needs a [rack], or a [row] of racks)")
            return self
        if self.rack is None:
            first = next((r.rack for r in self.row.racks if r.rack is not None), None)
            if first is None or any(r.rack is None for r in self.row.racks):
                raise ValueError("rack: missing (row positions without their own rack take the scenario's [rack])")
            self.rack = first
        names = [n for n, *_ in self.rack_entries()]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"row.racks: rack name {dup[0]!r} used twice")
        return self

    def rack_entries(self) -> list:
        """Every rack of the scenario in row order: (instance name, Rack, Workload,
        workload phase offset [s]). A single-rack scenario has one, ``rack01``."""
        if self.row is None:
            return [("rack01", self.rack, self.workload, 0.0)]
        out = []
        for entry in self.row.racks:
            for k in range(entry.count):
                i = len(out)
                name = entry.name if entry.name and entry.count == 1 else (
                    f"{entry.name}-{k + 1}" if entry.name else f"rack{i + 1:02d}")
                out.append((name, entry.rack or self.rack, entry.workload or self.workload,
                            entry.phase_offset_s + i * self.row.phase_step_s))
        return out

    @property
    def cdu_count(self) -> int:
        return 1 if self.row is None else self.row.cdu_count

    def margin_limit(self, name: str):
        """The limit of a margin: the scenario's, else the rack's, else the default."""
        for table in (self.margins, self.rack.margin_limits):
            value = getattr(table, name)
            if value is not None:
                return value
        if name == "rack_return_temp_max_c":
            return self.rack.max_return_temp_c
        return MARGIN_DEFAULTS[name]

    def to_toml(self) -> str:
        """The resolved scenario as TOML (includes merged, overrides applied)."""
        return tomli_w.dumps(_toml_safe(self.model_dump(mode="python")))

    def with_overrides(self, overrides: dict) -> "Scenario":
        """A new scenario with dotted-key overrides applied, validated."""
        data = self.model_dump(mode="python")
        for key, value in overrides.items():
            set_dotted(data, key, value, "<overrides>")
        return _validate(data, "<overrides>")


def _toml_safe(obj):
    if isinstance(obj, dict):
        return {k: _toml_safe(v) for k, v in obj.items() if v is not None}
    if isinstance(obj, list):
        return [_toml_safe(v) for v in obj]
    return obj


# --------------------------------------------------------------------------- loading
# Reading the files (TOML, includes, overrides) is twin.sources; this half validates.


def _unwrap(ann, node):
    """The type an annotation validates ``node`` with, through Annotated, Optional and the
    jobs' union (picked by ``kind``)."""
    origin = typing.get_origin(ann)
    if origin is Annotated:
        return _unwrap(typing.get_args(ann)[0], node)
    if origin is Union:
        for arg in typing.get_args(ann):
            arg = _unwrap(arg, node)
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                kind = arg.model_fields.get("kind")
                if kind is None or not isinstance(node, dict) or node.get("kind") in typing.get_args(kind.annotation):
                    return arg
        return None
    return ann


def _child(node, key):
    """``node[key]`` of the raw data (a table or a list), or None where there is none."""
    if isinstance(node, dict):
        return node.get(key)
    if isinstance(node, list) and isinstance(key, int) and 0 <= key < len(node):
        return node[key]
    return None


def _table_at(parts, data, root=None):
    """The model class of the table at ``parts`` of the raw data of a ``root`` model
    (default the scenario; None where there is no table there: a value, an unknown key)."""
    ann, node = root or Scenario, data
    for p in parts:
        ann = _unwrap(ann, node)
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            if p not in ann.model_fields:
                return None
            ann = ann.model_fields[p].annotation
        elif typing.get_origin(ann) in (list, dict):
            ann = typing.get_args(ann)[-1]
        else:
            return None
        node = _child(node, p)
    ann = _unwrap(ann, node)
    return ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None


def _fields_at(parts, data, root=None) -> list:
    """The field names of the table at ``parts`` of a ``root`` model (default the
    scenario; for near matches of an unknown key)."""
    table = _table_at(parts, data, root)
    return list(table.model_fields) if table is not None else []


def field_at(key: str, data: dict):
    """The schema field (pydantic ``FieldInfo``) of a dotted key in the raw data
    ``data``, or None where the key names no field (a list element, a table of
    per-instance overrides, an unknown key)."""
    parts = [int(p) if p.lstrip("-").isdigit() else p for p in key_parts(key)]
    table = _table_at(parts[:-1], data)
    return table.model_fields.get(parts[-1]) if table is not None else None


def field_bounds(info) -> Optional[Bounds]:
    """The :class:`Bounds` of a schema field (``FieldInfo``), also inside ``Optional``."""
    todo = list(getattr(info, "metadata", ())) + [getattr(info, "annotation", None)]
    while todo:
        x = todo.pop(0)
        if isinstance(x, Bounds):
            return x
        if typing.get_origin(x) in (Annotated, Union):
            todo += list(typing.get_args(x)[1:] if typing.get_origin(x) is Annotated else typing.get_args(x))
    return None


def _explain(err: dict, data, root=None) -> tuple[tuple, str]:
    """A pydantic error of a ``root`` model (default the scenario) as (location without
    union tags, message in the project's words)."""
    loc, node = [], data
    for p in err["loc"]:
        if isinstance(node, dict) and p not in node and node.get("kind") == p:
            continue  # the tag pydantic adds inside a discriminated union
        if p == "[key]":
            continue  # a table key that is not a valid name: the key is the field
        loc.append(p)
        node = _child(node, p)
    kind, ctx, got = err["type"], err.get("ctx") or {}, show(err.get("input"))
    loc = tuple(loc)
    if kind == "extra_forbidden":
        msg = "unknown key" + did_you_mean(loc[-1], _fields_at(loc[:-1], data, root))
    elif kind == "missing":
        msg = "required field is missing"
    elif kind in ("float_parsing", "float_type"):
        msg = f"expected a number, got {got}"
    elif kind in ("int_parsing", "int_type", "int_from_float"):
        msg = f"expected a whole number, got {got}"
    elif kind == "finite_number":
        msg = f"must be a finite number, got {err.get('input')}"
    elif kind == "string_type":
        msg = f"expected text, got {got}"
    elif kind in ("bool_type", "bool_parsing"):
        msg = f"expected true or false, got {got}"
    elif kind in ("dict_type", "model_type", "model_attributes_type"):
        msg = f"expected a table, got {got}"
    elif kind in ("list_type", "tuple_type"):
        msg = f"expected a list, got {got}"
    elif kind == "too_long" or kind == "too_short" and ctx.get("field_type") == "Tuple":
        msg = f"expected {ctx.get('max_length', ctx.get('min_length'))} values, got {ctx.get('actual_length')}"
    elif kind in ("too_short", "string_too_short"):
        msg = "must not be empty"
    elif kind == "literal_error":
        msg = f"must be one of {ctx.get('expected')}, got {got}"
    elif kind == "union_tag_invalid":
        msg = f"kind must be one of {ctx.get('expected_tags')}, got {show(ctx.get('tag'))}"
    elif kind == "union_tag_not_found":
        msg = f"needs a {str(ctx.get('discriminator', 'kind')).strip(chr(39))}"
    elif kind == "string_pattern_mismatch":
        msg = f"{got} is not a valid name: letters, digits, '_' and '-', starting with a letter"
    elif kind == "value_error":
        msg = str(ctx.get("error", err["msg"]))
        head, _, rest = msg.partition(": ")
        if rest and head.split(".")[0] in _fields_at(loc, data, root):  # "field: message" from a model validator
            loc, msg = loc + tuple(head.split(".")), rest
    else:
        msg = err["msg"].replace("Input should be", "must be")
    return loc, msg


def validate_as(model: type, data: dict, file):
    """``data`` validated as ``model`` (a pydantic model of a file other than a scenario:
    a calibration spec, a sweep); the first error as :class:`TwinInputError` naming
    ``file`` and the dotted field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        loc, msg = _explain(exc.errors()[0], data, model)
        raise TwinInputError(file, ".".join(str(p) for p in loc), msg) from None
    except RecursionError:
        raise TwinInputError(file, "", "tables or arrays nested too deeply") from None


def _validate(data: dict, file, origins: Optional[dict] = None) -> Scenario:
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        loc, msg = _explain(exc.errors()[0], data)
        loc = tuple(loc)
        field = ".".join(str(p) for p in loc)
        raise TwinInputError(where(origins, field, file), field, msg + _options_nearby(origins, loc, file)) from None
    except RecursionError:
        raise TwinInputError(file, "", "tables or arrays nested too deeply") from None
    _check_physics(scenario, file, origins)
    return scenario


def _options_nearby(origins: Optional[dict], loc: tuple, file) -> str:
    """`` (given --set KEY, ...)`` when the field in error was set by a file but an option
    (``--set``, ``--duration``) set another field of its table: a check across fields
    (``pump_speed_min`` against ``pump_speed_max``) that the option made fail names the
    file's field, and the option that moved the other one would go unmentioned."""
    if not origins or len(loc) < 2 or not isinstance(where(origins, ".".join(map(str, loc)), file), Path):
        return ""
    section = tuple(loc[:-1])
    options = sorted({option_of(o) for k, o in origins.items()
                      if tuple(k[:len(section)]) == section and tuple(k) != tuple(loc)} - {""})
    return f" (given {', '.join(options)})" if options else ""


def _check_physics(s: Scenario, file, origins: Optional[dict] = None) -> None:
    """Range checks that need more than one field: temperatures against the coolant."""
    from .coolant import coolant_table

    def fail(field, msg, among=()):
        """Report ``field``; or, where several fields meet (``among``), the one an option set."""
        field = next((f for f in among if not isinstance(where(origins, f, file), Path)), field)
        raise TwinInputError(where(origins, field, file), field,
                             msg + _options_nearby(origins, tuple(field.split(".")), file))

    table = coolant_table(s.coolant.name)
    t, (lo, hi) = s.facility.supply_temp_c, FACILITY_SUPPLY_C
    if t >= table.boiling_temp_c:
        fail("facility.supply_temp_c", f"{t:g} degC is at or above the boiling point of {s.coolant.name} "
                                       f"({table.boiling_temp_c:.1f} degC at 1 atm); supported {lo:g}-{hi:g} degC")
    if not lo <= t <= hi:
        fail("facility.supply_temp_c", f"{t:g} degC outside {lo:g}-{hi:g} degC (ASHRAE W17-W45 and W+)")
    _check_design_point(s, table, fail)
    if s.simulation.output_interval_s > s.simulation.duration_s:
        fail("simulation.output_interval_s", f"{_num(s.simulation.output_interval_s)} s is longer than the run "
                                             f"({_num(s.simulation.duration_s)} s): no telemetry row would be written")
    lo, hi = table.temp_c[0] + 1.0, table.temp_c[-1] - 30.0
    if s.simulation.initial_temp_c is not None and not lo <= s.simulation.initial_temp_c <= hi:
        fail("simulation.initial_temp_c", f"{s.simulation.initial_temp_c:g} degC outside the supported "
                                          f"{lo:g}-{hi:g} degC")
    for name, rack, wl, _ in s.rack_entries():
        pre = "workload" if wl is s.workload else f"row.racks.{_row_index(s, name)}.workload"
        for i, e in enumerate(wl.schedule):
            if e.chips not in rack.chip_types:
                fail(f"{pre}.schedule.{i}.chips", f"no chip type named {e.chips!r}"
                     + (f" in {name} ({rack.name})" if s.row is not None else "") + did_you_mean(e.chips, rack.chip_types))
            if e.chips == "gpu" and (wl.jobs or wl.replay):
                fail(f"{pre}.schedule.{i}.chips", "GPU power comes from workload.jobs or replay here")
        n_gpu = sum(g.count * sum(p.count("gpu") for p in rack.tray_types[g.type].paths) for g in rack.tray_stack)
        for i, j in enumerate(wl.jobs):
            if j.gpus > n_gpu:
                fail(f"{pre}.jobs.{i}.gpus", f"{j.gpus} GPUs asked, "
                     + (f"{name} has {n_gpu}" if s.row is not None else f"the rack has {n_gpu}"))
        if wl.jobs and wl.replay:
            fail(f"{pre}.replay", "give jobs or a replay, not both")
    for i, f in enumerate(s.faults):
        if f.kind == "pump_trip" and "/pump" not in f.target:
            fail(f"faults.{i}.target", "name a pump: cdu/pump0, cdu/pump1, ... (in a row: cdu1/pump0, ...)")
        if f.kind in ("plate_clog", "tray_isolation", "restriction", "sensor_offset") and not f.target:
            fail(f"faults.{i}.target", f"{f.kind} needs a target")


def _row_index(s: Scenario, rack_name: str) -> int:
    """The ``row.racks`` entry a rack instance comes from."""
    i = 0
    for k, entry in enumerate(s.row.racks):
        i += entry.count
        if [n for n, *_ in s.rack_entries()].index(rack_name) < i:
            return k
    return 0


# An exchanger rated beyond this effectiveness needs an unbounded NTU: not a real CDU
# rating (ASSUMPTION: 0.99; the margin keeps the check valid for rho*cp a few K away from
# the build's).
MAX_HX_EFFECTIVENESS = 0.99


def _check_design_point(s: Scenario, table, fail) -> None:
    """The CDU rating must be one a real exchanger can meet: the build sizes the exchanger
    from it (twin.correlations.hx_design_ua). (A flow setpoint too low to carry the rack
    is not an input error: the run says what happens, up to the loop boiling, with a
    named event; docs/model.md.)"""
    hx = s.cdu.heat_exchanger
    coolant = table.at(s.facility.supply_temp_c)
    rho_cp = coolant["rho"] * coolant["cp"]
    from .coolant import coolant_table

    water = coolant_table("water").at(s.facility.supply_temp_c)
    c_hot = hx.rated_secondary_flow_lpm / 60000.0 * rho_cp
    c_cold = hx.rated_facility_flow_lpm / 60000.0 * water["rho"] * water["cp"]
    q = hx.rated_heat_kw * 1e3
    eps = q / (min(c_hot, c_cold) * (hx.approach_k + q / c_hot))
    if eps >= MAX_HX_EFFECTIVENESS:
        among = [f"cdu.heat_exchanger.{k}" for k in ("rated_heat_kw", "approach_k", "rated_secondary_flow_lpm",
                                                      "rated_facility_flow_lpm")]
        fail("cdu.heat_exchanger.rated_heat_kw",
             f"{_num(hx.rated_heat_kw)} kW at {_num(hx.approach_k)} K approach with {_num(hx.rated_secondary_flow_lpm)}"
             f" and {_num(hx.rated_facility_flow_lpm)} L/min rated flows needs an effectiveness of {eps:.3g} "
             f"(a real exchanger stays below {MAX_HX_EFFECTIVENESS:g})", among)


@dataclass
class Loaded:
    """A validated scenario with what it was made of: its sources (files read, the origin
    of every key) and every input file of a run (path -> role), for refusing to write over
    one."""

    scenario: Scenario
    sources: Sources
    inputs: dict = dc_field(default_factory=dict)

    def where(self, field: str):
        """The file (or option) that set a dotted field."""
        return self.sources.where(field)


def validate(sources: Sources) -> Loaded:
    """Validate gathered scenario sources (:func:`twin.sources.gather`): the schema, the
    checks across fields, and the replay trace row by row."""
    path, origins = sources.path, sources.origins
    scenario = _validate(sources.data, path, origins)
    inputs = sources.inputs()
    rp = scenario.workload.replay
    if rp is not None:
        origin = origins.get(("workload", "replay", "file"), path)
        if not Path(rp.file).is_absolute():
            rp.file = str((relative_base(origin) / rp.file).resolve())
        from .traces import check_span, read_trace
        regular_file(rp.file, origin, "workload.replay.file", f"replay file {rp.file}")
        t, _ = read_trace(rp.file, rp.column, rp.time_column)
        check_span(rp.file, t, rp.start_s, scenario.simulation.duration_s)
        inputs[Path(rp.file)] = "the replay trace"
    return Loaded(scenario, sources, inputs)


def load(path, overrides: Optional[dict | list] = None, options: Optional[dict] = None) -> Loaded:
    """:func:`load_scenario`, keeping what the scenario was made of (:class:`Loaded`).

    ``options``: dotted key -> (value, option name), overrides given by an option other
    than ``--set`` (``--duration``); errors in them name the option."""
    return validate(gather(path, overrides, options))


def json_schema(resolved: bool = False) -> dict:
    """The JSON Schema of the scenario format (``twin schema``; schemas/scenario.schema.json).

    Default: a scenario file *as written*, for editors: ``include`` allowed (at the top and
    in a row position), every key optional (a file may leave a table to the files it
    includes), each known key typed, ranged (``minimum``, ``maximum``) and described, with
    its unit as ``units``, unknown keys refused. ``resolved``: the scenario after its
    includes are merged (what ``twin run`` validates, the ``scenario`` attribute of a
    results file), with the keys it requires. Rules across fields (a row's racks, a
    pump curve's points, ...) are checked by ``twin run`` alone."""
    schema = Scenario.model_json_schema()
    _json_clean(schema)
    for model in schema["$defs"].values():  # a temperature whose range is checked across fields
        for name, prop in model.get("properties", {}).items():
            if name.endswith("_c") and "units" not in prop:
                prop["units"] = "degC"
    include = {"description": "files merged under this one (paths relative to it); this file wins on conflicts",
               "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}
    if not resolved:
        schema["properties"] = {"include": include, **schema["properties"]}
        row_rack = schema["$defs"]["RowRack"]["properties"]
        row_rack["include"] = {"type": "string", "description": "a rack file whose [rack] this position takes"}
        _json_as_written(schema)
    what = "after its includes are merged" if resolved else "as written (includes not merged)"
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            **schema, "title": "rack-twin scenario",
            "description": f"A rack-twin scenario (TOML), {what}: units in the field names and in 'units' "
                           f"(docs/model.md; README.md, Scenarios)."}


def _json_clean(node) -> None:
    """Drop what JSON cannot hold: a default that is or holds infinity ("never", as the
    field's description says)."""
    if isinstance(node, dict):
        if "default" in node and not _json_finite(node["default"]):
            del node["default"]
        for v in node.values():
            _json_clean(v)
    elif isinstance(node, list):
        for v in node:
            _json_clean(v)


def _json_finite(x) -> bool:
    if isinstance(x, dict):
        return all(_json_finite(v) for v in x.values())
    if isinstance(x, list):
        return all(_json_finite(v) for v in x)
    return not isinstance(x, float) or math.isfinite(x)


def _json_as_written(node) -> None:
    """Every key optional; a union by ``kind`` matched by any branch (one per ``kind``)."""
    if isinstance(node, dict):
        node.pop("required", None)
        if "oneOf" in node:
            node["anyOf"] = node.pop("oneOf")
        for v in node.values():
            _json_as_written(v)
    elif isinstance(node, list):
        for v in node:
            _json_as_written(v)


def load_scenario(path, overrides: Optional[dict | list] = None) -> Scenario:
    """Load a scenario TOML file, resolve its includes, apply dotted-key overrides, validate.

    ``path``: a file, or a catalogue name as ``twin run`` takes it (``reference-w32``,
    ``faults/cdu-trip``; an existing file of that name wins). ``overrides`` is a dict
    ``{"facility.supply_temp_c": 45}`` or a list of ``"key=value"`` strings (as given to
    ``--set``). Raises :class:`TwinInputError`.
    """
    import os

    from .catalogue import resolve

    if not isinstance(path, (str, os.PathLike)):
        raise TwinInputError("twin.load_scenario", "path",
                             f"expected a scenario file or a catalogue name, got {type(path).__name__}")
    return load(resolve(path), overrides).scenario
