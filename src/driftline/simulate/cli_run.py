"""``driftline simulate``: build the plan, publish it with a live status line."""

from __future__ import annotations

from rich.console import Console
from rich.status import Status

from driftline.core.profile import load_profile
from driftline.core.settings import Settings
from driftline.core.topics import Topics
from driftline.simulate.plans import make_plan
from driftline.simulate.publisher import (
    SimulationReport,
    publish_simulation,
    simulation_producer,
)
from driftline.streaming.kafka import ensure_topics


async def run_simulation(settings: Settings, **options: object) -> SimulationReport:
    profile = load_profile(settings.profile_path)
    # The CLI's options, each a keyword of make_plan (which checks their values).
    plan = make_plan(profile.features, **options)  # type: ignore[arg-type]
    topics = Topics(settings.topic_prefix)
    await ensure_topics(settings, topics.all())
    producer = simulation_producer(settings, plan)
    await producer.start()
    console = Console(stderr=True)
    status = Status("starting", console=console)

    def progress(r: SimulationReport) -> None:
        rate = r.sent / r.elapsed if r.elapsed > 0 else 0.0
        bad = sum(r.malformed.values())
        status.update(
            f"sent {r.sent:,} readings ({rate:,.0f}/s) from {len(plan.sensors)} sensors; "
            f"{bad:,} malformed; {r.drifted:,} drifted"
        )

    try:
        with status:
            report = await publish_simulation(producer, topics.raw_readings, plan, progress)
    finally:
        await producer.stop()
    console.print(
        f"sent {report.sent:,} readings in {report.elapsed:.1f}s to {topics.raw_readings}; "
        f"malformed: {dict(report.malformed) or 0}; drifted: {report.drifted:,}"
    )
    return report
