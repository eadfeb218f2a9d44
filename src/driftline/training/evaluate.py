"""Evaluate step: score a registered model on recent raw data and report drift against its
reference (Evidently HTML plus a Markdown summary)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict

from driftline.core.errors import DriftlineError
from driftline.core.profile import load_profile
from driftline.core.settings import Settings
from driftline.training import modeling, registry
from driftline.training.scoring import classification_metrics, labelled


class EvaluateResult(BaseModel):
    model_config = ConfigDict(frozen=True)
    model_name: str
    model_version: str
    start: datetime | None
    end: datetime | None
    rows: int
    rows_unlabelled: int
    metrics: dict[str, float]
    drift_share: float | None
    html_path: Path
    markdown_path: Path

    def summary(self) -> str:
        return f"v{self.model_version} on recent data: {self.metrics}"


def recent_data(
    settings: Settings, start: datetime | None, end: datetime | None
) -> tuple[pd.DataFrame, list[str]]:
    """Valid readings of [start, end] from the raw store, with the model's features added."""
    from driftline.training.dataset import load_readings
    from driftline.training.features import add_features

    features = load_profile(settings.profile_path).features
    frame, _ = load_readings(settings, start, end, None)
    return add_features(frame, features, settings.feature_window), features


def load_version(settings: Settings, model_name: str, version: str) -> Any:
    """The registered version, any family (``driftline.anomaly.registered.LoadedVersion``)."""
    from driftline.anomaly.registered import load_registered

    modeling.use_mlflow(settings)
    return load_registered(settings.resolved_mlflow_uri, model_name, version)


def version_scores(
    model: Any, frame: pd.DataFrame, features: list[str], fallback_readings: int | None = None
) -> np.ndarray:
    """Alarm probabilities of every row of ``frame`` (readings in time order per sensor, so
    each is scored with its sensor's history); a sensor the model has no baseline of is
    judged against its first ``fallback_readings`` rows here."""
    if frame.empty:
        return np.empty(0)
    return np.asarray(model.frame_probabilities(frame, features, fallback_readings))


def drift_report(reference: pd.DataFrame, current: pd.DataFrame, html: Path) -> float | None:
    """Evidently drift report saved as HTML; returns the share of drifted columns.

    The drift preset alone: the summary preset doubled the step's run time and the HTML's size
    for column statistics the drift tables already show."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    columns = [c for c in reference.columns if c in current.columns]
    definition = DataDefinition(numerical_columns=columns)

    def dataset(frame: pd.DataFrame) -> Any:
        rows = frame[columns].reset_index(drop=True)
        return Dataset.from_pandas(rows, data_definition=definition)

    snapshot = Report([DataDriftPreset()]).run(
        current_data=dataset(current), reference_data=dataset(reference)
    )
    html.parent.mkdir(parents=True, exist_ok=True)
    snapshot.save_html(str(html))
    for metric in snapshot.dict()["metrics"]:
        if str(metric["config"]["type"]).endswith("DriftedColumnsCount"):
            return float(metric["value"]["share"])
    return None


def markdown_summary(result: EvaluateResult) -> str:
    window = f"{result.start or 'beginning'} .. {result.end or 'now'}"
    lines = [
        f"# Evaluation of {result.model_name} version {result.model_version}",
        "",
        f"- data: {window}",
        f"- rows scored: {result.rows} (left out, no label: {result.rows_unlabelled})",
        "- drifted columns: "
        + ("n/a" if result.drift_share is None else f"{result.drift_share:.0%}"),
        f"- full drift report: {result.html_path.name}",
        "",
        "| metric | value |",
        "|---|---|",
        *[f"| {name} | {value:.4f} |" for name, value in result.metrics.items()],
        "",
    ]
    return "\n".join(lines)


def evaluate(
    settings: Settings,
    model_name: str,
    model_version: str,
    start: datetime | None = None,
    end: datetime | None = None,
) -> EvaluateResult:
    model_version = str(model_version)
    frame, features = recent_data(settings, start, end)
    if frame.empty:
        raise DriftlineError(f"no valid readings between {start} and {end} to evaluate on")
    scored = labelled(frame)
    metrics: dict[str, float] = {}
    if not scored.empty:
        model = load_version(settings, model_name, model_version)
        scores = version_scores(model, frame, features, settings.baseline_readings)
        metrics = classification_metrics(
            modeling.labels(scored), scores[frame["label"].notna().to_numpy()]
        )
    client = modeling.mlflow_client(settings)
    reference = registry.load_reference_frame(client, model_name, model_version)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
    stem = f"{re.sub(r'[^A-Za-z0-9_.-]', '_', model_name)}-v{model_version}-{stamp}"
    reports = settings.data_dir / "reports"
    html = reports / f"{stem}.html"
    share = drift_report(reference, frame[features], html)
    result = EvaluateResult(
        model_name=model_name,
        model_version=model_version,
        start=start,
        end=end,
        rows=len(scored),
        rows_unlabelled=len(frame) - len(scored),
        metrics=metrics,
        drift_share=share,
        html_path=html,
        markdown_path=reports / f"{stem}.md",
    )
    result.markdown_path.parent.mkdir(parents=True, exist_ok=True)
    result.markdown_path.write_text(markdown_summary(result))
    return result
