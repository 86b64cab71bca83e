"""Provenance: every physics number says where it comes from, in a way a reviewer can check.

The rules, exactly as the checks below apply them:

Citations
  A *tag* is a name in square brackets: an upper-case letter, then upper-case letters or
  digits, in groups joined by single hyphens, two characters at least (``[LEN]``,
  ``[NV-DS]``, ``[FAN07]``). Unit brackets (``[W]``, ``[K/W]``, ``[degC, L/min]``) are not
  tags, nor is a bracketed name directly followed by ``(`` (a Markdown link). A tag is
  *defined* when a table row of docs/sources.md begins with it in backquotes
  (``| `[LEN]` | reference | used for |``). The *marker* is the word ``ASSUMPTION``, in
  capitals, as a whole word, that spelling only (``ASSUMPTIONS``, ``assumption``,
  ``Assumption`` or ``assumed`` do not count). A *citation* is a defined tag or the marker.

(a) Scenario files: every ``*.toml`` under scenarios/. A *number line* is a ``key = value``
  line whose value, with its strings and comment removed (a multi-line array taken whole),
  holds a number: an integer or float literal, ``inf`` or ``nan``, alone or inside an array
  or inline table. Every number line needs a citation in one of
    1. its own comment (on any line of a multi-line value);
    2. the comment block directly above it: the full-line comments right above its first
       line (a blank line, a key line or a table header ends the block);
    3. the comment of its table's header line (``[table]`` or ``[[array]]``) or the comment
       block directly above that header: a citation there covers every key of that table,
       up to the next header. (Keys before the first header have no header.)
  Exempt, by dotted key with array indices dropped (``EXEMPT_TOML_KEYS``): the run
  settings (``simulation.*`` step, duration and output intervals, ``workload.seed``) and
  the scenario's own choice of when things happen and how many GPUs a job takes (fault,
  schedule and job start/end times, ``workload.jobs.gpus``): they are the question a
  scenario asks, not a property of the hardware.

(b) Code: every ``*.py`` under twin/. Checked statements:
    1. a module-level assignment to UPPER_CASE names whose value holds an int or float
       literal (a value that is a ``range(...)`` call enumerates array columns and is not
       checked);
    2. in a pydantic model (a class deriving from ``BaseModel``, directly or through a
       model class of the same module), a field whose default is an int or float literal:
       ``name: T = 0.3``, ``Field(default=0.3, ...)`` or ``Field(0.3, ...)``.
  Each needs a citation in a comment on one of the statement's lines, in the comment block
  directly above it (as in (a) 2), or, for a field, in its ``Field(description=...)``.
  Exempt, by module and name (``NOT_PHYSICS``): numbers that are not physics (unit
  conversions, numerical tolerances and grids, array layouts, I/O and run-size limits,
  the neutral default of a calibration multiplier or of an effect that is off unless a
  scenario turns it on, run settings). An exempt module constant must still carry a
  comment (on its lines or directly above) that says what it is.

(c) Every tag written in scenarios/ (TOML and Markdown), in docs/ and README.md and in twin/
  and tests/ (comments and string literals of Python) is defined in docs/sources.md.

(d) Every ``*.md`` path mentioned in README.md, docs/, scenarios/ (comments and
  descriptions: the whole text), twin/, tests/, benchmarks/, calibration/ or schemas/
  (URLs aside) names a file of the repository, relative to the mentioning
  file or to the repository root; and none of those files points into the ``shared``
  directory that sits beside the repository (as ``shared/...`` or a ``..``-relative path
  into it) or at an absolute path under ``/work``. This file is left out of (c) and (d):
  its tests of the checker plant such tags and references on purpose.

The checks are plain functions of text, each tested on small synthetic inputs that
plant a fault, so a checker that stopped looking would fail here too.
"""
from __future__ import annotations

import ast
import functools
import io
import re
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES_MD = ROOT / "docs" / "sources.md"
THIS = Path(__file__).resolve()

TAG = re.compile(r"\[([A-Z][A-Z0-9]*(?:-[A-Z0-9]+)*)\](?!\()")
MARKER = re.compile(r"\bASSUMPTION\b")
DEFINED_ROW = re.compile(r"^\|\s*`\[([A-Z][A-Z0-9]*(?:-[A-Z0-9]+)*)\]`")

