"""Build the arrays the kernels run on from a scenario (plain Python, once per model).

``fluids`` and ``ht`` are called here and in the component builders (:mod:`twin.components`)
and nowhere else: pressure drops are fitted to the two-term form the hydraulic kernel
evaluates, plate conductances are tabulated against flow and temperature, the CDU heat
exchanger's UA is derived from its rating.

The builders assemble the network from parts (``twin.components.row``: one rack on one
CDU, or a row of racks on CDUs in parallel); :func:`finalize` turns the assembly into a
:class:`twin.model.Model`.
"""
from __future__ import annotations

import numpy as np

from . import correlations as corr
from .components import rack as _rack
from .components import row as _row
from .components.base import KPA, LPM, Assembly, Fluid, Parameters  # noqa: F401 (LPM, KPA: API)
from .components.cdu import CHECK_VALVE_B  # noqa: F401 (API)
from .components.rack import HOSE_CELLS  # noqa: F401 (API)
from .coolant import coolant_table
from .model import Model, compress_basis, cycle_basis, thermal_order
from .scenario import Scenario

# Temperature grid of the plate conductance tables [degC].
HA_TEMPS_C = np.arange(5.0, 96.0, 5.0)
# Flow grid of the plate conductance tables [L/min], log-spaced.
HA_FLOWS_LPM = np.geomspace(1e-3, 50.0, 160)

# the names tests and tools used before the model moved to twin.model
_cycle_basis, _compress_basis = cycle_basis, compress_basis


def _loop_ref_temp(s: Scenario) -> float:
    """Temperature at which loop rho and cp are evaluated: facility supply plus the HX
    approach plus half the rise across the racks at the flow setpoint (an estimate of the
    loop's mean temperature; rho*cp moves < 0.5 % over +-10 K for both coolants)."""
    power = 0.0
    for _, rack, _, _ in s.rack_entries():
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


def path_alias(s: Scenario):
    """Short instance paths of a one-rack, one-CDU scenario: ``tray03/gpu1`` is
    ``rack01/tray03/gpu1``, ``cdu/pump0`` is ``cdu1/pump0``. Full paths pass unchanged."""
    racks = [n for n, *_ in s.rack_entries()]
    tops = set(racks) | {f"cdu{k + 1}" for k in range(s.cdu_count)} | {"row"}

    def alias(pattern: str) -> str:
        head, sep, rest = pattern.partition("/")
        if head == "cdu" and s.cdu_count == 1:
            return "cdu1" + sep + rest
        if len(racks) == 1 and head not in tops and head not in ("rack*", "*"):
            return f"{racks[0]}/{pattern}"
        return pattern
    return alias


def build_model(s: Scenario, file="<scenario>") -> Model:
    """Turn a validated scenario into a :class:`Model`.

    Nominal tray flows (fit ranges of the pressure-drop fits, initial loop flows) are each
    tray's requirement at :func:`nominal_supply_temp_c`. ``file`` names the scenario in
    errors about ``[overrides]`` and ``[[spread]]``."""
    table = coolant_table(s.coolant.name)
    t_ref = _loop_ref_temp(s)
    props = table.at(t_ref)
    fluid = Fluid(table, props["rho"], props["cp"], props["mu"], nominal_supply_temp_c(s))
    params = Parameters(s, file, path_alias(s))
    asm = Assembly(fluid, params)
    if s.row is None:
        _row.single_rack(asm, s)
    else:
        _row.row(asm, s)
    params.check_used()
    return finalize(asm, s, t_ref)


# Plate conductance tables already computed in this process, by (coolant, geometry): a
# pure function of both, ~0.45 s per reference rack, which a sweep's runs (many models of
# the same plates in one worker) would otherwise pay every run.
_HA_TABLES: dict = {}
HA_TABLES_MAX = 256  # entries kept before the cache starts again (a cache size)


