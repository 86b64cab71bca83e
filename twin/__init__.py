"""rack-twin: a digital twin of a liquid-cooled AI rack.

Python API::

    import twin
    scenario = twin.load_scenario("scenarios/reference-w32.toml")
    result = twin.simulate(scenario)
    result.margins            # name -> value
    result.to_hdf5("out.h5")
    result.to_xarray()        # xarray.Dataset; twin.open_results("out.h5") for a file
    result.margins_frame()    # pandas.DataFrame; twin.margins_frame("out.h5")
    table = twin.sweep("sweeps/training-day-mc.toml", output="mc.parquet")  # many runs, on Dask

``Scenario`` and ``load_scenario`` are imported on first use (the schema needs pydantic),
xarray and pandas only by ``open_results`` and ``margins_frame``, so ``import twin.cli``
stays light.
"""
__version__ = "0.1.0"

from .errors import TwinInputError  # noqa: E402


def simulate(scenario, output=None, **kwargs):
    """Run a scenario; see :func:`twin.engine.simulate`."""
    from .engine import simulate as _simulate

    return _simulate(scenario, output=output, **kwargs)


def open_results(path):
    """A results file as an :class:`xarray.Dataset`; see :func:`twin.pydata.open_results`."""
    from .pydata import open_results as _open

    return _open(path)


def margins_frame(source):
    """Margins of a result or a results file as a :class:`pandas.DataFrame`; see
    :func:`twin.pydata.margins_frame`."""
    from .pydata import margins_frame as _frame

    return _frame(source)


def sweep(sweep_file_or_dict, scheduler=None, output=None, **kwargs):
    """Run a sweep on Dask, one table row per run; see :func:`twin.sweeps.sweep`."""
    from .sweeps import sweep as _sweep

    return _sweep(sweep_file_or_dict, scheduler=scheduler, output=output, **kwargs)


def __getattr__(name):
    if name in ("Scenario", "load_scenario"):
        from . import scenario

        return getattr(scenario, name)
    raise AttributeError(f"module 'twin' has no attribute {name!r}")


__all__ = ["Scenario", "TwinInputError", "load_scenario", "margins_frame", "open_results", "simulate", "sweep",
           "__version__"]
