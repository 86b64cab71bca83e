"""Kernel records to telemetry rows.

The thermal kernel writes records at the output rate (:meth:`twin.network.Network.advance`);
:class:`_Recorder` collects them over many blocks and turns them into telemetry channels
in batches (:func:`_record_rows`), which stream to HDF5 (:class:`twin.telemetry.TelemetryWriter`)
and feed the margin tracker. A :class:`_Snapshot` keeps what the rows need of the network
besides the records (flows, facility water, sensor offsets). :func:`_channels` is the
channel table of a model's run.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .build import LPM, Model
from .channels import channel_table
from .faults import sensor_offset
from .network import REC_NODES, Hydraulics, Network, _empty_records


def _channels(model: Model, n_jobs: int = 0):
    counts = {t: model.chip_type.count(t) for t in set(model.chip_type)}
    return channel_table(counts, len(model.tray_names), model.pump_edges.size, n_jobs, model.n_racks, model.n_cdus)


class _Recorder:
    """Collects kernel records over many blocks and turns them into telemetry rows in
    batches (one pass of Python per ~10 simulated minutes, not per block)."""

    ROWS = 600

    def __init__(self, model, n_jobs, type_slices, writer, tracker):
        self.m, self.n_jobs, self.type_slices = model, n_jobs, type_slices
        self.writer, self.tracker = writer, tracker
        self._new(self.ROWS)

    def _new(self, rows):
        self.buf = _empty_records(self.m, rows, self.n_jobs)
        self.times = np.empty(rows)
        self.n = 0
        self.runs: list = []  # [start, end, snapshot]

    def views(self, rows):
        """Record arrays for the next ``rows`` rows (fresh memory after every flush: the
        writer keeps what it was given until it writes)."""
        if self.n + rows > self.times.size:
            self.flush()
            if rows > self.times.size:
                self._new(rows)
        return {k: v[self.n:self.n + rows] for k, v in self.buf.items()}

    def commit(self, rows, times, snap):
        if rows == 0:
            return
        self.times[self.n:self.n + rows] = times
        if self.runs and self.runs[-1][2] is snap:
            self.runs[-1][1] += rows
        else:
            self.runs.append([self.n, self.n + rows, snap])
        self.n += rows

    def flush(self):
        for a, b, snap in self.runs:
            rec = {k: v[a:b] for k, v in self.buf.items()}
            data = _record_rows(self.m, snap, rec, b - a, self.type_slices)
            self.writer.append(self.times[a:b].copy(), data)
            if self.tracker is not None:
                dt = self.m.scenario.simulation.output_interval_s
                self.tracker.update(snap.hyd, data, snap.offsets, snap.hx_lost, float(self.times[a]) - dt)
        self._new(self.times.size)


@dataclass
class _Snapshot:
    """What the recorder needs of the network besides the kernel's records; a new one is
    taken whenever a fault, a control or a re-solve changed it."""

    hyd: Hydraulics
    fac_temp: float
    fac_flow_m3s: float
    offsets: dict
    hx_lost: tuple = ()  # the CDUs rejecting no heat (a trip)


def _snapshot(net: "Network") -> _Snapshot:
    return _Snapshot(net.hyd, net.fac_temp, net.fac_flow_m3s, dict(net.sensor_offsets), tuple(net.hx_lost))


def _snapshot_changed(snap: _Snapshot, net: "Network") -> bool:
    return (snap.hyd is not net.hyd or snap.fac_temp != net.fac_temp or snap.fac_flow_m3s != net.fac_flow_m3s
            or snap.offsets != net.sensor_offsets or snap.hx_lost != tuple(net.hx_lost))


def _rack_heat(m: Model, power, rows):
    """Each rack's chip power, aux power and aux power into the liquid over ``rows``
    record intervals [W], from the interval-mean chip power (records in type-grouped
    column order): aux follows each tray's chip power on its line (``Model.tray_aux_*``:
    exact for a mean of a linear law while no tray's chips are all shut down)."""
    cols = m.info["rec_col"]
    tray_p = np.zeros((rows, len(m.tray_names)))
    np.add.at(tray_p.T, m.chip_tray, power[:, cols].T)
    aux = np.maximum(m.tray_aux_base_w + m.tray_aux_slope * tray_p, 0.0)
    chip = np.zeros((rows, m.n_racks))
    np.add.at(chip.T, m.tray_rack, tray_p.T)
    rack_aux = np.zeros((rows, m.n_racks))
    np.add.at(rack_aux.T, m.tray_rack, aux.T)
    rack_aux_liquid = np.zeros((rows, m.n_racks))
    np.add.at(rack_aux_liquid.T, m.tray_rack, (aux * m.tray_aux_liquid_fraction).T)
    return chip, rack_aux, rack_aux_liquid


def _facility_return(supply_c, heat_w, m_cp):
    """The facility water leaving the CDUs' exchangers: supply plus heat over its mcp
    [W/K]; NaN, no reading, while it does not flow (a lost facility flow), without
    numpy's division warning."""
    heat = np.asarray(heat_w, dtype=float)
    if m_cp > 0.0:
        return supply_c + heat / m_cp
    return np.full(heat.shape, np.nan)


