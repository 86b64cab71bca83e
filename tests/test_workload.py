"""The SimPy workload: training swings, checkpoints and failures, throttling feedback,
the waveform shortcut against a step-by-step DES, inference, caps and replay."""
import numpy as np
import pytest

import twin
from twin.errors import TwinInputError
from twin.telemetry import read_telemetry

from .conftest import ROOT

TRAINING = ROOT / "scenarios" / "training-w32.toml"
TRAINING_W45 = ROOT / "scenarios" / "training-w45.toml"
# Acceptance figures (docs/model.md, What the tests hold the model to).
MEAN_POWER_RTOL = 0.01
WAVEFORM_VS_STEPS_ATOL_K = 0.05


def _plain(**extra):
    """One 72-GPU job with no stragglers, jitter, checkpoints or failures."""
    out = {"workload.jobs.0.straggler_count": 0, "workload.jobs.0.power_jitter_fraction": 0.0,
           "workload.jobs.0.failures_per_day": 0.0, "workload.jobs.0.checkpoint_interval_s": 1e9}
    out.update(extra)
    return out


def test_rack_power_peaks_at_the_step_frequency_with_duty_weighted_mean():
    s = twin.load_scenario(TRAINING, _plain(**{"simulation.duration_s": 120.0,
                                               "simulation.output_interval_s": 0.1}))
    r = twin.simulate(s)
    tel = r.telemetry()
    p = tel["gpu/power"].astype(float).sum(axis=1)
    job = s.workload.jobs[0]
    tdp = s.rack.chip_types["gpu"].tdp_w
    expected = 72 * tdp * (job.compute_fraction * job.compute_power_fraction_of_tdp
                           + (1 - job.compute_fraction) * job.comm_power_fraction_of_tdp)
    assert p.mean() == pytest.approx(expected, rel=MEAN_POWER_RTOL)
    spec = np.abs(np.fft.rfft(p - p.mean()))
    freq = np.fft.rfftfreq(p.size, d=0.1)
    f_peak = freq[np.argmax(spec)]
    assert f_peak == pytest.approx(1.0 / job.step_time_s, abs=freq[1])
    # the swing is real: compute at TDP, communication at 35 % of it
    assert p.max() > 0.95 * 72 * tdp and p.min() < 0.45 * 72 * tdp


def test_checkpoints_and_failures_appear_where_the_des_put_them(tmp_path):
    over = {"workload.jobs.0.checkpoint_interval_s": 300.0, "workload.jobs.0.checkpoint_duration_s": 30.0,
            "workload.jobs.0.failures_per_day": 150.0, "workload.jobs.0.restart_time_s": 60.0,
            "workload.jobs.0.power_jitter_fraction": 0.0, "workload.seed": 1, "simulation.duration_s": 1800.0}
    out = tmp_path / "t.h5"
    r = twin.simulate(twin.load_scenario(TRAINING, over), output=out)
    tel = read_telemetry(out)
    assert tel.events == r.events
    kinds = [k for _, k, _ in r.events]
    assert "checkpoint_start" in kinds and "failure" in kinds
    t = tel.time
    p = tel["gpu/power"].astype(float).sum(axis=1)
    steps = tel["job/steps"][:, 0]
    tdp = 1200.0
    last_ckpt_steps = 0.0
    for time, kind, _ in r.events:
        if kind == "checkpoint_start":
            window = (t > time + 1.0) & (t <= time + 30.0)
            np.testing.assert_allclose(p[window], 72 * 0.2 * tdp, rtol=1e-6)
            assert np.ptp(steps[window]) == 0  # no progress while checkpointing
            last_ckpt_steps = steps[np.searchsorted(t, time)]
        elif kind == "failure":
            window = (t > time + 1.0) & (t <= time + 60.0)
            np.testing.assert_allclose(p[window], 72 * 0.1 * tdp, rtol=1e-6)
            # work since the last checkpoint is lost
            assert steps[window][0] == pytest.approx(last_ckpt_steps)
    # and in between, the job trains: power swings and steps advance
    assert steps[-1] > 0


