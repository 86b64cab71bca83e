"""Builders of what joins racks to CDUs: one rack on one CDU, or a row of racks on a row
manifold fed by CDUs in parallel.

A row's network (``n`` racks, ``c`` CDUs)::

    cduK/supply --supply pipe--> row/S00 --hdr--> row/S01 ... row/S(n-1)
    row/S_i --rack i (hoses, manifold, trays)--> row/R_i
    row return outlet (R00 direct, R(n-1) reverse) --return pipe--> cduK/return
"""
from __future__ import annotations

from .base import Assembly
from .cdu import cdu
from .rack import headers, hose, rack, rack_nominal_flow


def single_rack(asm: Assembly, s) -> None:
    """The scenario's one rack on its one CDU: the rack's hoses go straight to the CDU."""
    name, rack_spec, workload, offset = s.rack_entries()[0]
    q_rack = rack_nominal_flow(rack_spec, asm.fluid.t_nom_c)
    cdu(asm, "cdu1", s.cdu, s.facility, "cdu1/return", "cdu1/supply", q_rack)
    rack(asm, name, rack_spec, "cdu1/supply", "cdu1/return", workload, offset)


def row(asm: Assembly, s) -> None:
    """The scenario's row: ``row.cdu_count`` CDUs (each ``[cdu]``) in parallel on the row
    headers, each joined by its own supply and return pipe (``row.cdu_pipe``); the racks
    at their ports in row order from the CDU end."""
    spec = s.row
    entries = s.rack_entries()
    n = len(entries)
    q_row = sum(rack_nominal_flow(r, asm.fluid.t_nom_c) for _, r, _, _ in entries)
    man = asm.instance("row/manifold", "row manifold", spec.manifold).specs[0]
    outlet = f"row/R{n - 1:02d}" if man.layout == "reverse_return" else "row/R00"
    q_cdu = q_row / spec.cdu_count
    for k in range(spec.cdu_count):
        name = f"cdu{k + 1}"
        cdu(asm, name, s.cdu, s.facility, f"{name}/return", f"{name}/supply", q_cdu)
        hose(asm, f"{name}/supply_pipe", spec.cdu_pipe, f"{name}/supply", "row/S00", q_cdu)
        hose(asm, f"{name}/return_pipe", spec.cdu_pipe, outlet, f"{name}/return", q_cdu)
    headers(asm, "row/manifold", man.inner_diameter_mm, man.rack_spacing_mm * 1e-3, man.roughness_um, man.layout,
            n, q_row, "row/")
    for i, (name, rack_spec, workload, offset) in enumerate(entries):
        rack(asm, name, rack_spec, f"row/S{i:02d}", f"row/R{i:02d}", workload, offset)
