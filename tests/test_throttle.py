"""GPU clock control under thermal limits: it converges with the time step, it agrees
with itself (margins, channels, notes), and shutdown protects a chip whether or not it
throttles.

The convergence figures are acceptance figures (docs/model.md, What the tests hold the
model to): between time steps of 0.1, 0.05 and 0.02 s, goodput and mean GPU power move by
less than 1 % and the peak junction temperature by less than 0.2 K, and the default step
(0.1 s) is within 1 % of the converged answer (taken at 0.01 s: the update is first order, so its error there is a
tenth of the default step's).
"""
import numpy as np
import pytest

import twin
from twin.kernels import workload as kw

from .conftest import REFERENCE, ROOT

TRAINING_W45 = ROOT / "scenarios" / "training-w45.toml"
STEPS_S = (0.1, 0.05, 0.02)
CONVERGED_STEP_S = 0.01
# Acceptance figures (not today's error plus a little).
GOODPUT_RTOL = 0.01
POWER_RTOL = 0.01
PEAK_TJ_ATOL_K = 0.2

# Throttling cases: a steady load stepped up into throttling, square-wave bursts at 1 Hz,
# synchronous training at 1.5 Hz and at 2 Hz. Each at W45 with too little flow.
_STEP_UP = {
    "facility.supply_temp_c": 45.0, "controls.flow_setpoint_lpm": 50.0, "simulation.duration_s": 240.0,
    "workload.schedule": [{"chips": "gpu", "kind": "constant", "fraction_of_tdp": 0.3},
                          {"chips": "gpu", "kind": "constant", "start_s": 30.0, "fraction_of_tdp": 1.0},
                          {"chips": "cpu", "fraction_of_tdp": 0.7}, {"chips": "nvswitch", "fraction_of_tdp": 0.8}],
}
_BURSTS_1HZ = {
    "facility.supply_temp_c": 45.0, "controls.flow_setpoint_lpm": 50.0, "simulation.duration_s": 240.0,
    "workload.schedule": [{"chips": "gpu", "kind": "square", "period_s": 1.0, "duty": 0.7,
                           "high_fraction_of_tdp": 1.0, "low_fraction_of_tdp": 0.35},
                          {"chips": "cpu", "fraction_of_tdp": 0.7}, {"chips": "nvswitch", "fraction_of_tdp": 0.8}],
}
_TRAIN = {"controls.flow_setpoint_lpm": 45.0, "simulation.duration_s": 240.0,
          "workload.jobs.0.failures_per_day": 0.0, "workload.jobs.0.checkpoint_interval_s": 1e9}
CASES = {
    "steady-load step": (REFERENCE, _STEP_UP),
    "1 Hz bursts": (REFERENCE, _BURSTS_1HZ),
    "1.5 Hz training": (TRAINING_W45, _TRAIN),
    "2 Hz training": (TRAINING_W45, {**_TRAIN, "workload.jobs.0.step_time_s": 0.5}),
}


def _figures(path, over, dt):
    r = twin.simulate(twin.load_scenario(path, {**over, "simulation.time_step_s": dt}))
    tel = r.telemetry()
    out = dict(power=float(tel["gpu/power"].astype(float).mean()), peak=r.margins["gpu_junction_max_c"],
               throttled=r.margins["gpu_throttled_s_max"])
    if r.jobs:
        out["goodput"] = r.jobs[0]["goodput"]
    return out


@pytest.fixture(scope="module", params=list(CASES))
def sweep(request):
    path, over = CASES[request.param]
    return {dt: _figures(path, over, dt) for dt in (*STEPS_S, CONVERGED_STEP_S)}


def test_the_cases_really_throttle(sweep):
    """Otherwise the convergence below would hold trivially."""
    for fig in sweep.values():
        assert fig["throttled"] > 60.0
        assert fig.get("goodput", 0.0) < 0.98


def test_throttling_converges_with_the_time_step(sweep):
    base = sweep[STEPS_S[0]]
    for dt in STEPS_S[1:]:
        fig = sweep[dt]
        assert fig["power"] == pytest.approx(base["power"], rel=POWER_RTOL), dt
        assert abs(fig["peak"] - base["peak"]) < PEAK_TJ_ATOL_K, dt
        if "goodput" in base:
            assert fig["goodput"] == pytest.approx(base["goodput"], rel=GOODPUT_RTOL), dt


def test_the_default_step_is_within_one_percent_of_the_converged_answer(sweep):
    default, converged = sweep[0.1], sweep[CONVERGED_STEP_S]
    assert default["power"] == pytest.approx(converged["power"], rel=POWER_RTOL)
    assert abs(default["peak"] - converged["peak"]) < PEAK_TJ_ATOL_K
    if "goodput" in default:
        assert default["goodput"] == pytest.approx(converged["goodput"], rel=GOODPUT_RTOL)


