"""The pictures engineers read, drawn from a results file alone (``twin plot``, ``twin
report``, ``twin compare --plot``; docs/plots.md).

Kinds (each a :class:`matplotlib.figure.Figure`, Agg, no pyplot state):

- ``rack``: rack power (IT, liquid, air) [kW], supply and return temperatures [degC] with
  the return limit, rack flow [L/min]; a row: the row's totals, each rack's temperatures;
- ``junction``: per-GPU junction temperature, GPU by time, rows named by instance path,
  colour bar in degC with the throttle temperature on it; below it the hottest, mean and
  coolest GPU over time against the throttle line;
- ``trays``: each tray's flow along the manifold at the binding instant (the sample where
  some tray is least served against its requirement), its range over the run, and the
  flow it requires there;
- ``cdu``: pump speeds [%], pump power [kW], CDU and facility temperatures [degC], flows
  [L/min];
- ``margins``: each pass/fail margin's value against its limit, coloured by status.

Where a limit is not in the file, it comes from the scenario the file carries (root
attribute ``scenario``, rebuilt with :func:`twin.build.build_model`): the throttle
temperature of each GPU (``chip_throttle_c``) and the flow each tray needs
(``Model.tray_required_at`` on the recorded rack supply temperature, exactly as
``tray_flow_ratio_min`` in :mod:`twin.margins` takes it, except that a sensor-offset fault
on the supply is not removed). A measured file carries no scenario: those limits are then
not drawn, and the figure says so.

matplotlib is imported by the functions that draw, never at module import.
"""
from __future__ import annotations

import io
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import TwinInputError
from .files import PNG_MAGIC, check_replaceable, write_whole

KINDS = ("rack", "junction", "trays", "cdu", "margins")
# what each kind draws: it needs at least one of these channels with a finite sample
KIND_CHANNELS = {
    "rack": ("rack/it_power", "rack/liquid_heat", "rack/supply_temp", "rack/return_temp", "rack/flow",
             "row/it_power", "row/liquid_heat"),
    "junction": ("gpu/junction_temp_max", "gpu/junction_temp"),
    "trays": ("tray/flow",),
    "cdu": ("cdu/pump_speed", "cdu/pump_power", "cdu/supply_temp", "cdu/return_temp", "cdu/flow",
            "facility/supply_temp", "facility/return_temp", "facility/flow"),
    "margins": ("margins/verdicts",),
}
# events of the workload (many, periodic): not marked on the time axes; faults are
WORKLOAD_EVENTS = frozenset({"job_submit", "job_start", "checkpoint_start", "checkpoint_end", "failure", "restart",
                             "job_end"})
STATUS_COLOURS = {"ok": "tab:green", "fail": "tab:red", "not judged": "tab:gray"}
DPI = 100  # PNG resolution: a 10 x 7 inch figure is 1000 x 700 pixels
MAX_EVENT_MARKS = 12  # more fault events than this on one axis are not marked (unreadable)
MAX_HEATMAP_COLUMNS = 1500  # time columns of the heat map; longer runs take each block's maximum
MAX_GPU_TICKS = 36  # GPU names on the heat map's axis at most


class NoData(Exception):
    """A kind the file has nothing to draw for: ``channel`` names what is missing."""

    def __init__(self, channel: str, reason: str):
        super().__init__(reason)
        self.channel, self.reason = channel, reason


