"""Faults on a schedule, applied to the network between kernel calls.

Every fault of ``scenario.faults`` becomes *cuts*: functions applied to the
:class:`twin.network.Network` at the thermal step at or after its start (and its end, if it
clears), the same mechanism the workload uses. A cut that changes the hydraulics or the
heat exchanger marks the network dirty, so flows and step coefficients are recomputed
before the next step. Each fault leaves ``events`` (time, kind, target) for the telemetry.

- ``pump_trip``: the target pump stops (its check valve closes; coast-down neglected:
  conservative). For ``controls.failover_delay_s`` (detection) the flow controller holds
  the speed of the pumps still running; then a standby pump starts if fewer pumps run
  than the CDU's ``running`` count (N+1 failover) and the controller restores the flow.
  A repaired pump returns as standby.
- ``cdu_trip``: the CDU loses heat rejection (``pumps_run = true``: pumps on UPS keep the
  loop circulating) or everything (``pumps_run = false``: pumps stop too).
- ``facility_supply_temp``: facility water arrives at ``value`` degC.
- ``facility_flow``: the facility flow drops by ``severity`` (1 = lost).
- ``plate_clog``: a share ``severity`` of the target plate's channels blocked: its
  pressure-drop coefficients rise as 1/(1-f) (laminar) and 1/(1-f)^2 (quadratic) and its
  convective conductance falls as a plate with fewer channels.
- ``tray_isolation``: the target tray's quick disconnects closed.
- ``sensor_offset``: telemetry channel ``target`` reads ``value`` high, every member or
  the one named by ``member`` (the physics is untouched: for testing calibration).
"""
from __future__ import annotations

import difflib
import math

import numpy as np

from .errors import TwinInputError, did_you_mean

# A closed quick-disconnect pair: quadratic resistance [Pa/(m3/s)^2] passing ~0.02 L/min
# at 100 kPa (ASSUMPTION: a closed UQD seals; the value only keeps the Newton system regular).
ISOLATED_B = 1.0e18
# A plate_fouling fault grows its plates' convective resistance in steps of this [s]
# (ASSUMPTION: fouling builds over hours to weeks; a minute's step is far finer).
FOULING_STEP_S = 60.0


