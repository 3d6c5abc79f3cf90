"""Subscription trie, pure-Python reference of ``_fast/_trie.pyx``.

One node per filter level: literal children in a dict, one ``+`` child, and the values of
filters ending in ``#`` kept on the node where the ``#`` stands (as nats-server's sublist
keeps ``pwc``/``fwc`` apart). ``match`` results are kept in a bounded cache that every
``add``/``discard`` clears.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable

from ._grammar import DEFAULT_MAX_BYTES, DEFAULT_MAX_LEVELS, filter_levels, topic_levels

__all__ = ["TopicTrie"]

DEFAULT_CACHE_SIZE = 4096


class _Node:
    __slots__ = ("children", "hash_values", "plus", "values")

    def __init__(self) -> None:
        self.children: dict[str, _Node] = {}
        self.plus: _Node | None = None
        # Insertion-ordered sets: the values of filters ending here / ending in '#' here.
        self.values: dict[Hashable, None] = {}
        self.hash_values: dict[Hashable, None] = {}

    def is_empty(self) -> bool:
        return not (self.children or self.plus or self.values or self.hash_values)


class TopicTrie:
    """Maps topic filters to values; ``match(topic)`` gives the values whose filters match.

    Each ``(filter, value)`` pair is stored once. Values may be any hashable objects.
    ``cache_size`` bounds the match cache (oldest entries go first); 0 disables it.
    """

    __slots__ = (
        "_cache",
        "_cache_order",
        "_cache_size",
        "_count",
        "_generation",
        "_max_bytes",
        "_max_levels",
        "_root",
    )

    def __init__(
        self,
        *,
        cache_size: int = DEFAULT_CACHE_SIZE,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_levels: int = DEFAULT_MAX_LEVELS,
    ) -> None:
        self._root = _Node()
        self._cache: dict[str, tuple[Hashable, ...]] = {}
        # The cached topics in insertion order, so evicting the oldest is O(1).
        self._cache_order: deque[str] = deque()
        self._cache_size = cache_size
        self._count = 0
        self._generation = 0
        self._max_bytes = max_bytes
        self._max_levels = max_levels

    def __len__(self) -> int:
        return self._count

    @property
    def generation(self) -> int:
        """Increases on every change, so callers can cache results of their own."""
        return self._generation

    def add(self, topic_filter: str, value: Hashable) -> bool:
        """Add ``value`` under ``topic_filter``; False if that pair was already there."""
        levels = filter_levels(topic_filter, self._max_bytes, self._max_levels)
        node = self._root
        for level in levels:
            if level == "#":
                target = node.hash_values
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
            target = node.values
        if value in target:
            return False
        target[value] = None
        self._changed(1)
        return True

    def discard(self, topic_filter: str, value: Hashable) -> bool:
        """Remove ``value`` from ``topic_filter``; False if that pair was not there."""
        levels = filter_levels(topic_filter, self._max_bytes, self._max_levels)
        path: list[tuple[_Node, str]] = []
        node: _Node | None = self._root
        for level in levels:
            assert node is not None
            if level == "#":
                target = node.hash_values
                break
            path.append((node, level))
            node = node.plus if level == "+" else node.children.get(level)
            if node is None:
                return False
        else:
            assert node is not None
            target = node.values
        if value not in target:
            return False
        del target[value]
        self._prune(path)
        self._changed(-1)
        return True

    def match(self, topic: str) -> tuple[Hashable, ...]:
        """The distinct values whose filters match ``topic`` (validated), each once."""
        cached = self._cache.get(topic)
        if cached is not None:
            return cached
        levels = topic_levels(topic, self._max_bytes, self._max_levels)
        found: dict[Hashable, None] = {}
        root = self._root
        if levels[0][0] == "$":
            # Wildcards at the first level never reach broker ($) topics.
            child = root.children.get(levels[0])
            if child is not None:
                _collect(child, levels, 1, found)
        else:
            _collect(root, levels, 0, found)
        result = tuple(found)
        size = self._cache_size
        if size > 0:
            cache = self._cache
            if len(cache) >= size:
                del cache[self._cache_order.popleft()]
            cache[topic] = result
            self._cache_order.append(topic)
        return result

    def _prune(self, path: list[tuple[_Node, str]]) -> None:
        for parent, level in reversed(path):
            child = parent.plus if level == "+" else parent.children[level]
            if child is None or not child.is_empty():
                return
            if level == "+":
                parent.plus = None
            else:
                del parent.children[level]

    def _changed(self, delta: int) -> None:
        self._count += delta
        self._generation += 1
        self._cache.clear()
        self._cache_order.clear()


def _collect(node: _Node, levels: list[str], index: int, found: dict[Hashable, None]) -> None:
    if node.hash_values:
        found.update(node.hash_values)
    if index == len(levels):
        if node.values:
            found.update(node.values)
        return
    child = node.children.get(levels[index])
    if child is not None:
        _collect(child, levels, index + 1, found)
    if node.plus is not None:
        _collect(node.plus, levels, index + 1, found)
