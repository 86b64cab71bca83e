"""Compile the kernels' entry points ahead of time: ``python -m twin.kernels.aot``.

``make`` runs it after installing (and again when a kernel file changes). It imports the
kernel modules with numba (``TWIN_KERNELS=jit``), compiles every entry point declared with
``@kernel(aot=...)`` (:mod:`twin.kernels.dispatch`) for this processor into one extension
module with numba's ``pycc`` (a C compiler is needed; ~10 s), moves it into place beside
the sources and writes the stamp that lets processes use it: the digest of the kernel
sources it was built from, this processor's description, the Python and the numba
(:func:`twin.kernels.dispatch.stamp_text`). Each entry point is exported
as a one-line function that calls the kernel's numba dispatcher, so that the kernel is
compiled with its own options (``fastmath``, ``error_model``, inlining) exactly as the JIT
compiles it: the two give the same numbers (tests/test_kernels_aot.py).

Exit status 0 when built; 1, with the reason on one line, when it cannot be (no compiler,
no numba.pycc, not Linux): the kernels then run under numba's JIT, as before, only slower
to start.
"""
from __future__ import annotations

import importlib
import inspect
import os
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path


def _forwarder(dispatcher):
    """``def name(a, b, ...): return dispatcher(a, b, ...)`` with the kernel's own
    parameters (pycc compiles the exported function with default options; the kernel it
    calls keeps its own). Generated from the kernel's signature: our own source, never
    user input."""
    params = ", ".join(inspect.signature(dispatcher.py_func).parameters)
    namespace = {"kernel": dispatcher}
    exec(f"def forward({params}):\n    return kernel({params})\n", namespace)  # noqa: S102
    return namespace["forward"]


def build(verbose: bool = False) -> Path:
    """Build the module beside the kernel sources and write its stamp; returns the
    module's path. Raises RuntimeError with the reason (OSError where the directory cannot
    be written). Sets ``TWIN_KERNELS=jit`` in this process's environment: a process that
    builds runs its kernels under numba."""
    os.environ["TWIN_KERNELS"] = "jit"
    from . import dispatch

    here = dispatch.HERE
    machine = dispatch.machine_tag()
    if not machine:
        raise RuntimeError("no processor description to stamp the module with (Linux's /proc/cpuinfo)")
    digest = dispatch.sources_digest(here, dispatch.BUILD_FILES)
    for name in dispatch.KERNEL_FILES:
        importlib.import_module(f"{__package__}.{Path(name).stem}")
    if dispatch.mode() != "jit":
        raise RuntimeError("the kernel modules were imported before the build chose numba")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pycc's pending-deprecation notice
            from numba.pycc import CC
    except ImportError as err:
        raise RuntimeError(f"numba.pycc is not available ({err})") from None
    with tempfile.TemporaryDirectory(prefix="twin-aot-") as tmp:
        cc = CC("_aot")
        cc.output_dir = tmp
        cc.target_cpu = "host"  # the JIT's target too: the same instructions, the same numbers
        cc.verbose = verbose
        for module, name, sig in dispatch._exports:
            cc.export(name, sig)(_forwarder(getattr(sys.modules[module], name)))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                cc.compile()
        except Exception as err:  # noqa: BLE001  (the compiler's or distutils' error, whatever its class)
            last = (str(err).strip().splitlines() or [""])[-1]
            raise RuntimeError(f"compiling failed: {type(err).__name__}: {last}") from None
        built = [p for p in Path(tmp).iterdir() if p.name.startswith("_aot.") and p.suffix in (".so", ".pyd")]
        if len(built) != 1:
            raise RuntimeError(f"compiling left no single module in {tmp}")
        target = here / built[0].name
        stamp = dispatch.STAMP
        stamp.unlink(missing_ok=True)  # no stamp while the module is replaced: processes meanwhile use numba
        staged = here / (built[0].name + ".tmp")
        shutil.copyfile(built[0], staged)
        os.replace(staged, target)
    stamp.write_text(dispatch.stamp_text(digest, machine))
    return target


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    t0 = time.perf_counter()
    try:
        path = build(verbose="-v" in argv)
    except (RuntimeError, OSError) as err:  # OSError: a read-only or full install directory
        print(f"twin.kernels.aot: not built, the kernels run under numba's JIT: {err}", file=sys.stderr)
        return 1
    print(f"twin.kernels.aot: compiled the kernels' entry points into {path.name} "
          f"({time.perf_counter() - t0:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
