"""Calibration of the model against measured telemetry, acceptance of built racks, drift.

:mod:`twin.calibration.spec` (what to fit), :mod:`twin.calibration.measured` (the measured
boundary that drives the model), :mod:`twin.calibration.fit` (least squares, statistics).
docs/calibration.md explains the method.
"""
