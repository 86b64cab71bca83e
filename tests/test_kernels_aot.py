"""The kernels compiled ahead of time (twin.kernels.dispatch, twin.kernels.aot) against the
same kernels under numba's JIT.

The compiled module is built by ``make`` (the README's commands); where it is missing on
a machine that could build it, the tests that need it fail (a set-up that lost the build
would otherwise go unnoticed: every run would quietly pay numba's start-up again); where
the kernel sources changed since the build (an edit, a planted mutation), they are
skipped, since processes then use numba, which the rest of the suite tests.
"""
from __future__ import annotations

import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from twin.kernels import dispatch

ROOT = Path(__file__).resolve().parents[1]


def _need_compiled():
    why = dispatch._load()[1]
    if not why:
        return
    if "other kernel sources" in why:
        pytest.skip(f"the compiled kernels are stale ({why}): processes use numba")
    if sys.platform.startswith("linux") and (shutil.which("cc") or shutil.which("gcc")):
        pytest.fail(f"the compiled kernels are not usable on this machine, which can build them: {why} "
                    "(make builds them: python -m twin.kernels.aot)")
    pytest.skip(why)


def _python(code: str, kernels: str, cwd: Path) -> str:
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd, timeout=600,
                       env={**os.environ, "TWIN_KERNELS": kernels})
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout


RUNS = (("faults/pump-trip-n1", {}),  # a pump trips: flows re-solved, N+1 takeover
        ("faults/w45-hot-day", {"simulation.duration_s": 1800.0}),  # hot water: throttling, the clock controller
        ("mixed-rack", {}))  # training and inference on one rack: the workload kernel's phases


def _run_all(kernels: str, out: Path) -> str:
    code = (
        "import sys, twin\n"
        "from twin.kernels import dispatch\n"
        f"for i, (name, over) in enumerate({RUNS!r}):\n"
        f"    twin.simulate(twin.load_scenario(name, over), output=r'{out}' + f'/run{{i}}.h5')\n"
        "print(dispatch.mode(), 'numba' in sys.modules, 'scipy.linalg' in sys.modules)\n")
    return _python(code, kernels, ROOT).split("\n")[-2]


def _datasets(path: Path) -> dict:
    found = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: found.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset)
                     and obj.dtype.kind in "fiub" else None)
    return found


def test_compiled_kernels_give_the_jits_numbers_bit_for_bit_and_never_start_numba(tmp_path):
    """Three runs that go through every entry point (a pump trip, a hot day that throttles,
    a mixed workload) in a process on the compiled kernels and in one on numba's JIT:
    every numeric dataset of the results files is identical, bit for bit. The compiled
    process ends still on the compiled kernels, without numba or scipy.linalg imported.
    Catches: an entry point compiled without its kernel's options (fastmath, the numpy
    error model: other numbers), for a generic processor (other vector code, other sums),
    or declared with another signature than the engine passes (the engine would fall back
    to numba on every run, silently paying its start-up again)."""
    _need_compiled()
    (tmp_path / "aot").mkdir()
    (tmp_path / "jit").mkdir()
    assert _run_all("aot", tmp_path / "aot") == "aot False False"
    assert _run_all("jit", tmp_path / "jit") == "jit True True"
    compared = 0
    for i in range(len(RUNS)):
        a, b = _datasets(tmp_path / "aot" / f"run{i}.h5"), _datasets(tmp_path / "jit" / f"run{i}.h5")
        assert a.keys() == b.keys()
        for name in a:
            assert np.array_equal(a[name], b[name], equal_nan=True), (RUNS[i][0], name)
            compared += a[name].size
    assert compared > 100_000  # the junction traces are there, not only scalars


