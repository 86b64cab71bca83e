"""Cooling margins of a run: what `twin run` prints and `twin check` will gate on.

Each margin has a value, a unit and, where it is a pass/fail quantity, a limit and a
direction. Junction maxima are taken at every thermal step inside the kernel, not only
at the output rate; the other quantities are taken at the output rate.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .build import LPM


@dataclass
class MarginRow:
    name: str
    value: float
    unit: str
    limit: float | None = None
    sense: str | None = None  # "min": value must be >= limit; "max": value must be <= limit
    note: str = ""

    @property
    def ok(self) -> bool | None:
        if self.sense is None:
            return None
        return self.value >= self.limit if self.sense == "min" else self.value <= self.limit


@dataclass
class Margins:
    rows: list = field(default_factory=list)

    @property
    def values(self) -> dict:
        return {r.name: r.value for r in self.rows}

    @property
    def ok(self) -> bool:
        return all(r.ok is not False for r in self.rows)

    def table(self) -> str:
        lines = [f"{'margin':<30} {'value':>10} {'unit':<8} {'limit':>10}  status  note"]
        for r in self.rows:
            limit = "" if r.limit is None else f"{r.limit:>10.3g}"
            status = "" if r.ok is None else ("ok" if r.ok else "FAIL")
            lines.append(f"{r.name:<30} {r.value:>10.3f} {r.unit:<8} {limit:>10}  {status:<6}  {r.note}")
        return "\n".join(lines)


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
        self.rack_dp_max = -np.inf
        self.peak_liquid = -np.inf
        self.flow_at_peak = np.nan
        self.liquid_sum = 0.0
        self.it_sum = 0.0

    def update(self, hyd, data, offsets=None):
        """Fold in a run of output rows taken on one hydraulic state ``hyd``; ``offsets``:
        the sensor offsets in force (``twin.faults``), removed where a margin needs the
        true value."""
        m = self.m
        # each tray against its requirement at the rack supply temperature of every sample
        supply = np.asarray(data["rack/supply_temp"], dtype=float) - (offsets or {}).get("rack/supply_temp", 0.0)
        flow = hyd.flow_m3s[m.tray_supply_edge] / LPM
        required = m.tray_required_at(supply)  # (rows, tray)
        ratio = flow / required
        r, i = np.unravel_index(int(np.argmin(ratio)), ratio.shape)
        if ratio[r, i] < self.tray_ratio_min:
            self.tray_ratio_min, self.tray_ratio_arg = float(ratio[r, i]), int(i)
            self.tray_ratio_at = (float(flow[i]), float(required[r, i]), float(supply[r]))
        self.supply_range = (min(self.supply_range[0], float(supply.min())), max(self.supply_range[1], float(supply.max())))
        # pump electrical energy: the hydraulic state's power over these rows' intervals
        dt = m.scenario.simulation.output_interval_s
        pump_w = float(np.sum(m.pump_power_w(hyd.flow_m3s, hyd.pressure_pa, hyd.speed)))
        self.pump_energy_j += pump_w * supply.size * dt
        self.pump_time_s += supply.size * dt
        self.return_max = max(self.return_max, float(np.max(data["rack/return_temp"])))
        self.rack_dp_max = max(self.rack_dp_max, float(np.max(data["rack/dp"])))
        # head reserve of the running pumps: full-speed curve at today's flow minus the
        # head they deliver now
        delivered = hyd.pressure_pa[m.node["discharge"]] - hyd.pressure_pa[m.node["suction"]]
        for i, e in enumerate(m.pump_edges):
            if hyd.speed[i] > 0:
                q = hyd.flow_m3s[e]
                avail = m.pump_shutoff_pa[i] - m.pump_k[i] * q * abs(q)
                self.head_margin_min = min(self.head_margin_min, (avail - delivered) / 1e3)
        liquid = data["rack/liquid_heat"]
        self.liquid_sum += float(np.sum(liquid))
        self.it_sum += float(np.sum(data["rack/it_power"]))
        i = int(np.argmax(liquid))
        if liquid[i] > self.peak_liquid:
            self.peak_liquid, self.flow_at_peak = float(liquid[i]), float(data["rack/flow"][i])

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

    def finish(self, state, wl=None, jobs=(), ride_through=None) -> Margins:
        m = self.m
        s = m.scenario
        rows = []
        tj = state.chip_tj_max
        gpu = m.gpu_index
        margin = m.chip_throttle_c[gpu] - tj[gpu]
        k = int(np.argmin(margin))
        rows.append(MarginRow("gpu_junction_margin_k", float(margin[k]), "K", 0.0, "min",
                              f"{m.chip_names[gpu[k]]} peaks at {tj[gpu[k]]:.1f} degC, throttles at {m.chip_throttle_c[gpu[k]]:.0f}"))
        other = np.array([i for i in range(m.n_chips) if m.chip_type[i] != "gpu"], dtype=int)
        if other.size:
            om = m.chip_throttle_c[other] - tj[other]
            j = int(np.argmin(om))
            rows.append(MarginRow("other_chip_junction_margin_k", float(om[j]), "K", 0.0, "min",
                                  f"{m.chip_names[other[j]]} peaks at {tj[other[j]]:.1f} degC"))
        rows.append(MarginRow("gpu_junction_max_c", float(tj[gpu].max()), "degC"))
        rows.append(MarginRow("rack_return_temp_max_c", self.return_max, "degC", s.rack.max_return_temp_c, "max"))
        rows.append(MarginRow("tray_flow_ratio_min", self.tray_ratio_min, "1", 1.0, "min", self._tray_note()))
        if np.isfinite(self.head_margin_min):
            rows.append(MarginRow("pump_head_margin_kpa", self.head_margin_min, "kPa", 0.0, "min",
                                  "full-speed head at the operating flow minus delivered head"))
        rows.append(MarginRow("rack_dp_max_kpa", self.rack_dp_max, "kPa"))
        if self.pump_time_s > 0:
            mean_kw = self.pump_energy_j / self.pump_time_s / 1e3
            rows.append(MarginRow("cdu_pump_energy_kwh", self.pump_energy_j / 3.6e6, "kWh",
                                  note=f"CDU pumps, electrical, over {self.pump_time_s:g} s"))
            rows.append(MarginRow("cdu_pump_power_mean_kw", mean_kw, "kW",
                                  note=f"{mean_kw * 24:.1f} kWh per day at this mean"))
        rows.append(MarginRow("rack_liquid_heat_peak_kw", self.peak_liquid / 1e3, "kW", note="output-interval mean"))
        rows.append(MarginRow("rack_flow_per_kw_lpm", self.flow_at_peak / (self.peak_liquid / 1e3), "L/min/kW",
                              note="rack flow over liquid heat at the peak"))
        if self.it_sum > 0:
            rows.append(MarginRow("liquid_heat_fraction", self.liquid_sum / self.it_sum, "1",
                                  note="heat into the coolant over IT power"))
        if wl is not None:
            from .kernels import workload as kw
            thr = wl.ws[gpu, kw.WS_THROTTLED_S]
            note = (f"{m.chip_names[gpu[int(np.argmax(thr))]]}; {int(np.sum(thr > 0))} GPUs throttled at some point"
                    if thr.max() > 0 else "no GPU throttled")
            rows.append(MarginRow("gpu_throttled_s_max", float(thr.max()), "s", note=note))
            rows.append(MarginRow("gpu_shutdowns", float(np.sum(wl.ws[gpu, kw.WS_SHUTDOWN] > 0)), "1", 0.0, "max"))
        if ride_through is not None:
            for key in ("throttle", "shutdown"):
                v = ride_through[key]
                if v is None:
                    rows.append(MarginRow(f"ride_through_{key}_s", ride_through["t_end_s"], "s",
                                          note=f"no GPU reached {key} within the run: at least this long"))
                else:
                    rows.append(MarginRow(f"ride_through_{key}_s", v, "s",
                                          note=f"from the CDU trip to the first GPU {key}"))
        for job in jobs:
            if job["kind"] != "training":
                continue
            rows.append(MarginRow(f"job_{job['name']}_steps", job["steps"], "1", note=f"{job['gpus']} GPUs"))
            rows.append(MarginRow(f"job_{job['name']}_goodput", job["goodput"], "1", 1.0, "min",
                                  "steps over steps without thermal throttling"))
            rows.append(MarginRow(f"job_{job['name']}_throttled_gpu_s", job["throttled_gpu_s"], "GPU*s"))
        return Margins(rows)
