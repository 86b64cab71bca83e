"""``twin check``: the margins of many scenarios against their limits and a stored baseline.

Each scenario (a file, a catalogue name, or every runnable scenario under a directory) is
run in memory (no telemetry file) in a pool of worker processes; every pass/fail margin is
judged against its limit, and every margin with a baseline entry (the pass/fail margins
and the figures of :data:`twin.baseline.FIGURES`) against the baseline (:mod:`twin.baseline`).

Verdicts of a margin (the table's last column):

- ``ok``: within its limit, and within its tolerance of the baseline;
- ``improved``: better than the baseline by more than its tolerance (``--update-baseline``
  records it);
- ``new``: no baseline entry (judged against its limit only);
- ``accepted``: outside its limit, and the baseline accepts that status (a scenario that
  shows a failure on purpose: a CDU trip), within its tolerance of the baseline value;
- ``not compared``: the baseline was taken over another duration (``--duration``);
- ``FAIL``: outside its limit (or not judged) where the baseline does not accept it;
- ``REGRESSED``: worse than the baseline by more than its tolerance, whatever the limit;
- ``GONE``: in the baseline, no longer reported by the scenario;
- ``ERROR``: the scenario did not run.

Exit 1 when any margin is FAIL, REGRESSED or GONE or a scenario has an ERROR, else 0; bad
input (a missing scenario, a malformed baseline) is a :class:`TwinInputError`, exit 2,
before anything runs.
"""
from __future__ import annotations

import math
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import baseline as bl
from .errors import TwinInputError
from .files import prepare_output, probe_output, write_whole

FAIL, REGRESSED, GONE, ERROR = "FAIL", "REGRESSED", "GONE", "ERROR"
BAD = (FAIL, REGRESSED, GONE, ERROR)
# A change is judged beyond its tolerance only past this relative slack (float round-off
# of values written with 7 significant digits).
ROUND_OFF = 1e-6


@dataclass
class Target:
    """A scenario to check: its baseline key, file, the duration to simulate (None: its own)
    and the option that set that duration (for error messages), its own duration, the
    estimated computing time (the order the pool is fed in: longest first), and the
    scenario itself, read and validated once (with the overrides and that duration) and
    handed to the worker as it is."""

    key: str
    path: Path
    duration_s: float | None
    duration_from: str
    own_duration_s: float
    estimate_s: float
    scenario: object = field(repr=False, compare=False)


@dataclass
class Row:
    """One line of the table: a margin of a scenario and its verdict."""

    key: str
    name: str
    value: float = math.nan
    unit: str = ""
    limit: float | None = None
    sense: str | None = None
    status: str = ""
    instance: str = ""
    note: str = ""
    integer: bool = False
    base: bl.Entry | None = None
    change: float | None = None
    verdict: str = "ok"
    problems: list = field(default_factory=list)

    @property
    def bad(self) -> bool:
        return self.verdict in BAD


# --------------------------------------------------------------------------- what to run


def scenario_key(path: Path, name: str) -> str:
    """A scenario's baseline key: its catalogue name (path below a catalogue folder
    without .toml), else the scenario's own ``name``."""
    from .catalogue import folders

    real = Path(path).resolve()
    for folder in folders():
        try:
            return real.relative_to(folder.resolve()).with_suffix("").as_posix()
        except (ValueError, OSError):
            continue
    return name


def find(args) -> list[Path]:
    """The scenario files named by ``args`` (files, catalogue names, directories: their
    runnable scenarios; none: the catalogue). Standard library only."""
    from .catalogue import ENV, entries, folders, resolve

    paths = []
    if not args:
        roots = [f for f in folders() if f.is_dir()]
        if not roots:
            raise TwinInputError(", ".join(str(f) for f in folders()), ENV, "no catalogue folder to check")
        args = roots
    for arg in args:
        p = Path(arg)
        if p.is_dir():
            found = [path for _, path, _ in entries(p)]
            if not found:
                raise TwinInputError(arg, "SCENARIO", "no runnable scenario (a TOML file with a name) under this directory")
            paths += found
        else:
            paths.append(resolve(arg))
    return paths