# (a) keys that are run settings or the scenario's own question (dotted, indices dropped)
EXEMPT_TOML_KEYS = frozenset({
    # how finely and how long the run is computed and recorded
    "simulation.duration_s", "simulation.time_step_s", "simulation.output_interval_s",
    "simulation.hydraulic_update_s",
    # the random stream of failures, stragglers and jitter
    "workload.seed",
    # when a scenario's events happen and how many GPUs a job takes
    "faults.start_s", "faults.end_s", "workload.schedule.start_s", "workload.schedule.end_s",
    "workload.jobs.start_s", "workload.jobs.start_hour", "workload.jobs.duration_s", "workload.jobs.gpus",
    "workload.replay.start_s",
    # how many racks of a definition a row holds, and when each rack's workload runs
    "row.racks.count", "row.racks.phase_offset_s", "row.phase_step_s",
})

# (b) names that are not physics numbers, by module (path under twin/)
NOT_PHYSICS = {
    "build.py": {"HA_TEMPS_C", "HA_FLOWS_LPM",  # interpolation grids of the plate tables
                 "HA_TABLES_MAX"},  # a cache size
    "components/base.py": {"LPM", "KPA"},  # unit conversions
    "budget.py": {"MAX_OUTPUT_BYTES", "MAX_MEMORY_BYTES", "MAX_WALL_S",  # run-size limits
                  "REFERENCE_CHIPS", "STEP_S", "ROW_S", "DES_EVENT_S",  # cost model of the run-size estimate
                  "REFERENCE_STEP_S", "REFERENCE_OUTPUT_S"},
    "coolant.py": {"TABLE_T_MIN_C", "TABLE_T_MAX_C", "TABLE_STEP_C", "TABLE_METHOD"},  # table grid; cache-key version
    "network.py": {"HYDRAULIC_TOL_PA", "HYDRAULIC_FAIL_PA", "FLOW_CONTROL_RTOL",  # solver tolerances
                   "REUSE_TOL_K"},  # numerical method
    "steady.py": {"STEADY_DT_S", "STEADY_TOL_K", "STEADY_GAIN_SCALE", "WARMUP_S"},  # numerical method
    "sizing.py": {"FTOL_REL", "XTOL_REL", "MAX_ITER", "END_STEP", "END_TRIES", "WALK_STEP",  # root search
                  "MAX_SWEEP_POINTS"},  # run-size limit
    "files.py": {"MAX_TOML_BYTES"},  # input size limit
    "calibration/fit.py": {"UNIDENTIFIABLE_SE", "TRADE_OFF_CORR",  # diagnostic thresholds (cited in the module)
                           "CAL_STEP_S", "DIFF_STEP"},  # numerical method
    "calibration/spec.py": {"holdout_fraction"},  # how the data are split, not physics
    "importer.py": {"GALLON_L", "PSI_KPA", "UNITS",  # unit conversions
                    "GAP_INTERVALS", "SNAP_GAP_FRACTION", "ROUND_OFF",  # resampling rule; round-off tolerance
                    "MAX_IMPORT_BYTES"},  # input size limit
    "margins.py": {"GOODPUT_RTOL"},  # round-off tolerance
    # twin check's default regression tolerances (judgement, stated in the module) and round-off slack
    "baseline.py": {"TOLERANCES", "TOLERANCE_BY_NAME", "FALLBACK_TOLERANCE"},
    "check.py": {"ROUND_OFF"},
    "sweeps/runner.py": {"FLUSH_S"},  # I/O pacing of the part files
    "sweeps/spec.py": {"MAX_RUNS",  # plan size limit
                       "seed", "levels"},  # random streams and a sampling design's grid
    "plots.py": {"DPI", "MAX_EVENT_MARKS", "MAX_HEATMAP_COLUMNS", "MAX_GPU_TICKS"},  # image size and legibility
    "telemetry.py": {"CHUNK_ROWS", "BATCH_ROWS"},  # HDF5 I/O
    "traces.py": {"MAX_TRACE_POWER_W"},  # input sanity limit
    "kernels/hydraulics.py": {"MIN_SLOPE"},  # Newton safeguard
    "kernels/thermal.py": {"FLUID", "PLATE", "HX", "N_PK", "N_SW", "N_CI", "N_CF", "ACC_CHIPS",  # array layout
                            "PK_PHI", "PK_GAM", "PK_PSI_F", "PK_LAM_F", "PK_CF",
                            "SERIES_X"},  # numerical switch-over (series or expm1), exact either side
    "kernels/workload.py": {"N_WP", "N_WS", "N_JP", "N_JS", "N_JT",  # array layout
                            "NEVER"},  # the finite stand-in for infinity
    "scenario.py": {
        "MARGIN_DEFAULTS",  # the design criteria (no throttling, every tray at its flow), not physics
        # neutral defaults: a calibration multiplier of 1, an effect that is off (0) unless
        # a scenario turns it on, a fault's own parameters
        "dp_scale", "head_scale", "ua_scale", "convective_resistance_scale", "loss_scale", "fouling_k_per_w", "k_fittings", "balancing_k",
        "aux_power_w", "aux_liquid_fraction", "checkpoint_duration_s", "failures_per_day",
        "straggler_count", "power_jitter_fraction", "severity", "value",
        # run settings and when things happen (as (a))
        "seed", "time_step_s", "output_interval_s", "hydraulic_update_s", "start_s", "start_hour",
        # how many identical racks a row position holds; when a rack's workload runs
        "count", "phase_offset_s", "phase_step_s",
    },
}


