"""Per-step chip power: training waveforms, thermal throttling, power caps.

Called once per thermal step from :func:`twin.kernels.thermal.advance`. The DES (SimPy)
sets the arrays when something changes (a job starts, checkpoints, fails); between those
events a synchronous training job runs here as a waveform: a compute phase whose work
advances at the pace of the job's slowest GPU, then a communication phase of fixed
length, step after step, integrated exactly over each thermal step (phase edges inside a
step are split, not sampled).

Chip parameters ``wp[chip, :]`` (columns ``WP_*``), chip state ``ws[chip, :]`` (``WS_*``),
job parameters ``jp[job, :]`` (``JP_*``) and job state ``js[job, :]`` (``JS_*``).

Clock control (per chip with WP_THROTTLE = 1): the firmware's thermal slowdown is an
integral controller on a peak-hold of the junction temperature. The hold ``Te`` follows
the junction up at once and decays toward it with the time constant ``WP_HOLD_S``, so
a 1-2 Hz training burst is seen by its peaks, not by its mean. The clock obeys
``dc/dt = -k (Te - T_throttle)`` while ``Te`` is above the throttle temperature or the
clock is below full, clamped to ``[clock_min, 1]``: it falls while the peaks are above the
limit, settles where they sit at it, and recovers once they are below. The clock applied
is the controller's output ``c`` (``WS_CLOCK_CMD``) except within one clock step
(``CLOCK_STEP``) of full, where it is full (``WS_CLOCK``). The law is
continuous in time, so its explicit update (``c += -k dt (Te - T_thr)``, ``Te`` from the
junction at the start of the step) converges as the step shrinks: its loop rate ``k dT/dc``
(~ 60 K per unit clock for a 1200 W GPU) times a 0.1 s step stays well below one
(docs/model.md, tests/test_throttle.py). ``k`` and the hold time: ASSUMPTION, GPU
clock-control laws are not published.

A chip is *throttled* during a step when its applied thermal clock is below full; the time is
counted per chip over the run (``WS_THROTTLED_S``) and per record interval
(``WS_INTERVAL_THROTTLED``, the ``*/throttled_time`` channels), the same quantity.

Shutdown is a hardware protection, independent of clock control (it applies with
``throttles = false`` too): when the junction reaches the shutdown temperature the chip
latches off for the rest of the run (power 0, its job stalls). The thermal sweep trips it
inside the step where the junction crosses the limit (:func:`twin.kernels.thermal.advance`),
so the junction peaks at the limit whatever the step.

Power at a clock fraction ``c``: ``idle + (P - idle) c^2`` (dynamic power ~ f V^2 with V
falling with f: ASSUMPTION, the exponent 2 is a parameter to calibrate). A power cap acts
as a clock limit the same way.
"""
import numpy as np
from .dispatch import kernel

WP_IDLE, WP_THR, WP_GAIN, WP_SHUT, WP_HOLD_S, WP_CMIN, WP_CAP, WP_SPEED, WP_JITTER, WP_THROTTLE, \
    WP_P_BASE, WP_P_SLOPE = range(12)
N_WP = 12  # columns of wp
WS_CLOCK, WS_SHUTDOWN, WS_THROTTLED_S, WS_CLOCK_INT, WS_HOLD_T, WS_FIRST_THROTTLE, WS_FIRST_SHUTDOWN, \
    WS_INTERVAL_THROTTLED, WS_CLOCK_CMD = range(9)
N_WS = 9  # columns of ws
# A GPU's clock moves in steps of ~15 MHz around ~2 GHz (the supported-clocks list of
# ``nvidia-smi -q -d SUPPORTED_CLOCKS`` [NV-DCGM]: 0.5-1 % apart): a controller output within
# CLOCK_STEP of full clock leaves the clock at full. Without it a junction whose peaks
# sit exactly at the limit would count as throttled for a 0.03 % clock dip, for a time
# that depends on the step (ASSUMPTION on the step size).
CLOCK_STEP = 0.005
# "Never" in kernels compiled with fastmath: LLVM may fold a comparison with a literal
# infinity (``x < inf`` to true), so limits that are off are this finite sentinel instead
# (a shut-down chip's trip temperature, a hold with no history, a frozen copy's shutdown).
NEVER = 1e300
JP_ACTIVE, JP_T_COMPUTE, JP_T_COMM, JP_P_COMPUTE, JP_P_COMM, JP_MIN_SPEED, JP_UNCAPPED = range(7)
N_JP = 7  # columns of jp
JS_PHASE, JS_REMAINING, JS_STEPS, JS_IPHASE, JS_IREMAINING, JS_ISTEPS, JS_THROTTLED_GPU_S = range(7)
N_JS = 7  # columns of js
# per-job scratch of chip_power_step: pace, whether nominal this step, compute share of
# the step, compute share times pace
JT_PACE, JT_NOMINAL, JT_FC, JT_FC_PACE = range(4)
N_JT = 4  # columns of the per-job scratch