def collect(paths, overrides, duration, base: bl.Baseline | None, allow_large: bool = False) -> list[Target]:
    """The scenarios of ``paths`` (:func:`find`), each loaded and validated with the
    overrides and the duration it will run (``--duration``, else the baseline's, else its
    own). Bad input raises TwinInputError, and so does a run estimated to compute for
    longer than the limit (:func:`twin.budget.check`; it keeps no telemetry) unless
    ``allow_large``."""
    from .budget import check as budget_check  # the schema (pydantic) once every file is found
    from .budget import estimate
    from .scenario import load

    seen, targets = {}, []
    for path in paths:
        real = Path(path).resolve()
        if real in seen:
            continue
        seen[real] = path
        loaded = load(path, list(overrides))
        s = loaded.scenario
        key = scenario_key(path, s.name)
        other = next((t for t in targets if t.key == key), None)
        if other is not None:
            raise TwinInputError(path, "name", f"{key!r} is also the name of {other.path}: two scenarios cannot share "
                                               "a baseline key")
        own = s.simulation.duration_s
        run_s, origin = None, ""
        if duration is not None:
            run_s, origin = duration, "--duration"
        elif base is not None and key in base.scenarios and base.scenarios[key].duration_s != own:
            run_s, origin = base.scenarios[key].duration_s, f"{base.path} (scenario.\"{key}\".duration_s)"
        if run_s is not None:
            loaded = load(path, list(overrides), {"simulation.duration_s": (run_s, origin)})
            s = loaded.scenario
        if not allow_large:
            budget_check(s, loaded.where, in_memory=True, telemetry=False)
        targets.append(Target(key, real, run_s, origin, own, estimate(s).wall_s, s))
    return targets


# --------------------------------------------------------------------------- running


def run_one(target: Target) -> dict:
    """Run one scenario in memory and return its margins (picklable: a worker's answer).
    Never raises: a failure to run is reported as ``error``."""
    t0 = time.perf_counter()
    out = dict(key=target.key, rows=[], error=None, duration_s=target.duration_s, end="", complete=True,
               pid=os.getpid())
    try:
        from .engine import simulate

        s = target.scenario
        r = simulate(s, channels=(), track_margins=True)  # margins only: no telemetry kept
        from .margins import coarse_step

        out["caveat"] = coarse_step(s)  # a step too long for the workload's peaks: margins overstated
        r.end.reraise()  # Ctrl-C stops the check, not this scenario alone
        out["duration_s"] = s.simulation.duration_s
        out["complete"], out["end"] = r.end.is_complete, r.end.reason
        out["rows"] = [dict(name=m.name, value=float(m.value), unit=m.unit, limit=m.limit, sense=m.sense,
                            status=m.status, instance=m.instance, integer=m.integer,
                            note="; ".join(x for x in (m.fail_reason, m.note) if x))
                       for m in r.margin_table.rows]
    except TwinInputError as err:
        out["error"] = err.line()
    except Exception as err:  # a scenario that crashes is reported, the others still run
        import traceback

        tail = traceback.format_exception(type(err), err, err.__traceback__)[-3:]
        out["error"] = f"{type(err).__name__}: {err} | " + " ".join(" ".join(tail).split())
    out["elapsed_s"] = time.perf_counter() - t0
    return out


def _context():
    """Worker processes where fork is not used (:func:`start_workers`): forkserver where
    the platform has it, the server importing the engine (numpy, numba, scipy, h5py;
    :mod:`twin.check_worker`, with the console script's collector thresholds and BLAS
    threads) once so that each worker, a fork of it, starts without importing them again;
    else spawn."""
    import multiprocessing as mp

    if "forkserver" in mp.get_all_start_methods():
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(["twin.check_worker"])
        return ctx
    return mp.get_context("spawn")