# --------------------------------------------------------------------------- shared

def defined_tags(sources_md: str) -> set:
    """Tags with a row of their own in docs/sources.md."""
    return {m.group(1) for line in sources_md.splitlines() if (m := DEFINED_ROW.match(line.strip()))}


def tags_in(text: str) -> list:
    return [m.group(1) for m in TAG.finditer(text) if len(m.group(1)) >= 2]


def cites(text: str, defined: set) -> bool:
    """Whether ``text`` holds a citation: the marker or a defined tag."""
    return bool(MARKER.search(text)) or any(t in defined for t in tags_in(text))


# --------------------------------------------------------------------------- (a) TOML

_NUMBER = re.compile(r"(?<![A-Za-z0-9_.])[+-]?(?:\d|\.\d|inf\b|nan\b)")
_HEADER = re.compile(r"^\s*\[\[?\s*([^\[\]]+?)\s*\]\]?\s*$")
_KEY = re.compile(r"^\s*([A-Za-z0-9_\-.\"' ]+?)\s*=(.*)$")


def _split_toml_line(line: str) -> tuple:
    """(code with string contents removed, comment text) of one TOML line."""
    code, i, quote = [], 0, None
    while i < len(line):
        c = line[i]
        if quote:
            if quote == '"' and c == "\\":
                i += 2
                continue
            if c == quote:
                quote = None
                code.append(c)
        elif c in "\"'":
            quote = c
            code.append(c)
        elif c == "#":
            return "".join(code), line[i + 1:]
        else:
            code.append(c)
        i += 1
    return "".join(code), ""


def _block_above(lines: list, i: int) -> str:
    """The full-line comments directly above line ``i``."""
    out = []
    j = i - 1
    while j >= 0 and lines[j].strip().startswith("#"):
        out.append(lines[j])
        j -= 1
    return "\n".join(reversed(out))


def toml_uncited(text: str, defined: set, exempt=EXEMPT_TOML_KEYS) -> list:
    """Number lines of a TOML text without a citation: [(line number, dotted key, line)]."""
    lines = text.splitlines()
    out = []
    table, table_cited = "", False
    i = 0
    while i < len(lines):
        code, comment = _split_toml_line(lines[i])
        if not code.strip():
            i += 1
            continue
        header = _HEADER.match(code)
        if header:
            table = header.group(1).replace('"', "").replace("'", "").replace(" ", "")
            table_cited = cites(comment + "\n" + _block_above(lines, i), defined)
            i += 1
            continue
        key = _KEY.match(code)
        if not key:
            i += 1
            continue
        first, value, comments = i, key.group(2), [comment]
        depth = value.count("[") + value.count("{") - value.count("]") - value.count("}")
        while depth > 0 and i + 1 < len(lines):
            i += 1
            more, c = _split_toml_line(lines[i])
            value += " " + more
            comments.append(c)
            depth += more.count("[") + more.count("{") - more.count("]") - more.count("}")
        value = re.sub(r"\"[^\"]*\"|'[^']*'", "", value)
        name = key.group(1).replace('"', "").replace("'", "").replace(" ", "")
        dotted = f"{table}.{name}" if table else name
        if _NUMBER.search(value) and dotted not in exempt:
            if not (cites("\n".join(comments), defined) or cites(_block_above(lines, first), defined)
                    or table_cited):
                out.append((first + 1, dotted, lines[first].strip()))
        i += 1
    return out


