"""`twin check`: margins against their limits and the committed baseline, the JUnit report,
the baseline's update and its errors.

Each test names the wrong code it would catch. The whole catalogue is `make check` (CI);
here a few short scenarios keep the suite quick.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner

from twin import baseline as bl
from twin.catalogue import entries
from twin.cli import cli

ROOT = Path(__file__).resolve().parents[1]
SCEN = ROOT / "scenarios"
BASELINE = ROOT / ".twin" / "baseline.toml"
SCHEMA = Path(__file__).resolve().parent / "data" / "junit.xsd"
PLATE_30 = "rack.cold_plates.gpu_plate.convective_resistance_scale=1.3"


def _run(*args):
    r = CliRunner().invoke(cli, ["check", *[str(a) for a in args]], catch_exceptions=False)
    return r.exit_code, r.stdout, r.stderr


def _rows(stdout: str) -> dict:
    """(scenario, margin) -> the table's cells (value, unit, limit, baseline, change, verdict)."""
    lines = stdout.splitlines()
    head = next(i for i, ln in enumerate(lines) if ln.startswith("scenario "))
    at = lines[head].index("verdict")
    out = {}
    for ln in lines[head + 1:]:
        if not ln or ln.split()[0] in ("FAIL", "REGRESSED", "GONE", "ERROR", "junit:", "check:", "baseline"):
            break
        cells = ln[:at].split()
        out[(cells[0], cells[1])] = cells[2:] + [ln[at:].strip()]
    return out


def _validate(path: Path):
    import xmlschema

    xmlschema.XMLSchema(SCHEMA).validate(str(path))
    return ET.parse(path).getroot()


def _entry_text(key, name, value, tolerance=0.2, regression="smaller", status="ok", reason="hand-made"):
    return bl.margin_block(key, name, bl.Entry(value, "K", tolerance, regression, reason, status))


# --------------------------------------------------------------------------- the committed baseline


def test_short_catalogue_scenarios_pass_against_the_committed_baseline():
    """Catches: a committed baseline out of step with the model, a known failure (the
    isolated tray's flow) not honoured as accepted, a limit compared the wrong way."""
    code, out, err = _run("catalogue/nvl72-class", "faults/isolated-tray", "--jobs", "1")
    assert code == 0, out + err
    rows = _rows(out)
    assert rows[("catalogue/nvl72-class", "gpu_junction_margin_k")][-1] == "ok"
    assert rows[("faults/isolated-tray", "tray_flow_ratio_min")][-1] == "accepted"
    assert {r[-1] for r in rows.values()} <= {"ok", "accepted"}
    assert "check: OK" in out.splitlines()[-1]


def test_every_catalogue_scenario_has_baseline_entries_with_reasons():
    """Catches: a scenario added to the catalogue without a baseline (make check would
    show only `new` for it), an entry without a reason, a pass/fail margin without the
    status it was accepted with."""
    base = bl.load(BASELINE)
    keys = {name for name, _, _ in entries(SCEN)}
    assert keys <= set(base.scenarios), keys - set(base.scenarios)
    for key in keys:
        assert "gpu_junction_margin_k" in base.margin_names(key), key
    for (key, name), e in base.margins.items():
        assert e.reason.strip(), (key, name)
        if name.endswith(("_margin_k", "_ratio_min")):
            assert e.status in bl.STATUSES, (key, name)


# --------------------------------------------------------------------------- failing on purpose


def test_a_more_resistive_gpu_plate_fails_naming_the_margin_and_the_chip(tmp_path):
    """Every GPU plate's convective resistance 30 % higher: the GPU junction margin drops
    ~1.3 K, beyond its 0.2 K tolerance. Catches: overrides not reaching the workers, a
    regression not failing the exit status, a report that does not say which margin and
    which chip, JUnit XML that a CI system would reject."""
    report = tmp_path / "reports" / "margins.xml"
    code, out, err = _run("catalogue/nvl72-class", "--set", PLATE_30, "--junit", report, "--jobs", "1")
    assert code == 1, out + err
    rows = _rows(out)
    assert rows[("catalogue/nvl72-class", "gpu_junction_margin_k")][-1] == "REGRESSED"
    line = next(ln for ln in out.splitlines() if ln.startswith("REGRESSED catalogue/nvl72-class gpu_junction_margin_k"))
    assert "rack01/tray09/gpu3" in line and "20.810" in line and "limit >=0 met" in line
    root = _validate(report)
    suite = root.find("testsuite[@name='catalogue/nvl72-class']")
    assert int(suite.get("failures")) == 3 and int(suite.get("errors")) == 0  # the margin, Tj max and p95
    failure = suite.find("testcase[@name='gpu_junction_margin_k']/failure")
    assert failure.get("type") == "regression"
    for word in ("gpu_junction_margin_k", "19.5", "20.810", "rack01/tray09/gpu3", "tolerance 0.2"):
        assert word in failure.get("message"), word
    assert suite.find("testcase[@name='other_chip_junction_margin_k']/failure") is None