@dataclass
class Run:
    """A results file as the figures read it: telemetry, margins, and the model of the
    scenario it carries (built on first use, for limits the file does not hold)."""

    path: Path
    tel: object
    margins: list | None
    _model: object = field(default=None, repr=False)
    model_note: str = ""

    @property
    def name(self) -> str:
        return self.path.stem

    @property
    def measured(self) -> bool:
        return bool(self.tel.attrs.get("measured", False))

    def has(self, channel: str) -> bool:
        """The channel is in the file with at least one finite sample."""
        x = self.tel.channels.get(channel)
        return x is not None and x.size > 0 and bool(np.any(np.isfinite(x)))

    def model(self):
        """The :class:`twin.model.Model` of the file's scenario, or None (``model_note`` says why)."""
        if self._model is None and not self.model_note:
            text = self.tel.attrs.get("scenario")
            if not isinstance(text, str) or not text.strip():
                self.model_note = "no scenario in the file" + (" (measured telemetry)" if self.measured else "")
                return None
            try:
                from .build import build_model
                from .scenario import _validate

                self._model = build_model(_validate(tomllib.loads(text), f"{self.path} (scenario attribute)"))
            except (tomllib.TOMLDecodeError, TwinInputError) as exc:
                self.model_note = f"the file's scenario does not build: {' '.join(str(exc).splitlines())[:200]}"
        return self._model

    def margin(self, name: str) -> dict | None:
        return next((r for r in self.margins or () if r["name"] == name), None)


def load_run(path) -> Run:
    """Read a results file (simulated or measured, any set of channels) for drawing."""
    from .telemetry import read_margins, read_telemetry

    path = Path(path)
    tel = read_telemetry(path, require=())
    return Run(path, tel, read_margins(path))


def run_of_result(result) -> Run:
    """A run in memory (:class:`twin.result.Result`) for drawing, as its file would be read;
    named by its telemetry file, else by its scenario."""
    from .telemetry import margin_records

    path = Path(result.telemetry_path) if result.telemetry_path else Path(f"{result.scenario.name}.h5")
    return Run(path, result.telemetry(require=()), margin_records(result.margin_table))


# --------------------------------------------------------------------------- helpers

def _time(t: np.ndarray, span: float | None = None) -> tuple:
    """Time in a unit that reads well: (values, unit, scale)."""
    span = (float(t[-1] - t[0]) if t.size else 0.0) if span is None else span
    for unit, scale, above in (("h", 3600.0, 4 * 3600.0), ("min", 60.0, 20 * 60.0)):
        if span > above:
            return t / scale, unit, scale
    return t, "s", 1.0


def _figure(rows: int, height_per_row: float, width: float = 10.0, **kw):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, max(2.5, rows * height_per_row)), layout="constrained")
    axes = fig.subplots(rows, 1, squeeze=False, **kw)[:, 0]
    return fig, list(axes)


def _title(fig, run: Run, what: str) -> None:
    sub = "measured" if run.measured else str(run.tel.attrs.get("source", "") or "")
    end = run.tel.attrs.get("complete")
    state = "" if end is None or bool(end) else ", INCOMPLETE run"
    fig.suptitle(f"{what}: {run.name}" + (f" ({sub}{state})" if sub or state else ""), fontsize=11)


def _mark_events(axes, run: Run, scale: float) -> None:
    """Fault events as dotted vertical lines, named on the top axes."""
    marks = [(t, k, g) for t, k, g in run.tel.events if k not in WORKLOAD_EVENTS]
    if not marks or len(marks) > MAX_EVENT_MARKS:
        return
    for ax in axes:
        for t, _, _ in marks:
            ax.axvline(t / scale, color="0.3", linestyle=":", linewidth=1)
    for t, kind, target in marks:
        axes[0].annotate(f"{kind} {target}".strip(), (t / scale, 1.0), xycoords=("data", "axes fraction"),
                         rotation=90, va="top", ha="right", fontsize=7, color="0.2",
                         bbox=dict(facecolor="white", alpha=0.7, linewidth=0, pad=1))


def _plot_channel(ax, run: Run, t, name: str, label: str, scale: float = 1.0, members: str | None = None,
                  **style) -> bool:
    """One channel as lines (a member a line for 2-D channels); False when not in the file."""
    if not run.has(name):
        return False
    x = np.asarray(run.tel[name], dtype=float) * scale
    style = _lone(t, style)
    if x.ndim == 1:
        ax.plot(t, x, label=label, **style)
        return True
    names = run.tel.labels.get(members or "", [])
    for j in range(x.shape[1]):
        who = names[j] if j < len(names) else f"#{j}"
        ax.plot(t, x[:, j], label=f"{label} {who}", **style)
    return True


