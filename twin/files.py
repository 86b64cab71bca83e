"""Which files the twin reads and writes, checked before any is opened.

Inputs (scenario, included files, replay traces, telemetry to inspect) must be regular
files: opening a FIFO blocks until a writer appears, a device such as ``/dev/zero`` never
ends. The output (``-o``) must not be an input of the same run, a directory, a device or
a FIFO, and an existing file there is only replaced when it is a previous rack-twin
telemetry file. A missing parent directory is created (as ``make run`` relies on), unless
something that is not a directory stands in its way.

Standard library only: these checks run before the heavy imports.
"""
from __future__ import annotations

import os
import stat
from contextlib import contextmanager
from pathlib import Path

from .errors import TwinInputError

# The HDF5 format signature (HDF5 File Format Specification, "Format Signature"; at byte
# 0, or at 512, 1024, 2048, ... after a user block).
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
# What a scenario file may weigh: they are written by hand (the largest in the catalogue
# is ~6 KB); a bigger "scenario" is something else given by mistake.
MAX_TOML_BYTES = 10_000_000


def kind_of(mode: int) -> str:
    """A file type in words (for messages)."""
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def regular_file(path, file=None, field: str = "", what: str = "file") -> os.stat_result:
    """``os.stat`` of ``path``, which must be an existing regular file (symlinks followed).

    Errors name ``file`` (default: ``path``) and ``field``; ``what`` names the path in
    the message ("file", "included file 'racks/x.toml'")."""
    file = path if file is None else file
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise TwinInputError(file, field, f"{what} not found") from None
    except NotADirectoryError:
        raise TwinInputError(file, field, f"{what} not found: a part of its path is not a directory") from None
    except OSError as exc:
        raise TwinInputError(file, field, f"cannot read {what}: {exc.strerror or exc.__class__.__name__}") from None
    if not stat.S_ISREG(st.st_mode):
        raise TwinInputError(file, field, f"{what} is {kind_of(st.st_mode)}, not a regular file")
    return st


def is_hdf5(path) -> bool:
    """Whether a regular file carries the HDF5 signature: at its start, or after a user
    block of 512, 1024, 2048, ... bytes (the places the specification allows)."""
    try:
        with open(path, "rb") as f:
            head = f.read(64 * 1024)
    except OSError:
        return False
    offsets = [0] + [512 << n for n in range(7)]
    return any(head[o:o + len(HDF5_SIGNATURE)] == HDF5_SIGNATURE for o in offsets)


