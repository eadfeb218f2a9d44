"""The Redis sensor history against a real Redis (tests/redis_server.py): the model inputs of
the in-memory history and of training's feature function, whichever replica a batch reaches."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from driftline.platform.broker import free_port
from driftline.serving.history import HistoryUnavailable, SensorHistory
from driftline.serving.history_redis import RedisHistory
from tests.redis_server import redis_url
from tests.unit.factories import valid_reading
from tests.unit.test_serving_path import FEATURES, START, WINDOW, offline, series

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with redis_url(tmp_path_factory.mktemp("redis")) as found:
        yield found


def replica(url: str, prefix: str, window: int = WINDOW, ttl: int = 3600) -> SensorHistory:
    store = RedisHistory(url, FEATURES, 2 * window, ttl_seconds=ttl, prefix=prefix)
    return SensorHistory(FEATURES, window, store)


def fresh(url: str) -> tuple[SensorHistory, SensorHistory]:
    """Two replicas (each its own Redis client) over one fresh key space."""
    prefix = f"test:{uuid.uuid4().hex}:"
    return replica(url, prefix), replica(url, prefix)


def test_batches_spread_over_two_replicas_give_training_features(url: str) -> None:
    readings = [
        r for pair in zip(series("a", 17), series("b", 17, seed=1), strict=True) for r in pair
    ]
    replicas = fresh(url)
    served = pd.concat(
        [replicas[n % 2].model_inputs(readings[i : i + 3]) for n, i in
         enumerate(range(0, len(readings), 3))],
        ignore_index=True,
    )  # fmt: skip
    pd.testing.assert_frame_equal(served, offline(readings), check_exact=False, rtol=1e-12)
    assert replicas[0].sensors() == replicas[1].sensors() == 2


# Batches of (sensor, second) pairs: repeats, readings older than the held ones, and sensors
# whose histories outgrow the bound, in any order.
batches = st.lists(
    st.lists(st.tuples(st.sampled_from("abc"), st.integers(0, 4 * WINDOW)), min_size=1,
             max_size=8),
    min_size=1, max_size=12,
)  # fmt: skip


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(batches=batches)
def test_redis_and_memory_histories_give_the_same_inputs(url: str, batches: list) -> None:
    def reading(sensor: str, second: int) -> object:
        # Values fixed by the reading's identity: a repeat carries the same values.
        rng = np.random.default_rng(second * 7 + ord(sensor))
        values = {f: float(v) for f, v in zip(FEATURES, rng.normal(1, 0.1, len(FEATURES)),
                                              strict=True)}  # fmt: skip
        return valid_reading(sensor, START + timedelta(seconds=second), second, values)

    memory = SensorHistory(FEATURES, WINDOW)
    replicas = fresh(url)
    for n, batch in enumerate(batches):
        readings = [reading(sensor, second) for sensor, second in batch]
        pd.testing.assert_frame_equal(
            replicas[n % 2].model_inputs(readings), memory.model_inputs(readings)
        )


def test_each_sensor_is_trimmed_to_its_newest_readings_and_expires(url: str) -> None:
    prefix = f"test:{uuid.uuid4().hex}:"
    history = replica(url, prefix, ttl=600)
    history.model_inputs(series("a", 5 * WINDOW))
    store = history.store
    assert isinstance(store, RedisHistory)
    key = store.key("a")
    held = store._decode(b"".join(store.client.zrange(key, 0, -1)))
    assert len(held[0]) == 2 * WINDOW
    assert (np.diff(held[0]) > 0).all()
    newest = series("a", 5 * WINDOW)[-2 * WINDOW :]
    assert held[0][0] == int(pd.Timestamp(newest[0].ts).value)
    assert 0 < store.client.ttl(key) <= 600


def test_replicas_scoring_one_sensor_at_once_lose_none_of_its_readings(url: str) -> None:
    window = 100  # holds all 2 x 40 readings
    prefix = f"test:{uuid.uuid4().hex}:"
    readings = series("a", 80)
    start = threading.Barrier(2)

    def send(replica_no: int) -> None:
        history = replica(url, prefix, window=window)
        start.wait()
        for r in readings[replica_no::2]:  # interleaved: each replica every other reading
            history.model_inputs([r])

    threads = [threading.Thread(target=send, args=(n,)) for n in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    store = replica(url, prefix, window=window).store
    assert isinstance(store, RedisHistory)
    held_ts, _ = store._decode(b"".join(store.client.zrange(store.key("a"), 0, -1)))
    assert held_ts.tolist() == [int(pd.Timestamp(r.ts).value) for r in readings]


def test_an_unreachable_redis_is_reported_not_hung() -> None:
    history = replica(f"redis://127.0.0.1:{free_port()}/0", "test:")
    with pytest.raises(HistoryUnavailable, match="Redis"):
        history.model_inputs(series("a", 2))
    assert history.store.ping() is False  # type: ignore[attr-defined]
