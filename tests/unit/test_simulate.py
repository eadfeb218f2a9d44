"""The simulator: a reproducible synthetic pump, drift injections, malformed messages."""

from __future__ import annotations

import itertools
import math
import random
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import pytest

from driftline.simulate.inject import MALFORMED_KINDS, DriftInjection, malform
from driftline.simulate.plans import make_plan, sensor_ids
from driftline.simulate.signals import PUMP_STATS, CsvReplay, SyntheticPump
from driftline.validation.batch import ReadingValidator
from tests.unit.factories import NORMAL_VALUES, NOW, iso, message

FEATURES = list(NORMAL_VALUES)


def pump_frame(seed: int, count: int) -> pd.DataFrame:
    return pd.DataFrame([values for _, values, _ in SyntheticPump(seed=seed).rows(count)])


def test_the_synthetic_pump_is_reproducible_by_seed() -> None:
    a = list(SyntheticPump(seed=4).rows(50))
    assert a == list(SyntheticPump(seed=4).rows(50))
    assert a != list(SyntheticPump(seed=5).rows(50))


def test_the_synthetic_pump_rows_are_timed_and_labelled_normal() -> None:
    rows = list(itertools.islice(SyntheticPump(seed=0, period_seconds=0.5).rows(), 4))
    assert [t for t, _, _ in rows] == [0.0, 0.5, 1.0, 1.5]
    assert all(label == 0 for _, _, label in rows)
    assert all(list(values) == list(PUMP_STATS) for _, values, _ in rows)


def test_the_synthetic_pump_looks_like_skab(skab_normal: pd.DataFrame) -> None:
    synthetic = pump_frame(seed=1, count=20_000)
    for name, (mean, std, _) in PUMP_STATS.items():
        real = skab_normal[name]
        # PUMP_STATS are SKAB's own numbers...
        assert mean == pytest.approx(real.mean(), rel=1e-3, abs=1e-3), name
        assert std == pytest.approx(real.std(), rel=0.01), name
        # ...and the generated signal has them, within what an AR(1) sample of this length
        # can promise: its effective size is n (1 - phi) / (1 + phi), 10 for Thermocouple.
        phi = PUMP_STATS[name][2]
        effective = len(synthetic) * (1 - phi) / (1 + phi)
        assert abs(synthetic[name].mean() - mean) < 4 * std / math.sqrt(effective), name
        assert synthetic[name].std() == pytest.approx(std, rel=min(0.5, 4 / math.sqrt(effective)))


def test_the_synthetic_pump_passes_validation(validator: ReadingValidator) -> None:
    messages = [
        message({"sensor_id": "pump-001", "ts": iso(NOW), "seq": i, "values": values})
        for i, (_, values, _) in enumerate(SyntheticPump(seed=2).rows(200))
    ]
    verdict = validator.validate(messages)
    assert verdict.invalid == []


def test_the_synthetic_pump_is_autocorrelated_like_skab() -> None:
    frame = pump_frame(seed=3, count=5000)
    for name, (_, _, phi) in PUMP_STATS.items():
        lag1 = frame[name].autocorr(1)
        assert lag1 == pytest.approx(phi, abs=0.1), name


def test_csv_replay_keeps_time_spacing_and_labels(skab_dir: Path) -> None:
    path = skab_dir / "valve1" / "0.csv"
    frame = pd.read_csv(path, sep=";", parse_dates=["datetime"]).sort_values("datetime")
    rows = list(CsvReplay([path], FEATURES).rows(20))
    assert len(rows) == 20
    expected_t = (frame["datetime"] - frame["datetime"].iloc[0]).dt.total_seconds()
    assert [t for t, _, _ in rows] == expected_t.iloc[:20].tolist()
    assert [v["Current"] for _, v, _ in rows] == frame["Current"].iloc[:20].tolist()
    assert {label for _, _, label in rows} <= {0, 1}


def test_csv_replay_chains_files_in_time(skab_dir: Path) -> None:
    path = skab_dir / "anomaly-free" / "anomaly-free.csv"
    rows = list(CsvReplay([path, path], FEATURES).rows())
    n = len(rows) // 2
    times = [t for t, _, _ in rows]
    assert times == sorted(times)
    assert times[n] == times[n - 1] + 1.0  # the second file starts a second after the first
    assert all(label is None for _, _, label in rows)  # the anomaly-free file has no labels


