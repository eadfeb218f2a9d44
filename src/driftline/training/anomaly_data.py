"""A dataset version as what the anomaly models learn from: per sensor, its baseline and its
readings in time order (a ``Recording``), and the model spec the train step fits.

A sensor's baseline is the one an operator set (``driftline baseline set``, the
``BaselineStore``) if any, else its first ``baseline_readings`` valid readings in the dataset.
The set used is versioned with the dataset (``DataRepo.save_baselines``), so training, the
registered model, serving and the drift service read the one same object.
"""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from driftline.anomaly.automl import defaults
from driftline.anomaly.baseline import SensorBaseline, from_first_readings, valid_rows
from driftline.anomaly.baseline_store import BaselineStore
from driftline.anomaly.model import ModelSpec
from driftline.anomaly.recordings import Recording
from driftline.core.settings import Settings
from driftline.validation.schema import SENSOR_ID, TS

log = logging.getLogger(__name__)

SPEC_KEY = "anomaly_spec"  # the key of a tuned spec among a dataset's saved parameters
MIN_SHORT_BASELINE = 20


def baseline_store(settings: Settings) -> BaselineStore:
    return BaselineStore(settings.data_dir / "baselines")


def sensor_baselines(
    settings: Settings, frame: pd.DataFrame, measurements: list[str]
) -> dict[str, SensorBaseline]:
    """Each sensor's baseline: the store's, else its first ``baseline_readings`` valid rows
    not labelled anomalous (a baseline is the sensor's normal: a labelled fault among its rows
    would widen that normal until the faults after it no longer stand out).

    A sensor with fewer rows has no baseline yet (pending) and is left out. When that leaves
    no sensor at all (a short dataset, as a retraining on a recent episode can be), each
    sensor's first quarter is its baseline instead, and a warning says so."""
    store = baseline_store(settings)
    out: dict[str, SensorBaseline] = {}
    short: dict[str, pd.DataFrame] = {}
    normal = frame[frame["label"] != 1] if "label" in frame else frame
    for sensor, rows in normal.groupby(SENSOR_ID, sort=True):
        name = str(sensor)
        found = store.get(name)
        if found is not None and list(found.measurements) == measurements:
            out[name] = found
            continue
        built = from_first_readings(rows, name, measurements, settings.baseline_readings)
        if built is not None:
            out[name] = built
        else:
            short[name] = rows
    if not out:
        for name, rows in short.items():
            count = len(valid_rows(rows, measurements)) // 4
            if count >= MIN_SHORT_BASELINE:
                log.warning(
                    "%s: %d valid readings, fewer than %d: its first %d are its baseline",
                    name,
                    4 * count,
                    settings.baseline_readings,
                    count,
                )
                built = from_first_readings(rows, name, measurements, count)
                if built is not None:
                    out[name] = built
    return out


def recordings(
    frame: pd.DataFrame, baselines: dict[str, SensorBaseline], measurements: list[str]
) -> list[Recording]:
    """One recording per sensor that has a baseline. Unknown labels count as normal (0).
    Scoring starts after the baseline's first span (its rows are never scored)."""
    out = []
    for sensor, rows in frame.groupby(SENSOR_ID, sort=True):
        baseline = baselines.get(str(sensor))
        if baseline is None:
            continue
        rows = rows.sort_values(TS, kind="mergesort")
        values = rows[measurements].to_numpy(dtype="float64")
        labels = (rows["label"].to_numpy(dtype="float64") == 1).astype("int64")
        scored_from = 0
        spans = baseline.spans()
        if spans:
            # Up to its first span's end: later spans (periods operators labelled normal) lie
            # among the rows to score, and are scored.
            scored_from = int((pd.to_datetime(rows[TS], utc=True) <= spans[0][1]).sum())
        scored_from = min(scored_from, max(len(rows) - 1, 0))
        out.append(Recording(str(sensor), values, baseline, scored_from, labels))
    return out


def has_both_classes(frame: pd.DataFrame) -> bool:
    labels = frame["label"].dropna()
    return bool((labels == 1).any() and (labels == 0).any())


def chosen_spec(
    saved: dict[str, Any] | None, frame: pd.DataFrame, measurements: list[str]
) -> tuple[ModelSpec, str]:
    """The spec to train, and where it came from: the tune step's pick for this dataset, else
    a family's defaults: XGBoost when the labels hold both classes (it learns what a fault
    looks like), else PCA T-squared+Q (needs no labels)."""
    if saved and SPEC_KEY in saved:
        return ModelSpec.model_validate(saved[SPEC_KEY]), "tuned"
    if has_both_classes(frame):
        return defaults("xgboost"), "default"
    return defaults("pca-t2q", tuple(measurements)), "default"
