"""The names of every metric series Driftline's code exports, for checking dashboards and
alert rules against (a query naming anything else would silently show nothing)."""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry

# What BentoML's own /metrics exports per API (see serving_metrics); the serving
# integration test checks these names against a running `bentoml serve`.
BENTOML_METRICS: frozenset[str] = frozenset(
    {
        "bentoml_service_request_duration_seconds_bucket",
        "bentoml_service_request_duration_seconds_sum",
        "bentoml_service_request_duration_seconds_count",
        "bentoml_service_request_total",
        "bentoml_service_request_in_progress",
        "bentoml_service_adaptive_batch_size_bucket",
        "bentoml_service_adaptive_batch_size_sum",
        "bentoml_service_adaptive_batch_size_count",
    }
)

# What Prometheus itself adds to every scrape target.
PROMETHEUS_SERIES: frozenset[str] = frozenset({"up", "scrape_duration_seconds"})


def sample_names(registry: CollectorRegistry) -> set[str]:
    """Series names of ``registry``'s metrics, suffixes included (_total, _bucket, ...)."""
    names: set[str] = set()
    for family in registry.collect():
        names.update(sample.name for sample in family.samples)
        # A labelled metric with no child yet has no samples: name its series from its type.
        if family.type == "counter":
            names.add(f"{family.name}_total")
        elif family.type == "histogram":
            names.update(f"{family.name}{s}" for s in ("_bucket", "_sum", "_count"))
        else:
            names.add(family.name)
    return names


def driftline_metric_names() -> set[str]:
    """Every series of ``driftline.metrics`` and ``driftline.serving_metrics``."""
    import driftline.core.metrics  # noqa: F401  (registers on import)
    import driftline.serving.metrics  # noqa: F401

    return {n for n in sample_names(REGISTRY) if n.startswith("driftline_")}


def exported_metric_names() -> set[str]:
    """All series a dashboard or rule may name: Driftline's, BentoML's and Prometheus's own."""
    return driftline_metric_names() | BENTOML_METRICS | PROMETHEUS_SERIES
