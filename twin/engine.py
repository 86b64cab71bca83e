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
"""
from __future__ import annotations

import json
import math
import signal
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from . import __version__
from .build import HA_FLOWS_LPM, HA_TEMPS_C, LPM, Model, build_model
from .channels import channel_table
from .correlations import counterflow_effectiveness
from .kernels import hydraulics as hk
from .kernels import props as pk
from .kernels import thermal as tk
from .kernels import workload as kw
from .controls import CduControls
from .faults import FaultSchedule
from .margins import Margins, MarginTracker
from .scenario import Scenario
from .errors import TwinInputError
from .telemetry import SCHEMA, TelemetryWriter, _read_open

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
            acc=np.zeros(tk.ACC_CHIPS + n_chip),
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
        self.hx_eps_cmin = 0.0
        self.fac_temp = model.scenario.facility.supply_temp_c
        self.fac_flow_m3s = model.scenario.facility.flow_lpm * LPM
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
        self.hx_lost = False
        self.sensor_offsets: dict = {}
        self.dirty = True
        self._dt = None
        self._temps = None
        self.packed_props = model.coolant.packed()
        # what the recorder keeps: four loop nodes and every tray's outflow
        self.rec_nodes = np.array([model.node[k] for k in REC_NODES], dtype=np.int64)
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
            target = c.flow_setpoint_lpm * LPM

            def measure(h):
                return h.flow_m3s[m.edge["supply_hose"]]

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
        mcp_chip = self.edge_mcp[m.chip_path_edge]
        g = np.where(mcp_chip > 0, mcp_chip * (1.0 - np.exp(-ha / np.where(mcp_chip > 0, mcp_chip, 1.0))), 0.0)
        with np.errstate(divide="ignore"):
            self.chip_g = np.where(g > 0, 1.0 / (1.0 / np.where(g > 0, g, 1.0) + m.chip_fouling), 0.0)
        self.hx_eps_cmin = self.hx_duty(q[m.edge["hx"]])
        tk.prepare_step(dt, self.cell_int, m.cell_edge, self.cell_c, self.edge_mcp,
                        m.chip_r_jb, m.chip_cj, m.chip_cb, self.chip_g, self.hx_eps_cmin,
                        self.cell_coef, self.packed)

    def hx_duty(self, q_sec_m3s: float) -> float:
        """eps * Cmin of the CDU plate heat exchanger at the current flows [W/K].

        ``UA = ua_scale / (1/hA_sec + 1/hA_fac)`` with each side's hA scaled from the
        design point as (mdot/mdot_design)^n (plate HX correlation exponent, see
        ``twin.correlations.plate_hx_flow_exponent``); effectiveness of a counterflow
        exchanger (Kays & London)."""
        m = self.m
        m_sec = q_sec_m3s * m.rho
        m_fac = self.fac_flow_m3s * m.facility_rho
        if m_sec <= 0 or m_fac <= 0 or self.hx_lost:
            return 0.0
        n = m.hx_exponent
        ha_s = m.hx_ha_sec_design * (m_sec / m.hx_msec_design) ** n
        ha_f = m.hx_ha_fac_design * (m_fac / m.hx_mfac_design) ** n
        ua = m.scenario.cdu.heat_exchanger.ua_scale / (1.0 / ha_s + 1.0 / ha_f)
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
            self.hx_eps_cmin, self.fac_temp, demand, row, m.tray_aux_base_w, m.tray_aux_slope,
            m.tray_aux_liquid_fraction, *wl.args(),
            state.chip_x, state.cell_t, state.edge_out, state.node_t,
            state.acc, state.chip_tj_max, state.interval_tj_max,
            self.rec_nodes, self.rec_edges, self.rec_col,
            rec["tj"], rec["tj_max"], rec["power"], rec["clock"], rec["throttled"], rec["scalar"], rec["node_t"],
            rec["edge_out"], rec["job"])

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
        node_t=np.zeros((rows, len(REC_NODES))), edge_out=np.zeros((rows, model.tray_return_edge.size)),
    )


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


@dataclass
class Result:
    """Outcome of a run: margins, steady figures and the telemetry."""

    scenario: Scenario
    model: Model
    margins: dict
    margin_table: Margins
    energy: dict
    final_state: NetworkState
    jobs: list = field(default_factory=list)
    events: list = field(default_factory=list)
    hydraulics: Hydraulics | None = None  # the network's last solution (flows per edge)
    telemetry_path: str | None = None
    _memfile: object = field(default=None, repr=False)
    end: object = None  # RunEnd: completed, interrupted or stopped at a model limit

    def to_hdf5(self, path) -> None:
        """Write the run's telemetry to ``path`` (copied if it was streamed elsewhere)."""
        import shutil

        import h5py
        if self._memfile is not None:
            with h5py.File(path, "w") as dst:
                for k, v in self._memfile.attrs.items():
                    dst.attrs[k] = v
                for key in self._memfile:
                    self._memfile.copy(self._memfile[key], dst, name=key)
        elif self.telemetry_path is not None and str(path) != str(self.telemetry_path):
            shutil.copyfile(self.telemetry_path, path)

    def telemetry(self):
        """The telemetry as a :class:`twin.telemetry.Telemetry`."""
        if self._memfile is not None:
            return _read_open(self._memfile, "<memory>")
        from .telemetry import read_telemetry
        return read_telemetry(self.telemetry_path)


