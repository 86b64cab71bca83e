"""The thermal step against the workload's power peaks, and the margins that say when a
step is too coarse to trust (docs/model.md, *Time step*).

What each would catch: a coarse step averages a compute phase's power with the
communication phase beside it, so the junction peaks come out low and the margin high
(faults/w45-hot-day: 10.5 K at 0.1 s, 13.2 K at 1 s) with nothing to say so; a rule that
flagged the default steps of the catalogue (a false alarm on every run); a phase length
taken from the wrong share of the step.
"""
import pytest

import twin
from twin.margins import RIDE_THROUGH_STEP_MAX_S, coarse_step
from twin.scenario import STEPS_PER_PEAK, fastest_peak

from .conftest import ROOT

HOT = ROOT / "scenarios" / "faults" / "w45-hot-day.toml"
TRIP = ROOT / "scenarios" / "faults" / "cdu-trip.toml"
# Below half the compute phase the margin is converged: within this fraction of the
# finest step's, the criterion the default step meets in test_throttle.py. (A step that
# does not divide the phase shares its last step with the next phase: 0.1 s against
# 0.05 s on 600 s of faults/w45-hot-day is 15.142 K against 15.028 K, 0.75 %.)
CONVERGED_RTOL = 0.01


def _hot(dt, duration_s=600.0):
    s = twin.load_scenario(HOT, {"simulation.time_step_s": dt, "simulation.output_interval_s": 10.0,
                                 "simulation.hydraulic_update_s": 10.0, "simulation.duration_s": duration_s})
    return twin.simulate(s).margin_table


def _row(table, name):
    return next(r for r in table.rows if r.name == name)


def test_the_shortest_peak_is_the_compute_phase_of_the_fastest_job():
    s = twin.load_scenario(HOT)
    job = s.workload.jobs[0]
    seconds, what = fastest_peak(s.workload)
    assert seconds == pytest.approx(job.step_time_s * job.compute_fraction)  # 0.667 s x 0.7
    assert "compute" in what
    # a job whose communication draws more peaks in its communication share
    flipped = twin.load_scenario(HOT, {"workload.jobs.0.comm_power_fraction_of_tdp": 1.0,
                                       "workload.jobs.0.compute_power_fraction_of_tdp": 0.5})
    assert fastest_peak(flipped.workload)[0] == pytest.approx(job.step_time_s * (1 - job.compute_fraction))
    # a square wave on the CPUs is not a GPU peak
    assert fastest_peak(twin.load_scenario(ROOT / "scenarios" / "reference-w32.toml").workload, ("cpu",)) is None


def test_below_half_the_peak_the_margin_is_converged_and_unflagged():
    fine, default, half = (_hot(dt) for dt in (0.05, 0.1, 0.2))
    peak = fastest_peak(twin.load_scenario(HOT).workload)[0]
    assert 0.2 * STEPS_PER_PEAK <= peak  # the premise: 0.2 s fits twice into the 0.467 s phase
    for t in (default, half):
        assert _row(t, "gpu_junction_margin_k").value == pytest.approx(_row(fine, "gpu_junction_margin_k").value,
                                                                       rel=CONVERGED_RTOL)
        assert "time step" not in _row(t, "gpu_junction_margin_k").note


def test_a_step_coarser_than_the_peaks_overstates_the_margin_and_says_so():
    fine, just, coarse = _hot(0.05), _hot(0.25), _hot(1.0)
    # just past half the phase the margin leaves the converged band; at 1 s by K
    assert _row(just, "gpu_junction_margin_k").value > (1 + CONVERGED_RTOL) * _row(fine, "gpu_junction_margin_k").value
    assert "time step 0.25 s" in _row(just, "gpu_junction_margin_k").note
    assert _row(coarse, "gpu_junction_margin_k").value > _row(fine, "gpu_junction_margin_k").value + 1.0
    note = _row(coarse, "gpu_junction_margin_k").note
    assert "time step 1 s" in note and "compute phase of 0.467 s" in note and "time_step_s <= 0.233" in note
    assert "time step" not in _row(coarse, "other_chip_junction_margin_k").note  # the CPUs run no job


def test_no_catalogue_scenario_is_flagged_at_its_own_step():
    for path in sorted((ROOT / "scenarios").rglob("*.toml")):
        text = path.read_text()
        if "[simulation]" not in text:
            continue  # a part (rack, CDU, facility), not a runnable scenario
        s = twin.load_scenario(path)
        assert coarse_step(s) == "", path


def test_ride_through_at_a_coarse_step_is_marked_not_converged():
    def run(dt):
        s = twin.load_scenario(TRIP, {"simulation.time_step_s": dt, "simulation.output_interval_s": 10.0,
                                      "simulation.hydraulic_update_s": 10.0})
        return twin.simulate(s).margin_table

    ok, coarse = run(RIDE_THROUGH_STEP_MAX_S), run(1.0)
    for key in ("ride_through_throttle_s", "ride_through_shutdown_s"):
        assert "not converged" not in _row(ok, key).note
        assert "time step 1 s: not converged" in _row(coarse, key).note


def test_twin_check_says_when_a_scenario_steps_past_its_peaks(tmp_path):
    """A check prints no margin notes, so a scenario written with a coarse step would pass
    on overstated junction margins without a word: the check names it above the table."""
    from click.testing import CliRunner

    from twin.cli import cli

    (tmp_path / "coarse.toml").write_text(f'name = "coarse-hot-day"\ninclude = ["{HOT}"]\n'
                                          "[simulation]\ntime_step_s = 1.0\noutput_interval_s = 10.0\n"
                                          "hydraulic_update_s = 10.0\n")
    r = CliRunner().invoke(cli, ["check", str(tmp_path / "coarse.toml"), "--jobs", "1", "--duration", "60",
                                 "--baseline", str(tmp_path / "none.toml"), "--update-baseline"],
                           catch_exceptions=False)
    assert r.exit_code == 0, r.stdout + r.stderr
    assert "coarse-hot-day: time step 1 s against job llm's compute phase" in r.stdout, r.stdout


def test_a_replayed_trace_is_resolved_at_half_its_sample_interval():
    """The HPC trace holds each 15 s sample: a 10 s step can straddle a peak sample and
    is flagged, on every chip (they all follow the trace); 7.5 s is not."""
    def margins(dt):
        s = twin.load_scenario("replay-hpc-trace", {"simulation.time_step_s": dt, "simulation.output_interval_s": 30.0,
                                                    "simulation.hydraulic_update_s": 30.0,
                                                    "simulation.duration_s": 120.0})
        return twin.simulate(s).margin_table

    coarse, fine = margins(10.0), margins(7.5)
    for name in ("gpu_junction_margin_k", "other_chip_junction_margin_k"):
        assert "time step 10 s against the replayed trace's samples of 15 s" in _row(coarse, name).note
        assert "time step" not in _row(fine, name).note
