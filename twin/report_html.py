"""``twin report``: one self-contained HTML page of a results file (docs/plots.md).

The page holds the figures of :mod:`twin.plots` as base64 PNG ``data:`` URIs, the margins
table, the verdict, how the run ended, the scenario (the root attribute ``scenario``,
escaped, in a ``<pre>``) and its ``--set`` overrides. No script, no stylesheet or image
outside the page: it can be mailed or archived on its own.
"""
from __future__ import annotations

import base64
import html
import json
import math
from pathlib import Path

from .errors import TwinInputError
from .files import check_replaceable, write_whole

# The first line of every page this module writes: an existing file is replaced only when
# it starts with it (a report written earlier), never any other file.
MARK = "<!DOCTYPE html>\n<!-- twin report -->"

CSS = """
body { font-family: sans-serif; margin: 1.5em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 1.6em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 2px 6px; text-align: left; vertical-align: top; }
td.num { text-align: right; font-family: monospace; }
tr.ok td.status { background: #d9f2d9; } tr.fail td.status { background: #f7caca; font-weight: bold; }
tr.notjudged td.status { background: #e4e4e4; }
.verdict { font-size: 1.2em; font-weight: bold; padding: 0.3em 0.6em; display: inline-block; }
.verdict.ok { background: #d9f2d9; } .verdict.fail { background: #f7caca; } .verdict.other { background: #e4e4e4; }
pre { background: #f6f6f6; padding: 0.6em; font-size: 0.8em; overflow-x: auto; }
img { max-width: 100%; }
"""


def _e(x) -> str:
    return html.escape(str(x), quote=True)


def _num(v, unit: str = "") -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a" if v is not None else ""
    return f"{int(round(v))}" if unit == "1" and float(v).is_integer() else f"{v:.4g}"


def margins_table(margins: list) -> str:
    head = "".join(f"<th>{h}</th>" for h in ("margin", "value", "unit", "limit", "status", "instance", "note"))
    rows = []
    for r in margins:
        cls = (r["status"] or "figure").replace(" ", "")
        sense = {"min": "&ge; ", "max": "&le; "}.get(r.get("sense", ""), "")
        limit = "" if r["limit"] is None else sense + _e(_num(r["limit"], r["unit"]))
        rows.append(f'<tr class="{cls}"><td>{_e(r["name"])}</td><td class="num">{_e(_num(r["value"], r["unit"]))}</td>'
                    f'<td>{_e(r["unit"])}</td><td class="num">{limit}</td><td class="status">{_e(r["status"])}</td>'
                    f'<td>{_e(r.get("instance", ""))}</td><td>{_e(r.get("note", ""))}</td></tr>')
    return f"<table><tr>{head}</tr>\n" + "\n".join(rows) + "\n</table>"


def build(path) -> str:
    """The report page of the results file ``path``, as text."""
    from .plots import figures, load_run, png_bytes

    run = load_run(path)
    a = run.tel.attrs
    out = [MARK, '<html lang="en"><head><meta charset="utf-8">', f"<title>twin report: {_e(run.name)}</title>",
           f"<style>{CSS}</style></head><body>", f"<h1>twin report: {_e(run.path.name)}</h1>"]
    verdict = str(a.get("verdict", "")) if run.margins else ""
    cls = {"ok": "ok", "fail": "fail"}.get(verdict, "other")
    if verdict:
        line = f"verdict: {verdict.upper()}"
        judged = [r for r in run.margins if r["status"]]
        bad = [r["name"] for r in judged if r["status"] != "ok"]
        line += f": {', '.join(bad)}" if bad else f": all {len(judged)} margins within their limits"
    else:
        line = "no verdict: " + ("measured telemetry holds no margins" if run.measured else "no margins in the file")
    out.append(f'<p class="verdict {cls}">{_e(line)}</p>')
    t = run.tel.time
    facts = [("file", run.path), ("kind", "measured telemetry" if run.measured else "simulation"),
             ("source", a.get("source", "")), ("samples", f"{t.size}, {t[0]:g}-{t[-1]:g} s" if t.size else "0"),
             ("coolant", a.get("coolant", "")), ("rack", a.get("rack", "")),
             ("software version", a.get("software_version", ""))]
    if "complete" in a:
        facts.append(("run", ("complete" if a["complete"] else "INCOMPLETE") + f" ({a.get('end_reason', '')})"))
    out.append("<table>" + "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in facts if v != "")
               + "</table>")
    out.append("<h2>Margins</h2>")
    out.append(margins_table(run.margins) if run.margins else f"<p>{_e(line)}.</p>")
    out.append("<h2>Figures</h2>")
    skipped = []
    for kind, fig, why in figures(run):
        if fig is None:
            skipped.append((kind, why))
            continue
        data = base64.b64encode(png_bytes(fig)).decode("ascii")
        out.append(f'<figure><img alt="{_e(kind)}" src="data:image/png;base64,{data}"></figure>')
    if skipped:
        out.append("<p>Not drawn:</p><ul>" + "".join(f"<li>{_e(k)}: {_e(w)}</li>" for k, w in skipped) + "</ul>")
    out.append("<h2>Scenario</h2>")
    overrides = a.get("overrides", "")
    try:
        overrides = json.loads(overrides) if overrides else []
    except (TypeError, ValueError):
        overrides = [str(overrides)]
    out.append("<p>Overrides (<code>--set</code>): " + (", ".join(f"<code>{_e(o)}</code>" for o in overrides)
                                                       if overrides else "none") + "</p>")
    scen = a.get("scenario", "")
    out.append(f"<pre>{_e(scen)}</pre>" if scen else "<p>No scenario in the file.</p>")
    out.append("</body></html>\n")
    return "\n".join(out)


def write(path, out=None) -> Path:
    """Write the report of ``path`` to ``out`` (default: beside it, ``STEM.html``)."""
    path = Path(path)
    out = Path(out) if out is not None else path.with_suffix(".html")
    if out.suffix.lower() not in (".html", ".htm"):
        raise TwinInputError(out, "-o", "must name a .html file")
    check_replaceable(out, MARK.encode(), "a report written by twin report")
    text = build(path)
    write_whole(out, text)
    return out
