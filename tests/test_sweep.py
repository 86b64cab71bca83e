"""Sweeps (`twin sweep`, `twin.sweep`): the plan a sweep file expands to, the rows the runs
give (equal to direct runs), resuming, failures as rows, bad sweep files, the real worker
processes and a separately started scheduler, Sobol and Morris sensitivity.

Most tests share one in-process Dask cluster (threads: no worker start-up, the kernels
already loaded); the CLI test runs real worker processes, the slow test a scheduler and
workers started as separate commands.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import twin
from twin.sweeps import spec

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "scenarios" / "reference-w32.toml"
MARGINS = ["gpu_junction_margin_k", "rack_return_temp_max_c", "gpu_junction_max_c"]


def grid_sweep(**extra):
    d = dict(base=str(REFERENCE), duration_s=20,
             grid={"facility.supply_temp_c": [30, 40], "controls.flow_setpoint_lpm": "120:150:2"},
             collect=dict(margins=MARGINS, channels={"rack/return_temp": "max", "gpu/junction_temp": ["mean", "p95"]}))
    d.update(extra)
    return d


@pytest.fixture(scope="module")
def client():
    from dask.distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None)
    c = Client(cluster)
    yield c
    c.close()
    cluster.close()


def direct(overrides, duration_s=20):
    s = twin.load_scenario(REFERENCE, {**overrides, "simulation.duration_s": duration_s})
    return twin.simulate(s)


# --------------------------------------------------------------------------- the plan


def test_a_grid_is_the_full_factorial_of_lists_and_ranges():
    """Catches: a range with the wrong end or count, floats where whole numbers were
    written, a product that drops or repeats combinations."""
    p = spec.load(grid_sweep(grid={"facility.supply_temp_c": "30:40:3", "controls.flow_setpoint_lpm": [120.0, 150.5],
                                   "rack.manifold.layout": ["direct_return"]}))
    got = [tuple(r.params.values()) for r in p.runs]
    assert got == [(t, f, "direct_return") for t in (30, 35, 40) for f in (120.0, 150.5)]
    assert all(isinstance(r.params["facility.supply_temp_c"], int) for r in p.runs)
    assert spec._range("0:1:5", "f", "k") == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert [r.run for r in p.runs] == list(range(6))
    assert all(r.overrides["simulation.duration_s"] == 20 for r in p.runs)


def test_run_hashes_depend_on_parameters_base_content_and_collect(tmp_path):
    """Catches: a hash that ignores the base scenario's content (a changed scenario would
    be skipped as done), the collected values, or is not stable from one load to the next."""
    a, b = spec.load(grid_sweep()), spec.load(grid_sweep())
    assert [r.hash for r in a.runs] == [r.hash for r in b.runs]
    assert len({r.hash for r in a.runs}) == len(a.runs)
    twice = spec.load(grid_sweep(grid={}, list=[{"facility.supply_temp_c": 30}] * 2))
    assert len({r.hash for r in twice.runs}) == 2  # a repeated point (Morris) is two runs
    other = spec.load(grid_sweep(collect=dict(margins=MARGINS[:1])))
    assert not {r.hash for r in other.runs} & {r.hash for r in a.runs}
    copy = tmp_path / "ref.toml"
    text = REFERENCE.read_text()
    for d in ("racks/", "cdus/", "facilities/"):
        text = text.replace(f'"{d}', f'"{REFERENCE.parent}/{d}')
    copy.write_text(text)
    same = spec.load(grid_sweep(base=str(copy)))
    assert [r.hash for r in same.runs] == [r.hash for r in a.runs]  # same content, other path
    copy.write_text(text.replace("[simulation]", "[simulation]\ninitial_temp_c = 35.0", 1))
    changed = spec.load(grid_sweep(base=str(copy)))
    assert not {r.hash for r in changed.runs} & {r.hash for r in a.runs}


def test_a_file_named_in_a_sweep_is_relative_to_the_sweep_file(tmp_path):
    """A replay trace set, varied or listed in a sweep file next to it. Catches: the path
    resolved against the base scenario's folder (every run a 'failed' row, 'replay file
    .../scenarios/mytrace.csv not found'), and a caller's dict changed in place."""
    trace = tmp_path / "mytrace.csv"
    trace.write_text("time,power_w\n0,1000\n1,1000\n")
    f = tmp_path / "sw.toml"
    f.write_text('base = "replay-hpc-trace"\n[set]\n"workload.replay.file" = "mytrace.csv"\n'
                 '[grid]\n"facility.supply_temp_c" = [30.0, 35.0]\n')
    p = spec.load(f)
    assert {r.overrides["workload.replay.file"] for r in p.runs} == {str(trace)}
    f.write_text('base = "replay-hpc-trace"\n[grid]\n"workload.replay.file" = ["mytrace.csv", "sub/other.csv"]\n')
    assert [r.params["workload.replay.file"] for r in spec.load(f).runs] == [str(trace), str(tmp_path / "sub/other.csv")]
    given = {"base": "replay-hpc-trace", "list": [{"workload.replay.file": "x.csv"}]}
    spec.load(given)
    assert given["list"][0]["workload.replay.file"] == "x.csv"


def test_spread_replicates_feed_one_seed_per_run_to_every_draw():
    """Catches: replicates that share a seed, draws of the sweep file not added to the
    scenario's, workload.seed left alone."""
    draw = dict(instances="rack01/tray*/gpu*", parameter="r_tim_k_per_w", distribution="lognormal",
                relative_spread=0.2)
    p = spec.load(dict(base=str(REFERENCE), spread=dict(replicates=3, seed=5, draw=[draw])))
    seeds = [r.params["run_seed"] for r in p.runs]
    assert len(set(seeds)) == 3 and [r.params["replicate"] for r in p.runs] == [0, 1, 2]
    for r in p.runs:
        assert r.overrides["workload.seed"] == r.params["run_seed"]
        assert r.overrides["spread"] == [{**draw, "seed": r.params["run_seed"]}]
    assert spec.load(dict(base=str(REFERENCE), spread=dict(replicates=3, seed=5))).runs[1].params == p.runs[1].params