def _plate_table(asm: Assembly) -> tuple[list, np.ndarray]:
    """Plate conductance hA [W/K] of every distinct plate over the (temperature, flow) grid."""
    table = asm.fluid.table
    by_index = sorted(asm.plates.items(), key=lambda kv: kv[1][0])
    ha = np.zeros((len(by_index), HA_TEMPS_C.size, HA_FLOWS_LPM.size))
    for pi, (key, (_, geom, _, _)) in enumerate(by_index):
        cache_key = (table.name, key)
        if cache_key not in _HA_TABLES:
            one = np.zeros((HA_TEMPS_C.size, HA_FLOWS_LPM.size))
            for ti_, t in enumerate(HA_TEMPS_C):
                pr = table.at(float(t))
                for qi, qf in enumerate(HA_FLOWS_LPM):
                    one[ti_, qi] = corr.cold_plate_hA_w_per_k(geom, qf * LPM, pr["rho"], pr["mu"], pr["k"], pr["cp"])
            if len(_HA_TABLES) >= HA_TABLES_MAX:
                _HA_TABLES.clear()
            _HA_TABLES[cache_key] = one
        ha[pi] = _HA_TABLES[cache_key]
    return [p[2] for _, p in by_index], ha


def finalize(asm: Assembly, s: Scenario, t_ref: float) -> Model:
    """The flat arrays of an assembled network: loop basis (rooted at the first CDU's
    suction), initial loop flows (least squares to the builders' nominal edge flows),
    thermal order (each CDU's reservoir closes a loop one step late), cells by edge."""
    g, fl = asm.graph, asm.fluid
    n_node, n_edge = len(g.nodes), len(g.edges)
    edge_from = np.array([e["frm"] for e in g.edges], dtype=np.int64)
    edge_to = np.array([e["to"] for e in g.edges], dtype=np.int64)
    cdus, racks, trays, chips = asm.cdus, asm.racks, asm.trays, asm.chips
    node = g.index

    basis, tree_order, tree_edge, tree_parent = cycle_basis(n_node, edge_from, edge_to, root=node[cdus[0]["suction"]])
    q_nom = np.array([e["q_nom"] for e in g.edges])
    q_loop0 = np.linalg.lstsq(basis @ basis.T, basis @ q_nom, rcond=None)[0] if basis.shape[0] else np.zeros(0)
    order, transit = thermal_order(n_node, edge_from, edge_to, [c["res"] for c in cdus])

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
    cells = [asm.cells[old] for old in cell_order]
    cell_edge = np.empty(len(cells), dtype=np.int64)
    for i in range(n_edge):
        cell_edge[edge_cell_ptr[i]:edge_cell_ptr[i + 1]] = i
    # temperature cell of each edge: its last cell, else its CDU's reservoir (pumps)
    res_of_edge = {p["edge"]: cdus[p["cdu"]]["res"] for p in asm.pumps}
    cell_temp_edge = np.array([edge_cell_ptr[i + 1] - 1 if edge_cell_ptr[i + 1] > edge_cell_ptr[i]
                               else edge_cell_ptr[res_of_edge.get(i, cdus[0]["res"])] for i in range(n_edge)],
                              dtype=np.int64)
    plate_names, ha = _plate_table(asm)

    def arr(rows, key, dtype=float):
        return np.array([r[key] for r in rows], dtype=dtype)

    water = cdus[0]["water"]
    r0, c0 = racks[0], cdus[0]
    return Model(
        scenario=s, coolant=fl.table, rho=fl.rho, cp=fl.cp, t_ref_c=t_ref,
        node_names=g.nodes, edge_names=[e["name"] for e in g.edges],
        edge_from=edge_from, edge_to=edge_to,
        edge_a=arr(g.edges, "a"), edge_b=arr(g.edges, "b"), edge_bcv=arr(g.edges, "bcv"),
        edge_fit_error=arr(g.edges, "fit_error"),
        mu_ref=fl.mu, basis=basis, q_loop0=q_loop0, **compress_basis(basis),
        tree_order=tree_order, tree_edge=tree_edge, tree_parent=tree_parent,
        edge_order=order, node_in_ptr=node_in_ptr, node_in_edge=node_in_edge,
        edge_cell_ptr=edge_cell_ptr, transit_edges=transit,
        pump_edges=arr(asm.pumps, "edge", np.int64), pump_cdu=arr(asm.pumps, "cdu", np.int64),
        pump_shutoff_pa=arr(asm.pumps, "shutoff"), pump_k=arr(asm.pumps, "k"),
        pump_running=arr(asm.pumps, "running", bool), pump_bep_flow_m3s=arr(asm.pumps, "bep"),
        pump_bep_efficiency=arr(asm.pumps, "eff"), pump_drive_efficiency=arr(asm.pumps, "drive"),
        cell_kind=arr(cells, "kind", np.int64), cell_edge=cell_edge, cell_chip=arr(cells, "chip", np.int64),
        cell_aux=arr(cells, "aux", np.int64), cell_volume_m3=arr(cells, "vol"), cell_temp_edge=cell_temp_edge,
        chip_names=[c["name"] for c in chips], chip_type=[c["type"] for c in chips],
        chip_tray=arr(chips, "tray", np.int64), chip_rack=arr(chips, "rack", np.int64),
        chip_path_edge=arr(chips, "path_edge", np.int64),
        chip_plate_type=arr(chips, "plate", np.int64), chip_r_jb=arr(chips, "r_jb"), chip_cj=arr(chips, "cj"),
        chip_cb=arr(chips, "cb"), chip_fouling=arr(chips, "foul"),
        chip_convective_scale=arr(chips, "conv"), chip_dp_a=arr(chips, "dp_a"),
        chip_dp_b=arr(chips, "dp_b"), chip_tdp=arr(chips, "tdp"), chip_idle=arr(chips, "idle"),
        chip_throttle_c=arr(chips, "thr"), chip_shutdown_c=arr(chips, "shut"), chip_gain=arr(chips, "gain"),
        chip_hold_s=arr(chips, "hold"), chip_min_clock=arr(chips, "cmin"), chip_throttles=arr(chips, "throttles", bool),
        plate_names=plate_names, ha_table=ha,
        tray_names=[t["name"] for t in trays], tray_type=[t["type"] for t in trays],
        tray_rack=arr(trays, "rack", np.int64),
        tray_supply_edge=arr(trays, "supply", np.int64), tray_return_edge=arr(trays, "ret", np.int64),
        tray_required_lpm=arr(trays, "required"), tray_aux_w=arr(trays, "aux"),
        tray_aux_base_w=arr(trays, "aux_base"), tray_aux_slope=arr(trays, "aux_slope"),
        tray_aux_liquid_fraction=arr(trays, "aux_frac"),
        tray_required_temps_c=[np.array(t["req_temps"]) for t in trays],
        tray_required_flows_lpm=[np.array(t["req_flows"]) for t in trays],
        nominal_supply_temp_c=fl.t_nom_c,
        rack_names=[r["name"] for r in racks],
        rack_in_node=np.array([node[r["in_node"]] for r in racks], dtype=np.int64),
        rack_out_node=np.array([node[r["out_node"]] for r in racks], dtype=np.int64),
        rack_supply_edge=arr(racks, "supply", np.int64), rack_return_edge=arr(racks, "ret", np.int64),
        rack_max_return_c=np.array([r["spec"].max_return_temp_c for r in racks]),
        rack_specs=[r["spec"] for r in racks], rack_workloads=[r["workload"] for r in racks],
        rack_offset_s=arr(racks, "offset_s"),
        cdu_names=[c["name"] for c in cdus], cdu_hx_edge=arr(cdus, "hx", np.int64),
        cdu_hx_cell=np.array([remap[c["hx_cell"]] for c in cdus], dtype=np.int64),
        cdu_supply_node=np.array([node[c["supply"]] for c in cdus], dtype=np.int64),
        cdu_return_node=np.array([node[c["ret"]] for c in cdus], dtype=np.int64),
        cdu_suction_node=np.array([node[c["suction"]] for c in cdus], dtype=np.int64),
        cdu_discharge_node=np.array([node[c["discharge"]] for c in cdus], dtype=np.int64),
        cdu_rated_heat_w=arr(cdus, "rated_heat_w"),
        hx_ua_design=arr(cdus, "ua"), hx_ha_sec_design=arr(cdus, "ha_sec"), hx_ha_fac_design=arr(cdus, "ha_fac"),
        hx_msec_design=arr(cdus, "msec"), hx_mfac_design=arr(cdus, "mfac"), hx_exponent=arr(cdus, "exponent"),
        hx_ua_scale=arr(cdus, "ua_scale"),
        facility_cp=water["cp"], facility_rho=water["rho"],
        node=dict(rack_in=node[r0["in_node"]], rack_out=node[r0["out_node"]], cdu_supply=node[c0["supply"]],
                  cdu_return=node[c0["ret"]], suction=node[c0["suction"]], discharge=node[c0["discharge"]]),
        edge=dict(reservoir=c0["res"], hx=c0["hx"], supply_hose=r0["supply"], return_hose=r0["ret"],
                  hx_cell=remap[c0["hx_cell"]]),
        instances=asm.instances,
        info=dict(q_rack_nominal_lpm=r0["q_nom"] / LPM, q_total_nominal_lpm=sum(r["q_nom"] for r in racks) / LPM),
    )
