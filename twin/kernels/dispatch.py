"""How a kernel runs: compiled ahead of time, or compiled by numba on first use.

Every kernel is written once, for numba, under :func:`kernel` (numba's ``njit`` options).
The entry points the engine calls from Python carry their one signature (``aot=``, in
numba's notation): ``make`` compiles them ahead of time into one extension module,
``twin/kernels/_aot*.so`` (``python -m twin.kernels.aot``, numba's ``pycc``, ~10 s), and
writes beside it a stamp of the kernel sources and the processor it was built from.

A process runs the entry points from that module, and never imports numba, when the
module is there, its stamp matches the kernel sources on disk, this processor, Python and
the installed numba, and
``TWIN_KERNELS`` is not ``jit``. That saves each process numba's start-up: its import,
its target registries (which import scipy.linalg) and its runtime compile, ~0.35-0.5 s of
a ``twin run`` or of each ``twin check`` worker (docs/performance.md). Otherwise (no
module, a kernel edited since the build, another machine, ``TWIN_KERNELS=jit``) every
kernel is numba's ``njit``, cached on disk, as it always was.

The compiled module does not check its arguments' types (a float32 array where float64
is declared is read as garbage, or crashes the process), so each call is checked here
first: arrays of the declared dtype, dimensions and layout, writeable and aligned, and
scalars of the declared kind. Any other call, and any call to a kernel that is not an
entry point (tests call helpers directly), switches the process to numba for every kernel
(:func:`_to_numba`), which gives the same numbers: tests/test_kernels_aot.py compares a
run of each kind bit for bit.

``TWIN_KERNELS``: ``auto`` (default, as above), ``jit`` (numba only) or ``aot`` (the
compiled module or an error saying why not).
"""
from __future__ import annotations

import hashlib
import os
import sys
import threading
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
STAMP = HERE / "_aot.stamp"
MODES = ("auto", "jit", "aot")

_lock = threading.RLock()
_registry: list = []  # (module globals, name, function, njit options) of kernels not yet numba's
_exports: list = []  # (module name, function name, signature) of every entry point, for the build
_state = dict(checked=False, module=None, why="", numba=False)


KERNEL_FILES = ("hydraulics.py", "props.py", "thermal.py", "workload.py")  # what the compiled module is made of
BUILD_FILES = KERNEL_FILES + ("aot.py",)  # ... and how


def sources_digest(here: Path = HERE, names=None) -> str:
    """SHA-256 of the named source files of ``here`` (default: every ``*.py``), names and
    contents."""
    sources = sorted(here.glob("*.py")) if names is None else [here / n for n in sorted(names)]
    return hashlib.sha256(b"".join(p.name.encode() + p.read_bytes() for p in sources)).hexdigest()


def machine_tag() -> str:
    """The processor the compiled module is built for and must run on: its model and
    instruction-set flags (Linux's /proc/cpuinfo), so that a module built with this
    host's instructions (AVX-512 here) is not loaded on a processor without them. Empty
    where it cannot be read: no module is built or loaded there."""
    if not sys.platform.startswith("linux"):
        return ""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return ""
    keep = [ln.split(":", 1)[1].strip() for ln in lines
            if ln.split(":", 1)[0].strip() in ("model name", "flags")][:2]
    if len(keep) < 2:
        return ""
    return hashlib.sha256("\n".join(keep).encode()).hexdigest()[:16]


