"""Promote step: a challenger replaces the champion only if it scores better on the same
recent data. Every decision is recorded in the raw store's promotion_decisions table; a
promotion is imported into BentoML and announced on the model_promotions topic."""

from __future__ import annotations

import asyncio
import logging
import tempfile
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict

from driftline.core.settings import Settings
from driftline.drift.baselines import baselines_beside
from driftline.training import modeling, registry
from driftline.training.scoring import PromotionMetric, labelled, promotion_score

log = logging.getLogger(__name__)


class PromotionResult(BaseModel):
    model_config = ConfigDict(frozen=True)
    model_name: str
    challenger_version: str
    champion_version: str | None
    metric: str
    challenger_score: float | None
    champion_score: float | None
    rows_scored: int
    promoted: bool
    reason: str
    reference_uri: str | None = None
    bento_tag: str | None = None
    request_id: str | None = None

    def summary(self) -> str:
        return self.reason


def decide(
    metric: str,
    challenger: str,
    challenger_score: float | None,
    champion: str | None,
    champion_score: float | None,
    min_gain: float,
) -> tuple[bool, str]:
    """Whether the challenger wins, and why (pure: the rule in one place)."""
    if champion is None:
        return True, f"no champion yet: version {challenger} becomes the first"
    if champion == challenger:
        return False, f"version {challenger} is the champion already"
    if challenger_score is None or champion_score is None:
        return False, "no labelled readings in the window to compare challenger and champion on"
    line = f"{champion_score:.4f} + min gain {min_gain:.4f}"
    if challenger_score > champion_score + min_gain:
        return True, (
            f"challenger {metric} {challenger_score:.4f} beats champion version {champion}'s {line}"
        )
    return False, (
        f"challenger {metric} {challenger_score:.4f} does not beat champion version "
        f"{champion}'s {line}"
    )


def _score_versions(
    settings: Settings,
    versions: list[str],
    start: datetime | None,
    end: datetime | None,
) -> tuple[dict[str, float | None], int]:
    """Each version's promotion score on the same labelled recent rows (None: no such rows)."""
    from driftline.training.evaluate import load_version, recent_data, version_scores

    frame, features = recent_data(settings, start, end)
    rows = labelled(frame)
    if rows.empty:
        return {v: None for v in versions}, 0
    truth = modeling.labels(rows)
    metric: PromotionMetric = settings.promotion_metric
    out: dict[str, float | None] = {}
    known = frame["label"].notna().to_numpy()
    for version in versions:
        model = load_version(settings, settings.model_name, version)
        # Scored over all recent rows (each sensor's history), compared on the labelled ones.
        scores = version_scores(model, frame, features, settings.baseline_readings)
        out[version] = promotion_score(
            metric, truth, scores[known], settings.promotion_min_precision
        )
    return out, len(rows)


def import_to_bentoml(settings: Settings, model_name: str, version: str, run_id: str) -> str:
    """Copy the registered version into the BentoML model store; returns its bento tag."""
    modeling.use_bentoml_home(settings)
    import bentoml

    from driftline.anomaly.registered import download_registered

    with tempfile.TemporaryDirectory() as tmp:
        local = download_registered(settings.resolved_mlflow_uri, model_name, version, tmp)
        model = bentoml.mlflow.import_model(
            model_name,
            str(local),
            labels={"mlflow_model": model_name, "mlflow_version": version, "mlflow_run": run_id},
        )
    return str(model.tag)


async def _publish(settings: Settings, key: str, value: bytes) -> None:
    from driftline.core.topics import Topics
    from driftline.streaming.kafka import ensure_topics, make_producer, publish_all

    topic = Topics(settings.topic_prefix).model_promotions
    await ensure_topics(settings, [topic])
    producer = make_producer(settings)
    await producer.start()
    try:
        await publish_all(producer, [(topic, key.encode(), value)])
    finally:
        await producer.stop()


