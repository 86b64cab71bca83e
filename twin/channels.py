"""The telemetry channels a simulated run writes: one table for the engine that writes them
and for the run-size estimate that must count them before anything is built (plain
Python, no heavy imports)."""
from __future__ import annotations


def channel_table(chip_counts: dict, n_tray: int, n_pump: int, n_jobs: int = 0, n_racks: int = 1,
                  n_cdus: int = 1) -> dict:
    """name -> (units, width or None for a 1-D channel, dtype), for ``n_racks`` racks
    with ``chip_counts`` (chip type -> number of chips, all racks), ``n_tray`` trays,
    ``n_pump`` pumps, ``n_jobs`` jobs on ``n_cdus`` CDUs. One rack on one CDU: the
    ``rack/*`` and ``cdu/*`` quantities are 1-D; a row (more racks or CDUs): one column per
    rack and per CDU, and ``row/*`` totals. docs/telemetry.md describes each channel."""
    ch = {}
    for t in sorted(chip_counts):
        n = chip_counts[t]
        ch[f"{t}/power"] = ("W", n, "f4")
        ch[f"{t}/junction_temp"] = ("degC", n, "f4")
        ch[f"{t}/junction_temp_max"] = ("degC", n, "f4")
        ch[f"{t}/throttled_time"] = ("s", n, "f4")
    ch["gpu/clock_fraction"] = ("1", chip_counts.get("gpu", 0), "f4")
    row = n_racks > 1 or n_cdus > 1
    rk = n_racks if row else None  # a per-rack channel's width
    cd = n_cdus if row else None
    if row:
        ch.update({
            "row/liquid_heat": ("W", None, "f8"),
            "row/it_power": ("W", None, "f8"),
            "row/air_heat": ("W", None, "f8"),
            "row/flow": ("L/min", None, "f8"),
        })
    ch.update({
        "rack/liquid_heat": ("W", rk, "f8"),
        "rack/it_power": ("W", rk, "f8"),
        "rack/air_heat": ("W", rk, "f8"),
        "rack/supply_temp": ("degC", rk, "f8"),
        "rack/return_temp": ("degC", rk, "f8"),
        "rack/flow": ("L/min", rk, "f8"),
        "rack/dp": ("kPa", rk, "f8"),
        "tray/flow": ("L/min", n_tray, "f4"),
        "tray/return_temp": ("degC", n_tray, "f4"),
        "cdu/pump_speed": ("1", n_pump, "f4"),
        "cdu/pump_power": ("W", n_pump, "f4"),
        "cdu/supply_temp": ("degC", cd, "f8"),
        "cdu/return_temp": ("degC", cd, "f8"),
        "cdu/heat": ("W", cd, "f8"),
        "cdu/dp": ("kPa", cd, "f8"),
        "facility/supply_temp": ("degC", None, "f8"),
        "facility/return_temp": ("degC", cd, "f8"),
        "facility/flow": ("L/min", None, "f8"),
    })
    if row:
        ch["cdu/flow"] = ("L/min", n_cdus, "f8")
    if n_jobs:
        ch["job/steps"] = ("1", n_jobs, "f8")
    return ch


def row_bytes(channels: dict) -> int:
    """Bytes of one row of those channels, the time stamps included (the root's and each
    group's copy: docs/telemetry.md)."""
    size = {"f4": 4, "f8": 8}
    return 8 * (1 + len({name.split("/")[0] for name in channels})) + sum(size[dtype] * (1 if width is None else width) for _, width, dtype in channels.values())


def member_dimension(channel: str) -> str:
    """The dimension of a 2-D channel's members: ``pump`` for ``cdu/pump_*``, ``cdu`` for
    ``facility/return_temp`` (a row's CDUs), else the channel's group (``gpu``, ``tray``,
    ``rack``, ``cdu``, ``job``)."""
    if channel.startswith("cdu/pump_"):
        return "pump"
    if channel == "facility/return_temp":
        return "cdu"
    return channel.split("/")[0]


def labels_key(dim: str) -> str:
    """Where a member dimension's labels are named in :attr:`Telemetry.labels` (and were
    stored by schema /1): ``cdu/pump_labels`` for the pumps, else ``DIM/labels``."""
    return "cdu/pump_labels" if dim == "pump" else f"{dim}/labels"


def dim_of_labels(key: str) -> str:
    """The member dimension a labels key names (the inverse of :func:`labels_key`)."""
    return "pump" if key == "cdu/pump_labels" else key.split("/")[0]


def is_scale_name(name: str) -> bool:
    """Whether ``group/quantity`` is where the format keeps a dimension scale (a group's
    ``time``, its members' labels: ``gpu/gpu``, ``cdu/pump``, ``facility/cdu``), so no
    channel may have that name."""
    group, _, quantity = name.rpartition("/")
    return quantity == "time" or quantity == group or name in ("cdu/pump", "facility/cdu")