def test_random_and_latin_hypercube_samples_stay_in_their_bounds():
    """Catches: unscaled unit samples, a Latin hypercube that is not stratified, seeds ignored."""
    bounds = {"facility.supply_temp_c": [25.0, 40.0], "controls.flow_setpoint_lpm": [100.0, 160.0]}
    for method in ("random", "latin_hypercube"):
        p = spec.load(dict(base=str(REFERENCE), sample=dict(method=method, n=10, seed=3, bounds=bounds)))
        x = np.array([[r.params[k] for k in bounds] for r in p.runs])
        assert x.shape == (10, 2)
        assert (x >= [25, 100]).all() and (x <= [40, 160]).all()
        again = spec.load(dict(base=str(REFERENCE), sample=dict(method=method, n=10, seed=3, bounds=bounds)))
        assert [r.params for r in again.runs] == [r.params for r in p.runs]
        if method == "latin_hypercube":  # one point in each tenth of each range
            for j, (lo, hi) in enumerate(bounds.values()):
                assert sorted(np.floor((x[:, j] - lo) / (hi - lo) * 10).astype(int)) == list(range(10))


# --------------------------------------------------------------------------- runs


def test_grid_rows_equal_direct_runs_of_the_same_overrides(client):
    """One row per run with its parameter values; margins and channel summaries equal
    (exactly) to twin.simulate of the same overrides. Catches: overrides not applied or
    applied to the wrong run, rows out of order, wrong reductions."""
    df = twin.sweep(grid_sweep(), client=client)
    assert len(df) == 4 and list(df["run"]) == [0, 1, 2, 3]
    assert list(zip(df["facility.supply_temp_c"], df["controls.flow_setpoint_lpm"])) == [
        (30, 120), (30, 150), (40, 120), (40, 150)]
    assert (df["status"] == "ok").all() and df["error"].isna().all()
    assert (df["wall_s"] > 0).all() and (df["simulate_s"] > 0).all()
    for i in (0, 3):
        row = df.iloc[i]
        r = direct({"facility.supply_temp_c": row["facility.supply_temp_c"],
                    "controls.flow_setpoint_lpm": row["controls.flow_setpoint_lpm"]})
        for m in MARGINS:
            assert row[m] == r.margins[m], m
        tel = r.telemetry()
        assert row["rack/return_temp:max"] == float(np.max(tel["rack/return_temp"]))
        assert row["gpu/junction_temp:mean"] == float(np.mean(np.asarray(tel["gpu/junction_temp"], dtype=float)))
        assert row["gpu/junction_temp:p95"] == float(np.percentile(np.asarray(tel["gpu/junction_temp"], float), 95))
        assert row["verdict"] == r.margin_table.verdict
    # hotter water, less margin: the rows are not all the same run
    assert df["gpu_junction_margin_k"].iloc[2] < df["gpu_junction_margin_k"].iloc[0] - 5


