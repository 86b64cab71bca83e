"""Build the arrays the kernels run on from a scenario (plain Python, once per model).

``fluids`` and ``ht`` are called here and only here: pressure drops are fitted to the
two-term form the hydraulic kernel evaluates, plate conductances are tabulated against
flow and temperature, the CDU heat exchanger's UA is derived from its rating.

The hydraulic network (nodes and directed edges, positive flow = design direction)::

    cdu_return --reservoir--> suction ==pumps (parallel)==> discharge --hx+filter--> cdu_supply
    cdu_supply --supply hose--> S0 --hdr--> S1 ... S(n-1)          (rack supply header)
    S_i --QD, tubing--> TI_i ==paths (plates in series)==> TO_i --tubing, QD--> R_i
    R_j <--hdr-- R_(j+1)  (direct return, outlet at R0)  or  R_j --hdr--> R_(j+1) (reverse)
    rack outlet --return hose--> cdu_return

A row of racks on one CDU is more of the same: more headers hung off the CDU nodes.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from . import correlations as corr
from .coolant import CoolantTable, coolant_table
from .scenario import Scenario

LPM = 1.0 / 60000.0  # m3/s per L/min
KPA = 1000.0  # Pa per kPa

# Check-valve reverse resistance on every pump [Pa/(m3/s)^2] (ASSUMPTION: a closed swing
# check passes ~0.1 L/min at 280 kPa; check-valve leakage is not published).
CHECK_VALVE_B = 1.0e17
# Temperature grid of the plate conductance tables [degC].
HA_TEMPS_C = np.arange(5.0, 96.0, 5.0)
# Flow grid of the plate conductance tables [L/min], log-spaced.
HA_FLOWS_LPM = np.geomspace(1e-3, 50.0, 160)
# Cells a hose is split into: tanks in series approximating its transport delay
# (ASSUMPTION: 8 tanks; the residence-time variance of N tanks is 1/N of the mean squared,
# a hose's real dispersion is not modelled).
HOSE_CELLS = 8


@dataclass
class Model:
    """Everything the engine needs, as arrays (SI) plus the names to label outputs."""

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
    cell_aux: np.ndarray
    cell_volume_m3: np.ndarray
    cell_temp_edge: np.ndarray  # for each edge: a cell whose temperature sets its viscosity
    # chips
    chip_names: list
    chip_type: list
    chip_tray: np.ndarray
    chip_path_edge: np.ndarray
    chip_plate_type: np.ndarray
    chip_r_jb: np.ndarray
    chip_cj: np.ndarray
    chip_cb: np.ndarray
    chip_fouling: np.ndarray
    chip_dp_a: np.ndarray  # each plate's share of its path's dp coefficients
    chip_dp_b: np.ndarray
    chip_tdp: np.ndarray
    chip_idle: np.ndarray
    chip_throttle_c: np.ndarray
    chip_shutdown_c: np.ndarray
    plate_names: list
    ha_table: np.ndarray  # (plate type, temp, flow) [W/K]
    # trays
    tray_names: list
    tray_type: list
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
    # special places
    node: dict
    edge: dict
    # heat exchanger
    hx_ua_design: float
    hx_ha_sec_design: float
    hx_ha_fac_design: float
    hx_msec_design: float
    hx_mfac_design: float
    hx_exponent: float
    facility_cp: float
    facility_rho: float
    info: dict = field(default_factory=dict)

    @property
    def n_chips(self):
        return len(self.chip_names)

    @property
    def gpu_index(self):
        return np.array([i for i, t in enumerate(self.chip_type) if t == "gpu"])

    def chips_of_type(self, name):
        return np.array([i for i, t in enumerate(self.chip_type) if t == name], dtype=np.int64)

    def tray_required_at(self, supply_temp_c) -> np.ndarray:
        """Flow each tray needs at the rack supply temperatures ``supply_temp_c`` [L/min],
        shape ``supply_temp_c.shape + (tray,)`` (each tray type's requirement table, linear,
        held at its end values outside it: ``twin.scenario.TrayType.required_flow_at``)."""
        t = np.asarray(supply_temp_c, dtype=float)
        out = np.empty(t.shape + (len(self.tray_names),))
        for i, (temps, flows) in enumerate(zip(self.tray_required_temps_c, self.tray_required_flows_lpm)):
            out[..., i] = np.interp(t, temps, flows)
        return out

    def pump_power_w(self, flow_m3s, pressure_pa, speed) -> np.ndarray:
        """Electrical power of each pump [W] at a hydraulic state (edge flows, node
        pressures, pump speeds): ``twin.correlations.pump_electric_power_w`` on each pump's
        flow and the head the pumps deliver (discharge minus suction)."""
        head = pressure_pa[self.node["discharge"]] - pressure_pa[self.node["suction"]]
        return corr.pump_electric_power_w(flow_m3s[self.pump_edges], head, speed, self.pump_bep_flow_m3s,
                                          self.pump_bep_efficiency, self.pump_drive_efficiency)


class _Graph:
    def __init__(self):
        self.nodes: list[str] = []
        self.index: dict[str, int] = {}
        self.edges: list[dict] = []

    def node(self, name):
        if name not in self.index:
            self.index[name] = len(self.nodes)
            self.nodes.append(name)
        return self.index[name]

    def add(self, name, a, b, frm, to, cells=(), fit_error=0.0, bcv=0.0):
        self.edges.append(dict(name=name, a=a, b=b, frm=self.node(frm), to=self.node(to),
                               cells=list(cells), fit_error=fit_error, bcv=bcv))
        return len(self.edges) - 1


def _loop_ref_temp(s: Scenario) -> float:
    """Temperature at which loop rho and cp are evaluated: facility supply plus the HX
    approach plus half the rise across the rack at the flow setpoint (an estimate of the
    loop's mean temperature; rho*cp moves < 0.5 % over +-10 K for both coolants)."""
    rack = s.rack
    power = 0.0
    for g in rack.tray_stack:
        tray = rack.tray_types[g.type]
        chips = sum(rack.chip_types[c].tdp_w for p in tray.paths for c in p)
        power += g.count * (chips + tray.aux_power_w * tray.aux_liquid_fraction)
    flow = s.controls.flow_setpoint_lpm * LPM
    rise = power / (flow * 1000.0 * 4000.0)  # rho cp ~ 1000 kg/m3 x 4000 J/(kg K): an estimate (ASSUMPTION)
    # kept inside the property table: a loop that would boil is a run that stops with a
    # named event (twin.engine.CoolantLimits), not a build that fails
    table = coolant_table(s.coolant.name)
    return float(min(s.facility.supply_temp_c + s.cdu.heat_exchanger.approach_k + 0.5 * rise,
                     table.boiling_temp_c - 1.0, table.temp_c[-1]))


def nominal_supply_temp_c(s: Scenario) -> float:
    """Rack supply temperature the nominal tray flows are taken at: the facility supply
    plus the CDU heat exchanger's rated approach (the secondary supply its rating promises)."""
    return s.facility.supply_temp_c + s.cdu.heat_exchanger.approach_k


def build_model(s: Scenario) -> Model:
    """Turn a validated scenario into a :class:`Model`.

    Nominal tray flows (fit ranges of the pressure-drop fits, initial loop flows) are each
    tray's requirement at :func:`nominal_supply_temp_c`."""
    table = coolant_table(s.coolant.name)
    t_ref = _loop_ref_temp(s)
    props = table.at(t_ref)
    rho, cp, mu = props["rho"], props["cp"], props["mu"]
    rack, cdu = s.rack, s.cdu
    t_nom = nominal_supply_temp_c(s)
    q_tray_nom_lpm = {name: tt.required_flow_at(t_nom) for name, tt in rack.tray_types.items()}

    trays = []  # (name, type)
    for g in rack.tray_stack:
        for _ in range(g.count):
            trays.append((f"tray{len(trays):02d}", g.type))
    n_tray = len(trays)
    q_rack_nom = sum(q_tray_nom_lpm[t] for _, t in trays) * LPM

    def tube_fit(t, q_nom, length=None, k_extra=0.0):
        d = t.inner_diameter_mm * 1e-3
        length = t.length_m if length is None else length

        def f(q):
            return corr.pipe_dp_pa(q, rho, mu, length, d, t.roughness_um * 1e-6, t.k_fittings + k_extra)
        return corr.fit_dp_coefficients(f, q_nom)

    def tube_volume(t, length=None):
        length = t.length_m if length is None else length
        return math.pi * (t.inner_diameter_mm * 1e-3) ** 2 / 4.0 * length

    g = _Graph()
    cells: list[dict] = []

    def fluid_cell(vol, aux=-1):
        cells.append(dict(kind=0, vol=vol, chip=-1, aux=aux))
        return len(cells) - 1

    # ---- CDU
    res_vol = (cdu.reservoir_volume_l + cdu.internal_volume_l) * 1e-3
    # reservoir and CDU internal piping: a small linear loss keeps the edge well
    # conditioned (ASSUMPTION: 1 kPa at rated flow).
    q_pump_rated = cdu.pumps.rated_flow_lpm * LPM
    e_res = g.add("cdu/reservoir", 1.0 * KPA / q_pump_rated, 0.0, "cdu_return", "suction",
                  cells=[fluid_cell(res_vol)])
    h0 = cdu.pumps.shutoff_head_kpa * KPA
    k_pump = corr.pump_curve_k(h0, q_pump_rated, cdu.pumps.rated_head_kpa * KPA)
    pump_edges = []
    for i in range(cdu.pumps.count):
        pump_edges.append(g.add(f"cdu/pump{i}", 0.0, k_pump * cdu.pumps.head_scale, "suction", "discharge",
                                bcv=CHECK_VALVE_B))
    hx = cdu.heat_exchanger
    q_hx_rated = hx.rated_secondary_flow_lpm * LPM
    # Plate HX secondary side and filter: quadratic in flow through their rated points
    # (ASSUMPTION: plate HX dp goes as flow^1.8-2).
    b_hx = hx.rated_secondary_dp_kpa * KPA / q_hx_rated**2 + cdu.filter_dp_kpa * KPA / q_pump_rated**2
    cells.append(dict(kind=2, vol=0.0, chip=-1, aux=-1))
    hx_cell = len(cells) - 1
    e_hx = g.add("cdu/hx", 0.0, b_hx, "discharge", "cdu_supply", cells=[hx_cell, fluid_cell(hx.volume_l * 1e-3)])

    # ---- hoses and headers
    sh, rh = rack.supply_hose, rack.return_hose
    a, b, err = tube_fit(sh, q_rack_nom)
    e_sup = g.add("rack/supply_hose", a, b, "cdu_supply", "S00",
                  cells=[fluid_cell(tube_volume(sh) / HOSE_CELLS) for _ in range(HOSE_CELLS)], fit_error=err)
    man = rack.manifold
    d_hdr = man.inner_diameter_mm * 1e-3
    seg_len = man.port_spacing_mm * 1e-3
    seg_vol = math.pi * d_hdr**2 / 4.0 * seg_len

    def header_fit(q_nom):
        def f(q):
            return corr.pipe_dp_pa(q, rho, mu, seg_len, d_hdr, man.roughness_um * 1e-6, 0.0)
        return corr.fit_dp_coefficients(f, q_nom)

    for j in range(n_tray - 1):
        q_nom = max(q_rack_nom * (n_tray - 1 - j) / n_tray, q_rack_nom / n_tray)
        a, b, err = header_fit(q_nom)
        g.add(f"rack/supply_header{j:02d}", a, b, f"S{j:02d}", f"S{j + 1:02d}", cells=[fluid_cell(seg_vol)], fit_error=err)
    reverse = man.layout == "reverse_return"
    for j in range(n_tray - 1):
        if reverse:
            q_nom = max(q_rack_nom * (j + 1) / n_tray, q_rack_nom / n_tray)
            a, b, err = header_fit(q_nom)
            g.add(f"rack/return_header{j:02d}", a, b, f"R{j:02d}", f"R{j + 1:02d}", cells=[fluid_cell(seg_vol)], fit_error=err)
        else:
            q_nom = max(q_rack_nom * (n_tray - 1 - j) / n_tray, q_rack_nom / n_tray)
            a, b, err = header_fit(q_nom)
            g.add(f"rack/return_header{j:02d}", a, b, f"R{j + 1:02d}", f"R{j:02d}", cells=[fluid_cell(seg_vol)], fit_error=err)
    rack_out = f"R{n_tray - 1:02d}" if reverse else "R00"
    a, b, err = tube_fit(rh, q_rack_nom)
    e_ret = g.add("rack/return_hose", a, b, rack_out, "cdu_return",
                  cells=[fluid_cell(tube_volume(rh) / HOSE_CELLS) for _ in range(HOSE_CELLS)], fit_error=err)

    # ---- trays, paths, chips
    plate_names = list(rack.cold_plates)
    geoms = {}
    for name, cpl in rack.cold_plates.items():
        geoms[name] = corr.ColdPlateGeometry.from_spec(cpl)
    chips = []
    tray_sup, tray_ret, tray_req, tray_aux, tray_auxf = [], [], [], [], []
    for ti, (tname, ttype) in enumerate(trays):
        tt = rack.tray_types[ttype]
        q_tray = q_tray_nom_lpm[ttype] * LPM
        qd = tt.quick_disconnect
        d_qd = qd.inner_diameter_mm * 1e-3
        half = tt.tubing.length_m / 2.0

        def branch(q_tray=q_tray, qd=qd, d_qd=d_qd, half=half, tt=tt):
            def f(q):
                return (corr.quick_disconnect_dp_pa(q, rho, d_qd, qd.cv_gpm_per_psi, qd.kv_m3h_per_bar)
                        + corr.pipe_dp_pa(q, rho, mu, half, tt.tubing.inner_diameter_mm * 1e-3,
                                          tt.tubing.roughness_um * 1e-6, tt.tubing.k_fittings / 2.0 + tt.branch_k / 2.0
                                          + tt.balancing_k / 2.0))
            return corr.fit_dp_coefficients(f, q_tray)
        a, b, err = branch()
        tray_sup.append(g.add(f"{tname}/supply", a, b, f"S{ti:02d}", f"TI{ti:02d}",
                              cells=[fluid_cell(tube_volume(tt.tubing, half))], fit_error=err))
        n_paths = len(tt.paths)
        for pi, path in enumerate(tt.paths):
            q_path = q_tray / n_paths
            path_cells = []
            a_sum = b_sum = 0.0
            err_max = 0.0
            for ctype in path:
                ct = rack.chip_types[ctype]
                cpl = rack.cold_plates[ct.cold_plate]
                geom = geoms[ct.cold_plate]

                def f(q, geom=geom, cpl=cpl):
                    return cpl.dp_scale * corr.cold_plate_dp_pa(geom, q, rho, mu)
                if cpl.dp_flow_exponent is None:
                    a, b, err = corr.fit_dp_coefficients(f, q_path)
                else:
                    # the geometry's drop at the design point, the measured exponent there;
                    # the linear part is referred to mu_ref (the kernel scales it by mu/mu_ref)
                    q_d = cpl.dp_design_flow_lpm * LPM
                    pd = table.at(cpl.dp_design_temp_c)
                    dp_d = cpl.dp_scale * corr.cold_plate_dp_pa(geom, q_d, pd["rho"], pd["mu"])
                    a, b = corr.dp_coefficients_through_point(dp_d, q_d, cpl.dp_flow_exponent)
                    a *= mu / pd["mu"]
                    err = 0.0
                a_sum += a
                b_sum += b
                err_max = max(err_max, err)
                k = len(chips)
                cells.append(dict(kind=1, vol=cpl.fluid_volume_ml * 1e-6, chip=k, aux=ti))  # aux: its tray
                path_cells.append(len(cells) - 1)
                same = sum(1 for c in chips if c["tray"] == ti and c["type"] == ctype)
                chips.append(dict(name=f"{tname}/{ctype}{same}", type=ctype, tray=ti, path_edge=-1,
                                  plate=plate_names.index(ct.cold_plate),
                                  r_jb=ct.r_jc_k_per_w + ct.r_tim_k_per_w + geom.base_conduction_k_per_w(),
                                  cj=ct.c_junction_j_per_k, cb=ct.c_plate_j_per_k, foul=cpl.fouling_k_per_w,
                                  dp_a=a, dp_b=b,
                                  tdp=ct.tdp_w, idle=ct.idle_w, thr=ct.throttle_temp_c, shut=ct.shutdown_temp_c))
            e_path = g.add(f"{tname}/path{pi}", a_sum, b_sum, f"TI{ti:02d}", f"TO{ti:02d}", cells=path_cells, fit_error=err_max)
            for c in path_cells:
                chips[cells[c]["chip"]]["path_edge"] = e_path
        a, b, err = branch()
        tray_ret.append(g.add(f"{tname}/return", a, b, f"TO{ti:02d}", f"R{ti:02d}",
                              cells=[fluid_cell(tube_volume(tt.tubing, half), aux=ti)], fit_error=err))
        tray_req.append(q_tray_nom_lpm[ttype])
        tray_chips = [rack.chip_types[c] for path in tt.paths for c in path]
        tray_aux.append(corr.aux_power_line(tt.aux_power_w, tt.aux_idle_power_w, sum(c.tdp_w for c in tray_chips),
                                            sum(c.idle_w for c in tray_chips)))
        tray_auxf.append(tt.aux_liquid_fraction)

    n_node, n_edge = len(g.nodes), len(g.edges)
    edge_from = np.array([e["frm"] for e in g.edges], dtype=np.int64)
    edge_to = np.array([e["to"] for e in g.edges], dtype=np.int64)

    basis, tree_order, tree_edge, tree_parent = _cycle_basis(n_node, edge_from, edge_to, root=g.index["suction"])
    # initial loop flows: least-squares match to the nominal edge flows
    q_nom = np.zeros(n_edge)
    q_nom[e_res] = q_nom[e_hx] = q_nom[e_sup] = q_nom[e_ret] = q_rack_nom
    for p in pump_edges[: cdu.pumps.running]:
        q_nom[p] = q_rack_nom / cdu.pumps.running
    for i, e in enumerate(g.edges):
        if e["name"].endswith(("/supply", "/return")) and e["name"].startswith("tray"):
            q_nom[i] = q_tray_nom_lpm[trays[int(e["name"][4:6])][1]] * LPM
    q_loop0 = np.linalg.lstsq(basis @ basis.T, basis @ q_nom, rcond=None)[0] if basis.shape[0] else np.zeros(0)

    # thermal ordering: Kahn on edges, the reservoir's dependency on the return is cut
    consumers = [[] for _ in range(n_node)]
    for i in range(n_edge):
        consumers[edge_from[i]].append(i)
    indeg = np.zeros(n_edge, dtype=int)
    for i in range(n_edge):
        if i == e_res:
            continue
        indeg[i] = sum(1 for j in range(n_edge) if edge_to[j] == edge_from[i])
    order = []
    queue = deque([e_res])
    while queue:
        i = queue.popleft()
        order.append(i)
        for c in consumers[edge_to[i]]:
            if c == e_res:
                continue
            indeg[c] -= 1
            if indeg[c] == 0:
                queue.append(c)
    if len(order) != n_edge:
        raise RuntimeError("thermal ordering failed: the network has a cycle besides the CDU loop")
    position = np.empty(n_edge, dtype=int)
    position[np.array(order)] = np.arange(n_edge)
    transit = [i for i in range(n_edge) if any(position[c] <= position[i] for c in consumers[edge_to[i]])]

    in_lists = [[] for _ in range(n_node)]
    for i in range(n_edge):
        in_lists[edge_to[i]].append(i)
    node_in_ptr = np.zeros(n_node + 1, dtype=np.int64)
    node_in_ptr[1:] = np.cumsum([len(x) for x in in_lists])
    node_in_edge = np.array([i for lst in in_lists for i in lst], dtype=np.int64)

    # cells in edge order (CSR by edge)
    cell_order = []
    edge_cell_ptr = np.zeros(n_edge + 1, dtype=np.int64)
    for i in range(n_edge):
        cell_order.extend(g.edges[i]["cells"])
        edge_cell_ptr[i + 1] = len(cell_order)
    remap = {old: new for new, old in enumerate(cell_order)}
    cells_sorted = [cells[old] for old in cell_order]
    cell_edge = np.empty(len(cells_sorted), dtype=np.int64)
    for i in range(n_edge):
        cell_edge[edge_cell_ptr[i]:edge_cell_ptr[i + 1]] = i
    hx_cell = remap[hx_cell]
    # temperature cell of each edge: its last cell, else the reservoir (pumps)
    cell_temp_edge = np.array([edge_cell_ptr[i + 1] - 1 if edge_cell_ptr[i + 1] > edge_cell_ptr[i]
                               else edge_cell_ptr[e_res] for i in range(n_edge)], dtype=np.int64)

    ha = np.zeros((len(plate_names), HA_TEMPS_C.size, HA_FLOWS_LPM.size))
    for pi, name in enumerate(plate_names):
        for ti_, t in enumerate(HA_TEMPS_C):
            pr = table.at(float(t))
            for qi, qf in enumerate(HA_FLOWS_LPM):
                ha[pi, ti_, qi] = corr.cold_plate_hA_w_per_k(geoms[name], qf * LPM, pr["rho"], pr["mu"], pr["k"], pr["cp"])

    # heat exchanger design
    water = coolant_table("water").at(s.facility.supply_temp_c)
    m_sec_d = rho * q_hx_rated
    m_fac_d = water["rho"] * hx.rated_facility_flow_lpm * LPM
    ua_d = corr.hx_design_ua(hx.rated_heat_kw * 1e3, hx.approach_k, m_sec_d * cp, m_fac_d * water["cp"])
    exponent = hx.flow_exponent if hx.flow_exponent is not None else corr.plate_hx_flow_exponent()

    def arr(key, dtype=float):
        return np.array([c[key] for c in chips], dtype=dtype)

    return Model(
        scenario=s, coolant=table, rho=rho, cp=cp, t_ref_c=t_ref,
        node_names=g.nodes, edge_names=[e["name"] for e in g.edges],
        edge_from=edge_from, edge_to=edge_to,
        edge_a=np.array([e["a"] for e in g.edges]), edge_b=np.array([e["b"] for e in g.edges]),
        edge_bcv=np.array([e["bcv"] for e in g.edges]), edge_fit_error=np.array([e["fit_error"] for e in g.edges]),
        mu_ref=mu, basis=basis, q_loop0=q_loop0, **_compress_basis(basis),
        tree_order=tree_order, tree_edge=tree_edge, tree_parent=tree_parent,
        edge_order=np.array(order, dtype=np.int64), node_in_ptr=node_in_ptr, node_in_edge=node_in_edge,
        edge_cell_ptr=edge_cell_ptr, transit_edges=np.array(transit, dtype=np.int64),
        pump_edges=np.array(pump_edges, dtype=np.int64),
        pump_shutoff_pa=np.full(len(pump_edges), h0 * cdu.pumps.head_scale),
        pump_k=np.full(len(pump_edges), k_pump * cdu.pumps.head_scale),
        pump_running=np.array([i < cdu.pumps.running for i in range(cdu.pumps.count)]),
        pump_bep_flow_m3s=np.full(len(pump_edges), (cdu.pumps.bep_flow_lpm or cdu.pumps.rated_flow_lpm) * LPM),
        pump_bep_efficiency=np.full(len(pump_edges), cdu.pumps.bep_efficiency),
        pump_drive_efficiency=np.full(len(pump_edges), cdu.pumps.motor_efficiency * cdu.pumps.vfd_efficiency),
        cell_kind=np.array([c["kind"] for c in cells_sorted], dtype=np.int64),
        cell_edge=cell_edge,
        cell_chip=np.array([c["chip"] for c in cells_sorted], dtype=np.int64),
        cell_aux=np.array([c["aux"] for c in cells_sorted], dtype=np.int64),
        cell_volume_m3=np.array([c["vol"] for c in cells_sorted]),
        cell_temp_edge=cell_temp_edge,
        chip_names=[c["name"] for c in chips], chip_type=[c["type"] for c in chips],
        chip_tray=arr("tray", np.int64), chip_path_edge=arr("path_edge", np.int64),
        chip_plate_type=arr("plate", np.int64), chip_r_jb=arr("r_jb"), chip_cj=arr("cj"), chip_cb=arr("cb"),
        chip_fouling=arr("foul"), chip_dp_a=arr("dp_a"), chip_dp_b=arr("dp_b"), chip_tdp=arr("tdp"), chip_idle=arr("idle"),
        chip_throttle_c=arr("thr"), chip_shutdown_c=arr("shut"),
        plate_names=plate_names, ha_table=ha,
        tray_names=[t[0] for t in trays], tray_type=[t[1] for t in trays],
        tray_supply_edge=np.array(tray_sup, dtype=np.int64), tray_return_edge=np.array(tray_ret, dtype=np.int64),
        tray_required_lpm=np.array(tray_req), tray_aux_w=np.array([a[2] for a in tray_aux]),
        tray_aux_base_w=np.array([a[0] for a in tray_aux]), tray_aux_slope=np.array([a[1] for a in tray_aux]),
        tray_aux_liquid_fraction=np.array(tray_auxf),
        tray_required_temps_c=[np.array(rack.tray_types[t].required_flow_points()[0]) for _, t in trays],
        tray_required_flows_lpm=[np.array(rack.tray_types[t].required_flow_points()[1]) for _, t in trays],
        nominal_supply_temp_c=t_nom,
        node=dict(rack_in=g.index["S00"], rack_out=g.index[rack_out], cdu_supply=g.index["cdu_supply"],
                  cdu_return=g.index["cdu_return"], suction=g.index["suction"], discharge=g.index["discharge"]),
        edge=dict(reservoir=e_res, hx=e_hx, supply_hose=e_sup, return_hose=e_ret, hx_cell=hx_cell),
        hx_ua_design=ua_d, hx_ha_sec_design=ua_d / hx.secondary_resistance_share,
        hx_ha_fac_design=ua_d / (1.0 - hx.secondary_resistance_share),
        hx_msec_design=m_sec_d, hx_mfac_design=m_fac_d, hx_exponent=exponent,
        facility_cp=water["cp"], facility_rho=water["rho"],
        info=dict(q_rack_nominal_lpm=q_rack_nom / LPM),
    )


def _compress_basis(basis):
    """The loop basis by edge (CSR over edges: loop indices and orientation signs)."""
    ptr = np.zeros(basis.shape[1] + 1, dtype=np.int64)
    idx, sign = [], []
    for e in range(basis.shape[1]):
        nz = np.nonzero(basis[:, e])[0]
        idx.extend(nz)
        sign.extend(basis[nz, e])
        ptr[e + 1] = len(idx)
    return dict(loop_ptr=ptr, loop_idx=np.array(idx, dtype=np.int64), loop_sign=np.array(sign, dtype=float))


def _cycle_basis(n_node, edge_from, edge_to, root):
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
