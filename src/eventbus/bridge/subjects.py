"""Bus topics and NATS subjects: ``daemoneye.<host-id>.<topic>``, and back.

Both use ``.`` between levels, so a topic maps level by level. A bus level may hold what a
NATS token may not be or hold (``*`` and ``>`` are NATS wildcards), so those characters
and ``%`` are percent-escaped in each level; everything else a bus level may hold (no
whitespace, no control characters: see docs/topics.md) is a valid NATS token character.
Filters map ``+`` to ``*`` and ``#`` to ``>``.
"""

from __future__ import annotations

from .._grammar import validate_filter, validate_topic

__all__ = [
    "BROADCAST",
    "ROOT",
    "check_host_id",
    "filter_to_subject",
    "subject_to_topic",
    "topic_to_subject",
]

ROOT = "daemoneye"
#: The host-id level that addresses every host (``daemoneye.all.control.>``).
BROADCAST = "all"

_ESCAPES = {"%": "%25", "*": "%2A", ">": "%3E"}


def _escape(level: str) -> str:
    if not any(c in level for c in _ESCAPES):
        return level
    return "".join(_ESCAPES.get(c, c) for c in level)


def _unescape(token: str) -> str:
    if "%" not in token:
        return token
    out: list[str] = []
    i = 0
    while i < len(token):
        if token[i : i + 3].upper() in ("%25", "%2A", "%3E"):
            out.append(bytes.fromhex(token[i + 1 : i + 3]).decode())
            i += 3
        else:
            out.append(token[i])
            i += 1
    return "".join(out)


def check_host_id(host_id: str) -> str:
    """Return ``host_id`` if it can be one subject token and names one host, else raise
    ``ValueError`` naming the rule it breaks."""
    if not host_id:
        raise ValueError("the host id is empty")
    if host_id == BROADCAST:
        raise ValueError(f"host id {host_id!r} is reserved: it addresses every host")
    bad = [c for c in host_id if c in ".*>%" or c.isspace() or not c.isprintable()]
    if bad:
        raise ValueError(
            f"host id {host_id!r} cannot be one NATS subject token: it holds {bad[0]!r}"
        )
    return host_id


def topic_to_subject(host_id: str, topic: str) -> str:
    """The subject a local ``topic`` is forwarded to from ``host_id``."""
    return ".".join((ROOT, host_id, *map(_escape, topic.split("."))))


def filter_to_subject(host_id: str, topic_filter: str) -> str:
    """The subject filter matching what ``topic_filter`` forwards (``+`` → ``*``, ``#`` → ``>``)."""
    validate_filter(topic_filter)
    levels = [
        "*" if level == "+" else ">" if level == "#" else _escape(level)
        for level in topic_filter.split(".")
    ]
    return ".".join((ROOT, host_id, *levels))


def subject_to_topic(subject: str, host_ids: tuple[str, ...]) -> str | None:
    """The local topic of ``daemoneye.<host>.<topic>`` when ``<host>`` is one of
    ``host_ids``; None for a subject outside them or that is no valid bus topic."""
    parts = subject.split(".")
    if len(parts) < 3 or parts[0] != ROOT or parts[1] not in host_ids:
        return None
    topic = ".".join(_unescape(token) for token in parts[2:])
    try:
        validate_topic(topic)
    except ValueError:
        return None
    return topic