class FaultSchedule:
    def __init__(self, model, net, dt, channels: dict):
        self.m = model
        self.net = net
        self.dt = dt
        self.cuts: list[tuple] = []  # (step, seq, fn)
        self.events: list[tuple] = []
        s = model.scenario
        from .build import path_alias
        self.alias = path_alias(s)
        self.base_fac_temp = s.facility.supply_temp_c
        self.base_fac_flow = net.fac_flow_m3s
        for i, f in enumerate(s.faults):
            self._add(i, f, channels)
        self.cuts.sort(key=lambda c: (c[0], c[1]))

    def _step(self, t):
        return int(math.ceil(t / self.dt - 1e-9))

    def _at(self, t, fn, kind=None, target=""):
        step = self._step(t)
        self.cuts.append((step, len(self.cuts), fn))
        if kind:
            self.events.append((step * self.dt, kind, target))

    def _add(self, i, f, channels):
        net, m = self.net, self.m
        file = "<scenario>"
        where = f"faults.{i}.target"
        end = f.end_s if math.isfinite(f.end_s) else None

        def dirty(fn):
            def wrapped():
                fn()
                net.dirty = True
            return wrapped

        target = self.alias(f.target) if f.target else ""
        if f.kind == "pump_trip":
            names = [m.edge_names[e] for e in m.pump_edges]
            if target not in names:
                raise TwinInputError(file, where, f"no pump {f.target!r} (pumps: {', '.join(names)})")
            k = names.index(target)
            own = m.pump_cdu == m.pump_cdu[k]  # the pumps of its CDU
            tripped = net.pump_tripped

            def trip():
                net.pump_on[k] = False
                tripped[k] = True
                net.hold_speed = True

            def failover():
                net.hold_speed = False
                need = int(m.scenario.cdu.pumps.running) - int(np.sum(net.pump_on[own]))
                for j in range(net.pump_on.size):
                    if need > 0 and own[j] and not net.pump_on[j] and not tripped[j]:
                        net.pump_on[j] = True
                        need -= 1
                running = ", ".join(names[j] for j in range(net.pump_on.size) if net.pump_on[j]) or "none"
                self.events.append((self._step(f.start_s + m.scenario.controls.failover_delay_s) * self.dt,
                                    "failover", running))

            def repair():
                tripped[k] = False
            self._at(f.start_s, dirty(trip), "pump_trip", f.target)
            self._at(f.start_s + m.scenario.controls.failover_delay_s, dirty(failover))
            if end:
                self._at(end, repair, "pump_repaired", f.target)
        elif f.kind == "cdu_trip":
            saved = {}
            if target in ("", "cdu"):  # every CDU
                hit = np.ones(m.n_cdus, dtype=bool)
            elif target in m.cdu_names:
                hit = np.array([n == target for n in m.cdu_names])
            else:
                raise TwinInputError(file, where, f"no CDU {f.target!r} (CDUs: {', '.join(m.cdu_names)})")
            pumps = hit[m.pump_cdu]
            label = f.target or "cdu"

            def trip():
                net.hx_lost[hit] = True
                if not f.pumps_run:
                    saved["on"] = net.pump_on.copy()
                    net.pump_on[pumps] = False

            def clear():
                net.hx_lost[hit] = False
                if "on" in saved:
                    net.pump_on[pumps] = saved["on"][pumps]
            self._at(f.start_s, dirty(trip), "cdu_trip", label)
            if end:
                self._at(end, dirty(clear), "cdu_restored", label)
        elif f.kind == "facility_supply_temp":
            def hot():
                net.fac_temp = f.value

            def back():
                net.fac_temp = self.base_fac_temp
            self._at(f.start_s, dirty(hot), "facility_supply_temp", f"{f.value:g} degC")
            if end:
                self._at(end, dirty(back), "facility_supply_temp_end", f"{self.base_fac_temp:g} degC")
        elif f.kind == "facility_flow":
            def low():  # the supply itself fails: the valve's full-open flow falls with it
                net.fac_flow_max_m3s = self.base_fac_flow * (1.0 - f.severity)
                net.fac_flow_m3s *= (1.0 - f.severity)

            def back():
                net.fac_flow_m3s *= self.base_fac_flow / max(net.fac_flow_max_m3s, 1e-12)
                net.fac_flow_max_m3s = self.base_fac_flow
            self._at(f.start_s, dirty(low), "facility_flow_loss", f"{f.severity:g}")
            if end:
                self._at(end, dirty(back), "facility_flow_restored", "")
        elif f.kind == "plate_clog":
            if target not in m.chip_names:
                raise TwinInputError(file, where, f"no chip {f.target!r} (e.g. {m.chip_names[0]})")
            k = m.chip_names.index(target)

            def clog(frac):
                def fn():
                    net.chip_clog[k] = frac
                    self._path_coefficients(m.chip_path_edge[k])
                return fn
            self._at(f.start_s, dirty(clog(f.severity)), "plate_clog", f.target)
            if end:
                self._at(end, dirty(clog(0.0)), "plate_clog_cleared", f.target)
        elif f.kind == "tray_isolation":
            if target not in m.tray_names:
                raise TwinInputError(file, where, f"no tray {f.target!r} (e.g. {m.tray_names[0]})")
            t = m.tray_names.index(target)
            edges = [m.tray_supply_edge[t], m.tray_return_edge[t]]

            def close():
                net.edge_b[edges] = m.edge_b[edges] + ISOLATED_B

            def reopen():
                net.edge_b[edges] = m.edge_b[edges]
            self._at(f.start_s, dirty(close), "tray_isolation", f.target)
            if end:
                self._at(end, dirty(reopen), "tray_reconnected", f.target)
        elif f.kind == "restriction":
            if target not in m.edge_names:
                near = difflib.get_close_matches(target, m.edge_names, n=3, cutoff=0.5)
                raise TwinInputError(file, where, f"no hose, pipe or tray branch {f.target!r}"
                                     + (f"; near: {', '.join(near)}" if near else f" (e.g. {m.edge_names[-1]})"))
            e = m.edge_names.index(target)

            def narrow(frac):
                def fn():  # a share f of the bore's area blocked: the drop grows as 1/(1-f)^2
                    net.edge_a[e] = m.edge_a[e] / (1.0 - frac)
                    net.edge_b[e] = m.edge_b[e] / (1.0 - frac) ** 2
                return fn
            self._at(f.start_s, dirty(narrow(f.severity)), "restriction", f.target)
            if end:
                self._at(end, dirty(narrow(0.0)), "restriction_cleared", f.target)
        elif f.kind == "plate_fouling":
            from .components.base import _matches

            pattern = target or "*/*/*"
            chips = np.array([k for k, p in enumerate(m.chip_names) if _matches(pattern, p)], dtype=np.int64)
            if not chips.size:
                raise TwinInputError(file, where, f"no chip matches {f.target!r} (e.g. {m.chip_names[0]})")
            if not (math.isfinite(f.end_s) and f.value > 0):
                raise TwinInputError(file, where.replace("target", "value"), "plate_fouling needs an end_s and the "
                                     "convective-resistance multiplier reached there (value > 0)")
            start = net.chip_convective_scale[chips].copy()
            n = max(1, int(math.ceil((f.end_s - f.start_s) / FOULING_STEP_S)))

            def grow(frac):
                def fn():
                    net.chip_convective_scale[chips] = start * (1.0 + frac * (f.value - 1.0))
                return fn
            self._at(f.start_s, dirty(grow(0.0)), "plate_fouling", f.target or "every plate")
            for i in range(1, n + 1):  # grows linearly, a step a minute
                self._at(f.start_s + (f.end_s - f.start_s) * i / n, dirty(grow(i / n)))
        elif f.kind == "sensor_offset":
            if f.target not in channels:
                raise TwinInputError(file, where, f"no telemetry channel {f.target!r}")
            key, label = (f.target, -1), f.target
            if f.member:
                members = m.channel_members(f.target)
                if members is None:
                    raise TwinInputError(file, f"faults.{i}.member", f"{f.target!r} has one value a sample, no members")
                member = self.alias(f.member)
                if member not in members:
                    raise TwinInputError(file, f"faults.{i}.member", f"{f.target!r} has no member {f.member!r}"
                                         + did_you_mean(member, members))
                key, label = (f.target, members.index(member)), f"{f.target} of {member}"

            def on():
                net.sensor_offsets[key] = f.value

            def off():
                net.sensor_offsets.pop(key, None)
            self._at(f.start_s, on, "sensor_offset", label)
            if end:
                self._at(end, off, "sensor_offset_end", label)

    def _path_coefficients(self, e):
        """Re-sum a path's pressure-drop coefficients from its plates' clogging."""
        m, net = self.m, self.net
        chips = np.nonzero(m.chip_path_edge == e)[0]
        open_frac = 1.0 - net.chip_clog[chips]
        net.edge_a[e] = np.sum(m.chip_dp_a[chips] / open_frac)
        net.edge_b[e] = np.sum(m.chip_dp_b[chips] / open_frac**2)

    def take_cuts(self, step_end):
        due = [(s, fn) for s, _, fn in self.cuts if s < step_end]
        self.cuts = [c for c in self.cuts if c[0] >= step_end]
        return due


def sensor_offset(offsets: dict, channel: str, member_shape=()):
    """What the faulty sensors of ``channel`` add to it: a number for a 1-D channel, one
    per member for a 2-D one (``offsets``: (channel, member column or -1) -> value, as
    ``twin.faults`` sets them)."""
    total = np.zeros(member_shape)
    for (c, col), v in offsets.items():
        if c != channel:
            continue
        if col < 0:
            total = total + v
        else:
            total[col] += v
    return total