def _lone(t, style: dict) -> dict:
    """A series of one sample (a run of one output interval) is a line of one point,
    which matplotlib draws as nothing: mark its point."""
    return {"marker": "o", **style} if np.size(t) == 1 else style


def _legend(ax) -> None:
    """A legend where there are lines, and the values on the axis as they are (no offset)."""
    ax.ticklabel_format(axis="y", useOffset=False)
    handles, _ = ax.get_legend_handles_labels()
    if handles:
        ax.legend(fontsize=7, ncol=max(1, min(4, len(handles) // 6 + 1)), loc="best")


def _need(run: Run, kind: str) -> None:
    """Raise :class:`NoData` unless the file holds something for ``kind``."""
    if kind == "margins":
        if not run.margins:
            why = "measured telemetry holds no margins" if run.measured else "the file holds no margins"
            raise NoData("margins/verdicts", why)
        if not any(r["status"] for r in run.margins):
            raise NoData("margins/verdicts", "no pass/fail margin in the file")
        return
    chans = KIND_CHANNELS[kind]
    if not any(run.has(c) for c in chans):
        name = chans[0] if len(chans) == 1 else ", ".join(chans)
        raise NoData(name, "not in the file (or no finite sample)" if len(chans) == 1
                     else "none of these channels in the file (or no finite sample)")


# --------------------------------------------------------------------------- the figures

def _time_panels(run: Run, what: str, panels: list, height: float = 2.5):
    """Stacked time-series panels on one time axis. ``panels``: (channels, y label, title,
    draw(ax, t)); a panel with none of its channels in the file is left out."""
    t, unit, scale = _time(run.tel.time)
    shown = [p for p in panels if any(run.has(c) for c in p[0])]
    fig, axes = _figure(len(shown), height, sharex=True)
    for ax, (_, ylabel, title, draw) in zip(axes, shown):
        draw(ax, t)
        ax.set_ylabel(ylabel)
        ax.set_title(title, fontsize=9)
        _legend(ax)
        ax.grid(alpha=0.3)
        ax.set_xlabel(f"time [{unit}]")
    _mark_events(axes, run, scale)
    _title(fig, run, what)
    return fig


def fig_rack(run: Run):
    _need(run, "rack")
    row = run.has("row/liquid_heat") or run.has("row/it_power")
    power = ("row/it_power", "row/liquid_heat", "row/air_heat") if row else \
        ("rack/it_power", "rack/liquid_heat", "rack/air_heat")
    limit = _return_limit(run)

    def draw_power(ax, t):
        for name, label in zip(power, ("IT power", "liquid heat", "air heat")):
            _plot_channel(ax, run, t, name, label, 1e-3, "rack/labels")

    def draw_temp(ax, t):
        _plot_channel(ax, run, t, "rack/supply_temp", "supply", members="rack/labels", linestyle="--")
        _plot_channel(ax, run, t, "rack/return_temp", "return", members="rack/labels")
        _plot_channel(ax, run, t, "facility/supply_temp", "facility supply", color="0.5", linestyle="-.")
        if limit is not None:
            ax.axhline(limit, color="tab:red", linestyle="--", linewidth=1.2, label=f"return limit {limit:g} degC")

    return _time_panels(run, "Rack power and temperatures", [
        (power, "power [kW]", ("row totals" if row else "rack") + ": IT power and heat into the coolant", draw_power),
        (("rack/supply_temp", "rack/return_temp"), "temperature [degC]", "coolant at the rack manifolds"
         + ("" if limit is not None else " (return limit: not in the file)"), draw_temp),
        (("rack/flow",), "flow [L/min]", "rack flow",
         lambda ax, t: _plot_channel(ax, run, t, "rack/flow", "rack flow", members="rack/labels"))], 2.6)


def _return_limit(run: Run) -> float | None:
    r = run.margin("rack_return_temp_max_c")
    if r is not None and r["limit"] is not None:
        return float(r["limit"])
    m = run.model() if not run.measured else None
    return float(np.min(m.rack_max_return_c)) if m is not None else None


def _throttle(run: Run, labels: list) -> tuple:
    """(throttle temperature of each labelled GPU [degC] or None, note)."""
    m = run.model()
    if m is None:
        return None, f"throttle temperature not drawn: {run.model_note}"
    where = {n: i for i, n in enumerate(m.chip_names)}
    thr = np.array([m.chip_throttle_c[where[n]] if n in where else np.nan for n in labels])
    if not np.any(np.isfinite(thr)):
        return None, "throttle temperature not drawn: the file's GPUs are not in its scenario"
    return thr, ""


def _block_max(x: np.ndarray, n: int) -> np.ndarray:
    """Rows of ``x`` (time x member) reduced to at most ``n`` blocks, each its maximum."""
    if x.shape[0] <= n:
        return x
    k = math.ceil(x.shape[0] / n)
    pad = (-x.shape[0]) % k
    xp = np.concatenate([x, np.full((pad, x.shape[1]), np.nan)]) if pad else x
    blocks = xp.reshape(-1, k, x.shape[1])
    with np.errstate(invalid="ignore"):
        out = np.where(np.all(np.isnan(blocks), axis=1), np.nan, np.nanmax(np.where(np.isnan(blocks), -np.inf,
                                                                                     blocks), axis=1))
    return out


def fig_junction(run: Run):
    _need(run, "junction")
    import matplotlib

    tel = run.tel
    name = "gpu/junction_temp_max" if run.has("gpu/junction_temp_max") else "gpu/junction_temp"
    x = np.asarray(tel[name], dtype=float)
    x = x[:, None] if x.ndim == 1 else x
    labels = tel.labels.get("gpu/labels") or [f"gpu #{j}" for j in range(x.shape[1])]
    t, unit, scale = _time(tel.time)
    thr, note = _throttle(run, labels)
    thr_min = float(np.nanmin(thr)) if thr is not None else None
    n = x.shape[1]
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4.5 + min(n, 144) * 0.04), layout="constrained")
    ax, ax2 = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    xs = _block_max(x, MAX_HEATMAP_COLUMNS)
    dt = float(np.median(np.diff(t))) if t.size > 1 else 1.0
    lo = float(np.nanmin(xs))
    hi = max(float(np.nanmax(xs)), thr_min + 1.0 if thr_min is not None else -np.inf)
    cmap = matplotlib.colormaps["inferno"].with_extremes(bad="0.8")
    im = ax.imshow(xs.T, aspect="auto", interpolation="nearest", cmap=cmap, vmin=lo, vmax=hi,
                   extent=(t[0] - dt / 2, t[-1] + dt / 2, n - 0.5, -0.5))
    step = 1 if n <= 24 else 4 * math.ceil(n / (4 * MAX_GPU_TICKS))
    ax.set_yticks(range(0, n, step), [labels[j] for j in range(0, n, step)], fontsize=6)
    ax.set_ylabel("GPU (instance path)")
    ax.set_xlabel(f"time [{unit}]")
    cb = fig.colorbar(im, ax=ax, pad=0.01)
    cb.set_label("junction temperature [degC]")
    what = "peak within each interval" if name.endswith("_max") else "at the sample instant"
    if thr_min is not None:
        cb.ax.axhline(thr_min, color="tab:cyan", linewidth=2)
        spread = f" (per GPU {np.nanmin(thr):g}-{np.nanmax(thr):g})" if np.nanmax(thr) > thr_min else ""
        ax.set_title(f"GPU junction temperature, {what}; throttle at {thr_min:g} degC{spread} (cyan on the "
                     "colour bar)", fontsize=9)
    else:
        ax.set_title(f"GPU junction temperature, {what}; {note}", fontsize=9)
    with np.errstate(invalid="ignore"), _quiet():
        ax2.plot(t, np.nanmax(x, axis=1), **_lone(t, dict(color="tab:red", label="hottest GPU")))
        ax2.plot(t, np.nanmean(x, axis=1), **_lone(t, dict(color="tab:orange", label="mean")))
        ax2.plot(t, np.nanmin(x, axis=1), **_lone(t, dict(color="tab:blue", label="coolest GPU")))
    if thr_min is not None:
        ax2.axhline(thr_min, color="tab:red", linestyle="--", linewidth=1.2, label=f"throttle {thr_min:g} degC")
    ax2.set_ylabel("junction [degC]")
    ax2.set_xlabel(f"time [{unit}]")
    ax2.grid(alpha=0.3)
    _legend(ax2)
    _mark_events([ax2], run, scale)  # on the map they would hide what they mark
    _title(fig, run, "GPU junction temperatures")
    return fig


class _quiet:
    """Silence numpy's all-NaN warnings (a measured gap is NaN in every member)."""

    def __enter__(self):
        import warnings

        self._w = warnings.catch_warnings()
        self._w.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc):
        return self._w.__exit__(*exc)


