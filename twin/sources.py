"""Scenario files before the schema: TOML read from regular files, includes merged,
dotted-key overrides applied, and the file (or option) each key came from.

Includes: a top-level ``include = ["racks/nvl72-class.toml", ...]`` merges the named files
(paths relative to the including file) underneath the including file, which wins on
conflicts; tables merge key by key, everything else is replaced.

Standard library only: a file that is missing, not a regular file, not UTF-8 or not TOML,
an include cycle or a malformed ``--set`` is reported before the schema (pydantic) is
imported. :mod:`twin.scenario` validates what :func:`gather` returns.
"""
from __future__ import annotations

import copy
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from .errors import TwinInputError
from .files import MAX_TOML_BYTES, regular_file

# Includes nest a few levels (scenario -> rack -> parts); deeper is a mistake (ASSUMPTION).
MAX_INCLUDE_DEPTH = 16


@dataclass
class Sources:
    """A scenario's raw data: merged includes with overrides applied (``data``), the file
    or option that set each key (``origins``: key tuple -> Path or ``"FILE (--set KEY)"``)
    and the files read, the scenario first (``files``)."""

    path: Path
    data: dict
    origins: dict = field(default_factory=dict)
    files: list = field(default_factory=list)

    def where(self, key: str):
        """The file (or option) that set a dotted key."""
        return where(self.origins, key, self.path)

    def inputs(self) -> dict:
        """Every file read -> its role (for refusing to write over one)."""
        return {f: "the scenario file" if i == 0 else "an included file" for i, f in enumerate(self.files)}


def gather(path, overrides: Optional[dict | list] = None, options: Optional[dict] = None) -> Sources:
    """Read a scenario and its includes and apply overrides: ``overrides`` is a dict
    ``{"facility.supply_temp_c": 45}`` or ``--set`` strings ``"key=value"``; ``options``
    maps a dotted key to (value, option name) for overrides given by another option
    (``--duration``), so that errors in them name the option."""
    path = Path(path)
    data, origins, files = _resolve_includes(path)
    if isinstance(overrides, (list, tuple)):
        overrides = dict(parse_override(o) for o in overrides)
    elif overrides is not None and not isinstance(overrides, dict):
        raise TwinInputError(path, "overrides", f"expected a dict {{key: value}} or a list of 'key=value' strings, "
                                                f"got {type(overrides).__name__}")
    given = {key: (_plain(value), f"--set {key}") for key, value in (overrides or {}).items()}
    given.update(options or {})
    for key, (value, option) in given.items():
        origin = _by_option(path, option)
        set_dotted(data, key, value, origin)
        k = tuple(key_parts(key))
        for o in list(origins):  # an override is reported against the scenario and its option
            if o[:len(k)] == k:
                origins[o] = origin
        origins[k] = origin
    _row_rack_includes(path, data, origins, files)
    return Sources(path, data, origins, files)


def _plain(value):
    """An override given in Python as TOML would give it: a ``pathlib.Path`` as the text of
    its absolute path (a relative one is relative to the working directory, where the
    caller made it), inside dicts and lists too."""
    if isinstance(value, os.PathLike):
        return str(Path(value).absolute())
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _by_option(path, option: str) -> str:
    """The origin of a key an option set: ``"FILE (--set KEY)"`` (:func:`option_of` reads it)."""
    return f"{path} ({option})"


def option_of(origin) -> str:
    """The option (``--set KEY``, ``--duration``) that set a key of this origin; "" for a file."""
    if isinstance(origin, Path) or not str(origin).endswith(")") or " (" not in str(origin):
        return ""
    text = str(origin)
    return text[text.rindex(" (") + 2:-1]


def relative_base(origin) -> Path:
    """What a relative path in a scenario is relative to: the folder of the file that
    wrote it; a path given on the command line (``--set``) or in Python (an override) is
    relative to the working directory, as every other path given there is."""
    return Path(origin).parent if isinstance(origin, Path) else Path.cwd()


def where(origins: Optional[dict], key: str, default):
    """The file that set the deepest known part of a dotted key."""
    loc = tuple(key_parts(key))
    for n in range(len(loc), 0, -1):
        if origins and loc[:n] in origins:
            return origins[loc[:n]]
    return default


def show(value, width: int = 40) -> str:
    """A value as the user wrote it, shortened."""
    text = repr(value)
    return text if len(text) <= width else text[:width - 3] + "..."


