"""The accounting of a chaos run: what every subscriber must be able to account for.

A publisher instance (one client instance id) numbers its events 1, 2, 3... per topic; a
*stream* is one (instance, topic). For a subscriber S and a stream X its filters match:

- X's publisher was alive at the end: it published markers until one reached every
  subscriber, so S received X's last event, ``end = L``, the last sequence X's publisher
  handed to its client. Every event 1..L left the publisher or was counted unsent by its
  client, whose gap S then sees.
- X's publisher was SIGKILLed: what was still in its process never left it, and nothing
  after the last event S received proves anything was sent: ``end = l``, the last
  sequence of X that S received (0 if none).

S must account for events 1..end of every stream, each exactly once, as received, reported
dropped by the broker (``client.dropped``) or found lost in transit (``client.lost``):
``window = sum(end)`` and ``received + dropped + lost == window``. One term is not in any
window: events of a killed publisher after S's last one that the broker dropped for S are
reported (in ``dropped``) but beyond ``end``; so when S had drops the check is
``received + lost <= window <= received + lost + dropped``, and exact when it had none
(then it is checked per publisher instance too, with the ``on_lost`` callback's counts).

A subscriber can only see a gap after an event of the stream it knows: the harness never
kills the broker before every subscriber has seen every live stream, nor starts a publisher
before every subscriber is subscribed (DESIGN §5 numbers streams from the publisher, so a
stream whose head never reached S is indistinguishable from one S subscribed to late).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import eventbus


@dataclass
class Instance:
    """One publisher process's client, as the harness saw it."""

    instance_id: int
    name: str
    topics: tuple[str, ...]
    #: Last sequence per topic when it was alive at the end (its ``finished`` line), else None.
    last: dict[str, int] | None = None
    #: Events handed to its client per topic at its last ``progress`` line.
    progress: dict[str, int] = field(default_factory=dict)
    #: Its publishes that raised ConnectionLost because the connection broke under them.
    interrupted: int = 0

    @property
    def alive(self) -> bool:
        return self.last is not None

    @property
    def published(self) -> int:
        """Events it handed to its client (for a killed one: as of its last report)."""
        return sum((self.last if self.last is not None else self.progress).values())


@dataclass
class Account:
    """One subscriber's accounting."""

    name: str
    window: int
    received: int
    dropped: int
    lost: int
    exact: bool
    violations: list[str]


def matches(filters: Iterable[str], topic: str) -> bool:
    return any(eventbus.topic_matches(f, topic) for f in filters)


def subscribers_of(topic: str, filters: Sequence[Sequence[str]]) -> int:
    """Subscriber connections a topic reaches (the count a confirmed marker must reach)."""
    return sum(1 for own in filters if matches(own, topic))


def account(
    name: str, filters: Sequence[str], report: Mapping[str, Any], instances: Iterable[Instance]
) -> Account:
    """Check one subscriber's ``report`` (see ``chaos/peer.py``) against the publishers."""
    violations = [f"{name}: {text}" for text in report["violations"]]
    if report["violation_count"] > len(report["violations"]):
        violations.append(
            f"{name}: {report['violation_count'] - len(report['violations'])} more violations"
        )
    violations += [f"{name}: consumer failed: {text}" for text in report["failures"]]
    known = {instance.instance_id: instance for instance in instances}
    seen: dict[tuple[int, str], dict[str, Any]] = {}
    for stream in report["streams"]:
        key = (stream["instance_id"], stream["topic"])
        seen[key] = stream
        instance = known.get(key[0])
        if instance is None:
            violations.append(f"{name}: events from an unknown publisher instance {key[0]:#x}")
        elif key[1] not in instance.topics or not matches(filters, key[1]):
            violations.append(f"{name}: events of {key[1]} from {instance.name}, not expected")
    window = 0
    window_by_instance: dict[int, int] = {}
    received_by_instance: dict[int, int] = {}
    for instance in known.values():
        for topic in instance.topics:
            if not matches(filters, topic):
                continue
            stream = seen.get((instance.instance_id, topic))
            last_received = stream["last"] if stream is not None else 0
            if instance.last is not None:
                end = instance.last[topic]
                if last_received != end:
                    violations.append(
                        f"{name}: last event of {topic} from {instance.name} was {end}, "
                        f"received up to {last_received} only"
                    )
            else:
                end = last_received
            window += end
            iid = instance.instance_id
            window_by_instance[iid] = window_by_instance.get(iid, 0) + end
            if stream is not None:
                received_by_instance[iid] = received_by_instance.get(iid, 0) + stream["count"]
    received, dropped, lost = report["received"], report["dropped"], report["lost"]
    lost_by_instance = {int(k): v for k, v in report["lost_by_instance"].items()}
    if sum(lost_by_instance.values()) != lost:
        violations.append(
            f"{name}: on_lost reported {sum(lost_by_instance.values())} events, lost is {lost}"
        )
    counted = f"received {received} + dropped {dropped} + lost {lost}"
    if dropped == 0:
        if received + lost != window:
            violations.append(f"{name}: {counted} != {window} to account for")
        for iid, end in window_by_instance.items():
            got = received_by_instance.get(iid, 0) + lost_by_instance.get(iid, 0)
            if got != end:
                who = known[iid].name
                violations.append(
                    f"{name}: from {who}: received + lost = {got}, {end} to account for"
                )
    elif not received + lost <= window <= received + lost + dropped:
        violations.append(f"{name}: {counted} does not cover {window} to account for")
    return Account(name, window, received, dropped, lost, dropped == 0, violations)
