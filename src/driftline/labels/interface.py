"""The Label Studio labeling interface and task payload for one sensor's time range.

Measurements become TimeSeries channels named ``m0``, ``m1``, ... (profile names may hold spaces,
which Label Studio's column lookup does not take) with the profile's name and unit as legend.
The time column is epoch seconds: a numeric axis parses the same in every browser time zone.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from xml.sax.saxutils import quoteattr  # nosec B406  # escapes attributes we write; parses nothing

from driftline.core.profile import Profile
from driftline.core.records import as_utc
from driftline.labels.candidates import TaskCandidate

CHOICES = ("fault", "normal", "unsure")
TIME_SERIES = "ts"
VERDICT = "verdict"
REGIONS = "regions"


def channel_names(profile: Profile) -> dict[str, str]:
    """Profile measurement name -> channel column."""
    return {name: f"m{i}" for i, name in enumerate(profile.features)}


def label_config(profile: Profile) -> str:
    channels = "\n".join(
        f"    <Channel column={quoteattr(col)} legend={quoteattr(name)} "
        f"units={quoteattr(profile.measurements[name].unit)} displayFormat=',.3f'/>"
        for name, col in channel_names(profile).items()
    )
    choices = "\n".join(f'    <Choice value="{c}"/>' for c in CHOICES)
    labels = "\n".join(f'    <Label value="{c}"/>' for c in CHOICES)
    return f"""<View>
  <Header value="$title"/>
  <Text name="why" value="$reason"/>
  <Choices name="{VERDICT}" toName="{TIME_SERIES}" choice="single" showInline="true">
{choices}
  </Choices>
  <TimeSeriesLabels name="{REGIONS}" toName="{TIME_SERIES}">
{labels}
  </TimeSeriesLabels>
  <TimeSeries name="{TIME_SERIES}" valueType="json" value="${TIME_SERIES}" timeColumn="time">
{channels}
  </TimeSeries>
</View>"""


def epoch_seconds(ts: datetime) -> float:
    return as_utc(ts).timestamp()


def task_data(
    candidate: TaskCandidate,
    profile: Profile,
    readings: list[tuple[datetime, dict[str, float]]],
) -> dict[str, Any]:
    """The task's data: readings sorted by time (Label Studio needs a sorted axis)."""
    columns = channel_names(profile)
    ordered = sorted(readings, key=lambda r: r[0])
    series: dict[str, list[float | None]] = {"time": [epoch_seconds(ts) for ts, _ in ordered]}
    for name, col in columns.items():
        series[col] = [values.get(name) for _, values in ordered]
    start = as_utc(candidate.start).isoformat(timespec="seconds")
    end = as_utc(candidate.end).isoformat(timespec="seconds")
    return {
        "title": f"{candidate.sensor_id}: {start} to {end} ({candidate.kind})",
        "reason": candidate.reason,
        TIME_SERIES: series,
        "task_key": candidate.key,
        "sensor_id": candidate.sensor_id,
        "kind": candidate.kind,
        "start": epoch_seconds(candidate.start),
        "end": epoch_seconds(candidate.end),
        "model_version": candidate.model_version,
    }