def _warm() -> None:
    """A forked worker's first act, while the checking process still reads the scenarios:
    SIGINT ignored (Ctrl-C reaches the whole process group; the checking process stops
    the workers itself) and SIGTERM default (the parent's handler raises, for its own
    clean-up), the console script's collector thresholds and BLAS threads, the engine
    imported and, where the kernels run under numba, numba's runtime started
    (:func:`twin.kernels.warm`; with the kernels compiled ahead of time there is no numba
    to start, :mod:`twin.kernels.dispatch`)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    from . import check_worker  # noqa: F401  (tunes the process, imports the engine)
    from .kernels import warm

    warm()


class WorkerDied(Exception):
    """A worker process ended without answering (killed, out of memory)."""


class Forked:
    """``n`` worker processes, all forks of one process forked from this one at once,
    before this one imports the engine (POSIX; a process without other threads: the
    console script). That first process imports the engine and starts the kernels
    (:func:`_warm`: ~0.3 s compiled ahead of time, ~0.6 s more under numba) while this one
    reads the scenarios, then forks the other ``n - 1``, which start warm: the start-up is
    paid once, in parallel with the reading, and this process only hands out scenarios
    and judges (``local`` is False). Each worker
    serves one pipe: it says its pid, then answers each scenario it is sent with
    :func:`run_one`'s result, and ends when the pipe closes."""

    local = False

    def __init__(self, n: int):
        import threading
        from multiprocessing import Pipe

        ends = [Pipe() for _ in range(n)]
        me = os.getpid()
        pid = os.fork()  # OSError: no process to spare (start_workers falls back to the pool)
        if pid == 0:
            _child(me, _first_worker, [c for _, c in ends], [p for p, _ in ends])
        for _, c in ends:
            c.close()
        self.first, self.pids, self.lock = pid, {pid}, threading.Lock()
        self.runners = [_PipeWorker(p, self) for p, _ in ends]

    def stop(self) -> None:
        """Kill every worker (in memory only: nothing of theirs to finish)."""
        with self.lock:
            pids = list(self.pids)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self._reap()

    def close(self) -> None:
        """End the workers (each reads the end of its pipe) and reap the first one, which
        reaps the others."""
        for run in self.runners:
            run.conn.close()
        self._reap()

    def _reap(self) -> None:
        try:
            os.waitpid(self.first, 0)
        except ChildProcessError:
            pass


class _PipeWorker:
    """The checking process's side of one :class:`Forked` worker's pipe."""

    def __init__(self, conn, forked: Forked):
        self.conn, self.forked = conn, forked

    def ready(self) -> str | None:
        """Wait for the worker's pid, its first message (before it is given a scenario,
        so that a worker that never starts loses none); None, or why it did not start."""
        try:
            kind, what = self.conn.recv()
        except (EOFError, OSError) as err:
            return f"it ended ({type(err).__name__})"
        if kind != "ready":
            return what
        with self.forked.lock:
            self.forked.pids.add(what)
        return None

    def __call__(self, target) -> dict:
        try:
            self.conn.send(target)
            return self.conn.recv()
        except (EOFError, OSError) as err:
            raise WorkerDied(f"it ended without an answer ({type(err).__name__})") from None


def _child(parent: int, fn, *args) -> None:
    """A forked child's whole life: ``fn(*args)``, then ``os._exit`` (never back into the
    parent's stack, its buffers or its exit handlers); an error ends it with status 1,
    which its pipe's end tells the checking process. On Linux the child dies with its
    parent (``parent``, the pid that forked it): a check killed outright (SIGKILL, a CI
    job's last resort) takes its workers with it instead of leaving them to finish their
    scenarios, holding its output pipes open."""
    code = 1
    try:
        _die_with_parent(parent)
        fn(*args)
        code = 0
    except BaseException:  # noqa: BLE001  (a child never returns to the parent's code)
        pass
    finally:
        os._exit(code)


