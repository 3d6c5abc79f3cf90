"""Subscriptions and fan-out: which connections an event goes to, and writing it there.

Plain subscriptions put the connection itself in the trie, so a connection whose several
filters match an event still gets it once. A shared subscription (queue group) puts one
``_Group`` in the trie, as a queue value, for each ``(filter, group)``; each event goes to
one member, in turn. The trie returns the two kinds apart (as nats-server's sublist does),
so an event without groups costs no type test and no set of the connections reached.
"""

from __future__ import annotations

from .._backend import TopicTrie, fan_out
from ._session import Session

__all__ = ["Router"]


class _Group:
    __slots__ = ("filter", "members", "name", "turn")

    def __init__(self, topic_filter: str, name: str) -> None:
        self.filter = topic_filter
        self.name = name
        self.members: list[Session] = []
        self.turn = 0

    def pick(self) -> Session:
        members = self.members
        turn = self.turn % len(members)
        self.turn = turn + 1
        return members[turn]


class Router:
    """The broker's subscription table."""

    __slots__ = ("_groups", "_trie")

    def __init__(self, max_topic_bytes: int, max_topic_levels: int) -> None:
        self._trie = TopicTrie(max_bytes=max_topic_bytes, max_levels=max_topic_levels)
        self._groups: dict[tuple[str, str], _Group] = {}

    @property
    def trie(self) -> TopicTrie:
        """Connections (plain values) and groups (queue values) by filter."""
        return self._trie

    def subscribe(self, session: Session, sub_id: int, topic_filter: str, group: str) -> None:
        """Register a subscription (the filter is validated by the trie)."""
        if group:
            key = (topic_filter, group)
            entry = self._groups.get(key)
            if entry is None:
                entry = _Group(topic_filter, group)
                self._trie.add(topic_filter, entry, queue=True)
                self._groups[key] = entry
            entry.members.append(session)
        else:
            refs = session.filter_refs
            if topic_filter not in refs:
                self._trie.add(topic_filter, session)
                refs[topic_filter] = 0
            refs[topic_filter] += 1
        session.subscriptions[sub_id] = (topic_filter, group)

    def unsubscribe(self, session: Session, sub_id: int) -> bool:
        """Remove one subscription; False when the connection has no such id."""
        entry = session.subscriptions.pop(sub_id, None)
        if entry is None:
            return False
        topic_filter, group = entry
        if group:
            key = (topic_filter, group)
            shared = self._groups[key]
            shared.members.remove(session)
            if not shared.members:
                del self._groups[key]
                self._trie.discard(topic_filter, shared, queue=True)
        else:
            refs = session.filter_refs
            refs[topic_filter] -= 1
            if not refs[topic_filter]:
                del refs[topic_filter]
                self._trie.discard(topic_filter, session)
        return True

    def remove_session(self, session: Session) -> int:
        """Drop every subscription of a connection at once; returns how many there were."""
        ids = list(session.subscriptions)
        for sub_id in ids:
            self.unsubscribe(session, sub_id)
        return len(ids)

    def fan_out(
        self,
        topic: str,
        data: bytes,
        reply_to: str = "",
        stream: tuple[int, str] | None = None,
    ) -> tuple[int, int]:
        """Write ``data`` to every connection ``topic`` reaches, each once.

        With ``reply_to`` (a request), each connection that gets it may answer there once.
        ``stream`` (publisher instance id, topic) names the sequence a drop leaves a gap in.

        Returns ``(delivered, dropped)`` counted in connections. Raises ``InvalidTopic``.
        """
        # The trie holds connections as plain values and groups as queue values only.
        sessions, groups = self._trie.match_split(topic)
        return fan_out(sessions, groups, data, reply_to, stream)  # type: ignore[arg-type]
