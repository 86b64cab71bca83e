"""Numba kernels: arrays and scalars in, arrays out; no scenario objects, no libraries.

Numba's on-disk cache checks only the source file of the function it caches, not the
kernels that function inlines or calls from other files (``thermal.advance`` inlines
``workload.chip_power_step``): after an edit to one kernel file another's cached machine
code could be stale, and runs would silently use the old code. On import, a digest of
every kernel file is compared with the one stored in the cache directory; when it
differs, this package's cached kernels are dropped and compile afresh. (This covers the
default cache next to the sources, which ``make`` uses; with ``NUMBA_CACHE_DIR`` set,
clear that directory after changing the kernels.)

The entry points the engine calls are also compiled ahead of time where ``make`` has
built them: :mod:`twin.kernels.dispatch` says when a process uses them and never imports
numba.
"""
from pathlib import Path

from .dispatch import sources_digest


def _drop_stale_cache(here: Path = Path(__file__).resolve().parent) -> None:
    sources = sorted(here.glob("*.py"))
    digest = sources_digest(here)
    cache = here / "__pycache__"
    stamp = cache / "kernel-sources.sha256"
    try:
        if stamp.exists() and stamp.read_text() == digest:
            return
        if cache.exists():
            for p in sources:
                for f in cache.glob(f"{p.stem}.*.nb[ic]"):
                    f.unlink()
        cache.mkdir(exist_ok=True)
        stamp.write_text(digest)
    except OSError:  # a read-only install: numba then caches elsewhere by itself
        pass


_drop_stale_cache()


def warm() -> None:
    """Start numba's machinery in this process without a scenario: the first kernel a
    process loads, even from the on-disk cache, pays for numba's target registries (which
    import scipy.linalg) and compiles numba's runtime (~0.4 s; docs/performance.md); this
    pays it now, by loading the smallest kernel with the argument types the engine passes
    it (a test checks that it adds no compiled signature of its own). Where the entry
    points are compiled ahead of time (:mod:`twin.kernels.dispatch`) it only loads that
    module: there is no numba to start."""
    import numpy as np

    from .props import interp_column

    interp_column(np.zeros((1, 2)), 0, 0.0, 1.0, np.zeros(1))
