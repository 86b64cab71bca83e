"""The rack's workload: a SimPy discrete-event model of jobs on GPUs, and trace replay.

Jobs are plain generator processes (``training_job``, ``inference_job``) on a
``simpy.Environment``; a FIFO queue places them on free GPUs. The DES never spends an
event per training step: while a training job runs, its compute/communication swing is
handed to the kernel as a waveform (:mod:`twin.kernels.workload`), and DES events are kept
for what changes it: start, checkpoint, failure, restart, end. ``workload.mode =
"step_by_step"`` instead emits one event per phase (the reference the waveform is tested
against).

Coupling with the engine: each block, the engine asks :meth:`RackWorkload.block` for the
chip power demand of the block's steps; that runs the DES to the block's end. Changes to
the GPU power *level* (idle, checkpoint, inference load, phases in step-by-step mode) are
recorded at their exact times and enter the demand as exact step means. Changes to a
running waveform (start, pause, revert to a checkpoint) are *cuts*: functions the engine
applies between kernel calls at the step boundary at or after their time. Job event times
(start, checkpoint, failure, restart) are drawn on the thermal step grid.

The kernel reports junction temperatures back through its own throttle control: a hot GPU
slows, a slow GPU stretches its job's compute phase, the job's other GPUs wait for it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import simpy

from .kernels import workload as kw
from .power import Demand, SchedulePower

TRAINING, INFERENCE = "training", "inference"


def default_kernel_arrays(model, n_jobs=0):
    """Chip and job arrays for the kernel: throttle parameters from each chip instance
    (its type's, with the scenario's overrides), every clock at 1, no job running."""
    n = model.n_chips
    wp = np.zeros((n, kw.N_WP))
    caps = np.array([min(model.rack_workloads[r].gpu_power_cap_w, kw.NEVER) for r in model.chip_rack]) \
        if n else np.zeros(0)
    gpu = np.array([t == "gpu" for t in model.chip_type], dtype=bool)
    wp[:, kw.WP_IDLE] = model.chip_idle
    wp[:, kw.WP_THR] = model.chip_throttle_c
    wp[:, kw.WP_GAIN] = model.chip_gain
    wp[:, kw.WP_SHUT] = model.chip_shutdown_c
    wp[:, kw.WP_HOLD_S] = model.chip_hold_s
    wp[:, kw.WP_CMIN] = model.chip_min_clock
    wp[:, kw.WP_CAP] = np.where(gpu, caps, kw.NEVER)  # no cap: NEVER
    wp[:, kw.WP_SPEED] = 1.0
    wp[:, kw.WP_JITTER] = 1.0
    wp[:, kw.WP_THROTTLE] = np.where(model.chip_throttles, 1.0, 0.0)
    ws = np.zeros((n, kw.N_WS))
    ws[:, kw.WS_CLOCK] = ws[:, kw.WS_CLOCK_CMD] = 1.0
    ws[:, kw.WS_HOLD_T] = -kw.NEVER  # no history (a finite sentinel: kernels use fastmath)
    ws[:, kw.WS_FIRST_THROTTLE] = -1.0
    ws[:, kw.WS_FIRST_SHUTDOWN] = -1.0
    return KernelWorkload(wp=wp, ws=ws, chip_job=np.full(n, -1, dtype=np.int64),
                          jp=np.zeros((n_jobs, kw.N_JP)), js=np.zeros((n_jobs, kw.N_JS)),
                          job_tmp=np.zeros((n_jobs, kw.N_JT)))


@dataclass
class KernelWorkload:
    """The arrays :func:`twin.kernels.workload.chip_power_step` reads and updates."""

    wp: np.ndarray
    ws: np.ndarray
    chip_job: np.ndarray
    jp: np.ndarray
    js: np.ndarray
    job_tmp: np.ndarray  # the kernel's per-step scratch

    def args(self):
        return self.wp, self.ws, self.chip_job, self.jp, self.js, self.job_tmp

    def copy(self, shutdown=True):
        """A copy of every array (``chip_job`` shared: the kernel never writes it);
        ``shutdown=False`` disables the shutdown latch."""
        wp = self.wp.copy()
        if not shutdown:
            wp[:, kw.WP_SHUT] = kw.NEVER
        return KernelWorkload(wp, self.ws.copy(), self.chip_job, self.jp.copy(), self.js.copy(), self.job_tmp.copy())

    def frozen(self, gain_scale=1.0):
        """A copy with no waveforms and no shutdowns, for the steady-state start: training
        jobs run at their mean power (in the demand), chips throttle but never latch off
        (a chip whose steady state lies above its shutdown temperature shuts down in the
        run's first step), and the copy's counters are thrown away afterwards.
        ``gain_scale`` scales the clock controllers' gains (the steady start takes long
        pseudo-time steps; the throttled equilibrium does not depend on the gain)."""
        out = self.copy(shutdown=False)
        out.wp[:, kw.WP_GAIN] *= gain_scale
        out.jp[:, kw.JP_ACTIVE] = 0.0
        return out


@dataclass
class JobRecord:
    name: str
    kind: str
    index: int
    gpus: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    steps: float = 0.0  # step-by-step mode: counted by the DES
    speed: np.ndarray = None  # per-GPU compute speed and power multiplier, drawn at placement
    jitter: np.ndarray = None
    state: int = 0  # 0 queued, 1 running, 2 checkpoint, 3 restarting, 4 done
    rack: int = 0  # the rack whose GPUs it runs on (a row replicates each rack's workload)
    spec: object = None  # its twin.scenario job definition


# where a job stands in the DES (the steady start reads RUNNING: training then at its mean power)
QUEUED, RUNNING, CHECKPOINT, RESTARTING, DONE = range(5)


class ScheduleSource:
    """The scenario's power schedule as a power source with the kernel arrays (no jobs)."""

    def __init__(self, model):
        self.model = model
        self.schedule = SchedulePower(model)
        self.kernel = default_kernel_arrays(model)
        self.jobs: list[JobRecord] = []
        self.events: list[tuple] = []

    def block(self, t0, dt, n):
        return self.schedule.block(t0, dt, n)

    def initial_demand(self, dt):
        """Chip demand at t = 0 (one step), for the steady-state start."""
        return self.block(0.0, dt, 1)

    def take_cuts(self, step_end):  # noqa: ARG002 (no waveform changes without jobs)
        return []


