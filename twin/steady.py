"""The steady start: the state a rack reaches after running its t = 0 workload for a while.

:func:`steady_state` integrates the network in pseudo-time (steps of ``STEADY_DT_S``)
until no temperature moves; under supply-temperature control it first finds the valve
position that holds the setpoint, and where a training swing could reach a throttle limit
it warms up on the real waveform (``WARMUP_S`` a round). A run
(:func:`twin.engine.simulate`) starts from it unless the scenario sets
``simulation.initial_temp_c``.
"""
from __future__ import annotations

import numpy as np

from .kernels import thermal as tk
from .kernels import workload as kw
from .network import Network, NetworkState, _empty_records

# Steady initialisation: pseudo-time step [s] and convergence on the largest temperature
# change over a 100-step block [K].
STEADY_DT_S = 1.0
STEADY_TOL_K = 1e-9  # (see above)
# The clock controllers' gains during the steady start: its 1 s pseudo-time steps times the
# default gain times a GPU's ~60 K per unit clock would overshoot (3 per step); a tenth
# keeps the explicit update monotone. The throttled equilibrium does not depend on it.
STEADY_GAIN_SCALE = 0.1
# Warm-up of a steady start whose training swings reach a throttle limit: seconds of the
# real waveform per round (the clock controllers settle in ~1 s, plates in ~10 s).
WARMUP_S = 30.0


def steady_state(net: Network, source, state: NetworkState | None = None,
                 max_time_s: float = 20000.0) -> NetworkState:
    """The state a rack reaches after running its t = 0 workload for a while.

    First the power is held at its value at t = 0 (training swings at their mean) and the
    network integrated in pseudo-time until nothing changes; chips throttle on the way (a
    load the cooling cannot carry settles throttled at the throttle temperature). Where a
    training swing could lift a junction to its throttle temperature although the mean
    does not (:func:`_swing_reaches_limit`), the real waveform then runs for
    ``WARMUP_S`` with clock control and no shutdown, the loop is re-converged at the mean
    power that warm-up drew, and the waveform runs once more: clocks, peak holds and job
    phases start the run from that periodic state, so a rack whose bursts throttle
    starts throttled the way it would have run, not with clocks set for its mean."""
    m = net.m
    s = m.scenario
    dt = s.simulation.time_step_s
    guess = s.facility.supply_temp_c + s.cdu.heat_exchanger.approach_k
    state = state or NetworkState.uniform(m, guess, s.controls.pump_speed_fraction)
    d0 = source.initial_demand(dt)
    block = 100
    chip_p = d0.chip[d0.row[:1]]
    wl = source.kernel.frozen(STEADY_GAIN_SCALE)
    rec = _empty_records(m, 0, wl.jp.shape[0])
    net.ideal_pumps = True
    net.dirty = True
    if s.controls.supply_temp_control:
        _valve_for_setpoint(net, state, chip_p, rec, wl, block, max_time_s)
    _converge(net, state, chip_p, rec, wl, block, max_time_s)
    kern = source.kernel
    ws = kern.ws
    # the run starts throttled where the steady state is: clocks and the controllers'
    # junction peak holds carry over, counters do not (only the run is reported)
    carried = [kw.WS_CLOCK, kw.WS_CLOCK_CMD, kw.WS_HOLD_T]
    ws[:, carried] = wl.ws[:, carried]
    if _swing_reaches_limit(net, state, kern, chip_p[0]):
        warm = kern.copy(shutdown=False)
        for rnd in range(2):
            mean_p = _warm_up(net, state, warm, chip_p, dt)
            if rnd == 0:  # the loop at the power the throttled waveform really draws
                fixed = warm.frozen(0.0)
                fixed.ws[:, kw.WS_CLOCK] = 1.0  # mean_p is already the power at the clock
                _converge(net, state, mean_p[None, :], rec, fixed, block, max_time_s)
        ws[:, carried] = warm.ws[:, carried]
        js = kern.js
        for real, ideal in ((kw.JS_PHASE, kw.JS_IPHASE), (kw.JS_REMAINING, kw.JS_IREMAINING)):
            js[:, real] = js[:, ideal] = warm.js[:, real]
    net.ideal_pumps = False
    state.acc[:] = 0.0
    state.chip_tj_max[:] = -np.inf
    state.interval_tj_max[:] = -np.inf
    return state


