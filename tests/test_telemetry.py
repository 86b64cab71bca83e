"""The telemetry format: streamed writes, and a reader that gives the channels back."""
import h5py
import numpy as np

import twin
from twin.telemetry import REQUIRED_CHANNELS, read_telemetry

from .conftest import REFERENCE


def test_reader_returns_what_the_writer_wrote(tmp_path):
    s = twin.load_scenario(REFERENCE, {"simulation.duration_s": 25.0})
    out = tmp_path / "t.h5"
    r = twin.simulate(s, output=out)
    tel = read_telemetry(out)
    mem = r.telemetry()
    assert set(tel.channels) == set(mem.channels) >= set(REQUIRED_CHANNELS)
    for name in tel.channels:
        np.testing.assert_array_equal(tel[name], mem[name])
        assert tel.units[name] == mem.units[name]
    np.testing.assert_allclose(tel.time, np.arange(1, 26) * 1.0)
    assert tel.labels["gpu/labels"][0] == "rack01/tray00/gpu0"
    assert tel.attrs["software_version"] == twin.__version__


def test_in_memory_result_saves_to_hdf5(tmp_path):
    r = twin.simulate(twin.load_scenario(REFERENCE, {"simulation.duration_s": 5.0}))
    out = tmp_path / "saved.h5"
    r.to_hdf5(out)
    tel = read_telemetry(out)
    np.testing.assert_array_equal(tel["gpu/junction_temp"], r.telemetry()["gpu/junction_temp"])
    assert tel.attrs["scenario"] == r.scenario.to_toml()


def test_long_runs_stream_in_chunks(tmp_path):
    """Rows arrive block by block (hydraulic update interval), the file is chunked."""
    s = twin.load_scenario(REFERENCE, {"simulation.duration_s": 95.0, "simulation.hydraulic_update_s": 10.0})
    out = tmp_path / "c.h5"
    twin.simulate(s, output=out)
    with h5py.File(out, "r") as f:
        assert f["gpu/junction_temp"].chunks is not None
        assert f["gpu/junction_temp"].maxshape[0] is None
        assert f["time"].shape == (95,)


def test_writer_keeps_every_row_whatever_the_piece_sizes(tmp_path):
    """Rows handed over in pieces of any size (1 row, part chunks, more than the writer's
    buffer) reach the file whole, in order, converted to each dataset's type; the file
    is written in whole chunks until the last, part chunk."""
    from twin.telemetry import BATCH_ROWS, CHUNK_ROWS, TelemetryWriter

    channels = {"a/x": ("K", None, "f8"), "a/y": ("W", 3, "f4")}
    out = tmp_path / "w.h5"
    w = TelemetryWriter(out, {"schema": "test"}, channels)
    rng = np.random.default_rng(1)
    sizes = [1, 600, CHUNK_ROWS - 1, 2 * BATCH_ROWS + 7, 0, 3, BATCH_ROWS]
    n = sum(sizes)
    t = np.arange(n, dtype=float)
    x = rng.standard_normal(n)
    y = rng.standard_normal((n, 3))
    a = 0
    for k in sizes:
        w.append(t[a:a + k], {"a/x": x[a:a + k], "a/y": y[a:a + k]})
        a += k
        # between appends only whole chunks are in the file
        assert w.rows % CHUNK_ROWS == 0 and w.rows + w.n == a
    w.finish()
    with h5py.File(out, "r") as f:
        np.testing.assert_array_equal(f["time"][()], t)
        np.testing.assert_array_equal(f["a/x"][()], x)
        assert f["a/y"].dtype == np.float32
        np.testing.assert_array_equal(f["a/y"][()], y.astype(np.float32))