# --- drift injection ---------------------------------------------------------------------------


def test_nothing_changes_before_the_injection_starts() -> None:
    for kind in ("shift", "scale", "noise", "stuck", "new-sensor"):
        inj = DriftInjection(kind, at_seconds=10, features=["Current"])  # type: ignore[arg-type]
        assert inj.apply(9.9, NORMAL_VALUES) == NORMAL_VALUES
        assert inj.sensor_id(9.9, "pump-001") == "pump-001"
        assert not inj.active(9.9) and inj.active(10)


def test_shift_adds_magnitude_standard_deviations() -> None:
    inj = DriftInjection("shift", 0, ["Current", "Voltage"], magnitude=2.0)
    out = inj.apply(5, NORMAL_VALUES)
    assert out["Current"] == pytest.approx(NORMAL_VALUES["Current"] + 2 * PUMP_STATS["Current"][1])
    assert out["Voltage"] == pytest.approx(NORMAL_VALUES["Voltage"] + 2 * PUMP_STATS["Voltage"][1])
    assert {k: v for k, v in out.items() if k not in ("Current", "Voltage")} == {
        k: v for k, v in NORMAL_VALUES.items() if k not in ("Current", "Voltage")
    }
    assert NORMAL_VALUES["Current"] == 2.4  # the input is not modified


def test_scale_multiplies() -> None:
    out = DriftInjection("scale", 0, ["Pressure"], magnitude=0.5).apply(1, NORMAL_VALUES)
    assert out["Pressure"] == pytest.approx(NORMAL_VALUES["Pressure"] * 1.5)


def test_noise_has_the_requested_spread_and_is_seeded() -> None:
    def noisy(seed: int) -> np.ndarray:
        inj = DriftInjection("noise", 0, ["Current"], magnitude=3.0, seed=seed)
        return np.array([inj.apply(t, NORMAL_VALUES)["Current"] for t in range(4000)])

    a = noisy(1)
    assert np.array_equal(a, noisy(1))
    assert not np.array_equal(a, noisy(2))
    assert a.mean() == pytest.approx(NORMAL_VALUES["Current"], abs=0.1)
    assert a.std() == pytest.approx(3.0 * PUMP_STATS["Current"][1], rel=0.05)


def test_stuck_repeats_the_last_value_before_the_fault() -> None:
    inj = DriftInjection("stuck", at_seconds=2, features=["Current"])
    rows = list(SyntheticPump(seed=0).rows(10))
    out = [inj.apply(t, values) for t, values, _ in rows]
    last_good = rows[1][1]["Current"]
    assert [o["Current"] for o in out[:2]] == [rows[0][1]["Current"], last_good]
    assert all(o["Current"] == last_good for o in out[2:])
    assert [o["Voltage"] for o in out] == [v["Voltage"] for _, v, _ in rows]


def test_new_sensor_changes_the_id_not_the_values(validator: ReadingValidator) -> None:
    inj = DriftInjection("new-sensor", 5, ["Current"])
    assert inj.apply(6, NORMAL_VALUES) == NORMAL_VALUES
    sensor = inj.sensor_id(6, "pump-001")
    assert sensor != "pump-001"
    doc = {"sensor_id": sensor, "ts": iso(NOW), "values": NORMAL_VALUES}
    ((_, letter),) = validator.validate([message(doc)]).invalid
    assert [r.check for r in letter.reasons] == ["known_sensor"]


# --- malformed messages ------------------------------------------------------------------------

EXPECTED_CHECKS = {
    "not-json": {"not_json"},
    "not-object": {"not_object"},
    "missing-field": {"missing_field"},
    "wrong-type": {"wrong_type"},
    "nan": {"not_nullable", "finite"},
    "out-of-range": {"in_range"},
    "future-ts": {"not_in_future"},
    # Its key stays the real sensor's (the simulator keys by sensor): both are reported.
    "unknown-sensor": {"known_sensor", "key_mismatch"},
}