# --------------------------------------------------------------------------- (b) Python

def _has_number(node) -> bool:
    return any(isinstance(n, ast.Constant) and type(n.value) in (int, float) for n in ast.walk(node))


def _is_number(node) -> bool:
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        node = node.operand
    return isinstance(node, ast.Constant) and type(node.value) in (int, float)


@functools.lru_cache(maxsize=None)
def _tokens(text: str) -> tuple:
    """(type, string, line) of every token of a module (cached: two checks read each)."""
    return tuple((t.type, t.string, t.start[0]) for t in tokenize.generate_tokens(io.StringIO(text).readline))


def _comments(text: str) -> dict:
    """Line number -> comment text."""
    return {line: s for kind, s, line in _tokens(text) if kind == tokenize.COMMENT}


def _citation_text(stmt, lines, comments) -> str:
    own = [comments.get(n, "") for n in range(stmt.lineno, stmt.end_lineno + 1)]
    return "\n".join(own) + "\n" + _block_above(lines, stmt.lineno - 1)


def _names(target) -> list:
    if isinstance(target, ast.Name):
        return [target.id]
    if isinstance(target, (ast.Tuple, ast.List)):
        return [n for t in target.elts for n in _names(t)]
    return []


def python_uncited(text: str, defined: set, exempt=frozenset()) -> list:
    """Checked statements of a module without a citation: [(line, name, problem)]."""
    tree = ast.parse(text)
    lines = text.splitlines()
    comments = _comments(text)
    out = []
    for stmt in tree.body:
        if isinstance(stmt, (ast.Assign, ast.AnnAssign)) and stmt.value is not None:
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
            names = [n for t in targets for n in _names(t)]
            if not names or not all(re.fullmatch(r"[A-Z][A-Z0-9_]*", n) for n in names):
                continue
            value = stmt.value
            if isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id == "range":
                continue
            if not _has_number(value):
                continue
            cited = _citation_text(stmt, lines, comments)
            if all(n in exempt for n in names):
                if not re.search(r"#\s*\S", cited):
                    out.append((stmt.lineno, names[0], "exempt, but no comment says what it is"))
            elif not cites(cited, defined):
                out.append((stmt.lineno, names[0], "no citation"))
    models = set()
    for cls in (s for s in tree.body if isinstance(s, ast.ClassDef)):
        bases = {b.id if isinstance(b, ast.Name) else getattr(b, "attr", "") for b in cls.bases}
        if not bases & ({"BaseModel"} | models):
            continue
        models.add(cls.name)
        for stmt in cls.body:
            if not (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and stmt.value):
                continue
            name, value, description = stmt.target.id, stmt.value, ""
            if isinstance(value, ast.Call) and getattr(value.func, "id", "") == "Field":
                kw = {k.arg: k.value for k in value.keywords}
                default = kw.get("default", value.args[0] if value.args else None)
                desc = kw.get("description")
                if isinstance(desc, ast.Constant) and isinstance(desc.value, str):
                    description = desc.value
                elif desc is not None:  # implicit concatenation is one Constant; anything else: its source
                    description = ast.get_source_segment(text, desc) or ""
                value = default
            if value is None or not _is_number(value) or name in exempt:
                continue
            if not cites(_citation_text(stmt, lines, comments) + "\n" + description, defined):
                out.append((stmt.lineno, f"{cls.name}.{name}", "no citation"))
    return out


# --------------------------------------------------------------------------- (c), (d)

def python_prose(text: str) -> str:
    """The comments and string literals of a Python module (where tags are written)."""
    return "\n".join(s for kind, s, _ in _tokens(text) if kind in (tokenize.COMMENT, tokenize.STRING))


def undefined_tags(text: str, defined: set) -> list:
    return sorted({t for t in tags_in(text) if t not in defined})


_URL = re.compile(r"[a-z]+://\S+")
_MD = re.compile(r"(?<![\w./-])((?:\.{1,2}/)*[\w-]+(?:/[\w.-]+)*\.md)(?![\w])")
_SHARED = re.compile(r"(?:^|[\s(\"'`=])((?:\.\./)*shared/)|(/work/)")


def dangling_references(text: str, where: Path, root: Path = ROOT) -> list:
    """``*.md`` paths in ``text`` (written in file ``where``) that name no file, and any
    reference into the shared directory beside the repository or under /work."""
    text = _URL.sub("", text)
    out = []
    for m in _MD.finditer(text):
        ref = m.group(1)
        if not ((where.parent / ref).is_file() or (root / ref).is_file()):
            out.append(ref)
    out += [m.group(1) or m.group(2) for m in _SHARED.finditer(text)]
    return out


