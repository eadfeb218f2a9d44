"""The query gate lets through one read-only SELECT and nothing else."""

from __future__ import annotations

import pytest

from driftline.core.errors import DriftlineError
from driftline.training.sql_guard import check_select


@pytest.mark.parametrize(
    ("sql", "checked"),
    [
        ("SELECT 1", "SELECT 1"),
        ("  select * from raw_readings ;  -- trailing note", "select * from raw_readings"),
        (
            "WITH s AS (SELECT sensor_id FROM raw_readings) SELECT COUNT(*) FROM s",
            "WITH s AS (SELECT sensor_id FROM raw_readings) SELECT COUNT(*) FROM s",
        ),
        # Forbidden words inside strings, quoted names and comments are only text.
        (
            "SELECT 'drop table x; delete' AS \"update\", `insert` FROM t /* set */",
            "SELECT 'drop table x; delete' AS \"update\", `insert` FROM t",
        ),
        ("SELECT 'it''s' WHERE ts >= '2024-01-01 10:00:00'", None),
    ],
)
def test_read_only_selects_pass(sql: str, checked: str | None) -> None:
    assert check_select(sql) == (checked or sql)


@pytest.mark.parametrize(
    "sql",
    [
        "",
        "-- only a comment",
        "DELETE FROM raw_readings",
        "UPDATE raw_readings SET seq = 1",
        "INSERT INTO raw_readings VALUES (1)",
        "DROP TABLE raw_readings",
        "SELECT 1; DROP TABLE raw_readings",
        "SELECT 1; SELECT 2",
        "SELECT * FROM raw_readings INTO OUTFILE '/tmp/x'",
        "SELECT * INTO @v FROM raw_readings",
        "SELECT * FROM raw_readings FOR UPDATE",
        "SELECT * FROM raw_readings LOCK IN SHARE MODE",
        "SELECT LOAD_FILE('/etc/passwd')",
        "SELECT load_extension('x')",
        "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d",
        "SET SESSION TRANSACTION READ WRITE",
        "PRAGMA query_only=OFF",
        "CALL proc()",
        "SELECT /*! DROP TABLE t */ 1",  # MySQL runs the inside of /*! */ comments
        "SELECT 'a\\' ; DROP TABLE t; -- '",  # a backslash escapes in MySQL, not in SQLite
        "SELECT 'unterminated",
        "SELECT $$x$$",
    ],
)
def test_anything_else_is_refused(sql: str) -> None:
    with pytest.raises(DriftlineError):
        check_select(sql)