def _die_with_parent(parent: int) -> None:
    """SIGKILL this process when the process that forked it ends (Linux's
    ``prctl(PR_SET_PDEATHSIG)``; elsewhere nothing: the worker ends at its next scenario,
    when its pipe is found closed)."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL), 0, 0, 0)  # 1: PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # it ended before the request was made
        os._exit(1)


def _first_worker(mine: list, theirs: list) -> None:
    """The process :class:`Forked` forks: start the engine, fork the other workers (each
    keeps its own pipe and closes the rest, so that its death closes it), serve pipe 0,
    then reap the others."""
    for c in theirs:
        c.close()
    try:
        _warm()
    except Exception as err:  # the engine does not start here: say why on every pipe, the check runs without us
        for c in mine:
            c.send(("failed", f"{type(err).__name__}: {err}"))
        return
    me = os.getpid()
    for i in range(1, len(mine)):
        if os.fork() == 0:
            _child(me, _serve, mine[i], [c for j, c in enumerate(mine) if j != i])
    for c in mine[1:]:
        c.close()
    _serve(mine[0], [])
    while True:
        try:
            os.wait()
        except ChildProcessError:
            break


def _serve(conn, others: list) -> None:
    for c in others:
        c.close()
    conn.send(("ready", os.getpid()))
    while True:
        try:
            task = conn.recv()
        except EOFError:  # the checking process closed its end: no more scenarios
            return
        conn.send(run_one(task))


class Pooled:
    """``n - 1`` worker processes of a process pool (:func:`_context`: forkserver, else
    spawn), and this process as the n-th (``local``): where forking this process is not
    safe (threads: a test runner, a notebook) or not possible."""

    local = True

    def __init__(self, n: int):
        from concurrent.futures import ProcessPoolExecutor

        ctx = _context()
        if ctx.get_start_method() == "forkserver":
            from multiprocessing import forkserver

            forkserver.ensure_running()  # it imports the engine while this process reads the scenarios
        self.pool = ProcessPoolExecutor(max_workers=n - 1, mp_context=ctx)
        self.runners = [self] * (n - 1)

    def ready(self) -> None:
        return None

    def __call__(self, target):
        try:
            return self.pool.submit(run_one, target).result()
        except Exception as err:  # BrokenProcessPool: the worker died
            raise WorkerDied(f"{type(err).__name__}: {err}") from None

    def stop(self) -> None:
        for proc in list((getattr(self.pool, "_processes", None) or {}).values()):
            proc.kill()
        self.pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        self.pool.shutdown()


def start_workers(n: int):
    """The processes that run ``n`` scenarios at a time, started now, before the scenarios
    are read: :class:`Forked` where the platform forks and this process has no other
    thread (forking a process with threads can deadlock), else :class:`Pooled`."""
    import multiprocessing as mp
    import threading

    if "fork" in mp.get_all_start_methods() and threading.active_count() == 1:
        try:
            return Forked(n)
        except OSError:  # no process to spare: the pool's error, or this process alone
            pass
    return Pooled(n)


def run_all(targets: list[Target], jobs: int, progress, workers=None) -> dict:
    """Run every target, ``jobs`` at a time; key -> answer.

    One queue, longest estimate first, is served by the worker processes (``workers``, from
    :func:`start_workers`, else started here; ended at the end), each taking the next
    scenario when it is free, and by this process too where the workers leave it a share
    (:class:`Pooled`). A worker that dies (killed, out of memory) fails its scenario
    alone; the others' scenarios go on in the processes left, and what none is left to run
    runs in this process."""
    import threading
    from collections import deque

    order = deque(sorted(targets, key=lambda t: -t.estimate_s))
    results, lock, stopped, noted = {}, threading.Lock(), threading.Event(), set()
    if jobs < 2 or len(order) < 2:
        if workers is not None:  # fewer scenarios than the paths named (one named twice): no use for them
            workers.stop()
        workers = None
    elif workers is None:
        workers = start_workers(jobs)

    def take():
        with lock:
            if not order:
                return None
            t = order.popleft()
            progress.start(t.key)
            return t

    def record(t, answer):
        with lock:
            if stopped.is_set():  # interrupted: the killed workers' scenarios are not reported
                return
            results[t.key] = answer
            progress.done(answer)

    def feed(run):  # one thread per worker process: hands it the next scenario when it is free
        if (why := run.ready()) is not None:  # it never started: its share runs elsewhere
            with lock:
                if why not in noted:  # the forks of a first worker that failed all say the same
                    noted.add(why)
                    progress.note(f"a worker process did not start ({why}); the others run its share")
            return
        while (t := take()) is not None:
            try:
                answer = run(t)
            except WorkerDied as err:  # its scenario fails, the others go on elsewhere
                record(t, dict(key=t.key, rows=[], error=f"worker process failed: {err}", elapsed_s=math.nan,
                               complete=False))
                return
            record(t, answer)

    feeders = [threading.Thread(target=feed, args=(run,), daemon=True, name=f"twin-check-feed-{i}")
               for i, run in enumerate(workers.runners if workers is not None else [])]
    try:
        for th in feeders:
            th.start()
        if workers is None or workers.local:
            while (t := take()) is not None:
                record(t, run_one(t))
        for th in feeders:
            while th.is_alive():
                th.join(0.1)  # a timeout keeps Ctrl-C and SIGTERM deliverable
        while (t := take()) is not None:  # every worker died: the rest runs here
            record(t, run_one(t))
    except BaseException:  # interrupted: the scenarios in progress (the row's day, ~30 s) are not waited for
        with lock:
            order.clear()
            stopped.set()
        if workers is not None:
            workers.stop()
        raise
    if workers is not None:
        workers.close()
    return results


# --------------------------------------------------------------------------- judging


def _fmt(v, integer=False) -> str:
    from .numfmt import format_value

    return "" if v is None else format_value(v, integer)


def _u(unit: str) -> str:
    """A unit after a number in a sentence (none for a ratio or count, unit "1")."""
    return "" if unit == "1" else f" {unit}"


def _limit(r: Row) -> str:
    if r.limit is None:
        return ""
    return (">=" if r.sense == "min" else "<=") + (f"{int(r.limit)}" if r.integer else f"{r.limit:.4g}")


def judge(key: str, answer: dict, base: bl.Baseline | None, comparable: bool) -> list[Row]:
    """The rows of one scenario's answer, each with its verdict."""
    if answer.get("error"):
        return [Row(key, "(run)", verdict=ERROR, problems=[answer["error"]])]
    entries = {} if base is None else {n: base.margins[(key, n)] for n in base.margin_names(key)}
    rows = []
    for m in answer["rows"]:
        entry = entries.pop(m["name"], None)
        figure = bl.figure_direction(m["name"])
        if m["sense"] is None and figure is None and entry is None:
            continue  # a figure that is neither judged nor in the baseline
        r = Row(key, m["name"], m["value"], m["unit"], m["limit"], m["sense"], m["status"], m["instance"],
                m["note"], m["integer"], base=entry)
        _verdict(r, comparable)
        rows.append(r)
    if comparable:
        for name, entry in entries.items():
            rows.append(Row(key, name, unit=entry.unit, base=entry, verdict=GONE,
                            problems=[f"in the baseline ({bl.margin_block(key, name, entry).splitlines()[0]}), "
                                      "no longer reported by the scenario"]))
    return rows