class RackWorkload(ScheduleSource):
    """SimPy model of the jobs of ``workload.jobs`` on the rack's GPUs. In a row each
    rack runs its own workload's jobs on its own GPUs (job names prefixed with the rack's),
    training steps shifted by the rack's phase offset."""

    def __init__(self, model, dt):
        super().__init__(model)
        s = model.scenario
        self.wl = s.workload
        self.dt = dt
        self.gpu = model.gpu_index
        self.tdp = model.chip_tdp
        self.idle = model.chip_idle
        row = model.is_row
        self.jobs = [JobRecord(f"{model.rack_names[r]}/{j.name}" if row else j.name, j.kind, 0, rack=r, spec=j)
                     for r, wl in enumerate(model.rack_workloads) for j in wl.jobs]
        for i, rec in enumerate(self.jobs):
            rec.index = i
        specs = [rec.spec for rec in self.jobs]
        self.kernel = default_kernel_arrays(model, len(specs))
        self.rng = np.random.default_rng(self.wl.seed)
        self.env = simpy.Environment()
        self.level = self.idle.copy()  # current GPU demand level [W] per chip (GPUs only used)
        self._changes: list[tuple] = []  # (t, chips, levels) pending for the next block
        self._cuts: list[tuple] = []  # (step, seq, fn)
        self._seq = 0
        # free GPUs of each rack, in tray order
        self.free = {r: [int(k) for k in self.gpu if model.chip_rack[k] == r] for r in range(model.n_racks)}
        self.waiting: list[tuple] = []  # (n, rack, event)
        for i, spec in enumerate(specs):
            proc = {TRAINING: training_job, INFERENCE: inference_job, "idle": idle_job}[spec.kind]
            self.env.process(proc(self.env, self, spec, self.jobs[i]))

    # ---- time helpers
    def on_grid(self, t):
        """The first thermal step boundary at or after t [s]."""
        return math.ceil(t / self.dt - 1e-9) * self.dt

    def step_of(self, t):
        return int(round(t / self.dt))

    # ---- what processes call
    def set_level(self, chips, levels_w):
        """GPU demand level from now on (exact time)."""
        levels = np.broadcast_to(np.asarray(levels_w, dtype=float), (len(chips),)).copy()
        self._changes.append((self.env.now, np.asarray(chips, dtype=np.int64), levels))

    def cut(self, fn):
        """Apply ``fn()`` to the kernel arrays at the step boundary of the current time."""
        self._seq += 1
        self._cuts.append((self.step_of(self.on_grid(self.env.now)), self._seq, fn))

    def event(self, kind, target):
        self.events.append((float(self.env.now), kind, target))

    def acquire(self, n, rack=0):
        """Wait (FIFO per rack) until n GPUs of ``rack`` are free; returns their chip indices."""
        ev = self.env.event()
        self.waiting.append((n, rack, ev))
        self._place()
        chips = yield ev
        return chips

    def release(self, chips, rack=0):
        self.free[rack].extend(int(c) for c in chips)
        self.free[rack].sort()
        self._place()

    def _place(self):
        blocked = set()  # racks whose first waiting job does not fit (FIFO within a rack)
        keep = []
        for n, rack, ev in self.waiting:
            if rack not in blocked and n <= len(self.free[rack]):
                chips, self.free[rack] = np.array(self.free[rack][:n], dtype=np.int64), self.free[rack][n:]
                ev.succeed(chips)
            else:
                blocked.add(rack)
                keep.append((n, rack, ev))
        self.waiting = keep

    # ---- what the engine calls
    def block(self, t0, dt, n):
        """Demand of the block's steps; runs the DES to the block's end."""
        t1 = t0 + n * dt
        self.env.run(until=t1 + 1e-9 * dt)
        gpu = self.gpu
        level = self.level
        # CPUs, switches (and aux) from the schedule, GPUs at their DES levels
        demand = self.schedule.block(t0, dt, n, override=(gpu, level[gpu]))
        changes = sorted(self._changes, key=lambda c: c[0])
        due = [c for c in changes if c[0] < t1 - 1e-12]
        self._changes = [c for c in changes if c[0] >= t1 - 1e-12]
        if due:  # level changes inside the block: edit it step by step
            demand = demand.expanded()
        for t, chips, new in due:
            x = (t - t0) / dt
            i = int(math.floor(x + 1e-9))
            frac = min(max(x - i, 0.0), 1.0)
            if i < n:
                demand.chip[i, chips] += (1.0 - frac) * (new - level[chips])
                demand.chip[i + 1:, chips] = new
            level[chips] = new
        return demand

    def initial_demand(self, dt):
        """Demand at t = 0 with running training jobs at their duty-weighted mean power;
        applies the DES events of t = 0 without consuming the level changes."""
        self.env.run(until=1e-9 * dt)
        self.apply_due_cuts(0)
        demand = self.schedule.block(0.0, dt, 1).expanded()
        chip = demand.chip
        level = self.level.copy()
        for t, chips, new in self._changes:
            if t <= 1e-12:
                level[chips] = new
        chip[0, self.gpu] = level[self.gpu]
        for rec in self.jobs:  # training jobs running at t = 0: at their mean power
            spec = rec.spec
            if rec.kind == TRAINING and rec.state == RUNNING:
                f, tdp = spec.compute_fraction, self.tdp[rec.gpus]
                busy = np.min(rec.speed) / rec.speed
                p_c = (busy * spec.compute_power_fraction_of_tdp + (1 - busy) * spec.comm_power_fraction_of_tdp) * tdp
                chip[0, rec.gpus] = (f * p_c + (1 - f) * spec.comm_power_fraction_of_tdp * tdp) * rec.jitter
        return demand

    def take_cuts(self, step_end):
        """Cuts due before ``step_end`` (global step index), in order."""
        due = sorted(c for c in self._cuts if c[0] < step_end)
        self._cuts = [c for c in self._cuts if c[0] >= step_end]
        return [(s, fn) for s, _, fn in due]

    def apply_due_cuts(self, step):
        """Apply the cuts at or before ``step`` (used before the first block)."""
        for _, fn in self.take_cuts(step + 1):
            fn()


