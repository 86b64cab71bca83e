"""Builders of a rack: chip on cold plate, coolant path, tray, rack manifold, hose, rack.

Each builder takes its instance path and its definition, asks the assembly for its
parameters (the definition with the scenario's ``[overrides]`` and ``[[spread]]`` for that
path applied), and adds its hydraulic edges (pressure drops fitted to the kernel's
two-term form with ``fluids``, see ``twin.correlations``) and its thermal cells.

A rack's network::

    supply --supply hose--> S00 --hdr--> S01 ... S(n-1)          (rack supply header)
    S_i --QD, tubing--> TI_i ==paths (plates in series)==> TO_i --tubing, QD--> R_i
    R_j <--hdr-- R_(j+1)  (direct return, outlet at R00)  or  R_j --hdr--> R_(j+1) (reverse)
    rack outlet --return hose--> return
"""
from __future__ import annotations

import math

from .. import correlations as corr
from ..model import Model  # noqa: F401 (documentation: what the arrays end in)
from .base import LPM, Assembly

# Cells a hose is split into: tanks in series approximating its transport delay
# (ASSUMPTION: 8 tanks; the residence-time variance of N tanks is 1/N of the mean squared,
# a hose's real dispersion is not modelled).
HOSE_CELLS = 8
# The coolant a mated quick-disconnect pair holds: its bore over this length (ASSUMPTION:
# UQD couplings are a few centimetres long; no hold-up is published). The floor of a tray's
# return cell, which takes the tray's auxiliary heat: with tubing of zero length the cell
# would have no capacity, and with the loop stopped that heat would have nowhere to go
# (twin.kernels.thermal.fluid_step).
QD_FLOW_LENGTH_M = 0.05


def tube_fit(asm: Assembly, t, q_nom, length=None, k_extra=0.0):
    """Two-term dp fit of a tube (``twin.scenario.Tubing``) around ``q_nom`` [m3/s]."""
    fl = asm.fluid
    d = t.inner_diameter_mm * 1e-3
    length = t.length_m if length is None else length

    def f(q):
        return corr.pipe_dp_pa(q, fl.rho, fl.mu, length, d, t.roughness_um * 1e-6, t.k_fittings + k_extra)
    return corr.fit_dp_coefficients(f, q_nom)


def tube_volume(t, length=None):
    length = t.length_m if length is None else length
    return math.pi * (t.inner_diameter_mm * 1e-3) ** 2 / 4.0 * length


def hose(asm: Assembly, path: str, spec, frm: str, to: str, q_nom: float) -> int:
    """A hose (or pipe) of ``HOSE_CELLS`` tanks in series."""
    t = asm.instance(path, "hose", spec).specs[0]
    a, b, err = tube_fit(asm, t, q_nom)
    return asm.edge(path, a, b, frm, to, cells=[asm.fluid_cell(tube_volume(t) / HOSE_CELLS) for _ in range(HOSE_CELLS)],
                    fit_error=err, q_nom=q_nom)


def headers(asm: Assembly, path: str, inner_diameter_mm, segment_m, roughness_um, layout, n, q_total, prefix,
            loss_scale=1.0):
    """Supply and return headers with ``n`` port pairs ``S00..``, ``R00..`` (node names
    under ``prefix``): supply from S00 down the line; the return leaves at R00 (direct)
    or at the far end (reverse return). Returns the return outlet node's name."""
    fl = asm.fluid
    d_hdr = inner_diameter_mm * 1e-3
    seg_len = segment_m
    seg_vol = math.pi * d_hdr**2 / 4.0 * seg_len

    def header_fit(q_nom):
        def f(q):
            return loss_scale * corr.pipe_dp_pa(q, fl.rho, fl.mu, seg_len, d_hdr, roughness_um * 1e-6, 0.0)
        return corr.fit_dp_coefficients(f, q_nom)

    for j in range(n - 1):
        q_nom = max(q_total * (n - 1 - j) / n, q_total / n)
        a, b, err = header_fit(q_nom)
        asm.edge(f"{path}/supply_header{j:02d}", a, b, f"{prefix}S{j:02d}", f"{prefix}S{j + 1:02d}",
                 cells=[asm.fluid_cell(seg_vol)], fit_error=err)
    reverse = layout == "reverse_return"
    for j in range(n - 1):
        if reverse:
            q_nom = max(q_total * (j + 1) / n, q_total / n)
            a, b, err = header_fit(q_nom)
            asm.edge(f"{path}/return_header{j:02d}", a, b, f"{prefix}R{j:02d}", f"{prefix}R{j + 1:02d}",
                     cells=[asm.fluid_cell(seg_vol)], fit_error=err)
        else:
            q_nom = max(q_total * (n - 1 - j) / n, q_total / n)
            a, b, err = header_fit(q_nom)
            asm.edge(f"{path}/return_header{j:02d}", a, b, f"{prefix}R{j + 1:02d}", f"{prefix}R{j:02d}",
                     cells=[asm.fluid_cell(seg_vol)], fit_error=err)
    return f"{prefix}R{n - 1:02d}" if reverse else f"{prefix}R00"