# --------------------------------------------------------------------------- the repository

def _defined() -> set:
    return defined_tags(SOURCES_MD.read_text())


def _twin_modules():
    for path in sorted((ROOT / "twin").rglob("*.py")):
        yield path, path.relative_to(ROOT / "twin").as_posix()


def test_sources_md_defines_tags():
    defined = _defined()
    assert {"LEN", "NV-DS", "OCP-MGX"} <= defined, "docs/sources.md: a row per tag, first cell `[TAG]`"


def test_every_number_in_the_scenario_files_is_cited():
    defined = _defined()
    bad = [f"{p.relative_to(ROOT)}:{n}: {key}: {line}"
           for p in sorted((ROOT / "scenarios").rglob("*.toml"))
           for n, key, line in toml_uncited(p.read_text(), defined)]
    assert not bad, "numbers without a [TAG] or ASSUMPTION:\n" + "\n".join(bad)


def test_every_physics_constant_and_field_default_in_the_code_is_cited():
    defined = _defined()
    bad = [f"twin/{rel}:{n}: {name}: {why}"
           for path, rel in _twin_modules()
           for n, name, why in python_uncited(path.read_text(), defined, frozenset(NOT_PHYSICS.get(rel, ())))]
    assert not bad, "\n".join(bad)


def test_not_physics_names_exist():
    """The exemption list names only what is there (a renamed constant must be re-judged)."""
    text = {rel: path.read_text() for path, rel in _twin_modules()}
    missing = [f"{rel}: {name}" for rel, names in NOT_PHYSICS.items() for name in names
               if not re.search(rf"^\s*(?:\w+,\s*)*{name}\b\s*[:=,]", text.get(rel, ""), re.M)]
    assert not missing, missing


def test_every_tag_used_is_defined():
    defined = _defined()
    files = [*(ROOT / "scenarios").rglob("*.toml"), *(ROOT / "scenarios").rglob("*.md"), *(ROOT / "docs").glob("*.md"),
             ROOT / "README.md"]
    bad = [f"{p.relative_to(ROOT)}: {undefined_tags(p.read_text(), defined)}" for p in sorted(files)
           if undefined_tags(p.read_text(), defined)]
    code = [*(ROOT / "twin").rglob("*.py"), *(p for p in (ROOT / "tests").rglob("*.py") if p.resolve() != THIS)]
    bad += [f"{p.relative_to(ROOT)}: {undefined_tags(python_prose(p.read_text()), defined)}" for p in sorted(code)
            if undefined_tags(python_prose(p.read_text()), defined)]
    assert not bad, "tags not defined in docs/sources.md:\n" + "\n".join(bad)


def test_no_reference_to_a_document_outside_the_repository():
    files = [ROOT / "README.md", *(ROOT / "docs").rglob("*.md")]
    for sub, patterns in (("scenarios", ("*.toml", "*.md")), ("twin", ("*.py",)), ("tests", ("*.py",)),
                          ("benchmarks", ("*.py", "*.md")), ("calibration", ("*.toml", "*.md", "*.py")),
                          ("schemas", ("*.json",))):
        files += [p for pat in patterns for p in (ROOT / sub).rglob(pat)]
    bad = [f"{p.relative_to(ROOT)}: {ref}" for p in sorted(set(files)) if p.resolve() != THIS
           for ref in dangling_references(p.read_text(), p)]
    assert not bad, "\n".join(bad)


# --------------------------------------------------------------------------- the checker, on planted faults

DEFINED = {"LEN", "NV-DS"}


def test_checker_toml_flags_an_untagged_number_and_accepts_each_form_of_citation():
    text = """\
# file header [LEN]

name = "x"
[rack]
max_return_temp_c = 65.0
cited = 1.0          # [LEN] tray table
marked = 2.0         # ASSUMPTION: why
# a block directly above [NV-DS]
above = 3
lowercase = 4        # assumption (wrong spelling)
undefined = 5        # [NOPE]
unit_only = 6        # [W] is a unit
table = [[27.0, 4.4],
         [45.0, 7.0]]
text_only = "7 L/min"
flag = true
inline = {a = 1}
[rack.tray]          # geometry: ASSUMPTION
covered = 8
[[rack.stack]]
count = 9
[simulation]
duration_s = 10.0
[faults]
start_s = 5.0
severity = 0.7
"""
    bad = {key for _, key, _ in toml_uncited(text, DEFINED)}
    assert bad == {"rack.max_return_temp_c", "rack.lowercase", "rack.undefined", "rack.unit_only", "rack.table",
                   "rack.inline", "rack.stack.count", "faults.severity"}


