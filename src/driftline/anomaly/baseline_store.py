"""Where baselines live: one JSON file per sensor under a directory (``<data dir>/baselines``),
so the data repository can version them with the training data. Every write keeps the
previous baseline of the sensor as ``<sensor>.<version>.json``.

A baseline completed from a sensor's first readings is stored with ``complete``: the first
one stored wins (serving and the drift service both complete them, from the same readings),
and whoever came second takes the stored one, so all of them judge the sensor by one normal."""

from __future__ import annotations

import hashlib
import os
import re
import uuid
from pathlib import Path

from driftline.anomaly.baseline import BaselineError, SensorBaseline

_SAFE = re.compile(r"[^A-Za-z0-9_-]")


class BaselineStore:
    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def path(self, sensor_id: str) -> Path:
        """The file of the sensor's current baseline."""
        name = _SAFE.sub("_", sensor_id)
        if not sensor_id or len(sensor_id) > 200:
            raise BaselineError(f"sensor id {sensor_id[:50]!r} cannot name a baseline file")
        if name != sensor_id:  # two ids that clean to one name must not share a file
            name += "_" + hashlib.sha256(sensor_id.encode()).hexdigest()[:8]
        return self.directory / f"{name}.json"

    def save(self, baseline: SensorBaseline) -> Path:
        """Write atomically; the sensor's previous baseline stays beside it by version."""
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.path(baseline.sensor_id)
        previous = self.get(baseline.sensor_id)
        if previous is not None and previous.version != baseline.version:
            path.replace(path.with_name(f"{path.stem}.{previous.version}.json"))
        tmp = path.with_suffix(".tmp")
        tmp.write_text(baseline.to_json())
        os.replace(tmp, path)
        return path

    def complete(self, baseline: SensorBaseline) -> SensorBaseline:
        """Store a sensor's completed commissioning baseline unless it has one already; the
        sensor's baseline in the store either way (first wins: the link below is atomic, so
        of two processes completing the same sensor exactly one stores)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.path(baseline.sensor_id)
        tmp = path.with_name(f".{path.stem}.{uuid.uuid4().hex}.tmp")  # one per caller
        tmp.write_text(baseline.to_json())
        try:
            os.link(tmp, path)
        except FileExistsError:
            stored = self.get(baseline.sensor_id)
            if stored is not None:
                return stored
            raise
        finally:
            tmp.unlink(missing_ok=True)
        return baseline

    def get(self, sensor_id: str) -> SensorBaseline | None:
        """The sensor's current baseline, or None: its baseline is pending."""
        path = self.path(sensor_id)
        return SensorBaseline.from_json(path.read_bytes()) if path.exists() else None

    def all(self) -> list[SensorBaseline]:
        """Every sensor's current baseline, by sensor id."""
        if not self.directory.is_dir():
            return []
        current = [p for p in self.directory.glob("*.json") if p.stem.count(".") == 0]
        found = [SensorBaseline.from_json(p.read_bytes()) for p in current]
        return sorted(found, key=lambda b: b.sensor_id)
