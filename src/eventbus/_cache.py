"""Bounded result cache, pure-Python reference of ``_fast/_cache.pyx``.

The trie and the rights table keep their answers per topic here. Entries go oldest first
when the cache is full, and single entries can be dropped, so a change to the trie only
forgets the topics it affects (as nats-server's sublist patches its cache).
"""

from __future__ import annotations

import operator
import sys
from collections import OrderedDict
from collections.abc import Hashable, Iterator
from typing import Generic, TypeVar

__all__ = ["FifoCache", "capacity"]

V = TypeVar("V")


def capacity(value: object) -> int:
    """A constructor's ``cache_size`` as a bound: an int, below 1 meaning no cache, clamped
    to a Py_ssize_t (no cache grows that big) so the compiled twin holds it in C."""
    size = operator.index(value)  # type: ignore[arg-type]
    return min(max(size, 0), sys.maxsize)


class FifoCache(Generic[V]):
    """At most ``capacity`` entries (0: none kept); inserting into a full cache drops the
    oldest. ``capacity`` is checked by the owner's constructor."""

    __slots__ = ("_capacity", "_items")

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        # O(1) removal of the oldest and of any single key.
        self._items: OrderedDict[Hashable, V] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._items

    def get(self, key: Hashable) -> V | None:
        return self._items.get(key)

    def put(self, key: Hashable, value: V) -> None:
        if self._capacity == 0:
            return
        items = self._items
        if len(items) >= self._capacity:
            items.popitem(last=False)
        items[key] = value

    def drop(self, key: Hashable) -> None:
        del self._items[key]

    def entries(self) -> Iterator[tuple[Hashable, V]]:
        """A snapshot of the entries, so the caller may drop some while going through."""
        return iter(list(self._items.items()))

    def clear(self) -> None:
        self._items.clear()
