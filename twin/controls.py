"""CDU controllers: PI on pump speed (rack flow or rack dP) and on the facility valve
(secondary supply temperature).

Both are discrete PI controllers sampled every ``controls.control_interval_s``, in the
form most industrial controllers use (ISA "ideal" PI: ``u = Kp (e + (1/Ti) sum e dt)``),
with output limits, a rate limit on the actuator (a pump VFD's ramp, a valve's stroke
time) and anti-windup by conditional integration: the integral is frozen while the output
sits at a limit and the error pushes further into it (Astrom & Hagglund, *Advanced PID
Control*, ISA 2006, sec. 3.5 [ASTROM06]). Tuning defaults: ASSUMPTION, checked by the tests for
overshoot and settling on the reference rack.

Pump tuning: the hydraulic network answers a speed change at once (a static plant of
relative gain G ~ 1.4 per unit speed for flow, ~3 for dP), sampled every second, so the
loop is nearly pure integral control. With a = G Kp and b = G Kp dt/Ti the error obeys
e(k+1) = (1 - a - b) e(k) + a e(k-1); the defaults Kp = 0.05, Ti = 0.25 s put its roots at
0.74 and -0.09 for flow (settled in ~10 samples, no ringing) and 0.53 and -0.28 for dP.
Valve tuning: the supply temperature follows the valve through the heat exchanger and
the loop's thermal mass (tens of seconds): Kp = 0.08 per K, Ti = 40 s, stroke 5 %/s.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .build import LPM


@dataclass
class PI:
    kp: float
    ti_s: float
    lo: float
    hi: float
    ramp_per_s: float
    output: float
    integral: float = 0.0

    def start_at(self, output: float) -> None:
        """Bumpless start: the integral that gives ``output`` at zero error."""
        self.output = output
        self.integral = output * self.ti_s / self.kp

    def step(self, error: float, dt: float) -> float:
        trial = self.kp * (error + (self.integral + error * dt) / self.ti_s)
        saturated_hi = trial > self.hi and error > 0
        saturated_lo = trial < self.lo and error < 0
        if not (saturated_hi or saturated_lo):
            self.integral += error * dt
        u = self.kp * (error + self.integral / self.ti_s)
        u = min(max(u, self.lo), self.hi)
        u = min(max(u, self.output - self.ramp_per_s * dt), self.output + self.ramp_per_s * dt)
        self.output = u
        return u


def _in_force(changes, t, initial):
    value = initial
    for time_s, v in sorted(changes):
        if t + 1e-9 >= time_s:
            value = v
    return value


class CduControls:
    """The pump and valve controllers of one CDU, stepped by the engine."""

    def __init__(self, net, state):
        c = net.m.scenario.controls
        self.c = c
        self.net = net
        self.pump = None
        self.valve = None
        if c.pump_mode == "pid":
            on = net.pump_on
            speed0 = float(state.speed[on].max()) if on.any() else c.pump_speed_min
            self.pump = PI(c.pump_kp, c.pump_ti_s, c.pump_speed_min, c.pump_speed_max, c.pump_ramp_per_s, speed0)
            self.pump.start_at(speed0)
        if c.supply_temp_control:
            pos0 = net.fac_flow_m3s / net.fac_flow_max_m3s
            self.valve = PI(c.valve_kp, c.valve_ti_s, c.valve_min_position, 1.0, c.valve_ramp_per_s, pos0)
            self.valve.start_at(pos0)

    @property
    def active(self) -> bool:
        return self.pump is not None or self.valve is not None

    def pump_setpoint(self, t):
        c = self.c
        return _in_force(c.setpoint_changes, t, c.flow_setpoint_lpm if c.pid_variable == "flow" else c.dp_setpoint_kpa)

    def measured(self, hyd):
        m = self.net.m
        if self.c.pid_variable == "flow":  # the flow the CDUs deliver (one rack: its supply hose's)
            q = hyd.flow_m3s[m.cdu_hx_edge].sum() if m.is_row else hyd.flow_m3s[m.edge["supply_hose"]]
            return q / LPM
        return (hyd.pressure_pa[m.node["rack_in"]] - hyd.pressure_pa[m.node["rack_out"]]) / 1e3

    def update(self, t, state, dt):
        """One controller sample at time t; marks the network dirty if an actuator moved."""
        net = self.net
        if self.pump is not None and net.hyd is not None:
            sp = self.pump_setpoint(t)
            error = (sp - self.measured(net.hyd)) / sp
            new = self.pump.step(error, dt)
            target = np.where(net.pump_on, new, 0.0)
            if not np.allclose(target, state.speed, rtol=0, atol=1e-9):
                state.speed = target
                net.dirty = True
        if self.valve is not None:
            sp = _in_force(self.c.supply_temp_changes, t, self.c.supply_temp_setpoint_c)
            measured = state.node_t[net.m.node["cdu_supply"]]
            pos = self.valve.step(measured - sp, dt)
            flow = pos * net.fac_flow_max_m3s
            if not math.isclose(flow, net.fac_flow_m3s, rel_tol=0, abs_tol=1e-12):
                net.fac_flow_m3s = flow
                net.dirty = True
