"""The `twin` command line: ``run`` a scenario (telemetry, margins and a verdict), ``inspect``
a telemetry file, list the catalogue (``scenarios``), ``compare`` racks and ``check`` many
scenarios' margins against their limits and a baseline.

Bad input exits 2 with one line ``error: FILE: FIELD: MESSAGE`` on stderr and no
traceback; nothing is left half-written and no input is modified. Usage errors (an
unknown command or option, an option value that is not a number) are one line too:
``error: OPTION: MESSAGE``.

Imports are lazy: ``twin --help`` and most bad-input exits load click and the standard
library only, a scenario's schema (pydantic) is loaded when a scenario is read, the engine
(numba, scipy, h5py) only when a run starts.
"""
from __future__ import annotations

import math
import os
import signal
import sys
from pathlib import Path

import click

from .errors import Terminated, TwinInputError, clear_signals, did_you_mean, pending_signal, raise_signal

ALLOW_LARGE = "--allow-large"


def _say(line: str, code: int):
    click.echo(" ".join(line.splitlines()), err=True)
    sys.exit(code)


def interrupted_by(err: BaseException) -> tuple[str, int]:
    """(" by SIGTERM" or "", exit status) of an interruption."""
    cause = err if isinstance(err, KeyboardInterrupt) else (err.__cause__ or err.__context__)
    return (" by SIGTERM", 128 + signal.SIGTERM) if isinstance(cause, Terminated) else ("", 128 + signal.SIGINT)