# --------------------------------------------------------------------------- processes


def _draw(rack: RackWorkload, spec, n):
    """Per-GPU compute speed (stragglers) and power multiplier (silicon spread) of a job,
    drawn when the DES places it."""
    speed = np.ones(n)
    jitter = np.ones(n)
    if spec.kind == TRAINING and spec.straggler_count:
        speed[rack.rng.choice(n, size=spec.straggler_count, replace=False)] = spec.straggler_speed
    if spec.kind == TRAINING and spec.power_jitter_fraction:
        jitter += spec.power_jitter_fraction * rack.rng.standard_normal(n)
    return speed, jitter


def _assign(rack: RackWorkload, rec: JobRecord, chips, speed, jitter):
    """Bind a job to its GPUs in the kernel arrays (a cut: runs at the job's start step)."""
    k = rack.kernel
    j = rec.index
    k.chip_job[chips] = j
    k.wp[chips, kw.WP_SPEED] = speed
    k.wp[chips, kw.WP_JITTER] = jitter


def training_job(env, rack: RackWorkload, spec, rec: JobRecord):
    """A synchronous training job: run, checkpoint, fail and restart, end."""
    yield env.timeout(rack.on_grid(spec.start_s) - env.now)
    rack.event("job_submit", rec.name)
    chips = yield from rack.acquire(spec.gpus, rec.rack)
    rec.gpus = chips
    yield env.timeout(rack.on_grid(env.now) - env.now)
    k = rack.kernel
    j = rec.index
    tdp = rack.tdp[chips[0]]
    t_c = spec.step_time_s * spec.compute_fraction
    t_m = spec.step_time_s - t_c
    p_c, p_m = spec.compute_power_fraction_of_tdp * tdp, spec.comm_power_fraction_of_tdp * tdp

    speed, jitter = _draw(rack, spec, len(chips))
    rec.speed, rec.jitter = speed, jitter

    def bind():
        _assign(rack, rec, chips, speed, jitter)
        k.jp[j, kw.JP_T_COMPUTE], k.jp[j, kw.JP_T_COMM] = t_c, t_m
        k.jp[j, kw.JP_P_COMPUTE], k.jp[j, kw.JP_P_COMM] = p_c, p_m
        kw.pace_constants(k.wp, k.jp, j, chips)
        k.js[j, kw.JS_PHASE] = k.js[j, kw.JS_IPHASE] = 0.0
        k.js[j, kw.JS_REMAINING] = k.js[j, kw.JS_IREMAINING] = t_c
        off = float(rack.model.rack_offset_s[rec.rack]) % spec.step_time_s
        if off > 0.0:  # the rack's phase offset: its steps run this far behind
            late = spec.step_time_s - off  # how far into a step the job starts
            phase, left = (0.0, t_c - late) if late < t_c else (1.0, spec.step_time_s - late)
            k.js[j, kw.JS_PHASE] = k.js[j, kw.JS_IPHASE] = phase
            k.js[j, kw.JS_REMAINING] = k.js[j, kw.JS_IREMAINING] = left
    rack.cut(bind)
    rack.event("job_start", rec.name)
    end = rack.on_grid(env.now + spec.duration_s) if math.isfinite(spec.duration_s) else math.inf
    saved = {"steps": 0.0, "isteps": 0.0}
    stepper = {"proc": None, "phase": 0, "remaining": t_c}
    next_ckpt = rack.on_grid(env.now + spec.checkpoint_interval_s) if math.isfinite(spec.checkpoint_interval_s) else math.inf
    rate_fail = spec.failures_per_day / 86400.0
    while env.now < end:
        next_fail = rack.on_grid(env.now + rack.rng.exponential(1.0 / rate_fail)) if rate_fail > 0 else math.inf
        t_stop = min(next_ckpt, next_fail, end)
        rec.state = RUNNING
        _run(env, rack, rec, chips, True, stepper, (t_c, t_m, p_c, p_m))
        yield env.timeout(t_stop - env.now)
        _run(env, rack, rec, chips, False, stepper, (t_c, t_m, p_c, p_m))
        if t_stop >= end:
            break
        if t_stop == next_fail:
            rec.state = RESTARTING
            rack.event("failure", rec.name)
            rack.set_level(chips, spec.restart_power_fraction_of_tdp * tdp)

            def revert():
                k.js[j, kw.JS_STEPS], k.js[j, kw.JS_ISTEPS] = saved["steps"], saved["isteps"]
                k.js[j, kw.JS_PHASE] = k.js[j, kw.JS_IPHASE] = 0.0
                k.js[j, kw.JS_REMAINING] = k.js[j, kw.JS_IREMAINING] = t_c
            rack.cut(revert)
            rec.steps = saved["dessteps"] if "dessteps" in saved else 0.0
            stepper["reset"] = True  # the next stepper starts a fresh step
            yield env.timeout(rack.on_grid(env.now + spec.restart_time_s) - env.now)
            rack.event("restart", rec.name)
            next_ckpt = rack.on_grid(env.now + spec.checkpoint_interval_s) if math.isfinite(spec.checkpoint_interval_s) else math.inf
        else:
            rec.state = CHECKPOINT
            rack.event("checkpoint_start", rec.name)
            rack.set_level(chips, spec.checkpoint_power_fraction_of_tdp * tdp)

            def save():
                saved["steps"], saved["isteps"] = k.js[j, kw.JS_STEPS], k.js[j, kw.JS_ISTEPS]
            rack.cut(save)
            saved["dessteps"] = rec.steps
            yield env.timeout(rack.on_grid(env.now + spec.checkpoint_duration_s) - env.now)
            rack.event("checkpoint_end", rec.name)
            next_ckpt = rack.on_grid(env.now + spec.checkpoint_interval_s)
    rec.state = DONE
    rack.event("job_end", rec.name)
    rack.set_level(chips, rack.idle[chips])

    def unbind():
        k.chip_job[chips] = -1
    rack.cut(unbind)
    rack.release(chips, rec.rack)


