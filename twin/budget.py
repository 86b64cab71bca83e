"""How big a run will be, estimated from the scenario before anything is built.

A 1e-7 s time step or a 1e12 s duration is a typo that would otherwise stream telemetry
or compute without end; the CLI refuses a run whose estimate passes a limit unless
``--allow-large`` is given.

Output: rows x bytes per row. A row holds the channels of
:func:`twin.channels.channel_table`, the same table the engine writes (2,656 bytes for the
reference rack; ``tests/test_bad_inputs.py`` checks the count against a written file).

Computing time, measured on the benchmark machine (docs/performance.md): a thermal step
of the reference rack (126 chips) costs 5.9 us (24 h at 0.1 s steps in 5.1 s, 17,064x
real time), an output row ~7 us (an hour at 0.1 s output instead of 1 s took 0.22 s more
for 32,400 more rows), a DES event of a step-by-step training job ~16 us (1800 s of
training at 1.5 Hz: 0.085 s more than the waveform for 5,400 phases). Steps and rows
scale with the chip count. Estimates are orders of magnitude, not promises.
"""
from __future__ import annotations

from dataclasses import dataclass

from .channels import channel_table
from .channels import row_bytes as channel_row_bytes
from .errors import TwinInputError

MAX_OUTPUT_BYTES = 10e9  # telemetry written to disk (-o)
MAX_MEMORY_BYTES = 2e9  # without -o the telemetry is kept in memory
MAX_WALL_S = 3600.0  # estimated computing time
REFERENCE_CHIPS = 126  # chips of the reference rack the timings below were measured on
STEP_S = 5.9e-6  # per thermal step of the reference rack
ROW_S = 7e-6  # per output row of the reference rack
DES_EVENT_S = 16e-6  # per phase of a step-by-step training job
# The resolution the catalogue runs at: what "the duration drives it" is judged against.
REFERENCE_STEP_S = 0.1
REFERENCE_OUTPUT_S = 1.0  # (as REFERENCE_STEP_S, for the output interval)


@dataclass
class Estimate:
    chips: int
    steps: float
    rows: float
    row_bytes: int
    des_events: float

    @property
    def bytes(self) -> float:
        return self.rows * self.row_bytes

    @property
    def wall_s(self) -> float:
        scale = self.chips / REFERENCE_CHIPS
        return (self.steps * STEP_S + self.rows * ROW_S) * scale + self.des_events * DES_EVENT_S


def row_bytes(s) -> int:
    """Bytes of one telemetry row of scenario ``s`` (the channels of
    :func:`twin.channels.channel_table`)."""
    counts: dict = {}
    n_tray = 0
    entries = s.rack_entries()
    for _, rack, _, _ in entries:
        for group in rack.tray_stack:
            n_tray += group.count
            for path in rack.tray_types[group.type].paths:
                for chip in path:
                    counts[chip] = counts.get(chip, 0) + group.count
    jobs = sum(len(wl.jobs) for _, _, wl, _ in entries)
    return channel_row_bytes(channel_table(counts, n_tray, s.cdu_count * s.cdu.pumps.count, jobs, len(entries),
                                           s.cdu_count))


def estimate(s, duration_s: float | None = None, time_step_s: float | None = None,
             output_interval_s: float | None = None) -> Estimate:
    """Size and cost of running scenario ``s`` (optionally at another resolution)."""
    sim = s.simulation
    duration = sim.duration_s if duration_s is None else duration_s
    dt = sim.time_step_s if time_step_s is None else time_step_s
    out = sim.output_interval_s if output_interval_s is None else output_interval_s
    entries = s.rack_entries()
    chips = sum(g.count * sum(len(p) for p in rack.tray_types[g.type].paths) for _, rack, _, _ in entries
                for g in rack.tray_stack)
    events = 0.0
    for job in (j for _, _, wl, _ in entries for j in wl.jobs):
        span = min(duration, job.duration_s)
        if job.kind == "training" and s.workload.mode == "step_by_step":
            events += 2 * span / job.step_time_s
        elif job.kind == "inference":
            events += span / job.update_interval_s
    return Estimate(chips=chips, steps=duration / dt, rows=duration / out, row_bytes=row_bytes(s), des_events=events)


def _size(n: float) -> str:
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n / 1e3:.3g} kB"


def _duration(t: float) -> str:
    for unit, scale in (("years", 3.156e7), ("days", 86400.0), ("h", 3600.0), ("min", 60.0)):
        if t >= scale:
            return f"{t / scale:.3g} {unit}"
    return f"{t:.3g} s"


def check(s, where, in_memory: bool, flag: str = "--allow-large", telemetry: bool = True) -> Estimate:
    """Refuse (TwinInputError) a run beyond the limits; ``where(field)`` names the file
    that set a field. Returns the estimate. ``telemetry=False``: a run that keeps no
    telemetry (``twin check``: margins only), judged on its computing time alone."""
    e = estimate(s)
    limit_bytes = MAX_MEMORY_BYTES if in_memory else MAX_OUTPUT_BYTES
    too_big, too_long = telemetry and e.bytes > limit_bytes, e.wall_s > MAX_WALL_S
    if not (too_big or too_long):
        return e
    sim = s.simulation
    if too_long:
        coarse = estimate(s, time_step_s=max(sim.time_step_s, REFERENCE_STEP_S))
        field = "simulation.time_step_s" if coarse.wall_s <= MAX_WALL_S else "simulation.duration_s"
    else:
        coarse = estimate(s, output_interval_s=max(sim.output_interval_s, REFERENCE_OUTPUT_S))
        field = "simulation.output_interval_s" if coarse.bytes <= limit_bytes else "simulation.duration_s"
    value = getattr(sim, field.split(".")[1])
    computing = f"about {_duration(e.wall_s)} of computing ({e.steps:.3g} steps, {e.chips} chips)"
    if not telemetry:
        raise TwinInputError(where(field), field, f"{value:g} s makes a run too long: {computing}; limit "
                                                  f"{_duration(MAX_WALL_S)}; pass {flag} to run it anyway")
    store = "in memory (no -o)" if in_memory else "on disk"
    raise TwinInputError(
        where(field), field,
        f"{value:g} s makes a run too large: about {_size(e.bytes)} of telemetry {store} "
        f"({e.rows:.3g} rows of {e.row_bytes} B) and {computing}; limits {_size(limit_bytes)} and "
        f"{_duration(MAX_WALL_S)}; pass {flag} to run it anyway")


__all__ = ["Estimate", "estimate", "check", "row_bytes"]