def read_toml(path: Path) -> dict:
    """A regular file's TOML (the caller has checked it is one)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise TwinInputError(path, "", f"cannot read: {exc.strerror or exc.__class__.__name__}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TwinInputError(path, "", f"not a TOML text file: byte {exc.start} is not UTF-8") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise TwinInputError(path, "", f"malformed TOML: {exc}") from None
    except RecursionError:
        raise TwinInputError(path, "", "malformed TOML: arrays or tables nested too deeply") from None


def merge(base: dict, top: dict) -> dict:
    """``top`` over ``base``: tables merge key by key, everything else is replaced."""
    out = copy.deepcopy(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _origins(data, path, prefix=()) -> dict:
    """Map every dotted key prefix in ``data`` to the file it came from."""
    out = {}
    for key, value in data.items():
        k = prefix + (str(key),)
        out[k] = path
        if isinstance(value, dict):
            out.update(_origins(value, path, k))
        elif isinstance(value, list):
            for i, item in enumerate(value):
                out[k + (str(i),)] = path
                if isinstance(item, dict):
                    out.update(_origins(item, path, k + (str(i),)))
    return out


def _resolve_includes(path: Path, seen: tuple = (), via: tuple = ()) -> tuple[dict, dict, list]:
    """The merged data of a file and its includes, which file each key came from, and the
    files read (this one first). ``via``: (including file, its include entry)."""
    file, key, what = (via[0], "include", f"included file {via[1]!r}") if via else (path, "scenario", "file")
    st = regular_file(path, file, key, what)
    if st.st_size > MAX_TOML_BYTES:
        raise TwinInputError(file, key, f"{what} has {st.st_size} bytes: not a scenario file "
                                        f"(limit {MAX_TOML_BYTES // 1_000_000} MB)")
    path = path.resolve()
    if path in seen:
        chain = " -> ".join(p.name for p in seen[seen.index(path):] + (path,))
        raise TwinInputError(file, key, f"include cycle: {chain}")
    if len(seen) >= MAX_INCLUDE_DEPTH:
        raise TwinInputError(file, key, f"includes nested deeper than {MAX_INCLUDE_DEPTH} files")
    data = read_toml(path)
    includes = data.pop("include", [])
    if isinstance(includes, str):
        includes = [includes]
    if not isinstance(includes, list) or not all(isinstance(i, str) and i.strip() for i in includes):
        raise TwinInputError(path, "include", f"must be a list of file paths, got {show(includes)}")
    merged: dict = {}
    origins: dict = {}
    files = [path]
    for inc in includes:
        inc_data, inc_origins, inc_files = _resolve_includes(path.parent / inc, seen + (path,), (path, inc))
        merged = merge(merged, inc_data)
        origins.update(inc_origins)
        files += [f for f in inc_files if f not in files]
    origins.update(_origins(data, path))
    return merge(merged, data), origins, files


def _row_rack_includes(path: Path, data: dict, origins: dict, files: list) -> None:
    """A row position's ``include = "racks/....toml"`` takes that file's ``[rack]`` table
    (its own includes resolved), under what the position gives in its own ``rack`` table.
    The path is relative to the file that declared the position (:func:`relative_base`)."""
    row = data.get("row")
    racks = row.get("racks") if isinstance(row, dict) else None
    if not isinstance(racks, list):
        return
    for i, entry in enumerate(racks):
        if not isinstance(entry, dict) or "include" not in entry:
            continue
        inc = entry.pop("include")
        declared = origins.get(("row", "racks", str(i)), path)
        if not isinstance(inc, str) or not inc.strip():
            raise TwinInputError(declared, f"row.racks.{i}.include", f"must be a rack file's path, got {show(inc)}")
        try:
            inc_data, inc_origins, inc_files = _resolve_includes(relative_base(declared) / inc, (), (declared, inc))
        except TwinInputError as exc:
            if exc.field != "include":
                raise
            raise TwinInputError(exc.file, f"row.racks.{i}.include", exc.message) from None
        if not isinstance(inc_data.get("rack"), dict):
            raise TwinInputError(declared, f"row.racks.{i}.include", f"{inc} has no [rack] table")
        own = entry.get("rack", {})
        entry["rack"] = merge(inc_data["rack"], own if isinstance(own, dict) else {})
        prefix = ("row", "racks", str(i))
        for k, v in inc_origins.items():
            if k[:1] == ("rack",) and prefix + k not in origins:
                origins[prefix + k] = v
        files += [f for f in inc_files if f not in files]


def key_parts(key: str) -> list:
    """The parts of a dotted key; a part in double quotes may hold dots and slashes, as
    in TOML: ``overrides."rack01/tray09/gpu1".r_tim_k_per_w``."""
    parts, cur, quoted = [], "", False
    for ch in key:
        if ch == '"':
            quoted = not quoted
        elif ch == "." and not quoted:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return parts


def set_dotted(data: dict, key: str, value, file) -> None:
    """Set ``data[a][b]...`` for ``a.b...``; list elements by index (``faults.0.value``);
    quoted parts as in TOML (:func:`key_parts`)."""
    parts = key_parts(key)
    if any(not p.strip() for p in parts):
        raise TwinInputError(file, key, "empty part in the dotted key")
    node = data
    for i, part in enumerate(parts):
        here = ".".join(parts[:i])
        last = i == len(parts) - 1
        if isinstance(node, list):
            try:
                index = int(part)
                if not -len(node) <= index < len(node):
                    raise IndexError
            except (ValueError, IndexError):
                raise TwinInputError(file, key, f"no list element {part!r} ({here} has {len(node)})") from None
            if last:
                node[index] = value
            node = node[index]
        elif isinstance(node, dict):
            if last:
                node[part] = value
            elif part not in node:
                if parts[i + 1].lstrip("-").isdigit():
                    raise TwinInputError(file, key, f"no list element {parts[i + 1]!r} ({'.'.join(parts[:i + 1])} "
                                                    "is not set)")
                node[part] = {}  # an unknown key: validation names it
            node = node[part]
        else:
            raise TwinInputError(file, key, f"{here} is a value, not a table or list")


def parse_override(text: str, file="--set") -> tuple[str, object]:
    """Parse ``dotted.key=value``; the value is read as a TOML value, else as a string."""
    if "=" not in text:
        raise TwinInputError(file, text, "expected dotted.key=value")
    key, raw = text.split("=", 1)
    key, raw = key.strip(), raw.strip()
    if not key:
        raise TwinInputError(file, text, "empty key")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except (tomllib.TOMLDecodeError, RecursionError, KeyError):
        value = raw
    return key, value
