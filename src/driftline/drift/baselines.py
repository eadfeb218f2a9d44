"""Where the drift service finds each sensor's baseline: the lookup serving uses.

The champion bundle's baselines come with its reference: promotion writes them beside the
reference file (``<reference>.baselines/``, one JSON per sensor, ``BaselineStore`` layout;
``driftline.training.promote``). A sensor the bundle has none of is looked up in the
baseline store (``<data_dir>/baselines``: set by an operator, or completed by serving), read
again at each window, so a baseline completed since is used from the next window on.
"""

from __future__ import annotations

import logging
from pathlib import Path

from driftline.anomaly.baseline import BaselineError, SensorBaseline
from driftline.anomaly.baseline_store import BaselineStore
from driftline.drift.relative import BaselineLookup, covers

log = logging.getLogger("drift")


def baselines_beside(reference_path: Path | str) -> Path:
    """The directory of the baselines that came with a model's reference file."""
    path = Path(reference_path)
    return path.with_name(f"{path.stem}.baselines")


def bundle_baselines(reference_path: Path | str) -> dict[str, SensorBaseline]:
    """The baselines beside the reference (none for a reference file of no model)."""
    try:
        return {b.sensor_id: b for b in BaselineStore(baselines_beside(reference_path)).all()}
    except (BaselineError, OSError, ValueError) as exc:
        log.warning("baselines beside %s not readable: %s", reference_path, exc)
        return {}


def baseline_lookup(
    bundle: dict[str, SensorBaseline], store: BaselineStore, features: list[str]
) -> BaselineLookup:
    """The bundle's baseline of a sensor, else the store's; None: pending."""

    def lookup(sensor: str) -> SensorBaseline | None:
        found = bundle.get(sensor)
        if found is None:
            try:
                found = store.get(sensor)
            except (BaselineError, OSError, ValueError) as exc:
                log.warning("sensor %s: stored baseline not readable: %s", sensor[:100], exc)
                return None
        return found if found is not None and covers(found, features) else None

    return lookup