def test_too_little_cooling_throttles_and_enough_does_not():
    hot = twin.simulate(twin.load_scenario(TRAINING_W45, _plain(**{
        "controls.flow_setpoint_lpm": 45.0, "simulation.duration_s": 300.0})))
    tel = hot.telemetry()
    clock = tel["gpu/clock_fraction"]
    assert clock.min() < 1.0
    hottest = np.argmax(tel["gpu/junction_temp_max"].max(axis=0))
    assert clock[:, hottest].mean() < 0.99
    assert hot.jobs[0]["goodput"] < 1.0
    assert hot.jobs[0]["throttled_gpu_s"] > 0
    assert hot.margins["gpu_shutdowns"] == 0
    assert tel["gpu/junction_temp_max"].max() < hot.model.chip_throttle_c[0] + 2.5
    assert hot.telemetry()["gpu/junction_temp_max"].max() < 92.0
    assert hot.margin_table.ok is False  # goodput below 1 fails the table

    cool = twin.simulate(twin.load_scenario(TRAINING, _plain(**{"simulation.duration_s": 300.0})))
    assert np.all(cool.telemetry()["gpu/clock_fraction"] == 1.0)
    assert cool.jobs[0]["goodput"] == 1.0
    assert cool.margins["gpu_throttled_s_max"] == 0.0


def test_waveform_shortcut_matches_a_step_by_step_des():
    over = {"workload.jobs.0.checkpoint_interval_s": 100.0, "workload.jobs.0.checkpoint_duration_s": 10.0,
            "workload.jobs.0.failures_per_day": 400.0, "workload.jobs.0.restart_time_s": 20.0,
            "workload.seed": 4, "simulation.duration_s": 300.0}
    wave = twin.simulate(twin.load_scenario(TRAINING, over))
    steps = twin.simulate(twin.load_scenario(TRAINING, {**over, "workload.mode": "step_by_step"}))
    assert [k for _, k, _ in wave.events].count("failure") >= 1  # the comparison covers a failure
    assert wave.events == steps.events
    a = wave.telemetry()["gpu/junction_temp"].astype(float)
    b = steps.telemetry()["gpu/junction_temp"].astype(float)
    assert np.max(np.abs(a - b)) < WAVEFORM_VS_STEPS_ATOL_K
    assert wave.jobs[0]["steps"] == steps.jobs[0]["steps"] > 0


def test_inference_power_follows_its_daily_curve():
    s = twin.load_scenario(ROOT / "scenarios" / "inference-day.toml", {
        "simulation.duration_s": 3600.0, "workload.jobs.0.start_hour": 10.0, "workload.jobs.0.update_interval_s": 600.0})
    tel = twin.simulate(s).telemetry()
    job = s.workload.jobs[0]
    hours = np.array([h for h, _ in job.load_curve])
    loads = np.array([x for _, x in job.load_curve])
    p = tel["gpu/power"].astype(float).mean(axis=1)
    for k in range(6):
        t0 = k * 600.0
        load = np.interp(10.0 + t0 / 3600.0, hours, loads)
        expected = 150.0 + (0.9 * 1200.0 - 150.0) * load
        window = (tel.time > t0) & (tel.time <= t0 + 600.0)
        np.testing.assert_allclose(p[window], expected, rtol=1e-6)


def test_power_cap_limits_gpu_power_and_slows_steps():
    base = _plain(**{"simulation.duration_s": 60.0})
    capped = twin.simulate(twin.load_scenario(TRAINING, {**base, "workload.gpu_power_cap_w": 900.0}))
    free = twin.simulate(twin.load_scenario(TRAINING, base))
    tel = capped.telemetry()
    assert tel["gpu/junction_temp_max"].max() < free.telemetry()["gpu/junction_temp_max"].max()
    assert tel["gpu/clock_fraction"].max() < 1.0  # the cap acts as a clock limit
    assert capped.jobs[0]["steps"] < free.jobs[0]["steps"]
    assert capped.jobs[0]["goodput"] == 1.0  # a cap is a choice, not a thermal loss


