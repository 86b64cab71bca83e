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
def run(scenario, output, duration, overrides):
    """Simulate SCENARIO, write telemetry, print the margins table."""
    from .scenario import load_scenario

    try:
        s = load_scenario(scenario, list(overrides))
        if duration is not None and duration <= 0:
            raise TwinInputError("--duration", "simulation.duration_s", "must be positive")
        if output is not None and output.exists() and output.is_dir():
            raise TwinInputError(output, "-o", "is a directory")
    except TwinInputError as err:
        _fail(err)
    from .engine import simulate

    result = simulate(s, output=output, duration_s=duration)
    click.echo(f"scenario {s.name}: {s.rack.name}, {s.coolant.name}, facility {s.facility.supply_temp_c:g} degC, "
               f"{duration or s.simulation.duration_s:g} s simulated")
    if output is not None:
        click.echo(f"telemetry: {output}")
    click.echo(result.margin_table.table())


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
    for name in sorted(tel.channels):
        click.echo(f"  {name:<28} {str(tel.channels[name].shape):<14} {tel.units[name]}")


def main():
    cli()


if __name__ == "__main__":
    main()
