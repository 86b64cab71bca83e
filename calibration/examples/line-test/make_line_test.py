"""Synthetic line-test telemetry of an NVL72-class rack with planted faults, and its truth.

Writes (to the folder given, default results/line-test):
- ``line-test.toml``: the scenario the rack was built to, on the test's load staircase;
- ``healthy.h5``: the rack as designed;
- ``faulty.h5``: one GPU with twice its TIM (rack01/tray05/gpu2), one compute tray's
  coupling at half its Cv, four times its loss (rack01/tray22/qd), the rack return
  sensor 1 K high;
- ``other-build.h5``: the faulty GPU only, in a rack built differently from its model
  (direct return, CPUs first on each path, 8 m hoses);
- ``truth.json``: what was planted in each.

Every file is SYNTHETIC (root attribute ``synthetic = true``, the truth in ``truth``):
0.1 K noise and 1/16 K quantisation on temperatures, 1 % on flows
(``twin.calibration.synthetic``). Then::

    twin accept results/line-test/faulty.h5 --scenario results/line-test/line-test.toml \\
        --spec calibration/specs/nvl72-acceptance.toml
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import twin
from twin.calibration import synthetic as syn

ROOT = Path(__file__).resolve().parents[3]
DURATION_S = 600.0  # ASSUMPTION: a 10 min line test, five 2 min load plateaus
PLATEAU_S = 120.0

CASES = {
    "healthy": {},
    "faulty": {"overrides": {"rack01/tray05/gpu2": {"r_tim_k_per_w": 0.008}, "rack01/tray22/qd": {"cv_gpm_per_psi": 0.8}}},
    "other-build": {"rack.manifold.layout": "direct_return", "rack.supply_hose.length_m": 8.0,
                    "rack.return_hose.length_m": 8.0,
                    "rack.tray_types.compute.paths": [["cpu", "gpu", "gpu"], ["cpu", "gpu", "gpu"]],
                    "overrides": {"rack01/tray05/gpu2": {"r_tim_k_per_w": 0.008}}},
}
OFFSETS = {"faulty": {"rack/return_temp": 1.0}}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", nargs="?", default=str(ROOT / "results" / "line-test"))
    out = Path(ap.parse_args(argv).folder)
    out.mkdir(parents=True, exist_ok=True)
    schedule = syn.staircase(DURATION_S, PLATEAU_S)
    scenario = out / "line-test.toml"
    lines = [f'include = ["{ROOT / "scenarios" / "reference-w32.toml"}"]', 'name = "line-test"']
    for e in schedule:
        lines.append("[[workload.schedule]]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in e.items()]
    lines += ["[simulation]", f"duration_s = {DURATION_S}"]
    scenario.write_text("\n".join(lines) + "\n")
    base = twin.load_scenario(scenario)
    truth = {}
    for i, (name, over) in enumerate(CASES.items()):
        syn.make(base, out / f"{name}.h5", overrides=over, sensor_offsets=OFFSETS.get(name), seed=10 + i)
        truth[name] = dict(changes=over, sensor_offsets=OFFSETS.get(name, {}))
    (out / "truth.json").write_text(json.dumps(truth, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