def test_queued_job_waits_for_free_gpus_and_starts_when_they_free_up():
    """72 GPUs: pretrain holds 48 and serving 16, so the 16-GPU finetune submitted at 100 s
    finds 8 free and must wait (FIFO) until pretrain ends at 300 s; it then starts at
    once. Its GPUs sit idle until then and draw its power after. A queue that started a
    job on too few GPUs, or never released them, fails here."""
    s = twin.load_scenario(ROOT / "scenarios" / "mixed-rack.toml", {
        "workload.jobs.0.duration_s": 300.0, "workload.jobs.0.failures_per_day": 0.0,
        "workload.jobs.2.start_s": 100.0, "simulation.duration_s": 400.0})
    r = twin.simulate(s)
    ev = {(k, g): t for t, k, g in r.events}
    assert ev[("job_submit", "finetune")] == pytest.approx(100.0)
    assert ev[("job_end", "pretrain")] == pytest.approx(300.0)
    assert ev[("job_start", "finetune")] == pytest.approx(300.0)  # waited 200 s, started when GPUs freed
    tel = r.telemetry()
    p = tel["gpu/power"].astype(float)
    busy = p > 150.0 + 1.0  # above idle_w
    waiting = (tel.time > 110.0) & (tel.time <= 290.0)
    assert np.all(busy[waiting].sum(axis=1) == 64)  # 48 pretrain + 16 serving; 8 idle, finetune queued
    after = (tel.time > 310.0) & (tel.time <= 400.0)
    assert np.all(busy[after].sum(axis=1) == 32)  # serving + finetune


def test_replay_follows_the_trace():
    s = twin.load_scenario(ROOT / "scenarios" / "replay-hpc-trace.toml", {"simulation.duration_s": 600.0})
    tel = twin.simulate(s).telemetry()
    import csv
    with open(ROOT / "scenarios" / "data" / "hpc-cdu-power-trace" / "input_04-07-24.csv") as f:
        rows = list(csv.DictReader(f))
    col = np.array([float(r["power[1]"]) for r in rows])
    u = col / col.max()
    tdp_total = 72 * 1200 + 36 * 300 + 18 * 400
    chips = sum(tel[f"{t}/power"].astype(float).sum(axis=1) for t in ("gpu", "cpu", "nvswitch"))
    # each 15 s output interval holds one trace sample
    np.testing.assert_allclose(chips, u[:chips.size] * tdp_total, rtol=1e-5)


def test_energy_closes_under_training_with_throttling():
    r = twin.simulate(twin.load_scenario(TRAINING_W45, _plain(**{
        "controls.flow_setpoint_lpm": 45.0, "simulation.duration_s": 120.0})))
    e = r.energy
    stored = e["stored_end_j"] - e["stored_start_j"]
    assert stored == pytest.approx(e["chip_j"] + e["aux_liquid_j"] - e["hx_j"], rel=1e-6, abs=1e-9 * e["chip_j"])


def test_replay_of_a_telemetry_file(tmp_path):
    """A run's own telemetry replays: chip power follows its rack IT power over its peak."""
    first = tmp_path / "first.h5"
    twin.simulate(twin.load_scenario(TRAINING, {"simulation.duration_s": 30.0}), output=first)
    src = read_telemetry(first)
    s = twin.load_scenario(ROOT / "scenarios" / "replay-hpc-trace.toml", {
        "workload.replay.file": str(first), "simulation.duration_s": 20.0, "simulation.time_step_s": 0.1,
        "simulation.output_interval_s": 1.0, "simulation.hydraulic_update_s": 10.0})
    tel = twin.simulate(s).telemetry()
    u = src["rack/it_power"] / src["rack/it_power"].max()
    gpu = tel["gpu/power"].astype(float).mean(axis=1)
    # sample k of the source holds over (t_k, t_k+1]: the replay's interval k+1
    np.testing.assert_allclose(gpu[1:], 1200.0 * u[:19], rtol=1e-5)
    # the first sample (at 1 s, the mean over 0-1 s) holds over the interval before it:
    # the run's first second is not left without power (it was: 0 W)
    assert gpu[0] == pytest.approx(1200.0 * u[0], rel=1e-5)