def _channels(model: Model, n_jobs: int = 0):
    counts = {t: model.chip_type.count(t) for t in set(model.chip_type)}
    return channel_table(counts, len(model.tray_names), model.pump_edges.size, n_jobs)


def simulate(scenario: Scenario, output=None, power=None,
             duration_s: float | None = None, model: Model | None = None,
             provenance: dict | None = None) -> Result:
    """Run a scenario. ``output``: HDF5 path to stream telemetry to (else kept in memory).

    ``power`` replaces the scenario's power source (see :mod:`twin.workload`: the DES of
    ``workload.jobs``, a replayed trace, or the schedule); ``model`` reuses a model built
    by :func:`twin.build.build_model` for this scenario; ``provenance`` (e.g. the source
    file and the ``--set`` overrides) is stored in the file's root attributes.

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
    wl = source.kernel
    n_jobs = wl.jp.shape[0]
    net = Network(model)
    channels = _channels(model, n_jobs)
    faults = FaultSchedule(model, net, dt, channels)
    for _, fn in faults.take_cuts(1):  # faults from t = 0 shape the steady start
        fn()

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
        if n_jobs:
            labels["job/labels"] = [j.name for j in source.jobs]
        prov = dict(provenance or {})
        attrs = dict(schema=SCHEMA, scenario=s.to_toml(), software_version=__version__,
                     coolant=s.coolant.name, rack=s.rack.name, time_step_s=dt, duration_s=duration,
                     overrides=json.dumps(list(prov.pop("overrides", []))), source=str(prov.pop("source", "")),
                     complete=False, end_time_s=0.0, end_reason="running")
        attrs.update({k: str(v) for k, v in prov.items()})
        writer = TelemetryWriter(output, attrs, channels, labels)
        tracker = MarginTracker(model)
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
                    limits.check(net, state, end, b * dt)
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
            margins = tracker.finish(state, wl, jobs, ride_through=_ride_through(s, wl, model, dt, end.time_s),
                                     coolant=limits, end=end)
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


class ModelLimit(Exception):
    """The network left what the model represents (raised inside a run, turned into its
    end: a named event, the file marked incomplete)."""

    def __init__(self, kind: str, where: str, message: str):
        super().__init__(message)
        self.kind, self.where, self.message = kind, where, message


@dataclass
class RunEnd:
    """How a run ended: ``completed``, ``interrupted`` (a signal) or stopped at a model
    limit (``kind`` names it); the time reached and the events it adds."""

    time_s: float = 0.0
    kind: str = ""
    reason: str = "running"
    signal: int = 0
    events: list = field(default_factory=list)

    @property
    def stopped(self) -> bool:
        return bool(self.kind)

    @property
    def is_complete(self) -> bool:
        return self.kind == "completed"

    def stop(self, kind, where, t, message):
        if self.stopped:
            return
        self.kind, self.time_s = kind, t
        self.reason = f"stopped at {t:g} s: {kind} at {where}: {message}"
        self.events.append((t, kind, where))

    def interrupt(self, signum):
        """Called from a signal handler: the loop stops after the current segment."""
        if not self.stopped:
            self.kind, self.signal = "interrupted", signum
            self.reason = f"interrupted by {signal.Signals(signum).name}"

    def complete(self, duration):
        self.kind, self.time_s, self.reason = "completed", duration, "completed"


@contextmanager
def _interrupts(end: RunEnd):
    """SIGINT and SIGTERM stop the run after the current segment instead of killing it,
    so the file is closed whole and marked incomplete. A second signal raises
    KeyboardInterrupt (the run aborts and removes its partial file). Only in the main
    thread (signal handlers cannot be installed elsewhere)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):  # noqa: ARG001
        if end.kind == "interrupted":
            raise KeyboardInterrupt
        end.interrupt(signum)

    old = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, h in old.items():
            signal.signal(sig, h)


