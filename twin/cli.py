"""The `twin` command line: run scenarios, print margins.

Errors in user input exit 2 with one line ``error: FILE: FIELD: MESSAGE`` on stderr and
no traceback; nothing is left half-written.
"""
from __future__ import annotations

import sys
from pathlib import Path

import click

from .errors import TwinInputError


def _fail(err: TwinInputError):
    click.echo(f"error: {err.line()}", err=True)
    sys.exit(2)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="rack-twin")
def cli():
    """rack-twin: digital twin of a liquid-cooled AI rack."""


@cli.command()
@click.argument("scenario", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), default=None, help="telemetry HDF5 to write")
@click.option("--duration", type=float, default=None, help="override simulation.duration_s [s]")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="override a scenario field (dotted key)")
@click.option("--strict", is_flag=True, help="exit 1 when any margin fails or cannot be judged")
@click.option("--json", "as_json", is_flag=True, help="print the margins as JSON (for scripts) instead of the table")
def run(scenario, output, duration, overrides, strict, as_json):
    """Simulate SCENARIO, write telemetry, print the margins table and a verdict.

    Exit status: 0 when the run finished (whatever its margins; with --strict only when
    every margin is ok), 1 with --strict when a margin fails or cannot be judged, 2 on
    bad input, 130 / 143 when interrupted by SIGINT / SIGTERM (the file is kept, marked
    incomplete)."""
    from .scenario import load_scenario

    try:
        s = load_scenario(scenario, list(overrides))
        if duration is not None and not (duration > 0 and duration < float("inf")):
            raise TwinInputError("--duration", "simulation.duration_s", "must be a positive number of seconds")
        if output is not None and output.exists() and output.is_dir():
            raise TwinInputError(output, "-o", "is a directory")
    except TwinInputError as err:
        _fail(err)
    from .engine import simulate

    provenance = dict(source=str(scenario), overrides=list(overrides))
    try:
        result = simulate(s, output=output, duration_s=duration, provenance=provenance)
    except TwinInputError as err:  # found while building: a fault target, a replay file
        if err.file == "<scenario>":
            err.file = str(scenario)
        _fail(err)
    margins, end = result.margin_table, result.end
    if as_json:
        import json
        click.echo(json.dumps(dict(
            scenario=s.name, source=str(scenario), overrides=list(overrides),
            duration_s=duration or s.simulation.duration_s, end_time_s=end.time_s, complete=end.is_complete,
            end_reason=end.reason, telemetry=str(output) if output is not None else None,
            verdict=margins.verdict, margins=margins.to_dicts()), indent=2, allow_nan=False))
    else:
        click.echo(f"scenario {s.name}: {s.rack.name}, {s.coolant.name}, facility {s.facility.supply_temp_c:g} degC, "
                   f"{duration or s.simulation.duration_s:g} s simulated")
        if output is not None:
            click.echo(f"telemetry: {output}" + ("" if end.is_complete else " (marked incomplete)"))
        click.echo(margins.table())
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


@cli.command("inspect")
@click.argument("telemetry", type=click.Path(path_type=Path))
def inspect_cmd(telemetry):
    """List the channels of a telemetry file with their units and shapes."""
    from .telemetry import read_telemetry

    try:
        tel = read_telemetry(telemetry)
    except TwinInputError as err:
        _fail(err)
    click.echo(f"{telemetry}: schema {tel.attrs.get('schema')}, {tel.time.size} samples, "
               f"{tel.time[0] if tel.time.size else 0:g}-{tel.time[-1] if tel.time.size else 0:g} s")
    if "complete" in tel.attrs:
        state = "complete" if tel.attrs["complete"] else "INCOMPLETE"
        click.echo(f"  run: {state} ({tel.attrs.get('end_reason', '')}); verdict: {tel.attrs.get('verdict', 'n/a')}")
    for name in sorted(tel.channels):
        click.echo(f"  {name:<28} {str(tel.channels[name].shape):<14} {tel.units[name]}")


@cli.command("scenarios")
@click.argument("folder", type=click.Path(path_type=Path), default=Path("scenarios"))
def scenarios_cmd(folder):
    """List the runnable scenarios under FOLDER, one line each."""
    import tomllib
    rows = []
    for path in sorted(folder.rglob("*.toml")):
        try:
            data = tomllib.loads(path.read_text())
        except (tomllib.TOMLDecodeError, UnicodeDecodeError):
            rows.append((path, "(malformed TOML)"))
            continue
        if "name" in data:  # parts (racks, CDUs, facilities) have no name of their own
            rows.append((path, data.get("description", "")))
    width = max((len(str(p.relative_to(folder))) for p, _ in rows), default=0)
    for path, desc in rows:
        click.echo(f"{str(path.relative_to(folder)):<{width}}  {desc}")


@cli.command("compare")
@click.argument("scenarios", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--facility", "facilities", multiple=True, type=float, default=(32.0, 45.0), show_default=True,
              help="facility supply temperatures to compare at [degC]")
def compare_cmd(scenarios, facilities):
    """Steady figures of several scenarios side by side (full run of each at t = 0)."""
    from .engine import simulate
    from .scenario import load_scenario

    cols = {}
    try:
        loaded = [load_scenario(p) for p in scenarios]
        for s in loaded:
            for t in facilities:
                s.with_overrides({"facility.supply_temp_c": t})  # a bad temperature fails here, cleanly
    except TwinInputError as err:
        _fail(err)
    for s in loaded:
        col = {}
        for t in facilities:
            try:
                r = simulate(s.with_overrides({"facility.supply_temp_c": t}),
                             duration_s=2 * s.simulation.output_interval_s)
            except TwinInputError as err:
                _fail(err)
            tel = r.telemetry()
            if t == facilities[0]:
                col["IT power [kW]"] = tel["rack/it_power"][-1] / 1e3
                col["liquid heat [kW]"] = tel["rack/liquid_heat"][-1] / 1e3
                col["rack flow [L/min]"] = tel["rack/flow"][-1]
                col["flow per kW [L/min/kW]"] = tel["rack/flow"][-1] / (tel["rack/liquid_heat"][-1] / 1e3)
                col["rack dP [kPa]"] = tel["rack/dp"][-1]
                col["min tray flow / required"] = r.margins["tray_flow_ratio_min"]
                col["CDU pump power [kW]"] = r.margins["cdu_pump_power_mean_kw"]
            col[f"GPU Tj max at W{t:g} [degC]"] = r.margins["gpu_junction_max_c"]
            col[f"GPU margin at W{t:g} [K]"] = r.margins["gpu_junction_margin_k"]
        cols[s.rack.name] = col
    names = list(cols)
    keys = list(next(iter(cols.values())))
    w0 = max(len(k) for k in keys)
    ws = [max(len(n), 9) for n in names]
    click.echo(f"{'':<{w0}}  " + "  ".join(f"{n:>{w}}" for n, w in zip(names, ws)))
    for k in keys:
        click.echo(f"{k:<{w0}}  " + "  ".join(f"{cols[n][k]:>{w}.2f}" for n, w in zip(names, ws)))


def main():
    cli()


if __name__ == "__main__":
    main()
