"""Subscription trie, pure-Python reference of ``_fast/_trie.pyx``.

One node per filter level: literal children in a dict, one ``+`` child, and the values of
filters ending in ``#`` kept on the node where the ``#`` stands (as nats-server's sublist
keeps ``pwc``/``fwc`` apart). Like sublist, plain and queue values are kept apart on each
node and returned apart, so a caller needs no type test to tell them. ``match`` results are
kept in a bounded cache; a change forgets only the cached topics its filter matches.
"""

from __future__ import annotations

from collections.abc import Hashable

from ._cache import FifoCache, capacity
from ._grammar import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_LEVELS,
    _limit,
    _matches,
    _split,
)

__all__ = ["TopicTrie"]

DEFAULT_CACHE_SIZE = 4096

Values = tuple[Hashable, ...]


class _Node:
    __slots__ = ("children", "hash_queue", "hash_values", "plus", "queue", "values")

    def __init__(self) -> None:
        self.children: dict[str, _Node] = {}
        self.plus: _Node | None = None
        # Insertion-ordered sets: the values of filters ending here / ending in '#' here,
        # plain and queue apart.
        self.values: dict[Hashable, None] = {}
        self.hash_values: dict[Hashable, None] = {}
        self.queue: dict[Hashable, None] = {}
        self.hash_queue: dict[Hashable, None] = {}

    def is_empty(self) -> bool:
        return not (
            self.children
            or self.plus
            or self.values
            or self.hash_values
            or self.queue
            or self.hash_queue
        )

    def target(self, hashes: bool, queue: bool) -> dict[Hashable, None]:
        if queue:
            return self.hash_queue if hashes else self.queue
        return self.hash_values if hashes else self.values


class TopicTrie:
    """Maps topic filters to values; ``match(topic)`` gives the values whose filters match.

    Each ``(filter, value)`` pair is stored once, as a plain or (``queue=True``) a queue
    value; the two kinds are separate sets. Values may be any hashable objects.
    ``cache_size`` bounds the match cache (oldest entries go first); 0 disables it.
    The limits are checked here: ints, the topic limits at least 1; a
    ``cache_size`` below 1 means no cache.
    """

    __slots__ = ("_cache", "_count", "_generation", "_max_bytes", "_max_levels", "_root")

    def __init__(
        self,
        *,
        cache_size: int = DEFAULT_CACHE_SIZE,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_levels: int = DEFAULT_MAX_LEVELS,
    ) -> None:
        self._max_bytes = _limit("max_bytes", max_bytes)
        self._max_levels = _limit("max_levels", max_levels)
        # (plain, queue, topic levels): the levels let a change find the entries it affects.
        self._cache: FifoCache[tuple[Values, Values, list[str]]] = FifoCache(capacity(cache_size))
        self._root = _Node()
        self._count = 0
        self._generation = 0

    def __len__(self) -> int:
        return self._count

    @property
    def generation(self) -> int:
        """Increases on every change, so callers can cache results of their own."""
        return self._generation

    def add(self, topic_filter: str, value: Hashable, *, queue: bool = False) -> bool:
        """Add ``value`` under ``topic_filter``; False if that pair was already there."""
        levels = _split(topic_filter, True, self._max_bytes, self._max_levels)
        node = self._root
        hashes = False
        for level in levels:
            if level == "#":
                hashes = True
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
        target = node.target(hashes, queue)
        if value in target:
            return False
        target[value] = None
        self._changed(levels, 1)
        return True

    def discard(self, topic_filter: str, value: Hashable, *, queue: bool = False) -> bool:
        """Remove ``value`` from ``topic_filter``; False if that pair was not there."""
        levels = _split(topic_filter, True, self._max_bytes, self._max_levels)
        path: list[tuple[_Node, str]] = []
        node: _Node | None = self._root
        hashes = False
        for level in levels:
            assert node is not None
            if level == "#":
                hashes = True
                break
            path.append((node, level))
            node = node.plus if level == "+" else node.children.get(level)
            if node is None:
                return False
        assert node is not None
        target = node.target(hashes, queue)
        if value not in target:
            return False
        del target[value]
        self._prune(path)
        self._changed(levels, -1)
        return True

    def match(self, topic: str) -> Values:
        """The distinct values whose filters match ``topic`` (validated), each once:
        the plain ones, then the queue values not among them."""
        plain, queue = self.match_split(topic)
        if not queue:
            return plain
        return tuple(dict.fromkeys(plain + queue))

    def match_split(self, topic: str) -> tuple[Values, Values]:
        """``(plain, queue)``: the distinct plain and the distinct queue values whose
        filters match ``topic`` (validated), each in the order :meth:`match` gives them."""
        cached = self._cache.get(topic)
        if cached is not None:
            return cached[0], cached[1]
        levels = _split(topic, False, self._max_bytes, self._max_levels)
        plain: dict[Hashable, None] = {}
        queue: dict[Hashable, None] = {}
        root = self._root
        if levels[0][0] == "$":
            # Wildcards at the first level never reach broker ($) topics.
            child = root.children.get(levels[0])
            if child is not None:
                _collect(child, levels, 1, plain, queue)
        else:
            _collect(root, levels, 0, plain, queue)
        result = (tuple(plain), tuple(queue))
        self._cache.put(topic, (result[0], result[1], levels))
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

    def _changed(self, flevels: list[str], delta: int) -> None:
        self._count += delta
        self._generation += 1
        cache = self._cache
        for topic, (_, _, tlevels) in cache.entries():
            if _matches(flevels, tlevels):
                cache.drop(topic)


def _collect(
    node: _Node,
    levels: list[str],
    index: int,
    plain: dict[Hashable, None],
    queue: dict[Hashable, None],
) -> None:
    if node.hash_values:
        plain.update(node.hash_values)
    if node.hash_queue:
        queue.update(node.hash_queue)
    if index == len(levels):
        if node.values:
            plain.update(node.values)
        if node.queue:
            queue.update(node.queue)
        return
    child = node.children.get(levels[index])
    if child is not None:
        _collect(child, levels, index + 1, plain, queue)
    if node.plus is not None:
        _collect(node.plus, levels, index + 1, plain, queue)