class _Twin(click.Group):
    """The command group; its ``main`` reports every error on one line."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        import threading

        main_thread = threading.current_thread() is threading.main_thread()
        old = {}
        if main_thread:  # SIGTERM as Ctrl-C; both remembered (twin.errors.raise_signal); an ignored SIGINT stays so
            clear_signals()
            old[signal.SIGTERM] = signal.signal(signal.SIGTERM, raise_signal)
            if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
                old[signal.SIGINT] = signal.signal(signal.SIGINT, raise_signal)
        try:
            code = self._main(args, prog_name, complete_var, **extra)
        finally:
            for sig, handler in old.items():
                signal.signal(sig, handler)
        if not standalone_mode:
            return code
        sys.exit(code if isinstance(code, int) else 0)

    def invoke(self, ctx):
        """The command; an interruption leaves it as ``click.Abort`` at once (click's own
        handling of a KeyboardInterrupt prints an empty line before our one line)."""
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt as err:  # Terminated (SIGTERM) too: interrupted_by reads the cause
            raise click.Abort() from err

    def _main(self, args, prog_name, complete_var, **extra):
        code = None
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
            if pending_signal():  # a Ctrl-C lost in a finalizer (twin.errors): the command did not end whole
                raise click.Abort() from (Terminated() if pending_signal() == signal.SIGTERM else KeyboardInterrupt())
        except TwinInputError as err:
            _say(f"error: {err.line()}", 2)
        except click.exceptions.NoArgsIsHelpError as err:  # bare `twin`: the help, not an error
            click.echo(err.ctx.get_help())
            code = 0
        except click.UsageError as err:
            _say(f"error: {_usage(err, self)}", 2)
        except click.ClickException as err:
            _say(f"error: {err.format_message()}", err.exit_code)
        except click.Abort as err:
            by, status = interrupted_by(err)
            _say(f"error: interrupted{by}", status)
        return code


def _usage(err: click.UsageError, group: click.Group) -> str:
    """A click usage error as ``WHERE: message`` (the option, argument or command)."""
    if isinstance(err, click.NoSuchOption):
        return f"{err.option_name}: no such option" + did_you_mean(err.option_name, err.possibilities or [])
    if isinstance(err, click.BadOptionUsage):
        return f"{err.option_name}: {err.message}"
    if isinstance(err, click.BadParameter) and err.param is not None:
        where = err.param.opts[0] if err.param.param_type_name == "option" else err.param.human_readable_name
        if isinstance(err, click.MissingParameter):
            return f"{where}: missing {err.param.param_type_name}"
        return f"{where}: {err.message}"
    ctx = err.ctx
    where = ctx.command_path if ctx is not None else "twin"
    message = err.format_message()
    if message.startswith("No such command"):
        name = message.split("'")[1] if "'" in message else ""
        message = f"no such command {name!r}" + did_you_mean(name, group.commands)
    return f"{where}: {message}"


@click.group(cls=_Twin, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="rack-twin")
def cli():
    """rack-twin: digital twin of a liquid-cooled AI rack."""


@cli.command()
@click.argument("scenario")
@click.option("-o", "--output", type=click.Path(path_type=Path), default=None,
              help="telemetry HDF5 to write (missing directories are created; an existing file is replaced only "
                   "when it is rack-twin telemetry, never when it is an input)")
@click.option("--duration", type=float, default=None, help="override simulation.duration_s [s]")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="override a scenario field (dotted key)")
@click.option("--strict", is_flag=True, help="exit 1 when any margin fails or cannot be judged")
@click.option("--json", "as_json", is_flag=True, help="print the margins as JSON (for scripts) instead of the table")
@click.option(ALLOW_LARGE, "allow_large", is_flag=True,
              help="run even when the estimate passes 10 GB of telemetry (2 GB in memory) or 1 h of computing")
def run(scenario, output, duration, overrides, strict, as_json, allow_large):
    """Simulate SCENARIO (a file, or a catalogue name such as reference-w32 or faults/cdu-trip),
    write telemetry, print the margins table and a verdict.

    Exit status: 0 when the run finished (whatever its margins; with --strict only when
    every margin is ok), 1 with --strict when a margin fails or cannot be judged, 2 on
    bad input, 130 / 143 when interrupted by SIGINT / SIGTERM (the file is kept, marked
    incomplete)."""
    from .budget import check
    from .catalogue import resolve
    from .files import check_output
    from .sources import gather

    options = {"simulation.duration_s": (duration, "--duration")} if duration is not None else None
    sources = gather(resolve(scenario), list(overrides), options)
    from .scenario import validate  # the schema (pydantic) once the files have been read

    loaded = validate(sources)
    s = loaded.scenario
    if output is not None:
        check_output(output, loaded.inputs)
    if not allow_large:
        check(s, loaded.where, in_memory=output is None, flag=ALLOW_LARGE)
    from .engine import simulate

    provenance = dict(source=str(scenario), overrides=list(overrides))
    try:
        result = simulate(s, output=output, provenance=provenance)
    except TwinInputError as err:  # found while building: a fault target not in this rack
        if err.file == "<scenario>":
            err.file = str(loaded.where(err.field))
        raise
    margins, end = result.margin_table, result.end
    if as_json:
        import json
        click.echo(json.dumps(dict(
            scenario=s.name, source=str(scenario), overrides=list(overrides),
            duration_s=s.simulation.duration_s, end_time_s=end.time_s, complete=end.is_complete,
            end_reason=end.reason, telemetry=str(output) if output is not None else None,
            verdict=margins.verdict, margins=margins.to_dicts()), indent=2, allow_nan=False))
    else:
        click.echo(f"scenario {s.name}: {_racks_line(s)}, {s.coolant.name}, facility {s.facility.supply_temp_c:g} degC, "
                   f"{s.simulation.duration_s:g} s simulated")
        if output is not None:
            click.echo(f"telemetry: {output}" + ("" if end.is_complete else " (marked incomplete)"))
        click.echo(margins.table())
        t_end = s.simulation.duration_s if end.is_complete else end.time_s
        for i, f in enumerate(s.faults):  # a fault scenario whose fault never struck must not read as judged
            if f.start_s >= t_end:
                click.echo(f"note: faults.{i} ({f.kind}{' ' + f.target if f.target else ''}) starts at {f.start_s:g} s, "
                           f"after the end of the run ({t_end:g} s): it did not happen")
        if not end.is_complete:
            click.echo(f"run ended early: {end.reason}")
        line = margins.verdict_line()
        if end.kind == "interrupted":
            line = line.replace("verdict:", f"verdict on the {end.time_s:g} s simulated before the interruption:", 1)
        click.echo(line)
    if end.kind == "interrupted":
        sys.exit(128 + end.signal)
    if strict and margins.verdict != "ok":
        sys.exit(1)


def _span_s(t0: float, t1: float) -> str:
    """A time span for a line of output: ``0-600 s``; on an epoch axis (seconds since
    1970, as imported ms stamps keep it) whole digits and the length, not ``1.74e+09``."""
    if max(abs(t0), abs(t1)) < 1e6:
        return f"{t0:g}-{t1:g} s"
    return f"{t0:.3f}-{t1:.3f} s ({t1 - t0:g} s)"


@cli.command("inspect")
@click.argument("telemetry", type=click.Path(path_type=Path))
def inspect_cmd(telemetry):
    """List the channels of a telemetry file with their units and shapes."""
    from .telemetry import read_telemetry

    tel = read_telemetry(telemetry)
    click.echo(f"{telemetry}: schema {tel.attrs.get('schema')}, {tel.time.size} samples, "
               + (_span_s(tel.time[0], tel.time[-1]) if tel.time.size else "no time"))
    if tel.attrs.get("measured"):
        cut = " (TRUNCATED source: its complete lines)" if tel.attrs.get("truncated") else ""
        source = tel.attrs.get("source") or ""
        click.echo(f"  measured: " + (f"imported from {source}" if source else "no source recorded") + cut)
    if "complete" in tel.attrs:
        state = "complete" if tel.attrs["complete"] else "INCOMPLETE"
        click.echo(f"  run: {state} ({tel.attrs.get('end_reason', '')}); verdict: {tel.attrs.get('verdict', 'n/a')}")
    for name in sorted(tel.channels):
        click.echo(f"  {name:<28} {str(tel.channels[name].shape):<14} {tel.units[name]}")


@cli.command("import")
@click.argument("source", type=click.Path(path_type=Path))
@click.option("--mapping", "-m", type=click.Path(path_type=Path), required=True,
              help="TOML mapping: the source's time column and unit, each channel's columns, unit and clock offset, "
                   "the output interval (docs/telemetry.md, Importing measured telemetry)")
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True,
              help="telemetry HDF5 to write (replaced only when it is rack-twin telemetry, never when it is an input)")
def import_cmd(source, mapping, output):
    """Import measured telemetry (SOURCE: CSV, wide or long; Parquet; HDF5) into the
    telemetry format: each column resampled onto one time grid, gaps kept as NaN.

    Exit status: 0 when the file was written (warnings, such as a truncated CSV whose
    complete lines were imported, go to stderr), 2 on bad input (nothing written)."""
    from .importer import _import, load_mapping

    m = load_mapping(mapping)
    report = _import(source, m, output)
    for text in report["warnings"]:
        click.echo("warning: " + " ".join(text.splitlines()), err=True)
    grid = report["grid"]
    click.echo(f"imported {source} ({report['format']}) -> {output}: {len(report['meta'])} channels, {grid.size} "
               f"samples every {m.interval_s:g} s, {_span_s(grid[0], grid[-1])}")
    width = max(len(n) for n in report["meta"])
    click.echo(f"  {'channel':<{width}}  {'source':<24} {'unit':>6} {'every [s]':>10} {'offset [s]':>10} "
               f"{'NaN out':>8} {'not num':>8}")
    for name, info in report["meta"].items():
        cols = info["source_columns"]
        src = cols[0] if len(cols) == 1 else f"{cols[0]} (+{len(cols) - 1})"
        src = src if len(src) <= 24 else "..." + src[-21:]
        every = max((x for x in info["source_interval_s"] if x == x), default=float("nan"))
        click.echo(f"  {name:<{width}}  {src:<24} {info['source_unit']:>6} {every:>10.4g} {info['offset_s']:>10.4g} "
                   f"{info['nan_samples']:>8} {info['non_numeric']:>8}")


@cli.command("scenarios")
@click.argument("folder", type=click.Path(path_type=Path), required=False)
def scenarios_cmd(folder):
    """List the runnable scenarios of the catalogue (or under FOLDER), one line each.

    `twin run NAME` runs a catalogue scenario by the name listed (with or without .toml).
    The catalogue is the repository's scenarios/ folder, or TWIN_SCENARIO_PATH."""
    from .catalogue import ENV, entries, folders

    roots = [folder] if folder is not None else folders()
    rows = []
    for root in roots:
        if not root.is_dir():
            raise TwinInputError(root, "FOLDER" if folder is not None else ENV, "not a directory")
        rows += [(f"{name}.toml", desc) for name, _, desc in entries(root)]
    width = max((len(name) for name, _ in rows), default=0)
    for name, desc in rows:
        click.echo(f"{name:<{width}}  {desc}".rstrip())


