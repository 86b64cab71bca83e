"""`twin check` over the whole catalogue with 1 job and with 2 jobs, in one run.

Cases, each a fresh `twin check` process (as CI runs it: `make check`), interleaved
within every repeat with the order alternating from repeat to repeat (the machine is
shared and its speed drifts: compare the two within a run, not across days):
  - ``jobs1``: ``twin check --jobs 1`` (every scenario in the one process);
  - ``jobs2``: ``twin check --jobs 2`` (two worker processes, forks of one that the
    checking process forks at its start and that starts the engine while the checking
    process reads the scenarios, serving one queue: ``twin.check.Forked``, ``run_all``).
Before the timed repeats one untimed ``twin check --jobs 2`` fills the numba cache where
the kernels run under numba (a fresh clone compiles them on first use, ~20 s). Which they
run under is reported with the machine (``kernels``: ``aot`` when the processes use the
kernels ``make`` compiled ahead of time and never import numba, twin.kernels.dispatch;
``TWIN_KERNELS=jit`` in the environment measures numba's JIT instead).

A control measures what the machine gives two processes at that moment: a pure-Python
loop (no I/O, no shared state) run twice in one process and once in each of two
processes, in every repeat (``spin``): its 1-process/2-process ratio is the best speed-up
any two-job run could show then (2 on an idle 2-core machine; other jobs on the shared
cores take it down). A second control does the same with the check's own work, two runs
of mixed-rack in warm processes (the start-up chain paid before the clock): what the
machine gives two simulations, without the per-process start-up.

From each ``jobs1`` run the benchmark also predicts what two free cores would give: its
scenarios' times (the progress lines) handed to two workers longest first, plus the
run's time outside the scenarios (startup, reading, the table): ``predicted`` is the
jobs1 wall time over that. It uses only the one-process run, so it holds whatever the
other jobs on the machine do to a second process (compare it with the control).

With ``--with-jit`` every repeat also runs both cases with ``TWIN_KERNELS=jit`` (the
kernels under numba's JIT, as before they were compiled ahead of time), the four cases
in an order that rotates from repeat to repeat.

Reported: each case's wall time per repeat, the median and min-max, the jobs1/jobs2
ratio of each repeat and its median (the speed-up), the exit status (0: the catalogue
passes its baseline), the slowest scenarios of the last repeat (from the progress lines),
and the machine: nproc, the CPU model (/proc/cpuinfo) and the load average before and after.
Targets (issue 13): under 60 s with 2 jobs on the 2-core machine, at least 1.7x faster
than 1 job.

Run: .venv/bin/python benchmarks/bench_check.py [--repeats N] [--out results/bench_check.json]
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TWIN = Path(sys.executable).with_name("twin")


def _machine() -> dict:
    model = ""
    try:
        model = next(ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                     if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    kernels = subprocess.run([sys.executable, "-c", "from twin.kernels import dispatch; "
                              "print(dispatch.mode(), dispatch.why_not_compiled())"],
                             capture_output=True, text=True, cwd=ROOT).stdout.strip()
    return dict(nproc=os.cpu_count(), cpu=model, python=sys.version.split()[0], kernels=kernels)


def _load() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


def _spin(n: int) -> float:
    t = time.perf_counter()
    s = 0
    for i in range(n):
        s += i * i
    return time.perf_counter() - t


def _control(n: int = 5_000_000) -> float:
    """Serial time of two loops over their time in two processes."""
    import multiprocessing as mp

    t = time.perf_counter()
    _spin(n)
    _spin(n)
    serial = time.perf_counter() - t
    with mp.get_context("fork").Pool(2) as pool:
        pool.map(_spin, [1000])  # the pool is up before the clock starts
        t = time.perf_counter()
        pool.map(_spin, [n, n], chunksize=1)
        parallel = time.perf_counter() - t
    return serial / parallel


def _warm() -> None:
    from twin import load_scenario, simulate

    simulate(load_scenario("reference-w32", {"simulation.duration_s": 1.0}), channels=(), track_margins=True)


def _simulate(n: int) -> float:
    """``n`` runs of a catalogue scenario in this (warm) process: its wall time."""
    from twin import load_scenario, simulate

    t = time.perf_counter()
    for _ in range(n):
        simulate(load_scenario("mixed-rack"), channels=(), track_margins=True)
    return time.perf_counter() - t


def _sim_control() -> float:
    """As :func:`_control`, with the check's own work: two runs of mixed-rack in one warm
    process over one in each of two warm processes (the start-up chain paid before the
    clock starts). The best two-job speed-up this machine gives the simulation itself
    at that moment."""
    import multiprocessing as mp

    with mp.get_context("spawn").Pool(2, initializer=_warm) as pool:
        pool.map(_spin, [1000, 1000], chunksize=1)  # both workers up and warm
        t = time.perf_counter()
        pool.apply(_simulate, (2,))
        serial = time.perf_counter() - t
        t = time.perf_counter()
        pool.map(_simulate, [1, 1], chunksize=1)
        parallel = time.perf_counter() - t
    return serial / parallel


def _predicted(run: dict) -> float:
    """jobs1 wall time over the wall time two free workers would need (see the docstring)."""
    times = sorted((s for _, s in run["scenarios"]), reverse=True)
    bins = [0.0, 0.0]
    for s in times:
        bins[bins.index(min(bins))] += s
    serial = max(run["wall_s"] - sum(times), 0.0)
    return run["wall_s"] / (serial + max(bins))


def _check(jobs: int, jit: bool = False) -> dict:
    t = time.perf_counter()
    env = {**os.environ, "TWIN_KERNELS": "jit"} if jit else None
    p = subprocess.run([str(TWIN), "check", "--jobs", str(jobs)], cwd=ROOT, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t
    per = [(m.group(1), float(m.group(2))) for m in re.finditer(r"^\[\d+/\d+\] (\S+): .*\(([0-9.]+) s\)$",
                                                                  p.stderr, re.M)]
    return dict(wall_s=wall, code=p.returncode, scenarios=per, tail=p.stdout.splitlines()[-1:] + p.stderr[-300:].splitlines())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "bench_check.json")
    ap.add_argument("--with-jit", action="store_true",
                    help="also time both cases with TWIN_KERNELS=jit (numba's JIT), interleaved")
    a = ap.parse_args()
    machine = _machine()
    load0 = _load()
    print(f"machine: nproc {machine['nproc']}, {machine['cpu']}, Python {machine['python']}, "
          f"kernels {machine['kernels']}; load {load0}", flush=True)
    warm = _check(2)
    if a.with_jit:
        _check(2, jit=True)
    print(f"warm-up (untimed): {warm['wall_s']:.1f} s, exit {warm['code']}", flush=True)
    cases = ["jobs1", "jobs2"] + (["jobs1-jit", "jobs2-jit"] if a.with_jit else [])
    runs = {c: [] for c in cases}
    ratios, jit_ratios, controls, sim_controls, predicted = [], [], [], [], []
    last = {}
    for i in range(a.repeats):
        order = cases[i % len(cases):] + cases[:i % len(cases)] if a.with_jit else \
            (("jobs1", "jobs2") if i % 2 == 0 else ("jobs2", "jobs1"))
        got = {}
        for case in order:
            got[case] = _check(1 if case.startswith("jobs1") else 2, jit=case.endswith("-jit"))
            runs[case].append(got[case]["wall_s"])
            if got[case]["code"] != 0:
                print(f"  {case} exit {got[case]['code']}: {got[case]['tail']}", flush=True)
        ratios.append(got["jobs1"]["wall_s"] / got["jobs2"]["wall_s"])
        if a.with_jit:
            jit_ratios.append(got["jobs1-jit"]["wall_s"] / got["jobs2-jit"]["wall_s"])
            print(f"  under numba's JIT: jobs1 {got['jobs1-jit']['wall_s']:.1f} s, "
                  f"jobs2 {got['jobs2-jit']['wall_s']:.1f} s, ratio {jit_ratios[-1]:.2f}", flush=True)
        controls.append(_control())
        sim_controls.append(_sim_control())
        predicted.append(_predicted(got["jobs1"]))
        last = got
        print(f"repeat {i + 1}: jobs1 {got['jobs1']['wall_s']:.1f} s, jobs2 {got['jobs2']['wall_s']:.1f} s, "
              f"ratio {ratios[-1]:.2f}; control (two processes) {controls[-1]:.2f}, of the simulation "
              f"{sim_controls[-1]:.2f}; predicted on two free cores "
              f"{predicted[-1]:.2f} (load {_load()})", flush=True)
    load1 = _load()
    summary = {case: dict(median_s=statistics.median(v), min_s=min(v), max_s=max(v), runs_s=v)
               for case, v in runs.items()}
    summary["ratio"] = dict(median=statistics.median(ratios), min=min(ratios), max=max(ratios), runs=ratios)
    if jit_ratios:
        summary["ratio_jit"] = dict(median=statistics.median(jit_ratios), min=min(jit_ratios), max=max(jit_ratios),
                                    runs=jit_ratios)
    summary["predicted"] = dict(median=statistics.median(predicted), min=min(predicted), max=max(predicted),
                                runs=predicted)
    summary["control"] = dict(median=statistics.median(controls), min=min(controls), max=max(controls), runs=controls)
    summary["simulation_control"] = dict(median=statistics.median(sim_controls), min=min(sim_controls),
                                         max=max(sim_controls), runs=sim_controls)
    print(f"\n{'case':<8} {'median [s]':>11} {'min-max [s]':>14}")
    for case in cases:
        s = summary[case]
        print(f"{case:<10} {s['median_s']:>9.1f} {s['min_s']:>6.1f}-{s['max_s']:<6.1f}")
    r = summary["ratio"]
    print(f"jobs1/jobs2 per repeat: median {r['median']:.2f} ({r['min']:.2f}-{r['max']:.2f}); "
          f"ratio of medians {summary['jobs1']['median_s'] / summary['jobs2']['median_s']:.2f}")
    if jit_ratios:
        r = summary["ratio_jit"]
        print(f"the same under numba's JIT: median {r['median']:.2f} ({r['min']:.2f}-{r['max']:.2f}); "
              f"ratio of medians {summary['jobs1-jit']['median_s'] / summary['jobs2-jit']['median_s']:.2f}")
    c = summary["control"]
    print(f"control, two processes of a pure loop against one: median {c['median']:.2f} ({c['min']:.2f}-{c['max']:.2f})")
    c = summary["simulation_control"]
    print(f"control, two warm processes simulating mixed-rack against one: median {c['median']:.2f} "
          f"({c['min']:.2f}-{c['max']:.2f})")
    p = summary["predicted"]
    print(f"predicted jobs1/jobs2 on two free cores (from the jobs1 runs): median {p['median']:.2f} "
          f"({p['min']:.2f}-{p['max']:.2f})")
    print(f"load average before {load0}, after {load1}")
    slow = sorted(last["jobs1"]["scenarios"], key=lambda x: -x[1])[:5]
    print("slowest scenarios (jobs1, last repeat): " + ", ".join(f"{k} {s:.1f} s" for k, s in slow))
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(dict(machine=machine, load_before=load0, load_after=load1, summary=summary,
                                     scenarios_last=last["jobs1"]["scenarios"]), indent=2))
    print(f"written: {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
