"""The speed target of docs/performance.md: 24 simulated hours of the reference rack's training scenario.

scenarios/training-w32.toml: 72-GPU synchronous training with 1.5 Hz steps, checkpoints
every 30 min, failures, 0.1 s thermal steps, 1 Hz output streamed to HDF5. Measures,
with a warm JIT cache and the model built beforehand:
  - wall and CPU time of twin.simulate for 24 h (median of 5 runs), as simulated/wall;
  - the same for 1 h, for the ratio;
  - peak resident memory of fresh processes running 1 h, 6 h and 24 h (memory must not
    grow with the simulated duration; the 1 h run never fills a whole write batch, so
    6 h against 24 h is the comparison that shows a leak);
  - a cProfile of one 2 h run: where the time goes.
Run: .venv/bin/python benchmarks/bench_training_24h.py [--quick]
"""
from __future__ import annotations

import cProfile
import io
import pstats
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "scenarios" / "training-w32.toml"

CHILD = """
import resource, sys, time
import twin
s = twin.load_scenario(sys.argv[1])
t = time.perf_counter()
twin.simulate(s, output=sys.argv[3], duration_s=float(sys.argv[2]))
print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def timed(scenario, model, seconds, out):
    """Wall time of one run into a new file (deleting the last run's file, ~190 MB for
    24 h, is the file system's work, not the run's: it happens outside the timing)."""
    import twin
    out.unlink(missing_ok=True)
    t, c = time.perf_counter(), time.process_time()
    twin.simulate(scenario, output=out, duration_s=seconds, model=model)
    return time.perf_counter() - t, time.process_time() - c


def main():
    quick = "--quick" in sys.argv
    sys.path.insert(0, str(ROOT))
    import twin
    from twin.build import build_model

    s = twin.load_scenario(SCENARIO)
    model = build_model(s)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "t.h5"
        timed(s, model, 60.0, out)  # warm the JIT cache and the coolant tables
        day = 3600.0 if quick else 86400.0
        runs = [timed(s, model, day, out) for _ in range(1 if quick else 5)]
        hour = [timed(s, model, 3600.0, out)[0] for _ in range(3)]
        size_mb = out.stat().st_size / 1e6
        mem = {}
        for secs in sorted({3600.0, min(day, 21600.0), day}):
            proc = subprocess.run([sys.executable, "-c", CHILD, str(SCENARIO), str(secs), str(out)],
                                  capture_output=True, text=True, cwd=ROOT, check=True)
            _, rss_kb = proc.stdout.split()
            mem[secs] = int(rss_kb) / 1024
        out.unlink()
        prof = cProfile.Profile()
        prof.enable()
        timed(s, model, 7200.0, out)
        prof.disable()
    d = statistics.median(w for w, _ in runs)
    c = statistics.median(c for _, c in runs)
    h = statistics.median(hour)
    print(f"24 h training scenario: {d:.2f} s wall (median of {len(runs)}: "
          f"{', '.join(f'{w:.2f}' for w, _ in runs)}) -> {day / d:,.0f}x real time; "
          f"CPU time {c:.2f} s -> {day / c:,.0f}x")
    print(f"1 h: {h:.2f} s -> {3600.0 / h:,.0f}x real time; last 1 h file {size_mb:.0f} MB")
    print("peak RSS, fresh process: " + ", ".join(f"{k / 3600:.0f} h {v:.0f} MB" for k, v in sorted(mem.items())))
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(10)
    print("profile of a 2 h run (tottime):")
    print("\n".join(line for line in buf.getvalue().splitlines() if line.strip())[:3000])
    print(f"machine: {resource.getpagesize()} B pages; see docs/performance.md for the CPU")


if __name__ == "__main__":
    main()
