"""Chip power sources: the interface the engine draws power from, and the schedule.

A power source gives, for a block of steps, every chip's *step-mean* power demand [W]
(each tray's auxiliary power follows its chips' power, in the kernel). The engine calls :meth:`PowerSource.block` once per block
(seconds of simulated time), never per step, so the SimPy workload model
(:class:`twin.workload.RackWorkload`), a measured trace (:class:`twin.workload.ReplaySource`)
and this schedule drive the kernels the same way. A source also owns the kernel's
workload arrays (``kernel``: clocks, throttle state, running training waveforms), the
``cuts`` it wants applied at step boundaries, its ``jobs`` and ``events``. Junction
temperatures reach the workload through those arrays: throttling runs in the kernel.
"""
from __future__ import annotations

import math
from typing import NamedTuple, Protocol

import numpy as np


class Demand(NamedTuple):
    """Step-mean power of a block of steps, stored once per distinct row: step ``i`` has
    chip demand ``chip[row[i]]`` [W]. A block whose
    demand does not change is one row (the common case: the kernel then reads one cached
    row instead of a fresh one every step, and nothing is built per step)."""

    chip: np.ndarray  # (rows, n_chips)
    row: np.ndarray  # (n_steps,) int64

    @classmethod
    def constant(cls, chip_row, n_steps):
        return cls(np.asarray(chip_row, dtype=float)[None, :].copy(), np.zeros(n_steps, dtype=np.int64))

    @classmethod
    def per_step(cls, chip):
        return cls(chip, np.arange(chip.shape[0], dtype=np.int64))

    def expanded(self) -> "Demand":
        """The same demand with one row per step (to edit steps one by one)."""
        return Demand.per_step(self.chip[self.row])


class PowerSource(Protocol):
    kernel: object  # twin.workload.KernelWorkload
    jobs: list
    events: list

    def block(self, t0: float, dt: float, n_steps: int) -> Demand:
        """Step-mean chip demand of the block [W]."""

    def initial_demand(self, dt: float) -> Demand:
        """Demand at t = 0 (one step), for the steady-state start."""

    def take_cuts(self, step_end: int) -> list:
        """[(global step, function)] to apply to ``kernel`` before that step, in order."""


def _square_integral(t, period, duty, high, low):
    """Integral over [0, t] of a square wave that starts high at t = 0 (vectorised)."""
    cycles = np.floor(t / period)
    phase = t - cycles * period
    return low * t + (high - low) * (cycles * duty * period + np.minimum(phase, duty * period))


class SchedulePower:
    """Chip power from the scenario's ``workload.schedule``: constants and square waves.

    Entries apply to one chip type each, inside ``[start_s, end_s)``; a later entry
    overrides earlier ones where they overlap; chips with no entry in force run at their
    ``idle_w``. Step means are exact integrals of the schedule (edges inside a step are
    averaged, not sampled), so the result does not depend on where step edges fall.
    """

    def __init__(self, model):
        self.model = model
        # one group per (rack, chip type): each rack runs its own workload's schedule,
        # shifted by its phase offset (a single rack: one group per chip type)
        self.types = []  # group keys (rack, chip type)
        self.type_chips = {}
        self.offset = {}
        entries = {}
        for r in range(model.n_racks):
            chips = np.nonzero(model.chip_rack == r)[0]
            for t in sorted({model.chip_type[k] for k in chips}):
                key = (r, t)
                self.types.append(key)
                self.type_chips[key] = chips[[model.chip_type[k] == t for k in chips]].astype(np.int64)
                self.offset[key] = float(model.rack_offset_s[r])
                entries[key] = [e for e in model.rack_workloads[r].schedule if e.chips == t]
        self.entries = entries

        # per group: the pieces [a, b) of the time line with the entry in force
        # (None = idle); the last entry covering a piece wins. An entry from t = 0 is in
        # force before it too (a rack whose timeline is shifted later starts in it).
        self.pieces = {}
        for t in self.types:
            entries = self.entries[t]
            starts = [-math.inf if e.start_s <= 0.0 else e.start_s for e in entries]
            bps = sorted({-math.inf, 0.0, *starts, *[e.end_s for e in entries if math.isfinite(e.end_s)]})
            bps.append(math.inf)
            pieces = []
            for a, b in zip(bps[:-1], bps[1:]):
                active = None
                for e, st in zip(entries, starts):
                    if st <= a and e.end_s >= b:
                        active = e
                pieces.append((a, b, active))
            self.pieces[t] = pieces

    def _fraction(self, ctype, active):
        chips = self.type_chips[ctype]
        if active is None:
            return self.model.chip_idle[chips] / self.model.chip_tdp[chips]
        return active.fraction_of_tdp

    def _fraction_integral(self, ctype, times):
        """Integral of each chip's power (its fraction of TDP, idle for unscheduled time)
        over [0, t], in the group's own (offset) time, times its TDP: (time, chip) [J]."""
        chips = self.type_chips[ctype]
        times = np.asarray(times, dtype=float) - self.offset[ctype]
        total = np.zeros(times.shape + (chips.size,))
        for a, b, active in self.pieces[ctype]:
            lo = np.clip(times, a, b)
            if active is None or active.kind == "constant":
                total += np.multiply.outer(lo - (0.0 if a == -math.inf else a), self._fraction(ctype, active)
                                           * np.ones(chips.size))
            else:
                args = (active.period_s, active.duty, active.high_fraction_of_tdp, active.low_fraction_of_tdp)
                start = 0.0 if a == -math.inf else a
                total += (_square_integral(lo - active.start_s, *args)
                          - _square_integral(np.full_like(lo, start) - active.start_s, *args))[..., None]
        return total * self.model.chip_tdp[chips]

    def block(self, t0, dt, n_steps, override=None):
        """Step-mean demand of the block; ``override = (chips, watts)`` replaces the
        schedule's demand of those chips over the whole block (the DES's GPU levels)."""
        t1 = t0 + dt * n_steps
        # groups constant over the whole block set one row, broadcast to every step
        row = np.zeros(self.model.n_chips)
        varying = []
        for t in self.types:
            off = self.offset[t]
            piece = [p for p in self.pieces[t] if p[0] < t1 - off and p[1] > t0 - off]
            if len(piece) == 1 and (piece[0][2] is None or piece[0][2].kind == "constant"):
                chips = self.type_chips[t]
                row[chips] = self._fraction(t, piece[0][2]) * self.model.chip_tdp[chips]
            else:
                varying.append(t)
        if override is not None:
            row[override[0]] = override[1]
        if not varying:
            return Demand.constant(row, n_steps)
        chip = np.empty((n_steps, self.model.n_chips))
        chip[:] = row
        edges = t0 + dt * np.arange(n_steps + 1)
        for t in varying:
            integral = self._fraction_integral(t, edges)
            chip[:, self.type_chips[t]] = np.diff(integral, axis=0) / dt
        if override is not None:
            chip[:, override[0]] = override[1]
        return Demand.per_step(chip)
