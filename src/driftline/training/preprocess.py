"""Preprocess step: valid readings of a time range, with operators' labels joined on ->
features -> a tagged dataset version that pins those label rows too."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict

from driftline.core.errors import DriftlineError
from driftline.core.profile import load_profile
from driftline.core.settings import Settings
from driftline.labels.training_join import (
    SPAN_COLUMNS,
    apply_operator_labels,
    labels_touching,
    pinned_labels,
)
from driftline.training.datarepo import DataRepo
from driftline.training.dataset import load_readings, read_only_connection
from driftline.training.features import add_features
from driftline.validation.schema import SENSOR_ID, TS


class PreprocessResult(BaseModel):
    """What was saved under ``tag``; sensors, start and end describe the data it holds."""

    model_config = ConfigDict(frozen=True)
    tag: str
    dvc_md5: str
    rows: int
    rows_invalid: int
    invalid_by_check: dict[str, int]
    label_rows: int  # operators' label rows joined on and pinned with the version
    labels_md5: str | None
    sensors: list[str]
    start: datetime
    end: datetime

    def summary(self) -> str:
        return f"{self.rows} rows ({self.rows_invalid} invalid left out), DVC md5 {self.dvc_md5}"


def preprocess(
    settings: Settings,
    tag: str,
    start: datetime | None = None,
    end: datetime | None = None,
    sensors: list[str] | None = None,
) -> PreprocessResult:
    """Save the valid readings with ``start <= ts <= end`` of ``sensors`` (all if None), with
    operators' labels joined on and their features, as dataset version ``tag``, with the label
    rows joined."""
    features = load_profile(settings.profile_path).features
    readings, report = load_readings(settings, start, end, sensors)
    if readings.empty:
        raise DriftlineError(
            f"no valid readings for {tag!r} ({report.rows_read} read, {report.invalid_by_check})"
        )
    with read_only_connection(settings.resolved_readonly_url) as conn:
        joined = labels_touching(conn, start, end, sensors)
    readings = apply_operator_labels(readings, joined[SPAN_COLUMNS])  # operators' labels win
    dataset = add_features(readings, features, settings.feature_window)
    version = DataRepo(settings).save_dataset(tag, dataset, pinned_labels(joined))
    return PreprocessResult(
        tag=tag,
        dvc_md5=version.dvc_md5,
        rows=version.rows,
        rows_invalid=report.rows_invalid,
        invalid_by_check=report.invalid_by_check,
        label_rows=version.label_rows,
        labels_md5=version.labels_md5,
        sensors=sorted(dataset[SENSOR_ID].unique()),
        start=dataset[TS].min().to_pydatetime(),
        end=dataset[TS].max().to_pydatetime(),
    )
