"""Numba kernels: arrays and scalars in, arrays out; no scenario objects, no libraries."""
