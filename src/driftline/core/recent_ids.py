"""A bounded memory of recently seen ids, for spotting duplicates in a stream."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable


class RecentIds:
    """A bounded set of the most recently accepted reading ids (oldest forgotten first)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._ids: OrderedDict[str, None] = OrderedDict()

    def __contains__(self, item: object) -> bool:
        return item in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, reading_id: str) -> None:
        if self.capacity <= 0:
            return
        self._ids[reading_id] = None
        if len(self._ids) > self.capacity:
            self._ids.popitem(last=False)

    def discard(self, reading_id: str) -> None:
        """Forget ``reading_id`` (accepted, then not published after all)."""
        self._ids.pop(reading_id, None)

    def among(self, ids: Iterable[str | None]) -> set[str | None]:
        """Those of ``ids`` seen recently: one set operation in C, not a call per id."""
        return set(self._ids.keys() & ids)

    def add_all(self, reading_ids: Iterable[str]) -> None:
        """``add`` each, in order, trimming once at the end: for ids not held already (the
        validator's valid readings, which were not seen), what ``add`` each would leave."""
        if self.capacity <= 0:
            return
        ids = self._ids
        ids.update(dict.fromkeys(reading_ids))
        for _ in range(len(ids) - self.capacity):
            ids.popitem(last=False)

    def discard_all(self, reading_ids: Iterable[str]) -> None:
        pop = self._ids.pop
        for reading_id in reading_ids:
            pop(reading_id, None)
