"""The catalogue: every scenario loads, every generation runs and keeps the invariants,
the listing and the side-by-side comparison work, rack values carry their sources."""
import re
import subprocess
import sys
import tomllib

import numpy as np
import pytest

import twin

from .conftest import ROOT

SCEN = ROOT / "scenarios"
CATALOGUE = sorted((SCEN / "catalogue").glob("*.toml"))
RUNNABLE = sorted(p for p in SCEN.rglob("*.toml") if "name" in tomllib.loads(p.read_text()))
RACKS = sorted((SCEN / "racks").glob("*.toml"))
STEADY_RTOL = 0.005


@pytest.mark.parametrize("path", RUNNABLE, ids=lambda p: str(p.relative_to(SCEN)))
def test_every_scenario_loads(path):
    s = twin.load_scenario(path)
    assert s.name and s.description


@pytest.mark.parametrize("path", CATALOGUE, ids=lambda p: p.stem)
def test_catalogue_entry_runs_and_keeps_the_invariants(path):
    r = twin.simulate(twin.load_scenario(path, {"simulation.duration_s": 5.0}))
    tel = r.telemetry()
    liquid = tel["rack/liquid_heat"][-1]
    assert tel["cdu/heat"][-1] == pytest.approx(liquid, rel=STEADY_RTOL)
    assert liquid == pytest.approx(tel["rack/it_power"][-1] - tel["rack/air_heat"][-1], rel=1e-9)
    st, m = r.final_state, r.model
    assert np.all(st.chip_x[:, 0] > st.chip_x[:, 1]) and np.all(st.chip_x[:, 1] > st.chip_x[:, 2])
    for e in np.unique(m.chip_path_edge):
        tf = [st.chip_x[m.cell_chip[c], 2] for c in range(m.edge_cell_ptr[e], m.edge_cell_ptr[e + 1])]
        assert np.all(np.diff(tf) > 0)
    assert r.margins["gpu_junction_margin_k"] > 0  # each generation holds at W32


def test_generations_are_ordered_by_power():
    it = {}
    for path in CATALOGUE:
        tel = twin.simulate(twin.load_scenario(path, {"simulation.duration_s": 2.0})).telemetry()
        it[path.stem] = tel["rack/it_power"][-1] / 1e3
    assert it["h100-hgx-liquid"] < it["nvl72-class"] < it["gb300-nvl72-class"] < it["next-gen-220kw-class"]
    assert 110 <= it["nvl72-class"] <= 130  # GB200 NVL72 ~120 kW
    assert 130 <= it["gb300-nvl72-class"] <= 145  # GB300 NVL72 132-142 kW nominal
    assert 200 <= it["next-gen-220kw-class"] <= 250  # the 210-220 kW class its rack file describes


@pytest.mark.parametrize("path", RACKS, ids=lambda p: p.stem)
def test_rack_files_cite_their_numbers(path):
    text = path.read_text()
    data = tomllib.loads(text)
    assert data["rack"].get("source"), "rack.source names the public basis"
    for line in text.splitlines():
        if re.match(r"\s*tdp_w\s*=", line):
            assert re.search(r"#.*(\[|ASSUMPTION)", line), f"{path.name}: uncited {line.strip()}"
    assert "ASSUMPTION" in text  # what is not public is marked


def test_scenarios_and_compare_commands():
    out = subprocess.run([sys.executable, "-m", "twin.cli", "scenarios", str(SCEN)], capture_output=True, text=True,
                         cwd=ROOT, timeout=300)
    assert out.returncode == 0
    listed = [line.split()[0] for line in out.stdout.splitlines()]
    assert len(listed) == len(RUNNABLE)
    assert "faults/cdu-trip.toml" in listed and "catalogue/gb300-nvl72-class.toml" in listed
    cmp = subprocess.run([sys.executable, "-m", "twin.cli", "compare", *map(str, CATALOGUE[:2])],
                         capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert cmp.returncode == 0, cmp.stderr
    for row in ("flow per kW", "rack dP", "GPU margin at W32", "GPU margin at W45"):
        assert row in cmp.stdout
