"""Core benchmarks for the reference rack (run: make bench, or python benchmarks/bench_core.py).

Times, with the JIT cache warm (a warm-up call runs first), on one core:
  1. the steady hydraulic solve of the rack network, cold start and warm start;
  2. the flow-controlled update (pump speed search + solve), as the engine does per block;
  3. the thermal kernel per simulated second at 0.1 s steps (advance only);
  4. one engine block (hydraulics + coefficients + power + kernel + recording) per
     simulated second, and a full 600 s reference run end to end in-process;
  5. the floor docs/performance.md compares against: a bare update of a network of the same size
     (every plate's exact 3-state map along its path, every coolant cell's exponential
     update; no mixing, workload, throttling, accounting or records).
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

from numba import njit

import twin
from twin.build import build_model
from twin.engine import Network, _empty_records, steady_state
from twin.kernels import hydraulics as hk
from twin.kernels import thermal as tk
from twin.workload import ScheduleSource

REPEATS = 7


def median_time(fn, repeats=REPEATS, number=1):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        times.append((time.perf_counter() - t0) / number)
    return statistics.median(times)


@njit(cache=True, fastmath=True, error_model="numpy")
def bare_update(n_steps, pk, x, path_len, p, t_sup, end_in, mean_in, cell_t):
    """The floor: plates (rows of ``pk`` as in twin.kernels.thermal) in series along
    paths of ``path_len`` plates fed at ``t_sup``, then a chain of fluid cells."""
    n_chip = x.shape[0]
    t_out = 0.0
    for _ in range(n_steps):
        k = 0
        while k < n_chip:
            t_in = t_sup
            for _j in range(path_len):
                a0, a1, a2 = x[k, 0], x[k, 1], x[k, 2]
                pw = p[k]
                tj = pk[k, 0] * a0 + pk[k, 1] * a1 + pk[k, 2] * a2 + pk[k, 9] * pw + pk[k, 10] * t_in
                tb = pk[k, 3] * a0 + pk[k, 4] * a1 + pk[k, 5] * a2 + pk[k, 11] * pw + pk[k, 12] * t_in
                tf = pk[k, 6] * a0 + pk[k, 7] * a1 + pk[k, 8] * a2 + pk[k, 13] * pw + pk[k, 14] * t_in
                t_in = pk[k, 15] * a0 + pk[k, 16] * a1 + pk[k, 17] * a2 + pk[k, 18] * pw + pk[k, 19] * t_in
                x[k, 0], x[k, 1], x[k, 2] = tj, tb, tf
                k += 1
                if k == n_chip:
                    break
            t_out += t_in
        t_in = t_sup
        for c in range(cell_t.shape[0]):
            t0 = cell_t[c]
            cell_t[c] = t0 + (t_in - t0) * end_in[c]
            t_in = t0 + (t_in - t0) * mean_in[c]
    return t_out


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
    rec = _empty_records(model, steps // 10)
    net.prepare(state, dt)

    def kernel():
        net.advance(state, dt, 0, steps, 10, d.chip, rec, power.kernel, row=d.row)

    kernel()
    kern = median_time(kernel) / (steps * dt)

    prep = median_time(lambda: net.prepare(state, dt), number=5)

    def block(force=True):
        net.dirty = force
        net.refresh(state, dt)
        db = power.block(200.0, dt, 100)
        net.advance(state, dt, 0, 100, 10, db.chip, _empty_records(model, 10), power.kernel, row=db.row)

    block()
    blk = median_time(block, number=5) / (100 * dt)
    blk_reuse = median_time(lambda: block(False), number=5) / (100 * dt)

    # the floor: the same plates (3 in series along each path) and coolant cells
    plates = np.ascontiguousarray(net.packed)
    fluid = model.cell_kind == 0
    end_in = np.ascontiguousarray(net.cell_coef[fluid, tk.CF_END_IN])
    mean_in = np.ascontiguousarray(net.cell_coef[fluid, tk.CF_MEAN_IN])
    x0 = state.chip_x.copy()
    chip_p = model.chip_tdp.copy()
    cells0 = state.cell_t[fluid].copy()

    def floor():
        bare_update(steps, plates, x0, 3, chip_p, 30.0, end_in, mean_in, cells0)

    floor()
    bare = median_time(floor) / (steps * dt)

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
    print(f"floor: bare update of a network that size:        {bare * 1e6:9.1f} us  "
          f"-> {1.0 / bare:,.0f}x real time")
    print(f"step coefficients (126 plate exponentials):       {prep * 1e3:9.2f} ms")
    print(f"engine per simulated second, re-solving per 10 s: {blk * 1e6:9.1f} us  -> {1.0 / blk:,.0f}x real time")
    print(f"engine per simulated second, nothing moved:       {blk_reuse * 1e6:9.1f} us  -> {1.0 / blk_reuse:,.0f}x real time")
    print(f"reference scenario (600 s) in-process:            {full_s:9.2f} s")


if __name__ == "__main__":
    main()