@cli.command("schema")
@click.option("-o", "--output", type=click.Path(path_type=Path), default=None,
              help="the JSON file to write (default: standard output)")
@click.option("--resolved", is_flag=True,
              help="the scenario after its includes are merged, with its required keys (default: a file as written)")
def schema_cmd(output, resolved):
    """The JSON Schema of the scenario format, for editor completion and validation.

    Default: a scenario file as written (include allowed, every key optional, unknown keys
    refused, types, ranges and units); the repository keeps it as
    schemas/scenario.schema.json. --resolved: the merged scenario, its required keys
    included."""
    import json

    from .scenario import json_schema

    text = json.dumps(json_schema(resolved), indent=2, allow_nan=False) + "\n"
    if output is None:
        click.echo(text, nl=False)
        return
    if output.is_dir():
        raise TwinInputError(output, "-o", "a directory, not a file")
    from .files import check_replaceable, write_whole

    check_replaceable(output, b'"$schema": "https://json-schema.org/', "a JSON Schema", within=256)
    write_whole(output, text)
    click.echo(f"schema: {output}")


KINDS = ("rack", "junction", "trays", "cdu", "margins")  # twin.plots.KINDS, without importing it


@cli.command("plot")
@click.argument("results", type=click.Path(path_type=Path))
@click.option("--kind", "kinds", multiple=True, type=click.Choice(KINDS),
              help="figure to draw (repeatable; default: every one the file has data for)")
@click.option("-o", "--output", type=click.Path(path_type=Path), default=None,
              help="a .png file (one --kind) or a directory for STEM-KIND.png (default: beside RESULTS)")