def tray_required(run: Run) -> tuple:
    """(required flow of each tray at each sample [L/min] (time x tray) or None, note):
    the scenario's requirement at the recorded rack supply temperature (module docstring)."""
    tel = run.tel
    if not run.has("rack/supply_temp"):
        return None, "required flow not drawn: no rack/supply_temp in the file"
    m = run.model()
    if m is None:
        return None, f"required flow not drawn: {run.model_note}"
    labels = tel.labels.get("tray/labels", [])
    index = {n: i for i, n in enumerate(m.tray_names)}
    if not labels or any(n not in index for n in labels):
        return None, "required flow not drawn: the file's trays are not those of its scenario"
    idx = np.array([index[n] for n in labels])
    supply = np.asarray(tel["rack/supply_temp"], dtype=float)
    req = (m.tray_required_at(supply[:, m.tray_rack], per_tray=True) if supply.ndim == 2
           else m.tray_required_at(supply))
    return req[:, idx], ""


def fig_trays(run: Run):
    _need(run, "trays")
    tel = run.tel
    flow = np.asarray(tel["tray/flow"], dtype=float)
    labels = tel.labels.get("tray/labels") or [f"tray #{j}" for j in range(flow.shape[1])]
    req, note = tray_required(run)
    with np.errstate(invalid="ignore", divide="ignore"), _quiet():
        score = np.nanmin(flow / req, axis=1) if req is not None else np.nanmin(flow, axis=1)
        k = int(np.nanargmin(np.where(np.isnan(score), np.inf, score)))
        lo, hi = np.nanmin(flow, axis=0), np.nanmax(flow, axis=0)
    t, unit, _ = _time(tel.time)
    n = flow.shape[1]
    fig, (ax,) = _figure(1, 4.8, width=max(8.0, min(18.0, 0.3 * n + 2)))
    pos = np.arange(n)
    below = (flow[k] < req[k]) if req is not None else np.zeros(n, dtype=bool)
    colours = np.where(below, STATUS_COLOURS["fail"], "tab:blue")
    ax.bar(pos, flow[k], color=colours, width=0.7, label=f"flow at {t[k]:g} {unit}")
    ax.errorbar(pos, flow[k], yerr=[np.maximum(flow[k] - lo, 0), np.maximum(hi - flow[k], 0)], fmt="none",
                ecolor="0.3", capsize=2, linewidth=0.8, label="range over the run")
    if req is not None:
        ax.plot(pos, req[k], linestyle="none", marker="_", markersize=14, markeredgewidth=2.5, color="black",
                label="required at that supply temperature")
        ratio = float(np.nanmin(flow[k] / req[k]))
        j = int(np.nanargmin(flow[k] / req[k]))
        ax.set_title(f"tray flow at the binding instant, {t[k]:g} {unit}: least served {labels[j]} at "
                     f"{ratio:.2f} x its requirement (red: below it)", fontsize=9)
    else:
        ax.set_title(f"tray flow at {t[k]:g} {unit} (the least tray flow); {note}", fontsize=9)
    one_rack = len({lab.split("/")[0] for lab in labels}) == 1 and "/" in labels[0]
    short = [lab.split("/", 1)[1] if one_rack else lab for lab in labels]
    step = max(1, math.ceil(n / 60))
    ax.set_xticks(pos[::step], short[::step], rotation=90, fontsize=7)
    ax.set_xlabel("tray, in manifold order (instance path)")
    ax.set_ylabel("flow [L/min]")
    ax.set_xlim(-0.8, n - 0.2)
    ax.grid(axis="y", alpha=0.3)
    _legend(ax)
    _title(fig, run, "Tray flow along the manifold")
    return fig