def test_a_limit_violation_fails_without_any_baseline_and_names_the_tray(tmp_path):
    """Flow cut to 100 L/min: every tray below its required flow. Catches: limits judged
    only against a baseline, a violation reported without the part that sets it."""
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    report = tmp_path / "j.xml"
    code, out, err = _run("catalogue/nvl72-class", "--baseline", empty, "--set", "controls.flow_setpoint_lpm=100",
                          "--junit", report, "--jobs", "1")
    assert code == 1, out + err
    assert _rows(out)[("catalogue/nvl72-class", "tray_flow_ratio_min")][-1] == "FAIL"
    line = next(ln for ln in out.splitlines() if ln.startswith("FAIL catalogue/nvl72-class tray_flow_ratio_min"))
    assert "outside its limit >=1" in line and re.search(r"at rack01/tray\d\d", line)
    failure = _validate(report).find(".//testcase[@name='tray_flow_ratio_min']/failure")
    assert failure.get("type") == "limit" and "rack01/tray" in failure.get("message")


@pytest.fixture(scope="module")
def nvl72_value():
    """The catalogue rack's GPU junction margin as the committed baseline holds it."""
    return bl.load(BASELINE).margins[("catalogue/nvl72-class", "gpu_junction_margin_k")].value


@pytest.mark.parametrize("offset, regression, verdict, code", [
    (+0.5, "smaller", "REGRESSED", 1),  # the baseline was 0.5 K better: a regression, the limit still met
    (+0.1, "smaller", "ok", 0),  # within the tolerance
    (-0.5, "smaller", "improved", 0),  # better than the baseline
    (-0.5, "larger", "REGRESSED", 1),  # the same change, judged with the other direction
])
def test_a_regression_beyond_the_tolerance_fails_while_the_limit_holds(tmp_path, nvl72_value, offset, regression,
                                                                        verdict, code):
    """Catches: the tolerance ignored or applied the wrong way, the direction of a
    regression reversed, a regression that needs a limit violation to fail."""
    base = tmp_path / "tight.toml"
    base.write_text(_entry_text("catalogue/nvl72-class", "gpu_junction_margin_k", round(nvl72_value + offset, 3),
                                regression=regression))
    got, out, err = _run("catalogue/nvl72-class", "--baseline", base, "--jobs", "1")
    assert got == code, out + err
    row = _rows(out)[("catalogue/nvl72-class", "gpu_junction_margin_k")]
    assert row[-1] == verdict and row[2] == ">=0"
    if verdict == "REGRESSED":
        assert "limit >=0 met" in out
    others = {k: v[-1] for k, v in _rows(out).items() if k[1] != "gpu_junction_margin_k"}
    assert set(others.values()) <= {"new"}  # not in this baseline: judged on their limits, not failed


# --------------------------------------------------------------------------- updating the baseline


def _nvl72_baseline(tmp_path, value_offset=1.0) -> tuple[Path, str]:
    """The committed catalogue/nvl72-class entries with a comment of our own, one value
    moved beyond its tolerance, one entry removed (new) and one that no margin reports (gone)."""
    text = BASELINE.read_text()
    blocks = [b for b in bl._blocks(text) if b[0] and b[0][1] == "catalogue/nvl72-class"]
    kept = []
    for key, chunk in blocks:
        if key[-1] == "rack_dp_max_kpa":
            continue  # to be added back
        if key[-1] == "gpu_junction_max_c":
            chunk = re.sub(r"value = [-0-9.e]+", lambda m: f"value = {float(m.group(0).split()[-1]) - value_offset!r}",
                           chunk)
        if key[-1] == "pump_head_margin_kpa":
            chunk = "# a comment of ours, kept\n" + chunk.replace('reason = "', 'reason = "kept: ', 1)
        kept.append(chunk.rstrip("\n") + "\n\n")
    kept.append(_entry_text("catalogue/nvl72-class", "old_margin_k", 1.0))
    path = tmp_path / "baseline.toml"
    path.write_text("# our header\n\n" + "".join(kept))
    return path, path.read_text()