def test_a_sweep_resumes_and_runs_only_what_is_missing(client, tmp_path):
    """Catches: finished runs repeated after a restart, missing runs never run, a lost
    part file not noticed, a table that is not the whole sweep."""
    out = tmp_path / "res" / "g.parquet"
    first = twin.sweep(grid_sweep(), client=client, output=out, limit=2)
    assert first.attrs["executed"] == 2 and len(first) == 2 and out.is_file()
    second = twin.sweep(grid_sweep(), client=client, output=out)
    assert second.attrs["executed"] == 2 and second.attrs["skipped"] == 2 and len(second) == 4
    kept = first.set_index("run_hash")["started_at"]
    assert (second.set_index("run_hash").loc[kept.index, "started_at"] == kept).all()  # not run again
    assert twin.sweep(grid_sweep(), client=client, output=out).attrs["executed"] == 0
    parts = sorted((out.parent / "g.parquet.parts").glob("part-*.parquet"))
    import pandas as pd

    lost = pd.read_parquet(parts[-1])["run_hash"]
    parts[-1].unlink()  # as if killed before this part was written
    again = twin.sweep(grid_sweep(), client=client, output=out)
    assert again.attrs["executed"] == len(lost)
    redone = again.set_index("run_hash").loc[list(lost), "started_at"]
    assert (redone > second["started_at"].max()).all()
    table = pd.read_parquet(out)
    assert list(table["run"]) == [0, 1, 2, 3]
    cols = ["run", "run_hash", *MARGINS]
    assert table[cols].equals(second[cols])  # the same results, however they were reached


def test_a_sweep_written_over_another_sweeps_results_says_so(client, tmp_path, capsys):
    """Catches: a table of another sweep's results replaced without a word (its runs are
    kept in the parts, but the table a reader opens is no longer theirs). Resuming the
    same sweep says nothing."""
    out = tmp_path / "g.parquet"
    twin.sweep(grid_sweep(), client=client, output=out, limit=1)
    capsys.readouterr()
    twin.sweep(grid_sweep(), client=client, output=out, limit=1)  # the same sweep, resumed
    assert "another sweep" not in capsys.readouterr().err
    other = grid_sweep(grid={"facility.supply_temp_c": [35]})
    table = twin.sweep(other, client=client, output=out)
    err = capsys.readouterr().err
    assert f"{out} holds 2 runs of another sweep, none of them in this one" in err, err
    assert len(table) == 1 and (out.parent / "g.parquet.parts").is_dir()


