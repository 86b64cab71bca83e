"""Component builders: the network assembled from parts.

Each builder owns its parameters (its definition, with the scenario's per-instance
``[overrides]`` and ``[[spread]]`` draws applied), its hydraulic edges and its thermal
cells, and names itself with a stable instance path:

==========================  =====================  ===============================
builder                      instance path          parameters (twin.scenario)
==========================  =====================  ===============================
``rack.chip_on_plate``       rack01/tray09/gpu1     ChipType + its ColdPlate
``rack.coolant_path``        rack01/tray09/path0    (its chips in series)
``rack.tray``                rack01/tray09          TrayType (aux, required flow, K's)
  tubing, quick disconnect   rack01/tray09/tubing,  Tubing, QuickDisconnect
                             rack01/tray09/qd
``rack.headers``             rack01/manifold        Manifold
``rack.hose``                rack01/supply_hose,    Tubing
                             rack01/return_hose
``rack.rack``                rack01                 Rack (max_return_temp_c)
``row.row``                  row/manifold,          RowManifold, Tubing
                             cdu1/supply_pipe
``cdu.cdu``                  cdu1, cdu1/pump0,      Cdu, Pumps, HeatExchanger
                             cdu1/hx
==========================  =====================  ===============================

A new kind of component (a rear-door heat exchanger, a sidecar CDU) is one more builder
that adds its edges and cells to the :class:`~twin.components.base.Assembly`; the
kernels see the same flat arrays (:func:`twin.model.finalize`).
"""
from .base import Assembly, Fluid, Instance, Parameters, draw_factor  # noqa: F401
