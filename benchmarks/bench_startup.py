"""Start-up and exit of the command line: what a user waits for besides the simulation.

Cases, each a fresh process, interleaved within every repeat with the order rotating
from repeat to repeat (the machine is shared: compare within a run):
  - ``import``: ``python -c "import twin.engine"`` (numpy, pydantic, fluids, ht; numba
    where the kernels run under it);
  - ``run``: ``twin run reference-w32`` as installed (the console script, which freezes
    the garbage collector at exit: twin.cli.main), on the kernels ``make`` compiled ahead
    of time where they are built (twin.kernels.dispatch);
  - ``import-jit``, ``run-jit``: the same two with ``TWIN_KERNELS=jit``: the kernels under
    numba's JIT (from its on-disk cache), numba imported and its runtime started;
  - ``run-no-freeze``: the same command through the click group alone
    (``python -c "from twin.cli import cli; cli()" run reference-w32``), which exits
    without it, as every command did before.
For the two runs the benchmark also stamps the arrival of the last line of output and
reports the time from it to the process's end (``exit``): the interpreter's
finalization, which a user waits for after the answer is printed.

Reported: median and min-max of each, the machine and the load average.
Run: .venv/bin/python benchmarks/bench_startup.py [--repeats N] [--out results/bench_startup.json]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench_check import ROOT, TWIN, _load, _machine

IMPORT = [sys.executable, "-c", "import twin.engine"]
RUN = [str(TWIN), "run", "reference-w32"]
JIT = {"TWIN_KERNELS": "jit"}
CASES = {  # name: (command, environment added)
    "import": (IMPORT, {}),
    "import-jit": (IMPORT, JIT),
    "run": (RUN, {}),
    "run-jit": (RUN, JIT),
    "run-no-freeze": ([sys.executable, "-c", "from twin.cli import cli; cli()", "run", "reference-w32"], {}),
}


def _time(case: tuple) -> dict:
    """Wall time of a case's command and the time from its last line of output to its end."""
    cmd, env = case
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                         env={**os.environ, **env})
    last = t0
    for _ in p.stdout:
        last = time.perf_counter()
    code = p.wait()
    end = time.perf_counter()
    return dict(wall_s=end - t0, exit_s=end - last, code=code)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "bench_startup.json")
    a = ap.parse_args()
    machine, load0 = _machine(), _load()
    print(f"machine: nproc {machine['nproc']}, {machine['cpu']}, Python {machine['python']}, "
          f"kernels {machine['kernels']}; load {load0}", flush=True)
    _time(CASES["run-jit"])  # untimed: fills the numba cache on a fresh clone
    names = list(CASES)
    got = {n: [] for n in names}
    for i in range(a.repeats):
        for n in names[i % len(names):] + names[:i % len(names)]:
            r = _time(CASES[n])
            if r["code"] != 0:
                print(f"  {n}: exit {r['code']}", flush=True)
            got[n].append(r)
    summary = {}
    print(f"\n{'case':<14} {'wall median [s]':>16} {'min-max':>11} {'after the last line [s]':>24}")
    for n in names:
        wall = [r["wall_s"] for r in got[n]]
        tail = [r["exit_s"] for r in got[n]]
        summary[n] = dict(wall_median_s=statistics.median(wall), wall_min_s=min(wall), wall_max_s=max(wall),
                          exit_median_s=statistics.median(tail), runs=got[n])
        shown = f"{statistics.median(tail):.2f}" if not n.startswith("import") else ""
        print(f"{n:<14} {statistics.median(wall):>16.2f} {min(wall):>5.2f}-{max(wall):<5.2f} {shown:>24}")
    load1 = _load()
    print(f"load average before {load0}, after {load1}")
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(dict(machine=machine, load_before=load0, load_after=load1, summary=summary), indent=2))
    print(f"written: {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