def _run(env, rack, rec, chips, on, stepper, params):
    """Start or stop the training swing: a kernel waveform, or (step-by-step mode) a
    stepper process that sets the GPU level at every phase edge."""
    k = rack.kernel
    j = rec.index
    if rack.wl.mode == "waveform":
        def switch(on=on):
            k.jp[j, kw.JP_ACTIVE] = 1.0 if on else 0.0
        rack.cut(switch)
        return
    if on:
        stepper["proc"] = env.process(_stepper(env, rack, rec, chips, stepper, params))
    elif stepper["proc"] is not None and stepper["proc"].is_alive:
        stepper["proc"].interrupt()


def _stepper(env, rack, rec, chips, st, params):
    """Step-by-step reference: one DES event per phase edge (no throttling: the clock is
    not known to the DES)."""
    t_c, t_m, p_c, p_m = params
    if st.pop("reset", False):
        st["phase"], st["remaining"] = 0, t_c
    speed, jitter = rec.speed, rec.jitter
    slow = float(np.min(speed))
    busy = slow / speed  # faster GPUs finish their compute early and wait
    level_c = (busy * p_c + (1.0 - busy) * p_m) * jitter
    try:
        while True:
            if st["phase"] == 0:
                rack.set_level(chips, level_c)
                t_end = env.now + st["remaining"] / slow
                try:
                    yield env.timeout(st["remaining"] / slow)
                except simpy.Interrupt:
                    st["remaining"] = (t_end - env.now) * slow
                    raise
                st["phase"], st["remaining"] = 1, t_m
            rack.set_level(chips, p_m * jitter)
            t_end = env.now + st["remaining"]
            try:
                yield env.timeout(st["remaining"])
            except simpy.Interrupt:
                st["remaining"] = t_end - env.now
                raise
            rec.steps += 1
            st["phase"], st["remaining"] = 0, t_c
    except simpy.Interrupt:
        return