def compiler_version() -> str:
    """The numba that compiles (the build) or would compile (the JIT) the kernels, read
    from its installed metadata without importing it: a module built by another numba
    could give other numbers than this one's JIT in the last bits."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("numba")
    except PackageNotFoundError:
        return "none"


def stamp_text(digest: str, machine: str) -> str:
    return (f"sources {digest}\nmachine {machine}\npython {sys.implementation.cache_tag}\n"
            f"numba {compiler_version()}\n")


def mode() -> str:
    """``aot`` when the entry points run from the compiled module, else ``jit``."""
    return "aot" if _compiled() is not None and not _state["numba"] else "jit"


def why_not_compiled() -> str:
    """Why the compiled module is not used ('' when it is)."""
    _compiled()
    return _state["why"]


def _compiled():
    """The compiled module, if this process may use it (checked once)."""
    with _lock:
        if _state["checked"]:
            return _state["module"]
        want = os.environ.get("TWIN_KERNELS", "auto").strip().lower() or "auto"
        if want not in MODES:
            raise _setting_error(f"{want!r}: expected one of {', '.join(MODES)}")
        module, why = None, "TWIN_KERNELS=jit"
        if want != "jit":
            module, why = _load()
        if want == "aot" and module is None:
            raise _setting_error(f"'aot': the compiled kernels cannot be used: {why}")
        _state.update(module=module, why=why, checked=True)  # a bad setting is refused again at the next import
        return module


def _setting_error(message: str):
    """A bad ``TWIN_KERNELS``, reported as bad input (the command line: one line, exit 2)."""
    from ..errors import TwinInputError

    return TwinInputError("environment", "TWIN_KERNELS", message)


def _load():
    machine = machine_tag()
    if not machine:
        return None, "no processor description to match a compiled module with (not Linux)"
    try:
        stamp = STAMP.read_text()
    except OSError:
        return None, f"not built ({STAMP.name} missing: make, or python -m twin.kernels.aot)"
    if stamp != stamp_text(sources_digest(names=BUILD_FILES), machine):
        return None, f"built from other kernel sources, for another processor, Python or numba ({STAMP.name})"
    try:
        from . import _aot
    except ImportError as err:
        return None, f"cannot be imported ({err})"
    return _aot, ""


def kernel(aot: str | None = None, **options):
    """Decorate a kernel: numba's ``njit(**options)``, or, in a process that uses the
    compiled module, a :class:`Kernel` that calls the compiled entry point (``aot``: its
    signature, numba's notation ``ret(arg, ...)``) or, for anything else, numba."""
    spec = parse_signature(aot)[1] if aot else None

    def decorate(fn):
        if aot:
            _exports.append((fn.__module__, fn.__name__, aot))
        with _lock:
            module = _compiled()
            if module is None or _state["numba"]:
                from numba import njit

                return njit(**options)(fn)
            _registry.append((fn.__globals__, fn.__name__, fn, options))
            return Kernel(fn.__name__, fn.__globals__, getattr(module, fn.__name__) if aot else None, spec)

    return decorate


class Kernel:
    """A kernel in a process that uses the compiled module: calls with the declared
    argument types run the compiled entry point; anything else (other types, keywords,
    a helper's name, numba's attributes such as ``signatures``) turns the process to
    numba and is answered by the kernel's numba version."""

    __slots__ = ("name", "glb", "compiled", "spec")

    def __init__(self, name, glb, compiled, spec):
        self.name, self.glb, self.compiled, self.spec = name, glb, compiled, spec

    def __call__(self, *args, **kwargs):
        if self.compiled is not None and not kwargs and not _state["numba"] and accepts(self.spec, args):
            return self.compiled(*args)
        _to_numba()
        return self.glb[self.name](*args, **kwargs)

    def __getattr__(self, attr):
        if attr.startswith("__"):
            raise AttributeError(attr)
        _to_numba()
        return getattr(self.glb[self.name], attr)


def _to_numba() -> None:
    """Make every kernel numba's from now on: each module's name is rebound to its njit
    dispatcher (numba resolves a kernel's callees from its module's globals when it
    compiles, so the callees must be numba's before any caller compiles)."""
    with _lock:
        if _state["numba"]:
            return
        from numba import njit

        for glb, name, fn, options in _registry:
            glb[name] = njit(**options)(fn)
        _registry.clear()
        _state["numba"] = True


# ----------------------------------------------------------------- signatures and checks

# numpy's array flag bits [NUMPY-C] (numpy/ndarraytypes.h: NPY_ARRAY_C_CONTIGUOUS, NPY_ARRAY_ALIGNED,
# NPY_ARRAY_WRITEABLE), read in one go from ``ndarray.flags.num`` (a test checks them
# against the named flags)
C_CONTIGUOUS, ALIGNED, WRITEABLE = 0x0001, 0x0100, 0x0400
ARRAY_C = C_CONTIGUOUS | ALIGNED | WRITEABLE  # what a declared ``[..., ::1]`` array must have
ARRAY_ANY = ALIGNED | WRITEABLE  # what a declared ``[:, :]`` array must have
_SCALARS = {"f8": float, "float64": float, "i8": int, "int64": int}
_ARRAY_DTYPES = {"f8": np.dtype(np.float64), "float64": np.dtype(np.float64),
                 "i8": np.dtype(np.int64), "int64": np.dtype(np.int64)}
_NUMPY_SCALAR = {float: np.float64, int: np.int64}


def _split_top(text: str) -> list[str]:
    """``text`` split at the commas outside brackets."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
    tail = text[start:].strip()
    if tail:
        parts.append(tail)
    return parts


def parse_signature(sig: str):
    """``ret(arg, ...)`` -> (return text, argument specs). An argument is a scalar
    (``f8``/``float64``: ``float``; ``i8``/``int64``: ``int``) or an array (``f8[:, ::1]``:
    its dtype, number of dimensions and the flags it must have: :data:`ARRAY_C` where
    C-contiguous is declared (``::1`` last), :data:`ARRAY_ANY` for any layout (only
    ``:``)). Anything else is a ValueError: only what the check can tell apart may be
    declared."""
    sig = sig.strip()
    if not sig.endswith(")"):
        raise ValueError(f"kernel signature {sig!r}: expected ret(arg, ...)")
    depth = 0
    for i in range(len(sig) - 1, -1, -1):
        depth += {")": 1, "(": -1}.get(sig[i], 0)
        if depth == 0:
            break
    ret, args = sig[:i].strip(), sig[i + 1:-1]
    if not ret:
        raise ValueError(f"kernel signature {sig!r}: no return type")
    specs = []
    for a in _split_top(args):
        if a in _SCALARS:
            specs.append(_SCALARS[a])
            continue
        base, _, dims = a.partition("[")
        if base.strip() not in _ARRAY_DTYPES or not dims.endswith("]"):
            raise ValueError(f"kernel signature {sig!r}: argument {a!r} is not a float64/int64 scalar or array")
        dims = [d.strip() for d in dims[:-1].split(",")]
        contiguous = dims[-1] == "::1"
        if any(d != ":" for d in (dims[:-1] if contiguous else dims)):
            raise ValueError(f"kernel signature {sig!r}: argument {a!r}: only ':' and a last '::1'")
        specs.append((_ARRAY_DTYPES[base.strip()], len(dims), ARRAY_C if contiguous else ARRAY_ANY))
    return ret, tuple(specs)


def accepts(spec, args) -> bool:
    """Whether ``args`` are exactly the declared types: what numba would type as the
    declared signature (an ndarray of the dtype in native byte order, the dimensions and
    flags; a Python float or ``np.float64`` for float64, a Python int (not a bool) or
    ``np.int64`` for int64). ~8 us for the 42 arguments of ``advance``, ~25 ms of a 24 h
    training day's 3,000 calls (docs/performance.md)."""
    if len(args) != len(spec):
        return False
    for a, s in zip(args, spec):
        t = type(a)
        if t is np.ndarray:
            if s.__class__ is not tuple:
                return False
            dtype, ndim, need = s
            d = a.dtype
            if (d is not dtype and d != dtype) or a.ndim != ndim or a.flags.num & need != need:
                return False
        elif t is not s and t is not _NUMPY_SCALAR.get(s):
            return False
    return True