def fig_cdu(run: Run):
    _need(run, "cdu")

    def draw_temp(ax, t):
        _plot_channel(ax, run, t, "cdu/supply_temp", "CDU supply", members="cdu/labels")
        _plot_channel(ax, run, t, "cdu/return_temp", "CDU return", members="cdu/labels")
        _plot_channel(ax, run, t, "facility/supply_temp", "facility supply", linestyle="--")
        _plot_channel(ax, run, t, "facility/return_temp", "facility return", members="cdu/labels", linestyle="--")

    def draw_flow(ax, t):
        _plot_channel(ax, run, t, "cdu/flow", "CDU", members="cdu/labels")
        if not _plot_channel(ax, run, t, "row/flow", "row"):
            _plot_channel(ax, run, t, "rack/flow", "secondary (rack)", members="rack/labels")
        _plot_channel(ax, run, t, "facility/flow", "facility", linestyle="--")

    return _time_panels(run, "Pumps and CDU", [
        (("cdu/pump_speed",), "pump speed [%]", "pump speeds (0 = stopped)",
         lambda ax, t: _plot_channel(ax, run, t, "cdu/pump_speed", "speed", 100.0, "cdu/pump_labels")),
        (("cdu/pump_power",), "pump power [kW]", "pump electrical power",
         lambda ax, t: _plot_channel(ax, run, t, "cdu/pump_power", "power", 1e-3, "cdu/pump_labels")),
        (("cdu/supply_temp", "cdu/return_temp", "facility/supply_temp", "facility/return_temp"), "temperature [degC]",
         "CDU secondary (coolant) and facility water", draw_temp),
        (("cdu/flow", "row/flow", "rack/flow", "facility/flow"), "flow [L/min]", "flows", draw_flow)], 2.3)