def test_a_call_the_compiled_kernels_were_not_built_for_runs_under_numba_with_its_answer():
    """The compiled module does not check its arguments (a float32 table where float64 is
    declared is read as garbage or crashes the process), so each call is checked first:
    a float32, non-contiguous, read-only or big-endian array, an integer where a float is
    declared, a 32-bit integer, a keyword argument, each turns the process to numba and gets numba's
    answer (for the big-endian array, numba's refusal); a call with the declared types
    before them runs compiled, without numba.
    Catches: a check that lets a wrong array through (a crash or a wrong number here,
    run in a process of its own)."""
    _need_compiled()
    code = r"""
import sys
import numpy as np
from twin.kernels import dispatch, props
table = np.array([[1.0, 2.0, 4.0], [10.0, 20.0, 40.0]])
temps = np.array([0.5, 1.5])
ok = props.interp_column(table, 1, 0.0, 1.0, temps)
print('declared', dispatch.mode(), 'numba' in sys.modules, ok.tolist())
calls = {
    'float32 table': lambda: props.interp_column(table.astype(np.float32), 1, 0.0, 1.0, temps),
    'strided table': lambda: props.interp_column(np.repeat(table, 2, axis=1)[:, ::2], 1, 0.0, 1.0, temps),
    'read-only temps': lambda: props.interp_column(table, 1, 0.0, 1.0, np.frombuffer(temps.tobytes())),
    'big-endian temps': lambda: props.interp_column(table, 1, 0.0, 1.0, temps.astype('>f8')),
    'int t0': lambda: props.interp_column(table, 1, 0, 1.0, temps),
    'int32 row': lambda: props.interp_column(table, np.int32(1), 0.0, 1.0, temps),
    'keywords': lambda: props.interp_column(table, 1, 0.0, 1.0, temps=temps),
}
for what, call in calls.items():
    try:
        print(what, call().tolist())
    except Exception as err:  # numba's own refusal
        print(what, type(err).__name__)
print('after', dispatch.mode(), 'numba' in sys.modules)
"""
    out = _python(code, "aot", ROOT).splitlines()
    assert out[0] == "declared aot False [15.0, 30.0]", out
    for line in out[1:-1]:
        # numba refuses a big-endian array itself (as it did before there was a compiled module)
        assert line.endswith("TypingError" if line.startswith("big-endian") else "[15.0, 30.0]"), line
    assert out[-1] == "after jit True", out


def test_a_stale_or_foreign_build_is_not_loaded(tmp_path, monkeypatch):
    """The stamp beside the compiled module names the kernel sources, the processor and the
    numba it was built from; a build from other sources (a kernel edited since), for
    another processor or by another numba is not used. Catches: a stale module running
    old kernel code after an edit, a module with this host's AVX-512 instructions loaded
    on a processor without them (a crash), or one whose last bits differ from the
    installed numba's JIT."""
    stamp = tmp_path / "_aot.stamp"
    monkeypatch.setattr(dispatch, "STAMP", stamp)
    assert "not built" in dispatch._load()[1]
    here = dispatch.sources_digest(names=dispatch.BUILD_FILES)
    stamp.write_text(dispatch.stamp_text("0" * 64, dispatch.machine_tag()))
    assert "other kernel sources" in dispatch._load()[1]
    stamp.write_text(dispatch.stamp_text(here, "ffffffffffffffff"))
    assert "another processor" in dispatch._load()[1]
    good = dispatch.stamp_text(here, dispatch.machine_tag())
    assert f"numba {dispatch.compiler_version()}\n" in good
    stamp.write_text(good.replace(f"numba {dispatch.compiler_version()}", "numba 0.0.1"))
    assert "numba" in dispatch._load()[1]
    if dispatch.machine_tag():
        stamp.write_text(dispatch.stamp_text(here, dispatch.machine_tag()))
        module, why = dispatch._load()
        assert why == "" or why.startswith("cannot be imported"), why


@pytest.mark.parametrize("sig, message", [
    ("f8[::1](f4[::1])", "not a float64/int64"),
    ("f8[::1](f8[::2])", "only ':' and a last '::1'"),
    ("f8[::1](f8[::1, :])", "only ':' and a last '::1'"),
    ("(f8)", "no return type"),
    ("f8", "expected ret(arg, ...)"),
])
def test_a_signature_the_check_cannot_tell_apart_is_refused(sig, message):
    """Only float64/int64 scalars and arrays, C-contiguous or of any layout, may be
    declared: what :func:`twin.kernels.dispatch.accepts` can check before a compiled call.
    Catches: a declared float32 or Fortran-ordered argument that the check would pass
    through unchecked."""
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        dispatch.parse_signature(sig)


def test_the_declared_signatures_read_as_the_check_reads_them():
    """The parsed form of two declared signatures, written out by hand: argument count,
    dtypes, dimensions, layout. Catches: a parser that splits ``f8[:, ::1]`` at its comma,
    or takes a tuple return type's parentheses for the arguments."""
    f8, i8 = np.dtype(np.float64), np.dtype(np.int64)
    c, any_layout = dispatch.ARRAY_C, dispatch.ARRAY_ANY
    assert dispatch.parse_signature("Tuple((f8[::1], i8, f8))(i8[::1], f8[:, ::1], f8, i8)") == (
        "Tuple((f8[::1], i8, f8))", ((i8, 1, c), (f8, 2, c), float, int))
    assert dispatch.parse_signature("f8[::1](f8[:, :, ::1], f8[:])") == (
        "f8[::1]", ((f8, 3, c), (f8, 1, any_layout)))