def test_a_failing_run_is_a_row_with_its_error(client, tmp_path):
    """A value out of range and a run that stops at a model limit are rows with status
    failed and their error; the others run. Catches: one bad run failing the sweep,
    failures recorded as ok, early ends passed off as complete."""
    d = dict(base=str(REFERENCE), duration_s=20)
    d["list"] = [{"facility.supply_temp_c": 30}, {"facility.supply_temp_c": 75},
                 {"overrides.\"rack01/tray99/gpu0\".r_tim_k_per_w": 0.01}]
    df = twin.sweep(d, client=client, output=tmp_path / "f.parquet")
    assert list(df["status"]) == ["ok", "failed", "failed"]
    assert "facility.supply_temp_c" in df["error"][1] and "75 degC outside" in df["error"][1]
    assert "rack01/tray99/gpu0" in df["error"][2]
    assert np.isfinite(df["gpu_junction_margin_k"][0])
    # a later run of the same sweep does not repeat a failure unless asked
    assert twin.sweep(d, client=client, output=tmp_path / "f.parquet").attrs["executed"] == 0
    assert twin.sweep(d, client=client, output=tmp_path / "f.parquet", retry_failed=True).attrs["executed"] == 2


def test_a_run_that_reaches_a_model_limit_is_failed_with_its_margins(client):
    """10 L/min through the reference rack boils: the row keeps its margins, says why."""
    d = dict(base=str(REFERENCE), duration_s=300, grid={"controls.flow_setpoint_lpm": [10.0]},
             set={"facility.supply_temp_c": 45})
    row = twin.sweep(d, client=client).iloc[0]
    assert row["status"] == "failed" and row["error"].startswith("run ended early"), row["error"]
    assert "boil" in row["error"] and row["coolant_temp_max_c"] > 90


def test_collected_names_that_do_not_exist_fail_the_run_with_near_matches(client):
    d = grid_sweep(grid={"facility.supply_temp_c": [30]},
                   collect=dict(margins=["gpu_junction_margin"], channels={"rack/return_tmp": "max"}))
    row = twin.sweep(d, client=client).iloc[0]
    assert row["status"] == "failed" and "gpu_junction_margin_k" in row["error"]
    d["collect"]["margins"] = ["gpu_junction_margin_k"]
    row = twin.sweep(d, client=client).iloc[0]
    assert row["status"] == "failed" and "'rack/return_temp'" in row["error"]


def test_spread_replicates_draw_different_racks_equal_to_direct_runs(client):
    """Catches: the run seed not reaching the scenario's [[spread]] (every replicate the
    same rack), or reaching it differently from a direct run with those overrides."""
    draw = dict(instances="rack01/tray*/gpu*", parameter="r_tim_k_per_w", distribution="lognormal",
                relative_spread=0.3)
    d = dict(base=str(REFERENCE), duration_s=20, spread=dict(replicates=2, seed=1, draw=[draw]),
             collect=dict(margins=["gpu_junction_max_c"]))
    df = twin.sweep(d, client=client)
    assert df["gpu_junction_max_c"][0] != df["gpu_junction_max_c"][1]
    seed = int(df["run_seed"][1])
    r = direct({"workload.seed": seed, "spread": [{**draw, "seed": seed}]})
    assert df["gpu_junction_max_c"][1] == r.margins["gpu_junction_max_c"]


