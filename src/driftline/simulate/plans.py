"""Builds simulation plans from command-line style options."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import cast

from driftline.simulate.inject import DRIFT_KINDS, DriftInjection, DriftKind
from driftline.simulate.publisher import SimulationPlan
from driftline.simulate.signals import CsvReplay, Row, SyntheticPump, read_skab_csv


def sensor_ids(n: int) -> list[str]:
    return [f"pump-{i:03d}" for i in range(1, n + 1)]


def make_plan(
    features: list[str],
    *,
    sensors: int,
    replay: Sequence[Path] = (),
    count: int | None = None,
    rate: float = 0.0,
    drift: str | None = None,
    drift_at: float = 0.0,
    drift_features: Sequence[str] = (),
    drift_magnitude: float = 0.0,
    malformed_rate: float = 0.0,
    seed: int = 0,
) -> SimulationPlan:
    """A plan for ``sensors`` pumps: synthetic, or replaying ``replay``; as fast as possible
    unless ``rate`` is given; with an optional drift and a share of malformed messages."""
    if drift is not None and drift not in DRIFT_KINDS:
        raise ValueError(f"unknown drift kind {drift!r}; one of {', '.join(DRIFT_KINDS)}")
    unknown = [f for f in drift_features if f not in features]
    if unknown:
        raise ValueError(f"drift features {unknown} are not measurements of the profile")
    if replay:
        span = sum(_span_seconds(p) + 1.0 for p in replay)

        def rows(i: int) -> Iterator[Row]:
            return CsvReplay(list(replay), features).rows(count)
    else:
        span = (count or 0) * 1.0

        def rows(i: int) -> Iterator[Row]:
            return SyntheticPump(seed=seed * 1000 + i).rows(count)

    if count is not None:
        span = min(span, float(count)) if replay else span
    injection = (
        # A DriftKind: checked against DRIFT_KINDS above.
        DriftInjection(
            cast(DriftKind, drift), drift_at, list(drift_features), drift_magnitude, seed
        )
        if drift
        else None
    )
    return SimulationPlan(
        sensors=sensor_ids(sensors),
        rows=rows,
        features=features,
        rate=rate,
        span_seconds=span,
        drift=injection,
        malformed_rate=malformed_rate,
        seed=seed,
    )


def _span_seconds(path: Path) -> float:
    frame = read_skab_csv(path)
    return float((frame["datetime"].iloc[-1] - frame["datetime"].iloc[0]).total_seconds())