def test_update_baseline_rewrites_only_the_changed_entries(tmp_path):
    """Catches: an update that rewrites (and so re-dates) every entry, loses comments or
    reasons, keeps a margin that is gone, misses a new one, or leaves a file that the
    next check does not pass."""
    path, before = _nvl72_baseline(tmp_path)
    code, out, err = _run("catalogue/nvl72-class", "--baseline", path, "--update-baseline", "--jobs", "1")
    assert code == 0, out + err
    after = path.read_text()
    old, new = dict((tuple(k) if k else None, c) for k, c in bl._blocks(before)), \
        dict((tuple(k) if k else None, c) for k, c in bl._blocks(after))
    changed = {k for k in old.keys() | new.keys() if old.get(k) != new.get(k)}
    key = lambda n: ("margin", "catalogue/nvl72-class", n)  # noqa: E731
    assert changed == {key("gpu_junction_max_c"), key("rack_dp_max_kpa"), key("old_margin_k")}, changed
    assert "# a comment of ours, kept" in after and 'reason = "kept: ' in after and after.startswith("# our header")
    entry = tomllib.loads(after)["margin"]["catalogue/nvl72-class"]
    assert re.fullmatch(r"updated \d{4}-\d\d-\d\d: was [0-9.]+ degC", entry["gpu_junction_max_c"]["reason"])
    assert entry["rack_dp_max_kpa"]["reason"].startswith("recorded ")
    assert "old_margin_k" not in entry
    assert "--- a/" in out and "+++ b/" in out  # the diff is printed
    code, out, err = _run("catalogue/nvl72-class", "--baseline", path, "--jobs", "1")
    assert code == 0 and {v[-1] for v in _rows(out).values()} == {"ok"}, out
    # nothing changed: the file is left as it is
    code, out, _ = _run("catalogue/nvl72-class", "--baseline", path, "--update-baseline", "--jobs", "1")
    assert code == 0 and path.read_text() == after and "unchanged" in out


def test_update_baseline_takes_the_reason_given(tmp_path):
    path, _ = _nvl72_baseline(tmp_path)
    code, out, err = _run("catalogue/nvl72-class", "--baseline", path, "--update-baseline", "--reason",
                          "plate model revised, accepted by J. Doe", "--jobs", "1")
    assert code == 0, out + err
    entry = tomllib.loads(path.read_text())["margin"]["catalogue/nvl72-class"]
    assert entry["gpu_junction_max_c"]["reason"] == "plate model revised, accepted by J. Doe"
    assert entry["pump_head_margin_kpa"]["reason"].startswith("kept: ")


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("text, field", [
    ('[margin."catalogue/nvl72-class".gpu_junction_margin_k\nvalue = 1', ""),  # not TOML
    ('[margin."catalogue/nvl72-class".gpu_junction_margin_k]\nvalue = 1.0\nunit = "K"\nregression = "smaller"\n'
     'reason = "x"\n', 'margin."catalogue/nvl72-class".gpu_junction_margin_k.tolerance'),
    ('[margin."catalogue/nvl72-class".gpu_junction_margin_k]\nvalue = "20.8"\nunit = "K"\ntolerance = 0.2\n'
     'regression = "smaller"\nreason = "x"\n', 'margin."catalogue/nvl72-class".gpu_junction_margin_k.value'),
    ('[margin."catalogue/nvl72-class".gpu_junction_margin_k]\nvalue = 20.8\nunit = "K"\ntolerance = -1.0\n'
     'regression = "smaller"\nreason = "x"\n', 'margin."catalogue/nvl72-class".gpu_junction_margin_k.tolerance'),
    ('[margin."catalogue/nvl72-class".gpu_junction_margin_k]\nvalue = 20.8\nunit = "K"\ntolerance = 0.2\n'
     'regression = "down"\nreason = "x"\n', 'margin."catalogue/nvl72-class".gpu_junction_margin_k.regression'),
    ('[margin."catalogue/nvl72-class".gpu_junction_margin_k]\nvalue = 20.8\nunit = "K"\ntolerance = 0.2\n'
     'regression = "smaller"\nreason = "x"\ntolerence = 1.0\n',
     'margin."catalogue/nvl72-class".gpu_junction_margin_k.tolerence'),
    ('[scenario."catalogue/nvl72-class"]\nduration_s = 0.0\nreason = "x"\n', 'scenario."catalogue/nvl72-class".duration_s'),
    ('[margins]\n', "margins"),
])
def test_a_malformed_baseline_exits_2_naming_file_and_field(tmp_path, text, field):
    """Catches: a traceback instead of one line, a message that does not say which file
    and which field, a malformed entry silently skipped (that margin would never fail)."""
    path = tmp_path / "bad.toml"
    path.write_text(text)
    code, out, err = _run("catalogue/nvl72-class", "--baseline", path)
    assert code == 2 and out == "", out
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"error: {path}: {field}"), err
    if not field:
        assert "malformed TOML" in err


