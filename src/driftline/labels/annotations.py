"""A Label Studio annotation as label rows. Pure: no I/O.

The verdict (a choice) labels the task's whole time range; each time-range region labels its own
range. A bad annotation (unknown choice, a range outside the task, a task Driftline did not make)
raises AnnotationError with the reason; nothing of it is kept, and the next pass tries again (the
operator may have fixed it meanwhile).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from driftline.core.errors import DriftlineError
from driftline.labels.interface import CHOICES, REGIONS, VERDICT

Source = Literal["webhook", "pull"]
# A region drawn to the last pixel of the chart may end a little past the data.
RANGE_SLACK = timedelta(seconds=1)


class AnnotationError(DriftlineError):
    """An annotation that cannot become labels; ``check`` names what is wrong."""

    def __init__(self, check: str, detail: str) -> None:
        super().__init__(f"{check}: {detail}")
        self.check = check
        self.detail = detail


@dataclass(frozen=True)
class TaskInfo:
    """What Driftline put in a task's data."""

    task_key: str
    sensor_id: str
    start: datetime
    end: datetime


@dataclass(frozen=True)
class LabelRow:
    label_id: str
    task_key: str
    ls_task_id: int
    annotation_id: int
    annotation_version: str
    sensor_id: str
    start: datetime
    end: datetime
    label: str
    annotator: str
    annotated_at: datetime
    source: Source


def task_info(data: dict[str, Any]) -> TaskInfo:
    try:
        return TaskInfo(
            task_key=str(data["task_key"]),
            sensor_id=str(data["sensor_id"]),
            start=to_datetime(data["start"]),
            end=to_datetime(data["end"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise AnnotationError(
            "unknown_task", f"task data lacks Driftline's fields ({exc})"
        ) from exc


def to_datetime(value: Any) -> datetime:
    """Label Studio's time values: epoch seconds (our axis), epoch ms, or ISO 8601 text."""
    if isinstance(value, bool):
        raise ValueError(f"not a time: {value!r}")
    if isinstance(value, int | float):
        seconds = value / 1000 if abs(value) > 1e11 else value
        return datetime.fromtimestamp(seconds, UTC)
    if isinstance(value, str):
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    raise ValueError(f"not a time: {value!r}")


def _annotator(annotation: dict[str, Any]) -> str:
    who = annotation.get("completed_by")
    if isinstance(who, dict):
        return str(who.get("email") or who.get("username") or who.get("id") or "unknown")[:255]
    return str(who if who is not None else "unknown")[:255]


def _label_id(annotation_id: int, version: str, index: int) -> str:
    raw = f"{annotation_id}|{version}|{index}"
    return hashlib.blake2b(raw.encode(), digest_size=16).hexdigest()


def _choice(values: Any, what: str) -> str:
    if not isinstance(values, list) or len(values) != 1 or values[0] not in CHOICES:
        raise AnnotationError("unknown_choice", f"{what} {values!r} is not one of {CHOICES}")
    return str(values[0])


def label_rows(
    annotation: dict[str, Any], ls_task_id: int, task: TaskInfo, source: Source
) -> list[LabelRow]:
    """Rows of one annotation; [] for a cancelled or empty one."""
    if annotation.get("was_cancelled"):
        return []
    try:
        annotation_id = int(annotation["id"])
        results = list(annotation.get("result") or [])
    except (KeyError, TypeError, ValueError) as exc:
        raise AnnotationError("bad_annotation", f"no id or result ({exc})") from exc
    version = str(annotation.get("updated_at") or annotation.get("created_at") or "")
    try:
        annotated_at = to_datetime(version) if version else datetime.now(UTC)
    except ValueError:
        annotated_at = datetime.now(UTC)
    spans: list[tuple[datetime, datetime, str]] = []
    for result in results:
        if not isinstance(result, dict):
            raise AnnotationError("bad_annotation", f"result item {result!r:.80}")
        value = result.get("value") or {}
        if result.get("from_name") == VERDICT:
            spans.append((task.start, task.end, _choice(value.get("choices"), "choice")))
        elif result.get("from_name") == REGIONS:
            label = _choice(value.get("timeserieslabels"), "region label")
            try:
                start, end = to_datetime(value["start"]), to_datetime(value["end"])
            except (KeyError, ValueError) as exc:
                raise AnnotationError("bad_range", f"region without a time range ({exc})") from exc
            start, end = min(start, end), max(start, end)
            if start < task.start - RANGE_SLACK or end > task.end + RANGE_SLACK:
                raise AnnotationError(
                    "range_outside_task",
                    f"region {start.isoformat()}..{end.isoformat()} outside the task's "
                    f"{task.start.isoformat()}..{task.end.isoformat()}",
                )
            spans.append((max(start, task.start), min(end, task.end), label))
        else:
            raise AnnotationError("unknown_control", f"result from {result.get('from_name')!r}")
    return [
        LabelRow(
            label_id=_label_id(annotation_id, version, i),
            task_key=task.task_key,
            ls_task_id=ls_task_id,
            annotation_id=annotation_id,
            annotation_version=version,
            sensor_id=task.sensor_id,
            start=start,
            end=end,
            label=label,
            annotator=_annotator(annotation),
            annotated_at=annotated_at,
            source=source,
        )
        for i, (start, end, label) in enumerate(spans)
    ]