def inference_job(env, rack: RackWorkload, spec, rec: JobRecord):
    """Inference serving: power follows load, load follows the time of day."""
    yield env.timeout(rack.on_grid(spec.start_s) - env.now)
    rack.event("job_submit", rec.name)
    chips = yield from rack.acquire(spec.gpus, rec.rack)
    rec.gpus = chips
    speed, jitter = _draw(rack, spec, len(chips))
    rack.cut(lambda: _assign(rack, rec, chips, speed, jitter))
    rack.event("job_start", rec.name)
    rec.state = RUNNING
    end = env.now + spec.duration_s
    hours = np.array([h for h, _ in spec.load_curve])
    loads = np.array([x for _, x in spec.load_curve])
    idle = rack.idle[chips]
    full = spec.full_load_power_fraction_of_tdp * rack.tdp[chips]
    while env.now < end:
        hour = (spec.start_hour + env.now / 3600.0) % 24.0
        load = float(np.interp(hour, hours, loads, period=24.0))
        rack.set_level(chips, idle + (full - idle) * load)
        yield env.timeout(min(spec.update_interval_s, end - env.now))
    rec.state = DONE
    rack.event("job_end", rec.name)
    rack.set_level(chips, idle)

    def unbind():
        rack.kernel.chip_job[chips] = -1
    rack.cut(unbind)
    rack.release(chips, rec.rack)


