"""How a run ends: completed, interrupted, or stopped at a limit of the model.

After every segment the coolant is checked against what the model represents
(:class:`CoolantLimits`): a run that leaves it, or that is interrupted (SIGINT, SIGTERM:
:func:`_interrupts`), ends there with its file whole and marked incomplete
(:class:`RunEnd`).
"""
from __future__ import annotations

import math
import signal
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from .build import Model
from .errors import pending_signal
from .kernels import thermal as tk


@dataclass
class RunEnd:
    """How a run ended: ``completed``, ``interrupted`` (a signal) or stopped at a model
    limit (``kind`` names it); the time reached and the events it adds."""

    time_s: float = 0.0
    kind: str = ""
    reason: str = "running"
    signal: int = 0
    events: list = field(default_factory=list)
    late: int = 0  # a signal that came once the run had ended, while it closed its file: the caller's

    @property
    def stopped(self) -> bool:
        return bool(self.kind)

    @property
    def is_complete(self) -> bool:
        return self.kind == "completed"

    def stop(self, kind, where, t, message):
        if self.stopped:
            return
        self.kind, self.time_s = kind, t
        self.reason = f"stopped at {t:g} s: {kind} at {where}: {message}"
        self.events.append((t, kind, where))

    def interrupt(self, signum):
        """Called from a signal handler: the loop stops after the current segment."""
        if not self.stopped:
            self.kind, self.signal = "interrupted", signum
            self.reason = f"interrupted by {signal.Signals(signum).name}"

    def reraise(self) -> None:
        """For a command made of many runs (``twin size``, ``twin check``, ``twin compare``):
        a run that was interrupted stops them all, as the signal would have outside a run,
        instead of counting as a run that ended early."""
        if self.kind == "interrupted":
            from .errors import Terminated

            raise Terminated() if self.signal == signal.SIGTERM else KeyboardInterrupt()

    def complete(self, duration):
        self.kind, self.time_s, self.reason = "completed", duration, "completed"


class Interrupted(KeyboardInterrupt):
    """A signal (SIGINT, SIGTERM) that stopped a run whose caller cannot use a partial run
    (a calibration's model run): the caller stops too, with exit status 128 + ``signum``."""

    def __init__(self, signum: int):
        self.signum = signum
        super().__init__(f"interrupted by {signal.Signals(signum).name}")


@contextmanager
def _interrupts(end: RunEnd):
    """SIGINT and SIGTERM stop the run after the current segment instead of killing it,
    so the file is closed whole and marked incomplete. A second signal raises
    KeyboardInterrupt (the run aborts and removes its partial file). Only in the main
    thread (signal handlers cannot be installed elsewhere). A signal the process ignores
    (``nohup``, a background job of a non-interactive shell, ``twin check``'s worker
    processes for SIGINT) stays ignored. A signal that comes after the run has ended, while
    it closes its file, is delivered again once the caller's handlers are back: a command
    of many runs (``twin size``) would otherwise lose a Ctrl-C that fell between two."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):  # noqa: ARG001
        if end.kind == "interrupted":
            raise KeyboardInterrupt
        if end.stopped:  # the run is over (complete, or at a limit) and closing its file: not this run's
            end.late = end.late or signum
            return
        end.interrupt(signum)

    old = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)
           if signal.getsignal(sig) is not signal.SIG_IGN}
    if pending_signal():  # the command line took a signal a finalizer swallowed: this run does not start
        end.interrupt(pending_signal())
    try:
        yield
    finally:
        for sig, h in old.items():
            signal.signal(sig, h)
        if end.late:  # delivered again to the handler it would have met outside the run: not lost
            signal.raise_signal(end.late)


class CoolantLimits:
    """The coolant states the model represents: liquid between its freezing point and its
    boiling point at 1 atm (``twin.coolant``), inside the property tables. Tracks the
    run's coolant extremes (every cell at the end of each segment, and every coolant
    temperature recorded in it: the tray and rack returns, the rack and CDU supplies and
    returns, whose step means between two segment ends can pass the cells' values at
    them) for the ``coolant_temp_*`` margins and stops the run, with a named event, where
    the coolant leaves that range or a temperature stops being finite."""

    def __init__(self, model: Model):
        table = model.coolant
        self.m = model
        self.freeze_c = max(table.freezing_temp_c, float(table.temp_c[0]))
        self.boil_c = min(table.boiling_temp_c, float(table.temp_c[-1]))
        self.boil_note = (f"boiling at 1 atm: {table.boiling_temp_c:.2f} degC; property table to "
                          f"{table.temp_c[-1]:.0f} degC")
        self.freeze_note = (f"freezing: {table.freezing_temp_c:.0f} degC; property table from "
                            f"{table.temp_c[0]:.0f} degC")
        self.t_max, self.t_min = -np.inf, np.inf
        self.where_max = self.where_min = ""
        fluid = model.cell_kind != tk.PLATE
        self.fluid_cells = np.nonzero(fluid)[0]
        self.names = [model.edge_names[e] for e in model.cell_edge[self.fluid_cells]]
        self.n_plates = len(model.chip_names)
        self.rec_names = None  # the recorded temperatures' places, from the network at the first records

    def _recorded_names(self, net) -> list:
        """Where each recorded coolant temperature is (columns of ``edge_out``, then of
        ``node_t``): tray returns by their edge, the rack inlet and outlet nodes as the
        rack's supply and return, the CDU's nodes by name."""
        m = self.m
        rack_of = {int(n): f"{r}/supply" for r, n in zip(m.rack_names, m.rack_in_node)}
        rack_of.update({int(n): f"{r}/return" for r, n in zip(m.rack_names, m.rack_out_node)})
        return [m.edge_names[e] for e in net.rec_edges] + [rack_of.get(int(i), m.node_names[i]) for i in net.rec_nodes]

    def check(self, net, state, end: RunEnd, t: float, rec: dict | None = None, rows: int = 0) -> None:
        """The cells' temperatures now, and ``rows`` rows of records ``rec`` (the segment's)."""
        parts = [state.cell_t[self.fluid_cells], state.chip_x[:, 2]]
        if rows:
            if self.rec_names is None:
                self.rec_names = self._recorded_names(net)
            recorded = np.concatenate([rec["edge_out"][:rows], rec["node_t"][:rows]], axis=1)
            parts += [recorded.max(axis=0), recorded.min(axis=0)]
        temps = np.concatenate(parts)
        chips = state.chip_x
        if not (np.all(np.isfinite(temps)) and np.all(np.isfinite(chips))):
            self.t_max = self.t_min = math.nan
            end.stop("non_finite_state", "network", t, "a temperature is not finite")
            return
        i, j = int(np.argmax(temps)), int(np.argmin(temps))
        if temps[i] > self.t_max:
            self.t_max, self.where_max = float(temps[i]), self._name(i)
        if temps[j] < self.t_min:
            self.t_min, self.where_min = float(temps[j]), self._name(j)
        if temps[i] >= self.boil_c:
            end.stop("coolant_boiling", self._name(i), t,
                     f"{temps[i]:.1f} degC, at or above {self.boil_c:.1f} degC ({self.boil_note})")
        elif temps[j] <= self.freeze_c:
            end.stop("coolant_freezing", self._name(j), t,
                     f"{temps[j]:.1f} degC, at or below {self.freeze_c:.1f} degC ({self.freeze_note})")

    def _name(self, i):
        n = len(self.fluid_cells)
        if i < n:
            return self.names[i]
        if i < n + self.n_plates:
            return f"{self.m.chip_names[i - n]} plate"
        return self.rec_names[(i - n - self.n_plates) % len(self.rec_names)]