def fig_margins(run: Run):
    _need(run, "margins")
    rows = [r for r in run.margins if r["status"]]
    fig, axes = _figure(len(rows), 0.75, width=9.0)
    for ax, r in zip(axes, rows):
        v, lim, st = r["value"], r["limit"], r["status"]
        colour = STATUS_COLOURS.get(st, "tab:gray")
        finite = math.isfinite(v)
        if finite:
            ax.barh([0], [v], color=colour, height=0.6)
        if lim is not None:
            ax.axvline(lim, color="black", linestyle="--", linewidth=1.5)
        span = [x for x in (0.0, v if finite else 0.0, lim if lim is not None else 0.0)]
        a, b = min(span), max(span)
        pad = 0.15 * (b - a) if b > a else 1.0
        ax.set_xlim(a - max(pad * (a < 0), 0.03 * (b - a + pad)), b + pad * 2.2)
        sense = {"min": ">=", "max": "<="}.get(r["sense"], "vs")
        text = (f"{v:.4g} {r['unit']}" if finite else "n/a") + f"  {st.upper()} (limit {sense} {lim:g})"
        ax.text(0.99, 0.5, text, transform=ax.transAxes, ha="right", va="center", fontsize=8,
                color=colour if st != "ok" else "black", fontweight="bold" if st != "ok" else "normal")
        ax.set_yticks([])
        ax.set_ylabel(f"{r['name']} [{r['unit']}]", rotation=0, ha="right", va="center", fontsize=8)
        ax.set_xlabel(f"[{r['unit']}]", fontsize=7, labelpad=1)
        ax.tick_params(axis="x", labelsize=7)
    verdict = run.tel.attrs.get("verdict", "")
    _title(fig, run, f"Margins against their limits (dashed), verdict {str(verdict).upper() or 'n/a'}")
    return fig


FIGURES = {"rack": fig_rack, "junction": fig_junction, "trays": fig_trays, "cdu": fig_cdu, "margins": fig_margins}