class CoolantLimits:
    """The coolant states the model represents: liquid between its freezing point and its
    boiling point at 1 atm (``twin.coolant``), inside the property tables. Tracks the
    run's coolant extremes (every cell, at the end of each segment) for the
    ``coolant_temp_*`` margins and stops the run, with a named event, where the coolant
    leaves that range or a temperature stops being finite."""

    def __init__(self, model: Model):
        table = model.coolant
        self.m = model
        self.freeze_c = max(table.freezing_temp_c, float(table.temp_c[0]))
        self.boil_c = min(table.boiling_temp_c, float(table.temp_c[-1]))
        self.boil_note = (f"boiling at 1 atm: {table.boiling_temp_c:.2f} degC; property table to "
                          f"{table.temp_c[-1]:.0f} degC")
        self.freeze_note = (f"freezing: {table.freezing_temp_c:.0f} degC; property table from "
                            f"{table.temp_c[0]:.0f} degC")
        self.t_max, self.t_min = -np.inf, np.inf
        self.where_max = self.where_min = ""
        fluid = model.cell_kind != tk.PLATE
        self.fluid_cells = np.nonzero(fluid)[0]
        self.names = [model.edge_names[e] for e in model.cell_edge[self.fluid_cells]]

    def check(self, net, state, end: RunEnd, t: float) -> None:
        temps = np.concatenate([state.cell_t[self.fluid_cells], state.chip_x[:, 2]])
        chips = state.chip_x
        if not (np.all(np.isfinite(temps)) and np.all(np.isfinite(chips))):
            self.t_max = self.t_min = math.nan
            end.stop("non_finite_state", "network", t, "a temperature is not finite")
            return
        i, j = int(np.argmax(temps)), int(np.argmin(temps))
        if temps[i] > self.t_max:
            self.t_max, self.where_max = float(temps[i]), self._name(i)
        if temps[j] < self.t_min:
            self.t_min, self.where_min = float(temps[j]), self._name(j)
        if temps[i] >= self.boil_c:
            end.stop("coolant_boiling", self._name(i), t,
                     f"{temps[i]:.1f} degC, at or above {self.boil_c:.1f} degC ({self.boil_note})")
        elif temps[j] <= self.freeze_c:
            end.stop("coolant_freezing", self._name(j), t,
                     f"{temps[j]:.1f} degC, at or below {self.freeze_c:.1f} degC ({self.freeze_note})")

    def _name(self, i):
        n = len(self.fluid_cells)
        return self.names[i] if i < n else f"{self.m.chip_names[i - n]} plate"


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
            self.tracker.update(snap.hyd, data, snap.offsets)
        self._new(self.times.size)


def _ride_through(s, wl, model, dt, t_end):
    """After the first CDU trip: seconds until the first GPU reaches its throttle
    temperature (where its clock control starts to act, if it has one) and until the first
    shuts down (None where it did not happen within the run)."""
    trips = [f.start_s for f in s.faults if f.kind == "cdu_trip"]
    if not trips:
        return None
    t0 = math.ceil(min(trips) / dt - 1e-9) * dt
    gpu = model.gpu_index
    out = {"t_end_s": t_end - t0}
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


@dataclass
class _Snapshot:
    """What the recorder needs of the network besides the kernel's records; a new one is
    taken whenever a fault, a control or a re-solve changed it."""

    hyd: Hydraulics
    fac_temp: float
    fac_flow_m3s: float
    offsets: dict


def _snapshot(net: "Network") -> _Snapshot:
    return _Snapshot(net.hyd, net.fac_temp, net.fac_flow_m3s, dict(net.sensor_offsets))


def _snapshot_changed(snap: _Snapshot, net: "Network") -> bool:
    return (snap.hyd is not net.hyd or snap.fac_temp != net.fac_temp or snap.fac_flow_m3s != net.fac_flow_m3s
            or snap.offsets != net.sensor_offsets)


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
    out["rack/liquid_heat"] = liquid
    out["rack/it_power"] = rec["power"][:rows].sum(axis=1) + aux
    out["rack/air_heat"] = aux - aux_liquid
    out["rack/supply_temp"] = rec["node_t"][:rows, REC_NODES.index("rack_in")]
    out["rack/return_temp"] = rec["node_t"][:rows, REC_NODES.index("rack_out")]
    out["rack/flow"] = np.full(rows, q[m.edge["supply_hose"]] / LPM)
    out["rack/dp"] = np.full(rows, (hyd.pressure_pa[m.node["rack_in"]] - hyd.pressure_pa[m.node["rack_out"]]) / 1e3)
    out["tray/flow"] = np.broadcast_to(q[m.tray_supply_edge] / LPM, (rows, m.tray_supply_edge.size))
    out["tray/return_temp"] = rec["edge_out"][:rows]
    out["cdu/pump_speed"] = np.broadcast_to(hyd.speed, (rows, hyd.speed.size))
    out["cdu/pump_power"] = np.broadcast_to(m.pump_power_w(q, hyd.pressure_pa, hyd.speed), (rows, hyd.speed.size))
    out["cdu/supply_temp"] = rec["node_t"][:rows, REC_NODES.index("cdu_supply")]
    out["cdu/return_temp"] = rec["node_t"][:rows, REC_NODES.index("cdu_return")]
    out["cdu/heat"] = hx_heat
    out["cdu/dp"] = np.full(rows, (hyd.pressure_pa[m.node["discharge"]] - hyd.pressure_pa[m.node["suction"]]) / 1e3)
    fac_t = snap.fac_temp
    m_fac_cp = snap.fac_flow_m3s * m.facility_rho * m.facility_cp
    out["facility/supply_temp"] = np.full(rows, fac_t)
    out["facility/return_temp"] = fac_t + hx_heat / m_fac_cp
    out["facility/flow"] = np.full(rows, snap.fac_flow_m3s / LPM)
    for channel, offset in snap.offsets.items():  # a faulty sensor reads off
        out[channel] = out[channel] + offset
    return out
