"""A row of racks against one rack: 24 simulated hours of training, and the single-rack
day against the code before the component refactor.

Cases, each a fresh subprocess (clean memory and caches; two code versions never share
an interpreter), interleaved within every repeat (the order rotates from repeat to
repeat, so no case always runs first on a machine whose speed drifts):
  - ``single``: scenarios/training-w32.toml with simulation.duration_s = 86400 (one
    NVL72-class rack, 126 chips, 1 Hz output of every channel);
  - ``row``: scenarios/row-8x-nvl72-w32.toml (8 such racks on one in-row CDU, 1008 chips,
    its own 24 h and 10 s output);
  - ``old``: the single-rack day on the code before the component refactor
    (``--old-ref``, default 2b94398), extracted with ``git archive`` into a directory of
    its own (``--old-dir``; it keeps its own numba cache under twin/kernels/__pycache__)
    and imported through PYTHONPATH (the child's working directory is that copy, and it
    checks which ``twin`` it imported).
Every child loads the scenario and builds the model (timed apart), runs a 60 s warm-up
(kernels loaded from the numba cache, coolant tables, first-call costs), then times
``twin.simulate(scenario, output=<HDF5 file in a temporary directory>, model=model)`` for
the scenario's day: the output path of ``twin run -o``, and the one
bench_training_24h.py measures, so the figures compare; a file also keeps telemetry out
of the process's memory (without ``output`` the whole day's telemetry, ~190 MB for the
single rack at 1 Hz, would be held in memory and dominate the peak). Before any timed
child, each code version's kernels are compiled once by an untimed child.

Reported: wall (and CPU) time of the day per case, real-time factor, the row/single and
new/old ratios of each repeat (both cases of a ratio from the same repeat), medians with
min-max; peak resident memory of each child (``resource.getrusage(RUSAGE_SELF).ru_maxrss``
after the warm-up and after the day: the whole process, imports and numba included;
tracemalloc would see only Python-allocated memory and slow the run); the energy closure
of each day: (chip + aux into the liquid - heat to the facility - change in stored
heat) / (chip + aux into the liquid), from ``Result.energy``; whether the old and new
single-rack days give the same margins; and a cProfile of one row day and one
single-rack day (a child each), top functions by own time.

Run: .venv/bin/python benchmarks/bench_row.py [--repeats N] [--cases single,row,old] [--no-old]
[--no-profile] [--duration S] [--old-ref REF] [--old-dir DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DAY = 86400.0
OLD_REF = "2b94398"
SINGLE = "scenarios/training-w32.toml"
ROW = "scenarios/row-8x-nvl72-w32.toml"

CHILD = r"""
import json, resource, sys, time
root, scenario, seconds, out, mode = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4], sys.argv[5]
import twin
assert twin.__file__.startswith(root), (twin.__file__, root)  # the code version asked for
from twin.build import build_model
t = time.perf_counter()
s = twin.load_scenario(scenario, {"simulation.duration_s": seconds})
model = build_model(s)
build_s = time.perf_counter() - t
rss = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
rss0 = rss()
if mode == "compile":
    twin.simulate(s, output=out, duration_s=60.0, model=model)
    print(json.dumps(dict(build_s=build_s)))
    sys.exit(0)
twin.simulate(s, output=out, duration_s=60.0, model=model)  # warm-up: not timed
rss_warm = rss()
prof = None
if mode == "profile":
    import cProfile
    prof = cProfile.Profile()
    prof.enable()
t, c = time.perf_counter(), time.process_time()
r = twin.simulate(s, output=out, model=model)
wall, cpu = time.perf_counter() - t, time.process_time() - c
if prof is not None:
    prof.disable()
    import io, pstats
    buf = io.StringIO()
    st = pstats.Stats(prof, stream=buf)
    st.sort_stats("tottime").print_stats(18)
    top = {f"{k[0].rsplit('/', 2)[-1] if '/' in k[0] else k[0]}:{k[1]}({k[2]})": [v[0], v[2], v[3]]
           for k, v in st.stats.items()}
    print(buf.getvalue(), file=sys.stderr)
else:
    top = None
