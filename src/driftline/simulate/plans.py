"""Builds simulation plans from command-line style options."""

from __future__ import annotations

from pathlib import Path

from driftline.simulate.inject import DRIFT_KINDS, DriftInjection
from driftline.simulate.publisher import SimulationPlan
from driftline.simulate.signals import CsvReplay, SyntheticPump, read_skab_csv


def sensor_ids(n: int) -> list[str]:
    return [f"pump-{i:03d}" for i in range(1, n + 1)]


def make_plan(
    features: list[str],
    *,
    sensors: int,
    replay: list[Path],
    count: int | None,
    rate: float,
    drift: str | None,
    drift_at: float,
    drift_features: list[str],
    drift_magnitude: float,
    malformed_rate: float,
    seed: int,
) -> SimulationPlan:
    if drift is not None and drift not in DRIFT_KINDS:
        raise ValueError(f"unknown drift kind {drift!r}; one of {', '.join(DRIFT_KINDS)}")
    unknown = [f for f in drift_features if f not in features]
    if unknown:
        raise ValueError(f"drift features {unknown} are not measurements of the profile")
    if replay:
        span = sum(_span_seconds(p) + 1.0 for p in replay)

        def rows(i: int):  # type: ignore[no-untyped-def]
            return CsvReplay(replay, features).rows(count)
    else:
        span = (count or 0) * 1.0

        def rows(i: int):  # type: ignore[no-untyped-def]
            return SyntheticPump(seed=seed * 1000 + i).rows(count)

    if count is not None:
        span = min(span, float(count)) if replay else span
    injection = (
        DriftInjection(drift, drift_at, drift_features, drift_magnitude, seed)  # type: ignore[arg-type]
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
