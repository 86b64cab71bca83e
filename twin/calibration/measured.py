"""Measured telemetry as the model's boundary: chip power, facility supply, CDU flow.

A measured file is sampled on one uniform grid (``twin import`` puts foreign files on
one); sample ``k`` at ``t_k`` holds the mean over ``(t_k - dt, t_k]`` for powers (as the
twin writes them) and the value at ``t_k`` for temperatures and flows. The calibration
run's time 0 is one interval before the first sample, its step is the sampling interval,
so the power a step draws is exactly the measured interval mean (the thermal update is
exact for inputs held over a step: docs/model.md).

Chips without a measured power channel run at the scenario's schedule. Clock control
and shutdown are off: measured power already is what the chips drew.
"""
from __future__ import annotations

import numpy as np

from ..errors import TwinInputError
from ..kernels import workload as kw
from ..power import Demand
from ..workload import ScheduleSource


def _fill(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """NaNs filled by linear interpolation in time (held at the ends); and where they were."""
    x = np.array(x, dtype=float)
    bad = ~np.isfinite(x)
    if bad.all():
        return x, bad
    if bad.any():
        idx = np.arange(x.shape[0])
        if x.ndim == 1:
            x[bad] = np.interp(idx[bad], idx[~bad], x[~bad])
        else:
            for j in range(x.shape[1]):
                b = bad[:, j]
                if b.all():
                    continue
                if b.any():
                    x[b, j] = np.interp(idx[b], idx[~b], x[~b, j])
    return x, bad


class Measured:
    """A measured telemetry file on the model: channel look-up with renaming, and chip
    power by instance path."""

    def __init__(self, tel, spec, alias):
        self.tel, self.spec = tel, spec
        self.rename = {ours: theirs for theirs, ours in spec.channels.items()}
        t = np.asarray(tel.time, dtype=float)
        if t.size < 3:
            raise TwinInputError(tel.path, "time", f"{t.size} samples: too few to calibrate on")
        step = np.diff(t)
        self.dt = float(np.median(step))
        if not np.all(np.abs(step - self.dt) <= 1e-6 * self.dt):
            raise TwinInputError(tel.path, "time", "samples are not on one uniform grid: import the file with "
                                                   "`twin import` (it resamples each channel onto one)")
        self.t = t
        self.alias = alias
        self._filled: dict = {}

    def filled(self, ours: str):
        """A channel with its NaNs filled in time (:func:`_fill`), and where they were;
        computed once (every model run of a fit reads it)."""
        if ours not in self._filled:
            self._filled[ours] = _fill(self.channel(ours))
        return self._filled[ours]

    def has(self, ours: str) -> bool:
        return self.rename.get(ours, ours) in self.tel.channels

    def channel(self, ours: str) -> np.ndarray:
        name = self.rename.get(ours, ours)
        if name not in self.tel.channels:
            raise TwinInputError(self.tel.path, ours, "no such channel in the telemetry"
                                 + (f" (renamed from {name!r})" if name != ours else ""))
        return np.asarray(self.tel[name], dtype=float)

    def labels(self, ours: str) -> list:
        """The member labels of a 2-D channel, as the file names them."""
        from ..channels import labels_key, member_dimension

        name = self.rename.get(ours, ours)
        key = labels_key(member_dimension(name))  # cdu/pump_* -> cdu/pump_labels, gpu/* -> gpu/labels
        labels = self.tel.labels.get(key)
        x = self.channel(ours)
        if labels is None or len(labels) != x.shape[1]:
            raise TwinInputError(self.tel.path, key, f"{name} has {x.shape[1]} members and no labels naming them")
        return [str(lab) for lab in labels]

    def columns(self, ours: str, paths: list) -> np.ndarray:
        """Indices into ``paths`` (model instance paths) of the members of a 2-D channel,
        by its labels (short paths of a one-rack file resolved). A label that names none
        of ``paths`` is an error: its member would be silently left out (a typo, or a rack
        not built like its model)."""
        from ..errors import did_you_mean

        if self.channel(ours).ndim == 1:
            return np.array([0])
        labels = self.labels(ours)
        index = {p: i for i, p in enumerate(paths)}
        cols = np.array([index.get(self.alias(lab), -1) for lab in labels])
        if (cols < 0).any():
            stray = [lab for lab, c in zip(labels, cols) if c < 0]
            raise TwinInputError(self.tel.path, ours, f"{len(stray)} of its {len(labels)} members name no part of "
                                 f"the scenario's model: " + ", ".join(repr(x) for x in stray[:4])
                                 + (", ..." if len(stray) > 4 else "") + did_you_mean(stray[0], paths)
                                 + " (a rack not built like its scenario: calibrate against one that is)")
        return cols

    def dead(self, ours: str, bad: np.ndarray):
        """A boundary channel (or member) without one valid sample is an error naming it:
        the model would run on a filler, not on what the rack saw."""
        if not bad.all(axis=0).any():
            return
        which = ""
        if bad.ndim == 2:
            which = self.labels(ours)[int(np.argmax(bad.all(axis=0)))] + ": "
        raise TwinInputError(self.tel.path, ours, f"{which}no valid sample (a dead sensor?): the boundary that "
                                                  "drives the model must be measured")


class MeasuredPower(ScheduleSource):
    """Chip power from measured per-chip channels (interval means held over their
    interval); the scenario's schedule for chips without one."""

    def __init__(self, model, measured: Measured, dt: float):
        super().__init__(model)
        n = model.n_chips
        k = self.kernel
        k.wp[:, kw.WP_THROTTLE] = 0.0  # the measured power already is what the chips drew
        k.wp[:, kw.WP_SHUT] = kw.NEVER
        self.power = np.full((measured.t.size, n), np.nan)
        self.bad = np.zeros(measured.t.size, dtype=bool)
        measured_chip = np.zeros(n, dtype=bool)
        for ch in measured.spec.boundary.chip_power:
            if not measured.has(ch):
                continue
            cols = measured.columns(ch, model.chip_names)
            x, bad = measured.filled(ch)
            measured.dead(ch, bad)
            self.power[:, cols] = x
            self.bad |= bad.any(axis=1)
            measured_chip[cols] = True
            # every chip of a measured type, or none: a chip without its power runs at the
            # scenario's schedule, and its heat biases every coolant temperature the fit
            # compares (a confident wrong sensor offset, a wrong plate)
            kind = model.channel_members(ch) or []
            missing = [p for p in kind if not measured_chip[model.chip_names.index(p)]]
            if missing:
                raise TwinInputError(measured.tel.path, ch, f"{len(missing)} of the model's {len(kind)} chips it "
                                     f"measures have no column ({', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''}"
                                     "): they would run at the scenario's schedule, their heat unmeasured; give every "
                                     "chip's power, or a scenario of the rack as built")
        if not measured_chip.any():
            raise TwinInputError(measured.tel.path, "boundary.chip_power",
                                 "no chip power channel whose labels name this model's chips")
        self.measured_chip = measured_chip
        self.dt_sample = measured.dt

    def _rows(self, t0, dt, n):
        """Sample index of each step (a step inside sample k's interval draws its mean)."""
        mid = t0 + dt * (np.arange(n) + 0.5)
        return np.clip(np.floor(mid / self.dt_sample).astype(np.int64), 0, self.power.shape[0] - 1)

    def block(self, t0, dt, n):
        demand = self.schedule.block(t0, dt, n).expanded()
        rows = self._rows(t0, dt, n)
        demand.chip[:, self.measured_chip] = self.power[rows][:, self.measured_chip]
        return Demand.per_step(demand.chip)

    def initial_demand(self, dt):
        return self.block(0.0, dt, 1)


class MeasuredBoundary:
    """Facility supply temperature and the CDU's flow from measured channels, applied per
    block (``twin.engine.simulate(boundary=...)``): block means of the samples inside it."""

    def __init__(self, model, measured: Measured):
        b = measured.spec.boundary
        self.dt = measured.dt
        self.bad = np.zeros(measured.t.size, dtype=bool)  # samples whose boundary was filled in
        self.fac = self.flow = None
        if b.facility_supply_temp:
            self.fac, bad = measured.filled(b.facility_supply_temp)
            measured.dead(b.facility_supply_temp, bad)
            self.bad |= bad
        if b.flow:
            f, bad = measured.filled(b.flow)
            measured.dead(b.flow, bad)
            self.flow = f.sum(axis=1) if f.ndim == 2 else f  # a row: the racks' flows together
            self.bad |= bad.any(axis=1) if bad.ndim == 2 else bad

    def _mean(self, x, t0, t1):
        i0 = int(np.clip(np.floor(t0 / self.dt), 0, x.size - 1))
        i1 = int(np.clip(np.ceil(t1 / self.dt), i0 + 1, x.size))
        return float(np.mean(x[i0:i1]))

    def apply(self, net, t0, t1):
        from ..build import LPM

        if self.fac is not None:
            net.fac_temp = self._mean(self.fac, t0, t1)
        if self.flow is not None:
            q = self._mean(self.flow, t0, t1) * LPM
            if q > 0:
                net.flow_setpoint_m3s = q
        # re-solved every block: were the network re-solved only when a temperature moved
        # by twin.network.REUSE_TOL_K, when it is would depend on the parameters, and the
        # fit's finite differences would see the jumps
        net.dirty = True
