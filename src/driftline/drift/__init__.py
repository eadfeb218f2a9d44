"""Drift detection: per-sensor windows, the reference data, per-feature statistical tests."""
