"""Cooling margins of a run: what `twin run` prints, and what its verdict (and `--strict`) gates on.

Each margin has a value, a unit and, where it is a pass/fail quantity, a limit (the
scenario's ``[margins]``, else the rack's ``[rack.margin_limits]``, else the design
default: see :class:`twin.scenario.MarginLimits`), a direction and a *status*:

- ``ok``: judged and within its limit;
- ``fail``: judged and outside it, or failed by what the run showed (a junction margin
  fails while any chip of its kind throttled, whatever its value);
- ``not judged``: the run could not judge it (no output sample, a value that is NaN or
  infinite): never ``ok``.

Figures (no limit) have no status. Junction maxima are taken at every thermal step inside
the kernel, not only at the output rate; the other quantities at the output rate.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .build import LPM
from .faults import sensor_offset
from .kernels import workload as kw
from .numfmt import format_value

OK, FAIL, NOT_JUDGED = "ok", "fail", "not judged"
# Goodput is a ratio of step counts in floating point: within this of the limit it is at it.
GOODPUT_RTOL = 1e-9


# ASSUMPTION (measured): ride-through after a CDU trip converges with the step to within 2.5 % at 0.5 s and no
# further (faults/cdu-trip, docs/model.md, *Time step*: throttle 28.0 s at 0.1 s, 29 at
# 0.5, 30 at 1, 32 at 2; shutdown 114.7, 117, 120, then 36 s at 2 s, where the clock
# control acts too late to hold the junctions below shutdown).
RIDE_THROUGH_STEP_MAX_S = 0.5

# ASSUMPTION: a flow controller whose running pumps are at their top speed and deliver
# more than 0.1 % below its setpoint does not hold it (the ideal controller's own
# tolerance is 1e-6, twin.network.FLOW_CONTROL_RTOL; 0.1 % is a tenth of a good
# flow meter's accuracy, so a shortfall flagged is the pumps', not the meter's).
SETPOINT_SHORT = 1e-3

# Heat into the coolant over an output interval above the most IT power the rack drew in
# any interval is heat stored earlier (chips, plates, stagnant coolant) coming out; the
# peak's note says so past this ratio (ASSUMPTION: 1 % clears the interval means' own
# lag of a step between power and heat).
STORED_RELEASE_RATIO = 1.01


def coarse_step(s, chip_types=("gpu",)) -> str:
    """The caveat of a thermal step too long to resolve the power peaks of the chips of
    ``chip_types`` (scenario.STEPS_PER_PEAK steps to the shortest high-power phase, or to
    a replayed trace's median sample interval: a sample holds until the next), or ''."""
    from .scenario import STEPS_PER_PEAK, fastest_peak

    peak = fastest_peak(s.workload, chip_types)
    rp = s.workload.replay
    if rp is not None:  # every chip follows the trace; a sample holds until the next
        from .workload import load_replay_trace

        t, _ = load_replay_trace(rp.file, rp.column, rp.time_column)
        hold = float(np.median(np.diff(t))) if t.size > 1 else math.inf
        if peak is None or hold < peak[0]:
            peak = (hold, "the replayed trace's samples")
    dt = s.simulation.time_step_s
    if peak is None or dt * STEPS_PER_PEAK <= peak[0] * (1 + 1e-9):
        return ""
    return (f"time step {dt:g} s against {peak[1]} of {peak[0]:.3g} s: peaks may be averaged over a step, the "
            f"margin overstated (use time_step_s <= {peak[0] / STEPS_PER_PEAK:.3g}; docs/model.md, Time step)")


@dataclass
class MarginRow:
    name: str
    value: float
    unit: str
    limit: float | None = None
    sense: str | None = None  # "min": value must be >= limit; "max": value must be <= limit
    note: str = ""
    instance: str = ""  # the part that sets the value (an instance path), if any
    integer: bool = False  # a count: printed without decimals
    fail_reason: str = ""  # fails whatever the value (e.g. a chip of this kind throttled)
    tolerance: float = 0.0  # absolute slack on the comparison (round-off only)

    @property
    def status(self) -> str:
        """``ok``, ``fail``, ``not judged``, or ``""`` for a figure without a limit."""
        if self.sense is None:
            return ""
        if not math.isfinite(self.value):
            return NOT_JUDGED
        if self.fail_reason:
            return FAIL
        within = (self.value >= self.limit - self.tolerance if self.sense == "min"
                  else self.value <= self.limit + self.tolerance)
        return OK if within else FAIL

    @property
    def ok(self) -> bool | None:
        """True when ok, False when failed or not judged, None for a figure."""
        st = self.status
        return None if not st else st == OK

    def formatted(self) -> str:
        return format_value(self.value, self.integer)

    def to_dict(self) -> dict:
        finite = math.isfinite(self.value)
        return dict(name=self.name, value=(int(round(self.value)) if self.integer else self.value) if finite else None,
                    unit=self.unit, limit=self.limit, sense=self.sense, status=self.status or None,
                    instance=self.instance or None,
                    note="; ".join(x for x in (self.fail_reason, self.note) if x))


@dataclass
class Margins:
    rows: list = field(default_factory=list)

    @property
    def values(self) -> dict:
        return {r.name: r.value for r in self.rows}

    def judged(self):
        return [r for r in self.rows if r.status]

    @property
    def ok(self) -> bool:
        """Every pass/fail margin judged and within its limit."""
        return all(r.status == OK for r in self.judged())

    @property
    def verdict(self) -> str:
        """``fail`` if any margin fails, else ``not judged`` if any could not be judged, else ``ok``."""
        statuses = {r.status for r in self.judged()}
        return FAIL if FAIL in statuses else NOT_JUDGED if NOT_JUDGED in statuses else OK

    def verdict_line(self) -> str:
        rows = self.judged()
        failed = [r.name for r in rows if r.status == FAIL]
        unjudged = [r.name for r in rows if r.status == NOT_JUDGED]
        parts = [f"verdict: {self.verdict.upper()}"]
        if failed:
            parts.append(f"{len(failed)} of {len(rows)} margins fail ({', '.join(failed)})")
        if unjudged:
            parts.append(f"{len(unjudged)} not judged ({', '.join(unjudged)})")
        if not failed and not unjudged:
            parts.append(f"all {len(rows)} margins within their limits")
        return parts[0] + ": " + "; ".join(parts[1:])

    def table(self) -> str:
        lines = [f"{'margin':<30} {'value':>10} {'unit':<8} {'limit':>10}  {'status':<10}  note"]
        for r in self.rows:
            limit = "" if r.limit is None else (f"{int(r.limit)}" if r.integer else f"{r.limit:.4g}")
            note = "; ".join(x for x in (r.fail_reason, r.note) if x)
            lines.append(f"{r.name:<30} {r.formatted():>10} {r.unit:<8} {limit:>10}  {r.status:<10}  {note}".rstrip())
        return "\n".join(lines)

    def to_dicts(self) -> list:
        return [r.to_dict() for r in self.rows]


class MarginTracker:
    """Follows a run block by block and turns what it saw into :class:`Margins`."""

    def __init__(self, model):
        self.m = model
        self.tray_ratio_min = np.inf
        self.tray_ratio_arg = -1
        self.tray_ratio_at = (np.nan, np.nan, np.nan)  # (flow L/min, required L/min, supply degC) there
        self.supply_range = (np.inf, -np.inf)  # rack supply seen [degC], true (sensor offsets removed)
        self.pump_energy_j = 0.0
        self.pump_time_s = 0.0
        self.return_max = -np.inf
        self.head_margin_min = np.inf
        # CDU index -> the spans [from_s, to_s] when none of its pumps ran (to_s None: to the end)
        self.pump_outages: dict = {}
        # the flow setpoint not held with the running pumps at their top speed: the least
        # delivered/setpoint seen, (delivered, setpoint) [L/min] there, and since when [s]
        self.setpoint_ratio_min, self.setpoint_at, self.setpoint_lost_s = np.inf, (np.nan, np.nan), None
        self.rack_dp_max = -np.inf
        self.peak_liquid = -np.inf
        self.peak_it = -np.inf
        self.flow_at_peak = np.nan
        self.liquid_sum = 0.0
        self.it_sum = 0.0
        self.rack_return_max = np.full(model.n_racks, -np.inf)  # a row: each rack's return [degC]
        self.capacity_margin_min = np.inf  # least (rated heat of the CDUs up) - (liquid heat) [W]
        self.capacity_min = np.inf  # least rated heat of the CDUs up [W], and how many were up
        self.cdus_up_min = model.n_cdus
        self.rack_flow_min = np.full(model.n_racks, np.inf)  # each rack's flow over the run [L/min]
        self.rack_flow_max = np.full(model.n_racks, -np.inf)

    def _setpoint_scale(self, hyd, t_start) -> float:
        """Setpoint over delivered flow when a flow controller's running pumps are at their
        top speed (1 for an ideal flow controller, ``pump_speed_max`` for a PI one) and
        deliver less than the setpoint by more than SETPOINT_SHORT; else 1. The head
        reserve is then that at the setpoint: each running pump's full-speed head at its
        flow times the scale, against the head the loop would need there, the delivered
        head times the scale squared (ASSUMPTION: a closed loop's resistance, no static
        head, grows with the square of the flow, turbulent; with an exponent of 1.8
        instead the shortfall would be ~10 % smaller)."""
        m = self.m
        c = m.scenario.controls
        if not (c.pump_mode == "flow" or c.pump_mode == "pid" and c.pid_variable == "flow"):
            return 1.0
        running = hyd.speed > 0
        top = 1.0 if c.pump_mode == "flow" else c.pump_speed_max
        if not running.any() or np.any(hyd.speed[running] < top - 1e-9):
            return 1.0
        if c.pump_mode == "flow":
            setpoint = c.flow_setpoint_lpm
        else:
            from .controls import _in_force

            setpoint = _in_force(c.setpoint_changes, t_start or 0.0, c.flow_setpoint_lpm)
        q = float(hyd.flow_m3s[m.cdu_hx_edge].sum() if m.is_row else hyd.flow_m3s[m.edge["supply_hose"]]) / LPM
        if not q > 0 or q >= setpoint * (1 - SETPOINT_SHORT):
            return 1.0
        if q / setpoint < self.setpoint_ratio_min:
            self.setpoint_ratio_min, self.setpoint_at = q / setpoint, (q, setpoint)
        if self.setpoint_lost_s is None:
            self.setpoint_lost_s = t_start or 0.0
        return setpoint / q

    def _head_note(self) -> str:
        if self.setpoint_lost_s is None:
            return "full-speed head at the operating flow minus delivered head"
        (q, setpoint), t = self.setpoint_at, self.setpoint_lost_s
        return (f"flow setpoint not held: {q:.1f} of {setpoint:g} L/min with the pumps at top speed from {t:g} s; "
                "reserve at the setpoint, the loop's head taken to grow with flow squared")

    def update(self, hyd, data, offsets=None, hx_lost=(), t_start=None):
        """Fold in a run of output rows taken on one hydraulic state ``hyd``; ``offsets``:
        the sensor offsets in force (``twin.faults``), removed where a margin needs the
        true value; ``hx_lost``: which CDUs reject no heat (tripped); ``t_start``: when
        the first of the rows began [s]."""
        m = self.m
        # each tray against its requirement at its rack's supply temperature of every sample
        supply = np.asarray(data["rack/supply_temp"], dtype=float)
        supply = supply - sensor_offset(offsets or {}, "rack/supply_temp", supply.shape[1:])
        flow = hyd.flow_m3s[m.tray_supply_edge] / LPM
        required = (m.tray_required_at(supply[:, m.tray_rack], per_tray=True) if supply.ndim == 2
                    else m.tray_required_at(supply))  # (rows, tray)
        ratio = flow / required
        r, i = np.unravel_index(int(np.argmin(np.where(np.isnan(ratio), -np.inf, ratio))), ratio.shape)
        if ratio[r, i] < self.tray_ratio_min or not np.isfinite(ratio[r, i]):
            self.tray_ratio_min, self.tray_ratio_arg = float(ratio[r, i]), int(i)
            self.tray_ratio_at = (float(flow[i]), float(required[r, i]),
                                  float(supply[r, m.tray_rack[i]] if supply.ndim == 2 else supply[r]))
        self.supply_range = (min(self.supply_range[0], float(supply.min())), max(self.supply_range[1], float(supply.max())))
        # pump electrical energy: the hydraulic state's power over these rows' intervals
        dt = m.scenario.simulation.output_interval_s
        pump_w = float(np.sum(m.pump_power_w(hyd.flow_m3s, hyd.pressure_pa, hyd.speed)))
        self.pump_energy_j += pump_w * supply.shape[0] * dt
        self.pump_time_s += supply.shape[0] * dt
        ret = np.asarray(data["rack/return_temp"], dtype=float)
        if ret.ndim == 2:  # a row: each rack's return
            for r in range(m.n_racks):
                self.rack_return_max[r] = _nanmax(self.rack_return_max[r], ret[:, r])
            flows = np.asarray(data["rack/flow"], dtype=float)[0]
            self.rack_flow_min = np.minimum(self.rack_flow_min, flows)
            self.rack_flow_max = np.maximum(self.rack_flow_max, flows)
        else:
            self.return_max = _nanmax(self.return_max, ret)
        self.rack_dp_max = _nanmax(self.rack_dp_max, data["rack/dp"])
        # head reserve of the running pumps: full-speed curve at today's flow minus the
        # head their CDU's pumps deliver now
        delivered = (hyd.pressure_pa[m.cdu_discharge_node] - hyd.pressure_pa[m.cdu_suction_node])[m.pump_cdu]
        for c in range(m.n_cdus):  # the head reserve is that of running pumps: say when there were none
            spans = self.pump_outages.get(c, [])
            if not np.any(hyd.speed[m.pump_cdu == c] > 0):
                if not spans or spans[-1][1] is not None:
                    self.pump_outages[c] = spans + [[t_start, None]]
            elif spans and spans[-1][1] is None:  # a pump runs again (a standby after the failover delay)
                spans[-1][1] = t_start
        scale = self._setpoint_scale(hyd, t_start)  # >1: the pumps at their top speed short of the setpoint
        for i, e in enumerate(m.pump_edges):
            if hyd.speed[i] > 0:
                q = hyd.flow_m3s[e] * scale
                avail = m.pump_shutoff_pa[i] - m.pump_k[i] * q * abs(q)
                self.head_margin_min = -_nanmax(-self.head_margin_min, -(avail - delivered[i] * scale ** 2) / 1e3)
        total = "row/" if "row/liquid_heat" in data else "rack/"
        liquid = data[f"{total}liquid_heat"]
        self.liquid_sum += float(np.sum(liquid))
        self.it_sum += float(np.sum(data[f"{total}it_power"]))
        self.peak_it = _nanmax(self.peak_it, data[f"{total}it_power"])
        # the rating of the CDUs still rejecting heat against the heat of the same rows
        up = ~np.asarray(hx_lost, dtype=bool) if len(hx_lost) else np.ones(m.n_cdus, dtype=bool)
        avail = float(np.sum(m.cdu_rated_heat_w[up]))
        self.capacity_margin_min = -_nanmax(-self.capacity_margin_min, -(avail - np.asarray(liquid)))
        if avail < self.capacity_min:
            self.capacity_min, self.cdus_up_min = avail, int(up.sum())
        i = int(np.argmax(liquid))
        if liquid[i] > self.peak_liquid or not np.isfinite(liquid[i]):
            self.peak_liquid, self.flow_at_peak = float(liquid[i]), float(data[f"{total}flow"][i])

    def _tray_note(self) -> str:
        """Which tray sets ``tray_flow_ratio_min``, at what flow, requirement and supply
        temperature; says so when the supply left any tray type's requirement table."""
        m = self.m
        i = self.tray_ratio_arg
        flow, req, supply = self.tray_ratio_at
        note = (f"{m.tray_names[i]} ({m.tray_type[i]}) {flow:.2f} L/min vs {req:.2f} required "
                f"at {supply:.1f} degC supply")
        lo, hi = self.supply_range
        tables = {}  # tray type -> its table's temperatures (types with a table only)
        for t, temps in zip(m.tray_type, m.tray_required_temps_c):
            if temps.size > 1:
                tables.setdefault(t, temps)
        for t, temps in tables.items():
            if lo < temps[0]:
                note += (f"; supply down to {lo:.1f} degC, below the {t} table ({temps[0]:g} degC): "
                         "requirement held at its end value")
            if hi > temps[-1]:
                note += (f"; supply up to {hi:.1f} degC, above the {t} table ({temps[-1]:g} degC): "
                         "requirement held at its end value")
        return note

    def finish(self, state, wl=None, jobs=(), ride_through=None, coolant=None, end=None) -> Margins:
        """The margins of what the run saw. ``coolant``: the run's
        :class:`twin.run_end.CoolantLimits`; ``end``: how it ended (a stop at a model limit
        names itself in the coolant margins' notes)."""
        m = self.m
        s = m.scenario
        rows = []
        tj = state.chip_tj_max
        gpu = m.gpu_index
        thr_s = wl.ws[:, kw.WS_THROTTLED_S] if wl is not None else np.zeros(m.n_chips)
        shut = wl.ws[:, kw.WS_SHUTDOWN] > 0 if wl is not None else np.zeros(m.n_chips, dtype=bool)

        def junction_row(name, chips, kind):
            margin = m.chip_throttle_c[chips] - tj[chips]
            k = int(np.argmin(np.where(np.isnan(margin), -np.inf, margin)))
            c = chips[k]
            hot = chips[thr_s[chips] > 0]
            reason = (f"{len(hot)} {kind} throttled ({m.chip_names[hot[int(np.argmax(thr_s[hot]))]]} longest)"
                      if hot.size else "")
            note = (f"{m.chip_names[c]} peaks at {tj[c]:.1f} degC, throttles at {m.chip_throttle_c[c]:.0f}"
                    if np.isfinite(margin[k]) else "no thermal step ran")
            return MarginRow(name, float(margin[k]), "K", s.margin_limit(name), "min", note,
                             instance=m.chip_names[c], fail_reason=reason)

        rows.append(junction_row("gpu_junction_margin_k", gpu, "GPUs"))
        other = np.array([i for i in range(m.n_chips) if m.chip_type[i] != "gpu"], dtype=int)
        if other.size:
            rows.append(junction_row("other_chip_junction_margin_k", other, "chips"))
        for r, kinds in zip(rows, (("gpu",), tuple({m.chip_type[i] for i in other}))):
            coarse = coarse_step(s, kinds)
            if coarse:
                r.note = f"{r.note}; {coarse}" if r.note else coarse
        kmax = gpu[int(np.argmax(tj[gpu]))]
        rows.append(MarginRow("gpu_junction_max_c", float(tj[gpu].max()), "degC", instance=m.chip_names[kmax]))
        if wl is not None:
            k = gpu[int(np.argmax(thr_s[gpu]))]
            n_thr = int(np.sum(thr_s[gpu] > 0))
            note = (f"{m.chip_names[k]} the longest; {n_thr} GPUs throttled at some point" if n_thr
                    else "no GPU throttled")
            rows.append(MarginRow("gpu_throttled_s_max", float(thr_s[k]), "s", s.margin_limit("gpu_throttled_s_max"),
                                  "max", note, instance=m.chip_names[k] if n_thr else ""))
            down = gpu[shut[gpu]]
            first = wl.ws[down, kw.WS_FIRST_SHUTDOWN] * s.simulation.time_step_s
            note = (f"{m.chip_names[down[int(np.argmin(first))]]} first, at {first.min():.1f} s" if down.size else "")
            rows.append(MarginRow("gpu_shutdowns", float(down.size), "1", s.margin_limit("gpu_shutdowns"), "max", note,
                                  instance=m.chip_names[down[int(np.argmin(first))]] if down.size else "", integer=True))
        rows.append(MarginRow("gpu_junction_p95_c", float(np.percentile(tj[gpu], 95)) if np.isfinite(tj[gpu]).all()
                              else math.nan, "degC", note=f"95th percentile of the {gpu.size} GPUs' peaks"))
        if m.is_row:
            self.return_max, where = self._row_return()
        else:
            where = m.rack_names[0]
        no_sample = "" if np.isfinite(self.return_max) else "no output sample: the run is shorter than one output interval"
        limit = s.margin_limit("rack_return_temp_max_c")
        if m.is_row and s.margins.rack_return_temp_max_c is None:  # each rack against its own limit
            limit = float(m.rack_max_return_c[m.rack_names.index(where)])
        rows.append(MarginRow("rack_return_temp_max_c", self.return_max, "degC", limit, "max", no_sample,
                              instance=where))
        t = self.tray_ratio_arg
        rows.append(MarginRow("tray_flow_ratio_min", self.tray_ratio_min, "1", s.margin_limit("tray_flow_ratio_min"), "min",
                              self._tray_note() if t >= 0 else no_sample, instance=m.tray_names[t] if t >= 0 else ""))
        if self.head_margin_min != np.inf:
            rows.append(MarginRow("pump_head_margin_kpa", self.head_margin_min, "kPa",
                                  s.margin_limit("pump_head_margin_kpa"), "min",
                                  self._head_note() + "".join(
                                      f"; no pump of {m.cdu_names[c]} running {_spans(spans)}"
                                      " (the reserve is that of the time pumps ran)"
                                      for c, spans in sorted(self.pump_outages.items())), instance="cdu"))
        if coolant is not None:
            stop = end.reason if end is not None and end.kind.startswith("coolant") else ""
            rows.append(MarginRow("coolant_temp_max_c", coolant.t_max, "degC", coolant.boil_c, "max",
                                  stop or f"at {coolant.where_max}; {coolant.boil_note}", instance=coolant.where_max))
            rows.append(MarginRow("coolant_temp_min_c", coolant.t_min, "degC", coolant.freeze_c, "min",
                                  f"at {coolant.where_min}; {coolant.freeze_note}", instance=coolant.where_min))
        rows.append(MarginRow("rack_dp_max_kpa", self.rack_dp_max, "kPa", instance="rack"))
        if m.is_row:
            rows += self._row_rows(tj, gpu)
        if self.pump_time_s > 0:
            mean_kw = self.pump_energy_j / self.pump_time_s / 1e3
            rows.append(MarginRow("cdu_pump_energy_kwh", self.pump_energy_j / 3.6e6, "kWh",
                                  note=f"CDU pumps, electrical, over {self.pump_time_s:g} s"))
            rows.append(MarginRow("cdu_pump_power_mean_kw", mean_kw, "kW",
                                  note=f"{mean_kw * 24:.1f} kWh per day at this mean"))
        unit = "row" if m.is_row else "rack"  # a row: the whole row's heat and flow
        rated = float(np.sum(m.cdu_rated_heat_w))
        over = ("" if m.is_row or not self.peak_liquid > rated else  # a row: cdu_capacity_margin_kw judges it
                f"; above the CDU's rated {rated / 1e3:g} kW ({100 * self.peak_liquid / rated:.0f} %): its exchanger "
                "runs at a wider approach than rated")
        if self.peak_liquid > STORED_RELEASE_RATIO * self.peak_it:  # more than the rack ever drew: stored heat
            over += (f"; above the peak IT power ({self.peak_it / 1e3:.1f} kW): heat the chips, plates and "
                     "coolant had stored, released into the flow (as after a stop of the flow)")
        rows.append(MarginRow(f"{unit}_liquid_heat_peak_kw", self.peak_liquid / 1e3, "kW",
                              note="output-interval mean" + over))
        per_kw = self.flow_at_peak / (self.peak_liquid / 1e3) if self.peak_liquid > 0 else math.nan
        rows.append(MarginRow(f"{unit}_flow_per_kw_lpm", per_kw, "L/min/kW", note=f"{unit} flow over liquid heat at the peak"))
        rows.append(MarginRow("liquid_heat_fraction", self.liquid_sum / self.it_sum if self.it_sum > 0 else math.nan, "1",
                              note="heat into the coolant over IT power"))
        if ride_through is not None:
            for key, what in (("throttle", "its throttle temperature"), ("shutdown", "shutdown")):
                v = ride_through[key]
                if ride_through["t_end_s"] <= 0:  # a shortened run (--duration) that ends before the trip
                    end_s = ride_through["trip_s"] + ride_through["t_end_s"]
                    rows.append(MarginRow(f"ride_through_{key}_s", math.nan, "s",
                                          note=f"the CDU trip at {ride_through['trip_s']:g} s is after the end of "
                                               f"the run ({end_s:g} s): nothing to measure"))
                elif v is None:
                    rows.append(MarginRow(f"ride_through_{key}_s", ride_through["t_end_s"], "s",
                                          note=f"no GPU reached {what} within the run: at least this long"))
                else:
                    rows.append(MarginRow(f"ride_through_{key}_s", v, "s",
                                          note=f"from the CDU trip to the first GPU at {what}"))
                if s.simulation.time_step_s > RIDE_THROUGH_STEP_MAX_S:
                    rows[-1].note += (f"; time step {s.simulation.time_step_s:g} s: not converged (docs/model.md, "
                                      f"Time step: use time_step_s <= {RIDE_THROUGH_STEP_MAX_S:g})")
        for job in jobs:
            if job["kind"] != "training":
                continue
            rows.append(MarginRow(f"job_{job['name']}_steps", job["steps"], "1", note=f"{job['gpus']} GPUs", integer=True))
            rows.append(MarginRow(f"job_{job['name']}_goodput", job["goodput"], "1", s.margin_limit("job_goodput_min"),
                                  "min", "steps over steps without thermal throttling", tolerance=GOODPUT_RTOL))
            rows.append(MarginRow(f"job_{job['name']}_throttled_gpu_s", job["throttled_gpu_s"], "GPU*s"))
        return Margins(rows)


    def _row_return(self):
        """The rack closest to (or furthest over) its return limit: its return maximum and name."""
        m = self.m
        over = self.rack_return_max - m.rack_max_return_c
        r = int(np.argmax(np.where(np.isnan(over), np.inf, over)))
        return float(self.rack_return_max[r]), m.rack_names[r]

    def _row_rows(self, tj, gpu) -> list:
        """Row margins: the worst rack, the CDUs' capacity against the row's peak heat, the
        flow balance across racks."""
        m = self.m
        s = m.scenario
        rows = []
        peaks = np.array([np.max(tj[gpu[m.chip_rack[gpu] == r]]) if np.any(m.chip_rack[gpu] == r) else -np.inf
                          for r in range(m.n_racks)])
        r = int(np.argmax(peaks))
        rows.append(MarginRow("worst_rack_gpu_junction_max_c", float(peaks[r]), "degC",
                              note="racks by hottest GPU: " + ", ".join(
                                  f"{m.rack_names[i]} {peaks[i]:.1f}" for i in np.argsort(-peaks)[:4]),
                              instance=m.rack_names[r]))
        cap = float(np.sum(m.cdu_rated_heat_w)) / 1e3
        up = (f"{self.cdus_up_min} of {m.n_cdus} CDUs up at the worst ({self.capacity_min / 1e3:.0f} kW rated)"
              if self.cdus_up_min < m.n_cdus else f"{m.n_cdus} CDU(s) rated {cap:.0f} kW in all")
        rows.append(MarginRow("cdu_capacity_margin_kw", self.capacity_margin_min / 1e3, "kW",
                              s.margin_limit("cdu_capacity_margin_kw"), "min",
                              f"rated heat of the CDUs rejecting heat minus the row's liquid heat, least over the run; "
                              f"{up}; row peak liquid heat {self.peak_liquid / 1e3:.1f} kW", instance="row"))
        # each rack's flow over its trays' nominal requirement, worst against best
        need = np.zeros(m.n_racks)
        np.add.at(need, m.tray_rack, m.tray_required_lpm)
        lo = self.rack_flow_min / need
        hi = self.rack_flow_max / need
        i, j = int(np.argmin(lo)), int(np.argmax(hi))
        rows.append(MarginRow("rack_flow_balance_min", float(lo[i] / hi[j]) if hi[j] > 0 else math.nan, "1",
                              s.margin_limit("rack_flow_balance_min"), "min",
                              f"flow per nominal requirement: {m.rack_names[i]} {lo[i]:.3f}, {m.rack_names[j]} "
                              f"{hi[j]:.3f} (1 = every rack served alike)", instance=m.rack_names[i]))
        return rows


def _spans(spans, most: int = 3) -> str:
    """``from 10 s`` (to the end), ``60-65 s``, several joined; the first ``most`` of them."""
    text = [f"from {a:g} s" if b is None else f"{a:g}-{b:g} s" for a, b in spans[:most]]
    more = f" and {len(spans) - most} more" if len(spans) > most else ""
    return ", ".join(text) + more


def _nanmax(current: float, values) -> float:
    """max(current, values) where any NaN wins: a NaN never hides behind a finite maximum."""
    v = float(np.max(values)) if np.size(values) else -np.inf
    if math.isnan(v) or math.isnan(current):
        return math.nan
    return max(current, v)