@pytest.fixture(scope="module")
def throttled_run():
    r = twin.simulate(twin.load_scenario(REFERENCE, _STEP_UP))
    return r, r.telemetry()


def test_throttled_time_margin_equals_the_channels(throttled_run):
    """The margin, the per-interval channel and the clock channel tell one story: a GPU
    counts as throttled exactly while its clock is below full, by at least one clock step."""
    r, tel = throttled_run
    thr = tel["gpu/throttled_time"].astype(float)
    clock = tel["gpu/clock_fraction"].astype(float)
    interval = r.scenario.simulation.output_interval_s
    per_gpu = thr.sum(axis=0)
    assert per_gpu.max() == pytest.approx(r.margins["gpu_throttled_s_max"], rel=1e-6)
    # a margin note names the GPU that throttled longest
    row = next(x for x in r.margin_table.rows if x.name == "gpu_throttled_s_max")
    assert row.instance == tel.labels["gpu/labels"][int(np.argmax(per_gpu))]
    # where nothing throttled the clock is full; where it did, the clock shows it
    np.testing.assert_array_equal(clock[thr == 0.0], 1.0)
    deficit = (1.0 - clock) * interval
    assert np.all(deficit[thr > 0] >= kw.CLOCK_STEP * thr[thr > 0] * (1 - 1e-4))
    assert np.all(thr <= interval * (1 + 1e-6))
    # and the steady load before the step did not throttle
    assert np.all(thr[tel.time <= 30.0] == 0.0)


def test_no_margin_reads_ok_while_a_gpu_throttles(throttled_run):
    r, _ = throttled_run
    rows = {x.name: x for x in r.margin_table.rows}
    assert rows["gpu_throttled_s_max"].status == "fail"
    assert rows["gpu_junction_margin_k"].status == "fail"
    assert r.margin_table.verdict == "fail"


def test_a_rack_below_its_limits_reports_no_throttling():
    """A rack just inside its limits: W45 at 80 L/min peaks below the 89 degC slowdown; nothing may say
    it throttled, and the junction margin is ok."""
    r = twin.simulate(twin.load_scenario(REFERENCE, {"facility.supply_temp_c": 45.0,
                                                     "controls.flow_setpoint_lpm": 80.0}))
    tel = r.telemetry()
    assert r.margins["gpu_junction_max_c"] < 89.0
    assert r.margins["gpu_throttled_s_max"] == 0.0
    assert np.all(tel["gpu/clock_fraction"] == 1.0)
    assert np.all(tel["gpu/throttled_time"] == 0.0)
    assert {x.name: x.status for x in r.margin_table.rows}["gpu_junction_margin_k"] == "ok"


def test_shutdown_protects_a_gpu_that_does_not_throttle():
    """throttles = false removes the clock control, not the hardware shutdown: the hot
    GPUs latch off at 92 degC and the margin fails (it once read 96 degC and 0 shutdowns)."""
    r = twin.simulate(twin.load_scenario(TRAINING_W45, {**_TRAIN, "simulation.duration_s": 60.0,
                                                        "rack.chip_types.gpu.throttles": False}))
    tel = r.telemetry()
    rows = {x.name: x for x in r.margin_table.rows}
    assert r.margins["gpu_shutdowns"] > 0
    assert rows["gpu_shutdowns"].status == "fail"
    assert rows["gpu_shutdowns"].instance in tel.labels["gpu/labels"]
    assert r.margins["gpu_throttled_s_max"] == 0.0  # no clock control: it never throttled
    # a shut-down GPU draws nothing and its junction falls below the limit
    off = tel["gpu/power"][-1] == 0.0
    assert off.sum() == r.margins["gpu_shutdowns"]
    assert np.all(tel["gpu/junction_temp"][-1][off] < 92.0)
    # no junction ran on above shutdown: the latch acts at the next step after the crossing
    assert r.margins["gpu_junction_max_c"] < 92.0 + 1.0


def test_a_throttling_rack_starts_in_its_periodic_state():
    """The steady start warms the rack up with its real training waveform when the swing
    reaches the limit: the first seconds throttle like the last ones (no start transient,
    no spurious shutdown from a start at mean power)."""
    r = twin.simulate(twin.load_scenario(TRAINING_W45, {**_TRAIN, "simulation.duration_s": 120.0}))
    clock = r.telemetry()["gpu/clock_fraction"].astype(float).mean(axis=1)
    assert clock[:10].mean() == pytest.approx(clock[-30:].mean(), abs=0.005)
    assert clock.mean() < 0.99
    assert r.margins["gpu_shutdowns"] == 0


