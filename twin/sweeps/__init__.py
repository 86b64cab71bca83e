"""Sweeps: many runs of one scenario with varied keys, on Dask (``twin sweep``, :func:`sweep`).

- :mod:`twin.sweeps.spec`: the sweep file and the plan of runs it expands to;
- :mod:`twin.sweeps.task`: one run, as a worker executes it;
- :mod:`twin.sweeps.runner`: the Dask cluster, the resumable part files, the table;
- :mod:`twin.sweeps.sensitivity`: sampled designs and Sobol / Morris indices.

(The package is ``sweeps``, not ``sweep``: ``twin.sweep`` is the function.)
"""
from __future__ import annotations

from pathlib import Path


def outputs_of(df, plan) -> list:
    """The collected value columns of a results table (margins and channel summaries)."""
    from .runner import FIRST, LAST

    skip = set(FIRST) | set(LAST) | set(plan.param_names)
    return [c for c in df.columns if c not in skip and df[c].dtype.kind in "fiu"]


def sensitivity_paths(output) -> tuple[Path, Path]:
    out = Path(output)
    return out.with_name(out.stem + ".sensitivity.csv"), out.with_name(out.stem + ".sensitivity.json")


def sweep(sweep_file_or_dict, scheduler=None, output=None, workers=None, limit=None, retry_failed=False,
          progress=False, client=None):
    """Run a sweep; returns a :class:`pandas.DataFrame`, one row per run.

    ``sweep_file_or_dict``: a sweep file (TOML) or the same as a dict (paths relative to
    the current directory). ``scheduler``: a Dask scheduler address (``tcp://host:8786``);
    without one a local cluster of ``workers`` processes (default: one per core).
    ``output``: the Parquet table to write (and its ``.parts/`` directory, which makes
    the sweep resumable); ``None`` keeps the results in memory only. ``limit``: run at
    most this many of the missing runs. ``retry_failed``: run failed runs again.
    ``client``: an existing ``dask.distributed.Client`` to use instead.

    ``df.attrs``: ``executed``, ``skipped``, ``elapsed_s``; with a sobol or morris
    sample, ``sensitivity`` (output -> rows of indices, or why not analysed), also
    written beside ``output`` as ``STEM.sensitivity.csv`` and ``.json``.
    """
    from . import runner, spec

    plan = spec.load(sweep_file_or_dict)
    df = runner.execute(plan, scheduler=scheduler, output=output, workers=workers, limit=limit,
                        retry_failed=retry_failed, progress=progress, client=client)
    df.attrs["plan"] = dict(file=plan.file, base=str(plan.base_path), runs=len(plan.runs))
    sm = plan.spec.sample
    if sm is not None and sm.method in spec.SENSITIVITY and len(df) == len(plan.runs):
        import json

        from .sensitivity import analyze, to_frame

        result = analyze(sm, plan.problem, plan.samples, df, outputs_of(df, plan))
        df.attrs["sensitivity"] = result
        if output is not None:
            csv, js = sensitivity_paths(output)
            to_frame(result).to_csv(csv, index=False)
            js.write_text(json.dumps(dict(method=sm.method, problem=plan.problem, indices=result), indent=2))
    return df
