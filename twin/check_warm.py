"""Imported by ``twin check``'s forkserver (``set_forkserver_preload``), while the main
process reads the scenarios: the engine, and its numba kernels loaded from their on-disk
cache by one short run, so that every worker forked from the server starts with both (a
worker's first run otherwise spends ~0.8 s loading the kernels, each worker on its own
before its first scenario). Nothing is compiled here that the cache does not hold: on an
empty cache the server compiles once, instead of every worker."""
try:
    from .engine import simulate
    from .scenario import load_scenario

    simulate(load_scenario("reference-w32", {"simulation.duration_s": 1.0}))
except Exception:  # a warm-up only: whatever fails here fails again, reported, in the workers' runs
    pass