@pytest.mark.parametrize("args, start", [
    (["no-such-scenario"], "error: no-such-scenario: SCENARIO: file not found"),
    (["catalogue/nvl72-class", "--baseline", "{tmp}/missing.toml"], "error: {tmp}/missing.toml: --baseline: "),
    (["catalogue/nvl72-class", "--set", "facility.supply_temp_c=150"], "error: "),
    (["catalogue/nvl72-class", "--junit", "{tmp}"], "error: {tmp}: --junit: is a directory"),
    (["catalogue/nvl72-class", "--reason", "why"], "error: --reason: is the reason of the entries"),
])
def test_bad_input_exits_2_with_one_line(tmp_path, args, start):
    """Catches: a missing scenario or baseline run as if absent, a traceback."""
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    code, out, err = _run(*args)
    assert code == 2 and len(err.splitlines()) == 1, (code, err)
    assert err.startswith(start.replace("{tmp}", str(tmp_path))), err


def test_a_scenario_that_does_not_run_is_an_error_and_the_others_still_run(tmp_path):
    """A fault aimed at a chip the rack does not have passes the schema and fails when the
    model is built (in the worker). Catches: one broken scenario hiding the others' margins,
    an error reported as a pass, a JUnit report without an <error>."""
    broken = tmp_path / "broken.toml"
    broken.write_text(f'name = "broken"\ninclude = ["{SCEN / "catalogue" / "h100-hgx-liquid.toml"}"]\n'
                      '[[faults]]\nkind = "plate_clog"\ntarget = "rack01/tray99/gpu0"\nstart_s = 1.0\nseverity = 0.5\n')
    report = tmp_path / "j.xml"
    code, out, err = _run(broken, "catalogue/h100-hgx-liquid", "--junit", report, "--jobs", "2")
    assert code == 1, out + err
    rows = _rows(out)
    assert rows[("broken", "(run)")][-1] == "ERROR"
    assert rows[("catalogue/h100-hgx-liquid", "gpu_junction_margin_k")][-1] == "ok"
    assert "rack01/tray99/gpu0" in next(ln for ln in out.splitlines() if ln.startswith("ERROR broken"))
    error = _validate(report).find("testsuite[@name='broken']/testcase/error")
    assert error is not None and "rack01/tray99/gpu0" in error.get("message")


# --------------------------------------------------------------------------- running


def _run_script(*args):
    """`twin check` as the console script runs it: a fresh process without threads, whose
    workers are forks (twin.check.Forked)."""
    p = subprocess.run([sys.executable, "-m", "twin.cli", "check", *[str(a) for a in args]], capture_output=True,
                       text=True, timeout=300, cwd=ROOT)
    return p.returncode, p.stdout, p.stderr


@pytest.mark.parametrize("workers", ["forked", "pooled"])
def test_two_jobs_give_the_same_table_as_one(workers, monkeypatch):
    """Both kinds of workers: forks of one warm process (the console script) and a process
    pool beside the checking process (a test runner, a notebook). Catches: rows ordered by
    completion, results crossed between scenarios or lost between the processes, workers
    that do not get the overrides."""
    from twin import check

    args = ["catalogue/h100-hgx-liquid", "catalogue/nvl72-class", "faults/pump-trip-n1", "--set", PLATE_30]
    one = _run(*args, "--jobs", "1")
    if workers == "pooled":
        monkeypatch.setattr(check, "start_workers", check.Pooled)
        two = _run(*args, "--jobs", "2")
    else:
        two = _run_script(*args, "--jobs", "2")
    assert one[0] == two[0] == 1
    assert one[1] == two[1]
    assert len(_rows(one[1])) > 30
    # not a terminal: plain progress lines on stderr, one per scenario
    assert two[2].splitlines()[0] == "checking 3 scenarios, 2 at a time"
    progress = [ln for ln in two[2].splitlines() if ln.startswith("[")]
    assert [ln.split("]")[0] for ln in progress] == ["[1/3", "[2/3", "[3/3"]
    assert {ln.split()[1].rstrip(":") for ln in progress} == set(args[:3])


def test_a_directory_runs_its_runnable_scenarios_only(tmp_path):
    """Catches: included fragments (racks, CDUs) run as scenarios, a scenario outside the
    catalogue without a key."""
    (tmp_path / "parts").mkdir()
    (tmp_path / "parts" / "w32.toml").write_text((SCEN / "facilities" / "w32.toml").read_text())
    (tmp_path / "short.toml").write_text(f'name = "short-h100"\ninclude = ["{SCEN / "catalogue" / "h100-hgx-liquid.toml"}"]\n')
    code, out, err = _run(tmp_path, "--jobs", "1")
    assert code == 0, out + err
    assert {k[0] for k in _rows(out)} == {"short-h100"}


@pytest.mark.parametrize("args", [["check", "--help"], ["check", "no-such-scenario"]])
def test_check_help_and_bad_input_stay_off_the_heavy_imports(args):
    code = ("import sys\nfrom twin.cli import cli\ntry:\n    cli.main(%r)\nexcept SystemExit:\n    pass\n"
            "print('loaded:', *(m for m in ('numba', 'scipy', 'h5py', 'rich', 'pydantic') if m in sys.modules))" % args)
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.stdout.splitlines()[-1] == "loaded:", p.stdout[-300:]


