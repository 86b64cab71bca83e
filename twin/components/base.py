"""What component builders add to: the network graph, its coolant cells, the chips, trays,
racks and CDUs, and the table of component instances with their parameters.

Every instance has a path (``rack01/tray09/gpu1``) and the parameters its builder used,
after the scenario's ``[overrides]`` and ``[[spread]]`` draws were applied
(:class:`Parameters`). A builder asks :meth:`Assembly.instance` for its parameters and
gets its definition's values with those of its path applied.
"""
from __future__ import annotations

import difflib
import fnmatch
import math
import zlib
from dataclasses import dataclass, field

import numpy as np

from pydantic import ValidationError

from ..errors import TwinInputError

LPM = 1.0 / 60000.0  # m3/s per L/min
KPA = 1000.0  # Pa per kPa


@dataclass
class Instance:
    """One component instance: its kind, the definition models its parameters come from
    (after overrides and spread), and which parameters differ from the definition."""

    path: str
    kind: str
    specs: tuple  # pydantic models, in the order their fields are looked up
    changed: dict = field(default_factory=dict)  # parameter -> value set by [overrides] or [[spread]]

    def parameters(self) -> dict:
        """Every settable parameter and its value (numbers, booleans and strings)."""
        out = {}
        for spec in self.specs:
            for name, value in spec.model_dump().items():
                if isinstance(value, (int, float, bool, str)) and name not in out:
                    out[name] = value
        return out


def _matches(pattern: str, path: str) -> bool:
    """``*`` and ``?`` match within one path segment: ``rack01/tray*/gpu*``."""
    a, b = pattern.split("/"), path.split("/")
    return len(a) == len(b) and all(fnmatch.fnmatchcase(y, x) for x, y in zip(a, b))


class Parameters:
    """The scenario's per-instance parameters: ``[overrides]`` (path pattern -> {parameter:
    value}) and ``[[spread]]`` draws, applied in that order (a spread draw multiplies the
    overridden value). Patterns are resolved against instance paths as builders create
    them; :meth:`check_used` then names any pattern or parameter that matched nothing."""

    def __init__(self, scenario, file="<scenario>", alias=None):
        self.file = file
        self.alias = alias or (lambda p: p)
        self.overrides = [(self.alias(p), p, dict(v)) for p, v in (scenario.overrides or {}).items()]
        self.spread = list(scenario.spread or [])
        self.used_paths: dict[str, int] = {}  # pattern -> instances matched
        self.used_params: set = set()  # (pattern, parameter) applied somewhere
        self.kinds_seen: dict[str, set] = {}  # pattern -> parameters of the instances it matched
        self.all_paths: list[str] = []

    def apply(self, path: str, kind: str, specs: tuple) -> Instance:
        self.all_paths.append(path)
        fields = [set(type(s).model_fields) for s in specs]
        changes: dict = {}
        origin: dict = {}  # parameter -> the scenario field that set it (for errors)
        for pattern, raw, values in self.overrides:
            if not _matches(pattern, path):
                continue
            self.used_paths[raw] = self.used_paths.get(raw, 0) + 1
            self.kinds_seen.setdefault(raw, set()).update(*fields)
            for name, value in values.items():
                if any(name in f for f in fields):
                    changes[name] = value
                    origin[name] = f'overrides."{raw}".{name}'
                    self.used_params.add((raw, name))
        for i, sp in enumerate(self.spread):
            pattern = self.alias(sp.instances)
            if not _matches(pattern, path):
                continue
            key = f"spread.{i}"
            self.used_paths[key] = self.used_paths.get(key, 0) + 1
            self.kinds_seen.setdefault(key, set()).update(*fields)
            if not any(sp.parameter in f for f in fields):
                continue
            self.used_params.add((key, sp.parameter))
            nominal = changes.get(sp.parameter)
            if nominal is None:
                nominal = next(getattr(s, sp.parameter) for s, f in zip(specs, fields) if sp.parameter in f)
            if not isinstance(nominal, (int, float)) or isinstance(nominal, bool) or nominal is None:
                raise TwinInputError(self.file, f"spread.{i}.parameter",
                                     f"{sp.parameter} of {path} is not a number ({nominal!r})")
            changes[sp.parameter] = float(nominal) * draw_factor(sp, path)
            origin[sp.parameter] = f"spread.{i}.relative_spread"
        if not changes:
            return Instance(path, kind, specs)
        out = []
        for spec, f in zip(specs, fields):
            mine = {k: v for k, v in changes.items() if k in f}
            if not mine:
                out.append(spec)
                continue
            data = {**spec.model_dump(), **mine}
            try:
                out.append(type(spec).model_validate(data))
            except ValidationError as exc:  # one line naming the parameter, in the schema's words
                from ..scenario import _explain

                loc, msg = _explain(exc.errors()[0], data)
                name = ".".join(str(p) for p in loc) or next(iter(mine))
                where = origin.get(name, origin[next(iter(mine))])
                raise TwinInputError(self.file, where, msg if name in origin else f"{path}: {msg}") from None
        return Instance(path, kind, tuple(out), changes)

    def check_used(self):
        """Every override pattern matched an instance and set one of its parameters;
        every spread entry too. Otherwise a clean error naming the nearest paths or
        parameters."""
        for _pattern, raw, values in self.overrides:
            self._check(raw, f'overrides."{raw}"', values)
        for i, sp in enumerate(self.spread):
            self._check(f"spread.{i}", f"spread.{i}.instances", {sp.parameter: None}, shown=sp.instances)

    def _check(self, key, where, values, shown=None):
        shown = shown or key
        if not self.used_paths.get(key):
            near = difflib.get_close_matches(self.alias(shown), self.all_paths, n=4, cutoff=0.5)
            hint = f"; near: {', '.join(near)}" if near else f"; paths look like {self.all_paths[0]!r}, e.g. " \
                   f"{', '.join(_examples(self.all_paths))}"
            raise TwinInputError(self.file, where, f"no component instance matches {shown!r}{hint}")
        for name in values:
            if (key, name) not in self.used_params:
                known = sorted(self.kinds_seen.get(key, set()))
                near = difflib.get_close_matches(name, known, n=4, cutoff=0.5)
                hint = f"; near: {', '.join(near)}" if near else f"; its parameters: {', '.join(known[:12])}"
                field_ = f"{where}.{name}" if where.startswith("overrides") else where.replace("instances", "parameter")
                raise TwinInputError(self.file, field_, f"{shown!r} has no parameter {name!r}{hint}")


