"""The model the engine runs: flat arrays (SI) and the instance paths that label them.

:func:`twin.build.build_model` assembles it from component builders
(:mod:`twin.components`); :func:`finalize` turns the builders' graph, cells, chips, trays,
racks and CDUs into the arrays the kernels take (loop basis, thermal order, cells by
edge). Nothing here calls ``fluids`` or ``ht``.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from . import correlations as corr
from .coolant import CoolantTable
from .scenario import Scenario


@dataclass
class Model:
    """Everything the engine needs, as arrays (SI) plus the instance paths that label them.

    Chips, trays, racks, pumps and CDUs are numbered in build order: racks in row order,
    each rack's trays from its manifold inlet end, each tray's chips in path order. Paths
    (``rack01/tray09/gpu1``, ``cdu1/pump0``) are stable names: telemetry labels, margin
    notes, fault targets and ``[overrides]`` use them."""

    scenario: Scenario
    coolant: CoolantTable
    rho: float  # loop density used for mass flow and capacities [kg/m3]
    cp: float  # loop specific heat [J/(kg K)]
    t_ref_c: float  # temperature rho and cp were taken at
    # nodes and edges
    node_names: list
    edge_names: list
    edge_from: np.ndarray
    edge_to: np.ndarray
    edge_a: np.ndarray  # laminar coefficient [Pa/(m3/s)] at mu_ref
    edge_b: np.ndarray  # quadratic coefficient [Pa/(m3/s)^2]
    edge_bcv: np.ndarray
    edge_fit_error: np.ndarray
    mu_ref: float
    basis: np.ndarray  # (loops x edges), dense, for inspection and tests
    loop_ptr: np.ndarray  # the same basis by edge, compressed (what the kernel uses)
    loop_idx: np.ndarray
    loop_sign: np.ndarray
    q_loop0: np.ndarray
    tree_order: np.ndarray
    tree_edge: np.ndarray
    tree_parent: np.ndarray
    edge_order: np.ndarray
    node_in_ptr: np.ndarray
    node_in_edge: np.ndarray
    edge_cell_ptr: np.ndarray
    transit_edges: np.ndarray  # edges whose outflow reaches a node one step late
    # pumps
    pump_edges: np.ndarray
    pump_cdu: np.ndarray  # the CDU of each pump
    pump_shutoff_pa: np.ndarray
    pump_k: np.ndarray
    pump_running: np.ndarray
    pump_bep_flow_m3s: np.ndarray  # best-efficiency flow at full speed
    pump_bep_efficiency: np.ndarray  # hydraulic efficiency there
    pump_drive_efficiency: np.ndarray  # motor times VFD
    # cells
    cell_kind: np.ndarray
    cell_edge: np.ndarray
    cell_chip: np.ndarray
    cell_aux: np.ndarray  # a plate's or a tray return's tray; a heat exchanger's CDU
    cell_volume_m3: np.ndarray
    cell_temp_edge: np.ndarray  # for each edge: a cell whose temperature sets its viscosity
    # chips
    chip_names: list  # instance paths
    chip_type: list
    chip_tray: np.ndarray
    chip_rack: np.ndarray
    chip_path_edge: np.ndarray
    chip_plate_type: np.ndarray
    chip_r_jb: np.ndarray
    chip_cj: np.ndarray
    chip_cb: np.ndarray
    chip_fouling: np.ndarray
    chip_convective_scale: np.ndarray  # multiplier on each plate's convective resistance 1/hA
    chip_dp_a: np.ndarray  # each plate's share of its path's dp coefficients
    chip_dp_b: np.ndarray
    chip_tdp: np.ndarray
    chip_idle: np.ndarray
    chip_throttle_c: np.ndarray
    chip_shutdown_c: np.ndarray
    chip_gain: np.ndarray  # clock control: throttle_gain_per_k_s
    chip_hold_s: np.ndarray  # throttle_hold_s
    chip_min_clock: np.ndarray  # min_clock_fraction
    chip_throttles: np.ndarray  # bool
    plate_names: list  # one per distinct plate (a plate type, or an instance with its own geometry)
    ha_table: np.ndarray  # (plate, temp, flow) [W/K]
    # trays
    tray_names: list
    tray_type: list
    tray_rack: np.ndarray
    tray_supply_edge: np.ndarray
    tray_return_edge: np.ndarray
    tray_required_lpm: np.ndarray  # nominal requirement, at the nominal rack supply (nominal_supply_temp_c)
    tray_required_temps_c: list  # per tray: the requirement table's supply temperatures [degC]
    tray_required_flows_lpm: list  # per tray: the requirement table's flows [L/min]
    nominal_supply_temp_c: float  # rack supply the nominal flows are taken at
    tray_aux_w: np.ndarray  # aux power at full chip load [W]
    tray_aux_base_w: np.ndarray  # aux power = base + slope * (the tray's chip power) [W]
    tray_aux_slope: np.ndarray
    tray_aux_liquid_fraction: np.ndarray
    # racks
    rack_names: list
    rack_in_node: np.ndarray
    rack_out_node: np.ndarray
    rack_supply_edge: np.ndarray  # its supply hose
    rack_return_edge: np.ndarray
    rack_max_return_c: np.ndarray
    rack_specs: list  # the rack definition of each rack (twin.scenario.Rack)
    rack_workloads: list  # the workload each rack runs (twin.scenario.Workload)
    rack_offset_s: np.ndarray  # each rack's workload phase offset [s]
    # CDUs
    cdu_names: list
    cdu_hx_edge: np.ndarray
    cdu_hx_cell: np.ndarray
    cdu_supply_node: np.ndarray
    cdu_return_node: np.ndarray
    cdu_suction_node: np.ndarray
    cdu_discharge_node: np.ndarray
    cdu_rated_heat_w: np.ndarray
    hx_ua_design: np.ndarray  # per CDU [W/K]
    hx_ha_sec_design: np.ndarray
    hx_ha_fac_design: np.ndarray
    hx_msec_design: np.ndarray
    hx_mfac_design: np.ndarray
    hx_exponent: np.ndarray
    hx_ua_scale: np.ndarray
    facility_cp: float
    facility_rho: float
    # the first rack's and first CDU's places (what a single-rack scenario reports)
    node: dict
    edge: dict
    instances: dict = field(default_factory=dict)  # path -> twin.components.Instance
    info: dict = field(default_factory=dict)

    @property
    def n_chips(self):
        return len(self.chip_names)

    @property
    def n_racks(self):
        return len(self.rack_names)

    @property
    def n_cdus(self):
        return len(self.cdu_names)

    @property
    def is_row(self) -> bool:
        """More than one rack or more than one CDU: per-rack and per-CDU channels."""
        return self.n_racks > 1 or self.n_cdus > 1

    @property
    def gpu_index(self):
        return np.array([i for i, t in enumerate(self.chip_type) if t == "gpu"], dtype=np.int64)

    def chips_of_type(self, name):
        return np.array([i for i, t in enumerate(self.chip_type) if t == name], dtype=np.int64)

    def channel_members(self, channel: str) -> list | None:
        """The instance paths of a 2-D telemetry channel's columns, in column order (chips
        of a type by chip index, trays, pumps, racks and CDUs of a row; the member
        dimension is :func:`twin.channels.member_dimension`'s); None for a 1-D channel."""
        from .channels import member_dimension

        dim = member_dimension(channel)
        if dim in set(self.chip_type):
            return [self.chip_names[k] for k in self.chips_of_type(dim)]
        if dim == "pump":
            return [self.edge_names[e] for e in self.pump_edges]
        members = {"tray": self.tray_names, "rack": self.rack_names if self.is_row else None,
                   "cdu": self.cdu_names if self.is_row else None}.get(dim)
        return list(members) if members is not None else None

    def tray_required_at(self, supply_temp_c, per_tray: bool = False) -> np.ndarray:
        """Flow each tray needs at the rack supply temperatures ``supply_temp_c`` [L/min],
        shape ``supply_temp_c.shape + (tray,)`` (each tray type's requirement table, linear,
        held at its end values outside it: ``twin.scenario.TrayType.required_flow_at``).
        ``per_tray``: ``supply_temp_c`` has a last axis of one value per tray (each tray at
        its own rack's supply), and the result its shape."""
        t = np.asarray(supply_temp_c, dtype=float)
        out = np.empty(t.shape if per_tray else t.shape + (len(self.tray_names),))
        for i, (temps, flows) in enumerate(zip(self.tray_required_temps_c, self.tray_required_flows_lpm)):
            out[..., i] = np.interp(t[..., i] if per_tray else t, temps, flows)
        return out

    def pump_power_w(self, flow_m3s, pressure_pa, speed) -> np.ndarray:
        """Electrical power of each pump [W] at a hydraulic state (edge flows, node
        pressures, pump speeds): ``twin.correlations.pump_electric_power_w`` on each pump's
        flow and the head its CDU's pumps deliver (discharge minus suction)."""
        head = pressure_pa[self.cdu_discharge_node[self.pump_cdu]] - pressure_pa[self.cdu_suction_node[self.pump_cdu]]
        return corr.pump_electric_power_w(flow_m3s[self.pump_edges], head, speed, self.pump_bep_flow_m3s,
                                          self.pump_bep_efficiency, self.pump_drive_efficiency)


