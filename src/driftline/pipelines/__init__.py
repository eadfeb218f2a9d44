"""Kubeflow Pipelines definitions of Driftline (KFP v2 SDK)."""