def _verdict(r: Row, comparable: bool) -> None:
    e = r.base
    words = []
    limit_bad = r.status in ("fail", "not judged")
    if limit_bad and not (e is not None and comparable and e.status == r.status):
        what = "not judged" if r.status == "not judged" else f"outside its limit {_limit(r)}{_u(r.unit)}"
        r.problems.append(f"{_fmt(r.value, r.integer)}{_u(r.unit)} {what}")
        words.append(FAIL)
    if e is None:
        words.append("new")
    elif not comparable:
        words.append("not compared")
    elif e.unit != r.unit:
        r.problems.append(f"unit {r.unit!r}, the baseline's is {e.unit!r}: the values do not compare "
                          "(update the baseline)")
        words.append(REGRESSED)
    else:
        v, b = r.value, e.value
        if math.isnan(v) and math.isnan(b):
            r.change = 0.0
        elif not math.isfinite(v) or not math.isfinite(b):
            r.change = math.nan
            if not math.isfinite(v):
                r.problems.append(f"{_fmt(v)} against the baseline's {_fmt(b, r.integer)}{_u(r.unit)}")
                words.append(REGRESSED)
            else:
                words.append("improved")
        else:
            r.change = v - b
            worse = e.worse_by(v)
            slack = e.tolerance + ROUND_OFF * max(1.0, abs(b))
            if worse > slack:
                r.problems.append(f"{_fmt(v, r.integer)}{_u(r.unit)} against the baseline's {_fmt(b, r.integer)}: "
                                  f"{worse:.3g}{_u(r.unit)} worse ({e.regression} is worse), beyond the tolerance "
                                  f"{e.tolerance:g}{_u(r.unit)}" + ("" if limit_bad or r.limit is None
                                                                    else f"; limit {_limit(r)} met"))
                words.append(REGRESSED)
            elif -worse > slack:
                words.append("improved")
        if r.status == "ok" and e.status in ("fail", "not judged"):
            words.append("improved")
    bad = [w for w in words if w in BAD]
    if bad:
        r.verdict = ",".join(bad)
    elif limit_bad:
        r.verdict = "accepted"
    else:
        r.verdict = next((w for w in words if w in ("not compared", "new", "improved")), "ok")


def problem_line(r: Row) -> str:
    """One line naming the scenario, the margin, what is wrong and the part that sets it."""
    where = f"; at {r.instance}" if r.instance and f"at {r.instance}" not in r.note else ""  # once
    note = f": {r.note}" if r.note else ""
    return f"{r.verdict} {r.key} {r.name}: " + "; ".join(r.problems) + where + note


# --------------------------------------------------------------------------- output


def table(rows: list[Row]) -> str:
    head = ("scenario", "margin", "value", "unit", "limit", "baseline", "change", "verdict")
    cells = [head] + [(r.key, r.name, _fmt(r.value, r.integer) if r.verdict not in (ERROR, GONE) else "", r.unit,
                       _limit(r), _fmt(r.base.value, r.integer) if r.base else "",
                       _change(r),
                       r.verdict) for r in rows]
    w = [max(len(c[i]) for c in cells) for i in range(len(head))]
    right = {2, 4, 5, 6}
    return "\n".join("  ".join(c[i].rjust(w[i]) if i in right else c[i].ljust(w[i]) for i in range(len(head))).rstrip()
                     for c in cells)