def plot_cmd(results, kinds, output):
    """Draw the figures of a results file (docs/plots.md): rack power and temperatures,
    GPU junction heat map, tray flow against requirement, pumps and CDU, margins.

    Without --kind a figure the file has no data for is skipped, and said so; a --kind the
    file has no data for exits 2 naming the channel."""
    from .plots import plot

    for kind, path, why in plot(results, kinds, output):
        click.echo(f"{kind}: {path}" if path is not None else f"{kind}: skipped ({why})")


@cli.command("report")
@click.argument("results", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), default=None,
              help="the HTML page to write (default: beside RESULTS, STEM.html)")
def report_cmd(results, output):
    """One self-contained HTML page of a results file: verdict, margins table, figures
    (embedded PNG), scenario and overrides."""
    from .report_html import write

    click.echo(f"report: {write(results, output)}")


def _is_results(arg: str) -> bool:
    return Path(arg).suffix.lower() in (".h5", ".hdf5")


def _compare_results(files, plot):
    from .plots import compare_keys, compare_table, fig_compare, load_run, write_png

    if len(files) < 2:
        raise TwinInputError(files[0], "", "compare needs two results files or more")
    if plot is not None and plot.suffix.lower() != ".png":
        raise TwinInputError(plot, "--plot", "must name a .png file")
    runs = [load_run(f) for f in files]
    if plot is not None:
        from .files import PNG_MAGIC, prepare_output

        prepare_output(plot, PNG_MAGIC, "a PNG image", "--plot")
    keys = compare_keys(files)
    click.echo(compare_table(runs, keys))
    if plot is not None:
        write_png(fig_compare(runs, keys), plot, "--plot")
        click.echo(f"plot: {plot}")


@cli.command("compare")
@click.argument("scenarios", nargs=-1, required=True)
@click.option("--facility", "facilities", multiple=True, type=float, default=(32.0, 45.0), show_default=True,
              help="facility supply temperatures to compare at [degC] (scenarios only)")
@click.option(ALLOW_LARGE, "allow_large", is_flag=True, help="run even when a run's estimate passes the limits")
@click.option("--plot", "plot", type=click.Path(path_type=Path), default=None,
              help="results files only: a PNG of their rack temperatures, hottest GPU and heat on shared axes")
@click.pass_context
def compare_cmd(ctx, scenarios, facilities, allow_large, plot):
    """Steady figures of several scenarios (files or catalogue names) side by side, one
    column per scenario (its name, or its path where names repeat).

    Given results files (.h5) instead, their margins side by side (value and status, the
    difference from the first file), and with --plot their time series on shared axes."""
    results = [_is_results(a) for a in scenarios]
    if any(results):
        if not all(results):
            bad = scenarios[results.index(False)]
            raise TwinInputError(bad, "", "compare takes scenarios or results files (.h5), not both")
        if ctx.get_parameter_source("facilities") != click.core.ParameterSource.DEFAULT:
            raise TwinInputError(scenarios[0], "--facility", "applies to scenarios, not to results files")
        _compare_results(scenarios, plot)
        return
    if plot is not None:
        raise TwinInputError(scenarios[0], "--plot", "only with results files (.h5)")
    import numpy as np

    from .budget import check
    from .catalogue import resolve
    from .scenario import load

    runs = []  # per scenario: the scenario at each facility temperature
    for arg in scenarios:
        path = resolve(arg)
        at = [load(path, options={"facility.supply_temp_c": (t, f"--facility {t:g}")}) for t in facilities]
        short = at[0].scenario.with_overrides({"simulation.duration_s": 2 * at[0].scenario.simulation.output_interval_s})
        if not allow_large:
            check(short, at[0].where, in_memory=True, flag=ALLOW_LARGE)
        runs.append((arg, [a.scenario for a in at]))
    names = [r[1][0].name for r in runs]
    keys = [n if names.count(n) == 1 else arg for n, (arg, _) in zip(names, runs)]
    keys = [k if keys.count(k) == 1 else f"{k} ({i + 1})" for i, k in enumerate(keys)]
    from .engine import simulate

    cols = {}
    for key, (_, variants) in zip(keys, runs):
        col = {}
        for t, s in zip(facilities, variants):
            r = simulate(s, duration_s=2 * s.simulation.output_interval_s)
            r.end.reraise()
            tel = r.telemetry()
            if t == facilities[0]:
                # a row: its totals, its least-served rack's flow and its largest rack dP
                whole = "row" if "row/flow" in tel.channels else "rack"
                col["IT power [kW]"] = tel[f"{whole}/it_power"][-1] / 1e3
                col["liquid heat [kW]"] = tel[f"{whole}/liquid_heat"][-1] / 1e3
                col["rack flow [L/min]"] = float(np.min(tel["rack/flow"][-1]))
                col["flow per kW [L/min/kW]"] = tel[f"{whole}/flow"][-1] / (tel[f"{whole}/liquid_heat"][-1] / 1e3)
                col["rack dP [kPa]"] = float(np.max(tel["rack/dp"][-1]))
                col["min tray flow / required"] = r.margins["tray_flow_ratio_min"]
                col["CDU pump power [kW]"] = r.margins["cdu_pump_power_mean_kw"]
            col[f"GPU Tj max at W{t:g} [degC]"] = r.margins["gpu_junction_max_c"]
            col[f"GPU margin at W{t:g} [K]"] = r.margins["gpu_junction_margin_k"]
        cols[key] = col
    rows = list(next(iter(cols.values())))
    w0 = max(len(k) for k in rows)
    ws = [max(len(k), 9) for k in keys]
    click.echo(f"{'':<{w0}}  " + "  ".join(f"{k:>{w}}" for k, w in zip(keys, ws)))
    for row in rows:
        click.echo(f"{row:<{w0}}  " + "  ".join(f"{cols[k][row]:>{w}.2f}" for k, w in zip(keys, ws)))


