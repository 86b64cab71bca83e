"""A calibration spec (TOML, under ``calibration/``): what to fit, against which channels,
over which windows, and how the measured file's channels map onto the model's.

::

    name = "rack01-acceptance"
    [channels]                      # their name -> ours, for files not named as we name them
    "facility/supply" = "facility/supply_temp"

    [boundary]                      # what drives the model (measured)
    chip_power = ["gpu/power", "cpu/power", "nvswitch/power"]
    facility_supply_temp = "facility/supply_temp"
    flow = "rack/flow"              # the flow the CDU delivers (flow setpoint)

    [[fit]]                         # what the model must reproduce, with its noise
    channel = "gpu/junction_temp"
    noise = 0.1                     # sd in the channel's unit
    [[fit]]
    channel = "tray/flow"
    noise_relative = 0.01

    [[parameter]]
    name = "tim"
    instances = "rack01/tray*/gpu*"
    parameter = "r_tim_k_per_w"
    per_instance = true             # one value per GPU, judged against its peers
    bounds_relative = [0.2, 5.0]    # of the design value
    tolerance_relative = 0.3        # acceptance: within 30 % of the reference

    [[parameter]]
    name = "rack_return_sensor"
    sensor = "rack/return_temp"     # an additive sensor offset, in the channel's unit
    bounds = [-5.0, 5.0]
    tolerance = 0.5

    [[parameter]]
    name = "tray_return_sensor"
    sensor = "tray/return_temp"     # one offset per tray's return sensor
    instances = "rack01/tray*"
    per_instance = true
    bounds = [-5.0, 5.0]
    tolerance = 0.5

    [windows]
    warmup_s = 120.0                # samples before this are not fitted (the steady start)
    holdout_fraction = 0.2          # the last fifth is predicted, not fitted
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..scenario import Bounds, validate_as
from ..sources import read_toml


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class Boundary(_Model):
    chip_power: list[str] = Field(default_factory=lambda: ["gpu/power", "cpu/power", "nvswitch/power"],
                                  description="channels of per-chip power that drive the chips (labels: instance paths)")
    facility_supply_temp: Optional[str] = Field(default="facility/supply_temp",
                                                description="channel of the facility supply temperature")
    flow: Optional[str] = Field(default="rack/flow", description="channel of the flow the CDU delivers (held as the "
                                                                 "flow setpoint); none: the scenario's pump control")


class FitChannel(_Model):
    channel: str = Field(min_length=1, description="a channel of ours (after [channels] renaming)")
    # noise: a sensor's standard deviation; a thermocouple or RTD reads to ~0.1 K, a flow
    # meter to ~1 % (ASSUMPTION for the bounds: 1e-4 of a unit to 100 units)
    noise: Optional[Annotated[float, Bounds(1e-4, 100)]] = Field(default=None, description="sd [channel unit]")
    noise_relative: Optional[Annotated[float, Bounds(1e-5, 1)]] = Field(default=None, description="sd / value")

    @model_validator(mode="after")
    def _one(self):
        if (self.noise is None) == (self.noise_relative is None):
            raise ValueError("noise: give noise or noise_relative")
        return self


class Parameter(_Model):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z][A-Za-z0-9_-]*$")
    instances: Optional[str] = Field(default=None, description="instance path pattern (twin.components); with "
                                                               "sensor: the members of a 2-D channel whose sensors "
                                                               "read off")
    parameter: Optional[str] = Field(default=None, description="the instances' parameter, e.g. r_tim_k_per_w")
    sensor: Optional[str] = Field(default=None, description="an additive offset of this measured channel")
    per_instance: bool = Field(default=False, description="one value per instance (else one shared)")
    bounds_relative: tuple[Annotated[float, Bounds(1e-3, 1e3)], Annotated[float, Bounds(1e-3, 1e3)]] = Field(
        default=(0.1, 10.0), description="bounds over the design value (multiplicative parameters)")
    bounds: Optional[tuple[float, float]] = Field(default=None, description="absolute bounds (sensor offsets)")
    prior_sd_relative: Optional[Annotated[float, Bounds(1e-3, 10)]] = Field(
        default=None, description="a log-normal prior around the design value with this sd of ln (optional)")
    reference: Literal["design", "peers"] = Field(
        default="design", description="acceptance: judge against the design value, or (per-instance) the peers' median")
    tolerance_relative: Optional[Annotated[float, Bounds(0, 10)]] = Field(
        default=None, description="acceptance: allowed deviation over the reference")
    tolerance: Optional[Annotated[float, Bounds(0, 1e6)]] = Field(
        default=None, description="acceptance: allowed deviation in the parameter's unit (sensor offsets)")

    @model_validator(mode="after")
    def _what(self):
        if self.sensor is not None and self.parameter is not None:
            raise ValueError("sensor: give instances and parameter, or sensor (and instances: its members)")
        if self.sensor is None and (self.instances is None or self.parameter is None):
            raise ValueError("sensor: give instances and parameter, or sensor (and instances: its members)")
        if self.sensor is not None and self.bounds is None:
            raise ValueError("bounds: a sensor offset needs bounds in the channel's unit")
        if self.bounds is not None and not self.bounds[0] < self.bounds[1]:
            raise ValueError("bounds: the lower bound must be below the upper")
        if not self.bounds_relative[0] < 1.0 < self.bounds_relative[1]:
            raise ValueError("bounds_relative: must bracket 1 (the design value)")
        if self.reference == "peers" and not self.per_instance:
            raise ValueError("reference: peers needs per_instance = true")
        return self


class Windows(_Model):
    # a rack settles in minutes after a load step (ASSUMPTION: 2 min of warm-up by default)
    warmup_s: Annotated[float, Bounds(0, 1e7, "s")] = 120.0
    holdout_fraction: Annotated[float, Bounds(0, 0.9)] = 0.2


class Spec(_Model):
    name: str = Field(min_length=1)
    description: str = ""
    channels: dict[str, str] = Field(default_factory=dict, description="their channel name -> ours")
    boundary: Boundary = Field(default_factory=Boundary)
    fit: list[FitChannel] = Field(min_length=1)
    parameter: list[Parameter] = Field(min_length=1)
    windows: Windows = Field(default_factory=Windows)

    @model_validator(mode="after")
    def _names(self):
        names = [p.name for p in self.parameter]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"parameter: name {dup[0]!r} used twice")
        fitted = [f.channel for f in self.fit]
        for i, p in enumerate(self.parameter):
            if p.sensor is not None and p.sensor not in fitted:  # an offset nothing compares: a typo
                from ..errors import did_you_mean

                raise ValueError(f"parameter.{i}.sensor: {p.sensor!r} is not a [[fit]] channel ("
                                 + ", ".join(fitted) + ")" + did_you_mean(p.sensor, fitted))
        return self


def load_spec(path) -> Spec:
    """Read and validate a calibration spec; errors name the file and the field."""
    from ..files import regular_file

    path = Path(path)
    regular_file(path, path, "", "calibration spec")
    data = read_toml(path)
    return validate_as(Spec, data, path)