def idle_job(env, rack: RackWorkload, spec, rec: JobRecord):
    """GPUs held at a constant power for a while."""
    yield env.timeout(rack.on_grid(spec.start_s) - env.now)
    rack.event("job_submit", rec.name)
    chips = yield from rack.acquire(spec.gpus, rec.rack)
    rec.gpus = chips
    rack.event("job_start", rec.name)
    rec.state = RUNNING
    level = rack.idle[chips] if spec.power_fraction_of_tdp is None else spec.power_fraction_of_tdp * rack.tdp[chips]
    rack.set_level(chips, level)
    if math.isfinite(spec.duration_s):
        yield env.timeout(rack.on_grid(env.now + spec.duration_s) - env.now)
        rec.state = DONE
        rack.event("job_end", rec.name)
        rack.set_level(chips, rack.idle[chips])
        rack.release(chips, rec.rack)


# --------------------------------------------------------------------------- replay


class ReplaySource(ScheduleSource):
    """Chip power from a measured trace: every chip at ``peak_fraction_of_tdp`` of its TDP
    times the trace over its maximum. Samples hold until the next (a 15 s sample of a
    measured load is an interval mean), the first also over the interval before it
    (:func:`twin.traces.held`); step means are exact integrals of that. A run beyond
    what the trace holds is refused (:meth:`check_span`)."""

    def __init__(self, model, times_s, power_w):
        super().__init__(model)
        rp = model.scenario.workload.replay
        from .traces import held

        self.times_s = np.asarray(times_s, dtype=float)  # the trace's own, for check_span
        self.t = np.concatenate([[held(times_s)[0]], self.times_s]) - rp.start_s
        power_w = np.concatenate([[power_w[0]], power_w])
        u = np.asarray(power_w, dtype=float) / float(np.max(power_w))
        self.u = u * rp.peak_fraction_of_tdp
        # cumulative integral of the zero-order-hold trace at the sample times
        self.cum = np.concatenate([[0.0], np.cumsum(self.u[:-1] * np.diff(self.t))])

    def check_span(self, duration_s: float) -> None:
        """Refuse a run longer than the trace covers (:func:`twin.traces.check_span`; the
        scenario's own duration was checked when it was loaded, this is for a
        ``simulate(duration_s=...)`` beyond it)."""
        from .traces import check_span

        rp = self.model.scenario.workload.replay
        check_span(rp.file, self.times_s, rp.start_s, duration_s)

    def _integral(self, t):
        t = np.clip(t, self.t[0], self.t[-1])
        i = np.clip(np.searchsorted(self.t, t, side="right") - 1, 0, self.t.size - 1)
        return self.cum[i] + self.u[i] * (t - self.t[i])

    def block(self, t0, dt, n):
        edges = t0 + dt * np.arange(n + 1)
        u = np.diff(self._integral(edges)) / dt
        return Demand.per_step(u[:, None] * self.model.chip_tdp[None, :])


def load_replay_trace(path, column, time_column="time"):
    """(times [s], power [W]) from a CSV column or a telemetry HDF5 (rack/it_power), every
    row checked (:func:`twin.traces.read_trace`; bad input raises TwinInputError)."""
    from .traces import read_trace

    return read_trace(path, column, time_column)


def make_source(model, dt):
    """The power source a scenario asks for: jobs (DES), a replayed trace, or the schedule."""
    wl = model.scenario.workload
    if any(w.jobs for w in model.rack_workloads):
        return RackWorkload(model, dt)
    if wl.replay is not None:
        t, p = load_replay_trace(wl.replay.file, wl.replay.column, wl.replay.time_column)
        return ReplaySource(model, t, p)
    return ScheduleSource(model)