def test_sobol_finds_the_driving_parameter_and_not_the_irrelevant_one(client, tmp_path):
    """The facility supply temperature drives the GPU margin; a margin *limit* changes no
    physics: its total index must be ~0, the temperature's ~1. Catches: indices assigned
    to the wrong parameter, rows fed to SALib out of run order, samples not applied."""
    d = dict(base=str(REFERENCE), duration_s=10,
             sample=dict(method="sobol", n=8, seed=2, bounds={"facility.supply_temp_c": [25.0, 40.0],
                                                              "margins.rack_return_temp_max_c": [50.0, 90.0]}),
             collect=dict(margins=["gpu_junction_margin_k"]))
    out = tmp_path / "s.parquet"
    df = twin.sweep(d, client=client, output=out)
    assert len(df) == 8 * 4 and (df["status"] == "ok").all()
    idx = {r["parameter"]: r for r in df.attrs["sensitivity"]["gpu_junction_margin_k"]}
    assert idx["facility.supply_temp_c"]["ST"] > 0.9 and idx["facility.supply_temp_c"]["S1"] > 0.9
    assert abs(idx["margins.rack_return_temp_max_c"]["ST"]) < 1e-9
    written = json.loads((tmp_path / "s.sensitivity.json").read_text())
    assert written["method"] == "sobol" and "gpu_junction_margin_k" in written["indices"]
    assert "facility.supply_temp_c" in (tmp_path / "s.sensitivity.csv").read_text()
    d["sample"].update(method="morris", n=3)
    m = twin.sweep(d, client=client)
    idx = {r["parameter"]: r for r in m.attrs["sensitivity"]["gpu_junction_margin_k"]}
    assert len(m) == 3 * 3 and idx["margins.rack_return_temp_max_c"]["mu_star"] == 0.0
    assert idx["facility.supply_temp_c"]["mu_star"] > 5.0  # ~1 K of margin per K of water over 15 K


# --------------------------------------------------------------------------- command line