def figures(run: Run, kinds=KINDS, strict: bool = False):
    """Yield (kind, figure or None, why it was skipped). ``strict``: a kind without data
    is a :class:`TwinInputError` naming the file and the channel."""
    for kind in kinds:
        try:
            yield kind, FIGURES[kind](run), ""
        except NoData as exc:
            if strict:
                raise TwinInputError(run.path, exc.channel, f"{exc.reason}: nothing to draw for --kind {kind}") from None
            yield kind, None, f"{exc.channel}: {exc.reason}"


def png_bytes(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


def write_png(fig, path: Path, option: str = "-o") -> None:
    """Save a figure, through a scratch file renamed into place."""
    check_replaceable(path, PNG_MAGIC, "a PNG image", option)
    write_whole(path, png_bytes(fig), option)


def plot(path, kinds=None, out=None) -> list:
    """``twin plot``: draw ``kinds`` (None: every kind the file has data for) of the results
    file ``path`` into ``out`` (a ``.png`` file for one kind, else a directory; default:
    beside the file, ``STEM-KIND.png``). Returns [(kind, written path or None, why skipped)]."""
    path = Path(path)
    strict = bool(kinds)
    kinds = list(dict.fromkeys(kinds)) if kinds else list(KINDS)
    if out is not None and Path(out).suffix.lower() == ".png":
        if len(kinds) != 1:
            raise TwinInputError(out, "-o", f"names one PNG file but {len(kinds)} kinds would be drawn; "
                                            "give one --kind or a directory")
        target = lambda kind: Path(out)  # noqa: E731
    elif out is not None and Path(out).suffix:
        raise TwinInputError(out, "-o", "must be a .png file or a directory")
    else:
        folder = Path(out) if out is not None else path.parent
        if folder.exists() and not folder.is_dir():
            raise TwinInputError(folder, "-o", "exists and is not a directory")
        target = lambda kind: folder / f"{path.stem}-{kind}.png"  # noqa: E731
    run = load_run(path)
    done = []
    for kind, fig, why in figures(run, kinds, strict):
        if fig is None:
            done.append((kind, None, why))
            continue
        write_png(fig, target(kind))
        done.append((kind, target(kind), ""))
    return done


# --------------------------------------------------------------------------- comparing results files

def compare_keys(paths) -> list:
    """Column names of the files compared: their stems, or their paths where stems repeat."""
    stems = [Path(p).stem for p in paths]
    keys = [s if stems.count(s) == 1 else str(p) for s, p in zip(stems, paths)]
    return [k if keys.count(k) == 1 else f"{k} ({i + 1})" for i, k in enumerate(keys)]


def compare_table(runs: list, keys: list) -> str:
    """The files' margins side by side: value and status per file, limit, the difference
    of each file from the first."""
    names = list(dict.fromkeys(r["name"] for run in runs for r in run.margins or ()))
    width = max([len(n) for n in names] + [len("margin")])
    cw = [max(len(k), 16) for k in keys]
    lines = [f"{'margin':<{width}}  {'unit':<8} {'limit':>8}  " + "  ".join(f"{k:>{w}}" for k, w in zip(keys, cw))
             + ("  " + "  ".join(f"{'d ' + k:>{max(len(k) + 2, 10)}}" for k in keys[1:]))]

    def cell(r):
        if r is None:
            return "-"
        v = f"{r['value']:.3f}" if math.isfinite(r["value"]) else "n/a"
        return f"{v} {r['status']}".rstrip()

    for n in names:
        rs = [run.margin(n) for run in runs]
        first = next(r for r in rs if r is not None)
        limits = {r["limit"] for r in rs if r is not None and r["limit"] is not None}
        limit = "/".join(f"{x:g}" for x in sorted(limits)) if limits else ""
        line = f"{n:<{width}}  {first['unit']:<8} {limit:>8}  " + "  ".join(f"{cell(r):>{w}}" for r, w in zip(rs, cw))
        diffs = []
        for r, k in zip(rs[1:], keys[1:]):
            d = r["value"] - rs[0]["value"] if r is not None and rs[0] is not None else math.nan
            diffs.append(f"{d:>+{max(len(k) + 2, 10)}.3f}" if math.isfinite(d) else f"{'':>{max(len(k) + 2, 10)}}")
        lines.append((line + "  " + "  ".join(diffs)).rstrip())
    for run, k in zip(runs, keys):
        if not run.margins:
            lines.append(f"{k}: no margins ({'measured telemetry' if run.measured else 'none in the file'})")
        elif "complete" in run.tel.attrs and not bool(run.tel.attrs["complete"]):
            lines.append(f"{k}: run ended early: {run.tel.attrs.get('end_reason', '')}")
    spans = [_span(run) for run in runs]
    if len({s for s, _ in spans}) > 1:  # margins over different times: a throttled time, an energy
        lines.append("simulated spans differ: " + ", ".join(
            f"{k} {s:g} s" + (f" of {d:g} s" if d is not None and d != s else "") for k, (s, d) in zip(keys, spans)))
    lines.append("verdict: " + ", ".join(f"{k} {str(run.tel.attrs.get('verdict', 'n/a')).upper()}"
                                         for run, k in zip(runs, keys)))
    return "\n".join(lines)


def _span(run: Run) -> tuple:
    """(the time a file covers [s], the duration its run was set for or None): a
    simulation's end time, else (measured) its time axis."""
    a = run.tel.attrs
    if "end_time_s" in a:
        return float(a["end_time_s"]), float(a["duration_s"]) if "duration_s" in a else None
    t = run.tel.time
    return (float(t[-1] - t[0]) if t.size else 0.0), None


def fig_compare(runs: list, keys: list):
    """Rack temperatures, the hottest GPU against its throttle temperature, and the rack
    heat of each file on shared axes (a colour per file)."""
    span = max((float(r.tel.time[-1] - r.tel.time[0]) if r.tel.time.size else 0.0) for r in runs)
    _, unit, scale = _time(np.zeros(1), span)
    fig, axes = _figure(3, 2.8, sharex=True)
    ax_t, ax_j, ax_p = axes
    colours = [f"C{i % 10}" for i in range(len(runs))]
    drew = [False, False, False]
    for run, key, c in zip(runs, keys, colours):
        t = run.tel.time / scale
        drew[0] |= _plot_channel(ax_t, run, t, "rack/supply_temp", f"{key} supply", members="rack/labels",
                                 color=c, linestyle="--")
        drew[0] |= _plot_channel(ax_t, run, t, "rack/return_temp", f"{key} return", members="rack/labels", color=c)
        name = "gpu/junction_temp_max" if run.has("gpu/junction_temp_max") else "gpu/junction_temp"
        if run.has(name):
            with _quiet():
                ax_j.plot(t, np.nanmax(np.asarray(run.tel[name], dtype=float).reshape(t.size, -1), axis=1),
                          **_lone(t, dict(color=c, label=f"{key} hottest GPU")))
            drew[1] = True
            labels = run.tel.labels.get("gpu/labels", [])
            thr, _ = _throttle(run, labels) if labels else (None, "")
            if thr is not None:
                ax_j.axhline(float(np.nanmin(thr)), color=c, linestyle=":", linewidth=1.5,
                             label=f"{key} throttle {np.nanmin(thr):g} degC")
        whole = "row" if run.has("row/liquid_heat") else "rack"
        drew[2] |= _plot_channel(ax_p, run, t, f"{whole}/liquid_heat", f"{key} {whole} liquid heat", 1e-3,
                                 "rack/labels", color=c)
    for ax, ylabel, title, ok in ((ax_t, "temperature [degC]", "rack supply (dashed) and return", drew[0]),
                                  (ax_j, "junction [degC]", "hottest GPU (dotted: throttle temperature)", drew[1]),
                                  (ax_p, "heat [kW]", "heat into the coolant", drew[2])):
        ax.set_ylabel(ylabel)
        ax.set_xlabel(f"time [{unit}]")
        ax.set_title(title if ok else f"{title}: not in these files", fontsize=9)
        ax.grid(alpha=0.3)
        _legend(ax)
    fig.suptitle("Compared: " + " vs ".join(keys), fontsize=11)
    return fig