def test_checker_toml_reads_strings_and_multiline_arrays():
    text = 'a = "# not a comment [LEN]"  # ASSUMPTION\nb = "x # y"\nc = [  # [LEN]\n  1.0,\n  2.0]\nd = [\n  3.0,  # ASSUMPTION\n]\n'
    assert toml_uncited(text, DEFINED) == []
    assert [k for _, k, _ in toml_uncited('s = "[LEN] 4"\nt = 4  # "[LEN]"\n', DEFINED)] == []
    assert [k for _, k, _ in toml_uncited('u = "4 [LEN]"\nv = 4\n', DEFINED)] == ["v"]


def test_checker_python_flags_an_untagged_constant_and_field_default():
    text = '''\
from pydantic import BaseModel, Field
X_K = 1.0
Y_K = 2.0  # ASSUMPTION: why
# a block above [LEN]
Z_K = (3.0, 4.0)
TOL = 1e-9
UNSAID = 5
NAME = "text"
A, B = range(2)
lower_case = 6.0


class _M(BaseModel):
    pass


class M(_M):
    a: float = 0.3
    b: float = Field(default=0.4, description="why [NV-DS]")
    c: float = Field(0.5, description="no source")
    d: float = 0.6  # ASSUMPTION
    e: float = Field(default=None)
    f: float = Field(default=0.7, description="one ASSUMPTION "
                                              "in two parts")
    g: float = -0.8


class Plain:
    h: float = 0.9
'''
    bad = {(name, why) for _, name, why in python_uncited(text, DEFINED, frozenset({"TOL", "UNSAID"}))}
    assert bad == {("X_K", "no citation"), ("UNSAID", "exempt, but no comment says what it is"),
                   ("TOL", "exempt, but no comment says what it is"),
                   ("M.a", "no citation"), ("M.c", "no citation"), ("M.g", "no citation")}
    text_tol = "TOL = 1e-9  # solver tolerance\n"
    assert python_uncited(text_tol, DEFINED, frozenset({"TOL"})) == []


def test_checker_tags_and_the_marker():
    assert tags_in("[LEN] [NV-DS] [FAN07] [W] [K/W] [degC, L/min] [A-] [x] [README](README.md)") == \
        ["LEN", "NV-DS", "FAN07"]
    assert undefined_tags("see [LEN] and [NEW-TAG]", DEFINED) == ["NEW-TAG"]
    assert cites("ASSUMPTION: why", DEFINED) and cites("(ASSUMPTION)", DEFINED)
    assert not any(cites(x, DEFINED) for x in ("an assumption", "ASSUMPTIONS", "Assumption:", "ASSUMED", "[NOPE]"))
    assert defined_tags("| tag | ref |\n|---|---|\n| `[LEN]` | Lenovo |\n| LEN2 | no |\n") == {"LEN"}
    assert undefined_tags(python_prose('x = a[IDX]  # [NOPE]\ns = "[LEN]"\n'), DEFINED) == ["NOPE"]


def test_checker_finds_dangling_document_references(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "model.md").write_text("x")
    where = tmp_path / "docs" / "a.md"
    text = ("see model.md, docs/model.md and ../docs/model.md; not NOTES.md, docs/gone.md, "
            "https://example.org/README.md, ../shared/NOTES.txt, shared/x, /work/shared/y")
    assert dangling_references(text, where, tmp_path) == ["NOTES.md", "docs/gone.md", "../shared/", "shared/",
                                                          "/work/"]


def test_checker_reads_a_scenario_files_comments_and_strings(tmp_path):
    """A reference in a TOML comment or description counts as much as one in prose."""
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "model.md").write_text("x")
    where = tmp_path / "scenarios" / "racks" / "x.toml"
    text = ('# values from docs/model.md and DESIGN.md\ndescription = "see docs/plan.md"\n'
            'flow_lpm = 5.0  # ASSUMPTION (docs/sources.md)\n')
    assert dangling_references(text, where, tmp_path) == ["DESIGN.md", "docs/plan.md", "docs/sources.md"]
