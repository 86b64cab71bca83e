"""The coupling loop: hydraulics, thermal kernel, power source, recorder.

Time advances in blocks of ``simulation.hydraulic_update_s`` (of
``controls.control_interval_s`` when a PI controller runs: controllers sample at block
starts). At each block boundary the network is re-solved, with the viscosities of the
current coolant temperatures (and, in flow mode, the pump speed that holds the flow
setpoint), and plate conductances and the exact step maps recomputed, if anything they
depend on moved (a coolant temperature by more than ``REUSE_TOL_K``, a fault, a control
action); the power source describes the block's power. Faults and workload changes cut a
block at their step. The thermal kernel runs each segment's steps without leaving
compiled code and writes records at the output rate; records stream to HDF5 in batches.
After every segment the coolant is checked against what the model represents
(:class:`CoolantLimits`): a run that leaves it, or that is interrupted, ends there with
its file whole and marked incomplete (:class:`RunEnd`).

Running is re-entrant: all state lives in a :class:`NetworkState` owned by the run.

This module is the time loop (:func:`simulate`); its parts have a module each:
:mod:`twin.network` (hydraulic solve, step coefficients, the kernel call),
:mod:`twin.steady` (the steady start), :mod:`twin.recorder` (records to telemetry rows),
:mod:`twin.run_end` (how a run ends) and :mod:`twin.result` (what it returns).

Public names (``__all__``): :func:`simulate`, and, re-exported from those modules so
that code importing them from ``twin.engine`` keeps working, ``Result``, ``RunEnd``,
``CoolantLimits``, ``ModelLimit``, ``Hydraulics``, ``Network``, ``NetworkState``,
``steady_state``, ``HYDRAULIC_TOL_PA``, ``FLOW_CONTROL_RTOL``, ``REUSE_TOL_K``,
``STEADY_TOL_K``, ``_empty_records``, ``_channels``. (To patch a helper of the run,
patch it in its own module: ``twin.recorder._record_rows``, not ``twin.engine``.)
"""
from __future__ import annotations

import json
import math

import numpy as np

from . import __version__
from .build import Model, build_model
from .kernels import thermal as tk
from .kernels import workload as kw
from .controls import CduControls
from .faults import FaultSchedule
from .margins import Margins, MarginTracker
from .network import (FLOW_CONTROL_RTOL, HYDRAULIC_TOL_PA, REUSE_TOL_K, Hydraulics, ModelLimit, Network,
                      NetworkState, _empty_records)
from .recorder import _channels, _Recorder, _snapshot, _snapshot_changed
from .result import Result
from .run_end import CoolantLimits, RunEnd, _interrupts
from .scenario import Scenario
from .steady import STEADY_TOL_K, steady_state
from .errors import TwinInputError
from .telemetry import SCHEMA, TelemetryWriter

__all__ = ["simulate", "Result", "RunEnd", "CoolantLimits", "ModelLimit", "Hydraulics", "Network", "NetworkState",
           "steady_state", "HYDRAULIC_TOL_PA", "FLOW_CONTROL_RTOL", "REUSE_TOL_K", "STEADY_TOL_K",
           "_empty_records", "_channels"]


