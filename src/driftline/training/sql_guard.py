"""A gate for ad-hoc queries: one read-only SELECT, or nothing.

A tokenizer, not a parser: it is meant to refuse anything doubtful. It runs in front of a
read-only connection (see ``dataset.run_select``), which is what really stops writes.
"""

from __future__ import annotations

import re

from driftline.core.errors import DriftlineError

# Statement words with no business in a read-only query (the first word must be SELECT/WITH).
# fmt: off
FORBIDDEN = frozenset({
    "ALTER", "ANALYZE", "ATTACH", "BEGIN", "CALL", "CHECKPOINT", "COMMIT", "COPY", "CREATE",
    "DEALLOCATE", "DELETE", "DETACH", "DO", "DROP", "DUMPFILE", "EXEC", "EXECUTE", "FLUSH",
    "GRANT", "HANDLER", "IMPORT", "INSERT", "INSTALL", "INTO", "KILL", "LOAD",
    "LOAD_EXTENSION", "LOAD_FILE", "LOCK", "MERGE", "OPTIMIZE", "OUTFILE", "PRAGMA",
    "PREPARE", "PURGE", "REINDEX", "RELEASE", "RENAME", "REPAIR", "REPLACE", "RESET",
    "REVOKE", "ROLLBACK", "SAVEPOINT", "SET", "SHUTDOWN", "START", "TRUNCATE", "UNINSTALL",
    "UNLOCK", "UPDATE", "UPSERT", "USE", "VACUUM", "XA",
})
# fmt: on

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<comment>--[^\n]*|\#[^\n]*|/\*(?!!).*?\*/)
  | (?P<string>'(?:[^']|'')*'|"(?:[^"]|"")*"|`(?:[^`]|``)*`|\[[^\]]*\])
  | (?P<word>[A-Za-z_][A-Za-z0-9_$]*)
  | (?P<semicolon>;)
  | (?P<other>[0-9.]+(?:[eE][+-]?[0-9]+)?|<=>|<>|!=|<=|>=|\|\||::|[-+*/%=<>(),.@:?!~^&|])
    """,
    re.VERBOSE | re.DOTALL,
)


def check_select(sql: str) -> str:
    """``sql`` without a trailing semicolon, if it is a single read-only SELECT (or WITH ...
    SELECT); raises DriftlineError otherwise."""
    if "\\" in sql or "\x00" in sql:
        # Backslash escapes mean different things in MySQL and SQLite strings.
        raise DriftlineError("backslashes and NUL are not allowed in a query")
    words: list[str] = []
    end = 0  # where the statement's last token ends
    after_semicolon = False
    pos = 0
    while pos < len(sql):
        match = _TOKEN.match(sql, pos)
        if match is None:
            raise DriftlineError(f"cannot read the query at {sql[pos : pos + 20]!r}")
        kind, text = match.lastgroup, match.group()
        pos = match.end()
        if kind in ("space", "comment"):
            continue
        if after_semicolon:
            raise DriftlineError("only one statement is allowed")
        if kind == "semicolon":
            after_semicolon = True
            continue
        end = pos
        if kind == "word":
            words.append(text.upper())
    if not words or words[0] not in ("SELECT", "WITH"):
        raise DriftlineError("the query must start with SELECT or WITH")
    forbidden = sorted(FORBIDDEN.intersection(words))
    if forbidden:
        raise DriftlineError(f"the query may only read; not allowed: {', '.join(forbidden)}")
    return sql[:end].strip()