@cli.command("check")
@click.argument("scenarios", nargs=-1)
@click.option("--baseline", "baseline_path", type=click.Path(path_type=Path), default=None,
              help="baseline TOML to compare with (default: .twin/baseline.toml of the repository)")
@click.option("--update-baseline", "update", is_flag=True,
              help="rewrite the baseline's entries that changed (and add new ones), print the diff")
@click.option("--reason", default=None, metavar="TEXT", help="with --update-baseline: the reason of the changed entries")
@click.option("--junit", "junit_path", type=click.Path(path_type=Path), default=None,
              help="write a JUnit XML report (one testsuite per scenario, one testcase per margin)")
@click.option("--jobs", "-j", type=click.IntRange(min=1), default=None, help="scenarios run at once (default: the CPUs)")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="override a field of every scenario")
@click.option("--duration", type=float, default=None,
              help="simulate every scenario this long [s] (baselines taken over another duration are not compared)")
@click.option(ALLOW_LARGE, "allow_large", is_flag=True, help="run even when a run's estimated computing time passes the limit")
def check_cmd(scenarios, baseline_path, update, reason, junit_path, jobs, overrides, duration, allow_large):
    """Run scenarios (files, catalogue names or directories; none: the whole catalogue) in
    parallel, in memory, and judge every pass/fail margin against its limit and every
    baselined margin against the baseline (docs/check.md). Prints a table of scenario,
    margin, value, limit, baseline, change and verdict.

    Exit status: 0 when every margin is within its limit (or accepted by the baseline) and
    none regressed beyond its tolerance, 1 otherwise or when a scenario failed to run, 2 on
    bad input (a missing scenario, a malformed baseline)."""
    from .check import main as check_main

    sys.exit(check_main(scenarios, baseline_path, update, reason, junit_path, jobs, overrides, duration,
                        out=click.echo, allow_large=allow_large))


@cli.command("size")
@click.argument("scenario")
@click.option("--vary", required=True, metavar="KEY",
              help="the scenario key to size (dotted, as --set): controls.flow_setpoint_lpm, facility.supply_temp_c, "
                   "controls.pump_speed_fraction, 'overrides.\"rack01/tray09/gpu1\".r_tim_k_per_w', ...")
@click.option("--target", required=True, metavar="MARGIN=VALUE",
              help="the margin and the value it must reach, e.g. gpu_junction_margin_k=5")
@click.option("--range", "range_text", metavar="LO:HI", default=None,
              help="range of KEY searched (default: per key, e.g. a tenth to four times the scenario's value)")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="override a scenario field (dotted key)")
@click.option("--sweep", "sweep_text", metavar="KEY2=A:B:N", default=None,
              help="answer at N values of a second key from A to B, e.g. facility.supply_temp_c=17:45:8")
@click.option("--duration", type=float, default=None,
              help="length of each run [s] (default: the scenario's simulation.duration_s)")
@click.option("--tol", type=float, default=None,
              help="stop when the margin is this close to its target, in its unit (default 1e-3 of the target, "
                   "at least 1e-3)")
@click.option("--csv", "csv_path", type=click.Path(path_type=Path), default=None, help="write the answers as CSV")
@click.option("--plot", "plot_path", type=click.Path(path_type=Path), default=None,
              help="with --sweep: a PNG of the answer against the swept key")
@click.option("--json", "as_json", is_flag=True, help="print the answers as JSON instead of text")
@click.option(ALLOW_LARGE, "allow_large", is_flag=True, help="run even when a run's estimate passes the limits")
def size_cmd(scenario, vary, target, range_text, overrides, sweep_text, duration, tol, csv_path, plot_path, as_json,
             allow_large):
    """Find the value of KEY at which a margin of SCENARIO reaches its target (a root
    search over runs of the scenario), optionally at each value of a second key.

    Each run is the scenario's own (its steady start and its duration, or --duration), so
    the answer is what `twin run --set KEY=VALUE` gives. Exit status: 0 when every answer
    was found, 1 when the target is unreachable in the range (the margin at both ends is
    printed) at any point, 2 on bad input."""
    from .catalogue import resolve
    from .sizing import check_outputs, report, size, to_json, write_csv, write_plot

    if duration is not None and not (math.isfinite(duration) and duration > 0):
        raise TwinInputError("--duration", "", f"must be a positive number of seconds, got {duration:g}")
    check_outputs(csv_path, plot_path, sweep_text is not None)
    sz = size(resolve(scenario), list(overrides), vary, target, range_text, sweep_text, duration, tol,
              allow_large, ALLOW_LARGE)
    sz.scenario = str(scenario)
    if csv_path is not None:
        write_csv(sz, csv_path)
    if plot_path is not None:
        write_plot(sz, plot_path)
    if as_json:
        import json
        click.echo(json.dumps(to_json(sz), indent=2, allow_nan=False))
    else:
        click.echo(report(sz))
    if not sz.all_found:
        sys.exit(1)