def _record(settings: Settings, result: PromotionResult) -> None:
    from driftline.store.raw_store import RawStore, naive_utc
    from driftline.store.tables import promotion_decisions

    store = RawStore.from_url(settings.resolved_database_url)
    try:
        store.create_tables()
        # The decision's fields the table has a column of (each under the same name).
        recorded = result.model_dump(include=set(promotion_decisions.columns.keys()))
        with store.engine.begin() as conn:
            conn.execute(
                promotion_decisions.insert().values(
                    decided_at=naive_utc(datetime.now(UTC)), **recorded
                )
            )
    finally:
        store.engine.dispose()


def _restore_champion(settings: Settings, champion: str | None) -> None:
    client = modeling.mlflow_client(settings)
    if champion is None:
        client.delete_registered_model_alias(settings.model_name, registry.CHAMPION)
    else:
        client.set_registered_model_alias(settings.model_name, registry.CHAMPION, champion)


def promote(
    settings: Settings,
    model_name: str,
    model_version: str,
    start: datetime | None = None,
    end: datetime | None = None,
    request_id: str | None = None,
) -> PromotionResult:
    """Compare challenger ``model_version`` with the champion on [start, end]; promote a winner."""
    if model_name != settings.model_name:
        settings = settings.model_copy(update={"model_name": model_name})
    challenger = str(model_version)
    client = modeling.mlflow_client(settings)
    champion = registry.champion_version(client, model_name)
    versions = [challenger] if champion in (None, challenger) else [challenger, champion]
    scores, rows = _score_versions(settings, versions, start, end)
    won, reason = decide(
        settings.promotion_metric,
        challenger,
        scores.get(challenger),
        champion,
        scores.get(champion) if champion else None,
        settings.promotion_min_gain,
    )
    result = PromotionResult(
        model_name=model_name,
        challenger_version=challenger,
        champion_version=champion,
        metric=settings.promotion_metric,
        challenger_score=scores.get(challenger),
        champion_score=scores.get(champion) if champion else None,
        rows_scored=rows,
        promoted=won,
        reason=reason,
        request_id=request_id,
    )
    if won:
        result = _carry_out(settings, result, champion)
    _record(settings, result)
    log.info("promotion of %s v%s: %s", model_name, challenger, reason)
    return result


def install_first_champion(settings: Settings, model_version: str) -> PromotionResult:
    """Make ``model_version`` the champion of a registry that has none (a bootstrap): nothing
    to compare with, so no scoring; the rest as any promotion (reference, BentoML, event)."""
    client = modeling.mlflow_client(settings)
    champion = registry.champion_version(client, settings.model_name)
    if champion is not None:
        raise ValueError(f"{settings.model_name} has a champion already (version {champion})")
    result = PromotionResult(
        model_name=settings.model_name,
        challenger_version=str(model_version),
        champion_version=None,
        metric=settings.promotion_metric,
        challenger_score=None,
        champion_score=None,
        rows_scored=0,
        promoted=True,
        reason="first champion (bootstrap): there was none to compare with",
    )
    result = _carry_out(settings, result, None)
    _record(settings, result)
    return result


def _carry_out(
    settings: Settings, result: PromotionResult, champion: str | None
) -> PromotionResult:
    """Reference, BentoML import, aliases, event; on failure the old champion is restored."""
    from driftline.core.records import ModelPromoted

    name, version = result.model_name, result.challenger_version
    client = modeling.mlflow_client(settings)
    run_id = registry.run_id_of(client, name, version)
    reference = registry.download_reference(
        client, name, version, settings.data_dir.resolve() / "references" / f"{version}.parquet"
    )
    # Before the event: the drift service reads them when it loads the reference.
    registry.download_reference_baselines(client, name, version, baselines_beside(reference))
    bento_tag = import_to_bentoml(settings, name, version, run_id)
    registry.set_champion(client, name, version)
    event = ModelPromoted(
        model_name=name,
        model_version=version,
        reference_uri=str(reference),
        run_id=run_id,
        request_id=result.request_id,
    )
    try:
        asyncio.run(_publish(settings, name, event.to_bytes()))
    except Exception as exc:
        _restore_champion(settings, champion)
        failed = result.model_copy(
            update={"promoted": False, "reason": f"{result.reason}; promotion failed: {exc}"}
        )
        _record(settings, failed)
        raise
    return result.model_copy(update={"reference_uri": str(reference), "bento_tag": bento_tag})
