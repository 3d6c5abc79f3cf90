"""Compiled access rights, pure-Python reference of ``_fast/_rights.pyx``.

A principal's allow rules (topic filter + right bits) are compiled into a level trie whose
nodes carry the OR of the bits of the filters ending there, so a publish check is one walk
(and, once seen, one dict lookup). A subscribe check asks whether some rule's filter
*covers* the requested filter; it runs once per subscription, never per delivery.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable

from ._cache import FifoCache
from ._grammar import DEFAULT_MAX_BYTES, DEFAULT_MAX_LEVELS, _covers, _limit, _split

__all__ = ["ADMIN", "PUBLISH", "SUBSCRIBE", "RightsTable"]

PUBLISH = 1
SUBSCRIBE = 2
ADMIN = 4

_CACHE_SIZE = 1024
# Rights are small bit sets; the bound lets the compiled twin keep masks in a C int.
_MAX_BITS = 2**31 - 1


def _bits(value: object) -> int:
    bits = operator.index(value)  # type: ignore[arg-type]
    if not 0 <= bits <= _MAX_BITS:
        raise ValueError(f"rights bits must be between 0 and {_MAX_BITS}, not {bits}")
    return bits


class _Node:
    __slots__ = ("children", "hash_mask", "mask", "plus")

    def __init__(self) -> None:
        self.children: dict[str, _Node] = {}
        self.plus: _Node | None = None
        self.mask = 0
        self.hash_mask = 0


class RightsTable:
    """The topic rights of one principal: ``(filter, bits)`` allow rules, default deny.

    Each rule is a pair; its bits an int from 0 to 2**31 - 1 (an ``IntFlag`` too); the
    answers are plain ints. The limits are ints of at least 1, checked here.
    """

    __slots__ = (
        "_max_bytes",
        "_max_levels",
        "_pub_cache",
        "_root",
        "_rule_levels",
        "_rules",
        "_sub_cache",
    )

    def __init__(
        self,
        rules: Iterable[tuple[str, int]],
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_levels: int = DEFAULT_MAX_LEVELS,
    ) -> None:
        self._root = _Node()
        self._max_bytes = max_bytes = _limit("max_bytes", max_bytes)
        self._max_levels = max_levels = _limit("max_levels", max_levels)
        self._pub_cache: FifoCache[int] = FifoCache(_CACHE_SIZE)
        self._sub_cache: FifoCache[bool] = FifoCache(_CACHE_SIZE)
        compiled: list[tuple[str, int]] = []
        rule_levels: list[tuple[list[str], int]] = []
        for rule in rules:
            topic_filter, given = rule
            bits = _bits(given)
            node = self._root
            levels = _split(topic_filter, True, max_bytes, max_levels)
            for level in levels:
                if level == "#":
                    node.hash_mask |= bits
                    break
                if level == "+":
                    if node.plus is None:
                        node.plus = _Node()
                    node = node.plus
                else:
                    child = node.children.get(level)
                    if child is None:
                        child = node.children[level] = _Node()
                    node = child
            else:
                node.mask |= bits
            compiled.append((topic_filter, given))
            rule_levels.append((levels, bits))
        self._rules = tuple(compiled)
        # Covers is checked on the levels, so the table's own limits apply, not the defaults.
        self._rule_levels = tuple(rule_levels)

    @property
    def rules(self) -> tuple[tuple[str, int], ...]:
        """The allow rules, in the order given."""
        return self._rules

    def mask(self, topic: str) -> int:
        """The OR of the bits of every rule whose filter matches ``topic`` (validated)."""
        cached = self._pub_cache.get(topic)
        if cached is not None:
            return cached
        levels = _split(topic, False, self._max_bytes, self._max_levels)
        root = self._root
        if levels[0][0] == "$":
            child = root.children.get(levels[0])
            bits = _walk(child, levels, 1) if child is not None else 0
        else:
            bits = _walk(root, levels, 0)
        self._pub_cache.put(topic, bits)
        return bits

    def may_publish(self, topic: str) -> bool:
        """Whether some publish rule matches ``topic``."""
        return bool(self.mask(topic) & PUBLISH)

    def may_subscribe(self, topic_filter: str) -> bool:
        """Whether some subscribe rule covers every topic ``topic_filter`` can match."""
        cached = self._sub_cache.get(topic_filter)
        if cached is not None:
            return cached
        levels = _split(topic_filter, True, self._max_bytes, self._max_levels)
        allowed = False
        for rule_levels, bits in self._rule_levels:
            if bits & SUBSCRIBE and _covers(rule_levels, levels):
                allowed = True
                break
        self._sub_cache.put(topic_filter, allowed)
        return allowed


def _walk(node: _Node, levels: list[str], index: int) -> int:
    bits = node.hash_mask
    if index == len(levels):
        return bits | node.mask
    child = node.children.get(levels[index])
    if child is not None:
        bits |= _walk(child, levels, index + 1)
    if node.plus is not None:
        bits |= _walk(node.plus, levels, index + 1)
    return bits