def _examples(paths):
    kinds = {}
    for p in paths:
        kinds.setdefault(p.rsplit("/", 1)[-1].rstrip("0123456789"), p)
    return list(kinds.values())[:6]


def draw_factor(sp, path: str) -> float:
    """The multiplier a ``[[spread]]`` entry draws for one instance: reproducible from the
    entry's seed and the instance path alone (so adding or removing other instances does
    not change this one's draw). ``normal``: 1 + s z with z a standard normal truncated at
    +-3; ``lognormal``: exp(s z - s^2/2) (mean 1); ``uniform``: 1 + s u, u in [-1, 1]."""
    rng = np.random.default_rng([sp.seed, zlib.crc32(sp.parameter.encode()), zlib.crc32(path.encode())])
    s = sp.relative_spread
    if sp.distribution == "uniform":
        return 1.0 + s * float(rng.uniform(-1.0, 1.0))
    z = float(rng.standard_normal())
    while abs(z) > 3.0:
        z = float(rng.standard_normal())
    if sp.distribution == "lognormal":
        return math.exp(s * z - 0.5 * s * s)
    return 1.0 + s * z


class Graph:
    """Nodes and directed edges (positive flow = design direction) with their cells."""

    def __init__(self):
        self.nodes: list[str] = []
        self.index: dict[str, int] = {}
        self.edges: list[dict] = []

    def node(self, name):
        if name not in self.index:
            self.index[name] = len(self.nodes)
            self.nodes.append(name)
        return self.index[name]

    def add(self, name, a, b, frm, to, cells=(), fit_error=0.0, bcv=0.0, q_nom=0.0):
        self.edges.append(dict(name=name, a=a, b=b, frm=self.node(frm), to=self.node(to),
                               cells=list(cells), fit_error=fit_error, bcv=bcv, q_nom=q_nom))
        return len(self.edges) - 1


@dataclass
class Fluid:
    """The loop coolant at the build's reference state (what the dp fits and capacities use)."""

    table: object  # twin.coolant.CoolantTable
    rho: float
    cp: float
    mu: float
    t_nom_c: float  # rack supply the nominal tray flows are taken at


class Assembly:
    """The network as builders make it: graph, cells, chips, trays, racks, CDUs, instances."""

    def __init__(self, fluid: Fluid, params: Parameters):
        self.fluid = fluid
        self.params = params
        self.graph = Graph()
        self.cells: list[dict] = []
        self.chips: list[dict] = []
        self.trays: list[dict] = []
        self.racks: list[dict] = []
        self.cdus: list[dict] = []
        self.pumps: list[dict] = []
        self.plates: dict = {}  # plate key -> (index, geometry)
        self.instances: dict[str, Instance] = {}

    def instance(self, path: str, kind: str, *specs) -> Instance:
        inst = self.params.apply(path, kind, tuple(specs))
        self.instances[path] = inst
        return inst

    def fluid_cell(self, vol, aux=-1):
        self.cells.append(dict(kind=0, vol=vol, chip=-1, aux=aux))
        return len(self.cells) - 1

    def cell(self, kind, vol, chip=-1, aux=-1):
        self.cells.append(dict(kind=kind, vol=vol, chip=chip, aux=aux))
        return len(self.cells) - 1

    def edge(self, name, a, b, frm, to, cells=(), fit_error=0.0, bcv=0.0, q_nom=0.0):
        return self.graph.add(name, a, b, frm, to, cells, fit_error, bcv, q_nom)
