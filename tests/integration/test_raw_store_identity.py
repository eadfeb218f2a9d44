"""The raw store on both databases: every distinct message is kept, a rejected copy never
shadows a valid reading, training reads exactly the valid readings, hostile payloads are
stored in a form the database accepts, and a store of the old schema is upgraded."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
import sqlalchemy as sa

from driftline.core.records import reading_id
from driftline.core.settings import Settings
from driftline.store.migrations import current, head, migrate
from driftline.store.raw_store import RawStore, message_id
from driftline.store.tables import raw_readings
from driftline.streaming.messages import Message
from driftline.training.dataset import load_readings
from tests.unit.factories import NORMAL_VALUES

pytestmark = pytest.mark.integration

TS = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)


def doc(seq: object = 1, ts: datetime = TS, **values: object) -> bytes:
    body = {"sensor_id": "pump-001", "ts": ts.isoformat(), "values": NORMAL_VALUES | values}
    if seq is not None:
        body["seq"] = seq
    return orjson.dumps(body)


def msg(offset: int, value: bytes | None, key: bytes | None = b"pump-001") -> Message:
    return Message("raw", 0, offset, key, value)


@pytest.fixture(params=[True, False], ids=["bulk", "insert"])
def store(database_url: str, request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    """The raw store writing batches in bulk (as ingest does) or row by row."""
    s = RawStore.from_url(database_url, bulk_load=request.param)
    s.create_tables()
    yield s
    s.engine.dispose()


def rows(store: RawStore) -> list[sa.Row]:
    with store.engine.connect() as conn:
        return conn.execute(sa.select(raw_readings).order_by(raw_readings.c.kafka_offset)).all()


def test_a_rejected_copy_sent_first_does_not_shadow_the_valid_reading(
    store: RawStore, database_url: str, tmp_path: Path
) -> None:
    out_of_range = doc(Pressure=1e6)
    valid = doc()
    invalid_seq = doc(seq=-5)
    no_seq = doc(seq=None)
    store.add_messages([msg(0, out_of_range), msg(1, valid), msg(2, invalid_seq), msg(3, no_seq)])
    store.add_messages([msg(1, valid)])  # an identical redelivery adds nothing
    stored = rows(store)
    assert [r.kafka_offset for r in stored] == [0, 1, 2, 3]
    rid = reading_id("pump-001", TS, 1)
    assert [r.reading_id for r in stored[:2]] == [rid, rid]
    assert stored[2].reading_id is None and stored[2].seq is None  # not "the one without seq"
    assert stored[3].reading_id == reading_id("pump-001", TS, None)
    assert stored[1].message_id == message_id(b"pump-001", valid)

    settings = Settings(database_url=database_url, data_dir=tmp_path / "data")
    frame, report = load_readings(settings, None, None, None)
    assert sorted(frame["reading_id"]) == sorted([rid, reading_id("pump-001", TS, None)])
    assert report.rows_read == 3  # the row without a reading identity is not even read


def test_valid_copies_of_one_reading_train_once(
    store: RawStore, database_url: str, tmp_path: Path
) -> None:
    first = doc()
    second = doc() + b" "  # the same reading, other bytes
    store.add_messages([msg(0, first), msg(1, second)])
    assert len(rows(store)) == 2
    settings = Settings(database_url=database_url, data_dir=tmp_path / "data")
    frame, _ = load_readings(settings, None, None, None)
    assert list(frame["reading_id"]) == [reading_id("pump-001", TS, 1)]


def test_hostile_messages_are_stored_in_a_form_the_database_accepts(store: RawStore) -> None:
    store.payload_limit = 1024
    hostile = [
        msg(0, b"x" * 5000),  # over the limit: truncated, with its size and a flag
        msg(1, b"\xff\xfe\x00 not utf-8", key=b"\xff\xfe"),
        msg(
            2, b'{"sensor_id": "\\ud800", "ts": "2024-01-01T00:00:00Z"}', key="\U0001f600".encode()
        ),
        msg(3, None, key=b"tombstone"),
        msg(4, b'{"sensor_id": "pump-001\\u0000", "ts": "0001-01-01T00:00:00+01:00"}'),
        msg(
            5,
            b'{"sensor_id": "pump-001", "ts": "9999-12-31T23:59:59", "seq": 99999999999999999999}',
        ),
        msg(6, doc(ts=datetime(1, 1, 1, tzinfo=UTC) + timedelta(days=1))),
        msg(7, b"[" * 100_000),
        msg(8, doc(), key=b"k" * 1000),
    ]
    store.add_messages(hostile)
    stored = {r.kafka_offset: r for r in rows(store)}
    assert sorted(stored) == list(range(9))
    assert stored[0].payload_truncated and stored[0].payload_bytes == 5000
    assert len(stored[0].payload) == 1024
    assert stored[1].msg_key == "\\xff\\xfe" and bytes(stored[1].payload) == hostile[1].value
    assert stored[2].msg_key == "\U0001f600" and stored[2].sensor_id is None
    assert stored[3].payload_bytes is None and bytes(stored[3].payload) == b""
    assert stored[4].sensor_id is None
    assert stored[5].reading_id is None and stored[5].seq is None
    assert stored[6].event_ts is None and stored[6].reading_id is not None
    assert stored[8].msg_key == "k" * 255


def test_a_store_of_the_old_schema_is_upgraded(database_url: str) -> None:
    store = RawStore.from_url(database_url)
    try:
        migrate(store.engine, "0001")  # raw_readings keyed by reading_id, as services made it
        shadow = doc(Pressure=1e6)
        legacy = [
            {"reading_id": reading_id("pump-001", TS, 1), "payload": shadow, "offset": 0},
            {"reading_id": "f" * 32, "payload": doc(seq=-5), "offset": 1},
            {"reading_id": "e" * 32, "payload": b"\xff garbage", "offset": 2},
        ]
        with store.engine.begin() as conn:
            for row in legacy:
                conn.execute(
                    sa.text(
                        "INSERT INTO raw_readings (reading_id, sensor_id, event_ts, seq, "
                        "received_at, kafka_topic, kafka_partition, kafka_offset, msg_key, "
                        "payload) VALUES (:rid, NULL, NULL, NULL, :at, 'raw', 0, :off, "
                        "'pump-001', :payload)"
                    ),
                    {
                        "rid": row["reading_id"],
                        "at": datetime(2024, 1, 1),
                        "off": row["offset"],
                        "payload": row["payload"],
                    },
                )
        assert current(store.engine) == "0001"
        store.create_tables()
        assert current(store.engine) == head()
        inspector = sa.inspect(store.engine)
        assert inspector.get_pk_constraint("raw_readings")["constrained_columns"] == ["message_id"]
        names = {c["name"] for c in inspector.get_columns("raw_readings")}
        assert {"message_id", "reading_id", "payload_bytes", "payload_truncated"} <= names
        stored = rows(store)
        assert [bytes(r.payload) for r in stored] == [r["payload"] for r in legacy]
        assert stored[0].reading_id == reading_id("pump-001", TS, 1)
        assert stored[0].message_id == message_id(b"pump-001", shadow)
        assert stored[1].reading_id is None  # derived again: an invalid seq has no identity
        assert stored[2].reading_id is None and stored[2].payload_bytes == len(b"\xff garbage")
        # The valid reading the old key refused now lands beside its rejected copy.
        store.add_messages([msg(9, doc())])
        assert len(rows(store)) == 4
        store.create_tables()  # at the newest revision already: nothing happens
        assert len(rows(store)) == 4
    finally:
        store.engine.dispose()


def test_a_message_larger_than_the_servers_packet_is_stored_truncated(store: RawStore) -> None:
    # 17 MB: over MariaDB's default max_allowed_packet (16 MiB), which the broker accepts.
    big = b'{"sensor_id": "pump-001", "pad": "' + b"x" * (17 * 1024 * 1024) + b'"}'
    store.add_messages([msg(0, big), msg(1, doc())])
    stored = rows(store)
    assert [r.kafka_offset for r in stored] == [0, 1]
    assert stored[0].payload_truncated and stored[0].payload_bytes == len(big)
    assert len(stored[0].payload) == store.payload_limit < len(big)
    assert bytes(stored[0].payload) == big[: store.payload_limit]
    assert not stored[1].payload_truncated
