"""Calibration speed (issue 12's targets): 10 parameters on 1 h of 1 Hz data, and 72
per-GPU TIM resistances plus 18 tray loss coefficients, on synthetic line-test
telemetry of the reference rack (load plateaus, the issue's noise). Each case in a fresh
subprocess pinned to one core (``taskset -c 0`` where available), after an untimed run
that warms the numba cache. Reports wall and CPU time (the CPU time of the pinned
process is what one core costs; the wall time also holds what other work on the machine
took from that core), model runs, and what was recovered.

    python benchmarks/bench_calibration.py [--repeats N] [--hours H]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r'''
import json, sys, time
import twin
from twin.calibration import synthetic as syn
from twin.calibration.report import run, judge
from twin.calibration.spec import Spec

case, path, hours = sys.argv[1], sys.argv[2], float(sys.argv[3])
dur = 3600.0 * hours
base = twin.load_scenario(sys.argv[4], {"workload.schedule": syn.staircase(dur, 300.0), "simulation.duration_s": dur})
if case == "ten":
    truth = {"overrides": {"rack01/tray*/gpu*": {"convective_resistance_scale": 1.2}, "cdu1/hx": {"ua_scale": 0.85},
                           "cdu1/pump*": {"head_scale": 0.9}, "rack01/tray*/cpu*": {"r_tim_k_per_w": 0.025}}}
    params = [dict(name="gpu_conv", instances="rack01/tray*/gpu*", parameter="convective_resistance_scale"),
              dict(name="cpu_conv", instances="rack01/tray*/cpu*", parameter="convective_resistance_scale"),
              dict(name="switch_conv", instances="rack01/tray*/nvswitch*", parameter="convective_resistance_scale"),
              dict(name="gpu_tim", instances="rack01/tray*/gpu*", parameter="r_tim_k_per_w"),
              dict(name="cpu_tim", instances="rack01/tray*/cpu*", parameter="r_tim_k_per_w"),
              dict(name="switch_tim", instances="rack01/tray*/nvswitch*", parameter="r_tim_k_per_w"),
              dict(name="ua", instances="cdu1/hx", parameter="ua_scale"),
              dict(name="head", instances="cdu1/pump*", parameter="head_scale"),
              dict(name="manifold", instances="rack01/manifold", parameter="loss_scale"),
              dict(name="return_sensor", sensor="rack/return_temp", bounds=[-5.0, 5.0])]
    fit = [dict(channel="gpu/junction_temp", noise=0.1), dict(channel="cpu/junction_temp", noise=0.1),
           dict(channel="nvswitch/junction_temp", noise=0.1), dict(channel="rack/supply_temp", noise=0.1),
           dict(channel="rack/return_temp", noise=0.1), dict(channel="cdu/pump_speed", noise_relative=0.01),
           dict(channel="rack/dp", noise_relative=0.01)]
else:
    truth = {"overrides": {"rack01/tray05/gpu2": {"r_tim_k_per_w": 0.008}, "rack01/tray22/qd": {"cv_gpm_per_psi": 0.8}}}
    compute = [f"rack01/tray{t:02d}" for t in list(range(0, 10)) + list(range(19, 27))]
    params = [dict(name="tim", instances="rack01/tray*/gpu*", parameter="r_tim_k_per_w", per_instance=True,
                   reference="peers", tolerance_relative=0.3, bounds_relative=[0.2, 5.0])]
    params += [dict(name=f"loss{t[-2:]}", instances=t, parameter="loss_scale", tolerance_relative=0.5,
                    bounds_relative=[0.2, 20.0]) for t in compute]
    fit = [dict(channel="gpu/junction_temp", noise=0.1), dict(channel="tray/return_temp", noise=0.1),
           dict(channel="rack/return_temp", noise=0.1)]
syn.make(base, path, overrides=truth, seed=7)
spec = Spec.model_validate(dict(name=case, fit=fit, parameter=params, windows=dict(warmup_s=120.0)))
t0, c0 = time.perf_counter(), time.process_time()
f = run(base, path, spec)
wall, cpu = time.perf_counter() - t0, time.process_time() - c0
out = dict(case=case, parameters=len(f.problem.us), wall_s=wall, cpu_s=cpu, model_runs=f.problem.evaluations,
           chi2=f.chi2_red, suspects=[j.label for j in judge(f) if j.status == "suspect"],
           values={k: v for k, v in f.values().items() if not k.startswith("tim[") or k == "tim[rack01/tray05/gpu2]"},
           warnings=f.warnings[:6])
print(json.dumps(out))
'''


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--hours", type=float, default=1.0)
    args = ap.parse_args(argv)
    pin = ["taskset", "-c", "0"] if shutil.which("taskset") else []
    scen = str(ROOT / "scenarios" / "reference-w32.toml")
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    with tempfile.TemporaryDirectory() as d:
        subprocess.run([sys.executable, "-c", "import twin; twin.simulate(twin.load_scenario(%r), duration_s=10.0)" % scen],
                       check=True, env=env)
        for _ in range(args.repeats):
            for case in ("ten", "tim_and_trays"):
                t0 = time.perf_counter()
                p = subprocess.run(pin + [sys.executable, "-c", CHILD, case, str(Path(d) / f"{case}.h5"), str(args.hours),
                                          scen], capture_output=True, text=True, env=env)
                if p.returncode:
                    print(p.stderr, file=sys.stderr)
                    return 1
                r = json.loads(p.stdout.strip().splitlines()[-1])
                r["process_s"] = time.perf_counter() - t0
                print(json.dumps(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