def test_the_live_progress_display_runs_and_reports_each_scenario(capsys):
    """The rich display is used on a terminal only, which the other tests never are.
    Catches: a rich API misuse (a column, a console argument) that would crash
    `twin check` in a developer's terminal."""
    from twin.check import Progress

    p = Progress(2, 2, live=True)
    for key in ("a", "b"):
        p.start(key)
    p.done(dict(key="a", rows=[dict(status="ok"), dict(status="fail"), dict(status="")], elapsed_s=0.5))
    p.done(dict(key="b", rows=[], error="broken.toml: faults.0.target: no such chip", elapsed_s=0.1))
    p.close()
    err = capsys.readouterr().err
    assert "[1/2] a: 2 margins, 1 outside their limits (0.5 s)" in err
    assert "[2/2] b: ERROR: broken.toml: faults.0.target: no such chip" in err
    assert "ran 2 scenarios" in err


def test_the_closing_progress_line_counts_only_the_scenarios_that_ran(capsys):
    """An interrupted check (Ctrl-C after one of three scenarios) closes its progress
    display too. Catches: "ran 3 scenarios" printed above "error: interrupted" when one
    ran."""
    from twin.check import Progress

    p = Progress(3, 2, live=False)
    p.start("a")
    p.done(dict(key="a", rows=[dict(status="ok")], elapsed_s=0.5))
    p.close()
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("ran 1 of 3 scenarios in "), last


def test_sigterm_stops_a_parallel_check_with_its_workers_and_writes_nothing(tmp_path):
    """`timeout`, a CI job cancelled: SIGTERM to `twin check` while two worker processes
    run. Catches: the check killed outright (no message), its workers and their server
    left running with its stdout and stderr (a CI log that never ends), a half-written
    JUnit report or baseline."""
    import signal
    import time

    baseline = tmp_path / "baseline.toml"
    baseline.write_text(_entry_text("catalogue/h100-hgx-liquid", "gpu_junction_max_c", 1.0))
    before = baseline.read_bytes()
    junit = tmp_path / "j.xml"
    earlier = '<?xml version="1.0" encoding="UTF-8"?>\n<testsuites name="twin check" tests="0" />\n'
    junit.write_text(earlier)  # an earlier report: the one file --junit may replace
    p = subprocess.Popen([sys.executable, "-m", "twin.cli", "check", "catalogue/h100-hgx-liquid", "catalogue/nvl72-class",
                          "--duration", "864000", "--jobs", "2", "--baseline", str(baseline), "--update-baseline",
                          "--junit", str(junit)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         cwd=tmp_path, start_new_session=True)
    try:
        assert p.stderr.readline().startswith("checking 2 scenarios")
        time.sleep(3.0)  # the workers are running their scenarios (ten days each: ~10 s or more)
        assert p.poll() is None, "the check ended before it could be interrupted"
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=30)  # EOF: nothing else holds the pipes
    finally:
        try:
            os.killpg(p.pid, signal.SIGKILL)  # whatever the check left behind in its session
        except ProcessLookupError:
            pass
    assert p.returncode == 128 + signal.SIGTERM, err
    assert err.strip().splitlines()[-1] == "error: interrupted by SIGTERM", err
    assert "Traceback" not in err
    assert baseline.read_bytes() == before and junit.read_text() == earlier
    assert not list(tmp_path.glob("*.partial"))


