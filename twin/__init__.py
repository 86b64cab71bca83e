"""rack-twin: a digital twin of a liquid-cooled AI rack.

Python API::

    import twin
    scenario = twin.load_scenario("reference-w32")     # a file, or a catalogue name
    result = twin.simulate(scenario)
    result.margins            # name -> value
    result.to_hdf5("out.h5")
    result.to_xarray()        # xarray.Dataset; twin.open_results("out.h5") for a file
    result.margins_frame()    # pandas.DataFrame; twin.margins_frame("out.h5")
    fig = twin.plot(result, "junction")                # matplotlib Figure (twin plot's kinds)
    table = twin.sweep("sweeps/training-day-mc.toml", output="mc.parquet")  # many runs, on Dask

Calibration and acceptance (docs/calibration.md)::

    twin.synthetic_telemetry(scenario, "rack.h5", overrides=..., sensor_offsets=...)
    fit = twin.calibrate(scenario, "rack.h5", "calibration/specs/nvl72-acceptance.toml")
    twin.accept(fit)          # pandas.DataFrame, one row per component, status pass / suspect
    twin.residuals_frame(fit) # pandas.DataFrame: residual statistics per channel, fit and held out
    print(twin.overlay_toml(fit))                      # the calibrated scenario fragment

Every name is imported on first use: the schema (pydantic) by ``load_scenario``, xarray and
pandas by ``open_results``, ``margins_frame``, ``accept`` and ``residuals_frame``,
matplotlib by ``plot``, so ``import twin.cli`` stays light.
"""
__version__ = "0.1.0"

from .errors import TwinInputError  # noqa: E402


def simulate(scenario, output=None, **kwargs):
    """Run a scenario; see :func:`twin.engine.simulate`. ``output`` is refused before the
    run, as ``twin run -o`` refuses it, when it is a directory, an input of the run or an
    existing file that is not a results file."""
    from .engine import simulate as _simulate

    if output is not None:
        _check_output(scenario, output, "output")
    return _simulate(scenario, output=output, **kwargs)


def _check_output(scenario, output, option):
    from .files import check_output

    replay = getattr(getattr(scenario, "workload", None), "replay", None)
    check_output(output, {replay.file: "the replay trace"} if replay is not None else {}, option)


def open_results(path):
    """A results file as an :class:`xarray.Dataset`; see :func:`twin.pydata.open_results`."""
    from .pydata import open_results as _open

    return _open(path)


def margins_frame(source):
    """Margins of a result or a results file (or a list of them, with a ``source`` column)
    as a :class:`pandas.DataFrame`; see
    :func:`twin.pydata.margins_frame`."""
    from .pydata import margins_frame as _frame

    return _frame(source)


def plot(source, kind="junction"):
    """One of ``twin plot``'s figures (``kind``: ``rack``, ``junction``, ``trays``, ``cdu``,
    ``margins``; :mod:`twin.plots`) of a :class:`twin.result.Result` or a results file, as
    a :class:`matplotlib.figure.Figure` (Agg, no pyplot state: a notebook shows it as the
    cell's value, ``fig.savefig(...)`` writes it). A kind the source has no data for
    raises :class:`TwinInputError` naming the channel."""
    from .plots import KINDS, figures, load_run, run_of_result
    from .result import Result

    if kind not in KINDS:
        raise TwinInputError("twin.plot", "kind", f"{kind!r} is not one of {', '.join(KINDS)}")
    run = run_of_result(source) if isinstance(source, Result) else load_run(source)
    [(_, fig, _)] = figures(run, [kind], strict=True)
    return fig


def synthetic_telemetry(scenario, out, overrides=None, sensor_offsets=None, seed=0, noise=True):
    """Synthetic measured telemetry with a known truth, for trying calibration: the
    scenario (a loaded Scenario, a file or a catalogue name) run with ``overrides`` planted (dotted keys, ``{"overrides": {PATH: {param:
    value}}}``), sensor noise, quantisation and ``sensor_offsets`` (channel -> offset)
    added, written to ``out`` marked synthetic; returns its path. See
    :func:`twin.calibration.synthetic.make`."""
    from .calibration.synthetic import make
    from .scenario import load_scenario

    if not hasattr(scenario, "model_dump"):
        scenario = load_scenario(scenario)
    _check_output(scenario, out, "out")
    return make(scenario, out, overrides=overrides, sensor_offsets=sensor_offsets, seed=seed, noise=noise)


