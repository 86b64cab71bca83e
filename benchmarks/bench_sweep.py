"""Sweeps on a local Dask cluster (docs/performance.md, Sweeps).

(a) Scaling: a 100-run grid of the reference scenario (10 facility temperatures x 10 flow
    setpoints, 600 s simulated each) on a local cluster of 1 worker and of 2 workers, in
    one process, alternating (the machine is shared: ratios within one run, medians when
    repeated). Workers are started and warmed (twin imported, kernels loaded from the
    numba cache, one tiny run) before the clock starts; the start-up is reported apart.
    Per-run overhead: in the task, scenario validation and model build (``build_s``)
    against ``simulate_s``; outside it (scheduling, shipping, collecting, writing parts),
    workers x elapsed minus the sum of the tasks' wall time, per run.
(b) Monte Carlo: sweeps/training-day-mc.toml (24 h training days with TIM and branch-loss
    spread) with N replicates on the local cluster: rack-days per core-hour.

Run: .venv/bin/python benchmarks/bench_sweep.py [--repeats R] [--days N] [--skip-a] [--skip-b]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def warm():
    import twin

    s = twin.load_scenario(ROOT / "scenarios" / "reference-w32.toml", {"simulation.duration_s": 2.0})
    twin.simulate(s)
    return os.getpid()


def cluster(n):
    from dask.distributed import Client, LocalCluster

    t = time.perf_counter()
    c = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=40)
    client = Client(c)
    client.run(warm)
    return client, c, time.perf_counter() - t


def grid_sweep(out):
    return dict(base=str(ROOT / "scenarios" / "reference-w32.toml"), duration_s=600.0,
                grid={"facility.supply_temp_c": "25:43:10", "controls.flow_setpoint_lpm": "110:200:10"},
                collect=dict(margins=["gpu_junction_margin_k", "rack_return_temp_max_c", "tray_flow_ratio_min"],
                             channels={"rack/return_temp": "max"}))


def part_a(repeats):
    import twin

    res = {1: [], 2: []}
    for rep in range(repeats):
        for n in ((1, 2) if rep % 2 == 0 else (2, 1)):
            client, c, start = cluster(n)
            with tempfile.TemporaryDirectory() as tmp:
                w0, c0 = client.run(time.process_time), time.process_time()
                t = time.perf_counter()
                df = twin.sweep(grid_sweep(tmp), client=client, output=Path(tmp) / "a.parquet")
                el = time.perf_counter() - t
                w1, c1 = client.run(time.process_time), time.process_time()
            client.close()
            # CPU outside the tasks: the workers' other threads, the client and the
            # scheduler (in this process for a local cluster), per run
            worker_cpu = sum(w1[k] - w0[k] for k in w0)
            machinery = (worker_cpu - df["cpu_s"].sum() + (c1 - c0)) / len(df)
            serial = (c1 - c0) / len(df)  # the client and scheduler: one process for all workers
            c.close()
            ok = int((df["status"] == "ok").sum())
            outside = (n * el - df["wall_s"].sum()) / len(df)
            res[n].append(dict(elapsed=el, start=start, ok=ok, sim=df["simulate_s"].median(),
                               build=df["build_s"].median(), wall=df["wall_s"].median(), outside=outside,
                               cores=df["cpu_s"].sum() / el, cpu=df["cpu_s"].median(), machinery=machinery,
                               serial=serial, work=worker_cpu / len(df)))
            r = res[n][-1]
            print(f"  repeat {rep + 1}, {n} worker(s): {el:.1f} s for {len(df)} runs ({ok} ok); cluster start and "
                  f"warm-up {start:.1f} s; per run median: simulate {r['sim']:.3f} s, build {r['build']:.3f} s, "
                  f"task {r['wall']:.3f} s wall, {r['cpu']:.3f} s CPU; outside the tasks {outside:.3f} s/run; "
                  f"cores the tasks got: {r['cores']:.2f}; CPU outside the tasks {machinery * 1e3:.1f} ms/run; "
                  f"load average {os.getloadavg()[0]:.1f}", flush=True)
    e1 = statistics.median(r["elapsed"] for r in res[1])
    e2 = statistics.median(r["elapsed"] for r in res[2])
    pairs = [a["elapsed"] / b["elapsed"] for a, b in zip(res[1], res[2])]
    print(f"(a) 100 runs of 600 s: 1 worker {e1:.1f} s, 2 workers {e2:.1f} s (medians of {repeats}); "
          f"speed-up {e1 / e2:.2f}x (per repeat: {', '.join(f'{p:.2f}' for p in pairs)})")
    c1 = statistics.median(r["cores"] for r in res[1])
    c2 = statistics.median(r["cores"] for r in res[2])
    print(f"    CPU time of the tasks over elapsed (cores actually used): 1 worker {c1:.2f}, 2 workers {c2:.2f}; "
          f"CPU seconds per run 1 worker {statistics.median(r['cpu'] for r in res[1]):.3f}, "
          f"2 workers {statistics.median(r['cpu'] for r in res[2]):.3f}")
    allr = res[1] + res[2]
    sim = statistics.median(r["sim"] for r in allr)
    build = statistics.median(r["build"] for r in allr)
    outside = statistics.median(r["outside"] for r in allr)
    mach = statistics.median(r["machinery"] for r in allr)
    cpu = statistics.median(r["cpu"] for r in allr)
    print(f"    CPU per run: the task {cpu:.3f} s, the sweep machinery outside it (workers' other threads, client, "
          f"scheduler) {mach * 1e3:.1f} ms ({mach / cpu:.0%} of the task)")
    w = statistics.median(r["work"] for r in allr)
    s = statistics.median(r["serial"] for r in allr)
    print(f"    on free cores (Amdahl, the client and scheduler serial): workers' CPU {w:.3f} s/run, client "
          f"{s * 1e3:.1f} ms/run -> 2 workers {(w + s) / (w / 2 + s):.2f}x one; CPU per run with 1 worker "
          f"{statistics.median(r['work'] + r['serial'] for r in res[1]):.3f} s, with 2 "
          f"{statistics.median(r['work'] + r['serial'] for r in res[2]):.3f} s")
    print(f"    per run: simulate {sim:.3f} s; scenario validation and model build {build:.3f} s "
          f"({build / sim:.0%} of simulate); scheduling, shipping and collecting {outside:.3f} s "
          f"({outside / sim:.0%})")


def part_b(days, workers):
    d = tomllib.loads((ROOT / "sweeps" / "training-day-mc.toml").read_text())
    d["base"] = str(ROOT / "sweeps" / d["base"])
    d["spread"]["replicates"] = days
    import twin

    client, c, start = cluster(workers)
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        df = twin.sweep(d, client=client, output=Path(tmp) / "mc.parquet")
        el = time.perf_counter() - t
    client.close()
    c.close()
    ok = int((df["status"] == "ok").sum())
    core_h = workers * el / 3600.0
    cpu_h = df["cpu_s"].sum() / 3600.0
    print(f"(b) {days} rack-days (24 h training, spread) on {workers} workers: {el:.1f} s ({ok} ok; cluster start "
          f"{start:.1f} s apart) -> {days / core_h:.0f} rack-days per core-hour; per run median: simulate "
          f"{df['simulate_s'].median():.2f} s, build {df['build_s'].median():.2f} s, task {df['wall_s'].median():.2f} s"
          f" -> {3600.0 / df['wall_s'].median():.0f} rack-days per busy core-hour; CPU {df['cpu_s'].median():.2f} s "
          f"per day -> {days / cpu_h:.0f} rack-days per CPU-hour; the tasks got {df['cpu_s'].sum() / el:.2f} cores")
    print(f"    across the days: gpu_junction_max_c {df['gpu_junction_max_c'].min():.2f}-"
          f"{df['gpu_junction_max_c'].max():.2f} degC, gpu_junction_margin_k min {df['gpu_junction_margin_k'].min():.2f} K,"
          f" job_llm_goodput min {df['job_llm_goodput'].min():.4f}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--days", type=int, default=100)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--skip-a", action="store_true")
    ap.add_argument("--skip-b", action="store_true")
    a = ap.parse_args()
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), "?") if Path("/proc/cpuinfo").exists() else "?"
    print(f"machine: nproc {os.cpu_count()}, {cpu}, load average {os.getloadavg()[0]:.2f} "
          f"{os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}; python {sys.version.split()[0]}")
    if not a.skip_a:
        part_a(a.repeats)
    if not a.skip_b:
        part_b(a.days, a.workers)
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