import os
print(json.dumps(dict(wall=wall, cpu=cpu, build_s=build_s, rss_start_mb=rss0, rss_warm_mb=rss_warm,
                      rss_peak_mb=rss(), energy=r.energy, margins={k: (float(v) if isinstance(v, (int, float)) else None) for k, v in r.margins.items()},
                      chips=int(model.n_chips), cells=int(model.cell_kind.size), edges=int(model.edge_from.size),
                      file_mb=os.path.getsize(out) / 1e6, complete=bool(getattr(r.end, "is_complete", True)),
                      profile=top)))
"""


def old_tree(ref: str, where: Path) -> Path:
    """The code at ``ref``, extracted once (git archive) and kept, with its numba cache."""
    if not (where / "twin" / "engine.py").exists():
        where.mkdir(parents=True, exist_ok=True)
        arch = subprocess.run(["git", "-C", str(ROOT), "archive", ref], capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", str(where)], input=arch.stdout, check=True)
    return where


def run_child(root: Path, scenario: str, seconds: float, tmp: Path, mode: str = "time") -> dict:
    out = tmp / "day.h5"
    out.unlink(missing_ok=True)
    env = dict(os.environ, PYTHONPATH=str(root))
    env.pop("NUMBA_CACHE_DIR", None)  # each version keeps its cache next to its own sources
    proc = subprocess.run([sys.executable, "-c", CHILD, str(root), str(root / scenario), str(seconds), str(out), mode],
                          capture_output=True, text=True, cwd=root, env=env)
    out.unlink(missing_ok=True)  # deleting the day's file is the file system's work: outside the timing
    if proc.returncode != 0:
        raise RuntimeError(f"{mode} {root} {scenario}: exit {proc.returncode}\n{proc.stderr[-3000:]}")
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    res["stderr"] = proc.stderr
    return res


def closure(e: dict) -> tuple[float, float]:
    """(relative closure error, absolute [J]): heat in - heat out - change in stored, over heat in."""
    into = e["chip_j"] + e["aux_liquid_j"]
    err = into - e["hx_j"] - (e["stored_end_j"] - e["stored_start_j"])
    return err / into, err


def med(xs):
    return statistics.median(xs), min(xs), max(xs)


def fmt(xs, unit="s", prec=2):
    m, lo, hi = med(xs)
    return f"{m:.{prec}f} {unit} (min {lo:.{prec}f}, max {hi:.{prec}f}; {', '.join(f'{x:.{prec}f}' for x in xs)})"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].replace("\n", " "))
    ap.add_argument("--repeats", type=int, default=3, help="repeats of each case, interleaved (default 3)")
    ap.add_argument("--duration", type=float, default=DAY, help="simulated seconds (default 86400)")
    ap.add_argument("--old-ref", default=OLD_REF, help="the code to compare the single-rack day with")
    ap.add_argument("--old-dir", type=Path, default=None,
                    help="where that code is extracted (default: <tmp>/rack-twin-<ref>, kept between runs)")
    ap.add_argument("--no-old", action="store_true", help="skip the comparison with the old code")
    ap.add_argument("--no-profile", action="store_true", help="skip the profiles")
    ap.add_argument("--cases", default="single,row,old",
                    help="comma-separated subset of single,row,old (default all three)")
    a = ap.parse_args(argv)

    want = [c.strip() for c in a.cases.split(",") if c.strip()]
    if a.no_old and "old" in want:
        want.remove("old")
    if not want or set(want) - {"single", "row", "old"}:
        ap.error(f"--cases: a subset of single,row,old, got {a.cases!r}")
    cases = {}
    for k in want:
        if k == "old":
            old = old_tree(a.old_ref, a.old_dir or Path(tempfile.gettempdir()) / f"rack-twin-{a.old_ref}")
            cases["old"] = (old, SINGLE)
        else:
            cases[k] = (ROOT, SINGLE if k == "single" else ROW)
    res: dict[str, list] = {k: [] for k in cases}
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        for root in {r for r, _ in cases.values()}:  # compile (or load) each version's kernels, untimed
            run_child(root, SINGLE, 60.0, tmp, "compile")
        if "row" in cases:
            run_child(ROOT, ROW, 60.0, tmp, "compile")
        names = list(cases)
        for i in range(a.repeats):
            order = names[i % len(names):] + names[:i % len(names)]
            for k in order:
                root, scen = cases[k]
                r = run_child(root, scen, a.duration, tmp)
                res[k].append(r)
                print(f"repeat {i + 1} {k:6s} {r['wall']:7.2f} s wall, {r['cpu']:7.2f} s CPU, "
                      f"peak RSS {r['rss_peak_mb']:.0f} MB", flush=True)
        profiles = {}
        if not a.no_profile:
            for k in [c for c in ("row", "single") if c in cases]:
                root, scen = cases[k]
                profiles[k] = run_child(root, scen, a.duration, tmp, "profile")

    d = a.duration
    print(f"\n{d / 3600:g} h simulated; {a.repeats} repeats, cases interleaved; "
          f"times exclude model build and the 60 s warm-up; HDF5 output to a temp dir")
    for k, rs in res.items():
        w = [r["wall"] for r in rs]
        r0 = rs[0]
        print(f"{k:6s} ({r0['chips']} chips, {r0['cells']} cells, {r0['edges']} edges): wall {fmt(w)}; "
              f"CPU {fmt([r['cpu'] for r in rs])}; real time x {d / statistics.median(w):,.0f} "
              f"(min {d / max(w):,.0f}, max {d / min(w):,.0f}); build {fmt([r['build_s'] for r in rs])}")
        print(f"       peak RSS {fmt([r['rss_peak_mb'] for r in rs], 'MB', 0)}, after warm-up "
              f"{statistics.median(r['rss_warm_mb'] for r in rs):.0f} MB, before it "
              f"{statistics.median(r['rss_start_mb'] for r in rs):.0f} MB; file {r0['file_mb']:.0f} MB; "
              f"complete {all(r['complete'] for r in rs)}")

    def ratios(num, den, label, target=""):
        """Per repeat (both runs from the same repeat), on wall and on CPU time (CPU time
        is less disturbed by other jobs taking the core)."""
        for t in ("wall", "cpu"):
            xs = [n[t] / d[t] for n, d in zip(res[num], res[den])]
            print(f"{label}, {t}, per repeat: {fmt(xs, 'x', 3)}; ratio of medians "
                  f"{statistics.median(n[t] for n in res[num]) / statistics.median(d[t] for d in res[den]):.3f}x"
                  + target)

    if "row" in res and "single" in res:
        ratios("row", "single", "row / single", " (target <= 8.5x)")
    if "old" in res and "single" in res:
        ratios("single", "old", f"single-rack day new / old ({a.old_ref})")
        mn, mo = res["single"][0]["margins"], res["old"][0]["margins"]
        common = sorted(set(mn) & set(mo))
        both = [k for k in common if mn[k] is not None and mo[k] is not None and mn[k] == mn[k] and mo[k] == mo[k]]
        diff = max((abs(mn[k] - mo[k]) for k in both), default=0.0)
        print(f"  margins, new against old: {len(common)} in common, largest difference {diff:.3g}; "
              f"only new: {sorted(set(mn) - set(mo))}; only old: {sorted(set(mo) - set(mn))}")
    for k in res:  # a run is deterministic: every repeat's energy is the same
        rel, ab = closure(res[k][0]["energy"])
        e = res[k][0]["energy"]
        print(f"energy closure {k:6s}: {rel:+.3e} of heat in ({ab:+.4g} J of {e['chip_j'] + e['aux_liquid_j']:.6g} J); "
              f"chip {e['chip_j']:.6g}, aux liquid {e['aux_liquid_j']:.6g}, liquid {e['liquid_j']:.6g}, "
              f"hx {e['hx_j']:.6g}, stored {e['stored_start_j']:.6g} -> {e['stored_end_j']:.6g} J"
              + ("" if abs(rel) <= 1e-3 else "   <-- OUTSIDE 0.1 %"))
    for k, p in profiles.items():
        print(f"\ncProfile of one {k} day ({p['wall']:.2f} s under the profiler), top by own time:")
        top = sorted(p["profile"].items(), key=lambda kv: -kv[1][1])[:15]
        for name, (calls, tot, cum) in top:
            print(f"  {tot:7.3f} s own {cum:7.3f} s cum {calls:8d} calls  {name}")


if __name__ == "__main__":
    main()
