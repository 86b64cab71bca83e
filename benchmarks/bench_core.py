"""Core benchmarks for the reference rack (run: make bench, or python benchmarks/bench_core.py).

Times, with the JIT cache warm (a warm-up call runs first), on one core:
  1. the steady hydraulic solve of the rack network, cold start and warm start;
  2. the flow-controlled update (pump speed search + solve), as the engine does per block;
  3. the thermal kernel per simulated second at 0.1 s steps (advance only);
  4. one engine block (hydraulics + coefficients + power + kernel + recording) per
     simulated second, and a full 600 s reference run end to end in-process.
Reports medians of repeated runs (machines here are shared: compare ratios in one run).
"""
from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import twin  # noqa: E402
from twin.build import build_model  # noqa: E402
from twin.engine import Network, _empty_records, steady_state  # noqa: E402
from twin.kernels import hydraulics as hk  # noqa: E402
from twin.workload import ScheduleSource  # noqa: E402

REPEATS = 7


def median_time(fn, repeats=REPEATS, number=1):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        times.append((time.perf_counter() - t0) / number)
    return statistics.median(times)


def main():
    s = twin.load_scenario(ROOT / "scenarios" / "reference-w32.toml")
    t0 = time.perf_counter()
    model = build_model(s)
    build_s = time.perf_counter() - t0
    net = Network(model)
    power = ScheduleSource(model)
    state = steady_state(net, power)
    net.update_flows(state)
    r, b, head = net._edge_params(state, state.speed)

    def solve_cold():
        q = model.q_loop0.copy()
        hk.solve_network(model.loop_ptr, model.loop_idx, model.loop_sign, q, model.edge_a, r, b, head, model.edge_bcv, 0.1, 100)

    # warm start: the solution of the same network with 10 % lower viscosity everywhere
    # (the coolant a few kelvin warmer), as the engine meets it from block to block
    q_warm = state.q_loop.copy()
    hk.solve_network(model.loop_ptr, model.loop_idx, model.loop_sign, q_warm, model.edge_a, r / 1.1, b, head,
                     model.edge_bcv, 0.1, 100)
    q_test = q_warm.copy()
    _, iters_warm, _ = hk.solve_network(model.loop_ptr, model.loop_idx, model.loop_sign, q_test, model.edge_a, r, b,
                                        head, model.edge_bcv, 0.1, 100)

    def solve_warm():
        q = q_warm.copy()
        hk.solve_network(model.loop_ptr, model.loop_idx, model.loop_sign, q, model.edge_a, r, b, head, model.edge_bcv, 0.1, 100)

    solve_cold()
    cold = median_time(solve_cold, number=50)
    warm = median_time(solve_warm, number=50)
    q_test = model.q_loop0.copy()
    _, iters_cold, _ = hk.solve_network(model.loop_ptr, model.loop_idx, model.loop_sign, q_test, model.edge_a, r, b, head, model.edge_bcv, 0.1, 100)
    flow_update = median_time(lambda: net.update_flows(state), number=5)

    dt = s.simulation.time_step_s
    steps = 600  # one minute of simulated time
    d = power.block(200.0, dt, steps)  # inside the burst phase
    aux_l = d.aux * model.tray_aux_liquid_fraction
    rec = _empty_records(model, steps // 10)
    net.prepare(state, dt)

    def kernel():
        net.advance(state, dt, 0, steps, 10, d.chip, aux_l, rec, power.kernel, row=d.row)

    kernel()
    kern = median_time(kernel) / (steps * dt)

    prep = median_time(lambda: net.prepare(state, dt), number=5)

    def block(force=True):
        net.dirty = force
        net.refresh(state, dt)
        db = power.block(200.0, dt, 100)
        net.advance(state, dt, 0, 100, 10, db.chip, db.aux * model.tray_aux_liquid_fraction, _empty_records(model, 10),
                    power.kernel, row=db.row)

    block()
    blk = median_time(block, number=5) / (100 * dt)
    blk_reuse = median_time(lambda: block(False), number=5) / (100 * dt)

    def full():
        twin.simulate(s, model=model)

    full()
    full_s = median_time(full, repeats=3)

    print(f"machine: {platform.machine()}, {os.cpu_count()} cpus, Python {platform.python_version()}, "
          f"numpy {np.__version__}")
    print(f"network: {len(model.node_names)} nodes, {len(model.edge_names)} edges, {model.basis.shape[0]} loops, "
          f"{model.cell_kind.size} thermal cells, {model.n_chips} chips")
    print(f"model build (fluids/ht calls, tables):            {build_s * 1e3:9.1f} ms")
    print(f"steady hydraulic solve, cold start ({iters_cold} Newton its): {cold * 1e6:9.1f} us")
    print(f"steady hydraulic solve, warm start ({iters_warm} Newton its):  {warm * 1e6:9.1f} us")
    print(f"flow-controlled update (speed search + solve):    {flow_update * 1e3:9.2f} ms")
    print(f"thermal kernel per simulated second (dt 0.1 s):   {kern * 1e6:9.1f} us  "
          f"-> {1.0 / kern:,.0f}x real time")
    print(f"step coefficients (126 plate exponentials):       {prep * 1e3:9.2f} ms")
    print(f"engine per simulated second, re-solving per 10 s: {blk * 1e6:9.1f} us  -> {1.0 / blk:,.0f}x real time")
    print(f"engine per simulated second, nothing moved:       {blk_reuse * 1e6:9.1f} us  -> {1.0 / blk_reuse:,.0f}x real time")
    print(f"reference scenario (600 s) in-process:            {full_s:9.2f} s")


if __name__ == "__main__":
    main()