def pace_constants(wp, jp, j, chips):
    """What the nominal path of :func:`chip_power_step` needs, from a training job's
    parameters (``jp[j]``) and its GPUs' speeds and power multipliers (``wp[chips]``),
    set when the job binds: its slowest GPU's speed, whether no GPU is power-capped at
    compute power, and per GPU the power ``P = P_BASE + f_c pace P_SLOPE`` at full
    clock, with ``P_BASE = jit P_comm`` and ``P_SLOPE = jit (P_compute - P_comm) / speed``
    (the busy share of a GPU that waits for the slowest is ``f_c pace / speed``)."""
    jit, speed = wp[chips, WP_JITTER], wp[chips, WP_SPEED]
    p_c, p_m = jp[j, JP_P_COMPUTE], jp[j, JP_P_COMM]
    wp[chips, WP_P_BASE] = jit * p_m
    wp[chips, WP_P_SLOPE] = jit * (p_c - p_m) / speed
    jp[j, JP_MIN_SPEED] = np.min(speed)
    jp[j, JP_UNCAPPED] = 1.0 if np.all(p_c * jit <= wp[chips, WP_CAP]) else 0.0


@kernel(cache=True)
def hold_decay(wp, dt, out):
    """Per-chip decay of the junction peak hold over a step: ``exp(-dt / hold_s)``."""
    for k in range(wp.shape[0]):
        out[k] = np.exp(-dt / wp[k, WP_HOLD_S])


@kernel(cache=True, error_model="numpy", inline="always")
def _cap_clock(demand, idle, cap):
    """Largest clock fraction at which ``idle + (demand - idle) c^2`` stays within ``cap``."""
    if demand <= cap or demand <= idle:
        return 1.0
    if cap <= idle:
        return 0.0
    return np.sqrt((cap - idle) / (demand - idle))


@kernel(cache=True, error_model="numpy", inline="always")
def advance_phase(js, j, i0, rate, t_compute, t_comm, dt):
    """Advance one job's phase machine (state at js[j, i0:i0+3]) by dt; returns the time
    spent in the compute phase during the step."""
    phase = js[j, i0]
    rem = js[j, i0 + 1]
    steps = js[j, i0 + 2]
    t_left = dt
    tc = 0.0
    while t_left > 1e-12:
        if phase == 0.0:
            if rate <= 0.0:
                tc += t_left
                break
            ttf = rem / rate
            if ttf > t_left:
                rem -= rate * t_left
                tc += t_left
                t_left = 0.0
            else:
                tc += ttf
                t_left -= ttf
                phase = 1.0
                rem = t_comm
        else:
            if rem > t_left:
                rem -= t_left
                t_left = 0.0
            else:
                t_left -= rem
                steps += 1.0
                phase = 0.0
                rem = t_compute
    js[j, i0] = phase
    js[j, i0 + 1] = rem
    js[j, i0 + 2] = steps
    return tc