def calibrate(scenario, telemetry, spec, max_evaluations=400):
    """Fit a spec's parameters of ``scenario`` (a loaded Scenario, a file or a catalogue
    name) to measured ``telemetry`` (a results file): ``twin calibrate``'s fit, a
    :class:`twin.calibration.fit.Fit` (``values()``, ``interval(i)``, ``stats``,
    ``chi2_red``, ``status``). ``spec``: a spec file, or the name of one of the
    repository's ``calibration/specs/`` (``"nvl72-acceptance"``, ``"nvl72-gpu-tim"``: an
    existing file of that name wins)."""
    from .calibration.report import run
    from .scenario import load_scenario

    from pathlib import Path

    if not isinstance(spec, (str, Path)):
        raise TwinInputError("twin.calibrate", "spec", f"expected a spec file or the name of one, got "
                                                       f"{type(spec).__name__}")
    if not hasattr(scenario, "model_dump"):
        scenario = load_scenario(scenario)
    return run(scenario, telemetry, _spec_path(spec), max_evaluations)


def _spec_path(spec):
    """A calibration spec by path, or by name among the repository's ``calibration/specs/``."""
    from pathlib import Path

    if not isinstance(spec, (str, Path)) or Path(spec).exists() or len(Path(spec).parts) != 1:
        return spec
    named = Path(__file__).resolve().parent.parent / "calibration" / "specs" / f"{Path(spec).name.removesuffix('.toml')}.toml"
    return named if named.is_file() else spec


def accept(fit):
    """``twin accept``'s judgement of a :func:`calibrate` fit as a
    :class:`pandas.DataFrame`, one row per component: component, status (``pass``,
    ``suspect``, ``not judged``), fitted, low, high (its 95 % interval), reference,
    tolerance, evidence. The rack is accepted when no row is ``suspect`` and the fit
    converged (``fit.converged``; a fit that did not judges nothing:
    :func:`twin.calibration.report.judge`)."""
    import pandas as pd

    from .calibration.report import judge

    _fit(fit, "twin.accept")
    rows = [dict(component=j.label, status=j.status, fitted=j.value, low=j.low, high=j.high, reference=j.reference,
                 tolerance=j.tolerance, evidence=j.evidence) for j in judge(fit)]
    return pd.DataFrame(rows, columns=["component", "status", "fitted", "low", "high", "reference", "tolerance",
                                       "evidence"])


def residuals_frame(fit):
    """A :func:`calibrate` fit's residual statistics as a :class:`pandas.DataFrame`, one
    row per fitted channel and window (``fit``: the part fitted, ``holdout``: the part held
    out), columns channel, window, n, rmse, bias, cv_rmse_pct, nmbe_pct (ASHRAE
    Guideline 14's statistics; docs/calibration.md)."""
    import pandas as pd

    _fit(fit, "twin.residuals_frame")
    rows = [dict(channel=name, window=w, **s) for name, st in fit.stats.items() for w, s in st.items()]
    return pd.DataFrame(rows)


def overlay_toml(fit, source=""):
    """A :func:`calibrate` fit's values as the TOML scenario fragment ``twin calibrate -o``
    writes (``[overrides]`` per instance, sensor offsets as faults): include it after the
    scenario it was fitted on."""
    from .calibration.report import overlay_toml as _toml

    _fit(fit, "twin.overlay_toml")
    return _toml(fit, source)


def _fit(fit, where):
    from .calibration.fit import Fit

    if not isinstance(fit, Fit):
        raise TwinInputError(where, "fit", f"expected a fit of twin.calibrate, got {type(fit).__name__}")


def sweep(sweep_file_or_dict, scheduler=None, output=None, **kwargs):
    """Run a sweep on Dask, one table row per run; see :func:`twin.sweeps.sweep`."""
    from .sweeps import sweep as _sweep

    return _sweep(sweep_file_or_dict, scheduler=scheduler, output=output, **kwargs)


def __getattr__(name):
    if name in ("Scenario", "load_scenario"):  # load_scenario takes a file or a catalogue name
        from . import scenario

        return getattr(scenario, name)
    raise AttributeError(f"module 'twin' has no attribute {name!r}")


__all__ = ["Scenario", "TwinInputError", "accept", "calibrate", "load_scenario", "margins_frame", "open_results",
           "overlay_toml", "plot", "residuals_frame", "simulate", "sweep", "synthetic_telemetry", "__version__"]
