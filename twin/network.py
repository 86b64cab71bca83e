"""The flow network of a run: hydraulics, step coefficients and the thermal step over it.

A :class:`Network` is a model plus the coefficient arrays derived from its current flows
and temperatures. At each block boundary the network is re-solved, with the viscosities of
the current coolant temperatures (and, in flow mode, the pump speed that holds the flow
setpoint), and plate conductances and the exact step maps recomputed, if anything they
depend on moved (a coolant temperature by more than ``REUSE_TOL_K``, a fault, a control
action): :meth:`Network.refresh`. :meth:`Network.advance` runs the thermal kernel over a
segment's steps without leaving compiled code and writes records at the output rate into
the arrays of :func:`_empty_records` (the loop nodes of ``REC_NODES``, every tray's
outflow, per-chip records grouped by chip type). A network with no hydraulic solution the
model represents raises :class:`ModelLimit`.

Running is re-entrant: all state lives in a :class:`NetworkState` owned by the run.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .build import HA_FLOWS_LPM, HA_TEMPS_C, LPM, Model
from .correlations import counterflow_effectiveness
from .kernels import hydraulics as hk
from .kernels import props as pk
from .kernels import thermal as tk

# Hydraulic convergence: loop pressure residual [Pa] (0.1 Pa against ~1e5 Pa of head).
HYDRAULIC_TOL_PA = 0.1
# A solve whose loop residual stays above this after its iterations has failed [Pa]: the
# network has no solution the model represents (the run stops with a named event).
HYDRAULIC_FAIL_PA = 100.0
# Flow setpoint search: relative flow tolerance of the ideal flow controller.
FLOW_CONTROL_RTOL = 1e-6
# The ideal flow controller's lowest pump speed (relative): a setpoint below what it gives
# is held there (ASSUMPTION: VFDs run down to a few % of rated speed).
MIN_FLOW_CONTROL_SPEED = 1e-3
# Coefficients are recomputed when a coolant temperature has moved by more than this
# since they were last computed [K]. Within it PG25 viscosity moves by < 1.3 %, which
# shifts a laminar path's share of its tray's flow by < 0.1 % (all paths move together),
# and a plate's conductance moves by < 0.1 % (a 1200 W junction by < 0.01 K). Training
# bursts swing plate coolant by about a kelvin every step: a tighter band would re-solve
# every block for nothing.
REUSE_TOL_K = 0.5
# Nodes whose temperature the recorder keeps (columns of rec["node_t"], in this order).
REC_NODES = ("rack_in", "rack_out", "cdu_supply", "cdu_return")


@dataclass
class Hydraulics:
    flow_m3s: np.ndarray  # every edge
    pressure_pa: np.ndarray  # every node (gauge, suction = 0)
    speed: np.ndarray  # every pump
    iterations: int
    residual_pa: float


@dataclass
class NetworkState:
    """Everything that changes during a run."""

    chip_x: np.ndarray  # (chip, 3) Tj, Tb, Tf [degC]
    cell_t: np.ndarray
    edge_out: np.ndarray
    node_t: np.ndarray
    q_loop: np.ndarray
    speed: np.ndarray
    acc: np.ndarray
    chip_tj_max: np.ndarray
    interval_tj_max: np.ndarray

    @classmethod
    def uniform(cls, model: Model, temp_c: float, speed: float | None = None):
        """Every temperature at ``temp_c``; running pumps at ``speed`` (default: the scenario's)."""
        n_chip = model.n_chips
        speed = model.scenario.controls.pump_speed_fraction if speed is None else speed
        return cls(
            chip_x=np.full((n_chip, 3), temp_c),
            cell_t=np.full(model.cell_kind.size, temp_c),
            edge_out=np.full(model.edge_from.size, temp_c),
            node_t=np.full(len(model.node_names), temp_c),
            q_loop=model.q_loop0.copy(),
            speed=np.where(model.pump_running, speed, 0.0),  # the network's pump_on governs later
            acc=np.zeros(tk.ACC_CHIPS + n_chip + model.n_cdus),
            chip_tj_max=np.full(n_chip, -np.inf),
            interval_tj_max=np.full(n_chip, -np.inf),
        )


class Network:
    """A model plus the coefficient arrays derived from its current flows and temperatures."""

    def __init__(self, model: Model):
        self.m = model
        n_cell, n_chip, n_edge = model.cell_kind.size, model.n_chips, model.edge_from.size
        self.cell_c = model.cell_volume_m3 * model.rho * model.cp
        self.sweep = tk.sweep_table(model.edge_order, model.edge_from, model.node_in_ptr,
                                    model.node_in_edge, model.edge_cell_ptr)
        self.cell_int = tk.cell_table(model.cell_kind, model.cell_aux, model.cell_chip)
        self.cell_coef = np.zeros((n_cell, tk.N_CF))
        self.packed = np.zeros((n_chip, tk.N_PK))
        self.chip_g = np.zeros(n_chip)
        self.edge_mcp = np.zeros(n_edge)
        self.cell_hx = np.zeros(n_cell)  # each HX cell's eps Cmin [W/K] (its CDU's exchanger)
        self.fac_temp = model.scenario.facility.supply_temp_c
        self.fac_flow_m3s = model.scenario.facility.flow_lpm * LPM
        # the flow the ideal flow controller holds (a measured boundary may move it)
        self.flow_setpoint_m3s = model.scenario.controls.flow_setpoint_lpm * LPM
        self.hyd: Hydraulics | None = None
        # what faults and controls change (twin.faults): pumps on, loss coefficients,
        # plate clogging, heat rejection, sensor offsets
        self.pump_on = model.pump_running.copy()
        self.pump_tripped = np.zeros(model.pump_edges.size, dtype=bool)
        self.hold_speed = False  # set from a pump trip until the failover delay has passed
        self.ideal_pumps = False  # PI mode: solve the speed ideally (steady start only)
        self.fac_flow_max_m3s = self.fac_flow_m3s  # facility valve fully open
        self.edge_a = model.edge_a.copy()
        self.edge_b = model.edge_b.copy()
        self.chip_clog = np.zeros(n_chip)
        self.chip_convective_scale = model.chip_convective_scale.copy()  # fouling grows (twin.faults)
        self.hx_lost = np.zeros(model.n_cdus, dtype=bool)  # a CDU trip: that CDU rejects no heat
        self.sensor_offsets: dict = {}
        self.dirty = True
        self._dt = None
        self._temps = None
        self.packed_props = model.coolant.packed()
        # what the recorder keeps: every rack's inlet and outlet, every CDU's supply and
        # return (REC_NODES, each for all racks or CDUs), every tray's outflow
        self.rec_nodes = np.concatenate([model.rack_in_node, model.rack_out_node, model.cdu_supply_node,
                                         model.cdu_return_node]).astype(np.int64)
        self.rec_edges = model.tray_return_edge.astype(np.int64)
        # per-chip records are kept grouped by chip type (types in name order, chips in
        # index order within a type), so a type's channel is a slice, not a gather
        # (``rec_order`` lists the chips in that order; labels are written from it)
        groups = {t: model.chips_of_type(t) for t in sorted(set(model.chip_type))}
        self.rec_order = np.concatenate(list(groups.values()))
        self.rec_col = np.empty(n_chip, dtype=np.int64)
        self.rec_col[self.rec_order] = np.arange(n_chip)
        bounds = np.cumsum([0] + [idx.size for idx in groups.values()])
        self.rec_slices = {t: slice(int(a), int(b)) for t, a, b in zip(groups, bounds[:-1], bounds[1:])}
        model.info["rec_col"] = self.rec_col
        lf = np.log(HA_FLOWS_LPM)
        self.ha_grid = (lf[0], lf[1] - lf[0], HA_TEMPS_C[0], HA_TEMPS_C[1] - HA_TEMPS_C[0])

    # ---- hydraulics
    def _edge_params(self, state: NetworkState, speed):
        m = self.m
        temps = state.cell_t[m.cell_temp_edge]
        mu = pk.interp_column(self.packed_props, 2, m.coolant.t0_c, m.coolant.dt_c, temps)
        r = mu / m.mu_ref
        head = np.zeros(m.edge_from.size)
        b = self.edge_b.copy()
        for i, e in enumerate(m.pump_edges):
            head[e] = speed[i] ** 2 * m.pump_shutoff_pa[i]
        return r, b, head

    def solve_hydraulics(self, state: NetworkState, speed=None) -> Hydraulics:
        m = self.m
        speed = state.speed if speed is None else speed
        r, b, head = self._edge_params(state, speed)
        q, it, res = hk.solve_network(m.loop_ptr, m.loop_idx, m.loop_sign, state.q_loop, self.edge_a, r, b, head,
                                      m.edge_bcv, HYDRAULIC_TOL_PA, 100)
        dp, _ = hk.edge_dp(q, self.edge_a, r, b, head, m.edge_bcv)
        p = hk.node_pressures(len(m.node_names), m.tree_order, m.tree_edge, m.tree_parent, m.edge_from, dp, 0.0)
        return Hydraulics(q, p, speed.copy(), it, res)

    def update_flows(self, state: NetworkState) -> Hydraulics:
        """Re-solve the network; in flow mode find the pump speed that meets the setpoint."""
        s = self.m.scenario
        if s.controls.pump_mode == "pid" and not self.ideal_pumps:
            # the PI controller (twin.controls) sets the speed; stopped pumps stay stopped
            running = state.speed[state.speed > 0]
            state.speed = np.where(self.pump_on, running.max() if running.size else s.controls.pump_speed_min, 0.0)
        elif s.controls.pump_mode == "flow" and self.hold_speed:
            # the controller has not yet seen the trip: running pumps keep their speed
            held = state.speed[self.pump_on]
            state.speed = np.where(self.pump_on, held.max() if held.size and held.max() > 0 else 0.7, 0.0)
        elif s.controls.pump_mode in ("flow", "pid"):
            state.speed = np.where(self.pump_on, self._speed_for_flow(state), 0.0)
        else:
            state.speed = np.where(self.pump_on, s.controls.pump_speed_fraction, 0.0)
        hyd = self.solve_hydraulics(state)
        if not (math.isfinite(hyd.residual_pa) and hyd.residual_pa <= HYDRAULIC_FAIL_PA
                and np.all(np.isfinite(hyd.flow_m3s))):
            raise ModelLimit("hydraulic_solve_failed", "network",
                             f"loop pressure residual {hyd.residual_pa:.3g} Pa after {hyd.iterations} iterations")
        self.hyd = hyd
        return self.hyd

    def _speed_for_flow(self, state: NetworkState) -> float:
        """Speed of the running pumps that holds the rack flow at its setpoint (an ideal
        flow controller). Secant iteration from the last speed, first step from flow ~
        speed; bracketing (Brent) if that fails; full speed if the setpoint is out of reach."""
        m = self.m
        c = m.scenario.controls
        if not self.pump_on.any():
            return 0.0
        if c.pump_mode == "pid" and c.pid_variable == "dp":  # steady start of a dP controller
            target = c.dp_setpoint_kpa * 1e3

            def measure(h):
                return h.pressure_pa[m.node["rack_in"]] - h.pressure_pa[m.node["rack_out"]]
        else:
            target = self.flow_setpoint_m3s

            def measure(h):  # the flow the CDUs deliver (one rack: its supply hose's)
                return h.flow_m3s[m.cdu_hx_edge].sum() if m.is_row else h.flow_m3s[m.edge["supply_hose"]]

        def err(x):
            return measure(self.solve_hydraulics(state, np.where(self.pump_on, x, 0.0))) / target - 1.0

        running = state.speed[self.pump_on]
        x0 = float(running[0]) if running.size and running[0] > 0 else 0.7
        f0 = err(x0)
        if abs(f0) < FLOW_CONTROL_RTOL:
            return x0
        x1 = min(x0 / (1.0 + f0), 1.0)
        for _ in range(12):
            f1 = err(x1)
            if abs(f1) < FLOW_CONTROL_RTOL and 0.0 < x1 <= 1.0:
                return x1
            if f1 == f0:
                break
            x0, x1, f0 = x1, x1 - f1 * (x1 - x0) / (f1 - f0), f1
            if not 0.0 < x1 <= 1.0:
                break
        if err(1.0) < 0.0:
            return 1.0
        if err(MIN_FLOW_CONTROL_SPEED) > 0.0:  # a setpoint below what the slowest speed gives
            return MIN_FLOW_CONTROL_SPEED
        from scipy.optimize import brentq  # rarely needed: scipy.optimize costs ~0.4 s to import

        return brentq(err, MIN_FLOW_CONTROL_SPEED, 1.0, xtol=1e-9, rtol=FLOW_CONTROL_RTOL)

    def refresh(self, state: NetworkState, dt: float) -> bool:
        """Re-solve flows and recompute step coefficients if anything they depend on moved:
        the step, a coolant temperature by more than REUSE_TOL_K since the last solve, or
        an outside change (``self.dirty``: a control or fault acting on the network).
        Returns whether it recomputed."""
        temps = np.concatenate([state.cell_t, state.chip_x[:, 2]])
        if (not self.dirty and self.hyd is not None and dt == self._dt
                and np.max(np.abs(temps - self._temps)) <= REUSE_TOL_K):
            return False
        self.update_flows(state)
        self.prepare(state, dt)
        self._temps, self._dt, self.dirty = temps, dt, False
        return True

    # ---- thermal coefficients
    def prepare(self, state: NetworkState, dt: float):
        m = self.m
        q = np.maximum(self.hyd.flow_m3s, 0.0)
        self.edge_mcp = q * m.rho * m.cp
        chip_q = q[m.chip_path_edge]
        # a plate with a share f of its channels blocked is a plate with (1 - f) of them:
        # hA(Q) = (1 - f) hA_full(Q / (1 - f))
        open_frac = 1.0 - self.chip_clog
        ha = open_frac * pk.plate_ha(m.ha_table, m.chip_plate_type, self.ha_grid[0], self.ha_grid[1],
                                     self.ha_grid[2], self.ha_grid[3], chip_q / LPM / open_frac, state.chip_x[:, 2])
        ha = ha / self.chip_convective_scale  # a fouled plate: its convective resistance scaled
        mcp_chip = self.edge_mcp[m.chip_path_edge]
        g = np.where(mcp_chip > 0, mcp_chip * (1.0 - np.exp(-ha / np.where(mcp_chip > 0, mcp_chip, 1.0))), 0.0)
        with np.errstate(divide="ignore"):
            self.chip_g = np.where(g > 0, 1.0 / (1.0 / np.where(g > 0, g, 1.0) + m.chip_fouling), 0.0)
        for i in range(m.n_cdus):
            self.cell_hx[m.cdu_hx_cell[i]] = self.hx_duty(q[m.cdu_hx_edge[i]], i)
        tk.prepare_step(dt, self.cell_int, m.cell_edge, self.cell_c, self.edge_mcp,
                        m.chip_r_jb, m.chip_cj, m.chip_cb, self.chip_g, self.cell_hx,
                        self.cell_coef, self.packed)

    def hx_duty(self, q_sec_m3s: float, cdu: int = 0) -> float:
        """eps * Cmin of a CDU's plate heat exchanger at the current flows [W/K].

        ``UA = ua_scale / (1/hA_sec + 1/hA_fac)`` with each side's hA scaled from the
        design point as (mdot/mdot_design)^n (plate HX correlation exponent, see
        ``twin.correlations.plate_hx_flow_exponent``); effectiveness of a counterflow
        exchanger (Kays & London)."""
        m = self.m
        m_sec = q_sec_m3s * m.rho
        m_fac = self.fac_flow_m3s * m.facility_rho
        if m_sec <= 0 or m_fac <= 0 or self.hx_lost[cdu]:
            return 0.0
        n = m.hx_exponent[cdu]
        ha_s = m.hx_ha_sec_design[cdu] * (m_sec / m.hx_msec_design[cdu]) ** n
        ha_f = m.hx_ha_fac_design[cdu] * (m_fac / m.hx_mfac_design[cdu]) ** n
        ua = m.hx_ua_scale[cdu] / (1.0 / ha_s + 1.0 / ha_f)
        c_s, c_f = m_sec * m.cp, m_fac * m.facility_cp
        c_min, c_max = min(c_s, c_f), max(c_s, c_f)
        return counterflow_effectiveness(ua / c_min, c_min / c_max) * c_min

    # ---- running
    def advance(self, state: NetworkState, dt, step0, n_steps, rec_every, demand, rec, wl, row=None):
        """Run the thermal kernel; ``wl`` is a :class:`twin.workload.KernelWorkload`.
        Step ``i`` draws chip demand ``demand[row[i]]`` (:class:`twin.power.Demand`);
        without ``row``, every step draws the first row. Tray aux power follows the
        tray's chip power (``Model.tray_aux_base_w``, ``tray_aux_slope``)."""
        m = self.m
        if row is None:
            row = np.zeros(n_steps, dtype=np.int64)
        return tk.advance(
            n_steps, dt, step0, rec_every,
            self.sweep, m.node_in_edge, self.cell_int, self.cell_coef, self.edge_mcp, self.packed,
            self.fac_temp, demand, row, m.tray_aux_base_w, m.tray_aux_slope,
            m.tray_aux_liquid_fraction, *wl.args(),
            state.chip_x, state.cell_t, state.edge_out, state.node_t,
            state.acc, state.chip_tj_max, state.interval_tj_max,
            self.rec_nodes, self.rec_edges, self.rec_col,
            rec["tj"], rec["tj_max"], rec["power"], rec["clock"], rec["throttled"], rec["scalar"], rec["node_t"],
            rec["edge_out"], rec["job"], rec["cdu_heat"])

    def stored_energy(self, state: NetworkState, dt: float) -> float:
        """Thermal energy in the loop relative to 0 degC [J], including the one-step transit
        at the loop closure (see twin.kernels.thermal)."""
        m = self.m
        fluid = m.cell_kind != tk.PLATE
        e = float(np.sum(self.cell_c[fluid] * state.cell_t[fluid]))
        plate_cells = np.where(m.cell_kind == tk.PLATE)[0]
        chips = m.cell_chip[plate_cells]
        e += float(np.sum(m.chip_cj * state.chip_x[:, 0] + m.chip_cb * state.chip_x[:, 1]))
        e += float(np.sum(self.cell_c[plate_cells] * state.chip_x[chips, 2]))
        e += float(np.sum(self.edge_mcp[m.transit_edges] * state.edge_out[m.transit_edges])) * dt
        return e


def _empty_records(model: Model, rows: int, n_jobs: int = 0):
    n_chip = model.n_chips
    return dict(
        tj=np.zeros((rows, n_chip)), tj_max=np.zeros((rows, n_chip)), power=np.zeros((rows, n_chip)),
        clock=np.zeros((rows, n_chip)), throttled=np.zeros((rows, n_chip)), job=np.zeros((rows, n_jobs)),
        scalar=np.zeros((rows, 4)),
        node_t=np.zeros((rows, 2 * model.n_racks + 2 * model.n_cdus)),
        edge_out=np.zeros((rows, model.tray_return_edge.size)), cdu_heat=np.zeros((rows, model.n_cdus)),
    )


class ModelLimit(Exception):
    """The network left what the model represents (raised inside a run, turned into its
    end: a named event, the file marked incomplete)."""

    def __init__(self, kind: str, where: str, message: str):
        super().__init__(message)
        self.kind, self.where, self.message = kind, where, message
