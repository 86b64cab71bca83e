"""The kernels' disk cache is dropped when any kernel source changes."""


def test_a_change_to_any_kernel_file_drops_every_cached_kernel(tmp_path):
    """Numba checks only a cached function's own file; twin.kernels drops the package's
    cache when any kernel source changes (thermal.advance inlines the workload step)."""
    from twin.kernels import _drop_stale_cache

    (tmp_path / "thermal.py").write_text("x = 1\n")
    (tmp_path / "workload.py").write_text("y = 1\n")
    cache = tmp_path / "__pycache__"
    _drop_stale_cache(tmp_path)  # first import: stamps the sources
    cached = cache / "thermal.advance-10.py311.nbi"
    cached.write_text("compiled")
    _drop_stale_cache(tmp_path)  # nothing changed: the cache stays
    assert cached.exists()
    (tmp_path / "workload.py").write_text("y = 2\n")  # only the inlined file changes
    _drop_stale_cache(tmp_path)
    assert not cached.exists()