def _swing_reaches_limit(net, state, kern, mean_p) -> bool:
    """Whether a chip running a training waveform could reach its throttle temperature at
    the peak of its swing: its steady junction plus its junction-to-inlet resistance
    times the swing above its mean power (an upper bound on the periodic peak)."""
    m = net.m
    jobs = kern.chip_job
    active = np.array([j >= 0 and kern.jp[j, kw.JP_ACTIVE] > 0 for j in jobs])
    if not active.any():
        return False
    with np.errstate(divide="ignore"):
        r_ja = m.chip_r_jb + np.where(net.chip_g > 0, 1.0 / np.maximum(net.chip_g, 1e-300), np.inf)
    peak = np.where(active, kern.jp[np.maximum(jobs, 0), kw.JP_P_COMPUTE] * kern.wp[:, kw.WP_JITTER], 0.0)
    reach = state.chip_x[:, 0] + r_ja * np.maximum(peak - mean_p, 0.0)
    return bool(np.any(active & (kern.wp[:, kw.WP_THROTTLE] > 0) & (reach >= m.chip_throttle_c)))


def _warm_up(net, state, wl, chip_p, dt) -> np.ndarray:
    """Run the real waveforms for WARMUP_S with clock control (``wl``: the kernel arrays,
    updated); returns each chip's mean power over it [W]."""
    m = net.m
    n = int(round(WARMUP_S / dt))
    state.acc[:] = 0.0
    net.refresh(state, dt)
    net.advance(state, dt, 0, n, 10**9, chip_p, _empty_records(m, 0, wl.jp.shape[0]), wl)
    return state.acc[tk.ACC_CHIPS:tk.ACC_CHIPS + m.n_chips] / (n * dt)


def _valve_for_setpoint(net, state, chip_p, rec, wl, block, max_time_s):
    """Steady start under supply-temperature control: the valve position that holds the
    setpoint at steady state (secant on position, each step converged)."""
    m = net.m
    sp = m.scenario.controls.supply_temp_setpoint_c
    lo = m.scenario.controls.valve_min_position

    def err(pos):
        net.fac_flow_m3s = pos * net.fac_flow_max_m3s
        net.dirty = True
        _converge(net, state, chip_p, rec, wl, block, max_time_s)
        return state.node_t[m.node["cdu_supply"]] - sp

    x0, x1 = 1.0, 0.5
    f0 = err(x0)
    if f0 > 0:  # too warm even fully open: the valve stays open
        err(1.0)
        return
    f1 = err(x1)
    for _ in range(20):
        if abs(f1) < 0.005 or f1 == f0:
            break
        x2 = min(max(x1 - f1 * (x1 - x0) / (f1 - f0), lo), 1.0)
        x0, f0, x1 = x1, f1, x2
        f1 = err(x1)


def _converge(net, state, chip_p, rec, wl, block, max_time_s):
    """Run pseudo-time steps of STEADY_DT_S until no temperature moves."""
    t = 0.0
    final_pass = False
    while t < max_time_s:
        net.refresh(state, STEADY_DT_S)
        before = np.concatenate([state.chip_x.ravel(), state.cell_t])
        net.advance(state, STEADY_DT_S, 1, block, 10**9, chip_p, rec, wl)
        t += block * STEADY_DT_S
        after = np.concatenate([state.chip_x.ravel(), state.cell_t])
        if np.max(np.abs(after - before)) < STEADY_TOL_K:
            if final_pass:
                break
            # converged on coefficients that may be up to REUSE_TOL_K old: refresh them
            # and converge once more, so the run starts from a true steady state
            net.dirty, final_pass = True, True
        else:
            final_pass = False