def test_a_run_longer_than_its_replay_trace_is_refused(tmp_path):
    """A trace of 0 s to 45 s (15 s samples) replayed for 60 s: past its last sample the chips
    would draw nothing, and the run would pass judgement on a rack that idled. Refused when
    the scenario is loaded, naming the trace and what it covers, and by ``simulate`` for a
    ``duration_s`` beyond the scenario's own."""
    trace = tmp_path / "short.csv"
    trace.write_text("time,power\n0,1000\n15,2000\n30,1500\n45,1000\n")
    over = {"workload.replay.file": str(trace), "workload.replay.column": "power",
            "simulation.output_interval_s": 1.0, "simulation.hydraulic_update_s": 5.0}
    with pytest.raises(TwinInputError) as err:
        twin.load_scenario(ROOT / "scenarios" / "replay-hpc-trace.toml", {**over, "simulation.duration_s": 60.0})
    assert err.value.field == "workload.replay.file" and "covers trace time -15 s to 45 s" in err.value.message
    assert "needs 0 s to 60 s" in err.value.message, err.value.message
    s = twin.load_scenario(ROOT / "scenarios" / "replay-hpc-trace.toml", {**over, "simulation.duration_s": 45.0})
    assert float(np.min(twin.simulate(s).telemetry()["gpu/power"])) > 0.0  # every second has its power
    with pytest.raises(TwinInputError, match="needs 0 s to 50 s"):
        twin.simulate(s, duration_s=50.0)


def test_idle_job_holds_gpus_at_its_power_and_frees_them():
    s = twin.load_scenario(ROOT / "scenarios" / "mixed-rack.toml", {
        "workload.jobs": [{"kind": "idle", "name": "burn", "gpus": 8, "duration_s": 60.0, "power_fraction_of_tdp": 0.5},
                          {"kind": "idle", "name": "later", "gpus": 72, "start_s": 10.0}],
        "simulation.duration_s": 120.0})
    r = twin.simulate(s)
    tel = r.telemetry()
    p = tel["gpu/power"].astype(float)
    np.testing.assert_allclose(p[5, :8], 600.0, rtol=1e-9)
    np.testing.assert_allclose(p[5, 8:], 150.0, rtol=1e-9)
    ev = {(k, g): t for t, k, g in r.events}
    assert ev[("job_start", "later")] == pytest.approx(60.0)  # queued until the 8 GPUs free up


def test_nominal_short_path_equals_the_general_path(monkeypatch):
    """A training job with every GPU at full clock takes the kernel's short path
    (P = P_BASE + f_c pace P_SLOPE); forcing the general path (clocks, caps, per-GPU pace)
    must give the same run to round-off."""
    from twin.kernels import workload as kw

    over = {"simulation.duration_s": 120.0, "workload.jobs.0.checkpoint_interval_s": 60.0,
            "workload.jobs.0.checkpoint_duration_s": 10.0}
    short = twin.simulate(twin.load_scenario(TRAINING, over))
    real = kw.pace_constants

    def general_only(wp, jp, j, chips):
        real(wp, jp, j, chips)
        jp[j, kw.JP_UNCAPPED] = 0.0  # never nominal: the general path every step

    monkeypatch.setattr(kw, "pace_constants", general_only)
    general = twin.simulate(twin.load_scenario(TRAINING, over))
    a, b = short.telemetry(), general.telemetry()
    np.testing.assert_allclose(a["gpu/power"], b["gpu/power"], rtol=1e-6)  # float32 channel
    np.testing.assert_allclose(a["gpu/junction_temp"], b["gpu/junction_temp"], rtol=0, atol=1e-4)
    assert short.jobs[0]["steps"] == general.jobs[0]["steps"] > 0
