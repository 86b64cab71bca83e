"""Running a sweep's plan on Dask, keeping results as runs finish, consolidating them.

Without a scheduler address the runs go to a ``dask.distributed.LocalCluster`` on this
machine (worker processes, one thread each, as many as cores unless told); with one, to
that cluster (``Client(address)``). The base scenario's data is scattered to the workers
once; each task ships a few values and returns one row.

Results: every finished run is appended to ``RESULTS.parts/`` (a small Parquet file
written under a temporary name and renamed, at most about once a second), so a sweep that
is killed loses only the runs in flight; started again with the same command it reads the
parts, skips every run whose hash it already has, runs the rest, and writes the whole
table to ``RESULTS.parquet`` (also atomically). The parts stay: they are the record a
later restart reads.
"""
from __future__ import annotations

import logging
import os
import sys
import time
import uuid
from pathlib import Path

from .task import FAILED, OK

# How often finished rows are written to a part file [s] (I/O pacing, not physics): a
# kill loses at most this much of finished work; 10,000 quick runs make ~10^3-10^4 files.
FLUSH_S = 1.0
FIRST = ("run", "run_hash")
LAST = ("status", "error", "verdict", "failing", "wall_s", "cpu_s", "build_s", "simulate_s", "started_at", "worker")


class Store:
    """The part files of a results table (or nothing, for a sweep without output)."""

    def __init__(self, output):
        self.output = Path(output) if output is not None else None
        self.parts = self.output.with_name(self.output.name + ".parts") if self.output is not None else None
        self.buffer: list = []
        self.last = time.monotonic()

    def done(self):
        """The rows already recorded (parts, else an earlier consolidated table), the
        latest per run hash."""
        import pandas as pd

        frames = []
        if self.parts is not None and self.parts.is_dir():
            frames = [pd.read_parquet(p) for p in sorted(self.parts.glob("part-*.parquet"))]
        if not frames and self.output is not None and self.output.is_file():
            frames = [pd.read_parquet(self.output)]
            if "run_hash" not in frames[0]:
                from ..errors import TwinInputError

                raise TwinInputError(self.output, "-o", "is a Parquet table but not a sweep's results (no run_hash "
                                                        "column); refusing to overwrite it")
        frames = [f for f in frames if len(f)]
        if not frames:
            return pd.DataFrame(columns=list(FIRST))
        df = pd.concat(frames, ignore_index=True)
        if "started_at" in df:
            df = df.sort_values("started_at", kind="stable")
        return df.drop_duplicates("run_hash", keep="last")

    def add(self, row: dict, force: bool = False) -> None:
        self.buffer.append(row)
        if force or time.monotonic() - self.last >= FLUSH_S:
            self.flush()

    def flush(self) -> None:
        if not self.buffer or self.parts is None:
            self.buffer = [] if self.parts is None else self.buffer
            return
        import pandas as pd

        self.parts.mkdir(parents=True, exist_ok=True)
        name = f"part-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.parquet"
        _atomic_parquet(pd.DataFrame(self.buffer), self.parts / name)
        self.buffer = []
        self.last = time.monotonic()