def compress_basis(basis):
    """The loop basis by edge (CSR over edges: loop indices and orientation signs)."""
    ptr = np.zeros(basis.shape[1] + 1, dtype=np.int64)
    idx, sign = [], []
    for e in range(basis.shape[1]):
        nz = np.nonzero(basis[:, e])[0]
        idx.extend(nz)
        sign.extend(basis[nz, e])
        ptr[e + 1] = len(idx)
    return dict(loop_ptr=ptr, loop_idx=np.array(idx, dtype=np.int64), loop_sign=np.array(sign, dtype=float))


def cycle_basis(n_node, edge_from, edge_to, root):
    """Fundamental cycle basis of a connected directed graph from a BFS spanning tree.

    Returns (basis (loops x edges), tree order of nodes, tree edge of each node, parent)."""
    n_edge = edge_from.size
    adj = [[] for _ in range(n_node)]
    for e in range(n_edge):
        adj[edge_from[e]].append((e, edge_to[e]))
        adj[edge_to[e]].append((e, edge_from[e]))
    parent = np.full(n_node, -1, dtype=np.int64)
    tree_edge = np.full(n_node, -1, dtype=np.int64)
    depth = np.zeros(n_node, dtype=np.int64)
    seen = np.zeros(n_node, dtype=bool)
    seen[root] = True
    order = [root]
    queue = deque([root])
    in_tree = np.zeros(n_edge, dtype=bool)
    while queue:
        u = queue.popleft()
        for e, v in adj[u]:
            if not seen[v]:
                seen[v] = True
                parent[v] = u
                tree_edge[v] = e
                depth[v] = depth[u] + 1
                in_tree[e] = True
                order.append(v)
                queue.append(v)
    if not seen.all():
        raise RuntimeError("hydraulic network is not connected")
    chords = [e for e in range(n_edge) if not in_tree[e]]
    basis = np.zeros((len(chords), n_edge))
    for li, e in enumerate(chords):
        basis[li, e] = 1.0
        # walk from edge_to back to edge_from through the tree: loop goes from->to, then
        # back along the tree from 'to' to 'from'
        u, v = edge_to[e], edge_from[e]
        path_u, path_v = [], []
        while depth[u] > depth[v]:
            path_u.append(u)
            u = parent[u]
        while depth[v] > depth[u]:
            path_v.append(v)
            v = parent[v]
        while u != v:
            path_u.append(u)
            path_v.append(v)
            u, v = parent[u], parent[v]
        # traverse up from 'to' side: node x -> parent[x]
        for x in path_u:
            te = tree_edge[x]
            basis[li, te] += 1.0 if edge_from[te] == x else -1.0
        # then down to 'from' side: parent[x] -> x
        for x in path_v:
            te = tree_edge[x]
            basis[li, te] += 1.0 if edge_to[te] == x else -1.0
    return basis, np.array(order, dtype=np.int64), tree_edge, parent