@cli.command("sweep")
@click.argument("sweep_file", metavar="SWEEP.toml", type=click.Path(path_type=Path))
@click.option("--scheduler", default=None, metavar="ADDRESS",
              help="a running Dask scheduler (tcp://host:8786); default: a local cluster on this machine")
@click.option("-o", "--output", type=click.Path(path_type=Path), default=None,
              help="the results table (Parquet; default results/STEM.parquet); finished runs are kept in "
                   "OUTPUT.parts/, so the same command after an interruption runs only the missing ones")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="worker processes of the local cluster (default: one per core)")
@click.option("--limit", type=click.IntRange(min=0), default=None, help="run at most N of the missing runs")
@click.option("--retry-failed", is_flag=True, help="run the runs recorded as failed again")
def sweep_cmd(sweep_file, scheduler, output, workers, limit, retry_failed):
    """Run many variants of a scenario on Dask (README, Sweeps): a grid, listed rows, a
    random, Latin hypercube, Sobol or Morris sample, unit-to-unit spread replicates. One
    table row per run: its parameters, the collected margins and channel summaries,
    status and error, wall seconds. A Sobol or Morris sample prints the sensitivity of
    each collected value (also written beside the table).

    Exit status: 0 when every run was done (failed runs are rows, not errors), 2 on bad
    input, 130 when interrupted (finished runs are kept)."""
    if workers is not None and scheduler is not None:
        raise TwinInputError(sweep_file, "--workers", "sets the local cluster's size; with --scheduler the "
                                                      "cluster's own workers run the sweep")
    from .sweeps import spec

    plan = spec.load(sweep_file)  # bad input exits 2 before any cluster starts
    if output is None:
        output = Path("results") / f"{sweep_file.stem}.parquet"
    if output.is_dir():
        raise TwinInputError(output, "-o", "is a directory")
    if output.suffix.lower() != ".parquet":
        raise TwinInputError(output, "-o", "must name a .parquet file")
    if output.is_file():  # an earlier table of this sweep is read and replaced, nothing else
        with open(output, "rb") as fh:
            if fh.read(4) != b"PAR1":  # the Parquet format's magic number
                raise TwinInputError(output, "-o", "exists and is not a Parquet table (an earlier result); "
                                                   "refusing to overwrite it")
    from .files import probe_output

    probe_output(output, "-o")  # its folder takes OUTPUT.parts/ too: refused now, not after the runs
    from .sweeps import outputs_of, sensitivity_paths, sweep

    sm = plan.spec.sample
    click.echo(f"sweep {plan.spec.name or sweep_file.stem}: {len(plan.runs)} runs of {plan.base_path.name} "
               f"on {scheduler or f'a local cluster of {workers or os.cpu_count()} workers'}")
    try:
        df = sweep(sweep_file, scheduler=scheduler, output=output, workers=workers, limit=limit,
                   retry_failed=retry_failed, progress=True)
    except KeyboardInterrupt as err:
        by, status = interrupted_by(err)
        _say(f"error: interrupted{by}; finished runs are kept in {output}.parts (run the same command to go on)",
             status)
    a = df.attrs
    ok = int((df["status"] == "ok").sum()) if "status" in df else 0
    click.echo(f"runs: {len(df)} of {len(plan.runs)} recorded ({a['executed']} now, {a['skipped']} earlier); "
               f"{ok} ok, {len(df) - ok} failed; {a['elapsed_s']:.1f} s")
    if len(df) - ok:
        bad = df[df["status"] != "ok"].iloc[0]
        click.echo(f"first failure: run {bad['run']}: {bad['error']}")
    cols = outputs_of(df, plan)
    good = df[df["status"] == "ok"] if "status" in df else df
    if cols and len(good):
        width = max(len(c) for c in cols)
        click.echo(f"{'value':<{width}}  {'min':>10} {'median':>10} {'max':>10}  (ok runs)")
        for c in cols:
            v = good[c]
            click.echo(f"{c:<{width}}  {v.min():>10.4g} {v.median():>10.4g} {v.max():>10.4g}")
    click.echo(f"results: {output}")
    if "sensitivity" in a:
        from .sweeps.sensitivity import text

        click.echo(text(a["sensitivity"], sm.method))
        csv, js = sensitivity_paths(output)
        click.echo(f"sensitivity: {csv}, {js}")
    elif sm is not None and sm.method in spec.SENSITIVITY:
        click.echo(f"sensitivity: after all {len(plan.runs)} runs (run the same command to go on)")


