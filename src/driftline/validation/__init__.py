"""Validating readings: strict JSON, parsing, the pandera schema and its vectorised screen."""