def _same(a, b) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def check_output(path, inputs: dict, option: str = "-o") -> None:
    """Refuse an output path the run must not write (see the module docstring).

    ``inputs``: file -> its role in the run ("the scenario", "an included file", ...). The
    writer also uses ``PATH.partial`` while it runs; that name must not be an input either."""
    path = Path(path)
    scratch = path.with_name(path.name + ".partial") if path.name else path
    for target in (path, scratch):
        for inp, role in inputs.items():
            if _same(target, inp):
                raise TwinInputError(path, option, f"{target} is {role} of this run; refusing to overwrite an input")
    try:
        st = os.stat(path)
    except FileNotFoundError:
        st = None
    except NotADirectoryError:
        st = None  # reported below: a file stands where a parent directory should be
    except OSError as exc:
        raise TwinInputError(path, option, f"cannot write: {exc.strerror or exc.__class__.__name__}") from None
    if st is not None:
        if not stat.S_ISREG(st.st_mode):
            raise TwinInputError(path, option, f"is {kind_of(st.st_mode)}; give a file path for the telemetry")
        if not _is_telemetry(path):
            raise TwinInputError(path, option, "exists and is not a rack-twin telemetry file; refusing to overwrite it")
    if os.path.lexists(scratch) and not os.path.isfile(scratch):
        raise TwinInputError(path, option, f"{scratch} (the writer's scratch file) exists and is not a regular file")
    parent = Path(os.path.abspath(path)).parent
    while not os.path.lexists(parent) and parent != parent.parent:
        parent = parent.parent
    if not os.path.isdir(parent):
        raise TwinInputError(path, option, f"cannot create its directory: {parent} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise TwinInputError(path, option, f"cannot write in {parent}: permission denied")


PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def check_replaceable(path, magic: bytes, what: str, option: str = "-o", within: int = 0) -> None:
    """An output may replace an earlier one of its kind, never a directory, an input
    or any other file: an existing file must start with ``magic`` (or, ``within`` > 0,
    hold it in its first ``within`` bytes: a text format's mark)."""
    path = Path(path)
    if path.is_dir():
        raise TwinInputError(path, option, "is a directory")
    if path.exists():
        try:
            with open(path, "rb") as f:
                head = f.read(max(len(magic), within))
        except OSError:
            head = b""
        if not (magic in head if within else head == magic):
            raise TwinInputError(path, option, f"exists and is not {what}; refusing to overwrite it")


def _refused(path, option: str, exc: OSError) -> TwinInputError:
    """``cannot write: REASON``, naming the directory the OS refused when it is not the
    output's own (h5py's errors carry a long message: its errno is enough)."""
    why = os.strerror(exc.errno) if exc.errno else (exc.strerror or exc.__class__.__name__)
    path = Path(path)
    where = exc.filename if exc.filename and Path(exc.filename).name not in (path.name, path.name + ".partial") else ""
    return TwinInputError(path, option, f"cannot write: {why}" + (f" ({where})" if where else ""))


def probe_output(path, option: str = "-o") -> None:
    """Find out, before the work that produces it, whether ``path`` can be written: its
    missing directories are created and its scratch file ``PATH.partial`` created and
    removed again. What the permission bits do not tell (a read-only file system, a name
    under ``/proc``, a file where a directory should be; root passes every ``os.access``)
    is bad input on one line."""
    path = Path(path)
    scratch = path.with_name(path.name + ".partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if not os.path.lexists(scratch):
            with open(scratch, "xb"):
                pass
            os.unlink(scratch)
    except OSError as exc:
        raise _refused(path, option, exc) from None


@contextmanager
def writing(path, option: str = "-o"):
    """Around the writing of ``path`` (through ``PATH.partial``, renamed into place): an
    OS error (no space left, a directory made read-only meanwhile) becomes one line
    naming the output, and the scratch file is removed; an existing ``path`` is left as
    it was."""
    path = Path(path)
    try:
        yield
    except OSError as exc:
        try:
            path.with_name(path.name + ".partial").unlink(missing_ok=True)
        except OSError:
            pass
        raise _refused(path, option, exc) from None


def prepare_output(path, magic: bytes, what: str, option: str = "-o", within: int = 0, inputs=()) -> None:
    """Before the work that produces it: ``path`` is none of ``inputs``, may replace only an
    earlier output of its kind (:func:`check_replaceable`) and can be written
    (:func:`probe_output`)."""
    for inp in inputs:
        if _same(path, inp):
            raise TwinInputError(path, option, "is an input of this command; refusing to overwrite it")
    check_replaceable(path, magic, what, option, within)
    probe_output(path, option)


def write_whole(path, data, option: str = "-o") -> None:
    """Write ``data`` (text, UTF-8, or bytes) to ``PATH.partial`` and rename it into place:
    a file that exists is whole; an OS error is one line naming the output (:func:`writing`)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".partial")
    with writing(path, option):
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            tmp.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise


def _is_telemetry(path) -> bool:
    """A previous result: an HDF5 file with the rack-twin schema attribute."""
    if not is_hdf5(path):
        return False
    import h5py

    from .telemetry import SCHEMA
    try:
        with h5py.File(path, "r") as f:
            schema = f.attrs.get("schema")
    except (OSError, RuntimeError, ValueError):
        return False
    if isinstance(schema, bytes):
        schema = schema.decode(errors="replace")
    return isinstance(schema, str) and schema.split("/")[0] == SCHEMA.split("/")[0]