# cold-plate fields that do not change its conductance table (hA against flow and temperature)
NOT_GEOMETRY = ("fouling_k_per_w", "dp_scale", "convective_resistance_scale", "dp_flow_exponent",
                "dp_design_flow_lpm", "dp_design_temp_c", "fluid_volume_ml")


def plate_index(asm: Assembly, name: str, plate) -> int:
    """Index of a plate geometry in the plate conductance table (one entry per distinct
    geometry: instances with their own geometry get their own)."""
    # the conductance table depends on the geometry and material only
    key = tuple(sorted((k, v) for k, v in plate.model_dump().items() if k not in NOT_GEOMETRY))
    if key not in asm.plates:
        names = {v[2] for v in asm.plates.values()}
        label = name if name not in names else f"{name}-{len(asm.plates)}"
        asm.plates[key] = (len(asm.plates), corr.ColdPlateGeometry.from_spec(plate), label, plate)
    return asm.plates[key][0]


def chip_on_plate(asm: Assembly, path: str, chip_spec, plate_spec, plate_name, tray: int, rack: int, ctype: str,
                  q_path: float):
    """A chip on its cold plate: junction, TIM, plate base and the plate's coolant (one
    plate cell). Its parameters are the chip type's and its cold plate's. Returns the
    chip's dp coefficients (its share of its path's) and its cell."""
    inst = asm.instance(path, "chip on cold plate", chip_spec, plate_spec)
    ct, cpl = inst.specs
    fl = asm.fluid
    geom = corr.ColdPlateGeometry.from_spec(cpl)

    def f(q, geom=geom, cpl=cpl):
        return cpl.dp_scale * corr.cold_plate_dp_pa(geom, q, fl.rho, fl.mu)
    if cpl.dp_flow_exponent is None:
        a, b, err = corr.fit_dp_coefficients(f, q_path)
    else:
        # the geometry's drop at the design point, the measured exponent there;
        # the linear part is referred to mu_ref (the kernel scales it by mu/mu_ref)
        q_d = cpl.dp_design_flow_lpm * LPM
        pd = fl.table.at(cpl.dp_design_temp_c)
        dp_d = cpl.dp_scale * corr.cold_plate_dp_pa(geom, q_d, pd["rho"], pd["mu"])
        a, b = corr.dp_coefficients_through_point(dp_d, q_d, cpl.dp_flow_exponent)
        a *= fl.mu / pd["mu"]
        err = 0.0
    k = len(asm.chips)
    cell = asm.cell(1, cpl.fluid_volume_ml * 1e-6, chip=k, aux=tray)  # aux: its tray
    asm.chips.append(dict(name=path, type=ctype, tray=tray, rack=rack, path_edge=-1,
                          plate=plate_index(asm, plate_name, cpl),
                          r_jb=ct.r_jc_k_per_w + ct.r_tim_k_per_w + geom.base_conduction_k_per_w(),
                          cj=ct.c_junction_j_per_k, cb=ct.c_plate_j_per_k, foul=cpl.fouling_k_per_w,
                          conv=cpl.convective_resistance_scale,
                          dp_a=a, dp_b=b,
                          tdp=ct.tdp_w, idle=ct.idle_w, thr=ct.throttle_temp_c, shut=ct.shutdown_temp_c,
                          gain=ct.throttle_gain_per_k_s, hold=ct.throttle_hold_s, cmin=ct.min_clock_fraction,
                          throttles=ct.throttles))
    return a, b, err, cell


def coolant_path(asm: Assembly, path: str, tray_path: str, rack_spec, chip_types, counts, tray: int, rack: int,
                 frm: str, to: str, q_path: float) -> int:
    """A coolant path through a tray: its chips' plates in series (``counts`` numbers each
    chip type within the tray)."""
    cells = []
    a_sum = b_sum = err_max = 0.0
    for ctype in chip_types:
        ct = rack_spec.chip_types[ctype]
        n = counts.get(ctype, 0)
        counts[ctype] = n + 1
        a, b, err, cell = chip_on_plate(asm, f"{tray_path}/{ctype}{n}", ct, rack_spec.cold_plates[ct.cold_plate],
                                        ct.cold_plate, tray, rack, ctype, q_path)
        a_sum += a
        b_sum += b
        err_max = max(err_max, err)
        cells.append(cell)
    e_path = asm.edge(path, a_sum, b_sum, frm, to, cells=cells, fit_error=err_max)
    for c in cells:
        asm.chips[asm.cells[c]["chip"]]["path_edge"] = e_path
    return e_path