def _calibrate(telemetry, scenario, spec, overrides):
    from .calibration.report import run as calibrate_run
    from .catalogue import resolve
    from .scenario import load

    loaded = load(resolve(scenario), list(overrides))
    try:
        return calibrate_run(loaded.scenario, telemetry, spec)
    except TwinInputError as err:
        if err.file == "<spec>":
            err.file = str(spec)
        raise
    except KeyboardInterrupt as err:  # Ctrl-C, SIGTERM: a fit stopped halfway has no answer to write
        signum = getattr(err, "signum", 2)
        _say(f"error: {telemetry}: fit interrupted by {'SIGTERM' if signum == 15 else 'SIGINT'}; nothing written",
             128 + signum)


def _duration_s(text: str) -> float:
    """``1h``, ``30min``, ``600s`` or a number of seconds."""
    units = (("min", 60.0), ("h", 3600.0), ("s", 1.0), ("d", 86400.0))
    for suffix, scale in units:
        if text.endswith(suffix):
            try:
                value = float(text[: -len(suffix)]) * scale
            except ValueError:
                break
            if value > 0 and math.isfinite(value):
                return value
            break
    else:
        try:
            value = float(text)
            if value > 0 and math.isfinite(value):
                return value
        except ValueError:
            pass
    raise TwinInputError("--windows", "", f"{text!r} is not a duration (e.g. 1h, 30min, 600s)")


def _drift(telemetry, scenario, spec, overrides, window, plot, as_json):
    import json

    from .calibration.report import trend, trend_plot, trend_table, windows
    from .catalogue import resolve
    from .scenario import load

    from .files import PNG_MAGIC, prepare_output, writing

    if plot is not None:  # before the fits, which take minutes
        if plot.suffix.lower() != ".png":
            raise TwinInputError(plot, "--plot", "must name a .png file")
        prepare_output(plot, PNG_MAGIC, "a PNG image", "--plot")
    loaded = load(resolve(scenario), list(overrides))
    fits = windows(loaded.scenario, telemetry, spec, _duration_s(window))
    rows = trend(fits)
    if plot is not None:
        with writing(plot, "--plot"):
            trend_plot(rows, plot)
    click.echo(json.dumps(rows, indent=2) if as_json else trend_table(rows))


# the first bytes of the files twin calibrate -o and twin accept --json write: what each may replace
OVERLAY_MARK = b"# Calibrated by twin calibrate"
ACCEPT_JSON_MARK = b'"spec":'


@cli.command("calibrate")
@click.argument("telemetry", type=click.Path(path_type=Path))
@click.option("--scenario", required=True, help="the scenario the rack was built to (file or catalogue name)")
@click.option("--spec", required=True, type=click.Path(path_type=Path), help="calibration spec (TOML, calibration/)")
@click.option("-o", "--output", type=click.Path(path_type=Path), default=None,
              help="write the fitted values as a scenario overlay (TOML) a calibrated scenario includes")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="override a scenario field")
@click.option("--json", "as_json", is_flag=True, help="print the fit as JSON instead of the table")
@click.option("--windows", "window", default=None, metavar="DURATION",
              help="fit successive windows (e.g. 1h, 30min, 600s) and report each parameter's trend")
@click.option("--plot", "plot", type=click.Path(path_type=Path), default=None, help="with --windows: a PNG of the trends")
@click.option("--predict", "predict", default=None, metavar="SCENARIO",
              help="then run SCENARIO (the same rack: a hot day, a pump failed) with the fitted parameters and "
                   "report each margin's spread and probability of failing over the fit's uncertainty")
@click.option("--samples", type=click.IntRange(1, 10000), default=50, show_default=True,
              help="with --predict: draws from the fit's posterior approximation")
