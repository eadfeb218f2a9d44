"""The consumer loop's error policy: dependency failures are waited out, a record's own failure
is retried a bounded number of times and then dead-lettered, and a stuck batch is a stall."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest
from aiokafka.errors import MessageSizeTooLargeError
from prometheus_client import REGISTRY
from sqlalchemy.exc import OperationalError

from driftline.core.backoff import Backoff
from driftline.core.health import STREAM, ServiceHealth
from driftline.core.records import DeadLetter
from driftline.streaming.error_policy import MAX_POISON_STREAK, ErrorPolicy
from driftline.streaming.messages import Message

DLQ = "dlq"


def fast() -> Backoff:
    return Backoff(0.001, 0.002)


def batch(n: int, poison: set[int] = frozenset(), key: bytes | None = b"pump-1") -> list[Message]:  # type: ignore[assignment]
    return [
        Message("raw", 0, i, key, b"poison" if i in poison else b'{"ok": true}') for i in range(n)
    ]


@dataclass
class World:
    """What the policy acts on: a handler that records what it stored, a dead-letter topic,
    and dependencies that may be away."""

    error: Exception = field(default_factory=lambda: RuntimeError("boom"))
    away_for: int = 0  # dependency checks that fail before they answer
    handled: list[int] = field(default_factory=list)
    published: list[tuple[str, bytes | None, bytes]] = field(default_factory=list)
    publish_failures: int = 0
    calls: int = 0
    healed: bool = False  # poison no longer fails

    async def handle(self, messages: list[Message]) -> None:
        self.calls += 1
        if not self.healed and any(m.value == b"poison" for m in messages):
            raise self.error
        if self.away_for > 0:
            raise OperationalError("INSERT", {}, ConnectionRefusedError("db away"))
        self.handled += [m.offset for m in messages]

    async def publish(self, items: Sequence[tuple[str, bytes | None, bytes]]) -> None:
        if self.publish_failures > 0:
            self.publish_failures -= 1
            raise OSError("broker away")
        self.published += items

    async def dependencies_up(self) -> bool:
        if self.away_for > 0:
            self.away_for -= 1
            return False
        return True

    def policy(self, name: str, health: ServiceHealth | None = None, **kw: object) -> ErrorPolicy:
        return ErrorPolicy(
            service=name,
            handle=self.handle,
            publish=self.publish,
            dead_letter_topic=DLQ,
            dependencies_up=self.dependencies_up,
            stop=asyncio.Event(),
            health=health,
            backoff=fast,
            **kw,  # type: ignore[arg-type]
        )

    def letters(self) -> list[DeadLetter]:
        assert all(topic == DLQ for topic, _, _ in self.published)
        return [DeadLetter.model_validate_json(value) for _, _, value in self.published]


def run(policy: ErrorPolicy, messages: list[Message]) -> bool:
    return asyncio.run(policy.run(messages))


@pytest.mark.parametrize(("size", "poison"), [(1, {0}), (10, {3}), (64, {0, 17, 63}), (7, {6})])
def test_a_record_that_keeps_failing_is_dead_lettered_and_the_rest_handled(
    size: int, poison: set[int]
) -> None:
    world = World()
    name = f"t-poison-{size}"
    assert run(world.policy(name, attempts=3), batch(size, poison))
    assert sorted(world.handled) == sorted(set(range(size)) - poison)
    letters = world.letters()
    assert sorted(letter.source.offset for letter in letters) == sorted(poison)
    for letter in letters:
        assert letter.stage == name
        assert letter.source.topic == "raw" and letter.source.partition == 0
        (reason,) = letter.reasons
        assert reason.check == "internal_error"
        assert "RuntimeError: boom" in reason.detail
        assert letter.payload == "poison"
    dead = REGISTRY.get_sample_value("driftline_poison_records_total", {"service": name})
    assert dead == len(poison)
    stalled = REGISTRY.get_sample_value("driftline_stream_stalled", {"service": name})
    assert not stalled  # splitting it made progress all along


def test_each_isolated_record_gets_its_attempts() -> None:
    world = World()
    assert run(world.policy("t-attempts", attempts=4), batch(1, {0}))
    assert world.calls == 4


def test_a_dependency_error_while_dependencies_answer_is_the_records_own() -> None:
    # The broker is up but refuses this one record: waiting would never end.
    world = World(error=MessageSizeTooLargeError())
    assert run(world.policy("t-size"), batch(5, {2}))
    assert world.handled == [0, 1, 3, 4]
    assert [letter.source.offset for letter in world.letters()] == [2]


def test_a_dependency_away_is_waited_out_without_dead_letters() -> None:
    world = World(away_for=12)  # far more failures than attempts
    assert run(world.policy("t-away", attempts=2), batch(5))
    assert world.handled == [0, 1, 2, 3, 4]
    assert world.published == []


def test_a_batch_failing_past_the_limit_is_a_stall_until_it_moves() -> None:
    health = ServiceHealth("t-stall")
    world = World(away_for=6)
    seen: list[dict[str, str]] = []
    policy = world.policy("t-stall", health, stall_after=3)

    original = world.dependencies_up

    async def watching() -> bool:
        seen.append(health.reasons())
        return await original()

    policy.dependencies_up = watching
    assert run(policy, batch(3))
    assert any(STREAM in reasons for reasons in seen)  # stalled while it kept failing
    stalled = [r[STREAM] for r in seen if STREAM in r][0]
    assert "raw[0]@0" in stalled and "OperationalError" in stalled
    assert STREAM not in health.reasons()  # and no longer once the batch went through
    gauge = REGISTRY.get_sample_value("driftline_stream_stalled", {"service": "t-stall"})
    assert gauge == 0


def test_a_stall_is_not_ready_and_exported() -> None:
    health = ServiceHealth("t-stall-2")
    health.stall("stalled: batch at raw[0]@5 failed 5 times")
    assert health.reasons()[STREAM].startswith("stalled")
    assert not health.ready()
    assert REGISTRY.get_sample_value("driftline_service_ready", {"service": "t-stall-2"}) == 0
    health.resume()
    assert STREAM not in health.reasons()


def test_the_dead_letter_waits_for_the_broker() -> None:
    world = World(publish_failures=3)
    assert run(world.policy("t-publish"), batch(2, {1}))
    assert [letter.source.offset for letter in world.letters()] == [1]


def test_dead_lettering_survives_unencodable_text() -> None:
    world = World(error=UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed"))
    messages = [Message("raw", 1, 9, "\udc00".encode("utf-8", "surrogatepass"), b"poison")]
    assert run(world.policy("t-unicode"), messages)
    ((_, _, value),) = world.published
    letter = json.loads(value)
    assert letter["source"] == {"topic": "raw", "partition": 1, "offset": 9}
    assert letter["reasons"][0]["check"] == "internal_error"


def test_a_failure_of_every_record_is_a_stall_not_a_stream_of_dead_letters() -> None:
    # A database that answers its checks but refuses every write: after a few dead letters
    # the policy stops blaming the records and waits, stalled, until writes go through.
    health = ServiceHealth("t-systemic")
    world = World()
    policy = world.policy("t-systemic", health, attempts=2, stall_after=4)
    messages = batch(8, poison=set(range(8)))
    seen: list[dict[str, str]] = []

    async def heal_later() -> None:
        async with asyncio.timeout(30):
            while world.calls < 40:
                await asyncio.sleep(0.001)
        seen.append(health.reasons())
        world.healed = True  # writes work again

    async def main() -> bool:
        healer = asyncio.create_task(heal_later())
        done = await policy.run(messages)
        await healer
        return done

    assert asyncio.run(main())
    assert len(world.letters()) == MAX_POISON_STREAK
    assert STREAM in seen[0]  # stalled while it waited
    assert sorted(world.handled) == list(range(MAX_POISON_STREAK, 8))
    assert STREAM not in health.reasons()


def test_stopping_leaves_the_batch_unhandled() -> None:
    world = World(away_for=10**6)
    policy = world.policy("t-stop")

    async def main() -> bool:
        asyncio.get_running_loop().call_later(0.05, policy.stop.set)
        return await policy.run(batch(2))

    assert asyncio.run(main()) is False
    assert world.handled == [] and world.published == []


def test_a_dead_letter_of_thousands_of_failures_stays_small() -> None:
    from driftline.core.records import FailedCheck
    from driftline.streaming.dead_letters import MAX_REASONS, dead_letter_bytes

    reasons = [
        FailedCheck(check="unexpected_field", column=f"f{i}", detail="x" * 300) for i in range(5000)
    ]
    value = dead_letter_bytes(Message("raw", 0, 1, b"k", b"{}"), "validator", reasons)
    letter = DeadLetter.model_validate_json(value)
    assert len(letter.reasons) == MAX_REASONS + 1
    assert letter.reasons[-1].check == "truncated" and "4900 more" in letter.reasons[-1].detail
    assert len(value) < 64 * 1024