@kernel(cache=True, error_model="numpy", fastmath=True, inline="always")
def chip_power_step(row, gstep, dt, demand, chip_x, wp, ws, chip_job, jp, js, job_tmp, hold_decay, power_out):
    """Chip power of a step [W] into ``power_out``, from the level demand ``demand[row]``;
    updates clocks, throttling and jobs.
    ``gstep`` is the global step index, kept for each chip's first throttle and shutdown
    (``WS_FIRST_THROTTLE``, ``WS_FIRST_SHUTDOWN``; -1 while it has not happened).
    ``job_tmp[job, :]`` is scratch (``JT_*``): the job's pace, whether it runs nominally
    this step (no GPU below full clock, shut down or capped), the compute share of the
    step, and that share times the pace. ``hold_decay[chip]`` is ``exp(-dt / hold_s)``
    (:func:`hold_decay`).

    A job running nominally takes the short path: its pace is its slowest GPU's speed
    and each GPU's power is ``P_BASE + f_c pace P_SLOPE`` (:func:`pace_constants`), the
    general formulas below at clock 1 (same values to round-off)."""
    n_chip = wp.shape[0]
    n_job = jp.shape[0]
    for j in range(n_job):
        job_tmp[j, JT_NOMINAL] = jp[j, JP_UNCAPPED]
    # per chip: shutdown and thermal clock control on the junction at the start of the
    # step; a chip running a training waveform only tells whether its job stays nominal;
    # any other chip draws its power from the level demand (schedules, inference,
    # checkpoints, idle, replay). WS_CLOCK_INT collects the clock deficit (1 - c) dt,
    # zero in the common case of a cool chip at full clock.
    for k in range(n_chip):
        if ws[k, WS_SHUTDOWN] <= 0.0:
            tj = chip_x[k, 0]
            thr = wp[k, WP_THR]
            if tj >= wp[k, WP_SHUT]:  # hardware protection, with or without clock control
                # (a junction crossing its limit inside a step trips there, in the thermal
                # sweep; this catches one that starts the step above it)
                ws[k, WS_SHUTDOWN] = 1.0
                chip_x[k, 6] = NEVER
                if ws[k, WS_FIRST_SHUTDOWN] < 0.0:
                    ws[k, WS_FIRST_SHUTDOWN] = gstep
            elif wp[k, WP_THROTTLE] > 0.0:
                cmd = ws[k, WS_CLOCK_CMD]
                hold = ws[k, WS_HOLD_T]
                if cmd >= 1.0 and tj <= thr and hold <= thr:
                    # at full clock with junction and hold below the limit the hold has
                    # no effect until the junction itself crosses it: no decay needed
                    ws[k, WS_HOLD_T] = tj
                else:
                    hold = max(tj, tj + (hold - tj) * hold_decay[k])
                    ws[k, WS_HOLD_T] = hold
                    cmd = min(1.0, max(wp[k, WP_CMIN], cmd - wp[k, WP_GAIN] * dt * (hold - thr)))
                    ws[k, WS_CLOCK_CMD] = cmd
                    clock = 1.0 if cmd > 1.0 - CLOCK_STEP else cmd
                    ws[k, WS_CLOCK] = clock
                    if clock < 1.0:
                        ws[k, WS_THROTTLED_S] += dt
                        ws[k, WS_INTERVAL_THROTTLED] += dt
            if tj >= thr and ws[k, WS_FIRST_THROTTLE] < 0.0:
                ws[k, WS_FIRST_THROTTLE] = gstep  # first at its throttle temperature
        jj = chip_job[k]
        j = np.uint64(jj)  # unsigned: no negative-index fix-up on the accesses below
        if jj >= 0 and jp[j, JP_ACTIVE] > 0.0:  # a training waveform
            if ws[k, WS_CLOCK] < 1.0 or ws[k, WS_SHUTDOWN] > 0.0:
                job_tmp[j, JT_NOMINAL] = 0.0
            continue
        d = demand[row, k]
        if ws[k, WS_SHUTDOWN] > 0.0:
            power_out[k] = 0.0
            ws[k, WS_CLOCK_INT] += dt
            continue
        clock = ws[k, WS_CLOCK]
        if clock >= 1.0 and d <= wp[k, WP_CAP]:
            power_out[k] = d  # full clock, under the cap: power is the demand
            continue
        idle = wp[k, WP_IDLE]
        ce = min(clock, _cap_clock(d, idle, wp[k, WP_CAP]))
        power_out[k] = idle + (d - idle) * ce * ce if d > idle else d
        ws[k, WS_CLOCK_INT] += (1.0 - ce) * dt
    # synchronous training jobs running as waveforms: each job's pace (its slowest GPU)
    # and phases
    any_active = False
    for j in range(n_job):
        if jp[j, JP_ACTIVE] <= 0.0:
            continue
        any_active = True
        if job_tmp[j, JT_NOMINAL] > 0.0:
            rate = jp[j, JP_MIN_SPEED]
            irate = rate
            n_throttled = 0.0
        else:
            rate = 1e300
            irate = 1e300
            n_throttled = 0.0
            p_compute = jp[j, JP_P_COMPUTE]
            for k in range(n_chip):
                if chip_job[k] != j:
                    continue
                cap_c = _cap_clock(p_compute * wp[k, WP_JITTER], wp[k, WP_IDLE], wp[k, WP_CAP])
                ce = 0.0 if ws[k, WS_SHUTDOWN] > 0.0 else min(ws[k, WS_CLOCK], cap_c)
                power_out[k] = ce  # scratch: the effective clock, replaced by power below
                if ws[k, WS_CLOCK] < 1.0:
                    n_throttled += 1.0
                rate = min(rate, wp[k, WP_SPEED] * ce)
                irate = min(irate, wp[k, WP_SPEED] * cap_c)
        job_tmp[j, JT_PACE] = rate
        t_c, t_m = jp[j, JP_T_COMPUTE], jp[j, JP_T_COMM]
        tc = advance_phase(js, j, JS_PHASE, rate, t_c, t_m, dt)
        advance_phase(js, j, JS_IPHASE, irate, t_c, t_m, dt)
        js[j, JS_THROTTLED_GPU_S] += n_throttled * dt
        job_tmp[j, JT_FC] = tc / dt
        job_tmp[j, JT_FC_PACE] = job_tmp[j, JT_FC] * rate
    if not any_active:
        return
    # and each training GPU's power over the step
    for k in range(n_chip):
        jj = chip_job[k]
        if jj < 0:
            continue
        j = np.uint64(jj)
        if jp[j, JP_ACTIVE] <= 0.0:
            continue
        if job_tmp[j, JT_NOMINAL] > 0.0:
            power_out[k] = wp[k, WP_P_BASE] + job_tmp[j, JT_FC_PACE] * wp[k, WP_P_SLOPE]
            continue
        ce = power_out[k]
        if ce < 1.0:
            ws[k, WS_CLOCK_INT] += (1.0 - ce) * dt
        if ws[k, WS_SHUTDOWN] > 0.0:
            power_out[k] = 0.0
            continue
        idle = wp[k, WP_IDLE]
        jit = wp[k, WP_JITTER]
        own = wp[k, WP_SPEED] * ce
        busy = job_tmp[j, JT_FC] * (job_tmp[j, JT_PACE] / own if own > 0.0 else 0.0)
        power_out[k] = busy * (idle + (jp[j, JP_P_COMPUTE] * jit - idle) * ce * ce) + (1.0 - busy) * jp[j, JP_P_COMM] * jit
