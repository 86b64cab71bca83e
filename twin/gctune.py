"""The garbage collector's thresholds of a twin process: the console script
(:func:`twin.cli.main`) and ``twin check``'s workers (:mod:`twin.check_worker`), so that a
worker runs as a one-job check's process does (docs/performance.md, *Start-up and exit*)."""
import gc

# The collector's first generation at 50,000 allocations instead of 700 (ASSUMPTION: a
# tuning, measured in benchmarks/bench_startup.py): importing numpy, numba, pydantic,
# fluids and ht and loading the kernels leaves ~134,000 tracked objects, hardly any
# garbage, and the default thresholds ran 325 collections (28 of the older
# generations) to get there: 0.1-0.2 s of a 1.3 s start. Cycles are still collected,
# in batches of up to 50,000 new objects.
GC_THRESHOLDS = (50_000, 20, 20)


def tune() -> None:
    gc.set_threshold(*GC_THRESHOLDS)