def _atomic_parquet(df, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    df.to_parquet(tmp, engine="pyarrow", index=False)
    os.replace(tmp, path)


def _order(df, params: list):
    cols = [c for c in FIRST if c in df] + [c for c in params if c in df]
    rest = [c for c in df.columns if c not in cols and c not in LAST]
    return df[cols + rest + [c for c in LAST if c in df]]


class Progress:
    """A rich progress bar on a terminal; plain lines (about every 5 % or 30 s) otherwise."""

    def __init__(self, total: int, show: bool, skipped: int = 0):
        self.total, self.n, self.failed, self.show = total, 0, 0, show
        self.bar = None
        self.t0 = self.last = time.monotonic()
        if not show or total == 0:
            return
        if sys.stderr.isatty():
            try:
                from rich.progress import (BarColumn, MofNCompleteColumn, Progress as Bar, TextColumn,
                                           TimeElapsedColumn, TimeRemainingColumn)
            except ImportError:
                pass
            else:
                from rich.console import Console

                self.bar = Bar(TextColumn("sweep"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[note]}"),
                               TimeElapsedColumn(), TimeRemainingColumn(), console=Console(stderr=True))
                self.bar.start()
                self.task = self.bar.add_task("runs", total=total, note="")
                return
        print(f"sweep: {total} runs to do" + (f" ({skipped} already done)" if skipped else ""), file=sys.stderr,
              flush=True)

    def step(self, row: dict) -> None:
        self.n += 1
        self.failed += row.get("status") != OK
        note = f"{self.failed} failed" if self.failed else ""
        if self.bar is not None:
            self.bar.update(self.task, advance=1, note=note)
        elif self.show:
            now = time.monotonic()
            every = max(1, self.total // 20)
            if self.n % every == 0 or self.n == self.total or now - self.last >= 30.0:
                self.last = now
                print(f"sweep: {self.n}/{self.total} runs ({100 * self.n / self.total:.0f} %), "
                      f"{now - self.t0:.0f} s" + (f", {note}" if note else ""), file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def _is_main_guard(test) -> bool:
    """``__name__ == "__main__"`` (either way round)."""
    import ast

    if not (isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq)):
        return False
    sides = [test.left, test.comparators[0]]
    return (any(isinstance(x, ast.Name) and x.id == "__name__" for x in sides)
            and any(isinstance(x, ast.Constant) and x.value == "__main__" for x in sides))


def unguarded_script_line(depth: int = 2):
    """(script, line) when this call comes from the top level of the script Python runs
    (``__main__`` with a file) outside an ``if __name__ == "__main__":`` block, else None.
    A local cluster's worker processes are started by spawning (Dask's default): each
    imports that script again, and a sweep at its top level would start again in every
    worker, each failing with a page of tracebacks ("Nanny failed to start")."""
    import ast

    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if not path:  # a notebook, `python -c`, an interactive session: nothing is imported again
        return None
    frame = sys._getframe(depth)
    while frame is not None and not (frame.f_globals is vars(main) and frame.f_code.co_name == "<module>"):
        frame = frame.f_back
    if frame is None:
        return None
    try:
        tree = ast.parse(Path(path).read_text(), path)
    except (OSError, SyntaxError, ValueError, UnicodeDecodeError):
        return None
    line = frame.f_lineno
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _is_main_guard(node.test) and node.lineno <= line <= node.end_lineno:
            return None
    return path, line


def client_for(scheduler, workers):
    """A Dask client: of the cluster at ``scheduler``, else of a new local cluster
    (worker processes, one thread each). Returns (client, cluster or None)."""
    from dask.distributed import Client, LocalCluster

    if scheduler is not None:
        try:
            return Client(scheduler, timeout="30s"), None
        except (OSError, TimeoutError, ValueError) as err:
            from ..errors import TwinInputError

            raise TwinInputError("--scheduler", scheduler, f"cannot reach the Dask scheduler: {err}") from None
    unguarded = unguarded_script_line()
    if unguarded is not None:
        path, line = unguarded
        raise RuntimeError(
            f"{path}:{line}: a sweep on a local Dask cluster started from the top level of a script without "
            "`if __name__ == \"__main__\":`; Dask's worker processes import the script again and would start "
            "the sweep again: put the call under that guard")
    n = workers or os.cpu_count() or 1
    cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None,
                           silence_logs=logging.ERROR)
    return Client(cluster), cluster


def execute(plan, scheduler=None, output=None, workers=None, limit=None, retry_failed=False, progress=False,
            client=None):
    """Run the plan's missing runs; the whole table (pandas.DataFrame, run order) with
    ``attrs``: ``executed`` (runs done now), ``skipped`` (found done), ``elapsed_s``."""
    import pandas as pd

    from .task import run_one

    store = Store(output)
    done = store.done()
    hashes = {r.hash for r in plan.runs}
    recorded = len(done)
    done = done[done["run_hash"].isin(hashes)] if len(done) else done
    if recorded and not len(done):  # an edited sweep file, or another sweep's -o: say so, then replace
        print(f"sweep: {output} holds {recorded} runs of another sweep, none of them in this one: its table is "
              f"replaced by this sweep's (their parts stay in {store.parts})", file=sys.stderr, flush=True)
    if retry_failed and len(done):
        done = done[done["status"] == OK]
    have = set(done["run_hash"]) if len(done) else set()
    pending = [r for r in plan.runs if r.hash not in have]
    if limit is not None:
        pending = pending[:limit]
    rows, t0 = [], time.perf_counter()
    bar = Progress(len(pending), progress, skipped=len(have))
    own = None
    try:
        if pending:
            from dask.distributed import as_completed

            if client is None:
                client, own = client_for(scheduler, workers)
            # a list, not the dict: a scattered dict becomes one future per key, named by
            # the key ("data"), and two sweeps on one client would share them. Keys unique
            # to this call, not content hashes: a key an earlier sweep on the same client
            # released can be forgotten by the scheduler after this one reuses it, and its
            # runs are cancelled ("lost dependencies", seen in tests/test_sweep.py)
            call = uuid.uuid4().hex[:8]
            [payload] = client.scatter([plan.payload], broadcast=True, hash=False)
            futures = {client.submit(run_one, payload, r.task(), key=f"twin-run-{r.hash}-{call}", pure=False): r
                       for r in pending}
            for fut in as_completed(futures):
                try:
                    row = fut.result()
                except Exception as err:  # the worker died or the task was lost: this run failed
                    r = futures[fut]
                    row = dict(run=r.run, run_hash=r.hash, **r.params, status=FAILED,
                               error=f"worker: {type(err).__name__}: {err}")
                rows.append(row)
                store.add(row)
                bar.step(row)
                fut.release()
    finally:
        store.flush()
        bar.close()
        if own is not None:
            client.close()
            own.close()
    # the index as the run number; rows of runs done earlier first, then the new ones
    frames = [f for f in (done, pd.DataFrame(rows)) if len(f)]
    df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(FIRST))
    df = _order(df.sort_values("run", kind="stable").reset_index(drop=True), plan.param_names)
    if output is not None:
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        _atomic_parquet(df, Path(output))
    df.attrs.update(executed=len(rows), skipped=len(have), elapsed_s=time.perf_counter() - t0)
    return df
