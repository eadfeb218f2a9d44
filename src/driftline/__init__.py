"""Driftline: on-premise MLOps for IoT sensor fleets."""

__version__ = "0.1.0"
