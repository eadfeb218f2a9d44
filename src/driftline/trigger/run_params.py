"""A retraining run's parameters from its request, the same for every launcher."""

from __future__ import annotations

from datetime import datetime, timedelta

from driftline.core.records import RetrainRequest
from driftline.core.settings import Settings
from driftline.training.local_run import PipelineParams


def episode_split(request: RetrainRequest) -> datetime:
    """Where a drift episode is cut: the challenger trains on everything up to the middle of
    the episode and is compared with the champion on the rest, which neither has seen."""
    return request.data_start + (request.data_end - request.data_start) / 2


def pipeline_params(request: RetrainRequest, settings: Settings) -> PipelineParams:
    """The pipeline's parameters for ``request``, the same for every launcher: train up to the
    episode's middle (from ``retrain_lookback_seconds`` before it when set), evaluate on the
    rest, skip ``retrain_skip_steps``."""
    split = episode_split(request)
    start = None
    if settings.retrain_lookback_seconds is not None:
        start = request.data_start - timedelta(seconds=settings.retrain_lookback_seconds)
    skip = frozenset(s.strip() for s in settings.retrain_skip_steps.split(",") if s.strip())
    return PipelineParams(
        tag=f"drift-{request.request_id[:12]}",
        data_start=start,
        data_end=split,
        eval_start=split,
        eval_end=request.data_end,
        tune_count=settings.tune_samples,
        request_id=request.request_id,
        skip=skip,
    )