def _record_rows(m: Model, snap: _Snapshot, rec: dict, rows: int, type_slices: dict) -> dict:
    """Telemetry channels of ``rows`` kernel records (per-chip records grouped by type:
    ``type_slices``, see ``Network.rec_col``)."""
    hyd = snap.hyd
    q = hyd.flow_m3s
    out = {}
    for t, sl in type_slices.items():
        out[f"{t}/power"] = rec["power"][:rows, sl]
        out[f"{t}/junction_temp"] = rec["tj"][:rows, sl]
        out[f"{t}/junction_temp_max"] = rec["tj_max"][:rows, sl]
        out[f"{t}/throttled_time"] = rec["throttled"][:rows, sl]
    out["gpu/clock_fraction"] = rec["clock"][:rows, type_slices["gpu"]]
    if rec["job"].shape[1]:
        out["job/steps"] = rec["job"][:rows]
    liquid = rec["scalar"][:rows, 0]
    hx_heat = rec["scalar"][:rows, 1]
    aux, aux_liquid = rec["scalar"][:rows, 2], rec["scalar"][:rows, 3]
    fac_t = snap.fac_temp
    m_fac_cp = snap.fac_flow_m3s * m.facility_rho * m.facility_cp
    out["tray/flow"] = np.broadcast_to(q[m.tray_supply_edge] / LPM, (rows, m.tray_supply_edge.size))
    out["tray/return_temp"] = rec["edge_out"][:rows]
    out["cdu/pump_speed"] = np.broadcast_to(hyd.speed, (rows, hyd.speed.size))
    out["cdu/pump_power"] = np.broadcast_to(m.pump_power_w(q, hyd.pressure_pa, hyd.speed), (rows, hyd.speed.size))
    out["facility/supply_temp"] = np.full(rows, fac_t)
    nr, nc = m.n_racks, m.n_cdus
    node_t = rec["node_t"][:rows]
    p = hyd.pressure_pa
    if not m.is_row:  # one rack on one CDU: one value per row (REC_NODES order)
        out["rack/liquid_heat"] = liquid
        out["rack/it_power"] = rec["power"][:rows].sum(axis=1) + aux
        out["rack/air_heat"] = aux - aux_liquid
        out["rack/supply_temp"] = node_t[:, REC_NODES.index("rack_in")]
        out["rack/return_temp"] = node_t[:, REC_NODES.index("rack_out")]
        out["rack/flow"] = np.full(rows, q[m.edge["supply_hose"]] / LPM)
        out["rack/dp"] = np.full(rows, (p[m.node["rack_in"]] - p[m.node["rack_out"]]) / 1e3)
        out["cdu/supply_temp"] = node_t[:, REC_NODES.index("cdu_supply")]
        out["cdu/return_temp"] = node_t[:, REC_NODES.index("cdu_return")]
        out["cdu/heat"] = hx_heat
        out["cdu/dp"] = np.full(rows, (p[m.node["discharge"]] - p[m.node["suction"]]) / 1e3)
        out["facility/return_temp"] = _facility_return(fac_t, hx_heat, m_fac_cp)
        out["facility/flow"] = np.full(rows, snap.fac_flow_m3s / LPM)
    else:  # a row: per rack and per CDU (columns in rack and CDU order), row totals
        out["row/liquid_heat"] = liquid
        out["row/it_power"] = rec["power"][:rows].sum(axis=1) + aux
        out["row/air_heat"] = aux - aux_liquid
        out["row/flow"] = np.full(rows, q[m.cdu_hx_edge].sum() / LPM)
        rack_chip, rack_aux, rack_aux_liquid = _rack_heat(m, rec["power"][:rows], rows)
        out["rack/it_power"] = rack_chip + rack_aux
        out["rack/liquid_heat"] = rack_chip + rack_aux_liquid
        out["rack/air_heat"] = rack_aux - rack_aux_liquid
        out["rack/supply_temp"] = node_t[:, :nr]
        out["rack/return_temp"] = node_t[:, nr:2 * nr]
        out["rack/flow"] = np.broadcast_to(q[m.rack_supply_edge] / LPM, (rows, nr))
        out["rack/dp"] = np.broadcast_to((p[m.rack_in_node] - p[m.rack_out_node]) / 1e3, (rows, nr))
        out["cdu/supply_temp"] = node_t[:, 2 * nr:2 * nr + nc]
        out["cdu/return_temp"] = node_t[:, 2 * nr + nc:]
        out["cdu/heat"] = rec["cdu_heat"][:rows]
        out["cdu/flow"] = np.broadcast_to(q[m.cdu_hx_edge] / LPM, (rows, nc))
        out["cdu/dp"] = np.broadcast_to((p[m.cdu_discharge_node] - p[m.cdu_suction_node]) / 1e3, (rows, nc))
        out["facility/return_temp"] = _facility_return(fac_t, rec["cdu_heat"][:rows], m_fac_cp)
        out["facility/flow"] = np.full(rows, nc * snap.fac_flow_m3s / LPM)
    for channel in {c for c, _ in snap.offsets}:  # a faulty sensor reads off
        out[channel] = out[channel] + sensor_offset(snap.offsets, channel, np.shape(out[channel])[1:])
    return out

