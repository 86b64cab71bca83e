"""The scenario catalogue: runnable scenarios by name, from any directory.

The catalogue is the repository's ``scenarios/`` folder, found beside the ``twin``
package (``make`` installs it editable), or the folders of ``TWIN_SCENARIO_PATH``
(separated like ``PATH``). A scenario's catalogue name is its path below the folder
without ``.toml``: ``reference-w32``, ``faults/cdu-trip``. Runnable scenarios are the
files with a top-level ``name``; the parts they include (racks, CDUs, facilities) are not.

Standard library only: resolving a name costs no heavy import.
"""
from __future__ import annotations

import os
import tomllib
from pathlib import Path

from .errors import TwinInputError, did_you_mean

ENV = "TWIN_SCENARIO_PATH"


def folders() -> list[Path]:
    """The catalogue folders, in search order."""
    env = os.environ.get(ENV)
    if env:
        return [Path(p).expanduser() for p in env.split(os.pathsep) if p]
    return [Path(__file__).resolve().parent.parent / "scenarios"]


def entries(folder: Path) -> list[tuple[str, Path, str]]:
    """(name, path, description) of every runnable scenario under ``folder``, by name;
    an unreadable or malformed file is listed with that as its description."""
    out = []
    for path in sorted(folder.rglob("*.toml")):
        name = path.relative_to(folder).with_suffix("").as_posix()
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, RecursionError):
            out.append((name, path, "(malformed TOML)"))
            continue
        if "name" in data:
            out.append((name, path, str(data.get("description", ""))))
    return out


def _runnable(path: Path) -> bool:
    try:
        return path.is_file() and "name" in tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, RecursionError):
        return True  # let the loader report what is wrong with it


def resolve(arg, field: str = "SCENARIO") -> Path:
    """A scenario path from a path or a catalogue name (``faults/cdu-trip``, with or
    without ``.toml``). An existing path wins; an unknown name is reported with the
    nearest catalogue names."""
    path = Path(arg)
    if os.path.lexists(path):
        return path
    if path.is_absolute() or str(arg).startswith(("./", "../")):
        raise TwinInputError(arg, field, "file not found")
    name = str(arg).removesuffix(".toml")
    for folder in folders():
        candidate = folder / f"{name}.toml"
        if candidate.is_file() and ".." not in Path(name).parts and _runnable(candidate):
            return candidate
    known = [n for folder in folders() if folder.is_dir() for n, _, _ in entries(folder)]
    where = ", ".join(str(f) for f in folders())
    hint = did_you_mean(name, known) or did_you_mean(Path(name).name, known)
    raise TwinInputError(arg, field, f"file not found, nor a scenario of that name in the catalogue ({where}; "
                                     f"see twin scenarios){hint}")
