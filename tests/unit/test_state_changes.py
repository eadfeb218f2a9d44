"""A condition is logged when it begins, changes or ends; repeats are not."""

from __future__ import annotations

import logging

import pytest

from driftline.core.state_changes import StateChanges

log = logging.getLogger("driftline.test_state_changes")


def test_each_change_is_one_line_and_the_first_failure_has_its_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    state = StateChanges(log, "reading the registry")
    with caplog.at_level(logging.INFO, logger=log.name):
        assert state.ok() is False  # nothing to end yet
        try:
            raise ConnectionError("refused")
        except ConnectionError:
            assert state.failing("refused", traceback=True) is True
            assert [state.failing("refused", traceback=True) for _ in range(50)] == [False] * 50
        assert state.failing("timed out") is True
        assert state.ok() is True
        assert state.ok() is False
        assert state.failing("refused") is True  # a new episode is logged again
    lines = [(r.levelname, r.getMessage(), bool(r.exc_info)) for r in caplog.records]
    assert lines == [
        ("WARNING", "reading the registry: refused", True),
        ("WARNING", "reading the registry: timed out", False),
        ("INFO", "reading the registry: ok again", False),
        ("WARNING", "reading the registry: refused", False),
    ]