def thermal_order(n_node, edge_from, edge_to, cuts):
    """Edges in the order the thermal sweep visits them: each after every edge feeding its
    inlet node (Kahn), the loop closed at the ``cuts`` (each CDU's reservoir, which takes
    its return one step late). Returns (order, transit edges: those whose outflow reaches
    a node one step late)."""
    n_edge = edge_from.size
    cut = set(int(c) for c in cuts)
    consumers = [[] for _ in range(n_node)]
    feeders = [0] * n_node
    for i in range(n_edge):
        consumers[edge_from[i]].append(i)
        feeders[edge_to[i]] += 1
    indeg = np.array([0 if i in cut else feeders[edge_from[i]] for i in range(n_edge)])
    order = []
    queue = deque(sorted(cut))
    while queue:
        i = queue.popleft()
        order.append(i)
        for c in consumers[edge_to[i]]:
            if c in cut:
                continue
            indeg[c] -= 1
            if indeg[c] == 0:
                queue.append(c)
    if len(order) != n_edge:
        raise RuntimeError("thermal ordering failed: the network has a cycle besides the CDU loops")
    position = np.empty(n_edge, dtype=int)
    position[np.array(order)] = np.arange(n_edge)
    transit = [i for i in range(n_edge) if any(position[c] <= position[i] for c in consumers[edge_to[i]])]
    return np.array(order, dtype=np.int64), np.array(transit, dtype=np.int64)
