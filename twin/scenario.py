"""Scenario files: TOML, validated by a pydantic schema, with includes and overrides.

A scenario is plain data. Every field has a dotted key (``facility.supply_temp_c``) that
``--set``, calibration overlays and sweeps share. Units are in the field names.

Includes: a top-level ``include = ["racks/nvl72-class.toml", ...]`` merges the named files
(paths relative to the including file) underneath the including file, which wins on
conflicts; tables merge key by key, everything else is replaced.
"""
from __future__ import annotations

import copy
import math
import tomllib
from pathlib import Path
from typing import Annotated, Literal, Optional, Union

import numpy as np
import tomli_w
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import TwinInputError


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False)


Positive = Field(gt=0)
NonNegative = Field(ge=0)


# --------------------------------------------------------------------------- rack


class ChipType(_Model):
    """A chip on a cold plate: junction - TIM - plate base - coolant."""

    tdp_w: float = Field(gt=0, description="thermal design power [W]")
    idle_w: float = Field(ge=0, description="power when no workload is scheduled [W]")
    throttle_temp_c: float = Field(description="junction temperature where clocks slow [degC]")
    shutdown_temp_c: float = Field(description="junction temperature of thermal shutdown [degC]")
    r_jc_k_per_w: float = Field(gt=0, description="junction to case (lid) resistance [K/W]")
    r_tim_k_per_w: float = Field(gt=0, description="case to cold-plate TIM resistance [K/W]")
    c_junction_j_per_k: float = Field(gt=0, description="heat capacity of die and lid [J/K]")
    c_plate_j_per_k: float = Field(gt=0, description="heat capacity of the cold-plate body [J/K]")
    cold_plate: str = Field(description="name of an entry in rack.cold_plates")
    throttles: bool = Field(default=True, description="whether the chip's firmware slows its clock when hot "
                            "(the shutdown protects it either way)")
    throttle_gain_per_k_s: float = Field(
        default=0.05, gt=0, le=0.5,
        description="integral gain of the thermal clock control: clock fraction lost per second per kelvin of "
                    "junction peak above throttle_temp_c [1/(K s)] (ASSUMPTION, docs/model.md)")
    throttle_hold_s: float = Field(
        default=1.0, ge=0.05, le=60,
        description="decay time of the junction peak hold the clock control acts on [s] (ASSUMPTION)")
    min_clock_fraction: float = Field(default=0.3, gt=0, le=1)

    @model_validator(mode="before")
    @classmethod
    def _replaced(cls, data):
        old = ("throttle_hysteresis_k", "throttle_slew_per_s", "recovery_slew_per_s")
        if isinstance(data, dict):
            for key in old:
                if key in data:
                    raise ValueError(f"{key} was replaced by throttle_gain_per_k_s and throttle_hold_s "
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

    channel_width_mm: float = Positive
    channel_height_mm: float = Positive
    fin_width_mm: float = Positive
    channel_length_mm: float = Positive
    channel_count: int = Field(gt=0)
    port_inner_diameter_mm: float = Positive
    base_thickness_mm: float = Positive
    solid_conductivity_w_per_m_k: float = Positive
    fluid_volume_ml: float = Positive
    fouling_k_per_w: float = Field(default=0.0, ge=0, description="extra base-to-fluid resistance [K/W]")
    dp_scale: float = Field(default=1.0, gt=0, description="multiplier on the plate pressure drop (calibration, clogging)")
    dp_flow_exponent: Optional[float] = Field(
        default=None, ge=1, le=2, description="measured d ln dp / d ln Q of the plate at dp_design_flow_lpm; "
                                              "default: the channel geometry's own")
    dp_design_flow_lpm: Optional[float] = Field(
        default=None, gt=0, description="flow [L/min] where the geometry's pressure drop anchors dp_flow_exponent")
    dp_design_temp_c: float = Field(default=40.0, description="coolant temperature of that design point [degC]")

    @model_validator(mode="after")
    def _exponent_and_anchor(self):
        if (self.dp_flow_exponent is None) != (self.dp_design_flow_lpm is None):
            raise ValueError("give dp_flow_exponent and dp_design_flow_lpm together")
        return self


class Tubing(_Model):
    length_m: float = NonNegative
    inner_diameter_mm: float = Positive
    k_fittings: float = Field(default=0.0, ge=0, description="sum of fitting loss coefficients")
    roughness_um: float = Field(default=1.5, ge=0)


class QuickDisconnect(_Model):
    """One mated coupling; give its flow coefficient as Cv (US) or Kv (metric), not both."""

    cv_gpm_per_psi: Optional[float] = Field(default=None, gt=0, description="Cv: US gpm of water at 1 psi")
    kv_m3h_per_bar: Optional[float] = Field(default=None, gt=0, description="Kv: m3/h of water at 1 bar")
    inner_diameter_mm: float = Positive

    @model_validator(mode="after")
    def _one_coefficient(self):
        if (self.cv_gpm_per_psi is None) == (self.kv_m3h_per_bar is None):
            raise ValueError("give exactly one of cv_gpm_per_psi and kv_m3h_per_bar")
        return self


class TrayType(_Model):
    paths: list[list[str]] = Field(description="parallel coolant paths, each a list of chip types in flow order")
    aux_power_w: float = Field(default=0.0, ge=0, le=20000,
                               description="tray power not on cold plates (memory, NICs, VRs, fans) at full chip load [W]")
    aux_idle_power_w: Optional[float] = Field(
        default=None, ge=0, le=20000,
        description="aux power with the tray's chips at their idle power [W]; aux power is linear in the tray's "
                    "chip power through it and aux_power_w at TDP (default: constant aux_power_w)")
    aux_liquid_fraction: float = Field(default=0.0, ge=0, le=1, description="share of aux power picked up by the liquid")
    required_flow_lpm: Optional[float] = Field(
        default=None, gt=0, description="flow the tray needs, whatever the supply temperature [L/min]")
    required_flow_table: Optional[list[tuple[float, float]]] = Field(
        default=None, description="[rack supply temperature degC, flow L/min] points the tray needs: linear "
                                  "between points, held at the end values outside the table")
    tubing: Tubing
    quick_disconnect: QuickDisconnect
    branch_k: float = Field(default=2.0, ge=0, description="tee losses at the two manifold ports (dividing + combining)")
    balancing_k: float = Field(default=0.0, ge=0, description="flow-balancing restrictor, K on the tubing velocity")

    @model_validator(mode="after")
    def _aux(self):
        if self.aux_idle_power_w is not None and self.aux_idle_power_w > self.aux_power_w:
            raise ValueError("aux_idle_power_w must not exceed aux_power_w")
        return self

    @field_validator("paths")
    @classmethod
    def _nonempty(cls, v):
        if not v or any(len(p) == 0 for p in v):
            raise ValueError("every tray needs at least one path with at least one chip")
        return v

    @field_validator("required_flow_table")
    @classmethod
    def _flow_table(cls, v):
        if v is None:
            return v
        if len(v) < 2:
            raise ValueError("needs at least two [supply temperature degC, flow L/min] points")
        if any(q <= 0 for _, q in v):
            raise ValueError("flows must be positive")
        if any(b[0] <= a[0] for a, b in zip(v, v[1:])):
            raise ValueError("supply temperatures must increase")
        return v

    @model_validator(mode="after")
    def _one_requirement(self):
        if (self.required_flow_lpm is None) == (self.required_flow_table is None):
            raise ValueError("give exactly one of required_flow_lpm and required_flow_table "
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
    count: int = Field(gt=0)


class Manifold(_Model):
    layout: Literal["direct_return", "reverse_return"] = "reverse_return"
    inner_diameter_mm: float = Positive
    port_spacing_mm: float = Positive
    roughness_um: float = Field(default=1.5, ge=0)


class MarginLimits(_Model):
    """Limits of the pass/fail margins (``twin.margins``). A scenario's ``[margins]`` table
    overrides the rack definition's ``[rack.margin_limits]``, which overrides the defaults
    here (the design defaults: no throttling, no shutdown, every tray at its flow)."""

    gpu_junction_margin_k: Optional[float] = Field(
        default=None, ge=-50, le=50, description="least margin below the throttle temperature, worst GPU [K] (default 0)")
    other_chip_junction_margin_k: Optional[float] = Field(
        default=None, ge=-50, le=50, description="the same for CPUs and switches [K] (default 0)")
    gpu_throttled_s_max: Optional[float] = Field(
        default=None, ge=0, description="longest time any GPU may spend throttled [s] (default 0)")
    gpu_shutdowns: Optional[int] = Field(default=None, ge=0, description="GPUs allowed to shut down (default 0)")
    rack_return_temp_max_c: Optional[float] = Field(
        default=None, ge=20, le=95, description="highest rack return temperature [degC] (default rack.max_return_temp_c)")
    tray_flow_ratio_min: Optional[float] = Field(
        default=None, ge=0, le=5, description="least tray flow over its required flow (default 1)")
    pump_head_margin_kpa: Optional[float] = Field(
        default=None, ge=-1000, le=1000, description="least pump head reserve [kPa] (default 0)")
    job_goodput_min: Optional[float] = Field(
        default=None, ge=0, le=1, description="least goodput of every training job (default 1)")


MARGIN_DEFAULTS = dict(gpu_junction_margin_k=0.0, other_chip_junction_margin_k=0.0, gpu_throttled_s_max=0.0,
                       gpu_shutdowns=0, tray_flow_ratio_min=1.0, pump_head_margin_kpa=0.0, job_goodput_min=1.0)


class Rack(_Model):
    name: str
    source: str = ""
    chip_types: dict[str, ChipType]
    cold_plates: dict[str, ColdPlate]
    tray_types: dict[str, TrayType]
    tray_stack: list[TrayGroup] = Field(description="tray groups in order from the manifold inlet end")
    manifold: Manifold
    supply_hose: Tubing
    return_hose: Tubing
    max_return_temp_c: float = Field(default=65.0, ge=20, le=95, description="limit on the rack return temperature [degC]")
    margin_limits: MarginLimits = Field(default_factory=MarginLimits, description="the rack design's margin limits")

    @model_validator(mode="after")
    def _references(self):
        if "gpu" not in self.chip_types:
            raise ValueError("chip_types must define 'gpu'")
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
                raise ValueError(f"tray_stack: no tray type named {group.type!r}")
        return self


# --------------------------------------------------------------------------- CDU, coolant, facility


class Pumps(_Model):
    count: int = Field(gt=0, description="pumps installed, in parallel")
    running: int = Field(gt=0, description="pumps running (the rest are standby, behind check valves)")
    shutoff_head_kpa: float = Positive
    rated_flow_lpm: float = Positive
    rated_head_kpa: float = Positive
    head_scale: float = Field(default=1.0, gt=0, description="multiplier on the head curve (calibration)")
    bep_flow_lpm: Optional[float] = Field(
        default=None, gt=0, description="flow of best efficiency at full speed [L/min]; default: rated_flow_lpm")
    bep_efficiency: float = Field(
        default=0.6, gt=0, le=1,
        description="pump (hydraulic) efficiency at its best-efficiency point (default: ASSUMPTION, "
                    "see scenarios/cdus/row-cdu-250kw.toml)")
    motor_efficiency: float = Field(
        default=0.859, gt=0, le=1,
        description="motor efficiency, shaft over electrical (default: IEC 60034-30-1 IE3, 2.2 kW 2-pole)")
    vfd_efficiency: float = Field(
        default=0.97, gt=0, le=1, description="drive efficiency, motor input over drive input (default: ASSUMPTION)")

    @model_validator(mode="after")
    def _check(self):
        if self.running > self.count:
            raise ValueError("running must not exceed count")
        if self.rated_head_kpa >= self.shutoff_head_kpa:
            raise ValueError("rated_head_kpa must be below shutoff_head_kpa")
        # the BEP parabola (twin.correlations.pump_efficiency_bep_parabola) falls to zero
        # at twice the BEP flow: the head curve must reach zero head before that
        runout_lpm = self.rated_flow_lpm * math.sqrt(self.shutoff_head_kpa / (self.shutoff_head_kpa - self.rated_head_kpa))
        bep = self.bep_flow_lpm if self.bep_flow_lpm is not None else self.rated_flow_lpm
        if runout_lpm >= 2.0 * bep:
            raise ValueError(f"bep_flow_lpm must exceed half the curve's runout flow ({runout_lpm / 2:.0f} L/min): "
                             "the efficiency parabola is zero at twice the BEP flow")
        return self


class HeatExchanger(_Model):
    rated_heat_kw: float = Positive
    approach_k: float = Positive
    rated_secondary_flow_lpm: float = Positive
    rated_facility_flow_lpm: float = Positive
    rated_secondary_dp_kpa: float = Positive
    ua_scale: float = Field(default=1.0, gt=0, description="multiplier on UA (calibration, fouling)")
    flow_exponent: Optional[float] = Field(default=None, gt=0, le=1, description="hA ~ flow^n; default from ht's Muley-Manglik")
    volume_l: float = Field(default=2.0, gt=0)


class Cdu(_Model):
    name: str = "cdu"
    source: str = ""
    pumps: Pumps
    heat_exchanger: HeatExchanger
    reservoir_volume_l: float = Positive
    filter_dp_kpa: float = Field(default=10.0, ge=0, description="filter pressure drop at the pump rated flow")
    internal_volume_l: float = Field(default=5.0, gt=0, description="piping volume inside the CDU")


class Coolant(_Model):
    name: Literal["water", "pg25"] = "pg25"


class Facility(_Model):
    supply_temp_c: float = Field(description="facility water supply temperature [degC]")
    flow_lpm: float = Field(gt=0, description="facility water flow through the CDU [L/min]")


class Controls(_Model):
    """CDU controls. ``pump_mode``: ``speed`` (fixed), ``flow`` (an ideal controller that
    holds ``flow_setpoint_lpm`` exactly) or ``pid`` (a PI controller on rack flow or rack
    differential pressure, sampled every ``control_interval_s``, with output limits, a
    speed ramp limit and anti-windup). ``supply_temp_control``: a PI controller on the
    facility valve holds the CDU's secondary supply temperature."""

    pump_mode: Literal["speed", "flow", "pid"] = "flow"
    pump_speed_fraction: float = Field(default=1.0, gt=0, le=1.2)
    flow_setpoint_lpm: float = Field(default=180.0, gt=0)
    failover_delay_s: float = Field(default=5.0, ge=0, description="from a pump trip to the standby pump running")
    control_interval_s: float = Field(default=1.0, gt=0)
    pid_variable: Literal["flow", "dp"] = "flow"
    dp_setpoint_kpa: float = Field(default=80.0, gt=0, description="rack differential pressure setpoint (pid on dp)")
    setpoint_changes: list[tuple[float, float]] = Field(
        default_factory=list, description="[time_s, new setpoint] of the pump controller (L/min or kPa)")
    pump_kp: float = Field(default=0.05, gt=0, description="speed fraction per unit relative error")
    pump_ti_s: float = Field(default=0.25, gt=0, description="integral time")
    pump_speed_min: float = Field(default=0.15, ge=0, le=1)
    pump_speed_max: float = Field(default=1.0, gt=0, le=1.2)
    pump_ramp_per_s: float = Field(default=0.2, gt=0, description="VFD ramp limit, speed fraction per second")
    supply_temp_control: bool = False
    supply_temp_setpoint_c: float = Field(default=35.0)
    supply_temp_changes: list[tuple[float, float]] = Field(default_factory=list, description="[time_s, setpoint degC]")
    valve_kp: float = Field(default=0.08, gt=0, description="valve position per K of error")
    valve_ti_s: float = Field(default=40.0, gt=0)
    valve_min_position: float = Field(default=0.05, ge=0, le=1)
    valve_ramp_per_s: float = Field(default=0.05, gt=0, description="actuator stroke limit, position per second")


FAULT_KINDS = ("pump_trip", "cdu_trip", "facility_supply_temp", "facility_flow", "plate_clog",
               "tray_isolation", "sensor_offset")


class Fault(_Model):
    """A fault on the schedule. ``target`` names what it hits: a pump (``cdu/pump0``), a
    chip's cold plate (``tray03/gpu1``), a tray (``tray05``) or a telemetry channel
    (``rack/supply_temp``)."""

    kind: Literal[FAULT_KINDS]
    start_s: float = Field(ge=0)
    end_s: float = Field(default=math.inf, gt=0, description="when the fault clears (default: never)")
    target: str = ""
    severity: float = Field(default=1.0, ge=0, le=1,
                            description="plate_clog: share of channels blocked; facility_flow: share of flow lost")
    value: float = Field(default=0.0, description="facility_supply_temp: supply [degC]; sensor_offset: offset in the channel's units")
    pumps_run: bool = Field(default=True, description="cdu_trip: pumps keep circulating (on UPS) while heat rejection is lost")

    @model_validator(mode="after")
    def _check(self):
        if self.end_s <= self.start_s:
            raise ValueError("end_s must be after start_s")
        if self.kind == "plate_clog" and self.severity >= 1.0:
            raise ValueError("a fully blocked plate is a tray isolation; severity must be below 1")
        return self


# --------------------------------------------------------------------------- workload


class ScheduleEntry(_Model):
    """One entry of the chip power schedule; later entries override earlier ones."""

    chips: str = Field(description="chip type the entry applies to")
    kind: Literal["constant", "square"] = "constant"
    start_s: float = Field(default=0.0, ge=0)
    end_s: float = Field(default=math.inf, gt=0)
    fraction_of_tdp: float = Field(default=1.0, ge=0, le=1.5)
    high_fraction_of_tdp: float = Field(default=1.0, ge=0, le=1.5)
    low_fraction_of_tdp: float = Field(default=0.3, ge=0, le=1.5)
    period_s: float = Field(default=1.0, gt=0)
    duty: float = Field(default=0.5, gt=0, lt=1)

    @model_validator(mode="after")
    def _window(self):
        if self.end_s <= self.start_s:
            raise ValueError("end_s must be after start_s")
        return self


class _Job(_Model):
    """What every job has: a name, a number of GPUs, when it is submitted, how long it runs."""

    name: str
    gpus: int = Field(gt=0)
    start_s: float = Field(default=0.0, ge=0, description="submission time [s]")
    duration_s: float = Field(default=math.inf, gt=0)


class TrainingJob(_Job):
    """A synchronous training job: every step a compute phase near TDP, then a
    communication phase far below it; the job waits for its slowest GPU."""

    kind: Literal["training"] = "training"
    step_time_s: float = Field(gt=0, description="nominal step time, compute plus communication [s]")
    compute_fraction: float = Field(default=0.7, gt=0, le=1, description="share of the step spent computing")
    compute_power_fraction_of_tdp: float = Field(default=1.0, ge=0, le=1.5)
    comm_power_fraction_of_tdp: float = Field(default=0.35, ge=0, le=1.5)
    checkpoint_interval_s: float = Field(default=math.inf, gt=0)
    checkpoint_duration_s: float = Field(default=0.0, ge=0)
    checkpoint_power_fraction_of_tdp: float = Field(default=0.2, ge=0, le=1.5)
    failures_per_day: float = Field(default=0.0, ge=0, description="job interruptions per day (exponential)")
    restart_time_s: float = Field(default=600.0, ge=0)
    restart_power_fraction_of_tdp: float = Field(default=0.1, ge=0, le=1.5)
    straggler_count: int = Field(default=0, ge=0)
    straggler_speed: float = Field(default=0.97, gt=0, le=1, description="straggler compute speed relative to the rest")
    power_jitter_fraction: float = Field(default=0.0, ge=0, le=0.2, description="std dev of per-GPU power (silicon variation)")

    @model_validator(mode="after")
    def _check(self):
        if self.straggler_count > self.gpus:
            raise ValueError("straggler_count exceeds gpus")
        return self


class InferenceJob(_Job):
    """Inference serving: load follows a daily curve; power follows load."""

    kind: Literal["inference"]
    start_hour: float = Field(default=0.0, ge=0, lt=24, description="time of day at t = 0 [h]")
    load_curve: list[tuple[float, float]] = Field(description="[hour, load 0-1] points, linear between, wrapping at 24 h")
    full_load_power_fraction_of_tdp: float = Field(default=0.9, ge=0, le=1.5)
    update_interval_s: float = Field(default=300.0, gt=0)

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
    power_fraction_of_tdp: Optional[float] = Field(default=None, ge=0, le=1.5, description="default: idle_w")


class Replay(_Model):
    """Drive chip power from a measured trace instead of jobs."""

    file: str = Field(description="CSV with a time column [s], or a telemetry HDF5; relative to the scenario file")
    column: str = Field(default="", description="CSV column of power [W]")
    time_column: str = Field(default="time")
    peak_fraction_of_tdp: float = Field(default=1.0, gt=0, le=1.5, description="chip power at the trace's maximum")
    start_s: float = Field(default=0.0, ge=0, description="trace time at t = 0")


class Workload(_Model):
    mode: Literal["waveform", "step_by_step"] = Field(
        default="waveform", description="training phases as kernel waveforms, or one DES event per phase (reference)")
    seed: int = 0
    gpu_power_cap_w: float = Field(default=math.inf, gt=0)
    schedule: list[ScheduleEntry] = Field(default_factory=list)
    jobs: list[Annotated[Union[TrainingJob, InferenceJob, IdleJob], Field(discriminator="kind")]] = Field(default_factory=list)
    replay: Optional[Replay] = None


class Simulation(_Model):
    duration_s: float = Field(gt=0)
    time_step_s: float = Field(default=0.1, gt=0, le=10)
    output_interval_s: float = Field(default=1.0, gt=0)
    hydraulic_update_s: float = Field(default=10.0, gt=0, description="interval of network re-solves")
    initial_temp_c: Optional[float] = Field(default=None, description="start temperature; default: steady state at t=0")

    @model_validator(mode="after")
    def _multiples(self):
        for name in ("output_interval_s", "hydraulic_update_s"):
            ratio = getattr(self, name) / self.time_step_s
            if abs(ratio - round(ratio)) > 1e-9 or round(ratio) < 1:
                raise ValueError(f"{name} must be a whole multiple of time_step_s")
        return self


class Scenario(_Model):
    name: str
    description: str = ""
    rack: Rack
    cdu: Cdu
    coolant: Coolant = Coolant()
    facility: Facility
    controls: Controls = Controls()
    workload: Workload = Workload()
    faults: list[Fault] = Field(default_factory=list)
    simulation: Simulation
    margins: MarginLimits = Field(default_factory=MarginLimits, description="this scenario's margin limits")

    # Set by load_scenario: where the scenario came from (not part of the data).
    model_config = ConfigDict(extra="forbid")

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
            _set_dotted(data, key, value, "<overrides>")
        return _validate(data, "<overrides>")


def _toml_safe(obj):
    if isinstance(obj, dict):
        return {k: _toml_safe(v) for k, v in obj.items() if v is not None}
    if isinstance(obj, list):
        return [_toml_safe(v) for v in obj]
    return obj


# --------------------------------------------------------------------------- loading


def _read_toml(path: Path, field: str = "") -> dict:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise TwinInputError(path, field, "file not found") from None
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as exc:
        raise TwinInputError(path, field, f"cannot read: {exc.__class__.__name__}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise TwinInputError(path, field, f"malformed TOML: {exc}") from None


def _merge(base: dict, top: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _origins(data, path, prefix=()) -> dict:
    """Map every dotted key prefix in ``data`` to the file it came from."""
    out = {}
    for key, value in data.items():
        k = prefix + (str(key),)
        out[k] = path
        if isinstance(value, dict):
            out.update(_origins(value, path, k))
        elif isinstance(value, list):
            for i, item in enumerate(value):
                out[k + (str(i),)] = path
                if isinstance(item, dict):
                    out.update(_origins(item, path, k + (str(i),)))
    return out


def _resolve_includes(path: Path, seen: tuple = ()) -> tuple[dict, dict]:
    """The merged data of a file and its includes, and which file each key came from."""
    path = path.resolve() if path.exists() else path
    if path in seen:
        raise TwinInputError(path, "include", "include cycle")
    data = _read_toml(path)
    includes = data.pop("include", [])
    if isinstance(includes, str):
        includes = [includes]
    if not isinstance(includes, list) or not all(isinstance(i, str) for i in includes):
        raise TwinInputError(path, "include", "must be a list of file paths")
    merged: dict = {}
    origins: dict = {}
    for inc in includes:
        inc_path = path.parent / inc
        if not inc_path.exists():
            raise TwinInputError(path, "include", f"included file not found: {inc}")
        inc_data, inc_origins = _resolve_includes(inc_path, seen + (path,))
        merged = _merge(merged, inc_data)
        origins.update(inc_origins)
    origins.update(_origins(data, path))
    return _merge(merged, data), origins


def _set_dotted(data: dict, key: str, value, file) -> None:
    parts = key.split(".")
    node = data
    for i, part in enumerate(parts[:-1]):
        if isinstance(node, list):
            try:
                node = node[int(part)]
                continue
            except (ValueError, IndexError):
                raise TwinInputError(file, key, f"no list element {part!r}") from None
        if part not in node or not isinstance(node[part], (dict, list)):
            if part in node:
                raise TwinInputError(file, key, f"{'.'.join(parts[:i + 1])} is not a table")
            node[part] = {}
        node = node[part]
    last = parts[-1]
    if isinstance(node, list):
        try:
            node[int(last)] = value
        except (ValueError, IndexError):
            raise TwinInputError(file, key, f"no list element {last!r}") from None
    else:
        node[last] = value


def parse_override(text: str, file="--set") -> tuple[str, object]:
    """Parse ``dotted.key=value``; the value is read as a TOML value, else as a string."""
    if "=" not in text:
        raise TwinInputError(file, text, "expected dotted.key=value")
    key, raw = text.split("=", 1)
    key, raw = key.strip(), raw.strip()
    if not key:
        raise TwinInputError(file, text, "empty key")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return key, value


def _validate(data: dict, file, origins: Optional[dict] = None) -> Scenario:
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(str(p) for p in err["loc"])
        field = ".".join(loc)
        for n in range(len(loc), 0, -1):  # the file that set the deepest known part of the key
            if origins and loc[:n] in origins:
                file = origins[loc[:n]]
                break
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        elif err["type"] == "missing":
            msg = "required field is missing"
        raise TwinInputError(file, field, msg) from None
    _check_physics(scenario, file)
    return scenario


def _check_physics(s: Scenario, file) -> None:
    """Range checks that need more than one field: temperatures against the coolant."""
    from .coolant import coolant_table

    table = coolant_table(s.coolant.name)
    if s.facility.supply_temp_c >= table.boiling_temp_c:
        raise TwinInputError(
            file, "facility.supply_temp_c",
            f"{s.facility.supply_temp_c} degC is at or above the boiling point of {s.coolant.name} "
            f"({table.boiling_temp_c:.1f} degC at 1 atm)",
        )
    lo, hi = table.temp_c[0] + 1.0, table.temp_c[-1] - 30.0
    if not lo <= s.facility.supply_temp_c <= hi:
        raise TwinInputError(file, "facility.supply_temp_c",
                             f"{s.facility.supply_temp_c} degC outside the supported {lo:.0f}-{hi:.0f} degC")
    if s.simulation.initial_temp_c is not None and not lo <= s.simulation.initial_temp_c <= hi:
        raise TwinInputError(file, "simulation.initial_temp_c", f"outside the supported {lo:.0f}-{hi:.0f} degC")
    for i, e in enumerate(s.workload.schedule):
        if e.chips not in s.rack.chip_types:
            raise TwinInputError(file, f"workload.schedule.{i}.chips", f"no chip type named {e.chips!r}")
        if e.chips == "gpu" and (s.workload.jobs or s.workload.replay):
            raise TwinInputError(file, f"workload.schedule.{i}.chips", "GPU power comes from workload.jobs or replay here")
    n_gpu = sum(g.count * sum(p.count("gpu") for p in s.rack.tray_types[g.type].paths) for g in s.rack.tray_stack)
    for i, j in enumerate(s.workload.jobs):
        if j.gpus > n_gpu:
            raise TwinInputError(file, f"workload.jobs.{i}.gpus", f"{j.gpus} GPUs asked, the rack has {n_gpu}")
    for i, f in enumerate(s.faults):
        if f.kind in ("pump_trip",) and not f.target.startswith("cdu/pump"):
            raise TwinInputError(file, f"faults.{i}.target", "name a pump: cdu/pump0, cdu/pump1, ...")
        if f.kind in ("plate_clog", "tray_isolation", "sensor_offset") and not f.target:
            raise TwinInputError(file, f"faults.{i}.target", f"{f.kind} needs a target")
    if s.workload.jobs and s.workload.replay:
        raise TwinInputError(file, "workload.replay", "give jobs or a replay, not both")


def load_scenario(path, overrides: Optional[dict | list] = None) -> Scenario:
    """Load a scenario TOML file, resolve its includes, apply dotted-key overrides, validate.

    ``overrides`` is a dict ``{"facility.supply_temp_c": 45}`` or a list of
    ``"key=value"`` strings (as given to ``--set``). Raises :class:`TwinInputError`.
    """
    path = Path(path)
    data, origins = _resolve_includes(path)
    if isinstance(overrides, (list, tuple)):
        overrides = dict(parse_override(o) for o in overrides)
    for key, value in (overrides or {}).items():
        _set_dotted(data, key, value, path)
        for k in list(origins):  # an override is reported against the scenario and --set
            if k[:len(key.split("."))] == tuple(key.split(".")):
                origins[k] = f"{path} (--set {key})"
        origins[tuple(key.split("."))] = f"{path} (--set {key})"
    scenario = _validate(data, path, origins)
    rp = scenario.workload.replay
    if rp is not None and not Path(rp.file).is_absolute():
        origin = origins.get(("workload", "replay", "file"), path)
        base = Path(origin).parent if isinstance(origin, Path) else path.parent
        rp.file = str((base / rp.file).resolve())
    if rp is not None and not Path(rp.file).exists():
        raise TwinInputError(origins.get(("workload", "replay", "file"), path), "workload.replay.file",
                             f"file not found: {rp.file}")
    return scenario
