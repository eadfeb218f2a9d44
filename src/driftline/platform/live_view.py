"""The terminal view of a running platform (rich), and its one-line headless form."""

from __future__ import annotations

import time

from rich.columns import Columns
from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table

from driftline.platform.monitor import PlatformState
from driftline.platform.supervisor import Supervisor
from driftline.simulate.publisher import SimulationReport


def render(
    state: PlatformState,
    sim: SimulationReport | None,
    supervisor: Supervisor,
    elapsed: float,
    serving_url: str | None = None,
    waiting: str | None = None,
) -> Panel:
    flow = Table.grid(padding=(0, 2))
    flow.add_column(style="bold")
    flow.add_column(justify="right")
    flow.add_column(style="dim")
    if sim is not None:
        flow.add_row(
            "readings sent", f"{sim.sent:,}", f"{sim.sent / max(sim.elapsed, 1e-9):,.0f}/s"
        )
    flow.add_row("stored in raw store", f"{state.stored:,}", "")
    flow.add_row("valid", f"{state.valid:,}", f"{state.valid_rate():,.0f}/s")
    top = ", ".join(f"{k} {v}" for k, v in state.dead_by_check.most_common(4))
    flow.add_row("dead-lettered", f"{state.dead_letters:,}", top)
    flow.add_row("drift windows", f"{state.drift_windows:,}", f"{state.drifted_windows:,} drifted")
    flow.add_row(
        "trigger decisions",
        f"{state.decisions_held + state.decisions_fired:,}",
        f"{state.decisions_held:,} held, {state.decisions_fired:,} fired",
    )
    flow.add_row("retrain requests", f"{len(state.retrain_requests):,}", "")
    flow.add_row("pipeline", "", _steps(state) or "not run yet")
    promoted = [str(p.get("model_version")) for p in state.promotions]
    flow.add_row("promoted versions", ", ".join(promoted) or "-", "")
    flow.add_row("serving answers with", state.serving_version or "-", serving_url or "")

    sensors = Table(title="drift share, latest window", expand=False)
    sensors.add_column("sensor")
    sensors.add_column("share", justify="right")
    for sensor, share in sorted(state.drift_share.items())[:12]:
        style = "red" if share >= 0.375 else "green"
        sensors.add_row(sensor, f"[{style}]{share:.2f}[/]")

    procs = Table(title="services", expand=False)
    procs.add_column("service")
    procs.add_column("state")
    procs.add_column("restarts", justify="right")
    for child in supervisor.children:
        mark = child.state if child.state in ("up", "done") else f"[red]{child.state}[/]"
        procs.add_row(child.name, mark, str(child.restarts))

    parts: list[RenderableType] = [flow, Columns([sensors, procs], padding=(0, 4))]
    if waiting:
        parts.append(f"waiting for {waiting}")
    if state.last_reason:
        parts.append(f"last decision: {state.last_reason}")
    return Panel(Group(*parts), title=f"Driftline  {elapsed:5.0f}s", border_style="blue")


def _steps(state: PlatformState) -> str:
    """Each pipeline step with its status and duration (running ones: seconds so far)."""
    now = time.monotonic()
    out = []
    for step, status in state.pipeline_steps.items():
        name = step.removesuffix("-step")
        if step in state.step_seconds:
            out.append(f"{name} {status} {state.step_seconds[step]:.1f}s")
        elif status == "running" and step in state.step_started:
            out.append(f"{name} running {now - state.step_started[step]:.0f}s")
        else:
            out.append(f"{name} {status}")
    return ", ".join(out)


def one_line(state: PlatformState, sim: SimulationReport | None, elapsed: float) -> str:
    sent = f"sent={sim.sent} " if sim else ""
    return (
        f"[{elapsed:5.0f}s] {sent}stored={state.stored} valid={state.valid} "
        f"dead={state.dead_letters} windows={state.drift_windows} "
        f"drifted={state.drifted_windows} held={state.decisions_held} "
        f"fired={state.decisions_fired} requests={len(state.retrain_requests)} "
        f"promoted={[p.get('model_version') for p in state.promotions]} "
        f"serving={state.serving_version} "
        f"pipeline={','.join(f'{k}:{v}' for k, v in state.pipeline_steps.items())}"
    )
