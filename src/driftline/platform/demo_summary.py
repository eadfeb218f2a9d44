"""The demo's summary: what happened, in order, with the times from the drift onset; printed
at the end (also after a stop or Ctrl-C, with what happened so far) and written as JSON."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.engine import make_url

from driftline.core.logs import redact
from driftline.core.settings import Settings
from driftline.platform.monitor import PlatformState
from driftline.simulate.publisher import SimulationReport


def retrained(state: PlatformState, first_champion: str | None) -> list[dict[str, object]]:
    """Promotions of models other than the champion the demo started with."""
    return [p for p in state.promotions if str(p.get("model_version")) != first_champion]


def windows_after_promotion(promoted: dict[str, object], state: PlatformState) -> tuple[int, int]:
    """(drifted, all) drift windows that started after the retrained model ``promoted``."""
    return state.drifted_since(datetime.fromisoformat(str(promoted["promoted_at"])))


def serving_retrained(state: PlatformState, first_champion: str | None) -> bool:
    """Serving answers with a model promoted during the demo."""
    versions = [str(p.get("model_version")) for p in retrained(state, first_champion)]
    return state.serving_version is not None and state.serving_version in versions


def demo_summary(
    state: PlatformState,
    sim: SimulationReport | None,
    settings: Settings,
    first_champion: str | None = None,
    outcome: str = "",
    services_down: list[str] | None = None,
) -> dict[str, object]:
    """What happened, in order, with the times from drift onset; also written as JSON."""
    onset = sim.first_drift_ts if sim is not None else None
    out: dict[str, object] = {
        "outcome": outcome,
        "services_down_for_good": services_down or [],
        "run_dir": str(settings.data_dir),
        "readings_sent": sim.sent if sim else 0,
        "malformed_sent": sum(sim.malformed.values()) if sim else 0,
        "stored": state.stored,
        "valid": state.valid,
        "dead_lettered": state.dead_letters,
        "drift_windows": state.drift_windows,
        "drifted_windows": state.drifted_windows,
        "trigger_fired": state.decisions_fired,
        "trigger_held": state.decisions_held,
        "drift_onset": onset,
        "first_drifted_window_at": state.first_drifted_at,
        "retrain_requests": state.retrain_requests,
        "promotions": state.promotions,
        "pipeline_steps": state.pipeline_steps,
        "pipeline_step_seconds": state.step_seconds,
        "serving_versions_first_seen": state.serving_first_seen,
        "first_champion": first_champion,
        "served_retrained_version": state.serving_version
        if serving_retrained(state, first_champion)
        else None,
    }
    times: dict[str, float] = {}
    if onset is not None:
        if state.first_drifted_at is not None:
            times["detection"] = _secs(onset, state.first_drifted_at)
        if state.retrain_requests:
            fired = datetime.fromisoformat(str(state.retrain_requests[0]["requested_at"]))
            times["trigger"] = _secs(onset, fired)
        new_models = retrained(state, first_champion)
        if new_models:
            promoted = new_models[0]
            times["promotion"] = _secs(onset, datetime.fromisoformat(str(promoted["promoted_at"])))
            seen = state.serving_first_seen.get(str(promoted["model_version"]))
            if seen is not None:
                times["first_prediction_of_new_model"] = _secs(onset, seen)
            drifted, windows = windows_after_promotion(promoted, state)
            out["windows_after_promotion"] = windows
            out["drifted_windows_after_promotion"] = drifted
    out["seconds_from_drift_onset"] = times
    out["where_to_look"] = {
        "mlflow": redact(settings.resolved_mlflow_uri),
        "evidently_reports": str(settings.data_dir / "reports"),
        "data_repo": str(settings.resolved_data_repo),
        "data_tags": [f"drift-{str(r.get('request_id'))[:12]}" for r in state.retrain_requests],
        "database": make_url(settings.resolved_database_url).render_as_string(hide_password=True),
        "logs": str(settings.data_dir / "logs"),
    }
    return out


def print_summary(summary: dict[str, Any]) -> None:
    lines = ["", "Demo summary"]
    if summary.get("outcome"):
        lines.append(f"  outcome: {summary['outcome']}")
    for name in summary.get("services_down_for_good") or []:
        lines.append(f"  DOWN for good: {name}")
    lines.append(
        f"  readings sent: {summary['readings_sent']:,} ({summary['malformed_sent']:,} "
        "malformed on purpose)"
    )
    lines.append(
        f"  stored: {summary['stored']:,}  valid: {summary['valid']:,}  "
        f"dead-lettered: {summary['dead_lettered']:,}"
    )
    lines.append(
        f"  drift windows: {summary['drift_windows']:,}, drifted: {summary['drifted_windows']:,}"
    )
    lines.append(f"  trigger: {summary['trigger_fired']} fired, {summary['trigger_held']} held")
    names = {
        "detection": "drift onset -> first drifted window",
        "trigger": "drift onset -> retraining triggered",
        "promotion": "drift onset -> new model promoted",
        "first_prediction_of_new_model": "drift onset -> first prediction from the new model",
    }
    for key, seconds in summary["seconds_from_drift_onset"].items():
        lines.append(f"  {names[key]}: {seconds:.1f} s")
    for p in summary["promotions"]:
        lines.append(f"  promoted: {p.get('model_name')} version {p.get('model_version')}")
    if "windows_after_promotion" in summary:
        lines.append(
            f"  windows after the promotion: {summary['windows_after_promotion']}, drifted: "
            f"{summary['drifted_windows_after_promotion']}"
        )
    steps = summary.get("pipeline_step_seconds") or {}
    if steps:
        timed = ", ".join(f"{k} {v:.1f} s" for k, v in steps.items())
        lines.append(f"  pipeline steps: {timed}")
    lines.append(f"  serving answers with version: {summary['served_retrained_version']}")
    for what, where in summary["where_to_look"].items():
        lines.append(f"  {what}: {where}")
    print("\n".join(lines))


def _secs(start: datetime, end: datetime) -> float:
    return round((end - start).total_seconds(), 1)
