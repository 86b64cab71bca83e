"""The kernels give the same numbers compiled and as plain Python (NUMBA_DISABLE_JIT=1),
so a failure seen in one mode can be debugged in the other."""
import json
import os
import subprocess
import sys

import numpy as np


from .conftest import ROOT

# Same arithmetic in both modes; only the order of floating-point reductions can differ.
MODES_ATOL_K = 1e-9

SCRIPT = """
import json, sys
import twin
from tests.conftest import REFERENCE, single_plate_overrides
over = single_plate_overrides(**{"rack.tray_types.compute.paths": [["gpu", "cpu"]],
                                 "simulation.duration_s": 3.0})
r = twin.simulate(twin.load_scenario(REFERENCE, over))
t = r.telemetry()
json.dump({"tj": t["gpu/junction_temp"][:, 0].astype(float).tolist(),
           "flow": t["tray/flow"][:, 0].astype(float).tolist(),
           "ret": t["rack/return_temp"].tolist()}, sys.stdout)
"""


def _run(disable_jit):
    env = dict(os.environ, NUMBA_DISABLE_JIT="1" if disable_jit else "0", PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, cwd=ROOT,
                         timeout=600)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_compiled_and_python_kernels_agree():
    jit, py = _run(False), _run(True)
    for key in jit:
        np.testing.assert_allclose(jit[key], py[key], rtol=0, atol=MODES_ATOL_K)