def _cli(*args, cwd=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "twin.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout)


@pytest.mark.parametrize("text, field, words", [
    ('base = "{ref}"\ngrd = {{}}\n', "grd", "did you mean 'grid'"),
    ('base = "{ref}"\n[grid]\n"facility.supply_temp_c" = "30:40"\n', 'grid."facility.supply_temp_c"', "a:b:n"),
    ('base = "{ref}"\n[grid]\n"facility.supply_tmp_c" = [30]\n', 'grid."facility.supply_tmp_c"', "unknown key"),
    ('base = "{ref}"\n[grid]\n"faults.3.value" = [30]\n', 'grid."faults.3.value"', "no list element"),
    ('base = "nope-nothing"\n', "base", "file not found"),
    ('base = "{ref}"\nduration_s = -1\n', "duration_s", "greater than 0"),
    ('base = "{ref}"\n[grid]\n"facility.supply_temp_c" = [30]\n[sample]\nmethod = "sobol"\nn = 4\n'
     '[sample.bounds]\n"controls.flow_setpoint_lpm" = [100, 150]\n', "sample", "give no [grid]"),
    ('base = "{ref}"\n[sample]\nmethod = "random"\nn = 4\n[sample.bounds]\n"controls.flow_setpoint_lpm" = [150, 100]\n',
     "sample.bounds", "must be below"),
    ('base = "{ref}"\n[set]\n"facility.supply_temp_c" = 30\n[grid]\n"facility.supply_temp_c" = [30]\n',
     'grid."facility.supply_temp_c"', "also varied or set in set"),
    ('base = "{ref}"\n[collect]\nchannels = {{"rack/return_temp" = "median"}}\n', 'collect.channels.rack/return_temp',
     "must be one of"),
    # a base no run can complete whatever its values (a rack fragment, not a scenario)
    ('base = "{ref_dir}/racks/nvl72-class.toml"\n[grid]\n"facility.supply_temp_c" = [30.0, 35.0]\n', "base",
     "name: required field is missing"),
    # not a value a run could take (pydantic said "grid.facility.supply_temp_c.list[union[bool,int,float,str]].1.bool")
    ('base = "{ref}"\n[grid]\n"facility.supply_temp_c" = [30.0, nan]\n', 'grid."facility.supply_temp_c".1',
     "finite number"),
    ('base = "{ref}"\n[[list]]\n"facility.supply_temp_c" = inf\n', 'list.0."facility.supply_temp_c"',
     "finite number"),
])
def test_bad_sweep_files_exit_2_naming_the_file_and_field(tmp_path, text, field, words):
    from click.testing import CliRunner

    from twin.cli import cli

    f = tmp_path / "bad.toml"
    f.write_text(text.format(ref=REFERENCE, ref_dir=REFERENCE.parent))
    r = CliRunner().invoke(cli, ["sweep", str(f), "-o", str(tmp_path / "r.parquet")], catch_exceptions=False)
    assert r.exit_code == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {f}: {field}"), lines
    assert words in lines[0]
    assert not (tmp_path / "r.parquet").exists()


def test_an_existing_file_that_is_not_a_results_table_is_refused_and_kept(tmp_path):
    """-o at a file the sweep did not write. Catches: a traceback from pyarrow reading it
    as an earlier table (and, had it read, the file replaced by the results)."""
    from click.testing import CliRunner

    from twin.cli import cli

    f = tmp_path / "s.toml"
    f.write_text(f'base = "{REFERENCE}"\nduration_s = 5.0\n[grid]\n"facility.supply_temp_c" = [30.0]\n')
    out = tmp_path / "notes.parquet"
    out.write_text("my notes\n")
    r = CliRunner().invoke(cli, ["sweep", str(f), "-o", str(out), "--workers", "1"])
    assert r.exit_code == 2, (r.stderr, r.exception)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {out}: -o: "), lines
    assert "not a Parquet" in lines[0]
    assert out.read_text() == "my notes\n" and not (tmp_path / "notes.parquet.parts").exists()
    table = tmp_path / "other.parquet"  # a Parquet table, not a sweep's
    pd.DataFrame({"a": [1.0, 2.0]}).to_parquet(table)
    before = table.read_bytes()
    r = CliRunner().invoke(cli, ["sweep", str(f), "-o", str(table), "--workers", "1"])
    assert r.exit_code == 2, (r.stderr, r.exception)
    assert r.stderr.strip().splitlines() == [f"error: {table}: -o: is a Parquet table but not a sweep's results "
                                             "(no run_hash column); refusing to overwrite it"]
    assert table.read_bytes() == before


def test_workers_with_a_scheduler_is_a_usage_error(tmp_path):
    f = tmp_path / "s.toml"
    f.write_text(f'base = "{REFERENCE}"\n')
    p = _cli("sweep", f, "--scheduler", "tcp://127.0.0.1:1", "--workers", 2)
    assert p.returncode == 2 and "--workers" in p.stderr


def test_help_and_twin_run_do_not_import_dask_pandas_or_salib():
    """Catches: an eager import of the sweep machinery on the common paths."""
    heavy = ("dask", "distributed", "pandas", "SALib", "rich")
    for args in (["--help"], ["run", str(REFERENCE), "--duration", "2"], ["sweep", "/nonexistent.toml"]):
        code = ("import sys\nfrom twin.cli import cli\ntry:\n    cli.main(%r)\nexcept SystemExit:\n    pass\n"
                "print('loaded:', *(m for m in %r if m in sys.modules))" % (args, heavy))
        p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
        assert p.stdout.splitlines()[-1] == "loaded:", (args, p.stdout[-300:], p.stderr[-300:])


def test_the_command_runs_on_real_worker_processes(tmp_path, client):
    """`twin sweep` on a local cluster of 2 worker processes: the table has the rows of
    the in-process sweep (same values), made by two processes other than this one."""
    import pandas as pd

    f = tmp_path / "g.toml"
    f.write_text(f'base = "{REFERENCE}"\nduration_s = 20\n[grid]\n"facility.supply_temp_c" = [30, 40]\n'
                 f'"controls.flow_setpoint_lpm" = "120:150:2"\n[collect]\nmargins = {json.dumps(MARGINS)}\n')
    out = tmp_path / "out" / "g.parquet"
    p = _cli("sweep", f, "-o", out, "--workers", 2)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "runs: 4 of 4 recorded (4 now, 0 earlier); 4 ok, 0 failed" in p.stdout
    assert f"results: {out}" in p.stdout
    assert "sweep: 4/4 runs (100 %)" in p.stderr  # not a terminal: plain progress lines
    df = pd.read_parquet(out)
    pids = {w.rsplit(":", 1)[1] for w in df["worker"]}
    assert len(pids) == 2 and str(os.getpid()) not in pids
    here = twin.sweep(grid_sweep(collect=dict(margins=MARGINS)), client=client)
    assert df[["run", "run_hash", *MARGINS]].equals(here[["run", "run_hash", *MARGINS]])
    p = _cli("sweep", f, "-o", out, "--workers", 2)
    assert "(0 now, 4 earlier)" in p.stdout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_a_separately_started_scheduler_gives_the_local_clusters_results(tmp_path, client):
    """`dask scheduler` and `dask worker` started as their own commands; `twin sweep
    --scheduler` sends the runs there: the same table as the local cluster's."""
    import pandas as pd

    port = _free_port()
    addr = f"tcp://127.0.0.1:{port}"
    dask = Path(sys.executable).parent / "dask"
    procs = [subprocess.Popen([str(dask), "scheduler", "--host", "127.0.0.1", "--port", str(port),
                               "--dashboard-address", ":0"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        time.sleep(2)
        procs.append(subprocess.Popen([str(dask), "worker", addr, "--nworkers", "2", "--nthreads", "1",
                                       "--no-dashboard"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                      cwd=tmp_path))
        from dask.distributed import Client

        with Client(addr, timeout="60s") as c:
            c.wait_for_workers(2, timeout=120)
        f = tmp_path / "g.toml"
        f.write_text(f'base = "{REFERENCE}"\nduration_s = 20\n[grid]\n"facility.supply_temp_c" = [30, 40]\n'
                     f'"controls.flow_setpoint_lpm" = "120:150:2"\n[collect]\nmargins = {json.dumps(MARGINS)}\n')
        out = tmp_path / "remote.parquet"
        p = _cli("sweep", f, "-o", out, "--scheduler", addr)
        assert p.returncode == 0, p.stderr[-2000:]
        df = pd.read_parquet(out)
        here = twin.sweep(grid_sweep(collect=dict(margins=MARGINS)), client=client)
        assert df[["run", "run_hash", *MARGINS]].equals(here[["run", "run_hash", *MARGINS]])
        assert all(str(pr.pid) not in w for w in df["worker"] for pr in procs)
    finally:
        for pr in reversed(procs):
            pr.terminate()
        for pr in procs:
            try:
                pr.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pr.kill()


def test_the_readme_example_and_every_sweep_file_plan_without_error():
    """Catches: a README example or a shipped sweep file that has drifted from the schema."""
    readme = (ROOT / "README.md").read_text().split("## Sweeps", 1)[1]
    block = readme.split("```toml", 1)[1].split("```", 1)[0].strip()
    assert block in (ROOT / "sweeps" / "reference-grid.toml").read_text()
    files = sorted((ROOT / "sweeps").glob("*.toml"))
    assert len(files) >= 2
    for f in files:
        p = spec.load(f)
        assert p.runs, f
    mc = spec.load(ROOT / "sweeps" / "training-day-mc.toml")
    assert len(mc.runs) == 100 and mc.runs[0].overrides["simulation.duration_s"] == 86400.0
    assert len(mc.runs[0].overrides["spread"]) == 2
    assert len(spec.load(ROOT / "sweeps" / "reference-grid.toml").runs) == 15


def test_plate_tables_are_reused_only_for_the_same_coolant_and_geometry():
    """A sweep's worker builds many models of the same plates: the conductance tables are
    kept per process by (coolant, geometry). Catches: a cache that ignores the coolant or
    the geometry (a water run reusing the glycol table), or hands out a table that differs
    from a fresh computation."""
    from twin import build

    pg = twin.load_scenario(REFERENCE)
    water = twin.load_scenario(REFERENCE, {"coolant.name": "water"})
    wide = twin.load_scenario(REFERENCE, {"rack.cold_plates.gpu_plate.channel_width_mm": 0.3})
    build._HA_TABLES.clear()
    fresh = {k: build.build_model(s).ha_table for k, s in (("pg", pg), ("water", water), ("wide", wide))}
    again = {k: build.build_model(s).ha_table for k, s in (("pg", pg), ("water", water), ("wide", wide))}
    for k in fresh:
        assert np.array_equal(fresh[k], again[k]), k
    assert not np.array_equal(fresh["pg"], fresh["water"])
    assert not np.array_equal(fresh["pg"], fresh["wide"])


@pytest.mark.slow
def test_a_killed_sweep_restarted_with_the_same_command_repeats_no_finished_run(tmp_path):
    """`twin sweep` killed (SIGKILL, with its workers) once some runs are on disk, then
    the same command again: the runs finished before the kill keep their rows (same start
    times), only the others run. Catches: results kept only in memory until the end,
    part files half-written by the kill, a restart that starts over."""
    import signal

    import pandas as pd

    f = tmp_path / "k.toml"
    f.write_text(f'base = "{REFERENCE}"\nduration_s = 1200\n[grid]\n"facility.supply_temp_c" = "25:40:16"\n'
                 '[collect]\nmargins = ["gpu_junction_margin_k"]\n')
    out = tmp_path / "k.parquet"
    parts = tmp_path / "k.parquet.parts"
    proc = subprocess.Popen([sys.executable, "-m", "twin.cli", "sweep", str(f), "-o", str(out), "--workers", "1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and len(list(parts.glob("part-*.parquet"))) < 2:
            time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    before = pd.concat([pd.read_parquet(p) for p in parts.glob("part-*.parquet")])
    assert 2 <= len(before) < 16 and not out.exists()
    p = _cli("sweep", f, "-o", out, "--workers", 1)
    assert p.returncode == 0, p.stderr[-2000:]
    assert f"({16 - len(before)} now, {len(before)} earlier)" in p.stdout
    table = pd.read_parquet(out)
    assert list(table["run"]) == list(range(16)) and (table["status"] == "ok").all()
    kept = before.set_index("run_hash")["started_at"]
    assert (table.set_index("run_hash").loc[kept.index, "started_at"] == kept).all()


def test_a_sweep_at_the_top_level_of_an_unguarded_script_says_so_before_starting_dask(tmp_path):
    """A script that calls twin.sweep at its top level, without `if __name__ ==
    "__main__":`, on a local cluster: Dask's spawned workers import the script again and
    start the sweep again. Catches: the ~500 lines of tracebacks that gave ("Nanny failed
    to start", ports in use) instead of one message naming the script, its line and the
    guard, raised before any worker starts."""
    script = tmp_path / "unguarded.py"
    script.write_text("import twin\n"
                      "twin.sweep({'base': 'reference-w32', 'duration_s': 10.0,\n"
                      "            'grid': {'facility.supply_temp_c': [25.0, 30.0]}}, workers=2)\n")
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert r.returncode == 1
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith(f"RuntimeError: {script}:2: a sweep on a local Dask cluster"), r.stderr[-1000:]
    assert 'if __name__ == "__main__":' in last
    assert "Nanny" not in r.stderr and r.stderr.count("Traceback") == 1, r.stderr[-2000:]


def test_a_guarded_call_or_a_call_from_the_guard_is_not_taken_for_an_unguarded_one(tmp_path):
    """The check looks at the script's top-level statement that led to the call (through
    any functions) and whether an `if __name__ == "__main__":` block, either way round,
    holds it. Catches: a guarded script refused (the guard's body is top-level code too),
    or an unguarded call through a function let through."""
    script = tmp_path / "s.py"
    script.write_text("from twin.sweeps.runner import unguarded_script_line\n"
                      "def f():\n"
                      "    return unguarded_script_line(1)\n"
                      "print(f())\n"
                      "if '__main__' == __name__:\n"
                      "    print(f())\n"
                      "if __name__ != '__main__':\n"
                      "    pass\n")
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [f"({str(script)!r}, 4)", "None"]
