"""Builder of a coolant distribution unit: reservoir, pumps in parallel, plate heat
exchanger (and filter), on the facility water.

A CDU's network::

    return --reservoir--> suction ==pumps (parallel)==> discharge --hx+filter--> supply
"""
from __future__ import annotations

from .. import correlations as corr
from ..coolant import coolant_table
from .base import KPA, LPM, Assembly

# Check-valve reverse resistance on every pump [Pa/(m3/s)^2] (ASSUMPTION: a closed swing
# check passes ~0.1 L/min at 280 kPa; check-valve leakage is not published).
CHECK_VALVE_B = 1.0e17


def cdu(asm: Assembly, path: str, spec, facility, return_node: str, supply_node: str, q_nom: float) -> int:
    """A CDU from its definition (``twin.scenario.Cdu``): instance ``path`` (reservoir,
    filter, internal volume), ``path/pump0..`` (each pump's curve and efficiencies; how
    many run is the CDU's), ``path/hx`` (the exchanger's rating). ``q_nom``: the flow
    it carries at the nominal state [m3/s] (initial loop flows)."""
    fl = asm.fluid
    c = asm.instance(path, "cdu", spec).specs[0]
    pumps = c.pumps
    hx = asm.instance(f"{path}/hx", "heat exchanger", c.heat_exchanger).specs[0]
    ci = len(asm.cdus)
    suction, discharge = f"{path}/suction", f"{path}/discharge"
    res_vol = (c.reservoir_volume_l + c.internal_volume_l) * 1e-3
    # reservoir and CDU internal piping: a small linear loss keeps the edge well
    # conditioned (ASSUMPTION: 1 kPa at rated flow).
    q_pump_rated = pumps.rated_flow_lpm * LPM
    e_res = asm.edge(f"{path}/reservoir", 1.0 * KPA / q_pump_rated, 0.0, return_node, suction,
                     cells=[asm.fluid_cell(res_vol)], q_nom=q_nom)
    for i in range(pumps.count):
        p = asm.instance(f"{path}/pump{i}", "pump", pumps).specs[0]
        h0 = p.shutoff_head_kpa * KPA
        k_pump = corr.pump_curve_k(h0, p.rated_flow_lpm * LPM, p.rated_head_kpa * KPA)
        running = i < pumps.running
        e = asm.edge(f"{path}/pump{i}", 0.0, k_pump * p.head_scale, suction, discharge, bcv=CHECK_VALVE_B,
                     q_nom=q_nom / pumps.running if running else 0.0)
        asm.pumps.append(dict(edge=e, cdu=ci, shutoff=h0 * p.head_scale, k=k_pump * p.head_scale, running=running,
                              bep=(p.bep_flow_lpm or p.rated_flow_lpm) * LPM, eff=p.bep_efficiency,
                              drive=p.motor_efficiency * p.vfd_efficiency))
    q_hx_rated = hx.rated_secondary_flow_lpm * LPM
    # Plate HX secondary side and filter: quadratic in flow through their rated points
    # (ASSUMPTION: plate HX dp goes as flow^1.8-2).
    b_hx = hx.rated_secondary_dp_kpa * KPA / q_hx_rated**2 + c.filter_dp_kpa * KPA / q_pump_rated**2
    hx_cell = asm.cell(2, 0.0, aux=ci)  # aux: its CDU
    e_hx = asm.edge(f"{path}/hx", 0.0, b_hx, discharge, supply_node,
                    cells=[hx_cell, asm.fluid_cell(hx.volume_l * 1e-3)], q_nom=q_nom)
    # heat exchanger design: UA from the rating (facility water at the facility supply)
    water = coolant_table("water").at(facility.supply_temp_c)
    m_sec_d = fl.rho * q_hx_rated
    m_fac_d = water["rho"] * hx.rated_facility_flow_lpm * LPM
    ua_d = corr.hx_design_ua(hx.rated_heat_kw * 1e3, hx.approach_k, m_sec_d * fl.cp, m_fac_d * water["cp"])
    asm.cdus.append(dict(name=path, res=e_res, hx=e_hx, hx_cell=hx_cell, suction=suction, discharge=discharge,
                         supply=supply_node, ret=return_node, rated_heat_w=hx.rated_heat_kw * 1e3,
                         ua=ua_d, ha_sec=ua_d / hx.secondary_resistance_share,
                         ha_fac=ua_d / (1.0 - hx.secondary_resistance_share), msec=m_sec_d, mfac=m_fac_d,
                         exponent=hx.flow_exponent if hx.flow_exponent is not None else corr.plate_hx_flow_exponent(),
                         ua_scale=hx.ua_scale, water=water))
    return ci
