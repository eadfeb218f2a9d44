"""The time columns of a batch of ``ts`` values at once: the reading id's stamp and the
``event_ts`` column's text, for the values in the canonical ``YYYY-MM-DDTHH:MM:SS.ffffffZ``
form (what the simulator and the gateway send), with a few passes in C over the whole column
instead of a parse per value. Any other value is left to its own path (``None`` in ``canonical``).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from driftline.validation.parsing import PLAUSIBLE_FROM, PLAUSIBLE_UNTIL

_CANONICAL_TS = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T(?:[01][0-9]|2[0-3]):[0-9]{2}:[0-9]{2}\.[0-9]{6}Z"
)
# The canonical form sorts as time does: the plausible range as text.
FROM = PLAUSIBLE_FROM.isoformat(timespec="microseconds").replace("+00:00", "Z")
UNTIL = PLAUSIBLE_UNTIL.isoformat(timespec="microseconds").replace("+00:00", "Z")


def canonical(values: list[Any]) -> list[bool]:
    """Per value: a canonical timestamp of a real date and time (no 31 April)."""
    texts = values if set(map(type, values)) == {str} else [_text(v) for v in values]
    ok = [m is not None for m in map(_CANONICAL_TS.fullmatch, texts)]
    checked = [t if k else "2000-01-01T00:00:00.000000Z" for t, k in zip(texts, ok, strict=True)]
    try:
        list(map(datetime.fromisoformat, checked))
    except ValueError:  # some day past its month's end: find which
        for j, text in enumerate(checked):
            try:
                datetime.fromisoformat(text)
            except ValueError:
                ok[j] = False
    return ok


def stamps(values: list[Any], ok: list[bool]) -> list[str | None]:
    """The reading id's stamp (``as_utc(ts).isoformat(timespec="microseconds")``) of each
    canonical value, ``None`` elsewhere."""
    return [t[:26] + "+00:00" if k else None for t, k in zip(values, ok, strict=True)]


def event_texts(values: list[Any], ok: list[bool]) -> list[str | None]:
    """The ``event_ts`` column's text of each canonical value within the plausible range."""
    inside = [t for t, k in zip(values, ok, strict=True) if k]
    if inside and min(inside) >= FROM and max(inside) <= UNTIL:
        return [t[:10] + " " + t[11:26] if k else None for t, k in zip(values, ok, strict=True)]
    return [
        t[:10] + " " + t[11:26] if k and FROM <= t <= UNTIL else None
        for t, k in zip(values, ok, strict=True)
    ]


def _text(value: Any) -> str:
    return value if type(value) is str else ""
