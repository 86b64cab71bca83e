"""How a twin process is tuned: the console script (:func:`twin.cli.main`) and ``twin
check``'s workers (:mod:`twin.check_worker`), so that a worker runs as a one-job check's
process does (docs/performance.md, *Start-up and exit* and *twin check over the
catalogue*). A process that imports :mod:`twin` as a library (a notebook, a test) keeps
its own settings."""
import gc
import os

# The collector's first generation at 50,000 allocations instead of 700 (ASSUMPTION: a
# tuning, measured in benchmarks/bench_startup.py): importing numpy, numba, pydantic,
# fluids and ht and loading the kernels leaves ~134,000 tracked objects, hardly any
# garbage, and the default thresholds ran 325 collections (28 of the older
# generations) to get there: 0.1-0.2 s of a 1.3 s start. Cycles are still collected,
# in batches of up to 50,000 new objects.
GC_THRESHOLDS = (50_000, 20, 20)

# One BLAS thread per process unless the user's environment says otherwise (ASSUMPTION: a
# tuning, measured in benchmarks/bench_check.py; read by OpenBLAS, MKL and OpenMP when
# numpy loads them, so it must be set before numpy is imported). The engine's only BLAS
# calls are build-time solves of a few dozen to a few hundred unknowns (the loop basis,
# twin.build.finalize; the pressure-drop fits, twin.correlations): each wakes OpenBLAS's
# threads, which then busy-wait ~0.1 s on the other cores before they sleep. A one-job
# check over the catalogue burnt ~1.2 s of a second core that way for no gain in wall
# time (4.07 s against 3.98 s, medians of 6), and with two jobs each process's spinning
# took the core the other process ran on: 3.11 s against 2.46 s. The same rule as
# Dask's worker processes (distributed's nanny sets these to 1) and joblib's.
BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS")


def tune() -> None:
    gc.set_threshold(*GC_THRESHOLDS)
    for name in BLAS_THREAD_VARIABLES:
        os.environ.setdefault(name, "1")