def test_every_malformed_kind_has_an_expectation() -> None:
    assert set(MALFORMED_KINDS) == set(EXPECTED_CHECKS)


@pytest.mark.parametrize("kind", MALFORMED_KINDS)
def test_each_malformed_kind_fails_validation_with_its_check(
    validator: ReadingValidator, kind: str
) -> None:
    rng = random.Random(11)
    seen: set[str] = set()
    for seq in range(12):  # the corrupted feature / field / value is drawn at random
        reading = {"sensor_id": "pump-001", "ts": iso(NOW), "seq": seq, "values": NORMAL_VALUES}
        assert validator.validate([message(orjson.dumps(reading))]).invalid == []
        payload = malform(kind, reading, FEATURES, rng)
        verdict = validator.validate([message(payload)])
        assert verdict.valid == [], kind
        ((_, letter),) = verdict.invalid
        checks = {r.check for r in letter.reasons}
        if kind == "unknown-sensor":
            assert checks == EXPECTED_CHECKS[kind]
        else:
            assert len(checks) == 1 and checks <= EXPECTED_CHECKS[kind], (kind, checks)
        seen |= checks
    if kind == "nan":
        assert seen == {"not_nullable", "finite"}  # both NaN and infinity were drawn


def test_malform_does_not_touch_its_input() -> None:
    reading = {"sensor_id": "pump-001", "ts": iso(NOW), "seq": 1, "values": dict(NORMAL_VALUES)}
    before = orjson.dumps(reading)
    for kind in MALFORMED_KINDS:
        malform(kind, reading, FEATURES, random.Random(0))
    assert orjson.dumps(reading) == before


def test_an_unknown_malformed_kind_is_rejected() -> None:
    reading = {"sensor_id": "pump-001", "ts": iso(NOW), "values": dict(NORMAL_VALUES)}
    with pytest.raises(ValueError, match="unknown malformed kind"):
        malform("sideways", reading, FEATURES, random.Random(0))


# --- plans -------------------------------------------------------------------------------------


def test_plans_check_their_options() -> None:
    common = dict(
        sensors=2,
        count=10,
        rate=0.0,
        drift_at=0.0,
        drift_magnitude=1.0,
        malformed_rate=0.0,
        seed=0,
    )
    with pytest.raises(ValueError, match="unknown drift kind"):
        make_plan(FEATURES, drift="sideways", **common)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not measurements"):
        make_plan(FEATURES, drift="shift", drift_features=["Humidity"], **common)  # type: ignore[arg-type]
    plan = make_plan(FEATURES, drift="shift", drift_features=["Current"], **common)  # type: ignore[arg-type]
    assert plan.sensors == sensor_ids(2) == ["pump-001", "pump-002"]
    assert plan.span_seconds == 10.0
    assert plan.drift is not None and plan.drift.kind == "shift"
    # Each sensor has its own, reproducible signal.
    assert list(plan.rows(0)) == list(plan.rows(0))
    assert list(plan.rows(0)) != list(plan.rows(1))


async def test_a_paced_simulation_sends_its_readings_in_batches() -> None:
    """Paced readings wait up to simulator_linger_ms to share a batch (the embedded broker reads
    through every batch of a partition at each fetch); as fast as possible keeps the default."""
    from driftline.core.settings import Settings
    from driftline.simulate.publisher import SimulationPlan, simulation_producer

    settings = Settings(kafka_bootstrap_servers="127.0.0.1:9", simulator_linger_ms=80)  # type: ignore[call-arg]
    sensors, features = ["pump-01"], FEATURES

    def plan(rate: float) -> SimulationPlan:
        return SimulationPlan(sensors, lambda i: SyntheticPump().rows(1), features, rate=rate)

    paced = simulation_producer(settings, plan(50.0))
    fast = simulation_producer(settings, plan(0.0))
    # What aiokafka's accumulator holds a batch open for, in seconds (never started here).
    assert paced._message_accumulator._linger_time == 0.08
    assert Settings.model_fields["simulator_linger_ms"].default == 100
    assert fast._message_accumulator._linger_time == 0.005