def _change(r: Row) -> str:
    if r.change is None:
        return ""
    if not math.isfinite(r.change):
        return "n/a"
    c = round(r.change, 0 if r.integer else 3) + 0.0  # no "-0.000"
    return f"{c:+.0f}" if r.integer else f"{c:+.3f}"


def summary(rows: list[Row], n_scenarios: int) -> str:
    bad = [r for r in rows if r.bad]
    count = lambda word: sum(1 for r in rows if word in r.verdict.split(","))  # noqa: E731
    tail = (f"{n_scenarios} scenario{'s' if n_scenarios != 1 else ''}, "
            f"{sum(1 for r in rows if r.verdict != ERROR)} margins; "
            f"{count('accepted')} accepted, {count('improved')} improved, {count('new')} new"
            + (f", {count('not compared')} not compared" if count("not compared") else ""))
    if not bad:
        return f"check: OK: {tail}"
    kinds = ", ".join(f"{count(w)} {w}" for w in BAD if count(w))
    return f"check: FAIL: {kinds}; {tail}"


JUNIT_MARK = b'<testsuites name="twin check"'  # what an earlier report starts with (after the XML declaration)


def junit(rows: list[Row], answers: dict, targets: list[Target]) -> str:
    """JUnit XML: one <testsuite> per scenario, one <testcase> per margin (classname the
    scenario), a <failure> per FAIL, REGRESSED or GONE margin naming the margin, its value,
    the limit or baseline and the part that sets it; an <error> for a scenario that did
    not run. The structure of the Jenkins xUnit plugin's junit-10.xsd
    (tests/data/junit.xsd)."""
    import socket
    import xml.etree.ElementTree as ET
    from datetime import datetime, timezone

    stamp = datetime.now(timezone.utc).replace(microsecond=0).isoformat()
    suites = ET.Element("testsuites", name="twin check")
    totals = [0, 0, 0]
    total_time = 0.0
    for t in targets:
        mine = [r for r in rows if r.key == t.key]
        answer = answers[t.key]
        elapsed = answer.get("elapsed_s", 0.0)
        elapsed = elapsed if math.isfinite(elapsed) else 0.0
        total_time += elapsed
        fails = sum(1 for r in mine if r.bad and r.verdict != ERROR)
        errors = sum(1 for r in mine if r.verdict == ERROR)
        suite = ET.SubElement(suites, "testsuite", name=t.key, tests=str(len(mine)), failures=str(fails),
                              errors=str(errors), skipped="0", time=f"{elapsed:.3f}", timestamp=stamp,
                              hostname=socket.gethostname(), file=str(t.path))
        props = ET.SubElement(suite, "properties")
        ran = answer.get("duration_s") or t.own_duration_s
        for name, value in (("duration_s", f"{ran:g}"), ("scenario_duration_s", f"{t.own_duration_s:g}"),
                            ("end", answer.get("end", ""))):
            ET.SubElement(props, "property", name=name, value=str(value))
        for r in mine:
            case = ET.SubElement(suite, "testcase", name=r.name, classname=t.key, time="0")
            if r.verdict == ERROR:
                ET.SubElement(case, "error", message=f"{t.key} did not run: {r.problems[0]}", type="run").text = \
                    r.problems[0]
            elif r.bad:
                kind = "limit" if FAIL in r.verdict else "regression" if REGRESSED in r.verdict else "gone"
                ET.SubElement(case, "failure", message=problem_line(r), type=kind).text = _detail(r)
            else:
                ET.SubElement(case, "system-out").text = _detail(r)
        totals[0] += len(mine)
        totals[1] += fails
        totals[2] += errors
    suites.set("tests", str(totals[0]))
    suites.set("failures", str(totals[1]))
    suites.set("errors", str(totals[2]))
    suites.set("time", f"{total_time:.3f}")
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


def _detail(r: Row) -> str:
    lines = [f"value: {_fmt(r.value, r.integer)} {r.unit}", f"limit: {_limit(r) or 'none (a figure)'}",
             f"status: {r.status or 'figure'}", f"verdict: {r.verdict}"]
    if r.base is not None:
        lines += [f"baseline: {_fmt(r.base.value, r.integer)} {r.base.unit} (tolerance {r.base.tolerance:g}, "
                  f"{r.base.regression} is worse" + (f", accepted status {r.base.status}" if r.base.status else "")
                  + ")", f"baseline reason: {r.base.reason}"]
    if r.instance:
        lines.append(f"instance: {r.instance}")
    if r.note:
        lines.append(f"note: {r.note}")
    lines += r.problems
    return "\n".join(lines)