def simulate(scenario: Scenario, output=None, power=None,
             duration_s: float | None = None, model: Model | None = None,
             provenance: dict | None = None, boundary=None, channels=None,
             track_margins: bool | None = None) -> Result:
    """Run a scenario. ``output``: HDF5 path to stream telemetry to (else kept in memory).

    ``power`` replaces the scenario's power source (see :mod:`twin.workload`: the DES of
    ``workload.jobs``, a replayed trace, or the schedule); ``model`` reuses a model built
    by :func:`twin.build.build_model` for this scenario; ``provenance`` (e.g. the source
    file and the ``--set`` overrides) is stored in the file's root attributes.
    ``boundary``: an object whose ``apply(net, t0, t1)`` sets the network's boundary for
    the block ``[t0, t1)`` before it runs (facility supply, flow setpoint: a measured
    boundary, :mod:`twin.calibration`), and marks the network dirty when it moved it.
    ``channels``: keep only these telemetry channels and track no margins (the result's
    margins are empty): a calibration's run, which reads a few channels many times.
    ``track_margins``: whether to track the margins (default: unless ``channels`` is given;
    a sweep keeps a few channels and the margins, which do not depend on what is kept).

    The run ends early, with the file whole and marked incomplete (root attributes
    ``complete``, ``end_time_s``, ``end_reason``), when it is interrupted (SIGINT,
    SIGTERM: the current segment finishes first) or when the network leaves the states
    the model represents (coolant boiling or freezing, a non-finite temperature, a
    hydraulic solve that fails): then a named event says where and when, and the
    ``coolant_temp_*`` margins fail.
    """
    from .workload import make_source

    model = model or build_model(scenario)
    s = scenario
    sim = s.simulation
    dt = sim.time_step_s
    duration = duration_s if duration_s is not None else sim.duration_s
    if not (math.isfinite(duration) and duration > 0):
        raise TwinInputError("<simulate>", "duration_s", f"must be a positive number of seconds, got {duration!r}")
    n_total = int(round(duration / dt))
    rec_every = int(round(sim.output_interval_s / dt))
    block_steps = int(round(sim.hydraulic_update_s / dt))
    source = power or make_source(model, dt)
    if hasattr(source, "check_span"):  # a replayed trace: it must cover the run
        source.check_span(duration)
    wl = source.kernel
    n_jobs = wl.jp.shape[0]
    net = Network(model)
    keep, channels = channels, _channels(model, n_jobs)
    faults = FaultSchedule(model, net, dt, channels)
    for _, fn in faults.take_cuts(1):  # faults from t = 0 shape the steady start
        fn()
    if boundary is not None:
        boundary.apply(net, 0.0, block_steps * dt)

    end = RunEnd()
    limits = CoolantLimits(model)
    with _interrupts(end):
        try:
            if sim.initial_temp_c is None:
                state = steady_state(net, source)
            else:
                state = NetworkState.uniform(model, sim.initial_temp_c, s.controls.pump_speed_fraction)
                net.ideal_pumps = True  # a PI controller starts from the speed that meets its setpoint
                net.refresh(state, dt)
                net.ideal_pumps = False
        except ModelLimit as exc:  # no hydraulic solution to start from
            raise TwinInputError("<scenario>", exc.where, f"no operating point at t = 0: {exc.message}") from None
        limits.check(net, state, end, 0.0)
        controls = CduControls(net, state)
        if controls.active:  # controllers sample at the start of every block
            block_steps = min(block_steps, max(1, int(round(s.controls.control_interval_s / dt))))

        labels = {f"{t}/labels": [model.chip_names[i] for i in net.rec_order[sl]] for t, sl in net.rec_slices.items()}
        labels["tray/labels"] = model.tray_names
        labels["cdu/pump_labels"] = [model.edge_names[e] for e in model.pump_edges]
        if model.is_row:
            labels["rack/labels"] = model.rack_names
            labels["cdu/labels"] = model.cdu_names
        if n_jobs:
            labels["job/labels"] = [j.name for j in source.jobs]
        prov = dict(provenance or {})
        attrs = dict(schema=SCHEMA, scenario=s.to_toml(), software_version=__version__,
                     coolant=s.coolant.name, rack=s.rack.name, time_step_s=dt, duration_s=duration,
                     overrides=json.dumps(list(prov.pop("overrides", []))), source=str(prov.pop("source", "")),
                     complete=False, end_time_s=0.0, end_reason="running",
                     # every instance whose parameters differ from its definition's: the
                     # [overrides] and the [[spread]] draws, as the builders used them
                     instance_parameters=json.dumps({p: inst.changed for p, inst in model.instances.items()
                                                     if inst.changed}))
        attrs.update({k: str(v) for k, v in prov.items()})
        kept = channels if keep is None else {k: v for k, v in channels.items() if k in keep}
        writer = TelemetryWriter(output, attrs, kept, labels)
        tracker = MarginTracker(model) if (keep is None if track_margins is None else track_margins) else None
        recorder = _Recorder(model, n_jobs, net.rec_slices, writer, tracker)
        e0 = net.stored_energy(state, dt) if net.hyd is not None else 0.0
        snap = None
        try:
            step = 0
            while step < n_total and not end.stopped:
                n = min(block_steps, n_total - step)
                try:
                    if controls.active and step > 0:
                        controls.update(step * dt, state, block_steps * dt)
                    if boundary is not None and step > 0:
                        boundary.apply(net, step * dt, (step + n) * dt)
                    net.refresh(state, dt)
                except ModelLimit as exc:
                    end.stop(exc.kind, exc.where, step * dt, exc.message)
                    break
                demand = source.block(step * dt, dt, n)
                # waveform changes (job start, checkpoint, failure) and faults split the block
                cuts = sorted(source.take_cuts(step + n) + faults.take_cuts(step + n), key=lambda c: c[0])
                bounds = sorted({step, step + n, *[c for c, _ in cuts]})
                for i in range(len(bounds) - 1):
                    a, b = bounds[i], bounds[i + 1]
                    for c, fn in cuts:
                        if c == a or (i == 0 and c < a):
                            fn()
                    try:
                        if net.dirty:
                            net.refresh(state, dt)
                    except ModelLimit as exc:
                        end.stop(exc.kind, exc.where, a * dt, exc.message)
                        break
                    if snap is None or _snapshot_changed(snap, net):
                        snap = _snapshot(net)
                    rows = b // rec_every - a // rec_every
                    rec = recorder.views(rows)
                    got = net.advance(state, dt, a, b - a, rec_every, demand.chip, rec, wl,
                                      row=demand.row[a - step:b - step])
                    assert got == rows
                    times = (np.arange(a // rec_every + 1, b // rec_every + 1) * rec_every) * dt
                    recorder.commit(rows, times, snap)
                    end.time_s = b * dt
                    limits.check(net, state, end, b * dt, rec, rows)
                    if end.stopped:
                        break
                step += n
            recorder.flush()
            acc = state.acc
            energy = dict(
                chip_j=float(acc[tk.ACC_CHIP_J]), aux_liquid_j=float(acc[tk.ACC_AUX_LIQUID_J]),
                liquid_j=float(acc[tk.ACC_LIQUID_J]), hx_j=float(acc[tk.ACC_HX_J]),
                stored_start_j=e0, stored_end_j=net.stored_energy(state, dt),
            )
            jobs = _job_summary(source, s)
            events = sorted([e for e in source.events + faults.events if e[0] <= end.time_s + 1e-9] + end.events,
                            key=lambda e: e[0])
            margins = Margins() if tracker is None else tracker.finish(
                state, wl, jobs, ride_through=_ride_through(s, wl, model, dt, end.time_s), coolant=limits, end=end)
            writer.write_margins(margins)
            writer.write_events(events)
            if not end.stopped:
                end.complete(duration)
            elif end.kind == "interrupted":
                end.reason += f" at {end.time_s:g} s of {duration:g} s"
            writer.set_attrs(complete=end.is_complete, end_time_s=end.time_s, end_reason=end.reason)
            mem = writer.finish()
        except BaseException:
            writer.abort()
            raise
    return Result(scenario=s, model=model, margins=margins.values, margin_table=margins, energy=energy,
                  final_state=state, jobs=jobs, events=events, hydraulics=net.hyd,
                  telemetry_path=str(output) if output is not None else None, _memfile=mem, end=end)


def _ride_through(s, wl, model, dt, t_end):
    """After the first CDU trip: seconds until the first GPU reaches its throttle
    temperature (where its clock control starts to act, if it has one) and until the first
    shuts down (None where it did not happen within the run)."""
    trips = [f.start_s for f in s.faults if f.kind == "cdu_trip"]
    if not trips:
        return None
    t0 = math.ceil(min(trips) / dt - 1e-9) * dt
    gpu = model.gpu_index
    out = {"t_end_s": t_end - t0, "trip_s": t0}
    for key, col in (("throttle", kw.WS_FIRST_THROTTLE), ("shutdown", kw.WS_FIRST_SHUTDOWN)):
        steps = wl.ws[gpu, col]
        after = steps[steps * dt >= t0 - 1e-9]
        out[key] = float(after.min() * dt - t0) if after.size else None
    return out


def _job_summary(source, s) -> list:
    """Per job: steps completed, goodput against the same run without thermal throttling,
    GPU-seconds throttled."""
    from .kernels import workload as kw
    out = []
    k = source.kernel
    for rec in source.jobs:
        j = rec.index
        if s.workload.mode == "step_by_step" and rec.kind == "training":
            steps = ideal = rec.steps
        else:
            steps, ideal = k.js[j, kw.JS_STEPS], k.js[j, kw.JS_ISTEPS]
        out.append(dict(name=rec.name, kind=rec.kind, gpus=len(rec.gpus), steps=float(steps),
                        goodput=float(steps / ideal) if ideal > 0 else (1.0 if rec.kind == "training" else float("nan")),
                        throttled_gpu_s=float(k.js[j, kw.JS_THROTTLED_GPU_S])))
    return out
