"""``driftline labels ...`` and ``driftline labeler``."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Annotated

import typer

from driftline.core.settings import Settings

labels_app = typer.Typer(help="Operators' labels through Label Studio (see docs/labels.md).")
log = logging.getLogger("driftline.labels")


def _require_label_studio(settings: Settings) -> tuple[str, str]:
    if not settings.label_studio_url or settings.label_studio_token is None:
        typer.echo(
            "driftline: DRIFTLINE_LABEL_STUDIO_URL and DRIFTLINE_LABEL_STUDIO_TOKEN must be set",
            err=True,
        )
        raise typer.Exit(2)
    return settings.label_studio_url, settings.label_studio_token.get_secret_value()


async def sync_once(settings: Settings, idle_seconds: float = 2.0) -> dict[str, object]:
    """Read the predictions and retrain requests not yet taken (the labeler's consumer group),
    and the valid readings to score with the champion (``labels_score_streamed``), close open
    episodes, then push tasks, pull annotations, publish labels and score."""
    from aiokafka import TopicPartition

    from driftline.core.topics import Topics
    from driftline.labels.client import LabelStudioClient
    from driftline.labels.intake import (
        LabelIntake,
        candidate_config,
        labelled_scores,
        subscribed,
    )
    from driftline.labels.store import LabelStore, create_label_tables
    from driftline.labels.sync import LabelSync
    from driftline.labels.sync_pass import run_pass
    from driftline.store.raw_store import RawStore
    from driftline.streaming.dead_letters import dead_letter
    from driftline.streaming.kafka import ensure_topics, make_consumer, make_producer, publish_all
    from driftline.streaming.messages import Message

    url, token = _require_label_studio(settings)
    topics = Topics(settings.topic_prefix)
    raw = RawStore.from_url(settings.resolved_database_url)
    raw.create_tables()
    create_label_tables(raw.engine)
    store = LabelStore(raw.engine)
    await ensure_topics(settings, topics.all())
    watcher = streamed = None
    if settings.labels_score_streamed:
        from driftline.labels.streamed import watched_scorer

        streamed, watcher = await asyncio.to_thread(watched_scorer, settings)
    intake = LabelIntake(
        store, topics, candidate_config(settings), labelled_scores(store, settings), streamed
    )
    wanted = subscribed(topics, settings.labels_score_streamed)
    consumer = make_consumer(settings, settings.group_id("labeler"), wanted)
    producer = make_producer(settings)
    taken = 0
    read_to: dict[TopicPartition, int] = {}
    await consumer.start()
    await producer.start()
    try:
        while True:
            polled = await consumer.getmany(timeout_ms=int(idle_seconds * 1000), max_records=5000)
            batch = [
                Message(r.topic, r.partition, r.offset, r.key, r.value, r.timestamp)
                for records in polled.values()
                for r in records
            ]
            if not batch:
                break
            rejected = await asyncio.to_thread(intake.take, batch, False)
            letters = [
                (topics.dead_letter, r.message.key, dead_letter(r.message, "labeler", [r.reason]))
                for r in rejected
            ]
            await publish_all(producer, [(t, k, d.to_bytes()) for t, k, d in letters])
            taken += len(batch)
            await consumer.commit(intake.commit_offsets(batch))
            read_to.update({TopicPartition(m.topic, m.partition): m.offset + 1 for m in batch})
        # The pass ends: open episodes close here and are stored, so all that was read is done.
        await asyncio.to_thread(intake.take, [], True)
        if read_to:
            await consumer.commit(read_to)
        with LabelStudioClient(url, token) as client:
            sync = LabelSync.from_settings(client, store, settings)
            result = await run_pass(sync, producer, topics, settings.labels_performance_window)
    finally:
        await consumer.stop()
        await producer.stop()
        if watcher is not None:
            await asyncio.to_thread(watcher.stop)
        raw.engine.dispose()
    return {
        "messages_taken": taken,
        "tasks_created": result.tasks_created,
        "labels_new": result.labels_new,
        "labels_published": result.labels_published,
        "scores": {
            v: {"readings": s.readings, "precision": s.precision, "recall": s.recall, "f1": s.f1}
            for v, s in result.scores.items()
        },
        "failures": result.failures,
    }


@labels_app.command("sync")
def sync_command(
    idle: Annotated[
        float, typer.Option(help="Seconds without a new message that end the read.")
    ] = 2.0,
) -> None:
    """One label sync pass: new predictions and retrain requests become Label Studio tasks,
    annotations come back as labels (the labels table and topic), and the labelled scores are
    updated. Running it twice changes nothing. Exit 1 if a part failed (it is retried next time).
    """
    from driftline.cli.common import command_settings

    summary = asyncio.run(sync_once(command_settings(), idle))
    typer.echo(json.dumps(summary, indent=2))
    if summary["failures"]:
        raise typer.Exit(1)