def _children(pid: int) -> list[int]:
    """The processes ``pid`` started and theirs (the check's workers are forks of its first)."""
    try:
        kids = [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []
    return kids + [g for k in kids for g in _children(k)]


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads a process's children from /proc (Linux)")
def test_a_worker_killed_mid_run_fails_its_scenario_alone(tmp_path):
    """Out of memory, a killed process: the worker running the longest scenario dies.
    Catches: the whole check failing with it, the other scenarios reported as failed
    (a broken process pool failing every future still queued), the scheduler hanging on
    a worker that will never answer, and a check that does not count the lost scenario
    as a failure (exit 0)."""
    import signal
    import time

    long_run = tmp_path / "long.toml"  # ten days of the H100 rack: the longest estimate, the worker's
    long_run.write_text(f'name = "long-h100"\ninclude = ["{(SCEN / "catalogue" / "h100-hgx-liquid.toml").as_posix()}"]\n'
                        '[simulation]\nduration_s = 864000.0\n')
    baseline = tmp_path / "baseline.toml"
    baseline.write_text("")
    p = subprocess.Popen([sys.executable, "-m", "twin.cli", "check", str(long_run), "catalogue/h100-hgx-liquid",
                          "catalogue/nvl72-class", "--jobs", "2", "--baseline", str(baseline)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
                         start_new_session=True)
    try:
        assert p.stderr.readline().startswith("checking 3 scenarios")
        deadline = time.monotonic() + 20
        while not (workers := _children(p.pid)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert workers, "no worker process"
        time.sleep(2.0)  # the worker has its engine and runs the ten days
        assert p.poll() is None, "the check ended before its worker could be killed"
        for w in _children(p.pid):  # every worker: the one with the ten days, the others idle by now
            os.kill(w, signal.SIGKILL)
        out, err = p.communicate(timeout=60)
    finally:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert p.returncode == 1, out + err
    assert re.search(r"long-h100: ERROR: worker process failed", err), err
    assert "Traceback" not in err
    rows = _rows(out)
    for key in ("catalogue/h100-hgx-liquid", "catalogue/nvl72-class"):
        assert rows[(key, "gpu_junction_margin_k")][-1] == "new", out  # ran and judged (no baseline entry)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_ctrl_c_swallowed_by_a_finalizer_still_stops_the_check(monkeypatch):
    """Python runs a signal handler between any two bytecodes, also inside a finalizer or
    a weakref callback the garbage collector runs, where the KeyboardInterrupt it raises
    is printed as "Exception ignored" and lost (seen once in `twin size`'s Ctrl-C test).
    Catches: the check carrying on after such a Ctrl-C, printing its table, exit 0."""
    import signal

    from twin import check, errors

    real, calls = check.run_one, []

    class Finalizer:
        def __del__(self):
            errors.raise_signal(signal.SIGINT)  # the handler, run where its exception is swallowed

    def run_one(target):
        calls.append(target.key)
        if len(calls) == 1:
            Finalizer()  # made and collected at once: the Ctrl-C lands in its __del__
        return real(target)

    monkeypatch.setattr(check, "run_one", run_one)
    code, out, err = _run("catalogue/nvl72-class", "catalogue/h100-hgx-liquid", "--jobs", "1")
    assert code == 130, out + err
    assert err.strip().splitlines()[-1] == "error: interrupted", err
    assert "check:" not in out


def test_warming_a_worker_loads_the_engines_own_kernel_specialisation():
    """`twin check`'s workers start numba, where the kernels run under it, by calling one
    kernel on dummy arrays (twin.kernels.warm). Catches: dummy arguments of other types
    than the engine's, which would make every worker compile a second specialisation
    (seconds, per worker) instead of loading the cached one."""
    code = ("import twin; from twin.kernels import warm, props; warm(); "
            "twin.simulate(twin.load_scenario('catalogue/nvl72-class', {'simulation.duration_s': 1.0})); "
            "print(len(props.interp_column.signatures))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300,
                       env={**os.environ, "TWIN_KERNELS": "jit"})
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[-1] == "1", r.stdout


def test_a_margin_gone_from_the_scenario_fails(tmp_path):
    """Catches: a baseline entry that no margin matches passing silently (a renamed or
    dropped margin would otherwise stop being checked without anyone noticing)."""
    base = tmp_path / "gone.toml"
    base.write_text(_entry_text("catalogue/h100-hgx-liquid", "old_margin_k", 1.0))
    code, out, err = _run("catalogue/h100-hgx-liquid", "--baseline", base, "--jobs", "1")
    assert code == 1, out + err
    assert _rows(out)[("catalogue/h100-hgx-liquid", "old_margin_k")][-1] == "GONE"


def test_another_duration_is_not_compared_with_the_baseline():
    """Catches: values over 30 s judged against a baseline taken over 60 s (a change of
    duration is not a regression), or the limits not judged any more."""
    code, out, err = _run("catalogue/nvl72-class", "--duration", "30", "--jobs", "1")
    assert code == 0, out + err
    assert "catalogue/nvl72-class: baseline taken over 60 s, run over 30 s: not compared" in out
    assert "catalogue/nvl72-class: checked over 30 s of its 60 s (--duration)" in out
    assert {v[-1] for v in _rows(out).values()} == {"not compared"}
    code, out, err = _run("catalogue/nvl72-class", "--duration", "30", "--set", "controls.flow_setpoint_lpm=100",
                          "--jobs", "1")
    assert code == 1 and _rows(out)[("catalogue/nvl72-class", "tray_flow_ratio_min")][-1] == "FAIL", out


def test_a_violation_is_accepted_only_with_the_status_the_baseline_accepted(tmp_path):
    """The isolated tray's flow ratio at its baseline value, the entry saying it was ok:
    the violation is new, and fails even though the value did not move. Catches: a limit
    violation accepted because the value matches the baseline, whatever status was accepted."""
    e = bl.load(BASELINE).margins[("faults/isolated-tray", "tray_flow_ratio_min")]
    assert e.status == "fail"
    base = tmp_path / "ok.toml"
    base.write_text(bl.margin_block("faults/isolated-tray", "tray_flow_ratio_min",
                                    bl.Entry(e.value, e.unit, e.tolerance, e.regression, "said ok", "ok")))
    code, out, err = _run("faults/isolated-tray", "--baseline", base, "--jobs", "1")
    assert code == 1, out + err
    row = _rows(out)[("faults/isolated-tray", "tray_flow_ratio_min")]
    assert row[-1] == "FAIL" and row[-2] == "+0.000", row


# What a process shows of threads that Python did not start: OpenBLAS's pool (nproc - 1
# threads when numpy loads it, unless OPENBLAS_NUM_THREADS says otherwise).
_NATIVE_THREADS = ("import os, threading\n"
                   "print('native threads:', len(os.listdir('/proc/self/task')) - threading.active_count())\n")


def _native_threads(code: str, **env) -> int:
    base = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                                                             "OMP_NUM_THREADS")}
    p = subprocess.run([sys.executable, "-c", code + _NATIVE_THREADS], capture_output=True, text=True,
                       timeout=120, cwd=ROOT, env={**base, **env})
    line = [ln for ln in p.stdout.splitlines() if ln.startswith("native threads:")]
    assert line, p.stdout[-500:] + p.stderr[-500:]
    return int(line[-1].split(":")[1])


@pytest.mark.skipif(not Path("/proc/self/task").is_dir() or (os.cpu_count() or 1) < 2,
                    reason="counts a process's threads in /proc; OpenBLAS starts none on one CPU")
def test_the_console_script_and_the_check_workers_start_no_blas_threads():
    """The console script (and so the workers it forks) and the forkserver's preload
    (twin.check_worker) run one BLAS thread: OpenBLAS's idle threads busy-wait ~0.1 s on
    the other cores after each build-time solve, which took the core of the other process
    of a two-job check (docs/performance.md). Catches: twin.proctune not setting the
    variables, numpy imported before the console script sets them, the forkserver's
    preload importing the engine first. The control, the same run with two BLAS threads
    asked for, shows that the count sees OpenBLAS's pool (and that the user's own setting
    is kept)."""
    run = ("import sys, atexit\nfrom twin.cli import main\n"
           "sys.argv = ['twin', 'run', 'reference-w32', '--duration', '60']\n"
           "try:\n    main()\nexcept SystemExit:\n    pass\n")
    assert _native_threads(run) == 0
    assert _native_threads(run, OPENBLAS_NUM_THREADS="2") >= 1
    assert _native_threads("import twin.check_worker\n") == 0


def test_a_long_check_is_judged_on_its_computing_time_not_on_telemetry_it_never_keeps():
    """`twin check` runs margins only (no telemetry). Catches: ten days of the NVL72 rack
    refused for "2.34 GB of telemetry in memory" it would never hold, and a refusal that
    tells the user to pass a flag `twin check` does not have."""
    from twin.check import collect

    nvl72 = SCEN / "catalogue" / "nvl72-class.toml"
    (target,) = collect([nvl72], [], 864000.0, None)  # ~1 min of computing: well inside the 1 h limit
    assert target.duration_s == 864000.0
    r = CliRunner().invoke(cli, ["check", str(nvl72), "--duration", "1e8"])  # ~1.6 h: refused
    assert r.exit_code == 2
    line = r.output.strip().splitlines()[-1]
    assert "(--duration): simulation.duration_s: 1e+08 s makes a run too long" in line, line
    assert "telemetry" not in line
    flag = re.search(r"pass (--[a-z-]+) to run it anyway", line).group(1)
    assert flag in CliRunner().invoke(cli, ["check", "--help"]).output
    (target,) = collect([nvl72], [], 1e8, None, allow_large=True)
    assert target.duration_s == 1e8


def test_a_parallel_check_judges_without_the_engine_and_survives_workers_that_never_start(monkeypatch, capsys):
    """The console script's two-job check: its workers are forks of one process that has
    started the engine; the checking process reads, hands out and judges without numba
    (the engine's start-up is paid once, beside the reading: docs/performance.md). Catches:
    the checking process importing the engine (a start-up paid twice), and, when the
    engine does not start in the workers, a check that hangs, loses scenarios or hides
    why."""
    code = ("import sys\nfrom twin.cli import main\nsys.argv = ['twin', 'check', 'catalogue/h100-hgx-liquid', "
            "'catalogue/nvl72-class', '--jobs', '2', '--duration', '60']\ntry:\n    main()\nexcept SystemExit as e:\n"
            "    print('exit', e.code, 'numba loaded:', 'numba' in sys.modules)\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert p.stdout.splitlines()[-1] == "exit 0 numba loaded: False", p.stdout[-500:] + p.stderr[-500:]

    from twin import check

    def broken():
        raise ImportError("no engine here")

    monkeypatch.setattr(check, "_warm", broken)  # the forks inherit it
    targets = check.collect([SCEN / "catalogue" / "h100-hgx-liquid.toml", SCEN / "catalogue" / "nvl72-class.toml"],
                            [], 60.0, None)
    progress = check.Progress(2, 2, live=False)
    answers = check.run_all(targets, 2, progress, check.Forked(2))
    progress.close()
    assert sorted(answers) == ["catalogue/h100-hgx-liquid", "catalogue/nvl72-class"]
    assert all(a["error"] is None and a["rows"] for a in answers.values())
    assert all(a["pid"] == os.getpid() for a in answers.values())  # run here, by the checking process
    err = capsys.readouterr().err
    assert err.count("a worker process did not start (ImportError: no engine here)") == 1, err


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] not in ("Z", "X")
    except OSError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl(PR_SET_PDEATHSIG) and /proc: Linux")
def test_a_check_killed_outright_takes_its_workers_with_it():
    """SIGKILL (a CI job's last resort, the OOM killer) cannot be handled: the checking
    process dies without stopping its workers. Catches: workers that run on to the end of
    their scenarios (ten days each here, ~20 s), burning the cores and holding the check's
    stdout and stderr open, so that whoever reads them waits."""
    import signal
    import time

    p = subprocess.Popen([sys.executable, "-m", "twin.cli", "check", "catalogue/nvl72-class", "catalogue/h100-hgx-liquid",
                          "--duration", "864000", "--jobs", "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, cwd=ROOT, start_new_session=True)
    try:
        assert p.stderr.readline().startswith("checking 2 scenarios")
        deadline = time.monotonic() + 30
        while len(workers := _children(p.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(workers) == 2, workers
        time.sleep(1.5)  # both are running their ten days
        assert p.poll() is None
        p.kill()
        t = time.monotonic()
        p.communicate(timeout=60)
        closed = time.monotonic() - t
        time.sleep(0.2)
        assert closed < 5.0, f"the check's output stayed open {closed:.1f} s after it was killed"
        assert not [w for w in workers if _alive(w)]
    finally:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_no_process_to_spare_falls_back_to_the_pool(monkeypatch):
    """fork() failing (EAGAIN: the user's process limit) in the console script. Catches:
    the check failing with it instead of running with a process pool."""
    import threading

    from twin import check

    def no_fork():
        raise BlockingIOError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(check.os, "fork", no_fork)
    monkeypatch.setattr(threading, "active_count", lambda: 1)  # as in the console script
    workers = check.start_workers(2)
    try:
        assert isinstance(workers, check.Pooled)
    finally:
        workers.stop()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="closes a child's standard stream before exec")
@pytest.mark.parametrize("closed", [1, 2])
def test_a_check_started_without_stdout_or_stderr_still_runs_and_judges(closed, tmp_path):
    """`twin check ... >&-` (a cron job, a daemon's child): Python starts with sys.stdout
    (or sys.stderr) None. Catches: a traceback on `None.isatty()` before any scenario runs,
    progress lines printed into the table's stream when stderr is closed, and the JUnit
    report not written."""
    report = tmp_path / "j.xml"
    p = subprocess.run([sys.executable, "-c", "import sys; from twin.cli import main; sys.argv = ['twin'] + sys.argv[1:]; "
                        "main()", "check", "catalogue/nvl72-class", "reference-w32", "--jobs", "2", "--junit", str(report)],
                       stdout=subprocess.PIPE if closed == 2 else None, stderr=subprocess.PIPE if closed == 1 else None,
                       text=True, cwd=ROOT, timeout=120, preexec_fn=lambda: os.close(closed))
    assert p.returncode == 0, (p.stdout or "") + (p.stderr or "")
    open_stream = p.stderr if closed == 1 else p.stdout
    assert "Traceback" not in open_stream
    if closed == 2:  # the table alone on stdout
        assert "check: OK: 2 scenarios" in p.stdout and "[1/2]" not in p.stdout
    else:
        assert "[2/2]" in p.stderr
    assert _validate(report).get("tests") is not None


def test_a_problem_line_names_the_place_once():
    """The coolant margins' notes begin with their place: "at rack01/tray02/return:
    at rack01/tray02/return; boiling at ..." named it twice."""
    from twin.check import Row, problem_line

    r = Row("mixed-rack", "coolant_temp_max_c", 43.27, "degC", instance="rack01/tray02/return",
            note="at rack01/tray02/return; boiling at 1 atm: 99.97 degC", verdict="REGRESSED", problems=["0.329 degC worse"])
    assert problem_line(r).count("rack01/tray02/return") == 1, problem_line(r)
    r = Row("reference-w32", "tray_flow_ratio_min", 0.9, "1", instance="rack01/tray09", note="6.86 L/min vs 7.0 required",
            verdict="FAIL", problems=["below its limit"])
    assert "; at rack01/tray09" in problem_line(r)