def tray(asm: Assembly, path: str, rack_spec, type_name: str, rack: int, s_node: str, r_node: str, prefix: str,
         local: int):
    """A tray: quick disconnect and tubing to each manifold port (with branch tees and
    balancing restrictor, half on each side), its coolant paths in parallel, aux power
    into the coolant leaving it."""
    fl = asm.fluid
    tt = asm.instance(path, "tray", rack_spec.tray_types[type_name]).specs[0]
    tubing = asm.instance(f"{path}/tubing", "tubing", tt.tubing).specs[0]
    qd = asm.instance(f"{path}/qd", "quick disconnect", tt.quick_disconnect).specs[0]
    ti = len(asm.trays)
    q_tray = tt.required_flow_at(fl.t_nom_c) * LPM
    d_qd = qd.inner_diameter_mm * 1e-3
    half = tubing.length_m / 2.0

    def branch():
        def f(q):
            return tt.loss_scale * (corr.quick_disconnect_dp_pa(q, fl.rho, d_qd, qd.cv_gpm_per_psi, qd.kv_m3h_per_bar)
                    + corr.pipe_dp_pa(q, fl.rho, fl.mu, half, tubing.inner_diameter_mm * 1e-3,
                                      tubing.roughness_um * 1e-6, tubing.k_fittings / 2.0 + tt.branch_k / 2.0
                                      + tt.balancing_k / 2.0))
        return corr.fit_dp_coefficients(f, q_tray)
    tin, tout = f"{prefix}TI{local:02d}", f"{prefix}TO{local:02d}"
    a, b, err = branch()
    sup = asm.edge(f"{path}/supply", a, b, s_node, tin, cells=[asm.fluid_cell(tube_volume(tubing, half))],
                   fit_error=err, q_nom=q_tray)
    counts: dict = {}
    for pi, chip_types in enumerate(tt.paths):
        coolant_path(asm, f"{path}/path{pi}", path, rack_spec, chip_types, counts, ti, rack, tin, tout,
                     q_tray / len(tt.paths))
    a, b, err = branch()
    ret_volume = max(tube_volume(tubing, half), math.pi * d_qd ** 2 / 4.0 * QD_FLOW_LENGTH_M)
    ret = asm.edge(f"{path}/return", a, b, tout, r_node, cells=[asm.fluid_cell(ret_volume, aux=ti)],
                   fit_error=err, q_nom=q_tray)
    tray_chips = [rack_spec.chip_types[c] for p in tt.paths for c in p]
    base, slope, full = corr.aux_power_line(tt.aux_power_w, tt.aux_idle_power_w, sum(c.tdp_w for c in tray_chips),
                                            sum(c.idle_w for c in tray_chips))
    temps, flows = tt.required_flow_points()
    asm.trays.append(dict(name=path, type=type_name, rack=rack, supply=sup, ret=ret, required=q_tray / LPM,
                          aux_base=base, aux_slope=slope, aux=full, aux_frac=tt.aux_liquid_fraction,
                          req_temps=temps, req_flows=flows))


def rack_nominal_flow(rack_spec, t_nom_c) -> float:
    """A rack's nominal flow: its trays' requirements at ``t_nom_c`` [m3/s]."""
    return sum(g.count * rack_spec.tray_types[g.type].required_flow_at(t_nom_c) for g in rack_spec.tray_stack) * LPM


def rack(asm: Assembly, path: str, rack_spec, supply_node: str, return_node: str, workload=None, offset_s=0.0):
    """A rack: supply hose, manifold (supply and return headers), its trays in stack order
    from the manifold inlet end, return hose."""
    ri = len(asm.racks)
    # the rack's own parameters (max_return_temp_c, its margin limits)
    rack_spec = asm.instance(path, "rack", rack_spec).specs[0]
    q_rack = rack_nominal_flow(rack_spec, asm.fluid.t_nom_c)
    n_tray = sum(g.count for g in rack_spec.tray_stack)
    prefix = f"{path}/"
    e_sup = hose(asm, f"{path}/supply_hose", rack_spec.supply_hose, supply_node, f"{prefix}S00", q_rack)
    man = asm.instance(f"{path}/manifold", "rack manifold", rack_spec.manifold).specs[0]
    out = headers(asm, f"{path}/manifold", man.inner_diameter_mm, man.port_spacing_mm * 1e-3, man.roughness_um,
                  man.layout, n_tray, q_rack, prefix, man.loss_scale)
    e_ret = hose(asm, f"{path}/return_hose", rack_spec.return_hose, out, return_node, q_rack)
    asm.racks.append(dict(name=path, spec=rack_spec, in_node=f"{prefix}S00", out_node=out, supply=e_sup, ret=e_ret,
                          q_nom=q_rack, workload=workload, offset_s=offset_s))
    k = 0
    for g in rack_spec.tray_stack:
        for _ in range(g.count):
            tray(asm, f"{path}/tray{k:02d}", rack_spec, g.type, ri, f"{prefix}S{k:02d}", f"{prefix}R{k:02d}",
                 prefix, k)
            k += 1
    return ri