def test_the_flag_bits_are_numpys():
    """The check reads an array's flags as one integer (``flags.num``) against numpy's bit
    values, written out in twin.kernels.dispatch; each bit against the named flag, on
    arrays that have it and arrays that do not. Catches: a wrong bit value, which would
    let a strided or read-only array through to the compiled code."""
    base = np.zeros((4, 4))
    readonly = base.copy()
    readonly.flags.writeable = False
    unaligned = np.frombuffer(np.zeros(8 * 4 + 1, np.uint8).data, dtype=np.float64, count=4, offset=1)
    for a in (base, base[:, ::2], base.T, readonly, unaligned, np.zeros(0)):
        num = a.flags.num
        assert bool(num & dispatch.C_CONTIGUOUS) == a.flags.c_contiguous
        assert bool(num & dispatch.ALIGNED) == a.flags.aligned
        assert bool(num & dispatch.WRITEABLE) == a.flags.writeable
    assert not unaligned.flags.aligned and not readonly.flags.writeable and not base[:, ::2].flags.c_contiguous


def test_the_check_passes_the_declared_types_only():
    """Each kind of argument the compiled wrapper would misread, against a declared
    signature, one at a time (in this process: no compiled call is made). Catches: a check
    that drops the dtype, dimension, layout, writeable, byte-order or scalar-kind test
    (the kernel that reads its table by strides gives the right answer with a strided
    table, so the call test above would not see every one of them)."""
    _, spec = dispatch.parse_signature("f8[::1](f8[:, ::1], i8, f8, f8[:], i8[::1])")
    table, ints = np.zeros((2, 3)), np.arange(3)
    good = [table, 1, 0.5, np.zeros(4)[::2], ints]
    assert dispatch.accepts(spec, good)
    assert dispatch.accepts(spec, [table, np.int64(1), np.float64(0.5), np.zeros(2), ints])
    # an unpickled array (a check worker's scenario, a cached table) has a copy of numpy's
    # dtype object, not numpy's own: equal, so accepted
    unpickled = pickle.loads(pickle.dumps(table))
    assert unpickled.dtype is not table.dtype
    assert dispatch.accepts(spec, [unpickled] + good[1:])
    readonly = table.copy()
    readonly.flags.writeable = False
    wrong = {
        "float32 table": (0, table.astype(np.float32)),
        "Fortran-ordered table": (0, np.zeros((3, 2)).T),
        "1-d table": (0, np.zeros(6)),
        "read-only table": (0, readonly),
        "big-endian table": (0, table.astype(">f8")),
        "list for an array": (4, [0, 1, 2]),
        "float for an int": (1, 1.0),
        "bool for an int": (1, True),
        "int32 for an int": (1, np.int32(1)),
        "int for a float": (2, 1),
        "float32 for a float": (2, np.float32(0.5)),
        "int32 array for int64": (4, ints.astype(np.int32)),
    }
    for what, (i, value) in wrong.items():
        args = list(good)
        args[i] = value
        assert not dispatch.accepts(spec, args), what
    assert not dispatch.accepts(spec, good[:-1])


def test_every_kernel_file_is_part_of_the_compiled_modules_stamp():
    """A kernel file the stamp does not cover could change without making the compiled
    module stale. Catches: a new kernel module left out of KERNEL_FILES."""
    with_kernels = {p.name for p in dispatch.HERE.glob("*.py")
                    if any(ln.startswith("@kernel(") for ln in p.read_text().splitlines())}
    assert with_kernels == set(dispatch.KERNEL_FILES)


def test_a_build_that_cannot_be_made_says_why_on_one_line_and_leaves_the_old_module():
    """`python -m twin.kernels.aot` where no module can be built for this processor (here:
    no description of it, as off Linux): exit 1, one line naming the reason, and the
    module and stamp already there untouched (processes go on as before). Catches: a
    build that fails with a traceback in `make`'s output, or removes a working module
    before it knows it can replace it."""
    before = {p.name: p.stat().st_mtime_ns for p in dispatch.HERE.glob("_aot*")}
    code = ("import sys; from twin.kernels import dispatch, aot; dispatch.machine_tag = lambda: ''; "
            "sys.exit(aot.main([]))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 1, r.stderr
    assert r.stderr.strip().splitlines() == [
        "twin.kernels.aot: not built, the kernels run under numba's JIT: no processor description to stamp "
        "the module with (Linux's /proc/cpuinfo)"], r.stderr
    assert {p.name: p.stat().st_mtime_ns for p in dispatch.HERE.glob("_aot*")} == before


def test_a_bad_kernels_setting_is_one_line_and_exit_2():
    """``TWIN_KERNELS`` is input: a value that is not a mode is refused as bad input is,
    on one line with exit 2, before anything runs. Catches: the RuntimeError traceback
    it gave."""
    r = subprocess.run([sys.executable, "-m", "twin.cli", "run", "reference-w32"], capture_output=True, text=True,
                       cwd=ROOT, timeout=120, env={**os.environ, "TWIN_KERNELS": "bogus"})
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().splitlines() == [
        "error: environment: TWIN_KERNELS: 'bogus': expected one of auto, jit, aot"], r.stderr
    assert r.stdout == ""
