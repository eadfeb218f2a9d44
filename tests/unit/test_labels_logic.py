"""Pure label logic: task candidates, annotations as label rows, labelled scores and the rule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from driftline.anomaly.baseline import BaselineError, SensorBaseline, extend, from_period
from driftline.core.profile import load_profile
from driftline.core.records import LabelledPerformance, Prediction, RetrainRequest
from driftline.core.settings import DEFAULT_PROFILE
from driftline.labels.annotations import AnnotationError, TaskInfo, label_rows, to_datetime
from driftline.labels.baseline import labelled_normal, normal_runs
from driftline.labels.candidates import CandidateConfig, CandidateFinder, drift_candidates
from driftline.labels.interface import channel_names, label_config, task_data
from driftline.labels.performance import (
    LabelledRule,
    LabelledScore,
    join_labels,
    labelled_decision,
    rolling_scores,
)
from driftline.labels.trigger_rule import LabelledTrigger
from driftline.trigger.policy import PolicyConfig, RetrainPolicy

T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)


def prediction(sensor: str, second: int, probability: float, version: str = "3") -> Prediction:
    return Prediction(
        reading_id=f"{sensor}-{second}",
        sensor_id=sensor,
        ts=T0 + timedelta(seconds=second),
        anomaly_probability=probability,
        label=int(probability >= 0.5),
        model_name="m",
        model_version=version,
    )


def test_consecutive_anomalies_of_a_sensor_make_one_episode_closed_by_a_normal_one() -> None:
    finder = CandidateFinder(CandidateConfig(uncertainty_margin=0.0))
    out = []
    for s in range(5):
        out += finder.observe(prediction("pump-1", s, 0.9))
        out += finder.observe(prediction("pump-2", s, 0.1))  # other sensors do not interfere
    assert out == []
    out = finder.observe(prediction("pump-1", 5, 0.1))
    assert [(c.kind, c.sensor_id) for c in out] == [("anomaly_episode", "pump-1")]
    ctx = CandidateConfig().context
    assert (out[0].start, out[0].end) == (T0 - ctx, T0 + timedelta(seconds=4) + ctx)
    assert "5 consecutive" in out[0].reason


def test_a_gap_in_event_time_splits_episodes_and_a_single_anomaly_is_no_episode() -> None:
    finder = CandidateFinder(CandidateConfig(uncertainty_margin=0.0))
    out = finder.observe(prediction("pump-1", 0, 0.9)) + finder.observe(
        prediction("pump-1", 1, 0.9)
    )
    out += finder.observe(prediction("pump-1", 1000, 0.9))  # gap > 5 min: the first one closes
    assert len(out) == 1
    assert finder.flush() == []  # the second episode has one prediction only


def test_the_same_episode_seen_twice_has_the_same_key() -> None:
    keys = []
    for _ in range(2):
        finder = CandidateFinder(CandidateConfig(uncertainty_margin=0.0))
        for s in range(3):
            finder.observe(prediction("pump-1", s, 0.9))
        keys.append(finder.flush()[0].key)
    assert keys[0] == keys[1]


def test_uncertain_predictions_are_rate_limited_per_sensor_and_overall() -> None:
    config = CandidateConfig(uncertain_per_sensor_per_hour=2, uncertain_per_hour=3)
    finder = CandidateFinder(config)
    got = []
    for s in range(10):
        for sensor in ("pump-1", "pump-2"):
            got += [c for c in finder.observe(prediction(sensor, s, 0.45)) if c.kind == "uncertain"]
    assert [c.sensor_id for c in got] == ["pump-1", "pump-2", "pump-1"]
    later = finder.observe(prediction("pump-2", 3700, 0.45))  # an hour on: allowed again
    assert [c.kind for c in later] == ["uncertain"]
    assert finder.observe(prediction("pump-3", 3701, 0.2)) == []  # far from the threshold


def test_a_retrain_request_gives_one_drift_task_per_sensor() -> None:
    request = RetrainRequest(
        reason="drift",
        sensors=["pump-2", "pump-1", "pump-2"],
        drift_event_ids=["a"],
        data_start=T0,
        data_end=T0 + timedelta(minutes=30),
    )
    got = drift_candidates(request)
    assert [(c.kind, c.sensor_id, c.start, c.end) for c in got] == [
        ("drift_episode", "pump-1", T0, T0 + timedelta(minutes=30)),
        ("drift_episode", "pump-2", T0, T0 + timedelta(minutes=30)),
    ]


def test_the_interface_shows_every_measurement_with_its_unit_and_the_three_choices() -> None:
    profile = load_profile(DEFAULT_PROFILE)
    config = label_config(profile)
    for name in profile.features:
        assert f'legend="{name}"' in config
    assert 'units="l/min"' in config
    for choice in ("fault", "normal", "unsure"):
        assert f'<Choice value="{choice}"/>' in config and f'<Label value="{choice}"/>' in config
    candidate = drift_candidates(
        RetrainRequest(
            reason="r", sensors=["pump-1"], drift_event_ids=[], data_start=T0, data_end=T0
        )
    )[0]
    later, earlier = T0 + timedelta(seconds=2), T0
    data = task_data(candidate, profile, [(later, {"Current": 2.0}), (earlier, {"Current": 1.0})])
    column = channel_names(profile)["Current"]
    assert data["ts"]["time"] == [T0.timestamp(), later.timestamp()]  # sorted by time
    assert data["ts"][column] == [1.0, 2.0]
    assert data["task_key"] == candidate.key


TASK = TaskInfo("k", "pump-1", T0, T0 + timedelta(minutes=10))


def annotation(*results: dict, **extra: object) -> dict:
    return {
        "id": 7,
        "result": list(results),
        "completed_by": 1,
        "updated_at": "2026-01-05T09:00:00Z",
        **extra,
    }


def verdict(choice: str) -> dict:
    return {
        "from_name": "verdict",
        "to_name": "ts",
        "type": "choices",
        "value": {"choices": [choice]},
    }


def region(start: datetime, end: datetime, label: str) -> dict:
    value = {"start": start.timestamp(), "end": end.timestamp(), "timeserieslabels": [label]}
    return {"from_name": "regions", "to_name": "ts", "type": "timeserieslabels", "value": value}


def test_a_verdict_labels_the_task_and_a_region_its_own_range() -> None:
    r0, r1 = T0 + timedelta(minutes=2), T0 + timedelta(minutes=3)
    rows = label_rows(annotation(verdict("normal"), region(r0, r1, "fault")), 42, TASK, "pull")
    assert [(r.start, r.end, r.label) for r in rows] == [
        (TASK.start, TASK.end, "normal"),
        (r0, r1, "fault"),
    ]
    assert {r.ls_task_id for r in rows} == {42} and len({r.label_id for r in rows}) == 2
    again = label_rows(annotation(verdict("normal"), region(r0, r1, "fault")), 42, TASK, "webhook")
    assert [r.label_id for r in again] == [r.label_id for r in rows]  # same annotation, same ids


@pytest.mark.parametrize(
    ("result", "check"),
    [
        (verdict("broken"), "unknown_choice"),
        (region(T0 - timedelta(hours=1), T0, "fault"), "range_outside_task"),
        ({"from_name": "other", "value": {}}, "unknown_control"),
    ],
)
def test_bad_annotations_are_refused_with_their_reason(result: dict, check: str) -> None:
    with pytest.raises(AnnotationError) as caught:
        label_rows(annotation(result), 1, TASK, "pull")
    assert caught.value.check == check


def test_a_cancelled_annotation_is_no_label_and_times_parse_in_every_form() -> None:
    assert label_rows(annotation(verdict("fault"), was_cancelled=True), 1, TASK, "pull") == []
    assert to_datetime(T0.timestamp()) == to_datetime(T0.timestamp() * 1000) == T0
    assert to_datetime("2026-01-05T08:00:00Z") == T0


def spans_and_predictions() -> tuple[list[dict], list[dict]]:
    naive = T0.replace(tzinfo=None)
    spans = [
        {
            "sensor_id": "pump-1",
            "start_ts": naive,
            "end_ts": naive + timedelta(seconds=9),
            "label": "normal",
        },
        {
            "sensor_id": "pump-1",
            "start_ts": naive + timedelta(seconds=5),
            "end_ts": naive + timedelta(seconds=9),
            "label": "fault",
        },
        {
            "sensor_id": "pump-1",
            "start_ts": naive + timedelta(seconds=20),
            "end_ts": naive + timedelta(seconds=29),
            "label": "unsure",
        },
    ]
    predicted = [0, 0, 0, 0, 1, 1, 1, 0, 0, 0]  # seconds 0-9: one false positive, one miss
    predictions = [
        {
            "reading_id": f"r{s}",
            "sensor_id": "pump-1",
            "event_ts": naive + timedelta(seconds=s),
            "predicted": predicted[s],
            "model_version": "3",
        }
        for s in range(10)
    ] + [
        {
            "reading_id": "u",
            "sensor_id": "pump-1",
            "event_ts": naive + timedelta(seconds=25),
            "predicted": 1,
            "model_version": "3",
        },
        {
            "reading_id": "x",
            "sensor_id": "pump-9",
            "event_ts": naive,
            "predicted": 1,
            "model_version": "3",
        },
    ]
    return spans, predictions


def test_predictions_take_the_narrowest_covering_label_and_are_scored() -> None:
    spans, predictions = spans_and_predictions()
    scored = join_labels(predictions, spans)
    assert len(scored) == 10  # unsure and unlabelled readings are left out
    assert [s.actual for s in scored] == [0] * 5 + [1] * 5
    score = rolling_scores(scored, window=100)["3"]
    assert (score.true_positives, score.false_positives, score.false_negatives) == (2, 1, 3)
    assert score.precision == pytest.approx(2 / 3)
    assert score.recall == pytest.approx(2 / 5)
    assert score.f1 == pytest.approx(2 * (2 / 3) * (2 / 5) / (2 / 3 + 2 / 5))
    last4 = rolling_scores(scored, window=4)["3"]  # seconds 6-9
    assert (last4.readings, last4.true_positives, last4.false_negatives) == (4, 1, 3)


def test_the_labelled_rule_fires_below_the_threshold_only_with_enough_readings() -> None:
    poor = LabelledScore("3", 60, true_positives=2, false_positives=10, false_negatives=10)
    good = LabelledScore("3", 60, true_positives=20, false_positives=1, false_negatives=1)
    few = LabelledScore("3", 10, true_positives=0, false_positives=5, false_negatives=5)
    rule = LabelledRule(f1_threshold=0.6, min_readings=50)
    fired = labelled_decision(poor, rule)
    assert fired.fired and "below 0.6" in fired.reason and "model 3" in fired.reason
    assert not labelled_decision(good, rule).fired
    held = labelled_decision(few, rule)
    assert not held.fired and "fewer than 50" in held.reason


def performance(f1_low: bool, readings: int = 60) -> LabelledPerformance:
    tp, fp, fn = (2, 10, 10) if f1_low else (20, 1, 1)
    return LabelledPerformance(
        model_version="3",
        readings=readings,
        true_positives=tp,
        false_positives=fp,
        false_negatives=fn,
        precision=0.0,
        recall=0.0,
        f1=0.0,
        sensors=["pump-1"],
        data_start=T0,
        data_end=T0 + timedelta(minutes=5),
    )


def test_labelled_performance_fires_once_then_shares_the_drift_rules_cooldown() -> None:
    policy = RetrainPolicy(PolicyConfig(cooldown_seconds=3600))
    trigger = LabelledTrigger(LabelledRule(0.6, 50), policy)
    low = performance(f1_low=True)
    first = trigger.outcome(low, T0)
    assert first.decision.fired and first.request is not None
    assert first.request.sensors == ["pump-1"] and first.request.data_start == T0
    assert trigger.outcome(low, T0) is first  # a retried batch: the same decision, once
    trigger.done(low.event_id)
    policy.run_finished()
    held = trigger.outcome(performance(f1_low=True), T0 + timedelta(minutes=10))
    assert not held.decision.fired and "cooling down" in held.decision.reason
    good = trigger.outcome(performance(f1_low=False), T0 + timedelta(hours=2))
    assert not good.decision.fired and "at or above 0.6" in good.decision.reason


def test_operator_labels_win_over_file_labels_and_the_narrowest_range_wins() -> None:
    import pandas as pd

    from driftline.labels.training_join import apply_operator_labels

    ts = [T0 + timedelta(seconds=s) for s in range(6)]
    readings = pd.DataFrame(
        {
            "sensor_id": ["pump-1"] * 6 + ["pump-2"],
            "ts": ts + [T0],
            "label": [0.0, 0.0, 1.0, 1.0, float("nan"), 0.0, 1.0],
        }
    )
    naive = T0.replace(tzinfo=None)
    spans = pd.DataFrame(
        {
            "sensor_id": ["pump-1", "pump-1", "pump-1"],
            "start_ts": [naive, naive + timedelta(seconds=1), naive + timedelta(seconds=4)],
            "end_ts": [
                naive + timedelta(seconds=5),
                naive + timedelta(seconds=2),
                naive + timedelta(seconds=5),
            ],
            "label": ["normal", "fault", "unsure"],
        }
    )
    out = apply_operator_labels(readings, spans)
    # seconds 1-2 fault (the narrow region), the rest of 0-5 normal; unsure changes nothing;
    # another sensor keeps its label.
    assert out["label"].tolist() == [0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    assert readings["label"].tolist()[:4] == [0.0, 0.0, 1.0, 1.0]  # the input is not changed


# --- Labelled normal readings extend a sensor's baseline -----------------------------------------


def _readings(sensor: str, seconds: range, start: datetime) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "sensor_id": sensor,
            "ts": [start + timedelta(seconds=s) for s in seconds],
            "a": [float(s) for s in seconds],
            "b": [float(s) * 2 for s in seconds],
        }
    )


def _span(sensor: str, start: datetime, first: int, last: int, label: str) -> dict:
    return {
        "sensor_id": sensor,
        "start_ts": (start + timedelta(seconds=first)).replace(tzinfo=None),
        "end_ts": (start + timedelta(seconds=last)).replace(tzinfo=None),
        "label": label,
    }


def test_labelled_normal_readings_are_those_whose_narrowest_label_says_normal() -> None:
    t0 = datetime(2026, 11, 30, 8, tzinfo=UTC)
    readings = pd.concat([_readings("p1", range(20), t0), _readings("p2", range(20), t0)])
    spans = pd.DataFrame(
        [
            _span("p1", t0, 0, 9, "normal"),
            _span("p1", t0, 3, 4, "unsure"),  # a doubt inside the verdict: left out
            _span("p1", t0, 12, 15, "fault"),
            _span("p1", t0, 10, 19, "normal"),  # 12-15 are the fault region's
        ]
    )
    normal = labelled_normal(readings, spans)
    assert set(normal["sensor_id"]) == {"p1"}
    assert normal["a"].tolist() == [0, 1, 2, 5, 6, 7, 8, 9, 10, 11, 16, 17, 18, 19]
    assert labelled_normal(readings, spans.iloc[0:0]).empty


def test_extend_puts_labelled_readings_around_the_baseline_in_time_order() -> None:
    t0 = datetime(2026, 11, 30, 8, tzinfo=UTC)
    base = from_period(_readings("p1", range(10, 20), t0), "p1", ["a", "b"], t0, t0 + timedelta(1))
    labelled = _readings("p1", range(0, 30), t0)  # 10-19 are the baseline's already
    extended, added = extend(base, labelled, "p1", ["a", "b"], limit=100)
    assert (added, extended.count, extended.source) == (20, 30, "labelled-normal")
    assert extended.values()[:, 0].tolist() == [float(s) for s in range(30)]
    assert (extended.start, extended.end) == (t0, t0 + timedelta(seconds=29))
    same, none = extend(extended, labelled, "p1", ["a", "b"], limit=100)
    assert (same, none) == (extended, 0)
    thinned, added = extend(None, labelled, "p1", ["a", "b"], limit=4)
    assert added == 4 and thinned.values()[:, 0].tolist() == [0.0, 10.0, 19.0, 29.0]
    with pytest.raises(BaselineError, match="not the profile's"):
        extend(base, labelled, "p1", ["b", "a"], limit=100)


def test_normal_runs_are_the_periods_labelled_normal_without_a_break() -> None:
    t0 = datetime(2026, 11, 30, 8, tzinfo=UTC)
    readings = _readings("p1", range(20), t0).sample(frac=1, random_state=1)  # any order
    spans = pd.DataFrame(
        [
            _span("p1", t0, 0, 9, "normal"),
            _span("p1", t0, 3, 4, "unsure"),
            _span("p1", t0, 12, 15, "fault"),
            _span("p1", t0, 10, 19, "normal"),
        ]
    )
    at = lambda s: pd.Timestamp(t0 + timedelta(seconds=s))  # noqa: E731
    assert normal_runs(readings, spans) == [(at(0), at(2)), (at(5), at(11)), (at(16), at(19))]
    assert normal_runs(readings, spans.iloc[0:0]) == []


def test_a_baseline_extended_by_periods_covers_them_and_training_scores_the_rows_between() -> None:
    """The spans a baseline covers are its first readings' and each labelled period's, not the
    hull: a period labelled later in a gap is still added, and a recording scores every row
    after the first span (its baseline's rows before it are never scored)."""
    from driftline.training.anomaly_data import recordings

    t0 = datetime(2026, 11, 30, 8, tzinfo=UTC)
    at = lambda s: pd.Timestamp(t0 + timedelta(seconds=s))  # noqa: E731
    frame = _readings("p1", range(100), t0)
    base = from_period(frame, "p1", ["a", "b"], t0, t0 + timedelta(seconds=9))
    extended, added = extend(base, frame[frame["a"] >= 80], "p1", ["a", "b"], 100, periods=[
        (at(80), at(99))
    ])  # fmt: skip
    assert added == 20 and extended.spans() == [(at(0), at(9)), (at(80), at(99))]
    assert (extended.start, extended.end) == (t0, t0 + timedelta(seconds=99))
    assert SensorBaseline.from_json(extended.to_json()) == extended
    gap = frame[frame["a"].between(40, 49)]
    later, added = extend(extended, gap, "p1", ["a", "b"], 100, periods=[(at(40), at(49))])
    assert added == 10 and later.spans() == [(at(0), at(9)), (at(40), at(49)), (at(80), at(99))]
    assert later.values()[:, 0].tolist() == [*range(10), *range(80, 100), *range(40, 50)]

    (record,) = recordings(frame.assign(label=0.0), {"p1": later}, ["a", "b"])
    assert record.scored_from == 10  # not 100: the rows after second 9 are scored
    old = base.model_copy(update={"end": t0 + timedelta(seconds=49)})  # one span, as before
    (record,) = recordings(frame.assign(label=0.0), {"p1": old}, ["a", "b"])
    assert record.scored_from == 50


def test_up_starts_no_labeling_when_turned_off(tmp_path, caplog) -> None:
    """DRIFTLINE_LABEL_STUDIO_START=false: `driftline up` starts neither Label Studio (installed
    or not) nor the labeler, and says why."""
    import logging

    from driftline.core.settings import Settings
    from driftline.labels.up import start_labeling
    from driftline.platform.ports import PortPlan
    from driftline.platform.supervisor import Supervisor

    settings = Settings(data_dir=tmp_path, label_studio_start=False, label_studio_url=None)
    supervisor = Supervisor(tmp_path / "logs")
    with caplog.at_level(logging.INFO, logger="driftline.labels"):
        assert start_labeling(settings, supervisor, PortPlan(), 9406) is None
    assert supervisor.children == []
    assert "DRIFTLINE_LABEL_STUDIO_START=false" in caplog.text
