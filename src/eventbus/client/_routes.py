"""Local routing: which of a client's subscriptions an event delivered to it belongs to.

The broker writes each event to a connection once; the client hands it to every one of its
subscriptions whose filter matches (``_backend.Delivery``), through the same trie the broker
uses, built with the topic limits the broker announced (which may be larger than the
defaults).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from .._backend import TopicTrie
from .._grammar import DEFAULT_MAX_BYTES, DEFAULT_MAX_LEVELS
from ..v1 import frames_pb2
from ._subscription import Subscription

__all__ = ["Routes"]


class Routes:
    """A client's subscriptions by id and by filter."""

    __slots__ = ("_by_id", "_limits", "_trie")

    def __init__(self, limits: frames_pb2.Limits) -> None:
        self._by_id: dict[int, Subscription] = {}
        self._limits = (0, 0)
        self._trie = TopicTrie()
        self.follow(limits)

    def __iter__(self) -> Iterator[Subscription]:
        return iter(list(self._by_id.values()))

    @property
    def trie(self) -> TopicTrie:
        """The subscriptions by filter (replaced when the topic limits change)."""
        return self._trie

    def follow(self, limits: frames_pb2.Limits) -> None:
        """Route with a (re)connected broker's topic limits."""
        wanted = (
            limits.max_topic_bytes or DEFAULT_MAX_BYTES,
            limits.max_topic_levels or DEFAULT_MAX_LEVELS,
        )
        if wanted != self._limits:
            self._limits = wanted
            self._trie = TopicTrie(max_bytes=wanted[0], max_levels=wanted[1])
            for sub in self._by_id.values():
                self._trie.add(sub.filter, sub)

    def add(self, sub: Subscription) -> None:
        self._by_id[sub.id] = sub
        self._trie.add(sub.filter, sub)

    def remove(self, sub: Subscription) -> bool:
        """Forget ``sub``; False when it was not routed."""
        if self._by_id.pop(sub.id, None) is None:
            return False
        self._trie.discard(sub.filter, sub)
        return True

    def clear(self) -> list[Subscription]:
        subs = list(self._by_id.values())
        self._by_id.clear()
        self._trie = TopicTrie(max_bytes=self._limits[0], max_levels=self._limits[1])
        return subs

    def active(self, sub_id: int) -> None:
        """The broker acknowledged subscription ``sub_id``: events are due from now on
        (kept across reconnections: what a reconnection window misses is a loss)."""
        sub = self._by_id.get(sub_id)
        if sub is not None and not sub.active_since:
            sub.active_since = time.monotonic_ns()

    def subscribed_since(self, topic: str) -> int:
        """Since when a plain subscription has received ``topic`` (monotonic ns; 0: none)."""
        subs: tuple[Subscription, ...] = self._trie.match(topic)  # type: ignore[assignment]
        since = [sub.active_since for sub in subs if not sub.group and sub.active_since]
        return min(since) if since else 0

    def receives(self, topic: str) -> bool:
        """Whether a plain subscription (one that gets every event) matches ``topic``."""
        return any(not sub.group for sub in self._trie.match(topic))  # type: ignore[attr-defined]