class Progress:
    """What runs, on stderr: a live bar (rich) when stdout and stderr are terminals, else
    one plain line per scenario finished (CI logs)."""

    def __init__(self, total: int, jobs: int, live: bool | None = None):
        self.total, self.n, self.running = total, 0, []
        self.live = (sys.stdout.isatty() and sys.stderr.isatty()) if live is None else live
        self.t0 = time.perf_counter()
        head = f"checking {total} scenario{'s' if total != 1 else ''}, {jobs} at a time"
        if self.live:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress as Bar, TextColumn, TimeElapsedColumn

            self.bar = Bar(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                           console=Console(stderr=True), transient=True)
            self.task = self.bar.add_task(head, total=total)
            self.bar.start()
        else:
            print(head, file=sys.stderr, flush=True)

    def start(self, key: str) -> None:
        self.running.append(key)
        if self.live:
            self.bar.update(self.task, description="running " + ", ".join(self.running))

    def done(self, answer: dict) -> None:
        self.n += 1
        key = answer["key"]
        if key in self.running:
            self.running.remove(key)
        if answer.get("error"):
            what = "ERROR: " + answer["error"]
        else:
            st = [r["status"] for r in answer["rows"] if r["status"]]
            what = f"{len(st)} margins, {st.count('fail')} outside their limits" + (
                "" if answer.get("complete", True) else " (run ended early)")
        self.note(f"[{self.n}/{self.total}] {key}: {what} ({answer.get('elapsed_s', math.nan):.1f} s)")
        if self.live:
            self.bar.update(self.task, advance=1, description=("running " + ", ".join(self.running))
                            if self.running else "done")

    def note(self, line: str) -> None:
        if self.live:
            self.bar.console.print(line, markup=False, highlight=False)
        else:
            print(line, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.live:
            self.bar.stop()
        ran = f"{self.total}" if self.n == self.total else f"{self.n} of {self.total}"  # interrupted: fewer
        print(f"ran {ran} scenario{'s' if self.total != 1 else ''} in {time.perf_counter() - self.t0:.1f} s",
              file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- the baseline


def new_baseline_text(base: bl.Baseline, rows: list[Row], targets: list[Target], answers: dict,
                      reason: str | None) -> tuple[str, list]:
    """The baseline with the entries that changed rewritten (see :mod:`twin.baseline`);
    returns the text and a list of what changed, one line each."""
    date = bl.today()
    tables, drop, changes = {}, set(), []
    for t in targets:
        answer = answers[t.key]
        if answer.get("error"):
            continue  # a scenario that did not run keeps its entries
        ran = answer["duration_s"]
        old = base.scenarios.get(t.key)
        if old is None or old.duration_s != ran:
            why = reason or (f"updated {date}: was {old.duration_s:g} s" if old else
                             f"recorded {date}" + ("" if ran == t.own_duration_s else
                                                   f"; the scenario's own duration is {t.own_duration_s:g} s"))
            tables[("scenario", t.key)] = bl.scenario_block(t.key, bl.ScenarioEntry(ran, why))
            changes.append(f"scenario {t.key}: duration {ran:g} s" + (f" (was {old.duration_s:g} s)" if old else ""))
        for r in (r for r in rows if r.key == t.key):
            e = r.base
            if r.verdict == GONE:
                drop.add(("margin", t.key, r.name))
                changes.append(f"{t.key} {r.name}: removed (no longer reported)")
                continue
            status = r.status or None
            moved = REGRESSED in r.verdict or "improved" in r.verdict
            if (e is not None and e.unit == r.unit and e.status == status and not moved
                    and (old is None or old.duration_s == ran)):
                continue
            if e is None:
                why = reason or f"recorded {date}"
                tol = bl.default_tolerance(r.name, r.unit, r.value)
                direction = bl.SMALLER if r.sense == "min" else bl.LARGER if r.sense == "max" else \
                    bl.figure_direction(r.name)
                changes.append(f"{t.key} {r.name}: added, {_fmt(r.value, r.integer)}{_u(r.unit)}")
            else:
                was = f"{_fmt(e.value, r.integer)}{_u(e.unit)}" + (f", {e.status}" if e.status != status else "")
                why = reason or f"updated {date}: was {was}"
                tol, direction = e.tolerance, e.regression
                changes.append(f"{t.key} {r.name}: {_fmt(r.value, r.integer)}{_u(r.unit)} (was {was})")
            value = float(round(r.value)) if r.integer and math.isfinite(r.value) else r.value
            tables[("margin", t.key, r.name)] = bl.margin_block(
                t.key, r.name, bl.Entry(value, r.unit, tol, direction, why, status))
    return bl.update(base, tables, drop), changes


# --------------------------------------------------------------------------- the command


def _shown(path: Path) -> str:
    """A path as short as it is clear: relative to the working directory when below it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError):
        return str(path)


def main(args, baseline_path, update, reason, junit_path, jobs, overrides, duration, out=print,
         allow_large: bool = False) -> int:
    """The command: returns the exit status (bad input raises TwinInputError)."""
    if reason is not None and not update:
        raise TwinInputError("--reason", "", "is the reason of the entries --update-baseline writes; "
                                             "given without --update-baseline")
    explicit = baseline_path is not None
    path = Path(baseline_path) if explicit else bl.DEFAULT_PATH
    if path.exists() or explicit and not update:
        base = bl.load(path)
    else:
        base = bl.Baseline(path)
    if junit_path is not None:
        junit_path = Path(junit_path)
        if junit_path.is_dir():
            raise TwinInputError(junit_path, "--junit", "is a directory; give a file path for the report")
        prepare_output(junit_path, JUNIT_MARK, "a JUnit report of twin check", "--junit", within=512)
    if update:
        probe_output(path, "--update-baseline")
    paths = find(args)
    if jobs is None:
        jobs = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    workers = start_workers(min(jobs, len(paths))) if jobs > 1 and len(paths) > 1 else None
    try:
        targets = collect(paths, overrides, duration, base, allow_large)
        jobs = max(1, min(jobs, len(targets)))
        progress = Progress(len(targets), jobs)
    except BaseException:
        if workers is not None:
            workers.stop()
        raise
    try:
        answers = run_all(targets, jobs, progress, workers)
    finally:
        progress.close()
    rows = []
    for t in sorted(targets, key=lambda t: t.key):
        answer = answers[t.key]
        recorded = base.scenarios.get(t.key)
        ran = answer.get("duration_s") or t.own_duration_s
        comparable = recorded is None or recorded.duration_s == ran
        rows += judge(t.key, answer, base if base.margins or base.scenarios else None, comparable)
    targets = sorted(targets, key=lambda t: t.key)
    shown = _shown(path)
    if not path.exists() and not update:
        out(f"baseline: none at {shown} (margins judged against their limits only)")
    else:
        out(f"baseline: {shown}")
    for t in targets:
        answer = answers[t.key]
        ran = answer.get("duration_s") or t.own_duration_s
        if ran != t.own_duration_s:
            why = (base.scenarios[t.key].reason if t.duration_from.startswith(str(base.path)) and t.key in base.scenarios
                   else t.duration_from)
            out(f"{t.key}: checked over {ran:g} s of its {t.own_duration_s:g} s ({why})")
        rec = base.scenarios.get(t.key)
        if rec is not None and rec.duration_s != ran and not answer.get("error"):
            out(f"{t.key}: baseline taken over {rec.duration_s:g} s, run over {ran:g} s: not compared")
        if not answer.get("error") and not answer.get("complete", True):
            out(f"{t.key}: {answer['end']}")
        if answer.get("caveat"):
            out(f"{t.key}: {answer['caveat']}")
    out(table(rows))
    problems = [r for r in rows if r.bad]
    for r in problems:
        out(problem_line(r))
    if junit_path is not None:
        write_whole(junit_path, junit(rows, answers, targets), "--junit")
        out(f"junit: {junit_path}")
    if update:
        out("against the baseline before the update: " + summary(rows, len(targets)))
        text, changes = new_baseline_text(base, rows, targets, answers, reason)
        old = base.text
        if text != old:
            write_whole(path, text, "--update-baseline")
            out(bl.diff(old, text, path).rstrip("\n"))
        for line in changes:
            out(f"  {line}")
        errors = [r for r in rows if r.verdict == ERROR]
        out(f"baseline {path}: " + (f"{len(changes)} entries changed" if changes else "unchanged")
            + (f"; {len(errors)} scenarios did not run, their entries kept" if errors else ""))
        return 1 if errors else 0
    out(summary(rows, len(targets)))
    return 1 if problems else 0