def calibrate_cmd(telemetry, scenario, spec, output, overrides, as_json, window, plot, predict, samples):
    """Fit the spec's parameters of SCENARIO to measured TELEMETRY (docs/calibration.md):
    the model driven by the measured chip power, facility supply and CDU flow, least
    squares on the spec's channels; prints fitted values with 95 % intervals, residual
    statistics (ASHRAE Guideline 14) on the fit and held-out windows, and warnings on
    parameters the data do not identify. Exit 0 when the fit ran, 2 on bad input."""
    import json

    from .calibration.report import overlay_toml, table, to_dict

    if window is not None:
        _drift(telemetry, scenario, spec, overrides, window, plot, as_json)
        return
    target = None
    if predict is not None:  # read before the fit: a bad name is exit 2 at once
        from .catalogue import resolve
        from .scenario import load

        target = load(resolve(predict), list(overrides)).scenario
    if output is not None:  # before the fit, which takes minutes
        from .files import prepare_output

        prepare_output(output, OVERLAY_MARK, "an overlay written by twin calibrate", "-o", within=len(OVERLAY_MARK),
                       inputs=(telemetry, spec))
    f = _calibrate(telemetry, scenario, spec, overrides)
    if output is not None:
        from .files import write_whole

        write_whole(output, overlay_toml(f, str(telemetry)), "-o")
    out = to_dict(f)
    if target is not None:
        from .calibration.report import predict_margins, predict_table

        rows = predict_margins(f, target, samples)
        out["prediction"] = dict(scenario=target.name, margins=[
            {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in r.items()} for r in rows])
    if as_json:
        click.echo(json.dumps(out, indent=2))
    else:
        click.echo(table(f))
        if target is not None:
            click.echo("")
            click.echo(predict_table(rows, target.name))


@cli.command("accept")
@click.argument("telemetry", type=click.Path(path_type=Path))
@click.option("--scenario", required=True, help="the scenario the rack was built to (file or catalogue name)")
@click.option("--spec", required=True, type=click.Path(path_type=Path), help="calibration spec with tolerances")
@click.option("--json", "json_path", type=click.Path(path_type=Path), default=None, help="write the verdict as JSON")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="override a scenario field")
def accept_cmd(telemetry, scenario, spec, json_path, overrides):
    """Acceptance of a built rack: fit (as `twin calibrate`), then judge every component
    against its reference (design value or its peers) and tolerance: pass or suspect,
    with the fitted value, its interval and the channel that shows it; not judged, with
    why, where the telemetry does not resolve a component. Exit 1 when any component is
    suspect or nothing could be judged (the fit did not converge, or resolves none), 0
    when those judged pass, 2 on bad input."""
    import json

    from .calibration.report import NOT_JUDGED, SUSPECT, judge, table, to_dict, verdict

    if json_path is not None:  # before the fit, which takes minutes
        from .files import prepare_output

        prepare_output(json_path, ACCEPT_JSON_MARK, "a verdict written by twin accept", "--json", within=64,
                       inputs=(telemetry, spec))
    f = _calibrate(telemetry, scenario, spec, overrides)
    js = judge(f)
    click.echo(table(f, js))
    bad = [j for j in js if j.status == SUSPECT]
    unjudged = [j.label for j in js if j.status == NOT_JUDGED]
    said = verdict(f, js)
    if not f.converged:
        click.echo(f"verdict: NOT JUDGED: the fit did not converge ({f.status})")
    elif said == NOT_JUDGED:
        click.echo("verdict: NOT JUDGED: this telemetry resolves none of the components (see the table)")
    elif bad:
        click.echo("verdict: SUSPECT: " + ", ".join(j.label for j in bad))
    elif unjudged:
        click.echo(f"verdict: PASS: the {len(js) - len(unjudged)} components judged are within their tolerances; "
                   f"{len(unjudged)} not judged ({', '.join(unjudged[:3])}{', ...' if len(unjudged) > 3 else ''})")
    else:
        click.echo("verdict: PASS: every component within its tolerance")
    if json_path is not None:
        from .files import write_whole

        write_whole(json_path, json.dumps(to_dict(f, js), indent=2), "--json")
    if said != "pass":
        raise SystemExit(1)


def main():
    """The console script. It collects garbage in large batches and runs one BLAS thread
    unless the environment asks for more (:mod:`twin.proctune`), and
    at exit it freezes the garbage collector's generations (``gc.freeze``): the
    interpreter's finalization otherwise runs full collections over every object numba,
    pydantic and the model made, 0.4-0.7 s after the last line (docs/performance.md,
    *Start-up and exit*). atexit handlers still run, files are
    closed by the code that opened them; only collecting cycles is skipped, whose memory
    the operating system frees anyway. Not in ``_Twin.main``: a process that calls the
    group in a loop (tests, notebooks) keeps its collector. A standard stream the process
    was started without (``>&-``) is written to the null device."""
    import gc

    from .proctune import tune

    tune()
    for name in ("stdout", "stderr"):  # started with it closed (`>&-`): Python made it None; write nowhere
        if getattr(sys, name) is None:
            setattr(sys, name, open(os.devnull, "w"))
    try:
        cli()
    finally:
        gc.freeze()


def _racks_line(s) -> str:
    """What the scenario cools: its rack, or a row's racks by definition and its CDUs."""
    if s.row is None:
        return s.rack.name
    kinds: dict = {}
    for _, rack, _, _ in s.rack_entries():
        kinds[rack.name] = kinds.get(rack.name, 0) + 1
    racks = ", ".join(f"{n} x {k}" for k, n in kinds.items())
    return f"a row of {racks} on {s.cdu_count} CDU{'s' if s.cdu_count > 1 else ''}"


if __name__ == "__main__":
    main()