def test_steady_throttled_power_sits_at_the_slowdown_temperature():
    """Analytic limit of the clock law: under a steady load the integral controller holds
    the junction at the throttle temperature exactly, and the clock is the one at which
    the chip's power, through its own thermal resistance to the coolant, lands there."""
    r = twin.simulate(twin.load_scenario(REFERENCE, {
        "facility.supply_temp_c": 45.0, "controls.flow_setpoint_lpm": 50.0, "simulation.duration_s": 60.0,
        "workload.schedule": [{"chips": "gpu", "kind": "constant", "fraction_of_tdp": 1.0},
                              {"chips": "cpu", "fraction_of_tdp": 0.7}, {"chips": "nvswitch", "fraction_of_tdp": 0.8}]}))
    tel = r.telemetry()
    throttled = tel["gpu/clock_fraction"][-1] < 1.0
    assert throttled.sum() >= 10
    np.testing.assert_allclose(tel["gpu/junction_temp"][-1][throttled], 89.0, atol=1e-3)
    # power at that clock follows the clock law idle + (P - idle) c^2
    c = tel["gpu/clock_fraction"][-1][throttled].astype(float)
    np.testing.assert_allclose(tel["gpu/power"][-1][throttled], 150.0 + (1200.0 - 150.0) * c**2, rtol=1e-5)


def test_junction_margins_are_measured_to_the_throttle_temperature():
    """The junction margin is the throttle temperature of the rack file (GPU 89 degC,
    [NV-SMI]; CPU and switch 95 degC) minus the peak junction, chip by chip: not the
    shutdown temperature, not the mean. Catches a margin taken to the wrong limit."""
    r = twin.simulate(twin.load_scenario(REFERENCE, {"simulation.duration_s": 30.0}))
    m, tj = r.model, r.final_state.chip_tj_max
    gpu = m.gpu_index
    assert r.margins["gpu_junction_margin_k"] == pytest.approx(89.0 - tj[gpu].max(), abs=1e-12)
    other = np.array([i for i in range(m.n_chips) if m.chip_type[i] != "gpu"])
    assert r.margins["other_chip_junction_margin_k"] == pytest.approx(np.min(95.0 - tj[other]), abs=1e-12)
    assert r.margins["gpu_junction_max_c"] == pytest.approx(tj[gpu].max(), abs=1e-12)


def test_goodput_row_fails_when_throttled_and_passes_when_not():
    """The goodput row's own status: below its limit of 1 it fails, at 1 it is ok (the
    table's verdict is already failed by the junction rows, so a row judged the wrong way
    round would go unseen there)."""
    hot = twin.simulate(twin.load_scenario(TRAINING_W45, {**_TRAIN, "simulation.duration_s": 60.0}))
    cool = twin.simulate(twin.load_scenario(ROOT / "scenarios" / "training-w32.toml",
                                            {**_TRAIN, "simulation.duration_s": 60.0}))
    row = {x.name: x for x in hot.margin_table.rows}["job_llm_goodput"]
    assert row.value < 0.98 and row.status == "fail"
    row = {x.name: x for x in cool.margin_table.rows}["job_llm_goodput"]
    assert row.value == 1.0 and row.status == "ok"


def test_a_throttled_training_gpu_draws_the_power_of_its_clock():
    """A training job that only computes (``compute_fraction = 1``: no communication phase,
    whose power the model holds whatever the clock): the slowest throttled GPU's interval
    power is ``idle + (P - idle) c^2`` at its recorded clock c (the documented law: dynamic power ~
    f V^2 with V falling with f, ASSUMPTION), and the job's steps advance at its slowest
    GPU's clock. Catches a power linear in the clock, or a pace that ignores it."""
    r = twin.simulate(twin.load_scenario(TRAINING_W45, {
        **_TRAIN, "simulation.duration_s": 60.0, "controls.flow_setpoint_lpm": 60.0,
        "workload.jobs.0.compute_fraction": 1.0,
        "workload.jobs.0.straggler_count": 0, "workload.jobs.0.power_jitter_fraction": 0.0}))
    tel = r.telemetry()
    clock = tel["gpu/clock_fraction"].astype(float)
    c, p = clock[-1], tel["gpu/power"][-1].astype(float)
    assert r.margins["gpu_shutdowns"] == 0
    # the slowest GPU computes all the time: its power is the clock law at its clock (the
    # others wait part of each step for it, at communication power)
    k = int(np.argmin(c))
    assert c[k] < 0.95 and abs(clock[-2, k] - c[k]) < 5e-3  # throttled, clock nearly held
    assert p[k] == pytest.approx(150.0 + (1200.0 - 150.0) * c[k] ** 2, rel=2e-4)
    # pace: every step waits for the slowest GPU, so the job's goodput is the run's mean of
    # the slowest clock (interval means; within one step of the 90 in the run)
    slowest = clock.min(axis=1).mean()
    assert r.jobs[0]["goodput"] == pytest.approx(slowest, abs=1.0 / 90 + 1e-3)
    assert r.jobs[0]["goodput"] < 0.95
